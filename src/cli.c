/*
 * cli.c — option tables: parsing, synopses, --help lines, and the search
 * for engine_models.json. Subcommands declare what they take (cmd.h); this
 * file turns argv into values once, so every command parses, describes and
 * finds its configuration the same way.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int n_opts(const cli_opt_t *opts)
{
    int n = 0;
    while (opts && opts[n].name)
        n++;
    return n;
}

int cli_opt_index(const cli_opt_t *opts, const char *name)
{
    for (int i = 0; opts && opts[i].name; i++)
        if (!strcmp(opts[i].name, name))
            return i;
    return -1;
}

/* The option a word names (long form, "--long=value" or "-a"), or -1;
 * *inline_val gets the text after '=' for the "--long=value" form. */
static int find_word(const cli_opt_t *opts, const char *w, const char **inline_val)
{
    *inline_val = NULL;
    if (w[1] != '-') {
        if (!w[1] || w[2])
            return -1;
        for (int i = 0; opts && opts[i].name; i++)
            if (opts[i].alias && opts[i].alias == w[1])
                return i;
        return -1;
    }
    const char *eq = strchr(w, '=');
    size_t len = eq ? (size_t)(eq - w) : strlen(w);
    for (int i = 0; opts && opts[i].name; i++)
        if (strlen(opts[i].name) == len && !strncmp(opts[i].name, w, len)) {
            if (eq)
                *inline_val = eq + 1;
            return i;
        }
    return -1;
}

int cli_parse(const cli_opt_t *opts, bool rest, int argc, char **argv, cli_args_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (n_opts(opts) > CLI_MAX_OPTS) {
        snprintf(err, errlen, "option table too large");
        return -EINVAL;
    }
    bool options = true;
    for (int i = 1; i < argc; i++) {
        char *w = argv[i];
        if (options && !strcmp(w, "--")) {
            if (rest) {
                out->rest = argv + i + 1;
                out->n_rest = argc - i - 1;
                break;
            }
            options = false;
            continue;
        }
        if (options && w[0] == '-' && w[1]) {
            const char *iv;
            int k = find_word(opts, w, &iv);
            if (k < 0) {
                snprintf(err, errlen, "unknown option '%s'", w);
                return -EINVAL;
            }
            if (!opts[k].value) {
                if (iv) {
                    snprintf(err, errlen, "%s takes no value", opts[k].name);
                    return -EINVAL;
                }
                out->val[k] = "";
            } else if (iv) {
                out->val[k] = iv;
            } else if (i + 1 < argc) {
                out->val[k] = argv[++i];
            } else {
                snprintf(err, errlen, "%s needs a value (%s)", opts[k].name, opts[k].value);
                return -EINVAL;
            }
            continue;
        }
        if (out->n_pos == CLI_MAX_POS) {
            snprintf(err, errlen, "too many arguments ('%s')", w);
            return -EINVAL;
        }
        out->pos[out->n_pos++] = w;
    }
    return 0;
}

void cli_synopsis(buf_t *b, const char *prefix, const char *pos_usage, const cli_opt_t *opts, const char *rest_usage)
{
    buf_printf(b, "%s", prefix);
    if (pos_usage && *pos_usage)
        buf_printf(b, " %s", pos_usage);
    for (int i = 0; opts && opts[i].name; i++) {
        if (opts[i].flags & CLI_OPT_IN_USAGE)
            continue;
        if (opts[i].value)
            buf_printf(b, " [%s %s]", opts[i].name, opts[i].value);
        else
            buf_printf(b, " [%s]", opts[i].name);
    }
    if (rest_usage && *rest_usage)
        buf_printf(b, " %s", rest_usage);
}

void cli_options_help(buf_t *b, const cli_opt_t *opts)
{
    for (int i = 0; opts && opts[i].name; i++) {
        char left[96];
        char alias[8] = "    ";
        if (opts[i].alias)
            snprintf(alias, sizeof alias, "-%c, ", opts[i].alias);
        snprintf(left, sizeof left, "%s%s%s%s", alias, opts[i].name, opts[i].value ? " " : "",
                 opts[i].value ? opts[i].value : "");
        if (strlen(left) <= 26)
            buf_printf(b, "  %-26s  %s\n", left, opts[i].help ? opts[i].help : "");
        else
            buf_printf(b, "  %s\n  %-26s  %s\n", left, "", opts[i].help ? opts[i].help : "");
    }
}

static const char *nonempty(const char *s) { return s && *s ? s : NULL; }

cli_config_src_t cli_config_src_env(const char *flag)
{
    cli_config_src_t s = {
        .flag = flag,
        .env = getenv("VARIET_CONFIG"),
        .cwd_name = "engine_models.json",
        .xdg = getenv("XDG_CONFIG_HOME"),
        .home = getenv("HOME"),
    };
    return s;
}

int cli_config_find(const cli_config_src_t *src, char **path, char *err, size_t errlen)
{
    *path = NULL;
    if (nonempty(src->flag)) {
        *path = xstrdup(src->flag);
        return 0;
    }
    if (nonempty(src->env)) {
        if (access(src->env, F_OK) == 0) {
            *path = xstrdup(src->env);
            return 0;
        }
        /* an explicit choice that points nowhere is not silently replaced */
        snprintf(err, errlen, "$VARIET_CONFIG is '%s': %s (unset it to look for ./engine_models.json and "
                              "~/.config/variet/engine_models.json)",
                 src->env, strerror(errno));
        return -ENOENT;
    }
    const char *cwd = nonempty(src->cwd_name) ? src->cwd_name : "engine_models.json";
    if (access(cwd, F_OK) == 0) {
        *path = xstrdup(cwd);
        return 0;
    }
    char *user = NULL;
    const char *user_why = "";
    if (nonempty(src->xdg))
        user = xasprintf("%s/variet/engine_models.json", src->xdg);
    else if (nonempty(src->home))
        user = xasprintf("%s/.config/variet/engine_models.json", src->home);
    else
        user_why = "~/.config/variet/engine_models.json (neither $XDG_CONFIG_HOME nor $HOME is set)";
    if (user && access(user, F_OK) == 0) {
        *path = user;
        return 0;
    }
    char here[512] = ".";
    if (!getcwd(here, sizeof here))
        snprintf(here, sizeof here, ".");
    snprintf(err, errlen,
             "no configuration file; looked for: --config FILE (not given), $VARIET_CONFIG (not set), %s/%s "
             "(not found), %s%s",
             here, cwd, user ? user : user_why, user ? " (not found)" : "");
    free(user);
    return -ENOENT;
}
