/*
 * jsonmp: the bridge between msgpack (the wire) and jansson (the in-memory
 * form every message body takes once decoded).
 *
 * Decoding is strict because the bytes come from untrusted peers: map keys
 * must be strings, integers must fit int64, nesting is bounded, and bin/ext
 * objects are refused.  Everything else maps one to one: nil<->null,
 * bool, int<->integer, float<->real, str<->string, array, map<->object.
 */
#ifndef AGENTD_JSONMP_H
#define AGENTD_JSONMP_H

#include <jansson.h>
#include <msgpack.h>
#include <stddef.h>
#include "common/limits.h"

#define JSONMP_MAX_DEPTH MSG_DEPTH_MAX

/* Returns a new reference, or NULL with a reason in err. */
json_t *jsonmp_to_json(const msgpack_object *o, char *err, size_t errlen);

/* Packs j; returns 0, or -1 if j holds something unpackable (never for
 * values built by jansson). */
int jsonmp_pack(msgpack_packer *pk, const json_t *j);

/*
 * The bounds of common/limits.h, measured.  json_depth: containers on the
 * deepest path (a scalar is 0, {} is 1); counting stops once it passes
 * limit, so any result > limit means "too deep".  json_compact_size: the
 * bytes of its compact JSON text (SIZE_MAX if it cannot be encoded).
 */
int json_depth(const json_t *j, int limit);
size_t json_compact_size(const json_t *j);

/*
 * json_dumps for text people or stores read: the same output, but each
 * real in the shortest form that reads back as the same double (1.56, not
 * jansson's %.17g 1.5600000000000001), still with a '.' or an exponent so
 * it stays a real.  flags as for json_dumps (JSON_ENCODE_ANY is implied);
 * free() the result; NULL when j cannot be encoded.
 */
char *json_dumps_short(const json_t *j, size_t flags);

/* patch applied to target as a JSON merge patch (RFC 7396: an object
 * merges key by key, a null removes its key, anything else replaces):
 * a new value; target is not changed. */
json_t *json_merge_patch(const json_t *target, const json_t *patch);

#endif
