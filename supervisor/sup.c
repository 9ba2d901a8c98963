/*
 * sup: the supervisor as a whole -- its agents, signals, reload and stop.
 *
 * Signals arrive through a signalfd and are handled in the loop like any
 * other input, so no handler ever runs concurrently with the code it would
 * disturb.  SIGCHLD reaps every child (agentd is a subreaper, and may be
 * PID 1): workers are matched by pid, anything else is an orphan that is
 * simply reaped.  Reload builds the new config completely before touching
 * anything; a bad file leaves every agent as it was.  The file's reload
 * never touches an agent created over the API (apiagents.c), and one that
 * would give a file agent such an agent's name is refused whole.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "supervisor/relay.h"
#include "supervisor/sup.h"

struct agent *
sup_find(struct sup *s, const char *name)
{
	for (size_t i = 0; i < s->nagents; i++)
		if (strcmp(s->agents[i]->name, name) == 0)
			return s->agents[i];
	return NULL;
}

struct agent *
sup_find_pid(struct sup *s, pid_t pid)
{
	for (size_t i = 0; i < s->nagents; i++)
		if (s->agents[i]->pid == pid)
			return s->agents[i];
	return NULL;
}

static void
agent_free_cb(void *p)
{
	agent_free(p);
}

/* Events the store could not keep (the outbox bound with Redis away too
 * long; the pending bound with the state db taking no writes): each agent
 * that lost some says so in an event of its own, where the gap is. */
static void
report_drops(struct sup *s)
{
	json_t *drops = store_take_drops(s->store), *d;
	size_t i;
	if (drops == NULL)
		return;
	json_array_foreach(drops, i, d) {
		struct agent *a = sup_find(s, json_string_value(json_object_get(d, "agent")));
		if (a == NULL)
			continue;	/* removed since: the log has the count */
		json_t *p = json_deep_copy(d);
		json_object_del(p, "agent");
		json_object_set_new(p, "agent_id", json_string(a->conf->agent_id));
		event_emit(a, "events_dropped", p);
	}
	json_decref(drops);
	store_flush(s->store);
}

/* The store's commit hook: state that agent_save_later left for it. */
static void
save_unsaved(void *ctx)
{
	struct sup *s = ctx;
	for (size_t i = 0; i < s->nagents; i++)
		if (s->agents[i]->unsaved)
			agent_save(s->agents[i]);
}

void
sup_remove_agent(struct sup *s, struct agent *a)
{
	if (a->unsaved)
		agent_save(a);
	for (size_t i = 0; i < s->nagents; i++) {
		if (s->agents[i] != a)
			continue;
		memmove(&s->agents[i], &s->agents[i + 1],
		    (s->nagents - i - 1) * sizeof(*s->agents));
		s->nagents--;
		break;
	}
	log_agent(LL_INFO, a->name, "removed");
	store_flush(s->store);
	loop_defer(agent_free_cb, a);
}

struct agent *
sup_add_agent(struct sup *s, const struct agent_conf *c)
{
	struct agent *a = agent_new(s, c);
	if (a == NULL)
		return NULL;
	s->agents = xrealloc(s->agents, (s->nagents + 1) * sizeof(*s->agents));
	s->agents[s->nagents++] = a;
	return a;
}

/* Their last state goes into the store's pending batch. */
static void
free_agents(struct sup *s)
{
	while (s->nagents > 0) {
		struct agent *a = s->agents[--s->nagents];
		agent_save(a);
		agent_free(a);
	}
	free(s->agents);
	s->agents = NULL;
}

/* ---- children -------------------------------------------------------- */

static void
reap(struct sup *s)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct agent *a = sup_find_pid(s, pid);
		if (a)
			agent_on_exit(a, status);
		else
			log_debug("reaped orphan %d", (int)pid);
	}
}

/* ---- reload ---------------------------------------------------------- */

static void
warn_global_changes(const struct global_conf *old, const struct global_conf *new)
{
	if (strcmp(old->state_dir, new->state_dir) ||
	    strcmp(old->control_socket, new->control_socket) ||
	    strcmp(old->event_store, new->event_store) ||
	    strcmp(old->memory_store, new->memory_store) ||
	    !strv_equal(old->http_listen, new->http_listen) ||
	    !old->http_token_file != !new->http_token_file ||
	    (old->http_token_file && strcmp(old->http_token_file, new->http_token_file)) ||
	    ((old->embeddings || new->embeddings) && !json_equal(old->embeddings, new->embeddings)))
		log_warn("reload: state_dir, control_socket, store, http and embeddings settings take "
		    "effect at the next start of agentd; keeping the running ones");
}

int
sup_reload(struct sup *s, json_t **report, char **errtext)
{
	struct config *nc = NULL;
	struct conf_errors errs = { 0 };
	json_t *added = json_array(), *removed = json_array(), *changed = json_array();
	int unchanged = 0;

	if (config_load(s->config_path, &nc, &errs) < 0) {
		*errtext = conf_errors_join(&errs);
		log_error("reload refused, keeping the running configuration:\n%s", *errtext);
		conf_errors_free(&errs);
		json_decref(added);
		json_decref(removed);
		json_decref(changed);
		return -1;
	}
	conf_errors_free(&errs);	/* warnings: what they warn of is logged as it happens */
	if (api_agents_reload_check(s, nc, errtext) < 0) {
		log_error("reload refused, keeping the running configuration:\n%s", *errtext);
		config_free(nc);
		json_decref(added);
		json_decref(removed);
		json_decref(changed);
		return -1;
	}
	warn_global_changes(&s->cfg->g, &nc->g);
	/* Paths and stores cannot change under a running agentd: the new
	 * config inherits the running ones (ownership swapped, so the file's
	 * are freed with the old config), and takes only what can change live. */
	struct global_conf fresh = nc->g;
	nc->g = s->cfg->g;
	s->cfg->g = fresh;
	nc->g.log_level = fresh.log_level;
	nc->g.stop_grace_ms = fresh.stop_grace_ms;
	nc->g.ack_timeout_ms = fresh.ack_timeout_ms;
	log_set_level(nc->g.log_level);

	for (size_t i = 0; i < s->nagents; ) {
		struct agent *a = s->agents[i];
		if (!a->api && config_find(nc, a->name) == NULL) {
			json_array_append_new(removed, json_string(a->name));
			agent_stop(a, AFTER_REMOVE, "removed from the configuration");
			/* agent_stop may have removed it at once (no worker). */
			if (i < s->nagents && s->agents[i] == a)
				i++;
		} else
			i++;
	}
	for (size_t i = 0; i < nc->nagents; i++) {
		const struct agent_conf *c = &nc->agents[i];
		struct agent *a = sup_find(s, c->name);
		if (a == NULL) {
			if ((a = sup_add_agent(s, c)) == NULL)
				continue;	/* its state cannot be read: said, not started */
			json_array_append_new(added, json_string(c->name));
			agent_start(a);
		} else if (a->after == AFTER_REMOVE) {
			continue;	/* (an API agent's name: refused above) */
		} else if (strcmp(a->conf->fingerprint, c->fingerprint) != 0) {
			json_array_append_new(changed, json_string(c->name));
			agent_replace_conf(a, c);
		} else
			unchanged++;
	}
	config_free(s->cfg);
	s->cfg = nc;
	log_info("reloaded %s: %zu added, %zu removed, %zu changed, %d unchanged",
	    s->config_path, json_array_size(added), json_array_size(removed),
	    json_array_size(changed), unchanged);
	*report = json_pack("{s:o, s:o, s:o, s:i}", "added", added, "removed", removed,
	    "changed", changed, "unchanged", unchanged);
	return 0;
}

/* ---- stop ------------------------------------------------------------ */

static void
on_stop_timer(struct timer *t)
{
	struct sup *s = t->ctx;
	for (size_t i = 0; i < s->nagents; i++)
		if (s->agents[i]->pid > 0) {
			log_warn("agent %s: worker %d still running after the grace "
			    "period; SIGKILL", s->agents[i]->name, (int)s->agents[i]->pid);
			kill(-s->agents[i]->pid, SIGKILL);
		}
}

void
sup_begin_stop(struct sup *s, const char *why)
{
	if (s->stopping)
		return;
	log_info("stopping (%s): cancelling runs, stopping %zu workers", why, s->nagents);
	s->stopping = true;
	for (size_t i = 0; i < s->nagents; i++) {
		struct agent *a = s->agents[i];
		timer_stop(&a->sched_timer);
		timer_stop(&a->retry_timer);
		timer_stop(&a->restart_timer);
		agent_stop(a, AFTER_STAY_DOWN, "agentd is stopping");
	}
	timer_in(&s->stop_timer, s->cfg->g.stop_grace_ms + 500);
	sup_check_stopped(s);
}

void
sup_check_stopped(struct sup *s)
{
	if (!s->stopping)
		return;
	for (size_t i = 0; i < s->nagents; i++)
		if (s->agents[i]->pid > 0)
			return;
	timer_stop(&s->stop_timer);	/* the loop ends after this pass */
}

static bool
all_stopped(struct sup *s)
{
	if (!s->stopping)
		return false;
	for (size_t i = 0; i < s->nagents; i++)
		if (s->agents[i]->pid > 0)
			return false;
	return true;
}

/* ---- signals --------------------------------------------------------- */

static void
on_signal(struct watch *w, uint32_t events)
{
	struct sup *s = w->ctx;
	struct signalfd_siginfo si;
	(void)events;

	while (read(w->fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap(s);
			break;
		case SIGTERM:
		case SIGINT:
			sup_begin_stop(s, si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
			break;
		case SIGHUP:
			if (!s->stopping) {
				json_t *report = NULL;
				char *errtext = NULL;
				if (sup_reload(s, &report, &errtext) == 0)
					json_decref(report);
				free(errtext);
			}
			break;
		case SIGUSR1:
			if (log_reopen() < 0)
				log_error("reopening the log file: %s", strerror(errno));
			else
				log_info("log file reopened");
			break;
		}
	}
	/* A SIGCHLD may have been coalesced with another signal. */
	reap(s);
}

static void
handled_signals(sigset_t *set)
{
	static const int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	sigemptyset(set);
	for (size_t i = 0; i < ARRAY_LEN(sigs); i++)
		sigaddset(set, sigs[i]);
}

int
sup_block_signals(void)
{
	sigset_t set;
	handled_signals(&set);
	return sigprocmask(SIG_BLOCK, &set, NULL);
}

static int
signals_setup(struct sup *s)
{
	sigset_t set;
	int fd;

	if (sup_block_signals() < 0)
		return -1;
	handled_signals(&set);
	signal(SIGPIPE, SIG_IGN);
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -1;
	return loop_add(&s->sigw, fd, EPOLLIN, on_signal, s);
}

/* ---- run ------------------------------------------------------------- */

/* Rate-limited log lines (common/log.h): their counts are told when their
 * window closes, even if nothing else wakes the loop then. */
static void
arm_log_timer(struct sup *s)
{
	int64_t due = log_limited_flush(mono_ms());
	if (due < 0)
		timer_stop(&s->log_timer);
	else if (!timer_armed(&s->log_timer) || s->log_timer.when != due)
		timer_at(&s->log_timer, due);
}

static void
on_log_timer(struct timer *t)
{
	arm_log_timer(t->ctx);
}

int
sup_run(struct sup *s)
{
	char err[512];

	if (signals_setup(s) < 0) {
		log_error("signals: %s", strerror(errno));
		return 1;
	}
	timer_init(&s->stop_timer, on_stop_timer, s);
	timer_init(&s->log_timer, on_log_timer, s);
	store_on_commit(s->store, save_unsaved, s);
	for (size_t i = 0; i < s->cfg->nagents; i++)
		if (sup_add_agent(s, &s->cfg->agents[i]) == NULL) {
			log_error("not starting: the state db has an agent's state it cannot read");
			free_agents(s);
			return 1;
		}
	if (api_agents_load(s) < 0) {
		log_error("not starting: the state db's agents created over the API cannot be read");
		free_agents(s);
		return 1;
	}
	/* Before the listeners (the HTTP token joins the set), Redis, PostgreSQL
	 * and the workers, any of which could log one. */
	secrets_open(s);
	if (ctl_listen(s) < 0 || http_open(s) < 0) {
		ctl_close(s);
		free_agents(s);
		secrets_close(s);
		return 1;
	}
	log_info("agentd %s started: %zu agents, state in %s, control socket %s",
	    AGENTD_VERSION, s->nagents, s->cfg->g.state_dir, s->cfg->g.control_socket);
	if (strcmp(s->cfg->g.event_store, "redis_stream") == 0 ||
	    strcmp(s->cfg->g.memory_store, "redis") == 0 ||
	    strcmp(s->cfg->g.state_store, "redis") == 0)
		s->relay = relay_new(s->store, &s->cfg->g);
	if (store_mem_start(s->store, &s->cfg->g, s->relay, err, sizeof(err)) < 0) {
		log_error("not starting: memory_store %s: %s", s->cfg->g.memory_store, err);
		relay_free(s->relay);
		s->relay = NULL;
		ctl_close(s);
		free_agents(s);
		return 1;
	}
	for (size_t i = 0; i < s->nagents; i++)
		if (s->agents[i]->conf_error == NULL)	/* kept, but it cannot start */
			agent_start(s->agents[i]);
	store_flush(s->store);

	while (!all_stopped(s)) {
		if (loop_once() < 0) {
			log_error("epoll: %s", strerror(errno));
			s->exit_code = 1;
			break;
		}
		store_flush(s->store);
		report_drops(s);
		http_pump(s);
		relay_pump(s->relay);
		store_mem_pump(s->store);
		arm_log_timer(s);
	}
	log_limited_flush(INT64_MAX);
	http_close(s);
	ctl_close(s);
	free_agents(s);
	store_flush(s->store);
	if (s->relay && strcmp(s->cfg->g.event_store, "redis_stream") == 0 &&
	    store_last_id(s->store) > store_shipped(s->store))
		log_info("%lld events not yet in Redis stay in the outbox for the next start",
		    (long long)(store_last_id(s->store) - store_shipped(s->store)));
	relay_free(s->relay);
	s->relay = NULL;
	store_mem_stop(s->store);	/* after the relay: it fails the memory lane's replies */
	reap(s);
	log_info("agentd stopped");
	secrets_close(s);
	return s->exit_code;
}
