/*
 * test_cli.c — the command line: option parsing against a table and the
 * configuration search (cli.c, directly), and the variet binary on good
 * and bad input: malformed GGUF files get one clear error line and exit
 * code 2 (never a crash), unknown commands/presets/options exit 2, inspect
 * --json is valid JSON, the config is found in the documented order and
 * the error lists every place looked at, synopses show --config, and the
 * README's headings agree with the commands' own synopses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

/* Run a shell command line; stdout and stderr captured separately. Returns
 * its exit code (or 128+signal). */
static int run_sh(const char *line, char **out, char **err)
{
    char errpath[128];
    snprintf(errpath, sizeof errpath, "/tmp/variet-test-cli-%ld.err", (long)getpid());
    char *cmd = xasprintf("%s 2>'%s'", line, errpath);
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

/* Run variet with args (the config variables of the environment cleared). */
static int run(const char *args, char **out, char **err)
{
    char *line = xasprintf("env -u VARIET_CONFIG '%s' %s", VARIET_BINARY, args);
    int rc = run_sh(line, out, err);
    free(line);
    return rc;
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

/* synth -o into folders that do not exist yet: made; a file in the way:
 * the error names it (never a temp file) */
static void t_synth_output_folder(void **s)
{
    (void)s;
    char dir[] = "/tmp/variet-test-synth-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *o, *e;
    char *args = xasprintf("synth tiny-llama -o '%s/models/a/b.gguf'", dir);
    if (run(args, &o, &e) != 0)
        fail_msg("synth into new folders: %s", e);
    free(args); free(o); free(e);
    char *f = xasprintf("%s/models/a/b.gguf", dir);
    assert_int_equal(access(f, R_OK), 0);
    args = xasprintf("synth tiny-llama -o '%s/models/a/b.gguf/c.gguf'", dir);
    assert_int_equal(run(args, &o, &e), 1);
    if (!strstr(e, "models/a/b.gguf is not a folder") || strstr(e, "tmp."))
        fail_msg("expected the file in the way named: %s", e);
    free(args); free(o); free(e);
    /* relative paths too */
    args = xasprintf("synth tiny-llama -o x/y.gguf");
    char *line = xasprintf("cd '%s' && env -u VARIET_CONFIG '%s' %s", dir, VARIET_BINARY, args);
    assert_int_equal(run_sh(line, &o, &e), 0);
    free(line); free(args); free(o); free(e);
    char *g = xasprintf("%s/x/y.gguf", dir), *gx = xasprintf("%s/x", dir);
    assert_int_equal(unlink(g), 0);
    rmdir(gx);
    unlink(f);
    char *d1 = xasprintf("%s/models/a", dir), *d2 = xasprintf("%s/models", dir);
    rmdir(d1);
    rmdir(d2);
    rmdir(dir);
    free(f); free(g); free(gx); free(d1); free(d2);
}

/* ---------- cli.c directly ---------- */

static const cli_opt_t topts[] = {
    {"--config", 'c', "FILE", "config", 0},
    {"--runs", 0, "N", "runs", 0},
    {"--json", 0, NULL, "json", 0},
    {"--model", 'm', "FILE", "model", CLI_OPT_IN_USAGE},
    {0},
};

static int parse_words(const char *const *words, bool rest, cli_args_t *a, char *err, size_t errlen)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "cmd";
    for (; *words; words++)
        argv[argc++] = (char *)*words;
    argv[argc] = NULL;
    return cli_parse(topts, rest, argc, argv, a, err, errlen);
}

static void t_parse(void **s)
{
    (void)s;
    cli_args_t a;
    char err[256];
    const char *w1[] = {"fast", "--runs", "5", "--json", "-c", "x.json", "--model=m.gguf", "more", NULL};
    assert_int_equal(parse_words(w1, false, &a, err, sizeof err), 0);
    assert_int_equal(a.n_pos, 2);
    assert_string_equal(a.pos[0], "fast");
    assert_string_equal(a.pos[1], "more");
    assert_string_equal(a.val[cli_opt_index(topts, "--runs")], "5");
    assert_string_equal(a.val[cli_opt_index(topts, "--json")], "");
    assert_string_equal(a.val[cli_opt_index(topts, "--config")], "x.json");
    assert_string_equal(a.val[cli_opt_index(topts, "--model")], "m.gguf");
    assert_int_equal(cli_opt_index(topts, "--nope"), -1);

    /* later wins; absent is NULL */
    const char *w2[] = {"--runs", "1", "--runs=2", NULL};
    assert_int_equal(parse_words(w2, false, &a, err, sizeof err), 0);
    assert_string_equal(a.val[1], "2");
    assert_null(a.val[0]);
    assert_null(a.val[2]);

    /* "--": pass-through words, or positionals when the command takes none */
    const char *w3[] = {"r", "--", "-c", "4096", "--json", NULL};
    assert_int_equal(parse_words(w3, true, &a, err, sizeof err), 0);
    assert_int_equal(a.n_pos, 1);
    assert_int_equal(a.n_rest, 3);
    assert_string_equal(a.rest[0], "-c");
    assert_null(a.val[0]);
    assert_null(a.val[2]);
    const char *w4[] = {"--", "-x", NULL};
    assert_int_equal(parse_words(w4, false, &a, err, sizeof err), 0);
    assert_int_equal(a.n_pos, 1);
    assert_string_equal(a.pos[0], "-x");
    assert_null(a.rest);

    struct { const char *w[4]; const char *msg; } bad[] = {
        {{"--bogus", NULL}, "unknown option '--bogus'"},
        {{"-x", NULL}, "unknown option '-x'"},
        {{"-cc", "f", NULL}, "unknown option '-cc'"},
        {{"--runs", NULL}, "--runs needs a value (N)"},
        {{"--json=1", NULL}, "--json takes no value"},
        {{"--run", "3", NULL}, "unknown option '--run'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        assert_int_equal(parse_words(bad[i].w, false, &a, err, sizeof err), -EINVAL);
        if (strcmp(err, bad[i].msg))
            fail_msg("case %zu: '%s', expected '%s'", i, err, bad[i].msg);
    }
    const char *many[] = {"1", "2", "3", "4", "5", "6", "7", "8", "9", NULL};
    assert_int_equal(parse_words(many, false, &a, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "too many arguments ('9')"));

    buf_t b;
    buf_init(&b, 0);
    cli_synopsis(&b, "variet x", "(ROLE | --model FILE)", topts, "[-- args...]");
    assert_string_equal(b.data, "variet x (ROLE | --model FILE) [--config FILE] [--runs N] [--json] [-- args...]");
    buf_reset(&b);
    cli_options_help(&b, topts);
    assert_non_null(strstr(b.data, "  -c, --config FILE"));
    assert_non_null(strstr(b.data, "      --json "));
    buf_free(&b);
}

static void touch(const char *path)
{
    write_bytes(path, "{}", 2);
}

static void t_config_find(void **s)
{
    (void)s;
    char dir[] = "/tmp/variet-test-cfg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *cwd_file = xasprintf("%s/engine_models.json", dir);
    char *xdg = xasprintf("%s/xdg", dir), *xdg_v = xasprintf("%s/xdg/variet", dir);
    char *xdg_file = xasprintf("%s/xdg/variet/engine_models.json", dir);
    char *home_v = xasprintf("%s/.config/variet", dir), *home_c = xasprintf("%s/.config", dir);
    char *home_file = xasprintf("%s/.config/variet/engine_models.json", dir);
    char *env_file = xasprintf("%s/env.json", dir);
    assert_int_equal(mkdir(xdg, 0700), 0);
    assert_int_equal(mkdir(xdg_v, 0700), 0);
    assert_int_equal(mkdir(home_c, 0700), 0);
    assert_int_equal(mkdir(home_v, 0700), 0);
    touch(xdg_file);
    touch(home_file);
    touch(env_file);
    touch(cwd_file);

    char *p = NULL, err[1024];
    /* --config wins even when it does not exist (registry_load names it) */
    cli_config_src_t src = {.flag = "/nonexistent.json", .env = env_file, .cwd_name = cwd_file, .xdg = xdg, .home = dir};
    assert_int_equal(cli_config_find(&src, &p, err, sizeof err), 0);
    assert_string_equal(p, "/nonexistent.json");
    free(p);
    src.flag = "";
    assert_int_equal(cli_config_find(&src, &p, err, sizeof err), 0);
    assert_string_equal(p, env_file);
    free(p);
    src.env = NULL;
    assert_int_equal(cli_config_find(&src, &p, err, sizeof err), 0);
    assert_string_equal(p, cwd_file);
    free(p);
    unlink(cwd_file);
    assert_int_equal(cli_config_find(&src, &p, err, sizeof err), 0);
    assert_string_equal(p, xdg_file);
    free(p);
    src.xdg = ""; /* empty XDG_CONFIG_HOME counts as unset */
    assert_int_equal(cli_config_find(&src, &p, err, sizeof err), 0);
    assert_string_equal(p, home_file);
    free(p);
    /* XDG set but without the file: HOME's is not used (XDG replaces ~/.config) */
    src.xdg = xdg;
    unlink(xdg_file);
    assert_int_equal(cli_config_find(&src, &p, err, sizeof err), -ENOENT);
    assert_null(p);
    assert_non_null(strstr(err, "--config FILE (not given)"));
    assert_non_null(strstr(err, "$VARIET_CONFIG (not set)"));
    assert_non_null(strstr(err, cwd_file));
    assert_non_null(strstr(err, xdg_file));
    /* a $VARIET_CONFIG that names nothing is an error, not skipped */
    src.env = env_file;
    unlink(env_file);
    assert_int_equal(cli_config_find(&src, &p, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, env_file));
    assert_non_null(strstr(err, "No such file"));
    src.env = NULL;
    src.xdg = NULL;
    src.home = NULL;
    assert_int_equal(cli_config_find(&src, &p, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "neither $XDG_CONFIG_HOME nor $HOME"));

    unlink(home_file);
    rmdir(home_v);
    rmdir(home_c);
    rmdir(xdg_v);
    rmdir(xdg);
    rmdir(dir);
    free(cwd_file); free(xdg); free(xdg_v); free(xdg_file); free(home_v); free(home_c); free(home_file);
    free(env_file);
}

/* ---------- the binary ---------- */

/* A config with one role named `role` whose model is `dir`/m.gguf. */
static char *write_config(const char *dir, const char *file, const char *role)
{
    char *path = xasprintf("%s/%s", dir, file);
    char *text = xasprintf("{\"%s\": {\"model_path\": \"m.gguf\"}}\n", role);
    write_bytes(path, text, strlen(text));
    free(text);
    return path;
}

/* Which config each way of naming one picks, seen in the "no role" error
 * (it names the file and lists its roles); every command that takes a
 * registry finds it the same way. */
static void t_discovery_order(void **s)
{
    (void)s;
    char dir[] = "/tmp/variet-test-disc-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *sub = xasprintf("%s/xdg", dir), *sub2 = xasprintf("%s/xdg/variet", dir);
    char *hc = xasprintf("%s/home", dir), *hc1 = xasprintf("%s/home/.config", dir),
         *hc2 = xasprintf("%s/home/.config/variet", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(mkdir(sub2, 0700), 0);
    assert_int_equal(mkdir(hc, 0700), 0);
    assert_int_equal(mkdir(hc1, 0700), 0);
    assert_int_equal(mkdir(hc2, 0700), 0);
    char *flag = write_config(dir, "flag.json", "fromflag");
    char *env = write_config(dir, "env.json", "fromenv");
    char *cwd = write_config(dir, "engine_models.json", "fromcwd");
    char *xdg = write_config(sub2, "engine_models.json", "fromxdg");
    char *home = write_config(hc2, "engine_models.json", "fromhome");

    struct { const char *env; const char *cfg_flag; const char *expect; } cases[] = {
        {"VARIET_CONFIG=env.json XDG_CONFIG_HOME=xdg HOME=home", "--config flag.json", "in flag.json (roles: fromflag)"},
        {"VARIET_CONFIG=env.json XDG_CONFIG_HOME=xdg HOME=home", "", "in env.json (roles: fromenv)"},
        {"XDG_CONFIG_HOME=xdg HOME=home", "", "in engine_models.json (roles: fromcwd)"},
    };
    const char *cmds[] = {"bench nosuch", "tune nosuch", "plan nosuch", "bench nosuch --runs 1"};
    char *o, *e;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++) {
            char *line = xasprintf("cd '%s' && env -u VARIET_CONFIG %s '%s' %s %s", dir, cases[i].env, VARIET_BINARY,
                                   cmds[k], cases[i].cfg_flag);
            int rc = run_sh(line, &o, &e);
            if (rc != 2 || !strstr(e, cases[i].expect) || !strstr(e, "no role 'nosuch'"))
                fail_msg("%s: rc %d, stderr '%s', expected '%s'", line, rc, e, cases[i].expect);
            free(line); free(o); free(e);
        }
    unlink(cwd);
    char *line = xasprintf("cd '%s' && env -u VARIET_CONFIG XDG_CONFIG_HOME='%s' HOME=home '%s' bench nosuch", dir, sub,
                           VARIET_BINARY);
    assert_int_equal(run_sh(line, &o, &e), 2);
    if (!strstr(e, xdg) || !strstr(e, "fromxdg"))
        fail_msg("expected the XDG config: %s", e);
    free(line); free(o); free(e);
    line = xasprintf("cd '%s' && env -u VARIET_CONFIG -u XDG_CONFIG_HOME HOME='%s' '%s' bench nosuch", dir, hc,
                     VARIET_BINARY);
    assert_int_equal(run_sh(line, &o, &e), 2);
    if (!strstr(e, home) || !strstr(e, "fromhome"))
        fail_msg("expected ~/.config's config: %s", e);
    free(line); free(o); free(e);
    /* nowhere: one line naming every place looked at, exit 2 */
    unlink(xdg);
    line = xasprintf("cd '%s' && env -u VARIET_CONFIG XDG_CONFIG_HOME='%s' '%s' bench fast", dir, sub, VARIET_BINARY);
    assert_int_equal(run_sh(line, &o, &e), 2);
    if (count_lines(e) != 1 || !strstr(e, "--config FILE (not given)") || !strstr(e, "$VARIET_CONFIG (not set)") ||
        !strstr(e, dir) || !strstr(e, "engine_models.json (not found)") || !strstr(e, xdg))
        fail_msg("expected every place looked at: %s", e);
    free(line); free(o); free(e);
    /* an explicit $VARIET_CONFIG that names nothing */
    line = xasprintf("cd '%s' && VARIET_CONFIG=missing.json '%s' serve", dir, VARIET_BINARY);
    assert_int_equal(run_sh(line, &o, &e), 2);
    assert_non_null(strstr(e, "$VARIET_CONFIG is 'missing.json'"));
    free(line); free(o); free(e);
    /* --config naming nothing: the file is named */
    line = xasprintf("cd '%s' && '%s' tune fast --config nope.json", dir, VARIET_BINARY);
    assert_int_equal(run_sh(line, &o, &e), 2);
    assert_non_null(strstr(e, "nope.json: No such file"));
    free(line); free(o); free(e);
    /* commands without a registry need no config */
    line = xasprintf("cd '%s' && env -u VARIET_CONFIG XDG_CONFIG_HOME='%s' '%s' plan --model none.gguf", dir, sub,
                     VARIET_BINARY);
    assert_int_equal(run_sh(line, &o, &e), 2);
    assert_non_null(strstr(e, "none.gguf"));
    assert_null(strstr(e, "configuration"));
    free(line); free(o); free(e);

    unlink(flag); unlink(env); unlink(home);
    rmdir(sub2); rmdir(sub); rmdir(hc2); rmdir(hc1); rmdir(hc);
    rmdir(dir);
    free(flag); free(env); free(cwd); free(xdg); free(home);
    free(sub); free(sub2); free(hc); free(hc1); free(hc2);
}

/* The synopsis of each command, from its own --help. */
static char *synopsis_of(const char *cmd)
{
    char *args = xasprintf("%s --help", cmd), *o, *e;
    assert_int_equal(run(args, &o, &e), 0);
    free(args);
    free(e);
    assert_true(!strncmp(o, "usage: variet ", 14));
    char *nl = strchr(o, '\n');
    assert_non_null(nl);
    char *syn = xstrndup(o + 7, (size_t)(nl - o - 7));
    free(o);
    return syn;
}

/* Every command's --help; the ones with a registry show --config; the
 * README's heading of each command shows --config exactly when the command
 * takes one and names only options the command has. */
static void t_synopses_and_readme(void **s)
{
    (void)s;
    const char *names[] = {"synth", "inspect", "hw", "serve", "bench", "plan", "tune", "init"};
    const bool has_config[] = {false, false, false, true, true, true, true, false};
    char *readme, err[128];
    size_t len;
    char *rp = xasprintf("%s/README.md", VARIET_SOURCE_DIR);
    assert_int_equal(file_read_all(rp, 1 << 22, &readme, &len, err, sizeof err), 0);
    free(rp);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *syn = synopsis_of(names[i]);
        if (has_config[i] != (strstr(syn, "[--config FILE]") != NULL))
            fail_msg("%s: synopsis '%s'", names[i], syn);
        char *head = xasprintf("### `variet %s", names[i]);
        char *h = strstr(readme, head);
        if (!h)
            fail_msg("README has no heading '%s'", head);
        char *eol = strchr(h, '\n');
        char *line = xstrndup(h, eol ? (size_t)(eol - h) : strlen(h));
        if (has_config[i] != (strstr(line, "--config") != NULL))
            fail_msg("README heading '%s' vs synopsis '%s': --config", line, syn);
        /* each --option the heading names is one the command has */
        for (char *p = strstr(line, "--"); p; p = strstr(p + 2, "--")) {
            size_t n = 2;
            while (p[n] && (p[n] == '-' || (p[n] >= 'a' && p[n] <= 'z')))
                n++;
            if (n == 2)
                continue; /* "-- args" */
            char *opt = xstrndup(p, n);
            char *found = strstr(syn, opt);
            if (!found || (found[n] != ' ' && found[n] != ']'))
                fail_msg("README heading '%s' names %s, which '%s' does not have", line, opt, syn);
            free(opt);
        }
        free(line);
        free(head);
        free(syn);
    }
    free(readme);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_malformed_files),
        cmocka_unit_test(t_usage_errors),
        cmocka_unit_test(t_synth_output_folder),
        cmocka_unit_test(t_parse),
        cmocka_unit_test(t_config_find),
        cmocka_unit_test(t_discovery_order),
        cmocka_unit_test(t_synopses_and_readme),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
