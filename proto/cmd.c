/*
 * cmd: the command catalogue (see cmd.h) and the check of a request's
 * args against it.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "common/jsonmp.h"
#include "common/limits.h"
#include "common/util.h"
#include "proto/cmd.h"

static const struct cmd_arg no_args[] = { { NULL } };

static const struct cmd_arg events_args[] = {
	{ "limit", JSON_INTEGER, 1, INT64_MAX, 0 },
	{ "after", JSON_INTEGER, 0, INT64_MAX, 0 },
	{ "follow", JSON_TRUE, 0, 0, 0 },
	{ "session_id", JSON_STRING, 0, 0, FILTER_MAX },
	{ "type", JSON_STRING, 0, 0, FILTER_MAX },
	{ NULL },
};

static const struct cmd_arg memory_args[] = {
	{ "limit", JSON_INTEGER, 1, 10000, 0 },
	{ "memory_type", JSON_STRING, 0, 0, FILTER_MAX },
	{ "query", JSON_STRING, 0, 0, RECALL_QUERY_MAX },      /* a recall: store.h */
	{ "rank", JSON_STRING, 0, 0, FILTER_MAX },             /* hybrid, vector, text */
	{ "clear", JSON_STRING, 0, 0, FILTER_MAX },            /* the type to empty */
	{ NULL },
};

static const struct cmd_arg run_args[] = {
	{ "kwargs", JSON_OBJECT, 0, 0, KWARGS_MAX },
	{ NULL },
};

/* An agent's config as created (one agent as under background_agents:),
 * and a merge patch over it: a spec's bound, as its worker receives it. */
static const struct cmd_arg create_args[] = {
	{ "config", JSON_OBJECT, 0, 0, SPEC_MAX },
	{ NULL },
};

static const struct cmd_arg update_args[] = {
	{ "patch", JSON_OBJECT, 0, 0, SPEC_MAX },
	{ "if_match", JSON_STRING, 0, 0, FILTER_MAX },      /* the ETag the writer read */
	{ NULL },
};

static const struct cmd_arg delete_args[] = {
	{ "if_match", JSON_STRING, 0, 0, FILTER_MAX },
	{ NULL },
};

const struct cmd_def cmd_defs[CMD__COUNT] = {
	[CMD_STATUS] = { "status", CA_MAYBE, no_args },
	[CMD_LIST] = { "list", CA_NONE, no_args },
	[CMD_PAUSE] = { "pause", CA_ONE, no_args },
	[CMD_RESUME] = { "resume", CA_ONE, no_args },
	[CMD_RESTART] = { "restart", CA_ONE, no_args },
	[CMD_RUN] = { "run", CA_ONE, run_args },
	[CMD_RELOAD] = { "reload", CA_NONE, no_args },
	[CMD_EVENTS] = { "events", CA_FILTER, events_args },
	[CMD_MEMORY] = { "memory", CA_ONE, memory_args },
	[CMD_TASKS] = { "tasks", CA_NONE, no_args },
	[CMD_STOP] = { "stop", CA_NONE, no_args },
	[CMD_CREATE] = { "create", CA_NONE, create_args },
	[CMD_UPDATE] = { "update", CA_ONE, update_args },
	[CMD_DELETE] = { "delete", CA_ONE, delete_args },
	[CMD_EXPORT] = { "export", CA_ONE, no_args },
};

int
cmd_lookup(const char *name)
{
	for (int i = 0; name && i < CMD__COUNT; i++)
		if (strcmp(cmd_defs[i].name, name) == 0)
			return i;
	return -1;
}

const struct cmd_arg *
cmd_arg(const struct cmd_def *def, const char *name)
{
	for (const struct cmd_arg *r = def->args; r->name; r++)
		if (strcmp(r->name, name) == 0)
			return r;
	return NULL;
}

static const char *const type_names[] = {
	[JSON_OBJECT] = "a map", [JSON_ARRAY] = "a list", [JSON_STRING] = "a string",
	[JSON_INTEGER] = "an integer", [JSON_REAL] = "a number", [JSON_TRUE] = "true or false",
	[JSON_FALSE] = "true or false", [JSON_NULL] = "null",
};

static int
check_arg(const struct cmd_arg *r, const json_t *v, char *err, size_t errlen)
{
	json_type t = json_is_boolean(v) ? JSON_TRUE : json_typeof(v);
	json_int_t i = json_integer_value(v);
	size_t size;

	if (t != r->type)
		snprintf(err, errlen, "args.%s must be %s", r->name, type_names[r->type]);
	else if (t == JSON_INTEGER && (i < r->min || i > r->max))
		snprintf(err, errlen, "args.%s must be from %lld to %lld", r->name,
		    (long long)r->min, (long long)r->max);
	else if (t == JSON_STRING && json_string_length(v) > r->size_max)
		snprintf(err, errlen, "args.%s is %zu bytes, over the limit of %zu", r->name,
		    json_string_length(v), r->size_max);
	else if (t == JSON_OBJECT && json_depth(v, VALUE_DEPTH_MAX) > VALUE_DEPTH_MAX)
		snprintf(err, errlen, "args.%s nests more than %d levels deep", r->name,
		    VALUE_DEPTH_MAX);
	else if (t == JSON_OBJECT && (size = json_compact_size(v)) > r->size_max)
		snprintf(err, errlen, "args.%s is %zu bytes as JSON, over the limit of %zu",
		    r->name, size, r->size_max);
	else
		return 0;
	return -1;
}

int
cmd_check_args(const struct cmd_def *def, const json_t *args, const struct cmd_arg **bad,
    char *err, size_t errlen)
{
	for (const struct cmd_arg *r = def->args; r->name; r++) {
		const json_t *v = json_object_get(args, r->name);
		if (v && check_arg(r, v, err, errlen) < 0) {
			*bad = r;
			return -1;
		}
	}
	return 0;
}
