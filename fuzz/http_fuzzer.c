/*
 * http_fuzzer.c — libFuzzer target for the gateway's request layer: the
 * HTTP/1.x framing of http.c and the route table / access policy of
 * route.c, fed the way httpd feeds them.
 *
 * The input is a byte stream of pipelined requests. The first byte picks a
 * split point: every head delimiter found by feeding the stream in two
 * pieces must equal the one found at once, and every chunked body decoded
 * from two pieces must equal the one decoded at once (the server reads
 * from the network in arbitrary pieces). A parsed head is checked for its
 * invariants (NUL-terminated strings, the path a prefix of the target,
 * header count, framing flags consistent) and classified and checked
 * against three policies (with a key, without one, without one but with
 * allowed lists); a refused head must say why with a status the server
 * knows. Bodies are consumed by Content-Length or chunked framing and the
 * next request is parsed from what is left, as a keep-alive connection
 * would.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "route.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEAD (64 * 1024)
#define MAX_BODY (1u << 20)

static void must(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "http_fuzzer: invariant broken: %s\n", what);
        abort();
    }
}

typedef struct {
    buf_t out;
} sink_t;

static void emit(void *ud, const char *p, size_t n) { must(buf_append(&((sink_t *)ud)->out, p, n) == 0, "sink"); }

/* Decode a chunked body from d[0..n) in pieces split at `at`; consumed
 * bytes or -status. */
static long decode(const char *d, size_t n, size_t at, sink_t *sk, bool *done)
{
    http_chunked_t c;
    char err[128];
    http_chunked_init(&c, MAX_BODY, MAX_HEAD);
    buf_init(&sk->out, 0);
    size_t off = 0;
    size_t parts[2] = {at < n ? at : n, 0};
    parts[1] = n - parts[0];
    for (int k = 0; k < 2 && !http_chunked_done(&c); k++) {
        if (!parts[k])
            continue;
        size_t len = k == 0 ? parts[0] : n - off;
        long u = http_chunked_feed(&c, d + off, len, emit, sk, err, sizeof err);
        if (u < 0) {
            must(err[0] != 0, "chunked refusal says why");
            must(u == -400 || u == -413 || u == -431, "chunked refusal status");
            return u;
        }
        must((size_t)u <= len, "chunked consumed within input");
        must(k == 0 ? ((size_t)u == len || http_chunked_done(&c)) : 1, "chunked stops only at the end");
        off += (size_t)u;
    }
    *done = http_chunked_done(&c);
    return (long)off;
}

static void check_head(const http_head_t *h)
{
    must(h->method_name && *h->method_name, "method");
    must(h->target && h->path, "target and path");
    size_t pl = strlen(h->path);
    must(!strncmp(h->target, h->path, pl), "path is a prefix of the target");
    must(h->target[pl] == 0 || h->target[pl] == '?', "path ends at '?'");
    must(!h->query || !strcmp(h->query, h->target + pl + 1), "query after '?'");
    must(h->target[0] == '/' || !strcmp(h->target, "*"), "origin-form target");
    must(h->minor == 0 || h->minor == 1, "version");
    must(h->n_headers <= HTTP_MAX_HEADERS, "header count");
    must(!(h->chunked && h->content_length), "chunked has no length");
    must(!(h->chunked && h->minor == 0), "no chunked in HTTP/1.0");
    must(h->content_length <= MAX_BODY, "length within max_body");
    must(h->minor == 0 || h->host, "HTTP/1.1 has a host");
    for (size_t i = 0; i < h->n_headers; i++) {
        must(*h->headers[i].name, "header name");
        must(!strpbrk(h->headers[i].name, " \t:\r\n"), "header name chars");
        must(!strpbrk(h->headers[i].value, "\r\n"), "header value has no line break");
        size_t vl = strlen(h->headers[i].value);
        must(!vl || (h->headers[i].value[0] != ' ' && h->headers[i].value[vl - 1] != ' '), "value trimmed");
    }
    char role[128], err[512], v[64];
    route_t rt = route_classify(h->method, h->path, role, sizeof role);
    must(rt >= ROUTE_NOT_FOUND && rt <= ROUTE_BAD_METHOD, "route");
    bool role_rt = rt == ROUTE_ROLE_LOAD || rt == ROUTE_ROLE_UNLOAD || rt == ROUTE_ROLE_LOGS || rt == ROUTE_ROLE_TUNE;
    must(role_rt == (role[0] != 0), "role name only for role routes");
    must(!strchr(role, '/'), "role name has no slash");
    static const char *const hosts[] = {"gpu-box.lan", NULL};
    static const char *const origins[] = {"http://app.local:3000", "*x", NULL};
    const route_policy_t pols[3] = {
        {.api_key = "k3y"}, {0}, {.allowed_hosts = hosts, .allowed_origins = origins}};
    for (int k = 0; k < 3; k++) {
        err[0] = 0;
        int st = route_check(&pols[k], rt, h, err, sizeof err);
        must(st == 0 || st == 401 || st == 403 || st == 415, "policy status");
        must(st == 0 || err[0], "policy refusal says why");
        must(rt != ROUTE_HEALTH || st == 0, "/health is open");
        const char *cors = route_cors_origin(&pols[k], h);
        must(!cors || k == 2, "CORS only for listed origins");
    }
    if (h->query)
        http_query_get(h->query, "tail", v, sizeof v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t split = data[0];
    const char *d = (const char *)data + 1;
    size_t n = size - 1;
    for (int req = 0; req < 16 && n; req++) {
        size_t look = n < MAX_HEAD ? n : MAX_HEAD;
        size_t scan = 0;
        size_t end = http_head_end(d, look, &scan);
        /* the same delimiter when the bytes arrive in two pieces */
        size_t scan2 = 0, end2 = split < look ? http_head_end(d, split, &scan2) : 0;
        if (!end2)
            end2 = http_head_end(d, look, &scan2);
        must(end == end2, "head delimiter independent of the split");
        if (!end)
            return 0;
        must(end <= look, "head within input");
        http_head_t h;
        char err[256] = "";
        int st = http_parse_head(d, end, MAX_BODY, &h, err, sizeof err);
        if (st) {
            must(err[0] != 0, "refusal says why");
            must(st == 400 || st == 413 || st == 417 || st == 431 || st == 501 || st == 505, "refusal status");
            return 0; /* the server closes the connection */
        }
        check_head(&h);
        d += end;
        n -= end;
        if (h.chunked) {
            sink_t a, b;
            bool da = false, db = false;
            long ua = decode(d, n, n, &a, &da), ub = decode(d, n, split, &b, &db);
            must(ua == ub && da == db, "chunked result independent of the split");
            must(ua < 0 || (a.out.len == b.out.len && (!a.out.len || !memcmp(a.out.data, b.out.data, a.out.len))),
                 "chunked body independent of the split");
            buf_free(&a.out);
            buf_free(&b.out);
            http_head_free(&h);
            if (ua < 0 || !da)
                return 0;
            d += ua;
            n -= (size_t)ua;
        } else {
            uint64_t cl = h.content_length;
            http_head_free(&h);
            if (cl > n)
                return 0;
            d += cl;
            n -= (size_t)cl;
        }
    }
    return 0;
}
