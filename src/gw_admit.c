/*
 * gw_admit.c — admission (see gw_int.h): what a role needs on each device
 * (the planner's prediction from its model and args against the hardware
 * seen at start; after a load, the buffers its load report lists), and
 * gw__schedule(), which picks the stopped role whose oldest request has
 * waited longest, asks scheduler.c whether it may start (max_loaded, the
 * per-device budgets, priority, pin, min_resident_s) and stops the idle
 * victims it names. The starvation bound (max_wait) is here too: a loaded
 * role yields to an older request that its stop would make room for.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "args.h"
#include "gguf.h"
#include "gw_int.h"
#include "hw.h"
#include "loadlog.h"
#include "modelinfo.h"
#include "roleplan.h"
#include "util.h"

/* The planner's memory per device for args (with the draft and the
 * projector they name: roleplan). 0 or -EINVAL with err. */
static int plan_mem(gw_role_t *r, const roleplan_t *rp, plan_opts_t *o, char *const *args, size_t n, uint64_t *out,
                    char *err, size_t errlen)
{
    gateway_t *g = r->g;
    char e[512];
    plan_t p;
    if (roleplan_predict(rp, args, n, g->gpus, g->n_gpu, -1, 0, o, &p, e, sizeof e)) {
        snprintf(err, errlen, "%s.%s", r->name, e);
        return -EINVAL;
    }
    r->ctx_len = (uint32_t)p.n_ctx;
    for (int d = 0; d < p.n_dev && d < SCHED_MAX_DEV; d++)
        out[d] = p.dev[d].total;
    return 0;
}

int gw__role_estimate(gw_role_t *r, char *err, size_t errlen)
{
    roleplan_t *rp = NULL;
    if (roleplan_open_role(r->def, &rp, err, errlen)) /* the model, its draft, its projector */
        return -EINVAL;
    plan_opts_t o;
    const reg_role_t *d = r->def;
    r->has_mmproj = args_find(d->args, d->n_args, ARG_MMPROJ) >= 0;
    r->vision = r->has_mmproj && d->mmproj_mode != REG_MMPROJ_ON_DEMAND;
    int rc = plan_mem(r, rp, &o, d->args, d->n_args, r->mem_by[r->has_mmproj].plan, err, errlen);
    if (!rc && r->has_mmproj && d->mmproj_mode == REG_MMPROJ_ON_DEMAND) {
        /* its text backend: the same args without the projector */
        size_t n = 0;
        char **text = gw__text_args(d, &n);
        rc = plan_mem(r, rp, &o, text, n, r->mem_by[0].plan, err, errlen);
        args_free(&text);
    }
    roleplan_free(&rp);
    if (rc)
        return rc;
    /* llama-server serves each connection, idle keep-alive ones included, on
     * one of a few HTTP threads: keep at most slots + 1 connections open so
     * none waits behind an idle one (the rest wait here, in order) */
    r->up_cap = (int)o.n_seq + 1;
    gw__role_mem_refresh(r);
    return 0;
}

void gw__role_mem_refresh(gw_role_t *r)
{
    bool v = !r->be || backend_state(r->be) == BE_STOPPED ? gw__role_vision_next(r) : r->vision;
    const gw_mem_t *m = &r->mem_by[v];
    memcpy(r->mem, m->measured ? m->meas : m->plan, sizeof r->mem);
    r->mem_total = 0;
    for (int d = 0; d < SCHED_MAX_DEV; d++)
        r->mem_total += r->mem[d];
}

/* Could stopping r make room for w (a shared limit: the role count, or a
 * device both use that has a budget), and may it be stopped for w? */
static bool stop_helps(const gw_role_t *r, const gw_role_t *w)
{
    gateway_t *g = r->g;
    if (r->def->pin || r->def->priority > w->def->priority)
        return false;
    if (g->reg->engine.max_loaded > 0)
        return true;
    for (int d = 0; d <= g->n_gpu && d < SCHED_MAX_DEV; d++)
        if (g->budget[d] && r->mem[d] && w->mem[d])
            return true;
    return false;
}

/* Starvation bound: once a request for a stopped role w has waited
 * max_wait, a loaded role whose stop would make room for w takes no new
 * requests (they queue) and starts none of its queued ones that came after
 * w's, so that it goes idle and the scheduler may stop it; its queue is
 * served after the swap back. A B A B arriving under load is
 * then served as A A B B. */
bool gw__role_yields(const gw_role_t *r)
{
    gateway_t *g = r->g;
    double mw = g->reg->engine.max_wait_s, now = now_s();
    if (mw <= 0)
        return false;
    /* only to requests older than its own oldest waiting one: the oldest
     * request anywhere is never held back, so two roles cannot keep
     * yielding to each other */
    double mine = r->n_queued ? TAILQ_FIRST(&r->queue)->t0 : now;
    for (size_t i = 0; i < g->n_roles; i++) {
        gw_role_t *w = g->roles[i];
        if (w == r || w->retired || w->failed || !w->n_queued || backend_state(w->be) != BE_STOPPED ||
            (w->restart_pending && now < w->restart_at))
            continue;
        double t0 = TAILQ_FIRST(&w->queue)->t0;
        if (t0 < mine && now - t0 >= mw && stop_helps(r, w))
            return true;
    }
    return false;
}

static void on_resched(evutil_socket_t fd, short what, void *arg) { gw__schedule(arg); }

/* A role replaced by a reload whose slots are being saved: its successor
 * waits, so that its first request may restore what is saved. */
static bool predecessor_saving(const gateway_t *g, const gw_role_t *r)
{
    for (size_t i = 0; i < g->n_roles; i++)
        if (g->roles[i] != r && g->roles[i]->retired && g->roles[i]->kv.saving && !strcmp(g->roles[i]->name, r->name))
            return true;
    return false;
}

void gw__schedule(gateway_t *g)
{
    size_t n = g->n_roles;
    if (!n || g->stopping)
        return;
    sched_role_t *s = xcalloc(n, sizeof *s);
    size_t *victims = xcalloc(n, sizeof *victims);
    for (;;) {
        /* the stopped role whose first queued request is oldest */
        gw_role_t *want = NULL;
        size_t wi = 0;
        for (size_t i = 0; i < n; i++) {
            gw_role_t *r = g->roles[i];
            if (backend_state(r->be) != BE_STOPPED || r->failed || r->retired || predecessor_saving(g, r))
                continue;
            double now = now_s();
            bool restart = r->restart_pending && now >= r->restart_at;
            if (r->restart_pending && now < r->restart_at) {
                /* crash backoff: make sure something wakes us when it ends */
                if (r->restart_timer && !evtimer_pending(r->restart_timer, NULL)) {
                    struct timeval tv = gw__tv(r->restart_at - now);
                    evtimer_add(r->restart_timer, &tv);
                }
                continue;
            }
            if (!r->n_queued && !restart)
                continue;
            /* the oldest waiting request first; restarts of idle roles after them */
            double t = r->n_queued ? TAILQ_FIRST(&r->queue)->t0 : 1e300;
            double tw = !want ? 0 : want->n_queued ? TAILQ_FIRST(&want->queue)->t0 : 1e300;
            if (!want || t < tw) {
                want = r;
                wi = i;
            }
        }
        if (!want)
            break;
        for (size_t i = 0; i < n; i++) {
            gw_role_t *r = g->roles[i];
            be_state_t st = backend_state(r->be);
            gw__role_mem_refresh(r); /* a stopped role: the backend it would start */
            s[i].state = st == BE_LOADING ? SCHED_R_LOADING : st == BE_READY && !r->kv.saving ? SCHED_R_READY
                       : st == BE_STOPPING || st == BE_READY ? SCHED_R_STOPPING : SCHED_R_STOPPED;
            /* a yielding role's queue waits for the swap back: only in-flight requests hold it */
            s[i].busy = r->inflight > 0 || (r->n_queued > 0 && !gw__role_yields(r));
            s[i].last_used = r->last_used;
            memcpy(s[i].mem, r->mem, sizeof s[i].mem);
            s[i].priority = r->def->priority;
            s[i].pin = r->def->pin;
            s[i].ready_at = backend_ready_at(r->be);
            s[i].min_resident_s = r->def->min_resident_s;
        }
        size_t nv = 0;
        double now = now_s();
        sched_verdict_t v = sched_admit(s, n, wi, g->reg->engine.max_loaded, g->budget, 1 + g->n_gpu, now,
                                        victims, &nv);
        if (v == SCHED_START) {
            want->restart_pending = false;
            gw__role_start(want);
            continue;
        }
        if (v == SCHED_NEVER) {
            char need[32], budget[32];
            int d = 0;
            for (int k = 0; k <= g->n_gpu; k++)
                if (g->budget[k] && want->mem[k] > g->budget[k])
                    d = k;
            want->failed = true;
            want->failed_at = now_s();
            snprintf(want->fail_reason, sizeof want->fail_reason,
                     "role needs about %s on %s but only %s is available there (variet plan %s shows why)",
                     fmt_bytes(want->mem[d], need, sizeof need), d ? g->gpus[d - 1].name : "the host",
                     fmt_bytes(g->budget[d], budget, sizeof budget), want->name);
            want->restart_pending = false;
            gw__fail_queue(want, "insufficient_memory", "cannot run here: %s", want->fail_reason);
            want->failed = false; /* a later request may find a bigger budget after reload */
            continue;
        }
        /* a role's minimum residency ends, or a wait reaches max_wait: the answer may change then */
        double next = nv ? 0 : sched_next_change(s, n, now);
        double mw = g->reg->engine.max_wait_s;
        if (!nv && mw > 0 && want->n_queued) {
            double ty = TAILQ_FIRST(&want->queue)->t0 + mw;
            if (ty > now && (next == 0 || ty < next))
                next = ty;
        }
        if (next > 0) {
            if (!g->resched_timer)
                g->resched_timer = evtimer_new(g->base, on_resched, g);
            struct timeval tv = gw__tv(next - now + 0.01);
            evtimer_add(g->resched_timer, &tv);
        }
        for (size_t k = 0; k < nv; k++) {
            gw_role_t *vr = g->roles[victims[k]];
            fprintf(stderr, "variet: role %s: stopping (idle) to make room for %s\n", vr->name, want->name);
            gw__role_stop_idle(vr);
        }
        break; /* wait for STOPPED / idle events */
    }
    free(s);
    free(victims);
}

/* The load report's buffers (model, KV, recurrent state, compute, output;
 * the draft's among them; the projector's compute and weights) per device
 * in the scheduler's order: CUDAk → k + 1, every host buffer (CPU,
 * CPU_Mapped, CUDA_Host) → 0. false when the report names none. */
static bool measured_mem(const loadlog_t *lr, int n_gpu, uint64_t out[SCHED_MAX_DEV])
{
    double mib[SCHED_MAX_DEV] = {0};
    bool any = false;
    for (int i = 0; i < lr->n_dev; i++) {
        const loadlog_dev_t *d = &lr->dev[i];
        int k = 0;
        if (!strncmp(d->name, "CUDA", 4) && d->name[4] >= '0' && d->name[4] <= '9') {
            char *end;
            long v = strtol(d->name + 4, &end, 10);
            if (*end || v >= n_gpu || v + 1 >= SCHED_MAX_DEV)
                continue;
            k = (int)v + 1;
        }
        double m = d->model_mib + d->kv_mib + d->rs_mib + d->compute_mib + d->output_mib + d->mmproj_mib;
        if (m > 0) {
            mib[k] += m;
            any = true;
        }
    }
    /* the projector's weights have no buffer line: on the device it runs on */
    if (any && lr->mmproj_model_mib > 0) {
        long v = -1;
        if (!strncmp(lr->mmproj_device, "CUDA", 4))
            v = strtol(lr->mmproj_device + 4, NULL, 10);
        mib[v >= 0 && v < n_gpu && v + 1 < SCHED_MAX_DEV ? v + 1 : 0] += lr->mmproj_model_mib;
    }
    for (int k = 0; k < SCHED_MAX_DEV; k++)
        out[k] = (uint64_t)(mib[k] * 1048576.0);
    return any;
}

void gw__role_measured(gw_role_t *r)
{
    gw_mem_t *m = &r->mem_by[r->vision];
    uint64_t meas[SCHED_MAX_DEV];
    if (measured_mem(backend_report(r->be), r->g->n_gpu, meas)) {
        memcpy(m->meas, meas, sizeof meas);
        m->measured = true;
    }
    gw__role_mem_refresh(r);
}

void gw__admit_init(gateway_t *g)
{
    /* hardware once, before any child exists (hw_probe may popen nvidia-smi) */
    hw_info_t hw;
    char hwerr[256];
    hw_info_init(&hw);
    hw_probe(&hw, hwerr, sizeof hwerr);
    for (int k = 0; k < hw.n_gpu && k < PLAN_MAX_GPU; k++) {
        snprintf(g->gpus[k].name, sizeof g->gpus[k].name, "CUDA%d", k);
        g->gpus[k].free_mib = hw.gpu[k].mem_free_mib;
        int64_t avail = hw.gpu[k].mem_free_mib - 512; /* CUDA context and fragmentation */
        g->budget[k + 1] = avail > 0 ? (uint64_t)avail << 20 : 1;
        g->n_gpu++;
    }
    g->budget[0] = g->reg->engine.memory_budget;
}
