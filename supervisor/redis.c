/*
 * redis: see redis.h.  The connection is a small state machine:
 *
 *   DOWN --(backoff)--> CONNECTING --(connected)--> SETUP --(AUTH, SELECT, PING ok)--> UP
 *     ^                      |                        |                               |
 *     +-- connect error, timeout, AUTH or SELECT refused, reply timeout, disconnect
 *
 * Callers see UP only: their commands are refused until AUTH, SELECT and a
 * PING have been answered, so a wrong password is a failed connection (with
 * its reason, and the backoff growing), not a stream of NOAUTH errors, and
 * a server that accepts connections but answers nothing (stopped, hung:
 * the kernel still completes the TCP handshake) is never taken for up.
 *
 * An idle connection is probed: a PING after IDLE_PROBE_MS without a
 * command, held to the reply timeout like any command, so a server that
 * froze while agentd had nothing to send (agents paused, a long interval)
 * is not shown up for as long as it stays quiet.
 *
 * The hiredis context is freed only outside hiredis callbacks (hiredis
 * defers a free requested from inside one), and every command's callback
 * runs exactly once: with its reply, or with NULL when the connection
 * goes away.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <hiredis/async.h>
#include "common/log.h"
#include "common/util.h"
#include "supervisor/loop.h"
#include "supervisor/redis.h"

enum rstate { R_DOWN, R_CONNECTING, R_SETUP, R_UP };

/* One wake-up every 5 s on an idle connection: short enough that status
 * is not wrong for long, cheap beside what any client of Redis sends. */
#define IDLE_PROBE_MS 5000

struct pending {
	struct rconn *r;
	rconn_reply_fn fn;
	void *priv;
	int64_t sent;
	struct pending *next;   /* FIFO: replies come back in order */
};

struct rconn {
	struct rconn_opts o;
	char *host, *unix_path, *password;
	rconn_state_fn state_fn;
	void *ctx;

	enum rstate state;
	redisAsyncContext *ac;
	struct watch w;
	uint32_t interest;
	struct timer timer;        /* connect deadline, reply deadline, or backoff */
	int64_t backoff;
	struct pending *head, *tail;
	size_t npending;
	int setup_due;             /* AUTH, SELECT and PING replies still to come */
	char err[320];
	bool freeing;
};

static void schedule_reconnect(struct rconn *r, const char *why);

/* ---- epoll hooks for hiredis ------------------------------------------- */

static void
set_interest(struct rconn *r, uint32_t add, uint32_t del)
{
	uint32_t want = (r->interest | add) & ~del;
	if (want == r->interest || !r->w.added)
		return;
	r->interest = want;
	loop_mod(&r->w, want);
}

static void ev_add_read(void *p)  { set_interest(p, EPOLLIN, 0); }
static void ev_del_read(void *p)  { set_interest(p, 0, EPOLLIN); }
static void ev_add_write(void *p) { set_interest(p, EPOLLOUT, 0); }
static void ev_del_write(void *p) { set_interest(p, 0, EPOLLOUT); }

static void
ev_cleanup(void *p)
{
	struct rconn *r = p;
	loop_del(&r->w);
	r->interest = 0;
}

static void
on_io(struct watch *w, uint32_t events)
{
	struct rconn *r = w->ctx;
	if (r->ac == NULL)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		redisAsyncHandleRead(r->ac);
	if (r->ac && (events & EPOLLOUT))
		redisAsyncHandleWrite(r->ac);
}

/* ---- deadlines ------------------------------------------------------------ */

static void
arm_reply_deadline(struct rconn *r)
{
	if (r->state != R_UP)
		return;
	if (r->head)
		timer_at(&r->timer, r->head->sent + r->o.reply_timeout_ms);
	else
		timer_in(&r->timer, IDLE_PROBE_MS);
}

static void
drop_context(struct rconn *r, const char *why)
{
	redisAsyncContext *ac = r->ac;
	snprintf(r->err, sizeof(r->err), "%s", why);
	r->ac = NULL;
	if (ac) {
		ac->data = NULL;
		/* Fails every pending callback with a NULL reply. */
		redisAsyncFree(ac);
	}
	schedule_reconnect(r, why);
}

static void start_connect(struct rconn *r);
static int queue_command(struct rconn *r, rconn_reply_fn fn, void *priv, int argc,
    const char **argv, const size_t *lens, const char *cmd, size_t len);

/* Any answer will do (an error too: the server answered). */
static void
on_probe(struct rconn *r, redisReply *reply, const char *err, void *priv)
{
}

static void
on_timer(struct timer *t)
{
	struct rconn *r = t->ctx;
	char why[128];

	switch (r->state) {
	case R_DOWN:
		start_connect(r);
		break;
	case R_CONNECTING:
	case R_SETUP:
		if (r->state == R_SETUP)
			snprintf(why, sizeof(why), "connected, but no answer within %lld ms "
			    "(the server accepts connections and replies to nothing)",
			    (long long)r->o.connect_timeout_ms);
		else
			snprintf(why, sizeof(why), "connect timed out after %lld ms",
			    (long long)r->o.connect_timeout_ms);
		drop_context(r, why);
		break;
	case R_UP:
		if (r->head == NULL) {	/* idle: the probe */
			const char *ping[] = { "PING" };
			if (queue_command(r, on_probe, NULL, 1, ping, NULL, NULL, 0) < 0)
				drop_context(r, "sending a PING failed");
			break;
		}
		snprintf(why, sizeof(why), "no reply within %lld ms",
		    (long long)r->o.reply_timeout_ms);
		drop_context(r, why);
		break;
	}
}

/* ---- replies ---------------------------------------------------------------- */

static void
on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct pending *p = privdata;
	struct rconn *r = p->r;

	if (r->head == p) {
		r->head = p->next;
		if (r->head == NULL)
			r->tail = NULL;
	}
	r->npending--;
	if (reply == NULL)
		p->fn(r, NULL, r->err[0] ? r->err : (ac && ac->errstr ? ac->errstr :
		    "connection lost"), p->priv);
	else
		p->fn(r, reply, NULL, p->priv);
	free(p);
	if (!r->freeing)
		arm_reply_deadline(r);
}

/* Either argv (argc > 0) or a command already in RESP (cmd, len). */
static int
queue_command(struct rconn *r, rconn_reply_fn fn, void *priv, int argc,
    const char **argv, const size_t *lens, const char *cmd, size_t len)
{
	struct pending *p = xcalloc(1, sizeof(*p));
	p->r = r;
	p->fn = fn;
	p->priv = priv;
	p->sent = mono_ms();
	if ((argc > 0 ? redisAsyncCommandArgv(r->ac, on_reply, p, argc, argv, lens) :
	    redisAsyncFormattedCommand(r->ac, on_reply, p, cmd, len)) != REDIS_OK) {
		free(p);
		return -1;
	}
	if (r->tail)
		r->tail->next = p;
	else
		r->head = p;
	r->tail = p;
	r->npending++;
	if (r->npending == 1)
		arm_reply_deadline(r);
	return 0;
}

int
rconn_command(struct rconn *r, rconn_reply_fn fn, void *priv, int argc,
    const char **argv, const size_t *lens)
{
	if (r->state != R_UP || r->ac == NULL)
		return -1;
	return queue_command(r, fn, priv, argc, argv, lens, NULL, 0);
}

int
rconn_formatted(struct rconn *r, rconn_reply_fn fn, void *priv, const char *cmd, size_t len)
{
	if (r->state != R_UP || r->ac == NULL)
		return -1;
	if (fn == NULL)	/* hiredis reads the reply and drops it */
		return redisAsyncFormattedCommand(r->ac, NULL, NULL, cmd, len) == REDIS_OK ? 0 : -1;
	return queue_command(r, fn, priv, 0, NULL, NULL, cmd, len);
}

/* ---- connection lifecycle ------------------------------------------------- */

static void
become_up(struct rconn *r)
{
	r->state = R_UP;
	r->backoff = 0;
	r->err[0] = '\0';
	timer_stop(&r->timer);
	arm_reply_deadline(r);
	log_info("redis: connected to %s", r->unix_path ? r->unix_path : r->host);
	if (r->state_fn)
		r->state_fn(r, true, NULL, r->ctx);
}

static void
on_setup_reply(struct rconn *r, redisReply *reply, const char *err, void *priv)
{
	const char *what = priv;
	if (r->state != R_SETUP)	/* an earlier one failed: its reason stands */
		return;
	if (reply && reply->type != REDIS_REPLY_ERROR) {
		if (--r->setup_due == 0)
			become_up(r);
		return;
	}
	snprintf(r->err, sizeof(r->err), "%s failed: %s", what, reply ? reply->str : err);
	log_error("redis: %s", r->err);	/* the password itself is never shown */
	r->state = R_CONNECTING;	/* not up: no "connection lost" */
	if (r->ac)	/* fail at the next pass, outside hiredis's callback */
		redisAsyncDisconnect(r->ac);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct rconn *r = ac->data;
	char num[16];

	if (r == NULL)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees ac after this callback returns. */
		r->ac = NULL;
		char why[300];
		snprintf(why, sizeof(why), "connect failed: %s", ac->errstr);
		snprintf(r->err, sizeof(r->err), "%s", why);
		schedule_reconnect(r, why);
		return;
	}
	/* The connect deadline keeps running until AUTH and SELECT are answered. */
	r->state = R_SETUP;
	r->setup_due = 0;
	if (r->password) {
		const char *argv[] = { "AUTH", r->password };
		if (queue_command(r, on_setup_reply, "AUTH", 2, argv, NULL, NULL, 0) == 0)
			r->setup_due++;
	}
	if (r->o.db) {
		snprintf(num, sizeof(num), "%d", r->o.db);
		const char *argv[] = { "SELECT", num };
		if (queue_command(r, on_setup_reply, "SELECT", 2, argv, NULL, NULL, 0) == 0)
			r->setup_due++;
	}
	/* A connection is up once the server has answered on it. */
	const char *ping[] = { "PING" };
	if (queue_command(r, on_setup_reply, "PING", 1, ping, NULL, NULL, 0) == 0)
		r->setup_due++;
	if (r->setup_due == 0)
		become_up(r);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rconn *r = ac->data;
	char why[sizeof(r->err)];
	if (r == NULL)
		return;
	r->ac = NULL;	/* hiredis frees it */
	snprintf(why, sizeof(why), "%s", r->err[0] ? r->err :
	    status == REDIS_OK ? "disconnected" : (ac->errstr ? ac->errstr : "connection lost"));
	schedule_reconnect(r, why);
}

static void
schedule_reconnect(struct rconn *r, const char *why)
{
	bool was_up = r->state == R_UP;
	if (r->freeing)
		return;
	r->state = R_DOWN;
	r->backoff = r->backoff ? r->backoff * 2 : r->o.backoff_ms;
	if (r->backoff > r->o.backoff_max_ms)
		r->backoff = r->o.backoff_max_ms;
	timer_in(&r->timer, r->backoff);
	if (was_up) {
		log_warn("redis: connection lost (%s); reconnecting", why);
		if (r->state_fn)
			r->state_fn(r, false, why, r->ctx);
	} else
		log_debug("redis: %s; retrying in %lld ms", why, (long long)r->backoff);
}

static void
start_connect(struct rconn *r)
{
	redisAsyncContext *ac = r->unix_path ? redisAsyncConnectUnix(r->unix_path) :
	    redisAsyncConnect(r->host, r->o.port);
	if (ac == NULL || ac->err) {
		char why[300];
		snprintf(why, sizeof(why), "connect: %s", ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		schedule_reconnect(r, why);
		return;
	}
	r->ac = ac;
	ac->data = r;
	r->interest = 0;
	if (loop_add(&r->w, ac->c.fd, 0, on_io, r) < 0) {
		r->ac = NULL;
		ac->data = NULL;
		redisAsyncFree(ac);
		schedule_reconnect(r, "epoll_ctl failed");
		return;
	}
	ac->ev.data = r;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	/* A non-blocking connect completes when the socket is writable. */
	set_interest(r, EPOLLOUT, 0);
	r->state = R_CONNECTING;
	timer_in(&r->timer, r->o.connect_timeout_ms);
}

struct rconn *
rconn_new(const struct rconn_opts *o, rconn_state_fn fn, void *ctx)
{
	struct rconn *r = xcalloc(1, sizeof(*r));
	r->o = *o;
	r->host = xstrdup(o->host ? o->host : "127.0.0.1");
	r->unix_path = o->unix_path ? xstrdup(o->unix_path) : NULL;
	r->password = o->password ? xstrdup(o->password) : NULL;
	if (r->o.connect_timeout_ms <= 0) r->o.connect_timeout_ms = 2000;
	if (r->o.reply_timeout_ms <= 0) r->o.reply_timeout_ms = 5000;
	if (r->o.backoff_ms <= 0) r->o.backoff_ms = 100;
	if (r->o.backoff_max_ms <= 0) r->o.backoff_max_ms = 5000;
	r->state_fn = fn;
	r->ctx = ctx;
	r->w.fd = -1;
	timer_init(&r->timer, on_timer, r);
	start_connect(r);
	return r;
}

void
rconn_free(struct rconn *r)
{
	if (r == NULL)
		return;
	r->freeing = true;
	timer_stop(&r->timer);
	if (r->ac) {
		redisAsyncContext *ac = r->ac;
		r->ac = NULL;
		snprintf(r->err, sizeof(r->err), "connection closed");
		redisAsyncFree(ac);	/* pending callbacks run with NULL */
	}
	loop_del(&r->w);
	free(r->host);
	free(r->unix_path);
	free(r->password);
	free(r);
}

bool rconn_up(const struct rconn *r) { return r->state == R_UP; }
size_t rconn_pending(const struct rconn *r) { return r->npending; }

int64_t
rconn_waiting_ms(const struct rconn *r)
{
	return r->state == R_UP && r->head ? mono_ms() - r->head->sent : 0;
}
const char *rconn_last_error(const struct rconn *r) { return r->err; }
