/* Types of the ClientHello preread parser, for modules that embed its context
 * (struct dp_session). The API is in dp_preread.h. */
#ifndef STRAIT_DP_PREREAD_T_H
#define STRAIT_DP_PREREAD_T_H

#include <stddef.h>
#include <stdint.h>

/* Largest ClientHello handshake message accepted, header included (4 + body). */
#define DP_PREREAD_HELLO_MAX 16384

/* Most bytes the parser ever needs from the socket: the largest hello plus the headers of
 * the records it may be split into. A caller that peeks into a buffer this large never sees
 * DP_AGAIN with a full buffer: the parser returns DP_ERROR first. */
#define DP_PREREAD_BUF_MAX (DP_PREREAD_HELLO_MAX + 1024)

/* Longest host_name kept (a DNS name is at most 253 characters without the final dot). */
#define DP_PREREAD_SNI_MAX 255

/* Bytes of the ALPN protocol list kept, in wire format (RFC 7301 §3.1). Protocols that do
 * not fit whole are validated but dropped, and DP_PREREAD_F_ALPN_TRUNCATED is set. */
#define DP_PREREAD_ALPN_MAX 256

#define DP_PREREAD_F_SNI            0x01u /* a server_name extension was seen */
#define DP_PREREAD_F_ALPN           0x02u /* an ALPN extension was seen */
#define DP_PREREAD_F_ALPN_TRUNCATED 0x04u /* the ALPN list was longer than alpn[] */

/* The parser's state; treat as opaque outside dp_preread.c, use dp_preread.h. */
struct dp_preread {
    size_t seen;      /* bytes of the caller's buffer already parsed */
    unsigned records; /* TLS records started */
    uint8_t hdr[5];   /* record header being gathered */
    uint8_t hdr_n;
    size_t rec_left; /* payload bytes left in the current record */

    unsigned sw_state; /* the ClientHello field being read (enum in dp_preread.c) */
    unsigned dst;      /* where the field's bytes go (enum in dp_preread.c) */
    size_t size;       /* bytes of the field still to read */
    size_t got;        /* bytes of the field read so far */
    size_t left;       /* bytes of the ClientHello body still to read */
    size_t ext;        /* bytes left in the current extension's data */
    uint8_t buf[4];    /* a numeric field being gathered */

    int verdict; /* enum dp_verdict once final, else -1 */
    const char *why;

    unsigned flags;
    size_t sni_len;
    size_t alpn_len;
    size_t alpn_pending; /* length of the protocol name being read */
    char sni[DP_PREREAD_SNI_MAX + 1];
    uint8_t alpn[DP_PREREAD_ALPN_MAX];
};

#endif
