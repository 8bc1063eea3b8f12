/*
 * test_args.c — llama-server argument vectors: every spelling of every
 * option in the table (b11669's --help), "--opt=value", last occurrence
 * wins, negative values, options Variet owns refused, missing and bad
 * values, and args_set's in-place replacement / removal / append.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define V(...) ((char *[]){__VA_ARGS__})
#define NV(...) (sizeof((char *[]){__VA_ARGS__}) / sizeof(char *))

/* check a literal vector; returns the bad index (-1: fine) and err */
#define CHECK(err, ...) args_check(V(__VA_ARGS__), NV(__VA_ARGS__), err, sizeof err)

static const struct {
    args_opt_t opt;
    const char *spell;
    const char *value; /* NULL: flag */
} spellings[] = {
    {ARG_CTX_SIZE, "-c", "4096"},
    {ARG_CTX_SIZE, "--ctx-size", "4096"},
    {ARG_BATCH, "-b", "2048"},
    {ARG_BATCH, "--batch-size", "2048"},
    {ARG_UBATCH, "-ub", "512"},
    {ARG_UBATCH, "--ubatch-size", "512"},
    {ARG_PARALLEL, "-np", "4"},
    {ARG_PARALLEL, "--parallel", "4"},
    {ARG_NGL, "-ngl", "99"},
    {ARG_NGL, "--gpu-layers", "99"},
    {ARG_NGL, "--n-gpu-layers", "99"},
    {ARG_TENSOR_SPLIT, "-ts", "3,1"},
    {ARG_TENSOR_SPLIT, "--tensor-split", "3,1"},
    {ARG_CACHE_K, "-ctk", "q8_0"},
    {ARG_CACHE_K, "--cache-type-k", "q8_0"},
    {ARG_CACHE_V, "-ctv", "q4_0"},
    {ARG_CACHE_V, "--cache-type-v", "q4_0"},
    {ARG_FLASH_ATTN, "-fa", "on"},
    {ARG_FLASH_ATTN, "--flash-attn", "auto"},
    {ARG_N_CPU_MOE, "-ncmoe", "10"},
    {ARG_N_CPU_MOE, "--n-cpu-moe", "10"},
    {ARG_CPU_MOE, "-cmoe", NULL},
    {ARG_CPU_MOE, "--cpu-moe", NULL},
    {ARG_THREADS, "-t", "8"},
    {ARG_THREADS, "--threads", "8"},
    {ARG_THREADS_BATCH, "-tb", "16"},
    {ARG_THREADS_BATCH, "--threads-batch", "16"},
    {ARG_MMPROJ, "-mm", "proj.gguf"},
    {ARG_MMPROJ, "--mmproj", "proj.gguf"},
    {ARG_NO_MMPROJ_OFFLOAD, "--no-mmproj-offload", NULL},
    {ARG_FIT, "-fit", "off"},
    {ARG_FIT, "--fit", "on"},
    {ARG_SPLIT_MODE, "-sm", "layer"},
    {ARG_SPLIT_MODE, "--split-mode", "row"},
    {ARG_MAIN_GPU, "-mg", "1"},
    {ARG_MAIN_GPU, "--main-gpu", "1"},
    {ARG_MLOCK, "--mlock", NULL},
    {ARG_NO_MMAP, "--no-mmap", NULL},
    {ARG_ALIAS, "-a", "chat"},
    {ARG_ALIAS, "--alias", "chat"},
    {ARG_LOAD_MODE, "-lm", "mmap+mlock"},
    {ARG_LOAD_MODE, "--load-mode", "none"},
    {ARG_DEVICE, "-dev", "CUDA0"},
    {ARG_DEVICE, "--device", "CUDA0,CUDA1"},
    {ARG_MMPROJ_DEVICE, "-mmdev", "CUDA1"},
    {ARG_MMPROJ_DEVICE, "--mmproj-device", "none"},
    {ARG_DRAFT_MODEL, "-md", "draft.gguf"},
    {ARG_DRAFT_MODEL, "--spec-draft-model", "draft.gguf"},
    {ARG_DRAFT_MODEL, "--model-draft", "draft.gguf"},
    {ARG_NGL_DRAFT, "-ngld", "99"},
    {ARG_NGL_DRAFT, "--spec-draft-ngl", "all"},
    {ARG_NGL_DRAFT, "--gpu-layers-draft", "auto"},
    {ARG_NGL_DRAFT, "--n-gpu-layers-draft", "0"},
    {ARG_DEVICE_DRAFT, "-devd", "none"},
    {ARG_DEVICE_DRAFT, "--spec-draft-device", "CUDA1"},
    {ARG_DEVICE_DRAFT, "--device-draft", "CUDA1"},
    {ARG_CACHE_K_DRAFT, "-ctkd", "q8_0"},
    {ARG_CACHE_K_DRAFT, "--spec-draft-type-k", "f16"},
    {ARG_CACHE_K_DRAFT, "--cache-type-k-draft", "q4_0"},
    {ARG_CACHE_V_DRAFT, "-ctvd", "q8_0"},
    {ARG_CACHE_V_DRAFT, "--spec-draft-type-v", "f16"},
    {ARG_CACHE_V_DRAFT, "--cache-type-v-draft", "q4_0"},
    {ARG_UBATCH_DRAFT, "--spec-draft-n-ubatch", "128"},
    {ARG_CTX_DRAFT, "-cd", "4096"},
    {ARG_CTX_DRAFT, "--ctx-size-draft", "4096"},
    {ARG_N_CPU_MOE_DRAFT, "-ncmoed", "2"},
    {ARG_N_CPU_MOE_DRAFT, "--spec-draft-n-cpu-moe", "2"},
    {ARG_N_CPU_MOE_DRAFT, "--spec-draft-ncmoe", "2"},
    {ARG_N_CPU_MOE_DRAFT, "--n-cpu-moe-draft", "2"},
    {ARG_CPU_MOE_DRAFT, "-cmoed", NULL},
    {ARG_CPU_MOE_DRAFT, "--spec-draft-cpu-moe", NULL},
    {ARG_CPU_MOE_DRAFT, "--cpu-moe-draft", NULL},
    {ARG_SPEC_TYPE, "--spec-type", "draft-simple"},
    {ARG_DRAFT_MAX, "--spec-draft-n-max", "8"},
    {ARG_DRAFT_MAX, "--draft-max", "8"},
    {ARG_DRAFT_MAX, "--draft-n", "8"},
    {ARG_DRAFT_MAX, "--draft", "8"},
    {ARG_CTX_CHECKPOINTS, "-ctxcp", "0"},
    {ARG_CTX_CHECKPOINTS, "--ctx-checkpoints", "0"},
    {ARG_CTX_CHECKPOINTS, "--swa-checkpoints", "8"},
    {ARG_FIT_TARGET, "-fitt", "256"},
    {ARG_FIT_TARGET, "--fit-target", "256,512"},
};

static void t_every_spelling(void **s)
{
    (void)s;
    char err[256];
    for (size_t i = 0; i < N(spellings); i++) {
        const char *sp = spellings[i].spell, *val = spellings[i].value;
        char *argv[5] = {"--verbose", (char *)sp, (char *)(val ? val : "--metrics"), "-lv", "4"};
        size_t n = 5;
        long at = args_find(argv, n, spellings[i].opt);
        if (val) {
            assert_int_equal(at, 2);
            assert_string_equal(args_get(argv, n, spellings[i].opt), val);
        } else {
            assert_int_equal(at, 1);
            assert_string_equal(args_get(argv, n, spellings[i].opt), sp);
        }
        if (args_check(argv, n, err, sizeof err) != -1)
            fail_msg("%s %s: %s", sp, val ? val : "", err);
        /* every other option is absent */
        for (int o = 0; o < ARG_COUNT; o++)
            if (o != (int)spellings[i].opt) {
                assert_int_equal(args_find(argv, n, (args_opt_t)o), -1);
                assert_null(args_get(argv, n, (args_opt_t)o));
            }
    }
    /* every option of the table is covered above (owned ones below) */
    for (int o = 0; o < ARG_MODEL; o++) {
        bool seen = false;
        for (size_t i = 0; i < N(spellings); i++)
            seen |= spellings[i].opt == (args_opt_t)o;
        if (!seen)
            fail_msg("option %s has no spelling test", args_name((args_opt_t)o));
    }
}

static void t_equals_form(void **s)
{
    (void)s;
    char *argv[] = {"--ctx-size=8192", "-ub=256", "--cache-type-k=q4_0", "-ngl=auto"};
    long v;
    char err[128];
    assert_int_equal(args_find(argv, N(argv), ARG_CTX_SIZE), 0);
    assert_string_equal(args_get(argv, N(argv), ARG_CTX_SIZE), "8192");
    assert_true(args_get_long(argv, N(argv), ARG_UBATCH, &v));
    assert_int_equal(v, 256);
    assert_string_equal(args_get(argv, N(argv), ARG_CACHE_K), "q4_0");
    assert_string_equal(args_get(argv, N(argv), ARG_NGL), "auto");
    assert_false(args_get_long(argv, N(argv), ARG_NGL, &v)); /* not an integer */
    assert_false(args_get_long(argv, N(argv), ARG_BATCH, &v)); /* absent */
    assert_int_equal(args_check(argv, N(argv), err, sizeof err), -1);
    /* an empty value after '=' is a value, and not an integer */
    assert_int_equal(CHECK(err, "-c="), 0);
    assert_string_equal(err, "-c: '' is not an integer");
    /* a flag with a value is refused */
    assert_int_equal(CHECK(err, "-c", "1", "--cpu-moe=1"), 2);
    assert_string_equal(err, "--cpu-moe takes no value");
}

static void t_last_wins(void **s)
{
    (void)s;
    char *argv[] = {"-c", "4096", "--flash-attn", "on", "--ctx-size", "8192", "-fa", "off",
                    "--ctx-size=16384", "-ngl", "10"};
    long v;
    assert_int_equal(args_find(argv, N(argv), ARG_CTX_SIZE), 8);
    assert_true(args_get_long(argv, N(argv), ARG_CTX_SIZE, &v));
    assert_int_equal(v, 16384);
    assert_int_equal(args_find(argv, N(argv), ARG_FLASH_ATTN), 7);
    assert_string_equal(args_get(argv, N(argv), ARG_FLASH_ATTN), "off");
    assert_int_equal(args_find(argv, N(argv), ARG_NGL), 10);
}

static void t_negative_values(void **s)
{
    (void)s;
    char *argv[] = {"-np", "-1", "-t", "-1", "--seed", "-1", "-c", "0"};
    long v;
    char err[128];
    assert_int_equal(args_check(argv, N(argv), err, sizeof err), -1);
    assert_int_equal(args_find(argv, N(argv), ARG_PARALLEL), 1);
    assert_true(args_get_long(argv, N(argv), ARG_PARALLEL, &v));
    assert_int_equal(v, -1);
    assert_true(args_get_long(argv, N(argv), ARG_THREADS, &v));
    assert_int_equal(v, -1);
    assert_true(args_get_long(argv, N(argv), ARG_CTX_SIZE, &v));
    assert_int_equal(v, 0);
}

static void t_passthrough(void **s)
{
    (void)s;
    char err[128];
    /* unknown options and their values (even ones looking odd) pass */
    char *argv[] = {"--temp", "0.7", "--override-kv", "a=int:1", "positional", "--jinja",
                    "--reasoning-format", "none", "-n", "-1", "-c", "1024"};
    assert_int_equal(args_check(argv, N(argv), err, sizeof err), -1);
    assert_string_equal(args_get(argv, N(argv), ARG_CTX_SIZE), "1024");
    /* an unknown option's value that spells a known option is read as one */
    char *argv2[] = {"--reverse-prompt", "-c", "1"};
    assert_string_equal(args_get(argv2, N(argv2), ARG_CTX_SIZE), "1");
    assert_int_equal(args_check(NULL, 0, err, sizeof err), -1);
}

static void t_owned_refused(void **s)
{
    (void)s;
    char err[128];
    assert_int_equal(CHECK(err, "-c", "1", "--port", "8080"), 2);
    assert_string_equal(err, "--port is set by variet (remove it)");
    assert_int_equal(CHECK(err, "--port=8080"), 0);
    assert_string_equal(err, "--port is set by variet (remove it)");
    assert_int_equal(CHECK(err, "-m", "x.gguf"), 0);
    assert_string_equal(err, "-m is set by variet (remove it)");
    assert_int_equal(CHECK(err, "--model", "x.gguf"), 0);
    assert_string_equal(err, "--model is set by variet (remove it)");
    assert_int_equal(CHECK(err, "-ngl", "99", "--host", "0.0.0.0"), 2);
    assert_string_equal(err, "--host is set by variet (remove it)");
    assert_int_equal(CHECK(err, "--models-dir", "/m"), 0);
    assert_string_equal(err, "--models-dir is set by variet (remove it)");
    assert_int_equal(CHECK(err, "--models-preset", "p.ini"), 0);
    assert_string_equal(err, "--models-preset is set by variet (remove it)");
    assert_int_equal(CHECK(err, "--api-key", "k"), 0);
    assert_string_equal(err, "--api-key is set by variet (remove it)");
    /* also without a value; a known option never swallows it as its value */
    assert_int_equal(CHECK(err, "--api-key"), 0);
    assert_int_equal(CHECK(err, "-c", "--port", "1"), 0);
    assert_string_equal(err, "-c needs a value");
    /* but not as the value of an unknown option ... unless it spells one */
    assert_int_equal(CHECK(err, "--temp", "--port"), 1);
}

static void t_missing_value(void **s)
{
    (void)s;
    char err[128];
    assert_int_equal(CHECK(err, "-ngl", "99", "-c"), 2);
    assert_string_equal(err, "-c needs a value");
    assert_int_equal(CHECK(err, "--cache-type-k"), 0);
    assert_string_equal(err, "--cache-type-k needs a value");
    assert_int_equal(CHECK(err, "-fa", "-c", "10"), 0); /* b11669's -fa takes a value */
    assert_string_equal(err, "-fa needs a value");
    assert_int_equal(CHECK(err, "-a", "--cpu-moe"), 0);
    assert_string_equal(err, "-a needs a value");
    /* an occurrence without its value does not count */
    char *argv[] = {"-c", "1024", "-c"};
    assert_int_equal(args_find(argv, N(argv), ARG_CTX_SIZE), 1);
}

static void t_bad_values(void **s)
{
    (void)s;
    char err[256];
    assert_int_equal(CHECK(err, "-c", "1024", "-ub", "abc"), 3);
    assert_string_equal(err, "-ub: 'abc' is not an integer");
    assert_int_equal(CHECK(err, "--ctx-size", "4k"), 1);
    assert_string_equal(err, "--ctx-size: '4k' is not an integer");
    assert_int_equal(CHECK(err, "-b", " 12"), 1);
    assert_int_equal(CHECK(err, "-np", "1.5"), 1);
    assert_int_equal(CHECK(err, "-t", "99999999999"), 1);
    assert_int_equal(CHECK(err, "-tb", ""), 1);
    assert_int_equal(CHECK(err, "-ncmoe", "x"), 1);
    assert_int_equal(CHECK(err, "-mg", "gpu0"), 1);
    assert_int_equal(CHECK(err, "-ngl", "most"), 1);
    assert_string_equal(err, "-ngl: 'most' is not an integer (or auto, all)");
    assert_int_equal(CHECK(err, "-ngl", "all", "-ngl", "auto", "-ngl", "-1"), -1);

    assert_int_equal(CHECK(err, "-ctk", "q8"), 1);
    assert_string_equal(err, "-ctk: 'q8' is not a cache type "
                             "(one of f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1)");
    assert_int_equal(CHECK(err, "--cache-type-v=Q8_0"), 0);
    assert_string_equal(err, "--cache-type-v: 'Q8_0' is not a cache type "
                             "(one of f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1)");
    const char *types[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"};
    for (size_t i = 0; i < N(types); i++) {
        char *argv[] = {"-ctk", (char *)types[i], "-ctv", (char *)types[i]};
        assert_int_equal(args_check(argv, 4, err, sizeof err), -1);
    }

    assert_int_equal(CHECK(err, "-fa", "yes"), 1);
    assert_string_equal(err, "-fa: 'yes' is not a value (one of on, off, auto)");
    assert_int_equal(CHECK(err, "-fit", "auto"), 1);
    assert_string_equal(err, "-fit: 'auto' is not a value (one of on, off)");
    assert_int_equal(CHECK(err, "-sm", "rows"), 1);
    assert_string_equal(err, "-sm: 'rows' is not a split mode (one of none, layer, row, tensor)");
    assert_int_equal(CHECK(err, "-lm", "mmap,mlock"), 1);
    assert_int_equal(CHECK(err, "-ts", "3,,1"), 1);
    assert_string_equal(err, "-ts: '3,,1' is not a list of proportions like 3,1");
    assert_int_equal(CHECK(err, "-ts", "-1,1"), 1);
    assert_int_equal(CHECK(err, "-ts", "1,"), 1);
    assert_int_equal(CHECK(err, "-ts", "0.6/0.4", "-ts", "1", "-ts", "1,0,2"), -1);

    /* long junk values are cut in the message */
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    char *argv[] = {"-c", big};
    assert_int_equal(args_check(argv, 2, err, sizeof err), 1);
    assert_true(strlen(err) < 100);
    /* a tiny buffer is still terminated */
    char small[8];
    assert_int_equal(CHECK(small, "-c", "abc"), 1);
    assert_int_equal(strlen(small), 7);
}

static void expect_vec(char **got, size_t n, char *const *want, size_t wn)
{
    assert_int_equal(n, wn);
    for (size_t i = 0; i < wn; i++)
        assert_string_equal(got[i], want[i]);
    assert_null(got[n]);
}

static void t_set(void **s)
{
    (void)s;
    size_t n;
    char **v;
    char *argv[] = {"-c", "4096", "--temp", "0.5", "--ctx-size=2048", "-fa", "on", "--cpu-moe"};

    /* the last occurrence is replaced in place, earlier ones dropped */
    v = args_set(argv, N(argv), ARG_CTX_SIZE, "8192", &n);
    expect_vec(v, n, V("--temp", "0.5", "--ctx-size=8192", "-fa", "on", "--cpu-moe"), 6);
    args_free(&v);
    assert_null(v);

    v = args_set(argv, N(argv), ARG_FLASH_ATTN, "off", &n);
    expect_vec(v, n, V("-c", "4096", "--temp", "0.5", "--ctx-size=2048", "-fa", "off", "--cpu-moe"),
               8);
    args_free(&v);

    /* absent: appended with the canonical spelling */
    v = args_set(argv, N(argv), ARG_UBATCH, "256", &n);
    expect_vec(v, n,
               V("-c", "4096", "--temp", "0.5", "--ctx-size=2048", "-fa", "on", "--cpu-moe",
                 "--ubatch-size", "256"),
               10);
    args_free(&v);

    /* removal, values included */
    v = args_set(argv, N(argv), ARG_CTX_SIZE, NULL, &n);
    expect_vec(v, n, V("--temp", "0.5", "-fa", "on", "--cpu-moe"), 5);
    args_free(&v);

    /* flags */
    v = args_set(argv, N(argv), ARG_CPU_MOE, NULL, &n);
    expect_vec(v, n, V("-c", "4096", "--temp", "0.5", "--ctx-size=2048", "-fa", "on"), 7);
    args_free(&v);
    v = args_set(argv, N(argv), ARG_NO_MMAP, "", &n);
    assert_int_equal(n, 9);
    assert_string_equal(v[8], "--no-mmap");
    args_free(&v);
    v = args_set(argv, N(argv), ARG_CPU_MOE, "yes", &n);
    expect_vec(v, n, argv, N(argv));
    args_free(&v);

    /* empty input */
    v = args_set(NULL, 0, ARG_NGL, "99", NULL);
    expect_vec(v, 2, V("--n-gpu-layers", "99"), 2);
    args_free(&v);
    args_free(&v); /* NULL-safe */

    assert_string_equal(args_name(ARG_UBATCH), "--ubatch-size");
    assert_string_equal(args_name(ARG_NGL), "--n-gpu-layers");
    assert_string_equal(args_name(ARG_API_KEY), "--api-key");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_every_spelling), cmocka_unit_test(t_equals_form),
        cmocka_unit_test(t_last_wins),      cmocka_unit_test(t_negative_values),
        cmocka_unit_test(t_passthrough),    cmocka_unit_test(t_owned_refused),
        cmocka_unit_test(t_missing_value),  cmocka_unit_test(t_bad_values),
        cmocka_unit_test(t_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
