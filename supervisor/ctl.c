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
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "supervisor/pgship.h"
#include "supervisor/relay.h"
#include "supervisor/sup.h"

#define CTL_QUEUE_LIMIT (8u << 20)

enum { CODE_OK = 0, CODE_ERROR = 1, CODE_BAD_REQUEST = 2, CODE_UNKNOWN_AGENT = 3 };

struct ctl_client {
	struct sup *sup;
	struct watch w;
	struct frame_reader rd;
	struct wqueue wq;
	bool follow;
	char *filter;            /* follow only this agent's events */
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
	for (pp = &c->sup->clients; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
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
		log_warn("control: %s of %zu bytes exceeds the frame limit", msg_type_name(t), len);
		if (t == MSG_RESPONSE) {
			json_t *e = json_pack("{s:b, s:i, s:s}", "ok", 0, "code", 1, "error",
			    "the answer exceeds the 4 MiB frame limit; ask for less (events -n)");
			client_send(c, MSG_RESPONSE, e);
			json_decref(e);
		}
		return;
	}
	if (rc < 0) {
		log_warn("control client does not read its socket (%zu bytes queued); "
		    "disconnecting it", wqueue_pending(&c->wq));
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

static void
respond(struct ctl_client *c, int code, const char *error, json_t *data)
{
	json_t *r = json_pack("{s:b}", "ok", code == CODE_OK);
	if (code != CODE_OK)
		json_object_set_new(r, "code", json_integer(code));
	if (error)
		json_object_set_new(r, "error", json_string(error));
	if (data)
		json_object_set_new(r, "data", data);
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
		if (limit <= 0 || limit > 10000)
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
		int64_t before = a->st.run_count, skipped = a->st.skipped_count;
		agent_request_run(a, true, json_object_get(args, "kwargs"));
		if (a->st.run_count > before)
			respond(c, CODE_OK, NULL, message(a->name, "%s: run started", a->name));
		else if (a->st.skipped_count > skipped)
			respond(c, CODE_ERROR, a->last_error && a->state == W_FATAL ?
			    "agent is fatal (agentctl restart revives it)" :
			    "run skipped: previous run still in progress (overlap: skip)", NULL);
		else
			respond(c, CODE_OK, NULL, message(a->name, "%s: run queued", a->name));
	} else
		respond(c, CODE_BAD_REQUEST, "unknown command", NULL);
}

static void
cmd_events(struct ctl_client *c, const char *agent, json_t *args)
{
	json_t *out = NULL;
	json_int_t limit = json_integer_value(json_object_get(args, "limit"));
	if (limit <= 0 || limit > 100000)
		limit = 20;
	if (store_events_query(c->sup->store, agent, -1, (int)limit, &out) < 0) {
		respond(c, CODE_ERROR, "event store query failed", NULL);
		return;
	}
	respond(c, CODE_OK, NULL, out);
	if (json_is_true(json_object_get(args, "follow"))) {
		c->follow = true;
		c->filter = agent ? xstrdup(agent) : NULL;
	}
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

	for (size_t i = 0; i < ARRAY_LEN(per_agent); i++)
		if (strcmp(cmd, per_agent[i]) == 0 && name == NULL) {
			respond(c, CODE_BAD_REQUEST, "this command needs an agent name", NULL);
			return;
		}
	if (name && a == NULL && strcmp(cmd, "events") != 0) {
		char m[200];
		snprintf(m, sizeof(m), "unknown agent \"%s\"", name);
		respond(c, CODE_UNKNOWN_AGENT, m, NULL);
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

static bool
peer_allowed(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return false;
	if (cr.uid == 0 || cr.uid == geteuid())
		return true;
	log_warn("control socket: refused uid %d (pid %d)", (int)cr.uid, (int)cr.pid);
	return false;
}

static void
on_accept(struct watch *w, uint32_t events)
{
	struct sup *s = w->ctx;
	(void)events;
	for (;;) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("control socket accept: %s", strerror(errno));
			return;
		}
		if (!peer_allowed(fd)) {
			close(fd);
			continue;
		}
		struct ctl_client *c = xcalloc(1, sizeof(*c));
		c->sup = s;
		frame_reader_init(&c->rd, 1u << 20);
		wqueue_init(&c->wq, CTL_QUEUE_LIMIT);
		if (loop_add(&c->w, fd, EPOLLIN, on_client, c) < 0) {
			close(fd);
			client_free(c);
			continue;
		}
		c->next = s->clients;
		s->clients = c;
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
	return loop_add(&s->ctlw, s->ctl_fd, EPOLLIN, on_accept, s);
}

void
ctl_close(struct sup *s)
{
	while (s->clients)
		client_close(s->clients);
	if (s->ctl_fd >= 0) {
		loop_del(&s->ctlw);
		close(s->ctl_fd);
		unlink(s->cfg->g.control_socket);
		s->ctl_fd = -1;
	}
}
