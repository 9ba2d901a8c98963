/*
 * commands: the handlers of proto/cmd.h's catalogue, one per command, and
 * the checks every request passes before its handler runs, in this order:
 * the agent the command takes (none, one, or an optional one, cmd_agent),
 * the args against their rows, then that the agent is configured.  A
 * handler answers {code, error, data} and knows nothing of the transport.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/limits.h"
#include "common/util.h"
#include "proto/msg.h"
#include "supervisor/commands.h"
#include "supervisor/relay.h"
#include "supervisor/sup.h"

struct cmd_call {
	struct sup *sup;
	struct agent *a;          /* the agent named, when the command takes one */
	const char *agent;        /* its name as given (CA_FILTER: maybe no agent's) */
	json_t *args;
	struct cmd_later *later;  /* the transport can wait for an answer (or NULL) */
};

static void
answer(struct cmd_result *r, json_t *data)
{
	r->code = RESP_OK;
	r->data = data;
}

static void
vrefuse(struct cmd_result *r, int code, const char *fmt, va_list ap)
{
	char why[512];
	utf8_vsnprintf(why, sizeof(why), fmt, ap);
	r->code = code;
	free(r->error);
	r->error = xstrdup(why);
}

static void __attribute__((format(printf, 3, 4)))
refuse(struct cmd_result *r, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vrefuse(r, code, fmt, ap);
	va_end(ap);
}

void
cmd_refuse(struct cmd_result *r, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vrefuse(r, code, fmt, ap);
	va_end(ap);
}

/* {"agent", "message"}: what a command that acts on an agent did. */
static void
said(struct cmd_result *r, const struct agent *a, const char *what)
{
	char m[256];
	utf8_snprintf(m, sizeof(m), "%s%s", a->name, what);
	answer(r, json_pack("{s:s, s:s}", "agent", a->name, "message", m));
}

static json_t *
manager_status(struct sup *s)
{
	json_t *agents = json_array();
	int running = 0, paused = 0;
	for (size_t i = 0; i < s->nagents; i++) {
		struct agent *a = s->agents[i];
		running += a->pid > 0;
		paused += a->st.paused;
		json_array_append_new(agents, agent_status_json(a));
	}
	json_t *o = json_pack("{s:I, s:i, s:i, s:o, s:I, s:s, s:I}", "total_agents",
	    (json_int_t)s->nagents, "running_agents", running, "paused_agents", paused,
	    "agents", agents, "pid", (json_int_t)getpid(), "event_store",
	    store_event_backend(s->store), "events_dropped",
	    (json_int_t)store_events_dropped(s->store));
	json_object_set_new(o, "store", store_status(s->store));
	if (s->relay)
		json_object_set_new(o, "outbox", relay_status(s->relay));
	/* A backend's errors may quote parts of its address (PostgreSQL's, a
	 * database's name from database_url). */
	json_t *mem = json_object();
	store_mem_status(s->store, mem);
	mem = sup_redact(s, mem);
	json_object_update(o, mem);
	json_decref(mem);
	return o;
}

static void
cmd_status(struct cmd_call *c, struct cmd_result *r)
{
	answer(r, c->a ? agent_status_json(c->a) : manager_status(c->sup));
	if (c->a && c->a->etag)	/* an API agent's: what a write's If-Match names */
		r->etag = xstrdup(c->a->etag);
}

static void
cmd_list(struct cmd_call *c, struct cmd_result *r)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < c->sup->nagents; i++) {
		struct agent *a = c->sup->agents[i];
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:b, s:s}",
		    "name", a->name, "agent_id", a->conf->agent_id, "schedule",
		    a->conf->schedule_text ? a->conf->schedule_text : "manual",
		    "state", wstate_name(a->state), "paused", a->st.paused,
		    "owner", a->api ? "api" : "file"));
	}
	answer(r, arr);
}

static void
cmd_pause(struct cmd_call *c, struct cmd_result *r)
{
	said(r, c->a, agent_pause(c->a) < 0 ? " was already paused" : " paused");
}

static void
cmd_resume(struct cmd_call *c, struct cmd_result *r)
{
	said(r, c->a, agent_resume(c->a) < 0 ? " was not paused" : " resumed");
}

static void
cmd_restart(struct cmd_call *c, struct cmd_result *r)
{
	agent_restart_cmd(c->a);
	said(r, c->a, " restarting");
}

static void
cmd_run(struct cmd_call *c, struct cmd_result *r)
{
	static const char *const outcomes[] = {
		[RUN_STARTED] = ": run started", [RUN_QUEUED] = ": run queued",
		[RUN_RETRY_NOW] = ": the waiting retry of the current run goes now",
	};
	enum run_outcome o = agent_request_run(c->a, true, json_object_get(c->args, "kwargs"));
	if (o == RUN_SKIPPED)
		refuse(r, RESP_REFUSED, "run skipped: %s", c->a->skip_reason);
	else
		said(r, c->a, outcomes[o]);
}

static void
cmd_reload(struct cmd_call *c, struct cmd_result *r)
{
	json_t *report = NULL;
	char *errtext = NULL;
	if (sup_reload(c->sup, &report, &errtext) < 0) {
		r->code = RESP_REFUSED;
		r->error = errtext;
	} else
		answer(r, report);
}

/* One page of events (msg.h): the page that reaches the end of what was
 * asked for lets the transport subscribe a follower, in the same loop
 * pass, so it misses nothing and sees nothing twice. */
static void
cmd_events(struct cmd_call *c, struct cmd_result *r)
{
	json_t *after = json_object_get(c->args, "after"), *lim = json_object_get(c->args, "limit");
	json_int_t limit = lim ? json_integer_value(lim) : after ? INT_MAX : 20;
	struct event_filter f = { .agent = c->agent,
		.session_id = json_string_value(json_object_get(c->args, "session_id")),
		.type = json_string_value(json_object_get(c->args, "type")) };
	struct events_page pg = { .max_bytes = EVENTS_PAGE_MAX };

	if (store_events_page(c->sup->store, &f, after ? json_integer_value(after) : -1,
	    (int)(limit < INT_MAX ? limit : INT_MAX), &pg) < 0) {
		json_decref(pg.out);
		refuse(r, RESP_UNAVAILABLE, "event store query failed");
		return;
	}
	answer(r, pg.out);
	if (pg.cut)
		r->cursor = json_incref(json_object_get(json_array_get(pg.out,
		    json_array_size(pg.out) - 1), "id"));
	r->follow = !pg.cut && json_is_true(json_object_get(c->args, "follow"));
}

static void
recall_done(struct mem_recall *q, json_t *answer)
{
	struct cmd_later *l = q->ctx;
	struct cmd_result r = { .code = RESP_OK, .data = answer };
	l->done(l, &r);
	cmd_result_clear(&r);
}

/* rank: hybrid (the default), vector or text; -1 for anything else. */
static int
rank_of(const char *name)
{
	static const char *const ranks[] = { [RANK_HYBRID] = "hybrid", [RANK_VECTOR] = "vector",
		[RANK_TEXT] = "text" };
	for (int i = 0; name && i < (int)ARRAY_LEN(ranks); i++)
		if (strcmp(name, ranks[i]) == 0)
			return i;
	return name ? -1 : RANK_HYBRID;
}

/* A recall of the agent's memory (store.h), answered through c->later. */
static void
recall(struct cmd_call *c, struct cmd_result *r, const char *type, json_int_t limit)
{
	const char *query = json_string_value(json_object_get(c->args, "query"));
	int rank = rank_of(json_string_value(json_object_get(c->args, "rank")));
	if (rank < 0) {
		r->bad_arg = "rank";
		refuse(r, RESP_BAD_REQUEST, "rank must be hybrid, vector or text");
		return;
	}
	if (c->later == NULL) {
		refuse(r, RESP_BAD_REQUEST, "a query cannot be answered here");
		return;
	}
	if (limit > RECALL_LIMIT_MAX) {
		r->bad_arg = "limit";
		refuse(r, RESP_BAD_REQUEST, "a query answers at most %d hits", RECALL_LIMIT_MAX);
		return;
	}
	c->later->recall.done = recall_done;
	c->later->recall.ctx = c->later;
	c->later->recall.rank = (enum recall_rank)rank;
	r->later = true;
	store_mem_recall(c->sup->store, &c->later->recall, c->a->name, query, limit ? (int)limit : 5,
	    type ? 1u << memory_type_code(type) : MEMORY_RECALL_TYPES);
}

/* memory: the newest items of a type, a clear, or a recall (args.query). */
static void
cmd_memory(struct cmd_call *c, struct cmd_result *r)
{
	const char *type = json_string_value(json_object_get(c->args, "memory_type"));
	const char *clear = json_string_value(json_object_get(c->args, "clear"));
	json_int_t limit = json_integer_value(json_object_get(c->args, "limit"));
	json_t *items = NULL;

	if ((type || clear) && !memory_type_valid(clear ? clear : type)) {
		r->bad_arg = clear ? "clear" : "memory_type";
		refuse(r, RESP_BAD_REQUEST, "memory type must be working, episodic, long_term "
		    "or procedural");
	} else if (clear && store_mem_clear(c->sup->store, c->a->name, clear) < 0)
		refuse(r, RESP_UNAVAILABLE, "memory store failed");
	else if (clear) {
		char what[64];
		snprintf(what, sizeof(what), ": %s memory cleared", clear);
		said(r, c->a, what);
	}
	else if (json_object_get(c->args, "query"))
		recall(c, r, type, limit);
	else if (store_mem_context(c->sup->store, c->a->name, type ? type : "episodic",
	    limit ? (int)limit : 20, &items) < 0)
		refuse(r, RESP_UNAVAILABLE, "memory store query failed");
	else
		answer(r, items);
}

static void
cmd_tasks(struct cmd_call *c, struct cmd_result *r)
{
	answer(r, json_deep_copy(c->sup->cfg->tasks));
}

static void
cmd_stop(struct cmd_call *c, struct cmd_result *r)
{
	answer(r, json_pack("{s:s}", "message", "agentd stopping"));
	sup_begin_stop(c->sup, "agentctl stop");
}

static void
cmd_create(struct cmd_call *c, struct cmd_result *r)
{
	api_agent_create(c->sup, json_object_get(c->args, "config"), r);
}

static void
cmd_update(struct cmd_call *c, struct cmd_result *r)
{
	api_agent_update(c->sup, c->a, json_object_get(c->args, "patch"),
	    json_string_value(json_object_get(c->args, "if_match")), r);
}

static void
cmd_delete(struct cmd_call *c, struct cmd_result *r)
{
	api_agent_delete(c->sup, c->a, json_string_value(json_object_get(c->args, "if_match")), r);
}

static void
cmd_export(struct cmd_call *c, struct cmd_result *r)
{
	api_agent_export(c->a, r);
}

static void (*const handlers[CMD__COUNT])(struct cmd_call *, struct cmd_result *) = {
	[CMD_STATUS] = cmd_status, [CMD_LIST] = cmd_list, [CMD_PAUSE] = cmd_pause,
	[CMD_RESUME] = cmd_resume, [CMD_RESTART] = cmd_restart, [CMD_RUN] = cmd_run,
	[CMD_RELOAD] = cmd_reload, [CMD_EVENTS] = cmd_events, [CMD_MEMORY] = cmd_memory,
	[CMD_TASKS] = cmd_tasks, [CMD_STOP] = cmd_stop, [CMD_CREATE] = cmd_create,
	[CMD_UPDATE] = cmd_update, [CMD_DELETE] = cmd_delete, [CMD_EXPORT] = cmd_export,
};

void
commands_run(struct sup *s, enum cmd_id id, const char *agent, json_t *args,
    struct cmd_result *r)
{
	commands_run_later(s, id, agent, args, r, NULL);
}

bool
cmd_later_busy(const struct cmd_later *l)
{
	return l->recall.busy;
}

void
cmd_later_cancel(struct cmd_later *l)
{
	store_mem_recall_cancel(&l->recall);
}

void
commands_run_later(struct sup *s, enum cmd_id id, const char *agent, json_t *args,
    struct cmd_result *r, struct cmd_later *later)
{
	const struct cmd_def *d = &cmd_defs[id];
	const struct cmd_arg *bad = NULL;
	struct cmd_call c = { .sup = s, .agent = agent, .args = args, .later = later };
	char err[256];

	memset(r, 0, sizeof(*r));
	if (d->agent == CA_ONE && agent == NULL)
		refuse(r, RESP_BAD_REQUEST, "this command needs an agent name");
	else if (d->agent == CA_NONE && agent)
		refuse(r, RESP_BAD_REQUEST, "%s takes no agent", d->name);
	else if (cmd_check_args(d, args, &bad, err, sizeof(err)) < 0) {
		r->bad_arg = bad->name;
		refuse(r, RESP_BAD_REQUEST, "%s", err);
	} else if (agent && d->agent != CA_FILTER && (c.a = sup_find(s, agent)) == NULL)
		refuse(r, RESP_UNKNOWN_AGENT, "unknown agent \"%s\"", agent);
	else if (c.a && c.a->conf_error && (id == CMD_RUN || id == CMD_RESTART))
		refuse(r, RESP_REFUSED, "%s is not started: its config no longer loads (%s); "
		    "update or delete it", c.a->name, c.a->conf_error);
	else
		handlers[id](&c, r);
}

void
cmd_result_clear(struct cmd_result *r)
{
	free(r->error);
	free(r->etag);
	json_decref(r->data);
	json_decref(r->cursor);
	json_decref(r->errors);
	memset(r, 0, sizeof(*r));
}
