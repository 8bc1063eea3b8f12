/*
 * httpd.c — HTTP/1.1 server on bufferevents (see httpd.h).
 *
 * A connection is a small state machine: HEAD (waiting for a request head,
 * under the header deadline) → BODY (Content-Length or chunked, idle
 * timeout) → HANDLING (the handler has the request; the socket is still
 * read, so a hang-up is seen, but pipelined bytes are left in the buffer)
 * → FLUSH (the answer is queued; once written, back to HEAD for the next
 * request, or closed). One timer per connection serves the deadline, the
 * body's idle timeout, the probe of a half-closed client and the deferred
 * free: connections are freed from the timer, never inside a callback
 * that may still touch them.
 */
#include "httpd.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

typedef enum { S_HEAD, S_BODY, S_HANDLING, S_FLUSH } cstate_t;

typedef struct conn conn_t;

struct httpd_req {
    conn_t *c;
    http_head_t h;
    struct evbuffer *body;
    http_chunked_t ch;
    uint64_t body_left;
    struct evbuffer *oh; /* response headers, "Name: value\r\n" each */
    int64_t out_len;     /* Content-Length added by the handler, else -1 */
    bool started, chunked_out, done;
    httpd_close_cb on_close;
    void *close_arg;
};

struct conn {
    LIST_ENTRY(conn) link;
    httpd_t *d;
    struct bufferevent *bev;
    int fd;
    cstate_t state;
    size_t scan;          /* http_head_end's search position */
    struct event *timer;
    httpd_req_t *req;
    bool eof;             /* the client closed its sending side */
    bool close_after;     /* close once the answer is written */
    bool dead;            /* freed at the next timer tick */
    bool waited_bytes;    /* bytes of the current head have arrived */
    bool refused;         /* answered by the server itself: unread bytes may follow */
    bool lingering;       /* answer out, sending side shut: reading what is left */
    double probe_delay;   /* next probe of a half-closed client, seconds */
};

struct httpd {
    struct event_base *base;
    httpd_opts_t o;
    httpd_handler cb;
    void *arg;
    struct evconnlistener *lev;
    int port;
    int reserve_fd;
    struct event *resume;
    bool paused;
    double warned_at;
    uint64_t errs_unlogged;
    LIST_HEAD(, conn) conns;
    httpd_stats_t st;
    char date[64];
    time_t date_at;
};

static void conn_kill(conn_t *c);
static void process(conn_t *c);

/* ---------- timers ---------- */

static void timer_in(conn_t *c, double s)
{
    struct timeval tv = {.tv_sec = (time_t)s, .tv_usec = (suseconds_t)((s - floor(s)) * 1e6)};
    evtimer_add(c->timer, &tv);
}

static void conn_free(conn_t *c)
{
    httpd_t *d = c->d;
    LIST_REMOVE(c, link);
    d->st.open--;
    if (c->req) {
        http_head_free(&c->req->h);
        evbuffer_free(c->req->body);
        evbuffer_free(c->req->oh);
        free(c->req);
    }
    event_free(c->timer);
    bufferevent_free(c->bev); /* closes the socket */
    free(c);
    /* room again below max_connections or after EMFILE: accept at once */
    if (d->paused && d->resume && !evtimer_pending(d->resume, NULL)) {
        struct timeval tv = {0, 0};
        evtimer_add(d->resume, &tv);
    }
}

/* ---------- writing ---------- */

static const char *date_now(httpd_t *d)
{
    time_t t = time(NULL);
    if (t != d->date_at) {
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(d->date, sizeof d->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        d->date_at = t;
    }
    return d->date;
}

static bool keep_alive(const httpd_req_t *r)
{
    return r->h.keep_alive && !r->c->close_after;
}

static void write_head(httpd_req_t *r, int code, int64_t len, bool chunked)
{
    conn_t *c = r->c;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (!keep_alive(r) || (len < 0 && !chunked))
        c->close_after = true;
    evbuffer_add_printf(out, "HTTP/1.%d %d %s\r\nDate: %s\r\n", r->h.minor, code, http_reason(code),
                        date_now(c->d));
    evbuffer_add_buffer(out, r->oh);
    /* a 304 has no body by definition; a length would describe the cached one */
    if (len >= 0 && code != 304)
        evbuffer_add_printf(out, "Content-Length: %lld\r\n", (long long)len);
    else if (chunked)
        evbuffer_add(out, "Transfer-Encoding: chunked\r\n", 28);
    if (c->close_after)
        evbuffer_add(out, "Connection: close\r\n\r\n", 21);
    else if (r->h.minor == 0)
        evbuffer_add(out, "Connection: keep-alive\r\n\r\n", 26);
    else
        evbuffer_add(out, "\r\n", 2);
    r->started = true;
}

/* The answer is queued: FLUSH until it is written (on_write). */
static void finish(httpd_req_t *r)
{
    conn_t *c = r->c;
    r->done = true;
    c->state = S_FLUSH;
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        /* nothing left to write (a HEAD answer already flushed): go on now */
        bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
    }
}

void httpd_add_header(httpd_req_t *r, const char *name, const char *value)
{
    if (r->started || r->done)
        return;
    if (!strcasecmp(name, "Content-Length")) {
        int64_t v;
        if (parse_i64(value, 0, INT64_MAX, &v))
            r->out_len = v;
        return;
    }
    if (!strcasecmp(name, "Transfer-Encoding") || !strcasecmp(name, "Connection") ||
        !strcasecmp(name, "Keep-Alive") || !strcasecmp(name, "Date"))
        return;
    /* a value with CR/LF would split the header: drop it */
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return;
    evbuffer_add_printf(r->oh, "%s: %s\r\n", name, value);
}

void httpd_reply(httpd_req_t *r, int code, const void *body, size_t len)
{
    if (r->started || r->done)
        return;
    write_head(r, code, (int64_t)len, false);
    if (r->h.method != HTTP_HEAD && len)
        evbuffer_add(bufferevent_get_output(r->c->bev), body, len);
    finish(r);
}

void httpd_reply_start(httpd_req_t *r, int code)
{
    if (r->started || r->done)
        return;
    bool fixed = r->out_len >= 0;
    r->chunked_out = !fixed && r->h.minor == 1 && r->h.method != HTTP_HEAD;
    write_head(r, code, fixed ? r->out_len : -1, r->chunked_out);
}

void httpd_reply_chunk(httpd_req_t *r, struct evbuffer *data)
{
    size_t n = evbuffer_get_length(data);
    if (!r->started || r->done || r->h.method == HTTP_HEAD) {
        evbuffer_drain(data, n);
        return;
    }
    if (!n)
        return;
    struct evbuffer *out = bufferevent_get_output(r->c->bev);
    if (r->chunked_out) {
        evbuffer_add_printf(out, "%zx\r\n", n);
        evbuffer_add_buffer(out, data);
        evbuffer_add(out, "\r\n", 2);
    } else {
        evbuffer_add_buffer(out, data);
    }
}

void httpd_reply_end(httpd_req_t *r)
{
    if (r->done)
        return;
    if (!r->started)
        httpd_reply_start(r, 200);
    if (r->chunked_out)
        evbuffer_add(bufferevent_get_output(r->c->bev), "0\r\n\r\n", 5);
    finish(r);
}

void httpd_abort(httpd_req_t *r)
{
    if (r->done)
        return;
    r->done = true;
    conn_kill(r->c);
}

/* An answer of the server's own (framing errors, timeouts), then close. */
static void refuse(conn_t *c, int code, const char *why)
{
    httpd_t *d = c->d;
    static const int codes[] = {400, 408, 413, 417, 431, 501, 505};
    int k = 0;
    while (k < 7 && codes[k] != code)
        k++;
    d->st.refused[k]++;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char body[512];
    const char *type = code >= 500 ? "server_error" : "invalid_request_error";
    int n = snprintf(body, sizeof body,
                     "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,\"code\":\"http_%d\"}}\n", why,
                     type, code);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                        "Connection: close\r\n\r\n%s",
                        code, http_reason(code), date_now(d), n, body);
    c->close_after = true;
    c->refused = true;
    c->state = S_FLUSH;
    if (c->req && !c->req->done) {
        c->req->done = true; /* not the handler's: it never saw it */
    }
    bufferevent_disable(c->bev, EV_READ);
}

/* ---------- reading ---------- */

static void emit_body(void *ud, const char *p, size_t n)
{
    httpd_req_t *r = ud;
    evbuffer_add(r->body, p, n);
}

/* The client has sent EOF while its request is handled: HTTP/1.0 has no
 * interim responses, so EOF counts as gone; HTTP/1.1 gets the probe. */
static void eof_while_handling(conn_t *c)
{
    if (c->req->h.minor == 0) {
        conn_kill(c);
        return;
    }
    bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    c->probe_delay = 0.01;
    timer_in(c, c->probe_delay);
}

static void dispatch(conn_t *c)
{
    evtimer_del(c->timer);
    c->state = S_HANDLING;
    httpd_req_t *r = c->req;
    c->d->cb(r, c->d->arg);
    /* a pipelined request behind an EOF seen earlier */
    if (!c->dead && c->eof && c->state == S_HANDLING && c->req == r && !r->started && !r->done)
        eof_while_handling(c);
}

/* A head is complete in the input: parse it, start the body. false when
 * the connection is done (refused). */
static bool start_request(conn_t *c, const char *d, size_t end)
{
    httpd_t *s = c->d;
    char err[256];
    httpd_req_t *r = xcalloc(1, sizeof *r); /* owned by c, freed by next_request/conn_free */
    int st = http_parse_head(d, end, s->o.max_body, &r->h, err, sizeof err);
    evbuffer_drain(bufferevent_get_input(c->bev), end);
    c->scan = 0;
    r->c = c;
    r->body = evbuffer_new();
    r->oh = evbuffer_new();
    r->out_len = -1;
    c->req = r;
    if (st) {
        r->h.minor = 1;
        refuse(c, st, err);
        return false;
    }
    s->st.requests++;
    if (r->h.chunked)
        http_chunked_init(&r->ch, s->o.max_body, s->o.max_header);
    r->body_left = r->h.content_length;
    if (r->h.chunked || r->body_left) {
        if (r->h.expect_continue && r->h.minor == 1)
            bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        c->state = S_BODY;
        timer_in(c, s->o.header_timeout_s);
    }
    return true;
}

static void process(conn_t *c)
{
    httpd_t *d = c->d;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (c->lingering) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    while (!c->dead) {
        if (c->state == S_HEAD) {
            size_t n = evbuffer_get_length(in);
            if (!n)
                return;
            c->waited_bytes = true;
            size_t lim = d->o.max_header;
            size_t look = n < lim ? n : lim;
            const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
            size_t end = http_head_end(p, look, &c->scan);
            if (!end) {
                if (look == lim)
                    refuse(c, 431, "request header larger than max_header");
                else if (c->eof)
                    conn_kill(c); /* half a head, and the client has stopped sending */
                return;
            }
            if (!start_request(c, p, end))
                return;
            if (c->state == S_HEAD) /* no body */
                dispatch(c);
            continue;
        }
        if (c->state == S_BODY) {
            httpd_req_t *r = c->req;
            if (r->h.chunked) {
                char err[128];
                while (evbuffer_get_length(in) && !http_chunked_done(&r->ch)) {
                    struct evbuffer_iovec v;
                    evbuffer_peek(in, -1, NULL, &v, 1);
                    long used = http_chunked_feed(&r->ch, v.iov_base, v.iov_len, emit_body, r, err, sizeof err);
                    if (used < 0) {
                        refuse(c, (int)-used, err);
                        return;
                    }
                    evbuffer_drain(in, (size_t)used);
                }
                if (!http_chunked_done(&r->ch)) {
                    timer_in(c, d->o.header_timeout_s); /* idle timeout: progress re-arms it */
                    return;
                }
            } else {
                size_t n = evbuffer_get_length(in);
                size_t take = (uint64_t)n < r->body_left ? n : (size_t)r->body_left;
                evbuffer_remove_buffer(in, r->body, take);
                r->body_left -= take;
                if (r->body_left) {
                    timer_in(c, d->o.header_timeout_s);
                    return;
                }
            }
            dispatch(c);
            continue;
        }
        /* HANDLING / FLUSH: pipelined bytes wait; stop reading past a bound */
        if (evbuffer_get_length(in) > d->o.max_header + 65536)
            bufferevent_disable(c->bev, EV_READ);
        return;
    }
}

static void next_request(conn_t *c)
{
    httpd_req_t *r = c->req;
    c->req = NULL;
    if (r) {
        http_head_free(&r->h);
        evbuffer_free(r->body);
        evbuffer_free(r->oh);
        free(r);
    }
    if (c->refused && !c->eof) {
        /* the client may still be sending what we refused: closing now
         * would reset the connection and could destroy the answer before it
         * is read. Shut our side, read and drop the rest for a while. */
        c->lingering = true;
        shutdown(c->fd, SHUT_WR);
        evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
        bufferevent_enable(c->bev, EV_READ);
        timer_in(c, 2.0);
        return;
    }
    if (c->close_after || (c->eof && !evbuffer_get_length(bufferevent_get_input(c->bev)))) {
        conn_kill(c);
        return;
    }
    c->state = S_HEAD;
    c->waited_bytes = false;
    timer_in(c, c->d->o.header_timeout_s); /* the deadline for the next head, and keep-alive idle */
    if (!c->eof)
        bufferevent_enable(c->bev, EV_READ);
    process(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    process(arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    conn_t *c = arg;
    if (c->dead || c->state != S_FLUSH || evbuffer_get_length(bufferevent_get_output(bev)))
        return;
    next_request(c);
}

/* A client that sent EOF while its request is handled: closed for good,
 * or only for writing? Once the probe (100 Continue) is out, a closed
 * socket answers with a reset and the TCP state becomes CLOSE. */
static bool peer_reset(int fd)
{
    struct tcp_info ti;
    socklen_t l = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) == 0 && ti.tcpi_state == TCP_CLOSE)
        return true;
    int e = 0;
    l = sizeof e;
    return getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) == 0 && e != 0;
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    conn_t *c = arg;
    if (c->dead)
        return;
    if (c->lingering || (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))) {
        conn_kill(c);
        return;
    }
    if (!(what & BEV_EVENT_EOF))
        return;
    c->eof = true;
    switch (c->state) {
    case S_HEAD:
    case S_BODY:
        conn_kill(c); /* nothing complete to answer */
        return;
    case S_HANDLING:
        if (!c->req->started) /* once started, a write to a closed client fails */
            eof_while_handling(c);
        return;
    case S_FLUSH:
        return; /* closed once written */
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;
    httpd_t *d = c->d;
    if (c->dead) {
        conn_free(c);
        return;
    }
    if (c->lingering) {
        conn_kill(c);
        return;
    }
    switch (c->state) {
    case S_HEAD:
        if (!c->waited_bytes && !evbuffer_get_length(bufferevent_get_input(c->bev))) {
            conn_kill(c); /* idle keep-alive: close quietly */
            return;
        }
        d->st.head_timeouts++;
        refuse(c, 408, "request header not complete within header_timeout");
        return;
    case S_BODY:
        refuse(c, 408, "request body stalled for header_timeout");
        return;
    case S_HANDLING:
        if (!c->eof || !c->req || c->req->started)
            return;
        if (peer_reset(c->fd)) {
            conn_kill(c);
            return;
        }
        c->probe_delay = c->probe_delay < 0.5 ? c->probe_delay * 4 : 1.0;
        timer_in(c, c->probe_delay);
        return;
    case S_FLUSH:
        return;
    }
}

/* Close: run the request's close callback when the handler has it and its
 * answer is not complete, and free at the next timer tick. */
static void conn_kill(conn_t *c)
{
    if (c->dead)
        return;
    c->dead = true;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    httpd_req_t *r = c->req;
    if (r && !r->done && r->on_close) {
        r->done = true;
        r->on_close(r, r->close_arg);
    }
    struct timeval tv = {0, 0};
    evtimer_add(c->timer, &tv);
}

/* ---------- accepting ---------- */

static const char busy_503[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    "Connection: close\r\nContent-Length: 120\r\n\r\n"
    "{\"error\":{\"message\":\"too many connections, retry later\",\"type\":\"server_error\",\"param\":null,"
    "\"code\":\"too_many_connections\"}}\n";

/* Answer 503 on a connection we cannot keep and close it. What the client
 * already sent is read first, so the close is a FIN, not a reset that could
 * destroy the answer before the client reads it. */
static void shed(int fd)
{
    char tmp[4096];
    while (recv(fd, tmp, sizeof tmp, MSG_DONTWAIT) > 0) {
    }
    ssize_t w = send(fd, busy_503, sizeof busy_503 - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)w;
    shutdown(fd, SHUT_WR);
    close(fd);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    httpd_t *d = arg;
    d->paused = false; /* accepting works again: a later failure is a new burst */
    if (d->st.open >= d->o.max_connections) {
        d->st.rejected++;
        shed(fd);
        return;
    }
    d->st.accepted++;
    conn_t *c = xcalloc(1, sizeof *c); /* owned by d->conns, freed by conn_free */
    c->d = d;
    c->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        close(fd);
        free(c);
        return;
    }
    c->timer = evtimer_new(d->base, on_timer, c);
    LIST_INSERT_HEAD(&d->conns, c, link);
    d->st.open++;
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    if (d->o.write_timeout_s > 0) {
        struct timeval wt = {.tv_sec = (time_t)d->o.write_timeout_s,
                             .tv_usec = (suseconds_t)((d->o.write_timeout_s - floor(d->o.write_timeout_s)) * 1e6)};
        bufferevent_set_timeouts(c->bev, NULL, &wt);
    }
    bufferevent_enable(c->bev, EV_READ);
    c->state = S_HEAD;
    timer_in(c, d->o.header_timeout_s);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    httpd_t *d = arg;
    if (d->lev)
        evconnlistener_enable(d->lev);
}

/* accept() failed for want of descriptors (or memory): stop listening for
 * 100 ms rather than spin on a listener that stays readable, shed a few
 * waiting clients with a 503 through the reserved descriptor, and say so
 * once per burst (then at most once a minute while it lasts). */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    httpd_t *d = arg;
    int e = EVUTIL_SOCKET_ERROR();
    d->st.accept_errors++;
    d->errs_unlogged++;
    double now = now_s();
    /* a new burst, at most every 10 s (accepts that flap between working and
     * failing are one burst), and a reminder every minute while it lasts */
    if ((!d->paused && now - d->warned_at > 10) || now - d->warned_at > 60) {
        fprintf(stderr, "variet: accept: %s (%d connections open, %llu failures); pausing new connections\n",
                strerror(e), d->st.open, (unsigned long long)d->errs_unlogged);
        d->warned_at = now;
        d->errs_unlogged = 0;
    }
    d->paused = true;
    evconnlistener_disable(l);
    if (e == EMFILE || e == ENFILE) {
        for (int k = 0; k < 64 && d->reserve_fd >= 0; k++) {
            close(d->reserve_fd);
            d->reserve_fd = -1;
            int fd = accept4(evconnlistener_get_fd(l), NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0) {
                d->st.shed++;
                shed(fd);
            }
            d->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                break;
        }
    }
    struct timeval tv = {0, 100000};
    evtimer_add(d->resume, &tv);
}

int httpd_new(struct event_base *base, const httpd_opts_t *o, const char *host, int port, httpd_handler h,
              void *arg, httpd_t **out, char *err, size_t errlen)
{
    *out = NULL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int gr = getaddrinfo(host, ps, &hints, &ai);
    if (gr) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, gai_strerror(gr));
        return -EINVAL;
    }
    httpd_t *d = xcalloc(1, sizeof *d); /* owned by the caller: httpd_free */
    d->base = base;
    d->o = *o;
    d->cb = h;
    d->arg = arg;
    d->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    LIST_INIT(&d->conns);
    d->resume = evtimer_new(base, on_resume, d);
    d->lev = evconnlistener_new_bind(base, on_accept, d,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 511,
                                     ai->ai_addr, (int)ai->ai_addrlen);
    int e = errno;
    freeaddrinfo(ai);
    if (!d->lev) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(e));
        httpd_free(&d);
        return -(e ? e : EADDRINUSE);
    }
    evconnlistener_set_error_cb(d->lev, on_accept_error);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evconnlistener_get_fd(d->lev), (struct sockaddr *)&ss, &sl) == 0)
        d->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    *out = d;
    return 0;
}

void httpd_free(httpd_t **dp)
{
    httpd_t *d = *dp;
    if (!d)
        return;
    if (d->lev)
        evconnlistener_free(d->lev);
    d->lev = NULL;
    conn_t *c;
    while ((c = LIST_FIRST(&d->conns))) {
        conn_kill(c);
        conn_free(c);
    }
    if (d->resume)
        event_free(d->resume);
    if (d->reserve_fd >= 0)
        close(d->reserve_fd);
    free(d);
    *dp = NULL;
}

int httpd_port(const httpd_t *d) { return d->port; }
void httpd_stats(const httpd_t *d, httpd_stats_t *st) { *st = d->st; }
const http_head_t *httpd_head(const httpd_req_t *r) { return &r->h; }
struct evbuffer *httpd_body(const httpd_req_t *r) { return r->body; }
int httpd_fd(const httpd_req_t *r) { return r->c->fd; }
size_t httpd_pending(const httpd_req_t *r) { return evbuffer_get_length(bufferevent_get_output(r->c->bev)); }
bool httpd_peer_closed(const httpd_req_t *r) { return r->c->eof; }

void httpd_on_close(httpd_req_t *r, httpd_close_cb cb, void *arg)
{
    r->on_close = cb;
    r->close_arg = arg;
}
