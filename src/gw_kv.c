/*
 * gw_kv.c — context kept across swaps: saved slot files (see gw_int.h).
 *
 * A role whose llama-server can save its slots (no projector loaded,
 * kv_store_max > 0, a log_dir) starts with --slot-save-path
 * <log_dir>/<role>/slots/. Variet knows what each slot holds: a chat
 * request is given a slot (the free one whose conversation shares the most
 * leading messages with it, else the least recently used; with -np > 1 the
 * body sent upstream names it, "id_slot"), and its answer makes that
 * request's body the slot's conversation. Before the role's backend stops
 * for any reason Variet controls (eviction, TTL, unload, a reload that
 * changed or removed the role, shutdown), each slot holding a conversation
 * is saved: its body goes through the backend's /apply-template and
 * /tokenize, and /slots/<id>?action=save writes
 *   kv-<role>-<key>-<P>-<hash>.slot
 * where key hashes the role, the model file's identity (path, size, mtime,
 * inode) and the args that shape a slot's contents (not threads, batch
 * sizes, placement or the projector: a reload that retunes those keeps the
 * context), P is the number of prompt tokens and hash covers them. A chat
 * request that does not continue its slot's conversation is tokenized the
 * same way when saved files exist; the longest file whose P tokens are a
 * prefix of it, and longer than what the slot already holds of it, is
 * restored into that slot before the request is forwarded. The restore
 * counts as verified only when that answer's timings.cache_n >= P - 4 (the
 * last token of a prompt equal to the saved one is evaluated again, and
 * memory that cannot be rolled back, recurrent or sliding-window, returns
 * from llama-server's checkpoint 4 tokens before the prompt's end);
 * otherwise (and when the restore call fails) it is counted as failed, the
 * file is removed and the request is served with a normal prefill. Files
 * are removed oldest first (mtime; a restore touches its file) past
 * kv_store_max in total. At most one such upstream call runs per role
 * (r->kv.call); while it runs the role's queue waits.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>

#include "args.h"
#include "gw_int.h"
#include "util.h"

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

/* llama-server checkpoints the state it cannot truncate (recurrent, SWA)
 * 4 tokens before a prompt's end (server-context.cpp, checkpoint_offsets) */
#define KV_CHECKPOINT_BACK 4

static bool is_chat_path(const char *target)
{
    return !strncmp(target, "/v1/chat/completions", 20) || !strncmp(target, "/chat/completions", 17);
}

void gw__kv_configure(gw_role_t *r)
{
    gateway_t *g = r->g;
    const reg_role_t *d = r->def;
    long np = 4; /* llama-server's auto */
    if (args_get_long(d->args, d->n_args, ARG_PARALLEL, &np) && np <= 0)
        np = 4;
    bool own_path = false;
    for (size_t i = 0; i < d->n_args; i++)
        own_path |= !strcmp(d->args[i], "--slot-save-path");
    r->kv.on = false;
    if (args_find(d->args, d->n_args, ARG_MMPROJ) >= 0 && d->mmproj_mode != REG_MMPROJ_ON_DEMAND)
        snprintf(r->kv.off, sizeof r->kv.off, "not kept across swaps: llama-server refuses to save or restore "
                 "slots while a projector is loaded (--mmproj; mmproj_mode \"on_demand\" keeps it for text "
                 "requests)");
    else if (!g->reg->engine.kv_store_max)
        snprintf(r->kv.off, sizeof r->kv.off, "not kept across swaps: _engine.kv_store_max is 0");
    else if (!g->reg->engine.log_dir)
        snprintf(r->kv.off, sizeof r->kv.off, "not kept across swaps: no log_dir");
    else if (np > 1024)
        snprintf(r->kv.off, sizeof r->kv.off, "not kept across swaps: -np %ld", np);
    else if (own_path)
        snprintf(r->kv.off, sizeof r->kv.off, "not kept across swaps: the role's args set --slot-save-path");
    else
        r->kv.on = true;
    if (!r->kv.on)
        return;
    r->kv.n_slots = (int)np;
    r->kv.slots = xcalloc((size_t)np, sizeof *r->kv.slots); /* freed by gw__kv_free */
    char *top = xasprintf("%s/%s", g->reg->engine.log_dir, r->name);
    mkdir(g->reg->engine.log_dir, 0755);
    mkdir(top, 0755);
    free(r->kv.dir);
    r->kv.dir = xasprintf("%s/slots/", top);
    mkdir(r->kv.dir, 0755);
    free(top);
}

/* Options that change only speed or placement, not what a slot holds:
 * left out of the key. */
static const args_opt_t key_free[] = {
    ARG_THREADS, ARG_THREADS_BATCH, ARG_BATCH, ARG_UBATCH, ARG_NGL, ARG_TENSOR_SPLIT, ARG_N_CPU_MOE,
    ARG_CPU_MOE, ARG_SPLIT_MODE, ARG_MAIN_GPU, ARG_MLOCK, ARG_NO_MMAP, ARG_LOAD_MODE, ARG_MMPROJ,
    ARG_NO_MMPROJ_OFFLOAD,
};

/* The key of what the backend is about to load: role, model file, args. */
static uint64_t kv_key(const gw_role_t *r)
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
    size_t n = d->n_args;
    char **a = args_set(d->args, n, key_free[0], NULL, &n); /* freed below */
    for (size_t k = 1; k < sizeof key_free / sizeof *key_free; k++) {
        char **b = args_set(a, n, key_free[k], NULL, &n);
        args_free(&a);
        a = b;
    }
    for (size_t i = 0; i < n; i++)
        h = fnv1a(h, a[i], strlen(a[i]) + 1);
    args_free(&a);
    return h;
}

static void kv_note(gw_role_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void kv_note(gw_role_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->kv.error, sizeof r->kv.error, fmt, ap);
    va_end(ap);
    gw__utf8_clean(r->kv.error);
    fprintf(stderr, "variet: role %s: %s\n", r->name, r->kv.error);
}

static void kv_call_free(struct gw_kv_call *c)
{
    if (c->conn)
        evhttp_connection_free(c->conn);
    free(c->body);
    free(c);
}

static void on_kv_done(struct evhttp_request *up, void *arg)
{
    struct gw_kv_call *c = arg;
    gw_role_t *r = c->r;
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
static int kv_post(gw_role_t *r, const char *path, const char *json, size_t len, gw_kv_cb cb)
{
    struct gw_kv_call *c = r->kv.call;
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

static bool kv_parse_name(const gw_role_t *r, const char *name, uint64_t *n_tok, uint64_t *hash)
{
    char pre[160];
    int k = snprintf(pre, sizeof pre, "kv-%s-%016llx-", r->name, (unsigned long long)r->kv.keyv);
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
void gw__kv_enforce(gateway_t *g)
{
    typedef struct { char *path; uint64_t size; double mtime; } ent_t;
    ent_t *e = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < g->n_roles; i++) {
        gw_role_t *r = g->roles[i];
        bool seen = false; /* a role replaced by a reload shares its successor's folder */
        for (size_t k = 0; k < i && r->kv.dir; k++)
            seen |= g->roles[k]->kv.dir && !strcmp(g->roles[k]->kv.dir, r->kv.dir);
        DIR *dir = r->kv.dir && !seen ? opendir(r->kv.dir) : NULL;
        struct dirent *de;
        while (dir && (de = readdir(dir))) {
            if (strncmp(de->d_name, "kv-", 3) || !strstr(de->d_name, ".slot"))
                continue;
            char *path = xasprintf("%s%s", r->kv.dir, de->d_name);
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
        gw__observe(g, &(gw_obs_t){.kind = GW_OBS_KV_EVICTED});
        free(e[old].path);
        e[old] = e[--n];
    }
    g->kv_bytes = total;
    for (size_t k = 0; k < n; k++)
        free(e[k].path);
    free(e);
}


/* --- what the slots hold --- */

static void slot_forget(gw_kv_slot_t *s)
{
    free(s->body);
    s->body = NULL;
    s->body_len = 0;
    json_decref(s->msgs);
    s->msgs = NULL;
    s->tokens = 0;
    s->restored[0] = 0;
}

/* How many leading messages a and b share. */
static size_t common_msgs(const json_t *a, const json_t *b)
{
    size_t n = 0;
    while (n < json_array_size(a) && n < json_array_size(b) &&
           json_equal(json_array_get(a, n), json_array_get(b, n)))
        n++;
    return n;
}

/* The slot for a chat request with messages m: a free one whose
 * conversation shares the most leading messages with it, else the free one
 * least recently used (an empty one first), else (all busy: it waits for
 * that slot in llama-server) the least recently used. */
static int pick_slot(const gw_role_t *r, const json_t *m, size_t *common)
{
    int best = -1;
    size_t best_c = 0;
    for (int pass = 0; pass < 2 && best < 0; pass++)
        for (int i = 0; i < r->kv.n_slots; i++) {
            const gw_kv_slot_t *s = &r->kv.slots[i];
            if (pass == 0 && s->busy)
                continue;
            size_t c = s->msgs ? common_msgs(s->msgs, m) : 0;
            if (best < 0 || c > best_c || (c == best_c && s->last_used < r->kv.slots[best].last_used)) {
                best = i;
                best_c = c;
            }
        }
    *common = best_c;
    return best;
}

/* --- save --- */

static void kv_save_next(gw_role_t *r, int from);

/* The save chain is over: stop the backend if that is what it was for. */
static void kv_save_end(gw_role_t *r)
{
    gateway_t *g = r->g;
    bool stop = r->kv.call->then_stop;
    kv_call_free(r->kv.call);
    r->kv.call = NULL;
    r->kv.saving = false;
    gw__kv_enforce(g);
    if (g->stopping) {
        gw__shutdown_check(g);
        return;
    }
    /* requests that came while it saved keep it, unless it yields (the
     * scheduler's own test: then it was stopped for the requests of others)
     * or the first needs the projector (it was stopped to load it) */
    gw_pend_t *head = TAILQ_FIRST(&r->queue);
    if (stop && backend_state(r->be) == BE_READY && !r->inflight &&
        (!head || gw__role_yields(r) || !gw__role_takes(r, head))) {
        gw__role_stop(r);
    } else {
        gw__drain_queue(r);
        gw__role_idle_check(r);
    }
    gw__schedule(g);
}

static void kv_save_failed(gw_role_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void kv_save_failed(gw_role_t *r, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    kv_note(r, "saving the context of slot %d failed: %s", r->kv.call->slot, msg);
    gw__observe(r->g, &(gw_obs_t){.kind = GW_OBS_KV_SAVED, .role = r, .ok = false});
    kv_save_next(r, r->kv.call->slot + 1);
}

static void on_kv_saved(gw_role_t *r, int code, const char *body, size_t len)
{
    struct gw_kv_call *c = r->kv.call;
    if (code != 200) {
        kv_save_failed(r, "HTTP %d %.200s", code, body);
        return;
    }
    gw_kv_slot_t *s = &r->kv.slots[c->slot];
    fprintf(stderr, "variet: role %s: context of slot %d saved (%llu tokens) to %s\n", r->name, c->slot,
            (unsigned long long)c->tokens, c->file);
    gw__observe(r->g, &(gw_obs_t){.kind = GW_OBS_KV_SAVED, .role = r, .ok = true});
    r->kv.saved_tokens = c->tokens;
    /* the file restored into this slot is a prefix of the new one */
    if (s->restored[0] && strcmp(s->restored, c->file)) {
        char *old = xasprintf("%s%s", r->kv.dir, s->restored);
        unlink(old);
        free(old);
    }
    snprintf(s->restored, sizeof s->restored, "%s", c->file);
    kv_save_next(r, c->slot + 1);
}

static void on_kv_save_tokens(gw_role_t *r, int code, const char *body, size_t len)
{
    struct gw_kv_call *c = r->kv.call;
    size_t n = 0;
    int32_t *t = code == 200 ? kv_tokens(body, len, &n) : NULL;
    if (!t) {
        kv_save_failed(r, "/tokenize answered %d", code);
        return;
    }
    uint64_t h = fnv1a(FNV0, t, n * sizeof *t);
    free(t);
    snprintf(c->file, sizeof c->file, "kv-%s-%016llx-%zu-%016llx.slot", r->name, (unsigned long long)r->kv.keyv, n,
             (unsigned long long)h);
    c->tokens = n;
    json_t *j = json_pack("{s:s}", "filename", c->file);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    char path[64];
    snprintf(path, sizeof path, "/slots/%d?action=save", c->slot);
    int rc = kv_post(r, path, s, strlen(s), on_kv_saved);
    free(s);
    if (rc)
        kv_save_failed(r, "cannot reach llama-server");
}

static void on_kv_save_template(gw_role_t *r, int code, const char *body, size_t len)
{
    char *tb = code == 200 ? kv_tokenize_body(body, len) : NULL;
    if (!tb || kv_post(r, "/tokenize", tb, strlen(tb), on_kv_save_tokens))
        kv_save_failed(r, "/apply-template answered %d", code);
    free(tb);
}

/* Save the next slot from `from` on that holds a conversation, or end. */
static void kv_save_next(gw_role_t *r, int from)
{
    struct gw_kv_call *c = r->kv.call;
    int i = from;
    while (i < r->kv.n_slots && !r->kv.slots[i].body)
        i++;
    if (i >= r->kv.n_slots || backend_state(r->be) != BE_READY) {
        kv_save_end(r);
        return;
    }
    gw_kv_slot_t *s = &r->kv.slots[i];
    c->slot = i;
    free(c->body);
    c->body_len = s->body_len;
    c->body = xmalloc(s->body_len + 1); /* owned by the call: the slot's may change meanwhile */
    memcpy(c->body, s->body, s->body_len);
    if (kv_post(r, "/apply-template", c->body, c->body_len, on_kv_save_template))
        kv_save_failed(r, "cannot reach llama-server");
}

static bool kv_save_start(gw_role_t *r, bool then_stop)
{
    if (!gw__kv_active(r) || r->kv.call || backend_state(r->be) != BE_READY)
        return false;
    bool any = false;
    for (int i = 0; i < r->kv.n_slots; i++)
        any |= r->kv.slots[i].body != NULL;
    if (!any)
        return false;
    r->kv.call = xcalloc(1, sizeof *r->kv.call); /* freed by kv_save_end */
    r->kv.call->r = r;
    r->kv.call->then_stop = then_stop;
    r->kv.saving = true;
    kv_save_next(r, 0);
    return true;
}

bool gw__kv_save(gw_role_t *r) { return r->kv.saving || kv_save_start(r, false); }

void gw__role_stop_idle(gw_role_t *r)
{
    if (r->kv.saving)
        return;
    gw__pool_clear(r);
    if (!kv_save_start(r, true))
        backend_stop(r->be);
}

/* --- restore, then forward --- */

static void kv_restore_end(gw_role_t *r)
{
    gw_pend_t *p = r->kv.call->p;
    kv_call_free(r->kv.call);
    r->kv.call = NULL;
    r->kv.busy = false;
    r->inflight--;
    if (p->req)
        gw__proxy_start(p);
    else
        gw__pend_done(p);
    gw__drain_queue(r);
    gw__role_idle_check(r);
}

static void kv_drop(gw_role_t *r, const char *file)
{
    char *path = xasprintf("%s%s", r->kv.dir, file);
    unlink(path);
    free(path);
    gw__kv_enforce(r->g);
}

static void on_kv_restored(gw_role_t *r, int code, const char *body, size_t len)
{
    struct gw_kv_call *c = r->kv.call;
    gw_pend_t *p = c->p;
    gw_kv_slot_t *s = &r->kv.slots[c->slot];
    if (code != 200) {
        gw__observe(r->g, &(gw_obs_t){.kind = GW_OBS_KV_RESTORED, .role = r, .ok = false});
        kv_note(r, "restoring the context from %s failed (HTTP %d %.200s); prefilling instead", c->file, code, body);
        kv_drop(r, c->file);
    } else {
        p->kv_expect = c->tokens;
        snprintf(s->restored, sizeof s->restored, "%s", c->file);
        char *path = xasprintf("%s%s", r->kv.dir, c->file);
        utimensat(AT_FDCWD, path, NULL, 0); /* most recently used */
        free(path);
    }
    kv_restore_end(r);
}

static void on_kv_restore_tokens(gw_role_t *r, int code, const char *body, size_t len)
{
    struct gw_kv_call *c = r->kv.call;
    size_t n = 0;
    int32_t *t = code == 200 ? kv_tokens(body, len, &n) : NULL;
    /* the longest saved prefix of these tokens, longer than what the slot shares already */
    uint64_t best = c->min_tokens;
    char best_name[256] = "";
    DIR *dir = t ? opendir(r->kv.dir) : NULL;
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
    if (!best_name[0]) {
        kv_restore_end(r);
        return;
    }
    snprintf(c->file, sizeof c->file, "%s", best_name);
    /* llama-server evaluates at least the prompt's last token again (its
     * logits start the answer): a prompt equal to the saved one reuses n - 1;
     * memory it cannot roll back (recurrent layers, a sliding window) comes
     * back from its checkpoint KV_CHECKPOINT_BACK tokens before the saved
     * prompt's end */
    uint64_t want = best < n ? best : n - 1;
    c->tokens = want > KV_CHECKPOINT_BACK ? want - KV_CHECKPOINT_BACK : 1;
    json_t *j = json_pack("{s:s}", "filename", best_name);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    char path[64];
    snprintf(path, sizeof path, "/slots/%d?action=restore", c->slot);
    int rc = kv_post(r, path, s, strlen(s), on_kv_restored);
    free(s);
    if (rc)
        kv_restore_end(r);
}

static void on_kv_restore_template(gw_role_t *r, int code, const char *body, size_t len)
{
    char *tb = code == 200 ? kv_tokenize_body(body, len) : NULL;
    if (!tb || kv_post(r, "/tokenize", tb, strlen(tb), on_kv_restore_tokens))
        kv_restore_end(r);
    free(tb);
}

/* Whether a saved slot of this role and load key may exist. */
static bool kv_has_saved(gw_role_t *r)
{
    DIR *dir = opendir(r->kv.dir);
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

/* Give chat request p a slot (p->kv_slot; -1 when it names a slot of its
 * own that Variet cannot track). */
static void kv_assign(gw_pend_t *p, json_t *body, size_t *common)
{
    gw_role_t *r = p->role;
    json_t *id = json_object_get(body, "id_slot");
    json_t *m = json_object_get(body, "messages");
    *common = 0;
    p->kv_slot = -1;
    if (!json_is_array(m))
        return;
    if (id) {
        /* the client chose: followed when it is one of the slots */
        json_int_t v = json_is_integer(id) ? json_integer_value(id) : -1;
        if (v < 0 || v >= r->kv.n_slots)
            return;
        p->kv_slot = (int)v;
        *common = r->kv.slots[v].msgs ? common_msgs(r->kv.slots[v].msgs, m) : 0;
    } else {
        p->kv_slot = pick_slot(r, m, common);
        p->kv_inject = r->kv.n_slots > 1;
    }
    gw_kv_slot_t *s = &r->kv.slots[p->kv_slot];
    p->kv_gen = r->kv.gen;
    p->kv_msgs = json_incref(m);
    p->kv_cont = s->msgs && *common == json_array_size(s->msgs);
    s->busy = true;
    s->last_used = now_s();
}

void gw__proxy_or_restore(gw_pend_t *p)
{
    gw_role_t *r = p->role;
    if (!gw__kv_active(r) || p->load_only || !is_chat_path(httpd_head(p->req)->target)) {
        gw__proxy_start(p);
        return;
    }
    gw__kv_pend_end(p); /* sent again (its backend died before answering): a new slot */
    struct evbuffer *b = httpd_body(p->req);
    size_t len = evbuffer_get_length(b);
    json_t *body = json_loadb((const char *)evbuffer_pullup(b, -1), len, 0, NULL);
    size_t common = 0;
    kv_assign(p, body, &common);
    json_decref(body);
    if (p->kv_slot < 0 || p->kv_cont || r->kv.call || !kv_has_saved(r)) {
        gw__proxy_start(p);
        return;
    }
    r->kv.call = xcalloc(1, sizeof *r->kv.call); /* freed by kv_restore_end */
    struct gw_kv_call *c = r->kv.call;
    c->r = r;
    c->p = p;
    c->slot = p->kv_slot;
    /* a slot that shares part of the conversation keeps that much without a restore */
    c->min_tokens = common ? r->kv.slots[p->kv_slot].tokens : 0;
    c->body_len = len;
    c->body = xmalloc(len + 1);
    evbuffer_copyout(b, c->body, len);
    r->kv.busy = true;
    r->inflight++; /* held: the role is busy while its context comes back */
    if (r->ttl_timer)
        evtimer_del(r->ttl_timer);
    if (kv_post(r, "/apply-template", c->body, c->body_len, on_kv_restore_template))
        kv_restore_end(r);
}

void gw__kv_after_answer(gw_pend_t *p, httpd_req_t *rq)
{
    gw_role_t *r = p->role;
    if (p->kv_slot < 0 || p->kv_gen != r->kv.gen || p->status != 200)
        return;
    gw_kv_slot_t *s = &r->kv.slots[p->kv_slot];
    struct evbuffer *b = httpd_body(rq);
    free(s->body);
    s->body_len = evbuffer_get_length(b);
    s->body = xmalloc(s->body_len + 1);
    evbuffer_copyout(b, s->body, s->body_len);
    json_decref(s->msgs);
    s->msgs = p->kv_msgs;
    p->kv_msgs = NULL;
    uint64_t cache_n = gw__tail_num(p->tail, p->tail_len, "\"cache_n\"");
    s->tokens = cache_n + gw__tail_num(p->tail, p->tail_len, "\"prompt_n\"") +
                gw__tail_num(p->tail, p->tail_len, "\"predicted_n\"");
    s->last_used = now_s();
    p->kv_recorded = true;
    if (!p->kv_expect)
        return;
    r->kv.last_restore_tokens = p->kv_expect;
    r->kv.last_cache_n = cache_n;
    if (cache_n >= p->kv_expect) {
        gw__observe(r->g, &(gw_obs_t){.kind = GW_OBS_KV_RESTORED, .role = r, .ok = true});
        fprintf(stderr, "variet: role %s: context restored into slot %d: %llu of %llu saved tokens reused\n", r->name,
                p->kv_slot, (unsigned long long)cache_n, (unsigned long long)p->kv_expect);
    } else {
        gw__observe(r->g, &(gw_obs_t){.kind = GW_OBS_KV_RESTORED, .role = r, .ok = false});
        kv_note(r, "restoring the context from %s did not work: the answer reused %llu tokens of %llu restored; "
                "prefilled instead", s->restored, (unsigned long long)cache_n, (unsigned long long)p->kv_expect);
        kv_drop(r, s->restored);
        s->restored[0] = 0;
    }
}

void gw__kv_pend_end(gw_pend_t *p)
{
    gw_role_t *r = p->role;
    if (p->kv_slot >= 0 && p->kv_gen == r->kv.gen && r->kv.slots) {
        gw_kv_slot_t *s = &r->kv.slots[p->kv_slot];
        s->busy = false;
        /* it ran in the slot without an answer to show for it: what the
         * slot holds is known no more, unless it went on from its conversation */
        if (!p->kv_recorded && !p->kv_cont)
            slot_forget(s);
    }
    json_decref(p->kv_msgs);
    p->kv_msgs = NULL;
    p->kv_slot = -1;
    p->kv_inject = p->kv_cont = p->kv_recorded = false;
    p->kv_expect = 0;
}

bool gw__kv_active(const gw_role_t *r)
{
    return r->kv.on && !(backend_state(r->be) == BE_STOPPED ? gw__role_vision_next(r) : r->vision);
}

char **gw__kv_start_args(gw_role_t *r, char *const *args, size_t *n)
{
    if (!gw__kv_active(r))
        return NULL;
    r->kv.keyv = kv_key(r);
    char **a = xcalloc(*n + 3, sizeof *a); /* the caller frees the vector, not the strings */
    memcpy(a, args, *n * sizeof *a);
    a[*n] = "--slot-save-path";
    a[*n + 1] = r->kv.dir;
    *n += 2;
    return a;
}

void gw__kv_backend_event(gw_role_t *r, bool ready)
{
    /* a new load, or none: every slot is empty */
    r->kv.gen++;
    for (int i = 0; i < r->kv.n_slots; i++) {
        slot_forget(&r->kv.slots[i]);
        r->kv.slots[i].busy = false;
    }
}

void gw__kv_free(gw_role_t *r)
{
    if (r->kv.call) {
        gw_pend_t *p = r->kv.call->p;
        kv_call_free(r->kv.call);
        r->kv.call = NULL;
        if (p)
            gw__pend_done(p);
    }
    for (int i = 0; i < r->kv.n_slots; i++)
        slot_forget(&r->kv.slots[i]);
    free(r->kv.slots);
    r->kv.slots = NULL;
    r->kv.n_slots = 0;
    free(r->kv.dir);
}
