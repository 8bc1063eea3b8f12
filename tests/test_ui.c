/*
 * test_ui.c — the dashboard's embedded files (ui): every file of ui/ is in
 * the binary byte for byte with a SHA-256-derived ETag, paths map to them
 * (and to nothing else), content types, If-None-Match matching.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui.h"
#include "util.h"

static void t_embedded(void **st)
{
    (void)st;
    static const char *const files[] = {"index.html", "app.js", "style.css"};
    assert_int_equal(ui__n_assets, 3);
    for (size_t i = 0; i < 3; i++) {
        char *path = xasprintf("/ui/%s", files[i]);
        const ui_asset_t *a = ui_find(path);
        free(path);
        assert_non_null(a);
        assert_string_equal(a->name, files[i]);
        char *src = xasprintf("%s/ui/%s", VARIET_SOURCE_DIR, files[i]), *text = NULL, err[256];
        size_t len = 0;
        assert_int_equal(file_read_all(src, 1 << 24, &text, &len, err, sizeof err), 0);
        assert_int_equal(a->len, len);
        assert_memory_equal(a->data, text, len);
        assert_int_equal(a->data[len], 0);
        free(text);
        free(src);
        /* "\"" + 16 hex digits + "\"" */
        assert_int_equal(strlen(a->etag), 18);
        assert_true(a->etag[0] == '"' && a->etag[17] == '"');
        assert_int_equal(strspn(a->etag + 1, "0123456789abcdef"), 16);
    }
    assert_ptr_equal(ui_find("/ui"), ui_find("/ui/index.html"));
    assert_ptr_equal(ui_find("/ui/"), ui_find("/ui/index.html"));
    assert_null(ui_find("/ui/nope.js"));
    assert_null(ui_find("/ui/../src/ui.c"));
    assert_null(ui_find("/ui//app.js"));
    assert_null(ui_find("/app.js"));
    assert_null(ui_find("/uiapp.js"));
    assert_string_not_equal(ui_find("/ui/app.js")->etag, ui_find("/ui/style.css")->etag);
}

static void t_types(void **st)
{
    (void)st;
    assert_string_equal(ui_content_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(ui_content_type("app.js"), "text/javascript; charset=utf-8");
    assert_string_equal(ui_content_type("a.CSS"), "text/css; charset=utf-8");
    assert_string_equal(ui_content_type("p.svg"), "image/svg+xml");
    assert_string_equal(ui_content_type("noext"), "application/octet-stream");
    assert_string_equal(ui_content_type("x.exe"), "application/octet-stream");
}

static void t_etag(void **st)
{
    (void)st;
    const char *e = "\"0123456789abcdef\"";
    assert_true(ui_etag_matches("\"0123456789abcdef\"", e));
    assert_true(ui_etag_matches("W/\"0123456789abcdef\"", e));
    assert_true(ui_etag_matches("\"x\", \"0123456789abcdef\"", e));
    assert_true(ui_etag_matches("\"x\",W/\"0123456789abcdef\" ", e));
    assert_true(ui_etag_matches("*", e));
    assert_false(ui_etag_matches(NULL, e));
    assert_false(ui_etag_matches("", e));
    assert_false(ui_etag_matches("\"0123456789abcde\"", e));
    assert_false(ui_etag_matches("\"0123456789abcdef0\"", e));
    assert_false(ui_etag_matches("0123456789abcdef", e));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_embedded),
        cmocka_unit_test(t_types),
        cmocka_unit_test(t_etag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
