/*
 * chroma: memory_store chromadb -- the memory rows and their vectors
 * shipped from the SQLite outbox to a Chroma server (its HTTP API v2,
 * agentd.chromadb.url), and recall's nearest rows asked of it.
 *
 * Layout: one collection per embedding model and dimension, named
 * "{collection}-{model}-{dim}" (any byte of the model's name Chroma does
 * not take in a name becomes '_'), cosine space, in agentd.chromadb's
 * tenant and database.  A record is a row: id the row's id, embedding the
 * vector agentd computed, document its content, metadata agent_id,
 * memory_type, row (the id as a number, for deletes by range) and
 * session_id.  One collection per model rather than one per agent: the
 * collection count stays bounded by the models configured (a thousand
 * agents are one collection), the dimension is the collection's by
 * construction, and the agent filter is a `where` agentd writes from the
 * caller it knows, never from what a worker says.
 *
 * Start: once /api/v2/heartbeat answers, the tenant and the database are
 * created if missing (409: they exist), our collections are listed; then the rows after the cursor go
 * out in id order, at most CH_BATCH at a time and all of one collection
 * (a batch ends where the model changes), as one upsert: the ids are ours,
 * so a batch sent again after a lost answer is stored once.  The cursor
 * moves only once Chroma answered the upsert.  A failure (no answer, an
 * HTTP error, an error body) is status's last_error until an upsert or a
 * delete gets through again (last_failure keeps the episode: error, at,
 * until, as Redis's and PostgreSQL's do), the store is down, the
 * rows wait in the outbox (retention prunes none of them) and the setup
 * runs again after a backoff, 100 ms doubling to 5 s.  One request of
 * these at a time; searches run beside them.
 *
 * Without a url, with a path (CHROMADB_PERSIST_DIRECTORY), the server is
 * agentd's own child on that directory (chromachild.c), started here.
 *
 * Recall: chroma_search queries the collection of the agent's model with
 * the query's vector, n_results and a where on agent_id (and memory_type
 * among those asked); similarity is 1 - the cosine distance.  While the
 * store is down it fails at once with why, and memory.c answers from the
 * embedded index, degraded, with that reason.
 *
 * Deletes (agentctl memory --clear, retention): an agent's rows of a type
 * up to an id are deleted from each of our collections by a where on
 * agent_id, memory_type and row.  Deletes wait per agent and type (the
 * highest id wins, so retention's one per row does not pile up) and go out
 * before the next batch while the store is up.  A delete still waiting
 * when agentd stops is not kept: those vectors stay in Chroma, but never
 * come back from a recall, whose hits are read back from the local table,
 * where those rows are gone.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/jsonmp.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/util.h"
#include "conf/config.h"
#include "supervisor/loop.h"
#include "supervisor/memory/memory.h"
#include "supervisor/store.h"

#define CH_BATCH 256
#define CH_REPLY_MAX (4u << 20)
#define CH_LIST_MAX 1000         /* collections listed at setup */
#define CH_BACKOFF_MAX_MS 5000

enum ch_state { CH_DOWN, CH_HEARTBEAT, CH_TENANT, CH_DATABASE, CH_LIST, CH_UP };

struct chroma {
	struct store *store;
	char *base;              /* url/api/v2/tenants/T/databases/D */
	char *url;               /* url/api/v2 */
	char *tenant, *database, *prefix;
	char auth[HTTP_TOKEN_MAX + 32];   /* "Authorization: Bearer ..." or "" */
	int64_t timeout_ms;
	enum ch_state st;
	struct http_req *req;    /* the setup's, a batch's or a delete's */
	struct timer timer;      /* the backoff */
	int64_t backoff;
	json_t *colls;           /* our collections: name -> id */
	json_t *batch;           /* the rows in flight, or NULL */
	char batch_coll[600];    /* their collection's name */
	json_t *deletes;         /* "agent\ntype" -> [agent, type, upto] */
	json_t *del;             /* the delete in flight: [agent, type, upto, ids left] */
	int64_t searches, search_failures;
	struct chroma_child *child;   /* agentd's own server, or NULL */
	char last_error[512];
	int64_t error_at;        /* wall ms the failing began (0: never) */
	int64_t recovered_at;    /* wall ms a request last got through after it */
};

struct mem_search {
	struct http_req *req;
	struct chroma *c;
	mem_search_fn done;
	void *ctx;
};

static void ch_pump(void *b);
static void setup(struct chroma *c);

/* Failing: refused or unreachable since a request last got through. */
static bool
failing(const struct chroma *c)
{
	return c->error_at > c->recovered_at;
}

static void
recovered(struct chroma *c)
{
	if (failing(c))
		c->recovered_at = wall_ms();
}

/* ---- the token ----------------------------------------------------------------------- */

char *
mem_chroma_token(const json_t *conf, char *err, size_t errlen)
{
	const char *var = json_string_value(json_object_get(conf, "token_env"));
	const char *file = json_string_value(json_object_get(conf, "token_file"));
	char tok[HTTP_TOKEN_MAX + 2] = "";

	err[0] = '\0';
	if (file) {
		FILE *f = fopen(file, "re");
		if (f && fgets(tok, sizeof(tok), f))
			tok[strcspn(tok, "\r\n")] = '\0';
		if (!tok[0])
			snprintf(err, errlen, "agentd.chromadb.token_file %s: %s", file,
			    f == NULL ? strerror(errno) : "holds no token");
		if (f)
			fclose(f);
	} else if (var && getenv(var) && *getenv(var))
		snprintf(tok, sizeof(tok), "%s", getenv(var));
	else if (var)
		snprintf(err, errlen, "agentd.chromadb.token_env: %s is not set in agentd's "
		    "environment", var);
	if (strlen(tok) > HTTP_TOKEN_MAX) {
		snprintf(err, errlen, "agentd.chromadb: the token is longer than %d bytes",
		    HTTP_TOKEN_MAX);
		tok[0] = '\0';
	}
	char *t = tok[0] ? xstrdup(tok) : NULL;
	explicit_bzero(tok, sizeof(tok));
	return t;
}

/* ---- requests ------------------------------------------------------------------------ */

/* path after base (or after url/api/v2 when top), body NULL for a GET. */
static struct http_req *
call(struct chroma *c, bool top, const char *path, json_t *body, http_done_fn fn, void *ctx,
    char *err, size_t errlen)
{
	const char *headers[3] = { "Content-Type: application/json", c->auth[0] ? c->auth : NULL,
		NULL };
	char *text = body ? json_dumps_short(body, JSON_COMPACT) : NULL;
	const char *head = top ? c->url : c->base;
	size_t ulen = strlen(head) + strlen(path) + 1;
	char *url = xmalloc(ulen);
	snprintf(url, ulen, "%s%s", head, path);
	struct http_opts o = { .url = url, .headers = headers, .body = text,
		.len = text ? strlen(text) : 0, .timeout_ms = c->timeout_ms,
		.max_reply = CH_REPLY_MAX };
	struct http_req *r = http_request(&o, fn, ctx, err, errlen);
	free(url);
	free(text);
	json_decref(body);
	return r;
}

/* What went wrong with an answer, for last_error: no answer, or the
 * status and Chroma's {"error", "message"}. */
static void
describe(char *out, size_t len, const char *what, const struct http_reply *r)
{
	char msg[300] = "";
	if (r->status == 0) {
		snprintf(out, len, "%s: %s", what, r->error ? r->error : "no answer");
		return;
	}
	json_t *j = json_loadb(r->body ? r->body : "", r->len, 0, NULL);
	const char *m = json_string_value(json_object_get(j, "message"));
	const char *e = json_string_value(json_object_get(j, "error"));
	if (m)
		str_printable(msg, sizeof(msg), m, strlen(m));
	else
		str_printable(msg, sizeof(msg), r->body ? r->body : "", r->len < 200 ? r->len : 200);
	snprintf(out, len, "%s: HTTP %ld%s%s%s%s", what, r->status, e || msg[0] ? ": " : "",
	    e ? e : "", e && msg[0] ? ": " : "", msg);
	json_decref(j);
}

/* The store is down: why, and the setup again after the backoff. */
static void
down(struct chroma *c, const char *why)
{
	snprintf(c->last_error, sizeof(c->last_error), "%s", why);
	if (!failing(c))
		c->error_at = wall_ms();
	c->st = CH_DOWN;
	json_decref(c->batch);
	c->batch = NULL;
	if (c->del) {	/* sent again, whole, when the store is back */
		json_object_set_new(c->deletes, json_string_value(json_array_get(c->del, 3)),
		    json_pack("[OOO]", json_array_get(c->del, 0), json_array_get(c->del, 1),
		    json_array_get(c->del, 2)));
		json_decref(c->del);
		c->del = NULL;
	}
	c->backoff = c->backoff ? c->backoff * 2 : 100;
	if (c->backoff > CH_BACKOFF_MAX_MS)
		c->backoff = CH_BACKOFF_MAX_MS;
	log_warn("chromadb: %s; trying again in %lld ms", why, (long long)c->backoff);
	timer_in(&c->timer, c->backoff);
}

/* Sends, or goes down with why it could not. */
static void
send_req(struct chroma *c, bool top, const char *path, json_t *body, http_done_fn fn)
{
	char err[256];
	c->req = call(c, top, path, body, fn, c, err, sizeof(err));
	if (c->req == NULL)
		down(c, err);
}

/* ---- setup: tenant, database, our collections ------------------------------------------ */

static bool
created(const struct http_reply *r)
{
	return r->status == 200 || r->status == 409;	/* 409: it exists */
}

static void
on_list(void *ctx, const struct http_reply *r)
{
	struct chroma *c = ctx;
	char why[512];
	size_t i, plen = strlen(c->prefix);
	json_t *list = r->status == 200 ? json_loadb(r->body, r->len, 0, NULL) : NULL, *v;

	c->req = NULL;
	if (!json_is_array(list)) {
		describe(why, sizeof(why), "listing the collections", r);
		json_decref(list);
		down(c, why);
		return;
	}
	json_object_clear(c->colls);
	json_array_foreach(list, i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));
		json_t *id = json_object_get(v, "id");
		if (name && json_is_string(id) && !strncmp(name, c->prefix, plen) &&
		    name[plen] == '-')
			json_object_set(c->colls, name, id);
	}
	json_decref(list);
	if (c->backoff)
		log_info("chromadb: up; shipping memory");
	if (c->child)
		chroma_child_ready(c->child);
	c->backoff = 0;
	c->st = CH_UP;
	ch_pump(c);
}

static void
on_database(void *ctx, const struct http_reply *r)
{
	struct chroma *c = ctx;
	char why[512], path[64];

	c->req = NULL;
	if (!created(r)) {
		describe(why, sizeof(why), "creating the database", r);
		down(c, why);
		return;
	}
	c->st = CH_LIST;
	snprintf(path, sizeof(path), "/collections?limit=%d", CH_LIST_MAX);
	send_req(c, false, path, NULL, on_list);
}

static void
on_tenant(void *ctx, const struct http_reply *r)
{
	struct chroma *c = ctx;
	char why[512], path[128];

	c->req = NULL;
	if (!created(r)) {
		describe(why, sizeof(why), "creating the tenant", r);
		down(c, why);
		return;
	}
	c->st = CH_DATABASE;
	snprintf(path, sizeof(path), "/tenants/%s/databases", c->tenant);
	send_req(c, true, path, json_pack("{s:s}", "name", c->database), on_database);
}

static void
on_heartbeat(void *ctx, const struct http_reply *r)
{
	struct chroma *c = ctx;
	char why[512];

	c->req = NULL;
	if (r->status != 200) {
		describe(why, sizeof(why), "the heartbeat", r);
		down(c, why);
		return;
	}
	c->st = CH_TENANT;
	send_req(c, true, "/tenants", json_pack("{s:s}", "name", c->tenant), on_tenant);
}

/* Ready once the heartbeat answers (a server agentd started polls here). */
static void
setup(struct chroma *c)
{
	c->st = CH_HEARTBEAT;
	send_req(c, true, "/heartbeat", NULL, on_heartbeat);
}

static void
on_timer(struct timer *t)
{
	setup(t->ctx);
}

/* ---- shipping ------------------------------------------------------------------------ */

static void
coll_name(const struct chroma *c, const char *model, size_t dim, char *out, size_t len)
{
	int n = snprintf(out, len, "%s-%s-%zu", c->prefix, model, dim);
	for (int i = (int)strlen(c->prefix) + 1; i >= 0 && i < n && (size_t)i < len; i++)
		if (!isalnum((unsigned char)out[i]) && !strchr("._-", out[i]))
			out[i] = '_';
}

static void send_upsert(struct chroma *c);

static void
on_upsert(void *ctx, const struct http_reply *r)
{
	struct chroma *c = ctx;
	char why[512], what[64];
	size_t n = json_array_size(c->batch);

	c->req = NULL;
	if (r->status != 200) {
		snprintf(what, sizeof(what), "upserting %zu memory rows", n);
		describe(why, sizeof(why), what, r);
		down(c, why);	/* the setup lists the collections again: one gone is made anew */
		return;
	}
	int64_t last = json_integer_value(json_object_get(json_array_get(c->batch, n - 1), "id"));
	json_decref(c->batch);
	c->batch = NULL;
	recovered(c);
	if (store_set_mem_shipped(c->store, last) == 0)
		store_flush(c->store);
	ch_pump(c);
}

static void
on_collection(void *ctx, const struct http_reply *r)
{
	struct chroma *c = ctx;
	char why[700];
	json_t *j = r->status == 200 ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	json_t *id = json_object_get(j, "id");

	c->req = NULL;
	if (!json_is_string(id)) {
		char what[650];
		snprintf(what, sizeof(what), "creating the collection %s", c->batch_coll);
		describe(why, sizeof(why), what, r);
		json_decref(j);
		down(c, why);
		return;
	}
	json_object_set(c->colls, c->batch_coll, id);
	json_decref(j);
	send_upsert(c);
}

static void
send_upsert(struct chroma *c)
{
	json_t *ids = json_array(), *embs = json_array(), *docs = json_array(), *metas = json_array();
	json_t *row;
	size_t i;
	char path[128], num[24];

	json_array_foreach(c->batch, i, row) {
		json_t *meta = json_pack("{s:O, s:O, s:O}", "agent_id", json_object_get(row, "agent_id"),
		    "memory_type", json_object_get(row, "memory_type"), "row",
		    json_object_get(row, "id"));
		json_t *sid = json_object_get(row, "session_id"), *content = json_object_get(row,
		    "content");
		if (json_is_string(sid))
			json_object_set(meta, "session_id", sid);
		snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(json_object_get(row,
		    "id")));
		json_array_append_new(ids, json_string(num));
		json_array_append(embs, json_object_get(row, "vector"));
		json_array_append_new(docs, json_is_string(content) ? json_incref(content) :
		    json_string(""));
		json_array_append_new(metas, meta);
	}
	snprintf(path, sizeof(path), "/collections/%s/upsert",
	    json_string_value(json_object_get(c->colls, c->batch_coll)));
	send_req(c, false, path, json_pack("{s:o, s:o, s:o, s:o}", "ids", ids, "embeddings", embs,
	    "documents", docs, "metadatas", metas), on_upsert);
}

/* The next rows after the cursor, as far as they are of one collection. */
static void
send_batch(struct chroma *c)
{
	json_t *rows;
	int64_t from = store_mem_shipped(c->store);

	if (from >= store_mem_last_id(c->store)) {
		recovered(c);	/* up, and all shipped */
		return;
	}
	if (store_mem_pending_vectors(c->store, from, CH_BATCH, &rows) < 0)
		return;
	size_t n = json_array_size(rows), keep = 0;
	json_t *first = json_array_get(rows, 0);
	const char *model = json_string_value(json_object_get(first, "model"));
	size_t dim = json_array_size(json_object_get(first, "vector"));
	while (keep < n) {
		json_t *r = json_array_get(rows, keep);
		if (strcmp(json_string_value(json_object_get(r, "model")), model) != 0 ||
		    json_array_size(json_object_get(r, "vector")) != dim)
			break;
		keep++;
	}
	if (n == 0) {
		json_decref(rows);
		return;
	}
	coll_name(c, model, dim, c->batch_coll, sizeof(c->batch_coll));
	while (json_array_size(rows) > keep)
		json_array_remove(rows, keep);
	c->batch = rows;
	if (json_object_get(c->colls, c->batch_coll)) {
		send_upsert(c);
		return;
	}
	send_req(c, false, "/collections", json_pack("{s:s, s:b, s:{s:{s:s}}}", "name", c->batch_coll,
	    "get_or_create", 1, "configuration", "hnsw", "space", "cosine"), on_collection);
}

/* ---- deletes ------------------------------------------------------------------------- */

static void send_delete(struct chroma *c);

static void
on_delete(void *ctx, const struct http_reply *r)
{
	struct chroma *c = ctx;
	char why[512];

	c->req = NULL;
	if (r->status != 200 && r->status != 404) {	/* 404: the collection went, and its rows */
		describe(why, sizeof(why), "deleting memory rows", r);
		down(c, why);
		return;
	}
	recovered(c);
	json_array_remove(json_array_get(c->del, 4), 0);
	send_delete(c);
}

/* The delete in flight, to the next of our collections; then what is next. */
static void
send_delete(struct chroma *c)
{
	json_t *left = json_array_get(c->del, 4);
	char path[128];

	if (json_array_size(left) == 0) {
		json_decref(c->del);
		c->del = NULL;
		ch_pump(c);
		return;
	}
	json_t *where = json_pack("{s:[{s:O}, {s:{s:O}}]}", "$and", "agent_id",
	    json_array_get(c->del, 0), "row", "$lte", json_array_get(c->del, 2));
	const char *type = memory_type_name((int)json_integer_value(json_array_get(c->del, 1)));
	if (type)	/* else every type */
		json_array_append_new(json_object_get(where, "$and"), json_pack("{s:s}",
		    "memory_type", type));
	snprintf(path, sizeof(path), "/collections/%s/delete",
	    json_string_value(json_array_get(left, 0)));
	send_req(c, false, path, json_pack("{s:o}", "where", where), on_delete);
}

/* The first delete waiting, to every collection of ours. */
static bool
start_delete(struct chroma *c)
{
	void *it = json_object_iter(c->deletes);
	const char *name;
	json_t *id, *left;

	if (it == NULL)
		return false;
	left = json_array();
	json_object_foreach(c->colls, name, id)
		json_array_append(left, id);
	const char *key = json_object_iter_key(it);
	json_t *v = json_object_iter_value(it);
	c->del = json_pack("[OOOso]", json_array_get(v, 0), json_array_get(v, 1),
	    json_array_get(v, 2), key, left);
	json_object_del(c->deletes, key);
	send_delete(c);
	return true;
}

static void
chroma_drop(void *b, const char *agent, int type, int64_t upto)
{
	struct chroma *c = b;
	char key[600];
	snprintf(key, sizeof(key), "%s\n%d", agent, type);
	json_object_set_new(c->deletes, key, json_pack("[siI]", agent, type, (json_int_t)upto));
	ch_pump(c);
}

static void
ch_pump(void *b)
{
	struct chroma *c = b;
	if (c->st != CH_UP || c->req)
		return;
	if (!start_delete(c))
		send_batch(c);
}

/* ---- search -------------------------------------------------------------------------- */

static void
search_done(struct mem_search *s, const struct vhit *hits, size_t n, const char *why)
{
	mem_search_fn fn = s->done;
	void *ctx = s->ctx;
	if (why)
		s->c->search_failures++;
	else
		s->c->searches++;
	free(s);
	fn(ctx, hits, n, why);
}

static void
on_query(void *ctx, const struct http_reply *r)
{
	struct mem_search *s = ctx;
	char why[512];
	json_t *j = r->status == 200 ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	json_t *ids = json_array_get(json_object_get(j, "ids"), 0);
	json_t *dist = json_array_get(json_object_get(j, "distances"), 0);
	size_t n = json_array_size(ids), k = 0;

	if (!json_is_array(ids) || json_array_size(dist) != n) {
		describe(why, sizeof(why), "querying", r);
		json_decref(j);
		search_done(s, NULL, 0, why);
		return;
	}
	struct vhit *hits = xcalloc(n ? n : 1, sizeof(*hits));
	for (size_t i = 0; i < n; i++) {
		const char *id = json_string_value(json_array_get(ids, i));
		char *end;
		long long v = id ? strtoll(id, &end, 10) : 0;
		if (id && *end == '\0' && v > 0) {
			hits[k].id = v;
			hits[k++].score = (float)(1.0 - json_number_value(json_array_get(dist, i)));
		}
	}
	json_decref(j);
	search_done(s, hits, k, NULL);
	free(hits);
}

static struct mem_search *
chroma_search(void *b, const char *agent, const float *vec, int dim, unsigned types, size_t k,
    mem_search_fn done, void *ctx)
{
	struct chroma *c = b;
	const char *model = embedder_model(mem_embedder_for(store_memory(c->store), agent));
	struct mem_search *s = xcalloc(1, sizeof(*s));
	char name[600], why[700], path[128];

	s->c = c;
	s->done = done;
	s->ctx = ctx;
	coll_name(c, model, (size_t)dim, name, sizeof(name));
	json_t *id = json_object_get(c->colls, name);
	if (c->st != CH_UP || id == NULL) {
		if (c->st != CH_UP)
			snprintf(why, sizeof(why), "down: %s", failing(c) ?
			    c->last_error : "not connected yet");
		else
			snprintf(why, sizeof(why), "no collection %s yet", name);
		search_done(s, NULL, 0, why);
		return NULL;
	}
	json_t *vector = json_array(), *in = json_array();
	for (int i = 0; i < dim; i++)
		json_array_append_new(vector, json_real(vec[i]));
	for (int t = 0; t < MT__N; t++)
		if (types & (1u << t))
			json_array_append_new(in, json_string(memory_type_name(t)));
	json_t *q = json_pack("{s:[o], s:I, s:{s:[{s:s}, {s:{s:o}}]}, s:[s]}", "query_embeddings",
	    vector, "n_results", (json_int_t)k, "where", "$and", "agent_id", agent, "memory_type",
	    "$in", in, "include", "distances");
	snprintf(path, sizeof(path), "/collections/%s/query", json_string_value(id));
	s->req = call(c, false, path, q, on_query, s, why, sizeof(why));
	if (s->req == NULL) {
		search_done(s, NULL, 0, why);
		return NULL;
	}
	return s;
}

static void
chroma_search_cancel(struct mem_search *s)
{
	http_cancel(s->req);
	free(s);
}

/* ---- the backend --------------------------------------------------------------------- */

static void *
ch_start(struct store *s, const struct global_conf *g, struct relay *r, char *err,
    size_t errlen)
{
	const json_t *conf = g->chromadb;
	const char *url = json_string_value(json_object_get(conf, "url"));
	const char *path = json_string_value(json_object_get(conf, "path"));
	char own[64];
	struct chroma *c;

	if (url == NULL && path == NULL) {
		snprintf(err, errlen, "memory_store chromadb needs agentd.chromadb.url or a path "
		    "(CHROMADB_PERSIST_DIRECTORY)");
		return NULL;
	}
	char *tok = mem_chroma_token(conf, err, errlen);
	if (err[0])
		return NULL;
	c = xcalloc(1, sizeof(*c));
	if (url == NULL) {
		c->child = chroma_child_start(json_string_value(json_object_get(conf, "command")),
		    path, g->stop_grace_ms, own, sizeof(own), err, errlen);
		if (c->child == NULL) {
			free(tok);
			free(c);
			return NULL;
		}
		url = own;
	}
	if (tok)
		snprintf(c->auth, sizeof(c->auth), "Authorization: Bearer %s", tok);
	if (tok)
		explicit_bzero(tok, strlen(tok));
	free(tok);
	c->store = s;
	c->tenant = xstrdup(json_string_value(json_object_get(conf, "tenant")));
	c->database = xstrdup(json_string_value(json_object_get(conf, "database")));
	c->prefix = xstrdup(json_string_value(json_object_get(conf, "collection")));
	size_t ul = strlen(url);
	while (ul && url[ul - 1] == '/')
		ul--;
	size_t blen = ul + strlen(c->tenant) + strlen(c->database) + 40;
	c->url = xmalloc(blen);
	c->base = xmalloc(blen);
	snprintf(c->url, blen, "%.*s/api/v2", (int)ul, url);
	snprintf(c->base, blen, "%s/tenants/%s/databases/%s", c->url, c->tenant, c->database);
	c->timeout_ms = json_integer_value(json_object_get(conf, "request_timeout"));
	c->colls = json_object();
	c->deletes = json_object();
	timer_init(&c->timer, on_timer, c);
	setup(c);
	return c;
}

static void
ch_stop(void *b)
{
	struct chroma *c = b;
	size_t n = json_object_size(c->deletes) + (c->del != NULL);
	if (n)
		log_info("chromadb: %zu deletes not sent: those rows' vectors stay in Chroma "
		    "(a recall never answers them: the rows are gone here)", n);
	timer_stop(&c->timer);
	if (c->req)
		http_cancel(c->req);
	json_decref(c->colls);
	json_decref(c->batch);
	json_decref(c->deletes);
	json_decref(c->del);
	chroma_child_stop(c->child);	/* last: after the agents, and what was in flight */
	explicit_bzero(c->auth, sizeof(c->auth));
	free(c->url);
	free(c->base);
	free(c->tenant);
	free(c->database);
	free(c->prefix);
	free(c);
}

static void
ch_status(const void *b, json_t *manager)
{
	const struct chroma *c = b;
	char at[32], until[32];
	json_t *o;
	json_object_set_new(manager, "chromadb", o = json_pack("{s:s, s:I, s:s?, s:I, s:I, s:I}",
	    "chromadb", c->st == CH_UP ? "up" : "down", "memory_pending",
	    (json_int_t)(store_mem_last_id(c->store) - store_mem_shipped(c->store)),
	    "last_error", failing(c) ? c->last_error : NULL, "collections", (json_int_t)json_object_size(c->colls),
	    "searches", (json_int_t)c->searches, "search_failures",
	    (json_int_t)c->search_failures));
	iso8601(c->error_at, at, sizeof(at));
	iso8601(failing(c) ? 0 : c->recovered_at, until, sizeof(until));
	json_object_set_new(o, "last_failure", c->error_at == 0 ? json_null() :
	    json_pack("{s:s, s:s, s:s?}", "error", c->last_error, "at", at, "until",
	    until[0] ? until : NULL));
	if (c->child)
		chroma_child_status(c->child, o);
}

const struct mem_backend mem_chromadb = {
	.store = "chromadb", .name = "chromadb", .ships = true,
	.start = ch_start, .stop = ch_stop, .pump = ch_pump, .status = ch_status,
	.search = chroma_search, .search_cancel = chroma_search_cancel, .drop = chroma_drop,
};
