/* The verdicts of data-plane phase handlers and incremental parsers (CONVENTIONS.md §4,
 * after nginx's NGX_OK/NGX_AGAIN/NGX_DECLINED/NGX_DONE). */
#ifndef STRAIT_DP_VERDICT_H
#define STRAIT_DP_VERDICT_H

enum dp_verdict {
    DP_NEXT = 0, /* finished: go on to the next phase */
    DP_AGAIN,    /* needs more input or readiness; call again */
    DP_DECLINED, /* not for this handler (e.g. the bytes are not TLS) */
    DP_DONE,     /* finished, and the session needs nothing further from this phase */
    DP_REJECT,   /* refused by policy */
    DP_ERROR,    /* malformed input or failure: close the session */
};

#endif
