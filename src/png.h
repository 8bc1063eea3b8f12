/*
 * png.h — a small PNG writer for generated test images, and base64.
 *
 * What it writes: the 8-byte signature, IHDR (width, height, bit depth 8,
 * colour type 2 = RGB, compression 0, filter 0, interlace 0), one IDAT
 * holding a zlib stream (RFC 1950: CMF/FLG header, deflate data, Adler-32
 * of the filtered scanlines, big-endian), IEND. Each chunk is length (4
 * bytes, big-endian), type (4), data, CRC-32 of type + data. Each scanline
 * is a filter byte (0 none, 1 sub, 2 up, 3 average, 4 Paeth: the one with
 * the smallest sum of |signed residuals|, as libpng's heuristic) and w*3
 * residual bytes.
 *
 * The deflate data (RFC 1951) is ours: PNG_STORED writes stored blocks
 * (BTYPE 00, at most 65,535 bytes each: the size is known beforehand);
 * PNG_DEFLATE writes one block with the fixed Huffman codes (BTYPE 01)
 * over LZ77 matches found with hash chains in a 32 KiB window, and falls
 * back to stored blocks when that would be larger. No third-party code.
 *
 * Pure: no I/O, no global state.
 */
#ifndef VARIET_PNG_H
#define VARIET_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Largest width or height png_encode_rgb takes. */
#define PNG_MAX_SIDE 16384u

typedef enum {
    PNG_STORED = 0,  /* uncompressed deflate blocks: size ~ 3*w*h */
    PNG_DEFLATE = 1, /* LZ77 + fixed Huffman codes */
} png_mode_t;

/* CRC-32 (ISO 3309, as PNG and zlib use it) of n bytes, continuing crc
 * (start with 0). */
uint32_t png_crc32(uint32_t crc, const void *p, size_t n);

/* Adler-32 of n bytes, continuing adler (start with 1). */
uint32_t png_adler32(uint32_t adler, const void *p, size_t n);

/* A zlib stream of n bytes appended to out. 0, or -E2BIG when out's
 * ceiling is reached (out is then partly written). */
int png_zlib(const uint8_t *in, size_t n, png_mode_t mode, buf_t *out);

/* The PNG of a w×h RGB8 image (rgb: h rows of w*3 bytes) appended to out
 * (initialised by the caller, who frees it). 0; -EINVAL with err for a
 * side of 0 or over PNG_MAX_SIDE; -E2BIG when out's ceiling is reached. */
int png_encode_rgb(const uint8_t *rgb, uint32_t w, uint32_t h, png_mode_t mode, buf_t *out, char *err,
                   size_t errlen);

/* A deterministic w×h RGB8 test picture for seed (caller frees; w*h*3
 * bytes): a two-colour gradient with seeded rectangles, discs, a
 * checkerboard and stripes, so it has edges and flat areas as photographs
 * and screenshots do. Same seed, same bytes. NULL for a side of 0 or over
 * PNG_MAX_SIDE. */
uint8_t *png_pattern(uint32_t w, uint32_t h, uint32_t seed);

/* Base64 (RFC 4648, with '=' padding) of n bytes; caller frees. */
char *png_base64(const void *p, size_t n);

/* "data:image/png;base64,..." of n PNG bytes; caller frees. */
char *png_data_uri(const void *png, size_t n);

/* The data URI of png_pattern(w, h, seed) encoded with mode (caller
 * frees), *png_bytes the PNG's size when not NULL; NULL for bad sides. */
char *png_pattern_uri(uint32_t w, uint32_t h, uint32_t seed, png_mode_t mode, size_t *png_bytes);

#endif
