/*
 * http_int: what http.c (the listeners and requests) and sse.c (the event
 * streams) share; the rest of agentd sees sup.h's http_* calls only.
 */
#ifndef AGENTD_HTTP_INT_H
#define AGENTD_HTTP_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>
#include "common/buf.h"
#include "common/limits.h"
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

/* A browser's login to the dashboard (see http.c): random, hex. */
#define SESSION_HEX 64
#define SESSION_COOKIE "agentd_session"
struct session {
	char id[SESSION_HEX + 1];     /* the cookie's value; "" for a free slot */
	char csrf[SESSION_HEX + 1];   /* its forms' token */
	int64_t born_ms;              /* monotonic */
};

struct http {
	struct sup *sup;
	struct listener *ls;
	size_t nls;
	char *token;              /* the bearer token TCP listeners check; NULL: none */
	size_t token_len;
	struct session sessions[HTTP_SESSIONS_MAX];
	char csrf[SESSION_HEX + 1];   /* the forms' token without a session (unix, bearer) */
	struct sse *streams;      /* every open event stream, of every listener */
	size_t nstreams;
	struct timer keepalive;   /* armed while a stream is open */
	struct call *waiting;     /* requests suspended for a command's later answer */
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

/* A page: html's bytes (taken), as text/html with headers that keep it
 * to itself (a CSP letting only the inline script of that nonce run, no
 * framing, no referrer, no caching). */
int http_reply_html(struct MHD_Connection *conn, int status, struct buf *html,
    const char *nonce);
/* The same for a page made as it is sent: read(cls, pos, buf, max) as
 * libmicrohttpd's content reader (bytes, or -1 at the end), done(cls) once
 * it is over, sent or not. */
int http_reply_html_stream(struct MHD_Connection *conn,
    ssize_t (*read)(void *cls, uint64_t pos, char *buf, size_t max), void *cls,
    void (*done)(void *cls), const char *nonce);
/* 303 to location, setting the cookie (a Set-Cookie value) when given. */
int http_reply_redirect(struct MHD_Connection *conn, const char *location, const char *cookie);
/* A login: when token is agentd's, a new session, its Set-Cookie value in
 * cookie (len bytes), and true. */
bool http_session_start(struct api_req *req, const char *token, char *cookie, size_t len);
/* Whether a and b are the same text, in time that does not depend on where
 * they differ. */
bool http_secret_eq(const char *a, const char *b);
/* hex random bytes, 2 * n + 1 of out (getrandom). */
int http_random_hex(char *out, size_t n);

/* dashboard.c */
int dash_page(struct api_req *req);
int dash_login(struct api_req *req);
int dash_action(struct api_req *req);

/* sse.c */
void sse_published(struct http *h, const struct event *ev);
void sse_pump(struct http *h);
void sse_close_all(struct http *h);
void sse_keepalive_init(struct http *h);

#endif
