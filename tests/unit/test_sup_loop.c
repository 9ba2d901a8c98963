/* Unit tests: the deadline heap and the loop (supervisor/loop.c). */
#include <check.h>
#include "tests/unit/check_main.h"
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>
#include "common/util.h"
#include "supervisor/loop.h"

#define N 2000

static int64_t fired[N];
static size_t nfired;

static void
record(struct timer *t)
{
	fired[nfired++] = t->when;
}

START_TEST(heap_order_with_stops)
{
	static struct timer ts[N];
	srand(7);
	ck_assert_int_eq(loop_init(), 0);
	int64_t base = mono_ms() - 100000;	/* all already due */
	for (int i = 0; i < N; i++) {
		timer_init(&ts[i], record, NULL);
		timer_at(&ts[i], base + rand() % 50000);
	}
	/* Stop a third, re-arm a third elsewhere. */
	size_t stopped = 0;
	for (int i = 0; i < N; i += 3) {
		timer_stop(&ts[i]);
		ck_assert(!timer_armed(&ts[i]));
		stopped++;
	}
	for (int i = 1; i < N; i += 3)
		timer_at(&ts[i], base + rand() % 50000);
	ck_assert_uint_eq(timers_armed(), N - stopped);
	nfired = 0;
	/* A wakeup source so loop_once returns at once. */
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	struct watch w;
	ck_assert_int_eq(loop_add(&w, p[0], EPOLLIN, (watch_fn)(void (*)(void))abort, NULL), 0);
	loop_del(&w);
	timer_in(&ts[0], 0);	/* due now: the timerfd wakes the loop */
	ck_assert_int_eq(loop_once(), 0);
	ck_assert_uint_eq(nfired, N - stopped + 1);
	for (size_t i = 1; i < nfired; i++)
		ck_assert_int_le(fired[i - 1], fired[i]);
	ck_assert_uint_eq(timers_armed(), 0);
	close(p[0]);
	close(p[1]);
	loop_fini();
}
END_TEST

static int order[4], norder;
static struct timer chain[3];

static void
chained(struct timer *t)
{
	int id = (int)(intptr_t)t->ctx;
	order[norder++] = id;
	if (id == 0)	/* a callback arming another timer due now */
		timer_in(&chain[2], 0);
}

START_TEST(callbacks_may_rearm)
{
	ck_assert_int_eq(loop_init(), 0);
	for (int i = 0; i < 3; i++)
		timer_init(&chain[i], chained, (void *)(intptr_t)i);
	int64_t t0 = mono_ms();	/* before arming: the 30 ms count from there */
	timer_in(&chain[0], 0);
	timer_in(&chain[1], 30);
	norder = 0;
	while (norder < 3)
		ck_assert_int_eq(loop_once(), 0);
	ck_assert_int_eq(order[0], 0);
	ck_assert_int_eq(order[1], 2);
	ck_assert_int_eq(order[2], 1);
	ck_assert_int_ge(mono_ms() - t0, 30);
	loop_fini();
}
END_TEST

static int deferred_ran;
static void deferred(void *p) { (void)p; deferred_ran++; }

START_TEST(defer_runs_after_pass)
{
	ck_assert_int_eq(loop_init(), 0);
	loop_defer(deferred, NULL);
	ck_assert_int_eq(deferred_ran, 0);
	struct timer t;
	timer_init(&t, record, NULL);
	timer_in(&t, 0);
	ck_assert_int_eq(loop_once(), 0);
	ck_assert_int_eq(deferred_ran, 1);
	loop_fini();
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("loop");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, heap_order_with_stops);
	tcase_add_test(tc, callbacks_may_rearm);
	tcase_add_test(tc, defer_runs_after_pass);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
