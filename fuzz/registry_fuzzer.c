/*
 * registry_fuzzer.c — libFuzzer target for engine_models.json.
 *
 * Parses the input with registry_parse. A refusal must leave *out NULL and
 * one line of text. An accepted config is walked the way serve would use
 * it: every role found by its name and by each alias, args re-checked,
 * engine bounds asserted; then measured_tps and args are written back
 * through registry_set_tps / registry_set_args, and the document that
 * registry_save would write (registry_dump) must parse again to the same
 * roles, values and engine settings (a saved file always loads).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "registry_fuzzer: invariant broken: %s\n", what);
        abort();
    }
}

static void check_accepted(const registry_t *r)
{
    const reg_engine_t *e = &r->engine;
    char err[256];

    must(r->n_roles >= 1, "at least one role");
    must(e->host && *e->host, "host set");
    must(e->port >= 1 && e->port <= 65535, "port in range");
    must(e->max_loaded >= 0 && e->max_loaded <= 64, "max_loaded in range");
    must(e->queue_size >= 1 && e->queue_timeout_s > 0 && e->load_timeout_s > 0, "queue");
    must(e->max_body >= 1024 && e->max_body <= (1u << 30), "max_body in range");
    must(e->max_header >= 1024 && e->max_header <= (16u << 20), "max_header in range");
    must(e->idle_ttl_s >= 0 && e->stop_grace_s >= 0 && e->health_interval_s > 0, "seconds");
    must(e->log_dir && *e->log_dir, "log_dir set");
    must(!e->default_role || registry_find(r, e->default_role), "default_role resolves");

    for (size_t i = 0; i < r->n_roles; i++) {
        const reg_role_t *ro = &r->roles[i];
        must(ro->name && ro->display_name && ro->model_path && ro->model_abs, "role strings");
        must(registry_find(r, ro->name) == ro, "role found by its name");
        for (size_t k = 0; k < ro->n_aliases; k++)
            must(registry_find(r, ro->aliases[k]) == ro, "role found by each alias");
        must(ro->args && !ro->args[ro->n_args], "args NULL-terminated");
        must(ro->aliases && !ro->aliases[ro->n_aliases], "aliases NULL-terminated");
        must(args_check(ro->args, ro->n_args, err, sizeof err) == -1, "args pass args_check");
        must(ro->measured_tps >= 0 && isfinite(ro->measured_tps), "measured_tps");
        must(ro->ttl_s >= 0 || ro->ttl_s == -1, "ttl");
    }
}

/* Same settings and roles in both. */
static void check_same(const registry_t *a, const registry_t *b)
{
    must(a->n_roles == b->n_roles, "round trip: role count");
    must(a->engine.port == b->engine.port, "round trip: port");
    must(a->engine.memory_budget == b->engine.memory_budget, "round trip: memory_budget");
    must(a->engine.max_body == b->engine.max_body, "round trip: max_body");
    must(a->engine.queue_timeout_s == b->engine.queue_timeout_s, "round trip: queue_timeout");
    must(!strcmp(a->engine.host, b->engine.host), "round trip: host");
    for (size_t i = 0; i < a->n_roles; i++) {
        const reg_role_t *x = &a->roles[i], *y = &b->roles[i];
        must(!strcmp(x->name, y->name), "round trip: role order");
        must(!strcmp(x->model_abs, y->model_abs), "round trip: model_abs");
        must(x->measured_tps == y->measured_tps, "round trip: measured_tps exact");
        must(x->ttl_s == y->ttl_s, "round trip: ttl exact");
        must(x->n_args == y->n_args && x->n_aliases == y->n_aliases, "round trip: counts");
        for (size_t k = 0; k < x->n_args; k++)
            must(!strcmp(x->args[k], y->args[k]), "round trip: args");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    registry_t *r = NULL, *r2 = NULL;
    char err[512];

    if (registry_parse((const char *)data, size, "cfg/engine_models.json", &r, err,
                       sizeof err) != 0) {
        must(r == NULL, "*out NULL on error");
        must(err[0] != 0, "an error has text");
        must(strchr(err, '\n') == NULL, "an error is one line");
        return 0;
    }
    must(r != NULL, "*out set on success");
    check_accepted(r);
    must(registry_find(r, "") == NULL && registry_find(r, "_engine") == NULL, "no odd names");

    /* write back what was read: the struct and the document stay valid */
    for (size_t i = 0; i < r->n_roles; i++) {
        reg_role_t *ro = &r->roles[i];
        must(registry_set_tps(r, ro->name, ro->measured_tps) == 0, "set_tps of a read value");
        must(registry_set_args(r, ro->name, ro->args, ro->n_args) == 0, "set_args of read args");
    }
    check_accepted(r);

    char *text = registry_dump(r);
    must(text && strlen(text) > 0 && text[strlen(text) - 1] == '\n', "dump ends in a newline");
    if (registry_parse(text, strlen(text), "cfg/engine_models.json", &r2, err, sizeof err)) {
        fprintf(stderr, "registry_fuzzer: dump does not parse: %s\n%s\n", err, text);
        abort();
    }
    check_same(r, r2);
    free(text);

    registry_free(&r2);
    registry_free(&r);
    must(r == NULL, "free NULLs");
    return 0;
}
