/*
 * test_e2e_dash.c — the dashboard's endpoints on the real gateway in front
 * of the real llama-server (tiny synthetic models), over raw loopback
 * sockets so every header and chunk is seen as sent:
 *   - /ui and its files from the binary: types, ETag, 304 on a match
 *     (without a body or a length), CSP, 404 for other names; open with an
 *     api_key while /status, /roles/NAME/tune and the log stream need it;
 *   - /roles/NAME/logs?follow=1: the tail, then a chat request's lines as
 *     they come (chunked); the stream ends when the client goes (the gauge
 *     variet_log_streams_open drops to 0) or half-closes; at most 16 at
 *     once (429);
 *   - /roles/NAME/tune: 404 naming tune-NAME.json beside the config, the
 *     history as written, its two plots as SVG, 400 for another plot,
 *     500 naming a malformed file.
 * The teardown stops variet (SIGTERM) and fails a test whose variet did not
 * exit 0 or whose log holds a sanitizer report.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e_util.h"
#include "util.h"

typedef struct {
    char dir[512], cfg[600], log[600];
    int port;
    pid_t pid;
} srv_t;

static int setup(void **state)
{
    *state = xcalloc(1, sizeof(srv_t));
    return 0;
}

static int teardown(void **state)
{
    srv_t *s = *state;
    int rc = 0;
    if (s->pid > 0) {
        int st = e2e_stop(s->pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "  variet did not exit 0 on SIGTERM; log %s\n", s->log);
            rc = -1;
        }
    }
    char *log = s->log[0] ? e2e_slurp(s->log, NULL) : NULL;
    if (log && (strstr(log, "ERROR: AddressSanitizer") || strstr(log, "ERROR: LeakSanitizer") ||
                strstr(log, "runtime error:"))) {
        fprintf(stderr, "  sanitizer report in %s\n", s->log);
        rc = -1;
    }
    free(log);
    free(s);
    return rc;
}

static void synth(const char *preset, const char *path)
{
    if (access(path, R_OK) == 0)
        return;
    char *cmd = xasprintf("'%s' synth %s -o '%s' 2>&1", VARIET_BINARY, preset, path), *out = NULL;
    int rc = e2e_sh(cmd, &out);
    if (rc)
        fail_msg("%s: %s", cmd, out);
    free(cmd);
    free(out);
}

/* Start variet with roles fast and balanced (tiny models) in a folder of
 * its own; key: the api_key ("" none). */
static void srv_start(srv_t *s, const char *name, const char *key)
{
    snprintf(s->dir, sizeof s->dir, "%s/dash-%s", e2e_tmpdir(), name);
    mkdir(s->dir, 0755);
    char *models = xasprintf("%s/models", e2e_tmpdir());
    mkdir(models, 0755);
    char *fast = xasprintf("%s/dash-fast.gguf", models), *bal = xasprintf("%s/dash-balanced.gguf", models);
    synth("tiny-llama", fast);
    synth("tiny-qwen35moe", bal);
    snprintf(s->cfg, sizeof s->cfg, "%s/engine_models.json", s->dir);
    snprintf(s->log, sizeof s->log, "%s/variet.log", s->dir);
    s->port = e2e_free_port();
    char *keyf = *key ? xasprintf("\"api_key\": \"%s\",", key) : xstrdup("");
    char *text = xasprintf("{\"_engine\": {\"host\": \"127.0.0.1\", \"port\": %d, \"llama_server\": \"%s\", %s "
                           "\"max_loaded\": 1, \"stop_grace\": 3},\n"
                           " \"fast\": {\"model_path\": \"%s\", \"args\": [\"-c\", \"2048\", \"-np\", \"1\", \"-t\", "
                           "\"2\"]},\n"
                           " \"balanced\": {\"model_path\": \"%s\", \"args\": [\"-c\", \"2048\", \"-np\", \"1\", "
                           "\"-t\", \"2\"]}}\n",
                           s->port, e2e_llama_server(), keyf, fast, bal);
    char err[256];
    assert_int_equal(file_write_atomic(s->cfg, text, strlen(text), err, sizeof err), 0);
    free(text);
    free(keyf);
    free(fast);
    free(bal);
    free(models);
    char *argv[] = {(char *)VARIET_BINARY, "serve", "--config", s->cfg, NULL};
    s->pid = e2e_spawn(argv, s->log);
    assert_true(s->pid > 0);
    for (double t0 = now_s(); now_s() - t0 < 15; usleep(20000)) {
        char *resp = NULL;
        int code = e2e_http(s->port, "GET", "/health", NULL, &resp);
        free(resp);
        if (code == 200)
            return;
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            break;
        }
    }
    fail_msg("variet serve did not answer /health; log %s", s->log);
}

/* ---------- raw HTTP ---------- */

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_all(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = write(fd, s, n);
        assert_true(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

/* Read into b until `want` appears in it (NULL: until EOF) or timeout_s
 * passes. true when it appeared (or EOF came, for NULL). */
static bool read_until(int fd, buf_t *b, const char *want, double timeout_s)
{
    double t0 = now_s();
    while (now_s() - t0 < timeout_s) {
        if (want && b->data && strstr(b->data, want))
            return true;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        char tmp[8192];
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n <= 0)
            return !want || (b->data && strstr(b->data, want));
        buf_append(b, tmp, (size_t)n);
    }
    return want && b->data && strstr(b->data, want);
}

/* GET path with extra header lines (each ending in \r\n, or NULL) and
 * Connection: close; the whole answer (head and body) in a buffer (caller
 * frees). Returns the status. */
static int get(int port, const char *path, const char *hdrs, char **out)
{
    int fd = dial(port);
    bool host = hdrs && strstr(hdrs, "Host:");
    char *req = xasprintf("GET %s HTTP/1.1\r\n%s%sConnection: close\r\n\r\n", path, host ? "" : "Host: 127.0.0.1\r\n",
                          hdrs ? hdrs : "");
    send_all(fd, req);
    free(req);
    buf_t b;
    buf_init(&b, 0);
    buf_append(&b, "", 0);
    read_until(fd, &b, NULL, 20);
    close(fd);
    int code = -1;
    sscanf(b.data, "HTTP/1.1 %d", &code);
    *out = b.data;
    return code;
}

static const char *body_of(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");
    return p ? p + 4 : "";
}

/* The value of a metric line "name value" in /metrics, or -1. */
static long metric(int port, const char *auth, const char *name)
{
    char *h = auth ? xasprintf("Authorization: Bearer %s\r\n", auth) : NULL, *r = NULL;
    get(port, "/metrics", h, &r);
    free(h);
    char *want = xasprintf("\n%s ", name);
    const char *p = strstr(r, want);
    long v = p ? strtol(p + strlen(want), NULL, 10) : -1;
    free(want);
    free(r);
    return v;
}

static bool wait_metric(int port, const char *auth, const char *name, long v, double timeout_s)
{
    double t0 = now_s();
    while (now_s() - t0 < timeout_s) {
        if (metric(port, auth, name) == v)
            return true;
        usleep(50000);
    }
    return false;
}

static int chat(int port, const char *key, const char *role)
{
    int fd = dial(port);
    char body[256];
    snprintf(body, sizeof body, "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":4}",
             role);
    char *auth = key ? xasprintf("Authorization: Bearer %s\r\n", key) : xstrdup("");
    char *req = xasprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                          auth, strlen(body), body);
    send_all(fd, req);
    free(req);
    free(auth);
    buf_t b;
    buf_init(&b, 0);
    buf_append(&b, "", 0);
    read_until(fd, &b, NULL, 60);
    close(fd);
    int code = -1;
    sscanf(b.data, "HTTP/1.1 %d", &code);
    buf_free(&b);
    return code;
}

/* ---------- tests ---------- */

static void t_assets(void **state)
{
    srv_t *s = *state;
    srv_start(s, "assets", "");
    char *r = NULL;
    assert_int_equal(get(s->port, "/ui", NULL, &r), 200);
    assert_non_null(strstr(r, "Content-Type: text/html; charset=utf-8\r\n"));
    assert_non_null(strstr(r, "Content-Security-Policy: default-src 'none'; script-src 'self'"));
    assert_non_null(strstr(r, "Cache-Control: no-cache\r\n"));
    assert_non_null(strstr(body_of(r), "<title>Variet dashboard</title>"));
    /* the same bytes as the file in ui/ */
    char *path = xasprintf("%s/ui/index.html", VARIET_SOURCE_DIR);
    char *file = e2e_slurp(path, NULL);
    free(path);
    assert_string_equal(body_of(r), file);
    free(file);
    const char *et = strstr(r, "ETag: \"");
    assert_non_null(et);
    char etag[64];
    assert_int_equal(sscanf(et, "ETag: %63s", etag), 1);
    free(r);

    /* a matching If-None-Match: 304, no body, no length; a weak or listed one matches too */
    char *h = xasprintf("If-None-Match: %s\r\n", etag);
    assert_int_equal(get(s->port, "/ui/", h, &r), 304);
    free(h);
    assert_null(strstr(r, "Content-Length"));
    assert_string_equal(body_of(r), "");
    free(r);
    h = xasprintf("If-None-Match: \"other\", W/%s\r\n", etag);
    assert_int_equal(get(s->port, "/ui/index.html", h, &r), 304);
    free(h);
    free(r);
    assert_int_equal(get(s->port, "/ui", "If-None-Match: \"stale\"\r\n", &r), 200);
    free(r);

    assert_int_equal(get(s->port, "/ui/app.js", NULL, &r), 200);
    assert_non_null(strstr(r, "Content-Type: text/javascript; charset=utf-8\r\n"));
    assert_non_null(strstr(body_of(r), "followLog"));
    free(r);
    assert_int_equal(get(s->port, "/ui/style.css", NULL, &r), 200);
    assert_non_null(strstr(r, "Content-Type: text/css"));
    free(r);
    assert_int_equal(get(s->port, "/ui/nope.js", NULL, &r), 404);
    assert_non_null(strstr(r, "no dashboard file /ui/nope.js"));
    free(r);
    assert_int_equal(get(s->port, "/ui/../status", NULL, &r), 404);
    free(r);
    /* without an api_key the loopback rule holds for the page too */
    assert_int_equal(get(s->port, "/ui", "Host: evil.example\r\n", &r), 403);
    free(r);
}

static void t_api_key(void **state)
{
    srv_t *s = *state;
    const char *key = "dash-key-1234";
    srv_start(s, "key", key);
    char *r = NULL;
    assert_int_equal(get(s->port, "/ui", NULL, &r), 200); /* the page, to ask for the key */
    free(r);
    assert_int_equal(get(s->port, "/ui/app.js", NULL, &r), 200);
    free(r);
    assert_int_equal(get(s->port, "/status", NULL, &r), 401);
    free(r);
    assert_int_equal(get(s->port, "/roles/fast/tune", NULL, &r), 401);
    free(r);
    assert_int_equal(get(s->port, "/roles/fast/logs?follow=1", NULL, &r), 401);
    free(r);
    assert_int_equal(get(s->port, "/roles/fast/logs?follow=1", "Authorization: Bearer wrong\r\n", &r), 401);
    free(r);
    assert_int_equal(get(s->port, "/status", "Authorization: Bearer dash-key-1234\r\n", &r), 200);
    free(r);
    /* with the key: the stream starts */
    int fd = dial(s->port);
    send_all(fd, "GET /roles/fast/logs?follow=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer dash-key-1234\r\n\r\n");
    buf_t b;
    buf_init(&b, 0);
    assert_true(read_until(fd, &b, "Transfer-Encoding: chunked\r\n", 5));
    assert_non_null(strstr(b.data, "HTTP/1.1 200"));
    assert_true(wait_metric(s->port, key, "variet_log_streams_open", 1, 5));
    close(fd);
    assert_true(wait_metric(s->port, key, "variet_log_streams_open", 0, 5));
    buf_free(&b);
}

static void t_follow(void **state)
{
    srv_t *s = *state;
    srv_start(s, "follow", "");
    /* fast has never run: the stream opens with nothing, then the load's
     * and the request's lines come as they are printed */
    int fd = dial(s->port);
    send_all(fd, "GET /roles/fast/logs?follow=1&tail=5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    buf_t b;
    buf_init(&b, 0);
    assert_true(read_until(fd, &b, "\r\n\r\n", 5));
    assert_non_null(strstr(b.data, "HTTP/1.1 200"));
    assert_non_null(strstr(b.data, "Content-Type: text/plain; charset=utf-8\r\n"));
    assert_non_null(strstr(b.data, "Transfer-Encoding: chunked\r\n"));
    assert_true(wait_metric(s->port, NULL, "variet_log_streams_open", 1, 5));
    assert_null(strstr(b.data, "print_timing"));
    assert_int_equal(chat(s->port, NULL, "fast"), 200);
    if (!read_until(fd, &b, "print_timing", 15))
        fail_msg("the request's lines did not stream; got %zu bytes:\n%.2000s", b.len, b.data);
    assert_non_null(strstr(b.data, "listening on")); /* the load's lines came first */
    assert_true(strstr(b.data, "listening on") < strstr(b.data, "print_timing"));
    /* the client goes: the stream ends */
    close(fd);
    assert_true(wait_metric(s->port, NULL, "variet_log_streams_open", 0, 5));

    /* a new follower gets the tail (the last 5 lines) first */
    fd = dial(s->port);
    send_all(fd, "GET /roles/fast/logs?follow=1&tail=5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    buf_reset(&b);
    assert_true(read_until(fd, &b, "all slots are idle", 5));
    assert_null(strstr(b.data, "listening on")); /* only the last 5 lines */
    /* a client that closes its sending side ends it too: the last chunk, then EOF */
    shutdown(fd, SHUT_WR);
    assert_true(read_until(fd, &b, NULL, 5));
    assert_non_null(strstr(b.data, "\r\n0\r\n\r\n"));
    close(fd);
    assert_true(wait_metric(s->port, NULL, "variet_log_streams_open", 0, 5));

    /* at most 16 at once */
    int fds[17];
    for (int i = 0; i < 16; i++) {
        fds[i] = dial(s->port);
        send_all(fds[i], "GET /roles/balanced/logs?follow=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    }
    assert_true(wait_metric(s->port, NULL, "variet_log_streams_open", 16, 5));
    char *r = NULL;
    assert_int_equal(get(s->port, "/roles/balanced/logs?follow=1", NULL, &r), 429);
    assert_non_null(strstr(r, "Retry-After: 1"));
    free(r);
    for (int i = 0; i < 16; i++)
        close(fds[i]);
    assert_true(wait_metric(s->port, NULL, "variet_log_streams_open", 0, 5));
    /* the plain tail is unchanged */
    assert_int_equal(get(s->port, "/roles/fast/logs?tail=3", NULL, &r), 200);
    assert_non_null(strstr(r, "Content-Length:"));
    free(r);
    /* an unknown role */
    assert_int_equal(get(s->port, "/roles/nope/logs?follow=1", NULL, &r), 404);
    free(r);
    /* streams open at shutdown end with it (the teardown checks the exit) */
    fd = dial(s->port);
    send_all(fd, "GET /roles/fast/logs?follow=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_true(wait_metric(s->port, NULL, "variet_log_streams_open", 1, 5));
    assert_int_equal(e2e_stop(s->pid), 0);
    s->pid = 0;
    buf_reset(&b);
    assert_true(read_until(fd, &b, NULL, 5)); /* closed, not left hanging */
    close(fd);
    buf_free(&b);
}

static void t_tune(void **state)
{
    srv_t *s = *state;
    srv_start(s, "tune", "");
    char *r = NULL;
    assert_int_equal(get(s->port, "/roles/balanced/tune", NULL, &r), 404);
    char *want = xasprintf("%s/tune-balanced.json does not exist", s->dir);
    if (!strstr(r, want))
        fail_msg("404 without the path %s: %s", want, r);
    free(want);
    free(r);
    /* a recorded history, where variet tune writes it */
    char *src = xasprintf("%s/gpu/h200-tune-2/tune-12800.json", VARIET_FIXTURES);
    size_t len = 0;
    char *hist = e2e_slurp(src, &len), err[256];
    free(src);
    assert_non_null(hist);
    char *dst = xasprintf("%s/tune-balanced.json", s->dir);
    assert_int_equal(file_write_atomic(dst, hist, len, err, sizeof err), 0);
    assert_int_equal(get(s->port, "/roles/balanced/tune", NULL, &r), 200);
    assert_non_null(strstr(r, "Content-Type: application/json\r\n"));
    assert_string_equal(body_of(r), hist);
    free(r);
    assert_int_equal(get(s->port, "/roles/balanced/tune?plot=trials", NULL, &r), 200);
    assert_non_null(strstr(r, "Content-Type: image/svg+xml\r\n"));
    assert_non_null(strstr(r, "Content-Security-Policy: default-src 'none'"));
    assert_true(!strncmp(body_of(r), "<svg ", 5));
    assert_non_null(strstr(r, "balanced: t/s per trial"));
    free(r);
    assert_int_equal(get(s->port, "/roles/balanced/tune?plot=frontier", NULL, &r), 200);
    assert_non_null(strstr(r, ">32K</text>"));
    free(r);
    assert_int_equal(get(s->port, "/roles/balanced/tune?plot=pie", NULL, &r), 400);
    assert_non_null(strstr(r, "plot must be trials or frontier"));
    free(r);
    /* a malformed file: 500 naming it and the place */
    assert_int_equal(file_write_atomic(dst, "{\"trials\": [", 12, err, sizeof err), 0);
    assert_int_equal(get(s->port, "/roles/balanced/tune", NULL, &r), 500);
    assert_non_null(strstr(r, "tune-balanced.json:1:"));
    free(r);
    assert_int_equal(file_write_atomic(dst, "[1]", 3, err, sizeof err), 0);
    assert_int_equal(get(s->port, "/roles/balanced/tune", NULL, &r), 500);
    assert_non_null(strstr(r, "not a tuning history"));
    free(r);
    assert_int_equal(get(s->port, "/roles/nope/tune", NULL, &r), 404);
    assert_non_null(strstr(r, "unknown role 'nope'"));
    free(r);
    free(dst);
    free(hist);
}

int main(void)
{
    if (!e2e_llama_server()) {
        fprintf(stderr, "no llama-server (set VARIET_LLAMA_SERVER)\n");
        return 1;
    }
    const char *f = getenv("E2E_FILTER");
    if (f)
        cmocka_set_test_filter(f);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_assets, setup, teardown),
        cmocka_unit_test_setup_teardown(t_api_key, setup, teardown),
        cmocka_unit_test_setup_teardown(t_follow, setup, teardown),
        cmocka_unit_test_setup_teardown(t_tune, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
