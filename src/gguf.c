/*
 * gguf.c — GGUF reader: a bounds-checked cursor over the file bytes.
 *
 * Every read goes through cur_need(), which checks the bytes that remain
 * before touching them; every count that sizes an allocation is capped and
 * every product is overflow-checked. Key/value pairs and tensor infos are
 * parsed into small arrays of descriptors that point into the mapping; array
 * values are walked once to learn their byte length (nested arrays too, up to
 * GGUF_MAX_DEPTH) and are read lazily afterwards.
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

struct gguf {
    const uint8_t *data;
    uint64_t size;
    void *map; /* owned mapping (gguf_open) or NULL */
    size_t map_len;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_off;
    gguf_kv_t *kv;
    size_t n_kv;
    gguf_tensor_t *tensors;
    size_t n_tensors;
};

typedef struct {
    const uint8_t *p;
    uint64_t size;
    uint64_t pos;
    char *err;
    size_t errlen;
} cur_t;

static int cur_fail(cur_t *c, uint64_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int cur_fail(cur_t *c, uint64_t at, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->err && c->errlen)
        snprintf(c->err, c->errlen, "%s at byte %llu", msg, (unsigned long long)at);
    return -EINVAL;
}

static bool cur_need(const cur_t *c, uint64_t n) { return n <= c->size - c->pos; }

static uint64_t rd_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int cur_u(cur_t *c, unsigned n, uint64_t *v, const char *what)
{
    *v = 0; /* defined even on failure: gcc -O2 can't see cur_fail() is never 0 */
    if (!cur_need(c, n))
        return cur_fail(c, c->pos, "truncated file: %s needs %u bytes, %llu left", what, n,
                        (unsigned long long)(c->size - c->pos));
    *v = rd_le(c->p + c->pos, n);
    c->pos += n;
    return 0;
}

static int cur_str(cur_t *c, gguf_str_t *s, const char *what)
{
    uint64_t at = c->pos, len;
    int rc = cur_u(c, 8, &len, what);
    if (rc)
        return rc;
    if (!cur_need(c, len))
        return cur_fail(c, at, "%s: string length %llu runs past the end of the file", what,
                        (unsigned long long)len);
    s->ptr = (const char *)c->p + c->pos;
    s->len = len;
    c->pos += len;
    return 0;
}

static unsigned scalar_size(uint32_t t)
{
    switch (t) {
    case GGUF_VT_UINT8: case GGUF_VT_INT8: case GGUF_VT_BOOL: return 1;
    case GGUF_VT_UINT16: case GGUF_VT_INT16: return 2;
    case GGUF_VT_UINT32: case GGUF_VT_INT32: case GGUF_VT_FLOAT32: return 4;
    case GGUF_VT_UINT64: case GGUF_VT_INT64: case GGUF_VT_FLOAT64: return 8;
    default: return 0;
    }
}

static const char *const vt_names[GGUF_VT_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
};

const char *gguf_vtype_name(uint32_t t) { return t < GGUF_VT_COUNT ? vt_names[t] : "?"; }

/* Walk an array body (element type already read) to learn its byte size. */
static int skip_array(cur_t *c, uint32_t et, uint64_t n, int depth, const char *what)
{
    uint64_t at = c->pos;
    if (et >= GGUF_VT_COUNT)
        return cur_fail(c, at, "%s: unknown array element type %u", what, et);
    unsigned sz = scalar_size(et);
    if (sz) {
        if (n > (c->size - c->pos) / sz)
            return cur_fail(c, at, "%s: array of %llu %s elements runs past the end of the file",
                            what, (unsigned long long)n, gguf_vtype_name(et));
        if (et == GGUF_VT_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (c->p[c->pos + i] > 1)
                    return cur_fail(c, c->pos + i, "%s: bool element is %u, not 0 or 1", what,
                                    c->p[c->pos + i]);
        c->pos += n * sz;
        return 0;
    }
    if (et == GGUF_VT_STRING) {
        /* each string needs at least its 8-byte length */
        if (n > (c->size - c->pos) / 8)
            return cur_fail(c, at, "%s: array count %llu exceeds what the file can hold", what,
                            (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++) {
            gguf_str_t s;
            int rc = cur_str(c, &s, what);
            if (rc)
                return rc;
        }
        return 0;
    }
    /* nested array */
    if (depth >= GGUF_MAX_DEPTH)
        return cur_fail(c, at, "%s: arrays nested deeper than %d", what, GGUF_MAX_DEPTH);
    if (n > (c->size - c->pos) / 12)
        return cur_fail(c, at, "%s: array count %llu exceeds what the file can hold", what,
                        (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t t2, n2;
        int rc = cur_u(c, 4, &t2, what);
        if (!rc)
            rc = cur_u(c, 8, &n2, what);
        if (!rc)
            rc = skip_array(c, (uint32_t)t2, n2, depth + 1, what);
        if (rc)
            return rc;
    }
    return 0;
}

static int read_value(cur_t *c, gguf_kv_t *kv, const char *what)
{
    uint64_t at = c->pos, v;
    int rc;
    switch (kv->type) {
    case GGUF_VT_UINT8: case GGUF_VT_UINT16: case GGUF_VT_UINT32: case GGUF_VT_UINT64:
        rc = cur_u(c, scalar_size(kv->type), &kv->v.u, what);
        return rc;
    case GGUF_VT_BOOL:
        rc = cur_u(c, 1, &kv->v.u, what);
        if (!rc && kv->v.u > 1)
            return cur_fail(c, at, "%s: bool value is %llu, not 0 or 1", what,
                            (unsigned long long)kv->v.u);
        return rc;
    case GGUF_VT_INT8: case GGUF_VT_INT16: case GGUF_VT_INT32: case GGUF_VT_INT64: {
        unsigned sz = scalar_size(kv->type);
        rc = cur_u(c, sz, &v, what);
        if (rc)
            return rc;
        if (sz < 8 && (v >> (8 * sz - 1)) & 1)
            v |= ~0ull << (8 * sz); /* sign-extend */
        kv->v.i = (int64_t)v;
        return 0;
    }
    case GGUF_VT_FLOAT32: {
        rc = cur_u(c, 4, &v, what);
        if (rc)
            return rc;
        uint32_t b = (uint32_t)v;
        float f;
        memcpy(&f, &b, 4);
        kv->v.f = f;
        return 0;
    }
    case GGUF_VT_FLOAT64:
        rc = cur_u(c, 8, &v, what);
        if (!rc)
            memcpy(&kv->v.f, &v, 8);
        return rc;
    case GGUF_VT_STRING:
        return cur_str(c, &kv->v.s, what);
    case GGUF_VT_ARRAY: {
        uint64_t et, n;
        rc = cur_u(c, 4, &et, what);
        if (!rc)
            rc = cur_u(c, 8, &n, what);
        if (rc)
            return rc;
        kv->v.arr.type = (gguf_vtype_t)et;
        kv->v.arr.n = n;
        kv->v.arr.off = c->pos;
        rc = skip_array(c, (uint32_t)et, n, 1, what);
        kv->v.arr.nbytes = c->pos - kv->v.arr.off;
        return rc;
    }
    default:
        return cur_fail(c, at, "%s: unknown value type %u", what, (unsigned)kv->type);
    }
}

static bool str_eq(gguf_str_t a, gguf_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

bool gguf_str_eq(gguf_str_t s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

/* Names for error messages: the first 64 bytes, printable only. */
static void str_show(gguf_str_t s, char *buf, size_t cap)
{
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    if (n > 64)
        n = 64;
    for (size_t i = 0; i < n; i++) {
        char ch = s.ptr[i];
        buf[i] = (ch >= 32 && ch < 127) ? ch : '?';
    }
    buf[n] = 0;
}

/* Sort helper for duplicate detection. */
typedef struct {
    gguf_str_t s;
    uint64_t off;
} name_ref_t;

static int name_cmp(const void *a, const void *b)
{
    const name_ref_t *x = a, *y = b;
    uint64_t n = x->s.len < y->s.len ? x->s.len : y->s.len;
    int r = n ? memcmp(x->s.ptr, y->s.ptr, n) : 0;
    if (r)
        return r;
    if (x->s.len != y->s.len)
        return x->s.len < y->s.len ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Finds a duplicate among n names; returns its index in the sorted copy or -1. */
static long find_dup(name_ref_t *refs, size_t n)
{
    qsort(refs, n, sizeof *refs, name_cmp);
    for (size_t i = 1; i < n; i++)
        if (str_eq(refs[i - 1].s, refs[i].s))
            return (long)i;
    return -1;
}

int gguf_parse(const void *data, size_t size, gguf_t **out, char *err, size_t errlen)
{
    cur_t c = {.p = data, .size = size, .pos = 0, .err = err, .errlen = errlen};
    gguf_t *g = NULL;
    name_ref_t *refs = NULL;
    uint64_t magic, ver, nt, nkv;
    int rc;
    char nm[80];

    *out = NULL;
    if (err && errlen)
        err[0] = 0;
    if ((rc = cur_u(&c, 4, &magic, "magic")))
        return rc;
    if (magic != 0x46554747u)
        return cur_fail(&c, 0, "bad magic 0x%08llx (not a GGUF file)", (unsigned long long)magic);
    if ((rc = cur_u(&c, 4, &ver, "version")))
        return rc;
    if (ver != 2 && ver != 3)
        return cur_fail(&c, 4, "unsupported GGUF version %llu (2 and 3 are read)",
                        (unsigned long long)ver);
    if ((rc = cur_u(&c, 8, &nt, "tensor count")) || (rc = cur_u(&c, 8, &nkv, "kv count")))
        return rc;
    /* each tensor info needs >= 8+4+8+4+8 bytes, each kv >= 8+4 bytes */
    if (nt > GGUF_MAX_TENSORS || nt > (size - c.pos) / 32)
        return cur_fail(&c, 8, "tensor count %llu is larger than the file can hold",
                        (unsigned long long)nt);
    if (nkv > GGUF_MAX_KV || nkv > (size - c.pos) / 12)
        return cur_fail(&c, 16, "kv count %llu is larger than the file can hold",
                        (unsigned long long)nkv);

    g = xcalloc(1, sizeof *g); /* owned by the caller on success */
    g->data = data;
    g->size = size;
    g->version = (uint32_t)ver;
    g->alignment = 32;
    g->kv = xcalloc(nkv ? nkv : 1, sizeof *g->kv);
    g->tensors = xcalloc(nt ? nt : 1, sizeof *g->tensors);

    for (uint64_t i = 0; i < nkv; i++) {
        gguf_kv_t *kv = &g->kv[i];
        uint64_t t;
        char what[120];
        kv->off = c.pos;
        snprintf(what, sizeof what, "kv %llu key", (unsigned long long)i);
        if ((rc = cur_str(&c, &kv->key, what)))
            goto fail;
        str_show(kv->key, nm, sizeof nm);
        snprintf(what, sizeof what, "kv '%s' type", nm);
        if ((rc = cur_u(&c, 4, &t, what)))
            goto fail;
        if (t >= GGUF_VT_COUNT) {
            rc = cur_fail(&c, c.pos - 4, "kv '%s': unknown value type %llu", nm,
                          (unsigned long long)t);
            goto fail;
        }
        kv->type = (gguf_vtype_t)t;
        snprintf(what, sizeof what, "kv '%s' value", nm);
        if ((rc = read_value(&c, kv, what)))
            goto fail;
        g->n_kv++;
    }
    if (nkv > 1) {
        refs = xcalloc(nkv, sizeof *refs);
        for (size_t i = 0; i < nkv; i++)
            refs[i] = (name_ref_t){g->kv[i].key, g->kv[i].off};
        long d = find_dup(refs, nkv);
        if (d >= 0) {
            str_show(refs[d].s, nm, sizeof nm);
            rc = cur_fail(&c, refs[d].off, "duplicate key '%s'", nm);
            goto fail;
        }
        free(refs);
        refs = NULL;
    }
    long ai = gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        const gguf_kv_t *kv = &g->kv[ai];
        if (kv->type != GGUF_VT_UINT32) {
            rc = cur_fail(&c, kv->off, "general.alignment has type %s, expected u32",
                          gguf_vtype_name(kv->type));
            goto fail;
        }
        if (kv->v.u == 0 || (kv->v.u & (kv->v.u - 1))) {
            rc = cur_fail(&c, kv->off, "general.alignment %llu is not a power of two",
                          (unsigned long long)kv->v.u);
            goto fail;
        }
        g->alignment = kv->v.u;
    }

    for (uint64_t i = 0; i < nt; i++) {
        gguf_tensor_t *t = &g->tensors[i];
        uint64_t nd, ty, at = c.pos;
        char what[120];
        snprintf(what, sizeof what, "tensor %llu name", (unsigned long long)i);
        if ((rc = cur_str(&c, &t->name, what)))
            goto fail;
        str_show(t->name, nm, sizeof nm);
        snprintf(what, sizeof what, "tensor '%s' n_dims", nm);
        if ((rc = cur_u(&c, 4, &nd, what)))
            goto fail;
        if (nd < 1 || nd > GGUF_MAX_DIMS) {
            rc = cur_fail(&c, c.pos - 4, "tensor '%s': n_dims %llu is outside 1..%d", nm,
                          (unsigned long long)nd, GGUF_MAX_DIMS);
            goto fail;
        }
        t->n_dims = (uint32_t)nd;
        uint64_t nelem = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++)
            t->ne[d] = 1;
        for (uint64_t d = 0; d < nd; d++) {
            snprintf(what, sizeof what, "tensor '%s' ne[%llu]", nm, (unsigned long long)d);
            if ((rc = cur_u(&c, 8, &t->ne[d], what)))
                goto fail;
            if (t->ne[d] > INT64_MAX || (t->ne[d] && nelem > INT64_MAX / t->ne[d])) {
                rc = cur_fail(&c, c.pos - 8, "tensor '%s': dimension product overflows", nm);
                goto fail;
            }
            nelem *= t->ne[d];
        }
        t->nelem = nelem;
        snprintf(what, sizeof what, "tensor '%s' type", nm);
        if ((rc = cur_u(&c, 4, &ty, what)))
            goto fail;
        if (!gguf_type_known((uint32_t)ty) || ty > UINT32_MAX) {
            rc = cur_fail(&c, c.pos - 4, "tensor '%s': unknown tensor type %llu", nm,
                          (unsigned long long)ty);
            goto fail;
        }
        t->type = (gguf_ttype_t)ty;
        if (t->ne[0] % gguf_type_block(t->type)) {
            rc = cur_fail(&c, at, "tensor '%s': ne[0]=%llu is not a multiple of the %s block (%u)",
                          nm, (unsigned long long)t->ne[0], gguf_type_name(t->type),
                          gguf_type_block(t->type));
            goto fail;
        }
        if (!gguf_type_nbytes(t->type, nelem, &t->nbytes)) {
            rc = cur_fail(&c, at, "tensor '%s': byte size overflows", nm);
            goto fail;
        }
        snprintf(what, sizeof what, "tensor '%s' offset", nm);
        if ((rc = cur_u(&c, 8, &t->offset, what)))
            goto fail;
        if (t->offset % g->alignment) {
            rc = cur_fail(&c, c.pos - 8, "tensor '%s': offset %llu is not a multiple of the alignment %llu",
                          nm, (unsigned long long)t->offset, (unsigned long long)g->alignment);
            goto fail;
        }
        g->n_tensors++;
    }
    if (nt > 1) {
        refs = xcalloc(nt, sizeof *refs);
        /* off: where the tensor info starts (its name's u64 length) */
        for (size_t i = 0; i < nt; i++)
            refs[i] = (name_ref_t){g->tensors[i].name,
                                   (uint64_t)((const uint8_t *)g->tensors[i].name.ptr - c.p) - 8};
        long d = find_dup(refs, nt);
        if (d >= 0) {
            str_show(refs[d].s, nm, sizeof nm);
            rc = cur_fail(&c, refs[d].off, "duplicate tensor name '%s'", nm);
            goto fail;
        }
        free(refs);
        refs = NULL;
    }

    /* data section starts at the next multiple of alignment */
    uint64_t pad = (g->alignment - c.pos % g->alignment) % g->alignment;
    g->data_off = c.pos + pad;
    if (nt > 0 && g->data_off > size) {
        rc = cur_fail(&c, c.pos, "truncated file: data section starts at %llu past the end (%llu)",
                      (unsigned long long)g->data_off, (unsigned long long)size);
        goto fail;
    }
    for (size_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor_t *t = &g->tensors[i];
        uint64_t avail = size - g->data_off;
        if (t->offset > avail || t->nbytes > avail - t->offset) {
            str_show(t->name, nm, sizeof nm);
            rc = cur_fail(&c, g->data_off + (t->offset > avail ? 0 : t->offset),
                          "tensor '%s': data (offset %llu, %llu bytes) runs past the end of the file",
                          nm, (unsigned long long)t->offset, (unsigned long long)t->nbytes);
            goto fail;
        }
    }
    *out = g;
    return 0;

fail:
    free(refs);
    gguf_close(&g);
    return rc;
}

int gguf_open(const char *path, gguf_t **out, char *err, size_t errlen)
{
    int fd = -1, rc;
    void *map = NULL;
    struct stat st;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return rc;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        snprintf(err, errlen, "%s: not a regular file", path);
        goto fail;
    }
    if (st.st_size == 0) {
        rc = -EINVAL;
        snprintf(err, errlen, "%s: empty file (not a GGUF file)", path);
        goto fail;
    }
    map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        rc = -errno;
        map = NULL;
        snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
        goto fail;
    }
    char inner[400];
    rc = gguf_parse(map, (size_t)st.st_size, out, inner, sizeof inner);
    if (rc) {
        snprintf(err, errlen, "%s: %s", path, inner);
        goto fail;
    }
    (*out)->map = map;
    (*out)->map_len = (size_t)st.st_size;
    close(fd);
    return 0;
fail:
    if (map)
        munmap(map, (size_t)st.st_size);
    if (fd >= 0)
        close(fd);
    return rc;
}

void gguf_close(gguf_t **gp)
{
    gguf_t *g = gp ? *gp : NULL;
    if (!g)
        return;
    free(g->kv);
    free(g->tensors);
    if (g->map)
        munmap(g->map, g->map_len);
    free(g);
    *gp = NULL;
}

uint32_t gguf_version(const gguf_t *g) { return g->version; }
uint64_t gguf_file_size(const gguf_t *g) { return g->size; }
uint64_t gguf_alignment(const gguf_t *g) { return g->alignment; }
uint64_t gguf_data_offset(const gguf_t *g) { return g->data_off; }
const uint8_t *gguf_data(const gguf_t *g) { return g->data; }
size_t gguf_n_kv(const gguf_t *g) { return g->n_kv; }
const gguf_kv_t *gguf_kv(const gguf_t *g, size_t i) { return i < g->n_kv ? &g->kv[i] : NULL; }
size_t gguf_n_tensors(const gguf_t *g) { return g->n_tensors; }
const gguf_tensor_t *gguf_tensor(const gguf_t *g, size_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

long gguf_find_key(const gguf_t *g, const char *key)
{
    for (size_t i = 0; i < g->n_kv; i++)
        if (gguf_str_eq(g->kv[i].key, key))
            return (long)i;
    return -1;
}

const gguf_tensor_t *gguf_find_tensor(const gguf_t *g, const char *name)
{
    for (size_t i = 0; i < g->n_tensors; i++)
        if (gguf_str_eq(g->tensors[i].name, name))
            return &g->tensors[i];
    return NULL;
}

static const gguf_kv_t *find(const gguf_t *g, const char *key)
{
    long i = gguf_find_key(g, key);
    return i < 0 ? NULL : &g->kv[i];
}

static bool vt_unsigned(uint32_t t)
{
    return t == GGUF_VT_UINT8 || t == GGUF_VT_UINT16 || t == GGUF_VT_UINT32 || t == GGUF_VT_UINT64;
}
static bool vt_signed(uint32_t t)
{
    return t == GGUF_VT_INT8 || t == GGUF_VT_INT16 || t == GGUF_VT_INT32 || t == GGUF_VT_INT64;
}

bool gguf_get_uint(const gguf_t *g, const char *key, uint64_t *v)
{
    const gguf_kv_t *kv = find(g, key);
    if (!kv)
        return false;
    if (vt_unsigned(kv->type)) {
        *v = kv->v.u;
        return true;
    }
    if (vt_signed(kv->type) && kv->v.i >= 0) {
        *v = (uint64_t)kv->v.i;
        return true;
    }
    return false;
}

bool gguf_get_int(const gguf_t *g, const char *key, int64_t *v)
{
    const gguf_kv_t *kv = find(g, key);
    if (!kv)
        return false;
    if (vt_signed(kv->type)) {
        *v = kv->v.i;
        return true;
    }
    if (vt_unsigned(kv->type) && kv->v.u <= INT64_MAX) {
        *v = (int64_t)kv->v.u;
        return true;
    }
    return false;
}

bool gguf_get_f64(const gguf_t *g, const char *key, double *v)
{
    const gguf_kv_t *kv = find(g, key);
    if (!kv)
        return false;
    if (kv->type == GGUF_VT_FLOAT32 || kv->type == GGUF_VT_FLOAT64)
        *v = kv->v.f;
    else if (vt_unsigned(kv->type))
        *v = (double)kv->v.u;
    else if (vt_signed(kv->type))
        *v = (double)kv->v.i;
    else
        return false;
    return true;
}

bool gguf_get_bool(const gguf_t *g, const char *key, bool *v)
{
    const gguf_kv_t *kv = find(g, key);
    if (!kv || kv->type != GGUF_VT_BOOL)
        return false;
    *v = kv->v.u != 0;
    return true;
}

bool gguf_get_str(const gguf_t *g, const char *key, gguf_str_t *v)
{
    const gguf_kv_t *kv = find(g, key);
    if (!kv || kv->type != GGUF_VT_STRING)
        return false;
    *v = kv->v.s;
    return true;
}

bool gguf_get_arr(const gguf_t *g, const char *key, gguf_vtype_t *type, uint64_t *n)
{
    const gguf_kv_t *kv = find(g, key);
    if (!kv || kv->type != GGUF_VT_ARRAY)
        return false;
    if (type)
        *type = kv->v.arr.type;
    if (n)
        *n = kv->v.arr.n;
    return true;
}

bool gguf_arr_int(const gguf_t *g, const gguf_kv_t *kv, uint64_t i, int64_t *v)
{
    if (kv->type != GGUF_VT_ARRAY || i >= kv->v.arr.n)
        return false;
    uint32_t et = kv->v.arr.type;
    unsigned sz = scalar_size(et);
    if (!sz || et == GGUF_VT_FLOAT32 || et == GGUF_VT_FLOAT64)
        return false;
    uint64_t raw = rd_le(g->data + kv->v.arr.off + i * sz, sz);
    if (vt_signed(et) && sz < 8 && (raw >> (8 * sz - 1)) & 1)
        raw |= ~0ull << (8 * sz);
    *v = (int64_t)raw;
    return true;
}

bool gguf_arr_str(const gguf_t *g, const gguf_kv_t *kv, uint64_t i, gguf_str_t *v)
{
    if (kv->type != GGUF_VT_ARRAY || kv->v.arr.type != GGUF_VT_STRING || i >= kv->v.arr.n)
        return false;
    /* lengths were validated by the parse: the walk stays inside the array */
    uint64_t pos = kv->v.arr.off;
    for (uint64_t k = 0; k < i; k++)
        pos += 8 + rd_le(g->data + pos, 8);
    v->len = rd_le(g->data + pos, 8);
    v->ptr = (const char *)g->data + pos + 8;
    return true;
}

bool gguf_arr_iter(const gguf_t *g, const gguf_kv_t *kv, gguf_arr_it_t *it)
{
    memset(it, 0, sizeof *it);
    if (kv->type != GGUF_VT_ARRAY || kv->v.arr.type != GGUF_VT_STRING)
        return false;
    it->data = g->data;
    it->pos = kv->v.arr.off;
    it->end = kv->v.arr.off + kv->v.arr.nbytes;
    it->n = kv->v.arr.n;
    return true;
}

bool gguf_arr_next_str(gguf_arr_it_t *it, gguf_str_t *v)
{
    /* the parse validated every length; the checks keep a bad iterator inside the array */
    if (!it->data || it->i >= it->n || it->end - it->pos < 8)
        return false;
    uint64_t len = rd_le(it->data + it->pos, 8);
    if (len > it->end - it->pos - 8)
        return false;
    v->len = len;
    v->ptr = (const char *)it->data + it->pos + 8;
    it->pos += 8 + len;
    it->i++;
    return true;
}

const gguf_kv_t *gguf_find_kv(const gguf_t *g, const char *key) { return find(g, key); }

/* ---- tensor types (ggml's type_traits: block size, bytes per block) ---- */
typedef struct {
    const char *name;
    uint32_t blck;
    uint32_t bytes;
} ttinfo_t;

static const ttinfo_t tt[GGUF_TT_COUNT] = {
    [GGUF_TT_F32] = {"f32", 1, 4},       [GGUF_TT_F16] = {"f16", 1, 2},
    [GGUF_TT_Q4_0] = {"q4_0", 32, 18},   [GGUF_TT_Q4_1] = {"q4_1", 32, 20},
    [GGUF_TT_Q5_0] = {"q5_0", 32, 22},   [GGUF_TT_Q5_1] = {"q5_1", 32, 24},
    [GGUF_TT_Q8_0] = {"q8_0", 32, 34},   [GGUF_TT_Q8_1] = {"q8_1", 32, 36},
    [GGUF_TT_Q2_K] = {"q2_k", 256, 84},  [GGUF_TT_Q3_K] = {"q3_k", 256, 110},
    [GGUF_TT_Q4_K] = {"q4_k", 256, 144}, [GGUF_TT_Q5_K] = {"q5_k", 256, 176},
    [GGUF_TT_Q6_K] = {"q6_k", 256, 210}, [GGUF_TT_Q8_K] = {"q8_k", 256, 292},
    [GGUF_TT_IQ2_XXS] = {"iq2_xxs", 256, 66}, [GGUF_TT_IQ2_XS] = {"iq2_xs", 256, 74},
    [GGUF_TT_IQ3_XXS] = {"iq3_xxs", 256, 98}, [GGUF_TT_IQ1_S] = {"iq1_s", 256, 50},
    [GGUF_TT_IQ4_NL] = {"iq4_nl", 32, 18},    [GGUF_TT_IQ3_S] = {"iq3_s", 256, 110},
    [GGUF_TT_IQ2_S] = {"iq2_s", 256, 82},     [GGUF_TT_IQ4_XS] = {"iq4_xs", 256, 136},
    [GGUF_TT_I8] = {"i8", 1, 1},   [GGUF_TT_I16] = {"i16", 1, 2},
    [GGUF_TT_I32] = {"i32", 1, 4}, [GGUF_TT_I64] = {"i64", 1, 8},
    [GGUF_TT_F64] = {"f64", 1, 8}, [GGUF_TT_IQ1_M] = {"iq1_m", 256, 56},
    [GGUF_TT_BF16] = {"bf16", 1, 2}, [GGUF_TT_TQ1_0] = {"tq1_0", 256, 54},
    [GGUF_TT_TQ2_0] = {"tq2_0", 256, 66}, [GGUF_TT_MXFP4] = {"mxfp4", 32, 17},
    [GGUF_TT_NVFP4] = {"nvfp4", 64, 36}, [GGUF_TT_Q1_0] = {"q1_0", 128, 18},
    [GGUF_TT_Q2_0] = {"q2_0", 64, 18},
};

bool gguf_type_known(uint32_t t) { return t < GGUF_TT_COUNT && tt[t].name; }
const char *gguf_type_name(uint32_t t) { return gguf_type_known(t) ? tt[t].name : "?"; }
uint32_t gguf_type_block(uint32_t t) { return gguf_type_known(t) ? tt[t].blck : 1; }
uint32_t gguf_type_bytes(uint32_t t) { return gguf_type_known(t) ? tt[t].bytes : 0; }

bool gguf_type_nbytes(uint32_t t, uint64_t nelem, uint64_t *out)
{
    if (!gguf_type_known(t) || nelem % tt[t].blck)
        return false;
    uint64_t blocks = nelem / tt[t].blck;
    if (blocks > UINT64_MAX / tt[t].bytes)
        return false;
    *out = blocks * tt[t].bytes;
    return true;
}

int gguf_type_from_name(const char *name)
{
    for (int t = 0; t < GGUF_TT_COUNT; t++)
        if (tt[t].name && strcasecmp(tt[t].name, name) == 0)
            return t;
    return -1;
}
