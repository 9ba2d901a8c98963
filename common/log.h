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
 *
 * A line a peer can make us repeat (a failing accept, a client refused,
 * a worker's bad message) goes through log_limited: one static state per
 * call site, the first line written, repeats within LOG_REPEAT_WINDOW_MS
 * counted, and the count said ("... (repeated N times in 10 s)") with the
 * next line after the window, or by log_limited_flush once the window has
 * closed -- agentd calls it from a timer, so a burst that stops is still
 * told.  A storm costs two lines per window, whatever its rate.
 *
 * log_set_redact() gives the logger the process's secrets
 * (common/redact.h): every message is written with them replaced.
 */
#ifndef AGENTD_LOG_H
#define AGENTD_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum log_level { LL_ERROR = 0, LL_WARN, LL_INFO, LL_DEBUG };

/* path NULL logs to stderr.  Returns 0, or -1 with errno when the file
 * cannot be opened (logging then goes to stderr). */
int log_init(const char *ident, enum log_level level, int json, const char *path);
int log_reopen(void);
void log_set_level(enum log_level level);
struct redact;
/* The set every message is redacted with from now on (borrowed: it must
 * outlive its use here; NULL: none). */
void log_set_redact(const struct redact *r);
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

/* The state of one log_limited call site (see the top). */
#define LOG_REPEAT_WINDOW_MS 10000
struct log_limit {
	int64_t window_end;         /* mono ms; 0 before the first line */
	unsigned long repeats;      /* lines counted, not written, in this window */
	enum log_level level;
	char last[256];             /* the last of them, said with the count */
	char agent[64];             /* ... and the agent it was about, if any */
	struct log_limit *next;     /* on the list of sites with repeats to tell */
	_Bool listed;
};
void log_limited_at(struct log_limit *ll, enum log_level level, const char *agent,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Tell the counts of windows that have closed; returns the mono ms at which
 * the next open one closes, or -1 when no site has repeats to tell. */
int64_t log_limited_flush(int64_t now_ms);

#define log_limited(level, ...) do { \
	static struct log_limit log_limit_site_; \
	log_limited_at(&log_limit_site_, (level), NULL, __VA_ARGS__); \
} while (0)
#define log_agent_limited(level, agent, ...) do { \
	static struct log_limit log_limit_site_; \
	log_limited_at(&log_limit_site_, (level), (agent), __VA_ARGS__); \
} while (0)

#define log_error(...) log_msg(LL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LL_DEBUG, __VA_ARGS__)

#endif
