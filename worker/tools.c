/*
 * tools: the registry of built-in tools and the small text helpers they
 * share.
 *
 * The registry is a static table, not something tools add themselves to
 * at start-up: a worker's set of tools is fixed at build time, costs no
 * allocation while idle, and the table is what `ready` lists and what a
 * model will be offered.  Schemas are JSON text kept next to the name so
 * a test can check each one parses and matches what its tool accepts.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "common/util.h"
#include "worker/tools.h"

static const char system_info_schema[] =
	"{\"type\":\"object\","
	"\"properties\":{"
	  "\"path\":{\"type\":\"string\",\"minLength\":1,"
	    "\"description\":\"A path on the filesystem whose usage is reported "
	    "as disk_usage (default /)\"},"
	  "\"thresholds\":{\"type\":\"object\","
	    "\"description\":\"Alert levels in percent; a metric above its "
	    "threshold is listed in alerts\","
	    "\"properties\":{"
	      "\"cpu_usage\":{\"type\":\"number\",\"minimum\":0,\"maximum\":100},"
	      "\"memory_usage\":{\"type\":\"number\",\"minimum\":0,\"maximum\":100},"
	      "\"disk_usage\":{\"type\":\"number\",\"minimum\":0,\"maximum\":100}},"
	    "\"additionalProperties\":false}}}";

static const char new_files_schema[] =
	"{\"type\":\"object\","
	"\"properties\":{"
	  "\"directories\":{\"type\":\"array\",\"minItems\":1,"
	    "\"items\":{\"type\":\"string\",\"minLength\":1},"
	    "\"description\":\"Directories to watch\"},"
	  "\"file_types\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
	    "\"description\":\"File name suffixes to report, e.g. [\\\".txt\\\", "
	    "\\\".log\\\"] (case-insensitive); empty or absent: every file\"},"
	  "\"recursive\":{\"type\":\"boolean\",\"default\":false,"
	    "\"description\":\"Also look in subdirectories\"},"
	  "\"max_files\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":10000,"
	    "\"default\":1000,\"description\":\"At most this many files are "
	    "reported per run; the rest are reported by the next runs\"}},"
	"\"required\":[\"directories\"]}";

static const char read_file_schema[] =
	"{\"type\":\"object\","
	"\"properties\":{"
	  "\"path\":{\"type\":\"string\",\"minLength\":1,"
	    "\"description\":\"The file to read (inside the agent's read_dirs)\"},"
	  "\"max_bytes\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1048576,"
	    "\"default\":65536,\"description\":\"Read at most this many bytes\"}},"
	"\"required\":[\"path\"],\"additionalProperties\":false}";

const struct tool builtin_tools[] = {
	{
		"system_info",
		"Report CPU, memory and disk usage (percent), load averages, CPU "
		"count and uptime of this machine, and which of the given "
		"thresholds are exceeded.",
		system_info_schema,
		tool_system_info,
	},
	{
		"new_files",
		"List the files in the given directories that are new or changed "
		"since the previous successful call (the first call lists every "
		"matching file), with size and modification time.",
		new_files_schema,
		tool_new_files,
	},
	{
		"read_file",
		"Read the start of a text file (at most max_bytes), only inside the "
		"directories this agent is allowed to read.",
		read_file_schema,
		tool_read_file,
	},
	{
		"remember",
		"Keep a fact for later runs of this agent (long_term, the default), or a "
		"note for the rest of this session (working: given back with every run of "
		"the session until it is reset).",
		tool_remember_schema,
		tool_remember,
	},
	{
		"recall",
		"Search this agent's memory for what is most related to a query: earlier "
		"runs (episodic) and kept facts (long_term) unless memory_types says "
		"otherwise.  Each hit has its memory_type and a score (1 is the best).",
		tool_recall_schema,
		tool_recall,
	},
	{ NULL, NULL, NULL, NULL },
};

const struct tool *
tool_find(const char *name)
{
	if (name == NULL)
		return NULL;
	for (const struct tool *t = builtin_tools; t->name; t++)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

json_t *
json_string_lossy(const char *s)
{
	return json_stringn_lossy(s, strlen(s));
}

json_t *
json_stringn_lossy(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, bad = 0;

	while (i < n) {
		size_t l = utf8_seq(p + i, n - i);
		if (l == 0) {
			bad++;
			l = 1;
		}
		i += l;
	}
	if (bad == 0)
		return json_stringn(s, n);

	char *o = xmalloc(n + bad * 2 + 1), *q = o;	/* U+FFFD is 3 bytes */
	for (i = 0; i < n;) {
		size_t l = utf8_seq(p + i, n - i);
		if (l == 0) {
			memcpy(q, "\xef\xbf\xbd", 3);
			q += 3;
			i++;
		} else {
			memcpy(q, s + i, l);
			q += l;
			i += l;
		}
	}
	json_t *j = json_stringn(o, (size_t)(q - o));
	free(o);
	return j;
}

int
tool_state_save(const struct tool_ctx *ctx, const char *name, const char *text)
{
	char path[4096];

	if (ctx && ctx->staged) {
		json_object_set_new(ctx->staged, name, json_string(text));
		return 0;
	}
	snprintf(path, sizeof(path), "%s/%s", ctx && ctx->state_dir ? ctx->state_dir : ".", name);
	return write_file_atomic(path, text, strlen(text), 0600);
}

int
tool_state_commit(const char *state_dir, const json_t *staged)
{
	struct tool_ctx to_disk = { .state_dir = state_dir };
	const char *name;
	json_t *v;
	int rc = 0;

	json_object_foreach((json_t *)staged, name, v)
		if (tool_state_save(&to_disk, name, json_string_value(v)) < 0)
			rc = -1;
	return rc;
}
