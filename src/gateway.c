/*
 * gateway.c — the role gateway's public interface (see gateway.h): build
 * it (hardware, backend key, roles, listening socket), reload its registry
 * on SIGHUP (kept roles keep running, changed ones go stale and stop once
 * idle, removed ones retire), free it. The parts are listed in gw_int.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <event2/event.h>

#include "gw_int.h"
#include "util.h"

/* The access policy of reg's engine settings (pointers into reg). */
static void gateway_policy(gateway_t *g, const registry_t *reg)
{
    g->policy.api_key = reg->engine.api_key;
    g->policy.allowed_hosts = (const char *const *)reg->engine.allowed_hosts;
    g->policy.allowed_origins = (const char *const *)reg->engine.allowed_origins;
}

static int build_roles(gateway_t *g, registry_t *reg, gw_role_t ***out, size_t *n_out, char *err, size_t errlen)
{
    gw_role_t **roles = xcalloc(reg->n_roles ? reg->n_roles : 1, sizeof *roles);
    for (size_t i = 0; i < reg->n_roles; i++) {
        registry_t *saved = g->reg;
        g->reg = reg; /* gw__role_new reads engine settings */
        roles[i] = gw__role_new(g, &reg->roles[i], err, errlen);
        g->reg = saved;
        if (!roles[i]) {
            for (size_t k = 0; k < i; k++)
                gw__role_free(roles[k]);
            free(roles);
            return -EINVAL;
        }
    }
    *out = roles;
    *n_out = reg->n_roles;
    return 0;
}

int gateway_new(struct event_base *base, registry_t *reg, const char *exe, gateway_t **out, char *err,
                size_t errlen)
{
    gateway_t *g = xcalloc(1, sizeof *g);
    *out = NULL;
    g->base = base;
    g->exe = xstrdup(exe);
    g->started = now_s();
    g->started_wall = time(NULL);
    g->reg = reg;
    g->dash = dash_new(base);
    gw__admit_init(g);
    /* a random key for the backends: their ports are useless to anyone who
     * cannot read it (it travels in their environment, not on a command line) */
    unsigned char rnd[32];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        snprintf(err, errlen, "getrandom: %s", strerror(errno));
        dash_free(&g->dash);
        free(g->exe);
        free(g);
        return -EIO;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(g->backend_key + 2 * i, 3, "%02x", rnd[i]);
    g->backend_auth = xasprintf("Bearer %s", g->backend_key);
    if (build_roles(g, reg, &g->roles, &g->n_roles, err, errlen)) {
        dash_free(&g->dash);
        free(g->backend_auth);
        free(g->exe);
        free(g);
        return -EINVAL;
    }
    gateway_policy(g, reg);
    gw__kv_enforce(g); /* what earlier runs left, within the limit */
    httpd_opts_t ho = {
        .max_header = (size_t)reg->engine.max_header,
        .max_body = reg->engine.max_body,
        .header_timeout_s = reg->engine.header_timeout_s,
        .write_timeout_s = reg->engine.upstream_timeout_s,
        .max_connections = reg->engine.max_connections,
    };
    int rc = httpd_new(base, &ho, reg->engine.host, reg->engine.port, gw__on_request, g, &g->http, err, errlen);
    if (rc) {
        g->reg = NULL; /* the caller still owns reg on failure */
        gateway_free(&g);
        return rc;
    }
    g->port = httpd_port(g->http);
    *out = g;
    return 0;
}

int gateway_port(const gateway_t *g) { return g->port; }

static void retire(gw_role_t *r)
{
    r->retired = true;
    r->stale = true;
    gw__fail_queue(r, "reloaded", "changed while this request waited (configuration reloaded); retry");
    if (!r->inflight)
        gw__role_stop_idle(r); /* its slots are saved first */
}

static bool same_def(const reg_role_t *a, const reg_role_t *b)
{
    if (strcmp(a->model_abs, b->model_abs) || a->n_args != b->n_args)
        return false;
    for (size_t i = 0; i < a->n_args; i++)
        if (strcmp(a->args[i], b->args[i]))
            return false;
    return true;
}

int gateway_reload(gateway_t *g, registry_t *reg, char *err, size_t errlen)
{
    size_t n_old = g->n_roles, n_new = reg->n_roles;
    gw_role_t **roles = xcalloc(n_old + n_new + 1, sizeof *roles);
    bool *is_new = xcalloc(n_new + 1, sizeof *is_new);
    bool *kept = xcalloc(n_old + 1, sizeof *kept);
    registry_t *saved = g->reg;

    /* first pass: build what is new, touching nothing that runs */
    g->reg = reg; /* gw__role_new reads engine settings */
    for (size_t i = 0; i < n_new; i++) {
        const reg_role_t *d = &reg->roles[i];
        for (size_t k = 0; k < n_old; k++) {
            gw_role_t *o = g->roles[k];
            if (!o->retired && !kept[k] && !strcmp(o->name, d->name) && same_def(o->def, d)) {
                roles[i] = o;
                kept[k] = true;
                break;
            }
        }
        if (roles[i])
            continue;
        roles[i] = gw__role_new(g, d, err, errlen);
        is_new[i] = true;
        if (!roles[i]) {
            for (size_t k = 0; k < i; k++)
                if (is_new[k])
                    gw__role_free(roles[k]);
            g->reg = saved;
            free(roles);
            free(is_new);
            free(kept);
            return -EINVAL;
        }
    }
    /* commit: kept roles point at the new definitions; the rest retire and
     * stay listed (hidden) until their in-flight requests finish */
    size_t n = n_new;
    for (size_t i = 0; i < n_new; i++)
        roles[i]->def = &reg->roles[i];
    for (size_t k = 0; k < n_old; k++)
        if (!kept[k]) {
            if (!g->roles[k]->retired)
                retire(g->roles[k]);
            roles[n++] = g->roles[k];
        }
    free(g->roles);
    g->roles = roles;
    g->n_roles = n;
    gateway_policy(g, reg);
    /* retired roles still point into the old registry: keep it */
    g->old_regs = xrealloc(g->old_regs, (g->n_old_regs + 1) * sizeof *g->old_regs);
    g->old_regs[g->n_old_regs++] = saved;
    free(is_new);
    free(kept);
    gw__schedule(g);
    return 0;
}

void gw__shutdown_check(gateway_t *g)
{
    if (!g->stopping || !g->on_stopped)
        return;
    for (size_t i = 0; i < g->n_roles; i++)
        if (g->roles[i]->kv.saving)
            return;
    void (*done)(void *) = g->on_stopped;
    g->on_stopped = NULL;
    if (g->stop_timer)
        evtimer_del(g->stop_timer);
    done(g->on_stopped_arg);
}

/* kv_save_timeout passed: stop without the saves still in flight. */
static void on_stop_timeout(evutil_socket_t fd, short what, void *arg)
{
    gateway_t *g = arg;
    for (size_t i = 0; i < g->n_roles; i++) {
        gw_role_t *r = g->roles[i];
        if (!r->kv.saving)
            continue;
        fprintf(stderr, "variet: role %s: saving the context did not finish within %.0f s; stopping without it\n",
                r->name, g->reg->engine.kv_save_timeout_s);
        gw__observe(g, &(gw_obs_t){.kind = GW_OBS_KV_SAVED, .role = r, .ok = false});
        r->kv.saving = false; /* the call itself ends with gateway_free */
    }
    gw__shutdown_check(g);
}

void gateway_shutdown(gateway_t *g, void (*done)(void *arg), void *arg)
{
    if (g->stopping)
        return;
    g->stopping = true;
    g->on_stopped = done;
    g->on_stopped_arg = arg;
    int saving = 0;
    for (size_t i = 0; i < g->n_roles; i++) {
        gw_role_t *r = g->roles[i];
        if (!r->retired)
            gw__fail_queue(r, "shutting_down", "was not started: variet is shutting down");
        saving += gw__kv_save(r);
    }
    if (saving) {
        fprintf(stderr, "variet: saving the context of %d role%s before stopping\n", saving, saving > 1 ? "s" : "");
        g->stop_timer = evtimer_new(g->base, on_stop_timeout, g);
        struct timeval tv = gw__tv(g->reg->engine.kv_save_timeout_s);
        evtimer_add(g->stop_timer, &tv);
    }
    gw__shutdown_check(g);
}

void gateway_free(gateway_t **gp)
{
    gateway_t *g = *gp;
    if (!g)
        return;
    backend_stop_all_sync();
    if (g->resched_timer)
        event_free(g->resched_timer);
    if (g->stop_timer)
        event_free(g->stop_timer);
    dash_free(&g->dash); /* its log streams read backends: before they go */
    httpd_free(&g->http);
    for (size_t i = 0; i < g->n_roles; i++)
        if (g->roles[i])
            gw__role_free(g->roles[i]);
    free(g->roles);
    registry_free(&g->reg);
    for (size_t i = 0; i < g->n_old_regs; i++)
        registry_free(&g->old_regs[i]);
    free(g->old_regs);
    free(g->exe);
    free(g->backend_auth);
    free(g);
    *gp = NULL;
}
