/*
 * log: one logger per process.
 *
 * agentd and agentd-worker both log through here.  Output is a line per
 * message, either text ("2026-11-24T12:00:00.123Z agentd[42]: info: ...")
 * or JSON ({"ts":..,"level":..,"ident":..,"agent":..,"msg":..}).  The
 * destination is stderr or a file opened O_APPEND; log_reopen() re-opens the
 * file for logrotate (agentd calls it on SIGUSR1, from the loop, never from
 * a signal handler).  Writes are single write(2) calls per line so lines from
 * several processes sharing one file never interleave mid-line.
 */
#ifndef AGENTD_LOG_H
#define AGENTD_LOG_H

#include <stdarg.h>

enum log_level { LL_ERROR = 0, LL_WARN, LL_INFO, LL_DEBUG };

/* path NULL logs to stderr.  Returns 0, or -1 with errno when the file
 * cannot be opened (logging then goes to stderr). */
int log_init(const char *ident, enum log_level level, int json, const char *path);
int log_reopen(void);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* "error" "warn" "info" "debug" -> level; -1 when unknown. */
int log_level_parse(const char *s);
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A line attributed to an agent (text: "agent NAME: ..."; json: "agent" key). */
void log_agent(enum log_level level, const char *agent, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level level, const char *agent, const char *fmt, va_list ap);

#define log_error(...) log_msg(LL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LL_DEBUG, __VA_ARGS__)

#endif
