/*
 * cli.h — the command line's generic half: option tables, parsing against
 * them, synopses and --help text generated from them, and discovery of the
 * configuration file. Pure except cli_config_find (it checks which files
 * exist). The subcommand table that uses it is cmd.h / main.c.
 *
 * An option table is an array of cli_opt_t ending with {0}. Words are
 * parsed as: "--name VALUE", "--name=VALUE", "-a VALUE" (the one-letter
 * alias), "--flag"; "--" ends the options (the words after it are the
 * command's pass-through arguments when the table's user takes them, else
 * positionals); any other word starting with '-' (but "-" alone) is an
 * unknown option; every other word is a positional. A later occurrence of
 * an option replaces an earlier one.
 */
#ifndef VARIET_CLI_H
#define VARIET_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

#define CLI_MAX_OPTS 32
#define CLI_MAX_POS 8

enum {
    CLI_OPT_IN_USAGE = 1, /* shown by the positional part of the synopsis, not again in brackets */
};

typedef struct {
    const char *name;  /* long form with its dashes: "--runs" */
    char alias;        /* one-letter form ('o' for "-o"), 0 for none */
    const char *value; /* metavariable ("N", "FILE") when it takes a value; NULL for a flag */
    const char *help;  /* one line for --help */
    unsigned flags;    /* CLI_OPT_* */
} cli_opt_t;

typedef struct {
    /* per option of the table, by index: its value, "" for a given flag,
     * NULL when absent; the strings point into argv */
    const char *val[CLI_MAX_OPTS];
    char *pos[CLI_MAX_POS]; /* positionals, in order (into argv) */
    int n_pos;
    char **rest; /* the words after "--" when rest is taken (into argv), else NULL */
    int n_rest;
} cli_args_t;

/* Parse argv[1..argc-1] (argv[0] is the command's name) against `opts`.
 * `rest`: the words after "--" go to out->rest instead of the positionals.
 * 0, or -EINVAL with one line in err ("unknown option '--x'", "--runs needs
 * a value (N)", "--json takes no value", "too many arguments ('x')"). */
int cli_parse(const cli_opt_t *opts, bool rest, int argc, char **argv, cli_args_t *out, char *err, size_t errlen);

/* Index of the option called `name` (long form) in `opts`, or -1. */
int cli_opt_index(const cli_opt_t *opts, const char *name);

/* Append "PREFIX POSITIONALS [--opt VALUE] [--flag] ... [-- ARGS...]" to b:
 * every option not marked CLI_OPT_IN_USAGE, in table order. `rest_usage`
 * (NULL: none) is appended last, e.g. "[-- llama-server args...]". */
void cli_synopsis(buf_t *b, const char *prefix, const char *pos_usage, const cli_opt_t *opts, const char *rest_usage);

/* Append one line per option ("  -o, --output FILE   help") to b. */
void cli_options_help(buf_t *b, const cli_opt_t *opts);

/* Where a configuration file may come from, in the order they are tried.
 * NULL or "" means unset. */
typedef struct {
    const char *flag;     /* --config FILE: taken as given */
    const char *env;      /* $VARIET_CONFIG: taken as given, must exist */
    const char *cwd_name; /* "engine_models.json" in the working directory, used when it exists */
    const char *xdg;      /* $XDG_CONFIG_HOME: XDG/variet/engine_models.json when it exists */
    const char *home;     /* $HOME: HOME/.config/variet/engine_models.json when XDG is unset */
} cli_config_src_t;

/* The environment's sources: flag as given, $VARIET_CONFIG, "engine_models.json",
 * $XDG_CONFIG_HOME, $HOME. */
cli_config_src_t cli_config_src_env(const char *flag);

/* Pick the configuration file: the first of flag, env, cwd_name, the XDG
 * file that applies. 0 with *path (caller frees), or -ENOENT with one line
 * in err naming every place looked at and why it did not count. */
int cli_config_find(const cli_config_src_t *src, char **path, char *err, size_t errlen);

#endif
