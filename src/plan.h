/*
 * plan.h — per-device memory prediction for (model, llama-server args,
 * hardware), before anything is launched, and a verdict with the cheapest
 * changes that would make an overflowing configuration fit.
 *
 * Pure. Reproduces llama.cpp's placement (b11669, llama_model::load_tensors):
 * with N repeating layers, index N is the output layer and is offloaded
 * first; -ngl n offloads the last n of the N+1; offloaded layers are split
 * over GPUs by the cumulative -ts ratios (default: free memory), layer i
 * going to the first GPU whose cumulative share exceeds (i - start)/n;
 * token_embd stays on the host; -ncmoe N / --cpu-moe keep the routed-expert
 * tensors of the first N (all) layers on the host. KV and recurrent state
 * live with their layer (host with --no-kv-offload); n_ctx is padded to 256.
 *
 * Exact (to llama-server's own rounding): weights, KV, recurrent state,
 * output buffer. Fitted: compute buffers (mask n_ctx×ubatch + activations
 * per ubatch token from the model's widths; without flash attention the
 * KQ matrix too), checked against llama-server's own lines in
 * tests/test_e2e_plan.c and bench/planner. Estimates: pipeline-parallel
 * copies, expert weights streamed to the GPU for host-resident experts, the
 * mmproj compute buffer.
 */
#ifndef VARIET_PLAN_H
#define VARIET_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modelinfo.h"

#define PLAN_MAX_GPU 16
#define PLAN_MAX_SUGGEST 6

typedef struct {
    int64_t ngl;      /* -1: all (llama-server's default) */
    double ts[PLAN_MAX_GPU];
    int n_ts;         /* 0: split by free memory */
    int64_t ncmoe;    /* experts of the first N layers on the host */
    bool cpu_moe;     /* all experts on the host */
    uint64_t n_ctx;   /* 0: the model's trained context */
    uint32_t n_seq;   /* -np (default 4: llama-server's auto) */
    uint32_t n_ubatch, n_batch;
    uint32_t type_k, type_v;
    int flash_attn;   /* 1 on, 0 off, -1 auto (= on where supported) */
    bool no_kv_offload;
    int main_gpu;
    bool split_none;  /* -sm none: everything on main_gpu */
    uint64_t mmproj_bytes; /* 0: none */
    bool mmproj_offload;
} plan_opts_t;

typedef struct {
    char name[32];     /* "CPU" (host) or "CUDA0".. */
    int64_t free_mib;  /* -1 unknown */
    uint64_t weights, kv, rs, compute, output, mmproj;
    uint64_t total;
    int layers;        /* repeating layers placed here (the output layer not counted) */
    bool output_layer;
} plan_dev_t;

typedef enum { PLAN_FITS = 0, PLAN_FITS_WITHOUT_PP, PLAN_NO_FIT, PLAN_UNKNOWN } plan_verdict_t;

typedef struct {
    plan_dev_t dev[PLAN_MAX_GPU + 1]; /* dev[0] = host */
    int n_dev;
    plan_verdict_t verdict;
    int over_dev;              /* device that overflows, -1 none */
    const char *over_what;     /* its largest component: "weights", "KV cache", ... */
    bool pp;                   /* pipeline parallelism expected */
    uint64_t pp_extra;         /* estimated extra compute with PP, per GPU */
    uint64_t n_ctx;            /* after padding */
    char suggest[PLAN_MAX_SUGGEST][200];
    int n_suggest;
} plan_t;

typedef struct {
    char name[32];
    int64_t free_mib;
} plan_gpu_t;

/* Options from a llama-server argument vector (unset → llama-server's
 * defaults). Args llama-server would reject give -EINVAL and a message
 * naming the argument. */
int plan_opts_from_args(char *const *argv, size_t n, plan_opts_t *o, char *err, size_t errlen);
void plan_opts_default(plan_opts_t *o);

/* Predict. host_free_mib / gpus[].free_mib may be -1 (unknown: no verdict
 * for that device). margin: bytes kept free per GPU. */
void plan_predict(const mi_t *m, const plan_opts_t *o, const plan_gpu_t *gpus, int n_gpu,
                  int64_t host_free_mib, uint64_t margin, plan_t *out);

/* Compute-buffer estimates alone (bytes), exposed for the accuracy harness. */
uint64_t plan_compute_bytes(const mi_t *m, const plan_opts_t *o, uint64_t n_ctx, bool holds_layers, bool host);

const char *plan_verdict_name(plan_verdict_t v);

#endif
