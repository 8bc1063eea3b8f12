/*
 * ggufw.h — streaming GGUF v3 writer.
 *
 * Metadata and the tensor table are collected in memory (small); tensor
 * data is produced by a caller callback chunk by chunk while writing, so a
 * 20 GiB model is written in constant memory. Layout matches gguf.h.
 */
#ifndef VARIET_GGUFW_H
#define VARIET_GGUFW_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "gguf.h"

typedef struct ggufw ggufw_t;

/* Fill `n` bytes of tensor `ti` starting at byte `off` within it. `off` and
 * `n` are multiples of the tensor type's block bytes. */
typedef void (*ggufw_fill_fn)(void *ud, size_t ti, const gguf_tensor_t *t, uint8_t *dst,
                              uint64_t off, size_t n);

/* Create a writer (caller frees with ggufw_free). alignment: a power of two
 * up to 256; other than 32 it is written as general.alignment (then the
 * caller must not add that key). */
ggufw_t *ggufw_new(uint32_t alignment);
void ggufw_free(ggufw_t **w);

void ggufw_u32(ggufw_t *w, const char *key, uint32_t v);
void ggufw_i32(ggufw_t *w, const char *key, int32_t v);
void ggufw_u64(ggufw_t *w, const char *key, uint64_t v);
void ggufw_f32(ggufw_t *w, const char *key, float v);
void ggufw_bool(ggufw_t *w, const char *key, int v);
void ggufw_str(ggufw_t *w, const char *key, const char *v);
void ggufw_arr_str(ggufw_t *w, const char *key, size_t n, const char *const *v);
void ggufw_arr_f32(ggufw_t *w, const char *key, size_t n, const float *v);
void ggufw_arr_i32(ggufw_t *w, const char *key, size_t n, const int32_t *v);
/* Array of GGUF bools (one byte each, 0 or 1): per-layer flags such as
 * <arch>.attention.sliding_window_pattern. */
void ggufw_arr_bool(ggufw_t *w, const char *key, size_t n, const bool *v);

/* Add a tensor; returns its index, or -1 when ne[0] does not fit the type's
 * block size (the caller picks another type). */
long ggufw_tensor(ggufw_t *w, const char *name, gguf_ttype_t type, int n_dims,
                  const uint64_t *ne);

/* Bytes the finished file will have. */
uint64_t ggufw_file_size(const ggufw_t *w);

/* Write header, tensor table and data (via fill) to f. With fill == NULL
 * the data section is left as a hole (sparse file: right size, zeros, no
 * disk used) — for planning tests on full-size shapes. 0 or -errno. */
int ggufw_write(ggufw_t *w, FILE *f, ggufw_fill_fn fill, void *ud, char *err, size_t errlen);

#endif
