/*
 * test_initcfg.c — `variet init`'s library: role names, projector keys and
 * matching, drafts, the candidate contexts, the choice of context / KV type
 * / placement against hardware given as input (a 12 GB and a 24 GB card, no
 * GPU, too little host memory, a dense model on a card too small for it),
 * relative paths, the document (the registry parses it), the scan of a real
 * folder (tiny synthetic models written by the synth library, a subfolder,
 * a corrupt file, a split shard, what is not scanned) and whole runs (write,
 * refuse, --force with a backup, dry run). No llama-server: the end-to-end
 * test (test_e2e_init.c) serves what init writes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "initcfg.h"
#include "registry.h"
#include "synth.h"
#include "util.h"

static char tmp[256];              /* this run's folder */
static char path35[300], proj35[300]; /* sparse Qwen3.5-35B-A3B shape and its projector */
static mi_t *m35;

static void synth_to(const char *preset, const char *path, bool sparse)
{
    char err[256];
    synth_opts_t o = {.wtype = -1, .seed = 1, .sparse = sparse};
    if (file_make_parent(path, err, sizeof err) || synth_write(synth_find(preset), &o, path, err, sizeof err))
        fail_msg("synth %s: %s", preset, err);
}

static int setup(void **s)
{
    (void)s;
    snprintf(tmp, sizeof tmp, "/tmp/variet-test-initcfg-%ld", (long)getpid());
    mkdir(tmp, 0755);
    snprintf(path35, sizeof path35, "%s/big/qwen35-35b-a3b.gguf", tmp);
    snprintf(proj35, sizeof proj35, "%s/big/qwen35-35b-a3b-mmproj.gguf", tmp);
    synth_to("qwen35-35b-a3b", path35, true);
    synth_to("qwen35-35b-a3b-mmproj", proj35, true);
    gguf_t *g = NULL;
    char err[256];
    if (gguf_open(path35, &g, err, sizeof err) || mi_from_gguf(g, &m35, err, sizeof err))
        return -1;
    gguf_close(&g);
    return 0;
}

static int teardown(void **s)
{
    (void)s;
    mi_free(&m35);
    char *cmd = xasprintf("rm -rf '%s'", tmp);
    int rc = system(cmd);
    free(cmd);
    return rc == 0 ? 0 : -1;
}

/* ---- names --------------------------------------------------------------- */

static void name_is(const char *stem, const char *want)
{
    char out[INITCFG_NAME_MAX + 1];
    initcfg_role_name(stem, out);
    if (strcmp(out, want))
        fail_msg("role name of '%s': want '%s', got '%s'", stem, want, out);
}

static void t_role_name(void **s)
{
    (void)s;
    name_is("Qwen3.5 35B-A3B_Q4_K_M", "qwen3.5-35b-a3b_q4_k_m");
    name_is("tiny-llama", "tiny-llama");
    name_is("--Foo  (bar)--", "foo-bar");
    name_is("_hidden.", "hidden");
    name_is("\xe6\x97\xa5\xe6\x9c\xac", "model"); /* nothing ASCII left */
    name_is("", "model");
    char longs[100];
    memset(longs, 'A', 99);
    longs[99] = 0;
    char out[INITCFG_NAME_MAX + 1];
    initcfg_role_name(longs, out);
    assert_int_equal(strlen(out), INITCFG_NAME_MAX);
    assert_int_equal(out[0], 'a');
}

/* A scan entry made by hand: kind, widths, parameters, vocabulary. */
static initcfg_file_t *fake(initcfg_scan_t *s, const char *path, const char *dir, initcfg_kind_t kind,
                            uint32_t width, uint64_t params, uint64_t vocab)
{
    s->files = xrealloc(s->files, (s->n + 1) * sizeof *s->files);
    initcfg_file_t *f = &s->files[s->n++];
    memset(f, 0, sizeof *f);
    f->path = xstrdup(path);
    f->abs = xasprintf("/abs/%s", path);
    f->dir = xstrdup(dir);
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    f->stem = xstrndup(b, strlen(b) - 5);
    f->kind = kind;
    f->projector = f->model = f->draft_of = -1;
    f->mi = xcalloc(1, sizeof *f->mi);
    f->mi->n_params = params;
    f->mi->n_vocab = 384;
    f->vocab_hash = vocab;
    if (kind == INITCFG_PROJECTOR) {
        f->mi->is_mmproj = true;
        f->mi->v_proj_dim = width;
    } else {
        f->mi->n_embd = width;
        f->mi->n_layer = 2;
    }
    return f;
}

static void t_unique_names(void **s)
{
    (void)s;
    initcfg_scan_t sc = {0};
    fake(&sc, "m/Llama.gguf", "m", INITCFG_MODEL, 128, 1, 0);
    fake(&sc, "m/sub/llama.gguf", "m/sub", INITCFG_MODEL, 128, 1, 0);
    fake(&sc, "m/x/LLAMA.gguf", "m/x", INITCFG_MODEL, 128, 1, 0);
    fake(&sc, "m/llama-mmproj.gguf", "m", INITCFG_PROJECTOR, 128, 1, 0);
    initcfg_name_roles(&sc);
    assert_string_equal(sc.files[0].role, "llama");
    assert_string_equal(sc.files[1].role, "llama-2");
    assert_string_equal(sc.files[2].role, "llama-3");
    assert_string_equal(sc.files[3].role, ""); /* projectors are not roles */
    initcfg_scan_free(&sc);
}

static void key_is(const char *stem, const char *want)
{
    char out[256];
    initcfg_projector_key(stem, out, sizeof out);
    if (strcmp(out, want))
        fail_msg("projector key of '%s': want '%s', got '%s'", stem, want, out);
}

static void t_projector_key(void **s)
{
    (void)s;
    key_is("tiny-qwen35-mmproj", "tiny-qwen35");
    key_is("tiny-gemma4-mmproj", "tiny-gemma4");
    key_is("mmproj-google_gemma-3-27b-it-f16", "google-gemma-3-27b-it");
    key_is("Qwen2.5-Omni-7B-mmproj-Q8_0", "qwen2-5-omni-7b");
    key_is("mmproj-F16", "");
    key_is("mmproj-model-f16", "model");
    key_is("mmproj", "");
    key_is("vision_mmproj_BF16", "vision");
}

/* ---- projectors and drafts ----------------------------------------------- */

static void t_attach(void **s)
{
    (void)s;
    initcfg_scan_t sc = {0};
    /* the tiny presets: every text model has n_embd 128, so only names decide */
    fake(&sc, "m/tiny-gemma4-mmproj.gguf", "m", INITCFG_PROJECTOR, 128, 1, 0);  /* 0 */
    fake(&sc, "m/tiny-gemma4.gguf", "m", INITCFG_MODEL, 128, 10, 0);            /* 1 */
    fake(&sc, "m/tiny-llama.gguf", "m", INITCFG_MODEL, 128, 10, 0);             /* 2 */
    fake(&sc, "m/tiny-qwen35-mmproj.gguf", "m", INITCFG_PROJECTOR, 128, 1, 0);  /* 3 */
    fake(&sc, "m/tiny-qwen35moe.gguf", "m", INITCFG_MODEL, 128, 10, 0);         /* 4 */
    /* a generic name in a model's own folder: the one model it fits */
    fake(&sc, "m/a/mmproj-F16.gguf", "m/a", INITCFG_PROJECTOR, 2048, 1, 0);    /* 5 */
    fake(&sc, "m/a/Qwen3.5-35B-A3B-Q4_K_M.gguf", "m/a", INITCFG_MODEL, 2048, 9, 0); /* 6 */
    /* named for a model whose width differs */
    fake(&sc, "m/b/big-mmproj.gguf", "m/b", INITCFG_PROJECTOR, 1152, 1, 0);    /* 7 */
    fake(&sc, "m/b/big-q4_k_m.gguf", "m/b", INITCFG_MODEL, 2560, 9, 0);        /* 8 */
    /* two for one model: the second finds it taken */
    fake(&sc, "m/c/x-mmproj-f16.gguf", "m/c", INITCFG_PROJECTOR, 64, 1, 0);    /* 9 */
    fake(&sc, "m/c/x-mmproj-f32.gguf", "m/c", INITCFG_PROJECTOR, 64, 1, 0);    /* 10 */
    fake(&sc, "m/c/x.gguf", "m/c", INITCFG_MODEL, 64, 9, 0);                   /* 11 */
    /* generic, two models it fits: none */
    fake(&sc, "m/d/mmproj-f16.gguf", "m/d", INITCFG_PROJECTOR, 64, 1, 0);      /* 12 */
    fake(&sc, "m/d/p.gguf", "m/d", INITCFG_MODEL, 64, 9, 0);                   /* 13 */
    fake(&sc, "m/d/q.gguf", "m/d", INITCFG_MODEL, 64, 9, 0);                   /* 14 */
    /* a model of another folder is never taken */
    fake(&sc, "m/e/mmproj-f16.gguf", "m/e", INITCFG_PROJECTOR, 128, 1, 0);     /* 15 */
    initcfg_attach_projectors(&sc);
    initcfg_file_t *f = sc.files;
    assert_int_equal(f[1].projector, 0);
    assert_true(f[0].by_name);
    assert_int_equal(f[4].projector, 3);
    assert_int_equal(f[3].model, 4);
    assert_int_equal(f[2].projector, -1);
    assert_int_equal(f[6].projector, 5);
    assert_false(f[5].by_name);
    assert_int_equal(f[7].model, -1);
    assert_int_equal(f[8].projector, -1);
    assert_non_null(strstr(f[7].note, "projection_dim 1152 is not that model's n_embd 2560"));
    assert_int_equal(f[11].projector, 9);
    assert_int_equal(f[10].model, -1);
    assert_non_null(strstr(f[10].note, "already has m/c/x-mmproj-f16.gguf"));
    assert_int_equal(f[12].model, -1);
    assert_non_null(strstr(f[12].note, "fits 2 models (p, q)"));
    assert_int_equal(f[15].model, -1);
    assert_non_null(strstr(f[15].note, "no model in m/e"));
    initcfg_scan_free(&sc);
}

static void t_drafts(void **s)
{
    (void)s;
    /* the tiny presets' parameter counts, one vocabulary */
    for (int keep = 0; keep < 2; keep++) {
        initcfg_scan_t sc = {0};
        fake(&sc, "m/tiny-draft.gguf", "m", INITCFG_MODEL, 64, 123200, 7);
        fake(&sc, "m/tiny-gemma4.gguf", "m", INITCFG_MODEL, 128, 1856150, 7);
        fake(&sc, "m/tiny-llama.gguf", "m", INITCFG_MODEL, 128, 393856, 7);
        fake(&sc, "m/tiny-qwen35moe.gguf", "m", INITCFG_MODEL, 128, 1257272, 7);
        fake(&sc, "m/other-vocab.gguf", "m", INITCFG_MODEL, 64, 123200, 8);
        fake(&sc, "m/no-vocab.gguf", "m", INITCFG_MODEL, 64, 1000, 0);
        initcfg_find_drafts(&sc, keep);
        assert_int_equal(sc.files[0].kind, keep ? INITCFG_MODEL : INITCFG_DRAFT);
        assert_int_equal(sc.files[0].draft_of, 1); /* the largest with its vocabulary */
        assert_non_null(strstr(sc.files[0].note, "draft for m/tiny-gemma4.gguf"));
        for (size_t i = 1; i < sc.n; i++) { /* 4.7x and 1.5x are not drafts, nor other vocabularies */
            assert_int_equal(sc.files[i].kind, INITCFG_MODEL);
            assert_int_equal(sc.files[i].draft_of, -1);
        }
        initcfg_name_roles(&sc);
        assert_string_equal(sc.files[0].role, keep ? "tiny-draft" : "");
        initcfg_scan_free(&sc);
    }
}

/* ---- contexts and the choice --------------------------------------------- */

static void t_contexts(void **s)
{
    (void)s;
    uint64_t c[INITCFG_MAX_CTX];
    int n = initcfg_contexts(32768, 0, c, INITCFG_MAX_CTX);
    assert_int_equal(n, 4);
    assert_int_equal(c[0], 32768);
    assert_int_equal(c[3], 4096);
    n = initcfg_contexts(262144, 0, c, INITCFG_MAX_CTX);
    assert_int_equal(n, 7);
    assert_int_equal(c[1], 131072);
    n = initcfg_contexts(40960, 0, c, INITCFG_MAX_CTX);
    assert_int_equal(c[0], 40960);
    assert_int_equal(c[1], 32768);
    assert_int_equal(n, 5);
    n = initcfg_contexts(32768, 5000, c, INITCFG_MAX_CTX);
    assert_int_equal(n, 2);
    assert_int_equal(c[0], 5000);
    assert_int_equal(c[1], 4096);
    n = initcfg_contexts(32768, 1000, c, INITCFG_MAX_CTX);
    assert_int_equal(n, 1);
    assert_int_equal(c[0], 1000);
    n = initcfg_contexts(2048, 0, c, INITCFG_MAX_CTX); /* trained below the floor: only it */
    assert_int_equal(n, 1);
    assert_int_equal(c[0], 2048);
    n = initcfg_contexts(0, 0, c, INITCFG_MAX_CTX); /* unknown: the floor */
    assert_int_equal(n, 1);
    assert_int_equal(c[0], INITCFG_CTX_MIN);
    n = initcfg_contexts(32768, 65536, c, INITCFG_MAX_CTX); /* a cap above the trained context: at most it */
    assert_int_equal(c[0], 32768);
}

static uint64_t file_size(const char *p)
{
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return (uint64_t)st.st_size;
}

static const char *arg(const initcfg_choice_t *c, const char *name)
{
    for (size_t k = 0; k + 1 < c->n_args; k++)
        if (!strcmp(c->args[k], name))
            return c->args[k + 1];
    return NULL;
}

static plan_hw_t one_gpu(int64_t free_mib, int64_t host)
{
    plan_hw_t hw = {.n_gpu = 1, .host_free_mib = host};
    snprintf(hw.gpus[0].name, sizeof hw.gpus[0].name, "CUDA0");
    hw.gpus[0].free_mib = free_mib;
    return hw;
}

static bool fits(const plan_t *p) { return p->verdict == PLAN_FITS || p->verdict == PLAN_FITS_WITHOUT_PP; }

/* Predict args as given (the projector's size included), for cross-checks. */
static bool predict_fits(const mi_t *m, const char *line, uint64_t mmproj, const plan_hw_t *hw, int64_t margin)
{
    char *copy = xstrdup(line), *argv[32], *save = NULL;
    size_t n = 0;
    for (char *t = strtok_r(copy, " ", &save); t && n < 32; t = strtok_r(NULL, " ", &save))
        argv[n++] = t;
    plan_opts_t o;
    char err[256];
    assert_int_equal(plan_opts_from_args(argv, n, &o, err, sizeof err), 0);
    o.mmproj_bytes = mmproj;
    plan_t p;
    plan_predict(m, &o, hw->gpus, hw->n_gpu, hw->host_free_mib - margin, (uint64_t)margin << 20, &p);
    free(copy);
    return fits(&p);
}

static void t_choose_12gb(void **s)
{
    (void)s;
    uint64_t pb = file_size(proj35);
    plan_hw_t hw = one_gpu(12288, 65536);
    initcfg_opts_t o = {.min_free_mib = 1024};
    initcfg_choice_t c;
    /* the whole model (18.4 GB of weights) does not fit: experts on the host,
     * the trained context with f16 KV (what the order asks for) */
    assert_int_equal(initcfg_choose(m35, proj35, pb, &hw, &o, &c), 0);
    assert_int_equal(c.place, INITCFG_PLACE_GPU_NCMOE);
    assert_int_equal(c.n_ctx, 262144);
    assert_int_equal(c.kv_type, GGUF_TT_F16);
    assert_string_equal(arg(&c, "-ngl"), "999");
    assert_string_equal(arg(&c, "--mmproj"), proj35);
    assert_string_equal(arg(&c, "-np"), "1");
    assert_null(arg(&c, "-ctk"));
    assert_true(fits(&c.plan));
    assert_true(c.plan.dev[1].total + (1024ull << 20) <= (12288ull << 20));
    assert_true(c.plan.dev[1].mmproj > 0);
    /* the fewest host-expert layers: one fewer does not fit */
    long nc = strtol(arg(&c, "-ncmoe"), NULL, 10);
    assert_true(nc > 0 && nc < 40);
    char line[256];
    snprintf(line, sizeof line, "-c 262144 -np 1 -ngl 999 -ncmoe %ld", nc - 1);
    assert_false(predict_fits(m35, line, pb, &hw, 1024));
    snprintf(line, sizeof line, "-c 262144 -np 1 -ngl 999 -ncmoe %ld", nc);
    assert_true(predict_fits(m35, line, pb, &hw, 1024));
    /* nothing whole fits at the floor either (else it would have been chosen) */
    assert_false(predict_fits(m35, "-c 4096 -np 1 -ctk q4_0 -ctv q4_0 -fa on -ngl 999", pb, &hw, 1024));
    initcfg_choice_free(&c);

    /* --ctx 32768: fewer experts on the host */
    o.ctx = 32768;
    assert_int_equal(initcfg_choose(m35, proj35, pb, &hw, &o, &c), 0);
    assert_int_equal(c.place, INITCFG_PLACE_GPU_NCMOE);
    assert_int_equal(c.n_ctx, 32768);
    assert_true(strtol(arg(&c, "-ncmoe"), NULL, 10) < nc);
    initcfg_choice_free(&c);

    /* the experts need host memory too: with 4 GB there is nowhere to go */
    o.ctx = 0;
    hw = one_gpu(12288, 4096);
    assert_int_equal(initcfg_choose(m35, proj35, pb, &hw, &o, &c), -ENOSPC);
    assert_int_equal(c.place, INITCFG_PLACE_NONE);
    assert_non_null(c.args); /* the smallest whole configuration, for the report */
    assert_string_equal(arg(&c, "-c"), "4096");
    assert_string_equal(arg(&c, "-ctk"), "q4_0");
    initcfg_choice_free(&c);
}

static void t_choose_24gb(void **s)
{
    (void)s;
    uint64_t pb = file_size(proj35);
    plan_hw_t hw = one_gpu(24576, 65536);
    initcfg_opts_t o = {.min_free_mib = 1024};
    initcfg_choice_t c;
    assert_int_equal(initcfg_choose(m35, proj35, pb, &hw, &o, &c), 0);
    assert_int_equal(c.place, INITCFG_PLACE_GPU);
    assert_int_equal(c.n_ctx, 262144);
    /* f16 KV at 256K (5 GiB) does not fit beside the weights, q8_0 does */
    assert_false(predict_fits(m35, "-c 262144 -np 1 -ngl 999", pb, &hw, 1024));
    assert_int_equal(c.kv_type, GGUF_TT_Q8_0);
    assert_string_equal(arg(&c, "-ctk"), "q8_0");
    assert_string_equal(arg(&c, "-fa"), "on");
    assert_null(arg(&c, "-ncmoe"));
    initcfg_choice_free(&c);
    /* without the projector there is room for more: still q8_0 at 256K, more headroom */
    assert_int_equal(initcfg_choose(m35, NULL, 0, &hw, &o, &c), 0);
    assert_null(arg(&c, "--mmproj"));
    assert_int_equal(c.plan.dev[1].mmproj, 0);
    initcfg_choice_free(&c);
}

static void t_choose_cpu(void **s)
{
    (void)s;
    plan_hw_t hw = {.n_gpu = 0, .host_free_mib = 65536};
    initcfg_opts_t o = {.min_free_mib = 1024};
    initcfg_choice_t c;
    assert_int_equal(initcfg_choose(m35, NULL, 0, &hw, &o, &c), 0);
    assert_int_equal(c.place, INITCFG_PLACE_HOST);
    assert_int_equal(c.n_ctx, 262144);
    assert_int_equal(c.kv_type, GGUF_TT_F16);
    assert_null(arg(&c, "-ngl")); /* no GPU: nothing to place */
    assert_int_equal(c.host_free_mib, 65536 - 1024);
    initcfg_choice_free(&c);
    hw.host_free_mib = 8192;
    assert_int_equal(initcfg_choose(m35, NULL, 0, &hw, &o, &c), -ENOSPC);
    assert_int_equal(c.place, INITCFG_PLACE_NONE);
    assert_int_equal(c.plan.verdict, PLAN_NO_FIT);
    initcfg_choice_free(&c);
}

/* A dense model on a card too small for all of it: -ngl. */
static void t_choose_dense_ngl(void **s)
{
    (void)s;
    char p[300], err[256];
    snprintf(p, sizeof p, "%s/dense/tiny-llama-q.gguf", tmp);
    synth_to("tiny-llama-q", p, false);
    gguf_t *g = NULL;
    mi_t *m = NULL;
    assert_int_equal(gguf_open(p, &g, err, sizeof err), 0);
    assert_int_equal(mi_from_gguf(g, &m, err, sizeof err), 0);
    plan_hw_t hw = one_gpu(10, 8000);
    initcfg_opts_t o = {.min_free_mib = 0};
    initcfg_choice_t c;
    assert_int_equal(initcfg_choose(m, NULL, 0, &hw, &o, &c), 0);
    assert_int_equal(c.place, INITCFG_PLACE_GPU_NGL);
    assert_true(c.ngl > 0 && c.ngl < (int64_t)m->n_layer + 1);
    assert_null(arg(&c, "-ncmoe"));
    assert_true(fits(&c.plan));
    initcfg_choice_free(&c);
    /* with room, the whole model on the GPU */
    hw = one_gpu(60, 8000);
    assert_int_equal(initcfg_choose(m, NULL, 0, &hw, &o, &c), 0);
    assert_int_equal(c.place, INITCFG_PLACE_GPU);
    initcfg_choice_free(&c);
    mi_free(&m);
    gguf_close(&g);
}

/* ---- paths and the document ---------------------------------------------- */

static void rel_is(const char *dir, const char *file, const char *want)
{
    char *r = initcfg_rel_path(dir, file);
    if (strcmp(r, want))
        fail_msg("rel_path(%s, %s): want %s, got %s", dir, file, want, r);
    free(r);
}

static void t_rel_path(void **s)
{
    (void)s;
    rel_is("/a/b", "/a/b/models/x.gguf", "models/x.gguf");
    rel_is("/a/b", "/a/bc/x.gguf", "/a/bc/x.gguf");
    rel_is("/a/b", "/elsewhere/x.gguf", "/elsewhere/x.gguf");
    rel_is("/", "/x.gguf", "x.gguf");
}

static void t_document(void **s)
{
    (void)s;
    initcfg_scan_t sc = {0};
    initcfg_file_t *f = fake(&sc, "models/tiny-gemma4.gguf", "models", INITCFG_MODEL, 128, 10, 0);
    snprintf(f->mi->name, sizeof f->mi->name, "synth-tiny-gemma4");
    free(f->abs);
    f->abs = xstrdup("/cfg/models/tiny-gemma4.gguf");
    f = fake(&sc, "models/tiny-gemma4-mmproj.gguf", "models", INITCFG_PROJECTOR, 128, 1, 0);
    free(f->abs);
    f->abs = xstrdup("/cfg/models/tiny-gemma4-mmproj.gguf");
    f = fake(&sc, "/m/Other.gguf", "/m", INITCFG_MODEL, 64, 10, 0); /* outside the config's folder */
    free(f->abs);
    f->abs = xstrdup("/m/Other.gguf");
    initcfg_attach_projectors(&sc);
    initcfg_name_roles(&sc);
    plan_hw_t hw = {.n_gpu = 0, .host_free_mib = -1};
    initcfg_opts_t o = {.min_free_mib = 0};
    mi_t *m = m35; /* any model: the document only copies the args */
    initcfg_choice_t c0, c2;
    assert_int_equal(initcfg_choose(m, sc.files[1].abs, 1000, &hw, &o, &c0), 0);
    assert_int_equal(initcfg_choose(m, NULL, 0, &hw, &o, &c2), 0);
    initcfg_choice_t *ch[3] = {&c0, NULL, &c2};
    json_t *doc = initcfg_document(&sc, ch, "/cfg", "/usr/bin/llama-server", 20000, "hello");
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    registry_t *r = NULL;
    char err[512];
    if (registry_parse(text, strlen(text), "/cfg/engine_models.json", &r, err, sizeof err))
        fail_msg("%s\n%s", err, text);
    assert_int_equal(r->n_roles, 2);
    assert_string_equal(r->roles[0].name, "tiny-gemma4");
    assert_string_equal(r->roles[0].display_name, "synth-tiny-gemma4");
    assert_string_equal(r->roles[0].model_path, "models/tiny-gemma4.gguf");
    assert_string_equal(r->roles[0].model_abs, "/cfg/models/tiny-gemma4.gguf");
    assert_string_equal(r->roles[1].name, "other");
    assert_string_equal(r->roles[1].display_name, "Other");
    assert_string_equal(r->roles[1].model_path, "/m/Other.gguf");
    bool mm = false;
    for (size_t k = 0; k + 1 < r->roles[0].n_args; k++)
        mm |= !strcmp(r->roles[0].args[k], "--mmproj") &&
              !strcmp(r->roles[0].args[k + 1], "/cfg/models/tiny-gemma4-mmproj.gguf");
    assert_true(mm);
    assert_string_equal(r->engine.llama_server, "/usr/bin/llama-server");
    assert_int_equal(r->engine.memory_budget, 20000ull << 20);
    assert_string_equal(json_string_value(json_object_get(r->doc, "_comment")), "hello");
    registry_free(&r);
    free(text);
    json_decref(doc);
    /* no llama-server known: null (serve's own search), no budget */
    doc = initcfg_document(&sc, ch, "/cfg", NULL, 0, NULL);
    assert_true(json_is_null(json_object_get(json_object_get(doc, "_engine"), "llama_server")));
    assert_null(json_object_get(json_object_get(doc, "_engine"), "memory_budget"));
    assert_null(json_object_get(doc, "_comment"));
    json_decref(doc);
    initcfg_choice_free(&c0);
    initcfg_choice_free(&c2);
    initcfg_scan_free(&sc);
}

/* ---- a real folder --------------------------------------------------------- */

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* <tmp>/<name>/: tiny-llama, tiny-qwen35moe + tiny-qwen35-mmproj,
 * tiny-gemma4 + tiny-gemma4-mmproj, tiny-draft, a corrupt copy of
 * tiny-llama, sub/tiny-llama (one level down), sub/deeper/ (not read), a
 * shard, a hidden file, a text file. */
static const char *models_dir(const char *name)
{
    static char dir[300];
    snprintf(dir, sizeof dir, "%s/%s", tmp, name);
    static const char *const presets[] = {"tiny-llama", "tiny-qwen35moe", "tiny-qwen35-mmproj", "tiny-gemma4",
                                          "tiny-gemma4-mmproj", "tiny-draft"};
    char p[400];
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        snprintf(p, sizeof p, "%s/%s.gguf", dir, presets[i]);
        synth_to(presets[i], p, false);
    }
    snprintf(p, sizeof p, "%s/sub/tiny-llama.gguf", dir);
    synth_to("tiny-llama", p, false);
    snprintf(p, sizeof p, "%s/sub/deeper/tiny-gemma4.gguf", dir);
    synth_to("tiny-gemma4", p, false);
    /* the first 700 KB of tiny-llama: its tensor data runs past the end */
    char *text = NULL, err[256];
    size_t len = 0;
    snprintf(p, sizeof p, "%s/tiny-llama.gguf", dir);
    assert_int_equal(file_read_all(p, 64u << 20, &text, &len, err, sizeof err), 0);
    snprintf(p, sizeof p, "%s/broken.gguf", dir);
    write_bytes(p, text, 700000);
    snprintf(p, sizeof p, "%s/big-00002-of-00003.gguf", dir);
    write_bytes(p, text, len);
    free(text);
    snprintf(p, sizeof p, "%s/.hidden.gguf", dir);
    write_bytes(p, "x", 1);
    snprintf(p, sizeof p, "%s/README.txt", dir);
    write_bytes(p, "models\n", 7);
    return dir;
}

static const initcfg_file_t *by_path(const initcfg_scan_t *s, const char *tail)
{
    for (size_t i = 0; i < s->n; i++) {
        size_t a = strlen(s->files[i].path), b = strlen(tail);
        if (a >= b && !strcmp(s->files[i].path + a - b, tail))
            return &s->files[i];
    }
    fail_msg("%s not scanned", tail);
    return NULL;
}

static void t_scan(void **s)
{
    (void)s;
    const char *dir = models_dir("scan");
    initcfg_scan_t sc;
    char err[512];
    assert_int_equal(initcfg_scan(dir, &sc, err, sizeof err), 0);
    assert_int_equal(sc.n, 9); /* 6 presets, broken, the shard, sub/tiny-llama */
    for (size_t i = 1; i < sc.n - 1; i++) /* the folder's own files by path, then the subfolder's */
        assert_true(strcmp(sc.files[i - 1].path, sc.files[i].path) < 0);
    assert_non_null(strstr(sc.files[sc.n - 1].path, "/sub/tiny-llama.gguf"));
    const initcfg_file_t *f = by_path(&sc, "/broken.gguf");
    assert_int_equal(f->kind, INITCFG_SKIPPED);
    assert_non_null(strstr(f->note, "runs past the end of the file"));
    f = by_path(&sc, "/big-00002-of-00003.gguf");
    assert_int_equal(f->kind, INITCFG_SKIPPED);
    assert_non_null(strstr(f->note, "part 2 of 3 of a split model"));
    assert_int_equal(by_path(&sc, "/tiny-gemma4-mmproj.gguf")->kind, INITCFG_PROJECTOR);
    assert_int_equal(by_path(&sc, "/tiny-gemma4-mmproj.gguf")->mi->v_proj_dim, 128);
    f = by_path(&sc, "/sub/tiny-llama.gguf");
    assert_int_equal(f->kind, INITCFG_MODEL);
    char want[400];
    snprintf(want, sizeof want, "%s/sub", dir);
    assert_string_equal(f->dir, want);
    /* the same vocabulary in every tiny preset */
    assert_true(by_path(&sc, "/tiny-draft.gguf")->vocab_hash != 0);
    assert_true(by_path(&sc, "/tiny-draft.gguf")->vocab_hash == by_path(&sc, "/tiny-gemma4.gguf")->vocab_hash);
    initcfg_find_drafts(&sc, false);
    initcfg_attach_projectors(&sc);
    initcfg_name_roles(&sc);
    assert_int_equal(by_path(&sc, "/tiny-draft.gguf")->kind, INITCFG_DRAFT);
    const initcfg_file_t *g4 = by_path(&sc, "/tiny-gemma4.gguf"), *q = by_path(&sc, "/tiny-qwen35moe.gguf");
    assert_true(g4->projector >= 0);
    assert_string_equal(sc.files[g4->projector].stem, "tiny-gemma4-mmproj");
    assert_string_equal(sc.files[q->projector].stem, "tiny-qwen35-mmproj");
    assert_int_equal(by_path(&sc, "/scan/tiny-llama.gguf")->projector, -1);
    assert_string_equal(by_path(&sc, "/scan/tiny-llama.gguf")->role, "tiny-llama");
    assert_string_equal(by_path(&sc, "/sub/tiny-llama.gguf")->role, "tiny-llama-2");
    initcfg_scan_free(&sc);

    assert_int_equal(initcfg_scan("/nonexistent/variet", &sc, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/variet"));
    snprintf(want, sizeof want, "%s/README.txt", dir);
    assert_int_equal(initcfg_scan(want, &sc, err, sizeof err), -ENOTDIR);
    assert_non_null(strstr(err, "not a folder"));
}

static void t_run(void **s)
{
    (void)s;
    const char *dir = models_dir("run");
    char out_path[400], bak[420], err[1024];
    snprintf(out_path, sizeof out_path, "%s/cfg/engine_models.json", tmp);
    snprintf(bak, sizeof bak, "%s.bak", out_path);
    initcfg_run_opts_t o = {.models_dir = dir, .output = out_path, .choose = {.min_free_mib = 1024},
                            .hw = {.n_gpu = 0, .host_free_mib = 16384}, .hw_note = "test"};
    buf_t out, warn;
    buf_init(&out, 0);
    buf_init(&warn, 0);
    /* dry run: the document printed, nothing written */
    o.dry_run = true;
    assert_int_equal(initcfg_run(&o, &out, &warn, err, sizeof err), 0);
    assert_int_equal(access(out_path, F_OK), -1);
    assert_non_null(strstr(out.data, "\"tiny-gemma4\": {"));
    assert_non_null(strstr(out.data, "not written"));
    o.dry_run = false;
    buf_reset(&out);
    buf_reset(&warn);
    if (initcfg_run(&o, &out, &warn, err, sizeof err))
        fail_msg("%s", err);
    /* the report: a plan table per role, the skipped and the draft named */
    assert_non_null(strstr(out.data, "role tiny-gemma4: "));
    assert_non_null(strstr(out.data, "+ projector "));
    assert_non_null(strstr(out.data, "verdict: fits"));
    assert_non_null(strstr(out.data, "tiny-draft.gguf: draft for"));
    assert_non_null(strstr(out.data, "wrote "));
    assert_non_null(strstr(warn.data, "broken.gguf: skipped: "));
    assert_non_null(strstr(warn.data, "big-00002-of-00003.gguf: skipped: part 2 of 3"));
    registry_t *r = NULL;
    if (registry_load(out_path, &r, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(r->n_roles, 4); /* tiny-gemma4, tiny-llama, tiny-qwen35moe, tiny-llama-2 */
    const reg_role_t *g4 = registry_find(r, "tiny-gemma4");
    assert_non_null(g4);
    assert_non_null(registry_find(r, "tiny-llama-2"));
    assert_null(registry_find(r, "tiny-draft"));
    assert_null(registry_find(r, "broken"));
    /* the model's own path, absolute because it lies outside the config's folder */
    assert_true(g4->model_abs[0] == '/');
    assert_non_null(strstr(g4->model_path, "/run/tiny-gemma4.gguf"));
    assert_true(r->engine.llama_server == NULL);
    assert_int_equal(r->engine.memory_budget, (16384ull - 1024) << 20);
    registry_free(&r);
    /* a second time: refused, the file untouched */
    char *before = NULL, *after = NULL;
    size_t lb = 0, la = 0;
    assert_int_equal(file_read_all(out_path, 1 << 20, &before, &lb, err, sizeof err), 0);
    assert_int_equal(initcfg_run(&o, &out, &warn, err, sizeof err), -EEXIST);
    assert_non_null(strstr(err, out_path));
    assert_non_null(strstr(err, "--force"));
    assert_int_equal(file_read_all(out_path, 1 << 20, &after, &la, err, sizeof err), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(before, after, lb);
    free(after);
    /* --force with another context: replaced, the old one kept */
    o.force = true;
    o.choose.ctx = 8192;
    assert_int_equal(initcfg_run(&o, &out, &warn, err, sizeof err), 0);
    assert_int_equal(file_read_all(bak, 1 << 20, &after, &la, err, sizeof err), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(before, after, lb);
    free(after);
    free(before);
    assert_int_equal(registry_load(out_path, &r, err, sizeof err), 0);
    const reg_role_t *ll = registry_find(r, "tiny-llama");
    assert_string_equal(ll->args[0], "-c");
    assert_string_equal(ll->args[1], "8192");
    registry_free(&r);
    /* nothing fits: nothing written, -ENODATA */
    snprintf(out_path, sizeof out_path, "%s/cfg/none.json", tmp);
    o.hw.host_free_mib = 1025; /* 1 MiB after the margin */
    assert_int_equal(initcfg_run(&o, &out, &warn, err, sizeof err), -ENODATA);
    assert_non_null(strstr(err, "no model fits"));
    assert_non_null(strstr(warn.data, "fits nowhere"));
    assert_int_equal(access(out_path, F_OK), -1);
    /* the output is a folder; the models folder is missing */
    o.output = tmp;
    assert_int_equal(initcfg_run(&o, &out, &warn, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "is a folder"));
    o.output = out_path;
    o.models_dir = "/nonexistent/variet";
    assert_int_equal(initcfg_run(&o, &out, &warn, err, sizeof err), -EINVAL);
    buf_free(&out);
    buf_free(&warn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_role_name),  cmocka_unit_test(t_unique_names), cmocka_unit_test(t_projector_key),
        cmocka_unit_test(t_attach),     cmocka_unit_test(t_drafts),       cmocka_unit_test(t_contexts),
        cmocka_unit_test(t_choose_12gb), cmocka_unit_test(t_choose_24gb), cmocka_unit_test(t_choose_cpu),
        cmocka_unit_test(t_choose_dense_ngl), cmocka_unit_test(t_rel_path), cmocka_unit_test(t_document),
        cmocka_unit_test(t_scan),       cmocka_unit_test(t_run),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
