/*
 * libFuzzer target: what an MCP server writes to a worker.
 *
 * The input is a server's stdout: split into lines and dispatched as the
 * stdio transport does (responses, notifications, requests, garbage), with
 * a request of id 1 outstanding so responses are matched.  The server's
 * stdin is a pipe nobody reads, so the answers to its requests fill it and
 * then the queue, up to its bound (the server is then taken down, and a
 * new pipe made); the log budget carries over between inputs.  Then the same
 * bytes, if they parse as a JSON array, are taken as a tools/list page:
 * every entry is checked and the tool-name index rebuilt, which is where a
 * hostile server's names and schemas land.  The client code is included
 * whole so its internals can be driven without a process behind it.
 */
#include "worker/mcp.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mcp *fm;

static bool
taken(const char *name, void *arg)
{
	(void)arg;
	return strcmp(name, "system_info") == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fm == NULL) {
		struct mcp_hooks h = { .agentd_fd = -1, .name_taken = taken };
		char err[256];
		json_t *l = json_pack("[{s:s, s:s, s:s, s:[], s:{}, s:{}, s:i, s:i}]", "name", "fz",
		    "command", "true", "transport_type", "stdio", "args", "env", "headers",
		    "timeout_ms", 60000, "init_timeout_ms", 30000);
		log_init("fuzz_mcp", LL_ERROR, 0, NULL);
		fm = mcp_new(l, &h, err, sizeof(err));
		json_decref(l);
	}
	struct mcp_server *s = &fm->srv[0];
	static int unread = -1;	/* the read end of its stdin, never read */
	if (s->in < 0) {
		int p[2];
		if (unread >= 0)
			close(unread);
		if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
			abort();
		unread = p[0];
		s->in = p[1];
	}
	s->pid = INT32_MAX;	/* "running": no such process, so nothing is signalled */
	s->want_id = 1;
	s->garbage = 0;
	buf_append(&s->rb, data, size);
	take_lines(s, &s->rb, true, true);
	buf_reset(&s->rb);
	json_decref(s->reply);
	s->reply = NULL;

	json_t *page = json_loadb((const char *)data, size, 0, NULL), *t;
	size_t i;
	if (json_is_array(page)) {
		json_t *tools = json_array();
		json_array_foreach(page, i, t) {
			json_t *ok = checked_tool(s, t);
			if (ok)
				json_array_append_new(tools, ok);
		}
		json_decref(s->tools);
		s->tools = tools;
		rebuild_index(fm);
		json_decref(mcp_offered_tools(fm));
	}
	json_decref(page);
	return 0;
}
