/*
 * cmd_init.c — `variet init MODELS_DIR`: write an engine_models.json with
 * one role per model of a folder, each sized for this machine by the
 * planner. The work is initcfg's; this file reads the options and the
 * hardware (hw, or --gpus / --cpu-only / --host-free) and prints.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "cmd.h"
#include "hw.h"
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
    int64_t ctx = 0, host_free = -2;
    if (cmd_opt_i64(c, "--ctx", 256, 1 << 24, &ctx) ||
        cmd_opt_i64(c, "--min-free", 0, 1 << 20, &o.choose.min_free_mib) ||
        cmd_opt_i64(c, "--host-free", 0, INT64_MAX / 2, &host_free))
        return CMD_USAGE;
    o.choose.ctx = (uint64_t)ctx;
    const char *gpus = cmd_opt(c, "--gpus");
    bool cpu_only = cmd_flag(c, "--cpu-only");
    if (gpus && cpu_only)
        return cmd_usage(c->entry, "--gpus and --cpu-only do not go together");
    char err[1024];

    hw_info_t hw;
    hw_info_init(&hw);
    char hwerr[256];
    hw_probe(&hw, hwerr, sizeof hwerr);
    if (gpus) {
        if (plan_parse_gpus(gpus, o.hw.gpus, &o.hw.n_gpu, err, sizeof err)) {
            fprintf(stderr, "variet init: --gpus %s\n", err);
            return CMD_USAGE;
        }
        o.hw_note = "--gpus";
    } else if (!cpu_only) {
        for (int k = 0; k < hw.n_gpu && o.hw.n_gpu < PLAN_MAX_GPU; k++) {
            snprintf(o.hw.gpus[o.hw.n_gpu].name, sizeof o.hw.gpus[0].name, "CUDA%d", k);
            o.hw.gpus[o.hw.n_gpu++].free_mib = hw.gpu[k].mem_free_mib;
        }
        o.hw_note = hw_source_name(hw.source);
    } else {
        o.hw_note = "--cpu-only";
    }
    o.hw.host_free_mib = host_free == -2 ? hw.ram_avail_mib : host_free;

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
    {"--gpus", 0, "MiB,MiB...", "free MiB per GPU to plan for, instead of what hw finds", 0},
    {"--cpu-only", 0, NULL, "plan for no GPU", 0},
    {"--host-free", 0, "MiB", "free host memory to plan for (default: MemAvailable)", 0},
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
