/*
 * httpd.h — the gateway's HTTP/1.1 server: listener, connections and
 * responses on libevent bufferevents, with the request framing of http.h.
 *
 * What it guarantees, per connection:
 *   - a request head must be complete within header_timeout of when the
 *     server started waiting for it (accept, or the previous answer): a
 *     deadline, which bytes trickling in do not extend; an idle keep-alive
 *     connection is closed silently at the same deadline, a partial head
 *     gets 408. A body may pause at most header_timeout between bytes.
 *   - heads over max_header get 431, bodies over max_body 413, framing
 *     errors 400 (see http.h), all followed by closing the connection.
 *   - at most max_connections are open: the next ones are answered 503 and
 *     closed at once. When accept() fails for lack of file descriptors the
 *     listener pauses (100 ms steps) instead of spinning, answers waiting
 *     clients 503 through a reserved descriptor, and logs one line per
 *     burst; open connections keep being served.
 *   - a client that half-closes (shutdown(SHUT_WR)) after its request still
 *     gets its answer. A client that closed completely is told apart by a
 *     "100 Continue" interim response sent on the EOF (HTTP/1.1 clients
 *     must accept one): a closed socket answers it with a reset, which
 *     makes the request's close callback run.
 *   - an answer the client does not read for write_timeout drops it.
 *
 * Ownership: the server owns connections and requests. A request is the
 * handler's from the handler call until it completes the answer
 * (httpd_reply, httpd_reply_end, httpd_abort) or until its close callback
 * returns (the client went away first); it must not be used after. A
 * handler that does not answer before returning must set a close callback.
 */
#ifndef VARIET_HTTPD_H
#define VARIET_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

struct event_base;
struct evbuffer;
typedef struct httpd httpd_t;
typedef struct httpd_req httpd_req_t;

typedef struct {
    size_t max_header;       /* request head bytes (431 above) */
    uint64_t max_body;       /* request body bytes (413 above) */
    double header_timeout_s; /* deadline for a head; longest pause inside a body */
    double write_timeout_s;  /* longest time an answer may wait for the client to read */
    int max_connections;     /* open client connections at once */
} httpd_opts_t;

typedef struct {
    uint64_t accepted;       /* connections accepted */
    uint64_t rejected;       /* answered 503 at max_connections */
    uint64_t accept_errors;  /* accept() failures (EMFILE, ...) */
    uint64_t shed;           /* answered 503 through the reserved descriptor */
    uint64_t head_timeouts;  /* partial heads closed by the deadline */
    uint64_t requests;       /* request heads parsed */
    uint64_t refused[8];     /* framing errors by status: 400 408 413 417 431 501 505 other */
    int open;                /* connections open now */
} httpd_stats_t;

typedef void (*httpd_handler)(httpd_req_t *r, void *arg);
typedef void (*httpd_close_cb)(httpd_req_t *r, void *arg);

/* A server on `base` calling `h(req, arg)` for each complete request.
 * Listens on host:port (port 0: any; httpd_port says which). 0 or -errno
 * with err set. Free with httpd_free (closes every connection, running
 * close callbacks of requests not answered). */
int httpd_new(struct event_base *base, const httpd_opts_t *o, const char *host, int port, httpd_handler h,
              void *arg, httpd_t **out, char *err, size_t errlen);
void httpd_free(httpd_t **d);
int httpd_port(const httpd_t *d);
void httpd_stats(const httpd_t *d, httpd_stats_t *st);

/* The request (valid while the request is). */
const http_head_t *httpd_head(const httpd_req_t *r);
/* Its body (the server's buffer: read it, do not drain it). */
struct evbuffer *httpd_body(const httpd_req_t *r);
/* The client's socket (for TCP options), or -1. */
int httpd_fd(const httpd_req_t *r);
/* Bytes of the answer queued and not yet written to the socket (a
 * streaming handler holds back while a slow client has plenty). */
size_t httpd_pending(const httpd_req_t *r);
/* Has the client closed its sending side? It may be gone or only
 * half-closed; an open-ended stream (a log follow) takes it as gone. */
bool httpd_peer_closed(const httpd_req_t *r);

/* Called once if the client goes away before the answer is complete; r is
 * freed after it returns. */
void httpd_on_close(httpd_req_t *r, httpd_close_cb cb, void *arg);

/* Add a response header (before the answer starts). Content-Length,
 * Transfer-Encoding and Connection are the server's and ignored, except a
 * Content-Length given before httpd_reply_start, which fixes the length. */
void httpd_add_header(httpd_req_t *r, const char *name, const char *value);
/* The whole answer at once (Content-Length framing); r is done. */
void httpd_reply(httpd_req_t *r, int code, const void *body, size_t len);
/* A streamed answer: status and headers now, then chunks (moved out of
 * `data`), then the end (r is done). Chunked for HTTP/1.1 clients,
 * close-delimited for HTTP/1.0, fixed when a Content-Length was added. */
void httpd_reply_start(httpd_req_t *r, int code);
void httpd_reply_chunk(httpd_req_t *r, struct evbuffer *data);
void httpd_reply_end(httpd_req_t *r);
/* Close the connection now without completing the answer (headers are
 * out and it cannot be finished honestly); r is done. */
void httpd_abort(httpd_req_t *r);

#endif
