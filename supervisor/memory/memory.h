/*
 * memory: agent memory's backends, behind the calls of store.h (the one
 * interface agentd's code uses: store_mem_append, store_mem_context,
 * store_mem_clear, ...).  This header is the folder's own, and store.c's.
 *
 * Where rows live: always in an embedded SQLite table (embedded.c) -- the
 * state db's for every backend but `memory`, whose table is in a private
 * in-memory database, so both answer alike.  The state db's table is the
 * outbox a remote backend is fed from: rows are committed there first (a
 * run never waits on a remote store), then the backend ships those after
 * its cursor, in id order, and moves the cursor once the far side has
 * them (store_set_mem_shipped); retention never prunes a row it has not
 * shipped.
 *
 * A backend is a row of memory.c's table: the memory_store name it serves
 * (and whether it needs database_url), the name status shows, and its ops,
 * as ae.c has an aeApi* set per event backend.  Adding one is a file here,
 * a row there, and the name in the config table's choices.
 *
 * A vector store (chromadb, qdrant) is such a backend with .ships: it
 * reads the outbox with store_mem_pending_vectors (rows in id order, each
 * with the vector of its agent's embedder and that model's name, so a
 * collection per model and dimension; the read stops before the first
 * row not embedded yet, so nothing is shipped out of order), and moves
 * the cursor with store_set_mem_shipped once the store has them -- once
 * each, as the Redis and PostgreSQL backends do.  To answer recall it adds
 * an op beside status: search(b, agent, vector, dim, types, k, done, ctx),
 * the nearest rows' ids and cosines, on the loop; memory.c's answer() asks
 * it instead of the vector index, and falls back to the index (always
 * there: every row is embedded locally) with "degraded": true and the
 * reason when the store fails or is down.  Its status adds its state and
 * memory_pending to agentctl status.  Rows that go here (a clear,
 * retention) are told to it with drop, for it to delete there too.
 */
#ifndef AGENTD_MEMORY_H
#define AGENTD_MEMORY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct global_conf;
struct memory;
struct relay;
struct store;

struct mem_search;
struct vhit;
/* A vector store's hits, best first (NULL: why it has none). */
typedef void (*mem_search_fn)(void *ctx, const struct vhit *hits, size_t n, const char *why);

/* A remote backend's ops; NULL ops where it has nothing to do. */
struct mem_backend {
	const char *store;       /* the memory_store value it serves */
	bool needs_url;          /* served only with (true) or without (false) a database_url */
	const char *name;        /* as status says it */
	bool in_memory;          /* rows in a private in-memory table, not the state db */
	bool ships;              /* rows go on to a remote store from the outbox */
	/* Once agentd's loop runs (r: the Redis relay, when there is one).
	 * The backend's state, or NULL with err. */
	void *(*start)(struct store *s, const struct global_conf *g, struct relay *r,
	    char *err, size_t errlen);
	void (*stop)(void *b);
	void (*pump)(void *b);   /* after every commit: ship what waits */
	void (*status)(const void *b, json_t *manager);   /* adds its fields */
	/* A vector store: the k nearest of the agent's rows of those types
	 * (the filter is the backend's to send), to done; the handle while it
	 * waits, NULL once done has come. */
	struct mem_search *(*search)(void *b, const char *agent, const float *vector, int dim,
	    unsigned types, size_t k, mem_search_fn done, void *ctx);
	void (*search_cancel)(struct mem_search *s);   /* done never comes */
	/* The agent's rows of that type (-1: any) with id <= upto are gone. */
	void (*drop)(void *b, const char *agent, int type, int64_t upto);
};

extern const struct mem_backend mem_redis, mem_postgres, mem_qdrant, mem_chromadb;

/* chroma.c: agentd.chromadb's token (token_file, token_env), or NULL: none,
 * or, with err set, why it could not be read. */
char *mem_chroma_token(const json_t *conf, char *err, size_t errlen);

/* chromachild.c: agentd's own Chroma server on dir (see there); its URL
 * into url, or NULL with err. */
struct chroma_child;
struct chroma_child *chroma_child_start(const char *command, const char *dir, int64_t grace_ms,
    char *url, size_t urllen, char *err, size_t errlen);
void chroma_child_ready(struct chroma_child *k);   /* it answered */
void chroma_child_stop(struct chroma_child *k);
void chroma_child_status(const struct chroma_child *k, json_t *o);

/* qdrant.c: agentd.qdrant's api-key (key[0] == '\0': none configured); -1
 * with why when one is configured and cannot be read. */
int qdrant_read_key(const struct global_conf *g, char *key, size_t len, char *why,
    size_t wlen);

/* postgres.c: is this a PostgreSQL URL (postgresql:// or postgres://)? */
bool mem_pg_url(const char *url);

/* store.c: opened with the store, once its db is; closed before the db. */
int mem_open(struct memory **m, struct store *s, const struct global_conf *g, char *err,
    size_t errlen);
void mem_close(struct memory *m);

/* index.c: every agent's vectors in memory, searched exactly; fusion. */
struct vindex;
struct vhit {
	int64_t id;
	float score;             /* cosine similarity, or (negated BM25) a text score */
};
struct fused {
	int64_t id;
	double score;            /* reciprocal rank fusion, 1 = first in every ranking */
	float similarity;        /* cosine, when the vector ranking had it */
	int vec_rank, text_rank; /* 1-based; 0: not in that ranking */
};
struct vindex *vindex_new(void);
void vindex_free(struct vindex *x);
/* Is the agent's collection loaded, for this model? */
bool vindex_has(const struct vindex *x, const char *agent, const char *model);
/* An empty collection for the agent (loading it starts here). */
void vindex_reset(struct vindex *x, const char *agent, const char *model);
size_t vindex_size(const struct vindex *x, const char *agent);
/* {"agents", "vectors", "bytes"}: the collections loaded, what they hold. */
json_t *vindex_status(const struct vindex *x);
/* Add a row's vector (copied, normalized) to the agent's collection, if it
 * is loaded for that model; -1 when its dimension is not the collection's. */
int vindex_add(struct vindex *x, const char *agent, const char *model, int64_t id, int type,
    const float *v, int dim);
/* Rows of the agent of that type (-1: any) with id <= upto are gone. */
void vindex_drop(struct vindex *x, const char *agent, int type, int64_t upto);
/* The k rows nearest to query among the types in the mask, best first. */
size_t vindex_search(const struct vindex *x, const char *agent, const float *query, int dim,
    unsigned types, size_t k, struct vhit *out);
/* Both rankings fused into out (room for nvec + ntext), best first; the
 * first min(k, rows) are the answer: their count. */
size_t rrf_fuse(const struct vhit *vec, size_t nvec, const struct vhit *text, size_t ntext,
    size_t k, struct fused *out);
void vec_normalize(float *v, int dim);

/* http.c: HTTP requests on agentd's loop (libcurl multi).  The callback
 * gets the status (0 when error says what failed: no answer, too large,
 * too late), the body and the server's Retry-After (-1: none). */
struct http_opts {
	const char *method;      /* NULL: POST with a body, else GET */
	const char *url;
	const char *const *headers;   /* NULL-terminated "Name: value" */
	const char *body;
	size_t len;
	int64_t timeout_ms;
	size_t max_reply;
};
struct http_reply {
	long status;
	const char *body;
	size_t len;
	int64_t retry_after_ms;
	const char *error;
};
struct http_req;
typedef void (*http_done_fn)(void *ctx, const struct http_reply *r);
struct http_req *http_request(const struct http_opts *o, http_done_fn fn, void *ctx,
    char *err, size_t errlen);
void http_cancel(struct http_req *r);   /* its callback never comes */
void http_shutdown(void);               /* once every request is done or cancelled */

/* hashembed.c: the built-in embedder (provider hash). */
#define HASH_MODEL "hash-v1"
void hash_embed(const char *text, size_t len, float *v, int dim);

/* A word iterator, the one the hash embedder and the text search share:
 * lower-cased runs of letters and digits (any byte of a UTF-8 sequence is
 * a letter), English function words left out.  fn false stops. */
typedef bool (*word_fn)(void *ctx, const char *word, size_t n);
void text_words(const char *text, size_t len, word_fn fn, void *ctx);

/* embed.c: the embedders (see there). */
struct embedder;
struct embed_query;
/* vec NULL: why it could not be had. */
typedef void (*embed_query_fn)(void *ctx, const float *vec, int dim, const char *why);
/* conf: the normalized embeddings mapping; NULL: hash, 384 dimensions. */
struct embedder *embedder_new(struct memory *m, const json_t *conf);
void embedder_free(struct embedder *e);
void embedder_stop(struct embedder *e);
bool embedder_is(const struct embedder *e, const char *conf);   /* conf: compact, sorted */
const char *embedder_model(const struct embedder *e);
void embedder_rescan(struct embedder *e);    /* an agent came to it: every row again */
void embedder_pump(struct embedder *e);      /* embed what is committed and has no vector */
/* The query's vector: fn now (hash, or known failing) or within wait_ms;
 * the handle while it waits, else NULL. */
struct embed_query *embedder_query(struct embedder *e, const char *text, int64_t wait_ms,
    embed_query_fn fn, void *ctx);
void embed_query_cancel(struct embed_query *q);   /* fn never comes */
json_t *embedder_status(const struct embedder *e);

/* memory.c, for embed.c. */
struct embedded *mem_local(struct memory *m);
struct vindex *mem_index(struct memory *m);
struct store *mem_store(struct memory *m);
struct embedder *mem_embedder_for(struct memory *m, const char *agent);

/* embedded.c: the SQLite table (the state db's, or an in-memory one). */
struct embedded;
int emb_open(struct embedded **e, struct store *s, bool in_memory, bool outbox,
    int64_t retention, char *err, size_t errlen);
void emb_close(struct embedded *e);
int emb_append(struct embedded *e, const char *agent, const char *session_id,
    const char *memory_type, const char *role, const char *content, const json_t *metadata);
int emb_context(struct embedded *e, const char *agent, const char *memory_type, int limit,
    json_t **out);
int emb_clear(struct embedded *e, const char *agent, const char *memory_type);
json_t *emb_row(struct embedded *e, const char *agent, int64_t id);   /* NULL: none */
/* Rows of the agent (type code, -1 for any) with id <= upto are gone. */
typedef void (*emb_drop_fn)(void *ctx, const char *agent, int type, int64_t upto);
void emb_on_drop(struct embedded *e, emb_drop_fn fn, void *ctx);
/* The row's vector (copied), once the row is committed. */
int emb_put_vector(struct embedded *e, const char *agent, int64_t id, const char *model,
    const float *v, int dim);
/* BM25 over the agent's rows of those types: match is an FTS5 query. */
size_t emb_fts(struct embedded *e, const char *agent, const char *match, unsigned types,
    size_t k, struct vhit *out);
/* The agent's vectors of that model, in id order. */
typedef void (*emb_vec_fn)(void *ctx, int64_t id, int type, const void *vec, int dim);
int emb_vectors(struct embedded *e, const char *agent, const char *model, emb_vec_fn fn,
    void *ctx);
int emb_model_dim(struct embedded *e, const char *model);   /* of its vectors; 0: none */
/* Rows after `after` up to `upto`, oldest first, at most limit, with the
 * model of their vector (NULL: none); fn false stops before that row.
 * Returns the last row passed (after, for none). */
typedef bool (*emb_scan_fn)(void *ctx, int64_t id, const char *agent, int type,
    const char *content, const char *model);
int64_t emb_scan(struct embedded *e, int64_t after, int64_t upto, int limit, emb_scan_fn fn,
    void *ctx);
int64_t emb_shipped(const struct embedded *e);
int emb_set_shipped(struct embedded *e, int64_t id);
int64_t emb_last_id(const struct embedded *e);
int emb_pending(struct embedded *e, int64_t after, int limit, json_t **out);
/* The same, each row with its "model" and "vector", up to the first row
 * that has no vector of its agent's model (model_of) yet. */
typedef const char *(*emb_model_fn)(void *ctx, const char *agent);
int emb_pending_vectors(struct embedded *e, int64_t after, int limit, emb_model_fn model_of,
    void *ctx, json_t **out);

#endif
