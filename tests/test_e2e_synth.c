/*
 * test_e2e_synth.c — the real llama-server against `variet synth` models:
 * every tiny text preset loads and answers a chat completion, and `variet
 * inspect`'s KV-cache, recurrent-state and weight bytes equal what
 * llama-server reports (-lv 4) for several contexts and cache types (and,
 * for gemma4's sliding-window layers, with --swa-full). Each tiny projector
 * loads with --mmproj beside its text model and answers chats carrying
 * generated PNGs (src/png.c: RGB, our deflate), each image taking exactly
 * the tokens `variet inspect` predicts. A draft with the target's vocabulary drafts (and the target as
 * its own draft is accepted); a draft with another vocabulary is refused.
 * A preset whose architecture or projector type the llama-server in use
 * does not know is skipped, with the reason, when its log says so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e_util.h"
#include "gguf.h"
#include "loadlog.h"
#include "modelinfo.h"
#include "png.h"
#include "synth.h"
#include "util.h"

#define MIB (1024.0 * 1024.0)

static const char *const types[] = {"f16", "q8_0", "q4_0"};
static const long ctxs[] = {2048, 8192};

static json_t *inspect_json(const char *model)
{
    char *out = NULL;
    char *cmd = xasprintf("'%s' inspect '%s' --json --ctx 2048,8192", VARIET_BINARY, model);
    int rc = e2e_sh(cmd, &out);
    free(cmd);
    assert_int_equal(rc, 0);
    json_error_t je;
    json_t *j = json_loads(out, JSON_ALLOW_NUL, &je);
    free(out);
    assert_non_null(j);
    return j;
}

static json_int_t jint(json_t *o, const char *path1, const char *path2, const char *path3)
{
    json_t *v = json_object_get(o, path1);
    if (path2)
        v = json_object_get(v, path2);
    if (path3)
        v = json_object_get(v, path3);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* llama-server prints MiB with two decimals. */
static void assert_mib(double reported, double predicted_bytes, double tol_mib, const char *what)
{
    double want = predicted_bytes / MIB;
    if (fabs(reported - want) > tol_mib) {
        fail_msg("%s: llama-server reports %.2f MiB, variet predicts %.4f MiB", what, reported, want);
    }
}

static void run_preset(const char *preset)
{
    const char *srv = e2e_llama_server();
    assert_non_null(srv);
    char *model = xasprintf("%s/%s.gguf", e2e_tmpdir(), preset);
    char *out = NULL;
    char *cmd = xasprintf("'%s' synth %s -o '%s'", VARIET_BINARY, preset, model);
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(cmd);
    free(out);
    json_t *info = inspect_json(model);
    json_int_t weights = jint(info, "weight_bytes", NULL, NULL);
    json_int_t rs = jint(info, "recurrent_state_bytes_per_seq", NULL, NULL);
    json_int_t n_rec = jint(info, "hparams", "n_layer_recurrent", NULL);
    json_int_t n_swa = jint(info, "hparams", "n_layer_swa", NULL);
    if (strstr(preset, "qwen35"))
        assert_true(n_rec > 0 && rs > 0);

    bool chatted = false;
    for (size_t c = 0; c < sizeof ctxs / sizeof ctxs[0]; c++) {
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            int port = e2e_free_port();
            char ps[16], cs[16];
            snprintf(ps, sizeof ps, "%d", port);
            snprintf(cs, sizeof cs, "%ld", ctxs[c]);
            char *log = xasprintf("%s/%s-%s-%ld.log", e2e_tmpdir(), preset, types[t], ctxs[c]);
            char *argv[] = {(char *)srv, "-m", model, "--host", "127.0.0.1", "--port", ps,
                            "-c", cs, "-np", "1", "-ctk", (char *)types[t], "-ctv", (char *)types[t],
                            "-fa", "on", "-t", "2", "-lv", "4", "--no-repack", NULL};
            pid_t pid = e2e_spawn(argv, log);
            assert_true(pid > 0);
            int ready = e2e_wait_ready(pid, port, log, 60);
            if (ready == 0 && !chatted) {
                char *resp = NULL;
                int code = e2e_http(port, "POST", "/v1/chat/completions",
                                    "{\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],"
                                    "\"max_tokens\":8,\"temperature\":0}", &resp);
                json_t *j = json_loads(resp ? resp : "", JSON_ALLOW_NUL, NULL);
                json_t *choices = json_object_get(j, "choices");
                json_t *usage = json_object_get(j, "usage");
                if (code != 200 || !json_is_array(choices) || json_array_size(choices) != 1 ||
                    json_integer_value(json_object_get(usage, "completion_tokens")) < 1)
                    fail_msg("%s: chat completion failed (%d): %.300s", preset, code, resp ? resp : "");
                json_decref(j);
                free(resp);
                chatted = true;
            }
            e2e_stop(pid);
            size_t len = 0;
            char *text = e2e_slurp(log, &len);
            assert_non_null(text);
            if (ready != 0) {
                if (strstr(text, "unknown model architecture")) {
                    fprintf(stderr, "SKIP %s: this llama-server does not know its architecture (%s)\n",
                            preset, log);
                    free(text);
                    free(log);
                    json_decref(info);
                    free(model);
                    skip();
                }
                fail_msg("%s -ctk %s -c %ld: llama-server did not become ready; log %s", preset,
                         types[t], ctxs[c], log);
            }
            loadlog_t r;
            loadlog_init(&r);
            loadlog_parse(&r, text, len);
            free(text);
            assert_true(r.ready);
            assert_int_equal(r.n_ctx, ctxs[c]);

            char what[128];
            snprintf(what, sizeof what, "%s KV %s c=%ld", preset, types[t], ctxs[c]);
            char cs2[16];
            snprintf(cs2, sizeof cs2, "%ld", ctxs[c]);
            json_int_t kv = jint(info, "kv_bytes", types[t], cs2);
            /* each KV buffer line is rounded: sliding-window models print two */
            assert_mib(loadlog_sum(&r, "", "kv"), (double)kv, n_swa ? 0.0101 : 0.0051, what);
            if (n_rec) {
                snprintf(what, sizeof what, "%s RS", preset);
                assert_mib(loadlog_sum(&r, "", "rs"), (double)rs, 0.0051, what);
            } else {
                assert_true(loadlog_sum(&r, "", "rs") == 0);
            }
            /* model buffers: one line per mapped range, each rounded to 0.01.
             * --no-repack above: a CPU with AMX or a repacking backend lays
             * weights out in its own format and padding (tiny-gemma4 on
             * ggml 0.27's AMX: 3.64 MiB for 3.57 in the file), which is the
             * CPU backend's choice and not the file's weights */
            snprintf(what, sizeof what, "%s weights", preset);
            assert_mib(loadlog_sum(&r, "", "model"), (double)weights, 0.05, what);
            free(log);
        }
    }
    assert_true(chatted);
    json_decref(info);
    free(model);
}

/* ---- helpers for the gemma4, projector and draft tests ---- */

static char *synth_model(const char *preset)
{
    char *path = xasprintf("%s/%s.gguf", e2e_tmpdir(), preset);
    char *out = NULL, *cmd = xasprintf("'%s' synth %s -o '%s'", VARIET_BINARY, preset, path);
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(cmd);
    free(out);
    return path;
}

static mi_t *model_info(const char *path)
{
    gguf_t *g = NULL;
    mi_t *m = NULL;
    char err[256];
    if (gguf_open(path, &g, err, sizeof err) || mi_from_gguf(g, &m, err, sizeof err))
        fail_msg("%s: %s", path, err);
    gguf_close(&g);
    return m;
}

typedef struct {
    pid_t pid;
    int port;
    char *log;
} server_t;

/* Start llama-server with -m model, the test's common flags and `extra`
 * (NULL-terminated). 0 when ready; -1 with the log kept in s->log. */
static int server_start(server_t *s, const char *tag, const char *model, const char *const *extra)
{
    const char *srv = e2e_llama_server();
    assert_non_null(srv);
    char ps[16];
    s->port = e2e_free_port();
    snprintf(ps, sizeof ps, "%d", s->port);
    s->log = xasprintf("%s/%s.log", e2e_tmpdir(), tag);
    const char *base[] = {srv, "-m", model, "--host", "127.0.0.1", "--port", ps, "-np", "1",
                          "-t", "2", "-lv", "4"};
    size_t nb = sizeof base / sizeof base[0], ne = 0;
    while (extra && extra[ne])
        ne++;
    char **argv = xcalloc(nb + ne + 1, sizeof *argv);
    for (size_t i = 0; i < nb; i++)
        argv[i] = (char *)base[i];
    for (size_t i = 0; i < ne; i++)
        argv[nb + i] = (char *)extra[i];
    s->pid = e2e_spawn(argv, s->log);
    free(argv);
    assert_true(s->pid > 0);
    return e2e_wait_ready(s->pid, s->port, s->log, 60);
}

static char *server_stop(server_t *s)
{
    e2e_stop(s->pid);
    char *text = e2e_slurp(s->log, NULL);
    assert_non_null(text);
    return text;
}

/* POST a chat; returns the parsed answer (caller json_decref), failing on
 * anything but a 200 with at least one completion token. */
static json_t *chat(const server_t *s, json_t *body, const char *what)
{
    char *req = json_dumps(body, JSON_COMPACT), *resp = NULL;
    int code = e2e_http(s->port, "POST", "/v1/chat/completions", req, &resp);
    free(req);
    json_t *j = json_loads(resp ? resp : "", JSON_ALLOW_NUL, NULL);
    json_t *usage = json_object_get(j, "usage");
    if (code != 200 || json_integer_value(json_object_get(usage, "completion_tokens")) < 1)
        fail_msg("%s: chat failed (%d): %.300s", what, code, resp ? resp : "");
    free(resp);
    return j;
}

static json_t *text_chat_body(int max_tokens)
{
    return json_pack("{s:[{s:s,s:s}],s:i,s:f}", "messages", "role", "user", "content",
                     "Hello there, how are you?", "max_tokens", max_tokens, "temperature", 0.0);
}

/* Image tokens of the request whose log lines start at `from`: the sum of
 * "decoding image batch i/N, n_tokens_batch = T" through batch N/N (the log
 * is written by a thread: wait for it). -1 when it never completes.
 * *decode_ms: the "image decoded (batch N/N) in T ms" time, summed. */
static long image_tokens_from_log(const char *logpath, size_t from, double *decode_ms)
{
    for (int tries = 0; tries < 200; tries++) {
        size_t len = 0;
        char *t = e2e_slurp(logpath, &len);
        long sum = 0;
        bool done = false;
        const char *p = t && from < len ? t + from : "";
        for (const char *q = p; (q = strstr(q, "decoding image batch ")) != NULL; q++) {
            int i = 0, n = 0, k = 0;
            if (sscanf(q, "decoding image batch %d/%d, n_tokens_batch = %d", &i, &n, &k) == 3) {
                sum += k;
                done = i == n;
            }
        }
        double ms = 0;
        bool decoded = false;
        for (const char *q = p; (q = strstr(q, "image decoded (batch ")) != NULL; q++) {
            int i = 0, n = 0;
            double d = 0;
            if (sscanf(q, "image decoded (batch %d/%d) in %lf ms", &i, &n, &d) == 3) {
                ms += d;
                decoded = i == n;
            }
        }
        free(t);
        if (done && decoded) {
            if (decode_ms)
                *decode_ms = ms;
            return sum;
        }
        usleep(10000);
    }
    return -1;
}

static size_t file_len(const char *path)
{
    size_t len = 0;
    char *t = e2e_slurp(path, &len);
    free(t);
    return len;
}

/* ---- gemma4: its sliding-window cache with --swa-full too ---- */

static void t_tiny_gemma4(void **s)
{
    (void)s;
    run_preset("tiny-gemma4");
    char *model = synth_model("tiny-gemma4");
    mi_t *m = model_info(model);
    for (size_t c = 0; c < sizeof ctxs / sizeof ctxs[0]; c++) {
        char cs[16], tag[64];
        snprintf(cs, sizeof cs, "%ld", ctxs[c]);
        snprintf(tag, sizeof tag, "tiny-gemma4-swafull-%ld", ctxs[c]);
        const char *extra[] = {"-c", cs, "-fa", "on", "--swa-full", NULL};
        server_t srv;
        int ready = server_start(&srv, tag, model, extra);
        char *text = server_stop(&srv);
        if (ready != 0)
            fail_msg("%s: llama-server did not become ready; log %s", tag, srv.log);
        loadlog_t r;
        loadlog_init(&r);
        loadlog_parse(&r, text, strlen(text));
        mi_kv_opts_t o = {.swa_full = true};
        assert_mib(loadlog_sum(&r, "", "kv"),
                   (double)mi_kv_bytes_ex(m, (uint64_t)ctxs[c], GGUF_TT_F16, GGUF_TT_F16, &o), 0.0101, tag);
        /* and it differs from the windowed cache */
        assert_true(mi_kv_bytes_ex(m, (uint64_t)ctxs[c], GGUF_TT_F16, GGUF_TT_F16, &o) >
                    mi_kv_bytes(m, (uint64_t)ctxs[c], GGUF_TT_F16, GGUF_TT_F16));
        free(text);
        free(srv.log);
    }
    mi_free(&m);
    free(model);
}

/* ---- projectors ---- */

typedef struct {
    uint32_t w, h;
} size2_t;

/* Load `preset` beside its text model, send each image, compare its token
 * count with variet's (inspect --json for squares, the library for other
 * sizes) and the prompt_tokens llama-server reports with each other. */
static void run_projector(const char *preset, const size2_t *sizes, size_t n_sizes,
                          const char *const *extra_args, const mi_image_opts_t *io)
{
    const synth_preset_t *p = synth_find(preset);
    assert_non_null(p);
    char *proj = synth_model(preset), *text_model = synth_model(p->pairs_with);
    json_t *info = inspect_json(proj);
    json_t *itok = json_object_get(json_object_get(info, "vision"), "image_tokens");
    assert_true(json_is_object(itok));
    mi_t *m = model_info(proj);
    const char *extra[16] = {"-c", "8192", "--mmproj", proj};
    size_t ne = 4;
    for (size_t i = 0; extra_args && extra_args[i]; i++)
        extra[ne++] = extra_args[i];
    extra[ne] = NULL;
    server_t srv;
    char tag[96];
    snprintf(tag, sizeof tag, "%s-%ux%u%s", preset, sizes[0].w, sizes[0].h, extra_args ? "-opts" : "");
    if (server_start(&srv, tag, text_model, extra) != 0) {
        char *log = server_stop(&srv);
        bool unknown = strstr(log, "unknown projector type") != NULL;
        free(log);
        if (unknown) {
            fprintf(stderr, "SKIP %s: this llama-server does not know projector %s (%s)\n", preset,
                    synth_proj_name(p->proj), srv.log);
            skip();
        }
        fail_msg("%s: llama-server with --mmproj did not become ready; log %s", preset, srv.log);
    }
    long overhead = -1;
    for (size_t i = 0; i < n_sizes; i++) {
        uint32_t w = sizes[i].w, h = sizes[i].h;
        char what[96];
        snprintf(what, sizeof what, "%s %ux%u", preset, w, h);
        /* src/png.c's RGB picture; llama-server's decoder reads it */
        char *uri = png_pattern_uri(w, h, 1 + (uint32_t)i, PNG_DEFLATE, NULL);
        assert_non_null(uri);
        json_t *body = json_pack("{s:[{s:s,s:[{s:s,s:s},{s:s,s:{s:s}}]}],s:i,s:f}", "messages",
                                 "role", "user", "content", "type", "text", "text",
                                 "What is in this picture?", "type", "image_url", "image_url",
                                 "url", uri, "max_tokens", 4, "temperature", 0.0);
        free(uri);
        size_t from = file_len(srv.log);
        json_t *j = chat(&srv, body, what);
        json_decref(body);
        double dec_ms = -1;
        long got = image_tokens_from_log(srv.log, from, &dec_ms);
        long want = mi_image_tokens_wh(m, w, h, io);
        if (w == h && !io) {
            char k[16];
            snprintf(k, sizeof k, "%u", w);
            json_t *v = json_object_get(itok, k);
            if (v) /* what `variet inspect` prints */
                assert_int_equal(json_integer_value(v), want);
        }
        long prompt = (long)json_integer_value(json_object_get(json_object_get(j, "usage"), "prompt_tokens"));
        fprintf(stderr, "%s: llama-server %ld image tokens (decoded in %.0f ms), variet %ld; prompt_tokens %ld\n",
                what, got, dec_ms, want, prompt);
        if (got != want)
            fail_msg("%s: llama-server decoded %ld image tokens, variet predicts %ld (log %s)", what, got,
                     want, srv.log);
        /* usage agrees: the same text around every image */
        if (overhead < 0)
            overhead = prompt - got;
        assert_int_equal(prompt - got, overhead);
        json_decref(j);
    }
    char *log = server_stop(&srv);
    free(log);
    free(srv.log);
    mi_free(&m);
    json_decref(info);
    free(proj);
    free(text_model);
}

/* squares inspect prints, and a small non-square one (below gemma4v's
 * minimum: scaled up) */
static const size2_t common_sizes[] = {{640, 640}, {1024, 1024}, {300, 200}};

static void t_tiny_gemma4_mmproj(void **s)
{
    (void)s;
    run_projector("tiny-gemma4-mmproj", common_sizes, 3, NULL, NULL);
    /* 1200²: 625 tokens, over n_ubatch 512 (non-causal: capped, 22² = 484),
     * under it with -ub 1024 */
    static const size2_t big[] = {{1200, 1200}};
    run_projector("tiny-gemma4-mmproj", big, 1, NULL, NULL);
    const char *ub[] = {"-b", "1024", "-ub", "1024", NULL};
    mi_image_opts_t io = {.n_ubatch = 1024};
    run_projector("tiny-gemma4-mmproj", big, 1, ub, &io);
}

static void t_tiny_qwen35_mmproj(void **s)
{
    (void)s;
    run_projector("tiny-qwen35-mmproj", common_sizes, 3, NULL, NULL);
}

/* ---- drafts ---- */

/* Chat with -md draft; returns the response's draft_n / draft_n_accepted
 * (-1 when absent) and the log in *log_out (caller frees). */
static void run_draft(const char *target, const char *draft_path, const char *tag, json_int_t *draft_n,
                      json_int_t *accepted, char **log_out)
{
    char *model = synth_model(target);
    const char *extra[] = {"-c", "4096", "-md", draft_path, "--spec-type", "draft-simple", NULL};
    server_t srv;
    if (server_start(&srv, tag, model, extra) != 0)
        fail_msg("%s: llama-server with a draft did not become ready; log %s", tag, srv.log);
    json_t *body = text_chat_body(16);
    json_t *j = chat(&srv, body, tag);
    json_decref(body);
    json_t *t = json_object_get(j, "timings");
    json_t *dn = json_object_get(t, "draft_n"), *da = json_object_get(t, "draft_n_accepted");
    *draft_n = json_is_integer(dn) ? json_integer_value(dn) : -1;
    *accepted = json_is_integer(da) ? json_integer_value(da) : -1;
    json_decref(j);
    *log_out = server_stop(&srv);
    free(srv.log);
    free(model);
}

static void t_draft_shared_vocab(void **s)
{
    (void)s;
    char *draft = synth_model("tiny-draft"), *log = NULL;
    json_int_t n = 0, acc = 0;
    run_draft("tiny-qwen35moe", draft, "draft-tiny-qwen35moe", &n, &acc, &log);
    fprintf(stderr, "tiny-qwen35moe + tiny-draft: draft_n %lld, accepted %lld\n", (long long)n, (long long)acc);
    assert_non_null(strstr(log, "speculative decoding context initialized"));
    assert_null(strstr(log, "vocabs are not compatible"));
    /* it drafts (independent random weights agree by chance only) */
    assert_true(n > 0 && acc >= 0 && acc <= n);
    free(log);
    /* acceptance is counted: a model drafting for itself is always right */
    char *self = synth_model("tiny-llama");
    run_draft("tiny-llama", self, "draft-self", &n, &acc, &log);
    fprintf(stderr, "tiny-llama + itself: draft_n %lld, accepted %lld\n", (long long)n, (long long)acc);
    assert_true(n > 0);
    assert_int_equal(acc, n);
    free(log);
    free(self);
    free(draft);
}

static void t_draft_other_vocab(void **s)
{
    (void)s;
    char *draft = synth_model("tiny-draft-othervocab"), *log = NULL;
    json_int_t n = 0, acc = 0;
    run_draft("tiny-qwen35moe", draft, "draft-othervocab", &n, &acc, &log);
    /* llama-server b11669 refuses the draft, says why, and serves without it */
    assert_non_null(strstr(log, "the target and draft vocabs are not compatible"));
    assert_null(strstr(log, "speculative decoding context initialized"));
    assert_true(n <= 0);
    free(log);
    free(draft);
}

static void t_tiny_llama(void **s) { (void)s; run_preset("tiny-llama"); }
static void t_tiny_llama_q(void **s) { (void)s; run_preset("tiny-llama-q"); }
static void t_tiny_qwen3moe(void **s) { (void)s; run_preset("tiny-qwen3moe"); }
static void t_tiny_qwen35moe(void **s) { (void)s; run_preset("tiny-qwen35moe"); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_tiny_llama),
        cmocka_unit_test(t_tiny_llama_q),
        cmocka_unit_test(t_tiny_qwen3moe),
        cmocka_unit_test(t_tiny_qwen35moe),
        cmocka_unit_test(t_tiny_gemma4),
        cmocka_unit_test(t_tiny_gemma4_mmproj),
        cmocka_unit_test(t_tiny_qwen35_mmproj),
        cmocka_unit_test(t_draft_shared_vocab),
        cmocka_unit_test(t_draft_other_vocab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
