/*
 * tune.h — the tuner as a library: search llama-server flags by
 * measurement under memory limits, decide between configurations in a way
 * that survives between-trial drift, and say why.
 *
 * A *space* is a few dimensions (threads, experts on the host, how the
 * weights load, ubatch, KV type, context, flash attention, tensor split,
 * projector placement, the draft model on or off and, with it on, the
 * draft length, context checkpoints when the objective weighs a chat's
 * second turn), each
 * a short list of values; a *point* picks one value per dimension and,
 * applied to the base args, gives one llama-server command line. The
 * value "default" leaves the option unset (llama-server's own default is
 * what gets measured, never a guess of it). The `ncmoe` dimension is
 * relative: "min" is the smallest -ncmoe the planner lets fit on the GPUs
 * for the rest of that point (ubatch, KV type, context change it), "min+2"
 * two more layers of experts on the host, "min-1" one fewer — launched only
 * when the planner's deficit is within its uncertainty band.
 *
 * The search (tune_run, tune_search.c), in phases that each end at a share
 * of the time budget:
 *   baseline  the role's args as they are (the "before" column, and the
 *             scale of normalised objectives), and llama.cpp's own
 *             placement for the role when the setup has one (ref_args);
 *             when the role's args do not run or measure below it, the
 *             search starts from it instead (tune_space_from_reference);
 *   screen    coordinate descent in the situation's order of expected
 *             effect (host experts: t, ncmoe, load, ub, kv, ctx, or from
 *             llama.cpp's placement load, ub, kv, ncmoe, t, ctx; full
 *             offload: ub, kv, ctx; CPU: t, ub, kv, fa), one short and two
 *             long runs per value;
 *   pairs     each dimension's runners-up combined across dimensions;
 *   measure   the best few screened configurations again, both scenarios
 *             repeated, each with its own noise estimate;
 *   confirm   the top two, interleaved A B A B (each a fresh load) so that
 *             drift cancels in the paired ratios; ties go to the simpler;
 *   prune     the role's extra flags, all at once and then one by one,
 *             each removal confirmed the same interleaved way;
 *   reference the winner against llama.cpp's own placement, one adjacent
 *             pair of loads and a second before the reference replaces it.
 * Feasibility: the planner skips what clearly cannot fit; a configuration
 * within its band is launched and the free memory after the runs (NVML)
 * decides, against min_free_mib.
 *
 * Measurement is a callback (tune_measure_fn): tune_trial.c launches the
 * real llama-server; tune_sim.c is a simulated landscape (with drift) for
 * CI and bench/tuner.sh; a replay answers from a recorded history
 * (tune_sim_compare and tune_replay_compare score the search against the
 * exhaustive grid there). Every measurement is appended to a JSON history
 * (resumable); tune_report.c writes the Markdown retuning log.
 */
#ifndef VARIET_TUNE_H
#define VARIET_TUNE_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modelinfo.h"
#include "plan.h"
#include "roleplan.h"

#define TUNE_MAX_DIMS 10
#define TUNE_MAX_VALUES 12

typedef enum {
    TUNE_DIM_UBATCH,  /* -ub N (and -b N when N is larger than -b) */
    TUNE_DIM_KV,      /* -ctk T -ctv T */
    TUNE_DIM_FA,      /* -fa on|off */
    TUNE_DIM_THREADS, /* -t N -tb N */
    TUNE_DIM_TS,      /* -ts a,b */
    TUNE_DIM_NCMOE,   /* -ncmoe, absolute ("16") or relative ("min", "min+2") */
    TUNE_DIM_MMPROJ,  /* --no-mmproj-offload or not */
    TUNE_DIM_CTX,     /* -c N */
    TUNE_DIM_DRAFT,   /* the role's draft model: on (as the role has it) or off (-md and --spec-type removed) */
    TUNE_DIM_DRAFT_MAX, /* the draft length, in the spelling of the llama-server in use; only with the draft on */
    TUNE_DIM_LOAD,    /* how weights load: "default"/"mmap" (mapped) or "none" (read into llama-server's
                       * pinned host buffer), in the spelling of the llama-server in use (load_opt) */
    TUNE_DIM_CTXCP,   /* -ctxcp N: context checkpoints (a model with recurrent or sliding-window layers); a
                       * dimension of the default space only when the objective weighs a chat's second turn */
} tune_dim_kind_t;

typedef struct {
    tune_dim_kind_t kind;
    const char *name;
    int n_values;
    char values[TUNE_MAX_VALUES][32];
} tune_dim_t;

typedef struct {
    int n_dims;
    tune_dim_t dims[TUNE_MAX_DIMS];
} tune_space_t;

typedef struct {
    int idx[TUNE_MAX_DIMS];
} tune_point_t;

typedef enum {
    TUNE_OK = 0,
    TUNE_FAILED,     /* llama-server refused or crashed */
    TUNE_INFEASIBLE, /* the planner: clearly does not fit (not launched) */
    TUNE_OOM,        /* launched, out of memory */
    TUNE_TIGHT,      /* ran, but left less than min_free_mib free */
} tune_status_t;

typedef enum { TUNE_SIT_CPU = 0, TUNE_SIT_FULL_GPU, TUNE_SIT_HOST_EXPERTS } tune_situation_t;

/* What one load measured. NAN where not measured. */
typedef struct {
    tune_status_t status;
    double gen, gen_min, gen_max;   /* short scenario: generation t/s (median, range) */
    double sprompt;                 /* short scenario prefill t/s (latency-dominated) */
    double lprompt, lp_min, lp_max; /* long scenario prefill t/s */
    double ttft_ms, prefill_s, cold_s;
    int n_short, n_long;
    double gen_runs[16];            /* every short run's generation t/s */
    int64_t free_mib;               /* least free MiB over the GPUs after the runs, -1 unknown */
    int pp;                         /* pipeline parallelism: 1 on, 0 fell back, -1 unknown */
    double encode_ms;               /* a role with a projector: one picture's encode ms; <= 0 or NAN: not measured */
    double turn_s;                  /* req.turn: a chat's second turn's prefill seconds (bench_run_turn); NAN: not */
    long turn_cached;               /* its prompt tokens kept from the first turn; -1 unknown */
    char error[512];
} tune_meas_t;

typedef struct {
    int short_runs, long_runs;
    int long_tokens; /* the long prompt's size (the context may cap it) */
    bool turn;       /* also a chat's second turn after the long prompt (bench_run_turn) */
} tune_req_t;

/* Launch args (model and host/port are the callee's), measure as asked,
 * stop. Fill *out; details for the history may go into rec (a JSON object
 * the caller owns). Return 0, or < 0 to stop the tuning (interrupted). */
typedef int (*tune_measure_fn)(void *ud, char *const *args, size_t n, const tune_req_t *req, tune_meas_t *out,
                               json_t *rec);

typedef struct {
    double gen, prompt, cold; /* weights: short-scenario generation, long-scenario prefill, cold start */
    double vision;            /* weight of the projector's encode speed (baseline encode ms / encode ms) */
    double turn;              /* weight of a chat's second turn after the long prompt (baseline prefill s / its) */
    /* floors ("gen>=1"): a configuration below floor × the reference's
     * figure, less TUNE_FLOOR_BAND (a load's own noise: within it a
     * configuration is not measurably below), loses TUNE_FLOOR_STEEPNESS %
     * of its score per % it falls short (smooth, so medians and paired
     * ratios still order it); 0: none */
    double gen_floor, prompt_floor;
    /* the floors' reference figures: llama.cpp's own placement when it ran
     * (tune_run fills them), else 0 and the baseline's count */
    double ref_gen, ref_lprompt;
} tune_objective_t;

#define TUNE_FLOOR_STEEPNESS 10
#define TUNE_FLOOR_BAND 0.02

/* Everything a tuning run needs; the caller owns every pointer. */
typedef struct {
    const mi_t *mi;
    const roleplan_t *rp;  /* the role's model with its draft and projector (NULL: mi alone) */
    char draft_max_opt[48]; /* the draft-length option of the llama-server in use
                             * ("--spec-draft-n-max" in b11669), "": not a dimension */
    char load_opt[16];     /* the load-mode option of the llama-server in use: "--load-mode"
                            * (b11669), "--no-mmap" (older), "": the load is not a dimension */
    char *const *args;     /* the role's args as they are (the baseline) */
    size_t n_args;
    /* llama.cpp's own placement for the role (tune_reference_args): loaded
     * in the baseline phase, the floors' reference, and compared with the
     * winner at the end, interleaved: the tuner writes it when it measures
     * better. NULL: no reference. */
    char *const *ref_args;
    size_t n_ref_args;
    const char *role;      /* for labels and the history */
    tune_space_t space;    /* from tune_space_default / tune_space_parse */
    bool space_default;    /* the space is tune_space_default's (tune_run may rebuild it from ref_args) */
    bool from_reference;   /* args are llama.cpp's own placement (tune_space_from_reference): the
                            * default space starts at fit's placement and orders host experts' dimensions
                            * for a start whose options are llama-server's defaults */
    plan_gpu_t gpus[PLAN_MAX_GPU];
    int n_gpu;
    int64_t host_free_mib; /* -1 unknown */
    long host_cpus;
    tune_situation_t situation;
    uint64_t ctx_min;      /* 0: the context is not a dimension */
    tune_objective_t obj;
    int runs;              /* repeats per scenario when measuring properly (3) */
    int budget_trials;     /* 0: none */
    double budget_s;       /* 0: none */
    int64_t min_free_mib;  /* measured free memory to keep per GPU (256) */
    tune_measure_fn measure;
    void *ud;
    void (*progress)(void *pud, const char *line); /* console lines, may be NULL */
    void *pud;
    volatile sig_atomic_t *stop; /* set by a signal handler: stop at once */
    double (*clock)(void *cud);  /* seconds; NULL: wall clock (a simulation passes its own) */
    void *cud;
} tune_setup_t;

typedef struct {
    bool ok;               /* a configuration was chosen */
    char **args;           /* the winner: the role's args, pruned, plus what was varied and found better */
    size_t n_args;
    double measured_tps;   /* median generation t/s over the winner's confirmation loads */
    double long_prompt_tps;
    int trials;            /* loads made (planner skips not counted) */
    int skipped;           /* configurations the planner ruled out */
    bool budget_hit, interrupted;
    char stop_reason[128]; /* why the search ended early, "" when it ran its course */
    /* the searched winner against llama.cpp's own placement in the final
     * comparison: median paired ratios (NAN when not compared; 0 in a
     * result tune_run did not fill) */
    double vs_ref_gen, vs_ref_lprompt;
    bool ref_won;          /* llama.cpp's own placement measured better: it is the result */
    /* the search started from llama.cpp's own placement (the role's args did
     * not run or measured below it): the space it searched, which replaces
     * the setup's for the report */
    bool from_reference;
    tune_space_t space;
    double elapsed_s;
} tune_result_t;

/* ---- space (tune_space.c) ---- */

/* Dimensions that suit the situation and the hardware, in the order the
 * screen visits them. */
void tune_space_default(tune_setup_t *s);

/* The setup to search from llama.cpp's own placement: s with args =
 * ref_args and the default space built from them (every option that the
 * placement leaves to llama-server starts at "default"; with host experts
 * "fit" comes first among the placements and the order is load, ubatch,
 * KV, ncmoe, threads, context: from llama-server's defaults the prefill
 * dimensions are what the H200 runs moved most, a smaller cache is what
 * lets more experts stay on the GPU, and the default threads are the
 * cores already). false, *out untouched, when there is no reference or
 * the space is not the default one. */
bool tune_space_from_reference(const tune_setup_t *s, tune_setup_t *out);

/* "ub=128,512;kv=f16,q8_0;fa=on,off;t=1,2;ts=1,1|3,1;ncmoe=min,min+2;ctx=32768,65536;draft=on,off;dn=4,8;load=none"
 * (one dimension per ';' or line). Values are checked with llama-server's
 * argument rules; draft and dn need a role with a draft model, dn the
 * llama-server's draft-length option (draft_max_opt). 0 or -EINVAL with err. */
int tune_space_parse(tune_setup_t *s, const char *spec, char *err, size_t errlen);

/* Situation of the role's args on this hardware (which order to search in). */
tune_situation_t tune_situation(const tune_setup_t *s);

/* GPU headroom by the planner: least (free - predicted) MiB over the
 * devices with a known free size, and the band (MiB) within which the
 * planner is not trusted to say no (128 MiB + 5% of the compute buffer).
 * When rec is not NULL its "plan_headroom_mib" gets the per-device figures.
 * 0, or -EINVAL with err when the args do not parse. */
int tune_headroom(const tune_setup_t *s, char *const *args, size_t n, double *headroom_mib, double *band_mib,
                  json_t *rec, char *err, size_t errlen);

/* llama.cpp's own placement for the role: its args without what the
 * tuner varies or places (-ngl, -ncmoe, --cpu-moe, -ts, -sm, -mg, --fit,
 * --fit-target, -ub, -b, -ctk, -ctv, -fa, -t, -tb, --no-mmproj-offload),
 * so that llama-server's --fit and defaults decide, with -c set to
 * ctx_min when there is one (the least context the user requires); the
 * rest (slots, projector, draft, template, ...) as the role has it.
 * Caller frees with args_free. */
char **tune_reference_args(const tune_setup_t *s, size_t *n);

/* Index of value v in dimension d, or -1. */
int tune_value_index(const tune_dim_t *d, const char *v);

/* Number of points in the space (the full grid). */
long tune_grid_size(const tune_space_t *sp);

/* Point number k of the grid (row-major, last dimension fastest). */
void tune_grid_point(const tune_space_t *sp, long k, tune_point_t *p);

/* llama-server args of point p on top of `base` (caller frees with
 * args_free): dimensions at "default" leave the option alone; relative
 * ncmoe is resolved with the planner; -fit off pins what is set. Returns
 * NULL when a relative ncmoe cannot be resolved (nothing fits). */
char **tune_point_args(const tune_setup_t *s, char *const *base, size_t n_base, const tune_point_t *p, size_t *n);

/* "ub=512 kv=q8_0 t=16" (caller frees). */
char *tune_point_label(const tune_space_t *sp, const tune_point_t *p);

/* Space-joined args (caller frees). */
char *tune_join_args(char *const *a, size_t n);

/* ---- search (tune_search.c) ---- */

/* Run the whole tuning. history: a JSON object {"role", "trials": [...]}
 * the caller owns; earlier trials in it (a resumed run) are reused, new
 * ones appended; save(sud) is called after each. 0 with *res filled (free
 * with tune_result_free), -1 when nothing ran successfully. */
int tune_run(const tune_setup_t *s, json_t *history, void (*save)(void *sud), void *sud, tune_result_t *res);

/* Every point of the grid once, `runs` runs of each scenario (the
 * reference bench/tuner.sh compares the search with). Same contract. */
int tune_grid(const tune_setup_t *s, json_t *history, void (*save)(void *sud), void *sud, tune_result_t *res);

void tune_result_free(tune_result_t *r);

/* Score of measured figures against the baseline's (higher is better). */
double tune_score(const tune_objective_t *o, const tune_meas_t *base, const tune_meas_t *m);

/* "gen", "prompt", or weights "gen=1,prompt=0.5,cold=0.2,vision=0.05"
 * (vision=0.05: one request in twenty carries a picture; turn=W: a chat's
 * second turn after the long prompt, bench_run_turn), with floors
 * among them: "gen=1,prompt=1,gen>=1" (generation at least the
 * reference's). At least one weight. 0 or -1. */
int tune_objective_parse(const char *s, tune_objective_t *o);

/* ---- report (tune_report.c) ---- */

/* The Markdown retuning log of a finished run (caller frees). */
char *tune_report_md(const tune_setup_t *s, const json_t *history, const tune_result_t *res, const char *model_path,
                     const char *hw_md, double old_tps, const char *result_json);

/* The same log written into dir as tune-ROLE-STAMP.md, with its plots
 * beside it (tune-ROLE-STAMP-trials.svg and -frontier.svg, tune_plot.h)
 * linked from a Plots section by relative paths; each file atomically, the
 * plots first. *md_path gets the Markdown's path (caller frees; set even
 * when its write fails). 0, or -errno with err set. */
int tune_report_write(const tune_setup_t *s, const json_t *history, const tune_result_t *res, const char *model_path,
                      const char *hw_md, double old_tps, const char *result_json, const char *dir, const char *stamp,
                      char **md_path, char *err, size_t errlen);

/* ---- measurement backends ---- */

/* The real thing (tune_trial.c): start llama-server with the args, warm
 * up, run the short scenario short_runs times and the long one long_runs
 * times, with a projector (and image_px) one picture, read the free GPU
 * memory (NVML) after the runs, stop it. A stop request interrupts the
 * load at once. */
typedef struct {
    const char *exe, *model, *log_dir, *role; /* borrowed */
    double load_timeout_s, stop_grace_s;
    int n_gpu;                    /* > 0: read free memory after the runs */
    volatile sig_atomic_t *stop;
    int n;                        /* loads made (names the logs) */
    char *short_prompt, *long_prompt; /* sized once with the server's tokenizer (owned) */
    int long_prompt_tokens;
    /* > 0: configurations with --mmproj also answer one chat carrying an
     * image_px² picture, and its encode ms is recorded */
    uint32_t image_px;
    char *image_uri;                  /* made on first use (owned) */
} tune_trial_t;
int tune_trial_measure(void *trial, char *const *args, size_t n, const tune_req_t *req, tune_meas_t *out, json_t *rec);
void tune_trial_free(tune_trial_t *t);

/* Simulated landscapes (tune_sim.c): deterministic, with run noise and
 * between-load drift; memory through the planner with a hidden error. */
typedef struct tune_sim tune_sim_t;
tune_sim_t *tune_sim_new(const char *landscape, const tune_setup_t *s, unsigned seed, char *err, size_t errlen);
void tune_sim_free(tune_sim_t **sim);
int tune_sim_measure(void *sim, char *const *args, size_t n, const tune_req_t *req, tune_meas_t *out, json_t *rec);
double tune_sim_clock(void *sim);
/* The landscape's true (noise-free) generation and long-prompt t/s of args;
 * status != TUNE_OK when they do not fit. */
tune_status_t tune_sim_truth(const tune_sim_t *sim, char *const *args, size_t n, double *gen, double *lprompt);
/* Names of the built-in landscapes, NULL-terminated. */
extern const char *const tune_sim_landscapes[];

/* The search against the exhaustive grid, bench/tuner.sh's figures. */
typedef struct {
    int rc;             /* the search's tune_run (0: it wrote res.args) */
    tune_result_t res;  /* the search's result */
    long grid;          /* configurations in the space */
    long feasible;      /* (simulated) of them, those that run */
    int grid_loads;     /* loads the grid makes: failed ones too, not the planner's rejections */
    char *best_label;   /* (simulated) the grid's best, or "llama.cpp's own placement" (owned) */
    double best_gen;    /* (replayed) the grid's best's generation t/s */
    double found_gen;   /* (replayed) the search's winner's recorded generation t/s */
    double found;       /* the winner's score / the grid's best score, 0..; 0 when nothing won */
} tune_cmp_t;
void tune_cmp_free(tune_cmp_t *c);

/* Runs the search on `landscape` (seed: its noise) from s, which it points
 * at the simulation; then the grid strategy on a second draw of the same
 * landscape for the grid's loads, and scores every configuration, llama.cpp's
 * own placement among them, by the landscape's truth with s->obj (floors
 * against the reference's truth). -1 and err for an unknown landscape. */
int tune_sim_compare(tune_setup_t *s, const char *landscape, unsigned seed, tune_cmp_t *out, char *err, size_t errlen);

/* Replay (tune_sim.c): answer from a recorded history, launching nothing;
 * a configuration it does not hold counts as failed. */
int tune_replay_measure(void *history, char *const *args, size_t n, const tune_req_t *req, tune_meas_t *out,
                        json_t *rec);
/* Runs the search on a recorded grid (a `--strategy grid` history, rec:
 * borrowed, annotated while replaying) from s, which it points at the
 * recording, and scores its winner against the grid's best by s->obj,
 * both against the grid's first successful load. */
void tune_replay_compare(tune_setup_t *s, json_t *rec, tune_cmp_t *out);

#endif
