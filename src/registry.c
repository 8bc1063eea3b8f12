/*
 * registry.c — engine_models.json: parse, validate, defaults, save.
 *
 * The engine settings are one table (eng_fields[]): name, type, bounds,
 * default and help for each "_engine" field; the same rows set the
 * defaults, parse and bound-check the values and list the known names when
 * a field is misspelt. Roles are every top-level key not starting with '_';
 * their known fields are checked, unknown ones are left alone. Parsing keeps
 * the jansson document (doc) as read: registry_set_tps/_set_args change
 * both the struct and doc, and registry_save writes doc back, so unknown
 * fields, "_comment"s and key order survive a save.
 *
 * Every error is one line that names its place the way a person would find
 * it in the file: "balanced.args[3]: ...", "_engine.port: ...", or
 * "file:line:column: ..." for JSON syntax, prefixed with the file's path
 * when there is one. Names of roles and aliases go through one index (a
 * jansson object used as a hash set) so clashes are found in linear time.
 */
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "util.h"

#define REG_MAX_FILE (16u << 20)
#define REG_MAX_ROLES 1024
#define REG_MAX_ALIASES 64
#define REG_MAX_ARGS 1024
#define REG_NAME_MAX 64
#define REG_MAX_SECONDS 315360000.0 /* ten years: keeps later timer arithmetic finite */
#define REG_MAX_TPS 1e9

/* ---- errors ------------------------------------------------------------ */

typedef struct {
    const char *path; /* NULL: no prefix */
    char *err;
    size_t errlen;
} ectx_t;

/* Errors are one line: control bytes (from keys or jansson's "near '...'")
 * become '?'. */
static void one_line(char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

static int fail(ectx_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(ectx_t *e, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (e->err && e->errlen) {
        if (e->path)
            snprintf(e->err, e->errlen, "%s: %s", e->path, msg);
        else
            snprintf(e->err, e->errlen, "%s", msg);
        one_line(e->err);
    }
    return -EINVAL;
}

/* How a value's type reads in "expected X, got Y". */
static const char *jtype(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER:
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* A JSON number as written-ish, for messages. */
static const char *num_txt(const json_t *v, char *buf, size_t cap)
{
    if (json_is_integer(v))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else
        snprintf(buf, cap, "%.15g", json_number_value(v));
    return buf;
}

/* "1G", "16M", "64K" or plain bytes. */
static const char *size_txt(uint64_t n, char *buf, size_t cap)
{
    if (n && n % (1ull << 30) == 0)
        snprintf(buf, cap, "%lluG", (unsigned long long)(n >> 30));
    else if (n && n % (1ull << 20) == 0)
        snprintf(buf, cap, "%lluM", (unsigned long long)(n >> 20));
    else if (n && n % (1ull << 10) == 0)
        snprintf(buf, cap, "%lluK", (unsigned long long)(n >> 10));
    else
        snprintf(buf, cap, "%llu", (unsigned long long)n);
    return buf;
}

/* ---- names ------------------------------------------------------------- */

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > REG_NAME_MAX || s[0] == '_') /* '_' keys are settings, not roles */
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

#define NAME_RULE "1..64 characters of A-Za-z0-9._-, not starting with _"

/* ---- the engine table -------------------------------------------------- */

typedef enum {
    E_STR,      /* non-empty string */
    E_STR_NULL, /* non-empty string or null */
    E_INT,      /* integer in [min, max] */
    E_SECS,     /* seconds: number >= min (> min when min_open), <= REG_MAX_SECONDS */
    E_SIZE,     /* bytes: integer or "20G"/"512M"/"16GiB", in [min, max] (max 0: none) */
    E_LIST,     /* array of non-empty strings (at most 64, printable ASCII): char **, NULL-terminated */
} etype_t;

typedef struct {
    const char *name;
    etype_t type;
    size_t off; /* into reg_engine_t */
    double min, max;
    bool min_open;
    const char *def_s; /* E_STR / E_STR_NULL default */
    double def_n;      /* E_INT / E_SECS / E_SIZE default */
    const char *help;
} eng_field_t;

#define OFF(f) offsetof(reg_engine_t, f)
#define KiB 1024.0
#define MiB (1024.0 * 1024.0)
#define GiB (1024.0 * 1024.0 * 1024.0)

static const eng_field_t eng_fields[] = {
    {"host", E_STR, OFF(host), 0, 0, false, "127.0.0.1", 0, "address the gateway listens on"},
    {"port", E_INT, OFF(port), 1, 65535, false, NULL, 8000, "port the gateway listens on"},
    {"llama_server", E_STR_NULL, OFF(llama_server), 0, 0, false, NULL, 0,
     "llama-server binary (null: $VARIET_LLAMA_SERVER, then PATH)"},
    {"max_loaded", E_INT, OFF(max_loaded), 0, 64, false, NULL, 0,
     "roles running at once (0: no limit)"},
    {"memory_budget", E_SIZE, OFF(memory_budget), 0, 0, false, NULL, 0,
     "bytes for all running roles, e.g. \"20G\" (0: no limit)"},
    {"idle_ttl", E_SECS, OFF(idle_ttl_s), 0, 0, false, NULL, 0,
     "seconds idle before a role is stopped (0: never)"},
    {"api_key", E_STR_NULL, OFF(api_key), 0, 0, false, NULL, 0,
     "bearer key clients must send (null: none)"},
    {"default_role", E_STR_NULL, OFF(default_role), 0, 0, false, NULL, 0,
     "role or alias for requests without \"model\" (null: 400)"},
    {"queue_size", E_INT, OFF(queue_size), 1, 100000, false, NULL, 512,
     "requests waiting per role"},
    {"queue_timeout", E_SECS, OFF(queue_timeout_s), 0, 0, true, NULL, 300,
     "seconds a request waits for its role"},
    {"load_timeout", E_SECS, OFF(load_timeout_s), 0, 0, true, NULL, 600,
     "seconds from start to ready"},
    {"stop_grace", E_SECS, OFF(stop_grace_s), 0, 0, false, NULL, 10,
     "seconds between SIGTERM and SIGKILL"},
    {"max_body", E_SIZE, OFF(max_body), KiB, GiB, false, NULL, 32 * MiB,
     "largest request body (413 above)"},
    {"max_header", E_SIZE, OFF(max_header), KiB, 16 * MiB, false, NULL, 64 * KiB,
     "largest request header block (431 above)"},
    {"max_connections", E_INT, OFF(max_connections), 1, 100000, false, NULL, 1024,
     "client connections at once"},
    {"header_timeout", E_SECS, OFF(header_timeout_s), 0, 0, true, NULL, 10,
     "seconds to read a request's headers"},
    {"upstream_timeout", E_SECS, OFF(upstream_timeout_s), 0, 0, true, NULL, 600,
     "seconds between bytes from llama-server"},
    {"allowed_hosts", E_LIST, OFF(allowed_hosts), 0, 0, false, NULL, 0,
     "Host names served besides the loopback when there is no api_key"},
    {"allowed_origins", E_LIST, OFF(allowed_origins), 0, 0, false, NULL, 0,
     "browser origins allowed to call the gateway (CORS; \"*\": any)"},
    {"log_dir", E_STR, OFF(log_dir), 0, 0, false, "logs", 0,
     "per-role logs, relative to the config folder"},
    {"restart_max", E_INT, OFF(restart_max), 0, 100, false, NULL, 3,
     "crashes within restart_window before a role is failed"},
    {"restart_window", E_SECS, OFF(restart_window_s), 0, 0, true, NULL, 60,
     "seconds over which crashes are counted"},
    {"health_interval", E_SECS, OFF(health_interval_s), 0, 0, true, NULL, 5,
     "seconds between health probes of a ready role"},
    {"max_wait", E_SECS, OFF(max_wait_s), 0, 0, false, NULL, 30,
     "seconds a request may wait for room before busy roles stop taking new requests (0: never)"},
    {"kv_store_max", E_SIZE, OFF(kv_store_max), 0, 0, false, NULL, 8 * GiB,
     "bytes of saved slot KV caches under log_dir, oldest removed first (0: context not kept across swaps)"},
    {"kv_save_timeout", E_SECS, OFF(kv_save_timeout_s), 0, 0, true, NULL, 10,
     "seconds the slot saves at shutdown may take together (then variet stops without them)"},
};

#define N_ENG (sizeof eng_fields / sizeof eng_fields[0])

static void *fld(reg_engine_t *e, const eng_field_t *f) { return (char *)e + f->off; }

static void engine_defaults(reg_engine_t *e)
{
    for (size_t i = 0; i < N_ENG; i++) {
        const eng_field_t *f = &eng_fields[i];
        switch (f->type) {
        case E_STR:
        case E_STR_NULL: *(char **)fld(e, f) = f->def_s ? xstrdup(f->def_s) : NULL; break;
        case E_INT: *(int *)fld(e, f) = (int)f->def_n; break;
        case E_SECS: *(double *)fld(e, f) = f->def_n; break;
        case E_SIZE: *(uint64_t *)fld(e, f) = (uint64_t)f->def_n; break;
        case E_LIST: *(char ***)fld(e, f) = NULL; break;
        }
    }
}

static void engine_free(reg_engine_t *e)
{
    for (size_t i = 0; i < N_ENG; i++)
        if (eng_fields[i].type == E_STR || eng_fields[i].type == E_STR_NULL) {
            char **p = fld(e, &eng_fields[i]);
            free(*p);
            *p = NULL;
        } else if (eng_fields[i].type == E_LIST) {
            char ***p = fld(e, &eng_fields[i]);
            for (char **q = *p; q && *q; q++)
                free(*q);
            free(*p);
            *p = NULL;
        }
}

/* Edit distance, for "did you mean"; short strings only. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[33];
    if (la > 32 || lb > 32)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

static int unknown_field(ectx_t *e, const char *key)
{
    char known[512], hint[96] = "";
    size_t used = 0, best = 3;
    known[0] = 0;
    for (size_t i = 0; i < N_ENG; i++) {
        int w = snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "",
                         eng_fields[i].name);
        if (w > 0 && (size_t)w < sizeof known - used)
            used += (size_t)w;
        size_t d = edit_distance(key, eng_fields[i].name);
        if (d < best) {
            best = d;
            snprintf(hint, sizeof hint, "did you mean '%s'? ", eng_fields[i].name);
        }
    }
    return fail(e, "_engine.%.64s: unknown field (%sknown: %s)", key, hint, known);
}

/* Seconds (or any bounded number) check shared by _engine and roles. */
static int check_secs(ectx_t *e, const char *place, const json_t *v, double min, bool min_open,
                      double max, double *out)
{
    char nb[64];
    if (!json_is_number(v))
        return fail(e, "%s: expected a number, got %s", place, jtype(v));
    double d = json_number_value(v);
    if (min_open && !(d > min))
        return fail(e, "%s: must be more than %.15g, got %s", place, min,
                    num_txt(v, nb, sizeof nb));
    if (d < min || d > max)
        return fail(e, "%s: %s is outside %.15g..%.15g", place, num_txt(v, nb, sizeof nb), min,
                    max);
    *out = d;
    return 0;
}

static int engine_field(ectx_t *e, reg_engine_t *eng, const eng_field_t *f, const json_t *v)
{
    char place[96], nb[64], lo[32], hi[32];
    snprintf(place, sizeof place, "_engine.%s", f->name);

    switch (f->type) {
    case E_STR:
    case E_STR_NULL: {
        char **sp = fld(eng, f);
        if (json_is_null(v) && f->type == E_STR_NULL) {
            free(*sp);
            *sp = NULL;
            return 0;
        }
        if (!json_is_string(v))
            return fail(e, "%s: expected a string%s, got %s", place,
                        f->type == E_STR_NULL ? " or null" : "", jtype(v));
        if (!json_string_length(v))
            return fail(e, "%s: must not be empty%s", place,
                        f->type == E_STR_NULL ? " (use null)" : "");
        free(*sp);
        *sp = xstrdup(json_string_value(v));
        return 0;
    }
    case E_INT: {
        double d;
        if (!json_is_number(v))
            return fail(e, "%s: expected an integer, got %s", place, jtype(v));
        d = json_number_value(v);
        if (d != floor(d))
            return fail(e, "%s: expected an integer, got %s", place, num_txt(v, nb, sizeof nb));
        if (d < f->min || d > f->max)
            return fail(e, "%s: %s is outside %.15g..%.15g", place, num_txt(v, nb, sizeof nb),
                        f->min, f->max);
        *(int *)fld(eng, f) = (int)d;
        return 0;
    }
    case E_SECS:
        return check_secs(e, place, v, f->min, f->min_open, REG_MAX_SECONDS, fld(eng, f));
    case E_SIZE: {
        uint64_t n;
        const char *shown;
        if (json_is_string(v)) {
            shown = json_string_value(v);
            if (!parse_size(shown, &n))
                return fail(e, "%s: '%.64s' is not a size (bytes, or a number with K, M or G "
                            "like \"20G\")", place, shown);
        } else if (json_is_number(v)) {
            double d = json_number_value(v);
            if (d != floor(d) || d < 0 || d >= 18446744073709551616.0)
                return fail(e, "%s: %s is not a byte count", place, num_txt(v, nb, sizeof nb));
            n = json_is_integer(v) ? (uint64_t)json_integer_value(v) : (uint64_t)d;
            shown = num_txt(v, nb, sizeof nb);
        } else {
            return fail(e, "%s: expected a byte count or a size string like \"20G\", got %s",
                        place, jtype(v));
        }
        if (n < (uint64_t)f->min || (f->max > 0 && n > (uint64_t)f->max))
            return fail(e, "%s: %.64s is outside %s..%s", place, shown,
                        size_txt((uint64_t)f->min, lo, sizeof lo),
                        size_txt((uint64_t)f->max, hi, sizeof hi));
        *(uint64_t *)fld(eng, f) = n;
        return 0;
    }
    case E_LIST: {
        if (!json_is_array(v))
            return fail(e, "%s: expected an array of strings, got %s", place, jtype(v));
        if (json_array_size(v) > 64)
            return fail(e, "%s: at most 64 entries", place);
        for (size_t i = 0; i < json_array_size(v); i++) {
            const json_t *x = json_array_get(v, i);
            if (!json_is_string(x) || !json_string_length(x))
                return fail(e, "%s[%zu]: expected a non-empty string, got %s", place, i,
                            json_is_string(x) ? "\"\"" : jtype(x));
            for (const char *c = json_string_value(x); *c; c++)
                if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
                    return fail(e, "%s[%zu]: spaces, control and non-ASCII characters are not allowed",
                                place, i);
        }
        char ***lp = fld(eng, f);
        for (char **q = *lp; q && *q; q++)
            free(*q);
        free(*lp);
        *lp = xcalloc(json_array_size(v) + 1, sizeof **lp);
        for (size_t i = 0; i < json_array_size(v); i++)
            (*lp)[i] = xstrdup(json_string_value(json_array_get(v, i)));
        return 0;
    }
    }
    return 0;
}

static int parse_engine(ectx_t *e, reg_engine_t *eng, const json_t *obj)
{
    const char *key;
    json_t *v;
    if (!json_is_object(obj))
        return fail(e, "_engine: expected an object, got %s", jtype(obj));
    json_object_foreach((json_t *)obj, key, v) {
        const eng_field_t *f = NULL;
        for (size_t i = 0; i < N_ENG && !f; i++)
            if (!strcmp(eng_fields[i].name, key))
                f = &eng_fields[i];
        if (!f)
            return unknown_field(e, key);
        int rc = engine_field(e, eng, f, v);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- roles ------------------------------------------------------------- */

static char *dir_of(const char *path)
{
    const char *s = path ? strrchr(path, '/') : NULL;
    if (!s)
        return xstrdup(".");
    if (s == path)
        return xstrdup("/");
    return xstrndup(path, (size_t)(s - path));
}

static char *resolve(const char *dir, const char *p)
{
    if (p[0] == '/')
        return xstrdup(p);
    if (!strcmp(dir, "/"))
        return xasprintf("/%s", p);
    return xasprintf("%s/%s", dir, p);
}

static void role_free(reg_role_t *ro)
{
    free(ro->name);
    free(ro->display_name);
    free(ro->model_path);
    free(ro->model_abs);
    free(ro->draft_path);
    free(ro->draft_abs);
    for (size_t i = 0; i < ro->n_args; i++)
        free(ro->args[i]);
    free(ro->args);
    for (size_t i = 0; i < ro->n_aliases; i++)
        free(ro->aliases[i]);
    free(ro->aliases);
    memset(ro, 0, sizeof *ro);
}

/* A string array field: array check, per-element string check, cap. */
static int string_array(ectx_t *e, const char *role, const char *field, const json_t *v,
                        size_t max, char ***out, size_t *n)
{
    if (!json_is_array(v))
        return fail(e, "%s.%s: expected an array, got %s", role, field, jtype(v));
    size_t cnt = json_array_size(v);
    if (cnt > max)
        return fail(e, "%s.%s: %zu entries, at most %zu", role, field, cnt, max);
    *out = xcalloc(cnt + 1, sizeof **out);
    *n = 0;
    for (size_t i = 0; i < cnt; i++) {
        const json_t *s = json_array_get(v, i);
        if (!json_is_string(s))
            return fail(e, "%s.%s[%zu]: expected a string, got %s", role, field, i, jtype(s));
        (*out)[(*n)++] = xstrdup(json_string_value(s));
    }
    return 0;
}

/* names: "name" → index of its role (role names and aliases alike). */
static int add_aliases(ectx_t *e, const reg_role_t *roles, size_t ri, json_t *names,
                       json_t *is_alias)
{
    const reg_role_t *ro = &roles[ri];
    for (size_t i = 0; i < ro->n_aliases; i++) {
        const char *a = ro->aliases[i];
        if (!name_ok(a))
            return fail(e, "%s.aliases[%zu]: '%.64s' is not a valid name (" NAME_RULE ")",
                        ro->name, i, a);
        json_t *owner = json_object_get(names, a);
        if (owner && json_object_get(is_alias, a)) /* aliases come from roles parsed already */
            return fail(e, "%s.aliases[%zu]: '%s' is already an alias of role '%s'", ro->name,
                        i, a, roles[json_integer_value(owner)].name);
        if (owner)
            return fail(e, "%s.aliases[%zu]: '%s' is already the name of role '%s'", ro->name,
                        i, a, a);
        json_object_set_new(names, a, json_integer((json_int_t)ri));
        json_object_set_new(is_alias, a, json_true());
    }
    return 0;
}

/* ---- the role scheduling table ----------------------------------------- */

typedef enum { R_INT, R_BOOL, R_SECS, R_ENUM } rtype_t;

typedef struct {
    const char *name;
    rtype_t type;
    size_t off; /* into reg_role_t */
    double min, max;
    double def;
    const char *help;
    const char *const *choices; /* R_ENUM: the names, NULL-terminated; the int stored is the index */
} role_field_t;

static const char *const mmproj_modes[] = {"always", "on_demand", NULL};

#define ROFF(f) offsetof(reg_role_t, f)

static const role_field_t role_fields[] = {
    {"priority", R_INT, ROFF(priority), -1000, 1000, 0,
     "a role may stop roles of lower or equal priority to start, never higher ones", NULL},
    {"pin", R_BOOL, ROFF(pin), 0, 0, 0, "never stopped to make room for another role", NULL},
    {"min_resident_s", R_SECS, ROFF(min_resident_s), 0, 0, 0,
     "seconds after loading during which the role is not stopped for another", NULL},
    {"max_concurrent", R_INT, ROFF(max_concurrent), 0, 4096, 0,
     "requests in flight at once, at most the role's -np (0: -np + 1 connections)", NULL},
    {"queue_size", R_INT, ROFF(queue_size), 0, 100000, 0,
     "requests waiting for the role beyond that; more get 429 (0: the engine's queue_size)", NULL},
    {"mmproj_mode", R_ENUM, ROFF(mmproj_mode), 0, 0, REG_MMPROJ_ALWAYS,
     "when the projector (--mmproj) is loaded: always, or on_demand (text requests without it)", mmproj_modes},
};

#define N_ROLE_FIELDS (sizeof role_fields / sizeof role_fields[0])

static int parse_role_fields(ectx_t *e, const char *name, const json_t *obj, reg_role_t *ro)
{
    char place[128], nb[64];
    for (size_t i = 0; i < N_ROLE_FIELDS; i++) {
        const role_field_t *f = &role_fields[i];
        void *dst = (char *)ro + f->off;
        const json_t *v = json_object_get(obj, f->name);
        switch (f->type) {
        case R_INT: *(int *)dst = (int)f->def; break;
        case R_BOOL: *(bool *)dst = f->def != 0; break;
        case R_SECS: *(double *)dst = f->def; break;
        case R_ENUM: *(int *)dst = (int)f->def; break;
        }
        if (!v || json_is_null(v))
            continue;
        snprintf(place, sizeof place, "%s.%s", name, f->name);
        int rc;
        switch (f->type) {
        case R_INT: {
            if (!json_is_number(v))
                return fail(e, "%s: expected an integer, got %s", place, jtype(v));
            double d = json_number_value(v);
            if (d != floor(d))
                return fail(e, "%s: expected an integer, got %s", place, num_txt(v, nb, sizeof nb));
            if (d < f->min || d > f->max)
                return fail(e, "%s: %s is outside %.15g..%.15g", place, num_txt(v, nb, sizeof nb), f->min,
                            f->max);
            *(int *)dst = (int)d;
            break;
        }
        case R_BOOL:
            if (!json_is_boolean(v))
                return fail(e, "%s: expected true or false, got %s", place, jtype(v));
            *(bool *)dst = json_is_true(v);
            break;
        case R_SECS:
            if ((rc = check_secs(e, place, v, f->min, false, REG_MAX_SECONDS, dst)))
                return rc;
            break;
        case R_ENUM: {
            if (!json_is_string(v))
                return fail(e, "%s: expected a string, got %s", place, jtype(v));
            int k = 0;
            while (f->choices[k] && strcmp(f->choices[k], json_string_value(v)))
                k++;
            if (!f->choices[k]) {
                char list[256] = "";
                for (int j = 0; f->choices[j]; j++)
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", j ? ", " : "", f->choices[j]);
                return fail(e, "%s: '%.64s' is not one of %s", place, json_string_value(v), list);
            }
            *(int *)dst = k;
            break;
        }
        }
    }
    return 0;
}

/* The launched args: the file's n_args_own, then -md DRAFT and, when they
 * choose no speculative type, --spec-type draft-simple (spec_type). */
static void derive_args(reg_role_t *ro, bool spec_type)
{
    for (size_t i = ro->n_args_own; i < ro->n_args; i++)
        free(ro->args[i]);
    ro->n_args = ro->n_args_own;
    if (!ro->draft_abs) {
        ro->args[ro->n_args] = NULL;
        return;
    }
    bool add_type = spec_type && !args_get(ro->args, ro->n_args_own, ARG_SPEC_TYPE);
    ro->args = xrealloc(ro->args, (ro->n_args_own + 5) * sizeof *ro->args);
    ro->args[ro->n_args++] = xstrdup("-md");
    ro->args[ro->n_args++] = xstrdup(ro->draft_abs);
    if (add_type) {
        ro->args[ro->n_args++] = xstrdup("--spec-type");
        ro->args[ro->n_args++] = xstrdup("draft-simple");
    }
    ro->args[ro->n_args] = NULL;
}

static int parse_role(ectx_t *e, const char *dir, const char *name, const json_t *obj,
                      reg_role_t *ro, bool spec_type)
{
    const json_t *v;
    char aerr[256];
    int rc;

    ro->name = xstrdup(name);
    ro->ttl_s = -1;
    if (!json_is_object(obj))
        return fail(e, "%s: expected an object, got %s", name, jtype(obj));

    v = json_object_get(obj, "display_name");
    if (v && !json_is_string(v))
        return fail(e, "%s.display_name: expected a string, got %s", name, jtype(v));
    ro->display_name = xstrdup(v ? json_string_value(v) : name);

    v = json_object_get(obj, "model_path");
    if (!v || json_is_null(v))
        return fail(e, "%s.model_path: missing (the GGUF file this role serves)", name);
    if (!json_is_string(v))
        return fail(e, "%s.model_path: expected a string, got %s", name, jtype(v));
    if (!json_string_length(v))
        return fail(e, "%s.model_path: must not be empty", name);
    ro->model_path = xstrdup(json_string_value(v));
    ro->model_abs = resolve(dir, ro->model_path);

    v = json_object_get(obj, "measured_tps");
    if (v) {
        char place[96];
        snprintf(place, sizeof place, "%s.measured_tps", name);
        if ((rc = check_secs(e, place, v, 0, false, REG_MAX_TPS, &ro->measured_tps)))
            return rc;
    }

    v = json_object_get(obj, "ttl");
    if (v && !json_is_null(v)) {
        char place[96];
        snprintf(place, sizeof place, "%s.ttl", name);
        if ((rc = check_secs(e, place, v, 0, false, REG_MAX_SECONDS, &ro->ttl_s)))
            return rc;
    }

    if ((rc = parse_role_fields(e, name, obj, ro)))
        return rc;

    v = json_object_get(obj, "args");
    if (v) {
        if ((rc = string_array(e, name, "args", v, REG_MAX_ARGS, &ro->args, &ro->n_args)))
            return rc;
        long bad = args_check(ro->args, ro->n_args, aerr, sizeof aerr);
        if (bad >= 0)
            return fail(e, "%s.args[%ld]: %s", name, bad, aerr);
    } else {
        ro->args = xcalloc(1, sizeof *ro->args);
    }
    ro->n_args_own = ro->n_args;

    v = json_object_get(obj, "draft_model_path");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v))
            return fail(e, "%s.draft_model_path: expected a string, got %s", name, jtype(v));
        if (!json_string_length(v))
            return fail(e, "%s.draft_model_path: must not be empty", name);
        long md = args_find(ro->args, ro->n_args, ARG_DRAFT_MODEL);
        if (md >= 0)
            return fail(e, "%s.draft_model_path: args[%ld] names a draft too (-md); give it once", name, md - 1);
        ro->draft_path = xstrdup(json_string_value(v));
        ro->draft_abs = resolve(dir, ro->draft_path);
    }
    derive_args(ro, spec_type);
    long np = -1;
    args_get_long(ro->args, ro->n_args, ARG_PARALLEL, &np);
    if (np <= 0)
        np = 4; /* llama-server's auto */
    if (ro->max_concurrent > np)
        return fail(e, "%s.max_concurrent: %d is more than the role's %ld slots (-np)", name, ro->max_concurrent, np);
    if (ro->mmproj_mode == REG_MMPROJ_ON_DEMAND && args_find(ro->args, ro->n_args, ARG_MMPROJ) < 0)
        return fail(e, "%s.mmproj_mode: \"on_demand\" needs a projector in the role's args (--mmproj FILE)", name);

    v = json_object_get(obj, "aliases");
    if (v)
        return string_array(e, name, "aliases", v, REG_MAX_ALIASES, &ro->aliases,
                            &ro->n_aliases);
    ro->aliases = xcalloc(1, sizeof *ro->aliases);
    return 0;
}

/* ---- parse / load / free ----------------------------------------------- */

/* jansson says "duplicate object key" with the position just past the key's
 * closing quote; find the opening quote (the previous '"' not escaped: a raw
 * '"' cannot occur inside a JSON string) and decode the key. *chars gets the
 * token's length in characters (jansson's columns count characters), so the
 * message can point at the key's first character rather than its last. */
static char *dup_key(const char *text, size_t len, int pos, int *chars)
{
    if (pos < 2 || (size_t)pos > len || text[pos - 1] != '"')
        return NULL;
    for (int i = pos - 2; i >= 0; i--) {
        if (text[i] != '"')
            continue;
        int bs = 0;
        for (int j = i - 1; j >= 0 && text[j] == '\\'; j--)
            bs++;
        if (bs % 2)
            continue;
        *chars = 0;
        for (int j = i; j < pos; j++)
            *chars += ((unsigned char)text[j] & 0xc0) != 0x80;
        json_t *s = json_loadb(text + i, (size_t)(pos - i), JSON_DECODE_ANY, NULL);
        char *k = json_is_string(s) ? xstrdup(json_string_value(s)) : NULL;
        json_decref(s);
        return k;
    }
    return NULL;
}

int registry_parse(const char *text, size_t len, const char *path, registry_t **out, char *err,
                   size_t errlen)
{
    ectx_t e = {path, err, errlen};
    json_error_t jerr;
    registry_t *r = NULL;
    json_t *names = NULL, *is_alias = NULL;
    const char *key;
    json_t *v;
    int rc = -EINVAL;

    *out = NULL;
    if (err && errlen)
        err[0] = 0;
    /* a UTF-8 byte order mark, as some Windows editors write one */
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) {
        text += 3;
        len -= 3;
    }
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        const char *where = path ? path : "<config>";
        if (json_error_code(&jerr) == json_error_duplicate_key) {
            int chars = 1;
            char *k = dup_key(text, len, jerr.position, &chars);
            snprintf(err, errlen, "%s:%d:%d: duplicate key '%.64s'", where, jerr.line,
                     jerr.column - chars + 1, k ? k : "?");
            free(k);
        } else {
            snprintf(err, errlen, "%s:%d:%d: JSON syntax error: %s", where, jerr.line,
                     jerr.column, jerr.text);
        }
        one_line(err);
        return -EINVAL;
    }

    r = xcalloc(1, sizeof *r);
    r->doc = doc;
    r->spec_type = true;
    r->path = path ? xstrdup(path) : NULL;
    r->dir = dir_of(path);
    engine_defaults(&r->engine);

    if (!json_is_object(doc)) {
        fail(&e, "expected a JSON object at the top level, got %s", jtype(doc));
        goto fail;
    }

    json_t *eng = json_object_get(doc, "_engine");
    if (eng && (rc = parse_engine(&e, &r->engine, eng)))
        goto fail;
    char *ld = resolve(r->dir, r->engine.log_dir);
    free(r->engine.log_dir);
    r->engine.log_dir = ld;

    /* role names first, so aliases can be checked against all of them */
    size_t n = 0;
    names = json_object();
    is_alias = json_object();
    json_object_foreach(doc, key, v) {
        if (key[0] == '_')
            continue;
        if (!name_ok(key)) {
            rc = fail(&e, "'%.64s': invalid role name (" NAME_RULE ")", key);
            goto fail;
        }
        if (n == REG_MAX_ROLES) {
            rc = fail(&e, "more than %d roles", REG_MAX_ROLES);
            goto fail;
        }
        json_object_set_new(names, key, json_integer((json_int_t)n++));
    }
    if (!n) {
        rc = fail(&e, "no roles: add an object like {\"fast\": {\"model_path\": ...}}");
        goto fail;
    }

    r->roles = xcalloc(n, sizeof *r->roles);
    json_object_foreach(doc, key, v) {
        if (key[0] == '_')
            continue;
        reg_role_t *ro = &r->roles[r->n_roles++];
        if ((rc = parse_role(&e, r->dir, key, v, ro, r->spec_type)))
            goto fail;
        if ((rc = add_aliases(&e, r->roles, r->n_roles - 1, names, is_alias)))
            goto fail;
    }

    if (r->engine.default_role && !registry_find(r, r->engine.default_role)) {
        char list[256];
        size_t used = 0;
        list[0] = 0;
        for (size_t i = 0; i < r->n_roles && used < sizeof list; i++) {
            int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                             r->roles[i].name);
            if (w > 0)
                used += (size_t)w;
        }
        rc = fail(&e, "_engine.default_role: '%.64s' is not a role or alias (roles: %s)",
                  r->engine.default_role, list);
        goto fail;
    }

    json_decref(names);
    json_decref(is_alias);
    *out = r;
    return 0;

fail:
    json_decref(names);
    json_decref(is_alias);
    registry_free(&r);
    return rc ? rc : -EINVAL;
}

int registry_load(const char *path, registry_t **out, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    /* a FIFO or device would block the read or never end: regular files only */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(err, errlen, "%s: not a regular file", path);
        return -EINVAL;
    }
    if (fd >= 0)
        close(fd);
    int rc = file_read_all(path, REG_MAX_FILE, &text, &len, err, errlen);
    if (rc)
        return rc;
    rc = registry_parse(text, len, path, out, err, errlen);
    free(text);
    return rc;
}

void registry_free(registry_t **rp)
{
    if (!rp || !*rp)
        return;
    registry_t *r = *rp;
    for (size_t i = 0; i < r->n_roles; i++)
        role_free(&r->roles[i]);
    free(r->roles);
    engine_free(&r->engine);
    json_decref(r->doc);
    free(r->path);
    free(r->dir);
    free(r);
    *rp = NULL;
}

const reg_role_t *registry_find(const registry_t *r, const char *name)
{
    if (!r || !name)
        return NULL;
    for (size_t i = 0; i < r->n_roles; i++)
        if (!strcmp(r->roles[i].name, name))
            return &r->roles[i];
    for (size_t i = 0; i < r->n_roles; i++)
        for (size_t j = 0; j < r->roles[i].n_aliases; j++)
            if (!strcmp(r->roles[i].aliases[j], name))
                return &r->roles[i];
    return NULL;
}

/* ---- changes and save -------------------------------------------------- */

static reg_role_t *role_mut(registry_t *r, const char *name, json_t **obj)
{
    const reg_role_t *ro = registry_find(r, name);
    if (!ro)
        return NULL;
    *obj = json_object_get(r->doc, ro->name);
    return json_is_object(*obj) ? (reg_role_t *)ro : NULL;
}

int registry_set_tps(registry_t *r, const char *role, double tps)
{
    json_t *obj;
    reg_role_t *ro = role_mut(r, role, &obj);
    if (!ro)
        return -ENOENT;
    if (!isfinite(tps) || tps < 0 || tps > REG_MAX_TPS)
        return -EINVAL;
    tps = round(tps * 100) / 100;
    /* json_object_set_new on an existing key keeps its place in the order */
    if (json_object_set_new(obj, "measured_tps", json_real(tps)))
        return -ENOMEM;
    ro->measured_tps = tps;
    return 0;
}

size_t registry_own_args(const reg_role_t *ro, char *const *args, size_t n, char **own, bool *drafted)
{
    size_t k = 0;
    bool md = false, ty = false;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = ro->n_args_own; j + 1 < ro->n_args && i + 1 < n; j += 2)
            if (!strcmp(args[i], ro->args[j]) && !strcmp(args[i + 1], ro->args[j + 1]) &&
                !(j == ro->n_args_own ? md : ty)) {
                *(j == ro->n_args_own ? &md : &ty) = true;
                i++;
                goto next;
            }
        own[k++] = args[i];
    next:;
    }
    if (drafted)
        *drafted = md;
    return k;
}

int registry_set_args(registry_t *r, const char *role, char *const *args, size_t n)
{
    json_t *obj;
    char aerr[256];
    reg_role_t *ro = role_mut(r, role, &obj);
    if (!ro)
        return -ENOENT;
    /* launched args given back (a tuning result, where later options may
     * follow them): without the pairs draft_model_path adds */
    char **own = xcalloc(n + 1, sizeof *own); /* borrowed strings */
    n = registry_own_args(ro, args, n, own, NULL);
    args = own;
    int rc = -EINVAL;
    if (n > REG_MAX_ARGS || args_check(args, n, aerr, sizeof aerr) >= 0)
        goto out;
    if (ro->draft_abs && args_find(args, n, ARG_DRAFT_MODEL) >= 0)
        goto out; /* a draft named both ways */
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_string(args[i]); /* NULL for invalid UTF-8 */
        if (!s || json_array_append_new(arr, s)) {
            json_decref(arr);
            goto out;
        }
    }
    rc = -ENOMEM;
    if (json_object_set_new(obj, "args", arr))
        goto out;
    char **copy = xcalloc(n + 1, sizeof *copy);
    for (size_t i = 0; i < n; i++)
        copy[i] = xstrdup(args[i]);
    for (size_t i = 0; i < ro->n_args; i++)
        free(ro->args[i]);
    free(ro->args);
    ro->args = copy;
    ro->n_args = ro->n_args_own = n;
    derive_args(ro, r->spec_type);
    rc = 0;
out:
    free(own);
    return rc;
}

int registry_set_draft(registry_t *r, const char *role, const char *path)
{
    json_t *obj;
    reg_role_t *ro = role_mut(r, role, &obj);
    if (!ro)
        return -ENOENT;
    if (path && (!*path || args_find(ro->args, ro->n_args_own, ARG_DRAFT_MODEL) >= 0))
        return -EINVAL;
    free(ro->draft_path);
    free(ro->draft_abs);
    ro->draft_path = ro->draft_abs = NULL;
    if (path) {
        json_t *s = json_string(path);
        if (!s || json_object_set_new(obj, "draft_model_path", s))
            return -EINVAL;
        ro->draft_path = xstrdup(path);
        ro->draft_abs = resolve(r->dir, path);
    } else {
        json_object_del(obj, "draft_model_path");
    }
    derive_args(ro, r->spec_type);
    return 0;
}

const char *registry_arg_where(const reg_role_t *ro, long at, char *buf, size_t cap)
{
    if (at >= (long)ro->n_args_own)
        snprintf(buf, cap, "%s.draft_model_path", ro->name);
    else
        snprintf(buf, cap, "%s.args[%ld]", ro->name, at);
    return buf;
}

void registry_set_spec_type(registry_t *r, bool on)
{
    r->spec_type = on;
    for (size_t i = 0; i < r->n_roles; i++)
        derive_args(&r->roles[i], on);
}

/* The fewest significant digits (15..17) with which every real in v reads
 * back exactly: 15 keeps 57.46 from printing as 57.460000000000001, 17 is
 * always exact (jansson has no shortest-representation mode). */
static int real_digits(const json_t *v)
{
    int p = 15;
    if (json_is_real(v)) {
        double d = json_real_value(v);
        char buf[40];
        for (; p < 17; p++) {
            snprintf(buf, sizeof buf, "%.*g", p, d);
            if (strtod(buf, NULL) == d)
                break;
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v) && p < 17; i++) {
            int q = real_digits(json_array_get(v, i));
            p = q > p ? q : p;
        }
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            int q = real_digits(x);
            p = q > p ? q : p;
        }
    }
    return p;
}

char *registry_dump(const registry_t *r)
{
    char *j = json_dumps(r->doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                     JSON_REAL_PRECISION(real_digits(r->doc)));
    if (!j)
        abort(); /* only fails on OOM: doc came from the parser */
    char *text = xasprintf("%s\n", j);
    free(j);
    return text;
}

int registry_save(const registry_t *r, const char *path, bool backup, char *err, size_t errlen)
{
    char *text = registry_dump(r), *old = NULL, *bak = NULL;
    size_t old_len = 0;
    int rc = 0;

    if (backup) {
        rc = file_read_all(path, REG_MAX_FILE, &old, &old_len, err, errlen);
        if (rc == -ENOENT) {
            rc = 0; /* nothing to keep */
        } else if (rc) {
            goto fail;
        } else {
            bak = xasprintf("%s.bak", path);
            if ((rc = file_write_atomic(bak, old, old_len, err, errlen)))
                goto fail;
        }
    }
    rc = file_write_atomic(path, text, strlen(text), err, errlen);

fail:
    free(text);
    free(old);
    free(bak);
    return rc;
}
