/* fuzz_audit_hook.c - libFuzzer target for the per-request audit recorder.
 * Input: byte 0 selects a generated message (index mod count), byte 1 the
 * version (min + value mod range), byte 2 the mode: odd = the rest seeds a
 * random but valid body built from the schema (so the tree walker sees every
 * shape the schemas allow), even = the rest is the body as is. The body is
 * framed as a request (or as the response to a matching request) and given
 * to the observer; every emitted event is rendered and chained by a real
 * audit log into a discarding sink. Nothing may crash, leak or read out of
 * bounds, and every event must be recorded. */
#include <stdlib.h>
#include <string.h>

#include "../unit/kafka_gen.h"
#include "brokerside/audit.h"
#include "brokerside/audit_hook.h"
#include "brokerside/kafka.h"
#include "brokerside/log.h"

static uint64_t g_lines;

/* Emit callback: count and drop. */
static bs_status discard(const char *line, size_t len, void *arg)
{
    (void)arg;
    if (len == 0 || line[0] != '{' || line[len - 1] != '}') abort();
    g_lines++;
    return BS_OK;
}

/* Append a request header for api/version/correlation, flexible or not. */
static void put_header(bs_wbuf *w, int16_t api, int16_t ver, int32_t corr, bool flex)
{
    bs_wbuf_put_be32(w, 0);
    bs_wbuf_put_be16(w, (uint16_t)api);
    bs_wbuf_put_be16(w, (uint16_t)ver);
    bs_wbuf_put_be32(w, (uint32_t)corr);
    bs_wbuf_put_be16(w, 3);
    bs_wbuf_put(w, "fzz", 3);
    if (flex) bs_wbuf_put_u8(w, 0);
}

/* Patch the size prefix of the frame at the start of w. */
static void seal(bs_wbuf *w)
{
    uint32_t n = (uint32_t)(w->len - 4);
    w->data[0] = (uint8_t)(n >> 24);
    w->data[1] = (uint8_t)(n >> 16);
    w->data[2] = (uint8_t)(n >> 8);
    w->data[3] = (uint8_t)n;
}

/* libFuzzer entry point: one input, never fails (a bug aborts or trips a sanitizer). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    bs_log_set_level(BS_LOG_ERROR);
    const bs_kafka_message *m = &bs_kafka_messages[data[0] % bs_kafka_messages_count];
    int16_t v = (int16_t)(m->min_version + data[1] % (m->max_version - m->min_version + 1));
    bool flex = v >= m->flex_min;
    bs_wbuf body, fr;
    bs_wbuf_init(&body, 0);
    bs_wbuf_init(&fr, 0);
    if (data[2] & 1) {
        kgen g = {.state = 0x9E3779B97F4A7C15ULL};
        for (size_t i = 3; i < size && i < 11; i++)
            g.state = (g.state ^ data[i]) * 0x100000001B3ULL;
        if (!g.state) g.state = 1;
        kgen_message(&g, m, v, &body);
    } else {
        bs_wbuf_put(&body, data + 3, size - 3);
    }

    bs_audit_options o;
    bs_audit_options_default(&o);
    o.data_events = (data[2] & 2) ? BS_AUDIT_DATA_EACH : BS_AUDIT_DATA_AGGREGATE;
    o.digest_every_events = 0;
    bs_audit_log *log = NULL;
    bs_audit_hook *hook = NULL;
    if (bs_audit_log_open(&o, NULL, NULL, discard, NULL, &log) != BS_OK) abort();
    if (bs_audit_hook_new(log, o.data_events, &hook) != BS_OK) abort();
    const bs_kafka_observer *obs = bs_audit_hook_observer(hook);
    bs_listener_config lc = {.name = "fz", .broker_id = 1};
    bs_session_info info = {
        .listener = &lc, .peer = "1.2.3.4:5", .principal = "CN=f", .conn_id = 1};
    void *conn = NULL;
    if (obs->open(obs->arg, &info, &conn) != BS_OK) abort();
    const bs_kafka_message *req = bs_kafka_message_find(m->api_key, true);
    bool req_flex = req ? v >= req->flex_min : flex;
    /* the request: the fuzzed body when it is a request, else an empty one */
    put_header(&fr, m->api_key, v, 7, req_flex);
    if (m->is_request) bs_wbuf_put(&fr, body.data, body.len);
    seal(&fr);
    bs_kafka_request_header h;
    bs_status hs = bs_kafka_parse_request_header(fr.data + 4, fr.len - 4, &h);
    if (hs != BS_OK) {
        memset(&h, 0, sizeof h);
        h.api_key = m->api_key;
        h.api_version = v;
        h.correlation_id = 7;
    }
    obs->on_request(conn, &h, hs == BS_OK, true, fr.data, fr.len, fr.len);
    if (!m->is_request) {
        int hv = 0;
        (void)!bs_kafka_response_header_version(m->api_key, v, &hv);
        bs_wbuf_reset(&fr);
        bs_wbuf_put_be32(&fr, 0);
        bs_wbuf_put_be32(&fr, 7);
        if (hv == 1) bs_wbuf_put_u8(&fr, 0);
        bs_wbuf_put(&fr, body.data, body.len);
        seal(&fr);
        bs_kafka_inflight inf = {
            .correlation_id = 7, .api_key = m->api_key, .api_version = v, .expects_response = true};
        obs->on_response(conn, &inf, 1000, fr.data, fr.len, fr.len);
    }
    obs->close(conn);
    uint64_t recorded = 0, failures = 0;
    bs_audit_hook_stats(hook, &recorded, &failures, NULL);
    if (failures) abort();
    bs_audit_hook_free(hook);
    if (bs_audit_log_close(log, 0) != BS_OK) abort();
    bs_wbuf_free(&body);
    bs_wbuf_free(&fr);
    return 0;
}
