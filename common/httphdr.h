/*
 * httphdr: reading the headers of an HTTP reply, for both programs' HTTP
 * clients (the worker's model calls, agentd's embedding requests).
 */
#ifndef AGENTD_HTTPHDR_H
#define AGENTD_HTTPHDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Is line[0..n) the header `name` (any case)?  Then *val is its value,
 * leading blanks skipped. */
bool http_header_is(const char *line, size_t n, const char *name, const char **val);

/* A Retry-After value, delay-seconds ("1.5" too) or an HTTP-date, as the
 * milliseconds to wait from now (0 for a date past); -1 when unreadable.
 * retry-after-ms, which some APIs send too, is a plain integer. */
int64_t http_retry_after_ms(const char *value);

/* One header line as libcurl hands it over (CRLF and all, p[0..len)):
 * line gets it as a string (cut to linelen), and a retry-after-ms or, when
 * none came before it, a Retry-After sets *retry_ms.  True when it was one
 * of those. */
bool http_retry_header(const char *p, size_t len, char *line, size_t linelen,
    int64_t *retry_ms);

#endif
