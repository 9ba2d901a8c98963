/*
 * relay: agentd's one Redis connection, and what goes over it.  Three
 * lanes share it and a retry timer, never a batch: events (streams.c),
 * memory rows and agent state (here).  A lane whose batch fails makes every
 * lane wait out the same growing backoff: the cause (Redis down, OOM) is
 * nearly always theirs too.
 *
 * Memory (memory_store redis): rows of the SQLite memory table, in id order,
 * to one list per agent and type, agentd:{<agent>}:memory:<type> (JSON
 * items, oldest first, trimmed to memory_retention), one script call per
 * list and batch, with idempotence keys agentd:{<agent>}:memory-seen:<id>
 * in the same slot so a batch resent after lost replies adds nothing twice.
 * With state_store redis a third lane keeps a hash per agent,
 * agentd:{<agent>}:state, at its latest saved state (HSET of the whole
 * snapshot, so a resend is harmless; a deleted agent's hash goes).
 *
 * Status says what is true now: Redis is up only while it answers (a
 * connection is up once a PING is answered, redis.c, and a command left
 * unanswered for UNRESPONSIVE_MS makes it unresponsive well before the
 * reply timeout drops the connection); the error shown is the current one,
 * and once Redis answers again it is kept only as history, with when it
 * began and ended.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/jsonmp.h"
#include "common/log.h"
#include "common/util.h"
#include "conf/config.h"
#include "supervisor/loop.h"
#include "supervisor/redis.h"
#include "supervisor/relay.h"
#include "supervisor/relay_int.h"
#include "supervisor/store.h"

#define BATCH 512
#define SEEN_TTL "3600"
#define UNRESPONSIVE_MS 1000  /* Redis answers in well under 1 ms when it is well */

/* KEYS[1] the list, KEYS[2..] idempotence keys; ARGV: ttl, keep, items. */
static const char mem_script[] =
    "local added = 0 "
    "for i = 2, #KEYS do "
    "  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then "
    "    redis.call('RPUSH', KEYS[1], ARGV[i + 1]) "
    "    added = added + 1 "
    "  end "
    "end "
    "redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1) "
    "return added";

/* A batch in flight: the highest row id it carries, and its replies. */
struct lane {
	const char *what;        /* "memory row", "agent state" (for the log) */
	int64_t last;            /* 0: nothing in flight */
	int due;
	bool failed;
};

struct relay {
	struct store *store;
	struct rconn *rc;
	struct streams *ev;      /* the event lane, when event_store is redis_stream */
	bool memory, state;      /* which other lanes run */
	bool ready;              /* up, and the memory script loaded */
	bool closing;
	char keep[24];           /* memory_retention */
	char mem_sha[48];
	struct lane mem, st;
	json_t *st_inflight;     /* the agents the state lane is shipping */
	char last_error[320];
	int64_t error_at;        /* wall ms the failing began (0: never) */
	int64_t recovered_at;    /* wall ms Redis answered again after it */
	struct timer retry;      /* after a failed batch */
	int64_t backoff;
};

static void on_state(struct rconn *rc, bool up, const char *why, void *ctx);
static void on_retry(struct timer *t);

static bool
failing(const struct relay *r)
{
	return r->error_at > r->recovered_at;
}

/* Something failed: why, and when the failing began. */
static void
set_error(struct relay *r, const char *why)
{
	if (why != r->last_error)
		snprintf(r->last_error, sizeof(r->last_error), "%s", why);
	if (!failing(r))
		r->error_at = wall_ms();
}

/* Redis answered: the failing, if any, is over. */
static void
answered(struct relay *r)
{
	if (failing(r))
		r->recovered_at = wall_ms();
}

struct relay *
relay_new(struct store *s, const struct global_conf *g)
{
	struct relay *r = xcalloc(1, sizeof(*r));
	struct rconn_opts o = {
		.host = g->redis_host, .port = g->redis_port, .unix_path = g->redis_socket,
		.password = g->redis_password, .db = g->redis_db,
	};
	r->store = s;
	r->memory = strcmp(g->memory_store, "redis") == 0;
	r->state = g->state_store && strcmp(g->state_store, "redis") == 0;
	r->mem.what = "memory row";
	r->st.what = "agent state";
	snprintf(r->keep, sizeof(r->keep), "%lld", (long long)(g->memory_retention > 0 ?
	    g->memory_retention : 10000));
	timer_init(&r->retry, on_retry, r);
	r->rc = rconn_new(&o, on_state, r);
	if (strcmp(g->event_store, "redis_stream") == 0)
		r->ev = streams_new(r, s, r->rc, g);
	return r;
}

void
relay_free(struct relay *r)
{
	if (r == NULL)
		return;
	r->closing = true;	/* the replies rconn_free fails are not retried */
	rconn_free(r->rc);	/* fails what is in flight: nothing recorded as shipped */
	timer_stop(&r->retry);
	streams_free(r->ev);
	json_decref(r->st_inflight);
	free(r);
}

static void
on_script_loaded(struct rconn *rc, redisReply *reply, const char *err, void *priv)
{
	struct relay *r = priv;
	if (reply == NULL || reply->type != REDIS_REPLY_STRING) {
		char why[320];
		snprintf(why, sizeof(why), "SCRIPT LOAD: %s", reply ? reply->str : err);
		set_error(r, why);
		log_error("relay: %s", r->last_error);
		return;
	}
	snprintf(r->mem_sha, sizeof(r->mem_sha), "%s", reply->str);
	r->ready = true;
	relay_pump(r);
}

static void
load_script(struct relay *r)
{
	const char *argv[] = { "SCRIPT", "LOAD", mem_script };
	r->ready = false;
	if (r->memory)
		rconn_command(r->rc, on_script_loaded, r, 3, argv, NULL);
}

static void
on_state(struct rconn *rc, bool up, const char *why, void *ctx)
{
	struct relay *r = ctx;
	r->ready = false;
	if (!up) {
		set_error(r, why ? why : "down");
		return;
	}
	answered(r);	/* up means it answered a PING */
	load_script(r);
	streams_connected(r->ev);
}

static void
on_retry(struct timer *t)
{
	relay_pump(t->ctx);
}

static void
grow_backoff(struct relay *r)
{
	r->backoff = r->backoff ? r->backoff * 2 : 100;
	if (r->backoff > 5000)
		r->backoff = 5000;
}

void
relay_lane_failed(struct relay *r, const char *what, int64_t last, const char *why)
{
	if (r->closing)
		return;
	set_error(r, why);	/* the memory lane passes its own */
	grow_backoff(r);
	log_warn("relay: batch up to %s %lld not acknowledged (%s); resending in %lld ms",
	    what, (long long)last, r->last_error, (long long)r->backoff);
	timer_in(&r->retry, r->backoff);
}

void
relay_lane_ok(struct relay *r)
{
	r->backoff = 0;
	answered(r);
}

static void
lane_done(struct relay *r, struct lane *l)
{
	if (l == &r->st) {	/* failed: the agents go back for another try */
		if (l->failed)
			store_state_requeue(r->store, r->st_inflight);
		json_decref(r->st_inflight);
		r->st_inflight = NULL;
	}
	if (l->failed) {
		relay_lane_failed(r, l->what, l->last, r->last_error);
		l->last = 0;
		return;
	}
	relay_lane_ok(r);
	if (l == &r->mem)
		store_set_mem_shipped(r->store, l->last);
	store_flush(r->store);
	l->last = 0;
	relay_pump(r);
}

/* Count one reply of the lane's batch; true when it was the last. */
static bool
count_reply(struct relay *r, struct lane *l, redisReply *reply, const char *err)
{
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
		l->failed = true;
		set_error(r, reply ? reply->str : err);
		if (reply && strstr(reply->str, "NOSCRIPT"))
			load_script(r);	/* someone ran SCRIPT FLUSH */
	}
	return --l->due == 0;
}

static void
lane_reply(struct relay *r, struct lane *l, redisReply *reply, const char *err)
{
	if (count_reply(r, l, reply, err))
		lane_done(r, l);
}

static void
on_mem_reply(struct rconn *rc, redisReply *reply, const char *err, void *priv)
{
	struct relay *r = priv;
	lane_reply(r, &r->mem, reply, err);
}

static void
on_st_reply(struct rconn *rc, redisReply *reply, const char *err, void *priv)
{
	struct relay *r = priv;
	lane_reply(r, &r->st, reply, err);
}

/* argv with the strings it owns, for one script call. */
struct call {
	const char **argv;
	char **owned;
	size_t argc, nowned;
};

static void
call_init(struct call *c, size_t argc)
{
	c->argv = xcalloc(argc, sizeof(*c->argv));
	c->owned = xcalloc(argc, sizeof(*c->owned));
	c->argc = argc;
	c->nowned = 0;
}

static const char *
call_own(struct call *c, char *s)
{
	c->owned[c->nowned++] = s;
	return s;
}

/* Send it (-1 when a string could not be made or the connection is down). */
static int
call_send(struct relay *r, struct call *c, rconn_reply_fn fn, struct lane *l)
{
	bool complete = true;
	int rc = -1;
	for (size_t i = 0; i < c->argc; i++)
		complete &= c->argv[i] != NULL;
	if (complete)
		rc = rconn_command(r->rc, fn, r, (int)c->argc, c->argv, NULL);
	for (size_t i = 0; i < c->nowned; i++)
		free(c->owned[i]);
	free(c->owned);
	free(c->argv);
	if (rc == 0)
		l->due++;
	return rc;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

static char *
fmt(const char *f, ...)
{
	char *s;
	va_list ap;
	va_start(ap, f);
	int n = vasprintf(&s, f, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

void
relay_offer(struct relay *r, const struct event *ev, const char *payload_json)
{
	if (r && r->ev)
		streams_offer(r->ev, ev, payload_json);
}

/* One script call shipping memory rows idx[0..n) of rows to their list. */
static int
send_mem_group(struct relay *r, json_t *rows, const json_t *idx)
{
	size_t n = json_array_size(idx), k = 0, a = 3 + 1 + n + 2;
	const json_t *first = json_array_get(rows, (size_t)json_integer_value(json_array_get(idx, 0)));
	const char *agent = json_string_value(json_object_get(first, "agent_id"));
	const char *type = json_string_value(json_object_get(first, "memory_type"));
	struct call c;
	char numkeys[24], list[512];

	call_init(&c, a + n);
	snprintf(numkeys, sizeof(numkeys), "%zu", n + 1);
	snprintf(list, sizeof(list), "agentd:{%s}:memory:%s", agent, type);
	c.argv[k++] = "EVALSHA";
	c.argv[k++] = r->mem_sha;
	c.argv[k++] = numkeys;
	c.argv[k++] = list;
	c.argv[a - 2] = SEEN_TTL;
	c.argv[a - 1] = r->keep;
	for (size_t i = 0; i < n; i++) {
		json_t *row = json_array_get(rows, (size_t)json_integer_value(json_array_get(idx, i)));
		char id[64];
		/* the row id and its time: a rebuilt state db reuses row ids */
		snprintf(id, sizeof(id), "%lld-%s", (long long)json_integer_value(
		    json_object_get(row, "id")), json_string_value(json_object_get(row, "timestamp")));
		c.argv[k++] = call_own(&c, fmt("agentd:{%s}:memory-seen:%s", agent, id));
		c.argv[a++] = call_own(&c, json_dumps_short(row, JSON_COMPACT));
	}
	return call_send(r, &c, on_mem_reply, &r->mem);
}

static void
pump_memory(struct relay *r)
{
	json_t *rows = NULL, *row, *lists, *idx;
	size_t i;
	const char *key;
	struct lane *l = &r->mem;
	int64_t from = store_mem_shipped(r->store);

	if (!r->memory || l->last || from >= store_mem_last_id(r->store))
		return;
	if (store_mem_pending(r->store, from, BATCH, &rows) < 0 || json_array_size(rows) == 0) {
		json_decref(rows);
		return;
	}
	l->failed = false;
	l->due = 0;
	lists = json_object();	/* "agent\ntype" -> row indexes, in order */
	json_array_foreach(rows, i, row) {
		char k[512];
		snprintf(k, sizeof(k), "%s\n%s", json_string_value(json_object_get(row, "agent_id")),
		    json_string_value(json_object_get(row, "memory_type")));
		if ((idx = json_object_get(lists, k)) == NULL)
			json_object_set_new(lists, k, idx = json_array());
		json_array_append_new(idx, json_integer((json_int_t)i));
	}
	bool ok = true;
	json_object_foreach(lists, key, idx)
		if (ok)
			ok = send_mem_group(r, rows, idx) == 0;
	l->last = json_integer_value(json_object_get(json_array_get(rows,
	    json_array_size(rows) - 1), "id"));
	l->failed = !ok;
	json_decref(lists);
	json_decref(rows);
	if (l->due == 0)
		l->last = 0;
}

static int
send_state(struct relay *r, const char *agent, bool exists)
{
	struct agent_state a = { 0 };
	char key[512], n[6][24], t[3][40];
	snprintf(key, sizeof(key), "agentd:{%s}:state", agent);
	if (!exists || store_state_load(r->store, agent, &a) < 0) {
		const char *argv[] = { "DEL", key };
		int rc = rconn_command(r->rc, on_st_reply, r, 2, argv, NULL);
		if (rc == 0)
			r->st.due++;
		return rc;
	}
	snprintf(n[0], 24, "%lld", (long long)a.run_count);
	snprintf(n[1], 24, "%lld", (long long)a.error_count);
	snprintf(n[2], 24, "%lld", (long long)a.skipped_count);
	snprintf(n[3], 24, "%lld", (long long)a.restart_count);
	snprintf(n[4], 24, "%d", a.paused ? 1 : 0);
	snprintf(n[5], 24, "%lld", (long long)wall_ms());
	iso8601(a.last_run, t[0], sizeof(t[0]));
	iso8601(a.last_success, t[1], sizeof(t[1]));
	iso8601(a.next_run, t[2], sizeof(t[2]));
	const char *argv[] = { "HSET", key, "agent_id", agent, "session_id", a.session_id,
		"run_count", n[0], "error_count", n[1], "skipped_count", n[2],
		"restart_count", n[3], "paused", n[4], "last_run", t[0], "last_success", t[1],
		"next_run", t[2], "updated_ms", n[5] };
	agent_state_free(&a);
	int rc = rconn_command(r->rc, on_st_reply, r, (int)ARRAY_LEN(argv), argv, NULL);
	if (rc == 0)
		r->st.due++;
	return rc;
}

static void
pump_state(struct relay *r)
{
	const char *agent;
	json_t *v;
	bool ok = true;

	if (!r->state || r->st_inflight || (r->st_inflight = store_state_take_dirty(r->store)) == NULL)
		return;
	r->st.failed = false;
	r->st.due = 0;
	json_object_foreach(r->st_inflight, agent, v)
		if (ok)
			ok = send_state(r, agent, json_is_true(v)) == 0;
	r->st.failed = !ok;
	r->st.last = 1;
	if (r->st.due == 0) {	/* nothing went out: keep them for later */
		store_state_requeue(r->store, r->st_inflight);
		json_decref(r->st_inflight);
		r->st_inflight = NULL;
		r->st.last = 0;
	}
}

void
relay_pump(struct relay *r)
{
	if (r == NULL || timer_armed(&r->retry) || !rconn_up(r->rc))
		return;
	streams_pump(r->ev);
	if (r->ready)
		pump_memory(r);
	pump_state(r);
}

json_t *
relay_status(const struct relay *r)
{
	int64_t shipped = store_shipped(r->store), waiting = rconn_waiting_ms(r->rc);
	bool up = rconn_up(r->rc), stuck = up && waiting >= UNRESPONSIVE_MS;
	char stalled[64], at[32], until[32];
	/* down: why the connection is not up (refused, AUTH failed, ...) */
	const char *why = !up ? (rconn_last_error(r->rc)[0] ? rconn_last_error(r->rc) :
	    r->last_error) : failing(r) ? r->last_error : NULL;
	if (stuck) {
		snprintf(stalled, sizeof(stalled), "no reply for %lld ms", (long long)waiting);
		why = stalled;
	}
	json_t *o = json_pack("{s:s}", "redis", !up ? "down" : stuck ? "unresponsive" : "up");
	json_object_set_new(o, "last_error", why ? json_string(why) : json_null());
	iso8601(r->error_at, at, sizeof(at));
	iso8601(failing(r) ? 0 : r->recovered_at, until, sizeof(until));
	json_object_set_new(o, "last_failure", r->error_at == 0 ? json_null() :
	    json_pack("{s:s, s:s, s:o}", "error", r->last_error, "at", at, "until",
	    until[0] ? json_string(until) : json_null()));
	if (r->ev) {
		json_object_set_new(o, "shipped_id", json_integer(shipped));
		json_object_set_new(o, "pending", json_integer(store_last_id(r->store) - shipped));
		json_object_set_new(o, "dropped", json_integer(store_outbox_dropped(r->store)));
	}
	if (r->memory)
		json_object_set_new(o, "memory_pending", json_integer(store_mem_last_id(r->store) -
		    store_mem_shipped(r->store)));
	return o;
}
