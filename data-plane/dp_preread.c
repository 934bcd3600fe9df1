/* ClientHello preread: finds the SNI and ALPN of a TLS client in the bytes it sent first,
 * without reading them off the socket (dp_preread.h states the feeding contract).
 *
 * Two layers, each a state machine that survives any split of its input:
 *   - the record layer (RFC 8446 §5.1) gathers 5-byte record headers and hands the payload
 *     of handshake records to
 *   - the hello layer, which reads the ClientHello (RFC 8446 §4.1.2; RFC 5246 §7.4.1.2 for
 *     TLS 1.2) one field at a time, in the style of nginx's
 *     ngx_stream_ssl_preread_parse_record(): the state (sw_*) names a field of known size
 *     whose bytes are gathered (numbers, the host name, ALPN names) or skipped; once the
 *     field is complete, the state's case checks it and sets up the next field.
 * Every length is checked against the one that encloses it (record, hello, extensions,
 * extension, list); any inconsistency is DP_ERROR. It does no I/O and no allocation, and
 * interprets nothing but server_name and ALPN: OpenSSL (termination) or the upstream
 * (passthrough) still parse the whole hello themselves. */
#include "dp_preread.h"

#include <string.h>

/* RFC 8446 §5.1: ContentType handshake(22). */
#define TLS_RT_HANDSHAKE 22
/* RFC 8446 §4: HandshakeType client_hello(1). */
#define TLS_HT_CLIENT_HELLO 1
/* RFC 6066 §3: ExtensionType server_name(0), NameType host_name(0). */
#define TLS_EXT_SERVER_NAME 0
#define TLS_SNI_HOST_NAME   0
/* RFC 7301 §3.1: ExtensionType application_layer_protocol_negotiation(16). */
#define TLS_EXT_ALPN 16

/* RFC 8446 §5.1 caps TLSPlaintext.length at 2^14. Like OpenSSL, which checks every record
 * header against the 2^14 + 2048 of RFC 5246 §6.2.3, we accept up to that bound so that we
 * never refuse what the TLS stack behind us would accept. */
#define TLS_RECORD_MAX (16384 + 2048)

/* RFC 8446 §4.1.2: legacy_session_id<0..32>. */
#define TLS_SESSION_ID_MAX 32

enum dp_preread_sw {
    sw_hs_header = 0, /* Handshake.msg_type, uint24 length */
    sw_version,       /* legacy_version */
    sw_random,        /* Random random (32 bytes) */
    sw_sid_len,       /* legacy_session_id length */
    sw_sid,           /* legacy_session_id */
    sw_cs_len,        /* cipher_suites length */
    sw_cs,            /* cipher_suites */
    sw_cm_len,        /* legacy_compression_methods length */
    sw_cm,            /* legacy_compression_methods */
    sw_ext_len,       /* extensions length */
    sw_ext_header,    /* extension_type, extension_data length */
    sw_ext_skip,      /* extension_data we do not interpret */
    sw_sni_len,       /* ServerNameList length */
    sw_sni_head,      /* ServerName.name_type, HostName length */
    sw_sni_host,      /* HostName */
    sw_alpn_len,      /* ProtocolNameList length */
    sw_alpn_plen,     /* ProtocolName length */
    sw_alpn_proto,    /* ProtocolName */
};

enum dp_preread_dst {
    DST_SKIP = 0,
    DST_BUF,  /* pr->buf: numbers, at most 4 bytes */
    DST_SNI,  /* pr->sni */
    DST_ALPN, /* pr->alpn, after the length byte of the name being read */
};

static unsigned
be16(const uint8_t *b)
{
    return (unsigned)b[0] << 8 | b[1];
}

static enum dp_verdict
finish(struct dp_preread *pr, enum dp_verdict v, const char *why)
{
    pr->verdict = (int)v;
    pr->why = why;
    return v;
}

static enum dp_verdict
fail(struct dp_preread *pr, const char *why)
{
    return finish(pr, DP_ERROR, why);
}

/* Sets up the next field of the hello body: `size` bytes going to `dst`. */
static enum dp_verdict
field(struct dp_preread *pr, enum dp_preread_sw state, size_t size, enum dp_preread_dst dst)
{
    if (size > pr->left) {
        return fail(pr, "a field overruns the ClientHello");
    }
    pr->left -= size;
    pr->sw_state = state;
    pr->dst = dst;
    pr->size = size;
    pr->got = 0;
    return DP_AGAIN;
}

/* The same, for a field inside the current extension's data. */
static enum dp_verdict
ext_field(struct dp_preread *pr, enum dp_preread_sw state, size_t size, enum dp_preread_dst dst)
{
    if (size > pr->ext) {
        return fail(pr, "a field overruns its extension");
    }
    pr->ext -= size;
    return field(pr, state, size, dst);
}

/* Between extensions: the extensions fill the hello exactly, so the hello ends with them. */
static enum dp_verdict
next_ext(struct dp_preread *pr)
{
    if (pr->left == 0) {
        return DP_NEXT;
    }
    return field(pr, sw_ext_header, 4, DST_BUF);
}

/* Checks the host name just read and normalises it in place: lowercase, one final dot
 * removed. RFC 6066 §3: HostName is an ASCII DNS name ("without a trailing dot", but some
 * clients send one); we accept letters, digits, '-', '_' and non-empty labels. */
static bool
sni_clean(struct dp_preread *pr)
{
    size_t i, n = pr->sni_len;
    char *s = pr->sni;

    if (n > 1 && s[n - 1] == '.') {
        n--;
    }
    for (i = 0; i < n; i++) {
        char c = s[i];

        if (c >= 'A' && c <= 'Z') {
            s[i] = (char)(c - 'A' + 'a');
        } else if (c == '.') {
            if (i == 0 || s[i - 1] == '.' || i == n - 1) {
                return false;
            }
        } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
            return false;
        }
    }
    s[n] = '\0';
    pr->sni_len = n;
    return true;
}

/* A field of the server_name extension is complete. RFC 6066 §3. */
static enum dp_verdict
sni_field_done(struct dp_preread *pr)
{
    const uint8_t *b = pr->buf;
    size_t n;

    switch (pr->sw_state) {
    case sw_sni_len:
        /* ServerNameList server_name_list<1..2^16-1> is all of extension_data. */
        n = be16(b);
        if (n == 0 || n != pr->ext) {
            return fail(pr, "server_name list length mismatch");
        }
        return ext_field(pr, sw_sni_head, 3, DST_BUF);
    case sw_sni_head:
        /* host_name is the only NameType, and "the ServerNameList MUST NOT contain more than
         * one name of the same name_type": like OpenSSL, exactly one host_name. */
        n = be16(b + 1);
        if (b[0] != TLS_SNI_HOST_NAME) {
            return fail(pr, "server_name type is not host_name");
        }
        if (pr->sni_len != 0) {
            return fail(pr, "more than one host_name in server_name");
        }
        if (n == 0 || n > DP_PREREAD_SNI_MAX) {
            return fail(pr, "bad host_name length");
        }
        pr->sni_len = n;
        return ext_field(pr, sw_sni_host, n, DST_SNI);
    case sw_sni_host:
        if (!sni_clean(pr)) {
            return fail(pr, "host_name is not a valid DNS name");
        }
        if (pr->ext != 0) {
            return ext_field(pr, sw_sni_head, 3, DST_BUF);
        }
        return next_ext(pr);
    default:
        return fail(pr, "internal: bad preread state");
    }
}

/* A field of the ALPN extension is complete. RFC 7301 §3.1. */
static enum dp_verdict
alpn_field_done(struct dp_preread *pr)
{
    size_t n;

    switch (pr->sw_state) {
    case sw_alpn_len:
        /* ProtocolNameList protocol_name_list<2..2^16-1> is all of extension_data. */
        n = be16(pr->buf);
        if (n < 2 || n != pr->ext) {
            return fail(pr, "ALPN list length mismatch");
        }
        return ext_field(pr, sw_alpn_plen, 1, DST_BUF);
    case sw_alpn_plen:
        /* opaque ProtocolName<1..2^8-1>: "Empty strings MUST NOT be included". Names that do
         * not fit are dropped, and so are all after them, to keep a prefix of the list. */
        n = pr->buf[0];
        if (n == 0) {
            return fail(pr, "empty ALPN protocol name");
        }
        pr->alpn_pending = n;
        if (!(pr->flags & DP_PREREAD_F_ALPN_TRUNCATED) &&
            pr->alpn_len + 1 + n <= DP_PREREAD_ALPN_MAX) {
            return ext_field(pr, sw_alpn_proto, n, DST_ALPN);
        }
        pr->flags |= DP_PREREAD_F_ALPN_TRUNCATED;
        return ext_field(pr, sw_alpn_proto, n, DST_SKIP);
    case sw_alpn_proto:
        if (pr->dst == DST_ALPN) {
            pr->alpn[pr->alpn_len] = (uint8_t)pr->alpn_pending;
            pr->alpn_len += 1 + pr->alpn_pending;
        }
        if (pr->ext != 0) {
            return ext_field(pr, sw_alpn_plen, 1, DST_BUF);
        }
        return next_ext(pr);
    default:
        return fail(pr, "internal: bad preread state");
    }
}

/* Extension { ExtensionType extension_type; opaque extension_data<0..2^16-1>; } is
 * complete: choose how to read its data. RFC 8446 §4.2: "There MUST NOT be more than one
 * extension of the same type in a given extension block." */
static enum dp_verdict
ext_header(struct dp_preread *pr)
{
    unsigned type = be16(pr->buf);
    size_t n = be16(pr->buf + 2);

    if (n > pr->left) {
        return fail(pr, "an extension overruns the ClientHello");
    }
    pr->ext = n;
    if (type == TLS_EXT_SERVER_NAME) {
        if (pr->flags & DP_PREREAD_F_SNI) {
            return fail(pr, "duplicate server_name extension");
        }
        pr->flags |= DP_PREREAD_F_SNI;
        return ext_field(pr, sw_sni_len, 2, DST_BUF);
    }
    if (type == TLS_EXT_ALPN) {
        if (pr->flags & DP_PREREAD_F_ALPN) {
            return fail(pr, "duplicate ALPN extension");
        }
        pr->flags |= DP_PREREAD_F_ALPN;
        return ext_field(pr, sw_alpn_len, 2, DST_BUF);
    }
    pr->ext = 0;
    return field(pr, sw_ext_skip, n, DST_SKIP);
}

/* A field of the hello body is complete: check it and set up the next one. Returns
 * DP_AGAIN (go on), DP_NEXT (the hello ended) or DP_ERROR. RFC 8446 §4.1.2. */
static enum dp_verdict
field_done(struct dp_preread *pr)
{
    const uint8_t *b = pr->buf;
    size_t n;

    switch (pr->sw_state) {
    case sw_hs_header:
        /* RFC 8446 §4: struct { HandshakeType msg_type; uint24 length; ... } Handshake. */
        if (b[0] != TLS_HT_CLIENT_HELLO) {
            return fail(pr, "first handshake message is not a ClientHello");
        }
        n = (size_t)b[1] << 16 | (size_t)b[2] << 8 | b[3];
        if (n > DP_PREREAD_HELLO_MAX - 4) {
            return fail(pr, "ClientHello too large");
        }
        pr->left = n;
        return field(pr, sw_version, 2, DST_BUF);
    case sw_version:
        if (b[0] != 3) {
            return fail(pr, "ClientHello version is not 3.x");
        }
        return field(pr, sw_random, 32, DST_SKIP);
    case sw_random:
        return field(pr, sw_sid_len, 1, DST_BUF);
    case sw_sid_len:
        if (b[0] > TLS_SESSION_ID_MAX) {
            return fail(pr, "session id too long");
        }
        return field(pr, sw_sid, b[0], DST_SKIP);
    case sw_sid:
        return field(pr, sw_cs_len, 2, DST_BUF);
    case sw_cs_len:
        /* CipherSuite cipher_suites<2..2^16-2>: two bytes each. */
        n = be16(b);
        if (n < 2 || n % 2 != 0) {
            return fail(pr, "bad cipher_suites length");
        }
        return field(pr, sw_cs, n, DST_SKIP);
    case sw_cs:
        return field(pr, sw_cm_len, 1, DST_BUF);
    case sw_cm_len:
        /* opaque legacy_compression_methods<1..2^8-1>. */
        if (b[0] == 0) {
            return fail(pr, "no compression methods");
        }
        return field(pr, sw_cm, b[0], DST_SKIP);
    case sw_cm:
        /* RFC 5246 §7.4.1.2: a hello may end here, without extensions. */
        if (pr->left == 0) {
            return DP_NEXT;
        }
        return field(pr, sw_ext_len, 2, DST_BUF);
    case sw_ext_len:
        /* Extension extensions<...>: the block fills the rest of the hello exactly. */
        if (be16(b) != pr->left) {
            return fail(pr, "extensions length mismatch");
        }
        return next_ext(pr);
    case sw_ext_header:
        return ext_header(pr);
    case sw_ext_skip:
        return next_ext(pr);
    case sw_sni_len:
    case sw_sni_head:
    case sw_sni_host:
        return sni_field_done(pr);
    default:
        return alpn_field_done(pr);
    }
}

static void
field_copy(struct dp_preread *pr, const uint8_t *p, size_t n)
{
    switch (pr->dst) {
    case DST_BUF:
        memcpy(pr->buf + pr->got, p, n);
        break;
    case DST_SNI:
        memcpy(pr->sni + pr->got, p, n);
        break;
    case DST_ALPN:
        memcpy(pr->alpn + pr->alpn_len + 1 + pr->got, p, n);
        break;
    default:
        break;
    }
}

/* Runs the hello layer over record payload p..end. Returns DP_AGAIN when it consumed all of
 * it and needs more, DP_NEXT when the hello ended (*used: bytes consumed), or DP_ERROR. */
static enum dp_verdict
hello_parse(struct dp_preread *pr, const uint8_t *p, const uint8_t *end, size_t *used)
{
    const uint8_t *start = p;
    enum dp_verdict rc;
    size_t n;

    for (;;) {
        n = (size_t)(end - p) < pr->size ? (size_t)(end - p) : pr->size;
        field_copy(pr, p, n);
        p += n;
        pr->size -= n;
        pr->got += n;
        *used = (size_t)(p - start);
        if (pr->size != 0) {
            return DP_AGAIN;
        }
        rc = field_done(pr);
        if (rc != DP_AGAIN) {
            return rc;
        }
    }
}

/* One byte of a record header. RFC 8446 §5.1: struct { ContentType type;
 * ProtocolVersion legacy_record_version; uint16 length; ... } TLSPlaintext. */
static enum dp_verdict
record_header(struct dp_preread *pr, uint8_t c)
{
    const uint8_t *h = pr->hdr;
    size_t n;

    pr->hdr[pr->hdr_n++] = c;
    if (pr->records == 0 && pr->hdr_n == 1 && c != TLS_RT_HANDSHAKE) {
        return finish(pr, DP_DECLINED, "not TLS: the first byte is not a handshake record");
    }
    if (pr->records == 0 && pr->hdr_n == 2 && c != 3) {
        return finish(pr, DP_DECLINED, "not TLS: the record version is not 3.x");
    }
    if (pr->hdr_n < sizeof(pr->hdr)) {
        return DP_AGAIN;
    }
    pr->hdr_n = 0;
    pr->records++;
    n = be16(h + 3);
    /* "Handshake messages MUST NOT be interleaved with other record types." */
    if (h[0] != TLS_RT_HANDSHAKE) {
        return fail(pr, "a non-handshake record inside the ClientHello");
    }
    if (h[1] != 3) {
        return fail(pr, "record version is not 3.x");
    }
    /* "Implementations MUST NOT send zero-length fragments of Handshake types." */
    if (n == 0) {
        return fail(pr, "empty handshake record");
    }
    if (n > TLS_RECORD_MAX) {
        return fail(pr, "record too long");
    }
    pr->rec_left = n;
    return DP_AGAIN;
}

void
dp_preread_init(struct dp_preread *pr)
{
    memset(pr, 0, sizeof(*pr));
    pr->verdict = -1;
    pr->why = "";
    pr->sw_state = sw_hs_header;
    pr->dst = DST_BUF;
    pr->size = 4;
}

enum dp_verdict
dp_preread_feed(struct dp_preread *pr, const uint8_t *p, const uint8_t *end)
{
    enum dp_verdict rc;
    size_t n, used;

    if (pr->verdict != -1) {
        return (enum dp_verdict)pr->verdict;
    }
    if ((size_t)(end - p) < pr->seen) {
        return fail(pr, "preread buffer shorter than before");
    }
    /* Bytes past DP_PREREAD_BUF_MAX are never needed: the verdict must not depend on how
     * much the caller happened to peek. */
    if ((size_t)(end - p) > DP_PREREAD_BUF_MAX) {
        end = p + DP_PREREAD_BUF_MAX;
    }
    p += pr->seen;
    while (p < end) {
        if (pr->rec_left == 0) {
            rc = record_header(pr, *p++);
            pr->seen++;
            if (rc != DP_AGAIN) {
                return rc;
            }
            continue;
        }
        n = (size_t)(end - p) < pr->rec_left ? (size_t)(end - p) : pr->rec_left;
        rc = hello_parse(pr, p, p + n, &used);
        p += used;
        pr->seen += used;
        pr->rec_left -= used;
        if (rc == DP_ERROR) {
            return rc;
        }
        if (rc == DP_NEXT) {
            /* Nothing may follow the ClientHello in its record: the client's next
             * handshake message comes after the server's reply (RFC 8446 §5.1: handshake
             * messages MUST NOT span key changes). */
            if (pr->rec_left != 0) {
                return fail(pr, "data after the ClientHello in its record");
            }
            return finish(pr, DP_NEXT, "");
        }
    }
    if (pr->seen >= DP_PREREAD_BUF_MAX) {
        return fail(pr, "ClientHello too large");
    }
    return DP_AGAIN;
}

const char *
dp_preread_sni(const struct dp_preread *pr)
{
    return pr->sni_len != 0 ? pr->sni : NULL;
}

const uint8_t *
dp_preread_alpn(const struct dp_preread *pr, size_t *len)
{
    *len = pr->alpn_len;
    return (pr->flags & DP_PREREAD_F_ALPN) ? pr->alpn : NULL;
}

bool
dp_preread_alpn_has(const struct dp_preread *pr, const char *proto, size_t len)
{
    size_t i = 0;

    while (i < pr->alpn_len) {
        size_t n = pr->alpn[i];

        if (n == len && memcmp(pr->alpn + i + 1, proto, len) == 0) {
            return true;
        }
        i += 1 + n;
    }
    return false;
}

const char *
dp_preread_why(const struct dp_preread *pr)
{
    return pr->why != NULL ? pr->why : "";
}
