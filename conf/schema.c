/*
 * schema: the walker (see schema.h).  Keys are visited in file order, so
 * errors come out in the order a user reads the file; rows the file does
 * not name are then filled from their defaults, converted by the same code
 * as a written value (a default cannot disagree with its own bounds
 * without the example config failing its test).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/limits.h"
#include "common/util.h"
#include "conf/schema.h"

static char *
vformat_at(struct loader *L, const struct ynode *n, const char *tag, const char *fmt, va_list ap)
{
	char msg[768];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	const char *ptr = n && n->pointer ? n->pointer : "";
	size_t len = strlen(L->file ? L->file : ptr) + strlen(msg) + 48;
	char *line = xmalloc(len);
	if (L->file == NULL)	/* a JSON body: where is its pointer (none: the whole) */
		snprintf(line, len, "%s%s%s%s", ptr, *ptr ? ": " : "", tag, msg);
	else
		snprintf(line, len, "%s:%d:%d: %s%s", L->file, n ? n->line : 1, n ? n->col : 1,
		    tag, msg);
	return line;
}

static void
push_msg(char ***list, size_t *count, char *line)
{
	*list = xrealloc(*list, (*count + 1) * sizeof(char *));
	(*list)[(*count)++] = line;
}

void
err_at(struct loader *L, const struct ynode *n, const char *fmt, ...)
{
	va_list ap;
	if (L->file == NULL) {
		size_t count = L->errs->n;
		push_msg(&L->errs->pointers, &count, xstrdup(n && n->pointer ? n->pointer : ""));
	}
	va_start(ap, fmt);
	push_msg(&L->errs->msgs, &L->errs->n, vformat_at(L, n, "", fmt, ap));
	va_end(ap);
}

void
warn_at(struct loader *L, const struct ynode *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	push_msg(&L->errs->warnings, &L->errs->nwarnings, vformat_at(L, n, "warning: ", fmt, ap));
	va_end(ap);
}

/* ---- paths ------------------------------------------------------------------ */

/* A path too long to print is cut, never an error. */
size_t
walk_push(struct walk *w, const char *key)
{
	size_t len = strlen(w->path);
	snprintf(w->path + len, sizeof(w->path) - len, "%s%s", len ? "." : "", key);
	return len;
}

size_t
walk_push_index(struct walk *w, size_t i)
{
	size_t len = strlen(w->path);
	snprintf(w->path + len, sizeof(w->path) - len, "[%zu]", i);
	return len;
}

void
walk_pop(struct walk *w, size_t len)
{
	w->path[len] = '\0';
}

/* ---- scalars ------------------------------------------------------------------ */

static bool
parse_int(const char *s, long long *v)
{
	char *end;
	errno = 0;
	*v = strtoll(s, &end, 10);
	return *s && *end == '\0' && errno == 0;
}

static bool
parse_number(const char *s, double *v)
{
	char *end;
	errno = 0;
	*v = strtod(s, &end);
	/* strtod also takes "inf", "nan" and hex: a config number is decimal */
	return *s && *end == '\0' && errno == 0 && isfinite(*v) && !strpbrk(s, "xXnNiI");
}

static int
bool_word(const char *s)
{
	static const char *yes[] = { "true", "True", "TRUE", "yes", "Yes", "on", "On" };
	static const char *no[] = { "false", "False", "FALSE", "no", "No", "off", "Off" };
	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (!strcmp(s, yes[i]))
			return 1;
		if (!strcmp(s, no[i]))
			return 0;
	}
	return -1;
}

bool
env_name_ok(const char *s)
{
	if (*s == '\0' || isdigit((unsigned char)*s))
		return false;
	for (const char *p = s; *p; p++)
		if (*p != '_' && !isalnum((unsigned char)*p))
			return false;
	return true;
}

bool
want_scalar(struct walk *w, const struct ynode *n)
{
	if (n->kind == Y_SCALAR)
		return true;
	err_at(w->L, n, "%s must be a single value, not a %s", w->path,
	    n->kind == Y_MAP ? "mapping" : "list");
	return false;
}

static json_t *
text_json(struct walk *w, const struct ynode *n)
{
	json_t *s = json_stringn(n->value, n->len);
	if (s == NULL)	/* libyaml checked the file; an interpolated variable may not be */
		err_at(w->L, n, "%s is not valid UTF-8 text", w->path);
	return s;
}

void
fmt_duration(int64_t ms, char *out, size_t len)
{
	static const struct { int64_t ms; const char *unit; } units[] = {
		{ 86400000, "d" }, { 3600000, "h" }, { 60000, "m" }, { 1000, "s" },
	};
	for (size_t i = 0; i < ARRAY_LEN(units); i++)
		if (ms >= units[i].ms && ms % units[i].ms == 0) {
			snprintf(out, len, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
			return;
		}
	snprintf(out, len, "%lldms", (long long)ms);
}

static json_t *
conv_str(struct walk *w, const struct ynode *n, const struct field *f)
{
	long long iv;
	double dv;
	if (!want_scalar(w, n))
		return NULL;
	if (n->is_null) {	/* an empty item of a list: the empty text */
		static const struct ynode empty = { .kind = Y_SCALAR, .value = "" };
		struct ynode e = empty;
		e.line = n->line;
		e.col = n->col;
		e.pointer = n->pointer;
		return conv_str(w, &e, f);
	}
	if ((f->flags & F_TEXT) && !n->quoted && (parse_int(n->value, &iv) ||
	    parse_number(n->value, &dv) || bool_word(n->value) >= 0)) {
		err_at(w->L, n, "%s must be text, not %s (quote it if you mean the text)",
		    w->path, n->value);
		return NULL;
	}
	if ((int64_t)n->len < f->min) {
		err_at(w->L, n, "%s must not be empty", w->path);
		return NULL;
	}
	if (f->max > 0 && (int64_t)n->len > f->max) {
		err_at(w->L, n, "%s must be at most %lld bytes long", w->path, (long long)f->max);
		return NULL;
	}
	json_t *v = text_json(w, n);
	if (v && f->conv) {
		json_t *checked = f->conv(w, n, f);
		json_decref(v);
		v = checked;
	}
	return v;
}

static json_t *
conv_int(struct walk *w, const struct ynode *n, const struct field *f)
{
	long long v;
	if (!want_scalar(w, n))
		return NULL;
	if (n->quoted || !parse_int(n->value, &v)) {
		err_at(w->L, n, "%s must be an integer, not \"%s\"", w->path, n->value);
		return NULL;
	}
	if (v < f->min || v > f->max) {
		err_at(w->L, n, "%s must be between %lld and %lld", w->path, (long long)f->min,
		    (long long)f->max);
		return NULL;
	}
	return json_integer(v);
}

static json_t *
conv_num(struct walk *w, const struct ynode *n, const struct field *f)
{
	double v;
	if (!want_scalar(w, n))
		return NULL;
	if (n->quoted || !parse_number(n->value, &v)) {
		err_at(w->L, n, "%s must be a number, not \"%s\"", w->path, n->value);
		return NULL;
	}
	if (v < f->fmin || v > f->fmax) {
		err_at(w->L, n, "%s must be between %g and %g", w->path, f->fmin, f->fmax);
		return NULL;
	}
	return json_real(v);
}

static json_t *
conv_bool(struct walk *w, const struct ynode *n, const struct field *f)
{
	if (!want_scalar(w, n))
		return NULL;
	int b = n->quoted ? -1 : bool_word(n->value);
	if (b < 0) {
		err_at(w->L, n, "%s must be true or false, not \"%s\"", w->path, n->value);
		return NULL;
	}
	return json_boolean(b);
}

static json_t *
conv_duration(struct walk *w, const struct ynode *n, const struct field *f)
{
	int64_t ms;
	char bound[32];
	if (!want_scalar(w, n))
		return NULL;
	if (parse_duration(n->value, &ms) < 0) {
		err_at(w->L, n, "%s: bad duration \"%s\" (use seconds or e.g. 90s, 5m, 1h30m)",
		    w->path, n->value);
		return NULL;
	}
	if (ms < f->min || ms > f->max) {
		fmt_duration(ms < f->min ? f->min : f->max, bound, sizeof(bound));
		err_at(w->L, n, "%s must be at %s %s, not %s", w->path,
		    ms < f->min ? "least" : "most", bound, n->value);
		return NULL;
	}
	return json_integer(ms);
}

static json_t *
conv_size(struct walk *w, const struct ynode *n, const struct field *f)
{
	int64_t bytes;
	if (!want_scalar(w, n))
		return NULL;
	if (parse_size(n->value, &bytes) < 0) {
		err_at(w->L, n, "%s: bad size \"%s\" (use bytes or e.g. 64k, 512M, 2G)",
		    w->path, n->value);
		return NULL;
	}
	if (bytes < f->min || bytes > f->max) {
		err_at(w->L, n, "%s must be between %lld and %lld bytes", w->path,
		    (long long)f->min, (long long)f->max);
		return NULL;
	}
	return json_integer(bytes);
}

static json_t *
conv_choice(struct walk *w, const struct ynode *n, const struct field *f)
{
	if (!want_scalar(w, n))
		return NULL;
	for (int i = 0; f->choices[i]; i++)
		if (!strcmp(n->value, f->choices[i]))
			return json_string(f->choices[i]);
	char list[512] = "";
	for (int i = 0; f->choices[i]; i++) {
		strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
		strncat(list, f->choices[i], sizeof(list) - strlen(list) - 1);
	}
	err_at(w->L, n, "%s must be one of %s, not \"%s\"", w->path, list, n->value);
	return NULL;
}

/* ---- collections ----------------------------------------------------------------- */

void
check_duplicates(struct loader *L, const struct ynode *n, const char *path)
{
	if (n->kind != Y_MAP)
		return;
	for (size_t i = 0; i < n->n; i++)
		for (size_t j = 0; j < i; j++)
			if (!strcmp(n->keys[i]->value, n->keys[j]->value)) {
				err_at(L, n->keys[i], "duplicate key \"%s\" in %s (first at line %d)",
				    n->keys[i]->value, path, n->keys[j]->line);
				break;
			}
}

static bool
is_null(const struct ynode *n)
{
	return n->kind == Y_SCALAR && n->is_null;
}

static bool
want_kind(struct walk *w, const struct ynode *n, enum ynode_kind k)
{
	if (n->kind == k)
		return true;
	err_at(w->L, n, "%s must be a %s", w->path, k == Y_MAP ? "mapping" : "list");
	return false;
}

json_t *
conv_any(struct walk *w, const struct ynode *n, int level)
{
	long long iv;
	double dv;
	if (n->kind != Y_SCALAR && level > VALUE_DEPTH_MAX) {
		err_at(w->L, n, "%s nests deeper than %d levels (the bound on every value "
		    "agentd passes on)", w->path, VALUE_DEPTH_MAX);
		return NULL;
	}
	if (n->kind != Y_SCALAR) {
		json_t *c = n->kind == Y_MAP ? json_object() : json_array();
		for (size_t i = 0; i < n->n; i++) {
			json_t *v = conv_any(w, n->vals[i], level + 1);
			if (v == NULL) {
				json_decref(c);
				return NULL;
			}
			if (n->kind == Y_SEQ)
				json_array_append_new(c, v);
			else if (json_object_set_new(c, n->keys[i]->value, v) < 0) {
				err_at(w->L, n->keys[i], "%s: key is not valid UTF-8", w->path);
				json_decref(c);
				return NULL;
			}
		}
		return c;
	}
	if (n->quoted)
		return text_json(w, n);
	if (n->is_null)
		return json_null();
	int b = bool_word(n->value);
	/* on/off stay text here: a free-form value is data, not a switch */
	if (b >= 0 && strcasecmp(n->value, "on") && strcasecmp(n->value, "off"))
		return json_boolean(b);
	if (parse_int(n->value, &iv))
		return json_integer(iv);
	if (parse_number(n->value, &dv))
		return json_real(dv);
	return text_json(w, n);
}

json_t *
conv_strmap(struct walk *w, const struct ynode *n, const struct field *f)
{
	if (!want_kind(w, n, Y_MAP))
		return NULL;
	check_duplicates(w->L, n, w->path);
	json_t *o = json_object();
	for (size_t i = 0; i < n->n; i++) {
		size_t mark = walk_push(w, n->keys[i]->value);
		json_t *v = want_scalar(w, n->vals[i]) ?
		    (is_null(n->vals[i]) ? json_string("") : text_json(w, n->vals[i])) : NULL;
		if (v)
			json_object_set_new(o, n->keys[i]->value, v);
		walk_pop(w, mark);
	}
	return o;
}

static json_t *
conv_list(struct walk *w, const struct ynode *n, const struct field *f)
{
	if (!want_kind(w, n, Y_SEQ))
		return NULL;
	if ((int64_t)n->n < f->min || (f->max > 0 && (int64_t)n->n > f->max)) {
		err_at(w->L, n, "%s must have %s %lld item%s", w->path,
		    (int64_t)n->n < f->min ? "at least" : "at most",
		    (long long)((int64_t)n->n < f->min ? f->min : f->max),
		    ((int64_t)n->n < f->min ? f->min : f->max) == 1 ? "" : "s");
		return NULL;
	}
	json_t *a = json_array();
	w->level++;
	for (size_t i = 0; i < n->n; i++) {
		size_t mark = walk_push_index(w, i);
		json_t *v = walk_field(w, n->vals[i], f->item);
		if (v)
			json_array_append_new(a, v);
		walk_pop(w, mark);
	}
	w->level--;
	return a;
}

json_t *
walk_field(struct walk *w, const struct ynode *n, const struct field *f)
{
	json_t *v = NULL;
	void *base = w->base;

	switch (f->type) {
	case V_STR: return conv_str(w, n, f);
	case V_INT: return conv_int(w, n, f);
	case V_NUM: return conv_num(w, n, f);
	case V_BOOL: return conv_bool(w, n, f);
	case V_DURATION: return conv_duration(w, n, f);
	case V_SIZE: return conv_size(w, n, f);
	case V_CHOICE: return conv_choice(w, n, f);
	case V_LIST: return conv_list(w, n, f);
	case V_STRMAP: return conv_strmap(w, n, f);
	case V_CUSTOM: return f->conv(w, n, f);
	case V_ANY:
		if ((f->flags & F_MAPPING) && !want_kind(w, n, Y_MAP))
			return NULL;
		return conv_any(w, n, w->level + 1);
	case V_MAP:
		w->base = f->ctype != C_STRUCT || base == NULL ? NULL : (char *)base + f->off;
		w->level++;
		v = walk_table(w, n, f->sub);
		w->level--;
		w->base = base;
		return v;
	}
	return NULL;
}

/* ---- tables -------------------------------------------------------------------- */

static const struct field *
find_row(const struct table *t, const char *key)
{
	for (const struct field *f = t->fields; f->key; f++)
		if (!strcmp(f->key, key))
			return f;
	return NULL;
}

static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[64];
	if (la >= 63 || lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static void
unknown_key(struct walk *w, const struct ynode *key, const struct table *t)
{
	const char *best = NULL;
	size_t bestd = 3;
	for (const struct field *f = t->fields; f->key; f++) {
		size_t d = edit_distance(key->value, f->key);
		if (d < bestd) {
			bestd = d;
			best = f->key;
		}
	}
	if (best)
		err_at(w->L, key, "unknown key \"%s\" in %s (did you mean %s?)", key->value,
		    w->path, best);
	else
		err_at(w->L, key, "unknown key \"%s\" in %s", key->value, w->path);
}

static const char *
out_name(const struct field *f, char *buf, size_t len)
{
	if (f->out)
		return f->out;
	if (f->type != V_DURATION)
		return f->key;
	snprintf(buf, len, "%s_ms", f->key);	/* durations travel as milliseconds */
	return buf;
}

/* The value a row has when the file does not give one. */
static json_t *
default_of(struct walk *w, const struct ynode *at, const struct field *f)
{
	struct ynode d = { .line = at->line, .col = at->col, .pointer = at->pointer };
	/* "{}" and "[]" stand for an empty collection of their kind */
	d.kind = !strcmp(f->dflt, "{}") ? Y_MAP : !strcmp(f->dflt, "[]") ? Y_SEQ : Y_SCALAR;
	d.value = (char *)f->dflt;
	d.len = strlen(f->dflt);
	return walk_field(w, &d, f);
}

static void
store(void *base, const struct field *f, const json_t *v)
{
	char *p = (char *)base + f->off;
	switch (f->ctype) {
	case C_STR:
		free(*(char **)p);
		*(char **)p = json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
		break;
	case C_INT: *(int *)p = (int)json_integer_value(v); break;
	case C_I64: *(int64_t *)p = json_integer_value(v); break;
	case C_DOUBLE: *(double *)p = json_number_value(v); break;
	case C_BOOL:	/* a two-way choice is a bool too: its second name */
		*(bool *)p = json_is_true(v) || (f->choices && json_is_string(v) &&
		    strcmp(json_string_value(v), f->choices[0]) != 0);
		break;
	case C_ENUM:
		for (int i = 0; f->choices[i]; i++)
			if (!strcmp(f->choices[i], json_string_value(v)))
				*(int *)p = i;
		break;
	case C_JSON:
		json_decref(*(json_t **)p);
		*(json_t **)p = json_incref((json_t *)v);
		break;
	case C_NONE:
	case C_STRUCT:
		break;
	}
}

json_t *
walk_table(struct walk *w, const struct ynode *n, const struct table *t)
{
	const struct field *f;
	char name[96];
	bool shorthand = t->shorthand && n->kind == Y_SCALAR && !is_null(n);

	if (!shorthand && !is_null(n) && !want_kind(w, n, Y_MAP))
		return NULL;
	json_t *obj = json_object();
	if (shorthand) {
		f = find_row(t, t->shorthand);
		json_t *v = walk_field(w, n, f);
		if (v)
			json_object_set_new(obj, out_name(f, name, sizeof(name)), v);
	} else if (n->kind == Y_MAP) {
		check_duplicates(w->L, n, w->path);
		for (size_t i = 0; i < n->n; i++) {
			const struct ynode *key = n->keys[i], *val = n->vals[i];
			if ((f = find_row(t, key->value)) == NULL) {
				unknown_key(w, key, t);
				continue;
			}
			const char *out = out_name(f, name, sizeof(name));
			if (is_null(val) || json_object_get(obj, out))
				continue;	/* null: as if absent; a duplicate: reported */
			size_t mark = walk_push(w, f->key);
			json_t *v = walk_field(w, val, f);
			walk_pop(w, mark);
			if (v)
				json_object_set_new(obj, out, v);
		}
	}
	for (f = t->fields; f->key; f++) {
		const char *out = out_name(f, name, sizeof(name));
		const struct ynode *given = n->kind == Y_MAP ? ymap_get(n, f->key) :
		    shorthand && !strcmp(f->key, t->shorthand) ? n : NULL;
		if (json_object_get(obj, out) || (given && !is_null(given)))
			continue;	/* set, or given and refused */
		size_t mark = walk_push(w, f->key);
		if (f->flags & F_REQUIRED)
			err_at(w->L, given ? given : n, "%s is required", w->path);
		else if (f->dflt) {
			json_t *v = default_of(w, n, f);
			if (v)
				json_object_set_new(obj, out, v);
		}
		walk_pop(w, mark);
	}
	for (f = t->fields; f->key && w->base; f++) {
		json_t *v = json_object_get(obj, out_name(f, name, sizeof(name)));
		if (v)
			store(w->base, f, v);
	}
	if (t->finish)
		t->finish(w, n, obj);
	return obj;
}
