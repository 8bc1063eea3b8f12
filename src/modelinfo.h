/*
 * modelinfo.h — architecture facts derived from a parsed GGUF.
 *
 * Pure: reads a gguf_t, computes parameter counts, layer kinds (full
 * attention / recurrent / sliding window), attention geometry, experts,
 * bytes by tensor type and by layer, KV-cache bytes for a context and cache
 * types (only layers that hold KV), recurrent-state bytes (hybrid and SSM
 * models), and, for a multimodal projector, the vision encoder facts and
 * image-token counts. Works for architectures it does not know by reading
 * the generic `<arch>.*` keys and the tensor table; `warn` says what was
 * guessed.
 */
#ifndef VARIET_MODELINFO_H
#define VARIET_MODELINFO_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"

typedef enum { MI_LAYER_ATTN = 0, MI_LAYER_RECURRENT = 1, MI_LAYER_SWA = 2 } mi_layer_kind_t;

typedef struct {
    mi_layer_kind_t kind;
    uint32_t n_head_kv;
    uint32_t head_dim_k, head_dim_v; /* of this layer (sliding-window layers may differ) */
    bool kv_shared; /* reuses an earlier layer's KV cache (<arch>.attention.shared_kv_layers) */
    uint64_t bytes;    /* weight bytes of blk.N.* */
    uint64_t exp_bytes; /* of which routed-expert tensors (*_exps): what -ncmoe keeps on the host */
    uint64_t params;
    /* FFN tensors by the name classes llama.cpp's --fit overrides match
     * (blk.N.ffn_gate*, ffn_up*, ffn_down*: routed and shared experts,
     * router), and the routed-expert tensors alone (ffn_gate_exps or the
     * fused ffn_gate_up_exps, ffn_up_exps, ffn_down_exps): the planner
     * places them one by one and sizes the copies the GPU makes of them */
    uint64_t ffn_gate_bytes, ffn_up_bytes, ffn_down_bytes;
    uint64_t exp_gate_bytes, exp_up_bytes, exp_down_bytes;
} mi_layer_t;

typedef struct {
    char arch[64];
    char name[128];
    uint64_t file_size;
    uint32_t gguf_version;
    uint64_t n_tensors;

    uint32_t n_layer, n_embd, n_head, n_head_kv; /* n_head_kv: max over layers */
    uint32_t head_dim_k, head_dim_v;         /* full-attention layers */
    uint32_t head_dim_k_swa, head_dim_v_swa; /* sliding-window layers (= the above unless *_swa keys) */
    uint32_t n_kv_shared;                    /* last layers without a KV cache of their own */
    uint32_t n_ctx_train, n_vocab, n_ff;
    uint32_t n_expert, n_expert_used, n_expert_shared, n_ff_exp, n_ff_shexp;
    uint32_t n_swa;
    uint32_t n_layer_attn, n_layer_recurrent, n_layer_swa;
    mi_layer_t *layers; /* n_layer entries, owned */

    uint64_t n_params, n_params_active; /* active: per token for MoE */
    uint64_t weight_bytes;              /* sum of tensor bytes */
    uint64_t data_bytes;                /* data section incl. alignment padding */
    uint64_t bytes_by_type[GGUF_TT_COUNT];
    uint64_t tensors_by_type[GGUF_TT_COUNT];
    uint64_t bytes_nonlayer; /* token_embd, output, norms outside blk.N */
    uint64_t bytes_output;   /* output.weight (or the tied token_embd) + output_norm */
    uint64_t bytes_tok_embd; /* token_embd.weight: always on the host */
    uint32_t max_width;      /* widest per-token intermediate (ffn, gated q, conv): compute estimate */
    bool quantized;          /* any matrix in a block-quantized type */

    /* recurrent state (f32) per layer per sequence, in elements */
    uint32_t ssm_d_conv, ssm_d_inner, ssm_d_state, ssm_n_group, ssm_dt_rank;
    uint64_t rs_r_elems, rs_s_elems;

    /* multimodal projector */
    bool is_mmproj;
    char projector[48];
    uint32_t v_image_size, v_patch_size, v_merge, v_n_embd, v_n_layer, v_n_head, v_proj_dim, v_n_ff;
    /* dynamic resolution (smart resize to multiples of patch * merge, token
     * count clamped to [min, max]); false: resized to image_size squared */
    bool v_dynamic;
    uint32_t v_min_tokens, v_max_tokens;
    bool v_non_causal; /* the image is decoded in one ubatch: tokens capped at n_ubatch */

    char warn[256]; /* what had to be guessed, or "" */
} mi_t;

/* Derive facts from g. On success *out is owned by the caller (mi_free).
 * Fails (-EINVAL, err) only when the file lacks what every model has
 * (general.architecture) or shapes contradict each other. */
int mi_from_gguf(const gguf_t *g, mi_t **out, char *err, size_t errlen);
void mi_free(mi_t **m);

/* llama-server settings that size the sliding-window cache; 0/false =
 * default (-ub 512, no --swa-full). */
typedef struct {
    uint32_t n_ubatch;
    bool swa_full; /* --swa-full: sliding-window layers hold all n_ctx cells */
} mi_kv_opts_t;

/* Bytes of KV cache for n_ctx cells with K/V types tk/tv over the layers
 * that hold KV (sliding-window layers hold min(n_ctx, swa cells)). */
uint64_t mi_kv_bytes(const mi_t *m, uint64_t n_ctx, uint32_t tk, uint32_t tv);
/* The same with explicit settings (o may be NULL). */
uint64_t mi_kv_bytes_ex(const mi_t *m, uint64_t n_ctx, uint32_t tk, uint32_t tv, const mi_kv_opts_t *o);
/* K or V part alone (which: 0 = K, 1 = V). */
uint64_t mi_kv_part_bytes(const mi_t *m, uint64_t n_ctx, uint32_t type, int which);
uint64_t mi_kv_part_bytes_ex(const mi_t *m, uint64_t n_ctx, uint32_t type, int which, const mi_kv_opts_t *o);
/* Recurrent-state bytes for n_seq sequences (f32 R and S). */
uint64_t mi_rs_bytes(const mi_t *m, uint32_t n_seq);
/* llama-server settings that change an image's token count; 0 = default
 * (-ub 512, the projector's own --image-min-tokens / --image-max-tokens). */
typedef struct {
    uint32_t n_ubatch, min_tokens, max_tokens;
} mi_image_opts_t;

/* Tokens a w×h image becomes in llama-server (mtmd) with this projector,
 * o may be NULL (defaults). 0 when not an mmproj or the type is unknown. */
uint32_t mi_image_tokens_wh(const mi_t *m, uint32_t w, uint32_t h, const mi_image_opts_t *o);
/* Image tokens for an N×N image with llama-server's defaults. */
uint32_t mi_image_tokens(const mi_t *m, uint32_t px);

#endif
