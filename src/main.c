/*
 * main.c — variet's command line. Every subcommand declares its options,
 * positionals and target (registry, ROLE) in its cmd_entry_t; this file
 * does the rest once for all of them: --help and synopses from the table,
 * option parsing (cli.h), finding engine_models.json (--config, then
 * $VARIET_CONFIG, ./engine_models.json, ${XDG_CONFIG_HOME:-~/.config}/
 * variet/engine_models.json), loading it, finding the ROLE, then exec.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "registry.h"
#include "util.h"

#ifndef VARIET_VERSION
#define VARIET_VERSION "0.1.0"
#endif

static const cmd_entry_t *const cmds[] = {
    &cmd_synth_entry,
    &cmd_inspect_entry,
    &cmd_hw_entry,
    &cmd_serve_entry,
    &cmd_bench_entry,
    &cmd_plan_entry,
    &cmd_init_entry,
    &cmd_tune_entry,
};

#define N_CMDS (sizeof cmds / sizeof cmds[0])

static int opt_index(const cmd_ctx_t *c, const char *name)
{
    int k = cli_opt_index(c->entry->opts, name);
    if (k < 0) { /* a command asking for an option it did not declare: a bug */
        fprintf(stderr, "variet %s: internal error: undeclared option %s\n", c->entry->name, name);
        abort();
    }
    return k;
}

const char *cmd_opt(const cmd_ctx_t *c, const char *name) { return c->args.val[opt_index(c, name)]; }

bool cmd_flag(const cmd_ctx_t *c, const char *name) { return cmd_opt(c, name) != NULL; }

int cmd_opt_i64(const cmd_ctx_t *c, const char *name, int64_t lo, int64_t hi, int64_t *v)
{
    const char *s = cmd_opt(c, name);
    if (!s)
        return 0;
    if (!parse_i64(s, lo, hi, v)) {
        fprintf(stderr, "variet %s: %s wants an integer in %lld..%lld, got '%s'\n", c->entry->name, name,
                (long long)lo, (long long)hi, s);
        return CMD_USAGE;
    }
    return 0;
}

int cmd_plan_hw(const cmd_ctx_t *c, cmd_hw_t *out)
{
    memset(out, 0, sizeof *out);
    const char *gpus = cmd_opt(c, "--gpus");
    bool cpu_only = cmd_flag(c, "--cpu-only");
    int64_t host_free = -2;
    if (gpus && cpu_only)
        return cmd_usage(c->entry, "--gpus and --cpu-only do not go together");
    if (cmd_opt_i64(c, "--host-free", 0, INT64_MAX / 2, &host_free))
        return CMD_USAGE;
    hw_info_t hw;
    char err[256];
    hw_info_init(&hw);
    hw_probe(&hw, err, sizeof err);
    snprintf(out->note, sizeof out->note, "%s", hw.note);
    if (gpus) {
        if (plan_parse_gpus(gpus, out->hw.gpus, &out->hw.n_gpu, err, sizeof err)) {
            fprintf(stderr, "variet %s: --gpus %s\n", c->entry->name, err);
            return CMD_USAGE;
        }
        out->source = "--gpus";
    } else if (cpu_only) {
        out->source = "--cpu-only";
    } else {
        for (int k = 0; k < hw.n_gpu && out->hw.n_gpu < PLAN_MAX_GPU; k++) {
            plan_gpu_t *g = &out->hw.gpus[out->hw.n_gpu++];
            snprintf(g->name, sizeof g->name, "CUDA%d", k);
            g->free_mib = hw.gpu[k].mem_free_mib;
        }
        out->source = hw_source_name(hw.source);
        out->no_gpu_found = hw.source == HW_SRC_NONE;
    }
    out->hw.host_free_mib = host_free == -2 ? hw.ram_avail_mib : host_free;
    return 0;
}

static char *synopsis(const cmd_entry_t *e)
{
    buf_t b;
    buf_init(&b, 0);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "variet %s", e->name);
    cli_synopsis(&b, prefix, e->pos_usage, e->opts, e->rest_usage);
    return b.data; /* caller frees */
}

int cmd_usage(const cmd_entry_t *e, const char *msg)
{
    char *s = synopsis(e);
    if (msg)
        fprintf(stderr, "variet %s: %s\n", e->name, msg);
    fprintf(stderr, "usage: %s\n", s);
    free(s);
    return CMD_USAGE;
}

static void cmd_help(const cmd_entry_t *e)
{
    char *s = synopsis(e);
    buf_t b;
    buf_init(&b, 0);
    cli_options_help(&b, e->opts);
    printf("usage: %s\n\n%s\n", s, e->summary);
    if (b.len)
        printf("\noptions:\n%s", b.data);
    printf("\nexit codes: 0 success, 1 runtime failure, 2 bad input%s\n",
           !strcmp(e->name, "plan") ? ", 4 does not fit" : "");
    buf_free(&b);
    free(s);
}

static void help(FILE *f)
{
    fprintf(f, "variet %s — local LLM role engine for llama-server\n\nusage: variet COMMAND [ARGS]\n\n",
            VARIET_VERSION);
    for (size_t i = 0; i < N_CMDS; i++)
        fprintf(f, "  %-9s %s\n", cmds[i]->name, cmds[i]->summary);
    fprintf(f, "\n'variet COMMAND --help' shows a command's arguments.\n");
}

static const cmd_entry_t *find_cmd(const char *name)
{
    for (size_t i = 0; i < N_CMDS; i++)
        if (!strcmp(name, cmds[i]->name))
            return cmds[i];
    return NULL;
}

/* Find the config, load it, find the role: 0 or an exit code (printed). */
static int open_target(cmd_ctx_t *c)
{
    const cmd_entry_t *e = c->entry;
    bool want_role = e->target == CMD_TARGET_ROLE || (e->target == CMD_TARGET_ROLE_OPTIONAL && c->args.n_pos > 0);
    if (e->target == CMD_TARGET_NONE || (e->target == CMD_TARGET_ROLE_OPTIONAL && !want_role))
        return CMD_OK;
    char err[1024];
    cli_config_src_t src = cli_config_src_env(cmd_opt(c, "--config"));
    if (cli_config_find(&src, &c->config, err, sizeof err)) {
        fprintf(stderr, "variet %s: %s\n", e->name, err);
        return CMD_USAGE;
    }
    if (registry_load(c->config, &c->reg, err, sizeof err)) {
        fprintf(stderr, "variet %s: %s\n", e->name, err);
        return CMD_USAGE;
    }
    if (!want_role)
        return CMD_OK;
    const char *name = c->args.pos[0];
    c->role = registry_find(c->reg, name);
    if (!c->role) {
        buf_t b;
        buf_init(&b, 4096);
        for (size_t i = 0; i < c->reg->n_roles; i++)
            buf_printf(&b, "%s%s", i ? ", " : "", c->reg->roles[i].name);
        fprintf(stderr, "variet %s: no role '%s' in %s (roles: %s)\n", e->name, name, c->config,
                b.len ? b.data : "none");
        buf_free(&b);
        return CMD_USAGE;
    }
    return CMD_OK;
}

static int run_cmd(const cmd_entry_t *e, int argc, char **argv)
{
    for (int a = 1; a < argc && strcmp(argv[a], "--"); a++)
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            cmd_help(e);
            return CMD_OK;
        }
    cmd_ctx_t c;
    memset(&c, 0, sizeof c);
    c.entry = e;
    char err[512];
    if (cli_parse(e->opts, e->rest_usage != NULL, argc, argv, &c.args, err, sizeof err))
        return cmd_usage(e, err);
    if (c.args.n_pos < e->min_pos) {
        snprintf(err, sizeof err, "missing %s", e->pos_usage ? e->pos_usage : "arguments");
        return cmd_usage(e, err);
    }
    if (c.args.n_pos > e->max_pos) {
        snprintf(err, sizeof err, "unexpected argument '%s'", c.args.pos[e->max_pos]);
        return cmd_usage(e, err);
    }
    int rc = open_target(&c);
    if (rc == CMD_OK)
        rc = e->exec(&c);
    registry_free(&c.reg);
    free(c.config);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        help(stderr);
        return CMD_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        const cmd_entry_t *e = argc > 2 ? find_cmd(argv[2]) : NULL;
        if (e)
            cmd_help(e);
        else
            help(stdout);
        return CMD_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("variet %s\n", VARIET_VERSION);
        return CMD_OK;
    }
    const cmd_entry_t *e = find_cmd(argv[1]);
    if (!e) {
        fprintf(stderr, "variet: unknown command '%s'\n\n", argv[1]);
        help(stderr);
        return CMD_USAGE;
    }
    return run_cmd(e, argc - 1, argv + 1);
}
