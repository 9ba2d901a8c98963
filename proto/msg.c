/*
 * msg: the message catalogue (see msg.h for the table in prose).  One
 * table lists every type's fields; one function checks a decoded body
 * against it, so no handler ever has to re-check a type.
 *
 * Decoding is three passes over untrusted bytes, cheapest first:
 *
 *  1. wire_check walks the raw msgpack once.  msgpack-c allocates an
 *     array's or map's element slots as soon as it reads the header, so
 *     five bytes announcing 2^32 entries would ask for ~100 GB.  The walk
 *     keeps the count of items announced but not yet seen and refuses the
 *     input when it exceeds the bytes left (every item takes at least one),
 *     which bounds msgpack-c's allocation by the frame size.  It also
 *     refuses what the rest would refuse anyway (bin/ext, deep nesting,
 *     trailing bytes) with the offset where it found it.
 *  2. msgpack_unpack_next into a zone, and jsonmp_to_json (strict).
 *  3. The type key "t" is looked up and the fields are checked.
 *
 * Encoding packs {"t": name, ...fields} through jsonmp_pack, writing
 * straight into the caller's struct buf for msg_pack (no bounce buffer).
 *
 * msg_check_bounds holds the values a worker sends to the bounds of
 * common/limits.h, from a second table: agentd where the message enters,
 * the worker before it sends, so both sides agree on what passes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/jsonmp.h"
#include "common/util.h"
#include "proto/msg.h"

enum { F_STR = 1, F_INT = 2, F_BOOL = 4, F_OBJ = 8, F_ARR = 16, F_ANY = 31 };

struct field { const char *name; int types; int required; };
struct msgdef { const char *name; struct field fields[10]; };

static const struct msgdef catalogue[MSG__COUNT] = {
	[MSG_CONFIG] = { "config", { { "name", F_STR, 1 }, { "agent", F_OBJ, 1 },
	    { "secrets", F_OBJ, 0 }, { "state_dir", F_STR, 0 }, { "api_key_error", F_STR, 0 } } },
	[MSG_READY] = { "ready", { { "tools", F_ARR, 1 }, { "pid", F_INT, 0 } } },
	[MSG_RUN] = { "run", { { "run_id", F_INT, 1 }, { "attempt", F_INT, 1 },
	    { "session_id", F_STR, 1 }, { "run_count", F_INT, 1 }, { "kwargs", F_OBJ, 1 } } },
	[MSG_RUN_ACK] = { "run_ack", { { "run_id", F_INT, 1 } } },
	[MSG_CANCEL] = { "cancel", { { "run_id", F_INT, 1 }, { "reason", F_STR, 0 } } },
	[MSG_EVENT] = { "event", { { "type", F_STR, 1 }, { "payload", F_OBJ, 1 },
	    { "run_id", F_INT, 0 } } },
	[MSG_MEM_STORE] = { "mem_store", { { "memory_type", F_STR, 1 }, { "role", F_STR, 1 },
	    { "content", F_STR, 1 }, { "metadata", F_OBJ, 0 } } },
	[MSG_MEM_QUERY] = { "mem_query", { { "req_id", F_INT, 1 }, { "memory_type", F_STR, 1 },
	    { "limit", F_INT, 1 }, { "query", F_STR, 0 } } },
	[MSG_MEM_REPLY] = { "mem_reply", { { "req_id", F_INT, 1 }, { "items", F_ARR, 1 },
	    { "error", F_STR, 0 }, { "degraded", F_BOOL, 0 }, { "reason", F_STR, 0 } } },
	[MSG_MEM_RECALL] = { "mem_recall", { { "req_id", F_INT, 1 }, { "query", F_STR, 1 },
	    { "limit", F_INT, 1 }, { "memory_types", F_ARR, 0 } } },
	[MSG_RESULT] = { "result", { { "run_id", F_INT, 1 }, { "ok", F_BOOL, 1 },
	    { "result", F_ANY, 0 }, { "error", F_STR, 0 }, { "retryable", F_BOOL, 0 },
	    { "retry_after_ms", F_INT, 0 }, { "cancelled", F_BOOL, 0 }, { "usage", F_OBJ, 0 } } },
	[MSG_LOG] = { "log", { { "level", F_STR, 1 }, { "msg", F_STR, 1 } } },
	[MSG_SHUTDOWN] = { "shutdown", { { NULL, 0, 0 } } },
	[MSG_REQUEST] = { "request", { { "cmd", F_STR, 1 }, { "agent", F_STR, 0 },
	    { "args", F_OBJ, 0 } } },
	[MSG_RESPONSE] = { "response", { { "ok", F_BOOL, 1 }, { "error", F_STR, 0 },
	    { "code", F_INT, 0 }, { "data", F_ANY, 0 }, { "cursor", F_INT, 0 } } },
	[MSG_RECORD] = { "record", { { "event", F_OBJ, 1 } } },
};

static const char *type_words[] = { "str", "int", "bool", "obj", "arr" };

const char *
msg_type_name(enum msg_type t)
{
	return (unsigned)t < MSG__COUNT ? catalogue[t].name : "?";
}

int
msg_type_lookup(const char *name)
{
	for (int t = 0; name && t < MSG__COUNT; t++)
		if (strcmp(catalogue[t].name, name) == 0)
			return t;
	return -1;
}

/* ---- pass 1: the shape of the raw bytes ---- */

/* Big-endian unsigned of n (1, 2, 4) bytes. */
static uint32_t
be(const uint8_t *p, size_t n)
{
	uint32_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * One msgpack header at p[0] (always present): how many length bytes follow
 * it (*lenbytes, whose value is the payload size or the item count), or a
 * fixed payload size, and how many items it opens (*items, maps count keys
 * and values).  -1 for 0xc1, bin and ext.
 */
static int
header(uint8_t b, size_t *lenbytes, size_t *payload, uint64_t *items, int *kind)
{
	*lenbytes = *payload = 0;
	*items = 0;
	*kind = 0;	/* 0 scalar, 1 str (payload = length), 2 array, 3 map */
	if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
		return 0;
	if (b >= 0x80 && b <= 0x8f) {
		*items = 2u * (b & 0x0f);
		*kind = 3;
		return 0;
	}
	if (b >= 0x90 && b <= 0x9f) {
		*items = b & 0x0f;
		*kind = 2;
		return 0;
	}
	if (b >= 0xa0 && b <= 0xbf) {
		*payload = b & 0x1f;
		*kind = 1;
		return 0;
	}
	switch (b) {
	case 0xca: *payload = 4; return 0;
	case 0xcb: *payload = 8; return 0;
	case 0xcc: case 0xd0: *payload = 1; return 0;
	case 0xcd: case 0xd1: *payload = 2; return 0;
	case 0xce: case 0xd2: *payload = 4; return 0;
	case 0xcf: case 0xd3: *payload = 8; return 0;
	case 0xd9: *lenbytes = 1; *kind = 1; return 0;
	case 0xda: *lenbytes = 2; *kind = 1; return 0;
	case 0xdb: *lenbytes = 4; *kind = 1; return 0;
	case 0xdc: *lenbytes = 2; *kind = 2; return 0;
	case 0xdd: *lenbytes = 4; *kind = 2; return 0;
	case 0xde: *lenbytes = 2; *kind = 3; return 0;
	case 0xdf: *lenbytes = 4; *kind = 3; return 0;
	default: return -1;	/* 0xc1, bin 0xc4-c6, ext 0xc7-c9 and 0xd4-d8 */
	}
}

static int
wire_check(const uint8_t *p, size_t len, size_t *used, char *err, size_t errlen)
{
	uint64_t left[JSONMP_MAX_DEPTH + 1];	/* items left per open container */
	uint64_t owed = 1;	/* items announced, not yet started */
	size_t off = 0, lenbytes, payload, at;
	uint64_t items;
	int sp = 0, kind;

	if (len == 0) {
		snprintf(err, errlen, "malformed msgpack: no bytes");
		return -1;
	}
	left[0] = 1;	/* the root slot: one top-level object */
	while (sp >= 0) {
		if (left[sp] == 0) {
			sp--;
			continue;
		}
		left[sp]--;
		owed--;
		at = off;
		uint8_t b = p[off++];	/* owed <= len - off held before: a byte is here */
		if (header(b, &lenbytes, &payload, &items, &kind) < 0) {
			if (b == 0xc1)
				snprintf(err, errlen, "malformed msgpack: byte 0xc1 at offset %zu", at);
			else
				snprintf(err, errlen, "bin and ext objects are not accepted "
				    "(offset %zu)", at);
			return -1;
		}
		if (lenbytes > len - off) {
			snprintf(err, errlen, "malformed msgpack: truncated at offset %zu", at);
			return -1;
		}
		if (lenbytes) {
			uint32_t v = be(p + off, lenbytes);
			off += lenbytes;
			if (kind == 1)
				payload = v;
			else
				items = kind == 3 ? 2 * (uint64_t)v : v;
		}
		if (payload > len - off) {
			if (kind == 1)
				snprintf(err, errlen, "malformed msgpack: string of %zu bytes at "
				    "offset %zu exceeds the %zu bytes left", payload, at, len - off);
			else
				snprintf(err, errlen, "malformed msgpack: truncated at offset %zu", at);
			return -1;
		}
		off += payload;
		if (kind >= 2) {
			if (sp >= JSONMP_MAX_DEPTH) {
				snprintf(err, errlen, "nesting deeper than %d (offset %zu)",
				    JSONMP_MAX_DEPTH, at);
				return -1;
			}
			left[++sp] = items;
			owed += items;
		}
		if (owed > len - off) {
			snprintf(err, errlen, "malformed msgpack: container size exceeds the "
			    "input (%llu items announced, %zu bytes left at offset %zu)",
			    (unsigned long long)owed, len - off, off);
			return -1;
		}
	}
	*used = off;
	return 0;
}

/* ---- pass 3: the type and the fields ---- */

/* The "t" key of a decoded body (its strings are NUL-free UTF-8). */
static int
body_type(const json_t *body, char *err, size_t errlen)
{
	const json_t *tv = json_object_get(body, "t");
	char shown[65];
	int t;

	if (!json_is_string(tv)) {
		snprintf(err, errlen, "message type \"t\" missing or not a string");
		return -1;
	}
	if ((t = msg_type_lookup(json_string_value(tv))) < 0) {
		str_printable(shown, sizeof(shown), json_string_value(tv), json_string_length(tv));
		snprintf(err, errlen, "unknown message type \"%s\"", shown);
	}
	return t;
}

static int
type_bit(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING: return F_STR;
	case JSON_INTEGER: return F_INT;
	case JSON_TRUE: case JSON_FALSE: return F_BOOL;
	case JSON_OBJECT: return F_OBJ;
	case JSON_ARRAY: return F_ARR;
	default: return 32;	/* null, real: only `any` takes them */
	}
}

static int
check_fields(enum msg_type t, const json_t *body, char *err, size_t errlen)
{
	const struct msgdef *d = &catalogue[t];

	for (const struct field *f = d->fields; f->name; f++) {
		json_t *v = json_object_get(body, f->name);
		if (v == NULL) {
			if (f->required) {
				snprintf(err, errlen, "%s: missing field %s", d->name, f->name);
				return -1;
			}
			continue;
		}
		if (f->types == F_ANY || (type_bit(v) & f->types))
			continue;
		int bit = 0;
		while (!(f->types & (1 << bit)))
			bit++;
		snprintf(err, errlen, "%s: field %s must be %s", d->name, f->name,
		    type_words[bit]);
		return -1;
	}
	return 0;
}

int
msg_unpack(const uint8_t *p, size_t len, enum msg_type *t, json_t **fields,
    char *err, size_t errlen)
{
	msgpack_unpacked u;
	msgpack_unpack_return ur;
	size_t used = 0, off = 0;
	json_t *body = NULL;
	int type, rc = -1;

	*fields = NULL;
	if (wire_check(p, len, &used, err, errlen) < 0)
		return -1;
	if (used != len) {
		snprintf(err, errlen, "%zu trailing bytes", len - used);
		return -1;
	}
	msgpack_unpacked_init(&u);
	ur = msgpack_unpack_next(&u, (const char *)p, len, &off);
	if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
		/* wire_check passed, so only an allocation can fail here. */
		snprintf(err, errlen, ur == MSGPACK_UNPACK_NOMEM_ERROR ?
		    "out of memory decoding msgpack" : "malformed msgpack");
		goto out;
	}
	if (u.data.type != MSGPACK_OBJECT_MAP) {
		snprintf(err, errlen, "not a msgpack map");
		goto out;
	}
	if ((body = jsonmp_to_json(&u.data, err, errlen)) == NULL)
		goto out;
	if ((type = body_type(body, err, errlen)) < 0)
		goto out;
	json_object_del(body, "t");
	if (check_fields(type, body, err, errlen) < 0)
		goto out;
	*t = type;
	*fields = body;
	body = NULL;
	rc = 0;
out:
	json_decref(body);
	msgpack_unpacked_destroy(&u);
	return rc;
}

/* ---- encoding ---- */

/*
 * {"t": name} plus the fields (a "t" among them is ignored), as one object
 * sharing the field values, so jsonmp_pack applies its depth bound with
 * the same depths the peer's decoder will count.
 */
static int
pack_msg(msgpack_packer *pk, enum msg_type t, const json_t *fields)
{
	const char *k;
	size_t klen;
	json_t *v, *m;
	int rc;

	if ((unsigned)t >= MSG__COUNT || (fields && !json_is_object(fields)))
		return -1;
	if ((m = json_object()) == NULL)
		return -1;
	json_object_set_new_nocheck(m, "t", json_string_nocheck(catalogue[t].name));
	if (fields)
		json_object_keylen_foreach((json_t *)fields, k, klen, v)
			if (klen != 1 || k[0] != 't')
				json_object_setn_new_nocheck(m, k, klen, json_incref(v));
	rc = jsonmp_pack(pk, m);
	json_decref(m);
	return rc;
}

int
msg_pack_body(enum msg_type t, const json_t *fields, char **data, size_t *len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (pack_msg(&pk, t, fields) < 0 || sb.size > UINT32_MAX) {
		msgpack_sbuffer_destroy(&sb);
		return -1;
	}
	*data = sb.data;	/* malloc'd by the sbuffer: the caller frees */
	*len = sb.size;
	return 0;
}

static int
buf_write(void *data, const char *p, size_t n)
{
	buf_append(data, p, n);
	return 0;
}

int
msg_pack(enum msg_type t, const json_t *fields, struct buf *out)
{
	static const uint8_t zero[4];
	msgpack_packer pk;
	size_t at = buf_pending(out), n;	/* relative to off: survives a move */
	uint8_t *h;

	buf_append(out, zero, sizeof(zero));
	msgpack_packer_init(&pk, out, buf_write);
	if (pack_msg(&pk, t, fields) < 0 ||
	    (n = buf_pending(out) - at - sizeof(zero)) > UINT32_MAX) {
		out->len = out->off + at;	/* undo the partial frame */
		return -1;
	}
	h = buf_head(out) + at;
	h[0] = (uint8_t)(n >> 24);
	h[1] = (uint8_t)(n >> 16);
	h[2] = (uint8_t)(n >> 8);
	h[3] = (uint8_t)n;
	return 0;
}

/*
 * The values a worker sends on that agentd keeps or passes on: the fields
 * of one row are measured together (a run's result and its usage make one
 * event), a string by its bytes, a container by its compact JSON and its
 * depth (VALUE_DEPTH_MAX).
 */
static const struct bound {
	enum msg_type t;
	const char *fields[2];
	size_t max;
} bounds[] = {
	{ MSG_EVENT, { "payload" }, EVENT_PAYLOAD_MAX },
	{ MSG_RESULT, { "result", "usage" }, EVENT_PAYLOAD_MAX },
	{ MSG_MEM_STORE, { "content" }, MEMORY_CONTENT_MAX },
	{ MSG_MEM_STORE, { "metadata" }, MEMORY_CONTENT_MAX },
	{ MSG_MEM_RECALL, { "query" }, RECALL_QUERY_MAX },
	{ MSG_MEM_RECALL, { "memory_types" }, RECALL_QUERY_MAX },
};

static int
check_bound(const struct bound *b, const json_t *fields, char *err, size_t errlen)
{
	size_t total = 0;

	for (size_t i = 0; i < ARRAY_LEN(b->fields) && b->fields[i]; i++) {
		const json_t *v = json_object_get(fields, b->fields[i]);
		if (v == NULL)
			continue;
		if (json_depth(v, VALUE_DEPTH_MAX) > VALUE_DEPTH_MAX) {
			snprintf(err, errlen, "the %s message's %s nests more than %d levels",
			    catalogue[b->t].name, b->fields[i], VALUE_DEPTH_MAX);
			return -1;
		}
		total += json_is_string(v) ? json_string_length(v) : json_compact_size(v);
	}
	if (total <= b->max)
		return 0;
	snprintf(err, errlen, "the %s message's %s%s%s: %zu bytes, over the limit of %zu",
	    catalogue[b->t].name, b->fields[0], b->fields[1] ? " and " : "",
	    b->fields[1] ? b->fields[1] : "", total, b->max);
	return -1;
}

int
msg_check_bounds(enum msg_type t, const json_t *fields, char *err, size_t errlen)
{
	for (size_t i = 0; i < ARRAY_LEN(bounds); i++)
		if (bounds[i].t == t && check_bound(&bounds[i], fields, err, errlen) < 0)
			return -1;
	return 0;
}
