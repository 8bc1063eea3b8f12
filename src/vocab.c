/*
 * vocab.c — vocabulary comparison of a target and a draft model (rules in
 * vocab.h). The token arrays are walked once, side by side, with gguf's
 * sequential iterator: a 248K-token vocabulary is compared in a few
 * milliseconds, before the gateway, bench or tune spawns llama-server.
 *
 * Special tokens compared: the ones that decide what a generated sequence
 * starts and ends with (bos, eos, eot, eom) and the unknown token, plus
 * whether BOS/EOS are added. Padding, separator and mask ids are not: they
 * never occur in generated text, and checkpoints of one family set them
 * differently (a fine-tune's padding token) without changing what the
 * draft's ids mean.
 */
#include "vocab.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* A token's text for a message: at most 48 bytes, control bytes escaped. */
static void show(char *out, size_t cap, gguf_str_t s)
{
    size_t k = 0;
    for (uint64_t i = 0; i < s.len && i < 48 && k + 5 < cap; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\')
            k += (size_t)snprintf(out + k, cap - k, "\\x%02X", c);
        else
            out[k++] = (char)c;
    }
    if (s.len > 48 && k + 4 < cap)
        k += (size_t)snprintf(out + k, cap - k, "...");
    out[k < cap ? k : cap - 1] = 0;
}

static bool str_eq(gguf_str_t a, gguf_str_t b) { return a.len == b.len && !memcmp(a.ptr, b.ptr, a.len); }

static const char *const token_types[] = {"undefined", "normal", "unknown", "control", "user-defined", "unused",
                                          "byte"};

static const char *type_name(int64_t t, char *buf, size_t cap)
{
    if (t >= 0 && t < (int64_t)(sizeof token_types / sizeof token_types[0]))
        return token_types[t];
    snprintf(buf, cap, "%lld", (long long)t);
    return buf;
}

/* A string key's value, or `dflt` when absent. */
static gguf_str_t str_key(const gguf_t *g, const char *key, const char *dflt)
{
    gguf_str_t s = {dflt, dflt ? strlen(dflt) : 0};
    gguf_get_str(g, key, &s);
    return s;
}

int vocab_compare(const gguf_t *a, const gguf_t *b, char *diff, size_t difflen)
{
    const gguf_t *g[2] = {a, b};
    static const char *const who[2] = {"the target", "the draft"};
    const gguf_kv_t *tok[2];
    for (int k = 0; k < 2; k++) {
        gguf_str_t m;
        if (!gguf_get_str(g[k], "tokenizer.ggml.model", &m)) {
            snprintf(diff, difflen, "%s has no tokenizer.ggml.model (not a text model)", who[k]);
            return -EINVAL;
        }
        tok[k] = gguf_find_kv(g[k], "tokenizer.ggml.tokens");
        if (!tok[k] || tok[k]->type != GGUF_VT_ARRAY || tok[k]->v.arr.type != GGUF_VT_STRING) {
            snprintf(diff, difflen, "%s has no tokenizer.ggml.tokens", who[k]);
            return -EINVAL;
        }
    }
    char x[160], y[160];

    /* what kind of tokenizer, and how text is split before it */
    static const struct {
        const char *key, *dflt;
    } kinds[] = {{"tokenizer.ggml.model", NULL}, {"tokenizer.ggml.pre", "default"}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        gguf_str_t sa = str_key(a, kinds[i].key, kinds[i].dflt), sb = str_key(b, kinds[i].key, kinds[i].dflt);
        if (!str_eq(sa, sb)) {
            show(x, sizeof x, sa);
            show(y, sizeof y, sb);
            snprintf(diff, difflen, "%s: %s vs %s", kinds[i].key, x, y);
            return 1;
        }
    }

    uint64_t na = tok[0]->v.arr.n, nb = tok[1]->v.arr.n;
    if ((na > nb ? na - nb : nb - na) > VOCAB_MAX_SIZE_DIFF) {
        snprintf(diff, difflen, "token count: %llu vs %llu (llama-server allows at most %d apart)",
                 (unsigned long long)na, (unsigned long long)nb, VOCAB_MAX_SIZE_DIFF);
        return 1;
    }

    /* the special tokens' ids, before the texts: an id that moved explains
     * more than the first text that differs */
    static const char *const ids[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                      "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id",
                                      "tokenizer.ggml.unknown_token_id"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        uint64_t va = 0, vb = 0;
        bool ha = gguf_get_uint(a, ids[i], &va), hb = gguf_get_uint(b, ids[i], &vb);
        if (ha != hb || va != vb) {
            snprintf(x, sizeof x, "%llu", (unsigned long long)va);
            snprintf(y, sizeof y, "%llu", (unsigned long long)vb);
            snprintf(diff, difflen, "%s: %s vs %s", ids[i], ha ? x : "unset", hb ? y : "unset");
            return 1;
        }
    }
    static const char *const flags[] = {"tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        bool va = false, vb = false;
        bool ha = gguf_get_bool(a, flags[i], &va), hb = gguf_get_bool(b, flags[i], &vb);
        if (ha != hb || va != vb) {
            snprintf(diff, difflen, "%s: %s vs %s", flags[i], ha ? (va ? "true" : "false") : "unset",
                     hb ? (vb ? "true" : "false") : "unset");
            return 1;
        }
    }

    /* every token's text and type, side by side in one pass */
    const gguf_kv_t *ty[2] = {gguf_find_kv(a, "tokenizer.ggml.token_type"),
                              gguf_find_kv(b, "tokenizer.ggml.token_type")};
    bool types = ty[0] && ty[1] && ty[0]->type == GGUF_VT_ARRAY && ty[1]->type == GGUF_VT_ARRAY;
    gguf_arr_it_t ia, ib;
    gguf_arr_iter(a, tok[0], &ia);
    gguf_arr_iter(b, tok[1], &ib);
    uint64_t n = na < nb ? na : nb;
    for (uint64_t i = 0; i < n; i++) {
        gguf_str_t sa, sb;
        if (!gguf_arr_next_str(&ia, &sa) || !gguf_arr_next_str(&ib, &sb)) {
            snprintf(diff, difflen, "token %llu: unreadable", (unsigned long long)i);
            return -EINVAL;
        }
        if (i < VOCAB_CHECK_START)
            continue;
        if (!str_eq(sa, sb)) {
            show(x, sizeof x, sa);
            show(y, sizeof y, sb);
            snprintf(diff, difflen, "token %llu: '%s' vs '%s'", (unsigned long long)i, x, y);
            return 1;
        }
        int64_t tya, tyb;
        if (types && gguf_arr_int(a, ty[0], i, &tya) && gguf_arr_int(b, ty[1], i, &tyb) && tya != tyb) {
            show(x, sizeof x, sa);
            snprintf(diff, difflen, "token %llu ('%s') type: %s vs %s", (unsigned long long)i, x,
                     type_name(tya, y, sizeof y), type_name(tyb, y + 80, sizeof y - 80));
            return 1;
        }
    }
    return 0;
}
