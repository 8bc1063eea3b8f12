/*
 * test_e2e_srvhelp.c — srvhelp against the real llama-server
 * ($VARIET_LLAMA_SERVER, see e2e_util.h): its help is read, cached and read
 * back; every spelling the parser found, given the number of values the
 * parser says it takes, gets past the binary's own argument parser (a flag
 * given a stray value, or an unknown name, would be "invalid argument"); and
 * on a list of role args — the seed's --mlock ones, old spellings, bad
 * values, odd forms — srvhelp_check's verdict is the binary's, and every
 * migration the table makes is accepted by the binary. `variet serve`,
 * `bench` and `plan` refuse a role with --mlock (exit 2), naming the
 * replacement; plan without a llama-server only warns; a SIGHUP reload of
 * `serve` with such a role is refused.
 *
 * The binary's verdict: `llama-server ARGS... --version` parses ARGS with
 * the real parser and exits at --version without loading anything; it
 * printed "version: " if and only if ARGS were accepted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "args.h"
#include "e2e_util.h"
#include "srvhelp.h"
#include "util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *exe;
static srvhelp_t *help;
static char *workdir, *cachedir;

/* The real parser's verdict on argv; *out gets what it printed (caller frees). */
static bool binary_accepts(char *const *argv, size_t n, char **out)
{
    buf_t cmd;
    buf_init(&cmd, 0);
    /* in a scratch folder (--log-file and friends create files), bounded in time */
    buf_printf(&cmd, "cd '%s' && timeout 20 '%s'", workdir, exe);
    for (size_t i = 0; i < n; i++) {
        buf_append(&cmd, " '", 2);
        for (const char *p = argv[i]; *p; p++)
            if (*p == '\'')
                buf_append(&cmd, "'\\''", 4);
            else
                buf_append(&cmd, p, 1);
        buf_append(&cmd, "'", 1);
    }
    buf_printf(&cmd, " --version 2>&1");
    char *o = NULL;
    e2e_sh(cmd.data, &o);
    buf_free(&cmd);
    /* the version line, sometimes behind a log timestamp ("0.00.001.224 version: ..."):
     * llama-server's logger adds the prefix when its worker thread is up first */
    bool ok = o && strstr(o, "version: ") && strstr(o, "(build ");
    if (out)
        *out = o;
    else
        free(o);
    return ok;
}

static int setup(void **s)
{
    (void)s;
    exe = e2e_llama_server();
    if (!exe)
        return -1;
    workdir = xasprintf("%s/srvhelp-work", e2e_tmpdir());
    cachedir = xasprintf("%s/srvhelp-cache", e2e_tmpdir());
    char *cmd = xasprintf("mkdir -p '%s'", workdir);
    int rc = system(cmd);
    free(cmd);
    return rc == 0 ? 0 : -1;
}

static int teardown(void **s)
{
    (void)s;
    srvhelp_free(&help);
    free(workdir);
    free(cachedir);
    return 0;
}

static void t_load_and_cache(void **s)
{
    (void)s;
    srvhelp_load_opts_t o = {.cache_dir = cachedir, .timeout_s = 60};
    char err[512];
    srvhelp_t *h = NULL;
    double t0 = now_s();
    if (srvhelp_load(exe, &o, &h, err, sizeof err))
        fail_msg("%s", err);
    double first = now_s() - t0;
    assert_false(h->from_cache);
    assert_non_null(h->version);
    assert_true(h->build > 0);
    assert_true(h->n_opts > 100);
    assert_non_null(h->cache_path);
    assert_non_null(srvhelp_find(h, "--model", 7));
    assert_non_null(srvhelp_find(h, "--load-mode", 11));
    print_message("llama-server %s: %zu options, read in %.3f s\n", h->version, h->n_opts, first);

    /* from the cache: same options, nothing run */
    srvhelp_t *c = NULL;
    t0 = now_s();
    assert_int_equal(srvhelp_load(exe, &o, &c, err, sizeof err), 0);
    print_message("from the cache in %.4f s\n", now_s() - t0);
    assert_true(c->from_cache);
    assert_int_equal(c->n_opts, h->n_opts);
    assert_int_equal(c->build, h->build);
    assert_string_equal(c->version, h->version);
    for (size_t k = 0; k < h->n_opts; k++) {
        assert_int_equal(c->opts[k].n_spell, h->opts[k].n_spell);
        assert_string_equal(c->opts[k].spell[0], h->opts[k].spell[0]);
        assert_int_equal(c->opts[k].n_values, h->opts[k].n_values);
    }
    srvhelp_free(&c);

    /* the recorded help is this build's, when the build is the recorded one */
    if (h->build == 11669) {
        char *t = NULL;
        size_t len;
        assert_int_equal(file_read_all(VARIET_FIXTURES "/llama-server/llama-server-help-b11669.txt",
                                       8u << 20, &t, &len, err, sizeof err), 0);
        assert_int_equal(srvhelp_parse(t, len, &c, err, sizeof err), 0);
        assert_int_equal(c->n_opts, h->n_opts);
        srvhelp_free(&c);
        free(t);
    }
    help = h;
}

/* Options that print something and exit, and one that reaches for the network. */
static bool skip_in_batch(const srvhelp_opt_t *o)
{
    static const char *const skip[] = {"-h", "--version", "-cl", "--completion-bash", "--list-devices",
                                       "--rpc"};
    for (size_t i = 0; i < N(skip); i++)
        if (!strcmp(o->spell[0], skip[i]))
            return true;
    return o->removed;
}

/* Every spelling, with "1" for each value it takes, gets past the real
 * parser. All of them go in one command line; when the parser stops at an
 * option whose value "1" it refuses, that option's name was known: the rest
 * run again. An unknown name, or a "1" read as an option (a flag given a
 * value), fails the test. Removed options must be refused as removed. */
static void t_every_spelling(void **s)
{
    (void)s;
    assert_non_null(help);
    char **argv = xcalloc(4 * 1024, sizeof *argv);
    size_t n = 0, spellings = 0, removed = 0, runs = 0, value_errors = 0;
    double t0 = now_s();
    for (size_t k = 0; k < help->n_opts; k++) {
        const srvhelp_opt_t *o = &help->opts[k];
        for (size_t sp = 0; sp < o->n_spell; sp++) {
            if (o->removed) {
                char *one[3] = {o->spell[sp], "1", "1"}, *out = NULL;
                binary_accepts(one, 1 + (size_t)o->n_values, &out);
                runs++;
                if (!strstr(out, "has been removed"))
                    fail_msg("%s: marked removed, but: %s", o->spell[sp], out);
                free(out);
                removed++;
                continue;
            }
            if (skip_in_batch(o) || n + 3 > 4 * 1024)
                continue;
            argv[n++] = o->spell[sp];
            for (int v = 0; v < o->n_values; v++)
                argv[n++] = "1";
            spellings++;
        }
    }
    size_t from = 0;
    while (from < n) {
        char *out = NULL;
        runs++;
        if (binary_accepts(argv + from, n - from, &out)) {
            free(out);
            break;
        }
        if (strstr(out, "invalid argument: "))
            fail_msg("the real parser: %s", strstr(out, "invalid argument: "));
        if (strstr(out, "has been removed"))
            fail_msg("a removed option not marked so: %s", out);
        /* error while handling argument "X": X is known, its value "1" is not */
        const char *q = strstr(out, "handling argument \"");
        if (!q)
            fail_msg("the real parser stopped without naming an argument: %s", out);
        q += strlen("handling argument \"");
        size_t ql = strcspn(q, "\"");
        size_t at = from;
        while (at < n && (strlen(argv[at]) != ql || strncmp(argv[at], q, ql)))
            at++;
        if (at == n)
            fail_msg("the real parser stopped at %.*s, not in the batch: %s", (int)ql, q, out);
        const srvhelp_opt_t *o = srvhelp_find(help, argv[at], strlen(argv[at]));
        assert_non_null(o);
        from = at + 1 + (size_t)o->n_values;
        value_errors++;
        free(out);
    }
    print_message("%zu spellings through the real parser in %zu runs (%zu refused the value 1, "
                  "%zu removed ones refused as removed) in %.1f s\n",
                  spellings + removed, runs, value_errors, removed, now_s() - t0);
    assert_true(spellings > 300);
    free(argv);
}

typedef struct {
    const char *args; /* space-separated */
} vec_t;

/* srvhelp_check's verdict equals the binary's; migrations are accepted. */
static void t_oracle(void **s)
{
    (void)s;
    assert_non_null(help);
    static const vec_t vecs[] = {
        {"-ngl 999 -c 262144 -np 1 -fa on --cache-type-k q4_0 --cache-type-v q4_0 -ub 256 -b 512 "
         "-t 6 -tb 6 --mlock --poll 50 --prio 3 --fit off"},
        {"-ngl 999 -c 262144 -np 1 -fa on -ub 256 -b 512 -t 6 -tb 6 --load-mode mmap+mlock --poll 50"},
        {"--mlock --no-mmap -c 1024"},
        {"--no-mmap"},
        {"--mmap -t 2"},
        {"-dio"},
        {"--direct-io -c 10"},
        {"-ndio"},
        {"--no_mmap"},
        {"-fa"},
        {"-fa -c 10"},
        {"-c 10 --flash-attn"},
        {"--ctx-size=2048"},
        {"-c=2048 -ngl 1"},
        {"--draft-max 8"},
        {"--draft 4 --draft-min 1"},
        {"--draft-n-min=2"},
        {"--slots-endpoint-disable"},
        {"--ctx-size-draft 10"},
        {"--system-prompt-file x"},
        {"positional"},
        {"-c 10 20"},
        {"-sm rows"},
        {"-sm layer"},
        {"-ctk q8"},
        {"-ctk q8_0 -ctv iq4_nl"},
        {"--rope-scaling foo"},
        {"--rope-scaling yarn"},
        {"--control-vector-layer-range 1 2 -c 10"},
        {"--control-vector-layer-range 1"},
        {"--ctx_size 10 --n_gpu_layers 1"},
        {"-kvo -nkvo --no-kv-offload -kvu --no-kv-unified -cb -nocb"},
        {"-c 10 -c"},
        {"--lazy-mode on -lm mlock -lm mmap+mlock"},
        {"-ncmoe 3 -cmoe --cpu-moe"},
        {"--spec-type ngram-mod --spec-ngram-mod-n-max 32"},
        {"--spec-ngram-size-n 3"},
        {"-t -1 -tb -1 -np -1 --seed -1"},
        {"--cpu-moe=1"},
        {"--jinja --no-jinja --reasoning-format none --metrics --no-slots"},
        {"--pooling mean --embedding"},
        {"--pooling average"},
        {"-dt 0.1"},
    };
    size_t agreed = 0, migrated = 0;
    for (size_t i = 0; i < N(vecs); i++) {
        char *copy = xstrdup(vecs[i].args), *save = NULL;
        char *argv[64];
        size_t n = 0;
        for (char *t = strtok_r(copy, " ", &save); t && n < N(argv); t = strtok_r(NULL, " ", &save))
            argv[n++] = t;
        char err[512] = "", *out = NULL;
        long bad = srvhelp_check(help, argv, n, err, sizeof err);
        bool real = binary_accepts(argv, n, &out);
        if ((bad < 0) != real)
            fail_msg("'%s': srvhelp_check says %s (%s), the binary says %s: %s", vecs[i].args,
                     bad < 0 ? "fine" : "refused", err, real ? "fine" : "refused", out);
        if (bad >= 0)
            print_message("  refused as the binary does: %s\n", err);
        free(out);
        agreed++;

        char **v;
        size_t nv;
        srvhelp_change_t *ch;
        size_t nc = srvhelp_migrate(help, argv, n, &v, &nv, &ch);
        if (nc) {
            char e2[512];
            bool fixed = srvhelp_check(help, v, nv, e2, sizeof e2) < 0;
            bool real2 = binary_accepts(v, nv, &out);
            /* the table's rewrite is what the binary takes (the rest of the
             * vector may hold something else it refuses) */
            if (fixed != real2)
                fail_msg("migrated '%s': check %d, binary %d: %s", vecs[i].args, fixed, real2, out);
            for (size_t c = 0; c < nc; c++)
                print_message("    migration: %s -> %s\n", ch[c].from, *ch[c].to ? ch[c].to : "(removed)");
            if (fixed)
                migrated++;
            free(out);
        }
        srvhelp_changes_free(&ch, nc);
        args_free(&v);
        free(copy);
    }
    print_message("%zu vectors: verdicts equal; %zu fixed by migration\n", agreed, migrated);
    assert_true(migrated >= 12);
}

/* Run a variet command line (through sh, stderr folded in) with the help
 * cache in the test's folder; exit code, output in *out (caller frees). */
static int variet(const char *env, const char *argline, char **out)
{
    char *cmd = xasprintf("XDG_CACHE_HOME='%s/xdg' VARIET_LLAMA_SERVER='%s' %s timeout 300 '%s' %s 2>&1",
                          e2e_tmpdir(), exe, env ? env : "", VARIET_BINARY, argline);
    int rc = e2e_sh(cmd, out);
    free(cmd);
    return rc;
}

static void expect(int rc, const char *out, int want_rc, const char *want)
{
    if (rc != want_rc || !strstr(out, want))
        fail_msg("exit %d (want %d), output:\n%s\n(want '%s')", rc, want_rc, out, want);
}

/* serve, bench and plan refuse a role whose args this llama-server does not
 * take, naming the flag and its replacement (exit 2); plan only warns
 * without a binary; the migrated args pass. */
static void t_commands(void **s)
{
    (void)s;
    char *dir = xasprintf("%s/srvhelp-cmd", e2e_tmpdir()), *out = NULL;
    char *cmd = xasprintf("mkdir -p '%s' && '%s' synth tiny-llama -o '%s/tiny.gguf' >/dev/null 2>&1", dir,
                          VARIET_BINARY, dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    char *cfg = xasprintf("%s/engine_models.json", dir), *good = xasprintf("%s/good.json", dir);
    const char *body = "{\"_engine\": {},\n"
                       " \"fast\": {\"model_path\": \"tiny.gguf\", \"args\": [\"-c\", \"512\", \"--mlock\", \"-np\", \"1\"]},\n"
                       " \"other\": {\"model_path\": \"tiny.gguf\", \"args\": [\"--no-mmap\"]}}\n";
    const char *body2 = "{\"_engine\": {},\n"
                        " \"fast\": {\"model_path\": \"tiny.gguf\", \"args\": [\"-c\", \"512\", \"--load-mode\", "
                        "\"mmap+mlock\", \"-np\", \"1\"]}}\n";
    char err[256];
    assert_int_equal(file_write_atomic(cfg, body, strlen(body), err, sizeof err), 0);
    assert_int_equal(file_write_atomic(good, body2, strlen(body2), err, sizeof err), 0);
    const char *want = "fast.args[2]: --mlock is not an option of this llama-server (build ";
    const char *repl = "); use --load-mode mmap+mlock";
    int rc;

    char *a = xasprintf("serve --config '%s' --port 0", cfg);
    rc = variet(NULL, a, &out);
    expect(rc, out, 2, want);
    expect(rc, out, 2, repl);
    expect(rc, out, 2, "other.args[0]: --no-mmap is not an option of this llama-server");
    expect(rc, out, 2, "use --load-mode none");
    free(out);
    free(a);

    a = xasprintf("bench fast --config '%s' --direct --runs 1", cfg);
    rc = variet(NULL, a, &out);
    expect(rc, out, 2, want);
    expect(rc, out, 2, repl);
    free(out);
    free(a);

    a = xasprintf("plan fast --config '%s' --cpu-only", cfg);
    rc = variet(NULL, a, &out);
    expect(rc, out, 2, want);
    free(out);
    free(a);
    a = xasprintf("plan --model '%s/tiny.gguf' --cpu-only -- -c 512 -fa", dir);
    rc = variet(NULL, a, &out);
    expect(rc, out, 2, "variet plan: -fa needs a value ([on|off|auto]); use -fa on");
    free(out);
    free(a);
    /* no llama-server: plan warns and plans */
    a = xasprintf("plan --model '%s/tiny.gguf' --cpu-only -- -c 512 --mlock", dir);
    rc = variet("VARIET_LLAMA_SERVER=/nonexistent PATH=/usr/bin:/bin", a, &out);
    expect(rc, out, 0, "variet plan: warning: no llama-server found; args not checked against its options");
    expect(rc, out, 0, "verdict: fits");
    free(out);
    free(a);

    /* the migrated args: plan passes, bench measures */
    a = xasprintf("plan fast --config '%s' --cpu-only", good);
    rc = variet(NULL, a, &out);
    expect(rc, out, 0, "verdict: fits");
    assert_null(strstr(out, "warning"));
    free(out);
    free(a);
    a = xasprintf("bench fast --config '%s' --direct --runs 1 --scenario short", good);
    rc = variet(NULL, a, &out);
    expect(rc, out, 0, "gen t/s");
    free(out);
    free(a);
    free(cfg);
    free(good);
    free(dir);
}

/* A SIGHUP reload with a role the llama-server does not take is refused;
 * the running configuration stays. */
static void t_serve_reload(void **s)
{
    (void)s;
    char *dir = xasprintf("%s/srvhelp-cmd", e2e_tmpdir()); /* made by t_commands */
    char *cfg = xasprintf("%s/reload.json", dir), *log = xasprintf("%s/reload.log", dir), err[256];
    const char *good = "{\"fast\": {\"model_path\": \"tiny.gguf\", \"args\": [\"-c\", \"512\"]}}\n";
    const char *bad = "{\"fast\": {\"model_path\": \"tiny.gguf\", \"args\": [\"-c\", \"512\", \"--mlock\"]}}\n";
    assert_int_equal(file_write_atomic(cfg, good, strlen(good), err, sizeof err), 0);
    char *xdg = xasprintf("%s/xdg", e2e_tmpdir());
    setenv("XDG_CACHE_HOME", xdg, 1);
    const char *srv = e2e_llama_server(); /* the one every e2e test finds, also without $VARIET_LLAMA_SERVER */
    assert_non_null(srv);
    char *argv[] = {(char *)VARIET_BINARY, "serve", "--config", cfg, "--port", "0", "--llama-server", (char *)srv, NULL};
    pid_t pid = e2e_spawn(argv, log);
    assert_true(pid > 0);
    double t0 = now_s();
    char *text = NULL;
    while (now_s() - t0 < 30) {
        free(text);
        text = e2e_slurp(log, NULL);
        if (text && strstr(text, "variet: serving 1 roles"))
            break;
        usleep(20000);
    }
    assert_non_null(strstr(text, "variet: serving 1 roles"));
    assert_int_equal(file_write_atomic(cfg, bad, strlen(bad), err, sizeof err), 0);
    kill(pid, SIGHUP);
    const char *want = "reload refused, keeping the running configuration: the llama-server in use does not take";
    t0 = now_s();
    while (now_s() - t0 < 30) {
        free(text);
        text = e2e_slurp(log, NULL);
        if (text && strstr(text, want))
            break;
        usleep(20000);
    }
    if (!text || !strstr(text, want) || !strstr(text, "fast.args[2]: --mlock is not an option"))
        fail_msg("serve log:\n%s", text ? text : "");
    /* still serving: a good file reloads */
    assert_int_equal(file_write_atomic(cfg, good, strlen(good), err, sizeof err), 0);
    kill(pid, SIGHUP);
    t0 = now_s();
    while (now_s() - t0 < 30) {
        free(text);
        text = e2e_slurp(log, NULL);
        if (text && strstr(text, "configuration reloaded"))
            break;
        usleep(20000);
    }
    assert_non_null(strstr(text, "configuration reloaded"));
    assert_int_equal(e2e_stop(pid), 0);
    unsetenv("XDG_CACHE_HOME");
    free(text);
    free(xdg);
    free(cfg);
    free(log);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_load_and_cache),
        cmocka_unit_test(t_every_spelling),
        cmocka_unit_test(t_oracle),
        cmocka_unit_test(t_commands),
        cmocka_unit_test(t_serve_reload),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
