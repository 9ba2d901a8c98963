/*
 * memory: the calls of store.h, routed to the configured backend (see
 * memory.h).  The table below is every memory_store agentd knows; the
 * backend for a configuration is the first row serving its memory_store
 * (and database_url, or none).
 *
 * Recall is here too: the query's vector from the agent's embedder
 * (embed.c), the nearest rows from the vector index (index.c, loaded from
 * the table the first time an agent is asked for), the best BM25 rows from
 * the text index (embedded.c), fused (index.c) and read back from the
 * table, the agent's own only.  Without a vector for the query the words
 * alone rank, and the answer says it is degraded and why.  With a vector
 * store (qdrant) the nearest rows are its answer instead of the index's;
 * when it has none (down, failing) the index's, degraded, with why.  Candidates
 * from each ranking: four times what is asked for, at least 50, so a row
 * ranked well by both is not lost to a row ranked first by one.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/jsonmp.h"
#include "common/limits.h"
#include "common/util.h"
#include "conf/config.h"
#include "common/log.h"
#include "supervisor/memory/memory.h"
#include "supervisor/store.h"

#define CANDIDATES_MIN 50
#define QUERY_TERMS_MAX 32

struct memory {
	struct store *store;
	const struct mem_backend *backend;
	struct embedded *local;   /* where the rows are */
	void *remote;             /* the backend's state, once started */
	struct vindex *index;
	struct embedder **emb;    /* [0]: agentd's (agentd.embeddings) */
	size_t nemb;
	json_t *agents;           /* agent -> index in emb, for those with their own */
	int64_t shipped_n;        /* rows the remote backend took, since start */
};

static const struct mem_backend mem_database = { .store = "database", .name = "database" };
static const struct mem_backend mem_memory = { .store = "memory", .name = "memory",
	.in_memory = true };

static const struct mem_backend *const backends[] = {
	&mem_database, &mem_memory, &mem_redis, &mem_postgres, &mem_qdrant, &mem_chromadb,
};

static const char *const type_names[MT__N] = {
	[MT_WORKING] = "working", [MT_EPISODIC] = "episodic", [MT_LONG_TERM] = "long_term",
	[MT_PROCEDURAL] = "procedural",
};

int
memory_type_code(const char *t)
{
	for (int i = 0; t && i < MT__N; i++)
		if (strcmp(t, type_names[i]) == 0)
			return i;
	return -1;
}

const char *
memory_type_name(int code)
{
	return code >= 0 && code < MT__N ? type_names[code] : NULL;
}

bool
memory_type_valid(const char *t)
{
	return memory_type_code(t) >= 0;
}

/* Rows went (retention, a clear): so do their vectors in the index. */
static void
on_drop(void *ctx, const char *agent, int type, int64_t upto)
{
	struct memory *m = ctx;
	vindex_drop(m->index, agent, type, upto);
	if (m->remote && m->backend->drop)
		m->backend->drop(m->remote, agent, type, upto);
}

static const struct mem_backend *
find_backend(const char *store, bool url)
{
	for (size_t i = 0; i < ARRAY_LEN(backends); i++)
		if (strcmp(backends[i]->store, store) == 0 && backends[i]->needs_url == url)
			return backends[i];
	return NULL;
}

int
mem_open(struct memory **out, struct store *s, const struct global_conf *g, char *err,
    size_t errlen)
{
	const char *name = g->memory_store ? g->memory_store : "database";
	const struct mem_backend *b;

	*out = NULL;
	if (g->database_url && !mem_pg_url(g->database_url)) {
		snprintf(err, errlen, "database_url must be a postgresql:// URL (the embedded "
		    "SQLite store needs none)");
		return -1;
	}
	if ((b = find_backend(name, g->database_url != NULL)) == NULL &&
	    (b = find_backend(name, false)) == NULL) {
		snprintf(err, errlen, "memory_store %s is not available in this build "
		    "(available: database, memory, redis, qdrant, chromadb)", name);
		return -1;
	}
	struct memory *m = xcalloc(1, sizeof(*m));
	m->store = s;
	m->backend = b;
	m->index = vindex_new();
	m->agents = json_object();
	*out = m;
	if (emb_open(&m->local, s, b->in_memory, b->ships, g->memory_retention > 0 ?
	    g->memory_retention : 10000, err, errlen) < 0)
		return -1;
	emb_on_drop(m->local, on_drop, m);
	m->emb = xcalloc(1, sizeof(*m->emb));
	m->emb[m->nemb++] = embedder_new(m, g->embeddings);
	return 0;
}

void
mem_close(struct memory *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nemb; i++)
		embedder_free(m->emb[i]);
	free(m->emb);
	http_shutdown();
	emb_close(m->local);
	vindex_free(m->index);
	json_decref(m->agents);
	free(m);
}

int
store_mem_start(struct store *s, const struct global_conf *g, struct relay *r, char *err,
    size_t errlen)
{
	struct memory *m = store_memory(s);
	if (m->backend->start == NULL)
		return 0;
	m->remote = m->backend->start(s, g, r, err, errlen);
	return m->remote ? 0 : -1;
}

void
store_mem_pump(struct store *s)
{
	struct memory *m = store_memory(s);
	if (m->remote && m->backend->pump)
		m->backend->pump(m->remote);
	for (size_t i = 0; i < m->nemb; i++)
		embedder_pump(m->emb[i]);
}

void
store_mem_status(const struct store *s, json_t *manager)
{
	struct memory *m = store_memory(s);
	json_t *emb = json_array();
	for (size_t i = 0; i < m->nemb; i++)
		json_array_append_new(emb, embedder_status(m->emb[i]));
	json_object_set_new(manager, "memory", json_pack("{s:s, s:o, s:o}", "backend",
	    m->backend->name, "embeddings", emb, "index", vindex_status(m->index)));
	if (m->remote && m->backend->status)
		m->backend->status(m->remote, manager);
}

void
store_mem_stop(struct store *s)
{
	struct memory *m = store_memory(s);
	int64_t left = emb_last_id(m->local) - emb_shipped(m->local);
	for (size_t i = 0; i < m->nemb; i++)
		embedder_stop(m->emb[i]);
	if (m->remote) {	/* before http: its requests are cancelled there */
		if (left > 0)
			log_info("%lld memory rows not yet in %s stay in the outbox for the next "
			    "start", (long long)left, m->backend->name);
		m->backend->stop(m->remote);
		m->remote = NULL;
	}
	http_shutdown();
}

/* ---- embedders ------------------------------------------------------------------------- */

struct embedded *mem_local(struct memory *m) { return m->local; }
struct vindex *mem_index(struct memory *m) { return m->index; }
struct store *mem_store(struct memory *m) { return m->store; }

struct embedder *
mem_embedder_for(struct memory *m, const char *agent)
{
	json_t *ix = json_object_get(m->agents, agent);
	return m->emb[ix ? json_integer_value(ix) : 0];
}

void
store_mem_agent(struct store *s, const char *agent, const json_t *conf)
{
	struct memory *m = store_memory(s);
	struct embedder *before = mem_embedder_for(m, agent);
	size_t i = 0;

	if (conf) {
		char *text = json_dumps(conf, JSON_COMPACT | JSON_SORT_KEYS);
		while (i < m->nemb && !embedder_is(m->emb[i], text))
			i++;
		free(text);
		if (i == m->nemb) {
			m->emb = xrealloc(m->emb, (m->nemb + 1) * sizeof(*m->emb));
			m->emb[m->nemb++] = embedder_new(m, conf);
		}
	}
	if (i)
		json_object_set_new(m->agents, agent, json_integer((json_int_t)i));
	else
		json_object_del(m->agents, agent);
	if (m->emb[i] != before)	/* its rows may lack this one's vectors */
		embedder_rescan(m->emb[i]);
}

/* ---- the calls (store.h) -------------------------------------------------------------- */

static struct embedded *
local(const struct store *s)
{
	return store_memory(s)->local;
}

const char *store_memory_backend(const struct store *s) { return store_memory(s)->backend->name; }

int
store_mem_append(struct store *s, const char *agent, const char *session_id,
    const char *memory_type, const char *role, const char *content,
    const json_t *metadata)
{
	if (!memory_type_valid(memory_type))
		return -1;
	return emb_append(local(s), agent, session_id, memory_type, role, content, metadata);
}

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
	if (!memory_type_valid(memory_type) || limit < 0)
		return -1;
	int rc = emb_context(local(s), agent, memory_type, limit, out);
	if (rc == 0)
		mem_fit(*out, MEMORY_REPLY_MAX);
	return rc;
}

int
store_mem_clear(struct store *s, const char *agent, const char *memory_type)
{
	if (!memory_type_valid(memory_type))
		return -1;
	return emb_clear(local(s), agent, memory_type);
}

int64_t store_mem_shipped(const struct store *s) { return emb_shipped(local(s)); }

int
store_set_mem_shipped(struct store *s, int64_t id)
{
	struct memory *m = store_memory(s);
	int64_t was = emb_shipped(m->local);
	if (id > was)
		m->shipped_n += id - was;
	return emb_set_shipped(m->local, id);
}

void
store_mem_stats(const struct store *s, struct store_stats *o)
{
	struct memory *m = store_memory(s);
	int64_t left = emb_last_id(m->local) - emb_shipped(m->local);
	o->mem_backend = m->remote ? m->backend->name : NULL;
	o->memory_unshipped = left > 0 ? left : 0;
	o->memory_shipped = m->shipped_n;
}
int64_t store_mem_last_id(const struct store *s) { return emb_last_id(local(s)); }

int
store_mem_pending(struct store *s, int64_t after, int limit, json_t **out)
{
	return emb_pending(local(s), after, limit, out);
}

static const char *
model_of(void *ctx, const char *agent)
{
	return embedder_model(mem_embedder_for(ctx, agent));
}

int
store_mem_pending_vectors(struct store *s, int64_t after, int limit, json_t **out)
{
	return emb_pending_vectors(local(s), after, limit, model_of, store_memory(s), out);
}

/* ---- recall ------------------------------------------------------------------------ */

struct terms {
	struct buf b;
	int n;
};

/* Each word an FTS5 string ("word": no operator in it can act), ORed. */
static bool
add_term(void *ctx, const char *word, size_t n)
{
	struct terms *t = ctx;
	if (t->n == QUERY_TERMS_MAX)
		return false;
	if (t->n++)
		buf_append(&t->b, " OR ", 4);
	buf_append(&t->b, "\"", 1);
	buf_append(&t->b, word, n);
	buf_append(&t->b, "\"", 1);
	return true;
}

struct loading {
	struct vindex *x;
	const char *agent, *model;
};

static void
load_vec(void *ctx, int64_t id, int type, const void *vec, int dim)
{
	struct loading *l = ctx;
	vindex_add(l->x, l->agent, l->model, id, type, vec, dim);
}

/* The agent's collection, from the table the first time it is asked for. */
static void
index_load(struct memory *m, const char *agent, const char *model)
{
	struct loading l = { m->index, agent, model };
	if (vindex_has(m->index, agent, model))
		return;
	vindex_reset(m->index, agent, model);
	emb_vectors(m->local, agent, model, load_vec, &l);
}

static double
rounded(double x)
{
	return round(x * 10000) / 10000;
}

/* The hits, best first, as many of the best as fit an answer. */
static json_t *
hits_json(struct memory *m, const char *agent, const struct fused *f, size_t n)
{
	json_t *hits = json_array();
	size_t bytes = 64;
	for (size_t i = 0; i < n; i++) {
		json_t *item = emb_row(m->local, agent, f[i].id);
		if (item == NULL)
			continue;	/* gone since it was indexed */
		json_object_set_new(item, "score", json_real(rounded(f[i].score)));
		if (f[i].vec_rank) {
			json_object_set_new(item, "similarity", json_real(rounded(f[i].similarity)));
			json_object_set_new(item, "vector_rank", json_integer(f[i].vec_rank));
		}
		if (f[i].text_rank)
			json_object_set_new(item, "text_rank", json_integer(f[i].text_rank));
		size_t sz = json_compact_size(item) + 1;
		if (json_array_size(hits) > 0 && bytes + sz > MEMORY_REPLY_MAX) {
			json_decref(item);
			break;
		}
		bytes += sz;
		json_array_append_new(hits, item);
	}
	return hits;
}

static size_t
candidates(const struct mem_recall *q)
{
	return (size_t)q->limit * 4 > CANDIDATES_MIN ? (size_t)q->limit * 4 : CANDIDATES_MIN;
}

/* q is free for another recall: what this one held, gone. */
static void
recall_reset(struct mem_recall *q)
{
	q->busy = false;
	q->wait = NULL;
	q->search = NULL;
	free(q->agent);
	free(q->query);
	free(q->vec);
	q->agent = q->query = NULL;
	q->vec = NULL;
}

/* The vector ranking is in (vh, nv; none without a query vector): the
 * words' ranking, both fused, the hits read back, the answer. */
static void
finish(struct mem_recall *q, const struct vhit *vh, size_t nv, bool have_vec, bool degraded,
    const char *why)
{
	struct memory *m = q->m;
	size_t k = candidates(q);
	struct vhit *th = xcalloc(k, sizeof(*th));
	struct fused *f = xcalloc(nv + k, sizeof(*f));
	struct terms t = { .n = 0 };
	size_t nt = 0;

	buf_init(&t.b);
	text_words(q->query, strlen(q->query), add_term, &t);
	buf_append(&t.b, "", 1);
	if (t.n && (q->rank != RANK_VECTOR || !have_vec))
		nt = emb_fts(m->local, q->agent, (const char *)t.b.data, q->types, k, th);
	size_t n = rrf_fuse(vh, nv, th, nt, (size_t)q->limit, f);
	json_t *a = json_pack("{s:o, s:b}", "hits", hits_json(m, q->agent, f, n), "degraded",
	    degraded);
	if (degraded)
		json_object_set_new(a, "reason", json_string(why));
	buf_free(&t.b);
	free(th);
	free(f);
	recall_reset(q);
	q->done(q, a);	/* may start another on q */
}

/* The vector ranking from agentd's own index. */
static void
index_rank(struct mem_recall *q, const float *vec, int dim, bool degraded, const char *why)
{
	struct memory *m = q->m;
	size_t k = candidates(q), nv = 0;
	struct vhit *vh = xcalloc(k, sizeof(*vh));

	if (vec && q->rank != RANK_TEXT) {
		index_load(m, q->agent, embedder_model(mem_embedder_for(m, q->agent)));
		nv = vindex_search(m->index, q->agent, vec, dim, q->types, k, vh);
	}
	finish(q, vh, nv, vec != NULL, degraded, why);
	free(vh);
}

/* A vector store's ranking; when it has none, the index's, degraded. */
static void
on_hits(void *ctx, const struct vhit *hits, size_t n, const char *why)
{
	struct mem_recall *q = ctx;
	char reason[600];

	q->search = NULL;
	if (hits) {
		finish(q, hits, n, true, false, NULL);
		return;
	}
	snprintf(reason, sizeof(reason), "%s: %s (vectors searched in agentd's index)",
	    q->m->backend->name, why);
	index_rank(q, q->vec, q->dim, true, reason);
}

static void
answer(struct mem_recall *q, const float *vec, int dim, const char *why)
{
	struct memory *m = q->m;
	if (vec == NULL || q->rank == RANK_TEXT || m->remote == NULL || m->backend->search == NULL) {
		index_rank(q, vec, dim, vec == NULL && q->rank != RANK_TEXT, why);
		return;
	}
	q->vec = xmalloc((size_t)dim * sizeof(float));
	memcpy(q->vec, vec, (size_t)dim * sizeof(float));
	q->dim = dim;
	struct mem_search *s = m->backend->search(m->remote, q->agent, vec, dim, q->types,
	    candidates(q), on_hits, q);
	if (s)	/* not answered yet */
		q->search = s;
}

static void
on_vector(void *ctx, const float *vec, int dim, const char *why)
{
	answer(ctx, vec, dim, why);
}

void
store_mem_recall(struct store *s, struct mem_recall *q, const char *agent, const char *query,
    int limit, unsigned types)
{
	struct memory *m = store_memory(s);
	q->m = m;
	q->agent = xstrdup(agent);
	q->query = xstrdup(query);
	q->limit = limit > 0 ? limit : 1;
	q->types = types;
	q->busy = true;
	if (q->rank == RANK_TEXT) {	/* no vector needed */
		answer(q, NULL, 0, NULL);
		return;
	}
	struct embed_query *w = embedder_query(mem_embedder_for(m, agent), query, RECALL_WAIT_MS,
	    on_vector, q);
	if (q->busy && w)	/* not answered yet: it waits for the vector */
		q->wait = w;
}

void
store_mem_recall_cancel(struct mem_recall *q)
{
	if (!q->busy)
		return;
	embed_query_cancel(q->wait);
	if (q->search)
		q->m->backend->search_cancel(q->search);
	recall_reset(q);
}
