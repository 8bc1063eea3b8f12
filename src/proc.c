/*
 * proc.c — spawning and stopping children (see proc.h).
 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

extern char **environ;

/* environ with env_add's variables replacing or joining it; the vector is
 * the caller's to free (the strings are borrowed). */
static char **env_with(char *const env_add[])
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    while (env_add && env_add[k])
        k++;
    char **env = xcalloc(n + k + 1, sizeof *env);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        bool replaced = false;
        for (size_t j = 0; j < k && !replaced; j++) {
            size_t nl = strcspn(env_add[j], "=");
            replaced = !strncmp(environ[i], env_add[j], nl) && environ[i][nl] == '=';
        }
        if (!replaced)
            env[m++] = environ[i];
    }
    for (size_t j = 0; j < k; j++)
        env[m++] = env_add[j];
    env[m] = NULL;
    return env;
}

static pid_t spawn(char *const argv[], char *const env_add[], int out_fd, int err_fd);

pid_t proc_spawn(char *const argv[], int out_fd) { return spawn(argv, NULL, out_fd, out_fd); }

pid_t proc_spawn_env(char *const argv[], char *const env_add[], int out_fd)
{
    return spawn(argv, env_add, out_fd, out_fd);
}

pid_t proc_spawn_io(char *const argv[], int out_fd, int err_fd) { return spawn(argv, NULL, out_fd, err_fd); }

static pid_t spawn(char *const argv[], char *const env_add[], int out_fd, int err_fd)
{
    pid_t parent = getpid();
    char **env = env_with(env_add); /* built before fork: no allocation in the child */
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        free(env);
        return -e;
    }
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) /* the parent died before prctl */
            _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        if (out_fd >= 0)
            dup2(out_fd, 1);
        if (err_fd >= 0)
            dup2(err_fd, 2);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) {
            dup2(nul, 0);
            if (nul > 2)
                close(nul);
        }
        syscall(SYS_close_range, 3u, ~0u, 0u);
        execve(argv[0], argv, env);
        dprintf(2, "variet: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also here: no race with a signal to the group */
    free(env);
    return pid;
}

int proc_stop(pid_t pid, double grace_s)
{
    int st = 0;
    if (pid <= 0)
        return -1;
    kill(-pid, SIGTERM);
    double t0 = now_s();
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0)
            return -1;
        if (now_s() - t0 > grace_s)
            break;
        usleep(10000);
    }
    kill(-pid, SIGKILL);
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return st;
}

int proc_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}
