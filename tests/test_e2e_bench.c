/*
 * test_e2e_bench.c — `variet bench` against the real llama-server on a
 * synthetic model: scenarios sized as asked, rates and TTFT from a real
 * run, --write updates measured_tps atomically (backup kept, unknown fields
 * kept); a role whose context is too small for the long prompt fails with
 * llama-server's reason; median/min/max arithmetic (pure). The vision
 * scenario on both tiny projectors: image tokens equal `variet inspect`'s,
 * encode ms and generation measured, a role without a projector refused;
 * a draft model's acceptance rate (1 for a model drafting for itself).
 * Fault injection a real llama-server cannot be made to produce on demand:
 * a listener that never answers stands in for a hung one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "e2e_util.h"
#include "util.h"

/* A folder with a tiny model and a config whose role "fast" has context
 * ctx; `engine` adds _engine fields (",\"api_key\": ..." or ""). */
static char *setup_dir_with(const char *ctx, const char *engine, int port)
{
    const char *srv = e2e_llama_server();
    assert_non_null(srv);
    char *name = xasprintf("bench-%s%s", ctx, engine[0] ? "-key" : "");
    char *text = xasprintf("{\"_engine\": {\"llama_server\": \"%s\", \"port\": %d%s},\n"
                           " \"_comment\": \"kept\",\n"
                           " \"fast\": {\"display_name\": \"F\", \"model_path\": \"m.gguf\", \"measured_tps\": 1.5,"
                           " \"args\": [\"-c\", \"%s\", \"-np\", \"1\", \"-t\", \"2\"], \"x-note\": {\"a\": [1, 2]}}}\n",
                           srv, port, engine, ctx);
    char *dir = e2e_dir_with(name, "tiny-llama=m.gguf", text);
    free(text);
    free(name);
    return dir;
}

static char *setup_dir(const char *ctx)
{
    return setup_dir_with(ctx, "", e2e_free_port());
}

static void t_bench_json_and_write(void **s)
{
    (void)s;
    char *dir = setup_dir("4096");
    char *out = NULL;
    char *cmd = xasprintf("cd '%s' && '%s' bench fast --direct --runs 2 --json --write", dir, VARIET_BINARY);
    int rc = e2e_sh(cmd, &out);
    free(cmd);
    if (rc != 0)
        fail_msg("bench exited %d: %s", rc, out);
    json_t *j = json_loads(out, JSON_ALLOW_NUL, NULL);
    if (!j)
        fail_msg("not JSON: %s", out);
    free(out);
    assert_true(json_number_value(json_object_get(j, "cold_start_s")) > 0);
    json_t *sh = json_object_get(json_object_get(j, "scenarios"), "short");
    json_t *lo = json_object_get(json_object_get(j, "scenarios"), "long");
    assert_non_null(sh);
    assert_non_null(lo);
    json_t *m = json_object_get(sh, "median");
    long pn = (long)json_integer_value(json_object_get(m, "prompt_n"));
    /* ~170 content tokens plus the chat template's */
    assert_true(pn >= 170 && pn < 400);
    assert_int_equal(json_integer_value(json_object_get(m, "gen_n")), 300);
    assert_true(json_number_value(json_object_get(m, "gen_tps")) > 0);
    assert_true(json_number_value(json_object_get(m, "prompt_tps")) > 0);
    assert_true(json_number_value(json_object_get(m, "ttft_ms")) > 0);
    long lpn = (long)json_integer_value(json_object_get(json_object_get(lo, "median"), "prompt_n"));
    assert_true(lpn >= 3100 && lpn < 3600);
    double tps = json_number_value(json_object_get(m, "gen_tps"));
    double mn = json_number_value(json_object_get(json_object_get(sh, "min"), "gen_tps"));
    double mx = json_number_value(json_object_get(json_object_get(sh, "max"), "gen_tps"));
    assert_true(mn <= tps && tps <= mx);
    json_decref(j);

    /* --write: measured_tps is the short median (2 decimals), the rest kept */
    char *cfg = xasprintf("%s/engine_models.json", dir), *bak = xasprintf("%s/engine_models.json.bak", dir);
    json_t *c = json_load_file(cfg, 0, NULL);
    assert_non_null(c);
    double written = json_number_value(json_object_get(json_object_get(c, "fast"), "measured_tps"));
    assert_true(written > 0 && written != 1.5);
    assert_true(written > tps - 0.01 && written < tps + 0.01);
    assert_string_equal(json_string_value(json_object_get(c, "_comment")), "kept");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(json_object_get(json_object_get(c, "fast"), "x-note"), "a"), 1)), 2);
    json_decref(c);
    json_t *b = json_load_file(bak, 0, NULL);
    assert_non_null(b);
    assert_true(json_number_value(json_object_get(json_object_get(b, "fast"), "measured_tps")) == 1.5);
    json_decref(b);
    free(cfg);
    free(bak);
    free(dir);
}

/* A context too small for the long scenario: it is sized down, or skipped
 * when even the smallest long prompt would not fit, saying so; what was
 * measured is printed either way. */
static void t_bench_context_too_small(void **s)
{
    (void)s;
    char *dir = setup_dir("1024");
    char *out = NULL;
    char *cmd = xasprintf("cd '%s' && '%s' bench fast --direct --runs 1 2>&1", dir, VARIET_BINARY);
    int rc = e2e_sh(cmd, &out);
    free(cmd);
    if (rc != 0 || !strstr(out, "long: sized down to") || !strstr(out, "to fit the 1024-token context per request") ||
        !strstr(out, "\nshort ") || !strstr(out, "\nlong "))
        fail_msg("expected both scenarios, the long one sized down: rc %d\n%s", rc, out);
    /* the sized-down prompt and the answer fit: all 128 tokens generated */
    char *row = strstr(out, "\nlong ");
    long pn = 0, gn = 0;
    assert_int_equal(sscanf(row, "\nlong %ld %ld", &pn, &gn), 2);
    assert_true(pn >= 512 && pn + gn <= 1024);
    assert_int_equal(gn, 128);
    free(out);
    free(dir);

    dir = setup_dir("512");
    cmd = xasprintf("cd '%s' && '%s' bench fast --direct --runs 1 2>&1", dir, VARIET_BINARY);
    rc = e2e_sh(cmd, &out);
    free(cmd);
    if (rc != 0 || !strstr(out, "long: skipped: ~3100 prompt + 128 generated tokens do not fit the 512-token context") ||
        !strstr(out, "\nshort ") || strstr(out, "\nlong "))
        fail_msg("expected the short scenario measured, the long one skipped: rc %d\n%s", rc, out);
    free(out);
    /* only the long one asked for: nothing measured is a failure, with the reason */
    cmd = xasprintf("cd '%s' && '%s' bench fast --direct --runs 1 --scenario long --json 2>&1", dir, VARIET_BINARY);
    rc = e2e_sh(cmd, &out);
    free(cmd);
    if (rc != 1 || !strstr(out, "\"skipped\": true") || !strstr(out, "nothing measured"))
        fail_msg("expected exit 1, the skip in the JSON and 'nothing measured': rc %d\n%s", rc, out);
    free(out);
    /* unknown role */
    cmd = xasprintf("cd '%s' && '%s' bench nosuch 2>&1", dir, VARIET_BINARY);
    rc = e2e_sh(cmd, &out);
    free(cmd);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "no role 'nosuch'"));
    free(out);
    free(dir);
}

/* Through a gateway with an api_key: bench uses the config's key; with a
 * wrong $VARIET_API_KEY it says why it measures its own llama-server. The
 * gateway does not tell the context (no /props): the long scenario is
 * sized from llama-server's refusal. */
static void t_bench_keyed_gateway(void **s)
{
    (void)s;
    int port = e2e_free_port();
    char *dir = setup_dir_with("2048", ", \"api_key\": \"k-e2e-bench\", \"stop_grace\": 3", port);
    char *cfg = xasprintf("%s/engine_models.json", dir), *log = xasprintf("%s/serve.log", dir);
    char *argv[] = {(char *)VARIET_BINARY, "serve", "--config", cfg, NULL};
    pid_t pid = e2e_spawn(argv, log);
    assert_true(pid > 0);
    int code = -1;
    for (int i = 0; i < 150 && code != 200; i++) {
        char *resp = NULL;
        code = e2e_http(port, "GET", "/health", NULL, &resp);
        free(resp);
        if (code != 200)
            usleep(100000);
    }
    if (code != 200) {
        e2e_stop(pid);
        fail_msg("variet serve did not answer /health");
    }
    char *out = NULL;
    char *cmd = xasprintf("cd '%s' && env -u VARIET_API_KEY '%s' bench fast --runs 1 --json 2>&1", dir, VARIET_BINARY);
    int rc = e2e_sh(cmd, &out);
    free(cmd);
    bool ok = rc == 0 && strstr(out, "\"via\": \"gateway\"") && strstr(out, "sized down to") &&
              strstr(out, "2048-token context");
    char *o2 = NULL;
    cmd = xasprintf("cd '%s' && VARIET_API_KEY=wrong '%s' bench fast --runs 1 --scenario short 2>&1", dir,
                    VARIET_BINARY);
    int rc2 = e2e_sh(cmd, &o2);
    free(cmd);
    e2e_stop(pid);
    if (!ok)
        fail_msg("through the keyed gateway: rc %d\n%s", rc, out);
    if (rc2 != 0 || !strstr(o2, "refuses $VARIET_API_KEY (HTTP 401") ||
        !strstr(o2, "measuring the role's own llama-server instead") || !strstr(o2, "via llama-server started by bench"))
        fail_msg("with a wrong key: rc %d\n%s", rc2, o2);
    free(o2);
    free(out);
    free(log);
    free(cfg);
    free(dir);
}

/* A folder with the tiny models a vision and a draft role need, and a
 * config of roles (the JSON object's members, after _engine). */
static char *setup_models(const char *tag, const char *roles, int port)
{
    const char *srv = e2e_llama_server();
    assert_non_null(srv);
    char *dir = xasprintf("%s/bench-%s", e2e_tmpdir(), tag);
    char *cmd = xasprintf("mkdir -p '%s' && cd '%s' && for p in tiny-qwen35moe tiny-qwen35-mmproj tiny-gemma4 "
                          "tiny-gemma4-mmproj tiny-draft tiny-llama; do '%s' synth $p -o $p.gguf >/dev/null || exit 1; "
                          "done",
                          dir, dir, VARIET_BINARY);
    char *out = NULL;
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(out);
    free(cmd);
    char *cfg = xasprintf("%s/engine_models.json", dir);
    char *text = xasprintf("{\"_engine\": {\"llama_server\": \"%s\", \"port\": %d, \"stop_grace\": 3},\n%s}\n", srv, port,
                           roles);
    char err[256];
    assert_int_equal(file_write_atomic(cfg, text, strlen(text), err, sizeof err), 0);
    free(text);
    free(cfg);
    return dir;
}

static const char vision_roles[] =
    " \"vq\": {\"model_path\": \"tiny-qwen35moe.gguf\", \"args\": [\"-c\", \"4096\", \"-np\", \"1\", \"--mmproj\", "
    "\"tiny-qwen35-mmproj.gguf\"]},\n"
    " \"vg\": {\"model_path\": \"tiny-gemma4.gguf\", \"args\": [\"-c\", \"4096\", \"-np\", \"1\", \"--mmproj\", "
    "\"tiny-gemma4-mmproj.gguf\"]},\n"
    " \"plain\": {\"model_path\": \"tiny-qwen35moe.gguf\", \"args\": [\"-c\", \"4096\", \"-np\", \"1\"]}\n";

/* `variet inspect PROJ --json`'s image tokens for a px-pixel square. */
static long inspect_tokens(const char *dir, const char *proj, unsigned px)
{
    char *out = NULL, *cmd = xasprintf("cd '%s' && '%s' inspect %s --json", dir, VARIET_BINARY, proj);
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(cmd);
    json_t *j = json_loads(out, JSON_ALLOW_NUL, NULL);
    free(out);
    char k[16];
    snprintf(k, sizeof k, "%u", px);
    json_t *v = json_object_get(json_object_get(json_object_get(j, "vision"), "image_tokens"), k);
    assert_true(json_is_integer(v));
    long n = (long)json_integer_value(v);
    json_decref(j);
    return n;
}

/* The vision scenario on each tiny projector: llama-server's image tokens
 * (from its log) equal inspect's figure, the projector's encode time and
 * the generation after the picture are measured. */
static void t_bench_vision(void **s)
{
    (void)s;
    char *dir = setup_models("vision", vision_roles, e2e_free_port());
    static const struct {
        const char *role, *proj;
    } cases[] = {{"vq", "tiny-qwen35-mmproj.gguf"}, {"vg", "tiny-gemma4-mmproj.gguf"}};
    for (size_t c = 0; c < 2; c++) {
        char *out = NULL;
        /* two runs on one projector (min/max), one on the other */
        char *cmd = xasprintf("cd '%s' && '%s' bench %s --direct --scenario vision --image-size 640,1024 --runs %d "
                              "--json",
                              dir, VARIET_BINARY, cases[c].role, c ? 1 : 2);
        int rc = e2e_sh(cmd, &out);
        free(cmd);
        json_t *j = json_loads(out, JSON_ALLOW_NUL, NULL);
        if (rc != 0 || !j)
            fail_msg("bench %s --scenario vision: rc %d\n%s", cases[c].role, rc, out);
        free(out);
        static const unsigned px[2] = {640, 1024};
        for (int i = 0; i < 2; i++) {
            char key[32];
            snprintf(key, sizeof key, "vision-%u", px[i]);
            json_t *v = json_object_get(json_object_get(j, "scenarios"), key), *m = json_object_get(v, "median");
            if (!v)
                fail_msg("%s: no %s in the JSON", cases[c].role, key);
            long want = inspect_tokens(dir, cases[c].proj, px[i]);
            long got = (long)json_integer_value(json_object_get(v, "image_tokens"));
            fprintf(stderr, "%s %u px: llama-server %ld image tokens, inspect %ld, encode %.1f ms, gen %.1f t/s\n",
                    cases[c].role, px[i], got, want, json_number_value(json_object_get(m, "encode_ms")),
                    json_number_value(json_object_get(m, "gen_tps")));
            assert_int_equal(json_integer_value(json_object_get(v, "runs")), c ? 1 : 2);
            assert_int_equal(got, want);
            assert_int_equal(json_integer_value(json_object_get(v, "image_tokens_inspect")), want);
            assert_int_equal(json_integer_value(json_object_get(v, "image_px")), px[i]);
            assert_true(json_integer_value(json_object_get(v, "png_bytes")) > 1000);
            assert_string_equal(json_string_value(json_object_get(v, "projector_device")), "CPU");
            assert_true(json_number_value(json_object_get(m, "encode_ms")) > 0);
            assert_true(json_number_value(json_object_get(m, "image_decode_ms")) >= 0);
            assert_true(json_number_value(json_object_get(m, "ttft_ms")) > 0);
            assert_true(json_number_value(json_object_get(m, "gen_tps")) > 0);
            assert_int_equal(json_integer_value(json_object_get(m, "gen_n")), bench_vision.n_predict);
            /* the prompt holds the picture's tokens and the question */
            assert_true(json_integer_value(json_object_get(m, "prompt_n")) > want);
            assert_null(json_object_get(v, "note"));
        }
        json_decref(j);
    }
    /* the table says the same */
    char *out = NULL;
    char *cmd = xasprintf("cd '%s' && '%s' bench vq --direct --scenario vision --image-size 640 --runs 1 2>/dev/null", dir,
                          VARIET_BINARY);
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(cmd);
    char want[64];
    snprintf(want, sizeof want, "vision    640     %ld     (%ld) |", inspect_tokens(dir, "tiny-qwen35-mmproj.gguf", 640),
             inspect_tokens(dir, "tiny-qwen35-mmproj.gguf", 640));
    if (!strstr(out, want) || !strstr(out, "| CPU\n") || !strstr(out, "projector    on CPU"))
        fail_msg("expected '%s' in\n%s", want, out);
    free(out);
    /* a role without a projector is refused, before anything starts */
    cmd = xasprintf("cd '%s' && '%s' bench plain --direct --scenario vision 2>&1", dir, VARIET_BINARY);
    int rc = e2e_sh(cmd, &out);
    free(cmd);
    if (rc != 2 || !strstr(out, "role plain has no projector (no --mmproj in its args)") || strstr(out, "started"))
        fail_msg("expected exit 2 naming the missing projector: rc %d\n%s", rc, out);
    free(out);
    /* bad sizes, sizes without the scenario, bad scenario names */
    static const char *const bad[][2] = {{"--scenario vision --image-size 640,x", "'x' is not a size of 16 to 4096"},
                                         {"--scenario vision --image-size 9000", "'9000' is not a size"},
                                         {"--image-size 640", "--image-size is for the vision scenario"},
                                         {"--scenario short,visio", "got 'short,visio'"}};
    for (size_t i = 0; i < 4; i++) {
        cmd = xasprintf("cd '%s' && '%s' bench vq --direct %s 2>&1", dir, VARIET_BINARY, bad[i][0]);
        rc = e2e_sh(cmd, &out);
        free(cmd);
        if (rc != 2 || !strstr(out, bad[i][1]))
            fail_msg("%s: expected exit 2 and '%s': rc %d\n%s", bad[i][0], bad[i][1], rc, out);
        free(out);
    }
    free(dir);
}

/* The turn scenario against a real llama-server: on the hybrid model the
 * second turn keeps the first prompt from the context checkpoint taken
 * near its end and prefills only the new messages; with -ctxcp 0 it
 * prefills everything again; a model without recurrent layers keeps it
 * with no checkpoint at all. */
static void t_bench_turn(void **s)
{
    (void)s;
    static const char roles[] =
        " \"q\": {\"model_path\": \"tiny-qwen35moe.gguf\", \"args\": [\"-c\", \"4096\", \"-np\", \"1\"]},\n"
        " \"q0\": {\"model_path\": \"tiny-qwen35moe.gguf\", \"args\": [\"-c\", \"4096\", \"-np\", \"1\", \"-ctxcp\", "
        "\"0\"]},\n"
        " \"l0\": {\"model_path\": \"tiny-llama.gguf\", \"args\": [\"-c\", \"4096\", \"-np\", \"1\", \"-ctxcp\", \"0\"]}\n";
    char *dir = setup_models("turn", roles, e2e_free_port());
    static const struct {
        const char *role;
        bool keeps;
    } cases[] = {{"q", true}, {"q0", false}, {"l0", true}};
    for (int k = 0; k < 3; k++) {
        char *out = NULL;
        char *cmd = xasprintf("cd '%s' && '%s' bench %s --direct --scenario turn --runs 2 --json 2>/dev/null", dir,
                              VARIET_BINARY, cases[k].role);
        int rc = e2e_sh(cmd, &out);
        free(cmd);
        if (rc)
            fail_msg("bench %s --scenario turn: rc %d\n%s", cases[k].role, rc, out);
        json_t *j = json_loads(out, JSON_ALLOW_NUL, NULL);
        if (!j)
            fail_msg("not JSON: %s", out);
        json_t *tu = json_object_get(json_object_get(j, "scenarios"), "turn"), *m = json_object_get(tu, "median");
        long first = (long)json_integer_value(json_object_get(json_object_get(json_object_get(tu, "first"), "median"),
                                                              "prompt_n"));
        long cached = (long)json_integer_value(json_object_get(m, "cache_n"));
        long again = (long)json_integer_value(json_object_get(m, "prompt_n"));
        printf("%s: first turn %ld prompt tokens; second %ld from the cache, %ld prefilled\n", cases[k].role, first,
               cached, again);
        assert_int_equal(json_integer_value(json_object_get(tu, "runs")), 2);
        assert_true(first > 2500); /* the long prompt, each run's own (not cached from the run before) */
        if (cases[k].keeps) {
            assert_true(cached >= first - 8);
            assert_true(again > 0 && again < first / 8);
        } else {
            assert_true(cached < 8);
            assert_true(again > first);
        }
        json_decref(j);
        free(out);
    }
    /* the text table's line */
    char *out = NULL;
    char *cmd = xasprintf("cd '%s' && '%s' bench q --direct --scenario turn --runs 1 2>/dev/null", dir, VARIET_BINARY);
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(cmd);
    if (!strstr(out, "turn   first turn: ") || !strstr(out, "of its prompt tokens from the cache"))
        fail_msg("no turn line in:\n%s", out);
    free(out);
    free(dir);
}

/* A draft model: bench reports llama-server's drafted and accepted tokens
 * and their ratio; a model drafting for itself has every draft accepted,
 * a role without a draft reports none. */
static void t_bench_draft(void **s)
{
    (void)s;
    static const char roles[] =
        " \"d\": {\"model_path\": \"tiny-qwen35moe.gguf\", \"args\": [\"-c\", \"4096\", \"-np\", \"1\", \"-md\", "
        "\"tiny-draft.gguf\", \"--spec-type\", \"draft-simple\"]},\n"
        " \"self\": {\"model_path\": \"tiny-llama.gguf\", \"args\": [\"-c\", \"4096\", \"-np\", \"1\", \"-md\", "
        "\"tiny-llama.gguf\", \"--spec-type\", \"draft-simple\"]},\n"
        " \"loaded\": {\"model_path\": \"tiny-qwen35moe.gguf\", \"args\": [\"-c\", \"4096\", \"-np\", \"1\", \"-md\", "
        "\"tiny-draft.gguf\"]},\n"
        " \"none\": {\"model_path\": \"tiny-qwen35moe.gguf\", \"args\": [\"-c\", \"4096\", \"-np\", \"1\"]}\n";
    char *dir = setup_models("draft", roles, e2e_free_port());
    static const char *const names[] = {"d", "self", "loaded", "none"};
    for (int k = 0; k < 4; k++) {
        char *out = NULL;
        char *cmd = xasprintf("cd '%s' && '%s' bench %s --direct --scenario short --runs %d --json", dir, VARIET_BINARY,
                              names[k], k < 2 ? 2 : 1);
        int rc = e2e_sh(cmd, &out);
        free(cmd);
        json_t *j = json_loads(out, JSON_ALLOW_NUL, NULL);
        if (rc != 0 || !j)
            fail_msg("bench %s: rc %d\n%s", names[k], rc, out);
        free(out);
        json_t *sh = json_object_get(json_object_get(j, "scenarios"), "short");
        json_t *d = json_object_get(sh, "draft");
        if (k >= 2) {
            /* no drafting: no draft figures; a draft that never drafted is named */
            assert_null(d);
            assert_null(json_object_get(json_object_get(sh, "median"), "draft_n"));
            if (k == 2)
                assert_non_null(strstr(json_string_value(json_object_get(j, "draft_note")) ?: "",
                                       "reported no drafted tokens"));
            else
                assert_null(json_object_get(j, "draft_note"));
            json_decref(j);
            continue;
        }
        assert_non_null(d);
        json_int_t n = json_integer_value(json_object_get(d, "drafted")),
                   acc = json_integer_value(json_object_get(d, "accepted"));
        double rate = json_number_value(json_object_get(d, "acceptance"));
        fprintf(stderr, "%s: %lld drafted, %lld accepted, acceptance %.3f\n", names[k], (long long)n, (long long)acc,
                rate);
        assert_true(n > 0 && acc >= 0 && acc <= n);
        assert_true(rate >= 0 && rate <= 1);
        assert_true(fabs(rate - (double)acc / (double)n) < 1e-9);
        if (k == 1) /* the target as its own draft */
            assert_true(rate == 1.0);
        /* per run, as llama-server's timings say */
        assert_true(json_integer_value(json_object_get(json_object_get(sh, "median"), "draft_n")) > 0);
        json_decref(j);
    }
    char *out = NULL;
    char *cmd = xasprintf("cd '%s' && '%s' bench self --direct --scenario short --runs 1 2>/dev/null", dir, VARIET_BINARY);
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(cmd);
    if (!strstr(out, "  short: draft acceptance 1.000 ("))
        fail_msg("no acceptance line in\n%s", out);
    free(out);
    free(dir);
}

/* bench --direct with a role's draft_model_path: the load report's buffers
 * include the draft's; a draft of another vocabulary is refused (exit 2)
 * before a llama-server is started. */
static void t_bench_draft_model_path(void **s)
{
    (void)s;
    /* short limits: a stalled load or request fails the test with its
     * reason instead of running into ctest's timeout */
    char *port = xasprintf(", \"port\": %d, \"load_timeout\": 120, \"upstream_timeout\": 120", e2e_free_port());
    char *dir = e2e_draft_dir("bench-draft", 4096, port), *out = NULL, *cmd;
    free(port);
    cmd = xasprintf("cd '%s' && '%s' bench bad --direct --runs 1 --scenario short 2>&1", dir, VARIET_BINARY);
    int rc = e2e_sh(cmd, &out);
    free(cmd);
    printf("%s", out);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "draft o.gguf does not share the vocabulary of m.gguf (token 261: "));
    assert_null(strstr(out, "cold start")); /* nothing was started */
    free(out);
    cmd = xasprintf("cd '%s' && '%s' bench spec --direct --runs 1 --scenario short --json", dir, VARIET_BINARY);
    rc = e2e_sh(cmd, &out);
    free(cmd);
    if (rc != 0)
        fail_msg("bench spec exited %d: %s", rc, out);
    json_t *j = json_loads(out, JSON_ALLOW_NUL, NULL);
    assert_non_null(j);
    free(out);
    /* the load report: the model's and the draft's KV (1 MiB each at 4096) */
    double kv = 0;
    json_t *devs = json_object_get(json_object_get(j, "load"), "devices"), *d;
    size_t i;
    json_array_foreach(devs, i, d) kv += json_number_value(json_object_get(d, "kv_mib"));
    printf("bench with the draft: KV %.2f MiB in the load report\n", kv);
    assert_true(kv > 1.99 && kv < 2.01);
    json_decref(j);
    free(dir);
}

/* Scenario sizing and the context named in llama-server's refusal (pure). */
static void t_fit(void **s)
{
    (void)s;
    bench_scenario_t o;
    assert_int_equal(bench_fit(&bench_long, 0, &o), 0); /* unknown: as is */
    assert_int_equal(o.prompt_tokens, bench_long.prompt_tokens);
    assert_int_equal(bench_fit(&bench_long, 4096, &o), 0);
    assert_int_equal(bench_fit(&bench_long, 2048, &o), 1);
    assert_int_equal(o.prompt_tokens, 2048 - 128 - 64);
    assert_int_equal(o.n_predict, 128);
    assert_string_equal(o.name, "long");
    assert_int_equal(bench_fit(&bench_long, 512 + 128 + 64, &o), 1);
    assert_int_equal(bench_fit(&bench_long, 512 + 128 + 63, &o), -1);
    assert_int_equal(bench_fit(&bench_short, 512, &o), 1);
    assert_int_equal(bench_fit(&bench_short, 300, &o), -1);
    assert_int_equal(bench_min_prompt(&bench_short), 85);
    assert_int_equal(bench_context_from_error("HTTP 400: {\"error\":{\"code\":400,\"message\":\"request (3160 tokens) "
                                              "exceeds the available context size (1024 tokens), try increasing it\"}}"),
                     1024);
    assert_int_equal(bench_context_from_error("available context size (12 apples)"), 0);
    assert_int_equal(bench_context_from_error("other error"), 0);
    assert_int_equal(bench_context_from_error(NULL), 0);
}

static void t_stats(void **s)
{
    (void)s;
    bench_sample_t v[4] = {{.gen_tps = 10, .prompt_tps = 100, .prompt_n = 5},
                           {.gen_tps = 30, .prompt_tps = 300, .prompt_n = 5},
                           {.gen_tps = 20, .prompt_tps = 200, .prompt_n = 5},
                           {.gen_tps = 40, .prompt_tps = 50, .prompt_n = 5}};
    bench_stats_t st;
    bench_stats(v, 3, &st);
    assert_true(st.med.gen_tps == 20 && st.min.gen_tps == 10 && st.max.gen_tps == 30);
    bench_stats(v, 4, &st);
    assert_true(st.med.gen_tps == 25 && st.max.gen_tps == 40);
    assert_true(st.med.prompt_tps == 150 && st.min.prompt_tps == 50);
    assert_int_equal(st.med.prompt_n, 5);
    assert_int_equal(st.n, 4);
    /* drafts: sums over the runs that reported one */
    bench_sample_t d[3] = {{.draft_n = 10, .draft_accepted = 4}, {.draft_n = -1, .draft_accepted = -1},
                           {.draft_n = 30, .draft_accepted = 6}};
    bench_stats(d, 3, &st);
    assert_int_equal(st.draft_n, 40);
    assert_int_equal(st.draft_accepted, 10);
    assert_true(st.acceptance == 0.25);
    d[0].draft_n = d[2].draft_n = -1;
    bench_stats(d, 3, &st);
    assert_int_equal(st.draft_n, -1);
    assert_true(st.acceptance == -1);
}

/* --image-size lists, the args that change an image's tokens, drafts in args (pure). */
static void t_vision_args(void **s)
{
    (void)s;
    uint32_t px[8];
    int n = 0;
    char err[256];
    assert_int_equal(bench_image_sizes("640,1024", px, 8, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(px[0], 640);
    assert_int_equal(px[1], 1024);
    assert_int_equal(bench_image_sizes("16", px, 8, &n, err, sizeof err), 0);
    assert_int_equal(bench_image_sizes("15", px, 8, &n, err, sizeof err), -EINVAL);
    assert_int_equal(bench_image_sizes("640,", px, 8, &n, err, sizeof err), -EINVAL);
    assert_int_equal(bench_image_sizes("1,2,3", px, 2, &n, err, sizeof err), -EINVAL);
    assert_int_equal(bench_image_sizes("1e3", px, 8, &n, err, sizeof err), -EINVAL);
    char *a[] = {"-c", "4096", "-ub", "1024", "--image-min-tokens", "300", "--image-max-tokens", "x", NULL};
    mi_image_opts_t o;
    bench_image_opts(a, 8, &o);
    assert_int_equal(o.n_ubatch, 1024);
    assert_int_equal(o.min_tokens, 300);
    assert_int_equal(o.max_tokens, 0);
    assert_false(bench_has_draft(a, 8));
    char *b[] = {"-c", "4096", "--model-draft", "d.gguf", NULL}, *c[] = {"-md", "d.gguf", NULL};
    assert_true(bench_has_draft(b, 4));
    assert_true(bench_has_draft(c, 2));
}

/* A server that accepts and never answers (fault injection, no llama-server):
 * the request fails after the stall timeout, naming the setting, instead of
 * waiting for the 30-minute transfer limit; a port nobody listens on gets
 * curl's reason. */
static void t_stall(void **s)
{
    (void)s;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char *base = xasprintf("http://127.0.0.1:%d", ntohs(a.sin_port));
    bench_sample_t smp;
    char err[512] = "";
    bench_set_stall_timeout(1);
    double t0 = now_s();
    assert_int_not_equal(bench_run(base, NULL, "Hello", 8, &smp, err, sizeof err), 0);
    double took = now_s() - t0;
    bench_set_stall_timeout(600);
    fprintf(stderr, "stalled server: %s (after %.1f s)\n", err, took);
    assert_non_null(strstr(err, "no byte from llama-server for 1 s (_engine.upstream_timeout)"));
    assert_true(took >= 0.9 && took < 60); /* not the 30-minute transfer limit */
    close(fd);
    /* nobody listening any more: curl's own reason, not the stall's */
    err[0] = 0;
    assert_int_not_equal(bench_run(base, NULL, "Hello", 8, &smp, err, sizeof err), 0);
    fprintf(stderr, "closed port: %s\n", err);
    assert_non_null(strstr(err, "/v1/chat/completions: "));
    assert_null(strstr(err, "no byte"));
    free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_stats),
        cmocka_unit_test(t_fit),
        cmocka_unit_test(t_vision_args),
        cmocka_unit_test(t_stall),
        cmocka_unit_test(t_bench_json_and_write),
        cmocka_unit_test(t_bench_context_too_small),
        cmocka_unit_test(t_bench_keyed_gateway),
        cmocka_unit_test(t_bench_vision),
        cmocka_unit_test(t_bench_turn),
        cmocka_unit_test(t_bench_draft),
        cmocka_unit_test(t_bench_draft_model_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
