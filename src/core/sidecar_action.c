/*
 * sidecar_action.c - the recorder registry behind bs_sidecar_action_emit
 * (see sidecar_action.h). A read-write lock makes "remove the recorder, then
 * close the audit log" safe: once set_recorder(NULL) returns, no emission is
 * still inside the old recorder.
 */
#include "brokerside/sidecar_action.h"

#include <pthread.h>

#include "brokerside/status.h"

static pthread_rwlock_t g_lock = PTHREAD_RWLOCK_INITIALIZER;
static bs_sidecar_action_fn g_fn;
static void *g_arg;

/* See sidecar_action.h. */
void bs_sidecar_action_set_recorder(bs_sidecar_action_fn fn, void *arg)
{
    pthread_rwlock_wrlock(&g_lock);
    g_fn = fn;
    g_arg = arg;
    pthread_rwlock_unlock(&g_lock);
}

/* See sidecar_action.h. */
void bs_sidecar_action_emit(const bs_sidecar_action *a)
{
    if (!a) return;
    pthread_rwlock_rdlock(&g_lock);
    if (g_fn) g_fn(a, g_arg);
    pthread_rwlock_unlock(&g_lock);
}

/* See sidecar_action.h. */
const char *bs_sidecar_action_name(bs_sidecar_action_kind kind)
{
    static const char *const names[] = {
        [BS_ACTION_STOPPING] = "SidecarStopping",
        [BS_ACTION_CONFIG_RELOADED] = "ConfigurationReloaded",
        [BS_ACTION_CONFIG_REJECTED] = "ConfigurationReloadRejected",
        [BS_ACTION_TLS_RELOADED] = "TlsMaterialReloaded",
        [BS_ACTION_POLICY_CHANGED] = "AuthorizationPolicyChanged",
        [BS_ACTION_DEK_CREATED] = "DataKeyCreated",
        [BS_ACTION_DEK_ROTATED] = "DataKeyRotated",
        [BS_ACTION_KMS_FAILED] = "KmsUnavailable",
        [BS_ACTION_KMS_RECOVERED] = "KmsRecovered",
        [BS_ACTION_SINK_DEAD_LETTERED] = "SinkEventsDeadLettered",
        [BS_ACTION_SPOOL_FULL] = "SpoolFull",
        [BS_ACTION_SPOOL_RECOVERED] = "SpoolRecovered",
    };
    return (unsigned)kind < BS_ARRAY_LEN(names) && names[kind] ? names[kind] : "UnknownAction";
}
