/*
 * loop: epoll plus a binary min-heap of deadlines behind one timerfd.
 *
 * The heap stores pointers to timers embedded in their owners; each timer
 * knows its slot, so stopping one is O(log n) with no search.  After every
 * pass the timerfd is set to the heap's top (absolute CLOCK_MONOTONIC), and
 * only when that changed, so a pass costs no timer syscall in the common
 * case.  Timers fire in deadline order; a callback may arm or stop any
 * timer, including itself.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "supervisor/loop.h"
#include "supervisor/metrics.h"

static struct {
	int epfd;
	int tfd;
	int64_t armed_at;     /* what the timerfd is set to; -1 disarmed */
	struct timer **heap;
	size_t n, cap;
	uint64_t wakeups;
	struct watch tw;
	struct hist lag;
} L = { -1, -1, -1, NULL, 0, 0, 0, { 0 }, { { 0 }, 0, 0 } };

static bool
before(const struct timer *a, const struct timer *b)
{
	return a->when < b->when;
}

static void
heap_place(size_t i, struct timer *t)
{
	L.heap[i] = t;
	t->idx = i + 1;
}

static void
sift_up(size_t i)
{
	struct timer *t = L.heap[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!before(t, L.heap[p]))
			break;
		heap_place(i, L.heap[p]);
		i = p;
	}
	heap_place(i, t);
}

static void
sift_down(size_t i)
{
	struct timer *t = L.heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= L.n)
			break;
		if (c + 1 < L.n && before(L.heap[c + 1], L.heap[c]))
			c++;
		if (!before(L.heap[c], t))
			break;
		heap_place(i, L.heap[c]);
		i = c;
	}
	heap_place(i, t);
}

void
timer_init(struct timer *t, timer_fn fn, void *ctx)
{
	memset(t, 0, sizeof(*t));
	t->fn = fn;
	t->ctx = ctx;
}

void
timer_stop(struct timer *t)
{
	if (t->idx == 0)
		return;
	size_t i = t->idx - 1;
	t->idx = 0;
	L.n--;
	if (i == L.n)
		return;
	heap_place(i, L.heap[L.n]);
	if (i > 0 && before(L.heap[i], L.heap[(i - 1) / 2]))
		sift_up(i);
	else
		sift_down(i);
}

void
timer_at(struct timer *t, int64_t when)
{
	timer_stop(t);
	if (L.n == L.cap) {
		L.cap = L.cap ? L.cap * 2 : 64;
		L.heap = xrealloc(L.heap, L.cap * sizeof(*L.heap));
	}
	t->when = when;
	heap_place(L.n, t);
	L.n++;
	sift_up(L.n - 1);
}

void
timer_in(struct timer *t, int64_t delay_ms)
{
	timer_at(t, mono_ms() + (delay_ms > 0 ? delay_ms : 0));
}

size_t
timers_armed(void)
{
	return L.n;
}

static void
timers_fire(void)
{
	int64_t now_us = mono_us(), now = now_us / 1000;
	while (L.n > 0 && L.heap[0]->when <= now) {
		struct timer *t = L.heap[0];
		/* The clock is read once a pass, as before: exact for the
		 * pass's first timer, too low for those after it by what the
		 * callbacks before them took. */
		hist_observe(&L.lag, &hist_loop_lag, (uint64_t)(now_us - t->when * 1000));
		timer_stop(t);
		t->fn(t);
	}
}

static void
timerfd_rearm(void)
{
	int64_t want = L.n > 0 ? L.heap[0]->when : -1;
	struct itimerspec its;

	if (want == L.armed_at)
		return;
	memset(&its, 0, sizeof(its));
	if (want >= 0) {
		if (want == 0)
			want = 1;	/* 0 would disarm */
		its.it_value.tv_sec = want / 1000;
		its.it_value.tv_nsec = (want % 1000) * 1000000;
	}
	if (timerfd_settime(L.tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		log_error("timerfd_settime: %s", strerror(errno));
	L.armed_at = want;
}

static void
on_timerfd(struct watch *w, uint32_t events)
{
	uint64_t expirations;
	(void)events;
	/* Only drains; due timers fire at the end of every pass. */
	if (read(w->fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		log_error("timerfd read: %s", strerror(errno));
	L.armed_at = -1;
}

/*
 * A callback may tear down an object whose watch is still pending in this
 * batch of events.  It must not free it: loop_defer() frees after the
 * batch, and a deleted watch (added == false) is skipped until then.
 */
struct deferred { void (*fn)(void *); void *arg; };
static struct deferred *defers;
static size_t ndefers, capdefers;

void
loop_defer(void (*fn)(void *), void *arg)
{
	if (ndefers == capdefers) {
		capdefers = capdefers ? capdefers * 2 : 16;
		defers = xrealloc(defers, capdefers * sizeof(*defers));
	}
	defers[ndefers++] = (struct deferred){ fn, arg };
}

static void
run_deferred(void)
{
	for (size_t i = 0; i < ndefers; i++)
		defers[i].fn(defers[i].arg);
	ndefers = 0;
}

int
loop_init(void)
{
	L.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (L.epfd < 0)
		return -1;
	L.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (L.tfd < 0)
		return -1;
	L.armed_at = -1;
	return loop_add(&L.tw, L.tfd, EPOLLIN, on_timerfd, NULL);
}

void
loop_fini(void)
{
	if (L.tfd >= 0)
		close(L.tfd);
	if (L.epfd >= 0)
		close(L.epfd);
	L.tfd = L.epfd = -1;
	run_deferred();
	free(defers);
	defers = NULL;
	capdefers = 0;
	free(L.heap);
	L.heap = NULL;
	L.n = L.cap = 0;
}

int
loop_add(struct watch *w, int fd, uint32_t events, watch_fn fn, void *ctx)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };
	w->fd = fd;
	w->events = events;
	w->fn = fn;
	w->ctx = ctx;
	if (epoll_ctl(L.epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -1;
	w->added = true;
	return 0;
}

int
loop_mod(struct watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };
	if (!w->added || w->events == events)
		return 0;
	w->events = events;
	return epoll_ctl(L.epfd, EPOLL_CTL_MOD, w->fd, &ev);
}

void
loop_del(struct watch *w)
{
	if (!w->added)
		return;
	epoll_ctl(L.epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->added = false;
}

int
loop_once(void)
{
	struct epoll_event evs[64];
	int n;

	timerfd_rearm();
	n = epoll_wait(L.epfd, evs, (int)ARRAY_LEN(evs), -1);
	if (n < 0)
		return errno == EINTR ? 0 : -1;
	L.wakeups++;
	for (int i = 0; i < n; i++) {
		struct watch *w = evs[i].data.ptr;
		if (!w->added)
			continue;
		w->fn(w, evs[i].events);
	}
	timers_fire();
	run_deferred();
	return 0;
}

uint64_t
loop_wakeups(void)
{
	return L.wakeups;
}

const struct hist *
loop_lag(void)
{
	return &L.lag;
}
