/*
 * relay: ships events from the SQLite outbox to Redis Streams
 * (event_store: redis_stream).  See relay.c.
 */
#ifndef AGENTD_RELAY_H
#define AGENTD_RELAY_H

#include <jansson.h>
#include <stdbool.h>

struct relay;
struct store;
struct global_conf;
struct event;

struct relay *relay_new(struct store *s, const struct global_conf *g);
void relay_free(struct relay *r);
/* A new event (appended to the store, not yet committed) in its compact
 * JSON: kept encoded for shipping, so the relay need not read it back. */
void relay_offer(struct relay *r, const struct event *ev, const char *payload_json);
/* Ship what is committed and not yet shipped (after every store_flush). */
void relay_pump(struct relay *r);
/* {"redis": "up"|"down", "shipped_id", "pending", "dropped", "last_error"} */
json_t *relay_status(const struct relay *r);

#endif
