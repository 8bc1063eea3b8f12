/*
 * synth.h — synthetic random-weight GGUF models with real shapes.
 *
 * Each preset names an architecture llama.cpp knows (llama, qwen3moe,
 * qwen35moe, its dense sibling qwen35, gemma4, and `clip` for multimodal
 * projectors) and a shape. A
 * text model carries the architecture's real tensor names, shapes and
 * metadata keys, a byte-fallback SentencePiece vocabulary padded to the
 * preset's vocab size and a chat template, so the real llama-server loads it
 * and generates (gibberish) text. A projector carries the vision encoder of
 * its projector type (gemma4v, qwen3vl_merger) with an output width equal to
 * the text model it pairs with, so `llama-server -m TEXT --mmproj PROJ`
 * encodes images with it. Weights are random with finite scales; data is
 * streamed (constant memory) so the full-size presets can be written too.
 */
#ifndef VARIET_SYNTH_H
#define VARIET_SYNTH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "gguf.h"

typedef enum { SYNTH_LLAMA, SYNTH_QWEN3MOE, SYNTH_QWEN35MOE, SYNTH_GEMMA4, SYNTH_CLIP, SYNTH_QWEN35 } synth_arch_t;

/* Projector types (SYNTH_CLIP), named as llama.cpp's tools/mtmd names them. */
typedef enum { SYNTH_PROJ_NONE, SYNTH_PROJ_GEMMA4V, SYNTH_PROJ_QWEN3VL } synth_proj_t;

typedef struct {
    const char *name;
    const char *desc;
    synth_arch_t arch;
    /* text models: the decoder. clip: n_layer/n_embd/n_head/n_ff describe the
     * vision encoder. gemma4: n_head_kv and head_dim are those of the global
     * (full-attention) layers. */
    uint32_t n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx_train;
    uint32_t n_expert, n_expert_used, n_ff_exp, n_ff_shexp;
    /* qwen35moe / qwen35 (dense): gated delta net layers, full attention every `interval` */
    uint32_t full_attn_interval, ssm_d_conv, ssm_d_state, ssm_n_group, ssm_dt_rank, ssm_d_inner;
    /* gemma4: sliding-window layers of n_swa tokens with their own head
     * geometry; layer i is global when (i + 1) % swa_period == 0 */
    uint32_t n_swa, swa_period, head_dim_swa, n_head_kv_swa;
    bool k_eq_v;         /* gemma4: global layers have no attn_v (V is K) */
    bool tied_output;    /* no output.weight: the output is token_embd (gemma4 always) */
    float final_softcap; /* gemma4: final logit soft-capping, 0 = none */
    /* vocabulary: 0 the shared synthetic one; 1 same specials and size
     * rules but other word pieces (a draft that does not match its target) */
    uint32_t vocab_variant;
    /* clip */
    synth_proj_t proj;
    uint32_t v_patch, v_image_size, v_n_pos, v_proj_dim;
    gguf_ttype_t wtype; /* default type of the large matrices */
    bool tiny;          /* meant for tests: small, loads in well under a second */
    const char *pairs_with; /* projectors and drafts: the text model preset they go with */
} synth_preset_t;

/* Preset table (NULL-terminated by name == NULL). */
extern const synth_preset_t synth_presets[];
const synth_preset_t *synth_find(const char *name);
const char *synth_arch_name(synth_arch_t a);
/* The projector type string written to the GGUF ("gemma4v", ...), or NULL. */
const char *synth_proj_name(synth_proj_t p);

typedef struct {
    int wtype;     /* -1: the preset's default */
    uint64_t seed; /* random seed (same seed, same bytes) */
    const char *name; /* general.name; NULL: "synth-<preset>" */
    bool sparse;      /* leave tensor data as a hole (zeros, no disk): shapes only */
} synth_opts_t;

/* Bytes the file will have (without writing it). */
uint64_t synth_file_size(const synth_preset_t *p, const synth_opts_t *o);

/* Write the model to `path` (atomically: temp file + rename). 0 or -errno
 * with one line in err. */
int synth_write(const synth_preset_t *p, const synth_opts_t *o, const char *path, char *err,
                size_t errlen);

#endif
