/*
 * mcp_probe: `agentd-worker --mcp-probe`, the MCP client alone, for people
 * checking a server before they give it to an agent, for the official
 * conformance suite (which runs a client command with the server's URL
 * appended), and for the round-trip benchmark.
 *
 *   agentd-worker --mcp-probe [-t MS] [-n N] [-s] [-c TOOL JSON]... (URL | -- CMD ARG...)
 *
 * A URL is a Streamable HTTP endpoint, or with -s a legacy SSE one.
 *
 * Connects (initialize, tools/list), prints one JSON line with the
 * server's tools, then one per call.  -n repeats the first call N times
 * and prints latency percentiles instead.  Exit 0 when everything worked.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "worker/mcp.h"
#include "worker/mcp_probe.h"

static void
usage(void)
{
	fprintf(stderr, "usage: agentd-worker --mcp-probe [-t TIMEOUT_MS] [-n REPEAT] "
	    "[-s] [-c TOOL JSON_ARGS]... (URL | -- COMMAND [ARG...])\n");
}

static void
print_line(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(o);
}

static int
cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int
repeat_call(struct mcp *m, const char *tool, const json_t *args, long n)
{
	int64_t *lat = xcalloc((size_t)n, sizeof(*lat));
	char err[1024];
	bool retry;
	long i;

	for (i = 0; i < n; i++) {
		json_t *out;
		int64_t t0 = mono_us();
		if (mcp_call_server(m, 0, tool, args, &out, err, sizeof(err), &retry) < 0)
			break;
		lat[i] = mono_us() - t0;
		json_decref(out);
	}
	if (i < n) {
		print_line(json_pack("{s:s, s:b, s:s, s:i}", "tool", tool, "ok", 0, "error",
		    err, "after", (int)i));
		free(lat);
		return 1;
	}
	qsort(lat, (size_t)n, sizeof(*lat), cmp64);
	double sum = 0;
	for (i = 0; i < n; i++)
		sum += (double)lat[i];
	print_line(json_pack("{s:s, s:i, s:I, s:I, s:f}", "tool", tool, "calls", (int)n,
	    "p50_us", (json_int_t)lat[n / 2], "p99_us", (json_int_t)lat[(n * 99) / 100],
	    "mean_us", sum / (double)n));
	free(lat);
	return 0;
}

int
mcp_probe_main(int argc, char **argv)
{
	json_t *calls = json_array();
	int64_t timeout = 30000;
	long repeat = 0;
	bool legacy = false;
	const char *url = NULL;
	char **cmd = NULL, err[1024];
	int i, rc = 0;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-t") && i + 1 < argc)
			timeout = strtoll(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "-s"))
			legacy = true;
		else if (!strcmp(argv[i], "-n") && i + 1 < argc)
			repeat = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "-c") && i + 2 < argc) {
			json_t *a = json_loads(argv[i + 2], 0, NULL);
			if (!json_is_object(a)) {
				fprintf(stderr, "--mcp-probe: -c %s: arguments are not a JSON object\n",
				    argv[i + 1]);
				json_decref(a);
				json_decref(calls);
				return 2;
			}
			json_array_append_new(calls, json_pack("{s:s, s:o}", "tool", argv[i + 1],
			    "args", a));
			i += 2;
		} else if (!strcmp(argv[i], "--")) {
			cmd = argv + i + 1;
			break;
		} else if (argv[i][0] != '-' && url == NULL)
			url = argv[i];
		else
			break;
	}
	if ((cmd == NULL && i < argc) || (cmd && cmd[0] == NULL) || (cmd != NULL) == (url != NULL)) {
		usage();
		json_decref(calls);
		return 2;
	}
	log_init("agentd-worker", LL_WARN, 0, NULL);
	signal(SIGPIPE, SIG_IGN);	/* a server that exits early: EPIPE, not death */
	struct mcp *m = mcp_probe_new(cmd ? NULL : url, legacy, cmd, timeout, err, sizeof(err));
	if (m == NULL) {
		print_line(json_pack("{s:b, s:s}", "connected", 0, "error", err));
		json_decref(calls);
		return 1;
	}
	json_t *all = mcp_status(m);
	print_line(json_pack("{s:b, s:O, s:o}", "connected", 1, "protocol_version",
	    json_object_get(json_object_get(all, "probe"), "protocol_version"), "tools",
	    mcp_tool_names(m)));
	json_decref(all);

	size_t k;
	json_t *c;
	json_array_foreach(calls, k, c) {
		const char *tool = json_string_value(json_object_get(c, "tool"));
		json_t *out, *before = mcp_tool_names(m), *after;
		bool retry;
		mcp_connect_due(m);	/* as a worker does before a run: list_changed */
		after = mcp_tool_names(m);
		if (!json_equal(before, after))
			print_line(json_pack("{s:O}", "tools_changed", after));
		json_decref(before);
		json_decref(after);
		if (k == 0 && repeat > 0) {
			rc |= repeat_call(m, tool, json_object_get(c, "args"), repeat);
			continue;
		}
		if (mcp_call_server(m, 0, tool, json_object_get(c, "args"), &out, err, sizeof(err),
		    &retry) < 0) {
			print_line(json_pack("{s:s, s:b, s:s}", "tool", tool, "ok", 0, "error", err));
			rc = 1;
		} else
			print_line(json_pack("{s:s, s:b, s:o}", "tool", tool, "ok", 1, "output", out));
	}
	json_decref(calls);
	mcp_free(m);
	return rc;
}
