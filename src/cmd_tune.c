/*
 * cmd_tune.c — `variet tune ROLE`: the command around the tuner library
 * (tune.h). It reads the options, the llama-server in use, the model and
 * the hardware, builds the setup, picks the measurement (the real
 * llama-server; a recorded grid with --replay or a simulated landscape
 * with --simulate, which the library compares with their grids), runs the
 * search, and writes the results: the registry (args + measured_tps,
 * previous file as .bak), the JSON history (resumable) and the Markdown
 * retuning log.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "backend.h"
#include "bench.h"
#include "cmd.h"
#include "gguf.h"
#include "hw.h"
#include "modelinfo.h"
#include "registry.h"
#include "roleplan.h"
#include "srvhelp.h"
#include "tune.h"
#include "util.h"

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

typedef struct {
    json_t *history;
    const char *path;
} saver_t;

static void save_history(void *ud)
{
    saver_t *sv = ud;
    if (!sv->path)
        return;
    char err[256];
    char *s = json_dumps(sv->history, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    if (file_write_atomic(sv->path, s, strlen(s), err, sizeof err))
        fprintf(stderr, "variet tune: cannot save history: %s\n", err);
    free(s);
}

static void progress(void *ud, const char *line)
{
    (void)ud;
    fprintf(stderr, "%s\n", line);
}

static char *hw_md(const hw_info_t *hw, const tune_setup_t *s)
{
    buf_t md;
    buf_init(&md, 0);
    buf_printf(&md, "## Hardware\n\n");
    if (hw->n_gpu == 0 && s->n_gpu == 0)
        buf_printf(&md, "No GPU (%s).\n\n", hw->note);
    else if (hw->n_gpu) {
        buf_printf(&md, "| GPU | name | free MiB | total MiB | PCIe now | PCIe max |\n|---|---|---|---|---|---|\n");
        for (int g = 0; g < hw->n_gpu; g++) {
            const hw_gpu_t *G = &hw->gpu[g];
            buf_printf(&md, "| %d | %s | %lld | %lld | Gen%d x%d (%.1f GB/s) | Gen%d x%d |\n", G->index, G->name,
                       (long long)G->mem_free_mib, (long long)G->mem_total_mib, G->gen_cur, G->width_cur,
                       hw_pcie_gbps(G->gen_cur, G->width_cur), G->gen_max, G->width_max);
        }
        buf_printf(&md, "\n");
    }
    for (int g = 0; g < s->n_gpu; g++)
        if (g >= hw->n_gpu || s->gpus[g].free_mib != hw->gpu[g].mem_free_mib)
            buf_printf(&md, "%s: %lld MiB free assumed (--gpu-free).\n", s->gpus[g].name,
                       (long long)s->gpus[g].free_mib);
    buf_printf(&md, "\nHost: %ld CPUs, %lld MiB RAM available.\n\n", hw->host_cpus, (long long)hw->ram_avail_mib);
    return md.data;
}

/* "--budget N" trials or "Nm" minutes. */
static int parse_budget(const char *b, int *trials, double *seconds)
{
    size_t l = strlen(b);
    double m;
    int64_t n;
    if (l > 1 && b[l - 1] == 'm') {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(l - 1), b);
        if (!parse_f64(tmp, &m) || m <= 0)
            return -1;
        *seconds = m * 60;
        return 0;
    }
    if (!parse_i64(b, 1, 100000, &n))
        return -1;
    *trials = (int)n;
    return 0;
}

static void dry_run(const tune_setup_t *s)
{
    long grid = tune_grid_size(&s->space), fits = 0;
    for (long k = 0; k < grid; k++) {
        tune_point_t p;
        tune_grid_point(&s->space, k, &p);
        size_t n;
        char **a = tune_point_args(s, s->args, s->n_args, &p, &n);
        char *label = tune_point_label(&s->space, &p);
        double h = 0, band = 0;
        char err[256];
        if (!a)
            printf("skip  %s (no -ncmoe makes it fit)\n", label);
        else if (tune_headroom(s, a, n, &h, &band, NULL, err, sizeof err))
            printf("skip  %s (%s)\n", label, err);
        else if (h < -band)
            printf("skip  %s (planner: %.0f MiB short)\n", label, -h);
        else {
            fits++;
            char *j = tune_join_args(a, n);
            if (isinf(h))
                printf("run   %s  [%s]\n", label, j);
            else
                printf("run   %s  [%s] (planner headroom %.0f MiB)\n", label, j, h);
            free(j);
        }
        free(label);
        args_free(&a);
    }
    printf("%ld of %ld configurations fit; the search visits a subset\n", fits, grid);
    if (s->ref_args) {
        char *j = tune_join_args(s->ref_args, s->n_ref_args);
        printf("reference [%s]: llama.cpp's own placement (--fit and the defaults decide), measured beside the "
               "search%s\n",
               j, s->space_default ? "; the search starts from it when the role's args do not run or measure below it"
                                   : "");
        free(j);
    }
}

static int simulate(tune_setup_t *s, const char *landscape, int64_t seed)
{
    char err[256];
    tune_cmp_t c;
    if (tune_sim_compare(s, landscape, (unsigned)seed, &c, err, sizeof err)) {
        fprintf(stderr, "variet tune: --simulate: %s\n", err);
        return CMD_USAGE;
    }
    char *won = c.rc == 0 ? tune_join_args(c.res.args, c.res.n_args) : xstrdup("-");
    printf("simulate %s: grid %ld configurations (%ld run), %d loads, best %s; search %d loads (%.0f%% of the "
           "grid's loads), %.1f simulated min; found %.1f%% of the grid's best; measured_tps %.2f\n  winner: %s\n",
           landscape, c.grid, c.feasible, c.grid_loads, c.best_label ? c.best_label : "-", c.res.trials,
           c.grid_loads ? 100.0 * c.res.trials / c.grid_loads : 0, c.res.elapsed_s / 60, 100 * c.found,
           c.res.measured_tps, won);
    if (c.res.stop_reason[0])
        printf("  stopped: %s\n", c.res.stop_reason);
    free(won);
    int rc = c.rc == 0 ? CMD_OK : CMD_FAIL;
    tune_cmp_free(&c);
    return rc;
}

static int replay(tune_setup_t *s, const char *path)
{
    json_error_t je;
    json_t *rec = json_load_file(path, 0, &je);
    if (!rec) {
        fprintf(stderr, "variet tune: --replay %s: %s\n", path, je.text);
        return CMD_USAGE;
    }
    tune_cmp_t c;
    tune_replay_compare(s, rec, &c);
    printf("replay: grid %d loads, best %.2f t/s; search %d loads (%.0f%% of the grid's), found %.2f t/s (%.1f%% of "
           "the grid's best score)\n",
           c.grid_loads, c.best_gen, c.res.trials, c.grid_loads ? 100.0 * c.res.trials / c.grid_loads : 0, c.found_gen,
           100 * c.found);
    int rc = c.rc == 0 ? CMD_OK : CMD_FAIL;
    tune_cmp_free(&c);
    json_decref(rec);
    return rc;
}

/* The role's JSON as the log shows it (caller frees). */
static char *role_json(const reg_role_t *role, char *const *args, size_t n, double tps)
{
    /* as the registry will write it: what draft_model_path adds is not in args */
    json_t *fa = json_array();
    char **own = xcalloc(n + 1, sizeof *own); /* borrowed strings */
    bool drafted;
    size_t k = registry_own_args(role, args, n, own, &drafted);
    for (size_t i = 0; i < k; i++)
        json_array_append_new(fa, json_string(own[i]));
    free(own);
    json_t *o = json_pack("{s:s,s:s}", "display_name", role->display_name, "model_path", role->model_path);
    if (drafted)
        json_object_set_new(o, "draft_model_path", json_string(role->draft_path));
    if (role->n_aliases) {
        json_t *al = json_array();
        for (size_t i = 0; i < role->n_aliases; i++)
            json_array_append_new(al, json_string(role->aliases[i]));
        json_object_set_new(o, "aliases", al);
    }
    json_object_set_new(o, "measured_tps", json_real(round(tps * 100) / 100));
    json_object_set_new(o, "args", fa);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(o);
    return s;
}

/* llama.cpp's own placement beside the search, from s->args as they are
 * now (a recorded grid has no such point); *ref owns it. */
static void use_reference(cmd_ctx_t *c, tune_setup_t *s, bool replaying, const char *strategy, char ***ref)
{
    args_free(ref);
    s->ref_args = NULL;
    s->n_ref_args = 0;
    if (cmd_flag(c, "--no-reference") || replaying || strcmp(strategy, "descent"))
        return;
    *ref = tune_reference_args(s, &s->n_ref_args);
    s->ref_args = *ref;
}

/* The llama-server in use, read once: its option spellings (the draft
 * length, how it loads weights other than by mmap, whether a draft needs
 * --spec-type); *exe and *help are the caller's (NULL when not found or
 * not readable: herr says why). */
static void read_server(registry_t *reg, bool sim, bool rep, bool dry, tune_setup_t *s, char **exe, srvhelp_t **help,
                        char *herr, size_t herrlen)
{
    *exe = backend_find_exe(reg->engine.llama_server);
    snprintf(herr, herrlen, "no llama-server found");
    if (*exe && srvhelp_load(*exe, NULL, help, herr, herrlen) == 0) {
        registry_set_spec_type(reg, srvhelp_find(*help, "--spec-type", 11) != NULL);
        static const char *const dmax[] = {"--spec-draft-n-max", "--draft-max", "--draft-n", "--draft", NULL};
        snprintf(s->draft_max_opt, sizeof s->draft_max_opt, "%s", srvhelp_first(*help, dmax) ?: "");
        /* a dimension with host experts (a recorded grid does not have it) */
        static const char *const lopt[] = {"--load-mode", "--no-mmap", NULL};
        snprintf(s->load_opt, sizeof s->load_opt, "%s", rep ? "" : srvhelp_first(*help, lopt) ?: "");
    } else if (sim || rep || dry) {
        snprintf(s->draft_max_opt, sizeof s->draft_max_opt, "--spec-draft-n-max"); /* b11669's */
        if (!rep)
            snprintf(s->load_opt, sizeof s->load_opt, "--load-mode");
    }
}

/* The host and its GPUs as the planner and the search see them. */
static void setup_hw(tune_setup_t *s, hw_info_t *hw, const char *sim_land)
{
    hw_info_init(hw);
    char hwerr[256];
    hw_probe(hw, hwerr, sizeof hwerr);
    s->host_cpus = hw->host_cpus_usable > 0 ? hw->host_cpus_usable : hw->host_cpus;
    s->host_free_mib = hw->ram_avail_mib;
    for (int k = 0; k < hw->n_gpu && k < PLAN_MAX_GPU; k++) {
        snprintf(s->gpus[k].name, sizeof s->gpus[k].name, "CUDA%d", k);
        s->gpus[k].free_mib = hw->gpu[k].mem_free_mib;
        s->n_gpu++;
    }
    if (sim_land && !strncmp(sim_land, "gpu", 3))
        s->host_cpus = 16; /* the GPU landscapes are shaped after a 16-core host */
}

/* The space: --space (a spec, or a file of one dimension a line) or the
 * situation's default; printed on the console. CMD_OK or CMD_USAGE. */
static int setup_space(cmd_ctx_t *c, tune_setup_t *s)
{
    const char *space = cmd_opt(c, "--space");
    if (space) {
        char *spec = NULL;
        size_t len;
        char err[512];
        if (access(space, R_OK) || file_read_all(space, 1 << 20, &spec, &len, err, sizeof err))
            spec = xstrdup(space);
        s->situation = tune_situation(s);
        int r = tune_space_parse(s, spec, err, sizeof err);
        free(spec);
        if (r) {
            fprintf(stderr, "variet tune: %s\n", err);
            return CMD_USAGE;
        }
    } else {
        tune_space_default(s);
    }
    long grid = tune_grid_size(&s->space);
    if (grid > 20000) {
        fprintf(stderr, "variet tune: the space has %ld configurations; keep it under 20000\n", grid);
        return CMD_USAGE;
    }
    static const char *const sit[] = {"CPU only", "everything on the GPUs", "experts on the host"};
    fprintf(stderr, "variet tune: role %s, %s, %d dimensions (", s->role, sit[s->situation], s->space.n_dims);
    for (int d = 0; d < s->space.n_dims; d++) {
        const tune_dim_t *dm = &s->space.dims[d];
        fprintf(stderr, "%s%s:", d ? "; " : "", dm->name);
        for (int v = 0; v < dm->n_values; v++)
            fprintf(stderr, "%s%s", v ? (dm->kind == TUNE_DIM_TS ? "|" : ",") : "", dm->values[v]);
    }
    fprintf(stderr, "), grid %ld configurations\n", grid);
    return CMD_OK;
}

/* The role's args as this build reads them: a removed flag with a known
 * replacement is migrated (the pruning pass then tests it), one without is
 * an error (CMD_USAGE). *base owns the args s points at. */
static int migrate_args(cmd_ctx_t *c, srvhelp_t *help, tune_setup_t *s, char ***base, const char *strategy,
                        char ***ref)
{
    char **mig = NULL, herr[512];
    size_t nm = 0;
    srvhelp_change_t *ch = NULL;
    size_t nc = srvhelp_migrate(help, s->args, s->n_args, &mig, &nm, &ch);
    for (size_t k = 0; k < nc; k++)
        fprintf(stderr, "variet tune: migrating %s → %s for this llama-server (the result will carry it)\n", ch[k].from,
                ch[k].to[0] ? ch[k].to : "(removed)");
    srvhelp_changes_free(&ch, nc);
    if (srvhelp_check(help, mig, nm, herr, sizeof herr) >= 0) {
        fprintf(stderr, "variet tune: role %s: %s\n", s->role, herr);
        args_free(&mig);
        return CMD_USAGE;
    }
    if (!nc) {
        args_free(&mig);
        return CMD_OK;
    }
    args_free(base);
    *base = mig;
    s->args = mig;
    s->n_args = nm;
    use_reference(c, s, false, strategy, ref);
    return CMD_OK;
}

/* A new history, or the one --resume continues; with the space searched.
 * NULL (said on stderr) when --resume finds none. Caller owns it. */
static json_t *open_history(const char *path, bool resume, const tune_setup_t *s)
{
    json_t *h;
    if (resume) {
        json_error_t je;
        h = json_load_file(path, 0, &je);
        if (!h) {
            fprintf(stderr, "variet tune: --resume: cannot read %s: %s\n", path, je.text);
            return NULL;
        }
    } else {
        h = json_pack("{s:s,s:[]}", "role", s->role, "trials");
    }
    json_t *sp = json_object();
    for (int d = 0; d < s->space.n_dims; d++) {
        json_t *vals = json_array();
        for (int v = 0; v < s->space.dims[d].n_values; v++)
            json_array_append_new(vals, json_string(s->space.dims[d].values[v]));
        json_object_set_new(sp, s->space.dims[d].name, vals);
    }
    json_object_set_new(h, "space", sp);
    return h;
}

/* The winner into the registry (atomically, previous file as .bak), the
 * retuning log beside it, and what changed on stdout. CMD_OK or CMD_FAIL. */
static int write_result(cmd_ctx_t *c, const tune_setup_t *s, const json_t *history, const tune_result_t *res,
                        const hw_info_t *hw, const char *cdir, const char *hist_path)
{
    const reg_role_t *role = c->role; /* c->reg's: gone once the registry changes */
    char err[1024];
    char *rj = role_json(role, res->args, res->n_args, res->measured_tps);
    char *hwm = hw_md(hw, s);
    time_t now = time(NULL);
    struct tm tmv;
    localtime_r(&now, &tmv);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tmv);
    char *md_path = NULL;
    if (tune_report_write(s, history, res, role->model_path, hwm, role->measured_tps, rj, cdir, stamp, &md_path, err,
                          sizeof err))
        fprintf(stderr, "variet tune: cannot write the retuning log in %s: %s\n", cdir, err);
    free(rj);
    free(hwm);
    char *old_args = tune_join_args(role->args, role->n_args), *new_args = tune_join_args(res->args, res->n_args);
    double old_tps = role->measured_tps;
    char rname[128];
    snprintf(rname, sizeof rname, "%s", role->name);
    /* the winner without the role's draft: its draft_model_path goes too */
    char *dropped = role->draft_path && !args_get(res->args, res->n_args, ARG_DRAFT_MODEL) ? xstrdup(role->draft_path)
                                                                                           : NULL;
    int rc = CMD_FAIL;
    snprintf(err, sizeof err, "invalid arguments");
    registry_t *reg = c->reg;
    if ((dropped && registry_set_draft(reg, rname, NULL)) || registry_set_args(reg, rname, res->args, res->n_args) ||
        registry_set_tps(reg, rname, res->measured_tps) || registry_save(reg, c->config, true, err, sizeof err)) {
        fprintf(stderr, "variet tune: cannot update %s: %s\n", c->config, err);
    } else {
        printf("%s: %s\n  args: %s\n    → %s\n", c->config, rname, old_args, new_args);
        if (dropped)
            printf("  draft_model_path: %s → (removed: the role is better without its draft by this objective)\n",
                   dropped);
        printf("  measured_tps: %.2f → %.2f", old_tps, res->measured_tps);
        if (!isnan(res->long_prompt_tps))
            printf(" (long prompt %.0f t/s)", res->long_prompt_tps);
        if (!isnan(res->vs_ref_gen) && res->vs_ref_gen > 0)
            printf("\n  the search's best against llama.cpp's own placement (paired): gen ×%.3f, long prompt ×%.3f%s",
                   res->vs_ref_gen, res->vs_ref_lprompt, res->ref_won ? " → llama.cpp's own is written" : "");
        printf("\n  log: %s\n  history: %s\n", md_path, hist_path);
        rc = CMD_OK;
    }
    free(dropped);
    free(old_args);
    free(new_args);
    free(md_path);
    return rc;
}

static int exec_tune(cmd_ctx_t *c)
{
    const reg_role_t *role = c->role;
    registry_t *reg = c->reg; /* main.c's */
    tune_setup_t s;
    memset(&s, 0, sizeof s);
    int64_t runs = 3, ctx = 0, min_free = 256, seed = 1;
    const char *b = cmd_opt(c, "--budget"), *strategy = cmd_opt(c, "--strategy") ?: "descent";
    if (b && parse_budget(b, &s.budget_trials, &s.budget_s))
        return cmd_usage(c->entry, "--budget wants N trials or Nm minutes");
    if (cmd_opt_i64(c, "--runs", 1, 16, &runs) || cmd_opt_i64(c, "--ctx", 256, 1 << 24, &ctx) ||
        cmd_opt_i64(c, "--min-free", 0, 1 << 20, &min_free) || cmd_opt_i64(c, "--seed", 0, INT32_MAX, &seed))
        return CMD_USAGE;
    if (strcmp(strategy, "descent") && strcmp(strategy, "grid"))
        return cmd_usage(c->entry, "--strategy is descent (default) or grid");
    if (tune_objective_parse(cmd_opt(c, "--objective") ?: "gen=1,prompt=1", &s.obj))
        return cmd_usage(c->entry, "--objective is gen, prompt or weights like gen=1,prompt=0.5,cold=0.2,vision=0.05,turn=1, "
                                  "with floors like gen>=1");
    plan_gpu_t gpu_free[PLAN_MAX_GPU]; /* --gpu-free's, over what the probe finds */
    int n_gpu_free = 0;
    char gerr[128];
    if (cmd_opt(c, "--gpu-free") && plan_parse_gpus(cmd_opt(c, "--gpu-free"), gpu_free, &n_gpu_free, gerr, sizeof gerr))
        return cmd_usage(c->entry, "--gpu-free wants MiB per GPU, e.g. 12800 or 11900,11710");
    const char *sim = cmd_opt(c, "--simulate"), *rep = cmd_opt(c, "--replay");
    bool dry = cmd_flag(c, "--dry-run"), resume = cmd_flag(c, "--resume");

    char err[1024], herr[512];
    roleplan_t *rp = NULL;
    int rc = CMD_USAGE;
    char *exe = NULL, *cdir = NULL, *hist_path = NULL, **ref = NULL, **base = NULL; /* ours */
    json_t *history = NULL;
    srvhelp_t *help = NULL;
    tune_trial_t trial;
    memset(&trial, 0, sizeof trial);
    read_server(reg, sim, rep, dry, &s, &exe, &help, herr, sizeof herr);
    /* the model with what it loads beside it (a draft, a projector): the
     * planner's gate counts them */
    if (roleplan_open_role(role, &rp, err, sizeof err)) {
        fprintf(stderr, "variet tune: %s\n", err);
        goto out;
    }
    if (!sim && !rep && roleplan_check_draft(role->model_abs, role->args, role->n_args, err, sizeof err)) {
        fprintf(stderr, "variet tune: %s: %s.%s: %s\n", c->config, role->name,
                role->draft_abs ? "draft_model_path" : "args", err);
        goto out;
    }
    s.mi = rp->mi;
    s.rp = rp;
    s.role = role->name;
    s.args = role->args;
    s.n_args = role->n_args;
    s.runs = (int)runs;
    s.min_free_mib = min_free;
    s.ctx_min = cmd_flag(c, "--pin-ctx") ? 0 : (uint64_t)ctx;
    s.stop = &interrupted;
    s.progress = progress;
    hw_info_t hw;
    setup_hw(&s, &hw, sim);
    if (n_gpu_free) {
        memcpy(s.gpus, gpu_free, (size_t)n_gpu_free * sizeof *gpu_free);
        s.n_gpu = n_gpu_free;
    }
    /* the required context is held by every trial (a dimension from there up unless --pin-ctx) */
    if (ctx > 0 && cmd_flag(c, "--pin-ctx")) {
        char cs[32];
        snprintf(cs, sizeof cs, "%lld", (long long)ctx);
        size_t n_base;
        base = args_set(role->args, role->n_args, ARG_CTX_SIZE, cs, &n_base);
        s.args = base;
        s.n_args = n_base;
    }
    if ((rc = setup_space(c, &s)) != CMD_OK)
        goto out;
    use_reference(c, &s, rep != NULL, strategy, &ref);
    if (dry) {
        dry_run(&s);
        rc = CMD_OK;
        goto out;
    }
    if (sim) {
        rc = simulate(&s, sim, seed);
        goto out;
    }
    if (rep) {
        rc = replay(&s, rep);
        goto out;
    }

    rc = CMD_FAIL;
    if (!exe) {
        fprintf(stderr, "variet tune: no llama-server found (set _engine.llama_server or $VARIET_LLAMA_SERVER)\n");
        goto out;
    }
    if (!help)
        fprintf(stderr, "variet tune: cannot read %s --help (%s); the role's args are not checked against it\n", exe,
                herr);
    else if ((rc = migrate_args(c, help, &s, &base, strategy, &ref)) != CMD_OK)
        goto out;
    cdir = xstrdup(reg->dir ? reg->dir : ".");
    hist_path = xasprintf("%s/tune-%s.json", cdir, role->name);
    if (!(history = open_history(hist_path, resume, &s))) {
        rc = CMD_USAGE;
        goto out;
    }

    trial.exe = exe;
    trial.model = role->model_abs;
    trial.log_dir = cdir;
    trial.role = role->name;
    trial.load_timeout_s = reg->engine.load_timeout_s;
    trial.stop_grace_s = reg->engine.stop_grace_s;
    bench_set_stall_timeout(reg->engine.upstream_timeout_s);
    trial.n_gpu = hw.n_gpu;
    trial.stop = &interrupted;
    /* a role with a projector: every load also encodes one picture */
    trial.image_px = 1024;
    s.measure = tune_trial_measure;
    s.ud = &trial;

    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    bench_set_abort(&interrupted);

    saver_t sv = {history, hist_path};
    tune_result_t res;
    int r = !strcmp(strategy, "grid") ? tune_grid(&s, history, save_history, &sv, &res)
                                      : tune_run(&s, history, save_history, &sv, &res);
    save_history(&sv);
    bench_set_abort(NULL);
    if (res.stop_reason[0])
        fprintf(stderr, "variet tune: %s after %d loads\n", res.stop_reason, res.trials);
    if (res.interrupted) {
        fprintf(stderr, "variet tune: interrupted; history in %s (continue with --resume)\n", hist_path);
        rc = 130;
    } else if (r != 0) {
        fprintf(stderr, "variet tune: no configuration ran successfully (see %s)\n", hist_path);
    } else {
        rc = write_result(c, &s, history, &res, &hw, cdir, hist_path);
    }
    tune_result_free(&res);
out:
    args_free(&base);
    args_free(&ref);
    tune_trial_free(&trial);
    json_decref(history);
    free(hist_path);
    free(cdir);
    free(exe);
    srvhelp_free(&help);
    roleplan_free(&rp);
    return rc;
}

static const cli_opt_t tune_opts[] = {
    CMD_OPT_CONFIG,
    {"--space", 0, "SPEC|FILE",
     "dimensions and values, e.g. 'ub=128,512;kv=f16,q8_0;t=8,16;ncmoe=min,min+2;ctx=32768,65536' (default: from the "
     "situation and the hardware)",
     0},
    {"--budget", 0, "N|Nm", "stop after N loads or N minutes (phases get shares of it)", 0},
    {"--runs", 0, "N", "runs of each scenario when a candidate is measured properly, 1..16 (default 3)", 0},
    {"--ctx", 0, "N", "the context every configuration must hold; larger contexts are tried too unless --pin-ctx",
     0},
    {"--pin-ctx", 0, NULL, "hold the context at --ctx exactly", 0},
    {"--min-free", 0, "MiB", "GPU memory that must stay free after the runs, measured (default 256)", 0},
    {"--objective", 0, "W",
     "weights of short-scenario generation, long-scenario prefill, cold start, (a role with --mmproj) a 1024 px "
     "picture's encode time and a chat's second turn (turn: its prefill after the long prompt, with context "
     "checkpoints a dimension on a hybrid model), e.g. gen=1,vision=0.05, and floors against llama.cpp's own "
     "placement, e.g. "
     "gen=1,prompt=1,gen>=1 (generation not below llama.cpp's own placement, or the role's args without one, "
     "less 2%; default gen=1,prompt=1)",
     0},
    {"--no-reference", 0, NULL,
     "do not measure llama.cpp's own placement (the role's args without what the tuner varies, --fit deciding) "
     "beside the search; by default the winner is compared with it, interleaved, and it is written when it is better",
     0},
    {"--resume", 0, NULL, "continue from tune-ROLE.json without measuring anything twice", 0},
    {"--dry-run", 0, NULL, "list the space with the planner's run/skip verdicts; launch nothing", 0},
    {"--strategy", 0, "descent|grid", "the phased search (default) or every configuration once", 0},
    {"--replay", 0, "HISTORY", "run the search on a recorded grid instead of launching (bench/tuner.sh)", 0},
    {"--simulate", 0, "LANDSCAPE",
     "run the search on a simulated landscape (gpu-host-experts, gpu-full, gpu-full-pair, cpu-tiny, cpu-flat); writes nothing", 0},
    {"--gpu-free", 0, "MiB[,MiB]", "free memory per GPU the planner assumes (with --simulate or --dry-run)", 0},
    {"--seed", 0, "N", "seed of the simulated noise (default 1)", 0},
    {0},
};

const cmd_entry_t cmd_tune_entry = {
    .name = "tune",
    .pos_usage = "ROLE",
    .summary = "search llama-server flags by measurement under memory limits; write the winner and a retuning log",
    .opts = tune_opts,
    .min_pos = 1,
    .max_pos = 1,
    .target = CMD_TARGET_ROLE,
    .exec = exec_tune,
};
