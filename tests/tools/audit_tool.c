/*
 * audit_tool - writes sample hash-chained audit files and runs the
 * `audit verify` CLI, for tests/integration/test_audit_cli.py (the lead
 * wires the same bs_audit_verify_main into `brokerside audit verify`).
 *
 *   audit_tool write FILE [--key KEYFILE] [--events N] [--digest-every K]
 *                   [--data each|aggregate|off]
 *       appends a new chain of N sample events (management, data events in
 *       the given mode, default each; connection events) to FILE, linked to FILE's last event when
 *       FILE already has one; sealed with a final digest.
 *   audit_tool verify [--strict] [--key F | --public-key F] FILE...
 *       exactly `brokerside audit verify`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brokerside/audit.h"

/* Fill ev with sample request i (a rotating mix of APIs). */
static bs_status sample_request(bs_audit_event *ev, int i)
{
    static const int16_t apis[] = {19, 0, 32, 1, 30, 20, 8, 44};
    bs_audit_event_reset(ev);
    ev->type = BS_AUDIT_EV_REQUEST;
    ev->time_us = 1764000000000000LL + (int64_t)i * 1000;
    ev->conn_id = 7;
    ev->listener = "clients";
    ev->broker_id = 1;
    ev->principal = (i % 3) ? "CN=dev-client" : NULL;
    ev->source_ip = "127.0.0.1";
    ev->source_port = 40000;
    ev->api_key = apis[i % (int)BS_ARRAY_LEN(apis)];
    ev->api_version = 5;
    ev->correlation_id = i;
    ev->latency_us = 1234;
    char topic[32];
    int tl = snprintf(topic, sizeof topic, "orders-%d", i % 4);
    size_t idx;
    BS_GUARD(bs_audit_event_set_client_id(ev, "sample", 6));
    BS_GUARD(bs_audit_event_add_resource(ev, BS_AUDIT_RES_TOPIC, topic, (size_t)tl, &idx));
    BS_GUARD(bs_audit_event_add_partition(ev, idx, 0));
    BS_GUARD(bs_audit_event_set_partition_error(ev, idx, 0, (int16_t)(i % 5 == 0 ? 36 : 0)));
    return BS_OK;
}

/* `write` sub-command. */
static int cmd_write(int argc, char **argv)
{
    const char *path = NULL, *key_path = NULL;
    const char *mode = "each";
    int events = 20, every = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
            key_path = argv[++i];
        else if (strcmp(argv[i], "--events") == 0 && i + 1 < argc)
            events = atoi(argv[++i]);
        else if (strcmp(argv[i], "--digest-every") == 0 && i + 1 < argc)
            every = atoi(argv[++i]);
        else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
            mode = argv[++i];
        else if (!path && argv[i][0] != '-')
            path = argv[i];
        else {
            fprintf(stderr, "audit_tool write: bad argument %s\n", argv[i]);
            return 2;
        }
    }
    if (!path || events < 0 || every < 0) return 2;
    bs_audit_key *key = NULL;
    if (key_path && bs_audit_key_load(key_path, &key) != BS_OK) return 2;
    bs_audit_link link;
    if (bs_audit_link_from_file(path, &link) != BS_OK) {
        fprintf(stderr, "audit_tool write: cannot read the tail of %s\n", path);
        bs_audit_key_free(key);
        return 2;
    }
    FILE *f = fopen(path, "ab");
    if (!f) {
        bs_audit_key_free(key);
        return 2;
    }
    bs_audit_options o;
    bs_audit_options_default(&o);
    if (bs_audit_data_mode_parse(mode, &o.data_events) != BS_OK) {
        fprintf(stderr, "audit_tool write: --data each|aggregate|off\n");
        bs_audit_key_free(key);
        fclose(f);
        return 2;
    }
    o.digest_every_events = (uint32_t)every;
    o.broker_id = 1;
    bs_audit_log *log = NULL;
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    bs_status st = bs_audit_log_open(&o, key, &link, bs_audit_emit_file, f, &log);
    for (int i = 0; i < events && st == BS_OK; i++) {
        if (i % 7 == 6) {
            bs_audit_event_reset(&ev);
            ev.type = BS_AUDIT_EV_CONNECTION;
            ev.time_us = 1764000000000000LL + (int64_t)i * 1000;
            ev.conn_kind = BS_AUDIT_CONN_CLOSED;
            ev.conn_id = (uint64_t)i;
            ev.listener = "clients";
            ev.source_ip = "127.0.0.1";
            ev.source_port = 40001;
            ev.duration_ms = 10;
            ev.bytes_in = 100;
            ev.bytes_out = 200;
        } else {
            st = sample_request(&ev, i);
        }
        if (st == BS_OK) st = bs_audit_log_record(log, &ev);
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    bs_status cst =
        bs_audit_log_close(log, (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000);
    if (st == BS_OK) st = cst;
    bs_audit_event_free(&ev);
    bs_audit_key_free(key);
    if (fclose(f) != 0 && st == BS_OK) st = BS_E_IO;
    if (st != BS_OK) {
        fprintf(stderr, "audit_tool write: %s\n", bs_status_name(st));
        return 1;
    }
    return 0;
}

/* Entry point: dispatch the sub-command. */
int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "write") == 0) return cmd_write(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "verify") == 0)
        return bs_audit_verify_main(argc - 1, argv + 1);
    fprintf(stderr, "usage: audit_tool write FILE [--key F] [--events N] [--digest-every K] "
                    "[--data MODE]\n"
                    "       audit_tool verify [--strict] [--key F | --public-key F] FILE...\n");
    return 2;
}
