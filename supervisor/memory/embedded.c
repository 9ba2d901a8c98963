/*
 * embedded: the memory table in SQLite, where every backend keeps its rows
 * (see memory.h): the state db's table, written through the store's
 * transaction and pending ops (store_ext_write, so a commit that fails
 * replays it with the rest), or, for memory_store `memory`, the same table
 * in a private in-memory database, written at once and lost on exit.
 *
 * Retention: each agent keeps the newest memory_retention rows of each
 * type.  In the state db the (agent, type) pairs written in a pass are
 * pruned when it commits (store prepare hook), through the (agent,
 * memory_type, id) index, so the cost follows what is deleted; a row a
 * remote store has not been sent yet (id above the outbox cursor) is kept
 * until it has.  In memory, a pair is pruned as it is written.
 *
 * The outbox cursor (meta mem_shipped_id) moves only with a commit, and a
 * shipper is never shown a row past the last commit (emb_last_id): a crash
 * before the commit would let the ids be reused for other rows, which the
 * far side would take for ones it has.
 *
 * Beside the rows, for recall: memory_fts, an FTS5 index of their content
 * (external content, kept by triggers; Porter stemming over unicode61, so
 * "disks" finds "disk"), ranked by BM25; and memory_vec, a vector per row
 * (float32, the model that made it and its dimension), written once the
 * row is committed and embedded (memory.c), deleted with it by trigger.
 * A db made before them gets them at open, the index built from the rows.
 * Whatever deletes rows (retention, a clear) tells the vector index
 * (index.c) which, through on_drop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include "common/jsonmp.h"
#include "common/log.h"
#include "common/util.h"
#include "supervisor/memory/memory.h"
#include "supervisor/store.h"

enum { EM_PUT, EM_GET, EM_CLEAR, EM_CUTOFF, EM_PRUNE, EM_PENDING, EM_PENDING_VEC, EM_FTS,
	EM_VEC_PUT, EM_VEC_LOAD, EM_VEC_DIM, EM_SCAN, EM_ROW, EM__N };

static const char *const sql[EM__N] = {
	[EM_PUT] = "INSERT INTO memory (agent, session_id, memory_type, role, content, "
	    "metadata, timestamp) VALUES (?1,?2,?3,?4,?5,?6,?7)",
	[EM_GET] = "SELECT * FROM (SELECT id, role, content, memory_type, timestamp, "
	    "metadata FROM memory WHERE agent = ?1 AND memory_type = ?2 ORDER BY id DESC "
	    "LIMIT ?3) ORDER BY id",
	[EM_CLEAR] = "DELETE FROM memory WHERE agent = ?1 AND memory_type = ?2",
	/* Through the (agent, memory_type, id) index: cost follows what is
	 * deleted, not the size of the table. */
	[EM_CUTOFF] = "SELECT id FROM memory WHERE agent = ?1 AND memory_type = ?2 "
	    "ORDER BY id DESC LIMIT 1 OFFSET ?3",
	[EM_PRUNE] = "DELETE FROM memory WHERE agent = ?1 AND memory_type = ?2 AND id <= ?3",
	[EM_PENDING] = "SELECT id, agent, session_id, memory_type, role, content, metadata, "
	    "timestamp FROM memory WHERE id > ?1 ORDER BY id LIMIT ?2",
	[EM_PENDING_VEC] = "SELECT m.id, m.agent, m.session_id, m.memory_type, m.role, m.content, "
	    "m.metadata, m.timestamp, v.model, v.dim, v.vec FROM memory m LEFT JOIN memory_vec v "
	    "ON v.id = m.id WHERE m.id > ?1 ORDER BY m.id LIMIT ?2",
	/* The agent's filter is ours, not the query's: the text is only ever
	 * a MATCH operand. */
	[EM_FTS] = "SELECT m.id, bm25(memory_fts) FROM memory_fts JOIN memory m ON "
	    "m.id = memory_fts.rowid WHERE memory_fts MATCH ?1 AND m.agent = ?2 AND "
	    "m.memory_type IN (?3, ?4, ?5, ?6) ORDER BY bm25(memory_fts) LIMIT ?7",
	/* Not for a row retention took meanwhile. */
	[EM_VEC_PUT] = "INSERT OR REPLACE INTO memory_vec (id, model, dim, vec) SELECT ?1, ?2, "
	    "?3, ?4 WHERE EXISTS (SELECT 1 FROM memory WHERE id = ?1)",
	[EM_VEC_LOAD] = "SELECT v.id, m.memory_type, v.dim, v.vec FROM memory m JOIN memory_vec v "
	    "ON v.id = m.id WHERE m.agent = ?1 AND v.model = ?2 ORDER BY v.id",
	[EM_VEC_DIM] = "SELECT dim FROM memory_vec WHERE model = ?1 LIMIT 1",
	[EM_SCAN] = "SELECT m.id, m.agent, m.memory_type, m.content, v.model FROM memory m "
	    "LEFT JOIN memory_vec v ON v.id = m.id WHERE m.id > ?1 AND m.id <= ?2 ORDER BY m.id "
	    "LIMIT ?3",
	[EM_ROW] = "SELECT id, role, content, memory_type, timestamp, metadata FROM memory "
	    "WHERE id = ?1 AND agent = ?2",
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS memory (id INTEGER PRIMARY KEY, agent TEXT, "
    "session_id TEXT, memory_type TEXT, role TEXT, content TEXT, metadata TEXT, "
    "timestamp INTEGER);"
    "CREATE INDEX IF NOT EXISTS memory_agent ON memory (agent, memory_type, id);"
    "CREATE TABLE IF NOT EXISTS memory_vec (id INTEGER PRIMARY KEY, model TEXT NOT NULL, "
    "dim INTEGER NOT NULL, vec BLOB NOT NULL);"
    "CREATE VIRTUAL TABLE IF NOT EXISTS memory_fts USING fts5(content, content='memory', "
    "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2');"
    "CREATE TRIGGER IF NOT EXISTS memory_ai AFTER INSERT ON memory BEGIN "
    "INSERT INTO memory_fts (rowid, content) VALUES (new.id, new.content); END;"
    "CREATE TRIGGER IF NOT EXISTS memory_ad AFTER DELETE ON memory BEGIN "
    "INSERT INTO memory_fts (memory_fts, rowid, content) VALUES ('delete', old.id, "
    "old.content); DELETE FROM memory_vec WHERE id = old.id; END;";

#define SHIPPED_KEY "mem_shipped_id"

/* A write kept by the store until committed: a row, a clear, a vector. */
enum op_kind { OP_ROW, OP_CLEAR, OP_VEC };
struct mem_op {
	enum op_kind kind;
	char *agent, *session, *type, *role, *content, *metadata;
	int64_t ts;
	int64_t id;               /* OP_VEC: the row's */
	int dim;
	float *vec;
};

struct embedded {
	sqlite3 *db;
	struct store *store;      /* the state db's; NULL: in memory, written at once */
	sqlite3_stmt *st[EM__N];
	struct store_ext ext;
	int64_t retention;
	bool outbox;              /* a remote backend ships the rows: prune only shipped ones */
	int64_t shipped;          /* the outbox cursor: the highest row id shipped */
	int64_t shipped_mark;     /* ... as committed */
	int64_t last;             /* the highest row id written */
	int64_t committed;        /* ... committed */
	json_t *dirty;            /* "agent\ntype" written since the last commit */
	emb_drop_fn on_drop;      /* rows went: the vector index is told */
	void *drop_ctx;
};

static sqlite3_stmt *
stmt(struct embedded *e, int which)
{
	sqlite3_stmt *q = e->st[which];
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return q;
}

/* A statement failed: in the state db the store degrades (and retries);
 * in memory there is nothing to retry, so it is said and -1. */
static int
failed(struct embedded *e, const char *what)
{
	if (e->store)
		return store_ext_failed(e->store, what);
	log_error("memory: %s: %s", what, sqlite3_errmsg(e->db));
	return -1;
}

/* A read failed: said, and -1. */
static int
read_failed(struct embedded *e, const char *what)
{
	log_error("memory: %s: %s", what, sqlite3_errmsg(e->db));
	return -1;
}

static void
op_free(void *data)
{
	struct mem_op *o = data;
	free(o->agent);
	free(o->session);
	free(o->type);
	free(o->role);
	free(o->content);
	free(o->metadata);
	free(o->vec);
	free(o);
}

static void
dropped(struct embedded *e, const char *agent, size_t agent_len, const char *type,
    int64_t upto)
{
	char name[256];
	snprintf(name, sizeof(name), "%.*s", (int)agent_len, agent);
	if (e->on_drop)
		e->on_drop(e->drop_ctx, name, memory_type_code(type), upto);
}

/* The (agent, type)'s oldest beyond retention, never past the cursor. */
static int
prune_one(struct embedded *e, const char *agent, size_t agent_len, const char *type)
{
	sqlite3_stmt *q = stmt(e, EM_CUTOFF);
	sqlite3_bind_text(q, 1, agent, (int)agent_len, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, type, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, e->retention);
	int rc = sqlite3_step(q);
	int64_t upto = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
	sqlite3_reset(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return failed(e, "pruning memory");
	if (e->outbox && upto > e->shipped)	/* rows not yet shipped stay until they are */
		upto = e->shipped;
	if (upto <= 0)
		return 0;
	q = stmt(e, EM_PRUNE);
	sqlite3_bind_text(q, 1, agent, (int)agent_len, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, type, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, upto);
	rc = sqlite3_step(q);
	sqlite3_reset(q);
	if (rc != SQLITE_DONE)
		return failed(e, "pruning memory");
	if (sqlite3_changes(e->db) > 0)
		dropped(e, agent, agent_len, type, upto);
	return 0;
}

static int
exec_row(struct embedded *e, struct mem_op *o)
{
	sqlite3_stmt *q = stmt(e, EM_PUT);
	char key[512];

	sqlite3_bind_text(q, 1, o->agent, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, o->session, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, o->type, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, o->role, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 5, o->content, -1, SQLITE_STATIC);
	if (o->metadata)
		sqlite3_bind_text(q, 6, o->metadata, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 7, o->ts);
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	if (rc != SQLITE_DONE)
		return failed(e, "storing memory");
	e->last = sqlite3_last_insert_rowid(e->db);
	snprintf(key, sizeof(key), "%s\n%s", o->agent, o->type);
	json_object_set_new(e->dirty, key, json_true());
	return 0;
}

static int
exec_clear(struct embedded *e, struct mem_op *o)
{
	sqlite3_stmt *q = stmt(e, EM_CLEAR);
	sqlite3_bind_text(q, 1, o->agent, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, o->type, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	if (rc != SQLITE_DONE)
		return failed(e, "clearing memory");
	dropped(e, o->agent, strlen(o->agent), o->type, INT64_MAX);
	return 0;
}

static int
exec_vec(struct embedded *e, struct mem_op *o)
{
	sqlite3_stmt *q = stmt(e, EM_VEC_PUT);
	sqlite3_bind_int64(q, 1, o->id);
	sqlite3_bind_text(q, 2, o->type, -1, SQLITE_STATIC);	/* the model */
	sqlite3_bind_int(q, 3, o->dim);
	sqlite3_bind_blob(q, 4, o->vec, o->dim * (int)sizeof(float), SQLITE_STATIC);
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? 0 : failed(e, "storing a memory's vector");
}

static int
exec_op(void *ctx, void *data)
{
	struct mem_op *o = data;
	switch (o->kind) {
	case OP_ROW: return exec_row(ctx, o);
	case OP_CLEAR: return exec_clear(ctx, o);
	case OP_VEC: return exec_vec(ctx, o);
	}
	return 0;
}

/* Before the store's COMMIT: what the pass wrote is pruned, and the
 * cursor recorded in the transaction that makes it true. */
static int
prepare(void *ctx)
{
	struct embedded *e = ctx;
	const char *key;
	json_t *v;
	json_object_foreach(e->dirty, key, v) {
		const char *nl = strchr(key, '\n');
		if (prune_one(e, key, (size_t)(nl - key), nl + 1) < 0)
			return -1;
	}
	if (e->shipped != e->shipped_mark)
		return store_meta_put(e->store, SHIPPED_KEY, e->shipped);
	return 0;
}

static void
committed(void *ctx)
{
	struct embedded *e = ctx;
	e->committed = e->last;
	e->shipped_mark = e->shipped;
	json_object_clear(e->dirty);
}

/* The db is as it was at the last commit, and so must be what we believe
 * of it: the ops replayed will write the rows again. */
static void
rolled_back(void *ctx)
{
	struct embedded *e = ctx;
	e->last = e->committed;
}

static bool
has_table(struct embedded *e, const char *name)
{
	sqlite3_stmt *q;
	bool yes = false;
	if (sqlite3_prepare_v2(e->db, "SELECT 1 FROM sqlite_master WHERE name = ?1", -1, &q,
	    NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	yes = sqlite3_step(q) == SQLITE_ROW;
	sqlite3_finalize(q);
	return yes;
}

static int
prepare_all(struct embedded *e, char *err, size_t errlen)
{
	char *why = NULL;
	bool had_fts = has_table(e, "memory_fts");
	int rc = sqlite3_exec(e->db, schema, NULL, NULL, &why);
	/* A db from before recall: its rows go into the new text index. */
	if (rc == SQLITE_OK && !had_fts)
		rc = sqlite3_exec(e->db, "INSERT INTO memory_fts (memory_fts) VALUES ('rebuild')",
		    NULL, NULL, &why);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "creating the memory table: %s", why ? why :
		    sqlite3_errmsg(e->db));
		sqlite3_free(why);
		return -1;
	}
	for (int i = 0; i < EM__N; i++)
		if (sqlite3_prepare_v3(e->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &e->st[i],
		    NULL) != SQLITE_OK) {
			snprintf(err, errlen, "memory: preparing statements: %s",
			    sqlite3_errmsg(e->db));
			return -1;
		}
	return 0;
}

static int64_t
max_row_id(struct embedded *e)
{
	sqlite3_stmt *q;
	int64_t id = 0;
	if (sqlite3_prepare_v2(e->db, "SELECT COALESCE(MAX(id),0) FROM memory", -1, &q,
	    NULL) != SQLITE_OK)
		return 0;
	if (sqlite3_step(q) == SQLITE_ROW)
		id = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return id;
}

int
emb_open(struct embedded **out, struct store *s, bool in_memory, bool outbox,
    int64_t retention, char *err, size_t errlen)
{
	struct embedded *e = xcalloc(1, sizeof(*e));
	e->retention = retention;
	e->outbox = outbox;
	e->dirty = json_object();
	*out = e;
	if (in_memory) {
		if (sqlite3_open_v2(":memory:", &e->db, SQLITE_OPEN_READWRITE |
		    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
			snprintf(err, errlen, "memory: cannot open an in-memory database: %s",
			    sqlite3_errmsg(e->db));
			return -1;
		}
	} else {
		e->store = s;
		e->db = store_db(s);
	}
	if (prepare_all(e, err, errlen) < 0)
		return -1;
	e->last = e->committed = max_row_id(e);
	if (e->store) {
		e->shipped = e->shipped_mark = store_meta_get(s, SHIPPED_KEY);
		e->ext = (struct store_ext){ .ctx = e, .exec = exec_op, .free_op = op_free,
			.prepare = prepare, .committed = committed, .rolled_back = rolled_back };
		store_set_ext(s, &e->ext);
	}
	return 0;
}

void
emb_close(struct embedded *e)
{
	if (e == NULL)
		return;
	for (int i = 0; i < EM__N; i++)
		sqlite3_finalize(e->st[i]);
	if (e->store == NULL && e->db)
		sqlite3_close(e->db);
	json_decref(e->dirty);
	free(e);
}

void
emb_on_drop(struct embedded *e, emb_drop_fn fn, void *ctx)
{
	e->on_drop = fn;
	e->drop_ctx = ctx;
}

/* A write: into the store's transaction, or straight in (then pruned). */
static int
write_op(struct embedded *e, struct mem_op *o, size_t bytes)
{
	if (e->store)
		return store_ext_write(e->store, o->agent, o, bytes, o->kind == OP_ROW);
	int rc = exec_op(e, o);
	if (rc == 0 && o->kind == OP_ROW)
		rc = prune_one(e, o->agent, strlen(o->agent), o->type);
	json_object_clear(e->dirty);
	e->committed = e->last;
	op_free(o);
	return rc;
}

int
emb_append(struct embedded *e, const char *agent, const char *session_id,
    const char *memory_type, const char *role, const char *content, const json_t *metadata)
{
	struct mem_op *o = xcalloc(1, sizeof(*o));
	o->agent = xstrdup(agent);
	o->ts = wall_ms();
	o->session = xstrdup(session_id ? session_id : "");
	o->type = xstrdup(memory_type);
	o->role = xstrdup(role ? role : "");
	o->kind = OP_ROW;
	o->content = xstrdup(content ? content : "");
	o->metadata = metadata ? json_dumps_short(metadata, JSON_COMPACT) : NULL;
	size_t bytes = strlen(o->content) + strlen(o->role) + strlen(o->session) +
	    (o->metadata ? strlen(o->metadata) : 0);
	return write_op(e, o, bytes);
}

int
emb_clear(struct embedded *e, const char *agent, const char *memory_type)
{
	struct mem_op *o = xcalloc(1, sizeof(*o));
	o->kind = OP_CLEAR;
	o->agent = xstrdup(agent);
	o->type = xstrdup(memory_type);
	return write_op(e, o, 0);
}

int
emb_put_vector(struct embedded *e, const char *agent, int64_t id, const char *model,
    const float *v, int dim)
{
	struct mem_op *o = xcalloc(1, sizeof(*o));
	o->kind = OP_VEC;
	o->agent = xstrdup(agent);
	o->type = xstrdup(model);
	o->id = id;
	o->dim = dim;
	o->vec = xmalloc((size_t)dim * sizeof(float));
	memcpy(o->vec, v, (size_t)dim * sizeof(float));
	return write_op(e, o, (size_t)dim * sizeof(float));
}

/* Columns 0-5 (id, role, content, memory_type, timestamp, metadata). */
static json_t *
item_json(sqlite3_stmt *q)
{
	char iso[32];
	const char *role = (const char *)sqlite3_column_text(q, 1);
	const char *content = (const char *)sqlite3_column_text(q, 2);
	const char *type = (const char *)sqlite3_column_text(q, 3);
	const char *md = (const char *)sqlite3_column_text(q, 5);
	json_t *meta = md ? json_loads(md, 0, NULL) : NULL;
	iso8601(sqlite3_column_int64(q, 4), iso, sizeof(iso));
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:o}", "id",
	    (json_int_t)sqlite3_column_int64(q, 0), "role", role ? role : "",
	    "content", content ? content : "", "memory_type", type ? type : "", "timestamp", iso,
	    "metadata", meta ? meta : json_null());
}

int
emb_context(struct embedded *e, const char *agent, const char *memory_type, int limit,
    json_t **out)
{
	sqlite3_stmt *q = stmt(e, EM_GET);
	int rc;

	*out = json_array();
	sqlite3_bind_text(q, 1, agent, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, memory_type, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 3, limit);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW)
		json_array_append_new(*out, item_json(q));
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? 0 : read_failed(e, "reading memory");
}

json_t *
emb_row(struct embedded *e, const char *agent, int64_t id)
{
	sqlite3_stmt *q = stmt(e, EM_ROW);
	json_t *item = NULL;
	sqlite3_bind_int64(q, 1, id);
	sqlite3_bind_text(q, 2, agent, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		item = item_json(q);
	else if (rc != SQLITE_DONE)
		read_failed(e, "reading memory");
	sqlite3_reset(q);
	return item;
}

/* ---- recall's reads ---------------------------------------------------------------- */

size_t
emb_fts(struct embedded *e, const char *agent, const char *match, unsigned types, size_t k,
    struct vhit *out)
{
	sqlite3_stmt *q = stmt(e, EM_FTS);
	size_t n = 0;
	int rc, slot = 3;

	sqlite3_bind_text(q, 1, match, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, agent, -1, SQLITE_STATIC);
	for (int t = 0; t < MT__N; t++)	/* unbound slots stay NULL: match nothing */
		if (types & (1u << t))
			sqlite3_bind_text(q, slot++, memory_type_name(t), -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 7, (int64_t)k);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW && n < k)
		out[n++] = (struct vhit){ sqlite3_column_int64(q, 0),
			(float)-sqlite3_column_double(q, 1) };
	sqlite3_reset(q);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		read_failed(e, "searching memory");
	return n;
}

int
emb_vectors(struct embedded *e, const char *agent, const char *model, emb_vec_fn fn,
    void *ctx)
{
	sqlite3_stmt *q = stmt(e, EM_VEC_LOAD);
	int rc;
	sqlite3_bind_text(q, 1, agent, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, model, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int dim = sqlite3_column_int(q, 2);
		if (dim <= 0 || sqlite3_column_bytes(q, 3) != dim * (int)sizeof(float))
			continue;	/* not one we wrote */
		fn(ctx, sqlite3_column_int64(q, 0), memory_type_code((const char *)
		    sqlite3_column_text(q, 1)), sqlite3_column_blob(q, 3), dim);
	}
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? 0 : read_failed(e, "reading memory vectors");
}

int
emb_model_dim(struct embedded *e, const char *model)
{
	sqlite3_stmt *q = stmt(e, EM_VEC_DIM);
	sqlite3_bind_text(q, 1, model, -1, SQLITE_STATIC);
	int dim = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int(q, 0) : 0;
	sqlite3_reset(q);
	return dim;
}

int64_t
emb_scan(struct embedded *e, int64_t after, int64_t upto, int limit, emb_scan_fn fn,
    void *ctx)
{
	sqlite3_stmt *q = stmt(e, EM_SCAN);
	int64_t last = after;
	int rc;
	sqlite3_bind_int64(q, 1, after);
	sqlite3_bind_int64(q, 2, upto);
	sqlite3_bind_int(q, 3, limit);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(q, 0);
		const char *agent = (const char *)sqlite3_column_text(q, 1);
		const char *content = (const char *)sqlite3_column_text(q, 3);
		if (!fn(ctx, id, agent ? agent : "", memory_type_code((const char *)
		    sqlite3_column_text(q, 2)), content ? content : "",
		    (const char *)sqlite3_column_text(q, 4)))
			break;	/* it takes no more: this row is not passed */
		last = id;
	}
	sqlite3_reset(q);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		read_failed(e, "reading memory to embed");
	return last;
}

/* ---- the outbox ------------------------------------------------------------------ */

int64_t emb_shipped(const struct embedded *e) { return e->shipped; }
int64_t emb_last_id(const struct embedded *e) { return e->committed; }

int
emb_set_shipped(struct embedded *e, int64_t id)
{
	if (id <= e->shipped)
		return 0;
	e->shipped = id;
	return store_touch(e->store);
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

/* Columns 8-10 (model, dim, vec) as {"model", "vector"}; false when the
 * row has no vector, or one of another model than model_of says. */
static bool
add_vector(sqlite3_stmt *q, json_t *item, emb_model_fn model_of, void *ctx)
{
	const char *agent = (const char *)sqlite3_column_text(q, 1);
	const char *model = (const char *)sqlite3_column_text(q, 8);
	int dim = sqlite3_column_int(q, 9);
	const float *v = sqlite3_column_blob(q, 10);
	if (model == NULL || strcmp(model, model_of(ctx, agent ? agent : "")) != 0 ||
	    sqlite3_column_bytes(q, 10) != dim * (int)sizeof(float))
		return false;
	json_t *vec = json_array();
	for (int i = 0; i < dim; i++) {
		float x;
		memcpy(&x, (const char *)v + i * sizeof(float), sizeof(x));	/* a blob: no alignment */
		json_array_append_new(vec, json_real(x));
	}
	json_object_set_new(item, "model", json_string(model));
	json_object_set_new(item, "vector", vec);
	return true;
}

static int
pending(struct embedded *e, int64_t after, int limit, emb_model_fn model_of, void *ctx,
    json_t **out)
{
	static const char *const cols[] = { NULL, "agent_id", "session_id", "memory_type",
		"role", "content" };
	sqlite3_stmt *q = stmt(e, model_of ? EM_PENDING_VEC : EM_PENDING);
	char ts[40];
	int rc;

	*out = json_array();
	sqlite3_bind_int64(q, 1, after);
	sqlite3_bind_int(q, 2, limit);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		json_t *item = json_object();
		if (model_of && !add_vector(q, item, model_of, ctx)) {
			json_decref(item);	/* not embedded yet: the rest wait behind it */
			rc = SQLITE_DONE;
			break;
		}
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
	return rc == SQLITE_DONE ? 0 : read_failed(e, "reading the memory outbox");
}

int
emb_pending(struct embedded *e, int64_t after, int limit, json_t **out)
{
	return pending(e, after, limit, NULL, NULL, out);
}

int
emb_pending_vectors(struct embedded *e, int64_t after, int limit, emb_model_fn model_of,
    void *ctx, json_t **out)
{
	return pending(e, after, limit, model_of, ctx, out);
}
