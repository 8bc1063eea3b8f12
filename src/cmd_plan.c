/*
 * cmd_plan.c — `variet plan (ROLE | --model FILE) [-- args...]`: predict the
 * memory a llama-server configuration needs on each device before launch,
 * against the free memory `hw` reports (or --gpus), with a verdict and the
 * cheapest changes that would make it fit.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "backend.h"
#include "cmd.h"
#include "gguf.h"
#include "modelinfo.h"
#include "plan.h"
#include "registry.h"
#include "roleplan.h"
#include "srvhelp.h"
#include "util.h"

#define MIB (1024.0 * 1024.0)

static double mib(uint64_t b) { return (double)b / MIB; }

static json_t *dev_json(const plan_dev_t *d, uint64_t margin, bool gpu)
{
    json_t *o = json_pack("{s:s,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:i,s:b}", "device", d->name, "weights_mib", mib(d->weights),
                          "kv_mib", mib(d->kv), "rs_mib", mib(d->rs), "compute_mib", mib(d->compute), "output_mib",
                          mib(d->output), "mmproj_mib", mib(d->mmproj), "draft_mib", mib(d->draft), "total_mib", mib(d->total), "layers", d->layers,
                          "output_layer", d->output_layer);
    if (d->free_mib >= 0) {
        json_object_set_new(o, "free_mib", json_integer(d->free_mib));
        json_object_set_new(o, "headroom_mib",
                            json_real((double)d->free_mib - mib(d->total) - (gpu ? mib(margin) : 0)));
    } else {
        json_object_set_new(o, "free_mib", json_null());
    }
    return o;
}

static int exec_plan(cmd_ctx_t *c)
{
    const char *role_name = c->args.n_pos ? c->args.pos[0] : NULL, *model = cmd_opt(c, "--model");
    int64_t margin_mib = 512;
    bool json = cmd_flag(c, "--json");
    char err[1024];
    char **extra = c->args.rest;
    size_t n_extra = (size_t)c->args.n_rest;

    cmd_hw_t hw;
    if (cmd_opt_i64(c, "--margin", 0, 1 << 20, &margin_mib) || cmd_plan_hw(c, &hw))
        return CMD_USAGE;
    if (!role_name == !model)
        return cmd_usage(c->entry, "give a ROLE or --model FILE (not both)");

    char **args = NULL;
    size_t n_args = 0;
    const char *path = model;
    if (c->role) {
        const reg_role_t *r = c->role;
        path = r->model_abs;
        args = xcalloc(r->n_args + n_extra + 1, sizeof *args);
        for (size_t k = 0; k < r->n_args; k++)
            args[n_args++] = r->args[k];
    } else {
        args = xcalloc(n_extra + 1, sizeof *args);
    }
    for (size_t k = 0; k < n_extra; k++) /* later occurrences win, as in llama-server */
        args[n_args++] = extra[k];

    int rc = CMD_USAGE;
    roleplan_t *rp = NULL;
    plan_opts_t o;
    /* the args against the options of the llama-server that would run them;
     * without one, a warning */
    char *exe = backend_find_exe(c->reg ? c->reg->engine.llama_server : NULL);
    if (!exe) {
        fprintf(stderr, "variet plan: warning: no llama-server found; args not checked against its options\n");
    } else {
        long bad;
        int hr = srvhelp_check_role(exe, args, n_args, NULL, &bad, err, sizeof err);
        free(exe);
        if (hr == -EINVAL) {
            char where[128];
            if (c->role && bad < (long)c->role->n_args)
                fprintf(stderr, "variet plan: %s: %s: %s\n", c->config,
                        registry_arg_where(c->role, bad, where, sizeof where), err);
            else
                fprintf(stderr, "variet plan: %s\n", err);
            goto out;
        }
        if (hr)
            fprintf(stderr, "variet plan: warning: %s; args not checked against this llama-server\n", err);
    }
    if (plan_opts_from_args(args, n_args, &o, err, sizeof err)) {
        fprintf(stderr, "variet plan: %s\n", err);
        goto out;
    }
    /* the model and what the args load beside it: the draft, the projector */
    if ((c->role && !n_extra ? roleplan_open_role(c->role, &rp, err, sizeof err)
                             : roleplan_open(path, args, n_args, &rp, err, sizeof err))) {
        fprintf(stderr, "variet plan: %s\n", err);
        goto out;
    }
    const mi_t *m = rp->mi;

    plan_t p;
    uint64_t margin = (uint64_t)margin_mib << 20;
    if (roleplan_predict(rp, args, n_args, hw.hw.gpus, hw.hw.n_gpu, hw.hw.host_free_mib, margin, &o, &p, err,
                         sizeof err)) {
        fprintf(stderr, "variet plan: %s\n", err);
        goto out;
    }
    int n_gpu = hw.hw.n_gpu;
    plan_mmproj_t mp = {0};
    plan_t dp = {0};
    if (o.mmproj_mi)
        plan_mmproj(o.mmproj_mi, &o, &mp);
    if (o.draft_mi)
        plan_draft(&o, hw.hw.gpus, n_gpu, &dp);

    if (json) {
        json_t *j = json_object();
        json_object_set_new(j, "model", json_string(path));
        if (role_name)
            json_object_set_new(j, "role", json_string(role_name));
        json_t *ja = json_array();
        for (size_t k = 0; k < n_args; k++)
            json_array_append_new(ja, json_string(args[k]));
        json_object_set_new(j, "args", ja);
        json_object_set_new(j, "n_ctx", json_integer((json_int_t)p.n_ctx));
        json_object_set_new(j, "n_seq", json_integer(o.n_seq));
        json_object_set_new(j, "n_ubatch", json_integer(o.n_ubatch));
        json_object_set_new(j, "cache_type_k", json_string(gguf_type_name(o.type_k)));
        json_object_set_new(j, "cache_type_v", json_string(gguf_type_name(o.type_v)));
        json_object_set_new(j, "margin_mib", json_integer(margin_mib));
        if (o.mmproj_mi)
            json_object_set_new(j, "mmproj", json_pack("{s:s,s:s,s:f,s:f,s:i,s:I,s:s}", "path", rp->mmproj_path,
                                                       "projector", o.mmproj_mi->projector, "weights_mib",
                                                       mib(mp.weights), "compute_mib", mib(mp.compute),
                                                       "warmup_px", (int)mp.warmup_px, "patches",
                                                       (json_int_t)mp.patches, "device",
                                                       p.dev[plan_mmproj_device(&o, n_gpu)].name));
        if (o.draft_mi)
            json_object_set_new(j, "draft", json_pack("{s:s,s:s,s:I,s:I,s:s,s:s}", "path", rp->draft_path, "arch",
                                                      o.draft_mi->arch, "n_ctx", (json_int_t)dp.n_ctx, "ngl",
                                                      (json_int_t)dp.ngl, "cache_type_k",
                                                      gguf_type_name(o.draft_type_k), "cache_type_v",
                                                      gguf_type_name(o.draft_type_v)));
        json_object_set_new(j, "fit", json_pack("{s:s,s:s,s:I,s:s}", "status", plan_fit_status_name(p.fit.status),
                                                "reason", p.fit.reason, "n_ctx", (json_int_t)p.fit.n_ctx, "args",
                                                p.fit.args));
        json_t *dv = json_array();
        for (int d = 0; d < p.n_dev; d++)
            json_array_append_new(dv, dev_json(&p.dev[d], margin, d > 0));
        json_object_set_new(j, "devices", dv);
        json_object_set_new(j, "pipeline_parallel", json_boolean(p.pp));
        if (p.pp)
            json_object_set_new(j, "pipeline_parallel_extra_mib", json_real(mib(p.pp_extra)));
        json_object_set_new(j, "verdict", json_string(plan_verdict_name(p.verdict)));
        json_object_set_new(j, "fits", json_boolean(p.verdict == PLAN_FITS || p.verdict == PLAN_FITS_WITHOUT_PP));
        if (p.over_dev >= 0)
            json_object_set_new(j, "overflow", json_pack("{s:s,s:s}", "device", p.dev[p.over_dev].name, "largest",
                                                         p.over_what));
        json_t *sg = json_array();
        for (int k = 0; k < p.n_suggest; k++)
            json_array_append_new(sg, json_string(p.suggest[k]));
        json_object_set_new(j, "suggestions", sg);
        json_object_set_new(j, "hardware_source", json_string(hw.source));
        if (m->warn[0])
            json_object_set_new(j, "warning", json_string(m->warn));
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(j);
    } else {
        printf("plan for %s%s%s\n", role_name ? role_name : "", role_name ? ": " : "", path);
        buf_t t;
        buf_init(&t, 0);
        plan_format(&t, m, &o, &p, margin_mib);
        fputs(t.data, stdout);
        buf_free(&t);
        if (hw.no_gpu_found)
            printf("  (no GPU found: %s)\n", hw.note);
    }
    rc = (p.verdict == PLAN_NO_FIT) ? 4 : CMD_OK;
out:
    roleplan_free(&rp);
    free(args);
    return rc;
}

static const cli_opt_t plan_opts[] = {
    CMD_OPT_CONFIG,
    {"--model", 'm', "FILE", "plan for a GGUF file instead of a role", CLI_OPT_IN_USAGE},
    CMD_OPTS_HW,
    {"--margin", 0, "MiB", "memory kept free on each GPU (default 512)", 0},
    {"--json", 0, NULL, "print JSON instead of text", 0},
    {0},
};

const cmd_entry_t cmd_plan_entry = {
    .name = "plan",
    .pos_usage = "(ROLE | --model FILE)",
    .summary = "predict per-device memory (weights, KV, recurrent state, compute, output) and whether it fits "
               "(exit 4 when it does not)",
    .opts = plan_opts,
    .min_pos = 0,
    .max_pos = 1,
    .rest_usage = "[-- llama-server args...]",
    .target = CMD_TARGET_ROLE_OPTIONAL,
    .exec = exec_plan,
};
