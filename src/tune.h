/*
 * tune.h — search over llama-server flags by measurement (pure part).
 *
 * A space is a few dimensions (ubatch, KV type, flash attention, threads,
 * tensor split, experts on the host, ...), each a short list of values; a
 * point picks one value per dimension. The search is coordinate descent
 * from the role's current configuration: one dimension at a time, every
 * value of it with the others held, move to the best when it beats the
 * current point by more than the measured noise, repeat until a full pass
 * changes nothing or the trial budget is spent. Confirmation passes skip
 * values that were more than 10% below their dimension's best when last
 * scanned. Ties (within noise) keep
 * the current value, so the simpler / closer configuration wins. Every
 * evaluated point is memoised (and may be pre-seeded from a resumed
 * history), so no configuration is measured twice.
 */
#ifndef VARIET_TUNE_H
#define VARIET_TUNE_H

#include <stdbool.h>
#include <stddef.h>

#define TUNE_MAX_DIMS 8
#define TUNE_MAX_VALUES 12

typedef enum {
    TUNE_DIM_UBATCH, /* -ub N (and -b N when N is larger than -b) */
    TUNE_DIM_KV,     /* -ctk T -ctv T */
    TUNE_DIM_FA,     /* -fa on|off */
    TUNE_DIM_THREADS,/* -t N -tb N */
    TUNE_DIM_TS,     /* -ts a,b */
    TUNE_DIM_NCMOE,  /* -ncmoe N */
    TUNE_DIM_MMPROJ, /* --no-mmproj-offload or not */
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

typedef enum { TUNE_OK = 0, TUNE_FAILED, TUNE_INFEASIBLE } tune_status_t;

typedef struct {
    tune_status_t status;
    double score;  /* higher is better (objective) */
    double noise;  /* relative spread of the repeated runs, e.g. 0.02 */
} tune_eval_t;

/* Measure point p. Return 0 (fill *out), or < 0 to stop the search
 * (interrupted). Called at most once per distinct point. */
typedef int (*tune_eval_fn)(void *ud, const tune_point_t *p, tune_eval_t *out);

/* Known results (e.g. from a resumed history): consulted before eval. */
typedef struct {
    tune_point_t p;
    tune_eval_t e;
} tune_known_t;

typedef struct {
    tune_point_t best;
    tune_eval_t best_eval;
    int trials;        /* evaluations made by this call (known ones excluded) */
    int visited;       /* distinct points considered (known ones included) */
    bool interrupted;
    bool budget_hit;
} tune_result_t;

/* Minimum relative gain that counts as better than `a` (noise of both). */
double tune_tie_threshold(const tune_eval_t *a, const tune_eval_t *b);

/* Coordinate descent from `start`. budget: max new evaluations (0 = no
 * limit). Returns 0, or -1 when even the start point failed and nothing
 * was found. */
int tune_search(const tune_space_t *s, const tune_point_t *start, int budget, const tune_known_t *known,
                int n_known, tune_eval_fn f, void *ud, tune_result_t *res);

/* Index of value `v` in dimension d, or -1. */
int tune_value_index(const tune_dim_t *d, const char *v);

#endif
