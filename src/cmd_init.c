/*
 * cmd_init.c — `variet init MODELS_DIR`: write an engine_models.json with
 * one role per model of a folder, each sized for this machine by the
 * planner. The work is initcfg's; this file reads the options, the
 * hardware (cmd_plan_hw) and the llama-server in use, and prints.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "cmd.h"
#include "initcfg.h"
#include "util.h"

static int exec_init(cmd_ctx_t *c)
{
    initcfg_run_opts_t o = {
        .models_dir = c->args.pos[0],
        .output = cmd_opt(c, "--output") ? cmd_opt(c, "--output") : "engine_models.json",
        .force = cmd_flag(c, "--force"),
        .dry_run = cmd_flag(c, "--dry-run"),
        .drafts = cmd_flag(c, "--drafts"),
        .choose = {.min_free_mib = INITCFG_MIN_FREE_MIB},
    };
    int64_t ctx = 0;
    cmd_hw_t hw;
    if (cmd_opt_i64(c, "--ctx", 256, 1 << 24, &ctx) ||
        cmd_opt_i64(c, "--min-free", 0, 1 << 20, &o.choose.min_free_mib) || cmd_plan_hw(c, &hw))
        return CMD_USAGE;
    o.choose.ctx = (uint64_t)ctx;
    o.hw = hw.hw;
    o.hw_note = hw.source;
    char err[1024];

    /* llama-server as serve finds it, written as an absolute path */
    const char *flag = cmd_opt(c, "--llama-server");
    char *exe = backend_find_exe(flag), *exe_abs = NULL;
    if (flag && !exe) {
        fprintf(stderr, "variet init: --llama-server %s: not an executable file\n", flag);
        return CMD_USAGE;
    }
    if (exe) {
        char cwd[4096];
        exe_abs = exe[0] != '/' && getcwd(cwd, sizeof cwd) ? xasprintf("%s/%s", cwd, exe) : xstrdup(exe);
        o.llama_server = exe_abs;
    } else {
        fprintf(stderr, "variet init: warning: no llama-server found ($VARIET_LLAMA_SERVER, PATH); "
                        "_engine.llama_server is left null and the args are not checked against one\n");
    }

    buf_t out, warn;
    buf_init(&out, 0);
    buf_init(&warn, 0);
    int rc = initcfg_run(&o, &out, &warn, err, sizeof err);
    fputs(out.data ? out.data : "", stdout);
    fflush(stdout);
    for (char *l = warn.data, *nl; l && *l; l = nl ? nl + 1 : l + strlen(l)) {
        nl = strchr(l, '\n');
        fprintf(stderr, "variet init: %.*s\n", (int)(nl ? nl - l : (long)strlen(l)), l);
    }
    if (rc)
        fprintf(stderr, "variet init: %s\n", err);
    buf_free(&out);
    buf_free(&warn);
    free(exe);
    free(exe_abs);
    return rc == -EINVAL || rc == -E2BIG ? CMD_USAGE : rc ? CMD_FAIL : CMD_OK;
}

static const cli_opt_t init_opts[] = {
    {"--output", 'o', "FILE", "the file to write (default ./engine_models.json)", 0},
    {"--force", 0, NULL, "replace an existing file (the old one is kept as FILE.bak)", 0},
    {"--dry-run", 0, NULL, "print the plans and the file, write nothing", 0},
    {"--ctx", 0, "N", "the largest context to give a role (default: each model's trained context)", 0},
    {"--min-free", 0, "MiB", "memory kept free on every device (default 1024)", 0},
    CMD_OPTS_HW,
    {"--llama-server", 0, "PATH", "llama-server to write and check the args with (default: "
                                  "$VARIET_LLAMA_SERVER, then PATH)", 0},
    {"--drafts", 0, NULL, "make roles of draft models too", 0},
    {0},
};

const cmd_entry_t cmd_init_entry = {
    .name = "init",
    .pos_usage = "MODELS_DIR",
    .summary = "write engine_models.json from a folder of GGUF models: one role each, context, KV type and "
               "placement chosen by the planner for this machine",
    .opts = init_opts,
    .min_pos = 1,
    .max_pos = 1,
    .target = CMD_TARGET_NONE,
    .exec = exec_init,
};
