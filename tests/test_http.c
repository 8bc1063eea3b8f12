/*
 * test_http.c — request framing (http.c): heads parsed or refused with the
 * right status (the smuggling rules: Content-Length, Transfer-Encoding,
 * Host), the head delimiter under trickling, chunked bodies split at every
 * byte, query strings; and the route table and access policy (route.c),
 * and the images a proxied body carries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "route.h"
#include "util.h"

#define MB (1u << 20)

/* Parse a whole head; status (0 = parsed), *h filled on 0. */
static int parse(const char *text, http_head_t *h)
{
    char err[256] = "";
    size_t scan = 0, len = strlen(text);
    size_t end = http_head_end(text, len, &scan);
    if (!end)
        return -1; /* incomplete */
    int st = http_parse_head(text, end, MB, h, err, sizeof err);
    if (st)
        assert_true(err[0]); /* every refusal says why */
    return st;
}

static int status_of(const char *text)
{
    http_head_t h;
    int st = parse(text, &h);
    if (st == 0)
        http_head_free(&h);
    return st;
}

static void t_simple(void **s)
{
    (void)s;
    http_head_t h;
    assert_int_equal(parse("GET /v1/models?x=1&tail=20 HTTP/1.1\r\nHost: localhost:8000\r\nX-A:  b c  \r\n\r\n", &h), 0);
    assert_int_equal(h.method, HTTP_GET);
    assert_string_equal(h.method_name, "GET");
    assert_string_equal(h.target, "/v1/models?x=1&tail=20");
    assert_string_equal(h.path, "/v1/models");
    assert_string_equal(h.query, "x=1&tail=20");
    assert_string_equal(h.host, "localhost:8000");
    assert_string_equal(http_head_get(&h, "x-a"), "b c");
    assert_true(h.keep_alive);
    assert_int_equal(h.minor, 1);
    assert_false(h.chunked);
    assert_int_equal(h.content_length, 0);
    char v[16];
    assert_true(http_query_get(h.query, "tail", v, sizeof v));
    assert_string_equal(v, "20");
    assert_false(http_query_get(h.query, "tai", v, sizeof v));
    assert_false(http_query_get(h.query, "tail", v, 2)); /* does not fit */
    http_head_free(&h);

    assert_int_equal(parse("\r\n\r\nPOST /tokenize HTTP/1.0\nContent-Length: 12\nConnection: keep-alive\n\n", &h), 0);
    assert_int_equal(h.method, HTTP_POST);
    assert_int_equal(h.minor, 0);
    assert_int_equal(h.content_length, 12);
    assert_true(h.keep_alive);
    assert_null(h.host); /* HTTP/1.0 needs none */
    assert_null(h.query);
    http_head_free(&h);

    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n", &h), 0);
    assert_false(h.keep_alive);
    http_head_free(&h);
    assert_int_equal(parse("PUT /x HTTP/1.1\r\nHost: a\r\n\r\n", &h), 0);
    assert_int_equal(h.method, HTTP_OTHER);
    http_head_free(&h);
    /* absolute-form: the authority is the host */
    assert_int_equal(parse("GET http://evil.example:81 HTTP/1.1\r\nHost: localhost\r\n\r\n", &h), 0);
    assert_string_equal(h.host, "evil.example:81");
    assert_string_equal(h.path, "/");
    http_head_free(&h);
    assert_int_equal(parse("GET HTTP://h/a/b?q=1 HTTP/1.1\r\n\r\n", &h), 0);
    assert_string_equal(h.target, "/a/b?q=1");
    assert_string_equal(h.path, "/a/b");
    assert_string_equal(h.query, "q=1");
    http_head_free(&h);
    /* bytes >= 0x80 in the path are kept (they route nowhere) */
    assert_int_equal(parse("GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n", &h), 0);
    assert_string_equal(h.path, "/\xff\xfe");
    http_head_free(&h);
}

static void t_refused(void **s)
{
    (void)s;
    /* framing that two parsers could read differently: 400 */
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\n Content-Length: 5\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nX: a\r\n folded\r\n\r\n"), 400);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"), 400);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n"), 400);
    /* Host rules */
    assert_int_equal(status_of("GET / HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
    /* request line */
    assert_int_equal(status_of("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET / HTTP/1.1 x\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET x HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    assert_int_equal(status_of("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
    assert_int_equal(status_of("GET / HTTPS/1.1\r\nHost: a\r\n\r\n"), 400);
    /* what we do not implement / limits */
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n"), 417);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n"), 413);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n"), 0);
    /* identical lengths agree: accepted (RFC 9110 8.6) */
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\ncontent-length: 7, 7\r\n\r\n"), 0);
    buf_t b;
    buf_init(&b, 0);
    buf_printf(&b, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < HTTP_MAX_HEADERS; i++)
        buf_printf(&b, "X-%d: y\r\n", i);
    buf_printf(&b, "\r\n");
    assert_int_equal(status_of(b.data), 431);
    buf_free(&b);
}

/* The delimiter found by feeding one byte at a time equals the one found
 * at once, and a pipelined second request is left alone. */
static void t_head_end(void **s)
{
    (void)s;
    const char *two = "\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\nHost: b\n\n";
    size_t len = strlen(two), scan = 0;
    size_t whole = http_head_end(two, len, &scan);
    assert_int_equal(whole, strlen("\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n"));
    size_t found = 0;
    scan = 0;
    for (size_t n = 1; n <= len && !found; n++)
        found = http_head_end(two, n, &scan);
    assert_int_equal(found, whole);
    scan = 0;
    assert_int_equal(http_head_end(two + whole, len - whole, &scan), len - whole);
    scan = 0;
    assert_int_equal(http_head_end("GET / HTTP/1.1\r\nHost: a\r\n", 26, &scan), 0);
    scan = 0;
    assert_int_equal(http_head_end("\r\n\r\n", 4, &scan), 0); /* blank lines only: still waiting */
}

typedef struct {
    buf_t out;
} sink_t;

static void emit(void *ud, const char *p, size_t n) { buf_append(&((sink_t *)ud)->out, p, n); }

/* Decode text split at `at` (0: whole); body or -status. */
static long chunked(const char *text, size_t len, size_t at, uint64_t max, sink_t *sk, size_t *consumed)
{
    http_chunked_t c;
    char err[128];
    http_chunked_init(&c, max, 64);
    buf_init(&sk->out, 0);
    buf_append(&sk->out, "", 0);
    size_t off = 0;
    size_t parts[2] = {at ? at : len, len - (at ? at : len)};
    for (int k = 0; k < 2; k++) {
        if (!parts[k] || http_chunked_done(&c))
            continue;
        long u = http_chunked_feed(&c, text + off, parts[k], emit, sk, err, sizeof err);
        if (u < 0)
            return u;
        off += (size_t)u;
    }
    *consumed = off;
    return http_chunked_done(&c) ? 1 : 0;
}

static void t_chunked(void **s)
{
    (void)s;
    const char *body = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: y\r\n\r\nNEXT";
    size_t len = strlen(body);
    for (size_t at = 0; at < len; at++) {
        sink_t sk;
        size_t used = 0;
        assert_int_equal(chunked(body, len, at, MB, &sk, &used), 1);
        assert_string_equal(sk.out.data, "hello world");
        assert_int_equal(used, len - 4); /* "NEXT" belongs to the next request */
        buf_free(&sk.out);
    }
    sink_t sk;
    size_t used;
    assert_int_equal(chunked("3\nabc\n0\n\n", 9, 0, MB, &sk, &used), 1); /* bare LF */
    assert_string_equal(sk.out.data, "abc");
    buf_free(&sk.out);
    static const struct {
        const char *text;
        long want;
    } bad[] = {
        {"z\r\n", -400},           {"-1\r\nx\r\n", -400},       {"5\r\nhelloX\r\n", -400},
        {"3\rx", -400},            {"\r\n", -400},              {"3 x\r\n", -400},
        {"11111111111111111\r\n", -413}, {"100001\r\n", -413}, /* over 1 MiB */
        {"0\r\n" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n", -431},
        {"0\r\n\rx", -400},        {"2;a\x01\r\nab\r\n", -400},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long r = chunked(bad[i].text, strlen(bad[i].text), 0, MB, &sk, &used);
        if (r != bad[i].want)
            fail_msg("chunked '%s': %ld, want %ld", bad[i].text, r, bad[i].want);
        buf_free(&sk.out);
    }
    /* many chunks adding up past the limit */
    assert_int_equal(chunked("8\r\n12345678\r\n8\r\n12345678\r\n", 26, 0, 12, &sk, &used), -413);
    buf_free(&sk.out);
    /* incomplete: not done, everything consumed */
    assert_int_equal(chunked("5\r\nhel", 6, 0, MB, &sk, &used), 0);
    assert_int_equal(used, 6);
    buf_free(&sk.out);
}

static void t_routes(void **s)
{
    (void)s;
    char role[64];
    assert_int_equal(route_classify(HTTP_GET, "/health", role, sizeof role), ROUTE_HEALTH);
    assert_int_equal(route_classify(HTTP_HEAD, "/v1/models", role, sizeof role), ROUTE_MODELS);
    assert_int_equal(route_classify(HTTP_POST, "/v1/models", role, sizeof role), ROUTE_NOT_FOUND);
    assert_int_equal(route_classify(HTTP_POST, "/v1/chat/completions", role, sizeof role), ROUTE_PROXY);
    assert_int_equal(route_classify(HTTP_GET, "/v1/chat/completions", role, sizeof role), ROUTE_NOT_FOUND);
    assert_int_equal(route_classify(HTTP_OTHER, "/health", role, sizeof role), ROUTE_BAD_METHOD);
    assert_int_equal(route_classify(HTTP_OPTIONS, "/v1/chat/completions", role, sizeof role), ROUTE_PREFLIGHT);
    assert_int_equal(route_classify(HTTP_POST, "/roles/fast/load", role, sizeof role), ROUTE_ROLE_LOAD);
    assert_string_equal(role, "fast");
    assert_int_equal(route_classify(HTTP_POST, "/roles/fast/unload", role, sizeof role), ROUTE_ROLE_UNLOAD);
    assert_int_equal(route_classify(HTTP_GET, "/roles/fast/logs", role, sizeof role), ROUTE_ROLE_LOGS);
    assert_int_equal(route_classify(HTTP_GET, "/roles/fast/load", role, sizeof role), ROUTE_NOT_FOUND);
    assert_string_equal(role, "");
    assert_int_equal(route_classify(HTTP_POST, "/roles//load", role, sizeof role), ROUTE_NOT_FOUND);
    assert_int_equal(route_classify(HTTP_POST, "/roles/../status/load", role, sizeof role), ROUTE_NOT_FOUND);
    assert_int_equal(route_classify(HTTP_POST, "/roles/a/b/load", role, sizeof role), ROUTE_NOT_FOUND);
    assert_int_equal(route_classify(HTTP_POST, "/roles/fast/load", role, 4), ROUTE_NOT_FOUND);
    /* the dashboard */
    assert_int_equal(route_classify(HTTP_GET, "/ui", role, sizeof role), ROUTE_UI);
    assert_int_equal(route_classify(HTTP_GET, "/ui/", role, sizeof role), ROUTE_UI);
    assert_int_equal(route_classify(HTTP_HEAD, "/ui/app.js", role, sizeof role), ROUTE_UI);
    assert_string_equal(role, "");
    assert_int_equal(route_classify(HTTP_GET, "/uix", role, sizeof role), ROUTE_NOT_FOUND);
    assert_int_equal(route_classify(HTTP_POST, "/ui", role, sizeof role), ROUTE_NOT_FOUND);
    assert_int_equal(route_classify(HTTP_GET, "/roles/balanced/tune", role, sizeof role), ROUTE_ROLE_TUNE);
    assert_string_equal(role, "balanced");
    assert_int_equal(route_classify(HTTP_POST, "/roles/balanced/tune", role, sizeof role), ROUTE_NOT_FOUND);
}

static int check(const route_policy_t *p, const char *head)
{
    http_head_t h;
    char err[512];
    assert_int_equal(parse(head, &h), 0);
    char role[64];
    route_t rt = route_classify(h.method, h.path, role, sizeof role);
    int st = route_check(p, rt, &h, err, sizeof err);
    http_head_free(&h);
    return st;
}

static void t_policy_key(void **s)
{
    (void)s;
    route_policy_t p = {.api_key = "s3cret"};
    assert_int_equal(check(&p, "GET /health HTTP/1.1\r\nHost: evil\r\n\r\n"), 0);
    assert_int_equal(check(&p, "GET /status HTTP/1.1\r\nHost: a\r\n\r\n"), 401);
    assert_int_equal(check(&p, "GET /status HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer s3cre\r\n\r\n"), 401);
    assert_int_equal(check(&p, "GET /status HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer s3cret1\r\n\r\n"), 401);
    assert_int_equal(check(&p, "GET /status HTTP/1.1\r\nHost: a\r\nAuthorization: Basic s3cret\r\n\r\n"), 401);
    assert_int_equal(check(&p, "GET /status HTTP/1.1\r\nHost: a\r\nAuthorization: bearer s3cret\r\n\r\n"), 0);
    assert_int_equal(check(&p, "GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n"), 401);
    assert_int_equal(check(&p, "POST /roles/fast/unload HTTP/1.1\r\nHost: a\r\n\r\n"), 401);
    /* the dashboard's files are open (a browser cannot send the key when it
     * navigates); what they read is not */
    assert_int_equal(check(&p, "GET /ui HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    assert_int_equal(check(&p, "GET /ui/app.js HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    assert_int_equal(check(&p, "GET /roles/fast/tune HTTP/1.1\r\nHost: a\r\n\r\n"), 401);
    assert_int_equal(check(&p, "GET /roles/fast/logs?follow=1 HTTP/1.1\r\nHost: a\r\n\r\n"), 401);
}

static void t_policy_open(void **s)
{
    (void)s;
    static const char *const hosts[] = {"gpu-box.lan", NULL};
    static const char *const origins[] = {"http://app.local:3000", NULL};
    route_policy_t p = {.allowed_hosts = hosts, .allowed_origins = origins};
    /* Host: the loopback in its spellings, the allowed list, nothing else */
    const char *ok_hosts[] = {"localhost", "LOCALHOST:8000", "127.0.0.1", "127.1.2.3:80", "[::1]", "[::1]:8000",
                              "a.localhost", "localhost.", "gpu-box.lan", "gpu-box.lan:8000"};
    const char *bad_hosts[] = {"attacker.example", "127.0.0.1.nip.io", "localhost.attacker.example", "[::2]",
                               "128.0.0.1", "0x7f.0.0.1", "", "[::1", "gpu-box.lan.evil"};
    char head[512];
    for (size_t i = 0; i < sizeof ok_hosts / sizeof ok_hosts[0]; i++) {
        snprintf(head, sizeof head, "GET /status HTTP/1.1\r\nHost: %s\r\n\r\n", ok_hosts[i]);
        if (check(&p, head) != 0)
            fail_msg("Host %s refused", ok_hosts[i]);
    }
    for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++) {
        snprintf(head, sizeof head, "GET /status HTTP/1.1\r\nHost: %s\r\n\r\n", bad_hosts[i]);
        if (check(&p, head) != 403)
            fail_msg("Host '%s' served", bad_hosts[i]);
    }
    assert_true(route_host_is_loopback("127.0.0.1:8000"));
    assert_false(route_host_is_loopback("127.0.0.256"));
    assert_int_equal(check(&p, "GET /health HTTP/1.1\r\nHost: attacker.example\r\n\r\n"), 0);
    assert_int_equal(check(&p, "GET /status HTTP/1.0\r\n\r\n"), 0); /* no Host: not a browser */
    /* without a key the dashboard's files follow the loopback rule too */
    assert_int_equal(check(&p, "GET /ui HTTP/1.1\r\nHost: attacker.example\r\n\r\n"), 403);
    assert_int_equal(check(&p, "GET /ui HTTP/1.1\r\nHost: localhost:8000\r\n\r\n"), 0);
    /* POST needs JSON */
    assert_int_equal(check(&p, "POST /roles/fast/unload HTTP/1.1\r\nHost: localhost\r\n\r\n"), 415);
    assert_int_equal(check(&p, "POST /roles/fast/unload HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\r\n"), 415);
    assert_int_equal(check(&p, "POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/jsonp\r\n\r\n"), 415);
    assert_int_equal(check(&p, "POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Type: Application/JSON; charset=utf-8\r\n\r\n"), 0);
    /* Origin */
    assert_int_equal(check(&p, "GET /status HTTP/1.1\r\nHost: localhost\r\nOrigin: http://evil\r\n\r\n"), 403);
    assert_int_equal(check(&p, "GET /status HTTP/1.1\r\nHost: localhost\r\nOrigin: null\r\n\r\n"), 403);
    assert_int_equal(check(&p, "GET /status HTTP/1.1\r\nHost: localhost\r\nOrigin: http://app.local:3000\r\n\r\n"), 0);
    http_head_t h;
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: localhost\r\nOrigin: http://app.local:3000\r\n\r\n", &h), 0);
    assert_string_equal(route_cors_origin(&p, &h), "http://app.local:3000");
    http_head_free(&h);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: localhost\r\nOrigin: http://evil\r\n\r\n", &h), 0);
    assert_null(route_cors_origin(&p, &h));
    route_policy_t none = {0};
    assert_null(route_cors_origin(&none, &h));
    http_head_free(&h);
    /* with a key, the key is what counts */
    route_policy_t k = {.api_key = "k"};
    assert_int_equal(check(&k, "GET /status HTTP/1.1\r\nHost: attacker.example\r\nAuthorization: Bearer k\r\n\r\n"), 0);
    assert_int_equal(check(&k, "OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
}

static int images_in(const char *body)
{
    json_t *j = json_loads(body, 0, NULL);
    assert_non_null(j);
    int n = route_count_images(j);
    json_decref(j);
    return n;
}

static void t_count_images(void **s)
{
    (void)s;
    /* OpenAI chat: image_url parts of every message */
    assert_int_equal(images_in("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                               "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:x\"}}]},{\"role\":\"assistant\","
                               "\"content\":\"b\"},{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
                               "{\"url\":\"data:y\"}},{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:z\"}}]}]}"),
                     3);
    assert_int_equal(images_in("{\"messages\":[{\"role\":\"user\",\"content\":\"text only\"}]}"), 0);
    /* audio is not an image; parts without a type neither */
    assert_int_equal(images_in("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\"},{\"x\":1},"
                               "{\"type\":7}]}]}"),
                     0);
    /* the Responses API: input_image parts, or input items that are one */
    assert_int_equal(images_in("{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"a\"},"
                               "{\"type\":\"input_image\",\"image_url\":\"data:x\"}]},{\"type\":\"input_image\"}]}"),
                     2);
    assert_int_equal(images_in("{\"input\":\"just text\"}"), 0);
    /* llama.cpp's /completion: multimodal_data of the prompt object(s) */
    assert_int_equal(images_in("{\"prompt\":{\"prompt_string\":\"<m> <m>\",\"multimodal_data\":[\"AAA\",\"BBB\"]}}"), 2);
    assert_int_equal(images_in("{\"prompt\":[{\"prompt_string\":\"<m>\",\"multimodal_data\":[\"AAA\"]},\"text\","
                               "{\"multimodal_data\":[\"B\",\"C\"]}]}"),
                     3);
    assert_int_equal(images_in("{\"prompt\":\"plain\"}"), 0);
    /* shapes that are not these: nothing, no crash */
    assert_int_equal(images_in("{\"messages\":{\"content\":[{\"type\":\"image_url\"}]},\"input\":5,\"prompt\":null}"), 0);
    assert_int_equal(images_in("[]"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_simple),   cmocka_unit_test(t_refused), cmocka_unit_test(t_head_end),
        cmocka_unit_test(t_chunked),  cmocka_unit_test(t_routes),  cmocka_unit_test(t_policy_key),
        cmocka_unit_test(t_policy_open), cmocka_unit_test(t_count_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
