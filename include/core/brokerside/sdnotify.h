/*
 * sdnotify.h - the systemd service notification protocol, implemented
 * directly (no libsystemd): one datagram of "KEY=VALUE\n..." lines to the
 * AF_UNIX socket named by $NOTIFY_SOCKET (a path, or "@name" for an
 * abstract socket). Outside systemd ($NOTIFY_SOCKET unset) every call is a
 * quiet no-op, so callers never need to know how they were started.
 *
 * What the daemon sends (main.c): READY=1 once listeners and admin are up;
 * RELOADING=1 with MONOTONIC_USEC, then READY=1, around a SIGHUP reload;
 * STOPPING=1 when a drain starts; WATCHDOG=1 every half of WATCHDOG_USEC
 * from the control loop. All functions are thread-safe (no shared state).
 */
#ifndef BROKERSIDE_SDNOTIFY_H
#define BROKERSIDE_SDNOTIFY_H

#include <stdint.h>

#include "brokerside/status.h"

/*
 * Send `state` (one or more "KEY=VALUE" lines, e.g. "READY=1\nSTATUS=up")
 * as one datagram to $NOTIFY_SOCKET. BS_E_NOT_FOUND when the variable is
 * unset or empty (not run by systemd: nothing to do), BS_E_CONFIG when its
 * value is not a usable AF_UNIX address (relative path, too long, vsock),
 * BS_E_IO when the send failed (errno set). Never blocks for long: the
 * socket is non-blocking and a full receiver queue is BS_E_IO.
 */
bs_status bs_sd_notify(const char *state) BS_WUR;

/* bs_sd_notify with a printf-style message (at most 1023 bytes). */
bs_status bs_sd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2))) BS_WUR;

/*
 * "RELOADING=1\nMONOTONIC_USEC=<now>": what systemd expects at the start of
 * a reload (the timestamp lets Type=notify-reload match it to its request).
 */
bs_status bs_sd_notify_reloading(void) BS_WUR;

/*
 * The watchdog interval systemd asks for, in microseconds: $WATCHDOG_USEC
 * when set to a positive number and $WATCHDOG_PID is unset or names this
 * process; 0 otherwise (no watchdog: send no WATCHDOG=1).
 */
uint64_t bs_sd_watchdog_usec(void);

#endif
