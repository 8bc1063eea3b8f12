/*
 * png.c — PNG writer, our own deflate, CRC-32, Adler-32, base64 and a
 * seeded test picture (see png.h for the format written).
 *
 * bench's vision scenario and the tests send these pictures to
 * llama-server as OpenAI image_url data URIs; its decoder (stb_image) is
 * the independent check that the bytes are a PNG. The deflate side is
 * deliberately simple: greedy LZ77 matching (hash of 3 bytes, chains of
 * at most MAX_CHAIN candidates) coded with the fixed Huffman tables of
 * RFC 1951 §3.2.6 in one block — enough to make a 1024² picture with flat
 * areas a small fraction of its raw size.
 */
#include "png.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- checksums ---------- */

uint32_t png_crc32(uint32_t crc, const void *p, size_t n)
{
    /* the table costs 2,048 steps: cheaper than global state for chunks of
     * kilobytes and up */
    uint32_t t[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
        t[i] = c;
    }
    const uint8_t *b = p;
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = t[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint32_t png_adler32(uint32_t adler, const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t a = adler & 0xffff, s = adler >> 16;
    while (n) {
        /* 5552 bytes is the most that cannot overflow 32 bits before the modulo */
        size_t k = n < 5552 ? n : 5552;
        n -= k;
        while (k--) {
            a += *b++;
            s += a;
        }
        a %= 65521;
        s %= 65521;
    }
    return s << 16 | a;
}

/* ---------- bit output (LSB first, as deflate packs) ---------- */

typedef struct {
    buf_t *out;
    uint64_t acc;
    int n;
    int rc;
    uint8_t stage[4096];
    size_t staged;
} bits_t;

static void bits_flush_stage(bits_t *b)
{
    if (b->staged && !b->rc)
        b->rc = buf_append(b->out, b->stage, b->staged);
    b->staged = 0;
}

static void put_bits(bits_t *b, uint32_t v, int n)
{
    b->acc |= (uint64_t)v << b->n;
    b->n += n;
    while (b->n >= 8) {
        b->stage[b->staged++] = (uint8_t)b->acc;
        if (b->staged == sizeof b->stage)
            bits_flush_stage(b);
        b->acc >>= 8;
        b->n -= 8;
    }
}

/* Pad to a byte boundary and write what is staged. */
static void bits_end(bits_t *b)
{
    if (b->n > 0)
        put_bits(b, 0, 8 - b->n);
    bits_flush_stage(b);
}

/* A Huffman code is packed starting with its most significant bit. */
static uint32_t reverse(uint32_t c, int len)
{
    uint32_t r = 0;
    for (int i = 0; i < len; i++, c >>= 1)
        r = r << 1 | (c & 1);
    return r;
}

/* ---------- deflate ---------- */

static const uint16_t len_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
                                       193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

#define WSIZE 32768u
#define HBITS 15
#define MAX_CHAIN 48
#define MIN_MATCH 3
#define MAX_MATCH 258

typedef struct {
    uint32_t code[288]; /* already bit-reversed */
    uint8_t len[288];
} fixed_t;

/* RFC 1951 §3.2.6: literal/length codes of 8, 9, 7 and 8 bits. */
static void fixed_codes(fixed_t *f)
{
    for (uint32_t s = 0; s < 288; s++) {
        uint32_t c;
        int l;
        if (s <= 143)
            c = 0x30 + s, l = 8;
        else if (s <= 255)
            c = 0x190 + (s - 144), l = 9;
        else if (s <= 279)
            c = s - 256, l = 7;
        else
            c = 0xC0 + (s - 280), l = 8;
        f->code[s] = reverse(c, l);
        f->len[s] = (uint8_t)l;
    }
}

static void put_match(bits_t *b, const fixed_t *f, uint32_t len, uint32_t dist)
{
    int i = 28;
    while (len_base[i] > len)
        i--;
    put_bits(b, f->code[257 + i], f->len[257 + i]);
    if (len_extra[i])
        put_bits(b, len - len_base[i], len_extra[i]);
    int d = 29;
    while (dist_base[d] > dist)
        d--;
    put_bits(b, reverse((uint32_t)d, 5), 5);
    if (dist_extra[d])
        put_bits(b, dist - dist_base[d], dist_extra[d]);
}

static uint32_t hash3(const uint8_t *p)
{
    return ((uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]) * 2654435761u >> (32 - HBITS);
}

/* One final fixed-Huffman block of in[0..n) into out. */
static int deflate_fixed(const uint8_t *in, size_t n, buf_t *out)
{
    fixed_t f;
    fixed_codes(&f);
    int64_t *head = xmalloc(sizeof *head << HBITS), *prev = xmalloc(sizeof *prev * WSIZE); /* freed below */
    for (size_t i = 0; i < (1u << HBITS); i++)
        head[i] = -1;
    bits_t *b = xcalloc(1, sizeof *b); /* freed below */
    b->out = out;
    put_bits(b, 1, 1); /* BFINAL */
    put_bits(b, 1, 2); /* BTYPE 01: fixed codes */
    size_t i = 0;
#define INSERT(pos)                                      \
    do {                                                 \
        uint32_t h_ = hash3(in + (pos));                 \
        prev[(pos) & (WSIZE - 1)] = head[h_];            \
        head[h_] = (int64_t)(pos);                       \
    } while (0)
    while (i < n && !b->rc) {
        size_t best = 0, dist = 0;
        if (i + MIN_MATCH <= n) {
            size_t maxlen = n - i < MAX_MATCH ? n - i : MAX_MATCH;
            int64_t cand = head[hash3(in + i)];
            /* candidates are older than i and, within the window, their
             * prev links have not been overwritten by newer positions */
            for (int chain = MAX_CHAIN; cand >= 0 && i - (size_t)cand <= WSIZE && chain-- > 0;
                 cand = prev[cand & (WSIZE - 1)]) {
                const uint8_t *c = in + cand;
                if (c[best] != in[i + best])
                    continue;
                size_t l = 0;
                while (l < maxlen && c[l] == in[i + l])
                    l++;
                if (l > best) {
                    best = l;
                    dist = i - (size_t)cand;
                    if (l == maxlen)
                        break;
                }
            }
        }
        if (best >= MIN_MATCH) {
            put_match(b, &f, (uint32_t)best, (uint32_t)dist);
            for (size_t k = 0; k < best; k++, i++)
                if (i + MIN_MATCH <= n)
                    INSERT(i);
        } else {
            put_bits(b, f.code[in[i]], f.len[in[i]]);
            if (i + MIN_MATCH <= n)
                INSERT(i);
            i++;
        }
    }
#undef INSERT
    put_bits(b, f.code[256], f.len[256]); /* end of block */
    bits_end(b);
    int rc = b->rc;
    free(b);
    free(head);
    free(prev);
    return rc;
}

static int deflate_stored(const uint8_t *in, size_t n, buf_t *out)
{
    size_t off = 0;
    do {
        size_t k = n - off < 65535 ? n - off : 65535;
        uint8_t hd[5] = {(uint8_t)(off + k == n), (uint8_t)k, (uint8_t)(k >> 8), (uint8_t)~k, (uint8_t)(~k >> 8)};
        int rc = buf_append(out, hd, sizeof hd);
        if (!rc && k)
            rc = buf_append(out, in + off, k);
        if (rc)
            return rc;
        off += k;
    } while (off < n);
    return 0;
}

static int put_be32(buf_t *b, uint32_t v)
{
    uint8_t t[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return buf_append(b, t, 4);
}

int png_zlib(const uint8_t *in, size_t n, png_mode_t mode, buf_t *out)
{
    /* CMF 0x78: deflate with a 32 KiB window; FLG makes CMF*256+FLG a
     * multiple of 31 (0x01: fastest, 0x9C: default level) */
    uint8_t hd[2] = {0x78, mode == PNG_DEFLATE ? 0x9C : 0x01};
    int rc = buf_append(out, hd, 2);
    if (rc)
        return rc;
    size_t stored = n + 5 * (n / 65535 + 1);
    if (mode == PNG_DEFLATE) {
        buf_t z;
        buf_init(&z, out->max ? out->max : 0);
        rc = deflate_fixed(in, n, &z);
        if (!rc && z.len <= stored)
            rc = buf_append(out, z.data, z.len);
        else if (!rc || rc == -E2BIG)
            rc = deflate_stored(in, n, out); /* incompressible: stored is smaller */
        buf_free(&z);
    } else
        rc = deflate_stored(in, n, out);
    return rc ? rc : put_be32(out, png_adler32(1, in, n));
}

/* ---------- PNG ---------- */

static int chunk(buf_t *b, const char *type, const void *data, size_t n)
{
    int rc = put_be32(b, (uint32_t)n);
    if (rc)
        return rc;
    size_t at = b->len;
    if ((rc = buf_append(b, type, 4)) || (n && (rc = buf_append(b, data, n))))
        return rc;
    return put_be32(b, png_crc32(0, b->data + at, n + 4));
}

static uint8_t paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return (uint8_t)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

/* Filter row `cur` (prior: the row above, or zeros) into dst[0] (filter
 * type) and dst[1..n]: the type with the smallest sum of |signed byte|. */
static void filter_row(const uint8_t *cur, const uint8_t *prior, size_t n, uint8_t *tmp, uint8_t *dst)
{
    const size_t bpp = 3;
    uint64_t best = UINT64_MAX;
    for (int ft = 0; ft < 5; ft++) {
        uint64_t sum = 0;
        for (size_t x = 0; x < n; x++) {
            int a = x >= bpp ? cur[x - bpp] : 0, up = prior[x], c = x >= bpp ? prior[x - bpp] : 0, p;
            switch (ft) {
            case 0: p = 0; break;
            case 1: p = a; break;
            case 2: p = up; break;
            case 3: p = (a + up) / 2; break;
            default: p = paeth(a, up, c); break;
            }
            uint8_t v = (uint8_t)(cur[x] - p);
            tmp[x] = v;
            sum += (uint64_t)abs((int)(int8_t)v);
        }
        if (sum < best) {
            best = sum;
            dst[0] = (uint8_t)ft;
            memcpy(dst + 1, tmp, n);
        }
    }
}

int png_encode_rgb(const uint8_t *rgb, uint32_t w, uint32_t h, png_mode_t mode, buf_t *out, char *err,
                   size_t errlen)
{
    if (!w || !h || w > PNG_MAX_SIDE || h > PNG_MAX_SIDE) {
        snprintf(err, errlen, "image size %ux%u: each side must be 1 to %u pixels", w, h, PNG_MAX_SIDE);
        return -EINVAL;
    }
    size_t row = (size_t)w * 3, line = row + 1;
    uint8_t *raw = xmalloc(line * h), *zero = xcalloc(row, 1), *tmp = xmalloc(row); /* freed below */
    for (uint32_t y = 0; y < h; y++)
        filter_row(rgb + y * row, y ? rgb + (y - 1) * row : zero, row, tmp, raw + y * line);
    uint8_t ihdr[13] = {(uint8_t)(w >> 24), (uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w,
                        (uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h,
                        8, 2, 0, 0, 0}; /* 8 bits per sample, RGB, deflate, filter set 0, no interlace */
    buf_t z;
    buf_init(&z, out->max);
    int rc = buf_append(out, "\x89PNG\r\n\x1a\n", 8);
    if (!rc)
        rc = chunk(out, "IHDR", ihdr, sizeof ihdr);
    if (!rc)
        rc = png_zlib(raw, line * h, mode, &z);
    if (!rc)
        rc = chunk(out, "IDAT", z.data, z.len);
    if (!rc)
        rc = chunk(out, "IEND", NULL, 0);
    if (rc)
        snprintf(err, errlen, "the PNG of %ux%u pixels is over the buffer's limit", w, h);
    buf_free(&z);
    free(raw);
    free(zero);
    free(tmp);
    return rc;
}

/* ---------- test picture ---------- */

static uint64_t mix(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill_rect(uint8_t *img, uint32_t w, uint32_t h, uint32_t x0, uint32_t y0, uint32_t rw, uint32_t rh,
                      const uint8_t c[3])
{
    for (uint32_t y = y0; y < y0 + rh && y < h; y++)
        for (uint32_t x = x0; x < x0 + rw && x < w; x++)
            memcpy(img + ((size_t)y * w + x) * 3, c, 3);
}

uint8_t *png_pattern(uint32_t w, uint32_t h, uint32_t seed)
{
    if (!w || !h || w > PNG_MAX_SIDE || h > PNG_MAX_SIDE)
        return NULL;
    uint64_t s = seed;
    uint8_t *img = xmalloc((size_t)w * h * 3); /* the caller's */
    uint8_t c0[3], c1[3];
    for (int k = 0; k < 3; k++) {
        c0[k] = (uint8_t)mix(&s);
        c1[k] = (uint8_t)mix(&s);
    }
    /* diagonal gradient from c0 (top left) to c1 (bottom right) */
    uint64_t den = (uint64_t)w + h - 1;
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            for (int k = 0; k < 3; k++)
                img[((size_t)y * w + x) * 3 + k] =
                    (uint8_t)((c0[k] * (den - x - y) + (uint64_t)c1[k] * (x + y)) / den);
    uint32_t m = w < h ? w : h;
    /* rectangles */
    for (int r = 0; r < 10; r++) {
        uint8_t c[3] = {(uint8_t)mix(&s), (uint8_t)mix(&s), (uint8_t)mix(&s)};
        uint32_t rw = 1 + w / 16 + (uint32_t)(mix(&s) % (w / 4 + 1)), rh = 1 + h / 16 + (uint32_t)(mix(&s) % (h / 4 + 1));
        fill_rect(img, w, h, (uint32_t)(mix(&s) % w), (uint32_t)(mix(&s) % h), rw, rh, c);
    }
    /* discs */
    for (int d = 0; d < 6; d++) {
        uint8_t c[3] = {(uint8_t)mix(&s), (uint8_t)mix(&s), (uint8_t)mix(&s)};
        int64_t cx = (int64_t)(mix(&s) % w), cy = (int64_t)(mix(&s) % h);
        int64_t rad = 1 + m / 20 + (int64_t)(mix(&s) % (m / 8 + 1));
        for (int64_t y = cy - rad; y <= cy + rad; y++)
            for (int64_t x = cx - rad; x <= cx + rad; x++)
                if (x >= 0 && y >= 0 && x < w && y < h && (x - cx) * (x - cx) + (y - cy) * (y - cy) <= rad * rad)
                    memcpy(img + ((size_t)y * w + (size_t)x) * 3, c, 3);
    }
    /* a checkerboard */
    {
        uint8_t a[3] = {(uint8_t)mix(&s), (uint8_t)mix(&s), (uint8_t)mix(&s)}, b[3] = {255 - a[0], 255 - a[1], 255 - a[2]};
        uint32_t sq = 2 + m / 64 + (uint32_t)(mix(&s) % 8), x0 = (uint32_t)(mix(&s) % w), y0 = (uint32_t)(mix(&s) % h);
        for (uint32_t y = y0; y < h && y < y0 + h / 3; y++)
            for (uint32_t x = x0; x < w && x < x0 + w / 3; x++)
                memcpy(img + ((size_t)y * w + x) * 3, ((x - x0) / sq + (y - y0) / sq) % 2 ? a : b, 3);
    }
    /* stripes across the whole width */
    {
        uint8_t a[3] = {(uint8_t)mix(&s), (uint8_t)mix(&s), (uint8_t)mix(&s)};
        uint32_t y0 = (uint32_t)(mix(&s) % h), band = 1 + h / 10;
        for (uint32_t y = y0; y < h && y < y0 + band; y++)
            if ((y - y0) / 3 % 2 == 0)
                fill_rect(img, w, h, 0, y, w, 1, a);
    }
    return img;
}

/* ---------- base64 ---------- */

char *png_base64(const void *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *b = p;
    char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out; /* the caller's */
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16 | (i + 1 < n ? (uint32_t)b[i + 1] << 8 : 0) | (i + 2 < n ? b[i + 2] : 0);
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
        *o++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? tab[v & 63] : '=';
    }
    *o = 0;
    return out;
}

char *png_data_uri(const void *png, size_t n)
{
    char *b = png_base64(png, n);
    char *uri = xasprintf("data:image/png;base64,%s", b); /* the caller's */
    free(b);
    return uri;
}

char *png_pattern_uri(uint32_t w, uint32_t h, uint32_t seed, png_mode_t mode, size_t *png_bytes)
{
    uint8_t *img = png_pattern(w, h, seed);
    if (!img)
        return NULL;
    buf_t b;
    char err[128];
    buf_init(&b, 0);
    char *uri = NULL;
    if (png_encode_rgb(img, w, h, mode, &b, err, sizeof err) == 0) {
        uri = png_data_uri(b.data, b.len);
        if (png_bytes)
            *png_bytes = b.len;
    }
    buf_free(&b);
    free(img);
    return uri;
}
