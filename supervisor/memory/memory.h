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
};

extern const struct mem_backend mem_redis, mem_postgres;

/* postgres.c: is this a PostgreSQL URL (postgresql:// or postgres://)? */
bool mem_pg_url(const char *url);

/* store.c: opened with the store, once its db is; closed before the db. */
int mem_open(struct memory **m, struct store *s, const struct global_conf *g, char *err,
    size_t errlen);
void mem_close(struct memory *m);

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
int64_t emb_shipped(const struct embedded *e);
int emb_set_shipped(struct embedded *e, int64_t id);
int64_t emb_last_id(const struct embedded *e);
int emb_pending(struct embedded *e, int64_t after, int limit, json_t **out);

#endif
