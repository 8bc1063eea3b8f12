/*
 * cmd_bench.c — `variet bench ROLE`: measure a role through a running
 * gateway (with the config's api_key, or $VARIET_API_KEY), or start its
 * llama-server directly when none serves it, saying why; print
 * median/min/max per scenario; --write stores the short scenario's median
 * generation t/s as the role's measured_tps.
 *
 * A scenario that does not fit the role's per-request context is sized
 * down (or skipped when even BENCH_MIN_PROMPT tokens would not fit), and
 * the summary says so. Whatever fails, the summary of what was measured is
 * printed before the error.
 *
 * The vision scenario (a role with --mmproj) sends one generated PNG per
 * --image-size and compares the image tokens llama-server counted with
 * what `variet inspect` computes for the projector and the role's args.
 * With a draft model the acceptance rate is printed per scenario.
 *
 * The turn scenario (bench_run_turn) answers the long prompt, then sends
 * the conversation's second turn with the prompt cache on, and prints how
 * many of its prompt tokens came from the cache and how long the rest
 * took to prefill: what context checkpoints buy a hybrid model.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "args.h"
#include "backend.h"
#include "bench.h"
#include "cmd.h"
#include "gguf.h"
#include "loadlog.h"
#include "modelinfo.h"
#include "png.h"
#include "proc.h"
#include "registry.h"
#include "srvhelp.h"
#include "util.h"

#define MAX_IMAGES 8
#define MAX_RESULTS (2 + MAX_IMAGES)

typedef struct {
    bench_scenario_t sc; /* as run: prompt_tokens may be sized down */
    const bench_scenario_t *asked;
    int runs;            /* runs measured (0: none) */
    bool skipped;
    char note[256];      /* "" or what differs from the scenario asked for */
    bench_stats_t st;    /* the turn scenario: its second turn's */
    bench_stats_t first; /* the turn scenario: its first turn's */
    char key[24];        /* "short", "vision-640": the JSON key and the notes' label */
    /* vision: the picture's side, its PNG's size, and the image tokens
     * variet computes for it (-1 unknown) */
    uint32_t image_px;
    size_t png_bytes;
    long inspect_tokens;
} result_t;

static void print_vision(const result_t *r, int nr, const char *projector_device)
{
    bool any = false;
    for (int i = 0; i < nr; i++)
        any |= r[i].image_px && r[i].runs;
    if (!any)
        return;
    printf("%-6s %6s %7s %9s | %-26s | %-20s | %-26s | %s\n", "", "image", "tokens", "(inspect)",
           "encode ms  med (min-max)", "TTFT ms  med (max)", "gen t/s  med (min-max)", "projector");
    for (int i = 0; i < nr; i++) {
        if (!r[i].image_px || !r[i].runs)
            continue;
        const bench_stats_t *s = &r[i].st;
        char tok[24] = "?", ins[24] = "(?)", a[48] = "not in the log", b[40], c[48];
        if (s->med.image_tokens >= 0)
            snprintf(tok, sizeof tok, "%ld", s->med.image_tokens);
        if (r[i].inspect_tokens >= 0)
            snprintf(ins, sizeof ins, "(%ld)", r[i].inspect_tokens);
        if (s->min.encode_ms >= 0)
            snprintf(a, sizeof a, "%.1f (%.1f-%.1f)", s->med.encode_ms, s->min.encode_ms, s->max.encode_ms);
        snprintf(b, sizeof b, "%.1f (%.1f)", s->med.ttft_ms, s->max.ttft_ms);
        snprintf(c, sizeof c, "%.2f (%.2f-%.2f)", s->med.gen_tps, s->min.gen_tps, s->max.gen_tps);
        printf("%-6s %6u %7s %9s | %-26s | %-20s | %-26s | %s\n", "vision", r[i].image_px, tok, ins, a, b, c,
               projector_device[0] ? projector_device : "?");
    }
}

static void print_table(const char *role, const char *via, double cold_s, const result_t *r, int nr,
                        const char *projector_device)
{
    printf("role %s via %s", role, via);
    if (cold_s > 0)
        printf(", cold start %.2f s", cold_s);
    printf("\n");
    bool text = false;
    for (int i = 0; i < nr; i++)
        text |= !r[i].image_px && r[i].runs && r[i].asked != &bench_turn;
    if (text)
        printf("%-6s %7s %9s | %-26s | %-26s | %-20s | %s\n", "", "prompt", "generated", "prompt t/s  med (min-max)",
               "gen t/s  med (min-max)", "TTFT ms  med (max)", "prefill s");
    for (int i = 0; i < nr; i++) {
        if (!r[i].runs || r[i].image_px || r[i].asked == &bench_turn)
            continue;
        const bench_stats_t *s = &r[i].st;
        char a[32], b[32], c[32];
        snprintf(a, sizeof a, "%.1f (%.1f-%.1f)", s->med.prompt_tps, s->min.prompt_tps, s->max.prompt_tps);
        snprintf(b, sizeof b, "%.2f (%.2f-%.2f)", s->med.gen_tps, s->min.gen_tps, s->max.gen_tps);
        snprintf(c, sizeof c, "%.1f (%.1f)", s->med.ttft_ms, s->max.ttft_ms);
        printf("%-6s %7ld %9ld | %-26s | %-26s | %-20s | %.3f\n", r[i].sc.name, s->med.prompt_n, s->med.gen_n, a,
               b, c, s->med.prefill_s);
    }
    print_vision(r, nr, projector_device);
    for (int i = 0; i < nr; i++) {
        if (!r[i].runs || r[i].asked != &bench_turn)
            continue;
        const bench_stats_t *f = &r[i].first, *s = &r[i].st;
        printf("turn   first turn: %ld prompt tokens prefilled in %.3f s (med); second turn: %ld of its prompt tokens "
               "from the cache, %ld prefilled in %.3f s (med; max %.3f), TTFT %.1f ms\n",
               f->med.prompt_n, f->med.prefill_s, s->med.cache_n, s->med.prompt_n, s->med.prefill_s, s->max.prefill_s,
               s->med.ttft_ms);
    }
    /* speculative decoding: accepted / drafted over the runs */
    for (int i = 0; i < nr; i++)
        if (r[i].runs && r[i].st.draft_n >= 0)
            printf("  %s: draft acceptance %.3f (%ld of %ld drafted tokens accepted, %d runs)\n", r[i].key,
                   r[i].st.acceptance, r[i].st.draft_accepted, r[i].st.draft_n, r[i].runs);
    for (int i = 0; i < nr; i++)
        if (r[i].note[0])
            printf("  %s: %s\n", r[i].key, r[i].note);
}

static json_t *sample_json(const bench_sample_t *s, bool image)
{
    json_t *o = json_pack("{s:f,s:f,s:f,s:f,s:f,s:I,s:I}", "prompt_tps", s->prompt_tps, "gen_tps", s->gen_tps,
                          "ttft_ms", s->ttft_ms, "prefill_s", s->prefill_s, "wall_s", s->wall_s, "prompt_n",
                          (json_int_t)s->prompt_n, "gen_n", (json_int_t)s->gen_n);
    if (s->draft_n >= 0) {
        json_object_set_new(o, "draft_n", json_integer(s->draft_n));
        json_object_set_new(o, "draft_n_accepted", json_integer(s->draft_accepted));
    }
    if (image) {
        json_object_set_new(o, "image_tokens", s->image_tokens >= 0 ? json_integer(s->image_tokens) : json_null());
        json_object_set_new(o, "encode_ms", s->encode_ms >= 0 ? json_real(s->encode_ms) : json_null());
        json_object_set_new(o, "image_decode_ms",
                            s->image_decode_ms >= 0 ? json_real(s->image_decode_ms) : json_null());
    }
    return o;
}

/* Size r->sc for a per-request context of n_ctx tokens (<= 0: unknown):
 * false when the scenario has to be skipped (r->note says why). */
static bool fit(result_t *r, long n_ctx)
{
    bench_scenario_t sized;
    /* the prompt starts at the asked size and is trimmed to what fits once
     * its tokens are counted (measure) */
    r->sc = *r->asked;
    if (bench_fit(r->asked, n_ctx, &sized) < 0) {
        r->skipped = true;
        snprintf(r->note, sizeof r->note,
                 "skipped: ~%d prompt + %d generated tokens do not fit the %ld-token context per request (nor "
                 "%d prompt tokens, the least it is sized down to)",
                 r->asked->prompt_tokens, r->asked->n_predict, n_ctx, bench_min_prompt(r->asked));
        return false;
    }
    return true;
}

/* After a failure: how many of the runs were measured, added to r's note. */
static void note_partial(result_t *r, int runs)
{
    if (!r->runs)
        return;
    size_t l = strlen(r->note);
    snprintf(r->note + l, sizeof r->note - l, "%s%d of %d runs measured before a failure", l ? "; " : "", r->runs, runs);
}

/* One scenario: prompt, warm-up, runs. 0 (r filled; skipped or measured)
 * or -1 with err (r holds the runs measured before the failure). */
static int measure(const char *base, const char *model, long n_ctx, int runs, bool quiet, result_t *r, char *err,
                   size_t errlen)
{
    if (!fit(r, n_ctx))
        return 0;
    bench_sample_t *samples = xcalloc((size_t)runs, sizeof *samples);
    bench_sample_t *firsts = xcalloc((size_t)runs, sizeof *firsts); /* the turn scenario's first turns */
    bool turn = r->asked == &bench_turn;
    char *prompt = NULL;
    int rc = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        long ptok = 0;
        free(prompt);
        prompt = NULL;
        if (bench_prompt(base, model, r->sc.prompt_tokens, &prompt, &ptok, err, errlen))
            goto out;
        /* bench_prompt ends past its target by up to a sentence (tens of
         * tokens with a small vocabulary): trim the target until the
         * prompt, the chat template and the answer fit */
        for (int trim = 0; trim < 4 && n_ctx > 0 && ptok + r->sc.n_predict + 32 > n_ctx; trim++) {
            int less = r->sc.prompt_tokens - (int)(ptok + r->sc.n_predict + 32 - n_ctx);
            if (less < bench_min_prompt(r->asked) / 2)
                break;
            r->sc.prompt_tokens = less;
            free(prompt);
            prompt = NULL;
            if (bench_prompt(base, model, r->sc.prompt_tokens, &prompt, &ptok, err, errlen))
                goto out;
        }
        if (r->sc.prompt_tokens != r->asked->prompt_tokens)
            snprintf(r->note, sizeof r->note,
                     "sized down to %ld prompt tokens (of ~%d) to fit the %ld-token context per request", ptok,
                     r->asked->prompt_tokens, n_ctx);
        bench_sample_t warm, warm2;
        if ((turn ? bench_run_turn(base, model, prompt, 0, BENCH_TURN_ANSWER, &warm, &warm2, err, errlen)
                  : bench_run(base, model, prompt, r->sc.n_predict, &warm, err, errlen)) == 0)
            break;
        /* the context was not known beforehand (through a gateway): the
         * server's refusal names it; size to that once */
        long named = bench_context_from_error(err);
        if (attempt || named <= 0 || n_ctx > 0) {
            err_prefix(err, errlen, "%s warm-up", r->key);
            goto out;
        }
        n_ctx = named;
        if (!fit(r, n_ctx)) {
            rc = 0;
            goto out;
        }
    }
    for (int i = 0; i < runs; i++) {
        if (turn ? bench_run_turn(base, model, prompt, i + 1, BENCH_TURN_ANSWER, &firsts[i], &samples[i], err, errlen)
                 : bench_run(base, model, prompt, r->sc.n_predict, &samples[i], err, errlen)) {
            err_prefix(err, errlen, "%s run %d", r->key, i + 1);
            goto out;
        }
        r->runs = i + 1;
        bench_stats(samples, r->runs, &r->st);
        if (turn)
            bench_stats(firsts, r->runs, &r->first);
        if (quiet)
            continue;
        if (turn)
            fprintf(stderr, "  turn %d/%d: first %ld prompt tokens in %.3f s; second %ld from the cache, %ld prefilled "
                            "in %.3f s\n",
                    i + 1, runs, firsts[i].prompt_n, firsts[i].prefill_s, samples[i].cache_n, samples[i].prompt_n,
                    samples[i].prefill_s);
        else
            fprintf(stderr, "  %s %d/%d: prompt %.1f t/s, gen %.2f t/s, TTFT %.1f ms\n", r->sc.name, i + 1, runs,
                    samples[i].prompt_tps, samples[i].gen_tps, samples[i].ttft_ms);
    }
    rc = 0;
out:
    if (rc)
        note_partial(r, runs);
    free(prompt);
    free(samples);
    free(firsts);
    return rc;
}

/* The vision scenario for one picture size: warm-up, runs. 0 (r filled;
 * skipped or measured) or -1 with err. */
static int measure_vision(const char *base, const char *model, long n_ctx, int runs, bool quiet,
                          const bench_logsrc_t *log, result_t *r, char *err, size_t errlen)
{
    /* the question and the chat template's tokens beside the image's */
    if (n_ctx > 0 && r->inspect_tokens > 0 && r->inspect_tokens + r->sc.n_predict + 128 > n_ctx) {
        r->skipped = true;
        snprintf(r->note, sizeof r->note,
                 "skipped: a %u px picture takes %ld image tokens; with the question and %d generated tokens it does "
                 "not fit the %ld-token context per request",
                 r->image_px, r->inspect_tokens, r->sc.n_predict, n_ctx);
        return 0;
    }
    char *uri = png_pattern_uri(r->image_px, r->image_px, BENCH_IMAGE_SEED, PNG_DEFLATE, &r->png_bytes);
    if (!uri) {
        snprintf(err, errlen, "cannot make a %u px picture", r->image_px);
        return -1;
    }
    bench_sample_t *samples = xcalloc((size_t)runs, sizeof *samples), warm;
    int rc = -1;
    /* the first image also allocates the projector's graph */
    if (bench_run_image(base, model, bench_vision_question, uri, r->sc.n_predict, log, &warm, err, errlen)) {
        err_prefix(err, errlen, "%s warm-up", r->key);
        goto out;
    }
    for (int i = 0; i < runs; i++) {
        if (bench_run_image(base, model, bench_vision_question, uri, r->sc.n_predict, log, &samples[i], err, errlen)) {
            err_prefix(err, errlen, "%s run %d", r->key, i + 1);
            goto out;
        }
        r->runs = i + 1;
        bench_stats(samples, r->runs, &r->st);
        if (!quiet)
            fprintf(stderr, "  %s %d/%d: %ld image tokens, encode %.1f ms, TTFT %.1f ms, gen %.2f t/s\n", r->key, i + 1,
                    runs, samples[i].image_tokens, samples[i].encode_ms, samples[i].ttft_ms, samples[i].gen_tps);
    }
    rc = 0;
    long got = r->st.med.image_tokens;
    if (got < 0)
        snprintf(r->note, sizeof r->note,
                 "llama-server's log did not show the image lines (they need -lv 4 and its timestamps)");
    else if (r->st.min.image_tokens != r->st.max.image_tokens)
        snprintf(r->note, sizeof r->note, "the image took %ld to %ld tokens in different runs", r->st.min.image_tokens,
                 r->st.max.image_tokens);
    else if (r->inspect_tokens >= 0 && got != r->inspect_tokens)
        snprintf(r->note, sizeof r->note,
                 "llama-server counted %ld image tokens, variet inspect's formula gives %ld for this projector and "
                 "args",
                 got, r->inspect_tokens);
out:
    if (rc)
        note_partial(r, runs);
    free(uri);
    free(samples);
    return rc;
}

/* The role's projector facts (mi, caller frees) from its --mmproj file, as
 * llama-server will open it (relative to the working folder, else to the
 * config's folder). NULL with why in err. */
static mi_t *projector_info(const char *path, const char *config_dir, char *err, size_t errlen)
{
    gguf_t *g = NULL;
    mi_t *m = NULL;
    char *alt = NULL;
    int rc = gguf_open(path, &g, err, errlen);
    if (rc && path[0] != '/' && config_dir) {
        alt = xasprintf("%s/%s", config_dir, path);
        rc = gguf_open(alt, &g, err, errlen);
    }
    if (!rc && mi_from_gguf(g, &m, err, errlen) == 0 && !m->is_mmproj) {
        snprintf(err, errlen, "%s is not a projector (general.architecture %s)", path, m->arch);
        mi_free(&m);
    }
    gguf_close(&g);
    free(alt);
    return m;
}

/* The projector's device by the gateway: its /status (the last load
 * report), else the load log it keeps for the role (GET
 * /roles/ROLE/logs); "" when neither says. */
static void gateway_projector_device(const char *base, const char *role, char *dev, size_t cap)
{
    int code = 0;
    char *body = NULL;
    dev[0] = 0;
    if (bench_http_get(base, "/status", &code, &body) == 0 && code == 200 && body) {
        json_t *j = json_loads(body, 0, NULL);
        json_t *d = json_object_get(
            json_object_get(json_object_get(json_object_get(j, "roles"), role), "last_load"), "mmproj_device");
        if (json_is_string(d))
            snprintf(dev, cap, "%s", json_string_value(d));
        json_decref(j);
    }
    free(body);
    body = NULL;
    if (dev[0])
        return;
    char *path = xasprintf("/roles/%s/logs?tail=100000", role);
    if (bench_http_get(base, path, &code, &body) == 0 && code == 200 && body) {
        loadlog_t l;
        loadlog_init(&l);
        loadlog_parse(&l, body, strlen(body));
        snprintf(dev, cap, "%s", l.mmproj_device);
    }
    free(body);
    free(path);
}

/* --scenario: a comma-separated list of short, long, both, turn, vision,
 * all (short, long and vision). Sets *text (bit 0 short, bit 1 long, bit 2
 * turn) and *vision; false on a bad word. */
static bool parse_scenarios(const char *list, unsigned *text, bool *vision)
{
    *text = 0;
    *vision = false;
    char *copy = xstrdup(list), *save = NULL;
    bool ok = true;
    for (char *w = strtok_r(copy, ",", &save); w && ok; w = strtok_r(NULL, ",", &save)) {
        if (!strcmp(w, "short"))
            *text |= 1;
        else if (!strcmp(w, "long"))
            *text |= 2;
        else if (!strcmp(w, "both"))
            *text |= 3;
        else if (!strcmp(w, "turn"))
            *text |= 4;
        else if (!strcmp(w, "vision"))
            *vision = true;
        else if (!strcmp(w, "all"))
            *text |= 3, *vision = true;
        else
            ok = false;
    }
    free(copy);
    return ok && (*text || *vision);
}

/* Whether the gateway at url serves the role: true, or false with why not
 * in why. */
static bool gateway_serves(const char *url, const char *role, const char *key_from, char *why, size_t whylen)
{
    int code = 0;
    char *body = NULL;
    int rc = bench_http_get(url, "/v1/models", &code, &body);
    bool ok = false;
    if (rc == -ENOSYS)
        snprintf(why, whylen, "libcurl.so.4 is not installed");
    else if (rc)
        snprintf(why, whylen, "no gateway answers at %s", url);
    else if (code == 401 || code == 403)
        snprintf(why, whylen, "the gateway at %s refuses %s (HTTP %d; set VARIET_API_KEY to its key)", url, key_from,
                 code);
    else if (code != 200)
        snprintf(why, whylen, "%s answers GET /v1/models with HTTP %d", url, code);
    else {
        json_t *j = json_loads(body, 0, NULL), *m;
        size_t i;
        json_array_foreach(json_object_get(j, "data"), i, m)
        {
            if (!strcmp(json_string_value(json_object_get(m, "id")) ?: "", role))
                ok = true;
        }
        json_decref(j);
        if (!ok)
            snprintf(why, whylen, "the server at %s does not serve role %s", url, role);
    }
    free(body);
    return ok;
}

static int exec_bench(cmd_ctx_t *c)
{
    const char *scenario = cmd_opt(c, "--scenario") ?: "both", *url = cmd_opt(c, "--url");
    const char *sizes_opt = cmd_opt(c, "--image-size");
    const char *config = c->config;
    int64_t runs = 3;
    bool write = cmd_flag(c, "--write"), json = cmd_flag(c, "--json"), direct = cmd_flag(c, "--direct");
    char err[1024];

    if (cmd_opt_i64(c, "--runs", 1, 1000, &runs))
        return CMD_USAGE;
    if (url && direct)
        return cmd_usage(c->entry, "--url and --direct exclude each other");
    unsigned text;
    bool vision;
    if (!parse_scenarios(scenario, &text, &vision)) {
        fprintf(stderr, "variet bench: --scenario is a list of short, long, both, turn, vision and all, got '%s'\n",
                scenario);
        return CMD_USAGE;
    }
    if (sizes_opt && !vision)
        return cmd_usage(c->entry, "--image-size is for the vision scenario (--scenario vision)");
    uint32_t px[MAX_IMAGES];
    int n_px = 0;
    if (vision && bench_image_sizes(sizes_opt ? sizes_opt : "640,1024", px, MAX_IMAGES, &n_px, err, sizeof err)) {
        fprintf(stderr, "variet bench: %s\n", err);
        return CMD_USAGE;
    }
    registry_t *reg = c->reg;
    const reg_role_t *role = c->role;
    const char *mmproj = args_get(role->args, role->n_args, ARG_MMPROJ);
    if (vision && !mmproj) {
        fprintf(stderr,
                "variet bench: role %s has no projector (no --mmproj in its args): the vision scenario sends a "
                "picture and needs one\n",
                role->name);
        return CMD_USAGE;
    }

    result_t res[MAX_RESULTS];
    memset(res, 0, sizeof res);
    int nsc = 0;
    if (text & 1)
        res[nsc++].asked = &bench_short;
    if (text & 2)
        res[nsc++].asked = &bench_long;
    if (text & 4)
        res[nsc++].asked = &bench_turn;
    mi_t *pm = NULL;
    if (vision) {
        char pe[512];
        if (!(pm = projector_info(mmproj, reg->dir, pe, sizeof pe)))
            fprintf(stderr, "variet bench: warning: --mmproj %s: %s; image tokens are not compared\n", mmproj, pe);
        mi_image_opts_t io;
        bench_image_opts(role->args, role->n_args, &io);
        for (int i = 0; i < n_px; i++) {
            result_t *r = &res[nsc++];
            r->asked = &bench_vision;
            r->image_px = px[i];
            r->inspect_tokens = pm ? (long)mi_image_tokens_wh(pm, px[i], px[i], &io) : -1;
            snprintf(r->key, sizeof r->key, "vision-%u", px[i]);
        }
    }
    for (int k = 0; k < nsc; k++) {
        res[k].sc = *res[k].asked;
        if (!res[k].image_px)
            snprintf(res[k].key, sizeof res[k].key, "%s", res[k].asked->name);
    }

    char *base = NULL, *model = NULL, *log_path = NULL;
    const char *via = NULL;
    pid_t pid = 0;
    double cold_s = 0;
    loadlog_t rep;
    loadlog_init(&rep);
    int rc = CMD_FAIL;
    bool failed = false;
    char projector_device[32] = "";

    /* the gateway's key: $VARIET_API_KEY, else the config's own */
    const char *key_from = getenv("VARIET_API_KEY") && *getenv("VARIET_API_KEY") ? "$VARIET_API_KEY"
                           : reg->engine.api_key                                 ? "the config's api_key"
                                                                                 : "a request without a key";
    if (!strcmp(key_from, "the config's api_key"))
        bench_set_api_key(reg->engine.api_key);
    bench_set_stall_timeout(reg->engine.upstream_timeout_s);
    if (!direct) {
        char *try = url ? xstrdup(url) : xasprintf("http://%s:%d", reg->engine.host, reg->engine.port);
        char why[512];
        if (gateway_serves(try, role->name, key_from, why, sizeof why)) {
            base = try;
            model = xstrdup(role->name);
            via = "gateway";
        } else {
            free(try);
            if (url) {
                fprintf(stderr, "variet bench: --url: %s\n", why);
                goto out;
            }
            fprintf(stderr, "variet bench: %s: measuring the role's own llama-server instead (--direct skips this "
                            "check)\n",
                    why);
        }
    }
    if (!base) {
        char *exe = backend_find_exe(reg->engine.llama_server);
        if (!exe) {
            fprintf(stderr, "variet bench: no llama-server found (set _engine.llama_server or $VARIET_LLAMA_SERVER)\n");
            goto out;
        }
        /* the role's args against the options this llama-server has */
        srvhelp_t *help = NULL;
        if (srvhelp_load(exe, NULL, &help, err, sizeof err) == 0) {
            /* a draft_model_path drafts with --spec-type where the build has it */
            registry_set_spec_type(reg, srvhelp_find(help, "--spec-type", 11) != NULL);
            long bad = srvhelp_check(help, role->args, role->n_args, err, sizeof err);
            srvhelp_free(&help);
            if (bad >= 0) {
                char where[128];
                fprintf(stderr, "variet bench: %s: %s: %s\n", config, registry_arg_where(role, bad, where, sizeof where),
                        err);
                free(exe);
                rc = CMD_USAGE;
                goto out;
            }
        } else {
            fprintf(stderr, "variet bench: warning: %s; role args not checked against this llama-server\n", err);
        }
        log_path = xasprintf("/tmp/variet-bench-%s-%ld.log", role->name, (long)getpid());
        int r = bench_spawn(exe, role->model_abs, role->args, role->n_args, log_path, reg->engine.load_timeout_s, &pid,
                            &base, &cold_s, &rep, err, sizeof err);
        free(exe);
        if (r) {
            fprintf(stderr, "variet bench: role %s: %s\n", role->name, err);
            if (r == -EINVAL) /* a draft of another vocabulary: refused before launch */
                rc = CMD_USAGE;
            goto out;
        }
        via = "llama-server started by bench";
        snprintf(projector_device, sizeof projector_device, "%s", rep.mmproj_device);
    }
    if (!json)
        fprintf(stderr, "variet bench: %s via %s (%s), %lld runs + warm-up per scenario\n", role->name, via, base,
                (long long)runs);

    /* per-request context: llama-server says (GET /props); through a
     * gateway it is learnt from the first refusal */
    long n_ctx = 0;
    bench_context(base, &n_ctx);
    bench_logsrc_t logsrc = {.path = log_path};
    if (!log_path) {
        logsrc.base_url = base;
        logsrc.role = role->name;
    }
    for (int k = 0; k < nsc && !failed; k++) {
        int mr = res[k].image_px
                     ? measure_vision(base, model, n_ctx, (int)runs, json, &logsrc, &res[k], err, sizeof err)
                     : measure(base, model, n_ctx, (int)runs, json, &res[k], err, sizeof err);
        if (mr)
            failed = true;
    }

    if (!strcmp(via, "gateway") && vision) /* the role has loaded by now */
        gateway_projector_device(base, role->name, projector_device, sizeof projector_device);
    if (!strcmp(via, "gateway")) {
        /* the gateway's own record of the role's last cold start */
        int code = 0;
        char *body = NULL;
        if (bench_http_get(base, "/status", &code, &body) == 0 && code == 200) {
            json_t *j = json_loads(body, 0, NULL);
            json_t *ll = json_object_get(json_object_get(json_object_get(json_object_get(j, "roles"), role->name),
                                                         "last_load"), "seconds");
            cold_s = json_number_value(ll);
            json_decref(j);
        }
        free(body);
    }
    /* a draft in the args that never drafted is worth a word */
    bool drafted = false;
    for (int k = 0; k < nsc; k++)
        drafted |= res[k].runs && res[k].st.draft_n >= 0;
    bool draft_silent = bench_has_draft(role->args, role->n_args) && !drafted;

    /* the summary of what was measured, whatever happened */
    if (json) {
        json_t *o = json_pack("{s:s,s:s,s:f}", "role", role->name, "via", via, "cold_start_s", cold_s);
        json_t *sc = json_object();
        for (int k = 0; k < nsc; k++) {
            const result_t *r = &res[k];
            json_t *e;
            if (r->runs)
                e = json_pack("{s:i,s:i,s:o,s:o,s:o}", "runs", r->st.n, "prompt_tokens", r->sc.prompt_tokens, "median",
                              sample_json(&r->st.med, r->image_px), "min", sample_json(&r->st.min, r->image_px), "max",
                              sample_json(&r->st.max, r->image_px));
            else
                e = json_pack("{s:i}", "runs", 0);
            if (r->runs && r->asked == &bench_turn) { /* median..max are the second turn's */
                json_object_set_new(json_object_get(e, "median"), "cache_n", json_integer(r->st.med.cache_n));
                json_object_set_new(json_object_get(e, "min"), "cache_n", json_integer(r->st.min.cache_n));
                json_object_set_new(json_object_get(e, "max"), "cache_n", json_integer(r->st.max.cache_n));
                json_object_set_new(e, "first", json_pack("{s:o}", "median", sample_json(&r->first.med, false)));
            }
            if (r->image_px) {
                json_object_del(e, "prompt_tokens");
                json_object_set_new(e, "image_px", json_integer(r->image_px));
                json_object_set_new(e, "png_bytes", json_integer((json_int_t)r->png_bytes));
                json_object_set_new(e, "image_tokens",
                                    r->runs && r->st.med.image_tokens >= 0 ? json_integer(r->st.med.image_tokens)
                                                                           : json_null());
                json_object_set_new(e, "image_tokens_inspect",
                                    r->inspect_tokens >= 0 ? json_integer(r->inspect_tokens) : json_null());
                json_object_set_new(e, "projector_device", json_string(projector_device));
            }
            if (r->runs && r->st.draft_n >= 0)
                json_object_set_new(e, "draft",
                                    json_pack("{s:I,s:I,s:f}", "drafted", (json_int_t)r->st.draft_n, "accepted",
                                              (json_int_t)r->st.draft_accepted, "acceptance", r->st.acceptance));
            if (r->skipped)
                json_object_set_new(e, "skipped", json_true());
            if (r->note[0])
                json_object_set_new(e, "note", json_string(r->note));
            json_object_set_new(sc, r->key, e);
        }
        json_object_set_new(o, "scenarios", sc);
        if (draft_silent)
            json_object_set_new(o, "draft_note", json_string("a draft model is in the role's args but llama-server "
                                                             "reported no drafted tokens"));
        if (rep.n_dev) { /* the buffers of the llama-server bench started, the draft's apart */
            json_t *dv = json_array();
            for (int d = 0; d < rep.n_dev; d++) {
                const loadlog_dev_t *D = &rep.dev[d];
                json_array_append_new(dv, json_pack("{s:s,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "device", D->name,
                                                    "model_mib", D->model_mib, "kv_mib", D->kv_mib, "rs_mib",
                                                    D->rs_mib, "compute_mib", D->compute_mib, "output_mib",
                                                    D->output_mib, "draft_mib", D->draft_mib, "mmproj_mib",
                                                    D->mmproj_mib));
            }
            json_object_set_new(o, "load", json_pack("{s:o}", "devices", dv));
        }
        if (failed)
            json_object_set_new(o, "error", json_string(err));
        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(o);
    } else {
        print_table(role->name, via, cold_s, res, nsc, projector_device);
        if (draft_silent)
            printf("  a draft model is in the role's args but llama-server reported no drafted tokens (build b11669 "
                   "drafts only with --spec-type draft-simple)\n");
        for (int d = 0; d < rep.n_dev; d++) {
            printf("  %-12s model %.2f MiB, KV %.2f MiB, RS %.2f MiB, compute %.2f MiB", rep.dev[d].name,
                   rep.dev[d].model_mib, rep.dev[d].kv_mib, rep.dev[d].rs_mib, rep.dev[d].compute_mib);
            if (rep.dev[d].draft_mib > 0)
                printf(" (of which the draft's %.2f MiB)", rep.dev[d].draft_mib);
            if (rep.dev[d].mmproj_mib > 0)
                printf(", projector compute %.2f MiB", rep.dev[d].mmproj_mib);
            printf("\n");
        }
        if (rep.mmproj_device[0])
            printf("  projector    on %s, weights %.2f MiB\n", rep.mmproj_device, rep.mmproj_model_mib);
    }
    fflush(stdout);
    if (failed) {
        fprintf(stderr, "variet bench: %s\n", err);
        goto out;
    }
    int measured = 0;
    for (int k = 0; k < nsc; k++)
        measured += res[k].runs > 0;
    if (!measured) {
        fprintf(stderr, "variet bench: nothing measured (see the notes above)\n");
        goto out;
    }
    if (write) {
        const result_t *s = NULL;
        for (int k = 0; k < nsc; k++)
            if (res[k].asked == &bench_short && res[k].runs)
                s = &res[k];
        if (!s) {
            fprintf(stderr, "variet bench: --write needs the short scenario\n");
            goto out;
        }
        double old = role->measured_tps, now = s->st.med.gen_tps;
        char name[128];
        snprintf(name, sizeof name, "%s", role->name);
        if (registry_set_tps(reg, name, now) || registry_save(reg, config, true, err, sizeof err)) {
            fprintf(stderr, "variet bench: cannot write %s: %s\n", config, err);
            goto out;
        }
        fprintf(json ? stderr : stdout, "%s.measured_tps: %.2f -> %.2f (written to %s, previous kept as %s.bak)\n",
                name, old, now, config, config);
    }
    rc = CMD_OK;
out:
    if (pid > 0)
        proc_stop(pid, reg->engine.stop_grace_s);
    if (log_path && rc == CMD_OK)
        unlink(log_path);
    else if (log_path && pid > 0 && failed)
        fprintf(stderr, "variet bench: llama-server's log: %s\n", log_path);
    bench_set_api_key(NULL);
    mi_free(&pm);
    free(log_path);
    free(base);
    free(model);
    return rc;
}

static const cli_opt_t bench_opts[] = {
    CMD_OPT_CONFIG,
    {"--scenario", 0, "LIST",
     "short (~170 prompt tokens, 300 generated), long (~3,100 and 128), both (the default), turn (a chat's second "
     "turn after the long prompt, prompt cache on: what the server keeps of the first), vision (a picture and a "
     "question, 128 generated; the role needs --mmproj), all (short, long, vision); comma-separated",
     0},
    {"--image-size", 0, "PX,...", "the vision scenario's square pictures, in pixels (default 640,1024)", 0},
    {"--runs", 0, "N", "measured runs per scenario after a warm-up (default 3)", 0},
    {"--write", 0, NULL, "store the short scenario's median generation t/s as the role's measured_tps", 0},
    {"--json", 0, NULL, "print JSON instead of the table", 0},
    {"--url", 0, "URL", "measure through the gateway at URL (default: the config's host:port when it serves the role)",
     0},
    {"--direct", 0, NULL, "start the role's llama-server instead of using a gateway", 0},
    {0},
};

const cmd_entry_t cmd_bench_entry = {
    .name = "bench",
    .pos_usage = "ROLE",
    .summary = "measure a role's prompt t/s, generation t/s, time to first token (short ~170 / long ~3100 tokens), "
               "image encode ms (vision) and draft acceptance",
    .opts = bench_opts,
    .min_pos = 1,
    .max_pos = 1,
    .exec = exec_bench,
    .target = CMD_TARGET_ROLE,
};
