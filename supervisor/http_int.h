/*
 * http_int: what http.c (the listeners and requests) and sse.c (the event
 * streams) share; the rest of agentd sees sup.h's http_* calls only.
 */
#ifndef AGENTD_HTTP_INT_H
#define AGENTD_HTTP_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "supervisor/api.h"
#include "supervisor/loop.h"
#include "supervisor/store.h"

struct sse;

struct listener {
	struct http *h;
	struct MHD_Daemon *d;
	char *spec;               /* as configured: "unix:PATH" or "HOST:PORT" */
	char *path;               /* unix: the socket file, removed at close */
	bool tcp;                 /* requests need the token */
	struct watch w;           /* MHD's epoll fd, in agentd's set */
	struct timer t;           /* MHD's next timeout (MHD_get_timeout) */
	bool resumed;             /* a stream was resumed: MHD_run is due */
	int nconns;               /* open connections, for the cap (on_accept) */
};

struct http {
	struct sup *sup;
	struct listener *ls;
	size_t nls;
	char *token;              /* the bearer token TCP listeners check; NULL: none */
	size_t token_len;
	struct sse *streams;      /* every open event stream, of every listener */
	size_t nstreams;
	struct timer keepalive;   /* armed while a stream is open */
	bool closing;
};

/* MHD_run, then its timer re-armed: after MHD's fd is readable or its
 * timeout is due; http_run_resumed after a suspended connection was
 * resumed, which MHD in this mode does not signal. */
void http_run(struct listener *l);
void http_run_resumed(struct listener *l);

/* Route handlers (api.c's table). */
int http_healthz(struct api_req *req);
int http_metrics(struct api_req *req);
int http_readyz(struct api_req *req);
int sse_open(struct api_req *req);
json_t *http_events_shape(const struct api_req *req, const struct cmd_result *r);

/* Queue an answer: a JSON body (stolen) with its status, or an error. */
int http_reply_json(struct MHD_Connection *conn, int status, json_t *body);
int http_reply_error(struct MHD_Connection *conn, const struct api_error *err);

/* sse.c */
void sse_published(struct http *h, const struct event *ev);
void sse_pump(struct http *h);
void sse_close_all(struct http *h);
void sse_keepalive_init(struct http *h);

#endif
