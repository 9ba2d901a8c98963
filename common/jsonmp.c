/*
 * jsonmp: msgpack <-> jansson.
 *
 * The decoder is the trust boundary for every byte a worker or a control
 * client sends, so it refuses anything the rest of agentd would have to
 * second-guess: non-string, duplicate, NUL-bearing or non-UTF-8 keys;
 * integers beyond int64; non-finite floats (JSON has no NaN, and jansson
 * refuses them); NUL or invalid UTF-8 in strings; bin and ext objects; and
 * more than JSONMP_MAX_DEPTH nested containers.  Depth counts containers,
 * not values: a scalar may sit inside 32 containers, a 33rd container may
 * not.  The encoder applies the same depth bound, so agentd never sends
 * what its own decoder (or a cyclic jansson value) would choke on.
 *
 * Duplicate keys are found without a second hash lookup: setting an
 * existing key replaces it and leaves the object's size unchanged.
 *
 * json_dumps_short rewrites reals as jansson's encoder hands them out:
 * json_dump_callback passes each number as one chunk of its own, and
 * everything inside a string between the chunks that are exactly a quote
 * (a quote within a string is always escaped, so never a chunk alone).
 * So a chunk outside strings holding '.' or 'e' is a real, and nothing
 * else is touched -- the unit tests hold jansson to that.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/jsonmp.h"
#include "common/util.h"

static json_t *conv(const msgpack_object *o, int depth, char *err, size_t errlen);

static json_t *
conv_str(const char *p, size_t n, char *err, size_t errlen)
{
	json_t *s;

	if (n == 0)	/* msgpack-c may give an empty str no bytes at all */
		p = "";
	if (memchr(p, '\0', n)) {
		snprintf(err, errlen, "string contains NUL");
		return NULL;
	}
	if ((s = json_stringn(p, n)) == NULL)
		snprintf(err, errlen, "invalid UTF-8 string");
	return s;
}

static int
conv_key(json_t *obj, const msgpack_object *k, json_t *v, char *err, size_t errlen)
{
	const char *p = k->via.str.size ? k->via.str.ptr : "";
	size_t n = k->via.str.size, before = json_object_size(obj);
	char shown[48];

	if (memchr(p, '\0', n)) {
		snprintf(err, errlen, "map key contains NUL");
		json_decref(v);
		return -1;
	}
	if (json_object_setn_new(obj, p, n, v) < 0) {	/* v is stolen either way */
		snprintf(err, errlen, "invalid UTF-8 map key");
		return -1;
	}
	if (json_object_size(obj) == before) {
		str_printable(shown, sizeof(shown), p, n);
		snprintf(err, errlen, "duplicate map key \"%s\"", shown);
		return -1;
	}
	return 0;
}

static json_t *
conv_map(const msgpack_object_map *m, int depth, char *err, size_t errlen)
{
	json_t *o = json_object();

	if (o == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (uint32_t i = 0; i < m->size; i++) {
		const msgpack_object *k = &m->ptr[i].key;
		json_t *v;

		if (k->type != MSGPACK_OBJECT_STR) {
			snprintf(err, errlen, "map key is not a string");
			goto fail;
		}
		if ((v = conv(&m->ptr[i].val, depth + 1, err, errlen)) == NULL)
			goto fail;
		if (conv_key(o, k, v, err, errlen) < 0)
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *
conv_array(const msgpack_object_array *a, int depth, char *err, size_t errlen)
{
	json_t *arr = json_array();

	if (arr == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (uint32_t i = 0; i < a->size; i++) {
		json_t *v = conv(&a->ptr[i], depth + 1, err, errlen);
		if (v == NULL || json_array_append_new(arr, v) < 0) {
			if (v != NULL)
				snprintf(err, errlen, "out of memory");
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static json_t *
conv_scalar(const msgpack_object *o, char *err, size_t errlen)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > (uint64_t)INT64_MAX) {
			snprintf(err, errlen, "integer %llu beyond int64",
			    (unsigned long long)o->via.u64);
			return NULL;
		}
		return json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (!isfinite(o->via.f64)) {
			snprintf(err, errlen, "non-finite float");
			return NULL;
		}
		return json_real(o->via.f64);
	case MSGPACK_OBJECT_STR:
		return conv_str(o->via.str.ptr, o->via.str.size, err, errlen);
	default:
		snprintf(err, errlen, "bin and ext objects are not accepted");
		return NULL;
	}
}

/* depth: how many containers enclose o. */
static json_t *
conv(const msgpack_object *o, int depth, char *err, size_t errlen)
{
	if (o->type != MSGPACK_OBJECT_ARRAY && o->type != MSGPACK_OBJECT_MAP)
		return conv_scalar(o, err, errlen);
	if (depth >= JSONMP_MAX_DEPTH) {
		snprintf(err, errlen, "nesting deeper than %d", JSONMP_MAX_DEPTH);
		return NULL;
	}
	if (o->type == MSGPACK_OBJECT_ARRAY)
		return conv_array(&o->via.array, depth, err, errlen);
	return conv_map(&o->via.map, depth, err, errlen);
}

json_t *
jsonmp_to_json(const msgpack_object *o, char *err, size_t errlen)
{
	return conv(o, 0, err, errlen);
}

static int
pack_str(msgpack_packer *pk, const char *s, size_t n)
{
	if (n > UINT32_MAX || msgpack_pack_str(pk, n) < 0)
		return -1;
	return msgpack_pack_str_body(pk, s, n);
}

static int pack(msgpack_packer *pk, const json_t *j, int depth);

static int
pack_array(msgpack_packer *pk, const json_t *j, int depth)
{
	size_t i, n = json_array_size(j);

	if (n > UINT32_MAX || msgpack_pack_array(pk, n) < 0)
		return -1;
	for (i = 0; i < n; i++)
		if (pack(pk, json_array_get(j, i), depth + 1) < 0)
			return -1;
	return 0;
}

static int
pack_object(msgpack_packer *pk, const json_t *j, int depth)
{
	const char *k;
	size_t klen;
	json_t *v;

	if (json_object_size(j) > UINT32_MAX ||
	    msgpack_pack_map(pk, json_object_size(j)) < 0)
		return -1;
	json_object_keylen_foreach((json_t *)j, k, klen, v) {
		if (pack_str(pk, k, klen) < 0 || pack(pk, v, depth + 1) < 0)
			return -1;
	}
	return 0;
}

static int
pack(msgpack_packer *pk, const json_t *j, int depth)
{
	switch (json_typeof(j)) {
	case JSON_NULL: return msgpack_pack_nil(pk);
	case JSON_TRUE: return msgpack_pack_true(pk);
	case JSON_FALSE: return msgpack_pack_false(pk);
	case JSON_INTEGER: return msgpack_pack_int64(pk, json_integer_value(j));
	case JSON_REAL: return msgpack_pack_double(pk, json_real_value(j));
	case JSON_STRING: return pack_str(pk, json_string_value(j), json_string_length(j));
	case JSON_ARRAY:
	case JSON_OBJECT:
		if (depth >= JSONMP_MAX_DEPTH)
			return -1;	/* the peer would refuse it; also stops cycles */
		if (json_is_array(j))
			return pack_array(pk, j, depth);
		return pack_object(pk, j, depth);
	}
	return -1;
}

int
jsonmp_pack(msgpack_packer *pk, const json_t *j)
{
	if (j == NULL)
		return -1;
	return pack(pk, j, 0);
}

/* Containers on the deepest path; stops counting past limit + 1, so a
 * value built to be deep costs no more than the bound to measure. */
static int
depth_of(const json_t *j, int limit)
{
	int deepest = 0, d;
	const char *k;
	json_t *v;
	size_t i;

	if (!json_is_object(j) && !json_is_array(j))
		return 0;
	if (limit < 0)
		return 1;
	if (json_is_object(j)) {
		json_object_foreach((json_t *)j, k, v)
			if ((d = depth_of(v, limit - 1)) > deepest && (deepest = d) > limit)
				break;
	} else {
		json_array_foreach(j, i, v)
			if ((d = depth_of(v, limit - 1)) > deepest && (deepest = d) > limit)
				break;
	}
	return deepest + 1;
}

int
json_depth(const json_t *j, int limit)
{
	return depth_of(j, limit);
}

static int
count_bytes(const char *buf, size_t size, void *data)
{
	(void)buf;
	*(size_t *)data += size;
	return 0;
}

size_t
json_compact_size(const json_t *j)
{
	size_t n = 0;
	if (json_dump_callback(j, count_bytes, &n, JSON_COMPACT | JSON_ENCODE_ANY) < 0)
		return SIZE_MAX;
	return n;
}

/* The shortest of %.15g, %.16g, %.17g that reads back as v. */
static int
shortest_real(double v, char *out, size_t outlen)
{
	int n = 0;
	for (int digits = 15; digits <= 17; digits++) {
		n = snprintf(out, outlen, "%.*g", digits, v);
		if (strtod(out, NULL) == v)
			break;
	}
	if (strpbrk(out, ".eE") == NULL && n + 2 < (int)outlen) {	/* 1e15 -> "1e+15"; 2.0 -> "2" */
		memcpy(out + n, ".0", 3);
		n += 2;
	}
	return n;
}

struct short_dump {
	struct buf out;
	bool in_string;
};

/* Outside strings, only numbers start with a digit or '-'; reals are the
 * ones with a fraction or an exponent. */
static bool
is_real(const char *p, size_t n)
{
	return n > 0 && (p[0] == '-' || (p[0] >= '0' && p[0] <= '9')) &&
	    (memchr(p, '.', n) || memchr(p, 'e', n) || memchr(p, 'E', n));
}

static int
short_chunk(const char *p, size_t n, void *data)
{
	struct short_dump *d = data;
	char num[40];

	if (n == 1 && p[0] == '"')
		d->in_string = !d->in_string;
	else if (!d->in_string && n < sizeof(num) && is_real(p, n)) {
		memcpy(num, p, n);
		num[n] = '\0';
		n = (size_t)shortest_real(strtod(num, NULL), num, sizeof(num));
		p = num;
	}
	buf_append(&d->out, p, n);
	return 0;
}

char *
json_dumps_short(const json_t *j, size_t flags)
{
	struct short_dump d = { .in_string = false };
	char *s = NULL;

	buf_init(&d.out);
	if (j && json_dump_callback(j, short_chunk, &d, flags | JSON_ENCODE_ANY) == 0) {
		s = xmalloc(buf_pending(&d.out) + 1);
		memcpy(s, buf_head(&d.out), buf_pending(&d.out));
		s[buf_pending(&d.out)] = '\0';
	}
	buf_free(&d.out);
	return s;
}

json_t *
json_merge_patch(const json_t *target, const json_t *patch)
{
	if (!json_is_object(patch))
		return json_deep_copy(patch);
	json_t *out = json_is_object(target) ? json_deep_copy(target) : json_object();
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)patch, k, v) {
		if (json_is_null(v))
			json_object_del(out, k);
		else
			json_object_set_new(out, k, json_merge_patch(json_object_get(out, k), v));
	}
	return out;
}
