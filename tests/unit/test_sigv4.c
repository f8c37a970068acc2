/* Unit tests for src/aws/sigv4.c: every case of the AWS SigV4 test suite
 * (header and query signing) and requests captured from real AWS clients. */
#include <ctype.h>
#include <dirent.h>
#include <stdbool.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "brokerside/sigv4.h"
#include "test.h"

#define EXAMPLE_AKID "AKIDEXAMPLE"
#define EXAMPLE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

/* Read a whole file into a malloc'd NUL-terminated string (NULL if absent). */
static char *slurp(const char *dir, const char *name, size_t *len_out)
{
    char path[2048];
    snprintf(path, sizeof path, "%s%s%s", dir, *name ? "/" : "", name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s) s[n] = '\0';
    if (len_out) *len_out = (size_t)n;
    fclose(f);
    return s;
}

/* The spec directory: BS_SPEC_DIR, else next to the source tree (a git
 * worktree sits one level deeper than the main checkout). */
static const char *spec_dir(void)
{
    static char found[1024];
    const char *env = getenv("BS_SPEC_DIR");
    const char *src = getenv("BS_SOURCE_DIR");
    char cand[3][512];
    snprintf(cand[0], sizeof cand[0], "%s", env ? env : "../shared/spec");
    snprintf(cand[1], sizeof cand[1], "%s/../shared/spec", src ? src : "..");
    snprintf(cand[2], sizeof cand[2], "%s/../../shared/spec", src ? src : "..");
    for (int i = 0; i < 3; i++) {
        char probe[1100];
        snprintf(probe, sizeof probe, "%.500s/aws-sigv4-test-suite", cand[i]);
        DIR *d = opendir(probe);
        if (d) {
            closedir(d);
            snprintf(found, sizeof found, "%.500s", cand[i]);
            return found;
        }
    }
    return env ? env : "../shared/spec";
}

static time_t parse_iso(const char *s)
{
    struct tm tm = {0};
    if (!strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) && !strptime(s, "%Y%m%dT%H%M%SZ", &tm)) return 0;
    return timegm(&tm);
}

/* A request parsed from a test-suite request.txt. */
typedef struct parsed_req {
    char *text; /* owns every string below */
    char method[16];
    char *path, *query;
    bs_sigv4_header hdr[32];
    char *vals[32]; /* malloc'd values (multi-line values are joined with '\n') */
    size_t nh;
    const char *body;
    size_t body_len;
} parsed_req;

static void parsed_req_free(parsed_req *r)
{
    for (size_t i = 0; i < r->nh; i++)
        free(r->vals[i]);
    free(r->text);
    memset(r, 0, sizeof *r);
}

static bool parse_request_txt(const char *dir, parsed_req *r)
{
    memset(r, 0, sizeof *r);
    size_t len;
    r->text = slurp(dir, "request.txt", &len);
    if (!r->text) return false;
    char *line_end = strchr(r->text, '\n');
    if (line_end) *line_end = '\0';
    /* Request line: the path may contain spaces, so cut at the first and last space. */
    char *sp1 = strchr(r->text, ' '), *sp2 = strrchr(r->text, ' ');
    if (!sp1 || sp2 == sp1) return false;
    snprintf(r->method, sizeof r->method, "%.*s", (int)(sp1 - r->text), r->text);
    *sp2 = '\0';
    r->path = sp1 + 1;
    char *q = strchr(r->path, '?');
    if (q) {
        *q = '\0';
        r->query = q + 1;
    }
    char *p = line_end ? line_end + 1 : r->text + len;
    while (p < r->text + len) {
        char *e = strchr(p, '\n');
        if (e) *e = '\0';
        if (*p == '\0') { /* blank line: the body follows */
            r->body = e ? e + 1 : "";
            r->body_len = strlen(r->body);
            break;
        }
        if ((*p == ' ' || *p == '\t') && r->nh) { /* folded continuation of the previous value */
            char *prev = r->vals[r->nh - 1];
            char *n = malloc(strlen(prev) + strlen(p) + 2);
            sprintf(n, "%s\n%s", prev, p);
            free(prev);
            r->vals[r->nh - 1] = n;
            r->hdr[r->nh - 1].value = n;
        } else {
            char *colon = strchr(p, ':');
            if (!colon || r->nh == 32) return false;
            *colon = '\0';
            r->hdr[r->nh].name = p;
            r->vals[r->nh] = strdup(colon + 1);
            r->hdr[r->nh].value = r->vals[r->nh];
            r->nh++;
        }
        if (!e) break;
        p = e + 1;
    }
    return true;
}

/* The SignedHeaders=... list out of an Authorization header value. */
static char *signed_headers_of(const char *auth)
{
    const char *p = auth ? strstr(auth, "SignedHeaders=") : NULL;
    if (!p) return NULL;
    p += strlen("SignedHeaders=");
    size_t n = strcspn(p, ",");
    return strndup(p, n);
}

static void run_suite_case(const char *root, const char *name, int *cases)
{
    char dir[1400];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    char *ctx_text = slurp(dir, "context.json", NULL);
    cJSON *ctx = ctx_text ? cJSON_Parse(ctx_text) : NULL;
    parsed_req r;
    bool parsed = parse_request_txt(dir, &r);
    CHECK(ctx != NULL);
    CHECK(parsed);
    if (!ctx || !parsed) {
        fprintf(stderr, "  case %s unreadable\n", name);
        goto out;
    }
    cJSON *cr = cJSON_GetObjectItem(ctx, "credentials");
    bs_sigv4_credentials creds = {
        .access_key_id = cJSON_GetStringValue(cJSON_GetObjectItem(cr, "access_key_id")),
        .secret_access_key = cJSON_GetStringValue(cJSON_GetObjectItem(cr, "secret_access_key")),
        .session_token = cJSON_GetStringValue(cJSON_GetObjectItem(cr, "token")),
    };
    bs_sigv4_options o;
    bs_sigv4_options_init(&o, cJSON_GetStringValue(cJSON_GetObjectItem(ctx, "region")),
                          cJSON_GetStringValue(cJSON_GetObjectItem(ctx, "service")),
                          parse_iso(cJSON_GetStringValue(cJSON_GetObjectItem(ctx, "timestamp"))));
    /* The suite's paths are raw (unencoded), so encoding them once is what
     * double encoding does to an already-encoded wire path. */
    o.normalize_path = cJSON_IsTrue(cJSON_GetObjectItem(ctx, "normalize"));
    o.double_encode_path = true;
    o.add_content_sha256 = cJSON_IsTrue(cJSON_GetObjectItem(ctx, "sign_body"));
    o.omit_session_token_from_signature =
        cJSON_IsTrue(cJSON_GetObjectItem(ctx, "omit_session_token"));
    bs_sigv4_request req = {.method = r.method,
                            .path = r.path,
                            .query = r.query,
                            .headers = r.hdr,
                            .n_headers = r.nh,
                            .body = (const uint8_t *)r.body,
                            .body_len = r.body_len};

    /* Header signing. */
    bs_sigv4_result res;
    bs_status st = bs_sigv4_sign(&req, &creds, &o, &res);
    CHECK_EQ(st, BS_OK);
    char *exp_creq = slurp(dir, "header-canonical-request.txt", NULL);
    char *exp_sts = slurp(dir, "header-string-to-sign.txt", NULL);
    char *exp_sig = slurp(dir, "header-signature.txt", NULL);
    char *exp_signed = slurp(dir, "header-signed-request.txt", NULL);
    char *auth_line = exp_signed ? strstr(exp_signed, "Authorization:") : NULL;
    char *auth_end = auth_line ? strchr(auth_line, '\n') : NULL;
    if (auth_end) *auth_end = '\0';
    char *exp_sh = signed_headers_of(auth_line);
    if (st == BS_OK) {
        int before = test_failures_in_current;
        CHECK_STR(res.canonical_request, exp_creq);
        CHECK_STR(res.string_to_sign, exp_sts);
        CHECK_STR(res.signature, exp_sig);
        CHECK_STR(res.signed_headers, exp_sh);
        CHECK(auth_line && strcmp(auth_line + strlen("Authorization:"), res.authorization) == 0);
        if (test_failures_in_current != before) fprintf(stderr, "  (header case %s)\n", name);
    }
    bs_sigv4_result_free(&res);

    /* Query signing (presigned URL). */
    unsigned expires =
        (unsigned)cJSON_GetNumberValue(cJSON_GetObjectItem(ctx, "expiration_in_seconds"));
    bs_sigv4_options qo = o;
    qo.add_content_sha256 = false;
    st = bs_sigv4_presign(&req, &creds, &qo, expires, &res);
    CHECK_EQ(st, BS_OK);
    char *q_creq = slurp(dir, "query-canonical-request.txt", NULL);
    char *q_sts = slurp(dir, "query-string-to-sign.txt", NULL);
    char *q_sig = slurp(dir, "query-signature.txt", NULL);
    if (st == BS_OK) {
        int before = test_failures_in_current;
        CHECK_STR(res.canonical_request, q_creq);
        CHECK_STR(res.string_to_sign, q_sts);
        CHECK_STR(res.signature, q_sig);
        CHECK(res.presigned_query && strstr(res.presigned_query, "X-Amz-Signature=") != NULL);
        CHECK(res.presigned_query && strstr(res.presigned_query, q_sig ? q_sig : "?") != NULL);
        if (test_failures_in_current != before) fprintf(stderr, "  (query case %s)\n", name);
    }
    bs_sigv4_result_free(&res);
    (*cases)++;
    free(exp_creq);
    free(exp_sts);
    free(exp_sig);
    free(exp_signed);
    free(exp_sh);
    free(q_creq);
    free(q_sts);
    free(q_sig);
out:
    if (parsed || r.text) parsed_req_free(&r);
    cJSON_Delete(ctx);
    free(ctx_text);
}

static void test_aws_sigv4_suite(void)
{
    char root[1024];
    snprintf(root, sizeof root, "%s/aws-sigv4-test-suite/v4", spec_dir());
    DIR *d = opendir(root);
    CHECK(d != NULL);
    if (!d) return;
    int cases = 0, dirs = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        dirs++;
        run_suite_case(root, e->d_name, &cases);
    }
    closedir(d);
    CHECK_EQ(cases, dirs);
    CHECK(cases >= 38); /* the suite as shipped: a missing directory must not pass silently */
    fprintf(stderr, "  %d test-suite cases checked\n", cases);
}

/* Re-sign one captured client request and compare with its Authorization. */
static void check_wire_capture(const char *path, int *checked)
{
    char *text = slurp(path, "", NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    CHECK(j != NULL);
    if (!j) {
        free(text);
        return;
    }
    const char *line = cJSON_GetStringValue(cJSON_GetObjectItem(j, "request_line"));
    const char *body = cJSON_GetStringValue(cJSON_GetObjectItem(j, "body"));
    cJSON *headers = cJSON_GetObjectItem(j, "headers");
    const char *auth = NULL, *amz_date = NULL;
    cJSON *h;
    cJSON_ArrayForEach(h, headers)
    {
        const char *n = cJSON_GetStringValue(cJSON_GetArrayItem(h, 0));
        const char *v = cJSON_GetStringValue(cJSON_GetArrayItem(h, 1));
        if (strcasecmp(n, "authorization") == 0) auth = v;
        if (strcasecmp(n, "x-amz-date") == 0) amz_date = v;
    }
    CHECK(line && body && auth && amz_date);
    if (!line || !body || !auth || !amz_date) goto out;

    /* Scope "AKID/date/region/service/aws4_request" names region and service. */
    char akid[64], date[16], region[64], service[64];
    CHECK_EQ(sscanf(auth, "AWS4-HMAC-SHA256 Credential=%63[^/]/%15[^/]/%63[^/]/%63[^/]/", akid,
                    date, region, service),
             4);
    char *signed_list = signed_headers_of(auth);
    /* Only the headers the client signed, minus X-Amz-Date (the signer adds it). */
    bs_sigv4_header hs[32];
    size_t nh = 0;
    cJSON_ArrayForEach(h, headers)
    {
        const char *n = cJSON_GetStringValue(cJSON_GetArrayItem(h, 0));
        const char *v = cJSON_GetStringValue(cJSON_GetArrayItem(h, 1));
        if (strcasecmp(n, "x-amz-date") == 0 || strcasecmp(n, "authorization") == 0) continue;
        char lname[128];
        size_t k = 0;
        for (; n[k] && k < sizeof lname - 1; k++)
            lname[k] = (char)tolower((unsigned char)n[k]);
        lname[k] = '\0';
        char needle[132];
        snprintf(needle, sizeof needle, ";%s;", lname);
        char hay[2048];
        snprintf(hay, sizeof hay, ";%s;", signed_list ? signed_list : "");
        if (strstr(hay, needle) && nh < 32) hs[nh++] = (bs_sigv4_header){n, v};
    }
    char target[1024];
    snprintf(target, sizeof target, "%s", strchr(line, ' ') + 1);
    *strrchr(target, ' ') = '\0';
    char *q = strchr(target, '?');
    if (q) *q++ = '\0';
    char method[16];
    snprintf(method, sizeof method, "%.*s", (int)strcspn(line, " "), line);

    bs_sigv4_credentials creds = {EXAMPLE_AKID, EXAMPLE_SECRET, NULL};
    bs_sigv4_options o;
    bs_sigv4_options_init(&o, region, service, parse_iso(amz_date));
    bs_sigv4_request req = {.method = method,
                            .path = target,
                            .query = q,
                            .headers = hs,
                            .n_headers = nh,
                            .body = (const uint8_t *)body,
                            .body_len = strlen(body)};
    bs_sigv4_result res;
    CHECK_EQ(bs_sigv4_sign(&req, &creds, &o, &res), BS_OK);
    CHECK_STR(res.authorization, auth);
    CHECK_STR(res.signed_headers, signed_list);
    if (res.authorization && strcmp(res.authorization, auth) != 0)
        fprintf(stderr, "  capture %s\n  canonical:\n%s\n", path, res.canonical_request);
    bs_sigv4_result_free(&res);
    free(signed_list);
    (*checked)++;
out:
    cJSON_Delete(j);
    free(text);
}

static void test_captured_clients(void)
{
    char root[1024];
    snprintf(root, sizeof root, "%s/aws-wire", spec_dir());
    DIR *d = opendir(root);
    CHECK(d != NULL);
    if (!d) return;
    int checked = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sub[1400];
        snprintf(sub, sizeof sub, "%s/%s", root, e->d_name);
        DIR *d2 = opendir(sub);
        if (!d2) continue;
        struct dirent *f;
        while ((f = readdir(d2))) {
            size_t n = strlen(f->d_name);
            if (n < 5 || strcmp(f->d_name + n - 5, ".json") != 0) continue;
            char p[2048];
            snprintf(p, sizeof p, "%s/%s", sub, f->d_name);
            check_wire_capture(p, &checked);
        }
        closedir(d2);
    }
    closedir(d);
    CHECK(checked >= 18); /* 3 clients x 6 calls */
    fprintf(stderr, "  %d captured requests re-signed\n", checked);
}

static const bs_sigv4_header HOST_ONLY[] = {{"Host", "example.amazonaws.com"}};

static void test_key_cache(void)
{
    bs_sigv4_key_cache cache = {0};
    bs_sigv4_credentials creds = {EXAMPLE_AKID, EXAMPLE_SECRET, NULL};
    bs_sigv4_options o;
    bs_sigv4_options_init(&o, "us-east-1", "service", parse_iso("2015-08-30T12:36:00Z"));
    bs_sigv4_request req = {.method = "GET", .path = "/", .headers = HOST_ONLY, .n_headers = 1};
    bs_sigv4_result a, b, c;
    CHECK_EQ(bs_sigv4_sign(&req, &creds, &o, &a), BS_OK);
    o.cache = &cache;
    CHECK_EQ(bs_sigv4_sign(&req, &creds, &o, &b), BS_OK);
    CHECK_EQ(bs_sigv4_sign(&req, &creds, &o, &c), BS_OK);
    CHECK_EQ(cache.misses, 1);
    CHECK_EQ(cache.hits, 1);
    CHECK_STR(a.signature, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    CHECK_STR(b.signature, a.signature);
    CHECK_STR(c.signature, a.signature);
    bs_sigv4_result_free(&c);
    /* A different secret with the same date/region/service must not reuse the key. */
    bs_sigv4_credentials other = {EXAMPLE_AKID, "another-secret", NULL};
    CHECK_EQ(bs_sigv4_sign(&req, &other, &o, &c), BS_OK);
    CHECK_EQ(cache.misses, 2);
    CHECK(strcmp(c.signature, a.signature) != 0);
    bs_sigv4_result_free(&a);
    bs_sigv4_result_free(&b);
    bs_sigv4_result_free(&c);
    bs_sigv4_key_cache_clear(&cache);
    CHECK(!cache.valid);
}

static void test_s3_and_unsigned_payload(void)
{
    bs_sigv4_credentials creds = {EXAMPLE_AKID, EXAMPLE_SECRET, "tok en"};
    bs_sigv4_options o;
    bs_sigv4_options_init(&o, "eu-west-1", "s3", parse_iso("2024-01-01T00:00:00Z"));
    CHECK(!o.normalize_path && !o.double_encode_path && o.add_content_sha256);
    const bs_sigv4_header h[] = {{"Host", "b.s3.amazonaws.com"}};
    bs_sigv4_request req = {.method = "PUT",
                            .path = "/dir/../a%20b//c",
                            .headers = h,
                            .n_headers = 1,
                            .payload_hash = BS_SIGV4_UNSIGNED_PAYLOAD};
    bs_sigv4_result r;
    CHECK_EQ(bs_sigv4_sign(&req, &creds, &o, &r), BS_OK);
    /* S3: the path exactly as sent, the payload marker and the token all signed. */
    CHECK(r.canonical_request &&
          strncmp(r.canonical_request, "PUT\n/dir/../a%20b//c\n\n", 22) == 0);
    CHECK(r.canonical_request &&
          strstr(r.canonical_request, "x-amz-content-sha256:UNSIGNED-PAYLOAD\n"));
    CHECK(r.canonical_request && strstr(r.canonical_request, "x-amz-security-token:tok en\n"));
    CHECK_STR(r.signed_headers, "host;x-amz-content-sha256;x-amz-date;x-amz-security-token");
    CHECK_STR(r.payload_hash, "UNSIGNED-PAYLOAD");
    CHECK_STR(r.amz_date, "20240101T000000Z");
    bs_sigv4_result_free(&r);
    /* Other services: the encoded path is normalised and encoded again. */
    bs_sigv4_options_init(&o, "eu-west-1", "kms", parse_iso("2024-01-01T00:00:00Z"));
    CHECK_EQ(bs_sigv4_sign(&req, &creds, &o, &r), BS_OK);
    CHECK(r.canonical_request && strncmp(r.canonical_request, "PUT\n/a%2520b/c\n\n", 16) == 0);
    bs_sigv4_result_free(&r);
}

static void test_rejects_bad_input(void)
{
    bs_sigv4_credentials creds = {EXAMPLE_AKID, EXAMPLE_SECRET, NULL};
    bs_sigv4_credentials no_secret = {EXAMPLE_AKID, "", NULL};
    bs_sigv4_options o;
    bs_sigv4_options_init(&o, "us-east-1", "service", parse_iso("2015-08-30T12:36:00Z"));
    bs_sigv4_result r;
    bs_sigv4_request req = {.method = "GET", .path = "/", .headers = HOST_ONLY, .n_headers = 1};
    CHECK_EQ(bs_sigv4_sign(&req, &no_secret, &o, &r), BS_E_CONFIG);
    bs_sigv4_result_free(&r);
    CHECK_EQ(bs_sigv4_sign(&req, NULL, &o, &r), BS_E_CONFIG);
    bs_sigv4_result_free(&r);
    bs_sigv4_options no_region = o;
    no_region.region = "";
    CHECK_EQ(bs_sigv4_sign(&req, &creds, &no_region, &r), BS_E_CONFIG);
    bs_sigv4_result_free(&r);

    const bs_sigv4_header with_auth[] = {{"Host", "h"}, {"Authorization", "x"}};
    bs_sigv4_request bad = req;
    bad.headers = with_auth;
    bad.n_headers = 2;
    CHECK_EQ(bs_sigv4_sign(&bad, &creds, &o, &r), BS_E_MALFORMED);
    bs_sigv4_result_free(&r);
    const bs_sigv4_header bad_name[] = {{"Bad Name", "x"}};
    bad.headers = bad_name;
    bad.n_headers = 1;
    CHECK_EQ(bs_sigv4_sign(&bad, &creds, &o, &r), BS_E_MALFORMED);
    bs_sigv4_result_free(&r);
    bad = req;
    bad.query = "a=%zz";
    CHECK_EQ(bs_sigv4_sign(&bad, &creds, &o, &r), BS_E_MALFORMED);
    bs_sigv4_result_free(&r);
    bad.query = "a=%4";
    CHECK_EQ(bs_sigv4_sign(&bad, &creds, &o, &r), BS_E_MALFORMED);
    bs_sigv4_result_free(&r);
    bad = req;
    bad.method = "GET\nX";
    CHECK_EQ(bs_sigv4_sign(&bad, &creds, &o, &r), BS_E_MALFORMED);
    bs_sigv4_result_free(&r);
    bad = req;
    bad.path = "relative";
    CHECK_EQ(bs_sigv4_sign(&bad, &creds, &o, &r), BS_E_MALFORMED);
    bs_sigv4_result_free(&r);
    /* S3 signs the path as sent: it must already be encoded. */
    bs_sigv4_options s3;
    bs_sigv4_options_init(&s3, "us-east-1", "s3", parse_iso("2015-08-30T12:36:00Z"));
    bad = req;
    bad.path = "/bucket/a b";
    CHECK_EQ(bs_sigv4_sign(&bad, &creds, &s3, &r), BS_E_MALFORMED);
    bs_sigv4_result_free(&r);
    bad.path = "/bucket/a\nb";
    CHECK_EQ(bs_sigv4_sign(&bad, &creds, &s3, &r), BS_E_MALFORMED);
    bs_sigv4_result_free(&r);
    bad = req;
    bad.payload_hash = "this-is-far-too-long-to-be-a-sha256-hex-digest-of-anything-at-all";
    CHECK_EQ(bs_sigv4_sign(&bad, &creds, &o, &r), BS_E_MALFORMED);
    bs_sigv4_result_free(&r);
    CHECK_EQ(bs_sigv4_presign(&req, &creds, &o, 0, &r), BS_E_CONFIG);
    CHECK_EQ(bs_sigv4_presign(&req, &creds, &o, 604801, &r), BS_E_CONFIG);
    bad = req;
    bad.query = "X-Amz-Signature=abc";
    CHECK_EQ(bs_sigv4_presign(&bad, &creds, &o, 60, &r), BS_E_MALFORMED);
    bs_sigv4_result_free(&r);
}

int main(void)
{
    RUN(test_aws_sigv4_suite);
    RUN(test_captured_clients);
    RUN(test_key_cache);
    RUN(test_s3_and_unsigned_payload);
    RUN(test_rejects_bad_input);
    return test_report();
}
