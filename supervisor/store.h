/*
 * store: where agentd keeps what must outlive a process.
 *
 * Three concerns, one owner (agentd; workers never touch a store):
 *   state   per-agent counters, pause flag, session_id, next run: always the
 *           embedded SQLite file <state_dir>/agentd.db, written through at
 *           every change.
 *   events  the event log: backend "database" (same SQLite file, table
 *           events) or "memory" (a bounded ring, lost on exit).  Retention
 *           is bounded (oldest dropped past the limit, counted).
 *   memory  agent memory (working, episodic, long_term, procedural): its
 *           backends are supervisor/memory/'s; the calls are below.
 *   agents  the configs of agents created over the API (table api_agents),
 *           in the SQLite file whatever the other stores are.
 *
 * Writes made during one loop pass are batched into one SQLite transaction:
 * store_begin() is implicit on the first write, store_flush() at the end of
 * the pass commits.  Callers never see which backend answered.
 */
#ifndef AGENTD_STORE_H
#define AGENTD_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

struct store;
struct global_conf;

struct agent_state {
	int64_t run_count;
	int64_t error_count;
	int64_t skipped_count;
	int64_t restart_count;
	int64_t last_run;      /* wall ms of the last run's start; 0 never */
	int64_t last_success;  /* wall ms; 0 never */
	int64_t next_run;      /* wall ms; 0 none scheduled */
	int64_t seq;           /* last per-agent event sequence number used */
	bool paused;
	char session_id[96];   /* stable: "background_<agent_id>_<unix seconds of creation>" */
	json_t *extra;         /* free-form JSON object kept for the agent (owned; may be NULL) */
};

/* One stored event.  id is the store's global order (1, 2, ...). */
struct event {
	int64_t id;
	char event_id[37];
	const char *type;
	const char *agent_name;
	int64_t seq;
	int64_t timestamp;     /* wall ms */
	json_t *payload;       /* object */
	const char *payload_json;  /* the same, compact, when the caller has it */
};

/* Opens <g->state_dir>/agentd.db (creating tables) and the configured
 * backends.  -1 with a reason in err (unknown backend name, a damaged db). */
int store_open(struct store **s, const struct global_conf *g, char *err, size_t errlen);
void store_close(struct store *s);   /* flushes first */
/* Commit the pending batch.  -1 when it failed or waits for a retry: the
 * writes are kept (see store.c) and a timer tries again. */
int store_flush(struct store *s);
/* fn runs at the start of every commit, so what it writes goes into the
 * same transaction as the pass's events (agent state that is saved once
 * per pass rather than once per event). */
void store_on_commit(struct store *s, void (*fn)(void *ctx), void *ctx);

/* State.  load returns 1 when found, 0 when the agent is new (st zeroed,
 * session_id left empty), -1 on error. */
int store_state_load(struct store *s, const char *agent, struct agent_state *st);
int store_state_save(struct store *s, const char *agent, const struct agent_state *st);
int store_state_delete(struct store *s, const char *agent);

/* Agents created over the API: each one's config as it was given (JSON
 * text) and its ETag.  A write commits what is pending first and is then
 * committed on its own, before the caller answers, so an agent a client
 * was told of is on disk: -1 (logged, err says why) when the db takes no
 * writes now.  list: [{name, config, etag}] in creation order, or NULL
 * (logged) when the table cannot be read. */
int store_api_put(struct store *s, const char *name, const char *config, const char *etag,
    char *err, size_t errlen);
int store_api_delete(struct store *s, const char *name, char *err, size_t errlen);
json_t *store_api_list(struct store *s);
/* state_store redis: the agents whose state was saved (true) or deleted
 * (false) since the last take, or NULL; a failed shipment puts them back. */
json_t *store_state_take_dirty(struct store *s);
void store_state_requeue(struct store *s, json_t *taken);
void agent_state_free(struct agent_state *st);   /* frees extra only */

/* Events.  append assigns ev->id; payload is not consumed.  1 when the
 * event is not kept (the db takes no writes and the pending bound is
 * reached: counted, and reported by store_take_drops). */
int store_event_append(struct store *s, struct event *ev);
/* Events with id > after_id, oldest first, at most limit, optionally of one
 * agent, as a JSON array of event objects (event_to_json form).  When
 * after_id < 0, the newest `limit` events (still oldest first). */
int store_events_query(struct store *s, const char *agent, int64_t after_id,
    int limit, json_t **out);
/* Which events: of one agent, of one session (the payload's session_id),
 * of one type; NULL for any. */
struct event_filter {
	const char *agent, *session_id, *type;
};
bool event_filter_match(const struct event_filter *f, const struct event *ev);
/* The same as one page of an answer, of the events f lets through (f may
 * be NULL), each filter on an index: the array stops before an event that
 * would take it past max_bytes of compact JSON (the first is always in),
 * and cut says that it stopped so, with events left within limit. */
struct events_page {
	size_t max_bytes;      /* in */
	int64_t upto;          /* in: only ids up to this one (0: any) */
	json_t *out;           /* out: the array (a new reference, even on error) */
	size_t bytes;          /* out: its size, as counted */
	bool cut;              /* out */
};
int store_events_page(struct store *s, const struct event_filter *f, int64_t after_id,
    int limit, struct events_page *pg);
/* The outbox as stored, for the relay: events with id > after_id, oldest
 * first, at most limit, each with payload_json set (payload NULL) and its
 * session id ("" for none).  The strings live until fn returns. */
typedef void (*store_outbox_fn)(void *ctx, const struct event *ev, const char *session_id);
int store_outbox_read(struct store *s, int64_t after_id, int limit, store_outbox_fn fn,
    void *ctx);
/* {"id","event_id","type","agent_name","seq","timestamp" (ISO 8601),
 *  "payload"} */
json_t *event_to_json(const struct event *ev);
const char *store_event_backend(const struct store *s);
const char *store_memory_backend(const struct store *s);
int64_t store_events_dropped(const struct store *s);   /* by retention */

/* The outbox, for event_store redis_stream: events stay in SQLite, and
 * the relay records how far it has delivered them.  Unshipped events
 * survive retention, up to an outbox bound of 4x event_retention. */
int64_t store_shipped(struct store *s);
int store_set_shipped(struct store *s, int64_t id);
int64_t store_last_id(const struct store *s);   /* the last committed */
/* A random number made when the state db was created: event ids restart
 * with a new db, and a consumer keyed on ids must know. */
int64_t store_epoch(const struct store *s);
int64_t store_outbox_dropped(const struct store *s);
/* Events lost since the last take, for the events_dropped event of each
 * agent: [{"agent", "dropped", "first_seq", "last_seq", "reason"}], or NULL
 * for none.  The outbox bound's, and the pending bound's (a state db that
 * took no writes for too long) once the db takes them again. */
json_t *store_take_drops(struct store *s);

/* The store's numbers for /metrics, with no JSON made: as they stand,
 * or since agentd started (errors: statements and commits that failed;
 * shipped: rows an outbox delivered). */
struct store_stats {
	bool degraded;
	int64_t errors;
	int64_t pending_events, pending_memory;   /* waiting in memory while degraded */
	int64_t dropped_events, dropped_memory;   /* at the pending bound */
	bool events_outbox;                       /* event_store redis_stream */
	int64_t events_unshipped, events_shipped;
	const char *mem_backend;                  /* the memory outbox's, or NULL: none */
	int64_t memory_unshipped, memory_shipped;
};
void store_stats(const struct store *s, struct store_stats *out);

/* {"state": "ok" | "degraded", "error", "since", "next_retry",
 *  "pending_events", "pending_memory", "pending_bytes", "dropped_events",
 *  "dropped_memory"}: whether the last commit failed, and what waits. */
json_t *store_status(const struct store *s);

/*
 * Memory (supervisor/memory/: the backends behind these calls).
 * memory_type one of working, episodic, long_term, procedural (anything
 * else: -1).  metadata may be NULL.  append: 1 when not kept (as for
 * events; counted in store_status).
 */
int store_mem_append(struct store *s, const char *agent, const char *session_id,
    const char *memory_type, const char *role, const char *content,
    const json_t *metadata);
/* The newest `limit` items of that type, oldest first, as a JSON array of
 * {"id","role","content","memory_type","timestamp","metadata"}; of those,
 * the newest that fit MEMORY_REPLY_MAX, so the answer fits a frame. */
int store_mem_context(struct store *s, const char *agent, const char *memory_type,
    int limit, json_t **out);
int store_mem_clear(struct store *s, const char *agent, const char *memory_type);
const char *store_memory_backend(const struct store *s);

bool memory_type_valid(const char *t);
/* The types as numbers, -1 for none; a set of them is a mask of 1 << code. */
enum { MT_WORKING, MT_EPISODIC, MT_LONG_TERM, MT_PROCEDURAL, MT__N };
#define MEMORY_RECALL_TYPES ((1u << MT_EPISODIC) | (1u << MT_LONG_TERM))
int memory_type_code(const char *t);
const char *memory_type_name(int code);

/* The embeddings an agent's memory is embedded with: its own (the
 * normalized memory_config.embeddings), or agentd's when conf is NULL.
 * Called when an agent is made and when its config changes. */
void store_mem_agent(struct store *s, const char *agent, const json_t *conf);

/*
 * Recall, the seed's query_both_memory_types: the agent's rows of the types
 * in the mask most related to a query, by meaning (exact cosine over the
 * vectors) and by words (FTS5, BM25), fused by reciprocal rank.  The answer
 * goes to done, a new reference for the caller: {"hits": [{"id",
 * "memory_type", "role", "content", "timestamp", "metadata", "score" (1:
 * first in both rankings), "similarity" (cosine) and "vector_rank" when
 * the vectors ranked it, "text_rank" when the words did}], "degraded":
 * false} -- or "degraded": true with "reason" when the
 * query could not be embedded (the endpoint down, its key missing, a
 * vector of the wrong dimension) and words alone ranked.  The best `limit`
 * that fit MEMORY_REPLY_MAX, the best always.  The agent is the caller's,
 * never anything the query says.  done comes before store_mem_recall
 * returns (the hash embedder, or an endpoint known to be failing) or
 * within RECALL_WAIT_MS; a caller that goes away first cancels.  One
 * recall at a time per struct.  rank: both rankings fused (the recall of
 * the seed), or one alone, for scripts that measure or explain a ranking
 * (vector alone without a query vector falls back to words, degraded).
 */
#define RECALL_WAIT_MS 5000
enum recall_rank { RANK_HYBRID, RANK_VECTOR, RANK_TEXT };
struct embed_query;
struct mem_search;
struct mem_recall {
	void (*done)(struct mem_recall *q, json_t *answer);
	void *ctx;
	enum recall_rank rank;    /* the caller's; RANK_HYBRID when zeroed */
	/* memory's */
	struct memory *m;
	char *agent, *query;
	int limit;
	unsigned types;
	struct embed_query *wait;
	struct mem_search *search;  /* a vector store's, for the query's vector */
	float *vec;               /* kept while it searches: the index's if it fails */
	int dim;
	bool busy;
};
void store_mem_recall(struct store *s, struct mem_recall *q, const char *agent,
    const char *query, int limit, unsigned types);
void store_mem_recall_cancel(struct mem_recall *q);

/* The backend that ships rows (redis, postgresql), once agentd's loop runs
 * (r: the Redis relay, for memory_store redis): 0, or -1 with err.  pump
 * after every commit (it ships, and embeds what is committed); status adds
 * the memory's fields to agentctl status; stop after the relay is freed
 * (what is in flight stops). */
struct relay;
int store_mem_start(struct store *s, const struct global_conf *g, struct relay *r,
    char *err, size_t errlen);
void store_mem_pump(struct store *s);
void store_mem_status(const struct store *s, json_t *manager);
void store_mem_stats(const struct store *s, struct store_stats *out);   /* mem_* */
void store_mem_stop(struct store *s);

/* The memory outbox, for the backends that ship rows (redis, postgresql):
 * rows are written to SQLite (the context is served from there) and the
 * backend ships them in id order, recording how far it got.  Unshipped
 * rows outlive memory_retention. */
int64_t store_mem_shipped(const struct store *s);
int store_set_mem_shipped(struct store *s, int64_t id);
int64_t store_mem_last_id(const struct store *s);   /* the last committed */
/* Rows after id `after`, oldest first: {id, agent_id, session_id,
 * memory_type, role, content, timestamp, metadata}. */
int store_mem_pending(struct store *s, int64_t after, int limit, json_t **out);
/* The same for a vector store: each row also with its "vector" (of its
 * agent's embedder) and "model", and none past the first row that is not
 * embedded yet (memory/memory.h). */
int store_mem_pending_vectors(struct store *s, int64_t after, int limit, json_t **out);

/*
 * For supervisor/memory/ only: tables of its own in the state db, written
 * in the store's transaction.  A write is kept as an op with the store's
 * own (store_ext_write) until a COMMIT has it, so a failed commit replays
 * it with the rest; exec runs it in the open transaction (-1 after
 * store_ext_failed), prepare runs before every COMMIT (pruning, its
 * watermarks), committed and rolled_back after.  One set of hooks.
 */
typedef struct sqlite3 sqlite3;
struct memory;
struct store_ext {
	void *ctx;
	int (*exec)(void *ctx, void *data);
	void (*free_op)(void *data);
	int (*prepare)(void *ctx);
	void (*committed)(void *ctx);
	void (*rolled_back)(void *ctx);
};
void store_set_ext(struct store *s, const struct store_ext *x);
struct memory *store_memory(const struct store *s);
sqlite3 *store_db(const struct store *s);
bool store_degraded(const struct store *s);
/* data is the ext's (freed with free_op, also when it is not kept: 1, as
 * for events past the pending bound); bytes count against that bound, row
 * says whether it is a memory row (pending_memory, dropped_memory). */
int store_ext_write(struct store *s, const char *agent, void *data, size_t bytes, bool row);
/* A statement of the ext's failed: the store rolls back, degrades, retries. */
int store_ext_failed(struct store *s, const char *what);
/* A commit is due (a watermark moved), even with nothing else written. */
int store_touch(struct store *s);
/* The meta table's integers: 0 for none; put is for prepare. */
int64_t store_meta_get(struct store *s, const char *key);
int store_meta_put(struct store *s, const char *key, int64_t value);

#endif
