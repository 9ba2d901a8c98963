/*
 * read_file: a bounded read of one file, only under the directories the
 * agent's config allows (agent_config.read_dirs).  The model chooses the
 * path, so the path is untrusted: it is resolved (symlinks included)
 * before the check, the file is opened by its resolved name with
 * O_NOFOLLOW, and must be a regular file.  No read_dirs, no reads.  At
 * most max_bytes are read, cut on a character; a NUL in the file ends
 * nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/util.h"
#include "worker/tools.h"

#define READ_MAX_DEFAULT 65536
#define READ_MAX_LIMIT (1 << 20)

static bool
under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0' || n == 1);
}

static bool
allowed(const json_t *dirs, const char *real)
{
	size_t i;
	json_t *d;
	char rd[PATH_MAX];
	json_array_foreach(dirs, i, d)
		if (json_is_string(d) && realpath(json_string_value(d), rd) && under(real, rd))
			return true;
	return false;
}

int
tool_read_file(const struct tool_ctx *ctx, const json_t *args, json_t **out,
    char *err, size_t errlen)
{
	const char *path = json_string_value(json_object_get(args, "path"));
	json_t *mb = json_object_get(args, "max_bytes");
	const json_t *dirs = ctx && ctx->spec ?
	    json_object_get(json_object_get(ctx->spec, "agent_config"), "read_dirs") : NULL;
	size_t max = json_is_integer(mb) && json_integer_value(mb) > 0 ?
	    (size_t)json_integer_value(mb) : READ_MAX_DEFAULT;
	char real[PATH_MAX];
	struct stat sb;

	if (path == NULL) {
		snprintf(err, errlen, "path (string) is required");
		return -1;
	}
	if (!json_is_array(dirs) || json_array_size(dirs) == 0) {
		snprintf(err, errlen, "this agent allows no reads (agent_config.read_dirs is empty)");
		return -1;
	}
	if (max > READ_MAX_LIMIT)
		max = READ_MAX_LIMIT;
	if (realpath(path, real) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!allowed(dirs, real)) {
		snprintf(err, errlen, "%s is outside the directories this agent may read", path);
		return -1;
	}
	int fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: %s", path, fd < 0 ? strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char *buf = xmalloc(max + 4);
	ssize_t got = read(fd, buf, max + 3);	/* a few more, to cut on a character */
	close(fd);
	if (got < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(buf);
		return -1;
	}
	size_t n = utf8_cut(buf, (size_t)got, max);
	*out = json_pack("{s:s, s:o, s:I, s:I, s:b}", "path", real,
	    "content", json_stringn_lossy(buf, n), "bytes", (json_int_t)n,
	    "size", (json_int_t)sb.st_size, "truncated", (off_t)n < sb.st_size);
	free(buf);
	return 0;
}
