/* pgship: memory rows from the SQLite outbox to PostgreSQL (see pgship.c). */
#ifndef AGENTD_PGSHIP_H
#define AGENTD_PGSHIP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct store;
struct pgship;

/* Is this a PostgreSQL URL (postgresql:// or postgres://)? */
bool pgship_url(const char *url);

/* Connects at once (asynchronously, on agentd's loop) and ships whenever
 * pgship_pump is called with rows waiting. keep: memory_retention. */
struct pgship *pgship_new(struct store *s, const char *url, int64_t keep);
void pgship_pump(struct pgship *p);
void pgship_free(struct pgship *p);
json_t *pgship_status(const struct pgship *p);

#endif
