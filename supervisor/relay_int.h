/*
 * relay_int: how the relay's parts meet.  relay.c owns the Redis
 * connection, the retry timer and the state lane; streams.c is the event
 * lane; supervisor/memory/redislist.c the memory lane (memory_store redis).
 * Only they include this (and test_sup_redis, which runs the event lane's
 * script against a real Redis).
 */
#ifndef AGENTD_RELAY_INT_H
#define AGENTD_RELAY_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <hiredis/hiredis.h>

struct event;
struct global_conf;
struct rconn;
struct relay;
struct store;
struct streams;

struct streams *streams_new(struct relay *r, struct store *s, struct rconn *rc,
    const struct global_conf *g);
void streams_free(struct streams *x);
void streams_offer(struct streams *x, const struct event *ev, const char *payload_json);
void streams_pump(struct streams *x);
/* The connection is (again) up: load the script, then pump. */
void streams_connected(struct streams *x);
/* The Lua script a batch's call for one stream runs (see streams.c). */
extern const char streams_script[];

/* A lane's batch was refused or lost: why goes to the log and status, and
 * every lane waits out a growing backoff before relay_pump runs again. */
void relay_lane_failed(struct relay *r, const char *what, int64_t last, const char *why);
/* Something a lane needs failed outside a batch (loading its script):
 * the relay's error, logged, and relay_pump again after the backoff, where
 * the lane tries again. */
void relay_lane_retry(struct relay *r, const char *why);
/* A lane's batch landed: the backoff starts over. */
void relay_lane_ok(struct relay *r);

/* A lane's batch in flight: the highest row id it carries (0: none), the
 * replies it waits for, whether one failed. */
struct relay_batch {
	const char *what;        /* "memory row", "agent state" (for the log) */
	int64_t last;
	int due;
	bool failed;
};
/* Count one of its replies (an error is the relay's last error); true when
 * it was the last one due. */
bool relay_batch_reply(struct relay *r, struct relay_batch *b, redisReply *reply,
    const char *err);
/* Every reply is in: a failure backs every lane off (relay_lane_failed),
 * a success starts the backoff over. */
void relay_batch_done(struct relay *r, struct relay_batch *b);

/* The lane another module runs on the connection (one): told when the
 * connection is (again) up, asked to ship when no backoff holds the relay
 * back, and to add its fields to relay_status. */
struct relay_lane {
	void *ctx;
	void (*connected)(void *ctx);
	void (*pump)(void *ctx);
	void (*status)(void *ctx, json_t *o);
};
void relay_set_lane(struct relay *r, const struct relay_lane *l);
struct rconn *relay_conn(struct relay *r);

#endif
