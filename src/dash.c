/*
 * dash.c — the dashboard's endpoints (see dash.h).
 *
 * Log streams are followers of a backend's output ring (backend_log_since):
 * a timer per stream moves its position on, so a stream costs nothing
 * while the role is quiet and the event loop never blocks on a client. The
 * ring, not the log file, is the source: it is what /roles/NAME/logs has
 * always shown, it spans restarts of the role, and reading it needs no disk
 * I/O on the loop.
 */
#include "dash.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "tune_plot.h"
#include "ui.h"
#include "util.h"

#define FOLLOW_TICK_S 0.25
#define FOLLOW_READ_MAX (64 * 1024)
#define FOLLOW_PENDING_MAX (256 * 1024)
#define TUNE_FILE_MAX (16u << 20)

typedef struct follow follow_t;
struct follow {
    LIST_ENTRY(follow) link;
    dash_t *d;
    httpd_req_t *req;
    backend_t *be;
    uint64_t pos; /* next byte of the backend's output to send */
    struct event *tick;
};

struct dash {
    struct event_base *base;
    LIST_HEAD(, follow) follows;
    int n_follows;
};

dash_t *dash_new(struct event_base *base)
{
    dash_t *d = xcalloc(1, sizeof *d); /* owned by the caller: dash_free */
    d->base = base;
    LIST_INIT(&d->follows);
    return d;
}

static void follow_free(follow_t *f)
{
    LIST_REMOVE(f, link);
    f->d->n_follows--;
    event_free(f->tick);
    free(f);
}

void dash_free(dash_t **dp)
{
    dash_t *d = *dp;
    if (!d)
        return;
    while (!LIST_EMPTY(&d->follows)) {
        follow_t *f = LIST_FIRST(&d->follows);
        httpd_abort(f->req); /* the request is done: its close callback does not run */
        follow_free(f);
    }
    free(d);
    *dp = NULL;
}

int dash_follows(const dash_t *d) { return d->n_follows; }

/* An error in the gateway's shape (OpenAI's): req is done after. */
static void dash_error(httpd_req_t *req, int code, const char *errcode, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void dash_error(httpd_req_t *req, int code, const char *errcode, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", msg, "type",
                          code >= 500 ? "server_error" : "invalid_request_error", "param", "code", errcode);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (code == 429)
        httpd_add_header(req, "Retry-After", "1");
    httpd_add_header(req, "Content-Type", "application/json");
    if (s)
        httpd_reply(req, code, s, strlen(s));
    else /* a message that is not UTF-8 (a path): the code alone */
        httpd_reply(req, code, "{\"error\":{\"message\":\"error\"}}", 29);
    free(s);
    json_decref(o);
}

/* ---------- /ui ---------- */

void dash_asset(httpd_req_t *req)
{
    const http_head_t *h = httpd_head(req);
    const ui_asset_t *a = ui_find(h->path);
    if (!a) {
        dash_error(req, 404, "not_found", "no dashboard file %.200s (the page is /ui)", h->path);
        return;
    }
    httpd_add_header(req, "ETag", a->etag);
    httpd_add_header(req, "Cache-Control", "no-cache");
    httpd_add_header(req, "X-Content-Type-Options", "nosniff");
    httpd_add_header(req, "Referrer-Policy", "no-referrer");
    if (ui_etag_matches(http_head_get(h, "If-None-Match"), a->etag)) {
        httpd_reply(req, 304, NULL, 0);
        return;
    }
    const char *type = ui_content_type(a->name);
    httpd_add_header(req, "Content-Type", type);
    if (!strncmp(type, "text/html", 9)) {
        httpd_add_header(req, "Content-Security-Policy",
                         "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
                         "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
        httpd_add_header(req, "X-Frame-Options", "DENY");
    }
    httpd_reply(req, 200, a->data, a->len);
}

/* ---------- log streams ---------- */

static void follow_send(follow_t *f, const char *p, size_t n)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, p, n);
    httpd_reply_chunk(f->req, b);
    evbuffer_free(b);
}

static void on_follow_tick(evutil_socket_t fd, short what, void *arg)
{
    follow_t *f = arg;
    if (httpd_peer_closed(f->req)) {
        httpd_reply_end(f->req); /* the request is done: its close callback does not run */
        follow_free(f);
        return;
    }
    if (httpd_pending(f->req) < FOLLOW_PENDING_MAX) {
        buf_t out;
        buf_init(&out, 0);
        uint64_t skipped = backend_log_since(f->be, &f->pos, FOLLOW_READ_MAX, &out);
        if (skipped) {
            char note[96];
            int k = snprintf(note, sizeof note, "\n[variet: %llu bytes skipped]\n", (unsigned long long)skipped);
            follow_send(f, note, (size_t)k);
        }
        if (out.len)
            follow_send(f, out.data, out.len);
        buf_free(&out);
    }
    struct timeval tv = {0, (suseconds_t)(FOLLOW_TICK_S * 1e6)};
    evtimer_add(f->tick, &tv);
}

static void on_follow_close(httpd_req_t *req, void *arg)
{
    follow_free(arg);
}

void dash_log_follow(dash_t *d, httpd_req_t *req, backend_t *be, size_t tail_lines)
{
    if (d->n_follows >= DASH_MAX_FOLLOW) {
        dash_error(req, 429, "too_many_streams", "%d log streams are open (the most at once); close one",
                   d->n_follows);
        return;
    }
    httpd_add_header(req, "Content-Type", "text/plain; charset=utf-8");
    httpd_add_header(req, "Cache-Control", "no-store");
    httpd_add_header(req, "X-Content-Type-Options", "nosniff");
    if (httpd_head(req)->method == HTTP_HEAD) {
        httpd_reply_start(req, 200);
        httpd_reply_end(req);
        return;
    }
    follow_t *f = xcalloc(1, sizeof *f); /* owned by d until the client goes or dash_free */
    f->d = d;
    f->req = req;
    f->be = be;
    f->tick = evtimer_new(d->base, on_follow_tick, f);
    LIST_INSERT_HEAD(&d->follows, f, link);
    d->n_follows++;
    httpd_on_close(req, on_follow_close, f);
    httpd_reply_start(req, 200);
    buf_t tail;
    buf_init(&tail, 0);
    backend_log_tail(be, tail_lines, &tail);
    f->pos = backend_log_pos(be);
    if (tail.len)
        follow_send(f, tail.data, tail.len);
    buf_free(&tail);
    struct timeval tv = {0, (suseconds_t)(FOLLOW_TICK_S * 1e6)};
    evtimer_add(f->tick, &tv);
}

/* ---------- tuning histories ---------- */

void dash_tune(httpd_req_t *req, const char *dir, const char *role)
{
    char plot[16] = "";
    const http_head_t *h = httpd_head(req);
    if (h->query && http_query_get(h->query, "plot", plot, sizeof plot) && strcmp(plot, "trials") &&
        strcmp(plot, "frontier")) {
        dash_error(req, 400, "invalid_plot", "plot must be trials or frontier, not '%.16s'", plot);
        return;
    }
    char *path = xasprintf("%s/tune-%s.json", dir && *dir ? dir : ".", role); /* owned here */
    char *text = NULL, err[512];
    size_t len = 0;
    int rc = file_read_all(path, TUNE_FILE_MAX, &text, &len, err, sizeof err);
    if (rc == -ENOENT) {
        dash_error(req, 404, "no_tuning_history",
                   "role '%s' has no tuning history: %s does not exist (`variet tune %s` writes it)", role, path,
                   role);
        free(path);
        return;
    }
    if (rc) {
        dash_error(req, 500, "tuning_history_unreadable", "%s", err);
        free(path);
        return;
    }
    json_error_t je;
    json_t *hist = json_loadb(text, len, 0, &je);
    if (!json_is_object(hist) || !json_is_array(json_object_get(hist, "trials"))) {
        if (hist)
            dash_error(req, 500, "tuning_history_malformed", "%s: not a tuning history (an object with \"trials\")",
                       path);
        else
            dash_error(req, 500, "tuning_history_malformed", "%s:%d:%d: %s", path, je.line, je.column, je.text);
        json_decref(hist);
        free(text);
        free(path);
        return;
    }
    httpd_add_header(req, "Cache-Control", "no-cache");
    httpd_add_header(req, "X-Content-Type-Options", "nosniff");
    if (plot[0]) {
        char *svg = !strcmp(plot, "trials") ? tune_plot_trials(hist) : tune_plot_frontier(hist);
        httpd_add_header(req, "Content-Type", "image/svg+xml");
        httpd_add_header(req, "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
        httpd_reply(req, 200, svg, strlen(svg));
        free(svg);
    } else {
        httpd_add_header(req, "Content-Type", "application/json");
        httpd_reply(req, 200, text, len);
    }
    json_decref(hist);
    free(text);
    free(path);
}
