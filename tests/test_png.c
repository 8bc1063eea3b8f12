/*
 * test_png.c — the PNG writer read back by structure: the signature, every
 * chunk's CRC-32, IHDR's fields, the zlib header and its Adler-32 over
 * what this test's own inflater (stored and fixed-Huffman blocks, written
 * from RFC 1951 apart from src/png.c) decodes, and the scanlines
 * unfiltered back to the very pixels. Checksums and base64 against their
 * published test vectors; the picture is deterministic per seed and its
 * deflated PNG much smaller than the stored one. (llama-server's own
 * decoder reads these PNGs in tests/test_e2e_synth.c and test_e2e_bench.c.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "png.h"
#include "util.h"

/* ---------- an inflater for what png.c may write ---------- */

typedef struct {
    const uint8_t *p;
    size_t n, pos; /* pos in bits */
    bool bad;
} bitin_t;

static uint32_t bit(bitin_t *s)
{
    if (s->pos / 8 >= s->n) {
        s->bad = true;
        return 0;
    }
    uint32_t b = s->p[s->pos / 8] >> (s->pos % 8) & 1;
    s->pos++;
    return b;
}

static uint32_t bits(bitin_t *s, int n)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++)
        v |= bit(s) << i;
    return v;
}

/* A literal/length symbol of the fixed code (RFC 1951 3.2.6). */
static int fixed_sym(bitin_t *s)
{
    uint32_t c = 0;
    for (int i = 0; i < 7; i++)
        c = c << 1 | bit(s);
    if (c <= 0x17)
        return 256 + (int)c;
    c = c << 1 | bit(s);
    if (c >= 0x30 && c <= 0xBF)
        return (int)c - 0x30;
    if (c >= 0xC0 && c <= 0xC7)
        return 280 + (int)c - 0xC0;
    c = c << 1 | bit(s);
    if (c >= 0x190 && c <= 0x1FF)
        return 144 + (int)c - 0x190;
    return -1;
}

/* Inflate a raw deflate stream of stored and fixed blocks; -1 on anything
 * else or a malformed stream. *used: bytes consumed. */
static int inflate(const uint8_t *in, size_t n, buf_t *out, size_t *used)
{
    static const int lbase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                  31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
    static const int lext[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
    static const int dbase[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
                                  193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
    static const int dext[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
    bitin_t s = {in, n, 0, false};
    for (;;) {
        uint32_t final = bit(&s), type = bits(&s, 2);
        if (s.bad)
            return -1;
        if (type == 0) {
            s.pos = (s.pos + 7) / 8 * 8;
            size_t at = s.pos / 8;
            if (at + 4 > n)
                return -1;
            uint32_t len = in[at] | (uint32_t)in[at + 1] << 8, nlen = in[at + 2] | (uint32_t)in[at + 3] << 8;
            if ((len ^ 0xffff) != nlen || at + 4 + len > n)
                return -1;
            buf_append(out, in + at + 4, len);
            s.pos = (at + 4 + len) * 8;
        } else if (type == 1) {
            for (;;) {
                int sym = fixed_sym(&s);
                if (sym < 0 || s.bad || sym > 285)
                    return -1;
                if (sym < 256) {
                    uint8_t c = (uint8_t)sym;
                    buf_append(out, &c, 1);
                    continue;
                }
                if (sym == 256)
                    break;
                int len = lbase[sym - 257] + (int)bits(&s, lext[sym - 257]);
                uint32_t dc = 0;
                for (int i = 0; i < 5; i++)
                    dc = dc << 1 | bit(&s);
                if (dc > 29)
                    return -1;
                size_t dist = (size_t)dbase[dc] + bits(&s, dext[dc]);
                if (s.bad || dist > out->len)
                    return -1;
                for (int k = 0; k < len; k++) {
                    uint8_t c = (uint8_t)out->data[out->len - dist];
                    buf_append(out, &c, 1);
                }
            }
        } else
            return -1; /* png.c writes no dynamic-code blocks */
        if (final)
            break;
    }
    *used = (s.pos + 7) / 8;
    return 0;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint8_t paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return (uint8_t)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

/* Decode a PNG written by png_encode_rgb back into RGB8 (caller frees),
 * checking every structural rule on the way; fails the test otherwise. */
static uint8_t *decode(const uint8_t *p, size_t n, uint32_t *w, uint32_t *h, int *filters_seen)
{
    assert_true(n > 8 + 25 + 12);
    assert_memory_equal(p, "\x89PNG\r\n\x1a\n", 8);
    size_t at = 8;
    buf_t idat;
    buf_init(&idat, 0);
    int n_ihdr = 0, n_iend = 0;
    while (at < n) {
        assert_true(at + 12 <= n);
        uint32_t len = be32(p + at);
        assert_true(at + 12 + len <= n);
        const uint8_t *type = p + at + 4, *data = p + at + 8;
        /* the CRC covers the type and the data */
        assert_int_equal(be32(data + len), png_crc32(0, type, len + 4));
        if (!memcmp(type, "IHDR", 4)) {
            assert_int_equal(at, 8); /* first */
            assert_int_equal(len, 13);
            *w = be32(data);
            *h = be32(data + 4);
            assert_int_equal(data[8], 8);  /* bit depth */
            assert_int_equal(data[9], 2);  /* RGB */
            assert_int_equal(data[10], 0); /* deflate */
            assert_int_equal(data[11], 0); /* filter method */
            assert_int_equal(data[12], 0); /* no interlace */
            n_ihdr++;
        } else if (!memcmp(type, "IDAT", 4)) {
            buf_append(&idat, data, len);
        } else if (!memcmp(type, "IEND", 4)) {
            assert_int_equal(len, 0);
            assert_int_equal(at + 12, n); /* last */
            n_iend++;
        } else
            fail_msg("unexpected chunk %.4s", (const char *)type);
        at += 12 + len;
    }
    assert_int_equal(n_ihdr, 1);
    assert_int_equal(n_iend, 1);
    /* zlib: CM 8, CINFO 7 (32 KiB window), no dictionary, FCHECK */
    const uint8_t *z = (const uint8_t *)idat.data;
    assert_true(idat.len >= 6);
    assert_int_equal(z[0], 0x78);
    assert_int_equal((z[0] * 256 + z[1]) % 31, 0);
    assert_int_equal(z[1] & 0x20, 0);
    buf_t raw;
    buf_init(&raw, 0);
    size_t used = 0;
    assert_int_equal(inflate(z + 2, idat.len - 2, &raw, &used), 0);
    assert_int_equal(2 + used + 4, idat.len); /* the Adler-32 ends the stream */
    assert_int_equal(be32(z + 2 + used), png_adler32(1, raw.data, raw.len));
    size_t row = (size_t)*w * 3;
    assert_int_equal(raw.len, (row + 1) * *h);
    uint8_t *img = xcalloc(row * *h, 1);
    for (uint32_t y = 0; y < *h; y++) {
        const uint8_t *f = (const uint8_t *)raw.data + y * (row + 1);
        uint8_t *cur = img + y * row;
        const uint8_t *up = y ? cur - row : NULL;
        assert_true(f[0] <= 4);
        filters_seen[f[0]]++;
        for (size_t x = 0; x < row; x++) {
            int a = x >= 3 ? cur[x - 3] : 0, b = up ? up[x] : 0, c = up && x >= 3 ? up[x - 3] : 0, pr = 0;
            switch (f[0]) {
            case 1: pr = a; break;
            case 2: pr = b; break;
            case 3: pr = (a + b) / 2; break;
            case 4: pr = paeth(a, b, c); break;
            }
            cur[x] = (uint8_t)(f[1 + x] + pr);
        }
    }
    buf_free(&raw);
    buf_free(&idat);
    return img;
}

/* ---------- tests ---------- */

static void t_checksums(void **s)
{
    (void)s;
    /* the check values of CRC-32/ISO-HDLC and Adler-32 */
    assert_int_equal(png_crc32(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(png_crc32(0, "", 0), 0);
    assert_int_equal(png_crc32(png_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
    assert_int_equal(png_adler32(1, "Wikipedia", 9), 0x11E60398u);
    assert_int_equal(png_adler32(1, "", 0), 1);
    /* past the 5552-byte blocking */
    uint8_t *ff = xmalloc(100000);
    memset(ff, 0xff, 100000);
    uint32_t a = 1, b = 0;
    for (int i = 0; i < 100000; i++) {
        a = (a + 0xff) % 65521;
        b = (b + a) % 65521;
    }
    assert_int_equal(png_adler32(1, ff, 100000), b << 16 | a);
    free(ff);
}

static void t_base64(void **s)
{
    (void)s;
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *e = png_base64(in[i], strlen(in[i]));
        assert_string_equal(e, out[i]);
        free(e);
    }
    uint8_t all[3] = {0xfb, 0xff, 0xbf};
    char *e = png_base64(all, 3);
    assert_string_equal(e, "+/+/");
    free(e);
    char *uri = png_data_uri("foo", 3);
    assert_string_equal(uri, "data:image/png;base64,Zm9v");
    free(uri);
}

/* Encode, decode, compare the pixels. Returns the PNG size. */
static size_t roundtrip(const uint8_t *img, uint32_t w, uint32_t h, png_mode_t mode, int *filters)
{
    buf_t b;
    char err[128];
    buf_init(&b, 0);
    assert_int_equal(png_encode_rgb(img, w, h, mode, &b, err, sizeof err), 0);
    uint32_t dw = 0, dh = 0;
    uint8_t *back = decode((const uint8_t *)b.data, b.len, &dw, &dh, filters);
    assert_int_equal(dw, w);
    assert_int_equal(dh, h);
    assert_memory_equal(back, img, (size_t)w * h * 3);
    free(back);
    size_t n = b.len;
    buf_free(&b);
    return n;
}

static void t_roundtrip(void **s)
{
    (void)s;
    static const uint32_t sizes[][2] = {{1, 1}, {2, 3}, {17, 5}, {64, 48}, {300, 200}, {640, 640}};
    int filters[5] = {0};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint32_t w = sizes[i][0], h = sizes[i][1];
        uint8_t *img = png_pattern(w, h, 7);
        assert_non_null(img);
        size_t stored = roundtrip(img, w, h, PNG_STORED, filters);
        size_t packed = roundtrip(img, w, h, PNG_DEFLATE, filters);
        /* signature, three chunks, zlib header and trailer, stored-block headers */
        size_t raw = ((size_t)w * 3 + 1) * h;
        assert_int_equal(stored, 8 + 25 + 12 + 12 + 2 + 4 + raw + 5 * (raw / 65535 + 1));
        assert_true(packed <= stored);
        free(img);
    }
    /* a picture of gradients and edges uses more than one filter type */
    int used = 0;
    for (int f = 0; f < 5; f++)
        used += filters[f] > 0;
    assert_true(used >= 2);
}

static void t_compresses(void **s)
{
    (void)s;
    uint8_t *img = png_pattern(1024, 1024, 1);
    int filters[5] = {0};
    size_t packed = roundtrip(img, 1024, 1024, PNG_DEFLATE, filters);
    size_t raw = 1025 * 1024 * 3;
    fprintf(stderr, "1024x1024 pattern: %zu bytes deflated, %zu raw (%.1f%%)\n", packed, raw, 100.0 * packed / raw);
    assert_true(packed < raw / 4);
    free(img);
    /* noise does not compress: the stored fallback keeps it at the stored size */
    uint8_t *noise = xmalloc(200 * 100 * 3);
    uint32_t x = 12345;
    for (size_t i = 0; i < 200 * 100 * 3; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise[i] = (uint8_t)x;
    }
    size_t st = roundtrip(noise, 200, 100, PNG_STORED, filters);
    size_t dn = roundtrip(noise, 200, 100, PNG_DEFLATE, filters);
    assert_true(dn <= st);
    free(noise);
    /* long runs: matches of the maximum length at distance 3 and far back */
    uint8_t *flat = xcalloc(4096 * 3, 64);
    for (size_t i = 0; i < 4096 * 3 * 64; i += 7919)
        flat[i] = 0x80;
    roundtrip(flat, 4096, 64, PNG_DEFLATE, filters);
    free(flat);
}

static void t_pattern(void **s)
{
    (void)s;
    uint8_t *a = png_pattern(320, 240, 42), *b = png_pattern(320, 240, 42), *c = png_pattern(320, 240, 43);
    assert_memory_equal(a, b, 320 * 240 * 3);
    assert_true(memcmp(a, c, 320 * 240 * 3) != 0);
    /* structure: many distinct colours, and flat runs */
    int runs = 0, distinct = 0;
    static uint8_t seen[1 << 15];
    memset(seen, 0, sizeof seen);
    for (size_t i = 3; i < 320 * 240 * 3; i += 3) {
        runs += !memcmp(a + i, a + i - 3, 3);
        uint32_t k = (uint32_t)(a[i] >> 3) << 10 | (uint32_t)(a[i + 1] >> 3) << 5 | (a[i + 2] >> 3);
        distinct += !seen[k];
        seen[k] = 1;
    }
    assert_true(distinct > 20);
    assert_true(runs > 320 * 240 / 4);
    free(a);
    free(b);
    free(c);
    assert_null(png_pattern(0, 10, 1));
    assert_null(png_pattern(10, PNG_MAX_SIDE + 1, 1));
    /* the URI is the base64 of the PNG */
    size_t n = 0;
    char *uri = png_pattern_uri(64, 32, 5, PNG_DEFLATE, &n);
    assert_non_null(uri);
    assert_int_equal(strncmp(uri, "data:image/png;base64,iVBORw0KGgo", 33), 0);
    assert_int_equal(strlen(uri), strlen("data:image/png;base64,") + (n + 2) / 3 * 4);
    free(uri);
}

static void t_errors(void **s)
{
    (void)s;
    uint8_t px[3] = {1, 2, 3};
    buf_t b;
    char err[128];
    buf_init(&b, 0);
    assert_int_equal(png_encode_rgb(px, 0, 1, PNG_DEFLATE, &b, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "0x1"));
    assert_int_equal(png_encode_rgb(px, 1, PNG_MAX_SIDE + 1, PNG_DEFLATE, &b, err, sizeof err), -EINVAL);
    buf_free(&b);
    /* a ceiling too small for the PNG: a clean -E2BIG */
    uint8_t *img = png_pattern(100, 100, 3);
    buf_init(&b, 1000);
    assert_int_equal(png_encode_rgb(img, 100, 100, PNG_STORED, &b, err, sizeof err), -E2BIG);
    assert_non_null(strstr(err, "limit"));
    buf_free(&b);
    free(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_checksums), cmocka_unit_test(t_base64),  cmocka_unit_test(t_roundtrip),
        cmocka_unit_test(t_compresses), cmocka_unit_test(t_pattern), cmocka_unit_test(t_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
