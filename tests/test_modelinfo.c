/*
 * test_modelinfo.c — architecture facts: KV and recurrent-state arithmetic
 * checked against llama-server's recorded buffer sizes (fixtures), layer
 * kinds, MoE active parameters, per-layer KV heads, sliding window,
 * multimodal projector image tokens (as llama-server b11669 counted them),
 * per-layer head dims and shared KV layers, unknown architectures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ggufw.h"
#include "modelinfo.h"
#include "util.h"

#define MIB (1024ull * 1024ull)

static void zero_fill(void *ud, size_t ti, const gguf_tensor_t *t, uint8_t *dst, uint64_t off, size_t n)
{
    (void)ud; (void)ti; (void)t; (void)off;
    memset(dst, 0, n);
}

/* Write w to a temp file and parse it into *g and *m. */
static char *finish(ggufw_t *w, gguf_t **g, mi_t **m)
{
    char err[256];
    char *path = xasprintf("/tmp/variet-test-mi-%ld-%p.gguf", (long)getpid(), (void *)w);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(ggufw_write(w, f, zero_fill, NULL, err, sizeof err), 0);
    fclose(f);
    ggufw_free(&w);
    if (gguf_open(path, g, err, sizeof err))
        fail_msg("%s", err);
    if (mi_from_gguf(*g, m, err, sizeof err))
        fail_msg("%s", err);
    return path;
}

static void done(char *path, gguf_t **g, mi_t **m)
{
    mi_free(m);
    gguf_close(g);
    unlink(path);
    free(path);
}

static void add2(ggufw_t *w, const char *name, uint64_t a, uint64_t b)
{
    uint64_t ne[2] = {a, b};
    assert_true(ggufw_tensor(w, name, GGUF_TT_F32, 2, ne) >= 0);
}

/* The qwen35moe shape of the CUDA fixtures, with one tiny tensor per layer
 * kind: layer kinds come from the interval when tensors don't say. */
static void t_qwen35_fixture_arithmetic(void **s)
{
    (void)s;
    ggufw_t *w = ggufw_new(32);
    ggufw_str(w, "general.architecture", "qwen35moe");
    ggufw_u32(w, "qwen35moe.block_count", 40);
    ggufw_u32(w, "qwen35moe.embedding_length", 2048);
    ggufw_u32(w, "qwen35moe.attention.head_count", 16);
    ggufw_u32(w, "qwen35moe.attention.head_count_kv", 2);
    ggufw_u32(w, "qwen35moe.attention.key_length", 256);
    ggufw_u32(w, "qwen35moe.attention.value_length", 256);
    ggufw_u32(w, "qwen35moe.ssm.conv_kernel", 4);
    ggufw_u32(w, "qwen35moe.ssm.state_size", 128);
    ggufw_u32(w, "qwen35moe.ssm.group_count", 16);
    ggufw_u32(w, "qwen35moe.ssm.time_step_rank", 32);
    ggufw_u32(w, "qwen35moe.ssm.inner_size", 4096);
    ggufw_u32(w, "qwen35moe.full_attention_interval", 4);
    ggufw_u32(w, "qwen35moe.expert_count", 256);
    ggufw_u32(w, "qwen35moe.expert_used_count", 8);
    add2(w, "token_embd.weight", 32, 4);
    gguf_t *g;
    mi_t *m;
    char *path = finish(w, &g, &m);
    assert_int_equal(m->n_layer_attn, 10);
    assert_int_equal(m->n_layer_recurrent, 30);
    assert_int_equal(m->layers[3].kind, MI_LAYER_ATTN);
    assert_int_equal(m->layers[0].kind, MI_LAYER_RECURRENT);
    /* seedargs-full-gpu.log: -c 262144 -ctk q4_0 -ctv q4_0 → KV 1440.00 MiB,
     * K 720.00 + V 720.00; RS 62.81 MiB (R 2.81 + S 60.00) for 1 seq */
    assert_int_equal(mi_kv_bytes(m, 262144, GGUF_TT_Q4_0, GGUF_TT_Q4_0), 1440 * MIB);
    assert_int_equal(mi_kv_part_bytes(m, 262144, GGUF_TT_Q4_0, 0), 720 * MIB);
    assert_int_equal(mi_rs_bytes(m, 1), 62 * MIB + (uint64_t)(0.8125 * MIB));
    assert_int_equal(m->rs_s_elems * 4 * 30, 60 * MIB);
    /* defaults.log: KV 5120 MiB = f16 at 262144 */
    assert_int_equal(mi_kv_bytes(m, 262144, GGUF_TT_F16, GGUF_TT_F16), 5120 * MIB);
    /* b24-defaults.log: --fit cut to 49152 cells → 960 MiB */
    assert_int_equal(mi_kv_bytes(m, 49152, GGUF_TT_F16, GGUF_TT_F16), 960 * MIB);
    done(path, &g, &m);
}

/* cpu-tiny-llama fixture: n_embd 64, 4 heads, 2 KV heads, 2 layers:
 * KV 0.50 MiB at 2048 cells f16. */
static void t_tiny_llama_fixture(void **s)
{
    (void)s;
    ggufw_t *w = ggufw_new(32);
    ggufw_str(w, "general.architecture", "llama");
    ggufw_u32(w, "llama.block_count", 2);
    ggufw_u32(w, "llama.embedding_length", 64);
    ggufw_u32(w, "llama.attention.head_count", 4);
    ggufw_u32(w, "llama.attention.head_count_kv", 2);
    add2(w, "blk.0.attn_k.weight", 64, 32);
    add2(w, "blk.1.attn_k.weight", 64, 32);
    add2(w, "output.weight", 64, 8);
    gguf_t *g;
    mi_t *m;
    char *path = finish(w, &g, &m);
    assert_int_equal(m->head_dim_k, 16);
    assert_int_equal(mi_kv_bytes(m, 2048, GGUF_TT_F16, GGUF_TT_F16), MIB / 2);
    assert_int_equal(mi_kv_bytes(m, 1, GGUF_TT_Q8_0, GGUF_TT_F16), 2 * (34 + 64));
    assert_int_equal(mi_rs_bytes(m, 1), 0);
    assert_int_equal(m->layers[0].bytes, 64 * 32 * 4);
    assert_int_equal(m->bytes_output, 64 * 8 * 4);
    assert_int_equal(m->n_params, 64 * 32 * 2 + 64 * 8);
    done(path, &g, &m);
}

static void t_per_layer_kv_and_swa(void **s)
{
    (void)s;
    ggufw_t *w = ggufw_new(32);
    ggufw_str(w, "general.architecture", "gemma3");
    ggufw_u32(w, "gemma3.block_count", 4);
    ggufw_u32(w, "gemma3.embedding_length", 256);
    ggufw_u32(w, "gemma3.attention.head_count", 8);
    int32_t kvh[4] = {4, 2, 0, 2};
    ggufw_arr_i32(w, "gemma3.attention.head_count_kv", 4, kvh);
    ggufw_u32(w, "gemma3.attention.key_length", 32);
    ggufw_u32(w, "gemma3.attention.sliding_window", 1024);
    int32_t pat[4] = {1, 0, 0, 1};
    ggufw_arr_i32(w, "gemma3.attention.sliding_window_pattern", 4, pat);
    add2(w, "token_embd.weight", 32, 4);
    gguf_t *g;
    mi_t *m;
    char *path = finish(w, &g, &m);
    assert_int_equal(m->n_head_kv, 4);
    assert_int_equal(m->n_layer_swa, 2);
    assert_int_equal(m->n_layer_attn, 1);
    assert_int_equal(m->n_layer_recurrent, 1); /* 0 KV heads: holds no KV */
    /* f16, 32768 cells: full layer 32768*2*32*2*2; swa layers hold 1536 cells */
    uint64_t full = 32768ull * (2 * 32 * 2) * 2;
    uint64_t swa = 1536ull * (4 * 32 * 2) * 2 + 1536ull * (2 * 32 * 2) * 2;
    assert_int_equal(mi_kv_bytes(m, 32768, GGUF_TT_F16, GGUF_TT_F16), full + swa);
    assert_true(strstr(m->warn, "") != NULL);
    done(path, &g, &m);
}

/* gemma4-style: SWA layers with their own head size, the last layers
 * sharing earlier layers' KV. */
static void t_swa_head_dims_and_shared_kv(void **s)
{
    (void)s;
    ggufw_t *w = ggufw_new(32);
    ggufw_str(w, "general.architecture", "gemma4");
    ggufw_u32(w, "gemma4.block_count", 4);
    ggufw_u32(w, "gemma4.embedding_length", 256);
    ggufw_u32(w, "gemma4.attention.head_count", 8);
    int32_t kvh[4] = {4, 2, 4, 2};
    ggufw_arr_i32(w, "gemma4.attention.head_count_kv", 4, kvh);
    ggufw_u32(w, "gemma4.attention.key_length", 128);
    ggufw_u32(w, "gemma4.attention.value_length", 128);
    ggufw_u32(w, "gemma4.attention.key_length_swa", 32);
    ggufw_u32(w, "gemma4.attention.value_length_swa", 32);
    ggufw_u32(w, "gemma4.attention.sliding_window", 512);
    bool pat[4] = {true, false, true, false};
    ggufw_arr_bool(w, "gemma4.attention.sliding_window_pattern", 4, pat);
    ggufw_u32(w, "gemma4.attention.shared_kv_layers", 2);
    add2(w, "token_embd.weight", 256, 4);
    gguf_t *g;
    mi_t *m;
    char *path = finish(w, &g, &m);
    assert_int_equal(m->n_layer_swa, 2);
    assert_int_equal(m->n_layer_attn, 2);
    assert_int_equal(m->layers[0].head_dim_k, 32);
    assert_int_equal(m->layers[1].head_dim_k, 128);
    assert_false(m->layers[1].kv_shared);
    assert_true(m->layers[2].kv_shared && m->layers[3].kv_shared);
    /* layers 0 (SWA, 1024 cells = pad(512 + 512)) and 1 (full) hold KV */
    uint64_t want = 1024ull * 4 * 32 * 2 * 2 + 8192ull * 2 * 128 * 2 * 2;
    assert_int_equal(mi_kv_bytes(m, 8192, GGUF_TT_F16, GGUF_TT_F16), want);
    mi_kv_opts_t o = {.n_ubatch = 1024};
    assert_int_equal(mi_kv_bytes_ex(m, 8192, GGUF_TT_F16, GGUF_TT_F16, &o),
                     1536ull * 4 * 32 * 2 * 2 + 8192ull * 2 * 128 * 2 * 2);
    o.swa_full = true;
    assert_int_equal(mi_kv_bytes_ex(m, 8192, GGUF_TT_F16, GGUF_TT_F16, &o),
                     8192ull * 4 * 32 * 2 * 2 + 8192ull * 2 * 128 * 2 * 2);
    assert_string_equal(m->warn, "");
    done(path, &g, &m);
}

static void t_unknown_arch(void **s)
{
    (void)s;
    ggufw_t *w = ggufw_new(32);
    ggufw_str(w, "general.architecture", "futurenet");
    ggufw_u32(w, "futurenet.block_count", 1);
    ggufw_u32(w, "futurenet.embedding_length", 64);
    ggufw_u32(w, "futurenet.attention.head_count", 2);
    add2(w, "blk.0.attn_k.weight", 64, 64);
    gguf_t *g;
    mi_t *m;
    char *path = finish(w, &g, &m);
    assert_non_null(strstr(m->warn, "not known"));
    assert_int_equal(mi_kv_bytes(m, 100, GGUF_TT_F32, GGUF_TT_F32), 100ull * 64 * 4 * 2);
    done(path, &g, &m);
}

static void t_no_arch(void **s)
{
    (void)s;
    ggufw_t *w = ggufw_new(32);
    ggufw_str(w, "general.name", "x");
    char err[256], *path = xasprintf("/tmp/variet-test-mi-noarch-%ld.gguf", (long)getpid());
    FILE *f = fopen(path, "wb");
    assert_int_equal(ggufw_write(w, f, zero_fill, NULL, err, sizeof err), 0);
    fclose(f);
    ggufw_free(&w);
    gguf_t *g;
    mi_t *m = NULL;
    assert_int_equal(gguf_open(path, &g, err, sizeof err), 0);
    assert_true(mi_from_gguf(g, &m, err, sizeof err) < 0);
    assert_null(m);
    assert_non_null(strstr(err, "general.architecture"));
    gguf_close(&g);
    unlink(path);
    free(path);
}

static void t_mmproj(void **s)
{
    (void)s;
    ggufw_t *w = ggufw_new(32);
    ggufw_str(w, "general.architecture", "clip");
    ggufw_bool(w, "clip.has_vision_encoder", 1);
    ggufw_str(w, "clip.projector_type", "qwen3vl_merger");
    ggufw_u32(w, "clip.vision.image_size", 768);
    ggufw_u32(w, "clip.vision.patch_size", 16);
    ggufw_u32(w, "clip.vision.spatial_merge_size", 2);
    ggufw_u32(w, "clip.vision.embedding_length", 1152);
    ggufw_u32(w, "clip.vision.block_count", 27);
    add2(w, "v.patch_embd.weight", 16, 16);
    gguf_t *g;
    mi_t *m;
    char *path = finish(w, &g, &m);
    assert_true(m->is_mmproj);
    assert_int_equal(m->v_patch_size, 16);
    /* 768 px: 768/32 = 24 → 576 tokens; 1024 → 32² = 1024; 2048 → 64² = 4096 */
    assert_int_equal(mi_image_tokens(m, 768), 576);
    assert_int_equal(mi_image_tokens(m, 1024), 1024);
    assert_int_equal(mi_image_tokens(m, 2048), 4096);
    assert_int_equal(mi_image_tokens(m, 640), 400);
    /* non-square: sides rounded to multiples of 32 (300x200 -> 288x192) */
    assert_int_equal(mi_image_tokens_wh(m, 300, 200, NULL), 54);
    assert_int_equal(mi_image_tokens_wh(m, 1000, 300, NULL), 279);
    /* causal: the ubatch does not cap it */
    mi_image_opts_t small_ub = {.n_ubatch = 256};
    assert_int_equal(mi_image_tokens_wh(m, 1024, 1024, &small_ub), 1024);
    /* --image-max-tokens 256: 1024² scaled down to 512² */
    mi_image_opts_t cap = {.max_tokens = 256};
    assert_int_equal(mi_image_tokens_wh(m, 1024, 1024, &cap), 256);
    assert_int_equal(mi_image_tokens_wh(m, 0, 10, NULL), 0);
    done(path, &g, &m);

    /* gemma4v: 48-px cells (patch 16, 3x3 pooling), 70..1120 tokens, capped
     * at n_ubatch (non-causal). Every value below is the image's
     * n_tokens_batch in a real llama-server b11669 run. */
    w = ggufw_new(32);
    ggufw_str(w, "general.architecture", "clip");
    ggufw_str(w, "clip.vision.projector_type", "gemma4v");
    ggufw_u32(w, "clip.vision.image_size", 224);
    ggufw_u32(w, "clip.vision.patch_size", 16);
    add2(w, "v.patch_embd.weight", 16, 16);
    path = finish(w, &g, &m);
    assert_int_equal(m->v_merge, 3);
    assert_int_equal(mi_image_tokens(m, 640), 169);  /* 624² */
    assert_int_equal(mi_image_tokens(m, 768), 256);
    assert_int_equal(mi_image_tokens(m, 1024), 441); /* 1008² */
    assert_int_equal(mi_image_tokens(m, 2048), 484); /* over 512: 1056² */
    assert_int_equal(mi_image_tokens_wh(m, 300, 200, NULL), 77);  /* under 70: 528x336 */
    assert_int_equal(mi_image_tokens_wh(m, 1000, 300, NULL), 126);
    mi_image_opts_t ub2048 = {.n_ubatch = 2048};
    assert_int_equal(mi_image_tokens_wh(m, 2048, 2048, &ub2048), 1089); /* 1120 max: 33² */
    done(path, &g, &m);

    /* absurd geometry from a file: no answer, no undefined arithmetic */
    w = ggufw_new(32);
    ggufw_str(w, "general.architecture", "clip");
    ggufw_str(w, "clip.projector_type", "qwen3vl_merger");
    ggufw_u32(w, "clip.vision.patch_size", 0xFFFFFFFFu);
    ggufw_u32(w, "clip.vision.spatial_merge_size", 0xFFFFFFFFu);
    add2(w, "v.patch_embd.weight", 16, 16);
    path = finish(w, &g, &m);
    assert_int_equal(mi_image_tokens(m, 1024), 0);
    mi_image_opts_t odd = {.min_tokens = 5000, .max_tokens = 10};
    assert_int_equal(mi_image_tokens_wh(m, 1u << 30, 7, &odd), 0);
    done(path, &g, &m);
    w = ggufw_new(32);
    ggufw_str(w, "general.architecture", "clip");
    ggufw_str(w, "clip.projector_type", "qwen3vl_merger");
    ggufw_u32(w, "clip.vision.patch_size", 16);
    add2(w, "v.patch_embd.weight", 16, 16);
    path = finish(w, &g, &m);
    /* min above max: the max wins (1024² with at most 10 tokens: 3x3) */
    assert_int_equal(mi_image_tokens_wh(m, 1024, 1024, &odd), 9);
    done(path, &g, &m);

    w = ggufw_new(32);
    ggufw_str(w, "general.architecture", "clip");
    ggufw_str(w, "clip.projector_type", "gemma3");
    ggufw_u32(w, "clip.vision.image_size", 896);
    ggufw_u32(w, "clip.vision.patch_size", 14);
    add2(w, "v.patch_embd.weight", 14, 14);
    path = finish(w, &g, &m);
    /* fixed 896² → (896/14)² / 4² = 256 whatever the input size */
    assert_int_equal(mi_image_tokens(m, 640), 256);
    assert_int_equal(mi_image_tokens(m, 2048), 256);
    done(path, &g, &m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_qwen35_fixture_arithmetic),
        cmocka_unit_test(t_tiny_llama_fixture),
        cmocka_unit_test(t_per_layer_kv_and_swa),
        cmocka_unit_test(t_swa_head_dims_and_shared_kv),
        cmocka_unit_test(t_unknown_arch),
        cmocka_unit_test(t_no_arch),
        cmocka_unit_test(t_mmproj),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
