/*
 * test_hw.c — hardware probe: nvidia-smi CSV on the recorded H100 output
 * (tests/fixtures/gpu, copied from ../shared/fixtures) and on crafted text (no header, other column
 * order, [N/A] values, malformed lines), /proc/meminfo, the PCIe bandwidth
 * table, the link warnings, hw_probe through its VARIET_HW_SMI_CSV override
 * and `variet hw` end to end through the same override.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hw.h"
#include "util.h"

#define NEAR(a, b) assert_true(fabs((a) - (b)) < 1e-3)

/* The path of a recorded fixture (static storage: nothing to free, so a
 * missing file fails the test with a message and leaks nothing). */
static const char *fixture(const char *rel)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/gpu/%s", VARIET_FIXTURES, rel);
    if (access(path, R_OK) != 0)
        fail_msg("missing fixture %s: %s (tests/fixtures is part of the repository)", path, strerror(errno));
    return path;
}

static int parse(const char *csv, hw_info_t *hw, char *err, size_t errlen)
{
    hw_info_init(hw);
    err[0] = 0;
    return hw_parse_smi_csv(csv, strlen(csv), hw, err, errlen);
}

static int warnings(const hw_info_t *hw, hw_warn_t *w)
{
    return hw_warnings(hw, w, HW_MAX_WARN);
}

static void t_fixture_h100(void **s)
{
    (void)s;
    const char *path = fixture("h100-x1/nvidia-smi-query.csv");
    char *text = NULL, err[256];
    size_t len;
    int rc = file_read_all(path, 1 << 20, &text, &len, err, sizeof err);
    if (rc)
        fail_msg("fixture: %s", err);
    hw_info_t hw;
    hw_info_init(&hw);
    rc = hw_parse_smi_csv(text, len, &hw, err, sizeof err);
    free(text);
    assert_int_equal(rc, 0);
    assert_int_equal(hw.n_gpu, 1);
    const hw_gpu_t *g = &hw.gpu[0];
    assert_int_equal(g->index, 0);
    assert_string_equal(g->name, "NVIDIA H100 80GB HBM3");
    assert_int_equal(g->mem_total_mib, 81559);
    assert_int_equal(g->mem_used_mib, 0);
    assert_int_equal(g->mem_free_mib, 81079);
    assert_int_equal(g->gen_cur, 5);
    assert_int_equal(g->gen_max, 5);
    assert_int_equal(g->width_cur, 16);
    assert_int_equal(g->width_max, 16);
    NEAR(hw_pcie_gbps(g->gen_max, g->width_max), 63.008);
    hw_warn_t w[HW_MAX_WARN];
    assert_int_equal(warnings(&hw, w), 0);
}

/* `noheader,nounits`: HW_SMI_FIELDS order. */
static void t_noheader(void **s)
{
    (void)s;
    hw_info_t hw;
    char err[256];
    assert_int_equal(parse("0, NVIDIA H100 80GB HBM3, 81559, 0, 81079, 5, 16, 5, 16\n"
                           "1, NVIDIA H100 80GB HBM3, 81559, 1024, 80055, 4, 8, 5, 16\r\n",
                           &hw, err, sizeof err),
                     0);
    assert_int_equal(hw.n_gpu, 2);
    assert_int_equal(hw.gpu[1].index, 1);
    assert_int_equal(hw.gpu[1].mem_used_mib, 1024);
    assert_int_equal(hw.gpu[1].mem_free_mib, 80055);
    assert_int_equal(hw.gpu[1].gen_cur, 4);
    assert_int_equal(hw.gpu[1].width_cur, 8);
    assert_int_equal(hw.gpu[1].gen_max, 5);
    assert_int_equal(hw.gpu[1].width_max, 16);
}

/* A header in another column order (and an extra column) is followed by name. */
static void t_header_other_order(void **s)
{
    (void)s;
    hw_info_t hw;
    char err[256];
    assert_int_equal(parse("index, name, memory.total [MiB], memory.used [MiB], memory.free [MiB], "
                           "pcie.link.gen.current, pcie.link.gen.max, pcie.link.width.current, "
                           "pcie.link.width.max, temperature.gpu\n"
                           "3, Tesla T4, 15360 MiB, 5 MiB, 14930 MiB, 1, 3, 16, 16, 41\n",
                           &hw, err, sizeof err),
                     0);
    assert_int_equal(hw.n_gpu, 1);
    const hw_gpu_t *g = &hw.gpu[0];
    assert_int_equal(g->index, 3);
    assert_string_equal(g->name, "Tesla T4");
    assert_int_equal(g->mem_total_mib, 15360);
    assert_int_equal(g->gen_cur, 1);
    assert_int_equal(g->gen_max, 3);
    assert_int_equal(g->width_cur, 16);
    assert_int_equal(g->width_max, 16);
}

static void t_bandwidth(void **s)
{
    (void)s;
    NEAR(hw_pcie_lane_gbps(1), 0.25);
    NEAR(hw_pcie_lane_gbps(2), 0.5);
    NEAR(hw_pcie_lane_gbps(3), 0.985);
    NEAR(hw_pcie_lane_gbps(4), 1.969);
    NEAR(hw_pcie_lane_gbps(5), 3.938);
    NEAR(hw_pcie_lane_gbps(6), 7.563);
    NEAR(hw_pcie_gbps(3, 4), 3.94);
    NEAR(hw_pcie_gbps(4, 16), 31.504);
    NEAR(hw_pcie_gbps(0, 16), 0);
    NEAR(hw_pcie_gbps(7, 16), 0);
    NEAR(hw_pcie_gbps(4, 0), 0);
}

/* Gen3 x4 beside Gen4 x16: one eighth of the bandwidth. */
static void t_links_differ(void **s)
{
    (void)s;
    hw_info_t hw;
    char err[256];
    assert_int_equal(parse("0, NVIDIA GeForce RTX 4090, 24564, 300, 23900, 4, 16, 4, 16\n"
                           "1, NVIDIA GeForce RTX 3090, 24576, 300, 23900, 3, 4, 3, 4\n",
                           &hw, err, sizeof err),
                     0);
    hw_warn_t w[HW_MAX_WARN];
    assert_int_equal(warnings(&hw, w), 1);
    assert_int_equal(w[0].kind, HW_WARN_LINKS_DIFFER);
    assert_int_equal(w[0].gpu[0], 1);
    assert_int_equal(w[0].gpu[1], 0);
    assert_non_null(strstr(w[0].text, "GPU 1 link Gen3 x4 = 3.94 GB/s"));
    assert_non_null(strstr(w[0].text, "GPU 0 Gen4 x16 = 31.5 GB/s"));
    assert_non_null(strstr(w[0].text, "(1/8)"));
    assert_non_null(strstr(w[0].text, "split"));

    /* capped: no overflow of the caller's array */
    assert_int_equal(hw_warnings(&hw, w, 0), 0);
}

/* Idle H100: Gen1 now, Gen4 at most; same width. Also a narrowed link. */
static void t_below_max(void **s)
{
    (void)s;
    hw_info_t hw;
    char err[256];
    assert_int_equal(parse("0, NVIDIA A100-PCIE-40GB, 40960, 0, 40326, 1, 16, 4, 16\n", &hw, err, sizeof err), 0);
    hw_warn_t w[HW_MAX_WARN];
    assert_int_equal(warnings(&hw, w), 1);
    assert_int_equal(w[0].kind, HW_WARN_LINK_BELOW_MAX);
    assert_int_equal(w[0].gpu[0], 0);
    assert_non_null(strstr(w[0].text, "GPU 0 link runs at Gen1 x16"));
    assert_non_null(strstr(w[0].text, "(max Gen4 x16"));
    assert_non_null(strstr(w[0].text, "idle GPUs lower their link speed — check under load"));

    assert_int_equal(parse("0, GPU A, 40960, 0, 40326, 4, 8, 4, 16\n", &hw, err, sizeof err), 0);
    assert_int_equal(warnings(&hw, w), 1);
    assert_non_null(strstr(w[0].text, "GPU 0 link runs at Gen4 x8"));
    assert_non_null(strstr(w[0].text, "slot"));
    assert_null(strstr(w[0].text, "idle"));

    /* Two identical GPUs, one idle: the comparison uses the maximum, so
     * only the below-max warning, not "links differ". */
    assert_int_equal(parse("0, GPU A, 40960, 0, 40326, 1, 16, 4, 16\n"
                           "1, GPU A, 40960, 9000, 31326, 4, 16, 4, 16\n",
                           &hw, err, sizeof err),
                     0);
    assert_int_equal(warnings(&hw, w), 1);
    assert_int_equal(w[0].kind, HW_WARN_LINK_BELOW_MAX);
}

static void t_na_values(void **s)
{
    (void)s;
    hw_info_t hw;
    char err[256];
    assert_int_equal(parse("index, name, memory.total [MiB], memory.used [MiB], memory.free [MiB], "
                           "pcie.link.gen.current, pcie.link.width.current, pcie.link.gen.max, "
                           "pcie.link.width.max\n"
                           "0, NVIDIA GH200 480GB, 97871 MiB, [N/A], [N/A], [Not Supported], [Not Supported], "
                           "N/A, [Unknown Error]\n"
                           "1, NVIDIA H100 80GB HBM3, 81559 MiB, 0 MiB, 81079 MiB, 5, 16, 5, 16\n",
                           &hw, err, sizeof err),
                     0);
    assert_int_equal(hw.n_gpu, 2);
    const hw_gpu_t *g = &hw.gpu[0];
    assert_int_equal(g->mem_total_mib, 97871);
    assert_int_equal(g->mem_used_mib, -1);
    assert_int_equal(g->mem_free_mib, -1);
    assert_int_equal(g->gen_cur, 0);
    assert_int_equal(g->width_cur, 0);
    assert_int_equal(g->gen_max, 0);
    assert_int_equal(g->width_max, 0);
    NEAR(hw_pcie_gbps(g->gen_cur, g->width_cur), 0);
    /* unknown links warn about nothing */
    hw_warn_t w[HW_MAX_WARN];
    assert_int_equal(warnings(&hw, w), 0);
}

static void t_malformed(void **s)
{
    (void)s;
    hw_info_t hw;
    char err[256];
    /* too few fields: the line number and the line */
    assert_int_equal(parse("0, GPU A, 40960, 0, 40326, 4, 16, 4, 16\n1, GPU B, 40960\n", &hw, err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "line 2"));
    assert_non_null(strstr(err, "expected 9 fields"));
    assert_non_null(strstr(err, "1, GPU B, 40960"));
    assert_int_equal(hw.n_gpu, 0);

    /* a word where a number goes: line and column */
    assert_int_equal(parse("0, GPU A, lots, 0, 40326, 4, 16, 4, 16\n", &hw, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "line 1"));
    assert_non_null(strstr(err, "memory.total"));
    assert_non_null(strstr(err, "'lots'"));

    /* out of range */
    assert_int_equal(parse("0, GPU A, 40960, 0, 40326, 99, 16, 4, 16\n", &hw, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "pcie.link.gen.current"));
    assert_int_equal(parse("0, GPU A, -5, 0, 40326, 4, 16, 4, 16\n", &hw, err, sizeof err), -EINVAL);

    /* nvidia-smi's own complaint is not CSV */
    assert_int_equal(parse("No devices were found\n", &hw, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "line 1"));
    assert_non_null(strstr(err, "No devices were found"));

    /* header, then a line of the wrong width (line 3: blank line 2 counts) */
    assert_int_equal(parse("index, name\n\n0, A, B\n", &hw, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "line 3"));

    /* an index that is not a number */
    assert_int_equal(parse("[N/A], GPU A, 1, 0, 1, 4, 16, 4, 16\n", &hw, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "index"));

    /* a very long line and embedded NUL */
    char *big = xmalloc(4000);
    memset(big, 'a', 3999);
    big[3999] = 0;
    assert_int_equal(parse(big, &hw, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "line 1"));
    free(big);
    hw_info_init(&hw);
    assert_int_equal(hw_parse_smi_csv("0, A\0, 1", 8, &hw, err, sizeof err), -EINVAL);

    /* many commas: no overflow of the field array */
    assert_int_equal(parse("0,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,\n", &hw, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "more than"));

    /* empty output, header only: no GPU, no error */
    assert_int_equal(parse("", &hw, err, sizeof err), 0);
    assert_int_equal(hw.n_gpu, 0);
    assert_int_equal(parse("index, name, memory.total [MiB]\n", &hw, err, sizeof err), 0);
    assert_int_equal(hw.n_gpu, 0);
}

static void t_meminfo(void **s)
{
    (void)s;
    hw_info_t hw;
    char err[256];
    const char *mi = "MemTotal:       131891452 kB\n"
                     "MemFree:        100000000 kB\n"
                     "MemAvailable:   125000000 kB\n"
                     "Buffers:          123456 kB\n";
    hw_info_init(&hw);
    assert_int_equal(hw_parse_meminfo(mi, strlen(mi), &hw, err, sizeof err), 0);
    assert_int_equal(hw.ram_total_mib, 131891452 / 1024);
    assert_int_equal(hw.ram_avail_mib, 125000000 / 1024);

    const char *old = "MemTotal: 2048 kB\nMemFree: 1024 kB\n";
    assert_int_equal(hw_parse_meminfo(old, strlen(old), &hw, err, sizeof err), 0);
    assert_int_equal(hw.ram_total_mib, 2);
    assert_int_equal(hw.ram_avail_mib, 1);

    const char *none = "MemFree: 1024 kB\n";
    assert_int_equal(hw_parse_meminfo(none, strlen(none), &hw, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "MemTotal is missing"));
    const char *bad = "MemTotal: lots kB\n";
    assert_int_equal(hw_parse_meminfo(bad, strlen(bad), &hw, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "MemTotal"));
    /* a prefix of the key is not the key */
    const char *pre = "MemTotalX: 5 kB\n";
    assert_int_equal(hw_parse_meminfo(pre, strlen(pre), &hw, err, sizeof err), -EINVAL);
}

static void t_cpulist(void **s)
{
    (void)s;
    assert_int_equal(hw_parse_cpulist("0-15"), 16);
    assert_int_equal(hw_parse_cpulist("\t0-15,32-47"), 32);
    assert_int_equal(hw_parse_cpulist("3"), 1);
    assert_int_equal(hw_parse_cpulist("0,2,4-5"), 4);
    assert_int_equal(hw_parse_cpulist(""), 0);
    assert_int_equal(hw_parse_cpulist("5-3"), -EINVAL);
    assert_int_equal(hw_parse_cpulist("a"), -EINVAL);
    assert_int_equal(hw_parse_cpulist("1-"), -EINVAL);
    assert_int_equal(hw_parse_cpulist("1;2"), -EINVAL);
}

static void t_probe_override(void **s)
{
    (void)s;
    const char *path = fixture("h100-x1/nvidia-smi-query.csv");
    char err[512];
    hw_info_t hwv, *hw = &hwv;
    setenv("VARIET_HW_SMI_CSV", path, 1);
    assert_int_equal(hw_probe(hw, err, sizeof err), 0);
    assert_int_equal(hw->source, HW_SRC_SMI);
    assert_string_equal(hw_source_name(hw->source), "nvidia-smi");
    assert_int_equal(hw->n_gpu, 1);
    assert_int_equal(hw->gpu[0].mem_free_mib, 81079);
    assert_non_null(strstr(hw->note, "VARIET_HW_SMI_CSV"));
    assert_true(hw->host_cpus > 0);
    assert_true(hw->ram_total_mib > 0);

    setenv("VARIET_HW_SMI_CSV", "/nonexistent/variet-hw.csv", 1);
    assert_true(hw_probe(hw, err, sizeof err) < 0);
    assert_non_null(strstr(err, "variet-hw.csv"));

    char tmp[] = "/tmp/variet-test-hw-XXXXXX";
    int fd = mkstemp(tmp);
    assert_true(fd >= 0);
    const char *bad = "0, GPU A, 1\n";
    assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    setenv("VARIET_HW_SMI_CSV", tmp, 1);
    assert_int_equal(hw_probe(hw, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "line 1"));
    unlink(tmp);
    unsetenv("VARIET_HW_SMI_CSV");

    /* whatever this machine has: never an error without the override */
    setenv("VARIET_HW_NO_NVML", "1", 1);
    assert_int_equal(hw_probe(hw, err, sizeof err), 0);
    assert_non_null(strstr(hw->note, "VARIET_HW_NO_NVML"));
    unsetenv("VARIET_HW_NO_NVML");
}

/* `variet hw --json` (and text) through the override; exit codes. */
static int run_variet(const char *env, const char *args, char **out)
{
    char *cmd = xasprintf("%s '%s' %s 2>&1", env, VARIET_BINARY, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    buf_t b;
    buf_init(&b, 0);
    buf_append(&b, "", 0);
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, p)) > 0)
        buf_append(&b, tmp, n);
    int st = pclose(p);
    free(cmd);
    *out = b.data;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void t_cli(void **s)
{
    (void)s;
    if (access(VARIET_BINARY, X_OK) != 0)
        skip();
    const char *path = fixture("h100-x1/nvidia-smi-query.csv");
    char *env = xasprintf("VARIET_HW_SMI_CSV='%s'", path), *out;
    assert_int_equal(run_variet(env, "hw --json", &out), 0);
    json_error_t je;
    json_t *o = json_loads(out, 0, &je);
    if (!o)
        fail_msg("hw --json: %s: %s", je.text, out);
    assert_string_equal(json_string_value(json_object_get(o, "source")), "nvidia-smi");
    json_t *g = json_array_get(json_object_get(o, "gpus"), 0);
    assert_int_equal(json_integer_value(json_object_get(g, "memory_total_mib")), 81559);
    json_t *p = json_object_get(g, "pcie");
    assert_int_equal(json_integer_value(json_object_get(p, "gen_max")), 5);
    NEAR(json_real_value(json_object_get(p, "gbps_max")), 63.008);
    assert_int_equal(json_array_size(json_object_get(o, "warnings")), 0);
    assert_true(json_integer_value(json_object_get(json_object_get(o, "host"), "cpus")) > 0);
    json_decref(o);
    free(out);

    assert_int_equal(run_variet(env, "hw", &out), 0);
    assert_non_null(strstr(out, "source   nvidia-smi"));
    assert_non_null(strstr(out, "NVIDIA H100 80GB HBM3"));
    assert_non_null(strstr(out, "Gen5 x16"));
    assert_non_null(strstr(out, "63.0 GB/s"));
    free(out);

    assert_int_equal(run_variet(env, "hw --bogus", &out), 2);
    free(out);
    free(env);
    assert_int_equal(run_variet("VARIET_HW_SMI_CSV=/nonexistent/x.csv", "hw", &out), 2);
    assert_non_null(strstr(out, "variet hw:"));
    free(out);
    /* no override: exit 0 whatever the machine has */
    assert_int_equal(run_variet("VARIET_HW_NO_NVML=1", "hw", &out), 0);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_fixture_h100), cmocka_unit_test(t_noheader),     cmocka_unit_test(t_header_other_order),
        cmocka_unit_test(t_bandwidth),    cmocka_unit_test(t_links_differ), cmocka_unit_test(t_below_max),
        cmocka_unit_test(t_na_values),    cmocka_unit_test(t_malformed),    cmocka_unit_test(t_meminfo),
        cmocka_unit_test(t_cpulist),
        cmocka_unit_test(t_probe_override), cmocka_unit_test(t_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
