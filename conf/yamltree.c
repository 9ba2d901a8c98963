/*
 * yamltree: libyaml events -> struct ynode (see yamltree.h).  A stack of
 * open collections; each new node attaches to the collection on top.
 *
 * An alias becomes a copy of its anchored node, so the tree stays a tree
 * (every node one owner, freed once; every later pass a plain recursion).
 * libyaml's own document loader (yaml_parser_load) would give an alias the
 * very node of its anchor instead -- no copy -- but that only moves the
 * cost: the schema walk and the JSON every agent's spec is built from
 * (conf/config.c) visit a shared node once per reference, so a "billion
 * laughs" file still expands to gigabytes, in time and in the spec.  The
 * expansion itself must be bounded, and it is, here, where it happens and
 * the alias's position is known: the tree may hold CONFIG_NODES_MAX nodes,
 * those every alias adds included, and CONFIG_ALIASES_MAX aliases
 * (common/limits.h).  Past either the document is refused, naming the
 * alias, before the copy is made -- a 714-byte bomb fails after a few
 * thousand nodes, not after gigabytes.
 *
 * From JSON, no bound is needed here: the value was measured where it
 * entered (depth and size, the command's arg row), and a JSON tree's
 * nodes are its values, one each.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "common/buf.h"
#include "common/jsonmp.h"
#include "common/limits.h"
#include "common/util.h"
#include "conf/yamltree.h"

#define MAX_DEPTH 64	/* the parser's stack: beyond any value config.c accepts */

struct builder {
	struct ynode *stack[MAX_DEPTH];
	int depth;
	struct ynode *root;
	struct ynode *pending[MAX_DEPTH]; /* map on stack[i]: its key awaiting a value */
	struct ynode **anchors;
	size_t nanchors, anchors_cap;
	size_t nodes, aliases;
	char *err;
	size_t errlen;
};

static struct ynode *
node_new(struct builder *b, enum ynode_kind k, yaml_mark_t m)
{
	struct ynode *n = xcalloc(1, sizeof(*n));
	b->nodes++;
	n->kind = k;
	n->line = (int)m.line + 1;
	n->col = (int)m.column + 1;
	return n;
}

void
ytree_free(struct ynode *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->n; i++) {
		if (n->keys)
			ytree_free(n->keys[i]);
		ytree_free(n->vals[i]);
	}
	free(n->keys);
	free(n->vals);
	free(n->value);
	free(n->anchor);
	free(n->pointer);
	free(n);
}

static void push_child(struct ynode *parent, struct ynode *key, struct ynode *val);

/* Aliases get their own copy, so every node has one owner. */
static struct ynode *
node_copy(const struct ynode *src)
{
	struct ynode *n = xcalloc(1, sizeof(*n));
	n->kind = src->kind;
	n->line = src->line;
	n->col = src->col;
	n->quoted = src->quoted;
	n->is_null = src->is_null;
	n->pointer = src->pointer ? xstrdup(src->pointer) : NULL;
	if (src->value) {
		n->value = xmalloc(src->len + 1);
		memcpy(n->value, src->value, src->len + 1);
		n->len = src->len;
	}
	for (size_t i = 0; i < src->n; i++)
		push_child(n, src->keys ? node_copy(src->keys[i]) : NULL, node_copy(src->vals[i]));
	return n;
}

static void
push_child(struct ynode *parent, struct ynode *key, struct ynode *val)
{
	if (parent->n == parent->cap) {
		parent->cap = parent->cap ? parent->cap * 2 : 8;
		parent->vals = xrealloc(parent->vals, parent->cap * sizeof(*parent->vals));
		if (parent->kind == Y_MAP)
			parent->keys = xrealloc(parent->keys, parent->cap * sizeof(*parent->keys));
	}
	if (parent->kind == Y_MAP)
		parent->keys[parent->n] = key;
	parent->vals[parent->n++] = val;
}

/* Attach n to the open collection; returns -1 on a structural error. */
static int
attach(struct builder *b, struct ynode *n)
{
	if (b->depth == 0) {
		if (b->root) {
			ytree_free(n);
			return -1;
		}
		b->root = n;
		return 0;
	}
	struct ynode *top = b->stack[b->depth - 1];
	if (top->kind == Y_SEQ) {
		push_child(top, NULL, n);
		return 0;
	}
	struct ynode **key = &b->pending[b->depth - 1];
	if (*key == NULL) {
		if (n->kind != Y_SCALAR) {
			snprintf(b->err, b->errlen, "%d:%d: a mapping key must be a plain value",
			    n->line, n->col);
			ytree_free(n);
			return -1;
		}
		*key = n;	/* owned by the builder until its value arrives */
		return 0;
	}
	push_child(top, *key, n);
	*key = NULL;
	return 0;
}

static void
remember_anchor(struct builder *b, struct ynode *n, const yaml_char_t *anchor)
{
	if (anchor == NULL)
		return;
	if (b->nanchors == b->anchors_cap) {
		b->anchors_cap = b->anchors_cap ? b->anchors_cap * 2 : 16;
		b->anchors = xrealloc(b->anchors, b->anchors_cap * sizeof(*b->anchors));
	}
	n->anchor = xstrdup((const char *)anchor);
	b->anchors[b->nanchors++] = n;
}

/* Nodes in n's subtree, counting stops once past limit. */
static size_t
subtree_nodes(const struct ynode *n, size_t limit)
{
	size_t total = 1;
	for (size_t i = 0; i < n->n && total <= limit; i++)
		total += (n->keys ? 1 : 0) + subtree_nodes(n->vals[i], limit - total);
	return total;
}

/* *name as a copy of its anchor (the latest of that name, as YAML says),
 * or NULL with the reason when there is none or the bounds say no. */
static struct ynode *
expand_alias(struct builder *b, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	size_t line = ev->start_mark.line + 1, col = ev->start_mark.column + 1;
	const struct ynode *target = NULL;

	for (size_t i = b->nanchors; i-- > 0 && target == NULL; )
		if (!strcmp(b->anchors[i]->anchor, name))
			target = b->anchors[i];
	if (target == NULL) {
		snprintf(b->err, b->errlen, "%zu:%zu: unknown alias *%s", line, col, name);
		return NULL;
	}
	for (int i = 0; i < b->depth; i++)
		if (b->stack[i] == target) {
			snprintf(b->err, b->errlen, "%zu:%zu: alias *%s is inside the node it "
			    "names (a recursive document)", line, col, name);
			return NULL;
		}
	size_t adds = subtree_nodes(target, CONFIG_NODES_MAX);
	if (++b->aliases > CONFIG_ALIASES_MAX || b->nodes + adds > CONFIG_NODES_MAX) {
		snprintf(b->err, b->errlen, "%zu:%zu: alias *%s: the document expands past "
		    "%u %s (an alias bomb?)", line, col, name,
		    b->aliases > CONFIG_ALIASES_MAX ? CONFIG_ALIASES_MAX : CONFIG_NODES_MAX,
		    b->aliases > CONFIG_ALIASES_MAX ? "aliases" : "nodes");
		return NULL;
	}
	b->nodes += adds;
	struct ynode *n = node_copy(target);
	n->line = (int)line;
	n->col = (int)col;
	return n;
}

static int
on_event(struct builder *b, yaml_event_t *ev)
{
	struct ynode *n;
	if (b->nodes >= CONFIG_NODES_MAX && (ev->type == YAML_SCALAR_EVENT ||
	    ev->type == YAML_SEQUENCE_START_EVENT || ev->type == YAML_MAPPING_START_EVENT)) {
		snprintf(b->err, b->errlen, "%zu:%zu: the document has more than %u nodes",
		    ev->start_mark.line + 1, ev->start_mark.column + 1, CONFIG_NODES_MAX);
		return -1;
	}
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		n = node_new(b, Y_SCALAR, ev->start_mark);
		n->len = ev->data.scalar.length;
		n->value = xmalloc(n->len + 1);
		memcpy(n->value, ev->data.scalar.value, n->len);
		n->value[n->len] = '\0';
		n->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
		    ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE ||
		    ev->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
		    ev->data.scalar.style == YAML_FOLDED_SCALAR_STYLE;
		n->is_null = !n->quoted && (n->len == 0 || !strcmp(n->value, "~") ||
		    !strcmp(n->value, "null") || !strcmp(n->value, "Null") || !strcmp(n->value, "NULL"));
		remember_anchor(b, n, ev->data.scalar.anchor);
		return attach(b, n);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (b->depth == MAX_DEPTH) {
			snprintf(b->err, b->errlen, "%zu:%zu: nesting deeper than %d",
			    ev->start_mark.line + 1, ev->start_mark.column + 1, MAX_DEPTH);
			return -1;
		}
		n = node_new(b, ev->type == YAML_SEQUENCE_START_EVENT ? Y_SEQ : Y_MAP,
		    ev->start_mark);
		remember_anchor(b, n, ev->type == YAML_SEQUENCE_START_EVENT ?
		    ev->data.sequence_start.anchor : ev->data.mapping_start.anchor);
		if (attach(b, n) < 0)
			return -1;
		b->pending[b->depth] = NULL;
		b->stack[b->depth++] = n;
		return 0;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		b->depth--;
		return 0;
	case YAML_ALIAS_EVENT:
		n = expand_alias(b, ev);
		return n ? attach(b, n) : -1;
	case YAML_DOCUMENT_START_EVENT:
		if (b->root) {
			snprintf(b->err, b->errlen, "%zu:%zu: only one YAML document is allowed",
			    ev->start_mark.line + 1, ev->start_mark.column + 1);
			return -1;
		}
		return 0;
	default:
		return 0;
	}
}

struct ynode *
ytree_parse(const char *text, size_t len, char *err, size_t errlen)
{
	yaml_parser_t p;
	yaml_event_t ev;
	struct builder b = { .err = err, .errlen = errlen };
	bool done = false;

	err[0] = '\0';
	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	while (!done) {
		if (!yaml_parser_parse(&p, &ev)) {
			if (p.context)
				snprintf(err, errlen, "%zu:%zu: %s %s (started at %zu:%zu)",
				    p.problem_mark.line + 1, p.problem_mark.column + 1,
				    p.problem ? p.problem : "syntax error", p.context,
				    p.context_mark.line + 1, p.context_mark.column + 1);
			else
				snprintf(err, errlen, "%zu:%zu: %s", p.problem_mark.line + 1,
				    p.problem_mark.column + 1, p.problem ? p.problem : "syntax error");
			goto fail;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		int rc = on_event(&b, &ev);
		yaml_event_delete(&ev);
		if (rc < 0) {
			if (err[0] == '\0')
				snprintf(err, errlen, "malformed document");
			goto fail;
		}
	}
	yaml_parser_delete(&p);
	free(b.anchors);
	if (b.root == NULL) {
		yaml_mark_t m = { 0, 0, 0 };
		b.root = node_new(&b, Y_MAP, m);
	}
	return b.root;
fail:
	yaml_parser_delete(&p);
	free(b.anchors);
	for (int i = 0; i < b.depth; i++)
		ytree_free(b.pending[i]);
	ytree_free(b.root);
	return NULL;
}

struct ynode *
ymap_get(const struct ynode *map, const char *key)
{
	if (map == NULL || map->kind != Y_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++)
		if (strcmp(map->keys[i]->value, key) == 0)
			return map->vals[i];
	return NULL;
}

/* ---- JSON ------------------------------------------------------------------------ */

static struct ynode *
json_scalar(const char *text, bool quoted, bool null, const char *pointer)
{
	struct ynode *n = xcalloc(1, sizeof(*n));
	n->kind = Y_SCALAR;
	n->value = xstrdup(text);
	n->len = strlen(text);
	n->quoted = quoted;
	n->is_null = null;
	n->pointer = xstrdup(pointer);
	return n;
}

/* pointer + "/" + token, its ~ and / escaped (RFC 6901). */
static char *
pointer_join(const char *pointer, const char *token)
{
	size_t len = strlen(pointer);
	char *p = xmalloc(len + 2 * strlen(token) + 2);
	char *o = p + len;
	memcpy(p, pointer, len);
	*o++ = '/';
	for (const char *t = token; *t; t++) {
		if (*t == '~' || *t == '/') {
			*o++ = '~';
			*o++ = *t == '~' ? '0' : '1';
		} else
			*o++ = *t;
	}
	*o = '\0';
	return p;
}

struct ynode *
ytree_from_json(const json_t *v, const char *pointer)
{
	char num[64];
	switch (json_typeof(v)) {
	case JSON_STRING: {
		struct ynode *n = json_scalar("", true, false, pointer);
		free(n->value);
		n->len = json_string_length(v);
		n->value = xmalloc(n->len + 1);
		memcpy(n->value, json_string_value(v), n->len + 1);
		return n;
	}
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return json_scalar(num, false, false, pointer);
	case JSON_REAL:
		snprintf(num, sizeof(num), "%.17g", json_real_value(v));
		return json_scalar(num, false, false, pointer);
	case JSON_TRUE:
	case JSON_FALSE:
		return json_scalar(json_is_true(v) ? "true" : "false", false, false, pointer);
	case JSON_NULL:
		return json_scalar("", false, true, pointer);
	case JSON_OBJECT:
	case JSON_ARRAY:
		break;
	}
	struct ynode *n = xcalloc(1, sizeof(*n));
	n->kind = json_is_object(v) ? Y_MAP : Y_SEQ;
	n->pointer = xstrdup(pointer);
	if (json_is_object(v)) {
		const char *k;
		json_t *item;
		json_object_foreach((json_t *)v, k, item) {
			char *p = pointer_join(pointer, k);
			push_child(n, json_scalar(k, true, false, p), ytree_from_json(item, p));
			free(p);
		}
	} else {
		size_t i;
		json_t *item;
		json_array_foreach(v, i, item) {
			snprintf(num, sizeof(num), "%zu", i);
			char *p = pointer_join(pointer, num);
			push_child(n, NULL, ytree_from_json(item, p));
			free(p);
		}
	}
	return n;
}

/* A plain scalar as YAML 1.1 types it, or NULL: text. */
static json_t *
plain_value(const struct ynode *n)
{
	static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "YES" };
	static const char *const no[] = { "false", "False", "FALSE", "no", "No", "NO" };
	char *end;
	if (n->is_null)
		return json_null();
	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (!strcmp(n->value, yes[i]))
			return json_true();
		if (!strcmp(n->value, no[i]))
			return json_false();
	}
	errno = 0;
	long long iv = strtoll(n->value, &end, 10);
	if (n->len && *end == '\0' && errno == 0)
		return json_integer(iv);
	double dv = strtod(n->value, &end);
	if (n->len && *end == '\0' && errno == 0 && isfinite(dv) && !strpbrk(n->value, "xXnNiI"))
		return json_real(dv);
	return NULL;
}

json_t *
ytree_to_json(const struct ynode *n, char *err, size_t errlen)
{
	json_t *v;
	if (n->kind == Y_SCALAR) {
		v = n->quoted ? NULL : plain_value(n);
		if (v == NULL && (v = json_stringn(n->value, n->len)) == NULL)
			snprintf(err, errlen, "%d:%d: not valid UTF-8 text", n->line, n->col);
		return v;
	}
	v = n->kind == Y_MAP ? json_object() : json_array();
	for (size_t i = 0; i < n->n; i++) {
		json_t *item = ytree_to_json(n->vals[i], err, errlen);
		if (item == NULL || (n->kind == Y_MAP ?
		    json_object_set_new(v, n->keys[i]->value, item) : json_array_append_new(v, item)) < 0) {
			if (item)
				snprintf(err, errlen, "%d:%d: a key is not valid UTF-8 text",
				    n->keys[i]->line, n->keys[i]->col);
			json_decref(v);
			return NULL;
		}
	}
	return v;
}

/* ---- YAML out ---------------------------------------------------------------------- */

static int
emit(yaml_emitter_t *e, yaml_event_t *ev)
{
	return yaml_emitter_emit(e, ev) ? 0 : -1;
}

/* kind: 'k' a key (plain where libyaml can), 's' a string (never plain,
 * where it could read back as another type; a block of lines literal),
 * 'p' a number, boolean or null (plain). */
static int
emit_scalar(yaml_emitter_t *e, const char *text, size_t len, char kind)
{
	yaml_event_t ev;
	yaml_scalar_style_t style = kind == 'p' ? YAML_PLAIN_SCALAR_STYLE :
	    kind == 's' && memchr(text, '\n', len) ? YAML_LITERAL_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE;
	yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)len,
	    kind != 's', kind != 'p', style);
	return emit(e, &ev);
}

static int
emit_json(yaml_emitter_t *e, const json_t *v)
{
	yaml_event_t ev;
	char *text;
	int rc;
	switch (json_typeof(v)) {
	case JSON_STRING:
		return emit_scalar(e, json_string_value(v), json_string_length(v), 's');
	case JSON_OBJECT: {
		const char *k;
		json_t *item;
		yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
		if (emit(e, &ev) < 0)
			return -1;
		json_object_foreach((json_t *)v, k, item)
			if (emit_scalar(e, k, strlen(k), 'k') < 0 || emit_json(e, item) < 0)
				return -1;
		yaml_mapping_end_event_initialize(&ev);
		return emit(e, &ev);
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *item;
		yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
		if (emit(e, &ev) < 0)
			return -1;
		json_array_foreach(v, i, item)
			if (emit_json(e, item) < 0)
				return -1;
		yaml_sequence_end_event_initialize(&ev);
		return emit(e, &ev);
	}
	default:
		text = json_is_null(v) ? xstrdup("null") : json_dumps_short(v, JSON_ENCODE_ANY);
		rc = text ? emit_scalar(e, text, strlen(text), 'p') : -1;
		free(text);
		return rc;
	}
}

static int
yaml_out(void *ctx, unsigned char *data, size_t size)
{
	buf_append(ctx, data, size);
	return 1;
}

char *
yaml_from_json(const json_t *v)
{
	yaml_emitter_t e;
	yaml_event_t ev;
	struct buf out;
	int rc = 0;

	buf_init(&out);
	yaml_emitter_initialize(&e);
	yaml_emitter_set_output(&e, yaml_out, &out);
	yaml_emitter_set_unicode(&e, 1);
	yaml_emitter_set_width(&e, -1);
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	rc |= emit(&e, &ev);
	yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
	rc |= rc ? -1 : emit(&e, &ev);
	rc |= rc ? -1 : emit_json(&e, v);
	yaml_document_end_event_initialize(&ev, 1);
	rc |= rc ? -1 : emit(&e, &ev);
	yaml_stream_end_event_initialize(&ev);
	rc |= rc ? -1 : emit(&e, &ev);
	yaml_emitter_delete(&e);
	if (rc) {
		buf_free(&out);
		return NULL;
	}
	buf_append(&out, "", 1);
	return (char *)out.data;
}
