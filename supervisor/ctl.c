/*
 * ctl: the control socket, agentd's side of agentctl.
 *
 * A Unix stream socket, mode 0600, whose peers must be agentd's own uid or
 * root (SO_PEERCRED).  Each connection sends `request` frames and gets one
 * `response` frame per request; `events` with follow set turns the
 * connection into a subscription that receives a `record` frame per new
 * event.  Output queues are bounded: a follower that does not read is
 * disconnected (and told why in agentd's log) rather than letting agentd's
 * memory grow; the events stay in the store for it to read again.
 *
 * This file is the socket's transport; what a request does is the command
 * table's (proto/cmd.h names the commands and their args, commands.c runs
 * them), which the HTTP API shares.  Every bound is checked as a request
 * enters: its frame (CTL_REQUEST_MAX), then its args against the table
 * (types, ranges, a run's kwargs by depth and size), so what is accepted
 * can be stored, sent to a worker and read back later.  An `events` answer
 * is cut to pages of EVENTS_PAGE_MAX (a response's `cursor` is the id to
 * ask for the rest after), so any count can be listed; a follower is
 * subscribed with the page that ends the log, in the same loop pass, so it
 * misses nothing and sees nothing twice.  It may follow one agent, one
 * session, one type of event, as its `events` asked.
 *
 * A command may answer later (memory with a query: its vector may have to
 * come from an embeddings endpoint; commands.h's cmd_later): until it has,
 * the client's next requests wait unread, so its answers keep their order.
 *
 * The socket survives a hostile or starved host.  At most CTL_CLIENTS_MAX
 * clients (one more is told so and closed); one that is not following and
 * does not complete a request within CTL_IDLE_MS is dropped.  When accept
 * fails for want of descriptors or memory, the listener rests (50 ms,
 * doubling to 1 s) instead of waking the loop at once again, and the
 * connections waiting meanwhile are accepted on a spare descriptor held
 * for this, told why and closed, rather than left hanging.  Both, because
 * a pause alone leaves clients waiting silently in the backlog, and the
 * spare alone lets a client that reconnects in a loop spin agentd.  The
 * errors a peer can make agentd repeat are logged rate-limited.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "common/jsonmp.h"
#include "common/log.h"
#include "common/util.h"
#include "supervisor/commands.h"
#include "supervisor/sup.h"

#define CTL_QUEUE_LIMIT (8u << 20)
#define ACCEPTS_PER_WAKE 16       /* the rest wait for the next pass */
#define ACCEPT_PAUSE_MIN_MS 50
#define ACCEPT_PAUSE_MAX_MS 1000

struct ctl_client {
	struct sup *sup;
	struct watch w;
	struct frame_reader rd;
	struct wqueue wq;
	bool follow;
	char *agent, *session_id, *type;   /* follow only these events (NULL: any) */
	struct event_filter filter;        /* ... pointing at them */
	struct timer idle;       /* its next request is due before this (not when following) */
	struct cmd_later later;  /* a command answering later (a recall) */
	bool in_request;         /* handle_request is on the stack */
	bool closing;
	struct ctl_client *next;
};

static void
client_free(void *p)
{
	struct ctl_client *c = p;
	frame_reader_free(&c->rd);
	wqueue_free(&c->wq);
	free(c->agent);
	free(c->session_id);
	free(c->type);
	free(c);
}

static void
client_close(struct ctl_client *c)
{
	struct ctl_client **pp;

	if (c->closing)
		return;
	c->closing = true;
	timer_stop(&c->idle);
	cmd_later_cancel(&c->later);
	for (pp = &c->sup->clients; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			c->sup->nclients--;
			break;
		}
	loop_del(&c->w);
	close(c->w.fd);
	loop_defer(client_free, c);
}

/* What to wait for: requests, unless an answer that comes later must go
 * first; room to write, while answers wait to go. */
static void
client_watch(struct ctl_client *c, bool out)
{
	loop_mod(&c->w, (cmd_later_busy(&c->later) ? 0 : EPOLLIN) | (out ? EPOLLOUT : 0));
}

static void
client_send(struct ctl_client *c, enum msg_type t, json_t *fields)
{
	char *body;
	size_t len;

	if (c->closing)
		return;
	if (msg_pack_body(t, fields, &body, &len) < 0) {
		log_error("control: cannot encode a %s message", msg_type_name(t));
		client_close(c);
		return;
	}
	int rc = wqueue_push(&c->wq, body, len);
	free(body);
	if (rc < 0 && errno == EMSGSIZE) {
		/* Our answer is too big for one frame: say so instead. */
		log_limited(LL_WARN, "control: %s of %zu bytes exceeds the frame limit",
		    msg_type_name(t), len);
		if (t == MSG_RESPONSE) {
			json_t *e = json_pack("{s:b, s:i, s:s}", "ok", 0, "code", RESP_REFUSED, "error",
			    "the answer exceeds the 4 MiB frame limit; ask for less (events -n)");
			client_send(c, MSG_RESPONSE, e);
			json_decref(e);
		}
		return;
	}
	if (rc < 0) {
		log_limited(LL_WARN, "control client does not read its socket (%zu bytes "
		    "queued); disconnecting it", wqueue_pending(&c->wq));
		client_close(c);
		return;
	}
	rc = wqueue_flush(&c->wq, c->w.fd);
	if (rc < 0 && errno != EAGAIN) {
		client_close(c);
		return;
	}
	client_watch(c, rc == 0);
}

/* A response's fields; steals data. */
static json_t *
response(int code, const char *error, json_t *data)
{
	json_t *r = json_pack("{s:b}", "ok", code == RESP_OK);
	if (code != RESP_OK)
		json_object_set_new(r, "code", json_integer(code));
	if (error)
		json_object_set_new(r, "error", json_string(error));
	if (data)
		json_object_set_new(r, "data", data);
	return r;
}

static void
respond(struct ctl_client *c, int code, const char *error, json_t *data)
{
	json_t *r = response(code, error, data);
	client_send(c, MSG_RESPONSE, r);
	json_decref(r);
}

void
events_followers_publish(struct sup *s, const struct event *ev)
{
	json_t *rec = NULL;
	for (struct ctl_client *c = s->clients, *next; c; c = next) {
		next = c->next;
		if (!c->follow || !event_filter_match(&c->filter, ev))
			continue;
		if (rec == NULL)
			rec = json_pack("{s:o}", "event", event_to_json(ev));
		client_send(c, MSG_RECORD, rec);
	}
	json_decref(rec);
}

/* A follower's filter: the agent, session and type its `events` named. */
static void
subscribe(struct ctl_client *c, const char *agent, json_t *args)
{
	const char *sid = json_string_value(json_object_get(args, "session_id"));
	const char *type = json_string_value(json_object_get(args, "type"));
	c->follow = true;
	c->agent = agent ? xstrdup(agent) : NULL;
	c->session_id = sid ? xstrdup(sid) : NULL;
	c->type = type ? xstrdup(type) : NULL;
	c->filter = (struct event_filter){ c->agent, c->session_id, c->type };
	timer_stop(&c->idle);
}

/* The command table (commands.c) does the work; this is its transport. */
static void
send_result(struct ctl_client *c, const struct cmd_result *r)
{
	json_t *m = response(r->code, r->error, json_incref(r->data));
	if (r->cursor)
		json_object_set(m, "cursor", r->cursor);
	if (r->errors)
		json_object_set(m, "errors", r->errors);
	client_send(c, MSG_RESPONSE, m);
	json_decref(m);
}

static void client_drain(struct ctl_client *c);

/* A command's answer that came later: sent, then what the client sent
 * meanwhile is read (unless the command is still on the stack: the loop
 * reading it goes on by itself). */
static void
later_done(struct cmd_later *l, struct cmd_result *r)
{
	struct ctl_client *c = l->ctx;
	send_result(c, r);
	if (!c->in_request)
		client_drain(c);
}

static void
handle_request(struct ctl_client *c, json_t *req)
{
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	const char *agent = json_string_value(json_object_get(req, "agent"));
	json_t *args = json_object_get(req, "args");
	int id = cmd_lookup(cmd);
	struct cmd_result r;

	if (id < 0) {
		respond(c, RESP_BAD_REQUEST, "unknown command", NULL);
		return;
	}
	c->later.done = later_done;
	c->later.ctx = c;
	c->in_request = true;
	commands_run_later(c->sup, (enum cmd_id)id, agent, args, &r, &c->later);
	c->in_request = false;
	if (!r.later)
		send_result(c, &r);
	if (r.follow && !c->closing)
		subscribe(c, agent, args);
	cmd_result_clear(&r);
}

/* The requests read so far, until one whose answer comes later: the rest
 * wait for it, unread. */
static void
client_drain(struct ctl_client *c)
{
	const uint8_t *p;
	size_t len;
	const char *ferr;
	char err[256];
	int rc = 0;

	while (!c->closing && !cmd_later_busy(&c->later) &&
	    (rc = frame_reader_next(&c->rd, &p, &len, &ferr)) == 1) {
		enum msg_type t = MSG__COUNT;
		json_t *m = NULL;
		if (msg_unpack(p, len, &t, &m, err, sizeof(err)) < 0 || t != MSG_REQUEST) {
			if (m)
				snprintf(err, sizeof(err), "expected a request, got %s",
				    msg_type_name(t));
			respond(c, RESP_BAD_REQUEST, err, NULL);
			json_decref(m);
			client_close(c);
			return;
		}
		timer_stop(&c->idle);	/* an answer due later is our wait, not the client's */
		handle_request(c, m);
		json_decref(m);
		if (!c->closing && !c->follow && !cmd_later_busy(&c->later))
			timer_in(&c->idle, CTL_IDLE_MS);
	}
	if (c->closing)
		return;
	if (rc < 0) {
		respond(c, RESP_BAD_REQUEST, ferr, NULL);
		client_close(c);
		return;
	}
	client_watch(c, wqueue_pending(&c->wq) > 0);
}

static void
client_readable(struct ctl_client *c)
{
	ssize_t n = 1;

	while (!cmd_later_busy(&c->later) && (n = frame_reader_fill(&c->rd, c->w.fd)) > 0) {
		client_drain(c);
		if (c->closing)
			return;
	}
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		client_close(c);
}

static void
on_client(struct watch *w, uint32_t events)
{
	struct ctl_client *c = w->ctx;
	if (events & EPOLLOUT) {
		int rc = wqueue_flush(&c->wq, w->fd);
		if (rc < 0 && errno != EAGAIN) {
			client_close(c);
			return;
		}
		client_watch(c, rc == 0);
	}
	if ((events & (EPOLLHUP | EPOLLERR)) && cmd_later_busy(&c->later))
		client_close(c);	/* gone while its answer was due: nobody to give it */
	else if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		client_readable(c);
}

/* Tell a connection we will not serve why, and close it.  One write: the
 * answer is small, and a peer we refuse gets no more of our time. */
static void
refuse(int fd, const char *why)
{
	struct buf b;
	json_t *r = response(RESP_REFUSED, why, NULL);

	buf_init(&b);
	if (msg_pack(MSG_RESPONSE, r, &b) == 0)
		(void)!write(fd, buf_head(&b), buf_pending(&b));
	buf_free(&b);
	json_decref(r);
	close(fd);
}

int
peer_allowed_uid(int fd, struct ucred *cr)
{
	socklen_t len = sizeof(*cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cr, &len) < 0)
		return -1;
	return cr->uid == 0 || cr->uid == geteuid();
}

static bool
peer_allowed(int fd)
{
	struct ucred cr;
	char why[96];
	int rc = peer_allowed_uid(fd, &cr);

	if (rc < 0) {
		refuse(fd, "cannot tell who you are (SO_PEERCRED)");
		return false;
	}
	if (rc == 1)
		return true;
	log_limited(LL_WARN, "control socket: refused uid %d (pid %d)", (int)cr.uid, (int)cr.pid);
	snprintf(why, sizeof(why), "uid %d may not use this control socket", (int)cr.uid);
	refuse(fd, why);
	return false;
}

static void
on_idle(struct timer *t)
{
	struct ctl_client *c = t->ctx;
	log_limited(LL_INFO, "control client sent no complete request within %d ms; "
	    "disconnecting it", CTL_IDLE_MS);
	respond(c, RESP_BAD_REQUEST, "no complete request in time; disconnected", NULL);
	client_close(c);
}

static void
client_new(struct sup *s, int fd)
{
	struct ctl_client *c = xcalloc(1, sizeof(*c));
	c->sup = s;
	frame_reader_init(&c->rd, CTL_REQUEST_MAX);
	wqueue_init(&c->wq, CTL_QUEUE_LIMIT);
	timer_init(&c->idle, on_idle, c);
	if (loop_add(&c->w, fd, EPOLLIN, on_client, c) < 0) {
		log_limited(LL_WARN, "control client: epoll: %s", strerror(errno));
		close(fd);
		client_free(c);
		return;
	}
	timer_in(&c->idle, CTL_IDLE_MS);
	c->next = s->clients;
	s->clients = c;
	s->nclients++;
}

/* Out of descriptors: the spare makes room to accept the waiting
 * connections one at a time and tell each why, then it is taken back. */
static void
shed_waiting(struct sup *s)
{
	int fd;

	if (s->ctl_spare < 0)
		return;
	close(s->ctl_spare);
	for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
		if ((fd = accept4(s->ctl_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0)
			break;
		refuse(fd, "agentd is out of file descriptors; try again later");
	}
	s->ctl_spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void
on_pause_over(struct timer *t)
{
	struct sup *s = t->ctx;
	loop_mod(&s->ctlw, EPOLLIN);
}

static void
accept_failed(struct sup *s, int err)
{
	if (err == EAGAIN || err == EINTR || err == ECONNABORTED)
		return;
	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_limited(LL_WARN, "control socket accept: %s", strerror(err));
		return;
	}
	s->ctl_pause_ms = s->ctl_pause_ms ? s->ctl_pause_ms * 2 : ACCEPT_PAUSE_MIN_MS;
	if (s->ctl_pause_ms > ACCEPT_PAUSE_MAX_MS)
		s->ctl_pause_ms = ACCEPT_PAUSE_MAX_MS;
	log_limited(LL_WARN, "control socket accept: %s (%zu clients); not accepting for "
	    "%lld ms", strerror(err), s->nclients, (long long)s->ctl_pause_ms);
	if (err == EMFILE || err == ENFILE)
		shed_waiting(s);
	loop_mod(&s->ctlw, 0);
	timer_in(&s->ctl_pause, s->ctl_pause_ms);
}

static void
on_accept(struct watch *w, uint32_t events)
{
	struct sup *s = w->ctx;
	char why[96];
	(void)events;

	for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			accept_failed(s, errno);
			return;
		}
		s->ctl_pause_ms = 0;
		if (!peer_allowed(fd))
			continue;
		if (s->nclients >= CTL_CLIENTS_MAX) {
			log_limited(LL_WARN, "control socket: %d clients already; refusing one more",
			    CTL_CLIENTS_MAX);
			snprintf(why, sizeof(why), "agentd serves at most %d control clients at "
			    "once; try again later", CTL_CLIENTS_MAX);
			refuse(fd, why);
			continue;
		}
		client_new(s, fd);
	}
}

/* A socket file that nobody answers on is left from a dead agentd. */
static int
clear_stale(const char *what, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat sb;
	int fd, rc;

	if (lstat(path, &sb) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(sb.st_mode)) {
		log_error("%s %s exists and is not a socket", what, path);
		return -1;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (rc == 0) {
		log_error("another agentd is listening on %s", path);
		return -1;
	}
	return unlink(path);
}

int
unix_listen(const char *what, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("%s path too long (max %zu): %s", what, sizeof(sa.sun_path) - 1, path);
		return -1;
	}
	if (clear_stale(what, path) < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		log_error("%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	old = umask(077);	/* born 0600: no window where others can connect */
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || chmod(path, 0600) < 0 || listen(fd, 64) < 0) {
		log_error("%s %s: %s", what, path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int
ctl_listen(struct sup *s)
{
	s->ctl_spare = -1;
	timer_init(&s->ctl_pause, on_pause_over, s);
	if ((s->ctl_fd = unix_listen("control socket", s->cfg->g.control_socket)) < 0)
		return -1;
	s->ctl_spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return loop_add(&s->ctlw, s->ctl_fd, EPOLLIN, on_accept, s);
}

void
ctl_close(struct sup *s)
{
	while (s->clients)
		client_close(s->clients);
	if (s->ctl_fd >= 0) {
		timer_stop(&s->ctl_pause);
		if (s->ctl_spare >= 0)
			close(s->ctl_spare);
		loop_del(&s->ctlw);
		close(s->ctl_fd);
		unlink(s->cfg->g.control_socket);
		s->ctl_fd = -1;
	}
}
