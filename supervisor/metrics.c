/*
 * metrics: the Prometheus exposition and readiness (see metrics.h).
 *
 * Ready (GET /readyz) means agentd does what it is configured to do: it is
 * not stopping, its store takes writes (not degraded), and every agent is
 * up.  An agent is up when its worker has said `ready` and has not gone
 * since (idle, running, retrying), or when it is stopped on purpose
 * (restart: never or on-failure after a clean exit).  A worker on its way
 * (starting, waiting for host resources, backing off, stopping to restart)
 * is let be for ack_timeout -- the time a worker has to say ready -- unless
 * it has not been up once since agentd started; a fatal one never is.  So
 * a restart between two runs does not flap the probe, and a fleet whose
 * workers are still starting is not ready yet.
 */
#include <stdio.h>
#include <string.h>
#include "common/limits.h"
#include "common/util.h"
#include "supervisor/metrics.h"
#include "supervisor/store.h"
#include "supervisor/sup.h"

const struct hist_def hist_run_duration = { 12,
	{ 100000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
	  120000000, 300000000, 600000000, 1800000000 },
	{ "0.1", "0.5", "1", "2.5", "5", "10", "30", "60", "120", "300", "600", "1800" } };
const struct hist_def hist_loop_lag = { 12,
	{ 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
	  2500000, 5000000 },
	{ "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
	  "2.5", "5" } };

void
hist_observe(struct hist *h, const struct hist_def *d, uint64_t us)
{
	size_t i = 0;
	while (i < d->n && us > d->le_us[i])
		i++;
	h->n[i]++;
	h->count++;
	h->sum_us += us;
}

void
metrics_run_end(struct agent_metrics *m, enum run_end how, int64_t duration_us)
{
	m->runs[how]++;
	if (duration_us >= 0)
		hist_observe(&m->duration, &hist_run_duration, (uint64_t)duration_us);
}

static void
add_tokens(uint64_t *to, const json_t *v)
{
	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) <= TOKENS_PER_REQUEST_MAX)
		*to += (uint64_t)json_integer_value(v);
}

void
metrics_worker_event(struct agent_metrics *m, const char *type, const json_t *payload)
{
	/* Most events are neither: one byte tells them apart. */
	if (type[0] == 't') {
		if (strcmp(type, "tool_call_result") == 0)
			m->tool_calls[0]++;
		else if (strcmp(type, "tool_call_error") == 0)
			m->tool_calls[1]++;
	} else if (type[0] == 'm' && strcmp(type, "model_request") == 0) {
		add_tokens(&m->tokens[0], json_object_get(payload, "input_tokens"));
		add_tokens(&m->tokens[1], json_object_get(payload, "output_tokens"));
	}
}

/* ---- the exposition format ------------------------------------------------ */

static void
put(struct buf *b, const char *s, size_t n)
{
	memcpy(buf_reserve(b, n), s, n);
	buf_commit(b, n);
}

static void
puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* s with the bytes the format escapes escaped: \ and newline, and " in a
 * label value. */
static void
put_escaped(struct buf *b, const char *s, bool quote)
{
	const char *run = s;
	for (; *s; s++) {
		const char *esc = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" :
		    *s == '"' && quote ? "\\\"" : NULL;
		if (esc == NULL)
			continue;
		put(b, run, (size_t)(s - run));
		put(b, esc, 2);
		run = s + 1;
	}
	put(b, run, (size_t)(s - run));
}

/* v with `scale` decimal places, trailing zeros dropped. */
static void
put_value(struct buf *b, uint64_t v, int scale)
{
	char tmp[48], *p = tmp + sizeof(tmp);
	bool frac = false;
	for (int i = 0; i < scale; i++, v /= 10) {
		if (v % 10 || frac) {
			*--p = (char)('0' + v % 10);
			frac = true;
		}
	}
	if (frac)
		*--p = '.';
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

void
prom_family(struct buf *b, const char *name, const char *type, const char *help)
{
	puts_(b, "# HELP ");
	puts_(b, name);
	put(b, " ", 1);
	put_escaped(b, help, false);
	puts_(b, "\n# TYPE ");
	puts_(b, name);
	put(b, " ", 1);
	puts_(b, type);
	put(b, "\n", 1);
}

static void
put_labels(struct buf *b, const struct prom_label *l, size_t nl, const char *le)
{
	if (nl == 0 && le == NULL)
		return;
	put(b, "{", 1);
	for (size_t i = 0; i < nl; i++) {
		if (i)
			put(b, ",", 1);
		puts_(b, l[i].name);
		put(b, "=\"", 2);
		put_escaped(b, l[i].value, true);
		put(b, "\"", 1);
	}
	if (le) {
		puts_(b, nl ? ",le=\"" : "le=\"");
		puts_(b, le);
		put(b, "\"", 1);
	}
	put(b, "}", 1);
}

static void
sample(struct buf *b, const char *name, const char *suffix, const struct prom_label *l,
    size_t nl, const char *le, uint64_t v, int scale)
{
	puts_(b, name);
	puts_(b, suffix);
	put_labels(b, l, nl, le);
	put(b, " ", 1);
	put_value(b, v, scale);
	put(b, "\n", 1);
}

void
prom_sample(struct buf *b, const char *name, const struct prom_label *l, size_t nl,
    uint64_t v, int scale)
{
	sample(b, name, "", l, nl, NULL, v, scale);
}

void
prom_hist(struct buf *b, const char *name, const struct prom_label *l, size_t nl,
    const struct hist *h, const struct hist_def *d)
{
	uint64_t cum = 0;
	for (size_t i = 0; i < d->n; i++) {
		cum += h->n[i];
		sample(b, name, "_bucket", l, nl, d->le[i], cum, 0);
	}
	sample(b, name, "_bucket", l, nl, "+Inf", h->count, 0);
	sample(b, name, "_sum", l, nl, NULL, h->sum_us, 6);
	sample(b, name, "_count", l, nl, NULL, h->count, 0);
}

/* ---- agentd's families ------------------------------------------------------ */

static const char *const run_end_names[RUN_END__COUNT] = {
	[RUN_END_COMPLETED] = "completed", [RUN_END_FAILED] = "failed",
	[RUN_END_TIMEOUT] = "timeout", [RUN_END_CANCELLED] = "cancelled",
	[RUN_END_SKIPPED] = "skipped",
};
static const char *const kind_names[2] = { "input", "output" };
static const char *const tool_names[2] = { "ok", "error" };

/* A family with one sample per agent and value of one label (names[n]):
 * what one agent has under each. */
typedef uint64_t (*agent_val)(const struct agent *a, size_t i, int *scale);

struct agent_family {
	const char *name, *type, *help;
	const char *label;            /* the second label, or NULL */
	const char *const *values;    /* its values */
	size_t n;                     /* how many (1 without a label) */
	agent_val val;
	bool skip_zero;               /* a 0 is "none": no sample (a timestamp) */
};

static uint64_t
v_state(const struct agent *a, size_t i, int *scale)
{
	return a->state == (enum wstate)i;
}

static uint64_t
v_paused(const struct agent *a, size_t i, int *scale)
{
	return a->st.paused;
}

static uint64_t
v_runs(const struct agent *a, size_t i, int *scale)
{
	return a->m.runs[i];
}

static uint64_t
v_retries(const struct agent *a, size_t i, int *scale)
{
	return a->m.retries;
}

static uint64_t
v_restarts(const struct agent *a, size_t i, int *scale)
{
	return a->st.restart_count > 0 ? (uint64_t)a->st.restart_count : 0;
}

static uint64_t
ms_as_seconds(int64_t ms, int *scale)
{
	*scale = 3;
	return ms > 0 ? (uint64_t)ms : 0;
}

static uint64_t
v_last_run(const struct agent *a, size_t i, int *scale)
{
	return ms_as_seconds(a->st.last_run, scale);
}

static uint64_t
v_last_success(const struct agent *a, size_t i, int *scale)
{
	return ms_as_seconds(a->st.last_success, scale);
}

static uint64_t
v_next_run(const struct agent *a, size_t i, int *scale)
{
	return ms_as_seconds(a->st.next_run, scale);
}

static uint64_t
v_tokens(const struct agent *a, size_t i, int *scale)
{
	return a->m.tokens[i];
}

static uint64_t
v_tools(const struct agent *a, size_t i, int *scale)
{
	return a->m.tool_calls[i];
}

/* wstate_name's words (agent.c's table), taken at the first scrape. */
static const char *state_values[W__COUNT];

static const struct agent_family agent_families[] = {
	{ "agentd_agent_state", "gauge", "The agent's worker state: 1 for the one it is in.",
	  "state", state_values, W__COUNT, v_state, false },
	{ "agentd_agent_paused", "gauge", "1 while the agent is paused (no scheduled runs).",
	  NULL, NULL, 1, v_paused, false },
	{ "agentd_agent_runs_total", "counter", "Runs by how they ended, since agentd started.",
	  "outcome", run_end_names, RUN_END__COUNT, v_runs, false },
	{ "agentd_agent_retries_total", "counter", "Failed attempts that were tried again.",
	  NULL, NULL, 1, v_retries, false },
	{ "agentd_agent_restarts_total", "counter", "Unplanned restarts of the agent's worker "
	  "(persisted in the state db).", NULL, NULL, 1, v_restarts, false },
	{ "agentd_agent_last_run_timestamp_seconds", "gauge", "When the last run started.",
	  NULL, NULL, 1, v_last_run, true },
	{ "agentd_agent_last_success_timestamp_seconds", "gauge", "When the last run that "
	  "completed ended.", NULL, NULL, 1, v_last_success, true },
	{ "agentd_agent_next_run_timestamp_seconds", "gauge", "When the next scheduled run is "
	  "due.", NULL, NULL, 1, v_next_run, true },
	{ "agentd_agent_model_tokens_total", "counter", "Model tokens the agent's runs used, "
	  "as its providers reported them.", "kind", kind_names, 2, v_tokens, false },
	{ "agentd_agent_tool_calls_total", "counter", "Tool calls by outcome.", "outcome",
	  tool_names, 2, v_tools, false },
};

static void
render_agent_family(struct sup *s, struct buf *b, const struct agent_family *f)
{
	prom_family(b, f->name, f->type, f->help);
	for (size_t k = 0; k < s->nagents; k++) {
		const struct agent *a = s->agents[k];
		struct prom_label l[2] = { { "agent", a->name }, { f->label, NULL } };
		for (size_t i = 0; i < f->n; i++) {
			int scale = 0;
			uint64_t v = f->val(a, i, &scale);
			if (v == 0 && f->skip_zero)
				continue;
			l[1].value = f->values ? f->values[i] : NULL;
			prom_sample(b, f->name, l, f->label ? 2 : 1, v, scale);
		}
	}
}

static void
render_store(struct sup *s, struct buf *b)
{
	struct store_stats st;
	store_stats(s->store, &st);

	prom_family(b, "agentd_store_degraded", "gauge", "1 while the state db takes no "
	    "writes (they wait in memory).");
	prom_sample(b, "agentd_store_degraded", NULL, 0, st.degraded, 0);
	prom_family(b, "agentd_store_errors_total", "counter", "State db statements and "
	    "commits that failed.");
	prom_sample(b, "agentd_store_errors_total", NULL, 0, (uint64_t)st.errors, 0);
	prom_family(b, "agentd_store_pending_writes", "gauge", "Writes waiting in memory for "
	    "a degraded state db.");
	prom_sample(b, "agentd_store_pending_writes", (struct prom_label[]){ { "kind",
	    "events" } }, 1, (uint64_t)st.pending_events, 0);
	prom_sample(b, "agentd_store_pending_writes", (struct prom_label[]){ { "kind",
	    "memory" } }, 1, (uint64_t)st.pending_memory, 0);
	prom_family(b, "agentd_store_dropped_total", "counter", "Writes dropped at the bound "
	    "of what waits for a degraded state db.");
	prom_sample(b, "agentd_store_dropped_total", (struct prom_label[]){ { "kind",
	    "events" } }, 1, (uint64_t)st.dropped_events, 0);
	prom_sample(b, "agentd_store_dropped_total", (struct prom_label[]){ { "kind",
	    "memory" } }, 1, (uint64_t)st.dropped_memory, 0);

	/* The outboxes there are: events to a Redis stream, memory to a
	 * remote backend (Redis, PostgreSQL). */
	struct prom_label ev[2] = { { "outbox", "events" }, { "backend", "redis_stream" } };
	struct prom_label mem[2] = { { "outbox", "memory" }, { "backend", st.mem_backend } };
	prom_family(b, "agentd_outbox_pending", "gauge", "Committed rows not yet delivered.");
	if (st.events_outbox)
		prom_sample(b, "agentd_outbox_pending", ev, 2, (uint64_t)st.events_unshipped, 0);
	if (st.mem_backend)
		prom_sample(b, "agentd_outbox_pending", mem, 2, (uint64_t)st.memory_unshipped, 0);
	prom_family(b, "agentd_outbox_shipped_total", "counter", "Rows delivered.");
	if (st.events_outbox)
		prom_sample(b, "agentd_outbox_shipped_total", ev, 2, (uint64_t)st.events_shipped, 0);
	if (st.mem_backend)
		prom_sample(b, "agentd_outbox_shipped_total", mem, 2, (uint64_t)st.memory_shipped, 0);
}

void
metrics_render(struct sup *s, struct buf *b)
{
	if (state_values[0] == NULL)
		for (size_t i = 0; i < W__COUNT; i++)
			state_values[i] = wstate_name((enum wstate)i);

	prom_family(b, "agentd_build_info", "gauge", "agentd's version.");
	prom_sample(b, "agentd_build_info", (struct prom_label[]){ { "version",
	    AGENTD_VERSION } }, 1, 1, 0);
	prom_family(b, "agentd_loop_lag_seconds", "histogram", "How late timers fired past "
	    "their deadline.");
	prom_hist(b, "agentd_loop_lag_seconds", NULL, 0, loop_lag(), &hist_loop_lag);
	render_store(s, b);

	for (size_t i = 0; i < ARRAY_LEN(agent_families); i++)
		render_agent_family(s, b, &agent_families[i]);
	const char *hn = "agentd_agent_run_duration_seconds";
	prom_family(b, hn, "histogram", "From a run's start to its end, retries included.");
	for (size_t k = 0; k < s->nagents; k++)
		prom_hist(b, hn, (struct prom_label[]){ { "agent", s->agents[k]->name } }, 1,
		    &s->agents[k]->m.duration, &hist_run_duration);
}

/* ---- readiness ---------------------------------------------------------------- */

/* Not up: how long it has not been (ms), or -1 when it is up. */
static int64_t
down_for(const struct agent *a, int64_t now, int64_t grace)
{
	switch (a->state) {
	case W_IDLE: case W_RUNNING: case W_RETRYING: case W_STOPPED:
		return -1;
	case W_FATAL:
		return now - a->state_mono;
	default:
		if (a->was_up && now - a->state_mono <= grace)
			return -1;
		return now - a->state_mono;
	}
}

json_t *
metrics_readiness(struct sup *s)
{
	int64_t now = mono_ms();
	json_t *down = json_array();
	for (size_t i = 0; i < s->nagents; i++) {
		const struct agent *a = s->agents[i];
		int64_t ms = down_for(a, now, s->cfg->g.ack_timeout_ms);
		if (ms >= 0)
			json_array_append_new(down, json_pack("{s:s, s:s, s:I}", "agent", a->name,
			    "state", wstate_name(a->state), "for_s", (json_int_t)(ms / 1000)));
	}
	bool degraded = store_degraded(s->store);
	bool ready = !s->stopping && !degraded && json_array_size(down) == 0;
	return json_pack("{s:b, s:b, s:s, s:o}", "ready", ready, "stopping", s->stopping,
	    "store", degraded ? "degraded" : "ok", "not_ready", down);
}
