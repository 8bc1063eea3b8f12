/*
 * ggufw.c — GGUF writer: metadata into a buffer, tensors as descriptors,
 * data streamed through a fixed-size chunk buffer.
 */
#include "ggufw.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

typedef struct {
    char *name;
    gguf_tensor_t t;
} wt_t;

struct ggufw {
    uint32_t alignment;
    buf_t kv; /* serialized key/value pairs */
    uint64_t n_kv;
    wt_t *tensors;
    size_t n_tensors, cap_tensors;
    uint64_t data_size; /* running, aligned */
};

ggufw_t *ggufw_new(uint32_t alignment)
{
    ggufw_t *w = xcalloc(1, sizeof *w);
    w->alignment = alignment ? alignment : 32;
    /* padding is written from a 256-byte block of zeros */
    if (w->alignment > 256 || (w->alignment & (w->alignment - 1)))
        abort();
    buf_init(&w->kv, 0);
    /* readers assume 32 unless told */
    if (w->alignment != 32)
        ggufw_u32(w, "general.alignment", w->alignment);
    return w;
}

void ggufw_free(ggufw_t **wp)
{
    ggufw_t *w = *wp;
    if (!w)
        return;
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->tensors);
    buf_free(&w->kv);
    free(w);
    *wp = NULL;
}

static void put(buf_t *b, uint64_t v, unsigned n)
{
    uint8_t tmp[8];
    for (unsigned i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    buf_append(b, tmp, n);
}

static void put_str(buf_t *b, const char *s)
{
    size_t n = strlen(s);
    put(b, n, 8);
    buf_append(b, s, n);
}

static void key(ggufw_t *w, const char *k, gguf_vtype_t t)
{
    /* ggufw_new wrote it already for alignments other than 32 */
    if (w->n_kv && w->alignment != 32 && !strcmp(k, "general.alignment"))
        abort();
    put_str(&w->kv, k);
    put(&w->kv, t, 4);
    w->n_kv++;
}

void ggufw_u32(ggufw_t *w, const char *k, uint32_t v) { key(w, k, GGUF_VT_UINT32); put(&w->kv, v, 4); }
void ggufw_i32(ggufw_t *w, const char *k, int32_t v) { key(w, k, GGUF_VT_INT32); put(&w->kv, (uint32_t)v, 4); }
void ggufw_u64(ggufw_t *w, const char *k, uint64_t v) { key(w, k, GGUF_VT_UINT64); put(&w->kv, v, 8); }
void ggufw_bool(ggufw_t *w, const char *k, int v) { key(w, k, GGUF_VT_BOOL); put(&w->kv, v ? 1 : 0, 1); }
void ggufw_str(ggufw_t *w, const char *k, const char *v) { key(w, k, GGUF_VT_STRING); put_str(&w->kv, v); }

static uint32_t f32_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

void ggufw_f32(ggufw_t *w, const char *k, float v) { key(w, k, GGUF_VT_FLOAT32); put(&w->kv, f32_bits(v), 4); }

static void arr_head(ggufw_t *w, const char *k, gguf_vtype_t et, size_t n)
{
    key(w, k, GGUF_VT_ARRAY);
    put(&w->kv, et, 4);
    put(&w->kv, n, 8);
}

void ggufw_arr_str(ggufw_t *w, const char *k, size_t n, const char *const *v)
{
    arr_head(w, k, GGUF_VT_STRING, n);
    for (size_t i = 0; i < n; i++)
        put_str(&w->kv, v[i]);
}

void ggufw_arr_f32(ggufw_t *w, const char *k, size_t n, const float *v)
{
    arr_head(w, k, GGUF_VT_FLOAT32, n);
    for (size_t i = 0; i < n; i++)
        put(&w->kv, f32_bits(v[i]), 4);
}

void ggufw_arr_i32(ggufw_t *w, const char *k, size_t n, const int32_t *v)
{
    arr_head(w, k, GGUF_VT_INT32, n);
    for (size_t i = 0; i < n; i++)
        put(&w->kv, (uint32_t)v[i], 4);
}

void ggufw_arr_bool(ggufw_t *w, const char *k, size_t n, const bool *v)
{
    arr_head(w, k, GGUF_VT_BOOL, n);
    for (size_t i = 0; i < n; i++)
        put(&w->kv, v[i] ? 1 : 0, 1);
}

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

long ggufw_tensor(ggufw_t *w, const char *name, gguf_ttype_t type, int n_dims, const uint64_t *ne)
{
    gguf_tensor_t t = {0};
    uint64_t nelem = 1;
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || ne[0] % gguf_type_block(type))
        return -1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        t.ne[d] = d < n_dims ? ne[d] : 1;
    for (int d = 0; d < n_dims; d++)
        nelem *= ne[d];
    t.n_dims = (uint32_t)n_dims;
    t.type = type;
    t.nelem = nelem;
    if (!gguf_type_nbytes(type, nelem, &t.nbytes))
        return -1;
    t.offset = w->data_size;
    w->data_size = align_up(w->data_size + t.nbytes, w->alignment);
    if (w->n_tensors == w->cap_tensors) {
        w->cap_tensors = w->cap_tensors ? w->cap_tensors * 2 : 64;
        w->tensors = xrealloc(w->tensors, w->cap_tensors * sizeof *w->tensors);
    }
    w->tensors[w->n_tensors].name = xstrdup(name);
    w->tensors[w->n_tensors].t = t;
    w->tensors[w->n_tensors].t.name.ptr = w->tensors[w->n_tensors].name;
    w->tensors[w->n_tensors].t.name.len = strlen(name);
    return (long)w->n_tensors++;
}

static uint64_t header_size(const ggufw_t *w)
{
    uint64_t n = 4 + 4 + 8 + 8 + w->kv.len;
    for (size_t i = 0; i < w->n_tensors; i++)
        n += 8 + strlen(w->tensors[i].name) + 4 + 8ull * w->tensors[i].t.n_dims + 4 + 8;
    return n;
}

uint64_t ggufw_file_size(const ggufw_t *w)
{
    uint64_t h = align_up(header_size(w), w->alignment);
    if (!w->n_tensors)
        return header_size(w);
    /* the last tensor is not followed by padding */
    const gguf_tensor_t *last = &w->tensors[w->n_tensors - 1].t;
    return h + last->offset + last->nbytes;
}

static int wr(FILE *f, const void *p, size_t n, char *err, size_t errlen)
{
    if (n && fwrite(p, 1, n, f) != n) {
        snprintf(err, errlen, "write failed: %s", strerror(errno));
        return -EIO;
    }
    return 0;
}

int ggufw_write(ggufw_t *w, FILE *f, ggufw_fill_fn fill, void *ud, char *err, size_t errlen)
{
    buf_t h;
    int rc;
    static const uint8_t zeros[256];
    buf_init(&h, 0);
    put(&h, 0x46554747u, 4);
    put(&h, 3, 4);
    put(&h, w->n_tensors, 8);
    put(&h, w->n_kv, 8);
    buf_append(&h, w->kv.data, w->kv.len);
    for (size_t i = 0; i < w->n_tensors; i++) {
        const gguf_tensor_t *t = &w->tensors[i].t;
        put_str(&h, w->tensors[i].name);
        put(&h, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++)
            put(&h, t->ne[d], 8);
        put(&h, t->type, 4);
        put(&h, t->offset, 8);
    }
    uint64_t pad = align_up(h.len, w->alignment) - h.len;
    rc = wr(f, h.data, h.len, err, errlen);
    if (!rc && w->n_tensors)
        rc = wr(f, zeros, pad, err, errlen);
    buf_free(&h);
    if (rc)
        return rc;

    if (!fill) {
        /* sparse: the data section is a hole of the right size */
        uint64_t end = 0;
        for (size_t i = 0; i < w->n_tensors; i++) {
            const gguf_tensor_t *t = &w->tensors[i].t;
            if (t->offset + t->nbytes > end)
                end = t->offset + t->nbytes;
        }
        if (end && (fflush(f) != 0 || ftruncate(fileno(f), (off_t)(ftello(f) + (off_t)end)) != 0)) {
            snprintf(err, errlen, "truncate failed: %s", strerror(errno));
            return -EIO;
        }
        return 0;
    }
    const size_t chunk_target = 1u << 20;
    uint8_t *chunk = xmalloc(chunk_target + 512);
    uint64_t pos = 0;
    for (size_t i = 0; i < w->n_tensors && !rc; i++) {
        const gguf_tensor_t *t = &w->tensors[i].t;
        if (t->offset > pos)
            rc = wr(f, zeros, t->offset - pos, err, errlen);
        pos = t->offset;
        uint32_t bb = gguf_type_bytes(t->type);
        size_t step = chunk_target / bb * bb;
        for (uint64_t off = 0; off < t->nbytes && !rc; off += step) {
            size_t n = (size_t)(t->nbytes - off < step ? t->nbytes - off : step);
            fill(ud, i, t, chunk, off, n);
            rc = wr(f, chunk, n, err, errlen);
        }
        pos += t->nbytes;
    }
    free(chunk);
    if (!rc && fflush(f) != 0) {
        snprintf(err, errlen, "write failed: %s", strerror(errno));
        rc = -EIO;
    }
    return rc;
}
