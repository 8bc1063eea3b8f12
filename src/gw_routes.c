/*
 * gw_routes.c — requests in (see gw_int.h): route.c's table names the
 * route and its policy says whether the request may reach it; the handler
 * table below acts. A proxied request's JSON body is parsed only for
 * "model" (a role name or alias; the default role when absent) and
 * "stream"; the rest goes to the role's llama-server as it came.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "gw_int.h"
#include "util.h"

/* name: the {name} segment of the route's path ("" when it has none) */
typedef void (*handler_fn)(gateway_t *g, httpd_req_t *req, const char *name);

static void refuse(gateway_t *g, httpd_req_t *req, int code, const char *oai_code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void h_health(gateway_t *g, httpd_req_t *req, const char *name)
{
    gw__send_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_models(gateway_t *g, httpd_req_t *req, const char *name) { gw__models_reply(g, req); }
static void h_status(gateway_t *g, httpd_req_t *req, const char *name) { gw__status_reply(g, req); }
static void h_metrics(gateway_t *g, httpd_req_t *req, const char *name) { gw__metrics_reply(g, req); }

/* The role of /roles/{name}/..., or NULL after a 404. */
static gw_role_t *role_or_404(gateway_t *g, httpd_req_t *req, const char *name)
{
    gw_role_t *r = gw__find_role(g, name);
    if (!r) {
        char list[1024];
        gw__role_list(g, list, sizeof list);
        gw__send_error(req, 404, "invalid_request_error", "model_not_found", "unknown role '%s' (roles: %s)", name,
                       list);
    }
    return r;
}

static void h_role_logs(gateway_t *g, httpd_req_t *req, const char *name)
{
    gw_role_t *r = role_or_404(g, req, name);
    if (!r)
        return;
    long tail = 100;
    char t[32];
    int64_t v;
    if (http_query_get(httpd_head(req)->query, "tail", t, sizeof t) && parse_i64(t, 1, 100000, &v))
        tail = (long)v;
    if (http_query_get(httpd_head(req)->query, "follow", t, sizeof t) && strcmp(t, "0")) {
        dash_log_follow(g->dash, req, r->be, (size_t)tail);
        return;
    }
    buf_t out;
    buf_init(&out, 0);
    backend_log_tail(r->be, (size_t)tail, &out);
    httpd_add_header(req, "Content-Type", "text/plain; charset=utf-8");
    httpd_reply(req, 200, out.data ? out.data : "", out.len);
    buf_free(&out);
}

static void h_role_tune(gateway_t *g, httpd_req_t *req, const char *name)
{
    gw_role_t *r = role_or_404(g, req, name);
    if (r)
        dash_tune(req, g->reg->dir, r->name);
}

static void h_ui(gateway_t *g, httpd_req_t *req, const char *name) { dash_asset(req); }

static void h_role_unload(gateway_t *g, httpd_req_t *req, const char *name)
{
    gw_role_t *r = role_or_404(g, req, name);
    if (!r)
        return;
    if (r->inflight) {
        gw__send_error(req, 409, "invalid_request_error", "busy", "role '%s' has %d requests in flight", r->name,
                       r->inflight);
        return;
    }
    gw__role_stop_idle(r); /* its slots are saved first */
    gw__send_json(req, 200, json_pack("{s:s,s:s}", "role", r->name, "state", gw__role_state(r)));
}

/* load: clears a failure and waits (queued like a request) until ready */
static void h_role_load(gateway_t *g, httpd_req_t *req, const char *name)
{
    gw_role_t *r = role_or_404(g, req, name);
    if (!r)
        return;
    r->failed = false;
    if (backend_state(r->be) == BE_READY) {
        gw__send_json(req, 200, json_pack("{s:s,s:s}", "role", r->name, "state", "ready"));
        return;
    }
    /* gw__drain_queue answers it when the role is ready */
    gw__dispatch(g, r, req, &(gw_req_info_t){.load_only = true});
}

/* Does the request carry an image or audio (which needs the projector)? A
 * chat message part of a type other than "text" (image_url, input_audio,
 * ...), or llama-server's own multimodal_data (/completion). */
static bool has_media(const json_t *body)
{
    if (json_object_get(body, "multimodal_data"))
        return true;
    size_t i, k;
    json_t *m, *part;
    json_array_foreach(json_object_get(body, "messages"), i, m) {
        json_array_foreach(json_object_get(m, "content"), k, part) {
            const char *type = json_string_value(json_object_get(part, "type"));
            if (type && strcmp(type, "text"))
                return true;
        }
    }
    return false;
}

static void h_proxy(gateway_t *g, httpd_req_t *req, const char *unused)
{
    struct evbuffer *in = httpd_body(req);
    size_t len = evbuffer_get_length(in);
    json_error_t je;
    json_t *j = len ? json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &je) : NULL;
    if (!j || !json_is_object(j)) {
        if (!len)
            refuse(g, req, 400, "invalid_json", "request body is empty; expected a JSON object");
        else if (!j)
            refuse(g, req, 400, "invalid_json", "request body is not valid JSON: %s (line %d, column %d)", je.text,
                   je.line, je.column);
        else
            refuse(g, req, 400, "invalid_json", "request body must be a JSON object");
        json_decref(j);
        return;
    }
    json_t *m = json_object_get(j, "model");
    const char *name = json_is_string(m) ? json_string_value(m) : NULL;
    bool stream = json_is_true(json_object_get(j, "stream"));
    gw_role_t *r = NULL;
    char list[1024];
    if (m && !json_is_string(m)) {
        refuse(g, req, 400, "invalid_model", "\"model\" must be a string");
    } else {
        if (!name || !*name)
            name = g->reg->engine.default_role;
        r = name ? gw__find_role(g, name) : NULL;
        if (!r)
            gw__role_list(g, list, sizeof list);
        if (!name)
            refuse(g, req, 400, "missing_model",
                   "request has no \"model\" and no default role is configured (roles: %s)", list);
        else if (!r)
            refuse(g, req, 404, "model_not_found", "The model '%s' does not exist (roles: %s)", name, list);
    }
    /* before it queues: the count is of requests that reached the role */
    int images = r ? route_count_images(j) : 0;
    gw_req_info_t info = {.stream = stream, .media = images > 0 || has_media(j)};
    json_decref(j);
    if (images)
        gw__observe(g, &(gw_obs_t){.kind = GW_OBS_IMAGES, .role = r, .images = (uint64_t)images});
    if (r)
        gw__dispatch(g, r, req, &info);
}

static void h_preflight(gateway_t *g, httpd_req_t *req, const char *name)
{
    if (route_cors_origin(&g->policy, httpd_head(req))) {
        httpd_add_header(req, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        httpd_add_header(req, "Access-Control-Allow-Headers", "Authorization, Content-Type");
        httpd_add_header(req, "Access-Control-Max-Age", "600");
    }
    httpd_add_header(req, "Allow", "GET, HEAD, POST, OPTIONS");
    httpd_reply(req, 204, NULL, 0);
}

static void h_bad_method(gateway_t *g, httpd_req_t *req, const char *name)
{
    httpd_add_header(req, "Allow", "GET, HEAD, POST, OPTIONS");
    refuse(g, req, 405, "method_not_allowed", "method %.32s is not served", httpd_head(req)->method_name);
}

static void h_not_found(gateway_t *g, httpd_req_t *req, const char *name)
{
    const http_head_t *h = httpd_head(req);
    refuse(g, req, 404, "not_found", "no route %.32s %s", h->method_name, h->path);
}

/* What each route of route.c's table does. */
static const handler_fn handlers[ROUTE__COUNT] = {
    [ROUTE_NOT_FOUND] = h_not_found,
    [ROUTE_HEALTH] = h_health,
    [ROUTE_MODELS] = h_models,
    [ROUTE_STATUS] = h_status,
    [ROUTE_METRICS] = h_metrics,
    [ROUTE_ROLE_LOAD] = h_role_load,
    [ROUTE_ROLE_UNLOAD] = h_role_unload,
    [ROUTE_ROLE_LOGS] = h_role_logs,
    [ROUTE_ROLE_TUNE] = h_role_tune,
    [ROUTE_UI] = h_ui,
    [ROUTE_PROXY] = h_proxy,
    [ROUTE_PREFLIGHT] = h_preflight,
    [ROUTE_BAD_METHOD] = h_bad_method,
};

/* A request refused before it reached a role: counted, answered. */
static void refuse(gateway_t *g, httpd_req_t *req, int code, const char *oai_code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    gw__observe(g, &(gw_obs_t){.kind = GW_OBS_UNROUTED, .code = code});
    gw__send_error(req, code, "invalid_request_error", oai_code, "%s", msg);
}

void gw__on_request(httpd_req_t *req, void *arg)
{
    gateway_t *g = arg;
    const http_head_t *h = httpd_head(req);
    char role[128], err[512];
    route_t rt = route_classify(h->method, h->path, role, sizeof role);
    const char *cors = route_cors_origin(&g->policy, h);
    if (cors) {
        httpd_add_header(req, "Access-Control-Allow-Origin", cors);
        httpd_add_header(req, "Vary", "Origin");
    }
    int code = route_check(&g->policy, rt, h, err, sizeof err);
    if (code) {
        refuse(g, req, code, code == 401 ? "invalid_api_key" : code == 415 ? "unsupported_media_type" : "forbidden",
               "%s", err);
        return;
    }
    handlers[rt](g, req, role);
}
