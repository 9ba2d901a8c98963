/*
 * relay_int: how the relay's parts meet.  relay.c owns the Redis
 * connection, the retry timer and the memory and state lanes; streams.c is
 * the event lane.  Only they include this (and test_sup_redis, which runs
 * the event lane's script against a real Redis).
 */
#ifndef AGENTD_RELAY_INT_H
#define AGENTD_RELAY_INT_H

#include <stdbool.h>
#include <stdint.h>

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
/* A lane's batch landed: the backoff starts over. */
void relay_lane_ok(struct relay *r);

#endif
