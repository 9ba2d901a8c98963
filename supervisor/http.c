/*
 * http: the HTTP API's listeners, on agentd's own loop.
 *
 * libmicrohttpd in its external-epoll mode: one MHD daemon per address of
 * agentd.http.listen, started without a thread of its own (MHD_USE_EPOLL);
 * its epoll fd is a watch in agentd's set, MHD_run runs when it is
 * readable, and a timer is armed from MHD_get_timeout after every run, so
 * nothing wakes agentd while no client does anything.  Every callback runs
 * inside MHD_run, in agentd's one thread, like any other handler.
 *
 * Who may ask: a unix listener (mode 0600) checks each connection's peer
 * uid as the control socket does (SO_PEERCRED: agentd's uid or root; 403
 * otherwise); a TCP listener wants `Authorization: Bearer TOKEN` on every
 * request but the public routes (the probes, /healthz and /readyz: a probe
 * seldom can send a token), compared in constant time, the token from
 * agentd.http.token_file or AGENTD_HTTP_TOKEN, never logged nor said back.
 * A browser gives the token once, to the dashboard's login (dashboard.c),
 * and gets a session: a random id in an HttpOnly SameSite=Strict cookie,
 * which stands for the token on the routes marked R_COOKIE or R_PAGE only
 * (the page, its forms, the event stream it follows), with a CSRF token of
 * its own for the forms; sessions live in agentd's memory
 * (HTTP_SESSIONS_MAX, each HTTP_SESSION_MS), so a restart of agentd ends
 * them.  What may be asked is bounded where it enters: the request
 * line and headers by the memory each connection gets (HTTP_CONN_MEMORY),
 * a body by HTTP_BODY_MAX (refused by its Content-Length before it is
 * read, or as it grows), connections by HTTP_CLIENTS_MAX per listener
 * (counted here, see on_accept), a
 * client that stalls by HTTP_IDLE_MS (MHD's connection timeout), so a slow
 * client holds neither the loop nor a slot for long.
 *
 * A request: its headers are checked (peer, route, token, length) before
 * its body is read; then api.c decodes its parameters and body into a
 * command's args, and the command table (commands.c) answers it as it
 * answers the control socket, or the route's own handler does (sse.c for
 * the event stream).  What HTTP says in headers is added here: If-Match
 * becomes the if_match arg of a command that takes one, an answer's ETag
 * (an API agent's) its header, a create's answer is a 201, and a config
 * refused carries every error with its pointer (error.errors).  A command
 * that answers later (a memory query waits for its query's embedding)
 * suspends the connection; its answer resumes it, and MHD's next call of
 * the request takes the answer (agentd stopping cancels it).
 */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/buf.h"
#include "common/jsonmp.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/redact.h"
#include "common/util.h"
#include "supervisor/http_int.h"
#include "supervisor/metrics.h"
#include "supervisor/sup.h"

/* One request, from its headers to its answer (MHD's per-request pointer). */
struct call {
	struct listener *l;
	const struct route *route;
	char *agent;
	struct buf body;
	bool too_large;
	bool answered;            /* refused at its headers: the body is not wanted */
	bool authed;              /* the token, a session, or a unix peer */
	char csrf[SESSION_HEX + 1];   /* the token its forms carry (R_PAGE) */
	struct MHD_Connection *conn;
	struct cmd_later later;   /* a command that answers later: its answer... */
	bool waiting;             /* ...is awaited, the connection suspended (h->waiting) */
	bool in;                  /* ...is in, in result */
	struct cmd_result result;
	struct call *next, **prev;    /* in h->waiting */
};

/* ---- answers ------------------------------------------------------------- */

static int
reply_full(struct MHD_Connection *conn, int status, char *text, size_t len,
    const char *type, const char *allow, const char *etag)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (allow && *allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	if (etag) {
		char quoted[128];
		snprintf(quoted, sizeof(quoted), "\"%s\"", etag);
		MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, quoted);
	}
	enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, r);
	MHD_destroy_response(r);
	return rc;
}

static int
reply_text(struct MHD_Connection *conn, int status, char *text, size_t len,
    const char *type, const char *allow)
{
	return reply_full(conn, status, text, len, type, allow, NULL);
}

/* body (stolen) as a line of JSON. */
static int
reply_json_etag(struct MHD_Connection *conn, int status, json_t *body, const char *etag)
{
	char *text = json_dumps_short(body, JSON_COMPACT);
	json_decref(body);
	if (text == NULL) {
		log_limited(LL_ERROR, "http: an answer could not be encoded as JSON");
		return MHD_NO;
	}
	size_t len = strlen(text);
	text[len] = '\n';	/* the NUL's byte: a line, for people with curl */
	return reply_full(conn, status, text, len + 1, "application/json", NULL, etag);
}

int
http_reply_json(struct MHD_Connection *conn, int status, json_t *body)
{
	return reply_json_etag(conn, status, body, NULL);
}

int
http_reply_error(struct MHD_Connection *conn, const struct api_error *err)
{
	json_t *e = api_error_json(err);
	char *text = json_dumps_short(e, JSON_COMPACT);
	json_decref(e);
	if (text == NULL)
		return MHD_NO;
	size_t len = strlen(text);
	text[len] = '\n';
	return reply_text(conn, err->status, text, len + 1, "application/json", err->allow);
}

static int __attribute__((format(printf, 4, 5)))
refuse(struct MHD_Connection *conn, int status, const char *code, const char *fmt, ...)
{
	struct api_error e = { .status = status, .code = code };
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.message, sizeof(e.message), fmt, ap);
	va_end(ap);
	return http_reply_error(conn, &e);
}

static void
page_headers(struct MHD_Response *r, const char *nonce)
{
	char csp[256];
	snprintf(csp, sizeof(csp), "default-src 'none'; style-src 'unsafe-inline'; "
	    "script-src 'nonce-%s'; connect-src 'self'; form-action 'self'; "
	    "frame-ancestors 'none'; base-uri 'none'", nonce);
	MHD_add_response_header(r, "Content-Security-Policy", csp);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
}

int
http_reply_html(struct MHD_Connection *conn, int status, struct buf *html, const char *nonce)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(buf_pending(html),
	    buf_head(html), MHD_RESPMEM_MUST_COPY);
	buf_free(html);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
	page_headers(r, nonce);
	enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, r);
	MHD_destroy_response(r);
	return rc;
}

int
http_reply_html_stream(struct MHD_Connection *conn,
    ssize_t (*read)(void *cls, uint64_t pos, char *buf, size_t max), void *cls,
    void (*done)(void *cls), const char *nonce)
{
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16u << 10,
	    read, cls, done);
	if (r == NULL) {
		done(cls);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
	page_headers(r, nonce);
	enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return rc;
}

int
http_reply_redirect(struct MHD_Connection *conn, const char *location, const char *cookie)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"",
	    MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, location);
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (cookie)
		MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
	enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_SEE_OTHER, r);
	MHD_destroy_response(r);
	return rc;
}

int
http_healthz(struct api_req *req)
{
	return reply_text(req->conn, 200, xstrdup("ok\n"), 3, "text/plain", NULL);
}

/* The exposition, made in one buffer that MHD then owns. */
int
http_metrics(struct api_req *req)
{
	struct buf b;
	buf_init(&b);
	metrics_render(req->sup, &b);
	return reply_text(req->conn, 200, (char *)b.data, b.len,
	    "text/plain; version=0.0.4; charset=utf-8", NULL);
}

int
http_readyz(struct api_req *req)
{
	json_t *r = metrics_readiness(req->sup);
	return http_reply_json(req->conn, json_is_true(json_object_get(r, "ready")) ? 200 : 503, r);
}

/* events: the page, where it ends (the id to go on after) and whether there
 * is more to ask for: the page was cut, or it is as long as was asked. */
json_t *
http_events_shape(const struct api_req *req, const struct cmd_result *r)
{
	json_t *after = json_object_get(req->args, "after"), *lim = json_object_get(req->args, "limit");
	size_t n = json_array_size(r->data);
	json_t *last = json_object_get(json_array_get(r->data, n - 1), "id");
	bool more = r->cursor || (after && lim && (json_int_t)n == json_integer_value(lim));
	return json_pack("{s:O, s:I, s:b}", "events", r->data, "cursor",
	    last ? json_integer_value(last) : after ? json_integer_value(after) : 0, "more", more);
}

/* If-Match, for a command that takes it (the writes of an API agent). */
static void
if_match(struct api_req *req)
{
	const char *v = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_IF_MATCH);
	if (v == NULL || cmd_arg(&cmd_defs[req->route->cmd], "if_match") == NULL)
		return;
	if (req->args == NULL)
		req->args = json_object();
	json_object_set_new(req->args, "if_match", json_string(v) ?: json_string(""));
}

/* A command's answer, r, as the route says it: cleared. */
static int
reply_result(struct api_req *req, struct cmd_result *r_)
{
	struct cmd_result r = *r_;
	struct api_error err;
	int rc;

	memset(r_, 0, sizeof(*r_));
	if (r.code != 0 && r.errors) {	/* a config refused: every error with its pointer */
		api_cmd_error(req->route, &r, &err);
		json_t *body = api_error_json(&err);
		json_object_set(json_object_get(body, "error"), "errors", r.errors);
		rc = reply_json_etag(req->conn, err.status, body, NULL);
	} else if (r.code != 0) {
		api_cmd_error(req->route, &r, &err);
		rc = http_reply_error(req->conn, &err);
	} else
		rc = reply_json_etag(req->conn, r.created ? 201 : 200, req->route->shape ?
		    req->route->shape(req, &r) : json_incref(r.data), r.etag);
	cmd_result_clear(&r);
	return rc;
}

/* A suspended request is back in MHD's hands (it may not stop with one
 * suspended). */
static void
unwait(struct call *c)
{
	c->waiting = false;
	if (c->next)
		c->next->prev = c->prev;
	*c->prev = c->next;
	MHD_resume_connection(c->conn);
}

static void
later_done(struct cmd_later *l, struct cmd_result *r)
{
	struct call *c = l->ctx;
	c->result = *r;		/* taken: what done was given is the caller's to clear */
	memset(r, 0, sizeof(*r));
	c->in = true;
	if (c->waiting) {
		unwait(c);
		http_run_resumed(c->l);
	}
}

/* Waits bounded by the command (a recall by its embedder's
 * request_timeout); a suspended connection is not watched by MHD, so a
 * client that left is seen when its answer is sent. */
static void
wait_later(struct call *c)
{
	struct http *h = c->l->h;
	c->waiting = true;
	c->next = h->waiting;
	if (c->next)
		c->next->prev = &c->next;
	c->prev = &h->waiting;
	h->waiting = c;
	MHD_suspend_connection(c->conn);
}

/* A route served by its command: the command table's answer, now or once
 * it is in (the connection suspended meanwhile). */
static int
command(struct api_req *req, struct call *c)
{
	struct cmd_result r;

	if_match(req);
	c->conn = req->conn;
	c->later.done = later_done;
	c->later.ctx = c;
	commands_run_later(req->sup, (enum cmd_id)req->route->cmd, req->agent, req->args, &r,
	    &c->later);
	if (r.later && !c->in) {
		cmd_result_clear(&r);
		wait_later(c);
		return MHD_YES;
	}
	if (r.later) {		/* answered before commands_run_later returned */
		cmd_result_clear(&r);
		r = c->result;
		memset(&c->result, 0, sizeof(c->result));
		c->in = false;
	}
	return reply_result(req, &r);
}

/* ---- requests ------------------------------------------------------------ */

/* In time that does not depend on where they differ (nor, past
 * HTTP_TOKEN_MAX, on what was sent). */
bool
http_secret_eq(const char *a, const char *b)
{
	char given[HTTP_TOKEN_MAX] = { 0 }, want[HTTP_TOKEN_MAX] = { 0 };
	size_t n = strlen(a), m = strlen(b);

	memcpy(given, a, n < sizeof(given) ? n : sizeof(given));
	memcpy(want, b, m < sizeof(want) ? m : sizeof(want));
	unsigned char d = 0;
	for (size_t i = 0; i < sizeof(want); i++)	/* every byte, whatever differs first */
		d |= (unsigned char)(given[i] ^ want[i]);
	explicit_bzero(want, sizeof(want));
	explicit_bzero(given, sizeof(given));
	return d == 0 && n == m;
}

static bool
token_eq(const struct http *h, const char *v)
{
	return h->token && v && http_secret_eq(v, h->token);
}

static bool
token_ok(const struct http *h, struct MHD_Connection *conn)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_AUTHORIZATION);

	if (v == NULL || strncasecmp(v, "Bearer ", 7) != 0)
		return false;
	v += 7 + strspn(v + 7, " ");
	return token_eq(h, v);
}

/* ---- dashboard sessions -------------------------------------------------- */

int
http_random_hex(char *out, size_t n)
{
	unsigned char b[64];
	if (n > sizeof(b) || getrandom(b, n, 0) != (ssize_t)n) {
		log_error("http: no random bytes (getrandom): %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	explicit_bzero(b, sizeof(b));
	return 0;
}

/* The live session the request's cookie names, or NULL.  Every slot is
 * compared, the same way, whichever matches. */
static const struct session *
session_of(const struct http *h, struct MHD_Connection *conn)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, SESSION_COOKIE);
	const struct session *found = NULL;
	int64_t now = mono_ms();

	if (v == NULL || strlen(v) != SESSION_HEX)
		return NULL;
	for (size_t i = 0; i < HTTP_SESSIONS_MAX; i++) {
		const struct session *s = &h->sessions[i];
		if (http_secret_eq(v, s->id) && s->id[0] && now - s->born_ms < HTTP_SESSION_MS)
			found = s;
	}
	return found;
}

bool
http_session_start(struct api_req *req, const char *token, char *cookie, size_t len)
{
	struct http *h = ((struct listener *)req->listener)->h;
	struct session *s = &h->sessions[0];

	if (!token_eq(h, token))
		return false;
	for (size_t i = 1; i < HTTP_SESSIONS_MAX; i++)	/* a free slot, or the oldest */
		if (s->id[0] && (!h->sessions[i].id[0] || h->sessions[i].born_ms < s->born_ms))
			s = &h->sessions[i];
	if (http_random_hex(s->id, SESSION_HEX / 2) < 0 ||
	    http_random_hex(s->csrf, SESSION_HEX / 2) < 0) {
		s->id[0] = '\0';
		return false;
	}
	s->born_ms = mono_ms();
	/* No Secure: agentd speaks plain HTTP (TLS is a proxy's, in front). */
	snprintf(cookie, len, "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld",
	    SESSION_COOKIE, s->id, HTTP_SESSION_MS / 1000);
	return true;
}

/* Who asks, on a TCP listener: the token, or for the dashboard's routes a
 * session; the forms' token that goes with it. */
static bool
tcp_authed(struct call *c, struct MHD_Connection *conn)
{
	const struct session *s;
	if (token_ok(c->l->h, conn))
		return true;
	if (!(c->route && (c->route->flags & (R_COOKIE | R_PAGE))) ||
	    (s = session_of(c->l->h, conn)) == NULL)
		return false;
	memcpy(c->csrf, s->csrf, sizeof(c->csrf));
	return true;
}

static bool
peer_ok(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
	    MHD_CONNECTION_INFO_CONNECTION_FD);
	struct ucred cr;
	int rc = ci ? peer_allowed_uid(ci->connect_fd, &cr) : -1;
	if (rc == 0)
		log_limited(LL_WARN, "http socket: refused uid %d (pid %d)", (int)cr.uid, (int)cr.pid);
	return rc == 1;
}

/* What can be said of a request before its body: who asks, for what, and
 * how much it will send. */
static int
headers(struct call *c, struct MHD_Connection *conn, const char *url, const char *method)
{
	struct api_error err;
	const char *cl;
	char *end;

	c->answered = true;
	if (!c->l->tcp && !peer_ok(conn))
		return refuse(conn, MHD_HTTP_FORBIDDEN, "forbidden", "this uid may not use agentd's "
		    "HTTP socket");
	c->route = api_route(method, url, &c->agent, &err);
	memcpy(c->csrf, c->l->h->csrf, sizeof(c->csrf));
	c->authed = !c->l->tcp || tcp_authed(c, conn);
	if (!c->authed && !(c->route && (c->route->flags & (R_PUBLIC | R_LOGIN))))
		return refuse(conn, MHD_HTTP_UNAUTHORIZED, "unauthorized", "this listener needs "
		    "Authorization: Bearer with agentd's token");
	if (c->route == NULL)
		return http_reply_error(conn, &err);
	cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && (strtoull(cl, &end, 10) > HTTP_BODY_MAX || *end))
		return refuse(conn, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", "a request body may "
		    "hold at most %u bytes", HTTP_BODY_MAX);
	c->answered = false;
	return MHD_YES;
}

struct params {
	struct api_param *p;
	size_t n, cap;
};

static enum MHD_Result
add_param(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct params *ps = cls;
	(void)kind;
	if (ps->n == ps->cap) {
		ps->cap = ps->cap ? ps->cap * 2 : 8;
		ps->p = xrealloc(ps->p, ps->cap * sizeof(*ps->p));
	}
	ps->p[ps->n++] = (struct api_param){ key, value };
	return MHD_YES;
}

/* The whole request is in: decode it and answer. */
static int
answer(struct call *c, struct MHD_Connection *conn)
{
	struct params ps = { 0 };
	struct api_error err;
	struct api_req req = { .sup = c->l->h->sup, .conn = conn, .listener = c->l,
		.route = c->route, .agent = c->agent, .authed = c->authed, .csrf = c->csrf,
		.body = (const char *)buf_head(&c->body), .body_len = buf_pending(&c->body) };
	int rc;

	c->answered = true;
	if (c->too_large)
		return refuse(conn, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", "a request body may "
		    "hold at most %u bytes", HTTP_BODY_MAX);
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_param, &ps);
	if (c->route->flags & R_PAGE)
		rc = c->route->fn(&req);
	else if (api_args(c->route, ps.p, ps.n, (const char *)buf_head(&c->body),
	    buf_pending(&c->body), &req.agent, &req.args, &err) < 0)
		rc = http_reply_error(conn, &err);
	else
		rc = c->route->fn ? c->route->fn(&req) : command(&req, c);
	c->agent = req.agent;	/* the parameter's, when the path has none */
	json_decref(req.args);
	free(ps.p);
	return rc;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
    const char *version, const char *data, size_t *size, void **con_cls)
{
	struct call *c = *con_cls;
	(void)version;

	if (c == NULL) {
		c = *con_cls = xcalloc(1, sizeof(*c));
		c->l = cls;
		buf_init(&c->body);
		return headers(c, conn, url, method);
	}
	if (c->in) {		/* resumed: the answer a command gave later */
		struct api_req req = { .sup = c->l->h->sup, .conn = conn, .listener = c->l,
			.route = c->route, .agent = c->agent };
		c->in = false;
		return reply_result(&req, &c->result);
	}
	if (c->answered) {	/* refused already: what else comes is not read */
		*size = 0;
		return MHD_YES;
	}
	if (*size == 0)
		return answer(c, conn);
	if (buf_pending(&c->body) + *size > HTTP_BODY_MAX)
		c->too_large = true;	/* said once it is all in: a client reads no answer mid-send */
	else
		buf_append(&c->body, data, *size);
	*size = 0;
	return MHD_YES;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode why)
{
	struct call *c = *con_cls;
	(void)cls, (void)conn, (void)why;
	if (c == NULL)
		return;
	cmd_result_clear(&c->result);
	buf_free(&c->body);
	free(c->agent);
	free(c);
	*con_cls = NULL;
}

/* The connection cap is ours, not MHD's: at its own limit MHD takes the
 * listening socket out of its epoll set, and new clients wait unanswered
 * in the backlog (and, once it had been full, were sometimes never taken
 * again); refused here, one more is closed at once. */
static enum MHD_Result
on_accept(void *cls, const struct sockaddr *addr, socklen_t len)
{
	struct listener *l = cls;
	(void)addr, (void)len;
	if (l->nconns < HTTP_CLIENTS_MAX)
		return MHD_YES;
	log_limited(LL_WARN, "http %s: %d connections already; closing one more", l->spec,
	    HTTP_CLIENTS_MAX);
	return MHD_NO;
}

static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	struct listener *l = cls;
	(void)conn, (void)socket_context;
	l->nconns += toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1;
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[256];
	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	log_limited(LL_DEBUG, "http: %s", line);	/* a peer's doing, mostly: one that went away */
}

/* ---- the loop ------------------------------------------------------------- */

/* MHD's next deadline, from now: none when it has nothing that times out. */
static void
arm(struct listener *l)
{
	MHD_UNSIGNED_LONG_LONG ms;
	if (MHD_get_timeout(l->d, &ms) == MHD_YES)
		timer_in(&l->t, ms > INT32_MAX ? INT32_MAX : (int64_t)ms);
	else
		timer_stop(&l->t);
}

void
http_run(struct listener *l)
{
	if (MHD_run(l->d) != MHD_YES)
		log_limited(LL_ERROR, "http %s: MHD_run failed", l->spec);
	arm(l);
}

/* libmicrohttpd 0.9.75 in this mode takes a resumed connection back in one
 * MHD_run and serves it in the next, and tells neither through its epoll
 * fd nor through MHD_get_timeout (a stream resumed once stood still until
 * something else woke MHD): so two runs. */
void
http_run_resumed(struct listener *l)
{
	http_run(l);
	http_run(l);
}

static void
on_mhd(struct watch *w, uint32_t events)
{
	(void)events;
	http_run(w->ctx);
}

static void
on_timer(struct timer *t)
{
	http_run(t->ctx);
}

/* ---- listeners ------------------------------------------------------------ */

static int
tcp_listen(const struct listen_addr *a, const char *spec)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE }, *res;
	int one = 1, fd, rc = getaddrinfo(a->host, a->port, &hints, &res);

	if (rc != 0) {
		log_error("http: cannot listen on %s: %s", spec, gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 64) < 0) {
		log_error("http: cannot listen on %s: %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static int
listener_start(struct http *h, struct listener *l, const char *spec)
{
	struct listen_addr a;
	char why[128];
	int fd;

	l->h = h;
	l->spec = xstrdup(spec);
	timer_init(&l->t, on_timer, l);
	if (listen_addr_parse(spec, &a, why, sizeof(why)) < 0) {	/* the loader checked it */
		log_error("http: %s: %s", spec, why);
		return -1;
	}
	l->tcp = !a.is_unix;
	fd = a.is_unix ? unix_listen("HTTP socket", a.path) : tcp_listen(&a, spec);
	if (fd < 0)
		return -1;
	l->path = a.is_unix ? xstrdup(a.path) : NULL;
	/* MHD owns fd from here, and closes it when stopped. */
	l->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
	    0, on_accept, l, on_request, l,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, l,	/* first, or MHD logs some itself */
	    MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CLIENTS_MAX + 16,	/* never reached */
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, l,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(HTTP_IDLE_MS / 1000),
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, l,
	    MHD_OPTION_END);
	if (l->d == NULL) {
		log_error("http: cannot serve %s (libmicrohttpd refused to start)", spec);
		close(fd);
		return -1;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (di == NULL || loop_add(&l->w, di->epoll_fd, EPOLLIN, on_mhd, l) < 0) {
		log_error("http: %s: cannot watch libmicrohttpd's epoll fd", spec);
		return -1;
	}
	arm(l);
	return 0;
}

static void
listener_stop(struct listener *l)
{
	timer_stop(&l->t);
	if (l->d) {
		loop_del(&l->w);
		MHD_stop_daemon(l->d);
	}
	if (l->path)
		unlink(l->path);
	free(l->path);
	free(l->spec);
}

/* The token, from its file or the environment: bounded, one line, never
 * said back in a message. */
static int
load_token(struct http *h, const char *file)
{
	char buf[HTTP_TOKEN_MAX + 2];
	const char *src = file ? file : "AGENTD_HTTP_TOKEN";
	ssize_t n = 0;

	if (file) {
		int fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
		    (n = read(fd, buf, sizeof(buf) - 1)) < 0) {
			log_error("http: token_file %s: %s", file, fd < 0 || n < 0 ?
			    strerror(errno) : "not a regular file");
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
	} else if (getenv("AGENTD_HTTP_TOKEN"))
		n = snprintf(buf, sizeof(buf), "%s", getenv("AGENTD_HTTP_TOKEN"));
	else {
		log_error("http: a TCP listener needs a bearer token: agentd.http.token_file, or "
		    "AGENTD_HTTP_TOKEN in agentd's environment");
		return -1;
	}
	if ((size_t)n >= sizeof(buf) - 1) {
		log_error("http: the token in %s is longer than %d bytes", src, HTTP_TOKEN_MAX);
		return -1;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] <= ' ' || buf[i] == 0x7f) {
			log_error("http: the token in %s holds a space or a control character", src);
			explicit_bzero(buf, sizeof(buf));
			return -1;
		}
	if (n < HTTP_TOKEN_MIN) {
		log_error("http: the token in %s is shorter than %d bytes: too easy to guess", src,
		    HTTP_TOKEN_MIN);
		return -1;
	}
	h->token = xstrdup(buf);
	h->token_len = (size_t)n;
	/* A client that sends it wrong, a proxy's error page, a model told it:
	 * wherever it turns up, it is redacted like every other secret. */
	(void)redact_add(h->sup->secrets, h->token);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

static bool
any_tcp(char *const *specs)
{
	struct listen_addr a;
	char why[128];
	for (; specs && *specs; specs++)
		if (listen_addr_parse(*specs, &a, why, sizeof(why)) == 0 && !a.is_unix)
			return true;
	return false;
}

int
http_open(struct sup *s)
{
	char *const *specs = s->cfg->g.http_listen;
	size_t n = 0;

	while (specs && specs[n])
		n++;
	if (n == 0)
		return 0;	/* listen: [] -- no API */
	struct http *h = s->http = xcalloc(1, sizeof(*h));
	h->sup = s;
	h->ls = xcalloc(n, sizeof(*h->ls));
	sse_keepalive_init(h);
	if (http_random_hex(h->csrf, SESSION_HEX / 2) < 0)
		goto fail;
	if (any_tcp(specs) && load_token(h, s->cfg->g.http_token_file) < 0)
		goto fail;
	for (; h->nls < n; h->nls++)
		if (listener_start(h, &h->ls[h->nls], specs[h->nls]) < 0) {
			h->nls++;
			goto fail;
		}
	return 0;
fail:
	http_close(s);
	return -1;
}

void
http_close(struct sup *s)
{
	struct http *h = s->http;
	if (h == NULL)
		return;
	h->closing = true;
	sse_close_all(h);	/* MHD may not stop with a stream suspended */
	while (h->waiting) {	/* nor with a request: its answer will not come */
		cmd_later_cancel(&h->waiting->later);
		unwait(h->waiting);
	}
	for (size_t i = 0; i < h->nls; i++)
		listener_stop(&h->ls[i]);
	timer_stop(&h->keepalive);
	if (h->token)
		explicit_bzero(h->token, h->token_len);
	explicit_bzero(h->sessions, sizeof(h->sessions));
	free(h->token);
	free(h->ls);
	free(h);
	s->http = NULL;
}

void
http_events_published(struct sup *s, const struct event *ev)
{
	if (s->http)
		sse_published(s->http, ev);
}

void
http_pump(struct sup *s)
{
	if (s->http)
		sse_pump(s->http);
}
