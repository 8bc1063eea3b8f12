/*
 * roleplan.h — one role → plan: what a role loads (its model, the draft
 * model named by draft_model_path or -md, the projector named by --mmproj)
 * and its args → the planner's options with every companion attached →
 * per-device memory. `variet plan`, the gateway's admission and the
 * tuner's feasibility gate all go through it, so the three count the same
 * bytes: the projector's weights and compute buffer where
 * --no-mmproj-offload puts them, the draft's weights, KV at its context,
 * compute and output buffers where -ngld / -devd put them, and what
 * llama-server's --fit reserves for both before it fits the model.
 *
 * Before a role with a draft is launched (gateway, bench, tune),
 * roleplan_check_draft compares the draft's vocabulary with the model's
 * (vocab.h) and refuses a mismatch with the first difference, so
 * llama-server is never started to serve without its draft.
 *
 * Paths inside args (-md, --mmproj) are read as llama-server reads them:
 * relative to the folder Variet runs in (the registry resolves
 * draft_model_path against the config's folder before it becomes -md).
 */
#ifndef VARIET_ROLEPLAN_H
#define VARIET_ROLEPLAN_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "modelinfo.h"
#include "plan.h"
#include "registry.h"

/* What a role loads, opened once (mmap; the planner reads shapes only).
 * Owned by the caller: roleplan_free. */
typedef struct {
    char *model_path, *draft_path, *mmproj_path; /* NULL: none (owned) */
    gguf_t *g, *g_draft, *g_mmproj;
    mi_t *mi, *draft_mi, *mmproj_mi;
} roleplan_t;

/* Open the model at model_path and the companions args name (-md, --mmproj).
 * 0 with *out, or a negative errno with one line in err naming the file:
 *   "-md models/d.gguf: No such file or directory"
 *   "--mmproj models/p.gguf: not a projector (general.architecture llama)"
 * (the model's own errors come without a prefix: callers add the role's
 * place, e.g. "fast.model_path: "). */
int roleplan_open(const char *model_path, char *const *args, size_t n, roleplan_t **out, char *err, size_t errlen);
/* The same for a registry role (model_abs and its args, which carry the
 * draft_model_path as -md); errors prefixed with the role's place
 * ("fast.model_path: ...", "fast.draft_model_path: ..."). */
int roleplan_open_role(const reg_role_t *r, roleplan_t **out, char *err, size_t errlen);
void roleplan_free(roleplan_t **rp);

/* The planner's options for args — the role's own or a variant of them (a
 * tuning point) — with the opened companions attached (a companion args no
 * longer name is left out: a tuning point without its draft). 0 or -EINVAL
 * with err. */
int roleplan_opts(const roleplan_t *rp, char *const *args, size_t n, plan_opts_t *o, char *err, size_t errlen);

/* roleplan_opts, then plan_predict with the hardware (gpus may be NULL
 * with n_gpu 0; host_free_mib -1 unknown; margin bytes per GPU). o may be
 * NULL. 0 or -EINVAL with err. */
int roleplan_predict(const roleplan_t *rp, char *const *args, size_t n, const plan_gpu_t *gpus, int n_gpu,
                     int64_t host_free_mib, uint64_t margin, plan_opts_t *o, plan_t *out, char *err, size_t errlen);

/* The gateway's admission estimate for a registry role: open, predict with
 * no margin and unknown host memory, close. 0 or -EINVAL with err. */
int roleplan_role(const reg_role_t *r, const plan_gpu_t *gpus, int n_gpu, plan_opts_t *o, plan_t *out, char *err,
                  size_t errlen);

/* Before launch: when args name a draft (-md), is its vocabulary the
 * model's? 0 when there is no draft or it is; -EINVAL with err
 *   "draft tiny-draft-othervocab.gguf does not share the vocabulary of
 *    tiny-qwen35moe.gguf (token 261: '▁a' vs '▁z'); llama-server would serve
 *    without it"
 * or another negative errno when a file cannot be read (err says which). */
int roleplan_check_draft(const char *model_path, char *const *args, size_t n, char *err, size_t errlen);

#endif
