/*
 * relay: the SQLite event log is the durable outbox; this ships it to Redis
 * Streams in id order, and records how far it got (store_set_shipped) only
 * when Redis has acknowledged every command of a batch.
 *
 * Each event goes to two streams: the seed's global stream (REDIS_STREAM_KEY,
 * default background_agent_events) and a stream per session
 * (<stream_key>:<session_id>), both trimmed with MAXLEN ~.  Fields are plain
 * strings any client can read: event_id, type, agent_name, timestamp, seq,
 * session_id, and payload as JSON.
 *
 * Exactly once: a batch whose replies were lost (Redis killed, timeout) is
 * sent again, so each XADD runs inside a small script that first sets an
 * idempotence key {stream}:seen:<event_id> (NX, one hour).  The key carries
 * the stream's name as its hash tag, so both live in one Cluster slot.
 * Redis 7 refuses a writing script outright when it is over maxmemory, so
 * an OOM never leaves a seen key without its entry.
 *
 * Order: one connection, one batch in flight, commands pipelined in id order;
 * Redis executes them in that order, so per-agent (and global) order holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "common/util.h"
#include "conf/config.h"
#include "supervisor/loop.h"
#include "supervisor/redis.h"
#include "supervisor/relay.h"
#include "supervisor/store.h"

#define BATCH 256
#define SEEN_TTL "3600"

static const char script[] =
    "if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then "
    "  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', "
    "    'event_id', ARGV[3], 'type', ARGV[4], 'agent_name', ARGV[5], "
    "    'timestamp', ARGV[6], 'seq', ARGV[7], 'session_id', ARGV[8], "
    "    'payload', ARGV[9]) "
    "end "
    "return false";

struct relay {
	struct store *store;
	const struct global_conf *g;
	struct rconn *rc;
	char stream[256];
	char maxlen[24];
	char sha[48];
	bool script_ready;
	int64_t batch_last;      /* highest id in the batch in flight; 0: none */
	int replies_due;
	bool batch_failed;
	char last_error[320];
	struct timer retry;      /* after a failed batch */
	int64_t backoff;
};

static void on_state(struct rconn *rc, bool up, const char *why, void *ctx);
static void on_retry(struct timer *t);

struct relay *
relay_new(struct store *s, const struct global_conf *g)
{
	struct relay *r = xcalloc(1, sizeof(*r));
	struct rconn_opts o = {
		.host = g->redis_host, .port = g->redis_port, .unix_path = g->redis_socket,
		.password = g->redis_password, .db = g->redis_db,
	};
	r->store = s;
	r->g = g;
	snprintf(r->stream, sizeof(r->stream), "%s", g->redis_stream_key);
	snprintf(r->maxlen, sizeof(r->maxlen), "%lld", (long long)g->redis_stream_maxlen);
	timer_init(&r->retry, on_retry, r);
	r->rc = rconn_new(&o, on_state, r);
	return r;
}

void
relay_free(struct relay *r)
{
	if (r == NULL)
		return;
	timer_stop(&r->retry);
	rconn_free(r->rc);	/* fails what is in flight: nothing recorded as shipped */
	free(r);
}

static void
on_script_loaded(struct rconn *rc, redisReply *reply, const char *err, void *priv)
{
	struct relay *r = priv;
	if (reply == NULL || reply->type != REDIS_REPLY_STRING) {
		snprintf(r->last_error, sizeof(r->last_error), "SCRIPT LOAD: %s",
		    reply ? reply->str : err);
		log_error("relay: %s", r->last_error);
		return;
	}
	snprintf(r->sha, sizeof(r->sha), "%s", reply->str);
	r->script_ready = true;
	relay_pump(r);
}

static void
on_state(struct rconn *rc, bool up, const char *why, void *ctx)
{
	struct relay *r = ctx;
	r->script_ready = false;
	if (!up) {
		snprintf(r->last_error, sizeof(r->last_error), "%s", why ? why : "down");
		return;
	}
	const char *argv[] = { "SCRIPT", "LOAD", script };
	rconn_command(rc, on_script_loaded, r, 3, argv, NULL);
}

static void
on_retry(struct timer *t)
{
	relay_pump(t->ctx);
}

static void
batch_done(struct relay *r)
{
	if (r->batch_failed) {
		r->backoff = r->backoff ? r->backoff * 2 : 100;
		if (r->backoff > 5000)
			r->backoff = 5000;
		log_warn("relay: batch up to event %lld not acknowledged (%s); resending in %lld ms",
		    (long long)r->batch_last, r->last_error, (long long)r->backoff);
		r->batch_last = 0;
		timer_in(&r->retry, r->backoff);
		return;
	}
	r->backoff = 0;
	store_set_shipped(r->store, r->batch_last);
	store_flush(r->store);
	r->batch_last = 0;
	relay_pump(r);
}

static void
on_xadd(struct rconn *rc, redisReply *reply, const char *err, void *priv)
{
	struct relay *r = priv;
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
		r->batch_failed = true;
		snprintf(r->last_error, sizeof(r->last_error), "%s",
		    reply ? reply->str : err);
		if (reply && strstr(reply->str, "NOSCRIPT"))
			r->script_ready = false;
	}
	if (--r->replies_due == 0)
		batch_done(r);
}

static int
send_one(struct relay *r, const char *stream, json_t *ev, const char *session)
{
	char seen[512], seq[24], *payload;
	const char *argv[14];
	json_t *p = json_object_get(ev, "payload");

	snprintf(seen, sizeof(seen), "{%s}:seen:%s", stream,
	    json_string_value(json_object_get(ev, "event_id")));
	snprintf(seq, sizeof(seq), "%lld", (long long)json_integer_value(json_object_get(ev, "seq")));
	payload = json_dumps(p, JSON_COMPACT);
	argv[0] = "EVALSHA";
	argv[1] = r->sha;
	argv[2] = "2";
	argv[3] = seen;
	argv[4] = stream;
	argv[5] = SEEN_TTL;
	argv[6] = r->maxlen;
	argv[7] = json_string_value(json_object_get(ev, "event_id"));
	argv[8] = json_string_value(json_object_get(ev, "type"));
	argv[9] = json_string_value(json_object_get(ev, "agent_name"));
	argv[10] = json_string_value(json_object_get(ev, "timestamp"));
	argv[11] = seq;
	argv[12] = session;
	argv[13] = payload ? payload : "{}";
	int rc = rconn_command(r->rc, on_xadd, r, 14, argv, NULL);
	free(payload);
	if (rc == 0)
		r->replies_due++;
	return rc;
}

void
relay_pump(struct relay *r)
{
	json_t *evs = NULL;
	size_t i;
	json_t *ev;

	if (r == NULL || r->batch_last || timer_armed(&r->retry) ||
	    !rconn_up(r->rc) || !r->script_ready)
		return;
	int64_t from = store_shipped(r->store);
	if (from >= store_last_id(r->store))
		return;
	if (store_events_query(r->store, NULL, from, BATCH, &evs) < 0 ||
	    json_array_size(evs) == 0) {
		json_decref(evs);
		return;
	}
	r->batch_failed = false;
	r->replies_due = 0;
	json_array_foreach(evs, i, ev) {
		const char *sid = json_string_value(json_object_get(json_object_get(ev,
		    "payload"), "session_id"));
		char sstream[512];
		snprintf(sstream, sizeof(sstream), "%s:%s", r->stream, sid ? sid : "none");
		if (send_one(r, r->stream, ev, sid ? sid : "") < 0 ||
		    send_one(r, sstream, ev, sid ? sid : "") < 0) {
			r->batch_failed = true;
			break;
		}
		r->batch_last = json_integer_value(json_object_get(ev, "id"));
	}
	json_decref(evs);
	if (r->replies_due == 0) {	/* nothing went out: connection gone */
		r->batch_last = 0;
		return;
	}
	if (r->batch_last == 0)
		r->batch_last = from;
}

json_t *
relay_status(const struct relay *r)
{
	int64_t shipped = store_shipped(r->store);
	return json_pack("{s:s, s:I, s:I, s:I, s:s}",
	    "redis", rconn_up(r->rc) ? "up" : "down",
	    "shipped_id", (json_int_t)shipped,
	    "pending", (json_int_t)(store_last_id(r->store) - shipped),
	    "dropped", (json_int_t)store_outbox_dropped(r->store),
	    "last_error", r->last_error);
}
