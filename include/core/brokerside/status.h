/*
 * status.h - error codes and guard macros shared by every module.
 *
 * Fallible functions return bs_status (BS_OK on success) and write results
 * through out-parameters. BS_WUR makes the compiler reject ignored statuses.
 */
#ifndef BROKERSIDE_STATUS_H
#define BROKERSIDE_STATUS_H

#include <stddef.h>

typedef enum bs_status {
    BS_OK = 0,
    BS_E_NOMEM = -1,       /* allocation failed */
    BS_E_SHORT = -2,       /* not enough bytes yet (streaming parsers: read more) */
    BS_E_MALFORMED = -3,   /* bytes violate the format: reject, do not retry */
    BS_E_TOO_LARGE = -4,   /* a length exceeds a configured or hard limit */
    BS_E_IO = -5,          /* a system call failed; errno is meaningful */
    BS_E_CONFIG = -6,      /* invalid configuration */
    BS_E_CRYPTO = -7,      /* a cryptographic operation failed or did not verify */
    BS_E_UNSUPPORTED = -8, /* valid but not handled by this build (version, feature) */
    BS_E_AGAIN = -9,       /* would block; try again later */
    BS_E_NOT_FOUND = -10,  /* lookup missed */
    BS_E_STATE = -11,      /* call not valid in the object's current state */
    BS_E_FULL = -12,       /* bounded storage has no room */
    BS_E_BUSY = -13,       /* a resource is held by another process (lock file) */
} bs_status;

#define BS_WUR __attribute__((warn_unused_result))

/* Return the status of `expr` from the enclosing function unless it is BS_OK. */
#define BS_GUARD(expr)                                                                             \
    do {                                                                                           \
        bs_status bs_guard_status_ = (expr);                                                       \
        if (bs_guard_status_ != BS_OK) return bs_guard_status_;                                    \
    } while (0)

/* Return `err` from the enclosing function unless `cond` holds. */
#define BS_ENSURE(cond, err)                                                                       \
    do {                                                                                           \
        if (!(cond)) return (err);                                                                 \
    } while (0)

/* Jump to `label` with `var` set to the status of `expr` unless it is BS_OK. */
#define BS_GUARD_GOTO(var, expr, label)                                                            \
    do {                                                                                           \
        (var) = (expr);                                                                            \
        if ((var) != BS_OK) goto label;                                                            \
    } while (0)

#define BS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define bs_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* A short, stable, lower-case name for a status ("malformed", "too_large", ...). */
const char *bs_status_name(bs_status s);

#endif
