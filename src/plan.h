/*
 * plan.h — per-device memory prediction for (model, llama-server args,
 * hardware), before anything is launched: what llama-server's --fit will
 * change, what each device will hold, a verdict, the cheapest changes that
 * would make an overflowing configuration fit, and the feasible bounds the
 * tuner searches within.
 *
 * Pure. Placement is llama.cpp's (llama_model::load_tensors): with N
 * repeating layers, index N is the output layer and is offloaded first;
 * -ngl n offloads the last n of the N+1; offloaded layers are split over
 * GPUs by the cumulative -ts ratios (default: free memory), layer i going to
 * the first GPU whose cumulative share exceeds (i - start)/n; token_embd
 * stays on the host; -ncmoe N / --cpu-moe keep the routed-expert tensors of
 * the first N (all) layers on the host; -ot PATTERN=CPU moves the FFN
 * tensors its regex matches (checked against blk.N.ffn_{gate,up,down}_exps,
 * _shexp and ffn_gate_inp names); KV and recurrent state live with their
 * layer (host with --no-kv-offload); n_ctx is padded to 256; the KQ mask
 * spans n_ctx cells with a unified cache (-np left at auto, -kvu), n_ctx/np
 * otherwise.
 *
 * --fit (llama.cpp common/fit.cpp, on unless -fit off) is replayed on the
 * predicted memory with the free memory it measures (free before launch,
 * minus llama-server's CUDA context PLAN_CUDA_CTX_MIB, minus the recurrent
 * state its dry run allocates), its target margin (-fitt, 1024 MiB) and
 * context floor (-fitc, 4096): the context cut by interpolation when -c is
 * not given; then, unless -ngl, -ts, -ot, -ncmoe or --cpu-moe were given
 * (fit aborts, "n_gpu_layers already set by user"), dense layers back to
 * front with MoE tensors on the host, converted to full layers front to back
 * by false position, one more layer partly overflowing. plan_predict
 * predicts what that loads; plan_t.fit says what changed.
 *
 * Exact (to llama-server's own rounding): weights, KV, recurrent state,
 * output buffer; the context and placement --fit picks (given the free
 * memory it sees); the GPU compute buffer with host-resident experts
 * (-ncmoe, --cpu-moe, -ot, fit's placements) for qwen35moe and qwen3moe:
 * the first GPU's buffer then holds copies of the expert tensors the
 * scheduler offloads for prompt batches, two of the largest when host-expert
 * layers come before the first attention layer, one above the activations
 * otherwise (plan.c has the rule and why). Checked in tests/test_plan.c on
 * every GPU fixture, to 0.1%.
 * Fitted: compute buffers of devices without host-expert copies (mask +
 * activations per ubatch token from the model's widths; without flash
 * attention the KQ matrix; with a quantized cache on a GPU the larger of
 * that and one layer's K and V as f16 beside the mask and the attention's
 * activations): within 1.3% on the GPU fixtures (59 loads), 10% on CPU
 * (tests/test_e2e_plan.c).
 * Fitted: the projector's compute buffer at clip's warmup image
 * (plan_mmproj: within 7% or 6 MiB of llama-server's own reserve for 69
 * recorded encoder shapes, tests/test_plan.c).
 * The companions (roleplan.h attaches them): the projector's weights and
 * compute on the first GPU (-mmdev's, else -dev's first; the host with
 * --no-mmproj-offload or -mmdev none); the draft
 * model (-md) placed, cached and sized as llama-server builds its params
 * (plan_draft), its context the one the args give whatever fit does; both
 * added to fit's target before the model is fitted, as llama-server does.
 * Estimated: the GPU compute buffer when whole layers stay on the host
 * (-ngl below N+1: ±12% against llama.cpp's own allocator), other MoE
 * architectures' activation widths, pipeline-parallel copies. Not
 * modelled: -sm row, -ot to a GPU, -otd (the draft's), -dev for the
 * model itself (read for its draft's and projector's devices), the mmap'ed span
 * llama-server reports as CPU_Mapped (the host tensors are counted).
 */
#ifndef VARIET_PLAN_H
#define VARIET_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modelinfo.h"
#include "util.h"

#define PLAN_MAX_GPU 16
#define PLAN_MAX_SUGGEST 6
#define PLAN_MAX_OT 32

/* Device memory llama-server's own CUDA context takes before it measures
 * free memory (H100 fixture: CUDA total 81079 MiB, 80552 MiB free at start,
 * on an idle card); --fit sees free - this. */
#define PLAN_CUDA_CTX_MIB 527

typedef struct {
    char pattern[192]; /* ECMAScript-style regex as llama-server takes it */
    int dev;           /* 0 host (CPU), 1 + g for CUDAg */
} plan_ot_t;

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
    uint64_t mmproj_bytes; /* without mmproj_mi: the projector's file size (weights + a third for
                            * its compute, a rough estimate); 0: none */
    bool mmproj_offload;   /* off: --no-mmproj-offload */
    int mmproj_dev;        /* -mmdev: 0 none (the host), 1 + g for CUDAg; -1 unset (the first of -dev's GPUs) */
    uint32_t image_min_tokens, image_max_tokens; /* --image-min/max-tokens (0: the projector's) */
    /* --- since the fit model --- */
    bool ngl_set;      /* -ngl N or all (not auto): --fit leaves placement alone */
    bool kv_unified;   /* -kvu, or -np left at auto (4 slots, one shared cache) */
    bool fit;          /* --fit on (llama-server's default; -fit off clears it) */
    bool ctx_full;     /* -c 0: the full trained context, --fit may not cut it */
    bool split_row;    /* -sm row */
    uint32_t fit_ctx_min;                 /* -fitc (4096) */
    int64_t fit_target_mib[PLAN_MAX_GPU]; /* -fitt per GPU (1024 each) */
    plan_ot_t ot[PLAN_MAX_OT];            /* -ot, in order */
    int n_ot;
    /* --- the companions loaded beside the model (see plan_draft_opts) --- */
    const mi_t *mmproj_mi; /* the projector (--mmproj), borrowed; NULL: none or mmproj_bytes only */
    const mi_t *draft_mi;  /* the draft model (-md), borrowed; NULL: none */
    bool draft;            /* -md given (draft_mi says what it is) */
    int64_t draft_ngl;     /* -ngld (-1: auto / all, llama-server's default: every layer) */
    uint32_t draft_type_k, draft_type_v; /* -ctkd / -ctvd (f16) */
    uint32_t draft_ubatch; /* --spec-draft-n-ubatch (0: the model's -ub) */
    uint64_t draft_ctx;    /* -cd of builds before b11669 (0: the model's -c) */
    int64_t draft_ncmoe;   /* -ncmoed */
    bool draft_cpu_moe;    /* -cmoed */
    uint32_t dev_mask;     /* -dev: bit g for CUDAg (0: every GPU) */
    uint32_t draft_dev_mask; /* -devd: bit g for CUDAg (0: as -dev) */
    bool draft_dev_none;   /* -devd none: the draft stays on the host */
} plan_opts_t;

typedef struct {
    char name[32];     /* "CPU" (host) or "CUDA0".. */
    int64_t free_mib;  /* -1 unknown */
    uint64_t weights, kv, rs, compute, output; /* the model's own */
    uint64_t mmproj; /* the projector's weights and compute buffer */
    uint64_t draft;  /* the draft model's weights, KV, state, compute and output */
    uint64_t total;
    int layers;        /* repeating layers placed here (the output layer not counted) */
    bool output_layer;
} plan_dev_t;

typedef enum { PLAN_FITS = 0, PLAN_FITS_WITHOUT_PP, PLAN_NO_FIT, PLAN_UNKNOWN } plan_verdict_t;

typedef enum {
    PLAN_FIT_OFF = 0,   /* -fit off, or no GPU */
    PLAN_FIT_UNCHANGED, /* projected to fit as given: nothing changed */
    PLAN_FIT_CTX,       /* fit cut the context, placement as given */
    PLAN_FIT_PLACED,    /* fit set the layers / moved MoE tensors (and maybe the context) */
    PLAN_FIT_ABORTED,   /* fit gave up (reason); a context cut before that stays */
    PLAN_FIT_UNKNOWN,   /* free memory of a GPU unknown: not replayed */
} plan_fit_status_t;

/* Which part of a layer fit lets overflow (common_layer_fraction_t). */
typedef enum { PLAN_LF_NONE = 0, PLAN_LF_ATTN, PLAN_LF_UP, PLAN_LF_GATE, PLAN_LF_MOE } plan_lf_t;

typedef struct {
    plan_fit_status_t status;
    char reason[160];          /* why it aborted, "" otherwise */
    uint64_t n_ctx;            /* context llama-server loads with (0 until replayed) */
    bool ctx_cut;              /* n_ctx below what the args asked for */
    int n_dev;                 /* GPUs it placed on */
    uint32_t n_layer[PLAN_MAX_GPU]; /* layers per GPU (the output layer counted on the last) */
    uint32_t n_part[PLAN_MAX_GPU];  /* of which with MoE tensors on the host */
    plan_lf_t overflow[PLAN_MAX_GPU]; /* the first partial layer's overflowing part */
    int64_t free_mib[PLAN_MAX_GPU]; /* free memory fit measures per GPU */
    char args[256];            /* equivalent llama-server arguments, "" when unchanged */
} plan_fit_t;

typedef struct {
    plan_dev_t dev[PLAN_MAX_GPU + 1]; /* dev[0] = host */
    int n_dev;
    plan_verdict_t verdict;
    int over_dev;              /* device that overflows, -1 none */
    const char *over_what;     /* its largest component: "weights", "KV cache", ... */
    bool pp;                   /* pipeline parallelism expected */
    uint64_t pp_extra;         /* estimated extra compute with PP, per GPU */
    uint64_t n_ctx;            /* after padding (and after --fit) */
    char suggest[PLAN_MAX_SUGGEST][200];
    int n_suggest;
    plan_fit_t fit;            /* what --fit does before loading */
    int64_t ngl;               /* layers on GPUs as loaded (output layer counted) */
} plan_t;

typedef struct {
    char name[32];
    int64_t free_mib; /* free before launch, as NVML / nvidia-smi report it; -1 unknown */
} plan_gpu_t;

/* A machine to plan for: its GPUs and the host's free memory. */
typedef struct {
    plan_gpu_t gpus[PLAN_MAX_GPU];
    int n_gpu;
    int64_t host_free_mib; /* -1 unknown */
} plan_hw_t;

/* Options from a llama-server argument vector (unset → llama-server's
 * defaults). Args llama-server would reject give -EINVAL and a message
 * naming the argument. */
int plan_opts_from_args(char *const *argv, size_t n, plan_opts_t *o, char *err, size_t errlen);
void plan_opts_default(plan_opts_t *o);

/* Predict. host_free_mib / gpus[].free_mib may be -1 (unknown: no verdict
 * for that device). margin: bytes kept free per GPU. With o->fit (the
 * default) and every GPU's free memory known, --fit is replayed first and
 * the prediction is for what it loads (out->fit says what changed). */
void plan_predict(const mi_t *m, const plan_opts_t *o, const plan_gpu_t *gpus, int n_gpu,
                  int64_t host_free_mib, uint64_t margin, plan_t *out);

/* --fit alone: the context and placement llama-server's fit picks for these
 * args and free memory (see the top of this file). Pure. */
void plan_fit(const mi_t *m, const plan_opts_t *o, const plan_gpu_t *gpus, int n_gpu, plan_fit_t *out);

/* For the tuner: the smallest -ncmoe (0..n_layer) whose prediction keeps
 * `margin` bytes free on every GPU with the other args of `o` as given (fit
 * not replayed: tuner trials run with -fit off), or -1 when even all experts
 * on the host do not fit / the model has no experts / a GPU's free memory is
 * unknown. */
int64_t plan_min_ncmoe(const mi_t *m, const plan_opts_t *o, const plan_gpu_t *gpus, int n_gpu, uint64_t margin);
/* The largest -ngl (0..n_layer+1) that keeps `margin` free on every GPU
 * (fit not replayed), -1 when not even -ngl 0 fits. */
int64_t plan_max_ngl(const mi_t *m, const plan_opts_t *o, const plan_gpu_t *gpus, int n_gpu, uint64_t margin);

/* The projector's memory on the device it runs on: its weights (the
 * tensors' bytes, exact) and the compute buffer clip reserves for its
 * warmup image (a fitted estimate: see plan.c). The warmup image is the
 * largest clip prepares for: qwen-VL mergers 46 x 46 merged tokens,
 * gemma4v 16 x 16, others image_size squared, each no larger than
 * --image-max-tokens allows; its patches are what mi_image_tokens_wh
 * counts. Flash attention as the model's (-fa; auto is on). */
typedef struct {
    uint64_t weights, compute;
    uint32_t warmup_px; /* side of the warmup image */
    uint64_t patches;   /* encoder positions it becomes (before merging) */
} plan_mmproj_t;
void plan_mmproj(const mi_t *proj, const plan_opts_t *o, plan_mmproj_t *out);
/* The device (plan_t.dev index: 0 the host, 1 + g CUDAg) the projector
 * lands on with n_gpu GPUs: -mmdev, else the first of -dev's GPUs, else
 * the first GPU; the host with --no-mmproj-offload, -mmdev none or no GPU. */
int plan_mmproj_device(const plan_opts_t *o, int n_gpu);

/* The draft model's memory per device (what plan_t.dev[].draft holds), as
 * llama-server builds its params (common_base_params_to_speculative): the
 * model's context (-c as given: 0 or unset is the draft's own trained
 * context, fit does not cut it; -cd where a build has it), sequences,
 * batch sizes (-ub unless --spec-draft-n-ubatch), flash attention, KV
 * offload, -ts and -sm; its own -ngld, -ctkd/-ctvd, -ncmoed/-cmoed and
 * devices (-devd, else -dev, else every GPU; none: the host). Not
 * modelled: -otd. out->dev[] follows plan_predict's devices; fit is off
 * for the draft. Needs o->draft_mi. */
void plan_draft(const plan_opts_t *o, const plan_gpu_t *gpus, int n_gpu, plan_t *out);

/* Compute-buffer estimates alone (bytes), exposed for the accuracy harness:
 * without host-expert copies. */
uint64_t plan_compute_bytes(const mi_t *m, const plan_opts_t *o, uint64_t n_ctx, bool holds_layers, bool host);

/* The text `variet plan` prints for a prediction (plan_text.c): the
 * model's and options' summary line, --fit's change, the per-device table
 * (MiB; headroom after margin_mib on the GPUs), the verdict and the
 * cheapest fixes, appended to b. m and o are what p was predicted from. */
void plan_format(buf_t *b, const mi_t *m, const plan_opts_t *o, const plan_t *p, int64_t margin_mib);

/* "24000,24000": free MiB per GPU, named CUDA0, CUDA1... into gpus[0..
 * PLAN_MAX_GPU). 0, or -1 with the reason in err ("wants free MiB per GPU
 * like 24000,24000; got 'x'"). */
int plan_parse_gpus(const char *s, plan_gpu_t *gpus, int *n_gpu, char *err, size_t errlen);

const char *plan_verdict_name(plan_verdict_t v);
const char *plan_fit_status_name(plan_fit_status_t s);

#endif
