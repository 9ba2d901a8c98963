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
 * Every bound is checked as a request enters: its frame (CTL_REQUEST_MAX),
 * then its args against the table below (types, ranges, a run's kwargs by
 * depth and size), so what is accepted can be stored, sent to a worker and
 * read back later.  An `events` answer is cut to pages of EVENTS_PAGE_MAX
 * (a response's `cursor` is the id to ask for the rest after), so any
 * count can be listed; a follower is subscribed with the page that ends
 * the log, in the same loop pass, so it misses nothing and sees nothing
 * twice.
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
#include "supervisor/pgship.h"
#include "supervisor/relay.h"
#include "supervisor/sup.h"

#define CTL_QUEUE_LIMIT (8u << 20)
#define ACCEPTS_PER_WAKE 16       /* the rest wait for the next pass */
#define ACCEPT_PAUSE_MIN_MS 50
#define ACCEPT_PAUSE_MAX_MS 1000

enum { CODE_OK = 0, CODE_ERROR = 1, CODE_BAD_REQUEST = 2, CODE_UNKNOWN_AGENT = 3 };

struct ctl_client {
	struct sup *sup;
	struct watch w;
	struct frame_reader rd;
	struct wqueue wq;
	bool follow;
	char *filter;            /* follow only this agent's events */
	struct timer idle;       /* its next request is due before this (not when following) */
	bool closing;
	struct ctl_client *next;
};

static void
client_free(void *p)
{
	struct ctl_client *c = p;
	frame_reader_free(&c->rd);
	wqueue_free(&c->wq);
	free(c->filter);
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
			json_t *e = json_pack("{s:b, s:i, s:s}", "ok", 0, "code", 1, "error",
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
	loop_mod(&c->w, EPOLLIN | (rc == 0 ? EPOLLOUT : 0));
}

/* A response's fields; steals data. */
static json_t *
response(int code, const char *error, json_t *data)
{
	json_t *r = json_pack("{s:b}", "ok", code == CODE_OK);
	if (code != CODE_OK)
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
		if (!c->follow || (c->filter && strcmp(c->filter, ev->agent_name)))
			continue;
		if (rec == NULL)
			rec = json_pack("{s:o}", "event", event_to_json(ev));
		client_send(c, MSG_RECORD, rec);
	}
	json_decref(rec);
}

/* ---- commands ------------------------------------------------------------ */

static json_t *
manager_status(struct sup *s)
{
	json_t *agents = json_array();
	int running = 0, paused = 0;
	for (size_t i = 0; i < s->nagents; i++) {
		struct agent *a = s->agents[i];
		running += a->pid > 0;
		paused += a->st.paused;
		json_array_append_new(agents, agent_status_json(a));
	}
	json_t *o = json_pack("{s:I, s:i, s:i, s:o, s:I, s:s, s:I}", "total_agents",
	    (json_int_t)s->nagents, "running_agents", running, "paused_agents", paused,
	    "agents", agents, "pid", (json_int_t)getpid(), "event_store",
	    store_event_backend(s->store), "events_dropped",
	    (json_int_t)store_events_dropped(s->store));
	json_object_set_new(o, "store", store_status(s->store));
	if (s->relay)
		json_object_set_new(o, "outbox", relay_status(s->relay));
	if (s->pgship)
		json_object_set_new(o, "postgresql", pgship_status(s->pgship));
	return o;
}

static json_t *
list_agents(struct sup *s)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < s->nagents; i++) {
		struct agent *a = s->agents[i];
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:b}",
		    "name", a->name, "agent_id", a->conf->agent_id, "schedule",
		    a->conf->schedule_text ? a->conf->schedule_text : "manual",
		    "state", wstate_name(a->state), "paused", a->st.paused));
	}
	return arr;
}

static json_t *
message(const char *agent, const char *fmt, const char *arg)
{
	char m[256];
	snprintf(m, sizeof(m), fmt, arg);
	return json_pack("{s:s, s:s}", "agent", agent, "message", m);
}

static void
cmd_agent(struct ctl_client *c, const char *cmd, struct agent *a, json_t *args)
{
	if (strcmp(cmd, "status") == 0) {
		respond(c, CODE_OK, NULL, agent_status_json(a));
	} else if (strcmp(cmd, "pause") == 0) {
		if (agent_pause(a) < 0)
			respond(c, CODE_OK, NULL, message(a->name, "%s was already paused", a->name));
		else
			respond(c, CODE_OK, NULL, message(a->name, "%s paused", a->name));
	} else if (strcmp(cmd, "resume") == 0) {
		if (agent_resume(a) < 0)
			respond(c, CODE_OK, NULL, message(a->name, "%s was not paused", a->name));
		else
			respond(c, CODE_OK, NULL, message(a->name, "%s resumed", a->name));
	} else if (strcmp(cmd, "memory") == 0) {
		const char *type = json_string_value(json_object_get(args, "memory_type"));
		json_int_t limit = json_integer_value(json_object_get(args, "limit"));
		json_t *items = NULL;
		if (type == NULL)
			type = "episodic";
		if (limit == 0)
			limit = 20;
		if (!memory_type_valid(type))
			respond(c, CODE_BAD_REQUEST, "memory type must be working, episodic, "
			    "long_term or procedural", NULL);
		else if (store_mem_context(c->sup->store, a->name, type, (int)limit, &items) < 0)
			respond(c, CODE_ERROR, "memory store query failed", NULL);
		else
			respond(c, CODE_OK, NULL, items);
	} else if (strcmp(cmd, "restart") == 0) {
		agent_restart_cmd(a);
		respond(c, CODE_OK, NULL, message(a->name, "%s restarting", a->name));
	} else if (strcmp(cmd, "run") == 0) {
		switch (agent_request_run(a, true, json_object_get(args, "kwargs"))) {
		case RUN_STARTED:
			respond(c, CODE_OK, NULL, message(a->name, "%s: run started", a->name));
			break;
		case RUN_QUEUED:
			respond(c, CODE_OK, NULL, message(a->name, "%s: run queued", a->name));
			break;
		case RUN_RETRY_NOW:
			respond(c, CODE_OK, NULL, message(a->name, "%s: the waiting retry of "
			    "the current run goes now", a->name));
			break;
		case RUN_SKIPPED: {
			char why[256];
			snprintf(why, sizeof(why), "run skipped: %s", a->skip_reason);
			respond(c, CODE_ERROR, why, NULL);
			break;
		}
		}
	} else
		respond(c, CODE_BAD_REQUEST, "unknown command", NULL);
}

/* One page of events (see the top); the page that reaches the end of what
 * was asked for subscribes a follower. */
static void
cmd_events(struct ctl_client *c, const char *agent, json_t *args)
{
	json_t *after = json_object_get(args, "after"), *lim = json_object_get(args, "limit");
	json_int_t limit = lim ? json_integer_value(lim) : after ? INT_MAX : 20;
	struct events_page pg = { .max_bytes = EVENTS_PAGE_MAX };

	if (store_events_page(c->sup->store, agent, after ? json_integer_value(after) : -1,
	    (int)(limit < INT_MAX ? limit : INT_MAX), &pg) < 0) {
		json_decref(pg.out);
		respond(c, CODE_ERROR, "event store query failed", NULL);
		return;
	}
	json_t *last = json_array_get(pg.out, json_array_size(pg.out) - 1);
	json_t *r = response(CODE_OK, NULL, pg.out);
	if (pg.cut)
		json_object_set(r, "cursor", json_object_get(last, "id"));
	client_send(c, MSG_RESPONSE, r);
	json_decref(r);
	if (!pg.cut && json_is_true(json_object_get(args, "follow"))) {
		c->follow = true;
		c->filter = agent ? xstrdup(agent) : NULL;
		timer_stop(&c->idle);
	}
}

/*
 * What a request's args may hold, by command: anything else in args is
 * ignored (newer clients), anything here of the wrong type or out of its
 * bounds is refused with code 2 before the command runs.  Containers are
 * bounded by depth (VALUE_DEPTH_MAX) and compact size.
 */
static const struct arg_rule {
	const char *cmd, *name;
	json_type type;          /* JSON_TRUE stands for either boolean */
	json_int_t min, max;     /* integers */
	size_t size_max;         /* objects */
} arg_rules[] = {
	{ "events", "limit", JSON_INTEGER, 1, INT64_MAX, 0 },
	{ "events", "after", JSON_INTEGER, 0, INT64_MAX, 0 },
	{ "events", "follow", JSON_TRUE, 0, 0, 0 },
	{ "memory", "limit", JSON_INTEGER, 1, 10000, 0 },
	{ "memory", "memory_type", JSON_STRING, 0, 0, 0 },
	{ "run", "kwargs", JSON_OBJECT, 0, 0, KWARGS_MAX },
};

static const char *const type_names[] = {
	[JSON_OBJECT] = "a map", [JSON_ARRAY] = "a list", [JSON_STRING] = "a string",
	[JSON_INTEGER] = "an integer", [JSON_REAL] = "a number", [JSON_TRUE] = "true or false",
	[JSON_FALSE] = "true or false", [JSON_NULL] = "null",
};

static int
check_arg(const struct arg_rule *r, json_t *v, char *err, size_t errlen)
{
	json_type t = json_is_boolean(v) ? JSON_TRUE : json_typeof(v);
	json_int_t i = json_integer_value(v);
	size_t size;

	if (t != r->type)
		snprintf(err, errlen, "args.%s must be %s", r->name, type_names[r->type]);
	else if (t == JSON_INTEGER && (i < r->min || i > r->max))
		snprintf(err, errlen, "args.%s must be from %lld to %lld", r->name,
		    (long long)r->min, (long long)r->max);
	else if (t == JSON_OBJECT && json_depth(v, VALUE_DEPTH_MAX) > VALUE_DEPTH_MAX)
		snprintf(err, errlen, "args.%s nests more than %d levels deep", r->name,
		    VALUE_DEPTH_MAX);
	else if (t == JSON_OBJECT && (size = json_compact_size(v)) > r->size_max)
		snprintf(err, errlen, "args.%s is %zu bytes as JSON, over the limit of %zu",
		    r->name, size, r->size_max);
	else
		return 0;
	return -1;
}

/* args is an object or absent: the catalogue (proto/msg.c) saw to that. */
static int
check_args(const char *cmd, json_t *args, char *err, size_t errlen)
{
	for (size_t i = 0; i < ARRAY_LEN(arg_rules); i++) {
		json_t *v = json_object_get(args, arg_rules[i].name);
		if (v && strcmp(cmd, arg_rules[i].cmd) == 0 &&
		    check_arg(&arg_rules[i], v, err, errlen) < 0)
			return -1;
	}
	return 0;
}

static void
handle_request(struct ctl_client *c, json_t *req)
{
	struct sup *s = c->sup;
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	const char *name = json_string_value(json_object_get(req, "agent"));
	json_t *args = json_object_get(req, "args");
	struct agent *a = name ? sup_find(s, name) : NULL;
	static const char *per_agent[] = { "pause", "resume", "restart", "run", "memory" };
	char err[200];

	for (size_t i = 0; i < ARRAY_LEN(per_agent); i++)
		if (strcmp(cmd, per_agent[i]) == 0 && name == NULL) {
			respond(c, CODE_BAD_REQUEST, "this command needs an agent name", NULL);
			return;
		}
	if (check_args(cmd, args, err, sizeof(err)) < 0) {
		respond(c, CODE_BAD_REQUEST, err, NULL);
		return;
	}
	if (name && a == NULL && strcmp(cmd, "events") != 0) {
		snprintf(err, sizeof(err), "unknown agent \"%s\"", name);
		respond(c, CODE_UNKNOWN_AGENT, err, NULL);
		return;
	}
	if (a) {
		if (strcmp(cmd, "events") == 0)
			cmd_events(c, name, args);
		else
			cmd_agent(c, cmd, a, args);
		return;
	}
	if (strcmp(cmd, "status") == 0)
		respond(c, CODE_OK, NULL, manager_status(s));
	else if (strcmp(cmd, "list") == 0)
		respond(c, CODE_OK, NULL, list_agents(s));
	else if (strcmp(cmd, "tasks") == 0)
		respond(c, CODE_OK, NULL, json_deep_copy(s->cfg->tasks));
	else if (strcmp(cmd, "events") == 0)
		cmd_events(c, name, args);
	else if (strcmp(cmd, "reload") == 0) {
		json_t *report = NULL;
		char *errtext = NULL;
		if (sup_reload(s, &report, &errtext) < 0)
			respond(c, CODE_ERROR, errtext, NULL);
		else
			respond(c, CODE_OK, NULL, report);
		free(errtext);
	} else if (strcmp(cmd, "stop") == 0) {
		respond(c, CODE_OK, NULL, json_pack("{s:s}", "message", "agentd stopping"));
		sup_begin_stop(s, "agentctl stop");
	} else
		respond(c, CODE_BAD_REQUEST, "unknown command", NULL);
}

static void
client_readable(struct ctl_client *c)
{
	const uint8_t *p;
	size_t len;
	const char *ferr;
	char err[256];
	ssize_t n;

	while ((n = frame_reader_fill(&c->rd, c->w.fd)) > 0) {
		int rc;
		while ((rc = frame_reader_next(&c->rd, &p, &len, &ferr)) == 1) {
			enum msg_type t = MSG__COUNT;
			json_t *m = NULL;
			if (msg_unpack(p, len, &t, &m, err, sizeof(err)) < 0 || t != MSG_REQUEST) {
				if (m)
					snprintf(err, sizeof(err), "expected a request, got %s",
					    msg_type_name(t));
				respond(c, CODE_BAD_REQUEST, err, NULL);
				json_decref(m);
				client_close(c);
				return;
			}
			handle_request(c, m);
			json_decref(m);
			if (c->closing)
				return;
			if (!c->follow)
				timer_in(&c->idle, CTL_IDLE_MS);
		}
		if (rc < 0) {
			respond(c, CODE_BAD_REQUEST, ferr, NULL);
			client_close(c);
			return;
		}
	}
	if (n == 0 || (errno != EAGAIN && errno != EINTR))
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
		loop_mod(w, EPOLLIN | (rc == 0 ? EPOLLOUT : 0));
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		client_readable(c);
}

/* Tell a connection we will not serve why, and close it.  One write: the
 * answer is small, and a peer we refuse gets no more of our time. */
static void
refuse(int fd, const char *why)
{
	struct buf b;
	json_t *r = response(CODE_ERROR, why, NULL);

	buf_init(&b);
	if (msg_pack(MSG_RESPONSE, r, &b) == 0)
		(void)!write(fd, buf_head(&b), buf_pending(&b));
	buf_free(&b);
	json_decref(r);
	close(fd);
}

static bool
peer_allowed(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	char why[96];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		refuse(fd, "cannot tell who you are (SO_PEERCRED)");
		return false;
	}
	if (cr.uid == 0 || cr.uid == geteuid())
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
	respond(c, CODE_BAD_REQUEST, "no complete request in time; disconnected", NULL);
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
clear_stale(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat sb;
	int fd, rc;

	if (lstat(path, &sb) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(sb.st_mode)) {
		log_error("control socket %s exists and is not a socket", path);
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
ctl_listen(struct sup *s)
{
	const char *path = s->cfg->g.control_socket;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("control socket path too long (max %zu): %s",
		    sizeof(sa.sun_path) - 1, path);
		return -1;
	}
	s->ctl_spare = -1;
	timer_init(&s->ctl_pause, on_pause_over, s);
	if (clear_stale(path) < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	s->ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->ctl_fd < 0)
		return -1;
	old = umask(077);	/* born 0600: no window where others can connect */
	int rc = bind(s->ctl_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || chmod(path, 0600) < 0 || listen(s->ctl_fd, 64) < 0) {
		log_error("control socket %s: %s", path, strerror(errno));
		close(s->ctl_fd);
		s->ctl_fd = -1;
		return -1;
	}
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
