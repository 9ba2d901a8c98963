/*
 * agent: one agent's worker and runs, as two small state machines.
 *
 * The worker:
 *   STOPPED, BACKOFF, WAITING, FATAL --spawn--> STARTING --ready--> IDLE or RETRYING
 *                        (the host had no room: WAITING, tried again on a timer)
 *   IDLE --run--> RUNNING --done--> IDLE;  RUNNING --failed, will retry--> RETRYING
 *   RETRYING --retry due, or `agentctl run`--> RUNNING;  RETRYING --run ends--> IDLE
 *   STARTING, IDLE, RUNNING, RETRYING --stop, fault, exit--> STOPPING
 *   STOPPING --exit--> STARTING (at once), BACKOFF, FATAL (budget spent), STOPPED
 * The run:      requested -> (waits for an IDLE worker) -> dispatched ->
 *               acked -> result ok | failed -> retry (new attempt) | done
 *
 * The worker's machine is one table (wstate_next) and every change of
 * state goes through set_state, which logs one the table lacks as a bug.
 *
 * They meet in two places: a run is dispatched when the worker becomes
 * IDLE, and a worker that exits mid-run fails that attempt (retryable).
 * Every wait is a timer in struct agent; every transition that users can
 * see emits an event and, where it changes a counter, saves the agent's
 * state (batched into the loop pass's transaction).
 *
 * A worker is trusted with nothing: a frame that does not decode, a message
 * it may not send, a value over the bounds of common/limits.h (what agentd
 * accepts it must be able to store and pass on), a result for a run it
 * does not have, silence past a deadline -- each is a fault of that worker, which is killed (its whole
 * process group) and restarted by the usual policy, with an event that
 * says why.  Nothing it does reaches another agent.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/log.h"
#include "common/redact.h"
#include "common/util.h"
#include "supervisor/sup.h"

static void dispatch_pending(struct agent *a);
static void schedule_next(struct agent *a, bool from_start);
static void worker_fault(struct agent *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void start_worker(struct agent *a);
static void run_attempt_failed(struct agent *a, const char *error,
    bool retryable, int64_t retry_after_ms);

#define READS_PER_WAKE 4

static const char *wstate_names[] = {
	[W_STOPPED] = "stopped", [W_STARTING] = "starting", [W_IDLE] = "idle",
	[W_RUNNING] = "running", [W_STOPPING] = "stopping", [W_BACKOFF] = "backoff",
	[W_FATAL] = "fatal", [W_WAITING] = "waiting", [W_RETRYING] = "retrying",
};

const char *
wstate_name(enum wstate s)
{
	return wstate_names[s];
}

/* The worker's state machine, whole: the states each state may go to.
 * Every change goes through set_state, which holds it to this table. */
#define TO(s) (1u << (s))
static const unsigned wstate_next[] = {
	[W_STOPPED]  = TO(W_STARTING) | TO(W_WAITING) | TO(W_FATAL),
	[W_STARTING] = TO(W_IDLE) | TO(W_RETRYING) | TO(W_STOPPING),
	[W_IDLE]     = TO(W_RUNNING) | TO(W_STOPPING),
	[W_RUNNING]  = TO(W_IDLE) | TO(W_RETRYING) | TO(W_STOPPING),
	[W_RETRYING] = TO(W_RUNNING) | TO(W_IDLE) | TO(W_STOPPING),
	[W_STOPPING] = TO(W_STOPPED) | TO(W_STARTING) | TO(W_WAITING) | TO(W_BACKOFF) |
	               TO(W_FATAL),
	[W_BACKOFF]  = TO(W_STARTING) | TO(W_WAITING) | TO(W_STOPPED) | TO(W_FATAL),
	[W_WAITING]  = TO(W_STARTING) | TO(W_STOPPED) | TO(W_FATAL),
	[W_FATAL]    = TO(W_STARTING) | TO(W_WAITING),
};
#undef TO

/* What a worker with nothing on it is: idle, or retrying while the current
 * run waits out its retry delay. */
static enum wstate
idle_state(const struct agent *a)
{
	return a->cur && !a->cur->dispatched && timer_armed(&a->retry_timer) ?
	    W_RETRYING : W_IDLE;
}

/* A change the table does not allow is a bug in this file: said loudly,
 * then made anyway, since the caller's view of the worker is the truer. */
static void
set_state(struct agent *a, enum wstate to)
{
	if (a->state == to)
		return;
	if (!(wstate_next[a->state] & (1u << to)))
		log_agent(LL_ERROR, a->name, "bug: worker state %s -> %s is not a "
		    "transition of the state machine", wstate_name(a->state), wstate_name(to));
	a->state = to;
	a->state_mono = mono_ms();
	if (to == W_IDLE || to == W_RUNNING || to == W_RETRYING)
		a->was_up = true;
}

static const char *
agent_id(const struct agent *a)
{
	return a->conf->agent_id;
}

void
agent_save(struct agent *a)
{
	a->unsaved = false;
	(void)store_state_save(a->sup->store, a->name, &a->st);
}

void
agent_save_later(struct agent *a)
{
	a->unsaved = true;
}

/* ---- events ------------------------------------------------------------ */

static json_t *
seed_payload(struct agent *a)
{
	char ts[32];
	iso8601(wall_ms(), ts, sizeof(ts));
	return json_pack("{s:s, s:s, s:s}", "agent_id", agent_id(a),
	    "session_id", a->st.session_id, "timestamp", ts);
}

static json_t *
iso_or_null(int64_t wall)
{
	char ts[32];
	if (wall == 0)
		return json_null();
	iso8601(wall, ts, sizeof(ts));
	return json_string(ts);
}

/* The seed's background_agent_status: status is running, idle or error. */
static void
emit_status(struct agent *a, const char *status, const char *error)
{
	json_t *p = seed_payload(a);
	json_object_set_new(p, "status", json_string(status));
	json_object_set_new(p, "last_run", iso_or_null(a->st.last_run));
	json_object_set_new(p, "run_count", json_integer(a->st.run_count));
	json_object_set_new(p, "error_count", json_integer(a->st.error_count));
	json_object_set_new(p, "error", error ? json_string(error) : json_null());
	event_emit(a, "background_agent_status", p);
}

/* ---- sending to the worker ------------------------------------------------ */

static void
on_worker_io(struct watch *w, uint32_t events);

static void
update_io_interest(struct agent *a)
{
	uint32_t ev = EPOLLIN | (wqueue_pending(&a->wq) ? EPOLLOUT : 0);
	loop_mod(&a->io, ev);
}

static int
send_msg(struct agent *a, enum msg_type t, json_t *fields)
{
	char *body;
	size_t len;
	int rc;

	if (a->io.fd < 0)
		return -1;
	if (msg_pack_body(t, fields, &body, &len) < 0)
		return -1;
	rc = wqueue_push(&a->wq, body, len);
	free(body);
	if (rc < 0 && errno == EMSGSIZE) {
		/* Ours is too big (a huge task_config): not the worker's fault. */
		log_agent(LL_ERROR, a->name, "%s message of %zu bytes exceeds the frame "
		    "limit; not sent", msg_type_name(t), len);
		return -1;
	}
	if (rc < 0) {
		/* A worker that does not read its pipe for 16 MiB is stuck. */
		worker_fault(a, "worker does not read its pipe (%zu bytes queued)",
		    wqueue_pending(&a->wq));
		return -1;
	}
	if (wqueue_flush(&a->wq, a->io.fd) < 0 && errno != EAGAIN) {
		/* The peer is gone: its exit arrives through SIGCHLD. */
		return -1;
	}
	update_io_interest(a);
	return 0;
}

/* ---- secrets -------------------------------------------------------------- */

/* The agent's model API key, read by agentd and handed to this worker
 * only; where it is read from is its model_config's (conf/provider.c).  A
 * key it needs and cannot have is said at every start: logged, shown in
 * status (api_key_error) and given to the worker, whose model runs fail
 * at once with it instead of with the provider's 401. */
static json_t *
agent_secrets(struct agent *a)
{
	json_t *secrets = json_object();
	json_t *mc = json_object_get(a->conf->spec, "model_config");
	const char *var = json_string_value(json_object_get(mc, "api_key_env"));
	const char *file = json_string_value(json_object_get(mc, "api_key_file"));
	char key[4096] = "", why[512] = "";

	free(a->key_error);
	a->key_error = NULL;
	if (file) {
		FILE *f = fopen(file, "re");
		if (f && fgets(key, sizeof(key), f))
			key[strcspn(key, "\r\n")] = '\0';
		utf8_snprintf(why, sizeof(why), "model_config.api_key_file %s: %s", file,
		    f == NULL ? strerror(errno) : "holds no key");
		if (f)
			fclose(f);
	} else if (var && getenv(var) && *getenv(var))
		json_object_set_new(secrets, "api_key", json_string(getenv(var)));
	else if (var)
		snprintf(why, sizeof(why), "model_config.api_key_env: %s is not set in agentd's "
		    "environment", var);
	if (key[0])
		json_object_set_new(secrets, "api_key", json_string(key));
	explicit_bzero(key, sizeof(key));
	if (!json_object_get(secrets, "api_key") && json_is_true(json_object_get(mc,
	    "api_key_required"))) {
		log_agent(LL_ERROR, a->name, "%s: its model runs will fail", why);
		a->key_error = xstrdup(why);
	}
	return secrets;
}

/* ---- worker lifecycle --------------------------------------------------- */

static void
close_worker_fds(struct agent *a)
{
	store_mem_recall_cancel(&a->recall);	/* its answer would find no one */
	if (a->io.fd >= 0) {
		loop_del(&a->io);
		close(a->io.fd);
		a->io.fd = -1;
	}
	if (a->errio.fd >= 0) {
		loop_del(&a->errio);
		close(a->errio.fd);
		a->errio.fd = -1;
	}
	frame_reader_free(&a->rd);
	wqueue_free(&a->wq);
}

static void on_worker_stderr(struct watch *w, uint32_t events);

/* The host is short of something a start needs, not the agent wrong:
 * the same start can work once descriptors, processes or memory free up. */
static bool
short_of_resources(int err)
{
	static const int errs[] = { EMFILE, ENFILE, EAGAIN, ENOMEM, ENOBUFS, ENOSPC, EDQUOT };
	for (size_t i = 0; i < ARRAY_LEN(errs); i++)
		if (err == errs[i])
			return true;
	return false;
}

/* A start that can only work after a change (an unknown user, a directory
 * that cannot be made): fatal, with the reason. */
static void
spawn_failed(struct agent *a, const char *why)
{
	log_agent(LL_ERROR, a->name, "cannot start worker: %s", why);
	free(a->last_error);
	a->last_error = xstrdup(why);
	set_state(a, W_FATAL);
	json_t *p = json_pack("{s:s, s:s}", "agent_id", agent_id(a), "reason", why);
	event_emit(a, "worker_fatal", p);
}

/* A start the host had no room for: tried again with the restart backoff,
 * but no worker ran, so nothing is taken from the crash budget. */
static void
spawn_postponed(struct agent *a, const char *why)
{
	const struct agent_conf *c = a->conf;
	double d = (double)c->backoff_ms * pow(2.0, a->start_failures);
	int64_t delay = d > (double)c->backoff_max_ms ? c->backoff_max_ms : (int64_t)d;
	char msg[400];

	if (a->start_failures < 62)
		a->start_failures++;
	snprintf(msg, sizeof(msg), "cannot start a worker: %s (the host is short of "
	    "resources; attempt %d, next in %lld ms)", why, a->start_failures,
	    (long long)delay);
	log_agent(LL_WARN, a->name, "%s", msg);
	free(a->last_error);
	a->last_error = xstrdup(msg);
	set_state(a, W_WAITING);
	timer_in(&a->restart_timer, delay);
	event_emit(a, "worker_start_failed", json_pack("{s:s, s:s, s:i, s:I}", "agent_id",
	    agent_id(a), "reason", why, "attempt", a->start_failures, "delay_ms",
	    (json_int_t)delay));
}

static void
start_worker(struct agent *a)
{
	char err[256];
	int sock, errfd;

	if (a->sup->stopping)
		return;
	if (worker_spawn(a, &sock, &errfd, err, sizeof(err)) < 0) {
		if (short_of_resources(errno))
			spawn_postponed(a, err);
		else
			spawn_failed(a, err);
		return;
	}
	if (a->start_failures) {	/* the reason it waited is over */
		a->start_failures = 0;
		free(a->last_error);
		a->last_error = NULL;
	}
	set_state(a, W_STARTING);
	a->ready_seen = false;
	a->spawned_mono = mono_ms();
	a->spawned_wall = wall_ms();
	a->errlen = 0;
	free(a->fault);
	a->fault = NULL;
	frame_reader_init(&a->rd, FRAME_MAX_DEFAULT);
	wqueue_init(&a->wq, WQUEUE_LIMIT_DEFAULT);
	loop_add(&a->io, sock, EPOLLIN, on_worker_io, a);
	loop_add(&a->errio, errfd, EPOLLIN, on_worker_stderr, a);

	json_t *secrets = agent_secrets(a);
	secrets_for_worker(a, secrets);
	json_t *cfg = json_pack("{s:s, s:O, s:o, s:s}", "name", a->name,
	    "agent", a->conf->spec, "secrets", secrets, "state_dir", a->dir);
	if (a->key_error)
		json_object_set_new(cfg, "api_key_error", json_string(a->key_error));
	send_msg(a, MSG_CONFIG, cfg);
	json_decref(cfg);
	timer_in(&a->ack_timer, a->sup->cfg->g.ack_timeout_ms);

	event_emit(a, "worker_spawned", json_pack("{s:s, s:i}", "agent_id",
	    agent_id(a), "pid", (int)a->pid));
	log_agent(LL_DEBUG, a->name, "worker spawned, pid %d", (int)a->pid);
}

static void
kill_group(struct agent *a, int sig)
{
	if (a->pid > 0)
		kill(-a->pid, sig);
}

/* Ask the worker to exit; SIGKILL its group when the grace runs out. */
void
agent_stop(struct agent *a, enum after_exit after, const char *why)
{
	a->after = after;
	timer_stop(&a->restart_timer);
	timer_stop(&a->retry_timer);
	if (a->pid <= 0) {
		if (after == AFTER_RESPAWN) {
			a->after = AFTER_NONE;
			start_worker(a);
		} else if (after == AFTER_REMOVE)
			sup_remove_agent(a->sup, a);
		else if (a->state != W_FATAL)
			set_state(a, W_STOPPED);
		return;
	}
	if (a->state == W_STOPPING)
		return;
	log_agent(LL_INFO, a->name, "stopping worker %d: %s", (int)a->pid, why);
	if (a->cur && a->cur->dispatched && !a->cur->cancel_reason) {
		a->cur->cancel_reason = xstrdup(why);
		json_t *c = json_pack("{s:I, s:s}", "run_id", (json_int_t)a->cur->run_id,
		    "reason", why);
		send_msg(a, MSG_CANCEL, c);
		json_decref(c);
	}
	send_msg(a, MSG_SHUTDOWN, NULL);
	set_state(a, W_STOPPING);
	timer_stop(&a->ack_timer);
	timer_stop(&a->run_timer);
	timer_in(&a->kill_timer, a->sup->cfg->g.stop_grace_ms);
}

static void
worker_fault(struct agent *a, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	utf8_vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (a->fault)	/* the first fault is the cause */
		return;
	log_agent(LL_ERROR, a->name, "worker %d fault: %s; killing it", (int)a->pid, why);
	a->fault = xstrdup(why);
	kill_group(a, SIGKILL);
	set_state(a, W_STOPPING);
	/* SIGCHLD brings us to agent_on_exit, which restarts by policy. */
}

static void
on_kill_timer(struct timer *t)
{
	struct agent *a = t->ctx;
	if (a->pid <= 0)
		return;
	log_agent(LL_WARN, a->name, "worker %d did not exit within %lld ms; SIGKILL",
	    (int)a->pid, (long long)a->sup->cfg->g.stop_grace_ms);
	kill_group(a, SIGKILL);
}

static void
on_ack_timer(struct timer *t)
{
	struct agent *a = t->ctx;
	if (a->state == W_STARTING)
		worker_fault(a, "no ready within %lld ms of start",
		    (long long)a->sup->cfg->g.ack_timeout_ms);
	else if (a->cur && a->cur->dispatched && !a->cur->acked)
		worker_fault(a, "run %lld not acknowledged within %lld ms",
		    (long long)a->cur->run_id, (long long)a->sup->cfg->g.ack_timeout_ms);
}

static void
on_restart_timer(struct timer *t)
{
	struct agent *a = t->ctx;
	if (a->state == W_BACKOFF || a->state == W_WAITING)
		start_worker(a);
}

/* Unplanned restarts in the window, this one included. */
static unsigned
note_restart(struct agent *a, int64_t now)
{
	int64_t since = now - a->conf->restart_window_ms;
	unsigned kept = 0;
	for (unsigned i = 0; i < a->nrestarts; i++)
		if (a->restarts[i] > since)
			a->restarts[kept++] = a->restarts[i];
	if (kept == RESTART_HISTORY)
		memmove(a->restarts, a->restarts + 1, --kept * sizeof(int64_t));
	a->restarts[kept++] = now;
	a->nrestarts = kept;
	return kept;
}

static void
go_fatal(struct agent *a, const char *reason)
{
	set_state(a, W_FATAL);
	free(a->last_error);
	a->last_error = xstrdup(reason);
	log_agent(LL_ERROR, a->name, "FATAL: %s; `agentctl restart %s` revives it",
	    reason, a->name);
	event_emit(a, "worker_fatal", json_pack("{s:s, s:s}", "agent_id",
	    agent_id(a), "reason", reason));
	emit_status(a, "error", reason);
}

/* Decide what follows an exit we did not ask for. */
static void
restart_by_policy(struct agent *a, bool failed, int64_t uptime)
{
	const struct agent_conf *c = a->conf;
	int64_t now = mono_ms(), delay;

	if (c->restart == RESTART_NEVER || (c->restart == RESTART_ON_FAILURE && !failed)) {
		set_state(a, W_STOPPED);
		return;
	}
	unsigned n = note_restart(a, now);
	if ((int)n > c->restart_max) {
		char why[160];
		snprintf(why, sizeof(why), "%u restarts within %llds (budget %d)",
		    n, (long long)(c->restart_window_ms / 1000), c->restart_max);
		go_fatal(a, why);
		return;
	}
	if (uptime >= c->stable_ms) {
		a->backoff_step = 0;
		delay = 0;
	} else {
		double d = (double)c->backoff_ms * pow(2.0, a->backoff_step);
		delay = d > (double)c->backoff_max_ms ? c->backoff_max_ms : (int64_t)d;
		if (a->backoff_step < 62)
			a->backoff_step++;
	}
	a->st.restart_count++;
	agent_save(a);
	event_emit(a, "worker_restarting", json_pack("{s:s, s:I, s:I}", "agent_id",
	    agent_id(a), "delay_ms", (json_int_t)delay, "restarts",
	    (json_int_t)a->st.restart_count));
	if (delay == 0) {
		start_worker(a);
		return;
	}
	set_state(a, W_BACKOFF);
	timer_in(&a->restart_timer, delay);
}

/* The stderr lines the ring holds now (those of the worker since it last
 * exited), oldest first, the ring kept. */
static json_t *
stderr_lines(const struct agent *a)
{
	json_t *arr = json_array();
	for (unsigned i = 0; i < STDERR_KEEP; i++) {
		const char *line = a->errkeep[(a->errkeep_next + i) % STDERR_KEEP];
		json_t *s = line ? json_string(line) : NULL;
		if (line)
			json_array_append_new(arr, s ? s : json_string("(invalid utf-8)"));
	}
	return arr;
}

/* The same, for the worker's exit event: the ring is emptied for the next. */
static json_t *
stderr_tail(struct agent *a)
{
	json_t *arr = stderr_lines(a);
	for (unsigned i = 0; i < STDERR_KEEP; i++) {
		free(a->errkeep[i]);
		a->errkeep[i] = NULL;
	}
	a->errkeep_next = 0;
	return arr;
}

static void
describe_exit(char *out, size_t len, int status)
{
	if (WIFSIGNALED(status))
		snprintf(out, len, "killed by signal %d (SIG%s)", WTERMSIG(status),
		    sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
	else
		snprintf(out, len, "exited with code %d", WEXITSTATUS(status));
}

static void drain_stderr(struct agent *a);

void
agent_on_exit(struct agent *a, int status)
{
	char how[128];
	int64_t uptime = mono_ms() - a->spawned_mono;
	bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	enum after_exit after = a->after;
	pid_t pid = a->pid;

	/* Whatever the worker said before dying counts: read it first (as
	 * STOPPING, so nothing new is dispatched to the dead worker). */
	set_state(a, W_STOPPING);
	if (a->io.fd >= 0)
		agent_on_readable(a);
	drain_stderr(a);
	worker_kill_session(pid);	/* its MCP servers and tools go with it */
	bool oom = cgroup_oom_killed(a->sup->cgroup_mode, a->cgroup);
	cgroup_release(a->sup->cgroup_mode, a->cgroup);
	close_worker_fds(a);
	a->pid = 0;
	timer_stop(&a->ack_timer);
	timer_stop(&a->run_timer);
	timer_stop(&a->kill_timer);
	a->after = AFTER_NONE;

	describe_exit(how, sizeof(how), status);
	if (oom)
		strncat(how, " (out of memory: the cgroup's OOM killer)",
		    sizeof(how) - strlen(how) - 1);
	json_t *p = json_pack("{s:s, s:i, s:I, s:s, s:o}", "agent_id", agent_id(a),
	    "pid", (int)pid, "uptime_ms", (json_int_t)uptime, "reason",
	    a->fault ? a->fault : how, "last_stderr", stderr_tail(a));
	if (WIFSIGNALED(status))
		json_object_set_new(p, "signal", json_integer(WTERMSIG(status)));
	else
		json_object_set_new(p, "code", json_integer(WEXITSTATUS(status)));
	event_emit(a, "worker_exited", p);
	log_agent(after == AFTER_NONE ? LL_WARN : LL_INFO, a->name,
	    "worker %d %s after %lld ms%s%s", (int)pid, how, (long long)uptime,
	    a->fault ? ": " : "", a->fault ? a->fault : "");

	/* A run on the worker fails with the exit as its cause. */
	if (a->cur && a->cur->dispatched) {
		char why[600];
		if (a->cur->timed_out)
			snprintf(why, sizeof(why), "timeout: run exceeded %lld ms",
			    (long long)a->conf->run_timeout_ms);
		else
			utf8_snprintf(why, sizeof(why), "worker %s", a->fault ? a->fault : how);
		bool retryable = a->cur->cancel_reason == NULL || a->cur->timed_out;
		run_attempt_failed(a, why, retryable && !a->sup->stopping, -1);
	}
	if (a->fault)
		failed = true;

	if (a->sup->stopping) {
		set_state(a, W_STOPPED);
		sup_check_stopped(a->sup);
		return;
	}
	switch (after) {
	case AFTER_REMOVE:
		set_state(a, W_STOPPED);
		sup_remove_agent(a->sup, a);
		return;
	case AFTER_RESPAWN:
		start_worker(a);
		return;
	case AFTER_STAY_DOWN:
		set_state(a, W_STOPPED);
		return;
	case AFTER_NONE:
		break;
	}
	restart_by_policy(a, failed, uptime);
}

/* ---- stderr --------------------------------------------------------------- */

static void
keep_line(struct agent *a, const char *line)
{
	free(a->errkeep[a->errkeep_next]);
	a->errkeep[a->errkeep_next] = xstrdup(line);
	a->errkeep_next = (a->errkeep_next + 1) % STDERR_KEEP;
}

static void
take_line(struct agent *a)
{
	if (a->errcut)	/* a secret may straddle the cut: no start of one stays */
		a->errlen = redact_tail(a->sup->secrets, a->errline, a->errlen);
	a->errcut = false;
	a->errline[a->errlen] = '\0';
	if (a->errlen > 0) {
		log_agent(LL_INFO, a->name, "%s", a->errline);
		keep_line(a, a->errline);
	}
	a->errlen = 0;
}

static void
drain_stderr(struct agent *a)
{
	char chunk[4096];
	ssize_t n;

	if (a->errio.fd < 0)
		return;
	while ((n = read(a->errio.fd, chunk, sizeof(chunk))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (chunk[i] == '\n')
				take_line(a);
			else if (a->errlen < sizeof(a->errline) - 1)
				a->errline[a->errlen++] = chunk[i];
			else
				a->errcut = true;
		}
	}
	if (n == 0) {	/* EOF: keep the partial last line too */
		take_line(a);
		loop_del(&a->errio);
		close(a->errio.fd);
		a->errio.fd = -1;
	}
}

static void
on_worker_stderr(struct watch *w, uint32_t events)
{
	(void)events;
	drain_stderr(w->ctx);
}

/* ---- runs ----------------------------------------------------------------- */

static void
run_free(struct run *r)
{
	if (r == NULL)
		return;
	json_decref(r->kwargs);
	free(r->cancel_reason);
	free(r);
}

static json_t *
run_kwargs(struct agent *a, json_t *extra)
{
	json_t *tc = json_object_get(a->conf->spec, "task_config");
	json_t *kw = json_is_object(tc) ? json_deep_copy(tc) : json_object();
	if (json_is_object(extra))
		json_object_update(kw, extra);
	return kw;
}

static void
begin_run(struct agent *a, bool manual, json_t *kwargs)
{
	struct run *r = xcalloc(1, sizeof(*r));

	a->st.run_count++;
	a->st.last_run = wall_ms();
	r->run_id = a->st.run_count;
	r->attempt = 1;
	r->started_wall = a->st.last_run;
	r->started_us = mono_us();
	r->kwargs = run_kwargs(a, kwargs);
	r->manual = manual;
	r->retry_after_ms = -1;
	a->cur = r;
	agent_save(a);

	json_t *p = seed_payload(a);
	json_object_set_new(p, "run_count", json_integer(a->st.run_count));
	json_object_set_new(p, "kwargs", json_deep_copy(r->kwargs));
	json_object_set_new(p, "manual", json_boolean(manual));
	event_emit(a, "background_task_started", p);
	emit_status(a, "running", NULL);
	dispatch_pending(a);
}

static enum run_outcome
skip_run(struct agent *a, const char *reason)
{
	snprintf(a->skip_reason, sizeof(a->skip_reason), "%s", reason);
	a->st.skipped_count++;
	metrics_run_end(&a->m, RUN_END_SKIPPED, -1);
	agent_save(a);
	log_agent(LL_INFO, a->name, "run skipped: %s", reason);
	event_emit(a, "background_task_skipped", json_pack("{s:s, s:s, s:I}",
	    "agent_id", agent_id(a), "reason", reason, "skipped_count",
	    (json_int_t)a->st.skipped_count));
	return RUN_SKIPPED;
}

/* Why a new run cannot start beside the current one, as it stands. */
static void
busy_reason(const struct agent *a, char *out, size_t len)
{
	const struct run *r = a->cur;
	char at[32];
	if (r->dispatched)
		snprintf(out, len, "previous run (%lld) still in progress", (long long)r->run_id);
	else if (timer_armed(&a->retry_timer)) {
		iso8601(r->retry_at, at, sizeof(at));
		snprintf(out, len, "previous run (%lld) is waiting to retry: attempt %d at %s",
		    (long long)r->run_id, r->attempt, at);
	} else
		snprintf(out, len, "previous run (%lld) is waiting for its worker (%s)",
		    (long long)r->run_id, wstate_name(a->state));
}

/* `agentctl run` while the current run waits out its retry delay: that
 * attempt goes now (the operator asks for a run; this is the one due). */
static enum run_outcome
retry_now(struct agent *a)
{
	char at[32];
	iso8601(a->cur->retry_at, at, sizeof(at));
	log_agent(LL_INFO, a->name, "run %lld: attempt %d now, on request (it was due at %s)",
	    (long long)a->cur->run_id, a->cur->attempt, at);
	timer_stop(&a->retry_timer);
	dispatch_pending(a);
	return RUN_RETRY_NOW;
}

static void
cancel_current(struct agent *a, const char *why)
{
	struct run *r = a->cur;
	if (r == NULL || r->cancel_reason)
		return;
	r->cancel_reason = xstrdup(why);
	if (!r->dispatched) {	/* waiting for a retry or a worker: just end it */
		run_attempt_failed(a, why, false, -1);
		return;
	}
	json_t *c = json_pack("{s:I, s:s}", "run_id", (json_int_t)r->run_id, "reason", why);
	send_msg(a, MSG_CANCEL, c);
	json_decref(c);
	timer_in(&a->kill_timer, a->sup->cfg->g.stop_grace_ms);
}

enum run_outcome
agent_request_run(struct agent *a, bool manual, json_t *kwargs)
{
	char busy[200];

	if (a->sup->stopping) {	/* not a skip: no run will come at all */
		snprintf(a->skip_reason, sizeof(a->skip_reason), "agentd is stopping");
		return RUN_SKIPPED;
	}
	if (a->state == W_FATAL || a->state == W_STOPPED)
		return skip_run(a, a->state == W_FATAL ? "agent is fatal (agentctl restart "
		    "revives it)" : "worker is stopped");
	if (a->cur) {
		if (manual && a->state == W_RETRYING)
			return retry_now(a);
		switch (a->conf->overlap) {
		case OVERLAP_SKIP:
			busy_reason(a, busy, sizeof(busy));
			return skip_run(a, busy);
		case OVERLAP_QUEUE:
			if (a->queued >= QUEUE_MAX)
				return skip_run(a, "run queue full");
			a->queued++;
			return RUN_QUEUED;
		case OVERLAP_CANCEL_PREVIOUS:
			a->queued = 1;
			cancel_current(a, "cancelled by a newer run (overlap: cancel_previous)");
			return RUN_QUEUED;
		}
	}
	begin_run(a, manual, kwargs);
	return RUN_STARTED;
}

static void
send_run(struct agent *a)
{
	struct run *r = a->cur;
	json_t *m = json_pack("{s:I, s:i, s:s, s:I, s:O}", "run_id",
	    (json_int_t)r->run_id, "attempt", r->attempt, "session_id",
	    a->st.session_id, "run_count", (json_int_t)a->st.run_count,
	    "kwargs", r->kwargs);
	r->dispatched = true;
	r->acked = false;
	r->attempt_mono = mono_ms();
	r->attempt_us = mono_us();
	set_state(a, W_RUNNING);
	send_msg(a, MSG_RUN, m);
	json_decref(m);
	timer_in(&a->ack_timer, a->sup->cfg->g.ack_timeout_ms);
	if (a->conf->run_timeout_ms > 0)
		timer_in(&a->run_timer, a->conf->run_timeout_ms);
}

/* Put the current run on the worker if both are ready for it. */
static void
dispatch_pending(struct agent *a)
{
	if (a->cur && !a->cur->dispatched && (a->state == W_IDLE || a->state == W_RETRYING) &&
	    !timer_armed(&a->retry_timer))
		send_run(a);
}

static void
finish_run(struct agent *a)
{
	run_free(a->cur);
	a->cur = NULL;
	timer_stop(&a->run_timer);
	timer_stop(&a->retry_timer);
	if (a->state == W_RUNNING || a->state == W_RETRYING)
		set_state(a, W_IDLE);
	if (a->queued > 0 && !a->sup->stopping) {
		a->queued--;
		begin_run(a, false, NULL);
	}
}

static int64_t
retry_delay(struct agent *a, int attempt, int64_t retry_after_ms)
{
	double d = (double)a->conf->retry_delay_ms * pow(2.0, attempt - 1);
	if (d > (double)a->conf->retry_max_delay_ms)
		d = (double)a->conf->retry_max_delay_ms;
	d = d / 2 + rand_unit() * d / 2;	/* equal jitter: spreads a fleet */
	/* The server's Retry-After, up to retry_max_delay and never past it:
	 * a server that asks for years must not park the run for years. */
	if (retry_after_ms > d)
		d = (double)(retry_after_ms < a->conf->retry_max_delay_ms ? retry_after_ms :
		    a->conf->retry_max_delay_ms);
	return (int64_t)d;
}

static void
on_retry_timer(struct timer *t)
{
	dispatch_pending(t->ctx);
}

static void
run_attempt_failed(struct agent *a, const char *error, bool retryable,
    int64_t retry_after_ms)
{
	struct run *r = a->cur;
	const struct agent_conf *c = a->conf;
	bool will_retry = retryable && r->attempt <= c->max_retries && !a->sup->stopping;
	int64_t delay = will_retry ? retry_delay(a, r->attempt, retry_after_ms) : 0;
	char why[800];

	if (retryable && retry_after_ms > c->retry_max_delay_ms)
		utf8_snprintf(why, sizeof(why), "%s (the server asked to wait %llds, more than "
		    "retry_max_delay %llds)", error, (long long)(retry_after_ms / 1000),
		    (long long)(c->retry_max_delay_ms / 1000));
	else
		utf8_snprintf(why, sizeof(why), "%s", error);
	a->st.error_count++;
	free(a->last_error);
	a->last_error = xstrdup(why);
	agent_save(a);

	json_t *p = seed_payload(a);
	json_object_set_new(p, "run_count", json_integer(r->run_id));
	json_object_set_new(p, "error", json_string(why));
	json_object_set_new(p, "error_count", json_integer(a->st.error_count));
	json_object_set_new(p, "attempt", json_integer(r->attempt));
	json_object_set_new(p, "retryable", json_boolean(retryable));
	json_object_set_new(p, "will_retry", json_boolean(will_retry));
	if (will_retry)
		json_object_set_new(p, "retry_in_ms", json_integer(delay));
	event_emit(a, "background_task_error", p);
	log_agent(LL_WARN, a->name, "run %lld attempt %d failed: %s%s",
	    (long long)r->run_id, r->attempt, why, will_retry ? " (will retry)" : "");

	timer_stop(&a->run_timer);
	timer_stop(&a->ack_timer);
	if (will_retry) {
		a->m.retries++;
		r->attempt++;
		r->dispatched = false;
		r->timed_out = false;
		r->retry_at = wall_ms() + delay;
		timer_in(&a->retry_timer, delay);
		if (a->state == W_RUNNING)
			set_state(a, W_RETRYING);
		return;
	}
	if (a->state == W_RUNNING)
		set_state(a, W_IDLE);
	a->last_failed = true;
	metrics_run_end(&a->m, r->timed_out ? RUN_END_TIMEOUT : r->cancel_reason ?
	    RUN_END_CANCELLED : RUN_END_FAILED, mono_us() - r->started_us);
	a->last_duration_ms = mono_ms() - r->attempt_mono;
	emit_status(a, "error", why);
	finish_run(a);
}

static void
on_run_timer(struct timer *t)
{
	struct agent *a = t->ctx;
	char why[96];
	if (a->cur == NULL || !a->cur->dispatched)
		return;
	a->cur->timed_out = true;
	snprintf(why, sizeof(why), "run_timeout (%lld ms) exceeded",
	    (long long)a->conf->run_timeout_ms);
	log_agent(LL_WARN, a->name, "run %lld: %s; cancelling",
	    (long long)a->cur->run_id, why);
	cancel_current(a, why);
	/* kill_timer: if the worker does not answer the cancel in the grace
	 * period, its group is killed and it is restarted. */
}

static void
on_sched_timer(struct timer *t)
{
	struct agent *a = t->ctx;
	int64_t now = wall_ms();

	if (a->sched_at_wall > now + 5) {	/* wall clock moved back: wait on */
		timer_in(&a->sched_timer, a->sched_at_wall - now);
		return;
	}
	schedule_next(a, false);
	agent_request_run(a, false, NULL);
}

static void
schedule_next(struct agent *a, bool from_start)
{
	const struct agent_conf *c = a->conf;
	int64_t now = wall_ms(), next = 0;

	timer_stop(&a->sched_timer);
	if (a->st.paused || c->sched == SCHED_MANUAL || a->sup->stopping) {
		a->st.next_run = 0;
		agent_save(a);
		return;
	}
	if (c->sched == SCHED_INTERVAL) {
		/* Fixed rate: the next slot follows the last one, not the end of
		 * the run, so runs do not drift.  Missed slots are not replayed. */
		int64_t base = (!from_start && a->sched_at_wall) ? a->sched_at_wall : now;
		next = base + c->interval_ms;
		if (from_start && a->st.next_run > now && a->st.next_run < next)
			next = a->st.next_run;	/* keep the schedule across restarts */
		if (next <= now)
			next = now + c->interval_ms;
	} else {
		next = cron_next(&c->cron, now);
		if (next < 0) {
			log_agent(LL_WARN, a->name, "cron \"%s\" never fires", c->schedule_text);
			a->st.next_run = 0;
			agent_save(a);
			return;
		}
	}
	a->sched_at_wall = next;
	a->st.next_run = next;
	agent_save(a);
	timer_in(&a->sched_timer, next - now);
}

/* ---- messages from the worker ------------------------------------------ */

static bool
run_matches(struct agent *a, json_t *m)
{
	json_int_t id = json_integer_value(json_object_get(m, "run_id"));
	return a->cur && a->cur->dispatched && a->cur->run_id == id;
}

static void
on_ready(struct agent *a, json_t *m)
{
	if (a->ready_seen) {
		worker_fault(a, "ready sent twice");
		return;
	}
	a->ready_seen = true;
	if (a->state == W_STOPPING) {	/* the shutdown we sent is next in its pipe */
		log_agent(LL_DEBUG, a->name, "worker %d asked to stop before it was "
		    "ready; waiting for its exit", (int)a->pid);
		return;
	}
	timer_stop(&a->ack_timer);
	json_decref(a->tools);
	a->tools = json_incref(json_object_get(m, "tools"));
	json_decref(a->mcp);	/* a new worker: its servers report afresh */
	a->mcp = json_object();
	set_state(a, idle_state(a));
	log_agent(LL_DEBUG, a->name, "worker %d ready", (int)a->pid);
	dispatch_pending(a);
}

static void
on_result(struct agent *a, json_t *m)
{
	struct run *r = a->cur;
	if (!run_matches(a, m)) {
		log_agent(LL_DEBUG, a->name, "result for run %lld ignored (not current)",
		    (long long)json_integer_value(json_object_get(m, "run_id")));
		return;
	}
	timer_stop(&a->ack_timer);
	timer_stop(&a->kill_timer);
	if (json_is_true(json_object_get(m, "ok"))) {
		json_t *res = json_object_get(m, "result");
		int64_t dur = mono_ms() - r->attempt_mono;
		a->st.last_success = wall_ms();
		a->last_failed = false;
		a->last_duration_ms = dur;
		agent_save(a);
		json_t *p = seed_payload(a);
		json_object_set_new(p, "run_count", json_integer(r->run_id));
		json_object_set_new(p, "result", res ? json_incref(res) : json_null());
		json_object_set_new(p, "duration_ms", json_integer(dur));
		json_object_set_new(p, "attempt", json_integer(r->attempt));
		json_t *usage = json_object_get(m, "usage");
		if (usage) {
			/* What the run cost beyond the model and its tools: dispatch,
			 * pipes, memory context, the loop itself. */
			json_int_t ext = json_integer_value(json_object_get(usage, "external_us"));
			json_int_t total = (json_int_t)(mono_us() - r->attempt_us);
			json_object_set(p, "usage", usage);
			json_object_set_new(p, "overhead_us", json_integer(total > ext ? total - ext : 0));
		}
		event_emit(a, "background_task_completed", p);
		metrics_run_end(&a->m, RUN_END_COMPLETED, mono_us() - r->started_us);
		if (a->state == W_RUNNING)
			set_state(a, W_IDLE);
		emit_status(a, "idle", NULL);
		finish_run(a);
		return;
	}
	const char *err = json_string_value(json_object_get(m, "error"));
	char why[600];
	if (r->timed_out)
		snprintf(why, sizeof(why), "timeout: run exceeded %lld ms",
		    (long long)a->conf->run_timeout_ms);
	else if (r->cancel_reason)
		utf8_snprintf(why, sizeof(why), "cancelled: %s", r->cancel_reason);
	else
		utf8_snprintf(why, sizeof(why), "%s", err ? err : "run failed");
	json_t *ra = json_object_get(m, "retry_after_ms");
	bool retryable = r->timed_out || (r->cancel_reason == NULL &&
	    json_is_true(json_object_get(m, "retryable")));
	run_attempt_failed(a, why, retryable, ra ? json_integer_value(ra) : -1);
}

static void
on_mem_store(struct agent *a, json_t *m)
{
	const char *type = json_string_value(json_object_get(m, "memory_type"));
	if (!memory_type_valid(type)) {
		log_agent_limited(LL_WARN, a->name, "mem_store: unknown memory_type \"%s\"", type);
		return;
	}
	/* The agent is the one on this pipe, whatever the message says.  What
	 * is stored here is what Redis and PostgreSQL get: redacted first. */
	json_t *clean = sup_redact(a->sup, json_incref(m));
	store_mem_append(a->sup->store, a->name, a->st.session_id, type,
	    json_string_value(json_object_get(clean, "role")),
	    json_string_value(json_object_get(clean, "content")),
	    json_object_get(clean, "metadata"));
	json_decref(clean);
}

static void
on_mem_query(struct agent *a, json_t *m)
{
	const char *type = json_string_value(json_object_get(m, "memory_type"));
	json_int_t limit = json_integer_value(json_object_get(m, "limit"));
	json_t *items = NULL, *reply;

	if (limit < 0 || limit > 1000)
		limit = 1000;
	reply = json_pack("{s:O}", "req_id", json_object_get(m, "req_id"));
	if (!memory_type_valid(type))
		json_object_set_new(reply, "error", json_string("unknown memory_type"));
	else if (store_mem_context(a->sup->store, a->name, type, (int)limit, &items) < 0)
		json_object_set_new(reply, "error", json_string("memory store failed"));
	json_object_set_new(reply, "items", items ? items : json_array());
	send_msg(a, MSG_MEM_REPLY, reply);
	json_decref(reply);
}

static void
recall_done(struct mem_recall *q, json_t *ans)
{
	struct agent *a = q->ctx;
	json_t *reply = json_pack("{s:I, s:O, s:O}", "req_id", a->recall_req, "items",
	    json_object_get(ans, "hits"), "degraded", json_object_get(ans, "degraded"));
	if (json_object_get(ans, "reason"))
		json_object_set(reply, "reason", json_object_get(ans, "reason"));
	send_msg(a, MSG_MEM_REPLY, reply);
	json_decref(reply);
	json_decref(ans);
}

/* memory_types as a mask: the names given (known ones only), else the
 * default; 0 when a name is not a type. */
static unsigned
recall_types(const json_t *names)
{
	unsigned mask = 0;
	size_t i;
	json_t *v;
	if (names == NULL)
		return MEMORY_RECALL_TYPES;
	if (json_array_size(names) == 0 || json_array_size(names) > MT__N)
		return 0;
	json_array_foreach(names, i, v) {
		int t = memory_type_code(json_string_value(v));
		if (t < 0)
			return 0;
		mask |= 1u << t;
	}
	return mask;
}

/* query_both_memory_types for the worker: its own agent's memory, whatever
 * the message names. */
static void
on_mem_recall(struct agent *a, json_t *m)
{
	json_int_t limit = json_integer_value(json_object_get(m, "limit"));
	unsigned types = recall_types(json_object_get(m, "memory_types"));
	char why[128] = "";

	if (a->recall.busy)
		snprintf(why, sizeof(why), "a recall is already being answered");
	else if (limit < 1 || limit > RECALL_LIMIT_MAX)
		snprintf(why, sizeof(why), "limit must be from 1 to %d", RECALL_LIMIT_MAX);
	else if (types == 0)
		snprintf(why, sizeof(why), "memory_types must list 1 to 4 of working, episodic, "
		    "long_term, procedural");
	if (why[0]) {
		json_t *reply = json_pack("{s:O, s:[], s:s}", "req_id", json_object_get(m, "req_id"),
		    "items", "error", why);
		send_msg(a, MSG_MEM_REPLY, reply);
		json_decref(reply);
		return;
	}
	a->recall.done = recall_done;
	a->recall.ctx = a;
	a->recall_req = json_integer_value(json_object_get(m, "req_id"));
	store_mem_recall(a->sup->store, &a->recall, a->name,
	    json_string_value(json_object_get(m, "query")), (int)limit, types);
}

/* Event types a worker may emit; the seed's lifecycle events are agentd's. */
static bool
worker_event_allowed(const char *type)
{
	static const char *prefixes[] = { "tool_call_", "model_", "mcp_", "memory_" };
	for (size_t i = 0; i < ARRAY_LEN(prefixes); i++)
		if (strncmp(type, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

static void
on_event(struct agent *a, json_t *m)
{
	const char *type = json_string_value(json_object_get(m, "type"));
	json_t *payload = json_deep_copy(json_object_get(m, "payload"));

	if (!worker_event_allowed(type)) {
		log_agent_limited(LL_WARN, a->name, "worker may not emit event type \"%s\"; "
		    "dropped", type);
		json_decref(payload);
		return;
	}
	json_object_set_new(payload, "agent_id", json_string(agent_id(a)));
	const char *server = json_string_value(json_object_get(payload, "server"));
	if (strcmp(type, "mcp_server_status") == 0 && server && a->mcp)
		json_object_set(a->mcp, server, payload);
	if (a->cur)
		json_object_set_new(payload, "run_count", json_integer(a->cur->run_id));
	metrics_worker_event(&a->m, type, payload);
	event_emit(a, type, payload);
}

static void
on_log(struct agent *a, json_t *m)
{
	int lvl = log_level_parse(json_string_value(json_object_get(m, "level")));
	log_agent(lvl < 0 ? LL_INFO : lvl, a->name, "%s",
	    json_string_value(json_object_get(m, "msg")));
}

static void
handle_msg(struct agent *a, enum msg_type t, json_t *m)
{
	char why[200];

	if (msg_check_bounds(t, m, why, sizeof(why)) < 0) {
		worker_fault(a, "%s", why);
		return;
	}
	switch (t) {
	case MSG_READY:
		on_ready(a, m);
		break;
	case MSG_RUN_ACK:
		if (run_matches(a, m)) {
			a->cur->acked = true;
			timer_stop(&a->ack_timer);
		}
		break;
	case MSG_EVENT:
		on_event(a, m);
		break;
	case MSG_RESULT:
		on_result(a, m);
		break;
	case MSG_MEM_STORE:
		on_mem_store(a, m);
		break;
	case MSG_MEM_QUERY:
		on_mem_query(a, m);
		break;
	case MSG_MEM_RECALL:
		on_mem_recall(a, m);
		break;
	case MSG_LOG:
		on_log(a, m);
		break;
	default:
		worker_fault(a, "worker sent a %s message, which only agentd sends",
		    msg_type_name(t));
		break;
	}
}

void
agent_on_readable(struct agent *a)
{
	const uint8_t *p;
	size_t len;
	const char *ferr;
	char err[256];

	/* A few reads per wake-up, not until the pipe is dry: a worker that
	 * writes as fast as agentd reads would otherwise hold the loop -- no
	 * commit, no relay, no other agent -- for as long as it kept on.  The
	 * watch is level-triggered, so what is left wakes the next pass. */
	for (int reads = 0; reads < READS_PER_WAKE; reads++) {
		ssize_t n = frame_reader_fill(&a->rd, a->io.fd);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			loop_del(&a->io);	/* EOF: exit follows via SIGCHLD */
			break;
		}
		int rc;
		while ((rc = frame_reader_next(&a->rd, &p, &len, &ferr)) == 1) {
			enum msg_type t;
			json_t *m;
			if (msg_unpack(p, len, &t, &m, err, sizeof(err)) < 0) {
				worker_fault(a, "bad message: %s", err);
				return;
			}
			handle_msg(a, t, m);
			json_decref(m);
			if (a->fault || a->io.fd < 0)
				return;
		}
		if (rc < 0) {
			worker_fault(a, "bad frame: %s", ferr);
			return;
		}
		if (n < 0)
			break;
	}
}

static void
on_worker_io(struct watch *w, uint32_t events)
{
	struct agent *a = w->ctx;
	if (events & EPOLLOUT) {
		if (wqueue_flush(&a->wq, a->io.fd) < 0 && errno != EAGAIN)
			loop_del(&a->io);
		else
			update_io_interest(a);
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		agent_on_readable(a);
}

/* ---- commands and construction -------------------------------------------- */

int
agent_pause(struct agent *a)
{
	if (a->st.paused)
		return -1;
	a->st.paused = true;
	schedule_next(a, false);
	agent_save(a);
	return 0;
}

int
agent_resume(struct agent *a)
{
	if (!a->st.paused)
		return -1;
	a->st.paused = false;
	a->sched_at_wall = 0;
	schedule_next(a, true);
	agent_save(a);
	return 0;
}

/* A session: "background_<agent_id>_<unix seconds>", as the seed makes
 * them.  A new one (after the first, by agentctl restart) leaves the old
 * one's working memory behind: it was that session's scratch. */
static void
new_session(struct agent *a)
{
	if (a->st.session_id[0])
		store_mem_clear(a->sup->store, a->name, "working");
	snprintf(a->st.session_id, sizeof(a->st.session_id), "background_%s_%lld",
	    a->conf->agent_id, (long long)(wall_ms() / 1000));
}

/* An operator's restart starts the agent afresh: a new session, too. */
void
agent_restart_cmd(struct agent *a)
{
	new_session(a);
	agent_save(a);
	a->nrestarts = 0;
	a->backoff_step = 0;
	a->start_failures = 0;
	free(a->last_error);
	a->last_error = NULL;
	if (a->pid > 0) {
		agent_stop(a, AFTER_RESPAWN, "restart requested");
		return;
	}
	timer_stop(&a->restart_timer);
	start_worker(a);
	if ((a->state == W_STARTING || a->state == W_WAITING) && !timer_armed(&a->sched_timer))
		schedule_next(a, true);
}

static bool
str_equal(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

/* What a worker is started with: its spec, and what it is spawned under. */
static bool
worker_conf_equal(const struct agent_conf *a, const struct agent_conf *b)
{
	return json_equal(a->spec, b->spec) && str_equal(a->user, b->user) &&
	    str_equal(a->group, b->group) && strv_equal(a->env, b->env) &&
	    strv_equal(a->secret_env, b->secret_env) &&
	    a->limits.memory == b->limits.memory && a->limits.nofile == b->limits.nofile &&
	    a->limits.nproc == b->limits.nproc && a->limits.cpu_ms == b->limits.cpu_ms &&
	    a->limits.cpu_quota == b->limits.cpu_quota;
}

/* Only what changed restarts: a new schedule, retry or restart policy is
 * the supervisor's alone, and the worker (with its MCP servers) stays. */
void
agent_replace_conf(struct agent *a, const struct agent_conf *conf)
{
	bool respawn = !worker_conf_equal(a->conf, conf);
	agent_conf_free(a->conf);
	a->conf = agent_conf_dup(conf);
	store_mem_agent(a->sup->store, a->name, conf->embeddings);
	a->queued = 0;
	a->sched_at_wall = 0;
	schedule_next(a, true);
	if (respawn)
		agent_stop(a, AFTER_RESPAWN, "configuration changed");
}

struct agent *
agent_new(struct sup *s, const struct agent_conf *conf)
{
	struct agent *a = xcalloc(1, sizeof(*a));
	a->last_duration_ms = -1;
	char dir[4096];

	a->sup = s;
	a->name = xstrdup(conf->name);
	a->conf = agent_conf_dup(conf);
	a->io.fd = a->errio.fd = -1;
	snprintf(dir, sizeof(dir), "%s/agents/%s", s->cfg->g.state_dir, a->name);
	a->dir = xstrdup(dir);
	timer_init(&a->sched_timer, on_sched_timer, a);
	timer_init(&a->restart_timer, on_restart_timer, a);
	timer_init(&a->ack_timer, on_ack_timer, a);
	timer_init(&a->run_timer, on_run_timer, a);
	timer_init(&a->kill_timer, on_kill_timer, a);
	timer_init(&a->retry_timer, on_retry_timer, a);

	/* Never "starting fresh" over state that is there but unreadable: that
	 * would reset its counters and session for good. */
	if (store_state_load(s->store, a->name, &a->st) < 0) {
		log_agent(LL_ERROR, a->name, "cannot load its saved state from the state db; "
		    "not starting it");
		agent_free(a);
		return NULL;
	}
	if (a->st.session_id[0] == '\0')
		new_session(a);
	store_mem_agent(s->store, a->name, conf->embeddings);
	return a;
}

void
agent_start(struct agent *a)
{
	start_worker(a);
	schedule_next(a, true);
	if (a->conf->run_on_start && !a->st.paused)
		agent_request_run(a, false, NULL);
}

void
agent_free(struct agent *a)
{
	timer_stop(&a->sched_timer);
	timer_stop(&a->restart_timer);
	timer_stop(&a->ack_timer);
	timer_stop(&a->run_timer);
	timer_stop(&a->kill_timer);
	timer_stop(&a->retry_timer);
	close_worker_fds(a);
	run_free(a->cur);
	for (unsigned i = 0; i < STDERR_KEEP; i++)
		free(a->errkeep[i]);
	agent_state_free(&a->st);
	json_decref(a->tools);
	json_decref(a->mcp);
	agent_conf_free(a->conf);
	free(a->cgroup);
	free(a->fault);
	free(a->last_error);
	free(a->key_error);
	free(a->dir);
	free(a->name);
	json_decref(a->given);
	free(a->etag);
	free(a->conf_error);
	free(a);
}


/* The worker's own tools, then its MCP servers' (as the model sees them). */
static json_t *
available_tools(const struct agent *a)
{
	json_t *all = a->tools ? json_deep_copy(a->tools) : json_array(), *st;
	const char *k;
	json_object_foreach(a->mcp, k, st)
		json_array_extend(all, json_object_get(st, "tools"));
	return all;
}

static json_t *
mcp_servers(const struct agent *a)
{
	json_t *o = json_object(), *st;
	const char *k;
	json_object_foreach(a->mcp, k, st)
		json_object_set_new(o, k, json_pack("{s:O, s:O, s:O, s:O, s:O}", "state",
		    json_object_get(st, "state"), "transport", json_object_get(st, "transport"),
		    "protocol_version", json_object_get(st, "protocol_version"),
		    "tools", json_object_get(st, "tools"), "error", json_object_get(st, "error")));
	return o;
}

json_t *
agent_status_json(const struct agent *a)
{
	const struct store *st = a->sup->store;
	bool running = a->cur != NULL;
	const char *seed_status = running ? "running" :
	    (a->state == W_FATAL || a->last_failed) ? "error" : "idle";
	json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:s, s:s}",
	    "name", a->name, "agent_id", agent_id(a), "state", wstate_name(a->state),
	    "is_running", running, "paused", a->st.paused,
	    "run_count", (json_int_t)a->st.run_count,
	    "error_count", (json_int_t)a->st.error_count,
	    "skipped_count", (json_int_t)a->st.skipped_count,
	    "restart_count", (json_int_t)a->st.restart_count,
	    "session_id", a->st.session_id, "status", seed_status);
	json_object_set_new(o, "pid", a->pid > 0 ? json_integer(a->pid) : json_null());
	json_object_set_new(o, "uptime_s", a->pid > 0 ?
	    json_real((double)(mono_ms() - a->spawned_mono) / 1000.0) : json_null());
	json_object_set_new(o, "last_run", iso_or_null(a->st.last_run));
	json_object_set_new(o, "last_success", iso_or_null(a->st.last_success));
	json_object_set_new(o, "next_run", iso_or_null(a->st.next_run));
	json_object_set_new(o, "schedule", json_string(a->conf->schedule_text ?
	    a->conf->schedule_text : "manual"));
	json_object_set_new(o, "available_tools", available_tools(a));
	json_object_set_new(o, "mcp_servers", mcp_servers(a));
	json_object_set_new(o, "event_store", json_string(store_event_backend(st)));
	json_object_set_new(o, "memory_store", json_string(store_memory_backend(st)));
	json_object_set_new(o, "last_error", a->last_error ? json_string(a->last_error) : json_null());
	json_object_set_new(o, "api_key_error", a->key_error ? json_string(a->key_error) : json_null());
	json_object_set_new(o, "queued_runs", json_integer(a->queued));
	json_object_set_new(o, "owner", json_string(a->api ? "api" : "file"));
	if (a->etag)
		json_object_set_new(o, "etag", json_string(a->etag));
	if (a->conf_error)
		json_object_set_new(o, "config_error", json_string(a->conf_error));
	json_object_set_new(o, "last_outcome", a->last_duration_ms < 0 ? json_null() :
	    json_string(a->last_failed ? "failed" : "completed"));
	json_object_set_new(o, "last_duration_ms", a->last_duration_ms < 0 ? json_null() :
	    json_integer(a->last_duration_ms));
	json_object_set_new(o, "last_stderr", stderr_lines(a));
	if (a->cur) {
		json_t *run = json_pack("{s:I, s:i}", "run_id", (json_int_t)a->cur->run_id,
		    "attempt", a->cur->attempt);
		json_object_set_new(run, "retry_at", timer_armed(&a->retry_timer) ?
		    iso_or_null(a->cur->retry_at) : json_null());
		json_object_set_new(o, "current_run", run);
	}
	/* last_error, the servers' errors, tool names: a worker and its peers
	 * wrote them. */
	return sup_redact(a->sup, o);
}
