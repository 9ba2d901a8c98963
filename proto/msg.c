/*
 * msg: the message catalogue (see msg.h for the table in prose).  One
 * table lists every type's fields; one function checks a decoded body
 * against it, so no handler ever has to re-check a type.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/jsonmp.h"
#include "proto/msg.h"

enum { F_STR = 1, F_INT = 2, F_BOOL = 4, F_OBJ = 8, F_ARR = 16, F_ANY = 31 };

struct field { const char *name; int types; int required; };
struct msgdef { const char *name; struct field fields[10]; };

static const struct msgdef catalogue[MSG__COUNT] = {
	[MSG_CONFIG] = { "config", { { "name", F_STR, 1 }, { "agent", F_OBJ, 1 },
	    { "secrets", F_OBJ, 0 }, { "state_dir", F_STR, 0 } } },
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
	    { "error", F_STR, 0 } } },
	[MSG_RESULT] = { "result", { { "run_id", F_INT, 1 }, { "ok", F_BOOL, 1 },
	    { "result", F_ANY, 0 }, { "error", F_STR, 0 }, { "retryable", F_BOOL, 0 },
	    { "retry_after_ms", F_INT, 0 }, { "cancelled", F_BOOL, 0 }, { "usage", F_OBJ, 0 } } },
	[MSG_LOG] = { "log", { { "level", F_STR, 1 }, { "msg", F_STR, 1 } } },
	[MSG_SHUTDOWN] = { "shutdown", { { NULL, 0, 0 } } },
	[MSG_REQUEST] = { "request", { { "cmd", F_STR, 1 }, { "agent", F_STR, 0 },
	    { "args", F_OBJ, 0 } } },
	[MSG_RESPONSE] = { "response", { { "ok", F_BOOL, 1 }, { "error", F_STR, 0 },
	    { "code", F_INT, 0 }, { "data", F_ANY, 0 } } },
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
	for (int t = 0; t < MSG__COUNT; t++)
		if (strcmp(catalogue[t].name, name) == 0)
			return t;
	return -1;
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
		if (f->types == F_ANY)
			continue;
		if (!(type_bit(v) & f->types)) {
			int bit = 0;
			while (!(f->types & (1 << bit)))
				bit++;
			snprintf(err, errlen, "%s: field %s must be %s", d->name, f->name,
			    type_words[bit]);
			return -1;
		}
	}
	return 0;
}

int
msg_pack_body(enum msg_type t, const json_t *fields, char **data, size_t *len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	const char *k;
	json_t *v;

	if ((unsigned)t >= MSG__COUNT || (fields && !json_is_object(fields)))
		return -1;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	size_t n = 1;
	if (fields)
		json_object_foreach((json_t *)fields, k, v)
			if (strcmp(k, "t") != 0)
				n++;
	msgpack_pack_map(&pk, n);
	msgpack_pack_str(&pk, 1);
	msgpack_pack_str_body(&pk, "t", 1);
	size_t nl = strlen(catalogue[t].name);
	msgpack_pack_str(&pk, nl);
	msgpack_pack_str_body(&pk, catalogue[t].name, nl);
	if (fields)
		json_object_foreach((json_t *)fields, k, v) {
			if (strcmp(k, "t") == 0)
				continue;
			size_t kl = strlen(k);
			msgpack_pack_str(&pk, kl);
			msgpack_pack_str_body(&pk, k, kl);
			if (jsonmp_pack(&pk, v) < 0) {
				msgpack_sbuffer_destroy(&sb);
				return -1;
			}
		}
	*data = sb.data;	/* malloc'd by the sbuffer: the caller frees */
	*len = sb.size;
	return 0;
}

int
msg_pack(enum msg_type t, const json_t *fields, struct buf *out)
{
	char *body;
	size_t len;
	uint8_t hdr[4];

	if (msg_pack_body(t, fields, &body, &len) < 0)
		return -1;
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
	buf_append(out, hdr, 4);
	buf_append(out, body, len);
	free(body);
	return 0;
}

static uint64_t
be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * msgpack-c allocates a container's slots from its declared count before
 * reading them, so a few bytes claiming a map of 2^32 entries would make
 * agentd allocate 128 GiB.  This scan, which allocates nothing, checks that
 * every declared count and length fits in the bytes that are actually
 * there (each item takes at least one byte) before msgpack sees them.
 */
static int
sane_sizes(const uint8_t *p, size_t n, char *err, size_t errlen)
{
	size_t pos = 0;
	uint64_t items = 1;

	while (items > 0) {
		if (pos >= n)
			return 0;	/* truncated: msgpack reports it */
		uint8_t b = p[pos++];
		uint64_t count = 0, skip = 0;
		int w = 0;
		items--;
		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
			continue;
		if (b >= 0x80 && b <= 0x8f)
			count = 2 * (uint64_t)(b & 0x0f);
		else if (b >= 0x90 && b <= 0x9f)
			count = b & 0x0f;
		else if (b >= 0xa0 && b <= 0xbf)
			skip = b & 0x1f;
		else switch (b) {
		case 0xc4: case 0xd9: w = 1; break;		/* bin8, str8 */
		case 0xc5: case 0xda: w = 2; break;
		case 0xc6: case 0xdb: w = 4; break;
		case 0xc7: w = 1; skip = 1; break;		/* ext: + type byte */
		case 0xc8: w = 2; skip = 1; break;
		case 0xc9: w = 4; skip = 1; break;
		case 0xca: case 0xce: case 0xd2: skip = 4; break;
		case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
		case 0xcc: case 0xd0: skip = 1; break;
		case 0xcd: case 0xd1: skip = 2; break;
		case 0xd4: skip = 2; break;
		case 0xd5: skip = 3; break;
		case 0xd6: skip = 5; break;
		case 0xd7: skip = 9; break;
		case 0xd8: skip = 17; break;
		case 0xdc: case 0xde: w = -2; break;		/* array16, map16 */
		case 0xdd: case 0xdf: w = -4; break;
		default: return 0;	/* 0xc1: msgpack reports it */
		}
		if (w != 0) {
			int nb = w < 0 ? -w : w;
			if (n - pos < (size_t)nb)
				return 0;
			uint64_t v = be(p + pos, nb);
			pos += (size_t)nb;
			if (w > 0)
				skip += v;
			else
				count = (b == 0xde || b == 0xdf) ? 2 * v : v;
		}
		if (skip > n - pos) {
			if (w == 0)
				return 0;	/* a short fixed-size value: truncated */
			snprintf(err, errlen, "declared length %llu exceeds the message",
			    (unsigned long long)skip);
			return -1;
		}
		pos += (size_t)skip;
		items += count;
		if (items > n - pos) {
			snprintf(err, errlen, "declared container size exceeds the message");
			return -1;
		}
	}
	return 0;
}

int
msg_unpack(const uint8_t *p, size_t len, enum msg_type *t, json_t **fields,
    char *err, size_t errlen)
{
	msgpack_unpacked u;
	size_t off = 0;
	json_t *body = NULL;
	int rc = -1;

	*fields = NULL;
	if (sane_sizes(p, len, err, errlen) < 0)
		return -1;
	msgpack_unpacked_init(&u);
	msgpack_unpack_return ur = msgpack_unpack_next(&u, (const char *)p, len, &off);
	if (ur != MSGPACK_UNPACK_SUCCESS) {
		snprintf(err, errlen, ur == MSGPACK_UNPACK_CONTINUE ? "truncated msgpack" :
		    "malformed msgpack");
		goto out;
	}
	if (off != len) {
		snprintf(err, errlen, "%zu trailing bytes", len - off);
		goto out;
	}
	if (u.data.type != MSGPACK_OBJECT_MAP) {
		snprintf(err, errlen, "not a msgpack map");
		goto out;
	}
	if ((body = jsonmp_to_json(&u.data, err, errlen)) == NULL)
		goto out;
	json_t *tv = json_object_get(body, "t");
	if (!json_is_string(tv)) {
		snprintf(err, errlen, "message type \"t\" missing or not a string");
		goto out;
	}
	int type = msg_type_lookup(json_string_value(tv));
	if (type < 0) {
		snprintf(err, errlen, "unknown message type \"%.64s\"", json_string_value(tv));
		goto out;
	}
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
