/*
 * make_corpus.c — writes a seed corpus of small valid GGUF files for
 * gguf_fuzzer into the folder given as argv[1] (created if missing).
 *
 * Most seeds come from the ggufw writer (varied kv types, alignments, every
 * tensor type, 1..4 dims, empty tensors); two are built byte by byte because
 * the writer only makes v3 and a subset of value types: one with all 13
 * value types and nested arrays, and its v2 twin. Each seed is parsed back
 * before it is kept, so a broken seed fails here rather than misleading the
 * fuzzer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gguf.h"
#include "ggufw.h"
#include "util.h"

static const char *g_dir;
static int g_count;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "gguf_make_corpus: %s: %s\n", what, detail);
    exit(1);
}

/* Parse the bytes back, then store them as <dir>/<name>.gguf. */
static void keep(const char *name, const void *data, size_t len)
{
    char err[400];
    gguf_t *g = NULL;
    if (gguf_parse(data, len, &g, err, sizeof err) != 0)
        die(name, err);
    gguf_close(&g);
    char *path = xasprintf("%s/%02d-%s.gguf", g_dir, g_count++, name);
    if (file_write_atomic(path, data, len, err, sizeof err) != 0)
        die(path, err);
    free(path);
}

static void fill(void *ud, size_t ti, const gguf_tensor_t *t, uint8_t *dst, uint64_t off, size_t n)
{
    (void)ud;
    (void)t;
    for (size_t k = 0; k < n; k++)
        dst[k] = (uint8_t)((off + k) * 13 + ti);
}

/* Write w into memory, keep it, free w. */
static void finish(const char *name, ggufw_t *w)
{
    char *mem = NULL;
    size_t len = 0;
    char err[400];
    FILE *f = open_memstream(&mem, &len);
    if (!f)
        die(name, strerror(errno));
    if (ggufw_write(w, f, fill, NULL, err, sizeof err) != 0)
        die(name, err);
    if (fclose(f) != 0)
        die(name, strerror(errno));
    keep(name, mem, len);
    free(mem);
    ggufw_free(&w);
}

static void add_tensor(ggufw_t *w, const char *name, gguf_ttype_t type, int nd, const uint64_t *ne)
{
    if (ggufw_tensor(w, name, type, nd, ne) < 0)
        die(name, "ggufw_tensor refused the shape");
}

static void seeds_from_writer(void)
{
    ggufw_t *w;

    w = ggufw_new(32);
    finish("empty", w);

    w = ggufw_new(32);
    ggufw_str(w, "general.architecture", "llama");
    ggufw_str(w, "general.name", "tiny");
    ggufw_u32(w, "llama.block_count", 1);
    ggufw_u32(w, "llama.context_length", 128);
    ggufw_u32(w, "llama.embedding_length", 32);
    ggufw_u32(w, "llama.attention.head_count", 4);
    ggufw_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    const char *toks[] = {"<unk>", "<s>", "</s>", "a", "b", "ab"};
    const float scores[] = {0, 0, 0, -1, -2, -3};
    const int32_t types[] = {2, 3, 3, 1, 1, 1};
    ggufw_str(w, "tokenizer.ggml.model", "llama");
    ggufw_arr_str(w, "tokenizer.ggml.tokens", 6, toks);
    ggufw_arr_f32(w, "tokenizer.ggml.scores", 6, scores);
    ggufw_arr_i32(w, "tokenizer.ggml.token_type", 6, types);
    ggufw_u32(w, "tokenizer.ggml.bos_token_id", 1);
    add_tensor(w, "token_embd.weight", GGUF_TT_F32, 2, (const uint64_t[]){32, 6});
    add_tensor(w, "blk.0.attn_q.weight", GGUF_TT_Q8_0, 2, (const uint64_t[]){32, 32});
    add_tensor(w, "output_norm.weight", GGUF_TT_F32, 1, (const uint64_t[]){32});
    finish("llama-tiny", w);

    w = ggufw_new(64);
    ggufw_str(w, "general.architecture", "qwen2");
    add_tensor(w, "blk.0.ffn_down.weight", GGUF_TT_Q4_K, 2, (const uint64_t[]){256, 2});
    add_tensor(w, "blk.0.ffn_norm.weight", GGUF_TT_F16, 1, (const uint64_t[]){7});
    add_tensor(w, "blk.0.ffn_up.weight", GGUF_TT_Q6_K, 2, (const uint64_t[]){256, 1});
    finish("align64", w);

    w = ggufw_new(1);
    add_tensor(w, "a", GGUF_TT_F16, 1, (const uint64_t[]){3});
    add_tensor(w, "b", GGUF_TT_I8, 1, (const uint64_t[]){5});
    add_tensor(w, "c", GGUF_TT_Q4_0, 1, (const uint64_t[]){32});
    finish("align1", w);

    /* one tensor of every known type, one block each */
    w = ggufw_new(32);
    ggufw_str(w, "general.architecture", "types");
    for (uint32_t t = 0; t < GGUF_TT_COUNT; t++) {
        if (!gguf_type_known(t))
            continue;
        char name[32];
        snprintf(name, sizeof name, "t.%s", gguf_type_name(t));
        add_tensor(w, name, (gguf_ttype_t)t, 1, (const uint64_t[]){gguf_type_block(t)});
    }
    finish("all-tensor-types", w);

    w = ggufw_new(32);
    add_tensor(w, "d1", GGUF_TT_F32, 1, (const uint64_t[]){2});
    add_tensor(w, "d2", GGUF_TT_F32, 2, (const uint64_t[]){2, 3});
    add_tensor(w, "d3", GGUF_TT_BF16, 3, (const uint64_t[]){2, 3, 2});
    add_tensor(w, "d4", GGUF_TT_Q8_0, 4, (const uint64_t[]){32, 1, 2, 1});
    add_tensor(w, "zero", GGUF_TT_F32, 2, (const uint64_t[]){0, 4});
    finish("dims", w);

    w = ggufw_new(32);
    char longs[1001];
    memset(longs, 'L', 1000);
    longs[1000] = 0;
    ggufw_str(w, "s.empty", "");
    ggufw_str(w, "s.utf8", "gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80");
    ggufw_str(w, "s.long", longs);
    const char *mixed[] = {"", "x", "\xe4\xb8\xad\xe6\x96\x87", "tab\there", "nl\n"};
    ggufw_arr_str(w, "s.arr", 5, mixed);
    ggufw_arr_str(w, "s.arr_empty", 0, mixed);
    finish("strings", w);

    w = ggufw_new(32);
    ggufw_bool(w, "b.true", 1);
    ggufw_bool(w, "b.false", 0);
    ggufw_u32(w, "u32.max", UINT32_MAX);
    ggufw_i32(w, "i32.min", INT32_MIN);
    ggufw_u64(w, "u64.max", UINT64_MAX);
    ggufw_f32(w, "f32.neg", -0.0f);
    const int32_t ints[] = {INT32_MIN, -1, 0, 1, INT32_MAX};
    ggufw_arr_i32(w, "i32.arr", 5, ints);
    const float fl[] = {1e-30f, 3.5f, -1e30f};
    ggufw_arr_f32(w, "f32.arr", 3, fl);
    finish("scalars", w);

    w = ggufw_new(32);
    for (int i = 0; i < 100; i++) {
        char key[40];
        snprintf(key, sizeof key, "many.key.%03d", i);
        ggufw_u32(w, key, (uint32_t)i);
    }
    add_tensor(w, "only", GGUF_TT_F32, 1, (const uint64_t[]){1});
    finish("many-kv", w);

    w = ggufw_new(128);
    for (int i = 0; i < 12; i++) {
        char name[40];
        snprintf(name, sizeof name, "blk.%d.weight", i);
        add_tensor(w, name, i % 2 ? GGUF_TT_Q8_0 : GGUF_TT_F16, 2, (const uint64_t[]){32, 2});
    }
    finish("many-tensors", w);
}

/* ---- byte-built seeds: every value type and nested arrays ---- */

static void put(buf_t *b, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint8_t c = (uint8_t)(v >> (8 * i));
        buf_append(b, &c, 1);
    }
}

static void put_str(buf_t *b, const char *s)
{
    put(b, strlen(s), 8);
    buf_append(b, s, strlen(s));
}

static void put_key(buf_t *b, const char *k, uint32_t vt)
{
    put_str(b, k);
    put(b, vt, 4);
}

static void all_types(uint32_t version)
{
    buf_t b;
    double d = 2.5;
    float f = -1.25f;
    uint64_t db;
    uint32_t fb;
    memcpy(&db, &d, 8);
    memcpy(&fb, &f, 4);
    buf_init(&b, 0);
    put(&b, 0x46554747u, 4);
    put(&b, version, 4);
    put(&b, 1, 8);  /* tensors */
    put(&b, 18, 8); /* kv */
    put_key(&b, "u8", GGUF_VT_UINT8), put(&b, 255, 1);
    put_key(&b, "i8", GGUF_VT_INT8), put(&b, 0x80, 1);
    put_key(&b, "u16", GGUF_VT_UINT16), put(&b, 65535, 2);
    put_key(&b, "i16", GGUF_VT_INT16), put(&b, 0x8000, 2);
    put_key(&b, "u32", GGUF_VT_UINT32), put(&b, 7, 4);
    put_key(&b, "i32", GGUF_VT_INT32), put(&b, 0xffffffffu, 4);
    put_key(&b, "f32", GGUF_VT_FLOAT32), put(&b, fb, 4);
    put_key(&b, "bool", GGUF_VT_BOOL), put(&b, 1, 1);
    put_key(&b, "str", GGUF_VT_STRING), put_str(&b, "value");
    put_key(&b, "u64", GGUF_VT_UINT64), put(&b, UINT64_MAX, 8);
    put_key(&b, "i64", GGUF_VT_INT64), put(&b, 1ull << 63, 8);
    put_key(&b, "f64", GGUF_VT_FLOAT64), put(&b, db, 8);
    put_key(&b, "arr.u16", GGUF_VT_ARRAY), put(&b, GGUF_VT_UINT16, 4), put(&b, 2, 8);
    put(&b, 1, 2), put(&b, 2, 2);
    put_key(&b, "arr.bool", GGUF_VT_ARRAY), put(&b, GGUF_VT_BOOL, 4), put(&b, 2, 8);
    put(&b, 0, 1), put(&b, 1, 1);
    put_key(&b, "arr.f64", GGUF_VT_ARRAY), put(&b, GGUF_VT_FLOAT64, 4), put(&b, 1, 8);
    put(&b, db, 8);
    /* [[1, 2], [], [3]] of u32 */
    put_key(&b, "arr.nested", GGUF_VT_ARRAY), put(&b, GGUF_VT_ARRAY, 4), put(&b, 3, 8);
    put(&b, GGUF_VT_UINT32, 4), put(&b, 2, 8), put(&b, 1, 4), put(&b, 2, 4);
    put(&b, GGUF_VT_UINT32, 4), put(&b, 0, 8);
    put(&b, GGUF_VT_UINT32, 4), put(&b, 1, 8), put(&b, 3, 4);
    /* [["a", "bc"], ["def"]] */
    put_key(&b, "arr.nested_str", GGUF_VT_ARRAY), put(&b, GGUF_VT_ARRAY, 4), put(&b, 2, 8);
    put(&b, GGUF_VT_STRING, 4), put(&b, 2, 8), put_str(&b, "a"), put_str(&b, "bc");
    put(&b, GGUF_VT_STRING, 4), put(&b, 1, 8), put_str(&b, "def");
    /* [[[[7]]]]: GGUF_MAX_DEPTH levels, the deepest accepted */
    put_key(&b, "arr.deep", GGUF_VT_ARRAY);
    for (int l = 1; l < GGUF_MAX_DEPTH; l++)
        put(&b, GGUF_VT_ARRAY, 4), put(&b, 1, 8);
    put(&b, GGUF_VT_UINT32, 4), put(&b, 1, 8), put(&b, 7, 4);
    /* one tensor: f32 [4] at offset 0 */
    put_str(&b, "t");
    put(&b, 1, 4), put(&b, 4, 8), put(&b, GGUF_TT_F32, 4), put(&b, 0, 8);
    while (b.len % 32)
        put(&b, 0, 1);
    for (int i = 0; i < 16; i++)
        put(&b, (uint64_t)i, 1);
    keep(version == 2 ? "all-types-v2" : "all-types-v3", b.data, b.len);
    buf_free(&b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    g_dir = argv[1];
    if (mkdir(g_dir, 0755) != 0 && errno != EEXIST)
        die(g_dir, strerror(errno));
    seeds_from_writer();
    all_types(3);
    all_types(2);
    printf("gguf_make_corpus: %d seeds in %s\n", g_count, g_dir);
    return 0;
}
