/*
 * system_info: the seed's "system health" check, read straight from the
 * kernel.
 *
 * CPU usage is a rate, so it needs two samples: /proc/stat is read twice,
 * SAMPLE_MS apart, and usage is the share of non-idle ticks between them
 * (iowait counts as idle, as top(1) and the seed's psutil do; guest time
 * is already inside user time, so it is not added twice).  Memory usage is
 * what is not MemAvailable (the kernel's estimate of what can be had
 * without swapping), not what is not MemFree, which counts the page cache
 * as used.  Disk usage is df's: used / (used + available to users), so the
 * root reserve does not hide a full disk.  Every file is parsed with
 * explicit checks; a kernel that does not offer a figure is an error
 * naming the file, not a zero.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include "worker/tools.h"

#define SAMPLE_MS 200

static const char *const metric_names[] = { "cpu_usage", "memory_usage", "disk_usage" };

struct cpu_sample {
	uint64_t busy, total;
};

static double
round2(double v)
{
	return round(v * 100.0) / 100.0;
}

static int
read_cpu(struct cpu_sample *s, char *err, size_t errlen)
{
	uint64_t v[8] = { 0 };
	char line[512];
	FILE *f = fopen("/proc/stat", "re");

	if (f == NULL) {
		snprintf(err, errlen, "/proc/stat: %s", strerror(errno));
		return -1;
	}
	if (fgets(line, sizeof(line), f) == NULL ||
	    sscanf(line, "cpu %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
	    " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64,
	    &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 4) {
		fclose(f);
		snprintf(err, errlen, "/proc/stat: no aggregate cpu line");
		return -1;
	}
	fclose(f);
	/* user nice system idle iowait irq softirq steal */
	uint64_t idle = v[3] + v[4];
	s->total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
	s->busy = s->total - idle;
	return 0;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int
cpu_usage(double *pct, char *err, size_t errlen)
{
	struct cpu_sample a, b;

	if (read_cpu(&a, err, errlen) < 0)
		return -1;
	sleep_ms(SAMPLE_MS);
	if (read_cpu(&b, err, errlen) < 0)
		return -1;
	if (b.total <= a.total || b.busy < a.busy) {
		*pct = 0;	/* no tick elapsed (or counters went back) */
		return 0;
	}
	*pct = 100.0 * (double)(b.busy - a.busy) / (double)(b.total - a.total);
	if (*pct > 100)
		*pct = 100;
	return 0;
}

static int
read_loadavg(double load[3], char *err, size_t errlen)
{
	FILE *f = fopen("/proc/loadavg", "re");
	int n;

	if (f == NULL) {
		snprintf(err, errlen, "/proc/loadavg: %s", strerror(errno));
		return -1;
	}
	n = fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]);
	fclose(f);
	if (n != 3) {
		snprintf(err, errlen, "/proc/loadavg: unexpected format");
		return -1;
	}
	return 0;
}

/* MemTotal and MemAvailable in bytes; MemFree+Buffers+Cached before 3.14. */
static int
read_meminfo(uint64_t *total, uint64_t *avail, char *err, size_t errlen)
{
	uint64_t mt = 0, ma = 0, mf = 0, bu = 0, ca = 0, kb;
	bool have_t = false, have_a = false;
	char line[256], key[64];
	FILE *f = fopen("/proc/meminfo", "re");

	if (f == NULL) {
		snprintf(err, errlen, "/proc/meminfo: %s", strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63[^:]: %" SCNu64, key, &kb) != 2)
			continue;
		if (strcmp(key, "MemTotal") == 0) {
			mt = kb;
			have_t = true;
		} else if (strcmp(key, "MemAvailable") == 0) {
			ma = kb;
			have_a = true;
		} else if (strcmp(key, "MemFree") == 0)
			mf = kb;
		else if (strcmp(key, "Buffers") == 0)
			bu = kb;
		else if (strcmp(key, "Cached") == 0)
			ca = kb;
	}
	fclose(f);
	if (!have_t || mt == 0) {
		snprintf(err, errlen, "/proc/meminfo: no MemTotal");
		return -1;
	}
	if (!have_a)
		ma = mf + bu + ca;
	if (ma > mt)
		ma = mt;
	*total = mt * 1024;
	*avail = ma * 1024;
	return 0;
}

static int
read_uptime(double *secs, char *err, size_t errlen)
{
	FILE *f = fopen("/proc/uptime", "re");
	int n;

	if (f == NULL) {
		snprintf(err, errlen, "/proc/uptime: %s", strerror(errno));
		return -1;
	}
	n = fscanf(f, "%lf", secs);
	fclose(f);
	if (n != 1) {
		snprintf(err, errlen, "/proc/uptime: unexpected format");
		return -1;
	}
	return 0;
}

struct disk {
	uint64_t total, free;
	double pct;
};

static int
read_disk(const char *path, struct disk *d, char *err, size_t errlen)
{
	struct statvfs sv;

	if (statvfs(path, &sv) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	uint64_t frsize = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
	uint64_t used = (uint64_t)(sv.f_blocks - sv.f_bfree);
	uint64_t usable = used + (uint64_t)sv.f_bavail;
	d->total = (uint64_t)sv.f_blocks * frsize;
	d->free = (uint64_t)sv.f_bavail * frsize;
	d->pct = usable ? 100.0 * (double)used / (double)usable : 0;
	return 0;
}

/* thresholds: absent, or an object of known metrics with numbers 0..100. */
static int
check_thresholds(const json_t *th, char *err, size_t errlen)
{
	const char *k;
	json_t *v;

	if (th == NULL || json_is_null(th))
		return 0;
	if (!json_is_object(th)) {
		snprintf(err, errlen, "thresholds must be an object");
		return -1;
	}
	json_object_foreach((json_t *)th, k, v) {
		bool known = false;
		for (size_t i = 0; i < sizeof(metric_names) / sizeof(metric_names[0]); i++)
			if (strcmp(k, metric_names[i]) == 0)
				known = true;
		if (!known) {
			snprintf(err, errlen, "unknown threshold \"%s\" (known: "
			    "cpu_usage, memory_usage, disk_usage)", k);
			return -1;
		}
		if (!json_is_number(v) || json_number_value(v) < 0 ||
		    json_number_value(v) > 100) {
			snprintf(err, errlen, "threshold %s must be a number "
			    "from 0 to 100", k);
			return -1;
		}
	}
	return 0;
}

/* An alert for each metric strictly above its threshold. */
static json_t *
alerts_for(const json_t *th, const double values[3])
{
	json_t *alerts = json_array();

	for (size_t i = 0; i < 3; i++) {
		json_t *t = json_object_get(th, metric_names[i]);
		if (t == NULL || !json_is_number(t))
			continue;
		double limit = json_number_value(t);
		if (values[i] > limit)
			json_array_append_new(alerts, json_pack("{s:s, s:f, s:f}",
			    "metric", metric_names[i], "value", values[i],
			    "threshold", limit));
	}
	return alerts;
}

int
tool_system_info(const struct tool_ctx *ctx, const json_t *args, json_t **out,
    char *err, size_t errlen)
{
	const json_t *th = json_object_get(args, "thresholds");
	const json_t *pj = json_object_get(args, "path");
	const char *path = "/";
	double cpu, load[3], uptime, values[3];
	uint64_t mt, ma;
	struct disk d;
	long ncpu;

	(void)ctx;
	if (pj && !json_is_null(pj)) {
		if (!json_is_string(pj) || json_string_length(pj) == 0) {
			snprintf(err, errlen, "path must be a non-empty string");
			return -1;
		}
		path = json_string_value(pj);
	}
	if (check_thresholds(th, err, errlen) < 0 ||
	    read_disk(path, &d, err, errlen) < 0 ||
	    read_meminfo(&mt, &ma, err, errlen) < 0 ||
	    read_loadavg(load, err, errlen) < 0 ||
	    read_uptime(&uptime, err, errlen) < 0 ||
	    cpu_usage(&cpu, err, errlen) < 0)
		return -1;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	values[0] = round2(cpu);
	values[1] = round2(100.0 * (double)(mt - ma) / (double)mt);
	values[2] = round2(d.pct);
	json_t *alerts = alerts_for(th, values);
	const char *status = json_array_size(alerts) ? "alert" : "ok";

	*out = json_pack("{s:f, s:f, s:f, s:[f,f,f], s:I, s:I, s:I, s:I, s:I,"
	    " s:f, s:s, s:o, s:o, s:s}",
	    "cpu_usage", values[0], "memory_usage", values[1],
	    "disk_usage", values[2],
	    "load_avg", load[0], load[1], load[2],
	    "cpus", (json_int_t)(ncpu > 0 ? ncpu : 1),
	    "memory_total_bytes", (json_int_t)mt,
	    "memory_available_bytes", (json_int_t)ma,
	    "disk_total_bytes", (json_int_t)d.total,
	    "disk_free_bytes", (json_int_t)d.free,
	    "uptime_seconds", round2(uptime),
	    "path", path,
	    "thresholds", json_is_object(th) ? json_deep_copy(th) : json_object(),
	    "alerts", alerts,
	    "status", status);
	if (*out == NULL) {
		snprintf(err, errlen, "cannot build the result");
		return -1;
	}
	return 0;
}
