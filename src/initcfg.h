/*
 * initcfg.h — `variet init MODELS_DIR`: from a folder of GGUF files to an
 * engine_models.json with one role per model, sized for this machine.
 *
 * The steps, each a function a test can drive:
 *   scan       (I/O) the *.gguf files of MODELS_DIR and of its direct
 *              subfolders (one level; names starting with '.' skipped),
 *              the folder's own files first, then the subfolders', by
 *              path; each read with gguf + modelinfo and
 *              classified: a text model, a projector (general.architecture
 *              = clip), or skipped with the reason (unreadable, truncated,
 *              not GGUF, a LoRA adapter, a shard of a split model).
 *   drafts     (pure) a model whose vocabulary (tokenizer.ggml.tokens, byte
 *              for byte) is that of a model with at least
 *              INITCFG_DRAFT_RATIO times its parameters is that model's
 *              draft: listed, no role (unless asked for).
 *   projectors (pure) each projector goes to at most one model of its own
 *              folder, each model gets at most one: by file name first (the
 *              projector's name without the word "mmproj" and a trailing
 *              weight type — "mmproj-X-f16", "X-mmproj" → "X" — starts the
 *              model's file name; the shortest such name wins), then, for the
 *              projectors no name placed, by compatibility alone when exactly
 *              one model without a projector fits. Compatible always means
 *              the projector's clip.vision.projection_dim equals the model's
 *              n_embd (llama-server's mtmd refuses anything else).
 *   names      (pure) role names from file names: lowercase, A-Za-z0-9._-
 *              kept, other runs become '-', at most 64, unique ("-2", "-3").
 *   choose     (pure) for one model, on given hardware: the largest context
 *              (the trained one or --ctx, whichever is smaller, then powers
 *              of two down to 4096) and within it the first KV type (f16,
 *              q8_0, q4_0) the planner says fits, first with the whole model
 *              on the GPUs, else (GPUs present) with the fewest experts on
 *              the host (-ncmoe, MoE) or the most layers on the GPUs (-ngl),
 *              else on the host alone; min_free MiB kept free on every
 *              device. A model that fits nowhere is not a role.
 *   document   (pure) the JSON written: "_comment", "_engine" (llama_server,
 *              memory_budget), one object per role.
 *   run        all of it, text for stdout and stderr into buffers, the file
 *              written atomically (registry_save) and never over an existing
 *              one without force.
 */
#ifndef VARIET_INITCFG_H
#define VARIET_INITCFG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modelinfo.h"
#include "plan.h"
#include "util.h"

#define INITCFG_MAX_FILES 1024  /* GGUF files one scan reads */
#define INITCFG_NAME_MAX 64     /* a role name's length (registry's rule) */
#define INITCFG_DRAFT_RATIO 10  /* a draft has at most 1/10 of its target's parameters */
#define INITCFG_CTX_MIN 4096    /* the smallest context tried (llama-server's own fit floor) */
#define INITCFG_MAX_CTX 24      /* candidate contexts */
#define INITCFG_MIN_FREE_MIB 1024 /* default margin: llama-server's CUDA context (~527 MiB) and estimate error */

typedef enum {
    INITCFG_MODEL,     /* a text model: becomes a role */
    INITCFG_DRAFT,     /* a text model that drafts for another (draft_of) */
    INITCFG_PROJECTOR, /* a multimodal projector */
    INITCFG_SKIPPED,   /* not usable: note says why */
} initcfg_kind_t;

typedef struct {
    char *path;          /* as found: MODELS_DIR/[SUB/]NAME.gguf (owned) */
    char *abs;           /* absolute, "." and ".." folded, links kept (owned) */
    char *dir;           /* the folder it is in, as found (owned) */
    char *stem;          /* NAME without ".gguf" (owned) */
    initcfg_kind_t kind;
    mi_t *mi;            /* facts (owned); NULL when skipped */
    uint64_t vocab_hash; /* FNV-1a 64 of tokenizer.ggml.tokens' bytes; 0: none */
    int projector;       /* models: index of the projector attached, -1 none */
    int model;           /* projectors: index of the model it went to, -1 none */
    bool by_name;        /* projectors: matched by file name (else by compatibility alone) */
    int draft_of;        /* drafts: index of the model it drafts for, -1 */
    char role[INITCFG_NAME_MAX + 1]; /* models: the role name ("" until named) */
    char note[400];      /* why skipped, why a projector found no model, ... ("" none) */
} initcfg_file_t;

typedef struct {
    initcfg_file_t *files; /* n entries in scan order (owned) */
    size_t n;
} initcfg_scan_t;

/* Scan `dir` (see the top of this file). Every file found gets an entry,
 * unreadable ones as INITCFG_SKIPPED with the reason in note. 0, or -errno
 * with one line in err when dir cannot be listed (-ENOTDIR: not a folder) or
 * holds more than INITCFG_MAX_FILES GGUF files (-E2BIG). *out owned by the
 * caller (initcfg_scan_free) on success. */
int initcfg_scan(const char *dir, initcfg_scan_t *out, char *err, size_t errlen);
void initcfg_scan_free(initcfg_scan_t *s);

/* Mark drafts (see the top). With `keep` they stay models (roles) and only
 * draft_of and a note say what they are. */
void initcfg_find_drafts(initcfg_scan_t *s, bool keep);
/* Attach projectors to models (see the top); notes on projectors that
 * found none. */
void initcfg_attach_projectors(initcfg_scan_t *s);
/* Name every INITCFG_MODEL (role, unique). */
void initcfg_name_roles(initcfg_scan_t *s);

/* Role name from a file stem into out[INITCFG_NAME_MAX + 1] (not made
 * unique: initcfg_name_roles does that). "Qwen3.5 35B-A3B_Q4" →
 * "qwen3.5-35b-a3b_q4"; nothing usable → "model". */
void initcfg_role_name(const char *stem, char *out);
/* The model name a projector's stem carries, normalised (lowercase, '_'
 * and '.' as '-') into out (cap bytes): "mmproj-Gemma_3-f16" → "gemma-3",
 * "tiny-qwen35-mmproj" → "tiny-qwen35", "mmproj-F16" → "". */
void initcfg_projector_key(const char *stem, char *out, size_t cap);

typedef struct {
    uint64_t ctx;         /* the largest context to try (0: the model's trained one) */
    int64_t min_free_mib; /* kept free on every device (host included) */
} initcfg_opts_t;

typedef enum {
    INITCFG_PLACE_GPU,       /* the whole model on the GPUs (-ngl 999) */
    INITCFG_PLACE_GPU_NCMOE, /* -ngl 999 -ncmoe N: experts of the first N layers on the host */
    INITCFG_PLACE_GPU_NGL,   /* -ngl N: the last N layers on the GPUs */
    INITCFG_PLACE_HOST,      /* host memory only (no GPU, or -ngl 0) */
    INITCFG_PLACE_NONE,      /* fits nowhere */
} initcfg_place_t;

typedef struct {
    initcfg_place_t place;
    uint64_t n_ctx;       /* the -c written */
    uint32_t kv_type;     /* -ctk/-ctv (GGUF_TT_F16: not written) */
    int64_t ngl, ncmoe;   /* as written, -1 not written */
    char **args;          /* the llama-server args, NULL-terminated (owned, strings too) */
    size_t n_args;
    plan_opts_t opts;     /* args as the planner reads them */
    plan_t plan;          /* the prediction for args (NONE: for the smallest whole configuration) */
    int64_t host_free_mib, min_free_mib; /* what the plan was made against (host after the margin) */
} initcfg_choice_t;

/* Contexts to try, largest first, into c[0..max): the trained context (4096
 * when unknown) or `cap` when smaller, then the powers of two below it down
 * to INITCFG_CTX_MIN (only the first when it is already smaller). Returns
 * the count. */
int initcfg_contexts(uint64_t n_ctx_train, uint64_t cap, uint64_t *c, int max);

/* Choose args for model m (its projector: path written as --mmproj and its
 * size for the planner, NULL/0 for none) on hw (see the top). 0 with *out
 * filled, or -ENOSPC when nothing fits (out->place NONE; args and plan of
 * the smallest whole configuration, for the reason). Pure. out owned by the caller
 * (initcfg_choice_free). */
int initcfg_choose(const mi_t *m, const char *mmproj, uint64_t mmproj_bytes, const plan_hw_t *hw,
                   const initcfg_opts_t *o, initcfg_choice_t *out);
void initcfg_choice_free(initcfg_choice_t *c);
/* "the whole model on the GPUs", "on the host", ... */
const char *initcfg_place_name(initcfg_place_t p);

/* `file_abs` relative to the folder `dir_abs` when it lies under it, else
 * file_abs itself (caller frees). Pure. */
char *initcfg_rel_path(const char *dir_abs, const char *file_abs);

/* "CUDA0 12288 MiB free, host 64000 MiB available" (or "no GPU, host ...")
 * into out. */
void initcfg_hw_text(const plan_hw_t *hw, char *out, size_t cap);

/* The document for the roles of s whose choice fits (choices[i] for
 * s->files[i]; NULL entries are not roles): paths relative to the config's
 * folder (config_dir_abs) where they lie under it, --mmproj absolute
 * (llama-server resolves it against serve's working folder). llama_server:
 * written as given (NULL: null, serve's own search). host_budget_mib > 0:
 * _engine.memory_budget. comment: "_comment" (NULL: none). New reference. */
json_t *initcfg_document(const initcfg_scan_t *s, initcfg_choice_t *const *choices, const char *config_dir_abs,
                         const char *llama_server, int64_t host_budget_mib, const char *comment);

typedef struct {
    const char *models_dir;
    const char *output;       /* the file to write */
    const char *llama_server; /* NULL: none found (written as null, args not checked) */
    bool force;               /* replace an existing output (kept as OUTPUT.bak) */
    bool dry_run;             /* print the document instead of writing it */
    bool drafts;              /* drafts become roles too */
    initcfg_opts_t choose;
    plan_hw_t hw;
    const char *hw_note;      /* where hw came from, for the report ("nvml", "--gpus") */
} initcfg_run_opts_t;

/* The whole of `variet init`: the report (per file, per role the chosen
 * args and the planner's table) into out, warnings (skipped files, models
 * that fit nowhere, projectors without a model) into warn, one line each,
 * then the file. 0 (written, or printed with dry_run); -EEXIST: output
 * exists and not force; -ENODATA: no model became a role (nothing
 * written); -EINVAL: models_dir cannot be listed or output is a folder;
 * -E2BIG: too many files; another -errno: the write failed. err says why. */
int initcfg_run(const initcfg_run_opts_t *o, buf_t *out, buf_t *warn, char *err, size_t errlen);

#endif
