/*
 * relay: agentd's one Redis connection, and what goes over it.  Three
 * lanes share it and a retry timer, never a batch: events (streams.c),
 * memory rows (the memory backend's, supervisor/memory/redislist.c, set with
 * relay_set_lane) and agent state (here).  A lane whose batch fails makes
 * every lane wait out the same growing backoff: the cause (Redis down,
 * OOM) is nearly always theirs too.
 *
 * With state_store redis the state lane keeps a hash per agent,
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

#define UNRESPONSIVE_MS 1000  /* Redis answers in well under 1 ms when it is well */

struct relay {
	struct store *store;
	struct rconn *rc;
	struct streams *ev;      /* the event lane, when event_store is redis_stream */
	struct relay_lane lane;  /* the memory lane, when memory_store is redis */
	bool state;              /* the state lane runs */
	bool closing;
	struct relay_batch st;
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
	r->state = g->state_store && strcmp(g->state_store, "redis") == 0;
	r->st.what = "agent state";
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

void
relay_set_lane(struct relay *r, const struct relay_lane *l)
{
	r->lane = *l;
}

struct rconn *relay_conn(struct relay *r) { return r->rc; }

static void
on_state(struct rconn *rc, bool up, const char *why, void *ctx)
{
	struct relay *r = ctx;
	if (!up) {
		set_error(r, why ? why : "down");
		return;
	}
	answered(r);	/* up means it answered a PING */
	if (r->lane.connected)
		r->lane.connected(r->lane.ctx);
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
relay_lane_retry(struct relay *r, const char *why)
{
	if (r->closing)
		return;
	set_error(r, why);
	if (timer_armed(&r->retry))	/* the other lane's failure waits already */
		return;
	grow_backoff(r);
	log_warn("relay: %s; trying again in %lld ms", r->last_error, (long long)r->backoff);
	timer_in(&r->retry, r->backoff);
}

void
relay_lane_ok(struct relay *r)
{
	r->backoff = 0;
	answered(r);
}

bool
relay_batch_reply(struct relay *r, struct relay_batch *b, redisReply *reply, const char *err)
{
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
		b->failed = true;
		set_error(r, reply ? reply->str : err);
	}
	return --b->due == 0;
}

void
relay_batch_done(struct relay *r, struct relay_batch *b)
{
	if (b->failed)
		relay_lane_failed(r, b->what, b->last, r->last_error);
	else
		relay_lane_ok(r);
	b->last = 0;
}

/* Every reply in: what failed goes back for another try. */
static void
on_st_reply(struct rconn *rc, redisReply *reply, const char *err, void *priv)
{
	struct relay *r = priv;
	if (!relay_batch_reply(r, &r->st, reply, err))
		return;
	if (r->st.failed)
		store_state_requeue(r->store, r->st_inflight);
	json_decref(r->st_inflight);
	r->st_inflight = NULL;
	relay_batch_done(r, &r->st);
	if (!r->st.failed)
		relay_pump(r);
}

void
relay_offer(struct relay *r, const struct event *ev, const char *payload_json)
{
	if (r && r->ev)
		streams_offer(r->ev, ev, payload_json);
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
	if (r->lane.pump)
		r->lane.pump(r->lane.ctx);
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
	if (r->lane.status)
		r->lane.status(r->lane.ctx, o);
	return o;
}
