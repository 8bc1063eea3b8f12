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
    ARG_MAIN_GPU, ARG_MLOCK, ARG_NO_MMAP, ARG_ALIAS, ARG_LOAD_MODE, ARG_DEVICE, ARG_MMPROJ_DEVICE,
    ARG_CTX_CHECKPOINTS, ARG_FIT_TARGET,
    /* the draft model for speculative decoding and its own settings */
    ARG_DRAFT_MODEL, ARG_NGL_DRAFT, ARG_DEVICE_DRAFT, ARG_CACHE_K_DRAFT, ARG_CACHE_V_DRAFT,
    ARG_UBATCH_DRAFT, ARG_CTX_DRAFT, ARG_N_CPU_MOE_DRAFT, ARG_CPU_MOE_DRAFT, ARG_SPEC_TYPE,
    ARG_DRAFT_MAX,
    /* owned by Variet: refused in role args */
    ARG_MODEL, ARG_HOST, ARG_PORT, ARG_MODELS_DIR, ARG_MODELS_PRESET, ARG_API_KEY,
    ARG_COUNT
} args_opt_t;

/* Index in argv of the value of `opt` (last occurrence), or -1 if absent.
 * For flags without a value (e.g. --cpu-moe) returns the flag's index; for
 * the "--opt=value" form, the index of that token. An occurrence missing its
 * value (last token, or followed by another known option) is skipped. */
long args_find(char *const *argv, size_t n, args_opt_t opt);
/* Value string of `opt` (last occurrence) or NULL ("--opt=value" form
 * handled). For flags, the flag token itself when present. Points into argv. */
const char *args_get(char *const *argv, size_t n, args_opt_t opt);
/* Integer value; false if absent or not an integer. */
bool args_get_long(char *const *argv, size_t n, args_opt_t opt, long *v);

/* Validate a role's args: every token that looks like an option is either a
 * known llama-server option or passed through; options Variet owns (model,
 * host, port, models-dir, api-key) are refused; an option missing its value
 * is refused. On error returns the bad index (>= 0) and a message in err;
 * returns -1 when fine. Values are checked where the option has a known
 * domain: integers (-c, -b, -ub, -np, -t, -tb, -ncmoe, -mg, the draft's
 * -cd, -ncmoed, --spec-draft-n-ubatch, --spec-draft-n-max; -ngl and -ngld
 * also auto/all), cache types (-ctk/-ctv and the draft's -ctkd/-ctvd),
 * -fa on/off/auto, -fit on/off, -sm, -ts, -lm.
 * A value is the next token unless that token is itself a known option, so
 * "-c -1" is a value and "-c --port 1" is "-c needs a value". */
long args_check(char *const *argv, size_t n, char *err, size_t errlen);

/* Canonical long spelling of `opt` ("--ctx-size"). */
const char *args_name(args_opt_t opt);

/* A new vector equal to argv with `opt` set to `value`: the last occurrence
 * is replaced in place (same spelling and form, "-c 8192" or "-c=8192"),
 * earlier ones are dropped, and when absent "--canonical value" is appended.
 * value NULL removes every occurrence (with its value). For flags any
 * non-NULL value means "present". Other tokens are copied unchanged.
 * Returns the vector (NULL-terminated; *n_out entries, n_out may be NULL);
 * the caller frees it with args_free. */
char **args_set(char *const *argv, size_t n, args_opt_t opt, const char *value, size_t *n_out);
/* Free a vector from args_set (NULL-terminated) and NULL *argv. */
void args_free(char ***argv);

#endif
