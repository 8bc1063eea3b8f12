/*
 * bench.c — throughput measurement over HTTP with libcurl (see bench.h).
 *
 * One request = one streamed /v1/chat/completions with ignore_eos and
 * cache_prompt false. The first SSE chunk that carries content text marks
 * the time to first token; the last chunk's `timings` object gives
 * llama-server's own prompt and generation rates (and, with a draft model,
 * the drafted and accepted tokens). A vision request carries its picture
 * as an image_url content part; its image tokens and the projector's
 * encode time are read from the server's log afterwards.
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

#include "args.h"
#include "backend.h"
#include "proc.h"
#include "roleplan.h"
#include "util.h"

const bench_scenario_t bench_short = {"short", 170, 300};
const bench_scenario_t bench_long = {"long", 3100, 128};
const bench_scenario_t bench_vision = {"vision", 0, 128};
const bench_scenario_t bench_turn = {"turn", 3100, 128};
const char bench_vision_question[] = "Describe this picture in detail: the shapes, their colours and where they are.";

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

static double stall_s = 600; /* bench_set_stall_timeout's; 0: none */

void bench_set_stall_timeout(double seconds)
{
    stall_s = seconds > 0 ? seconds : 0;
}

/* err for a failed transfer: a stalled one names the setting that ended it. */
static void transfer_error(CURLcode cr, const char *url, char *err, size_t errlen)
{
    if (cr == CURLE_OPERATION_TIMEDOUT && stall_s > 0)
        snprintf(err, errlen, "POST %s: no byte from llama-server for %.0f s (_engine.upstream_timeout)", url,
                 stall_s);
    else
        snprintf(err, errlen, "POST %s: %s", url, cu.easy_strerror(cr));
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
    if (stall_s > 0) { /* fewer than 1 byte/s for stall_s seconds ends it */
        cu.easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        cu.easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)stall_s);
    }
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
        transfer_error(cr, url, err, errlen);
        rc = -ECONNREFUSED;
    } else if (st != 200) {
        snprintf(err, errlen, "POST %s: HTTP %ld: %.300s", url, st, b.data);
        rc = -EIO;
    } else if (!(*resp = json_loads(b.data, JSON_ALLOW_NUL, NULL))) {
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
        json_t *j = json_loadb(p, n, JSON_ALLOW_NUL, NULL);
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

/* The request body: one user message of text, or of text and an image. */
static char *chat_body(const char *model, const char *prompt, const char *image_uri, int n_predict)
{
    json_t *content = image_uri ? json_pack("[{s:s,s:s},{s:s,s:{s:s}}]", "type", "text", "text", prompt, "type",
                                            "image_url", "image_url", "url", image_uri)
                                : json_string(prompt);
    json_t *req = json_pack("{s:[{s:s,s:o}],s:i,s:b,s:b,s:b,s:f,s:i}", "messages", "role", "user", "content",
                            content, "max_tokens", n_predict, "stream", 1, "cache_prompt", 0, "ignore_eos", 1,
                            "temperature", 0.0, "seed", 1);
    if (model)
        json_object_set_new(req, "model", json_string(model));
    char *body = json_dumps(req, JSON_COMPACT); /* the caller's */
    json_decref(req);
    return body;
}

static long opt_long(json_t *t, const char *key)
{
    json_t *v = json_object_get(t, key);
    return json_is_integer(v) ? (long)json_integer_value(v) : -1;
}

/* The turn scenario's fixed answer and follow-up (the second turn's). */
static const char turn_answer[] = "The text above repeats a few sentences about measuring servers. In short: "
                                  "measure more than once, and keep what you measured.";
static const char turn_followup[] = "Now list its three main points as short bullets.";

/* The turn scenario's request: the first turn (answer NULL) or the second,
 * prompt cache on. Caller frees. */
static char *turn_body(const char *model, const char *prompt, const char *answer, int n_predict)
{
    json_t *msgs = json_pack("[{s:s,s:s}]", "role", "user", "content", prompt);
    if (answer) {
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "assistant", "content", answer));
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content", turn_followup));
    }
    json_t *req = json_pack("{s:o,s:i,s:b,s:b,s:b,s:f,s:i}", "messages", msgs, "max_tokens", n_predict, "stream", 1,
                            "cache_prompt", 1, "ignore_eos", 1, "temperature", 0.0, "seed", 1);
    if (model)
        json_object_set_new(req, "model", json_string(model));
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    return body;
}

static int chat_run(const char *base_url, const char *body, bench_sample_t *out, char *err, size_t errlen)
{
    char *url = xasprintf("%s/v1/chat/completions", base_url);
    struct curl_slist *h;
    CURL *c = easy(url, &h);
    if (!c) {
        snprintf(err, errlen, "libcurl.so.4 is not installed (apt-get install libcurl4)");
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
        transfer_error(cr, url, err, errlen);
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
        /* present only when the slot drafted (server-context.cpp: n_draft_total > 0) */
        out->draft_n = opt_long(t, "draft_n");
        out->draft_accepted = out->draft_n >= 0 ? opt_long(t, "draft_n_accepted") : -1;
        out->cache_n = opt_long(t, "cache_n");
        out->encode_ms = out->image_decode_ms = -1;
        out->image_tokens = -1;
    }
    json_decref(t);
    buf_free(&s.acc);
    cu.slist_free_all(h);
    cu.easy_cleanup(c);
    free(url);
    return rc;
}

int bench_run(const char *base_url, const char *model, const char *prompt, int n_predict, bench_sample_t *out,
              char *err, size_t errlen)
{
    return bench_run_image(base_url, model, prompt, NULL, n_predict, NULL, out, err, errlen);
}

int bench_run_turn(const char *base_url, const char *model, const char *prompt, int run, int n_predict,
                   bench_sample_t *first, bench_sample_t *second, char *err, size_t errlen)
{
    char *text = xasprintf("(%d) %s", run, prompt);
    char *b1 = turn_body(model, text, NULL, n_predict), *b2 = turn_body(model, text, turn_answer, n_predict);
    int rc = chat_run(base_url, b1, first, err, errlen);
    if (rc)
        err_prefix(err, errlen, "first turn");
    else if ((rc = chat_run(base_url, b2, second, err, errlen)))
        err_prefix(err, errlen, "second turn");
    free(b1);
    free(b2);
    free(text);
    return rc;
}

/* ---- the log around an image request ---- */

static const char enc_marker[] = "encoding mtmd batch from idx";

/* The log from byte `from` of a file (caller frees), NULL when unreadable. */
static char *file_from(const char *path, long from, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    buf_t b;
    buf_init(&b, 64u << 20);
    buf_append(&b, "", 0);
    char chunk[65536];
    size_t n;
    if (fseek(f, from, SEEK_SET) == 0)
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && buf_append(&b, chunk, n) == 0)
            ;
    fclose(f);
    *len = b.len;
    return b.data;
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : 0;
    fclose(f);
    return n < 0 ? 0 : n;
}

/* A gateway's last lines of the role's log (caller frees), NULL on failure. */
static char *gateway_tail(const bench_logsrc_t *l, size_t *len)
{
    char *path = xasprintf("/roles/%s/logs?tail=600", l->role);
    int code = 0;
    char *body = NULL;
    int rc = bench_http_get(l->base_url, path, &code, &body);
    free(path);
    if (rc || code != 200) {
        free(body);
        return NULL;
    }
    *len = strlen(body);
    return body;
}

/* The last line of text holding the encode marker, from its start (into
 * text), or NULL. */
static const char *last_encode_line(const char *text)
{
    const char *last = NULL;
    for (const char *p = text; (p = strstr(p, enc_marker)); p++)
        last = p;
    if (!last)
        return NULL;
    while (last > text && last[-1] != '\n')
        last--;
    return last;
}

/* The line that ends line (up to its newline) as a string (caller frees). */
static char *line_dup(const char *line)
{
    const char *e = strchr(line, '\n');
    return e ? xstrndup(line, (size_t)(e - line)) : xstrdup(line);
}

int bench_run_image(const char *base_url, const char *model, const char *prompt, const char *image_uri, int n_predict,
                    const bench_logsrc_t *log, bench_sample_t *out, char *err, size_t errlen)
{
    /* where this request's lines will start: the file's end, or (through a
     * gateway, which gives the last lines only) after the last encode line
     * seen before it */
    long mark = 0;
    char *before = NULL;
    if (image_uri && log && log->path)
        mark = file_size(log->path);
    else if (image_uri && log && log->base_url) {
        size_t n = 0;
        char *t = gateway_tail(log, &n);
        const char *l = t ? last_encode_line(t) : NULL;
        before = l ? line_dup(l) : NULL;
        free(t);
    }
    char *body = chat_body(model, prompt, image_uri, n_predict);
    int rc = chat_run(base_url, body, out, err, errlen);
    free(body);
    if (rc || !image_uri || !log) {
        free(before);
        return rc;
    }
    /* llama-server's log is written by a thread: wait for the lines */
    for (int tries = 0; tries < 100; tries++) {
        size_t n = 0;
        char *t = log->path ? file_from(log->path, mark, &n) : gateway_tail(log, &n);
        const char *from = t;
        if (t && !log->path) {
            from = last_encode_line(t);
            if (from && before) {
                char *now = line_dup(from);
                if (!strcmp(now, before))
                    from = NULL; /* still the previous request's */
                free(now);
            }
        }
        loadlog_images_t im;
        if (from) {
            loadlog_images(from, n - (size_t)(from - t), &im);
            if (im.complete) {
                out->image_tokens = im.tokens;
                out->encode_ms = im.encode_ms;
                out->image_decode_ms = im.decode_ms;
                free(t);
                break;
            }
        }
        free(t);
        usleep(20000);
    }
    free(before);
    return 0;
}

void bench_image_opts(char *const *args, size_t n, mi_image_opts_t *o)
{
    memset(o, 0, sizeof *o);
    long ub;
    if (args_get_long(args, n, ARG_UBATCH, &ub) && ub > 0)
        o->n_ubatch = (uint32_t)ub;
    for (size_t i = 0; i + 1 < n; i++) {
        int64_t v;
        if (!strcmp(args[i], "--image-min-tokens") && parse_i64(args[i + 1], 1, UINT32_MAX, &v))
            o->min_tokens = (uint32_t)v;
        else if (!strcmp(args[i], "--image-max-tokens") && parse_i64(args[i + 1], 1, UINT32_MAX, &v))
            o->max_tokens = (uint32_t)v;
    }
}

bool bench_has_draft(char *const *args, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(args[i], "-md") || !strcmp(args[i], "--model-draft") || !strcmp(args[i], "--spec-draft-model") ||
            !strncmp(args[i], "--model-draft=", 14) || !strncmp(args[i], "--spec-draft-model=", 19))
            return true;
    return false;
}

int bench_image_sizes(const char *list, uint32_t *sizes, int max, int *n, char *err, size_t errlen)
{
    *n = 0;
    const char *p = list;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char item[32];
        int64_t v;
        if (len == 0 || len >= sizeof item) {
            snprintf(err, errlen, "--image-size: '%s': expected sizes in pixels like 640,1024", list);
            return -EINVAL;
        }
        memcpy(item, p, len);
        item[len] = 0;
        if (!parse_i64(item, 16, BENCH_MAX_IMAGE_PX, &v)) {
            snprintf(err, errlen, "--image-size: '%s' is not a size of 16 to %d pixels", item, BENCH_MAX_IMAGE_PX);
            return -EINVAL;
        }
        if (*n == max) {
            snprintf(err, errlen, "--image-size: at most %d sizes", max);
            return -EINVAL;
        }
        sizes[(*n)++] = (uint32_t)v;
        if (!e)
            return 0;
        p = e + 1;
    }
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

static void stat_long(double *v, int n, long *med, long *mn, long *mx)
{
    double a, b, c;
    stat3(v, n, &a, &b, &c);
    *med = (long)a;
    *mn = (long)b;
    *mx = (long)c;
}

void bench_stats(const bench_sample_t *s, int n, bench_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    out->draft_n = out->draft_accepted = -1;
    out->acceptance = -1;
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
#define LFIELD(f)                                                 \
    do {                                                          \
        for (int i = 0; i < n; i++)                               \
            v[i] = (double)s[i].f;                                \
        stat_long(v, n, &out->med.f, &out->min.f, &out->max.f);   \
    } while (0)
    FIELD(prompt_tps);
    FIELD(gen_tps);
    FIELD(ttft_ms);
    FIELD(prefill_s);
    FIELD(wall_s);
    FIELD(encode_ms);
    FIELD(image_decode_ms);
    LFIELD(prompt_n);
    LFIELD(gen_n);
    LFIELD(image_tokens);
    LFIELD(draft_n);
    LFIELD(draft_accepted);
    LFIELD(cache_n);
#undef FIELD
#undef LFIELD
    for (int i = 0; i < n; i++)
        if (s[i].draft_n >= 0) {
            out->draft_n = (out->draft_n < 0 ? 0 : out->draft_n) + s[i].draft_n;
            out->draft_accepted = (out->draft_accepted < 0 ? 0 : out->draft_accepted) +
                                  (s[i].draft_accepted > 0 ? s[i].draft_accepted : 0);
        }
    if (out->draft_n > 0)
        out->acceptance = (double)out->draft_accepted / (double)out->draft_n;
    else if (out->draft_n == 0)
        out->acceptance = 0;
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
    *pid = 0;
    *base = NULL;
    loadlog_init(rep);
    /* a draft llama-server would drop for its vocabulary: not launched */
    int vr = roleplan_check_draft(model, args, n_args, err, errlen);
    if (vr)
        return vr;
    int port = proc_free_port();
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    char **argv = backend_argv(exe, model, ps, args, n_args);
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
