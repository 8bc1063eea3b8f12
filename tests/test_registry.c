/*
 * test_registry.c — engine_models.json: a full config with defaults and
 * size strings, every validation error with its exact place, JSON syntax
 * and duplicate-key errors with line:column, and save round trips (unknown
 * fields and key order kept, backup, atomic write, no temp file left).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "registry.h"
#include "util.h"

#define NEAR(a, b) assert_true(fabs((a) - (b)) < 1e-9)

static registry_t *parse_ok(const char *json, const char *path)
{
    registry_t *r = NULL;
    char err[512];
    if (registry_parse(json, strlen(json), path, &r, err, sizeof err))
        fail_msg("unexpected error: %s", err);
    assert_non_null(r);
    return r;
}

/* Parse must fail with exactly `want` in err. */
static void parse_err(const char *json, const char *path, const char *want)
{
    registry_t *r = (registry_t *)1;
    char err[1024] = "";
    int rc = registry_parse(json, strlen(json), path, &r, err, sizeof err);
    if (rc != -EINVAL)
        fail_msg("expected an error '%s' for %s, got rc %d", want, json, rc);
    assert_null(r);
    if (strcmp(err, want))
        fail_msg("for %s\n  want: %s\n  got:  %s", json, want, err);
}

static const char *const full_cfg =
    "{\n"
    "  \"_comment\": \"lab box\",\n"
    "  \"_engine\": {\"host\": \"0.0.0.0\", \"port\": 9000, \"llama_server\": \"/opt/ls\",\n"
    "    \"max_loaded\": 2, \"memory_budget\": \"20G\", \"idle_ttl\": 300.5,\n"
    "    \"api_key\": \"sekret\", \"default_role\": \"quick\", \"queue_size\": 8,\n"
    "    \"queue_timeout\": 30, \"load_timeout\": 120, \"stop_grace\": 0, \"max_body\": \"64M\",\n"
    "    \"max_header\": 131072, \"max_connections\": 50, \"header_timeout\": 2.5,\n"
    "    \"upstream_timeout\": 60, \"log_dir\": \"var/log\", \"restart_max\": 0,\n"
    "    \"restart_window\": 120, \"health_interval\": 1, \"kv_store_max\": \"2G\"},\n"
    "  \"fast\": {\"display_name\": \"Fast chat\", \"model_path\": \"models/fast.gguf\",\n"
    "    \"measured_tps\": 41.5, \"args\": [\"-c\", \"4096\", \"-ngl\", \"99\"],\n"
    "    \"aliases\": [\"f\", \"quick\"], \"ttl\": 0, \"notes\": {\"x\": [1, 2]}},\n"
    "  \"balanced\": {\"model_path\": \"/srv/m/balanced.gguf\", \"args\": [], \"ttl\": null},\n"
    "  \"tiny.v2_x-1\": {\"model_path\": \"t.gguf\", \"ttl\": 90}\n"
    "}\n";

static void t_full(void **s)
{
    (void)s;
    registry_t *r = parse_ok(full_cfg, "/etc/variet/engine_models.json");
    const reg_engine_t *e = &r->engine;
    assert_string_equal(r->path, "/etc/variet/engine_models.json");
    assert_string_equal(r->dir, "/etc/variet");
    assert_string_equal(e->host, "0.0.0.0");
    assert_int_equal(e->port, 9000);
    assert_string_equal(e->llama_server, "/opt/ls");
    assert_int_equal(e->max_loaded, 2);
    assert_int_equal(e->memory_budget, 20ull << 30);
    NEAR(e->idle_ttl_s, 300.5);
    assert_string_equal(e->api_key, "sekret");
    assert_string_equal(e->default_role, "quick");
    assert_int_equal(e->queue_size, 8);
    NEAR(e->queue_timeout_s, 30);
    NEAR(e->load_timeout_s, 120);
    NEAR(e->stop_grace_s, 0);
    assert_int_equal(e->max_body, 64ull << 20);
    assert_int_equal(e->max_header, 131072);
    assert_int_equal(e->max_connections, 50);
    NEAR(e->header_timeout_s, 2.5);
    NEAR(e->upstream_timeout_s, 60);
    assert_string_equal(e->log_dir, "/etc/variet/var/log");
    assert_int_equal(e->restart_max, 0);
    NEAR(e->restart_window_s, 120);
    NEAR(e->health_interval_s, 1);
    assert_int_equal(e->kv_store_max, 2ull << 30);

    assert_int_equal(r->n_roles, 3);
    const reg_role_t *f = &r->roles[0];
    assert_string_equal(f->name, "fast");
    assert_string_equal(f->display_name, "Fast chat");
    assert_string_equal(f->model_path, "models/fast.gguf");
    assert_string_equal(f->model_abs, "/etc/variet/models/fast.gguf");
    NEAR(f->measured_tps, 41.5);
    assert_int_equal(f->n_args, 4);
    assert_string_equal(f->args[0], "-c");
    assert_string_equal(f->args[3], "99");
    assert_null(f->args[4]);
    assert_int_equal(f->n_aliases, 2);
    assert_string_equal(f->aliases[1], "quick");
    NEAR(f->ttl_s, 0);

    const reg_role_t *b = &r->roles[1];
    assert_string_equal(b->name, "balanced");
    assert_string_equal(b->display_name, "balanced");
    assert_string_equal(b->model_abs, "/srv/m/balanced.gguf");
    NEAR(b->measured_tps, 0);
    assert_int_equal(b->n_args, 0);
    assert_non_null(b->args);
    assert_null(b->args[0]);
    assert_int_equal(b->n_aliases, 0);
    NEAR(b->ttl_s, -1);
    NEAR(r->roles[2].ttl_s, 90);
    assert_string_equal(r->roles[2].name, "tiny.v2_x-1");

    assert_ptr_equal(registry_find(r, "fast"), f);
    assert_ptr_equal(registry_find(r, "quick"), f);
    assert_ptr_equal(registry_find(r, "f"), f);
    assert_ptr_equal(registry_find(r, "balanced"), b);
    assert_null(registry_find(r, "Fast"));
    assert_null(registry_find(r, "_engine"));
    assert_null(registry_find(r, NULL));
    assert_null(registry_find(NULL, "fast"));

    /* doc kept as read, unknown fields included */
    assert_string_equal(json_string_value(json_object_get(r->doc, "_comment")), "lab box");
    assert_non_null(json_object_get(json_object_get(r->doc, "fast"), "notes"));
    registry_free(&r);
    assert_null(r);
    registry_free(&r); /* NULL-safe */
    registry_free(NULL);
}

static void t_defaults(void **s)
{
    (void)s;
    registry_t *r = parse_ok("{\"a\": {\"model_path\": \"m.gguf\"}}", NULL);
    const reg_engine_t *e = &r->engine;
    assert_null(r->path);
    assert_string_equal(r->dir, ".");
    assert_string_equal(e->host, "127.0.0.1");
    assert_int_equal(e->port, 8000);
    assert_null(e->llama_server);
    assert_int_equal(e->max_loaded, 0);
    assert_int_equal(e->memory_budget, 0);
    NEAR(e->idle_ttl_s, 0);
    assert_null(e->api_key);
    assert_null(e->default_role);
    assert_int_equal(e->queue_size, 512);
    NEAR(e->queue_timeout_s, 300);
    NEAR(e->load_timeout_s, 600);
    NEAR(e->stop_grace_s, 10);
    assert_int_equal(e->max_body, 32ull << 20);
    assert_int_equal(e->max_header, 64ull << 10);
    assert_int_equal(e->max_connections, 1024);
    NEAR(e->header_timeout_s, 10);
    NEAR(e->upstream_timeout_s, 600);
    assert_string_equal(e->log_dir, "./logs");
    assert_int_equal(e->restart_max, 3);
    NEAR(e->restart_window_s, 60);
    NEAR(e->health_interval_s, 5);
    assert_int_equal(e->kv_store_max, 8ull << 30);
    const reg_role_t *a = &r->roles[0];
    assert_string_equal(a->display_name, "a");
    assert_string_equal(a->model_abs, "./m.gguf");
    NEAR(a->ttl_s, -1);
    NEAR(a->measured_tps, 0);
    assert_int_equal(a->n_args, 0);
    assert_null(a->args[0]);
    assert_int_equal(a->n_aliases, 0);
    registry_free(&r);

    /* folders: file in cwd, file at the root; absolute log_dir; nulls */
    r = parse_ok("{\"_engine\": {\"log_dir\": \"/var/log/v\", \"api_key\": null},"
                 " \"a\": {\"model_path\": \"m.gguf\"}}",
                 "engine_models.json");
    assert_string_equal(r->dir, ".");
    assert_string_equal(r->engine.log_dir, "/var/log/v");
    assert_null(r->engine.api_key);
    registry_free(&r);
    r = parse_ok("{\"a\": {\"model_path\": \"m.gguf\"}}", "/cfg.json");
    assert_string_equal(r->roles[0].model_abs, "/m.gguf");
    assert_string_equal(r->engine.log_dir, "/logs");
    registry_free(&r);
    /* integral reals are integers; _-keys other than _engine are ignored */
    r = parse_ok("{\"_engine\": {\"port\": 8080.0}, \"_x\": [1], \"_\": null,"
                 " \"a\": {\"model_path\": \"m\", \"extra\": 1}}",
                 NULL);
    assert_int_equal(r->engine.port, 8080);
    assert_int_equal(r->n_roles, 1);
    registry_free(&r);
}

static void t_sizes(void **s)
{
    (void)s;
    static const struct {
        const char *v;
        uint64_t want;
    } ok[] = {
        {"\"20G\"", 20ull << 30}, {"\"512M\"", 512ull << 20}, {"\"16GiB\"", 16ull << 30},
        {"\"1k\"", 1024},         {"\"123\"", 123},           {"1048576", 1ull << 20},
        {"0", 0},                 {"\"4GB\"", 4ull << 30},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char *j = xasprintf("{\"_engine\": {\"memory_budget\": %s}, \"a\": {\"model_path\": \"m\"}}",
                            ok[i].v);
        registry_t *r = parse_ok(j, NULL);
        assert_int_equal(r->engine.memory_budget, ok[i].want);
        registry_free(&r);
        free(j);
    }
#define SZ(field, v) "{\"_engine\": {\"" field "\": " v "}, \"a\": {\"model_path\": \"m\"}}"
    parse_err(SZ("memory_budget", "\"20X\""), NULL,
              "_engine.memory_budget: '20X' is not a size (bytes, or a number with K, M or G "
              "like \"20G\")");
    parse_err(SZ("memory_budget", "\"-1\""), NULL,
              "_engine.memory_budget: '-1' is not a size (bytes, or a number with K, M or G "
              "like \"20G\")");
    parse_err(SZ("memory_budget", "1.5"), NULL, "_engine.memory_budget: 1.5 is not a byte count");
    parse_err(SZ("memory_budget", "-4"), NULL, "_engine.memory_budget: -4 is not a byte count");
    parse_err(SZ("memory_budget", "true"), NULL,
              "_engine.memory_budget: expected a byte count or a size string like \"20G\", got "
              "boolean");
    parse_err(SZ("max_body", "\"2G\""), NULL, "_engine.max_body: 2G is outside 1K..1G");
    parse_err(SZ("max_body", "512"), NULL, "_engine.max_body: 512 is outside 1K..1G");
    parse_err(SZ("max_header", "\"17M\""), NULL, "_engine.max_header: 17M is outside 1K..16M");
    registry_t *r = parse_ok(SZ("max_body", "\"1G\""), NULL);
    assert_int_equal(r->engine.max_body, 1ull << 30);
    registry_free(&r);
}

static void t_engine_errors(void **s)
{
    (void)s;
#define ENG(body) "{\"_engine\": {" body "}, \"fast\": {\"model_path\": \"m\"}}"
    parse_err(ENG("\"prot\": 1"), "cfg.json",
              "cfg.json: _engine.prot: unknown field (did you mean 'port'? known: host, port, "
              "llama_server, max_loaded, memory_budget, idle_ttl, api_key, default_role, "
              "queue_size, queue_timeout, load_timeout, stop_grace, max_body, max_header, "
              "max_connections, header_timeout, upstream_timeout, allowed_hosts, allowed_origins, log_dir, restart_max, "
              "restart_window, health_interval, max_wait, kv_store_max, kv_save_timeout)");
    char err[512];
    registry_t *r = NULL;
    const char *j = ENG("\"zzzzzzzzzz\": 1");
    assert_int_equal(registry_parse(j, strlen(j), NULL, &r, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "_engine.zzzzzzzzzz: unknown field (known: host, port,"));
    parse_err("{\"_engine\": [], \"a\": {\"model_path\": \"m\"}}", NULL,
              "_engine: expected an object, got array");
    parse_err(ENG("\"allowed_hosts\": \"gpu-box\""), NULL,
              "_engine.allowed_hosts: expected an array of strings, got string");
    parse_err(ENG("\"allowed_origins\": [\"http://a\", \"\"]"), NULL,
              "_engine.allowed_origins[1]: expected a non-empty string, got \"\"");
    parse_err(ENG("\"allowed_hosts\": [1]"), NULL, "_engine.allowed_hosts[0]: expected a non-empty string, got number");
    parse_err(ENG("\"allowed_hosts\": [\"a b\"]"), NULL,
              "_engine.allowed_hosts[0]: spaces, control and non-ASCII characters are not allowed");
    {
        registry_t *rl = parse_ok(ENG("\"allowed_hosts\": [\"gpu-box.lan\", \"10.0.0.2\"], \"allowed_origins\": []"), NULL);
        assert_string_equal(rl->engine.allowed_hosts[0], "gpu-box.lan");
        assert_string_equal(rl->engine.allowed_hosts[1], "10.0.0.2");
        assert_null(rl->engine.allowed_hosts[2]);
        assert_null(rl->engine.allowed_origins[0]);
        registry_free(&rl);
    }
    parse_err(ENG("\"port\": 70000"), NULL, "_engine.port: 70000 is outside 1..65535");
    parse_err(ENG("\"port\": 0"), NULL, "_engine.port: 0 is outside 1..65535");
    parse_err(ENG("\"port\": \"80\""), NULL, "_engine.port: expected an integer, got string");
    parse_err(ENG("\"port\": 80.5"), NULL, "_engine.port: expected an integer, got 80.5");
    parse_err(ENG("\"max_loaded\": 65"), NULL, "_engine.max_loaded: 65 is outside 0..64");
    parse_err(ENG("\"queue_size\": 0"), NULL, "_engine.queue_size: 0 is outside 1..100000");
    parse_err(ENG("\"queue_timeout\": 0"), NULL,
              "_engine.queue_timeout: must be more than 0, got 0");
    parse_err(ENG("\"idle_ttl\": -1"), NULL, "_engine.idle_ttl: -1 is outside 0..315360000");
    parse_err(ENG("\"stop_grace\": 1e12"), NULL,
              "_engine.stop_grace: 1000000000000 is outside 0..315360000");
    parse_err(ENG("\"load_timeout\": \"10s\""), NULL,
              "_engine.load_timeout: expected a number, got string");
    parse_err(ENG("\"host\": null"), NULL, "_engine.host: expected a string, got null");
    parse_err(ENG("\"host\": \"\""), NULL, "_engine.host: must not be empty");
    parse_err(ENG("\"api_key\": \"\""), NULL, "_engine.api_key: must not be empty (use null)");
    parse_err(ENG("\"llama_server\": 1"), NULL,
              "_engine.llama_server: expected a string or null, got number");
    parse_err(ENG("\"restart_max\": 101"), NULL, "_engine.restart_max: 101 is outside 0..100");
    parse_err(ENG("\"default_role\": \"nope\""), "cfg.json",
              "cfg.json: _engine.default_role: 'nope' is not a role or alias (roles: fast)");
    r = parse_ok("{\"_engine\": {\"default_role\": \"q\"},"
                 " \"fast\": {\"model_path\": \"m\", \"aliases\": [\"q\"]}}",
                 NULL);
    assert_string_equal(registry_find(r, r->engine.default_role)->name, "fast");
    registry_free(&r);
}

static void t_role_errors(void **s)
{
    (void)s;
    const char *p = "engine_models.json";
    parse_err("{\"fast\": []}", p, "engine_models.json: fast: expected an object, got array");
    parse_err("{\"fast\": \"m.gguf\"}", NULL, "fast: expected an object, got string");
    parse_err("{\"balanced\": {\"model_path\": \"m\", \"measured_tps\": \"12\"}}", NULL,
              "balanced.measured_tps: expected a number, got string");
    parse_err("{\"balanced\": {\"model_path\": \"m\", \"measured_tps\": -1}}", NULL,
              "balanced.measured_tps: -1 is outside 0..1000000000");
    parse_err("{\"balanced\": {\"model_path\": \"m\", \"args\": [\"-c\", \"4096\", \"-ngl\", 99]}}",
              p, "engine_models.json: balanced.args[3]: expected a string, got number");
    parse_err("{\"balanced\": {\"model_path\": \"m\", \"args\": [\"-c\", \"4096\", \"-ub\", "
              "\"abc\"]}}",
              NULL, "balanced.args[3]: -ub: 'abc' is not an integer");
    parse_err("{\"balanced\": {\"model_path\": \"m\", \"args\": [\"-c\", \"1\", \"--port\", "
              "\"9\"]}}",
              NULL, "balanced.args[2]: --port is set by variet (remove it)");
    parse_err("{\"balanced\": {\"model_path\": \"m\", \"args\": [\"-fa\", \"on\", \"-c\"]}}", NULL,
              "balanced.args[2]: -c needs a value");
    parse_err("{\"balanced\": {\"model_path\": \"m\", \"args\": \"-c 4096\"}}", NULL,
              "balanced.args: expected an array, got string");
    parse_err("{\"fast\": {\"display_name\": \"F\"}}", NULL,
              "fast.model_path: missing (the GGUF file this role serves)");
    parse_err("{\"fast\": {\"model_path\": null}}", NULL,
              "fast.model_path: missing (the GGUF file this role serves)");
    parse_err("{\"fast\": {\"model_path\": \"\"}}", NULL, "fast.model_path: must not be empty");
    parse_err("{\"fast\": {\"model_path\": 3}}", NULL,
              "fast.model_path: expected a string, got number");
    parse_err("{\"fast\": {\"model_path\": \"m\", \"display_name\": false}}", NULL,
              "fast.display_name: expected a string, got boolean");
    parse_err("{\"fast\": {\"model_path\": \"m\", \"ttl\": -5}}", NULL,
              "fast.ttl: -5 is outside 0..315360000");
    parse_err("{\"fast\": {\"model_path\": \"m\", \"ttl\": \"5m\"}}", NULL,
              "fast.ttl: expected a number, got string");

    /* aliases */
    parse_err("{\"balanced\": {\"model_path\": \"m\"},"
              " \"fast\": {\"model_path\": \"m\", \"aliases\": [\"quick\", \"balanced\"]}}",
              NULL, "fast.aliases[1]: 'balanced' is already the name of role 'balanced'");
    /* an alias may not look like a settings key: registry_find("_engine") must stay NULL */
    parse_err("{\"fast\": {\"model_path\": \"f.gguf\", \"aliases\": [\"_engine\"]}}", NULL,
              "fast.aliases[0]: '_engine' is not a valid name (" "1..64 characters of A-Za-z0-9._-, not starting with _)");
    parse_err("{\"balanced\": {\"model_path\": \"m\", \"aliases\": [\"b\"]},"
              " \"fast\": {\"model_path\": \"m\", \"aliases\": [\"b\"]}}",
              NULL, "fast.aliases[0]: 'b' is already an alias of role 'balanced'");
    parse_err("{\"fast\": {\"model_path\": \"m\", \"aliases\": [\"slow\"]},"
              " \"slow\": {\"model_path\": \"m\"}}",
              NULL, "fast.aliases[0]: 'slow' is already the name of role 'slow'");
    parse_err("{\"fast\": {\"model_path\": \"m\", \"aliases\": [\"f\", \"f\"]}}", NULL,
              "fast.aliases[1]: 'f' is already an alias of role 'fast'");
    parse_err("{\"fast\": {\"model_path\": \"m\", \"aliases\": [\"fast\"]}}", NULL,
              "fast.aliases[0]: 'fast' is already the name of role 'fast'");
    parse_err("{\"fast\": {\"model_path\": \"m\", \"aliases\": [\"a b\"]}}", NULL,
              "fast.aliases[0]: 'a b' is not a valid name (1..64 characters of A-Za-z0-9._-, not starting with _)");
    parse_err("{\"fast\": {\"model_path\": \"m\", \"aliases\": [\"\"]}}", NULL,
              "fast.aliases[0]: '' is not a valid name (1..64 characters of A-Za-z0-9._-, not starting with _)");
    parse_err("{\"fast\": {\"model_path\": \"m\", \"aliases\": [1]}}", NULL,
              "fast.aliases[0]: expected a string, got number");
    parse_err("{\"fast\": {\"model_path\": \"m\", \"aliases\": {}}}", NULL,
              "fast.aliases: expected an array, got object");

    /* role names */
    parse_err("{\"a b\": {\"model_path\": \"m\"}}", p,
              "engine_models.json: 'a b': invalid role name (1..64 characters of A-Za-z0-9._-, not starting with _)");
    parse_err("{\"caf\\u00e9\": {\"model_path\": \"m\"}}", NULL,
              "'caf\xc3\xa9': invalid role name (1..64 characters of A-Za-z0-9._-, not starting with _)");
    parse_err("{\"a\\nb\": {\"model_path\": \"m\"}}", NULL,
              "'a?b': invalid role name (1..64 characters of A-Za-z0-9._-, not starting with _)");
    char name[80], *j;
    memset(name, 'n', 65);
    name[65] = 0;
    j = xasprintf("{\"%s\": {\"model_path\": \"m\"}}", name);
    registry_t *r = NULL;
    char err[256];
    assert_int_equal(registry_parse(j, strlen(j), NULL, &r, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "invalid role name"));
    free(j);
    name[64] = 0; /* 64 is fine */
    j = xasprintf("{\"%s\": {\"model_path\": \"m\"}}", name);
    r = parse_ok(j, NULL);
    registry_free(&r);
    free(j);

    /* the document */
    parse_err("{}", NULL, "no roles: add an object like {\"fast\": {\"model_path\": ...}}");
    parse_err("{\"_engine\": {}, \"_comment\": \"x\"}", p,
              "engine_models.json: no roles: add an object like {\"fast\": {\"model_path\": ...}}");
    parse_err("[1, 2]", p,
              "engine_models.json: expected a JSON object at the top level, got array");
    parse_err("\"x\"", NULL, "<config>:1:3: JSON syntax error: '[' or '{' expected near '\"x\"'");
}

static void t_syntax(void **s)
{
    (void)s;
    parse_err("{\n  \"fast\": {\n    \"model_path\": \"m\"\n    \"args\": []\n  }\n}\n",
              "engine_models.json",
              "engine_models.json:4:10: JSON syntax error: '}' expected near '\"args\"'");
    parse_err("{\"fast\": {\"model_path\": \"m\",}}", "c.json",
              "c.json:1:29: JSON syntax error: string or '}' expected near '}'");
    parse_err("", "c.json", "c.json:1:0: JSON syntax error: '[' or '{' expected near end of file");
    parse_err("{\"fast\": {\"model_path\": \"m\"}} x", "c.json",
              "c.json:1:31: JSON syntax error: end of file expected near 'x'");
    parse_err("{\"fast\": {\"model_path\": \"\xff\"}}", "c.json",
              "c.json:1:25: JSON syntax error: unable to decode byte 0xff near '\"'");
    /* duplicates name the key, also past jansson's 20-character context */
    parse_err("{\n  \"fast\": {\"model_path\": \"m\"},\n  \"fast\": {\"model_path\": \"n\"}\n}",
              "engine_models.json", "engine_models.json:3:3: duplicate key 'fast'");
    parse_err("{\"fast\": {\"model_path\": \"m\", \"model_path\": \"n\"}}", NULL,
              "<config>:1:30: duplicate key 'model_path'");
    parse_err("{\"a_rather_long_role_name_here\": {\"model_path\": \"m\"},"
              " \"a_rather_long_role_name_here\": {}}",
              NULL, "<config>:1:55: duplicate key 'a_rather_long_role_name_here'");
    parse_err("{\"q\\\"x\\\\\": 1, \"q\\\"x\\\\\": 2}", NULL, "<config>:1:15: duplicate key 'q\"x\\'");
}

/* ---- files ------------------------------------------------------------- */

static char *tmpdir(void)
{
    char *d = xstrdup("/tmp/variet-test-registry-XXXXXX");
    if (!mkdtemp(d))
        fail_msg("mkdtemp: %s", strerror(errno));
    return d;
}

static void rmtree(const char *d)
{
    DIR *dir = opendir(d);
    struct dirent *de;
    while (dir && (de = readdir(dir))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *p = xasprintf("%s/%s", d, de->d_name);
        unlink(p);
        free(p);
    }
    if (dir)
        closedir(dir);
    rmdir(d);
}

/* Files in d other than the listed ones (NULL-terminated). */
static int stray_files(const char *d, const char *const *keep)
{
    DIR *dir = opendir(d);
    struct dirent *de;
    int n = 0;
    assert_non_null(dir);
    while ((de = readdir(dir))) {
        bool ok = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
        for (int i = 0; keep[i] && !ok; i++)
            ok = !strcmp(de->d_name, keep[i]);
        if (!ok) {
            print_message("stray file: %s\n", de->d_name);
            n++;
        }
    }
    closedir(dir);
    return n;
}

static char *slurp(const char *path)
{
    char *text = NULL, err[256];
    size_t len;
    if (file_read_all(path, 1u << 20, &text, &len, err, sizeof err))
        fail_msg("%s", err);
    return text;
}

static void spit(const char *path, const char *text)
{
    char err[256];
    if (file_write_atomic(path, text, strlen(text), err, sizeof err))
        fail_msg("%s", err);
}

/* The layout registry_save writes (jansson, 2-space indent), so a save with
 * one value changed differs from it in exactly that value. */
static const char *const saved_cfg = "{\n"
                                     "  \"_comment\": \"roles for the lab box\",\n"
                                     "  \"_engine\": {\n"
                                     "    \"port\": 9000,\n"
                                     "    \"memory_budget\": \"20G\"\n"
                                     "  },\n"
                                     "  \"fast\": {\n"
                                     "    \"display_name\": \"Fast chat\",\n"
                                     "    \"model_path\": \"models/fast.gguf\",\n"
                                     "    \"measured_tps\": 41.5,\n"
                                     "    \"args\": [\n"
                                     "      \"-c\",\n"
                                     "      \"4096\"\n"
                                     "    ],\n"
                                     "    \"aliases\": [\n"
                                     "      \"f\"\n"
                                     "    ],\n"
                                     "    \"notes\": {\n"
                                     "      \"tuned\": \"2026-01-02\",\n"
                                     "      \"score\": 0.1,\n"
                                     "      \"list\": [],\n"
                                     "      \"nothing\": null\n"
                                     "    },\n"
                                     "    \"zz_last\": true\n"
                                     "  },\n"
                                     "  \"balanced\": {\n"
                                     "    \"model_path\": \"/srv/models/balanced.gguf\",\n"
                                     "    \"args\": [],\n"
                                     "    \"ttl\": 600\n"
                                     "  },\n"
                                     "  \"_trailer\": 1\n"
                                     "}\n";

static char *replace(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    assert_non_null(at);
    return xasprintf("%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
}

static void t_save_roundtrip(void **s)
{
    (void)s;
    char *d = tmpdir(), err[512];
    char *path = xasprintf("%s/engine_models.json", d);
    char *bak = xasprintf("%s.bak", path);
    registry_t *r = NULL;

    spit(path, saved_cfg);
    assert_int_equal(registry_load(path, &r, err, sizeof err), 0);
    char *want_abs = xasprintf("%s/models/fast.gguf", d);
    assert_string_equal(r->roles[0].model_abs, want_abs);
    free(want_abs);

    /* unchanged save: byte-identical */
    assert_int_equal(registry_save(r, path, false, err, sizeof err), 0);
    char *got = slurp(path);
    assert_string_equal(got, saved_cfg);
    free(got);

    /* measured_tps: only that value changes; the old file is the backup */
    assert_int_equal(registry_set_tps(r, "f", 57.456), 0); /* by alias */
    NEAR(r->roles[0].measured_tps, 57.46);
    assert_int_equal(registry_save(r, path, true, err, sizeof err), 0);
    char *want = replace(saved_cfg, "\"measured_tps\": 41.5", "\"measured_tps\": 57.46");
    got = slurp(path);
    assert_string_equal(got, want);
    free(got);
    got = slurp(bak);
    assert_string_equal(got, saved_cfg);
    free(got);
    assert_int_equal(stray_files(d, (const char *const[]){"engine_models.json",
                                                          "engine_models.json.bak", NULL}),
                     0);

    /* a role without measured_tps gets it appended; args replaced in place */
    assert_int_equal(registry_set_tps(r, "balanced", 12), 0);
    char *nargs[] = {"-c", "8192", "-fa", "on"};
    assert_int_equal(registry_set_args(r, "balanced", nargs, 4), 0);
    assert_int_equal(r->roles[1].n_args, 4);
    assert_string_equal(r->roles[1].args[3], "on");
    assert_null(r->roles[1].args[4]);
    assert_int_equal(registry_save(r, path, true, err, sizeof err), 0);
    char *want2 = replace(want, "    \"args\": [],\n    \"ttl\": 600\n",
                          "    \"args\": [\n      \"-c\",\n      \"8192\",\n      \"-fa\",\n"
                          "      \"on\"\n    ],\n    \"ttl\": 600,\n"
                          "    \"measured_tps\": 12.0\n");
    got = slurp(path);
    assert_string_equal(got, want2);
    free(got);
    got = slurp(bak); /* the backup is the previous save */
    assert_string_equal(got, want);
    free(got);

    /* reloading what was saved gives the same values */
    registry_t *r2 = NULL;
    assert_int_equal(registry_load(path, &r2, err, sizeof err), 0);
    NEAR(r2->roles[0].measured_tps, 57.46);
    NEAR(r2->roles[1].measured_tps, 12);
    assert_int_equal(r2->roles[1].n_args, 4);
    assert_string_equal(r2->roles[1].args[1], "8192");
    assert_int_equal(r2->engine.memory_budget, 20ull << 30);
    registry_free(&r2);

    /* refused changes leave struct and file alone */
    assert_int_equal(registry_set_tps(r, "nope", 1), -ENOENT);
    assert_int_equal(registry_set_tps(r, "fast", -1), -EINVAL);
    assert_int_equal(registry_set_tps(r, "fast", NAN), -EINVAL);
    char *bad[] = {"-c", "1", "--port", "2"};
    assert_int_equal(registry_set_args(r, "balanced", bad, 4), -EINVAL);
    char *badutf[] = {"-a", "\xff"};
    assert_int_equal(registry_set_args(r, "balanced", badutf, 2), -EINVAL);
    assert_int_equal(registry_set_args(r, "nope", nargs, 2), -ENOENT);
    assert_int_equal(r->roles[1].n_args, 4);
    NEAR(r->roles[0].measured_tps, 57.46);
    assert_int_equal(registry_save(r, path, false, err, sizeof err), 0);
    got = slurp(path);
    assert_string_equal(got, want2);
    free(got);
    /* args emptied */
    assert_int_equal(registry_set_args(r, "fast", NULL, 0), 0);
    assert_int_equal(r->roles[0].n_args, 0);
    assert_null(r->roles[0].args[0]);
    assert_int_equal(json_array_size(json_object_get(json_object_get(r->doc, "fast"), "args")),
                     0);
    assert_int_equal(stray_files(d, (const char *const[]){"engine_models.json",
                                                          "engine_models.json.bak", NULL}),
                     0);

    /* save elsewhere with backup but no previous file: no .bak */
    char *other = xasprintf("%s/other.json", d);
    assert_int_equal(registry_save(r, other, true, err, sizeof err), 0);
    assert_int_equal(stray_files(d, (const char *const[]){"engine_models.json",
                                                          "engine_models.json.bak", "other.json",
                                                          NULL}),
                     0);
    /* a folder that does not exist: an error, nothing written */
    char *nowhere = xasprintf("%s/no/such/dir.json", d);
    err[0] = 0;
    assert_true(registry_save(r, nowhere, true, err, sizeof err) < 0);
    assert_true(strlen(err) > 0);
    assert_true(registry_save(r, nowhere, false, err, sizeof err) < 0);
    assert_non_null(strstr(err, "No such file"));

    registry_free(&r);
    free(want);
    free(want2);
    free(other);
    free(nowhere);
    free(path);
    free(bak);
    rmtree(d);
    free(d);
}

/* Reals that need 17 digits survive a save exactly (jansson cannot print
 * the shortest form; 15 digits would turn DBL_MAX into an overflow). */
static void t_exact_reals(void **s)
{
    (void)s;
    const char *in = "{\"_big\": [1.7976931348623157e308, 0.30000000000000004, 5e-324],"
                     " \"a\": {\"model_path\": \"m\", \"measured_tps\": 0.1}}";
    registry_t *r = parse_ok(in, NULL), *r2;
    char *text = registry_dump(r);
    r2 = parse_ok(text, NULL);
    json_t *a = json_object_get(r->doc, "_big"), *b = json_object_get(r2->doc, "_big");
    for (size_t i = 0; i < 3; i++)
        assert_true(json_real_value(json_array_get(a, i)) == json_real_value(json_array_get(b, i)));
    assert_true(r2->roles[0].measured_tps == 0.1);
    free(text);
    registry_free(&r2);
    /* without them, 15 digits: 0.1 and 57.46 print as written */
    json_object_del(r->doc, "_big");
    assert_int_equal(registry_set_tps(r, "a", 57.46), 0);
    text = registry_dump(r);
    assert_string_equal(text, "{\n  \"a\": {\n    \"model_path\": \"m\",\n"
                              "    \"measured_tps\": 57.46\n  }\n}\n");
    free(text);
    registry_free(&r);
}

static void t_load_errors(void **s)
{
    (void)s;
    char err[512];
    registry_t *r = (registry_t *)1;
    assert_int_equal(registry_load("/nonexistent/variet/engine_models.json", &r, err, sizeof err),
                     -ENOENT);
    assert_null(r);
    assert_non_null(strstr(err, "No such file"));
    assert_non_null(strstr(err, "/nonexistent/variet/engine_models.json"));

    /* errors from a file name the file */
    char *d = tmpdir();
    char *path = xasprintf("%s/engine_models.json", d);
    spit(path, "{\n  \"fast\": {\"model_path\": \"m\", \"args\": [\"--host\", \"x\"]}\n}\n");
    assert_int_equal(registry_load(path, &r, err, sizeof err), -EINVAL);
    char *want = xasprintf("%s: fast.args[0]: --host is set by variet (remove it)", path);
    assert_string_equal(err, want);
    free(want);
    spit(path, "{\n  \"fast\": {\"model_path\": \"m\",\n}\n");
    assert_int_equal(registry_load(path, &r, err, sizeof err), -EINVAL);
    want = xasprintf("%s:3:1: JSON syntax error: string or '}' expected near '}'", path);
    assert_string_equal(err, want);
    free(want);
    free(path);
    rmtree(d);
    free(d);
}

/* Files other than a regular file are refused at once (a FIFO would block
 * the read forever); a UTF-8 byte order mark is skipped. */
static void t_odd_files(void **s)
{
    (void)s;
    char err[512];
    registry_t *r = NULL;
    char *d = tmpdir();
    char *fifo = xasprintf("%s/fifo.json", d);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    alarm(10); /* the old code blocked here */
    assert_int_equal(registry_load(fifo, &r, err, sizeof err), -EINVAL);
    alarm(0);
    assert_non_null(strstr(err, "not a regular file"));
    assert_non_null(strstr(err, fifo));
    assert_int_equal(registry_load(d, &r, err, sizeof err), -EINVAL); /* a folder */
    assert_non_null(strstr(err, "not a regular file"));
    char *path = xasprintf("%s/engine_models.json", d);
    spit(path, "\xEF\xBB\xBF{\"fast\": {\"model_path\": \"m\"}}\n");
    assert_int_equal(registry_load(path, &r, err, sizeof err), 0);
    assert_int_equal(r->n_roles, 1);
    registry_free(&r);
    free(path);
    free(fifo);
    rmtree(d);
    free(d);
}

static int temp_files(const char *dir)
{
    DIR *dd = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (dd && (e = readdir(dd)))
        n += strstr(e->d_name, ".tmp.") != NULL;
    if (dd)
        closedir(dd);
    return n;
}

/* registry_save killed at random points, over and over: the file always
 * parses and no temp file is left (regression: one engine_models.json.tmp.PID
 * or .bak.tmp.PID per kill); a stale one from a dead writer is removed by
 * the next save. */
static void t_killed_saves(void **s)
{
    (void)s;
    char err[512];
    char *d = tmpdir();
    char *path = xasprintf("%s/engine_models.json", d);
    /* big enough that a write takes a while: 300 roles */
    buf_t b;
    buf_init(&b, 0);
    buf_printf(&b, "{");
    for (int i = 0; i < 300; i++)
        buf_printf(&b, "%s\"role%d\": {\"model_path\": \"m%d.gguf\", \"args\": [\"-c\", \"%d\"], \"note\": \"%0200d\"}",
                   i ? "," : "", i, i, 1024 + i, i);
    buf_printf(&b, "}\n");
    spit(path, b.data);
    buf_free(&b);
    registry_t *r = NULL;
    assert_int_equal(registry_load(path, &r, err, sizeof err), 0);
    int kills = 0, left = 0, unparsable = 0;
    for (int k = 0; k < 40; k++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            for (;;)
                registry_save(r, path, true, err, sizeof err);
        }
        usleep(1000 + (useconds_t)(k * 397 % 5000));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        kills++;
        left += temp_files(d) > 0;
        registry_t *r2 = NULL;
        if (registry_load(path, &r2, err, sizeof err))
            unparsable++;
        registry_free(&r2);
        /* leftovers of this kill (if it hit the instant between link and
         * rename) are the next save's to clean */
        assert_int_equal(registry_save(r, path, true, err, sizeof err), 0);
        assert_int_equal(temp_files(d), 0);
    }
    printf("  killed saves: %d kills, %d left a temp file, %d unparsable\n", kills, left, unparsable);
    assert_int_equal(unparsable, 0);
    assert_true(left <= 2); /* only the microseconds between link and rename */
    /* a stale temp of a dead writer goes on the next save; a live one stays */
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    char *stale = xasprintf("%s.tmp.%d", path, (int)dead);
    char *live = xasprintf("%s.bak.tmp.%d", path, (int)getppid());
    spit(stale, "x");
    spit(live, "x");
    assert_int_equal(registry_save(r, path, true, err, sizeof err), 0);
    assert_int_equal(access(stale, F_OK), -1);
    assert_int_equal(access(live, F_OK), 0);
    unlink(live);
    free(stale);
    free(live);
    registry_free(&r);
    free(path);
    rmtree(d);
    free(d);
}

/* Scheduling fields of a role: priority, pin, min_resident_s. */
static void t_role_sched(void **s)
{
    (void)s;
    registry_t *r = parse_ok("{\"a\": {\"model_path\": \"m\", \"priority\": 5, \"pin\": true, \"min_resident_s\": 30.5},"
                             " \"b\": {\"model_path\": \"m\", \"priority\": null}}", NULL);
    assert_int_equal(r->roles[0].priority, 5);
    assert_true(r->roles[0].pin);
    assert_true(r->roles[0].min_resident_s == 30.5);
    assert_int_equal(r->roles[1].priority, 0);
    assert_false(r->roles[1].pin);
    assert_true(r->roles[1].min_resident_s == 0);
    registry_free(&r);
    parse_err("{\"a\": {\"model_path\": \"m\", \"priority\": 1.5}}", NULL, "a.priority: expected an integer, got 1.5");
    r = parse_ok("{\"a\": {\"model_path\": \"m\", \"args\": [\"-np\", \"2\"], \"max_concurrent\": 2, \"queue_size\": 7}}",
                 NULL);
    assert_int_equal(r->roles[0].max_concurrent, 2);
    assert_int_equal(r->roles[0].queue_size, 7);
    registry_free(&r);
    parse_err("{\"a\": {\"model_path\": \"m\", \"args\": [\"-np\", \"2\"], \"max_concurrent\": 3}}", NULL,
              "a.max_concurrent: 3 is more than the role's 2 slots (-np)");
    parse_err("{\"a\": {\"model_path\": \"m\", \"max_concurrent\": 5}}", NULL,
              "a.max_concurrent: 5 is more than the role's 4 slots (-np)");
    parse_err("{\"a\": {\"model_path\": \"m\", \"priority\": 5000}}", NULL, "a.priority: 5000 is outside -1000..1000");
    parse_err("{\"a\": {\"model_path\": \"m\", \"pin\": 1}}", NULL, "a.pin: expected true or false, got number");
    parse_err("{\"a\": {\"model_path\": \"m\", \"min_resident_s\": -1}}", NULL,
              "a.min_resident_s: -1 is outside 0..315360000");
    /* mmproj_mode: always (default) or on_demand, which needs a projector */
    r = parse_ok("{\"a\": {\"model_path\": \"m\", \"args\": [\"--mmproj\", \"p.gguf\"], \"mmproj_mode\": \"on_demand\"},"
                 " \"b\": {\"model_path\": \"m\"}}", NULL);
    assert_int_equal(r->roles[0].mmproj_mode, REG_MMPROJ_ON_DEMAND);
    assert_int_equal(r->roles[1].mmproj_mode, REG_MMPROJ_ALWAYS);
    registry_free(&r);
    parse_err("{\"a\": {\"model_path\": \"m\", \"mmproj_mode\": \"on_demand\"}}", NULL,
              "a.mmproj_mode: \"on_demand\" needs a projector in the role's args (--mmproj FILE)");
    parse_err("{\"a\": {\"model_path\": \"m\", \"mmproj_mode\": \"lazy\"}}", NULL,
              "a.mmproj_mode: 'lazy' is not one of always, on_demand");
    parse_err("{\"a\": {\"model_path\": \"m\", \"mmproj_mode\": 1}}", NULL,
              "a.mmproj_mode: expected a string, got number");
}

/* draft_model_path: resolved against the config's folder, launched as -md
 * (with --spec-type draft-simple unless the args choose one), kept apart
 * from the file's args on every rewrite, removable. */
static void t_draft(void **s)
{
    (void)s;
    registry_t *r = parse_ok("{\"a\": {\"model_path\": \"m.gguf\", \"args\": [\"-c\", \"512\"],"
                             " \"draft_model_path\": \"d.gguf\", \"x_note\": 1},"
                             " \"b\": {\"model_path\": \"m.gguf\", \"draft_model_path\": \"/abs/d.gguf\","
                             " \"args\": [\"--spec-type\", \"ngram-simple,draft-simple\"]}}",
                             "/cfg/e.json");
    const reg_role_t *a = registry_find(r, "a"), *b = registry_find(r, "b");
    assert_string_equal(a->draft_path, "d.gguf");
    assert_string_equal(a->draft_abs, "/cfg/d.gguf");
    assert_int_equal(a->n_args_own, 2);
    assert_int_equal(a->n_args, 6);
    const char *want_a[] = {"-c", "512", "-md", "/cfg/d.gguf", "--spec-type", "draft-simple"};
    for (int i = 0; i < 6; i++)
        assert_string_equal(a->args[i], want_a[i]);
    assert_null(a->args[6]);
    /* the args' own speculative type stays the only one */
    assert_int_equal(b->n_args, 4);
    assert_string_equal(b->args[2], "-md");
    assert_string_equal(b->args[3], "/abs/d.gguf");

    /* the launched args given back (a tuning result): the tail is not written */
    char *tuned[] = {"-c", "1024", "-md", "/cfg/d.gguf", "--spec-type", "draft-simple"};
    assert_int_equal(registry_set_args(r, "a", tuned, 6), 0);
    a = registry_find(r, "a");
    assert_int_equal(a->n_args_own, 2);
    assert_int_equal(a->n_args, 6);
    assert_string_equal(a->args[1], "1024");
    char *dump = registry_dump(r);
    assert_non_null(strstr(dump, "\"args\": [\n      \"-c\",\n      \"1024\"\n    ]"));
    assert_null(strstr(dump, "-md"));
    assert_non_null(strstr(dump, "\"draft_model_path\": \"d.gguf\""));
    assert_non_null(strstr(dump, "\"x_note\": 1"));
    free(dump);
    /* ... also with options after them, as the tuner appends */
    char *tuned2[] = {"-c", "2048", "-md", "/cfg/d.gguf", "--spec-type", "draft-simple", "--ubatch-size", "128"};
    assert_int_equal(registry_set_args(r, "a", tuned2, 8), 0);
    a = registry_find(r, "a");
    assert_int_equal(a->n_args_own, 4);
    assert_string_equal(a->args[3], "128");
    assert_string_equal(a->args[4], "-md");
    assert_int_equal(a->n_args, 8);
    assert_int_equal(registry_set_args(r, "a", tuned, 6), 0);
    /* a draft named both ways is refused */
    char *both[] = {"-md", "other.gguf"};
    assert_int_equal(registry_set_args(r, "a", both, 2), -EINVAL);

    /* builds without --spec-type: -md alone */
    registry_set_spec_type(r, false);
    a = registry_find(r, "a");
    assert_int_equal(a->n_args, 4);
    registry_set_spec_type(r, true);

    /* removed: the launched args are the file's again, and so is the file */
    assert_int_equal(registry_set_draft(r, "a", NULL), 0);
    a = registry_find(r, "a");
    assert_null(a->draft_abs);
    assert_int_equal(a->n_args, 2);
    assert_null(a->args[2]);
    dump = registry_dump(r);
    assert_non_null(strstr(dump, "\"draft_model_path\": \"/abs/d.gguf\"")); /* b's stays */
    assert_null(strstr(dump, "\"draft_model_path\": \"d.gguf\""));
    free(dump);
    assert_int_equal(registry_set_draft(r, "a", "d2.gguf"), 0);
    assert_string_equal(registry_find(r, "a")->args[3], "/cfg/d2.gguf");
    assert_int_equal(registry_set_draft(r, "nope", NULL), -ENOENT);
    registry_free(&r);

    parse_err("{\"a\": {\"model_path\": \"m.gguf\", \"draft_model_path\": 3}}", NULL,
              "a.draft_model_path: expected a string, got number");
    parse_err("{\"a\": {\"model_path\": \"m.gguf\", \"draft_model_path\": \"\"}}", NULL,
              "a.draft_model_path: must not be empty");
    parse_err("{\"a\": {\"model_path\": \"m.gguf\", \"draft_model_path\": \"d.gguf\","
              " \"args\": [\"-t\", \"2\", \"-md\", \"e.gguf\"]}}",
              NULL, "a.draft_model_path: args[2] names a draft too (-md); give it once");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_full),          cmocka_unit_test(t_defaults),
        cmocka_unit_test(t_sizes),         cmocka_unit_test(t_engine_errors),
        cmocka_unit_test(t_role_errors),   cmocka_unit_test(t_syntax),
        cmocka_unit_test(t_save_roundtrip), cmocka_unit_test(t_exact_reals),
        cmocka_unit_test(t_load_errors),   cmocka_unit_test(t_odd_files),
        cmocka_unit_test(t_killed_saves),   cmocka_unit_test(t_role_sched),
        cmocka_unit_test(t_draft),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
