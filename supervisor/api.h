/*
 * api: the HTTP API's routes, and the decoding of a request into a
 * command's agent and args (api.c); the transport is http.c.
 *
 * A route is a row: a method, a path whose {id} segment names the agent,
 * and what serves it -- a command of proto/cmd.h's catalogue (the command
 * table does the work, as it does for the control socket), or a handler of
 * its own (the probes and /metrics, metrics.c; the event stream; the
 * dashboard's page and forms, dashboard.c).  A new endpoint is a row in
 * api_routes[] (api.c); a new operation for both
 * agentctl and the API is a command row in proto/cmd.c, a handler in
 * commands.c and a route row here.
 *
 * Decoding is the one place the API reads what a client sent, so it is
 * bounded and strict, and fuzzed (tests/fuzz/fuzz_http.c): query
 * parameters become the command's args by its catalogue rows (an integer
 * parameter must be one, and so on), a parameter the route does not take
 * or one given twice is refused, a body is JSON (at most HTTP_BODY_MAX
 * bytes, checked before it is read) that becomes the arg the route names.
 * What fails is an api_error: the status, a code word, a message, and
 * where (a JSON pointer into the body, or the parameter).
 */
#ifndef AGENTD_API_H
#define AGENTD_API_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "supervisor/commands.h"

struct MHD_Connection;
struct sup;
struct route;

/* A request as its handler sees it. */
struct api_req {
	struct sup *sup;
	struct MHD_Connection *conn;
	void *listener;           /* http.c's, for handlers that outlive the request */
	const struct route *route;
	char *agent;              /* the path's {id}, or the agent parameter; NULL: none */
	json_t *args;             /* the command's args, decoded; NULL: none */
	/* R_PAGE routes decode their own request: */
	bool authed;              /* R_LOGIN: whether it came with the token or a session */
	const char *csrf;         /* what the page's forms carry and its actions must return */
	const char *body;         /* the body as sent (a form), body_len bytes */
	size_t body_len;
};

/* Queues the answer on req->conn: the MHD_Result of MHD_queue_response. */
typedef int (*api_fn)(struct api_req *req);

/* Query parameter -> the command's arg; arg NULL: the agent. */
struct qparam { const char *name, *arg; };

#define R_PUBLIC 1u   /* served without a token (TCP listeners require one for the rest) */
#define R_COOKIE 2u   /* a dashboard session's cookie stands for the token */
#define R_PAGE 4u     /* the dashboard's (R_COOKIE too): its handler reads query and form */
#define R_LOGIN 8u    /* R_PAGE, answered without the token too (a login form) */

struct route {
	const char *method, *path;
	int cmd;                  /* enum cmd_id, or -1: fn only */
	api_fn fn;                /* NULL: the command's answer as JSON (http.c) */
	unsigned flags;
	const char *body;         /* the arg the JSON body becomes; NULL: a body is ignored */
	const struct qparam *query;   /* the parameters it takes; NULL: none */
	/* The body of the command's answer, when it is not its data as it is. */
	json_t *(*shape)(const struct api_req *req, const struct cmd_result *r);
};

extern const struct route api_routes[];   /* ends with a row whose method is NULL */

struct api_error {
	int status;               /* 400, 404, 405 ... */
	const char *code;         /* "bad_request", "not_found" ... */
	char message[320];
	const char *where;        /* "pointer" or "parameter", or NULL */
	char at[128];             /* the JSON pointer or the parameter's name (cut) */
	char allow[64];           /* 405: the methods the path takes, "GET, POST" */
};

/* The route for method and path (HEAD is GET's), with {id} into *agent
 * (malloc'd); NULL with err set (404, or 405 with err->allow). */
const struct route *api_route(const char *method, const char *path, char **agent,
    struct api_error *err);

/* The args of route r from the query parameters (n pairs, values as
 * decoded from the URL, NULL for a bare key) and the body (len bytes,
 * maybe 0): 0 with *args (NULL when there are none) and maybe *agent (the
 * agent parameter, malloc'd), or -1 with err. */
struct api_param { const char *key, *value; };
int api_args(const struct route *r, const struct api_param *q, size_t n, const char *body,
    size_t len, char **agent, json_t **args, struct api_error *err);

/* A command's answer as an error (the status for its code), where it is
 * about an arg, where the client put it. */
void api_cmd_error(const struct route *r, const struct cmd_result *res, struct api_error *err);
/* {"error": {"code", "message", [pointer | parameter]}} */
json_t *api_error_json(const struct api_error *err);

#endif
