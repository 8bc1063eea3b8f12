/*
 * test_e2e_init.c — `variet init` end to end: a folder of models written by
 * `variet synth` (tiny-llama, tiny-qwen35moe + tiny-qwen35-mmproj,
 * tiny-gemma4 + tiny-gemma4-mmproj, tiny-draft, a truncated copy of
 * tiny-llama), `variet init models` writes engine_models.json (the corrupt
 * file named and skipped, the draft not a role, each projector on its
 * model), a second run refuses to overwrite it, --force replaces it (the
 * old one kept as .bak), --dry-run writes nothing, and the written file
 * serves: `variet serve` with it answers a chat on a role with the real CPU
 * llama-server, and the projector role's llama-server loads its --mmproj
 * (the load report in /status names it, its log says so).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e_util.h"
#include "registry.h"
#include "util.h"

static char dir[512]; /* <tmp>/init: models/ and the config */

/* Run `variet ARGS` in dir with VARIET_LLAMA_SERVER set; stdout+stderr in *out. */
static int variet(const char *args, char **out)
{
    char *cmd = xasprintf("cd '%s' && VARIET_LLAMA_SERVER='%s' '%s' %s 2>&1", dir, e2e_llama_server(),
                          VARIET_BINARY, args);
    int rc = e2e_sh(cmd, out);
    free(cmd);
    return rc;
}

static void must_contain(const char *text, const char *want)
{
    if (!text || !strstr(text, want))
        fail_msg("want '%s' in:\n%s", want, text ? text : "(nothing)");
}

static char *slurp(const char *rel)
{
    char *p = xasprintf("%s/%s", dir, rel);
    char *t = e2e_slurp(p, NULL);
    free(p);
    return t;
}

static const char *arg_after(const reg_role_t *r, const char *name)
{
    for (size_t k = 0; k + 1 < r->n_args; k++)
        if (!strcmp(r->args[k], name))
            return r->args[k + 1];
    return NULL;
}

static void t_init_and_serve(void **s)
{
    (void)s;
    const char *srv = e2e_llama_server();
    assert_non_null(srv);
    snprintf(dir, sizeof dir, "%s/init", e2e_tmpdir());
    char *out = NULL;
    char *cmd = xasprintf("rm -rf '%s' && mkdir -p '%s/models'", dir, dir);
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(cmd);
    free(out);
    static const char *const presets[] = {"tiny-llama", "tiny-qwen35moe", "tiny-qwen35-mmproj", "tiny-gemma4",
                                          "tiny-gemma4-mmproj", "tiny-draft"};
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        char *a = xasprintf("synth %s -o models/%s.gguf", presets[i], presets[i]);
        if (variet(a, &out))
            fail_msg("variet %s: %s", a, out);
        free(out);
        free(a);
    }
    cmd = xasprintf("cd '%s' && head -c 700000 models/tiny-llama.gguf > models/corrupt.gguf", dir);
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(cmd);
    free(out);

    /* --dry-run: the plans and the file printed, nothing written */
    assert_int_equal(variet("init models --cpu-only --dry-run", &out), 0);
    must_contain(out, "\"tiny-gemma4\": {");
    must_contain(out, "(dry run: engine_models.json not written)");
    free(out);
    char *cfg = xasprintf("%s/engine_models.json", dir), *bak = xasprintf("%s.bak", cfg);
    assert_int_equal(access(cfg, F_OK), -1);

    /* the first run writes it */
    int rc = variet("init models --cpu-only", &out);
    fprintf(stderr, "%s", out);
    assert_int_equal(rc, 0);
    must_contain(out, "models: 7 GGUF files: 3 models, 2 projectors, 1 draft, 1 skipped");
    must_contain(out, "variet init: models/corrupt.gguf: skipped: tensor ");
    must_contain(out, "runs past the end of the file");
    must_contain(out, "models/tiny-draft.gguf: draft for models/tiny-gemma4.gguf");
    must_contain(out, "role tiny-gemma4: models/tiny-gemma4.gguf + projector models/tiny-gemma4-mmproj.gguf (by name)");
    must_contain(out, "role tiny-qwen35moe: models/tiny-qwen35moe.gguf + projector models/tiny-qwen35-mmproj.gguf");
    must_contain(out, "role tiny-llama: models/tiny-llama.gguf\n");
    must_contain(out, "  device   layers    weights");
    must_contain(out, "verdict: fits");
    must_contain(out, "wrote engine_models.json: 3 roles (tiny-gemma4, tiny-llama, tiny-qwen35moe)");
    free(out);
    registry_t *r = NULL;
    char err[512];
    if (registry_load(cfg, &r, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(r->n_roles, 3);
    assert_string_equal(r->engine.llama_server, srv);
    const reg_role_t *ll = registry_find(r, "tiny-llama"), *g4 = registry_find(r, "tiny-gemma4"),
                     *q = registry_find(r, "tiny-qwen35moe");
    assert_non_null(ll);
    assert_non_null(g4);
    assert_non_null(q);
    assert_null(registry_find(r, "tiny-draft"));
    assert_null(registry_find(r, "corrupt"));
    assert_string_equal(ll->model_path, "models/tiny-llama.gguf"); /* under the config's folder: relative */
    assert_string_equal(arg_after(ll, "-c"), "32768");              /* the trained context fits */
    assert_null(arg_after(ll, "--mmproj"));
    char *g4proj = xasprintf("%s/models/tiny-gemma4-mmproj.gguf", dir);
    char *qproj = xasprintf("%s/models/tiny-qwen35-mmproj.gguf", dir);
    assert_string_equal(arg_after(g4, "--mmproj"), g4proj);
    assert_string_equal(arg_after(q, "--mmproj"), qproj);
    registry_free(&r);

    /* a second run refuses, naming the file, and leaves it alone */
    char *first = e2e_slurp(cfg, NULL);
    assert_non_null(first);
    assert_int_equal(variet("init models --cpu-only", &out), 1);
    must_contain(out, "variet init: engine_models.json exists; not overwritten (--force replaces it");
    free(out);
    char *again = e2e_slurp(cfg, NULL);
    assert_string_equal(first, again);
    free(again);
    assert_int_equal(access(bak, F_OK), -1);

    /* --force replaces it (here with a smaller context), the old one kept */
    assert_int_equal(variet("init models --cpu-only --force --ctx 4096", &out), 0);
    free(out);
    char *kept = e2e_slurp(bak, NULL);
    assert_non_null(kept);
    assert_string_equal(first, kept);
    free(kept);
    free(first);
    assert_int_equal(registry_load(cfg, &r, err, sizeof err), 0);
    assert_string_equal(arg_after(registry_find(r, "tiny-llama"), "-c"), "4096");
    registry_free(&r);

    /* it serves: a chat on a plain role, then on the projector role */
    int port = e2e_free_port();
    char ps[16], *log = xasprintf("%s/variet.log", dir);
    snprintf(ps, sizeof ps, "%d", port);
    char *argv[] = {(char *)VARIET_BINARY, "serve", "--config", cfg, "--port", ps, NULL};
    pid_t pid = e2e_spawn(argv, log);
    assert_true(pid > 0);
    char *resp = NULL;
    int code = -1;
    for (double t0 = now_s(); now_s() - t0 < 15 && code != 200; usleep(50000)) {
        free(resp);
        resp = NULL;
        code = e2e_http(port, "GET", "/health", NULL, &resp);
    }
    free(resp);
    if (code != 200) {
        e2e_stop(pid);
        fail_msg("variet serve did not come up; log %s", log);
    }
    static const char *const roles[] = {"tiny-llama", "tiny-gemma4"};
    for (size_t i = 0; i < 2; i++) {
        char *body = xasprintf("{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                               "\"max_tokens\":8}",
                               roles[i]);
        code = e2e_http(port, "POST", "/v1/chat/completions", body, &resp);
        free(body);
        json_t *j = json_loads(resp ? resp : "", JSON_ALLOW_NUL, NULL); /* random weights: any bytes */
        const char *model = json_string_value(json_object_get(j, "model"));
        json_t *msg = json_object_get(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"),
                                      "content");
        if (code != 200 || !json_is_string(msg) || !model || strcmp(model, roles[i])) {
            e2e_stop(pid);
            fail_msg("chat on %s: HTTP %d %s (log %s)", roles[i], code, resp ? resp : "", log);
        }
        fprintf(stderr, "chat on %s: HTTP 200, %zu bytes of (random-weight) text\n", roles[i], json_string_length(msg));
        json_decref(j);
        free(resp);
    }
    code = e2e_http(port, "GET", "/status", NULL, &resp);
    json_t *st = json_loads(resp ? resp : "", JSON_ALLOW_NUL, NULL);
    json_t *ll_load = json_object_get(json_object_get(json_object_get(st, "roles"), "tiny-gemma4"), "last_load");
    const char *mm = json_string_value(json_object_get(ll_load, "mmproj"));
    json_t *plain = json_object_get(json_object_get(json_object_get(st, "roles"), "tiny-llama"), "last_load");
    bool ok = code == 200 && mm && !strcmp(mm, g4proj) && json_is_null(json_object_get(plain, "mmproj"));
    json_decref(st);
    int stopped = e2e_stop(pid);
    if (!ok)
        fail_msg("/status: tiny-gemma4's load report should name %s, tiny-llama's none: %s", g4proj, resp);
    free(resp);
    assert_true(WIFEXITED(stopped) && WEXITSTATUS(stopped) == 0);
    char *blog = slurp("logs/tiny-gemma4.log");
    must_contain(blog, "loaded multimodal model");
    free(blog);
    free(log);
    free(g4proj);
    free(qproj);
    free(cfg);
    free(bak);
}

/* Bad input: a missing folder, a file as the folder, a folder with nothing usable. */
static void t_bad_input(void **s)
{
    (void)s;
    snprintf(dir, sizeof dir, "%s/init-bad", e2e_tmpdir());
    char *cmd = xasprintf("rm -rf '%s' && mkdir -p '%s/empty' && echo x > '%s/file'", dir, dir, dir), *out = NULL;
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(cmd);
    free(out);
    assert_int_equal(variet("init nowhere", &out), 2);
    must_contain(out, "variet init: nowhere: No such file or directory");
    free(out);
    assert_int_equal(variet("init file", &out), 2);
    must_contain(out, "variet init: file: not a folder");
    free(out);
    assert_int_equal(variet("init empty --cpu-only", &out), 1);
    must_contain(out, "variet init: empty: no GGUF model found; nothing written");
    free(out);
    char *none = xasprintf("%s/engine_models.json", dir);
    assert_int_equal(access(none, F_OK), -1);
    free(none);
    assert_int_equal(variet("init", &out), 2);
    must_contain(out, "missing MODELS_DIR");
    free(out);
    assert_int_equal(variet("init empty --gpus 12x", &out), 2);
    must_contain(out, "--gpus wants free MiB per GPU");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_init_and_serve),
        cmocka_unit_test(t_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
