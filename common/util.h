/*
 * util: time, durations, small string and fd helpers shared by every
 * program.  Monotonic milliseconds drive all deadlines; wall-clock
 * milliseconds only ever appear in timestamps shown to people and stores.
 */
#ifndef AGENTD_UTIL_H
#define AGENTD_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

int64_t mono_ms(void);            /* CLOCK_MONOTONIC, milliseconds */
int64_t mono_us(void);            /* CLOCK_MONOTONIC, microseconds */
int64_t wall_ms(void);            /* CLOCK_REALTIME, ms since the epoch */

/* "2026-11-24T12:00:00.123Z" (UTC, millisecond precision). out >= 32 bytes.
 * wall == 0 writes an empty string (for "never"). */
void iso8601(int64_t wall, char *out, size_t outlen);

/*
 * Durations: a bare number is seconds ("300", "1.5"); otherwise one or more
 * <number><unit> terms with units ms, s, m, h, d ("90s", "5m", "1h30m",
 * "250ms").  Returns 0 and *ms, or -1 on anything else (empty, negative,
 * unknown unit, overflow past ~292 million years).
 */
int parse_duration(const char *s, int64_t *ms);

/* Sizes: "512M", "1G", "64k", "1048576" (bytes), "2GiB", "100MB"; 1024-based. */
int parse_size(const char *s, int64_t *bytes);

/* 36-char RFC 4122 version-4 UUID (getrandom(2) bytes). out >= 37 bytes. */
void uuid4(char *out);

/* Uniform random in [0, 1) from a process-local xorshift seeded by getrandom. */
double rand_unit(void);

/* Copy at most n bytes of p into dst for an error message: printable ASCII
 * kept, everything else shown as '?'; always NUL-terminated. */
void str_printable(char *dst, size_t dstlen, const char *p, size_t n);

int set_nonblock(int fd);
int set_cloexec(int fd);

/* Write all of buf to a blocking fd, retrying on EINTR; -1 on error. */
int write_all(int fd, const void *buf, size_t len);

/* Write data to path atomically: path.tmp, fsync, rename, fsync dir. */
int write_file_atomic(const char *path, const void *data, size_t len, int mode);

/* mkdir -p with mode for each created component. */
int mkdir_p(const char *path, int mode);

/* The largest length <= max that does not split a UTF-8 sequence of s (of
 * length len; bytes that are not UTF-8 are cut anywhere). */
size_t utf8_cut(const char *s, size_t len, size_t max);

/* snprintf for text that may not fit: a cut falls between characters, so
 * the result stays UTF-8 (a JSON string) when what was written was. */
int utf8_snprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int utf8_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* strdup that aborts on ENOMEM (allocation failure is not a recoverable
 * state for these programs). */
char *xstrdup(const char *s);
/* Two NULL-terminated string lists (NULL: empty) hold the same strings. */
bool strv_equal(char *const *a, char *const *b);
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);

#endif
