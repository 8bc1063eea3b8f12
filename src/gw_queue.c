/*
 * gw_queue.c — pending requests (see gw_int.h). A request for a ready role
 * that may take it (under max_concurrent, not restoring or saving, not
 * yielding) is forwarded at once; otherwise it waits in its role's queue,
 * bounded by queue_size (429 past it) and queue_timeout (503), while
 * admission starts the role. A client that goes away leaves the queue, or
 * cancels its upstream request. POST /roles/NAME/load waits in the same
 * queue and is answered when the role is ready.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "gw_int.h"
#include "util.h"

static void on_queue_timeout(evutil_socket_t fd, short what, void *arg);

static void unqueue(gw_pend_t *p)
{
    TAILQ_REMOVE(&p->role->queue, p, q);
    p->role->n_queued--;
    p->queued = false;
}

/* (Re)arm p's queue timeout. */
static void arm_timeout(gw_pend_t *p)
{
    if (!p->timeout)
        p->timeout = evtimer_new(p->g->base, on_queue_timeout, p);
    struct timeval tv = gw__tv(p->g->reg->engine.queue_timeout_s);
    evtimer_add(p->timeout, &tv);
}

void gw__fail_queue(gw_role_t *r, const char *code, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    gw_pend_t *p;
    while ((p = TAILQ_FIRST(&r->queue))) {
        unqueue(p);
        if (p->req) {
            gw__obs_answered(r, 503, now_s() - p->t0);
            gw__send_error(p->req, 503, "server_error", code, "role '%s' %s", r->name, msg);
        }
        gw__pend_done(p);
    }
}

/* The client went away before its answer was complete (httpd). */
static void on_client_close(httpd_req_t *req, void *arg)
{
    gw_pend_t *p = arg;
    p->req = NULL;
    if (p->queued) {
        gw_role_t *r = p->role;
        unqueue(p);
        gw__pend_done(p);
        gw__role_idle_check(r);
        return;
    }
    if (p->up)
        gw__proxy_cancel(p);
}

void gw__pend_done(gw_pend_t *p)
{
    gw__kv_pend_end(p);
    if (p->timeout)
        event_free(p->timeout);
    free(p);
}

static void on_queue_timeout(evutil_socket_t fd, short what, void *arg)
{
    gw_pend_t *p = arg;
    gw_role_t *r = p->role;
    if (!p->queued)
        return;
    unqueue(p);
    if (p->req) {
        gw__obs_answered(r, 503, now_s() - p->t0);
        gw__send_error(p->req, 503, "server_error", "timeout",
                       "timed out after %.0f s waiting for role '%s' (state %s)",
                       r->g->reg->engine.queue_timeout_s, r->name, gw__role_state(r));
    }
    gw__pend_done(p);
    gw__role_idle_check(r);
}

/* its upstream attempt failed before anything reached the client */
void gw__requeue_head(gw_pend_t *p)
{
    gw_role_t *r = p->role;
    p->requeued = true;
    TAILQ_INSERT_HEAD(&r->queue, p, q);
    r->n_queued++;
    p->queued = true;
    arm_timeout(p);
}

void gw__dispatch(gateway_t *g, gw_role_t *r, httpd_req_t *req, const gw_req_info_t *info)
{
    gw_pend_t *p = xcalloc(1, sizeof *p); /* freed by gw__pend_done */
    p->load_only = info->load_only;
    p->g = g;
    p->role = r;
    p->req = req;
    p->t0 = now_s();
    p->stream_req = info->stream;
    p->media = info->media;
    p->kv_slot = -1;
    httpd_on_close(req, on_client_close, p);
    r->last_used = p->t0;
    if (r->failed && now_s() - r->failed_at < g->reg->engine.restart_window_s) {
        gw__obs_answered(r, 503, 0);
        gw__send_error(req, 503, "server_error", "role_failed", "role '%s' is failed: %s", r->name, r->fail_reason);
        gw__pend_done(p);
        return;
    }
    if (g->stopping) {
        gw__obs_answered(r, 503, 0);
        gw__send_error(req, 503, "server_error", "shutting_down", "variet is shutting down");
        gw__pend_done(p);
        return;
    }
    r->failed = false;
    if (backend_state(r->be) == BE_READY && !r->suspect && !r->kv.busy && !r->kv.saving &&
        r->inflight < gw__role_limit(r) && !r->n_queued && !gw__role_yields(r) && gw__role_takes(r, p)) {
        gw__proxy_or_restore(p);
        return;
    }
    if (r->n_queued >= gw__role_queue_size(r)) {
        gw__obs_answered(r, 429, 0);
        gw__send_error(req, 429, "rate_limit_error", "queue_full",
                       "role '%s' is %s and its queue is full (%d waiting, %d in flight)", r->name, gw__role_state(r),
                       r->n_queued, r->inflight);
        gw__pend_done(p);
        return;
    }
    TAILQ_INSERT_TAIL(&r->queue, p, q);
    r->n_queued++;
    p->queued = true;
    arm_timeout(p);
    if (p->media && backend_state(r->be) == BE_STOPPED)
        r->want_vision = true; /* an on_demand role starts with the projector */
    gw__role_switch_check(r); /* a ready text backend makes way for one with the projector */
    gw__schedule(g);
}

void gw__drain_queue(gw_role_t *r)
{
    gw_pend_t *p;
    while (backend_state(r->be) == BE_READY && !r->suspect && !r->kv.busy && !r->kv.saving &&
           r->inflight < gw__role_limit(r) && !gw__role_yields(r) && (p = TAILQ_FIRST(&r->queue)) &&
           gw__role_takes(r, p)) {
        unqueue(p);
        evtimer_del(p->timeout);
        if (p->req && p->load_only) {
            gw__send_json(p->req, 200, json_pack("{s:s,s:s,s:f}", "role", r->name, "state", "ready", "load_seconds",
                                             r->m.last_load_s));
            gw__pend_done(p);
        } else if (p->req) {
            gw__proxy_or_restore(p);
        } else {
            gw__pend_done(p);
        }
    }
    gw__role_switch_check(r);
}
