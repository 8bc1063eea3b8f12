/*
 * util.h — small shared helpers: allocation that aborts on OOM (a bug-class
 * failure, per house style), a growable byte buffer with a ceiling, checked
 * number parsing, and atomic whole-file writes.
 */
#ifndef VARIET_UTIL_H
#define VARIET_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Abort on out-of-memory; never return NULL (for n > 0). Caller frees. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* asprintf that aborts on OOM; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Put a formatted context before the message already in err ("PREFIX: err"),
 * truncated to errlen. */
void err_prefix(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Growable buffer. `max` (0 = unlimited) caps len; appends past it fail
 * with -E2BIG and leave the buffer unchanged. Data is always NUL-terminated. */
typedef struct {
    char *data;
    size_t len, cap, max;
} buf_t;

void buf_init(buf_t *b, size_t max);
void buf_free(buf_t *b);
void buf_reset(buf_t *b);
int buf_append(buf_t *b, const void *p, size_t n);
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Remove the first n bytes. */
void buf_consume(buf_t *b, size_t n);

/* Parse a whole decimal string; false on junk, overflow or out of [min,max]. */
bool parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
bool parse_u64(const char *s, uint64_t max, uint64_t *out);
bool parse_f64(const char *s, double *out);
/* "64M", "1G", "512K", "1234": bytes. */
bool parse_size(const char *s, uint64_t *out);

/* Write `len` bytes to `path` atomically: temp file in the same folder,
 * fsync, rename, fsync of the folder. Returns 0 or -errno; err gets text. */
int file_write_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen);
/* mkdir -p of the folder that will hold `path` (nothing when it has no
 * folder part). 0, or -errno with the folder that could not be made in err. */
int file_make_parent(const char *path, char *err, size_t errlen);
/* Read a whole file (up to max bytes) into *out (caller frees). 0 or -errno. */
int file_read_all(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen);

/* Seconds on the monotonic clock. */
double now_s(void);

/* Format bytes as "12.34 MiB" into buf. */
const char *fmt_bytes(uint64_t n, char *buf, size_t cap);

#endif
