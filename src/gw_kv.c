/*
 * gw_kv.c — context kept across swaps: saved slot files (see gw_int.h).
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
 * At most one such upstream call runs per role (r->kv.call).
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

static bool is_chat_path(const char *target)
{
    return !strncmp(target, "/v1/chat/completions", 20) || !strncmp(target, "/chat/completions", 17);
}

void gw__kv_configure(gw_role_t *r)
{
    gateway_t *g = r->g;
    const reg_role_t *d = r->def;
    long np = 4; /* llama-server's auto */
    args_get_long(d->args, d->n_args, ARG_PARALLEL, &np);
    bool own_path = false;
    for (size_t i = 0; i < d->n_args; i++)
        own_path |= !strcmp(d->args[i], "--slot-save-path");
    r->kv.on = false;
    if (args_find(d->args, d->n_args, ARG_MMPROJ) >= 0)
        snprintf(r->kv.off, sizeof r->kv.off, "not kept across swaps: llama-server refuses to save or restore "
                 "slots while a projector is loaded (--mmproj)");
    else if (!g->reg->engine.kv_store_max)
        snprintf(r->kv.off, sizeof r->kv.off, "not kept across swaps: _engine.kv_store_max is 0");
    else if (!g->reg->engine.log_dir)
        snprintf(r->kv.off, sizeof r->kv.off, "not kept across swaps: no log_dir");
    else if (np != 1)
        snprintf(r->kv.off, sizeof r->kv.off, "not kept across swaps: only roles with -np 1 keep their context "
                 "(which of %ld slots holds a conversation is not known)", np);
    else if (own_path)
        snprintf(r->kv.off, sizeof r->kv.off, "not kept across swaps: the role's args set --slot-save-path");
    else
        r->kv.on = true;
    if (!r->kv.on)
        return;
    char *top = xasprintf("%s/%s", g->reg->engine.log_dir, r->name);
    mkdir(g->reg->engine.log_dir, 0755);
    mkdir(top, 0755);
    free(r->kv.dir);
    r->kv.dir = xasprintf("%s/slots/", top);
    mkdir(r->kv.dir, 0755);
    free(top);
}

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
    for (size_t i = 0; i < d->n_args; i++)
        h = fnv1a(h, d->args[i], strlen(d->args[i]) + 1);
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
        DIR *dir = r->kv.dir ? opendir(r->kv.dir) : NULL;
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

/* --- save, then stop --- */

static void kv_save_end(gw_role_t *r, bool saved)
{
    kv_call_free(r->kv.call);
    r->kv.call = NULL;
    r->kv.saving = false;
    gw__observe(r->g, &(gw_obs_t){.kind = GW_OBS_KV_SAVED, .role = r, .ok = saved});
    if (saved) {
        /* the file restored in this load is a prefix of the new one */
        if (r->kv.restored[0] && strcmp(r->kv.restored, r->kv.file)) {
            char *old = xasprintf("%s%s", r->kv.dir, r->kv.restored);
            unlink(old);
            free(old);
        }
        r->kv.restored[0] = 0;
        gw__kv_enforce(r->g);
    }
    if (backend_state(r->be) == BE_READY && !gw__role_busy(r)) {
        gw__role_stop(r);
    } else {
        gw__drain_queue(r); /* requests came while it saved: it stays */
        gw__role_idle_check(r);
    }
    gw__schedule(r->g);
}

static void on_kv_saved(gw_role_t *r, int code, const char *body, size_t len)
{
    if (code != 200) {
        kv_note(r, "saving the context failed: HTTP %d %.200s", code, body);
        kv_save_end(r, false);
        return;
    }
    fprintf(stderr, "variet: role %s: context saved (%llu tokens) to %s\n", r->name,
            (unsigned long long)r->kv.saved_tokens, r->kv.file);
    kv_save_end(r, true);
}

static void on_kv_save_tokens(gw_role_t *r, int code, const char *body, size_t len)
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
    snprintf(r->kv.file, sizeof r->kv.file, "kv-%s-%016llx-%zu-%016llx.slot", r->name,
             (unsigned long long)r->kv.keyv, n, (unsigned long long)h);
    r->kv.saved_tokens = n;
    json_t *j = json_pack("{s:s}", "filename", r->kv.file);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    int rc = kv_post(r, "/slots/0?action=save", s, strlen(s), on_kv_saved);
    free(s);
    if (rc) {
        kv_note(r, "saving the context failed: cannot reach llama-server");
        kv_save_end(r, false);
    }
}

static void on_kv_save_template(gw_role_t *r, int code, const char *body, size_t len)
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

void gw__role_stop_idle(gw_role_t *r)
{
    if (r->kv.saving)
        return;
    gw__pool_clear(r);
    if (!r->kv.on || !r->kv.body || backend_state(r->be) != BE_READY || r->kv.call) {
        backend_stop(r->be);
        return;
    }
    r->kv.call = xcalloc(1, sizeof *r->kv.call);
    r->kv.call->r = r;
    r->kv.saving = true;
    if (kv_post(r, "/apply-template", r->kv.body, r->kv.body_len, on_kv_save_template)) {
        kv_note(r, "saving the context failed: cannot reach llama-server");
        kv_save_end(r, false);
    }
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
    gw_pend_t *p = r->kv.call->p;
    if (code != 200) {
        gw__observe(r->g, &(gw_obs_t){.kind = GW_OBS_KV_RESTORED, .role = r, .ok = false});
        kv_note(r, "restoring the context from %s failed (HTTP %d %.200s); prefilling instead", r->kv.file, code,
                body);
        kv_drop(r, r->kv.file);
    } else {
        p->kv_expect = r->kv.expect;
        snprintf(r->kv.restored, sizeof r->kv.restored, "%s", r->kv.file);
        char *path = xasprintf("%s%s", r->kv.dir, r->kv.file);
        utimensat(AT_FDCWD, path, NULL, 0); /* most recently used */
        free(path);
    }
    kv_restore_end(r);
}

static void on_kv_restore_tokens(gw_role_t *r, int code, const char *body, size_t len)
{
    size_t n = 0;
    int32_t *t = code == 200 ? kv_tokens(body, len, &n) : NULL;
    /* the longest saved prefix of these tokens */
    uint64_t best = 0;
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
    if (!best) {
        kv_restore_end(r);
        return;
    }
    snprintf(r->kv.file, sizeof r->kv.file, "%s", best_name);
    r->kv.saved_tokens = best;
    /* llama-server evaluates at least the prompt's last token again (its
     * logits start the answer): a prompt equal to the saved one reuses n - 1 */
    r->kv.expect = best < n ? best : n - 1;
    json_t *j = json_pack("{s:s}", "filename", best_name);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    int rc = kv_post(r, "/slots/0?action=restore", s, strlen(s), on_kv_restored);
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

/* Forward p, first restoring a saved slot when this is the first chat
 * request since the role loaded and a saved prefix may match. */
void gw__proxy_or_restore(gw_pend_t *p)
{
    gw_role_t *r = p->role;
    if (!r->kv.fresh || r->kv.call || p->load_only || !is_chat_path(httpd_head(p->req)->target)) {
        gw__proxy_start(p);
        return;
    }
    r->kv.fresh = false;
    if (!kv_has_saved(r)) {
        gw__proxy_start(p);
        return;
    }
    struct evbuffer *b = httpd_body(p->req);
    r->kv.call = xcalloc(1, sizeof *r->kv.call);
    r->kv.call->r = r;
    r->kv.call->p = p;
    r->kv.call->body_len = evbuffer_get_length(b);
    r->kv.call->body = xmalloc(r->kv.call->body_len + 1);
    evbuffer_copyout(b, r->kv.call->body, r->kv.call->body_len);
    r->kv.busy = true;
    r->inflight++; /* held: the role is busy while its context comes back */
    if (r->ttl_timer)
        evtimer_del(r->ttl_timer);
    if (kv_post(r, "/apply-template", r->kv.call->body, r->kv.call->body_len, on_kv_restore_template))
        kv_restore_end(r);
}

/* After an answer: keep the body of a chat request for the next save, and
 * judge a restore by the answer's timings. */
void gw__kv_after_answer(gw_pend_t *p, httpd_req_t *rq)
{
    gw_role_t *r = p->role;
    if (!r->kv.on || p->status != 200 || !is_chat_path(httpd_head(rq)->target))
        return;
    struct evbuffer *b = httpd_body(rq);
    free(r->kv.body);
    r->kv.body_len = evbuffer_get_length(b);
    r->kv.body = xmalloc(r->kv.body_len + 1);
    evbuffer_copyout(b, r->kv.body, r->kv.body_len);
    if (!p->kv_expect)
        return;
    uint64_t cache_n = gw__tail_num(p->tail, p->tail_len, "\"cache_n\"");
    r->kv.last_restore_tokens = p->kv_expect;
    r->kv.last_cache_n = cache_n;
    if (cache_n >= p->kv_expect) {
        gw__observe(r->g, &(gw_obs_t){.kind = GW_OBS_KV_RESTORED, .role = r, .ok = true});
        fprintf(stderr, "variet: role %s: context restored: %llu of %llu saved tokens reused\n", r->name,
                (unsigned long long)cache_n, (unsigned long long)p->kv_expect);
    } else {
        gw__observe(r->g, &(gw_obs_t){.kind = GW_OBS_KV_RESTORED, .role = r, .ok = false});
        kv_note(r, "restoring the context from %s did not work: the answer reused %llu tokens of %llu restored; "
                "prefilled instead", r->kv.restored, (unsigned long long)cache_n, (unsigned long long)p->kv_expect);
        kv_drop(r, r->kv.restored);
        r->kv.restored[0] = 0;
    }
}

char **gw__kv_start_args(gw_role_t *r, size_t *n)
{
    if (!r->kv.on)
        return NULL;
    const reg_role_t *d = r->def;
    r->kv.keyv = kv_key(r);
    char **a = xcalloc(d->n_args + 3, sizeof *a); /* the caller frees the vector, not the strings */
    memcpy(a, d->args, d->n_args * sizeof *a);
    a[d->n_args] = "--slot-save-path";
    a[d->n_args + 1] = r->kv.dir;
    *n = d->n_args + 2;
    return a;
}

void gw__kv_backend_event(gw_role_t *r, bool ready)
{
    if (ready) {
        r->kv.fresh = r->kv.on;
        r->kv.restored[0] = 0;
        return;
    }
    /* its slot is gone: nothing to save until a new answer */
    free(r->kv.body);
    r->kv.body = NULL;
    r->kv.fresh = false;
}

void gw__kv_free(gw_role_t *r)
{
    if (r->kv.call) {
        gw_pend_t *p = r->kv.call->p;
        kv_call_free(r->kv.call);
        if (p)
            gw__pend_done(p);
    }
    free(r->kv.dir);
    free(r->kv.body);
}
