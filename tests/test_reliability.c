/*
 * test_reliability.c — the gateway under slow, hostile and unlucky clients,
 * at scale, printing counts. Real variet, real llama-server on synthetic
 * models, over loopback (it reuses test_e2e_serve.c's harness, included
 * below with its main renamed).
 *
 * Scenarios (each prints one "reliability:" line of counts):
 *   slow headers     N connections trickling header lines: all closed by the deadline
 *   fd exhaustion    far more connections than descriptors: no spin, no log flood,
 *                    established connections served, recovery
 *   kill mid-stream  backend SIGKILLed on a stream's first bytes, R rounds: every
 *                    stream ends (error event), no hang; no orphan or zombie left
 *   kill at request  backend SIGKILLed and a request sent at once, R rounds: 200s
 *   gateway kill     variet SIGKILLed with two roles up, K rounds: no llama-server left
 *   swap under load  3 roles, max_loaded 1, C clients for T s: every request answered
 *                    2xx or an explicit 429/503
 *   killed saves     engine_models.json writes killed K times: parseable, no temp file
 *   malformed HTTP   CL+TE, duplicate Content-Length, bad chunk sizes, NUL in the path,
 *                    ".." in role paths, 100k-deep JSON, then M mutated requests:
 *                    alive, RSS flat
 *   keys             with api_key: every route 401 without it; the backends' ports
 *                    401 without the backend key
 *   browser          without api_key: foreign Host / Origin / content type refused
 *
 * Short variant (default; ctest, CI): seconds per scenario. VARIET_RELIABILITY=long
 * for the full sizes (about 3 minutes): 1000 slow connections, 200 kills, 48
 * clients for 90 s, 20000 mutations.
 */
#define main e2e_serve_main
#include "test_e2e_serve.c"
#undef main

#include <dirent.h>

#include "registry.h"

static bool long_run(void)
{
    const char *v = getenv("VARIET_RELIABILITY");
    return v && !strcmp(v, "long");
}

#define SIZE(short_n, long_n) (long_run() ? (long_n) : (short_n))

/* llama-server processes that are children (or zombies) of pid. */
static int children_of(pid_t pid)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        int64_t p;
        if (!parse_i64(e->d_name, 1, INT32_MAX, &p))
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)p);
        char *t = e2e_slurp(path, NULL);
        const char *rp = t ? strrchr(t, ')') : NULL;
        int ppid = 0;
        if (rp)
            sscanf(rp + 2, "%*c %d", &ppid);
        n += ppid == pid;
        free(t);
    }
    if (d)
        closedir(d);
    return n;
}

static void r_slow_headers(void **state)
{
    srv_t *s = *state;
    int n = SIZE(100, 1000);
    srv_start(s, "r-slow", ",\"header_timeout\":1,\"max_connections\":2000", FAST);
    int *fds = xcalloc((size_t)n, sizeof *fds);
    bool *done = xcalloc((size_t)n, sizeof *done);
    int opened = 0;
    for (int i = 0; i < n; i++) {
        fds[i] = raw_connect(s->port);
        if (fds[i] < 0)
            continue;
        opened++;
        const char *first = "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n";
        ssize_t w = send(fds[i], first, strlen(first), MSG_NOSIGNAL);
        (void)w;
    }
    double t0 = now_s();
    int closed = 0;
    while (now_s() - t0 < 4 && closed < opened) {
        for (int i = 0; i < n; i++) {
            if (fds[i] < 0 || done[i])
                continue;
            ssize_t w = send(fds[i], "X-Slow: 1\r\n", 11, MSG_NOSIGNAL | MSG_DONTWAIT);
            char buf[512];
            ssize_t k = recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
            if (w < 0 || k >= 0) {
                done[i] = true;
                closed++;
            }
        }
        usleep(100000);
    }
    double secs = now_s() - t0;
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    printf("reliability: slow headers: %d of %d trickling connections closed after %.2f s (header_timeout 1 s)\n",
           closed, opened, secs);
    assert_int_equal(closed, opened);
    assert_true(opened >= n * 9 / 10);
    chat_ok(s, "fast", "fast");
    free(fds);
    free(done);
}

static void r_fd_exhaustion(void **state)
{
    srv_t *s = *state;
    int n = SIZE(150, 500);
    srv_config(s, "r-fd", ",\"header_timeout\":30", FAST);
    char ps[16];
    s->port = e2e_free_port();
    snprintf(ps, sizeof ps, "%d", s->port);
    char *argv[] = {"/usr/bin/prlimit", "--nofile=64:64", (char *)VARIET_BINARY, "serve", "--config", s->cfg, "--port", ps, NULL};
    s->pid = e2e_spawn(argv, s->log);
    double t0 = now_s();
    char *resp = NULL;
    while (http(s, "GET", "/health", NULL, &resp) != 200 && now_s() - t0 < 15) {
        free(resp);
        resp = NULL;
        usleep(20000);
    }
    free(resp);
    chat_ok(s, "fast", "fast"); /* a backend up: its pipe and connections count too */
    int keep = raw_connect(s->port);
    const char *ka = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    char buf[4096];
    assert_int_equal(write(keep, ka, strlen(ka)), (ssize_t)strlen(ka));
    struct pollfd kp = {.fd = keep, .events = POLLIN};
    assert_int_equal(poll(&kp, 1, 5000), 1);
    assert_true(read(keep, buf, sizeof buf) > 0);
    int *fds = xcalloc((size_t)n, sizeof *fds), m = 0;
    for (int i = 0; i < n; i++)
        if ((fds[m] = raw_connect(s->port)) >= 0)
            m++;
    usleep(500000);
    double c0 = proc_cpu_s(s->pid);
    usleep(3000000);
    double cpu = proc_cpu_s(s->pid) - c0;
    int served = 0;
    for (int k = 0; k < 5; k++) {
        assert_int_equal(write(keep, ka, strlen(ka)), (ssize_t)strlen(ka));
        kp.revents = 0;
        ssize_t r = poll(&kp, 1, 5000) == 1 ? read(keep, buf, sizeof buf - 1) : -1;
        if (r > 0) {
            buf[r] = 0;
            served += strstr(buf, "HTTP/1.1 200") != NULL;
        }
    }
    int shed = 0;
    for (int i = 0; i < m; i++) {
        ssize_t k = recv(fds[i], buf, sizeof buf - 1, MSG_DONTWAIT);
        if (k > 0) {
            buf[k] = 0;
            shed += strstr(buf, " 503 ") != NULL;
        }
        close(fds[i]);
    }
    close(keep);
    char *log = e2e_slurp(s->log, NULL);
    int lines = 0;
    for (const char *p = log; p && (p = strstr(p, "accept:")); p++)
        lines++;
    free(log);
    usleep(300000);
    t0 = now_s();
    int code;
    while ((code = http(s, "GET", "/v1/models", NULL, &resp)) != 200 && now_s() - t0 < 3) {
        free(resp);
        resp = NULL;
        usleep(50000);
    }
    free(resp);
    printf("reliability: fd exhaustion: %d connections against nofile 64: %.2f CPU-s in 3 s, %d log lines, "
           "%d shed with 503, %d of 5 requests served on an established connection, recovered: %s\n",
           m, cpu, lines, shed, served, code == 200 ? "yes" : "no");
    assert_true(cpu < 0.6);
    assert_true(lines <= 3);
    assert_int_equal(served, 5);
    assert_int_equal(code, 200);
    free(fds);
}

static void kill_long(stream_t *st)
{
    pid_t pid = role_pid(st->s, "long");
    if (pid > 0 && kill(pid, SIGKILL) == 0)
        st->killed = pid;
}

static void r_kill_midstream(void **state)
{
    srv_t *s = *state;
    int rounds = SIZE(4, 200);
    srv_start(s, "r-midstream", ",\"restart_max\":100,\"restart_window\":1", ROLE("long", "tiny-llama", LONG_ARGS, ""));
    int ended = 0, error_event = 0, hung = 0;
    for (int i = 0; i < rounds; i++) {
        stream_t *st = xcalloc(1, sizeof *st);
        st->on_first = kill_long;
        char *body = chat_body("long", 100000, ",\"stream\":true,\"ignore_eos\":true");
        long code;
        CURLcode rc = stream_post(s, body, st, 30, &code);
        free(body);
        hung += rc == CURLE_OPERATION_TIMEDOUT;
        ended += rc != CURLE_OPERATION_TIMEDOUT;
        error_event += strstr(st->body.data, "data: {\"error\"") != NULL;
        if (st->killed)
            wait_gone(st->killed, 2);
        buf_free(&st->body);
        free(st);
        /* wait for the restart before the next round */
        assert_true(wait_state(s, "long", "ready", 20) || (chat_ok(s, "long", "long"), true));
    }
    usleep(300000);
    int kids = children_of(s->pid);
    printf("reliability: kill mid-stream: %d rounds: %d streams ended (%d with an error event), %d hung; "
           "%d llama-server children of variet left (1 expected: the restarted one)\n",
           rounds, ended, error_event, hung, kids);
    assert_int_equal(hung, 0);
    assert_int_equal(error_event, rounds);
    assert_true(kids <= 1);
}

static void r_kill_at_request(void **state)
{
    srv_t *s = *state;
    int rounds = SIZE(4, 50);
    srv_start(s, "r-atrequest", ",\"restart_max\":100,\"restart_window\":1", FAST);
    int ok = 0;
    for (int i = 0; i < rounds; i++) {
        chat_ok(s, "fast", "fast");
        pid_t pid = role_pid(s, "fast");
        assert_int_equal(kill(pid, SIGKILL), 0);
        int code;
        json_t *j = chat(s, "fast", 4, &code); /* at once: variet has not seen the death yet */
        ok += code == 200 && json_array_size(json_object_get(j, "choices")) == 1;
        if (code != 200) {
            char *d = json_dumps(j, JSON_COMPACT);
            fprintf(stderr, "  round %d: %d %.200s\n", i, code, d);
            free(d);
        }
        json_decref(j);
        wait_gone(pid, 2);
    }
    printf("reliability: kill at request: %d of %d requests sent right after the backend's SIGKILL answered 200\n",
           ok, rounds);
    assert_int_equal(ok, rounds);
}

static void r_gateway_kill(void **state)
{
    srv_t *s = *state;
    int rounds = SIZE(2, 50);
    int left = 0;
    for (int i = 0; i < rounds; i++) {
        char name[32];
        snprintf(name, sizeof name, "r-gwkill-%d", i);
        srv_start(s, name, NULL, FAST ",\n  " MOE);
        chat_ok(s, "fast", "fast");
        chat_ok(s, "moe", "moe");
        pid_t a = role_pid(s, "fast"), b = role_pid(s, "moe");
        assert_int_equal(kill(s->pid, SIGKILL), 0);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
        bool ga = wait_gone(a, 2), gb = wait_gone(b, 2);
        left += !ga + !gb;
        if (!ga)
            kill(a, SIGKILL);
        if (!gb)
            kill(b, SIGKILL);
    }
    printf("reliability: gateway kill: %d SIGKILLs of variet with 2 roles up: %d llama-server left\n", rounds, left);
    assert_int_equal(left, 0);
}

static void r_swap_under_load(void **state)
{
    srv_t *s = *state;
    int clients = SIZE(12, 48);
    double secs = SIZE(6, 90);
    srv_start(s, "r-swap", ",\"max_loaded\":1,\"queue_timeout\":60", FAST ",\n  " BALANCED ",\n  " MOE);
    const char *roles[] = {"fast", "balanced", "moe"};
    CURLM *m = curl_multi_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", s->port);
    typedef struct {
        CURL *e;
        buf_t body;
        char *req;
    } slot_t;
    slot_t *sl = xcalloc((size_t)clients, sizeof *sl);
    unsigned seed = 12345;
    long sent = 0, ok = 0, busy = 0, bad = 0;
    double t0 = now_s();
    for (int i = 0; i < clients; i++) {
        sl[i].e = curl_easy_init();
        buf_init(&sl[i].body, 0);
    }
    /* (re)start slot i with a random role */
    for (int i = 0; i < clients; i++) {
        sl[i].req = chat_body(roles[rand_r(&seed) % 3], 4, NULL);
        buf_reset(&sl[i].body);
        curl_easy_setopt(sl[i].e, CURLOPT_URL, url);
        curl_easy_setopt(sl[i].e, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(sl[i].e, CURLOPT_POSTFIELDS, sl[i].req);
        curl_easy_setopt(sl[i].e, CURLOPT_TIMEOUT, 120L);
        curl_easy_setopt(sl[i].e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(sl[i].e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(sl[i].e, CURLOPT_WRITEDATA, &sl[i].body);
        curl_easy_setopt(sl[i].e, CURLOPT_PRIVATE, (void *)(intptr_t)i);
        curl_multi_add_handle(m, sl[i].e);
        sent++;
    }
    int running = clients;
    while (running > 0) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            char *pv;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &pv);
            int i = (int)(intptr_t)pv;
            long code = -1;
            if (msg->data.result == CURLE_OK)
                curl_easy_getinfo(sl[i].e, CURLINFO_RESPONSE_CODE, &code);
            json_t *j = json_loads(sl[i].body.data ? sl[i].body.data : "", JSON_ALLOW_NUL, NULL);
            if (code >= 200 && code < 300 && json_array_size(json_object_get(j, "choices")) == 1)
                ok++;
            else if ((code == 503 || code == 429) && json_is_string(jget(j, "error", "message", NULL)))
                busy++;
            else {
                bad++;
                fprintf(stderr, "  swap: %s %ld %.200s\n", curl_easy_strerror(msg->data.result), code,
                        sl[i].body.data ? sl[i].body.data : "");
            }
            json_decref(j);
            curl_multi_remove_handle(m, sl[i].e);
            free(sl[i].req);
            sl[i].req = NULL;
            if (now_s() - t0 < secs) {
                sl[i].req = chat_body(roles[rand_r(&seed) % 3], 4, NULL);
                buf_reset(&sl[i].body);
                curl_easy_setopt(sl[i].e, CURLOPT_POSTFIELDS, sl[i].req);
                curl_multi_add_handle(m, sl[i].e);
                sent++;
                running++;
            }
        }
        if (running)
            curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    for (int i = 0; i < clients; i++) {
        curl_easy_cleanup(sl[i].e);
        buf_free(&sl[i].body);
        free(sl[i].req);
    }
    free(sl);
    curl_slist_free_all(h);
    curl_multi_cleanup(m);
    char *resp = NULL;
    assert_int_equal(http(s, "GET", "/metrics", NULL, &resp), 200);
    double loads = metric(resp, "variet_loads_total{role=\"fast\"}") + metric(resp, "variet_loads_total{role=\"balanced\"}") +
                   metric(resp, "variet_loads_total{role=\"moe\"}");
    free(resp);
    printf("reliability: swap under load: %ld requests from %d clients over %.0f s across 3 roles (max_loaded 1, "
           "%.0f loads): %ld answered 2xx, %ld 429/503 with a reason, %ld otherwise\n",
           sent, clients, secs, loads, ok, busy, bad);
    assert_int_equal(bad, 0);
    assert_int_equal(ok + busy, sent);
    assert_true(ok > 0);
}

static int temps_in(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    return n;
}

static void r_killed_saves(void **state)
{
    (void)state;
    int rounds = SIZE(20, 200);
    char *dir = xasprintf("%s/r-saves", e2e_tmpdir());
    mkdir(dir, 0755);
    char *path = xasprintf("%s/engine_models.json", dir);
    buf_t b;
    buf_init(&b, 0);
    buf_printf(&b, "{\"_engine\": {\"port\": 8000}");
    for (int i = 0; i < 200; i++)
        buf_printf(&b, ", \"role%d\": {\"model_path\": \"m%d.gguf\", \"args\": [\"-c\", \"%d\"], \"note\": \"%0300d\"}", i, i,
                   2048 + i, i);
    buf_printf(&b, "}\n");
    write_file(path, b.data);
    buf_free(&b);
    registry_t *r = NULL;
    char err[512];
    assert_int_equal(registry_load(path, &r, err, sizeof err), 0);
    int unparsable = 0, with_temps = 0;
    for (int k = 0; k < rounds; k++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (;;)
                registry_save(r, path, true, err, sizeof err);
        }
        usleep(500 + (useconds_t)(k * 7919 % 8000));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        registry_t *r2 = NULL;
        unparsable += registry_load(path, &r2, err, sizeof err) != 0;
        registry_free(&r2);
        with_temps += temps_in(dir) > 0;
    }
    assert_int_equal(registry_save(r, path, true, err, sizeof err), 0);
    int after = temps_in(dir);
    printf("reliability: killed saves: %d writers SIGKILLed mid-save: %d unparsable, %d left a temp file "
           "(%d after the next save)\n", rounds, unparsable, with_temps, after);
    assert_int_equal(unparsable, 0);
    assert_int_equal(after, 0);
    assert_true(with_temps <= rounds / 10);
    registry_free(&r);
    free(path);
    free(dir);
}

static long rss_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *t = e2e_slurp(path, NULL);
    const char *p = t ? strstr(t, "VmRSS:") : NULL;
    long kb = p ? strtol(p + 6, NULL, 10) : -1;
    free(t);
    return kb;
}

static void r_malformed(void **state)
{
    srv_t *s = *state;
    int mutations = SIZE(1500, 20000);
    srv_start(s, "r-malformed", ",\"header_timeout\":2", FAST);
    chat_ok(s, "fast", "fast");
    static const struct {
        const char *name, *req;
        size_t len;
        int want;
    } cases[] = {
#define C(name, text, want) {name, text, sizeof text - 1, want}
        C("CL+TE", "POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        C("duplicate CL", "POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400),
        C("CL list", "POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2, 3\r\n\r\n{}", 400),
        C("bad chunk size", "POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n", 400),
        C("huge chunk size", "POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", 413),
        C("chunk overrun", "POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 400),
        C("NUL in path", "GET /sta\0tus HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
        C("dot-dot role", "GET /roles/../status/logs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 404),
        C("encoded dot-dot", "GET /roles/%2e%2e/logs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 404),
        C("dot-dot unload", "POST /roles/../roles/fast/unload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n", 404),
        C("bare CR", "GET /status HTTP/1.1\r\nHost: 127.0.0.1\rX: y\r\n\r\n", 400),
        C("obs-fold", "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX: a\r\n b\r\n\r\n", 400),
#undef C
    };
    int refused = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf_t b;
        raw_exchange(s->port, cases[i].req, cases[i].len, false, 5, &b);
        if (!has_status(&b, cases[i].want))
            fail_msg("%s: want %d, got %.200s", cases[i].name, cases[i].want, b.data);
        refused++;
        buf_free(&b);
    }
    /* 100k-deep JSON */
    size_t depth = 100000;
    char *deep = xmalloc(2 * depth + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = 0;
    char *resp = NULL;
    int code = http(s, "POST", "/v1/chat/completions", deep, &resp);
    free(resp);
    free(deep);
    if (code != 400)
        fail_msg("100k-deep JSON: %d, want 400", code);
    refused++;
    /* mutated requests, sent and half-closed 64 at a time */
    static const char *const seeds[] = {
        "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 38\r\n\r\n"
        "{\"model\":\"fast\",\"content\":\"hi there\"}",
        "POST /tokenize HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        "10\r\n{\"model\":\"fast\",\r\n15\r\n\"content\":\"hi there\"}\r\n0\r\n\r\n",
        "POST /roles/fast/load HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n",
        "GET /roles/fast/logs?tail=3 HTTP/1.1\r\nHost: [::1]\r\nOrigin: http://x\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /status HTTP/1.0\r\n\r\n",
    };
    static const char alphabet[] = "\r\n :;,/?=-0123456789abcdefxGETPOSTHTTP{}\"\t\x00\x7f\xff";
    unsigned seed = 4242;
    long rss0 = -1;
    int sent = 0, answered = 0;
    for (int base = 0; base < mutations; base += 64) {
        int fds[64], k = 0;
        for (; k < 64 && base + k < mutations; k++) {
            const char *sd = seeds[rand_r(&seed) % (sizeof seeds / sizeof seeds[0])];
            size_t n = strlen(sd);
            char buf[1024];
            memcpy(buf, sd, n);
            int edits = 1 + (int)(rand_r(&seed) % 4);
            for (int e = 0; e < edits; e++) {
                size_t at = rand_r(&seed) % n;
                char c = alphabet[rand_r(&seed) % (sizeof alphabet - 1)];
                switch (rand_r(&seed) % 3) {
                case 0: buf[at] = c; break;
                case 1:
                    if (n + 1 < sizeof buf) {
                        memmove(buf + at + 1, buf + at, n - at);
                        buf[at] = c;
                        n++;
                    }
                    break;
                default:
                    memmove(buf + at, buf + at + 1, n - at - 1);
                    n--;
                }
            }
            fds[k] = raw_connect(s->port);
            if (fds[k] < 0)
                continue;
            ssize_t w = send(fds[k], buf, n, MSG_NOSIGNAL);
            (void)w;
            shutdown(fds[k], SHUT_WR);
            sent++;
        }
        for (int i = 0; i < k; i++) {
            if (fds[i] < 0)
                continue;
            buf_t b;
            int rc = raw_read_all(fds[i], 5, &b);
            answered += rc != 0 && b.len >= 12 && !strncmp(b.data, "HTTP/1.", 7);
            buf_free(&b);
            close(fds[i]);
        }
        if (rss0 < 0 && base >= mutations / 4)
            rss0 = rss_kb(s->pid);
    }
    long rss1 = rss_kb(s->pid);
    assert_int_equal(http(s, "GET", "/health", NULL, &resp), 200);
    free(resp);
    printf("reliability: malformed HTTP: %d crafted requests refused with the right status; %d mutated requests "
           "(%d got an HTTP answer), gateway alive, RSS %ld -> %ld kB over the last 3/4\n",
           refused, sent, answered, rss0, rss1);
    assert_false(pid_gone(s->pid));
#ifndef __SANITIZE_ADDRESS__
    /* (under ASan freed memory sits in its quarantine; LeakSanitizer checks
     * the exit instead) */
    assert_true(rss1 - rss0 < 4096);
#endif
    chat_ok(s, "fast", "fast");
}

static void r_keys(void **state)
{
    srv_t *s = *state;
    srv_start(s, "r-keys", ",\"api_key\":\"r-k3y\"", FAST);
    static const struct {
        const char *method, *path, *body;
    } routes[] = {
        {"GET", "/v1/models", NULL}, {"GET", "/models", NULL}, {"GET", "/status", NULL}, {"GET", "/metrics", NULL},
        {"GET", "/roles/fast/logs", NULL}, {"POST", "/roles/fast/load", ""}, {"POST", "/roles/fast/unload", ""},
        {"POST", "/v1/chat/completions", "{\"model\":\"fast\"}"}, {"POST", "/v1/completions", "{}"},
        {"POST", "/v1/embeddings", "{}"}, {"POST", "/v1/responses", "{}"}, {"POST", "/completion", "{}"},
        {"POST", "/completions", "{}"}, {"POST", "/tokenize", "{}"}, {"POST", "/detokenize", "{}"},
        {"POST", "/apply-template", "{}"}, {"POST", "/infill", "{}"}, {"POST", "/embedding", "{}"},
        {"POST", "/embeddings", "{}"}, {"POST", "/v1/rerank", "{}"}, {"POST", "/rerank", "{}"},
        {"GET", "/nothing", NULL}, {"PUT", "/status", NULL},
    };
    int refused = 0, n = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const char *b = routes[i].body;
        const char *keys[] = {NULL, "wrong", "r-k3", "r-k3y-more"};
        for (int k = 0; k < 4; k++) {
            char *resp = NULL;
            int c = http_ex(s->port, routes[i].method, routes[i].path, b, b ? strlen(b) : 0, keys[k], NULL, 10, &resp);
            free(resp);
            n++;
            refused += c == 401;
            if (c != 401)
                fail_msg("%s %s with key %s: %d, want 401", routes[i].method, routes[i].path, keys[k] ? keys[k] : "(none)", c);
        }
    }
    s->key = "r-k3y";
    json_t *st = get_json(s, "/status");
    assert_string_equal(role_state_in(st, "fast"), "stopped"); /* nothing started by them */
    json_decref(st);
    chat_ok(s, "fast", "fast");
    st = get_json(s, "/status");
    int bport = (int)json_integer_value(jget(st, "roles", "fast", "port"));
    json_decref(st);
    static const char *const bpaths[] = {"/props", "/slots", "/metrics", "/completion", "/v1/chat/completions",
                                         "/tokenize", "/apply-template", "/infill", "/embedding"};
    int brefused = 0;
    for (size_t i = 0; i < sizeof bpaths / sizeof bpaths[0]; i++) {
        char *resp = NULL;
        bool post = i >= 3;
        int c = http_ex(bport, post ? "POST" : "GET", bpaths[i], post ? "{}" : NULL, post ? 2 : 0, NULL, NULL, 10, &resp);
        free(resp);
        brefused += c == 401;
        if (c != 401)
            fail_msg("backend %s without its key: %d, want 401", bpaths[i], c);
    }
    printf("reliability: keys: %d of %d gateway requests without the right key refused (401), %d of %zu backend "
           "routes refused without the backend key\n",
           refused, n, brefused, sizeof bpaths / sizeof bpaths[0]);
}

static void r_browser(void **state)
{
    srv_t *s = *state;
    srv_start(s, "r-browser", NULL, FAST);
    chat_ok(s, "fast", "fast");
    static const char *const hosts[] = {"attacker.example", "attacker.example:8000", "127.0.0.1.nip.io",
                                        "localhost.attacker.example", "10.0.0.1", "[::2]", "0x7f000001"};
    static const char *const paths[] = {"/status", "/metrics", "/v1/models", "/roles/fast/logs"};
    int refused = 0, n = 0;
    for (size_t h = 0; h < sizeof hosts / sizeof hosts[0]; h++)
        for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
            char hd[256];
            snprintf(hd, sizeof hd, "Host: %s\r\n", hosts[h]);
            int c = raw_status(s->port, "GET", paths[p], hd, NULL, NULL);
            n++;
            refused += c == 403;
        }
    static const char *const ctypes[] = {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                         NULL};
    static const char *const posts[] = {"/roles/fast/unload", "/roles/fast/load", "/v1/chat/completions", "/tokenize"};
    for (size_t c = 0; c < sizeof ctypes / sizeof ctypes[0]; c++)
        for (size_t p = 0; p < sizeof posts / sizeof posts[0]; p++) {
            char hd[256];
            if (ctypes[c])
                snprintf(hd, sizeof hd, "Host: 127.0.0.1\r\nContent-Type: %s\r\n", ctypes[c]);
            else
                snprintf(hd, sizeof hd, "Host: 127.0.0.1\r\n");
            int code = raw_status(s->port, "POST", posts[p], hd, "{\"model\":\"fast\"}", NULL);
            n++;
            refused += code == 415;
        }
    static const char *const origins[] = {"http://attacker.example", "null", "https://localhost.evil"};
    for (size_t o = 0; o < sizeof origins / sizeof origins[0]; o++) {
        char hd[256];
        snprintf(hd, sizeof hd, "Host: 127.0.0.1\r\nOrigin: %s\r\nContent-Type: application/json\r\n", origins[o]);
        int c1 = raw_status(s->port, "GET", "/status", hd, NULL, NULL);
        int c2 = raw_status(s->port, "POST", "/roles/fast/unload", hd, "", NULL);
        n += 2;
        refused += (c1 == 403) + (c2 == 403);
    }
    json_t *st = get_json(s, "/status");
    const char *state_now = role_state_in(st, "fast");
    printf("reliability: browser: %d of %d cross-site / rebinding requests refused (403/415); role still %s\n",
           refused, n, state_now);
    assert_string_equal(state_now, "ready");
    json_decref(st);
    assert_int_equal(refused, n);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (getenv("E2E_FILTER"))
        cmocka_set_test_filter(getenv("E2E_FILTER"));
    printf("reliability: %s variant (VARIET_RELIABILITY=long for the full sizes)\n", long_run() ? "long" : "short");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(r_slow_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(r_fd_exhaustion, setup, teardown),
        cmocka_unit_test_setup_teardown(r_kill_midstream, setup, teardown),
        cmocka_unit_test_setup_teardown(r_kill_at_request, setup, teardown),
        cmocka_unit_test_setup_teardown(r_gateway_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(r_swap_under_load, setup, teardown),
        cmocka_unit_test_setup_teardown(r_killed_saves, setup, teardown),
        cmocka_unit_test_setup_teardown(r_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(r_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(r_browser, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
