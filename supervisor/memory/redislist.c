/*
 * redislist: the memory backend of memory_store redis, a lane of the relay's
 * one Redis connection (supervisor/relay_int.h), which it shares with the
 * event and state lanes and their backoff.
 *
 * Rows of the SQLite memory table (the outbox), in id order, go to one list
 * per agent and type, agentd:{<agent>}:memory:<type> (JSON items, oldest
 * first, trimmed to memory_retention), one script call per list and batch,
 * with idempotence keys agentd:{<agent>}:memory-seen:<id> in the same slot
 * so a batch resent after lost replies adds nothing twice.  The cursor
 * moves once every call of a batch has been answered.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/jsonmp.h"
#include "common/log.h"
#include "common/util.h"
#include "conf/config.h"
#include "supervisor/memory/memory.h"
#include "supervisor/redis.h"
#include "supervisor/relay.h"
#include "supervisor/relay_int.h"
#include "supervisor/store.h"

#define BATCH 512
#define SEEN_TTL "3600"

/* KEYS[1] the list, KEYS[2..] idempotence keys; ARGV: ttl, keep, items. */
static const char script[] =
    "local added = 0 "
    "for i = 2, #KEYS do "
    "  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then "
    "    redis.call('RPUSH', KEYS[1], ARGV[i + 1]) "
    "    added = added + 1 "
    "  end "
    "end "
    "redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1) "
    "return added";

struct rmem {
	struct store *store;
	struct relay *relay;
	bool ready;              /* the connection is up and the script loaded */
	bool loading;            /* its SCRIPT LOAD is in flight */
	char sha[48];
	char keep[24];           /* memory_retention */
	struct relay_batch batch;
};

static void load_script(struct rmem *m);

static void
on_script_loaded(struct rconn *rc, redisReply *reply, const char *err, void *priv)
{
	struct rmem *m = priv;
	m->loading = false;
	if (reply == NULL || reply->type != REDIS_REPLY_STRING) {
		char why[320];
		snprintf(why, sizeof(why), "SCRIPT LOAD: %s", reply ? reply->str : err);
		relay_lane_retry(m->relay, why);	/* the next pump loads it again */
		return;
	}
	snprintf(m->sha, sizeof(m->sha), "%s", reply->str);
	m->ready = true;
	relay_pump(m->relay);
}

static void
load_script(struct rmem *m)
{
	const char *argv[] = { "SCRIPT", "LOAD", script };
	m->ready = false;
	if (m->loading)
		return;
	/* not up: the next connection loads it */
	m->loading = rconn_command(relay_conn(m->relay), on_script_loaded, m, 3, argv, NULL) == 0;
}

static void
connected(void *ctx)
{
	struct rmem *m = ctx;
	m->loading = false;	/* one in flight went down with the old connection */
	load_script(m);
}

/* Every call of the batch answered: the cursor moves past it. */
static void
on_reply(struct rconn *rc, redisReply *reply, const char *err, void *priv)
{
	struct rmem *m = priv;
	int64_t last = m->batch.last;

	if (reply && reply->type == REDIS_REPLY_ERROR && strstr(reply->str, "NOSCRIPT"))
		load_script(m);	/* someone ran SCRIPT FLUSH */
	if (!relay_batch_reply(m->relay, &m->batch, reply, err))
		return;
	relay_batch_done(m->relay, &m->batch);
	if (m->batch.failed)
		return;
	store_set_mem_shipped(m->store, last);
	store_flush(m->store);
	relay_pump(m->relay);
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
call_send(struct rmem *m, struct call *c)
{
	bool complete = true;
	int rc = -1;
	for (size_t i = 0; i < c->argc; i++)
		complete &= c->argv[i] != NULL;
	if (complete)
		rc = rconn_command(relay_conn(m->relay), on_reply, m, (int)c->argc, c->argv, NULL);
	for (size_t i = 0; i < c->nowned; i++)
		free(c->owned[i]);
	free(c->owned);
	free(c->argv);
	if (rc == 0)
		m->batch.due++;
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

/* One script call shipping memory rows idx[0..n) of rows to their list. */
static int
send_group(struct rmem *m, json_t *rows, const json_t *idx)
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
	c.argv[k++] = m->sha;
	c.argv[k++] = numkeys;
	c.argv[k++] = list;
	c.argv[a - 2] = SEEN_TTL;
	c.argv[a - 1] = m->keep;
	for (size_t i = 0; i < n; i++) {
		json_t *row = json_array_get(rows, (size_t)json_integer_value(json_array_get(idx, i)));
		char id[64];
		/* the row id and its time: a rebuilt state db reuses row ids */
		snprintf(id, sizeof(id), "%lld-%s", (long long)json_integer_value(
		    json_object_get(row, "id")), json_string_value(json_object_get(row, "timestamp")));
		c.argv[k++] = call_own(&c, fmt("agentd:{%s}:memory-seen:%s", agent, id));
		c.argv[a++] = call_own(&c, json_dumps_short(row, JSON_COMPACT));
	}
	return call_send(m, &c);
}

static void
pump(void *ctx)
{
	struct rmem *m = ctx;
	struct relay_batch *b = &m->batch;
	json_t *rows = NULL, *row, *lists, *idx;
	size_t i;
	const char *key;
	int64_t from = store_mem_shipped(m->store);

	if (!m->ready) {
		load_script(m);
		return;
	}
	if (b->last || from >= store_mem_last_id(m->store))
		return;
	if (store_mem_pending(m->store, from, BATCH, &rows) < 0 || json_array_size(rows) == 0) {
		json_decref(rows);
		return;
	}
	b->failed = false;
	b->due = 0;
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
			ok = send_group(m, rows, idx) == 0;
	b->last = json_integer_value(json_object_get(json_array_get(rows,
	    json_array_size(rows) - 1), "id"));
	b->failed = !ok;
	json_decref(lists);
	json_decref(rows);
	if (b->due == 0)
		b->last = 0;
}

static void
lane_status(void *ctx, json_t *o)
{
	struct rmem *m = ctx;
	json_object_set_new(o, "memory_pending", json_integer(store_mem_last_id(m->store) -
	    store_mem_shipped(m->store)));
}

static void *
start(struct store *s, const struct global_conf *g, struct relay *r, char *err, size_t errlen)
{
	struct rmem *m = xcalloc(1, sizeof(*m));
	m->store = s;
	m->relay = r;
	m->batch.what = "memory row";
	snprintf(m->keep, sizeof(m->keep), "%lld", (long long)(g->memory_retention > 0 ?
	    g->memory_retention : 10000));
	relay_set_lane(r, &(struct relay_lane){ .ctx = m, .connected = connected, .pump = pump,
	    .status = lane_status });
	return m;
}

/* After the relay: its end fails what is in flight into on_reply. */
static void
stop(void *b)
{
	free(b);
}

const struct mem_backend mem_redis = {
	.store = "redis", .name = "redis", .ships = true,
	.start = start, .stop = stop,
};
