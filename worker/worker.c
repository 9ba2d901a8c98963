/*
 * worker: the protocol loop of agentd-worker (see worker.h for the
 * exchange and the rules it follows).
 *
 * One thread and one blocking descriptor.  Reading is done only through
 * pump(), which polls, reads once and handles every complete message;
 * handling never runs a task, it only records what was asked (a run to
 * start, a cancel, a shutdown, a memory reply).  The loop starts the
 * recorded run, and code inside a run calls pump() at its stopping points
 * (worker_cancelled, the memory-reply wait).  So messages are handled the
 * same way whether the worker is idle or busy, and nothing recurses.
 *
 * Writes block: a frame is small and agentd always reads its pipes, and a
 * worker whose agentd stopped reading has nothing better to do.  What
 * agentd would refuse (and kill us for) is never written: a frame over its
 * limit, a value over the bounds of common/limits.h (msg_check_bounds).
 * So a result too large or too deep becomes an error result saying so, an
 * event's oversize fields are sent as cut text, memory content is cut.
 *
 * The secrets in the config live only in the decoded config; the frame
 * bytes they arrived in are wiped once decoded, and the strings are wiped
 * when the worker ends.  Nothing here ever logs them.  They also make the
 * worker's redaction set (common/redact.h): every string of `secrets` (the
 * API key) and every item of `secrets.redact` (the agent's header values,
 * its secret env values: agentd decides what is secret).  Everything the
 * worker sends out goes through it -- events (worker_emit), memory
 * (worker_mem_store), results (send_result) and every log line -- as a
 * copy: the values a tool or the model works with are never touched.  Text
 * that is cut to a bound (a tool's output in an event, an event's field,
 * a memory item's content) is redacted before the cut, so a secret is
 * never split by it.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bsd/unistd.h>
#include "common/buf.h"
#include "common/jsonmp.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/redact.h"
#include "common/util.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "worker/cmdtool.h"
#include "worker/mcp.h"
#include "worker/test_hooks.h"
#include "worker/tools.h"
#include "worker/worker.h"

#define MEM_QUERY_TIMEOUT_MS 30000
#define OUT_BUF_KEEP (256u << 10)   /* larger send buffers are freed after use */
#define MCP_SERVERS_POLLED 32       /* servers whose output an idle worker reads */

struct worker {
	int fd;
	char *name;
	bool configured;
	json_t *spec;
	json_t *secrets;
	char *key_error;        /* agentd has no model key for us: why */
	struct redact *redact;  /* the secrets, for everything that leaves */
	char *state_dir;        /* "." : the worker's cwd is its directory */
	char *state_path;       /* the same, as agentd named it (for messages) */
	json_t *allowed;        /* NULL: every built-in; else {name: true} */
	struct mcp *mcp;        /* the agent's MCP servers */
	json_t *staged;         /* tools' state held back (worker_stage_state) */

	struct frame_reader rd;
	struct buf out;

	bool running;           /* a run is executing */
	int64_t run_id;         /* ... this one */
	bool cancel;            /* ... and agentd cancelled it */
	json_t *next_run;       /* a run message to start once handling is done */

	int64_t last_req;       /* memory queries */
	int64_t wait_req;
	json_t *reply;

	bool quit;              /* leave the loop with exit_code */
	bool gone;              /* agentd cannot be written to any more */
	int exit_code;
};

static bool use_proctitle;

void
worker_use_proctitle(void)
{
	use_proctitle = true;
}

static void
set_title(const struct worker *w, const char *state)
{
	if (use_proctitle)
		setproctitle("-agentd-worker: %s %s", w->name, state);
}

static void
quit(struct worker *w, int code)
{
	if (!w->quit) {
		w->quit = true;
		w->exit_code = code;
	}
}

/* ---- sending -------------------------------------------------------------- */

/* 0; -1 with errno EMSGSIZE (too large, nothing sent) or the write error. */
static int
send_msg(struct worker *w, enum msg_type t, const json_t *fields)
{
	size_t len;

	if (w->gone) {
		errno = EPIPE;
		return -1;
	}
	char why[200];
	if (msg_check_bounds(t, fields, why, sizeof(why)) < 0) {
		log_error("%s message not sent: %s", msg_type_name(t), why);
		errno = EMSGSIZE;
		return -1;
	}
	buf_reset(&w->out);
	if (msg_pack(t, fields, &w->out) < 0) {
		log_error("cannot encode a %s message", msg_type_name(t));
		errno = EINVAL;
		return -1;
	}
	len = buf_pending(&w->out);
	if (len - FRAME_HDR > FRAME_MAX_DEFAULT) {
		log_error("%s message of %zu bytes is over the frame limit; not sent",
		    msg_type_name(t), len);
		buf_reset(&w->out);
		errno = EMSGSIZE;
		return -1;
	}
	if (write_all(w->fd, buf_head(&w->out), len) < 0) {
		log_info("cannot write to agentd (%s): it is gone; exiting",
		    strerror(errno));
		w->gone = true;
		quit(w, WORKER_EXIT_OK);
		return -1;
	}
	buf_reset(&w->out);
	if (w->out.cap > OUT_BUF_KEEP) {
		buf_free(&w->out);
		buf_init(&w->out);
	}
	return 0;
}

/* A JSON value as compact text, redacted, cut at max bytes with a marker. */
static json_t *
compact_text(const struct worker *w, json_t *v, size_t max)
{
	json_t *shown = redact_json(w->redact, v);
	char *s = json_dumps(shown, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(12));
	json_t *j;

	json_decref(shown);
	if (s == NULL)
		return json_string("");
	size_t n = strlen(s), keep = utf8_cut(s, n, max);
	if (keep == n) {
		j = json_stringn(s, n);
	} else {
		char tail[64];
		int tn = snprintf(tail, sizeof(tail), "...[truncated %zu bytes]", n - keep);
		char *t = xmalloc(keep + (size_t)tn + 1);
		memcpy(t, s, keep);
		memcpy(t + keep, tail, (size_t)tn + 1);
		j = json_stringn(t, keep + (size_t)tn);
		free(t);
	}
	free(s);
	return j ? j : json_string("");
}

/* An event over the bounds: each field too deep or too large goes as its
 * compact text, cut; if that is not enough, what was wrong goes instead. */
static void
fit_event(const struct worker *w, json_t *m)
{
	json_t *payload = json_object_get(m, "payload"), *v;
	const char *k;
	char why[200];

	if (msg_check_bounds(MSG_EVENT, m, why, sizeof(why)) == 0)
		return;
	log_limited(LL_WARN, "%s: event cut to fit: %s", json_string_value(json_object_get(m, "type")),
	    why);
	json_object_foreach(payload, k, v)
		if (json_depth(v, VALUE_DEPTH_MAX - 1) > VALUE_DEPTH_MAX - 1 ||
		    json_compact_size(v) > WORKER_EVENT_OUTPUT_MAX)
			json_object_set_new(payload, k, compact_text(w, v, WORKER_EVENT_OUTPUT_MAX));
	if (msg_check_bounds(MSG_EVENT, m, why, sizeof(why)) < 0)
		json_object_set_new(m, "payload", json_pack("{s:s}", "payload_dropped", why));
}

int
worker_emit(struct worker *w, const char *type, json_t *payload)
{
	json_t *shown = payload ? redact_json(w->redact, payload) : json_object();
	json_decref(payload);
	json_t *m = json_pack("{s:s, s:o}", "type", type, "payload", shown);
	if (m == NULL)
		return -1;
	if (w->running)
		json_object_set_new(m, "run_id", json_integer(w->run_id));
	fit_event(w, m);
	int rc = send_msg(w, MSG_EVENT, m);
	json_decref(m);
	return rc;
}

int
worker_mem_store(struct worker *w, const char *memory_type, const char *role,
    const char *content, const json_t *metadata)
{
	size_t len = strlen(content);
	char *clean = redact_text(w->redact, content, len, &len), *cut = NULL;
	if (clean)	/* before the cut, which could split a secret */
		content = clean;
	if (len > MEMORY_CONTENT_MAX) {	/* cut where a character ends, and say so */
		size_t keep = utf8_cut(content, len, MEMORY_CONTENT_MAX - 64);
		if (asprintf(&cut, "%.*s...[truncated %zu bytes]", (int)keep, content, len - keep) < 0)
			cut = NULL;
	}
	json_t *m = json_pack("{s:s, s:s, s:s}", "memory_type", memory_type,
	    "role", role, "content", cut ? cut : content);
	free(cut);
	free(clean);
	if (m == NULL)
		return -1;
	if (json_is_object(metadata))
		json_object_set(m, "metadata", (json_t *)metadata);
	json_t *shown = redact_json(w->redact, m);
	json_decref(m);
	m = shown;
	int rc = send_msg(w, MSG_MEM_STORE, m);
	json_decref(m);
	return rc;
}

static void
send_result(struct worker *w, int64_t run_id, bool ok, json_t *result,
    json_t *usage, const char *error, bool retryable, int64_t retry_after_ms,
    bool cancelled)
{
	json_t *m = json_pack("{s:I, s:b}", "run_id", (json_int_t)run_id, "ok", ok);

	if (ok)
		json_object_set(m, "result", result ? result : json_null());
	else {
		json_object_set_new(m, "error", json_string(error ? error : "run failed"));
		json_object_set_new(m, "retryable", json_boolean(retryable));
		if (retry_after_ms >= 0)
			json_object_set_new(m, "retry_after_ms", json_integer(retry_after_ms));
		if (cancelled)
			json_object_set_new(m, "cancelled", json_true());
	}
	if (json_is_object(usage))
		json_object_set(m, "usage", usage);
	json_t *shown = redact_json(w->redact, m);
	json_decref(m);
	m = shown;
	char why[200], text[256];
	if (msg_check_bounds(MSG_RESULT, m, why, sizeof(why)) < 0) {
		snprintf(text, sizeof(text), "the run's result cannot be sent: %s", why);
		json_decref(m);
		m = json_pack("{s:I, s:b, s:s, s:b}", "run_id", (json_int_t)run_id,
		    "ok", 0, "error", text, "retryable", 0);
	}
	(void)send_msg(w, MSG_RESULT, m);
	json_decref(m);
}

static void
send_cancelled(struct worker *w, int64_t run_id)
{
	send_result(w, run_id, false, NULL, NULL, "cancelled", false, -1, true);
}

/* ---- configuration -------------------------------------------------------- */

/* local_tools: absent means every built-in; else the names it lists (the
 * loader made each item a name or a command tool with one). */
static int
parse_local_tools(struct worker *w, char *err, size_t errlen)
{
	json_t *lt = json_object_get(w->spec, "local_tools"), *v;
	size_t i;

	if (lt == NULL)
		return 0;
	if (!json_is_array(lt)) {
		snprintf(err, errlen, "local_tools must be a list");
		return -1;
	}
	w->allowed = json_object();
	json_array_foreach(lt, i, v) {
		const char *name = json_is_string(v) ? json_string_value(v) :
		    json_string_value(json_object_get(v, "name"));
		if (name == NULL) {
			snprintf(err, errlen, "local_tools[%zu] has no name", i);
			return -1;
		}
		json_object_set_new(w->allowed, name, json_true());
		if (!tool_find(name) && !test_hook_is_tool(name) && !cmdtool_find(w->spec, name))
			log_warn("local_tools: \"%s\" is not a tool this worker has; "
			    "ignored", name);
	}
	return 0;
}

bool
worker_tool_allowed(const struct worker *w, const char *name)
{
	if (mcp_has_tool(w->mcp, name))	/* its server is in the agent's config */
		return true;
	if (!tool_find(name) && !test_hook_is_tool(name) && !cmdtool_find(w->spec, name))
		return false;
	return w->allowed == NULL || json_object_get(w->allowed, name) != NULL;
}

static void
add_cmd_name(const json_t *def, void *arr)
{
	json_array_append(arr, json_object_get(def, "name"));
}

static json_t *
tool_names(const struct worker *w)
{
	json_t *a = json_array();

	cmdtool_each(w->spec, add_cmd_name, a);

	for (const struct tool *t = builtin_tools; t->name; t++)
		if (worker_tool_allowed(w, t->name))
			json_array_append_new(a, json_string(t->name));
	if (test_hooks_enabled())
		for (size_t i = 0; test_hook_tools[i]; i++)
			if (worker_tool_allowed(w, test_hook_tools[i]))
				json_array_append_new(a, json_string(test_hook_tools[i]));
	json_t *mcp = mcp_tool_names(w->mcp);
	json_array_extend(a, mcp);
	json_decref(mcp);
	return a;
}

/* ---- MCP ------------------------------------------------------------------ */

/* agent_config.tool_call_timeout; 0 when unset. */
static int64_t
tool_call_timeout(const json_t *spec)
{
	return json_integer_value(json_object_get(json_object_get(spec, "agent_config"),
	    "tool_call_timeout_ms"));
}

static bool tool_ctx_interrupted(void *arg);

static bool
local_name_taken(const char *name, void *arg)
{
	struct worker *w = arg;
	return tool_find(name) || test_hook_is_tool(name) || cmdtool_find(w->spec, name);
}

/* A server came up, went down, or changed its tools: agentd keeps the
 * latest of these for `agentctl status`. */
static void
mcp_status_changed(json_t *payload, void *arg)
{
	worker_emit(arg, "mcp_server_status", payload);
}

static int
start_mcp(struct worker *w, char *err, size_t errlen)
{
	struct mcp_hooks h = {
		.interrupted = tool_ctx_interrupted, .arg = w, .agentd_fd = w->fd,
		.name_taken = local_name_taken, .on_status = mcp_status_changed,
	};
	w->mcp = mcp_new(json_object_get(w->spec, "mcp_tools"), &h, err, errlen);
	return w->mcp ? 0 : -1;
}

json_t *
worker_mcp_tools(struct worker *w)
{
	mcp_connect_due(w->mcp);
	return mcp_offered_tools(w->mcp);
}

/* What agentd sent as secret is what the worker redacts (shorter values
 * than REDACT_MIN are agentd's to warn about). */
static void
learn_secrets(struct worker *w)
{
	const char *k;
	json_t *v, *item;
	size_t i;

	w->redact = redact_new();
	json_object_foreach(w->secrets, k, v)
		(void)redact_add(w->redact, json_string_value(v));
	json_array_foreach(json_object_get(w->secrets, "redact"), i, item)
		(void)redact_add(w->redact, json_string_value(item));
	log_set_redact(w->redact);
}

static int
configure(struct worker *w, json_t *m)
{
	const char *name = json_string_value(json_object_get(m, "name"));
	json_t *secrets = json_object_get(m, "secrets");
	const char *dir = json_string_value(json_object_get(m, "state_dir"));
	char err[256];

	if (strcmp(name, w->name) != 0) {
		log_error("config is for agent \"%s\", but this worker is \"%s\"",
		    name, w->name);
		return -1;
	}
	w->spec = json_incref(json_object_get(m, "agent"));
	w->secrets = secrets ? json_incref(secrets) : json_object();
	if (json_object_get(m, "api_key_error"))
		w->key_error = xstrdup(json_string_value(json_object_get(m, "api_key_error")));
	learn_secrets(w);
	/* agentd starts the worker in its directory, before dropping to the
	 * agent's user: "." reaches it whatever the path's parents allow (the
	 * state_dir is 0700, so the absolute path may not be traversable as
	 * the agent's user).  The path is for messages only. */
	w->state_dir = xstrdup(".");
	w->state_path = xstrdup(dir && *dir ? dir : ".");
	if (json_is_true(json_object_get(w->spec, "debug")))
		log_set_level(LL_DEBUG);
	if (parse_local_tools(w, err, sizeof(err)) < 0 || start_mcp(w, err, sizeof(err)) < 0) {
		log_error("bad agent config: %s", err);
		return -1;
	}
	w->configured = true;

	json_t *tools = tool_names(w);
	json_t *ready = json_pack("{s:O, s:I}", "tools", tools,
	    "pid", (json_int_t)getpid());
	char *list = json_dumps(tools, JSON_COMPACT);
	log_debug("configured; tools %s; state in %s", list, w->state_path);
	free(list);
	json_decref(tools);
	send_msg(w, MSG_READY, ready);
	json_decref(ready);
	set_title(w, "idle");
	return 0;
}

/* ---- receiving ------------------------------------------------------------ */

static void
on_run(struct worker *w, json_t *m)
{
	int64_t id = json_integer_value(json_object_get(m, "run_id"));
	char why[128];

	if (w->running || w->next_run) {
		int64_t busy = w->running ? w->run_id :
		    json_integer_value(json_object_get(w->next_run, "run_id"));
		log_warn("run %lld refused: run %lld is in progress",
		    (long long)id, (long long)busy);
		snprintf(why, sizeof(why), "worker is busy with run %lld", (long long)busy);
		send_result(w, id, false, NULL, NULL, why, true, -1, false);
		return;
	}
	json_t *ack = json_pack("{s:I}", "run_id", (json_int_t)id);
	send_msg(w, MSG_RUN_ACK, ack);
	json_decref(ack);
	w->next_run = json_incref(m);
}

static void
on_cancel(struct worker *w, json_t *m)
{
	int64_t id = json_integer_value(json_object_get(m, "run_id"));
	const char *reason = json_string_value(json_object_get(m, "reason"));

	if (w->running && w->run_id == id) {
		log_info("run %lld cancelled%s%s", (long long)id,
		    reason ? ": " : "", reason ? reason : "");
		w->cancel = true;
	} else if (w->next_run &&
	    json_integer_value(json_object_get(w->next_run, "run_id")) == id) {
		log_info("run %lld cancelled before it started", (long long)id);
		json_decref(w->next_run);
		w->next_run = NULL;
		send_cancelled(w, id);
	} else
		log_debug("cancel for run %lld, which is not running: ignored",
		    (long long)id);
}

static void
on_mem_reply(struct worker *w, json_t *m)
{
	int64_t id = json_integer_value(json_object_get(m, "req_id"));

	if (w->wait_req != 0 && id == w->wait_req && w->reply == NULL) {
		w->reply = json_incref(m);
		return;
	}
	log_info("mem_reply for request %lld, which nobody is waiting for: ignored",
	    (long long)id);
}

static void
handle(struct worker *w, enum msg_type t, json_t *m)
{
	if (!w->configured) {
		if (t != MSG_CONFIG) {
			log_error("agentd's first message is %s, not config",
			    msg_type_name(t));
			quit(w, WORKER_EXIT_STARTUP);
		} else if (configure(w, m) < 0)
			quit(w, WORKER_EXIT_STARTUP);
		return;
	}
	switch (t) {
	case MSG_RUN:
		on_run(w, m);
		break;
	case MSG_CANCEL:
		on_cancel(w, m);
		break;
	case MSG_SHUTDOWN:
		log_debug("shutdown requested");
		quit(w, WORKER_EXIT_OK);
		break;
	case MSG_MEM_REPLY:
		on_mem_reply(w, m);
		break;
	default:
		log_error("unexpected %s message from agentd: protocol error",
		    msg_type_name(t));
		quit(w, WORKER_EXIT_PROTOCOL);
		break;
	}
}

/* Handle every complete frame in the reader. */
static void
drain(struct worker *w)
{
	const uint8_t *p;
	size_t len;
	const char *ferr;
	char err[256];
	enum msg_type t;
	json_t *m;
	int rc;

	while (!w->quit && (rc = frame_reader_next(&w->rd, &p, &len, &ferr)) != 0) {
		if (rc < 0) {
			log_error("bad frame from agentd: %s", ferr);
			quit(w, WORKER_EXIT_PROTOCOL);
			return;
		}
		if (msg_unpack(p, len, &t, &m, err, sizeof(err)) < 0) {
			log_error("undecodable message from agentd: %s", err);
			quit(w, WORKER_EXIT_PROTOCOL);
			return;
		}
		if (t == MSG_CONFIG)	/* the secrets' bytes: keep only the decoded copy */
			explicit_bzero((void *)p, len);
		handle(w, t, m);
		json_decref(m);
	}
}

/* Wait up to timeout_ms (-1: forever) for bytes from agentd, then handle
 * every message they complete. */
static void
pump(struct worker *w, int timeout_ms)
{
	struct pollfd pfd[1 + MCP_POLLFDS_PER_SERVER * MCP_SERVERS_POLLED] = {
		{ .fd = w->fd, .events = POLLIN } };
	size_t nfds = 1;
	int n;

	if (w->quit)
		return;
	if (timeout_ms != 0)	/* a wait: the servers' output is read meanwhile */
		nfds += mcp_pollfds(w->mcp, pfd + 1, MCP_POLLFDS_PER_SERVER * MCP_SERVERS_POLLED);
	n = poll(pfd, nfds, timeout_ms);
	if (n < 0) {
		if (errno != EINTR) {
			log_error("poll: %s", strerror(errno));
			quit(w, WORKER_EXIT_PROTOCOL);
		}
		return;
	}
	for (size_t i = 1; i < nfds; i++)
		if (pfd[i].revents) {
			mcp_on_io(w->mcp);
			break;
		}
	if (pfd[0].revents == 0)
		return;
	ssize_t r = frame_reader_fill(&w->rd, w->fd);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
		if (r < 0)
			log_info("read from agentd: %s; exiting", strerror(errno));
		else
			log_debug("agentd closed the pipe; exiting");
		w->gone = true;
		quit(w, w->configured ? WORKER_EXIT_OK : WORKER_EXIT_STARTUP);
		return;
	}
	drain(w);
}

bool
worker_cancelled(struct worker *w)
{
	pump(w, 0);
	return w->cancel || w->quit;
}

static bool
tool_ctx_interrupted(void *arg)
{
	return worker_cancelled(arg);
}

/* ---- memory queries ------------------------------------------------------- */

/* Send a memory question (m, taken, gets its req_id) and wait for its
 * mem_reply while still honouring a cancel: the reply, or NULL with err. */
static json_t *
mem_ask(struct worker *w, enum msg_type t, json_t *m, char *err, size_t errlen)
{
	int64_t deadline = mono_ms() + MEM_QUERY_TIMEOUT_MS;
	const char *what = t == MSG_MEM_RECALL ? "recall" : "memory query";
	json_t *reply;

	json_object_set_new(m, "req_id", json_integer((json_int_t)++w->last_req));
	int rc = send_msg(w, t, m);
	json_decref(m);
	if (rc < 0) {
		snprintf(err, errlen, "%s: cannot send it", what);
		return NULL;
	}
	w->wait_req = w->last_req;
	while (w->reply == NULL && !w->quit && !w->cancel) {
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			break;
		pump(w, (int)left);
	}
	w->wait_req = 0;
	reply = w->reply;
	w->reply = NULL;
	if (reply == NULL) {
		snprintf(err, errlen, "%s: %s", what, w->quit || w->cancel ? "cancelled" :
		    "no reply from agentd in time");
		return NULL;
	}
	const char *e = json_string_value(json_object_get(reply, "error"));
	if (e) {
		snprintf(err, errlen, "%s: %s", what, e);
		json_decref(reply);
		return NULL;
	}
	return reply;
}

int
worker_mem_query(struct worker *w, const char *memory_type, int limit,
    const char *query, json_t **items, char *err, size_t errlen)
{
	json_t *m = json_pack("{s:s, s:i}", "memory_type", memory_type, "limit", limit);

	*items = NULL;
	if (m == NULL) {
		snprintf(err, errlen, "memory query: bad arguments");
		return -1;
	}
	if (query)
		json_object_set_new(m, "query", json_string(query));
	json_t *reply = mem_ask(w, MSG_MEM_QUERY, m, err, errlen);
	if (reply == NULL)
		return -1;
	*items = json_incref(json_object_get(reply, "items"));
	json_decref(reply);
	return 0;
}

json_t *
worker_mem_recall(struct worker *w, const char *query, int limit, const json_t *types,
    char *err, size_t errlen)
{
	size_t n = strlen(query);
	json_t *m = json_pack("{s:s%, s:i}", "query", query, utf8_cut(query, n, RECALL_QUERY_MAX),
	    "limit", limit);

	if (m == NULL) {
		snprintf(err, errlen, "recall: the query is not UTF-8");
		return NULL;
	}
	if (types)
		json_object_set_new(m, "memory_types", json_deep_copy(types));
	json_t *reply = mem_ask(w, MSG_MEM_RECALL, m, err, errlen);
	if (reply == NULL)
		return NULL;
	json_t *ans = json_pack("{s:O, s:b}", "hits", json_object_get(reply, "items"),
	    "degraded", json_is_true(json_object_get(reply, "degraded")));
	if (json_object_get(reply, "reason"))
		json_object_set(ans, "reason", json_object_get(reply, "reason"));
	json_decref(reply);
	return ans;
}

/* ---- tools ---------------------------------------------------------------- */

/* remember and recall (tool_memory.c): what the model writes is the
 * assistant's, and its agent is the one agentd says. */
static int
tool_mem_store(void *arg, const char *memory_type, const char *content, const json_t *metadata)
{
	return worker_mem_store(arg, memory_type, "assistant", content, metadata);
}

static json_t *
tool_mem_recall(void *arg, const char *query, int limit, const json_t *types, char *err,
    size_t errlen)
{
	return worker_mem_recall(arg, query, limit, types, err, errlen);
}

static const struct tool_memory tool_memory = { tool_mem_store, tool_mem_recall };

int
worker_call_tool(struct worker *w, const char *name, const json_t *args,
    json_t **out, char *err, size_t errlen, bool *retryable)
{
	const struct tool *t = tool_find(name);
	const json_t *cmd = t ? NULL : cmdtool_find(w->spec, name);
	int64_t limit = tool_call_timeout(w->spec);
	struct tool_ctx ctx = { w->state_dir, tool_ctx_interrupted, w, w->spec,
		limit > 0 ? mono_ms() + limit : 0, w->staged, &tool_memory };
	char reason[1024] = "";
	bool retry = false;
	int rc;

	*out = NULL;
	if (retryable)
		*retryable = false;
	if (name == NULL)
		name = "";
	bool is_mcp = t == NULL && cmd == NULL && mcp_has_tool(w->mcp, name);
	if (t == NULL && cmd == NULL && !is_mcp && !test_hook_is_tool(name)) {
		snprintf(err, errlen, "unknown tool %s", name);
		return -1;
	}
	if (!worker_tool_allowed(w, name)) {
		snprintf(err, errlen, "tool %s is not enabled for this agent", name);
		return -1;
	}
	json_t *noargs = args ? NULL : json_object();
	if (noargs)
		args = noargs;
	worker_emit(w, "tool_call_started", json_pack("{s:s, s:O}", "tool", name,
	    "arguments", args));
	log_debug("tool %s started", name);
	int64_t t0 = mono_ms();
	if (t)
		rc = t->run(&ctx, args, out, reason, sizeof(reason));
	else if (cmd)
		rc = cmdtool_run(cmd, &ctx, args, out, reason, sizeof(reason));
	else if (is_mcp)
		rc = mcp_call(w->mcp, name, args, out, reason, sizeof(reason), &retry);
	else
		rc = test_hook_run(name, args, w->fd, out, reason, sizeof(reason), &retry);
	json_int_t dur = (json_int_t)(mono_ms() - t0);
	json_decref(noargs);
	if (rc == 0 && *out == NULL)
		*out = json_object();
	if (rc == 0) {
		worker_emit(w, "tool_call_result", json_pack("{s:s, s:I, s:o}",
		    "tool", name, "duration_ms", dur, "output",
		    compact_text(w, *out, WORKER_EVENT_OUTPUT_MAX)));
		log_debug("tool %s done in %lld ms", name, (long long)dur);
		return 0;
	}
	json_decref(*out);
	*out = NULL;
	if (ctx.deadline > 0 && mono_ms() >= ctx.deadline && !w->cancel && !w->quit)
		snprintf(reason, sizeof(reason), "timed out after %lld ms "
		    "(agent_config.tool_call_timeout)", (long long)limit);
	const char *why = reason[0] ? reason : "failed";
	size_t room = errlen > strlen(name) + 3 ? errlen - strlen(name) - 3 : 0;
	snprintf(err, errlen, "%s: %.*s", name, (int)utf8_cut(why, strlen(why), room), why);
	worker_emit(w, "tool_call_error", json_pack("{s:s, s:I, s:s}",
	    "tool", name, "duration_ms", dur, "error", err));
	log_info("tool %s failed after %lld ms: %s", name, (long long)dur, reason);
	if (retryable)
		*retryable = retry;
	return -1;
}

void
worker_stage_state(struct worker *w, json_t *staged)
{
	w->staged = staged;
}

/* The task: the agent's task_config with the run's kwargs over it. */
static json_t *
build_task(const struct worker *w, const json_t *run)
{
	json_t *tc = json_object_get(w->spec, "task_config");
	json_t *task = json_is_object(tc) ? json_deep_copy(tc) : json_object();
	json_object_update(task, json_object_get(run, "kwargs"));
	return task;
}

/* A task naming a tool: the tool's arguments are the task's other keys,
 * with task.args over them. */
static int
run_tool_task(struct worker *w, const json_t *task, struct run_outcome *o)
{
	json_t *tj = json_object_get(task, "tool");
	json_t *aj = json_object_get(task, "args");

	if (!json_is_string(tj)) {
		snprintf(o->error, sizeof(o->error), "task_config.tool must be a "
		    "tool name");
		return -1;
	}
	if (aj && !json_is_null(aj) && !json_is_object(aj)) {
		snprintf(o->error, sizeof(o->error), "task_config.args must be "
		    "an object");
		return -1;
	}
	const char *name = json_string_value(tj);
	json_t *args = json_deep_copy(task), *out;
	json_object_del(args, "tool");
	json_object_del(args, "args");
	if (json_is_object(aj))
		json_object_update(args, aj);
	int rc = worker_call_tool(w, name, args, &out, o->error, sizeof(o->error),
	    &o->retryable);
	json_decref(args);
	if (rc < 0)
		return -1;
	o->result = out;

	json_t *text = compact_text(w, out, WORKER_MEMORY_CONTENT_MAX);
	json_t *meta = json_pack("{s:I, s:s}", "run_id", (json_int_t)w->run_id,
	    "tool", name);
	worker_mem_store(w, "episodic", "assistant", json_string_value(text), meta);
	json_decref(meta);
	json_decref(text);
	return 0;
}

static void
execute_run(struct worker *w, json_t *m)
{
	struct run_outcome o = { .retry_after_ms = -1 };
	json_t *task = build_task(w, m);
	int rc;

	w->running = true;
	w->run_id = json_integer_value(json_object_get(m, "run_id"));
	w->cancel = false;
	set_title(w, "running");
	log_debug("run %lld started (attempt %lld)", (long long)w->run_id,
	    (long long)json_integer_value(json_object_get(m, "attempt")));

	json_t *tool = json_object_get(task, "tool");
	if (tool && !json_is_null(tool))
		rc = run_tool_task(w, task, &o);
	else {
		struct worker_run wr = {
			.run_id = w->run_id,
			.attempt = (int)json_integer_value(json_object_get(m, "attempt")),
			.session_id = json_string_value(json_object_get(m, "session_id")),
			.run_count = json_integer_value(json_object_get(m, "run_count")),
			.task = task,
		};
		rc = worker_run_model(w, &wr, &o);
	}
	if (rc < 0)	/* a tool that stopped for a message: read it now */
		(void)worker_cancelled(w);

	if (!w->gone && w->exit_code != WORKER_EXIT_PROTOCOL) {
		if (rc == 0)
			send_result(w, w->run_id, true, o.result, o.usage, NULL, false,
			    -1, false);
		else if (w->cancel || w->quit)
			send_cancelled(w, w->run_id);
		else
			send_result(w, w->run_id, false, NULL, o.usage, o.error,
			    o.retryable, o.retry_after_ms, false);
	}
	log_debug("run %lld %s", (long long)w->run_id, rc == 0 ? "succeeded" :
	    w->cancel || w->quit ? "cancelled" : "failed");
	json_decref(o.result);
	json_decref(o.usage);
	json_decref(task);
	w->running = false;
	w->cancel = false;
	set_title(w, "idle");
	malloc_trim(0);	/* an idle worker gives back what the run used */
}

/* ---- life ----------------------------------------------------------------- */

struct worker *
worker_new(int fd, const char *name)
{
	struct worker *w = xcalloc(1, sizeof(*w));
	int fl;

	w->fd = fd;
	w->name = xstrdup(name);
	frame_reader_init(&w->rd, FRAME_MAX_DEFAULT);
	buf_init(&w->out);
	/* Writes block (see the top); reads only follow poll. */
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && (fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	signal(SIGPIPE, SIG_IGN);
	return w;
}

int
worker_start(struct worker *w)
{
	while (!w->configured && !w->quit)
		pump(w, -1);
	if (w->configured && !w->quit)
		return 0;
	return w->exit_code ? w->exit_code : WORKER_EXIT_STARTUP;
}

int
worker_loop(struct worker *w)
{
	while (!w->quit) {
		if (w->next_run) {
			json_t *m = w->next_run;
			w->next_run = NULL;
			execute_run(w, m);
			json_decref(m);
			continue;
		}
		mcp_connect_due(w->mcp);
		if (!w->next_run && !w->quit)
			pump(w, (int)mcp_next_due_ms(w->mcp));
	}
	return w->exit_code;
}

static void
wipe_secrets(json_t *v)
{
	const char *k;
	json_t *child;
	size_t i;

	if (json_is_string(v))
		explicit_bzero((char *)json_string_value(v), json_string_length(v));
	json_object_foreach(v, k, child)
		wipe_secrets(child);
	json_array_foreach(v, i, child)
		wipe_secrets(child);
}

void
worker_free(struct worker *w)
{
	if (w == NULL)
		return;
	wipe_secrets(w->secrets);
	json_decref(w->secrets);
	log_set_redact(NULL);
	redact_free(w->redact);
	json_decref(w->spec);
	mcp_free(w->mcp);
	json_decref(w->allowed);
	json_decref(w->next_run);
	json_decref(w->reply);
	frame_reader_free(&w->rd);
	buf_free(&w->out);
	free(w->key_error);
	free(w->state_dir);
	free(w->state_path);
	free(w->name);
	free(w);
}

int
worker_serve(int fd, const char *name)
{
	struct worker *w = worker_new(fd, name);
	int rc = worker_start(w);

	if (rc == 0)
		rc = worker_loop(w);
	worker_free(w);
	return rc;
}

const char *worker_name(const struct worker *w) { return w->name; }
const json_t *worker_spec(const struct worker *w) { return w->spec; }
const json_t *worker_secrets(const struct worker *w) { return w->secrets; }
const char *worker_api_key_error(const struct worker *w) { return w->key_error; }
const struct redact *worker_redact(const struct worker *w) { return w->redact; }
const char *worker_state_dir(const struct worker *w) { return w->state_dir; }
