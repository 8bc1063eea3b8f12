/*
 * cmd.h — the subcommand table. Each subcommand lives in cmd_<name>.c and
 * only calls public module APIs. Exit codes: 0 ok, 1 runtime failure,
 * 2 bad input (usage, malformed file or config).
 */
#ifndef VARIET_CMD_H
#define VARIET_CMD_H

typedef struct {
    const char *name;
    const char *usage;
    const char *summary;
    int (*exec)(int argc, char **argv); /* argv[0] is the subcommand name */
} cmd_entry_t;

extern const cmd_entry_t cmd_synth_entry;
extern const cmd_entry_t cmd_inspect_entry;
extern const cmd_entry_t cmd_hw_entry;
extern const cmd_entry_t cmd_serve_entry;
extern const cmd_entry_t cmd_bench_entry;
extern const cmd_entry_t cmd_plan_entry;
extern const cmd_entry_t cmd_tune_entry;

enum { CMD_OK = 0, CMD_FAIL = 1, CMD_USAGE = 2 };

/* Print "variet NAME: usage: ..." to stderr and return CMD_USAGE. */
int cmd_usage(const cmd_entry_t *c);

#endif
