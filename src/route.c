/*
 * route.c — the route table, the access policy, and what a proxied body
 * carries (see route.h).
 */
#include "route.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const route_spec_t table[] = {
    {HTTP_GET, "/health", ROUTE_HEALTH},
    {HTTP_GET, "/v1/models", ROUTE_MODELS},
    {HTTP_GET, "/models", ROUTE_MODELS},
    {HTTP_GET, "/status", ROUTE_STATUS},
    {HTTP_GET, "/metrics", ROUTE_METRICS},
    {HTTP_POST, "/roles/{name}/load", ROUTE_ROLE_LOAD},
    {HTTP_POST, "/roles/{name}/unload", ROUTE_ROLE_UNLOAD},
    {HTTP_GET, "/roles/{name}/logs", ROUTE_ROLE_LOGS},
    {HTTP_GET, "/roles/{name}/tune", ROUTE_ROLE_TUNE},
    {HTTP_GET, "/ui", ROUTE_UI},
    {HTTP_GET, "/ui/*", ROUTE_UI}, /* the dashboard's files */
    /* llama-server's inference routes, forwarded to the role's backend */
    {HTTP_POST, "/v1/chat/completions", ROUTE_PROXY},
    {HTTP_POST, "/v1/completions", ROUTE_PROXY},
    {HTTP_POST, "/v1/embeddings", ROUTE_PROXY},
    {HTTP_POST, "/v1/responses", ROUTE_PROXY},
    {HTTP_POST, "/completion", ROUTE_PROXY},
    {HTTP_POST, "/completions", ROUTE_PROXY},
    {HTTP_POST, "/tokenize", ROUTE_PROXY},
    {HTTP_POST, "/detokenize", ROUTE_PROXY},
    {HTTP_POST, "/apply-template", ROUTE_PROXY},
    {HTTP_POST, "/infill", ROUTE_PROXY},
    {HTTP_POST, "/embedding", ROUTE_PROXY},
    {HTTP_POST, "/embeddings", ROUTE_PROXY},
    {HTTP_POST, "/v1/rerank", ROUTE_PROXY},
    {HTTP_POST, "/rerank", ROUTE_PROXY},
};

/* Does path match pattern? 1 yes (a {name} segment copied into name), 0
 * no, -1 its {name} segment does not fit in cap. A pattern ending in "*"
 * matches every path it is a prefix of. */
static int path_match(const char *pattern, const char *path, char *name, size_t cap)
{
    size_t pl = strlen(pattern);
    if (pl && pattern[pl - 1] == '*')
        return !strncmp(pattern, path, pl - 1);
    const char *hole = strstr(pattern, "{name}");
    if (!hole)
        return !strcmp(pattern, path);
    size_t pre = (size_t)(hole - pattern);
    if (strncmp(pattern, path, pre))
        return 0;
    const char *s = path + pre, *e = strchr(s, '/');
    if (!e)
        e = s + strlen(s);
    if (e == s || strcmp(hole + 6, e))
        return 0;
    if ((size_t)(e - s) >= cap)
        return -1;
    memcpy(name, s, (size_t)(e - s));
    name[e - s] = 0;
    return 1;
}

route_t route_classify(http_method_t method, const char *path, char *role, size_t cap)
{
    if (cap)
        role[0] = 0;
    if (method == HTTP_HEAD)
        method = HTTP_GET;
    if (method == HTTP_OPTIONS)
        return ROUTE_PREFLIGHT;
    if (method != HTTP_GET && method != HTTP_POST)
        return ROUTE_BAD_METHOD;
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        if (table[i].method != method)
            continue;
        int m = path_match(table[i].path, path, role, cap);
        if (m < 0)
            return ROUTE_NOT_FOUND;
        if (m)
            return table[i].route;
    }
    return ROUTE_NOT_FOUND;
}

static bool key_ok(const char *want, const char *auth)
{
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return false;
    auth += 7;
    size_t a = strlen(auth), b = strlen(want);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < a && i < b; i++)
        diff |= (unsigned)(auth[i] ^ want[i]);
    return diff == 0;
}

/* host without its port: "[::1]:8000" → "::1", "localhost:80" → "localhost" */
static size_t host_name(const char *h, char *out, size_t cap)
{
    size_t n;
    if (h[0] == '[') {
        const char *e = strchr(h, ']');
        if (!e || (e[1] && e[1] != ':'))
            return 0;
        h++;
        n = (size_t)(e - h);
    } else {
        const char *colon = strchr(h, ':');
        n = colon ? (size_t)(colon - h) : strlen(h);
    }
    if (!n || n >= cap)
        return 0;
    memcpy(out, h, n);
    out[n] = 0;
    /* a trailing dot names the same host */
    if (out[n - 1] == '.')
        out[--n] = 0;
    return n;
}

bool route_host_is_loopback(const char *host)
{
    char n[256];
    size_t len = host_name(host, n, sizeof n);
    if (!len)
        return false;
    if (!strcasecmp(n, "localhost") || !strcmp(n, "::1"))
        return true;
    if (len > 10 && !strcasecmp(n + len - 10, ".localhost"))
        return true;
    /* 127.0.0.0/8 as a dotted quad */
    unsigned a, b, c, d;
    char tail;
    if (sscanf(n, "%3u.%3u.%3u.%3u%c", &a, &b, &c, &d, &tail) == 4)
        return a == 127 && b < 256 && c < 256 && d < 256;
    return false;
}

static bool host_allowed(const route_policy_t *p, const char *host)
{
    if (route_host_is_loopback(host))
        return true;
    char n[256];
    if (!p->allowed_hosts || !host_name(host, n, sizeof n))
        return false;
    for (const char *const *a = p->allowed_hosts; *a; a++)
        if (!strcasecmp(*a, n) || !strcasecmp(*a, host))
            return true;
    return false;
}

static bool origin_listed(const route_policy_t *p, const char *origin)
{
    if (!p->allowed_origins)
        return false;
    for (const char *const *a = p->allowed_origins; *a; a++)
        if (!strcmp(*a, "*") || !strcasecmp(*a, origin))
            return true;
    return false;
}

const char *route_cors_origin(const route_policy_t *p, const http_head_t *h)
{
    const char *o = http_head_get(h, "Origin");
    return o && origin_listed(p, o) ? o : NULL;
}

static bool is_json(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    size_t n = strcspn(ct, "; \t");
    return n == 16 && !strncasecmp(ct, "application/json", 16);
}

int route_check(const route_policy_t *p, route_t rt, const http_head_t *h, char *err, size_t errlen)
{
    if (rt == ROUTE_HEALTH)
        return 0;
    if (p->api_key && *p->api_key) {
        if (rt == ROUTE_PREFLIGHT || rt == ROUTE_UI)
            return 0; /* browsers send no credentials on a preflight, nor when they navigate */
        if (!key_ok(p->api_key, http_head_get(h, "Authorization"))) {
            snprintf(err, errlen, "missing or wrong API key (Authorization: Bearer ...)");
            return 401;
        }
        return 0;
    }
    if (h->host && !host_allowed(p, h->host)) {
        snprintf(err, errlen,
                 "Host '%.100s' is not this machine's loopback; without an api_key only loopback names "
                 "(or _engine.allowed_hosts) are served",
                 h->host);
        return 403;
    }
    const char *origin = http_head_get(h, "Origin");
    if (origin && !origin_listed(p, origin)) {
        snprintf(err, errlen, "Origin '%.100s' is not in _engine.allowed_origins", origin);
        return 403;
    }
    if (h->method == HTTP_POST && !is_json(http_head_get(h, "Content-Type"))) {
        snprintf(err, errlen, "POST requests must have Content-Type: application/json");
        return 415;
    }
    return 0;
}

/* Image parts in a content array (a chat message's or a Responses item's). */
static int content_images(const json_t *content)
{
    int n = 0;
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        const char *t = json_string_value(json_object_get(part, "type"));
        n += t && (!strcmp(t, "image_url") || !strcmp(t, "input_image"));
    }
    return n;
}

/* multimodal_data entries of a llama.cpp prompt object (or of each object
 * in a prompt array). */
static int prompt_images(const json_t *prompt)
{
    if (json_is_object(prompt))
        return (int)json_array_size(json_object_get(prompt, "multimodal_data"));
    int n = 0;
    size_t i;
    json_t *p;
    json_array_foreach(prompt, i, p) if (json_is_object(p)) n += (int)json_array_size(json_object_get(p, "multimodal_data"));
    return n;
}

int route_count_images(const json_t *body)
{
    int n = 0;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(body, "messages"), i, m) n += content_images(json_object_get(m, "content"));
    json_array_foreach(json_object_get(body, "input"), i, m)
    {
        const char *t = json_string_value(json_object_get(m, "type"));
        if (t && !strcmp(t, "input_image"))
            n++; /* an item that is itself an image part */
        else
            n += content_images(json_object_get(m, "content"));
    }
    return n + prompt_images(json_object_get(body, "prompt"));
}
