/*
 * qdrant: memory_store qdrant -- rows and their vectors shipped to a
 * Qdrant server over its REST API (api.qdrant.tech), recall's vector
 * ranking asked of it.  As memory.h says: the state db's table is the
 * outbox, read with store_mem_pending_vectors in id order; a batch is
 * upserted with ?wait=true and the cursor moves (store_set_mem_shipped)
 * only once Qdrant has answered that it is applied, so every row gets
 * there once and in order, and a batch sent again (after a failure) only
 * overwrites the points it already wrote: point ids are our row ids.
 *
 * Collections: one per embedding model and dimension, named
 * <collection_prefix>_<model>_<dim> (the model's name with every byte but
 * A-Z a-z 0-9 - _ as _), created if missing (PUT /collections/{c}, vectors
 * {size, distance: Cosine}) with a keyword payload index on agent_id.  Not
 * one per agent: Qdrant's own guidance is one collection with a payload
 * filter for many tenants (each collection has its segments, WAL and
 * optimizer: a thousand agents would be a thousand of them), and the
 * count stays bounded by the models configured, whatever the agents.  An
 * existing collection of another size or distance is refused with what
 * it has and what the model gives (nothing is shipped until it is
 * removed, or the prefix changed).  Every search carries the filter
 * must: agent_id = the asking agent (agentd's, never the worker's), the
 * exact model (two models whose names differ only in what was replaced
 * share a collection, never a ranking) and the memory types asked for;
 * the hits are then read back from the local table, the agent's own rows
 * only, as for the embedded index.
 *
 * Payload: agent_id, memory_type, content, session_id, role, metadata,
 * created_at, model and row_id -- the row's id again, as a number the
 * delete's range condition can compare (Qdrant filters ids by list only).
 * Rows that go (agentctl memory --clear, memory_retention) are deleted
 * from every collection of the prefix (POST .../points/delete?wait=true,
 * filter agent_id, memory_type, row_id <= the last gone); the deletes
 * wait in agentd's memory, coalesced per agent and type, while Qdrant is
 * down, and are sent before the next rows.  A delete still waiting when
 * agentd stops is not sent: those points stay in Qdrant, never in an
 * answer (a hit is read back from the local table, where the row is gone).
 *
 * While Qdrant does not answer (or answers an error) requests are sent
 * again after a backoff (RETRY_FIRST_MS doubling to RETRY_MAX_MS), rows
 * wait in the outbox (bounded as for every backend: retention never
 * prunes an unshipped row), and recall's vector ranking comes from the
 * embedded index with degraded and why (memory.c).  The api-key, from
 * api_key_env or api_key_file, goes in the api-key header only; it is one
 * of agentd's secrets (secrets.c reads it with qdrant_read_key), and an
 * error text that quotes it has it taken out by the log's redaction and
 * status's.  Every request is on agentd's loop (http.c), one shipping
 * step at a time, searches beside it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/jsonmp.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/util.h"
#include "conf/config.h"
#include "supervisor/loop.h"
#include "supervisor/memory/memory.h"
#include "supervisor/store.h"

#define Q_BATCH 64
#define RETRY_FIRST_MS 500
#define RETRY_MAX_MS 30000

/* The shipping step in flight. */
enum q_step { S_NONE, S_LIST, S_INFO, S_CREATE, S_INDEX, S_UPSERT, S_DELETE };

static const char *const step_what[] = {
	[S_NONE] = "", [S_LIST] = "listing collections", [S_INFO] = "reading collection",
	[S_CREATE] = "creating collection", [S_INDEX] = "indexing agent_id in",
	[S_UPSERT] = "upserting points into", [S_DELETE] = "deleting points from",
};

struct mem_search {
	struct qdrant *q;
	struct http_req *req;
	mem_search_fn fn;
	void *ctx;
	struct mem_search *next;
};

struct qdrant {
	struct store *store;
	char *base;               /* http(s)://host:port[/path], no trailing / */
	char *prefix;
	char *key;                /* NULL: none configured */
	char key_error[320];
	int64_t timeout_ms;
	enum q_step step;
	struct http_req *req;
	struct timer retry;
	int64_t backoff;
	bool listed;              /* GET /collections has answered */
	bool up;                  /* the last request was answered as documented */
	json_t *known;            /* [collection]: the prefix's, for deletes */
	json_t *ready;            /* collection -> dim: checked and indexed this run */
	char coll[256];           /* the collection of the step */
	int dim;
	int64_t batch_last;
	size_t batch_n;
	json_t *drops;            /* [{agent, type, upto, at: index in known}], oldest first */
	char last_error[1024];
	int64_t failing_since;    /* wall ms; 0: not failing */
	int64_t shipped, searches;
	struct mem_search *queries;
};

static void q_pump(void *b);

/* ---- the key ------------------------------------------------------------------------ */

int
qdrant_read_key(const struct global_conf *g, char *key, size_t len, char *why, size_t wlen)
{
	key[0] = why[0] = '\0';
	if (g->qdrant_key_file) {
		FILE *f = fopen(g->qdrant_key_file, "re");
		if (f && fgets(key, (int)len, f))
			key[strcspn(key, "\r\n")] = '\0';
		if (!key[0])
			snprintf(why, wlen, "agentd.qdrant.api_key_file %s: %s", g->qdrant_key_file,
			    f == NULL ? strerror(errno) : "holds no key");
		if (f)
			fclose(f);
	} else if (g->qdrant_key_env) {
		const char *v = getenv(g->qdrant_key_env);
		if (v && *v)
			snprintf(key, len, "%s", v);
		else
			snprintf(why, wlen, "agentd.qdrant.api_key_env: %s is not set in agentd's "
			    "environment", g->qdrant_key_env);
	}
	for (const char *p = key; !why[0] && *p; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f)	/* it goes into a header line */
			snprintf(why, wlen, "agentd.qdrant's api-key holds a control character");
	if (why[0])
		explicit_bzero(key, len);
	return why[0] ? -1 : 0;
}

/* ---- requests ----------------------------------------------------------------------- */

/* <prefix>_<model>_<dim>, in a URL as it is (a model named with its
 * dimensions, "hash:hash-v1/384", says them once). */
static void
collection_name(const struct qdrant *q, const char *model, int dim, char *out, size_t len)
{
	char m[160], tail[16];
	size_t i = 0, n = strlen(model);
	snprintf(tail, sizeof(tail), "/%d", dim);
	if (n > strlen(tail) && strcmp(model + n - strlen(tail), tail) == 0)
		n -= strlen(tail);
	for (; i < n && i < sizeof(m) - 1; i++) {
		char c = model[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_';
		m[i] = ok ? c : '_';
	}
	m[i] = '\0';
	snprintf(out, len, "%s_%s_%d", q->prefix, m, dim);
}

static struct http_req *
send_req(struct qdrant *q, const char *method, const char *path, json_t *body, int64_t timeout,
    http_done_fn fn, void *ctx, char *err, size_t errlen)
{
	char url[1024], auth[4200] = "";
	const char *headers[3] = { "Content-Type: application/json", NULL, NULL };
	char *text = body ? json_dumps_short(body, JSON_COMPACT) : NULL;

	snprintf(url, sizeof(url), "%s%s", q->base, path);
	if (q->key) {
		snprintf(auth, sizeof(auth), "api-key: %s", q->key);
		headers[1] = auth;
	}
	struct http_opts o = { .method = method, .url = url, .headers = headers, .body = text,
		.len = text ? strlen(text) : 0, .timeout_ms = timeout, .max_reply = VSTORE_REPLY_MAX };
	struct http_req *r = http_request(&o, fn, ctx, err, errlen);
	explicit_bzero(auth, sizeof(auth));
	free(text);
	json_decref(body);
	return r;
}

/* What went wrong, from an answer: no answer, or Qdrant's error envelope
 * {"status": {"error": "..."}}, or the status and the body's first bytes. */
static void
error_text(const struct http_reply *r, const json_t *j, char *out, size_t len)
{
	json_t *st = json_object_get(j, "status");
	const char *msg = json_string_value(json_object_get(st, "error"));
	char text[240];
	if (r->error)
		snprintf(out, len, "%s", r->error);
	else if (msg) {
		str_printable(text, sizeof(text), msg, strlen(msg));
		snprintf(out, len, "HTTP %ld: %s", r->status, text);
	} else {
		str_printable(text, sizeof(text), r->body, r->len < 160 ? r->len : 160);
		snprintf(out, len, "HTTP %ld%s%s", r->status, text[0] ? ": " : "", text);
	}
}

static bool
str_is(const json_t *v, const char *s)
{
	return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

/* The documented envelope of a success: {"result": ..., "status": "ok"}. */
static json_t *
ok_result(const struct http_reply *r, json_t *j)
{
	if (r->error || r->status != 200 || !str_is(json_object_get(j, "status"), "ok"))
		return NULL;
	return json_object_get(j, "result");
}

static void
failed(struct qdrant *q, const char *why)
{
	if (q->failing_since == 0) {
		q->failing_since = wall_ms();
		log_error("qdrant: %s: %s; memory waits in the outbox", q->base, why);
	}
	snprintf(q->last_error, sizeof(q->last_error), "%s", why);
	q->up = false;
	q->backoff = q->backoff ? 2 * q->backoff : RETRY_FIRST_MS;
	if (q->backoff > RETRY_MAX_MS)
		q->backoff = RETRY_MAX_MS;
	timer_in(&q->retry, q->backoff);
}

static void
recovered(struct qdrant *q)
{
	if (q->failing_since)
		log_info("qdrant: %s answers again after %lld s", q->base,
		    (long long)(wall_ms() - q->failing_since) / 1000);
	q->failing_since = 0;
	q->backoff = 0;
	q->up = true;
}

/* ---- the shipping steps ------------------------------------------------------------- */

static void on_step(void *ctx, const struct http_reply *r);

static void
step(struct qdrant *q, enum q_step s, const char *method, const char *path, json_t *body)
{
	char err[256], why[1024];
	q->step = s;
	if ((q->req = send_req(q, method, path, body, q->timeout_ms, on_step, q, err,
	    sizeof(err))) == NULL) {
		snprintf(why, sizeof(why), "%s %s: %s", step_what[s], q->coll, err);
		failed(q, why);
	}
}

static void
remember_known(struct qdrant *q, const char *name)
{
	size_t i;
	json_t *v;
	json_array_foreach(q->known, i, v)
		if (strcmp(json_string_value(v), name) == 0)
			return;
	json_array_append_new(q->known, json_string(name));
}

/* The collection of this model and dimension: checked (or made) once. */
static bool
collection_ready(struct qdrant *q, const char *model, int dim)
{
	char path[300];
	collection_name(q, model, dim, q->coll, sizeof(q->coll));
	q->dim = dim;
	if (json_integer_value(json_object_get(q->ready, q->coll)) == dim)
		return true;
	snprintf(path, sizeof(path), "/collections/%s", q->coll);
	step(q, S_INFO, "GET", path, NULL);
	return false;
}

static json_t *
match(const char *key, json_t *value)
{
	return json_pack("{s:s, s:{s:o}}", "key", key, "match", "value", value);
}

static json_t *
point(const json_t *row)
{
	json_t *payload = json_object();
	static const char *const copied[] = { "agent_id", "memory_type", "content", "session_id",
		"role", "metadata", "model" };
	for (size_t i = 0; i < ARRAY_LEN(copied); i++)
		json_object_set(payload, copied[i], json_object_get(row, copied[i]));
	json_object_set(payload, "created_at", json_object_get(row, "timestamp"));
	json_object_set(payload, "row_id", json_object_get(row, "id"));
	return json_pack("{s:O, s:O, s:o}", "id", json_object_get(row, "id"), "vector",
	    json_object_get(row, "vector"), "payload", payload);
}

/* The next rows of one model, in id order, upserted and waited for. */
static void
ship(struct qdrant *q)
{
	json_t *rows, *row;
	int64_t from = store_mem_shipped(q->store);
	char path[320];
	size_t i;

	if (from >= store_mem_last_id(q->store) ||
	    store_mem_pending_vectors(q->store, from, Q_BATCH, &rows) < 0)
		return;
	const char *model = json_string_value(json_object_get(json_array_get(rows, 0), "model"));
	int dim = (int)json_array_size(json_object_get(json_array_get(rows, 0), "vector"));
	if (model == NULL || !collection_ready(q, model, dim)) {
		json_decref(rows);	/* none embedded yet, or the collection's step first */
		return;
	}
	json_t *points = json_array();
	json_array_foreach(rows, i, row) {
		if (strcmp(json_string_value(json_object_get(row, "model")), model) != 0 ||
		    (int)json_array_size(json_object_get(row, "vector")) != dim)
			break;	/* another collection's: the next batch */
		json_array_append_new(points, point(row));
		q->batch_last = json_integer_value(json_object_get(row, "id"));
	}
	q->batch_n = json_array_size(points);
	json_decref(rows);
	snprintf(path, sizeof(path), "/collections/%s/points?wait=true", q->coll);
	step(q, S_UPSERT, "PUT", path, json_pack("{s:o}", "points", points));
}

static void
send_delete(struct qdrant *q)
{
	json_t *d = json_array_get(q->drops, 0);
	size_t at = (size_t)json_integer_value(json_object_get(d, "at"));
	char path[320];

	if (at >= json_array_size(q->known)) {
		json_array_remove(q->drops, 0);
		q_pump(q);
		return;
	}
	snprintf(q->coll, sizeof(q->coll), "%s", json_string_value(json_array_get(q->known, at)));
	json_t *must = json_pack("[o]", match("agent_id", json_incref(json_object_get(d, "agent"))));
	int type = (int)json_integer_value(json_object_get(d, "type"));
	if (type >= 0)
		json_array_append_new(must, match("memory_type", json_string(memory_type_name(type))));
	json_array_append_new(must, json_pack("{s:s, s:{s:O}}", "key", "row_id", "range", "lte",
	    json_object_get(d, "upto")));
	snprintf(path, sizeof(path), "/collections/%s/points/delete?wait=true", q->coll);
	step(q, S_DELETE, "POST", path, json_pack("{s:{s:o}}", "filter", "must", must));
}

/* GET /collections: {"result": {"collections": [{"name"}]}}. */
static int
read_list(struct qdrant *q, const json_t *res)
{
	json_t *list = json_object_get(res, "collections"), *c;
	size_t i, n = strlen(q->prefix);
	if (!json_is_array(list))
		return -1;
	json_array_foreach(list, i, c) {
		const char *name = json_string_value(json_object_get(c, "name"));
		if (name && strncmp(name, q->prefix, n) == 0 && name[n] == '_')
			remember_known(q, name);
	}
	q->listed = true;
	return 0;
}

/* GET /collections/{c}: its vectors must be ours, {size, distance: Cosine}. */
static int
check_info(struct qdrant *q, const json_t *res, char *why, size_t len)
{
	json_t *v = json_object_get(json_object_get(json_object_get(res, "config"), "params"),
	    "vectors");
	json_t *size = json_object_get(v, "size");
	const char *dist = json_string_value(json_object_get(v, "distance"));
	if (json_is_integer(size) && json_integer_value(size) == q->dim && dist &&
	    strcmp(dist, "Cosine") == 0)
		return 0;
	if (json_is_integer(size))
		snprintf(why, len, "collection %s has vectors of size %lld and distance %s, but its "
		    "model gives %d-dimensional vectors compared by Cosine: refused, nothing shipped "
		    "(remove that collection, or set another agentd.qdrant.collection_prefix)",
		    q->coll, (long long)json_integer_value(size), dist ? dist : "(none)", q->dim);
	else
		snprintf(why, len, "collection %s is not of one unnamed vector {size, distance}: "
		    "refused, nothing shipped", q->coll);
	return -1;
}

static void
next_after(struct qdrant *q, const json_t *res)
{
	char path[320], why[1024];
	switch (q->step) {
	case S_LIST:
		if (read_list(q, res) < 0) {
			failed(q, "listing collections: the answer has no result.collections");
			return;
		}
		break;
	case S_INFO:
		if (check_info(q, res, why, sizeof(why)) < 0) {
			failed(q, why);
			return;
		}
		__attribute__((fallthrough));	/* the index is made whoever made it */
	case S_CREATE:
		remember_known(q, q->coll);
		snprintf(path, sizeof(path), "/collections/%s/index?wait=true", q->coll);
		step(q, S_INDEX, "PUT", path, json_pack("{s:s, s:s}", "field_name", "agent_id",
		    "field_schema", "keyword"));
		return;
	case S_INDEX:
		json_object_set_new(q->ready, q->coll, json_integer(q->dim));
		break;
	case S_UPSERT:
		if (!str_is(json_object_get(res, "status"), "completed")) {
			snprintf(why, sizeof(why), "upserting points into %s: not completed", q->coll);
			failed(q, why);
			return;
		}
		store_set_mem_shipped(q->store, q->batch_last);
		store_flush(q->store);
		q->shipped += (int64_t)q->batch_n;
		break;
	case S_DELETE: {
		json_t *d = json_array_get(q->drops, 0);
		json_object_set_new(d, "at", json_integer(json_integer_value(json_object_get(d,
		    "at")) + 1));
		break;
	}
	default:
		break;
	}
	q->step = S_NONE;
	q_pump(q);
}

static void
on_step(void *ctx, const struct http_reply *r)
{
	struct qdrant *q = ctx;
	json_t *j = r->error ? NULL : json_loadb(r->body, r->len, 0, NULL), *res;
	char why[1024], text[320];
	char path[300];

	q->req = NULL;
	if ((res = ok_result(r, j)) != NULL) {
		recovered(q);
		next_after(q, res);
	} else if (r->status == 404 && (q->step == S_INFO || q->step == S_DELETE)) {
		recovered(q);
		if (q->step == S_INFO) {	/* missing: made */
			snprintf(path, sizeof(path), "/collections/%s", q->coll);
			step(q, S_CREATE, "PUT", path, json_pack("{s:{s:i, s:s}}", "vectors", "size",
			    q->dim, "distance", "Cosine"));
		} else	/* gone already: nothing in it to delete */
			next_after(q, NULL);
	} else {
		if (q->step == S_UPSERT && r->status == 404)
			json_object_del(q->ready, q->coll);	/* removed meanwhile: made again */
		error_text(r, j, text, sizeof(text));
		snprintf(why, sizeof(why), "%s%s%s: %s", step_what[q->step], q->step == S_LIST ? "" :
		    " ", q->step == S_LIST ? "" : q->coll, text);
		failed(q, why);
	}
	json_decref(j);
}

static void
q_pump(void *b)
{
	struct qdrant *q = b;
	if (q->req || timer_armed(&q->retry) || q->key_error[0])
		return;
	if (!q->listed)
		step(q, S_LIST, "GET", "/collections", NULL);
	else if (json_array_size(q->drops))
		send_delete(q);
	else
		ship(q);
}

static void
on_retry(struct timer *t)
{
	q_pump(t->ctx);
}

/* Rows went (a clear, retention; while the store commits): their points
 * go too, once Qdrant can be told. */
static void
q_drop(void *b, const char *agent, int type, int64_t upto)
{
	struct qdrant *q = b;
	size_t i;
	json_t *d;
	json_array_foreach(q->drops, i, d)
		if (json_integer_value(json_object_get(d, "at")) == 0 &&
		    json_integer_value(json_object_get(d, "type")) == type &&
		    strcmp(json_string_value(json_object_get(d, "agent")), agent) == 0) {
			if (json_integer_value(json_object_get(d, "upto")) < upto)
				json_object_set_new(d, "upto", json_integer(upto));
			return;
		}
	json_array_append_new(q->drops, json_pack("{s:s, s:i, s:I, s:i}", "agent", agent, "type",
	    type, "upto", (json_int_t)upto, "at", 0));
	/* sent from the pump after the commit this comes in: never a read of
	 * the outbox inside it */
}

/* ---- search ------------------------------------------------------------------------- */

static void
search_unlink(struct mem_search *s)
{
	for (struct mem_search **pp = &s->q->queries; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			return;
		}
}

/* {"result": {"points": [{"id", "score"}]}}: the hits, best first. */
static void
on_hits(void *ctx, const struct http_reply *r)
{
	struct mem_search *s = ctx;
	struct qdrant *q = s->q;
	json_t *j = r->error ? NULL : json_loadb(r->body, r->len, 0, NULL);
	json_t *pts = json_object_get(ok_result(r, j), "points"), *p;
	char why[1024];
	size_t i, n = 0;
	struct vhit *hits = xcalloc(json_array_size(pts) + 1, sizeof(*hits));

	search_unlink(s);
	json_array_foreach(pts, i, p) {
		json_t *id = json_object_get(p, "id"), *score = json_object_get(p, "score");
		if (!json_is_integer(id) || !json_is_number(score)) {
			pts = NULL;
			break;
		}
		hits[n++] = (struct vhit){ json_integer_value(id), (float)json_number_value(score) };
	}
	if (json_is_array(pts)) {
		q->searches++;
		s->fn(s->ctx, hits, n, NULL);
	} else {
		error_text(r, j, why, sizeof(why));
		if (r->status == 200)
			snprintf(why, sizeof(why), "the answer is not result.points of ids and scores");
		if (r->error || r->status >= 500)
			failed(q, why);	/* down: shipping waits too */
		s->fn(s->ctx, NULL, 0, why);
	}
	free(hits);
	json_decref(j);
	free(s);
}

static struct mem_search *
q_search(void *b, const char *agent, const float *vector, int dim, unsigned types, size_t k,
    mem_search_fn fn, void *ctx)
{
	struct qdrant *q = b;
	const char *model = embedder_model(mem_embedder_for(store_memory(q->store), agent));
	char coll[256], path[320], err[256], why[1280];

	if (q->key_error[0] || q->failing_since) {
		snprintf(why, sizeof(why), "qdrant is %s (%s)", q->key_error[0] ? "not usable" :
		    "down", q->key_error[0] ? q->key_error : q->last_error);
		fn(ctx, NULL, 0, why);
		return NULL;
	}
	json_t *vec = json_array(), *any = json_array();
	for (int i = 0; i < dim; i++)
		json_array_append_new(vec, json_real(vector[i]));
	for (int t = 0; t < MT__N; t++)
		if (types & (1u << t))
			json_array_append_new(any, json_string(memory_type_name(t)));
	json_t *must = json_pack("[o, o, {s:s, s:{s:o}}]", match("agent_id", json_string(agent)),
	    match("model", json_string(model)), "key", "memory_type", "match", "any", any);
	json_t *body = json_pack("{s:o, s:I, s:{s:o}, s:b}", "query", vec, "limit", (json_int_t)k,
	    "filter", "must", must, "with_payload", 0);
	struct mem_search *s = xcalloc(1, sizeof(*s));
	s->q = q;
	s->fn = fn;
	s->ctx = ctx;
	collection_name(q, model, dim, coll, sizeof(coll));
	snprintf(path, sizeof(path), "/collections/%s/points/query", coll);
	if ((s->req = send_req(q, "POST", path, body, RECALL_WAIT_MS < q->timeout_ms ?
	    RECALL_WAIT_MS : q->timeout_ms, on_hits, s, err, sizeof(err))) == NULL) {
		free(s);
		snprintf(why, sizeof(why), "qdrant: %s", err);
		fn(ctx, NULL, 0, why);
		return NULL;
	}
	s->next = q->queries;
	q->queries = s;
	return s;
}

static void
q_search_cancel(struct mem_search *s)
{
	if (s == NULL)
		return;
	search_unlink(s);
	http_cancel(s->req);
	free(s);
}

/* ---- the backend -------------------------------------------------------------------- */

static void *
q_start(struct store *st, const struct global_conf *g, struct relay *r, char *err,
    size_t errlen)
{
	struct qdrant *q = xcalloc(1, sizeof(*q));
	char key[4096];

	q->store = st;
	if (g->qdrant_url) {
		q->base = xstrdup(g->qdrant_url);
		size_t n = strlen(q->base);
		while (n > 0 && q->base[n - 1] == '/')
			q->base[--n] = '\0';
	} else {
		char url[300];
		bool v6 = strchr(g->qdrant_host, ':') != NULL;
		snprintf(url, sizeof(url), "http://%s%s%s:%d", v6 ? "[" : "", g->qdrant_host,
		    v6 ? "]" : "", g->qdrant_port);
		q->base = xstrdup(url);
	}
	q->prefix = xstrdup(g->qdrant_prefix ? g->qdrant_prefix : "agentd");
	q->timeout_ms = g->qdrant_timeout_ms > 0 ? g->qdrant_timeout_ms : 10000;
	if (qdrant_read_key(g, key, sizeof(key), q->key_error, sizeof(q->key_error)) < 0)
		log_error("qdrant: %s: memory waits in the outbox, recall uses agentd's index",
		    q->key_error);
	else if (key[0])
		q->key = xstrdup(key);
	explicit_bzero(key, sizeof(key));
	q->known = json_array();
	q->ready = json_object();
	q->drops = json_array();
	timer_init(&q->retry, on_retry, q);
	log_info("qdrant: memory goes to %s (collections %s_*)", q->base, q->prefix);
	q_pump(q);
	return q;
}

/* Requests stop; rows wait in the outbox for the next start. */
static void
q_stop(void *b)
{
	struct qdrant *q = b;
	timer_stop(&q->retry);
	http_cancel(q->req);
	while (q->queries)	/* their owners cancel them first; any left are dropped */
		q_search_cancel(q->queries);
	if (json_array_size(q->drops))
		log_warn("qdrant: %zu deletes not sent: those points stay in Qdrant (never "
		    "answered: their rows are gone here)", json_array_size(q->drops));
	if (q->key)
		explicit_bzero(q->key, strlen(q->key));
	free(q->key);
	free(q->base);
	free(q->prefix);
	json_decref(q->known);
	json_decref(q->ready);
	json_decref(q->drops);
	free(q);
}

static void
q_status(const void *b, json_t *manager)
{
	const struct qdrant *q = b;
	const char *state = q->key_error[0] ? "no key" : q->failing_since ? "down" :
	    q->up ? "up" : "connecting";
	json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:O}", "qdrant", state, "url", q->base,
	    "memory_pending", (json_int_t)(store_mem_last_id(q->store) -
	    store_mem_shipped(q->store)), "shipped", (json_int_t)q->shipped,
	    "searches", (json_int_t)q->searches, "collections", q->known);
	json_object_set_new(o, "last_error", q->key_error[0] ? json_string(q->key_error) :
	    q->failing_since ? json_string(q->last_error) : json_null());
	json_object_set_new(manager, "qdrant", o);
}

const struct mem_backend mem_qdrant = {
	.store = "qdrant", .name = "qdrant", .ships = true,
	.start = q_start, .stop = q_stop, .pump = q_pump, .status = q_status,
	.search = q_search, .search_cancel = q_search_cancel, .drop = q_drop,
};
