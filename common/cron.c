/*
 * cron: parsing into bitsets, and finding the next firing minute by
 * skipping whole months, days and hours that cannot match, so even a
 * once-a-year schedule takes a few dozen steps.  Local time through
 * mktime, which also normalises times that DST skips.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "common/cron.h"

struct field { const char *name; int lo, hi; const char *const *names; };

static const char *const months[] = { "jan", "feb", "mar", "apr", "may", "jun", "jul",
	"aug", "sep", "oct", "nov", "dec", NULL };
static const char *const days[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL };

static const struct field fields[5] = {
	{ "minute", 0, 59, NULL }, { "hour", 0, 23, NULL }, { "day-of-month", 1, 31, NULL },
	{ "month", 1, 12, months }, { "day-of-week", 0, 7, days },
};

static int
value(const struct field *f, const char *s, size_t n, int *out)
{
	if (f->names && n == 3)
		for (int i = 0; f->names[i]; i++)
			if (strncasecmp(s, f->names[i], 3) == 0) {
				*out = i + (f->lo == 1 ? 1 : 0);
				return 0;
			}
	if (n == 0 || n > 4)
		return -1;
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* One comma-separated term: *, N, A-B, with an optional /STEP. */
static int
term(const struct field *f, const char *s, size_t n, uint64_t *bits, bool *star,
    char *err, size_t errlen)
{
	const char *slash = memchr(s, '/', n);
	size_t rn = slash ? (size_t)(slash - s) : n;
	int lo, hi, step = 1;

	if (slash) {
		if (value(&(struct field){ f->name, 1, 0, NULL }, slash + 1,
		    n - rn - 1, &step) < 0 || step == 0) {
			snprintf(err, errlen, "%s field: bad step in \"%.*s\"", f->name, (int)n, s);
			return -1;
		}
	}
	if (rn == 1 && s[0] == '*') {
		lo = f->lo;
		hi = f->hi == 7 ? 6 : f->hi;
		if (!slash)
			*star = true;
	} else {
		const char *dash = memchr(s, '-', rn);
		if (value(f, s, dash ? (size_t)(dash - s) : rn, &lo) < 0 ||
		    (dash && value(f, dash + 1, rn - (size_t)(dash - s) - 1, &hi) < 0)) {
			snprintf(err, errlen, "%s field: \"%.*s\" is not a number or name",
			    f->name, (int)n, s);
			return -1;
		}
		if (!dash)
			hi = slash ? (f->hi == 7 ? 6 : f->hi) : lo;
	}
	if (lo < f->lo || hi > f->hi || lo > hi) {
		snprintf(err, errlen, "%s field: %.*s is out of range %d-%d", f->name,
		    (int)n, s, f->lo, f->hi == 7 ? 7 : f->hi);
		return -1;
	}
	for (int v = lo; v <= hi; v += step)
		*bits |= 1ULL << (f->hi == 7 && v == 7 ? 0 : v);
	return 0;
}

static int
parse_field(const struct field *f, const char *s, uint64_t *bits, bool *star,
    char *err, size_t errlen)
{
	*bits = 0;
	*star = false;
	while (*s) {
		size_t n = strcspn(s, ",");
		if (term(f, s, n, bits, star, err, errlen) < 0)
			return -1;
		s += n;
		if (*s == ',' && *++s == '\0') {
			snprintf(err, errlen, "%s field: trailing comma", f->name);
			return -1;
		}
	}
	return 0;
}

bool
cron_looks_like(const char *s)
{
	int fieldsn = 0;
	bool in = false;
	if (s[0] == '@')
		return true;
	for (; *s; s++) {
		if (isspace((unsigned char)*s))
			in = false;
		else if (!in) {
			in = true;
			fieldsn++;
		}
	}
	return fieldsn == 5;
}

int
cron_parse(const char *expr, struct cron *c, char *err, size_t errlen)
{
	static const struct { const char *name, *expr; } macros[] = {
		{ "@hourly", "0 * * * *" }, { "@daily", "0 0 * * *" },
		{ "@midnight", "0 0 * * *" }, { "@weekly", "0 0 * * 0" },
		{ "@monthly", "0 0 1 * *" }, { "@yearly", "0 0 1 1 *" },
		{ "@annually", "0 0 1 1 *" },
	};
	char copy[256], *tok[6], *save = NULL;
	int n = 0;
	uint64_t bits[5];
	bool star[5];

	if (expr[0] == '@') {
		for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
			if (!strcmp(expr, macros[i].name))
				return cron_parse(macros[i].expr, c, err, errlen);
		snprintf(err, errlen, "unknown macro \"%s\"", expr);
		return -1;
	}
	if (strlen(expr) >= sizeof(copy)) {
		snprintf(err, errlen, "expression too long");
		return -1;
	}
	strcpy(copy, expr);
	for (char *t = strtok_r(copy, " \t", &save); t && n < 6; t = strtok_r(NULL, " \t", &save))
		tok[n++] = t;
	if (n != 5) {
		snprintf(err, errlen, "expected 5 fields (minute hour day-of-month month "
		    "day-of-week), got %d", n);
		return -1;
	}
	for (int i = 0; i < 5; i++)
		if (parse_field(&fields[i], tok[i], &bits[i], &star[i], err, errlen) < 0)
			return -1;
	memset(c, 0, sizeof(*c));
	c->minute = bits[0];
	c->hour = (uint32_t)bits[1];
	c->dom = (uint32_t)bits[2];
	c->month = (uint16_t)bits[3];
	c->dow = (uint8_t)bits[4];
	c->dom_star = star[2];
	c->dow_star = star[4];
	return 0;
}

static bool
day_matches(const struct cron *c, const struct tm *t)
{
	bool dom = c->dom & (1U << t->tm_mday);
	bool dow = c->dow & (1U << t->tm_wday);
	if (c->dom_star || c->dow_star)
		return (c->dom_star || dom) && (c->dow_star || dow);
	return dom || dow;	/* both restricted: either, as Vixie cron */
}

int64_t
cron_next(const struct cron *c, int64_t after)
{
	time_t t = (time_t)(after / 1000);
	struct tm tm;
	time_t limit = t + 5 * 366 * 86400;

	localtime_r(&t, &tm);
	tm.tm_sec = 0;
	tm.tm_min++;
	tm.tm_isdst = -1;
	for (int guard = 0; guard < 100000; guard++) {
		time_t cur = mktime(&tm);
		if (cur > limit || cur == (time_t)-1)
			return -1;
		localtime_r(&cur, &tm);
		if (!(c->month & (1U << (tm.tm_mon + 1)))) {
			tm.tm_mon++;
			tm.tm_mday = 1;
			tm.tm_hour = tm.tm_min = 0;
		} else if (!day_matches(c, &tm)) {
			tm.tm_mday++;
			tm.tm_hour = tm.tm_min = 0;
		} else if (!(c->hour & (1U << tm.tm_hour))) {
			tm.tm_hour++;
			tm.tm_min = 0;
		} else if (!(c->minute & (1ULL << tm.tm_min))) {
			tm.tm_min++;
		} else
			return (int64_t)cur * 1000;
		tm.tm_isdst = -1;
	}
	return -1;
}
