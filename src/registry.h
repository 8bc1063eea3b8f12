/*
 * registry.h — engine_models.json: the roles Variet serves and the engine
 * settings, loaded, validated and saved.
 *
 * Shape (top-level object):
 *   "_engine": { settings, see the table in registry.c and README },   optional
 *   "<role>":  { "display_name": str, "model_path": str, "measured_tps": num,
 *                "args": [str...], "draft_model_path": str, "aliases": [str...], "ttl": num,
 *                "priority": int, "pin": bool, "min_resident_s": num,
 *                "max_concurrent": int, "queue_size": int, ... }
 * Every top-level key that does not start with '_' is a role (name and
 * aliases: 1..64 of A-Za-z0-9._-, unique across all roles); other '_' keys
 * are ignored and kept; unknown "_engine" fields are errors. "ttl" absent
 * or null: the engine's idle_ttl. args pass args_check (args.h). Relative
 * model_path/draft_model_path/log_dir resolve against the config file's
 * folder. A role's draft_model_path becomes part of its args as Variet
 * launches them (reg_role_t.args): "-md <resolved path>", and
 * "--spec-type draft-simple" when the args choose no --spec-type (b11669
 * loads a draft without drafting otherwise; registry_set_spec_type turns
 * that off for builds without the option); naming a draft both ways is an
 * error. Unknown
 * fields are kept: the parsed document (doc) is what registry_save writes
 * back, with only the fields Variet changed replaced.
 *
 * Validation errors are one line that names the place exactly, prefixed
 * with the path when there is one, e.g.
 *   "engine_models.json: balanced.args[3]: expected a string, got number"
 *   "engine_models.json: _engine.port: 70000 is outside 1..65535"
 *   "engine_models.json:4:7: JSON syntax error: ..."
 *   "engine_models.json:9:3: duplicate key 'fast'"
 * (without a path: "balanced.args[3]: ...", "<config>:4:7: ...").
 */
#ifndef VARIET_REGISTRY_H
#define VARIET_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* mmproj_mode: "always" (with its backend), or "on_demand": text requests
 * are served by a backend started without --mmproj, the first request
 * carrying an image (or audio) switches to one with it. */
enum { REG_MMPROJ_ALWAYS = 0, REG_MMPROJ_ON_DEMAND = 1 };

typedef struct {
    char *name;         /* the role's key */
    char *display_name; /* defaults to name */
    char *model_path;   /* as written in the file */
    char *model_abs;    /* resolved against the config folder */
    double measured_tps; /* 0 when absent */
    char **args;        /* llama-server arguments as launched (NULL-terminated too): the
                         * file's "args" (the first n_args_own), then what draft_model_path adds */
    size_t n_args;
    size_t n_args_own;  /* of args, those written in the file */
    char *draft_path;   /* draft_model_path as written, NULL: none */
    char *draft_abs;    /* resolved against the config folder (the -md in args), NULL: none */
    char **aliases;
    size_t n_aliases;
    double ttl_s;       /* idle TTL; <0: engine default; 0: never */
    /* scheduling (role_fields in registry.c) */
    int priority;          /* higher may stop lower to start, never the reverse (0) */
    bool pin;              /* never stopped to make room for another role (false) */
    double min_resident_s; /* not stopped for another role within this long of loading (0) */
    int max_concurrent;    /* requests in flight at once, at most -np (0: -np + 1, as connections allow) */
    int queue_size;        /* requests waiting beyond that (0: the engine's queue_size) */
    int mmproj_mode;       /* REG_MMPROJ_*: when the projector (--mmproj) is loaded */
} reg_role_t;

typedef struct {
    char *host;               /* "127.0.0.1" */
    int port;                 /* 8000 */
    char *llama_server;       /* NULL: $VARIET_LLAMA_SERVER, then PATH */
    int max_loaded;           /* roles running at once; 0 = no limit */
    uint64_t memory_budget;   /* bytes for all running roles; 0 = no limit */
    double idle_ttl_s;        /* default idle TTL; 0 = never */
    char *api_key;            /* NULL: no key */
    char *default_role;       /* NULL: requests without "model" get 400 */
    int queue_size;           /* waiting requests per role (64) */
    double queue_timeout_s;   /* how long a request waits for its role (300) */
    double load_timeout_s;    /* start → ready (600) */
    double stop_grace_s;      /* SIGTERM → SIGKILL (10) */
    uint64_t max_body;        /* bytes (32 MiB) */
    uint64_t max_header;      /* bytes (64 KiB) */
    int max_connections;      /* client connections (1024) */
    double header_timeout_s;  /* client request read timeout (10) */
    double upstream_timeout_s; /* between upstream bytes (600) */
    char **allowed_hosts;     /* NULL-terminated, or NULL: loopback names only (without api_key) */
    char **allowed_origins;   /* NULL-terminated, or NULL: no CORS, browser origins refused */
    char *log_dir;            /* per-role logs (resolved; default <config dir>/logs) */
    int restart_max;          /* crashes within restart_window_s before failed (3) */
    double restart_window_s;  /* 60 */
    double health_interval_s; /* health probe while ready (5) */
    uint64_t kv_store_max;    /* bytes of saved slots (KV caches) on disk, LRU; 0: not kept (8 GiB) */
    double max_wait_s;        /* a request waiting this long for room makes loaded roles yield (30; 0: never) */
    double kv_save_timeout_s; /* slot saves at shutdown, all together, at most (10) */
} reg_engine_t;

typedef struct {
    char *path;     /* the file it was loaded from (NULL for parsed text) */
    char *dir;      /* folder relative paths resolve against */
    reg_engine_t engine;
    reg_role_t *roles;
    size_t n_roles;
    json_t *doc;    /* the document as read; owned */
    bool spec_type; /* a draft_model_path adds --spec-type draft-simple (true) */
} registry_t;

/* Parse and validate `text`; `path` names the file in messages and gives the
 * folder for relative paths (may be NULL: cwd). Pure (no I/O). 0 or -EINVAL
 * with one line in err (*out NULL). *out owned by the caller (registry_free).
 * Limits: 1024 roles, 64 aliases and 1024 args per role; seconds <= 10 years. */
int registry_parse(const char *text, size_t len, const char *path, registry_t **out, char *err,
                   size_t errlen);
/* Read `path` (max 16 MiB) and parse it. -errno when it cannot be read
 * (err: "<path>: No such file or directory"), else as registry_parse. */
int registry_load(const char *path, registry_t **out, char *err, size_t errlen);
void registry_free(registry_t **r);

/* Role by name or alias, or NULL. */
const reg_role_t *registry_find(const registry_t *r, const char *name);

/* Change a role's (name or alias) measured_tps / args in both the struct and
 * doc; the field keeps its place in the document (appended when absent).
 * tps is rounded to 2 decimals. args are copied and must pass args_check.
 * 0, -ENOENT (no such role) or -EINVAL (tps < 0 or not finite; bad args). */
int registry_set_tps(registry_t *r, const char *role, double tps);
/* args are the role's as written in the file; a vector that ends with what
 * draft_model_path adds (the launched args, e.g. a tuning result) is taken
 * without that tail. */
int registry_set_args(registry_t *r, const char *role, char *const *args, size_t n);
/* args (n of them) without the pairs draft_model_path adds to ro's launched
 * args (each at most once), into own (room for n; the strings borrowed);
 * their count. *drafted (may be NULL): the draft's own pair (-md PATH) was
 * among them. */
size_t registry_own_args(const reg_role_t *ro, char *const *args, size_t n, char **own, bool *drafted);
/* Set (a path as it is to be written, relative to the config folder) or,
 * with path NULL, remove a role's draft_model_path; the launched args
 * follow. 0, -ENOENT, -EINVAL (empty path, or the args name a draft). */
int registry_set_draft(registry_t *r, const char *role, const char *path);
/* Whether a draft_model_path adds --spec-type draft-simple (builds before
 * b11669 have no --spec-type and draft with -md alone): the launched args
 * of every role follow. */
void registry_set_spec_type(registry_t *r, bool on);
/* Where args[at] of a role's launched args comes from, for an error:
 * "NAME.args[AT]" (written in the file) or "NAME.draft_model_path" (what
 * that adds), into buf; returns buf. */
const char *registry_arg_where(const reg_role_t *ro, long at, char *buf, size_t cap);

/* The text registry_save writes (see there); caller frees. */
char *registry_dump(const registry_t *r);

/* Write doc to `path` atomically (temp + fsync + rename), 2-space indent,
 * key order kept, reals with the fewest digits (15..17) that read back
 * exactly (57.46 stays 57.46), trailing newline; when
 * `backup` is true the previous file (if any) is first copied, atomically,
 * to <path>.bak. 0 or -errno with text in err. */
int registry_save(const registry_t *r, const char *path, bool backup, char *err, size_t errlen);

#endif
