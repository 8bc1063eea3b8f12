/*
 * gateway_stream.c — the measurements of bench/gateway.sh that need a real
 * HTTP client rather than wrk: the delay a proxy adds between the chunks of
 * a streamed chat, the proxy's memory with many streams held open, and the
 * cost of a role swap beyond the model load itself.
 *
 * Built by gateway.sh (cc -O2 -std=c11 gateway_stream.c -lcurl -ljansson);
 * not part of the CMake build. Every mode prints one "key=value ..." line per
 * figure, prefixed with the mode name, which gateway.sh parses; anything that
 * went wrong is one "error ..." line on stderr and exit status 1.
 *
 *   gaps ROUNDS BODY NAME URL [NAME URL ...]
 *       ROUNDS times, one streamed POST of BODY to each URL (the order turns
 *       every round so no target always goes first). Each SSE event ("\n\n"
 *       terminated) is timestamped when its last byte arrives; the gaps
 *       between consecutive events after the first are pooled per target.
 *       Prints: gaps name=N events=E rounds=R n=G median_us= p90_us= p99_us=
 *               max_us= mean_us= ttft_us=(median first-event time)
 *
 *   rss PIDS URL N BODY HOLD_S [STATUS_URL ROLE]
 *       PIDS: comma-separated processes whose VmRSS is summed (a proxy and
 *       its workers). Opens N concurrent streaming POSTs of BODY to URL with
 *       curl multi, waits until every request has been sent, keeps them open
 *       HOLD_S seconds while sampling RSS, then aborts them all (closing the
 *       sockets). With STATUS_URL (variet's GET /status) it also reads how
 *       many requests the gateway holds for ROLE (inflight + queued) once
 *       all are sent, and afterwards how long the gateway takes to see
 *       every one of them gone (drain_s; -1 if not within 20 s).
 *       Prints: rss idle_kb= idle_anon_kb= open_kb= (max while open)
 *               open_anon_kb= hwm_kb= after_kb= streams= sent=
 *               open_at_peak= open_at_end= held= drain_s=
 *               ended_early= (HTTPxCOUNT of requests that ended while the
 *               others were held, e.g. 503x187) not_200=
 *
 *   swap URL ROLE_A ROLE_B REPEATS
 *       URL is variet (max_loaded 1). Requests ROLE_A once (so it is
 *       loaded), then REPEATS times, alternating B, A, B...: time to first
 *       byte of a chat request to the stopped role (cold), its
 *       last_load.seconds from GET /status, the same request again (warm);
 *       overhead = cold - load - warm. Prints one "swap i=..." line each and
 *       "swap summary median_overhead_ms= ...".
 *
 *   aborts PID URL N ROUNDS BODY STATUS_URL ROLE
 *       ROUNDS times: N streams (N no more than the gateway proxies at once,
 *       so none waits in its queue) until each has received its first bytes,
 *       then all closed; waits until variet holds none. VmRSS of PID before,
 *       after the first half of the rounds (heap warmed up) and at the end:
 *       growth over the second half per aborted stream shows memory that
 *       aborted in-flight streams leave behind.
 *       Prints: aborts ... rss_mid_kb= rss_after_kb= bytes_per_stream=
 *
 *   burst URL N BODY
 *       N streamed POSTs at once, each run to its end. A stream is complete
 *       when it answered 200 and ended with "data: [DONE]".
 *       Prints: burst streams= complete= failed= codes=HTTPxCOUNT,... seconds=
 */
#define _GNU_SOURCE /* usleep, strdup, strtok_r, memmem */
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "error out of memory\n");
        abort();
    }
    return q;
}

static void die(const char *what)
{
    fprintf(stderr, "error %s\n", what);
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, size_t n, double p)
{
    if (!n)
        return NAN;
    size_t k = (size_t)ceil(p / 100.0 * (double)n);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

/* ---------- growable byte buffer for responses ---------- */

typedef struct {
    char *d;
    size_t n, cap;
} buf_t;

static size_t buf_write(char *p, size_t sz, size_t nm, void *ud)
{
    buf_t *b = ud;
    size_t n = sz * nm;
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->d = xrealloc(b->d, b->cap);
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
    b->d[b->n] = 0;
    return n;
}

static size_t discard(char *p, size_t sz, size_t nm, void *ud)
{
    (void)p;
    (void)ud;
    return sz * nm;
}

static struct curl_slist *json_headers(void)
{
    return curl_slist_append(NULL, "Content-Type: application/json");
}

/* ---------- gaps ---------- */

typedef struct {
    double t0;
    double *ev; /* event timestamps (us since t0) */
    size_t n_ev, cap_ev;
    int tail; /* state of the "\n\n" matcher: 1 after a '\n' */
} stream_t;

static size_t on_stream(char *p, size_t sz, size_t nm, void *ud)
{
    stream_t *s = ud;
    size_t n = sz * nm;
    double t = now_us() - s->t0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r')
            continue;
        if (p[i] == '\n') {
            if (s->tail) {
                if (s->n_ev == s->cap_ev) {
                    s->cap_ev = s->cap_ev ? s->cap_ev * 2 : 256;
                    s->ev = xrealloc(s->ev, s->cap_ev * sizeof *s->ev);
                }
                s->ev[s->n_ev++] = t;
                s->tail = 0;
            } else {
                s->tail = 1;
            }
        } else {
            s->tail = 0;
        }
    }
    return n;
}

typedef struct {
    const char *name, *url;
    double *gaps;
    size_t n_gaps, cap_gaps;
    double ttft[64];
    size_t events, rounds;
} target_t;

static int one_stream(CURL *c, target_t *t, const char *body)
{
    stream_t s = {0};
    struct curl_slist *h = json_headers();
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, t->url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    s.t0 = now_us();
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    if (rc != CURLE_OK || code != 200 || s.n_ev < 3) {
        fprintf(stderr, "error gaps %s: curl %s, HTTP %ld, %zu events\n", t->name, curl_easy_strerror(rc), code,
                s.n_ev);
        free(s.ev);
        return -1;
    }
    if (t->rounds < 64)
        t->ttft[t->rounds] = s.ev[0];
    t->rounds++;
    t->events = s.n_ev;
    for (size_t i = 1; i < s.n_ev; i++) {
        if (t->n_gaps == t->cap_gaps) {
            t->cap_gaps = t->cap_gaps ? t->cap_gaps * 2 : 1024;
            t->gaps = xrealloc(t->gaps, t->cap_gaps * sizeof *t->gaps);
        }
        t->gaps[t->n_gaps++] = s.ev[i] - s.ev[i - 1];
    }
    free(s.ev);
    return 0;
}

static int mode_gaps(int argc, char **argv)
{
    if (argc < 6 || (argc - 4) % 2)
        die("usage: gaps ROUNDS BODY NAME URL [NAME URL ...]");
    int rounds = atoi(argv[2]);
    const char *body = argv[3];
    size_t nt = (size_t)(argc - 4) / 2;
    target_t *t = calloc(nt, sizeof *t);
    if (!t || rounds < 1)
        die("bad arguments");
    for (size_t i = 0; i < nt; i++) {
        t[i].name = argv[4 + 2 * i];
        t[i].url = argv[5 + 2 * i];
    }
    CURL *c = curl_easy_init();
    for (int r = 0; r < rounds; r++)
        for (size_t k = 0; k < nt; k++)
            if (one_stream(c, &t[(k + (size_t)r) % nt], body))
                return 1;
    curl_easy_cleanup(c);
    for (size_t i = 0; i < nt; i++) {
        qsort(t[i].gaps, t[i].n_gaps, sizeof *t[i].gaps, cmp_double);
        size_t nr = t[i].rounds < 64 ? t[i].rounds : 64;
        qsort(t[i].ttft, nr, sizeof t[i].ttft[0], cmp_double);
        double sum = 0;
        for (size_t k = 0; k < t[i].n_gaps; k++)
            sum += t[i].gaps[k];
        printf("gaps name=%s events=%zu rounds=%zu n=%zu median_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f "
               "mean_us=%.1f ttft_us=%.1f\n",
               t[i].name, t[i].events, t[i].rounds, t[i].n_gaps, pct(t[i].gaps, t[i].n_gaps, 50),
               pct(t[i].gaps, t[i].n_gaps, 90), pct(t[i].gaps, t[i].n_gaps, 99), t[i].gaps[t[i].n_gaps - 1],
               sum / (double)t[i].n_gaps, pct(t[i].ttft, nr, 50));
        free(t[i].gaps);
    }
    free(t);
    return 0;
}

/* ---------- rss ---------- */

/* Sum of VmRSS (or VmHWM) over comma-separated pids, kB; -1 if one is gone. */
static long proc_kb(const char *pids, const char *field)
{
    long total = 0;
    char *copy = strdup(pids), *save = NULL;
    for (char *p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%s/status", p);
        FILE *f = fopen(path, "r");
        if (!f) {
            free(copy);
            return -1;
        }
        long kb = -1;
        size_t fl = strlen(field);
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, field, fl) && line[fl] == ':') {
                kb = strtol(line + fl + 1, NULL, 10);
                break;
            }
        fclose(f);
        if (kb < 0) {
            free(copy);
            return -1;
        }
        total += kb;
    }
    free(copy);
    return total;
}

/* GET url → parsed JSON (caller decrefs), or NULL. */
static json_t *get_json(const char *url)
{
    CURL *c = curl_easy_init();
    buf_t b = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, buf_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    json_t *j = rc == CURLE_OK && b.d ? json_loadb(b.d, b.n, 0, NULL) : NULL;
    free(b.d);
    return j;
}

static json_t *status_role(json_t *st, const char *role)
{
    return json_object_get(json_object_get(st, "roles"), role);
}

/* inflight + queued of a role from variet's /status, or -1. */
static long held(const char *status_url, const char *role)
{
    json_t *st = get_json(status_url);
    json_t *r = status_role(st, role);
    long n = r ? (long)(json_integer_value(json_object_get(r, "inflight")) +
                        json_integer_value(json_object_get(r, "queued")))
               : -1;
    json_decref(st);
    return n;
}

static int mode_rss(int argc, char **argv)
{
    if (argc != 7 && argc != 9)
        die("usage: rss PIDS URL N BODY HOLD_S [STATUS_URL ROLE]");
    const char *pids = argv[2], *url = argv[3], *body = argv[5];
    int n = atoi(argv[4]);
    double hold = atof(argv[6]);
    const char *status_url = argc == 9 ? argv[7] : NULL, *role = argc == 9 ? argv[8] : NULL;
    if (n < 1 || n > 100000)
        die("bad N");
    long idle = proc_kb(pids, "VmRSS"), idle_anon = proc_kb(pids, "RssAnon");
    if (idle < 0)
        die("cannot read VmRSS");

    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    curl_multi_setopt(m, CURLMOPT_PIPELINING, CURLPIPE_NOTHING);
    CURL **e = calloc((size_t)n, sizeof *e);
    struct curl_slist *h = json_headers();
    for (int i = 0; i < n; i++) {
        e[i] = curl_easy_init();
        curl_easy_setopt(e[i], CURLOPT_URL, url);
        curl_easy_setopt(e[i], CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e[i], CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(e[i], CURLOPT_FRESH_CONNECT, 1L);
        curl_multi_add_handle(m, e[i]);
    }
    /* run until every request is on the wire (or 30 s) */
    int running = n, done = 0, rejected = 0;
    long codes[8][2] = {{0}}; /* HTTP status, count: requests that ended while held */
    double t0 = now_us();
    for (;;) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)))
            if (msg->msg == CURLMSG_DONE) {
                long code = 0;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
                done++;
                rejected += code != 200;
                for (int k = 0; k < 8; k++)
                    if (codes[k][0] == code || codes[k][1] == 0) {
                        codes[k][0] = code;
                        codes[k][1]++;
                        break;
                    }
            }
        int sent = 0;
        for (int i = 0; i < n; i++) {
            long rs = 0;
            curl_easy_getinfo(e[i], CURLINFO_REQUEST_SIZE, &rs);
            sent += rs > 0;
        }
        if (sent + done >= n || now_us() - t0 > 30e6)
            break;
        curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    int sent = 0;
    for (int i = 0; i < n; i++) {
        long rs = 0;
        curl_easy_getinfo(e[i], CURLINFO_REQUEST_SIZE, &rs);
        sent += rs > 0;
    }
    /* how many the gateway holds now that all are on the wire */
    long held_n = status_url ? held(status_url, role) : -1;
    /* hold them open, sampling RSS; remember how many were open at the peak */
    long open_kb = 0;
    int open_at_peak = 0;
    double t1 = now_us();
    for (;;) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)))
            if (msg->msg == CURLMSG_DONE) {
                long code = 0;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
                done++;
                rejected += code != 200;
                for (int k = 0; k < 8; k++)
                    if (codes[k][0] == code || codes[k][1] == 0) {
                        codes[k][0] = code;
                        codes[k][1]++;
                        break;
                    }
            }
        long kb = proc_kb(pids, "VmRSS");
        if (kb > open_kb) {
            open_kb = kb;
            open_at_peak = running;
        }
        if (now_us() - t1 >= hold * 1e6)
            break;
        curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    long hwm = proc_kb(pids, "VmHWM"), anon = proc_kb(pids, "RssAnon");
    int open = running;
    /* abort: closing the sockets is what a client that goes away does */
    for (int i = 0; i < n; i++) {
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
    }
    curl_multi_cleanup(m);
    curl_slist_free_all(h);
    free(e);
    char codes_s[256] = "-";
    size_t cl = 0;
    for (int k = 0; k < 8 && codes[k][1]; k++)
        cl += (size_t)snprintf(codes_s + cl, sizeof codes_s - cl, "%s%ldx%ld", k ? "," : "", codes[k][0], codes[k][1]);
    double drain = -1;
    if (status_url) {
        double t2 = now_us();
        while (now_us() - t2 < 20e6) {
            long k = held(status_url, role);
            if (k == 0) {
                drain = (now_us() - t2) / 1e6;
                break;
            }
            usleep(20000);
        }
    }
    sleep(1);
    long after = proc_kb(pids, "VmRSS");
    printf("rss idle_kb=%ld idle_anon_kb=%ld open_kb=%ld open_anon_kb=%ld hwm_kb=%ld after_kb=%ld streams=%d sent=%d "
           "open_at_peak=%d open_at_end=%d held=%ld ended_early=%s not_200=%d drain_s=%.3f\n",
           idle, idle_anon, open_kb, anon, hwm, after, n, sent, open_at_peak, open, held_n, codes_s, rejected,
           drain);
    return 0;
}

/* ---------- aborts ---------- */

static size_t count_bytes(char *p, size_t sz, size_t nm, void *ud)
{
    (void)p;
    *(size_t *)ud += sz * nm;
    return sz * nm;
}

/* One round: N streams until each has its first bytes (in flight, being
 * proxied), then all aborted; waits until the gateway holds none. */
static int abort_round(const char *url, int n, const char *body, const char *status_url, const char *role)
{
    CURLM *m = curl_multi_init();
    CURL *e[64];
    size_t got[64] = {0};
    struct curl_slist *h = json_headers();
    for (int i = 0; i < n; i++) {
        e[i] = curl_easy_init();
        curl_easy_setopt(e[i], CURLOPT_URL, url);
        curl_easy_setopt(e[i], CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e[i], CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, count_bytes);
        curl_easy_setopt(e[i], CURLOPT_WRITEDATA, &got[i]);
        curl_easy_setopt(e[i], CURLOPT_FRESH_CONNECT, 1L);
        curl_multi_add_handle(m, e[i]);
    }
    int running = n, streaming = 0;
    double t0 = now_us();
    while (now_us() - t0 < 10e6) {
        curl_multi_perform(m, &running);
        streaming = 0;
        for (int i = 0; i < n; i++)
            streaming += got[i] > 0;
        if (streaming == n || !running)
            break;
        curl_multi_poll(m, NULL, 0, 20, NULL);
    }
    for (int i = 0; i < n; i++) {
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
    }
    curl_multi_cleanup(m);
    curl_slist_free_all(h);
    for (double t1 = now_us(); now_us() - t1 < 10e6 && held(status_url, role) != 0;)
        usleep(5000);
    return streaming;
}

static int mode_aborts(int argc, char **argv)
{
    if (argc != 9)
        die("usage: aborts PID URL N ROUNDS BODY STATUS_URL ROLE");
    const char *pid = argv[2], *url = argv[3], *body = argv[6], *status_url = argv[7], *role = argv[8];
    int n = atoi(argv[4]), rounds = atoi(argv[5]);
    if (n < 1 || n > 64 || rounds < 2)
        die("bad N (1..64) or ROUNDS (>= 2)");
    long before = proc_kb(pid, "VmRSS");
    long aborted = 0;
    for (int r = 0; r < rounds / 2; r++)
        aborted += abort_round(url, n, body, status_url, role);
    usleep(200000);
    long mid = proc_kb(pid, "VmRSS");
    long aborted2 = 0;
    for (int r = rounds / 2; r < rounds; r++)
        aborted2 += abort_round(url, n, body, status_url, role);
    usleep(200000);
    long after = proc_kb(pid, "VmRSS");
    printf("aborts streams_per_round=%d rounds=%d aborted_mid_stream=%ld rss_before_kb=%ld rss_mid_kb=%ld "
           "rss_after_kb=%ld growth_second_half_kb=%ld bytes_per_stream=%.0f\n",
           n, rounds, aborted + aborted2, before, mid, after, after - mid,
           aborted2 ? (double)(after - mid) * 1024.0 / (double)aborted2 : 0.0);
    return 0;
}

/* ---------- burst ---------- */

typedef struct {
    char last[16]; /* last bytes received, to see "data: [DONE]" */
    size_t n;
} tail_t;

static size_t keep_last(char *p, size_t sz, size_t nm, void *ud)
{
    tail_t *t = ud;
    size_t n = sz * nm;
    for (size_t i = 0; i < n; i++) {
        memmove(t->last, t->last + 1, sizeof t->last - 1);
        t->last[sizeof t->last - 1] = p[i];
    }
    t->n += n;
    return n;
}

static int mode_burst(int argc, char **argv)
{
    if (argc != 5)
        die("usage: burst URL N BODY");
    const char *url = argv[2], *body = argv[4];
    int n = atoi(argv[3]);
    if (n < 1 || n > 4096)
        die("bad N");
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    CURL **e = calloc((size_t)n, sizeof *e);
    tail_t *t = calloc((size_t)n, sizeof *t);
    struct curl_slist *h = json_headers();
    for (int i = 0; i < n; i++) {
        e[i] = curl_easy_init();
        curl_easy_setopt(e[i], CURLOPT_URL, url);
        curl_easy_setopt(e[i], CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e[i], CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, keep_last);
        curl_easy_setopt(e[i], CURLOPT_WRITEDATA, &t[i]);
        curl_easy_setopt(e[i], CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(e[i], CURLOPT_TIMEOUT, 120L);
        curl_multi_add_handle(m, e[i]);
    }
    int running = n;
    double t0 = now_us();
    while (running) {
        curl_multi_perform(m, &running);
        if (running)
            curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    double secs = (now_us() - t0) / 1e6;
    long codes[8][2] = {{0}};
    int complete = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        long code = 0;
        curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &code);
        bool done = code == 200 && memmem(t[i].last, sizeof t[i].last, "[DONE]", 6);
        complete += done;
        failed += !done;
        for (int k = 0; k < 8; k++)
            if (codes[k][0] == code || codes[k][1] == 0) {
                codes[k][0] = code;
                codes[k][1]++;
                break;
            }
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
    }
    char cs[256] = "";
    size_t cl = 0;
    for (int k = 0; k < 8 && codes[k][1]; k++)
        cl += (size_t)snprintf(cs + cl, sizeof cs - cl, "%s%ldx%ld", k ? "," : "", codes[k][0], codes[k][1]);
    printf("burst streams=%d complete=%d failed=%d codes=%s seconds=%.2f\n", n, complete, failed, cs, secs);
    curl_multi_cleanup(m);
    curl_slist_free_all(h);
    free(e);
    free(t);
    return 0;
}

/* ---------- swap ---------- */

/* POST a small chat to `role`; time to first byte in ms, or -1. */
static double ttfb_ms(const char *url, const char *role)
{
    char body[512], full[512];
    snprintf(body, sizeof body,
             "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],\"max_tokens\":4,"
             "\"temperature\":0,\"ignore_eos\":true}",
             role);
    snprintf(full, sizeof full, "%s/v1/chat/completions", url);
    CURL *c = curl_easy_init();
    struct curl_slist *h = json_headers();
    curl_easy_setopt(c, CURLOPT_URL, full);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_off_t st = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(c, CURLINFO_STARTTRANSFER_TIME_T, &st);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    if (rc != CURLE_OK || code != 200) {
        fprintf(stderr, "error swap: request to role %s: curl %s, HTTP %ld\n", role, curl_easy_strerror(rc), code);
        return -1;
    }
    return (double)st / 1e3;
}

static int mode_swap(int argc, char **argv)
{
    if (argc != 6)
        die("usage: swap URL ROLE_A ROLE_B REPEATS");
    const char *url = argv[2], *roles[2] = {argv[3], argv[4]};
    int reps = atoi(argv[5]);
    if (reps < 1 || reps > 1000)
        die("bad REPEATS");
    char status_url[512];
    snprintf(status_url, sizeof status_url, "%s/status", url);
    if (ttfb_ms(url, roles[0]) < 0)
        return 1;
    double *ov = calloc((size_t)reps, sizeof *ov), *cold = calloc((size_t)reps, sizeof *cold),
           *load = calloc((size_t)reps, sizeof *load), *warm = calloc((size_t)reps, sizeof *warm);
    for (int i = 0; i < reps; i++) {
        const char *x = roles[(i + 1) % 2]; /* B, A, B, ... */
        json_t *st = get_json(status_url);
        const char *state = json_string_value(json_object_get(status_role(st, x), "state"));
        bool was_stopped = state && !strcmp(state, "stopped");
        json_int_t loads0 = json_integer_value(json_object_get(status_role(st, x), "loads"));
        json_decref(st);
        cold[i] = ttfb_ms(url, x);
        if (cold[i] < 0)
            return 1;
        st = get_json(status_url);
        json_t *r = status_role(st, x);
        load[i] = 1e3 * json_real_value(json_object_get(json_object_get(r, "last_load"), "seconds"));
        json_int_t loads1 = json_integer_value(json_object_get(r, "loads"));
        json_decref(st);
        warm[i] = ttfb_ms(url, x);
        if (warm[i] < 0)
            return 1;
        ov[i] = cold[i] - load[i] - warm[i];
        printf("swap i=%d role=%s was=%s loads=%lld->%lld cold_ms=%.2f load_ms=%.2f warm_ms=%.2f overhead_ms=%.2f\n",
               i + 1, x, was_stopped ? "stopped" : (state ? state : "?"), (long long)loads0, (long long)loads1,
               cold[i], load[i], warm[i], ov[i]);
        if (!was_stopped || loads1 != loads0 + 1)
            fprintf(stderr, "error swap: role %s was %s before the cold request and loads went %lld -> %lld\n", x,
                    state ? state : "?", (long long)loads0, (long long)loads1);
    }
    size_t n = (size_t)reps;
    qsort(ov, n, sizeof *ov, cmp_double);
    qsort(cold, n, sizeof *cold, cmp_double);
    qsort(load, n, sizeof *load, cmp_double);
    qsort(warm, n, sizeof *warm, cmp_double);
    printf("swap summary n=%zu median_overhead_ms=%.2f min_overhead_ms=%.2f max_overhead_ms=%.2f median_cold_ms=%.2f "
           "median_load_ms=%.2f median_warm_ms=%.2f\n",
           n, pct(ov, n, 50), pct(ov, n, 0), pct(ov, n, 100), pct(cold, n, 50), pct(load, n, 50), pct(warm, n, 50));
    free(ov);
    free(cold);
    free(load);
    free(warm);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: gateway_stream gaps|rss|swap ...\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc;
    if (!strcmp(argv[1], "gaps"))
        rc = mode_gaps(argc, argv);
    else if (!strcmp(argv[1], "rss"))
        rc = mode_rss(argc, argv);
    else if (!strcmp(argv[1], "swap"))
        rc = mode_swap(argc, argv);
    else if (!strcmp(argv[1], "aborts"))
        rc = mode_aborts(argc, argv);
    else if (!strcmp(argv[1], "burst"))
        rc = mode_burst(argc, argv);
    else {
        fprintf(stderr, "usage: gateway_stream gaps|rss|swap|aborts|burst ...\n");
        rc = 2;
    }
    curl_global_cleanup();
    return rc;
}
