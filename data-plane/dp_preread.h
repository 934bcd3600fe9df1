/* ClientHello preread: an incremental parser, with no I/O, of the TLS records a client sends
 * first, which extracts the SNI host name (RFC 6066 §3) and the ALPN protocol list
 * (RFC 7301 §3.1) before anything is read off the socket, so that the same bytes can still
 * go to OpenSSL (termination) or to the upstream untouched (passthrough).
 *
 * Feeding contract: the caller peeks (recv MSG_PEEK) into one buffer and passes the WHOLE
 * buffer, from the first byte the client sent, on every call. The parser remembers how much
 * of it it has parsed and only looks at the new bytes, so the total cost is linear however
 * the bytes trickle in. A buffer of DP_PREREAD_BUF_MAX bytes is always enough. */
#ifndef STRAIT_DP_PREREAD_H
#define STRAIT_DP_PREREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_preread-t.h"
#include "dp_verdict.h"

/* Resets *pr for a new connection. */
void dp_preread_init(struct dp_preread *pr);

/* Parses p..end: everything the client has sent so far (see the feeding contract above).
 * Returns:
 *   DP_AGAIN     the hello is not complete yet: peek again when more bytes arrive;
 *   DP_NEXT      the ClientHello is complete and valid: dp_preread_sni() and
 *                dp_preread_alpn() are available;
 *   DP_DECLINED  the client does not speak TLS (the first record is not a handshake record
 *                of version 3.x, e.g. plain HTTP or an SSLv2 hello);
 *   DP_ERROR     a malformed, oversized or truncated-by-contract ClientHello, or a buffer
 *                shorter than the one passed before.
 * A final verdict (anything but DP_AGAIN) is sticky: later calls return it again.
 * dp_preread_why() names the reason of DP_DECLINED and DP_ERROR. */
enum dp_verdict dp_preread_feed(struct dp_preread *pr, const uint8_t *p, const uint8_t *end);

/* The server_name host_name, lowercased and without a final dot, or NULL when the hello
 * had none. Valid after DP_NEXT, until *pr is reset. */
const char *dp_preread_sni(const struct dp_preread *pr);

/* The ALPN protocol list in wire format (each name prefixed by its length byte, as
 * SSL_select_next_proto() takes it) and its length in *len; NULL and 0 when the hello had
 * no ALPN extension. Valid after DP_NEXT, until *pr is reset. */
const uint8_t *dp_preread_alpn(const struct dp_preread *pr, size_t *len);

/* True when the ALPN list contains the protocol name `proto` (len bytes). */
bool dp_preread_alpn_has(const struct dp_preread *pr, const char *proto, size_t len);

/* Why the parser returned DP_DECLINED or DP_ERROR (a static string for the info log, e.g.
 * "SNI list length mismatch"), or "" otherwise. */
const char *dp_preread_why(const struct dp_preread *pr);

#endif
