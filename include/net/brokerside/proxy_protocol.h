/*
 * proxy_protocol.h - the PROXY protocol (HAProxy's "PROXY protocol" v1 text
 * and v2 binary headers) that network load balancers put in front of a TCP
 * stream to carry the client's address, and the source-network lists that
 * decide who may send one.
 *
 * The parser is pure (no sockets): net/conn.c feeds it the bytes it has read
 * so far and consumes exactly the header once it is complete. Everything is
 * read through the bounds-checked cursor. A header is at most
 * BS_PROXY_V1_MAX bytes (v1) or BS_PROXY_V2_MAX bytes (v2: the 16-byte fixed
 * part plus at most BS_PROXY_V2_MAX - 16 bytes of addresses and TLVs); a
 * longer one is refused, never buffered.
 */
#ifndef BROKERSIDE_PROXY_PROTOCOL_H
#define BROKERSIDE_PROXY_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "brokerside/net_config.h"
#include "brokerside/status.h"

/* v1: "PROXY TCP6 <39> <39> 65535 65535\r\n" is the longest valid line. */
#define BS_PROXY_V1_MAX 107
/* v2: fixed part (16) + addresses and TLVs. AWS NLB, GCP and HAProxy send
 * well under this; a TLS-terminating proxy's certificate TLVs may not fit
 * and are refused as oversized. */
#define BS_PROXY_V2_MAX 2048
/* The most bytes the parser may ever need to see. */
#define BS_PROXY_HEADER_MAX BS_PROXY_V2_MAX

/* The reason labels of brokerside_proxy_protocol_rejected_total (a fixed set). */
#define BS_PROXY_REASON_UNTRUSTED "untrusted_source" /* peer not in proxy_protocol_sources */
#define BS_PROXY_REASON_MISSING "missing_header"     /* first bytes are no PROXY signature */
#define BS_PROXY_REASON_V1 "malformed_v1"            /* v1 line violates the grammar */
#define BS_PROXY_REASON_V2 "malformed_v2"            /* v2 block violates the format */
#define BS_PROXY_REASON_OVERSIZED "oversized"        /* longer than BS_PROXY_V1_MAX / _V2_MAX */
#define BS_PROXY_REASON_TIMEOUT "timeout"            /* incomplete at the handshake deadline */
#define BS_PROXY_REASON_EOF "eof"                    /* closed (or reset) before a whole header */

/* What a complete header says. */
typedef struct bs_proxy_header {
    int version;   /* 1 or 2 */
    bool has_addr; /* false for v1 UNKNOWN, v2 LOCAL, v2 AF_UNSPEC and AF_UNIX: the
                      connection's own addresses stay the client's (the spec's rule) */
    bool local;    /* v2 LOCAL command (the proxy's own health check) */
    struct sockaddr_storage src, dst; /* with has_addr: AF_INET / AF_INET6 with port */
    size_t len;                       /* header bytes, to consume before the client's stream */
    unsigned n_tlvs;                  /* v2 TLVs seen (skipped; a CRC32C one is verified) */
} bs_proxy_header;

/*
 * Parse the PROXY header at the start of p[0..n) (the bytes received so far).
 *   BS_OK           complete: *out filled, out->len <= n bytes are the header.
 *   BS_E_SHORT      a valid prefix: read more (n < what the header needs).
 *   BS_E_MALFORMED  *reason is BS_PROXY_REASON_MISSING, _V1 or _V2.
 *   BS_E_TOO_LARGE  *reason is BS_PROXY_REASON_OVERSIZED.
 * Refuses as early as the bytes allow (a wrong first byte, a control
 * character in a v1 line, a v2 length over the bound) so a hostile peer
 * cannot hold the connection with bytes that can never form a header. On an
 * error why[whylen] (may be NULL/0) gets a one-line description for the log.
 */
bs_status bs_proxy_parse(const uint8_t *p, size_t n, bs_proxy_header *out, const char **reason,
                         char *why, size_t whylen) BS_WUR;

/* bs_cidr_parse's reason for an address with bits set after the prefix
 * (compare the pointer). */
extern const char bs_cidr_host_bits[];

/*
 * Parse "ADDR/PREFIX" or a bare "ADDR" (= /32 or /128), IPv4 or IPv6, into
 * *out (an IPv4-mapped IPv6 network, ::ffff:a.b.c.d/96 or longer, becomes
 * the IPv4 network it names). Returns NULL on success, else the reason (a static string: "not an
 * IPv4 or IPv6 address", "prefix must be 0..32", bs_cidr_host_bits). With
 * bs_cidr_host_bits *out holds the network the text probably
 * meant (host bits cleared), for a hint.
 */
const char *bs_cidr_parse(const char *text, bs_cidr *out);

/* True when `sa` (AF_INET or AF_INET6; an IPv4-mapped IPv6 address counts as
 * its IPv4 address) lies in one of list[0..n). False for other families. */
bool bs_cidr_match(const bs_cidr *list, size_t n, const struct sockaddr *sa);

/* Format `c` as "ADDR/PREFIX" into out[outlen]. */
void bs_cidr_format(const bs_cidr *c, char *out, size_t outlen);

#endif
