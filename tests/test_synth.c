/*
 * test_synth.c — synthetic models: every preset's tensor table matches its
 * architecture (names, shapes, kinds), files parse back with the reader,
 * output is deterministic per seed, weight types are honoured with fallback
 * where a row does not fit a block, and quantized blocks have finite scales.
 * gemma4: the sliding-window pattern, per-layer head geometry, tied output,
 * rope_freqs, the dense MLP beside the experts. Projectors: clip keys, the
 * encoder's tensors, an output width equal to the text model they pair
 * with. Drafts: the same vocabulary as their target, or one that differs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "modelinfo.h"
#include "synth.h"
#include "util.h"

static char *write_preset(const char *name, int wtype, uint64_t seed)
{
    char err[256];
    char *path = xasprintf("/tmp/variet-test-synth-%ld-%s-%d-%llu.gguf", (long)getpid(), name, wtype,
                           (unsigned long long)seed);
    synth_opts_t o = {.wtype = wtype, .seed = seed};
    int rc = synth_write(synth_find(name), &o, path, err, sizeof err);
    if (rc)
        fail_msg("synth %s: %s", name, err);
    return path;
}

static float f16_to_f32(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    float v = e ? ldexpf(1.0f + m / 1024.0f, e - 15) : ldexpf(m / 1024.0f, -14);
    return (h & 0x8000) ? -v : v;
}

static void t_tiny_presets_parse(void **state)
{
    (void)state;
    for (const synth_preset_t *p = synth_presets; p->name; p++) {
        if (!p->tiny)
            continue;
        char *path = write_preset(p->name, -1, 1);
        gguf_t *g = NULL;
        mi_t *m = NULL;
        char err[256];
        assert_int_equal(gguf_open(path, &g, err, sizeof err), 0);
        assert_int_equal(mi_from_gguf(g, &m, err, sizeof err), 0);
        assert_string_equal(m->arch, synth_arch_name(p->arch));
        assert_true(m->warn[0] == 0);
        assert_true(gguf_file_size(g) < 5u << 20);
        assert_int_equal(gguf_file_size(g), synth_file_size(p, NULL));
        if (p->arch == SYNTH_CLIP) {
            assert_true(m->is_mmproj);
            assert_string_equal(m->projector, synth_proj_name(p->proj));
            assert_int_equal(m->v_n_layer, p->n_layer);
            assert_int_equal(m->v_n_embd, p->n_embd);
            assert_int_equal(m->v_proj_dim, p->v_proj_dim);
            assert_true(gguf_find_key(g, "tokenizer.ggml.tokens") < 0);
            mi_free(&m);
            gguf_close(&g);
            unlink(path);
            free(path);
            continue;
        }
        assert_int_equal(m->n_layer, p->n_layer);
        assert_int_equal(m->n_embd, p->n_embd);
        assert_int_equal(m->n_vocab, p->n_vocab);
        assert_int_equal(m->head_dim_k, p->head_dim);
        assert_int_equal(m->n_expert, p->n_expert);
        /* token_embd and output shapes */
        const gguf_tensor_t *te = gguf_find_tensor(g, "token_embd.weight");
        assert_non_null(te);
        assert_int_equal(te->ne[0], p->n_embd);
        assert_int_equal(te->ne[1], p->n_vocab);
        if (p->arch == SYNTH_QWEN35MOE) {
            uint32_t attn = 0;
            for (uint32_t i = 0; i < p->n_layer; i++) {
                bool full = (i + 1) % p->full_attn_interval == 0;
                assert_int_equal(m->layers[i].kind, full ? MI_LAYER_ATTN : MI_LAYER_RECURRENT);
                attn += full;
                char nm[64];
                snprintf(nm, sizeof nm, "blk.%u.attn_q.weight", i);
                const gguf_tensor_t *q = gguf_find_tensor(g, nm);
                if (full) {
                    /* gated query: twice the heads' width */
                    assert_non_null(q);
                    assert_int_equal(q->ne[1], 2ull * p->n_head * p->head_dim);
                } else {
                    assert_null(q);
                    snprintf(nm, sizeof nm, "blk.%u.ssm_a", i);
                    assert_non_null(gguf_find_tensor(g, nm));
                }
                snprintf(nm, sizeof nm, "blk.%u.ffn_gate_inp_shexp.weight", i);
                const gguf_tensor_t *sh = gguf_find_tensor(g, nm);
                assert_non_null(sh);
                assert_int_equal(sh->n_dims, 1);
            }
            assert_int_equal(m->n_layer_attn, attn);
            assert_int_equal(m->n_layer_recurrent, p->n_layer - attn);
            assert_true(m->rs_r_elems > 0 && m->rs_s_elems > 0);
        }
        if (p->n_expert) {
            assert_true(m->n_params_active < m->n_params);
            const gguf_tensor_t *x = gguf_find_tensor(g, "blk.0.ffn_down_exps.weight");
            assert_non_null(x);
            assert_int_equal(x->ne[0], p->n_ff_exp);
            assert_int_equal(x->ne[1], p->n_embd);
            assert_int_equal(x->ne[2], p->n_expert);
        } else {
            assert_int_equal(m->n_params_active, m->n_params);
        }
        /* vocabulary: byte fallback tokens in place */
        long ti = gguf_find_key(g, "tokenizer.ggml.tokens");
        assert_true(ti >= 0);
        gguf_str_t s;
        assert_true(gguf_arr_str(g, gguf_kv(g, (size_t)ti), 3 + 0x0A, &s));
        assert_true(gguf_str_eq(s, "<0x0A>"));
        assert_true(gguf_get_str(g, "tokenizer.chat_template", &s));
        mi_free(&m);
        gguf_close(&g);
        unlink(path);
        free(path);
    }
}

static void open_preset(const char *name, char **path, gguf_t **g, mi_t **m)
{
    char err[256];
    *path = write_preset(name, -1, 1);
    if (gguf_open(*path, g, err, sizeof err) || mi_from_gguf(*g, m, err, sizeof err))
        fail_msg("%s: %s", name, err);
}

static void close_preset(char **path, gguf_t **g, mi_t **m)
{
    mi_free(m);
    gguf_close(g);
    unlink(*path);
    free(*path);
    *path = NULL;
}

/* blk.<i>.<suffix> */
static const gguf_tensor_t *tensor(const gguf_t *g, uint32_t i, const char *suffix)
{
    char n[96];
    snprintf(n, sizeof n, "blk.%u.%s", i, suffix);
    return gguf_find_tensor(g, n);
}

static void t_gemma4(void **state)
{
    (void)state;
    const synth_preset_t *p = synth_find("tiny-gemma4");
    char *path;
    gguf_t *g;
    mi_t *m;
    open_preset(p->name, &path, &g, &m);
    /* five sliding-window layers, then a global one */
    assert_int_equal(m->n_layer_swa, 5);
    assert_int_equal(m->n_layer_attn, 1);
    assert_int_equal(m->n_swa, p->n_swa);
    long pat = gguf_find_key(g, "gemma4.attention.sliding_window_pattern");
    assert_true(pat >= 0);
    assert_int_equal(gguf_kv(g, (size_t)pat)->v.arr.type, GGUF_VT_BOOL);
    for (uint32_t i = 0; i < p->n_layer; i++) {
        bool global = (i + 1) % p->swa_period == 0;
        const mi_layer_t *L = &m->layers[i];
        assert_int_equal(L->kind, global ? MI_LAYER_ATTN : MI_LAYER_SWA);
        uint32_t hd = global ? p->head_dim : p->head_dim_swa;
        uint32_t kv = global ? p->n_head_kv : p->n_head_kv_swa;
        assert_int_equal(L->head_dim_k, hd);
        assert_int_equal(L->n_head_kv, kv);
        const gguf_tensor_t *q = tensor(g, i, "attn_q.weight");
        const gguf_tensor_t *k = tensor(g, i, "attn_k.weight");
        assert_non_null(q);
        assert_non_null(k);
        assert_int_equal(q->ne[1], (uint64_t)hd * p->n_head);
        assert_int_equal(k->ne[1], (uint64_t)hd * kv);
        /* attention_k_eq_v: the global layers' V is their K */
        if (global)
            assert_null(tensor(g, i, "attn_v.weight"));
        else
            assert_non_null(tensor(g, i, "attn_v.weight"));
        assert_int_equal(tensor(g, i, "attn_q_norm.weight")->ne[0], hd);
        /* the dense MLP beside the routed experts, each with its norms */
        assert_int_equal(tensor(g, i, "ffn_gate.weight")->ne[1], p->n_ff);
        assert_int_equal(tensor(g, i, "ffn_down_exps.weight")->ne[2], p->n_expert);
        assert_int_equal(tensor(g, i, "ffn_gate_inp.scale")->ne[0], p->n_embd);
        assert_int_equal(tensor(g, i, "ffn_down_exps.scale")->ne[0], p->n_expert);
        static const char *const norms[] = {"post_attention_norm", "post_ffw_norm", "pre_ffw_norm_2",
                                            "post_ffw_norm_1", "post_ffw_norm_2", "layer_output_scale"};
        for (size_t n = 0; n < sizeof norms / sizeof norms[0]; n++) {
            char suffix[64];
            snprintf(suffix, sizeof suffix, "%s.weight", norms[n]);
            assert_non_null(tensor(g, i, suffix));
        }
    }
    /* tied output; proportional rope: a quarter of the global head rotates */
    assert_null(gguf_find_tensor(g, "output.weight"));
    const gguf_tensor_t *rf = gguf_find_tensor(g, "rope_freqs.weight");
    assert_non_null(rf);
    assert_int_equal(rf->ne[0], p->head_dim / 2);
    const float *v = (const float *)(gguf_data(g) + gguf_data_offset(g) + rf->offset);
    for (uint32_t i = 0; i < p->head_dim / 2; i++)
        assert_true(i < p->head_dim / 8 ? v[i] == 1.0f : v[i] > 1e29f);
    /* KV: 1 global layer x 4096 cells + 5 SWA layers x pad(128 + 512) = 768
     * cells — llama-server b11669 prints 1.00 MiB + 0.94 MiB for -c 4096 */
    uint64_t full = 4096ull * 1 * 64 * 2 * 2, swa = 768ull * 5 * 2 * 32 * 2 * 2;
    assert_int_equal(mi_kv_bytes(m, 4096, GGUF_TT_F16, GGUF_TT_F16), full + swa);
    mi_kv_opts_t o = {.swa_full = true};
    assert_int_equal(mi_kv_bytes_ex(m, 4096, GGUF_TT_F16, GGUF_TT_F16, &o),
                     full + 4096ull * 5 * 2 * 32 * 2 * 2);
    close_preset(&path, &g, &m);
}

static void t_projectors(void **state)
{
    (void)state;
    for (const synth_preset_t *p = synth_presets; p->name; p++) {
        if (p->arch != SYNTH_CLIP)
            continue;
        /* the projector's output is the paired text model's input width */
        const synth_preset_t *t = synth_find(p->pairs_with);
        assert_non_null(t);
        assert_int_equal(p->v_proj_dim, t->n_embd);
        assert_int_equal(p->tiny, t->tiny);
        if (!p->tiny)
            continue;
        char *path;
        gguf_t *g;
        mi_t *m;
        open_preset(p->name, &path, &g, &m);
        const gguf_tensor_t *pe = gguf_find_tensor(g, "v.patch_embd.weight");
        assert_non_null(pe);
        assert_int_equal(pe->n_dims, 4);
        assert_int_equal(pe->ne[0], p->v_patch);
        assert_int_equal(pe->ne[2], 3);
        assert_int_equal(pe->ne[3], p->n_embd);
        const gguf_tensor_t *pos = gguf_find_tensor(g, "v.position_embd.weight");
        assert_non_null(pos);
        assert_int_equal(pos->ne[1], p->v_n_pos);
        gguf_str_t s;
        if (p->proj == SYNTH_PROJ_GEMMA4V) {
            assert_true(gguf_get_str(g, "clip.vision.projector_type", &s));
            assert_int_equal(pos->ne[2], 2); /* x and y tables */
            const gguf_tensor_t *mm = gguf_find_tensor(g, "mm.input_projection.weight");
            assert_non_null(mm);
            assert_int_equal(mm->ne[1], p->v_proj_dim);
            assert_non_null(gguf_find_tensor(g, "v.blk.1.ffn_post_norm.weight"));
            assert_int_equal(m->v_merge, 3);
        } else {
            assert_true(gguf_get_str(g, "clip.projector_type", &s));
            assert_non_null(gguf_find_tensor(g, "v.patch_embd.weight.1"));
            assert_int_equal(gguf_find_tensor(g, "v.blk.0.attn_qkv.weight")->ne[1], 3ull * p->n_embd);
            const gguf_tensor_t *mm = gguf_find_tensor(g, "mm.2.weight");
            assert_non_null(mm);
            assert_int_equal(mm->ne[0], 4ull * p->n_embd); /* 2x2 merged patches */
            assert_int_equal(mm->ne[1], p->v_proj_dim);
            /* image_size is the learned position grid's side */
            assert_int_equal((uint64_t)p->v_image_size * p->v_image_size,
                             (uint64_t)p->v_n_pos * p->v_patch * p->v_patch);
            assert_int_equal(m->v_merge, 2);
        }
        assert_true(gguf_str_eq(s, synth_proj_name(p->proj)));
        long mean = gguf_find_key(g, "clip.vision.image_mean");
        assert_true(mean >= 0);
        assert_int_equal(gguf_kv(g, (size_t)mean)->v.arr.n, 3);
        close_preset(&path, &g, &m);
    }
}

/* Token i's text in the file's vocabulary. */
static gguf_str_t token(const gguf_t *g, uint32_t i)
{
    gguf_str_t s = {0};
    long ti = gguf_find_key(g, "tokenizer.ggml.tokens");
    assert_true(ti >= 0);
    assert_true(gguf_arr_str(g, gguf_kv(g, (size_t)ti), i, &s));
    return s;
}

static void t_drafts(void **state)
{
    (void)state;
    const synth_preset_t *d = synth_find("tiny-draft"), *x = synth_find("tiny-draft-othervocab");
    assert_non_null(d);
    assert_non_null(x);
    assert_string_equal(d->pairs_with, "tiny-qwen35moe");
    char *pt, *pd, *px;
    gguf_t *gt, *gd, *gx;
    mi_t *mt, *md, *mx;
    open_preset(d->pairs_with, &pt, &gt, &mt);
    open_preset(d->name, &pd, &gd, &md);
    open_preset(x->name, &px, &gx, &mx);
    assert_int_equal(md->n_vocab, mt->n_vocab);
    assert_int_equal(mx->n_vocab, mt->n_vocab);
    assert_true(md->n_params < mt->n_params);
    long first_diff = -1;
    for (uint32_t i = 0; i < mt->n_vocab; i++) {
        gguf_str_t a = token(gt, i), b = token(gd, i), c = token(gx, i);
        assert_true(a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0);
        if (first_diff < 0 && (a.len != c.len || memcmp(a.ptr, c.ptr, a.len) != 0))
            first_diff = i;
    }
    /* specials and bytes agree; the word pieces differ from the first one on */
    assert_int_equal(first_diff, 261);
    close_preset(&pt, &gt, &mt);
    close_preset(&pd, &gd, &md);
    close_preset(&px, &gx, &mx);
}

static void t_deterministic(void **state)
{
    (void)state;
    char *a = write_preset("tiny-qwen3moe", -1, 7), *b = write_preset("tiny-qwen3moe", -1, 7);
    char *c = write_preset("tiny-qwen3moe", -1, 8);
    char *da, *db, *dc, err[128];
    size_t la, lb, lc;
    assert_int_equal(file_read_all(a, 64u << 20, &da, &la, err, sizeof err), 0);
    assert_int_equal(file_read_all(b, 64u << 20, &db, &lb, err, sizeof err), 0);
    assert_int_equal(file_read_all(c, 64u << 20, &dc, &lc, err, sizeof err), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, la);
    assert_int_equal(la, lc);
    assert_memory_not_equal(da, dc, la);
    free(da); free(db); free(dc);
    unlink(a); unlink(b); unlink(c);
    free(a); free(b); free(c);
}

static void t_weight_types(void **state)
{
    (void)state;
    const int types[] = {GGUF_TT_F32, GGUF_TT_F16, GGUF_TT_Q8_0, GGUF_TT_Q4_0, GGUF_TT_Q4_K};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        char *path = write_preset("tiny-llama-q", types[k], 1);
        gguf_t *g = NULL;
        char err[256];
        assert_int_equal(gguf_open(path, &g, err, sizeof err), 0);
        size_t n_want = 0;
        for (size_t i = 0; i < gguf_n_tensors(g); i++) {
            const gguf_tensor_t *t = gguf_tensor(g, i);
            if (t->n_dims == 1) {
                assert_int_equal(t->type, GGUF_TT_F32);
                continue;
            }
            if ((int)t->type == types[k])
                n_want++;
            else /* fallback only where the row does not fit the block */
                assert_true(t->ne[0] % gguf_type_block((uint32_t)types[k]) != 0 ||
                            t->type == GGUF_TT_F32);
            if (t->type == GGUF_TT_Q8_0 || t->type == GGUF_TT_Q4_0 || t->type == GGUF_TT_Q4_K) {
                const uint8_t *d = gguf_data(g) + gguf_data_offset(g) + t->offset;
                uint32_t bb = gguf_type_bytes(t->type);
                for (uint64_t off = 0; off < t->nbytes; off += bb) {
                    uint16_t h;
                    memcpy(&h, d + off, 2);
                    float f = f16_to_f32(h);
                    assert_true(isfinite(f) && f > 0 && f < 1);
                }
            }
            if (t->type == GGUF_TT_F32) {
                const float *v = (const float *)(gguf_data(g) + gguf_data_offset(g) + t->offset);
                for (uint64_t e = 0; e < t->nelem; e++)
                    assert_true(isfinite(v[e]) && fabsf(v[e]) <= 1.0f);
            }
        }
        assert_true(n_want > 0);
        gguf_close(&g);
        unlink(path);
        free(path);
    }
}

static void t_full_size_presets(void **state)
{
    (void)state;
    /* sizes only: the real files are written on GPU machines */
    const synth_preset_t *p = synth_find("qwen35-35b-a3b");
    assert_non_null(p);
    uint64_t sz = synth_file_size(p, NULL);
    assert_true(sz > 15ull << 30 && sz < 25ull << 30);
    p = synth_find("qwen3-30b-a3b");
    assert_non_null(p);
    sz = synth_file_size(p, NULL);
    assert_true(sz > 14ull << 30 && sz < 20ull << 30);
    assert_null(synth_find("no-such-preset"));

    /* the Gemma 4 26B-A4B shape, written sparse (no data): 25.2B parameters,
     * 3.8B active per token, as published; KV at -c 4096 f16 as llama-server
     * b11669 printed it for this file: 80.00 MiB global + 300.00 MiB SWA */
    char err[256];
    char *path = xasprintf("/tmp/variet-test-synth-%ld-gemma4-26b.gguf", (long)getpid());
    synth_opts_t o = {.wtype = -1, .seed = 1, .sparse = true};
    assert_int_equal(synth_write(synth_find("gemma4-26b-a4b"), &o, path, err, sizeof err), 0);
    gguf_t *g;
    mi_t *m;
    assert_int_equal(gguf_open(path, &g, err, sizeof err), 0);
    assert_int_equal(mi_from_gguf(g, &m, err, sizeof err), 0);
    assert_int_equal(m->n_layer_swa, 25);
    assert_int_equal(m->n_layer_attn, 5);
    assert_true(m->n_params > 25100000000ull && m->n_params < 25300000000ull);
    assert_true(m->n_params_active > 3750000000ull && m->n_params_active < 3900000000ull);
    assert_int_equal(mi_kv_bytes(m, 4096, GGUF_TT_F16, GGUF_TT_F16), (80ull + 300ull) << 20);
    mi_free(&m);
    gguf_close(&g);
    unlink(path);
    free(path);

    /* projectors: ~550M-parameter vision towers */
    static const char *const mm[] = {"gemma4-26b-a4b-mmproj", "qwen35-35b-a3b-mmproj"};
    for (size_t i = 0; i < 2; i++) {
        path = xasprintf("/tmp/variet-test-synth-%ld-%s.gguf", (long)getpid(), mm[i]);
        assert_int_equal(synth_write(synth_find(mm[i]), &o, path, err, sizeof err), 0);
        assert_int_equal(gguf_open(path, &g, err, sizeof err), 0);
        assert_int_equal(mi_from_gguf(g, &m, err, sizeof err), 0);
        assert_true(m->is_mmproj);
        assert_int_equal(m->v_n_layer, 27);
        assert_true(m->n_params > 400000000ull && m->n_params < 600000000ull);
        mi_free(&m);
        gguf_close(&g);
        unlink(path);
        free(path);
    }
}

static void t_bad_type(void **state)
{
    (void)state;
    char err[256];
    synth_opts_t o = {.wtype = GGUF_TT_Q6_K, .seed = 1};
    assert_int_not_equal(synth_write(synth_find("tiny-llama"), &o, "/tmp/variet-x.gguf", err, sizeof err), 0);
    assert_non_null(strstr(err, "not supported"));
    o.wtype = -1;
    assert_int_not_equal(synth_write(synth_find("tiny-llama"), &o, "/nonexistent-dir/x.gguf", err, sizeof err), 0);
    assert_non_null(strstr(err, "nonexistent-dir"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_tiny_presets_parse),
        cmocka_unit_test(t_gemma4),
        cmocka_unit_test(t_projectors),
        cmocka_unit_test(t_drafts),
        cmocka_unit_test(t_deterministic),
        cmocka_unit_test(t_weight_types),
        cmocka_unit_test(t_full_size_presets),
        cmocka_unit_test(t_bad_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
