/*
 * roleplan.c — a role's model and companions opened once, their facts
 * attached to the planner's options, the vocabulary check before launch
 * (contracts in roleplan.h). The planner itself (plan.c) stays pure: it
 * gets the companions as modelinfo facts in plan_opts_t and never touches
 * a file.
 */
#include "roleplan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "util.h"
#include "vocab.h"

void roleplan_free(roleplan_t **rp)
{
    if (!rp || !*rp)
        return;
    roleplan_t *p = *rp;
    mi_free(&p->mi);
    mi_free(&p->draft_mi);
    mi_free(&p->mmproj_mi);
    gguf_close(&p->g);
    gguf_close(&p->g_draft);
    gguf_close(&p->g_mmproj);
    free(p->model_path);
    free(p->draft_path);
    free(p->mmproj_path);
    free(p);
    *rp = NULL;
}

/* Open one file and read its facts; err without a prefix. */
static int open_one(const char *path, gguf_t **g, mi_t **m, char *err, size_t errlen)
{
    int rc = gguf_open(path, g, err, errlen);
    if (rc)
        return rc;
    if ((rc = mi_from_gguf(*g, m, err, errlen))) {
        gguf_close(g);
        return rc;
    }
    return 0;
}

/* Open the model and its companions; on failure *which says whose file
 * (0 the model, 1 the draft, 2 the projector) and err holds the bare reason. */
static int open_impl(const char *model_path, char *const *args, size_t n, roleplan_t **out, int *which, char *err,
                     size_t errlen)
{
    *out = NULL;
    *which = 0;
    roleplan_t *p = xcalloc(1, sizeof *p); /* owned by the caller on success */
    int rc;
    p->model_path = xstrdup(model_path);
    if ((rc = open_one(model_path, &p->g, &p->mi, err, errlen)))
        goto fail;
    const char *draft = args_get(args, n, ARG_DRAFT_MODEL), *mmproj = args_get(args, n, ARG_MMPROJ);
    if (draft) {
        *which = 1;
        p->draft_path = xstrdup(draft);
        if ((rc = open_one(draft, &p->g_draft, &p->draft_mi, err, errlen)))
            goto fail;
        if (p->draft_mi->is_mmproj) {
            snprintf(err, errlen, "a projector, not a draft model");
            rc = -EINVAL;
            goto fail;
        }
    }
    if (mmproj) {
        *which = 2;
        p->mmproj_path = xstrdup(mmproj);
        if ((rc = open_one(mmproj, &p->g_mmproj, &p->mmproj_mi, err, errlen)))
            goto fail;
        if (!p->mmproj_mi->is_mmproj) {
            snprintf(err, errlen, "not a projector (general.architecture %s)", p->mmproj_mi->arch);
            rc = -EINVAL;
            goto fail;
        }
    }
    *out = p;
    return 0;
fail:
    roleplan_free(&p);
    return rc ? rc : -EINVAL;
}

/* "OPT PATH: why", without the path twice when the reason starts with it
 * (gguf's own messages do). */
static void name_file(char *err, size_t errlen, const char *prefix, const char *opt, const char *path,
                      const char *why)
{
    size_t pl = strlen(path);
    if (!strncmp(why, path, pl) && why[pl] == ':')
        snprintf(err, errlen, "%s%s %s", prefix, opt, why);
    else
        snprintf(err, errlen, "%s%s %s: %s", prefix, opt, path, why);
}

int roleplan_open(const char *model_path, char *const *args, size_t n, roleplan_t **out, char *err, size_t errlen)
{
    char e[512];
    int which;
    int rc = open_impl(model_path, args, n, out, &which, e, sizeof e);
    if (rc && which == 1)
        name_file(err, errlen, "", "-md", args_get(args, n, ARG_DRAFT_MODEL), e);
    else if (rc && which == 2)
        name_file(err, errlen, "", "--mmproj", args_get(args, n, ARG_MMPROJ), e);
    else if (rc)
        snprintf(err, errlen, "%s", e);
    return rc;
}

int roleplan_open_role(const reg_role_t *r, roleplan_t **out, char *err, size_t errlen)
{
    char e[512];
    int which;
    int rc = open_impl(r->model_abs, r->args, r->n_args, out, &which, e, sizeof e);
    if (!rc)
        return 0;
    /* the field of the role that names the file that failed */
    char place[200];
    snprintf(place, sizeof place, "%s.args: ", r->name);
    if (which == 1 && r->draft_abs) {
        snprintf(place, sizeof place, "%s.draft_model_path:", r->name);
        name_file(err, errlen, "", place, r->draft_abs, e);
    } else if (which == 1) {
        name_file(err, errlen, place, "-md", args_get(r->args, r->n_args, ARG_DRAFT_MODEL), e);
    } else if (which == 2) {
        name_file(err, errlen, place, "--mmproj", args_get(r->args, r->n_args, ARG_MMPROJ), e);
    } else
        snprintf(err, errlen, "%s.model_path: %s", r->name, e);
    return rc;
}

int roleplan_opts(const roleplan_t *rp, char *const *args, size_t n, plan_opts_t *o, char *err, size_t errlen)
{
    if (plan_opts_from_args(args, n, o, err, errlen))
        return -EINVAL;
    /* a companion the args still name: its facts, not just its file size */
    if (o->draft && rp->draft_mi)
        o->draft_mi = rp->draft_mi;
    if (args_get(args, n, ARG_MMPROJ) && rp->mmproj_mi)
        o->mmproj_mi = rp->mmproj_mi;
    return 0;
}

int roleplan_predict(const roleplan_t *rp, char *const *args, size_t n, const plan_gpu_t *gpus, int n_gpu,
                     int64_t host_free_mib, uint64_t margin, plan_opts_t *o, plan_t *out, char *err, size_t errlen)
{
    plan_opts_t local;
    if (!o)
        o = &local;
    if (roleplan_opts(rp, args, n, o, err, errlen))
        return -EINVAL;
    plan_predict(rp->mi, o, gpus, n_gpu, host_free_mib, margin, out);
    return 0;
}

int roleplan_role(const reg_role_t *r, const plan_gpu_t *gpus, int n_gpu, plan_opts_t *o, plan_t *out, char *err,
                  size_t errlen)
{
    roleplan_t *rp = NULL;
    int rc = roleplan_open_role(r, &rp, err, errlen);
    if (rc)
        return rc;
    char e[512];
    if (roleplan_predict(rp, r->args, r->n_args, gpus, n_gpu, -1, 0, o, out, e, sizeof e)) {
        snprintf(err, errlen, "%s.%s", r->name, e);
        rc = -EINVAL;
    }
    roleplan_free(&rp);
    return rc;
}

/* The last path component, for messages. */
static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

int roleplan_check_draft(const char *model_path, char *const *args, size_t n, char *err, size_t errlen)
{
    const char *draft = args_get(args, n, ARG_DRAFT_MODEL);
    if (!draft)
        return 0;
    gguf_t *a = NULL, *b = NULL;
    char e[512], diff[320];
    int rc;
    if ((rc = gguf_open(model_path, &a, e, sizeof e))) {
        snprintf(err, errlen, "the model: %s", e);
        return rc;
    }
    if ((rc = gguf_open(draft, &b, e, sizeof e))) {
        name_file(err, errlen, "", "the draft", draft, e);
        gguf_close(&a);
        return rc;
    }
    rc = vocab_compare(a, b, diff, sizeof diff);
    if (rc == 1) {
        snprintf(err, errlen,
                 "draft %s does not share the vocabulary of %s (%s); llama-server would serve without it",
                 base_name(draft), base_name(model_path), diff);
        rc = -EINVAL;
    } else if (rc < 0) {
        snprintf(err, errlen, "draft %s: %s", base_name(draft), diff);
    }
    gguf_close(&a);
    gguf_close(&b);
    return rc;
}
