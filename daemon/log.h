/* log.h — the daemon's log: one line per event on stderr, with UTC time and level:
 *   2026-11-25T06:01:02.345Z INFO job 3 queued: fmnist-warmup
 * Thread safe (one write(2) per line). Never logs secrets: callers must not pass the
 * token. */
#ifndef VAED_LOG_H
#define VAED_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level min);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
