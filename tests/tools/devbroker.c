/*
 * devbroker - a development Kafka cluster on librdkafka's mock cluster.
 *
 *   devbroker --brokers N [--topic NAME:PARTITIONS[:REPLICATION]]...
 *             [--advertise ID=HOST:PORT]... [--port-file FILE]
 *
 * On start it prints (and writes to --port-file):
 *   BOOTSTRAP host:port,...            the addresses the mock brokers listen on
 *   BROKER <id> <host:port> <advertised host:port>
 *   READY
 * then reads commands on stdin, one per line, each answered with one line
 * `OK ...` or `ERR reason`:
 *   down ID | up ID | topic NAME PARTITIONS REPLICATION |
 *   error API_KEY ERRCODE COUNT | leader TOPIC PARTITION BROKER | quit
 * It exits 0 on `quit`, EOF on stdin, SIGTERM or SIGINT.
 *
 * Advertised addresses. librdkafka 2.0's mock brokers listen on 127.0.0.1
 * with a kernel-chosen port and advertise exactly the address they listen on
 * in Metadata (the header has no advertised-listener setting). A real
 * deployment of brokerside sets the broker's advertised.listeners to the
 * sidecar's address; to reproduce that here, `--advertise ID=HOST:PORT`
 * makes broker ID report HOST:PORT in Metadata (and FindCoordinator) while it
 * keeps listening on its own ephemeral port. This tool does so by defining
 * bind() and getsockname() itself: the dynamic linker resolves librdkafka's
 * calls to these definitions first, they pass every call through to libc and
 * change only the listening sockets of brokers that have an --advertise
 * entry. Only this test tool does this; brokerside itself is not involved.
 *
 * What the mock speaks (librdkafka 2.0.2, from its ApiVersions answer):
 * Produce 0-7, Fetch 0-11, ListOffsets 0-5, Metadata 0-2, OffsetCommit 0-7,
 * OffsetFetch 0-5, FindCoordinator 0-2, JoinGroup 0-5, Heartbeat 0-3,
 * LeaveGroup 0-1, SyncGroup 0-3, ApiVersions 0-2, InitProducerId 0-4 and the
 * transaction APIs. Apart from InitProducerId v2+, none of these is a
 * flexible (KIP-482) version: flexible encodings of the APIs brokerside
 * rewrites (Metadata v9+, FindCoordinator v3+, ...) need schema-built unit tests.
 */
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define DEVBROKER_MAX_BROKERS 16
#define DEVBROKER_MAX_TOPICS 32

/* One broker's listening address as librdkafka sees it and as it really is. */
typedef struct devbroker_slot {
    bool advertise_set;           /* an --advertise entry exists for this broker */
    struct sockaddr_in advertised; /* what getsockname() reports to librdkafka */
    bool bound;                   /* the real address below is known */
    struct sockaddr_in real;      /* where the socket really listens */
    int fd;                       /* current listening socket, -1 if none */
} devbroker_slot;

/* Process-wide state of the interposed socket calls (librdkafka's mock
 * thread calls them, hence the mutex). */
static struct {
    pthread_mutex_t lock;
    devbroker_slot slots[DEVBROKER_MAX_BROKERS]; /* index = broker id - 1 */
    int n_slots;                                 /* brokers in the cluster */
    int next_new;                                /* next broker whose first bind we expect */
} g_ports = {.lock = PTHREAD_MUTEX_INITIALIZER};

static volatile sig_atomic_t g_stop;

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*getsockname_fn)(int, struct sockaddr *, socklen_t *);

/* True if `a` is the address librdkafka asks for when it creates a new mock
 * broker listener: AF_INET 127.0.0.1 port 0. */
static bool is_new_mock_listener(const struct sockaddr_in *a) {
    return a->sin_family == AF_INET && a->sin_addr.s_addr == htonl(INADDR_LOOPBACK) &&
           a->sin_port == 0;
}

/* Find the slot whose advertised address equals `a` (a re-bind after `up`
 * uses the address getsockname() returned). Caller holds g_ports.lock.
 * Returns the index or -1. */
static int slot_by_advertised(const struct sockaddr_in *a) {
    for (int i = 0; i < g_ports.n_slots; i++) {
        const devbroker_slot *s = &g_ports.slots[i];
        if (s->advertise_set && s->advertised.sin_addr.s_addr == a->sin_addr.s_addr &&
            s->advertised.sin_port == a->sin_port)
            return i;
    }
    return -1;
}

/*
 * bind(2), as librdkafka sees it. New mock listeners (127.0.0.1:0) are
 * assigned to broker ids in creation order; a bind to a broker's advertised
 * address (librdkafka re-creating a listener) goes to that broker's real
 * address instead. Everything else passes through unchanged.
 */
int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind;
    if (!real_bind) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    if (!real_bind) {
        errno = ENOSYS;
        return -1;
    }
    if (!addr || len < sizeof(struct sockaddr_in) || addr->sa_family != AF_INET)
        return real_bind(fd, addr, len);

    struct sockaddr_in want;
    memcpy(&want, addr, sizeof(want));
    pthread_mutex_lock(&g_ports.lock);
    int idx = -1;
    if (is_new_mock_listener(&want) && g_ports.next_new < g_ports.n_slots)
        idx = g_ports.next_new++;
    else
        idx = slot_by_advertised(&want);
    int rc;
    if (idx < 0) {
        rc = real_bind(fd, addr, len);
    } else {
        devbroker_slot *s = &g_ports.slots[idx];
        /* Re-use the port of an earlier incarnation so the BROKER line printed
         * at start stays true after down/up. */
        if (s->bound) want = s->real;
        else want.sin_port = 0, want.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rc = real_bind(fd, (const struct sockaddr *)&want, sizeof(want));
        if (rc == 0) {
            socklen_t rl = sizeof(s->real);
            getsockname_fn real_gsn = (getsockname_fn)dlsym(RTLD_NEXT, "getsockname");
            if (real_gsn && real_gsn(fd, (struct sockaddr *)&s->real, &rl) == 0) s->bound = true;
            s->fd = fd;
        }
    }
    pthread_mutex_unlock(&g_ports.lock);
    return rc;
}

/*
 * getsockname(2), as librdkafka sees it: a broker listener with an
 * --advertise entry reports its advertised address (librdkafka copies it
 * into Metadata); everything else is answered by libc.
 */
int getsockname(int fd, struct sockaddr *addr, socklen_t *len) {
    static getsockname_fn real_gsn;
    if (!real_gsn) real_gsn = (getsockname_fn)dlsym(RTLD_NEXT, "getsockname");
    if (!real_gsn) {
        errno = ENOSYS;
        return -1;
    }
    int rc = real_gsn(fd, addr, len);
    if (rc != 0 || !addr || !len || *len < sizeof(struct sockaddr_in)) return rc;
    pthread_mutex_lock(&g_ports.lock);
    for (int i = 0; i < g_ports.n_slots; i++) {
        const devbroker_slot *s = &g_ports.slots[i];
        if (s->fd == fd && s->advertise_set) {
            memcpy(addr, &s->advertised, sizeof(s->advertised));
            *len = sizeof(s->advertised);
            break;
        }
    }
    pthread_mutex_unlock(&g_ports.lock);
    return rc;
}

/* Async-signal-safe: only records that we were asked to stop. */
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

/* Print usage to stderr and return exit code 2. */
static int usage(void) {
    fprintf(stderr,
            "usage: devbroker --brokers N [--topic NAME:PARTITIONS[:REPLICATION]]...\n"
            "                 [--advertise ID=HOST:PORT]... [--port-file FILE]\n"
            "commands on stdin: down ID | up ID | topic NAME PARTITIONS REPLICATION |\n"
            "  error API_KEY ERRCODE COUNT | leader TOPIC PARTITION BROKER | quit\n");
    return 2;
}

/* Parse a decimal integer in [min,max] from the whole of `s`. Returns false
 * if `s` is empty, has trailing characters or is out of range. */
static bool parse_long(const char *s, long min, long max, long *out) {
    if (!s || !*s) return false;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max) return false;
    *out = v;
    return true;
}

/* Parse "ID=IPV4:PORT" into the slot table. Returns false with a message on
 * stderr if malformed. Only numeric IPv4 hosts: librdkafka's mock formats
 * the advertised host from a sockaddr_in. */
static bool parse_advertise(const char *arg, int n_brokers) {
    char buf[128];
    if (strlen(arg) >= sizeof(buf)) goto bad;
    strcpy(buf, arg);
    char *eq = strchr(buf, '=');
    char *colon = strrchr(buf, ':');
    if (!eq || !colon || colon < eq) goto bad;
    *eq = '\0';
    *colon = '\0';
    long id, port;
    if (!parse_long(buf, 1, n_brokers, &id) || !parse_long(colon + 1, 1, 65535, &port)) goto bad;
    devbroker_slot *s = &g_ports.slots[id - 1];
    memset(&s->advertised, 0, sizeof(s->advertised));
    s->advertised.sin_family = AF_INET;
    s->advertised.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, eq + 1, &s->advertised.sin_addr) != 1) goto bad;
    s->advertise_set = true;
    return true;
bad:
    fprintf(stderr, "devbroker: bad --advertise '%s' (want ID=IPV4:PORT, ID in 1..%d)\n", arg,
            n_brokers);
    return false;
}

/* Create topic "NAME PARTITIONS REPLICATION" (fields already split). Writes
 * the answer line into reply[replylen]. */
static void cmd_topic(rd_kafka_mock_cluster_t *mc, const char *name, const char *parts,
                      const char *repl, char *reply, size_t replylen) {
    long p, r;
    if (!name || !parse_long(parts, 1, 100000, &p) || !parse_long(repl, 1, 1000, &r)) {
        snprintf(reply, replylen, "ERR usage: topic NAME PARTITIONS REPLICATION");
        return;
    }
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, name, (int)p, (int)r);
    if (err)
        snprintf(reply, replylen, "ERR topic %s: %s", name, rd_kafka_err2str(err));
    else
        snprintf(reply, replylen, "OK topic %s %ld %ld", name, p, r);
}

/* Execute one command line (modified in place) and write the answer into
 * reply[replylen]. Sets *quit for `quit`. */
static void run_command(rd_kafka_mock_cluster_t *mc, int n_brokers, char *line, char *reply,
                        size_t replylen, bool *quit) {
    char *save = NULL;
    char *cmd = strtok_r(line, " \t\r\n", &save);
    char *a1 = strtok_r(NULL, " \t\r\n", &save);
    char *a2 = strtok_r(NULL, " \t\r\n", &save);
    char *a3 = strtok_r(NULL, " \t\r\n", &save);
    char *extra = strtok_r(NULL, " \t\r\n", &save);
    long id, v2, v3;
    rd_kafka_resp_err_t err;

    if (!cmd) {
        snprintf(reply, replylen, "ERR empty command");
    } else if (extra) {
        snprintf(reply, replylen, "ERR too many arguments");
    } else if (!strcmp(cmd, "quit")) {
        *quit = true;
        snprintf(reply, replylen, "OK quit");
    } else if (!strcmp(cmd, "down") || !strcmp(cmd, "up")) {
        if (!parse_long(a1, 1, n_brokers, &id) || a2) {
            snprintf(reply, replylen, "ERR usage: %s ID (1..%d)", cmd, n_brokers);
            return;
        }
        err = !strcmp(cmd, "down") ? rd_kafka_mock_broker_set_down(mc, (int32_t)id)
                                   : rd_kafka_mock_broker_set_up(mc, (int32_t)id);
        if (err)
            snprintf(reply, replylen, "ERR %s %ld: %s", cmd, id, rd_kafka_err2str(err));
        else
            snprintf(reply, replylen, "OK %s %ld", cmd, id);
    } else if (!strcmp(cmd, "topic")) {
        cmd_topic(mc, a1, a2, a3, reply, replylen);
    } else if (!strcmp(cmd, "error")) {
        long key;
        if (!parse_long(a1, 0, 32767, &key) || !parse_long(a2, -32768, 32767, &v2) ||
            !parse_long(a3, 1, 10000, &v3)) {
            snprintf(reply, replylen, "ERR usage: error API_KEY ERRCODE COUNT");
            return;
        }
        rd_kafka_resp_err_t *errs = calloc((size_t)v3, sizeof(*errs));
        if (!errs) {
            snprintf(reply, replylen, "ERR out of memory");
            return;
        }
        for (long i = 0; i < v3; i++) errs[i] = (rd_kafka_resp_err_t)v2;
        rd_kafka_mock_push_request_errors_array(mc, (int16_t)key, (size_t)v3, errs);
        free(errs);
        snprintf(reply, replylen, "OK error %ld %ld %ld", key, v2, v3);
    } else if (!strcmp(cmd, "leader")) {
        if (!a1 || !parse_long(a2, 0, 100000, &v2) || !parse_long(a3, 1, n_brokers, &v3)) {
            snprintf(reply, replylen, "ERR usage: leader TOPIC PARTITION BROKER");
            return;
        }
        err = rd_kafka_mock_partition_set_leader(mc, a1, (int32_t)v2, (int32_t)v3);
        if (err)
            snprintf(reply, replylen, "ERR leader %s %ld: %s", a1, v2, rd_kafka_err2str(err));
        else
            snprintf(reply, replylen, "OK leader %s %ld %ld", a1, v2, v3);
    } else {
        snprintf(reply, replylen, "ERR unknown command '%s'", cmd);
    }
}

/* Write the start-up lines to `f`. */
static void print_addresses(FILE *f, int n_brokers) {
    char host[INET_ADDRSTRLEN], adv[INET_ADDRSTRLEN];
    fprintf(f, "BOOTSTRAP ");
    for (int i = 0; i < n_brokers; i++) {
        const devbroker_slot *s = &g_ports.slots[i];
        inet_ntop(AF_INET, &s->real.sin_addr, host, sizeof(host));
        fprintf(f, "%s%s:%u", i ? "," : "", host, ntohs(s->real.sin_port));
    }
    fprintf(f, "\n");
    for (int i = 0; i < n_brokers; i++) {
        const devbroker_slot *s = &g_ports.slots[i];
        const struct sockaddr_in *a = s->advertise_set ? &s->advertised : &s->real;
        inet_ntop(AF_INET, &s->real.sin_addr, host, sizeof(host));
        inet_ntop(AF_INET, &a->sin_addr, adv, sizeof(adv));
        fprintf(f, "BROKER %d %s:%u %s:%u\n", i + 1, host, ntohs(s->real.sin_port), adv,
                ntohs(a->sin_port));
    }
    fprintf(f, "READY\n");
    fflush(f);
}

/* Read one line from stdin without stdio buffering so a signal interrupts
 * the wait (poll returns EINTR). Returns 1 with a line, 0 on EOF or stop,
 * -1 if the line is too long (the rest of it is discarded). */
static int read_line(char *buf, size_t cap) {
    size_t n = 0;
    bool overflow = false;
    for (;;) {
        if (g_stop) return 0;
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int pr = poll(&pfd, 1, -1);
        if (pr < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        char c;
        ssize_t r = read(STDIN_FILENO, &c, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 0;
        if (c == '\n') {
            buf[n] = '\0';
            return overflow ? -1 : 1;
        }
        if (n + 1 < cap) buf[n++] = c;
        else overflow = true;
    }
}

int main(int argc, char **argv) {
    long n_brokers = 0;
    const char *port_file = NULL;
    const char *topics[DEVBROKER_MAX_TOPICS];
    const char *advertise[DEVBROKER_MAX_BROKERS];
    int n_topics = 0, n_adv = 0, rc = 1;
    rd_kafka_t *rk = NULL;
    rd_kafka_mock_cluster_t *mc = NULL;
    char errstr[512];

    /* Every option takes one value: consume them in pairs. */
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(), 0;
        if (!v) return usage();
        if (!strcmp(a, "--brokers")) {
            if (!parse_long(v, 1, DEVBROKER_MAX_BROKERS, &n_brokers)) return usage();
        } else if (!strcmp(a, "--topic")) {
            if (n_topics == DEVBROKER_MAX_TOPICS) return usage();
            topics[n_topics++] = v;
        } else if (!strcmp(a, "--advertise")) {
            if (n_adv == DEVBROKER_MAX_BROKERS) return usage();
            advertise[n_adv++] = v;
        } else if (!strcmp(a, "--port-file")) {
            port_file = v;
        } else {
            return usage();
        }
    }
    if (n_brokers < 1) return usage();
    g_ports.n_slots = (int)n_brokers;
    for (int i = 0; i < g_ports.n_slots; i++) g_ports.slots[i].fd = -1;
    for (int i = 0; i < n_adv; i++)
        if (!parse_advertise(advertise[i], (int)n_brokers)) return 2;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() must return EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The rd_kafka_t only hosts the mock cluster: it never connects anywhere. */
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "devbroker: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "devbroker: rd_kafka_new: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    mc = rd_kafka_mock_cluster_new(rk, (int)n_brokers);
    if (!mc) {
        fprintf(stderr, "devbroker: cannot create the mock cluster (see librdkafka log)\n");
        goto out;
    }
    for (int i = 0; i < g_ports.n_slots; i++) {
        if (!g_ports.slots[i].bound) {
            fprintf(stderr, "devbroker: broker %d has no listening socket\n", i + 1);
            goto out;
        }
    }
    for (int i = 0; i < n_topics; i++) {
        char spec[256], reply[512];
        if (strlen(topics[i]) >= sizeof(spec)) {
            fprintf(stderr, "devbroker: --topic too long\n");
            goto out;
        }
        strcpy(spec, topics[i]);
        char *save = NULL;
        char *name = strtok_r(spec, ":", &save);
        char *parts = strtok_r(NULL, ":", &save);
        char *repl = strtok_r(NULL, ":", &save);
        cmd_topic(mc, name, parts ? parts : "1", repl ? repl : "1", reply, sizeof(reply));
        if (strncmp(reply, "OK", 2) != 0) {
            fprintf(stderr, "devbroker: --topic %s: %s\n", topics[i], reply);
            goto out;
        }
    }
    if (port_file) {
        FILE *pf = fopen(port_file, "w");
        if (!pf) {
            fprintf(stderr, "devbroker: cannot write %s: %s\n", port_file, strerror(errno));
            goto out;
        }
        print_addresses(pf, (int)n_brokers);
        if (fclose(pf) != 0) {
            fprintf(stderr, "devbroker: cannot write %s: %s\n", port_file, strerror(errno));
            goto out;
        }
    }
    print_addresses(stdout, (int)n_brokers);

    char line[1024], reply[1200];
    bool quit = false;
    while (!quit) {
        int r = read_line(line, sizeof(line));
        if (r == 0) break;
        if (r < 0)
            snprintf(reply, sizeof(reply), "ERR line too long");
        else
            run_command(mc, (int)n_brokers, line, reply, sizeof(reply), &quit);
        printf("%s\n", reply);
        fflush(stdout);
    }
    rc = 0;
out:
    if (mc) rd_kafka_mock_cluster_destroy(mc);
    if (rk) rd_kafka_destroy(rk);
    return rc;
}
