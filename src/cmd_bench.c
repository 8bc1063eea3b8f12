/*
 * cmd_bench.c — `variet bench ROLE`: measure a role through a running
 * gateway, or start its llama-server directly when none runs; print
 * median/min/max per scenario; --write stores the short scenario's median
 * generation t/s as the role's measured_tps.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "bench.h"
#include "cmd.h"
#include "loadlog.h"
#include "proc.h"
#include "registry.h"
#include "util.h"

typedef struct {
    const bench_scenario_t *sc;
    long prompt_n;
    bench_stats_t st;
} result_t;

static void print_table(const char *role, const char *via, double cold_s, const result_t *r, int nr)
{
    printf("role %s via %s", role, via);
    if (cold_s > 0)
        printf(", cold start %.2f s", cold_s);
    printf("\n%-6s %7s %9s | %-26s | %-26s | %-20s | %s\n", "", "prompt", "generated", "prompt t/s  med (min-max)",
           "gen t/s  med (min-max)", "TTFT ms  med (max)", "prefill s");
    for (int i = 0; i < nr; i++) {
        const bench_stats_t *s = &r[i].st;
        char a[32], b[32], c[32];
        snprintf(a, sizeof a, "%.1f (%.1f-%.1f)", s->med.prompt_tps, s->min.prompt_tps, s->max.prompt_tps);
        snprintf(b, sizeof b, "%.2f (%.2f-%.2f)", s->med.gen_tps, s->min.gen_tps, s->max.gen_tps);
        snprintf(c, sizeof c, "%.1f (%.1f)", s->med.ttft_ms, s->max.ttft_ms);
        printf("%-6s %7ld %9ld | %-26s | %-26s | %-20s | %.3f\n", r[i].sc->name, s->med.prompt_n, s->med.gen_n, a,
               b, c, s->med.prefill_s);
    }
}

static json_t *sample_json(const bench_sample_t *s)
{
    return json_pack("{s:f,s:f,s:f,s:f,s:f,s:I,s:I}", "prompt_tps", s->prompt_tps, "gen_tps", s->gen_tps,
                     "ttft_ms", s->ttft_ms, "prefill_s", s->prefill_s, "wall_s", s->wall_s, "prompt_n",
                     (json_int_t)s->prompt_n, "gen_n", (json_int_t)s->gen_n);
}

static int exec_bench(cmd_ctx_t *c)
{
    const char *scenario = cmd_opt(c, "--scenario") ?: "both", *url = cmd_opt(c, "--url");
    const char *config = c->config;
    int64_t runs = 3;
    bool write = cmd_flag(c, "--write"), json = cmd_flag(c, "--json"), direct = cmd_flag(c, "--direct");
    char err[1024];

    if (cmd_opt_i64(c, "--runs", 1, 1000, &runs))
        return CMD_USAGE;
    if (url && direct)
        return cmd_usage(c->entry, "--url and --direct exclude each other");
    const bench_scenario_t *scs[2];
    int nsc = 0;
    if (!strcmp(scenario, "short") || !strcmp(scenario, "both"))
        scs[nsc++] = &bench_short;
    if (!strcmp(scenario, "long") || !strcmp(scenario, "both"))
        scs[nsc++] = &bench_long;
    if (!nsc) {
        fprintf(stderr, "variet bench: --scenario is short, long or both, got '%s'\n", scenario);
        return CMD_USAGE;
    }
    registry_t *reg = c->reg;
    const reg_role_t *role = c->role;

    char *base = NULL, *model = NULL, *log_path = NULL;
    const char *via = NULL;
    pid_t pid = 0;
    double cold_s = 0;
    loadlog_t rep;
    loadlog_init(&rep);
    int rc = CMD_FAIL;
    result_t res[2];
    memset(res, 0, sizeof res);

    if (!direct) {
        char *try = url ? xstrdup(url) : xasprintf("http://%s:%d", reg->engine.host, reg->engine.port);
        int code = 0;
        char *body = NULL;
        if (bench_http_get(try, "/v1/models", &code, &body) == 0 && code == 200 && strstr(body, role->name)) {
            base = try;
            model = xstrdup(role->name);
            via = "gateway";
        } else {
            free(try);
            if (url) {
                fprintf(stderr, "variet bench: %s does not answer GET /v1/models with role %s (HTTP %d)\n", url,
                        role->name, code);
                free(body);
                goto out;
            }
        }
        free(body);
    }
    if (!base) {
        char *exe = backend_find_exe(reg->engine.llama_server);
        if (!exe) {
            fprintf(stderr, "variet bench: no llama-server found (set _engine.llama_server or $VARIET_LLAMA_SERVER)\n");
            goto out;
        }
        log_path = xasprintf("/tmp/variet-bench-%s-%ld.log", role->name, (long)getpid());
        int r = bench_spawn(exe, role->model_abs, role->args, role->n_args, log_path, reg->engine.load_timeout_s, &pid,
                            &base, &cold_s, &rep, err, sizeof err);
        free(exe);
        if (r) {
            fprintf(stderr, "variet bench: role %s: %s\n", role->name, err);
            goto out;
        }
        via = "llama-server started by bench";
    }
    if (!json)
        fprintf(stderr, "variet bench: %s via %s (%s), %lld runs + warm-up per scenario\n", role->name, via, base,
                (long long)runs);

    bench_sample_t *samples = xcalloc((size_t)runs, sizeof *samples);
    for (int k = 0; k < nsc; k++) {
        char *prompt = NULL;
        long ptok = 0;
        if (bench_prompt(base, model, scs[k]->prompt_tokens, &prompt, &ptok, err, sizeof err)) {
            fprintf(stderr, "variet bench: %s\n", err);
            free(samples);
            goto out;
        }
        bench_sample_t warm;
        if (bench_run(base, model, prompt, scs[k]->n_predict, &warm, err, sizeof err)) {
            fprintf(stderr, "variet bench: %s warm-up: %s\n", scs[k]->name, err);
            free(prompt);
            free(samples);
            goto out;
        }
        for (int i = 0; i < runs; i++) {
            if (bench_run(base, model, prompt, scs[k]->n_predict, &samples[i], err, sizeof err)) {
                fprintf(stderr, "variet bench: %s run %d: %s\n", scs[k]->name, i + 1, err);
                free(prompt);
                free(samples);
                goto out;
            }
            if (!json)
                fprintf(stderr, "  %s %d/%lld: prompt %.1f t/s, gen %.2f t/s, TTFT %.1f ms\n", scs[k]->name, i + 1,
                        (long long)runs, samples[i].prompt_tps, samples[i].gen_tps, samples[i].ttft_ms);
        }
        res[k].sc = scs[k];
        res[k].prompt_n = ptok;
        bench_stats(samples, (int)runs, &res[k].st);
        free(prompt);
    }
    free(samples);

    if (!strcmp(via, "gateway")) {
        /* the gateway's own record of the role's last cold start */
        int code = 0;
        char *body = NULL;
        if (bench_http_get(base, "/status", &code, &body) == 0 && code == 200) {
            json_t *j = json_loads(body, 0, NULL);
            json_t *ll = json_object_get(json_object_get(json_object_get(json_object_get(j, "roles"), role->name),
                                                         "last_load"), "seconds");
            cold_s = json_number_value(ll);
            json_decref(j);
        }
        free(body);
    }

    if (json) {
        json_t *o = json_pack("{s:s,s:s,s:f}", "role", role->name, "via", via, "cold_start_s", cold_s);
        json_t *sc = json_object();
        for (int k = 0; k < nsc; k++)
            json_object_set_new(sc, res[k].sc->name,
                                json_pack("{s:i,s:o,s:o,s:o}", "runs", res[k].st.n, "median", sample_json(&res[k].st.med),
                                          "min", sample_json(&res[k].st.min), "max", sample_json(&res[k].st.max)));
        json_object_set_new(o, "scenarios", sc);
        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(o);
    } else {
        print_table(role->name, via, cold_s, res, nsc);
        for (int d = 0; d < rep.n_dev; d++)
            printf("  %-12s model %.2f MiB, KV %.2f MiB, RS %.2f MiB, compute %.2f MiB\n", rep.dev[d].name,
                   rep.dev[d].model_mib, rep.dev[d].kv_mib, rep.dev[d].rs_mib, rep.dev[d].compute_mib);
    }
    if (write) {
        const result_t *s = NULL;
        for (int k = 0; k < nsc; k++)
            if (res[k].sc == &bench_short)
                s = &res[k];
        if (!s) {
            fprintf(stderr, "variet bench: --write needs the short scenario\n");
            goto out;
        }
        double old = role->measured_tps, now = s->st.med.gen_tps;
        char name[128];
        snprintf(name, sizeof name, "%s", role->name);
        if (registry_set_tps(reg, name, now) || registry_save(reg, config, true, err, sizeof err)) {
            fprintf(stderr, "variet bench: cannot write %s: %s\n", config, err);
            goto out;
        }
        fprintf(json ? stderr : stdout, "%s.measured_tps: %.2f -> %.2f (written to %s, previous kept as %s.bak)\n",
                name, old, now, config, config);
    }
    rc = CMD_OK;
out:
    if (pid > 0)
        proc_stop(pid, reg->engine.stop_grace_s);
    if (log_path && rc == CMD_OK)
        unlink(log_path);
    free(log_path);
    free(base);
    free(model);
    return rc;
}

static const cli_opt_t bench_opts[] = {
    CMD_OPT_CONFIG,
    {"--scenario", 0, "short|long|both", "short: ~170 prompt tokens, 300 generated; long: ~3,100 and 128 (default both)",
     0},
    {"--runs", 0, "N", "measured runs per scenario after a warm-up (default 3)", 0},
    {"--write", 0, NULL, "store the short scenario's median generation t/s as the role's measured_tps", 0},
    {"--json", 0, NULL, "print JSON instead of the table", 0},
    {"--url", 0, "URL", "measure through the gateway at URL (default: the config's host:port when it serves the role)",
     0},
    {"--direct", 0, NULL, "start the role's llama-server instead of using a gateway", 0},
    {0},
};

const cmd_entry_t cmd_bench_entry = {
    .name = "bench",
    .pos_usage = "ROLE",
    .summary = "measure a role's prompt t/s, generation t/s and time to first token (short ~170 / long ~3100 tokens)",
    .opts = bench_opts,
    .min_pos = 1,
    .max_pos = 1,
    .target = CMD_TARGET_ROLE,
    .exec = exec_bench,
};
