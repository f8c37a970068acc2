/*
 * audit_verify.c - offline verification of audit files: the hash chain,
 * sequence continuity, digests and their signatures, and chain-to-chain
 * links after restarts (see audit.h; the procedure is in
 * docs/audit-events.md). Files are untrusted input: every line is parsed
 * with explicit lengths and bounded.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/sha.h>

#include "audit_internal.h"
#include "brokerside/audit.h"

#define LINE_MAX_BYTES (1024 * 1024)
#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* One line, parsed. */
typedef struct vline {
    bool present; /* false at end of input */
    bool valid;   /* a well-formed audit event */
    const char *file;
    uint64_t lineno;
    char why[96]; /* when !valid */
    char chain[33];
    uint64_t seq;
    char prev[65];
    char hash[65];
    bool is_start, is_digest;
    /* digest */
    uint64_t d_first, d_last;
    char d_last_hash[65];
    char d_alg[16];
    char d_sig[129];
    bool d_has_sig;
    bool d_sig_ok; /* the signature verified with the reader's key */
    /* AuditEventsLost */
    bool is_loss;
    uint64_t lost_events;
    char lost_first[32], lost_last[32];
    /* chain start */
    bool after_crash; /* previousRun "crashed" (or a previousChain not sealed) */
    bool has_link;
    char l_chain[33];
    uint64_t l_seq;
    char l_hash[65];
} vline;

/* The input: files in order, read line by line. */
typedef struct reader {
    const bs_audit_key *key; /* checks digest signatures while the raw line is at hand */
    const char **paths;
    size_t n, idx;
    FILE *f;
    uint64_t lineno;
    char *buf;
    size_t cap;
    bs_status st;
} reader;

typedef struct vstate {
    const bs_audit_key *key;
    FILE *report;
    bs_audit_verify_result *res;
    bool in_chain;
    char chain[33];
    uint64_t expect;      /* next sequence */
    char hash[65];        /* hash of the last accepted line */
    const char *acc_file; /* where the last accepted line is */
    uint64_t acc_line;
    uint64_t first_unsealed; /* first sequence not covered by a digest */
    bool range_known;        /* false when the stream started mid-chain */
    bool skip_next;          /* the next line is the second half of a reported swap */
    uint64_t skip_seq;
    bool warned_nokey;
    uint64_t chains;
    /* the end of the previous chain, for links */
    bool have_prev;
    char prev_chain[33];
    uint64_t prev_seq;
    char prev_hash[65];
} vstate;

/* See audit.h. */
const char *bs_audit_problem_name(bs_audit_problem p)
{
    switch (p) {
    case BS_AUDIT_OK:
        return "ok";
    case BS_AUDIT_EDITED:
        return "edited";
    case BS_AUDIT_REMOVED:
        return "removed";
    case BS_AUDIT_INSERTED:
        return "inserted";
    case BS_AUDIT_REORDERED:
        return "reordered";
    case BS_AUDIT_MALFORMED:
        return "malformed";
    case BS_AUDIT_BAD_DIGEST:
        return "digest mismatch";
    case BS_AUDIT_BAD_SIGNATURE:
        return "bad signature";
    case BS_AUDIT_BAD_LINK:
        return "broken chain link";
    case BS_AUDIT_LOST:
        return "events lost";
    }
    return "unknown";
}

/* Record and print one problem at file:line for event `seq` (or no
 * sequence when has_seq is false). */
static void problem(vstate *v, bs_audit_problem p, const char *file, uint64_t line, bool has_seq,
                    uint64_t seq, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void problem(vstate *v, bs_audit_problem p, const char *file, uint64_t line, bool has_seq,
                    uint64_t seq, const char *fmt, ...)
{
    char detail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (v->report) {
        if (has_seq)
            fprintf(v->report, "%s:%" PRIu64 ": event sequence %" PRIu64 ": %s (%s)\n", file, line,
                    seq, bs_audit_problem_name(p), detail);
        else
            fprintf(v->report, "%s:%" PRIu64 ": %s (%s)\n", file, line, bs_audit_problem_name(p),
                    detail);
    }
    if (v->res->problems++ == 0) {
        v->res->first_problem = p;
        snprintf(v->res->first_file, sizeof v->res->first_file, "%s", file);
        v->res->first_line = line;
        v->res->first_sequence = seq;
    }
}

/* Print a warning (does not make the verdict fail unless --strict). */
static void warning(vstate *v, const char *file, uint64_t line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void warning(vstate *v, const char *file, uint64_t line, const char *fmt, ...)
{
    va_list ap;
    v->res->warnings++;
    if (!v->report) return;
    fprintf(v->report, "%s:%" PRIu64 ": warning: ", file, line);
    va_start(ap, fmt);
    vfprintf(v->report, fmt, ap);
    va_end(ap);
    fputc('\n', v->report);
}

/* True if s is exactly `n` lower-case hex digits. */
static bool is_hex(const char *s, size_t n)
{
    if (strlen(s) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

/* A non-negative integer member no larger than 2^53 (exact in a double). */
static bool get_u64(const cJSON *o, const char *name, uint64_t *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(j) || j->valuedouble < 0 || j->valuedouble > 9007199254740992.0 ||
        j->valuedouble != (double)(uint64_t)j->valuedouble)
        return false;
    *out = (uint64_t)j->valuedouble;
    return true;
}

/* Copy a string member that must be `n` hex digits into out[n+1]. */
static bool get_hex(const cJSON *o, const char *name, size_t n, char *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(j) || !is_hex(j->valuestring, n)) return false;
    memcpy(out, j->valuestring, n + 1);
    return true;
}

/* Verify a digest line's signature over its raw bytes; the signature in
 * the raw bytes must be the one the JSON parser saw. */
static bool digest_sig_ok(const bs_audit_key *key, const vline *l, const char *p, size_t len)
{
    size_t s, e;
    bs_wbuf msg;
    if (!key || !l->d_has_sig) return false;
    if (bs_audit_digest_sig_span(p, len, &s, &e) != BS_OK || e - s != strlen(l->d_sig) ||
        memcmp(p + s, l->d_sig, e - s) != 0)
        return false;
    bs_wbuf_init(&msg, 0);
    bool ok = bs_audit_digest_message(p, len, &msg) == BS_OK &&
              bs_audit_verify_sig(key, msg.data, msg.len, p + s, e - s) == BS_OK;
    bs_wbuf_free(&msg);
    return ok;
}

/* Parse one line's bytes into l (present and location already set). */
static void parse_line(vline *l, const char *p, size_t len, const bs_audit_key *key)
{
    uint8_t md[SHA256_DIGEST_LENGTH];
    SHA256((const uint8_t *)p, len, md);
    bs_audit_hex(md, sizeof md, l->hash);
    /* The whole line must be the one object: cJSON would otherwise accept
     * trailing bytes, and two lines joined by a changed newline would parse
     * as the first. */
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(p, len, &end, false);
    if (j && end != p + len) {
        cJSON_Delete(j);
        j = NULL;
    }
    if (!cJSON_IsObject(j)) {
        snprintf(l->why, sizeof l->why, "not a single JSON object");
        goto out;
    }
    const cJSON *r = bs_audit_record_of(j);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(r, "eventName");
    if (!get_hex(r, "chainId", 32, l->chain) || !get_u64(r, "sequence", &l->seq) ||
        !get_hex(r, "previousHash", 64, l->prev) || !cJSON_IsString(name)) {
        snprintf(l->why, sizeof l->why,
                 "chainId, sequence, previousHash or eventName missing or invalid");
        goto out;
    }
    /* The kind of a chain start or digest is stated redundantly (name, type,
     * payload member, sequence 0 for a start) and must agree: otherwise
     * renaming the final digest would turn tampering into a mere
     * "unsealed tail" warning. */
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(r, "eventType");
    int dm = (strcmp(name->valuestring, "AuditDigest") == 0) +
             (cJSON_IsString(type) && strcmp(type->valuestring, "AuditDigest") == 0) +
             cJSON_HasObjectItem(r, "digest");
    int sm = (strcmp(name->valuestring, "AuditChainStart") == 0) +
             (cJSON_IsString(type) && strcmp(type->valuestring, "AuditChain") == 0) +
             cJSON_HasObjectItem(r, "previousChain") + (l->seq == 0);
    if ((dm != 0 && dm != 3) || (sm != 0 && sm != 4)) {
        snprintf(l->why, sizeof l->why, "inconsistent %s event",
                 dm ? "AuditDigest" : "AuditChainStart");
        goto out;
    }
    l->is_start = sm == 4;
    l->is_digest = dm == 3;
    if (l->is_digest) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "digest");
        const cJSON *alg = cJSON_GetObjectItemCaseSensitive(d, "algorithm");
        const cJSON *sig = cJSON_GetObjectItemCaseSensitive(d, "signature");
        if (!get_u64(d, "firstSequence", &l->d_first) || !get_u64(d, "lastSequence", &l->d_last) ||
            !get_hex(d, "lastHash", 64, l->d_last_hash) || !cJSON_IsString(alg) ||
            strlen(alg->valuestring) >= sizeof l->d_alg ||
            !(cJSON_IsNull(sig) ||
              (cJSON_IsString(sig) && strlen(sig->valuestring) < sizeof l->d_sig))) {
            snprintf(l->why, sizeof l->why, "digest fields missing or invalid");
            goto out;
        }
        strcpy(l->d_alg, alg->valuestring);
        l->d_has_sig = cJSON_IsString(sig);
        if (l->d_has_sig) strcpy(l->d_sig, sig->valuestring);
        l->d_sig_ok = digest_sig_ok(key, l, p, len);
    }
    if (strcmp(name->valuestring, "AuditEventsLost") == 0) {
        const cJSON *lo = cJSON_GetObjectItemCaseSensitive(r, "lost");
        const cJSON *t0 = cJSON_GetObjectItemCaseSensitive(lo, "firstTime");
        const cJSON *t1 = cJSON_GetObjectItemCaseSensitive(lo, "lastTime");
        l->is_loss = true;
        if (!get_u64(lo, "events", &l->lost_events)) l->lost_events = 0;
        snprintf(l->lost_first, sizeof l->lost_first, "%s", cJSON_IsString(t0) ? t0->valuestring : "?");
        snprintf(l->lost_last, sizeof l->lost_last, "%s", cJSON_IsString(t1) ? t1->valuestring : "?");
    }
    if (l->is_start) {
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(r, "previousRun");
        const cJSON *sealed =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "previousChain"),
                                             "sealed");
        l->after_crash = (cJSON_IsString(pr) && strcmp(pr->valuestring, "crashed") == 0) ||
                         cJSON_IsFalse(sealed);
        const cJSON *pc = cJSON_GetObjectItemCaseSensitive(r, "previousChain");
        if (cJSON_IsObject(pc)) {
            if (!get_hex(pc, "chainId", 32, l->l_chain) ||
                !get_u64(pc, "lastSequence", &l->l_seq) ||
                !get_hex(pc, "lastHash", 64, l->l_hash)) {
                snprintf(l->why, sizeof l->why, "previousChain fields invalid");
                goto out;
            }
            l->has_link = true;
        } else if (!cJSON_IsNull(pc)) {
            snprintf(l->why, sizeof l->why, "previousChain missing");
            goto out;
        }
    }
    l->valid = true;
out:
    cJSON_Delete(j);
}

/* Read the next line of the input into l; l->present false at the end.
 * r->st becomes BS_E_IO when a file cannot be opened or read. */
static void next_line(reader *r, vline *l)
{
    memset(l, 0, sizeof *l);
    for (;;) {
        if (!r->f) {
            if (r->idx >= r->n || r->st != BS_OK) return;
            r->f = fopen(r->paths[r->idx], "rb");
            r->lineno = 0;
            if (!r->f) {
                fprintf(stderr, "audit verify: %s: %s\n", r->paths[r->idx], strerror(errno));
                r->st = BS_E_IO;
                return;
            }
        }
        ssize_t n = getline(&r->buf, &r->cap, r->f);
        if (n < 0) {
            bool err = ferror(r->f);
            fclose(r->f);
            r->f = NULL;
            if (err) {
                fprintf(stderr, "audit verify: %s: read error\n", r->paths[r->idx]);
                r->st = BS_E_IO;
                return;
            }
            r->idx++;
            continue;
        }
        r->lineno++;
        l->present = true;
        l->file = r->paths[r->idx];
        l->lineno = r->lineno;
        size_t len = (size_t)n;
        bool has_nl = len > 0 && r->buf[len - 1] == '\n';
        if (has_nl) len--;
        if (!has_nl) {
            snprintf(l->why, sizeof l->why, "truncated: last line has no newline");
            return;
        }
        if (len > LINE_MAX_BYTES) {
            snprintf(l->why, sizeof l->why, "line longer than %d bytes", LINE_MAX_BYTES);
            return;
        }
        parse_line(l, r->buf, len, r->key);
        return;
    }
}

/* Events after the last digest of the current chain: a warning. */
static void end_chain(vstate *v, const char *file, uint64_t line)
{
    if (!v->in_chain) return;
    if (v->expect > v->first_unsealed)
        warning(v, file, line,
                "chain %s: sequences %" PRIu64 "..%" PRIu64 " after the last digest are unsealed",
                v->chain, v->first_unsealed, v->expect - 1);
    v->have_prev = true;
    memcpy(v->prev_chain, v->chain, 33);
    v->prev_seq = v->expect - 1;
    memcpy(v->prev_hash, v->hash, 65);
    v->in_chain = false;
}

/* Accept l as the next event of the chain. */
static void accept(vstate *v, const vline *l)
{
    v->expect = l->seq + 1;
    memcpy(v->hash, l->hash, 65);
    v->acc_file = l->file;
    v->acc_line = l->lineno;
}

/* Check a digest that was just accepted; prev_hash is the hash of the
 * event before it, or NULL when the digest is itself out of place (already
 * reported: only its signature is checked then). */
static void check_digest(vstate *v, const vline *l, const char *prev_hash)
{
    bool ok = true;
    if (!prev_hash) goto signature;
    if (v->range_known && l->d_first != v->first_unsealed) {
        problem(v, BS_AUDIT_BAD_DIGEST, l->file, l->lineno, true, l->seq,
                "covers %" PRIu64 "..%" PRIu64 " but the previous digest ended before %" PRIu64,
                l->d_first, l->d_last, v->first_unsealed);
        ok = false;
    }
    if (l->seq == 0 || l->d_last != l->seq - 1 || l->d_first > l->d_last) {
        problem(v, BS_AUDIT_BAD_DIGEST, l->file, l->lineno, true, l->seq,
                "range %" PRIu64 "..%" PRIu64 " does not end just before the digest", l->d_first,
                l->d_last);
        ok = false;
    } else if (strcmp(l->d_last_hash, prev_hash) != 0) {
        problem(v, BS_AUDIT_BAD_DIGEST, l->file, l->lineno, true, l->seq,
                "lastHash does not match event %" PRIu64, l->d_last);
        ok = false;
    }
signature:
    if (!v->key) {
        if (!v->warned_nokey)
            warning(v, l->file, l->lineno, "digest signatures not checked: no key given");
        v->warned_nokey = true;
    } else if (!l->d_has_sig || strcmp(l->d_alg, bs_audit_key_algorithm(v->key)) != 0) {
        problem(v, BS_AUDIT_BAD_SIGNATURE, l->file, l->lineno, true, l->seq,
                "digest is %s, expected a %s signature", l->d_has_sig ? l->d_alg : "unsigned",
                bs_audit_key_algorithm(v->key));
        ok = false;
    } else if (!l->d_sig_ok) {
        problem(v, BS_AUDIT_BAD_SIGNATURE, l->file, l->lineno, true, l->seq,
                "signature over %" PRIu64 "..%" PRIu64 " does not verify", l->d_first, l->d_last);
        ok = false;
    }
    if (ok) v->res->digests_ok++;
    v->first_unsealed = l->seq + 1;
    v->range_known = true;
}

/* A chain start: close the current chain, check the link, open the new one. */
static void start_chain(vstate *v, const vline *l)
{
    end_chain(v, l->file, l->lineno);
    if (l->seq != 0 || strcmp(l->prev, ZERO_HASH) != 0)
        problem(v, BS_AUDIT_EDITED, l->file, l->lineno, true, l->seq,
                "a chain start must have sequence 0 and a zero previousHash");
    if (l->has_link) {
        if (!v->have_prev)
            warning(v, l->file, l->lineno, "chain %s continues chain %s, which is not in the input",
                    l->chain, l->l_chain);
        else if (strcmp(l->l_chain, v->prev_chain) != 0)
            problem(v, BS_AUDIT_BAD_LINK, l->file, l->lineno, true, l->seq,
                    "links to chain %s but the preceding chain is %s", l->l_chain, v->prev_chain);
        else if (l->l_seq != v->prev_seq || strcmp(l->l_hash, v->prev_hash) != 0)
            problem(v, BS_AUDIT_BAD_LINK, l->file, l->lineno, true, l->seq,
                    "links to sequence %" PRIu64 " of chain %s but that chain ends at %" PRIu64
                    " with another hash",
                    l->l_seq, l->l_chain, v->prev_seq);
    } else if (v->have_prev) {
        problem(v, BS_AUDIT_BAD_LINK, l->file, l->lineno, true, l->seq,
                "a new chain without a link to the preceding chain %s", v->prev_chain);
    }
    if (l->after_crash)
        warning(v, l->file, l->lineno,
                "chain %s starts after a crash: the previous chain%s%s ended without its final "
                "digest, so events not yet stored at that moment may be missing",
                l->chain, l->has_link ? " " : "", l->has_link ? l->l_chain : "");
    v->in_chain = true;
    v->chains++;
    memcpy(v->chain, l->chain, 33);
    v->first_unsealed = 0;
    v->range_known = true;
    v->skip_next = false;
    accept(v, l);
}

/* Process line l with lookahead n. */
static void step(vstate *v, const vline *l, const vline *n)
{
    v->res->events++;
    if (!l->valid) {
        problem(v, BS_AUDIT_MALFORMED, l->file, l->lineno, false, 0, "%s", l->why);
        return;
    }
    if (l->is_start) {
        start_chain(v, l);
        return;
    }
    if (!v->in_chain) {
        warning(v, l->file, l->lineno,
                "input starts in the middle of chain %s at sequence %" PRIu64
                " (earlier files not given)",
                l->chain, l->seq);
        v->in_chain = true;
        v->chains++;
        memcpy(v->chain, l->chain, 33);
        v->first_unsealed = l->seq;
        v->range_known = false;
        accept(v, l);
        return;
    }
    if (strcmp(l->chain, v->chain) != 0) {
        problem(v, BS_AUDIT_INSERTED, l->file, l->lineno, true, l->seq,
                "belongs to chain %s, not to chain %s", l->chain, v->chain);
        return;
    }
    if (v->skip_next && l->seq == v->skip_seq) {
        v->skip_next = false; /* the other half of a swap already reported */
        return;
    }
    v->skip_next = false;
    char before[65];
    memcpy(before, v->hash, 65);
    if (l->is_loss)
        problem(v, BS_AUDIT_LOST, l->file, l->lineno, true, l->seq,
                "the sidecar recorded the loss of %" PRIu64
                " audit event(s) between %s and %s (its event path refused them)",
                l->lost_events, l->lost_first, l->lost_last);
    if (l->seq == v->expect) {
        if (strcmp(l->prev, v->hash) != 0)
            problem(v, BS_AUDIT_EDITED, v->acc_file, v->acc_line, true, v->expect - 1,
                    "hash mismatch: event %" PRIu64 " at %s:%" PRIu64 " recorded another hash",
                    l->seq, l->file, l->lineno);
        accept(v, l);
    } else if (l->seq > v->expect) {
        if (n->present && n->valid && strcmp(n->chain, v->chain) == 0 && n->seq == v->expect) {
            problem(v, BS_AUDIT_REORDERED, l->file, l->lineno, true, l->seq,
                    "appears before sequence %" PRIu64 " at %s:%" PRIu64, n->seq, n->file,
                    n->lineno);
            v->skip_next = true;
            v->skip_seq = v->expect;
            accept(v, l);
            if (l->is_digest) check_digest(v, l, NULL);
            return;
        }
        problem(v, BS_AUDIT_REMOVED, l->file, l->lineno, true, l->seq,
                "sequence gap: %" PRIu64 "..%" PRIu64 " missing", v->expect, l->seq - 1);
        /* The removed events may include a digest: the next range's start is unknown. */
        v->range_known = false;
        accept(v, l);
        /* A digest right after the gap seals an event we do not have: only
         * its signature can still be checked. */
        if (l->is_digest) check_digest(v, l, NULL);
        return;
    } else {
        problem(v, BS_AUDIT_INSERTED, l->file, l->lineno, true, l->seq,
                "out of place: expected sequence %" PRIu64, v->expect);
        return;
    }
    if (l->is_digest) check_digest(v, l, before);
}

/* See audit.h. */
bs_status bs_audit_verify_files(const char **paths, size_t n, const bs_audit_key *key, FILE *report,
                                bs_audit_verify_result *res)
{
    memset(res, 0, sizeof *res);
    reader r = {.key = key, .paths = paths, .n = n};
    vstate v = {.key = key, .report = report, .res = res};
    vline *a = calloc(2, sizeof *a);
    if (!a) return BS_E_NOMEM;
    vline *cur = &a[0], *nxt = &a[1];
    const char *last_file = n ? paths[n - 1] : "-";
    uint64_t last_line = 0;
    next_line(&r, cur);
    while (cur->present && r.st == BS_OK) {
        next_line(&r, nxt);
        if (r.st != BS_OK) break;
        step(&v, cur, nxt);
        last_file = cur->file;
        last_line = cur->lineno;
        vline *t = cur;
        cur = nxt;
        nxt = t;
    }
    bs_status st = r.st;
    if (r.f) fclose(r.f);
    free(r.buf);
    free(a);
    if (st != BS_OK) return st;
    end_chain(&v, last_file, last_line);
    if (report) {
        if (res->problems)
            fprintf(report,
                    "FAILED: %" PRIu64 " problem(s) in %" PRIu64 " line(s); first: %s:%" PRIu64
                    ": %s\n",
                    res->problems, res->events, res->first_file, res->first_line,
                    bs_audit_problem_name(res->first_problem));
        else
            fprintf(report,
                    "OK: %" PRIu64 " line(s), %" PRIu64 " chain(s), %" PRIu64
                    " digest(s) verified, %" PRIu64 " warning(s)\n",
                    res->events, v.chains, res->digests_ok, res->warnings);
    }
    return BS_OK;
}

/* Usage text for the CLI. */
static void usage(FILE *f)
{
    fprintf(f,
            "usage: brokerside audit verify [--strict] [--key FILE | --public-key FILE] FILE...\n"
            "  --key FILE         the signing key (HMAC secret or Ed25519 private key PEM)\n"
            "  --public-key FILE  an Ed25519 public key PEM\n"
            "  --strict           warnings (unsealed tail, unchecked signatures) fail too\n"
            "exit status: 0 intact, 1 tampering found, 2 usage or I/O error\n");
}

/* See audit.h. */
int bs_audit_verify_main(int argc, char **argv)
{
    const char *key_path = NULL, *pub_path = NULL;
    bool strict = false;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--strict") == 0) {
            strict = true;
        } else if (strcmp(a, "--key") == 0 || strcmp(a, "--public-key") == 0) {
            if (i + 1 >= argc || key_path || pub_path) {
                usage(stderr);
                return 2;
            }
            if (a[2] == 'k')
                key_path = argv[++i];
            else
                pub_path = argv[++i];
        } else if (a[0] == '-' && a[1] != 0) {
            fprintf(stderr, "audit verify: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else {
            break;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    bs_audit_key *key = NULL;
    if (key_path || pub_path) {
        bs_status st =
            key_path ? bs_audit_key_load(key_path, &key) : bs_audit_key_load_public(pub_path, &key);
        if (st != BS_OK) {
            fprintf(stderr, "audit verify: cannot use key %s: %s\n", key_path ? key_path : pub_path,
                    bs_status_name(st));
            return 2;
        }
    }
    bs_audit_verify_result res;
    bs_status st =
        bs_audit_verify_files((const char **)argv + i, (size_t)(argc - i), key, stdout, &res);
    bs_audit_key_free(key);
    fflush(stdout);
    if (st != BS_OK) return 2;
    if (res.problems) return 1;
    return strict && res.warnings ? 1 : 0;
}
