/*
 * srvhelp.c — the options of the llama-server in use, from its --help (see
 * srvhelp.h for the text's layout and the build's parsing rules).
 *
 * Three parts. The parser (pure) walks the help line by line: a line in
 * column 0 starting with '-' opens an option (spellings, then the value
 * hint), indented lines add to its description, and when the option closes
 * its description is searched for env, default, choices and the removed /
 * deprecated markers. The checker and the migration table (pure) walk a
 * role's args the way the build does — each option takes exactly its number
 * of values, whatever they look like — and the migration rewrites spellings
 * the build no longer has into the ones that replaced them. The loader
 * (I/O) runs the binary with a timeout and keeps what it printed in a cache
 * entry keyed by the binary's identity, so a later run reads a file instead.
 */
#include "srvhelp.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "args.h"
#include "proc.h"
#include "util.h"

#define MAX_OPTS 4096
#define MAX_SPELL 16
#define MAX_SPELL_LEN 64
#define MAX_HINT 256
#define MAX_CHOICES 64
#define MAX_CHOICE_LEN 64
#define MAX_HELP 4096
#define MAX_SECTIONS 64
#define MAX_SECTION_LEN 64
#define DESC_COL 40

/* ------------------------------------------------------------------------
 * parser
 * ------------------------------------------------------------------------ */

static bool word_char(int c)
{
    return isalnum(c) || c == '_' || c == '.' || c == '+' || c == '-';
}

/* "-c", "--ctx-size", "-no-kvu": dashes, then a letter or digit, then word chars. */
static bool spelling_ok(const char *s, size_t len)
{
    size_t d = 0;
    while (d < len && d < 2 && s[d] == '-')
        d++;
    if (d == 0 || d >= len || len > MAX_SPELL_LEN || !isalnum((unsigned char)s[d]))
        return false;
    for (size_t i = d; i < len; i++)
        if (!word_char((unsigned char)s[i]))
            return false;
    return true;
}

static bool simple_word(const char *s, size_t len)
{
    if (len == 0 || len > MAX_CHOICE_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!word_char((unsigned char)s[i]))
            return false;
    return true;
}

typedef struct {
    srvhelp_t *h;
    size_t cap_opts;
    srvhelp_opt_t *cur;   /* the open option, or NULL */
    buf_t help;           /* its description lines */
    const char *section;
} pstate_t;

static void add_str(char ***v, size_t *n, const char *s, size_t len)
{
    *v = xrealloc(*v, (*n + 2) * sizeof **v);
    (*v)[(*n)++] = xstrndup(s, len);
    (*v)[*n] = NULL;
}

/* Split s[0..len) at `sep` into choices; all pieces must be simple words. */
static bool split_choices(const char *s, size_t len, char sep, char ***out, size_t *n_out)
{
    char **v = NULL;
    size_t n = 0;
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && s[j] != sep)
            j++;
        size_t a = i, b = j;
        while (a < b && s[a] == ' ')
            a++;
        while (b > a && s[b - 1] == ' ')
            b--;
        if (!simple_word(s + a, b - a) || n >= MAX_CHOICES) {
            for (size_t k = 0; k < n; k++)
                free(v[k]);
            free(v);
            return false;
        }
        add_str(&v, &n, s + a, b - a);
        i = j + 1;
    }
    *out = v;
    *n_out = n;
    return true;
}

static void free_choices(srvhelp_opt_t *o)
{
    for (size_t k = 0; k < o->n_choices; k++)
        free(o->choices[k]);
    free(o->choices);
    o->choices = NULL;
    o->n_choices = 0;
    o->strict = false;
}

/* Values listed in the hint: {a,b,c} (the only ones), [a|b|c] or <a|b> (listed). */
static void hint_choices(srvhelp_opt_t *o)
{
    const char *h = o->hint;
    size_t len = strlen(h);
    if (len < 3)
        return;
    if (h[0] == '{' && h[len - 1] == '}') {
        if (split_choices(h + 1, len - 2, ',', &o->choices, &o->n_choices))
            o->strict = true;
    } else if (((h[0] == '[' && h[len - 1] == ']') || (h[0] == '<' && h[len - 1] == '>')) &&
               memchr(h, '|', len)) {
        split_choices(h + 1, len - 2, '|', &o->choices, &o->n_choices);
    }
}

/* Words at bracket depth 0: "N" 1, "START END" 2, "<tensor name pattern>=<buffer type>,..." 1. */
static int hint_values(const char *h)
{
    int count = 0, depth = 0;
    bool in_word = false;
    for (const char *p = h; *p; p++) {
        if (strchr("<[{(", *p))
            depth++;
        else if (strchr(">]})", *p) && depth > 0)
            depth--;
        if (*p == ' ' && depth == 0)
            in_word = false;
        else if (!in_word) {
            in_word = true;
            count++;
        }
    }
    return count > 2 ? 2 : count < 1 ? 1 : count;
}

/* s[0..len) with quotes around it removed and spaces trimmed; NULL if empty. */
static char *clean_value(const char *s, size_t len)
{
    while (len && (*s == ' ' || *s == '\''))
        s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\'' || s[len - 1] == '.'))
        len--;
    if (len == 0)
        return NULL;
    if (len > MAX_HINT)
        len = MAX_HINT;
    return xstrndup(s, len);
}

/* "(default: X)" with nested parentheses, else "default: X" up to ',' or ')'. */
static char *find_default(const char *flat)
{
    const char *p = strstr(flat, "(default:");
    if (p) {
        p += strlen("(default:");
        int depth = 1;
        const char *q = p;
        for (; *q; q++) {
            if (*q == '(')
                depth++;
            else if (*q == ')' && --depth == 0)
                break;
        }
        return clean_value(p, (size_t)(q - p));
    }
    for (p = strstr(flat, "default: "); p; p = strstr(p + 1, "default: ")) {
        if (p != flat && p[-1] != ' ' && p[-1] != '(' && p[-1] != ',')
            continue;
        p += strlen("default: ");
        size_t len = strcspn(p, ",)(");
        return clean_value(p, len);
    }
    return NULL;
}

static char *find_env(const char *flat)
{
    const char *p = strstr(flat, "(env: ");
    if (!p)
        return NULL;
    p += strlen("(env: ");
    size_t len = 0;
    while (p[len] && (isupper((unsigned char)p[len]) || isdigit((unsigned char)p[len]) || p[len] == '_'))
        len++;
    if (len == 0 || p[len] != ')' || len > MAX_SPELL_LEN)
        return NULL;
    return xstrndup(p, len);
}

/* Close the open option: search its description. */
static void close_option(pstate_t *ps)
{
    srvhelp_opt_t *o = ps->cur;
    if (!o)
        return;
    ps->cur = NULL;
    buf_append(&ps->help, "", 0); /* terminated even when empty */
    o->help = xstrndup(ps->help.data, ps->help.len);
    buf_reset(&ps->help);

    char *flat = xstrdup(o->help);
    for (char *p = flat; *p; p++)
        if (*p == '\n')
            *p = ' ';
    o->env = find_env(flat);
    o->def = find_default(flat);
    o->removed = !strncmp(flat, "the argument has been removed", strlen("the argument has been removed"));
    o->deprecated = strstr(flat, "DEPRECATED") != NULL;
    free(flat);

    /* "allowed values: a, b, c" (one line): the only ones; else "- word:" bullets */
    for (const char *line = o->help; *line;) {
        size_t len = strcspn(line, "\n");
        static const char av[] = "allowed values: ";
        if (len > strlen(av) && !strncmp(line, av, strlen(av)) && o->hint) {
            char **v;
            size_t nv;
            if (split_choices(line + strlen(av), len - strlen(av), ',', &v, &nv)) {
                free_choices(o);
                o->choices = v;
                o->n_choices = nv;
                o->strict = true;
            }
            break;
        }
        line += len + (line[len] == '\n');
    }
    if (o->n_choices || !o->hint)
        return;
    for (const char *line = o->help; *line;) {
        size_t len = strcspn(line, "\n");
        if (len > 3 && line[0] == '-' && line[1] == ' ') {
            size_t w = 2;
            while (w < len && word_char((unsigned char)line[w]))
                w++;
            if (w < len && line[w] == ':' && simple_word(line + 2, w - 2) &&
                o->n_choices < MAX_CHOICES)
                add_str(&o->choices, &o->n_choices, line + 2, w - 2);
        }
        line += len + (line[len] == '\n');
    }
}

static void add_help_line(pstate_t *ps, const char *s, size_t len)
{
    while (len && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len == 0 || memchr(s, 0, len))
        return;
    if (ps->help.len + len + 1 > MAX_HELP)
        return;
    if (ps->help.len)
        buf_append(&ps->help, "\n", 1);
    buf_append(&ps->help, s, len);
}

static void free_opt(srvhelp_opt_t *o)
{
    for (size_t k = 0; k < o->n_spell; k++)
        free(o->spell[k]);
    free(o->spell);
    free(o->hint);
    free_choices(o);
    free(o->env);
    free(o->def);
    free(o->help);
}

/* A line in column 0 starting with '-': 0 when it opened an option, 1 when
 * it is not an option line (noise), -E2BIG past MAX_OPTS. */
static int option_line(pstate_t *ps, const char *line, size_t len)
{
    /* the left part ends at the first run of 2+ spaces that does not follow a comma */
    size_t gap = len;
    for (size_t i = 0; i + 1 < len; i++) {
        if (line[i] == ',') {
            while (i + 1 < len && line[i + 1] == ' ')
                i++;
            continue;
        }
        if (line[i] == ' ' && line[i + 1] == ' ') {
            gap = i;
            break;
        }
    }
    srvhelp_opt_t o = {0};
    size_t p = 0;
    while (p < gap) {
        while (p < gap && line[p] == ' ')
            p++;
        if (p >= gap)
            break;
        if (line[p] != '-')
            goto noise;
        size_t start = p;
        while (p < gap && line[p] != ',' && line[p] != ' ')
            p++;
        if (!spelling_ok(line + start, p - start) || o.n_spell >= MAX_SPELL)
            goto noise;
        add_str(&o.spell, &o.n_spell, line + start, p - start);
        if (p < gap && line[p] == ',') {
            p++;
            continue;
        }
        size_t a = p, b = gap;
        while (a < b && line[a] == ' ')
            a++;
        while (b > a && line[b - 1] == ' ')
            b--;
        if (b > a) {
            if (b - a > MAX_HINT || memchr(line + a, 0, b - a))
                goto noise;
            o.hint = xstrndup(line + a, b - a);
        }
        break;
    }
    if (o.n_spell == 0)
        goto noise;
    if (ps->h->n_opts >= MAX_OPTS) {
        free_opt(&o);
        return -E2BIG;
    }
    if (o.hint) {
        o.n_values = hint_values(o.hint);
        hint_choices(&o);
    }
    o.section = ps->section;
    if (ps->h->n_opts == ps->cap_opts) {
        ps->cap_opts = ps->cap_opts ? ps->cap_opts * 2 : 64;
        ps->h->opts = xrealloc(ps->h->opts, ps->cap_opts * sizeof *ps->h->opts);
    }
    ps->h->opts[ps->h->n_opts++] = o;
    ps->cur = &ps->h->opts[ps->h->n_opts - 1];
    if (gap < len)
        add_help_line(ps, line + gap, len - gap);
    return 0;
noise:
    free_opt(&o);
    return 1;
}

/* "----- common params -----" */
static void section_line(pstate_t *ps, const char *line, size_t len)
{
    srvhelp_t *h = ps->h;
    size_t a = 0, b = len;
    while (a < b && (line[a] == '-' || line[a] == ' '))
        a++;
    while (b > a && (line[b - 1] == '-' || line[b - 1] == ' '))
        b--;
    if (b - a > MAX_SECTION_LEN || memchr(line + a, 0, b - a) || h->n_sections >= MAX_SECTIONS)
        return;
    add_str(&h->sections, &h->n_sections, line + a, b - a);
    ps->section = h->sections[h->n_sections - 1];
}

/* Every spelling with its option, sorted by spelling then by option order,
 * so a lookup is a binary search and a duplicate spelling finds the first
 * option that lists it. */
struct srvhelp__ix {
    const char *spell;
    size_t opt;
};

static int ix_cmp(const void *a, const void *b)
{
    const struct srvhelp__ix *x = a, *y = b;
    int c = strcmp(x->spell, y->spell);
    return c ? c : (x->opt > y->opt) - (x->opt < y->opt);
}

static void build_index(srvhelp_t *h)
{
    size_t n = 0;
    for (size_t k = 0; k < h->n_opts; k++)
        n += h->opts[k].n_spell;
    h->ix = xcalloc(n, sizeof *h->ix);
    for (size_t k = 0, i = 0; k < h->n_opts; k++)
        for (size_t s = 0; s < h->opts[k].n_spell; s++)
            h->ix[i++] = (struct srvhelp__ix){h->opts[k].spell[s], k};
    qsort(h->ix, n, sizeof *h->ix, ix_cmp);
    h->n_ix = n;
}

int srvhelp_parse(const char *text, size_t len, srvhelp_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (len > SRVHELP_MAX_TEXT) {
        snprintf(err, errlen, "help text of %zu bytes is larger than %u", len, SRVHELP_MAX_TEXT);
        return -E2BIG;
    }
    srvhelp_t *h = xcalloc(1, sizeof *h);
    h->build = -1;
    pstate_t ps = {.h = h, .section = ""};
    buf_init(&ps.help, 0);
    int rc = 0;

    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        const char *line = text + i;
        size_t ll = end - i;
        i = end + 1;
        if (ll && line[ll - 1] == '\r')
            ll--;
        if (ll == 0)
            continue;
        if (line[0] == ' ' || line[0] == '\t') {
            if (ps.cur)
                add_help_line(&ps, line, ll);
            continue;
        }
        close_option(&ps);
        if (ll >= 5 && !memcmp(line, "-----", 5)) {
            section_line(&ps, line, ll);
            continue;
        }
        if (line[0] != '-')
            continue; /* noise: a log line, "usage:", ... */
        int r = option_line(&ps, line, ll);
        if (r < 0) {
            snprintf(err, errlen, "help text lists more than %d options", MAX_OPTS);
            rc = r;
            break;
        }
    }
    close_option(&ps);
    buf_free(&ps.help);
    if (rc == 0 && h->n_opts == 0) {
        snprintf(err, errlen, "no option lines (\"-x, --long VALUE   description\") in the help text");
        rc = -EINVAL;
    }
    if (rc) {
        srvhelp_free(&h);
        return rc;
    }
    build_index(h);
    *out = h;
    return 0;
}

void srvhelp_free(srvhelp_t **hp)
{
    srvhelp_t *h = hp ? *hp : NULL;
    if (!h)
        return;
    for (size_t k = 0; k < h->n_opts; k++)
        free_opt(&h->opts[k]);
    free(h->opts);
    for (size_t k = 0; k < h->n_sections; k++)
        free(h->sections[k]);
    free(h->sections);
    free(h->ix);
    free(h->version);
    free(h->exe);
    free(h->cache_path);
    free(h);
    *hp = NULL;
}

/* Table spelling `sp` equals tok[0..len); in tokens starting with "--" '_'
 * reads as '-' (the build's own rule). */
static bool spell_eq(const char *sp, const char *tok, size_t len)
{
    if (strlen(sp) != len)
        return false;
    bool dd = len >= 2 && tok[0] == '-' && tok[1] == '-';
    for (size_t i = 0; i < len; i++) {
        char c = tok[i];
        if (dd && c == '_')
            c = '-';
        if (c != sp[i])
            return false;
    }
    return true;
}

const srvhelp_opt_t *srvhelp_find(const srvhelp_t *h, const char *name, size_t len)
{
    if (!h || !name || len == 0 || len > MAX_SPELL_LEN || name[0] != '-')
        return NULL;
    char key[MAX_SPELL_LEN + 1];
    bool dd = len >= 2 && name[1] == '-';
    for (size_t i = 0; i < len; i++)
        key[i] = dd && name[i] == '_' ? '-' : name[i];
    key[len] = 0;
    if (strlen(key) != len)
        return NULL; /* a NUL inside */
    size_t lo = 0, hi = h->n_ix;
    while (lo < hi) { /* the first entry >= key */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(h->ix[mid].spell, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < h->n_ix && !strcmp(h->ix[lo].spell, key))
        return &h->opts[h->ix[lo].opt];
    return NULL;
}

const char *srvhelp_first(const srvhelp_t *h, const char *const *names)
{
    for (int k = 0; names[k]; k++) {
        const srvhelp_opt_t *o = srvhelp_find(h, names[k], strlen(names[k]));
        if (o && !o->removed)
            return names[k];
    }
    return NULL;
}

const char *srvhelp_build_name(const srvhelp_t *h, char *buf, size_t cap)
{
    if (h && h->build >= 0) {
        snprintf(buf, cap, "build %ld", h->build);
        return buf;
    }
    if (h && h->version) {
        snprintf(buf, cap, "version %.64s", h->version);
        return buf;
    }
    return "unknown build";
}

/* Up to 9 decimal digits at s (and not more): the number, or -1. */
static long small_number(const char *s, size_t len)
{
    long v = 0;
    size_t i = 0;
    for (; i < len && isdigit((unsigned char)s[i]); i++) {
        if (i >= 9)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return i ? v : -1;
}

bool srvhelp_parse_version(const char *text, size_t len, char *ver, size_t cap, long *build)
{
    static const char pre[] = "version: ";
    *build = -1;
    if (cap)
        ver[0] = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        const char *line = text + i;
        size_t ll = end - i;
        i = end + 1;
        if (ll && line[ll - 1] == '\r')
            ll--;
        /* a log prefix the logger sometimes puts first: "0.00.001.224 " and
         * a level letter ("I ") */
        size_t skip = 0;
        while (skip < ll && (isdigit((unsigned char)line[skip]) || line[skip] == '.'))
            skip++;
        if (skip && skip < ll && line[skip] == ' ') {
            skip++;
            if (skip + 1 < ll && isupper((unsigned char)line[skip]) && line[skip + 1] == ' ')
                skip += 2;
            line += skip;
            ll -= skip;
        }
        if (ll <= strlen(pre) || memcmp(line, pre, strlen(pre)))
            continue;
        const char *v = line + strlen(pre);
        size_t vl = ll - strlen(pre);
        while (vl && v[vl - 1] == ' ')
            vl--;
        if (vl > 127)
            vl = 127;
        if (memchr(v, 0, vl))
            vl = strnlen(v, vl);
        if (cap) {
            size_t c = vl < cap - 1 ? vl : cap - 1;
            memcpy(ver, v, c);
            ver[c] = 0;
        }
        /* "0.7.0 (build 11669, commit Debian)" or "4589 (2e2f8f09)" */
        for (size_t k = 0; k + 7 <= vl; k++)
            if (!memcmp(v + k, "(build ", 7)) {
                *build = small_number(v + k + 7, vl - k - 7);
                return true;
            }
        long b = small_number(v, vl);
        size_t nd = strspn(v, "0123456789");
        if (b >= 0 && (nd == vl || v[nd] == ' '))
            *build = b;
        return true;
    }
    return false;
}

/* ------------------------------------------------------------------------
 * migration table and checks
 * ------------------------------------------------------------------------ */

typedef enum { R_LOADMODE, R_RENAME, R_FA } rkind_t;
enum { LM_MLOCK, LM_NO_MMAP, LM_MMAP, LM_DIO, LM_NO_DIO };

typedef struct {
    const char *old[4]; /* spellings the rule rewrites */
    rkind_t kind;
    const char *to;     /* R_RENAME: the spelling that replaced them */
    int n_values;       /* values the old spelling took */
    int lm;             /* R_LOADMODE: which old flag */
    const char *why;
} rule_t;

/* Established from b11669's --help and its parser (tests/test_e2e_srvhelp.c
 * runs every old spelling through the real binary): none of the old
 * spellings is accepted any more, every new one is. */
static const rule_t rules[] = {
    {{"--mlock"}, R_LOADMODE, NULL, 0, LM_MLOCK, NULL},
    {{"--no-mmap"}, R_LOADMODE, NULL, 0, LM_NO_MMAP, NULL},
    {{"--mmap"}, R_LOADMODE, NULL, 0, LM_MMAP, NULL},
    {{"-dio", "--direct-io"}, R_LOADMODE, NULL, 0, LM_DIO, NULL},
    {{"-ndio", "--no-direct-io"}, R_LOADMODE, NULL, 0, LM_NO_DIO, NULL},
    {{"-fa", "--flash-attn"}, R_FA, NULL, 0, 0,
     "-fa takes on|off|auto; the bare flag of older builds meant on"},
    {{"--draft", "--draft-n", "--draft-max"}, R_RENAME, "--spec-draft-n-max", 1, 0,
     "the draft model's settings were renamed --spec-draft-* (for ngram drafting: "
     "--spec-ngram-mod-n-max)"},
    {{"--draft-min", "--draft-n-min"}, R_RENAME, "--spec-draft-n-min", 1, 0,
     "the draft model's settings were renamed --spec-draft-* (for ngram drafting: "
     "--spec-ngram-mod-n-min)"},
    {{"--slots-endpoint-disable"}, R_RENAME, "--no-slots", 0, 0,
     "the slots endpoint is switched with --slots / --no-slots"},
};

static const rule_t *rule_match(const char *tok, size_t len)
{
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++)
        for (int k = 0; k < 4 && rules[r].old[k]; k++)
            if (spell_eq(rules[r].old[k], tok, len))
                return &rules[r];
    return NULL;
}

static bool has_choice(const srvhelp_opt_t *o, const char *v)
{
    if (!o->n_choices)
        return true;
    for (size_t k = 0; k < o->n_choices; k++)
        if (!strcmp(o->choices[k], v))
            return true;
    return false;
}

static const srvhelp_opt_t *load_mode_opt(const srvhelp_t *h)
{
    const srvhelp_opt_t *t = srvhelp_find(h, "--load-mode", strlen("--load-mode"));
    return t && !t->removed && t->n_values == 1 ? t : NULL;
}

/* Whether rule r rewrites a token that the build reads as option o (NULL:
 * not one of its options) with inline value inl. */
static bool rule_applies(const srvhelp_t *h, const rule_t *r, const srvhelp_opt_t *o, const char *inl)
{
    if (r->kind != R_FA && r->n_values == 0 && inl)
        return false;
    if (!h)
        return true;
    switch (r->kind) {
    case R_FA:
        return o && o->n_values >= 1 && !o->removed && has_choice(o, "on");
    case R_RENAME: {
        if (o && !o->removed)
            return false;
        const srvhelp_opt_t *t = srvhelp_find(h, r->to, strlen(r->to));
        return t && !t->removed && t->n_values == r->n_values;
    }
    case R_LOADMODE:
        return (!o || o->removed) && load_mode_opt(h);
    }
    return false;
}

/* Would the build (or, without h, anyone) read tok as an option? */
static bool looks_like_option(const srvhelp_t *h, const char *tok)
{
    size_t len = strlen(tok);
    if (tok[0] != '-' || len < 2)
        return false;
    if (!h)
        return !isdigit((unsigned char)tok[1]) && tok[1] != '.';
    const char *eq = memchr(tok, '=', len);
    size_t nl = eq ? (size_t)(eq - tok) : len;
    return srvhelp_find(h, tok, len) || (eq && srvhelp_find(h, tok, nl)) || rule_match(tok, nl);
}

typedef struct {
    size_t at, n_tok;
    size_t name_len;          /* spelling length inside argv[at] */
    const char *inl;          /* value after '=' or NULL */
    const srvhelp_opt_t *o;   /* the build's option, or NULL */
    const rule_t *rule;       /* a rule that applies, or NULL */
    bool fa_bare;             /* -fa without its value */
} mitem_t;

/* Split argv into items (an option and its values), the way the build reads them. */
static size_t walk(const srvhelp_t *h, char *const *argv, size_t n, mitem_t *items)
{
    size_t k = 0;
    for (size_t i = 0; i < n; k++) {
        mitem_t it = {.at = i};
        const char *tok = argv[i];
        size_t len = strlen(tok);
        const char *eq = tok[0] == '-' ? memchr(tok, '=', len) : NULL;
        it.name_len = len;
        it.o = srvhelp_find(h, tok, len);
        if (!it.o && eq) {
            it.name_len = (size_t)(eq - tok);
            it.inl = eq + 1;
            it.o = srvhelp_find(h, tok, it.name_len);
        }
        const rule_t *r = tok[0] == '-' ? rule_match(tok, it.name_len) : NULL;
        if (r && rule_applies(h, r, it.o, it.inl))
            it.rule = r;
        size_t want = 0;
        if (it.rule && r->kind == R_FA) {
            if (!it.inl && (i + 1 >= n || looks_like_option(h, argv[i + 1])))
                it.fa_bare = true;
            else
                want = it.inl ? 0 : 1;
        } else if (it.rule) {
            want = it.inl ? 0 : (size_t)r->n_values;
            /* without a build, a value is whatever does not look like an option */
            if (!h && want && (i + 1 >= n || looks_like_option(h, argv[i + 1])))
                want = 0;
        } else if (it.o) {
            want = it.inl ? 0 : (size_t)it.o->n_values;
        }
        if (want > n - i - 1)
            want = n - i - 1;
        it.n_tok = 1 + want;
        items[k] = it;
        i += it.n_tok;
    }
    return k;
}

static char *join(char *const *v, size_t n)
{
    buf_t b;
    buf_init(&b, 0);
    buf_append(&b, "", 0);
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_append(&b, " ", 1);
        buf_append(&b, v[i], strlen(v[i]));
    }
    return b.data;
}

typedef struct {
    char **v;
    size_t n;
    srvhelp_change_t *ch;
    size_t n_ch;
} mout_t;

static void emit(mout_t *m, const char *s, size_t len)
{
    m->v[m->n++] = xstrndup(s, len);
}

static void add_change(mout_t *m, char *const *argv, const mitem_t *it, size_t emitted_from, char *why)
{
    m->ch = xrealloc(m->ch, (m->n_ch + 1) * sizeof *m->ch);
    srvhelp_change_t *c = &m->ch[m->n_ch++];
    c->at = it->at;
    c->n_from = it->n_tok;
    c->from = join(argv + it->at, it->n_tok);
    c->to = join(m->v + emitted_from, m->n - emitted_from);
    c->why = why;
}

size_t srvhelp_migrate(const srvhelp_t *h, char *const *argv, size_t n, char ***out,
                       size_t *n_out, srvhelp_change_t **changes)
{
    mitem_t *items = xcalloc(n + 1, sizeof *items);
    size_t ni = walk(h, argv, n, items);
    mout_t m = {.v = xcalloc(2 * n + 2, sizeof(char *))};

    /* the old load flags, in order, make one mode */
    bool mmap = true, mlock = false, dio = false, any = false, has_lm = false;
    char *olds = NULL;
    {
        buf_t b;
        buf_init(&b, 0);
        buf_append(&b, "", 0);
        const srvhelp_opt_t *lmo = load_mode_opt(h);
        for (size_t k = 0; k < ni; k++) {
            const mitem_t *it = &items[k];
            if (it->rule && it->rule->kind == R_LOADMODE) {
                switch (it->rule->lm) {
                case LM_MLOCK: mlock = true; break;
                case LM_NO_MMAP: mmap = false; break;
                case LM_MMAP: mmap = true; break;
                case LM_DIO: dio = true; break;
                case LM_NO_DIO: dio = false; break;
                }
                buf_printf(&b, "%s%s", any ? " " : "", argv[it->at]);
                any = true;
            } else if ((h && it->o && it->o == lmo) ||
                       (!h && (spell_eq("-lm", argv[it->at], it->name_len) ||
                               spell_eq("--load-mode", argv[it->at], it->name_len)))) {
                has_lm = true;
            }
        }
        olds = b.data;
    }
    const char *mode = dio ? "dio" : mmap ? (mlock ? "mmap+mlock" : "mmap") : (mlock ? "mlock" : "none");
    if (any && h && !has_choice(load_mode_opt(h), mode))
        for (size_t k = 0; k < ni; k++)
            if (items[k].rule && items[k].rule->kind == R_LOADMODE)
                items[k].rule = NULL; /* the build has no such mode: leave them to the check */

    bool lm_done = false;
    for (size_t k = 0; k < ni; k++) {
        const mitem_t *it = &items[k];
        const rule_t *r = it->rule;
        const char *tok = argv[it->at];
        size_t start = m.n;
        if (r && r->kind == R_LOADMODE) {
            if (has_lm) {
                add_change(&m, argv, it, start,
                           xstrdup("--load-mode replaced it, and the args set --load-mode already"));
            } else if (!lm_done) {
                emit(&m, "--load-mode", strlen("--load-mode"));
                emit(&m, mode, strlen(mode));
                add_change(&m, argv, it, start,
                           xasprintf("--mlock, --no-mmap, --mmap and --direct-io became --load-mode; "
                                     "%s is --load-mode %s%s",
                                     olds, mode, mlock && mmap && !dio ? ": mmap stays on, as it was by default" : ""));
                lm_done = true;
            } else {
                add_change(&m, argv, it, start,
                           xasprintf("folded into the --load-mode %s that replaces %s", mode, olds));
            }
        } else if (r && r->kind == R_RENAME) {
            emit(&m, r->to, strlen(r->to));
            if (it->inl)
                emit(&m, it->inl, strlen(it->inl));
            for (size_t j = 1; j < it->n_tok; j++)
                emit(&m, argv[it->at + j], strlen(argv[it->at + j]));
            add_change(&m, argv, it, start, xasprintf("%s", r->why));
        } else if (r && r->kind == R_FA && it->fa_bare) {
            emit(&m, tok, strlen(tok));
            emit(&m, "on", 2);
            add_change(&m, argv, it, start, xstrdup(r->why));
        } else if (it->o && it->inl && it->o->n_values == 1 && !it->o->removed &&
                   !looks_like_option(h, it->inl)) {
            emit(&m, tok, it->name_len);
            emit(&m, it->inl, strlen(it->inl));
            add_change(&m, argv, it, start,
                       xstrdup("the value goes in the next argument"));
        } else {
            for (size_t j = 0; j < it->n_tok; j++)
                emit(&m, argv[it->at + j], strlen(argv[it->at + j]));
        }
    }
    free(olds);
    free(items);
    m.v[m.n] = NULL;
    *out = m.v;
    if (n_out)
        *n_out = m.n;
    *changes = m.ch;
    return m.n_ch;
}

void srvhelp_changes_free(srvhelp_change_t **changes, size_t n)
{
    if (!changes || !*changes)
        return;
    for (size_t i = 0; i < n; i++) {
        free((*changes)[i].from);
        free((*changes)[i].to);
        free((*changes)[i].why);
    }
    free(*changes);
    *changes = NULL;
}

/* Finish the message in err for the bad token at index i: append the
 * migration's replacement when the table has one. Returns i. */
static long bad_token(const srvhelp_t *h, char *const *argv, size_t n, size_t i, const char *advice,
                      char *err, size_t errlen)
{
    char **v = NULL;
    srvhelp_change_t *ch = NULL;
    size_t nch = srvhelp_migrate(h, argv, n, &v, NULL, &ch);
    const srvhelp_change_t *c = NULL;
    for (size_t k = 0; k < nch; k++)
        if (ch[k].at <= i && i < ch[k].at + ch[k].n_from)
            c = &ch[k];
    size_t used = strnlen(err, errlen);
    if (c && used < errlen) {
        if (*c->to)
            snprintf(err + used, errlen - used, "; use %.96s (%s)", c->to, c->why);
        else
            snprintf(err + used, errlen - used, "; remove it (%s)", c->why);
    } else if (advice && *advice && used < errlen) {
        snprintf(err + used, errlen - used, ": %.200s", advice);
    }
    /* one line: the build's advice may hold newlines */
    for (char *p = err; *p; p++)
        if (*p == '\n')
            *p = ' ';
    srvhelp_changes_free(&ch, nch);
    args_free(&v);
    return (long)i;
}

static void join_choices(const srvhelp_opt_t *o, char *dst, size_t cap)
{
    size_t used = 0;
    dst[0] = 0;
    for (size_t k = 0; k < o->n_choices && used < cap; k++) {
        int w = snprintf(dst + used, cap - used, "%s%s", k ? ", " : "", o->choices[k]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

long srvhelp_check(const srvhelp_t *h, char *const *argv, size_t n, char *err, size_t errlen)
{
    char bn[96];
    const char *b = srvhelp_build_name(h, bn, sizeof bn);
    for (size_t i = 0; i < n;) {
        const char *tok = argv[i];
        size_t len = strlen(tok);
        const srvhelp_opt_t *o = srvhelp_find(h, tok, len);
        if (!o) {
            const char *eq = tok[0] == '-' ? memchr(tok, '=', len) : NULL;
            if (eq && srvhelp_find(h, tok, (size_t)(eq - tok))) {
                snprintf(err, errlen, "%.64s: this llama-server (%s) reads no --opt=value", tok, b);
                return bad_token(h, argv, n, i, NULL, err, errlen);
            }
            if (tok[0] != '-')
                snprintf(err, errlen, "'%.64s' is not an option of this llama-server (%s)", tok, b);
            else
                snprintf(err, errlen, "%.64s is not an option of this llama-server (%s)", tok, b);
            return bad_token(h, argv, n, i, NULL, err, errlen);
        }
        if (o->removed) {
            snprintf(err, errlen, "%.64s was removed from this llama-server (%s)", tok, b);
            return bad_token(h, argv, n, i, o->help, err, errlen);
        }
        for (int v = 1; v <= o->n_values; v++) {
            if (i + (size_t)v >= n) {
                snprintf(err, errlen, "%.64s needs %s (%.64s)", tok,
                         o->n_values > 1 ? "two values" : "a value", o->hint);
                return bad_token(h, argv, n, i, NULL, err, errlen);
            }
            if (looks_like_option(h, argv[i + (size_t)v])) {
                snprintf(err, errlen,
                         "%.64s needs a value (%.64s): this llama-server would read %.64s as it", tok,
                         o->hint, argv[i + (size_t)v]);
                return bad_token(h, argv, n, i, NULL, err, errlen);
            }
        }
        if (o->strict && o->n_values >= 1 && !has_choice(o, argv[i + 1])) {
            char list[256];
            join_choices(o, list, sizeof list);
            snprintf(err, errlen, "%.64s: '%.64s' is not one of %s (this llama-server's choices)", tok,
                     argv[i + 1], list);
            return (long)(i + 1);
        }
        i += 1 + (size_t)o->n_values;
    }
    return args_check(argv, n, err, errlen);
}

/* ------------------------------------------------------------------------
 * cache entries (pure)
 * ------------------------------------------------------------------------ */

#define CACHE_MAGIC "variet-srvhelp 1"

char *srvhelp_cache_format(const srvhelp_key_t *k, const char *version, const char *help,
                           size_t help_len, size_t *len_out)
{
    if (!version)
        version = "";
    if (strchr(k->exe, '\n') || strchr(version, '\n'))
        return NULL;
    buf_t b;
    buf_init(&b, 0);
    buf_printf(&b, CACHE_MAGIC "\nexe %s\nsize %llu\nmtime %lld.%09ld\ninode %llu\nversion %s\nhelp %zu\n",
               k->exe, (unsigned long long)k->size, (long long)k->mtime_s, k->mtime_ns,
               (unsigned long long)k->ino, version, help_len);
    buf_append(&b, help, help_len);
    if (len_out)
        *len_out = b.len;
    return b.data;
}

/* The next line of [*p, end) after `prefix`: its rest in *val / *vlen. */
static bool field(const char **p, const char *end, const char *prefix, const char **val, size_t *vlen)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t pl = strlen(prefix);
    if (!nl || (size_t)(nl - *p) < pl || memcmp(*p, prefix, pl))
        return false;
    *val = *p + pl;
    *vlen = (size_t)(nl - *val);
    *p = nl + 1;
    return true;
}

static bool field_u64(const char **p, const char *end, const char *prefix, uint64_t *out)
{
    const char *v;
    size_t vl;
    char num[32];
    if (!field(p, end, prefix, &v, &vl) || vl == 0 || vl >= sizeof num)
        return false;
    memcpy(num, v, vl);
    num[vl] = 0;
    return parse_u64(num, UINT64_MAX, out);
}

int srvhelp_cache_parse(const char *text, size_t len, srvhelp_key_t *k, size_t *exe_len,
                        char *ver, size_t vercap, const char **help, size_t *help_len)
{
    const char *p = text, *end = text + len, *v;
    size_t vl;
    uint64_t hl, sec;
    memset(k, 0, sizeof *k);
    if (!field(&p, end, CACHE_MAGIC, &v, &vl) || vl != 0)
        return -EINVAL;
    if (!field(&p, end, "exe ", &v, &vl) || vl == 0 || memchr(v, 0, vl))
        return -EINVAL;
    k->exe = v;
    *exe_len = vl;
    if (!field_u64(&p, end, "size ", &k->size))
        return -EINVAL;
    /* mtime SECONDS.NANOSECONDS (9 digits) */
    if (!field(&p, end, "mtime ", &v, &vl) || vl < 11 || v[vl - 10] != '.')
        return -EINVAL;
    {
        char num[32];
        if (vl - 10 >= sizeof num)
            return -EINVAL;
        memcpy(num, v, vl - 10);
        num[vl - 10] = 0;
        long ns = small_number(v + vl - 9, 9);
        if (!parse_u64(num, INT64_MAX, &sec) || ns < 0 || strspn(v + vl - 9, "0123456789") != 9)
            return -EINVAL;
        k->mtime_s = (int64_t)sec;
        k->mtime_ns = ns;
    }
    if (!field_u64(&p, end, "inode ", &k->ino))
        return -EINVAL;
    if (!field(&p, end, "version ", &v, &vl) || memchr(v, 0, vl))
        return -EINVAL;
    if (vercap) {
        size_t c = vl < vercap - 1 ? vl : vercap - 1;
        memcpy(ver, v, c);
        ver[c] = 0;
    }
    if (!field_u64(&p, end, "help ", &hl) || hl != (uint64_t)(end - p))
        return -EINVAL;
    *help = p;
    *help_len = (size_t)hl;
    return 0;
}

/* ------------------------------------------------------------------------
 * running the binary and the cache on disk (I/O)
 * ------------------------------------------------------------------------ */

#define OUT_CAP SRVHELP_MAX_TEXT
#define ERR_CAP (64u << 10)

/* Run `exe arg`: stdout into out (past OUT_CAP: -E2BIG), stderr into errb
 * (the first ERR_CAP bytes), stdin /dev/null, own process group; killed
 * after timeout_s (-ETIMEDOUT). 0 with the wait status in *status. */
static int run_capture(const char *exe, const char *arg, double timeout_s, buf_t *out, buf_t *errb,
                       int *status)
{
    int po[2] = {-1, -1}, pe[2] = {-1, -1}, rc = 0;
    bool reaped = false;
    pid_t pid = -1;
    buf_append(out, "", 0);
    buf_append(errb, "", 0);
    if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
        rc = -errno;
        goto out;
    }
    char *argv[] = {(char *)exe, (char *)arg, NULL};
    pid = proc_spawn_io(argv, po[1], pe[1]);
    close(po[1]);
    close(pe[1]);
    po[1] = pe[1] = -1;
    if (pid < 0) {
        rc = (int)pid;
        goto out;
    }
    double deadline = now_s() + timeout_s;
    bool open_o = true, open_e = true;
    char chunk[65536];
    while (open_o || open_e) {
        double left = deadline - now_s();
        if (left <= 0) {
            rc = -ETIMEDOUT;
            goto out;
        }
        struct pollfd fds[2] = {{.fd = open_o ? po[0] : -1, .events = POLLIN},
                                {.fd = open_e ? pe[0] : -1, .events = POLLIN}};
        int r = poll(fds, 2, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            goto out;
        }
        for (int f = 0; f < 2; f++) {
            if (!fds[f].revents)
                continue;
            ssize_t got = read(fds[f].fd, chunk, sizeof chunk);
            if (got < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (got <= 0) {
                if (f == 0)
                    open_o = false;
                else
                    open_e = false;
                continue;
            }
            if (f == 0 && buf_append(out, chunk, (size_t)got) < 0) {
                rc = -E2BIG;
                goto out;
            }
            if (f == 1 && errb->len < ERR_CAP)
                buf_append(errb, chunk, (size_t)got < ERR_CAP - errb->len ? (size_t)got : ERR_CAP - errb->len);
        }
    }
    for (;;) {
        pid_t w = waitpid(pid, status, WNOHANG);
        if (w == pid) {
            reaped = true;
            break;
        }
        if (w < 0) {
            rc = -errno;
            reaped = true; /* not ours to reap (any more) */
            break;
        }
        if (now_s() >= deadline) {
            rc = -ETIMEDOUT;
            break;
        }
        usleep(2000);
    }
out:
    if (pid > 0 && !reaped)
        proc_stop(pid, 0.5);
    for (int i = 0; i < 2; i++) {
        if (po[i] >= 0)
            close(po[i]);
        if (pe[i] >= 0)
            close(pe[i]);
    }
    return rc;
}

/* The first line of s (at most 160 bytes) for a message. */
static void first_line(const char *s, char *dst, size_t cap)
{
    while (*s == '\n' || *s == ' ')
        s++;
    size_t len = strcspn(s, "\n");
    if (len > 160)
        len = 160;
    snprintf(dst, cap, "%.*s", (int)len, s);
}

/* Run `exe arg` and require exit status 0: 0, or -errno with err filled. */
static int run_ok(const char *exe, const char *arg, double timeout_s, buf_t *out, buf_t *errb,
                  char *err, size_t errlen)
{
    int st = 0;
    int rc = run_capture(exe, arg, timeout_s, out, errb, &st);
    if (rc == -ETIMEDOUT) {
        snprintf(err, errlen, "%s %s did not finish within %.3g s (killed)", exe, arg, timeout_s);
        return rc;
    }
    if (rc == -E2BIG) {
        snprintf(err, errlen, "%s %s printed more than %u bytes", exe, arg, OUT_CAP);
        return rc;
    }
    if (rc) {
        snprintf(err, errlen, "%s %s: %s", exe, arg, strerror(-rc));
        return rc;
    }
    char line[200];
    first_line(errb->len ? errb->data : out->data, line, sizeof line);
    if (WIFSIGNALED(st)) {
        snprintf(err, errlen, "%s %s was killed by signal %d%s%s", exe, arg, WTERMSIG(st),
                 *line ? ": " : "", line);
        return -EINVAL;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(err, errlen, "%s %s exited with status %d%s%s", exe, arg,
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1, *line ? ": " : "", line);
        return -EINVAL;
    }
    return 0;
}

/* ${XDG_CACHE_HOME:-$HOME/.cache}/variet (caller frees), or NULL. */
static char *default_cache_dir(void)
{
    const char *x = getenv("XDG_CACHE_HOME");
    if (x && x[0] == '/')
        return xasprintf("%s/variet", x);
    const char *home = getenv("HOME");
    if (home && home[0] == '/')
        return xasprintf("%s/.cache/variet", home);
    return NULL;
}

/* mkdir -p with mode 0700 for the parts it creates. */
static int mkdirs(const char *dir)
{
    char *d = xstrdup(dir);
    int rc = 0;
    for (char *p = d + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(d, 0700) < 0 && errno != EEXIST) {
                rc = -errno;
                break;
            }
            *p = c;
            if (!c)
                break;
        }
    }
    free(d);
    return rc;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t key_hash(const srvhelp_key_t *k)
{
    uint64_t h = 14695981039346656037ull;
    h = fnv1a(h, k->exe, strlen(k->exe) + 1);
    h = fnv1a(h, &k->size, sizeof k->size);
    h = fnv1a(h, &k->mtime_s, sizeof k->mtime_s);
    h = fnv1a(h, &k->mtime_ns, sizeof k->mtime_ns);
    h = fnv1a(h, &k->ino, sizeof k->ino);
    return h;
}

/* Fill version/build of h from a version text. */
static void set_version(srvhelp_t *h, const char *text, size_t len)
{
    char ver[128];
    long build;
    free(h->version);
    h->version = NULL;
    h->build = -1;
    if (srvhelp_parse_version(text, len, ver, sizeof ver, &build) && ver[0]) {
        h->version = xstrdup(ver);
        h->build = build;
    }
}

/* The cache entry at path, if it is one for key k: 0 and *out. */
static int read_cache(const char *path, const srvhelp_key_t *k, srvhelp_t **out)
{
    char *text = NULL, e[256], ver[160];
    size_t len, exe_len, help_len;
    const char *help;
    srvhelp_key_t got;
    int rc = file_read_all(path, OUT_CAP + 8192, &text, &len, e, sizeof e);
    if (rc)
        return rc;
    rc = srvhelp_cache_parse(text, len, &got, &exe_len, ver, sizeof ver, &help, &help_len);
    if (rc == 0 && (exe_len != strlen(k->exe) || memcmp(got.exe, k->exe, exe_len) ||
                    got.size != k->size || got.mtime_s != k->mtime_s ||
                    got.mtime_ns != k->mtime_ns || got.ino != k->ino))
        rc = -ESTALE;
    if (rc == 0)
        rc = srvhelp_parse(help, help_len, out, e, sizeof e);
    if (rc == 0 && ver[0]) {
        char *vt = xasprintf("version: %s\n", ver);
        set_version(*out, vt, strlen(vt));
        free(vt);
    }
    free(text);
    return rc;
}

int srvhelp_load(const char *exe, const srvhelp_load_opts_t *o, srvhelp_t **out, char *err,
                 size_t errlen)
{
    double timeout = o && o->timeout_s > 0 ? o->timeout_s : 30.0;
    char *real = NULL, *dir = NULL, *path = NULL;
    buf_t vout, verr, hout, herr;
    srvhelp_t *h = NULL;
    int rc = 0;
    buf_init(&vout, OUT_CAP);
    buf_init(&verr, 0);
    buf_init(&hout, OUT_CAP);
    buf_init(&herr, 0);
    *out = NULL;

    if (!exe || !*exe) {
        snprintf(err, errlen, "no llama-server path given");
        return -ENOENT;
    }
    struct stat st;
    real = realpath(exe, NULL);
    if (!real || stat(real, &st) < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", exe, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode) || access(real, X_OK) < 0) {
        rc = -EACCES;
        snprintf(err, errlen, "%s: not an executable file", exe);
        goto done;
    }
    srvhelp_key_t key = {.exe = real, .size = (uint64_t)st.st_size, .ino = (uint64_t)st.st_ino,
                         .mtime_s = (int64_t)st.st_mtim.tv_sec, .mtime_ns = st.st_mtim.tv_nsec};
    if (o && o->cache_dir)
        dir = *o->cache_dir ? xstrdup(o->cache_dir) : NULL;
    else
        dir = default_cache_dir();
    if (dir)
        path = xasprintf("%s/llama-server-%016llx.help", dir, (unsigned long long)key_hash(&key));

    if (path && !(o && o->refresh) && read_cache(path, &key, &h) == 0) {
        h->from_cache = true;
        goto found;
    }

    rc = run_ok(exe, "--version", timeout, &vout, &verr, err, errlen);
    if (rc)
        goto done;
    rc = run_ok(exe, "--help", timeout, &hout, &herr, err, errlen);
    if (rc)
        goto done;
    char e[256];
    rc = srvhelp_parse(hout.data, hout.len, &h, e, sizeof e);
    if (rc) {
        snprintf(err, errlen, "%s --help: %s", exe, e);
        goto done;
    }
    if (!srvhelp_find(h, "--model", strlen("--model"))) {
        snprintf(err, errlen, "%s --help lists no --model option: not a llama-server", exe);
        rc = -EINVAL;
        goto done;
    }
    /* --version prints to stderr (llama.cpp's LOG), older builds to stdout */
    set_version(h, verr.data, verr.len);
    if (!h->version)
        set_version(h, vout.data, vout.len);
    if (path) {
        size_t len;
        char *entry = srvhelp_cache_format(&key, h->version, hout.data, hout.len, &len);
        char we[256];
        if (entry && mkdirs(dir) == 0 && file_write_atomic(path, entry, len, we, sizeof we) == 0) {
            /* written: path stays set */
        } else {
            free(path);
            path = NULL;
        }
        free(entry);
    }
found:
    h->exe = real;
    real = NULL;
    h->cache_path = path;
    path = NULL;
    *out = h;
    h = NULL;
    rc = 0;
done:
    srvhelp_free(&h);
    free(real);
    free(dir);
    free(path);
    buf_free(&vout);
    buf_free(&verr);
    buf_free(&hout);
    buf_free(&herr);
    return rc;
}

int srvhelp_check_role(const char *exe, char *const *args, size_t n, const srvhelp_load_opts_t *o,
                       long *bad, char *err, size_t errlen)
{
    srvhelp_t *h = NULL;
    if (bad)
        *bad = -1;
    int rc = srvhelp_load(exe, o, &h, err, errlen);
    if (rc)
        return rc;
    long at = srvhelp_check(h, args, n, err, errlen);
    srvhelp_free(&h);
    if (at < 0)
        return 0;
    if (bad)
        *bad = at;
    return -EINVAL;
}
