/*
 * yamltree: a YAML document as a tree of nodes that remember where they
 * came from (line and column, 1-based), so every later check can say
 * file:line:column.  Built from libyaml's event stream; an alias becomes a
 * copy of its anchored node, within the bounds of common/limits.h (an alias
 * bomb is a syntax error at the alias); scalars keep whether they were
 * quoted, which decides whether "true" or "42" is a string.
 *
 * The same tree is made from JSON (an agent created over the API): each
 * node then knows its JSON pointer (RFC 6901, "/model_config/provider"),
 * which messages name instead of a line and column; a JSON string is a
 * quoted scalar, a number or a boolean a plain one, so the schema reads a
 * JSON value exactly as it reads the same value in the file.  The other
 * way, a YAML tree becomes JSON as the file means it (agentctl create
 * sends a YAML file's agent so), and JSON becomes block YAML for the file
 * (agentctl export).
 */
#ifndef AGENTD_YAMLTREE_H
#define AGENTD_YAMLTREE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum ynode_kind { Y_SCALAR, Y_MAP, Y_SEQ };

struct ynode {
	enum ynode_kind kind;
	int line, col;
	char *value;            /* Y_SCALAR */
	size_t len;
	bool quoted;
	bool is_null;           /* plain "~", "null", "" */
	struct ynode **keys;    /* Y_MAP: keys[i] -> vals[i] */
	struct ynode **vals;    /* Y_MAP values, Y_SEQ items */
	size_t n, cap;
	char *anchor;
	char *pointer;          /* from JSON: where in the document; NULL from YAML */
};

/* Parse; NULL with "line:col: problem" in err on a YAML syntax error, a
 * second document, or a document past the node and alias bounds.  An
 * empty document yields an empty map. */
struct ynode *ytree_parse(const char *text, size_t len, char *err, size_t errlen);
void ytree_free(struct ynode *n);
struct ynode *ymap_get(const struct ynode *map, const char *key);

/* v as a tree whose nodes know their pointers, under pointer (the root's:
 * ""). */
struct ynode *ytree_from_json(const json_t *v, const char *pointer);
/* n as JSON, its plain scalars typed as YAML types them (null, booleans,
 * integers, numbers; on and off stay text, as in a free-form value); NULL
 * with "line:col: problem" in err when a scalar is not UTF-8. */
json_t *ytree_to_json(const struct ynode *n, char *err, size_t errlen);
/* v as a block-style YAML document (malloc'd), or NULL when libyaml
 * cannot emit it. */
char *yaml_from_json(const json_t *v);

#endif
