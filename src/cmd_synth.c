/*
 * cmd_synth.c — `variet synth`: write synthetic GGUF models.
 */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "gguf.h"
#include "synth.h"
#include "util.h"

static int list(void)
{
    char sz[32];
    printf("%-16s %-10s %10s  %s\n", "preset", "arch", "size", "shape");
    for (const synth_preset_t *p = synth_presets; p->name; p++)
        printf("%-16s %-10s %10s  %s%s\n", p->name, synth_arch_name(p->arch),
               fmt_bytes(synth_file_size(p, NULL), sz, sizeof sz), p->desc,
               p->tiny ? " [tiny]" : "");
    return CMD_OK;
}

static int exec_synth(int argc, char **argv)
{
    const char *out = NULL, *preset = NULL, *name = NULL;
    synth_opts_t o = {.wtype = -1, .seed = 1};
    char err[512];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--list"))
            return list();
        if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(a, "--type") && i + 1 < argc) {
            o.wtype = gguf_type_from_name(argv[++i]);
            if (o.wtype < 0) {
                fprintf(stderr, "variet synth: unknown weight type '%s' (f32, f16, q8_0, q4_0, q4_k)\n",
                        argv[i]);
                return CMD_USAGE;
            }
        } else if (!strcmp(a, "--seed") && i + 1 < argc) {
            if (!parse_u64(argv[++i], UINT64_MAX, &o.seed)) {
                fprintf(stderr, "variet synth: --seed needs a non-negative integer, got '%s'\n", argv[i]);
                return CMD_USAGE;
            }
        } else if (!strcmp(a, "--sparse")) {
            o.sparse = true;
        } else if (!strcmp(a, "--name") && i + 1 < argc) {
            name = argv[++i];
        } else if (a[0] == '-') {
            fprintf(stderr, "variet synth: unknown or incomplete option '%s'\n", a);
            return cmd_usage(&cmd_synth_entry);
        } else if (!preset) {
            preset = a;
        } else {
            return cmd_usage(&cmd_synth_entry);
        }
    }
    if (!preset)
        return cmd_usage(&cmd_synth_entry);
    const synth_preset_t *p = synth_find(preset);
    if (!p) {
        fprintf(stderr, "variet synth: unknown preset '%s'; presets:", preset);
        for (const synth_preset_t *q = synth_presets; q->name; q++)
            fprintf(stderr, " %s", q->name);
        fputc('\n', stderr);
        return CMD_USAGE;
    }
    o.name = name;
    char defpath[256];
    if (!out) {
        snprintf(defpath, sizeof defpath, "%s.gguf", p->name);
        out = defpath;
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

const cmd_entry_t cmd_synth_entry = {
    .name = "synth",
    .usage = "synth PRESET [-o FILE] [--type f32|f16|q8_0|q4_0|q4_k] [--seed N] [--name NAME] [--sparse] | synth --list",
    .summary = "write a random-weight GGUF model with a real architecture's shape",
    .exec = exec_synth,
};
