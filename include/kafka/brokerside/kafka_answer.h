/*
 * kafka_answer.h - responses the sidecar writes itself (a refused request is
 * answered, not forwarded): default-filled response trees, size-prefixed
 * frames, and the per-partition error answer to a Produce request.
 */
#ifndef BROKERSIDE_KAFKA_ANSWER_H
#define BROKERSIDE_KAFKA_ANSWER_H

#include <stdint.h>

#include "brokerside/buf.h"
#include "brokerside/kafka_schema.h"
#include "brokerside/status.h"

/* Fill `o` as a default `s` at `ver`: every non-tagged field present,
 * numbers 0, nullable strings/bytes null, others empty, arrays empty,
 * structs recursively. Memory from `a`. BS_E_NOMEM/TOO_LARGE from the arena. */
bs_status bs_kafka_obj_default(const bs_kafka_struct *s, int16_t ver, bs_kafka_arena *a,
                               bs_kafka_obj *o) BS_WUR;

/* Append a size-prefixed frame to `out`: 4-byte size, `hdr` (hdr_len bytes),
 * then the encoding of `body` (message `m` at `ver`). BS_E_TOO_LARGE above
 * INT32_MAX bytes; otherwise the encoder's / buffer's status. */
bs_status bs_kafka_put_frame(bs_wbuf *out, const uint8_t *hdr, size_t hdr_len,
                             const bs_kafka_message *m, int16_t ver, const bs_kafka_obj *body) BS_WUR;

/* The answer to a refused Produce request: `req` is the decoded request
 * (version `ver`, correlation id `corr`); one PartitionResponse per
 * partition of the request, in its order, with error perr[i] (perr NULL, or
 * an entry of 0: `dflt`), BaseOffset -1. Appended to `out` as one frame
 * (response header v1 for flexible versions). Memory from `a`. */
bs_status bs_kafka_produce_answer(const bs_kafka_obj *req, int16_t ver, int32_t corr,
                                  const int16_t *perr, int16_t dflt, bs_kafka_arena *a,
                                  bs_wbuf *out) BS_WUR;

#endif
