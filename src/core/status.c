/* status.c - names for bs_status values. */
#include "brokerside/status.h"

/* Stable lower-case names, used in log lines and metric labels. */
const char *bs_status_name(bs_status s)
{
    switch (s) {
    case BS_OK: return "ok";
    case BS_E_NOMEM: return "nomem";
    case BS_E_SHORT: return "short";
    case BS_E_MALFORMED: return "malformed";
    case BS_E_TOO_LARGE: return "too_large";
    case BS_E_IO: return "io";
    case BS_E_CONFIG: return "config";
    case BS_E_CRYPTO: return "crypto";
    case BS_E_UNSUPPORTED: return "unsupported";
    case BS_E_AGAIN: return "again";
    case BS_E_NOT_FOUND: return "not_found";
    case BS_E_STATE: return "state";
    case BS_E_FULL: return "full";
    case BS_E_BUSY: return "busy";
    }
    return "unknown";
}
