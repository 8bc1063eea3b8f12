/*
 * bench.c — throughput measurement over HTTP with libcurl (see bench.h).
 *
 * One request = one streamed /v1/chat/completions with ignore_eos and
 * cache_prompt false. The first SSE chunk that carries content text marks
 * the time to first token; the last chunk's `timings` object gives
 * llama-server's own prompt and generation rates.
 */
#include "bench.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "proc.h"
#include "util.h"

const bench_scenario_t bench_short = {"short", 170, 300};
const bench_scenario_t bench_long = {"long", 3100, 128};

/* libcurl is loaded when a benchmark first needs it (dlopen), so the
 * gateway — the same binary — does not map libcurl and its dependency tree
 * (about 7 MB of resident pages at idle). */
typedef struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} curl_api_t;

static curl_api_t cu;

/* Abort-free: false (and a message on stderr once) when libcurl is missing. */
static bool curl_ready(void)
{
    static int state; /* 0 untried, 1 ok, -1 missing */
    if (state)
        return state > 0;
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (h) {
        *(void **)&cu.global_init = dlsym(h, "curl_global_init");
        *(void **)&cu.easy_init = dlsym(h, "curl_easy_init");
        *(void **)&cu.easy_setopt = dlsym(h, "curl_easy_setopt");
        *(void **)&cu.easy_perform = dlsym(h, "curl_easy_perform");
        *(void **)&cu.easy_getinfo = dlsym(h, "curl_easy_getinfo");
        *(void **)&cu.easy_cleanup = dlsym(h, "curl_easy_cleanup");
        *(void **)&cu.easy_strerror = dlsym(h, "curl_easy_strerror");
        *(void **)&cu.slist_append = dlsym(h, "curl_slist_append");
        *(void **)&cu.slist_free_all = dlsym(h, "curl_slist_free_all");
    }
    if (!h || !cu.global_init || !cu.easy_init || !cu.easy_setopt || !cu.easy_perform || !cu.easy_getinfo ||
        !cu.easy_cleanup || !cu.easy_strerror || !cu.slist_append || !cu.slist_free_all) {
        fprintf(stderr, "variet: libcurl.so.4 is needed to benchmark (apt-get install libcurl4): %s\n",
                h ? "symbols missing" : dlerror());
        state = -1;
        return false;
    }
    cu.global_init(CURL_GLOBAL_DEFAULT);
    state = 1;
    return true;
}

static size_t to_buf(char *p, size_t sz, size_t n, void *ud)
{
    return buf_append(ud, p, sz * n) == 0 ? sz * n : 0;
}

static char *api_key; /* bench_set_api_key's copy; NULL: $VARIET_API_KEY */

void bench_set_api_key(const char *key)
{
    free(api_key);
    api_key = key ? xstrdup(key) : NULL;
}

static CURL *easy(const char *url, struct curl_slist **h)
{
    *h = NULL;
    if (!curl_ready())
        return NULL;
    CURL *c = cu.easy_init();
    if (!c)
        abort();
    *h = cu.slist_append(NULL, "Content-Type: application/json");
    cu.easy_setopt(c, CURLOPT_URL, url);
    cu.easy_setopt(c, CURLOPT_HTTPHEADER, *h);
    cu.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    cu.easy_setopt(c, CURLOPT_TIMEOUT, 1800L);
    cu.easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    const char *key = api_key ? api_key : getenv("VARIET_API_KEY");
    if (key && *key) {
        char *auth = xasprintf("Authorization: Bearer %s", key);
        *h = cu.slist_append(*h, auth);
        cu.easy_setopt(c, CURLOPT_HTTPHEADER, *h);
        free(auth);
    }
    return c;
}

int bench_http_get(const char *base_url, const char *path, int *code, char **body)
{
    char *url = xasprintf("%s%s", base_url, path);
    struct curl_slist *h;
    CURL *c = easy(url, &h);
    if (!c) {
        free(url);
        *code = 0;
        if (body)
            *body = xstrdup("");
        return -ENOSYS;
    }
    buf_t b;
    long st = 0;
    buf_init(&b, 16u << 20);
    buf_append(&b, "", 0);
    cu.easy_setopt(c, CURLOPT_WRITEFUNCTION, to_buf);
    cu.easy_setopt(c, CURLOPT_WRITEDATA, &b);
    cu.easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    CURLcode rc = cu.easy_perform(c);
    cu.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    cu.slist_free_all(h);
    cu.easy_cleanup(c);
    free(url);
    *code = (int)st;
    if (body)
        *body = b.data;
    else
        buf_free(&b);
    return rc == CURLE_OK ? 0 : -ECONNREFUSED;
}

static int post_json(const char *base_url, const char *path, json_t *req, json_t **resp, char *err, size_t errlen)
{
    char *url = xasprintf("%s%s", base_url, path);
    char *body = json_dumps(req, JSON_COMPACT);
    struct curl_slist *h;
    CURL *c = easy(url, &h);
    if (!c) {
        snprintf(err, errlen, "libcurl.so.4 is not installed (apt-get install libcurl4)");
        free(body);
        free(url);
        return -ENOSYS;
    }
    buf_t b;
    long st = 0;
    int rc = 0;
    buf_init(&b, 64u << 20);
    buf_append(&b, "", 0);
    cu.easy_setopt(c, CURLOPT_POSTFIELDS, body);
    cu.easy_setopt(c, CURLOPT_WRITEFUNCTION, to_buf);
    cu.easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CURLcode cr = cu.easy_perform(c);
    cu.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    if (cr != CURLE_OK) {
        snprintf(err, errlen, "POST %s: %s", url, cu.easy_strerror(cr));
        rc = -ECONNREFUSED;
    } else if (st != 200) {
        snprintf(err, errlen, "POST %s: HTTP %ld: %.300s", url, st, b.data);
        rc = -EIO;
    } else if (!(*resp = json_loads(b.data, 0, NULL))) {
        snprintf(err, errlen, "POST %s: response is not JSON", url);
        rc = -EIO;
    }
    buf_free(&b);
    cu.slist_free_all(h);
    cu.easy_cleanup(c);
    free(body);
    free(url);
    return rc;
}

static int count_tokens(const char *base_url, const char *model, const char *text, long *n, char *err,
                        size_t errlen)
{
    json_t *req = json_pack("{s:s}", "content", text), *resp = NULL;
    if (model)
        json_object_set_new(req, "model", json_string(model));
    int rc = post_json(base_url, "/tokenize", req, &resp, err, errlen);
    json_decref(req);
    if (rc)
        return rc;
    json_t *t = json_object_get(resp, "tokens");
    if (!json_is_array(t)) {
        snprintf(err, errlen, "/tokenize: no \"tokens\" array in the response");
        json_decref(resp);
        return -EIO;
    }
    *n = (long)json_array_size(t);
    json_decref(resp);
    return 0;
}

/* Sentence k of the deterministic text. */
static void sentence(buf_t *b, int k)
{
    static const char *const subj[] = {"The engine", "A careful operator", "The scheduler", "Each role",
                                       "The planner", "A small model", "The gateway", "Every benchmark"};
    static const char *const verb[] = {"measures", "records", "compares", "explains", "predicts",
                                       "streams", "verifies", "reports"};
    static const char *const obj[] = {"prompt throughput on the local machine",
                                      "generation speed for the chosen context",
                                      "memory used by the cache on every device",
                                      "the time to the first token of each answer",
                                      "how batch sizes change prefill rates",
                                      "whether quantized caches keep their speed"};
    buf_printf(b, "%s %s %s in step %d. ", subj[k % 8], verb[(k / 8) % 8], obj[k % 6], k + 1);
}

int bench_prompt(const char *base_url, const char *model, int target, char **text, long *n_tokens,
                 char *err, size_t errlen)
{
    static const char head[] = "Read the following notes and continue them. ";
    buf_t b;
    long n = 0;
    int rc;
    /* tokens per sentence from a 4-sentence sample, then build and top up */
    buf_init(&b, 0);
    for (int k = 0; k < 4; k++)
        sentence(&b, k);
    rc = count_tokens(base_url, model, b.data, &n, err, errlen);
    buf_free(&b);
    if (rc)
        return rc;
    double per = n > 0 ? (double)n / 4.0 : 16.0;
    int k = 0, want = (int)((double)target / per);
    buf_init(&b, 0);
    buf_append(&b, head, sizeof head - 1);
    for (; k < want; k++)
        sentence(&b, k);
    for (int guard = 0; guard < 64; guard++) {
        if ((rc = count_tokens(base_url, model, b.data, &n, err, errlen))) {
            buf_free(&b);
            return rc;
        }
        if (n >= target)
            break;
        int more = (int)((double)(target - n) / per) + 1;
        for (int i = 0; i < more; i++)
            sentence(&b, k++);
    }
    *text = b.data;
    *n_tokens = n;
    return 0;
}

int bench_context(const char *base_url, long *n_ctx)
{
    int code = 0;
    char *body = NULL;
    *n_ctx = 0;
    int rc = bench_http_get(base_url, "/props", &code, &body);
    if (rc == 0 && code == 200) {
        json_t *j = json_loads(body, 0, NULL);
        json_t *n = json_object_get(json_object_get(j, "default_generation_settings"), "n_ctx");
        if (json_is_integer(n) && json_integer_value(n) > 0)
            *n_ctx = (long)json_integer_value(n);
        json_decref(j);
    }
    free(body);
    if (rc)
        return -ECONNREFUSED;
    return *n_ctx > 0 ? 0 : -ENOENT;
}

long bench_context_from_error(const char *err)
{
    static const char key[] = "available context size (";
    const char *p = err ? strstr(err, key) : NULL;
    if (!p)
        return 0;
    p += sizeof key - 1;
    long n = 0;
    for (; *p >= '0' && *p <= '9' && n < 100000000; p++)
        n = n * 10 + (*p - '0');
    return strncmp(p, " tokens", 7) ? 0 : n;
}

int bench_min_prompt(const bench_scenario_t *sc)
{
    return sc->prompt_tokens >= 2 * BENCH_MIN_PROMPT ? BENCH_MIN_PROMPT : sc->prompt_tokens / 2;
}

int bench_fit(const bench_scenario_t *sc, long n_ctx, bench_scenario_t *out)
{
    /* the chat template's tokens, and the last sentence bench_prompt adds
     * past its target */
    const long margin = 64;
    *out = *sc;
    if (n_ctx <= 0 || sc->prompt_tokens + sc->n_predict + margin <= n_ctx)
        return 0;
    long fit = n_ctx - sc->n_predict - margin;
    if (fit < bench_min_prompt(sc))
        return -1;
    out->prompt_tokens = (int)fit;
    return 1;
}

typedef struct {
    buf_t acc;      /* whole stream (bounded) */
    double t0, t_first;
} stream_t;

static size_t on_stream(char *p, size_t sz, size_t n, void *ud)
{
    stream_t *s = ud;
    size_t len = sz * n;
    if (s->t_first == 0) {
        /* a delta with text: "content":"x (not null, not empty) */
        for (size_t i = 0; i + 12 < len; i++)
            if (!memcmp(p + i, "\"content\":\"", 11) && p[i + 11] != '"') {
                s->t_first = now_s();
                break;
            }
    }
    return buf_append(&s->acc, p, len) == 0 ? len : 0;
}

/* The last `timings` object in the stream. */
static json_t *last_timings(const char *s)
{
    json_t *found = NULL;
    const char *p = s;
    while ((p = strstr(p, "data: "))) {
        p += 6;
        const char *e = strstr(p, "\n");
        size_t n = e ? (size_t)(e - p) : strlen(p);
        json_t *j = json_loadb(p, n, 0, NULL);
        json_t *t = json_object_get(j, "timings");
        if (t) {
            json_decref(found);
            found = json_incref(t);
        }
        json_decref(j);
        p += n;
    }
    return found;
}

int bench_run(const char *base_url, const char *model, const char *prompt, int n_predict,
              bench_sample_t *out, char *err, size_t errlen)
{
    json_t *req = json_pack("{s:[{s:s,s:s}],s:i,s:b,s:b,s:b,s:f,s:i}", "messages", "role", "user", "content",
                            prompt, "max_tokens", n_predict, "stream", 1, "cache_prompt", 0, "ignore_eos", 1,
                            "temperature", 0.0, "seed", 1);
    if (model)
        json_object_set_new(req, "model", json_string(model));
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    char *url = xasprintf("%s/v1/chat/completions", base_url);
    struct curl_slist *h;
    CURL *c = easy(url, &h);
    if (!c) {
        snprintf(err, errlen, "libcurl.so.4 is not installed (apt-get install libcurl4)");
        free(body);
        free(url);
        return -ENOSYS;
    }
    stream_t s = {0};
    long st = 0;
    int rc = 0;
    buf_init(&s.acc, 256u << 20);
    buf_append(&s.acc, "", 0);
    cu.easy_setopt(c, CURLOPT_POSTFIELDS, body);
    cu.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
    cu.easy_setopt(c, CURLOPT_WRITEDATA, &s);
    s.t0 = now_s();
    CURLcode cr = cu.easy_perform(c);
    double t_end = now_s();
    cu.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    json_t *t = NULL;
    if (cr != CURLE_OK) {
        snprintf(err, errlen, "POST %s: %s", url, cu.easy_strerror(cr));
        rc = -ECONNREFUSED;
    } else if (st != 200) {
        snprintf(err, errlen, "POST %s: HTTP %ld: %.300s", url, st, s.acc.data);
        rc = -EIO;
    } else if (strstr(s.acc.data, "data: {\"error\"")) {
        snprintf(err, errlen, "stream ended with an error: %.300s", strstr(s.acc.data, "data: {\"error\""));
        rc = -EIO;
    } else if (!(t = last_timings(s.acc.data))) {
        snprintf(err, errlen, "no \"timings\" in the response (is this llama-server?)");
        rc = -EIO;
    } else {
        memset(out, 0, sizeof *out);
        out->prompt_n = (long)json_integer_value(json_object_get(t, "prompt_n"));
        out->gen_n = (long)json_integer_value(json_object_get(t, "predicted_n"));
        out->prompt_tps = json_number_value(json_object_get(t, "prompt_per_second"));
        out->gen_tps = json_number_value(json_object_get(t, "predicted_per_second"));
        out->prefill_s = json_number_value(json_object_get(t, "prompt_ms")) / 1000.0;
        out->ttft_ms = s.t_first > 0 ? (s.t_first - s.t0) * 1000.0 : 0;
        out->wall_s = t_end - s.t0;
    }
    json_decref(t);
    buf_free(&s.acc);
    cu.slist_free_all(h);
    cu.easy_cleanup(c);
    free(body);
    free(url);
    return rc;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void stat3(double *v, int n, double *med, double *mn, double *mx)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    *mn = v[0];
    *mx = v[n - 1];
    *med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_stats(const bench_sample_t *s, int n, bench_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    if (n <= 0)
        return;
    double *v = xcalloc((size_t)n, sizeof *v);
#define FIELD(f)                                                  \
    do {                                                          \
        for (int i = 0; i < n; i++)                               \
            v[i] = (double)s[i].f;                                \
        double a, b, c;                                           \
        stat3(v, n, &a, &b, &c);                                  \
        out->med.f = a;                                           \
        out->min.f = b;                                           \
        out->max.f = c;                                           \
    } while (0)
    FIELD(prompt_tps);
    FIELD(gen_tps);
    FIELD(ttft_ms);
    FIELD(prefill_s);
    FIELD(wall_s);
    for (int i = 0; i < n; i++)
        v[i] = (double)s[i].prompt_n;
    double a, b, c;
    stat3(v, n, &a, &b, &c);
    out->med.prompt_n = out->min.prompt_n = (long)b;
    out->max.prompt_n = (long)c;
    out->med.prompt_n = (long)a;
    for (int i = 0; i < n; i++)
        v[i] = (double)s[i].gen_n;
    stat3(v, n, &a, &b, &c);
    out->med.gen_n = (long)a;
    out->min.gen_n = (long)b;
    out->max.gen_n = (long)c;
#undef FIELD
    free(v);
}

static void read_report(const char *log_path, loadlog_t *rep)
{
    char *log = NULL, e[256];
    size_t len = 0;
    loadlog_init(rep);
    if (file_read_all(log_path, 64u << 20, &log, &len, e, sizeof e) == 0) {
        loadlog_parse(rep, log, len);
        free(log);
    }
}

static volatile sig_atomic_t *spawn_abort;

void bench_set_abort(volatile sig_atomic_t *flag)
{
    spawn_abort = flag;
}

int bench_spawn(const char *exe, const char *model, char *const *args, size_t n_args, const char *log_path,
                double timeout_s, pid_t *pid, char **base, double *cold_s, loadlog_t *rep, char *err,
                size_t errlen)
{
    int port = proc_free_port();
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    char **argv = backend_argv(exe, model, ps, args, n_args);
    *pid = 0;
    *base = NULL;
    loadlog_init(rep);
    FILE *lf = fopen(log_path, "w");
    if (!lf) {
        snprintf(err, errlen, "%s: cannot write the backend log", log_path);
        free(argv);
        return -EIO;
    }
    double t0 = now_s();
    pid_t p = proc_spawn(argv, fileno(lf));
    fclose(lf);
    free(argv);
    if (p < 0) {
        snprintf(err, errlen, "cannot start %s: %s", exe, strerror((int)-p));
        return (int)p;
    }
    char *url = xasprintf("http://127.0.0.1:%d", port);
    while (now_s() - t0 < timeout_s) {
        int code = 0;
        if (spawn_abort && *spawn_abort) {
            proc_stop(p, 2);
            snprintf(err, errlen, "interrupted while llama-server was loading");
            free(url);
            return -EINTR;
        }
        if (bench_http_get(url, "/health", &code, NULL) == 0 && code == 200) {
            *cold_s = now_s() - t0;
            read_report(log_path, rep);
            *pid = p;
            *base = url;
            return 0;
        }
        int st;
        if (waitpid(p, &st, WNOHANG) == p) {
            read_report(log_path, rep);
            if (rep->oom)
                snprintf(err, errlen, "%s: out of memory allocating %.2f MiB%s%s (log %s)",
                         rep->oom_device[0] ? rep->oom_device : "host", rep->oom_mib, rep->oom_what[0] ? " for " : "",
                         rep->oom_what, log_path);
            else
                snprintf(err, errlen, "llama-server exited during load: %s (log %s)",
                         rep->error[0] ? rep->error : "no error line", log_path);
            free(url);
            return -ECHILD;
        }
        usleep(20000);
    }
    proc_stop(p, 2);
    read_report(log_path, rep);
    snprintf(err, errlen, "llama-server not ready within %.0f s (log %s)", timeout_s, log_path);
    free(url);
    return -ETIMEDOUT;
}
