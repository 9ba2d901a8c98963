/*
 * schema: the configuration's schema as tables, and the one walker that
 * checks a YAML tree against them (conf/ internal; config.c holds the
 * tables).
 *
 * A table is a list of fields, one row per key: its type, its bounds or
 * choices, its default, and -- for what the supervisor keeps in C structs
 * -- where it goes (Redis's static_configs[] is the model).  Walking a
 * mapping against its table yields the mapping's normalized JSON: every
 * key checked and converted (durations to integer milliseconds, sizes to
 * bytes, choices to their canonical names), every default filled in, an
 * unknown key, a wrong type or a value out of bounds reported as
 * file:line:column.  The walk goes on after an error, so one run of
 * --check-config shows every mistake.  Rows with a C destination are then
 * stored from that JSON, so the supervisor's structs and the worker's spec
 * come from the same converted value.
 *
 * Free-form values (V_ANY: task_config and its thresholds) are kept as
 * JSON, nested at most VALUE_DEPTH_MAX levels counted from the object the
 * walk produces (an agent's spec is level 1), the bound every message
 * that carries them is held to (common/limits.h).
 */
#ifndef AGENTD_SCHEMA_H
#define AGENTD_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "conf/config.h"
#include "conf/yamltree.h"

struct loader {
	const char *file;             /* NULL: a JSON body, its nodes' pointers say where */
	struct conf_errors *errs;
	struct config *cfg;
};

void err_at(struct loader *L, const struct ynode *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void warn_at(struct loader *L, const struct ynode *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

enum vtype {
	V_STR,          /* a single value, as text; min/max bound its length */
	V_INT,          /* an integer in [min, max] */
	V_NUM,          /* a number in [fmin, fmax] */
	V_BOOL,
	V_DURATION,     /* seconds, or "90s", "1h30m": integer ms in [min, max] */
	V_SIZE,         /* bytes, or "64k", "512M": integer bytes in [min, max] */
	V_CHOICE,       /* one of choices: its canonical name */
	V_MAP,          /* a mapping checked against sub */
	V_LIST,         /* a list of [min, max] items, each checked as item */
	V_STRMAP,       /* a mapping of names to single values, kept as strings */
	V_ANY,          /* free-form, kept as JSON (a mapping with F_MAPPING) */
	V_CUSTOM,       /* conv checks and converts */
};

/* C_STRUCT (V_MAP rows): the sub-table's rows store into base + off.
 * C_JSON: the normalized value itself (a json_t *, a reference held). */
enum ctype { C_NONE, C_STR, C_INT, C_I64, C_BOOL, C_DOUBLE, C_ENUM, C_STRUCT, C_JSON };

#define F_REQUIRED 1u   /* absent (or null) is an error */
#define F_SPEC     2u   /* agent rows: part of the spec its worker receives */
#define F_MAPPING  4u   /* V_ANY: must be a mapping */
#define F_TEXT     8u   /* V_STR: an unquoted number or boolean is a mistake */

struct walk;
struct field;
/* A custom row: check n, report errors, return its normalized value (NULL
 * after an error).  May store into walk_base() itself. */
typedef json_t *(*conv_fn)(struct walk *w, const struct ynode *n, const struct field *f);

struct table;
struct field {
	const char *key;
	enum vtype type;
	unsigned flags;
	const char *out;              /* key in the normalized object; NULL: key */
	int64_t min, max;             /* V_INT, V_DURATION, V_SIZE; V_STR, V_LIST lengths */
	double fmin, fmax;            /* V_NUM */
	const char *const *choices;   /* V_CHOICE, NULL-terminated */
	const struct table *sub;      /* V_MAP */
	const struct field *item;     /* V_LIST */
	const char *dflt;             /* the default as YAML would say it: "10s", "{}", "[]" */
	enum ctype ctype;             /* where the supervisor keeps it: */
	size_t off;                   /* offset in the walk's C struct (V_MAP: its base) */
	conv_fn conv;                 /* V_CUSTOM; for V_STR, an extra check */
};

struct table {
	const struct field *fields;   /* terminated by a row with key NULL */
	const char *shorthand;        /* a single value stands for {shorthand: value} */
	/* After the rows: cross-field checks and defaults that depend on other
	 * keys (obj is the normalized mapping; n the mapping, or the shorthand). */
	void (*finish)(struct walk *w, const struct ynode *n, json_t *obj);
};

struct walk {
	struct loader *L;
	char path[512];               /* "background_agents.a.model_config" */
	int level;                    /* spec level of the object being built */
	void *base;                   /* the C struct rows store into, or NULL */
};

/* The normalized mapping of n against t; NULL when n is not a mapping
 * (reported).  Errors inside are reported and leave their keys out. */
json_t *walk_table(struct walk *w, const struct ynode *n, const struct table *t);
/* One value against one row (what walk_table does per key). */
json_t *walk_field(struct walk *w, const struct ynode *n, const struct field *f);

/* Path helpers: push a ".key" or "[i]" segment, pop back to a saved length. */
size_t walk_push(struct walk *w, const char *key);
size_t walk_push_index(struct walk *w, size_t i);
void walk_pop(struct walk *w, size_t len);

/* The building blocks rows are made of, for custom rows. */
bool want_scalar(struct walk *w, const struct ynode *n);
json_t *conv_strmap(struct walk *w, const struct ynode *n, const struct field *f);
json_t *conv_any(struct walk *w, const struct ynode *n, int level);
bool env_name_ok(const char *s);
void check_duplicates(struct loader *L, const struct ynode *n, const char *path);

/* "90s", "1h30m", "250ms": a duration for messages. */
void fmt_duration(int64_t ms, char *out, size_t len);

#endif
