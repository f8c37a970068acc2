/*
 * text.h - the small text codecs every module shares (core/text.c): one
 * UTF-8 validator, one hex codec, one percent-encoder. Modules use these
 * instead of keeping their own copies.
 */
#ifndef BROKERSIDE_TEXT_H
#define BROKERSIDE_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
