/*
 * Unit tests: the store (supervisor/store.c) on its SQLite and in-memory
 * backends: state round trips and persistence, event order, ids that never
 * repeat after retention, retention fair between agents, memory isolation
 * between agents, the outbox bound and its drop reports (summed until
 * taken), clean failures, pages of events cut by size that join up without
 * a gap or a repeat, a damaged db refused at open and left untouched.
 */
#include <check.h>
#include "tests/unit/check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include "common/jsonmp.h"
#include "common/util.h"
#include "conf/config.h"
#include "supervisor/loop.h"
#include "supervisor/store.h"

#include "tests/unit/store_fixture.h"

static void
setup(void)
{
	fixture_setup("store");
}

START_TEST(state_round_trip_and_persistence)
{
	struct store *s = open_store();
	struct agent_state st = { .run_count = 5, .error_count = 2, .skipped_count = 1,
		.restart_count = 3, .last_run = 1700000000000, .last_success = 1700000000001,
		.next_run = 1700000060000, .seq = 42, .paused = true };
	struct agent_state got;
	snprintf(st.session_id, sizeof(st.session_id), "background_a_1");
	st.extra = json_pack("{s:s}", "hash", "abc");
	ck_assert_int_eq(store_state_load(s, "a", &got), 0);	/* new */
	ck_assert_int_eq(got.run_count, 0);
	ck_assert_str_eq(got.session_id, "");
	ck_assert_int_eq(store_state_save(s, "a", &st), 0);
	ck_assert_int_eq(store_flush(s), 0);
	store_close(s);

	s = open_store();
	ck_assert_int_eq(store_state_load(s, "a", &got), 1);
	ck_assert_int_eq(got.run_count, 5);
	ck_assert_int_eq(got.error_count, 2);
	ck_assert_int_eq(got.skipped_count, 1);
	ck_assert_int_eq(got.restart_count, 3);
	ck_assert_int_eq(got.last_run, 1700000000000);
	ck_assert_int_eq(got.next_run, 1700000060000);
	ck_assert_int_eq(got.seq, 42);
	ck_assert(got.paused);
	ck_assert_str_eq(got.session_id, "background_a_1");
	ck_assert_str_eq(json_string_value(json_object_get(got.extra, "hash")), "abc");
	agent_state_free(&got);
	ck_assert_int_eq(store_state_delete(s, "a"), 0);
	ck_assert_int_eq(store_state_load(s, "a", &got), 0);
	agent_state_free(&st);
	store_close(s);
}
END_TEST

static void
append(struct store *s, const char *agent, int64_t seq, const char *type)
{
	struct event ev = { .type = type, .agent_name = agent, .seq = seq,
		.timestamp = wall_ms() };
	uuid4(ev.event_id);
	ev.payload = json_pack("{s:I}", "n", (json_int_t)seq);
	ck_assert_int_eq(store_event_append(s, &ev), 0);
	json_decref(ev.payload);
}

static void
events_behave(void)
{
	struct store *s = open_store();
	json_t *out;
	for (int i = 1; i <= 30; i++)
		append(s, i % 2 ? "odd" : "even", i, "tick");
	store_flush(s);
	ck_assert_int_eq(store_events_query(s, NULL, 0, 100, &out), 0);
	ck_assert_uint_eq(json_array_size(out), 30);
	for (size_t i = 0; i < 30; i++)
		ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(out, i), "id")),
		    (json_int_t)i + 1);
	json_t *e0 = json_array_get(out, 0);
	ck_assert_str_eq(json_string_value(json_object_get(e0, "type")), "tick");
	ck_assert_int_eq(strlen(json_string_value(json_object_get(e0, "event_id"))), 36);
	ck_assert_ptr_nonnull(strchr(json_string_value(json_object_get(e0, "timestamp")), 'T'));
	json_decref(out);
	ck_assert_int_eq(store_events_query(s, "even", 0, 100, &out), 0);
	ck_assert_uint_eq(json_array_size(out), 15);
	json_decref(out);
	ck_assert_int_eq(store_events_query(s, NULL, 25, 100, &out), 0);	/* after id 25 */
	ck_assert_uint_eq(json_array_size(out), 5);
	json_decref(out);
	ck_assert_int_eq(store_events_query(s, "odd", -1, 3, &out), 0);	/* newest 3 */
	ck_assert_uint_eq(json_array_size(out), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(out, 2), "seq")), 29);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(out, 0), "seq")), 25);
	json_decref(out);
	store_close(s);
}

START_TEST(events_sqlite)
{
	events_behave();
}
END_TEST

/* 40 events of ~10 KiB, two agents, read in pages of at most 64 KiB: each
 * page within its bound (one event over it alone), and the pages joined by
 * their cursors are exactly the unpaged answer. */
static void
pages_behave(void)
{
	struct store *s = open_store();
	char *big = xmalloc(10001);
	memset(big, 'x', 10000);
	big[10000] = '\0';
	for (int i = 1; i <= 40; i++) {
		struct event ev = { .type = "tick", .agent_name = i % 4 ? "a" : "b", .seq = i,
			.timestamp = wall_ms() };
		uuid4(ev.event_id);
		ev.payload = json_pack("{s:s, s:i}", "pad", i == 7 ? "" : big, "n", i);
		ck_assert_int_eq(store_event_append(s, &ev), 0);
		json_decref(ev.payload);
	}
	free(big);
	store_flush(s);
	static const struct { const char *agent; int limit; } asks[] = {
		{ NULL, 40 }, { NULL, 25 }, { "a", 1000 }, { "b", 3 }, { NULL, 1 },
	};
	for (size_t k = 0; k < sizeof(asks) / sizeof(asks[0]); k++) {
		json_t *all, *joined = json_array();
		ck_assert_int_eq(store_events_query(s, asks[k].agent, -1, asks[k].limit, &all), 0);
		int64_t after = -1;
		int left = asks[k].limit, pages = 0;
		for (;;) {
			struct events_page pg = { .max_bytes = 64 << 10 };
			struct event_filter f = { .agent = asks[k].agent };
			ck_assert_int_eq(store_events_page(s, &f, after, left, &pg), 0);
			ck_assert_uint_ge(json_array_size(pg.out), 1);
			ck_assert_uint_le(pg.bytes, 64 << 10);
			ck_assert_uint_ge(pg.bytes, json_compact_size(pg.out));	/* counted high, never low */
			json_array_extend(joined, pg.out);
			left -= (int)json_array_size(pg.out);
			pages++;
			bool cut = pg.cut;
			after = json_integer_value(json_object_get(json_array_get(pg.out,
			    json_array_size(pg.out) - 1), "id"));
			json_decref(pg.out);
			if (!cut)
				break;
			ck_assert_int_gt(left, 0);
		}
		ck_assert_msg(json_equal(all, joined), "pages differ from the answer (ask %zu)", k);
		ck_assert_int_eq(pages, ((int)json_array_size(all) + 5) / 6);	/* 6 per page */
		json_decref(all);
		json_decref(joined);
	}
	/* One event larger than the page is a page of its own. */
	struct events_page pg = { .max_bytes = 100 };
	ck_assert_int_eq(store_events_page(s, NULL, 0, 5, &pg), 0);
	ck_assert_uint_eq(json_array_size(pg.out), 1);
	ck_assert(pg.cut);
	json_decref(pg.out);
	store_close(s);
}

/* Filters by session and type, alone and together with the agent, newest-N
 * and after an id, and the last id a listing may reach (upto): each answer
 * is exactly the events that match, in id order. */
static void
filters_behave(void)
{
	struct store *s = open_store();
	static const char *const types[] = { "tick", "tock", "tick" };
	for (int i = 1; i <= 30; i++) {
		struct event ev = { .type = types[i % 3], .agent_name = i % 2 ? "odd" : "even",
			.seq = i, .timestamp = wall_ms() };
		uuid4(ev.event_id);
		ev.payload = json_pack("{s:i, s:s}", "n", i, "session_id", i <= 20 ? "s1" : "s2");
		ck_assert_int_eq(store_event_append(s, &ev), 0);
		json_decref(ev.payload);
	}
	store_flush(s);
	static const struct {
		struct event_filter f; int64_t after, upto; int limit;
		int n, first, last;    /* how many match, the first and last n */
	} asks[] = {
		{ { .session_id = "s2" }, 0, 0, 100, 10, 21, 30 },
		{ { .session_id = "s1", .agent = "even" }, 0, 0, 100, 10, 2, 20 },
		{ { .type = "tock" }, 0, 0, 100, 10, 1, 28 },
		{ { .type = "tock", .session_id = "s2", .agent = "odd" }, 0, 0, 100, 1, 25, 25 },
		{ { .type = "tick" }, -1, 0, 3, 3, 27, 30 },             /* newest 3 */
		{ { .session_id = "s1" }, 5, 12, 100, 7, 6, 12 },        /* after 5, up to 12 */
		{ { .session_id = "s1" }, -1, 12, 2, 2, 11, 12 },        /* newest 2 up to 12 */
		{ { .session_id = "nope" }, 0, 0, 100, 0, 0, 0 },
	};
	for (size_t k = 0; k < sizeof(asks) / sizeof(asks[0]); k++) {
		struct events_page pg = { .max_bytes = SIZE_MAX, .upto = asks[k].upto };
		ck_assert_int_eq(store_events_page(s, &asks[k].f, asks[k].after, asks[k].limit,
		    &pg), 0);
		size_t i;
		json_t *e;
		json_array_foreach(pg.out, i, e) {
			struct event ev = { .type = json_string_value(json_object_get(e, "type")),
				.agent_name = json_string_value(json_object_get(e, "agent_name")),
				.payload = json_object_get(e, "payload") };
			ck_assert_msg(event_filter_match(&asks[k].f, &ev), "ask %zu: event %zu", k, i);
		}
		int n = (int)json_array_size(pg.out);
		int first = n ? (int)json_integer_value(json_object_get(json_object_get(
		    json_array_get(pg.out, 0), "payload"), "n")) : 0;
		int last = n ? (int)json_integer_value(json_object_get(json_object_get(
		    json_array_get(pg.out, n - 1), "payload"), "n")) : 0;
		ck_assert_msg(n == asks[k].n && first == asks[k].first && last == asks[k].last,
		    "ask %zu: %d events, %d..%d", k, n, first, last);
		json_decref(pg.out);
	}
	store_close(s);
}

START_TEST(filters_sqlite)
{
	filters_behave();
}
END_TEST

START_TEST(filters_memory)
{
	g.event_store = "memory";
	filters_behave();
}
END_TEST

START_TEST(pages_sqlite)
{
	pages_behave();
}
END_TEST

START_TEST(pages_memory)
{
	g.event_store = "memory";
	pages_behave();
}
END_TEST

START_TEST(events_memory)
{
	g.event_store = "memory";
	events_behave();
}
END_TEST

static void
retention_behaves(bool reopen)
{
	g.event_retention = 10;
	struct store *s = open_store();
	json_t *out;
	for (int i = 1; i <= 25; i++)
		append(s, "a", i, "tick");
	store_flush(s);
	ck_assert_int_eq(store_events_dropped(s), 15);
	if (reopen) {
		store_close(s);
		s = open_store();
	}
	append(s, "a", 26, "tick");
	store_flush(s);
	ck_assert_int_eq(store_events_query(s, NULL, 0, 100, &out), 0);
	ck_assert_uint_eq(json_array_size(out), 10);
	/* The newest id is 26: ids never repeat, not even across a reopen. */
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(out, 9), "id")), 26);
	json_decref(out);
	store_close(s);
}

START_TEST(retention_sqlite)
{
	retention_behaves(true);
}
END_TEST

START_TEST(retention_memory)
{
	g.event_store = "memory";
	retention_behaves(false);
}
END_TEST

static int
count_of(struct store *s, const char *agent, int64_t *first_seq)
{
	json_t *out;
	ck_assert_int_eq(store_events_query(s, agent, 0, 1000, &out), 0);
	int n = (int)json_array_size(out);
	if (first_seq)
		*first_seq = n ? json_integer_value(json_object_get(json_array_get(out, 0), "seq")) : 0;
	json_decref(out);
	return n;
}

/* Retention is fair: a flood takes the room the quiet agent does not use,
 * never the quiet agent's own events; a newcomer shares with the flood. */
static void
fairness_behaves(bool reopen)
{
	g.event_retention = 20;
	struct store *s = open_store();
	int64_t first;
	for (int i = 1; i <= 5; i++)
		append(s, "quiet", i, "tick");
	store_flush(s);
	for (int i = 1; i <= 200; i++) {
		append(s, "flood", i, "tick");
		if (i % 7 == 0)
			store_flush(s);
	}
	store_flush(s);
	ck_assert_int_eq(count_of(s, "quiet", &first), 5);
	ck_assert_int_eq(first, 1);
	ck_assert_int_eq(count_of(s, "flood", &first), 15);
	ck_assert_int_eq(first, 186);	/* the newest of it */
	ck_assert_int_eq(store_events_dropped(s), 185);
	if (reopen) {	/* the counts come back from the db */
		store_close(s);
		s = open_store();
	}
	for (int i = 1; i <= 30; i++)
		append(s, "busy", i, "tick");
	store_flush(s);
	ck_assert_int_eq(count_of(s, "quiet", NULL), 5);
	int f = count_of(s, "flood", NULL), b = count_of(s, "busy", NULL);
	ck_assert_msg(f + b == 15 && f >= 7 && b >= 7, "flood %d busy %d", f, b);
	store_close(s);
}

START_TEST(fair_retention_sqlite)
{
	fairness_behaves(true);
}
END_TEST

START_TEST(fair_retention_memory)
{
	g.event_store = "memory";
	fairness_behaves(false);
}
END_TEST

static void
memory_behaves(void)
{
	struct store *s = open_store();
	json_t *out, *md = json_pack("{s:i}", "run_id", 1);
	char text[32];
	for (int i = 0; i < 5; i++) {
		snprintf(text, sizeof(text), "a%d", i);
		ck_assert_int_eq(store_mem_append(s, "a", "sid", "episodic", "assistant", text, md), 0);
	}
	ck_assert_int_eq(store_mem_append(s, "b", "sid", "episodic", "user", "b's secret", NULL), 0);
	ck_assert_int_eq(store_mem_append(s, "a", "sid", "long_term", "assistant", "fact", NULL), 0);
	ck_assert_int_eq(store_mem_append(s, "a", "sid", "semantic", "x", "y", NULL), -1);
	store_flush(s);
	ck_assert_int_eq(store_mem_context(s, "a", "episodic", 3, &out), 0);
	ck_assert_uint_eq(json_array_size(out), 3);	/* newest three, oldest first */
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(out, 0), "content")), "a2");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(out, 2), "content")), "a4");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    json_array_get(out, 0), "metadata"), "run_id")), 1);
	for (size_t i = 0; i < json_array_size(out); i++)
		ck_assert_ptr_null(strstr(json_string_value(json_object_get(json_array_get(out, i),
		    "content")), "secret"));
	json_decref(out);
	ck_assert_int_eq(store_mem_context(s, "b", "episodic", 10, &out), 0);
	ck_assert_uint_eq(json_array_size(out), 1);
	json_decref(out);
	ck_assert_int_eq(store_mem_context(s, "a", "bogus", 10, &out), -1);
	ck_assert_int_eq(store_mem_clear(s, "a", "episodic"), 0);
	store_flush(s);
	ck_assert_int_eq(store_mem_context(s, "a", "episodic", 10, &out), 0);
	ck_assert_uint_eq(json_array_size(out), 0);
	json_decref(out);
	ck_assert_int_eq(store_mem_context(s, "a", "long_term", 10, &out), 0);
	ck_assert_uint_eq(json_array_size(out), 1);
	json_decref(out);
	json_decref(md);

	/* Ten items of 200 kB: an answer holds the newest five (MEMORY_REPLY_MAX),
	 * so it fits a frame whatever the limit asked; one item always. */
	char *big = xmalloc(200001);
	memset(big, 'x', 200000);
	big[200000] = '\0';
	for (int i = 0; i < 10; i++) {
		big[0] = (char)('0' + i);
		ck_assert_int_eq(store_mem_append(s, "c", "sid", "working", "user", big, NULL), 0);
	}
	store_flush(s);
	ck_assert_int_eq(store_mem_context(s, "c", "working", 1000, &out), 0);
	ck_assert_uint_eq(json_array_size(out), 5);
	ck_assert_uint_le(json_compact_size(out), MEMORY_REPLY_MAX);
	ck_assert_int_eq(json_string_value(json_object_get(json_array_get(out, 4), "content"))[0], '9');
	json_decref(out);
	memset(big, 1, 200000);	/* six bytes each as JSON: alone over the bound */
	ck_assert_int_eq(store_mem_append(s, "c", "sid", "working", "user", big, NULL), 0);
	store_flush(s);
	ck_assert_int_eq(store_mem_context(s, "c", "working", 1000, &out), 0);
	ck_assert_uint_eq(json_array_size(out), 1);
	json_decref(out);
	free(big);
	store_close(s);
}

START_TEST(memory_sqlite)
{
	memory_behaves();
}
END_TEST

START_TEST(memory_in_memory)
{
	g.memory_store = "memory";
	memory_behaves();
}
END_TEST

/* event_store redis_stream with Redis away: unshipped events outlive
 * retention up to 4x it; past that the oldest go, counted in total and per
 * agent (for the events_dropped events), and the watermark moves past them. */
START_TEST(event_outbox_bound)
{
	g.event_store = "redis_stream";
	g.event_retention = 5;
	struct store *s = open_store();
	json_t *out, *drops;
	for (int i = 1; i <= 30; i++)
		append(s, i % 3 ? "a" : "b", i, "tick");
	store_flush(s);
	ck_assert_int_eq(store_outbox_dropped(s), 10);	/* 30 - 4 x 5 */
	ck_assert_int_eq(store_shipped(s), 10);
	ck_assert_int_eq(store_events_query(s, NULL, 0, 100, &out), 0);
	ck_assert_uint_eq(json_array_size(out), 20);	/* nothing unshipped went to retention */
	json_decref(out);
	drops = store_take_drops(s);
	ck_assert_ptr_nonnull(drops);
	ck_assert_uint_eq(json_array_size(drops), 2);
	json_t *a = json_array_get(drops, 0), *b = json_array_get(drops, 1);
	if (strcmp(json_string_value(json_object_get(a, "agent")), "a") != 0) {
		json_t *t = a;
		a = b;
		b = t;
	}
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(b, "reason")), "outbox"));
	ck_assert_int_eq(json_integer_value(json_object_get(a, "dropped")) +
	    json_integer_value(json_object_get(b, "dropped")), 10);
	ck_assert_int_eq(json_integer_value(json_object_get(b, "dropped")), 3);	/* seq 3, 6, 9 */
	ck_assert_int_eq(json_integer_value(json_object_get(b, "first_seq")), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(b, "last_seq")), 9);
	json_decref(drops);
	ck_assert_ptr_null(store_take_drops(s));	/* taken once */
	/* Shipped events are retention's again: only the newest 5 stay. */
	store_set_shipped(s, 30);
	append(s, "a", 31, "tick");
	store_flush(s);
	ck_assert_int_eq(store_events_query(s, NULL, 0, 100, &out), 0);
	ck_assert_uint_eq(json_array_size(out), 5);
	json_decref(out);
	store_close(s);
}
END_TEST

/* Two drops before agentd takes them: one report per agent that adds them
 * up, from the first drop's first seq to the second's last. */
START_TEST(event_outbox_drops_add_up)
{
	g.event_store = "redis_stream";
	g.event_retention = 5;
	struct store *s = open_store();
	for (int i = 1; i <= 30; i++)
		append(s, i % 3 ? "a" : "b", i, "tick");
	store_flush(s);	/* ids 1-10 dropped: b's seq 3, 6, 9; a's 1 ... 10 */
	for (int i = 31; i <= 35; i++)
		append(s, i % 3 ? "a" : "b", i, "tick");
	store_flush(s);	/* ids 11-15: b's 12, 15; a's 11, 13, 14 */
	ck_assert_int_eq(store_outbox_dropped(s), 15);
	json_t *drops = store_take_drops(s), *a = NULL, *b = NULL, *d;
	size_t i;
	ck_assert_ptr_nonnull(drops);
	ck_assert_uint_eq(json_array_size(drops), 2);	/* one report per agent */
	json_array_foreach(drops, i, d)
		*(strcmp(json_string_value(json_object_get(d, "agent")), "a") ? &b : &a) = d;
	ck_assert_int_eq(json_integer_value(json_object_get(a, "dropped")), 10);
	ck_assert_int_eq(json_integer_value(json_object_get(a, "first_seq")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(a, "last_seq")), 14);
	ck_assert_int_eq(json_integer_value(json_object_get(b, "dropped")), 5);
	ck_assert_int_eq(json_integer_value(json_object_get(b, "first_seq")), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(b, "last_seq")), 15);
	json_decref(drops);
	store_close(s);
}
END_TEST

/* memory_store redis: the SQLite table is the outbox.  Rows wait, in id
 * order, until shipped; retention prunes only shipped rows; the watermark
 * survives a reopen. */
START_TEST(memory_outbox)
{
	g.memory_store = "redis";
	g.memory_retention = 2;
	struct store *s = open_store();
	json_t *rows, *out;
	char text[32];
	ck_assert_str_eq(store_memory_backend(s), "redis");
	for (int i = 0; i < 5; i++) {
		snprintf(text, sizeof(text), "m%d", i);
		ck_assert_int_eq(store_mem_append(s, "a", "sid", "episodic", "assistant", text, NULL), 0);
	}
	store_flush(s);
	ck_assert_int_eq(store_mem_last_id(s), 5);
	ck_assert_int_eq(store_mem_context(s, "a", "episodic", 10, &out), 0);
	ck_assert_uint_eq(json_array_size(out), 5);	/* none shipped: none pruned */
	json_decref(out);
	ck_assert_int_eq(store_mem_pending(s, 0, 3, &rows), 0);
	ck_assert_uint_eq(json_array_size(rows), 3);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 0), "content")), "m0");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 0), "agent_id")), "a");
	json_decref(rows);
	ck_assert_int_eq(store_set_mem_shipped(s, 4), 0);
	ck_assert_int_eq(store_mem_append(s, "a", "sid", "episodic", "assistant", "m5", NULL), 0);
	store_flush(s);	/* prunes shipped rows beyond the newest 2 */
	ck_assert_int_eq(store_mem_context(s, "a", "episodic", 10, &out), 0);
	ck_assert_uint_eq(json_array_size(out), 2);
	json_decref(out);
	ck_assert_int_eq(store_mem_pending(s, store_mem_shipped(s), 10, &rows), 0);
	ck_assert_uint_eq(json_array_size(rows), 2);	/* m4 and m5 still to go */
	json_decref(rows);
	store_close(s);
	s = open_store();
	ck_assert_int_eq(store_mem_shipped(s), 4);
	ck_assert_int_eq(store_mem_last_id(s), 6);
	store_close(s);
}
END_TEST

START_TEST(clean_failures)
{
	struct store *s;
	char err[256], path[128];
	g.event_store = "kafka";
	ck_assert_int_eq(store_open(&s, &g, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "kafka"));
	g.event_store = "database";
	g.memory_store = "weaviate";
	ck_assert_int_eq(store_open(&s, &g, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "weaviate"));
	g.memory_store = "database";
	snprintf(path, sizeof(path), "%s/agentd.db", dir);
	FILE *f = fopen(path, "w");
	fputs("this is not a database, but it is long enough to look like a header..."
	    "............................................................", f);
	fclose(f);
	ck_assert_int_eq(store_open(&s, &g, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "agentd.db"));
}
END_TEST

START_TEST(append_rate)
{
	g.event_retention = 1000000;
	struct store *s = open_store();
	int64_t t0 = mono_us();
	for (int i = 1; i <= 50000; i++) {
		append(s, "a", i, "tick");
		if (i % 1000 == 0)
			store_flush(s);
	}
	store_flush(s);
	int64_t us = mono_us() - t0;
	/* Figures for the notes, not assertions. */
	fprintf(stderr, "store: 50000 events appended in %lld ms (%.0f events/s, "
	    "one transaction per 1000)\n", (long long)us / 1000, 50000.0 * 1e6 / (double)us);
	store_close(s);
	t0 = mono_us();
	s = open_store();
	fprintf(stderr, "store: reopened (quick_check included) with 50000 events in %lld ms\n",
	    (long long)(mono_us() - t0) / 1000);
	store_close(s);
}
END_TEST

/* Another program holds the db's write lock: every write agentd tries
 * fails (SQLITE_BUSY after the busy timeout), as on a full disk. */
static sqlite3 *
lock_db(void)
{
	char path[128];
	sqlite3 *other;
	snprintf(path, sizeof(path), "%s/agentd.db", dir);
	ck_assert_int_eq(sqlite3_open(path, &other), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	return other;
}

static void
unlock_db(sqlite3 *other)
{
	ck_assert_int_eq(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
}

static const char *
status_str(struct store *s, const char *key)
{
	static char v[512];
	json_t *st = store_status(s);
	snprintf(v, sizeof(v), "%s", json_is_string(json_object_get(st, key)) ?
	    json_string_value(json_object_get(st, key)) : "");
	json_decref(st);
	return v;
}

static json_int_t
status_int(struct store *s, const char *key)
{
	json_t *st = store_status(s);
	json_int_t v = json_integer_value(json_object_get(st, key));
	json_decref(st);
	return v;
}

/* The retry timer brings it back once the lock is gone. */
static void
wait_healthy(struct store *s)
{
	for (int i = 0; i < 50 && strcmp(status_str(s, "state"), "degraded") == 0; i++)
		ck_assert_int_eq(loop_once(), 0);
	ck_assert_str_eq(status_str(s, "state"), "ok");
}

/* A commit that fails keeps every write: the store is degraded (status
 * says why and what waits), nothing is visible yet, and the timer's
 * replay commits it all, in order, with the latest state. */
START_TEST(failed_commit_kept_and_replayed)
{
	ck_assert_int_eq(loop_init(), 0);
	struct store *s = open_store();
	struct agent_state st = { .run_count = 1 }, got;
	json_t *out;
	sqlite3 *other = lock_db();

	for (int i = 1; i <= 3; i++) {
		append(s, "a", i, "tick");
		st.seq = i;
		ck_assert_int_eq(store_state_save(s, "a", &st), 0);
	}
	ck_assert_int_eq(store_mem_append(s, "a", "sid", "episodic", "user", "kept", NULL), 0);
	ck_assert_int_eq(store_flush(s), -1);
	ck_assert_str_eq(status_str(s, "state"), "degraded");
	ck_assert_msg(strstr(status_str(s, "error"), "locked"), "%s", status_str(s, "error"));
	ck_assert_int_eq(status_int(s, "pending_events"), 3);
	ck_assert_int_eq(status_int(s, "pending_memory"), 1);
	ck_assert_int_eq(store_last_id(s), 0);	/* nothing is shipped that is not committed */
	ck_assert_int_eq(store_state_load(s, "a", &got), 1);	/* the pending state is the state */
	ck_assert_int_eq(got.seq, 3);
	unlock_db(other);

	wait_healthy(s);
	ck_assert_int_eq(store_last_id(s), 3);
	ck_assert_int_eq(status_int(s, "pending_events"), 0);
	ck_assert_int_eq(store_events_query(s, "a", 0, 100, &out), 0);
	ck_assert_uint_eq(json_array_size(out), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *e = json_array_get(out, i);
		ck_assert_int_eq(json_integer_value(json_object_get(e, "id")), (json_int_t)i + 1);
		ck_assert_int_eq(json_integer_value(json_object_get(e, "seq")), (json_int_t)i + 1);
	}
	json_decref(out);
	ck_assert_int_eq(store_mem_context(s, "a", "episodic", 10, &out), 0);
	ck_assert_uint_eq(json_array_size(out), 1);
	json_decref(out);
	ck_assert_ptr_null(store_take_drops(s));	/* nothing was lost */
	store_close(s);
	s = open_store();	/* committed for real */
	ck_assert_int_eq(store_state_load(s, "a", &got), 1);
	ck_assert_int_eq(got.seq, 3);
	store_close(s);
	loop_fini();
}
END_TEST

/* The API's agents: written through, read back in creation order after a
 * reopen; while the db takes no writes a write is refused whole, with why,
 * and what was pending is not lost to it. */
START_TEST(api_agents_written_through)
{
	ck_assert_int_eq(loop_init(), 0);
	struct store *s = open_store();
	char err[512];
	struct agent_state st = { .run_count = 7 }, got;

	ck_assert_int_eq(store_api_put(s, "b", "{\"agent_id\":\"b\"}", "e1", err, sizeof(err)), 0);
	ck_assert_int_eq(store_api_put(s, "a", "{\"agent_id\":\"a\"}", "e2", err, sizeof(err)), 0);
	ck_assert_int_eq(store_api_put(s, "b", "{\"agent_id\":\"b\",\"interval\":5}", "e3", err,
	    sizeof(err)), 0);
	sqlite3 *other = lock_db();
	ck_assert_int_eq(store_state_save(s, "a", &st), 0);
	ck_assert_int_eq(store_api_delete(s, "a", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "takes no writes") && strstr(err, "nothing was changed"), "%s", err);
	unlock_db(other);
	wait_healthy(s);
	store_close(s);

	s = open_store();
	json_t *rows = store_api_list(s);
	ck_assert_ptr_nonnull(rows);
	ck_assert_uint_eq(json_array_size(rows), 2);
	json_t *b = json_array_get(rows, 0), *a = json_array_get(rows, 1);
	ck_assert_str_eq(json_string_value(json_object_get(b, "name")), "b");
	ck_assert_str_eq(json_string_value(json_object_get(b, "etag")), "e3");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(b, "config"), "interval")), 5);
	ck_assert_str_eq(json_string_value(json_object_get(a, "name")), "a");
	json_decref(rows);
	ck_assert_int_eq(store_state_load(s, "a", &got), 1);	/* the pending state was kept */
	ck_assert_int_eq(got.run_count, 7);
	ck_assert_int_eq(store_api_delete(s, "b", err, sizeof(err)), 0);
	rows = store_api_list(s);
	ck_assert_uint_eq(json_array_size(rows), 1);
	json_decref(rows);
	store_close(s);
	loop_fini();
}
END_TEST

/* Past the pending bound (here event_retention, 5) the newest events are
 * dropped, counted by agent and seq, and told once the db is back; the
 * ones kept keep contiguous ids. */
START_TEST(pending_bound_drops_counted)
{
	g.event_retention = 5;
	ck_assert_int_eq(loop_init(), 0);
	struct store *s = open_store();
	json_t *out, *drops;
	sqlite3 *other = lock_db();

	for (int i = 1; i <= 8; i++) {
		struct event ev = { .type = "tick", .agent_name = "a", .seq = i,
			.timestamp = wall_ms() };
		uuid4(ev.event_id);
		ev.payload = json_object();
		ck_assert_int_eq(store_event_append(s, &ev), i <= 5 ? 0 : 1);
		json_decref(ev.payload);
	}
	ck_assert_int_eq(store_mem_append(s, "a", "sid", "episodic", "user", "x", NULL), 0);
	ck_assert_int_eq(status_int(s, "dropped_events"), 3);
	ck_assert_ptr_null(store_take_drops(s));	/* not while degraded */
	unlock_db(other);

	wait_healthy(s);
	ck_assert_int_eq(store_last_id(s), 5);
	ck_assert_int_eq(store_events_query(s, NULL, 0, 100, &out), 0);
	ck_assert_uint_eq(json_array_size(out), 5);
	json_decref(out);
	drops = store_take_drops(s);
	ck_assert_ptr_nonnull(drops);
	ck_assert_uint_eq(json_array_size(drops), 1);
	json_t *d = json_array_get(drops, 0);
	ck_assert_str_eq(json_string_value(json_object_get(d, "agent")), "a");
	ck_assert_int_eq(json_integer_value(json_object_get(d, "dropped")), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(d, "first_seq")), 6);
	ck_assert_int_eq(json_integer_value(json_object_get(d, "last_seq")), 8);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(d, "reason")),
	    "took no writes"));
	json_decref(drops);
	store_close(s);
	loop_fini();
}
END_TEST

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	rewind(f);
	char *b = xmalloc(*len + 1);
	ck_assert_uint_eq(fread(b, 1, *len, f), *len);
	fclose(f);
	return b;
}

static void
corrupt_root_page(const char *table)
{
	char path[128];
	sqlite3 *db;
	sqlite3_stmt *q;
	int page = 0, root = 0;
	snprintf(path, sizeof(path), "%s/agentd.db", dir);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT (SELECT page_size FROM pragma_page_size), "
	    "rootpage FROM sqlite_master WHERE name = ?1", -1, &q, NULL), SQLITE_OK);
	sqlite3_bind_text(q, 1, table, -1, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
	page = sqlite3_column_int(q, 0);
	root = sqlite3_column_int(q, 1);
	sqlite3_finalize(q);
	sqlite3_close(db);
	FILE *f = fopen(path, "r+b");
	ck_assert_ptr_nonnull(f);
	fseek(f, (long)(root - 1) * page, SEEK_SET);
	for (int i = 0; i < page; i++)
		fputc((i * 37 + 11) % 256, f);
	fclose(f);
}

/* A damaged page is refused at open, by file name, and the file is left as
 * it is: no "fresh start" over it. */
START_TEST(damaged_db_refused)
{
	struct store *s = open_store();
	struct agent_state st = { .run_count = 7 };
	char err[1024], path[128];
	size_t n_before, n_after;
	append(s, "a", 1, "tick");
	ck_assert_int_eq(store_state_save(s, "a", &st), 0);
	store_close(s);
	corrupt_root_page("events");
	snprintf(path, sizeof(path), "%s/agentd.db", dir);
	char *before = slurp(path, &n_before);
	ck_assert_int_eq(store_open(&s, &g, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, path) && strstr(err, "is damaged"), "%s", err);
	char *after = slurp(path, &n_after);
	ck_assert(n_before == n_after && memcmp(before, after, n_before) == 0);
	free(before);
	free(after);
}
END_TEST

int
main(void)
{
	Suite *su = suite_create("store");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, state_round_trip_and_persistence);
	tcase_add_test(tc, events_sqlite);
	tcase_add_test(tc, events_memory);
	tcase_add_test(tc, pages_sqlite);
	tcase_add_test(tc, filters_sqlite);
	tcase_add_test(tc, filters_memory);
	tcase_add_test(tc, pages_memory);
	tcase_add_test(tc, retention_sqlite);
	tcase_add_test(tc, retention_memory);
	tcase_add_test(tc, fair_retention_sqlite);
	tcase_add_test(tc, fair_retention_memory);
	tcase_add_test(tc, memory_sqlite);
	tcase_add_test(tc, memory_in_memory);
	tcase_add_test(tc, memory_outbox);
	tcase_add_test(tc, event_outbox_bound);
	tcase_add_test(tc, event_outbox_drops_add_up);
	tcase_add_test(tc, clean_failures);
	tcase_add_test(tc, damaged_db_refused);
	tcase_add_test(tc, api_agents_written_through);
	tcase_add_test(tc, failed_commit_kept_and_replayed);
	tcase_add_test(tc, pending_bound_drops_counted);
	tcase_add_test(tc, append_rate);
	suite_add_tcase(su, tc);
	return run_suite(su);
}
