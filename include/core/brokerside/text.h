/*
 * text.h - the small text codecs every module shares (core/text.c): one
 * UTF-8 validator, one hex codec, one percent-encoder, one JSON string
 * escape rule. Modules use these instead of keeping their own copies.
 */
#ifndef BROKERSIDE_TEXT_H
#define BROKERSIDE_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "brokerside/buf.h"

/* Length (1-4) of the valid UTF-8 sequence at p[0..n), or 0 if it is not
 * one: overlong forms, surrogates and code points above U+10FFFF are
 * invalid. n must be at least 1. */
size_t bs_utf8_seq(const uint8_t *p, size_t n);
/* True if p[0..n) is valid UTF-8 (fast path for ASCII). */
bool bs_utf8_valid(const uint8_t *p, size_t n);
/* Append p[0..n) to out with each byte that starts no valid sequence
 * replaced by U+FFFD. */
void bs_utf8_sanitize(const uint8_t *p, size_t n, bs_wbuf *out);

/* The JSON string escape of the character at p[0..n) (n >= 1): the one rule
 * set of every JSON writer (bs_wbuf_put_json_string, the logger's JSON lines,
 * which must not allocate). If the character is kept as is (printable ASCII
 * other than '"' and '\\', or a whole valid UTF-8 sequence) returns 0 and
 * sets *adv to its length in bytes. Otherwise writes its escape into esc and
 * returns the escape's length (2 or 6): \" \\ \n \r \t, \u00XX for the
 * other control characters and DEL, \ufffd for a byte that starts no valid
 * UTF-8 sequence; *adv is then 1. Inline: it runs per byte of every audit
 * event. */
static inline size_t bs_json_escape_unit(const uint8_t *p, size_t n, char esc[6], size_t *adv)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t c = p[0];
    *adv = 1;
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') return 0;
    if (c >= 0x80 && (*adv = bs_utf8_seq(p, n)) > 0) return 0;
    *adv = 1;
    esc[0] = '\\';
    switch (c) {
    case '"': esc[1] = '"'; return 2;
    case '\\': esc[1] = '\\'; return 2;
    case '\n': esc[1] = 'n'; return 2;
    case '\r': esc[1] = 'r'; return 2;
    case '\t': esc[1] = 't'; return 2;
    default: break;
    }
    esc[1] = 'u';
    if (c >= 0x80) {
        memcpy(esc + 2, "fffd", 4);
    } else {
        esc[2] = '0';
        esc[3] = '0';
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 15];
    }
    return 6;
}

/* Value of one hex digit (either case), or -1. */
int bs_hex_value(unsigned char c);
/* Write n bytes as 2n lower-case hex digits plus a NUL into out[2n+1]. */
void bs_hex_encode(const uint8_t *p, size_t n, char *out);
/* Decode exactly 2n hex digits (either case) into out[n]; false on any
 * other byte (out is then partly written). */
bool bs_hex_decode(const char *s, size_t n, uint8_t *out);

/* Append s[0..len) percent-encoded (RFC 3986: everything but the unreserved
 * A-Z a-z 0-9 - _ . ~, upper-case hex; '/' kept when keep_slash), the form
 * SigV4 canonical URIs, S3 keys and form bodies need. */
void bs_wbuf_put_percent(bs_wbuf *w, const char *s, size_t len, bool keep_slash);

#endif
