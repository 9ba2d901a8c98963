/*
 * api: the route table and the decoding of requests (see api.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/limits.h"
#include "common/util.h"
#include "proto/msg.h"
#include "supervisor/api.h"
#include "supervisor/http_int.h"

/* The events' filters, for the listing and the stream alike. */
static const struct qparam events_q[] = {
	{ "agent", NULL }, { "session_id", "session_id" }, { "type", "type" },
	{ "after", "after" }, { "limit", "limit" }, { NULL, NULL },
};
static const struct qparam stream_q[] = {
	{ "agent", NULL }, { "session_id", "session_id" }, { "type", "type" },
	{ "after", "after" }, { NULL, NULL },
};
static const struct qparam memory_q[] = {
	{ "type", "memory_type" }, { "limit", "limit" }, { "query", "query" }, { "rank", "rank" },
	{ NULL, NULL },
};

const struct route api_routes[] = {
	{ "GET", "/healthz", -1, http_healthz, R_PUBLIC, NULL, NULL, NULL },
	{ "GET", "/readyz", -1, http_readyz, R_PUBLIC, NULL, NULL, NULL },
	{ "GET", "/metrics", -1, http_metrics, 0, NULL, NULL, NULL },
	{ "GET", "/", -1, dash_page, R_PAGE | R_LOGIN, NULL, NULL, NULL },
	{ "POST", "/login", -1, dash_login, R_PAGE | R_LOGIN, NULL, NULL, NULL },
	{ "POST", "/ui/agents/{id}/pause", CMD_PAUSE, dash_action, R_PAGE, NULL, NULL, NULL },
	{ "POST", "/ui/agents/{id}/resume", CMD_RESUME, dash_action, R_PAGE, NULL, NULL, NULL },
	{ "POST", "/ui/agents/{id}/run", CMD_RUN, dash_action, R_PAGE, NULL, NULL, NULL },
	{ "POST", "/ui/agents/{id}/restart", CMD_RESTART, dash_action, R_PAGE, NULL, NULL, NULL },
	{ "GET", "/v1/status", CMD_STATUS, NULL, 0, NULL, NULL, NULL },
	{ "GET", "/v1/agents", CMD_LIST, NULL, 0, NULL, NULL, NULL },
	{ "POST", "/v1/agents", CMD_CREATE, NULL, 0, "config", NULL, NULL },
	{ "GET", "/v1/agents/{id}", CMD_STATUS, NULL, 0, NULL, NULL, NULL },
	{ "PATCH", "/v1/agents/{id}", CMD_UPDATE, NULL, 0, "patch", NULL, NULL },
	{ "DELETE", "/v1/agents/{id}", CMD_DELETE, NULL, 0, NULL, NULL, NULL },
	{ "GET", "/v1/agents/{id}/config", CMD_EXPORT, NULL, 0, NULL, NULL, NULL },
	{ "POST", "/v1/agents/{id}/pause", CMD_PAUSE, NULL, 0, NULL, NULL, NULL },
	{ "POST", "/v1/agents/{id}/resume", CMD_RESUME, NULL, 0, NULL, NULL, NULL },
	{ "POST", "/v1/agents/{id}/run", CMD_RUN, NULL, 0, "kwargs", NULL, NULL },
	{ "POST", "/v1/agents/{id}/restart", CMD_RESTART, NULL, 0, NULL, NULL, NULL },
	{ "GET", "/v1/agents/{id}/memory", CMD_MEMORY, NULL, 0, NULL, memory_q, NULL },
	{ "POST", "/v1/reload", CMD_RELOAD, NULL, 0, NULL, NULL, NULL },
	{ "GET", "/v1/tasks", CMD_TASKS, NULL, 0, NULL, NULL, NULL },
	{ "GET", "/v1/events", CMD_EVENTS, NULL, 0, NULL, events_q, http_events_shape },
	{ "GET", "/v1/events/stream", CMD_EVENTS, sse_open, R_COOKIE, NULL, stream_q, NULL },
	{ NULL, NULL, -1, NULL, 0, NULL, NULL, NULL },
};

static int __attribute__((format(printf, 4, 5)))
fail(struct api_error *e, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	memset(e, 0, sizeof(*e));
	e->status = status;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return -1;
}

static void
at(struct api_error *e, const char *where, const char *what)
{
	e->where = where;
	str_printable(e->at, sizeof(e->at), what, strlen(what));
}

/* path against pattern, segment by segment; {id} takes one non-empty
 * segment, into *id (its bounds, where it points into path). */
static bool
path_match(const char *pattern, const char *path, const char **id, size_t *idlen)
{
	*id = NULL;
	while (*pattern && *path) {
		if (!strncmp(pattern, "{id}", 4)) {
			size_t n = strcspn(path, "/");
			if (n == 0)
				return false;
			*id = path;
			*idlen = n;
			pattern += 4;
			path += n;
		} else if (*pattern++ != *path++)
			return false;
	}
	return *pattern == '\0' && *path == '\0';
}

const struct route *
api_route(const char *method, const char *path, char **agent, struct api_error *err)
{
	const char *want = strcmp(method, "HEAD") ? method : "GET";
	const char *id;
	size_t idlen, off = 0;
	bool path_known = false;

	*agent = NULL;
	memset(err, 0, sizeof(*err));
	for (const struct route *r = api_routes; r->method; r++) {
		if (!path_match(r->path, path, &id, &idlen))
			continue;
		if (strcmp(r->method, want) == 0) {
			if (id && idlen > FILTER_MAX)
				return fail(err, 404, "unknown_agent", "no agent has a name of %zu "
				    "bytes", idlen), NULL;
			*agent = id ? strndup(id, idlen) : NULL;
			return r;
		}
		/* the same path by another method: 405, and which ones it takes */
		if (!strstr(err->allow, r->method) && off + strlen(r->method) + 3 < sizeof(err->allow))
			off += (size_t)snprintf(err->allow + off, sizeof(err->allow) - off, "%s%s",
			    off ? ", " : "", r->method);
		path_known = true;
	}
	char allow[sizeof(err->allow)];
	memcpy(allow, err->allow, sizeof(allow));
	if (path_known) {
		fail(err, 405, "method_not_allowed", "%s is not served on this path; it takes %s",
		    method, allow);
		memcpy(err->allow, allow, sizeof(allow));
	} else
		fail(err, 404, "not_found", "no such endpoint");
	return NULL;
}

/* One query value as the arg row r says it is. */
static json_t *
param_value(const struct cmd_arg *r, const char *name, const char *v, struct api_error *e)
{
	char *end;
	switch (r->type) {
	case JSON_INTEGER: {
		/* digits, maybe after a minus: strtoll alone would take " 5" and "+5" */
		bool digits = v && (isdigit((unsigned char)v[0]) ||
		    (v[0] == '-' && isdigit((unsigned char)v[1])));
		errno = 0;
		long long n = digits ? strtoll(v, &end, 10) : 0;
		if (!digits || *end || errno) {
			fail(e, 400, "bad_request", "parameter %s must be an integer", r->name);
			break;
		}
		return json_integer(n);
	}
	case JSON_TRUE:
		if (v && (!strcmp(v, "true") || !strcmp(v, "1")))
			return json_true();
		if (v && (!strcmp(v, "false") || !strcmp(v, "0")))
			return json_false();
		fail(e, 400, "bad_request", "parameter %s must be true or false", r->name);
		break;
	case JSON_STRING: {
		json_t *s = v ? json_string(v) : NULL;
		if (s == NULL)
			fail(e, 400, "bad_request", "parameter %s must be text (UTF-8)", r->name);
		return s;
	}
	default:
		fail(e, 400, "bad_request", "parameter %s cannot be given in the URL", r->name);
		break;
	}
	at(e, "parameter", name);
	return NULL;
}

static int
query_args(const struct route *r, const struct api_param *q, size_t n, char **agent,
    json_t *args, struct api_error *e)
{
	for (size_t i = 0; i < n; i++) {
		const struct qparam *p = r->query;
		while (p && p->name && strcmp(p->name, q[i].key))
			p++;
		if (p == NULL || p->name == NULL) {
			char name[64];
			str_printable(name, sizeof(name), q[i].key, strlen(q[i].key));
			fail(e, 400, "bad_request", "unknown parameter \"%s\"", name);
			at(e, "parameter", q[i].key);
			return -1;
		}
		for (size_t k = 0; k < i; k++)
			if (!strcmp(q[k].key, q[i].key)) {
				fail(e, 400, "bad_request", "parameter %s is given twice", p->name);
				at(e, "parameter", p->name);
				return -1;
			}
		if (p->arg == NULL) {	/* the agent: checked by the command */
			if (*agent || q[i].value == NULL || !*q[i].value) {
				fail(e, 400, "bad_request", *agent ? "the path names the agent already" :
				    "parameter agent needs a name");
				at(e, "parameter", q[i].key);
				return -1;
			}
			*agent = xstrdup(q[i].value);
			continue;
		}
		const struct cmd_arg *row = cmd_arg(&cmd_defs[r->cmd], p->arg);
		json_t *v = row ? param_value(row, q[i].key, q[i].value, e) : NULL;
		if (v == NULL)
			return -1;
		json_object_set_new(args, p->arg, v);
	}
	return 0;
}

static int
body_args(const struct route *r, const char *body, size_t len, json_t *args,
    struct api_error *e)
{
	json_error_t je;
	if (len == 0)
		return 0;
	json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (v == NULL)
		return fail(e, 400, "bad_request", "the body is not JSON: %s (line %d, column %d)",
		    je.text, je.line, je.column);
	if (r->body == NULL) {	/* a body the route does not read */
		json_decref(v);
		return 0;
	}
	const struct cmd_arg *row = cmd_arg(&cmd_defs[r->cmd], r->body);
	if (row && row->type == JSON_OBJECT && !json_is_object(v)) {
		json_decref(v);
		fail(e, 400, "bad_request", "the body must be a JSON object (the %s)", r->body);
		at(e, "pointer", "");
		return -1;
	}
	json_object_set_new(args, r->body, v);
	return 0;
}

int
api_args(const struct route *r, const struct api_param *q, size_t n, const char *body,
    size_t len, char **agent, json_t **args, struct api_error *err)
{
	json_t *a = json_object();
	memset(err, 0, sizeof(*err));
	*args = NULL;
	if ((n && r->cmd < 0) || query_args(r, q, n, agent, a, err) < 0 ||
	    (r->cmd >= 0 && body_args(r, body, len, a, err) < 0)) {
		if (err->status == 0)
			fail(err, 400, "bad_request", "this endpoint takes no parameters");
		json_decref(a);
		return -1;
	}
	if (json_object_size(a))
		*args = a;
	else
		json_decref(a);
	return 0;
}

/* A response code as an HTTP status and its word. */
static const struct { int status; const char *code; } code_http[RESP__COUNT] = {
	[RESP_OK] = { 200, "ok" },
	[RESP_REFUSED] = { 409, "conflict" },
	[RESP_BAD_REQUEST] = { 400, "bad_request" },
	[RESP_UNKNOWN_AGENT] = { 404, "unknown_agent" },
	[RESP_UNAVAILABLE] = { 503, "unavailable" },
	[RESP_PRECONDITION] = { 412, "precondition_failed" },
};

void
api_cmd_error(const struct route *r, const struct cmd_result *res, struct api_error *err)
{
	int c = res->code > RESP_OK && res->code < RESP__COUNT ? res->code : RESP_REFUSED;
	fail(err, code_http[c].status, code_http[c].code, "%s", res->error ? res->error : "failed");
	if (json_array_size(res->errors)) {	/* a config refused: where its first error is */
		at(err, "pointer", json_string_value(json_object_get(json_array_get(res->errors, 0),
		    "pointer")));
		return;
	}
	if (res->bad_arg == NULL)
		return;
	if (r->body && !strcmp(r->body, res->bad_arg)) {
		at(err, "pointer", "");
		return;
	}
	for (const struct qparam *p = r->query; p && p->name; p++)
		if (p->arg && !strcmp(p->arg, res->bad_arg))
			at(err, "parameter", p->name);
}

json_t *
api_error_json(const struct api_error *err)
{
	json_t *e = json_pack("{s:s, s:s}", "code", err->code ? err->code : "error", "message",
	    err->message);
	if (err->where)
		json_object_set_new(e, err->where, json_string(err->at));
	return json_pack("{s:o}", "error", e);
}
