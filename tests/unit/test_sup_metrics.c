/* Unit tests: the Prometheus exposition (supervisor/metrics.c) -- escaping
 * of label values and HELP text, fixed-point values, histogram buckets
 * (an observation at a bound is in it, rendered cumulative through +Inf),
 * and what a worker's events add to the counters. */
#include <check.h>
#include "tests/unit/check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/limits.h"
#include "supervisor/metrics.h"

static char *
text(struct buf *b)
{
	char *s = malloc(b->len + 1);
	memcpy(s, b->data, b->len);
	s[b->len] = '\0';
	buf_reset(b);
	return s;
}

#define ck_text(b, want) do { char *got_ = text(b); ck_assert_str_eq(got_, want); \
	free(got_); } while (0)

START_TEST(label_values_escaped)
{
	struct buf b;
	buf_init(&b);
	struct prom_label l[2] = { { "agent", "a\"b\\c\nd" }, { "kind", "plain" } };
	prom_sample(&b, "x_total", l, 2, 7, 0);
	ck_text(&b, "x_total{agent=\"a\\\"b\\\\c\\nd\",kind=\"plain\"} 7\n");
	prom_sample(&b, "x", NULL, 0, 0, 0);
	ck_text(&b, "x 0\n");
	/* HELP escapes \ and newline, and leaves " as it is */
	prom_family(&b, "x", "gauge", "a \"q\" \\ and\nmore");
	ck_text(&b, "# HELP x a \"q\" \\\\ and\\nmore\n# TYPE x gauge\n");
	buf_free(&b);
}
END_TEST

START_TEST(fixed_point_values)
{
	static const struct { uint64_t v; int scale; const char *want; } c[] = {
		{ 0, 3, "0" }, { 1500, 3, "1.5" }, { 1000, 3, "1" }, { 1, 3, "0.001" },
		{ 1700000000123, 3, "1700000000.123" }, { 63, 6, "0.000063" },
		{ 10, 0, "10" }, { UINT64_MAX, 0, "18446744073709551615" },
	};
	struct buf b;
	buf_init(&b);
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char want[64];
		snprintf(want, sizeof(want), "v %s\n", c[i].want);
		prom_sample(&b, "v", NULL, 0, c[i].v, c[i].scale);
		ck_text(&b, want);
	}
	buf_free(&b);
}
END_TEST

static const struct hist_def small = { 3, { 1000, 10000, 100000 }, { "0.001", "0.01", "0.1" } };

START_TEST(histogram_cumulative)
{
	struct hist h = { 0 };
	hist_observe(&h, &small, 1000);	/* at the bound: in it */
	hist_observe(&h, &small, 1001);
	hist_observe(&h, &small, 10000);
	hist_observe(&h, &small, 5000000);	/* past the last: +Inf only */
	ck_assert_uint_eq(h.n[0], 1);
	ck_assert_uint_eq(h.n[1], 2);
	ck_assert_uint_eq(h.n[2], 0);
	ck_assert_uint_eq(h.n[3], 1);
	struct buf b;
	buf_init(&b);
	prom_hist(&b, "d_seconds", (struct prom_label[]){ { "agent", "a" } }, 1, &h, &small);
	ck_text(&b,
	    "d_seconds_bucket{agent=\"a\",le=\"0.001\"} 1\n"
	    "d_seconds_bucket{agent=\"a\",le=\"0.01\"} 3\n"
	    "d_seconds_bucket{agent=\"a\",le=\"0.1\"} 3\n"
	    "d_seconds_bucket{agent=\"a\",le=\"+Inf\"} 4\n"
	    "d_seconds_sum{agent=\"a\"} 5.012001\n"
	    "d_seconds_count{agent=\"a\"} 4\n");
	struct hist empty = { 0 };
	prom_hist(&b, "l", NULL, 0, &empty, &small);
	ck_text(&b, "l_bucket{le=\"0.001\"} 0\nl_bucket{le=\"0.01\"} 0\nl_bucket{le=\"0.1\"} 0\n"
	    "l_bucket{le=\"+Inf\"} 0\nl_sum 0\nl_count 0\n");
	buf_free(&b);
}
END_TEST

/* The real definitions: bounds rising, as many names as bounds. */
START_TEST(bucket_tables)
{
	const struct hist_def *d[] = { &hist_run_duration, &hist_loop_lag };
	for (size_t k = 0; k < 2; k++) {
		ck_assert_uint_le(d[k]->n, HIST_BUCKETS_MAX);
		for (size_t i = 0; i < d[k]->n; i++) {
			ck_assert_ptr_nonnull(d[k]->le[i]);
			ck_assert_uint_eq((uint64_t)(strtod(d[k]->le[i], NULL) * 1e6 + 0.5),
			    d[k]->le_us[i]);
			if (i)
				ck_assert_uint_gt(d[k]->le_us[i], d[k]->le_us[i - 1]);
		}
	}
}
END_TEST

START_TEST(worker_events_counted)
{
	struct agent_metrics m = { 0 };
	json_t *p = json_pack("{s:I, s:I}", "input_tokens", (json_int_t)11, "output_tokens",
	    (json_int_t)7);
	metrics_worker_event(&m, "model_request", p);
	metrics_worker_event(&m, "model_request", p);
	json_decref(p);
	/* not counted: null (no usage), negative, past the bound, a string */
	p = json_pack("{s:n, s:I}", "input_tokens", "output_tokens", (json_int_t)-5);
	metrics_worker_event(&m, "model_request", p);
	json_decref(p);
	p = json_pack("{s:I, s:s}", "input_tokens", (json_int_t)TOKENS_PER_REQUEST_MAX + 1,
	    "output_tokens", "9");
	metrics_worker_event(&m, "model_request", p);
	json_decref(p);
	ck_assert_uint_eq(m.tokens[0], 22);
	ck_assert_uint_eq(m.tokens[1], 14);
	json_t *e = json_object();
	metrics_worker_event(&m, "tool_call_result", e);
	metrics_worker_event(&m, "tool_call_error", e);
	metrics_worker_event(&m, "tool_call_error", e);
	metrics_worker_event(&m, "tool_call_started", e);
	metrics_worker_event(&m, "mcp_server_status", e);
	json_decref(e);
	ck_assert_uint_eq(m.tool_calls[0], 1);
	ck_assert_uint_eq(m.tool_calls[1], 2);

	metrics_run_end(&m, RUN_END_SKIPPED, -1);	/* no duration */
	metrics_run_end(&m, RUN_END_COMPLETED, 2000000);
	ck_assert_uint_eq(m.runs[RUN_END_SKIPPED], 1);
	ck_assert_uint_eq(m.runs[RUN_END_COMPLETED], 1);
	ck_assert_uint_eq(m.duration.count, 1);
	ck_assert_uint_eq(m.duration.sum_us, 2000000);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("exposition");
	tcase_add_test(tc, label_values_escaped);
	tcase_add_test(tc, fixed_point_values);
	tcase_add_test(tc, histogram_cumulative);
	tcase_add_test(tc, bucket_tables);
	tcase_add_test(tc, worker_events_counted);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
