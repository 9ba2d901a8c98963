/*
 * sse: GET /v1/events/stream, the event log as Server-Sent Events -- the
 * seed's event_router.stream(session_id=...).
 *
 * Each event is one message, `id:` its id in the log and `data:` the event
 * as JSON (the form `agentctl events --json` prints), so a client that
 * reconnects with Last-Event-ID (or ?after=) gets what came after it:
 * nothing lost, nothing twice, across a dropped connection and across a
 * restart of agentd, with or without Redis.  Only events the store has
 * committed are sent: a stream reads them from the store, never from the
 * event as it is emitted, because an id sent before its commit could be
 * given to another event after a SIGKILL, and a client resuming after it
 * would skip that one.  So a stream's queue is the store itself: it holds
 * one page (EVENTS_PAGE_MAX) at a time and reads the next once MHD has
 * sent it, at the client's pace; a client that stops reading is closed by
 * MHD's idle timeout (HTTP_IDLE_MS), and one that resumes later loses
 * nothing the log still holds (event_retention).  A stream is filtered as
 * the listing is (agent, session_id, type), on the same indexes.
 *
 * Between events a stream is suspended (MHD_suspend_connection): when an
 * event it wants is published it is marked, and after the loop pass has
 * committed (http_pump) it is resumed and reads on.  While a stream is
 * open, a comment line every KEEPALIVE_MS lets proxies and clients know it
 * is alive, and finds the peers that went away (a suspended connection
 * sees no hang-up); with no stream open no timer is armed.  The log of
 * event_store memory is lost with agentd, and its ids start again: a
 * resume across a restart needs the database store (the default).
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/jsonmp.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/util.h"
#include "supervisor/http_int.h"
#include "supervisor/sup.h"

#define KEEPALIVE_MS 15000
#define BLOCK_SIZE (16u << 10)   /* what MHD asks of a stream at once */
#define OPENING ": agentd event stream\n\n"
#define KEEPALIVE ": keep-alive\n\n"

struct sse {
	struct http *h;
	struct listener *l;
	struct MHD_Connection *conn;
	char *agent, *session_id, *type;
	struct event_filter filter;   /* pointing at them */
	int64_t after;                /* the last id sent (or looked past) */
	struct buf out;               /* text not yet taken by MHD */
	bool suspended;
	bool news;                    /* an event it wants was published since it read */
	struct sse *next;
};

static void
unlink_stream(struct sse *x)
{
	for (struct sse **pp = &x->h->streams; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			x->h->nstreams--;
			break;
		}
	if (x->h->nstreams == 0)
		timer_stop(&x->h->keepalive);
}

static void
stream_free(void *cls)
{
	struct sse *x = cls;
	unlink_stream(x);
	buf_free(&x->out);
	free(x->agent);
	free(x->session_id);
	free(x->type);
	free(x);
}

/* One message per event: "id: N\ndata: {...}\n\n" (compact JSON has no
 * newline in it). */
static void
format_page(struct sse *x, json_t *events)
{
	size_t i;
	json_t *e;
	char head[48];
	json_array_foreach(events, i, e) {
		char *text = json_dumps_short(e, JSON_COMPACT);
		int n = snprintf(head, sizeof(head), "id: %lld\ndata: ",
		    (long long)json_integer_value(json_object_get(e, "id")));
		buf_append(&x->out, head, (size_t)n);
		buf_append(&x->out, text ? text : "{}", text ? strlen(text) : 2);
		buf_append(&x->out, "\n\n", 2);
		free(text);
	}
}

/* The next page of what the stream wants, up to what is committed. */
static int
fill(struct sse *x)
{
	struct store *st = x->h->sup->store;
	int64_t upto = store_last_id(st);
	struct events_page pg = { .max_bytes = EVENTS_PAGE_MAX, .upto = upto };

	x->news = false;
	if (upto <= x->after)
		return 0;
	if (store_events_page(st, &x->filter, x->after, INT32_MAX, &pg) < 0) {
		json_decref(pg.out);
		log_limited(LL_WARN, "http: an event stream's store query failed; it waits for "
		    "the next event");
		return -1;
	}
	size_t n = json_array_size(pg.out);
	format_page(x, pg.out);
	if (pg.cut)	/* more to read at once */
		x->after = json_integer_value(json_object_get(json_array_get(pg.out, n - 1), "id"));
	else		/* all it wants up to upto is in this page */
		x->after = upto;
	json_decref(pg.out);
	return 0;
}

static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse *x = cls;
	(void)pos;
	if (buf_pending(&x->out) == 0 && !x->h->closing)
		fill(x);
	size_t n = buf_pending(&x->out);
	if (n == 0) {
		if (x->h->closing)
			return MHD_CONTENT_READER_END_OF_STREAM;
		MHD_suspend_connection(x->conn);	/* until it has news (sse_pump) */
		x->suspended = true;
		return 0;
	}
	if (n > max)
		n = max;
	memcpy(buf, buf_head(&x->out), n);
	buf_consume(&x->out, n);
	return (ssize_t)n;
}

static void
resume(struct sse *x)
{
	if (!x->suspended)
		return;
	x->suspended = false;
	x->l->resumed = true;
	MHD_resume_connection(x->conn);
}

/* MHD goes on with what was resumed only when it runs (twice) next. */
static void
run_resumed(struct http *h)
{
	for (size_t i = 0; i < h->nls; i++)
		if (h->ls[i].resumed) {
			h->ls[i].resumed = false;
			http_run_resumed(&h->ls[i]);
		}
}

/* Where a stream starts: after Last-Event-ID (a reconnecting EventSource),
 * after ?after=, or at the end of the log (what comes next). */
static int
start_after(struct api_req *req, int64_t *after)
{
	const char *v = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
	    "Last-Event-ID");
	json_t *a = json_object_get(req->args, "after");
	char *end;

	if (v && *v) {
		errno = 0;
		long long n = strtoll(v, &end, 10);
		if (*end || errno || n < 0) {
			struct api_error e = { .status = 400, .code = "bad_request" };
			snprintf(e.message, sizeof(e.message), "Last-Event-ID must be an event's id "
			    "(a number this stream sent)");
			return http_reply_error(req->conn, &e), -1;
		}
		*after = n;
	} else
		*after = a ? json_integer_value(a) : store_last_id(req->sup->store);
	return 0;
}

static char *
arg_dup(json_t *args, const char *name)
{
	const char *v = json_string_value(json_object_get(args, name));
	return v ? xstrdup(v) : NULL;
}

int
sse_open(struct api_req *req)
{
	struct http *h = ((struct listener *)req->listener)->h;
	const struct cmd_arg *bad = NULL;
	int64_t after;
	char err[256];

	/* the listing's args, by the same rows (types are the decoder's) */
	if (cmd_check_args(&cmd_defs[CMD_EVENTS], req->args, &bad, err, sizeof(err)) < 0) {
		struct cmd_result r = { .code = RESP_BAD_REQUEST, .error = err, .bad_arg = bad->name };
		struct api_error e;
		api_cmd_error(req->route, &r, &e);
		return http_reply_error(req->conn, &e);
	}
	if (start_after(req, &after) < 0)
		return MHD_YES;
	struct sse *x = xcalloc(1, sizeof(*x));
	x->h = h;
	x->l = req->listener;
	x->conn = req->conn;
	x->after = after;
	x->agent = req->agent ? xstrdup(req->agent) : NULL;
	x->session_id = arg_dup(req->args, "session_id");
	x->type = arg_dup(req->args, "type");
	x->filter = (struct event_filter){ x->agent, x->session_id, x->type };
	buf_init(&x->out);
	buf_append(&x->out, OPENING, strlen(OPENING));	/* so the headers go out at once */
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, BLOCK_SIZE,
	    stream_read, x, stream_free);
	if (r == NULL) {
		stream_free(x);
		return MHD_NO;
	}
	x->next = h->streams;
	h->streams = x;
	h->nstreams++;
	if (!timer_armed(&h->keepalive))
		timer_in(&h->keepalive, KEEPALIVE_MS);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	enum MHD_Result rc = MHD_queue_response(req->conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);	/* the connection holds it; stream_free when it ends */
	return rc;
}

void
sse_published(struct http *h, const struct event *ev)
{
	for (struct sse *x = h->streams; x; x = x->next)
		if (!x->news && event_filter_match(&x->filter, ev))
			x->news = true;
}

void
sse_pump(struct http *h)
{
	int64_t last = store_last_id(h->sup->store);
	for (struct sse *x = h->streams; x; x = x->next)
		if (x->news && x->suspended && last > x->after)
			resume(x);
	run_resumed(h);
}

static void
on_keepalive(struct timer *t)
{
	struct http *h = t->ctx;
	for (struct sse *x = h->streams; x; x = x->next)
		if (x->suspended) {
			buf_append(&x->out, KEEPALIVE, strlen(KEEPALIVE));
			resume(x);
		}
	run_resumed(h);
	if (h->streams)
		timer_in(&h->keepalive, KEEPALIVE_MS);
}

void
sse_keepalive_init(struct http *h)
{
	timer_init(&h->keepalive, on_keepalive, h);
}

void
sse_close_all(struct http *h)
{
	for (struct sse *x = h->streams; x; x = x->next)
		resume(x);
}
