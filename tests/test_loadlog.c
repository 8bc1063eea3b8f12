/*
 * test_loadlog.c — load-report parser on recorded llama-server logs
 * (tests/fixtures/llama-server, copied from ../shared/fixtures): CPU and CUDA buffers, recurrent state,
 * out-of-memory, context settings, listening address and load time; a
 * model with a projector (its device and buffers apart from the model's)
 * and the image lines of its requests (tokens, encode and decode times).
 * cpu-tiny-gemma4-mmproj-b11669-lv4.log was recorded here: `llama-server -m
 * m/tiny-gemma4.gguf --mmproj m/tiny-gemma4-mmproj.gguf -c 4096 -np 1 -lv 4`
 * (the projector the report names).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadlog.h"
#include "util.h"

static void parse_fixture(const char *rel, loadlog_t *r)
{
    char *path = xasprintf("%s/llama-server/%s", VARIET_FIXTURES, rel), *text = NULL, err[256];
    size_t len;
    int rc = file_read_all(path, 64u << 20, &text, &len, err, sizeof err);
    free(path);
    if (rc)
        fail_msg("fixture: %s", err);
    loadlog_init(r);
    loadlog_parse(r, text, len);
    free(text);
}

static const loadlog_dev_t *dev(const loadlog_t *r, const char *name)
{
    for (int i = 0; i < r->n_dev; i++)
        if (!strcmp(r->dev[i].name, name))
            return &r->dev[i];
    fail_msg("device %s not in report", name);
    return NULL;
}

#define NEAR(a, b) assert_true(fabs((a) - (b)) < 1e-6)

static void t_cpu_tiny(void **s)
{
    (void)s;
    loadlog_t r;
    parse_fixture("cpu-tiny-llama-b11669-lv4.log", &r);
    NEAR(dev(&r, "CPU_Mapped")->model_mib, 0.41);
    NEAR(dev(&r, "CPU")->kv_mib, 0.50);
    NEAR(dev(&r, "CPU")->compute_mib, 3.14);
    NEAR(dev(&r, "CPU")->output_mib, 0.00);
    assert_int_equal(r.n_ctx, 2048);
    assert_int_equal(r.n_batch, 2048);
    assert_int_equal(r.n_ubatch, 512);
    assert_int_equal(r.n_seq_max, 4);
    assert_string_equal(r.flash_attn, "auto");
    assert_true(r.ready);
    assert_string_equal(r.listen, "http://127.0.0.1:18082");
    assert_string_equal(r.mmproj, "");
    NEAR(r.t_ready, 0.028524);
    NEAR(r.fit_projected_mib, 4);
    NEAR(r.fit_free_mib, 24105);
    assert_false(r.oom);
    assert_int_equal(r.pipeline_parallel, -1);
    assert_string_equal(r.error, "");
}

/* tiny-qwen35moe with -md tiny-draft and --mmproj tiny-qwen35-mmproj: the
 * draft's and the projector's buffers are the device's too, and told apart;
 * the draft's context does not overwrite the model's settings */
static void t_cpu_draft_mmproj(void **s)
{
    (void)s;
    loadlog_t r;
    parse_fixture("cpu-tiny-qwen35moe-draft-mmproj-b11669-lv4.log", &r);
    assert_true(r.has_draft);
    assert_string_equal(r.mmproj_device, "CPU");
    NEAR(r.mmproj_model_mib, 1.26);
    NEAR(dev(&r, "CPU_Mapped")->model_mib, 0.29 + 0.56 + 0.56 + 1.01 + 0.24); /* model + draft */
    NEAR(dev(&r, "CPU")->kv_mib, 1.00 + 1.00);                               /* model + draft */
    NEAR(dev(&r, "CPU")->rs_mib, 0.06);
    NEAR(dev(&r, "CPU")->compute_mib, 6.28 + 5.14); /* the model's and the draft's reserves, not the projector's */
    NEAR(dev(&r, "CPU")->mmproj_mib, 39.39);
    NEAR(dev(&r, "CPU")->draft_mib, 1.00 + 5.14);
    NEAR(dev(&r, "CPU_Mapped")->draft_mib, 0.24);
    NEAR(loadlog_sum(&r, "", "draft"), 6.38);
    NEAR(loadlog_sum(&r, "", "draft_model"), 0.24);
    NEAR(loadlog_sum(&r, "", "draft_kv"), 1.00);
    NEAR(loadlog_sum(&r, "", "draft_compute"), 5.14);
    NEAR(loadlog_sum(&r, "", "mmproj"), 39.39);
    NEAR(loadlog_sum(&r, "", "compute") - loadlog_sum(&r, "", "draft_compute"), 6.28);
    assert_int_equal(r.n_ctx, 4096);
    assert_int_equal(r.draft_n_ctx, 4096);
    assert_int_equal(r.n_ubatch, 512);
    assert_int_equal(r.n_seq_max, 1);
    assert_true(r.ready);
}

static void t_cuda_seedargs(void **s)
{
    (void)s;
    loadlog_t r;
    parse_fixture("cuda-h100-qwen35moe/seedargs-full-gpu.log", &r);
    const loadlog_dev_t *g = dev(&r, "CUDA0");
    NEAR(g->model_mib, 19904.89);
    NEAR(g->kv_mib, 1440.00);
    NEAR(g->rs_mib, 62.81);
    NEAR(g->compute_mib, 666.27);
    NEAR(dev(&r, "CUDA_Host")->compute_mib, 132.27);
    NEAR(dev(&r, "CUDA_Host")->output_mib, 0.95);
    NEAR(dev(&r, "CPU_Mapped")->model_mib, 272.81);
    NEAR(loadlog_sum(&r, "CUDA", "kv"), 1440.0);
    assert_int_equal(r.n_ctx, 262144);
    assert_true(r.ready);
}

static void t_cuda_oom(void **s)
{
    (void)s;
    loadlog_t r;
    parse_fixture("cuda-h100-qwen35moe/b20-seedargs-fitoff-oom.log", &r);
    assert_true(r.oom);
    assert_string_equal(r.oom_device, "CUDA0");
    NEAR(r.oom_mib, 1440.0);
    assert_false(r.ready);
    assert_non_null(strstr(r.error, "out of memory"));
}

static void t_fit_projection(void **s)
{
    (void)s;
    loadlog_t r;
    parse_fixture("cuda-h100-qwen35moe/b12-defaults.log", &r);
    NEAR(r.fit_projected_mib, 25600);
    NEAR(r.fit_free_mib, 12020);
    assert_true(r.ready);
    assert_true(r.t_ready > 10.0 && r.t_ready < 11.0);
    /* the device list llama-server prints at start */
    NEAR(dev(&r, "CUDA0")->total_mib, 81079);
    NEAR(dev(&r, "CUDA0")->free_mib, 12274);
    NEAR(dev(&r, "CPU")->free_mib, 128887);
    assert_string_equal(r.fit_abort, "");
    /* where fit placed the layers: its last summary, the first partial layer's part */
    char fp[160];
    assert_true(loadlog_fit_placement(&r, fp, sizeof fp));
    assert_string_equal(fp, "CUDA0 41 layers, 22 with experts on the host (the first: UP)");
    parse_fixture("cuda-h100-qwen35moe/b12-fit-c32k-np1.log", &r);
    assert_true(loadlog_fit_placement(&r, fp, sizeof fp));
    assert_string_equal(fp, "CUDA0 41 layers, 22 with experts on the host (the first: ATTN)");
    parse_fixture("cuda-h100-qwen35moe/b24-seedargs-fiton.log", &r);
    assert_false(loadlog_fit_placement(&r, fp, sizeof fp)); /* fit aborted: nothing placed */
    assert_string_equal(fp, "");
    assert_string_equal(r.fit_abort, "n_gpu_layers already set by user to 999");
    NEAR(dev(&r, "CUDA0")->free_mib, 22514);
    NEAR(dev(&r, "CUDA_Host")->free_mib, -1);
}

/* CPU backend running out of memory for the KV cache (recorded with ulimit -v). */
static void t_cpu_oom(void **s)
{
    (void)s;
    const char *log =
        "0.00.717.101 E ggml_aligned_malloc: insufficient memory (attempted to allocate 1953.12 MB)\n"
        "0.00.717.107 E ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 2048000000\n"
        "0.00.717.108 E ggml_backend_buft_alloc_buffer_n_default: failed to allocate CPU buffer of size 2048000000\n"
        "0.00.735.230 E llama_init_from_model: failed to initialize the context: failed to allocate buffer for kv cache\n"
        "0.00.735.342 E srv    load_model: failed to create_context with model 'tiny-llama.gguf'\n";
    loadlog_t r;
    loadlog_init(&r);
    loadlog_parse(&r, log, strlen(log));
    assert_true(r.oom);
    assert_string_equal(r.oom_device, "CPU");
    NEAR(r.oom_mib, 1953.12);
    assert_string_equal(r.oom_what, "the KV cache");
    assert_non_null(strstr(r.error, "insufficient memory"));
    assert_false(r.ready);
}

static char *slurp_fixture(const char *rel, size_t *len)
{
    char *path = xasprintf("%s/llama-server/%s", VARIET_FIXTURES, rel), *text = NULL, err[256];
    int rc = file_read_all(path, 64u << 20, &text, len, err, sizeof err);
    free(path);
    if (rc)
        fail_msg("fixture: %s", err);
    return text;
}

/* tiny-qwen35moe with tiny-qwen35-mmproj on CPU, then four chats with one
 * image each: 640², 1024², 2048² (two batches), 64² */
static void t_mmproj_images(void **s)
{
    (void)s;
    static const char fx[] = "cpu-tiny-qwen35moe-mmproj-b11669-lv4.log";
    loadlog_t r;
    parse_fixture(fx, &r);
    assert_string_equal(r.mmproj_device, "CPU");
    NEAR(r.mmproj_model_mib, 1.26);
    /* the model's compute buffer, not the projector's 39.39 reserved after it */
    NEAR(dev(&r, "CPU")->compute_mib, 10.29);
    NEAR(dev(&r, "CPU")->mmproj_mib, 39.39);
    NEAR(dev(&r, "CPU")->kv_mib, 2.00);

    size_t len = 0;
    char *text = slurp_fixture(fx, &len);
    /* the requests start at their "encoding mtmd batch" lines */
    const char *req[5];
    int n = 0;
    for (const char *p = text; n < 4 && (p = strstr(p, "encoding mtmd batch")); p++)
        req[n++] = p;
    assert_int_equal(n, 4);
    req[4] = text + len;
    static const long tokens[4] = {400, 1024, 4096, 9};
    static const double enc_ms[4] = {121.341, 579.382, 8154.585, 1.573}, dec_ms[4] = {43, 247, 3224 + 3908, 2};
    for (int i = 0; i < 4; i++) {
        /* from the start of the request's line */
        const char *from = req[i];
        while (from > text && from[-1] != '\n')
            from--;
        loadlog_images_t im;
        loadlog_images(from, (size_t)(req[i + 1] - from), &im);
        assert_true(im.complete);
        assert_int_equal(im.n_images, 1);
        assert_int_equal(im.tokens, tokens[i]);
        assert_true(fabs(im.encode_ms - enc_ms[i]) < 1e-3);
        NEAR(im.decode_ms, dec_ms[i]);
    }
    /* the 2048² image cut after its first batch: not complete yet */
    const char *cut = strstr(req[2], "decoding image batch 2/2");
    assert_non_null(cut);
    loadlog_images_t im;
    loadlog_images(req[2], (size_t)(cut - req[2]), &im);
    assert_false(im.complete);
    assert_int_equal(im.tokens, 2048);
    /* the encode started but nothing decoded */
    loadlog_images(req[2], (size_t)(strstr(req[2], "decoding image batch 1/2") - req[2]), &im);
    assert_false(im.complete);
    assert_int_equal(im.tokens, 0);
    /* no timestamps: tokens known, encode time not */
    static const char bare[] = "slot encode_mtmd_: id  0 | task 0 | encoding mtmd batch from idx = 3, n_chunks = 1\n"
                               "decoding image batch 1/1, n_tokens_batch = 256\n"
                               "image decoded (batch 1/1) in 12 ms\n";
    loadlog_images(bare, sizeof bare - 1, &im);
    assert_true(im.complete);
    assert_int_equal(im.tokens, 256);
    NEAR(im.encode_ms, -1);
    /* nothing about images */
    loadlog_images("", 0, &im);
    assert_false(im.complete);
    assert_int_equal(im.n_images, 0);
    free(text);
}

static void t_garbage(void **s)
{
    (void)s;
    loadlog_t r;
    loadlog_init(&r);
    const char *junk[] = {"", "buffer size =", " buffer size = ", "x buffer size = abc MiB",
                          "0.0", "1.2.3.4 E", "listening on ", "llama_context: n_ctx = ",
                          "allocating out of memory", "failed to allocate  buffer of size "};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        loadlog_line(&r, junk[i], strlen(junk[i]));
    for (int i = 0; i < 40; i++) {
        char line[64];
        snprintf(line, sizeof line, "f: DEV%d model buffer size = 1.00 MiB", i);
        loadlog_line(&r, line, strlen(line));
    }
    assert_int_equal(r.n_dev, LOADLOG_MAX_DEV);
    /* --fit's placement lines, cut short or overlong: nothing placed, bounded */
    const char *fitjunk[] = {"common_params_fit_impl:   - ", "common_params_fit_impl:   -  layers",
                             "common_params_fit_impl:   - CUDA0 layers", "common_params_fit_impl:   - CUDA0 (x): layers",
                             "common_params_fit_impl:   - AVERYLONGDEVICENAME0123 (x): 3 layers",
                             "overflow_type)=(", "overflow_type)=(1, 2, ATTNATTNATTNATTN)"};
    loadlog_init(&r);
    for (size_t i = 0; i < sizeof fitjunk / sizeof fitjunk[0]; i++)
        loadlog_line(&r, fitjunk[i], strlen(fitjunk[i]));
    char fp[160];
    assert_int_equal(r.n_fit_dev, 1); /* "CUDA0 (x): layers": a device, no count */
    assert_true(strlen(r.fit_overflow) < sizeof r.fit_overflow);
    for (int i = 0; i < 6; i++) {
        char line[96];
        snprintf(line, sizeof line, "common_params_fit_impl:   - CUDA%d (x): 9 layers ( 2 overflowing), 1 MiB used", i);
        loadlog_line(&r, line, strlen(line));
    }
    assert_int_equal(r.n_fit_dev, 4);
    assert_true(loadlog_fit_placement(&r, fp, 40)); /* cut to the buffer */
    assert_int_equal(strlen(fp), 39);
}

static void t_mmproj(void **s)
{
    (void)s;
    loadlog_t r;
    parse_fixture("cpu-tiny-gemma4-mmproj-b11669-lv4.log", &r);
    assert_string_equal(r.mmproj, "m/tiny-gemma4-mmproj.gguf");
    assert_true(r.ready);
    assert_int_equal(r.n_ctx, 4096);
    /* a path with a quote in it: up to the last quote */
    const char *l = "0.00.091.210 I srv    load_model: loaded multimodal model, '/m/it's-mmproj.gguf'";
    loadlog_init(&r);
    loadlog_line(&r, l, strlen(l));
    assert_string_equal(r.mmproj, "/m/it's-mmproj.gguf");
    l = "srv    load_model: loaded multimodal model, '";
    loadlog_init(&r);
    loadlog_line(&r, l, strlen(l));
    assert_string_equal(r.mmproj, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_mmproj),
        cmocka_unit_test(t_cpu_tiny),
        cmocka_unit_test(t_cpu_draft_mmproj),
        cmocka_unit_test(t_cuda_seedargs),
        cmocka_unit_test(t_cuda_oom),
        cmocka_unit_test(t_fit_projection),
        cmocka_unit_test(t_cpu_oom),
        cmocka_unit_test(t_mmproj_images),
        cmocka_unit_test(t_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
