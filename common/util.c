/*
 * util: small helpers every program shares.  Allocation failure aborts:
 * agentd cannot do anything sensible without memory, and checking every
 * small allocation would bury the real error paths.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "common/util.h"

int64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
iso8601(int64_t wall, char *out, size_t outlen)
{
	/* agentd stamps every event: the second's text is made once a second */
	static time_t cached = -1;
	static char base[24];
	struct tm tm;
	time_t secs = (time_t)(wall / 1000 - (wall % 1000 < 0));	/* floor: before 1970 too */

	if (wall == 0 || outlen < 25 || (secs != cached && gmtime_r(&secs, &tm) == NULL)) {
		if (outlen)
			out[0] = '\0';
		return;
	}
	if (secs != cached) {
		strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
		cached = secs;
	}
	int ms = (int)(wall - (int64_t)secs * 1000);
	memcpy(out, base, 19);
	out[19] = '.';
	out[20] = (char)('0' + ms / 100);
	out[21] = (char)('0' + ms / 10 % 10);
	out[22] = (char)('0' + ms % 10);
	out[23] = 'Z';
	out[24] = '\0';
}

static int
unit_ms(const char *u, size_t n, int64_t *mult)
{
	static const struct { const char *name; int64_t ms; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 },
		{ "h", 3600000 }, { "d", 86400000 },
	};
	for (size_t i = 0; i < ARRAY_LEN(units); i++) {
		if (strlen(units[i].name) == n && strncmp(u, units[i].name, n) == 0) {
			*mult = units[i].ms;
			return 0;
		}
	}
	return -1;
}

int
parse_duration(const char *s, int64_t *ms)
{
	const char *p = s;
	double total = 0;
	char *end;

	if (s == NULL || *s == '\0')
		return -1;
	/* A bare number is seconds, as the seed's `interval: 300`. */
	errno = 0;
	double v = strtod(s, &end);
	if (end != s && *end == '\0') {
		if (errno || v < 0 || v > 9.2e15)
			return -1;
		*ms = (int64_t)(v * 1000 + 0.5);
		return 0;
	}
	while (*p) {
		if (*p < '0' || *p > '9')
			return -1;
		errno = 0;
		v = strtod(p, &end);
		if (end == p || errno || v < 0)
			return -1;
		const char *u = end;
		while (*end >= 'a' && *end <= 'z')
			end++;
		int64_t mult;
		if (unit_ms(u, (size_t)(end - u), &mult) < 0)
			return -1;
		total += v * (double)mult;
		if (total > 9.2e18)
			return -1;
		p = end;
	}
	*ms = (int64_t)(total + 0.5);
	return 0;
}

int
parse_size(const char *s, int64_t *bytes)
{
	char *end;
	double v;
	int64_t mult = 1;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -1;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': mult = 1LL << 10; end++; break;
	case 'm': case 'M': mult = 1LL << 20; end++; break;
	case 'g': case 'G': mult = 1LL << 30; end++; break;
	case 't': case 'T': mult = 1LL << 40; end++; break;
	default: return -1;
	}
	if (mult > 1) {	/* "M", "MB", "MiB" all mean 2^20 here */
		if (strcmp(end, "") && strcmp(end, "B") && strcmp(end, "iB"))
			return -1;
	} else if (*end != '\0')
		return -1;
	if (v * (double)mult > 9.2e18)
		return -1;
	*bytes = (int64_t)(v * (double)mult);
	return 0;
}

static void
random_bytes(void *p, size_t n)
{
	uint8_t *b = p;
	while (n > 0) {
		ssize_t r = getrandom(b, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			abort();
		}
		b += r;
		n -= (size_t)r;
	}
}

/*
 * Random bytes for UUIDs come from a small pool refilled by getrandom(2):
 * one syscall per 256 ids instead of one per id (agentd stamps every event).
 * The pool remembers which process filled it, so a forked child never
 * hands out its parent's bytes.
 */
static void
uuid_random(uint8_t u[16])
{
	static uint8_t pool[4096];
	static size_t used = sizeof(pool);
	static pid_t owner;
	pid_t me = getpid();

	if (used == sizeof(pool) || owner != me) {
		random_bytes(pool, sizeof(pool));
		used = 0;
		owner = me;
	}
	memcpy(u, pool + used, 16);
	explicit_bzero(pool + used, 16);
	used += 16;
}

void
uuid4(char *out)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t u[16];
	uuid_random(u);
	u[6] = (u[6] & 0x0f) | 0x40;
	u[8] = (u[8] & 0x3f) | 0x80;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*out++ = '-';
		*out++ = hex[u[i] >> 4];
		*out++ = hex[u[i] & 15];
	}
	*out = '\0';
}

double
rand_unit(void)
{
	static uint64_t x;
	if (x == 0)
		while (x == 0)
			random_bytes(&x, sizeof(x));
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return (double)(x >> 11) / 9007199254740992.0;
}

void
str_printable(char *dst, size_t dstlen, const char *p, size_t n)
{
	size_t i;

	if (dstlen == 0)
		return;
	if (n > dstlen - 1)
		n = dstlen - 1;
	for (i = 0; i < n; i++)
		dst[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?';
	dst[i] = '\0';
}

int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int
set_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);
	return fl < 0 ? -1 : fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int
write_file_atomic(const char *path, const void *data, size_t len, int mode)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	int fd, saved;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		saved = errno;
		close(fd);
		unlink(tmp);
		errno = saved;
		return -1;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		saved = errno;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

int
mkdir_p(const char *path, int mode)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, (mode_t)mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, (mode_t)mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		abort();
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL)
		abort();
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		abort();
	return p;
}

char *
xstrdup(const char *s)
{
	char *d = strdup(s);
	if (d == NULL)
		abort();
	return d;
}

int
utf8_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf, size, fmt, ap);
	if (n < 0 || (size_t)n < size || size == 0)
		return n;
	/* Cut at size - 1: drop a last sequence that lost its tail (its lead
	 * byte says how long it is). */
	size_t len = size - 1, k = len;
	while (k > 0 && len - k < 3 && ((unsigned char)buf[k - 1] & 0xc0) == 0x80)
		k--;
	if (k > 0) {
		unsigned char c = (unsigned char)buf[k - 1];
		size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
		if (c >= 0xc0 && len - (k - 1) < need)
			buf[k - 1] = '\0';
	}
	return n;
}

int
utf8_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = utf8_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

size_t
utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	/* a sequence is at most 4 bytes: more continuation bytes than 3 are
	 * not UTF-8 anyway, and need not be kept whole */
	for (size_t k = max; k > 0 && max - k < 3 && ((unsigned char)s[k] & 0xc0) == 0x80; k--)
		if (((unsigned char)s[k - 1] & 0xc0) != 0x80)
			return (unsigned char)s[k - 1] >= 0xc0 ? k - 1 : max;
	return max;
}

bool
strv_equal(char *const *a, char *const *b)
{
	for (; a && b && *a && *b; a++, b++)
		if (strcmp(*a, *b))
			return false;
	return (a && *a) == (b && *b);
}
