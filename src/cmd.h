/*
 * cmd.h — the subcommand table. Each subcommand lives in cmd_<name>.c,
 * declares what it takes (options, positionals, whether it needs the
 * registry or a ROLE) in its cmd_entry_t, and only calls public module
 * APIs. main.c parses the options, finds and loads engine_models.json and
 * finds the role once, for every command, then calls exec with the result.
 * Exit codes: 0 ok, 1 runtime failure, 2 bad input (usage, malformed file or
 * config).
 */
#ifndef VARIET_CMD_H
#define VARIET_CMD_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"
#include "hw.h"
#include "plan.h"
#include "registry.h"

typedef enum {
    CMD_TARGET_NONE,          /* no configuration */
    CMD_TARGET_REGISTRY,      /* the registry, from the discovered config */
    CMD_TARGET_ROLE,          /* the first positional is a ROLE of the registry */
    CMD_TARGET_ROLE_OPTIONAL, /* as CMD_TARGET_ROLE when a positional is given, else nothing */
} cmd_target_t;

typedef struct cmd_ctx cmd_ctx_t;

typedef struct {
    const char *name;
    const char *pos_usage;  /* positional part of the synopsis: "ROLE", "(ROLE | --model FILE)" */
    const char *summary;
    const cli_opt_t *opts;  /* ends with {0}; must hold CMD_OPT_CONFIG unless target is NONE */
    int min_pos, max_pos;   /* positional count, the ROLE included */
    const char *rest_usage; /* non-NULL: takes "-- args..." and shows this in the synopsis */
    cmd_target_t target;
    int (*exec)(cmd_ctx_t *c);
} cmd_entry_t;

/* What exec receives. main.c owns it and everything in it; exec may take
 * the registry by setting reg to NULL (then role is its to drop too). */
struct cmd_ctx {
    const cmd_entry_t *entry;
    cli_args_t args;        /* option values, positionals (ROLE first), rest */
    char *config;           /* the config file in use; NULL when none was loaded */
    registry_t *reg;        /* loaded from config (NULL for CMD_TARGET_NONE or no ROLE given) */
    const reg_role_t *role; /* the ROLE found in reg (NULL when none was asked for) */
};

/* The --config option every command with a registry declares. */
#define CMD_OPT_CONFIG                                                                                             \
    {"--config", 'c', "FILE",                                                                                      \
     "engine_models.json to use; without it $VARIET_CONFIG, ./engine_models.json, "                                \
     "${XDG_CONFIG_HOME:-~/.config}/variet/engine_models.json",                                                    \
     0}

/* The options of the commands that plan for a machine (cmd_plan_hw reads them). */
#define CMD_OPTS_HW                                                                                                \
    {"--gpus", 0, "MiB,MiB...", "free MiB per GPU to plan for, instead of what hw finds", 0},                      \
        {"--cpu-only", 0, NULL, "plan for no GPU", 0},                                                             \
        {"--host-free", 0, "MiB", "free host memory to plan for (default: MemAvailable)", 0}

typedef struct {
    plan_hw_t hw;           /* what to plan for */
    const char *source;     /* "--gpus", "--cpu-only", or what hw_probe used ("nvml", "nvidia-smi", "none") */
    bool no_gpu_found;      /* no option chose and hw_probe found no GPU (note says why) */
    char note[HW_NOTE_LEN]; /* hw_probe's note */
} cmd_hw_t;

/* The machine to plan for: --gpus (free MiB per GPU) or --cpu-only, else
 * the GPUs hw_probe finds; --host-free, else MemAvailable. The entry must
 * declare CMD_OPTS_HW. 0, or CMD_USAGE after printing what is wrong. */
int cmd_plan_hw(const cmd_ctx_t *c, cmd_hw_t *out);

extern const cmd_entry_t cmd_synth_entry;
extern const cmd_entry_t cmd_inspect_entry;
extern const cmd_entry_t cmd_hw_entry;
extern const cmd_entry_t cmd_serve_entry;
extern const cmd_entry_t cmd_bench_entry;
extern const cmd_entry_t cmd_plan_entry;
extern const cmd_entry_t cmd_tune_entry;
extern const cmd_entry_t cmd_init_entry;

enum { CMD_OK = 0, CMD_FAIL = 1, CMD_USAGE = 2 };

/* The value of option `name` (long form; must be in the entry's table):
 * NULL when absent, "" for a given flag. */
const char *cmd_opt(const cmd_ctx_t *c, const char *name);
/* Whether flag `name` was given. */
bool cmd_flag(const cmd_ctx_t *c, const char *name);
/* Option `name` as an integer in lo..hi: *v unchanged when absent. 0, or
 * CMD_USAGE after printing "variet CMD: --runs wants an integer in 1..1000,
 * got 'x'". */
int cmd_opt_i64(const cmd_ctx_t *c, const char *name, int64_t lo, int64_t hi, int64_t *v);

/* Print "variet NAME: MSG" (when msg is not NULL) and the usage line to
 * stderr; return CMD_USAGE. */
int cmd_usage(const cmd_entry_t *e, const char *msg);

#endif
