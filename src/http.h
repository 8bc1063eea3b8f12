/*
 * http.h — HTTP/1.x request framing (RFC 9112), pure: bytes in, a parsed
 * request head, body framing, or the status to refuse it with. No I/O; the
 * server in httpd.c feeds it and the fuzzer drives it directly.
 *
 * Request head, as accepted:
 *   *(CRLF) method SP request-target SP "HTTP/1." DIGIT CRLF
 *   *( field-name ":" OWS field-value OWS CRLF )
 *   CRLF
 * Bare LF ends a line as CRLF does; a bare CR, NUL or other control byte
 * (but HTAB in values) is refused, as are whitespace before the colon and
 * obsolete line folding. request-target is origin-form ("/path?query"),
 * "*" (OPTIONS) or absolute-form ("http://host/path", whose authority then
 * stands for Host). Bytes >= 0x80 in the target are kept (routes compare
 * bytes; non-UTF-8 ones simply match nothing).
 *
 * Framing (the smuggling rules): Content-Length is digits only; several of
 * them (headers or a list) must agree. Transfer-Encoding must be exactly
 * "chunked" (other codings: 501), never beside Content-Length, never in an
 * HTTP/1.0 request. An HTTP/1.1 request needs exactly one Host.
 *
 * Chunked bodies: hex size (at most 16 digits), optional ";ext", CRLF, data,
 * CRLF; a zero size ends it, then trailer lines (read and dropped) and an
 * empty line.
 */
#ifndef VARIET_HTTP_H
#define VARIET_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    HTTP_OTHER = 0, /* a valid token we do not route (PUT, DELETE, ...) */
    HTTP_GET,
    HTTP_HEAD,
    HTTP_POST,
    HTTP_OPTIONS,
} http_method_t;

#define HTTP_MAX_HEADERS 128

typedef struct {
    const char *name, *value; /* NUL-terminated, into the head's storage */
} http_header_t;

typedef struct {
    http_method_t method;
    const char *method_name; /* as sent */
    const char *target;      /* request-target as sent (origin-form for absolute-form) */
    const char *path;        /* target up to '?' */
    const char *query;       /* after '?', NULL when none */
    const char *host;        /* Host (or the absolute-form authority); NULL when none */
    int minor;               /* HTTP/1.<minor>: 0 or 1 */
    http_header_t headers[HTTP_MAX_HEADERS];
    size_t n_headers;
    bool keep_alive;         /* after this request (version default and Connection) */
    bool chunked;            /* Transfer-Encoding: chunked */
    bool expect_continue;    /* Expect: 100-continue */
    uint64_t content_length; /* 0 when neither length nor chunked */
    char *store, *aux;       /* own every string above */
} http_head_t;

/* Find the end of a request head in data[0..len): the offset just past its
 * blank line, or 0 when it is not complete yet. `*scan` (start at 0) keeps
 * the position already searched, so a head trickled byte by byte costs
 * linear time. */
size_t http_head_end(const char *data, size_t len, size_t *scan);

/* Parse a complete head (data[0..len), as delimited by http_head_end).
 * Returns 0 with *h filled (free with http_head_free), or the HTTP status
 * to answer (400, 413, 417, 431, 501, 505) with a one-line reason in err.
 * max_body: a Content-Length above it gets 413 at once. */
int http_parse_head(const char *data, size_t len, uint64_t max_body, http_head_t *h, char *err, size_t errlen);
void http_head_free(http_head_t *h);

/* Value of header `name` (case-insensitive; the first one), or NULL. */
const char *http_head_get(const http_head_t *h, const char *name);

/* Chunked decoder: feed any split of the body's bytes. */
typedef struct {
    int state;
    uint64_t left;   /* data bytes left in the current chunk */
    uint64_t total;  /* decoded so far */
    uint64_t max;    /* body limit: 413 past it */
    size_t line;     /* bytes of the current size/trailer line */
    size_t trailer;  /* trailer bytes so far (bounded by max_trailer) */
    size_t max_trailer;
    int digits;
} http_chunked_t;

void http_chunked_init(http_chunked_t *c, uint64_t max_body, size_t max_trailer);
/* Decode data[0..len). Body bytes are passed to emit(ud, p, n) (pointers
 * into data). Returns the bytes consumed (all of them unless the body ended
 * inside data: then the bytes after it are left, e.g. a pipelined request),
 * or -status (-400 bad framing, -413 too large, -431 trailers too large)
 * with err set. http_chunked_done() says whether the body is complete. */
long http_chunked_feed(http_chunked_t *c, const char *data, size_t len,
                       void (*emit)(void *ud, const char *p, size_t n), void *ud, char *err, size_t errlen);
bool http_chunked_done(const http_chunked_t *c);

/* Value of `key` in a query string ("a=1&tail=20"), copied into out (no
 * percent-decoding; cap includes the NUL). false when absent or too long. */
bool http_query_get(const char *query, const char *key, char *out, size_t cap);

/* Reason phrase of a status ("Not Found"); "Unknown" for others. */
const char *http_reason(int code);

#endif
