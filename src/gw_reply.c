/*
 * gw_reply.c — the gateway's answers (see gw_int.h): JSON bodies and
 * OpenAI-shaped errors ({"error":{"message","type","param","code"}}), with
 * Retry-After on the statuses a client should retry (503, 429).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_int.h"
#include "util.h"

/* jansson refuses strings that are not UTF-8: request paths, log lines
 * and cut messages can hold such bytes */
char *gw__utf8_clean(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 ? 3 : -1;
        bool ok = n >= 0;
        for (int k = 1; ok && k <= n; k++)
            ok = (p[k] & 0xc0) == 0x80;
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n + 1;
    }
    return s;
}

void gw__send_json(httpd_req_t *req, int code, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (!s) /* never expected: strings are cleaned before packing */
        s = xstrdup("{\"error\":{\"message\":\"internal error building the response\",\"type\":\"server_error\"}}");
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n++] = '\n';
    httpd_add_header(req, "Content-Type", "application/json");
    httpd_reply(req, code, s, n);
    free(s);
    json_decref(body);
}

json_t *gw__oai_error(const char *message, const char *type, const char *code)
{
    return json_pack("{s:{s:s,s:s,s:n,s:s?}}", "error", "message", message, "type", type, "param", "code", code);
}

void gw__send_error(httpd_req_t *req, int http, const char *type, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    gw__utf8_clean(msg);
    if (http == 503)
        httpd_add_header(req, "Retry-After", "5");
    else if (http == 429)
        httpd_add_header(req, "Retry-After", "1");
    gw__send_json(req, http, gw__oai_error(msg, type, code));
}
