/*
 * hw.h — what the machine has: GPUs (name, memory, PCIe link now and at
 * most, the link's bandwidth) and the host (CPUs, RAM).
 *
 * Where the facts come from, first that answers:
 *   1. NVML, loaded at run time: dlopen("libnvidia-ml.so.1"); no build-time
 *      dependency on the driver or its headers.
 *   2. `nvidia-smi --query-gpu=HW_SMI_FIELDS --format=csv,nounits`, only if
 *      nvidia-smi is on PATH.
 *   3. none: no GPU (not an error).
 * Host: CPUs from sysconf and the affinity mask (/proc/self/status), RAM
 * from /proc/meminfo.
 *
 * Test overrides (environment):
 *   VARIET_HW_SMI_CSV=PATH  hw_probe reads that file as nvidia-smi's CSV
 *                           output and runs nothing (neither NVML nor
 *                           nvidia-smi); a missing or malformed file is an
 *                           error.
 *   VARIET_HW_NO_NVML=1     skip NVML (go straight to nvidia-smi).
 *
 * nvidia-smi CSV, as recorded (../shared/fixtures/gpu/h100-x1/nvidia-smi-query.csv):
 *   index, name, memory.total [MiB], memory.used [MiB], memory.free [MiB],
 *   pcie.link.gen.current, pcie.link.width.current, pcie.link.gen.max, pcie.link.width.max
 *   0, NVIDIA H100 80GB HBM3, 81559 MiB, 0 MiB, 81079 MiB, 5, 16, 5, 16
 * Fields are ", "-separated and unquoted. With a header line, columns are
 * found by name (any order, unknown columns ignored); without one
 * (`noheader`) they are taken in HW_SMI_FIELDS order. Units (" MiB") may
 * be present or not (`nounits`). A value nvidia-smi cannot give reads
 * "[N/A]", "[Not Supported]", "[Unknown Error]"…: any bracketed value, or
 * a bare "N/A", is "unknown".
 *
 * Memory: NVML's v2 memory query (used by nvidia-smi) counts driver-reserved
 * memory apart, so "used" is what processes use and total − used − free is
 * the reserved part (480 MiB on an H100 with driver 580).
 */
#ifndef VARIET_HW_H
#define VARIET_HW_H

#include <stddef.h>
#include <stdint.h>

/* The columns hw_probe asks nvidia-smi for, in the recorded order. */
#define HW_SMI_FIELDS                                                                                     \
    "index,name,memory.total,memory.used,memory.free,pcie.link.gen.current,pcie.link.width.current,"      \
    "pcie.link.gen.max,pcie.link.width.max"

#define HW_MAX_GPU 64
#define HW_NAME_LEN 96 /* NVML_DEVICE_NAME_V2_BUFFER_SIZE */
#define HW_NOTE_LEN 512
#define HW_WARN_LEN 320
#define HW_MAX_WARN (2 * HW_MAX_GPU)

typedef enum { HW_SRC_NONE = 0, HW_SRC_NVML, HW_SRC_SMI } hw_source_t;

/* One GPU. Unknown values: memory -1, PCIe generation/width 0. */
typedef struct {
    int index;
    char name[HW_NAME_LEN];
    int64_t mem_total_mib, mem_used_mib, mem_free_mib;
    int gen_cur, gen_max;     /* PCIe generation 1..6 */
    int width_cur, width_max; /* lanes: 1, 2, 4, 8, 16 */
} hw_gpu_t;

typedef struct {
    hw_source_t source;
    char note[HW_NOTE_LEN]; /* how the source was chosen: why NVML/nvidia-smi were passed over */
    int n_gpu;
    hw_gpu_t gpu[HW_MAX_GPU];
    long host_cpus;          /* online CPUs; 0 unknown */
    long host_cpus_usable;   /* CPUs in this process's affinity mask; 0 unknown */
    int64_t ram_total_mib;   /* MemTotal; -1 unknown */
    int64_t ram_avail_mib;   /* MemAvailable (MemFree on old kernels); -1 unknown */
} hw_info_t;

typedef enum {
    HW_WARN_LINK_BELOW_MAX, /* gpu[0] runs its link below its maximum */
    HW_WARN_LINKS_DIFFER,   /* gpu[0]'s link is slower than gpu[1]'s */
} hw_warn_kind_t;

typedef struct {
    hw_warn_kind_t kind;
    int gpu[2]; /* GPU indices (hw_gpu_t.index) the warning names; -1 if unused */
    char text[HW_WARN_LEN];
} hw_warn_t;

/* Set every field to "unknown", n_gpu 0, source none. */
void hw_info_init(hw_info_t *hw);

/* "nvml", "nvidia-smi", "none". */
const char *hw_source_name(hw_source_t s);

/* GB/s one PCIe lane carries per direction, after line encoding (Gen1 0.25,
 * Gen2 0.5, Gen3 0.985, Gen4 1.969, Gen5 3.938, Gen6 7.563); 0 for an
 * unknown generation. */
double hw_pcie_lane_gbps(int gen);
/* lane × width; 0 if either is unknown. Gen4 x16 = 31.5, Gen3 x4 = 3.94. */
double hw_pcie_gbps(int gen, int width);

/* Parse nvidia-smi's CSV (see the top of this file) into out->gpu/n_gpu;
 * other fields of out are left as they are. Returns 0, or -EINVAL with a
 * message naming the line (and field) in err. Empty text: 0 GPUs. */
int hw_parse_smi_csv(const char *text, size_t len, hw_info_t *out, char *err, size_t errlen);

/* Parse /proc/meminfo text into out->ram_total_mib / ram_avail_mib.
 * Returns 0, or -EINVAL if MemTotal is missing or malformed. */
int hw_parse_meminfo(const char *text, size_t len, hw_info_t *out, char *err, size_t errlen);

/* Count the CPUs in a Linux CPU list ("0-15,32-47" → 32; the format of
 * /proc/self/status Cpus_allowed_list). Returns the count, or -EINVAL. */
int hw_parse_cpulist(const char *s);

/* The warnings a person needs, written into w[0..max); returns how many
 * (at most max). Pure: reads only hw.
 *  - a GPU whose link runs below its maximum (idle GPUs lower the link
 *    generation, so the text says to check under load; fewer lanes than the
 *    maximum points at the slot instead);
 *  - a GPU whose link (at its maximum) is slower than the fastest GPU's:
 *    every split of a model across GPUs moves data over the slower link. */
int hw_warnings(const hw_info_t *hw, hw_warn_t *w, int max);

/* Probe the machine (NVML → nvidia-smi → none; host CPUs and RAM). Always
 * fills out, and no GPU is not an error: out->source says what answered
 * and out->note why the others did not. Returns 0, or a negative errno
 * only when the VARIET_HW_SMI_CSV override is set and its file cannot be
 * read or parsed (err says which). */
int hw_probe(hw_info_t *out, char *err, size_t errlen);

#endif
