/*
 * test_plan.c — the planner against llama-server's own numbers: the H100
 * qwen35moe fixture logs (KV, recurrent state, compute and output buffers,
 * host token_embd) on a sparse full-size synthetic file with that shape;
 * layer placement rules (-ngl, -ts, output layer first, -ncmoe, --cpu-moe,
 * --no-kv-offload); verdicts and suggestions; argument errors.
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
#include <unistd.h>

#include "gguf.h"
#include "modelinfo.h"
#include "plan.h"
#include "synth.h"
#include "util.h"

#define MIB (1024.0 * 1024.0)

static gguf_t *g35;
static mi_t *m35;
static char path35[128];

static int setup(void **s)
{
    (void)s;
    char err[256];
    snprintf(path35, sizeof path35, "/tmp/variet-test-plan-%ld.gguf", (long)getpid());
    synth_opts_t o = {.wtype = -1, .seed = 1, .sparse = true};
    if (synth_write(synth_find("qwen35-35b-a3b"), &o, path35, err, sizeof err))
        return -1;
    if (gguf_open(path35, &g35, err, sizeof err) || mi_from_gguf(g35, &m35, err, sizeof err))
        return -1;
    return 0;
}

static int teardown(void **s)
{
    (void)s;
    mi_free(&m35);
    gguf_close(&g35);
    unlink(path35);
    return 0;
}

static void opts(plan_opts_t *o, const char *line)
{
    char *copy = xstrdup(line), *argv[64], *save = NULL;
    size_t n = 0;
    for (char *t = strtok_r(copy, " ", &save); t && n < 64; t = strtok_r(NULL, " ", &save))
        argv[n++] = t;
    char err[256];
    if (plan_opts_from_args(argv, n, o, err, sizeof err))
        fail_msg("%s: %s", line, err);
    free(copy);
}

#define NEAR_MIB(bytes, mib, tol) \
    do { \
        double got_ = (double)(bytes) / MIB; \
        if (fabs(got_ - (mib)) > (tol)) \
            fail_msg("%s = %.2f MiB, llama-server %.2f MiB (tolerance %.2f)", #bytes, got_, (double)(mib), (double)(tol)); \
    } while (0)

/* seedargs-full-gpu.log: all on CUDA0. */
static void t_fixture_full_gpu(void **s)
{
    (void)s;
    plan_opts_t o;
    opts(&o, "-ngl 999 -c 262144 -np 1 -fa on -ctk q4_0 -ctv q4_0 -ub 256 -b 512 -t 6 -tb 6");
    plan_gpu_t gpu = {"CUDA0", 81079};
    plan_t p;
    plan_predict(m35, &o, &gpu, 1, 24000, 512u << 20, &p);
    assert_int_equal(p.n_dev, 2);
    NEAR_MIB(p.dev[1].kv, 1440.00, 0.005);
    NEAR_MIB(p.dev[1].rs, 62.81, 0.005);
    NEAR_MIB(p.dev[0].weights, 272.81, 0.005); /* token_embd on the host (CPU_Mapped) */
    NEAR_MIB(p.dev[0].output, 0.95, 0.005);
    NEAR_MIB(p.dev[1].compute, 666.27, 666.27 * 0.10);
    NEAR_MIB(p.dev[0].compute, 132.27, 132.27 * 0.10);
    assert_int_equal(p.dev[1].layers, 40);
    assert_true(p.dev[1].output_layer);
    assert_int_equal(p.verdict, PLAN_FITS);
    assert_false(p.pp);
}

/* defaults.log (ctx from the model, 4 slots) and default-c4096.log. */
static void t_fixture_defaults(void **s)
{
    (void)s;
    plan_opts_t o;
    plan_gpu_t gpu = {"CUDA0", 81079};
    plan_t p;
    opts(&o, "");
    plan_predict(m35, &o, &gpu, 1, 24000, 0, &p);
    NEAR_MIB(p.dev[1].kv, 5120.00, 0.005);
    NEAR_MIB(p.dev[1].rs, 62.81 * 4, 0.02);
    NEAR_MIB(p.dev[1].compute, 324.02, 324.02 * 0.10);
    NEAR_MIB(p.dev[0].compute, 264.02, 264.02 * 0.10);
    NEAR_MIB(p.dev[0].output, 3.79, 0.005);
    opts(&o, "-c 4096");
    plan_predict(m35, &o, &gpu, 1, 24000, 0, &p);
    NEAR_MIB(p.dev[1].compute, 72.02, 72.02 * 0.10);
    NEAR_MIB(p.dev[0].compute, 12.02, 12.02 * 0.10);
    /* b24-tuned-ub2048-f16-c65536.log */
    opts(&o, "-ngl 999 -c 65536 -np 1 -fa on -ub 2048 -b 2048");
    plan_predict(m35, &o, &gpu, 1, 24000, 0, &p);
    NEAR_MIB(p.dev[1].compute, 528.06, 528.06 * 0.10);
    NEAR_MIB(p.dev[0].compute, 288.07, 288.07 * 0.10);
    NEAR_MIB(p.dev[1].kv, 1280.00, 0.005);
}

static void t_placement(void **s)
{
    (void)s;
    plan_opts_t o;
    plan_gpu_t gpus[2] = {{"CUDA0", 24000}, {"CUDA1", 24000}};
    plan_t p;
    /* -ngl 1: only the output layer on the GPU */
    opts(&o, "-ngl 1 -c 4096");
    plan_predict(m35, &o, gpus, 1, -1, 0, &p);
    assert_int_equal(p.dev[1].layers, 0);
    assert_true(p.dev[1].output_layer);
    assert_int_equal(p.dev[0].layers, 40);
    /* -ngl 11: output + the last 10 layers */
    opts(&o, "-ngl 11 -c 4096");
    plan_predict(m35, &o, gpus, 1, -1, 0, &p);
    assert_int_equal(p.dev[1].layers, 10);
    assert_int_equal(p.dev[0].layers, 30);
    /* -ts 3,1 over 41 offloaded (40 + output): upper_bound of i/41 in {0.75, 1} */
    opts(&o, "-ngl 999 -c 4096 -ts 3,1");
    plan_predict(m35, &o, gpus, 2, -1, 0, &p);
    assert_int_equal(p.dev[1].layers, 31); /* i/41 < 0.75 for i = 0..30 */
    assert_int_equal(p.dev[2].layers, 9);
    assert_true(p.dev[2].output_layer);
    assert_true(p.pp);
    /* -ncmoe 20: experts of layers 0..19 on the host */
    uint64_t exp20 = 0, exp_all = 0;
    for (uint32_t i = 0; i < 40; i++) {
        exp_all += m35->layers[i].exp_bytes;
        if (i < 20)
            exp20 += m35->layers[i].exp_bytes;
    }
    opts(&o, "-ngl 999 -c 32768 -np 1 -fa on -ncmoe 20");
    plan_predict(m35, &o, gpus, 1, -1, 0, &p);
    assert_int_equal(p.dev[0].weights, m35->bytes_tok_embd + exp20);
    assert_false(p.pp);
    opts(&o, "-ngl 999 -c 32768 --cpu-moe");
    plan_predict(m35, &o, gpus, 1, -1, 0, &p);
    assert_int_equal(p.dev[0].weights, m35->bytes_tok_embd + exp_all);
    /* --no-kv-offload: KV and RS on the host */
    opts(&o, "-ngl 999 -c 32768 -nkvo");
    plan_predict(m35, &o, gpus, 1, -1, 0, &p);
    assert_int_equal(p.dev[1].kv, 0);
    assert_true(p.dev[0].kv > 0);
    /* no GPU: everything on the host */
    opts(&o, "-c 4096");
    plan_predict(m35, &o, NULL, 0, -1, 0, &p);
    assert_int_equal(p.dev[0].layers, 40);
    assert_int_equal(p.dev[0].weights, m35->weight_bytes);
}

/* b20-seedargs-fitoff-oom.log: 20.5 GiB free → the KV cache does not fit. */
static void t_verdicts(void **s)
{
    (void)s;
    plan_opts_t o;
    plan_gpu_t gpu = {"CUDA0", 20500};
    plan_t p;
    opts(&o, "-ngl 999 -c 262144 -np 1 -fa on -ctk q4_0 -ctv q4_0 -ub 256 -b 512");
    plan_predict(m35, &o, &gpu, 1, 100000, 512u << 20, &p);
    assert_int_equal(p.verdict, PLAN_NO_FIT);
    assert_int_equal(p.over_dev, 1);
    assert_string_equal(p.over_what, "weights");
    assert_true(p.n_suggest >= 2);
    bool ctx = false, moe = false;
    for (int i = 0; i < p.n_suggest; i++) {
        ctx |= strncmp(p.suggest[i], "-c ", 3) == 0;
        moe |= strncmp(p.suggest[i], "-ncmoe ", 7) == 0;
    }
    assert_true(ctx && moe);
    /* a 12 GB card: only expert offload or fewer layers can help */
    gpu.free_mib = 12020;
    opts(&o, "-ngl 999 -c 32768 -np 1 -fa on");
    plan_predict(m35, &o, &gpu, 1, 100000, 512u << 20, &p);
    assert_int_equal(p.verdict, PLAN_NO_FIT);
    moe = false;
    for (int i = 0; i < p.n_suggest; i++)
        moe |= strncmp(p.suggest[i], "-ncmoe ", 7) == 0;
    assert_true(moe);
    /* and the suggestion really fits */
    for (int i = 0; i < p.n_suggest; i++)
        if (!strncmp(p.suggest[i], "-ncmoe ", 7)) {
            plan_t q;
            plan_opts_t o2 = o;
            o2.ncmoe = atoi(p.suggest[i] + 7);
            plan_predict(m35, &o2, &gpu, 1, 100000, 512u << 20, &q);
            assert_int_equal(q.verdict, PLAN_FITS);
            o2.ncmoe--;
            plan_predict(m35, &o2, &gpu, 1, 100000, 512u << 20, &q);
            assert_int_equal(q.verdict, PLAN_NO_FIT); /* the cheapest one */
        }
}

static void t_bad_args(void **s)
{
    (void)s;
    plan_opts_t o;
    char err[256];
    char *a1[] = {"-ctk", "q9"};
    assert_int_not_equal(plan_opts_from_args(a1, 2, &o, err, sizeof err), 0);
    assert_non_null(strstr(err, "args[1]"));
    char *a2[] = {"-ts", "3,x"};
    assert_int_not_equal(plan_opts_from_args(a2, 2, &o, err, sizeof err), 0);
    assert_non_null(strstr(err, "-ts"));
    char *a3[] = {"--port", "9"};
    assert_int_not_equal(plan_opts_from_args(a3, 2, &o, err, sizeof err), 0);
    assert_non_null(strstr(err, "--port"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_fixture_full_gpu),
        cmocka_unit_test(t_fixture_defaults),
        cmocka_unit_test(t_placement),
        cmocka_unit_test(t_verdicts),
        cmocka_unit_test(t_bad_args),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
