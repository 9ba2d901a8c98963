/*
 * store: SQLite (state always; events and memory when "database") and
 * bounded in-memory rings (events and memory when "memory").
 *
 * One connection, WAL, prepared statements made once.  Writes open a
 * transaction lazily and store_flush() commits it at the end of the loop
 * pass, so a burst of events costs one fsync-less commit.  Retention runs
 * at flush time: one DELETE per table, not one per insert.  A db that
 * fails PRAGMA quick_check at open is refused as it is, never reset.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include "common/jsonmp.h"
#include "common/log.h"
#include "common/util.h"
#include "conf/config.h"
#include "supervisor/pgship.h"
#include "supervisor/store.h"

#define SCHEMA_VERSION 1

enum { ST_STATE_GET, ST_STATE_PUT, ST_STATE_DEL, ST_EV_PUT, ST_EV_ALL, ST_EV_AGENT,
	ST_EV_TAIL, ST_EV_TAIL_AGENT, ST_EV_OUTBOX, ST_MEM_PUT, ST_MEM_GET, ST_MEM_CLEAR, ST_MEM_PRUNE, ST_MEM_PENDING, ST__N };

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
	[ST_EV_ALL] = "SELECT id, event_id, type, agent_name, seq, timestamp, payload "
	    "FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
	[ST_EV_AGENT] = "SELECT id, event_id, type, agent_name, seq, timestamp, payload "
	    "FROM events WHERE id > ?1 AND agent_name = ?3 ORDER BY id LIMIT ?2",
	/* Where the newest ?2 start: the id before the ?2-th newest, found
	 * through the keys alone (sorting the rows themselves would hold every
	 * payload of a long tail in memory). */
	[ST_EV_TAIL] = "SELECT id - 1 FROM events ORDER BY id DESC LIMIT 1 OFFSET ?2 - 1",
	[ST_EV_TAIL_AGENT] = "SELECT id - 1 FROM events WHERE agent_name = ?3 "
	    "ORDER BY id DESC LIMIT 1 OFFSET ?2 - 1",
	[ST_EV_OUTBOX] = "SELECT id, event_id, type, agent_name, seq, timestamp, payload, "
	    "json_extract(payload, '$.session_id') FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
	[ST_MEM_PUT] = "INSERT INTO memory (agent, session_id, memory_type, role, content, "
	    "metadata, timestamp) VALUES (?1,?2,?3,?4,?5,?6,?7)",
	[ST_MEM_GET] = "SELECT * FROM (SELECT id, role, content, memory_type, timestamp, "
	    "metadata FROM memory WHERE agent = ?1 AND memory_type = ?2 ORDER BY id DESC "
	    "LIMIT ?3) ORDER BY id",
	[ST_MEM_CLEAR] = "DELETE FROM memory WHERE agent = ?1 AND memory_type = ?2",
	/* Through the (agent, memory_type, id) index: cost follows what is
	 * deleted, not the size of the table. */
	[ST_MEM_PRUNE] = "DELETE FROM memory WHERE agent = ?1 AND memory_type = ?2 AND id <= "
	    "MIN(?4, (SELECT id FROM memory WHERE agent = ?1 AND memory_type = ?2 ORDER BY id "
	    "DESC LIMIT 1 OFFSET ?3))",
	[ST_MEM_PENDING] = "SELECT id, agent, session_id, memory_type, role, content, metadata, "
	    "timestamp FROM memory WHERE id > ?1 ORDER BY id LIMIT ?2",
};

static const char *schema =
    "CREATE TABLE IF NOT EXISTS agent_state (agent TEXT PRIMARY KEY, run_count INTEGER, "
    "error_count INTEGER, skipped_count INTEGER, restart_count INTEGER, last_run INTEGER, "
    "last_success INTEGER, next_run INTEGER, seq INTEGER, paused INTEGER, "
    "session_id TEXT, extra TEXT);"
    "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, event_id TEXT, type TEXT, "
    "agent_name TEXT, seq INTEGER, timestamp INTEGER, payload TEXT);"
    "CREATE INDEX IF NOT EXISTS events_agent ON events (agent_name, id);"
    "CREATE TABLE IF NOT EXISTS memory (id INTEGER PRIMARY KEY, agent TEXT, "
    "session_id TEXT, memory_type TEXT, role TEXT, content TEXT, metadata TEXT, "
    "timestamp INTEGER);"
    "CREATE INDEX IF NOT EXISTS memory_agent ON memory (agent, memory_type, id);"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER);";

struct ring_event { struct event ev; char *type, *agent; };

struct mem_item { char *agent, *type, *role, *content; json_t *metadata; int64_t ts; };

struct store {
	sqlite3 *db;
	sqlite3_stmt *st[ST__N];
	bool in_tx;
	bool events_in_db, memory_in_db;
	const char *event_backend, *memory_backend;
	int64_t retention, mem_retention;
	int64_t next_id;          /* next event id (both backends) */
	int64_t dropped;
	/* memory event backend */
	struct ring_event *ring;
	size_t ring_head, ring_len;
	/* memory memory backend: one flat bounded list, newest last */
	struct mem_item *mem;
	size_t nmem, capmem;
	bool prune_events;
	json_t *mem_dirty;        /* "agent\ntype" written since the last flush */
	json_t *state_dirty;      /* state_store redis: agent -> saved (true) / deleted */
	bool mem_outbox;          /* memory_store redis: rows wait for mem_shipped */
	int64_t mem_shipped;      /* highest memory row id in Redis */
	int64_t mem_last;         /* highest memory row id written */
	/* What the last COMMIT made durable: a shipper never sends past these,
	 * or a crash before the commit would let ids be reused for other rows
	 * that the far side then takes for ones it already has. */
	int64_t ev_committed, mem_committed;
	int64_t epoch;            /* made when the db was created: ids restart with it */
	bool outbox;              /* events wait here until shipped_id passes them */
	int64_t shipped_id;       /* highest event id the relay has delivered */
	int64_t outbox_dropped;   /* unshipped events dropped at the outbox bound */
	json_t *outbox_drops;     /* agent -> what of it was dropped, until taken */
	void (*on_commit)(void *ctx);
	void *on_commit_ctx;
};

bool
memory_type_valid(const char *t)
{
	static const char *types[] = { "working", "episodic", "long_term", "procedural" };
	if (t == NULL)
		return false;
	for (size_t i = 0; i < ARRAY_LEN(types); i++)
		if (strcmp(t, types[i]) == 0)
			return true;
	return false;
}

int store_set_shipped(struct store *s, int64_t id);

static int
db_fail(struct store *s, const char *what)
{
	log_error("store: %s: %s", what, sqlite3_errmsg(s->db));
	return -1;
}

static int
begin(struct store *s)
{
	if (s->in_tx)
		return 0;
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(s, "begin");
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
	int rc = sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, &e);
	if (rc == SQLITE_OK && check_db(s, path, err, errlen) < 0)
		return -1;
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
	if (sqlite3_prepare_v2(s->db, "SELECT (SELECT value FROM meta WHERE key='shipped_id'), "
	    "(SELECT value FROM meta WHERE key='mem_shipped_id')", -1, &q, NULL) == SQLITE_OK) {
		if (sqlite3_step(q) == SQLITE_ROW) {
			s->shipped_id = sqlite3_column_int64(q, 0);
			s->mem_shipped = sqlite3_column_int64(q, 1);
		}
		sqlite3_finalize(q);
	}
	if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key='epoch'", -1, &q,
	    NULL) == SQLITE_OK) {
		if (sqlite3_step(q) == SQLITE_ROW)
			s->epoch = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
	}
	if (s->epoch == 0) {
		char ins[96];
		s->epoch = 1 + (int64_t)(rand_unit() * 9.0e15);
		snprintf(ins, sizeof(ins), "INSERT OR REPLACE INTO meta VALUES ('epoch', %lld)",
		    (long long)s->epoch);
		sqlite3_exec(s->db, ins, NULL, NULL, NULL);
	}
	if (sqlite3_prepare_v2(s->db, "SELECT COALESCE(MAX(id),0) FROM memory", -1, &q,
	    NULL) == SQLITE_OK) {
		if (sqlite3_step(q) == SQLITE_ROW)
			s->mem_last = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
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
	s->mem_committed = s->mem_last;
	return 0;
}

int
store_open(struct store **out, const struct global_conf *g, char *err, size_t errlen)
{
	struct store *s = xcalloc(1, sizeof(*s));
	const char *ev = g->event_store ? g->event_store : "database";
	const char *mem = g->memory_store ? g->memory_store : "database";

	if (strcmp(ev, "database") && strcmp(ev, "memory") && strcmp(ev, "redis_stream")) {
		snprintf(err, errlen, "event_store %s is not available in this build "
		    "(available: database, memory, redis_stream)", ev);
		free(s);
		return -1;
	}
	if (strcmp(mem, "database") && strcmp(mem, "memory") && strcmp(mem, "redis")) {
		snprintf(err, errlen, "memory_store %s is not available in this build "
		    "(available: database, memory, redis)", mem);
		free(s);
		return -1;
	}
	/* redis_stream keeps every event in SQLite first: the table is the
	 * durable outbox the relay ships from (relay.c). */
	s->events_in_db = strcmp(ev, "memory") != 0;
	s->outbox = strcmp(ev, "redis_stream") == 0;
	/* redis memory is written to SQLite first and shipped like events:
	 * the context a run gets never waits on Redis, and no write is lost
	 * while it is down. */
	s->memory_in_db = strcmp(mem, "memory") != 0;
	s->mem_outbox = strcmp(mem, "redis") == 0 ||
	    (strcmp(mem, "database") == 0 && pgship_url(g->database_url));
	if (g->database_url && !pgship_url(g->database_url)) {
		snprintf(err, errlen, "database_url must be a postgresql:// URL (the embedded "
		    "SQLite store needs none)");
		free(s);
		return -1;
	}
	s->event_backend = s->outbox ? "redis_stream" : s->events_in_db ? "database" : "memory";
	s->memory_backend = !s->mem_outbox ? (s->memory_in_db ? "database" : "memory") :
	    strcmp(mem, "redis") == 0 ? "redis" : "postgresql";
	s->retention = g->event_retention > 0 ? g->event_retention : 100000;
	s->mem_retention = g->memory_retention > 0 ? g->memory_retention : 10000;
	s->mem_dirty = json_object();
	s->outbox_drops = json_object();
	if (g->state_store && strcmp(g->state_store, "redis") == 0)
		s->state_dirty = json_object();
	if (open_db(s, g->state_dir, err, errlen) < 0) {
		store_close(s);
		return -1;
	}
	if (!s->events_in_db)
		s->ring = xcalloc((size_t)s->retention, sizeof(*s->ring));
	*out = s;
	return 0;
}

static void
ring_clear(struct store *s)
{
	for (size_t i = 0; i < s->ring_len; i++) {
		struct ring_event *r = &s->ring[(s->ring_head + i) % (size_t)s->retention];
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
		for (int i = 0; i < ST__N; i++)
			sqlite3_finalize(s->st[i]);
		sqlite3_close(s->db);
	}
	if (s->ring)
		ring_clear(s);
	for (size_t i = 0; i < s->nmem; i++) {
		free(s->mem[i].agent);
		free(s->mem[i].type);
		free(s->mem[i].role);
		free(s->mem[i].content);
		json_decref(s->mem[i].metadata);
	}
	free(s->mem);
	json_decref(s->mem_dirty);
	json_decref(s->outbox_drops);
	json_decref(s->state_dirty);
	free(s);
}

/* The outbox is full: the unshipped events up to id `upto` go, counted per
 * agent for the events_dropped events agentd emits (store_take_outbox_drops). */
static void
drop_unshipped(struct store *s, int64_t upto)
{
	sqlite3_stmt *q;
	s->outbox_dropped += upto - s->shipped_id;
	log_error("store: outbox full: %lld unshipped events dropped (Redis unreachable for "
	    "too long; the bound is 4x event_retention)", (long long)(upto - s->shipped_id));
	if (sqlite3_prepare_v2(s->db, "SELECT agent_name, COUNT(*), MIN(seq), MAX(seq) FROM events "
	    "WHERE id > ?1 AND id <= ?2 GROUP BY agent_name", -1, &q, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, s->shipped_id);
		sqlite3_bind_int64(q, 2, upto);
		while (sqlite3_step(q) == SQLITE_ROW) {
			const char *agent = (const char *)sqlite3_column_text(q, 0);
			json_t *d = json_object_get(s->outbox_drops, agent ? agent : "");
			json_int_t n = sqlite3_column_int64(q, 1), first = sqlite3_column_int64(q, 2);
			if (d) {	/* not taken since the last drop: add up */
				n += json_integer_value(json_object_get(d, "dropped"));
				first = json_integer_value(json_object_get(d, "first_seq"));
			}
			json_object_set_new(s->outbox_drops, agent ? agent : "", json_pack(
			    "{s:I, s:I, s:I}", "dropped", n, "first_seq", first,
			    "last_seq", (json_int_t)sqlite3_column_int64(q, 3)));
		}
		sqlite3_finalize(q);
	}
	s->shipped_id = upto;
	store_set_shipped(s, upto);
}

json_t *
store_take_outbox_drops(struct store *s)
{
	json_t *d = s->outbox_drops;
	if (json_object_size(d) == 0)
		return NULL;
	s->outbox_drops = json_object();
	return d;
}

static void
prune(struct store *s)
{
	char q[256];
	if (s->prune_events && s->events_in_db) {
		int64_t cut = s->next_id - 1 - s->retention;
		/* An unshipped event is kept past retention, up to the outbox
		 * bound (4x retention); beyond that the oldest go, counted and
		 * reported by the caller (store_outbox_dropped). */
		if (s->outbox && cut > s->shipped_id) {
			int64_t hard = s->next_id - 1 - 4 * s->retention;
			if (hard > s->shipped_id)
				drop_unshipped(s, hard);
			cut = s->shipped_id;
		}
		if (cut > 0) {
			snprintf(q, sizeof(q), "DELETE FROM events WHERE id <= %lld", (long long)cut);
			if (sqlite3_exec(s->db, q, NULL, NULL, NULL) == SQLITE_OK)
				s->dropped += sqlite3_changes(s->db);
		}
		snprintf(q, sizeof(q), "INSERT OR REPLACE INTO meta VALUES ('next_event_id', %lld)",
		    (long long)s->next_id);
		sqlite3_exec(s->db, q, NULL, NULL, NULL);
	}
	const char *key;
	json_t *v;
	json_object_foreach(s->mem_dirty, key, v) {
		const char *nl = strchr(key, '\n');
		sqlite3_stmt *st = stmt(s, ST_MEM_PRUNE);
		sqlite3_bind_text(st, 1, key, (int)(nl - key), SQLITE_STATIC);
		sqlite3_bind_text(st, 2, nl + 1, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, s->mem_retention);
		/* Rows not yet in Redis stay past retention until they are. */
		sqlite3_bind_int64(st, 4, s->mem_outbox ? s->mem_shipped : INT64_MAX);
		if (sqlite3_step(st) != SQLITE_DONE)
			log_warn("store: pruning memory: %s", sqlite3_errmsg(s->db));
		sqlite3_reset(st);
	}
	json_object_clear(s->mem_dirty);
	s->prune_events = false;
}

void
store_on_commit(struct store *s, void (*fn)(void *ctx), void *ctx)
{
	s->on_commit = fn;
	s->on_commit_ctx = ctx;
}

int
store_flush(struct store *s)
{
	if (!s->in_tx)
		return 0;
	if (s->on_commit)
		s->on_commit(s->on_commit_ctx);
	prune(s);
	s->in_tx = false;
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(s, "commit");
	s->ev_committed = s->next_id - 1;
	s->mem_committed = s->mem_last;
	return 0;
}

/* ---- state ---------------------------------------------------------------- */

int
store_state_load(struct store *s, const char *agent, struct agent_state *st)
{
	sqlite3_stmt *q = stmt(s, ST_STATE_GET);
	memset(st, 0, sizeof(*st));
	sqlite3_bind_text(q, 1, agent, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
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
	if (begin(s) < 0)
		return -1;
	sqlite3_stmt *q = stmt(s, ST_STATE_PUT);
	char *extra = st->extra ? json_dumps_short(st->extra, JSON_COMPACT) : NULL;
	sqlite3_bind_text(q, 1, agent, -1, SQLITE_STATIC);
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
	if (extra)
		sqlite3_bind_text(q, 12, extra, -1, free);
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	if (s->state_dirty)
		json_object_set_new(s->state_dirty, agent, json_true());
	return rc == SQLITE_DONE ? 0 : db_fail(s, "saving agent state");
}

int
store_state_delete(struct store *s, const char *agent)
{
	if (begin(s) < 0)
		return -1;
	sqlite3_stmt *q = stmt(s, ST_STATE_DEL);
	sqlite3_bind_text(q, 1, agent, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	if (s->state_dirty)
		json_object_set_new(s->state_dirty, agent, json_false());
	return rc == SQLITE_DONE ? 0 : db_fail(s, "deleting agent state");
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
		size_t cap = (size_t)s->retention;
		struct ring_event *r;
		if (s->ring_len == cap) {
			r = &s->ring[s->ring_head];
			free(r->type);
			free(r->agent);
			json_decref(r->ev.payload);
			s->ring_head = (s->ring_head + 1) % cap;
			s->ring_len--;
			s->dropped++;
		}
		r = &s->ring[(s->ring_head + s->ring_len++) % cap];
		r->ev = *ev;
		r->type = xstrdup(ev->type);
		r->agent = xstrdup(ev->agent_name);
		r->ev.type = r->type;
		r->ev.agent_name = r->agent;
		r->ev.payload = json_incref(ev->payload);
		return 0;
	}
	if (begin(s) < 0)
		return -1;
	sqlite3_stmt *q = stmt(s, ST_EV_PUT);
	char *payload = ev->payload_json ? NULL : json_dumps_short(ev->payload, JSON_COMPACT);
	sqlite3_bind_int64(q, 1, ev->id);
	sqlite3_bind_text(q, 2, ev->event_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, ev->type, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, ev->agent_name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 5, ev->seq);
	sqlite3_bind_int64(q, 6, ev->timestamp);
	sqlite3_bind_text(q, 7, ev->payload_json ? ev->payload_json : payload ? payload : "{}",
	    -1, SQLITE_TRANSIENT);
	free(payload);
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	s->prune_events = true;
	return rc == SQLITE_DONE ? 0 : db_fail(s, "appending an event");
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

static int
ring_query(struct store *s, const char *agent, int64_t after, int limit,
    struct events_page *pg)
{
	size_t cap = (size_t)s->retention, start = 0, n = 0;
	/* Newest-N: walk back from the end to find where to start. */
	if (after < 0) {
		size_t seen = 0;
		start = s->ring_len;
		while (start > 0 && seen < (size_t)limit) {
			struct ring_event *r = &s->ring[(s->ring_head + start - 1) % cap];
			if (agent == NULL || strcmp(agent, r->agent) == 0)
				seen++;
			start--;
		}
	}
	for (size_t i = start; i < s->ring_len && n < (size_t)limit; i++) {
		struct ring_event *r = &s->ring[(s->ring_head + i) % cap];
		if (r->ev.id <= after || (agent && strcmp(agent, r->agent)))
			continue;
		if (!page_add(pg, &r->ev, json_compact_size(r->ev.payload)))
			break;
		n++;
	}
	return 0;
}

/* The id the newest `limit` events (of agent, or all) come after. */
static int
tail_start(struct store *s, const char *agent, int limit, int64_t *after)
{
	sqlite3_stmt *q = stmt(s, agent ? ST_EV_TAIL_AGENT : ST_EV_TAIL);
	sqlite3_bind_int(q, 2, limit);
	if (agent)
		sqlite3_bind_text(q, 3, agent, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	*after = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;	/* fewer: all */
	sqlite3_reset(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_fail(s, "querying events");
}

int
store_events_page(struct store *s, const char *agent, int64_t after_id, int limit,
    struct events_page *pg)
{
	pg->out = json_array();
	pg->bytes = 0;
	pg->cut = false;
	if (!s->events_in_db)
		return ring_query(s, agent, after_id, limit, pg);
	if (after_id < 0 && tail_start(s, agent, limit, &after_id) < 0)
		return -1;
	sqlite3_stmt *q = stmt(s, agent ? ST_EV_AGENT : ST_EV_ALL);
	sqlite3_bind_int64(q, 1, after_id);
	sqlite3_bind_int(q, 2, limit);
	if (agent)
		sqlite3_bind_text(q, 3, agent, -1, SQLITE_STATIC);
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
	int rc = store_events_page(s, agent, after_id, limit, &pg);
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

/* A watermark in the meta table, inside the open transaction. */
static int
put_meta(struct store *s, const char *key, int64_t v, const char *what)
{
	char q[128];
	if (begin(s) < 0)
		return -1;
	snprintf(q, sizeof(q), "INSERT OR REPLACE INTO meta VALUES ('%s', %lld)", key, (long long)v);
	if (sqlite3_exec(s->db, q, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(s, what);
	return 0;
}

int
store_set_shipped(struct store *s, int64_t id)
{
	if (id <= s->shipped_id && id != 0)
		return 0;
	s->shipped_id = id;
	return put_meta(s, "shipped_id", id, "recording shipped events");
}
/* ---- memory outbox (memory_store redis) ------------------------------------ */

int64_t store_mem_shipped(const struct store *s) { return s->mem_shipped; }

int64_t store_mem_last_id(const struct store *s) { return s->mem_committed; }
int64_t store_epoch(const struct store *s) { return s->epoch; }

int
store_set_mem_shipped(struct store *s, int64_t id)
{
	if (id <= s->mem_shipped)
		return 0;
	s->mem_shipped = id;
	return put_meta(s, "mem_shipped_id", id, "recording shipped memory");
}

/* A text column as JSON; null (never a failure) when it is NULL or not
 * UTF-8, so no row is ever left out of what gets shipped. */
static json_t *
column_json_text(sqlite3_stmt *q, int col)
{
	const char *t = (const char *)sqlite3_column_text(q, col);
	json_t *j = t ? json_string(t) : NULL;
	return j ? j : json_null();
}

int
store_mem_pending(struct store *s, int64_t after, int limit, json_t **out)
{
	static const char *const cols[] = { NULL, "agent_id", "session_id", "memory_type",
		"role", "content" };
	sqlite3_stmt *q = stmt(s, ST_MEM_PENDING);
	char ts[40];
	int rc;

	*out = json_array();
	sqlite3_bind_int64(q, 1, after);
	sqlite3_bind_int(q, 2, limit);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		json_t *item = json_object();
		json_object_set_new(item, "id", json_integer(sqlite3_column_int64(q, 0)));
		for (int c = 1; c <= 5; c++)
			json_object_set_new(item, cols[c], column_json_text(q, c));
		const char *md = (const char *)sqlite3_column_text(q, 6);
		json_t *meta = md ? json_loads(md, 0, NULL) : NULL;
		json_object_set_new(item, "metadata", meta ? meta : column_json_text(q, 6));
		iso8601(sqlite3_column_int64(q, 7), ts, sizeof(ts));
		json_object_set_new(item, "timestamp", json_string(ts));
		json_array_append_new(*out, item);
	}
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? 0 : db_fail(s, "reading the memory outbox");
}

const char *store_memory_backend(const struct store *s) { return s->memory_backend; }
int64_t store_events_dropped(const struct store *s) { return s->dropped; }

/* ---- memory --------------------------------------------------------------- */

static json_t *
mem_json(const char *role, const char *content, const char *type, int64_t ts,
    json_t *metadata)
{
	char iso[32];
	iso8601(ts, iso, sizeof(iso));
	return json_pack("{s:s, s:s, s:s, s:s, s:o}", "role", role ? role : "",
	    "content", content ? content : "", "memory_type", type, "timestamp", iso,
	    "metadata", metadata ? metadata : json_null());
}

int
store_mem_append(struct store *s, const char *agent, const char *session_id,
    const char *memory_type, const char *role, const char *content,
    const json_t *metadata)
{
	if (!memory_type_valid(memory_type))
		return -1;
	if (!s->memory_in_db) {
		size_t same = 0, oldest = SIZE_MAX;
		for (size_t i = 0; i < s->nmem; i++)
			if (!strcmp(s->mem[i].agent, agent) && !strcmp(s->mem[i].type, memory_type)) {
				if (oldest == SIZE_MAX)
					oldest = i;
				same++;
			}
		if ((int64_t)same >= s->mem_retention && oldest != SIZE_MAX) {
			struct mem_item *m = &s->mem[oldest];
			free(m->agent); free(m->type); free(m->role); free(m->content);
			json_decref(m->metadata);
			memmove(m, m + 1, (s->nmem - oldest - 1) * sizeof(*m));
			s->nmem--;
		}
		if (s->nmem == s->capmem) {
			s->capmem = s->capmem ? s->capmem * 2 : 64;
			s->mem = xrealloc(s->mem, s->capmem * sizeof(*s->mem));
		}
		s->mem[s->nmem++] = (struct mem_item){ xstrdup(agent), xstrdup(memory_type),
		    xstrdup(role ? role : ""), xstrdup(content ? content : ""),
		    metadata ? json_deep_copy(metadata) : NULL, wall_ms() };
		return 0;
	}
	if (begin(s) < 0)
		return -1;
	sqlite3_stmt *q = stmt(s, ST_MEM_PUT);
	char *md = metadata ? json_dumps_short(metadata, JSON_COMPACT) : NULL;
	sqlite3_bind_text(q, 1, agent, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, session_id ? session_id : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, memory_type, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, role ? role : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 5, content ? content : "", -1, SQLITE_STATIC);
	if (md)
		sqlite3_bind_text(q, 6, md, -1, free);
	sqlite3_bind_int64(q, 7, wall_ms());
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	if (rc == SQLITE_DONE)
		s->mem_last = sqlite3_last_insert_rowid(s->db);
	char key[512];
	snprintf(key, sizeof(key), "%s\n%s", agent, memory_type);
	json_object_set_new(s->mem_dirty, key, json_true());
	return rc == SQLITE_DONE ? 0 : db_fail(s, "storing memory");
}

static int mem_context(struct store *s, const char *agent, const char *memory_type,
    int limit, json_t **out);

/* Drops the oldest items until the rest fit max_bytes of compact JSON (the
 * newest stays in: a frame holds it whatever its JSON takes). */
static void
mem_fit(json_t *items, size_t max_bytes)
{
	size_t total = 2, keep = 0, n = json_array_size(items);
	while (keep < n) {
		size_t sz = json_compact_size(json_array_get(items, n - keep - 1)) + 1;
		if (keep > 0 && total + sz > max_bytes)
			break;
		total += sz;
		keep++;
	}
	for (size_t i = keep; i < n; i++)
		json_array_remove(items, 0);
}

int
store_mem_context(struct store *s, const char *agent, const char *memory_type,
    int limit, json_t **out)
{
	int rc = mem_context(s, agent, memory_type, limit, out);
	if (rc == 0)
		mem_fit(*out, MEMORY_REPLY_MAX);
	return rc;
}

static int
mem_context(struct store *s, const char *agent, const char *memory_type,
    int limit, json_t **out)
{
	if (!memory_type_valid(memory_type) || limit < 0)
		return -1;
	*out = json_array();
	if (!s->memory_in_db) {
		size_t n = 0, i = s->nmem;
		while (i > 0 && n < (size_t)limit) {
			i--;
			if (!strcmp(s->mem[i].agent, agent) && !strcmp(s->mem[i].type, memory_type))
				n++;
		}
		for (; i < s->nmem; i++) {
			struct mem_item *m = &s->mem[i];
			if (strcmp(m->agent, agent) || strcmp(m->type, memory_type))
				continue;
			json_array_append_new(*out, mem_json(m->role, m->content, m->type, m->ts,
			    m->metadata ? json_deep_copy(m->metadata) : NULL));
		}
		return 0;
	}
	sqlite3_stmt *q = stmt(s, ST_MEM_GET);
	sqlite3_bind_text(q, 1, agent, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, memory_type, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 3, limit);
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *md = (const char *)sqlite3_column_text(q, 5);
		json_array_append_new(*out, mem_json((const char *)sqlite3_column_text(q, 1),
		    (const char *)sqlite3_column_text(q, 2), memory_type,
		    sqlite3_column_int64(q, 4), md ? json_loads(md, 0, NULL) : NULL));
	}
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? 0 : db_fail(s, "reading memory");
}

int
store_mem_clear(struct store *s, const char *agent, const char *memory_type)
{
	if (!memory_type_valid(memory_type))
		return -1;
	if (!s->memory_in_db) {
		size_t k = 0;
		for (size_t i = 0; i < s->nmem; i++) {
			struct mem_item *m = &s->mem[i];
			if (!strcmp(m->agent, agent) && !strcmp(m->type, memory_type)) {
				free(m->agent); free(m->type); free(m->role); free(m->content);
				json_decref(m->metadata);
			} else
				s->mem[k++] = *m;
		}
		s->nmem = k;
		return 0;
	}
	if (begin(s) < 0)
		return -1;
	sqlite3_stmt *q = stmt(s, ST_MEM_CLEAR);
	sqlite3_bind_text(q, 1, agent, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, memory_type, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? 0 : db_fail(s, "clearing memory");
}
