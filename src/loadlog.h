/*
 * loadlog.h — llama-server's load log (verbosity -lv 4) → load report.
 *
 * Pure: feed lines (loadlog_line) or a whole text (loadlog_parse). Lines it
 * reads (build b11669, see ../shared/fixtures/llama-server/):
 *   load_tensors:   CPU_Mapped model buffer size =     0.41 MiB
 *   llama_kv_cache:        CPU KV buffer size =     0.50 MiB
 *   llama_memory_recurrent:      CUDA0 RS buffer size =    62.81 MiB
 *   sched_reserve:        CPU compute buffer size =     3.14 MiB
 *   llama_context:  CUDA_Host  output buffer size =     0.95 MiB
 *   ...: pipeline parallelism enabled | ...retrying without pipeline parallelism
 *   common_params_fit_impl: projected to use N MiB of device memory vs. M MiB ...
 *   common_fit_params: failed to fit params to free device memory: WHY, abort
 *   common_params_fit_impl:   - CUDA0 (NAME): 41 layers (22 overflowing), X MiB used, Y MiB free
 *   common_params_fit_impl: set ngl_per_device[0].(n_layer, n_part, overflow_type)=(41, 22, ATTN), ...
 *   common_param:   - CUDA0   : NVIDIA H100 80GB HBM3 (81079 MiB, 80552 MiB free)
 *   ggml_backend_cuda_buffer_type_alloc_buffer: allocating X MiB on device D: cudaMalloc failed: out of memory
 *   llama_context: n_ctx = / n_batch = / n_ubatch = / flash_attn = / n_seq_max =
 *   srv    load_model: loaded multimodal model, 'PATH'
 *   llama_server: listening on http://HOST:PORT
 *   clip_ctx: CLIP using CUDA0 backend          (the projector's device)
 *   load_hparams: model size:         1.26 MiB  (the projector's weights)
 *   reserve_compute_meta:        CPU compute buffer size =    39.39 MiB
 *                                               (the projector's, not the model's)
 * and a draft model's buffers after
 *   common_speculative_init_result: loading draft model 'FILE'
 * (the same buffer lines, its own context; llama-server loads the model,
 * then the draft, then the projector).
 * Each line may carry llama.cpp's "M.SS.mmm.uuu L " prefix (minutes,
 * seconds, ms, µs since start), which gives the load time.
 */
#ifndef VARIET_LOADLOG_H
#define VARIET_LOADLOG_H

#include <stdbool.h>
#include <stddef.h>

#define LOADLOG_MAX_DEV 16

typedef struct {
    char name[32]; /* "CPU", "CUDA0", "CPU_Mapped", "CUDA_Host" as printed */
    /* the model's and its draft's buffers by kind (compute: each context's
     * last reserve, summed) */
    double model_mib, kv_mib, rs_mib, compute_mib, output_mib;
    double mmproj_mib; /* the projector's compute buffer on this device */
    double total_mib, free_mib; /* device list at start (after the backend's own context); -1 absent */
    double draft_mib;  /* of the buffers above, the draft model's (all kinds; by kind: loadlog_t.draft) */
    double own_compute_mib[2]; /* internal: last reserve of the model, of the draft */
} loadlog_dev_t;

typedef struct {
    loadlog_dev_t dev[LOADLOG_MAX_DEV];
    int n_dev;
    loadlog_dev_t draft[LOADLOG_MAX_DEV]; /* the draft model's buffers alone, by kind */
    int n_draft;
    bool has_draft;                       /* its loading was seen */
    long draft_n_ctx;                     /* the draft's context (-1 absent) */
    int phase;                            /* internal: 0 model, 1 draft, 2 projector */
    int pipeline_parallel; /* -1 not mentioned, 1 enabled, 0 fell back */
    double fit_projected_mib, fit_free_mib; /* -1 when absent */
    /* where --fit placed the layers, per GPU, from its last summary lines
     * ("  - CUDA0 (...): 41 layers (22 overflowing), ...") and the first
     * partial layer's overflowing part ("...overflow_type)=(41, 22, ATTN)") */
    struct {
        char dev[16];
        int layers, overflowing;
    } fit_dev[4];
    int n_fit_dev;
    char fit_overflow[8]; /* "ATTN", "UP", "GATE", "MOE" or "" */
    char fit_abort[160]; /* why --fit gave up ("n_gpu_layers already set by user to 999"), "" if it did not */
    bool oom;
    char oom_device[32];
    double oom_mib;
    char oom_what[32];  /* "the KV cache", "the compute buffer", ... or "" */
    char error[256]; /* first error line's message, "" if none */
    long n_ctx, n_batch, n_ubatch, n_seq_max; /* -1 when absent */
    char flash_attn[16];
    char mmproj[512]; /* the projector loaded (--mmproj PATH as llama-server names it), "" none */
    char listen[128]; /* "http://127.0.0.1:8080" */
    bool ready;       /* "listening on" seen */
    double t_last;    /* timestamp of the last stamped line, seconds */
    double t_ready;   /* timestamp of the listening line, -1 if not seen */
    char mmproj_device[32]; /* where the projector runs ("CPU", "CUDA0"), "" without one */
    double mmproj_model_mib; /* its weights, -1 absent */
} loadlog_t;

void loadlog_init(loadlog_t *r);
/* One line (without the newline). */
void loadlog_line(loadlog_t *r, const char *line, size_t len);
/* A whole log. */
void loadlog_parse(loadlog_t *r, const char *text, size_t len);

/* Where --fit placed the layers, for a reader: "CUDA0 41 layers, 22 with
 * experts on the host (the first: ATTN)"; "" (returns false) when the log
 * shows no placement by fit. */
bool loadlog_fit_placement(const loadlog_t *r, char *out, size_t cap);

/* What llama-server logs for the images of one request (-lv 4; the log
 * from the request's start on), build b11669:
 *   slot encode_mtmd_: id  0 | task 0 | encoding mtmd batch from idx = 37, n_chunks = 1
 *   decoding image batch 1/1, n_tokens_batch = 400
 *   image decoded (batch 1/1) in 43 ms
 * The projector encodes between the first two lines (mtmd_batch_encode),
 * the text model decodes the image's embeddings after them. */
typedef struct {
    int n_images;     /* n_chunks over the "encoding mtmd batch" lines */
    long tokens;      /* image tokens: n_tokens_batch summed */
    double encode_ms; /* the projector's time by the lines' timestamps; -1 without them */
    double decode_ms; /* the text model's time on the images' tokens */
    bool complete;    /* every batch begun was decoded (the log is written by a thread) */
} loadlog_images_t;

/* Parse text (from a request's start) into *out. Pure. */
void loadlog_images(const char *text, size_t len, loadlog_images_t *out);

/* Totals over devices whose name starts with `prefix` ("" = all); what:
 * "model", "kv", "rs", "compute", "output" (the model's and its draft's),
 * "mmproj" (the projector's compute buffer), "draft" (the draft's buffers,
 * all kinds), or "draft_model", "draft_kv", "draft_rs", "draft_compute",
 * "draft_output" (the draft's alone, by kind). */
double loadlog_sum(const loadlog_t *r, const char *prefix, const char *what);

#endif
