/*
 * mcp_http: the Streamable HTTP transport of the MCP client, over libcurl.
 *
 * Every message is a POST to the server's one URL, with Accept:
 * application/json, text/event-stream.  A request's answer is either a
 * JSON body or an event stream on which the server may first send its own
 * notifications and requests; each `data:` event is one JSON-RPC message
 * for mcp_dispatch().  The transfer is dropped as soon as the response we
 * wait for has arrived (a stream may stay open after it).
 *
 * Mcp-Session-Id from the initialize answer is echoed on every later POST,
 * with MCP-Protocol-Version; a 404 (or 400) to a request that carried a
 * session means the session is gone and the caller initializes again.
 * DELETE ends the session on shutdown.  The `headers` of the config (auth
 * tokens) are sent and never logged.
 *
 * An event's data lines gather up to HTTP_EVENT_MAX, one message's worth
 * (a stream of data: lines with no blank line between them would grow
 * without end); past it, or when a message the server sent makes it
 * unusable (s->fault), the transfer is stopped and the server goes down
 * with the reason.
 *
 * The deadline is kept by the progress callback, so progress notifications
 * on the stream extend a call the same way they do on stdio, and a cancel
 * from agentd is noticed there too.  Messages the server wants answered
 * while a POST is in flight are queued and sent once it is over: one easy
 * handle is never used re-entrantly.
 *
 * The legacy HTTP+SSE transport (transport_type: sse, for servers from
 * before 2025-03-26) is here too: a GET opens an event stream whose first
 * `endpoint` event says where to POST; every answer then comes on that
 * stream.  The stream is a handle in a multi handle, read with
 * curl_multi_poll, which also watches agentd's pipe.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/log.h"
#include "common/util.h"
#include "worker/mcp_int.h"

#define HTTP_BODY_MAX (8u << 20)
#define HTTP_EVENT_MAX HTTP_BODY_MAX    /* one event's data: one JSON-RPC message */
#define HTTP_ERR_SNIPPET 300
#define HTTP_CONNECT_TIMEOUT_MS 10000

struct mcp_http {
	CURL *c;
	struct curl_slist *cfg;     /* the config's headers */
	char *session;
	json_t *queued;             /* bodies to send after the current POST */
	bool busy;

	/* legacy sse: the GET stream the server answers on, and where to POST */
	CURLM *multi;
	CURL *get;
	struct curl_slist *get_hdrs;
	char *endpoint;
	char event[32];
	struct buf gline, gdata;

	/* the POST in flight */
	struct mcp_server *s;
	bool is_request, sse, got, timed_out, cancelled;
	int64_t start, deadline, timeout, hard;
	struct buf body, line, data;
};

static int legacy_open(struct mcp_server *s, char *err, size_t errlen);

int
mcp_http_open(struct mcp_server *s, char *err, size_t errlen)
{
	struct mcp_http *h = xcalloc(1, sizeof(*h));
	const json_t *hdrs = json_object_get(s->def, "headers"), *v;
	const char *k;

	h->c = curl_easy_init();
	if (h->c == NULL) {
		free(h);
		snprintf(err, errlen, "cannot make a libcurl handle");
		return MCP_E_DOWN;
	}
	json_object_foreach((json_t *)hdrs, k, v) {
		char line[4096];
		if (!json_is_string(v) || strpbrk(k, ":\r\n") || strpbrk(json_string_value(v), "\r\n"))
			continue;
		snprintf(line, sizeof(line), "%s: %s", k, json_string_value(v));
		h->cfg = curl_slist_append(h->cfg, line);
		explicit_bzero(line, sizeof(line));
	}
	h->queued = json_array();
	buf_init(&h->body);
	buf_init(&h->line);
	buf_init(&h->data);
	s->http = h;
	return s->transport == MCP_SSE ? legacy_open(s, err, errlen) : 0;
}

static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
	struct mcp_http *h = arg;
	size_t len = size * n;
	const char *key = "mcp-session-id:";

	if (len > strlen(key) && strncasecmp(p, key, strlen(key)) == 0) {
		const char *v = p + strlen(key);
		size_t vl = len - strlen(key);
		while (vl > 0 && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		if (vl > 0 && vl < 256) {
			free(h->session);
			h->session = strndup(v, vl);
		}
	} else if (len > 13 && strncasecmp(p, "content-type:", 13) == 0)
		h->sse = memmem(p, len, "text/event-stream", 17) != NULL;
	return len;
}

/* One event's data line joins the ones before it, up to HTTP_EVENT_MAX;
 * false (and the server's fault) past it. */
static bool
data_line(struct mcp_server *s, struct buf *data, const char *p, size_t n)
{
	if (buf_pending(data) + n + 1 > HTTP_EVENT_MAX) {
		snprintf(s->fault, sizeof(s->fault), "an event on its stream is over %u bytes "
		    "(data: lines with no blank line between them)", HTTP_EVENT_MAX);
		return false;
	}
	if (buf_pending(data) > 0)
		buf_append(data, "\n", 1);
	buf_append(data, p, n);
	return true;
}

/* One SSE line (without its end): data lines gather, a blank line ends
 * the event; event:, id: and retry: need nothing from us.  false: the
 * transfer must stop (s->fault says why). */
static bool
sse_line(struct mcp_http *h, const char *p, size_t n)
{
	if (n == 0) {
		if (buf_pending(&h->data) > 0)
			mcp_dispatch(h->s, (char *)buf_head(&h->data), buf_pending(&h->data));
		buf_reset(&h->data);
		return h->s->fault[0] == '\0';
	}
	if (n >= 5 && memcmp(p, "data:", 5) == 0) {
		p += 5, n -= 5;
		if (n > 0 && *p == ' ')
			p++, n--;
		return data_line(h->s, &h->data, p, n);
	}
	return true;
}

static bool
ok_status(struct mcp_http *h)
{
	long st = 0;
	curl_easy_getinfo(h->c, CURLINFO_RESPONSE_CODE, &st);
	return st >= 200 && st < 300;
}

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct mcp_http *h = arg;
	size_t len = size * n;

	if (!h->sse || !ok_status(h)) {
		if (buf_pending(&h->body) + len > HTTP_BODY_MAX)
			return 0;	/* too large: the transfer fails */
		buf_append(&h->body, p, len);
		return len;
	}
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n') {
			size_t ln = buf_pending(&h->line);
			char *lp = (char *)buf_head(&h->line);
			if (ln > 0 && lp[ln - 1] == '\r')
				ln--;
			bool go_on = sse_line(h, lp, ln);
			buf_reset(&h->line);
			if (!go_on)
				return 0;	/* the transfer fails; perform says why */
		} else if (buf_pending(&h->line) < HTTP_BODY_MAX)
			buf_append(&h->line, p + i, 1);
		else
			return 0;
		if (h->is_request && h->s->reply) {
			h->got = true;
			return 0;	/* what we waited for is here: stop reading */
		}
	}
	return len;
}

static int
on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct mcp_http *h = arg;
	int64_t now = mono_ms();
	const struct mcp_hooks *hk = &h->s->m->h;

	(void)dt, (void)dn, (void)ut, (void)un;
	if (h->s->progressed) {
		h->s->progressed = false;
		h->deadline = now + h->timeout;
		if (h->deadline > h->start + h->hard)
			h->deadline = h->start + h->hard;
	}
	if (now >= h->deadline) {
		h->timed_out = true;
		return 1;
	}
	if (h->is_request && hk->interrupted && hk->interrupted(hk->arg)) {
		h->cancelled = true;
		return 1;
	}
	return 0;
}

static struct curl_slist *
post_headers(struct mcp_server *s)
{
	struct mcp_http *h = s->http;
	struct curl_slist *l = NULL;
	char line[320];

	for (struct curl_slist *c = h->cfg; c; c = c->next)
		l = curl_slist_append(l, c->data);
	l = curl_slist_append(l, "Content-Type: application/json");
	l = curl_slist_append(l, "Accept: application/json, text/event-stream");
	if (s->version[0]) {
		snprintf(line, sizeof(line), "MCP-Protocol-Version: %s", s->version);
		l = curl_slist_append(l, line);
	}
	if (h->session) {
		snprintf(line, sizeof(line), "Mcp-Session-Id: %s", h->session);
		l = curl_slist_append(l, line);
	}
	return l;
}

static void
setup(struct mcp_http *h, const char *url, struct curl_slist *hdrs)
{
	CURL *c = h->c;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)HTTP_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, h);
}

/* Why a non-2xx answer failed, for the error message. */
static void
status_error(struct mcp_http *h, long st, char *err, size_t errlen)
{
	char snippet[HTTP_ERR_SNIPPET];
	str_printable(snippet, sizeof(snippet), (char *)buf_head(&h->body),
	    buf_pending(&h->body));
	snprintf(err, errlen, "HTTP %ld%s%s", st, snippet[0] ? ": " : "", snippet);
}

static int perform(struct mcp_server *s, const char *body, bool is_request,
    int64_t timeout_ms, int64_t hard_ms, char *err, size_t errlen);
static int legacy_post(struct mcp_server *s, const char *body, bool is_request,
    int64_t timeout_ms, int64_t hard_ms, char *err, size_t errlen);

static void
send_queued(struct mcp_server *s)
{
	struct mcp_http *h = s->http;
	char err[256];
	while (h && json_array_size(h->queued) > 0) {
		json_t *b = json_incref(json_array_get(h->queued, 0));
		json_array_remove(h->queued, 0);
		if (s->transport == MCP_SSE)
			(void)legacy_post(s, json_string_value(b), false, 5000, 5000, err, sizeof(err));
		else
			(void)perform(s, json_string_value(b), false, 5000, 5000, err, sizeof(err));
		json_decref(b);
	}
}

static int
perform(struct mcp_server *s, const char *body, bool is_request, int64_t timeout_ms,
    int64_t hard_ms, char *err, size_t errlen)
{
	struct mcp_http *h = s->http;
	const char *url = json_string_value(json_object_get(s->def, "url"));
	struct curl_slist *hdrs = post_headers(s);
	bool had_session = h->session != NULL;
	long st = 0;

	h->s = s;
	h->is_request = is_request;
	h->sse = h->got = h->timed_out = h->cancelled = false;
	h->start = mono_ms();
	h->timeout = timeout_ms;
	h->hard = hard_ms > timeout_ms ? hard_ms : timeout_ms;
	h->deadline = h->start + timeout_ms;
	buf_reset(&h->body);
	buf_reset(&h->line);
	buf_reset(&h->data);
	setup(h, url, hdrs);
	curl_easy_setopt(h->c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h->c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	h->busy = true;
	CURLcode rc = curl_easy_perform(h->c);
	h->busy = false;
	curl_easy_getinfo(h->c, CURLINFO_RESPONSE_CODE, &st);
	curl_slist_free_all(hdrs);

	if (!h->sse && buf_pending(&h->body) > 0 && (st < 300 || is_request) &&
	    rc == CURLE_OK)
		mcp_dispatch(s, (char *)buf_head(&h->body), buf_pending(&h->body));
	if (h->sse && buf_pending(&h->data) > 0 && !h->got && !s->fault[0])	/* ended mid-event */
		sse_line(h, "", 0);
	if (s->fault[0]) {
		snprintf(err, errlen, "%s", s->fault);
		return MCP_E_DOWN;
	}
	if (h->got || (is_request && s->reply))
		return 0;
	if (h->timed_out)
		return MCP_E_TIMEOUT;
	if (h->cancelled)
		return MCP_E_CANCELLED;
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s", curl_easy_strerror(rc));
		return MCP_E_DOWN;
	}
	if (had_session && (st == 404 || st == 400)) {
		free(h->session);
		h->session = NULL;
		snprintf(err, errlen, "HTTP %ld: the session is gone", st);
		return MCP_E_SESSION;
	}
	if (st < 200 || st >= 300) {
		status_error(h, st, err, errlen);
		return MCP_E_DOWN;
	}
	return 0;
}

/* ---- legacy HTTP+SSE --------------------------------------------------------- */

static void
legacy_event(struct mcp_http *h)
{
	const char *data = (const char *)buf_head(&h->gdata);
	size_t n = buf_pending(&h->gdata);

	if (strcmp(h->event, "endpoint") == 0 && n > 0 && n < 2048) {
		const char *url = json_string_value(json_object_get(h->s->def, "url"));
		CURLU *u = curl_url();
		char *rel = strndup(data, n), *abs = NULL;
		if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		    curl_url_set(u, CURLUPART_URL, rel, 0) == CURLUE_OK &&
		    curl_url_get(u, CURLUPART_URL, &abs, 0) == CURLUE_OK) {
			free(h->endpoint);
			h->endpoint = strdup(abs);
		}
		curl_free(abs);
		free(rel);
		curl_url_cleanup(u);
	} else if ((h->event[0] == '\0' || strcmp(h->event, "message") == 0) && n > 0)
		mcp_dispatch(h->s, data, n);
	buf_reset(&h->gdata);
	h->event[0] = '\0';
}

static size_t
on_stream(char *p, size_t size, size_t n, void *arg)
{
	struct mcp_http *h = arg;
	size_t len = size * n;

	for (size_t i = 0; i < len; i++) {
		if (p[i] != '\n') {
			if (buf_pending(&h->gline) >= HTTP_BODY_MAX)
				return 0;
			buf_append(&h->gline, p + i, 1);
			continue;
		}
		char *lp = (char *)buf_head(&h->gline);
		size_t ln = buf_pending(&h->gline);
		if (ln > 0 && lp[ln - 1] == '\r')
			ln--;
		if (ln == 0)
			legacy_event(h);
		else if (ln >= 6 && memcmp(lp, "event:", 6) == 0) {
			size_t k = ln - 6, off = 6;
			if (k > 0 && lp[off] == ' ')
				off++, k--;
			snprintf(h->event, sizeof(h->event), "%.*s", (int)k, lp + off);
		} else if (ln >= 5 && memcmp(lp, "data:", 5) == 0) {
			size_t off = ln > 5 && lp[5] == ' ' ? 6 : 5;
			if (!data_line(h->s, &h->gdata, lp + off, ln - off))
				return 0;
		}
		buf_reset(&h->gline);
		if (h->s->fault[0])
			return 0;
	}
	return len;
}

/* Read the stream until done() or the deadline: 0, or MCP_E_*. */
static int
legacy_pump(struct mcp_server *s, int64_t timeout_ms, bool (*done)(struct mcp_server *),
    bool watch_agentd, char *err, size_t errlen)
{
	struct mcp_http *h = s->http;
	int64_t start = mono_ms(), deadline = start + timeout_ms;
	const struct mcp_hooks *hk = &s->m->h;
	int running = 1;

	while (!done(s)) {
		h->busy = true;
		CURLMcode mc = curl_multi_perform(h->multi, &running);
		h->busy = false;
		if (s->fault[0]) {
			snprintf(err, errlen, "%s", s->fault);
			return MCP_E_DOWN;
		}
		send_queued(s);
		if (done(s))
			break;
		if (mc != CURLM_OK || running == 0) {
			snprintf(err, errlen, "the event stream ended");
			return MCP_E_DOWN;
		}
		if (s->progressed) {
			s->progressed = false;
			deadline = mono_ms() + timeout_ms;
			if (deadline > start + h->hard)
				deadline = start + h->hard;
		}
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			return MCP_E_TIMEOUT;
		struct curl_waitfd extra = { hk->agentd_fd, CURL_WAIT_POLLIN, 0 };
		bool with = watch_agentd && hk->agentd_fd >= 0;
		curl_multi_poll(h->multi, with ? &extra : NULL, with ? 1 : 0,
		    (int)(left < 1000 ? left : 1000), NULL);
		if (with && extra.revents && hk->interrupted && hk->interrupted(hk->arg))
			return MCP_E_CANCELLED;
	}
	return 0;
}

static bool has_endpoint(struct mcp_server *s) { return s->http->endpoint != NULL; }
static bool has_reply(struct mcp_server *s) { return s->reply != NULL; }

static int
legacy_open(struct mcp_server *s, char *err, size_t errlen)
{
	struct mcp_http *h = s->http;
	const char *url = json_string_value(json_object_get(s->def, "url"));

	h->multi = curl_multi_init();
	h->get = curl_easy_init();
	buf_init(&h->gline);
	buf_init(&h->gdata);
	if (h->multi == NULL || h->get == NULL) {
		snprintf(err, errlen, "cannot make libcurl handles");
		return MCP_E_DOWN;
	}
	for (struct curl_slist *c = h->cfg; c; c = c->next)
		h->get_hdrs = curl_slist_append(h->get_hdrs, c->data);
	h->get_hdrs = curl_slist_append(h->get_hdrs, "Accept: text/event-stream");
	h->s = s;
	curl_easy_setopt(h->get, CURLOPT_URL, url);
	curl_easy_setopt(h->get, CURLOPT_HTTPHEADER, h->get_hdrs);
	curl_easy_setopt(h->get, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->get, CURLOPT_CONNECTTIMEOUT_MS, (long)HTTP_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h->get, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h->get, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(h->get, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(h->get, CURLOPT_WRITEDATA, h);
	curl_multi_add_handle(h->multi, h->get);
	h->hard = s->init_timeout_ms;
	int rc = legacy_pump(s, s->init_timeout_ms, has_endpoint, true, err, errlen);
	if (rc == MCP_E_TIMEOUT)
		snprintf(err, errlen, "no endpoint event on %s in %lld ms", url,
		    (long long)s->init_timeout_ms);
	return rc;
}

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p, (void)arg;
	return size * n;
}

static int
legacy_post(struct mcp_server *s, const char *body, bool is_request, int64_t timeout_ms,
    int64_t hard_ms, char *err, size_t errlen)
{
	struct mcp_http *h = s->http;
	struct curl_slist *hdrs = NULL;
	long st = 0;
	int running = 0;

	h->busy = true;	/* an idle stream may have ended: then the session is gone */
	curl_multi_perform(h->multi, &running);
	h->busy = false;
	if (running == 0) {
		snprintf(err, errlen, "the event stream had ended");
		return MCP_E_SESSION;
	}
	for (struct curl_slist *c = h->cfg; c; c = c->next)
		hdrs = curl_slist_append(hdrs, c->data);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	curl_easy_reset(h->c);
	curl_easy_setopt(h->c, CURLOPT_URL, h->endpoint);
	curl_easy_setopt(h->c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h->c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h->c, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(h->c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h->c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h->c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	CURLcode rc = curl_easy_perform(h->c);
	curl_easy_getinfo(h->c, CURLINFO_RESPONSE_CODE, &st);
	curl_slist_free_all(hdrs);
	if (rc == CURLE_OK && (st == 404 || st == 400)) {
		snprintf(err, errlen, "POST answered HTTP %ld: the session is gone", st);
		return MCP_E_SESSION;
	}
	if (rc != CURLE_OK || st < 200 || st >= 300) {
		if (rc != CURLE_OK)
			snprintf(err, errlen, "POST %s", curl_easy_strerror(rc));
		else
			snprintf(err, errlen, "POST answered HTTP %ld", st);
		return MCP_E_DOWN;
	}
	if (!is_request)
		return 0;
	h->hard = hard_ms > timeout_ms ? hard_ms : timeout_ms;
	return legacy_pump(s, timeout_ms, has_reply, true, err, errlen);
}

static void
legacy_close(struct mcp_http *h)
{
	if (h->multi && h->get)
		curl_multi_remove_handle(h->multi, h->get);
	if (h->get)
		curl_easy_cleanup(h->get);
	if (h->multi)
		curl_multi_cleanup(h->multi);
	curl_slist_free_all(h->get_hdrs);
	buf_free(&h->gline);
	buf_free(&h->gdata);
	free(h->endpoint);
}

int
mcp_http_post(struct mcp_server *s, const char *body, bool is_request,
    int64_t timeout_ms, int64_t hard_ms, char *err, size_t errlen)
{
	struct mcp_http *h = s->http;
	int rc;

	if (h == NULL) {
		snprintf(err, errlen, "not connected");
		return MCP_E_DOWN;
	}
	if (h->busy) {	/* an answer to the server, from inside a transfer */
		json_array_append_new(h->queued, json_string(body));
		return 0;
	}
	if (s->transport == MCP_SSE)
		return legacy_post(s, body, is_request, timeout_ms, hard_ms, err, errlen);
	rc = perform(s, body, is_request, timeout_ms, hard_ms, err, errlen);
	send_queued(s);
	return rc;
}

void
mcp_http_close(struct mcp_server *s)
{
	struct mcp_http *h = s->http;

	if (h == NULL)
		return;
	if (h->session && s->transport == MCP_HTTP) {	/* end the session */
		const char *url = json_string_value(json_object_get(s->def, "url"));
		struct curl_slist *hdrs = post_headers(s);
		setup(h, url, hdrs);
		curl_easy_setopt(h->c, CURLOPT_CUSTOMREQUEST, "DELETE");
		curl_easy_setopt(h->c, CURLOPT_NOPROGRESS, 1L);
		curl_easy_setopt(h->c, CURLOPT_TIMEOUT_MS, 2000L);
		h->s = s;
		h->is_request = false;
		(void)curl_easy_perform(h->c);
		curl_slist_free_all(hdrs);
		free(h->session);
	}
	if (s->transport == MCP_SSE)
		legacy_close(h);
	curl_easy_cleanup(h->c);
	curl_slist_free_all(h->cfg);
	json_decref(h->queued);
	buf_free(&h->body);
	buf_free(&h->line);
	buf_free(&h->data);
	free(h);
	s->http = NULL;
}
