/*
 * args.h — llama-server argument vectors: find options by any spelling,
 * read their values, replace/remove them, and refuse options Variet owns.
 *
 * An option table lists llama-server's spellings (-c / --ctx-size,
 * -ub / --ubatch-size, -ctk / --cache-type-k, ...), whether it takes a value,
 * and its canonical name; "--opt=value" is accepted too.
 */
#ifndef VARIET_ARGS_H
#define VARIET_ARGS_H

#include <stdbool.h>
#include <stddef.h>

/* Canonical option names this module knows (long spelling without dashes). */
typedef enum {
    ARG_CTX_SIZE, ARG_BATCH, ARG_UBATCH, ARG_PARALLEL, ARG_NGL, ARG_TENSOR_SPLIT,
    ARG_CACHE_K, ARG_CACHE_V, ARG_FLASH_ATTN, ARG_N_CPU_MOE, ARG_CPU_MOE, ARG_THREADS,
    ARG_THREADS_BATCH, ARG_MMPROJ, ARG_NO_MMPROJ_OFFLOAD, ARG_FIT, ARG_SPLIT_MODE,
    ARG_MAIN_GPU, ARG_MLOCK, ARG_NO_MMAP, ARG_ALIAS,
    /* owned by Variet: refused in role args */
    ARG_MODEL, ARG_HOST, ARG_PORT, ARG_MODELS_DIR, ARG_MODELS_PRESET, ARG_API_KEY,
    ARG_COUNT
} args_opt_t;

/* Index in argv of the value of `opt` (last occurrence), or -1 if absent.
 * For flags without a value (e.g. --cpu-moe) returns the flag's index. */
long args_find(char *const *argv, size_t n, args_opt_t opt);
/* Value string of `opt` or NULL ("--opt=value" form handled). */
const char *args_get(char *const *argv, size_t n, args_opt_t opt);
/* Integer value; false if absent or not an integer. */
bool args_get_long(char *const *argv, size_t n, args_opt_t opt, long *v);

/* Validate a role's args: every token that looks like an option is either a
 * known llama-server option or passed through; options Variet owns (model,
 * host, port, models-dir, api-key) are refused; an option missing its value
 * is refused. On error returns the bad index (>= 0) and a message in err;
 * returns -1 when fine. */
long args_check(char *const *argv, size_t n, char *err, size_t errlen);

#endif
