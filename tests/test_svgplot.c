/*
 * test_svgplot.c — the SVG plots (svgplot) and the tuner's plots from
 * recorded H200 histories (tune_plot): ticks, escaping, axes, points where
 * the data puts them, empty plots, the retuning log's files and links
 * (tune_report_write). The fixtures' plots are also written into the build
 * folder (svgplot-*.svg) for a person to look at.
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

#include "svgplot.h"
#include "tune.h"
#include "tune_plot.h"
#include "util.h"

static size_t count(const char *s, const char *needle)
{
    size_t n = 0, k = strlen(needle);
    for (const char *p = s; (p = strstr(p, needle)); p += k)
        n++;
    return n;
}

static void t_ticks(void **st)
{
    (void)st;
    double t[16];
    int n = svgplot_ticks(0, 97.3, 5, t, 16);
    assert_int_equal(n, 5);
    assert_true(t[0] == 0 && t[1] == 20 && t[4] == 80);
    n = svgplot_ticks(0, 6774, 5, t, 16);
    assert_true(n >= 4 && t[1] == 2000);
    n = svgplot_ticks(0.5, 3.5, 8, t, 16);
    assert_true(t[0] == 0.5 && t[1] == 1.0);
    assert_int_equal(svgplot_ticks(1, 1, 5, t, 16), 0);
    assert_int_equal(svgplot_ticks(NAN, 1, 5, t, 16), 0);
    assert_int_equal(svgplot_ticks(0, 1e9, 5, t, 2), 2); /* capped */
}

static void t_escape(void **st)
{
    (void)st;
    buf_t b;
    buf_init(&b, 0);
    buf_append(&b, "", 0);
    svgplot_escape(&b, "a<b>&\"c'\x01\x7f" "d");
    assert_string_equal(b.data, "a&lt;b&gt;&amp;&quot;c&#39;d");
    buf_free(&b);

    double x[2] = {1, 2}, y[2] = {3, 4};
    svgplot_series_t s = {.name = "<script>alert(1)</script>", .x = x, .y = y, .n = 2, .color = "red\" onload=\"x"};
    svgplot_t p = {.title = "t & <u>", .xlabel = "x", .ylabel = "y", .series = &s, .n_series = 1};
    char *svg = svgplot_render(&p);
    assert_null(strstr(svg, "<script"));
    assert_null(strstr(svg, "onload="));
    assert_non_null(strstr(svg, "&lt;script&gt;"));
    assert_non_null(strstr(svg, "<title>t &amp; &lt;u&gt;</title>"));
    assert_non_null(strstr(svg, "fill=\"redonloadx\"")); /* only [#0-9a-zA-Z] of a color */
    free(svg);
}

/* The y pixel of a circle at cx (the first one found), or NAN. */
static double circle_y(const char *svg, double cx)
{
    char want[64];
    snprintf(want, sizeof want, "<circle cx=\"%.1f\" cy=\"", cx);
    const char *p = strstr(svg, want);
    return p ? strtod(p + strlen(want), NULL) : NAN;
}

static void t_geometry(void **st)
{
    (void)st;
    /* a 720x360 frame: left 64, right 696 (no right axis), top 62, bottom 312 */
    double x[3] = {1, 2, 3}, y[3] = {0, 50, 100};
    svgplot_series_t s = {.name = "a", .x = x, .y = y, .n = 3, .line = true};
    svgplot_t p = {.title = "g", .xlabel = "x", .ylabel = "y", .series = &s, .n_series = 1};
    char *svg = svgplot_render(&p);
    assert_int_equal(count(svg, "<circle"), 4); /* three points and the legend's */
    /* y 0 on the floor, 100 at the top (the top tick is 100) */
    double xs = 64 + (1 - 0.92) / (3.08 - 0.92) * (696 - 64);
    assert_true(fabs(circle_y(svg, round(xs * 10) / 10) - 312) < 0.11);
    double x3 = 64 + (3 - 0.92) / (3.08 - 0.92) * (696 - 64);
    assert_true(fabs(circle_y(svg, round(x3 * 10) / 10) - 62) < 0.11);
    assert_non_null(strstr(svg, ">100</text>"));
    assert_non_null(strstr(svg, "<path fill=\"none\""));
    free(svg);

    /* NaN points are skipped; a right axis appears when a series uses it */
    double y2[3] = {NAN, 2000, 6774};
    svgplot_series_t two[2] = {{.name = "gen", .x = x, .y = y, .n = 3}, {.name = "pp", .x = x, .y = y2, .n = 3, .axis = 1}};
    svgplot_t q = {.title = "g", .series = two, .n_series = 2, .y2label = "prefill"};
    svg = svgplot_render(&q);
    assert_int_equal(count(svg, "<circle"), 3 + 2 + 2);
    assert_non_null(strstr(svg, ">8000</text>")); /* right axis top */
    assert_non_null(strstr(svg, "rotate(90)"));
    free(svg);

    /* powers of two on x: one tick each, labelled 32K ... */
    double c[3] = {32768, 65536, 262144}, g[3] = {97, 95, 80};
    svgplot_series_t sc = {.name = "ctx", .x = c, .y = g, .n = 3};
    svgplot_t r = {.title = "f", .xlog2 = true, .series = &sc, .n_series = 1};
    svg = svgplot_render(&r);
    assert_non_null(strstr(svg, ">32K</text>"));
    assert_non_null(strstr(svg, ">128K</text>"));
    assert_non_null(strstr(svg, ">256K</text>"));
    assert_null(strstr(svg, ">16K</text>"));
    free(svg);
}

static void t_empty(void **st)
{
    (void)st;
    double x[1] = {1}, y[1] = {NAN};
    svgplot_series_t s = {.name = "a", .x = x, .y = y, .n = 1};
    svgplot_t p = {.title = "nothing", .series = &s, .n_series = 1, .empty = "no trials yet"};
    char *svg = svgplot_render(&p);
    assert_non_null(strstr(svg, "no trials yet"));
    assert_null(strstr(svg, "<circle"));
    assert_non_null(strstr(svg, "</svg>"));
    free(svg);
    svgplot_t z = {0};
    svg = svgplot_render(&z);
    assert_non_null(strstr(svg, "no data"));
    free(svg);
}

static json_t *fixture(const char *rel)
{
    char *path = xasprintf("%s/%s", VARIET_FIXTURES, rel);
    json_error_t je;
    json_t *h = json_load_file(path, 0, &je);
    if (!h)
        fail_msg("%s: %s", path, je.text);
    free(path);
    return h;
}

static void save(const char *name, const char *svg)
{
    char err[256];
    char *p = xasprintf("svgplot-%s.svg", name);
    assert_int_equal(file_write_atomic(p, svg, strlen(svg), err, sizeof err), 0);
    free(p);
}

static void t_tune_plots(void **st)
{
    (void)st;
    json_t *h = fixture("gpu/h200-tune-2/tune-12800.json");
    json_t *tr = json_object_get(h, "trials");
    size_t n = json_array_size(tr), ran = 0, failed = 0, lp = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_object_get(json_array_get(tr, i), "status"));
        bool ok = !strcmp(s, "ok") || !strcmp(s, "tight");
        ran += ok && json_is_number(json_object_get(json_array_get(tr, i), "gen_tps"));
        lp += ok && json_is_number(json_object_get(json_array_get(tr, i), "long_prompt_tps"));
        failed += !ok;
    }
    assert_true(ran > 10 && failed > 0);
    char *svg = tune_plot_trials(h);
    save("trials", svg);
    /* a dot per generation figure, a square per long prompt, a cross per
     * failed load, plus one of each in the legend */
    assert_int_equal(count(svg, "<circle"), ran + 1);
    assert_int_equal(count(svg, "<rect x=") - 1, lp + 1); /* minus the frame */
    assert_int_equal(count(svg, "<path d=\"M"), failed + 1);
    assert_non_null(strstr(svg, "balanced: t/s per trial"));
    free(svg);

    svg = tune_plot_frontier(h);
    save("frontier", svg);
    assert_non_null(strstr(svg, "context, prefill and generation"));
    assert_non_null(strstr(svg, ">32K</text>"));
    free(svg);
    json_decref(h);

    /* a full-GPU history, every trial at 256K (no load reports: the
     * context comes from -c): one point per series */
    h = fixture("gpu/h200-tune/tune-full-gpu-21500MiB-ctx256k.json");
    svg = tune_plot_frontier(h);
    save("frontier-256k", svg);
    assert_non_null(strstr(svg, ">256K</text>"));
    assert_int_equal(count(svg, "<circle"), 1 + 1);
    free(svg);
    json_decref(h);

    /* no trials */
    h = json_pack("{s:s,s:[]}", "role", "x", "trials");
    svg = tune_plot_trials(h);
    assert_non_null(strstr(svg, "no trials in this history"));
    free(svg);
    svg = tune_plot_frontier(h);
    assert_non_null(strstr(svg, "no successful trial"));
    free(svg);
    json_decref(h);
}

static void t_trial_ctx(void **st)
{
    (void)st;
    json_t *r = json_pack("{s:{s:i},s:[s,s]}", "load", "n_ctx", 65536, "args", "-c", "4096");
    assert_true(tune_plot_trial_ctx(r) == 65536);
    json_object_del(r, "load");
    assert_true(tune_plot_trial_ctx(r) == 4096);
    json_object_set_new(r, "args", json_pack("[s,s]", "--ctx-size", "junk"));
    assert_true(tune_plot_trial_ctx(r) == 0);
    json_decref(r);
}

/* tune_report_write: the Markdown and both plots, linked relatively */
static void t_report_files(void **st)
{
    (void)st;
    char dir[] = "/tmp/variet-svgplot-XXXXXX";
    assert_non_null(mkdtemp(dir));
    json_t *h = fixture("gpu/h200-tune-2/tune-12800.json");
    tune_setup_t s;
    memset(&s, 0, sizeof s);
    s.role = "balanced";
    mi_t mi;
    memset(&mi, 0, sizeof mi);
    snprintf(mi.arch, sizeof mi.arch, "qwen35moe");
    s.mi = &mi;
    tune_result_t res;
    memset(&res, 0, sizeof res);
    char err[256], *md_path = NULL;
    assert_int_equal(tune_report_write(&s, h, &res, "m.gguf", NULL, 1.0, NULL, dir, "20260101-000000", &md_path, err,
                                       sizeof err),
                     0);
    char *want = xasprintf("%s/tune-balanced-20260101-000000.md", dir);
    assert_string_equal(md_path, want);
    char *md = NULL;
    size_t len;
    assert_int_equal(file_read_all(md_path, 1 << 24, &md, &len, err, sizeof err), 0);
    assert_non_null(strstr(md, "## Plots"));
    assert_non_null(strstr(md, "](tune-balanced-20260101-000000-trials.svg)"));
    assert_non_null(strstr(md, "](tune-balanced-20260101-000000-frontier.svg)"));
    static const char *const kinds[2] = {"trials", "frontier"};
    for (int k = 0; k < 2; k++) {
        char *p = xasprintf("%s/tune-balanced-20260101-000000-%s.svg", dir, kinds[k]), *svg = NULL;
        assert_int_equal(file_read_all(p, 1 << 24, &svg, &len, err, sizeof err), 0);
        assert_true(!strncmp(svg, "<svg ", 5) && strstr(svg, "</svg>"));
        free(svg);
        unlink(p);
        free(p);
    }
    unlink(md_path);
    rmdir(dir);
    free(md);
    free(want);
    free(md_path);
    json_decref(h);

    /* a folder that does not exist: an error, nothing claimed */
    h = json_pack("{s:s,s:[]}", "role", "x", "trials");
    md_path = NULL;
    assert_int_not_equal(tune_report_write(&s, h, &res, "m.gguf", NULL, 1.0, NULL, "/nonexistent/dir", "x", &md_path,
                                           err, sizeof err),
                         0);
    assert_non_null(strstr(err, "/nonexistent/dir"));
    free(md_path);
    json_decref(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_ticks),      cmocka_unit_test(t_escape),     cmocka_unit_test(t_geometry),
        cmocka_unit_test(t_empty),      cmocka_unit_test(t_tune_plots), cmocka_unit_test(t_trial_ctx),
        cmocka_unit_test(t_report_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
