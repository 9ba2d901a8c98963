/*
 * jsonmp: msgpack <-> jansson.  The decoder is the trust boundary for every
 * byte a worker or a control client sends, so it refuses anything the rest
 * of agentd would have to second-guess: non-string keys, duplicate keys,
 * integers beyond int64, bin and ext objects, invalid UTF-8 or NUL in
 * strings, and nesting deeper than JSONMP_MAX_DEPTH.
 */
#include <stdio.h>
#include <string.h>
#include "common/jsonmp.h"

static json_t *conv(const msgpack_object *o, int depth, char *err, size_t errlen);

static json_t *
conv_str(const char *p, uint32_t n, char *err, size_t errlen)
{
	if (memchr(p, '\0', n)) {
		snprintf(err, errlen, "string contains NUL");
		return NULL;
	}
	json_t *s = json_stringn(p, n);
	if (s == NULL)
		snprintf(err, errlen, "invalid UTF-8 string");
	return s;
}

static json_t *
conv_map(const msgpack_object_map *m, int depth, char *err, size_t errlen)
{
	json_t *o = json_object();
	for (uint32_t i = 0; i < m->size; i++) {
		const msgpack_object *k = &m->ptr[i].key;
		char key[256];
		if (k->type != MSGPACK_OBJECT_STR) {
			snprintf(err, errlen, "map key is not a string");
			goto fail;
		}
		if (k->via.str.size >= sizeof(key) || memchr(k->via.str.ptr, '\0', k->via.str.size)) {
			snprintf(err, errlen, "map key too long or contains NUL");
			goto fail;
		}
		memcpy(key, k->via.str.ptr, k->via.str.size);
		key[k->via.str.size] = '\0';
		if (json_object_get(o, key)) {
			snprintf(err, errlen, "duplicate map key \"%s\"", key);
			goto fail;
		}
		json_t *v = conv(&m->ptr[i].val, depth + 1, err, errlen);
		if (v == NULL)
			goto fail;
		if (json_object_set_new(o, key, v) < 0) {
			snprintf(err, errlen, "invalid UTF-8 map key");
			goto fail;
		}
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *
conv(const msgpack_object *o, int depth, char *err, size_t errlen)
{
	if (depth > JSONMP_MAX_DEPTH) {
		snprintf(err, errlen, "nesting deeper than %d", JSONMP_MAX_DEPTH);
		return NULL;
	}
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > (uint64_t)INT64_MAX) {
			snprintf(err, errlen, "integer beyond int64");
			return NULL;
		}
		return json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return json_real(o->via.f64);
	case MSGPACK_OBJECT_STR:
		return conv_str(o->via.str.ptr, o->via.str.size, err, errlen);
	case MSGPACK_OBJECT_ARRAY: {
		json_t *a = json_array();
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			json_t *v = conv(&o->via.array.ptr[i], depth + 1, err, errlen);
			if (v == NULL) {
				json_decref(a);
				return NULL;
			}
			json_array_append_new(a, v);
		}
		return a;
	}
	case MSGPACK_OBJECT_MAP:
		return conv_map(&o->via.map, depth, err, errlen);
	default:
		snprintf(err, errlen, "bin and ext objects are not accepted");
		return NULL;
	}
}

json_t *
jsonmp_to_json(const msgpack_object *o, char *err, size_t errlen)
{
	return conv(o, 0, err, errlen);
}

int
jsonmp_pack(msgpack_packer *pk, const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_NULL: return msgpack_pack_nil(pk);
	case JSON_TRUE: return msgpack_pack_true(pk);
	case JSON_FALSE: return msgpack_pack_false(pk);
	case JSON_INTEGER: return msgpack_pack_int64(pk, json_integer_value(j));
	case JSON_REAL: return msgpack_pack_double(pk, json_real_value(j));
	case JSON_STRING: {
		size_t n = json_string_length(j);
		msgpack_pack_str(pk, n);
		return msgpack_pack_str_body(pk, json_string_value(j), n);
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *v;
		msgpack_pack_array(pk, json_array_size(j));
		json_array_foreach(j, i, v)
			if (jsonmp_pack(pk, v) < 0)
				return -1;
		return 0;
	}
	case JSON_OBJECT: {
		const char *k;
		json_t *v;
		msgpack_pack_map(pk, json_object_size(j));
		json_object_foreach((json_t *)j, k, v) {
			size_t n = strlen(k);
			msgpack_pack_str(pk, n);
			msgpack_pack_str_body(pk, k, n);
			if (jsonmp_pack(pk, v) < 0)
				return -1;
		}
		return 0;
	}
	}
	return -1;
}
