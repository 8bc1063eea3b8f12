/*
 * gw_int.h — private to the gateway's files; not for commands (they use
 * gateway.h). The gateway is one libevent loop over these parts:
 *
 *   gateway.c     the public interface: build, reload (SIGHUP), free
 *   gw_routes.c   requests in: the route table's handlers, access policy,
 *                 the "model" of a proxied request
 *   gw_queue.c    pending requests: dispatch, the per-role queue and its
 *                 timeouts, clients that go away
 *   gw_proxy.c    forwarding to llama-server: connection pool, streaming,
 *                 retry / requeue when a backend dies before answering
 *   gw_role.c     role lifecycle: create, start, idle / TTL stop, backend
 *                 events (ready, crash backoff, load failure)
 *   gw_admit.c    admission: memory per device (planned, then measured),
 *                 which stopped role starts next and which idle roles stop
 *                 for it (scheduler.c decides), starvation bound
 *   gw_kv.c       context kept across swaps: saved slot files
 *   gw_metrics.c  the observer every part reports events to; /metrics
 *   gw_status.c   /status and /v1/models
 *   gw_reply.c    JSON answers and OpenAI-shaped errors
 *
 * Names: gw__name() is shared between these files; everything else is
 * static to its file. Ownership: the gateway owns roles (g->roles),
 * backends, pending requests and the registry; a gw_pend_t lives from
 * request arrival until the client has its answer or is gone, and is then
 * freed by gw__pend_done().
 */
#ifndef VARIET_GW_INT_H
#define VARIET_GW_INT_H

#include <event2/http.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/time.h>
#include <time.h>

#include "backend.h"
#include "dash.h"
#include "gateway.h"
#include "httpd.h"
#include "plan.h"
#include "registry.h"
#include "route.h"
#include "scheduler.h"

#define GW_N_BUCKETS 12 /* latency histogram buckets (gw_metrics.c) */
#define GW_MAX_CODES 16 /* distinct HTTP statuses counted per role */
#define GW_TAIL_KEEP 4096
#define GW_MAX_CRASHES 16

typedef struct gw_role gw_role_t;

/* One backend configuration's memory, per device (0 = host). */
typedef struct {
    uint64_t plan[SCHED_MAX_DEV]; /* the planner's */
    uint64_t meas[SCHED_MAX_DEV]; /* the last load report's buffers */
    bool measured;
} gw_mem_t;
typedef struct gw_pend gw_pend_t;

/* One client request for a role, from arrival to its answer. */
struct gw_pend {
    TAILQ_ENTRY(gw_pend) q;
    gateway_t *g;
    gw_role_t *role;
    httpd_req_t *req;                 /* NULL once answered or the client is gone */
    struct evhttp_request *up;        /* upstream request in flight */
    struct evhttp_connection *upconn;
    struct event *timeout;            /* queue timeout */
    bool queued, streaming, started, stream_req, up_failed;
    bool load_only; /* POST /roles/{name}/load: answered when the role is ready */
    bool requeued;  /* sent back to the queue once after its backend died */
    bool reused;    /* the upstream connection came from the pool */
    bool retried;   /* already retried on a fresh connection */
    bool media;     /* it carries an image or audio: it needs the projector */
    /* context kept across swaps (gw_kv.c): the slot a chat request runs in */
    int kv_slot;        /* -1: not tracked */
    unsigned kv_gen;    /* the role's load it was given the slot in */
    bool kv_inject;     /* the upstream body gets "id_slot": kv_slot */
    bool kv_cont;       /* it continues the conversation its slot holds */
    bool kv_recorded;   /* its answer is now the slot's conversation */
    json_t *kv_msgs;    /* its "messages"; owned */
    uint64_t kv_expect; /* tokens restored into its slot before it was sent (0: none) */
    int status;
    double t0;
    char tail[GW_TAIL_KEEP]; /* last bytes of the response: timings */
    size_t tail_len;
};
TAILQ_HEAD(gw_pendq, gw_pend);

/* A save or restore in flight: a chain of calls to the backend (gw_kv.c). */
typedef void (*gw_kv_cb)(gw_role_t *r, int code, const char *body, size_t len);
struct gw_kv_call {
    gw_role_t *r;
    gw_kv_cb cb;
    struct evhttp_connection *conn;
    gw_pend_t *p;      /* the request waiting for a restore (NULL while saving) */
    int slot;          /* the slot being saved / restored into */
    bool then_stop;    /* a save before a stop: the backend stops after it */
    uint64_t min_tokens; /* a restore must bring more than this (what the slot already shares) */
    char *body;        /* the chat request body being tokenized; owned */
    size_t body_len;
    char file[256];    /* the file being saved / restored */
    uint64_t tokens;   /* its token count */
};

/* What Variet knows of one of a backend's slots. */
typedef struct {
    char *body;          /* the last chat request answered in it (NULL: unknown, nothing to save); owned */
    size_t body_len;
    json_t *msgs;        /* that request's "messages"; owned */
    uint64_t tokens;     /* tokens it holds after that answer (cache_n + prompt_n + predicted_n) */
    bool busy;           /* a chat request given this slot is in flight or restoring */
    double last_used;
    char restored[256];  /* the file restored into it in this load ("" none) */
} gw_kv_slot_t;

/* A role's saved-slot state (gw_kv.c writes it; others read it). */
typedef struct {
    bool on;          /* slots are saved before every stop and restored */
    char off[200];    /* why not, when !on */
    char *dir;        /* <log_dir>/<role>/slots/ (with the slash llama-server needs); owned */
    uint64_t keyv;    /* key of the current load: role, model file identity, args */
    int n_slots;      /* the backend's slots (-np; 4 when absent, as llama-server's auto) */
    gw_kv_slot_t *slots; /* n_slots; owned */
    unsigned gen;     /* loads so far: a request's slot belongs to one load */
    bool saving;      /* saving before a stop: requests wait, the scheduler sees it stopping */
    bool busy;        /* restoring for a request: the queue waits */
    struct gw_kv_call *call; /* the one save/restore call in flight; owned */
    uint64_t saved_tokens;
    uint64_t last_restore_tokens, last_cache_n;
    char error[400];  /* the last save/restore problem */
} gw_kv_t;

typedef struct {
    int code;
    uint64_t n;
} gw_code_count_t;

/* A role's counters (gw_metrics.c is the only writer). */
typedef struct {
    gw_code_count_t codes[GW_MAX_CODES];
    uint64_t hist[GW_N_BUCKETS + 1];
    double lat_sum;
    uint64_t lat_n, tokens_in, tokens_out, loads;
    double load_seconds, last_load_s;
    uint64_t kv_saves, kv_save_failures, kv_restores, kv_restore_failures;
    uint64_t image_requests, images; /* requests carrying images, and their images */
} gw_role_counters_t;

struct gw_role {
    gateway_t *g;
    char *name;
    const reg_role_t *def; /* into g->reg */
    backend_t *be;
    struct gw_pendq queue;
    int n_queued;
    int inflight;
    double last_used;
    uint64_t mem[SCHED_MAX_DEV]; /* what admission counts per device (0 = host): the backend running, or
                                    the one to start next; measured once it has loaded, else planned */
    uint64_t mem_total;
    gw_mem_t mem_by[2];  /* [0] without the projector, [1] with it (gw__role_vision_next) */
    /* the projector (--mmproj) */
    bool has_mmproj;     /* the role's args name one */
    bool vision;         /* the backend running (or the last one) has it loaded */
    bool want_vision;    /* mmproj_mode on_demand: a waiting request carries media: load it */
    uint64_t switches;   /* on_demand: backends restarted to load it */
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
    double crashes[GW_MAX_CRASHES];
    int n_crashes;
    struct event *ttl_timer, *restart_timer;
    struct evhttp_connection **pool; /* idle upstream connections */
    size_t n_pool, cap_pool;
    gw_role_counters_t m;
    gw_kv_t kv; /* context kept across swaps */
};

/* Gateway-wide counters (gw_metrics.c is the only writer). */
typedef struct {
    uint64_t unrouted[4]; /* 400, 401, 404 (and 405), 403/415 */
    uint64_t kv_evicted;  /* saved slots removed to stay within kv_store_max */
} gw_counters_t;

struct gateway {
    struct event_base *base;
    httpd_t *http;
    int port;
    registry_t *reg;
    char *exe;
    gw_role_t **roles;
    size_t n_roles;
    double started;       /* now_s() at start */
    time_t started_wall;  /* wall clock at start, for "created" */
    char backend_key[65]; /* every backend's --api-key: only Variet knows it */
    char *backend_auth;   /* "Bearer <backend_key>" */
    route_policy_t policy;
    plan_gpu_t gpus[PLAN_MAX_GPU]; /* GPUs seen at start, free MiB then */
    int n_gpu;
    uint64_t budget[SCHED_MAX_DEV]; /* bytes per device for all roles (0 = no limit) */
    registry_t **old_regs; /* registries replaced by reloads (retired roles point into them) */
    size_t n_old_regs;
    struct event *resched_timer; /* gw__schedule() again when a minimum residency ends */
    uint64_t kv_bytes;   /* saved slots on disk after the last check */
    bool stopping;       /* gateway_shutdown: saving, then done */
    void (*on_stopped)(void *arg);
    void *on_stopped_arg;
    struct event *stop_timer; /* kv_save_timeout */
    gw_counters_t m;
    dash_t *dash; /* the dashboard's endpoints and open log streams (owned) */
};

static inline struct timeval gw__tv(double s)
{
    return (struct timeval){.tv_sec = (time_t)s, .tv_usec = (suseconds_t)((s - floor(s)) * 1e6)};
}

/* ---------- gateway.c ---------- */

/* During a shutdown: calls on_stopped once no role is saving any more. */
void gw__shutdown_check(gateway_t *g);

/* ---------- gw_reply.c: answers ---------- */

/* Replace bytes that are not valid UTF-8 with '?' in place; returns s. */
char *gw__utf8_clean(char *s);
/* Answer req with body (reference stolen) as JSON; req is done after. */
void gw__send_json(httpd_req_t *req, int code, json_t *body);
/* {"error":{"message","type","param":null,"code"}} (new reference). */
json_t *gw__oai_error(const char *message, const char *type, const char *code);
/* An OpenAI-shaped error answer (503 and 429 carry Retry-After). */
void gw__send_error(httpd_req_t *req, int http, const char *type, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ---------- gw_routes.c ---------- */

/* httpd's request callback (arg: the gateway). */
void gw__on_request(httpd_req_t *req, void *arg);

/* ---------- gw_metrics.c: the observer ---------- */

typedef enum {
    GW_OBS_ANSWERED,    /* role, code, secs, tokens_in/out: a request for a role is over
                           (answered, refused, timed out, or its client gone: 499) */
    GW_OBS_UNROUTED,    /* code: refused before it reached a role (role NULL) */
    GW_OBS_LOADED,      /* role, secs: a backend became ready */
    GW_OBS_KV_SAVED,    /* role, ok: a slot save before a stop */
    GW_OBS_KV_RESTORED, /* role, ok: a restore, judged by its answer (or its call failed) */
    GW_OBS_KV_EVICTED,  /* a saved slot removed to stay within kv_store_max (role NULL) */
    GW_OBS_IMAGES,      /* role, images: a request routed to role carries images (counted on arrival) */
} gw_obs_kind_t;

typedef struct {
    gw_obs_kind_t kind;
    gw_role_t *role;
    int code;
    double secs;
    uint64_t tokens_in, tokens_out;
    bool ok;
    uint64_t images;
} gw_obs_t;

/* Report an event; every observer in gw_metrics.c's table sees it (the
 * counters behind /metrics and /status are the first). */
void gw__observe(gateway_t *g, const gw_obs_t *e);
/* Shorthand: a request for r is over with HTTP status code after secs. */
static inline void gw__obs_answered(gw_role_t *r, int code, double secs)
{
    gw__observe(r->g, &(gw_obs_t){.kind = GW_OBS_ANSWERED, .role = r, .code = code, .secs = secs});
}
/* GET /metrics (Prometheus text). */
void gw__metrics_reply(gateway_t *g, httpd_req_t *req);

/* ---------- gw_status.c ---------- */

/* GET /status, GET /v1/models. */
void gw__status_reply(gateway_t *g, httpd_req_t *req);
void gw__models_reply(gateway_t *g, httpd_req_t *req);

/* ---------- gw_role.c: role lifecycle ---------- */

/* A role for def (g->reg's engine settings apply); NULL with err when its
 * model cannot be planned. Freed by gw__role_free. */
gw_role_t *gw__role_new(gateway_t *g, const reg_role_t *def, char *err, size_t errlen);
void gw__role_free(gw_role_t *r);
/* "failed", "loading", "ready", "stopping" or "stopped". */
const char *gw__role_state(const gw_role_t *r);
/* The live role named (or aliased) name, or NULL. */
gw_role_t *gw__find_role(gateway_t *g, const char *name);
/* "a, b, c": the live roles' names (for error messages). */
void gw__role_list(gateway_t *g, char *buf, size_t cap);
bool gw__role_busy(const gw_role_t *r);
/* Requests in flight at once at most; queue length at most. */
int gw__role_limit(const gw_role_t *r);
int gw__role_queue_size(const gw_role_t *r);
/* d's args without the projector (--mmproj, --no-mmproj-offload): an
 * on_demand role's text backend. Caller frees with args_free. */
char **gw__text_args(const reg_role_t *d, size_t *n);
/* Start a stopped role's backend (admission already said yes), with the
 * projector when gw__role_vision_next says so. */
void gw__role_start(gw_role_t *r);
/* Whether the next backend started loads the projector: a role with one,
 * unless it is on_demand and no waiting request carries media. */
bool gw__role_vision_next(const gw_role_t *r);
/* May r's running backend serve p (not: p carries media, the backend is an
 * on_demand role's text one)? */
bool gw__role_takes(const gw_role_t *r, const gw_pend_t *p);
/* The head of r's queue needs the projector its backend lacks: once
 * nothing is in flight, save and stop it (the next start loads it). */
void gw__role_switch_check(gw_role_t *r);
/* Stop r's backend now (no save): unload, reload, stale roles. */
void gw__role_stop(gw_role_t *r);
/* Called whenever a role may have become idle: TTL, stale stop, schedule. */
void gw__role_idle_check(gw_role_t *r);

/* ---------- gw_admit.c: admission ---------- */

/* The devices and their budgets: GPUs seen now (free memory − 512 MiB
 * each), the host's _engine.memory_budget. Once, before any backend. */
void gw__admit_init(gateway_t *g);

/* The planner's memory per device for r's model and args (r->mem,
 * r->mem_plan, ctx_len, up_cap); -EINVAL with err when unusable. */
int gw__role_estimate(gw_role_t *r, char *err, size_t errlen);
/* After a load: the load report's buffers replace the prediction. */
void gw__role_measured(gw_role_t *r);
/* r->mem and mem_total for the backend running, or the one to start next. */
void gw__role_mem_refresh(gw_role_t *r);
/* The starvation bound: r takes no new requests now (see gw_admit.c). */
bool gw__role_yields(const gw_role_t *r);
/* Start every role that has waiting requests and may start (oldest wait
 * first), stopping idle victims when the limits require. */
void gw__schedule(gateway_t *g);

/* ---------- gw_queue.c: pending requests ---------- */

/* What the request layer learnt of a request (gw_routes.c). */
typedef struct {
    bool stream;    /* "stream": true */
    bool load_only; /* POST /roles/NAME/load: answered once the role is ready */
    bool media;     /* an image or audio part: it needs the projector */
} gw_req_info_t;

/* Route a parsed request to its role: forward now or queue. */
void gw__dispatch(gateway_t *g, gw_role_t *r, httpd_req_t *req, const gw_req_info_t *info);
/* Start queued requests of a ready role while it may take them. */
void gw__drain_queue(gw_role_t *r);
/* Answer every request waiting for r with a 503 (code, message). */
void gw__fail_queue(gw_role_t *r, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Put p back at the head of its role's queue with a fresh timeout. */
void gw__requeue_head(gw_pend_t *p);
/* Forget p: its answer is out or its client gone. */
void gw__pend_done(gw_pend_t *p);

/* ---------- gw_proxy.c: forwarding ---------- */

/* Send p upstream; on failure it is answered (502) and freed. */
void gw__proxy_start(gw_pend_t *p);
/* The client of in-flight p went away: cancel upstream, free p. */
void gw__proxy_cancel(gw_pend_t *p);
/* Close the role's idle upstream connections. */
void gw__pool_clear(gw_role_t *r);
/* "key":123 → 123 (its last occurrence in s[0..n)), 0 if none. */
uint64_t gw__tail_num(const char *s, size_t n, const char *key);

/* ---------- gw_kv.c: context kept across swaps ---------- */

/* Whether r's context can be kept (r->kv.on, or the reason in kv.off). */
void gw__kv_configure(gw_role_t *r);
/* Kept now: on, and the backend has no projector loaded. */
bool gw__kv_active(const gw_role_t *r);
/* Save r's slots, if it keeps context and holds any, without stopping it
 * after (shutdown: gateway_free stops it). Whether a save started. */
bool gw__kv_save(gw_role_t *r);
/* p ends (gw__pend_done): its slot is free again. */
void gw__kv_pend_end(gw_pend_t *p);
/* The args of a start: args (n of them) plus --slot-save-path when the
 * backend will keep context (a new vector, the strings borrowed; caller
 * frees the vector; *n updated), else NULL. Sets the load key. */
char **gw__kv_start_args(gw_role_t *r, char *const *args, size_t *n);
/* The backend became ready (true) or went away (false). */
void gw__kv_backend_event(gw_role_t *r, bool ready);
/* Free r's saved-slot state (a call in flight ends; its request is freed). */
void gw__kv_free(gw_role_t *r);
/* Stop a ready role, saving its slots first when it keeps context. */
void gw__role_stop_idle(gw_role_t *r);
/* Forward p, restoring a saved slot first when one may match. */
void gw__proxy_or_restore(gw_pend_t *p);
/* After an answer: keep a chat body for the next save, judge a restore. */
void gw__kv_after_answer(gw_pend_t *p, httpd_req_t *rq);
/* Remove saved slots, oldest first, past kv_store_max; sets g->kv_bytes. */
void gw__kv_enforce(gateway_t *g);

#endif
