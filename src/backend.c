/*
 * backend.c — llama-server child process supervision (see backend.h).
 *
 * State machine: STOPPED → (start) LOADING → (listening + /health 200) READY
 * → (stop) STOPPING → (exit) STOPPED. Exits are learnt only from waitpid
 * (backend_reap_all), never guessed from a closed pipe, so a backend is
 * STOPPED exactly when its process is gone. Every backend lives on a global
 * list so the SIGCHLD handler can find the owner of a pid.
 */
#include "backend.h"
#include "proc.h"
#include "roleplan.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct backend {
    struct event_base *base;
    char *name;
    char *log_path;
    backend_opts_t o;
    backend_cb cb;
    void *ud;

    be_state_t state;
    pid_t pid;
    int port;
    int out_fd;    /* read end of the child's stdout/stderr pipe */
    int log_fd;    /* role log file (append) */
    uint64_t log_bytes; /* written to log_fd since it was opened */
    struct event *ev_out;
    struct event *ev_timer; /* load timeout / stop grace / health interval */
    struct evhttp_connection *probe;
    int probe_fails;
    bool probing;
    bool killed;   /* we sent SIGKILL after a failed health check or timeout */
    double started_at, ready_at;

    buf_t ring;    /* last ring_bytes of output */
    uint64_t out_total; /* bytes of output ever put in the ring: its end's position */
    buf_t line;    /* partial line for the parser */
    loadlog_t report;
    char error[512];

    struct backend *next; /* global list */
};

#define BACKEND_LOG_MAX (32ull << 20) /* then rotate to <log>.1 */

static backend_t *all_backends;

static void set_error(backend_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(backend_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->error, sizeof b->error, fmt, ap);
    va_end(ap);
}

backend_t *backend_new(struct event_base *base, const char *name, const char *log_path,
                       const backend_opts_t *o, backend_cb cb, void *ud)
{
    backend_t *b = xcalloc(1, sizeof *b);
    b->base = base;
    b->name = xstrdup(name);
    b->log_path = log_path ? xstrdup(log_path) : NULL;
    b->o = *o;
    b->o.api_key = o->api_key ? xstrdup(o->api_key) : NULL;
    b->o.alias = o->alias ? xstrdup(o->alias) : NULL;
    if (b->o.ring_bytes == 0)
        b->o.ring_bytes = 256 * 1024;
    b->cb = cb;
    b->ud = ud;
    b->out_fd = b->log_fd = -1;
    buf_init(&b->ring, 0);
    buf_init(&b->line, 64 * 1024);
    loadlog_init(&b->report);
    b->next = all_backends;
    all_backends = b;
    return b;
}

static void close_io(backend_t *b)
{
    if (b->ev_out) {
        event_free(b->ev_out);
        b->ev_out = NULL;
    }
    if (b->out_fd >= 0) {
        close(b->out_fd);
        b->out_fd = -1;
    }
    if (b->log_fd >= 0) {
        close(b->log_fd);
        b->log_fd = -1;
    }
    if (b->probe) {
        evhttp_connection_free(b->probe);
        b->probe = NULL;
    }
    b->probing = false;
}

void backend_free(backend_t **bp)
{
    backend_t *b = *bp;
    if (!b)
        return;
    if (b->pid > 0) {
        kill(-b->pid, SIGKILL);
        waitpid(b->pid, NULL, 0);
        b->pid = 0;
    }
    close_io(b);
    if (b->ev_timer)
        event_free(b->ev_timer);
    for (backend_t **p = &all_backends; *p; p = &(*p)->next)
        if (*p == b) {
            *p = b->next;
            break;
        }
    buf_free(&b->ring);
    buf_free(&b->line);
    free(b->name);
    free(b->log_path);
    free((char *)b->o.api_key);
    free((char *)b->o.alias);
    free(b);
    *bp = NULL;
}

static void timer_in(backend_t *b, double s);

/* ---- output capture ---- */

static void feed_line(backend_t *b, const char *s, size_t n)
{
    /* the load report is complete once ready: later lines (one set per
     * request at -lv 4) only go to the ring and the file */
    if (b->state == BE_READY) {
        /* ...except errors ("M.SS.mmm.uuu E ..."): they explain a crash */
        const char *e = n > 16 ? memchr(s, ' ', 16) : NULL;
        if (!e || e + 2 >= s + n || e[1] != 'E' || e[2] != ' ')
            return;
    }
    bool was_ready = b->report.ready;
    loadlog_line(&b->report, s, n);
    if (!was_ready && b->report.ready && b->state == BE_LOADING)
        timer_in(b, 0.0); /* probe /health now */
}

static void on_output(evutil_socket_t fd, short what, void *arg)
{
    backend_t *b = arg;
    char tmp[16384];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        /* EOF: the child closed its output (it is exiting); waitpid tells when */
        event_del(b->ev_out);
        return;
    }
    if (b->log_fd >= 0) {
        ssize_t w = write(b->log_fd, tmp, (size_t)n);
        (void)w; /* a full disk must not stop serving */
        b->log_bytes += (uint64_t)n;
        if (b->log_bytes > BACKEND_LOG_MAX) {
            /* keep one previous file: <log>.1 */
            char *old = xasprintf("%s.1", b->log_path);
            close(b->log_fd);
            rename(b->log_path, old);
            free(old);
            b->log_fd = open(b->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            b->log_bytes = 0;
        }
    }
    buf_append(&b->ring, tmp, (size_t)n);
    b->out_total += (uint64_t)n;
    if (b->ring.len > b->o.ring_bytes)
        buf_consume(&b->ring, b->ring.len - b->o.ring_bytes);
    const char *p = tmp, *end = tmp + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t k = (size_t)((nl ? nl : end) - p);
        if (buf_append(&b->line, p, k) != 0)
            buf_reset(&b->line); /* a 64 KiB line is not a load-report line */
        if (nl) {
            feed_line(b, b->line.data ? b->line.data : "", b->line.len);
            buf_reset(&b->line);
            p = nl + 1;
        } else {
            p = end;
        }
    }
}

/* ---- health probe ---- */

static void on_probe(struct evhttp_request *req, void *arg)
{
    backend_t *b = arg;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    b->probing = false;
    if (b->state == BE_LOADING) {
        if (code == 200) {
            b->state = BE_READY;
            b->ready_at = now_s();
            b->probe_fails = 0;
            timer_in(b, b->o.health_interval_s);
            b->cb(b, BE_EV_READY, b->ud);
        } else {
            timer_in(b, 0.05);
        }
        return;
    }
    if (b->state != BE_READY)
        return;
    if (code == 200) {
        b->probe_fails = 0;
    } else if (++b->probe_fails >= 2) {
        /* hung (e.g. after an out-of-memory in a request): kill; the exit is a crash */
        set_error(b, "llama-server stopped answering /health (%d failed probes); killed", b->probe_fails);
        b->killed = true;
        kill(-b->pid, SIGKILL);
        return;
    }
    timer_in(b, b->o.health_interval_s);
}

static void probe(backend_t *b)
{
    if (b->probing)
        return;
    if (!b->probe) {
        b->probe = evhttp_connection_base_new(b->base, NULL, "127.0.0.1", (unsigned short)b->port);
        if (!b->probe)
            return;
        evhttp_connection_set_timeout(b->probe, b->o.health_interval_s > 0 ? (int)b->o.health_interval_s + 1 : 5);
    }
    struct evhttp_request *r = evhttp_request_new(on_probe, b);
    evhttp_add_header(evhttp_request_get_output_headers(r), "Host", "127.0.0.1");
    /* no keep-alive: an idle connection would hold one of llama-server's HTTP threads */
    evhttp_add_header(evhttp_request_get_output_headers(r), "Connection", "close");
    if (b->o.api_key) {
        char *auth = xasprintf("Bearer %s", b->o.api_key);
        evhttp_add_header(evhttp_request_get_output_headers(r), "Authorization", auth);
        free(auth);
    }
    if (evhttp_make_request(b->probe, r, EVHTTP_REQ_GET, "/health") == 0)
        b->probing = true;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    backend_t *b = arg;
    double now = now_s();
    switch (b->state) {
    case BE_LOADING:
        if (now - b->started_at > b->o.load_timeout_s) {
            set_error(b, "llama-server did not become ready within %.0f s; killed", b->o.load_timeout_s);
            b->killed = true;
            kill(-b->pid, SIGKILL);
            return;
        }
        if (b->report.ready)
            probe(b);
        timer_in(b, b->report.ready ? 0.05 : 0.5);
        return;
    case BE_READY:
        probe(b);
        return;
    case BE_STOPPING:
        /* grace over */
        if (b->pid > 0)
            kill(-b->pid, SIGKILL);
        return;
    case BE_STOPPED:
        return;
    }
}

static void timer_in(backend_t *b, double s)
{
    struct timeval tv = {.tv_sec = (time_t)s, .tv_usec = (suseconds_t)((s - (double)(time_t)s) * 1e6)};
    if (!b->ev_timer)
        b->ev_timer = evtimer_new(b->base, on_timer, b);
    evtimer_add(b->ev_timer, &tv);
}

/* ---- spawn / stop ---- */

char **backend_argv(const char *exe, const char *model, const char *port, char *const *args, size_t n_args)
{
    size_t n = 0;
    char **argv = xcalloc(n_args + 10, sizeof *argv);
    argv[n++] = (char *)exe;
    argv[n++] = "-m";
    argv[n++] = (char *)model;
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = (char *)port;
    bool verbosity = false;
    for (size_t i = 0; i < n_args; i++) {
        argv[n++] = args[i];
        verbosity |= !strcmp(args[i], "-lv") || !strcmp(args[i], "--verbosity") ||
                     !strcmp(args[i], "--log-verbosity") || !strcmp(args[i], "-v") ||
                     !strcmp(args[i], "--verbose");
    }
    /* the load report (buffers per device, fit, pipeline parallelism) is
     * printed at verbosity 4 only */
    if (!verbosity) {
        argv[n++] = "-lv";
        argv[n++] = "4";
    }
    argv[n] = NULL;
    return argv;
}

int backend_start(backend_t *b, const char *exe, const char *model, char *const *args, size_t n_args,
                  char *err, size_t errlen)
{
    int pfd[2] = {-1, -1};
    char port_s[16];
    if (b->state != BE_STOPPED) {
        snprintf(err, errlen, "role %s is already %s", b->name, backend_state_name(b->state));
        return -EBUSY;
    }
    if (access(exe, X_OK) != 0) {
        snprintf(err, errlen, "llama-server '%s' is not executable: %s", exe, strerror(errno));
        return -ENOENT;
    }
    /* llama-server drops a draft of another vocabulary only after loading
     * both, and serves without it: refuse before spawning anything */
    int vr = roleplan_check_draft(model, args, n_args, err, errlen);
    if (vr)
        return vr;
    b->port = proc_free_port();
    if (b->port < 0) {
        snprintf(err, errlen, "no free port on 127.0.0.1");
        return -EADDRINUSE;
    }
    snprintf(port_s, sizeof port_s, "%d", b->port);
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -errno;
    }
    char **argv = backend_argv(exe, model, port_s, args, n_args);
    if (b->o.alias) {
        /* the answers' "model" is the role, not the file (last one wins over the role's own) */
        size_t n = 0;
        while (argv[n])
            n++;
        argv = xrealloc(argv, (n + 3) * sizeof *argv);
        argv[n++] = "--alias";
        argv[n++] = (char *)b->o.alias;
        argv[n] = NULL;
    }
    char *key_env = b->o.api_key ? xasprintf("LLAMA_API_KEY=%s", b->o.api_key) : NULL;
    char *env_add[] = {key_env, NULL};

    if (b->log_path) {
        b->log_fd = open(b->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        struct stat st;
        b->log_bytes = b->log_fd >= 0 && fstat(b->log_fd, &st) == 0 ? (uint64_t)st.st_size : 0;
        if (b->log_fd >= 0) {
            char *hdr = xasprintf("==== variet: starting role %s on port %d\n", b->name, b->port);
            ssize_t w = write(b->log_fd, hdr, strlen(hdr));
            (void)w;
            free(hdr);
        }
    }
    pid_t pid = proc_spawn_env(argv, env_add, pfd[1]);
    free(key_env);
    if (pid < 0) {
        snprintf(err, errlen, "cannot start %s: %s", exe, strerror((int)-pid));
        free(argv);
        close(pfd[0]);
        close(pfd[1]);
        close_io(b);
        return (int)pid;
    }
    free(argv);
    close(pfd[1]);
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    b->out_fd = pfd[0];
    b->pid = pid;
    b->state = BE_LOADING;
    b->started_at = now_s();
    b->ready_at = 0;
    b->killed = false;
    b->probe_fails = 0;
    b->error[0] = 0;
    buf_reset(&b->line);
    loadlog_init(&b->report);
    b->ev_out = event_new(b->base, b->out_fd, EV_READ | EV_PERSIST, on_output, b);
    event_add(b->ev_out, NULL);
    timer_in(b, 0.5);
    return 0;
}

void backend_stop(backend_t *b)
{
    if (b->state != BE_LOADING && b->state != BE_READY)
        return;
    b->state = BE_STOPPING;
    kill(-b->pid, SIGTERM);
    timer_in(b, b->o.stop_grace_s);
}

void backend_kill(backend_t *b)
{
    if (b->pid > 0)
        kill(-b->pid, SIGKILL);
}

/* Reason for an exit while loading, from the log. */
static void load_failure_reason(backend_t *b, int status)
{
    const loadlog_t *r = &b->report;
    char st[64];
    if (WIFSIGNALED(status))
        snprintf(st, sizeof st, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(st, sizeof st, "exited with status %d", WEXITSTATUS(status));
    if (b->error[0])
        return; /* timeout or health failure already said why */
    if (r->oom)
        set_error(b, "%s: out of memory allocating %.2f MiB%s%s (llama-server %s)",
                  r->oom_device[0] ? r->oom_device : "host", r->oom_mib, r->oom_what[0] ? " for " : "",
                  r->oom_what, st);
    else if (r->error[0])
        set_error(b, "%s (llama-server %s)", r->error, st);
    else
        set_error(b, "llama-server %s", st);
}

static void on_exit_status(backend_t *b, int status)
{
    be_state_t was = b->state;
    /* drain what is left in the pipe before closing it: the last lines say
     * why it died */
    if (b->out_fd >= 0) {
        for (int k = 0; k < 64; k++) {
            size_t before = b->ring.len + b->line.len;
            uint64_t logged = b->log_bytes;
            on_output(b->out_fd, EV_READ, b);
            if (b->ring.len + b->line.len == before && b->log_bytes == logged)
                break;
        }
    }
    close_io(b);
    if (b->ev_timer)
        evtimer_del(b->ev_timer);
    b->pid = 0;
    b->state = BE_STOPPED;
    switch (was) {
    case BE_LOADING:
        load_failure_reason(b, status);
        b->cb(b, BE_EV_LOAD_FAILED, b->ud);
        break;
    case BE_READY:
        if (!b->error[0]) {
            if (WIFSIGNALED(status))
                set_error(b, "llama-server crashed (signal %d)", WTERMSIG(status));
            else
                set_error(b, "llama-server exited unexpectedly (status %d)", WEXITSTATUS(status));
        }
        b->cb(b, BE_EV_CRASHED, b->ud);
        break;
    default:
        b->cb(b, BE_EV_STOPPED, b->ud);
        break;
    }
}

void backend_reap_all(void)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        for (backend_t *b = all_backends; b; b = b->next)
            if (b->pid == pid) {
                on_exit_status(b, status);
                break;
            }
    }
}

void backend_stop_all_sync(void)
{
    double grace = 0;
    for (backend_t *b = all_backends; b; b = b->next)
        if (b->pid > 0) {
            kill(-b->pid, SIGTERM);
            if (b->o.stop_grace_s > grace)
                grace = b->o.stop_grace_s;
        }
    double t0 = now_s();
    for (;;) {
        bool left = false;
        for (backend_t *b = all_backends; b; b = b->next) {
            if (b->pid <= 0)
                continue;
            if (waitpid(b->pid, NULL, WNOHANG) == b->pid) {
                b->pid = 0;
                b->state = BE_STOPPED;
            } else {
                left = true;
            }
        }
        if (!left)
            return;
        if (now_s() - t0 > grace) {
            for (backend_t *b = all_backends; b; b = b->next)
                if (b->pid > 0) {
                    kill(-b->pid, SIGKILL);
                    waitpid(b->pid, NULL, 0);
                    b->pid = 0;
                    b->state = BE_STOPPED;
                }
            return;
        }
        usleep(20000);
    }
}

be_state_t backend_state(const backend_t *b) { return b->state; }
pid_t backend_pid(const backend_t *b) { return b->pid; }
int backend_port(const backend_t *b) { return b->port; }
const char *backend_name(const backend_t *b) { return b->name; }
double backend_started_at(const backend_t *b) { return b->started_at; }
double backend_ready_at(const backend_t *b) { return b->ready_at; }
const loadlog_t *backend_report(const backend_t *b) { return &b->report; }
const char *backend_error(const backend_t *b) { return b->error; }

const char *backend_state_name(be_state_t s)
{
    switch (s) {
    case BE_STOPPED: return "stopped";
    case BE_LOADING: return "loading";
    case BE_READY: return "ready";
    case BE_STOPPING: return "stopping";
    }
    return "?";
}

void backend_log_tail(const backend_t *b, size_t n_lines, buf_t *out)
{
    if (!b->ring.len)
        return;
    const char *s = b->ring.data, *p = s + b->ring.len;
    if (p > s && p[-1] == '\n')
        p--;
    size_t seen = 0;
    while (p > s) {
        if (p[-1] == '\n' && ++seen == n_lines)
            break;
        p--;
    }
    buf_append(out, p, b->ring.len - (size_t)(p - s));
}

uint64_t backend_log_pos(const backend_t *b) { return b->out_total; }

uint64_t backend_log_since(const backend_t *b, uint64_t *pos, size_t max, buf_t *out)
{
    uint64_t start = b->out_total - b->ring.len, skipped = 0;
    if (*pos > b->out_total)
        *pos = b->out_total; /* a position from the future: nothing to send */
    if (*pos < start) {
        skipped = start - *pos;
        *pos = start;
    }
    uint64_t n = b->out_total - *pos;
    if (n > max)
        n = max;
    if (n && buf_append(out, b->ring.data + (*pos - start), (size_t)n) == 0)
        *pos += n;
    return skipped;
}

char *backend_find_exe(const char *configured)
{
    if (configured && *configured)
        return access(configured, X_OK) == 0 ? xstrdup(configured) : NULL;
    const char *env = getenv("VARIET_LLAMA_SERVER");
    if (env && *env)
        return access(env, X_OK) == 0 ? xstrdup(env) : NULL;
    const char *path = getenv("PATH");
    while (path && *path) {
        const char *colon = strchr(path, ':');
        size_t n = colon ? (size_t)(colon - path) : strlen(path);
        char *c = xasprintf("%.*s/llama-server", (int)n, path);
        if (n && access(c, X_OK) == 0)
            return c;
        free(c);
        path = colon ? colon + 1 : NULL;
    }
    return NULL;
}
