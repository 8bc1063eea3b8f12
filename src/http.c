/*
 * http.c — HTTP/1.x request framing (see http.h).
 *
 * The head is copied once into its own storage and cut into NUL-terminated
 * strings in place; every check that decides how many bytes belong to the
 * request (Content-Length, Transfer-Encoding) is strict, because a proxy
 * that frames a request differently from its client is how request
 * smuggling starts. What is only informational is lenient (bare LF, bytes
 * >= 0x80 in the target).
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

size_t http_head_end(const char *d, size_t len, size_t *scan)
{
    size_t i = *scan;
    if (i == 0) {
        /* empty lines before the request line are ignored (RFC 9112 2.2) */
        while (i < len && (d[i] == '\r' || d[i] == '\n'))
            i++;
        if (i == len)
            return 0;
    }
    for (; i < len; i++) {
        if (d[i] != '\n')
            continue;
        if (i + 1 < len && d[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && d[i + 1] == '\r' && d[i + 2] == '\n')
            return i + 3;
        if (i + 1 == len || (i + 2 == len && d[i + 1] == '\r')) {
            *scan = i; /* decide when more bytes are in */
            return 0;
        }
    }
    *scan = i;
    return 0;
}

static int bad(char *err, size_t errlen, int status, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return status;
}

/* Next line of s (cut at '\n', a CR before it dropped): NULL at the end;
 * *cr_bad set when a CR appears anywhere else. */
static char *next_line(char **s, char *end, bool *cr_bad)
{
    if (*s >= end)
        return NULL;
    char *line = *s;
    char *nl = memchr(line, '\n', (size_t)(end - line));
    char *stop = nl ? nl : end;
    *s = nl ? nl + 1 : end;
    if (stop > line && stop[-1] == '\r')
        stop--;
    *stop = 0;
    if (memchr(line, '\r', (size_t)(stop - line)))
        *cr_bad = true;
    return line;
}

/* Comma-separated list elements of v, trimmed, into cb; false stops. */
typedef bool (*elem_cb)(const char *e, size_t n, void *ud);
static bool each_elem(const char *v, elem_cb cb, void *ud)
{
    while (*v) {
        while (is_ows(*v) || *v == ',')
            v++;
        if (!*v)
            break;
        const char *e = v;
        while (*v && *v != ',')
            v++;
        const char *t = v;
        while (t > e && is_ows(t[-1]))
            t--;
        if (!cb(e, (size_t)(t - e), ud))
            return false;
    }
    return true;
}

typedef struct {
    bool seen, bad;
    uint64_t v;
} cl_t;

static bool cl_elem(const char *e, size_t n, void *ud)
{
    cl_t *c = ud;
    uint64_t v = 0;
    if (n == 0 || n > 19) {
        c->bad = true;
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (e[i] < '0' || e[i] > '9') {
            c->bad = true;
            return false;
        }
        v = v * 10 + (uint64_t)(e[i] - '0');
    }
    if (c->seen && c->v != v) {
        c->bad = true;
        return false;
    }
    c->seen = true;
    c->v = v;
    return true;
}

typedef struct {
    int chunked; /* times "chunked" was listed */
    bool other;  /* another coding */
    int n;
} te_t;

static bool te_elem(const char *e, size_t n, void *ud)
{
    te_t *t = ud;
    t->n++;
    if (n == 7 && !strncasecmp(e, "chunked", 7))
        t->chunked++;
    else
        t->other = true;
    return true;
}

typedef struct {
    bool close, keep;
} conn_t;

static bool conn_elem(const char *e, size_t n, void *ud)
{
    conn_t *c = ud;
    if (n == 5 && !strncasecmp(e, "close", 5))
        c->close = true;
    else if (n == 10 && !strncasecmp(e, "keep-alive", 10))
        c->keep = true;
    return true;
}

static http_method_t method_of(const char *m)
{
    if (!strcmp(m, "GET"))
        return HTTP_GET;
    if (!strcmp(m, "POST"))
        return HTTP_POST;
    if (!strcmp(m, "HEAD"))
        return HTTP_HEAD;
    if (!strcmp(m, "OPTIONS"))
        return HTTP_OPTIONS;
    return HTTP_OTHER;
}

int http_parse_head(const char *data, size_t len, uint64_t max_body, http_head_t *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    h->store = xmalloc(len + 1);
    memcpy(h->store, data, len);
    h->store[len] = 0;
    char *s = h->store, *end = h->store + len;
    bool cr_bad = false;
    int rc;

    while (s < end && (*s == '\r' || *s == '\n'))
        s++;
    /* request line */
    char *line = next_line(&s, end, &cr_bad);
    if (!line || cr_bad) {
        rc = bad(err, errlen, 400, "malformed request line");
        goto fail;
    }
    char *p = line;
    while (is_tchar((unsigned char)*p))
        p++;
    if (p == line || *p != ' ') {
        rc = bad(err, errlen, 400, "malformed request line (method)");
        goto fail;
    }
    *p++ = 0;
    h->method_name = line;
    h->method = method_of(line);
    char *target = p;
    while (*p && *p != ' ') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x21 || c == 0x7f) {
            rc = bad(err, errlen, 400, "control character in the request target");
            goto fail;
        }
        p++;
    }
    if (p == target || *p != ' ') {
        rc = bad(err, errlen, 400, "malformed request line (target)");
        goto fail;
    }
    *p++ = 0;
    if (strncmp(p, "HTTP/", 5) || p[5] < '0' || p[5] > '9' || p[6] != '.' || p[7] < '0' || p[7] > '9' || p[8]) {
        rc = bad(err, errlen, 400, "malformed request line (version)");
        goto fail;
    }
    if (p[5] != '1') {
        rc = bad(err, errlen, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
        goto fail;
    }
    h->minor = p[7] == '0' ? 0 : 1;
    /* origin-form target, and the authority of an absolute-form one */
    const char *otarget = NULL, *auth = NULL;
    size_t olen = 0, alen = 0;
    bool slash_prefix = false;
    if (target[0] == '/' || (!strcmp(target, "*") && h->method == HTTP_OPTIONS)) {
        otarget = target;
        olen = strlen(target);
    } else if (!strncasecmp(target, "http://", 7) || !strncasecmp(target, "https://", 8)) {
        auth = strstr(target, "//") + 2;
        alen = strcspn(auth, "/?");
        if (!alen) {
            rc = bad(err, errlen, 400, "absolute-form target without a host");
            goto fail;
        }
        otarget = auth + alen;
        olen = strlen(otarget);
        slash_prefix = *otarget != '/'; /* "http://h" or "http://h?q": path "/" */
    } else {
        rc = bad(err, errlen, 400, "request target must start with '/'");
        goto fail;
    }
    /* aux: target \0 path \0 query \0 authority \0 */
    {
        size_t tl = olen + slash_prefix;
        char *a = h->aux = xmalloc(2 * (tl + 1) + alen + 2);
        char *t = a;
        if (slash_prefix)
            *a++ = '/';
        memcpy(a, otarget, olen);
        a += olen;
        *a++ = 0;
        h->target = t;
        char *pq = a;
        memcpy(pq, t, tl + 1);
        a += tl + 1;
        h->path = pq;
        char *qm = strchr(pq, '?');
        if (qm) {
            *qm = 0;
            h->query = qm + 1;
        }
        if (auth) {
            memcpy(a, auth, alen);
            a[alen] = 0;
            h->host = a;
        }
    }

    /* header fields */
    cl_t cl = {0};
    te_t te = {0};
    conn_t cn = {0};
    int hosts = 0;
    while ((line = next_line(&s, end, &cr_bad)) != NULL) {
        if (cr_bad) {
            rc = bad(err, errlen, 400, "bare CR in the request head");
            goto fail;
        }
        if (!*line)
            break; /* the blank line */
        if (is_ows(*line)) {
            rc = bad(err, errlen, 400, "obsolete line folding in a header");
            goto fail;
        }
        char *q = line;
        while (is_tchar((unsigned char)*q))
            q++;
        if (q == line || *q != ':') {
            rc = bad(err, errlen, 400, is_ows(*q) ? "whitespace before ':' in a header" : "malformed header line");
            goto fail;
        }
        *q++ = 0;
        while (is_ows(*q))
            q++;
        char *v = q, *ve = q + strlen(q);
        for (char *c = v; c < ve; c++) {
            unsigned char u = (unsigned char)*c;
            if ((u < 0x20 && u != '\t') || u == 0x7f) {
                rc = bad(err, errlen, 400, "control character in a header value");
                goto fail;
            }
        }
        while (ve > v && is_ows(ve[-1]))
            ve--;
        *ve = 0;
        if (h->n_headers == HTTP_MAX_HEADERS) {
            rc = bad(err, errlen, 431, "too many header fields");
            goto fail;
        }
        h->headers[h->n_headers].name = line;
        h->headers[h->n_headers].value = v;
        h->n_headers++;
        if (!strcasecmp(line, "Content-Length")) {
            each_elem(v, cl_elem, &cl);
            if (cl.bad || !cl.seen) {
                rc = bad(err, errlen, 400, "invalid or conflicting Content-Length");
                goto fail;
            }
        } else if (!strcasecmp(line, "Transfer-Encoding")) {
            each_elem(v, te_elem, &te);
        } else if (!strcasecmp(line, "Host")) {
            hosts++;
            if (!auth) /* the absolute-form authority wins */
                h->host = v;
        } else if (!strcasecmp(line, "Connection")) {
            each_elem(v, conn_elem, &cn);
        } else if (!strcasecmp(line, "Expect")) {
            if (strcasecmp(v, "100-continue")) {
                rc = bad(err, errlen, 417, "only 'Expect: 100-continue' is supported");
                goto fail;
            }
            h->expect_continue = true;
        }
    }
    if (te.n || te.chunked) {
        if (h->minor == 0) {
            rc = bad(err, errlen, 400, "Transfer-Encoding in an HTTP/1.0 request");
            goto fail;
        }
        if (te.other) {
            rc = bad(err, errlen, 501, "Transfer-Encoding other than 'chunked' is not supported");
            goto fail;
        }
        if (te.chunked != 1) {
            rc = bad(err, errlen, 400, "invalid Transfer-Encoding");
            goto fail;
        }
        if (cl.seen) {
            rc = bad(err, errlen, 400, "both Content-Length and Transfer-Encoding");
            goto fail;
        }
        h->chunked = true;
    }
    if (hosts > 1) {
        rc = bad(err, errlen, 400, "more than one Host header");
        goto fail;
    }
    if (!auth && !hosts && h->minor == 1) {
        rc = bad(err, errlen, 400, "HTTP/1.1 request without Host");
        goto fail;
    }
    if (cl.seen && cl.v > max_body) {
        rc = bad(err, errlen, 413, "request body larger than max_body");
        goto fail;
    }
    h->content_length = cl.seen ? cl.v : 0;
    h->keep_alive = !cn.close && (h->minor == 1 || cn.keep);
    return 0;

fail:
    free(h->store);
    free(h->aux);
    memset(h, 0, sizeof *h);
    return rc;
}

void http_head_free(http_head_t *h)
{
    if (!h)
        return;
    free(h->store);
    free(h->aux);
    memset(h, 0, sizeof *h);
}

const char *http_head_get(const http_head_t *h, const char *name)
{
    for (size_t i = 0; i < h->n_headers; i++)
        if (!strcasecmp(h->headers[i].name, name))
            return h->headers[i].value;
    return NULL;
}

/* ---- chunked bodies ---- */

enum {
    C_SIZE0,   /* first hex digit of a size line */
    C_SIZE,    /* more digits */
    C_SIZE_WS, /* spaces after the digits */
    C_EXT,     /* chunk extension, up to the end of the line */
    C_SIZE_LF, /* CR seen, LF due */
    C_DATA,
    C_DATA_END, /* CR or LF after the data */
    C_DATA_LF,  /* LF after the data's CR */
    C_TRAILER,  /* start of a trailer line (or the final blank line) */
    C_TRAILER_LINE,
    C_END_LF, /* CR of the final blank line seen, LF due */
    C_DONE,
};

#define CHUNK_LINE_MAX 4096

void http_chunked_init(http_chunked_t *c, uint64_t max_body, size_t max_trailer)
{
    memset(c, 0, sizeof *c);
    c->state = C_SIZE0;
    c->max = max_body;
    c->max_trailer = max_trailer;
}

bool http_chunked_done(const http_chunked_t *c) { return c->state == C_DONE; }

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

long http_chunked_feed(http_chunked_t *c, const char *data, size_t len,
                       void (*emit)(void *ud, const char *p, size_t n), void *ud, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < len && c->state != C_DONE) {
        char ch = data[i];
        switch (c->state) {
        case C_DATA: {
            size_t n = len - i;
            if ((uint64_t)n > c->left)
                n = (size_t)c->left;
            emit(ud, data + i, n);
            c->left -= n;
            i += n;
            if (!c->left)
                c->state = C_DATA_END;
            continue;
        }
        case C_SIZE0:
        case C_SIZE: {
            int v = hexval(ch);
            if (v >= 0) {
                if (++c->digits > 16) {
                    snprintf(err, errlen, "chunk size too long");
                    return -413;
                }
                c->left = (c->left << 4) | (uint64_t)v;
                c->state = C_SIZE;
                break;
            }
            if (c->state == C_SIZE0) {
                snprintf(err, errlen, "invalid chunk size");
                return -400;
            }
            if (is_ows(ch))
                c->state = C_SIZE_WS;
            else if (ch == ';')
                c->state = C_EXT;
            else if (ch == '\r')
                c->state = C_SIZE_LF;
            else if (ch == '\n')
                goto size_done;
            else {
                snprintf(err, errlen, "invalid chunk size");
                return -400;
            }
            break;
        }
        case C_SIZE_WS:
            if (is_ows(ch))
                break;
            if (ch == ';')
                c->state = C_EXT;
            else if (ch == '\r')
                c->state = C_SIZE_LF;
            else if (ch == '\n')
                goto size_done;
            else {
                snprintf(err, errlen, "invalid chunk size line");
                return -400;
            }
            break;
        case C_EXT:
            if (ch == '\r')
                c->state = C_SIZE_LF;
            else if (ch == '\n')
                goto size_done;
            else if (((unsigned char)ch < 0x20 && ch != '\t') || ch == 0x7f) {
                snprintf(err, errlen, "control character in a chunk extension");
                return -400;
            }
            break;
        case C_SIZE_LF:
            if (ch != '\n') {
                snprintf(err, errlen, "bare CR in a chunk size line");
                return -400;
            }
        size_done:
            if (c->left > c->max - c->total) {
                snprintf(err, errlen, "request body larger than max_body");
                return -413;
            }
            c->total += c->left;
            c->line = 0;
            c->digits = 0;
            c->state = c->left ? C_DATA : C_TRAILER;
            i++;
            continue;
        case C_DATA_END:
            if (ch == '\r')
                c->state = C_DATA_LF;
            else if (ch == '\n')
                c->state = C_SIZE0;
            else {
                snprintf(err, errlen, "chunk data longer than its size");
                return -400;
            }
            break;
        case C_DATA_LF:
            if (ch != '\n') {
                snprintf(err, errlen, "chunk data longer than its size");
                return -400;
            }
            c->state = C_SIZE0;
            break;
        case C_TRAILER:
            if (ch == '\n')
                c->state = C_DONE;
            else if (ch == '\r')
                c->state = C_END_LF;
            else
                c->state = C_TRAILER_LINE;
            break;
        case C_TRAILER_LINE:
            if (ch == '\n')
                c->state = C_TRAILER;
            break;
        case C_END_LF:
            if (ch != '\n') {
                snprintf(err, errlen, "bare CR after the last chunk");
                return -400;
            }
            c->state = C_DONE;
            break;
        }
        if (c->state == C_SIZE || c->state == C_SIZE_WS || c->state == C_EXT || c->state == C_SIZE_LF) {
            if (++c->line > CHUNK_LINE_MAX) {
                snprintf(err, errlen, "chunk size line too long");
                return -400;
            }
        }
        if (c->state == C_TRAILER_LINE || c->state == C_TRAILER || c->state == C_END_LF) {
            if (++c->trailer > c->max_trailer) {
                snprintf(err, errlen, "chunked trailer larger than max_header");
                return -431;
            }
        }
        i++;
    }
    return (long)i;
}

/* ---- small helpers ---- */

bool http_query_get(const char *query, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *q = query; q && *q;) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        if (n > kl && !strncmp(q, key, kl) && q[kl] == '=') {
            size_t vl = n - kl - 1;
            if (vl >= cap)
                return false;
            memcpy(out, q + kl + 1, vl);
            out[vl] = 0;
            return true;
        }
        q = amp ? amp + 1 : NULL;
    }
    return false;
}

const char *http_reason(int code)
{
    switch (code) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    }
    return "Unknown";
}
