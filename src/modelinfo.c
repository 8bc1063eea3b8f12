/*
 * modelinfo.c — facts about a model from its GGUF metadata and tensor table.
 *
 * Layer kinds follow llama.cpp: a layer with ssm_* tensors is recurrent
 * (gated delta net / mamba); otherwise it holds KV, sliding-window when the
 * architecture's pattern says so. For hybrids with a full-attention interval
 * the tensor table and the interval agree; the table wins where they don't.
 * KV bytes are rows of n_embd_{k,v}_gqa elements of the cache type per cell;
 * recurrent state follows llama_hparams::n_embd_r()/n_embd_s().
 */
#include "modelinfo.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static bool key_u32(const gguf_t *g, const char *arch, const char *suffix, uint32_t *v)
{
    char k[160];
    uint64_t u;
    snprintf(k, sizeof k, "%s.%s", arch, suffix);
    if (!gguf_get_uint(g, k, &u) || u > UINT32_MAX)
        return false;
    *v = (uint32_t)u;
    return true;
}

static void copy_str(gguf_str_t s, char *dst, size_t cap)
{
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    memcpy(dst, s.ptr, n);
    dst[n] = 0;
}

/* "blk.12.attn_q.weight" → 12, or -1. */
static long layer_of(gguf_str_t name, const char **rest)
{
    if (name.len < 6 || memcmp(name.ptr, "blk.", 4) != 0)
        return -1;
    long v = 0;
    uint64_t i = 4;
    if (name.ptr[i] < '0' || name.ptr[i] > '9')
        return -1;
    while (i < name.len && name.ptr[i] >= '0' && name.ptr[i] <= '9' && v < 1000000)
        v = v * 10 + (name.ptr[i++] - '0');
    if (i >= name.len || name.ptr[i] != '.')
        return -1;
    *rest = name.ptr + i + 1;
    return v;
}

static bool has_prefix_n(const char *s, size_t n, const char *p)
{
    size_t k = strlen(p);
    return n >= k && memcmp(s, p, k) == 0;
}

static bool contains_n(const char *s, size_t n, const char *p)
{
    size_t k = strlen(p);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(s + i, p, k) == 0)
            return true;
    return false;
}

static void warn_add(mi_t *m, const char *what)
{
    size_t l = strlen(m->warn);
    snprintf(m->warn + l, sizeof m->warn - l, "%s%s", l ? "; " : "", what);
}

/* Projector facts. Image sizing follows llama.cpp's mtmd as built in b11669:
 * the Qwen-VL mergers and gemma4v resize dynamically (the "smart resize" of
 * mtmd-image.cpp) within a token budget; gemma4v's budget is 70..1120 tokens
 * there (the Aug-2026 source said 40..280) and, because the image is decoded
 * with non-causal attention in one ubatch, llama-server caps it at n_ubatch. */
static void mmproj_facts(const gguf_t *g, mi_t *m)
{
    gguf_str_t s;
    m->is_mmproj = true;
    if (gguf_get_str(g, "clip.projector_type", &s) || gguf_get_str(g, "clip.vision.projector_type", &s))
        copy_str(s, m->projector, sizeof m->projector);
    else
        snprintf(m->projector, sizeof m->projector, "mlp");
    key_u32(g, "clip.vision", "image_size", &m->v_image_size);
    key_u32(g, "clip.vision", "patch_size", &m->v_patch_size);
    key_u32(g, "clip.vision", "embedding_length", &m->v_n_embd);
    key_u32(g, "clip.vision", "feed_forward_length", &m->v_n_ff);
    key_u32(g, "clip.vision", "block_count", &m->v_n_layer);
    key_u32(g, "clip.vision", "attention.head_count", &m->v_n_head);
    key_u32(g, "clip.vision", "projection_dim", &m->v_proj_dim);
    const char *p = m->projector;
    uint32_t merge = strstr(p, "qwen") ? 2 : strstr(p, "gemma3") ? 4 : 1;
    if (!strcmp(p, "gemma4v")) {
        merge = 3; /* the pooling kernel */
        m->v_dynamic = true;
        m->v_min_tokens = 70;
        m->v_max_tokens = 1120;
        m->v_non_causal = true;
    } else if (!strcmp(p, "qwen2vl_merger") || !strcmp(p, "qwen2.5vl_merger") ||
               !strcmp(p, "qwen3vl_merger")) {
        m->v_dynamic = true;
        m->v_min_tokens = 8;
        m->v_max_tokens = 4096;
    }
    if (!key_u32(g, "clip.vision", "spatial_merge_size", &m->v_merge) &&
        !key_u32(g, "clip.vision", "projector.scale_factor", &m->v_merge))
        m->v_merge = merge;
}

int mi_from_gguf(const gguf_t *g, mi_t **out, char *err, size_t errlen)
{
    gguf_str_t s;
    mi_t *m = xcalloc(1, sizeof *m); /* caller frees with mi_free */
    const char *a = m->arch;

    *out = NULL;
    if (!gguf_get_str(g, "general.architecture", &s) || s.len == 0 || s.len >= sizeof m->arch) {
        snprintf(err, errlen, "general.architecture is missing or not a string");
        mi_free(&m);
        return -EINVAL;
    }
    copy_str(s, m->arch, sizeof m->arch);
    if (gguf_get_str(g, "general.name", &s))
        copy_str(s, m->name, sizeof m->name);
    m->file_size = gguf_file_size(g);
    m->gguf_version = gguf_version(g);
    m->n_tensors = gguf_n_tensors(g);

    if (!strcmp(a, "clip"))
        mmproj_facts(g, m);

    key_u32(g, a, "block_count", &m->n_layer);
    key_u32(g, a, "embedding_length", &m->n_embd);
    key_u32(g, a, "context_length", &m->n_ctx_train);
    key_u32(g, a, "feed_forward_length", &m->n_ff);
    key_u32(g, a, "expert_count", &m->n_expert);
    key_u32(g, a, "expert_used_count", &m->n_expert_used);
    key_u32(g, a, "expert_shared_count", &m->n_expert_shared);
    key_u32(g, a, "expert_feed_forward_length", &m->n_ff_exp);
    key_u32(g, a, "expert_shared_feed_forward_length", &m->n_ff_shexp);
    key_u32(g, a, "attention.sliding_window", &m->n_swa);
    key_u32(g, a, "ssm.conv_kernel", &m->ssm_d_conv);
    key_u32(g, a, "ssm.inner_size", &m->ssm_d_inner);
    key_u32(g, a, "ssm.state_size", &m->ssm_d_state);
    key_u32(g, a, "ssm.group_count", &m->ssm_n_group);
    key_u32(g, a, "ssm.time_step_rank", &m->ssm_dt_rank);

    /* head counts: scalar or per-layer array */
    char key[160];
    snprintf(key, sizeof key, "%s.attention.head_count", a);
    long hi = gguf_find_key(g, key);
    if (hi >= 0 && gguf_kv(g, (size_t)hi)->type == GGUF_VT_ARRAY) {
        int64_t v;
        if (gguf_arr_int(g, gguf_kv(g, (size_t)hi), 0, &v) && v > 0 && v < (1 << 20))
            m->n_head = (uint32_t)v;
    } else {
        key_u32(g, a, "attention.head_count", &m->n_head);
    }
    uint32_t kv_scalar = m->n_head;
    snprintf(key, sizeof key, "%s.attention.head_count_kv", a);
    long kvi = gguf_find_key(g, key);
    const gguf_kv_t *kv_arr = NULL;
    if (kvi >= 0 && gguf_kv(g, (size_t)kvi)->type == GGUF_VT_ARRAY)
        kv_arr = gguf_kv(g, (size_t)kvi);
    else
        key_u32(g, a, "attention.head_count_kv", &kv_scalar);
    if (!key_u32(g, a, "attention.key_length", &m->head_dim_k))
        m->head_dim_k = m->n_head ? m->n_embd / m->n_head : 0;
    if (!key_u32(g, a, "attention.value_length", &m->head_dim_v))
        m->head_dim_v = m->head_dim_k;
    if (!key_u32(g, a, "attention.key_length_swa", &m->head_dim_k_swa))
        m->head_dim_k_swa = m->head_dim_k;
    if (!key_u32(g, a, "attention.value_length_swa", &m->head_dim_v_swa))
        m->head_dim_v_swa = m->head_dim_v;
    key_u32(g, a, "attention.shared_kv_layers", &m->n_kv_shared);

    uint64_t nv;
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", NULL, &nv))
        m->n_vocab = (uint32_t)nv;
    else if (!key_u32(g, a, "vocab_size", &m->n_vocab)) {
        const gguf_tensor_t *te = gguf_find_tensor(g, "token_embd.weight");
        if (te)
            m->n_vocab = (uint32_t)te->ne[1];
    }

    /* tensor walk: bytes by type, by layer, params, expert params */
    if (m->n_layer > 100000) {
        snprintf(err, errlen, "%s.block_count %u is implausible", a, m->n_layer);
        mi_free(&m);
        return -EINVAL;
    }
    m->layers = xcalloc(m->n_layer ? m->n_layer : 1, sizeof *m->layers);
    bool *recurrent = xcalloc(m->n_layer ? m->n_layer : 1, sizeof *recurrent);
    bool *has_attn = xcalloc(m->n_layer ? m->n_layer : 1, sizeof *has_attn);
    uint64_t expert_params = 0, shared_tied = 0;
    bool have_output = false;
    for (size_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor_t *t = gguf_tensor(g, i);
        m->n_params += t->nelem;
        m->weight_bytes += t->nbytes;
        m->bytes_by_type[t->type] += t->nbytes;
        m->tensors_by_type[t->type]++;
        if (t->n_dims >= 2 && gguf_type_block(t->type) > 1)
            m->quantized = true;
        /* widest output row of a per-layer matrix (ne[1]), experts counted as used */
        if (t->n_dims >= 2 && t->ne[1] > m->max_width && t->ne[1] < (1u << 24) &&
            !gguf_str_eq(t->name, "output.weight") && !gguf_str_eq(t->name, "token_embd.weight"))
            m->max_width = (uint32_t)t->ne[1];
        const char *rest = NULL;
        long il = layer_of(t->name, &rest);
        if (il >= 0 && (uint64_t)il < m->n_layer) {
            size_t rn = t->name.len - (size_t)(rest - t->name.ptr);
            m->layers[il].bytes += t->nbytes;
            m->layers[il].params += t->nelem;
            if (has_prefix_n(rest, rn, "ssm_"))
                recurrent[il] = true;
            if (has_prefix_n(rest, rn, "attn_k.") || has_prefix_n(rest, rn, "attn_kv") ||
                has_prefix_n(rest, rn, "attn_k_b"))
                has_attn[il] = true;
            mi_layer_t *L = &m->layers[il];
            bool exps = contains_n(rest, rn, "_exps");
            if (exps) {
                expert_params += t->nelem;
                L->exp_bytes += t->nbytes;
            }
            if (has_prefix_n(rest, rn, "ffn_gate")) {
                L->ffn_gate_bytes += t->nbytes;
                if (exps)
                    L->exp_gate_bytes += t->nbytes;
            } else if (has_prefix_n(rest, rn, "ffn_up")) {
                L->ffn_up_bytes += t->nbytes;
                if (exps)
                    L->exp_up_bytes += t->nbytes;
            } else if (has_prefix_n(rest, rn, "ffn_down")) {
                L->ffn_down_bytes += t->nbytes;
                if (exps)
                    L->exp_down_bytes += t->nbytes;
            }
        } else {
            m->bytes_nonlayer += t->nbytes;
            if (gguf_str_eq(t->name, "output.weight")) {
                m->bytes_output += t->nbytes;
                have_output = true;
            } else if (gguf_str_eq(t->name, "output_norm.weight")) {
                m->bytes_output += t->nbytes;
            } else if (gguf_str_eq(t->name, "token_embd.weight")) {
                shared_tied = t->nbytes;
                m->bytes_tok_embd = t->nbytes;
            }
        }
    }
    if (!have_output) /* tied: llama.cpp duplicates token_embd for the output layer */
        m->bytes_output += shared_tied;
    m->n_params_active = m->n_params;
    if (m->n_expert && m->n_expert_used && expert_params)
        m->n_params_active = m->n_params - expert_params + expert_params / m->n_expert * m->n_expert_used;
    if (gguf_n_tensors(g)) {
        const gguf_tensor_t *last = NULL;
        for (size_t i = 0; i < gguf_n_tensors(g); i++) {
            const gguf_tensor_t *t = gguf_tensor(g, i);
            if (!last || t->offset > last->offset)
                last = t;
        }
        m->data_bytes = last->offset + last->nbytes;
    }

    /* layer kinds */
    uint32_t interval = 0;
    key_u32(g, a, "full_attention_interval", &interval);
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", a);
    long swp = gguf_find_key(g, key);
    bool any_tensor_kind = false;
    for (uint32_t il = 0; il < m->n_layer; il++)
        any_tensor_kind |= recurrent[il] || has_attn[il];
    for (uint32_t il = 0; il < m->n_layer; il++) {
        mi_layer_t *L = &m->layers[il];
        bool rec;
        if (any_tensor_kind)
            rec = recurrent[il];
        else if (interval)
            rec = (il + 1) % interval != 0;
        else
            rec = m->ssm_d_state && !m->n_head;
        if (rec) {
            L->kind = MI_LAYER_RECURRENT;
            L->n_head_kv = 0;
            m->n_layer_recurrent++;
            continue;
        }
        L->kind = MI_LAYER_ATTN;
        L->n_head_kv = kv_scalar;
        int64_t v;
        if (kv_arr && gguf_arr_int(g, kv_arr, il, &v) && v >= 0 && v < (1 << 20))
            L->n_head_kv = (uint32_t)v;
        if (m->n_swa && swp >= 0) {
            const gguf_kv_t *p = gguf_kv(g, (size_t)swp);
            int64_t on;
            if (p->type == GGUF_VT_ARRAY && gguf_arr_int(g, p, il, &on) && on)
                L->kind = MI_LAYER_SWA;
        }
        if (L->n_head_kv == 0) { /* e.g. per-layer arrays with 0 = no attention */
            L->kind = MI_LAYER_RECURRENT;
            m->n_layer_recurrent++;
            continue;
        }
        L->head_dim_k = L->kind == MI_LAYER_SWA ? m->head_dim_k_swa : m->head_dim_k;
        L->head_dim_v = L->kind == MI_LAYER_SWA ? m->head_dim_v_swa : m->head_dim_v;
        /* llama.cpp: layers from n_layer - shared_kv_layers on read the KV of
         * an earlier layer of their kind and allocate none */
        L->kv_shared = m->n_kv_shared && il + m->n_kv_shared >= m->n_layer;
        if (L->kind == MI_LAYER_SWA)
            m->n_layer_swa++;
        else
            m->n_layer_attn++;
        if (L->n_head_kv > m->n_head_kv)
            m->n_head_kv = L->n_head_kv;
    }
    if (m->n_swa && swp < 0 && m->n_layer)
        warn_add(m, "sliding window without a per-layer pattern: all layers counted as full attention");
    if (m->n_kv_shared >= m->n_layer && m->n_kv_shared)
        warn_add(m, "shared_kv_layers covers every layer");
    free(recurrent);
    free(has_attn);

    if (m->n_layer_recurrent && m->ssm_d_inner) {
        uint64_t conv = m->ssm_d_conv ? m->ssm_d_conv - 1 : 0;
        m->rs_r_elems = conv * ((uint64_t)m->ssm_d_inner + 2ull * m->ssm_n_group * m->ssm_d_state);
        m->rs_s_elems = (uint64_t)m->ssm_d_state * m->ssm_d_inner;
    } else if (m->n_layer_recurrent) {
        warn_add(m, "recurrent layers without ssm.* keys: recurrent state unknown");
    }
    if (!m->is_mmproj) {
        if (!m->n_layer)
            warn_add(m, "no block_count key");
        static const char *const known[] = {"llama", "qwen2", "qwen3", "qwen3moe", "qwen35moe",
                                            "qwen35", "qwen3next", "mistral3", "gemma3", "gemma4", "phi3",
                                            "gpt-oss", "deepseek2", "glm4moe", "mamba", "mamba2", NULL};
        bool k = false;
        for (int i = 0; known[i]; i++)
            k |= !strcmp(known[i], a);
        if (!k)
            warn_add(m, "architecture not known to variet: figures use generic keys and the tensor table");
    }
    *out = m;
    return 0;
}

void mi_free(mi_t **mp)
{
    if (!*mp)
        return;
    free((*mp)->layers);
    free(*mp);
    *mp = NULL;
}

static uint64_t row_bytes(uint32_t type, uint64_t n)
{
    uint64_t b = 0;
    if (!gguf_type_nbytes(type, n, &b)) /* not a multiple of the block: round up */
        b = (n + gguf_type_block(type) - 1) / gguf_type_block(type) * gguf_type_bytes(type);
    return b;
}

static uint64_t swa_cells(const mi_t *m, uint64_t n_ctx, const mi_kv_opts_t *o)
{
    /* llama_kv_cache_iswa: pad(min(n_ctx, n_swa * n_seq + n_ubatch), 256) with
     * n_seq 1 (not unified); n_ctx is a multiple of 256 there, so this equals
     * min(n_ctx, pad(...)), which also keeps "per token" (n_ctx 1) at one
     * cell. All n_ctx cells with --swa-full. */
    uint64_t ub = o && o->n_ubatch ? o->n_ubatch : 512;
    if (o && o->swa_full)
        return n_ctx;
    uint64_t c = ((uint64_t)m->n_swa + ub + 255) / 256 * 256;
    return c < n_ctx ? c : n_ctx;
}

uint64_t mi_kv_part_bytes(const mi_t *m, uint64_t n_ctx, uint32_t type, int which)
{
    return mi_kv_part_bytes_ex(m, n_ctx, type, which, NULL);
}

uint64_t mi_kv_part_bytes_ex(const mi_t *m, uint64_t n_ctx, uint32_t type, int which, const mi_kv_opts_t *o)
{
    uint64_t total = 0;
    for (uint32_t il = 0; il < m->n_layer; il++) {
        const mi_layer_t *L = &m->layers[il];
        if (L->kind == MI_LAYER_RECURRENT || L->kv_shared)
            continue;
        uint32_t hd = which == 0 ? L->head_dim_k : L->head_dim_v;
        uint64_t cells = L->kind == MI_LAYER_SWA ? swa_cells(m, n_ctx, o) : n_ctx;
        total += cells * row_bytes(type, (uint64_t)hd * L->n_head_kv);
    }
    return total;
}

uint64_t mi_kv_bytes(const mi_t *m, uint64_t n_ctx, uint32_t tk, uint32_t tv)
{
    return mi_kv_bytes_ex(m, n_ctx, tk, tv, NULL);
}

uint64_t mi_kv_bytes_ex(const mi_t *m, uint64_t n_ctx, uint32_t tk, uint32_t tv, const mi_kv_opts_t *o)
{
    return mi_kv_part_bytes_ex(m, n_ctx, tk, 0, o) + mi_kv_part_bytes_ex(m, n_ctx, tv, 1, o);
}

uint64_t mi_rs_bytes(const mi_t *m, uint32_t n_seq)
{
    if (n_seq == 0)
        n_seq = 1;
    return (uint64_t)m->n_layer_recurrent * (m->rs_r_elems + m->rs_s_elems) * 4ull * n_seq;
}

/* mtmd-image.cpp's calc_size_preserved_ratio (transformers' smart_resize):
 * sides rounded to multiples of `align`, scaled down or up (keeping the
 * aspect ratio) when the area leaves [min_px, max_px]. In float, as there. */
static void smart_resize(uint32_t w, uint32_t h, uint32_t align, uint64_t min_px, uint64_t max_px,
                         uint64_t *ow, uint64_t *oh)
{
    float fa = (float)align;
    int64_t a = align;
    int64_t hb = (int64_t)roundf((float)h / fa) * a, wb = (int64_t)roundf((float)w / fa) * a;
    if (hb < a)
        hb = a;
    if (wb < a)
        wb = a;
    if ((uint64_t)(hb * wb) > max_px) {
        float beta = sqrtf((float)((uint64_t)h * w) / (float)max_px);
        hb = (int64_t)floorf((float)h / beta / fa) * a;
        wb = (int64_t)floorf((float)w / beta / fa) * a;
        if (hb < a)
            hb = a;
        if (wb < a)
            wb = a;
    } else if ((uint64_t)(hb * wb) < min_px) {
        float beta = sqrtf((float)min_px / (float)((uint64_t)h * w));
        hb = (int64_t)ceilf((float)h * beta / fa) * a;
        wb = (int64_t)ceilf((float)w * beta / fa) * a;
    }
    *ow = (uint64_t)wb;
    *oh = (uint64_t)hb;
}

uint32_t mi_image_tokens_wh(const mi_t *m, uint32_t w, uint32_t h, const mi_image_opts_t *o)
{
    if (!m->is_mmproj || !m->v_patch_size || !w || !h)
        return 0;
    uint64_t merge = m->v_merge ? m->v_merge : 1;
    if (m->v_dynamic) {
        uint64_t align = (uint64_t)m->v_patch_size * merge;
        uint64_t tmin = o && o->min_tokens ? o->min_tokens : m->v_min_tokens;
        uint64_t tmax = o && o->max_tokens ? o->max_tokens : m->v_max_tokens;
        uint64_t ub = o && o->n_ubatch ? o->n_ubatch : 512;
        if (m->v_non_causal && tmax > ub)
            tmax = ub;
        /* values from the file or the caller: keep the float arithmetic in range */
        if (align > 65536 || w > (1u << 20) || h > (1u << 20))
            return 0;
        if (tmax > (1u << 24))
            tmax = 1u << 24;
        if (!tmax)
            tmax = 1;
        if (tmin > tmax)
            tmin = tmax;
        uint64_t rw, rh;
        smart_resize(w, h, (uint32_t)align, tmin * align * align, tmax * align * align, &rw, &rh);
        return (uint32_t)((rw / align) * (rh / align));
    }
    /* fixed-resolution encoders: image resized to image_size² */
    const char *p = m->projector;
    uint64_t n = m->v_image_size / m->v_patch_size;
    uint64_t t = n * n;
    if (strstr(p, "gemma3") || strstr(p, "idefics3") || strstr(p, "internvl") || strstr(p, "llama4")) {
        uint64_t mm = m->v_merge ? m->v_merge : 4;
        t /= mm * mm;
    }
    return (uint32_t)t;
}

uint32_t mi_image_tokens(const mi_t *m, uint32_t px)
{
    return mi_image_tokens_wh(m, px, px, NULL);
}
