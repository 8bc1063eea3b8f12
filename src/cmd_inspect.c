/*
 * cmd_inspect.c — `variet inspect FILE [--json] [--ctx N,...]`: what a GGUF
 * holds and what it will cost in memory (weights, KV cache per context and
 * cache type, recurrent state), as text or JSON.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "gguf.h"
#include "modelinfo.h"
#include "util.h"

static const uint64_t ctx_default[] = {4096, 32768, 131072, 262144};
static const uint32_t kv_types[] = {GGUF_TT_F16, GGUF_TT_Q8_0, GGUF_TT_Q4_0};
static const uint32_t image_px[] = {640, 768, 1024, 2048};
#define N_KVT 3
#define MAX_CTX 8

static const char *kind_name(mi_layer_kind_t k)
{
    return k == MI_LAYER_RECURRENT ? "recurrent" : k == MI_LAYER_SWA ? "swa" : "attention";
}

static json_t *to_json(const mi_t *m, const uint64_t *ctx, size_t n_ctx)
{
    json_t *o = json_object();
    json_object_set_new(o, "file_size", json_integer((json_int_t)m->file_size));
    json_object_set_new(o, "gguf_version", json_integer(m->gguf_version));
    json_object_set_new(o, "architecture", json_string(m->arch));
    json_object_set_new(o, "name", json_string(m->name));
    json_object_set_new(o, "tensors", json_integer((json_int_t)m->n_tensors));
    json_object_set_new(o, "params", json_integer((json_int_t)m->n_params));
    json_object_set_new(o, "params_active", json_integer((json_int_t)m->n_params_active));
    json_object_set_new(o, "weight_bytes", json_integer((json_int_t)m->weight_bytes));
    if (m->warn[0])
        json_object_set_new(o, "warning", json_string(m->warn));
    if (m->is_mmproj) {
        json_t *v = json_object();
        json_object_set_new(v, "projector_type", json_string(m->projector));
        json_object_set_new(v, "image_size", json_integer(m->v_image_size));
        json_object_set_new(v, "patch_size", json_integer(m->v_patch_size));
        json_object_set_new(v, "merge", json_integer(m->v_merge));
        json_object_set_new(v, "embedding_length", json_integer(m->v_n_embd));
        json_object_set_new(v, "block_count", json_integer(m->v_n_layer));
        json_object_set_new(v, "head_count", json_integer(m->v_n_head));
        json_object_set_new(v, "projection_dim", json_integer(m->v_proj_dim));
        json_t *it = json_object();
        for (size_t i = 0; i < sizeof image_px / sizeof image_px[0]; i++) {
            char k[16];
            snprintf(k, sizeof k, "%u", image_px[i]);
            json_object_set_new(it, k, json_integer(mi_image_tokens(m, image_px[i])));
        }
        json_object_set_new(v, "image_tokens", it);
        json_object_set_new(o, "vision", v);
    }
    json_t *h = json_object();
    json_object_set_new(h, "n_layer", json_integer(m->n_layer));
    json_object_set_new(h, "n_layer_attention", json_integer(m->n_layer_attn));
    json_object_set_new(h, "n_layer_recurrent", json_integer(m->n_layer_recurrent));
    json_object_set_new(h, "n_layer_swa", json_integer(m->n_layer_swa));
    json_object_set_new(h, "n_embd", json_integer(m->n_embd));
    json_object_set_new(h, "n_head", json_integer(m->n_head));
    json_object_set_new(h, "n_head_kv", json_integer(m->n_head_kv));
    json_object_set_new(h, "head_dim_k", json_integer(m->head_dim_k));
    json_object_set_new(h, "head_dim_v", json_integer(m->head_dim_v));
    json_object_set_new(h, "n_ff", json_integer(m->n_ff));
    json_object_set_new(h, "n_expert", json_integer(m->n_expert));
    json_object_set_new(h, "n_expert_used", json_integer(m->n_expert_used));
    json_object_set_new(h, "n_expert_shared", json_integer(m->n_ff_shexp && !m->n_expert_shared ? 1 : m->n_expert_shared));
    json_object_set_new(h, "n_ff_exp", json_integer(m->n_ff_exp));
    json_object_set_new(h, "n_swa", json_integer(m->n_swa));
    json_object_set_new(h, "n_ctx_train", json_integer(m->n_ctx_train));
    json_object_set_new(h, "n_vocab", json_integer(m->n_vocab));
    json_object_set_new(o, "hparams", h);

    json_t *bt = json_object();
    for (int t = 0; t < GGUF_TT_COUNT; t++)
        if (m->tensors_by_type[t]) {
            json_t *e = json_object();
            json_object_set_new(e, "tensors", json_integer((json_int_t)m->tensors_by_type[t]));
            json_object_set_new(e, "bytes", json_integer((json_int_t)m->bytes_by_type[t]));
            json_object_set_new(bt, gguf_type_name((uint32_t)t), e);
        }
    json_object_set_new(o, "bytes_by_type", bt);
    json_t *layers = json_array();
    for (uint32_t i = 0; i < m->n_layer; i++) {
        json_t *e = json_object();
        json_object_set_new(e, "kind", json_string(kind_name(m->layers[i].kind)));
        json_object_set_new(e, "bytes", json_integer((json_int_t)m->layers[i].bytes));
        json_object_set_new(e, "n_head_kv", json_integer(m->layers[i].n_head_kv));
        json_array_append_new(layers, e);
    }
    json_object_set_new(o, "layers", layers);
    json_object_set_new(o, "bytes_non_layer", json_integer((json_int_t)m->bytes_nonlayer));

    if (!m->is_mmproj) {
        json_t *kv = json_object();
        for (int k = 0; k < N_KVT; k++) {
            json_t *e = json_object();
            json_object_set_new(e, "per_token", json_integer((json_int_t)mi_kv_bytes(m, 1, kv_types[k], kv_types[k])));
            for (size_t c = 0; c < n_ctx; c++) {
                char key[32];
                snprintf(key, sizeof key, "%llu", (unsigned long long)ctx[c]);
                json_object_set_new(e, key, json_integer((json_int_t)mi_kv_bytes(m, ctx[c], kv_types[k], kv_types[k])));
            }
            json_object_set_new(kv, gguf_type_name(kv_types[k]), e);
        }
        json_object_set_new(o, "kv_bytes", kv);
        json_object_set_new(o, "recurrent_state_bytes_per_seq", json_integer((json_int_t)mi_rs_bytes(m, 1)));
    }
    return o;
}

static void print_text(const mi_t *m, const char *path, const uint64_t *ctx, size_t n_ctx)
{
    char a[32], b[32];
    printf("%s\n", path);
    printf("  architecture   %s%s%s\n", m->arch, m->name[0] ? "  name " : "", m->name);
    printf("  file           %s, GGUF v%u, %llu tensors\n", fmt_bytes(m->file_size, a, sizeof a),
           m->gguf_version, (unsigned long long)m->n_tensors);
    if (m->n_expert)
        printf("  parameters     %.3f M total, %.3f M active per token\n", m->n_params / 1e6,
               m->n_params_active / 1e6);
    else
        printf("  parameters     %.3f M\n", m->n_params / 1e6);
    if (m->warn[0])
        printf("  warning        %s\n", m->warn);
    if (m->is_mmproj) {
        printf("  vision         projector %s, image %u px, patch %u, merge %u, %u blocks, n_embd %u, %u heads\n",
               m->projector, m->v_image_size, m->v_patch_size, m->v_merge, m->v_n_layer, m->v_n_embd,
               m->v_n_head);
        printf("  image tokens  ");
        for (size_t i = 0; i < sizeof image_px / sizeof image_px[0]; i++)
            printf(" %upx=%u", image_px[i], mi_image_tokens(m, image_px[i]));
        printf("\n");
    } else {
        printf("  layers         %u: %u full attention, %u recurrent, %u sliding window\n", m->n_layer,
               m->n_layer_attn, m->n_layer_recurrent, m->n_layer_swa);
        printf("  attention      n_embd %u, %u heads, %u KV heads, head dim k %u / v %u\n", m->n_embd,
               m->n_head, m->n_head_kv, m->head_dim_k, m->head_dim_v);
        if (m->n_expert)
            printf("  experts        %u, %u used per token, %s shared, n_ff_exp %u\n", m->n_expert,
                   m->n_expert_used, m->n_ff_shexp || m->n_expert_shared ? "with" : "no", m->n_ff_exp);
        else if (m->n_ff)
            printf("  feed forward   %u\n", m->n_ff);
        printf("  context        %u trained, vocab %u\n", m->n_ctx_train, m->n_vocab);
    }
    printf("  bytes by type ");
    for (int t = 0; t < GGUF_TT_COUNT; t++)
        if (m->tensors_by_type[t])
            printf(" %s: %s (%llu)", gguf_type_name((uint32_t)t), fmt_bytes(m->bytes_by_type[t], a, sizeof a),
                   (unsigned long long)m->tensors_by_type[t]);
    printf("\n  weights        %s (non-layer %s)\n", fmt_bytes(m->weight_bytes, a, sizeof a),
           fmt_bytes(m->bytes_nonlayer, b, sizeof b));
    if (m->n_layer) {
        printf("  by layer      ");
        for (uint32_t i = 0; i < m->n_layer; i++) {
            if (i && i % 4 == 0)
                printf("\n                ");
            printf(" %2u:%c %s", i, "ARS"[m->layers[i].kind], fmt_bytes(m->layers[i].bytes, a, sizeof a));
        }
        printf("\n");
    }
    if (m->is_mmproj || !m->n_layer)
        return;
    printf("  KV cache        per token");
    for (size_t c = 0; c < n_ctx; c++)
        printf(" %10lluK", (unsigned long long)(ctx[c] / 1024));
    printf("\n");
    for (int k = 0; k < N_KVT; k++) {
        printf("    %-6s      %10s", gguf_type_name(kv_types[k]),
               fmt_bytes(mi_kv_bytes(m, 1, kv_types[k], kv_types[k]), a, sizeof a));
        for (size_t c = 0; c < n_ctx; c++)
            printf(" %11s", fmt_bytes(mi_kv_bytes(m, ctx[c], kv_types[k], kv_types[k]), a, sizeof a));
        printf("\n");
    }
    if (m->n_layer_recurrent)
        printf("  recurrent      %s per sequence (conv %llu + state %llu f32 per layer, %u layers)\n",
               fmt_bytes(mi_rs_bytes(m, 1), a, sizeof a), (unsigned long long)m->rs_r_elems,
               (unsigned long long)m->rs_s_elems, m->n_layer_recurrent);
}

static int exec_inspect(cmd_ctx_t *c)
{
    const char *path = c->args.pos[0], *ctx_arg = cmd_opt(c, "--ctx");
    bool json = cmd_flag(c, "--json");
    uint64_t ctx[MAX_CTX];
    size_t n_ctx = 4;
    memcpy(ctx, ctx_default, sizeof ctx_default);

    if (ctx_arg) {
        /* comma-separated list of context sizes */
        char *list = xstrdup(ctx_arg), *save = NULL;
        n_ctx = 0;
        for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            uint64_t v;
            if (n_ctx == MAX_CTX || !parse_size(tok, &v) || v == 0 || v > (1ull << 32)) {
                fprintf(stderr, "variet inspect: --ctx wants up to %d sizes like 4096,32K; got '%s'\n", MAX_CTX,
                        tok);
                free(list);
                return CMD_USAGE;
            }
            ctx[n_ctx++] = v;
        }
        free(list);
        if (!n_ctx)
            return cmd_usage(c->entry, "--ctx wants sizes like 4096,32K");
    }

    char err[512];
    gguf_t *g = NULL;
    mi_t *m = NULL;
    if (gguf_open(path, &g, err, sizeof err)) {
        fprintf(stderr, "variet inspect: %s\n", err);
        return CMD_USAGE;
    }
    if (mi_from_gguf(g, &m, err, sizeof err)) {
        fprintf(stderr, "variet inspect: %s: %s\n", path, err);
        gguf_close(&g);
        return CMD_USAGE;
    }
    if (json) {
        json_t *o = to_json(m, ctx, n_ctx);
        json_object_set_new(o, "path", json_string(path));
        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(o);
    } else {
        print_text(m, path, ctx, n_ctx);
    }
    mi_free(&m);
    gguf_close(&g);
    return CMD_OK;
}

static const cli_opt_t inspect_opts[] = {
    {"--json", 0, NULL, "print JSON instead of text", 0},
    {"--ctx", 0, "4096,32K,...", "context sizes for the KV-cache table (default 4K,32K,128K,256K; up to 8)", 0},
    {0},
};

const cmd_entry_t cmd_inspect_entry = {
    .name = "inspect",
    .pos_usage = "FILE.gguf",
    .summary = "show a GGUF model's architecture, parameters, bytes, KV cache and recurrent state",
    .opts = inspect_opts,
    .min_pos = 1,
    .max_pos = 1,
    .exec = exec_inspect,
};
