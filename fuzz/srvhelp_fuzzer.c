/*
 * srvhelp_fuzzer.c — libFuzzer target for the llama-server help parser.
 *
 * The input is read four ways. As `--help` text (srvhelp_parse): a refusal
 * leaves *out NULL and one line of text; an accepted help has options with
 * well-formed spellings, each found again by srvhelp_find, value counts
 * 0..2 matching the hint, choices within bounds. Then the input's own
 * words are a role's args: srvhelp_check returns -1 or an index in range
 * with a one-line message, and srvhelp_migrate (with the build and without)
 * changes nothing more when applied to its own output, its changes in
 * order and inside the input. As `--version` text: a bounded version and a
 * build >= -1. As a cache entry: a parsed entry formats and parses again to
 * the same fields; and the input as help inside an entry comes back
 * byte for byte.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "srvhelp.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "srvhelp_fuzzer: invariant broken: %s\n", what);
        abort();
    }
}

static void one_line(const char *err)
{
    must(strchr(err, '\n') == NULL, "an error is one line");
}

static void same_vec(char **a, size_t na, char **b, size_t nb)
{
    must(na == nb, "idempotent: length");
    for (size_t i = 0; i < na; i++)
        must(!strcmp(a[i], b[i]), "idempotent: tokens");
    must(a[na] == NULL && b[nb] == NULL, "NULL-terminated");
}

static void migrate_twice(const srvhelp_t *h, char *const *argv, size_t n)
{
    char **v, **v2;
    size_t nv, nv2;
    srvhelp_change_t *ch, *ch2;
    size_t nc = srvhelp_migrate(h, argv, n, &v, &nv, &ch);
    must((nc == 0) == (ch == NULL), "changes NULL iff none");
    size_t last = 0;
    for (size_t i = 0; i < nc; i++) {
        must(ch[i].at + ch[i].n_from <= n && ch[i].n_from >= 1, "change inside the input");
        must(i == 0 || ch[i].at >= last, "changes in order");
        must(ch[i].from && ch[i].to && ch[i].why, "change strings");
        last = ch[i].at + ch[i].n_from;
    }
    must(nv <= 2 * n, "bounded growth");
    size_t nc2 = srvhelp_migrate(h, v, nv, &v2, &nv2, &ch2);
    if (nc2) {
        fprintf(stderr, "second migration changed '%s' -> '%s'\n", ch2[0].from, ch2[0].to);
        must(0, "migration is idempotent");
    }
    same_vec(v, nv, v2, nv2);
    if (h) {
        char err[256];
        long bad = srvhelp_check(h, v, nv, err, sizeof err);
        must(bad >= -1 && bad < (long)nv, "check of migrated args in range");
    }
    srvhelp_changes_free(&ch, nc);
    args_free(&v);
    args_free(&v2);
}

static void check_help(const srvhelp_t *h, const uint8_t *data, size_t size)
{
    must(h->n_opts >= 1, "at least one option");
    for (size_t k = 0; k < h->n_opts; k++) {
        const srvhelp_opt_t *o = &h->opts[k];
        must(o->n_spell >= 1 && o->spell && o->spell[o->n_spell] == NULL, "spellings");
        for (size_t s = 0; s < o->n_spell; s++) {
            const char *sp = o->spell[s];
            must(sp[0] == '-' && strlen(sp) >= 2 && strlen(sp) <= 64, "spelling shape");
            if (!strchr(sp, '_')) {
                const srvhelp_opt_t *f = srvhelp_find(h, sp, strlen(sp));
                must(f != NULL, "every spelling found");
                bool has = false;
                for (size_t t = 0; t < f->n_spell; t++)
                    has |= !strcmp(f->spell[t], sp);
                must(has, "found option has the spelling");
            }
        }
        must(o->n_values >= 0 && o->n_values <= 2, "value count");
        must((o->hint == NULL) == (o->n_values == 0), "hint iff values");
        must(o->n_choices <= 64 && (!o->strict || o->n_choices > 0), "choices");
        must(o->help && o->section, "strings");
        must(strlen(o->help) < 4096, "help bounded");
    }

    /* the input's words as a role's args */
    char *text = xstrndup((const char *)data, size);
    char *argv[64];
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(text, " \t\r\n", &save); t && n < 64;
         t = strtok_r(NULL, " \t\r\n", &save))
        argv[n++] = t;
    char err[256];
    err[0] = 0;
    long bad = srvhelp_check(h, argv, n, err, sizeof err);
    must(bad >= -1 && bad < (long)n, "check in range");
    if (bad >= 0) {
        must(err[0] != 0, "an error has text");
        one_line(err);
    }
    migrate_twice(h, argv, n);
    migrate_twice(NULL, argv, n);
    free(text);

    /* every spelling with a value: the checker walks it */
    char *all[64];
    size_t m = 0;
    for (size_t k = 0; k < h->n_opts && m + 3 <= 64; k++) {
        all[m++] = h->opts[k].spell[0];
        for (int v = 0; v < h->opts[k].n_values; v++)
            all[m++] = "1";
    }
    bad = srvhelp_check(h, all, m, err, sizeof err);
    must(bad >= -1 && bad < (long)m, "check of spellings in range");
    migrate_twice(h, all, m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    srvhelp_t *h = NULL;
    char err[512];
    err[0] = 0;
    if (srvhelp_parse((const char *)data, size, &h, err, sizeof err) == 0) {
        must(h != NULL, "*out set on success");
        check_help(h, data, size);
        srvhelp_free(&h);
        must(h == NULL, "free NULLs");
    } else {
        must(h == NULL, "*out NULL on error");
        must(err[0] != 0, "an error has text");
        one_line(err);
    }

    char ver[128];
    long build = -2;
    if (srvhelp_parse_version((const char *)data, size, ver, sizeof ver, &build))
        must(strlen(ver) < 128, "version bounded");
    must(build >= -1, "build");

    srvhelp_key_t k;
    size_t exe_len, help_len, len;
    const char *help;
    if (srvhelp_cache_parse((const char *)data, size, &k, &exe_len, ver, sizeof ver, &help, &help_len) == 0) {
        must(help >= (const char *)data && help + help_len == (const char *)data + size, "help span");
        char *exe = xstrndup(k.exe, exe_len);
        srvhelp_key_t k2 = k;
        k2.exe = exe;
        char *e = srvhelp_cache_format(&k2, ver, help, help_len, &len);
        must(e != NULL, "a parsed entry formats");
        srvhelp_key_t k3;
        size_t exe3, help3;
        const char *hp3;
        char ver3[128];
        must(srvhelp_cache_parse(e, len, &k3, &exe3, ver3, sizeof ver3, &hp3, &help3) == 0,
             "a formatted entry parses");
        must(exe3 == exe_len && !memcmp(k3.exe, exe, exe_len) && k3.size == k.size &&
                 k3.ino == k.ino && k3.mtime_s == k.mtime_s && k3.mtime_ns == k.mtime_ns &&
                 !strcmp(ver3, ver) && help3 == help_len && !memcmp(hp3, help, help_len),
             "entry round trip");
        free(e);
        free(exe);
    }
    srvhelp_key_t key = {.exe = "/usr/bin/llama-server", .size = size, .ino = 1, .mtime_s = 2, .mtime_ns = 3};
    char *e = srvhelp_cache_format(&key, "0.7.0 (build 11669, commit Debian)", (const char *)data, size, &len);
    must(e != NULL, "entry of any help");
    must(srvhelp_cache_parse(e, len, &k, &exe_len, ver, sizeof ver, &help, &help_len) == 0 &&
             help_len == size && !memcmp(help, data, size),
         "any help comes back from an entry");
    free(e);
    return 0;
}
