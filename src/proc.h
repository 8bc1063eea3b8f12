/*
 * proc.h — child processes the way Variet needs them: own process group,
 * killed with their parent (PR_SET_PDEATHSIG), stdin from /dev/null,
 * stdout+stderr to one given fd, every other fd closed.
 */
#ifndef VARIET_PROC_H
#define VARIET_PROC_H

#include <sys/types.h>

/* fork + exec argv[0] (a path) with argv. out_fd receives stdout+stderr.
 * Returns the pid (also its process-group id) or -errno. */
pid_t proc_spawn(char *const argv[], int out_fd);
/* The same with "NAME=value" strings (NULL-terminated; may be NULL) added
 * to the child's environment, replacing variables of the same name. */
pid_t proc_spawn_env(char *const argv[], char *const env_add[], int out_fd);
/* The same with stdout to out_fd and stderr to err_fd (either -1: inherited). */
pid_t proc_spawn_io(char *const argv[], int out_fd, int err_fd);

/* SIGTERM to the group, wait up to grace_s, then SIGKILL; reaps. Returns
 * the wait status, or -1 if pid was not our child. */
int proc_stop(pid_t pid, double grace_s);

/* A free TCP port on 127.0.0.1 (bind to 0, read, close), or -1. */
int proc_free_port(void);

#endif
