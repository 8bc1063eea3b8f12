/*
 * util.c — allocation, buffers, number parsing, atomic file writes.
 */
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void oom(void)
{
    fputs("variet: out of memory\n", stderr);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        oom();
    return p;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void err_prefix(char *err, size_t errlen, const char *fmt, ...)
{
    if (!errlen)
        return;
    char *was = xstrdup(err);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < errlen)
        snprintf(err + n, errlen - (size_t)n, ": %s", was);
    free(was);
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom();
    char *p = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void buf_init(buf_t *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void buf_free(buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_reset(buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = 0;
}

static int buf_grow(buf_t *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        return -E2BIG;
    size_t need = b->len + extra;
    if (b->max && need > b->max)
        return -E2BIG;
    if (need + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need + 1)
            cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    return 0;
}

int buf_append(buf_t *b, const void *p, size_t n)
{
    int rc = buf_grow(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    int rc = buf_grow(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void buf_consume(buf_t *b, size_t n)
{
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = 0;
}

/* strto* skip leading whitespace: refuse it, or " -1" would slip past the
 * '-' checks below and wrap to a huge unsigned value. */
static bool num_start_ok(const char *s) { return s && *s && !isspace((unsigned char)*s); }

bool parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!num_start_ok(s))
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!num_start_ok(s) || *s == '-')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return false;
    *out = v;
    return true;
}

bool parse_f64(const char *s, double *out)
{
    if (!num_start_ok(s))
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool parse_size(const char *s, uint64_t *out)
{
    if (!num_start_ok(s) || *s == '-')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return false;
    uint64_t mul = 1;
    switch (*end) {
    case 0: break;
    case 'k': case 'K': mul = 1ull << 10; end++; break;
    case 'm': case 'M': mul = 1ull << 20; end++; break;
    case 'g': case 'G': mul = 1ull << 30; end++; break;
    default: return false;
    }
    if (*end == 'i' || *end == 'B')
        end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
    if (*end || v > UINT64_MAX / mul)
        return false;
    *out = v * mul;
    return true;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Remove "<base>.tmp.<pid>" files in dir whose writer is gone (killed
 * between link and rename, or by an older Variet that wrote temp files
 * under their name). */
static void clean_stale_temps(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t bl = strlen(base);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (strncmp(n, base, bl) || strncmp(n + bl, ".tmp.", 5))
            continue;
        int64_t pid;
        if (!parse_i64(n + bl + 5, 1, INT32_MAX, &pid) || pid == getpid())
            continue;
        if (kill((pid_t)pid, 0) == -1 && errno == ESRCH) {
            char *full = xasprintf("%s/%s", dir, n);
            unlink(full);
            free(full);
        }
    }
    closedir(d);
}

int file_write_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen)
{
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    char *dcopy = xstrdup(path), *bcopy = xstrdup(path);
    const char *dir = dirname(dcopy), *base = basename(bcopy);
    int fd = -1, rc = 0;
    bool named = false; /* tmp exists on disk and must go on failure */

    clean_stale_temps(dir, base);
    /* An unnamed file (O_TMPFILE) gets a name only once it is complete, a
     * moment before the rename: a writer killed while writing leaves
     * nothing behind. Filesystems without O_TMPFILE get a named temp. */
    fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        goto out;
    }
    if (fd >= 0 && ((rc = write_all(fd, data, len)) || (fsync(fd) < 0 && (rc = -errno)))) {
        snprintf(err, errlen, "%s: write: %s", path, strerror(-rc));
        goto out;
    }
    if (fd >= 0) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        unlink(tmp); /* a leftover of a reused pid */
        if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0) {
            named = true;
        } else {
            close(fd); /* no /proc: write a named temp instead */
            fd = -1;
        }
    }
    if (!named) {
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            rc = -errno;
            snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
            goto out;
        }
        named = true;
        if ((rc = write_all(fd, data, len)) || (fsync(fd) < 0 && (rc = -errno))) {
            snprintf(err, errlen, "%s: write: %s", tmp, strerror(-rc));
            goto out;
        }
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) < 0) {
        rc = -errno;
        snprintf(err, errlen, "rename %s -> %s: %s", tmp, path, strerror(errno));
        goto out;
    }
    named = false;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
out:
    if (fd >= 0)
        close(fd);
    if (named)
        unlink(tmp);
    free(tmp);
    free(dcopy);
    free(bcopy);
    return rc;
}

int file_read_all(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    buf_t b;
    char chunk[65536];
    int rc = 0;

    *out = NULL;
    if (!f) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return rc;
    }
    buf_init(&b, max);
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (buf_append(&b, chunk, n)) {
            snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
            rc = -E2BIG;
            break;
        }
    }
    if (!rc && ferror(f)) {
        rc = -EIO;
        snprintf(err, errlen, "%s: read error", path);
    }
    fclose(f);
    if (rc) {
        buf_free(&b);
        return rc;
    }
    if (!b.data)
        buf_append(&b, "", 0);
    *out = b.data;
    if (len)
        *len = b.len;
    return 0;
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *fmt_bytes(uint64_t n, char *buf, size_t cap)
{
    static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    if (i == 0)
        snprintf(buf, cap, "%llu B", (unsigned long long)n);
    else
        snprintf(buf, cap, "%.2f %s", v, u[i]);
    return buf;
}

int file_make_parent(const char *path, char *err, size_t errlen)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash && slash != dir) {
        *slash = 0;
        for (char *p = dir + 1;; p++) {
            if (*p && *p != '/')
                continue;
            char c = *p;
            *p = 0;
            struct stat st;
            if (stat(dir, &st) != 0 && mkdir(dir, 0777) != 0 && errno != EEXIST) {
                rc = -errno;
                snprintf(err, errlen, "%s: cannot create the folder %s: %s", path, dir, strerror(errno));
                break;
            }
            if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
                rc = -ENOTDIR;
                snprintf(err, errlen, "%s: %s is not a folder", path, dir);
                break;
            }
            *p = c;
            if (!c)
                break;
        }
    }
    free(dir);
    return rc;
}
