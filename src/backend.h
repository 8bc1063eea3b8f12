/*
 * backend.h — one llama-server child process, driven by a libevent loop.
 *
 * A backend is spawned on 127.0.0.1 and a free port in its own process
 * group with PR_SET_PDEATHSIG(SIGKILL) (no orphan even if variet is
 * SIGKILLed); stdout+stderr go through a pipe into a ring buffer, the
 * role's log file and the load-log parser. It is ready when the log says
 * "listening on" and GET /health answers 200; while ready /health is probed
 * every health interval and a backend that stops answering is killed and
 * reported as crashed. Stop = SIGTERM to the group, SIGKILL after the
 * grace period; children are always reaped (backend_reap_all on SIGCHLD).
 */
#ifndef VARIET_BACKEND_H
#define VARIET_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loadlog.h"
#include "util.h"

struct event_base;

typedef enum { BE_STOPPED = 0, BE_LOADING, BE_READY, BE_STOPPING } be_state_t;

typedef enum {
    BE_EV_READY,       /* loading → ready */
    BE_EV_LOAD_FAILED, /* loading → stopped; backend_error() says why */
    BE_EV_CRASHED,     /* ready → stopped without being asked */
    BE_EV_STOPPED,     /* stop requested → stopped */
} be_event_t;

typedef struct backend backend_t;
typedef void (*backend_cb)(backend_t *b, be_event_t ev, void *ud);

typedef struct {
    double load_timeout_s;
    double stop_grace_s;
    double health_interval_s;
    size_t ring_bytes; /* log tail kept in memory */
    const char *api_key; /* the child's LLAMA_API_KEY, sent on probes too (NULL: none); copied */
    const char *alias;   /* --alias for the child: the name its answers carry (NULL: none); copied */
} backend_opts_t;

/* Create (stopped). `log_path` may be NULL (no file). Owned by the caller:
 * backend_free kills a running child (SIGKILL) and reaps it. */
backend_t *backend_new(struct event_base *base, const char *name, const char *log_path,
                       const backend_opts_t *o, backend_cb cb, void *ud);
void backend_free(backend_t **b);

/* argv for `exe -m model --host 127.0.0.1 --port port args... [-lv 4]`
 * (verbosity 4 unless args set one: the load report needs it). The vector
 * is owned by the caller (free it; the strings are borrowed). */
char **backend_argv(const char *exe, const char *model, const char *port, char *const *args, size_t n_args);

/* Start `exe -m model --host 127.0.0.1 --port P args... [-lv 4] [--alias A]`
 * on a free port, with LLAMA_API_KEY in its environment when opts say so.
 * 0 or -errno (err says why: exe missing, fork failed; -EINVAL: a draft in
 * args whose vocabulary is not the model's, refused before spawning, err
 * naming the first difference). Events follow. */
int backend_start(backend_t *b, const char *exe, const char *model, char *const *args, size_t n_args,
                  char *err, size_t errlen);
/* Ask it to stop (SIGTERM, SIGKILL after grace). No-op unless loading/ready. */
void backend_stop(backend_t *b);
/* Kill now (SIGKILL to the group); the exit is reported as crashed/failed. */
void backend_kill(backend_t *b);

be_state_t backend_state(const backend_t *b);
const char *backend_state_name(be_state_t s);
pid_t backend_pid(const backend_t *b);
int backend_port(const backend_t *b);
const char *backend_name(const backend_t *b);
double backend_started_at(const backend_t *b); /* now_s() at spawn */
double backend_ready_at(const backend_t *b);   /* now_s() when ready, 0 if not */
/* Load report of the current/last run. */
const loadlog_t *backend_report(const backend_t *b);
/* Reason of the last failure or crash ("" if none). */
const char *backend_error(const backend_t *b);
/* Append the last n lines of output to out. */
void backend_log_tail(const backend_t *b, size_t n_lines, buf_t *out);
/* For followers: every byte of output has a position (a count from the
 * backend's creation, across restarts); backend_log_pos is the end's.
 * backend_log_since appends up to max bytes from *pos on to out and moves
 * *pos past them; bytes that already left the ring are skipped (*pos jumps
 * to the ring's start) and their count returned. */
uint64_t backend_log_pos(const backend_t *b);
uint64_t backend_log_since(const backend_t *b, uint64_t *pos, size_t max, buf_t *out);

/* The llama-server to run: `configured` if set, else $VARIET_LLAMA_SERVER,
 * else the first llama-server on PATH; NULL when none is executable.
 * Caller frees. */
char *backend_find_exe(const char *configured);

/* Reap every exited child (call on SIGCHLD) and dispatch exits to their
 * backends. */
void backend_reap_all(void);

/* Synchronously stop every live backend (SIGTERM, wait up to each grace,
 * SIGKILL), for shutdown. */
void backend_stop_all_sync(void);

#endif
