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
 * idempotence key {stream}:seen:<event_id> (NX, one hour); one script call
 * carries a whole batch for one stream.  The key carries
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

#define BATCH 512
#define SEEN_TTL "3600"

/*
 * One call per stream and batch: KEYS[1] the stream, KEYS[2..] the events'
 * idempotence keys (hash-tagged with the stream's name, so one Cluster
 * slot); ARGV: ttl, maxlen, then seven fields per event.  Cheaper by far
 * than a call per event, and still all or nothing (Redis 7 refuses a
 * writing script as a whole when it is over maxmemory).
 */
static const char script[] =
    "local added = 0 "
    "for i = 2, #KEYS do "
    "  local a = 3 + (i - 2) * 7 "
    "  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then "
    "    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', "
    "      'event_id', ARGV[a], 'type', ARGV[a+1], 'agent_name', ARGV[a+2], "
    "      'timestamp', ARGV[a+3], 'seq', ARGV[a+4], 'session_id', ARGV[a+5], "
    "      'payload', ARGV[a+6]) "
    "    added = added + 1 "
    "  end "
    "end "
    "return added";

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

/* One script call shipping events idx[0..n) of evs to stream. */
static int
send_group(struct relay *r, const char *stream, json_t *evs, const size_t *idx, size_t n)
{
	size_t argc = 4 + n + 2 + 7 * n, k = 0, keys = 4 + n;	/* EVALSHA sha N stream seen... */
	const char **argv = xcalloc(argc, sizeof(*argv));
	char **owned = xcalloc(3 * n + 1, sizeof(*owned)), numkeys[24];
	size_t no = 0;

	snprintf(numkeys, sizeof(numkeys), "%zu", n + 1);
	argv[k++] = "EVALSHA";
	argv[k++] = r->sha;
	argv[k++] = numkeys;
	argv[k++] = stream;
	size_t a = keys + 2;
	argv[keys] = SEEN_TTL;
	argv[keys + 1] = r->maxlen;
	for (size_t i = 0; i < n; i++) {
		json_t *ev = json_array_get(evs, idx[i]), *p = json_object_get(ev, "payload");
		const char *id = json_string_value(json_object_get(ev, "event_id"));
		const char *sid = json_string_value(json_object_get(p, "session_id"));
		if (asprintf(&owned[no], "{%s}:seen:%s", stream, id) < 0)
			owned[no] = NULL;
		argv[k++] = owned[no++];
		argv[a++] = id;
		argv[a++] = json_string_value(json_object_get(ev, "type"));
		argv[a++] = json_string_value(json_object_get(ev, "agent_name"));
		argv[a++] = json_string_value(json_object_get(ev, "timestamp"));
		if (asprintf(&owned[no], "%lld",
		    (long long)json_integer_value(json_object_get(ev, "seq"))) < 0)
			owned[no] = NULL;
		argv[a++] = owned[no++];
		argv[a++] = sid ? sid : "";
		owned[no] = json_dumps(p, JSON_COMPACT);
		argv[a++] = owned[no] ? owned[no] : "{}";
		no++;
	}
	int rc = -1;
	bool complete = true;
	for (size_t i = 0; i < argc; i++)
		complete &= argv[i] != NULL;
	if (complete)
		rc = rconn_command(r->rc, on_xadd, r, (int)argc, argv, NULL);
	for (size_t i = 0; i < no; i++)
		free(owned[i]);
	free(owned);
	free(argv);
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
	size_t n = json_array_size(evs), *all = xcalloc(n, sizeof(*all));
	json_t *sessions = json_object();	/* session id -> indexes, in order */
	json_array_foreach(evs, i, ev) {
		const char *sid = json_string_value(json_object_get(json_object_get(ev,
		    "payload"), "session_id"));
		all[i] = i;
		json_t *list = json_object_get(sessions, sid ? sid : "none");
		if (list == NULL)
			json_object_set_new(sessions, sid ? sid : "none", list = json_array());
		json_array_append_new(list, json_integer((json_int_t)i));
	}
	bool ok = send_group(r, r->stream, evs, all, n) == 0;
	const char *sid;
	json_t *list;
	json_object_foreach(sessions, sid, list) {
		char sstream[512];
		size_t m = json_array_size(list);
		for (size_t j = 0; j < m; j++)
			all[j] = (size_t)json_integer_value(json_array_get(list, j));
		snprintf(sstream, sizeof(sstream), "%s:%s", r->stream, sid);
		if (ok)
			ok = send_group(r, sstream, evs, all, m) == 0;
	}
	if (ok)
		r->batch_last = json_integer_value(json_object_get(json_array_get(evs, n - 1), "id"));
	else
		r->batch_failed = true;
	free(all);
	json_decref(sessions);
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
