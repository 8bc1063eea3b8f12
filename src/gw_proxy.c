/*
 * gw_proxy.c — forwarding a request to its role's llama-server (see
 * gw_int.h). Streams: upstream header → reply start, every upstream read →
 * one chunk to the client, upstream end → reply end; the last bytes are
 * kept for the answer's timings (tokens, cache_n). At most -np + 1
 * upstream connections per role, idle ones pooled (llama-server serves
 * each, idle keep-alive ones included, on one of a few HTTP threads). A
 * client that goes away cancels its upstream request; a backend that dies
 * before answering gets the request back at the head of its queue (once),
 * after the first byte the stream ends with an SSE error event or a close.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>

#include "gw_int.h"
#include "util.h"

uint64_t gw__tail_num(const char *s, size_t n, const char *key)
{
    size_t k = strlen(key);
    uint64_t v = 0;
    for (size_t i = 0; i + k < n; i++) {
        if (memcmp(s + i, key, k) != 0)
            continue;
        size_t j = i + k;
        while (j < n && (s[j] == ' ' || s[j] == ':'))
            j++;
        uint64_t x = 0;
        bool any = false;
        while (j < n && s[j] >= '0' && s[j] <= '9') {
            x = x * 10 + (uint64_t)(s[j++] - '0');
            any = true;
        }
        if (any)
            v = x;
    }
    return v;
}

void gw__pool_clear(gw_role_t *r)
{
    for (size_t i = 0; i < r->n_pool; i++)
        evhttp_connection_free(r->pool[i]);
    r->n_pool = 0;
}

static struct evhttp_connection *pool_get(gw_role_t *r, bool fresh, bool *reused)
{
    *reused = false;
    if (r->n_pool && !fresh) {
        *reused = true;
        return r->pool[--r->n_pool];
    }
    struct evhttp_connection *c =
        evhttp_connection_base_new(r->g->base, NULL, "127.0.0.1", (unsigned short)backend_port(r->be));
    if (c)
        evhttp_connection_set_timeout(c, (int)ceil(r->g->reg->engine.upstream_timeout_s));
    return c;
}

static void pool_put(gw_role_t *r, struct evhttp_connection *c)
{
    if (backend_state(r->be) != BE_READY || (int)r->n_pool + r->inflight >= r->up_cap) {
        evhttp_connection_free(c);
        return;
    }
    if (r->n_pool == r->cap_pool) {
        r->cap_pool = r->cap_pool ? r->cap_pool * 2 : 8;
        r->pool = xrealloc(r->pool, r->cap_pool * sizeof *r->pool);
    }
    r->pool[r->n_pool++] = c;
}

static void nodelay(struct evhttp_connection *c)
{
    struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void keep_tail(gw_pend_t *p, struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    if (n >= GW_TAIL_KEEP) {
        struct evbuffer_ptr pos;
        evbuffer_ptr_set(b, &pos, n - GW_TAIL_KEEP, EVBUFFER_PTR_SET);
        evbuffer_copyout_from(b, &pos, p->tail, GW_TAIL_KEEP);
        p->tail_len = GW_TAIL_KEEP;
        return;
    }
    if (p->tail_len + n > GW_TAIL_KEEP) {
        size_t drop = p->tail_len + n - GW_TAIL_KEEP;
        memmove(p->tail, p->tail + drop, p->tail_len - drop);
        p->tail_len -= drop;
    }
    evbuffer_copyout(b, p->tail + p->tail_len, n);
    p->tail_len += n;
}

static int on_up_headers(struct evhttp_request *up, void *arg)
{
    gw_pend_t *p = arg;
    if (!p->req)
        return -1;
    nodelay(p->upconn);
    p->status = evhttp_request_get_response_code(up);
    struct evkeyvalq *in = evhttp_request_get_input_headers(up);
    const char *ct = evhttp_find_header(in, "Content-Type");
    const char *cl = evhttp_find_header(in, "Content-Length");
    if (ct) {
        httpd_add_header(p->req, "Content-Type", ct);
        p->streaming = strstr(ct, "text/event-stream") != NULL;
    }
    if (cl && !p->streaming)
        httpd_add_header(p->req, "Content-Length", cl);
    if (p->streaming) {
        httpd_add_header(p->req, "Cache-Control", "no-cache");
        httpd_add_header(p->req, "X-Accel-Buffering", "no");
    }
    httpd_reply_start(p->req, p->status);
    p->started = true;
    return 0;
}

static void on_up_chunk(struct evhttp_request *up, void *arg)
{
    gw_pend_t *p = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(up);
    if (!p->req) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    keep_tail(p, in);
    httpd_reply_chunk(p->req, in);
}

static void on_up_error(enum evhttp_request_error e, void *arg)
{
    gw_pend_t *p = arg;
    p->up_failed = true;
}

/* A suspect role: reap until its exit shows up (then the crash path
 * restarts it and answers the queue), or, after 0.5 s of it still running,
 * trust it again and send the queue. */
static void on_suspect(evutil_socket_t fd, short what, void *arg)
{
    gw_role_t *r = arg;
    backend_reap_all(); /* a crash clears r->suspect */
    if (!r->suspect)
        return;
    if (backend_state(r->be) != BE_READY || ++r->suspect_checks >= 25) {
        r->suspect = false;
        gw__drain_queue(r);
        return;
    }
    struct timeval tv = {0, 20000};
    evtimer_add(r->suspect_timer, &tv);
}

/* The upstream failed before sending anything. If the backend is gone, or
 * may be dying (a fresh connection to a READY backend failed: its socket
 * closes a moment before its exit can be reaped), put the request back at
 * the head of the queue: the role restarts and answers it, nothing reached
 * the client. A pooled connection the backend had closed is retried at
 * once on a fresh one instead. Each request is requeued once. */
static bool requeue_if_gone(gw_pend_t *p, struct evhttp_connection *c)
{
    gw_role_t *r = p->role;
    backend_reap_all();
    if (backend_state(r->be) == BE_READY) {
        if (p->reused && !p->retried)
            return false;
        r->suspect = true;
        r->suspect_checks = 0;
        if (!r->suspect_timer)
            r->suspect_timer = evtimer_new(r->g->base, on_suspect, r);
        if (!evtimer_pending(r->suspect_timer, NULL)) {
            struct timeval tv = {0, 20000};
            evtimer_add(r->suspect_timer, &tv);
        }
    }
    if (c)
        evhttp_connection_free(c);
    gw__requeue_head(p);
    gw__schedule(r->g);
    return true;
}

static void on_up_done(struct evhttp_request *up, void *arg)
{
    gw_pend_t *p = arg;
    gw_role_t *r = p->role;
    struct evhttp_connection *c = p->upconn;
    bool ok = up && evhttp_request_get_response_code(up) > 0 && !p->up_failed;
    p->up = NULL;
    p->upconn = NULL;
    r->inflight--;
    r->last_used = now_s();
    if (ok) {
        if (p->req) {
            httpd_req_t *rq = p->req;
            p->req = NULL; /* done once ended */
            gw__kv_after_answer(p, rq);
            httpd_reply_end(rq);
        }
        gw__observe(r->g, &(gw_obs_t){.kind = GW_OBS_ANSWERED, .role = r, .code = p->status,
                                      .secs = now_s() - p->t0,
                                      .tokens_in = gw__tail_num(p->tail, p->tail_len, "\"prompt_n\""),
                                      .tokens_out = gw__tail_num(p->tail, p->tail_len, "\"predicted_n\"")});
        /* llama-server closes a connection after a streamed answer even
         * though it says keep-alive: only plain answers leave a reusable one */
        if (p->streaming)
            evhttp_connection_free(c);
        else
            pool_put(r, c);
    } else if (p->req && !p->started && !p->requeued && requeue_if_gone(p, c)) {
        return; /* the backend died before answering: wait for its restart */
    } else if (p->req && !p->started && p->reused && !p->retried) {
        /* a pooled connection the backend had closed: once more on a fresh one */
        if (c)
            evhttp_connection_free(c);
        p->retried = true;
        gw__proxy_start(p); /* on failure it answers and frees p */
        gw__drain_queue(r);
        gw__role_idle_check(r);
        return;
    } else {
        const char *why = backend_state(r->be) == BE_READY ? "the connection to llama-server failed"
                                                           : "llama-server exited while handling the request";
        if (p->req && p->started && p->streaming) {
            /* an SSE error event, then the end of the stream */
            json_t *e = gw__oai_error(why, "server_error", "backend_failed");
            char *s = json_dumps(e, JSON_COMPACT);
            struct evbuffer *b = evbuffer_new();
            evbuffer_add_printf(b, "data: %s\n\n", s);
            httpd_reply_chunk(p->req, b);
            evbuffer_free(b);
            free(s);
            json_decref(e);
            httpd_req_t *rq = p->req;
            p->req = NULL;
            httpd_reply_end(rq);
        } else if (p->req && p->started) {
            /* headers are out: the only honest signal left is closing */
            httpd_req_t *rq = p->req;
            p->req = NULL;
            httpd_abort(rq);
        } else if (p->req) {
            gw__send_error(p->req, 502, "server_error", "backend_failed", "role '%s': %s", r->name, why);
        }
        gw__obs_answered(r, 502, now_s() - p->t0);
        if (c)
            evhttp_connection_free(c);
    }
    gw__pend_done(p);
    gw__drain_queue(r);
    gw__role_idle_check(r);
}

/* The body sent upstream: the client's, with "id_slot" first when Variet
 * chose the slot (gw_kv.c; the body is a JSON object, h_proxy checked). */
static void upstream_body(const gw_pend_t *p, struct evbuffer *out)
{
    struct evbuffer *body = httpd_body(p->req);
    size_t len = evbuffer_get_length(body);
    const char *s = (const char *)evbuffer_pullup(body, -1);
    size_t open = 0;
    while (open < len && s[open] != '{')
        open++;
    if (!p->kv_inject || open == len) {
        evbuffer_add(out, s, len);
        return;
    }
    size_t k = open + 1;
    while (k < len && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r' || s[k] == '\n'))
        k++;
    evbuffer_add(out, s, open + 1);
    evbuffer_add_printf(out, "\"id_slot\":%d%s", p->kv_slot, k < len && s[k] == '}' ? "" : ",");
    evbuffer_add(out, s + open + 1, len - open - 1);
}

void gw__proxy_start(gw_pend_t *p)
{
    gw_role_t *r = p->role;
    httpd_req_t *req = p->req;
    const http_head_t *hd = httpd_head(req);
    /* every attempt starts clean (a request re-sent after a restart must
     * not inherit the failure of its first attempt) */
    p->up_failed = p->streaming = p->started = false;
    p->status = 0;
    p->tail_len = 0;
    struct evhttp_connection *c = pool_get(r, p->retried, &p->reused);
    if (!c) {
        gw__send_error(req, 502, "server_error", "backend_failed", "role '%s': cannot connect to llama-server",
                       r->name);
        gw__pend_done(p);
        return;
    }
    struct evhttp_request *up = evhttp_request_new(on_up_done, p);
    evhttp_request_set_header_cb(up, on_up_headers);
    evhttp_request_set_chunked_cb(up, on_up_chunk);
    evhttp_request_set_error_cb(up, on_up_error);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(up);
    for (size_t i = 0; i < hd->n_headers; i++) {
        const char *k = hd->headers[i].name;
        if (!strcasecmp(k, "Host") || !strcasecmp(k, "Authorization") || !strcasecmp(k, "Connection") ||
            !strcasecmp(k, "Content-Length") || !strcasecmp(k, "Transfer-Encoding") ||
            !strcasecmp(k, "Keep-Alive") || !strcasecmp(k, "Expect") || !strcasecmp(k, "TE") ||
            !strcasecmp(k, "Trailer") || !strcasecmp(k, "Upgrade") || !strcasecmp(k, "Proxy-Connection"))
            continue;
        evhttp_add_header(oh, k, hd->headers[i].value);
    }
    evhttp_add_header(oh, "Host", "127.0.0.1");
    evhttp_add_header(oh, "Authorization", r->g->backend_auth);
    struct evbuffer *out = evhttp_request_get_output_buffer(up);
    upstream_body(p, out);
    char cl[32];
    snprintf(cl, sizeof cl, "%zu", evbuffer_get_length(out));
    evhttp_add_header(oh, "Content-Length", cl);
    p->up = up;
    p->upconn = c;
    r->inflight++;
    if (r->ttl_timer)
        evtimer_del(r->ttl_timer);
    if (evhttp_make_request(c, up, EVHTTP_REQ_POST, hd->target) != 0) {
        /* evhttp frees `up` on failure */
        p->up = NULL;
        p->upconn = NULL;
        r->inflight--;
        evhttp_connection_free(c);
        gw__send_error(req, 502, "server_error", "backend_failed", "role '%s': request to llama-server failed",
                       r->name);
        gw__pend_done(p);
    }
}

void gw__proxy_cancel(gw_pend_t *p)
{
    /* llama-server stops generating when its request goes */
    gw_role_t *r = p->role;
    evhttp_cancel_request(p->up);
    p->up = NULL;
    if (p->upconn) {
        evhttp_connection_free(p->upconn);
        p->upconn = NULL;
    }
    r->inflight--;
    r->last_used = now_s();
    gw__obs_answered(r, 499, now_s() - p->t0);
    gw__pend_done(p);
    gw__drain_queue(r);
    gw__role_idle_check(r);
}
