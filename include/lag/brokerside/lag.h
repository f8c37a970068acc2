/*
 * lag.h - the consumer-lag monitor (module lag/, docs/observability.md,
 * "Consumer lag").
 *
 * A thread of its own ("bs-lag", plus librdkafka's threads) asks the Kafka
 * cluster, through the sidecar's own upstream broker, every `lag.interval_s`
 * for the consumer groups (classic and KIP-848), their committed offsets and
 * the log-end offsets of the partitions its broker leads, and publishes one
 * immutable result (a snapshot). The control thread reads the latest
 * snapshot for /metrics (bs_lag_render_prometheus, installed as the metrics
 * registry's extension) and for the EMF snapshots (bs_lag_emf); neither ever
 * waits for the network.
 *
 * The pure parts (the offset history behind EstimatedTimeLag, the label
 * rules, the snapshot builder and both renderers) are exported for the unit
 * tests; the monitor itself needs a reachable cluster.
 */
#ifndef BROKERSIDE_LAG_H
#define BROKERSIDE_LAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/buf.h"
#include "brokerside/lag_config.h"
#include "brokerside/net_config.h"
#include "brokerside/emf.h"
#include "brokerside/metrics.h"
#include "brokerside/status.h"

/* ---------------------------------------------------------------- history */

/* Samples of one partition's log-end offset kept for EstimatedTimeLag. */
#define BS_LAG_HISTORY_MAX 16

typedef struct bs_lag_point {
    int64_t t_ms;   /* wall clock of the sample, ms since the epoch */
    int64_t offset; /* the log-end offset then */
} bs_lag_point;

typedef struct bs_lag_history {
    bs_lag_point p[BS_LAG_HISTORY_MAX]; /* oldest first; offsets never decrease */
    uint8_t n;
} bs_lag_history;

/* Add a sample. A sample whose offset equals the newest one's is not added
 * (the newest point keeps the time the offset was first seen); an offset
 * below the newest one (a truncated log, a new partition of the same name)
 * restarts the history. When full, the interior point closest in time to its
 * predecessor is merged away, so recent samples stay dense and older ones
 * thin out (the history spans ever longer times). */
void bs_lag_history_add(bs_lag_history *h, int64_t t_ms, int64_t offset);

/* EstimatedTimeLag in seconds of a consumer whose next record is at offset
 * `committed` (docs/observability.md): 0 when committed >= the newest
 * sample's offset or the history is empty; else now_ms minus the time the
 * record at `committed` was appended, interpolated linearly between the two
 * samples whose offsets enclose committed + 1; when even the oldest sample
 * is past it, now_ms minus the oldest sample's time (a lower bound). Never
 * negative. */
double bs_lag_history_time_lag_s(const bs_lag_history *h, int64_t committed, int64_t now_ms);

/* ---------------------------------------------------------------- names */

/* Why a group is not reported; indexes the `reason` label. */
typedef enum bs_lag_skip {
    BS_LAG_SKIP_UNLABELABLE = 0, /* name not 1..255 printable ASCII with a non-space */
    BS_LAG_SKIP_STATE = 1,       /* Dead */
    BS_LAG_SKIP_CAP = 2,         /* past lag.max_groups */
    BS_LAG_SKIP_OFFSETS = 3,     /* its committed offsets could not be read this poll */
    BS_LAG_SKIP_N = 4,
} bs_lag_skip;

/* The `reason` label of a bs_lag_skip ("unlabelable", "state", "cap",
 * "offsets_error"); "?" out of range. */
const char *bs_lag_skip_name(bs_lag_skip r);

/* True if `name` can be a Prometheus label value and a CloudWatch dimension
 * value as it is: 1..255 bytes, each printable ASCII (0x20..0x7e), at least
 * one not a space. */
bool bs_lag_name_usable(const char *name);

/* Split "host:port" ("[v6]:port" too) into host[hostlen] (brackets
 * stripped) and *port. False for anything else: no colon, an empty host, a
 * port outside 1..65535 or with non-digits, a host that does not fit. */
bool bs_lag_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port);

/* ---------------------------------------------------------------- snapshot */

/* One (group, topic, partition) with a committed offset on a partition the
 * broker leads. */
typedef struct bs_lag_row {
    const char *group; /* owned by the snapshot */
    const char *topic; /* owned by the snapshot */
    int32_t partition;
    int64_t lag;       /* log-end offset - committed offset, >= 0 */
    double time_lag_s; /* EstimatedTimeLag */
} bs_lag_row;

/* Per (group, topic): the MSK aggregates over the rows of the partitions the
 * broker leads. */
typedef struct bs_lag_agg {
    const char *group;
    const char *topic;
    int64_t sum; /* SumOffsetLag */
    int64_t max; /* MaxOffsetLag */
    double max_time_s; /* EstimatedMaxTimeLag */
} bs_lag_agg;

typedef struct bs_lag_snapshot bs_lag_snapshot;

/* A snapshot under construction: rows are added group by group. */
typedef struct bs_lag_builder bs_lag_builder;

/* Start a snapshot taken at `taken_ms` keeping at most max_rows per-partition
 * rows and max_rows aggregates (past them rows still count in their
 * (group, topic) aggregate when it exists, and are counted as dropped). */
bs_status bs_lag_builder_new(int64_t taken_ms, size_t max_rows, bs_lag_builder **out) BS_WUR;
/* Add one row (strings are copied). A committed offset past the log-end
 * offset (a truncated log) gives lag 0. BS_E_NOMEM. */
bs_status bs_lag_builder_add(bs_lag_builder *b, const char *group, const char *topic,
                             int32_t partition, int64_t log_end, int64_t committed,
                             double time_lag_s) BS_WUR;
/* Rows and aggregates dropped by the caps so far. */
size_t bs_lag_builder_dropped_rows(const bs_lag_builder *b);
size_t bs_lag_builder_dropped_aggs(const bs_lag_builder *b);
/* Sort and seal: *out owns everything; the builder is freed (also on error). */
bs_status bs_lag_builder_finish(bs_lag_builder *b, bs_lag_snapshot **out) BS_WUR;
void bs_lag_builder_free(bs_lag_builder *b);

void bs_lag_snapshot_free(bs_lag_snapshot *s);
/* Rows sorted by (group, topic, partition); aggregates by (group, topic). */
const bs_lag_row *bs_lag_snapshot_rows(const bs_lag_snapshot *s, size_t *n);
const bs_lag_agg *bs_lag_snapshot_aggs(const bs_lag_snapshot *s, size_t *n);
int64_t bs_lag_snapshot_taken_ms(const bs_lag_snapshot *s);

/* Append the snapshot as Prometheus families (gauges): the three
 * {group,topic} families at every level, the two {group,topic,partition}
 * families at BS_METRICS_LEVEL_PER_TOPIC_PER_PARTITION only. NULL snapshot:
 * nothing. Returns the wbuf's status. */
bs_status bs_lag_snapshot_render_prometheus(const bs_lag_snapshot *s, bs_metrics_level level,
                                            bs_wbuf *out) BS_WUR;

/* Emit the snapshot as EMF documents with MSK's names: per (group, topic)
 * SumOffsetLag, MaxOffsetLag (Count) and EstimatedMaxTimeLag (Seconds) with
 * dimensions fixed[..] + "Consumer Group", "Topic"; at PER_TOPIC_PER_PARTITION
 * also per partition OffsetLag (Count) and EstimatedTimeLag (Seconds) with
 * "Partition" added. A non-OK emit stops and is returned. */
bs_status bs_lag_snapshot_emf(const bs_lag_snapshot *s, bs_metrics_level level, const char *ns,
                              const bs_emf_dimension *fixed, size_t n_fixed, int64_t ts_ms,
                              bs_emf_emit_fn emit, void *arg) BS_WUR;

/* ---------------------------------------------------------------- monitor */

typedef struct bs_lag_monitor_options {
    const bs_listener_config *listener; /* upstream, upstream_tls, broker_id; not copied past
                                           bs_lag_monitor_start */
    const char *bootstrap;              /* "host:port" where the client bootstraps; NULL: the
                                           listener's upstream (copied by bs_lag_monitor_start) */
    int sasl_mechanism;             /* bs_lag_config's: 0 none */
    const char *sasl_username;      /* copied */
    const char *sasl_password_file; /* read once by bs_lag_monitor_start */
    uint32_t interval_s;
    uint32_t max_groups;
    uint32_t max_partitions;
    uint32_t timeout_s;
} bs_lag_monitor_options;

typedef struct bs_lag_monitor bs_lag_monitor;

/* Fill `o` from the `lag` section and the listener it names among
 * `listeners` (without a name the first kafka listener; NULL if none: the
 * loader has refused that config already). */
void bs_lag_monitor_options_from_config(const bs_lag_config *lag,
                                        const bs_listener_config *listeners, size_t n_listeners,
                                        bs_lag_monitor_options *o);

/* Start the monitor thread (first poll right away). BS_E_CONFIG for options
 * librdkafka refuses (the message is logged); BS_E_NOMEM; BS_E_IO if the
 * SASL password file cannot be read or the thread cannot start. */
bs_status bs_lag_monitor_start(const bs_lag_monitor_options *o, bs_lag_monitor **out) BS_WUR;
/* Change the poll interval (SIGHUP): the next poll starts one new interval
 * after the last one started (at once if that time has passed). */
void bs_lag_monitor_set_interval(bs_lag_monitor *m, uint32_t interval_s);
/* Stop the thread (waits for the poll in progress, bounded by timeout_s)
 * and free everything. NULL is a no-op. */
void bs_lag_monitor_stop(bs_lag_monitor *m);

/* bs_metrics_render_fn for bs_metrics_set_extension (arg: the monitor): the
 * latest snapshot at the current metrics level, unless it is stale (older
 * than three intervals: then nothing, the polls are failing). */
bs_status bs_lag_render_prometheus(bs_wbuf *out, void *arg) BS_WUR;
/* Append `,"lag":{...}` for /status: bootstrap, broker_id (this broker's
 * node id as last resolved, -1 unknown), interval_s, last_success_ms (0:
 * none yet), stale, rows and aggregates of the latest result; `,"lag":null`
 * for NULL (no lag section). Control thread. */
void bs_lag_status_json(bs_lag_monitor *m, bs_wbuf *out);
/* The latest (not stale) snapshot as EMF documents (see bs_lag_snapshot_emf). */
bs_status bs_lag_emf(bs_lag_monitor *m, const char *ns, const bs_emf_dimension *fixed,
                     size_t n_fixed, int64_t ts_ms, bs_emf_emit_fn emit, void *arg) BS_WUR;

#endif
