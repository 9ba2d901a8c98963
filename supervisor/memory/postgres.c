/*
 * postgres: the memory backend of memory_store database with a
 * postgresql:// database_url, shipped from the SQLite memory table the way
 * the Redis backend ships: the local table is the outbox, runs read their
 * context from it, and rows go out in id order, recorded as shipped only
 * once PostgreSQL has committed them.
 *
 * Table agentd_memory (created if missing): id bigserial, row_key unique
 * (the local row id and its time, so a resent batch inserts nothing twice),
 * agent, session_id, memory_type, role, content, metadata jsonb, ts.  After
 * each batch the agents' oldest rows beyond memory_retention are deleted.
 *
 * libpq's asynchronous API on agentd's loop: PQconnectStart/PQconnectPoll,
 * PQsendQueryParams, PQconsumeInput/PQgetResult when the socket is ready,
 * a deadline on the timer heap for every step.  Never a blocking call.  A
 * failure drops the connection and reconnects after a backoff (100 ms
 * doubling to 5 s); the batch is sent again.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include "common/buf.h"
#include "common/jsonmp.h"
#include "common/log.h"
#include "common/util.h"
#include "supervisor/loop.h"
#include "conf/config.h"
#include "supervisor/memory/memory.h"
#include "supervisor/store.h"

#define PG_BATCH 256
#define PG_STEP_TIMEOUT_MS 30000

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS agentd_memory (id bigserial PRIMARY KEY, "
    "row_key text UNIQUE NOT NULL, agent text NOT NULL, session_id text, "
    "memory_type text NOT NULL, role text, content text, metadata jsonb, "
    "ts timestamptz NOT NULL);"
    "CREATE INDEX IF NOT EXISTS agentd_memory_agent ON agentd_memory "
    "(agent, memory_type, id)";

enum pg_state { PG_DOWN, PG_CONNECTING, PG_SCHEMA, PG_IDLE, PG_INSERT, PG_PRUNE };

struct pgship {
	struct store *store;
	char *url;
	char keep[24];
	PGconn *conn;
	struct watch w;
	struct timer timer;     /* reconnect, or the current step's deadline */
	enum pg_state st;
	bool failed;            /* the current query had an error */
	int64_t backoff;
	int64_t batch_last;
	json_t *prune;          /* [agent, type, agent, type, ...] of the batch */
	char last_error[256];
	int64_t error_at;       /* wall ms the failing began (0: never) */
	int64_t recovered_at;   /* wall ms it was last connected again */
};

/* Failing: dropped since it last got through (status says why until then). */
static bool
failing(const struct pgship *p)
{
	return p->error_at > p->recovered_at;
}

static void start(struct pgship *p);
static void pg_pump(void *b);

static void
set_error(struct pgship *p, const char *what)
{
	char msg[200];
	const char *e = p->conn ? PQerrorMessage(p->conn) : "";
	str_printable(msg, sizeof(msg), e, strlen(e));
	snprintf(p->last_error, sizeof(p->last_error), "%s%s%s", what, msg[0] ? ": " : "", msg);
}

static void
drop(struct pgship *p, const char *what)
{
	set_error(p, what);
	if (!failing(p))
		p->error_at = wall_ms();
	if (p->w.added)
		loop_del(&p->w);
	if (p->conn)
		PQfinish(p->conn);
	p->conn = NULL;
	p->st = PG_DOWN;
	json_decref(p->prune);
	p->prune = NULL;
	p->backoff = p->backoff ? p->backoff * 2 : 100;
	if (p->backoff > 5000)
		p->backoff = 5000;
	log_warn("postgresql: %s; reconnecting in %lld ms", p->last_error, (long long)p->backoff);
	timer_in(&p->timer, p->backoff);
}

/* Wait for the socket: writable while libpq has output queued. */
static void
want_io(struct pgship *p, bool write)
{
	uint32_t ev = EPOLLIN | (write ? EPOLLOUT : 0);
	if (!p->w.added)
		loop_add(&p->w, PQsocket(p->conn), ev, p->w.fn, p);
	else
		loop_mod(&p->w, ev);
}

static void
sent(struct pgship *p, enum pg_state next, int ok)
{
	if (!ok) {
		drop(p, "sending a query");
		return;
	}
	p->st = next;
	p->failed = false;
	want_io(p, PQflush(p->conn) == 1);
	timer_in(&p->timer, PG_STEP_TIMEOUT_MS);
}

static void
send_prune(struct pgship *p)
{
	size_t n = json_array_size(p->prune);
	const char **v = xcalloc(n + 1, sizeof(*v));
	struct buf q;
	char num[64];

	buf_init(&q);
	const char *head = "DELETE FROM agentd_memory m USING (SELECT id, row_number() OVER "
	    "(PARTITION BY agent, memory_type ORDER BY id DESC) AS n FROM agentd_memory "
	    "WHERE (agent, memory_type) IN (";
	buf_append(&q, head, strlen(head));
	for (size_t i = 0; i < n; i += 2) {
		snprintf(num, sizeof(num), "%s($%zu, $%zu)", i ? ", " : "", i + 2, i + 3);
		buf_append(&q, num, strlen(num));
		v[i + 1] = json_string_value(json_array_get(p->prune, i));
		v[i + 2] = json_string_value(json_array_get(p->prune, i + 1));
	}
	const char *tail = ")) x WHERE m.id = x.id AND x.n > $1::bigint";
	buf_append(&q, tail, strlen(tail) + 1);
	v[0] = p->keep;
	sent(p, PG_PRUNE, PQsendQueryParams(p->conn, (char *)q.data, (int)n + 1, NULL, v,
	    NULL, NULL, 0));
	buf_free(&q);
	free(v);
}

/* One multi-row INSERT for the next batch of unshipped rows. */
static void
send_batch(struct pgship *p)
{
	json_t *rows, *row;
	size_t i;
	int64_t from = store_mem_shipped(p->store);

	if (from >= store_mem_last_id(p->store) ||
	    store_mem_pending(p->store, from, PG_BATCH, &rows) < 0)
		return;
	size_t n = json_array_size(rows);
	if (n == 0) {
		json_decref(rows);
		return;
	}
	const char **v = xcalloc(8 * n, sizeof(*v));
	char **owned = xcalloc(2 * n, sizeof(*owned)), ph[256];
	struct buf q;
	json_t *seen = json_object();

	buf_init(&q);
	const char *head = "INSERT INTO agentd_memory (row_key, agent, session_id, memory_type, "
	    "role, content, metadata, ts) VALUES ";
	buf_append(&q, head, strlen(head));
	p->prune = json_array();
	json_array_foreach(rows, i, row) {
		size_t b = 8 * i;
		const char *agent = json_string_value(json_object_get(row, "agent_id"));
		const char *type = json_string_value(json_object_get(row, "memory_type"));
		snprintf(ph, sizeof(ph), "%s($%zu,$%zu,$%zu,$%zu,$%zu,$%zu,$%zu::jsonb,$%zu::timestamptz)",
		    i ? "," : "", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8);
		buf_append(&q, ph, strlen(ph));
		if (asprintf(&owned[2 * i], "%lld-%s", (long long)json_integer_value(
		    json_object_get(row, "id")), json_string_value(json_object_get(row, "timestamp"))) < 0)
			owned[2 * i] = NULL;
		owned[2 * i + 1] = json_dumps_short(json_object_get(row, "metadata"), 0);
		v[b] = owned[2 * i];
		v[b + 1] = agent;
		v[b + 2] = json_string_value(json_object_get(row, "session_id"));
		v[b + 3] = type;
		v[b + 4] = json_string_value(json_object_get(row, "role"));
		v[b + 5] = json_string_value(json_object_get(row, "content"));
		v[b + 6] = owned[2 * i + 1];
		v[b + 7] = json_string_value(json_object_get(row, "timestamp"));
		char key[512];
		snprintf(key, sizeof(key), "%s\n%s", agent, type);
		if (json_object_get(seen, key) == NULL) {
			json_object_set_new(seen, key, json_true());
			json_array_append_new(p->prune, json_string(agent));
			json_array_append_new(p->prune, json_string(type));
		}
	}
	const char *tail = " ON CONFLICT (row_key) DO NOTHING";
	buf_append(&q, tail, strlen(tail) + 1);
	p->batch_last = json_integer_value(json_object_get(json_array_get(rows, n - 1), "id"));
	sent(p, PG_INSERT, PQsendQueryParams(p->conn, (char *)q.data, (int)(8 * n), NULL, v,
	    NULL, NULL, 0));
	for (i = 0; i < 2 * n; i++)
		free(owned[i]);
	free(owned);
	free(v);
	buf_free(&q);
	json_decref(seen);
	json_decref(rows);
}

/* The query in flight is over: what next. */
static void
step_done(struct pgship *p)
{
	timer_stop(&p->timer);
	if (p->failed) {
		drop(p, p->st == PG_SCHEMA ? "creating the table" : p->st == PG_INSERT ?
		    "inserting memory" : "pruning memory");
		return;
	}
	switch (p->st) {
	case PG_SCHEMA:
		log_info("postgresql: connected; shipping memory");
		p->backoff = 0;
		if (failing(p))
			p->recovered_at = wall_ms();
		p->st = PG_IDLE;
		break;
	case PG_INSERT:
		send_prune(p);
		return;
	case PG_PRUNE:
		store_set_mem_shipped(p->store, p->batch_last);
		store_flush(p->store);
		json_decref(p->prune);
		p->prune = NULL;
		p->st = PG_IDLE;
		break;
	default:
		break;
	}
	pg_pump(p);
}

static void
on_connecting(struct pgship *p)
{
	switch (PQconnectPoll(p->conn)) {
	case PGRES_POLLING_READING:
		want_io(p, false);
		break;
	case PGRES_POLLING_WRITING:
		want_io(p, true);
		break;
	case PGRES_POLLING_OK:
		PQsetnonblocking(p->conn, 1);
		sent(p, PG_SCHEMA, PQsendQuery(p->conn, schema));
		break;
	default:
		drop(p, "connecting");
		break;
	}
}

static void
on_io(struct watch *w, uint32_t events)
{
	struct pgship *p = w->ctx;
	PGresult *res;

	if (p->st == PG_CONNECTING) {
		on_connecting(p);
		return;
	}
	if ((events & EPOLLOUT) && PQflush(p->conn) == 0)
		want_io(p, false);
	if (!PQconsumeInput(p->conn)) {
		drop(p, "reading");
		return;
	}
	while (p->conn && !PQisBusy(p->conn)) {
		if ((res = PQgetResult(p->conn)) == NULL) {
			step_done(p);
			return;
		}
		ExecStatusType s = PQresultStatus(res);
		if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
			p->failed = true;
			char msg[200];
			const char *e = PQresultErrorMessage(res);
			str_printable(msg, sizeof(msg), e, strlen(e));
			log_error("postgresql: %s", msg);
		}
		PQclear(res);
	}
}

static void
on_timer(struct timer *t)
{
	struct pgship *p = t->ctx;
	if (p->st == PG_DOWN)
		start(p);
	else
		drop(p, "no answer in time");
}

static void
start(struct pgship *p)
{
	p->conn = PQconnectStart(p->url);
	if (p->conn == NULL || PQstatus(p->conn) == CONNECTION_BAD) {
		drop(p, "connecting");
		return;
	}
	p->st = PG_CONNECTING;
	p->w.fn = on_io;
	want_io(p, true);
	timer_in(&p->timer, PG_STEP_TIMEOUT_MS);
}

bool
mem_pg_url(const char *url)
{
	return url && (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0);
}

static void *
pg_start(struct store *s, const struct global_conf *g, struct relay *r, char *err,
    size_t errlen)
{
	struct pgship *p = xcalloc(1, sizeof(*p));
	p->store = s;
	p->url = xstrdup(g->database_url);
	snprintf(p->keep, sizeof(p->keep), "%lld", (long long)(g->memory_retention > 0 ?
	    g->memory_retention : 10000));
	p->w.fn = on_io;
	timer_init(&p->timer, on_timer, p);
	start(p);
	return p;
}

static void
pg_stop(void *b)
{
	struct pgship *p = b;
	timer_stop(&p->timer);
	if (p->w.added)
		loop_del(&p->w);
	if (p->conn)
		PQfinish(p->conn);
	json_decref(p->prune);
	explicit_bzero(p->url, strlen(p->url));
	free(p->url);
	free(p);
}

static void
pg_status(const void *b, json_t *manager)
{
	const struct pgship *p = b;
	char at[32], until[32];
	/* as Redis's: last_error is what is wrong now, last_failure the last episode */
	json_t *o = json_pack("{s:s, s:I, s:s?}", "postgresql", p->st >= PG_IDLE ? "up" : "down",
	    "memory_pending", (json_int_t)(store_mem_last_id(p->store) - store_mem_shipped(p->store)),
	    "last_error", failing(p) ? p->last_error : NULL);
	iso8601(p->error_at, at, sizeof(at));
	iso8601(failing(p) ? 0 : p->recovered_at, until, sizeof(until));
	json_object_set_new(o, "last_failure", p->error_at == 0 ? json_null() :
	    json_pack("{s:s, s:s, s:s?}", "error", p->last_error, "at", at, "until",
	    until[0] ? until : NULL));
	json_object_set_new(manager, "postgresql", o);
}

static void
pg_pump(void *b)
{
	struct pgship *p = b;
	if (p->st == PG_IDLE)
		send_batch(p);
}

const struct mem_backend mem_postgres = {
	.store = "database", .needs_url = true, .name = "postgresql", .ships = true,
	.start = pg_start, .stop = pg_stop, .pump = pg_pump, .status = pg_status,
};
