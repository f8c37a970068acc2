/*
 * server.c - listeners, worker threads, the control->worker message queue,
 * graceful shutdown and live reload. See net.h for the contract.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "brokerside/log.h"
#include "brokerside/sidecar_action.h"
#include "net_internal.h"

#define LISTEN_BACKLOG 1024

/* ---------------------------------------------------------------- messages */

/* Queue a message for worker `w` and wake its loop (control thread). A
 * message that cannot be allocated is logged; STOP_NOW is never lost because
 * the worker also checks srv->stopped_hard. */
static void worker_post(bs_worker *w, bs_msg_type type, const bs_net_config *cfg)
{
    bs_msg *m = calloc(1, sizeof *m);
    if (!m) {
        BS_LOG_ERRORF("net", "out of memory posting a message to worker %zu", w->index);
    } else {
        m->type = type;
        m->cfg = cfg;
        pthread_mutex_lock(&w->qlock);
        if (w->qtail)
            w->qtail->next = m;
        else
            w->qhead = m;
        w->qtail = m;
        pthread_mutex_unlock(&w->qlock);
    }
    ev_async_send(w->loop, &w->wake);
}

/* Close the listening sockets of `w` (worker thread). */
static void worker_close_listeners(bs_worker *w)
{
    for (size_t i = 0; i < w->srv->n_listeners; i++) {
        bs_wlistener *wl = &w->wl[i];
        if (wl->fd < 0) continue;
        ev_io_stop(w->loop, &wl->io);
        ev_timer_stop(w->loop, &wl->pause);
        close(wl->fd);
        wl->fd = -1;
    }
}

/* Drain the message queue (worker thread). */
static void worker_wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)revents;
    bs_worker *w = bs_container_of(a, bs_worker, wake);
    pthread_mutex_lock(&w->qlock);
    bs_msg *m = w->qhead;
    w->qhead = w->qtail = NULL;
    pthread_mutex_unlock(&w->qlock);
    bool stop_now = atomic_load(&w->srv->stopped_hard);
    while (m) {
        bs_msg *next = m->next;
        switch (m->type) {
        case BS_MSG_STOP_ACCEPT:
            worker_close_listeners(w);
            bs_net_worker_drain(w);
            break;
        case BS_MSG_STOP_NOW:
            stop_now = true;
            break;
        case BS_MSG_RELOAD:
            /* Pooled buffers of the old size would never be reused. */
            if (m->cfg->limits.buffer_bytes != w->limits.buffer_bytes) bs_net_worker_free_bufs(w);
            w->cfg = m->cfg;
            w->limits = m->cfg->limits;
            break;
        }
        free(m);
        m = next;
    }
    if (stop_now) {
        worker_close_listeners(w);
        bs_net_worker_close_all(w);
        ev_break(loop, EVBREAK_ALL);
    }
}

/* Worker thread body: run the loop until drained or stopped, then clean up
 * and tell the control thread. */
static void *worker_main(void *arg)
{
    bs_worker *w = arg;
    const bs_worker_hooks *h = &w->srv->whooks;
    void *hstate = NULL;
    if (h->init && h->init(h->arg, w->loop, &hstate) != BS_OK)
        BS_LOG_ERRORF("net", "worker set-up failed; its connections may be refused");
    ev_run(w->loop, 0);
    worker_close_listeners(w);
    bs_net_worker_close_all(w);
    if (h->fini) h->fini(h->arg, hstate);
    bs_net_worker_free_bufs(w);
    ev_async_stop(w->loop, &w->wake);
    atomic_fetch_add(&w->srv->workers_done, 1);
    ev_async_send(w->srv->control, &w->srv->done_async);
    return NULL;
}

/* Control thread: a worker finished; report once all have. */
static void done_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)revents;
    bs_server *s = bs_container_of(a, bs_server, done_async);
    if (atomic_load(&s->workers_done) < s->n_workers || s->done_reported) return;
    s->done_reported = true;
    ev_timer_stop(loop, &s->grace_timer);
    BS_LOG_INFOF("main", "all connections closed; workers stopped");
    if (s->on_done) s->on_done(s->on_done_arg);
}

/* ---------------------------------------------------------------- set-up */

/* Bind one SO_REUSEPORT listening socket for `l` (one per worker). */
static bs_status listen_socket(const bs_listener_config *l, int *out, char *err, size_t errlen)
{
    int fd = socket(l->bind.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "listener %s: socket: %s", l->name, strerror(errno));
        return BS_E_IO;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (const struct sockaddr *)&l->bind.addr, l->bind.addrlen) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(err, errlen, "listener %s: cannot listen on %s: %s", l->name, l->bind.text,
                 strerror(errno));
        close(fd);
        return BS_E_IO;
    }
    *out = fd;
    return BS_OK;
}

/* Register the metric objects of listener `l` (pointers kept: no lookups on the data path). */
static void listener_metrics(bs_listener *l)
{
    char esc[200], lab[sizeof l->labels + 64];
    bs_metrics_label_escape(l->cfg->name, esc, sizeof esc);
    snprintf(l->labels, sizeof l->labels, "listener=\"%s\"", esc);
    l->m_open =
        bs_metrics_gauge("brokerside_connections_open", "Client connections open now", l->labels);
    l->m_total = bs_metrics_counter("brokerside_connections_total", "Client connections accepted",
                                    l->labels);
    snprintf(lab, sizeof lab, "%s,reason=\"limit\"", l->labels);
    l->m_rejected_limit = bs_metrics_counter("brokerside_connections_rejected_total",
                                             "Client connections refused, by reason", lab);
    snprintf(lab, sizeof lab, "%s,direction=\"client_to_upstream\"", l->labels);
    l->m_bytes_c2u =
        bs_metrics_counter("brokerside_bytes_total", "Bytes forwarded, by direction", lab);
    snprintf(lab, sizeof lab, "%s,direction=\"upstream_to_client\"", l->labels);
    l->m_bytes_u2c =
        bs_metrics_counter("brokerside_bytes_total", "Bytes forwarded, by direction", lab);
    l->m_upstream_fail =
        bs_metrics_counter("brokerside_upstream_connect_failures_total",
                           "Failed connects (or TLS handshakes) to the upstream", l->labels);
    snprintf(lab, sizeof lab, "%s,at=\"accept\"", l->labels);
    l->m_pauses_accept = bs_metrics_counter(
        "brokerside_accept_pauses_total",
        "Times a worker paused accepting on the listener: out of descriptors or memory", lab);
    snprintf(lab, sizeof lab, "%s,at=\"upstream\"", l->labels);
    l->m_pauses_upstream = bs_metrics_counter(
        "brokerside_accept_pauses_total",
        "Times a worker paused accepting on the listener: out of descriptors or memory", lab);
    l->m_up =
        bs_metrics_gauge("brokerside_upstream_up",
                         "1 if the last readiness probe of the upstream succeeded", l->labels);
    l->m_idle = bs_metrics_counter("brokerside_idle_timeouts_total",
                                   "Connections closed for being idle", l->labels);
    snprintf(lab, sizeof lab, "%s,side=\"client\"", l->labels);
    l->m_truncated_c = bs_metrics_counter("brokerside_connections_truncated_total",
                                          "Connections closed because a side ended inside a "
                                          "message, by side",
                                          lab);
    l->m_overdue = bs_metrics_counter("brokerside_connections_overdue_total",
                                      "Connections closed because the client did not complete "
                                      "a message within its deadline (kafka.frame_timeout_s)",
                                      l->labels);
    snprintf(lab, sizeof lab, "%s,side=\"upstream\"", l->labels);
    l->m_truncated_u = bs_metrics_counter("brokerside_connections_truncated_total",
                                          "Connections closed because a side ended inside a "
                                          "message, by side",
                                          lab);
    if (l->has_tls)
        l->m_handshakes = bs_metrics_counter("brokerside_tls_handshakes_total",
                                             "Completed TLS handshakes with clients", l->labels);
    if (l->cfg->proxy_protocol) {
        /* Every reason up front, so a dashboard sees zeros before the first rejection. */
        for (size_t i = 0; i < BS_NET_PP_REASONS; i++) {
            snprintf(lab, sizeof lab, "%s,reason=\"%s\"", l->labels, bs_net_pp_reasons[i]);
            l->m_pp_rejected[i] = bs_metrics_counter(
                "brokerside_proxy_protocol_rejected_total",
                "Connections closed for their PROXY protocol header (or its absence), by reason",
                lab);
        }
        for (int v = 1; v <= 2; v++) {
            snprintf(lab, sizeof lab, "%s,version=\"%d\"", l->labels, v);
            l->m_pp_accepted[v - 1] = bs_metrics_counter(
                "brokerside_proxy_protocol_accepted_total",
                "Connections whose PROXY protocol header was accepted, by version", lab);
        }
        l->m_pp_local = bs_metrics_counter(
            "brokerside_proxy_protocol_local_total",
            "Accepted PROXY headers that carried no client address (v2 LOCAL, v1 UNKNOWN, "
            "AF_UNSPEC, AF_UNIX): the connection's own address is used",
            l->labels);
    }
}

/* Build the TLS contexts of listener config `lc` into *srv_ctx / *cli_ctx
 * (NULL when not configured). On failure logs and fills err. */
static bs_status build_tls(const bs_listener_config *lc, SSL_CTX **srv_ctx, SSL_CTX **cli_ctx,
                           char *err, size_t errlen)
{
    char why[512];
    bs_status st = BS_OK;
    *srv_ctx = *cli_ctx = NULL;
    if (lc->tls) {
        why[0] = 0;
        st = bs_tls_server_ctx_new(lc->tls, srv_ctx, why, sizeof why);
        if (st != BS_OK) {
            snprintf(err, errlen, "listeners %s: tls: %s", lc->name, why);
            goto out;
        }
    }
    if (lc->upstream_tls) {
        why[0] = 0;
        st = bs_tls_client_ctx_new(lc->upstream_tls, cli_ctx, why, sizeof why);
        if (st != BS_OK) {
            snprintf(err, errlen, "listeners %s: upstream_tls: %s", lc->name, why);
            goto out;
        }
    }
out:
    if (st != BS_OK) {
        SSL_CTX_free(*srv_ctx);
        *srv_ctx = NULL;
    }
    return st;
}

/* SHA-256 fingerprint (hex) of the certificate a server context presents,
 * its subject and its notAfter into the buffers ("" when none). */
static void cert_facts(SSL_CTX *ctx, char fp[65], char *subject, size_t sublen, char na[32])
{
    fp[0] = subject[0] = na[0] = 0;
    X509 *x = ctx ? SSL_CTX_get0_certificate(ctx) : NULL;
    if (!x) return;
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1 && mdlen == 32)
        for (int i = 0; i < 32; i++)
            snprintf(fp + 2 * i, 3, "%02x", md[i]);
    X509_NAME_oneline(X509_get_subject_name(x), subject, (int)sublen);
    BIO *b = BIO_new(BIO_s_mem());
    if (b && ASN1_TIME_print(b, X509_get0_notAfter(x)) == 1) {
        int got = BIO_read(b, na, 31);
        na[got > 0 ? got : 0] = 0;
    }
    BIO_free(b);
}

/* The revocation lists a server context checks: how many, and the newest
 * lastUpdate among them ("" without a CRL). */
static void crl_facts(SSL_CTX *ctx, char count[16], char last[32])
{
    int n = 0;
    const ASN1_TIME *newest = NULL;
    X509_STORE *store = ctx ? SSL_CTX_get_cert_store(ctx) : NULL;
    STACK_OF(X509_OBJECT) *objs = store ? X509_STORE_get0_objects(store) : NULL;
    for (int i = 0; objs && i < sk_X509_OBJECT_num(objs); i++) {
        X509_CRL *crl = X509_OBJECT_get0_X509_CRL(sk_X509_OBJECT_value(objs, i));
        if (!crl) continue;
        n++;
        const ASN1_TIME *t = X509_CRL_get0_lastUpdate(crl);
        if (t && (!newest || ASN1_TIME_compare(t, newest) > 0)) newest = t;
    }
    snprintf(count, 16, "%d", n);
    last[0] = 0;
    BIO *b = newest ? BIO_new(BIO_s_mem()) : NULL;
    if (b && ASN1_TIME_print(b, newest) == 1) {
        int got = BIO_read(b, last, 31);
        last[got > 0 ? got : 0] = 0;
    }
    BIO_free(b);
}

/* Record a listener's rebuilt TLS material as a sidecar action
 * (TlsMaterialReloaded): the certificate presented from now on (SHA-256
 * fingerprint, subject, expiry), whether it differs from the one it
 * replaces, and the CRLs loaded; file names from `nl`, the listener's
 * config in the new file. Control thread, before the swap. */
static void note_tls_reload(bs_listener *l, const bs_listener_config *nl, SSL_CTX *fresh)
{
    char fp[65], ofp[65], subject[256], osub[256], na[32], ona[32], crls[16], crl_last[32];
    cert_facts(fresh, fp, subject, sizeof subject, na);
    SSL_CTX *old = bs_tls_slot_acquire(&l->tls);
    cert_facts(old, ofp, osub, sizeof osub, ona);
    SSL_CTX_free(old);
    crl_facts(fresh, crls, crl_last);
    const bs_tls_server_config *t = nl->tls;
    bs_action_detail d[] = {
        {"certificateFile", t && t->cert_file ? t->cert_file : ""},
        {"certificateSha256", fp},
        {"certificateSubject", subject},
        {"certificateNotAfter", na},
        {"certificateChanged", strcmp(fp, ofp) != 0 ? "true" : "false"},
        {"crlFile", t && t->crl_file ? t->crl_file : ""},
        {"crls", crls},
        {"crlLastUpdate", crl_last},
    };
    bs_sidecar_action a = {.kind = BS_ACTION_TLS_RELOADED,
                           .subject_type = "listener",
                           .subject = l->cfg->name,
                           .message = "the listener's certificate, key, client CA and CRL were "
                                      "reloaded; new connections use them",
                           .details = d,
                           .n_details = BS_ARRAY_LEN(d)};
    bs_sidecar_action_emit(&a);
}

/* See net.h. Order: TLS contexts (all problems logged), metrics, then the
 * listening sockets; any failure frees everything built so far. */
bs_status bs_server_new(struct ev_loop *control, const bs_net_config *cfg, bs_server **out, char *err,
                        size_t errlen)
{
    bs_status st = BS_OK;
    char msg[600] = "";
    bs_server *s = calloc(1, sizeof *s);
    if (!s) return BS_E_NOMEM;
    s->control = control;
    s->cfg = cfg;
    s->n_workers = cfg->workers ? cfg->workers : 1;
    s->n_listeners = cfg->n_listeners;
    s->listeners = calloc(s->n_listeners ? s->n_listeners : 1, sizeof *s->listeners);
    s->workers = calloc(s->n_workers, sizeof *s->workers);
    if (!s->listeners || !s->workers) {
        st = BS_E_NOMEM;
        snprintf(msg, sizeof msg, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < s->n_workers; i++) {
        bs_worker *w = &s->workers[i];
        w->srv = s;
        w->index = i;
        w->cfg = cfg;
        w->limits = cfg->limits;
        pthread_mutex_init(&w->qlock, NULL);
        w->wl = calloc(s->n_listeners ? s->n_listeners : 1, sizeof *w->wl);
        if (!w->wl) {
            st = BS_E_NOMEM;
            snprintf(msg, sizeof msg, "out of memory");
            goto fail;
        }
        for (size_t j = 0; j < s->n_listeners; j++)
            w->wl[j].fd = -1;
    }
    /* TLS first: every context problem is reported, not just the first. */
    for (size_t i = 0; i < s->n_listeners; i++) {
        bs_listener *l = &s->listeners[i];
        l->srv = s;
        l->cfg = &cfg->listeners[i];
        l->index = i;
        pthread_mutex_init(&l->reason_lock, NULL);
        SSL_CTX *sc, *cc;
        char one[600];
        bs_status t = build_tls(l->cfg, &sc, &cc, one, sizeof one);
        if (t != BS_OK) {
            BS_LOG_ERRORF("net", "%s", one);
            if (st == BS_OK) {
                st = t;
                snprintf(msg, sizeof msg, "%s", one);
            }
            continue;
        }
        if (sc) {
            bs_tls_slot_init(&l->tls, sc);
            l->has_tls = true;
        }
        if (cc) {
            bs_tls_slot_init(&l->utls, cc);
            l->has_utls = true;
        }
        listener_metrics(l);
    }
    if (st != BS_OK) goto fail;
    for (size_t i = 0; i < s->n_listeners; i++) {
        for (size_t k = 0; k < s->n_workers; k++) {
            bs_wlistener *wl = &s->workers[k].wl[i];
            wl->l = &s->listeners[i];
            wl->w = &s->workers[k];
            st = listen_socket(s->listeners[i].cfg, &wl->fd, msg, sizeof msg);
            if (st != BS_OK) {
                BS_LOG_ERRORF("net", "%s", msg);
                goto fail;
            }
        }
    }
    s->m_reload_ok = bs_metrics_counter("brokerside_config_reloads_total",
                                        "Config reloads (SIGHUP), by result", "result=\"ok\"");
    s->m_reload_failed =
        bs_metrics_counter("brokerside_config_reloads_total", "Config reloads (SIGHUP), by result",
                           "result=\"failed\"");
    ev_async_init(&s->done_async, done_cb);
    *out = s;
    return BS_OK;
fail:
    snprintf(err, errlen, "%s", msg);
    bs_server_free(s);
    return st;
}

/* See net.h. */
bs_status bs_server_set_session(bs_server *s, const char *name, const bs_session_ops *ops,
                                void *factory_ctx)
{
    BS_ENSURE(!s->started, BS_E_STATE);
    for (size_t i = 0; i < s->n_listeners; i++) {
        if (strcmp(s->listeners[i].cfg->name, name) == 0) {
            s->listeners[i].session_ops = ops;
            s->listeners[i].session_ctx = factory_ctx;
            return BS_OK;
        }
    }
    return BS_E_NOT_FOUND;
}

/* See net.h. */
bs_status bs_server_set_worker_hooks(bs_server *s, const bs_worker_hooks *hooks)
{
    BS_ENSURE(!s->started, BS_E_STATE);
    s->whooks = *hooks;
    return BS_OK;
}

/* See net.h. Workers only read the observer, and only after start. */
bs_status bs_server_set_observer(bs_server *s, bs_conn_observer_fn fn, void *ctx)
{
    BS_ENSURE(!s->started, BS_E_STATE);
    s->observer = fn;
    s->observer_ctx = ctx;
    return BS_OK;
}

/* See net.h. Worker loops are created here, on the control thread, and
 * handed to their threads; listening sockets already exist. */
bs_status bs_server_start(bs_server *s, void (*on_done)(void *arg), void *arg)
{
    BS_ENSURE(!s->started, BS_E_STATE);
    s->on_done = on_done;
    s->on_done_arg = arg;
    s->start_time = ev_now(s->control);
    ev_async_start(s->control, &s->done_async);
    for (size_t i = 0; i < s->n_workers; i++) {
        bs_worker *w = &s->workers[i];
        w->loop = ev_loop_new(EVFLAG_AUTO);
        if (!w->loop) {
            BS_LOG_ERRORF("net", "cannot create the event loop of worker %zu", i);
            goto fail;
        }
        /* Watchers are started here, before the thread exists (pthread_create
         * orders these writes before the loop runs): an ev_async started
         * later would forget a message the control thread sent meanwhile
         * (ev_async_start clears the pending flag). */
        ev_async_init(&w->wake, worker_wake_cb);
        ev_async_start(w->loop, &w->wake);
        for (size_t j = 0; j < s->n_listeners; j++) {
            bs_wlistener *wl = &w->wl[j];
            ev_io_init(&wl->io, bs_net_accept_cb, wl->fd, EV_READ);
            ev_init(&wl->pause, bs_net_accept_resume_cb);
            ev_io_start(w->loop, &wl->io);
        }
        int e = pthread_create(&w->thread, NULL, worker_main, w);
        if (e != 0) {
            BS_LOG_ERRORF("net", "cannot start worker %zu: %s", i, strerror(e));
            goto fail;
        }
        w->thread_started = true;
    }
    s->started = true;
    for (size_t i = 0; i < s->n_listeners; i++) {
        const bs_listener_config *lc = s->listeners[i].cfg;
        BS_LOG_INFOF("net", "listener %s: %s -> %s (%s%s%s), %zu workers", lc->name, lc->bind.text,
                     lc->upstream.text, lc->protocol == BS_PROTOCOL_TCP ? "tcp" : "kafka",
                     lc->tls ? ", tls" : "", lc->upstream_tls ? ", upstream tls" : "",
                     s->n_workers);
    }
    bs_net_probes_start(s);
    return BS_OK;
fail:
    s->started = true; /* so free() stops and joins what runs */
    return BS_E_IO;
}

/* Control thread: the grace period ended; close what is left. */
static void grace_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    bs_server *s = bs_container_of(t, bs_server, grace_timer);
    BS_LOG_WARNF("main", "shutdown grace period over; closing %u remaining connections",
                 atomic_load(&s->n_open));
    bs_server_shutdown(s, false);
}

/* See net.h. Graceful: STOP_ACCEPT to every worker plus the grace timer;
 * otherwise (or on a second call) STOP_NOW. */
void bs_server_shutdown(bs_server *s, bool graceful)
{
    if (!s->started) return;
    if (graceful && !s->shutting_down) {
        s->shutting_down = true;
        bs_net_probes_stop(s);
        BS_LOG_INFOF("main",
                     "shutting down: stopped accepting; draining %u connections (grace %.0fs)",
                     atomic_load(&s->n_open), s->cfg->limits.shutdown_grace_s);
        for (size_t i = 0; i < s->n_workers; i++)
            if (s->workers[i].thread_started) worker_post(&s->workers[i], BS_MSG_STOP_ACCEPT, NULL);
        ev_timer_init(&s->grace_timer, grace_cb, s->cfg->limits.shutdown_grace_s, 0.);
        ev_timer_start(s->control, &s->grace_timer);
        return;
    }
    if (atomic_load(&s->stopped_hard)) return;
    s->shutting_down = true;
    atomic_store(&s->stopped_hard, true);
    bs_net_probes_stop(s);
    ev_timer_stop(s->control, &s->grace_timer);
    BS_LOG_INFOF("main", "closing %u connections now", atomic_load(&s->n_open));
    for (size_t i = 0; i < s->n_workers; i++)
        if (s->workers[i].thread_started) worker_post(&s->workers[i], BS_MSG_STOP_NOW, NULL);
}

/* ---------------------------------------------------------------- reload */

bs_status bs_server_reload(bs_server *s, const bs_net_config *cfg)
{
    bs_status st = BS_OK;
    size_t n = s->n_listeners;
    SSL_CTX **sc = calloc(n ? n : 1, sizeof *sc), **cc = calloc(n ? n : 1, sizeof *cc);
    const bs_listener_config **ncfg = calloc(n ? n : 1, sizeof *ncfg);
    if (!sc || !cc || !ncfg) {
        st = BS_E_NOMEM;
        goto out;
    }
    /* Build every new context before touching anything: all or nothing.
     * Running listeners are matched with the new file by name (the listener
     * set itself cannot change live); one that vanished keeps its contexts. */
    for (size_t i = 0; i < n; i++) {
        bs_listener *l = &s->listeners[i];
        const bs_listener_config *nl = NULL;
        for (size_t j = 0; j < cfg->n_listeners && !nl; j++)
            if (strcmp(cfg->listeners[j].name, l->cfg->name) == 0) nl = &cfg->listeners[j];
        if (!nl) continue;
        ncfg[i] = nl;
        char err[600];
        bs_status t = build_tls(nl, &sc[i], &cc[i], err, sizeof err);
        if (t != BS_OK) {
            BS_LOG_ERRORF("main", "reload: %s", err);
            st = t;
        }
        /* Turning TLS on or off needs a restart: keep the current mode. */
        if (!l->has_tls && sc[i]) {
            SSL_CTX_free(sc[i]);
            sc[i] = NULL;
        }
        if (!l->has_utls && cc[i]) {
            SSL_CTX_free(cc[i]);
            cc[i] = NULL;
        }
    }
    if (st != BS_OK) goto out;
    for (size_t i = 0; i < n; i++) {
        if (sc[i]) note_tls_reload(&s->listeners[i], ncfg[i], sc[i]);
        if (sc[i]) bs_tls_slot_swap(&s->listeners[i].tls, sc[i]);
        if (cc[i]) bs_tls_slot_swap(&s->listeners[i].utls, cc[i]);
        sc[i] = cc[i] = NULL;
    }
    bs_log_set_level(cfg->log_level);
    for (size_t i = 0; i < s->n_workers; i++)
        if (s->workers[i].thread_started) worker_post(&s->workers[i], BS_MSG_RELOAD, cfg);
    if (cfg->probe_interval_s != s->cfg->probe_interval_s)
        bs_net_probes_set_interval(s, cfg->probe_interval_s);
    /* Restart-only settings keep their old values: the workers and listeners
     * go on using the listener configs they were built from, which stay
     * valid because the caller keeps every config until free. */
    s->cfg = cfg;
    s->reloads++;
out:
    if (sc && cc) {
        for (size_t i = 0; i < n; i++) {
            SSL_CTX_free(sc[i]);
            SSL_CTX_free(cc[i]);
        }
    }
    free(sc);
    free(cc);
    free(ncfg);
    bs_metric_add(st == BS_OK ? s->m_reload_ok : s->m_reload_failed, 1);
    if (st == BS_OK)
        BS_LOG_INFOF("main", "reload: applied %s (TLS contexts rebuilt, limits applied)",
                     cfg->path ? cfg->path : "");
    else
        BS_LOG_ERRORF("main", "reload: refused; keeping the running configuration");
    return st;
}

/* See net.h (control thread). */
const bs_net_config *bs_server_config(const bs_server *s)
{
    return s->cfg;
}

/* ---------------------------------------------------------------- status */

bool bs_server_ready(const bs_server *s, char *why, size_t whylen)
{
    if (!s->started) {
        snprintf(why, whylen, "not started");
        return false;
    }
    if (s->shutting_down) {
        snprintf(why, whylen, "shutting down");
        return false;
    }
    for (size_t i = 0; i < s->n_listeners; i++) {
        const bs_listener *l = &s->listeners[i];
        if (!l->probe.ran_once) {
            snprintf(why, whylen, "listener %s: upstream %s not probed yet", l->cfg->name,
                     l->cfg->upstream.text);
            return false;
        }
        if (!l->probe.up) {
            snprintf(why, whylen, "listener %s: upstream %s down: %s", l->cfg->name,
                     l->cfg->upstream.text, l->probe.why);
            return false;
        }
    }
    return true;
}

/* See net.h; connections_open comes from the listener's gauge. */
void bs_server_status_json(const bs_server *s, bs_wbuf *out)
{
    bs_wbuf_put_str(out, ",\"listeners\":[");
    for (size_t i = 0; i < s->n_listeners; i++) {
        const bs_listener *l = &s->listeners[i];
        const bs_listener_config *lc = l->cfg;
        static const char *const auth[] = {"none", "optional", "required"};
        if (i) bs_wbuf_put_str(out, ",");
        bs_wbuf_put_str(out, "{\"name\":");
        bs_wbuf_put_json_string(out, lc->name, strlen(lc->name));
        bs_wbuf_put_str(out, ",\"bind\":");
        bs_wbuf_put_json_string(out, lc->bind.text, strlen(lc->bind.text));
        bs_wbuf_put_str(out, ",\"upstream\":");
        bs_wbuf_put_json_string(out, lc->upstream.text, strlen(lc->upstream.text));
        bs_wbuf_printf(
            out, ",\"protocol\":\"%s\",\"tls\":%s,\"client_auth\":\"%s\",\"upstream_tls\":%s",
            lc->protocol == BS_PROTOCOL_TCP ? "tcp" : "kafka", lc->tls ? "true" : "false",
            lc->tls ? auth[lc->tls->client_auth] : "none", lc->upstream_tls ? "true" : "false");
        bs_wbuf_printf(out, ",\"proxy_protocol\":%s", lc->proxy_protocol ? "true" : "false");
        bs_wbuf_printf(out, ",\"connections_open\":%lld,\"upstream_up\":%s}",
                       (long long)bs_metric_value(l->m_open), l->probe.up ? "true" : "false");
    }
    bs_wbuf_printf(out,
                   "],\"workers\":%zu,\"server_uptime_s\":%.0f,\"reloads\":%u,\"shutting_down\":%s",
                   s->n_workers, s->started ? ev_now(s->control) - s->start_time : 0.0, s->reloads,
                   s->shutting_down ? "true" : "false");
}

/* See net.h; any thread. */
unsigned bs_server_connections_open(const bs_server *s)
{
    return atomic_load(&((bs_server *)s)->n_open);
}

/* ---------------------------------------------------------------- teardown */

void bs_server_free(bs_server *s)
{
    if (!s) return;
    if (s->started) {
        bs_net_probes_stop(s);
        if (!atomic_load(&s->stopped_hard)) {
            atomic_store(&s->stopped_hard, true);
            for (size_t i = 0; i < s->n_workers; i++)
                if (s->workers[i].thread_started)
                    worker_post(&s->workers[i], BS_MSG_STOP_NOW, NULL);
        }
        ev_timer_stop(s->control, &s->grace_timer);
        ev_async_stop(s->control, &s->done_async);
    }
    for (size_t i = 0; s->workers && i < s->n_workers; i++) {
        bs_worker *w = &s->workers[i];
        if (w->thread_started) pthread_join(w->thread, NULL);
        for (size_t j = 0; w->wl && j < s->n_listeners; j++)
            if (w->wl[j].fd >= 0) close(w->wl[j].fd);
        while (w->qhead) {
            bs_msg *m = w->qhead;
            w->qhead = m->next;
            free(m);
        }
        bs_net_worker_free_bufs(w);
        if (w->loop) ev_loop_destroy(w->loop);
        pthread_mutex_destroy(&w->qlock);
        free(w->wl);
    }
    for (size_t i = 0; s->listeners && i < s->n_listeners; i++) {
        bs_listener *l = &s->listeners[i];
        if (l->has_tls) bs_tls_slot_destroy(&l->tls);
        if (l->has_utls) bs_tls_slot_destroy(&l->utls);
        if (l->srv) pthread_mutex_destroy(&l->reason_lock);
    }
    free(s->listeners);
    free(s->workers);
    free(s);
}
