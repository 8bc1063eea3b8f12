/*
 * e2e_util.h — helpers for end-to-end tests: find the real llama-server,
 * pick free loopback ports, spawn children in their own process group (they
 * die with the test), wait for readiness, stop, and make HTTP requests.
 */
#ifndef VARIET_E2E_UTIL_H
#define VARIET_E2E_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Path of llama-server: $VARIET_LLAMA_SERVER, the project cache, or PATH.
 * NULL when none runs (the test must then fail, not skip). */
const char *e2e_llama_server(void);
/* A temp folder for this test run (created once, removed by nothing: under /tmp). */
const char *e2e_tmpdir(void);
int e2e_free_port(void);
/* Spawn argv (argv[0] a path) with stdout+stderr to logpath. Returns pid or -1. */
pid_t e2e_spawn(char *const argv[], const char *logpath);
/* Wait until `logpath` shows "listening on" and GET /health answers 200.
 * Returns 0, or -1 if the child exited or timeout_s passed. */
int e2e_wait_ready(pid_t pid, int port, const char *logpath, double timeout_s);
/* SIGTERM the process group, SIGKILL after 5 s; reaps. Returns exit status. */
int e2e_stop(pid_t pid);
/* HTTP request to 127.0.0.1:port; body may be NULL (GET). Response body in
 * *resp (caller frees). Returns HTTP status or -1. */
int e2e_http(int port, const char *method, const char *path, const char *body, char **resp);
/* Run a shell command, capture stdout (caller frees), return exit code. */
int e2e_sh(const char *cmd, char **out);
/* Read a whole file (caller frees); NULL on error. */
char *e2e_slurp(const char *path, size_t *len);

/* Is a process running (not a zombie) whose command line contains a and,
 * unless b is NULL, b? */
bool e2e_proc_running(const char *a, const char *b);
/* Is pid a live process (not a zombie)? */
bool e2e_pid_alive(pid_t pid);

/* A folder `name` under e2e_tmpdir() with the models `models` ("PRESET=FILE
 * ...", each written by variet synth) and `config` as its
 * engine_models.json. Returns the folder (caller frees); aborts on error. */
char *e2e_dir_with(const char *name, const char *models, const char *config);
/* e2e_dir_with tiny-qwen35moe (m.gguf), its draft tiny-draft (d.gguf), a
 * draft of another vocabulary (o.gguf), role "spec" (m + d, -c ctx -np 1
 * -t 2) and role "bad" (m + o, -c ctx -np 1); engine_extra goes inside
 * "_engine" after the llama_server (", \"port\": 1234", or ""). */
char *e2e_draft_dir(const char *name, int ctx, const char *engine_extra);

#endif
