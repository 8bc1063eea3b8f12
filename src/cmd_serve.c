/*
 * cmd_serve.c — `variet serve`: load the registry, check every role's args
 * against the llama-server in use (srvhelp: its --help, cached), run the
 * gateway until SIGINT/SIGTERM (then save the roles' context, bounded by
 * kv_save_timeout, and stop every backend; a second signal, or SIGQUIT,
 * stops at once), reload on SIGHUP (with the same check), reap children on
 * SIGCHLD.
 */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "cmd.h"
#include "gateway.h"
#include "registry.h"
#include "roleplan.h"
#include "srvhelp.h"
#include "util.h"

typedef struct {
    struct event_base *base;
    gateway_t *g;
    const char *config;
    srvhelp_t *help; /* the options of the llama-server in use, NULL if unread */
    bool stopping;   /* a first SIGINT/SIGTERM came: saving before the stop */
} serve_t;

static void on_stopped(void *arg)
{
    serve_t *s = arg;
    event_base_loopbreak(s->base);
}

/* Print every role whose args the build h does not take, or whose draft
 * does not share its model's vocabulary; their count. A build without
 * --spec-type drafts with -md alone: draft_model_path adds no type then. */
static int bad_roles(const srvhelp_t *h, registry_t *reg, const char *config, const char *what)
{
    int bad = 0;
    char err[1024];
    if (h)
        registry_set_spec_type(reg, srvhelp_find(h, "--spec-type", 11) != NULL);
    for (size_t i = 0; i < reg->n_roles; i++) {
        const reg_role_t *ro = &reg->roles[i];
        long at = h ? srvhelp_check(h, ro->args, ro->n_args, err, sizeof err) : -1;
        char where[128];
        if (at >= 0) {
            fprintf(stderr, "variet%s: %s: %s: %s\n", what, config, registry_arg_where(ro, at, where, sizeof where),
                    err);
            bad++;
        } else if (roleplan_check_draft(ro->model_abs, ro->args, ro->n_args, err, sizeof err)) {
            fprintf(stderr, "variet%s: %s: %s.%s: %s\n", what, config, ro->name,
                    ro->draft_abs ? "draft_model_path" : "args", err);
            bad++;
        }
    }
    return bad;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    serve_t *s = arg;
    char err[1024];
    if (sig == SIGCHLD) {
        backend_reap_all();
        return;
    }
    if (sig == SIGHUP) {
        registry_t *reg = NULL;
        if (registry_load(s->config, &reg, err, sizeof err)) {
            fprintf(stderr, "variet: reload refused, keeping the running configuration: %s\n", err);
            return;
        }
        if (bad_roles(s->help, reg, s->config, "")) {
            fprintf(stderr, "variet: reload refused, keeping the running configuration: the llama-server in use "
                            "does not take those args, or a draft does not share its model's vocabulary\n");
            registry_free(&reg);
            return;
        }
        if (gateway_reload(s->g, reg, err, sizeof err)) {
            fprintf(stderr, "variet: reload refused, keeping the running configuration: %s\n", err);
            registry_free(&reg);
            return;
        }
        fprintf(stderr, "variet: configuration reloaded from %s\n", s->config);
        return;
    }
    if (sig == SIGQUIT || s->stopping) {
        fprintf(stderr, "variet: signal %d, stopping now\n", (int)sig);
        event_base_loopbreak(s->base);
        return;
    }
    fprintf(stderr, "variet: signal %d, stopping\n", (int)sig);
    s->stopping = true;
    gateway_shutdown(s->g, on_stopped, s);
}

static int exec_serve(cmd_ctx_t *c)
{
    const char *host = cmd_opt(c, "--host"), *exe_arg = cmd_opt(c, "--llama-server");
    int64_t port = -1;
    char err[1024];

    if (cmd_opt_i64(c, "--port", 0, 65535, &port))
        return CMD_USAGE;
    /* the gateway owns the registry once it is built */
    registry_t *reg = c->reg;
    c->reg = NULL;
    if (host) {
        free(reg->engine.host);
        reg->engine.host = xstrdup(host);
    }
    if (port >= 0)
        reg->engine.port = (int)port;
    char *exe = exe_arg ? xstrdup(exe_arg) : backend_find_exe(reg->engine.llama_server);
    if (!exe || access(exe, X_OK) != 0) {
        fprintf(stderr, "variet serve: no llama-server found (set _engine.llama_server, $VARIET_LLAMA_SERVER or "
                        "--llama-server; scripts/get-llama-server.sh provides one)\n");
        free(exe);
        registry_free(&reg);
        return CMD_FAIL;
    }
    /* every role's args against the options this llama-server has (its
     * --help, cached per binary); read before any SIGCHLD handler reaps */
    srvhelp_t *help = NULL;
    if (srvhelp_load(exe, NULL, &help, err, sizeof err))
        fprintf(stderr, "variet serve: warning: %s; role args not checked against this llama-server\n", err);
    if (bad_roles(help, reg, c->config, " serve")) {
        srvhelp_free(&help);
        free(exe);
        registry_free(&reg);
        return CMD_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    /* the changelist folds the add/del pairs evhttp makes per request into
     * one epoll_ctl */
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(ec);
    event_config_free(ec);
    serve_t s = {.base = base, .config = c->config, .help = help};
    int grc = gateway_new(base, reg, exe, &s.g, err, sizeof err);
    if (grc) {
        fprintf(stderr, "variet serve: %s\n", err);
        registry_free(&reg);
        free(exe);
        srvhelp_free(&help);
        event_base_free(base);
        return grc == -EINVAL ? CMD_USAGE : CMD_FAIL; /* a role's model unusable: bad input */
    }
    struct event *sigs[5];
    const int signums[5] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGQUIT};
    for (int i = 0; i < 5; i++) {
        sigs[i] = evsignal_new(base, signums[i], on_signal, &s);
        event_add(sigs[i], NULL);
    }
    fprintf(stderr, "variet: serving %zu roles on http://%s:%d (llama-server %s)\n", reg->n_roles,
            reg->engine.host, gateway_port(s.g), exe);
    fflush(stderr);
    event_base_dispatch(base);
    gateway_free(&s.g);
    for (int i = 0; i < 5; i++)
        event_free(sigs[i]);
    event_base_free(base);
    free(exe);
    srvhelp_free(&help);
    fprintf(stderr, "variet: stopped\n");
    return CMD_OK;
}

static const cli_opt_t serve_opts[] = {
    CMD_OPT_CONFIG,
    {"--host", 0, "H", "listen address (default _engine.host, 127.0.0.1)", 0},
    {"--port", 0, "P", "listen port, 0 for any free one (default _engine.port, 8000)", 0},
    {"--llama-server", 0, "PATH", "llama-server executable (default _engine.llama_server, $VARIET_LLAMA_SERVER, PATH)",
     0},
    {0},
};

const cmd_entry_t cmd_serve_entry = {
    .name = "serve",
    .summary = "run the OpenAI-compatible gateway that starts, swaps and proxies llama-server roles",
    .opts = serve_opts,
    .target = CMD_TARGET_REGISTRY,
    .exec = exec_serve,
};
