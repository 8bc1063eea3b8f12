/*
 * bench.h — measured throughput of a llama-server (direct or through the
 * gateway): prompt t/s, generation t/s, prefill seconds from llama-server's
 * `timings`, time to first token by wall clock.
 *
 * Scenarios: short (~170 prompt tokens, 300 generated) and long (~3,100
 * prompt tokens, 128 generated). Prompts are deterministic text sized with
 * the server's own /tokenize; the prompt cache is bypassed
 * (cache_prompt: false) so prefill is measured every time, except in the
 * turn scenario, which measures what the cache keeps. The vision
 * scenario sends a generated PNG (src/png.h) as an OpenAI image_url part
 * after a short question and reads what the projector did from
 * llama-server's log (loadlog_images): image tokens, encode and decode ms.
 * With a draft model, llama-server's timings.draft_n / draft_n_accepted
 * give the acceptance rate.
 */
#ifndef VARIET_BENCH_H
#define VARIET_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>

#include "loadlog.h"
#include "modelinfo.h"

typedef struct {
    const char *name;
    int prompt_tokens; /* target */
    int n_predict;
} bench_scenario_t;

extern const bench_scenario_t bench_short, bench_long;
/* a chat's second turn after the long prompt (bench_run_turn): each turn
 * answers BENCH_TURN_ANSWER tokens; n_predict is the room the second turn
 * needs past the first prompt (the fixed answer, the follow-up, its own
 * answer), which sizing counts */
extern const bench_scenario_t bench_turn;
#define BENCH_TURN_ANSWER 16
/* prompt_tokens 0: a fixed question, the image's tokens come on top */
extern const bench_scenario_t bench_vision;

/* The vision scenario's question, and its default image sizes (squares). */
extern const char bench_vision_question[];
#define BENCH_IMAGE_SEED 1
#define BENCH_MAX_IMAGE_PX 4096

typedef struct {
    double prompt_tps, gen_tps, ttft_ms, prefill_s, wall_s;
    long prompt_n, gen_n;
    long draft_n, draft_accepted; /* timings.draft_n / draft_n_accepted; -1: not reported (no draft) */
    long cache_n; /* timings.cache_n: prompt tokens the slot's cache held; -1: not reported */
    /* vision (-1: no image, or not in the log): the projector's encode, the
     * text model's decode of the image tokens, and their count */
    double encode_ms, image_decode_ms;
    long image_tokens;
} bench_sample_t;

typedef struct {
    bench_sample_t med, min, max;
    int n;
    /* sums over the runs that reported a draft; acceptance = accepted /
     * drafted, -1 when no run did */
    long draft_n, draft_accepted;
    double acceptance;
} bench_stats_t;

/* Where llama-server's log is read for a request's image lines: its log
 * file (a server bench started), or a gateway's GET /roles/ROLE/logs. */
typedef struct {
    const char *path;
    const char *base_url, *role;
} bench_logsrc_t;

/* Deterministic text of about `target` tokens as counted by the server at
 * base_url (POST /tokenize, with "model" when model != NULL). *text is
 * owned by the caller. 0 or -errno. */
int bench_prompt(const char *base_url, const char *model, int target, char **text, long *n_tokens,
                 char *err, size_t errlen);

/* One streamed chat completion; fills *s from `timings` and the clock. */
int bench_run(const char *base_url, const char *model, const char *prompt, int n_predict,
              bench_sample_t *s, char *err, size_t errlen);

/* The same with an image_url part (a data: URI, image_uri) after the
 * prompt's text; image_uri NULL: bench_run. With log, waits (at most 2 s)
 * for the request's image lines and fills encode_ms, image_decode_ms and
 * image_tokens (left -1 when the log does not show them: a verbosity
 * under 4, no timestamps). */
int bench_run_image(const char *base_url, const char *model, const char *prompt, const char *image_uri, int n_predict,
                    const bench_logsrc_t *log, bench_sample_t *s, char *err, size_t errlen);

/* The turn scenario: a chat's second turn. The first turn sends `prompt`
 * (the long scenario's text, tagged `run` so that a run does not reuse the
 * one before it) and gets n_predict tokens; the second sends the same
 * conversation with a fixed answer in place of the generated one and a
 * short follow-up, both with the prompt cache on (the other scenarios
 * bypass it). The second turn's prompt_n is what the server processed
 * again and cache_n what it kept: the conversation diverges from the
 * cached tokens where the answer starts, and a recurrent or sliding-window
 * model can keep only what a context checkpoint (-ctxcp, taken near the
 * end of the first prompt) covers; without one it prefills everything
 * again. *first and *second filled; 0 or -errno with err. */
int bench_run_turn(const char *base_url, const char *model, const char *prompt, int run, int n_predict,
                   bench_sample_t *first, bench_sample_t *second, char *err, size_t errlen);

/* llama-server's settings in args that change an image's token count
 * (-ub, --image-min-tokens, --image-max-tokens) for mi_image_tokens_wh.
 * Pure. */
void bench_image_opts(char *const *args, size_t n, mi_image_opts_t *o);

/* Whether args load a draft model (-md, --model-draft, --spec-draft-model). Pure. */
bool bench_has_draft(char *const *args, size_t n);

/* "640,1024" → sizes (at most max, each 16..BENCH_MAX_IMAGE_PX). 0 with
 * *n, or -EINVAL with err. Pure. */
int bench_image_sizes(const char *list, uint32_t *sizes, int max, int *n, char *err, size_t errlen);

/* Median / min / max of each field over n samples (pure). */
void bench_stats(const bench_sample_t *s, int n, bench_stats_t *out);

/* GET base_url+path; 0 and the HTTP status in *code (body into *body if
 * not NULL, caller frees), or -errno on transport failure. */
int bench_http_get(const char *base_url, const char *path, int *code, char **body);

/* The key sent as "Authorization: Bearer KEY" from now on (copied; NULL:
 * $VARIET_API_KEY, the default). For a gateway with an api_key. */
void bench_set_api_key(const char *key);

/* Seconds without a byte from llama-server before a request fails with an
 * error naming _engine.upstream_timeout (default 600; <= 0: no limit). */
void bench_set_stall_timeout(double seconds);

/* Tokens one request may hold on the llama-server at base_url (its
 * per-slot context, GET /props default_generation_settings.n_ctx): 0 with
 * *n_ctx, or -ENOENT when the server does not say (a gateway does not
 * proxy /props), -ECONNREFUSED when it does not answer. */
int bench_context(const char *base_url, long *n_ctx);

/* The per-request context a llama-server error names ("request (3160
 * tokens) exceeds the available context size (2048 tokens)"), or 0. Pure. */
long bench_context_from_error(const char *err);

/* The smallest prompt a sized-down scenario may have: BENCH_MIN_PROMPT
 * tokens for a long one, half its prompt for a short one. Pure. */
#define BENCH_MIN_PROMPT 512
int bench_min_prompt(const bench_scenario_t *sc);

/* Scenario `sc` for a per-request context of n_ctx tokens (<= 0: unknown).
 * *out = *sc, with prompt_tokens lowered when prompt + chat template +
 * n_predict would not fit. 0: fits as is; 1: sized down; -1: even
 * bench_min_prompt(sc) tokens would not fit (skip it). Pure. */
int bench_fit(const bench_scenario_t *sc, long n_ctx, bench_scenario_t *out);

/* Start `exe -m model --host 127.0.0.1 --port P args... -lv 4` with its
 * output in log_path, wait until /health answers 200 (at most timeout_s).
 * On success: *pid, *base ("http://127.0.0.1:P", caller frees), *cold_s
 * (spawn → ready) and the parsed load report in *rep. On failure the child
 * is gone, err says why (out of memory on a device, llama-server's error
 * line, timeout) and *rep holds what the log said. A draft (-md in args)
 * whose vocabulary is not the model's is refused before anything is spawned
 * (-EINVAL, err names the first difference: roleplan_check_draft). Stop
 * with proc_stop. */
int bench_spawn(const char *exe, const char *model, char *const *args, size_t n_args, const char *log_path,
                double timeout_s, pid_t *pid, char **base, double *cold_s, loadlog_t *rep, char *err,
                size_t errlen);

/* A flag (set by a signal handler) that makes bench_spawn stop the child
 * and return -EINTR at once instead of waiting out the load. NULL: none. */
void bench_set_abort(volatile sig_atomic_t *flag);

#endif
