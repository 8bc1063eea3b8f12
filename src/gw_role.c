/*
 * gw_role.c — a role's lifecycle (see gw_int.h): created from its registry
 * entry (memory planned by gw_admit.c, context keeping by gw_kv.c), started
 * when admission says so, stopped when idle past its TTL or when its
 * definition went stale on reload, and the backend's events: ready (the
 * load report's memory replaces the plan, queued requests go), load
 * failure (its queue is answered 503), crash (restart with backoff 0.5 s,
 * 1 s, 2 s, ... until restart_max crashes within restart_window_s mark it
 * failed), stopped (admission runs again).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "args.h"
#include "gw_int.h"
#include "util.h"

const char *gw__role_state(const gw_role_t *r)
{
    if (r->failed)
        return "failed";
    switch (backend_state(r->be)) {
    case BE_LOADING: return "loading";
    case BE_READY: return r->kv.saving ? "stopping" : "ready";
    case BE_STOPPING: return "stopping";
    default: return "stopped";
    }
}

gw_role_t *gw__find_role(gateway_t *g, const char *name)
{
    const reg_role_t *d = registry_find(g->reg, name);
    if (!d)
        return NULL;
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired && !strcmp(g->roles[i]->name, d->name))
            return g->roles[i];
    return NULL;
}

static double role_ttl(const gw_role_t *r)
{
    return r->def && r->def->ttl_s >= 0 ? r->def->ttl_s : r->g->reg->engine.idle_ttl_s;
}

static void on_backend(backend_t *b, be_event_t ev, void *ud);

gw_role_t *gw__role_new(gateway_t *g, const reg_role_t *def, char *err, size_t errlen)
{
    gw_role_t *r = xcalloc(1, sizeof *r); /* owned by g->roles */
    r->g = g;
    r->name = xstrdup(def->name);
    r->def = def;
    TAILQ_INIT(&r->queue);
    if (gw__role_estimate(r, err, errlen)) {
        free(r->name);
        free(r);
        return NULL;
    }
    char *log = NULL;
    if (g->reg->engine.log_dir) {
        mkdir(g->reg->engine.log_dir, 0755);
        log = xasprintf("%s/%s.log", g->reg->engine.log_dir, r->name);
    }
    backend_opts_t bo = {
        .load_timeout_s = g->reg->engine.load_timeout_s,
        .stop_grace_s = g->reg->engine.stop_grace_s,
        .health_interval_s = g->reg->engine.health_interval_s,
        .ring_bytes = 256 * 1024,
        .api_key = g->backend_key,
        .alias = r->name,
    };
    r->be = backend_new(g->base, r->name, log, &bo, on_backend, r);
    free(log);
    gw__kv_configure(r);
    return r;
}

void gw__role_free(gw_role_t *r)
{
    gw__pool_clear(r);
    free(r->pool);
    backend_free(&r->be);
    if (r->ttl_timer)
        event_free(r->ttl_timer);
    if (r->restart_timer)
        event_free(r->restart_timer);
    if (r->suspect_timer)
        event_free(r->suspect_timer);
    gw__kv_free(r);
    free(r->name);
    free(r);
}

bool gw__role_busy(const gw_role_t *r) { return r->inflight > 0 || r->n_queued > 0; }

void gw__role_stop(gw_role_t *r)
{
    gw__pool_clear(r);
    backend_stop(r->be);
}

int gw__role_limit(const gw_role_t *r)
{
    int m = r->def->max_concurrent;
    return m > 0 && m < r->up_cap ? m : r->up_cap;
}

int gw__role_queue_size(const gw_role_t *r)
{
    return r->def->queue_size > 0 ? r->def->queue_size : r->g->reg->engine.queue_size;
}

void gw__role_start(gw_role_t *r)
{
    char err[512];
    gateway_t *g = r->g;
    if (backend_state(r->be) != BE_STOPPED)
        return;
    r->vision = gw__role_vision_next(r);
    size_t n_args = r->def->n_args;
    char **text = NULL, **args = r->def->args;
    if (r->has_mmproj && !r->vision)
        args = text = gw__text_args(r->def, &n_args);
    /* a backend that keeps its context gets a slot save path */
    char **kv_args = gw__kv_start_args(r, args, &n_args);
    int rc = backend_start(r->be, g->exe, r->def->model_abs, kv_args ? kv_args : args, n_args, err, sizeof err);
    free(kv_args);
    args_free(&text);
    gw__role_mem_refresh(r);
    if (rc) {
        r->failed = true;
        r->failed_at = now_s();
        snprintf(r->fail_reason, sizeof r->fail_reason, "%s", err);
        fprintf(stderr, "variet: role %s: %s\n", r->name, err);
        gw__fail_queue(r, "role_failed", "failed to start: %s", err);
        return;
    }
    fprintf(stderr, "variet: role %s: starting (pid %d, port %d%s)\n", r->name, (int)backend_pid(r->be),
            backend_port(r->be),
            !r->has_mmproj ? "" : r->vision ? ", projector loaded" : ", text only: the projector on demand");
}

char **gw__text_args(const reg_role_t *d, size_t *n)
{
    size_t k = d->n_args;
    char **a = args_set(d->args, k, ARG_MMPROJ, NULL, &k);
    char **b = args_set(a, k, ARG_NO_MMPROJ_OFFLOAD, NULL, n);
    args_free(&a);
    return b;
}

static bool on_demand(const gw_role_t *r) { return r->has_mmproj && r->def->mmproj_mode == REG_MMPROJ_ON_DEMAND; }

bool gw__role_vision_next(const gw_role_t *r) { return r->has_mmproj && (!on_demand(r) || r->want_vision); }

bool gw__role_takes(const gw_role_t *r, const gw_pend_t *p) { return !p->media || !on_demand(r) || r->vision; }

void gw__role_switch_check(gw_role_t *r)
{
    gw_pend_t *p = TAILQ_FIRST(&r->queue);
    if (!p || gw__role_takes(r, p) || backend_state(r->be) != BE_READY)
        return;
    r->want_vision = true;
    if (r->inflight || r->kv.saving)
        return; /* once they end: gw__drain_queue calls again */
    r->switches++;
    fprintf(stderr, "variet: role %s: a request carries media: restarting with the projector\n", r->name);
    gw__role_stop_idle(r); /* its slots are saved first */
}

static void on_ttl(evutil_socket_t fd, short what, void *arg)
{
    gw_role_t *r = arg;
    if (backend_state(r->be) == BE_READY && !gw__role_busy(r)) {
        fprintf(stderr, "variet: role %s: idle for %.0f s, stopping\n", r->name, role_ttl(r));
        gw__role_stop_idle(r);
    }
}

void gw__role_idle_check(gw_role_t *r)
{
    if (backend_state(r->be) != BE_READY)
        return;
    if (gw__role_busy(r)) {
        if (!r->inflight && gw__role_yields(r))
            gw__schedule(r->g); /* it yields: the scheduler may stop it now */
        return;
    }
    if (r->stale) {
        gw__role_stop_idle(r); /* replaced by a reload: saved, then stopped */
        return;
    }
    double ttl = role_ttl(r);
    if (ttl > 0) {
        if (!r->ttl_timer)
            r->ttl_timer = evtimer_new(r->g->base, on_ttl, r);
        struct timeval tv = gw__tv(ttl);
        evtimer_add(r->ttl_timer, &tv);
    }
    gw__schedule(r->g); /* someone may be waiting for room */
}

static void on_restart(evutil_socket_t fd, short what, void *arg)
{
    gw_role_t *r = arg;
    /* the backoff is over (the timer may fire a hair before restart_at by
     * our clock); start through the scheduler: it may have to wait for room */
    r->restart_at = 0;
    gw__schedule(r->g);
}

static void on_backend(backend_t *b, be_event_t ev, void *ud)
{
    gw_role_t *r = ud;
    gateway_t *g = r->g;
    gw__kv_backend_event(r, ev == BE_EV_READY);
    if (ev != BE_EV_READY) {
        r->suspect = false; /* it is gone indeed: the queue waits for the restart */
        /* the next start loads the projector only if a waiting request needs it */
        gw_pend_t *p;
        r->want_vision = false;
        TAILQ_FOREACH(p, &r->queue, q)
            r->want_vision |= p->media;
        gw__role_mem_refresh(r);
    }
    switch (ev) {
    case BE_EV_READY: {
        double secs = backend_ready_at(b) - backend_started_at(b);
        gw__role_measured(r);
        gw__observe(g, &(gw_obs_t){.kind = GW_OBS_LOADED, .role = r, .secs = secs});
        r->last_used = now_s();
        fprintf(stderr, "variet: role %s: ready in %.2f s\n", r->name, secs);
        gw__drain_queue(r);
        gw__role_idle_check(r);
        break;
    }
    case BE_EV_LOAD_FAILED:
        r->failed = true;
        r->failed_at = now_s();
        snprintf(r->fail_reason, sizeof r->fail_reason, "%s", backend_error(b));
        fprintf(stderr, "variet: role %s: load failed: %s\n", r->name, r->fail_reason);
        gw__fail_queue(r, "load_failed", "failed to load: %s", r->fail_reason);
        gw__pool_clear(r);
        gw__schedule(g);
        break;
    case BE_EV_CRASHED: {
        double now = now_s();
        gw__pool_clear(r);
        int recent = 0;
        if (r->n_crashes == GW_MAX_CRASHES) {
            memmove(r->crashes, r->crashes + 1, sizeof r->crashes[0] * (GW_MAX_CRASHES - 1));
            r->n_crashes--;
        }
        r->crashes[r->n_crashes++] = now;
        for (int i = 0; i < r->n_crashes; i++)
            recent += now - r->crashes[i] < g->reg->engine.restart_window_s;
        fprintf(stderr, "variet: role %s: %s\n", r->name, backend_error(b));
        if (recent > g->reg->engine.restart_max) {
            r->failed = true;
            r->failed_at = now;
            snprintf(r->fail_reason, sizeof r->fail_reason, "crashed %d times in %.0f s; last: %s", recent,
                     g->reg->engine.restart_window_s, backend_error(b));
            r->restart_pending = false;
            gw__fail_queue(r, "role_failed", "is failed: %s", r->fail_reason);
        } else {
            /* restart with backoff: 0.5 s, 1 s, 2 s, ... (gw__schedule() waits for restart_at) */
            double d = 0.5 * (double)(1 << (recent - 1 < 6 ? recent - 1 : 6));
            r->restart_pending = !r->stale && !r->retired;
            r->restart_at = now + d;
            if (!r->restart_timer)
                r->restart_timer = evtimer_new(g->base, on_restart, r);
            struct timeval tv = gw__tv(d);
            evtimer_add(r->restart_timer, &tv);
        }
        gw__schedule(g);
        break;
    }
    case BE_EV_STOPPED:
        fprintf(stderr, "variet: role %s: stopped\n", r->name);
        gw__pool_clear(r);
        gw__schedule(g);
        break;
    }
}

void gw__role_list(gateway_t *g, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    for (size_t i = 0; i < g->n_roles && n < cap; i++)
        if (!g->roles[i]->retired)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", g->roles[i]->name);
}
