/*
 * cron: 5-field crontab expressions ("0-59/5 * * * *", "0 9 * * 1-5",
 * "30 2 1,15 * *", names jan-dec and sun-sat, @hourly @daily @weekly
 * @monthly @yearly @annually).  Day-of-month and day-of-week combine as
 * Vixie cron does: when both are restricted, a day matching either fires.
 * Times are evaluated in local time (TZ), as crontab does.  A wall time
 * that does not exist on a day (inside a DST gap) does not fire that day,
 * as with systemd timers; an hour repeated when clocks go back fires once.
 */
#ifndef AGENTD_CRON_H
#define AGENTD_CRON_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

struct cron {
	uint64_t minute;   /* bits 0..59 */
	uint32_t hour;     /* bits 0..23 */
	uint32_t dom;      /* bits 1..31 */
	uint16_t month;    /* bits 1..12 */
	uint8_t dow;       /* bits 0..6, Sunday = 0 (7 accepted as Sunday) */
	bool dom_star, dow_star;
};

/* 0 on success; -1 with a message in err naming the field at fault
 * ("minute field: 61 is out of range 0-59"). */
int cron_parse(const char *expr, struct cron *c, char *err, size_t errlen);

/* True when s looks like a cron expression rather than a duration: it
 * starts with '@' or has 5 whitespace-separated fields. */
bool cron_looks_like(const char *s);

/* The first matching minute strictly after `after` (wall ms), as wall ms;
 * -1 if none within 5 years (e.g. "0 0 30 2 *"). */
int64_t cron_next(const struct cron *c, int64_t after);

#endif
