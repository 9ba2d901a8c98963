/*
 * memory: the calls of store.h, routed to the configured backend (see
 * memory.h).  The table below is every memory_store agentd knows; the
 * backend for a configuration is the first row serving its memory_store
 * (and database_url, or none).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/jsonmp.h"
#include "common/limits.h"
#include "common/util.h"
#include "conf/config.h"
#include "common/log.h"
#include "supervisor/memory/memory.h"
#include "supervisor/store.h"

struct memory {
	struct store *store;
	const struct mem_backend *backend;
	struct embedded *local;   /* where the rows are */
	void *remote;             /* the backend's state, once started */
};

static const struct mem_backend mem_database = { .store = "database", .name = "database" };
static const struct mem_backend mem_memory = { .store = "memory", .name = "memory",
	.in_memory = true };

static const struct mem_backend *const backends[] = {
	&mem_database, &mem_memory, &mem_redis, &mem_postgres,
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
		    "(available: database, memory, redis)", name);
		return -1;
	}
	struct memory *m = xcalloc(1, sizeof(*m));
	m->store = s;
	m->backend = b;
	*out = m;
	return emb_open(&m->local, s, b->in_memory, b->ships, g->memory_retention > 0 ?
	    g->memory_retention : 10000, err, errlen);
}

void
mem_close(struct memory *m)
{
	if (m == NULL)
		return;
	emb_close(m->local);
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
}

void
store_mem_status(const struct store *s, json_t *manager)
{
	struct memory *m = store_memory(s);
	if (m->remote && m->backend->status)
		m->backend->status(m->remote, manager);
}

void
store_mem_stop(struct store *s)
{
	struct memory *m = store_memory(s);
	int64_t left = emb_last_id(m->local) - emb_shipped(m->local);
	if (m->remote == NULL)
		return;
	if (left > 0)
		log_info("%lld memory rows not yet in %s stay in the outbox for the next start",
		    (long long)left, m->backend->name);
	m->backend->stop(m->remote);
	m->remote = NULL;
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
int store_set_mem_shipped(struct store *s, int64_t id) { return emb_set_shipped(local(s), id); }
int64_t store_mem_last_id(const struct store *s) { return emb_last_id(local(s)); }

int
store_mem_pending(struct store *s, int64_t after, int limit, json_t **out)
{
	return emb_pending(local(s), after, limit, out);
}
