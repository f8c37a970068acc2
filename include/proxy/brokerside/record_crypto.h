/*
 * record_crypto.h - encryption at rest on the record path: a bs_kafka_hook
 * that encrypts record values of Produce requests and decrypts them in Fetch
 * responses (docs/encryption.md, "Record path").
 *
 * Produce (every version the codec decodes, 0-11): for each topic the first
 * matching encryption.topics rule gives the key reference; every record value
 * of every v2 batch of that topic is replaced by an envelope (envelope.h)
 * under the worker's DEK for (key reference, topic). Keys, headers,
 * timestamps, offsets, attributes, producer/transaction fields stay clear and
 * unchanged; null values (tombstones) stay null; control batches are left
 * alone; the batch is recompressed with its own codec and its CRC recomputed.
 * A request in which any partition is refused is not forwarded at all: the
 * sidecar answers it (after every earlier response) with, per partition:
 *   INVALID_RECORD (87)                  a value already carries the envelope magic
 *   UNSUPPORTED_FOR_MESSAGE_FORMAT (43)  magic 0/1 message set to an encrypted topic
 *   CORRUPT_MESSAGE (2)                  a batch that does not parse (CRC, lengths,
 *                                        partial batch) to an encrypted topic
 *   POLICY_VIOLATION (44)                unmatched topic with unmatched_topics "reject"
 *   KAFKA_STORAGE_ERROR (56, retriable)  no data key (KMS failure), and every
 *                                        other partition of a refused request
 * acks=0 requests expect no answer: a refused one is dropped (log + metric).
 * When a DEK is not ready the hook returns HOLD and the request waits (the
 * connection's later requests queue behind it) until the DEK manager wakes it.
 *
 * Fetch (versions 0-17) and ShareFetch (v0, topics by id): partitions whose records hold envelopes
 * are decrypted (topic from the response, or for v13+ from the topic-id map learned from Metadata
 * responses); batches are rebuilt with the same codec and CRC; a partial trailing batch is kept as
 * it is. Plaintext values pass. A partition with an envelope that does not authenticate or whose
 * key cannot be unwrapped gets CORRUPT_MESSAGE (2), one whose key is unavailable now (KMS outage)
 * KAFKA_STORAGE_ERROR (56), an unknown topic id UNKNOWN_TOPIC_ID (100); its
 * records are removed (never ciphertext passed as plaintext). Missing keys:
 * HOLD, as for Produce.
 *
 * Metrics: brokerside_records_encrypted_total, brokerside_records_decrypted_total,
 * brokerside_record_crypto_failures_total{reason}, brokerside_record_crypto_held_total{direction}.
 */
#ifndef BROKERSIDE_RECORD_CRYPTO_H
#define BROKERSIDE_RECORD_CRYPTO_H

#include <stddef.h>

#include "brokerside/crypto_config.h"
#include "brokerside/dek_manager.h"
#include "brokerside/kafka.h"
#include "brokerside/kafka_session.h"
#include "brokerside/status.h"

typedef struct bs_record_crypto bs_record_crypto;

/* The Kafka error codes this module answers with: BS_KERR_* in kafka.h. */

/* Decompression bound of one Produce request (all its batches together):
 * RATIO times the request's size, at least FLOOR, at most max_records_bytes.
 * Beyond it the partitions get MESSAGE_TOO_LARGE (10) and nothing more of
 * the request is unpacked (reason "decompression_limit"). */
#define BS_RECORD_CRYPTO_MAX_RATIO 64u
#define BS_RECORD_CRYPTO_RATIO_FLOOR (1u << 20)

/* Create the shared (all workers) part. `enc` is borrowed and must outlive
 * the object (enc->enabled must be true: BS_E_CONFIG otherwise);
 * `max_records_bytes` (the daemon passes kafka.max_frame_bytes; 0 = 64 MiB)
 * bounds the decompressed records of one Produce request (with the ratio
 * above), the size of its rewritten frame (a larger one is refused with
 * MESSAGE_TOO_LARGE, never sent), and the decompressed size of one Fetch
 * batch. Free with bs_record_crypto_free after every connection
 * using its hook closed. BS_E_NOMEM. */
bs_status bs_record_crypto_new(const bs_encryption_config *enc, size_t max_records_bytes,
                               bs_record_crypto **out) BS_WUR;

/* Release `rc`; NULL is a no-op. */
void bs_record_crypto_free(bs_record_crypto *rc);
/* Reload: topic rules and unmatched_topics policy from `enc` (enabled; it must
 * outlive rc, like the first one). Produce requests that arrive afterwards
 * use it; a request already being handled finishes under the rules it
 * started with. Any thread. */
void bs_record_crypto_set_config(bs_record_crypto *rc, const bs_encryption_config *enc);

/* The hook to put in a bs_kafka_session_factory (name "record_crypto"; it
 * keeps per-connection state through conn_open/conn_close). Connections
 * opened on a thread without a bound DEK worker are refused (fail closed). */
bs_kafka_hook bs_record_crypto_hook(bs_record_crypto *rc);

/* Bind the calling thread's DEK worker (NULL unbinds): call on each worker
 * thread after bs_dek_worker_new and before it serves connections, and with
 * NULL before bs_dek_worker_free. The worker is borrowed. */
void bs_record_crypto_bind_worker(bs_dek_worker *w);

#endif
