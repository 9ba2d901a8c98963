/*
 * log: line-oriented logging to stderr or an append-only file.
 *
 * Each line is formatted into a stack buffer and written with one write(2),
 * so concurrent writers (agentd and the lines it relays from workers) never
 * interleave within a line.  JSON output escapes through jansson so any
 * bytes a worker printed stay valid JSON.
 *
 * Rate-limited sites with repeats still to tell are on one list (each site
 * is a static in its caller), so log_limited_flush visits only those.
 *
 * Every message goes through the process's secrets (log_set_redact) before
 * it is written, whatever its source: a line agentd relays from a worker's
 * stderr or `log` message, a server's error it quotes, its own words.  A
 * message cut at LOG_LINE_MAX, or at the size of the line a rate-limited
 * site keeps, also loses a secret's first bytes at the cut.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/log.h"
#include "common/redact.h"
#include "common/util.h"

#define LOG_LINE_MAX 8192

static struct {
	char ident[32];
	enum log_level level;
	int json;
	int fd;
	char *path;
	const struct redact *redact;
} lg = { "agentd", LL_INFO, 0, 2, NULL, NULL };

static const char *level_names[] = { "error", "warn", "info", "debug" };

static int
open_log(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int
log_init(const char *ident, enum log_level level, int json, const char *path)
{
	snprintf(lg.ident, sizeof(lg.ident), "%s", ident);
	lg.level = level;
	lg.json = json;
	free(lg.path);
	lg.path = NULL;
	if (lg.fd > 2)
		close(lg.fd);
	lg.fd = 2;
	if (path == NULL)
		return 0;
	int fd = open_log(path);
	if (fd < 0)
		return -1;
	lg.fd = fd;
	lg.path = xstrdup(path);
	return 0;
}

int
log_reopen(void)
{
	if (lg.path == NULL)
		return 0;
	int fd = open_log(lg.path);
	if (fd < 0)
		return -1;
	dup2(fd, lg.fd);
	close(fd);
	return 0;
}

void log_set_level(enum log_level level) { lg.level = level; }
void log_set_redact(const struct redact *r) { lg.redact = r; }
enum log_level log_get_level(void) { return lg.level; }

const char *
log_level_name(enum log_level level)
{
	return (unsigned)level < ARRAY_LEN(level_names) ? level_names[level] : "?";
}

int
log_level_parse(const char *s)
{
	for (size_t i = 0; i < ARRAY_LEN(level_names); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	if (strcmp(s, "warning") == 0)
		return LL_WARN;
	return -1;
}

static void
emit_json(enum log_level level, const char *agent, const char *msg, const char *ts)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:i}", "ts", ts,
	    "level", level_names[level], "ident", lg.ident, "pid", (int)getpid());
	if (o == NULL)
		return;
	if (agent)
		json_object_set_new(o, "agent", json_string(agent));
	json_t *m = json_string(msg);
	json_object_set_new(o, "msg", m ? m : json_stringn("(invalid utf-8)", 15));
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (s) {
		size_t n = strlen(s);
		s[n] = '\n';	/* the terminating NUL becomes the newline */
		(void)write_all(lg.fd, s, n + 1);
		free(s);
	}
}

/* buf (capacity cap) holds what vsnprintf made of n bytes: redacted, and
 * a secret's first bytes gone where it was cut. */
static void
redact_formatted(char *buf, size_t cap, int n)
{
	if (n < 0)
		buf[0] = '\0';
	else if (lg.redact)
		redact_buf(lg.redact, buf, (size_t)n < cap ? (size_t)n : cap - 1, (size_t)n >= cap);
}

void
log_vmsg(enum log_level level, const char *agent, const char *fmt, va_list ap)
{
	char msg[LOG_LINE_MAX], ts[32], line[LOG_LINE_MAX + 128];
	int n;

	if (level > lg.level)
		return;
	redact_formatted(msg, sizeof(msg), vsnprintf(msg, sizeof(msg), fmt, ap));
	iso8601(wall_ms(), ts, sizeof(ts));
	if (lg.json) {
		emit_json(level, agent, msg, ts);
		return;
	}
	if (agent)
		n = snprintf(line, sizeof(line), "%s %s[%d]: %s: agent %s: %s\n",
		    ts, lg.ident, (int)getpid(), level_names[level], agent, msg);
	else
		n = snprintf(line, sizeof(line), "%s %s[%d]: %s: %s\n",
		    ts, lg.ident, (int)getpid(), level_names[level], msg);
	if (n >= (int)sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	(void)write_all(lg.fd, line, (size_t)n);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, NULL, fmt, ap);
	va_end(ap);
}

void
log_agent(enum log_level level, const char *agent, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, agent, fmt, ap);
	va_end(ap);
}

static struct log_limit *limited;	/* sites with repeats to tell */

static void
tell_repeats(struct log_limit *ll)
{
	log_agent(ll->level, ll->agent[0] ? ll->agent : NULL, "%s (repeated %lu more "
	    "times in %d s)", ll->last, ll->repeats, LOG_REPEAT_WINDOW_MS / 1000);
	ll->repeats = 0;
}

void
log_limited_at(struct log_limit *ll, enum log_level level, const char *agent,
    const char *fmt, ...)
{
	int64_t now = mono_ms();
	va_list ap;

	if (level > lg.level)
		return;
	va_start(ap, fmt);
	if (now < ll->window_end) {
		redact_formatted(ll->last, sizeof(ll->last),
		    vsnprintf(ll->last, sizeof(ll->last), fmt, ap));
		snprintf(ll->agent, sizeof(ll->agent), "%s", agent ? agent : "");
		ll->level = level;
		ll->repeats++;
		if (!ll->listed) {
			ll->listed = 1;
			ll->next = limited;
			limited = ll;
		}
	} else {
		if (ll->repeats)	/* flush has not run since the window closed */
			tell_repeats(ll);
		ll->window_end = now + LOG_REPEAT_WINDOW_MS;
		log_vmsg(level, agent, fmt, ap);
	}
	va_end(ap);
}

int64_t
log_limited_flush(int64_t now_ms)
{
	int64_t next = -1;

	for (struct log_limit **pp = &limited; *pp;) {
		struct log_limit *ll = *pp;
		if (ll->repeats && now_ms < ll->window_end) {
			if (next < 0 || ll->window_end < next)
				next = ll->window_end;
			pp = &ll->next;
			continue;
		}
		if (ll->repeats)
			tell_repeats(ll);
		ll->listed = 0;
		*pp = ll->next;
	}
	return next;
}
