/*
 * streams: the relay's event lane.  The SQLite event log is the durable
 * outbox; this ships it to Redis Streams in id order, and records how far
 * it got (store_set_shipped) only when every stream of a batch has it.
 *
 * Each event goes to two streams: the seed's global stream (REDIS_STREAM_KEY,
 * default background_agent_events) and a stream per session
 * (<stream_key>:<session_id>), both trimmed with MAXLEN ~.  Fields are plain
 * strings any client can read: event_id, type, agent_name, timestamp, seq,
 * session_id, and payload as JSON.
 *
 * Exactly once, in order, pipelined: each stream has a cursor, a field
 * named by the state db's epoch in the hash {stream}:cursors (hash-tagged
 * into the stream's Cluster slot), holding the last event id appended.  One
 * script call carries a batch's events for one stream; it appends only the
 * events past the cursor (so a batch resent after lost replies adds nothing
 * twice) and refuses the batch when the cursor has not reached the id the
 * batch expects the stream to be at (so when a batch fails, every later
 * batch for that stream fails too, and nothing is ever appended out of
 * order).  That guard lets up to PIPELINE batches be in flight on the one
 * connection.  A failure stops new batches; once the replies are in,
 * shipping restarts from the last id every earlier batch was acknowledged
 * for, with no expectations (the cursors skip what did land).  The epoch
 * keeps a rebuilt db's new ids from being taken for old ones, and two
 * agentd sharing a stream from being taken for each other.  Redis 7
 * refuses a writing script outright when it is over maxmemory, so an OOM
 * applies nothing of a batch.
 *
 * A script per batch costs Redis about 15 % more than the same XADDs sent
 * bare (measured; the commands' parsing dominates), and bare XADDs could
 * not carry the guard: a MULTI/EXEC queued behind one Redis refused can
 * land in its place.
 *
 * Events are encoded once, at emit, into the tail the batches are cut
 * from; only what the tail had no room for is read back from SQLite.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "conf/config.h"
#include "supervisor/redis.h"
#include "supervisor/relay_int.h"
#include "supervisor/store.h"

#define BATCH 1024
#define PIPELINE 4

/* The encoded tail: emitted, not yet acknowledged.  What it has no room
 * for (Redis down, or slower than the workers) is read back from SQLite
 * when its turn comes. */
#define TAIL_MAX 16384
#define TAIL_BYTES (32 << 20)

/*
 * KEYS[1] the stream, KEYS[2] its cursors; ARGV: epoch, the id the stream
 * must have reached (0: none), maxlen, then eight per event (the store id
 * first, then the fields' values).  Returns how many were appended.
 * (Not static: test_sup_redis runs it against a real Redis.)
 */
const char streams_script[] =
    "local cur = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') "
    "if cur < tonumber(ARGV[2]) then "
    "  return redis.error_reply('ORDER ' .. KEYS[1] .. ' is at ' .. cur .. ', the batch expects ' .. ARGV[2]) "
    "end "
    "local added, last = 0, cur "
    "for a = 4, #ARGV, 8 do "
    "  local id = tonumber(ARGV[a]) "
    "  if id > last then "
    "    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', "
    "      'event_id', ARGV[a+1], 'type', ARGV[a+2], 'agent_name', ARGV[a+3], "
    "      'timestamp', ARGV[a+4], 'seq', ARGV[a+5], 'session_id', ARGV[a+6], "
    "      'payload', ARGV[a+7]) "
    "    added = added + 1 "
    "    last = id "
    "  end "
    "end "
    "if last > cur then redis.call('HSET', KEYS[2], ARGV[1], last) end "
    "return added";

/* An event ready to ship: the script's eight arguments for it, encoded in
 * RESP once and copied into both of its streams' calls. */
struct outgoing {
	int64_t id;
	char *sid;               /* its session ("" for none) */
	char *args;
	size_t len;
};

/* One stream's part of a batch: events ev[idx[0..n)], in id order. */
struct group {
	char *name;
	const size_t *idx;
	size_t n;
};

struct batch {
	const struct outgoing **ev;
	struct outgoing *owned;  /* read back from SQLite */
	size_t n, nowned;
	size_t *idx;             /* ev's indexes: by session, id order within */
	struct group *groups;    /* the global stream first */
	size_t ngroups;
	int64_t last;
};

/* A batch in flight: its last id, and the replies it waits for. */
struct flight {
	int64_t last;
	int due;
	bool failed;
};

struct streams {
	struct relay *relay;
	struct store *store;
	struct rconn *rc;
	char stream[256];
	char maxlen[24];
	char epoch[32];
	char sha[48];
	bool ready;              /* the script is loaded */
	bool loading;            /* its SCRIPT LOAD is in flight */
	struct outgoing *tail;   /* ring of TAIL_MAX, consecutive ids, oldest first */
	size_t tail_head, tail_n, tail_bytes;
	struct flight flight[PIPELINE];  /* oldest first, from head */
	size_t head, nflight;
	bool failed;             /* a batch failed: drain, then restart from shipped */
	bool why_kept;           /* why holds the first failure since the restart */
	int64_t sent;            /* the last id sent (0: start from shipped) */
	json_t *expect;          /* stream -> the last id sent to it since the restart */
	char why[320];
};

static void on_reply(struct rconn *rc, redisReply *reply, const char *err, void *priv);
static void load_script(struct streams *x);

/* ---- RESP ------------------------------------------------------------------ */

/* v in decimal into d[20]; returns the length. */
static size_t
digits(char *d, uint64_t v)
{
	char r[20];
	size_t n = 0;
	do
		r[n++] = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	for (size_t i = 0; i < n; i++)
		d[i] = r[n - 1 - i];
	return n;
}

static void
put_uint(struct buf *b, uint64_t v)
{
	char d[20];
	buf_append(b, d, digits(d, v));
}

static void
put_bulk(struct buf *b, const char *s, size_t len)
{
	buf_append(b, "$", 1);
	put_uint(b, len);
	buf_append(b, "\r\n", 2);
	buf_append(b, s, len);
	buf_append(b, "\r\n", 2);
}

static void
put_str(struct buf *b, const char *s)
{
	put_bulk(b, s, strlen(s));
}

/* A number as a bulk string (ids and seqs are never negative). */
static void
put_num(struct buf *b, int64_t v)
{
	char d[20];
	put_bulk(b, d, digits(d, (uint64_t)(v < 0 ? 0 : v)));
}

static void
put_header(struct buf *b, size_t argc)
{
	buf_append(b, "*", 1);
	put_uint(b, argc);
	buf_append(b, "\r\n", 2);
}

/* ---- the encoded tail ------------------------------------------------------- */

static void
encode_event(struct outgoing *o, const struct event *ev, const char *ts, const char *sid,
    const char *payload)
{
	struct buf b;
	buf_init(&b);
	put_num(&b, ev->id);
	put_str(&b, ev->event_id);
	put_str(&b, ev->type);
	put_str(&b, ev->agent_name);
	put_str(&b, ts);
	put_num(&b, ev->seq);
	put_str(&b, sid);
	put_str(&b, payload);
	o->id = ev->id;
	o->sid = xstrdup(sid);
	o->args = (char *)b.data;
	o->len = b.len;
}

static void
outgoing_free(struct outgoing *o)
{
	free(o->sid);
	free(o->args);
}

static struct outgoing *
tail_at(struct streams *x, size_t i)
{
	return &x->tail[(x->tail_head + i) % TAIL_MAX];
}

/* Forget what Redis has acknowledged. */
static void
tail_trim(struct streams *x, int64_t shipped)
{
	while (x->tail_n > 0 && tail_at(x, 0)->id <= shipped) {
		struct outgoing *o = tail_at(x, 0);
		x->tail_bytes -= o->len;
		outgoing_free(o);
		x->tail_head = (x->tail_head + 1) % TAIL_MAX;
		x->tail_n--;
	}
}

void
streams_offer(struct streams *x, const struct event *ev, const char *payload_json)
{
	char ts[32];
	/* One run of consecutive ids: when it is full, or this one does not
	 * follow it, SQLite serves what the tail lacks; a new run starts once
	 * the acknowledgements have emptied this one. */
	if (x->tail_n > 0 && (x->tail_n == TAIL_MAX || x->tail_bytes > TAIL_BYTES ||
	    tail_at(x, x->tail_n - 1)->id + 1 != ev->id))
		return;
	const char *sid = json_string_value(json_object_get(ev->payload, "session_id"));
	struct outgoing *o = tail_at(x, x->tail_n++);
	iso8601(ev->timestamp, ts, sizeof(ts));
	encode_event(o, ev, ts, sid ? sid : "", payload_json);
	x->tail_bytes += o->len;
}

/* ---- putting a batch together ------------------------------------------------ */

static void
batch_free(struct batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->nowned; i++)
		outgoing_free(&b->owned[i]);
	for (size_t i = 0; i < b->ngroups; i++)
		free(b->groups[i].name);
	free(b->groups);
	free(b->idx);
	free(b->owned);
	free(b->ev);
	free(b);
}

static void
batch_add_stored(void *ctx, const struct event *ev, const char *sid)
{
	struct batch *b = ctx;
	char ts[32];
	iso8601(ev->timestamp, ts, sizeof(ts));
	encode_event(&b->owned[b->nowned], ev, ts, sid, ev->payload_json);
	b->ev[b->n++] = &b->owned[b->nowned++];
}

/* The events after from, up to upto, at most BATCH: from the tail when it
 * holds from + 1, else from SQLite (up to where the tail begins, if it
 * begins later). */
static struct batch *
batch_collect(struct streams *x, int64_t from, int64_t upto)
{
	struct batch *b = xcalloc(1, sizeof(*b));
	int64_t limit = upto - from < BATCH ? upto - from : BATCH;

	tail_trim(x, store_shipped(x->store));	/* the outbox bound may have moved it */
	int64_t first = x->tail_n ? tail_at(x, 0)->id : 0;
	int64_t last = x->tail_n ? tail_at(x, x->tail_n - 1)->id : 0;
	if (x->tail_n && first <= from + 1 && from + 1 <= last) {
		size_t at = (size_t)(from + 1 - first);
		if ((int64_t)(x->tail_n - at) < limit)
			limit = (int64_t)(x->tail_n - at);
		b->ev = xcalloc((size_t)limit, sizeof(*b->ev));
		for (b->n = 0; b->n < (size_t)limit; b->n++)
			b->ev[b->n] = tail_at(x, at + b->n);
		return b;
	}
	if (x->tail_n && first > from + 1 && first - from - 1 < limit)
		limit = first - from - 1;
	b->owned = xcalloc((size_t)limit, sizeof(*b->owned));
	b->ev = xcalloc((size_t)limit, sizeof(*b->ev));
	if (store_outbox_read(x->store, from, (int)limit, batch_add_stored, b) < 0)
		b->n = 0;
	return b;
}

static const struct outgoing **sort_base;

/* By session, and in id order within one. */
static int
by_session(const void *p, const void *q)
{
	size_t i = *(const size_t *)p, j = *(const size_t *)q;
	int c = strcmp(sort_base[i]->sid, sort_base[j]->sid);
	return c ? c : (i > j) - (i < j);
}

/* The global stream's group (every event), then one per session. */
static void
batch_group(struct streams *x, struct batch *b)
{
	char name[512];
	b->idx = xcalloc(2 * b->n, sizeof(*b->idx));
	b->groups = xcalloc(b->n + 1, sizeof(*b->groups));
	for (size_t i = 0; i < b->n; i++)
		b->idx[i] = b->idx[b->n + i] = i;
	b->groups[b->ngroups++] = (struct group){ .name = xstrdup(x->stream),
		.idx = b->idx, .n = b->n };
	size_t *by = b->idx + b->n;
	sort_base = b->ev;
	qsort(by, b->n, sizeof(*by), by_session);
	for (size_t i = 0, j; i < b->n; i = j) {
		const char *sid = b->ev[by[i]]->sid;
		for (j = i + 1; j < b->n && strcmp(b->ev[by[j]]->sid, sid) == 0; j++)
			;
		snprintf(name, sizeof(name), "%s:%s", x->stream, *sid ? sid : "none");
		b->groups[b->ngroups++] = (struct group){ .name = xstrdup(name),
			.idx = by + i, .n = j - i };
	}
	b->last = b->ev[b->n - 1]->id;
}

/* ---- sending ------------------------------------------------------------------ */

/* One script call for the group's stream, expecting it to have reached
 * what was sent to it before. */
static int
send_group(struct streams *x, const struct batch *b, const struct group *g)
{
	struct buf c;
	char prev[24], key[600];
	json_int_t expect = json_integer_value(json_object_get(x->expect, g->name));

	snprintf(prev, sizeof(prev), "%lld", (long long)expect);
	snprintf(key, sizeof(key), "{%s}:cursors", g->name);
	buf_init(&c);
	put_header(&c, 8 + 8 * g->n);
	put_str(&c, "EVALSHA");
	put_str(&c, x->sha);
	put_str(&c, "2");
	put_str(&c, g->name);
	put_str(&c, key);
	put_str(&c, x->epoch);
	put_str(&c, prev);
	put_str(&c, x->maxlen);
	for (size_t i = 0; i < g->n; i++)
		buf_append(&c, b->ev[g->idx[i]]->args, b->ev[g->idx[i]]->len);
	int rc = rconn_formatted(x->rc, on_reply, x, (const char *)c.data, c.len);
	buf_free(&c);
	if (rc == 0)
		json_object_set_new(x->expect, g->name, json_integer(b->ev[g->idx[g->n - 1]]->id));
	return rc;
}

/* Send the next batches, while the pipeline has room. */
void
streams_pump(struct streams *x)
{
	if (x && !x->ready) {
		load_script(x);
		return;
	}
	while (x && !x->failed && x->nflight < PIPELINE) {
		int64_t from = x->sent > store_shipped(x->store) ? x->sent : store_shipped(x->store);
		int64_t upto = store_last_id(x->store);
		if (from >= upto)
			return;
		struct batch *b = batch_collect(x, from, upto);
		if (b->n == 0) {
			batch_free(b);
			return;
		}
		batch_group(x, b);
		struct flight *f = &x->flight[(x->head + x->nflight) % PIPELINE];
		*f = (struct flight){ .last = b->last };
		bool ok = true;
		for (size_t i = 0; i < b->ngroups && ok; i++)
			if ((ok = send_group(x, b, &b->groups[i]) == 0))
				f->due++;
		batch_free(b);
		if (f->due == 0)	/* nothing went out: the connection is gone */
			return;
		x->nflight++;
		if (!ok) {	/* part went out: let its replies come, then start over */
			f->failed = true;
			x->failed = true;
			if (!x->why_kept)
				snprintf(x->why, sizeof(x->why), "the connection went down");
			x->why_kept = true;
			return;
		}
		x->sent = f->last;
	}
}

/* ---- replies ---------------------------------------------------------------- */

/* Drop expectations every acknowledged batch has met: nothing sent to
 * those streams is still in flight. */
static void
expect_prune(struct streams *x)
{
	const char *k;
	json_t *v;
	void *tmp;
	json_object_foreach_safe(x->expect, tmp, k, v)
		if (json_integer_value(v) <= store_shipped(x->store))
			json_object_del(x->expect, k);
}

/* The oldest batch in flight has all its replies. */
static void
flight_done(struct streams *x)
{
	struct flight *f = &x->flight[x->head];
	if (f->failed && !x->failed)
		x->failed = true;
	if (!x->failed) {
		store_set_shipped(x->store, f->last);
		store_flush(x->store);
		tail_trim(x, f->last);
		expect_prune(x);
	}
	x->head = (x->head + 1) % PIPELINE;
	x->nflight--;
	if (x->failed && x->nflight == 0) {	/* drained: start over from shipped */
		x->failed = false;
		x->why_kept = false;
		x->sent = 0;
		json_object_clear(x->expect);
		relay_lane_failed(x->relay, "event", f->last, x->why);
		return;
	}
	if (!x->failed) {
		relay_lane_ok(x->relay);
		streams_pump(x);
	}
}

static void
on_reply(struct rconn *rc, redisReply *reply, const char *err, void *priv)
{
	struct streams *x = priv;
	struct flight *f = &x->flight[x->head];
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
		f->failed = true;
		/* The first failure is the cause (OOM, a lost connection); the
		 * batches behind it then fail their ORDER guard because of it. */
		if (!x->why_kept)
			snprintf(x->why, sizeof(x->why), "%s", reply ? reply->str : err);
		x->why_kept = true;
		if (reply && strncmp(reply->str, "NOSCRIPT", 8) == 0)
			streams_connected(x);	/* someone ran SCRIPT FLUSH */
	}
	if (--f->due == 0)
		flight_done(x);
}

/* A SCRIPT LOAD that fails (LOADING while Redis reads its data, NOPERM, a
 * lost connection) is tried again from the relay's retry timer, with its
 * backoff: the lane is never left waiting for a script that will not come. */
static void
on_script_loaded(struct rconn *rc, redisReply *reply, const char *err, void *priv)
{
	struct streams *x = priv;
	x->loading = false;
	if (reply == NULL || reply->type != REDIS_REPLY_STRING) {
		snprintf(x->why, sizeof(x->why), "SCRIPT LOAD: %s", reply ? reply->str : err);
		relay_lane_retry(x->relay, x->why);
		return;
	}
	snprintf(x->sha, sizeof(x->sha), "%s", reply->str);
	x->ready = true;
	streams_pump(x);
}

static void
load_script(struct streams *x)
{
	const char *argv[] = { "SCRIPT", "LOAD", streams_script };
	if (x->loading)
		return;
	/* not up: the next connection loads it */
	x->loading = rconn_command(x->rc, on_script_loaded, x, 3, argv, NULL) == 0;
}

void
streams_connected(struct streams *x)
{
	if (x == NULL)
		return;
	x->ready = false;
	x->loading = false;	/* one in flight went down with the old connection */
	load_script(x);
}

/* ---- life ----------------------------------------------------------------------- */

struct streams *
streams_new(struct relay *r, struct store *s, struct rconn *rc, const struct global_conf *g)
{
	struct streams *x = xcalloc(1, sizeof(*x));
	x->relay = r;
	x->store = s;
	x->rc = rc;
	x->expect = json_object();
	x->tail = xcalloc(TAIL_MAX, sizeof(*x->tail));
	snprintf(x->epoch, sizeof(x->epoch), "%lld", (long long)store_epoch(s));
	snprintf(x->stream, sizeof(x->stream), "%s", g->redis_stream_key);
	snprintf(x->maxlen, sizeof(x->maxlen), "%lld", (long long)g->redis_stream_maxlen);
	return x;
}

/* After the connection: what was in flight came back failed then. */
void
streams_free(struct streams *x)
{
	if (x == NULL)
		return;
	tail_trim(x, INT64_MAX);
	free(x->tail);
	json_decref(x->expect);
	free(x);
}
