/*
 * e2e_util.c — see e2e_util.h. Children get PR_SET_PDEATHSIG so a crashed
 * test leaves no llama-server behind.
 */
#include "e2e_util.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static bool runs(const char *path)
{
    char *cmd = xasprintf("'%s' --version >/dev/null 2>&1", path);
    int rc = system(cmd);
    free(cmd);
    return rc == 0;
}

/* Line-buffered stdout: under ctest stdout is a pipe, and a test killed by
 * its timeout would otherwise lose everything it printed. */
__attribute__((constructor)) static void e2e_line_buffered(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
}

const char *e2e_llama_server(void)
{
    static char path[4096];
    if (path[0])
        return path;
    const char *env = getenv("VARIET_LLAMA_SERVER");
    if (env && *env && runs(env)) {
        snprintf(path, sizeof path, "%s", env);
        return path;
    }
    snprintf(path, sizeof path, "%s/.cache/llama/bin/llama-server", VARIET_SOURCE_DIR);
    if (access(path, X_OK) == 0 && runs(path))
        return path;
    char *out = NULL;
    if (e2e_sh("command -v llama-server", &out) == 0 && out && *out) {
        out[strcspn(out, "\n")] = 0;
        snprintf(path, sizeof path, "%s", out);
        free(out);
        if (runs(path))
            return path;
    }
    free(out);
    path[0] = 0;
    fprintf(stderr, "e2e: no runnable llama-server (set VARIET_LLAMA_SERVER or run scripts/get-llama-server.sh)\n");
    return NULL;
}

const char *e2e_tmpdir(void)
{
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/variet-e2e-XXXXXX");
        if (!mkdtemp(dir))
            abort();
    }
    return dir;
}

int e2e_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

pid_t e2e_spawn(char *const argv[], const char *logpath)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) {
            dup2(nul, 0);
            close(nul);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    setpgid(pid, pid);
    return pid;
}

char *e2e_slurp(const char *path, size_t *len)
{
    char *out = NULL, err[256];
    size_t n = 0;
    if (file_read_all(path, 256u << 20, &out, &n, err, sizeof err))
        return NULL;
    if (len)
        *len = n;
    return out;
}

int e2e_wait_ready(pid_t pid, int port, const char *logpath, double timeout_s)
{
    double t0 = now_s();
    while (now_s() - t0 < timeout_s) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return -1;
        char *log = e2e_slurp(logpath, NULL);
        bool listening = log && strstr(log, "listening on");
        free(log);
        if (listening) {
            char *resp = NULL;
            int code = e2e_http(port, "GET", "/health", NULL, &resp);
            free(resp);
            if (code == 200)
                return 0;
        }
        usleep(20000);
    }
    return -1;
}

int e2e_stop(pid_t pid)
{
    int st = 0;
    if (pid <= 0)
        return -1;
    kill(-pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0)
            return -1;
        usleep(10000);
    }
    kill(-pid, SIGKILL);
    waitpid(pid, &st, 0);
    return st;
}

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    buf_append(ud, p, sz * n);
    return sz * n;
}

int e2e_http(int port, const char *method, const char *path, const char *body, char **resp)
{
    CURL *c = curl_easy_init();
    buf_t b;
    long code = -1;
    char url[512];
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    buf_init(&b, 0);
    buf_append(&b, "", 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    *resp = b.data;
    return (int)code;
}

int e2e_sh(const char *cmd, char **out)
{
    FILE *p = popen(cmd, "r");
    buf_t b;
    char tmp[4096];
    size_t n;
    buf_init(&b, 0);
    buf_append(&b, "", 0);
    if (!p) {
        *out = b.data;
        return -1;
    }
    while ((n = fread(tmp, 1, sizeof tmp, p)) > 0)
        buf_append(&b, tmp, n);
    int st = pclose(p);
    *out = b.data;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

bool e2e_proc_running(const char *a, const char *b)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    bool found = false;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char *p = xasprintf("/proc/%s/cmdline", e->d_name);
        size_t len = 0;
        char *c = e2e_slurp(p, &len);
        free(p);
        if (!c)
            continue;
        for (size_t i = 0; i + 1 < len; i++)
            if (!c[i])
                c[i] = ' ';
        if (strstr(c, a) && (!b || strstr(c, b)) && e2e_pid_alive((pid_t)atoi(e->d_name)))
            found = true; /* zombies are not running */
        free(c);
    }
    if (d)
        closedir(d);
    return found;
}

bool e2e_pid_alive(pid_t pid)
{
    char *st = xasprintf("/proc/%d/stat", (int)pid);
    char *s = e2e_slurp(st, NULL);
    free(st);
    const char *rp = s ? strrchr(s, ')') : NULL;
    bool alive = rp && rp[1] && rp[2] != 'Z';
    free(s);
    return alive;
}

char *e2e_dir_with(const char *name, const char *models, const char *config)
{
    char *dir = xasprintf("%s/%s", e2e_tmpdir(), name), err[256];
    buf_t sh;
    buf_init(&sh, 0);
    buf_printf(&sh, "mkdir -p '%s'", dir);
    char *list = xstrdup(models), *save = NULL;
    for (char *m = strtok_r(list, " ", &save); m; m = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(m, '=');
        if (!eq)
            abort();
        *eq = '\0';
        buf_printf(&sh, " && '%s' synth %s -o '%s/%s' >/dev/null", VARIET_BINARY, m, dir, eq + 1);
    }
    free(list);
    char *out = NULL, *cfg = xasprintf("%s/engine_models.json", dir);
    int rc = e2e_sh(sh.data, &out);
    free(out);
    if (rc != 0 || file_write_atomic(cfg, config, strlen(config), err, sizeof err) != 0) {
        fprintf(stderr, "e2e_dir_with %s: %s\n", name, rc ? sh.data : err);
        abort();
    }
    buf_free(&sh);
    free(cfg);
    return dir;
}

char *e2e_draft_dir(const char *name, int ctx, const char *engine_extra)
{
    const char *srv = e2e_llama_server();
    if (!srv)
        abort();
    char *text = xasprintf("{\"_engine\": {\"llama_server\": \"%s\"%s},\n"
                           " \"spec\": {\"model_path\": \"m.gguf\", \"draft_model_path\": \"d.gguf\", \"args\": [\"-c\", "
                           "\"%d\", \"-np\", \"1\", \"-t\", \"2\"]},\n"
                           " \"bad\": {\"model_path\": \"m.gguf\", \"draft_model_path\": \"o.gguf\", \"args\": [\"-c\", "
                           "\"%d\", \"-np\", \"1\"]}}\n",
                           srv, engine_extra, ctx, ctx);
    char *dir = e2e_dir_with(name, "tiny-qwen35moe=m.gguf tiny-draft=d.gguf tiny-draft-othervocab=o.gguf", text);
    free(text);
    return dir;
}
