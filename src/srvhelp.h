/*
 * srvhelp.h — know the llama-server in use: the options its build has, read
 * from its own `--help`, and the args of a role checked and migrated against
 * them.
 *
 * The help text (llama.cpp's common_arg::to_string, b11669 recorded in
 * tests/fixtures/llama-server/llama-server-help-b11669.txt) is, line by line:
 *
 *   ----- common params -----               a section header
 *   -c,    --ctx-size N                     size of the prompt context (default: 0, ...)
 *                                           (env: LLAMA_ARG_CTX_SIZE)
 *   -kvo,  --kv-offload, -nkvo, --no-kv-offload
 *                                           whether to enable KV cache offloading ...
 *
 * An option line starts in column 0 with its spellings, separated by ", "
 * (the first padded to 7 columns), then one space and the value hint when it
 * takes a value ("N", "[on|off|auto]", "{none,layer,row,tensor}", "START END"
 * for two values); the description starts in column 40, or on the next line
 * when the left part is longer than 37 columns. Description lines are
 * indented by spaces and carry "(env: NAME)", "(default: ...)", "allowed
 * values: a, b, c", "- word: ..." bullets, "(DEPRECATED)", and for options a
 * build keeps only to refuse them, "the argument has been removed. use ...".
 * Anything else (blank lines, backend logs a GPU build prints) is skipped.
 *
 * What the build's own parser does (checked against b11669 by
 * tests/test_e2e_srvhelp.c): a value is always the next token, whatever it
 * looks like; "--opt=value" is not accepted; in tokens starting with "--",
 * '_' reads as '-'; any token that is not an option is "invalid argument";
 * {a,b}-listed values and "allowed values:" are the only ones accepted;
 * [a|b]-listed ones are not exhaustive (-fa also takes 1, true, enabled).
 */
#ifndef VARIET_SRVHELP_H
#define VARIET_SRVHELP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One option of the build. Every string is owned by the srvhelp_t. */
typedef struct {
    char **spell;       /* every spelling as printed ("-c", "--ctx-size"), n_spell >= 1 */
    size_t n_spell;
    char *hint;         /* value hint as printed ("N", "[on|off|auto]"); NULL for a flag */
    int n_values;       /* tokens it takes after it: 0 (flag), 1 or 2 */
    char **choices;     /* values listed in the hint or description, or NULL */
    size_t n_choices;
    bool strict;        /* the choices are the only values the build accepts */
    char *env;          /* environment variable ("LLAMA_ARG_CTX_SIZE") or NULL */
    char *def;          /* the default as printed ("0, 0 = loaded from model") or NULL */
    char *help;         /* description, lines joined by '\n' (may be "") */
    const char *section;/* "common params", ... (points into the srvhelp_t), or "" */
    bool removed;       /* listed only to be refused: help says what to use instead */
    bool deprecated;    /* "(DEPRECATED)": accepted, with a warning */
} srvhelp_opt_t;

/* What one build has. Free with srvhelp_free. */
typedef struct {
    srvhelp_opt_t *opts;
    size_t n_opts;
    char *version;      /* "0.7.0 (build 11669, commit Debian)", or NULL if unknown */
    long build;         /* 11669, or -1 if unknown */
    /* set by srvhelp_load only (NULL / false otherwise) */
    char *exe;          /* the binary's real path */
    char *cache_path;   /* the cache entry read or written, NULL if none */
    bool from_cache;    /* read from the cache, the binary was not run */
    char **sections;    /* section names (owned; opts[].section points here) */
    size_t n_sections;
    struct srvhelp__ix *ix; /* internal: spellings sorted, for srvhelp_find */
    size_t n_ix;
} srvhelp_t;

/* Parse `len` bytes of `llama-server --help` output (pure). On success
 * *out is a new srvhelp_t (caller frees with srvhelp_free; version unset)
 * and 0 is returned; text without a single option line gets -EINVAL and one
 * line in err, *out NULL. Input larger than SRVHELP_MAX_TEXT is refused. */
#define SRVHELP_MAX_TEXT (4u << 20)
int srvhelp_parse(const char *text, size_t len, srvhelp_t **out, char *err, size_t errlen);

/* Read `llama-server --version` output (pure): the text after "version: " on
 * the first line that starts so (cut at 127 bytes) into ver, and the build
 * number ("(build N" in 0.x versions, the leading number in older "version:
 * 4589 (2e2f8f09)") into *build (-1 if none). false when no such line. */
bool srvhelp_parse_version(const char *text, size_t len, char *ver, size_t cap, long *build);

/* Free h and everything it owns; NULL-safe; *h = NULL. */
void srvhelp_free(srvhelp_t **h);

/* The option spelled `name` (exactly `len` bytes; '_' read as '-' when it
 * starts with "--", as the build does), or NULL. */
const srvhelp_opt_t *srvhelp_find(const srvhelp_t *h, const char *name, size_t len);

/* The first of names (NULL-terminated) that the build lists as an option
 * it has (not only to refuse it), or NULL: which spelling of a renamed
 * option this build takes. Points into names. */
const char *srvhelp_first(const srvhelp_t *h, const char *const *names);

/* A short name for the build in messages: "build 11669", "version X", or
 * "this build" — points into h or a static string. */
const char *srvhelp_build_name(const srvhelp_t *h, char *buf, size_t cap);

/*
 * Checking and migrating a role's args.
 */

/* One rewrite srvhelp_migrate made: input tokens [at, at + n_from) were
 * replaced by `to` (space-joined tokens; "" when they were only removed). */
typedef struct {
    size_t at, n_from;
    char *from;         /* the input tokens, space-joined ("--mlock") */
    char *to;           /* what replaced them ("--load-mode mmap+mlock"), "" if dropped */
    char *why;          /* one line: the reason ("b11669 replaced --mlock ... with -lm") */
} srvhelp_change_t;

/* Rewrite argv by the migration table (pure):
 *   --mlock / --no-mmap / --mmap / -dio, --direct-io / -ndio, --no-direct-io
 *       -> one "--load-mode M", M from the old flags taken in order (mmap on
 *          and mlock off at the start): dio, else mmap+mlock / mmap /
 *          mlock / none; dropped when the args already set -lm/--load-mode
 *   -fa / --flash-attn without a value (last, or followed by an option)
 *       -> "-fa on" (the flag took no value before it took on|off|auto)
 *   --draft, --draft-n, --draft-max N -> --spec-draft-n-max N
 *   --draft-min, --draft-n-min N      -> --spec-draft-n-min N
 *   --slots-endpoint-disable          -> --no-slots
 *   --opt=value                       -> --opt value (the build reads no '=')
 * With h, a rule applies only where the build lacks the old spelling (or
 * lists it as removed) and has the new one (and, for --load-mode, the mode
 * among its listed choices); tokens are read with the build's arity, so a
 * value is never rewritten. With h NULL every rule applies and any token
 * starting with '-' (not a number) is read as an option.
 * *out gets a new NULL-terminated vector (free with args_free; *n_out
 * entries), *changes a new array (free with srvhelp_changes_free; NULL when
 * none). Returns the number of changes. Applying it twice changes nothing
 * more. */
size_t srvhelp_migrate(const srvhelp_t *h, char *const *argv, size_t n, char ***out,
                       size_t *n_out, srvhelp_change_t **changes);
void srvhelp_changes_free(srvhelp_change_t **changes, size_t n);

/* Check a role's args against the build h (pure). Returns -1 when the build
 * accepts them, else the index of the first bad token with one line in err
 * naming it and, when the migration table knows one, its replacement:
 *   "--mlock is not an option of this llama-server (build 11669); use --load-mode mmap+mlock"
 * Refused: tokens that are not options of the build (positional words
 * included), removed options (with the build's own advice), "--opt=value",
 * an option missing its value(s) or followed by another option where its
 * value should be, a value outside an option's strict choices. Then Variet's
 * own rules (args_check: options Variet sets, value domains) apply. */
long srvhelp_check(const srvhelp_t *h, char *const *argv, size_t n, char *err, size_t errlen);

/*
 * Reading the help of a binary, once per binary (I/O).
 */

typedef struct {
    const char *cache_dir; /* NULL: ${XDG_CACHE_HOME:-$HOME/.cache}/variet; "": no cache */
    double timeout_s;      /* limit for each of --version and --help; <= 0: 30 s */
    bool refresh;          /* ignore a cached entry (and write a new one) */
} srvhelp_load_opts_t;

/* The options of the llama-server at `exe`. The cache entry
 * <cache_dir>/llama-server-<hash>.help is keyed by the binary's real path,
 * size, mtime and inode: when it exists and matches, nothing is run.
 * Otherwise `exe --version` and `exe --help` are run (own process group,
 * stdin /dev/null, each killed after timeout_s), the help is parsed and the
 * entry written atomically (a cache that cannot be written is not an
 * error). The entry holds what the binary printed, not a second format:
 * re-parsing it costs well under a millisecond, and a fixed parser applies to
 * old entries too. o may be NULL (defaults).
 * Returns 0 and *out (caller frees with srvhelp_free), or a negative errno
 * with one line in err: no such binary (-ENOENT), not executable (-EACCES),
 * timed out (-ETIMEDOUT), exited non-zero or printed no llama-server options
 * (-EINVAL), output too large (-E2BIG). */
int srvhelp_load(const char *exe, const srvhelp_load_opts_t *o, srvhelp_t **out, char *err,
                 size_t errlen);

/* Load the help of `exe` (srvhelp_load, o may be NULL) and check args with
 * it (srvhelp_check). Returns 0 when the build accepts them; -EINVAL when it
 * does not, err naming the flag and its replacement (and *bad the index, if
 * bad is not NULL); another negative errno when the help could not be read
 * (err says why; the args were not checked, *bad = -1). */
int srvhelp_check_role(const char *exe, char *const *args, size_t n, const srvhelp_load_opts_t *o,
                       long *bad, char *err, size_t errlen);

/*
 * The cache entry format (pure; exposed for tests and the fuzzer):
 *
 *   variet-srvhelp 1
 *   exe /usr/bin/llama-server
 *   size 4759320
 *   mtime 1733084400.123456789
 *   inode 1234567
 *   version 0.7.0 (build 11669, commit Debian)     (empty when unknown)
 *   help 45870                                     (byte length of what follows)
 *   <the --help output, exactly that many bytes>
 */
typedef struct {
    const char *exe;    /* real path, no newline */
    uint64_t size, ino;
    int64_t mtime_s;
    long mtime_ns;
} srvhelp_key_t;

/* The entry text (caller frees), or NULL when exe or version holds a newline. */
char *srvhelp_cache_format(const srvhelp_key_t *k, const char *version, const char *help,
                           size_t help_len, size_t *len_out);
/* Parse an entry: 0 with *k (k->exe points into text, not terminated: its
 * length in *exe_len), the version (into ver, "" if none) and the help span
 * (pointing into text); -EINVAL on anything malformed. */
int srvhelp_cache_parse(const char *text, size_t len, srvhelp_key_t *k, size_t *exe_len,
                        char *ver, size_t vercap, const char **help, size_t *help_len);

#endif
