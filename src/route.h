/*
 * route.h — the gateway's request layer, pure: the route table (which
 * route a request names), whether it may reach it (API key, Host, Origin,
 * content type), and the CORS answer. No I/O; gw_routes.c acts on the
 * verdicts, the HTTP fuzzer drives them with parsed requests.
 */
#ifndef VARIET_ROUTE_H
#define VARIET_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "http.h"

typedef enum {
    ROUTE_NOT_FOUND = 0,
    ROUTE_HEALTH,      /* GET /health */
    ROUTE_MODELS,      /* GET /v1/models, /models */
    ROUTE_STATUS,      /* GET /status */
    ROUTE_METRICS,     /* GET /metrics */
    ROUTE_ROLE_LOAD,   /* POST /roles/NAME/load */
    ROUTE_ROLE_UNLOAD, /* POST /roles/NAME/unload */
    ROUTE_ROLE_LOGS,   /* GET /roles/NAME/logs (?follow=1: streamed) */
    ROUTE_ROLE_TUNE,   /* GET /roles/NAME/tune (the tuning history, ?plot=: SVG) */
    ROUTE_UI,          /* GET /ui, /ui/NAME: the dashboard's files */
    ROUTE_PROXY,       /* POST to one of llama-server's inference routes */
    ROUTE_PREFLIGHT,   /* OPTIONS (CORS preflight) */
    ROUTE_BAD_METHOD,  /* a method no route takes (405) */
    ROUTE__COUNT
} route_t;

/* One row of the route table (route.c): a method and a path, exact or
 * with one "{name}" segment (a role name: one non-empty segment), and the
 * route they name. A new route is a route_t, a row in route.c's table and
 * a handler in gw_routes.c's table (the access policy below sees the
 * route_t). */
typedef struct {
    http_method_t method; /* HTTP_GET answers HEAD too */
    const char *path;
    route_t route;
} route_spec_t;

/* The route of `method path` by the table; for a path with a {name}
 * segment the name is copied into role (cap bytes, "" otherwise; a name
 * that does not fit gives ROUTE_NOT_FOUND). HEAD routes as GET; OPTIONS is
 * ROUTE_PREFLIGHT, a method other than GET and POST ROUTE_BAD_METHOD. */
route_t route_classify(http_method_t method, const char *path, char *role, size_t cap);

typedef struct {
    const char *api_key;            /* NULL or "": no key */
    const char *const *allowed_hosts;   /* NULL-terminated, or NULL */
    const char *const *allowed_origins; /* NULL-terminated ("*": any), or NULL */
} route_policy_t;

/* May this request proceed? 0, or the status to refuse it with (401, 403,
 * 415) and a message in err. Rules: /health is open; with an api_key every
 * other route needs "Authorization: Bearer KEY" (compared in constant
 * time), but the dashboard's files (ROUTE_UI: static, no data; a browser
 * cannot send the key when it navigates), whose page then asks for the key
 * and sends it on every call. Without a key (anyone on the machine, and any web page a browser
 * on it shows, can reach the port): Host must name the loopback
 * (localhost, *.localhost, 127.0.0.0/8, [::1], with any port) or one of
 * allowed_hosts, which stops DNS rebinding; a request carrying an Origin
 * that allowed_origins does not list is refused, and a POST must say
 * Content-Type: application/json, which no cross-site form or simple
 * request can send without a CORS preflight. */
int route_check(const route_policy_t *p, route_t rt, const http_head_t *h, char *err, size_t errlen);

/* The Access-Control-Allow-Origin value for this request (its Origin when
 * allowed_origins lists it or "*"), or NULL: no CORS headers. */
const char *route_cors_origin(const route_policy_t *p, const http_head_t *h);

/* Is `host` (a Host header: name or address, optional ":port") the
 * loopback? */
bool route_host_is_loopback(const char *host);

/* Images a proxied request's JSON body carries (for /metrics): OpenAI
 * chat content parts of type "image_url" (messages[].content[]), Responses
 * API "input_image" parts (input[].content[]), and llama.cpp's prompt
 * objects' "multimodal_data" entries (prompt, or each object of a prompt
 * array). Anything else counts 0. */
int route_count_images(const json_t *body);

#endif
