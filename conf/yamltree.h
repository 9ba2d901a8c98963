/*
 * yamltree: a YAML document as a tree of nodes that remember where they
 * came from (line and column, 1-based), so every later check can say
 * file:line:column.  Built from libyaml's event stream; an alias becomes a
 * copy of its anchored node, within the bounds of common/limits.h (an alias
 * bomb is a syntax error at the alias); scalars keep whether they were
 * quoted, which decides whether "true" or "42" is a string.
 */
#ifndef AGENTD_YAMLTREE_H
#define AGENTD_YAMLTREE_H

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
};

/* Parse; NULL with "line:col: problem" in err on a YAML syntax error, a
 * second document, or a document past the node and alias bounds.  An
 * empty document yields an empty map. */
struct ynode *ytree_parse(const char *text, size_t len, char *err, size_t errlen);
void ytree_free(struct ynode *n);
struct ynode *ymap_get(const struct ynode *map, const char *key);

#endif
