/*
 * dashboard: GET /, a page of every agent, rendered here, on agentd's loop,
 * from what `agentctl status` says (agent_status_json) and the newest
 * events of each; and the forms it posts -- a login, and an agent's pause,
 * resume, run now and restart, served by the command table as agentctl's
 * are.
 *
 * Nothing it shows is trusted: an error, a stderr line, an event's payload,
 * a tool's name, a model's answer are the workers' and the models' text.
 * Each goes through esc(), which escapes what is special in HTML text and
 * in a quoted attribute alike (& < > " '), and is cut at DASH_TEXT_MAX
 * bytes; events are DASH_EVENTS per agent, stderr lines DASH_STDERR.  So
 * the page for 1000 agents is bounded, and it is rendered as it is sent,
 * DASH_ROWS_PER_PASS rows at a time (struct page), so that it never holds
 * the loop for long (scripts/bench/run_dashboard measures both).  The
 * page's only script is inline, allowed by its nonce in the CSP
 * (http_reply_html), and no other can run: not one an escape missed, not
 * one from elsewhere.  There are no external scripts, styles or fonts.
 *
 * Live: the script follows /v1/events/stream from the newest event the
 * page shows, and reloads the page once something happened, at most once
 * every RELOAD_MIN_MS: an idle agentd renders nothing, however many tabs
 * are open, and a busy one renders each tab at most that often.  Without
 * JavaScript, the page refreshes itself every 30 s.
 *
 * Who may act (http.c checks the first, here the second):
 * - the token: on a unix listener none is needed (the peer's uid is
 *   checked); on TCP a browser gives it once, by the login form or
 *   /?token= (answered with a redirect to /, so it leaves the address bar
 *   and the history), and keeps a session id in an HttpOnly SameSite=Strict
 *   cookie, which stands for the token on the dashboard's routes (and the
 *   event stream the page follows) only -- the JSON API wants the token.
 * - a CSRF token in every form (the session's, or agentd's own without a
 *   session), which an action must send back.  A synchronizer token holds
 *   without JavaScript (plain forms post it), in every browser, behind a
 *   proxy that rewrites Origin, and for the unix listener a proxy may put
 *   on TCP; a page elsewhere cannot read it (the same-origin policy), so it
 *   cannot forge an action even where SameSite does not hold.
 */
#include <microhttpd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/jsonmp.h"
#include "common/limits.h"
#include "common/util.h"
#include "supervisor/http_int.h"
#include "supervisor/sup.h"

#define RELOAD_MIN_MS 5000
#define NONCE_BYTES 16

static void
put(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

/* Short markup of the page's own: numbers, names, hex (a longer one is a
 * bug, cut). */
static void __attribute__((format(printf, 2, 3)))
putf(struct buf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	buf_append(b, tmp, n < 0 ? 0 : (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* s for HTML text or a quoted attribute: at most DASH_TEXT_MAX bytes of it
 * (cut between characters), then an ellipsis. */
static void
esc(struct buf *b, const char *s)
{
	static const char *const ent[256] = { ['&'] = "&amp;", ['<'] = "&lt;",
		['>'] = "&gt;", ['"'] = "&quot;", ['\''] = "&#39;" };
	size_t n = strlen(s), cut = utf8_cut(s, n, DASH_TEXT_MAX);

	for (size_t i = 0; i < cut; i++) {
		const char *e = ent[(unsigned char)s[i]];
		if (e)
			put(b, e);
		else
			buf_append(b, s + i, 1);
	}
	if (cut < n)
		put(b, "\u2026");
}

/* A JSON value as the page shows it: a string as it is, anything else as
 * compact JSON; null as a dash. */
static void
esc_json(struct buf *b, const json_t *v)
{
	if (v == NULL || json_is_null(v)) {
		put(b, "\u2013");
		return;
	}
	if (json_is_string(v)) {
		esc(b, json_string_value(v));
		return;
	}
	char *text = json_dumps_short(v, JSON_COMPACT | JSON_ENCODE_ANY);
	esc(b, text ? text : "?");
	free(text);
}

static const char style[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1em;color:#222}"
    "table{border-collapse:collapse;width:100%}"
    "th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}"
    "th{background:#f4f4f4}.st{font-weight:bold}"
    ".st-idle{color:#17702a}.st-running,.st-retrying{color:#0b57a4}"
    ".st-fatal,.st-backoff{color:#b00020}.st-stopped{color:#777}"
    ".err{color:#b00020;max-width:24em;overflow-wrap:anywhere}"
    "form{display:inline}button{margin:1px}"
    "pre{margin:0;white-space:pre-wrap;overflow-wrap:anywhere;font-size:12px}"
    "ul{margin:0;padding-left:1.2em}.ev{font-size:12px;overflow-wrap:anywhere}";

static void
head(struct buf *b, const char *title, bool refresh)
{
	put(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	    "<meta name=\"viewport\" content=\"width=device-width\">");
	if (refresh)
		put(b, "<noscript><meta http-equiv=\"refresh\" content=\"30\"></noscript>");
	putf(b, "<title>%s</title><style>", title);
	put(b, style);
	put(b, "</style></head>\n");
}

/* A page of a few words (a login, a refusal) and a way on. */
static int
message_page(struct api_req *req, int status, const char *title, const char *text, bool login)
{
	struct buf b;
	buf_init(&b);
	head(&b, title, false);
	putf(&b, "<body><h1>%s</h1><p id=\"message\">", title);
	esc(&b, text);
	put(&b, "</p>");
	if (login)
		put(&b, "<form method=\"post\" action=\"/login\"><label>agentd's token "
		    "<input type=\"password\" name=\"token\" autocomplete=\"current-password\" "
		    "autofocus></label> <button type=\"submit\">log in</button></form>");
	else
		put(&b, "<p><a href=\"/\">back to the dashboard</a></p>");
	put(&b, "</body></html>\n");
	return http_reply_html(req->conn, status, &b, "none");
}

static int
login_page(struct api_req *req, const char *why)
{
	return message_page(req, MHD_HTTP_UNAUTHORIZED, "agentd", why, true);
}

/* ---- one agent ------------------------------------------------------------ */

static void
cell(struct buf *b, const char *cls, const json_t *v)
{
	putf(b, "<td%s%s%s>", cls ? " class=\"" : "", cls ? cls : "", cls ? "\"" : "");
	esc_json(b, v);
	put(b, "</td>");
}

static void
action(struct buf *b, const char *agent, const char *verb, const char *label,
    const char *csrf)
{
	put(b, "<form method=\"post\" action=\"/ui/agents/");
	esc(b, agent);
	putf(b, "/%s\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
	    "<button type=\"submit\" name=\"do\" value=\"%s\">%s</button></form>",
	    verb, csrf, verb, label);
}

static void
outcome(struct buf *b, const json_t *st)
{
	const json_t *o = json_object_get(st, "last_outcome");
	const json_t *d = json_object_get(st, "last_duration_ms");
	put(b, "<td class=\"outcome\">");
	esc_json(b, o);
	if (json_is_integer(d))
		putf(b, " in %lld ms", (long long)json_integer_value(d));
	put(b, "<br><small>");
	esc_json(b, json_object_get(st, "last_run"));
	put(b, "</small></td>");
}

static void
counters(struct buf *b, const json_t *st)
{
	static const char *const keys[] = { "run_count", "error_count", "skipped_count",
		"restart_count" };
	put(b, "<td class=\"counters\">");
	for (size_t i = 0; i < ARRAY_LEN(keys); i++)
		putf(b, "%s%lld", i ? " / " : "",
		    (long long)json_integer_value(json_object_get(st, keys[i])));
	put(b, "</td>");
}

/* The newest events, newest first, and the newest stderr lines: the
 * ring's, or, once the worker exited, those its exit event carries. */
static void
recent(struct buf *b, const json_t *st, const json_t *events)
{
	const json_t *lines = json_object_get(st, "last_stderr");
	size_t i;
	json_t *ev;

	put(b, "<td><ul class=\"ev\">");
	for (i = json_array_size(events); i-- > 0;) {
		ev = json_array_get(events, i);
		const json_t *p = json_object_get(ev, "payload");
		if (json_array_size(lines) == 0 && json_object_get(p, "last_stderr"))
			lines = json_object_get(p, "last_stderr");
		put(b, "<li><b>");
		esc_json(b, json_object_get(ev, "type"));
		put(b, "</b> <small>");
		esc_json(b, json_object_get(ev, "timestamp"));
		put(b, "</small> ");
		esc_json(b, p);
		put(b, "</li>");
	}
	put(b, "</ul></td><td><pre class=\"stderr\">");
	i = json_array_size(lines) > DASH_STDERR ? json_array_size(lines) - DASH_STDERR : 0;
	for (; i < json_array_size(lines); i++) {
		esc_json(b, json_array_get(lines, i));
		put(b, "\n");
	}
	put(b, "</pre></td>");
}

static void
agent_row(struct buf *b, struct sup *s, struct agent *a, const char *csrf)
{
	json_t *st = agent_status_json(a);
	const char *state = json_string_value(json_object_get(st, "state"));
	struct event_filter f = { .agent = a->name };
	struct events_page pg = { .max_bytes = EVENTS_PAGE_MAX };
	bool paused = json_is_true(json_object_get(st, "paused"));

	if (store_events_page(s->store, &f, -1, DASH_EVENTS, &pg) < 0)
		json_array_clear(pg.out);	/* the store said why in the log; the rest shows */
	put(b, "<tr class=\"agent\" id=\"agent-");
	esc(b, a->name);
	put(b, "\" data-agent=\"");
	esc(b, a->name);
	put(b, "\" data-state=\"");
	esc(b, state ? state : "");
	put(b, "\"><td class=\"name\">");
	esc(b, a->name);
	putf(b, "</td><td class=\"st st-%s\">", state ? state : "");
	esc(b, state ? state : "");
	if (paused)
		put(b, " <span class=\"paused\">(paused)</span>");
	put(b, "</td>");
	cell(b, "owner", json_object_get(st, "owner"));
	cell(b, "next", json_object_get(st, "next_run"));
	outcome(b, st);
	counters(b, st);
	cell(b, "err", json_object_get(st, "last_error"));
	recent(b, st, pg.out);
	put(b, "<td class=\"actions\">");
	action(b, a->name, paused ? "resume" : "pause", paused ? "resume" : "pause", csrf);
	action(b, a->name, "run", "run now", csrf);
	action(b, a->name, "restart", "restart", csrf);
	put(b, "</td></tr>\n");
	json_decref(pg.out);
	json_decref(st);
}

/* ---- the page ------------------------------------------------------------- */

/* The newest event's id: where the page's stream starts. */
static json_int_t
newest_event(struct sup *s)
{
	struct events_page pg = { .max_bytes = EVENTS_PAGE_MAX };
	json_int_t id = 0;
	if (store_events_page(s->store, NULL, -1, 1, &pg) == 0)
		id = json_integer_value(json_object_get(json_array_get(pg.out, 0), "id"));
	json_decref(pg.out);
	return id;
}

static void
script(struct buf *b, const char *nonce)
{
	putf(b, "<script nonce=\"%s\">(function(){"
	    "var t0=Date.now(),due=false,a=document.body.dataset.after;"
	    "if(!window.EventSource)return;"
	    "var es=new EventSource('/v1/events/stream?after='+encodeURIComponent(a));"
	    "es.onmessage=function(){if(due)return;due=true;es.close();"
	    "setTimeout(function(){location.reload();},Math.max(0,%d-(Date.now()-t0)));};"
	    "})();</script>", nonce, RELOAD_MIN_MS);
}

/* A page as it is sent: a few rows each time libmicrohttpd asks for more
 * (DASH_ROWS_PER_PASS), so 1000 agents are rendered over many passes of
 * the loop, not in one.  Agents are looked up by their place at each pass:
 * one added or removed meanwhile (a reload) may be missed or shown twice,
 * never read after it is freed. */
struct page {
	struct sup *sup;
	struct buf out;               /* rendered, not yet taken */
	size_t next;                  /* the next agent's place; SIZE_MAX: not started */
	bool ended;
	char csrf[SESSION_HEX + 1];
	char nonce[2 * NONCE_BYTES + 1];
};

static void
page_top(struct page *p)
{
	struct sup *s = p->sup;
	int running = 0, paused = 0;
	for (size_t i = 0; i < s->nagents; i++) {
		running += s->agents[i]->pid > 0;
		paused += s->agents[i]->st.paused;
	}
	head(&p->out, "agentd", true);
	putf(&p->out, "<body data-after=\"%lld\"><h1>agentd</h1><p id=\"summary\">%zu agents, "
	    "%d with a worker, %d paused; pid %d</p>\n", (long long)newest_event(s),
	    s->nagents, running, paused, (int)getpid());
	put(&p->out, "<table id=\"agents\"><thead><tr><th>agent</th><th>state</th><th>owner</th>"
	    "<th>next run</th><th>last outcome</th><th>runs / errors / skipped / restarts</th>"
	    "<th>last error</th><th>recent events</th><th>stderr</th><th></th></tr></thead>"
	    "<tbody>\n");
	p->next = 0;
}

static void
page_more(struct page *p)
{
	struct sup *s = p->sup;
	if (p->next == SIZE_MAX) {
		page_top(p);
		return;
	}
	for (size_t n = 0; n < DASH_ROWS_PER_PASS && p->next < s->nagents; n++)
		agent_row(&p->out, s, s->agents[p->next++], p->csrf);
	if (p->next < s->nagents)
		return;
	put(&p->out, "</tbody></table>");
	script(&p->out, p->nonce);
	put(&p->out, "</body></html>\n");
	p->ended = true;
}

static ssize_t
page_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct page *p = cls;
	(void)pos;
	if (buf_pending(&p->out) == 0 && !p->ended)
		page_more(p);
	size_t n = buf_pending(&p->out) < max ? buf_pending(&p->out) : max;
	if (n == 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	memcpy(out, buf_head(&p->out), n);
	buf_consume(&p->out, n);
	return (ssize_t)n;
}

static void
page_free(void *cls)
{
	struct page *p = cls;
	buf_free(&p->out);
	free(p);
}

static int
render(struct api_req *req)
{
	struct page *p = xcalloc(1, sizeof(*p));

	if (http_random_hex(p->nonce, NONCE_BYTES) < 0) {
		free(p);
		return message_page(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "agentd",
		    "no random bytes for the page's nonce", false);
	}
	p->sup = req->sup;
	p->next = SIZE_MAX;
	snprintf(p->csrf, sizeof(p->csrf), "%s", req->csrf);
	buf_init(&p->out);
	return http_reply_html_stream(req->conn, page_read, p, page_free, p->nonce);
}

/* ---- forms ---------------------------------------------------------------- */

/* The value of key in an application/x-www-form-urlencoded body, decoded,
 * into out (len bytes); false when it is not there or does not fit. */
static bool
form_value(const char *body, size_t n, const char *key, char *out, size_t len)
{
	size_t klen = strlen(key);
	const char *end = body + n;

	for (const char *p = body; p && p < end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p)), *stop = amp ? amp : end;
		if ((size_t)(stop - p) > klen && !strncmp(p, key, klen) && p[klen] == '=') {
			size_t vlen = (size_t)(stop - p) - klen - 1;
			if (vlen >= len)
				return false;
			memcpy(out, p + klen + 1, vlen);
			out[vlen] = '\0';
			for (char *c = out; *c; c++)	/* a form's space */
				if (*c == '+')
					*c = ' ';
			MHD_http_unescape(out);
			return true;
		}
		p = amp ? amp + 1 : NULL;
	}
	return false;
}

/* GET /: the page; with ?token=, a login, and a redirect that drops the
 * token from the address. */
int
dash_page(struct api_req *req)
{
	const char *token = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "token");
	char cookie[256];

	if (token && http_session_start(req, token, cookie, sizeof(cookie)))
		return http_reply_redirect(req->conn, "/", cookie);
	if (token && req->authed)
		return http_reply_redirect(req->conn, "/", NULL);
	if (token)
		return login_page(req, "That is not agentd's token.");
	if (!req->authed)
		return login_page(req, "This listener needs agentd's token (agentd.http.token_file, "
		    "or AGENTD_HTTP_TOKEN).");
	return render(req);
}

/* POST /login, the form's token. */
int
dash_login(struct api_req *req)
{
	char token[HTTP_TOKEN_MAX + 1], cookie[256];
	bool given = form_value(req->body, req->body_len, "token", token, sizeof(token));
	bool ok = given && http_session_start(req, token, cookie, sizeof(cookie));

	explicit_bzero(token, sizeof(token));
	if (ok)
		return http_reply_redirect(req->conn, "/", cookie);
	return login_page(req, "That is not agentd's token.");
}

/* POST /ui/agents/{id}/VERB: the form's CSRF token, then the route's
 * command, then back to the page (a refusal says why instead). */
int
dash_action(struct api_req *req)
{
	char csrf[SESSION_HEX + 1], where[128];
	struct cmd_result r;
	struct api_error err;
	int rc;

	if (!form_value(req->body, req->body_len, "csrf", csrf, sizeof(csrf)) ||
	    !http_secret_eq(csrf, req->csrf))
		return message_page(req, MHD_HTTP_FORBIDDEN, "refused", "This form did not come "
		    "from agentd's page, or from a page of an older login or an earlier agentd "
		    "(its CSRF token does not match): load the dashboard again.", false);
	commands_run(req->sup, (enum cmd_id)req->route->cmd, req->agent, NULL, &r);
	if (r.code != 0) {
		api_cmd_error(req->route, &r, &err);
		rc = message_page(req, err.status, "refused", err.message, false);
	} else {
		snprintf(where, sizeof(where), "/#agent-%s", req->agent);
		rc = http_reply_redirect(req->conn, where, NULL);
	}
	cmd_result_clear(&r);
	return rc;
}
