/*
 * aws_test_util.h - helpers shared by the aws/ unit tests: start and stop
 * tests/unit/aws_fake_server.py on an ephemeral port, and one blocking HTTP
 * GET to read its counters and request logs. Header-only (static functions).
 */
#ifndef BROKERSIDE_AWS_TEST_UTIL_H
#define BROKERSIDE_AWS_TEST_UTIL_H

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

typedef struct fake_server {
    pid_t pid;
    int stdin_fd; /* closing it makes the server exit */
    int port;
} fake_server;

/* Start the fake server (HTTPS with cert/key on `bind` when cert is non-NULL); false (and nothing
 * left running) on failure. The server also exits on its own if this process dies (its stdin
 * closes). */
static bool fake_server_start_args(fake_server *s, const char *cert, const char *key,
                                   const char *bind)
{
    int in[2], out[2];
    memset(s, 0, sizeof *s);
    if (pipe(in) != 0) return false;
    if (pipe(out) != 0) {
        close(in[0]);
        close(in[1]);
        return false;
    }
    const char *src = getenv("BS_SOURCE_DIR");
    char script[1024];
    snprintf(script, sizeof script, "%s/tests/unit/aws_fake_server.py", src ? src : "..");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        if (cert)
            execl("/usr/bin/python3", "python3", script, "--tls", cert, key,
                  bind ? bind : "127.0.0.1", (char *)NULL);
        else
            execl("/usr/bin/python3", "python3", script, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (pid < 0) {
        close(in[1]);
        close(out[0]);
        return false;
    }
    s->pid = pid;
    s->stdin_fd = in[1];
    char line[64] = {0};
    size_t got = 0;
    struct pollfd pfd = {.fd = out[0], .events = POLLIN};
    while (got < sizeof line - 1 && !strchr(line, '\n')) {
        if (poll(&pfd, 1, 20000) <= 0) break; /* generous: python start-up on a busy machine */
        ssize_t n = read(out[0], line + got, sizeof line - 1 - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(out[0]);
    if (sscanf(line, "PORT %d", &s->port) != 1) {
        close(s->stdin_fd);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        memset(s, 0, sizeof *s);
        return false;
    }
    return true;
}

static bool fake_server_start(fake_server *s)
{
    return fake_server_start_args(s, NULL, NULL, NULL);
}

/* Stop the server (EOF on stdin, then SIGKILL if it lingers) and reap it. */
static void fake_server_stop(fake_server *s)
{
    if (s->pid <= 0) return;
    close(s->stdin_fd);
    for (int i = 0; i < 50; i++) {
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            return;
        }
        usleep(100 * 1000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

static size_t test_http_collect(char *p, size_t sz, size_t n, void *ud)
{
    char **buf = ud;
    size_t old = *buf ? strlen(*buf) : 0;
    char *nb = realloc(*buf, old + sz * n + 1);
    if (!nb) return 0;
    memcpy(nb + old, p, sz * n);
    nb[old + sz * n] = '\0';
    *buf = nb;
    return sz * n;
}

/* Blocking request to the fake server; returns the malloc'd body or NULL. */
static char *test_http(const char *method, int port, const char *path)
{
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    char *body = NULL;
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, test_http_collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    if (curl_easy_perform(h) != CURLE_OK) {
        free(body);
        body = NULL;
    }
    curl_easy_cleanup(h);
    return body;
}

/* A loopback port with nothing listening (bound, then closed). */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

#endif
