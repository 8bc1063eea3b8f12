/*
 * test_gguf.c — the GGUF reader against files built byte by byte.
 *
 * A small builder (bytes into a buf_t) writes valid v2/v3 files with every
 * value type, nested arrays, a chosen alignment and real tensor data; the
 * reader must give every value back. The same builder then crafts broken
 * files, one defect each: every one must fail with a negative code, leave
 * *out NULL and say what is wrong and at which byte. Every prefix of a valid
 * file and single-byte mutations of it run too, each parsed from an exact-size
 * heap copy so that ASan sees any read past the end. The ggufw writer is
 * checked by reading its output back.
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
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "ggufw.h"
#include "util.h"

/* ---- byte builder ---- */

static void put(buf_t *b, uint64_t v, unsigned n)
{
    uint8_t tmp[8];
    for (unsigned i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    assert_int_equal(buf_append(b, tmp, n), 0);
}

static void put_strn(buf_t *b, const char *s, size_t n)
{
    put(b, n, 8);
    assert_int_equal(buf_append(b, s, n), 0);
}

static void put_str(buf_t *b, const char *s) { put_strn(b, s, strlen(s)); }

static void put_f32(buf_t *b, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put(b, u, 4);
}

static void put_f64(buf_t *b, double f)
{
    uint64_t u;
    memcpy(&u, &f, 8);
    put(b, u, 8);
}

static void put_hdr(buf_t *b, uint32_t ver, uint64_t nt, uint64_t nkv)
{
    put(b, 0x46554747u, 4); /* "GGUF" */
    put(b, ver, 4);
    put(b, nt, 8);
    put(b, nkv, 8);
}

static void put_key(buf_t *b, const char *k, uint32_t vt)
{
    put_str(b, k);
    put(b, vt, 4);
}

/* Array header after the key: element type and count. */
static void put_arr(buf_t *b, uint32_t et, uint64_t n)
{
    put(b, et, 4);
    put(b, n, 8);
}

static void put_tensor(buf_t *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type,
                       uint64_t off)
{
    put_str(b, name);
    put(b, nd, 4);
    for (uint32_t d = 0; d < nd && d <= GGUF_MAX_DIMS; d++) /* a bad n_dims gets 5 at most */
        put(b, ne[d], 8);
    put(b, type, 4);
    put(b, off, 8);
}

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

static void pad_to(buf_t *b, uint64_t a)
{
    while (b->len % a)
        put(b, 0, 1);
}

static uint8_t pattern(size_t ti, uint64_t k) { return (uint8_t)(k * 31 + ti * 7 + 1); }

/* Exact-size heap copy, so ASan flags any read past the end. */
static uint8_t *dup_exact(const void *p, size_t n)
{
    uint8_t *m = xmalloc(n ? n : 1);
    if (n)
        memcpy(m, p, n);
    return m;
}

/* ---- the rich file: every value type, nested arrays, three tensors ---- */

#define RICH_NKV 29
#define RICH_NT  3

static const char *const rich_tnames[RICH_NT] = {"tok_embd.weight", "blk.0.attn_norm.weight",
                                                 "blk.0.ffn_down.weight"};
static const uint32_t rich_ttypes[RICH_NT] = {GGUF_TT_Q8_0, GGUF_TT_F32, GGUF_TT_Q4_K};
static const uint32_t rich_nd[RICH_NT] = {2, 1, 4};
static const uint64_t rich_ne[RICH_NT][4] = {{64, 3, 1, 1}, {7, 1, 1, 1}, {256, 2, 1, 2}};
static const uint64_t rich_nbytes[RICH_NT] = {2 * 3 * 34, 7 * 4, 4 * 144};

/* Builds the rich file; align 0 = no general.alignment key (default 32).
 * *hdr_len gets the length of header + tensor table (before padding). */
static void build_rich(buf_t *b, uint32_t ver, uint32_t align, size_t *hdr_len)
{
    uint64_t a = align ? align : 32;
    put_hdr(b, ver, RICH_NT, RICH_NKV + (align ? 1 : 0));
    if (align) {
        put_key(b, "general.alignment", GGUF_VT_UINT32);
        put(b, align, 4);
    }
    put_key(b, "v.u8", GGUF_VT_UINT8), put(b, 200, 1);
    put_key(b, "v.i8", GGUF_VT_INT8), put(b, (uint8_t)-5, 1);
    put_key(b, "v.u16", GGUF_VT_UINT16), put(b, 60000, 2);
    put_key(b, "v.i16", GGUF_VT_INT16), put(b, (uint16_t)-30000, 2);
    put_key(b, "v.u32", GGUF_VT_UINT32), put(b, 4000000000u, 4);
    put_key(b, "v.i32", GGUF_VT_INT32), put(b, (uint32_t)-2000000000, 4);
    put_key(b, "v.f32", GGUF_VT_FLOAT32), put_f32(b, 1.5f);
    put_key(b, "v.bool", GGUF_VT_BOOL), put(b, 1, 1);
    put_key(b, "v.str", GGUF_VT_STRING), put_str(b, "hello");
    put_key(b, "v.u64", GGUF_VT_UINT64), put(b, 0x8000000000000005ull, 8);
    put_key(b, "v.i64", GGUF_VT_INT64), put(b, (uint64_t)(INT64_MIN + 1), 8);
    put_key(b, "v.f64", GGUF_VT_FLOAT64), put_f64(b, -3.25);
    put_key(b, "v.false", GGUF_VT_BOOL), put(b, 0, 1);

    put_key(b, "a.u8", GGUF_VT_ARRAY), put_arr(b, GGUF_VT_UINT8, 3);
    put(b, 0, 1), put(b, 255, 1), put(b, 7, 1);
    put_key(b, "a.i8", GGUF_VT_ARRAY), put_arr(b, GGUF_VT_INT8, 3);
    put(b, 0x80, 1), put(b, 0x7f, 1), put(b, 0xff, 1);
    put_key(b, "a.u16", GGUF_VT_ARRAY), put_arr(b, GGUF_VT_UINT16, 2);
    put(b, 65535, 2), put(b, 1, 2);
    put_key(b, "a.i16", GGUF_VT_ARRAY), put_arr(b, GGUF_VT_INT16, 2);
    put(b, 0x8000, 2), put(b, 0x7fff, 2);
    put_key(b, "a.u32", GGUF_VT_ARRAY), put_arr(b, GGUF_VT_UINT32, 3);
    put(b, 4294967295u, 4), put(b, 0, 4), put(b, 17, 4);
    put_key(b, "a.i32", GGUF_VT_ARRAY), put_arr(b, GGUF_VT_INT32, 3);
    put(b, 0x80000000u, 4), put(b, 0xffffffffu, 4), put(b, 0x7fffffff, 4);
    put_key(b, "a.u64", GGUF_VT_ARRAY), put_arr(b, GGUF_VT_UINT64, 2);
    put(b, 1ull << 40, 8), put(b, 3, 8);
    put_key(b, "a.i64", GGUF_VT_ARRAY), put_arr(b, GGUF_VT_INT64, 2);
    put(b, (uint64_t)INT64_MIN, 8), put(b, (uint64_t)INT64_MAX, 8);
    put_key(b, "a.f32", GGUF_VT_ARRAY), put_arr(b, GGUF_VT_FLOAT32, 2);
    put_f32(b, 1.0f), put_f32(b, 2.0f);
    put_key(b, "a.f64", GGUF_VT_ARRAY), put_arr(b, GGUF_VT_FLOAT64, 1);
    put_f64(b, 0.5);
    put_key(b, "a.bool", GGUF_VT_ARRAY), put_arr(b, GGUF_VT_BOOL, 3);
    put(b, 0, 1), put(b, 1, 1), put(b, 1, 1);
    put_key(b, "a.str", GGUF_VT_ARRAY), put_arr(b, GGUF_VT_STRING, 3);
    put_str(b, "alpha"), put_str(b, ""), put_str(b, "gamma \xce\xb4");
    put_key(b, "a.empty", GGUF_VT_ARRAY), put_arr(b, GGUF_VT_UINT32, 0);
    /* [[1, 2, 3], [], [4000000000]] */
    put_key(b, "a.nested", GGUF_VT_ARRAY), put_arr(b, GGUF_VT_ARRAY, 3);
    put_arr(b, GGUF_VT_UINT32, 3), put(b, 1, 4), put(b, 2, 4), put(b, 3, 4);
    put_arr(b, GGUF_VT_UINT32, 0);
    put_arr(b, GGUF_VT_UINT32, 1), put(b, 4000000000u, 4);
    /* [["x", "yy"], ["zzz"]] */
    put_key(b, "a.nested_str", GGUF_VT_ARRAY), put_arr(b, GGUF_VT_ARRAY, 2);
    put_arr(b, GGUF_VT_STRING, 2), put_str(b, "x"), put_str(b, "yy");
    put_arr(b, GGUF_VT_STRING, 1), put_str(b, "zzz");
    /* a plain value after the nested arrays proves they were skipped right */
    put_key(b, "after", GGUF_VT_STRING), put_str(b, "tail");

    uint64_t off = 0, offs[RICH_NT];
    for (size_t i = 0; i < RICH_NT; i++) {
        offs[i] = off;
        put_tensor(b, rich_tnames[i], rich_nd[i], rich_ne[i], rich_ttypes[i], off);
        off = align_up(off + rich_nbytes[i], a);
    }
    *hdr_len = b->len;
    pad_to(b, a);
    for (size_t i = 0; i < RICH_NT; i++) {
        while (b->len < align_up(*hdr_len, a) + offs[i])
            put(b, 0, 1);
        for (uint64_t k = 0; k < rich_nbytes[i]; k++)
            put(b, pattern(i, k), 1);
    }
    /* no padding after the last tensor: the file ends with its data */
}

static const gguf_kv_t *kv_of(const gguf_t *g, const char *key)
{
    long i = gguf_find_key(g, key);
    assert_true(i >= 0);
    return gguf_kv(g, (size_t)i);
}

static void check_arr_ints(const gguf_t *g, const char *key, gguf_vtype_t et, size_t n,
                           const int64_t *want)
{
    gguf_vtype_t t;
    uint64_t cnt;
    int64_t v;
    assert_true(gguf_get_arr(g, key, &t, &cnt));
    assert_int_equal(t, et);
    assert_int_equal(cnt, n);
    const gguf_kv_t *kv = kv_of(g, key);
    for (size_t i = 0; i < n; i++) {
        assert_true(gguf_arr_int(g, kv, i, &v));
        assert_true(v == want[i]);
    }
    assert_false(gguf_arr_int(g, kv, n, &v)); /* out of range */
}

static void check_rich(const gguf_t *g, uint32_t ver, uint32_t align, size_t hdr_len,
                       size_t file_len)
{
    uint64_t u;
    int64_t i;
    double f;
    bool bo;
    gguf_str_t s;
    uint64_t a = align ? align : 32;

    assert_int_equal(gguf_version(g), ver);
    assert_int_equal(gguf_file_size(g), file_len);
    assert_int_equal(gguf_alignment(g), a);
    assert_int_equal(gguf_n_kv(g), RICH_NKV + (align ? 1 : 0));
    assert_null(gguf_kv(g, gguf_n_kv(g)));

    /* scalars through the typed getters */
    assert_true(gguf_get_uint(g, "v.u8", &u) && u == 200);
    assert_true(gguf_get_int(g, "v.u8", &i) && i == 200);
    assert_true(gguf_get_int(g, "v.i8", &i) && i == -5);
    assert_false(gguf_get_uint(g, "v.i8", &u)); /* negative */
    assert_true(gguf_get_uint(g, "v.u16", &u) && u == 60000);
    assert_true(gguf_get_int(g, "v.i16", &i) && i == -30000);
    assert_true(gguf_get_uint(g, "v.u32", &u) && u == 4000000000u);
    assert_true(gguf_get_int(g, "v.i32", &i) && i == -2000000000);
    assert_true(gguf_get_f64(g, "v.f32", &f) && f == 1.5);
    assert_true(gguf_get_bool(g, "v.bool", &bo) && bo);
    assert_true(gguf_get_bool(g, "v.false", &bo) && !bo);
    assert_true(gguf_get_str(g, "v.str", &s) && gguf_str_eq(s, "hello"));
    assert_true(gguf_get_uint(g, "v.u64", &u) && u == 0x8000000000000005ull);
    assert_false(gguf_get_int(g, "v.u64", &i)); /* > INT64_MAX */
    assert_true(gguf_get_int(g, "v.i64", &i) && i == INT64_MIN + 1);
    assert_true(gguf_get_f64(g, "v.f64", &f) && f == -3.25);
    assert_true(gguf_get_f64(g, "v.i32", &f) && f == -2000000000.0);
    assert_true(gguf_get_f64(g, "v.u16", &f) && f == 60000.0);
    assert_true(gguf_get_str(g, "after", &s) && gguf_str_eq(s, "tail"));
    /* wrong type or missing key */
    assert_false(gguf_get_str(g, "v.u8", &s));
    assert_false(gguf_get_uint(g, "v.str", &u));
    assert_false(gguf_get_bool(g, "v.u8", &bo));
    assert_false(gguf_get_f64(g, "v.str", &f));
    assert_false(gguf_get_arr(g, "v.u8", NULL, NULL));
    assert_false(gguf_get_uint(g, "no.such.key", &u));
    assert_false(gguf_get_int(g, "no.such.key", &i));
    assert_false(gguf_get_f64(g, "no.such.key", &f));
    assert_false(gguf_get_bool(g, "no.such.key", &bo));
    assert_false(gguf_get_str(g, "no.such.key", &s));
    assert_false(gguf_get_arr(g, "no.such.key", NULL, NULL));
    assert_int_equal(gguf_find_key(g, "no.such.key"), -1);
    assert_int_equal(gguf_find_key(g, "v.u"), -1); /* prefix is not a match */
    assert_int_equal(kv_of(g, "v.u8")->type, GGUF_VT_UINT8);
    assert_int_equal(kv_of(g, "v.f64")->type, GGUF_VT_FLOAT64);

    /* numeric arrays */
    check_arr_ints(g, "a.u8", GGUF_VT_UINT8, 3, (const int64_t[]){0, 255, 7});
    check_arr_ints(g, "a.i8", GGUF_VT_INT8, 3, (const int64_t[]){-128, 127, -1});
    check_arr_ints(g, "a.u16", GGUF_VT_UINT16, 2, (const int64_t[]){65535, 1});
    check_arr_ints(g, "a.i16", GGUF_VT_INT16, 2, (const int64_t[]){-32768, 32767});
    check_arr_ints(g, "a.u32", GGUF_VT_UINT32, 3, (const int64_t[]){4294967295ll, 0, 17});
    check_arr_ints(g, "a.i32", GGUF_VT_INT32, 3, (const int64_t[]){INT32_MIN, -1, INT32_MAX});
    check_arr_ints(g, "a.u64", GGUF_VT_UINT64, 2, (const int64_t[]){1ll << 40, 3});
    check_arr_ints(g, "a.i64", GGUF_VT_INT64, 2, (const int64_t[]){INT64_MIN, INT64_MAX});
    check_arr_ints(g, "a.bool", GGUF_VT_BOOL, 3, (const int64_t[]){0, 1, 1});
    check_arr_ints(g, "a.empty", GGUF_VT_UINT32, 0, NULL);

    gguf_vtype_t t;
    uint64_t n;
    int64_t v;
    /* float arrays: known type and count, but not readable as integers */
    assert_true(gguf_get_arr(g, "a.f32", &t, &n) && t == GGUF_VT_FLOAT32 && n == 2);
    assert_false(gguf_arr_int(g, kv_of(g, "a.f32"), 0, &v));
    assert_true(gguf_get_arr(g, "a.f64", &t, &n) && t == GGUF_VT_FLOAT64 && n == 1);
    assert_int_equal(kv_of(g, "a.f64")->v.arr.nbytes, 8);
    double d;
    memcpy(&d, gguf_data(g) + kv_of(g, "a.f64")->v.arr.off, 8);
    assert_true(d == 0.5);
    /* not an array at all */
    assert_false(gguf_arr_int(g, kv_of(g, "v.u32"), 0, &v));
    assert_false(gguf_arr_str(g, kv_of(g, "v.str"), 0, &s));

    /* string array */
    const gguf_kv_t *kv = kv_of(g, "a.str");
    assert_true(gguf_get_arr(g, "a.str", &t, &n) && t == GGUF_VT_STRING && n == 3);
    assert_true(gguf_arr_str(g, kv, 0, &s) && gguf_str_eq(s, "alpha"));
    assert_true(gguf_arr_str(g, kv, 1, &s) && s.len == 0);
    assert_true(gguf_arr_str(g, kv, 2, &s) && gguf_str_eq(s, "gamma \xce\xb4"));
    assert_false(gguf_arr_str(g, kv, 3, &s));
    assert_false(gguf_arr_int(g, kv, 0, &v));
    assert_false(gguf_arr_str(g, kv_of(g, "a.u32"), 0, &s));

    /* array of arrays of u32: the outer walk records where each inner
     * array starts; an inner array is read through a descriptor of its own */
    kv = kv_of(g, "a.nested");
    assert_true(gguf_get_arr(g, "a.nested", &t, &n) && t == GGUF_VT_ARRAY && n == 3);
    assert_int_equal(kv->v.arr.nbytes, (12 + 12) + 12 + (12 + 4));
    assert_false(gguf_arr_int(g, kv, 0, &v));
    assert_false(gguf_arr_str(g, kv, 0, &s));
    static const uint64_t in_n[3] = {3, 0, 1};
    static const int64_t in_v[3][3] = {{1, 2, 3}, {0}, {4000000000ll}};
    uint64_t pos = kv->v.arr.off;
    for (size_t k = 0; k < 3; k++) {
        gguf_kv_t inner = {.type = GGUF_VT_ARRAY};
        const uint8_t *p = gguf_data(g) + pos;
        uint32_t et = (uint32_t)p[0] | (uint32_t)p[1] << 8;
        uint64_t cnt = 0;
        for (int bi = 0; bi < 8; bi++)
            cnt |= (uint64_t)p[4 + bi] << (8 * bi);
        assert_int_equal(et, GGUF_VT_UINT32);
        assert_int_equal(cnt, in_n[k]);
        inner.v.arr.type = (gguf_vtype_t)et;
        inner.v.arr.n = cnt;
        inner.v.arr.off = pos + 12;
        inner.v.arr.nbytes = cnt * 4;
        for (uint64_t e = 0; e < cnt; e++) {
            assert_true(gguf_arr_int(g, &inner, e, &v));
            assert_true(v == in_v[k][e]);
        }
        assert_false(gguf_arr_int(g, &inner, cnt, &v));
        pos += 12 + cnt * 4;
    }
    assert_int_equal(pos, kv->v.arr.off + kv->v.arr.nbytes);

    /* array of arrays of strings */
    kv = kv_of(g, "a.nested_str");
    assert_true(gguf_get_arr(g, "a.nested_str", &t, &n) && t == GGUF_VT_ARRAY && n == 2);
    assert_int_equal(kv->v.arr.nbytes, (12 + 9 + 10) + (12 + 11));
    {
        gguf_kv_t inner = {.type = GGUF_VT_ARRAY};
        inner.v.arr.type = GGUF_VT_STRING;
        inner.v.arr.n = 2;
        inner.v.arr.off = kv->v.arr.off + 12;
        assert_true(gguf_arr_str(g, &inner, 0, &s) && gguf_str_eq(s, "x"));
        assert_true(gguf_arr_str(g, &inner, 1, &s) && gguf_str_eq(s, "yy"));
        inner.v.arr.n = 1;
        inner.v.arr.off = kv->v.arr.off + 12 + 9 + 10 + 12;
        assert_true(gguf_arr_str(g, &inner, 0, &s) && gguf_str_eq(s, "zzz"));
    }

    /* tensor table and data */
    assert_int_equal(gguf_data_offset(g), align_up(hdr_len, a));
    assert_int_equal(gguf_data_offset(g) % a, 0);
    assert_int_equal(gguf_n_tensors(g), RICH_NT);
    assert_null(gguf_tensor(g, RICH_NT));
    uint64_t off = 0;
    for (size_t k = 0; k < RICH_NT; k++) {
        const gguf_tensor_t *te = gguf_tensor(g, k);
        assert_non_null(te);
        assert_true(gguf_str_eq(te->name, rich_tnames[k]));
        assert_ptr_equal(gguf_find_tensor(g, rich_tnames[k]), te);
        assert_int_equal(te->type, rich_ttypes[k]);
        assert_int_equal(te->n_dims, rich_nd[k]);
        uint64_t nelem = 1;
        for (int dd = 0; dd < GGUF_MAX_DIMS; dd++) {
            assert_int_equal(te->ne[dd], rich_ne[k][dd]);
            nelem *= rich_ne[k][dd];
        }
        assert_int_equal(te->nelem, nelem);
        assert_int_equal(te->nbytes, rich_nbytes[k]);
        assert_int_equal(te->offset, off);
        assert_int_equal(te->offset % a, 0);
        const uint8_t *p = gguf_data(g) + gguf_data_offset(g) + te->offset;
        for (uint64_t e = 0; e < te->nbytes; e++)
            assert_int_equal(p[e], pattern(k, e));
        off = align_up(off + te->nbytes, a);
    }
    const gguf_tensor_t *last = gguf_tensor(g, RICH_NT - 1);
    assert_int_equal(gguf_data_offset(g) + last->offset + last->nbytes, file_len);
    assert_null(gguf_find_tensor(g, "tok_embd"));
    assert_null(gguf_find_tensor(g, "nope"));
}

static void rich_roundtrip(uint32_t ver, uint32_t align)
{
    buf_t b;
    size_t hl;
    char err[256] = "";
    gguf_t *g = NULL;
    buf_init(&b, 0);
    build_rich(&b, ver, align, &hl);
    uint8_t *m = dup_exact(b.data, b.len);
    int rc = gguf_parse(m, b.len, &g, err, sizeof err);
    if (rc)
        print_message("parse: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(g);
    check_rich(g, ver, align, hl, b.len);
    gguf_close(&g);
    assert_null(g);
    free(m);
    buf_free(&b);
}

static void test_valid_v3(void **state) { (void)state; rich_roundtrip(3, 0); }
static void test_valid_v2(void **state) { (void)state; rich_roundtrip(2, 0); }
static void test_alignment_64(void **state) { (void)state; rich_roundtrip(3, 64); }
static void test_alignment_1_and_256(void **state)
{
    (void)state;
    rich_roundtrip(3, 1);
    rich_roundtrip(2, 256);
}

static void test_alignment_offsets(void **state)
{
    (void)state;
    buf_t b;
    size_t hl;
    gguf_t *g = NULL;
    buf_init(&b, 0);
    build_rich(&b, 3, 64, &hl);
    assert_int_equal(gguf_parse(b.data, b.len, &g, NULL, 0), 0);
    assert_int_equal(gguf_alignment(g), 64);
    assert_int_equal(gguf_data_offset(g), align_up(hl, 64));
    assert_int_equal(gguf_tensor(g, 0)->offset, 0);
    assert_int_equal(gguf_tensor(g, 1)->offset, 256); /* 204 rounded up to 64 */
    assert_int_equal(gguf_tensor(g, 2)->offset, 320); /* 256 + 28 rounded up */
    assert_int_equal(gguf_tensor(g, 0)->nbytes, 204);
    assert_int_equal(gguf_tensor(g, 2)->nbytes, 576);
    gguf_close(&g);
    buf_free(&b);
}

/* An empty model: no kv, no tensors, just the 24-byte header. */
static void test_minimal(void **state)
{
    (void)state;
    buf_t b;
    gguf_t *g = NULL;
    char err[128];
    buf_init(&b, 0);
    put_hdr(&b, 3, 0, 0);
    uint8_t *m = dup_exact(b.data, b.len);
    assert_int_equal(gguf_parse(m, b.len, &g, err, sizeof err), 0);
    assert_int_equal(gguf_n_kv(g), 0);
    assert_int_equal(gguf_n_tensors(g), 0);
    assert_int_equal(gguf_alignment(g), 32);
    assert_int_equal(gguf_find_key(g, "general.alignment"), -1);
    gguf_close(&g);
    gguf_close(&g); /* closing twice is harmless */
    gguf_close(NULL);
    free(m);
    buf_free(&b);
}

/* ---- the writer, read back ---- */

static void fill_pattern(void *ud, size_t ti, const gguf_tensor_t *t, uint8_t *dst, uint64_t off,
                         size_t n)
{
    (void)ud;
    (void)t;
    for (size_t k = 0; k < n; k++)
        dst[k] = pattern(ti, off + k);
}

static void test_writer_roundtrip(void **state)
{
    (void)state;
    char *mem = NULL;
    size_t len = 0;
    char err[256] = "";
    FILE *f = open_memstream(&mem, &len);
    assert_non_null(f);

    ggufw_t *w = ggufw_new(64);
    ggufw_str(w, "general.architecture", "llama");
    ggufw_u32(w, "llama.block_count", 2);
    ggufw_i32(w, "x.i32", -7);
    ggufw_i32(w, "x.i32pos", 9);
    ggufw_u64(w, "x.u64", 1ull << 50);
    ggufw_f32(w, "x.f32", 0.25f);
    ggufw_bool(w, "x.bool", 1);
    const char *toks[] = {"<s>", "</s>", "hello"};
    ggufw_arr_str(w, "tokenizer.ggml.tokens", 3, toks);
    const float sc[] = {0.0f, -1.0f};
    ggufw_arr_f32(w, "tokenizer.ggml.scores", 2, sc);
    const int32_t ty[] = {1, 3, -2};
    ggufw_arr_i32(w, "tokenizer.ggml.token_type", 3, ty);
    assert_int_equal(ggufw_tensor(w, "a", GGUF_TT_Q8_0, 2, (const uint64_t[]){64, 2}), 0);
    assert_int_equal(ggufw_tensor(w, "b", GGUF_TT_F16, 2, (const uint64_t[]){3, 5}), 1);
    assert_int_equal(ggufw_tensor(w, "c", GGUF_TT_Q4_K, 1, (const uint64_t[]){100}), -1);
    assert_int_equal(ggufw_tensor(w, "d", GGUF_TT_Q4_K, 1, (const uint64_t[]){512}), 2);
    uint64_t want = ggufw_file_size(w);
    assert_int_equal(ggufw_write(w, f, fill_pattern, NULL, err, sizeof err), 0);
    ggufw_free(&w);
    assert_null(w);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(len, want);

    gguf_t *g = NULL;
    uint8_t *m = dup_exact(mem, len);
    int rc = gguf_parse(m, len, &g, err, sizeof err);
    if (rc)
        print_message("parse: %s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(gguf_version(g), 3);
    assert_int_equal(gguf_alignment(g), 64);
    assert_int_equal(gguf_n_kv(g), 11);
    gguf_str_t s;
    uint64_t u;
    int64_t i;
    double d;
    bool bo;
    assert_true(gguf_get_str(g, "general.architecture", &s) && gguf_str_eq(s, "llama"));
    assert_true(gguf_get_uint(g, "llama.block_count", &u) && u == 2);
    assert_true(gguf_get_int(g, "x.i32", &i) && i == -7);
    assert_false(gguf_get_uint(g, "x.i32", &u));
    assert_true(gguf_get_uint(g, "x.i32pos", &u) && u == 9); /* signed, but not negative */
    assert_true(gguf_get_uint(g, "x.u64", &u) && u == 1ull << 50);
    assert_true(gguf_get_f64(g, "x.f32", &d) && d == 0.25);
    assert_true(gguf_get_bool(g, "x.bool", &bo) && bo);
    const gguf_kv_t *kv = kv_of(g, "tokenizer.ggml.tokens");
    for (size_t k = 0; k < 3; k++)
        assert_true(gguf_arr_str(g, kv, k, &s) && gguf_str_eq(s, toks[k]));
    check_arr_ints(g, "tokenizer.ggml.token_type", GGUF_VT_INT32, 3, (const int64_t[]){1, 3, -2});
    gguf_vtype_t t;
    assert_true(gguf_get_arr(g, "tokenizer.ggml.scores", &t, &u) && t == GGUF_VT_FLOAT32 && u == 2);

    assert_int_equal(gguf_n_tensors(g), 3);
    static const uint64_t nb[3] = {4 * 34, 15 * 2, 2 * 144};
    for (size_t k = 0; k < 3; k++) {
        const gguf_tensor_t *te = gguf_tensor(g, k);
        assert_int_equal(te->nbytes, nb[k]);
        assert_int_equal(te->offset % 64, 0);
        const uint8_t *p = gguf_data(g) + gguf_data_offset(g) + te->offset;
        for (uint64_t e = 0; e < te->nbytes; e++)
            assert_int_equal(p[e], pattern(k, e));
    }
    assert_int_equal(gguf_tensor(g, 1)->ne[1], 5);
    assert_int_equal(gguf_tensor(g, 1)->ne[2], 1);
    gguf_close(&g);

    /* every prefix of the writer's file is refused too */
    for (size_t n = 0; n < len; n++) {
        uint8_t *pm = dup_exact(mem, n);
        assert_true(gguf_parse(pm, n, &g, NULL, 0) < 0);
        assert_null(g);
        free(pm);
    }
    free(m);
    free(mem);
}

/* ---- bad files ---- */

/* Parses an exact copy of b; it must fail naming `needle` and a byte. */
static void expect_fail_line(const buf_t *b, const char *needle, int line)
{
    static char dummy;
    gguf_t *g = (gguf_t *)(void *)&dummy; /* must come back NULL */
    char err[400] = "";
    uint8_t *m = dup_exact(b->data, b->len);
    int rc = gguf_parse(m, b->len, &g, err, sizeof err);
    free(m);
    if (rc >= 0 || g != NULL || !strstr(err, needle) || !strstr(err, "at byte ")) {
        print_message("line %d: rc=%d out=%p err='%s', wanted '%s'\n", line, rc, (void *)g, err,
                      needle);
        if (rc == 0 && g)
            gguf_close(&g);
        fail();
    }
    assert_int_equal(rc, -EINVAL);
}
#define EXPECT_FAIL(b, needle) expect_fail_line((b), (needle), __LINE__)

/* Same, and the error must point at byte `at`. */
static void expect_fail_at_line(const buf_t *b, const char *needle, uint64_t at, int line)
{
    char err[400] = "", tail[40];
    gguf_t *g = NULL;
    expect_fail_line(b, needle, line);
    assert_true(gguf_parse(b->data, b->len, &g, err, sizeof err) < 0);
    snprintf(tail, sizeof tail, "at byte %llu", (unsigned long long)at);
    size_t el = strlen(err), tl = strlen(tail);
    if (el < tl || strcmp(err + el - tl, tail) != 0) {
        print_message("line %d: err='%s', wanted it to end with '%s'\n", line, err, tail);
        fail();
    }
}
#define EXPECT_FAIL_AT(b, needle, at) expect_fail_at_line((b), (needle), (at), __LINE__)

/* Header + one kv whose key and type are written; the caller adds the value. */
static void one_kv(buf_t *b, const char *key, uint32_t vt)
{
    buf_reset(b);
    put_hdr(b, 3, 0, 1);
    put_key(b, key, vt);
}

/* Header + one f32 tensor [n] at `off` with no kv; data follows if `data`. */
static void one_tensor(buf_t *b, uint32_t nd, const uint64_t *ne, uint32_t type, uint64_t off,
                       uint64_t data)
{
    buf_reset(b);
    put_hdr(b, 3, 1, 0);
    put_tensor(b, "t", nd, ne, type, off);
    pad_to(b, 32);
    for (uint64_t k = 0; k < data; k++)
        put(b, 0, 1);
}

static void test_bad_magic_version(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    put(&b, 0x58554747u, 4); /* "GGUX" */
    put(&b, 3, 4), put(&b, 0, 8), put(&b, 0, 8);
    EXPECT_FAIL_AT(&b, "magic", 0);
    buf_reset(&b);
    put(&b, 0x47475546u, 4); /* byte-swapped */
    put(&b, 3, 4), put(&b, 0, 8), put(&b, 0, 8);
    EXPECT_FAIL(&b, "magic");
    buf_reset(&b);
    put_hdr(&b, 1, 0, 0);
    EXPECT_FAIL_AT(&b, "version", 4);
    buf_reset(&b);
    put_hdr(&b, 4, 0, 0);
    EXPECT_FAIL_AT(&b, "version", 4);
    buf_reset(&b);
    put_hdr(&b, 0x03000000u, 0, 0); /* big-endian v3 */
    EXPECT_FAIL(&b, "version");
    /* short files */
    buf_reset(&b);
    EXPECT_FAIL_AT(&b, "truncated", 0);
    assert_int_equal(buf_append(&b, "GGU", 3), 0);
    EXPECT_FAIL(&b, "truncated");
    buf_reset(&b);
    put(&b, 0x46554747u, 4), put(&b, 3, 4), put(&b, 0, 8);
    EXPECT_FAIL_AT(&b, "kv count", 16);
    buf_free(&b);
}

static void test_bad_counts(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    put_hdr(&b, 3, 1ull << 62, 0);
    EXPECT_FAIL_AT(&b, "tensor count", 8);
    buf_reset(&b);
    put_hdr(&b, 3, UINT64_MAX, 0);
    EXPECT_FAIL(&b, "tensor count");
    buf_reset(&b);
    put_hdr(&b, 3, 2, 0); /* two tensors can't fit in 0 bytes */
    EXPECT_FAIL(&b, "tensor count");
    buf_reset(&b);
    put_hdr(&b, 3, 0, 1ull << 62);
    EXPECT_FAIL_AT(&b, "kv count", 16);
    buf_reset(&b);
    put_hdr(&b, 3, 0, UINT64_MAX);
    EXPECT_FAIL(&b, "kv count");
    buf_reset(&b);
    put_hdr(&b, 3, 0, (uint64_t)GGUF_MAX_KV + 1);
    EXPECT_FAIL(&b, "kv count");
    /* the count fits the cap but the file ends early */
    buf_reset(&b);
    put_hdr(&b, 3, 0, 2);
    put_key(&b, "a", GGUF_VT_STRING), put_str(&b, "a value of some length");
    put_key(&b, "b", GGUF_VT_STRING), put_str(&b, "a value of some length");
    b.data[16] = 3; /* claims 3 kvs: the third is missing */
    EXPECT_FAIL(&b, "truncated");
    buf_free(&b);
}

static void test_bad_strings(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    /* key length past the end */
    put_hdr(&b, 3, 0, 1);
    put(&b, 1000, 8);
    assert_int_equal(buf_append(&b, "abcdefgh", 8), 0);
    EXPECT_FAIL_AT(&b, "string length", 24);
    buf_reset(&b);
    put_hdr(&b, 3, 0, 1);
    put(&b, UINT64_MAX, 8);
    put(&b, 0, 8);
    EXPECT_FAIL(&b, "string length");
    /* string value length past the end */
    one_kv(&b, "k", GGUF_VT_STRING);
    put(&b, 5, 8);
    assert_int_equal(buf_append(&b, "abcd", 4), 0);
    EXPECT_FAIL(&b, "string length");
    one_kv(&b, "k", GGUF_VT_STRING);
    put(&b, 1ull << 63, 8);
    EXPECT_FAIL(&b, "string length");
    /* a string element of an array */
    one_kv(&b, "k", GGUF_VT_ARRAY);
    put_arr(&b, GGUF_VT_STRING, 2);
    put_str(&b, "ok");
    put(&b, 100, 8);
    put(&b, 0, 8);
    EXPECT_FAIL(&b, "string length");
    /* tensor name */
    buf_reset(&b);
    put_hdr(&b, 3, 1, 0);
    put(&b, 1ull << 40, 8);
    for (int k = 0; k < 32; k++)
        put(&b, 0, 1);
    EXPECT_FAIL(&b, "string length");
    buf_free(&b);
}

static void test_bad_arrays(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    one_kv(&b, "k", GGUF_VT_ARRAY);
    put_arr(&b, GGUF_VT_UINT32, 1ull << 62);
    put(&b, 0, 8);
    EXPECT_FAIL(&b, "past the end");
    one_kv(&b, "k", GGUF_VT_ARRAY);
    put_arr(&b, GGUF_VT_UINT64, UINT64_MAX);
    put(&b, 0, 8);
    EXPECT_FAIL(&b, "past the end");
    one_kv(&b, "k", GGUF_VT_ARRAY);
    put_arr(&b, GGUF_VT_UINT8, 5);
    put(&b, 0, 4);
    EXPECT_FAIL(&b, "past the end");
    one_kv(&b, "k", GGUF_VT_ARRAY);
    put_arr(&b, GGUF_VT_STRING, 1ull << 62);
    put(&b, 0, 8);
    EXPECT_FAIL(&b, "array count");
    one_kv(&b, "k", GGUF_VT_ARRAY);
    put_arr(&b, GGUF_VT_ARRAY, 1ull << 62);
    put(&b, 0, 8);
    EXPECT_FAIL(&b, "array count");
    /* an inner array with a huge count */
    one_kv(&b, "k", GGUF_VT_ARRAY);
    put_arr(&b, GGUF_VT_ARRAY, 1);
    put_arr(&b, GGUF_VT_STRING, 1ull << 62);
    put(&b, 0, 8);
    EXPECT_FAIL(&b, "array count");
    /* header of the array itself cut */
    one_kv(&b, "k", GGUF_VT_ARRAY);
    put(&b, GGUF_VT_UINT8, 4);
    put(&b, 0, 4);
    EXPECT_FAIL(&b, "truncated");
    buf_free(&b);
}

static void test_bad_value_types(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    one_kv(&b, "k", 13);
    put(&b, 0, 8);
    EXPECT_FAIL_AT(&b, "unknown value type 13", 24 + 8 + 1);
    one_kv(&b, "k", 99);
    put(&b, 0, 8);
    EXPECT_FAIL(&b, "unknown value type 99");
    one_kv(&b, "k", UINT32_MAX);
    put(&b, 0, 8);
    EXPECT_FAIL(&b, "unknown value type");
    /* array element types */
    one_kv(&b, "k", GGUF_VT_ARRAY);
    put_arr(&b, 13, 1);
    put(&b, 0, 8);
    EXPECT_FAIL(&b, "unknown array element type 13");
    one_kv(&b, "k", GGUF_VT_ARRAY);
    put_arr(&b, GGUF_VT_ARRAY, 1);
    put_arr(&b, 99, 0);
    EXPECT_FAIL(&b, "unknown array element type 99");
    /* the message names the key */
    one_kv(&b, "my.key", 42);
    put(&b, 0, 8);
    EXPECT_FAIL(&b, "my.key");
    /* bools are 0 or 1 */
    one_kv(&b, "k", GGUF_VT_BOOL);
    put(&b, 2, 1);
    EXPECT_FAIL_AT(&b, "bool", 24 + 9 + 4);
    one_kv(&b, "k", GGUF_VT_BOOL);
    put(&b, 255, 1);
    EXPECT_FAIL(&b, "not 0 or 1");
    one_kv(&b, "k", GGUF_VT_ARRAY);
    put_arr(&b, GGUF_VT_BOOL, 3);
    put(&b, 1, 1), put(&b, 0, 1), put(&b, 2, 1);
    EXPECT_FAIL_AT(&b, "bool element", 24 + 9 + 4 + 12 + 2);
    buf_free(&b);
}

/* Arrays nested `levels` deep, innermost a u32 array of one element. */
static void nested(buf_t *b, int levels)
{
    one_kv(b, "deep", GGUF_VT_ARRAY);
    for (int l = 1; l < levels; l++)
        put_arr(b, GGUF_VT_ARRAY, 1);
    put_arr(b, GGUF_VT_UINT32, 1);
    put(b, 42, 4);
}

static void test_nesting_depth(void **state)
{
    (void)state;
    buf_t b;
    gguf_t *g = NULL;
    char err[256] = "";
    buf_init(&b, 0);
    for (int lv = 1; lv <= GGUF_MAX_DEPTH; lv++) {
        nested(&b, lv);
        int rc = gguf_parse(b.data, b.len, &g, err, sizeof err);
        if (rc)
            print_message("depth %d: %s\n", lv, err);
        assert_int_equal(rc, 0);
        assert_int_equal(gguf_kv(g, 0)->v.arr.nbytes, b.len - (24 + 12 + 4 + 12));
        gguf_close(&g);
    }
    nested(&b, GGUF_MAX_DEPTH + 1);
    EXPECT_FAIL(&b, "nested deeper");
    nested(&b, 50);
    EXPECT_FAIL(&b, "nested deeper");
    /* a deep empty chain fails as well: depth is checked before the count */
    one_kv(&b, "deep", GGUF_VT_ARRAY);
    for (int l = 0; l < GGUF_MAX_DEPTH; l++)
        put_arr(&b, GGUF_VT_ARRAY, 1);
    put_arr(&b, GGUF_VT_ARRAY, 0);
    EXPECT_FAIL(&b, "nested deeper");
    buf_free(&b);
}

static void test_bad_tensors(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    uint64_t ne[5] = {32, 1, 1, 1, 1};
    one_tensor(&b, 0, ne, GGUF_TT_F32, 0, 128);
    EXPECT_FAIL_AT(&b, "n_dims", 24 + 9);
    one_tensor(&b, 5, ne, GGUF_TT_F32, 0, 128);
    EXPECT_FAIL(&b, "n_dims 5");
    one_tensor(&b, UINT32_MAX, ne, GGUF_TT_F32, 0, 128);
    EXPECT_FAIL(&b, "n_dims");
    /* dimension product overflow: 2^40 x 2^40 */
    one_tensor(&b, 2, (const uint64_t[]){1ull << 40, 1ull << 40}, GGUF_TT_F32, 0, 64);
    EXPECT_FAIL(&b, "overflow");
    one_tensor(&b, 1, (const uint64_t[]){UINT64_MAX}, GGUF_TT_F32, 0, 64);
    EXPECT_FAIL(&b, "overflow");
    one_tensor(&b, 4, (const uint64_t[]){1u << 16, 1u << 16, 1u << 16, 1u << 16}, GGUF_TT_I8, 0,
               64);
    EXPECT_FAIL(&b, "overflow");
    /* elements fit in int64 but bytes don't: 2^62 f64 elements = 2^65 bytes */
    one_tensor(&b, 1, (const uint64_t[]){1ull << 62}, GGUF_TT_F64, 0, 64);
    EXPECT_FAIL(&b, "overflow");
    /* a huge tensor in a small file */
    one_tensor(&b, 2, (const uint64_t[]){1ull << 20, 1ull << 20}, GGUF_TT_F32, 0, 64);
    EXPECT_FAIL(&b, "past the end");
    /* unknown tensor types: 4 and 5 were removed from ggml, 200 never was */
    one_tensor(&b, 1, ne, 4, 0, 128);
    EXPECT_FAIL_AT(&b, "unknown tensor type 4", 24 + 9 + 4 + 8);
    one_tensor(&b, 1, ne, 5, 0, 128);
    EXPECT_FAIL(&b, "unknown tensor type 5");
    one_tensor(&b, 1, ne, 200, 0, 128);
    EXPECT_FAIL(&b, "unknown tensor type 200");
    one_tensor(&b, 1, ne, GGUF_TT_COUNT, 0, 128);
    EXPECT_FAIL(&b, "unknown tensor type");
    /* ne[0] not a multiple of the block */
    one_tensor(&b, 2, (const uint64_t[]){48, 2}, GGUF_TT_Q8_0, 0, 256);
    EXPECT_FAIL(&b, "not a multiple of the q8_0 block");
    /* data past the end: 32 f32 = 128 bytes, 127 present */
    one_tensor(&b, 1, ne, GGUF_TT_F32, 0, 127);
    EXPECT_FAIL(&b, "past the end");
    one_tensor(&b, 1, ne, GGUF_TT_F32, 0, 128);
    gguf_t *g = NULL;
    assert_int_equal(gguf_parse(b.data, b.len, &g, NULL, 0), 0);
    gguf_close(&g);
    /* offset past the end, and an offset whose sum with nbytes would wrap */
    one_tensor(&b, 1, ne, GGUF_TT_F32, 1024, 128);
    EXPECT_FAIL(&b, "past the end");
    one_tensor(&b, 1, ne, GGUF_TT_F32, UINT64_MAX - 31, 128);
    EXPECT_FAIL(&b, "past the end");
    /* the tensor table ends the file: no room for padding and data */
    buf_reset(&b);
    put_hdr(&b, 3, 1, 0);
    put_tensor(&b, "t", 1, ne, GGUF_TT_F32, 0);
    assert_true(b.len % 32 != 0);
    EXPECT_FAIL(&b, "truncated");
    /* misaligned offset, default alignment 32 */
    one_tensor(&b, 1, ne, GGUF_TT_F32, 16, 256);
    EXPECT_FAIL_AT(&b, "alignment", 24 + 9 + 4 + 8 + 4);
    one_tensor(&b, 1, ne, GGUF_TT_F32, 1, 256);
    EXPECT_FAIL(&b, "not a multiple of the alignment 32");
    buf_free(&b);
}

static void test_bad_alignment(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    static const uint32_t bad[] = {0, 3, 48, 100, 0x80000001u};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        one_kv(&b, "general.alignment", GGUF_VT_UINT32);
        put(&b, bad[k], 4);
        EXPECT_FAIL_AT(&b, "alignment", 24);
        EXPECT_FAIL(&b, "power of two");
    }
    one_kv(&b, "general.alignment", GGUF_VT_UINT64);
    put(&b, 64, 8);
    EXPECT_FAIL(&b, "alignment");
    one_kv(&b, "general.alignment", GGUF_VT_STRING);
    put_str(&b, "64");
    EXPECT_FAIL(&b, "alignment");
    /* a tensor aligned to 32 but not to the declared 64 */
    buf_reset(&b);
    put_hdr(&b, 3, 1, 1);
    put_key(&b, "general.alignment", GGUF_VT_UINT32);
    put(&b, 64, 4);
    put_tensor(&b, "t", 1, (const uint64_t[]){8}, GGUF_TT_F32, 32);
    pad_to(&b, 64);
    for (int k = 0; k < 128; k++)
        put(&b, 0, 1);
    EXPECT_FAIL(&b, "alignment 64");
    buf_free(&b);
}

static void test_duplicates(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    put_hdr(&b, 3, 0, 3);
    put_key(&b, "a.b", GGUF_VT_UINT8), put(&b, 1, 1);
    put_key(&b, "c", GGUF_VT_UINT8), put(&b, 1, 1);
    size_t second = b.len;
    put_key(&b, "a.b", GGUF_VT_STRING), put_str(&b, "x");
    EXPECT_FAIL_AT(&b, "duplicate key 'a.b'", second);
    /* a key that is a prefix of another is not a duplicate */
    buf_reset(&b);
    put_hdr(&b, 3, 0, 2);
    put_key(&b, "a.b", GGUF_VT_UINT8), put(&b, 1, 1);
    put_key(&b, "a.bc", GGUF_VT_UINT8), put(&b, 1, 1);
    gguf_t *g = NULL;
    assert_int_equal(gguf_parse(b.data, b.len, &g, NULL, 0), 0);
    gguf_close(&g);

    buf_reset(&b);
    put_hdr(&b, 3, 3, 0);
    put_tensor(&b, "w", 1, (const uint64_t[]){8}, GGUF_TT_F32, 0);
    put_tensor(&b, "v", 1, (const uint64_t[]){8}, GGUF_TT_F32, 32);
    second = b.len;
    put_tensor(&b, "w", 1, (const uint64_t[]){8}, GGUF_TT_F32, 64);
    pad_to(&b, 32);
    for (int k = 0; k < 96; k++)
        put(&b, 0, 1);
    EXPECT_FAIL_AT(&b, "duplicate tensor", second);
    EXPECT_FAIL(&b, "'w'");
    b.data[second + 8] = 'x';
    assert_int_equal(gguf_parse(b.data, b.len, &g, NULL, 0), 0);
    gguf_close(&g);
    buf_free(&b);
}

/* Every prefix of a valid file must fail cleanly: nothing shorter than the
 * whole file is a GGUF file, including one whose last tensor is cut. */
static void test_truncation_everywhere(void **state)
{
    (void)state;
    static const char *const why[] = {"truncated", "past the end", "larger than the file",
                                      "exceeds what the file"};
    buf_t b;
    size_t hl;
    buf_init(&b, 0);
    build_rich(&b, 3, 64, &hl);
    for (size_t n = 0; n < b.len; n++) {
        gguf_t *g = NULL;
        char err[400] = "";
        uint8_t *m = dup_exact(b.data, n);
        int rc = gguf_parse(m, n, &g, err, sizeof err);
        bool named = false;
        for (size_t k = 0; k < sizeof why / sizeof why[0]; k++)
            named = named || strstr(err, why[k]);
        if (rc >= 0 || g || !named || !strstr(err, "at byte ")) {
            print_message("prefix %zu of %zu: rc=%d err='%s'\n", n, b.len, rc, err);
            fail();
        }
        free(m);
    }
    buf_free(&b);
}

/* Walk all a parse gives, as a consumer would. */
static void walk(const gguf_t *g)
{
    for (size_t k = 0; k < gguf_n_kv(g); k++) {
        const gguf_kv_t *kv = gguf_kv(g, k);
        if (kv->type != GGUF_VT_ARRAY)
            continue;
        int64_t v;
        gguf_str_t s;
        for (uint64_t e = 0; e < kv->v.arr.n && e < 64; e++) {
            (void)gguf_arr_int(g, kv, e, &v);
            if (gguf_arr_str(g, kv, e, &s) && s.len)
                assert_true((const uint8_t *)s.ptr + s.len <= gguf_data(g) + gguf_file_size(g));
        }
    }
    for (size_t k = 0; k < gguf_n_tensors(g); k++) {
        const gguf_tensor_t *t = gguf_tensor(g, k);
        assert_true(gguf_data_offset(g) + t->offset + t->nbytes <= gguf_file_size(g));
    }
}

/* Single-byte mutations at every position: parse must never crash. */
static void test_mutations(void **state)
{
    (void)state;
    static const uint8_t vals[] = {0x00, 0x01, 0x02, 0x0d, 0x3f, 0x80, 0xff};
    buf_t b;
    size_t hl;
    buf_init(&b, 0);
    build_rich(&b, 3, 0, &hl);
    uint8_t *m = dup_exact(b.data, b.len);
    size_t ok = 0, bad = 0;
    for (size_t pos = 0; pos < hl; pos++) {
        for (size_t k = 0; k < sizeof vals; k++) {
            gguf_t *g = NULL;
            char err[400] = "";
            uint8_t old = m[pos];
            m[pos] = vals[k];
            int rc = gguf_parse(m, b.len, &g, err, sizeof err);
            if (rc == 0) {
                walk(g);
                gguf_close(&g);
                ok++;
            } else {
                assert_null(g);
                assert_non_null(strstr(err, "at byte "));
                bad++;
            }
            m[pos] = old;
        }
    }
    assert_true(ok > 0 && bad > 0);
    free(m);
    buf_free(&b);
}

/* ---- gguf_open ---- */

static void test_open(void **state)
{
    (void)state;
    char dir[] = "/tmp/variet-test-gguf-XXXXXX";
    char err[512] = "";
    gguf_t *g = NULL;
    assert_non_null(mkdtemp(dir));
    char *missing = xasprintf("%s/missing.gguf", dir);
    char *empty = xasprintf("%s/empty.gguf", dir);
    char *good = xasprintf("%s/good.gguf", dir);
    char *bad = xasprintf("%s/bad.gguf", dir);

    assert_int_equal(gguf_open(missing, &g, err, sizeof err), -ENOENT);
    assert_null(g);
    assert_non_null(strstr(err, "missing.gguf"));

    assert_int_equal(file_write_atomic(empty, "", 0, err, sizeof err), 0);
    assert_true(gguf_open(empty, &g, err, sizeof err) < 0);
    assert_null(g);
    assert_non_null(strstr(err, "empty"));

    assert_true(gguf_open(dir, &g, err, sizeof err) < 0);
    assert_null(g);
    assert_non_null(strstr(err, "not a regular file"));

    buf_t b;
    size_t hl;
    buf_init(&b, 0);
    build_rich(&b, 3, 64, &hl);
    assert_int_equal(file_write_atomic(good, b.data, b.len, err, sizeof err), 0);
    assert_int_equal(gguf_open(good, &g, err, sizeof err), 0);
    check_rich(g, 3, 64, hl, b.len);
    gguf_close(&g);
    assert_null(g);

    b.data[0] = 'X';
    assert_int_equal(file_write_atomic(bad, b.data, b.len, err, sizeof err), 0);
    assert_true(gguf_open(bad, &g, err, sizeof err) < 0);
    assert_null(g);
    assert_non_null(strstr(err, "bad.gguf"));
    assert_non_null(strstr(err, "magic"));
    assert_non_null(strstr(err, "at byte 0"));

    unlink(empty);
    unlink(good);
    unlink(bad);
    assert_int_equal(rmdir(dir), 0);
    free(missing);
    free(empty);
    free(good);
    free(bad);
    buf_free(&b);
}

/* ---- type facts ---- */

static void test_types(void **state)
{
    (void)state;
    uint64_t n;
    assert_true(gguf_type_nbytes(GGUF_TT_Q8_0, 32, &n) && n == 34);
    assert_true(gguf_type_nbytes(GGUF_TT_Q8_0, 4096, &n) && n == 128 * 34);
    assert_true(gguf_type_nbytes(GGUF_TT_Q4_K, 256, &n) && n == 144);
    assert_true(gguf_type_nbytes(GGUF_TT_Q4_0, 32, &n) && n == 18);
    assert_true(gguf_type_nbytes(GGUF_TT_Q6_K, 512, &n) && n == 420);
    assert_true(gguf_type_nbytes(GGUF_TT_F16, 7, &n) && n == 14);
    assert_true(gguf_type_nbytes(GGUF_TT_BF16, 3, &n) && n == 6);
    assert_true(gguf_type_nbytes(GGUF_TT_F32, 5, &n) && n == 20);
    assert_true(gguf_type_nbytes(GGUF_TT_F32, 0, &n) && n == 0);
    assert_false(gguf_type_nbytes(GGUF_TT_Q8_0, 33, &n));
    assert_false(gguf_type_nbytes(GGUF_TT_Q4_K, 255, &n));
    assert_false(gguf_type_nbytes(GGUF_TT_Q4_0, 1, &n));
    assert_false(gguf_type_nbytes(4, 32, &n));
    assert_false(gguf_type_nbytes(GGUF_TT_COUNT, 32, &n));
    assert_false(gguf_type_nbytes(GGUF_TT_F64, UINT64_MAX / 4, &n)); /* overflow */

    assert_true(gguf_type_known(GGUF_TT_MXFP4));
    assert_false(gguf_type_known(4));
    assert_false(gguf_type_known(31));
    assert_false(gguf_type_known(UINT32_MAX));
    assert_string_equal(gguf_type_name(GGUF_TT_Q4_K), "q4_k");
    assert_string_equal(gguf_type_name(200), "?");
    assert_int_equal(gguf_type_block(GGUF_TT_Q5_K), 256);
    assert_int_equal(gguf_type_bytes(GGUF_TT_Q5_K), 176);
    assert_int_equal(gguf_type_bytes(200), 0);

    assert_int_equal(gguf_type_from_name("q8_0"), GGUF_TT_Q8_0);
    assert_int_equal(gguf_type_from_name("Q4_K"), GGUF_TT_Q4_K);
    assert_int_equal(gguf_type_from_name("f16"), GGUF_TT_F16);
    assert_int_equal(gguf_type_from_name("F32"), GGUF_TT_F32);
    assert_int_equal(gguf_type_from_name("bf16"), GGUF_TT_BF16);
    assert_int_equal(gguf_type_from_name("q4_k_m"), -1);
    assert_int_equal(gguf_type_from_name(""), -1);
    assert_int_equal(gguf_type_from_name("?"), -1);
    for (uint32_t t = 0; t < GGUF_TT_COUNT; t++)
        if (gguf_type_known(t))
            assert_int_equal(gguf_type_from_name(gguf_type_name(t)), (int)t);

    assert_string_equal(gguf_vtype_name(GGUF_VT_STRING), "str");
    assert_string_equal(gguf_vtype_name(GGUF_VT_FLOAT64), "f64");
    assert_string_equal(gguf_vtype_name(13), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_v3),
        cmocka_unit_test(test_valid_v2),
        cmocka_unit_test(test_alignment_64),
        cmocka_unit_test(test_alignment_1_and_256),
        cmocka_unit_test(test_alignment_offsets),
        cmocka_unit_test(test_minimal),
        cmocka_unit_test(test_writer_roundtrip),
        cmocka_unit_test(test_bad_magic_version),
        cmocka_unit_test(test_bad_counts),
        cmocka_unit_test(test_bad_strings),
        cmocka_unit_test(test_bad_arrays),
        cmocka_unit_test(test_bad_value_types),
        cmocka_unit_test(test_nesting_depth),
        cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_bad_alignment),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_truncation_everywhere),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_open),
        cmocka_unit_test(test_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
