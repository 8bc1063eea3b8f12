/*
 * main.c — variet's command line: dispatches to the subcommand table.
 */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

#ifndef VARIET_VERSION
#define VARIET_VERSION "0.1.0"
#endif

static const cmd_entry_t *const cmds[] = {
    &cmd_synth_entry,
    &cmd_inspect_entry,
    &cmd_hw_entry,
    &cmd_serve_entry,
    &cmd_bench_entry,
    &cmd_plan_entry,
    &cmd_tune_entry,
};

#define N_CMDS (sizeof cmds / sizeof cmds[0])

int cmd_usage(const cmd_entry_t *c)
{
    fprintf(stderr, "usage: variet %s\n", c->usage);
    return CMD_USAGE;
}

static void help(FILE *f)
{
    fprintf(f, "variet %s — local LLM role engine for llama-server\n\nusage: variet COMMAND [ARGS]\n\n",
            VARIET_VERSION);
    for (size_t i = 0; i < N_CMDS; i++)
        fprintf(f, "  %-9s %s\n", cmds[i]->name, cmds[i]->summary);
    fprintf(f, "\n'variet COMMAND --help' shows a command's arguments.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        help(stderr);
        return CMD_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        help(stdout);
        return CMD_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("variet %s\n", VARIET_VERSION);
        return CMD_OK;
    }
    for (size_t i = 0; i < N_CMDS; i++) {
        if (strcmp(argv[1], cmds[i]->name) == 0) {
            for (int a = 2; a < argc; a++)
                if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
                    printf("usage: variet %s\n\n%s\n", cmds[i]->usage, cmds[i]->summary);
                    return CMD_OK;
                }
            return cmds[i]->exec(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "variet: unknown command '%s'\n\n", argv[1]);
    help(stderr);
    return CMD_USAGE;
}
