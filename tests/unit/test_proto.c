/*
 * Unit tests for the wire protocol: frame reader and write queue
 * (proto/frame.c), the message catalogue (proto/msg.c) and the strict
 * msgpack<->JSON bridge (common/jsonmp.c).
 *
 * The catalogue is restated here from proto/msg.h's comment (SPEC below)
 * rather than read back from msg.c, so a drift between the two fails: every
 * type round-trips with all its fields, every required field is missed
 * once, every field gets every wrong JSON type once.  Malformed input is
 * given as raw msgpack bytes, written out by hand, because our own packer
 * cannot produce most of it.
 */
#include <check.h>
#include "tests/unit/check_main.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common/buf.h"
#include "common/jsonmp.h"
#include "common/util.h"
#include "proto/frame.h"
#include "proto/msg.h"

/* ---- the catalogue as msg.h states it ---- */

struct fspec { const char *name, *type; int required; };
static const struct { const char *name; struct fspec f[9]; } SPEC[MSG__COUNT] = {
	[MSG_CONFIG] = { "config", { { "name", "str", 1 }, { "agent", "obj", 1 },
	    { "secrets", "obj", 0 }, { "state_dir", "str", 0 } } },
	[MSG_READY] = { "ready", { { "tools", "arr", 1 }, { "pid", "int", 0 } } },
	[MSG_RUN] = { "run", { { "run_id", "int", 1 }, { "attempt", "int", 1 },
	    { "session_id", "str", 1 }, { "run_count", "int", 1 }, { "kwargs", "obj", 1 } } },
	[MSG_RUN_ACK] = { "run_ack", { { "run_id", "int", 1 } } },
	[MSG_CANCEL] = { "cancel", { { "run_id", "int", 1 }, { "reason", "str", 0 } } },
	[MSG_EVENT] = { "event", { { "type", "str", 1 }, { "payload", "obj", 1 },
	    { "run_id", "int", 0 } } },
	[MSG_MEM_STORE] = { "mem_store", { { "memory_type", "str", 1 }, { "role", "str", 1 },
	    { "content", "str", 1 }, { "metadata", "obj", 0 } } },
	[MSG_MEM_QUERY] = { "mem_query", { { "req_id", "int", 1 },
	    { "memory_type", "str", 1 }, { "limit", "int", 1 }, { "query", "str", 0 } } },
	[MSG_MEM_REPLY] = { "mem_reply", { { "req_id", "int", 1 }, { "items", "arr", 1 },
	    { "error", "str", 0 }, { "degraded", "bool", 0 }, { "reason", "str", 0 } } },
	[MSG_MEM_RECALL] = { "mem_recall", { { "req_id", "int", 1 }, { "query", "str", 1 },
	    { "limit", "int", 1 }, { "memory_types", "arr", 0 } } },
	[MSG_RESULT] = { "result", { { "run_id", "int", 1 }, { "ok", "bool", 1 },
	    { "result", "any", 0 }, { "error", "str", 0 }, { "retryable", "bool", 0 },
	    { "retry_after_ms", "int", 0 }, { "cancelled", "bool", 0 }, { "usage", "obj", 0 } } },
	[MSG_LOG] = { "log", { { "level", "str", 1 }, { "msg", "str", 1 } } },
	[MSG_SHUTDOWN] = { "shutdown", { { NULL, NULL, 0 } } },
	[MSG_REQUEST] = { "request", { { "cmd", "str", 1 }, { "agent", "str", 0 },
	    { "args", "obj", 0 } } },
	[MSG_RESPONSE] = { "response", { { "ok", "bool", 1 }, { "error", "str", 0 },
	    { "code", "int", 0 }, { "data", "any", 0 } } },
	[MSG_RECORD] = { "record", { { "event", "obj", 1 } } },
};

/* One value of every JSON type, named as msg.h names them. */
static const char *KINDS[] = { "str", "int", "bool", "obj", "arr", "real", "null" };

static json_t *
value_of(const char *kind)
{
	if (!strcmp(kind, "str")) return json_string("s\xc3\xa9");
	if (!strcmp(kind, "int")) return json_integer(-42);
	if (!strcmp(kind, "bool")) return json_true();
	if (!strcmp(kind, "obj")) return json_pack("{s:i,s:[s,n]}", "k", 1, "l", "x");
	if (!strcmp(kind, "arr")) return json_pack("[i,{s:b}]", 1, "b", 0);
	if (!strcmp(kind, "real")) return json_real(2.5);
	if (!strcmp(kind, "null")) return json_null();
	if (!strcmp(kind, "any")) return json_pack("{s:[f,n]}", "x", 0.25);
	ck_abort_msg("no kind %s", kind);
	return NULL;
}

/* A body holding every field of t (all == 0: only the required ones). */
static json_t *
full_body(enum msg_type t, int all)
{
	json_t *o = json_object();
	for (const struct fspec *f = SPEC[t].f; f->name; f++)
		if (all || f->required)
			json_object_set_new(o, f->name, value_of(f->type));
	return o;
}

/* ---- helpers ---- */

static size_t
unhex(const char *h, uint8_t *out, size_t cap)
{
	size_t n = 0;
	for (; h[0] && h[1]; h += 2) {
		if (*h == ' ') {
			h--;
			continue;
		}
		ck_assert_uint_lt(n, cap);
		ck_assert_int_eq(sscanf(h, "%2hhx", &out[n]), 1);
		n++;
	}
	return n;
}

/* Decode bytes; NULL on success (fields freed), else the reason. */
static const char *
decode_err(const uint8_t *p, size_t n)
{
	static char err[256];
	enum msg_type t;
	json_t *f = (json_t *)1;

	memset(err, 'X', sizeof(err) - 1);
	err[sizeof(err) - 1] = '\0';
	if (msg_unpack(p, n, &t, &f, err, sizeof(err)) == 0) {
		ck_assert_ptr_nonnull(f);
		json_decref(f);
		return NULL;
	}
	ck_assert_ptr_null(f);
	ck_assert_msg(strlen(err) < sizeof(err) - 1 && err[0] != 'X',
	    "no error message written");
	return err;
}

static const char *
hex_err(const char *hex)
{
	uint8_t b[1024];
	return decode_err(b, unhex(hex, b, sizeof(b)));
}

#define REJECT(hex, want) do { \
	const char *e_ = hex_err(hex); \
	ck_assert_msg(e_ != NULL, "%s: accepted, expected \"%s\"", hex, want); \
	ck_assert_msg(strstr(e_, want) != NULL, "%s: expected \"%s\", got \"%s\"", \
	    hex, want, e_); \
} while (0)

#define ACCEPT(hex) do { \
	const char *e_ = hex_err(hex); \
	ck_assert_msg(e_ == NULL, "%s: refused: %s", hex, e_); \
} while (0)

/* Pack a message body and decode it; returns the decode error or NULL
 * (then *out holds the fields unless out is NULL). */
static const char *
through(enum msg_type t, const json_t *fields, json_t **out)
{
	static char err[256];
	char *body;
	size_t len;
	enum msg_type got;
	json_t *f;

	ck_assert_int_eq(msg_pack_body(t, fields, &body, &len), 0);
	int rc = msg_unpack((uint8_t *)body, len, &got, &f, err, sizeof(err));
	free(body);
	if (rc < 0)
		return err;
	ck_assert_int_eq(got, t);
	if (out)
		*out = f;
	else
		json_decref(f);
	return NULL;
}

/* ---- catalogue ---- */

START_TEST(type_names)
{
	for (int t = 0; t < MSG__COUNT; t++) {
		ck_assert_str_eq(msg_type_name(t), SPEC[t].name);
		ck_assert_int_eq(msg_type_lookup(SPEC[t].name), t);
	}
	ck_assert_int_eq(msg_type_lookup("nope"), -1);
	ck_assert_int_eq(msg_type_lookup(""), -1);
	ck_assert_int_eq(msg_type_lookup("run_ac"), -1);
	ck_assert_int_eq(msg_type_lookup("run_ack2"), -1);
	ck_assert_int_eq(msg_type_lookup(NULL), -1);
	ck_assert_str_eq(msg_type_name(MSG__COUNT), "?");
}
END_TEST

/* Every type, all fields and required-only, through msg_pack + frames. */
START_TEST(every_type_round_trips)
{
	struct buf b;
	struct frame_reader r;
	const uint8_t *p;
	size_t len;
	const char *ferr;
	char err[256];

	buf_init(&b);
	for (int all = 0; all <= 1; all++)
		for (int t = 0; t < MSG__COUNT; t++) {
			json_t *in = full_body(t, all);
			ck_assert_int_eq(msg_pack(t, in, &b), 0);
			json_decref(in);
		}
	frame_reader_init(&r, FRAME_MAX_DEFAULT);
	frame_reader_feed(&r, buf_head(&b), buf_pending(&b));
	for (int all = 0; all <= 1; all++)
		for (int t = 0; t < MSG__COUNT; t++) {
			enum msg_type got;
			json_t *out, *in = full_body(t, all);
			ck_assert_int_eq(frame_reader_next(&r, &p, &len, &ferr), 1);
			ck_assert_msg(msg_unpack(p, len, &got, &out, err, sizeof(err)) == 0,
			    "%s: %s", SPEC[t].name, err);
			ck_assert_int_eq(got, t);
			ck_assert_ptr_null(json_object_get(out, "t"));
			ck_assert_msg(json_equal(in, out), "%s changed in transit", SPEC[t].name);
			json_decref(in);
			json_decref(out);
		}
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &ferr), 0);
	ck_assert_uint_eq(r.frames, 2 * MSG__COUNT);
	frame_reader_free(&r);
	buf_free(&b);
}
END_TEST

/* Values at the edges of what the bridge maps one to one. */
START_TEST(values_survive)
{
	static char big[100000];
	memset(big, 'z', sizeof(big) - 1);
	json_t *in = json_pack("{s:I,s:s,s:{s:[I,I,f,f,n,b,b,s,s,s,{}, []]}}",
	    "run_id", (json_int_t)INT64_MAX, "type", "x",
	    "payload", "v", (json_int_t)INT64_MIN, (json_int_t)-1, -0.5, 1e300,
	    1, 0, "", "\xe2\x82\xac\xf0\x9f\x98\x80", big);
	json_t *out = NULL;
	const char *e = through(MSG_EVENT, in, &out);
	ck_assert_msg(e == NULL, "%s", e);
	ck_assert(json_equal(in, out));
	json_decref(out);
	json_decref(in);

	/* A "t" among the fields is not the type and does not travel. */
	in = json_pack("{s:s,s:I}", "t", "shutdown", "run_id", (json_int_t)3);
	e = through(MSG_RUN_ACK, in, &out);
	ck_assert_msg(e == NULL, "%s", e);
	ck_assert_int_eq(json_object_size(out), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(out, "run_id")), 3);
	json_decref(out);
	json_decref(in);

	/* NULL fields: only the type. */
	e = through(MSG_SHUTDOWN, NULL, &out);
	ck_assert_msg(e == NULL, "%s", e);
	ck_assert_int_eq(json_object_size(out), 0);
	json_decref(out);
}
END_TEST

START_TEST(missing_required_fields)
{
	char want[128];
	for (int t = 0; t < MSG__COUNT; t++)
		for (const struct fspec *f = SPEC[t].f; f->name; f++) {
			json_t *body = full_body(t, 1);
			json_object_del(body, f->name);
			const char *e = through(t, body, NULL);
			if (f->required) {
				snprintf(want, sizeof(want), "%s: missing field %s", SPEC[t].name, f->name);
				ck_assert_msg(e && strcmp(e, want) == 0, "want \"%s\", got \"%s\"",
				    want, e ? e : "success");
			} else {
				ck_assert_msg(e == NULL, "%s without optional %s: %s",
				    SPEC[t].name, f->name, e);
			}
			json_decref(body);
		}
}
END_TEST

START_TEST(wrong_field_types)
{
	char want[128];
	int tried = 0;
	for (int t = 0; t < MSG__COUNT; t++)
		for (const struct fspec *f = SPEC[t].f; f->name; f++)
			for (size_t k = 0; k < ARRAY_LEN(KINDS); k++) {
				json_t *body = full_body(t, 1);
				json_object_set_new(body, f->name, value_of(KINDS[k]));
				const char *e = through(t, body, NULL);
				if (!strcmp(f->type, "any") || !strcmp(f->type, KINDS[k])) {
					ck_assert_msg(e == NULL, "%s.%s as %s: %s", SPEC[t].name,
					    f->name, KINDS[k], e);
				} else {
					snprintf(want, sizeof(want), "%s: field %s must be %s",
					    SPEC[t].name, f->name, f->type);
					ck_assert_msg(e && strcmp(e, want) == 0,
					    "%s.%s as %s: want \"%s\", got \"%s\"", SPEC[t].name,
					    f->name, KINDS[k], want, e ? e : "success");
					tried++;
				}
				json_decref(body);
			}
	ck_assert_int_gt(tried, 200);
}
END_TEST

START_TEST(unknown_fields_ignored)
{
	json_t *body = full_body(MSG_RUN, 1), *out;
	json_object_set_new(body, "future_thing", json_pack("[i,i]", 1, 2));
	const char *e = through(MSG_RUN, body, &out);
	ck_assert_msg(e == NULL, "%s", e);
	ck_assert(json_equal(body, out));
	json_decref(out);
	json_decref(body);
}
END_TEST

START_TEST(pack_refuses)
{
	struct buf b;
	char *data = NULL;
	size_t len = 0;
	json_t *arr = json_array();

	buf_init(&b);
	buf_append(&b, "keep", 4);
	ck_assert_int_eq(msg_pack(MSG_LOG, arr, &b), -1);
	ck_assert_int_eq(msg_pack(MSG__COUNT, NULL, &b), -1);
	ck_assert_int_eq(msg_pack((enum msg_type)-1, NULL, &b), -1);
	ck_assert_int_eq(msg_pack_body(MSG_LOG, arr, &data, &len), -1);
	ck_assert_uint_eq(buf_pending(&b), 4);	/* nothing half-written */
	ck_assert_int_eq(memcmp(buf_head(&b), "keep", 4), 0);
	json_decref(arr);
	buf_free(&b);
}
END_TEST

/* ---- nesting: the packer and the decoder agree on the bound ---- */

/* {"run_id": 1, "ok": true, "result": <n nested arrays>}: with the
 * message map that is n + 1 containers. */
static json_t *
nested_result(int n)
{
	json_t *v = json_integer(1);
	for (int i = 0; i < n; i++) {
		json_t *a = json_array();
		json_array_append_new(a, v);
		v = a;
	}
	return json_pack("{s:i,s:b,s:o}", "run_id", 1, "ok", 1, "result", v);
}

START_TEST(nesting_bound_agrees)
{
	struct buf b;
	json_t *ok = nested_result(JSONMP_MAX_DEPTH - 1);
	json_t *deep = nested_result(JSONMP_MAX_DEPTH);

	ck_assert_msg(through(MSG_RESULT, ok, NULL) == NULL, "max depth refused");
	buf_init(&b);
	ck_assert_int_eq(msg_pack(MSG_RESULT, deep, &b), -1);
	ck_assert_uint_eq(buf_pending(&b), 0);
	buf_free(&b);
	json_decref(ok);
	json_decref(deep);

	/* A cycle jansson lets one build is refused, not recursed forever. */
	json_t *a = json_object(), *c = json_object();
	json_object_set(a, "c", c);
	json_object_set(c, "a", a);
	json_t *body = json_pack("{s:b,s:O}", "ok", 1, "data", a);
	char *data;
	size_t len;
	ck_assert_int_eq(msg_pack_body(MSG_RESPONSE, body, &data, &len), -1);
	json_object_del(c, "a");
	json_decref(body);
	json_decref(a);
	json_decref(c);
}
END_TEST

/* A list nested depth deep (depth containers). */
static json_t *
nest(int depth)
{
	json_t *v = json_integer(1);
	for (int i = 0; i < depth; i++) {
		json_t *a = json_array();
		json_array_append_new(a, v);
		v = a;
	}
	return v;
}

/* What a worker sends is held to common/limits.h: each bound at its edge. */
START_TEST(worker_values_bounded)
{
	char err[200], *pad = xmalloc(EVENT_PAYLOAD_MAX + MEMORY_CONTENT_MAX);
	memset(pad, 'x', MEMORY_CONTENT_MAX + 1);
	pad[MEMORY_CONTENT_MAX + 1] = '\0';
	json_t *m;

	/* An event's payload: VALUE_DEPTH_MAX deep passes, one more does not. */
	m = json_pack("{s:s, s:{s:o}}", "type", "x", "payload", "v", nest(VALUE_DEPTH_MAX - 1));
	ck_assert_int_eq(msg_check_bounds(MSG_EVENT, m, err, sizeof(err)), 0);
	json_object_set_new(json_object_get(m, "payload"), "v", nest(VALUE_DEPTH_MAX));
	ck_assert_int_eq(msg_check_bounds(MSG_EVENT, m, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "payload nests more than 24 levels"), "%s", err);
	json_decref(m);

	/* A result and its usage count together against EVENT_PAYLOAD_MAX. */
	memset(pad, 'x', EVENT_PAYLOAD_MAX / 2);
	pad[EVENT_PAYLOAD_MAX / 2] = '\0';
	m = json_pack("{s:i, s:b, s:{s:s}, s:{s:s}}", "run_id", 1, "ok", 1, "result", "a", pad,
	    "usage", "b", pad);
	ck_assert_int_eq(msg_check_bounds(MSG_RESULT, m, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "result and usage: 1048592 bytes, over the limit of 1048576"),
	    "%s", err);
	json_object_del(m, "usage");
	ck_assert_int_eq(msg_check_bounds(MSG_RESULT, m, err, sizeof(err)), 0);
	json_decref(m);
	pad[MEMORY_CONTENT_MAX + 1] = '\0';

	/* Memory content by its bytes: MEMORY_CONTENT_MAX passes, one more not. */
	m = json_pack("{s:s, s:s, s:s}", "memory_type", "episodic", "role", "user", "content", pad);
	ck_assert_int_eq(msg_check_bounds(MSG_MEM_STORE, m, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "content: 262145 bytes"), "%s", err);
	pad[MEMORY_CONTENT_MAX] = '\0';
	json_object_set_new(m, "content", json_string(pad));
	ck_assert_int_eq(msg_check_bounds(MSG_MEM_STORE, m, err, sizeof(err)), 0);
	json_object_set_new(m, "metadata", json_pack("{s:o}", "deep", nest(VALUE_DEPTH_MAX)));
	ck_assert_int_eq(msg_check_bounds(MSG_MEM_STORE, m, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "metadata nests"), "%s", err);
	json_decref(m);

	/* Types without values to keep have no bounds beyond the frame's. */
	m = json_pack("{s:s, s:s}", "level", "info", "msg", pad);
	ck_assert_int_eq(msg_check_bounds(MSG_LOG, m, err, sizeof(err)), 0);
	json_decref(m);
	free(pad);
}
END_TEST

START_TEST(deep_nesting_refused)
{
	uint8_t b[128];
	size_t n = 0;

	/* {"t": [[...[1]...]]} with 32 containers in all: accepted by the
	 * bridge (the type is unknown, so the decode fails only after it). */
	b[n++] = 0x81; b[n++] = 0xa1; b[n++] = 't';
	for (int i = 0; i < JSONMP_MAX_DEPTH - 1; i++)
		b[n++] = 0x91;
	b[n++] = 0x01;
	const char *e = decode_err(b, n);
	ck_assert_msg(e && strstr(e, "\"t\" missing or not a string"), "%s", e);

	/* One more container: refused for depth. */
	n = 0;
	b[n++] = 0x81; b[n++] = 0xa1; b[n++] = 't';
	for (int i = 0; i < JSONMP_MAX_DEPTH; i++)
		b[n++] = 0x91;
	b[n++] = 0x01;
	e = decode_err(b, n);
	ck_assert_msg(e && strstr(e, "nesting deeper than 32"), "%s", e);

	/* The same with an empty innermost container and with maps. */
	n = 0;
	for (int i = 0; i < JSONMP_MAX_DEPTH; i++)
		b[n++] = 0x91;
	b[n++] = 0x90;
	e = decode_err(b, n);
	ck_assert_msg(e && strstr(e, "nesting deeper than 32"), "%s", e);
	n = 0;
	for (int i = 0; i < JSONMP_MAX_DEPTH + 1; i++) {
		b[n++] = 0x81; b[n++] = 0xa1; b[n++] = 'k';
	}
	b[n++] = 0xc0;
	e = decode_err(b, n);
	ck_assert_msg(e && strstr(e, "nesting deeper than 32"), "%s", e);

	/* jsonmp_to_json alone, on an object msgpack-c built. */
	msgpack_unpacked u;
	size_t off = 0;
	char err[128] = "";
	n = 0;
	for (int i = 0; i < JSONMP_MAX_DEPTH; i++)
		b[n++] = 0x91;
	b[n++] = 0xc0;
	msgpack_unpacked_init(&u);
	ck_assert_int_eq(msgpack_unpack_next(&u, (char *)b, n, &off), MSGPACK_UNPACK_SUCCESS);
	json_t *j = jsonmp_to_json(&u.data, err, sizeof(err));
	ck_assert_ptr_nonnull(j);
	json_decref(j);
	msgpack_unpacked_destroy(&u);
}
END_TEST

/* ---- malformed messages, byte by byte ---- */

START_TEST(malformed_envelope)
{
	ACCEPT("81 a1 74 a8 73 68 75 74 64 6f 77 6e");		/* {"t":"shutdown"} */
	REJECT("81 a1 74 a3 66 6f 6f", "unknown message type \"foo\"");
	REJECT("81 a1 74 07", "\"t\" missing or not a string");	/* t: 7 */
	REJECT("81 a1 74 c0", "\"t\" missing or not a string");	/* t: nil */
	REJECT("81 a1 74 91 a3 6c 6f 67", "\"t\" missing");	/* t: ["log"] */
	REJECT("81 a1 75 a3 6c 6f 67", "\"t\" missing");		/* u: "log" */
	REJECT("80", "\"t\" missing");
	/* An unknown name full of control bytes is shown sanitised. */
	REJECT("81 a1 74 a3 0a 1b 41", "unknown message type \"??A\"");
	REJECT("93 01 02 03", "not a msgpack map");
	REJECT("07", "not a msgpack map");
	REJECT("a3 6c 6f 67", "not a msgpack map");
	REJECT("c0", "not a msgpack map");
}
END_TEST

START_TEST(malformed_bytes)
{
	uint8_t none = 0;
	const char *e = decode_err(&none, 0);
	ck_assert_msg(e && strstr(e, "malformed msgpack"), "%s", e);
	REJECT("c1", "malformed msgpack: byte 0xc1 at offset 0");
	REJECT("81 a1 74 c1", "byte 0xc1 at offset 3");
	/* Trailing bytes after a complete map. */
	REJECT("81 a1 74 a8 73 68 75 74 64 6f 77 6e 00", "1 trailing bytes");
	REJECT("81 a1 74 a8 73 68 75 74 64 6f 77 6e 81 a1 74 c0", "4 trailing bytes");
	REJECT("07 07", "1 trailing bytes");
	/* Truncations of every kind of header and payload. */
	REJECT("81 a1 74", "exceeds");			/* map without its value */
	REJECT("82 a1 74 a3 6c 6f 67", "exceeds");	/* two entries, one given */
	REJECT("81 a1 74 cb 00 00", "truncated");		/* float64 short */
	REJECT("81 a1 74 ca 00", "truncated");		/* float32 short */
	REJECT("81 a1 74 cd 01", "truncated");		/* uint16 short */
	REJECT("81 a1 74 d3 01 02 03", "truncated");	/* int64 short */
	REJECT("81 a1 74 d9", "truncated");		/* str8 without length */
	REJECT("81 a1 74 da 00", "truncated");		/* str16 short length */
	REJECT("81 a1 74 a5 6c 6f", "exceeds");		/* fixstr short */
	REJECT("81 a1 74 d9 10 41", "exceeds");		/* str8 short */
	REJECT("81 a1 74 dc 00", "truncated");		/* array16 short count */
	REJECT("de 00", "truncated");			/* map16 short count */
	/* Counts that cannot fit the bytes: refused before msgpack-c
	 * allocates slots for them (ASan would report the huge request). */
	REJECT("df ff ff ff ff", "exceeds");
	REJECT("81 a1 74 dd ff ff ff ff 00", "exceeds");
	REJECT("81 a1 74 dc ff ff 01 02 03", "exceeds");
	REJECT("de ff ff a1 74 c0", "exceeds");
	REJECT("81 a1 74 db ff ff ff ff 41", "exceeds");
	/* Garbage. */
	REJECT("ff ff ff ff", "trailing");		/* -1 then more */
	REJECT("de ad be ef", "exceeds");
	REJECT("c4", "bin and ext");
}
END_TEST

START_TEST(malformed_values)
{
	/* Map keys must be strings: top level and nested. */
	REJECT("81 01 a3 72 75 74", "map key is not a string");
	REJECT("82 a1 74 a3 6c 6f 67 c0 01", "map key is not a string");
	REJECT("81 a1 74 81 91 01 02", "map key is not a string");
	REJECT("81 a1 74 81 c3 02", "map key is not a string");
	/* Duplicate keys, top level and nested. */
	REJECT("82 a1 74 a5 73 74 6f 70 70 a1 74 a3 72 75 74", "duplicate map key \"t\"");
	REJECT("81 a1 74 82 a1 6b 01 a1 6b 02", "duplicate map key \"k\"");
	/* Integers: beyond int64 refused, the edges accepted. */
	REJECT("81 a1 74 cf ff ff ff ff ff ff ff ff", "beyond int64");
	REJECT("81 a1 74 cf 80 00 00 00 00 00 00 00", "beyond int64");
	REJECT("81 a1 74 91 cf 80 00 00 00 00 00 00 00", "beyond int64");
	/* In range (INT64_MAX, INT64_MIN): the bridge takes them, then "t"
	 * is found not to be a string. */
	REJECT("81 a1 74 cf 7f ff ff ff ff ff ff ff", "\"t\" missing or not a string");
	REJECT("81 a1 74 d3 80 00 00 00 00 00 00 00", "\"t\" missing or not a string");
	/* bin and ext, every size. */
	REJECT("81 a1 74 c4 01 00", "bin and ext");
	REJECT("81 a1 74 c5 00 01 00", "bin and ext");
	REJECT("81 a1 74 c6 00 00 00 01 00", "bin and ext");
	REJECT("81 a1 74 c7 01 05 00", "bin and ext");
	REJECT("81 a1 74 c8 00 01 05 00", "bin and ext");
	REJECT("81 a1 74 c9 00 00 00 01 05 00", "bin and ext");
	REJECT("81 a1 74 d4 01 00", "bin and ext");
	REJECT("81 a1 74 d5 01 00 00", "bin and ext");
	REJECT("81 a1 74 d6 01 00 00 00 00", "bin and ext");
	REJECT("81 a1 74 d7 01 00 00 00 00 00 00 00 00", "bin and ext");
	REJECT("81 a1 74 d8 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00", "bin and ext");
	REJECT("81 a1 74 91 c4 00", "bin and ext");
	/* Strings: invalid UTF-8 (overlong, lone continuation, surrogate,
	 * truncated sequence) and NUL, in values and in keys. */
	REJECT("81 a1 74 a2 c0 af", "invalid UTF-8 string");
	REJECT("81 a1 74 a1 80", "invalid UTF-8 string");
	REJECT("81 a1 74 a3 ed a0 80", "invalid UTF-8 string");
	REJECT("81 a1 74 a2 e2 82", "invalid UTF-8 string");
	REJECT("81 a1 74 a3 61 00 62", "string contains NUL");
	REJECT("82 a1 74 a3 6c 6f 67 a2 c3 28 01", "invalid UTF-8 map key");
	REJECT("82 a1 74 a3 6c 6f 67 a2 6b 00 01", "map key contains NUL");
	/* The type name itself with a NUL: not a prefix match. */
	REJECT("81 a1 74 a4 6c 6f 67 00", "string contains NUL");
	/* Floats: NaN and infinities are not JSON. */
	REJECT("81 a1 74 cb 7f f8 00 00 00 00 00 00", "non-finite float");
	REJECT("81 a1 74 ca 7f 80 00 00", "non-finite float");
	REJECT("81 a1 74 ca ff 80 00 00", "non-finite float");
}
END_TEST

/* float32, str8/16, array16, map16 and negative fixints are all legal. */
START_TEST(wire_variants_accepted)
{
	/* {"t":"event","type":"x","payload":{"f":1.5f32,"s":str16"ab","a":arr16[-1]},"run_id":uint8 200} */
	const char *hex = "84 a1 74 d9 05 65 76 65 6e 74 a4 74 79 70 65 da 00 01 78"
	    " a7 70 61 79 6c 6f 61 64 de 00 03 a1 66 ca 3f c0 00 00 a1 73 da 00 02 61 62"
	    " a1 61 dc 00 01 ff a6 72 75 6e 5f 69 64 cc c8";
	uint8_t b[256];
	size_t n = unhex(hex, b, sizeof(b));
	char err[256];
	enum msg_type t;
	json_t *f;
	ck_assert_msg(msg_unpack(b, n, &t, &f, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(t, MSG_EVENT);
	json_t *want = json_pack("{s:s,s:{s:f,s:s,s:[i]},s:i}", "type", "x", "payload",
	    "f", 1.5, "s", "ab", "a", -1, "run_id", 200);
	ck_assert(json_equal(f, want));
	json_decref(want);
	json_decref(f);
}
END_TEST

/* Empty strings and keys: msgpack-c may hand them over with no bytes
 * behind them (a NULL pointer), which must read as "" (found by fuzz_frame
 * under UBSan: memchr on NULL). */
START_TEST(empty_strings_accepted)
{
	/* {"t":"log","level":"","msg":"","":""} */
	const char *hex = "84 a1 74 a3 6c 6f 67 a5 6c 65 76 65 6c a0 a3 6d 73 67 a0 a0 a0";
	uint8_t b[64];
	size_t n = unhex(hex, b, sizeof(b));
	char err[256];
	enum msg_type t;
	json_t *f;
	ck_assert_msg(msg_unpack(b, n, &t, &f, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(t, MSG_LOG);
	ck_assert_str_eq(json_string_value(json_object_get(f, "level")), "");
	ck_assert_str_eq(json_string_value(json_object_get(f, "")), "");
	json_decref(f);
}
END_TEST

/* Ints must be integers: a real that happens to be whole is not one. */
START_TEST(int_fields_take_only_integers)
{
	json_t *body = json_pack("{s:f}", "run_id", 3.0);
	const char *e = through(MSG_RUN_ACK, body, NULL);
	ck_assert_msg(e && !strcmp(e, "run_ack: field run_id must be int"), "%s", e);
	json_decref(body);
	body = json_pack("{s:I}", "run_id", (json_int_t)-7);
	ck_assert_ptr_null(through(MSG_RUN_ACK, body, NULL));
	json_decref(body);
}
END_TEST

/* ---- frame reader ---- */

static size_t
stream_of(struct buf *b, int n)
{
	for (int i = 0; i < n; i++) {
		json_t *f = json_pack("{s:s,s:s+}", "level", "info", "msg", "line ",
		    i % 2 ? "odd" : "even and a little longer");
		ck_assert_int_eq(msg_pack(MSG_LOG, f, b), 0);
		json_decref(f);
	}
	return buf_pending(b);
}

static int
drain(struct frame_reader *r, int *seen)
{
	const uint8_t *p;
	size_t len;
	const char *err;
	char merr[256];
	int rc;

	while ((rc = frame_reader_next(r, &p, &len, &err)) == 1) {
		enum msg_type t;
		json_t *m;
		ck_assert_msg(msg_unpack(p, len, &t, &m, merr, sizeof(merr)) == 0, "%s", merr);
		ck_assert_int_eq(t, MSG_LOG);
		const char *want = *seen % 2 ? "line odd" : "line even and a little longer";
		ck_assert_str_eq(json_string_value(json_object_get(m, "msg")), want);
		json_decref(m);
		(*seen)++;
	}
	return rc;
}

START_TEST(frames_split_at_every_byte)
{
	struct buf b;
	buf_init(&b);
	size_t total = stream_of(&b, 4);

	for (size_t cut = 0; cut <= total; cut++) {
		struct frame_reader r;
		int seen = 0;
		frame_reader_init(&r, 1024);
		frame_reader_feed(&r, buf_head(&b), cut);
		ck_assert_int_eq(drain(&r, &seen), 0);
		frame_reader_feed(&r, buf_head(&b) + cut, total - cut);
		ck_assert_int_eq(drain(&r, &seen), 0);
		ck_assert_int_eq(seen, 4);
		frame_reader_free(&r);
	}
	/* And one byte at a time. */
	struct frame_reader r;
	int seen = 0;
	frame_reader_init(&r, 1024);
	for (size_t i = 0; i < total; i++) {
		frame_reader_feed(&r, buf_head(&b) + i, 1);
		ck_assert_int_eq(drain(&r, &seen), 0);
	}
	ck_assert_int_eq(seen, 4);
	ck_assert_uint_eq(r.frames, 4);
	frame_reader_free(&r);
	buf_free(&b);
}
END_TEST

START_TEST(partial_frames_wait)
{
	struct frame_reader r;
	const uint8_t *p;
	size_t len;
	const char *err = NULL;
	const uint8_t frame[] = { 0, 0, 0, 3, 0x91, 0x01, 0x02 };

	frame_reader_init(&r, 16);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &err), 0);	/* nothing */
	frame_reader_feed(&r, frame, 3);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &err), 0);	/* partial header */
	frame_reader_feed(&r, frame + 3, 2);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &err), 0);	/* partial body */
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &err), 0);	/* still */
	frame_reader_feed(&r, frame + 5, 2);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &err), 1);
	ck_assert_uint_eq(len, 3);
	ck_assert_int_eq(memcmp(p, frame + 4, 3), 0);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_uint_eq(buf_pending(&r.in), 0);
	frame_reader_free(&r);
}
END_TEST

START_TEST(bad_lengths_poison)
{
	struct frame_reader r;
	const uint8_t *p;
	size_t len;
	const char *err;
	const uint8_t zero[4] = { 0, 0, 0, 0 };
	const uint8_t over[4] = { 0, 0, 4, 1 };		/* 1025 */
	const uint8_t huge[4] = { 0xff, 0xff, 0xff, 0xff };
	uint8_t exact[4 + 1024] = { 0, 0, 4, 0 };

	frame_reader_init(&r, 1024);
	frame_reader_feed(&r, zero, 4);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &err), -1);
	ck_assert_str_eq(err, "empty frame");
	frame_reader_feed(&r, exact, sizeof(exact));	/* good bytes after: too late */
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &err), -1);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &err), -1);
	frame_reader_free(&r);

	frame_reader_init(&r, 1024);
	frame_reader_feed(&r, over, 4);		/* refused before the body comes */
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &err), -1);
	ck_assert_str_eq(err, "frame length 1025 exceeds maximum 1024");
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &err), -1);
	frame_reader_free(&r);

	frame_reader_init(&r, FRAME_MAX_DEFAULT);
	frame_reader_feed(&r, huge, 4);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &err), -1);
	ck_assert_str_eq(err, "frame length 4294967295 exceeds maximum 4194304");
	frame_reader_free(&r);

	/* A good frame, then a bad length: the good one is delivered first. */
	frame_reader_init(&r, 1024);
	frame_reader_feed(&r, exact, sizeof(exact));
	frame_reader_feed(&r, over, 4);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &err), 1);
	ck_assert_uint_eq(len, 1024);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len, &err), -1);
	ck_assert_uint_eq(r.frames, 1);
	frame_reader_free(&r);
}
END_TEST

/* Consumption is lazy but real: a long stream fed and read frame by frame
 * keeps the buffer small. */
START_TEST(reader_memory_stays_small)
{
	struct buf one;
	struct frame_reader r;
	int seen = 0;

	buf_init(&one);
	stream_of(&one, 2);
	frame_reader_init(&r, 1024);
	for (int i = 0; i < 20000; i++) {
		frame_reader_feed(&r, buf_head(&one), buf_pending(&one));
		ck_assert_int_eq(drain(&r, &seen), 0);
	}
	ck_assert_int_eq(seen, 40000);
	ck_assert_uint_le(r.in.cap, 1024);
	frame_reader_free(&r);
	buf_free(&one);
}
END_TEST

START_TEST(fill_from_a_pipe)
{
	int fds[2];
	struct buf b;
	struct frame_reader r;
	int seen = 0;

	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(set_nonblock(fds[0]), 0);
	buf_init(&b);
	size_t total = stream_of(&b, 10);
	frame_reader_init(&r, 1024);
	errno = 0;
	ck_assert_int_eq(frame_reader_fill(&r, fds[0]), -1);
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_int_eq(write_all(fds[1], buf_head(&b), total), 0);
	ck_assert_int_eq(frame_reader_fill(&r, fds[0]), (ssize_t)total);
	ck_assert_int_eq(drain(&r, &seen), 0);
	ck_assert_int_eq(seen, 10);
	close(fds[1]);
	ck_assert_int_eq(frame_reader_fill(&r, fds[0]), 0);	/* EOF */
	close(fds[0]);
	frame_reader_free(&r);
	buf_free(&b);
}
END_TEST

/* A frame larger than one read arrives over several fills of <= 64 KiB. */
START_TEST(fill_big_frame)
{
	int sv[2];
	struct wqueue q;
	struct frame_reader r;
	const uint8_t *p;
	size_t len;
	const char *err;
	size_t n = 300000;
	uint8_t *payload = xmalloc(n);
	int fills = 0, rc;

	for (size_t i = 0; i < n; i++)
		payload[i] = (uint8_t)(i * 7);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(set_nonblock(sv[0]), 0);
	ck_assert_int_eq(set_nonblock(sv[1]), 0);
	wqueue_init(&q, WQUEUE_LIMIT_DEFAULT);
	frame_reader_init(&r, FRAME_MAX_DEFAULT);
	ck_assert_int_eq(wqueue_push(&q, payload, n), 0);
	while ((rc = frame_reader_next(&r, &p, &len, &err)) == 0) {
		ck_assert_int_ge(wqueue_flush(&q, sv[0]), 0);
		ssize_t got = frame_reader_fill(&r, sv[1]);
		ck_assert_int_gt(got, 0);
		ck_assert_int_le(got, 65536);
		fills++;
	}
	ck_assert_int_eq(rc, 1);
	ck_assert_int_ge(fills, 5);
	ck_assert_uint_eq(len, n);
	ck_assert_int_eq(memcmp(p, payload, n), 0);
	ck_assert_int_eq(wqueue_flush(&q, sv[0]), 1);
	frame_reader_free(&r);
	wqueue_free(&q);
	free(payload);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/* ---- write queue ---- */

START_TEST(wqueue_bounded)
{
	struct wqueue q;
	char payload[100];

	memset(payload, 'x', sizeof(payload));
	wqueue_init(&q, 5 * 104);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(wqueue_push(&q, payload, sizeof(payload)), 0);	/* exactly full */
	ck_assert_uint_eq(wqueue_pending(&q), 5 * 104);
	errno = 0;
	ck_assert_int_eq(wqueue_push(&q, payload, sizeof(payload)), -1);
	ck_assert_int_eq(errno, ENOBUFS);
	ck_assert_int_eq(wqueue_push(&q, payload, 1), -1);
	ck_assert_uint_eq(q.refused, 2);
	ck_assert_uint_eq(q.frames, 5);
	ck_assert_uint_eq(wqueue_pending(&q), 5 * 104);
	errno = 0;
	ck_assert_int_eq(wqueue_push(&q, payload, 0), -1);
	ck_assert_int_eq(errno, EMSGSIZE);
	wqueue_free(&q);

	uint8_t *big = xcalloc(1, FRAME_MAX_DEFAULT + 1);
	wqueue_init(&q, WQUEUE_LIMIT_DEFAULT);
	errno = 0;
	ck_assert_int_eq(wqueue_push(&q, big, FRAME_MAX_DEFAULT + 1), -1);
	ck_assert_int_eq(errno, EMSGSIZE);
	ck_assert_int_eq(wqueue_push(&q, big, FRAME_MAX_DEFAULT), 0);
	ck_assert_uint_eq(q.refused, 0);
	ck_assert_uint_eq(wqueue_pending(&q), FRAME_MAX_DEFAULT + FRAME_HDR);
	wqueue_free(&q);
	free(big);
}
END_TEST

/* Many frames through a tiny socket buffer: partial writes, EAGAIN, and
 * every byte arrives in order. */
START_TEST(wqueue_partial_writes)
{
	int sv[2], small = 4096;
	struct wqueue q;
	struct frame_reader r;
	const uint8_t *p;
	size_t len;
	const char *err;
	uint8_t payload[3000];
	int got = 0, partial = 0;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	ck_assert_int_eq(set_nonblock(sv[0]), 0);
	ck_assert_int_eq(set_nonblock(sv[1]), 0);
	wqueue_init(&q, 1 << 20);
	ck_assert_int_eq(wqueue_flush(&q, sv[0]), 1);	/* empty: done */
	for (int i = 0; i < 200; i++) {
		memset(payload, i, sizeof(payload));
		ck_assert_int_eq(wqueue_push(&q, payload, 1 + (size_t)i * 13), 0);
	}
	frame_reader_init(&r, 1 << 20);
	while (got < 200) {
		int fr = wqueue_flush(&q, sv[0]);
		ck_assert_int_ge(fr, 0);
		partial += fr == 0;
		ssize_t n = frame_reader_fill(&r, sv[1]);
		ck_assert(n > 0 || (n < 0 && errno == EAGAIN));
		while (frame_reader_next(&r, &p, &len, &err) == 1) {
			ck_assert_uint_eq(len, 1 + (size_t)got * 13);
			ck_assert_uint_eq(p[0], (uint8_t)got);
			ck_assert_uint_eq(p[len - 1], (uint8_t)got);
			got++;
		}
	}
	ck_assert_int_gt(partial, 0);
	ck_assert_uint_eq(wqueue_pending(&q), 0);
	frame_reader_free(&r);
	wqueue_free(&q);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

static void
assert_no_sigpipe_pending(void)
{
	sigset_t pending;
	sigpending(&pending);
	ck_assert(!sigismember(&pending, SIGPIPE));
}

/* The peer is gone: EPIPE, never SIGPIPE, on a socket and on a pipe, with
 * SIGPIPE at its default (fatal) disposition. */
START_TEST(wqueue_epipe_no_sigpipe)
{
	int sv[2], fds[2];
	struct wqueue q;

	signal(SIGPIPE, SIG_DFL);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	wqueue_init(&q, 1 << 16);
	ck_assert_int_eq(wqueue_push(&q, "abc", 3), 0);
	errno = 0;
	ck_assert_int_eq(wqueue_flush(&q, sv[0]), -1);
	ck_assert_int_eq(errno, EPIPE);
	ck_assert_uint_eq(wqueue_pending(&q), 7);	/* kept: nothing was sent */
	close(sv[0]);

	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(wqueue_flush(&q, fds[1]), 1);	/* pipe works while read */
	char in[7];
	ck_assert_int_eq(read(fds[0], in, 7), 7);
	ck_assert_int_eq(memcmp(in, "\0\0\0\3abc", 7), 0);
	close(fds[0]);
	ck_assert_int_eq(wqueue_push(&q, "abc", 3), 0);
	errno = 0;
	ck_assert_int_eq(wqueue_flush(&q, fds[1]), -1);
	ck_assert_int_eq(errno, EPIPE);
	assert_no_sigpipe_pending();
	close(fds[1]);

	/* A SIGPIPE the caller already had pending (blocked) is left alone. */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigprocmask(SIG_BLOCK, &set, &old);
	raise(SIGPIPE);
	ck_assert_int_eq(pipe(fds), 0);
	close(fds[0]);
	ck_assert_int_eq(wqueue_flush(&q, fds[1]), -1);
	sigset_t pending;
	sigpending(&pending);
	ck_assert(sigismember(&pending, SIGPIPE));
	signal(SIGPIPE, SIG_IGN);	/* discard it before unblocking */
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(fds[1]);
	wqueue_free(&q);
}
END_TEST

/* ---- speed: a small message should cost a few microseconds ---- */

START_TEST(small_message_is_fast)
{
	json_t *f = json_pack("{s:I,s:I,s:s,s:I,s:{s:s}}", "run_id", (json_int_t)12345,
	    "attempt", (json_int_t)1, "session_id", "3f2a9c1e-0000-4000-8000-000000000000",
	    "run_count", (json_int_t)99, "kwargs", "query", "check disk space");
	struct buf b;
	char err[256];
	const int N = 20000;

	int bad = 0;
	buf_init(&b);
	int64_t t0 = mono_us();
	for (int i = 0; i < N; i++) {	/* no ck_assert inside: each one costs a write */
		enum msg_type t;
		json_t *m;
		buf_reset(&b);
		bad += msg_pack(MSG_RUN, f, &b) != 0;
		if (msg_unpack(buf_head(&b) + FRAME_HDR, buf_pending(&b) - FRAME_HDR,
		    &t, &m, err, sizeof(err)) == 0)
			json_decref(m);
		else
			bad++;
	}
	double us = (double)(mono_us() - t0) / N;
	ck_assert_int_eq(bad, 0);
	fprintf(stderr, "test_proto: run message encode+decode %.2f us\n", us);
	/* Generous (sanitizers, loaded CI machines): catches accidental
	 * quadratic or syscall-per-message costs, not micro-regressions. */
	ck_assert_msg(us < 50.0, "%.2f us per round trip", us);
	buf_free(&b);
	json_decref(f);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("proto");
	TCase *tc = tcase_create("catalogue");
	tcase_add_test(tc, type_names);
	tcase_add_test(tc, every_type_round_trips);
	tcase_add_test(tc, values_survive);
	tcase_add_test(tc, missing_required_fields);
	tcase_add_test(tc, wrong_field_types);
	tcase_add_test(tc, unknown_fields_ignored);
	tcase_add_test(tc, pack_refuses);
	tcase_add_test(tc, int_fields_take_only_integers);
	suite_add_tcase(s, tc);

	tc = tcase_create("decoder");
	tcase_add_test(tc, nesting_bound_agrees);
	tcase_add_test(tc, deep_nesting_refused);
	tcase_add_test(tc, worker_values_bounded);
	tcase_add_test(tc, malformed_envelope);
	tcase_add_test(tc, malformed_bytes);
	tcase_add_test(tc, malformed_values);
	tcase_add_test(tc, wire_variants_accepted);
	tcase_add_test(tc, empty_strings_accepted);
	suite_add_tcase(s, tc);

	tc = tcase_create("frames");
	tcase_add_test(tc, frames_split_at_every_byte);
	tcase_add_test(tc, partial_frames_wait);
	tcase_add_test(tc, bad_lengths_poison);
	tcase_add_test(tc, reader_memory_stays_small);
	tcase_add_test(tc, fill_from_a_pipe);
	tcase_add_test(tc, fill_big_frame);
	tcase_add_test(tc, wqueue_bounded);
	tcase_add_test(tc, wqueue_partial_writes);
	tcase_add_test(tc, wqueue_epipe_no_sigpipe);
	tcase_add_test(tc, small_message_is_fast);
	suite_add_tcase(s, tc);

	return run_suite(s);
}
