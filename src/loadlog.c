/*
 * loadlog.c — parser for llama-server load logs. Each line is matched by
 * a fixed marker (" buffer size = ", "listening on ", ...) and the fields
 * around it are read with bounded scans; unknown lines are ignored, so a
 * newer llama.cpp with extra lines still parses.
 */
#include "loadlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void loadlog_init(loadlog_t *r)
{
    memset(r, 0, sizeof *r);
    r->pipeline_parallel = -1;
    r->fit_projected_mib = r->fit_free_mib = -1;
    r->n_ctx = r->n_batch = r->n_ubatch = r->n_seq_max = -1;
    r->draft_n_ctx = -1;
    r->t_ready = -1;
    r->mmproj_model_mib = -1;
}

static const char *find_n(const char *s, size_t n, const char *pat)
{
    size_t k = strlen(pat);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(s + i, pat, k) == 0)
            return s + i;
    return NULL;
}

static loadlog_dev_t *dev_in(loadlog_dev_t *tab, int *n, const char *name, size_t len)
{
    if (len >= sizeof tab[0].name)
        len = sizeof tab[0].name - 1;
    for (int i = 0; i < *n; i++)
        if (strlen(tab[i].name) == len && !memcmp(tab[i].name, name, len))
            return &tab[i];
    if (*n == LOADLOG_MAX_DEV)
        return NULL;
    loadlog_dev_t *d = &tab[(*n)++];
    memcpy(d->name, name, len);
    d->name[len] = 0;
    d->total_mib = d->free_mib = -1;
    return d;
}

static loadlog_dev_t *dev(loadlog_t *r, const char *name, size_t len) { return dev_in(r->dev, &r->n_dev, name, len); }

/* One buffer of `kind` on device `name`: into the device's totals, and for
 * the draft into its own table too. A context's compute buffer is its last
 * reserve (a retry without pipeline parallelism replaces the first); the
 * device's compute is the sum of its contexts'. */
static void add_buffer(loadlog_t *r, const char *name, size_t len, const char *kind, size_t kind_len, double v)
{
    loadlog_dev_t *d = dev(r, name, len);
    if (!d)
        return;
    loadlog_dev_t *x = r->phase == 1 ? dev_in(r->draft, &r->n_draft, name, len) : NULL;
    double *f = NULL, *fx = NULL;
    if (kind_len == 5 && !memcmp(kind, "model", 5))
        f = &d->model_mib, fx = x ? &x->model_mib : NULL;
    else if (kind_len == 2 && !memcmp(kind, "KV", 2))
        f = &d->kv_mib, fx = x ? &x->kv_mib : NULL;
    else if (kind_len == 2 && !memcmp(kind, "RS", 2))
        f = &d->rs_mib, fx = x ? &x->rs_mib : NULL;
    else if (kind_len == 6 && !memcmp(kind, "output", 6))
        f = &d->output_mib, fx = x ? &x->output_mib : NULL;
    else if (kind_len == 7 && !memcmp(kind, "compute", 7)) {
        int ph = r->phase == 1;
        double old = d->own_compute_mib[ph];
        d->own_compute_mib[ph] = v;
        d->compute_mib += v - old;
        if (ph) {
            d->draft_mib += v - old;
            if (x)
                x->compute_mib = v;
        }
        return;
    }
    if (!f)
        return;
    *f += v;
    if (fx)
        *fx += v;
    if (r->phase == 1)
        d->draft_mib += v;
}

/* number after "= " up to " MiB" */
static double num_after(const char *p, const char *end)
{
    char tmp[32];
    while (p < end && (*p == ' ' || *p == '='))
        p++;
    size_t n = 0;
    while (p + n < end && n < sizeof tmp - 1 && (p[n] == '.' || p[n] == '-' || (p[n] >= '0' && p[n] <= '9')))
        n++;
    memcpy(tmp, p, n);
    tmp[n] = 0;
    return n ? strtod(tmp, NULL) : -1;
}

/* a count: -1 when absent, negative or too large for a long (bad bytes) */
static long long_after(const char *p, const char *end)
{
    double v = num_after(p, end);
    return v >= 0 && v < 1e15 ? (long)v : -1;
}

/* the count after the "=" from p on; -1 without one */
static long long_after_eq(const char *p, const char *end)
{
    const char *eq = find_n(p, (size_t)(end - p), "=");
    return eq ? long_after(eq + 1, end) : -1;
}

/* "M.SS.mmm.uuu X " prefix → seconds; returns pointer after it or line. */
static const char *stamp(loadlog_t *r, const char *s, size_t n)
{
    unsigned mi, se, ms, us;
    char lvl;
    int used = 0;
    char tmp[40];
    size_t k = n < sizeof tmp - 1 ? n : sizeof tmp - 1;
    memcpy(tmp, s, k);
    tmp[k] = 0;
    if (sscanf(tmp, "%u.%2u.%3u.%3u %c %n", &mi, &se, &ms, &us, &lvl, &used) == 5 && used > 0) {
        r->t_last = mi * 60.0 + se + ms / 1e3 + us / 1e6;
        return s + used;
    }
    return s;
}

static void copy_msg(char *dst, size_t cap, const char *s, const char *end)
{
    size_t n = (size_t)(end - s);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = 0;
}

bool loadlog_fit_placement(const loadlog_t *r, char *out, size_t cap)
{
    size_t l = 0;
    out[0] = 0;
    for (int k = 0; k < r->n_fit_dev && l < cap; k++) {
        l += (size_t)snprintf(out + l, cap - l, "%s%s %d layers", k ? "; " : "", r->fit_dev[k].dev,
                              r->fit_dev[k].layers);
        if (r->fit_dev[k].overflowing > 0 && l < cap)
            l += (size_t)snprintf(out + l, cap - l, ", %d with experts on the host", r->fit_dev[k].overflowing);
    }
    if (l && l < cap && r->fit_overflow[0])
        snprintf(out + l, cap - l, " (the first: %s)", r->fit_overflow);
    return out[0] != 0;
}

void loadlog_line(loadlog_t *r, const char *line, size_t len)
{
    const char *end = line + len, *p;
    while (end > line && (end[-1] == '\r' || end[-1] == '\n'))
        end--;
    const char *s = stamp(r, line, (size_t)(end - line));
    size_t n = (size_t)(end - s);

    if ((p = find_n(s, n, " buffer size = "))) {
        /* "<func>: <DEV> <kind> buffer size = X MiB": walk back two words */
        const char *q = p;
        while (q > s && q[-1] != ' ')
            q--;
        const char *kind = q;
        size_t kind_len = (size_t)(p - q);
        while (q > s && q[-1] == ' ')
            q--;
        const char *dend = q;
        while (q > s && q[-1] != ' ')
            q--;
        if (dend > q) {
            double v = num_after(p + 14, end);
            /* the projector reserves its own graph after the model's */
            bool clip = find_n(s, n, "reserve_compute_meta:") || (n > 4 && !memcmp(s, "clip", 4));
            loadlog_dev_t *d = clip ? dev(r, q, (size_t)(dend - q)) : NULL;
            if (d && v >= 0 && kind_len == 7 && !memcmp(kind, "compute", 7))
                d->mmproj_mib += v;
            else if (!clip && v >= 0)
                add_buffer(r, q, (size_t)(dend - q), kind, kind_len, v);
        }
        return;
    }
    if ((p = find_n(s, n, "loaded multimodal model, '"))) {
        const char *q = p + 26, *e = end;
        while (e > q && e[-1] != '\'')
            e--;
        if (e > q)
            copy_msg(r->mmproj, sizeof r->mmproj, q, e - 1);
        return;
    }
    if ((p = find_n(s, n, "CLIP using ")) && find_n(s, n, " backend")) {
        const char *e = find_n(p + 11, (size_t)(end - p - 11), " backend");
        copy_msg(r->mmproj_device, sizeof r->mmproj_device, p + 11, e);
        r->phase = 2;
        return;
    }
    if ((p = find_n(s, n, "load_hparams: model size:"))) {
        r->mmproj_model_mib = num_after(p + 25, end);
        return;
    }
    /* the draft loads after the model (and before the projector): its buffers
     * are the device's too, and its own table's */
    if (find_n(s, n, "loading draft model")) {
        r->phase = 1;
        r->has_draft = true;
        return;
    }
    if (find_n(s, n, "clip_model_loader: ")) { /* the projector next: the draft is done */
        r->phase = 2;
        return;
    }
    if (r->phase == 1 && (p = find_n(s, n, "llama_context: n_ctx "))) {
        const char *eq = find_n(p, (size_t)(end - p), "=");
        if (eq)
            r->draft_n_ctx = long_after(eq + 1, end);
        return;
    }
    if (r->phase == 1 && find_n(s, n, "llama_context: ")) /* the draft's context: not the model's settings */
        return;
    if (find_n(s, n, "pipeline parallelism enabled")) {
        r->pipeline_parallel = 1;
        return;
    }
    if (find_n(s, n, "retrying without pipeline parallelism")) {
        r->pipeline_parallel = 0;
        return;
    }
    if ((p = find_n(s, n, "common_param:   - ")) && find_n(s, n, " MiB free)")) {
        /* "common_param:   - CUDA0   : NAME (TOTAL MiB, FREE MiB free)" */
        const char *nm = p + 18, *ne = nm;
        while (ne < end && *ne != ' ' && *ne != ':')
            ne++;
        const char *par = NULL;
        for (const char *q = end; q > ne; q--)
            if (q[-1] == '(') {
                par = q;
                break;
            }
        loadlog_dev_t *d = ne > nm && par ? dev(r, nm, (size_t)(ne - nm)) : NULL;
        if (d) {
            d->total_mib = num_after(par, end);
            const char *c = find_n(par, (size_t)(end - par), ", ");
            if (c)
                d->free_mib = num_after(c + 2, end);
        }
        return;
    }
    if ((p = find_n(s, n, "failed to fit params to free device memory: "))) {
        const char *w = p + 44, *e = end;
        const char *ab = find_n(w, (size_t)(end - w), ", abort");
        if (ab)
            e = ab;
        copy_msg(r->fit_abort, sizeof r->fit_abort, w, e);
        return;
    }
    if ((p = find_n(s, n, "common_params_fit_impl:   - ")) && find_n(s, n, " layers")) {
        /* "  - CUDA0 (NVIDIA ...): 41 layers (22 overflowing),  11099 MiB used, ..." */
        const char *nm = p + strlen("common_params_fit_impl:   - "), *ne = nm;
        while (ne < end && *ne != ' ' && *ne != ':')
            ne++;
        const char *c = find_n(ne, (size_t)(end - ne), "): ");
        if (ne > nm && (size_t)(ne - nm) < sizeof r->fit_dev[0].dev && c) {
            int k = 0;
            while (k < r->n_fit_dev && (strlen(r->fit_dev[k].dev) != (size_t)(ne - nm) ||
                                        memcmp(r->fit_dev[k].dev, nm, (size_t)(ne - nm))))
                k++;
            if (k < 4) {
                if (k == r->n_fit_dev) {
                    memcpy(r->fit_dev[k].dev, nm, (size_t)(ne - nm));
                    r->fit_dev[k].dev[ne - nm] = 0;
                    r->n_fit_dev++;
                }
                r->fit_dev[k].layers = (int)long_after(c + 3, end);
                const char *o = find_n(c, (size_t)(end - c), " layers (");
                r->fit_dev[k].overflowing = o ? (int)long_after(o + 9, end) : 0;
            }
        }
        return;
    }
    if ((p = find_n(s, n, "overflow_type)=("))) { /* "...=(41, 22, ATTN), id_dense_start=0" */
        const char *t = p + 16, *e;
        for (int commas = 0; t < end && commas < 2; t++)
            commas += *t == ',';
        while (t < end && *t == ' ')
            t++;
        for (e = t; e < end && *e != ')' && (size_t)(e - t) < sizeof r->fit_overflow - 1;)
            e++;
        copy_msg(r->fit_overflow, sizeof r->fit_overflow, t, e);
        return;
    }
    if ((p = find_n(s, n, "projected to use "))) {
        r->fit_projected_mib = num_after(p + 17, end);
        const char *v = find_n(p, (size_t)(end - p), " vs. ");
        if (v)
            r->fit_free_mib = num_after(v + 5, end);
        return;
    }
    if ((p = find_n(s, n, "allocating ")) && find_n(s, n, "out of memory")) {
        r->oom = true;
        r->oom_mib = num_after(p + 11, end);
        const char *d = find_n(p, (size_t)(end - p), "on device ");
        if (d) {
            const char *e = d + 10;
            while (e < end && *e != ':')
                e++;
            char tmp[24];
            copy_msg(tmp, sizeof tmp, d + 10, e);
            snprintf(r->oom_device, sizeof r->oom_device, "CUDA%s", tmp);
        }
    } else if ((p = find_n(s, n, "insufficient memory (attempted to allocate "))) {
        /* ggml_aligned_malloc (CPU): "... allocate 1953.12 MB)" */
        r->oom = true;
        if (r->oom_mib <= 0)
            r->oom_mib = num_after(p + 43, end);
    } else if ((p = find_n(s, n, "failed to allocate ")) && find_n(s, n, " buffer of size ")) {
        /* "failed to allocate CUDA0 buffer of size N" (any backend); the
         * CPU allocator's own line says just "buffer" */
        r->oom = true;
        const char *d = p + 19, *e = d;
        while (e < end && *e != ' ')
            e++;
        if (!r->oom_device[0] && !(e - d == 6 && !memcmp(d, "buffer", 6)))
            copy_msg(r->oom_device, sizeof r->oom_device, d, e);
        if (r->oom_mib <= 0) {
            const char *b = find_n(e, (size_t)(end - e), "of size ");
            if (b)
                r->oom_mib = num_after(b + 8, end) / (1024.0 * 1024.0);
        }
    }
    if (find_n(s, n, "failed to allocate buffer for kv cache") || find_n(s, n, "failed to allocate KV"))
        snprintf(r->oom_what, sizeof r->oom_what, "the KV cache");
    else if (find_n(s, n, "failed to allocate compute") || find_n(s, n, "compute buffer allocation failed"))
        snprintf(r->oom_what, sizeof r->oom_what, "the compute buffer");
    else if (find_n(s, n, "unable to allocate") && find_n(s, n, "model"))
        snprintf(r->oom_what, sizeof r->oom_what, "the model weights");
    if (s < end && s > line && s[-2] == 'E' && !r->error[0]) {
        copy_msg(r->error, sizeof r->error, s, end);
    } else if (!r->error[0] && (p = find_n(s, n, "error: ")) && s == line) {
        copy_msg(r->error, sizeof r->error, p + 7, end);
    }
    if ((p = find_n(s, n, "llama_context: n_ctx ")) || (p = find_n(s, n, "llama_context: n_ctx="))) {
        r->n_ctx = long_after_eq(p, end);
    } else if ((p = find_n(s, n, "llama_context: n_batch "))) {
        r->n_batch = long_after_eq(p, end);
    } else if ((p = find_n(s, n, "llama_context: n_ubatch "))) {
        r->n_ubatch = long_after_eq(p, end);
    } else if ((p = find_n(s, n, "llama_context: n_seq_max "))) {
        r->n_seq_max = long_after_eq(p, end);
    } else if ((p = find_n(s, n, "llama_context: flash_attn "))) {
        const char *v = find_n(p, (size_t)(end - p), "= ");
        if (v)
            copy_msg(r->flash_attn, sizeof r->flash_attn, v + 2, end);
    } else if ((p = find_n(s, n, "listening on "))) {
        copy_msg(r->listen, sizeof r->listen, p + 13, end);
        r->ready = true;
        r->t_ready = r->t_last;
    }
}

void loadlog_parse(loadlog_t *r, const char *text, size_t len)
{
    const char *s = text, *end = text + len;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *e = nl ? nl : end;
        loadlog_line(r, s, (size_t)(e - s));
        s = nl ? nl + 1 : end;
    }
}

void loadlog_images(const char *text, size_t len, loadlog_images_t *out)
{
    memset(out, 0, sizeof *out);
    loadlog_t st; /* for the timestamps */
    loadlog_init(&st);
    bool stamped = true, encoding = false, pending = false;
    int finished = 0; /* images whose last batch was decoded */
    double t_enc = 0;
    const char *s = text, *end = text + len, *p;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *e = nl ? nl : end;
        size_t n = (size_t)(e - s);
        const char *b = stamp(&st, s, n);
        bool has_stamp = b != s;
        if ((p = find_n(s, n, "encoding mtmd batch from idx"))) {
            const char *c = find_n(p, (size_t)(e - p), "n_chunks = ");
            double k = c ? num_after(c + 10, e) : 1;
            out->n_images += k >= 1 && k <= 1024 ? (int)k : 1;
            encoding = true;
            stamped = stamped && has_stamp;
            t_enc = st.t_last;
        } else if ((p = find_n(s, n, "decoding image batch "))) {
            unsigned i = 0, of = 0;
            long tok = 0;
            char tmp[96];
            copy_msg(tmp, sizeof tmp, p, e);
            if (sscanf(tmp, "decoding image batch %u/%u, n_tokens_batch = %ld", &i, &of, &tok) == 3 && tok >= 0 &&
                tok < 100000000) {
                out->tokens += tok;
                pending = true;
                if (encoding) {
                    /* a line without a stamp, or stamps out of order: no time */
                    stamped = stamped && has_stamp && st.t_last >= t_enc;
                    out->encode_ms += (st.t_last - t_enc) * 1000.0;
                    encoding = false;
                }
            }
        } else if ((p = find_n(s, n, "image decoded (batch "))) {
            unsigned i = 0, of = 0;
            double ms = 0;
            char tmp[96];
            copy_msg(tmp, sizeof tmp, p, e);
            if (sscanf(tmp, "image decoded (batch %u/%u) in %lf ms", &i, &of, &ms) == 3 && ms >= 0 && ms < 1e9) {
                out->decode_ms += ms;
                pending = i < of;
                finished += i == of;
            }
        }
        s = nl ? nl + 1 : end;
    }
    out->complete = out->n_images > 0 && finished >= out->n_images && !encoding && !pending;
    if (!stamped)
        out->encode_ms = -1;
}

double loadlog_sum(const loadlog_t *r, const char *prefix, const char *what)
{
    double t = 0;
    size_t pl = strlen(prefix);
    for (int i = 0; i < r->n_dev; i++) {
        const loadlog_dev_t *d = &r->dev[i];
        if (strncmp(d->name, prefix, pl))
            continue;
        if (!strcmp(what, "model")) t += d->model_mib;
        else if (!strcmp(what, "kv")) t += d->kv_mib;
        else if (!strcmp(what, "rs")) t += d->rs_mib;
        else if (!strcmp(what, "compute")) t += d->compute_mib;
        else if (!strcmp(what, "output")) t += d->output_mib;
        else if (!strcmp(what, "draft")) t += d->draft_mib;
        else if (!strcmp(what, "mmproj")) t += d->mmproj_mib;
    }
    if (!strncmp(what, "draft_", 6))
        for (int i = 0; i < r->n_draft; i++) {
            const loadlog_dev_t *d = &r->draft[i];
            if (strncmp(d->name, prefix, pl))
                continue;
            const char *k = what + 6;
            if (!strcmp(k, "model")) t += d->model_mib;
            else if (!strcmp(k, "kv")) t += d->kv_mib;
            else if (!strcmp(k, "rs")) t += d->rs_mib;
            else if (!strcmp(k, "compute")) t += d->compute_mib;
            else if (!strcmp(k, "output")) t += d->output_mib;
        }
    return t;
}
