/*
 * store: SQLite (state always; events when "database") and a bounded
 * in-memory ring (events when "memory").  Agent memory is
 * supervisor/memory/'s: its tables live in the same db, and its writes go
 * through this file's transaction and pending ops (store_ext below), so a
 * failed commit loses none of them either.
 *
 * One connection, WAL, prepared statements made once.  Writes open a
 * transaction lazily and store_flush() commits it at the end of the loop
 * pass, so a burst of events costs one fsync-less commit.  Retention runs
 * at flush time, not per insert.  A db that fails PRAGMA quick_check at
 * open is refused as it is, never reset.
 *
 * Event retention is fair by agent: past event_retention, events go from
 * the agents that hold the most.  Every agent keeps its newest events up
 * to an equal share of the bound, and what quiet agents leave unused goes
 * to the busy ones (max-min fairness), so a flood from one agent never
 * empties another's log while the log still fills to its bound.  A share
 * each would waste the bound on idle agents; a fixed per-agent bound would
 * need a second number, and still let many agents push out a few.  The
 * counts per agent live in memory (one GROUP BY at open).
 *
 * No write is lost to a commit that fails (a full disk, an I/O error, the
 * db locked by another program).  Each write to SQLite is also kept as an
 * op until a COMMIT has it; when a statement or the COMMIT fails, the
 * transaction is rolled back and the store is degraded: the ops stay, new
 * writes are only added to them, and a timer with a growing backoff (not
 * every loop pass) replays them all in one transaction until it commits.
 * While degraded, at most STORE_PENDING_EVENTS events (and event_retention)
 * and STORE_PENDING_BYTES bytes wait (common/limits.h); newer events and
 * memory rows are dropped and counted, by agent for events, and told as
 * events_dropped (store_take_drops) once the db takes writes again.  State
 * saves are coalesced, one op per agent, so a snapshot committed is the
 * latest and agrees with the events committed with it.  What a commit does
 * to counters (retention, the outbox watermark) is applied only once it has
 * committed.
 *
 * The configs of agents created over the API (api_agents) are not ops of
 * the batch: each write commits what is pending and then itself, before
 * the client is told, and fails whole (the client told so) while the db
 * takes no writes -- an agent a client was told of is on disk.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include "common/jsonmp.h"
#include "common/log.h"
#include "common/util.h"
#include "common/limits.h"
#include "conf/config.h"
#include "supervisor/loop.h"
#include "supervisor/memory/memory.h"
#include "supervisor/store.h"

#define SCHEMA_VERSION 1

enum { ST_STATE_GET, ST_STATE_PUT, ST_STATE_DEL, ST_EV_PUT, ST_EV_OUTBOX, ST_EV_TRIM, ST__N };

static const char *sql[ST__N] = {
	[ST_STATE_GET] = "SELECT run_count, error_count, skipped_count, restart_count, "
	    "last_run, last_success, next_run, seq, paused, session_id, extra "
	    "FROM agent_state WHERE agent = ?1",
	[ST_STATE_PUT] = "INSERT INTO agent_state (agent, run_count, error_count, "
	    "skipped_count, restart_count, last_run, last_success, next_run, seq, paused, "
	    "session_id, extra) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12) "
	    "ON CONFLICT(agent) DO UPDATE SET run_count=?2, error_count=?3, "
	    "skipped_count=?4, restart_count=?5, last_run=?6, last_success=?7, "
	    "next_run=?8, seq=?9, paused=?10, session_id=?11, extra=?12",
	[ST_STATE_DEL] = "DELETE FROM agent_state WHERE agent = ?1",
	[ST_EV_PUT] = "INSERT INTO events (id, event_id, type, agent_name, seq, timestamp, "
	    "payload) VALUES (?1,?2,?3,?4,?5,?6,?7)",
	[ST_EV_OUTBOX] = "SELECT id, event_id, type, agent_name, seq, timestamp, payload, "
	    "json_extract(payload, '$.session_id') FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
	/* An agent's oldest ?2 events up to id ?3, through the (agent_name,
	 * id) index: cost follows what is deleted. */
	[ST_EV_TRIM] = "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE "
	    "agent_name = ?1 AND id <= ?3 ORDER BY id LIMIT ?2)",
};

static const char *schema =
    "CREATE TABLE IF NOT EXISTS agent_state (agent TEXT PRIMARY KEY, run_count INTEGER, "
    "error_count INTEGER, skipped_count INTEGER, restart_count INTEGER, last_run INTEGER, "
    "last_success INTEGER, next_run INTEGER, seq INTEGER, paused INTEGER, "
    "session_id TEXT, extra TEXT);"
    "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, event_id TEXT, type TEXT, "
    "agent_name TEXT, seq INTEGER, timestamp INTEGER, payload TEXT);"
    "CREATE INDEX IF NOT EXISTS events_agent ON events (agent_name, id);"
    /* The listing's other filters (store_events_page): by session, the
     * expression the query names, so rows stored before it are covered. */
    "CREATE INDEX IF NOT EXISTS events_session ON events "
    "(json_extract(payload, '$.session_id'), id);"
    "CREATE INDEX IF NOT EXISTS events_type ON events (type, id);"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER);"
    "CREATE TABLE IF NOT EXISTS api_agents (name TEXT PRIMARY KEY, config TEXT NOT NULL, "
    "etag TEXT NOT NULL);";

/*
 * The listing's queries, one per set of filters (agent, session, type),
 * each on the index of its first filter, prepared when first asked for.
 * Binds: ?1 after, ?2 limit, ?3 agent, ?4 session, ?5 type, ?6 the last id.
 */
enum { EVF_AGENT = 1, EVF_SESSION = 2, EVF_TYPE = 4, EVF__N = 8 };
static const char *const ev_where[] = { " AND agent_name = ?3",
	" AND json_extract(payload, '$.session_id') = ?4", " AND type = ?5" };

/* The memory backend's log: slots in id order; agent NULL is a hole left
 * by retention, squeezed out when the slots run out. */
struct ring_event { struct event ev; char *type, *agent; };

#define RETRY_FIRST_MS 500          /* a failed commit is tried again after this, */
#define RETRY_MAX_MS 30000          /* doubling up to this */

/* A write to SQLite not yet committed: executed in the open transaction
 * and kept, so that a failed commit can be replayed whole. */
enum op_kind { OP_EVENT, OP_EXT, OP_STATE, OP_STATE_DEL };

struct op {
	enum op_kind kind;
	char *agent;
	size_t bytes;                 /* held, for STORE_PENDING_BYTES */
	union {
		struct { int64_t id, seq, ts; char event_id[37]; char *type, *payload; } ev;
		struct { const struct store_ext *x; void *data; bool row; } ext;   /* a memory row, or not */
		struct { struct agent_state st; char *extra; } state;   /* st.extra unused */
	} u;
};

/* What a commit's pruning did, applied once the commit has it. */
struct prune_fx {
	int64_t deleted;              /* events gone by retention */
	int64_t shipped_to;           /* the outbox bound moved the watermark here */
	int64_t unshipped;            /* of which never shipped */
	json_t *drops;                /* agent -> {dropped, first_seq, last_seq} */
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *st[ST__N];
	sqlite3_stmt *ev_page[EVF__N], *ev_tail[EVF__N];   /* by filter mask */
	bool in_tx;
	bool events_in_db;
	const char *event_backend;
	int64_t retention;
	int64_t next_id;          /* next event id (both backends) */
	int64_t dropped;
	/* memory event backend */
	struct ring_event *ring;
	size_t ring_len, ring_cap;  /* slots used (holes included), slots */
	size_t ring_first;          /* no live event before this slot */
	json_t *counts;           /* agent -> events in the log (both backends) */
	int64_t rows;             /* their sum */
	bool prune_events;
	json_t *state_dirty;      /* state_store redis: agent -> saved (true) / deleted */
	/* What the last COMMIT made durable: a shipper never sends past it,
	 * or a crash before the commit would let ids be reused for other events
	 * that the far side then takes for ones it already has. */
	int64_t ev_committed;
	struct memory *mem;       /* agent memory (supervisor/memory/), opened with the store */
	const struct store_ext *ext;  /* its tables' hooks */
	int64_t epoch;            /* made when the db was created: ids restart with it */
	bool outbox;              /* events wait here until shipped_id passes them */
	int64_t shipped_id;       /* highest event id the relay has delivered */
	int64_t outbox_dropped;   /* unshipped events dropped at the outbox bound */
	int64_t shipped_n;        /* events the relay delivered, since start */
	int64_t errors;           /* statements and commits that failed, since start */
	json_t *outbox_drops;     /* agent -> what of it was dropped, until taken */
	void (*on_commit)(void *ctx);
	void *on_commit_ctx;
	/* Writes since the last commit (all of them, while degraded). */
	struct op *ops;
	size_t nops, capops;
	json_t *state_ops;        /* agent -> index of its state op in ops */
	size_t pend_events, pend_mem, pend_bytes;   /* pend_mem: ext ops that are rows */
	struct prune_fx fx;
	int64_t marks[2];         /* next_event_id, shipped_id as committed */
	/* Degraded: the last commit failed. */
	bool degraded;
	bool replay_due;          /* the retry timer has fired */
	char err[320];            /* why */
	int64_t since;            /* wall ms the episode began; 0: none */
	int64_t backoff;
	int64_t next_retry;       /* wall ms */
	struct timer retry;
	bool dropping;            /* past the pending bound (said once) */
	int64_t dropped_events, dropped_mem;  /* at the pending bound, since start */
	int64_t ep_events, ep_mem;            /* the same when the episode began */
	json_t *pend_drops;       /* agent -> {dropped, first_seq, last_seq}, this episode */
	json_t *drops_ready;      /* the same, once committed again, until taken */
	char drops_reason[512];
};

int store_set_shipped(struct store *s, int64_t id);

/* A read failed: said, and -1. */
static int
db_fail(struct store *s, const char *what)
{
	log_error("store: %s: %s", what, sqlite3_errmsg(s->db));
	s->errors++;
	return -1;
}

static int failed(struct store *s, const char *what);
static void fx_clear(struct prune_fx *fx);
static void ops_clear(struct store *s);
static void on_retry(struct timer *t);
static void recount(struct store *s);

static int
begin(struct store *s)
{
	if (s->in_tx)
		return 0;
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return failed(s, "begin");
	s->in_tx = true;
	return 0;
}

static sqlite3_stmt *
stmt(struct store *s, int which)
{
	sqlite3_stmt *st = s->st[which];
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

/* A db SQLite calls damaged is refused as it is: starting "fresh" over it
 * would reset every counter and session id, and writing into it would fail
 * or spread the damage.  What to do is the operator's call. */
static int
refuse_damaged(const char *path, const char *why, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s is damaged (%s); agentd will not start over it: "
	    "restore it from a backup, or move it aside to start with an empty state "
	    "(its counters, session ids, events and memory are then gone; "
	    "`sqlite3 %s .recover` salvages what it can)", path, why, path);
	return -1;
}

/* PRAGMA quick_check: every page and index entry well-formed (not the
 * full cross-check of integrity_check, which costs far more at start). */
static int
check_db(struct store *s, const char *path, char *err, size_t errlen)
{
	sqlite3_stmt *q;
	char first[256] = "";
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &q, NULL);

	if (rc == SQLITE_OK) {
		if ((rc = sqlite3_step(q)) == SQLITE_ROW)
			snprintf(first, sizeof(first), "%s", (const char *)sqlite3_column_text(q, 0));
		sqlite3_finalize(q);
	}
	if (rc == SQLITE_ROW && strcmp(first, "ok") == 0)
		return 0;
	for (char *p = first; *p; p++)	/* one log line */
		if (*p == '\n')
			*p = ' ';
	return refuse_damaged(path, first[0] ? first : sqlite3_errmsg(s->db), err, errlen);
}

static bool
damaged(int rc)
{
	return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB;
}

static int
open_db(struct store *s, const char *dir, char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/agentd.db", dir);
	if (mkdir_p(dir, 0700) < 0) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path, sqlite3_errmsg(s->db));
		return -1;
	}
	sqlite3_busy_timeout(s->db, 1000);
	char *e = NULL;
	if (check_db(s, path, err, errlen) < 0)	/* before anything writes to it */
		return -1;
	int rc = sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, &e);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL", NULL, NULL, &e);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, schema, NULL, NULL, &e);
	if (rc != SQLITE_OK) {
		const char *why = e ? e : sqlite3_errmsg(s->db);
		if (damaged(rc))
			refuse_damaged(path, why, err, errlen);
		else
			snprintf(err, errlen, "%s: %s", path, why);
		sqlite3_free(e);
		return -1;
	}
	sqlite3_exec(s->db, "PRAGMA user_version = 1", NULL, NULL, NULL);
	for (int i = 0; i < ST__N; i++)
		if (sqlite3_prepare_v3(s->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		    &s->st[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s: preparing statements: %s", path,
			    sqlite3_errmsg(s->db));
			return -1;
		}
	sqlite3_stmt *q;
	s->next_id = 1;
	s->shipped_id = store_meta_get(s, "shipped_id");
	s->epoch = store_meta_get(s, "epoch");
	if (s->epoch == 0) {
		char ins[96];
		s->epoch = 1 + (int64_t)(rand_unit() * 9.0e15);
		snprintf(ins, sizeof(ins), "INSERT OR REPLACE INTO meta VALUES ('epoch', %lld)",
		    (long long)s->epoch);
		sqlite3_exec(s->db, ins, NULL, NULL, NULL);
	}
	if (sqlite3_prepare_v2(s->db, "SELECT COALESCE(MAX(id),0), "
	    "(SELECT value FROM meta WHERE key='next_event_id') FROM events", -1, &q, NULL) == SQLITE_OK) {
		if (sqlite3_step(q) == SQLITE_ROW) {
			int64_t m = sqlite3_column_int64(q, 0) + 1;
			int64_t saved = sqlite3_column_int64(q, 1);
			s->next_id = m > saved ? m : saved;
		}
		sqlite3_finalize(q);
	}
	s->ev_committed = s->next_id - 1;
	recount(s);
	return 0;
}

int
store_open(struct store **out, const struct global_conf *g, char *err, size_t errlen)
{
	struct store *s = xcalloc(1, sizeof(*s));
	const char *ev = g->event_store ? g->event_store : "database";

	if (strcmp(ev, "database") && strcmp(ev, "memory") && strcmp(ev, "redis_stream")) {
		snprintf(err, errlen, "event_store %s is not available in this build "
		    "(available: database, memory, redis_stream)", ev);
		free(s);
		return -1;
	}
	/* redis_stream keeps every event in SQLite first: the table is the
	 * durable outbox the relay ships from (relay.c). */
	s->events_in_db = strcmp(ev, "memory") != 0;
	s->outbox = strcmp(ev, "redis_stream") == 0;
	s->event_backend = s->outbox ? "redis_stream" : s->events_in_db ? "database" : "memory";
	s->retention = g->event_retention > 0 ? g->event_retention : 100000;
	s->outbox_drops = json_object();
	s->state_ops = json_object();
	s->counts = json_object();
	s->pend_drops = json_object();
	s->drops_ready = json_object();
	fx_clear(&s->fx);
	timer_init(&s->retry, on_retry, s);
	if (g->state_store && strcmp(g->state_store, "redis") == 0)
		s->state_dirty = json_object();
	if (open_db(s, g->state_dir, err, errlen) < 0 || mem_open(&s->mem, s, g, err, errlen) < 0) {
		store_close(s);
		return -1;
	}
	s->marks[0] = s->next_id;
	s->marks[1] = s->shipped_id;
	if (!s->events_in_db) {	/* room for as many holes as events */
		s->ring_cap = 2 * (size_t)s->retention;
		s->ring = xcalloc(s->ring_cap, sizeof(*s->ring));
	}
	*out = s;
	return 0;
}

static void
ring_clear(struct store *s)
{
	for (size_t i = 0; i < s->ring_len; i++) {
		struct ring_event *r = &s->ring[i];
		free(r->type);
		free(r->agent);
		json_decref(r->ev.payload);
	}
	free(s->ring);
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	if (s->db) {
		store_flush(s);
		if (s->degraded) {	/* one last try: what fails now is lost */
			s->replay_due = true;
			store_flush(s);
		}
		if (s->degraded)
			log_error("store: %zu events and %zu memory rows could not be written to "
			    "the state db (%s) and are lost with this exit", s->pend_events,
			    s->pend_mem, s->err);
	}
	mem_close(s->mem);	/* its statements go before the db */
	if (s->db) {
		for (int i = 0; i < ST__N; i++)
			sqlite3_finalize(s->st[i]);
		for (int i = 0; i < EVF__N; i++) {
			sqlite3_finalize(s->ev_page[i]);
			sqlite3_finalize(s->ev_tail[i]);
		}
		sqlite3_close(s->db);
	}
	if (s->ring)
		ring_clear(s);
	json_decref(s->outbox_drops);
	json_decref(s->state_dirty);
	timer_stop(&s->retry);
	ops_clear(s);
	free(s->ops);
	json_decref(s->state_ops);
	json_decref(s->counts);
	json_decref(s->pend_drops);
	json_decref(s->drops_ready);
	json_decref(s->fx.drops);
	free(s);
}

/* ---- fair retention --------------------------------------------------------- */

static void
count_event(struct store *s, const char *agent, int64_t n)
{
	json_t *c = json_object_get(s->counts, agent);
	int64_t v = (c ? json_integer_value(c) : 0) + n;
	if (v > 0)
		json_object_set_new(s->counts, agent, json_integer(v));
	else
		json_object_del(s->counts, agent);
	s->rows += n;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Max-min fair shares of `budget` events among the agents in counts: the
 * level L such that every agent keeps min(count, L) (the remainder of the
 * division going to the first over it).  Returns {agent: events over its
 * share} for the agents above it; empty when everything fits. */
static json_t *
fair_excess(json_t *counts, int64_t budget)
{
	size_t n = json_object_size(counts), i = 0, over = 0;
	int64_t *c = xcalloc(n ? n : 1, sizeof(*c)), left = budget, level = 0;
	json_t *excess = json_object(), *v;
	const char *agent;

	json_object_foreach(counts, agent, v)
		c[i++] = json_integer_value(v);
	qsort(c, n, sizeof(*c), cmp_i64);
	for (i = 0; i < n; i++) {
		int64_t share = left / (int64_t)(n - i);
		if (c[i] > share) {
			level = share;
			over = n - i;
			break;
		}
		left -= c[i];
	}
	free(c);
	int64_t spare = left - level * (int64_t)over;
	json_object_foreach(counts, agent, v) {
		int64_t have = json_integer_value(v), keep = level;
		if (over == 0 || have <= level)
			continue;
		if (spare > 0) {
			keep++;
			spare--;
		}
		if (have > keep)
			json_object_set_new(excess, agent, json_integer(have - keep));
	}
	return excess;
}

/* The log's counts, read again: after a rollback they must be the db's. */
static void
recount(struct store *s)
{
	sqlite3_stmt *q;
	json_object_clear(s->counts);
	s->rows = 0;
	if (!s->events_in_db || sqlite3_prepare_v2(s->db, "SELECT agent_name, COUNT(*) "
	    "FROM events GROUP BY agent_name", -1, &q, NULL) != SQLITE_OK)
		return;
	while (sqlite3_step(q) == SQLITE_ROW) {
		const char *agent = (const char *)sqlite3_column_text(q, 0);
		count_event(s, agent ? agent : "", sqlite3_column_int64(q, 1));
	}
	sqlite3_finalize(q);
}

/* Past retention: each agent over its fair share loses its oldest
 * events, never one the outbox still has to ship (id > bound). */
static int
trim_fair(struct store *s, int64_t bound)
{
	json_t *excess = fair_excess(s->counts, s->retention), *v;
	const char *agent;
	int rc = 0;
	json_object_foreach(excess, agent, v) {
		sqlite3_stmt *q = stmt(s, ST_EV_TRIM);
		sqlite3_bind_text(q, 1, agent, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 2, json_integer_value(v));
		sqlite3_bind_int64(q, 3, bound);
		int done = sqlite3_step(q);
		sqlite3_reset(q);
		if (done != SQLITE_DONE) {
			rc = failed(s, "pruning events");
			break;
		}
		int64_t n = sqlite3_changes(s->db);
		count_event(s, agent, -n);
		s->fx.deleted += n;
	}
	json_decref(excess);
	return rc;
}

/* The memory backend over retention (by one): the oldest event of the
 * agent holding the most goes -- the same max-min fairness, one event at
 * a time. */
static void
ring_evict(struct store *s)
{
	const char *agent, *top = NULL;
	json_t *v;
	int64_t most = 0;
	json_object_foreach(s->counts, agent, v)
		if (json_integer_value(v) > most) {
			most = json_integer_value(v);
			top = agent;
		}
	for (size_t i = s->ring_first; top && i < s->ring_len; i++) {
		struct ring_event *r = &s->ring[i];
		if (r->agent == NULL || strcmp(r->agent, top) != 0)
			continue;
		count_event(s, r->agent, -1);	/* before top (a key of counts) can go */
		free(r->type);
		free(r->agent);
		json_decref(r->ev.payload);
		memset(r, 0, sizeof(*r));
		s->dropped++;
		while (s->ring_first < s->ring_len && s->ring[s->ring_first].agent == NULL)
			s->ring_first++;
		return;
	}
}

/* Out of slots: close up the holes (at most half of them are holes). */
static void
ring_squeeze(struct store *s)
{
	size_t k = 0;
	for (size_t i = 0; i < s->ring_len; i++)
		if (s->ring[i].agent)
			s->ring[k++] = s->ring[i];
	memset(&s->ring[k], 0, (s->ring_len - k) * sizeof(*s->ring));
	s->ring_len = k;
	s->ring_first = 0;
}

/* Add n dropped events (seq first..last) to what drops says of agent. */
static void
add_drop(json_t *drops, const char *agent, json_int_t n, json_int_t first, json_int_t last)
{
	json_t *d = json_object_get(drops, agent);
	if (d) {	/* not taken since the last drop: add up */
		n += json_integer_value(json_object_get(d, "dropped"));
		first = json_integer_value(json_object_get(d, "first_seq"));
	}
	json_object_set_new(drops, agent, json_pack("{s:I, s:I, s:I}", "dropped", n,
	    "first_seq", first, "last_seq", last));
}

static void
take_drops(json_t *drops, const char *reason, json_t *out)
{
	const char *agent;
	json_t *d;
	json_object_foreach(drops, agent, d) {
		json_t *e = json_deep_copy(d);
		json_object_set_new(e, "agent", json_string(agent));
		json_object_set_new(e, "reason", json_string(reason));
		json_array_append_new(out, e);
	}
	json_object_clear(drops);
}

json_t *
store_take_drops(struct store *s)
{
	json_t *out = json_array();
	take_drops(s->outbox_drops, "outbox full: Redis unreachable for too long (the bound "
	    "is 4x event_retention)", out);
	if (!s->degraded)	/* a report made now could only wait with the rest */
		take_drops(s->drops_ready, s->drops_reason, out);
	if (json_array_size(out) == 0) {
		json_decref(out);
		return NULL;
	}
	return out;
}

/* The outbox is full: the events up to id `upto` go, shipped or not, and
 * the unshipped ones are counted per agent for the events_dropped events
 * agentd emits (store_take_drops), once the commit that deletes them has
 * gone through. */
static int
drop_unshipped(struct store *s, int64_t upto)
{
	sqlite3_stmt *q;
	int rc = sqlite3_prepare_v2(s->db, "SELECT agent_name, COUNT(*), SUM(id > ?1), "
	    "MIN(CASE WHEN id > ?1 THEN seq END), MAX(CASE WHEN id > ?1 THEN seq END) "
	    "FROM events WHERE id <= ?2 GROUP BY agent_name", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return failed(s, "counting the outbox");
	sqlite3_bind_int64(q, 1, s->shipped_id);
	sqlite3_bind_int64(q, 2, upto);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *agent = (const char *)sqlite3_column_text(q, 0);
		json_int_t n = sqlite3_column_int64(q, 2);
		count_event(s, agent ? agent : "", -sqlite3_column_int64(q, 1));
		if (n == 0)
			continue;
		s->fx.unshipped += n;
		add_drop(s->fx.drops, agent ? agent : "", n, sqlite3_column_int64(q, 3),
		    sqlite3_column_int64(q, 4));
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return failed(s, "counting the outbox");
	char del[96];
	snprintf(del, sizeof(del), "DELETE FROM events WHERE id <= %lld", (long long)upto);
	if (sqlite3_exec(s->db, del, NULL, NULL, NULL) != SQLITE_OK)
		return failed(s, "pruning the outbox");
	s->fx.deleted += sqlite3_changes(s->db);
	s->fx.shipped_to = upto;
	return 0;
}

static void
fx_clear(struct prune_fx *fx)
{
	json_decref(fx->drops);
	*fx = (struct prune_fx){ .drops = json_object() };
}

/* The commit has it: what pruning did counts now. */
static void
fx_apply(struct store *s)
{
	struct prune_fx *fx = &s->fx;
	const char *agent;
	json_t *d;

	s->dropped += fx->deleted;
	if (fx->shipped_to > s->shipped_id) {
		s->outbox_dropped += fx->unshipped;
		log_error("store: outbox full: %lld unshipped events dropped (Redis unreachable "
		    "for too long; the bound is 4x event_retention)", (long long)fx->unshipped);
		json_object_foreach(fx->drops, agent, d)
			add_drop(s->outbox_drops, agent, json_integer_value(json_object_get(d,
			    "dropped")), json_integer_value(json_object_get(d, "first_seq")),
			    json_integer_value(json_object_get(d, "last_seq")));
		s->shipped_id = fx->shipped_to;
	}
	fx_clear(fx);
}

static int
prune(struct store *s)
{
	if (s->prune_events && s->events_in_db) {
		int64_t bound = s->outbox ? s->shipped_id : INT64_MAX;
		/* An unshipped event is kept past retention, up to the outbox
		 * bound (4x retention, over all agents: the watermark the relay
		 * ships by only moves forward); beyond that the oldest go,
		 * counted and reported (store_take_drops). */
		int64_t hard = s->next_id - 1 - 4 * s->retention;
		if (s->outbox && hard > s->shipped_id) {
			if (drop_unshipped(s, hard) < 0)
				return -1;
			bound = hard;
		}
		if (s->rows > s->retention && trim_fair(s, bound) < 0)
			return -1;
	}
	return s->ext && s->ext->prepare ? s->ext->prepare(s->ext->ctx) : 0;
}

/* The watermarks, in the transaction that makes them true. */
static int
write_marks(struct store *s)
{
	static const char *const keys[] = { "next_event_id", "shipped_id" };
	int64_t now[2] = { s->next_id, s->fx.shipped_to > s->shipped_id ? s->fx.shipped_to :
	    s->shipped_id };
	for (int i = 0; i < 2; i++)
		if (now[i] != s->marks[i] && store_meta_put(s, keys[i], now[i]) < 0)
			return -1;
	return 0;
}

void
store_on_commit(struct store *s, void (*fn)(void *ctx), void *ctx)
{
	s->on_commit = fn;
	s->on_commit_ctx = ctx;
}

/* ---- pending writes --------------------------------------------------------- */

static void
op_free(struct op *o)
{
	free(o->agent);
	switch (o->kind) {
	case OP_EVENT:
		free(o->u.ev.type);
		free(o->u.ev.payload);
		break;
	case OP_EXT:
		o->u.ext.x->free_op(o->u.ext.data);
		break;
	case OP_STATE:
	case OP_STATE_DEL:
		free(o->u.state.extra);
		break;
	}
}

static void
ops_clear(struct store *s)
{
	for (size_t i = 0; i < s->nops; i++)
		op_free(&s->ops[i]);
	s->nops = 0;
	s->pend_events = s->pend_mem = s->pend_bytes = 0;
	json_object_clear(s->state_ops);
}

static struct op *
op_new(struct store *s, enum op_kind kind, const char *agent, size_t bytes)
{
	if (s->nops == s->capops) {
		s->capops = s->capops ? s->capops * 2 : 64;
		s->ops = xrealloc(s->ops, s->capops * sizeof(*s->ops));
	}
	struct op *o = &s->ops[s->nops++];
	memset(o, 0, sizeof(*o));
	o->kind = kind;
	o->agent = xstrdup(agent);
	o->bytes = bytes + sizeof(*o);
	s->pend_bytes += o->bytes;
	return o;
}

/* The one state op of an agent (saves coalesce: the last wins). */
static struct op *
state_op(struct store *s, const char *agent, enum op_kind kind)
{
	json_t *ix = json_object_get(s->state_ops, agent);
	struct op *o;
	if (ix) {
		o = &s->ops[json_integer_value(ix)];
		free(o->u.state.extra);
		o->u.state.extra = NULL;
		o->kind = kind;
		return o;
	}
	o = op_new(s, kind, agent, 0);
	json_object_set_new(s->state_ops, agent, json_integer((json_int_t)(s->nops - 1)));
	return o;
}

static int
exec_event(struct store *s, struct op *o)
{
	sqlite3_stmt *q = stmt(s, ST_EV_PUT);
	sqlite3_bind_int64(q, 1, o->u.ev.id);
	sqlite3_bind_text(q, 2, o->u.ev.event_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, o->u.ev.type, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, o->agent, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 5, o->u.ev.seq);
	sqlite3_bind_int64(q, 6, o->u.ev.ts);
	sqlite3_bind_text(q, 7, o->u.ev.payload, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	if (rc != SQLITE_DONE)
		return failed(s, "appending an event");
	s->prune_events = true;
	count_event(s, o->agent, 1);
	return 0;
}

static int
exec_state(struct store *s, struct op *o)
{
	const struct agent_state *st = &o->u.state.st;
	sqlite3_stmt *q = stmt(s, o->kind == OP_STATE ? ST_STATE_PUT : ST_STATE_DEL);
	sqlite3_bind_text(q, 1, o->agent, -1, SQLITE_STATIC);
	if (o->kind == OP_STATE) {
		sqlite3_bind_int64(q, 2, st->run_count);
		sqlite3_bind_int64(q, 3, st->error_count);
		sqlite3_bind_int64(q, 4, st->skipped_count);
		sqlite3_bind_int64(q, 5, st->restart_count);
		sqlite3_bind_int64(q, 6, st->last_run);
		sqlite3_bind_int64(q, 7, st->last_success);
		sqlite3_bind_int64(q, 8, st->next_run);
		sqlite3_bind_int64(q, 9, st->seq);
		sqlite3_bind_int(q, 10, st->paused);
		sqlite3_bind_text(q, 11, st->session_id, -1, SQLITE_STATIC);
		if (o->u.state.extra)
			sqlite3_bind_text(q, 12, o->u.state.extra, -1, SQLITE_STATIC);
	}
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	if (rc != SQLITE_DONE)
		return failed(s, o->kind == OP_STATE ? "saving agent state" : "deleting agent state");
	return 0;
}

/* -1 when it failed: the transaction is gone and the store degraded. */
static int
exec_op(struct store *s, struct op *o)
{
	switch (o->kind) {
	case OP_EVENT:
		return exec_event(s, o);
	case OP_EXT:
		return o->u.ext.x->exec(o->u.ext.x->ctx, o->u.ext.data);
	case OP_STATE:
	case OP_STATE_DEL:
		return exec_state(s, o);
	}
	return 0;
}

/* A new op into the open transaction; while degraded it only waits.
 * Either way it is kept: 0. */
static int
apply(struct store *s, struct op *o)
{
	if (s->degraded)
		return 0;
	if (begin(s) == 0)
		(void)exec_op(s, o);
	return 0;
}

/* Degraded and past the pending bound: the write is not kept. */
static bool
over_bound(const struct store *s, size_t bytes, bool event)
{
	int64_t max_events = s->retention < STORE_PENDING_EVENTS ? s->retention :
	    STORE_PENDING_EVENTS;
	return s->degraded && (s->pend_bytes + bytes > STORE_PENDING_BYTES ||
	    (event && (int64_t)s->pend_events >= max_events));
}

static void
note_drop(struct store *s, const char *what)
{
	if (s->dropping)
		return;
	s->dropping = true;
	log_error("store: %zu events and %zu bytes wait in memory for the state db, the "
	    "most agentd keeps; newer %s and the rest are dropped (counted, and told as "
	    "events_dropped once the db takes writes)", s->pend_events, s->pend_bytes, what);
}

/* Ops need the rows they replace: after a rollback the db is as it was at
 * the last commit, and so must be what the store believes of it. */
static void
rolled_back(struct store *s)
{
	s->in_tx = false;
	fx_clear(&s->fx);
	recount(s);
	if (s->ext && s->ext->rolled_back)
		s->ext->rolled_back(s->ext->ctx);
}

/* A statement or the COMMIT failed: roll back, keep every op, and try
 * again later, less often each time. */
static int
failed(struct store *s, const char *what)
{
	snprintf(s->err, sizeof(s->err), "%s: %s", what, sqlite3_errmsg(s->db));
	s->errors++;
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	rolled_back(s);
	s->degraded = true;
	s->backoff = s->backoff ? s->backoff * 2 : RETRY_FIRST_MS;
	if (s->backoff > RETRY_MAX_MS)
		s->backoff = RETRY_MAX_MS;
	s->next_retry = wall_ms() + s->backoff;
	timer_in(&s->retry, s->backoff);
	if (s->since == 0) {
		s->since = wall_ms();
		s->ep_events = s->dropped_events;
		s->ep_mem = s->dropped_mem;
		log_error("store: %s; the writes wait in memory (%zu events, %zu memory rows) "
		    "until the state db takes them, tried again in %lld ms and then less often",
		    s->err, s->pend_events, s->pend_mem, (long long)s->backoff);
	} else
		log_warn("store: still failing: %s; %zu events and %zu memory rows waiting, "
		    "next try in %lld ms", s->err, s->pend_events, s->pend_mem,
		    (long long)s->backoff);
	return -1;
}

/* The first commit after an episode: say so, and make its drops known. */
static void
recovered(struct store *s)
{
	const char *agent;
	json_t *d;
	log_info("store: the state db takes writes again after %lld s; what waited is "
	    "committed (%lld events and %lld memory rows were dropped meanwhile)",
	    (long long)(wall_ms() - s->since) / 1000, (long long)(s->dropped_events -
	    s->ep_events), (long long)(s->dropped_mem - s->ep_mem));
	if (json_object_size(s->pend_drops)) {
		snprintf(s->drops_reason, sizeof(s->drops_reason), "the state db took no writes "
		    "(%s) for %lld s; at most %d events waited in memory for it",
		    s->err, (long long)(wall_ms() - s->since) / 1000, (int)(s->retention <
		    STORE_PENDING_EVENTS ? s->retention : STORE_PENDING_EVENTS));
		json_object_foreach(s->pend_drops, agent, d)
			add_drop(s->drops_ready, agent, json_integer_value(json_object_get(d,
			    "dropped")), json_integer_value(json_object_get(d, "first_seq")),
			    json_integer_value(json_object_get(d, "last_seq")));
		json_object_clear(s->pend_drops);
	}
	s->since = 0;
	s->backoff = 0;
	s->err[0] = '\0';
	s->dropping = false;
	timer_stop(&s->retry);
}

static void
committed(struct store *s)
{
	s->in_tx = false;
	fx_apply(s);
	s->marks[0] = s->next_id;
	s->marks[1] = s->shipped_id;
	s->ev_committed = s->next_id - 1;
	ops_clear(s);
	s->prune_events = false;
	if (s->ext && s->ext->committed)
		s->ext->committed(s->ext->ctx);
	if (s->since)
		recovered(s);
}

static int
commit(struct store *s)
{
	if (s->on_commit)
		s->on_commit(s->on_commit_ctx);
	if (s->degraded)	/* a save the hook made failed: rolled back already */
		return -1;
	if (prune(s) < 0 || write_marks(s) < 0)
		return -1;
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		return failed(s, "commit");
	committed(s);
	return 0;
}

/* Everything that waited, in one transaction. */
static int
replay(struct store *s)
{
	s->degraded = false;	/* what the commit hook saves goes in with it */
	if (begin(s) < 0)
		return -1;
	for (size_t i = 0; i < s->nops; i++)
		if (exec_op(s, &s->ops[i]) < 0)
			return -1;
	return commit(s);
}

static void
on_retry(struct timer *t)
{
	struct store *s = t->ctx;
	s->replay_due = true;
	store_flush(s);
}

int
store_flush(struct store *s)
{
	if (s->degraded) {
		if (!s->replay_due)
			return -1;
		s->replay_due = false;
		return replay(s);
	}
	if (!s->in_tx)
		return 0;
	return commit(s);
}

json_t *
store_status(const struct store *s)
{
	char since[32], next[32];
	iso8601(s->since, since, sizeof(since));
	iso8601(s->degraded ? s->next_retry : 0, next, sizeof(next));
	json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}",
	    "state", s->degraded ? "degraded" : "ok",
	    "pending_events", (json_int_t)(s->degraded ? s->pend_events : 0),
	    "pending_memory", (json_int_t)(s->degraded ? s->pend_mem : 0),
	    "pending_bytes", (json_int_t)(s->degraded ? s->pend_bytes : 0),
	    "dropped_events", (json_int_t)s->dropped_events,
	    "dropped_memory", (json_int_t)s->dropped_mem);
	json_object_set_new(o, "error", s->degraded ? json_string(s->err) : json_null());
	json_object_set_new(o, "since", since[0] ? json_string(since) : json_null());
	json_object_set_new(o, "next_retry", next[0] ? json_string(next) : json_null());
	return o;
}

void
store_stats(const struct store *s, struct store_stats *o)
{
	*o = (struct store_stats){ .degraded = s->degraded, .errors = s->errors,
		.pending_events = s->degraded ? (int64_t)s->pend_events : 0,
		.pending_memory = s->degraded ? (int64_t)s->pend_mem : 0,
		.dropped_events = s->dropped_events, .dropped_memory = s->dropped_mem,
		.events_outbox = s->outbox, .events_shipped = s->shipped_n,
		.events_unshipped = s->ev_committed > s->shipped_id ?
		    s->ev_committed - s->shipped_id : 0 };
	store_mem_stats(s, o);
}

/* ---- state ---------------------------------------------------------------- */

int
store_state_load(struct store *s, const char *agent, struct agent_state *st)
{
	json_t *ix = json_object_get(s->state_ops, agent);
	memset(st, 0, sizeof(*st));
	if (ix) {	/* saved (or deleted) since the last commit: that is its state */
		const struct op *o = &s->ops[json_integer_value(ix)];
		if (o->kind == OP_STATE_DEL)
			return 0;
		*st = o->u.state.st;
		st->extra = o->u.state.extra ? json_loads(o->u.state.extra, 0, NULL) : NULL;
		return 1;
	}
	sqlite3_stmt *q = stmt(s, ST_STATE_GET);
	sqlite3_bind_text(q, 1, agent, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	if (rc != SQLITE_ROW)
		sqlite3_reset(q);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return db_fail(s, "loading agent state");
	st->run_count = sqlite3_column_int64(q, 0);
	st->error_count = sqlite3_column_int64(q, 1);
	st->skipped_count = sqlite3_column_int64(q, 2);
	st->restart_count = sqlite3_column_int64(q, 3);
	st->last_run = sqlite3_column_int64(q, 4);
	st->last_success = sqlite3_column_int64(q, 5);
	st->next_run = sqlite3_column_int64(q, 6);
	st->seq = sqlite3_column_int64(q, 7);
	st->paused = sqlite3_column_int(q, 8) != 0;
	const char *sid = (const char *)sqlite3_column_text(q, 9);
	snprintf(st->session_id, sizeof(st->session_id), "%s", sid ? sid : "");
	const char *extra = (const char *)sqlite3_column_text(q, 10);
	if (extra)
		st->extra = json_loads(extra, 0, NULL);
	sqlite3_reset(q);
	return 1;
}

int
store_state_save(struct store *s, const char *agent, const struct agent_state *st)
{
	struct op *o = state_op(s, agent, OP_STATE);
	o->u.state.st = *st;
	o->u.state.st.extra = NULL;
	o->u.state.extra = st->extra ? json_dumps_short(st->extra, JSON_COMPACT) : NULL;
	if (s->state_dirty)
		json_object_set_new(s->state_dirty, agent, json_true());
	return apply(s, o);
}

int
store_state_delete(struct store *s, const char *agent)
{
	struct op *o = state_op(s, agent, OP_STATE_DEL);
	if (s->state_dirty)
		json_object_set_new(s->state_dirty, agent, json_false());
	return apply(s, o);
}

json_t *
store_state_take_dirty(struct store *s)
{
	json_t *d = s->state_dirty;
	if (d == NULL || json_object_size(d) == 0)
		return NULL;
	s->state_dirty = json_object();
	return d;
}

void
store_state_requeue(struct store *s, json_t *taken)
{
	const char *k;
	json_t *v;
	json_object_foreach(taken, k, v)	/* what changed since wins */
		if (s->state_dirty && json_object_get(s->state_dirty, k) == NULL)
			json_object_set(s->state_dirty, k, v);
}

void
agent_state_free(struct agent_state *st)
{
	json_decref(st->extra);
	st->extra = NULL;
}

/* ---- agents created over the API ---------------------------------------------- */

/* One statement in its own transaction, after what was pending: not an
 * op of the batch, because the client is answered once it is durable. */
static int
api_write(struct store *s, const char *sql_text, const char *name, const char *config,
    const char *etag, char *err, size_t errlen)
{
	sqlite3_stmt *q = NULL;
	if (store_flush(s) < 0 || s->degraded) {
		snprintf(err, errlen, "the state db takes no writes now (%s); nothing was changed",
		    s->err[0] ? s->err : "a commit failed");
		return -1;
	}
	int rc = sqlite3_prepare_v2(s->db, sql_text, -1, &q, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
		if (config) {
			sqlite3_bind_text(q, 2, config, -1, SQLITE_STATIC);
			sqlite3_bind_text(q, 3, etag, -1, SQLITE_STATIC);
		}
		rc = sqlite3_step(q);
	}
	sqlite3_finalize(q);
	if (rc == SQLITE_DONE)
		return 0;
	snprintf(err, errlen, "the state db refused the write: %s; nothing was changed",
	    sqlite3_errmsg(s->db));
	log_error("store: api agent %s: %s", name, sqlite3_errmsg(s->db));
	return -1;
}

int
store_api_put(struct store *s, const char *name, const char *config, const char *etag,
    char *err, size_t errlen)
{
	return api_write(s, "INSERT INTO api_agents (name, config, etag) "
	    "VALUES (?1, ?2, ?3) ON CONFLICT(name) DO UPDATE SET config = ?2, etag = ?3",
	    name, config, etag, err, errlen);
}

int
store_api_delete(struct store *s, const char *name, char *err, size_t errlen)
{
	return api_write(s, "DELETE FROM api_agents WHERE name = ?1", name, NULL, NULL,
	    err, errlen);
}

json_t *
store_api_list(struct store *s)
{
	sqlite3_stmt *q;
	json_t *out = json_array();
	/* an update keeps its row's rowid: this is the order they were created in */
	int rc = sqlite3_prepare_v2(s->db, "SELECT name, config, etag FROM api_agents "
	    "ORDER BY rowid", -1, &q, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		json_t *config = json_loads((const char *)sqlite3_column_text(q, 1), 0, NULL);
		json_array_append_new(out, json_pack("{s:s, s:o*, s:s}", "name",
		    (const char *)sqlite3_column_text(q, 0), "config", config, "etag",
		    (const char *)sqlite3_column_text(q, 2)));
		rc = SQLITE_OK;
	}
	if (q)
		sqlite3_finalize(q);
	if (rc == SQLITE_DONE)
		return out;
	db_fail(s, "reading the agents created over the API");
	json_decref(out);
	return NULL;
}

/* ---- events --------------------------------------------------------------- */

json_t *
event_to_json(const struct event *ev)
{
	char ts[32];
	iso8601(ev->timestamp, ts, sizeof(ts));
	return json_pack("{s:I, s:s, s:s, s:s, s:I, s:s, s:O}", "id", (json_int_t)ev->id,
	    "event_id", ev->event_id, "type", ev->type, "agent_name", ev->agent_name,
	    "seq", (json_int_t)ev->seq, "timestamp", ts, "payload", ev->payload);
}

int
store_event_append(struct store *s, struct event *ev)
{
	ev->id = s->next_id++;
	if (!s->events_in_db) {
		if (s->ring_len == s->ring_cap)
			ring_squeeze(s);
		struct ring_event *r = &s->ring[s->ring_len++];
		r->ev = *ev;
		r->type = xstrdup(ev->type);
		r->agent = xstrdup(ev->agent_name);
		r->ev.type = r->type;
		r->ev.agent_name = r->agent;
		r->ev.payload = json_incref(ev->payload);
		count_event(s, ev->agent_name, 1);
		if (s->rows > s->retention)
			ring_evict(s);
		s->ev_committed = ev->id;	/* nothing to commit: it is as kept as it will be */
		return 0;
	}
	char *payload = ev->payload_json ? xstrdup(ev->payload_json) :
	    json_dumps_short(ev->payload, JSON_COMPACT);
	if (payload == NULL)
		payload = xstrdup("{}");
	size_t bytes = strlen(payload) + strlen(ev->type) + strlen(ev->agent_name);
	if (over_bound(s, bytes, true)) {
		s->next_id--;	/* never stored: no id spent */
		ev->id = 0;
		free(payload);
		s->dropped_events++;
		json_t *d = json_object_get(s->pend_drops, ev->agent_name);
		add_drop(s->pend_drops, ev->agent_name, 1, d ? 0 : ev->seq, ev->seq);
		note_drop(s, "events");
		return 1;
	}
	struct op *o = op_new(s, OP_EVENT, ev->agent_name, bytes);
	o->u.ev.id = ev->id;
	o->u.ev.seq = ev->seq;
	o->u.ev.ts = ev->timestamp;
	memcpy(o->u.ev.event_id, ev->event_id, sizeof(o->u.ev.event_id));
	o->u.ev.type = xstrdup(ev->type);
	o->u.ev.payload = payload;
	s->pend_events++;
	return apply(s, o);
}

/* Columns 0-6 (id, event_id, type, agent_name, seq, timestamp, payload) as
 * an event, payload as text.  Never a row left out: a NULL column reads as
 * empty ("{}" for the payload). */
static void
row_event(sqlite3_stmt *q, struct event *ev)
{
	const char *id = (const char *)sqlite3_column_text(q, 1);
	memset(ev, 0, sizeof(*ev));
	ev->id = sqlite3_column_int64(q, 0);
	snprintf(ev->event_id, sizeof(ev->event_id), "%s", id ? id : "");
	ev->type = (const char *)sqlite3_column_text(q, 2);
	ev->agent_name = (const char *)sqlite3_column_text(q, 3);
	ev->seq = sqlite3_column_int64(q, 4);
	ev->timestamp = sqlite3_column_int64(q, 5);
	ev->payload_json = (const char *)sqlite3_column_text(q, 6);
	if (ev->type == NULL)
		ev->type = "";
	if (ev->agent_name == NULL)
		ev->agent_name = "";
	if (ev->payload_json == NULL)
		ev->payload_json = "{}";
}

/* Compact-JSON bytes of an event whose payload takes payload_len: the
 * envelope's fields, their names and punctuation, and the payload. */
static size_t
event_json_size(const struct event *ev, size_t payload_len)
{
	return 160 + strlen(ev->type) + strlen(ev->agent_name) + payload_len;
}

/* Adds ev to the page unless that would take it past its bound. */
static bool
page_add(struct events_page *pg, const struct event *ev, size_t payload_len)
{
	size_t n = event_json_size(ev, payload_len);
	if (json_array_size(pg->out) > 0 && pg->bytes + n > pg->max_bytes) {
		pg->cut = true;
		return false;
	}
	pg->bytes += n;
	json_array_append_new(pg->out, event_to_json(ev));
	return true;
}

bool
event_filter_match(const struct event_filter *f, const struct event *ev)
{
	if (f == NULL)
		return true;
	if (f->agent && strcmp(f->agent, ev->agent_name))
		return false;
	if (f->type && strcmp(f->type, ev->type))
		return false;
	if (f->session_id) {
		const char *sid = json_string_value(json_object_get(ev->payload, "session_id"));
		return sid && strcmp(sid, f->session_id) == 0;
	}
	return true;
}

static bool
ring_wanted(const struct ring_event *r, const struct event_filter *f, int64_t upto)
{
	return r->agent && r->ev.id <= upto && event_filter_match(f, &r->ev);
}

static int
ring_query(struct store *s, const struct event_filter *f, int64_t after, int limit,
    struct events_page *pg)
{
	int64_t upto = pg->upto > 0 ? pg->upto : INT64_MAX;
	size_t start = 0, n = 0;
	/* Newest-N: walk back from the end to find where to start. */
	if (after < 0) {
		size_t seen = 0;
		start = s->ring_len;
		while (start > 0 && seen < (size_t)limit) {
			seen += ring_wanted(&s->ring[start - 1], f, upto);
			start--;
		}
	}
	for (size_t i = start; i < s->ring_len && n < (size_t)limit; i++) {
		struct ring_event *r = &s->ring[i];
		if (r->ev.id <= after || !ring_wanted(r, f, upto))
			continue;
		if (!page_add(pg, &r->ev, json_compact_size(r->ev.payload)))
			break;
		n++;
	}
	return 0;
}

static unsigned
filter_mask(const struct event_filter *f)
{
	return f == NULL ? 0 : (f->agent ? EVF_AGENT : 0) | (f->session_id ? EVF_SESSION : 0) |
	    (f->type ? EVF_TYPE : 0);
}

/* The listing's statement for f, its filters bound. */
static sqlite3_stmt *
ev_stmt(struct store *s, const struct event_filter *f, bool tail)
{
	unsigned m = filter_mask(f);
	sqlite3_stmt **slot = tail ? &s->ev_tail[m] : &s->ev_page[m];
	if (*slot == NULL) {
		/* Where the newest ?2 start (tail): the id before the ?2-th
		 * newest, found through the keys alone (sorting the rows
		 * themselves would hold every payload of a long tail in memory). */
		char q[512];
		size_t n = (size_t)snprintf(q, sizeof(q), "%s", tail ?
		    "SELECT id - 1 FROM events WHERE id <= ?6" :
		    "SELECT id, event_id, type, agent_name, seq, timestamp, payload FROM events "
		    "WHERE id > ?1 AND id <= ?6");
		for (unsigned i = 0; i < ARRAY_LEN(ev_where); i++)
			if (m & (1u << i))
				n += (size_t)snprintf(q + n, sizeof(q) - n, "%s", ev_where[i]);
		snprintf(q + n, sizeof(q) - n, "%s", tail ?
		    " ORDER BY id DESC LIMIT 1 OFFSET ?2 - 1" : " ORDER BY id LIMIT ?2");
		int rc = sqlite3_prepare_v3(s->db, q, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
		if (rc != SQLITE_OK) {
			db_fail(s, "preparing an event query");
			return NULL;
		}
	}
	sqlite3_stmt *st = *slot;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (f && f->agent)
		sqlite3_bind_text(st, 3, f->agent, -1, SQLITE_STATIC);
	if (f && f->session_id)
		sqlite3_bind_text(st, 4, f->session_id, -1, SQLITE_STATIC);
	if (f && f->type)
		sqlite3_bind_text(st, 5, f->type, -1, SQLITE_STATIC);
	return st;
}

/* The id the newest `limit` events (of f) come after. */
static int
tail_start(struct store *s, const struct event_filter *f, int limit, int64_t upto,
    int64_t *after)
{
	sqlite3_stmt *q = ev_stmt(s, f, true);
	if (q == NULL)
		return -1;
	sqlite3_bind_int(q, 2, limit);
	sqlite3_bind_int64(q, 6, upto);
	int rc = sqlite3_step(q);
	*after = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;	/* fewer: all */
	sqlite3_reset(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_fail(s, "querying events");
}

int
store_events_page(struct store *s, const struct event_filter *f, int64_t after_id, int limit,
    struct events_page *pg)
{
	int64_t upto = pg->upto > 0 ? pg->upto : INT64_MAX;
	pg->out = json_array();
	pg->bytes = 0;
	pg->cut = false;
	if (!s->events_in_db)
		return ring_query(s, f, after_id, limit, pg);
	if (after_id < 0 && tail_start(s, f, limit, upto, &after_id) < 0)
		return -1;
	sqlite3_stmt *q = ev_stmt(s, f, false);
	if (q == NULL)
		return -1;
	sqlite3_bind_int64(q, 1, after_id);
	sqlite3_bind_int(q, 2, limit);
	sqlite3_bind_int64(q, 6, upto);
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct event ev;
		row_event(q, &ev);
		ev.payload = json_loads(ev.payload_json, 0, NULL);
		if (ev.payload == NULL)
			ev.payload = json_object();
		bool added = page_add(pg, &ev, (size_t)sqlite3_column_bytes(q, 6));
		json_decref(ev.payload);
		if (!added)
			break;
	}
	sqlite3_reset(q);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_fail(s, "querying events");
}

int
store_events_query(struct store *s, const char *agent, int64_t after_id, int limit,
    json_t **out)
{
	struct events_page pg = { .max_bytes = SIZE_MAX };
	struct event_filter f = { .agent = agent };
	int rc = store_events_page(s, &f, after_id, limit, &pg);
	*out = pg.out;
	return rc;
}

int
store_outbox_read(struct store *s, int64_t after_id, int limit, store_outbox_fn fn, void *ctx)
{
	sqlite3_stmt *q = stmt(s, ST_EV_OUTBOX);
	sqlite3_bind_int64(q, 1, after_id);
	sqlite3_bind_int(q, 2, limit);
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct event ev;
		const char *sid = (const char *)sqlite3_column_text(q, 7);
		row_event(q, &ev);
		fn(ctx, &ev, sid ? sid : "");
	}
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? 0 : db_fail(s, "reading the outbox");
}

const char *store_event_backend(const struct store *s) { return s->event_backend; }

/* ---- outbox bookkeeping (redis_stream) ----------------------------------------- */

int64_t
store_shipped(struct store *s)
{
	return s->shipped_id;
}

int64_t store_last_id(const struct store *s) { return s->ev_committed; }
int64_t store_outbox_dropped(const struct store *s) { return s->outbox_dropped; }

/* Watermarks are written by the commit that makes them true (write_marks):
 * here, only make sure one comes.  While degraded, the replay's does. */
int
store_touch(struct store *s)
{
	if (!s->degraded)
		(void)begin(s);
	return 0;
}

int
store_set_shipped(struct store *s, int64_t id)
{
	if (id <= s->shipped_id && id != 0)
		return 0;
	if (id > s->shipped_id)
		s->shipped_n += id - s->shipped_id;
	s->shipped_id = id;
	return store_touch(s);
}

int64_t store_epoch(const struct store *s) { return s->epoch; }
int64_t store_events_dropped(const struct store *s) { return s->dropped; }

/* ---- another module's tables (supervisor/memory/) ---------------------------- */

struct memory *store_memory(const struct store *s) { return s->mem; }
sqlite3 *store_db(const struct store *s) { return s->db; }
bool store_degraded(const struct store *s) { return s->degraded; }

void
store_set_ext(struct store *s, const struct store_ext *x)
{
	s->ext = x;
}

int
store_ext_failed(struct store *s, const char *what)
{
	return failed(s, what);
}

int
store_ext_write(struct store *s, const char *agent, void *data, size_t bytes, bool row)
{
	if (over_bound(s, bytes, false)) {
		s->ext->free_op(data);
		if (row) {
			s->dropped_mem++;
			note_drop(s, "memory rows");
		}
		return 1;
	}
	struct op *o = op_new(s, OP_EXT, agent, bytes);
	o->u.ext.x = s->ext;
	o->u.ext.data = data;
	o->u.ext.row = row;
	s->pend_mem += row;
	return apply(s, o);
}

int64_t
store_meta_get(struct store *s, const char *key)
{
	sqlite3_stmt *q;
	int64_t v = 0;
	if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = ?1", -1, &q,
	    NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return v;
}

int
store_meta_put(struct store *s, const char *key, int64_t value)
{
	sqlite3_stmt *q;
	int rc = sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO meta VALUES (?1, ?2)", -1,
	    &q, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 2, value);
		rc = sqlite3_step(q);
		sqlite3_finalize(q);
	}
	return rc == SQLITE_DONE || rc == SQLITE_OK ? 0 : failed(s, "recording watermarks");
}
