/*
 * test_vocab.c — vocabulary comparison of a target and a draft: the tiny
 * synthetic models (the draft that shares tiny-qwen35moe's vocabulary, the
 * one that does not, a 512-token vocabulary 128 tokens larger; the
 * full-size Qwen3.5 draft and its target, Gemma 4 against it), and small
 * GGUFs written with one difference each (pre-tokenizer, tokenizer model,
 * an EOT id, a BOS flag, a token type, a size beyond llama-server's
 * tolerance, a token text with control bytes), each named in the message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "ggufw.h"
#include "synth.h"
#include "util.h"
#include "vocab.h"

static char dir[64];

static gguf_t *open_preset(const char *name)
{
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/%s.gguf", dir, name);
    synth_opts_t o = {.wtype = -1, .sparse = !synth_find(name)->tiny}; /* full-size: shapes only */
    assert_int_equal(synth_write(synth_find(name), &o, path, err, sizeof err), 0);
    gguf_t *g = NULL;
    assert_int_equal(gguf_open(path, &g, err, sizeof err), 0);
    return g;
}

/* A vocabulary-only GGUF: n tokens "t0".."tN" (token `odd` spelt `odd_text`
 * when odd >= 0), types normal (control for the first 3, `odd_type` at
 * odd_type_at), the given tokenizer model / pre (NULL: absent), eot id
 * (-1: absent), add_bos. */
typedef struct {
    uint32_t n;
    int odd;
    const char *odd_text;
    int odd_type_at, odd_type;
    const char *model, *pre;
    int eot;
    int add_bos;
    bool no_tokens;
} spec_t;

static gguf_t *open_spec(const spec_t *s, const char *name)
{
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/%s.gguf", dir, name);
    ggufw_t *w = ggufw_new(32);
    ggufw_str(w, "general.architecture", "llama");
    if (s->model)
        ggufw_str(w, "tokenizer.ggml.model", s->model);
    if (s->pre)
        ggufw_str(w, "tokenizer.ggml.pre", s->pre);
    char **tok = xcalloc(s->n, sizeof *tok);
    int32_t *type = xcalloc(s->n, sizeof *type);
    for (uint32_t i = 0; i < s->n; i++) {
        tok[i] = (int)i == s->odd ? xstrdup(s->odd_text) : xasprintf("t%u", i);
        type[i] = i < 3 ? 3 : (int)i == s->odd_type_at ? s->odd_type : 1;
    }
    if (!s->no_tokens) {
        ggufw_arr_str(w, "tokenizer.ggml.tokens", s->n, (const char *const *)tok);
        ggufw_arr_i32(w, "tokenizer.ggml.token_type", s->n, type);
    }
    ggufw_u32(w, "tokenizer.ggml.bos_token_id", 1);
    ggufw_u32(w, "tokenizer.ggml.eos_token_id", 2);
    if (s->eot >= 0)
        ggufw_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)s->eot);
    ggufw_bool(w, "tokenizer.ggml.add_bos_token", s->add_bos);
    for (uint32_t i = 0; i < s->n; i++)
        free(tok[i]);
    free(tok);
    free(type);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(ggufw_write(w, f, NULL, NULL, err, sizeof err), 0);
    fclose(f);
    ggufw_free(&w);
    gguf_t *g = NULL;
    assert_int_equal(gguf_open(path, &g, err, sizeof err), 0);
    return g;
}

static const spec_t base = {.n = 300, .odd = -1, .odd_type_at = -1, .model = "gpt2", .pre = "qwen35", .eot = 7,
                            .add_bos = 0};

static void expect(const spec_t *a, const spec_t *b, int rc, const char *msg)
{
    gguf_t *ga = open_spec(a, "a"), *gb = open_spec(b, "b");
    char diff[256] = "";
    int r = vocab_compare(ga, gb, diff, sizeof diff);
    if (r != rc || (msg && strcmp(diff, msg)))
        fail_msg("vocab_compare = %d (want %d): '%s' (want '%s')", r, rc, diff, msg ? msg : "");
    gguf_close(&ga);
    gguf_close(&gb);
}

static void t_synth_presets(void **s)
{
    (void)s;
    gguf_t *target = open_preset("tiny-qwen35moe"), *draft = open_preset("tiny-draft"),
           *other = open_preset("tiny-draft-othervocab"), *gemma = open_preset("tiny-gemma4"),
           *big = open_preset("tiny-llama-q"), *proj = open_preset("tiny-qwen35-mmproj");
    char diff[256];
    assert_int_equal(vocab_compare(target, draft, diff, sizeof diff), 0);
    assert_int_equal(vocab_compare(gemma, draft, diff, sizeof diff), 0);
    assert_int_equal(vocab_compare(target, other, diff, sizeof diff), 1);
    /* the first word piece: "▁a" spelt with the alphabet reversed */
    assert_string_equal(diff, "token 261: '\xe2\x96\x81" "a' vs '\xe2\x96\x81" "z'");
    /* 512 against 384 tokens: 128 apart, what llama-server still takes; the
     * 384 they share are the same */
    assert_int_equal(vocab_compare(big, target, diff, sizeof diff), 0);
    assert_int_equal(vocab_compare(target, proj, diff, sizeof diff), -EINVAL);
    assert_string_equal(diff, "the draft has no tokenizer.ggml.model (not a text model)");
    assert_int_equal(vocab_compare(proj, target, diff, sizeof diff), -EINVAL);
    assert_string_equal(diff, "the target has no tokenizer.ggml.model (not a text model)");
    gguf_close(&target);
    gguf_close(&draft);
    gguf_close(&other);
    gguf_close(&gemma);
    gguf_close(&big);
    gguf_close(&proj);
}

/* The full-size draft shares the full-size Qwen3.5 target's 248,320
 * tokens; Gemma 4's 262,144 are another vocabulary. */
static void t_full_size(void **s)
{
    (void)s;
    gguf_t *target = open_preset("qwen35-35b-a3b"), *draft = open_preset("qwen35-0.8b-draft"),
           *gemma = open_preset("gemma4-26b-a4b");
    char diff[256];
    assert_int_equal(vocab_compare(target, draft, diff, sizeof diff), 0);
    assert_int_equal(vocab_compare(gemma, draft, diff, sizeof diff), 1);
    assert_string_equal(diff, "token count: 262144 vs 248320 (llama-server allows at most 128 apart)");
    gguf_close(&target);
    gguf_close(&draft);
    gguf_close(&gemma);
    char *cmd = xasprintf("rm -f '%s'/qwen35-35b-a3b.gguf '%s'/gemma4-26b-a4b.gguf", dir, dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static void t_one_difference_each(void **s)
{
    (void)s;
    spec_t b = base;
    expect(&base, &b, 0, NULL);

    b = base;
    b.pre = "llama-bpe";
    expect(&base, &b, 1, "tokenizer.ggml.pre: qwen35 vs llama-bpe");
    b.pre = NULL; /* absent reads as llama.cpp's "default" */
    expect(&base, &b, 1, "tokenizer.ggml.pre: qwen35 vs default");
    spec_t a = base;
    a.pre = "default";
    expect(&a, &b, 0, NULL);

    b = base;
    b.model = "llama";
    expect(&base, &b, 1, "tokenizer.ggml.model: gpt2 vs llama");

    b = base;
    b.n = 300 + 129;
    expect(&base, &b, 1, "token count: 300 vs 429 (llama-server allows at most 128 apart)");
    b.n = 300 + 128;
    expect(&base, &b, 0, NULL);

    b = base;
    b.eot = -1;
    expect(&base, &b, 1, "tokenizer.ggml.eot_token_id: 7 vs unset");
    b.eot = 8;
    expect(&base, &b, 1, "tokenizer.ggml.eot_token_id: 7 vs 8");

    b = base;
    b.add_bos = 1;
    expect(&base, &b, 1, "tokenizer.ggml.add_bos_token: false vs true");

    b = base;
    b.odd = 250;
    b.odd_text = "x\ny'";
    expect(&base, &b, 1, "token 250: 't250' vs 'x\\x0Ay\\x27'");
    /* below id 5 the texts are llama-server's business (specials' names) */
    b.odd = 4;
    b.odd_text = "<pad>";
    expect(&base, &b, 0, NULL);

    b = base;
    b.odd_type_at = 100;
    b.odd_type = 4;
    expect(&base, &b, 1, "token 100 ('t100') type: normal vs user-defined");
    b.odd_type = 77;
    expect(&base, &b, 1, "token 100 ('t100') type: normal vs 77");

    b = base;
    b.no_tokens = true;
    expect(&base, &b, -EINVAL, "the draft has no tokenizer.ggml.tokens");

    /* a long token is cut in the message */
    b = base;
    b.odd = 9;
    b.odd_text = "0123456789012345678901234567890123456789012345678901234567890123456789";
    expect(&base, &b, 1, "token 9: 't9' vs '012345678901234567890123456789012345678901234567...'");
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/variet-vocab-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_synth_presets),
        cmocka_unit_test(t_full_size),
        cmocka_unit_test(t_one_difference_each),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char *cmd = xasprintf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = rc ? rc : 1;
    free(cmd);
    return rc;
}
