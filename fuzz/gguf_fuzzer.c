/*
 * gguf_fuzzer.c — libFuzzer target for the GGUF reader.
 *
 * Parses the input with gguf_parse and, when it is accepted, walks all of it
 * the way a consumer would: every key through the typed getters, every array
 * element through gguf_arr_int / gguf_arr_str (capped, since string access
 * is O(i)) and string arrays through the sequential iterator, nested arrays
 * one level down, the vocabulary compared with itself (vocab.c), and every
 * tensor's first and last
 * data byte. libFuzzer hands over an exact-size heap copy, so ASan catches
 * any read past the end; the checks below abort when a pointer the reader
 * hands out lies outside the input, which it promises never to do.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>

#include "gguf.h"
#include "vocab.h"

#define MAX_INT_ELEMS 4096
#define MAX_STR_ELEMS 1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink; /* keeps reads from being optimised away */

static void must(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "gguf_fuzzer: invariant broken: %s\n", what);
        abort();
    }
}

static void touch_str(const uint8_t *data, size_t size, gguf_str_t s)
{
    const uint8_t *p = (const uint8_t *)s.ptr;
    must(p >= data && s.len <= size && (uint64_t)(p - data) <= size - s.len, "string inside input");
    if (s.len)
        sink += p[0] + p[s.len - 1];
}

static void walk_array(const gguf_t *g, const gguf_kv_t *kv, const uint8_t *data, size_t size,
                       int depth)
{
    int64_t v;
    gguf_str_t s;
    uint64_t n = kv->v.arr.n;

    must(kv->v.arr.off <= size && kv->v.arr.nbytes <= size - kv->v.arr.off, "array inside input");
    for (uint64_t i = 0; i < n && i < MAX_INT_ELEMS; i++)
        if (gguf_arr_int(g, kv, i, &v))
            sink += (uint64_t)v;
    for (uint64_t i = 0; i < n && i < MAX_STR_ELEMS; i++)
        if (gguf_arr_str(g, kv, i, &s))
            touch_str(data, size, s);
    must(!gguf_arr_int(g, kv, n, &v) && !gguf_arr_str(g, kv, n, &s), "index n is out of range");
    /* the sequential iterator gives the same strings, all of them */
    gguf_arr_it_t it;
    if (gguf_arr_iter(g, kv, &it)) {
        uint64_t k = 0;
        while (gguf_arr_next_str(&it, &s)) {
            touch_str(data, size, s);
            gguf_str_t t;
            if (k < MAX_STR_ELEMS)
                must(gguf_arr_str(g, kv, k, &t) && t.ptr == s.ptr && t.len == s.len, "iterator agrees with index");
            k++;
        }
        must(k == n, "iterator walks every element");
    }

    /* nested: walk the first inner arrays through descriptors of their own,
     * using the element headers the parse validated */
    if (kv->v.arr.type != GGUF_VT_ARRAY || depth >= GGUF_MAX_DEPTH)
        return;
    uint64_t pos = kv->v.arr.off, end = kv->v.arr.off + kv->v.arr.nbytes;
    for (uint64_t i = 0; i < n && i < 64; i++) {
        must(end - pos >= 12, "inner array header inside the array");
        gguf_kv_t inner = {.type = GGUF_VT_ARRAY};
        uint32_t et = 0;
        uint64_t cnt = 0;
        for (int b = 0; b < 4; b++)
            et |= (uint32_t)data[pos + b] << (8 * b);
        for (int b = 0; b < 8; b++)
            cnt |= (uint64_t)data[pos + 4 + b] << (8 * b);
        must(et < GGUF_VT_COUNT, "inner element type was validated");
        inner.v.arr.type = (gguf_vtype_t)et;
        inner.v.arr.n = cnt;
        inner.v.arr.off = pos + 12;
        /* the inner byte length is only known for scalars and strings;
         * deeper levels are covered by the outer walk */
        if (et == GGUF_VT_ARRAY)
            return;
        uint64_t nb = 0;
        if (et == GGUF_VT_STRING) {
            uint64_t p = pos + 12;
            for (uint64_t k = 0; k < cnt; k++) {
                must(end - p >= 8, "inner string length inside the array");
                uint64_t l = 0;
                for (int b = 0; b < 8; b++)
                    l |= (uint64_t)data[p + b] << (8 * b);
                must(end - p - 8 >= l, "inner string inside the array");
                p += 8 + l;
            }
            nb = p - (pos + 12);
        } else {
            static const uint8_t sz[GGUF_VT_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
            must(cnt <= (end - pos - 12) / sz[et], "inner scalars inside the array");
            nb = cnt * sz[et];
        }
        inner.v.arr.nbytes = nb;
        walk_array(g, &inner, data, size, depth + 1);
        pos += 12 + nb;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf_t *g = NULL;
    char err[256];

    if (gguf_parse(data, size, &g, err, sizeof err) != 0) {
        must(g == NULL, "*out NULL on error");
        must(strstr(err, " at byte ") != NULL, "error names a byte");
        return 0;
    }
    must(g != NULL, "*out set on success");
    must(gguf_version(g) == 2 || gguf_version(g) == 3, "version");
    must(gguf_file_size(g) == size, "file size");
    uint64_t a = gguf_alignment(g);
    must(a && !(a & (a - 1)), "alignment a power of two");

    for (size_t i = 0; i < gguf_n_kv(g); i++) {
        const gguf_kv_t *kv = gguf_kv(g, i);
        must(kv != NULL, "kv in range");
        touch_str(data, size, kv->key);
        must(kv->type < GGUF_VT_COUNT, "value type");

        /* the getters by name (keys with NULs or of odd length just miss) */
        char key[256];
        if (kv->key.len < sizeof key && !memchr(kv->key.ptr, 0, kv->key.len)) {
            memcpy(key, kv->key.ptr, kv->key.len);
            key[kv->key.len] = 0;
            uint64_t u;
            int64_t v;
            double f;
            bool b;
            gguf_str_t s;
            gguf_vtype_t t;
            long at = gguf_find_key(g, key);
            must(at >= 0 && (size_t)at == i, "key found at its own index (no duplicates)");
            if (gguf_get_uint(g, key, &u))
                sink += u;
            if (gguf_get_int(g, key, &v))
                sink += (uint64_t)v;
            if (gguf_get_f64(g, key, &f))
                sink += f != f;
            if (gguf_get_bool(g, key, &b))
                sink += b;
            if (gguf_get_str(g, key, &s))
                touch_str(data, size, s);
            if (gguf_get_arr(g, key, &t, &u))
                sink += t + u;
        }
        if (kv->type == GGUF_VT_STRING)
            touch_str(data, size, kv->v.s);
        else if (kv->type == GGUF_VT_BOOL)
            must(kv->v.u <= 1, "bool is 0 or 1");
        else if (kv->type == GGUF_VT_ARRAY)
            walk_array(g, kv, data, size, 1);
    }
    must(gguf_kv(g, gguf_n_kv(g)) == NULL, "kv past the end is NULL");

    uint64_t doff = gguf_data_offset(g);
    must(doff % a == 0, "data offset aligned");
    for (size_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor_t *t = gguf_tensor(g, i);
        must(t != NULL, "tensor in range");
        touch_str(data, size, t->name);
        must(t->n_dims >= 1 && t->n_dims <= GGUF_MAX_DIMS, "n_dims");
        must(gguf_type_known(t->type), "tensor type");
        must(t->offset % a == 0, "tensor offset aligned");
        uint64_t nb;
        must(gguf_type_nbytes(t->type, t->nelem, &nb) && nb == t->nbytes, "nbytes");
        must(doff <= size && t->offset <= size - doff && t->nbytes <= size - doff - t->offset,
             "tensor data inside input");
        if (t->nbytes) {
            const uint8_t *p = gguf_data(g) + doff + t->offset;
            sink += p[0] + p[t->nbytes - 1];
        }
        char name[256];
        if (t->name.len < sizeof name && !memchr(t->name.ptr, 0, t->name.len)) {
            memcpy(name, t->name.ptr, t->name.len);
            name[t->name.len] = 0;
            must(gguf_find_tensor(g, name) == t, "tensor found by name (no duplicates)");
        }
    }
    must(gguf_tensor(g, gguf_n_tensors(g)) == NULL, "tensor past the end is NULL");

    /* a file compared with itself as a draft: the same vocabulary, or no vocabulary */
    char diff[256];
    int vr = vocab_compare(g, g, diff, sizeof diff);
    must(vr == 0 || vr == -EINVAL, "a vocabulary is its own");

    gguf_close(&g);
    must(g == NULL, "close NULLs");
    return 0;
}
