/*
 * aws_call - one AWS JSON RPC call through brokerside's AWS layer (SigV4,
 * credential chain, libcurl-on-libev client, retries), for integration tests
 * and by hand:
 *
 *   aws_call --service kms --region us-east-1 --endpoint http://127.0.0.1:5000/ \
 *            --target TrentService.GenerateDataKey --body '{"KeyId":"...","KeySpec":"AES_256"}' \
 *            [--max-attempts N] [--timeout-ms MS] [--ca-file PEM] [--profile NAME]
 *
 * or any signed request (S3 and the like):
 *
 *   aws_call --service s3 --region us-east-1 --method PUT \
 *            --url http://127.0.0.1:5000/bucket/key%201 --body 'bytes' [--header 'Name: value']...
 *
 * Credentials come from the normal chain (environment, shared files, ECS,
 * IMDS). Prints one JSON object on stdout: outcome, status, attempts,
 * error_code, error_message, transport_error, body. Exit status 0 if the
 * outcome is "ok", 1 otherwise, 2 for bad usage.
 */
#include <ev.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerside/aws_http.h"
#include "brokerside/buf.h"

typedef struct outcome {
    bool done;
    int exit_code;
} outcome;

/* Print the response as one JSON line and remember the exit code. */
static void on_done(const bs_aws_http_response *r, void *arg)
{
    outcome *o = arg;
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_wbuf_printf(&w, "{\"outcome\":\"%s\",\"status\":%ld,\"attempts\":%u,\"error_code\":",
                   bs_aws_outcome_name(r->outcome), r->status, r->attempts);
    bs_wbuf_put_json_string(&w, r->error_code, strlen(r->error_code));
    bs_wbuf_put_str(&w, ",\"error_message\":");
    bs_wbuf_put_json_string(&w, r->error_message, strlen(r->error_message));
    bs_wbuf_put_str(&w, ",\"transport_error\":");
    bs_wbuf_put_json_string(&w, r->transport_error, strlen(r->transport_error));
    bs_wbuf_put_str(&w, ",\"body\":");
    bs_wbuf_put_json_string(&w, (const char *)r->body, r->body_len);
    bs_wbuf_put_str(&w, "}\n");
    if (bs_wbuf_status(&w) == BS_OK) fwrite(w.data, 1, w.len, stdout);
    bs_wbuf_free(&w);
    o->done = true;
    o->exit_code = r->outcome == BS_AWS_OK ? 0 : 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: aws_call --service S --region R --target T --body JSON "
                    "[--endpoint URL] [options]\n"
                    "       aws_call --service S --region R --method M --url URL [--body DATA] "
                    "[--header 'N: V']... [options]\n"
                    "options: [--max-attempts N] [--timeout-ms MS] [--ca-file PEM] "
                    "[--profile NAME]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"service", required_argument, 0, 's'},    {"region", required_argument, 0, 'r'},
        {"endpoint", required_argument, 0, 'e'},   {"target", required_argument, 0, 't'},
        {"body", required_argument, 0, 'b'},       {"max-attempts", required_argument, 0, 'm'},
        {"timeout-ms", required_argument, 0, 'o'}, {"ca-file", required_argument, 0, 'c'},
        {"profile", required_argument, 0, 'p'},    {"method", required_argument, 0, 'M'},
        {"url", required_argument, 0, 'u'},        {"header", required_argument, 0, 'H'},
        {0, 0, 0, 0}};
    const char *method = NULL, *url = NULL;
    bs_sigv4_header headers[16];
    char *header_copies[16];
    size_t nh = 0;
    const char *service = NULL, *region = NULL, *endpoint = NULL, *target = NULL, *body = NULL;
    bs_aws_http_config cfg = {0};
    bs_aws_credentials_config cc = {0};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 's':
            service = optarg;
            break;
        case 'r':
            region = optarg;
            break;
        case 'e':
            endpoint = optarg;
            break;
        case 't':
            target = optarg;
            break;
        case 'b':
            body = optarg;
            break;
        case 'm':
            cfg.max_attempts = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'o':
            cfg.timeout_ms = strtol(optarg, NULL, 10);
            break;
        case 'c':
            cfg.ca_file = optarg;
            break;
        case 'p':
            cc.profile = optarg;
            break;
        case 'M':
            method = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 'H': {
            char *colon = strchr(optarg, ':');
            if (!colon || nh == BS_ARRAY_LEN(headers)) {
                usage();
                return 2;
            }
            header_copies[nh] = strndup(optarg, (size_t)(colon - optarg));
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            headers[nh] = (bs_sigv4_header){header_copies[nh], v};
            nh++;
            break;
        }
        default:
            usage();
            return 2;
        }
    }
    bool json = target != NULL;
    if (!service || !region || (json ? !body : (!method || !url))) {
        usage();
        return 2;
    }
    cfg.backoff_base_ms = 50;
    cfg.backoff_max_ms = 1000;
    struct ev_loop *loop = EV_DEFAULT;
    bs_aws_credentials_provider *creds = NULL;
    bs_aws_http *client = NULL;
    outcome o = {false, 1};
    int rc = 2;
    if (bs_aws_credentials_provider_new(&cc, &creds) != BS_OK ||
        bs_aws_http_new(loop, &cfg, creds, &client) != BS_OK) {
        fprintf(stderr, "aws_call: cannot create the client\n");
        goto out;
    }
    bs_status st;
    if (json) {
        st = bs_aws_json_call(client, service, region, endpoint, target, body, on_done, &o);
    } else {
        bs_aws_http_request req = {.method = method,
                                   .url = url,
                                   .headers = headers,
                                   .n_headers = nh,
                                   .body = (const uint8_t *)(body ? body : ""),
                                   .body_len = body ? strlen(body) : 0,
                                   .service = service,
                                   .region = region};
        st = bs_aws_http_send(client, &req, on_done, &o);
    }
    if (st != BS_OK) {
        fprintf(stderr, "aws_call: request rejected: %s\n", bs_status_name(st));
        goto out;
    }
    while (!o.done)
        ev_run(loop, EVRUN_ONCE);
    rc = o.exit_code;
out:
    bs_aws_http_free(client);
    bs_aws_credentials_provider_free(creds);
    for (size_t i = 0; i < nh; i++)
        free(header_copies[i]);
    return rc;
}
