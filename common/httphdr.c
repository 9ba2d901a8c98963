/*
 * httphdr: see httphdr.h.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>
#include "common/httphdr.h"

bool
http_header_is(const char *line, size_t n, const char *name, const char **val)
{
	size_t k = strlen(name);
	if (n <= k + 1 || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return false;
	*val = line + k + 1;
	while (**val == ' ')
		(*val)++;
	return true;
}

int64_t
http_retry_after_ms(const char *v)
{
	if (isdigit((unsigned char)*v))
		return (int64_t)(atof(v) * 1000);
	time_t t = curl_getdate(v, NULL);
	if (t <= 0)
		return -1;
	return t > time(NULL) ? (int64_t)(t - time(NULL)) * 1000 : 0;
}

bool
http_retry_header(const char *p, size_t len, char *line, size_t linelen, int64_t *retry_ms)
{
	const char *v;

	snprintf(line, linelen, "%.*s", (int)(len < linelen ? len : linelen - 1), p);
	line[strcspn(line, "\r\n")] = '\0';
	if (http_header_is(line, strlen(line), "retry-after-ms", &v))
		*retry_ms = atoll(v);
	else if (http_header_is(line, strlen(line), "retry-after", &v) && *retry_ms < 0)
		*retry_ms = http_retry_after_ms(v);
	else
		return false;
	return true;
}
