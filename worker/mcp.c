/*
 * mcp: the MCP client of a worker (see mcp.h for the shape).
 *
 * A request is written, then waited for: the wait reads the server (and
 * answers what the server asks meanwhile: pings get {}, anything else
 * "method not found", since we declare no client capabilities), and
 * matches the response by id.  A call that times out or is cancelled sends
 * notifications/cancelled and forgets the id, so a late response and later
 * progress are dropped.  After a timed-out call the server gets a short
 * ping: one that does not answer that either is restarted.
 *
 * On stdio everything for the server goes through one queue (wq) that is
 * written only as far as the pipe takes it, never waited on from inside
 * the read path: an answer written there would read again, and answer
 * again, and a server that asks without reading would recurse the worker
 * off its stack.  The waits (a request's, the idle loop's) write the rest
 * when the pipe has room.  Answers the server leaves unread are bounded
 * (MCP_QUEUE_MAX): past it the server is restarted, with that reason.  A
 * stdio server is dead when its process is (a pidfd in the same polls),
 * not only when its pipes close: a child it left behind may hold them open.
 *
 * What a server can make us do without end is bounded too: log lines
 * (notifications/message, stderr, the messages we skip) are written
 * MCP_LOG_PER_SEC a second, the rest counted, and a server past
 * MCP_LOG_FLOOD_PER_SEC is restarted; list_changed re-lists at most every
 * MCP_RELIST_MIN_MS, and a status event goes out only when the status
 * differs from the last one sent.
 *
 * The life of a server: connect = spawn (or open the HTTP session),
 * initialize, notifications/initialized, tools/list (every page).  Any
 * failure takes it down: its process is stopped (stdin closed, a second,
 * TERM, a second, KILL) and a reconnect is due after a backoff that
 * doubles with each failure in a row (500 ms up to 60 s), and resets once a
 * server has stayed up for 30 s.  While it is down its tools stay listed
 * and answer the model with the reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "worker/mcp_int.h"
#include "worker/tools.h"

#define MCP_LINE_MAX (8u << 20)         /* one JSON-RPC message on stdio */
#define MCP_TOOLS_MAX 256               /* per server */
#define MCP_PAGES_MAX 32                /* tools/list pages */
#define MCP_SCHEMA_MAX (64u << 10)      /* one tool's inputSchema, as JSON */
#define MCP_DESC_MAX 4096
#define MCP_GARBAGE_MAX 20              /* bad lines in a row before a restart */
#define MCP_PROGRESS_MAX_MS (10 * 60000) /* progress extends a call up to this */
#define MCP_PING_TIMEOUT_MS 5000
#define MCP_BACKOFF_MIN_MS 500
#define MCP_BACKOFF_MAX_MS 60000
#define MCP_STABLE_MS 30000
#define MCP_STOP_WAIT_MS 1000
#define MCP_QUEUE_MAX (1u << 20)        /* answers a server has not read yet */
#define MCP_LOG_PER_SEC 20              /* a server's lines in the agent's log */
#define MCP_LOG_FLOOD_PER_SEC 2000      /* more a second and it is restarted */
#define MCP_RELIST_MIN_MS 1000          /* between tools/list after list_changed */

static const char *const versions[] = { "2025-11-25", "2025-06-18", "2025-03-26", NULL };

static void server_down(struct mcp_server *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- small things --------------------------------------------------------- */

static bool
name_ok(const char *s, size_t max, bool dots)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || (dots && *s == '.')))
			return false;
	return true;
}

static const char *
state_name(const struct mcp_server *s)
{
	switch (s->state) {
	case MCP_CONNECTED: return "connected";
	case MCP_CONNECTING: return "connecting";
	default: return s->failures >= 5 ? "failed" : s->failures ? "restarting" : "down";
	}
}

static json_t *
exposed_names(const struct mcp *m, size_t idx)
{
	json_t *a = json_array(), *v;
	const char *k;
	json_object_foreach(m->index, k, v)
		if ((size_t)json_integer_value(json_array_get(v, 0)) == idx)
			json_array_append_new(a, json_string(k));
	return a;
}

static json_t *
server_status(const struct mcp_server *s)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:o}", "server", s->name,
	    "state", state_name(s), "transport",
	    s->transport == MCP_STDIO ? "stdio" : s->transport == MCP_SSE ? "sse" :
	    "streamable_http",
	    "tools", exposed_names(s->m, (size_t)(s - s->m->srv)));
	json_object_set_new(o, "protocol_version", s->version[0] ?
	    json_string(s->version) : json_null());
	json_object_set_new(o, "error", s->error[0] ? json_string(s->error) : json_null());
	return o;
}

/* Only a change is news: a server repeating itself (list_changed in a
 * loop) must not fill the agent's events with copies. */
static void
notify_status(struct mcp_server *s)
{
	json_t *st = server_status(s);

	if (json_equal(st, s->last_status)) {
		json_decref(st);
		return;
	}
	json_decref(s->last_status);
	s->last_status = json_incref(st);
	if (s->m->h.on_status)
		s->m->h.on_status(st, s->m->h.arg);
	else
		json_decref(st);
}

static bool
interrupted(struct mcp *m)
{
	return m->h.interrupted && m->h.interrupted(m->h.arg);
}

/* Say how many of the server's lines were not written, once. */
static void
log_tell_dropped(struct mcp_server *s)
{
	if (s->log_dropped)
		log_warn("mcp %s: %u more of its log lines in a second were not written",
		    s->name, s->log_dropped);
	s->log_dropped = 0;
}

/*
 * May one more line from this server go to the log?  MCP_LOG_PER_SEC a
 * second do; the rest are counted, and said once the second is over (or
 * when the server goes down).
 */
static bool
log_allowed(struct mcp_server *s)
{
	int64_t now = mono_ms();

	if (now - s->log_start >= 1000) {
		log_tell_dropped(s);
		s->log_start = now;
		s->log_lines = 0;
	}
	if (++s->log_lines <= MCP_LOG_PER_SEC)
		return true;
	s->log_dropped++;
	return false;
}

/* Something the server sent makes it unusable: the transport takes it
 * down once it is out of what it was reading (the first reason stays). */
static void
server_fault(struct mcp_server *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
server_fault(struct mcp_server *s, const char *fmt, ...)
{
	va_list ap;
	if (s->fault[0])
		return;
	va_start(ap, fmt);
	vsnprintf(s->fault, sizeof(s->fault), fmt, ap);
	va_end(ap);
}

/* A log line caused by what the server sent; a server making them faster
 * than anyone can read is restarted. */
static bool
server_log_allowed(struct mcp_server *s)
{
	bool ok = log_allowed(s);
	if (s->log_lines > MCP_LOG_FLOOD_PER_SEC)
		server_fault(s, "it sent over %d messages to log in a second",
		    MCP_LOG_FLOOD_PER_SEC);
	return ok;
}

/* ---- stdio transport ------------------------------------------------------ */

static void
stderr_line(struct mcp_server *s, const char *p, size_t n)
{
	char line[256];
	str_printable(line, sizeof(line), p, n);
	if (line[0] == '\0')
		return;
	memcpy(s->last_stderr, line, sizeof(line));
	if (log_allowed(s))
		log_info("mcp %s: %s", s->name, line);
}

/* Split what is buffered into lines; a partial line stays.  eof: the rest
 * is a line too. */
static void
take_lines(struct mcp_server *s, struct buf *b, bool is_stdout, bool eof)
{
	while (buf_pending(b) > 0) {
		char *p = (char *)buf_head(b), *nl = memchr(p, '\n', buf_pending(b));
		size_t n = nl ? (size_t)(nl - p) : buf_pending(b);
		if (nl == NULL && !eof)
			break;
		size_t len = n;
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (is_stdout && len > 0) {
			mcp_dispatch(s, p, len);
			if (s->fault[0] && s->pid > 0)
				server_down(s, "%s", s->fault);
			if (s->pid <= 0)	/* it took the server down: b is reset */
				return;
		} else if (!is_stdout)
			stderr_line(s, p, len);
		buf_consume(b, nl ? n + 1 : n);
	}
}

/* Read what one of the server's outputs has.  -1: EOF or error. */
static int
read_side(struct mcp_server *s, bool is_stdout)
{
	int fd = is_stdout ? s->out : s->errfd;
	struct buf *b = is_stdout ? &s->rb : &s->eb;
	ssize_t r = read(fd, buf_reserve(b, 65536), 65536);

	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (r > 0)
		buf_commit(b, (size_t)r);
	take_lines(s, b, is_stdout, r <= 0);
	if (r <= 0)
		return -1;
	if (buf_pending(b) > (is_stdout ? MCP_LINE_MAX : 4096u)) {
		if (is_stdout) {
			server_down(s, "a message on stdout is over %u bytes", MCP_LINE_MAX);
			return -1;
		}
		stderr_line(s, (char *)buf_head(b), buf_pending(b));
		buf_reset(b);
	}
	return 0;
}

static void
stdout_ready(struct mcp_server *s)
{
	if (read_side(s, true) < 0 && s->pid > 0)
		server_down(s, "the server closed its stdout");
}

static void
stderr_ready(struct mcp_server *s)
{
	if (read_side(s, false) < 0 && s->errfd >= 0) {
		close(s->errfd);
		s->errfd = -1;
	}
}

/* Has the server's process ended (not reaped yet: stdio_stop tells how)?
 * Its pipes may outlive it, held by a child it left behind. */
static bool
process_ended(const struct mcp_server *s)
{
	siginfo_t si = { 0 };
	return s->pid > 0 && waitid(P_PID, (id_t)s->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	    si.si_pid == s->pid;
}

static void
check_process(struct mcp_server *s)
{
	if (process_ended(s))
		server_down(s, "its process ended");
}

static bool
reap(struct mcp_server *s, int wait_ms, int *status)
{
	for (int waited = 0; ; waited += 10) {
		pid_t r = waitpid(s->pid, status, WNOHANG);
		if (r == s->pid || (r < 0 && errno == ECHILD))
			return true;
		if (waited >= wait_ms)
			return false;
		poll(NULL, 0, 10);
	}
}

/* Stop the process: close its stdin, then TERM, then KILL.  Returns how it
 * ended, for the error message. */
static void
stdio_stop(struct mcp_server *s, char *how, size_t howlen)
{
	int st = 0;
	const char *via = "";

	if (s->in >= 0)
		close(s->in);
	s->in = -1;
	if (s->pid > 0) {
		if (!reap(s, MCP_STOP_WAIT_MS, &st)) {
			kill(s->pid, SIGTERM);
			via = " after SIGTERM";
			if (!reap(s, MCP_STOP_WAIT_MS, &st)) {
				kill(s->pid, SIGKILL);
				via = " after SIGKILL";
				waitpid(s->pid, &st, 0);
			}
		}
		if (how && WIFEXITED(st))
			snprintf(how, howlen, "exited with status %d%s", WEXITSTATUS(st), via);
		else if (how && WIFSIGNALED(st))
			snprintf(how, howlen, "was killed by signal %d%s", WTERMSIG(st), via);
	}
	s->pid = -1;
	if (s->pidfd >= 0)
		close(s->pidfd);
	s->pidfd = -1;
	if (s->errfd >= 0) {	/* its last words (a grandchild may hold the pipe) */
		for (int i = 0; i < 4; i++) {
			ssize_t r = read(s->errfd, buf_reserve(&s->eb, 4096), 4096);
			if (r <= 0)
				break;
			buf_commit(&s->eb, (size_t)r);
		}
		take_lines(s, &s->eb, false, true);
		close(s->errfd);
	}
	if (s->out >= 0)
		close(s->out);
	s->out = s->errfd = -1;
	buf_reset(&s->rb);
	buf_reset(&s->eb);
	buf_reset(&s->wq);
	s->req_bytes = 0;
}

static int
stdio_start(struct mcp_server *s, char *err, size_t errlen)
{
	const json_t *args = json_object_get(s->def, "args"), *env = json_object_get(s->def, "env");
	const char *cmd = json_string_value(json_object_get(s->def, "command"));
	int in[2], out[2], er[2];
	size_t n = json_array_size(args), i;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(er, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;	/* fds leak only when the process is out of them anyway */
	}
	char **argv = xcalloc(n + 2, sizeof(*argv));
	argv[0] = (char *)cmd;
	for (i = 0; i < n; i++)
		argv[i + 1] = (char *)json_string_value(json_array_get(args, i));
	s->pid = fork();
	if (s->pid == 0) {
		const char *k;
		json_t *v;
		sigset_t all;
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(er[1], 2);
		signal(SIGPIPE, SIG_DFL);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		json_object_foreach((json_t *)env, k, v)
			if (json_is_string(v))
				setenv(k, json_string_value(v), 1);
		execvp(cmd, argv);
		dprintf(2, "cannot run %s: %s\n", cmd, strerror(errno));
		_exit(127);
	}
	free(argv);
	close(in[0]);
	close(out[1]);
	close(er[1]);
	if (s->pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(in[1]);
		close(out[0]);
		close(er[0]);
		return -1;
	}
	s->in = in[1];
	s->out = out[0];
	s->errfd = er[0];
	s->pidfd = pidfd_open(s->pid, 0);	/* -1 (old kernel): its pipes tell */
	if (s->pidfd >= 0)
		set_cloexec(s->pidfd);
	set_nonblock(s->in);
	set_nonblock(s->out);
	set_nonblock(s->errfd);
	s->last_stderr[0] = '\0';
	log_debug("mcp %s: started %s (pid %d)", s->name, cmd, (int)s->pid);
	return 0;
}

/* Write what is queued for the server's stdin, as far as the pipe takes
 * it now.  Never waits and never reads (see the top). */
static void
flush_queue(struct mcp_server *s)
{
	while (s->in >= 0 && buf_pending(&s->wq) > 0) {
		ssize_t w = write(s->in, buf_head(&s->wq), buf_pending(&s->wq));
		if (w > 0) {
			buf_consume(&s->wq, (size_t)w);
			s->req_bytes = s->req_bytes > (size_t)w ? s->req_bytes - (size_t)w : 0;
		} else if (w < 0 && errno == EINTR)
			continue;
		else if (w < 0 && errno != EAGAIN) {
			server_down(s, "writing to its stdin: %s", strerror(errno));
			return;
		} else
			return;
	}
}

/* Queue one line for the server and write what the pipe takes.  Answers
 * and notifications the server leaves unread pile up here: past
 * MCP_QUEUE_MAX (besides our one request) it is not reading, and goes. */
static int
stdio_send(struct mcp_server *s, const char *p, size_t n, bool is_request)
{
	if (s->in < 0)
		return MCP_E_DOWN;
	if (!is_request && buf_pending(&s->wq) + n > MCP_QUEUE_MAX + s->req_bytes) {
		server_down(s, "it does not read its stdin (%zu bytes of answers wait for it)",
		    buf_pending(&s->wq));
		return MCP_E_DOWN;
	}
	buf_append(&s->wq, p, n);
	if (is_request)
		s->req_bytes = buf_pending(&s->wq);
	flush_queue(s);
	return s->in >= 0 ? 0 : MCP_E_DOWN;
}

/* ---- sending and waiting ---------------------------------------------------- */

static int
send_json(struct mcp_server *s, json_t *msg, bool is_request, int64_t timeout_ms,
    char *err, size_t errlen)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	int rc;

	if (text == NULL) {
		snprintf(err, errlen, "cannot encode the message");
		return MCP_E_RPC;
	}
	if (s->transport != MCP_STDIO) {
		rc = mcp_http_post(s, text, is_request, timeout_ms,
		    MCP_PROGRESS_MAX_MS, err, errlen);
	} else {
		size_t n = strlen(text);
		text[n] = '\n';	/* json_dumps' NUL becomes the line's end */
		rc = stdio_send(s, text, n + 1, is_request);
		if (rc < 0)
			snprintf(err, errlen, "%s", s->error);
	}
	free(text);
	return rc;
}

static void
send_notification(struct mcp_server *s, const char *method, json_t *params)
{
	char err[256];
	json_t *msg = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
	if (params)
		json_object_set_new(msg, "params", params);
	if (s->pid > 0 || s->transport != MCP_STDIO)
		(void)send_json(s, msg, false, 5000, err, sizeof(err));
	json_decref(msg);
}

/* Wait on stdio for s->reply until the deadline (progress moves it). */
static int
stdio_wait(struct mcp_server *s, int64_t timeout_ms)
{
	int64_t start = mono_ms(), deadline = start + timeout_ms;
	int afd = s->m->h.agentd_fd;

	while (s->reply == NULL) {
		if (s->pid <= 0)
			return MCP_E_DOWN;
		if (s->progressed) {
			s->progressed = false;
			deadline = mono_ms() + timeout_ms;
			if (deadline > start + MCP_PROGRESS_MAX_MS)
				deadline = start + MCP_PROGRESS_MAX_MS;
		}
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			return MCP_E_TIMEOUT;
		struct pollfd p[5] = { { s->out, POLLIN, 0 }, { s->errfd, POLLIN, 0 },
			{ afd, POLLIN, 0 }, { buf_pending(&s->wq) ? s->in : -1, POLLOUT, 0 },
			{ s->pidfd, POLLIN, 0 } };
		if (poll(p, 5, (int)left) < 0 && errno != EINTR)
			return MCP_E_DOWN;
		if (p[2].revents && interrupted(s->m))
			return MCP_E_CANCELLED;
		if (p[3].revents && s->pid > 0)
			flush_queue(s);
		if (p[1].revents && s->pid > 0)
			stderr_ready(s);
		if (p[0].revents && s->pid > 0)
			stdout_ready(s);
		if (p[4].revents && s->pid > 0 && s->reply == NULL)	/* its answer may be its last words */
			check_process(s);
	}
	return 0;
}

static void
rpc_error_text(const json_t *e, char *err, size_t errlen)
{
	const char *msg = json_string_value(json_object_get(e, "message"));
	snprintf(err, errlen, "MCP error %lld: %s",
	    (long long)json_integer_value(json_object_get(e, "code")), msg ? msg : "(no message)");
}

/*
 * One request: 0 and *result (owned), or MCP_E_* and err.  With progress,
 * the request carries a progressToken and progress extends its deadline.
 */
static int
request(struct mcp_server *s, const char *method, json_t *params, int64_t timeout_ms,
    bool progress, json_t **result, char *err, size_t errlen)
{
	int64_t id = ++s->next_id;
	json_t *msg = json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id",
	    (json_int_t)id, "method", method, "params", params ? params : json_object());
	int rc;

	*result = NULL;
	if (progress)
		json_object_set_new(json_object_get(msg, "params"), "_meta",
		    json_pack("{s:I}", "progressToken", (json_int_t)id));
	s->want_id = id;
	s->reply = NULL;
	s->progressed = false;
	rc = send_json(s, msg, true, timeout_ms, err, errlen);
	json_decref(msg);
	if (rc == 0 && s->transport == MCP_STDIO)
		rc = stdio_wait(s, timeout_ms);
	else if (rc == 0 && s->reply == NULL) {
		snprintf(err, errlen, "the HTTP reply held no response");
		rc = MCP_E_DOWN;
	}
	s->want_id = 0;
	if (rc == MCP_E_TIMEOUT || rc == MCP_E_CANCELLED) {
		if (rc == MCP_E_TIMEOUT)
			snprintf(err, errlen, "no response to %s in %lld ms", method,
			    (long long)timeout_ms);
		else
			snprintf(err, errlen, "cancelled");
		send_notification(s, "notifications/cancelled", json_pack("{s:I, s:s}",
		    "requestId", (json_int_t)id, "reason", rc == MCP_E_TIMEOUT ?
		    "timed out" : "the agent's run was cancelled"));
	} else if (rc == MCP_E_DOWN && s->transport == MCP_STDIO)
		snprintf(err, errlen, "%s", s->error);
	if (rc != 0 || s->reply == NULL) {
		json_decref(s->reply);
		s->reply = NULL;
		return rc ? rc : MCP_E_DOWN;
	}
	json_t *e = json_object_get(s->reply, "error");
	if (e) {
		rpc_error_text(e, err, errlen);
		rc = MCP_E_RPC;
	} else if (!json_is_object(json_object_get(s->reply, "result"))) {
		snprintf(err, errlen, "the response to %s has no result object", method);
		rc = MCP_E_RPC;
	} else
		*result = json_incref(json_object_get(s->reply, "result"));
	json_decref(s->reply);
	s->reply = NULL;
	return rc;
}

/* ---- what the server sends ---------------------------------------------------- */

static void
answer(struct mcp_server *s, json_t *id, json_t *result, int code, const char *msg)
{
	char err[256];
	json_t *m = json_pack("{s:s, s:O}", "jsonrpc", "2.0", "id", id);
	if (result)
		json_object_set_new(m, "result", result);
	else
		json_object_set_new(m, "error", json_pack("{s:i, s:s}", "code", code, "message", msg));
	(void)send_json(s, m, false, 5000, err, sizeof(err));
	json_decref(m);
}

static void
on_notification(struct mcp_server *s, const char *method, const json_t *params)
{
	if (strcmp(method, "notifications/tools/list_changed") == 0)
		s->relist = true;
	else if (strcmp(method, "notifications/progress") == 0) {
		json_t *tok = json_object_get(params, "progressToken");
		if (s->want_id && json_is_integer(tok) && json_integer_value(tok) == s->want_id)
			s->progressed = true;
	} else if (strcmp(method, "notifications/message") == 0) {
		if (!server_log_allowed(s))
			return;
		char *d = json_dumps(json_object_get(params, "data"), JSON_COMPACT | JSON_ENCODE_ANY);
		char line[512];
		str_printable(line, sizeof(line), d ? d : "", d ? strlen(d) : 0);
		log_info("mcp %s: [%s] %s", s->name, json_string_value(json_object_get(params,
		    "level")) ?: "log", line);
		free(d);
	} else if (server_log_allowed(s))
		log_debug("mcp %s: notification %s ignored", s->name, method);
}

static void
garbage(struct mcp_server *s, const char *text, size_t len)
{
	char line[160];
	str_printable(line, sizeof(line), text, len);
	if (server_log_allowed(s))
		log_warn("mcp %s: not a JSON-RPC message, skipped: %s", s->name, line);
	if (++s->garbage > MCP_GARBAGE_MAX)
		server_fault(s, "it keeps writing lines that are not JSON-RPC");
}

void
mcp_dispatch(struct mcp_server *s, const char *text, size_t len)
{
	/* JSON_ALLOW_NUL: a tool's text may hold NULs */
	json_t *j = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
	const char *method = json_string_value(json_object_get(j, "method"));
	json_t *id = json_object_get(j, "id");

	if (!json_is_object(j) || !json_is_string(json_object_get(j, "jsonrpc")) ||
	    strcmp(json_string_value(json_object_get(j, "jsonrpc")), "2.0") != 0) {
		json_decref(j);
		garbage(s, text, len);
		return;
	}
	s->garbage = 0;
	if (method && id) {
		if (strcmp(method, "ping") == 0)
			answer(s, id, json_object(), 0, NULL);
		else
			answer(s, id, NULL, -32601, "Method not found");
	} else if (method)
		on_notification(s, method, json_object_get(j, "params"));
	else if (id && (json_object_get(j, "result") || json_object_get(j, "error"))) {
		if (s->want_id && json_is_integer(id) && json_integer_value(id) == s->want_id &&
		    s->reply == NULL)
			s->reply = json_incref(j);
		else if (server_log_allowed(s))
			log_debug("mcp %s: response to a request nobody waits for: dropped",
			    s->name);
	} else if (json_object_get(j, "error")) {	/* an error about no request of ours */
		char e[300];
		rpc_error_text(json_object_get(j, "error"), e, sizeof(e));
		if (server_log_allowed(s))
			log_info("mcp %s: %s", s->name, e);
	} else
		garbage(s, text, len);
	json_decref(j);
}

/* ---- the server's life ------------------------------------------------------ */

static void
rebuild_index(struct mcp *m);

static void
server_down(struct mcp_server *s, const char *fmt, ...)
{
	char how[128] = "";
	va_list ap;
	int64_t now = mono_ms();

	va_start(ap, fmt);
	vsnprintf(s->error, sizeof(s->error), fmt, ap);
	va_end(ap);
	s->fault[0] = '\0';
	log_tell_dropped(s);
	if (s->transport == MCP_STDIO)
		stdio_stop(s, how, sizeof(how));
	else
		mcp_http_close(s);
	size_t n = strlen(s->error);
	if (s->last_stderr[0])	/* why it died is often its last words */
		n += (size_t)snprintf(s->error + n, sizeof(s->error) - n,
		    "; its last stderr line: %s", s->last_stderr);
	if (how[0] && n < sizeof(s->error))
		snprintf(s->error + n, sizeof(s->error) - n, " (the server %s)", how);
	if (s->state == MCP_CONNECTED && now - s->up_since >= MCP_STABLE_MS)
		s->failures = 0;
	s->failures++;
	int64_t delay = MCP_BACKOFF_MIN_MS;
	for (int i = 1; i < s->failures && delay < MCP_BACKOFF_MAX_MS; i++)
		delay *= 2;
	if (delay > MCP_BACKOFF_MAX_MS)
		delay = MCP_BACKOFF_MAX_MS;
	s->due = now + delay;
	s->state = MCP_DOWN;
	s->version[0] = '\0';
	log_warn("mcp %s: %s; reconnecting in %lld ms", s->name, s->error, (long long)delay);
	notify_status(s);
}

/* A tool from tools/list, checked; NULL (and a log line) when unusable. */
static json_t *
checked_tool(struct mcp_server *s, const json_t *t)
{
	const char *name = json_string_value(json_object_get(t, "name"));
	const char *desc = json_string_value(json_object_get(t, "description"));
	json_t *schema = json_object_get(t, "inputSchema");

	if (name == NULL || !name_ok(name, 128, true)) {
		char shown[80];
		str_printable(shown, sizeof(shown), name ? name : "", name ? strlen(name) : 0);
		log_warn("mcp %s: tool name \"%s\" is not valid (1-128 of A-Z a-z 0-9 _ - .); "
		    "skipped", s->name, shown);
		return NULL;
	}
	if (!json_is_object(schema)) {
		log_warn("mcp %s: tool %s has no inputSchema object; skipped", s->name, name);
		return NULL;
	}
	char *st = json_dumps(schema, JSON_COMPACT);
	size_t slen = st ? strlen(st) : 0;
	free(st);
	if (slen == 0 || slen > MCP_SCHEMA_MAX) {
		log_warn("mcp %s: tool %s: inputSchema of %zu bytes is over %u; skipped",
		    s->name, name, slen, MCP_SCHEMA_MAX);
		return NULL;
	}
	json_t *d = json_stringn(desc ? desc : "", desc ? utf8_cut(desc, strlen(desc), MCP_DESC_MAX) : 0);
	return json_pack("{s:s, s:o, s:O}", "name", name, "description", d ? d : json_string(""),
	    "inputSchema", schema);
}

static int
list_tools(struct mcp_server *s, char *err, size_t errlen)
{
	json_t *tools = json_array(), *res, *cursor = NULL;
	int rc = 0;

	for (int page = 0; page < MCP_PAGES_MAX; page++) {
		json_t *params = cursor ? json_pack("{s:O}", "cursor", cursor) : json_object();
		json_decref(cursor);
		cursor = NULL;
		rc = request(s, "tools/list", params, s->init_timeout_ms, false, &res, err, errlen);
		if (rc < 0)
			break;
		json_t *arr = json_object_get(res, "tools"), *t;
		size_t i;
		json_array_foreach(arr, i, t) {
			json_t *ok;
			if (json_array_size(tools) >= MCP_TOOLS_MAX) {
				log_warn("mcp %s: more than %d tools; the rest are ignored",
				    s->name, MCP_TOOLS_MAX);
				break;
			}
			if ((ok = checked_tool(s, t)))
				json_array_append_new(tools, ok);
		}
		cursor = json_incref(json_object_get(res, "nextCursor"));
		json_decref(res);
		if (!json_is_string(cursor))
			break;
	}
	json_decref(cursor);
	if (rc < 0) {
		json_decref(tools);
		return rc;
	}
	json_decref(s->tools);
	s->tools = tools;
	s->relist = false;
	rebuild_index(s->m);
	return 0;
}

static const char *
supported_version(const char *v)
{
	for (int i = 0; v && versions[i]; i++)
		if (strcmp(v, versions[i]) == 0)
			return versions[i];
	return NULL;
}

static int
handshake(struct mcp_server *s, char *err, size_t errlen)
{
	json_t *res;
	int rc = request(s, "initialize", json_pack("{s:s, s:{}, s:{s:s, s:s}}",
	    "protocolVersion", versions[0], "capabilities", "clientInfo", "name", "agentd",
	    "version", AGENTD_VERSION), s->init_timeout_ms, false, &res, err, errlen);
	if (rc < 0)
		return rc;
	const char *pv = json_string_value(json_object_get(res, "protocolVersion"));
	const char *ours = supported_version(pv);
	if (ours == NULL) {
		snprintf(err, errlen, "the server speaks protocol version %s; agentd speaks "
		    "2025-11-25, 2025-06-18 and 2025-03-26", pv ? pv : "(none)");
		json_decref(res);
		return MCP_E_RPC;
	}
	snprintf(s->version, sizeof(s->version), "%s", ours);
	json_decref(res);
	send_notification(s, "notifications/initialized", NULL);
	return 0;
}

static int
server_connect(struct mcp_server *s)
{
	char err[512] = "";
	int rc;

	s->state = MCP_CONNECTING;
	s->version[0] = '\0';
	notify_status(s);
	const char *phase = "starting";
	rc = s->transport == MCP_STDIO ? stdio_start(s, err, sizeof(err)) :
	    mcp_http_open(s, err, sizeof(err));
	if (rc == 0 && (phase = "initialize"))
		rc = handshake(s, err, sizeof(err));
	if (rc == 0 && (phase = "tools/list"))
		rc = list_tools(s, err, sizeof(err));
	if (rc == MCP_E_CANCELLED) {	/* not the server's fault: try again soon */
		if (s->state != MCP_DOWN)
			server_down(s, "connecting was interrupted");
		s->failures = 0;
		s->due = mono_ms();
		return -1;
	}
	if (rc < 0) {
		if (s->state != MCP_DOWN)	/* else the transport took it down already */
			server_down(s, "%s: %s", phase, err);
		return -1;
	}
	s->state = MCP_CONNECTED;
	s->error[0] = '\0';
	s->up_since = mono_ms();
	log_info("mcp %s: connected (protocol %s, %zu tools)", s->name, s->version,
	    json_array_size(s->tools));
	notify_status(s);
	return 0;
}

/* ---- tool names ------------------------------------------------------------- */

static bool
name_free(const struct mcp *m, const char *name)
{
	return name_ok(name, 64, false) && json_object_get(m->index, name) == NULL &&
	    !(m->h.name_taken && m->h.name_taken(name, m->h.arg));
}

static void
rebuild_index(struct mcp *m)
{
	json_object_clear(m->index);
	for (size_t i = 0; i < m->n; i++) {
		struct mcp_server *s = &m->srv[i];
		json_t *t;
		size_t k;
		json_array_foreach(s->tools, k, t) {
			const char *tn = json_string_value(json_object_get(t, "name"));
			char plain[160], prefixed[200];
			snprintf(plain, sizeof(plain), "%s", tn);
			for (char *p = plain; *p; p++)	/* model APIs allow no dots */
				if (*p == '.')
					*p = '_';
			snprintf(prefixed, sizeof(prefixed), "%s__%s", s->name, plain);
			const char *use = name_free(m, plain) ? plain :
			    name_free(m, prefixed) ? prefixed : NULL;
			if (use == NULL) {
				log_warn("mcp %s: tool %s clashes with another tool even as %s "
				    "(or is too long); not offered", s->name, tn, prefixed);
				continue;
			}
			json_object_set_new(m->index, use, json_pack("{s:I, s:s}", "server",
			    (json_int_t)i, "tool", tn));
		}
	}
}

/* ---- the interface ------------------------------------------------------------ */

/* A server from its mcp_tools entry, as the loader normalized it
 * (conf/config.h): every key there and checked, timeouts defaulted. */
static int
server_init(struct mcp *m, struct mcp_server *s, const json_t *def, size_t i,
    char *err, size_t errlen)
{
	const char *name = json_string_value(json_object_get(def, "name"));
	const char *tt = json_string_value(json_object_get(def, "transport_type"));

	s->m = m;
	s->in = s->out = s->errfd = s->pidfd = -1;
	s->pid = -1;
	buf_init(&s->rb);
	buf_init(&s->eb);
	buf_init(&s->wq);
	s->tools = json_array();
	if (name == NULL || tt == NULL) {
		snprintf(err, errlen, "mcp_tools[%zu] has no name or transport_type", i);
		return -1;
	}
	s->name = xstrdup(name);
	s->def = json_incref((json_t *)def);
	s->transport = !strcmp(tt, "stdio") ? MCP_STDIO : !strcmp(tt, "sse") ? MCP_SSE : MCP_HTTP;
	s->timeout_ms = json_integer_value(json_object_get(def, "timeout_ms"));
	s->init_timeout_ms = json_integer_value(json_object_get(def, "init_timeout_ms"));
	return 0;
}

struct mcp *
mcp_new(const json_t *servers, const struct mcp_hooks *hooks, char *err, size_t errlen)
{
	struct mcp *m = xcalloc(1, sizeof(*m));
	const json_t *def;
	size_t i;

	m->h = *hooks;
	m->index = json_object();
	if (servers && !json_is_null(servers) && !json_is_array(servers)) {
		snprintf(err, errlen, "mcp_tools must be a list");
		mcp_free(m);
		return NULL;
	}
	m->srv = xcalloc(json_array_size(servers) + 1, sizeof(*m->srv));
	json_array_foreach(servers, i, def) {
		m->n = i + 1;
		if (server_init(m, &m->srv[i], def, i, err, errlen) < 0) {
			mcp_free(m);
			return NULL;
		}
	}
	return m;
}

void
mcp_free(struct mcp *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++) {
		struct mcp_server *s = &m->srv[i];
		if (s->transport == MCP_STDIO)
			stdio_stop(s, NULL, 0);
		else
			mcp_http_close(s);
		buf_free(&s->rb);
		buf_free(&s->eb);
		buf_free(&s->wq);
		json_decref(s->tools);
		json_decref(s->last_status);
		json_decref(s->reply);
		json_decref(s->def);
		free(s->name);
	}
	free(m->srv);
	json_decref(m->index);
	free(m);
}

/* When list_changed may be acted on: at once the first time, then at most
 * every MCP_RELIST_MIN_MS (a server may repeat it without end); -1:
 * nothing to re-list. */
static int64_t
relist_due(const struct mcp_server *s)
{
	return s->state == MCP_CONNECTED && s->relist ? s->relisted_at + MCP_RELIST_MIN_MS : -1;
}

void
mcp_connect_due(struct mcp *m)
{
	char err[512];
	for (size_t i = 0; i < m->n; i++) {
		struct mcp_server *s = &m->srv[i];
		int64_t relist = relist_due(s);
		if (s->state == MCP_DOWN && mono_ms() >= s->due)
			(void)server_connect(s);
		else if (relist >= 0 && mono_ms() >= relist) {
			log_info("mcp %s: its tools changed; listing them again", s->name);
			s->relisted_at = mono_ms();
			int rc = list_tools(s, err, sizeof(err));
			if (rc == 0)
				notify_status(s);
			else if (rc != MCP_E_CANCELLED)
				server_down(s, "tools/list after list_changed: %s", err);
		}
	}
}

int64_t
mcp_next_due_ms(const struct mcp *m)
{
	int64_t best = -1, now = mono_ms();
	for (size_t i = 0; m && i < m->n; i++) {
		const struct mcp_server *s = &m->srv[i];
		int64_t relist = relist_due(s);
		int64_t d = s->state == MCP_DOWN ? s->due - now :
		    relist >= 0 ? relist - now : -1;
		if (d < 0 && (s->state == MCP_DOWN || relist >= 0))
			d = 0;
		if (d >= 0 && (best < 0 || d < best))
			best = d;
	}
	return best;
}

size_t
mcp_pollfds(const struct mcp *m, struct pollfd *fds, size_t max)
{
	size_t k = 0;
	for (size_t i = 0; m && i < m->n && k + MCP_POLLFDS_PER_SERVER <= max; i++) {
		const struct mcp_server *s = &m->srv[i];
		if (s->transport != MCP_STDIO || s->pid <= 0)
			continue;
		fds[k++] = (struct pollfd){ s->out, POLLIN, 0 };
		if (s->errfd >= 0)
			fds[k++] = (struct pollfd){ s->errfd, POLLIN, 0 };
		if (s->pidfd >= 0)
			fds[k++] = (struct pollfd){ s->pidfd, POLLIN, 0 };
		if (buf_pending(&s->wq) > 0)
			fds[k++] = (struct pollfd){ s->in, POLLOUT, 0 };
	}
	return k;
}

void
mcp_on_io(struct mcp *m)
{
	for (size_t i = 0; m && i < m->n; i++) {
		struct mcp_server *s = &m->srv[i];
		if (s->transport != MCP_STDIO || s->pid <= 0)
			continue;
		/* All are non-blocking: a side with nothing to say reads EAGAIN,
		 * a full pipe takes nothing. */
		flush_queue(s);
		if (s->pid > 0 && s->errfd >= 0)
			stderr_ready(s);
		if (s->pid > 0)
			stdout_ready(s);
		if (s->pid > 0)
			check_process(s);
	}
}

json_t *
mcp_offered_tools(struct mcp *m)
{
	json_t *arr = json_array(), *v;
	const char *k;
	json_object_foreach(m->index, k, v) {
		struct mcp_server *s = &m->srv[json_integer_value(json_object_get(v, "server"))];
		const char *tn = json_string_value(json_object_get(v, "tool"));
		json_t *t;
		size_t i;
		json_array_foreach(s->tools, i, t)
			if (strcmp(json_string_value(json_object_get(t, "name")), tn) == 0)
				json_array_append_new(arr, json_pack("{s:s, s:O, s:O}", "name", k,
				    "description", json_object_get(t, "description"),
				    "input_schema", json_object_get(t, "inputSchema")));
	}
	return arr;
}

bool
mcp_has_tool(const struct mcp *m, const char *name)
{
	return m && name && json_object_get(m->index, name) != NULL;
}

json_t *
mcp_tool_names(const struct mcp *m)
{
	json_t *a = json_array(), *v;
	const char *k;
	if (m)
		json_object_foreach(m->index, k, v)
			json_array_append_new(a, json_string(k));
	return a;
}

json_t *
mcp_status(const struct mcp *m)
{
	json_t *o = json_object();
	for (size_t i = 0; m && i < m->n; i++)
		json_object_set_new(o, m->srv[i].name, server_status(&m->srv[i]));
	return o;
}

const json_t *
mcp_server_tools(const struct mcp *m, size_t i)
{
	return i < m->n ? m->srv[i].tools : NULL;
}

/* ---- calls ---------------------------------------------------------------------- */

static void
describe_block(struct buf *b, const json_t *c)
{
	const char *type = json_string_value(json_object_get(c, "type"));
	char tmp[600];
	int n = 0;

	if (type && strcmp(type, "text") == 0) {	/* all of it: a NUL ends nothing */
		const json_t *t = json_object_get(c, "text");
		buf_append(b, json_string_value(t) ?: "", json_string_length(t));
		return;
	}
	if (type && (strcmp(type, "image") == 0 || strcmp(type, "audio") == 0))
		n = snprintf(tmp, sizeof(tmp), "[%s %s, %zu bytes of base64]", type,
		    json_string_value(json_object_get(c, "mimeType")) ?: "?",
		    json_string_length(json_object_get(c, "data")));
	else if (type && strcmp(type, "resource_link") == 0)
		n = snprintf(tmp, sizeof(tmp), "[resource_link %s: %s]",
		    json_string_value(json_object_get(c, "name")) ?: "",
		    json_string_value(json_object_get(c, "uri")) ?: "");
	else if (type && strcmp(type, "resource") == 0) {
		const json_t *r = json_object_get(c, "resource");
		const json_t *t = json_object_get(r, "text");
		if (json_is_string(t)) {
			buf_append(b, json_string_value(t), json_string_length(t));
			return;
		}
		n = snprintf(tmp, sizeof(tmp), "[resource %s, %zu bytes of base64]",
		    json_string_value(json_object_get(r, "uri")) ?: "",
		    json_string_length(json_object_get(r, "blob")));
	} else
		n = snprintf(tmp, sizeof(tmp), "[%s content]", type ? type : "untyped");
	buf_append(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* The text of a result's content blocks, one per line (a JSON string:
 * it is valid UTF-8, and may hold NULs). */
static json_t *
content_text(const json_t *content)
{
	struct buf b;
	const json_t *c;
	size_t i;
	buf_init(&b);
	json_array_foreach(content, i, c) {
		if (i)
			buf_append(&b, "\n", 1);
		describe_block(&b, c);
	}
	/* lossy: a description cut at its buffer may end inside a character */
	json_t *text = json_stringn_lossy((const char *)buf_head(&b), buf_pending(&b));
	buf_free(&b);
	return text;
}

/* After a timeout: does the server still answer at all? */
static void
check_alive(struct mcp_server *s)
{
	char err[256];
	json_t *res;
	int rc = request(s, "ping", NULL, MCP_PING_TIMEOUT_MS, false, &res, err, sizeof(err));
	json_decref(res);
	if (rc == MCP_E_TIMEOUT)
		server_down(s, "it stopped answering (a call timed out, then a ping did)");
}

static json_t *
call_params(const char *tool, const json_t *args)
{
	json_t *a = json_is_object(args) ? json_deep_copy(args) : json_object();
	return json_pack("{s:s, s:o}", "name", tool, "arguments", a);
}

int
mcp_call(struct mcp *m, const char *name, const json_t *args, json_t **out,
    char *err, size_t errlen, bool *retryable)
{
	json_t *ent = json_object_get(m->index, name);

	*out = NULL;
	*retryable = false;
	if (ent == NULL) {
		snprintf(err, errlen, "no MCP tool %s", name);
		return -1;
	}
	/* A reconnect rebuilds the index: the name must not live in it. */
	char *tool = xstrdup(json_string_value(json_object_get(ent, "tool")));
	int rc = mcp_call_server(m, (size_t)json_integer_value(json_object_get(ent, "server")),
	    tool, args, out, err, errlen, retryable);
	free(tool);
	return rc;
}

int
mcp_call_server(struct mcp *m, size_t idx, const char *tool, const json_t *args,
    json_t **out, char *err, size_t errlen, bool *retryable)
{
	struct mcp_server *s = &m->srv[idx];
	json_t *res;
	int rc;

	*out = NULL;
	*retryable = false;
	if (s->state == MCP_DOWN && mono_ms() >= s->due)
		(void)server_connect(s);
	if (s->state != MCP_CONNECTED) {
		int64_t in = s->due - mono_ms();
		snprintf(err, errlen, "MCP server %s is not connected (%s); next attempt in %lld s",
		    s->name, s->error[0] ? s->error : "connecting", (long long)(in > 0 ? (in + 999) / 1000 : 0));
		*retryable = true;
		return -1;
	}
	rc = request(s, "tools/call", call_params(tool, args), s->timeout_ms, true, &res,
	    err, errlen);
	if (rc == MCP_E_SESSION) {	/* HTTP session gone: once more, anew */
		server_down(s, "its HTTP session ended (%s)", err);
		s->failures = 0;
		s->due = mono_ms();
		if (server_connect(s) == 0)
			rc = request(s, "tools/call", call_params(tool, args), s->timeout_ms,
			    true, &res, err, errlen);
	}
	if (rc == MCP_E_TIMEOUT)
		check_alive(s);
	if (rc < 0) {
		*retryable = rc == MCP_E_DOWN || rc == MCP_E_TIMEOUT;
		if (rc == MCP_E_DOWN && s->state != MCP_DOWN)
			server_down(s, "%s", err);
		return -1;
	}
	json_t *text = content_text(json_object_get(res, "content"));
	if (json_is_true(json_object_get(res, "isError"))) {
		const char *t = json_string_length(text) ? json_string_value(text) :
		    "the tool failed (no message)";
		snprintf(err, errlen, "%.*s", (int)utf8_cut(t, strlen(t), errlen - 1), t);
		json_decref(text);
		json_decref(res);
		return -1;
	}
	*out = json_pack("{s:o}", "text", text);
	if (json_object_get(res, "structuredContent"))
		json_object_set(*out, "structuredContent", json_object_get(res, "structuredContent"));
	json_decref(res);
	return 0;
}

/* ---- the probe ---------------------------------------------------------------- */

struct mcp *
mcp_probe_new(const char *url, bool legacy_sse, char *const argv[], int64_t timeout_ms,
    char *err, size_t errlen)
{
	struct mcp_hooks none = { .agentd_fd = -1 };
	/* the entry as the config loader would have made it */
	json_t *def = json_pack("{s:s, s:I, s:I, s:{}, s:{}}", "name", "probe", "timeout_ms",
	    (json_int_t)(timeout_ms > 0 ? timeout_ms : 1), "init_timeout_ms",
	    (json_int_t)(timeout_ms > 0 ? timeout_ms : 1), "env", "headers");
	if (url) {
		json_object_set_new(def, "transport_type", json_string(legacy_sse ? "sse" :
		    "streamable_http"));
		json_object_set_new(def, "url", json_string(url));
	} else {
		json_t *args = json_array();
		for (size_t i = 1; argv[0] && argv[i]; i++)
			json_array_append_new(args, json_string(argv[i]));
		json_object_set_new(def, "transport_type", json_string("stdio"));
		json_object_set_new(def, "command", json_string(argv[0] ? argv[0] : ""));
		json_object_set_new(def, "args", args);
	}
	json_t *list = json_pack("[o]", def);
	struct mcp *m = mcp_new(list, &none, err, errlen);
	json_decref(list);
	if (m && server_connect(&m->srv[0]) < 0) {
		snprintf(err, errlen, "%s", m->srv[0].error);
		mcp_free(m);
		return NULL;
	}
	return m;
}
