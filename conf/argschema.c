/*
 * argschema: see argschema.h.  keywords[] is the one list: a row's check
 * runs at load on the keyword's value, its apply at run time on an
 * argument (NULL for annotations, which constrain nothing).
 */
#include <ctype.h>
#include <locale.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "common/buf.h"
#include "common/util.h"
#include "conf/argschema.h"

struct cctx {                    /* a load check: where, and why not */
	char at[256];
	char *err;
	size_t errlen;
};

struct vctx {                    /* a validation: the argument's path, and why not */
	char path[256];
	char *err;
	size_t errlen;
};

static int __attribute__((format(printf, 2, 3)))
cfail(struct cctx *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int __attribute__((format(printf, 2, 3)))
vfail(struct vctx *c, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "argument \"%s\" %s", c->path, why);
	return -1;
}

/* ---- pattern: POSIX ERE read the way ECMA-262 would read it ------------------ */

static locale_t
utf8_locale(void)
{
	static locale_t loc;
	if (loc == (locale_t)0)
		loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	return loc;
}

/* The pattern as regcomp must see it, or NULL with the construct that
 * would mean something else there (see argschema.h). */
static char *
translate(const char *pat, char *err, size_t errlen)
{
	struct buf b;
	bool in_class = false;
	buf_init(&b);
	for (const char *p = pat; *p; p++) {
		if (!in_class && *p == '\\') {
			if (!ispunct((unsigned char)p[1])) {
				snprintf(err, errlen, "\\%.1s is not supported (escape only punctuation; "
				    "write [0-9] for \\d, [[:alnum:]_] for \\w, [[:space:]] for \\s)",
				    p[1] ? p + 1 : "");
				buf_free(&b);
				return NULL;
			}
			buf_append(&b, p, 2);
			p++;
		} else if (!in_class && *p == '.') {
			static const char dot[] = "[^\n\r\xe2\x80\xa8\xe2\x80\xa9]";
			buf_append(&b, dot, sizeof(dot) - 1);
		} else if (!in_class && *p == '[') {
			size_t skip = p[1] == '^' ? 2 : 1;
			if (p[skip] == ']') {
				snprintf(err, errlen, "a [...] that starts with ] is read differently "
				    "by JSON Schema's ECMA-262 and by POSIX; move the ]");
				buf_free(&b);
				return NULL;
			}
			buf_append(&b, p, skip);
			p += skip - 1;
			in_class = true;
		} else if (in_class && *p == '[' && p[1] && strchr(":.=", p[1])) {
			const char *end = strstr(p + 2, (char[]){ p[1], ']', 0 });
			size_t n = end ? (size_t)(end - p) + 2 : strlen(p);
			buf_append(&b, p, n);	/* [:digit:] and friends, whole */
			p += n - 1;
		} else if (in_class && *p == '\\') {
			if (p[1] != '\\') {
				snprintf(err, errlen, "inside [...] a backslash is only allowed as \\\\");
				buf_free(&b);
				return NULL;
			}
			buf_append(&b, p, 2);
			p++;
		} else {
			in_class &= *p != ']';
			buf_append(&b, p, 1);
		}
	}
	buf_append(&b, "", 1);
	return (char *)b.data;
}

static int
pattern_compile(const char *pat, regex_t *re, char *err, size_t errlen)
{
	locale_t loc = utf8_locale();
	if (loc == (locale_t)0) {
		snprintf(err, errlen, "patterns need the C.UTF-8 locale, which this system lacks");
		return -1;
	}
	char *ere = translate(pat, err, errlen);
	if (ere == NULL)
		return -1;
	locale_t old = uselocale(loc);
	int rc = regcomp(re, ere, REG_EXTENDED | REG_NOSUB);
	if (rc != 0) {
		char why[128];
		regerror(rc, re, why, sizeof(why));
		snprintf(err, errlen, "does not compile: %s", why);
	}
	uselocale(old);
	free(ere);
	return rc == 0 ? 0 : -1;
}

static bool
pattern_matches(const char *pat, const char *s)
{
	regex_t re;
	char err[256];
	if (pattern_compile(pat, &re, err, sizeof(err)) < 0)
		return false;	/* checked at load: cannot happen unless the locale went */
	locale_t old = uselocale(utf8_locale());
	bool ok = regexec(&re, s, 0, NULL, 0) == 0;
	uselocale(old);
	regfree(&re);
	return ok;
}

/* ---- the keywords --------------------------------------------------------------- */

static const char *const type_names[] = { "string", "integer", "number", "boolean",
	"array", "object", "null" };

static bool
has_type(const char *t, const json_t *v)
{
	if (!strcmp(t, "string")) return json_is_string(v);
	if (!strcmp(t, "integer")) return json_is_integer(v) ||
	    (json_is_real(v) && json_real_value(v) == (double)(long long)json_real_value(v));
	if (!strcmp(t, "number")) return json_is_number(v);
	if (!strcmp(t, "boolean")) return json_is_boolean(v);
	if (!strcmp(t, "array")) return json_is_array(v);
	if (!strcmp(t, "object")) return json_is_object(v);
	return json_is_null(v);
}

static size_t
utf8_chars(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xc0) != 0x80;
	return n;
}

static int check_schema(const json_t *s, struct cctx *c);
static int validate_value(const json_t *schema, const json_t *v, struct vctx *c);

static int
check_type(const json_t *v, struct cctx *c)
{
	json_t *one = json_is_array(v) ? NULL : (json_t *)v, *t;
	size_t i, k;
	json_array_foreach(json_is_array(v) ? v : NULL, i, t)
		if (!json_is_string(t))
			return cfail(c, "type must name types");
	if (json_is_array(v) && json_array_size(v) == 0)
		return cfail(c, "type must name at least one type");
	for (i = 0; i < (one ? 1 : json_array_size(v)); i++) {
		const char *name = json_string_value(one ? one : json_array_get(v, i));
		for (k = 0; name && k < ARRAY_LEN(type_names) && strcmp(name, type_names[k]); k++)
			;
		if (name == NULL || k == ARRAY_LEN(type_names))
			return cfail(c, "type must be string, integer, number, boolean, array, "
			    "object or null%s%s", name ? ", not " : "", name ? name : "");
	}
	return 0;
}

static int
apply_type(const json_t *kw, const json_t *schema, const json_t *v, struct vctx *c)
{
	char names[128] = "";
	size_t i;
	json_t *t;
	if (json_is_string(kw) && has_type(json_string_value(kw), v))
		return 0;
	json_array_foreach(json_is_array(kw) ? kw : NULL, i, t)
		if (has_type(json_string_value(t), v))
			return 0;
	json_array_foreach(json_is_array(kw) ? kw : NULL, i, t)
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
		    i ? " or " : "", json_string_value(t));
	return vfail(c, "must be of type %s", json_is_string(kw) ? json_string_value(kw) : names);
}

static int
check_enum(const json_t *v, struct cctx *c)
{
	return json_is_array(v) && json_array_size(v) > 0 ? 0 :
	    cfail(c, "enum must be a list of the allowed values");
}

static int
apply_enum(const json_t *kw, const json_t *schema, const json_t *v, struct vctx *c)
{
	size_t i;
	json_t *e;
	json_array_foreach(kw, i, e)
		if (json_equal(e, (json_t *)v))
			return 0;
	return vfail(c, "is not one of the allowed values");
}

static int
check_pattern(const json_t *v, struct cctx *c)
{
	regex_t re;
	char why[300];
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return cfail(c, "pattern must be a regular expression (text)");
	if (pattern_compile(json_string_value(v), &re, why, sizeof(why)) < 0)
		return cfail(c, "pattern %s: %s", json_string_value(v), why);
	regfree(&re);
	return 0;
}

static int
apply_pattern(const json_t *kw, const json_t *schema, const json_t *v, struct vctx *c)
{
	if (!json_is_string(v) || pattern_matches(json_string_value(kw), json_string_value(v)))
		return 0;
	return vfail(c, "does not match the pattern %s", json_string_value(kw));
}

static int
check_count(const json_t *v, struct cctx *c)
{
	return json_is_integer(v) && json_integer_value(v) >= 0 ? 0 :
	    cfail(c, "must be a whole number, 0 or more");
}

static int
apply_length(const json_t *kw, const json_t *v, struct vctx *c, bool min)
{
	if (!json_is_string(v))
		return 0;
	size_t n = utf8_chars(json_string_value(v), json_string_length(v));
	json_int_t bound = json_integer_value(kw);
	if (min ? (json_int_t)n >= bound : (json_int_t)n <= bound)
		return 0;
	return vfail(c, "is %s than %lld characters", min ? "shorter" : "longer", (long long)bound);
}

static int
apply_min_length(const json_t *kw, const json_t *schema, const json_t *v, struct vctx *c)
{
	return apply_length(kw, v, c, true);
}

static int
apply_max_length(const json_t *kw, const json_t *schema, const json_t *v, struct vctx *c)
{
	return apply_length(kw, v, c, false);
}

static int
check_number(const json_t *v, struct cctx *c)
{
	return json_is_number(v) ? 0 : cfail(c, "must be a number");
}

static int
apply_bound(const json_t *kw, const json_t *v, struct vctx *c, bool min)
{
	if (!json_is_number(v))
		return 0;
	double x = json_number_value(v), b = json_number_value(kw);
	if (min ? x >= b : x <= b)
		return 0;
	return vfail(c, "must be at %s %.17g", min ? "least" : "most", b);
}

static int
apply_minimum(const json_t *kw, const json_t *schema, const json_t *v, struct vctx *c)
{
	return apply_bound(kw, v, c, true);
}

static int
apply_maximum(const json_t *kw, const json_t *schema, const json_t *v, struct vctx *c)
{
	return apply_bound(kw, v, c, false);
}

static int
check_properties(const json_t *v, struct cctx *c)
{
	const char *k;
	json_t *s;
	if (!json_is_object(v))
		return cfail(c, "properties must map each argument to its schema");
	size_t len = strlen(c->at);
	json_object_foreach((json_t *)v, k, s) {
		snprintf(c->at + len, sizeof(c->at) - len, "/%s", k);
		if (check_schema(s, c) < 0)
			return -1;
	}
	c->at[len] = '\0';
	return 0;
}

/* The argument path of key k inside the object at c->path. */
static void
push_key(struct vctx *c, const char *k, char *saved, size_t len)
{
	snprintf(saved, len, "%s", c->path);
	size_t n = strlen(c->path);
	snprintf(c->path + n, sizeof(c->path) - n, "%s%s", n ? "." : "", k);
}

static int
apply_properties(const json_t *kw, const json_t *schema, const json_t *v, struct vctx *c)
{
	const char *k;
	json_t *s;
	char saved[256];
	if (!json_is_object(v))
		return 0;
	json_object_foreach((json_t *)kw, k, s) {
		const json_t *arg = json_object_get(v, k);
		if (arg == NULL)
			continue;
		push_key(c, k, saved, sizeof(saved));
		int rc = validate_value(s, arg, c);
		snprintf(c->path, sizeof(c->path), "%s", saved);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int
check_required(const json_t *v, struct cctx *c)
{
	size_t i;
	json_t *n;
	if (!json_is_array(v))
		return cfail(c, "required must be a list of argument names");
	json_array_foreach(v, i, n)
		if (!json_is_string(n))
			return cfail(c, "required must be a list of argument names");
	return 0;
}

static int
apply_required(const json_t *kw, const json_t *schema, const json_t *v, struct vctx *c)
{
	size_t i;
	json_t *n;
	if (!json_is_object(v))
		return 0;
	json_array_foreach(kw, i, n)
		if (json_object_get(v, json_string_value(n)) == NULL) {
			snprintf(c->err, c->errlen, "missing argument \"%s%s%s\"", c->path,
			    *c->path ? "." : "", json_string_value(n));
			return -1;
		}
	return 0;
}

static int
check_additional(const json_t *v, struct cctx *c)
{
	return json_is_boolean(v) ? 0 :
	    cfail(c, "additionalProperties must be true or false (a schema there is not enforced)");
}

static int
apply_additional(const json_t *kw, const json_t *schema, const json_t *v, struct vctx *c)
{
	const char *k;
	json_t *x;
	if (!json_is_object(v) || json_is_true(kw))
		return 0;
	json_object_foreach((json_t *)v, k, x)
		if (json_object_get(json_object_get(schema, "properties"), k) == NULL) {
			snprintf(c->err, c->errlen, "unknown argument \"%s%s%s\"", c->path,
			    *c->path ? "." : "", k);
			return -1;
		}
	return 0;
}

static int
check_items(const json_t *v, struct cctx *c)
{
	size_t len = strlen(c->at);
	if (!json_is_object(v))
		return cfail(c, "items must be one schema for every item");
	int rc = check_schema(v, c);
	if (rc == 0)
		c->at[len] = '\0';
	return rc;
}

static int
apply_items(const json_t *kw, const json_t *schema, const json_t *v, struct vctx *c)
{
	size_t i, len = strlen(c->path);
	json_t *item;
	if (!json_is_array(v))
		return 0;
	json_array_foreach(v, i, item) {
		snprintf(c->path + len, sizeof(c->path) - len, "[%zu]", i);
		if (validate_value(kw, item, c) < 0)
			return -1;
	}
	c->path[len] = '\0';
	return 0;
}

static int
check_text(const json_t *v, struct cctx *c)
{
	return json_is_string(v) ? 0 : cfail(c, "must be text");
}

static int
check_list(const json_t *v, struct cctx *c)
{
	return json_is_array(v) ? 0 : cfail(c, "must be a list");
}

typedef int (*apply_fn)(const json_t *kw, const json_t *schema, const json_t *v,
    struct vctx *c);

static const struct keyword {
	const char *name;
	int (*check)(const json_t *v, struct cctx *c);   /* at load; NULL: anything */
	apply_fn apply;                                  /* at run time; NULL: annotation */
} keywords[] = {
	{ "type", check_type, apply_type },
	{ "enum", check_enum, apply_enum },
	{ "pattern", check_pattern, apply_pattern },
	{ "minLength", check_count, apply_min_length },
	{ "maxLength", check_count, apply_max_length },
	{ "minimum", check_number, apply_minimum },
	{ "maximum", check_number, apply_maximum },
	{ "properties", check_properties, apply_properties },
	{ "required", check_required, apply_required },
	{ "additionalProperties", check_additional, apply_additional },
	{ "items", check_items, apply_items },
	{ "description", check_text, NULL },
	{ "title", check_text, NULL },
	{ "default", NULL, NULL },
	{ "examples", check_list, NULL },
	{ "$comment", check_text, NULL },
	{ "$schema", check_text, NULL },
};

static const struct keyword *
keyword_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(keywords); i++)
		if (!strcmp(keywords[i].name, name))
			return &keywords[i];
	return NULL;
}

/* min <= max for each pair a schema gives, or it accepts nothing. */
static int
check_pairs(const json_t *s, struct cctx *c)
{
	static const char *const pairs[][2] = { { "minLength", "maxLength" },
		{ "minimum", "maximum" } };
	for (size_t i = 0; i < ARRAY_LEN(pairs); i++) {
		const json_t *lo = json_object_get(s, pairs[i][0]), *hi = json_object_get(s, pairs[i][1]);
		if (lo && hi && json_number_value(lo) > json_number_value(hi)) {
			snprintf(c->at + strlen(c->at), sizeof(c->at) - strlen(c->at), "/%s", pairs[i][0]);
			return cfail(c, "%s is above %s: nothing would be accepted", pairs[i][0],
			    pairs[i][1]);
		}
	}
	return 0;
}

static int
check_schema(const json_t *s, struct cctx *c)
{
	const char *k;
	json_t *v;
	size_t len = strlen(c->at);
	if (!json_is_object(s))
		return cfail(c, "a schema must be a mapping of keywords");
	json_object_foreach((json_t *)s, k, v) {
		const struct keyword *kw = keyword_find(k);
		snprintf(c->at + len, sizeof(c->at) - len, "/%s", k);
		if (kw == NULL)
			return cfail(c, "keyword %s is not enforced for command tools (enforced: "
			    "type, enum, pattern, minLength, maxLength, minimum, maximum, "
			    "properties, required, additionalProperties, items)", k);
		if (kw->check && kw->check(v, c) < 0)
			return -1;
		c->at[len] = '\0';
	}
	return check_pairs(s, c);
}

int
argschema_check(const json_t *schema, char *err, size_t errlen, char *at, size_t atlen)
{
	struct cctx c = { .err = err, .errlen = errlen };
	const json_t *type = json_object_get(schema, "type");
	int rc = check_schema(schema, &c);
	if (rc == 0 && type && strcmp(json_string_value(type) ?: "", "object")) {
		snprintf(c.at, sizeof(c.at), "/type");
		rc = cfail(&c, "a tool's arguments are an object: type must be object");
	}
	snprintf(at, atlen, "%s", c.at);
	return rc;
}

static int
validate_value(const json_t *schema, const json_t *v, struct vctx *c)
{
	if (json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v))
		return vfail(c, "contains a NUL byte");
	for (size_t i = 0; i < ARRAY_LEN(keywords); i++) {
		const json_t *kw = json_object_get(schema, keywords[i].name);
		if (kw && keywords[i].apply && keywords[i].apply(kw, schema, v, c) < 0)
			return -1;
	}
	return 0;
}

int
argschema_validate(const json_t *schema, const json_t *args, char *err, size_t errlen)
{
	struct vctx c = { .err = err, .errlen = errlen };
	if (!json_is_object(args)) {
		snprintf(err, errlen, "arguments must be an object");
		return -1;
	}
	return validate_value(schema, args, &c);
}
