/*
 * metrics: GET /metrics, agentd and its agents in the Prometheus text
 * exposition format (0.0.4), and GET /readyz for probes (metrics.c).
 *
 * Every number is read where it is kept, at the scrape: the agents' states
 * and persisted counters (struct agent_state: restarts, the last and next
 * run), the store's and the outboxes' (store_stats), the loop's lag
 * (loop.c).  What nothing else keeps is counted here, in memory, and
 * starts again with agentd, as Prometheus expects of a counter: each
 * agent's runs by how they ended, their durations, retries, model tokens
 * and tool calls (struct agent_metrics, in struct agent; agent.c records
 * into it as runs end and the worker's events go by -- a first-letter test
 * and a string compare for most events, two integer reads for a
 * model_request).
 *
 * Names and labels after Prometheus's conventions and node_exporter's
 * systemd collector (agentd_agent_state{agent,state} is one-hot over every
 * worker state, as node_systemd_unit_state{name,state,type} is): base
 * units (seconds), _total for counters, _timestamp_seconds for times, HELP
 * and TYPE for every family, and labels only from fixed sets -- an agent's
 * name (which the config restricts to [A-Za-z0-9_.-]; escaped all the
 * same), a state, an outcome, a kind -- never a run id or free text.
 *
 * Values are integers, or fixed-point ones (microseconds and milliseconds
 * written as seconds), so rendering formats no floats: one pass over the
 * agents per family into one growable buffer, no JSON in between.
 */
#ifndef AGENTD_METRICS_H
#define AGENTD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "common/buf.h"

/* A histogram's buckets: upper bounds in microseconds, and as `le` says
 * them; +Inf follows the last. */
#define HIST_BUCKETS_MAX 12
struct hist_def {
	size_t n;
	uint64_t le_us[HIST_BUCKETS_MAX];
	const char *le[HIST_BUCKETS_MAX];
};
/* n[i]: observations in bucket i alone (above le[i-1], at most le[i]);
 * n[def->n]: above the last bound.  Rendered cumulative. */
struct hist {
	uint64_t n[HIST_BUCKETS_MAX + 1];
	uint64_t count, sum_us;
};
extern const struct hist_def hist_run_duration, hist_loop_lag;
void hist_observe(struct hist *h, const struct hist_def *d, uint64_t us);

/* How a run ended (a skipped one never started). */
enum run_end { RUN_END_COMPLETED, RUN_END_FAILED, RUN_END_TIMEOUT, RUN_END_CANCELLED,
	RUN_END_SKIPPED, RUN_END__COUNT };

struct agent_metrics {
	uint64_t runs[RUN_END__COUNT];
	uint64_t retries;            /* attempts that failed and were tried again */
	uint64_t tokens[2];          /* input, output: the model_request events' */
	uint64_t tool_calls[2];      /* ok, error: tool_call_result, tool_call_error */
	struct hist duration;        /* a run's start to its end, retries included */
};

/* A run ended; duration_us < 0: it never started (skipped). */
void metrics_run_end(struct agent_metrics *m, enum run_end how, int64_t duration_us);
/* A worker's event (its type allowed already): counted if it is one of
 * those counted; a count out of bounds (negative, or past
 * TOKENS_PER_REQUEST_MAX) is not. */
void metrics_worker_event(struct agent_metrics *m, const char *type, const json_t *payload);

/* The exposition format, for the renderer and its tests.  A label value is
 * escaped (\ " and newline), HELP text too (\ and newline).  A value is v
 * with `scale` decimal places (3: milliseconds as seconds). */
struct prom_label { const char *name, *value; };
void prom_family(struct buf *b, const char *name, const char *type, const char *help);
void prom_sample(struct buf *b, const char *name, const struct prom_label *l, size_t nl,
    uint64_t v, int scale);
/* name_bucket{..., le} cumulative through le="+Inf", then name_sum and
 * name_count. */
void prom_hist(struct buf *b, const char *name, const struct prom_label *l, size_t nl,
    const struct hist *h, const struct hist_def *d);

struct sup;
/* Every family, agentd's and each agent's, appended to b. */
void metrics_render(struct sup *s, struct buf *b);
/* {"ready", "stopping", "store", "not_ready": [{"agent", "state",
 * "for_s"}]}: ready is false while agentd stops, its store is degraded,
 * or an agent is not up (see metrics.c). */
json_t *metrics_readiness(struct sup *s);

#endif
