/*
 * test_util.c — the shared helpers: the buffer ceiling, checked number
 * parsing at its edges, atomic writes and capped whole-file reads. File
 * tests work in a fresh folder under /tmp that they remove again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static void test_buf_basic(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    assert_null(b.data);
    buf_reset(&b); /* fine on an empty buffer */
    assert_int_equal(buf_append(&b, "abc", 3), 0);
    assert_int_equal(buf_append(&b, NULL, 0), 0);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    /* binary data with NULs, still terminated */
    assert_int_equal(buf_append(&b, "\0x", 2), 0);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "abc\0x", 6);
    buf_consume(&b, 2);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "c\0x", 4);
    buf_consume(&b, 100);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    /* growth well past the first allocation */
    for (int i = 0; i < 10000; i++)
        assert_int_equal(buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(b.len, 100000);
    assert_int_equal(b.data[b.len], 0);
    assert_true(b.cap > b.len);
    assert_memory_equal(b.data + 99990, "0123456789", 10);
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    buf_free(&b); /* twice is harmless */
}

static void test_buf_ceiling(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 10);
    assert_int_equal(buf_append(&b, "12345678", 8), 0);
    /* past the ceiling: -E2BIG and nothing changes */
    assert_int_equal(buf_append(&b, "abc", 3), -E2BIG);
    assert_int_equal(b.len, 8);
    assert_string_equal(b.data, "12345678");
    /* exactly up to the ceiling is fine */
    assert_int_equal(buf_append(&b, "90", 2), 0);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "1234567890");
    assert_int_equal(buf_append(&b, "x", 1), -E2BIG);
    assert_int_equal(buf_printf(&b, "%d", 7), -E2BIG);
    assert_int_equal(buf_printf(&b, "%s", ""), 0); /* zero bytes always fit */
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "1234567890");
    /* consuming makes room again */
    buf_consume(&b, 4);
    assert_int_equal(buf_printf(&b, "%s", "abcd"), 0);
    assert_string_equal(b.data, "567890abcd");
    /* an append that could overflow size_t fails cleanly too */
    assert_int_equal(buf_append(&b, "y", SIZE_MAX), -E2BIG);
    assert_int_equal(b.len, 10);
    buf_free(&b);

    /* a one-shot append larger than the ceiling on an empty buffer */
    buf_init(&b, 4);
    assert_int_equal(buf_append(&b, "hello", 5), -E2BIG);
    assert_int_equal(b.len, 0);
    assert_int_equal(buf_printf(&b, "%s", "hello"), -E2BIG);
    assert_int_equal(b.len, 0);
    assert_int_equal(buf_printf(&b, "%s", "hell"), 0);
    assert_string_equal(b.data, "hell");
    buf_free(&b);

    /* unlimited: SIZE_MAX still fails, does not wrap */
    buf_init(&b, 0);
    assert_int_equal(buf_append(&b, "y", SIZE_MAX), -E2BIG);
    buf_free(&b);
}

static void test_buf_printf(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(buf_printf(&b, "%s=%d", "n", 42), 0);
    assert_int_equal(buf_printf(&b, ", %.2f", 1.5), 0);
    assert_int_equal(buf_printf(&b, "%c", 'x'), 0);
    assert_string_equal(b.data, "n=42, 1.50x");
    assert_int_equal(b.len, strlen("n=42, 1.50x"));
    /* long output, grows as needed */
    char big[3000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(buf_printf(&b, "[%s]", big), 0);
    assert_int_equal(b.len, strlen("n=42, 1.50x") + 3001);
    assert_int_equal(b.data[b.len - 1], ']');
    assert_int_equal(b.data[b.len], 0);
    buf_free(&b);

    char *s = xasprintf("%s-%04d", "id", 7);
    assert_string_equal(s, "id-0007");
    free(s);
    s = xstrndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);
}

static void test_parse_i64(void **state)
{
    (void)state;
    int64_t v = 99;
    assert_true(parse_i64("0", INT64_MIN, INT64_MAX, &v) && v == 0);
    assert_true(parse_i64("-17", -100, 100, &v) && v == -17);
    assert_true(parse_i64("9223372036854775807", INT64_MIN, INT64_MAX, &v) && v == INT64_MAX);
    assert_true(parse_i64("-9223372036854775808", INT64_MIN, INT64_MAX, &v) && v == INT64_MIN);
    assert_true(parse_i64("100", -100, 100, &v) && v == 100);
    assert_true(parse_i64("-100", -100, 100, &v) && v == -100);
    v = 99;
    /* overflow */
    assert_false(parse_i64("9223372036854775808", INT64_MIN, INT64_MAX, &v));
    assert_false(parse_i64("-9223372036854775809", INT64_MIN, INT64_MAX, &v));
    assert_false(parse_i64("99999999999999999999999", INT64_MIN, INT64_MAX, &v));
    /* out of range */
    assert_false(parse_i64("101", -100, 100, &v));
    assert_false(parse_i64("-101", -100, 100, &v));
    assert_false(parse_i64("-1", 0, 10, &v));
    /* junk */
    assert_false(parse_i64(NULL, 0, 10, &v));
    assert_false(parse_i64("", 0, 10, &v));
    assert_false(parse_i64("-", -10, 10, &v));
    assert_false(parse_i64("abc", 0, 10, &v));
    assert_false(parse_i64("5x", 0, 10, &v));
    assert_false(parse_i64("5 ", 0, 10, &v));
    assert_false(parse_i64(" 5", 0, 10, &v));
    assert_false(parse_i64("1.5", 0, 10, &v));
    assert_false(parse_i64("0x10", 0, 100, &v));
    assert_false(parse_i64("1e3", 0, 10000, &v));
    assert_int_equal(v, 99); /* untouched on failure */
}

static void test_parse_u64(void **state)
{
    (void)state;
    uint64_t v = 99;
    assert_true(parse_u64("0", UINT64_MAX, &v) && v == 0);
    assert_true(parse_u64("18446744073709551615", UINT64_MAX, &v) && v == UINT64_MAX);
    assert_true(parse_u64("65535", 65535, &v) && v == 65535);
    assert_true(parse_u64("007", 10, &v) && v == 7);
    v = 99;
    assert_false(parse_u64("65536", 65535, &v));
    assert_false(parse_u64("18446744073709551616", UINT64_MAX, &v));
    /* negatives must not wrap around to huge values */
    assert_false(parse_u64("-1", UINT64_MAX, &v));
    assert_false(parse_u64("-0", UINT64_MAX, &v));
    assert_false(parse_u64(" -1", UINT64_MAX, &v));
    assert_false(parse_u64("\t-5", UINT64_MAX, &v));
    assert_false(parse_u64(NULL, 10, &v));
    assert_false(parse_u64("", 10, &v));
    assert_false(parse_u64(" 5", 10, &v));
    assert_false(parse_u64("5 ", 10, &v));
    assert_false(parse_u64("five", 10, &v));
    assert_false(parse_u64("5k", 10000, &v));
    assert_int_equal(v, 99);

    double d = 0;
    assert_true(parse_f64("1.25", &d) && d == 1.25);
    assert_true(parse_f64("-3", &d) && d == -3.0);
    assert_false(parse_f64("", &d));
    assert_false(parse_f64("1.5x", &d));
    assert_false(parse_f64("inf", &d));
    assert_false(parse_f64("nan", &d));
    assert_false(parse_f64("1e999", &d));
}

static void test_parse_size(void **state)
{
    (void)state;
    uint64_t v = 99;
    assert_true(parse_size("0", &v) && v == 0);
    assert_true(parse_size("1234", &v) && v == 1234);
    assert_true(parse_size("512K", &v) && v == 512ull << 10);
    assert_true(parse_size("512k", &v) && v == 512ull << 10);
    assert_true(parse_size("64M", &v) && v == 64ull << 20);
    assert_true(parse_size("64m", &v) && v == 64ull << 20);
    assert_true(parse_size("1G", &v) && v == 1ull << 30);
    assert_true(parse_size("3g", &v) && v == 3ull << 30);
    assert_true(parse_size("64MiB", &v) && v == 64ull << 20);
    assert_true(parse_size("2KiB", &v) && v == 2048);
    assert_true(parse_size("8GiB", &v) && v == 8ull << 30);
    assert_true(parse_size("64MB", &v) && v == 64ull << 20);
    assert_true(parse_size("18446744073709551615", &v) && v == UINT64_MAX);
    assert_true(parse_size("17179869183G", &v) && v == 17179869183ull << 30);
    v = 99;
    /* overflow, with and without a suffix */
    assert_false(parse_size("18446744073709551616", &v));
    assert_false(parse_size("17179869184G", &v)); /* 2^34 GiB = 2^64 */
    assert_false(parse_size("18014398509481984K", &v)); /* 2^54 KiB */
    /* negatives and junk */
    assert_false(parse_size("-1", &v));
    assert_false(parse_size("-1G", &v));
    assert_false(parse_size(" -1", &v));
    assert_false(parse_size(" 1", &v));
    assert_false(parse_size(NULL, &v));
    assert_false(parse_size("", &v));
    assert_false(parse_size("G", &v));
    assert_false(parse_size("MiB", &v));
    assert_false(parse_size("1T", &v));
    assert_false(parse_size("1X", &v));
    assert_false(parse_size("1.5G", &v));
    assert_false(parse_size("1 G", &v));
    assert_false(parse_size("1GG", &v));
    assert_false(parse_size("1GiBx", &v));
    assert_false(parse_size("1MiBB", &v));
    assert_int_equal(v, 99);
}

/* Number of entries in `dir` other than . and .. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void test_file_write_atomic(void **state)
{
    (void)state;
    char dir[] = "/tmp/variet-test-util-XXXXXX";
    char err[512] = "";
    char *data = NULL;
    size_t len = 0;
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/out.txt", dir);

    /* writes */
    assert_int_equal(file_write_atomic(path, "first version\n", 14, err, sizeof err), 0);
    assert_int_equal(file_read_all(path, 0, &data, &len, err, sizeof err), 0);
    assert_int_equal(len, 14);
    assert_string_equal(data, "first version\n");
    free(data);
    assert_int_equal(count_entries(dir), 1); /* no temp file left */

    /* replaces, shorter than before */
    assert_int_equal(file_write_atomic(path, "2nd", 3, err, sizeof err), 0);
    assert_int_equal(file_read_all(path, 0, &data, &len, err, sizeof err), 0);
    assert_int_equal(len, 3);
    assert_string_equal(data, "2nd");
    free(data);
    assert_int_equal(count_entries(dir), 1);

    /* binary data and empty files */
    static const char bin[] = {0, 1, 2, (char)0xff, 0};
    assert_int_equal(file_write_atomic(path, bin, sizeof bin, err, sizeof err), 0);
    assert_int_equal(file_read_all(path, 0, &data, &len, err, sizeof err), 0);
    assert_int_equal(len, sizeof bin);
    assert_memory_equal(data, bin, sizeof bin);
    free(data);
    assert_int_equal(file_write_atomic(path, "", 0, err, sizeof err), 0);
    assert_int_equal(file_read_all(path, 0, &data, &len, err, sizeof err), 0);
    assert_int_equal(len, 0);
    assert_non_null(data);
    assert_string_equal(data, "");
    free(data);

    /* a missing folder: -ENOENT, a message, nothing created */
    char *bad = xasprintf("%s/no/such/dir/out.txt", dir);
    err[0] = 0;
    assert_int_equal(file_write_atomic(bad, "x", 1, err, sizeof err), -ENOENT);
    assert_true(strlen(err) > 0);
    assert_non_null(strstr(err, "no/such/dir"));
    assert_int_equal(count_entries(dir), 1);
    free(bad);

    /* a path that is a folder: rename fails, the temp file is removed */
    char *sub = xasprintf("%s/sub", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    char *inner = xasprintf("%s/f", sub);
    assert_int_equal(file_write_atomic(inner, "x", 1, err, sizeof err), 0);
    err[0] = 0;
    assert_true(file_write_atomic(sub, "y", 1, err, sizeof err) < 0);
    assert_true(strlen(err) > 0);
    assert_int_equal(count_entries(dir), 2); /* out.txt and sub, no temp */
    assert_int_equal(unlink(inner), 0);
    assert_int_equal(rmdir(sub), 0);
    free(inner);
    free(sub);

    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    free(path);
}

static void test_file_read_all(void **state)
{
    (void)state;
    char dir[] = "/tmp/variet-test-util-XXXXXX";
    char err[512] = "";
    char *data = (char *)"sentinel";
    size_t len = 12345;
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/in.bin", dir);

    /* missing file */
    assert_int_equal(file_read_all(path, 0, &data, &len, err, sizeof err), -ENOENT);
    assert_null(data);
    assert_non_null(strstr(err, "in.bin"));

    /* a file larger than one read chunk */
    size_t n = 200000;
    char *big = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(i * 7);
    assert_int_equal(file_write_atomic(path, big, n, err, sizeof err), 0);
    assert_int_equal(file_read_all(path, 0, &data, &len, err, sizeof err), 0);
    assert_int_equal(len, n);
    assert_memory_equal(data, big, n);
    assert_int_equal(data[n], 0); /* terminated */
    free(data);

    /* max: exactly the size is fine, one byte less is -E2BIG */
    assert_int_equal(file_read_all(path, n, &data, &len, err, sizeof err), 0);
    assert_int_equal(len, n);
    free(data);
    err[0] = 0;
    data = (char *)"sentinel";
    assert_int_equal(file_read_all(path, n - 1, &data, &len, err, sizeof err), -E2BIG);
    assert_null(data);
    assert_non_null(strstr(err, "larger than"));
    assert_int_equal(file_read_all(path, 10, &data, &len, err, sizeof err), -E2BIG);
    assert_null(data);

    /* small file under a ceiling; len may be NULL */
    assert_int_equal(file_write_atomic(path, "hi", 2, err, sizeof err), 0);
    assert_int_equal(file_read_all(path, 2, &data, NULL, err, sizeof err), 0);
    assert_string_equal(data, "hi");
    free(data);
    assert_int_equal(file_read_all(path, 1, &data, &len, err, sizeof err), -E2BIG);
    assert_null(data);

    free(big);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    free(path);
}

static void test_misc(void **state)
{
    (void)state;
    char buf[32];
    assert_string_equal(fmt_bytes(0, buf, sizeof buf), "0 B");
    assert_string_equal(fmt_bytes(1023, buf, sizeof buf), "1023 B");
    assert_string_equal(fmt_bytes(1024, buf, sizeof buf), "1.00 KiB");
    assert_string_equal(fmt_bytes(3ull << 29, buf, sizeof buf), "1.50 GiB");
    assert_string_equal(fmt_bytes(5ull << 40, buf, sizeof buf), "5.00 TiB");
    assert_string_equal(fmt_bytes(2048ull << 40, buf, sizeof buf), "2048.00 TiB");
    double a = now_s(), b = now_s();
    assert_true(a > 0 && b >= a);
    void *p = xcalloc(0, 0); /* never NULL */
    assert_non_null(p);
    p = xrealloc(p, 64);
    assert_non_null(p);
    free(p);
}

static void test_err_prefix(void **state)
{
    (void)state;
    char err[32] = "connection refused";
    err_prefix(err, sizeof err, "%s run %d", "short", 2);
    assert_string_equal(err, "short run 2: connection refused");
    char small[12] = "refused";
    err_prefix(small, sizeof small, "long warm-up");
    assert_string_equal(small, "long warm-u"); /* truncated, terminated */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_basic),
        cmocka_unit_test(test_err_prefix),
        cmocka_unit_test(test_buf_ceiling),
        cmocka_unit_test(test_buf_printf),
        cmocka_unit_test(test_parse_i64),
        cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_file_write_atomic),
        cmocka_unit_test(test_file_read_all),
        cmocka_unit_test(test_misc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
