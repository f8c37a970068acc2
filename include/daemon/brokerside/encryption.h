/*
 * encryption.h - the daemon's encryption-at-rest runtime: builds the keyring
 * named by the config (local master key file, or AWS KMS through an AWS HTTP
 * client with the credential chain, on the control loop), the DEK manager,
 * a DEK worker per server worker (net worker hooks) and the record crypto
 * hook for `kafka` listeners. docs/encryption.md has the behaviour.
 *
 * Lifecycle (control thread): bs_encryption_start before bs_server_start;
 * bs_server_set_session(srv, name, bs_kafka_session_ops(),
 * bs_encryption_factory(e)) on every kafka listener; bs_encryption_free
 * after the server's workers have finished (the DEK workers are freed by
 * the workers themselves) and before the config is freed.
 */
#ifndef BROKERSIDE_ENCRYPTION_H
#define BROKERSIDE_ENCRYPTION_H

#include <stddef.h>

#include "brokerside/config.h"
#include "brokerside/kafka_session.h"
#include "brokerside/net.h"
#include "brokerside/status.h"

struct ev_loop;

typedef struct bs_encryption bs_encryption;

/* --check-config: what can be checked without starting anything. With the
 * local keyring the master key file is loaded (and wiped) exactly as at
 * start, so a malformed key fails here instead of at start. BS_OK when
 * encryption is off or the check passed; else BS_E_CONFIG with the reason in
 * err ("encryption.kms.key_file: ..."). */
bs_status bs_encryption_check(const bs_config *cfg, char *err, size_t errlen) BS_WUR;

/* Build everything for cfg->encryption (which must be enabled: BS_E_CONFIG
 * otherwise) on `control` and install the worker hooks on `srv` (not yet
 * started). `cfg` is borrowed and must outlive the object. On failure a
 * reason goes to err[errlen] and nothing is left behind. */
bs_status bs_encryption_start(struct ev_loop *control, const bs_config *cfg, bs_server *srv,
                              bs_encryption **out, char *err, size_t errlen) BS_WUR;

/* The session factory (record crypto hook) for kafka listeners; owned by `e`. */
const bs_kafka_session_factory *bs_encryption_factory(bs_encryption *e);

/* SIGHUP: apply the reloadable part of cfg->encryption (topic rules,
 * unmatched_topics, dek rotation limits) to the running runtime. `cfg` must
 * outlive `e` (the daemon keeps retired configs). Changes of the keyring or
 * caches need a restart (bs_config_needs_restart names them); encryption
 * turned off in cfg is ignored here for the same reason. Control thread.
 * BS_E_CONFIG if the dek limits are invalid (then nothing changes). */
bs_status bs_encryption_reload(bs_encryption *e, const bs_config *cfg) BS_WUR;

/* Tear down (control thread, after every server worker finished); NULL is a no-op. */
void bs_encryption_free(bs_encryption *e);

#endif
