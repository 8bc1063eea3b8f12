/*
 * gguf.h — bounds-checked reader for GGUF v2/v3 model files.
 *
 * File layout (all integers little-endian):
 *
 *   u32  magic            "GGUF" (0x46554747 read as LE u32)
 *   u32  version          2 or 3 (v1 used u32 counts and is refused)
 *   u64  n_tensors
 *   u64  n_kv
 *   n_kv × key/value:
 *        string key       (u64 length + bytes, no terminator)
 *        u32    value type (gguf_vtype_t)
 *        value            scalar | string | array: u32 elem type, u64 count, elems
 *                         (arrays may nest: an element type may be ARRAY)
 *   n_tensors × tensor info:
 *        string name
 *        u32    n_dims     (1..4)
 *        u64    ne[n_dims] (elements per dimension, ne[0] fastest)
 *        u32    type       (gguf_ttype_t, ggml's type ids)
 *        u64    offset     (relative to the data section, multiple of alignment)
 *   padding to `general.alignment` (u32 key, default 32, a power of two)
 *   data section: tensor bytes at their offsets
 *
 * The reader never trusts a count, length, dimension or offset: each is
 * checked against the bytes that remain before use, products are
 * overflow-checked, and nothing past the end of the file is touched.
 * Errors name the field and the byte offset where it was found.
 *
 * Strings returned (gguf_str_t) point into the mapping and are not
 * NUL-terminated; they live as long as the gguf_t.
 */
#ifndef VARIET_GGUF_H
#define VARIET_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GGUF_MAX_DIMS 4
/* Ceilings that keep a hostile header from asking for absurd allocations. */
#define GGUF_MAX_KV      (1u << 20)
#define GGUF_MAX_TENSORS (1u << 20)
#define GGUF_MAX_DEPTH   4

typedef enum {
    GGUF_VT_UINT8 = 0, GGUF_VT_INT8 = 1, GGUF_VT_UINT16 = 2, GGUF_VT_INT16 = 3,
    GGUF_VT_UINT32 = 4, GGUF_VT_INT32 = 5, GGUF_VT_FLOAT32 = 6, GGUF_VT_BOOL = 7,
    GGUF_VT_STRING = 8, GGUF_VT_ARRAY = 9, GGUF_VT_UINT64 = 10, GGUF_VT_INT64 = 11,
    GGUF_VT_FLOAT64 = 12,
    GGUF_VT_COUNT
} gguf_vtype_t;

/* ggml tensor type ids (the subset with a fixed block layout). */
typedef enum {
    GGUF_TT_F32 = 0, GGUF_TT_F16 = 1, GGUF_TT_Q4_0 = 2, GGUF_TT_Q4_1 = 3,
    GGUF_TT_Q5_0 = 6, GGUF_TT_Q5_1 = 7, GGUF_TT_Q8_0 = 8, GGUF_TT_Q8_1 = 9,
    GGUF_TT_Q2_K = 10, GGUF_TT_Q3_K = 11, GGUF_TT_Q4_K = 12, GGUF_TT_Q5_K = 13,
    GGUF_TT_Q6_K = 14, GGUF_TT_Q8_K = 15, GGUF_TT_IQ2_XXS = 16, GGUF_TT_IQ2_XS = 17,
    GGUF_TT_IQ3_XXS = 18, GGUF_TT_IQ1_S = 19, GGUF_TT_IQ4_NL = 20, GGUF_TT_IQ3_S = 21,
    GGUF_TT_IQ2_S = 22, GGUF_TT_IQ4_XS = 23, GGUF_TT_I8 = 24, GGUF_TT_I16 = 25,
    GGUF_TT_I32 = 26, GGUF_TT_I64 = 27, GGUF_TT_F64 = 28, GGUF_TT_IQ1_M = 29,
    GGUF_TT_BF16 = 30, GGUF_TT_TQ1_0 = 34, GGUF_TT_TQ2_0 = 35, GGUF_TT_MXFP4 = 39,
    GGUF_TT_NVFP4 = 40, GGUF_TT_Q1_0 = 41, GGUF_TT_Q2_0 = 42,
    GGUF_TT_COUNT = 43
} gguf_ttype_t;

typedef struct {
    const char *ptr; /* into the mapping, not NUL-terminated */
    uint64_t len;
} gguf_str_t;

typedef struct {
    gguf_str_t key;
    gguf_vtype_t type;
    union {
        uint64_t u;   /* UINT8..UINT64, BOOL (0/1) */
        int64_t i;    /* INT8..INT64 */
        double f;     /* FLOAT32/FLOAT64 */
        gguf_str_t s; /* STRING */
        struct {
            gguf_vtype_t type; /* element type (may be ARRAY) */
            uint64_t n;        /* element count */
            uint64_t off;      /* file offset of the first element */
            uint64_t nbytes;   /* bytes the elements occupy */
        } arr;
    } v;
    uint64_t off; /* file offset of the key */
} gguf_kv_t;

typedef struct {
    gguf_str_t name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* unused dims are 1 */
    gguf_ttype_t type;
    uint64_t offset;  /* relative to the data section */
    uint64_t nbytes;  /* bytes of data (checked to lie inside the file) */
    uint64_t nelem;
} gguf_tensor_t;

typedef struct gguf gguf_t;

/* Parse `size` bytes at `data`. The result borrows `data`: it must outlive
 * the gguf_t. On error returns a negative code, *out stays NULL and `err`
 * holds one line naming the field and byte offset. */
int gguf_parse(const void *data, size_t size, gguf_t **out, char *err, size_t errlen);

/* mmap `path` read-only and parse it; the gguf_t owns the mapping. */
int gguf_open(const char *path, gguf_t **out, char *err, size_t errlen);

/* Free a gguf_t (and unmap what gguf_open mapped); NULLs *g. */
void gguf_close(gguf_t **g);

uint32_t gguf_version(const gguf_t *g);
uint64_t gguf_file_size(const gguf_t *g);
uint64_t gguf_alignment(const gguf_t *g);
uint64_t gguf_data_offset(const gguf_t *g); /* absolute offset of the data section */
const uint8_t *gguf_data(const gguf_t *g);  /* start of the whole file */

size_t gguf_n_kv(const gguf_t *g);
const gguf_kv_t *gguf_kv(const gguf_t *g, size_t i);
/* Index of `key` or -1. */
long gguf_find_key(const gguf_t *g, const char *key);

/* Typed getters: return true and set *v when the key exists with a
 * compatible type (any integer type for _int/_uint, float or int for _f64). */
bool gguf_get_uint(const gguf_t *g, const char *key, uint64_t *v);
bool gguf_get_int(const gguf_t *g, const char *key, int64_t *v);
bool gguf_get_f64(const gguf_t *g, const char *key, double *v);
bool gguf_get_bool(const gguf_t *g, const char *key, bool *v);
bool gguf_get_str(const gguf_t *g, const char *key, gguf_str_t *v);
/* Array: element type and count. */
bool gguf_get_arr(const gguf_t *g, const char *key, gguf_vtype_t *type, uint64_t *n);
/* Element i of a numeric array as int64/double (false if out of range or not numeric). */
bool gguf_arr_int(const gguf_t *g, const gguf_kv_t *kv, uint64_t i, int64_t *v);
/* Element i of a string array (walks the array: O(i)). */
bool gguf_arr_str(const gguf_t *g, const gguf_kv_t *kv, uint64_t i, gguf_str_t *v);
/* A string array element by element, O(1) each (a vocabulary of 248K tokens
 * read in one pass):
 *     gguf_arr_it_t it;
 *     if (gguf_arr_iter(g, kv, &it)) while (gguf_arr_next_str(&it, &s)) ...
 * it.i counts the elements returned so far (the last one is it.i - 1). gguf_arr_iter is
 * false when kv is not an array of strings. */
typedef struct {
    const uint8_t *data; /* the file */
    uint64_t pos, end;   /* next element's offset, end of the array */
    uint64_t i, n;       /* elements returned so far, element count */
} gguf_arr_it_t;
bool gguf_arr_iter(const gguf_t *g, const gguf_kv_t *kv, gguf_arr_it_t *it);
bool gguf_arr_next_str(gguf_arr_it_t *it, gguf_str_t *v);
/* The kv of `key`, or NULL. */
const gguf_kv_t *gguf_find_kv(const gguf_t *g, const char *key);

size_t gguf_n_tensors(const gguf_t *g);
const gguf_tensor_t *gguf_tensor(const gguf_t *g, size_t i);
const gguf_tensor_t *gguf_find_tensor(const gguf_t *g, const char *name);

/* Compare a gguf_str_t with a C string. */
bool gguf_str_eq(gguf_str_t s, const char *c);

/* Type facts. gguf_type_known is false for ids without a layout here. */
bool gguf_type_known(uint32_t t);
const char *gguf_type_name(uint32_t t); /* "?" if unknown */
uint32_t gguf_type_block(uint32_t t);   /* elements per block */
uint32_t gguf_type_bytes(uint32_t t);   /* bytes per block */
/* Bytes of a row/tensor of `nelem` elements; false when nelem is not a
 * multiple of the block size or the result overflows. */
bool gguf_type_nbytes(uint32_t t, uint64_t nelem, uint64_t *out);
/* Parse "f16", "q8_0", "Q4_K"... → type id, or -1. */
int gguf_type_from_name(const char *name);

const char *gguf_vtype_name(uint32_t t);

#endif
