/* libFuzzer target for the AWS layer's parsers of untrusted bytes: the error
 * body/header classifier (bs_aws_error_code), the XML element reader of S3
 * answers (bs_aws_xml_element, bs_aws_xml_text) and SigV4 canonicalisation of
 * arbitrary paths, queries and header values (bs_sigv4_sign). No crash, no
 * read past the input; outputs stay terminated and normalised. */
#include <stdlib.h>
#include <string.h>

#include "brokerside/aws_http.h"
#include "brokerside/sigv4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy so ASan flags any read past `size`. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);

    char code[32], msg[64];
    bs_aws_error_code(buf, size, NULL, code, sizeof code, msg, sizeof msg);
    if (strlen(code) >= sizeof code || strlen(msg) >= sizeof msg) abort();
    if (strchr(code, '#') || strchr(code, ':')) abort();
    (void)bs_aws_classify(400, code);

    /* Walk the elements as the S3 sink reads a ListMultipartUploads answer. */
    bs_cursor doc, up, v;
    bs_cursor_init(&doc, buf, size);
    size_t last = 0;
    while (bs_aws_xml_element(&doc, "Upload", &up)) {
        if (doc.pos <= last || doc.pos > size) abort(); /* always moves forward, stays inside */
        last = doc.pos;
        if (up.data < buf || up.data + up.len > buf + size) abort();
        char key[16];
        if (bs_aws_xml_element(&up, "Key", &v)) {
            bs_aws_xml_text(&v, key, sizeof key);
            if (strlen(key) >= sizeof key || strlen(key) > v.len) abort();
        }
    }

    /* Split the input at NULs into path, query and one header value. */
    char *s = malloc(size + 3);
    if (!s) abort();
    if (size) memcpy(s, buf, size);
    s[size] = s[size + 1] = s[size + 2] = '\0';
    char *path = s;
    char *query = path + strlen(path) + 1;
    char *value = query + strlen(query) + 1;
    if (value > s + size) value = s + size;
    if (query > s + size) query = s + size;
    bs_sigv4_header h[] = {{"Host", "example.amazonaws.com"}, {"X-Fuzz", value}};
    bs_sigv4_request req = {
        .method = "GET", .path = path, .query = query, .headers = h, .n_headers = 2};
    bs_sigv4_credentials creds = {"AKIDEXAMPLE", "secret", NULL};
    bs_sigv4_options o;
    bs_sigv4_options_init(&o, "us-east-1", size & 1 ? "s3" : "service", 1440938160);
    bs_sigv4_result r;
    if (bs_sigv4_sign(&req, &creds, &o, &r) == BS_OK) {
        if (!r.canonical_request || !r.authorization || strlen(r.signature) != 64) abort();
        /* Nothing the caller passes can add or remove a line of the canonical
         * request: method, path, query, the headers, blank, signed list, hash. */
        size_t lines = 0;
        for (const char *q = r.canonical_request; *q; q++)
            lines += *q == '\n';
        size_t headers = o.add_content_sha256 ? 4 : 3;
        if (lines != headers + 5) abort();
    }
    bs_sigv4_result_free(&r);
    free(s);
    free(buf);
    return 0;
}
