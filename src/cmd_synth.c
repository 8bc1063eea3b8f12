/*
 * cmd_synth.c — `variet synth`: write synthetic GGUF models.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd.h"
#include "gguf.h"
#include "synth.h"
#include "util.h"

static int list(void)
{
    char sz[32];
    int w = 16; /* the longest preset name */
    for (const synth_preset_t *p = synth_presets; p->name; p++)
        if ((int)strlen(p->name) > w)
            w = (int)strlen(p->name);
    printf("%-*s %-10s %10s  %s\n", w, "preset", "arch", "size", "shape");
    for (const synth_preset_t *p = synth_presets; p->name; p++)
        printf("%-*s %-10s %10s  %s%s\n", w, p->name, synth_arch_name(p->arch),
               fmt_bytes(synth_file_size(p, NULL), sz, sizeof sz), p->desc,
               p->tiny ? " [tiny]" : "");
    return CMD_OK;
}

static int exec_synth(cmd_ctx_t *c)
{
    synth_opts_t o = {.wtype = -1, .seed = 1};
    char err[512];

    if (cmd_flag(c, "--list"))
        return list();
    if (c->args.n_pos != 1)
        return cmd_usage(c->entry, "give a PRESET (variet synth --list shows them)");
    const char *preset = c->args.pos[0], *out = cmd_opt(c, "--output"), *type = cmd_opt(c, "--type");
    const char *seed = cmd_opt(c, "--seed");
    if (type && (o.wtype = gguf_type_from_name(type)) < 0) {
        fprintf(stderr, "variet synth: unknown weight type '%s' (f32, f16, q8_0, q4_0, q4_k)\n", type);
        return CMD_USAGE;
    }
    if (seed && !parse_u64(seed, UINT64_MAX, &o.seed)) {
        fprintf(stderr, "variet synth: --seed needs a non-negative integer, got '%s'\n", seed);
        return CMD_USAGE;
    }
    o.sparse = cmd_flag(c, "--sparse");
    const synth_preset_t *p = synth_find(preset);
    if (!p) {
        fprintf(stderr, "variet synth: unknown preset '%s'; presets:", preset);
        for (const synth_preset_t *q = synth_presets; q->name; q++)
            fprintf(stderr, " %s", q->name);
        fputc('\n', stderr);
        return CMD_USAGE;
    }
    o.name = cmd_opt(c, "--name");
    char defpath[256];
    if (!out) {
        snprintf(defpath, sizeof defpath, "%s.gguf", p->name);
        out = defpath;
    }
    if (file_make_parent(out, err, sizeof err)) {
        fprintf(stderr, "variet synth: %s\n", err);
        return CMD_FAIL;
    }
    double t0 = now_s();
    int rc = synth_write(p, &o, out, err, sizeof err);
    if (rc) {
        fprintf(stderr, "variet synth: %s\n", err);
        return rc == -22 ? CMD_USAGE : CMD_FAIL;
    }
    char sz[32];
    printf("%s: %s %s, %s in %.2f s\n", out, synth_arch_name(p->arch), p->name,
           fmt_bytes(synth_file_size(p, &o), sz, sizeof sz), now_s() - t0);
    return CMD_OK;
}

static const cli_opt_t synth_opts[] = {
    {"--output", 'o', "FILE", "where to write (default PRESET.gguf); its folder is created when missing", 0},
    {"--type", 0, "f32|f16|q8_0|q4_0|q4_k", "weight type of the matrices (default: the preset's)", 0},
    {"--seed", 0, "N", "random seed (default 1); same seed, same bytes", 0},
    {"--name", 0, "NAME", "general.name written into the file", 0},
    {"--sparse", 0, NULL, "leave tensor data as holes (zeros, no disk space): shapes only", 0},
    {"--list", 0, NULL, "list the presets", 0},
    {0},
};

const cmd_entry_t cmd_synth_entry = {
    .name = "synth",
    .pos_usage = "PRESET",
    .summary = "write a random-weight GGUF model with a real architecture's shape",
    .opts = synth_opts,
    .min_pos = 0,
    .max_pos = 1,
    .exec = exec_synth,
};
