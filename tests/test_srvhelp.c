/*
 * test_srvhelp.c — the llama-server help parser on the recorded b11669
 * --help (every option line of the fixture, read by a second, simpler
 * method, is known with every spelling; values, choices, env, defaults,
 * removed/deprecated markers) and on crafted variants (CRLF, long left
 * parts, log noise, garbage, caps, old builds that still have --mlock);
 * --version lines; the migration table and the checker (--mlock refused
 * with its replacement, the seed's args migrated, idempotence); cache
 * entries (round trip, every truncation refused); and srvhelp_load on fake
 * binaries: cached round trip without re-running, refresh and binary
 * change, XDG/HOME cache folders, a binary that hangs (timeout), prints
 * garbage, is not a llama-server, fails, dies, floods, or is missing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "srvhelp.h"
#include "util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define V(...) ((char *[]){__VA_ARGS__})
#define NV(...) (sizeof((char *[]){__VA_ARGS__}) / sizeof(char *))

#define FIXTURE VARIET_FIXTURES "/llama-server/llama-server-help-b11669.txt"

static char *slurp(const char *path, size_t *len)
{
    char *t = NULL, err[256];
    size_t n = 0;
    if (file_read_all(path, 8u << 20, &t, &n, err, sizeof err))
        fail_msg("%s", err);
    if (len)
        *len = n;
    return t;
}

static srvhelp_t *parse_str(const char *text)
{
    srvhelp_t *h = NULL;
    char err[256];
    int rc = srvhelp_parse(text, strlen(text), &h, err, sizeof err);
    if (rc)
        fail_msg("parse: %s", err);
    return h;
}

static srvhelp_t *fixture_help(void)
{
    size_t len;
    char *t = slurp(FIXTURE, &len);
    srvhelp_t *h = NULL;
    char err[256];
    if (srvhelp_parse(t, len, &h, err, sizeof err))
        fail_msg("fixture: %s", err);
    free(t);
    h->build = 11669;
    return h;
}

static const srvhelp_opt_t *find(const srvhelp_t *h, const char *s)
{
    return srvhelp_find(h, s, strlen(s));
}

static bool has_spelling(const srvhelp_opt_t *o, const char *s)
{
    for (size_t k = 0; k < o->n_spell; k++)
        if (!strcmp(o->spell[k], s))
            return true;
    return false;
}

/* Every option line of the fixture, read independently: column-0 lines
 * starting with '-' (not "-----"); their leading tokens (split at spaces and
 * commas) that start with '-' are the spellings. */
static void t_fixture_every_flag(void **s)
{
    (void)s;
    srvhelp_t *h = fixture_help();
    char *text = slurp(FIXTURE, NULL);
    size_t lines = 0, spellings = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] != '-' || !strncmp(line, "-----", 5))
            continue;
        lines++;
        const srvhelp_opt_t *first = NULL;
        char *save = NULL;
        for (char *tok = strtok_r(line, " ,", &save); tok && tok[0] == '-';
             tok = strtok_r(NULL, " ,", &save)) {
            const srvhelp_opt_t *o = find(h, tok);
            if (!o || !has_spelling(o, tok))
                fail_msg("fixture spelling %s not known", tok);
            if (first && o != first)
                fail_msg("%s belongs to another option", tok);
            first = o;
            spellings++;
        }
    }
    free(text);
    assert_int_equal(lines, 258);
    assert_int_equal(h->n_opts, lines);
    size_t total = 0;
    for (size_t k = 0; k < h->n_opts; k++)
        total += h->opts[k].n_spell;
    assert_int_equal(total, spellings);
    assert_int_equal(h->n_sections, 4);
    assert_string_equal(h->sections[0], "common params");
    assert_string_equal(h->sections[3], "example-specific params");

    /* what Variet's static option table knows is all there, but --mlock / --no-mmap */
    const char *known[] = {"-c", "--ctx-size", "-b", "--batch-size", "-ub", "--ubatch-size", "-np",
                           "--parallel", "-ngl", "--gpu-layers", "--n-gpu-layers", "-ts",
                           "--tensor-split", "-ctk", "--cache-type-k", "-ctv", "--cache-type-v", "-fa",
                           "--flash-attn", "-ncmoe", "--n-cpu-moe", "-cmoe", "--cpu-moe", "-t",
                           "--threads", "-tb", "--threads-batch", "-mm", "--mmproj",
                           "--no-mmproj-offload", "-fit", "--fit", "-sm", "--split-mode", "-mg",
                           "--main-gpu", "-a", "--alias", "-lm", "--load-mode", "-m", "--model",
                           "--host", "--port", "--models-dir", "--models-preset", "--api-key"};
    for (size_t i = 0; i < N(known); i++)
        if (!find(h, known[i]))
            fail_msg("%s missing", known[i]);
    assert_null(find(h, "--mlock"));
    assert_null(find(h, "--no-mmap"));
    assert_null(find(h, "--mmap"));
    srvhelp_free(&h);
    assert_null(h);
    srvhelp_free(&h); /* NULL-safe */
}

static void t_fixture_details(void **s)
{
    (void)s;
    srvhelp_t *h = fixture_help();
    const srvhelp_opt_t *o = find(h, "--ctx-size");
    assert_non_null(o);
    assert_int_equal(o->n_spell, 2);
    assert_string_equal(o->spell[0], "-c");
    assert_string_equal(o->hint, "N");
    assert_int_equal(o->n_values, 1);
    assert_string_equal(o->env, "LLAMA_ARG_CTX_SIZE");
    assert_string_equal(o->def, "0, 0 = loaded from model");
    assert_string_equal(o->section, "common params");
    assert_int_equal(o->n_choices, 0);

    o = find(h, "-fa");
    assert_string_equal(o->hint, "[on|off|auto]");
    assert_int_equal(o->n_choices, 3);
    assert_false(o->strict); /* the build also takes 1, true, enabled */
    assert_string_equal(o->choices[2], "auto");
    assert_string_equal(o->def, "auto");

    o = find(h, "--cache-type-v");
    assert_true(o->strict);
    assert_int_equal(o->n_choices, 9);
    assert_string_equal(o->choices[6], "iq4_nl");
    assert_string_equal(o->def, "f16");

    o = find(h, "-sm");
    assert_true(o->strict);
    assert_int_equal(o->n_choices, 4);
    assert_string_equal(o->choices[3], "tensor");
    assert_string_equal(o->env, "LLAMA_ARG_SPLIT_MODE");

    o = find(h, "--load-mode");
    assert_int_equal(o->n_values, 1);
    assert_false(o->strict);
    assert_int_equal(o->n_choices, 6);
    assert_string_equal(o->choices[4], "mmap+mlock");
    assert_string_equal(o->def, "auto");

    o = find(h, "--no-kv-offload");
    assert_int_equal(o->n_spell, 4);
    assert_int_equal(o->n_values, 0);
    assert_null(o->hint);
    assert_true(o == find(h, "-kvo"));

    assert_int_equal(find(h, "--control-vector-layer-range")->n_values, 2);
    assert_int_equal(find(h, "-ot")->n_values, 1);
    assert_int_equal(find(h, "--spec-type")->n_values, 1);
    assert_string_equal(find(h, "-fitt")->def, "1024");
    assert_string_equal(find(h, "--poll")->def, "50");
    assert_string_equal(find(h, "-rea")->def, "auto");
    assert_string_equal(find(h, "-hft")->env, "HF_TOKEN");

    o = find(h, "--draft-max");
    assert_true(o->removed);
    assert_non_null(strstr(o->help, "use --spec-draft-n-max or"));
    assert_true(find(h, "--spec-ngram-min-hits")->removed);
    assert_false(find(h, "--spec-draft-n-max")->removed);
    /* the spelling this build takes: a removed one is passed over, an unknown one too */
    const char *const dmax[] = {"--draft-max", "--no-such-option", "--spec-draft-n-max", "--draft", NULL};
    assert_string_equal(srvhelp_first(h, dmax), "--spec-draft-n-max");
    const char *const lopt[] = {"--load-mode", "--no-mmap", NULL};
    assert_string_equal(srvhelp_first(h, lopt), "--load-mode");
    const char *const none[] = {"--draft-max", "--no-such-option", NULL};
    assert_null(srvhelp_first(h, none));
    assert_true(find(h, "-dt")->deprecated);
    assert_false(find(h, "-c")->deprecated);
    assert_string_equal(find(h, "--top-k")->section, "sampling params");

    /* lookups: '_' reads as '-' in "--" tokens, as in the build; no '=' */
    assert_true(find(h, "--ctx_size") == find(h, "-c"));
    assert_null(find(h, "-no_kvu"));
    assert_null(find(h, "--ctx-size=1"));
    assert_null(srvhelp_find(h, "-c", 0));
    assert_null(find(h, "c"));
    assert_true(srvhelp_find(h, "--ctx-sizeXYZ", 10) == find(h, "-c"));
    srvhelp_free(&h);
}

static void t_crafted(void **s)
{
    (void)s;
    srvhelp_t *h;
    char err[256];

    /* CRLF: the same options */
    size_t len;
    char *t = slurp(FIXTURE, &len);
    buf_t b;
    buf_init(&b, 0);
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '\n')
            buf_append(&b, "\r", 1);
        buf_append(&b, t + i, 1);
    }
    free(t);
    assert_int_equal(srvhelp_parse(b.data, b.len, &h, err, sizeof err), 0);
    assert_int_equal(h->n_opts, 258);
    assert_string_equal(find(h, "-c")->env, "LLAMA_ARG_CTX_SIZE");
    assert_string_equal(find(h, "-ctk")->choices[8], "q5_1");
    srvhelp_free(&h);
    buf_free(&b);

    /* backend log lines of a GPU build, before and between options; a long
     * left part with its description on the next line; no final newline */
    h = parse_str("ggml_cuda_init: found 1 CUDA devices:\n"
                  "  Device 0: NVIDIA H200, compute capability 9.0, VMM: yes\n"
                  "load_backend: loaded CUDA backend from /x/libggml-cuda.so\n"
                  "----- common params -----\n"
                  "\n"
                  "-x,    --example-option-with-a-long-name VALUE\n"
                  "                                        first line (default: 7)\n"
                  "                                        (env: LLAMA_ARG_X)\n"
                  "some log line in column 0\n"
                  "                                        (env: NOT_MINE)\n"
                  "--two A B                               two values {p,q}\n"
                  "--flag                                  a flag (default: false)\n"
                  "-k, --kind {red,green}                  strict\n"
                  "                                        allowed values: red, green, blue\n"
                  "--opt <0|1>                             listed\n"
                  "--bul MODE                              bullets:\n"
                  "                                        - one: first\n"
                  "                                        - two-2: second\n"
                  "                                        -notabullet\n"
                  "-$bad, --also-bad N                     skipped\n"
                  "--                                      skipped\n"
                  "-c N                                    dup\n"
                  "--ctx -c N                              later duplicate\n"
                  "--last N                                no newline (DEPRECATED)");
    assert_int_equal(h->n_opts, 9);
    const srvhelp_opt_t *o = find(h, "--example-option-with-a-long-name");
    assert_non_null(o);
    assert_string_equal(o->hint, "VALUE");
    assert_string_equal(o->help, "first line (default: 7)\n(env: LLAMA_ARG_X)");
    assert_string_equal(o->def, "7");
    assert_string_equal(o->env, "LLAMA_ARG_X");
    assert_string_equal(o->section, "common params");
    o = find(h, "--two");
    assert_int_equal(o->n_values, 2);
    assert_int_equal(o->n_choices, 0); /* choices in the description are not the hint's */
    o = find(h, "--flag");
    assert_int_equal(o->n_values, 0);
    assert_string_equal(o->def, "false");
    o = find(h, "-k");
    assert_true(o->strict);
    assert_int_equal(o->n_choices, 3); /* "allowed values:" wins over the hint */
    assert_string_equal(o->choices[2], "blue");
    o = find(h, "--opt");
    assert_false(o->strict);
    assert_int_equal(o->n_choices, 2);
    o = find(h, "--bul");
    assert_false(o->strict);
    assert_int_equal(o->n_choices, 2);
    assert_string_equal(o->choices[1], "two-2");
    assert_null(find(h, "--also-bad"));
    assert_true(find(h, "-c") == find(h, "--last") - 2); /* the first -c wins */
    assert_true(find(h, "--ctx") != find(h, "-c"));
    assert_true(find(h, "--last")->deprecated);
    assert_string_equal(find(h, "--last")->help, "no newline (DEPRECATED)");
    srvhelp_free(&h);

    /* garbage, empty, only headers: an error, never a crash */
    const char *bad[] = {"", "hello\nworld\n", "----- common params -----\n\n",
                         "  -a, --all   indented like ls --help\n", "--\n- x\n-=\n",
                         "\x01\x02\xff\xfe-\n"};
    for (size_t i = 0; i < N(bad); i++) {
        h = (srvhelp_t *)1;
        err[0] = 0;
        assert_int_equal(srvhelp_parse(bad[i], strlen(bad[i]), &h, err, sizeof err), -EINVAL);
        assert_null(h);
        assert_non_null(strstr(err, "no option lines"));
    }
    /* a NUL inside: the line is noise, not a truncated string */
    const char nul[] = "-a N   x\n-b\0c N   y\n";
    assert_int_equal(srvhelp_parse(nul, sizeof nul - 1, &h, err, sizeof err), 0);
    assert_int_equal(h->n_opts, 1);
    srvhelp_free(&h);

    /* caps */
    buf_init(&b, 0);
    for (int i = 0; i < 4097; i++)
        buf_printf(&b, "-a%d\n", i);
    assert_int_equal(srvhelp_parse(b.data, b.len, &h, err, sizeof err), -E2BIG);
    assert_null(h);
    buf_free(&b);
    char *big = xcalloc(SRVHELP_MAX_TEXT + 2, 1);
    memset(big, ' ', SRVHELP_MAX_TEXT + 1);
    assert_int_equal(srvhelp_parse(big, SRVHELP_MAX_TEXT + 1, &h, err, sizeof err), -E2BIG);
    free(big);
}

static void t_version(void **s)
{
    (void)s;
    static const struct {
        const char *text;
        bool ok;
        const char *ver; /* NULL: not checked */
        long build;
    } cases[] = {
        {"version: 0.7.0 (build 11669, commit Debian)\nbuilt with GNU 16.2.0 for Linux x86_64\n", true,
         "0.7.0 (build 11669, commit Debian)", 11669},
        {"ggml_cuda_init: found 1 CUDA devices:\r\nversion: 4589 (2e2f8f09)\r\nbuilt with cc\r\n", true,
         "4589 (2e2f8f09)", 4589},
        /* behind the logger's timestamp, as b11669 prints it at times */
        {"0.00.001.224 version: 0.7.0 (build 11669, commit Debian)\nW built with GNU 16.2.0\n", true,
         "0.7.0 (build 11669, commit Debian)", 11669},
        {"0.00.001.224 I version: 12 (x)\n", true, NULL, 12},
        {"version: 1.2.3\n", true, NULL, -1},
        {"version: 99999999999999 (x)\n", true, NULL, -1},
        {"no version here\nversion:\n", false, "", -1},
    };
    char ver[128];
    long build;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(srvhelp_parse_version(cases[i].text, strlen(cases[i].text), ver, sizeof ver, &build),
                         cases[i].ok);
        if (cases[i].ver)
            assert_string_equal(ver, cases[i].ver);
        assert_int_equal(build, cases[i].build);
    }
    char tiny[4];
    assert_true(srvhelp_parse_version(cases[0].text, strlen(cases[0].text), tiny, sizeof tiny, &build));
    assert_string_equal(tiny, "0.7");
}

#define CHECK(h, err, ...) srvhelp_check(h, V(__VA_ARGS__), NV(__VA_ARGS__), err, sizeof err)

static void t_check(void **s)
{
    (void)s;
    srvhelp_t *h = fixture_help();
    char err[512];

    /* the seed's Phase-01 args: --mlock refused, the replacement named */
    char *seed[] = {"-ngl", "999", "-c", "262144", "-np", "1", "-fa", "on", "--cache-type-k",
                    "q4_0", "--cache-type-v", "q4_0", "-ub", "256", "-b", "512", "-t", "6", "-tb",
                    "6", "--mlock", "--poll", "50", "--prio", "3", "--fit", "off"};
    assert_int_equal(srvhelp_check(h, seed, N(seed), err, sizeof err), 20);
    assert_non_null(strstr(err, "--mlock is not an option of this llama-server (build 11669)"));
    assert_non_null(strstr(err, "use --load-mode mmap+mlock"));
    assert_null(strchr(err, '\n'));

    assert_int_equal(CHECK(h, err, "--no-mmap"), 0);
    assert_non_null(strstr(err, "use --load-mode none"));
    assert_int_equal(CHECK(h, err, "-c", "1", "--mlock", "--no-mmap"), 2);
    assert_non_null(strstr(err, "use --load-mode mlock"));
    assert_int_equal(CHECK(h, err, "--no-mmap", "--mlock"), 0);
    assert_non_null(strstr(err, "use --load-mode mlock"));
    assert_int_equal(CHECK(h, err, "--mlock", "-lm", "none"), 0);
    assert_non_null(strstr(err, "remove it"));
    assert_int_equal(CHECK(h, err, "--direct-io"), 0);
    assert_non_null(strstr(err, "use --load-mode dio"));
    assert_int_equal(CHECK(h, err, "--no_mmap"), 0); /* '_' as the build reads it */

    /* -fa without its value */
    assert_int_equal(CHECK(h, err, "-c", "1", "-fa"), 2);
    assert_non_null(strstr(err, "-fa needs a value ([on|off|auto]); use -fa on"));
    assert_int_equal(CHECK(h, err, "--flash-attn", "-c", "1"), 0);
    assert_non_null(strstr(err, "would read -c as it; use --flash-attn on"));
    assert_int_equal(CHECK(h, err, "-fa", "--mlock"), 0); /* an old spelling is an option too */

    /* --opt=value */
    assert_int_equal(CHECK(h, err, "--ctx-size=2048"), 0);
    assert_non_null(strstr(err, "reads no --opt=value; use --ctx-size 2048"));
    assert_int_equal(CHECK(h, err, "--cpu-moe=1"), 0);
    assert_null(strstr(err, "use "));

    /* removed options: the build's advice, or the table's replacement */
    assert_int_equal(CHECK(h, err, "--draft-max", "8"), 0);
    assert_non_null(strstr(err, "--draft-max was removed from this llama-server (build 11669); "
                                "use --spec-draft-n-max 8"));
    assert_int_equal(CHECK(h, err, "--spec-ngram-size-n", "3"), 0);
    assert_non_null(strstr(err, ": the argument has been removed. use the respective"));
    assert_null(strchr(err, '\n'));

    /* unknown options and stray words, no replacement known */
    assert_int_equal(CHECK(h, err, "-c", "1", "--ctx-size-draft", "10"), 2);
    assert_string_equal(err, "--ctx-size-draft is not an option of this llama-server (build 11669)");
    assert_int_equal(CHECK(h, err, "-c", "1", "2"), 2);
    assert_string_equal(err, "'2' is not an option of this llama-server (build 11669)");
    assert_int_equal(CHECK(h, err, ""), 0);
    assert_int_equal(CHECK(h, err, "-"), 0);

    /* arity: values are taken whatever they look like, except options */
    assert_int_equal(CHECK(h, err, "--control-vector-layer-range", "1", "2", "-c", "10"), -1);
    assert_int_equal(CHECK(h, err, "--control-vector-layer-range", "1"), 0);
    assert_non_null(strstr(err, "needs two values (START END)"));
    assert_int_equal(CHECK(h, err, "-c", "-1", "--threads", "-1", "-r", "x"), -1);
    assert_int_equal(CHECK(h, err, "-c", "10", "-c"), 2);
    assert_non_null(strstr(err, "-c needs a value (N)"));
    assert_int_equal(CHECK(h, err, "-kvo", "-nkvo", "--no-kv-offload", "-cmoe", "--ctx_size", "1"), -1);

    /* strict choices */
    assert_int_equal(CHECK(h, err, "-sm", "rows"), 1);
    assert_string_equal(err, "-sm: 'rows' is not one of none, layer, row, tensor (this llama-server's choices)");
    assert_int_equal(CHECK(h, err, "-ctk", "q8"), 1);
    assert_int_equal(CHECK(h, err, "--rope-scaling", "yarn", "-lm", "mmap+mlock", "-lzm", "on"), -1);

    /* then Variet's own rules */
    assert_int_equal(CHECK(h, err, "-c", "1", "--port", "8080"), 2);
    assert_string_equal(err, "--port is set by variet (remove it)");
    assert_int_equal(CHECK(h, err, "-c", "lots"), 1);
    assert_string_equal(err, "-c: 'lots' is not an integer");
    assert_int_equal(srvhelp_check(h, NULL, 0, err, sizeof err), -1);

    /* a tiny buffer is still terminated */
    char small[12];
    assert_int_equal(srvhelp_check(h, seed, N(seed), small, sizeof small), 20);
    assert_int_equal(strlen(small), sizeof small - 1);
    srvhelp_free(&h);
}

static void expect_vec(char **got, size_t n, char *const *want, size_t wn)
{
    assert_int_equal(n, wn);
    for (size_t i = 0; i < wn; i++)
        assert_string_equal(got[i], want[i]);
    assert_null(got[n]);
}

/* migrate, expect the vector, check it passes and that a second migration changes nothing */
static size_t migrate_ok(const srvhelp_t *h, char *const *argv, size_t n, char *const *want,
                         size_t wn, srvhelp_change_t **ch)
{
    char **v, **v2, err[256];
    size_t nv, nv2;
    srvhelp_change_t *ch2;
    size_t nc = srvhelp_migrate(h, argv, n, &v, &nv, ch);
    expect_vec(v, nv, want, wn);
    if (h && srvhelp_check(h, v, nv, err, sizeof err) != -1)
        fail_msg("migrated args refused: %s", err);
    assert_int_equal(srvhelp_migrate(h, v, nv, &v2, &nv2, &ch2), 0);
    assert_null(ch2);
    expect_vec(v2, nv2, v, nv);
    args_free(&v);
    args_free(&v2);
    return nc;
}

static void t_migrate(void **s)
{
    (void)s;
    srvhelp_t *h = fixture_help();
    srvhelp_change_t *ch;
    size_t nc;

    char *seed[] = {"-ngl", "999", "-c", "262144", "-fa", "on", "-ub", "256", "--mlock", "--poll", "50"};
    nc = migrate_ok(h, seed, N(seed),
                    V("-ngl", "999", "-c", "262144", "-fa", "on", "-ub", "256", "--load-mode",
                      "mmap+mlock", "--poll", "50"),
                    12, &ch);
    assert_int_equal(nc, 1);
    assert_int_equal(ch[0].at, 8);
    assert_int_equal(ch[0].n_from, 1);
    assert_string_equal(ch[0].from, "--mlock");
    assert_string_equal(ch[0].to, "--load-mode mmap+mlock");
    assert_non_null(strstr(ch[0].why, "became --load-mode"));
    srvhelp_changes_free(&ch, nc);
    assert_null(ch);

    /* the old flags together make one mode, at the first one's place */
    nc = migrate_ok(h, V("--no-mmap", "-c", "1", "--mlock"), 4, V("--load-mode", "mlock", "-c", "1"), 4, &ch);
    assert_int_equal(nc, 2);
    assert_string_equal(ch[1].from, "--mlock");
    assert_string_equal(ch[1].to, "");
    srvhelp_changes_free(&ch, nc);
    nc = migrate_ok(h, V("--mmap"), 1, V("--load-mode", "mmap"), 2, &ch);
    srvhelp_changes_free(&ch, nc);
    nc = migrate_ok(h, V("-dio", "--mlock"), 2, V("--load-mode", "dio"), 2, &ch);
    srvhelp_changes_free(&ch, nc);
    nc = migrate_ok(h, V("-dio", "-ndio", "--no-mmap"), 3, V("--load-mode", "none"), 2, &ch);
    srvhelp_changes_free(&ch, nc);
    /* an explicit --load-mode wins: the old flags go */
    nc = migrate_ok(h, V("--mlock", "-lm", "dio", "--no-mmap"), 4, V("-lm", "dio"), 2, &ch);
    assert_int_equal(nc, 2);
    srvhelp_changes_free(&ch, nc);

    /* -fa, --opt=value, renames */
    nc = migrate_ok(h, V("-fa", "-c", "1", "--flash-attn"), 4, V("-fa", "on", "-c", "1", "--flash-attn", "on"), 6, &ch);
    assert_int_equal(nc, 2);
    srvhelp_changes_free(&ch, nc);
    nc = migrate_ok(h, V("--ctx-size=2048", "-fa=off", "--draft-max=8", "--draft-min", "2"), 5,
                    V("--ctx-size", "2048", "-fa", "off", "--spec-draft-n-max", "8",
                      "--spec-draft-n-min", "2"),
                    8, &ch);
    assert_int_equal(nc, 4);
    assert_string_equal(ch[3].from, "--draft-min 2");
    assert_string_equal(ch[3].to, "--spec-draft-n-min 2");
    srvhelp_changes_free(&ch, nc);
    nc = migrate_ok(h, V("--slots-endpoint-disable", "--no_mmap"), 2, V("--no-slots", "--load-mode", "none"), 3, &ch);
    srvhelp_changes_free(&ch, nc);

    /* values are never rewritten; nothing to do: a copy, no changes */
    char **v;
    size_t nv;
    nc = srvhelp_migrate(h, V("-r", "--mlock", "-a", "-fa", "--control-vector-layer-range", "--mlock", "-fa"), 7, &v, &nv, &ch);
    assert_int_equal(nc, 0);
    assert_null(ch);
    expect_vec(v, nv, V("-r", "--mlock", "-a", "-fa", "--control-vector-layer-range", "--mlock", "-fa"), 7);
    args_free(&v);
    nc = srvhelp_migrate(h, NULL, 0, &v, &nv, &ch);
    assert_int_equal(nc + nv, 0);
    assert_null(v[0]);
    args_free(&v);
    /* what has no replacement stays, for the check to name: old flags given a value too */
    nc = srvhelp_migrate(h, V("--ctx-size-draft", "1", "--cpu-moe=1", "--mlock=1", "--no-mmap=x"), 5, &v, &nv, &ch);
    assert_int_equal(nc, 0);
    assert_int_equal(nv, 5);
    args_free(&v);
    char err[256];
    assert_int_equal(CHECK(h, err, "--mlock=1"), 0);
    assert_string_equal(err, "--mlock=1 is not an option of this llama-server (build 11669)");

    /* without a build: every rule, options told by their dash */
    nc = srvhelp_migrate(NULL, V("-c", "-1", "--mlock", "-fa", "-t", "4", "--draft-max", "3", "-fa", "-1"), 10, &v, &nv, &ch);
    expect_vec(v, nv, V("-c", "-1", "--load-mode", "mmap+mlock", "-fa", "on", "-t", "4", "--spec-draft-n-max", "3", "-fa", "-1"), 12);
    assert_int_equal(nc, 3);
    srvhelp_changes_free(&ch, nc);
    args_free(&v);
    srvhelp_free(&h);
}

/* Builds that still have the old flags, or have neither old nor new. */
static void t_migrate_other_builds(void **s)
{
    (void)s;
    char err[256];
    char **v;
    size_t nv, nc;
    srvhelp_change_t *ch;
    srvhelp_t *old = parse_str("-m, --model FNAME   model\n"
                               "--mlock                                 force system to keep model in RAM\n"
                               "--no-mmap                               do not memory-map model\n"
                               "-fa, --flash-attn                       enable Flash Attention\n"
                               "-c, --ctx-size N                        context\n");
    assert_int_equal(CHECK(old, err, "--mlock", "--no-mmap", "-c", "1"), -1);
    nc = srvhelp_migrate(old, V("--mlock", "-fa"), 2, &v, &nv, &ch);
    assert_int_equal(nc, 0);
    expect_vec(v, nv, V("--mlock", "-fa"), 2);
    args_free(&v);
    assert_int_equal(CHECK(old, err, "-lm", "none"), 0);
    assert_string_equal(err, "-lm is not an option of this llama-server (unknown build)");
    srvhelp_free(&old);

    /* -lm without mmap+mlock among its modes: no rewrite that would fail */
    srvhelp_t *odd = parse_str("-lm, --load-mode MODE                   modes\n"
                               "                                        - mmap: map\n"
                               "                                        - none: read\n");
    nc = srvhelp_migrate(odd, V("--mlock"), 1, &v, &nv, &ch);
    assert_int_equal(nc, 0);
    args_free(&v);
    assert_int_equal(CHECK(odd, err, "--mlock"), 0);
    assert_string_equal(err, "--mlock is not an option of this llama-server (unknown build)");
    nc = srvhelp_migrate(odd, V("--no-mmap"), 1, &v, &nv, &ch);
    assert_int_equal(nc, 1);
    expect_vec(v, nv, V("--load-mode", "none"), 2);
    srvhelp_changes_free(&ch, nc);
    args_free(&v);
    srvhelp_free(&odd);
}

static void t_cache_format(void **s)
{
    (void)s;
    const char *help = "-c, --ctx-size N   ctx\nversion 1\nhelp 3\n";
    srvhelp_key_t k = {.exe = "/opt/llama server/bin/llama-server", .size = 4759320, .ino = 77,
                       .mtime_s = 1733084400, .mtime_ns = 5};
    size_t len, exe_len, hl;
    char *e = srvhelp_cache_format(&k, "0.7.0 (build 11669, commit Debian)", help, strlen(help), &len);
    assert_non_null(e);
    assert_non_null(strstr(e, "\nmtime 1733084400.000000005\n"));
    srvhelp_key_t got;
    char ver[128];
    const char *hp;
    assert_int_equal(srvhelp_cache_parse(e, len, &got, &exe_len, ver, sizeof ver, &hp, &hl), 0);
    assert_int_equal(exe_len, strlen(k.exe));
    assert_memory_equal(got.exe, k.exe, exe_len);
    assert_true(got.size == k.size && got.ino == k.ino && got.mtime_s == k.mtime_s && got.mtime_ns == 5);
    assert_string_equal(ver, "0.7.0 (build 11669, commit Debian)");
    assert_int_equal(hl, strlen(help));
    assert_memory_equal(hp, help, hl);
    /* every truncation, and one byte more, is refused */
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(srvhelp_cache_parse(e, cut, &got, &exe_len, ver, sizeof ver, &hp, &hl), -EINVAL);
    char *more = xasprintf("%sx", e);
    assert_int_equal(srvhelp_cache_parse(more, len + 1, &got, &exe_len, ver, sizeof ver, &hp, &hl), -EINVAL);
    free(more);
    /* fields out of place or malformed */
    const char *bad[] = {
        "variet-srvhelp 2\nexe /x\nsize 1\nmtime 1.000000000\ninode 1\nversion \nhelp 0\n",
        "variet-srvhelp 1\nexe \nsize 1\nmtime 1.000000000\ninode 1\nversion \nhelp 0\n",
        "variet-srvhelp 1\nexe /x\nsize -1\nmtime 1.000000000\ninode 1\nversion \nhelp 0\n",
        "variet-srvhelp 1\nexe /x\nsize 1\nmtime 1.00000000\ninode 1\nversion \nhelp 0\n",
        "variet-srvhelp 1\nexe /x\nsize 1\nmtime 1.0000000x0\ninode 1\nversion \nhelp 0\n",
        "variet-srvhelp 1\nexe /x\nsize 1\nmtime .000000000\ninode 1\nversion \nhelp 0\n",
        "variet-srvhelp 1\nexe /x\nsize 1\ninode 1\nmtime 1.000000000\nversion \nhelp 0\n",
        "variet-srvhelp 1\nexe /x\nsize 1\nmtime 1.000000000\ninode 1\nhelp 0\n",
        "variet-srvhelp 1\nexe /x\nsize 1\nmtime 1.000000000\ninode 1\nversion \nhelp 99999999999999999999\n",
    };
    for (size_t i = 0; i < N(bad); i++)
        assert_int_equal(srvhelp_cache_parse(bad[i], strlen(bad[i]), &got, &exe_len, ver, sizeof ver, &hp, &hl), -EINVAL);
    const char *good = "variet-srvhelp 1\nexe /x\nsize 1\nmtime 1.000000000\ninode 1\nversion \nhelp 0\n";
    assert_int_equal(srvhelp_cache_parse(good, strlen(good), &got, &exe_len, ver, sizeof ver, &hp, &hl), 0);
    assert_string_equal(ver, "");
    assert_int_equal(hl, 0);
    free(e);
    /* a newline in the path or version: no entry */
    k.exe = "/a\nb";
    assert_null(srvhelp_cache_format(&k, NULL, "", 0, NULL));
    k.exe = "/a";
    assert_null(srvhelp_cache_format(&k, "1\n2", "", 0, NULL));
}

/* ---- srvhelp_load on fake binaries ---- */

static char tmp[256];

static int setup_tmp(void **s)
{
    (void)s;
    snprintf(tmp, sizeof tmp, "/tmp/variet-srvhelp-XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

static int teardown_tmp(void **s)
{
    (void)s;
    char *cmd = xasprintf("rm -rf '%s'", tmp);
    int rc = system(cmd);
    free(cmd);
    return rc == 0 ? 0 : -1;
}

/* Write an executable sh script named `name` in tmp; returns its path (caller frees). */
static char *script(const char *name, const char *body)
{
    char *path = xasprintf("%s/%s", tmp, name);
    char *text = xasprintf("#!/bin/sh\n%s\n", body);
    char err[256];
    /* written in place (not renamed) would keep the inode: a new file each time */
    unlink(path);
    if (file_write_atomic(path, text, strlen(text), err, sizeof err))
        fail_msg("%s", err);
    chmod(path, 0755);
    free(text);
    return path;
}

/* A fake llama-server: prints the fixture for --help, a b11669 version line
 * on stderr for --version, and logs each run to tmp/runs. */
static char *fake_server(const char *name)
{
    char *body = xasprintf("echo \"$1\" >> '%s/runs'\n"
                           "case \"$1\" in\n"
                           "--version) echo 'version: 0.7.0 (build 11669, commit Debian)' >&2;"
                           " echo 'built with GNU' >&2 ;;\n"
                           "--help) cat '%s' ;;\n"
                           "*) exit 1 ;;\n"
                           "esac",
                           tmp, FIXTURE);
    char *p = script(name, body);
    free(body);
    return p;
}

static int runs(void)
{
    char *path = xasprintf("%s/runs", tmp), *t = NULL, err[128];
    size_t len = 0;
    int n = 0;
    if (file_read_all(path, 1 << 20, &t, &len, err, sizeof err) == 0)
        for (size_t i = 0; i < len; i++)
            n += t[i] == '\n';
    free(t);
    free(path);
    return n;
}

static void t_load_cached(void **s)
{
    (void)s;
    char *exe = fake_server("llama-server"), *dir = xasprintf("%s/cache", tmp), err[512];
    srvhelp_load_opts_t o = {.cache_dir = dir, .timeout_s = 10};
    srvhelp_t *h = NULL;
    int base = runs();

    assert_int_equal(srvhelp_load(exe, &o, &h, err, sizeof err), 0);
    assert_false(h->from_cache);
    assert_int_equal(runs(), base + 2);
    assert_int_equal(h->n_opts, 258);
    assert_string_equal(h->version, "0.7.0 (build 11669, commit Debian)");
    assert_int_equal(h->build, 11669);
    assert_string_equal(h->exe, exe);
    assert_non_null(h->cache_path);
    assert_true(!strncmp(h->cache_path, dir, strlen(dir)));
    assert_non_null(strstr(h->cache_path, "/llama-server-"));
    assert_int_equal(access(h->cache_path, R_OK), 0);
    char *path = xstrdup(h->cache_path);
    srvhelp_free(&h);

    /* the second load reads the cache: nothing runs, the same result */
    assert_int_equal(srvhelp_load(exe, &o, &h, err, sizeof err), 0);
    assert_true(h->from_cache);
    assert_int_equal(runs(), base + 2);
    assert_int_equal(h->n_opts, 258);
    assert_int_equal(h->build, 11669);
    assert_string_equal(h->version, "0.7.0 (build 11669, commit Debian)");
    assert_string_equal(h->cache_path, path);
    assert_string_equal(find(h, "-ctk")->choices[4], "q4_0");
    srvhelp_free(&h);

    /* refresh runs again and rewrites the same entry */
    o.refresh = true;
    assert_int_equal(srvhelp_load(exe, &o, &h, err, sizeof err), 0);
    assert_false(h->from_cache);
    assert_int_equal(runs(), base + 4);
    srvhelp_free(&h);
    o.refresh = false;

    /* a corrupt entry is not an error: the binary runs, the entry is rewritten */
    char e2[128];
    assert_int_equal(file_write_atomic(path, "junk", 4, e2, sizeof e2), 0);
    assert_int_equal(srvhelp_load(exe, &o, &h, err, sizeof err), 0);
    assert_false(h->from_cache);
    assert_int_equal(runs(), base + 6);
    srvhelp_free(&h);
    assert_int_equal(srvhelp_load(exe, &o, &h, err, sizeof err), 0);
    assert_true(h->from_cache);
    srvhelp_free(&h);

    /* a new binary at the same path (new inode, mtime): another entry */
    free(exe);
    exe = fake_server("llama-server");
    assert_int_equal(srvhelp_load(exe, &o, &h, err, sizeof err), 0);
    assert_false(h->from_cache);
    assert_string_not_equal(h->cache_path, path);
    assert_int_equal(runs(), base + 8);
    srvhelp_free(&h);

    /* no cache: runs every time */
    o.cache_dir = "";
    assert_int_equal(srvhelp_load(exe, &o, &h, err, sizeof err), 0);
    assert_null(h->cache_path);
    srvhelp_free(&h);
    assert_int_equal(srvhelp_load(exe, &o, &h, err, sizeof err), 0);
    assert_false(h->from_cache);
    assert_int_equal(runs(), base + 12);
    srvhelp_free(&h);

    /* a cache folder that cannot be made: still a result, no entry */
    char *blocked = xasprintf("%s/runs/sub", tmp);
    o.cache_dir = blocked;
    assert_int_equal(srvhelp_load(exe, &o, &h, err, sizeof err), 0);
    assert_null(h->cache_path);
    srvhelp_free(&h);
    free(blocked);

    /* the default folder: $XDG_CACHE_HOME/variet, else $HOME/.cache/variet */
    char *xdg = xasprintf("%s/xdg", tmp), *home = xasprintf("%s/home", tmp);
    char *old_home = getenv("HOME") ? xstrdup(getenv("HOME")) : NULL;
    setenv("XDG_CACHE_HOME", xdg, 1);
    assert_int_equal(srvhelp_load(exe, NULL, &h, err, sizeof err), 0);
    char *want = xasprintf("%s/variet/llama-server-", xdg);
    assert_true(!strncmp(h->cache_path, want, strlen(want)));
    free(want);
    srvhelp_free(&h);
    setenv("XDG_CACHE_HOME", "relative/ignored", 1);
    setenv("HOME", home, 1);
    assert_int_equal(srvhelp_load(exe, NULL, &h, err, sizeof err), 0);
    want = xasprintf("%s/.cache/variet/llama-server-", home);
    assert_true(!strncmp(h->cache_path, want, strlen(want)));
    free(want);
    srvhelp_free(&h);
    unsetenv("XDG_CACHE_HOME");
    if (old_home)
        setenv("HOME", old_home, 1);
    free(old_home);
    free(xdg);
    free(home);

    /* the role check through the same cache */
    o.cache_dir = dir;
    long bad = 99;
    char *seed[] = {"-ngl", "999", "--mlock", "-c", "4096"};
    assert_int_equal(srvhelp_check_role(exe, seed, N(seed), &o, &bad, err, sizeof err), -EINVAL);
    assert_int_equal(bad, 2);
    assert_non_null(strstr(err, "--mlock is not an option of this llama-server (build 11669); use --load-mode mmap+mlock"));
    char *fixed[] = {"-ngl", "999", "--load-mode", "mmap+mlock", "-c", "4096"};
    assert_int_equal(srvhelp_check_role(exe, fixed, N(fixed), &o, &bad, err, sizeof err), 0);
    assert_int_equal(bad, -1);
    assert_int_equal(srvhelp_check_role(exe, fixed, N(fixed), &o, NULL, err, sizeof err), 0);
    free(path);
    free(dir);
    free(exe);
}

static void expect_fail(const char *exe, double timeout, int want_rc, const char *want_msg)
{
    srvhelp_load_opts_t o = {.cache_dir = "", .timeout_s = timeout};
    srvhelp_t *h = (srvhelp_t *)1;
    char err[512] = "";
    double t0 = now_s();
    int rc = srvhelp_load(exe, &o, &h, err, sizeof err);
    if (rc != want_rc || !strstr(err, want_msg))
        fail_msg("%s: rc %d (want %d), err '%s' (want '%s')", exe, rc, want_rc, err, want_msg);
    assert_null(h);
    assert_null(strchr(err, '\n'));
    assert_true(now_s() - t0 < timeout + 5);
    long bad = 7;
    char *args[] = {"-c", "1"};
    assert_int_equal(srvhelp_check_role(exe, args, 2, &o, &bad, err, sizeof err), want_rc);
    assert_int_equal(bad, -1);
}

static void t_load_failures(void **s)
{
    (void)s;
    char *p;
    /* hangs on --version, or only on --help: killed at the timeout */
    p = script("hang", "sleep 30");
    expect_fail(p, 0.3, -ETIMEDOUT, "hang --version did not finish within 0.3 s (killed)");
    free(p);
    p = script("hang-help", "[ \"$1\" = --version ] && { echo 'version: 1 (x)'; exit 0; }\nsleep 30");
    expect_fail(p, 0.3, -ETIMEDOUT, "hang-help --help did not finish within 0.3 s");
    free(p);
    /* closes its output but keeps running */
    p = script("lingers", "exec >/dev/null 2>&1; sleep 30");
    expect_fail(p, 0.3, -ETIMEDOUT, "did not finish");
    free(p);
    /* garbage on --help */
    p = script("garbage", "[ \"$1\" = --version ] && exit 0\nhead -c 20000 /dev/urandom; echo; echo hello");
    expect_fail(p, 10, -EINVAL, "garbage --help: no option lines");
    free(p);
    /* another program's help */
    p = script("notllama", "echo '-a, --all          do not ignore entries'; echo '--color WHEN   colorize'");
    expect_fail(p, 10, -EINVAL, "notllama --help lists no --model option: not a llama-server");
    free(p);
    /* fails, with its message */
    p = script("fails", "[ \"$1\" = --version ] && exit 0\necho 'error: bad install' >&2; exit 3");
    expect_fail(p, 10, -EINVAL, "fails --help exited with status 3: error: bad install");
    free(p);
    p = script("dies", "kill -9 $$");
    expect_fail(p, 10, -EINVAL, "dies --version was killed by signal 9");
    free(p);
    /* floods */
    p = script("floods", "[ \"$1\" = --version ] && exit 0\nhead -c 5000000 /dev/zero");
    expect_fail(p, 10, -E2BIG, "floods --help printed more than");
    free(p);
    /* not there, not executable, a folder, not set */
    p = xasprintf("%s/missing", tmp);
    expect_fail(p, 10, -ENOENT, "missing: No such file or directory");
    free(p);
    p = script("noexec", "exit 0");
    chmod(p, 0644);
    expect_fail(p, 10, -EACCES, "noexec: not an executable file");
    free(p);
    expect_fail(tmp, 10, -EACCES, "not an executable file");
    expect_fail("", 10, -ENOENT, "no llama-server path given");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_fixture_every_flag),
        cmocka_unit_test(t_fixture_details),
        cmocka_unit_test(t_crafted),
        cmocka_unit_test(t_version),
        cmocka_unit_test(t_check),
        cmocka_unit_test(t_migrate),
        cmocka_unit_test(t_migrate_other_builds),
        cmocka_unit_test(t_cache_format),
        cmocka_unit_test(t_load_cached),
        cmocka_unit_test(t_load_failures),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
