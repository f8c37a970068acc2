/*
 * kafka_summary.h - per-topic figures and audit fields pulled out of bodies
 * without building a tree (the schema codec's scan mode: no allocation).
 *
 * Used for per-topic metrics (produce bytes/records in, fetch bytes out) and
 * for audit events (topic names, client software). Every function validates
 * the whole body like the codec does and reports BS_E_MALFORMED /
 * BS_E_UNSUPPORTED on bodies it cannot decode; callbacks may have been called
 * for earlier topics by then.
 */
#ifndef BROKERSIDE_KAFKA_SUMMARY_H
#define BROKERSIDE_KAFKA_SUMMARY_H

#include <stddef.h>
#include <stdint.h>

#include "brokerside/kafka.h"
#include "brokerside/status.h"

/* One topic of a Produce request or Fetch request/response. `name` points into
 * the body (len -1 when the topic is identified by id only, Fetch v13+);
 * `topic_id` points at 16 bytes in the body or is NULL (versions before 13). */
typedef struct bs_kafka_topic_summary {
    bs_kafka_slice name;
    const uint8_t *topic_id;
    uint32_t partitions;
    uint64_t record_bytes; /* sum of the partitions' records field sizes */
    uint64_t records;      /* Produce only: records in the batches (see bs_kafka_count_records) */
} bs_kafka_topic_summary;

/* Called once per topic, in wire order. A non-BS_OK return stops the walk and is returned. */
typedef bs_status (*bs_kafka_topic_fn)(void *arg, const bs_kafka_topic_summary *t);

/* Count the records in a records field: record batches (magic 2: the int32
 * record count at offset 57 of each batch) or v0/v1 message sets (one per
 * message; a compressed v0/v1 wrapper counts as one). The data must consist of
 * whole batches: a truncated or negative batch length, or a negative count, is
 * BS_E_MALFORMED. Magic other than 0-2: BS_E_MALFORMED. */
bs_status bs_kafka_count_records(const uint8_t *records, size_t n, uint64_t *count) BS_WUR;

/* Produce request body (after the request header), any version in the schema:
 * per topic, records bytes and record count. */
bs_status bs_kafka_produce_summary(const uint8_t *body, size_t len, int16_t version,
                                   bs_kafka_topic_fn fn, void *arg) BS_WUR;
/* Fetch response body, any version: per topic, records bytes (`records` is 0:
 * a fetch may end in a partial batch, and counting would cost a batch walk). */
bs_status bs_kafka_fetch_summary(const uint8_t *body, size_t len, int16_t version,
                                 bs_kafka_topic_fn fn, void *arg) BS_WUR;
/* Fetch request body: the topics asked for (name or id; byte counts are 0). */
bs_status bs_kafka_fetch_request_topics(const uint8_t *body, size_t len, int16_t version,
                                        bs_kafka_topic_fn fn, void *arg) BS_WUR;

/* ApiVersions request body: client software name and version (v3+; for older
 * versions both come back with len -1). Slices point into the body. */
bs_status bs_kafka_api_versions_client(const uint8_t *body, size_t len, int16_t version,
                                       bs_kafka_slice *software_name,
                                       bs_kafka_slice *software_version) BS_WUR;

#endif
