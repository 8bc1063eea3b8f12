/*
 * args.c — llama-server argument vectors as one option table.
 *
 * opts[] lists, for every option Variet reasons about, its canonical id, all
 * spellings llama-server accepts (build b11669, see
 * ../shared/fixtures/llama-server/llama-server-help-b11669.txt) and the kind
 * of value it takes. Everything else in a vector is passed through: unknown
 * options and their values are llama-server's business. One tokenizer
 * (next_item) walks a vector the same way for lookup, checking and
 * mutation: a known option that takes a value consumes the next token unless
 * that token is itself a known option ("-c -1" is a value, "-c --port" is a
 * missing value); "--opt=value" carries its value inline. The last
 * occurrence of an option wins, as in llama-server.
 */
#include "args.h"

#include <assert.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef enum {
    V_FLAG,       /* no value */
    V_STR,        /* any string */
    V_INT,        /* integer */
    V_NGL,        /* integer, "auto" or "all" */
    V_CACHE,      /* KV cache type */
    V_ONOFFAUTO,  /* on | off | auto */
    V_ONOFF,      /* on | off */
    V_SPLIT_MODE, /* none | layer | row | tensor */
    V_SPLIT,      /* proportions "3,1" (',' or '/' separated) */
    V_LOAD_MODE,  /* auto | none | mmap | mlock | mmap+mlock | dio */
} vkind_t;

#define MAX_SPELL 4

typedef struct {
    args_opt_t id;
    const char *canon;              /* long spelling used when appending */
    const char *spell[MAX_SPELL];   /* every accepted spelling, NULL-padded */
    vkind_t value;
    bool owned;                     /* set by Variet: refused in role args */
} opt_def_t;

/* --mlock and --no-mmap are the spellings of builds before b11669, which
 * replaced them with -lm/--load-mode; they are kept so older configs are
 * still understood (b11669 itself rejects them at start). */
static const opt_def_t opts[] = {
    {ARG_CTX_SIZE, "--ctx-size", {"-c", "--ctx-size"}, V_INT, false},
    {ARG_BATCH, "--batch-size", {"-b", "--batch-size"}, V_INT, false},
    {ARG_UBATCH, "--ubatch-size", {"-ub", "--ubatch-size"}, V_INT, false},
    {ARG_PARALLEL, "--parallel", {"-np", "--parallel"}, V_INT, false},
    {ARG_NGL, "--n-gpu-layers", {"-ngl", "--gpu-layers", "--n-gpu-layers"}, V_NGL, false},
    {ARG_TENSOR_SPLIT, "--tensor-split", {"-ts", "--tensor-split"}, V_SPLIT, false},
    {ARG_CACHE_K, "--cache-type-k", {"-ctk", "--cache-type-k"}, V_CACHE, false},
    {ARG_CACHE_V, "--cache-type-v", {"-ctv", "--cache-type-v"}, V_CACHE, false},
    {ARG_FLASH_ATTN, "--flash-attn", {"-fa", "--flash-attn"}, V_ONOFFAUTO, false},
    {ARG_N_CPU_MOE, "--n-cpu-moe", {"-ncmoe", "--n-cpu-moe"}, V_INT, false},
    {ARG_CPU_MOE, "--cpu-moe", {"-cmoe", "--cpu-moe"}, V_FLAG, false},
    {ARG_THREADS, "--threads", {"-t", "--threads"}, V_INT, false},
    {ARG_THREADS_BATCH, "--threads-batch", {"-tb", "--threads-batch"}, V_INT, false},
    {ARG_MMPROJ, "--mmproj", {"-mm", "--mmproj"}, V_STR, false},
    {ARG_NO_MMPROJ_OFFLOAD, "--no-mmproj-offload", {"--no-mmproj-offload"}, V_FLAG, false},
    {ARG_FIT, "--fit", {"-fit", "--fit"}, V_ONOFF, false},
    {ARG_SPLIT_MODE, "--split-mode", {"-sm", "--split-mode"}, V_SPLIT_MODE, false},
    {ARG_MAIN_GPU, "--main-gpu", {"-mg", "--main-gpu"}, V_INT, false},
    {ARG_MLOCK, "--mlock", {"--mlock"}, V_FLAG, false},
    {ARG_NO_MMAP, "--no-mmap", {"--no-mmap"}, V_FLAG, false},
    {ARG_ALIAS, "--alias", {"-a", "--alias"}, V_STR, false},
    {ARG_LOAD_MODE, "--load-mode", {"-lm", "--load-mode"}, V_LOAD_MODE, false},
    {ARG_DEVICE, "--device", {"-dev", "--device"}, V_STR, false},
    {ARG_MMPROJ_DEVICE, "--mmproj-device", {"-mmdev", "--mmproj-device"}, V_STR, false},
    {ARG_CTX_CHECKPOINTS, "--ctx-checkpoints", {"-ctxcp", "--ctx-checkpoints", "--swa-checkpoints"}, V_INT, false},
    {ARG_FIT_TARGET, "--fit-target", {"-fitt", "--fit-target"}, V_STR, false},
    /* drafts: the short spellings are the ones every build since the draft
     * options exist takes, so they are what gets appended; the draft length
     * went from --draft / --draft-max to --spec-draft-n-max in b11669 and
     * the context of its own (-cd) was removed there */
    {ARG_DRAFT_MODEL, "-md", {"-md", "--spec-draft-model", "--model-draft"}, V_STR, false},
    {ARG_NGL_DRAFT, "-ngld", {"-ngld", "--spec-draft-ngl", "--gpu-layers-draft", "--n-gpu-layers-draft"}, V_NGL, false},
    {ARG_DEVICE_DRAFT, "-devd", {"-devd", "--spec-draft-device", "--device-draft"}, V_STR, false},
    {ARG_CACHE_K_DRAFT, "-ctkd", {"-ctkd", "--spec-draft-type-k", "--cache-type-k-draft"}, V_CACHE, false},
    {ARG_CACHE_V_DRAFT, "-ctvd", {"-ctvd", "--spec-draft-type-v", "--cache-type-v-draft"}, V_CACHE, false},
    {ARG_UBATCH_DRAFT, "--spec-draft-n-ubatch", {"--spec-draft-n-ubatch"}, V_INT, false},
    {ARG_CTX_DRAFT, "-cd", {"-cd", "--ctx-size-draft"}, V_INT, false},
    {ARG_N_CPU_MOE_DRAFT, "-ncmoed", {"-ncmoed", "--spec-draft-n-cpu-moe", "--spec-draft-ncmoe", "--n-cpu-moe-draft"}, V_INT, false},
    {ARG_CPU_MOE_DRAFT, "-cmoed", {"-cmoed", "--spec-draft-cpu-moe", "--cpu-moe-draft"}, V_FLAG, false},
    {ARG_SPEC_TYPE, "--spec-type", {"--spec-type"}, V_STR, false},
    {ARG_DRAFT_MAX, "--spec-draft-n-max", {"--spec-draft-n-max", "--draft-max", "--draft-n", "--draft"}, V_INT, false},
    {ARG_MODEL, "--model", {"-m", "--model"}, V_STR, true},
    {ARG_HOST, "--host", {"--host"}, V_STR, true},
    {ARG_PORT, "--port", {"--port"}, V_STR, true},
    {ARG_MODELS_DIR, "--models-dir", {"--models-dir"}, V_STR, true},
    {ARG_MODELS_PRESET, "--models-preset", {"--models-preset"}, V_STR, true},
    {ARG_API_KEY, "--api-key", {"--api-key"}, V_STR, true},
};

_Static_assert(sizeof opts / sizeof opts[0] == ARG_COUNT, "one opts[] row per args_opt_t");

static const char *const cache_types[] = {"f32",  "f16",    "bf16", "q8_0", "q4_0",
                                          "q4_1", "iq4_nl", "q5_0", "q5_1", NULL};
static const char *const on_off_auto[] = {"on", "off", "auto", NULL};
static const char *const on_off[] = {"on", "off", NULL};
static const char *const split_modes[] = {"none", "layer", "row", "tensor", NULL};
static const char *const load_modes[] = {"auto", "none", "mmap", "mlock", "mmap+mlock", "dio", NULL};

/* The option spelled by `tok` (up to an '=' if any), or NULL. */
static const opt_def_t *lookup(const char *tok, size_t *name_len, const char **inline_val)
{
    if (tok[0] != '-')
        return NULL;
    const char *eq = strchr(tok, '=');
    size_t len = eq ? (size_t)(eq - tok) : strlen(tok);
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        for (int k = 0; k < MAX_SPELL && opts[i].spell[k]; k++)
            if (strlen(opts[i].spell[k]) == len && !memcmp(opts[i].spell[k], tok, len)) {
                *name_len = len;
                *inline_val = eq ? eq + 1 : NULL;
                return &opts[i];
            }
    return NULL;
}

typedef struct {
    const opt_def_t *def; /* NULL: a token that is not a known option */
    size_t at;            /* index of the option token */
    size_t name_len;      /* length of the spelling inside argv[at] */
    const char *value;    /* the value; NULL for flags and when missing */
    long value_at;        /* index holding the value (at for "=" form), -1 if none */
    bool inline_value;    /* "--opt=value" */
    size_t next;          /* first index after this item */
} item_t;

/* Read the item starting at argv[i]. */
static void next_item(char *const *argv, size_t n, size_t i, item_t *it)
{
    const char *inl = NULL;
    memset(it, 0, sizeof *it);
    it->at = i;
    it->value_at = -1;
    it->next = i + 1;
    it->def = lookup(argv[i], &it->name_len, &inl);
    if (!it->def)
        return;
    if (inl) {
        it->inline_value = true;
        if (it->def->value != V_FLAG) {
            it->value = inl;
            it->value_at = (long)i;
        }
        return;
    }
    if (it->def->value == V_FLAG) {
        it->value_at = (long)i;
        return;
    }
    size_t nl;
    if (i + 1 < n && !lookup(argv[i + 1], &nl, &inl)) {
        it->value = argv[i + 1];
        it->value_at = (long)(i + 1);
        it->next = i + 2;
    }
}

/* The last usable occurrence of opt: true and *out filled, or false. */
static bool find_last(char *const *argv, size_t n, args_opt_t opt, item_t *out)
{
    bool found = false;
    item_t it;
    for (size_t i = 0; i < n; i = it.next) {
        next_item(argv, n, i, &it);
        if (it.def && it.def->id == opt && it.value_at >= 0) {
            *out = it;
            found = true;
        }
    }
    return found;
}

long args_find(char *const *argv, size_t n, args_opt_t opt)
{
    item_t it;
    return find_last(argv, n, opt, &it) ? it.value_at : -1;
}

const char *args_get(char *const *argv, size_t n, args_opt_t opt)
{
    item_t it;
    if (!find_last(argv, n, opt, &it))
        return NULL;
    return it.def->value == V_FLAG ? argv[it.at] : it.value;
}

bool args_get_long(char *const *argv, size_t n, args_opt_t opt, long *v)
{
    const char *s = args_get(argv, n, opt);
    int64_t x;
    if (!s || !parse_i64(s, LONG_MIN, LONG_MAX, &x))
        return false;
    *v = (long)x;
    return true;
}

static bool one_of(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(s, *set))
            return true;
    return false;
}

static void join(char *dst, size_t cap, const char *const *set)
{
    size_t used = 0;
    dst[0] = 0;
    for (int i = 0; set[i] && used < cap; i++) {
        int w = snprintf(dst + used, cap - used, "%s%s", i ? ", " : "", set[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* "3,1", "0.5/0.5": non-negative numbers separated by ',' or '/'. */
static bool split_ok(const char *s)
{
    char piece[64];
    const char *p = s;
    for (;;) {
        size_t len = strcspn(p, ",/");
        double d;
        if (len == 0 || len >= sizeof piece)
            return false;
        memcpy(piece, p, len);
        piece[len] = 0;
        if (!parse_f64(piece, &d) || d < 0)
            return false;
        if (!p[len])
            return true;
        p += len + 1;
    }
}

/* Check the value of `it`; 0 or -1 with err filled. */
static int check_value(const item_t *it, const char *tok, char *err, size_t errlen)
{
    const char *v = it->value;
    const char *const *set = NULL;
    const char *what = NULL;
    int64_t x;
    char list[128];
    int nl = (int)it->name_len;

    switch (it->def->value) {
    case V_FLAG:
    case V_STR:
        return 0;
    case V_INT:
    case V_NGL:
        if (parse_i64(v, INT32_MIN, INT32_MAX, &x))
            return 0;
        if (it->def->value == V_NGL && (!strcmp(v, "auto") || !strcmp(v, "all")))
            return 0;
        snprintf(err, errlen, "%.*s: '%.64s' is not an integer%s", nl, tok, v,
                 it->def->value == V_NGL ? " (or auto, all)" : "");
        return -1;
    case V_SPLIT:
        if (split_ok(v))
            return 0;
        snprintf(err, errlen, "%.*s: '%.64s' is not a list of proportions like 3,1", nl, tok, v);
        return -1;
    case V_CACHE: set = cache_types; what = "cache type"; break;
    case V_ONOFFAUTO: set = on_off_auto; what = "value"; break;
    case V_ONOFF: set = on_off; what = "value"; break;
    case V_SPLIT_MODE: set = split_modes; what = "split mode"; break;
    case V_LOAD_MODE: set = load_modes; what = "load mode"; break;
    }
    if (one_of(v, set))
        return 0;
    join(list, sizeof list, set);
    snprintf(err, errlen, "%.*s: '%.64s' is not a %s (one of %s)", nl, tok, v, what, list);
    return -1;
}

long args_check(char *const *argv, size_t n, char *err, size_t errlen)
{
    item_t it;
    for (size_t i = 0; i < n; i = it.next) {
        next_item(argv, n, i, &it);
        if (!it.def)
            continue;
        const char *tok = argv[it.at];
        int nl = (int)it.name_len;
        if (it.def->owned) {
            snprintf(err, errlen, "%.*s is set by variet (remove it)", nl, tok);
            return (long)it.at;
        }
        if (it.def->value == V_FLAG) {
            if (it.inline_value) {
                snprintf(err, errlen, "%.*s takes no value", nl, tok);
                return (long)it.at;
            }
            continue;
        }
        if (!it.value) {
            snprintf(err, errlen, "%.*s needs a value", nl, tok);
            return (long)it.at;
        }
        if (check_value(&it, tok, err, errlen))
            return it.value_at;
    }
    return -1;
}

static const opt_def_t *def_of(args_opt_t opt)
{
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (opts[i].id == opt)
            return &opts[i];
    return NULL;
}

const char *args_name(args_opt_t opt)
{
    const opt_def_t *d = def_of(opt);
    return d ? d->canon : "?";
}

char **args_set(char *const *argv, size_t n, args_opt_t opt, const char *value, size_t *n_out)
{
    const opt_def_t *d = def_of(opt);
    assert(d != NULL);
    item_t last = {0}, it = {0};
    bool have = find_last(argv, n, opt, &last);
    char **out = xcalloc(n + 3, sizeof *out);
    size_t k = 0;

    for (size_t i = 0; i < n; i = it.next) {
        next_item(argv, n, i, &it);
        if (!it.def || it.def->id != opt) {
            for (size_t j = it.at; j < it.next; j++)
                out[k++] = xstrdup(argv[j]);
            continue;
        }
        if (!value || !have || it.at != last.at)
            continue; /* dropped: an earlier occurrence, or a removal */
        if (it.def->value == V_FLAG) {
            out[k++] = xstrndup(argv[it.at], it.name_len);
        } else if (it.inline_value) {
            out[k++] = xasprintf("%.*s=%s", (int)it.name_len, argv[it.at], value);
        } else {
            out[k++] = xstrdup(argv[it.at]);
            out[k++] = xstrdup(value);
        }
    }
    if (value && !have) {
        out[k++] = xstrdup(d->canon);
        if (d->value != V_FLAG)
            out[k++] = xstrdup(value);
    }
    out[k] = NULL;
    if (n_out)
        *n_out = k;
    return out;
}

void args_free(char ***argv)
{
    if (!argv || !*argv)
        return;
    for (char **p = *argv; *p; p++)
        free(*p);
    free(*argv);
    *argv = NULL;
}
