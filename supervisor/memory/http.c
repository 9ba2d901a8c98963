/*
 * http: HTTP requests from agentd, on its own loop -- libcurl's multi
 * interface in its socket mode.  curl says which sockets to watch and for
 * what (CURLMOPT_SOCKETFUNCTION: a watch in the loop's epoll set per
 * socket) and when it wants to be called back (CURLMOPT_TIMERFUNCTION: one
 * timer on the loop's heap); the loop tells it what happened
 * (curl_multi_socket_action) and the finished transfers are handed to
 * their callers.  Nothing here blocks: names are resolved by curl's
 * threaded resolver, connects and transfers are the loop's events, and
 * every request has a deadline.
 *
 * Why this and not a thread with blocking calls: agentd is one thread,
 * and what an answer changes (the vector index, the store, a waiting
 * recall) is the loop's, so an answer must land in the loop anyway; a
 * thread would only add the locking.
 *
 * A request's answer is bounded (max_reply: past it the transfer is
 * stopped and the caller told), and so is its time (timeout_ms, the whole
 * transfer).  A request cancelled is never answered.  For the memory
 * folder's clients: the embeddings endpoint here, the remote vector stores
 * later.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <curl/curl.h>
#include "common/buf.h"
#include "common/httphdr.h"
#include "common/log.h"
#include "common/util.h"
#include "supervisor/loop.h"
#include "supervisor/memory/memory.h"

struct http_req {
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	struct buf reply;
	size_t max_reply;
	bool too_big;
	int64_t retry_after_ms;
	http_done_fn fn;
	void *ctx;
	char error[CURL_ERROR_SIZE];
};

/* One watched socket. */
struct sock {
	struct watch w;
	curl_socket_t fd;
};

static CURLM *multi;
static struct timer timer;
static int running;
static bool closing;      /* http_shutdown: no loop pass comes any more */

static void check_done(void);

static void
on_sock(struct watch *w, uint32_t events)
{
	struct sock *s = w->ctx;
	int mask = (events & EPOLLIN ? CURL_CSELECT_IN : 0) |
	    (events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
	    (events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
	curl_multi_socket_action(multi, s->fd, mask, &running);
	check_done();
}

static int
socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
	struct sock *s = sockp;
	uint32_t ev = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);

	if (what == CURL_POLL_REMOVE) {
		if (s) {
			loop_del(&s->w);
			curl_multi_assign(multi, fd, NULL);
			/* the loop's pass may still hold an event for it */
			if (closing)
				free(s);
			else
				loop_defer(free, s);
		}
		return 0;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->fd = fd;
		if (loop_add(&s->w, fd, ev, on_sock, s) < 0) {
			log_limited(LL_WARN, "http: cannot watch a socket: %m");
			free(s);
			return -1;
		}
		curl_multi_assign(multi, fd, s);
		return 0;
	}
	loop_mod(&s->w, ev);
	return 0;
}

static void
on_timer(struct timer *t)
{
	curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done();
}

static int
timer_cb(CURLM *m, long ms, void *userp)
{
	if (ms < 0)
		timer_stop(&timer);
	else
		timer_in(&timer, ms);
	return 0;
}

static int
init(void)
{
	if (multi)
		return 0;
	if ((multi = curl_multi_init()) == NULL)
		return -1;
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	timer_init(&timer, on_timer, NULL);
	return 0;
}

static void
req_free(struct http_req *r)
{
	curl_multi_remove_handle(multi, r->easy);
	curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	free(r->body);
	buf_free(&r->reply);
	free(r);
}

static void
check_done(void)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct http_req *r;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		struct http_reply rep = { .retry_after_ms = r->retry_after_ms };
		if (msg->data.result == CURLE_OK)
			curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &rep.status);
		else if (r->too_big)
			snprintf(r->error, sizeof(r->error), "the answer is over %zu bytes",
			    r->max_reply);
		else if (!r->error[0])
			snprintf(r->error, sizeof(r->error), "%s",
			    curl_easy_strerror(msg->data.result));
		char error[CURL_ERROR_SIZE];
		snprintf(error, sizeof(error), "%s", r->error);
		rep.error = msg->data.result == CURLE_OK ? NULL : error;
		/* The request goes first: the callback may start the next one. */
		struct buf body = r->reply;
		buf_init(&r->reply);
		http_done_fn fn = r->fn;
		void *ctx = r->ctx;
		req_free(r);
		buf_append(&body, "", 1);
		rep.body = (const char *)buf_head(&body);
		rep.len = buf_pending(&body) - 1;
		fn(ctx, &rep);
		buf_free(&body);
	}
}

static size_t
on_body(char *p, size_t size, size_t n, void *ud)
{
	struct http_req *r = ud;
	size_t len = size * n;
	if (buf_pending(&r->reply) + len > r->max_reply) {
		r->too_big = true;
		return 0;	/* stops the transfer */
	}
	buf_append(&r->reply, p, len);
	return len;
}

static size_t
on_header(char *p, size_t size, size_t n, void *ud)
{
	struct http_req *r = ud;
	size_t len = size * n;
	char line[256];

	http_retry_header(p, len, line, sizeof(line), &r->retry_after_ms);
	return len;
}

struct http_req *
http_request(const struct http_opts *o, http_done_fn fn, void *ctx, char *err, size_t errlen)
{
	struct http_req *r;

	if (init() < 0) {
		snprintf(err, errlen, "cannot start libcurl's multi interface");
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	if ((r->easy = curl_easy_init()) == NULL) {
		free(r);
		snprintf(err, errlen, "cannot make a libcurl handle");
		return NULL;
	}
	buf_init(&r->reply);
	r->max_reply = o->max_reply;
	r->retry_after_ms = -1;
	r->fn = fn;
	r->ctx = ctx;
	for (size_t i = 0; o->headers && o->headers[i]; i++)
		r->headers = curl_slist_append(r->headers, o->headers[i]);
	curl_easy_setopt(r->easy, CURLOPT_URL, o->url);
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
	if (o->body) {
		r->body = xmalloc(o->len + 1);
		memcpy(r->body, o->body, o->len);
		curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body);
		curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->len);
	}
	if (o->method)
		curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, o->method);
	curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->error);
	curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
	curl_easy_setopt(r->easy, CURLOPT_USERAGENT, "agentd/" AGENTD_VERSION);
	curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	if (curl_multi_add_handle(multi, r->easy) != CURLM_OK) {
		snprintf(err, errlen, "cannot start the request");
		req_free(r);
		return NULL;
	}
	return r;
}

void
http_cancel(struct http_req *r)
{
	if (r)
		req_free(r);
}

void
http_shutdown(void)
{
	if (multi == NULL)
		return;
	timer_stop(&timer);
	closing = true;
	curl_multi_cleanup(multi);
	multi = NULL;
	closing = false;
}
