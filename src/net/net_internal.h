/*
 * net_internal.h - structures shared by the files of src/net (server.c,
 * conn.c, probe.c). Not a public contract: other modules use net.h.
 */
#ifndef BROKERSIDE_NET_INTERNAL_H
#define BROKERSIDE_NET_INTERNAL_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "brokerside/buf.h"
#include "brokerside/net_config.h"
#include "brokerside/metrics.h"
#include "brokerside/net.h"
#include "brokerside/session.h"
#include "brokerside/tls.h"

typedef struct bs_worker bs_worker;
typedef struct bs_conn bs_conn;
typedef struct bs_listener bs_listener;

/* Cached handshake-failure counters of one listener, keyed by reason text. */
#define BS_NET_MAX_REASONS 24

/* The reason labels of brokerside_proxy_protocol_rejected_total, in the
 * order of bs_listener.m_pp_rejected (conn.c defines the array). */
#define BS_NET_PP_REASONS 7
extern const char *const bs_net_pp_reasons[BS_NET_PP_REASONS];

/* Readiness probe of one listener's upstream (control thread only). */
typedef struct bs_probe {
    ev_timer tick;    /* every admin.probe_interval_s */
    ev_timer timeout; /* bounds one probe attempt */
    ev_io io;
    bs_listener *l;
    int fd;
    SSL *ssl;
    int step; /* probe_step in probe.c */
    int32_t correlation_id;
    uint8_t rx[4096]; /* the ApiVersions response frame */
    size_t rx_len;
    uint32_t rx_need; /* total frame size once known */
    uint8_t tx[64];
    size_t tx_len, tx_off;
    bool ran_once; /* at least one probe finished */
    bool up;       /* last probe succeeded */
    char why[160]; /* last failure, for readiness */
} bs_probe;

/* One configured listener; shared by every worker (read-only after start,
 * except the atomics, the TLS slots and the locked reason cache). */
struct bs_listener {
    bs_server *srv;
    const bs_listener_config *cfg;
    size_t index;
    bool has_tls, has_utls;
    bs_tls_slot tls;  /* termination context, when has_tls */
    bs_tls_slot utls; /* origination context, when has_utls */
    const bs_session_ops *session_ops;
    void *session_ctx;
    char labels[256]; /* listener="name", escaped */
    /* PROXY protocol listeners (cfg->proxy_protocol): rejections by
     * bs_net_pp_reasons[i], accepted headers by version (1, 2), and headers
     * without a client address. NULL otherwise. */
    bs_metric *m_pp_rejected[BS_NET_PP_REASONS], *m_pp_accepted[2], *m_pp_local;
    bs_metric *m_open, *m_total, *m_rejected_limit, *m_bytes_c2u, *m_bytes_u2c, *m_handshakes,
        *m_upstream_fail, *m_up, *m_idle, *m_truncated_c, *m_truncated_u, *m_overdue,
        *m_pauses_accept, *m_pauses_upstream;
    pthread_mutex_t reason_lock;
    struct {
        char reason[32];
        bs_metric *m;
    } reasons[BS_NET_MAX_REASONS];
    size_t n_reasons;
    _Atomic int64_t last_limit_log;    /* second of the last "limit" log line */
    _Atomic int64_t last_upstream_log; /* second of the last "upstream down" log line */
    bs_probe probe;
};

/* A listening socket of one listener on one worker. */
typedef struct bs_wlistener {
    ev_io io;
    ev_timer pause; /* out of descriptors: accepting resumes after a pause */
    int fd;
    bs_listener *l;
    bs_worker *w;
} bs_wlistener;

/* A pooled direction buffer; its bytes (b.data) are a separate allocation
 * of b.cap bytes, which a session may swap with another buffer's. */
typedef struct bs_bufnode {
    bs_buf b;
    struct bs_bufnode *next;
} bs_bufnode;

typedef enum bs_msg_type {
    BS_MSG_STOP_ACCEPT = 1, /* close listening sockets, drain */
    BS_MSG_STOP_NOW = 2,    /* close every connection and exit */
    BS_MSG_RELOAD = 3,      /* adopt msg->cfg (limits, kafka settings) */
} bs_msg_type;

typedef struct bs_msg {
    struct bs_msg *next;
    bs_msg_type type;
    const bs_net_config *cfg; /* BS_MSG_RELOAD: kept alive by the caller until free */
} bs_msg;

struct bs_worker {
    bs_server *srv;
    size_t index;
    struct ev_loop *loop;
    pthread_t thread;
    bool thread_started;
    ev_async wake;
    pthread_mutex_t qlock;
    bs_msg *qhead, *qtail;
    bs_wlistener *wl; /* one per listener */
    bs_conn *conns;   /* every open connection of this worker */
    size_t n_conns;
    const bs_net_config *cfg;    /* latest applied config as this worker knows it (BS_MSG_RELOAD) */
    bs_limits_config limits; /* copy of cfg->limits */
    bs_bufnode *free_bufs;
    size_t n_free_bufs;
    bool draining;
};

struct bs_server {
    struct ev_loop *control;
    const bs_net_config *cfg;  /* currently applied (reloadable settings) */
    bs_listener *listeners;
    size_t n_listeners;
    bs_worker *workers;
    size_t n_workers;
    atomic_uint n_open; /* client connections, process-wide (limit) */
    atomic_size_t workers_done;
    ev_async done_async;
    ev_timer grace_timer;
    void (*on_done)(void *arg);
    void *on_done_arg;
    bool started, shutting_down, done_reported;
    atomic_bool stopped_hard; /* read by workers */
    ev_tstamp start_time;
    unsigned reloads;
    bs_metric *m_reload_ok, *m_reload_failed;
    bs_worker_hooks whooks; /* bs_server_set_worker_hooks; zeroed = none */
    bs_conn_observer_fn observer; /* set before start, read by workers */
    void *observer_ctx;
    atomic_uint_fast64_t next_conn_id;
};

/* conn.c: accept callback of a listening socket (worker thread). */
void bs_net_accept_cb(struct ev_loop *loop, ev_io *w, int revents);
/* conn.c: timer callback that resumes accepting after an EMFILE pause. */
void bs_net_accept_resume_cb(struct ev_loop *loop, ev_timer *t, int revents);
/* conn.c: enter drain mode: close quiescent connections now and the rest as
 * they become quiescent (worker thread). */
void bs_net_worker_drain(bs_worker *w);
/* conn.c: close every connection of the worker at once (worker thread). */
void bs_net_worker_close_all(bs_worker *w);
/* conn.c: free the worker's pooled buffers (worker thread, or after join). */
void bs_net_worker_free_bufs(bs_worker *w);
/* conn.c: the counter of handshake failures of `l` for `reason` (cached). */
bs_metric *bs_net_failure_metric(bs_listener *l, const char *reason);
/* conn.c: "ip:port" of a socket address into out[outlen]. */
void bs_net_format_addr(const struct sockaddr *sa, char *out, size_t outlen);
/* conn.c: true at most once per second per `last` (rate-limited logs). */
bool bs_net_ratelimit(_Atomic int64_t *last);

/* probe.c: start/stop the readiness probe of every listener (control thread). */
void bs_net_probes_start(bs_server *s);
void bs_net_probes_stop(bs_server *s);
/* probe.c: apply a new probe interval. */
void bs_net_probes_set_interval(bs_server *s, double interval_s);

#endif
