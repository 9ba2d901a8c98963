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

struct relay *relay_new(struct store *s, const struct global_conf *g);
void relay_free(struct relay *r);
/* Ship what is committed and not yet shipped (after every store_flush). */
void relay_pump(struct relay *r);
/* {"redis": "up"|"down", "shipped_id", "pending", "dropped", "last_error"} */
json_t *relay_status(const struct relay *r);

#endif
