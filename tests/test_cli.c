/*
 * test_cli.c — the variet binary on good and bad input: malformed GGUF
 * files get one clear error line and exit code 2 (never a crash), unknown
 * commands/presets/options exit 2, inspect --json is valid JSON.
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
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

/* Run variet with args; stdout+stderr captured separately. Returns exit code
 * (or 128+signal). */
static int run(const char *args, char **out, char **err)
{
    char errpath[128];
    snprintf(errpath, sizeof errpath, "/tmp/variet-test-cli-%ld.err", (long)getpid());
    char *cmd = xasprintf("'%s' %s 2>'%s'", VARIET_BINARY, args, errpath);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    buf_t b;
    buf_init(&b, 0);
    buf_append(&b, "", 0);
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, p)) > 0)
        buf_append(&b, tmp, n);
    int st = pclose(p);
    free(cmd);
    *out = b.data;
    char e[128];
    size_t len;
    if (file_read_all(errpath, 1 << 20, err, &len, e, sizeof e))
        *err = xstrdup("");
    unlink(errpath);
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n)
        assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void t_malformed_files(void **s)
{
    (void)s;
    char dir[] = "/tmp/variet-test-cli-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *good = xasprintf("%s/good.gguf", dir);
    char *o, *e;
    char *args = xasprintf("synth tiny-qwen35moe -o '%s'", good);
    assert_int_equal(run(args, &o, &e), 0);
    free(args); free(o); free(e);
    char *data, err[128];
    size_t len;
    assert_int_equal(file_read_all(good, 64u << 20, &data, &len, err, sizeof err), 0);

    struct { const char *name; size_t cut; int flip_at; const char *expect; } cases[] = {
        {"empty", 0, -1, "empty"},
        {"magic", len, 0, "magic"},
        {"version", len, 4, "version"},
        {"header-cut", 20, -1, "truncated"},
        {"kv-cut", 400, -1, "at byte"},
        {"data-cut", len - 100, -1, "past the end"},
        {"kvcount", len, 16, "kv count"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *bad = xasprintf("%s/%s.gguf", dir, cases[i].name);
        char *copy = xmalloc(len);
        memcpy(copy, data, len);
        if (cases[i].flip_at >= 0)
            copy[cases[i].flip_at + (cases[i].flip_at == 16 ? 7 : 0)] ^= 0x7f;
        write_bytes(bad, copy, cases[i].cut);
        args = xasprintf("inspect '%s'", bad);
        int rc = run(args, &o, &e);
        if (rc != 2 || count_lines(e) != 1 || !strstr(e, cases[i].expect) || o[0])
            fail_msg("case %s: rc %d, stderr '%s', stdout '%.80s'", cases[i].name, rc, e, o);
        assert_non_null(strstr(e, bad)); /* names the file */
        free(args); free(o); free(e); free(copy);
        unlink(bad);
        free(bad);
    }
    args = xasprintf("inspect '%s/missing.gguf'", dir);
    assert_int_equal(run(args, &o, &e), 2);
    assert_non_null(strstr(e, "No such file"));
    free(args); free(o); free(e);
    args = xasprintf("inspect '%s'", dir);
    assert_int_equal(run(args, &o, &e), 2);
    assert_non_null(strstr(e, "not a regular file"));
    free(args); free(o); free(e);

    /* valid file: text and JSON */
    args = xasprintf("inspect '%s'", good);
    assert_int_equal(run(args, &o, &e), 0);
    assert_non_null(strstr(o, "qwen35moe"));
    assert_non_null(strstr(o, "1 full attention, 3 recurrent"));
    free(args); free(o); free(e);
    args = xasprintf("inspect '%s' --json", good);
    assert_int_equal(run(args, &o, &e), 0);
    json_t *j = json_loads(o, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "architecture")), "qwen35moe");
    assert_true(json_integer_value(json_object_get(json_object_get(json_object_get(j, "kv_bytes"), "q8_0"), "4096")) > 0);
    json_decref(j);
    free(args); free(o); free(e);

    free(data);
    unlink(good);
    free(good);
    rmdir(dir);
}

static void t_usage_errors(void **s)
{
    (void)s;
    char *o, *e;
    assert_int_equal(run("", &o, &e), 2);
    free(o); free(e);
    assert_int_equal(run("frobnicate", &o, &e), 2);
    assert_non_null(strstr(e, "unknown command 'frobnicate'"));
    free(o); free(e);
    assert_int_equal(run("synth no-such-preset", &o, &e), 2);
    assert_non_null(strstr(e, "unknown preset 'no-such-preset'"));
    assert_non_null(strstr(e, "tiny-llama"));
    free(o); free(e);
    assert_int_equal(run("synth tiny-llama --type q9_9", &o, &e), 2);
    assert_non_null(strstr(e, "q9_9"));
    free(o); free(e);
    assert_int_equal(run("inspect", &o, &e), 2);
    free(o); free(e);
    assert_int_equal(run("inspect x.gguf --ctx 0", &o, &e), 2);
    free(o); free(e);
    assert_int_equal(run("synth --list", &o, &e), 0);
    assert_non_null(strstr(o, "qwen35-35b-a3b"));
    free(o); free(e);
    assert_int_equal(run("--help", &o, &e), 0);
    assert_non_null(strstr(o, "inspect"));
    free(o); free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_malformed_files),
        cmocka_unit_test(t_usage_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
