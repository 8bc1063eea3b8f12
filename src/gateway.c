/*
 * gateway.c — the role gateway (see gateway.h).
 *
 * Request path: evhttp hands us a complete request (header and body limits
 * enforced by evhttp: 413 past max_body); we parse only "model" and
 * "stream" from the JSON body, find the role, and either proxy at once
 * (role ready) or queue the request (bounded, with a timeout) and let the
 * scheduler start the role, stopping least-recently-used idle roles first
 * when limits require. Proxying streams: upstream header → reply start,
 * every upstream read → one chunk to the client, upstream end → reply end.
 * A client that goes away cancels its upstream request; a backend that dies
 * mid-response ends the client's stream with an error event (SSE) or a 502.
 *
 * Ownership: the gateway owns roles, backends, pending requests (pend_t)
 * and the registry. A pend_t lives from request arrival until the client
 * has its answer or is gone, and then is freed by pend_done().
 */
#include "gateway.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <stdarg.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "backend.h"
#include "gguf.h"
#include "modelinfo.h"
#include "http.h"
#include "httpd.h"
#include "hw.h"
#include "plan.h"
#include "route.h"
#include "scheduler.h"
#include "util.h"

#define N_BUCKETS 12
static const double buckets[N_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
#define MAX_CODES 16
#define TAIL_KEEP 4096
#define MAX_CRASHES 16

typedef struct role role_t;
typedef struct pend pend_t;
typedef struct gateway gateway_t;

struct pend {
    TAILQ_ENTRY(pend) q;
    gateway_t *g;
    role_t *role;
    httpd_req_t *req;                 /* NULL once answered or the client is gone */
    struct evhttp_request *up;        /* upstream request in flight */
    struct evhttp_connection *upconn;
    struct event *timeout;            /* queue timeout */
    bool queued, streaming, started, stream_req, up_failed;
    bool load_only; /* POST /roles/{name}/load: answered when the role is ready */
    bool requeued;  /* sent back to the queue once after its backend died */
    bool reused;    /* the upstream connection came from the pool */
    bool retried;   /* already retried on a fresh connection */
    uint64_t kv_expect; /* tokens restored into its slot before it was sent (0: none) */
    int status;
    double t0;
    char tail[TAIL_KEEP]; /* last bytes of the response: timings */
    size_t tail_len;
};
TAILQ_HEAD(pendq, pend);

/* A save or restore in flight: a chain of calls to the backend (kv_post). */
typedef void (*kv_cb)(role_t *r, int code, const char *body, size_t len);
struct kv_call {
    role_t *r;
    kv_cb cb;
    struct evhttp_connection *conn;
    pend_t *p;  /* the request waiting for a restore (NULL while saving) */
    char *body; /* the chat request body being tokenized; owned */
    size_t body_len;
};

typedef struct {
    int code;
    uint64_t n;
} code_count_t;

struct role {
    gateway_t *g;
    char *name;
    const reg_role_t *def; /* into g->reg */
    backend_t *be;
    struct pendq queue;
    int n_queued;
    int inflight;
    double last_used;
    uint64_t mem[SCHED_MAX_DEV]; /* bytes per device while loaded (0 = host): measured once loaded, else planned */
    uint64_t mem_plan[SCHED_MAX_DEV]; /* the planner's */
    uint64_t mem_meas[SCHED_MAX_DEV]; /* the last load report's buffers */
    bool measured;                    /* mem is mem_meas */
    uint64_t mem_total;
    int up_cap;         /* upstream connections at most (in flight + idle) */
    uint32_t ctx_len;   /* context length served */
    bool failed;
    double failed_at;
    char fail_reason[512];
    bool stale;         /* definition changed on reload: stop when idle */
    bool retired;       /* no longer in the registry: hidden, stops when idle */
    bool restart_pending; /* crashed: start again once restart_at has passed */
    bool suspect;       /* a fresh upstream connection failed while READY: dying? */
    int suspect_checks;
    struct event *suspect_timer;
    double restart_at;
    double crashes[MAX_CRASHES];
    int n_crashes;
    struct event *ttl_timer, *restart_timer;
    struct evhttp_connection **pool; /* idle upstream connections */
    size_t n_pool, cap_pool;
    /* metrics */
    code_count_t codes[MAX_CODES];
    uint64_t hist[N_BUCKETS + 1];
    double lat_sum;
    uint64_t lat_n, tokens_in, tokens_out, loads;
    double load_seconds, last_load_s;
    /* context kept across swaps (see "saved slots" below) */
    bool kv_on;          /* slots are saved before an idle stop and restored */
    char kv_off[200];    /* why not, when !kv_on */
    char *kv_dir;        /* <log_dir>/<role>/slots/ (with the slash llama-server needs) */
    uint64_t kv_keyv;    /* key of the current load: role, model file identity, args */
    char *kv_body;       /* the last answered chat request's body; owned */
    size_t kv_body_len;
    bool kv_fresh;       /* loaded, no request yet: the first one may restore */
    bool kv_saving;      /* saving before a stop: requests wait, the scheduler sees it stopping */
    bool kv_busy;        /* restoring for a request: the queue waits */
    struct kv_call *call; /* the one save/restore call in flight; owned */
    char kv_file[256];   /* file being saved / restored */
    char kv_restored[256]; /* file restored in this load ("" none) */
    uint64_t kv_saved_tokens;
    uint64_t kv_expect;  /* tokens the restored request must reuse */
    uint64_t kv_saves, kv_save_failures, kv_restores, kv_restore_failures;
    uint64_t kv_last_restore_tokens, kv_last_cache_n;
    char kv_error[400];  /* the last save/restore problem */
};

struct gateway {
    struct event_base *base;
    httpd_t *http;
    int port;
    registry_t *reg;
    char *exe;
    role_t **roles;
    size_t n_roles;
    double started;       /* now_s() at start */
    time_t started_wall;  /* wall clock at start, for "created" */
    uint64_t unrouted[4]; /* 400, 401, 404, 403/415 counts */
    char backend_key[65]; /* every backend's --api-key: only Variet knows it */
    char *backend_auth;   /* "Bearer <backend_key>" */
    route_policy_t policy;
    plan_gpu_t gpus[PLAN_MAX_GPU]; /* GPUs seen at start, free MiB then */
    int n_gpu;
    uint64_t budget[SCHED_MAX_DEV]; /* bytes per device for all roles (0 = no limit) */
    registry_t **old_regs; /* registries replaced by reloads (retired roles point into them) */
    size_t n_old_regs;
    struct event *resched_timer; /* schedule() again when a minimum residency ends */
    uint64_t kv_bytes;   /* saved slots on disk after the last check */
    uint64_t kv_evicted; /* saved slots removed to stay within kv_store_max */
};

/* ---------- small helpers ---------- */

/* Replace bytes that are not valid UTF-8 with '?' in place (jansson refuses
 * such strings: request paths, log lines and cut messages can hold them). */
static char *utf8_clean(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 ? 3 : -1;
        bool ok = n >= 0;
        for (int k = 1; ok && k <= n; k++)
            ok = (p[k] & 0xc0) == 0x80;
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n + 1;
    }
    return s;
}

/* Answer req with body (reference stolen) as JSON; req is done after. */
static void send_json(httpd_req_t *req, int code, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (!s) /* never expected: strings are cleaned before packing */
        s = xstrdup("{\"error\":{\"message\":\"internal error building the response\",\"type\":\"server_error\"}}");
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n++] = '\n';
    httpd_add_header(req, "Content-Type", "application/json");
    httpd_reply(req, code, s, n);
    free(s);
    json_decref(body);
}

static json_t *oai_error(const char *message, const char *type, const char *code)
{
    return json_pack("{s:{s:s,s:s,s:n,s:s?}}", "error", "message", message, "type", type, "param", "code", code);
}

static void send_error(httpd_req_t *req, int http, const char *type, const char *code,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void send_error(httpd_req_t *req, int http, const char *type, const char *code,
                       const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    utf8_clean(msg);
    if (http == 503)
        httpd_add_header(req, "Retry-After", "5");
    else if (http == 429)
        httpd_add_header(req, "Retry-After", "1");
    send_json(req, http, oai_error(msg, type, code));
}

static const char *role_state(const role_t *r)
{
    if (r->failed)
        return "failed";
    switch (backend_state(r->be)) {
    case BE_LOADING: return "loading";
    case BE_READY: return "ready";
    case BE_STOPPING: return "stopping";
    default: return "stopped";
    }
}

static role_t *find_role(gateway_t *g, const char *name)
{
    const reg_role_t *d = registry_find(g->reg, name);
    if (!d)
        return NULL;
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired && !strcmp(g->roles[i]->name, d->name))
            return g->roles[i];
    return NULL;
}

static void count_code(role_t *r, int code)
{
    for (int i = 0; i < MAX_CODES; i++) {
        if (r->codes[i].code == code || r->codes[i].code == 0) {
            r->codes[i].code = code;
            r->codes[i].n++;
            return;
        }
    }
}

static void observe(role_t *r, int code, double secs)
{
    count_code(r, code);
    int b = 0;
    while (b < N_BUCKETS && secs > buckets[b])
        b++;
    r->hist[b]++;
    r->lat_sum += secs;
    r->lat_n++;
}

/* "prompt_n":123 → 123 (last occurrence in the tail) */
static uint64_t tail_num(const char *s, size_t n, const char *key)
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

/* ---------- roles ---------- */

static void schedule(gateway_t *g);
static void role_idle_check(role_t *r);
static void drain_queue(role_t *r);
static void proxy_start(pend_t *p);
static void pend_done(pend_t *p);
static void on_backend(backend_t *b, be_event_t ev, void *ud);
static void role_stop_idle(role_t *r);
static void kv_configure(role_t *r);
static uint64_t kv_key(const role_t *r);
static void kv_call_free(struct kv_call *c);
static void proxy_or_restore(pend_t *p);
static void kv_after_answer(pend_t *p, httpd_req_t *rq);
static void kv_enforce(gateway_t *g);

static double role_ttl(const role_t *r)
{
    return r->def && r->def->ttl_s >= 0 ? r->def->ttl_s : r->g->reg->engine.idle_ttl_s;
}

/* Memory the role needs on each device while loaded, from the planner
 * (weights, KV, recurrent state, compute, output) against the hardware
 * seen at start. */
static int role_estimate(role_t *r, char *err, size_t errlen)
{
    gateway_t *g = r->g;
    gguf_t *f = NULL;
    mi_t *m = NULL;
    char e[512];
    if (gguf_open(r->def->model_abs, &f, e, sizeof e)) {
        snprintf(err, errlen, "%s.model_path: %s", r->name, e);
        return -EINVAL;
    }
    if (mi_from_gguf(f, &m, e, sizeof e)) {
        snprintf(err, errlen, "%s.model_path: %s", r->name, e);
        gguf_close(&f);
        return -EINVAL;
    }
    plan_opts_t o;
    if (plan_opts_from_args(r->def->args, r->def->n_args, &o, e, sizeof e)) {
        snprintf(err, errlen, "%s.%s", r->name, e);
        mi_free(&m);
        gguf_close(&f);
        return -EINVAL;
    }
    plan_t p;
    plan_predict(m, &o, g->gpus, g->n_gpu, -1, 0, &p);
    r->ctx_len = (uint32_t)p.n_ctx;
    /* llama-server serves each connection, idle keep-alive ones included, on
     * one of a few HTTP threads: keep at most slots + 1 connections open so
     * none waits behind an idle one (the rest wait here, in order) */
    r->up_cap = (int)o.n_seq + 1;
    r->mem_total = 0;
    for (int d = 0; d < p.n_dev && d < SCHED_MAX_DEV; d++) {
        r->mem[d] = r->mem_plan[d] = p.dev[d].total;
        r->mem_total += p.dev[d].total;
    }
    mi_free(&m);
    gguf_close(&f);
    return 0;
}

static role_t *role_new(gateway_t *g, const reg_role_t *def, char *err, size_t errlen)
{
    role_t *r = xcalloc(1, sizeof *r); /* owned by g->roles */
    r->g = g;
    r->name = xstrdup(def->name);
    r->def = def;
    TAILQ_INIT(&r->queue);
    if (role_estimate(r, err, errlen)) {
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
    kv_configure(r);
    return r;
}

static void pool_clear(role_t *r)
{
    for (size_t i = 0; i < r->n_pool; i++)
        evhttp_connection_free(r->pool[i]);
    r->n_pool = 0;
}

static void role_free(role_t *r)
{
    pool_clear(r);
    free(r->pool);
    backend_free(&r->be);
    if (r->ttl_timer)
        event_free(r->ttl_timer);
    if (r->restart_timer)
        event_free(r->restart_timer);
    if (r->suspect_timer)
        event_free(r->suspect_timer);
    if (r->call) {
        pend_t *p = r->call->p;
        kv_call_free(r->call);
        if (p)
            pend_done(p);
    }
    free(r->kv_dir);
    free(r->kv_body);
    free(r->name);
    free(r);
}

static bool role_busy(const role_t *r) { return r->inflight > 0 || r->n_queued > 0; }

/* Could stopping r make room for w (a shared limit: the role count, or a
 * device both use that has a budget), and may it be stopped for w? */
static bool stop_helps(const role_t *r, const role_t *w)
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
static bool role_yields(const role_t *r)
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
        role_t *w = g->roles[i];
        if (w == r || w->retired || w->failed || !w->n_queued || backend_state(w->be) != BE_STOPPED ||
            (w->restart_pending && now < w->restart_at))
            continue;
        double t0 = TAILQ_FIRST(&w->queue)->t0;
        if (t0 < mine && now - t0 >= mw && stop_helps(r, w))
            return true;
    }
    return false;
}

static int role_limit(const role_t *r)
{
    int m = r->def->max_concurrent;
    return m > 0 && m < r->up_cap ? m : r->up_cap;
}

static int role_queue_size(const role_t *r)
{
    return r->def->queue_size > 0 ? r->def->queue_size : r->g->reg->engine.queue_size;
}

/* Answer every request waiting for role r with a 503 (code and message
 * given), e.g. when it failed to load. */
static void fail_queue(role_t *r, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail_queue(role_t *r, const char *code, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pend_t *p;
    while ((p = TAILQ_FIRST(&r->queue))) {
        TAILQ_REMOVE(&r->queue, p, q);
        r->n_queued--;
        p->queued = false;
        if (p->req) {
            observe(r, 503, now_s() - p->t0);
            send_error(p->req, 503, "server_error", code, "role '%s' %s", r->name, msg);
        }
        pend_done(p);
    }
}

static void start_role(role_t *r)
{
    char err[512];
    gateway_t *g = r->g;
    if (backend_state(r->be) != BE_STOPPED)
        return;
    /* a role that keeps its context gets a slot save path */
    char **args = r->def->args;
    size_t n_args = r->def->n_args;
    char **kv_args = NULL;
    if (r->kv_on) {
        r->kv_keyv = kv_key(r);
        kv_args = xcalloc(n_args + 3, sizeof *kv_args);
        memcpy(kv_args, args, n_args * sizeof *args);
        kv_args[n_args] = "--slot-save-path";
        kv_args[n_args + 1] = r->kv_dir;
        args = kv_args;
        n_args += 2;
    }
    int rc = backend_start(r->be, g->exe, r->def->model_abs, args, n_args, err, sizeof err);
    free(kv_args);
    if (rc) {
        r->failed = true;
        r->failed_at = now_s();
        snprintf(r->fail_reason, sizeof r->fail_reason, "%s", err);
        fprintf(stderr, "variet: role %s: %s\n", r->name, err);
        fail_queue(r, "role_failed", "failed to start: %s", err);
        return;
    }
    fprintf(stderr, "variet: role %s: starting (pid %d, port %d)\n", r->name, (int)backend_pid(r->be),
            backend_port(r->be));
}

static void on_resched(evutil_socket_t fd, short what, void *arg) { schedule(arg); }

/* Try to start every role that has waiting requests (oldest wait first). */
static void schedule(gateway_t *g)
{
    size_t n = g->n_roles;
    if (!n)
        return;
    sched_role_t *s = xcalloc(n, sizeof *s);
    size_t *victims = xcalloc(n, sizeof *victims);
    for (;;) {
        /* the stopped role whose first queued request is oldest */
        role_t *want = NULL;
        size_t wi = 0;
        for (size_t i = 0; i < n; i++) {
            role_t *r = g->roles[i];
            if (backend_state(r->be) != BE_STOPPED || r->failed || r->retired)
                continue;
            double now = now_s();
            bool restart = r->restart_pending && now >= r->restart_at;
            if (r->restart_pending && now < r->restart_at) {
                /* crash backoff: make sure something wakes us when it ends */
                if (r->restart_timer && !evtimer_pending(r->restart_timer, NULL)) {
                    double d = r->restart_at - now;
                    struct timeval tv = {.tv_sec = (time_t)d, .tv_usec = (suseconds_t)((d - floor(d)) * 1e6)};
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
            role_t *r = g->roles[i];
            be_state_t st = backend_state(r->be);
            s[i].state = st == BE_LOADING ? SCHED_R_LOADING : st == BE_READY && !r->kv_saving ? SCHED_R_READY
                       : st == BE_STOPPING || st == BE_READY ? SCHED_R_STOPPING : SCHED_R_STOPPED;
            /* a yielding role's queue waits for the swap back: only in-flight requests hold it */
            s[i].busy = r->inflight > 0 || (r->n_queued > 0 && !role_yields(r));
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
            start_role(want);
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
            fail_queue(want, "insufficient_memory", "cannot run here: %s", want->fail_reason);
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
            double d = next - now + 0.01;
            struct timeval tv = {.tv_sec = (time_t)d, .tv_usec = (suseconds_t)((d - floor(d)) * 1e6)};
            evtimer_add(g->resched_timer, &tv);
        }
        for (size_t k = 0; k < nv; k++) {
            role_t *vr = g->roles[victims[k]];
            fprintf(stderr, "variet: role %s: stopping (idle) to make room for %s\n", vr->name, want->name);
            role_stop_idle(vr);
        }
        break; /* wait for STOPPED / idle events */
    }
    free(s);
    free(victims);
}

static void on_ttl(evutil_socket_t fd, short what, void *arg)
{
    role_t *r = arg;
    if (backend_state(r->be) == BE_READY && !role_busy(r)) {
        fprintf(stderr, "variet: role %s: idle for %.0f s, stopping\n", r->name, role_ttl(r));
        role_stop_idle(r);
    }
}

/* Called whenever a role may have become idle. */
static void role_idle_check(role_t *r)
{
    if (backend_state(r->be) != BE_READY)
        return;
    if (role_busy(r)) {
        if (!r->inflight && role_yields(r))
            schedule(r->g); /* it yields: the scheduler may stop it now */
        return;
    }
    if (r->stale) {
        pool_clear(r);
        backend_stop(r->be);
        return;
    }
    double ttl = role_ttl(r);
    if (ttl > 0) {
        if (!r->ttl_timer)
            r->ttl_timer = evtimer_new(r->g->base, on_ttl, r);
        struct timeval tv = {.tv_sec = (time_t)ttl, .tv_usec = (suseconds_t)((ttl - floor(ttl)) * 1e6)};
        evtimer_add(r->ttl_timer, &tv);
    }
    schedule(r->g); /* someone may be waiting for room */
}

/* ---------- pending requests ---------- */

static void pend_done(pend_t *p);

/* The client went away before its answer was complete (httpd). */
static void on_client_close(httpd_req_t *req, void *arg)
{
    pend_t *p = arg;
    p->req = NULL;
    if (p->queued) {
        TAILQ_REMOVE(&p->role->queue, p, q);
        p->role->n_queued--;
        p->queued = false;
        role_t *r = p->role;
        pend_done(p);
        role_idle_check(r);
        return;
    }
    if (p->up) {
        /* cancel the upstream request; llama-server stops generating */
        role_t *r = p->role;
        evhttp_cancel_request(p->up);
        p->up = NULL;
        if (p->upconn) {
            evhttp_connection_free(p->upconn);
            p->upconn = NULL;
        }
        r->inflight--;
        r->last_used = now_s();
        observe(r, 499, now_s() - p->t0);
        pend_done(p);
        drain_queue(r);
        role_idle_check(r);
    }
}

/* Forget p: its answer is out (its request is done) or its client gone. */
static void pend_done(pend_t *p)
{
    if (p->timeout)
        event_free(p->timeout);
    free(p);
}

static void on_queue_timeout(evutil_socket_t fd, short what, void *arg)
{
    pend_t *p = arg;
    role_t *r = p->role;
    if (!p->queued)
        return;
    TAILQ_REMOVE(&r->queue, p, q);
    r->n_queued--;
    p->queued = false;
    if (p->req) {
        observe(r, 503, now_s() - p->t0);
        send_error(p->req, 503, "server_error", "timeout",
                   "timed out after %.0f s waiting for role '%s' (state %s)",
                   r->g->reg->engine.queue_timeout_s, r->name, role_state(r));
    }
    pend_done(p);
    role_idle_check(r);
}

/* ---------- proxy ---------- */

static struct evhttp_connection *pool_get(role_t *r, bool fresh, bool *reused)
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

static void pool_put(role_t *r, struct evhttp_connection *c)
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

static void keep_tail(pend_t *p, struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    if (n >= TAIL_KEEP) {
        struct evbuffer_ptr pos;
        evbuffer_ptr_set(b, &pos, n - TAIL_KEEP, EVBUFFER_PTR_SET);
        evbuffer_copyout_from(b, &pos, p->tail, TAIL_KEEP);
        p->tail_len = TAIL_KEEP;
        return;
    }
    if (p->tail_len + n > TAIL_KEEP) {
        size_t drop = p->tail_len + n - TAIL_KEEP;
        memmove(p->tail, p->tail + drop, p->tail_len - drop);
        p->tail_len -= drop;
    }
    evbuffer_copyout(b, p->tail + p->tail_len, n);
    p->tail_len += n;
}

static int on_up_headers(struct evhttp_request *up, void *arg)
{
    pend_t *p = arg;
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
    pend_t *p = arg;
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
    pend_t *p = arg;
    p->up_failed = true;
}

/* Put p back at the head of its role's queue (its upstream attempt failed
 * before anything reached the client), with a fresh queue timeout. */
static void requeue_head(pend_t *p, struct evhttp_connection *c)
{
    role_t *r = p->role;
    if (c)
        evhttp_connection_free(c);
    p->requeued = true;
    TAILQ_INSERT_HEAD(&r->queue, p, q);
    r->n_queued++;
    p->queued = true;
    if (!p->timeout)
        p->timeout = evtimer_new(r->g->base, on_queue_timeout, p);
    double t = r->g->reg->engine.queue_timeout_s;
    struct timeval tv = {.tv_sec = (time_t)t, .tv_usec = (suseconds_t)((t - floor(t)) * 1e6)};
    evtimer_add(p->timeout, &tv);
}

/* A suspect role: reap until its exit shows up (then the crash path
 * restarts it and answers the queue), or, after 0.5 s of it still running,
 * trust it again and send the queue. */
static void on_suspect(evutil_socket_t fd, short what, void *arg)
{
    role_t *r = arg;
    backend_reap_all(); /* a crash clears r->suspect */
    if (!r->suspect)
        return;
    if (backend_state(r->be) != BE_READY || ++r->suspect_checks >= 25) {
        r->suspect = false;
        drain_queue(r);
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
static bool requeue_if_gone(pend_t *p, struct evhttp_connection *c)
{
    role_t *r = p->role;
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
    requeue_head(p, c);
    schedule(r->g);
    return true;
}

static void on_up_done(struct evhttp_request *up, void *arg)
{
    pend_t *p = arg;
    role_t *r = p->role;
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
            kv_after_answer(p, rq);
            httpd_reply_end(rq);
        }
        r->tokens_in += tail_num(p->tail, p->tail_len, "\"prompt_n\"");
        r->tokens_out += tail_num(p->tail, p->tail_len, "\"predicted_n\"");
        observe(r, p->status, now_s() - p->t0);
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
        proxy_start(p); /* on failure it answers and frees p */
        drain_queue(r);
        role_idle_check(r);
        return;
    } else {
        const char *why = backend_state(r->be) == BE_READY ? "the connection to llama-server failed"
                                                           : "llama-server exited while handling the request";
        if (p->req && p->started && p->streaming) {
            /* an SSE error event, then the end of the stream */
            json_t *e = oai_error(why, "server_error", "backend_failed");
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
            send_error(p->req, 502, "server_error", "backend_failed", "role '%s': %s", r->name, why);
        }
        observe(r, 502, now_s() - p->t0);
        if (c)
            evhttp_connection_free(c);
    }
    pend_done(p);
    drain_queue(r);
    role_idle_check(r);
}

static void proxy_start(pend_t *p)
{
    role_t *r = p->role;
    httpd_req_t *req = p->req;
    const http_head_t *hd = httpd_head(req);
    /* every attempt starts clean (a request re-sent after a restart must
     * not inherit the failure of its first attempt) */
    p->up_failed = p->streaming = p->started = false;
    p->status = 0;
    p->tail_len = 0;
    struct evhttp_connection *c = pool_get(r, p->retried, &p->reused);
    if (!c) {
        send_error(req, 502, "server_error", "backend_failed", "role '%s': cannot connect to llama-server", r->name);
        pend_done(p);
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
    struct evbuffer *body = httpd_body(req);
    size_t len = evbuffer_get_length(body);
    char cl[32];
    snprintf(cl, sizeof cl, "%zu", len);
    evhttp_add_header(oh, "Content-Length", cl);
    evbuffer_add(evhttp_request_get_output_buffer(up), evbuffer_pullup(body, -1), len);
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
        send_error(req, 502, "server_error", "backend_failed", "role '%s': request to llama-server failed", r->name);
        pend_done(p);
    }
}

/* Route a parsed request to its role: proxy now or queue. */
static void dispatch(gateway_t *g, role_t *r, httpd_req_t *req, bool stream, bool load_only)
{
    pend_t *p = xcalloc(1, sizeof *p); /* freed by pend_done */
    p->load_only = load_only;
    p->g = g;
    p->role = r;
    p->req = req;
    p->t0 = now_s();
    p->stream_req = stream;
    httpd_on_close(req, on_client_close, p);
    r->last_used = p->t0;
    if (r->failed && now_s() - r->failed_at < g->reg->engine.restart_window_s) {
        observe(r, 503, 0);
        send_error(req, 503, "server_error", "role_failed", "role '%s' is failed: %s", r->name, r->fail_reason);
        pend_done(p);
        return;
    }
    r->failed = false;
    if (backend_state(r->be) == BE_READY && !r->suspect && !r->kv_busy && !r->kv_saving &&
        r->inflight < role_limit(r) && !r->n_queued && !role_yields(r)) {
        proxy_or_restore(p);
        return;
    }
    if (r->n_queued >= role_queue_size(r)) {
        observe(r, 429, 0);
        send_error(req, 429, "rate_limit_error", "queue_full",
                   "role '%s' is %s and its queue is full (%d waiting, %d in flight)", r->name, role_state(r),
                   r->n_queued, r->inflight);
        pend_done(p);
        return;
    }
    TAILQ_INSERT_TAIL(&r->queue, p, q);
    r->n_queued++;
    p->queued = true;
    p->timeout = evtimer_new(g->base, on_queue_timeout, p);
    double t = g->reg->engine.queue_timeout_s;
    struct timeval tv = {.tv_sec = (time_t)t, .tv_usec = (suseconds_t)((t - floor(t)) * 1e6)};
    evtimer_add(p->timeout, &tv);
    schedule(g);
}

/* Start queued requests of a ready role while connections are free. */
static void drain_queue(role_t *r)
{
    pend_t *p;
    while (backend_state(r->be) == BE_READY && !r->suspect && !r->kv_busy && !r->kv_saving &&
           r->inflight < role_limit(r) && !role_yields(r) && (p = TAILQ_FIRST(&r->queue))) {
        TAILQ_REMOVE(&r->queue, p, q);
        r->n_queued--;
        p->queued = false;
        evtimer_del(p->timeout);
        if (p->req && p->load_only) {
            send_json(p->req, 200, json_pack("{s:s,s:s,s:f}", "role", r->name, "state", "ready", "load_seconds",
                                             r->last_load_s));
            pend_done(p);
        } else if (p->req) {
            proxy_or_restore(p);
        } else {
            pend_done(p);
        }
    }
}

/* ---------- context kept across swaps (saved slots) ----------
 *
 * A role whose llama-server can save its slot (-np 1, no projector,
 * kv_store_max > 0) starts with --slot-save-path <log_dir>/<role>/slots/.
 * The body of its last answered chat request is kept. Before the role is
 * stopped while idle (eviction, TTL), that body goes through the backend's
 * /apply-template and /tokenize, and slot 0 is saved as
 *   kv-<role>-<key>-<P>-<hash>.slot
 * where key hashes the role, the model file's identity (path, size, mtime,
 * inode) and the args, P is the number of prompt tokens and hash covers
 * them. The first chat request after the role loads again is tokenized the
 * same way; the longest file whose P tokens are a prefix of it is restored
 * into slot 0 before the request is forwarded. The restore counts as
 * verified only when that answer's timings.cache_n >= P (P - 1 when the
 * prompt is the saved one: its last token is evaluated again); otherwise (and when
 * the restore call fails) it is counted as failed, the file is removed and
 * the request is served with a normal prefill. Files are removed oldest
 * first (mtime; a restore touches its file) past kv_store_max in total.
 * At most one such upstream call runs per role (r->call). */


static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define FNV0 0xcbf29ce484222325ull

static bool is_chat_path(const char *target)
{
    return !strncmp(target, "/v1/chat/completions", 20) || !strncmp(target, "/chat/completions", 17);
}

/* Whether the role's context can be kept, with the reason when not. */
static void kv_configure(role_t *r)
{
    gateway_t *g = r->g;
    const reg_role_t *d = r->def;
    long np = 4; /* llama-server's auto */
    args_get_long(d->args, d->n_args, ARG_PARALLEL, &np);
    bool own_path = false;
    for (size_t i = 0; i < d->n_args; i++)
        own_path |= !strcmp(d->args[i], "--slot-save-path");
    r->kv_on = false;
    if (args_find(d->args, d->n_args, ARG_MMPROJ) >= 0)
        snprintf(r->kv_off, sizeof r->kv_off, "not kept across swaps: llama-server refuses to save or restore "
                 "slots while a projector is loaded (--mmproj)");
    else if (!g->reg->engine.kv_store_max)
        snprintf(r->kv_off, sizeof r->kv_off, "not kept across swaps: _engine.kv_store_max is 0");
    else if (!g->reg->engine.log_dir)
        snprintf(r->kv_off, sizeof r->kv_off, "not kept across swaps: no log_dir");
    else if (np != 1)
        snprintf(r->kv_off, sizeof r->kv_off, "not kept across swaps: only roles with -np 1 keep their context "
                 "(which of %ld slots holds a conversation is not known)", np);
    else if (own_path)
        snprintf(r->kv_off, sizeof r->kv_off, "not kept across swaps: the role's args set --slot-save-path");
    else
        r->kv_on = true;
    if (!r->kv_on)
        return;
    char *top = xasprintf("%s/%s", g->reg->engine.log_dir, r->name);
    mkdir(g->reg->engine.log_dir, 0755);
    mkdir(top, 0755);
    free(r->kv_dir);
    r->kv_dir = xasprintf("%s/slots/", top);
    mkdir(r->kv_dir, 0755);
    free(top);
}

/* The key of what the backend is about to load: role, model file, args. */
static uint64_t kv_key(const role_t *r)
{
    const reg_role_t *d = r->def;
    struct stat st;
    uint64_t h = fnv1a(FNV0, r->name, strlen(r->name) + 1);
    h = fnv1a(h, d->model_abs, strlen(d->model_abs) + 1);
    if (stat(d->model_abs, &st) == 0) {
        int64_t id[5] = {(int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec, (int64_t)st.st_mtim.tv_nsec,
                         (int64_t)st.st_ino, (int64_t)st.st_dev};
        h = fnv1a(h, id, sizeof id);
    }
    for (size_t i = 0; i < d->n_args; i++)
        h = fnv1a(h, d->args[i], strlen(d->args[i]) + 1);
    return h;
}

static void kv_note(role_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void kv_note(role_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->kv_error, sizeof r->kv_error, fmt, ap);
    va_end(ap);
    utf8_clean(r->kv_error);
    fprintf(stderr, "variet: role %s: %s\n", r->name, r->kv_error);
}

static void kv_call_free(struct kv_call *c)
{
    if (c->conn)
        evhttp_connection_free(c->conn);
    free(c->body);
    free(c);
}

static void on_kv_done(struct evhttp_request *up, void *arg)
{
    struct kv_call *c = arg;
    role_t *r = c->r;
    int code = up ? evhttp_request_get_response_code(up) : 0;
    struct evbuffer *in = up ? evhttp_request_get_input_buffer(up) : NULL;
    size_t len = in ? evbuffer_get_length(in) : 0;
    char *body = xmalloc(len + 1);
    if (len)
        evbuffer_copyout(in, body, len);
    body[len] = 0;
    /* the connection is freed by the next call or kv_call_free; not from
     * inside its own callback */
    c->cb(r, code, body, len);
    free(body);
}

/* POST json to the role's backend; cb gets the status (0: no answer) and
 * body. 0, or -1 when the request could not be made (cb not called). */
static int kv_post(role_t *r, const char *path, const char *json, size_t len, kv_cb cb)
{
    struct kv_call *c = r->call;
    if (c->conn)
        evhttp_connection_free(c->conn);
    c->conn = evhttp_connection_base_new(r->g->base, NULL, "127.0.0.1", (unsigned short)backend_port(r->be));
    if (!c->conn)
        return -1;
    evhttp_connection_set_timeout(c->conn, (int)ceil(r->g->reg->engine.upstream_timeout_s));
    c->cb = cb;
    struct evhttp_request *up = evhttp_request_new(on_kv_done, c);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(up);
    char cl[32];
    snprintf(cl, sizeof cl, "%zu", len);
    evhttp_add_header(oh, "Host", "127.0.0.1");
    evhttp_add_header(oh, "Authorization", r->g->backend_auth);
    evhttp_add_header(oh, "Content-Type", "application/json");
    evhttp_add_header(oh, "Content-Length", cl);
    evbuffer_add(evhttp_request_get_output_buffer(up), json, len);
    if (evhttp_make_request(c->conn, up, EVHTTP_REQ_POST, path) != 0)
        return -1;
    return 0;
}

/* /apply-template's answer → /tokenize request body (NULL if malformed). */
static char *kv_tokenize_body(const char *body, size_t len)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *prompt = json_string_value(json_object_get(j, "prompt"));
    /* as llama-server tokenizes a chat prompt: specials added and parsed */
    json_t *t = prompt ? json_pack("{s:s,s:b,s:b}", "content", prompt, "add_special", 1, "parse_special", 1) : NULL;
    char *s = t ? json_dumps(t, JSON_COMPACT) : NULL;
    json_decref(t);
    json_decref(j);
    return s;
}

/* /tokenize's answer → tokens (caller frees) or NULL. */
static int32_t *kv_tokens(const char *body, size_t len, size_t *n)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    json_t *a = json_object_get(j, "tokens");
    int32_t *t = NULL;
    *n = 0;
    if (json_is_array(a) && json_array_size(a)) {
        t = xcalloc(json_array_size(a), sizeof *t);
        size_t i;
        json_t *v;
        json_array_foreach(a, i, v) {
            if (!json_is_integer(v)) {
                free(t);
                json_decref(j);
                return NULL;
            }
            t[i] = (int32_t)json_integer_value(v);
        }
        *n = json_array_size(a);
    }
    json_decref(j);
    return t;
}

static bool kv_parse_name(const role_t *r, const char *name, uint64_t *n_tok, uint64_t *hash)
{
    char pre[160];
    int k = snprintf(pre, sizeof pre, "kv-%s-%016llx-", r->name, (unsigned long long)r->kv_keyv);
    if (k <= 0 || strncmp(name, pre, (size_t)k))
        return false;
    char *end;
    unsigned long long p = strtoull(name + k, &end, 10);
    if (*end != '-' || !p)
        return false;
    unsigned long long h = strtoull(end + 1, &end, 16);
    if (strcmp(end, ".slot"))
        return false;
    *n_tok = p;
    *hash = h;
    return true;
}

/* Remove saved slots, oldest first, until all roles' files fit kv_store_max. */
static void kv_enforce(gateway_t *g)
{
    typedef struct { char *path; uint64_t size; double mtime; } ent_t;
    ent_t *e = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < g->n_roles; i++) {
        role_t *r = g->roles[i];
        DIR *dir = r->kv_dir ? opendir(r->kv_dir) : NULL;
        struct dirent *de;
        while (dir && (de = readdir(dir))) {
            if (strncmp(de->d_name, "kv-", 3) || !strstr(de->d_name, ".slot"))
                continue;
            char *path = xasprintf("%s%s", r->kv_dir, de->d_name);
            struct stat st;
            if (stat(path, &st) || !S_ISREG(st.st_mode)) {
                free(path);
                continue;
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                e = xrealloc(e, cap * sizeof *e);
            }
            e[n++] = (ent_t){path, (uint64_t)st.st_size, (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec * 1e-9};
            total += (uint64_t)st.st_size;
        }
        if (dir)
            closedir(dir);
    }
    while (total > g->reg->engine.kv_store_max && n) {
        size_t old = 0;
        for (size_t k = 1; k < n; k++)
            if (e[k].mtime < e[old].mtime)
                old = k;
        unlink(e[old].path);
        total -= e[old].size;
        g->kv_evicted++;
        free(e[old].path);
        e[old] = e[--n];
    }
    g->kv_bytes = total;
    for (size_t k = 0; k < n; k++)
        free(e[k].path);
    free(e);
}

/* --- save, then stop --- */

static void kv_save_end(role_t *r, bool saved)
{
    kv_call_free(r->call);
    r->call = NULL;
    r->kv_saving = false;
    if (saved) {
        r->kv_saves++;
        /* the file restored in this load is a prefix of the new one */
        if (r->kv_restored[0] && strcmp(r->kv_restored, r->kv_file)) {
            char *old = xasprintf("%s%s", r->kv_dir, r->kv_restored);
            unlink(old);
            free(old);
        }
        r->kv_restored[0] = 0;
        kv_enforce(r->g);
    } else {
        r->kv_save_failures++;
    }
    if (backend_state(r->be) == BE_READY && !role_busy(r)) {
        pool_clear(r);
        backend_stop(r->be);
    } else {
        drain_queue(r); /* requests came while it saved: it stays */
        role_idle_check(r);
    }
    schedule(r->g);
}

static void on_kv_saved(role_t *r, int code, const char *body, size_t len)
{
    if (code != 200) {
        kv_note(r, "saving the context failed: HTTP %d %.200s", code, body);
        kv_save_end(r, false);
        return;
    }
    fprintf(stderr, "variet: role %s: context saved (%llu tokens) to %s\n", r->name,
            (unsigned long long)r->kv_saved_tokens, r->kv_file);
    kv_save_end(r, true);
}

static void on_kv_save_tokens(role_t *r, int code, const char *body, size_t len)
{
    size_t n = 0;
    int32_t *t = code == 200 ? kv_tokens(body, len, &n) : NULL;
    if (!t) {
        kv_note(r, "saving the context failed: /tokenize answered %d", code);
        kv_save_end(r, false);
        return;
    }
    uint64_t h = fnv1a(FNV0, t, n * sizeof *t);
    free(t);
    snprintf(r->kv_file, sizeof r->kv_file, "kv-%s-%016llx-%zu-%016llx.slot", r->name,
             (unsigned long long)r->kv_keyv, n, (unsigned long long)h);
    r->kv_saved_tokens = n;
    json_t *j = json_pack("{s:s}", "filename", r->kv_file);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    int rc = kv_post(r, "/slots/0?action=save", s, strlen(s), on_kv_saved);
    free(s);
    if (rc) {
        kv_note(r, "saving the context failed: cannot reach llama-server");
        kv_save_end(r, false);
    }
}

static void on_kv_save_template(role_t *r, int code, const char *body, size_t len)
{
    char *tb = code == 200 ? kv_tokenize_body(body, len) : NULL;
    if (!tb || kv_post(r, "/tokenize", tb, strlen(tb), on_kv_save_tokens)) {
        kv_note(r, "saving the context failed: /apply-template answered %d", code);
        free(tb);
        kv_save_end(r, false);
        return;
    }
    free(tb);
}

/* Stop an idle ready role, saving its slot first when it keeps context. */
static void role_stop_idle(role_t *r)
{
    if (r->kv_saving)
        return;
    pool_clear(r);
    if (!r->kv_on || !r->kv_body || backend_state(r->be) != BE_READY || r->call) {
        backend_stop(r->be);
        return;
    }
    r->call = xcalloc(1, sizeof *r->call);
    r->call->r = r;
    r->kv_saving = true;
    if (kv_post(r, "/apply-template", r->kv_body, r->kv_body_len, on_kv_save_template)) {
        kv_note(r, "saving the context failed: cannot reach llama-server");
        kv_save_end(r, false);
    }
}

/* --- restore, then forward --- */

static void kv_restore_end(role_t *r)
{
    pend_t *p = r->call->p;
    kv_call_free(r->call);
    r->call = NULL;
    r->kv_busy = false;
    r->inflight--;
    if (p->req)
        proxy_start(p);
    else
        pend_done(p);
    drain_queue(r);
    role_idle_check(r);
}

static void kv_drop(role_t *r, const char *file)
{
    char *path = xasprintf("%s%s", r->kv_dir, file);
    unlink(path);
    free(path);
    kv_enforce(r->g);
}

static void on_kv_restored(role_t *r, int code, const char *body, size_t len)
{
    pend_t *p = r->call->p;
    if (code != 200) {
        r->kv_restore_failures++;
        kv_note(r, "restoring the context from %s failed (HTTP %d %.200s); prefilling instead", r->kv_file, code,
                body);
        kv_drop(r, r->kv_file);
    } else {
        p->kv_expect = r->kv_expect;
        snprintf(r->kv_restored, sizeof r->kv_restored, "%s", r->kv_file);
        char *path = xasprintf("%s%s", r->kv_dir, r->kv_file);
        utimensat(AT_FDCWD, path, NULL, 0); /* most recently used */
        free(path);
    }
    kv_restore_end(r);
}

static void on_kv_restore_tokens(role_t *r, int code, const char *body, size_t len)
{
    size_t n = 0;
    int32_t *t = code == 200 ? kv_tokens(body, len, &n) : NULL;
    /* the longest saved prefix of these tokens */
    uint64_t best = 0;
    char best_name[256] = "";
    DIR *dir = t ? opendir(r->kv_dir) : NULL;
    struct dirent *de;
    while (dir && (de = readdir(dir))) {
        uint64_t pn, ph;
        if (!kv_parse_name(r, de->d_name, &pn, &ph) || pn > n || pn <= best)
            continue;
        if (fnv1a(FNV0, t, pn * sizeof *t) == ph) {
            best = pn;
            snprintf(best_name, sizeof best_name, "%s", de->d_name);
        }
    }
    if (dir)
        closedir(dir);
    free(t);
    if (!best) {
        kv_restore_end(r);
        return;
    }
    snprintf(r->kv_file, sizeof r->kv_file, "%s", best_name);
    r->kv_saved_tokens = best;
    /* llama-server evaluates at least the prompt's last token again (its
     * logits start the answer): a prompt equal to the saved one reuses n - 1 */
    r->kv_expect = best < n ? best : n - 1;
    json_t *j = json_pack("{s:s}", "filename", best_name);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    int rc = kv_post(r, "/slots/0?action=restore", s, strlen(s), on_kv_restored);
    free(s);
    if (rc)
        kv_restore_end(r);
}

static void on_kv_restore_template(role_t *r, int code, const char *body, size_t len)
{
    char *tb = code == 200 ? kv_tokenize_body(body, len) : NULL;
    if (!tb || kv_post(r, "/tokenize", tb, strlen(tb), on_kv_restore_tokens))
        kv_restore_end(r);
    free(tb);
}

/* Whether a saved slot of this role and load key may exist. */
static bool kv_has_saved(role_t *r)
{
    DIR *dir = opendir(r->kv_dir);
    struct dirent *de;
    bool any = false;
    while (dir && !any && (de = readdir(dir))) {
        uint64_t pn, ph;
        any = kv_parse_name(r, de->d_name, &pn, &ph);
    }
    if (dir)
        closedir(dir);
    return any;
}

/* Forward p, first restoring a saved slot when this is the first chat
 * request since the role loaded and a saved prefix may match. */
static void proxy_or_restore(pend_t *p)
{
    role_t *r = p->role;
    if (!r->kv_fresh || r->call || p->load_only || !is_chat_path(httpd_head(p->req)->target)) {
        proxy_start(p);
        return;
    }
    r->kv_fresh = false;
    if (!kv_has_saved(r)) {
        proxy_start(p);
        return;
    }
    struct evbuffer *b = httpd_body(p->req);
    r->call = xcalloc(1, sizeof *r->call);
    r->call->r = r;
    r->call->p = p;
    r->call->body_len = evbuffer_get_length(b);
    r->call->body = xmalloc(r->call->body_len + 1);
    evbuffer_copyout(b, r->call->body, r->call->body_len);
    r->kv_busy = true;
    r->inflight++; /* held: the role is busy while its context comes back */
    if (r->ttl_timer)
        evtimer_del(r->ttl_timer);
    if (kv_post(r, "/apply-template", r->call->body, r->call->body_len, on_kv_restore_template))
        kv_restore_end(r);
}

/* After an answer: keep the body of a chat request for the next save, and
 * judge a restore by the answer's timings. */
static void kv_after_answer(pend_t *p, httpd_req_t *rq)
{
    role_t *r = p->role;
    if (!r->kv_on || p->status != 200 || !is_chat_path(httpd_head(rq)->target))
        return;
    struct evbuffer *b = httpd_body(rq);
    free(r->kv_body);
    r->kv_body_len = evbuffer_get_length(b);
    r->kv_body = xmalloc(r->kv_body_len + 1);
    evbuffer_copyout(b, r->kv_body, r->kv_body_len);
    if (!p->kv_expect)
        return;
    uint64_t cache_n = tail_num(p->tail, p->tail_len, "\"cache_n\"");
    r->kv_last_restore_tokens = p->kv_expect;
    r->kv_last_cache_n = cache_n;
    if (cache_n >= p->kv_expect) {
        r->kv_restores++;
        fprintf(stderr, "variet: role %s: context restored: %llu of %llu saved tokens reused\n", r->name,
                (unsigned long long)cache_n, (unsigned long long)p->kv_expect);
    } else {
        r->kv_restore_failures++;
        kv_note(r, "restoring the context from %s did not work: the answer reused %llu tokens of %llu restored; "
                "prefilled instead", r->kv_restored, (unsigned long long)cache_n, (unsigned long long)p->kv_expect);
        kv_drop(r, r->kv_restored);
        r->kv_restored[0] = 0;
    }
}

/* ---------- backend events ---------- */

static void on_restart(evutil_socket_t fd, short what, void *arg)
{
    role_t *r = arg;
    /* the backoff is over (the timer may fire a hair before restart_at by
     * our clock); start through the scheduler: it may have to wait for room */
    r->restart_at = 0;
    schedule(r->g);
}

/* The load report's buffers (model, KV, recurrent state, compute, output)
 * per device in the scheduler's order: CUDAk → k + 1, every host buffer
 * (CPU, CPU_Mapped, CUDA_Host) → 0. false when the report names none. */
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
        double m = d->model_mib + d->kv_mib + d->rs_mib + d->compute_mib + d->output_mib;
        if (m > 0) {
            mib[k] += m;
            any = true;
        }
    }
    for (int k = 0; k < SCHED_MAX_DEV; k++)
        out[k] = (uint64_t)(mib[k] * 1048576.0);
    return any;
}

static void on_backend(backend_t *b, be_event_t ev, void *ud)
{
    role_t *r = ud;
    gateway_t *g = r->g;
    if (ev != BE_EV_READY) {
        r->suspect = false; /* it is gone indeed: the queue waits for the restart */
        /* its slot is gone: nothing to save until a new answer */
        free(r->kv_body);
        r->kv_body = NULL;
        r->kv_fresh = false;
    }
    switch (ev) {
    case BE_EV_READY: {
        double secs = backend_ready_at(b) - backend_started_at(b);
        /* what it really allocated replaces the prediction for admission */
        if (measured_mem(backend_report(b), g->n_gpu, r->mem_meas)) {
            r->measured = true;
            memcpy(r->mem, r->mem_meas, sizeof r->mem);
            r->mem_total = 0;
            for (int d = 0; d <= g->n_gpu && d < SCHED_MAX_DEV; d++)
                r->mem_total += r->mem[d];
        }
        r->loads++;
        r->load_seconds += secs;
        r->last_load_s = secs;
        r->last_used = now_s();
        r->kv_fresh = r->kv_on;
        r->kv_restored[0] = 0;
        fprintf(stderr, "variet: role %s: ready in %.2f s\n", r->name, secs);
        drain_queue(r);
        role_idle_check(r);
        break;
    }
    case BE_EV_LOAD_FAILED:
        r->failed = true;
        r->failed_at = now_s();
        snprintf(r->fail_reason, sizeof r->fail_reason, "%s", backend_error(b));
        fprintf(stderr, "variet: role %s: load failed: %s\n", r->name, r->fail_reason);
        fail_queue(r, "load_failed", "failed to load: %s", r->fail_reason);
        pool_clear(r);
        schedule(g);
        break;
    case BE_EV_CRASHED: {
        double now = now_s();
        pool_clear(r);
        int recent = 0;
        if (r->n_crashes == MAX_CRASHES) {
            memmove(r->crashes, r->crashes + 1, sizeof r->crashes[0] * (MAX_CRASHES - 1));
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
            fail_queue(r, "role_failed", "is failed: %s", r->fail_reason);
        } else {
            /* restart with backoff: 0.5 s, 1 s, 2 s, ... (schedule() waits for restart_at) */
            double d = 0.5 * (double)(1 << (recent - 1 < 6 ? recent - 1 : 6));
            r->restart_pending = !r->stale && !r->retired;
            r->restart_at = now + d;
            if (!r->restart_timer)
                r->restart_timer = evtimer_new(g->base, on_restart, r);
            struct timeval tv = {.tv_sec = (time_t)d, .tv_usec = (suseconds_t)((d - floor(d)) * 1e6)};
            evtimer_add(r->restart_timer, &tv);
        }
        schedule(g);
        break;
    }
    case BE_EV_STOPPED:
        fprintf(stderr, "variet: role %s: stopped\n", r->name);
        pool_clear(r);
        schedule(g);
        break;
    }
}

/* ---------- routes ---------- */

static json_t *role_json(role_t *r, bool full)
{
    const reg_role_t *d = r->def;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(r->name));
    json_object_set_new(o, "object", json_string("model"));
    json_object_set_new(o, "owned_by", json_string("variet"));
    json_object_set_new(o, "created", json_integer((json_int_t)r->g->started_wall));
    json_object_set_new(o, "display_name", json_string(d->display_name));
    json_object_set_new(o, "state", json_string(role_state(r)));
    json_object_set_new(o, "measured_tps", json_real(d->measured_tps));
    json_object_set_new(o, "context_length", json_integer(r->ctx_len));
    json_t *al = json_array();
    for (size_t i = 0; i < d->n_aliases; i++)
        json_array_append_new(al, json_string(d->aliases[i]));
    json_object_set_new(o, "aliases", al);
    if (!full)
        return o;
    json_object_set_new(o, "model_path", json_string(d->model_path));
    json_object_set_new(o, "priority", json_integer(d->priority));
    json_object_set_new(o, "pin", json_boolean(d->pin));
    json_object_set_new(o, "min_resident_s", json_real(d->min_resident_s));
    json_object_set_new(o, "max_concurrent", json_integer(role_limit(r)));
    json_object_set_new(o, "queue_size", json_integer(role_queue_size(r)));
    json_object_set_new(o, "pid", json_integer(backend_pid(r->be)));
    json_object_set_new(o, "port", json_integer(backend_state(r->be) == BE_STOPPED ? 0 : backend_port(r->be)));
    double ra = backend_ready_at(r->be);
    json_object_set_new(o, "uptime_s", json_real(backend_state(r->be) == BE_READY && ra > 0 ? now_s() - ra : 0));
    json_object_set_new(o, "inflight", json_integer(r->inflight));
    json_object_set_new(o, "queued", json_integer(r->n_queued));
    json_object_set_new(o, "memory_estimate_bytes", json_integer((json_int_t)r->mem_total));
    json_t *md = json_object();
    json_object_set_new(md, "CPU", json_integer((json_int_t)r->mem_plan[0]));
    for (int k = 0; k < r->g->n_gpu; k++)
        json_object_set_new(md, r->g->gpus[k].name, json_integer((json_int_t)r->mem_plan[k + 1]));
    json_object_set_new(o, "memory_plan_bytes", md);
    if (r->measured) {
        json_t *mm = json_object();
        json_object_set_new(mm, "CPU", json_integer((json_int_t)r->mem_meas[0]));
        for (int k = 0; k < r->g->n_gpu; k++)
            json_object_set_new(mm, r->g->gpus[k].name, json_integer((json_int_t)r->mem_meas[k + 1]));
        json_object_set_new(o, "memory_measured_bytes", mm);
    } else {
        json_object_set_new(o, "memory_measured_bytes", json_null());
    }
    json_object_set_new(o, "loads", json_integer((json_int_t)r->loads));
    const loadlog_t *lr = backend_report(r->be);
    if (r->loads || lr->n_dev || lr->error[0]) {
        json_t *l = json_object();
        json_object_set_new(l, "seconds", json_real(r->last_load_s));
        json_object_set_new(l, "n_ctx", json_integer(lr->n_ctx));
        json_object_set_new(l, "n_batch", json_integer(lr->n_batch));
        json_object_set_new(l, "n_ubatch", json_integer(lr->n_ubatch));
        json_object_set_new(l, "flash_attn", json_string(lr->flash_attn));
        if (lr->pipeline_parallel >= 0)
            json_object_set_new(l, "pipeline_parallel", json_boolean(lr->pipeline_parallel));
        json_t *devs = json_array();
        for (int i = 0; i < lr->n_dev; i++) {
            const loadlog_dev_t *dv = &lr->dev[i];
            json_array_append_new(devs, json_pack("{s:s,s:f,s:f,s:f,s:f,s:f}", "device", dv->name, "model_mib",
                                                  dv->model_mib, "kv_mib", dv->kv_mib, "rs_mib", dv->rs_mib,
                                                  "compute_mib", dv->compute_mib, "output_mib", dv->output_mib));
        }
        json_object_set_new(l, "devices", devs);
        if (lr->oom)
            json_object_set_new(l, "oom", json_pack("{s:s,s:f}", "device", lr->oom_device, "mib", lr->oom_mib));
        json_object_set_new(o, "last_load", l);
    }
    json_t *kv = json_object();
    json_object_set_new(kv, "kept", json_boolean(r->kv_on));
    if (!r->kv_on)
        json_object_set_new(kv, "reason", json_string(r->kv_off));
    else
        json_object_set_new(kv, "dir", json_string(r->kv_dir));
    json_object_set_new(kv, "saves", json_integer((json_int_t)r->kv_saves));
    json_object_set_new(kv, "save_failures", json_integer((json_int_t)r->kv_save_failures));
    json_object_set_new(kv, "restores_verified", json_integer((json_int_t)r->kv_restores));
    json_object_set_new(kv, "restore_failures", json_integer((json_int_t)r->kv_restore_failures));
    json_object_set_new(kv, "last_saved_tokens", json_integer((json_int_t)r->kv_saved_tokens));
    json_object_set_new(kv, "last_restore_tokens", json_integer((json_int_t)r->kv_last_restore_tokens));
    json_object_set_new(kv, "last_restore_cache_n", json_integer((json_int_t)r->kv_last_cache_n));
    json_object_set_new(kv, "last_error", r->kv_error[0] ? json_string(r->kv_error) : json_null());
    json_object_set_new(o, "kv", kv);
    const char *e = r->failed ? r->fail_reason : backend_error(r->be);
    char *ec = e && *e ? utf8_clean(xstrdup(e)) : NULL;
    json_object_set_new(o, "last_error", ec ? json_string(ec) : json_null());
    free(ec);
    return o;
}

static void route_models(gateway_t *g, httpd_req_t *req)
{
    json_t *data = json_array();
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
            json_array_append_new(data, role_json(g->roles[i], false));
    send_json(req, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

static void route_status(gateway_t *g, httpd_req_t *req)
{
    json_t *roles = json_object();
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
            json_object_set_new(roles, g->roles[i]->name, role_json(g->roles[i], true));
    json_t *o = json_pack("{s:i,s:f,s:s,s:i,s:o}", "pid", (int)getpid(), "uptime_s", now_s() - g->started,
                          "config", g->reg->path ? g->reg->path : "", "port", g->port, "roles", roles);
    json_object_set_new(o, "llama_server", json_string(g->exe));
    json_object_set_new(o, "kv_store", json_pack("{s:I,s:I,s:I}", "bytes", (json_int_t)g->kv_bytes, "max",
                                                 (json_int_t)g->reg->engine.kv_store_max, "evicted",
                                                 (json_int_t)g->kv_evicted));
    send_json(req, 200, o);
}

static void route_metrics(gateway_t *g, httpd_req_t *req)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "# HELP variet_requests_total Requests by role and HTTP status.\n"
                           "# TYPE variet_requests_total counter\n");
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
        for (int k = 0; k < MAX_CODES && g->roles[i]->codes[k].code; k++)
            evbuffer_add_printf(b, "variet_requests_total{role=\"%s\",code=\"%d\"} %llu\n", g->roles[i]->name,
                                g->roles[i]->codes[k].code, (unsigned long long)g->roles[i]->codes[k].n);
    evbuffer_add_printf(b, "variet_unrouted_requests_total{code=\"400\"} %llu\n"
                           "variet_unrouted_requests_total{code=\"401\"} %llu\n"
                           "variet_unrouted_requests_total{code=\"404\"} %llu\n",
                        (unsigned long long)g->unrouted[0], (unsigned long long)g->unrouted[1],
                        (unsigned long long)g->unrouted[2]);
    evbuffer_add_printf(b, "variet_unrouted_requests_total{code=\"403\"} %llu\n", (unsigned long long)g->unrouted[3]);
    httpd_stats_t hs;
    httpd_stats(g->http, &hs);
    static const int refused_codes[8] = {400, 408, 413, 417, 431, 501, 505, 0};
    evbuffer_add_printf(b,
                        "# HELP variet_connections_open Client connections open now (max_connections %d).\n"
                        "# TYPE variet_connections_open gauge\nvariet_connections_open %d\n"
                        "# TYPE variet_connections_accepted_total counter\nvariet_connections_accepted_total %llu\n"
                        "# HELP variet_connections_rejected_total Connections answered 503 at max_connections.\n"
                        "# TYPE variet_connections_rejected_total counter\nvariet_connections_rejected_total %llu\n"
                        "# HELP variet_accept_errors_total accept() failures (out of file descriptors, ...).\n"
                        "# TYPE variet_accept_errors_total counter\nvariet_accept_errors_total %llu\n"
                        "# TYPE variet_connections_shed_total counter\nvariet_connections_shed_total %llu\n"
                        "# HELP variet_header_timeouts_total Requests whose head missed header_timeout.\n"
                        "# TYPE variet_header_timeouts_total counter\nvariet_header_timeouts_total %llu\n"
                        "# HELP variet_http_refused_total Malformed requests refused by the HTTP layer.\n"
                        "# TYPE variet_http_refused_total counter\n",
                        g->reg->engine.max_connections, hs.open, (unsigned long long)hs.accepted,
                        (unsigned long long)hs.rejected, (unsigned long long)hs.accept_errors,
                        (unsigned long long)hs.shed, (unsigned long long)hs.head_timeouts);
    for (int k = 0; k < 8; k++)
        if (hs.refused[k])
            evbuffer_add_printf(b, "variet_http_refused_total{code=\"%.0d%s\"} %llu\n", refused_codes[k],
                                refused_codes[k] ? "" : "other", (unsigned long long)hs.refused[k]);
    evbuffer_add_printf(b, "# HELP variet_request_duration_seconds Time from request to last byte.\n"
                           "# TYPE variet_request_duration_seconds histogram\n");
    for (size_t i = 0; i < g->n_roles; i++) {
        role_t *r = g->roles[i];
        uint64_t cum = 0;
        for (int k = 0; k < N_BUCKETS; k++) {
            cum += r->hist[k];
            evbuffer_add_printf(b, "variet_request_duration_seconds_bucket{role=\"%s\",le=\"%g\"} %llu\n", r->name,
                                buckets[k], (unsigned long long)cum);
        }
        cum += r->hist[N_BUCKETS];
        evbuffer_add_printf(b, "variet_request_duration_seconds_bucket{role=\"%s\",le=\"+Inf\"} %llu\n", r->name,
                            (unsigned long long)cum);
        evbuffer_add_printf(b, "variet_request_duration_seconds_sum{role=\"%s\"} %.6f\n", r->name, r->lat_sum);
        evbuffer_add_printf(b, "variet_request_duration_seconds_count{role=\"%s\"} %llu\n", r->name,
                            (unsigned long long)r->lat_n);
    }
    evbuffer_add_printf(b, "# HELP variet_tokens_total Tokens from llama-server timings.\n# TYPE variet_tokens_total counter\n");
    for (size_t i = 0; i < g->n_roles; i++) {
        role_t *r = g->roles[i];
        evbuffer_add_printf(b, "variet_tokens_total{role=\"%s\",direction=\"in\"} %llu\n", r->name,
                            (unsigned long long)r->tokens_in);
        evbuffer_add_printf(b, "variet_tokens_total{role=\"%s\",direction=\"out\"} %llu\n", r->name,
                            (unsigned long long)r->tokens_out);
    }
    evbuffer_add_printf(b, "# TYPE variet_loads_total counter\n");
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
        evbuffer_add_printf(b, "variet_loads_total{role=\"%s\"} %llu\n", g->roles[i]->name,
                            (unsigned long long)g->roles[i]->loads);
    evbuffer_add_printf(b, "# TYPE variet_load_seconds_total counter\n");
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
        evbuffer_add_printf(b, "variet_load_seconds_total{role=\"%s\"} %.3f\n", g->roles[i]->name,
                            g->roles[i]->load_seconds);
    evbuffer_add_printf(b, "# HELP variet_role_state 1 for the state each role is in.\n# TYPE variet_role_state gauge\n");
    static const char *const states[] = {"stopped", "loading", "ready", "stopping", "failed"};
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
        for (int k = 0; k < 5; k++)
            evbuffer_add_printf(b, "variet_role_state{role=\"%s\",state=\"%s\"} %d\n", g->roles[i]->name, states[k],
                                !strcmp(role_state(g->roles[i]), states[k]));
    evbuffer_add_printf(b, "# HELP variet_kv_saves_total Slot saves before idle stops (context kept across swaps).\n"
                           "# TYPE variet_kv_saves_total counter\n");
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
            evbuffer_add_printf(b, "variet_kv_saves_total{role=\"%s\",result=\"ok\"} %llu\n"
                                   "variet_kv_saves_total{role=\"%s\",result=\"failed\"} %llu\n",
                                g->roles[i]->name, (unsigned long long)g->roles[i]->kv_saves, g->roles[i]->name,
                                (unsigned long long)g->roles[i]->kv_save_failures);
    evbuffer_add_printf(b, "# HELP variet_kv_restores_total Slot restores: verified by the answer's cache_n, or failed "
                           "(prefilled instead).\n# TYPE variet_kv_restores_total counter\n");
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
            evbuffer_add_printf(b, "variet_kv_restores_total{role=\"%s\",result=\"verified\"} %llu\n"
                                   "variet_kv_restores_total{role=\"%s\",result=\"failed\"} %llu\n",
                                g->roles[i]->name, (unsigned long long)g->roles[i]->kv_restores, g->roles[i]->name,
                                (unsigned long long)g->roles[i]->kv_restore_failures);
    evbuffer_add_printf(b, "# TYPE variet_kv_store_bytes gauge\nvariet_kv_store_bytes %llu\n",
                        (unsigned long long)g->kv_bytes);
    evbuffer_add_printf(b, "# TYPE variet_queue_length gauge\n");
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
        evbuffer_add_printf(b, "variet_queue_length{role=\"%s\"} %d\n", g->roles[i]->name, g->roles[i]->n_queued);
    httpd_add_header(req, "Content-Type", "text/plain; version=0.0.4");
    size_t n = evbuffer_get_length(b);
    httpd_reply(req, 200, evbuffer_pullup(b, -1), n);
    evbuffer_free(b);
}

static void role_list(gateway_t *g, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    for (size_t i = 0; i < g->n_roles && n < cap; i++)
        if (!g->roles[i]->retired)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", g->roles[i]->name);
}

/* /roles/{name}/{load|unload|logs} */
static void route_role_action(gateway_t *g, httpd_req_t *req, route_t rt, const char *name)
{
    role_t *r = find_role(g, name);
    if (!r) {
        char list[1024];
        role_list(g, list, sizeof list);
        send_error(req, 404, "invalid_request_error", "model_not_found", "unknown role '%s' (roles: %s)", name, list);
        return;
    }
    if (rt == ROUTE_ROLE_LOGS) {
        long tail = 100;
        char t[32];
        int64_t v;
        if (http_query_get(httpd_head(req)->query, "tail", t, sizeof t) && parse_i64(t, 1, 100000, &v))
            tail = (long)v;
        buf_t out;
        buf_init(&out, 0);
        backend_log_tail(r->be, (size_t)tail, &out);
        httpd_add_header(req, "Content-Type", "text/plain; charset=utf-8");
        httpd_reply(req, 200, out.data ? out.data : "", out.len);
        buf_free(&out);
        return;
    }
    if (rt == ROUTE_ROLE_UNLOAD) {
        if (r->inflight) {
            send_error(req, 409, "invalid_request_error", "busy", "role '%s' has %d requests in flight", r->name,
                       r->inflight);
            return;
        }
        pool_clear(r);
        backend_stop(r->be);
        send_json(req, 200, json_pack("{s:s,s:s}", "role", r->name, "state", role_state(r)));
        return;
    }
    /* load: clears a failure and waits (queued like a request) until ready */
    r->failed = false;
    if (backend_state(r->be) == BE_READY) {
        send_json(req, 200, json_pack("{s:s,s:s}", "role", r->name, "state", "ready"));
        return;
    }
    /* queued like a request; drain_queue answers it when the role is ready */
    dispatch(g, r, req, false, true);
}

static void route_proxy(gateway_t *g, httpd_req_t *req)
{
    struct evbuffer *in = httpd_body(req);
    size_t len = evbuffer_get_length(in);
    json_error_t je;
    json_t *j = len ? json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &je) : NULL;
    if (!j || !json_is_object(j)) {
        g->unrouted[0]++;
        if (!len)
            send_error(req, 400, "invalid_request_error", "invalid_json", "request body is empty; expected a JSON object");
        else if (!j)
            send_error(req, 400, "invalid_request_error", "invalid_json", "request body is not valid JSON: %s (line %d, column %d)",
                       je.text, je.line, je.column);
        else
            send_error(req, 400, "invalid_request_error", "invalid_json", "request body must be a JSON object");
        json_decref(j);
        return;
    }
    json_t *m = json_object_get(j, "model");
    const char *name = json_is_string(m) ? json_string_value(m) : NULL;
    bool stream = json_is_true(json_object_get(j, "stream"));
    if (m && !json_is_string(m)) {
        g->unrouted[0]++;
        send_error(req, 400, "invalid_request_error", "invalid_model", "\"model\" must be a string");
        json_decref(j);
        return;
    }
    if (!name || !*name)
        name = g->reg->engine.default_role;
    if (!name) {
        g->unrouted[0]++;
        char list[1024];
        role_list(g, list, sizeof list);
        send_error(req, 400, "invalid_request_error", "missing_model",
                   "request has no \"model\" and no default role is configured (roles: %s)", list);
        json_decref(j);
        return;
    }
    role_t *r = find_role(g, name);
    if (!r) {
        g->unrouted[2]++;
        char list[1024];
        role_list(g, list, sizeof list);
        send_error(req, 404, "invalid_request_error", "model_not_found",
                   "The model '%s' does not exist (roles: %s)", name, list);
        json_decref(j);
        return;
    }
    json_decref(j);
    dispatch(g, r, req, stream, false);
}

static void on_request(httpd_req_t *req, void *arg)
{
    gateway_t *g = arg;
    const http_head_t *h = httpd_head(req);
    char role[128], err[512];
    route_t rt = route_classify(h->method, h->path, role, sizeof role);
    const char *cors = route_cors_origin(&g->policy, h);
    if (cors) {
        httpd_add_header(req, "Access-Control-Allow-Origin", cors);
        httpd_add_header(req, "Vary", "Origin");
    }
    int code = route_check(&g->policy, rt, h, err, sizeof err);
    if (code) {
        g->unrouted[code == 401 ? 1 : 3]++;
        send_error(req, code, "invalid_request_error",
                   code == 401 ? "invalid_api_key" : code == 415 ? "unsupported_media_type" : "forbidden", "%s", err);
        return;
    }
    switch (rt) {
    case ROUTE_HEALTH: send_json(req, 200, json_pack("{s:s}", "status", "ok")); return;
    case ROUTE_MODELS: route_models(g, req); return;
    case ROUTE_STATUS: route_status(g, req); return;
    case ROUTE_METRICS: route_metrics(g, req); return;
    case ROUTE_ROLE_LOAD:
    case ROUTE_ROLE_UNLOAD:
    case ROUTE_ROLE_LOGS: route_role_action(g, req, rt, role); return;
    case ROUTE_PROXY: route_proxy(g, req); return;
    case ROUTE_PREFLIGHT:
        if (cors) {
            httpd_add_header(req, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
            httpd_add_header(req, "Access-Control-Allow-Headers", "Authorization, Content-Type");
            httpd_add_header(req, "Access-Control-Max-Age", "600");
        }
        httpd_add_header(req, "Allow", "GET, HEAD, POST, OPTIONS");
        httpd_reply(req, 204, NULL, 0);
        return;
    case ROUTE_BAD_METHOD:
        g->unrouted[2]++;
        httpd_add_header(req, "Allow", "GET, HEAD, POST, OPTIONS");
        send_error(req, 405, "invalid_request_error", "method_not_allowed", "method %.32s is not served",
                   h->method_name);
        return;
    case ROUTE_NOT_FOUND: break;
    }
    g->unrouted[2]++;
    send_error(req, 404, "invalid_request_error", "not_found", "no route %.32s %s", h->method_name, h->path);
}

/* ---------- lifecycle ---------- */

/* The access policy of reg's engine settings (pointers into reg). */
static void gateway_policy(gateway_t *g, const registry_t *reg)
{
    g->policy.api_key = reg->engine.api_key;
    g->policy.allowed_hosts = (const char *const *)reg->engine.allowed_hosts;
    g->policy.allowed_origins = (const char *const *)reg->engine.allowed_origins;
}

static int build_roles(gateway_t *g, registry_t *reg, role_t ***out, size_t *n_out, char *err, size_t errlen)
{
    role_t **roles = xcalloc(reg->n_roles ? reg->n_roles : 1, sizeof *roles);
    for (size_t i = 0; i < reg->n_roles; i++) {
        registry_t *saved = g->reg;
        g->reg = reg; /* role_new reads engine settings */
        roles[i] = role_new(g, &reg->roles[i], err, errlen);
        g->reg = saved;
        if (!roles[i]) {
            for (size_t k = 0; k < i; k++)
                role_free(roles[k]);
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
    g->budget[0] = reg->engine.memory_budget;
    /* a random key for the backends: their ports are useless to anyone who
     * cannot read it (it travels in their environment, not on a command line) */
    unsigned char rnd[32];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        snprintf(err, errlen, "getrandom: %s", strerror(errno));
        free(g->exe);
        free(g);
        return -EIO;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(g->backend_key + 2 * i, 3, "%02x", rnd[i]);
    g->backend_auth = xasprintf("Bearer %s", g->backend_key);
    if (build_roles(g, reg, &g->roles, &g->n_roles, err, errlen)) {
        free(g->backend_auth);
        free(g->exe);
        free(g);
        return -EINVAL;
    }
    gateway_policy(g, reg);
    kv_enforce(g); /* what earlier runs left, within the limit */
    httpd_opts_t ho = {
        .max_header = (size_t)reg->engine.max_header,
        .max_body = reg->engine.max_body,
        .header_timeout_s = reg->engine.header_timeout_s,
        .write_timeout_s = reg->engine.upstream_timeout_s,
        .max_connections = reg->engine.max_connections,
    };
    int rc = httpd_new(base, &ho, reg->engine.host, reg->engine.port, on_request, g, &g->http, err, errlen);
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

static void retire(role_t *r)
{
    r->retired = true;
    r->stale = true;
    fail_queue(r, "reloaded", "changed while this request waited (configuration reloaded); retry");
    if (!r->inflight) {
        pool_clear(r);
        backend_stop(r->be);
    }
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
    role_t **roles = xcalloc(n_old + n_new + 1, sizeof *roles);
    bool *is_new = xcalloc(n_new + 1, sizeof *is_new);
    bool *kept = xcalloc(n_old + 1, sizeof *kept);
    registry_t *saved = g->reg;

    /* first pass: build what is new, touching nothing that runs */
    g->reg = reg; /* role_new reads engine settings */
    for (size_t i = 0; i < n_new; i++) {
        const reg_role_t *d = &reg->roles[i];
        for (size_t k = 0; k < n_old; k++) {
            role_t *o = g->roles[k];
            if (!o->retired && !kept[k] && !strcmp(o->name, d->name) && same_def(o->def, d)) {
                roles[i] = o;
                kept[k] = true;
                break;
            }
        }
        if (roles[i])
            continue;
        roles[i] = role_new(g, d, err, errlen);
        is_new[i] = true;
        if (!roles[i]) {
            for (size_t k = 0; k < i; k++)
                if (is_new[k])
                    role_free(roles[k]);
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
    schedule(g);
    return 0;
}

void gateway_free(gateway_t **gp)
{
    gateway_t *g = *gp;
    if (!g)
        return;
    backend_stop_all_sync();
    if (g->resched_timer)
        event_free(g->resched_timer);
    httpd_free(&g->http);
    for (size_t i = 0; i < g->n_roles; i++)
        if (g->roles[i])
            role_free(g->roles[i]);
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
