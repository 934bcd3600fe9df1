/* Logging from worker threads (DESIGN.md "Data plane": a worker never blocks on a log
 * write). Each worker formats its lines into its own ring of fixed-size slots, with one
 * producer (the worker) and one consumer (the logger thread), which drains every ring
 * to st_log(). A full ring drops the line and counts it; the logger reports the count.
 * Lines keep st_log's format, but carry the logger thread's id and drain time. */
#ifndef STRAIT_DP_LOG_H
#define STRAIT_DP_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_log.h"

#define DP_LOG_LINE  512 /* bytes of text per line, NUL included; longer lines are cut */
#define DP_LOG_SLOTS 256 /* lines a ring holds (a power of two) */

struct st_err;
struct dp_log_ring;
struct dp_logger;

/* Allocates an empty ring. Returns NULL when memory is exhausted. */
struct dp_log_ring *dp_log_ring_new(void);

/* NULL is a no-op. No thread may use r any more. */
void dp_log_ring_free(struct dp_log_ring *r);

/* Formats one line into r, or drops and counts it when r is full. Never blocks: at
 * most a non-blocking write to the logger's eventfd when r was empty. r NULL (no
 * logger: tools, tests) logs through st_log() directly. Only r's producer calls it. */
void dp_log(struct dp_log_ring *r, enum st_log_level level, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Takes the oldest line out of r into text[DP_LOG_LINE]. Returns false when r is
 * empty. Only r's consumer calls it. */
bool dp_log_ring_pop(struct dp_log_ring *r, enum st_log_level *level, int *err, char *text);

/* Lines dropped so far because r was full. Any thread. */
uint64_t dp_log_ring_dropped(const struct dp_log_ring *r);

/* Creates n rings and starts the thread that drains them. Returns NULL with err filled.
 * Free with dp_logger_free() once no worker uses its ring. */
struct dp_logger *dp_logger_new(size_t n, struct st_err *err);

/* Ring i (< n) for one worker. */
struct dp_log_ring *dp_logger_ring(struct dp_logger *lg, size_t i);

/* Stops the thread after a last drain, then frees the rings. NULL is a no-op. */
void dp_logger_free(struct dp_logger *lg);

#endif
