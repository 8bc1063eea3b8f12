/*
 * cmd_hw.c — `variet hw [--json]`: the GPUs (memory, PCIe link now and at
 * most, its bandwidth), the host's CPUs and RAM, which source answered
 * (nvml / nvidia-smi / none) and the warnings a person needs before
 * splitting a model across GPUs. No GPU is not a failure: exit 0.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "hw.h"
#include "util.h"

static json_t *int_or_null(int64_t v, int64_t unknown)
{
    return v == unknown ? json_null() : json_integer((json_int_t)v);
}

static json_t *gbps_or_null(double v)
{
    return v > 0 ? json_real((double)lround(v * 1000) / 1000) : json_null();
}

static json_t *to_json(const hw_info_t *hw, const hw_warn_t *w, int n_warn)
{
    json_t *o = json_object();
    json_object_set_new(o, "source", json_string(hw_source_name(hw->source)));
    if (hw->note[0])
        json_object_set_new(o, "note", json_string(hw->note));
    json_t *gpus = json_array();
    for (int i = 0; i < hw->n_gpu; i++) {
        const hw_gpu_t *g = &hw->gpu[i];
        json_t *e = json_object();
        json_object_set_new(e, "index", json_integer(g->index));
        json_object_set_new(e, "name", json_string(g->name));
        json_object_set_new(e, "memory_total_mib", int_or_null(g->mem_total_mib, -1));
        json_object_set_new(e, "memory_used_mib", int_or_null(g->mem_used_mib, -1));
        json_object_set_new(e, "memory_free_mib", int_or_null(g->mem_free_mib, -1));
        json_t *p = json_object();
        json_object_set_new(p, "gen_current", int_or_null(g->gen_cur, 0));
        json_object_set_new(p, "width_current", int_or_null(g->width_cur, 0));
        json_object_set_new(p, "gen_max", int_or_null(g->gen_max, 0));
        json_object_set_new(p, "width_max", int_or_null(g->width_max, 0));
        json_object_set_new(p, "gbps_current", gbps_or_null(hw_pcie_gbps(g->gen_cur, g->width_cur)));
        json_object_set_new(p, "gbps_max", gbps_or_null(hw_pcie_gbps(g->gen_max, g->width_max)));
        json_object_set_new(e, "pcie", p);
        json_array_append_new(gpus, e);
    }
    json_object_set_new(o, "gpus", gpus);
    json_t *h = json_object();
    json_object_set_new(h, "cpus", int_or_null(hw->host_cpus, 0));
    json_object_set_new(h, "cpus_usable", int_or_null(hw->host_cpus_usable, 0));
    json_object_set_new(h, "ram_total_mib", int_or_null(hw->ram_total_mib, -1));
    json_object_set_new(h, "ram_available_mib", int_or_null(hw->ram_avail_mib, -1));
    json_object_set_new(o, "host", h);
    json_t *wa = json_array();
    for (int i = 0; i < n_warn; i++) {
        json_t *e = json_object();
        json_object_set_new(e, "kind", json_string(w[i].kind == HW_WARN_LINK_BELOW_MAX ? "link_below_max"
                                                                                       : "links_differ"));
        json_t *g = json_array();
        for (int k = 0; k < 2; k++)
            if (w[i].gpu[k] >= 0)
                json_array_append_new(g, json_integer(w[i].gpu[k]));
        json_object_set_new(e, "gpus", g);
        json_object_set_new(e, "text", json_string(w[i].text));
        json_array_append_new(wa, e);
    }
    json_object_set_new(o, "warnings", wa);
    return o;
}

static const char *mib_text(int64_t v, char *buf, size_t cap)
{
    if (v < 0)
        snprintf(buf, cap, "?");
    else
        snprintf(buf, cap, "%lld", (long long)v);
    return buf;
}

static const char *link_text(int gen, int width, char *buf, size_t cap)
{
    double bw = hw_pcie_gbps(gen, width);
    char g[12] = "?", w[12] = "?", b[24] = "? GB/s";
    if (gen)
        snprintf(g, sizeof g, "%d", gen);
    if (width)
        snprintf(w, sizeof w, "%d", width);
    if (bw > 0)
        snprintf(b, sizeof b, bw < 10 ? "%.2f GB/s" : "%.1f GB/s", bw);
    snprintf(buf, cap, "Gen%s x%-2s %10s", g, w, b);
    return buf;
}

static void print_text(const hw_info_t *hw, const hw_warn_t *w, int n_warn)
{
    char a[32], b[32], c[32], l1[48], l2[48];
    printf("source   %s\n", hw_source_name(hw->source));
    if (hw->note[0])
        printf("note     %s\n", hw->note);
    if (!hw->n_gpu) {
        printf("GPUs     none\n");
    } else {
        printf("%-4s %-26s %10s %10s %10s  %-21s  %s\n", "GPU", "name", "total MiB", "used MiB", "free MiB",
               "PCIe now", "PCIe max");
        for (int i = 0; i < hw->n_gpu; i++) {
            const hw_gpu_t *g = &hw->gpu[i];
            printf("%-4d %-26s %10s %10s %10s  %-21s  %s\n", g->index, g->name,
                   mib_text(g->mem_total_mib, a, sizeof a), mib_text(g->mem_used_mib, b, sizeof b),
                   mib_text(g->mem_free_mib, c, sizeof c), link_text(g->gen_cur, g->width_cur, l1, sizeof l1),
                   link_text(g->gen_max, g->width_max, l2, sizeof l2));
        }
    }
    printf("host     %ld CPUs", hw->host_cpus);
    if (hw->host_cpus_usable && hw->host_cpus_usable != hw->host_cpus)
        printf(" (%ld usable by this process)", hw->host_cpus_usable);
    if (hw->ram_total_mib >= 0)
        printf(", RAM %s total", fmt_bytes((uint64_t)hw->ram_total_mib << 20, a, sizeof a));
    if (hw->ram_avail_mib >= 0)
        printf(", %s available", fmt_bytes((uint64_t)hw->ram_avail_mib << 20, b, sizeof b));
    printf("\n");
    for (int i = 0; i < n_warn; i++)
        printf("warning: %s\n", w[i].text);
}

static int exec_hw(cmd_ctx_t *c)
{
    bool json = cmd_flag(c, "--json");
    hw_info_t *hw = xmalloc(sizeof *hw);
    char err[512];
    if (hw_probe(hw, err, sizeof err)) {
        fprintf(stderr, "variet hw: %s\n", err);
        free(hw);
        return CMD_USAGE;
    }
    hw_warn_t w[HW_MAX_WARN];
    int n_warn = hw_warnings(hw, w, HW_MAX_WARN);
    if (json) {
        json_t *o = to_json(hw, w, n_warn);
        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        putchar('\n');
        json_decref(o);
    } else {
        print_text(hw, w, n_warn);
    }
    free(hw);
    return CMD_OK;
}

static const cli_opt_t hw_opts[] = {
    {"--json", 0, NULL, "print JSON instead of text", 0},
    {0},
};

const cmd_entry_t cmd_hw_entry = {
    .name = "hw",
    .summary = "show GPUs (memory, PCIe link and bandwidth), host CPUs and RAM, and link warnings",
    .opts = hw_opts,
    .exec = exec_hw,
};
