/*
 * hw.c — hardware probe. The parsers (nvidia-smi CSV, /proc/meminfo), the
 * PCIe bandwidth table and the warnings are pure and come first; the I/O
 * (NVML through dlopen, nvidia-smi through popen, sysconf) comes last and
 * only fills an hw_info_t that the pure part reads. See hw.h for the
 * sources, their order and the test overrides.
 *
 * NVML is declared here by hand (a handful of types and prototypes, from
 * NVML's public API reference) so that building Variet needs no driver, no
 * CUDA toolkit and no header; a machine without the library simply falls
 * through to nvidia-smi and then to "no GPU".
 */
#include "hw.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

void hw_info_init(hw_info_t *hw)
{
    memset(hw, 0, sizeof *hw);
    hw->source = HW_SRC_NONE;
    hw->ram_total_mib = -1;
    hw->ram_avail_mib = -1;
}

const char *hw_source_name(hw_source_t s)
{
    switch (s) {
    case HW_SRC_NVML: return "nvml";
    case HW_SRC_SMI: return "nvidia-smi";
    case HW_SRC_NONE: break;
    }
    return "none";
}

/* ---- PCIe bandwidth ---------------------------------------------------- */

/* Per lane, per direction, after encoding: Gen1/2 8b/10b, Gen3-5 128b/130b,
 * Gen6 PAM4 + FLIT (the commonly quoted 7.563 GB/s). */
static const double lane_gbps[] = {0, 0.25, 0.5, 0.985, 1.969, 3.938, 7.563};

double hw_pcie_lane_gbps(int gen)
{
    if (gen < 1 || gen >= (int)(sizeof lane_gbps / sizeof lane_gbps[0]))
        return 0;
    return lane_gbps[gen];
}

double hw_pcie_gbps(int gen, int width)
{
    if (width <= 0)
        return 0;
    return hw_pcie_lane_gbps(gen) * width;
}

/* ---- nvidia-smi CSV ---------------------------------------------------- */

enum { F_INDEX, F_NAME, F_MEM_TOTAL, F_MEM_USED, F_MEM_FREE, F_GEN_CUR, F_WIDTH_CUR, F_GEN_MAX, F_WIDTH_MAX,
       F_N, F_IGNORE = F_N };

static const struct {
    const char *name;
    int field;
} smi_cols[] = {
    {"index", F_INDEX},
    {"name", F_NAME},
    {"memory.total", F_MEM_TOTAL},
    {"memory.used", F_MEM_USED},
    {"memory.free", F_MEM_FREE},
    {"pcie.link.gen.current", F_GEN_CUR},
    {"pcie.link.gen.gpucurrent", F_GEN_CUR},
    {"pcie.link.width.current", F_WIDTH_CUR},
    {"pcie.link.gen.max", F_GEN_MAX},
    {"pcie.link.gen.gpumax", F_GEN_MAX},
    {"pcie.link.width.max", F_WIDTH_MAX},
};

/* HW_SMI_FIELDS, i.e. the column order of a `noheader` CSV. */
static const int smi_default_order[F_N] = {F_INDEX,   F_NAME,      F_MEM_TOTAL, F_MEM_USED, F_MEM_FREE,
                                           F_GEN_CUR, F_WIDTH_CUR, F_GEN_MAX,   F_WIDTH_MAX};

#define SMI_MAX_COLS 32
#define SMI_MAX_LINE 1024

static const char *col_label(int field)
{
    for (size_t i = 0; i < sizeof smi_cols / sizeof smi_cols[0]; i++)
        if (smi_cols[i].field == field)
            return smi_cols[i].name;
    return "?";
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
    return s;
}

/* Split line (modified in place) at commas; trimmed fields. */
static int split_csv(char *line, char **f, int max)
{
    int n = 0;
    for (char *p = line;;) {
        char *c = strchr(p, ',');
        if (n == max)
            return max + 1;
        if (c)
            *c = 0;
        f[n++] = trim(p);
        if (!c)
            return n;
        p = c + 1;
    }
}

static bool is_unknown(const char *v)
{
    return v[0] == '[' || !strcasecmp(v, "N/A") || !v[0];
}

/* A header cell: "memory.total [MiB]" → F_MEM_TOTAL. */
static int header_field(char *cell)
{
    char *br = strchr(cell, '[');
    if (br)
        *br = 0;
    cell = trim(cell);
    for (size_t i = 0; i < sizeof smi_cols / sizeof smi_cols[0]; i++)
        if (!strcasecmp(cell, smi_cols[i].name))
            return smi_cols[i].field;
    return F_IGNORE;
}

/* A number with an optional unit (" MiB") or lane suffix ("16x", "x16"). */
static bool parse_num(char *v, int64_t max, int64_t *out)
{
    size_t n = strlen(v);
    if (n > 3 && !strcasecmp(v + n - 3, "MiB"))
        v[n -= 3] = 0;
    else if (n > 1 && (v[n - 1] == 'x' || v[n - 1] == 'X'))
        v[--n] = 0;
    else if (n > 1 && (v[0] == 'x' || v[0] == 'X'))
        v++;
    return parse_i64(trim(v), 0, max, out);
}

static int set_field(hw_gpu_t *g, int field, char *v, int line, char *err, size_t errlen)
{
    if (field == F_IGNORE)
        return 0;
    if (field == F_NAME) {
        snprintf(g->name, sizeof g->name, "%s", v);
        return 0;
    }
    if (is_unknown(v)) {
        if (field == F_INDEX) {
            snprintf(err, errlen, "nvidia-smi CSV line %d: GPU index is '%s'", line, v);
            return -EINVAL;
        }
        return 0; /* stays unknown: -1 / 0 from the caller's init */
    }
    char orig[64];
    snprintf(orig, sizeof orig, "%s", v);
    int64_t x, max = field == F_INDEX ? 1 << 20
                     : field <= F_MEM_FREE ? (int64_t)1 << 40
                     : field == F_GEN_CUR || field == F_GEN_MAX ? 32
                     : 64;
    if (!parse_num(v, max, &x)) {
        snprintf(err, errlen, "nvidia-smi CSV line %d, column %s: '%s' is not a number in 0..%lld", line,
                 col_label(field), orig, (long long)max);
        return -EINVAL;
    }
    switch (field) {
    case F_INDEX: g->index = (int)x; break;
    case F_MEM_TOTAL: g->mem_total_mib = x; break;
    case F_MEM_USED: g->mem_used_mib = x; break;
    case F_MEM_FREE: g->mem_free_mib = x; break;
    case F_GEN_CUR: g->gen_cur = (int)x; break;
    case F_GEN_MAX: g->gen_max = (int)x; break;
    case F_WIDTH_CUR: g->width_cur = (int)x; break;
    case F_WIDTH_MAX: g->width_max = (int)x; break;
    }
    return 0;
}

static void gpu_init(hw_gpu_t *g)
{
    memset(g, 0, sizeof *g);
    g->mem_total_mib = g->mem_used_mib = g->mem_free_mib = -1;
}

int hw_parse_smi_csv(const char *text, size_t len, hw_info_t *out, char *err, size_t errlen)
{
    int map[SMI_MAX_COLS], n_cols = F_N;
    memcpy(map, smi_default_order, sizeof smi_default_order);
    bool first = true;
    int line_no = 0;
    out->n_gpu = 0;

    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        const char *start = text + pos;
        pos += n + (nl != NULL);
        line_no++;
        while (n && (start[n - 1] == '\r' || start[n - 1] == ' '))
            n--;
        if (!n)
            continue;
        if (n >= SMI_MAX_LINE) {
            snprintf(err, errlen, "nvidia-smi CSV line %d: longer than %d bytes", line_no, SMI_MAX_LINE);
            goto fail;
        }
        char line[SMI_MAX_LINE], copy[SMI_MAX_LINE];
        memcpy(line, start, n);
        line[n] = 0;
        if (memchr(line, 0, n)) {
            snprintf(err, errlen, "nvidia-smi CSV line %d: NUL byte", line_no);
            goto fail;
        }
        memcpy(copy, line, n + 1);
        char *f[SMI_MAX_COLS];
        int nf = split_csv(line, f, SMI_MAX_COLS);

        if (first) {
            first = false;
            char h0[64];
            snprintf(h0, sizeof h0, "%s", f[0]);
            if (header_field(h0) == F_INDEX) { /* a header: columns by name */
                if (nf > SMI_MAX_COLS) {
                    snprintf(err, errlen, "nvidia-smi CSV line %d: more than %d columns", line_no,
                             SMI_MAX_COLS);
                    goto fail;
                }
                for (int i = 0; i < nf; i++)
                    map[i] = header_field(f[i]);
                n_cols = nf;
                continue;
            }
        }
        if (nf != n_cols) {
            if (nf > SMI_MAX_COLS)
                snprintf(err, errlen, "nvidia-smi CSV line %d: more than %d fields: '%.120s'", line_no,
                         SMI_MAX_COLS, copy);
            else
                snprintf(err, errlen, "nvidia-smi CSV line %d: expected %d fields (%s), got %d: '%.120s'",
                         line_no, n_cols, n_cols == F_N ? HW_SMI_FIELDS : "as in the header", nf, copy);
            goto fail;
        }
        if (out->n_gpu == HW_MAX_GPU) {
            snprintf(err, errlen, "nvidia-smi CSV line %d: more than %d GPUs", line_no, HW_MAX_GPU);
            goto fail;
        }
        hw_gpu_t *g = &out->gpu[out->n_gpu];
        gpu_init(g);
        g->index = out->n_gpu;
        for (int i = 0; i < nf; i++)
            if (set_field(g, map[i], f[i], line_no, err, errlen))
                goto fail;
        out->n_gpu++;
    }
    return 0;
fail:
    out->n_gpu = 0;
    return -EINVAL;
}

/* ---- /proc/meminfo ----------------------------------------------------- */

/* "Key:   123456 kB" → MiB; false if absent/malformed. */
static bool meminfo_key(const char *text, size_t len, const char *key, int64_t *mib, bool *malformed)
{
    size_t kl = strlen(key);
    for (size_t pos = 0; pos < len;) {
        const char *ln = text + pos;
        const char *nl = memchr(ln, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - ln) : len - pos;
        pos += n + (nl != NULL);
        if (n <= kl || memcmp(ln, key, kl) || ln[kl] != ':')
            continue;
        char v[64];
        size_t vn = n - kl - 1;
        if (vn >= sizeof v) {
            *malformed = true;
            return false;
        }
        memcpy(v, ln + kl + 1, vn);
        v[vn] = 0;
        char *s = trim(v);
        size_t sl = strlen(s);
        if (sl > 2 && !strcmp(s + sl - 2, "kB"))
            s[sl - 2] = 0;
        int64_t kb;
        if (!parse_i64(trim(s), 0, INT64_MAX, &kb)) {
            *malformed = true;
            return false;
        }
        *mib = kb / 1024;
        return true;
    }
    return false;
}

int hw_parse_meminfo(const char *text, size_t len, hw_info_t *out, char *err, size_t errlen)
{
    bool bad = false;
    int64_t total, avail;
    if (!meminfo_key(text, len, "MemTotal", &total, &bad)) {
        snprintf(err, errlen, "meminfo: MemTotal %s", bad ? "is not a number of kB" : "is missing");
        return -EINVAL;
    }
    out->ram_total_mib = total;
    out->ram_avail_mib = -1;
    if (meminfo_key(text, len, "MemAvailable", &avail, &bad) || meminfo_key(text, len, "MemFree", &avail, &bad))
        out->ram_avail_mib = avail;
    return 0;
}

/* ---- CPU list -------------------------------------------------------- */

int hw_parse_cpulist(const char *s)
{
    int64_t count = 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        char *end;
        errno = 0;
        long a = strtol(p, &end, 10), b;
        if (end == p || errno || a < 0 || a > (1 << 20))
            return -EINVAL;
        p = end;
        if (*p == '-') {
            const char *q = p + 1;
            b = strtol(q, &end, 10);
            if (end == q || errno || b < a || b > (1 << 20))
                return -EINVAL;
            p = end;
        } else {
            b = a;
        }
        count += b - a + 1;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == ',')
            p++;
        else if (*p)
            return -EINVAL;
    }
    return count > INT32_MAX ? -EINVAL : (int)count;
}

/* ---- warnings ---------------------------------------------------------- */

static void link_text(int gen, int width, char *buf, size_t cap)
{
    char g[16], w[16];
    if (gen)
        snprintf(g, sizeof g, "Gen%d", gen);
    else
        snprintf(g, sizeof g, "Gen?");
    if (width)
        snprintf(w, sizeof w, "x%d", width);
    else
        snprintf(w, sizeof w, "x?");
    snprintf(buf, cap, "%s %s", g, w);
}

static void gbps_text(double v, char *buf, size_t cap)
{
    snprintf(buf, cap, v < 10 ? "%.2f GB/s" : "%.1f GB/s", v);
}

/* The link a GPU can have: its maximum where known, else what it runs at. */
static void link_cap(const hw_gpu_t *g, int *gen, int *width)
{
    *gen = g->gen_max ? g->gen_max : g->gen_cur;
    *width = g->width_max ? g->width_max : g->width_cur;
}

static int add_warn(hw_warn_t *w, int n, int max, hw_warn_kind_t kind, int g0, int g1)
{
    if (n >= max)
        return -1;
    w[n].kind = kind;
    w[n].gpu[0] = g0;
    w[n].gpu[1] = g1;
    w[n].text[0] = 0;
    return n;
}

int hw_warnings(const hw_info_t *hw, hw_warn_t *w, int max)
{
    int n = 0;
    for (int i = 0; i < hw->n_gpu; i++) {
        const hw_gpu_t *g = &hw->gpu[i];
        if (!g->gen_cur || !g->gen_max || !g->width_cur || !g->width_max)
            continue;
        bool slow_gen = g->gen_cur < g->gen_max, narrow = g->width_cur < g->width_max;
        if (!slow_gen && !narrow)
            continue;
        int k = add_warn(w, n, max, HW_WARN_LINK_BELOW_MAX, g->index, -1);
        if (k < 0)
            return n;
        char now[32], top[32], a[32], b[32];
        link_text(g->gen_cur, g->width_cur, now, sizeof now);
        link_text(g->gen_max, g->width_max, top, sizeof top);
        gbps_text(hw_pcie_gbps(g->gen_cur, g->width_cur), a, sizeof a);
        gbps_text(hw_pcie_gbps(g->gen_max, g->width_max), b, sizeof b);
        const char *why = !narrow ? "idle GPUs lower their link speed — check under load"
                          : slow_gen ? "idle GPUs lower their link speed, but fewer lanes than the maximum "
                                       "points at the slot, a riser or the BIOS"
                                     : "fewer lanes than the maximum points at the slot, a riser or the BIOS";
        snprintf(w[k].text, sizeof w[k].text, "GPU %d link runs at %s = %s (max %s = %s); %s", g->index, now, a,
                 top, b, why);
        n++;
    }

    /* Links that differ: each GPU slower than the fastest one, by what its
     * link can do (the current one drops at idle). */
    int fast = -1;
    double fast_bw = 0;
    for (int i = 0; i < hw->n_gpu; i++) {
        int gen, width;
        link_cap(&hw->gpu[i], &gen, &width);
        double bw = hw_pcie_gbps(gen, width);
        if (bw > fast_bw * 1.001) {
            fast_bw = bw;
            fast = i;
        }
    }
    for (int i = 0; fast >= 0 && i < hw->n_gpu; i++) {
        int gen, width, fgen, fwidth;
        link_cap(&hw->gpu[i], &gen, &width);
        double bw = hw_pcie_gbps(gen, width);
        if (bw <= 0 || bw * 1.01 >= fast_bw)
            continue;
        int k = add_warn(w, n, max, HW_WARN_LINKS_DIFFER, hw->gpu[i].index, hw->gpu[fast].index);
        if (k < 0)
            return n;
        link_cap(&hw->gpu[fast], &fgen, &fwidth);
        char l1[32], l2[32], b1[32], b2[32], ratio[32];
        link_text(gen, width, l1, sizeof l1);
        link_text(fgen, fwidth, l2, sizeof l2);
        gbps_text(bw, b1, sizeof b1);
        gbps_text(fast_bw, b2, sizeof b2);
        double r = fast_bw / bw;
        long ri = lround(r);
        if (fabs(r - (double)ri) < 0.02 * r)
            snprintf(ratio, sizeof ratio, "1/%ld", ri);
        else
            snprintf(ratio, sizeof ratio, "1/%.1f", r);
        snprintf(w[k].text, sizeof w[k].text,
                 "GPU %d link %s = %s beside GPU %d %s = %s (%s): every split across these GPUs "
                 "(layers or tensors) moves data over the slower link",
                 hw->gpu[i].index, l1, b1, hw->gpu[fast].index, l2, b2, ratio);
        n++;
    }
    return n;
}

/* ---- I/O: NVML --------------------------------------------------------- */

typedef int nvml_return_t; /* NVML_SUCCESS = 0 */
typedef struct nvml_device *nvml_device_t;
typedef struct {
    unsigned long long total, free, used;
} nvml_memory_t;
typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvml_memory_v2_t;
#define NVML_MEMORY_V2_VERSION ((unsigned int)(sizeof(nvml_memory_v2_t) | (2u << 24)))

typedef struct {
    void *lib;
    nvml_return_t (*init)(void);
    nvml_return_t (*shutdown)(void);
    nvml_return_t (*count)(unsigned int *);
    nvml_return_t (*handle)(unsigned int, nvml_device_t *);
    nvml_return_t (*name)(nvml_device_t, char *, unsigned int);
    nvml_return_t (*mem)(nvml_device_t, nvml_memory_t *);
    nvml_return_t (*mem_v2)(nvml_device_t, nvml_memory_v2_t *); /* optional */
    nvml_return_t (*gen_cur)(nvml_device_t, unsigned int *);
    nvml_return_t (*gen_max)(nvml_device_t, unsigned int *);
    nvml_return_t (*width_cur)(nvml_device_t, unsigned int *);
    nvml_return_t (*width_max)(nvml_device_t, unsigned int *);
    const char *(*error_string)(nvml_return_t); /* optional */
} nvml_api_t;

#define NVML_SYM(api, field, sym, required)                                                                      \
    do {                                                                                                         \
        void *sym_ = dlsym((api)->lib, sym); /* memcpy: ISO C has no void* → function pointer cast */        \
        memcpy(&(api)->field, &sym_, sizeof sym_);                                                               \
        if (!(api)->field && (required)) {                                                                       \
            snprintf(note, notelen, "NVML: %s lacks %s", "libnvidia-ml.so.1", sym);                              \
            return -ENOSYS;                                                                                      \
        }                                                                                                        \
    } while (0)

static int nvml_bind(nvml_api_t *api, char *note, size_t notelen)
{
    NVML_SYM(api, init, "nvmlInit_v2", true);
    NVML_SYM(api, shutdown, "nvmlShutdown", true);
    NVML_SYM(api, count, "nvmlDeviceGetCount_v2", true);
    NVML_SYM(api, handle, "nvmlDeviceGetHandleByIndex_v2", true);
    NVML_SYM(api, name, "nvmlDeviceGetName", true);
    NVML_SYM(api, mem, "nvmlDeviceGetMemoryInfo", true);
    NVML_SYM(api, mem_v2, "nvmlDeviceGetMemoryInfo_v2", false);
    NVML_SYM(api, gen_cur, "nvmlDeviceGetCurrPcieLinkGeneration", true);
    NVML_SYM(api, gen_max, "nvmlDeviceGetMaxPcieLinkGeneration", true);
    NVML_SYM(api, width_cur, "nvmlDeviceGetCurrPcieLinkWidth", true);
    NVML_SYM(api, width_max, "nvmlDeviceGetMaxPcieLinkWidth", true);
    NVML_SYM(api, error_string, "nvmlErrorString", false);
    return 0;
}

static const char *nvml_err(const nvml_api_t *api, nvml_return_t r, char *buf, size_t cap)
{
    const char *s = api->error_string ? api->error_string(r) : NULL;
    if (s)
        return s;
    snprintf(buf, cap, "error %d", r);
    return buf;
}

static int link_value(nvml_return_t (*fn)(nvml_device_t, unsigned int *), nvml_device_t d, int max)
{
    unsigned int v = 0;
    if (fn(d, &v) != 0 || v > (unsigned)max)
        return 0;
    return (int)v;
}

/* 0 with out->gpu filled, or negative with the reason in note. */
static int probe_nvml(hw_info_t *out, char *note, size_t notelen)
{
    nvml_api_t api = {0};
    char eb[32];
    api.lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!api.lib) {
        const char *e = dlerror();
        snprintf(note, notelen, "NVML: %s", e ? e : "libnvidia-ml.so.1 not found");
        return -ENOENT;
    }
    int rc = nvml_bind(&api, note, notelen);
    if (rc)
        goto out;
    nvml_return_t r = api.init();
    if (r != 0) {
        snprintf(note, notelen, "NVML: nvmlInit: %s", nvml_err(&api, r, eb, sizeof eb));
        rc = -EIO;
        goto out;
    }
    unsigned int count = 0;
    r = api.count(&count);
    if (r != 0) {
        snprintf(note, notelen, "NVML: nvmlDeviceGetCount: %s", nvml_err(&api, r, eb, sizeof eb));
        rc = -EIO;
        goto shutdown;
    }
    if (count > HW_MAX_GPU)
        count = HW_MAX_GPU;
    out->n_gpu = 0;
    for (unsigned int i = 0; i < count; i++) {
        nvml_device_t d;
        r = api.handle(i, &d);
        if (r != 0) {
            snprintf(note, notelen, "NVML: GPU %u: nvmlDeviceGetHandleByIndex: %s", i,
                     nvml_err(&api, r, eb, sizeof eb));
            rc = -EIO;
            goto shutdown;
        }
        hw_gpu_t *g = &out->gpu[out->n_gpu++];
        gpu_init(g);
        g->index = (int)i;
        if (api.name(d, g->name, sizeof g->name) != 0)
            snprintf(g->name, sizeof g->name, "?");
        g->name[sizeof g->name - 1] = 0;
        nvml_memory_v2_t m2 = {.version = NVML_MEMORY_V2_VERSION};
        nvml_memory_t m1;
        if (api.mem_v2 && api.mem_v2(d, &m2) == 0) {
            g->mem_total_mib = (int64_t)(m2.total >> 20);
            g->mem_used_mib = (int64_t)(m2.used >> 20);
            g->mem_free_mib = (int64_t)(m2.free >> 20);
        } else if (api.mem(d, &m1) == 0) {
            g->mem_total_mib = (int64_t)(m1.total >> 20);
            g->mem_used_mib = (int64_t)(m1.used >> 20);
            g->mem_free_mib = (int64_t)(m1.free >> 20);
        }
        g->gen_cur = link_value(api.gen_cur, d, 32);
        g->gen_max = link_value(api.gen_max, d, 32);
        g->width_cur = link_value(api.width_cur, d, 64);
        g->width_max = link_value(api.width_max, d, 64);
    }
    rc = 0;
shutdown:
    api.shutdown();
out:
    if (rc)
        out->n_gpu = 0;
    dlclose(api.lib);
    return rc;
}

/* ---- I/O: nvidia-smi --------------------------------------------------- */

static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        return false;
    char *copy = xstrdup(path), *save = NULL;
    bool found = false;
    for (char *dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
        char *p = xasprintf("%s/%s", *dir ? dir : ".", prog);
        found = access(p, X_OK) == 0;
        free(p);
    }
    free(copy);
    return found;
}

/* Runs nvidia-smi; note gets the reason on failure. popen waits for its own
 * child only: a caller that reaps with waitpid(-1) on SIGCHLD must not run
 * this from the event loop. */
static int probe_smi(hw_info_t *out, char *note, size_t notelen)
{
    if (!on_path("nvidia-smi")) {
        snprintf(note, notelen, "nvidia-smi: not on PATH");
        return -ENOENT;
    }
    FILE *p = popen("nvidia-smi --query-gpu=" HW_SMI_FIELDS " --format=csv,nounits 2>&1", "r");
    if (!p) {
        snprintf(note, notelen, "nvidia-smi: %s", strerror(errno));
        return -errno;
    }
    buf_t b;
    buf_init(&b, 1u << 20);
    char tmp[4096];
    size_t n;
    bool big = false;
    while ((n = fread(tmp, 1, sizeof tmp, p)) > 0)
        if (buf_append(&b, tmp, n))
            big = true; /* keep reading so the child is not stuck on a full pipe */
    int st = pclose(p);
    int rc = 0;
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        const char *t = b.data ? b.data : "";
        size_t l = strcspn(t, "\n");
        snprintf(note, notelen, "nvidia-smi: exit status %d: %.*s", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                 (int)(l > 200 ? 200 : l), t);
        rc = -EIO;
    } else if (big) {
        snprintf(note, notelen, "nvidia-smi: more than 1 MiB of output");
        rc = -E2BIG;
    } else {
        char e[256];
        if (hw_parse_smi_csv(b.data ? b.data : "", b.len, out, e, sizeof e)) {
            snprintf(note, notelen, "nvidia-smi: %s", e);
            rc = -EINVAL;
        }
    }
    buf_free(&b);
    return rc;
}

/* ---- I/O: host --------------------------------------------------------- */

static void probe_host(hw_info_t *out)
{
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    out->host_cpus = c > 0 ? c : 0;
    /* The affinity mask from /proc rather than sched_getaffinity: <sched.h>
     * would find the scheduler module's src/sched.h on the include path. */
    char *text = NULL, e[256];
    size_t len;
    if (file_read_all("/proc/self/status", 1u << 20, &text, &len, e, sizeof e) == 0) {
        const char *k = strstr(text, "\nCpus_allowed_list:");
        if (k) {
            k += strlen("\nCpus_allowed_list:");
            char list[4096];
            size_t n = strcspn(k, "\n");
            snprintf(list, sizeof list, "%.*s", (int)(n < sizeof list ? n : sizeof list - 1), k);
            int c2 = hw_parse_cpulist(list);
            out->host_cpus_usable = c2 > 0 ? c2 : 0;
        }
    }
    free(text);
    text = NULL;
    if (file_read_all("/proc/meminfo", 1u << 20, &text, &len, e, sizeof e) == 0)
        (void)hw_parse_meminfo(text, len, out, e, sizeof e); /* unknown stays -1 */
    free(text);
}

static void note_add(hw_info_t *out, const char *s)
{
    size_t l = strlen(out->note);
    snprintf(out->note + l, sizeof out->note - l, "%s%s", l ? "; " : "", s);
}

int hw_probe(hw_info_t *out, char *err, size_t errlen)
{
    hw_info_init(out);
    probe_host(out);

    const char *csv = getenv("VARIET_HW_SMI_CSV");
    if (csv && *csv) {
        char *text = NULL, e[256];
        size_t len;
        int rc = file_read_all(csv, 1u << 20, &text, &len, e, sizeof e);
        if (rc) {
            snprintf(err, errlen, "VARIET_HW_SMI_CSV: %s", e);
            return rc;
        }
        rc = hw_parse_smi_csv(text, len, out, e, sizeof e);
        free(text);
        if (rc) {
            snprintf(err, errlen, "VARIET_HW_SMI_CSV=%s: %s", csv, e);
            return rc;
        }
        out->source = HW_SRC_SMI;
        char *s = xasprintf("read from VARIET_HW_SMI_CSV=%s", csv);
        note_add(out, s);
        free(s);
        return 0;
    }

    char note[HW_NOTE_LEN];
    const char *no_nvml = getenv("VARIET_HW_NO_NVML");
    if (no_nvml && *no_nvml && strcmp(no_nvml, "0")) {
        note_add(out, "NVML: skipped (VARIET_HW_NO_NVML)");
    } else if (probe_nvml(out, note, sizeof note) == 0) {
        out->source = HW_SRC_NVML;
        return 0;
    } else {
        note_add(out, note);
    }
    if (probe_smi(out, note, sizeof note) == 0) {
        out->source = HW_SRC_SMI;
        return 0;
    }
    note_add(out, note);
    out->n_gpu = 0;
    out->source = HW_SRC_NONE;
    return 0;
}
