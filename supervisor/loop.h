/*
 * loop: the one epoll set, and the deadline heap that drives the one
 * timerfd.  A watch is an fd plus a callback; a timer is a deadline plus a
 * callback.  Both are embedded in the objects that own them, so the loop
 * allocates nothing per event.  The timerfd is re-armed only when the
 * earliest deadline changes; with no deadlines it is disarmed and an idle
 * agentd sleeps in epoll_wait indefinitely.
 */
#ifndef AGENTD_LOOP_H
#define AGENTD_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct watch;
typedef void (*watch_fn)(struct watch *w, uint32_t events);
struct watch {
	int fd;
	uint32_t events;
	watch_fn fn;
	void *ctx;
	bool added;
};

struct timer;
typedef void (*timer_fn)(struct timer *t);
struct timer {
	int64_t when;      /* mono ms */
	size_t idx;        /* heap slot + 1; 0 when not armed */
	timer_fn fn;
	void *ctx;
};

int loop_init(void);
void loop_fini(void);
int loop_add(struct watch *w, int fd, uint32_t events, watch_fn fn, void *ctx);
int loop_mod(struct watch *w, uint32_t events);
void loop_del(struct watch *w);
/* One pass: wait for events (or the next deadline), dispatch them, fire
 * due timers.  Returns -1 on a fatal epoll error. */
int loop_once(void);
uint64_t loop_wakeups(void);
/* The lag: how late each timer fired past its deadline (a pass's events
 * come first, then its due timers), measured as they fire. */
struct hist;
const struct hist *loop_lag(void);
/* Run fn(arg) once the current pass is over (safe teardown). */
void loop_defer(void (*fn)(void *), void *arg);

void timer_init(struct timer *t, timer_fn fn, void *ctx);
void timer_at(struct timer *t, int64_t when);
void timer_in(struct timer *t, int64_t delay_ms);
void timer_stop(struct timer *t);
static inline bool timer_armed(const struct timer *t) { return t->idx != 0; }
size_t timers_armed(void);

#endif
