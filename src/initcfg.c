/*
 * initcfg.c — `variet init`: scan a folder of GGUF files, pair projectors
 * with their models, name the roles, choose each role's context, KV type
 * and placement with the planner, and write engine_models.json (see
 * initcfg.h for the rules).
 *
 * Only the scan (directory listing, gguf_open) and the run (srvhelp, the
 * write) touch the system; drafts, projectors, names, the choice and the
 * document are pure over the scanned facts and a given machine, so a test
 * can plan for a 12 GB card on a CPU-only runner. The choice asks the
 * planner about the exact argument vector it writes (plan_opts_from_args of
 * the args, then plan_predict), so what is printed and written is what was
 * predicted; -ngl is written whenever a GPU is in the plan, which makes
 * llama-server's --fit leave the placement alone at load.
 */
#include "initcfg.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "registry.h"
#include "srvhelp.h"

/* ---- paths --------------------------------------------------------------- */

/* `p` made absolute against the working folder, "." and ".." folded
 * lexically (links are kept: a model linked into the folder keeps its name).
 * Caller frees. */
static char *abs_path(const char *p)
{
    char *full;
    char cwd[PATH_MAX];
    if (p[0] == '/' || !getcwd(cwd, sizeof cwd))
        full = xstrdup(p);
    else
        full = xasprintf("%s/%s", cwd, p);
    char *out = xmalloc(strlen(full) + 2); /* owned by the caller */
    size_t len = 0;
    for (const char *s = full; *s;) {
        while (*s == '/')
            s++;
        const char *e = s;
        while (*e && *e != '/')
            e++;
        size_t n = (size_t)(e - s);
        if (n == 2 && s[0] == '.' && s[1] == '.') {
            while (len > 0 && out[len - 1] != '/')
                len--;
            if (len > 0)
                len--;
        } else if (n && !(n == 1 && s[0] == '.')) {
            out[len++] = '/';
            memcpy(out + len, s, n);
            len += n;
        }
        s = e;
    }
    if (!len)
        out[len++] = '/';
    out[len] = 0;
    free(full);
    return out;
}

char *initcfg_rel_path(const char *dir_abs, const char *file_abs)
{
    size_t dl = strlen(dir_abs);
    if (dl == 1 && dir_abs[0] == '/')
        return xstrdup(file_abs[0] == '/' && file_abs[1] ? file_abs + 1 : file_abs);
    if (!strncmp(file_abs, dir_abs, dl) && file_abs[dl] == '/' && file_abs[dl + 1])
        return xstrdup(file_abs + dl + 1);
    return xstrdup(file_abs);
}

/* ---- scan ---------------------------------------------------------------- */

static bool gguf_name(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && !strcasecmp(name + n - 5, ".gguf");
}

/* A shard of a split model: the stem ends "-00001-of-00003". */
static bool shard(const char *stem, int *part, int *count)
{
    size_t n = strlen(stem);
    if (n < 15)
        return false;
    const char *s = stem + n - 15;
    for (int i = 0; i < 15; i++) {
        bool digit = (i >= 1 && i <= 5) || i >= 10;
        if (digit ? !(s[i] >= '0' && s[i] <= '9') : s[i] != "-00000-of-00000"[i])
            return false;
    }
    *part = *count = 0;
    for (int i = 1; i <= 5; i++)
        *part = *part * 10 + (s[i] - '0');
    for (int i = 10; i < 15; i++)
        *count = *count * 10 + (s[i] - '0');
    return true;
}

/* FNV-1a 64 over the raw bytes of tokenizer.ggml.tokens (every length and
 * byte of every token); 0 when there is no token list. */
static uint64_t vocab_hash(const gguf_t *g)
{
    long k = gguf_find_key(g, "tokenizer.ggml.tokens");
    if (k < 0)
        return 0;
    const gguf_kv_t *kv = gguf_kv(g, (size_t)k);
    if (kv->type != GGUF_VT_ARRAY || kv->v.arr.type != GGUF_VT_STRING || !kv->v.arr.n)
        return 0;
    const uint8_t *p = gguf_data(g) + kv->v.arr.off;
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < kv->v.arr.nbytes; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h ? h : 1;
}

/* Read one file into a new entry of s; `dir` is the folder it counts as being in. */
static void scan_add(initcfg_scan_t *s, const char *path, const char *dir)
{
    s->files = xrealloc(s->files, (s->n + 1) * sizeof *s->files); /* owned by s */
    initcfg_file_t *f = &s->files[s->n++];
    memset(f, 0, sizeof *f);
    f->path = xstrdup(path);
    f->abs = abs_path(path);
    f->dir = xstrdup(dir);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    f->stem = gguf_name(base) ? xstrndup(base, strlen(base) - 5) : xstrdup(base);
    f->projector = f->model = f->draft_of = -1;
    f->kind = INITCFG_SKIPPED;

    int part, count;
    if (shard(f->stem, &part, &count)) {
        snprintf(f->note, sizeof f->note,
                 "part %d of %d of a split model: split GGUFs are not read (llama-gguf-split --merge makes one file)",
                 part, count);
        return;
    }
    gguf_t *g = NULL;
    char err[384];
    if (gguf_open(path, &g, err, sizeof err)) {
        snprintf(f->note, sizeof f->note, "%s", err);
        return;
    }
    gguf_str_t type;
    if (gguf_get_str(g, "general.type", &type) && gguf_str_eq(type, "adapter")) {
        snprintf(f->note, sizeof f->note, "a LoRA adapter (general.type adapter), not a model");
        gguf_close(&g);
        return;
    }
    if (mi_from_gguf(g, &f->mi, err, sizeof err)) {
        snprintf(f->note, sizeof f->note, "%s: %s", path, err);
        gguf_close(&g);
        return;
    }
    if (f->mi->is_mmproj) {
        f->kind = INITCFG_PROJECTOR;
    } else if (!f->mi->n_layer) {
        snprintf(f->note, sizeof f->note, "%s model without layers (no %s.block_count): not a text model",
                 f->mi->arch, f->mi->arch);
        mi_free(&f->mi);
    } else {
        f->kind = INITCFG_MODEL;
        f->vocab_hash = vocab_hash(g);
    }
    gguf_close(&g);
}

typedef struct {
    char *path, *dir;
    int depth; /* 0: MODELS_DIR's own files, 1: a subfolder's */
} found_t;

/* the folder's own files first (they keep the plain role names), then by path */
static int found_cmp(const void *a, const void *b)
{
    const found_t *x = a, *y = b;
    return x->depth != y->depth ? x->depth - y->depth : strcmp(x->path, y->path);
}

/* GGUF files of `dir` into *list (and, at depth 0, those of its direct
 * subfolders). 0 or -errno. */
static int list_dir(const char *dir, int depth, found_t **list, size_t *n, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", dir, e == ENOTDIR ? "not a folder" : strerror(e));
        return -e;
    }
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (depth == 0)
                rc = list_dir(p, 1, list, n, err, errlen);
        } else if (gguf_name(de->d_name)) { /* unreadable entries too: the scan says why */
            if (*n == INITCFG_MAX_FILES) {
                snprintf(err, errlen, "%s: more than %d GGUF files; point variet init at a smaller folder", dir,
                         INITCFG_MAX_FILES);
                rc = -E2BIG;
            } else {
                *list = xrealloc(*list, (*n + 1) * sizeof **list); /* owned by the caller */
                (*list)[*n].path = p;
                (*list)[*n].depth = depth;
                (*list)[(*n)++].dir = xstrdup(dir);
                p = NULL;
            }
        }
        free(p);
    }
    closedir(d);
    return rc;
}

int initcfg_scan(const char *dir, initcfg_scan_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    char *root = xstrndup(dir, dl);
    found_t *list = NULL;
    size_t n = 0;
    int rc = list_dir(root, 0, &list, &n, err, errlen);
    if (!rc) {
        if (n)
            qsort(list, n, sizeof *list, found_cmp);
        for (size_t i = 0; i < n; i++)
            scan_add(out, list[i].path, list[i].dir);
    }
    for (size_t i = 0; i < n; i++) {
        free(list[i].path);
        free(list[i].dir);
    }
    free(list);
    free(root);
    if (rc)
        initcfg_scan_free(out);
    return rc;
}

void initcfg_scan_free(initcfg_scan_t *s)
{
    for (size_t i = 0; s && i < s->n; i++) {
        initcfg_file_t *f = &s->files[i];
        free(f->path);
        free(f->abs);
        free(f->dir);
        free(f->stem);
        mi_free(&f->mi);
    }
    if (s) {
        free(s->files);
        s->files = NULL;
        s->n = 0;
    }
}

/* ---- drafts, projectors, names ------------------------------------------ */

static bool text_model(const initcfg_file_t *f) { return f->kind == INITCFG_MODEL || f->kind == INITCFG_DRAFT; }

void initcfg_find_drafts(initcfg_scan_t *s, bool keep)
{
    for (size_t i = 0; i < s->n; i++) {
        initcfg_file_t *d = &s->files[i];
        if (d->kind != INITCFG_MODEL || !d->vocab_hash)
            continue;
        int best = -1; /* the largest model with the same vocabulary */
        for (size_t j = 0; j < s->n; j++) {
            const initcfg_file_t *t = &s->files[j];
            if (j == i || !text_model(t) || t->vocab_hash != d->vocab_hash || t->mi->n_vocab != d->mi->n_vocab)
                continue;
            if (best < 0 || t->mi->n_params > s->files[best].mi->n_params)
                best = (int)j;
        }
        if (best < 0 || s->files[best].mi->n_params < (uint64_t)INITCFG_DRAFT_RATIO * d->mi->n_params)
            continue;
        d->draft_of = best;
        double share = d->mi->n_params ? (double)s->files[best].mi->n_params / (double)d->mi->n_params : 0;
        snprintf(d->note, sizeof d->note, "draft for %s (the same vocabulary, 1/%.0f of its parameters)",
                 s->files[best].path, share);
        if (!keep)
            d->kind = INITCFG_DRAFT;
    }
}

/* lowercase, '_' and '.' as '-' */
static void norm(const char *in, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && in[i] && k + 1 < cap; i++) {
        char c = in[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c == '_' || c == '.')
            c = '-';
        out[k++] = c;
    }
    if (cap)
        out[k] = 0;
}

static bool is_sep(char c) { return c == '-' || c == '_' || c == '.' || c == ' '; }

/* A normalised word that names a GGUF weight type ("f16", "q8-0" for q8_0). */
static bool type_word(const char *w)
{
    char t[16];
    size_t n = strlen(w);
    if (!n || n >= sizeof t)
        return false;
    for (size_t i = 0; i <= n; i++)
        t[i] = w[i] == '-' ? '_' : w[i];
    return gguf_type_from_name(t) >= 0;
}

void initcfg_projector_key(const char *stem, char *out, size_t cap)
{
    char tmp[512];
    norm(stem, strlen(stem), tmp, sizeof tmp);
    /* the word "mmproj" and one separator beside it */
    char *w = strstr(tmp, "mmproj");
    if (w) {
        char *after = w + 6;
        if (*after == '-')
            after++;
        else if (w > tmp && w[-1] == '-')
            w--;
        memmove(w, after, strlen(after) + 1);
    }
    /* a trailing weight type ("-f16", "-q8-0") */
    for (size_t i = strlen(tmp); i-- > 0;)
        if (tmp[i] == '-' && type_word(tmp + i + 1)) {
            tmp[i] = 0;
            break;
        }
    size_t n = strlen(tmp);
    while (n && tmp[n - 1] == '-')
        tmp[--n] = 0;
    const char *b = tmp;
    while (*b == '-')
        b++;
    if (type_word(b)) /* "mmproj-F16": no name at all */
        b = "";
    snprintf(out, cap, "%s", b);
}

static bool compatible(const initcfg_file_t *proj, const initcfg_file_t *model)
{
    return proj->mi->v_proj_dim && proj->mi->v_proj_dim == model->mi->n_embd;
}

static void attach(initcfg_scan_t *s, int p, int m, bool by_name)
{
    s->files[p].model = m;
    s->files[p].by_name = by_name;
    s->files[m].projector = p;
}

void initcfg_attach_projectors(initcfg_scan_t *s)
{
    /* by name */
    for (size_t i = 0; i < s->n; i++) {
        initcfg_file_t *p = &s->files[i];
        if (p->kind != INITCFG_PROJECTOR)
            continue;
        char key[512];
        initcfg_projector_key(p->stem, key, sizeof key);
        if (!key[0])
            continue;
        int best = -1, wrong_dim = -1, taken = -1;
        for (size_t j = 0; j < s->n; j++) {
            initcfg_file_t *m = &s->files[j];
            char ms[512];
            if (m->kind != INITCFG_MODEL || strcmp(m->dir, p->dir))
                continue;
            norm(m->stem, strlen(m->stem), ms, sizeof ms);
            if (strncmp(ms, key, strlen(key)))
                continue;
            if (!compatible(p, m))
                wrong_dim = wrong_dim < 0 ? (int)j : wrong_dim;
            else if (m->projector >= 0)
                taken = taken < 0 ? (int)j : taken;
            else if (best < 0 || strlen(m->stem) < strlen(s->files[best].stem))
                best = (int)j;
        }
        if (best >= 0) {
            attach(s, (int)i, best, true);
        } else if (wrong_dim >= 0) {
            const initcfg_file_t *m = &s->files[wrong_dim];
            snprintf(p->note, sizeof p->note,
                     "named for %s, but its projection_dim %u is not that model's n_embd %u: not attached",
                     m->path, p->mi->v_proj_dim, m->mi->n_embd);
        } else if (taken >= 0) {
            const initcfg_file_t *m = &s->files[taken];
            snprintf(p->note, sizeof p->note, "named for %s, which already has %s: not attached", m->path,
                     s->files[m->projector].path);
        }
    }
    /* by compatibility: the one model of the folder without a projector it fits */
    for (size_t i = 0; i < s->n; i++) {
        initcfg_file_t *p = &s->files[i];
        if (p->kind != INITCFG_PROJECTOR || p->model >= 0 || p->note[0])
            continue;
        int n_fit = 0, first = -1;
        buf_t names;
        buf_init(&names, 200);
        for (size_t j = 0; j < s->n; j++) {
            initcfg_file_t *m = &s->files[j];
            if (m->kind != INITCFG_MODEL || strcmp(m->dir, p->dir) || m->projector >= 0 || !compatible(p, m))
                continue;
            if (first < 0)
                first = (int)j;
            buf_printf(&names, "%s%s", n_fit++ ? ", " : "", m->stem); /* cut at the buffer's ceiling */
        }
        if (n_fit == 1)
            attach(s, (int)i, first, false);
        else if (n_fit == 0)
            snprintf(p->note, sizeof p->note,
                     "no model in %s without a projector has n_embd %u (its projection_dim): not attached", p->dir,
                     p->mi->v_proj_dim);
        else
            snprintf(p->note, sizeof p->note,
                     "its projection_dim %u fits %d models (%s) and its file name names none: not attached "
                     "(name it mmproj-MODEL.gguf)",
                     p->mi->v_proj_dim, n_fit, names.data ? names.data : "");
        buf_free(&names);
    }
}

void initcfg_role_name(const char *stem, char *out)
{
    size_t k = 0;
    for (const char *c = stem; *c && k < INITCFG_NAME_MAX; c++) {
        char ch = *c;
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok)
            ch = '-';
        if (ch == '-' && k && out[k - 1] == '-')
            continue;
        if (!k && is_sep(ch))
            continue; /* a name starts with a letter or digit ('_' would make it a setting) */
        out[k++] = ch;
    }
    while (k && is_sep(out[k - 1]))
        k--;
    out[k] = 0;
    if (!k)
        snprintf(out, INITCFG_NAME_MAX + 1, "model");
}

void initcfg_name_roles(initcfg_scan_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        initcfg_file_t *f = &s->files[i];
        if (f->kind != INITCFG_MODEL)
            continue;
        char base[INITCFG_NAME_MAX + 1];
        initcfg_role_name(f->stem, base);
        snprintf(f->role, sizeof f->role, "%s", base);
        for (int k = 2;; k++) {
            bool taken = false;
            for (size_t j = 0; j < i && !taken; j++)
                taken = s->files[j].kind == INITCFG_MODEL && !strcmp(s->files[j].role, f->role);
            if (!taken)
                break;
            char suffix[16];
            int sl = snprintf(suffix, sizeof suffix, "-%d", k);
            snprintf(f->role, sizeof f->role, "%.*s%s", INITCFG_NAME_MAX - sl, base, suffix);
        }
    }
}

/* ---- the choice ---------------------------------------------------------- */

int initcfg_contexts(uint64_t n_ctx_train, uint64_t cap, uint64_t *c, int max)
{
    uint64_t top = n_ctx_train ? n_ctx_train : INITCFG_CTX_MIN;
    if (cap && cap < top)
        top = cap;
    int n = 0;
    if (max < 1)
        return 0;
    c[n++] = top;
    uint64_t p = 1;
    while (p * 2 < top)
        p *= 2;
    for (; p >= INITCFG_CTX_MIN && p < top && n < max; p /= 2)
        c[n++] = p;
    return n;
}

const char *initcfg_place_name(initcfg_place_t p)
{
    switch (p) {
    case INITCFG_PLACE_GPU: return "the whole model on the GPUs";
    case INITCFG_PLACE_GPU_NCMOE: return "on the GPUs, the experts of the first layers on the host";
    case INITCFG_PLACE_GPU_NGL: return "the last layers on the GPUs, the rest on the host";
    case INITCFG_PLACE_HOST: return "on the host";
    case INITCFG_PLACE_NONE: return "fits nowhere";
    }
    return "?";
}

static char **build_args(uint64_t ctx, uint32_t kv, int64_t ngl, int64_t ncmoe, const char *mmproj, size_t *n)
{
    char **a = xcalloc(17, sizeof *a); /* 16 at most and the NULL; owned by the choice, strings too */
    size_t k = 0;
    a[k++] = xstrdup("-c");
    a[k++] = xasprintf("%llu", (unsigned long long)ctx);
    a[k++] = xstrdup("-np"); /* one slot: each request gets the whole context, and serve keeps it across swaps */
    a[k++] = xstrdup("1");
    if (kv != GGUF_TT_F16) {
        a[k++] = xstrdup("-ctk");
        a[k++] = xstrdup(gguf_type_name(kv));
        a[k++] = xstrdup("-ctv");
        a[k++] = xstrdup(gguf_type_name(kv));
        a[k++] = xstrdup("-fa"); /* llama.cpp needs flash attention for a quantized V cache */
        a[k++] = xstrdup("on");
    }
    if (ngl >= 0) {
        a[k++] = xstrdup("-ngl");
        a[k++] = xasprintf("%lld", (long long)ngl);
    }
    if (ncmoe > 0) {
        a[k++] = xstrdup("-ncmoe");
        a[k++] = xasprintf("%lld", (long long)ncmoe);
    }
    if (mmproj) {
        a[k++] = xstrdup("--mmproj");
        a[k++] = xstrdup(mmproj);
    }
    *n = k;
    return a;
}

static void free_args(char ***a)
{
    for (size_t i = 0; *a && (*a)[i]; i++)
        free((*a)[i]);
    free(*a);
    *a = NULL;
}

typedef struct {
    const mi_t *m;
    const char *mmproj;
    uint64_t mmproj_bytes;
    const plan_hw_t *hw;
    int64_t host;    /* host free after the margin, -1 unknown */
    uint64_t margin; /* bytes kept free per GPU */
} ctx_t;

/* Predict one configuration into c (replacing its args); true when it fits. */
static bool try_config(const ctx_t *x, initcfg_choice_t *c, initcfg_place_t place, uint64_t ctx, uint32_t kv,
                       int64_t ngl, int64_t ncmoe)
{
    free_args(&c->args);
    c->args = build_args(ctx, kv, ngl, ncmoe, x->mmproj, &c->n_args);
    c->place = place;
    c->n_ctx = ctx;
    c->kv_type = kv;
    c->ngl = ngl;
    c->ncmoe = ncmoe > 0 ? ncmoe : -1;
    char err[256];
    if (plan_opts_from_args(c->args, c->n_args, &c->opts, err, sizeof err))
        abort(); /* args of our own making: a bug */
    c->opts.mmproj_bytes = x->mmproj_bytes;
    plan_predict(x->m, &c->opts, x->hw->gpus, x->hw->n_gpu, x->host, x->margin, &c->plan);
    return c->plan.verdict == PLAN_FITS || c->plan.verdict == PLAN_FITS_WITHOUT_PP || c->plan.verdict == PLAN_UNKNOWN;
}

static const uint32_t kv_types[3] = {GGUF_TT_F16, GGUF_TT_Q8_0, GGUF_TT_Q4_0};

int initcfg_choose(const mi_t *m, const char *mmproj, uint64_t mmproj_bytes, const plan_hw_t *hw,
                   const initcfg_opts_t *o, initcfg_choice_t *out)
{
    memset(out, 0, sizeof *out);
    int64_t host = hw->host_free_mib < 0 ? -1 : hw->host_free_mib - o->min_free_mib;
    if (hw->host_free_mib >= 0 && host < 0)
        host = 0;
    ctx_t x = {.m = m, .mmproj = mmproj, .mmproj_bytes = mmproj ? mmproj_bytes : 0, .hw = hw, .host = host,
               .margin = (uint64_t)(o->min_free_mib > 0 ? o->min_free_mib : 0) << 20};
    out->host_free_mib = host;
    out->min_free_mib = o->min_free_mib;
    uint64_t ctxs[INITCFG_MAX_CTX];
    int n_ctx = initcfg_contexts(m->n_ctx_train, o->ctx, ctxs, INITCFG_MAX_CTX);
    bool gpu = hw->n_gpu > 0;
    initcfg_place_t first = gpu ? INITCFG_PLACE_GPU : INITCFG_PLACE_HOST;

    /* 1. the whole model where it runs best: the GPUs, or the host when there are none */
    for (int c = 0; c < n_ctx; c++)
        for (int k = 0; k < 3; k++)
            if (try_config(&x, out, first, ctxs[c], kv_types[k], gpu ? 999 : -1, -1))
                return 0;
    plan_t floor_plan = out->plan; /* the smallest whole configuration: the reason when nothing fits */
    char **floor_args = out->args;
    size_t floor_n = out->n_args;
    plan_opts_t floor_opts = out->opts;
    out->args = NULL;
    if (gpu) {
        /* 2. partly on the GPUs: the fewest host experts, else the most GPU layers */
        for (int c = 0; c < n_ctx; c++)
            for (int k = 0; k < 3; k++) {
                try_config(&x, out, INITCFG_PLACE_GPU_NCMOE, ctxs[c], kv_types[k], 999, -1);
                int64_t nc = plan_min_ncmoe(m, &out->opts, hw->gpus, hw->n_gpu, x.margin);
                if (nc > 0 && try_config(&x, out, INITCFG_PLACE_GPU_NCMOE, ctxs[c], kv_types[k], 999, nc))
                    goto found;
                try_config(&x, out, INITCFG_PLACE_GPU_NGL, ctxs[c], kv_types[k], -1, -1);
                int64_t ngl = plan_max_ngl(m, &out->opts, hw->gpus, hw->n_gpu, x.margin);
                if (ngl > 0 && try_config(&x, out, INITCFG_PLACE_GPU_NGL, ctxs[c], kv_types[k], ngl, -1))
                    goto found;
            }
        /* 3. the host alone */
        for (int c = 0; c < n_ctx; c++)
            for (int k = 0; k < 3; k++)
                if (try_config(&x, out, INITCFG_PLACE_HOST, ctxs[c], kv_types[k], 0, -1))
                    goto found;
    }
    free_args(&out->args);
    out->args = floor_args;
    out->n_args = floor_n;
    out->plan = floor_plan;
    out->opts = floor_opts;
    out->place = INITCFG_PLACE_NONE;
    return -ENOSPC;
found:
    free_args(&floor_args);
    return 0;
}

void initcfg_choice_free(initcfg_choice_t *c)
{
    if (c)
        free_args(&c->args);
}

void initcfg_hw_text(const plan_hw_t *hw, char *out, size_t cap)
{
    size_t l = 0;
    out[0] = 0;
    if (!hw->n_gpu)
        l += (size_t)snprintf(out, cap, "no GPU");
    for (int g = 0; g < hw->n_gpu && l < cap; g++) {
        if (hw->gpus[g].free_mib >= 0)
            l += (size_t)snprintf(out + l, cap - l, "%s%s %lld MiB free", g ? ", " : "", hw->gpus[g].name,
                                  (long long)hw->gpus[g].free_mib);
        else
            l += (size_t)snprintf(out + l, cap - l, "%s%s (free memory unknown)", g ? ", " : "", hw->gpus[g].name);
    }
    if (l < cap) {
        if (hw->host_free_mib >= 0)
            snprintf(out + l, cap - l, ", host %lld MiB available", (long long)hw->host_free_mib);
        else
            snprintf(out + l, cap - l, ", host memory unknown");
    }
}

/* ---- the document -------------------------------------------------------- */

json_t *initcfg_document(const initcfg_scan_t *s, initcfg_choice_t *const *choices, const char *config_dir_abs,
                         const char *llama_server, int64_t host_budget_mib, const char *comment)
{
    json_t *doc = json_object();
    if (comment)
        json_object_set_new(doc, "_comment", json_string(comment));
    json_t *eng = json_object();
    json_object_set_new(eng, "llama_server", llama_server ? json_string(llama_server) : json_null());
    if (host_budget_mib > 0) {
        char b[32];
        snprintf(b, sizeof b, "%lldM", (long long)host_budget_mib);
        json_object_set_new(eng, "memory_budget", json_string(b));
    }
    json_object_set_new(doc, "_engine", eng);
    for (size_t i = 0; i < s->n; i++) {
        const initcfg_file_t *f = &s->files[i];
        const initcfg_choice_t *c = choices[i];
        if (!c || c->place == INITCFG_PLACE_NONE || f->kind != INITCFG_MODEL)
            continue;
        json_t *r = json_object();
        json_object_set_new(r, "display_name", json_string(f->mi->name[0] ? f->mi->name : f->stem));
        char *rel = initcfg_rel_path(config_dir_abs, f->abs);
        json_object_set_new(r, "model_path", json_string(rel));
        free(rel);
        json_t *a = json_array();
        for (size_t k = 0; k < c->n_args; k++)
            json_array_append_new(a, json_string(c->args[k]));
        json_object_set_new(r, "args", a);
        json_object_set_new(doc, f->role, r);
    }
    return doc;
}

/* ---- the run ------------------------------------------------------------- */

#define PL(n) ((n) == 1 ? "" : "s")

static void args_text(buf_t *b, char *const *args, size_t n)
{
    for (size_t k = 0; k < n; k++)
        buf_printf(b, "%s%s", k ? " " : "", args[k]);
}

/* The role's block of the report. */
static void report_role(buf_t *out, const initcfg_scan_t *s, size_t i, const initcfg_choice_t *c)
{
    const initcfg_file_t *f = &s->files[i];
    buf_printf(out, "\nrole %s: %s", f->role, f->path);
    if (f->projector >= 0)
        buf_printf(out, " + projector %s (%s)", s->files[f->projector].path,
                   s->files[f->projector].by_name ? "by name" : "the one model its projection_dim fits");
    buf_printf(out, "\n");
    if (c->place != INITCFG_PLACE_NONE) {
        char kv[16];
        snprintf(kv, sizeof kv, "%s", gguf_type_name(c->kv_type));
        buf_printf(out, "  context %llu (trained %u), KV %s, ", (unsigned long long)c->n_ctx, f->mi->n_ctx_train, kv);
        if (c->place == INITCFG_PLACE_GPU_NCMOE)
            buf_printf(out, "on the GPUs with the experts of the first %lld layers on the host\n",
                       (long long)c->ncmoe);
        else if (c->place == INITCFG_PLACE_GPU_NGL)
            buf_printf(out, "%lld of %u layers on the GPUs\n", (long long)c->ngl, f->mi->n_layer + 1);
        else
            buf_printf(out, "%s\n", initcfg_place_name(c->place));
    } else {
        buf_printf(out, "  fits nowhere; the smallest whole configuration tried:\n");
    }
    buf_printf(out, "  args: ");
    args_text(out, c->args, c->n_args);
    buf_printf(out, "\n");
    plan_format(out, f->mi, &c->opts, &c->plan, c->min_free_mib);
}

int initcfg_run(const initcfg_run_opts_t *o, buf_t *out, buf_t *warn, char *err, size_t errlen)
{
    struct stat st;
    if (stat(o->output, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "%s is a folder; --output wants a file name", o->output);
            return -EINVAL;
        }
        if (!o->force && !o->dry_run) {
            snprintf(err, errlen, "%s exists; not overwritten (--force replaces it and keeps the old one as %s.bak)",
                     o->output, o->output);
            return -EEXIST;
        }
    }
    initcfg_scan_t s;
    int rc = initcfg_scan(o->models_dir, &s, err, errlen);
    if (rc)
        return rc == -E2BIG ? rc : -EINVAL;
    initcfg_find_drafts(&s, o->drafts);
    initcfg_attach_projectors(&s);
    initcfg_name_roles(&s);

    size_t n_model = 0, n_proj = 0, n_draft = 0, n_skip = 0;
    for (size_t i = 0; i < s.n; i++) {
        initcfg_file_t *f = &s.files[i];
        n_model += f->kind == INITCFG_MODEL;
        n_proj += f->kind == INITCFG_PROJECTOR;
        n_draft += f->kind == INITCFG_DRAFT;
        n_skip += f->kind == INITCFG_SKIPPED;
        if (f->kind == INITCFG_SKIPPED) { /* gguf's errors start with the path already */
            size_t pl = strlen(f->path);
            const char *why = !strncmp(f->note, f->path, pl) && f->note[pl] == ':' ? f->note + pl + 2 : f->note;
            buf_printf(warn, "%s: skipped: %s\n", f->path, why);
        }
        else if (f->kind == INITCFG_PROJECTOR && f->model < 0)
            buf_printf(warn, "%s: projector %s\n", f->path, f->note);
    }
    char hwt[512];
    initcfg_hw_text(&o->hw, hwt, sizeof hwt);
    buf_printf(out, "%s: %zu GGUF file%s: %zu model%s, %zu projector%s, %zu draft%s, %zu skipped\n", o->models_dir,
               s.n, PL(s.n), n_model, PL(n_model), n_proj, PL(n_proj), n_draft, PL(n_draft), n_skip);
    for (size_t i = 0; i < s.n; i++)
        if (s.files[i].kind == INITCFG_DRAFT)
            buf_printf(out, "  %s: %s; not a role (--drafts makes it one)\n", s.files[i].path, s.files[i].note);
    buf_printf(out, "planned for: %s (%s); %lld MiB kept free on each device (the host's free column below is "
                    "after it)\n",
               hwt, o->hw_note ? o->hw_note : "", (long long)o->choose.min_free_mib);

    initcfg_choice_t **ch = xcalloc(s.n ? s.n : 1, sizeof *ch); /* owned here, entries too */
    size_t n_roles = 0;
    bool help_warned = false;
    for (size_t i = 0; i < s.n; i++) {
        initcfg_file_t *f = &s.files[i];
        if (f->kind != INITCFG_MODEL)
            continue;
        const initcfg_file_t *p = f->projector >= 0 ? &s.files[f->projector] : NULL;
        json_t *u1 = json_string(f->abs), *u2 = p ? json_string(p->abs) : NULL;
        bool utf8 = u1 && (!p || u2);
        json_decref(u1);
        json_decref(u2);
        if (!utf8) { /* JSON holds UTF-8 text only */
            buf_printf(warn, "%s: its path is not UTF-8 text: no role written\n", p && !u2 ? p->path : f->path);
            continue;
        }
        initcfg_choice_t *c = xcalloc(1, sizeof *c); /* owned by ch[i] */
        int cr = initcfg_choose(f->mi, p ? p->abs : NULL, p ? p->mi->file_size : 0, &o->hw, &o->choose, c);
        report_role(out, &s, i, c);
        if (cr) {
            buf_printf(warn, "%s: fits nowhere on this machine (%s%s%s): no role written\n", f->path,
                       plan_verdict_name(c->plan.verdict), c->plan.over_dev >= 0 ? ", short on " : "",
                       c->plan.over_dev >= 0 ? c->plan.dev[c->plan.over_dev].name : "");
            initcfg_choice_free(c);
            free(c);
            continue;
        }
        if (o->llama_server) {
            long bad = -1;
            char herr[512];
            int hr = srvhelp_check_role(o->llama_server, c->args, c->n_args, NULL, &bad, herr, sizeof herr);
            if (hr == -EINVAL) {
                buf_printf(warn, "%s: the llama-server in use refuses the chosen args (%s): no role written\n",
                           f->path, herr);
                initcfg_choice_free(c);
                free(c);
                continue;
            }
            if (hr && !help_warned) {
                buf_printf(warn, "warning: %s; args not checked against this llama-server\n", herr);
                help_warned = true;
            }
        }
        ch[i] = c;
        n_roles++;
    }

    char *text = NULL;
    registry_t *reg = NULL;
    if (!n_roles) {
        snprintf(err, errlen, "%s: %s", o->models_dir,
                 n_model ? "no model fits this machine; nothing written" : "no GGUF model found; nothing written");
        rc = -ENODATA;
        goto out;
    }
    char *odir_rel = xstrdup(o->output), *slash = strrchr(odir_rel, '/');
    if (slash)
        *slash = 0;
    char *odir = abs_path(slash ? (odir_rel[0] ? odir_rel : "/") : ".");
    free(odir_rel);
    char *comment = xasprintf("written by variet init %s, each role planned alone for: %s; %lld MiB kept free. "
                              "`variet plan ROLE` shows a role's prediction, `variet tune ROLE` measures.",
                              o->models_dir, hwt, (long long)o->choose.min_free_mib);
    json_t *doc = initcfg_document(&s, ch, odir, o->llama_server,
                                   o->hw.host_free_mib >= 0 ? o->hw.host_free_mib - o->choose.min_free_mib : 0,
                                   comment);
    free(comment);
    free(odir);
    text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (!text)
        abort(); /* only on OOM */
    /* the registry's own parser checks what is written, and its writer writes it */
    if ((rc = registry_parse(text, strlen(text), o->output, &reg, err, errlen)))
        goto out;
    if (o->dry_run) {
        char *dump = registry_dump(reg);
        buf_printf(out, "\n%s(dry run: %s not written)\n", dump, o->output);
        free(dump);
        goto out;
    }
    if ((rc = file_make_parent(o->output, err, errlen)) ||
        (rc = registry_save(reg, o->output, stat(o->output, &st) == 0, err, errlen)))
        goto out;
    buf_printf(out, "\nwrote %s: %zu role%s", o->output, n_roles, PL(n_roles));
    for (size_t i = 0, k = 0; i < s.n; i++)
        if (ch[i])
            buf_printf(out, "%s%s", k++ ? ", " : " (", s.files[i].role);
    buf_printf(out, ")\n");
out:
    free(text);
    registry_free(&reg);
    for (size_t i = 0; i < s.n; i++) {
        initcfg_choice_free(ch[i]);
        free(ch[i]);
    }
    free(ch);
    initcfg_scan_free(&s);
    return rc;
}
