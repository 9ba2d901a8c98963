/*
 * redact: a set of secret strings, and copies of text and JSON values in
 * which every occurrence of any of them is replaced by "[redacted]".
 *
 * Each program keeps one set and puts it on every way out: agentd holds
 * every secret it knows (all agents' keys, the Redis password, header
 * values, secret env values), since any agent's output could echo any of
 * them; a worker holds the ones agentd gave it.  The log (common/log.c)
 * runs every line through the set it was given.
 *
 * The rules:
 *   - Only the secret's bytes go: "Bearer sk-abc..." becomes
 *     "Bearer [redacted]".  Occurrences that overlap (of one secret or of
 *     several) become one marker, so no byte of any of them is left.
 *   - A value shorter than REDACT_MIN bytes is not a secret here:
 *     redact_add refuses it and the caller says so, naming where the value
 *     came from (never the value).  The bound is the marker's length, so
 *     redacting never makes a text longer: what fit a bound where it
 *     entered (common/limits.h) still fits once redacted.  Under it,
 *     redacting a value would garble ordinary output -- "true", a port, a
 *     date all occur by chance -- while hiding almost nothing, since a
 *     value that short is guessed anyway; refusing to start over it would
 *     stop a supervisor because of, say, a weak Redis password that is its
 *     operator's business.
 *   - Nothing is changed in place.  redact_json() returns the value itself
 *     when it holds no secret, else a copy in which only the containers on
 *     the way to a secret are new (the rest is shared), so what a tool
 *     receives stays exactly what the model sent.
 *   - Cheap when there is nothing to find: redact_hit_json() looks for each
 *     secret, as JSON would spell it, in compact JSON text the caller has
 *     already made -- one pass over it, however many secrets -- so a hot
 *     path (agentd's event_emit) rebuilds a value only when a secret is
 *     really in it.
 *   - A text cut at a bound (a log line, a worker's stderr line) may end
 *     with the first bytes of a secret whose rest was cut off: redact_tail()
 *     says how much to keep so that no such start is left.
 *   - The set's copies are wiped when it is freed.
 */
#ifndef AGENTD_REDACT_H
#define AGENTD_REDACT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define REDACT_MARK "[redacted]"
#define REDACT_MIN 10    /* bytes, the marker's length; shorter values are not redacted */

struct redact;

struct redact *redact_new(void);
void redact_free(struct redact *r);   /* wipes the copies; NULL is fine */

/* Add a secret (copied).  1 added, 0 already known, -1 refused: NULL, or
 * shorter than REDACT_MIN. */
int redact_add(struct redact *r, const char *secret);
size_t redact_count(const struct redact *r);

/* Does s[0..n) hold a secret?  r may be NULL (an empty set). */
bool redact_hit(const struct redact *r, const char *s, size_t n);

/* Does JSON text, as jansson writes it (any flags but JSON_ENSURE_ASCII and
 * JSON_ESCAPE_SLASH), hold a secret in any string or key? */
bool redact_hit_json(const struct redact *r, const char *text, size_t n);

/* A NUL-terminated malloc'd copy of s[0..n) with the secrets replaced,
 * its length in *outlen; NULL when s holds none. */
char *redact_text(const struct redact *r, const char *s, size_t n, size_t *outlen);

/* The same, in place, in a NUL-terminated buffer holding len bytes (the
 * result is never longer); returns the new length.  cut: the text was
 * already cut at its end, so a secret's first bytes there go too
 * (redact_tail). */
size_t redact_buf(const struct redact *r, char *buf, size_t len, bool cut);

/* How many bytes of s[0..n) to keep so that it does not end with the
 * first bytes (at least one, fewer than all) of a secret. */
size_t redact_tail(const struct redact *r, const char *s, size_t n);

/* v with the secrets replaced in every string and key: a new reference,
 * v itself when it holds none.  NULL gives NULL. */
json_t *redact_json(const struct redact *r, json_t *v);

#endif
