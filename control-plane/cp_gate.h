/* The cluster gate: the public cluster_listen socket, in front of the sync server.
 *
 * nng 1.5.2 never times out a TLS handshake that waits for a ClientHello, has no limit on
 * connections that have not finished it, and cannot adopt a socket accepted by someone
 * else (issue 14, defect 3). So the gate accepts, enforces cluster_max_pending (a new
 * connection displaces the oldest one still in its handshake) and the absolute
 * cluster_handshake_timeout with an st_connguard, and relays the bytes of each
 * connection, untouched, to the sync server's nng listener on 127.0.0.1 (TLS stays
 * between the DP and nng). The sync server reports each verified pipe by the local port
 * of the gate's connection to nng (the pipe's remote address), which also gives the
 * DP's own address back for the registry and the logs.
 *
 * One thread with epoll; each direction of a connection holds a buffer only while bytes
 * wait in it (at most CP_GATE_BUF), and reads stop while it is full. */
#ifndef STRAIT_CP_GATE_H
#define STRAIT_CP_GATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct cp_gate;
struct st_conf;
struct st_err;

/* Listens on conf->cluster_listen (its one address) and relays to 127.0.0.1:backend_port.
 * conf must outlive the gate. Returns 0 with *out to stop with cp_gate_stop and free
 * with cp_gate_free, or a negative code with err filled. */
int cp_gate_start(const struct st_conf *conf, uint16_t backend_port, struct cp_gate **out,
                  struct st_err *err);

/* The connection whose relay to the backend has local port `port` finished its
 * handshake (a verified pipe): it no longer counts toward cluster_max_pending and has no
 * deadline. Returns false when the gate has no such connection. Thread-safe. */
bool cp_gate_verified(struct cp_gate *g, uint16_t port);

/* The address of the peer behind the relay with local port `port`. Returns false (out
 * untouched) when the gate has no such connection. Thread-safe. */
bool cp_gate_peer(struct cp_gate *g, uint16_t port, struct sockaddr_storage *out);

/* Stops the thread and closes the listener and every connection (the backend sees them
 * end). The gate still answers the two calls above (false). NULL is a no-op. */
void cp_gate_stop(struct cp_gate *g);

/* Frees a stopped gate. NULL is a no-op. */
void cp_gate_free(struct cp_gate *g);

#endif
