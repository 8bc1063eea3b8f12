/*
 * synth.c — writer of synthetic GGUF models.
 *
 * A preset is turned into (1) metadata keys and (2) a tensor table through
 * a per-architecture function that mirrors llama.cpp's load_tensors() for
 * that architecture (names and shapes; llama.cpp's source is the reference),
 * then ggufw streams the data: every chunk is generated from a counter-based
 * hash of (seed, tensor, offset), so output is reproducible and memory stays
 * constant whatever the model size.
 *
 * Multimodal projectors (general.architecture = clip) go through the same
 * path with tools/mtmd/clip.cpp as the reference: clip.* keys, the vision
 * encoder's v.* tensors and the mm.* projection whose output width is the
 * paired text model's n_embd (mtmd refuses a mismatch). They carry no
 * vocabulary.
 *
 * Values: norm weights are 1, other float tensors uniform in ±1/sqrt(ne0),
 * quantized blocks carry random quants and a small finite scale so the
 * dequantized values are in the same range; gemma4's rope_freqs hold the
 * proportional-rope factors (1, then 1e30 for dimensions left unrotated).
 */
#include "synth.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ggufw.h"
#include "util.h"

const synth_preset_t synth_presets[] = {
    /* tiny presets: tests. head_dim 32 keeps quantized KV blocks aligned. */
    {.name = "tiny-llama", .desc = "dense llama, 2 layers, n_embd 128 (f32)",
     .arch = SYNTH_LLAMA, .n_layer = 2, .n_embd = 128, .n_head = 4, .n_head_kv = 2,
     .head_dim = 32, .n_ff = 256, .n_vocab = 384, .n_ctx_train = 32768,
     .wtype = GGUF_TT_F32, .tiny = true},
    {.name = "tiny-llama-q", .desc = "dense llama, 4 layers, n_embd 256, q4_k/q8_0 mix",
     .arch = SYNTH_LLAMA, .n_layer = 4, .n_embd = 256, .n_head = 8, .n_head_kv = 4,
     .head_dim = 32, .n_ff = 512, .n_vocab = 512, .n_ctx_train = 32768,
     .wtype = GGUF_TT_Q4_K, .tiny = true},
    {.name = "tiny-qwen3moe", .desc = "qwen3moe, 2 layers, 8 experts (2 used)",
     .arch = SYNTH_QWEN3MOE, .n_layer = 2, .n_embd = 128, .n_head = 4, .n_head_kv = 2,
     .head_dim = 32, .n_ff = 256, .n_vocab = 384, .n_ctx_train = 32768, .n_expert = 8,
     .n_expert_used = 2, .n_ff_exp = 64, .wtype = GGUF_TT_F16, .tiny = true},
    {.name = "tiny-qwen35moe", .desc = "qwen35moe hybrid, 4 layers (1 full attention), 8 experts + shared",
     .arch = SYNTH_QWEN35MOE, .n_layer = 4, .n_embd = 128, .n_head = 4, .n_head_kv = 2,
     .head_dim = 32, .n_ff = 0, .n_vocab = 384, .n_ctx_train = 32768, .n_expert = 8,
     .n_expert_used = 2, .n_ff_exp = 64, .n_ff_shexp = 64, .full_attn_interval = 4,
     .ssm_d_conv = 4, .ssm_d_state = 32, .ssm_n_group = 2, .ssm_dt_rank = 4,
     .ssm_d_inner = 128, .wtype = GGUF_TT_F16, .tiny = true},
    /* Gemma 4 26B-A4B in small: the same layer pattern (5 sliding-window layers,
     * then 1 global), the global layers' wider heads with fewer KV heads and no
     * attn_v, the dense MLP beside the routed experts, all the sandwich norms.
     * A 128-token window keeps the SWA cache (768 cells) below the contexts the
     * tests use. */
    {.name = "tiny-gemma4", .desc = "gemma4 MoE, 6 layers (5 sliding window + 1 global), 8 experts + dense MLP",
     .arch = SYNTH_GEMMA4, .n_layer = 6, .n_embd = 128, .n_head = 4, .n_head_kv = 1,
     .head_dim = 64, .n_ff = 128, .n_vocab = 384, .n_ctx_train = 32768, .n_expert = 8,
     .n_expert_used = 2, .n_ff_exp = 64, .n_swa = 128, .swa_period = 6, .head_dim_swa = 32,
     .n_head_kv_swa = 2, .k_eq_v = true, .final_softcap = 30.0f, .wtype = GGUF_TT_F16,
     .tiny = true},
    /* projectors: real patch sizes, merge factors and token limits (the image
     * token counts equal the full-size ones), a small encoder */
    {.name = "tiny-gemma4-mmproj", .desc = "gemma4v vision projector for tiny-gemma4, 2 blocks",
     .arch = SYNTH_CLIP, .proj = SYNTH_PROJ_GEMMA4V, .n_layer = 2, .n_embd = 64, .n_head = 2,
     .n_ff = 128, .v_patch = 16, .v_image_size = 224, .v_n_pos = 1024, .v_proj_dim = 128,
     .wtype = GGUF_TT_F16, .tiny = true, .pairs_with = "tiny-gemma4"},
    {.name = "tiny-qwen35-mmproj", .desc = "qwen3vl_merger vision projector for tiny-qwen35moe, 2 blocks",
     .arch = SYNTH_CLIP, .proj = SYNTH_PROJ_QWEN3VL, .n_layer = 2, .n_embd = 64, .n_head = 2,
     .n_ff = 128, .v_patch = 16, .v_image_size = 768, .v_n_pos = 2304, .v_proj_dim = 128,
     .wtype = GGUF_TT_F16, .tiny = true, .pairs_with = "tiny-qwen35moe"},
    /* drafts for speculative decoding: the first has the vocabulary of every
     * 384-token tiny preset (tiny-qwen35moe, tiny-gemma4, ...), the second the
     * same size and specials but other word pieces (token 261 differs) */
    {.name = "tiny-draft", .desc = "llama draft, 2 layers, n_embd 64, vocabulary of tiny-qwen35moe",
     .arch = SYNTH_LLAMA, .n_layer = 2, .n_embd = 64, .n_head = 2, .n_head_kv = 1,
     .head_dim = 32, .n_ff = 128, .n_vocab = 384, .n_ctx_train = 32768,
     .wtype = GGUF_TT_F16, .tiny = true, .pairs_with = "tiny-qwen35moe"},
    {.name = "tiny-draft-othervocab", .desc = "llama draft, 2 layers, n_embd 64, a vocabulary no target shares",
     .arch = SYNTH_LLAMA, .n_layer = 2, .n_embd = 64, .n_head = 2, .n_head_kv = 1,
     .head_dim = 32, .n_ff = 128, .n_vocab = 384, .n_ctx_train = 32768, .vocab_variant = 1,
     .wtype = GGUF_TT_F16, .tiny = true, .pairs_with = "tiny-qwen35moe"},
    /* full-size shapes for GPU work */
    {.name = "qwen3-30b-a3b", .desc = "Qwen3-30B-A3B shape: 48 layers, 128 experts (8 used), q4_k",
     .arch = SYNTH_QWEN3MOE, .n_layer = 48, .n_embd = 2048, .n_head = 32, .n_head_kv = 4,
     .head_dim = 128, .n_ff = 6144, .n_vocab = 151936, .n_ctx_train = 262144,
     .n_expert = 128, .n_expert_used = 8, .n_ff_exp = 768, .wtype = GGUF_TT_Q4_K},
    {.name = "qwen35-35b-a3b", .desc = "Qwen3.5-35B-A3B shape: 40 layers (10 full attention), 256 experts + shared, q4_k",
     .arch = SYNTH_QWEN35MOE, .n_layer = 40, .n_embd = 2048, .n_head = 16, .n_head_kv = 2,
     .head_dim = 256, .n_ff = 0, .n_vocab = 248320, .n_ctx_train = 262144, .n_expert = 256,
     .n_expert_used = 8, .n_ff_exp = 512, .n_ff_shexp = 512, .full_attn_interval = 4,
     .ssm_d_conv = 4, .ssm_d_state = 128, .ssm_n_group = 16, .ssm_dt_rank = 32,
     .ssm_d_inner = 4096, .wtype = GGUF_TT_Q4_K},
    /* its draft: Qwen3.5-0.8B as published (the Qwen/Qwen3.5-0.8B model card
     * and configuration: 24 layers as 6 x (3 Gated DeltaNet + 1 gated
     * attention), hidden_size 1024, intermediate_size 3584, 8 query and 2 KV
     * heads of head_dim 256, linear attention with 16 key and 16 value heads
     * of 128 and a conv kernel of 4, vocab_size 248320,
     * max_position_embeddings 262144, tied word embeddings), which llama.cpp
     * loads as the dense qwen35 architecture; the vocabulary is
     * qwen35-35b-a3b's, as the Qwen3.5 family shares one tokenizer */
    {.name = "qwen35-0.8b-draft", .desc = "Qwen3.5-0.8B shape: dense qwen35, 24 layers (6 full attention), vocabulary of qwen35-35b-a3b, q8_0",
     .arch = SYNTH_QWEN35, .n_layer = 24, .n_embd = 1024, .n_head = 8, .n_head_kv = 2,
     .head_dim = 256, .n_ff = 3584, .n_vocab = 248320, .n_ctx_train = 262144, .full_attn_interval = 4,
     .ssm_d_conv = 4, .ssm_d_state = 128, .ssm_n_group = 16, .ssm_dt_rank = 16, .ssm_d_inner = 2048,
     .tied_output = true, .wtype = GGUF_TT_Q8_0, .pairs_with = "qwen35-35b-a3b"},
    /* Gemma 4 26B-A4B, text_config of google/gemma-4-26B-A4B-it as published
     * (the config.json the Ollama library serves with gemma4:26b, model
     * gemma4:26b-nvfp4, blob ed0c1eb3633d, and the metadata of its llama.cpp
     * Q4_K_M GGUF, model gemma4:26b-a4b-it-q4_K_M, blob 7121486771cb):
     * hidden_size 2816, num_hidden_layers 30, num_attention_heads 16,
     * num_key_value_heads 8 / num_global_key_value_heads 2, head_dim 256 /
     * global_head_dim 512, intermediate_size 2112 (the dense MLP),
     * moe_intermediate_size 704, num_experts 128, top_k_experts 8,
     * vocab_size 262144, sliding_window 1024, layer_types 5 x sliding + 1 x
     * full, max_position_embeddings 262144, final_logit_softcapping 30,
     * attention_k_eq_v true, tie_word_embeddings true. */
    {.name = "gemma4-26b-a4b", .desc = "Gemma-4-26B-A4B shape: 30 layers (25 sliding window + 5 global), 128 experts (8 used) + dense MLP, q4_k",
     .arch = SYNTH_GEMMA4, .n_layer = 30, .n_embd = 2816, .n_head = 16, .n_head_kv = 2,
     .head_dim = 512, .n_ff = 2112, .n_vocab = 262144, .n_ctx_train = 262144, .n_expert = 128,
     .n_expert_used = 8, .n_ff_exp = 704, .n_swa = 1024, .swa_period = 6, .head_dim_swa = 256,
     .n_head_kv_swa = 8, .k_eq_v = true, .final_softcap = 30.0f, .wtype = GGUF_TT_Q4_K},
    /* its projector: clip.vision.* of the 26B's mmproj as converted by
     * llama.cpp (Ollama library, model gemma4:26b-a4b-it-qat, blob d8e2de16e175):
     * 27 blocks, n_embd 1152, 16 heads, ffn 4304, patch 16, image_size 224,
     * projection_dim 2816, gemma4v; 10240-row x/y position tables */
    {.name = "gemma4-26b-a4b-mmproj", .desc = "Gemma-4-26B-A4B vision projector shape: gemma4v, 27 blocks, n_embd 1152, f16",
     .arch = SYNTH_CLIP, .proj = SYNTH_PROJ_GEMMA4V, .n_layer = 27, .n_embd = 1152, .n_head = 16,
     .n_ff = 4304, .v_patch = 16, .v_image_size = 224, .v_n_pos = 10240, .v_proj_dim = 2816,
     .wtype = GGUF_TT_F16, .pairs_with = "gemma4-26b-a4b"},
    /* Qwen3.5-35B-A3B's vision_config (the Qwen3-VL tower without deepstack):
     * depth 27, hidden_size 1152, intermediate_size 4304, num_heads 16,
     * patch_size 16, temporal_patch_size 2, spatial_merge_size 2,
     * num_position_embeddings 2304, out_hidden_size 2048,
     * deepstack_visual_indexes []; llama.cpp converts it to qwen3vl_merger with
     * image_size sqrt(2304) * 16 = 768 (conversion/qwen3vl.py) */
    {.name = "qwen35-35b-a3b-mmproj", .desc = "Qwen3.5-35B-A3B vision projector shape: qwen3vl_merger, 27 blocks, n_embd 1152, f16",
     .arch = SYNTH_CLIP, .proj = SYNTH_PROJ_QWEN3VL, .n_layer = 27, .n_embd = 1152, .n_head = 16,
     .n_ff = 4304, .v_patch = 16, .v_image_size = 768, .v_n_pos = 2304, .v_proj_dim = 2048,
     .wtype = GGUF_TT_F16, .pairs_with = "qwen35-35b-a3b"},
    {.name = NULL},
};

const synth_preset_t *synth_find(const char *name)
{
    for (const synth_preset_t *p = synth_presets; p->name; p++)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

const char *synth_arch_name(synth_arch_t a)
{
    switch (a) {
    case SYNTH_LLAMA: return "llama";
    case SYNTH_QWEN3MOE: return "qwen3moe";
    case SYNTH_QWEN35MOE: return "qwen35moe";
    case SYNTH_QWEN35: return "qwen35";
    case SYNTH_GEMMA4: return "gemma4";
    case SYNTH_CLIP: return "clip";
    }
    return "?";
}

const char *synth_proj_name(synth_proj_t p)
{
    switch (p) {
    case SYNTH_PROJ_NONE: return NULL;
    case SYNTH_PROJ_GEMMA4V: return "gemma4v";
    case SYNTH_PROJ_QWEN3VL: return "qwen3vl_merger";
    }
    return NULL;
}

/* ---- tensor table ---- */

/* How a tensor's values are made. FILL_ROPE: gemma4's proportional-rope
 * frequency factors, 1 for the first `arg` pairs, 1e30 (not rotated) after. */
typedef enum { FILL_RANDOM, FILL_ONES, FILL_NEG, FILL_ROPE } fill_kind_t;

typedef struct {
    fill_kind_t kind;
    uint32_t arg;
} fill_t;

typedef struct {
    ggufw_t *w;
    gguf_ttype_t wtype;
    fill_t *fills; /* per tensor, grows with the table */
    size_t n, cap;
    uint64_t seed;
} build_t;

/* Type for a matrix: the requested one where ne0 fits its block, else the
 * nearest that does (llama-quantize falls back the same way). */
static gguf_ttype_t fit_type(gguf_ttype_t want, uint64_t ne0)
{
    if (ne0 % gguf_type_block(want) == 0)
        return want;
    if (want != GGUF_TT_F32 && ne0 % 32 == 0)
        return GGUF_TT_Q8_0;
    return want == GGUF_TT_F32 ? GGUF_TT_F32 : GGUF_TT_F16;
}

static void add_fill(build_t *b, const char *name, fill_t fl, gguf_ttype_t type, int nd,
                     const uint64_t ne[4])
{
    long i = ggufw_tensor(b->w, name, type, nd, ne);
    if (i < 0)
        abort(); /* a preset bug: fit_type guarantees the block fits */
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->fills = xrealloc(b->fills, b->cap * sizeof *b->fills);
    }
    b->fills[b->n++] = fl;
}

static void add(build_t *b, const char *name, fill_kind_t kind, gguf_ttype_t type, int nd,
                uint64_t ne0, uint64_t ne1, uint64_t ne2)
{
    uint64_t ne[4] = {ne0, ne1, ne2, 1};
    add_fill(b, name, (fill_t){kind, 0}, type, nd, ne);
}

/* 1-D and small float tensors: always f32. */
static void vec(build_t *b, const char *name, fill_kind_t kind, uint64_t n)
{
    add(b, name, kind, GGUF_TT_F32, 1, n, 1, 1);
}

static void mat(build_t *b, const char *name, uint64_t ne0, uint64_t ne1)
{
    add(b, name, FILL_RANDOM, fit_type(b->wtype, ne0), 2, ne0, ne1, 1);
}

static void mat3(build_t *b, const char *name, uint64_t ne0, uint64_t ne1, uint64_t ne2)
{
    add(b, name, FILL_RANDOM, fit_type(b->wtype, ne0), 3, ne0, ne1, ne2);
}

static void matf32(build_t *b, const char *name, uint64_t ne0, uint64_t ne1)
{
    add(b, name, FILL_RANDOM, GGUF_TT_F32, 2, ne0, ne1, 1);
}

#define BLK(buf, i, suffix) (snprintf(buf, sizeof buf, "blk.%u." suffix, i), buf)
#define VBLK(buf, i, suffix) (snprintf(buf, sizeof buf, "v.blk.%u." suffix, i), buf)

static void attn_block(build_t *b, const synth_preset_t *p, uint32_t i, bool qk_norm, bool gated_q)
{
    char n[96];
    uint64_t e = p->n_embd, hd = p->head_dim;
    mat(b, BLK(n, i, "attn_q.weight"), e, hd * p->n_head * (gated_q ? 2 : 1));
    mat(b, BLK(n, i, "attn_k.weight"), e, hd * p->n_head_kv);
    mat(b, BLK(n, i, "attn_v.weight"), e, hd * p->n_head_kv);
    mat(b, BLK(n, i, "attn_output.weight"), hd * p->n_head, e);
    if (qk_norm) {
        vec(b, BLK(n, i, "attn_q_norm.weight"), FILL_ONES, hd);
        vec(b, BLK(n, i, "attn_k_norm.weight"), FILL_ONES, hd);
    }
}

static void moe_block(build_t *b, const synth_preset_t *p, uint32_t i)
{
    char n[96];
    uint64_t e = p->n_embd;
    matf32(b, BLK(n, i, "ffn_gate_inp.weight"), e, p->n_expert);
    mat3(b, BLK(n, i, "ffn_gate_exps.weight"), e, p->n_ff_exp, p->n_expert);
    mat3(b, BLK(n, i, "ffn_down_exps.weight"), p->n_ff_exp, e, p->n_expert);
    mat3(b, BLK(n, i, "ffn_up_exps.weight"), e, p->n_ff_exp, p->n_expert);
    if (p->n_ff_shexp) {
        /* the shared expert's scalar gate: 1-D, f32 */
        vec(b, BLK(n, i, "ffn_gate_inp_shexp.weight"), FILL_RANDOM, e);
        mat(b, BLK(n, i, "ffn_gate_shexp.weight"), e, p->n_ff_shexp);
        mat(b, BLK(n, i, "ffn_down_shexp.weight"), p->n_ff_shexp, e);
        mat(b, BLK(n, i, "ffn_up_shexp.weight"), e, p->n_ff_shexp);
    }
}

/* Gated delta net (linear attention) layer of qwen35moe. */
static void gdn_block(build_t *b, const synth_preset_t *p, uint32_t i)
{
    char n[96];
    uint64_t e = p->n_embd;
    uint64_t head_k = p->ssm_d_state, n_k_heads = p->ssm_n_group, n_v_heads = p->ssm_dt_rank;
    uint64_t key_dim = head_k * n_k_heads, value_dim = p->ssm_d_inner;
    uint64_t conv_dim = key_dim * 2 + value_dim;
    mat(b, BLK(n, i, "attn_qkv.weight"), e, conv_dim);
    mat(b, BLK(n, i, "attn_gate.weight"), e, value_dim);
    matf32(b, BLK(n, i, "ssm_conv1d.weight"), p->ssm_d_conv, conv_dim);
    vec(b, BLK(n, i, "ssm_dt.bias"), FILL_RANDOM, n_v_heads);
    vec(b, BLK(n, i, "ssm_a"), FILL_NEG, n_v_heads);
    mat(b, BLK(n, i, "ssm_beta.weight"), e, n_v_heads);
    mat(b, BLK(n, i, "ssm_alpha.weight"), e, n_v_heads);
    vec(b, BLK(n, i, "ssm_norm.weight"), FILL_ONES, value_dim / n_v_heads);
    mat(b, BLK(n, i, "ssm_out.weight"), value_dim, e);
}

static bool gemma4_global(const synth_preset_t *p, uint32_t i)
{
    return (i + 1) % p->swa_period == 0;
}

/* One gemma4 layer as llama_model_gemma4::load_arch_tensors creates it:
 * attention with q/k norms and a post-norm, the dense MLP ("shared expert")
 * with its post-norm, the router (with a per-channel input scale) and the
 * routed experts (with a per-expert output scale) between their own
 * pre/post norms, and the layer's output scalar. */
static void gemma4_block(build_t *b, const synth_preset_t *p, uint32_t i)
{
    char n[96];
    bool global = gemma4_global(p, i);
    uint64_t e = p->n_embd;
    uint64_t hd = global ? p->head_dim : p->head_dim_swa;
    uint64_t kv = global ? p->n_head_kv : p->n_head_kv_swa;
    mat(b, BLK(n, i, "attn_q.weight"), e, hd * p->n_head);
    mat(b, BLK(n, i, "attn_k.weight"), e, hd * kv);
    if (!(global && p->k_eq_v))
        mat(b, BLK(n, i, "attn_v.weight"), e, hd * kv);
    mat(b, BLK(n, i, "attn_output.weight"), hd * p->n_head, e);
    vec(b, BLK(n, i, "attn_q_norm.weight"), FILL_ONES, hd);
    vec(b, BLK(n, i, "attn_k_norm.weight"), FILL_ONES, hd);
    vec(b, BLK(n, i, "post_attention_norm.weight"), FILL_ONES, e);
    vec(b, BLK(n, i, "layer_output_scale.weight"), FILL_ONES, 1);
    vec(b, BLK(n, i, "ffn_norm.weight"), FILL_ONES, e);
    mat(b, BLK(n, i, "ffn_gate.weight"), e, p->n_ff);
    mat(b, BLK(n, i, "ffn_up.weight"), e, p->n_ff);
    mat(b, BLK(n, i, "ffn_down.weight"), p->n_ff, e);
    vec(b, BLK(n, i, "post_ffw_norm.weight"), FILL_ONES, e);
    if (!p->n_expert)
        return;
    matf32(b, BLK(n, i, "ffn_gate_inp.weight"), e, p->n_expert);
    vec(b, BLK(n, i, "ffn_gate_inp.scale"), FILL_ONES, e);
    vec(b, BLK(n, i, "pre_ffw_norm_2.weight"), FILL_ONES, e);
    vec(b, BLK(n, i, "post_ffw_norm_1.weight"), FILL_ONES, e);
    vec(b, BLK(n, i, "post_ffw_norm_2.weight"), FILL_ONES, e);
    mat3(b, BLK(n, i, "ffn_gate_exps.weight"), e, p->n_ff_exp, p->n_expert);
    mat3(b, BLK(n, i, "ffn_up_exps.weight"), e, p->n_ff_exp, p->n_expert);
    mat3(b, BLK(n, i, "ffn_down_exps.weight"), p->n_ff_exp, e, p->n_expert);
    vec(b, BLK(n, i, "ffn_down_exps.scale"), FILL_ONES, p->n_expert);
}

/* Patch embedding as a conv2d kernel [patch, patch, 3, n_embd]: f32 like the
 * other small tensors that feed convolutions. */
static void patch_kernel(build_t *b, const char *name, const synth_preset_t *p)
{
    uint64_t ne[4] = {p->v_patch, p->v_patch, 3, p->n_embd};
    add_fill(b, name, (fill_t){FILL_RANDOM, 0}, GGUF_TT_F32, 4, ne);
}

/* Vision encoder + projector, as tools/mtmd/clip.cpp loads them. gemma4v: RMS
 * norms, separate q/k/v with per-head q/k norms, sandwich post-norms, a
 * gated FFN, factored x/y position tables [n_embd, n_pos, 2], a single
 * input projection after pooling. qwen3vl: LayerNorms with biases, fused
 * qkv, an ungated FFN, two temporal patch kernels, a learned position grid,
 * a post-norm and the 2x2 merger MLP mm.0 / mm.2. */
static void build_clip(build_t *b, const synth_preset_t *p)
{
    char n[96];
    uint64_t e = p->n_embd, ff = p->n_ff, hd = p->n_embd / p->n_head;
    if (p->proj == SYNTH_PROJ_GEMMA4V) {
        patch_kernel(b, "v.patch_embd.weight", p);
        add(b, "v.position_embd.weight", FILL_RANDOM, GGUF_TT_F32, 3, e, p->v_n_pos, 2);
        for (uint32_t i = 0; i < p->n_layer; i++) {
            vec(b, VBLK(n, i, "ln1.weight"), FILL_ONES, e);
            mat(b, VBLK(n, i, "attn_q.weight"), e, e);
            mat(b, VBLK(n, i, "attn_k.weight"), e, e);
            mat(b, VBLK(n, i, "attn_v.weight"), e, e);
            vec(b, VBLK(n, i, "attn_q_norm.weight"), FILL_ONES, hd);
            vec(b, VBLK(n, i, "attn_k_norm.weight"), FILL_ONES, hd);
            mat(b, VBLK(n, i, "attn_out.weight"), e, e);
            vec(b, VBLK(n, i, "attn_post_norm.weight"), FILL_ONES, e);
            vec(b, VBLK(n, i, "ln2.weight"), FILL_ONES, e);
            mat(b, VBLK(n, i, "ffn_gate.weight"), e, ff);
            mat(b, VBLK(n, i, "ffn_up.weight"), e, ff);
            mat(b, VBLK(n, i, "ffn_down.weight"), ff, e);
            vec(b, VBLK(n, i, "ffn_post_norm.weight"), FILL_ONES, e);
        }
        mat(b, "mm.input_projection.weight", e, p->v_proj_dim);
        return;
    }
    /* SYNTH_PROJ_QWEN3VL */
    patch_kernel(b, "v.patch_embd.weight", p);
    patch_kernel(b, "v.patch_embd.weight.1", p);
    vec(b, "v.patch_embd.bias", FILL_RANDOM, e);
    matf32(b, "v.position_embd.weight", e, p->v_n_pos);
    for (uint32_t i = 0; i < p->n_layer; i++) {
        vec(b, VBLK(n, i, "ln1.weight"), FILL_ONES, e);
        vec(b, VBLK(n, i, "ln1.bias"), FILL_RANDOM, e);
        mat(b, VBLK(n, i, "attn_qkv.weight"), e, 3 * e);
        vec(b, VBLK(n, i, "attn_qkv.bias"), FILL_RANDOM, 3 * e);
        mat(b, VBLK(n, i, "attn_out.weight"), e, e);
        vec(b, VBLK(n, i, "attn_out.bias"), FILL_RANDOM, e);
        vec(b, VBLK(n, i, "ln2.weight"), FILL_ONES, e);
        vec(b, VBLK(n, i, "ln2.bias"), FILL_RANDOM, e);
        mat(b, VBLK(n, i, "ffn_up.weight"), e, ff);
        vec(b, VBLK(n, i, "ffn_up.bias"), FILL_RANDOM, ff);
        mat(b, VBLK(n, i, "ffn_down.weight"), ff, e);
        vec(b, VBLK(n, i, "ffn_down.bias"), FILL_RANDOM, e);
    }
    vec(b, "v.post_ln.weight", FILL_ONES, e);
    vec(b, "v.post_ln.bias", FILL_RANDOM, e);
    mat(b, "mm.0.weight", 4 * e, 4 * e);
    vec(b, "mm.0.bias", FILL_RANDOM, 4 * e);
    mat(b, "mm.2.weight", 4 * e, p->v_proj_dim);
    vec(b, "mm.2.bias", FILL_RANDOM, p->v_proj_dim);
}

static void build_tensors(build_t *b, const synth_preset_t *p)
{
    char n[96];
    uint64_t e = p->n_embd;
    if (p->arch == SYNTH_CLIP) {
        build_clip(b, p);
        return;
    }
    mat(b, "token_embd.weight", e, p->n_vocab);
    vec(b, "output_norm.weight", FILL_ONES, e);
    if (p->arch == SYNTH_GEMMA4) {
        /* tied output (no output.weight); one rope_freqs shared by the
         * global layers: a quarter of the head rotates (proportional rope) */
        add_fill(b, "rope_freqs.weight", (fill_t){FILL_ROPE, p->head_dim / 8}, GGUF_TT_F32, 1,
                 (const uint64_t[4]){p->head_dim / 2, 1, 1, 1});
    } else if (!p->tied_output) {
        mat(b, "output.weight", e, p->n_vocab);
    }
    for (uint32_t i = 0; i < p->n_layer; i++) {
        vec(b, BLK(n, i, "attn_norm.weight"), FILL_ONES, e);
        switch (p->arch) {
        case SYNTH_LLAMA:
            attn_block(b, p, i, false, false);
            vec(b, BLK(n, i, "ffn_norm.weight"), FILL_ONES, e);
            mat(b, BLK(n, i, "ffn_gate.weight"), e, p->n_ff);
            mat(b, BLK(n, i, "ffn_down.weight"), p->n_ff, e);
            mat(b, BLK(n, i, "ffn_up.weight"), e, p->n_ff);
            break;
        case SYNTH_QWEN3MOE:
            attn_block(b, p, i, true, false);
            vec(b, BLK(n, i, "ffn_norm.weight"), FILL_ONES, e);
            moe_block(b, p, i);
            break;
        case SYNTH_QWEN35MOE:
        case SYNTH_QWEN35:
            if ((i + 1) % p->full_attn_interval == 0)
                attn_block(b, p, i, true, true);
            else
                gdn_block(b, p, i);
            vec(b, BLK(n, i, "post_attention_norm.weight"), FILL_ONES, e);
            if (p->arch == SYNTH_QWEN35MOE) {
                moe_block(b, p, i);
            } else { /* the dense sibling: one gated FFN */
                mat(b, BLK(n, i, "ffn_gate.weight"), e, p->n_ff);
                mat(b, BLK(n, i, "ffn_down.weight"), p->n_ff, e);
                mat(b, BLK(n, i, "ffn_up.weight"), e, p->n_ff);
            }
            break;
        case SYNTH_GEMMA4:
            gemma4_block(b, p, i);
            break;
        case SYNTH_CLIP:
            break; /* handled above */
        }
    }
}

/* ---- metadata ---- */

static void kv_gemma4(ggufw_t *w, const synth_preset_t *p)
{
    int32_t *kv = xcalloc(p->n_layer, sizeof *kv);
    bool *swa = xcalloc(p->n_layer, sizeof *swa);
    for (uint32_t i = 0; i < p->n_layer; i++) {
        swa[i] = !gemma4_global(p, i);
        kv[i] = (int32_t)(swa[i] ? p->n_head_kv_swa : p->n_head_kv);
    }
    ggufw_u32(w, "gemma4.context_length", p->n_ctx_train);
    ggufw_u32(w, "gemma4.embedding_length", p->n_embd);
    ggufw_u32(w, "gemma4.embedding_length_per_layer_input", 0);
    ggufw_u32(w, "gemma4.block_count", p->n_layer);
    ggufw_u32(w, "gemma4.feed_forward_length", p->n_ff);
    ggufw_u32(w, "gemma4.attention.head_count", p->n_head);
    ggufw_arr_i32(w, "gemma4.attention.head_count_kv", p->n_layer, kv);
    ggufw_u32(w, "gemma4.attention.key_length", p->head_dim);
    ggufw_u32(w, "gemma4.attention.value_length", p->head_dim);
    ggufw_u32(w, "gemma4.attention.key_length_swa", p->head_dim_swa);
    ggufw_u32(w, "gemma4.attention.value_length_swa", p->head_dim_swa);
    ggufw_f32(w, "gemma4.attention.layer_norm_rms_epsilon", 1e-6f);
    ggufw_u32(w, "gemma4.attention.sliding_window", p->n_swa);
    ggufw_arr_bool(w, "gemma4.attention.sliding_window_pattern", p->n_layer, swa);
    ggufw_u32(w, "gemma4.attention.shared_kv_layers", 0);
    /* global layers: whole head with rope_freqs masking 3/4 of it; sliding
     * layers: whole head, plain rope */
    ggufw_u32(w, "gemma4.rope.dimension_count", p->head_dim);
    ggufw_u32(w, "gemma4.rope.dimension_count_swa", p->head_dim_swa);
    ggufw_f32(w, "gemma4.rope.freq_base", 1000000.0f);
    ggufw_f32(w, "gemma4.rope.freq_base_swa", 10000.0f);
    if (p->final_softcap > 0)
        ggufw_f32(w, "gemma4.final_logit_softcapping", p->final_softcap);
    if (p->n_expert) {
        ggufw_u32(w, "gemma4.expert_count", p->n_expert);
        ggufw_u32(w, "gemma4.expert_used_count", p->n_expert_used);
        ggufw_u32(w, "gemma4.expert_feed_forward_length", p->n_ff_exp);
    }
    free(kv);
    free(swa);
}

/* clip.* keys of tools/mtmd/clip-impl.h. */
static void kv_clip(ggufw_t *w, const synth_preset_t *p)
{
    static const float mean_gemma[3] = {0, 0, 0}, std_gemma[3] = {1, 1, 1};
    static const float mean_qwen[3] = {0.5f, 0.5f, 0.5f}, std_qwen[3] = {0.5f, 0.5f, 0.5f};
    bool gemma = p->proj == SYNTH_PROJ_GEMMA4V;
    ggufw_bool(w, "clip.has_vision_encoder", 1);
    /* gemma4's converter names the vision projector per modality */
    ggufw_str(w, gemma ? "clip.vision.projector_type" : "clip.projector_type", synth_proj_name(p->proj));
    if (!gemma)
        ggufw_bool(w, "clip.use_gelu", 1);
    ggufw_u32(w, "clip.vision.image_size", p->v_image_size);
    ggufw_u32(w, "clip.vision.patch_size", p->v_patch);
    ggufw_u32(w, "clip.vision.embedding_length", p->n_embd);
    ggufw_u32(w, "clip.vision.feed_forward_length", p->n_ff);
    ggufw_u32(w, "clip.vision.block_count", p->n_layer);
    ggufw_u32(w, "clip.vision.projection_dim", p->v_proj_dim);
    ggufw_u32(w, "clip.vision.attention.head_count", p->n_head);
    ggufw_f32(w, "clip.vision.attention.layer_norm_epsilon", 1e-6f);
    ggufw_arr_f32(w, "clip.vision.image_mean", 3, gemma ? mean_gemma : mean_qwen);
    ggufw_arr_f32(w, "clip.vision.image_std", 3, gemma ? std_gemma : std_qwen);
    if (!gemma)
        ggufw_u32(w, "clip.vision.spatial_merge_size", 2);
}

static void kv_arch(ggufw_t *w, const synth_preset_t *p)
{
    const char *a = synth_arch_name(p->arch);
    char k[128];
    if (p->arch == SYNTH_GEMMA4) {
        kv_gemma4(w, p);
        return;
    }
    if (p->arch == SYNTH_CLIP) {
        kv_clip(w, p);
        return;
    }
#define K(suffix) (snprintf(k, sizeof k, "%s." suffix, a), k)
    ggufw_u32(w, K("context_length"), p->n_ctx_train);
    ggufw_u32(w, K("embedding_length"), p->n_embd);
    ggufw_u32(w, K("block_count"), p->n_layer);
    if (p->n_ff)
        ggufw_u32(w, K("feed_forward_length"), p->n_ff);
    ggufw_u32(w, K("attention.head_count"), p->n_head);
    ggufw_u32(w, K("attention.head_count_kv"), p->n_head_kv);
    ggufw_u32(w, K("attention.key_length"), p->head_dim);
    ggufw_u32(w, K("attention.value_length"), p->head_dim);
    ggufw_f32(w, K("attention.layer_norm_rms_epsilon"), 1e-6f);
    ggufw_f32(w, K("rope.freq_base"), p->arch == SYNTH_LLAMA ? 10000.0f : 1000000.0f);
    if (p->arch == SYNTH_QWEN35MOE || p->arch == SYNTH_QWEN35) {
        /* partial rotary (a quarter of the head) and multi-section rope */
        uint32_t rot = p->head_dim / 4;
        int32_t sec[4] = {(int32_t)(rot / 2 * 11 / 32), (int32_t)(rot / 2 * 11 / 32), 0, 0};
        sec[2] = (int32_t)(rot / 2) - sec[0] - sec[1];
        ggufw_u32(w, K("rope.dimension_count"), rot);
        ggufw_arr_i32(w, K("rope.dimension_sections"), 4, sec);
    } else {
        ggufw_u32(w, K("rope.dimension_count"), p->head_dim);
    }
    if (p->n_expert) {
        ggufw_u32(w, K("expert_count"), p->n_expert);
        ggufw_u32(w, K("expert_used_count"), p->n_expert_used);
        ggufw_u32(w, K("expert_feed_forward_length"), p->n_ff_exp);
    }
    if (p->n_ff_shexp)
        ggufw_u32(w, K("expert_shared_feed_forward_length"), p->n_ff_shexp);
    if (p->arch == SYNTH_QWEN35MOE || p->arch == SYNTH_QWEN35) {
        ggufw_u32(w, K("ssm.conv_kernel"), p->ssm_d_conv);
        ggufw_u32(w, K("ssm.state_size"), p->ssm_d_state);
        ggufw_u32(w, K("ssm.group_count"), p->ssm_n_group);
        ggufw_u32(w, K("ssm.time_step_rank"), p->ssm_dt_rank);
        ggufw_u32(w, K("ssm.inner_size"), p->ssm_d_inner);
        ggufw_u32(w, K("full_attention_interval"), p->full_attn_interval);
    }
#undef K
}

#define SYNTH_N_SPECIAL 261 /* <unk> <s> </s>, 256 bytes, <|im_start|> <|im_end|> */

static const char chat_template[] =
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/* Byte-fallback SentencePiece vocabulary padded with word pieces. Variant 1
 * spells the word pieces with the alphabet reversed: same size, specials and
 * bytes, different token texts from id SYNTH_N_SPECIAL on. */
static void kv_vocab(ggufw_t *w, uint32_t n_vocab, uint32_t variant)
{
    char **tok = xcalloc(n_vocab, sizeof *tok);
    float *score = xcalloc(n_vocab, sizeof *score);
    int32_t *type = xcalloc(n_vocab, sizeof *type);
    static const char *const special[] = {"<unk>", "<s>", "</s>"};
    for (uint32_t i = 0; i < n_vocab; i++) {
        if (i < 3) {
            tok[i] = xstrdup(special[i]);
            type[i] = i == 0 ? 2 : 3; /* unknown, control */
        } else if (i < 259) {
            tok[i] = xasprintf("<0x%02X>", i - 3);
            type[i] = 6; /* byte */
        } else if (i < SYNTH_N_SPECIAL) {
            tok[i] = xstrdup(i == 259 ? "<|im_start|>" : "<|im_end|>");
            type[i] = 3;
        } else {
            /* "▁" + a base-26 word: unique, normal, ranked by index */
            uint32_t k = i - SYNTH_N_SPECIAL;
            char word[16];
            int len = 0;
            do {
                uint32_t d = k % 26;
                word[len++] = (char)(variant ? 'z' - d : 'a' + d);
                k = k / 26;
            } while (k && len < 14);
            word[len] = 0;
            tok[i] = xasprintf("\xe2\x96\x81%s", word);
            type[i] = 1;
            score[i] = -(float)(i - SYNTH_N_SPECIAL);
        }
    }
    ggufw_str(w, "tokenizer.ggml.model", "llama");
    ggufw_arr_str(w, "tokenizer.ggml.tokens", n_vocab, (const char *const *)tok);
    ggufw_arr_f32(w, "tokenizer.ggml.scores", n_vocab, score);
    ggufw_arr_i32(w, "tokenizer.ggml.token_type", n_vocab, type);
    ggufw_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    ggufw_u32(w, "tokenizer.ggml.bos_token_id", 1);
    ggufw_u32(w, "tokenizer.ggml.eos_token_id", 2);
    ggufw_u32(w, "tokenizer.ggml.eot_token_id", 260);
    ggufw_bool(w, "tokenizer.ggml.add_bos_token", 1);
    ggufw_bool(w, "tokenizer.ggml.add_eos_token", 0);
    ggufw_str(w, "tokenizer.chat_template", chat_template);
    for (uint32_t i = 0; i < n_vocab; i++)
        free(tok[i]);
    free(tok);
    free(score);
    free(type);
}

static ggufw_t *build(const synth_preset_t *p, const synth_opts_t *o, build_t *b)
{
    ggufw_t *w = ggufw_new(32);
    char name[128];
    memset(b, 0, sizeof *b);
    b->w = w;
    b->wtype = o && o->wtype >= 0 ? (gguf_ttype_t)o->wtype : p->wtype;
    b->seed = o ? o->seed : 0;
    snprintf(name, sizeof name, "synth-%s", p->name);
    ggufw_str(w, "general.architecture", synth_arch_name(p->arch));
    ggufw_str(w, "general.type", p->arch == SYNTH_CLIP ? "mmproj" : "model");
    ggufw_str(w, "general.name", o && o->name ? o->name : name);
    ggufw_str(w, "general.description", "random weights written by variet synth");
    ggufw_u32(w, "general.alignment", 32);
    kv_arch(w, p);
    ggufw_u32(w, "general.quantization_version", 2);
    if (p->arch != SYNTH_CLIP)
        kv_vocab(w, p->n_vocab, p->vocab_variant);
    build_tensors(b, p);
    return w;
}

uint64_t synth_file_size(const synth_preset_t *p, const synth_opts_t *o)
{
    build_t b;
    ggufw_t *w = build(p, o, &b);
    uint64_t n = ggufw_file_size(w);
    free(b.fills);
    ggufw_free(&w);
    return n;
}

/* ---- data ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint16_t f16_bits(float f)
{
    /* values here are small and normal or zero: no NaN/overflow handling needed
     * beyond saturation and flush-to-zero */
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t mant = (x >> 13) & 0x3ff;
    if (exp <= 0)
        return (uint16_t)sign;
    if (exp >= 31)
        return (uint16_t)(sign | 0x7bff);
    return (uint16_t)(sign | (uint32_t)exp << 10 | mant);
}

static float unit(uint64_t *s) /* uniform in [-1, 1) */
{
    return (float)((double)(splitmix(s) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void fill(void *ud, size_t ti, const gguf_tensor_t *t, uint8_t *dst, uint64_t off, size_t n)
{
    const build_t *b = ud;
    uint64_t s = b->seed * 0x100000001b3ull ^ ((uint64_t)ti << 40) ^ off;
    float amp = 1.0f / sqrtf((float)t->ne[0]);
    fill_kind_t kind = b->fills[ti].kind;

    switch (t->type) {
    case GGUF_TT_F32:
        for (size_t i = 0; i + 4 <= n; i += 4) {
            float v;
            switch (kind) {
            case FILL_ONES: v = 1.0f; break;
            case FILL_NEG: v = -0.5f - 0.5f * fabsf(unit(&s)); break;
            case FILL_ROPE: v = (off + i) / 4 < b->fills[ti].arg ? 1.0f : 1e30f; break;
            default: v = amp * unit(&s); break;
            }
            memcpy(dst + i, &v, 4);
        }
        return;
    case GGUF_TT_F16:
        for (size_t i = 0; i + 2 <= n; i += 2) {
            uint16_t h = f16_bits(kind == FILL_ONES ? 1.0f : amp * unit(&s));
            memcpy(dst + i, &h, 2);
        }
        return;
    default:
        break;
    }
    /* quantized: random quants, then a finite scale in each block */
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = splitmix(&s);
        memcpy(dst + i, &r, n - i < 8 ? n - i : 8);
    }
    uint32_t bb = gguf_type_bytes(t->type);
    uint16_t d, dmin;
    switch (t->type) {
    case GGUF_TT_Q8_0: d = f16_bits(amp / 127.0f); dmin = 0; break;
    case GGUF_TT_Q4_0: d = f16_bits(amp / 8.0f); dmin = 0; break;
    case GGUF_TT_Q4_K: d = f16_bits(amp / 256.0f); dmin = f16_bits(amp / 512.0f); break;
    default: abort(); /* synth only emits the types above */
    }
    for (size_t i = 0; i + bb <= n; i += bb) {
        memcpy(dst + i, &d, 2);
        if (t->type == GGUF_TT_Q4_K)
            memcpy(dst + i + 2, &dmin, 2);
    }
}

int synth_write(const synth_preset_t *p, const synth_opts_t *o, const char *path, char *err,
                size_t errlen)
{
    build_t b;
    int wt = o ? o->wtype : -1;
    if (wt >= 0 && wt != GGUF_TT_F32 && wt != GGUF_TT_F16 && wt != GGUF_TT_Q8_0 &&
        wt != GGUF_TT_Q4_0 && wt != GGUF_TT_Q4_K) {
        snprintf(err, errlen, "weight type %s is not supported (f32, f16, q8_0, q4_0, q4_k)",
                 gguf_type_name((uint32_t)wt));
        return -EINVAL;
    }
    ggufw_t *w = build(p, o, &b);
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int rc = 0;
    if (!f) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    rc = ggufw_write(w, f, o && o->sparse ? NULL : fill, &b, err, errlen);
    if (!rc && fsync(fileno(f)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: fsync: %s", tmp, strerror(errno));
    }
    if (fclose(f) != 0 && !rc) {
        rc = -EIO;
        snprintf(err, errlen, "%s: close failed", tmp);
    }
    if (!rc && rename(tmp, path) < 0) {
        rc = -errno;
        snprintf(err, errlen, "rename to %s: %s", path, strerror(errno));
    }
    if (rc)
        unlink(tmp);
out:
    free(tmp);
    free(b.fills);
    ggufw_free(&w);
    return rc;
}
