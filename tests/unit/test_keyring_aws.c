/* Unit tests for src/crypto/keyring_aws.c against tests/unit/kms_fake_server.py
 * (a KMS JSON 1.1 stand-in that checks KeySpec, KeyId and EncryptionContext):
 * GenerateDataKey + Decrypt round trip and the requests' shape, wrong context
 * and key refused, every classified KMS error, malformed replies, an
 * unreachable endpoint, destroy with calls in flight, and the DEK manager
 * getting its keys through this keyring. (SigV4 against a real verifier:
 * tests/integration/test_kms_keyring.py with moto_server.) */
#include <ev.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "brokerside/dek_manager.h"
#include "brokerside/keyring_aws.h"
#include "brokerside/metrics.h"
#include "test.h"

/* ------------------------------------------------------- the fake server */

static pid_t srv_pid;
static int srv_stdin = -1, srv_port;

/* Start kms_fake_server.py and read its port; false (nothing left running) on failure. */
static bool srv_start(void)
{
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) return false;
    const char *src = getenv("BS_SOURCE_DIR");
    char script[1024];
    snprintf(script, sizeof script, "%s/tests/unit/kms_fake_server.py", src ? src : "..");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execl("/usr/bin/python3", "python3", script, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (pid < 0) return false;
    srv_pid = pid;
    srv_stdin = in[1];
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
    if (sscanf(line, "PORT %d", &srv_port) == 1) return true;
    close(srv_stdin);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    srv_pid = 0;
    return false;
}

/* EOF on its stdin stops it; SIGKILL if it lingers. */
static void srv_stop(void)
{
    if (srv_pid <= 0) return;
    close(srv_stdin);
    for (int i = 0; i < 50; i++) {
        if (waitpid(srv_pid, NULL, WNOHANG) == srv_pid) {
            srv_pid = 0;
            return;
        }
        usleep(100 * 1000);
    }
    kill(srv_pid, SIGKILL);
    waitpid(srv_pid, NULL, 0);
    srv_pid = 0;
}

static size_t collect(char *p, size_t sz, size_t n, void *ud)
{
    bs_wbuf *w = ud;
    bs_wbuf_put(w, p, sz * n);
    return sz * n;
}

/* Blocking request to the control endpoints; the body as a parsed JSON value. */
static cJSON *srv_control(const char *method, const char *path, const char *body)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", srv_port, path);
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    CURL *h = curl_easy_init();
    cJSON *j = NULL;
    if (!h) return NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &w);
    if (curl_easy_perform(h) == CURLE_OK && bs_wbuf_status(&w) == BS_OK)
        j = cJSON_ParseWithLength((const char *)w.data, w.len);
    curl_easy_cleanup(h);
    bs_wbuf_free(&w);
    return j;
}

static void script(const char *modes_json)
{
    cJSON_Delete(srv_control("POST", "/control/script", modes_json));
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

/* ----------------------------------------------------------- scaffolding */

typedef struct env {
    struct ev_loop *loop;
    bs_aws_credentials_provider *creds;
    bs_aws_http *http;
    bs_keyring *kr;
} env;

static bool env_init(env *e, int port, unsigned max_attempts)
{
    memset(e, 0, sizeof *e);
    e->loop = ev_loop_new(EVFLAG_AUTO);
    bs_aws_credentials_config cc = {.access_key_id = "AKIDEXAMPLE",
                                    .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                    .disable_imds = true};
    bs_aws_http_config hc = {.max_attempts = max_attempts,
                             .backoff_base_ms = 10,
                             .backoff_max_ms = 50,
                             .timeout_ms = 20000};
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d/", port);
    bs_keyring_aws_config kc = {.region = "eu-west-1", .endpoint = endpoint};
    bool ok = bs_aws_credentials_provider_new(&cc, &e->creds) == BS_OK &&
              bs_aws_http_new(e->loop, &hc, e->creds, &e->http) == BS_OK &&
              bs_keyring_aws_new(e->http, &kc, &e->kr) == BS_OK;
    CHECK(ok);
    return ok;
}

static void env_free(env *e)
{
    bs_keyring_free(e->kr);
    bs_aws_http_free(e->http);
    bs_aws_credentials_provider_free(e->creds);
    ev_loop_destroy(e->loop);
}

typedef struct res {
    bool done;
    int calls;
    bs_status st;
    uint8_t key[32];
    size_t key_len;
    uint8_t edek[512];
    size_t edek_len;
} res;

static void on_dek(void *arg, bs_status st, const uint8_t *key, size_t key_len, const uint8_t *edek,
                   size_t edek_len)
{
    res *r = arg;
    r->done = true;
    r->calls++;
    r->st = st;
    if (st == BS_OK) {
        memcpy(r->key, key, key_len < 32 ? key_len : 32);
        r->key_len = key_len;
        r->edek_len = edek_len < sizeof r->edek ? edek_len : sizeof r->edek;
        if (r->edek_len) memcpy(r->edek, edek, r->edek_len);
    }
}

static void on_key(void *arg, bs_status st, const uint8_t *key, size_t key_len)
{
    on_dek(arg, st, key, key_len, NULL, 0);
}

static bool guard_fired;
static void on_guard(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    guard_fired = true;
    ev_break(loop, EVBREAK_ALL);
}

/* Run the loop until `*done`; a generous guard only prevents hangs. */
static void run_until(struct ev_loop *loop, bool *done)
{
    ev_timer guard;
    guard_fired = false;
    ev_timer_init(&guard, on_guard, 60., 0.);
    ev_timer_start(loop, &guard);
    while (!*done && !guard_fired)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &guard);
    CHECK(*done);
}

static const bs_kv topic_orders = {"topic", "orders"}, topic_other = {"topic", "other"};
static const bs_enc_context ctx_orders = {&topic_orders, 1}, ctx_other = {&topic_other, 1};

static res generate(env *e, const char *keyref, const bs_enc_context *ctx)
{
    res r = {0};
    bs_status st = bs_keyring_generate_dek(e->kr, keyref, ctx, on_dek, &r);
    CHECK_EQ(st, BS_OK);
    if (st == BS_OK) run_until(e->loop, &r.done);
    CHECK_EQ(r.calls, 1);
    return r;
}

static res decrypt(env *e, const char *keyref, const uint8_t *edek, size_t len,
                   const bs_enc_context *ctx)
{
    res r = {0};
    bs_status st = bs_keyring_decrypt_edek(e->kr, keyref, edek, len, ctx, on_key, &r);
    CHECK_EQ(st, BS_OK);
    if (st == BS_OK) run_until(e->loop, &r.done);
    CHECK_EQ(r.calls, 1);
    return r;
}

/* ------------------------------------------------------------------ tests */

static void test_classify(void)
{
    CHECK_EQ(bs_keyring_aws_classify(BS_AWS_OK, ""), BS_OK);
    CHECK_EQ(bs_keyring_aws_classify(BS_AWS_THROTTLED, "ThrottlingException"), BS_E_AGAIN);
    CHECK_EQ(bs_keyring_aws_classify(BS_AWS_SERVER_ERROR, "KMSInternalException"), BS_E_IO);
    CHECK_EQ(bs_keyring_aws_classify(BS_AWS_TRANSPORT, ""), BS_E_IO);
    CHECK_EQ(bs_keyring_aws_classify(BS_AWS_AUTH, "InvalidSignatureException"), BS_E_CONFIG);
    CHECK_EQ(bs_keyring_aws_classify(BS_AWS_NO_CREDENTIALS, ""), BS_E_CONFIG);
    CHECK_EQ(bs_keyring_aws_classify(BS_AWS_TOO_LARGE, ""), BS_E_TOO_LARGE);
    CHECK_EQ(bs_keyring_aws_classify(BS_AWS_CANCELLED, ""), BS_E_STATE);
    CHECK_EQ(bs_keyring_aws_classify(BS_AWS_CLIENT_ERROR, "NotFoundException"), BS_E_NOT_FOUND);
    CHECK_EQ(bs_keyring_aws_classify(BS_AWS_CLIENT_ERROR, "DisabledException"), BS_E_STATE);
    CHECK_EQ(bs_keyring_aws_classify(BS_AWS_CLIENT_ERROR, "KMSInvalidStateException"), BS_E_STATE);
    CHECK_EQ(bs_keyring_aws_classify(BS_AWS_CLIENT_ERROR, "AccessDeniedException"), BS_E_CONFIG);
    CHECK_EQ(bs_keyring_aws_classify(BS_AWS_CLIENT_ERROR, "InvalidCiphertextException"),
             BS_E_CRYPTO);
    CHECK_EQ(bs_keyring_aws_classify(BS_AWS_CLIENT_ERROR, "IncorrectKeyException"), BS_E_CRYPTO);
    CHECK_EQ(bs_keyring_aws_classify(BS_AWS_CLIENT_ERROR, "ValidationException"), BS_E_MALFORMED);
    CHECK_EQ(bs_keyring_aws_classify(BS_AWS_CLIENT_ERROR, NULL), BS_E_MALFORMED);
}

static bs_status parse(const char *body, bool want_edek, uint8_t key[32], uint8_t *edek, size_t cap,
                       size_t *elen)
{
    return bs_keyring_aws_parse_reply((const uint8_t *)body, strlen(body), want_edek, key, edek,
                                      cap, elen);
}

static void test_parse_reply(void)
{
    /* Plaintext = bytes 0..31, CiphertextBlob = bytes 1..32. */
    const char *pt = "\"Plaintext\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"";
    const char *blob = "\"CiphertextBlob\":\"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\"";
    char body[512];
    uint8_t key[32], edek[64], want_key[32], want_edek[32];
    size_t elen = 0;
    for (int i = 0; i < 32; i++) {
        want_key[i] = (uint8_t)i;
        want_edek[i] = (uint8_t)(i + 1);
    }
    snprintf(body, sizeof body, "{%s,%s,\"KeyId\":\"k\"}", blob, pt);
    CHECK_EQ(parse(body, true, key, edek, sizeof edek, &elen), BS_OK);
    CHECK_MEM(key, want_key, 32);
    CHECK_EQ(elen, 32);
    CHECK_MEM(edek, want_edek, 32);
    snprintf(body, sizeof body, "{%s}", pt);
    CHECK_EQ(parse(body, false, key, NULL, 0, NULL), BS_OK); /* Decrypt: no blob needed */
    CHECK_MEM(key, want_key, 32);
    /* Refusals, and nothing written on failure. */
    memset(key, 0x55, sizeof key);
    elen = 77;
    CHECK_EQ(parse(body, true, key, edek, sizeof edek, &elen), BS_E_MALFORMED); /* no blob */
    snprintf(body, sizeof body, "{%s,%s}", blob, pt);
    CHECK_EQ(parse(body, true, key, edek, 16, &elen), BS_E_MALFORMED); /* blob over capacity */
    const char *bad[] = {
        "",
        "[]",
        "null",
        "{\"Plaintext\":42}",
        "{\"Plaintext\":\"AAECAwQFBgcICQoLDA0ODxA=\"}",                         /* 16 bytes */
        "{\"Plaintext\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ==\"}", /* 34 bytes */
        "{\"Plaintext\":\"!!!ECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}",
        "{\"Plaintext\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"}", /* unpadded */
        "{\"plaintext\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}",
        "{\"Plaintext\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"", /* truncated */
    };
    for (size_t i = 0; i < BS_ARRAY_LEN(bad); i++) {
        if (parse(bad[i], false, key, NULL, 0, NULL) != BS_E_MALFORMED)
            fprintf(stderr, "  accepted: %s\n", bad[i]);
        CHECK_EQ(parse(bad[i], false, key, NULL, 0, NULL), BS_E_MALFORMED);
    }
    snprintf(body, sizeof body, "{%s,\"CiphertextBlob\":\"\"}", pt);
    CHECK_EQ(parse(body, true, key, edek, sizeof edek, &elen), BS_E_MALFORMED);
    snprintf(body, sizeof body, "{%s,\"CiphertextBlob\":7}", pt);
    CHECK_EQ(parse(body, true, key, edek, sizeof edek, &elen), BS_E_MALFORMED);
    uint8_t k55[32];
    memset(k55, 0x55, sizeof k55);
    CHECK_MEM(key, k55, 32);
    CHECK_EQ(elen, 77);
}

static void test_new_rejects_bad_config(void)
{
    env e;
    if (!env_init(&e, 1, 1)) return;
    bs_keyring *kr = NULL;
    bs_keyring_aws_config c = {.region = NULL};
    CHECK_EQ(bs_keyring_aws_new(e.http, &c, &kr), BS_E_CONFIG);
    c.region = "";
    CHECK_EQ(bs_keyring_aws_new(e.http, &c, &kr), BS_E_CONFIG);
    c.region = "eu-west-1.evil.com/";
    CHECK_EQ(bs_keyring_aws_new(e.http, &c, &kr), BS_E_CONFIG);
    c.region = "eu-west-1";
    c.endpoint = "ftp://kms.example/";
    CHECK_EQ(bs_keyring_aws_new(e.http, &c, &kr), BS_E_CONFIG);
    CHECK_EQ(bs_keyring_aws_new(NULL, &c, &kr), BS_E_CONFIG);
    CHECK(kr == NULL);
    /* Bad key references never reach the wire. */
    res r = {0};
    CHECK_EQ(bs_keyring_generate_dek(e.kr, "", &ctx_orders, on_dek, &r), BS_E_CONFIG);
    CHECK_EQ(bs_keyring_generate_dek(e.kr, "alias/a b", &ctx_orders, on_dek, &r), BS_E_CONFIG);
    CHECK_EQ(bs_keyring_decrypt_edek(e.kr, "alias/test", (const uint8_t *)"x", 0, &ctx_orders,
                                     on_key, &r),
             BS_E_MALFORMED);
    CHECK_EQ(r.calls, 0);
    env_free(&e);
}

static void test_round_trip_and_request_shape(void)
{
    env e;
    if (!env_init(&e, srv_port, 1)) return;
    res g = generate(&e, "alias/test", &ctx_orders);
    CHECK_EQ(g.st, BS_OK);
    CHECK_EQ(g.key_len, 32);
    CHECK_EQ(g.edek_len, 48);
    res d = decrypt(&e, "alias/test", g.edek, g.edek_len, &ctx_orders);
    CHECK_EQ(d.st, BS_OK);
    CHECK_EQ(d.key_len, 32);
    CHECK_MEM(d.key, g.key, 32);
    /* The key id works as well as the alias (the same key). */
    d = decrypt(&e, "key-1", g.edek, g.edek_len, &ctx_orders);
    CHECK_EQ(d.st, BS_OK);

    cJSON *log = srv_control("GET", "/control/log", NULL);
    CHECK(cJSON_GetArraySize(log) >= 2);
    cJSON *gen = cJSON_GetArrayItem(log, cJSON_GetArraySize(log) - 3);
    cJSON *dec = cJSON_GetArrayItem(log, cJSON_GetArraySize(log) - 2);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(gen, "target")),
              "TrentService.GenerateDataKey");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(gen, "content_type")),
              "application/x-amz-json-1.1");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(gen, "signed")));
    cJSON *gb = cJSON_Parse(cJSON_GetStringValue(cJSON_GetObjectItem(gen, "body")));
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(gb, "KeyId")), "alias/test");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(gb, "KeySpec")), "AES_256");
    CHECK_STR(cJSON_GetStringValue(
                  cJSON_GetObjectItem(cJSON_GetObjectItem(gb, "EncryptionContext"), "topic")),
              "orders");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(dec, "target")), "TrentService.Decrypt");
    cJSON *db = cJSON_Parse(cJSON_GetStringValue(cJSON_GetObjectItem(dec, "body")));
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(db, "KeyId")), "alias/test");
    CHECK(cJSON_GetStringValue(cJSON_GetObjectItem(db, "CiphertextBlob")) != NULL);
    CHECK(cJSON_GetObjectItem(db, "EncryptionContext") != NULL);
    cJSON_Delete(gb);
    cJSON_Delete(db);
    cJSON_Delete(log);
    env_free(&e);
}

static void test_wrong_context_key_or_blob_fails(void)
{
    env e;
    if (!env_init(&e, srv_port, 1)) return;
    res g = generate(&e, "alias/test", &ctx_orders);
    CHECK_EQ(g.st, BS_OK);
    res d = decrypt(&e, "alias/test", g.edek, g.edek_len, &ctx_other);
    CHECK_EQ(d.st, BS_E_CRYPTO);
    CHECK_EQ(d.key_len, 0);
    d = decrypt(&e, "alias/test", g.edek, g.edek_len, NULL); /* no context at all */
    CHECK_EQ(d.st, BS_E_CRYPTO);
    d = decrypt(&e, "alias/another", g.edek, g.edek_len, &ctx_orders);
    CHECK_EQ(d.st, BS_E_CRYPTO); /* IncorrectKeyException */
    g.edek[5] ^= 1;
    d = decrypt(&e, "alias/test", g.edek, g.edek_len, &ctx_orders);
    CHECK_EQ(d.st, BS_E_CRYPTO);
    res n = generate(&e, "alias/missing", &ctx_orders);
    CHECK_EQ(n.st, BS_E_NOT_FOUND);
    env_free(&e);
}

static void test_kms_errors_and_malformed_replies(void)
{
    env e;
    if (!env_init(&e, srv_port, 1)) return;
    static const struct {
        const char *mode;
        bs_status st;
    } cases[] = {
        {"notfound", BS_E_NOT_FOUND},   {"disabled", BS_E_STATE},        {"denied", BS_E_CONFIG},
        {"invalidstate", BS_E_STATE},   {"throttle", BS_E_AGAIN},        {"internal", BS_E_IO},
        {"validation", BS_E_MALFORMED}, {"noplaintext", BS_E_MALFORMED}, {"badb64", BS_E_MALFORMED},
        {"shortkey", BS_E_MALFORMED},   {"notjson", BS_E_MALFORMED},
    };
    for (size_t i = 0; i < BS_ARRAY_LEN(cases); i++) {
        char body[64];
        snprintf(body, sizeof body, "[\"%s\"]", cases[i].mode);
        script(body);
        res g = generate(&e, "alias/test", &ctx_orders);
        if (g.st != cases[i].st) fprintf(stderr, "  case %s\n", cases[i].mode);
        CHECK_EQ(g.st, cases[i].st);
        CHECK_EQ(g.key_len, 0);
    }
    /* The same errors on Decrypt. */
    res g = generate(&e, "alias/test", &ctx_orders);
    script("[\"disabled\"]");
    res d = decrypt(&e, "alias/test", g.edek, g.edek_len, &ctx_orders);
    CHECK_EQ(d.st, BS_E_STATE);
    script("[\"shortkey\"]"); /* no effect on Decrypt replies: still fine */
    d = decrypt(&e, "alias/test", g.edek, g.edek_len, &ctx_orders);
    CHECK_EQ(d.st, BS_OK);
    env_free(&e);
    /* Throttling and 5xx are retried by the HTTP client before they count. */
    if (!env_init(&e, srv_port, 3)) return;
    script("[\"throttle\", \"internal\"]");
    g = generate(&e, "alias/test", &ctx_orders);
    CHECK_EQ(g.st, BS_OK);
    env_free(&e);
}

static void test_unreachable_kms(void)
{
    env e;
    if (!env_init(&e, dead_port(), 2)) return;
    res g = generate(&e, "alias/test", &ctx_orders);
    CHECK_EQ(g.st, BS_E_IO);
    res d = decrypt(&e, "alias/test", (const uint8_t *)"blob", 4, &ctx_orders);
    CHECK_EQ(d.st, BS_E_IO);
    env_free(&e);
}

static void test_destroy_with_calls_in_flight(void)
{
    env e;
    if (!env_init(&e, srv_port, 1)) return;
    res a = {0}, b = {0};
    CHECK_EQ(bs_keyring_generate_dek(e.kr, "alias/test", &ctx_orders, on_dek, &a), BS_OK);
    CHECK_EQ(bs_keyring_decrypt_edek(e.kr, "alias/test", (const uint8_t *)"blob", 4, &ctx_orders,
                                     on_key, &b),
             BS_OK);
    CHECK_EQ(a.calls, 0); /* never inline */
    bs_keyring_free(e.kr);
    e.kr = NULL;
    CHECK_EQ(a.calls, 1);
    CHECK_EQ(a.st, BS_E_STATE);
    CHECK_EQ(b.calls, 1);
    CHECK_EQ(b.st, BS_E_STATE);
    env_free(&e); /* the HTTP client cancels; the detached ops are freed quietly */
    CHECK_EQ(a.calls, 1);
    CHECK_EQ(b.calls, 1);
}

typedef struct wake {
    bs_dek_waiter w;
    bool done;
    bs_status st;
} wake;

static void on_wake(bs_dek_waiter *w, bs_status st)
{
    wake *k = w->arg;
    k->done = true;
    k->st = st;
}

/* The DEK manager on the control loop with this keyring, one worker (same thread). */
static void test_dek_manager_over_kms(void)
{
    env e;
    if (!env_init(&e, srv_port, 1)) return;
    struct ev_loop *wl = ev_loop_new(EVFLAG_AUTO);
    bs_dek_manager *m = NULL;
    bs_dek_worker *w = NULL;
    bs_dek_manager_config cfg = {.keyring = e.kr, .loop = e.loop, .policy = {100, 3600}};
    CHECK(bs_dek_manager_new(&cfg, &m) == BS_OK && bs_dek_worker_new(m, wl, &w) == BS_OK);
    if (!w) return;
    wake k = {0};
    bs_dek_waiter_init(&k.w, on_wake, &k);
    bs_dek *d = NULL;
    uint64_t budget;
    CHECK_EQ(bs_dek_worker_encrypt_dek(w, "alias/test", "orders", 6, &k.w, &d, &budget),
             BS_E_AGAIN);
    for (int i = 0; i < 2000 && !k.done; i++) {
        ev_run(e.loop, EVRUN_NOWAIT);
        ev_run(wl, EVRUN_NOWAIT);
        if (!k.done) usleep(5000);
    }
    CHECK(k.done);
    CHECK_EQ(k.st, BS_OK);
    CHECK_EQ(bs_dek_worker_encrypt_dek(w, "alias/test", "orders", 6, &k.w, &d, &budget), BS_OK);
    bs_wbuf env_out, pt;
    bs_wbuf_init(&env_out, 0);
    bs_wbuf_init(&pt, 0);
    CHECK(bs_envelope_encrypt(d, "orders", 6, (const uint8_t *)"hello", 5, &env_out) == BS_OK);
    /* Decrypting with the key this KMS unwraps (not the manager's cache). */
    size_t elen;
    const uint8_t *edek = bs_dek_edek(d, &elen);
    res r = decrypt(&e, "alias/test", edek, elen, &ctx_orders);
    CHECK_EQ(r.st, BS_OK);
    bs_dek *dd = NULL;
    CHECK(bs_dek_new(r.key, "alias/test", edek, elen, 0, &dd) == BS_OK);
    CHECK(bs_envelope_decrypt(dd, "orders", 6, env_out.data, env_out.len, &pt) == BS_OK);
    CHECK(pt.len == 5 && memcmp(pt.data, "hello", 5) == 0);
    bs_dek_free(dd);
    bs_wbuf_free(&env_out);
    bs_wbuf_free(&pt);
    /* Unknown key: the waiter hears "not found", fail closed. */
    memset(&k, 0, sizeof k);
    bs_dek_waiter_init(&k.w, on_wake, &k);
    CHECK_EQ(bs_dek_worker_encrypt_dek(w, "alias/nope", "orders", 6, &k.w, &d, &budget),
             BS_E_AGAIN);
    for (int i = 0; i < 2000 && !k.done; i++) {
        ev_run(e.loop, EVRUN_NOWAIT);
        ev_run(wl, EVRUN_NOWAIT);
        if (!k.done) usleep(5000);
    }
    CHECK(k.done);
    CHECK_EQ(k.st, BS_E_NOT_FOUND);
    CHECK_EQ(bs_dek_worker_encrypt_dek(w, "alias/nope", "orders", 6, NULL, &d, &budget),
             BS_E_NOT_FOUND);
    bs_dek_worker_free(w);
    bs_dek_manager_free(m);
    ev_loop_destroy(wl);
    env_free(&e);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    bool up = srv_start();
    CHECK(up);
    RUN(test_classify);
    RUN(test_parse_reply);
    RUN(test_new_rejects_bad_config);
    if (up) {
        RUN(test_round_trip_and_request_shape);
        RUN(test_wrong_context_key_or_blob_fails);
        RUN(test_kms_errors_and_malformed_replies);
        RUN(test_unreachable_kms);
        RUN(test_destroy_with_calls_in_flight);
        RUN(test_dek_manager_over_kms);
    } else {
        test_failed++;
    }
    srv_stop();
    bs_metrics_shutdown();
    return test_report();
}
