/*
 * mcp: the worker's MCP client (Model Context Protocol, revisions
 * 2025-11-25 and 2025-06-18; 2025-03-26 servers are accepted too, their
 * tools wire format being the same).
 *
 * An agent's `mcp_tools` entries are servers.  Each one is a little state
 * machine, down -> connecting -> connected, and back to down (restarting,
 * with backoff) when it dies, hangs, or keeps printing garbage.  Its tools
 * join the agent's under their own names, or `server__tool` when a name is
 * taken already; names and schemas are untrusted input and are checked.
 *
 * Transports: stdio (the server is a child of the worker, in the worker's
 * process group and cgroup, so agentd's limits and kills reach it; JSON-RPC
 * one message per line; its stderr goes to the agent's log) and Streamable
 * HTTP (mcp_http.c, libcurl), and the legacy HTTP+SSE transport (`sse`)
 * for older servers.
 *
 * Everything here runs on the worker's one thread.  A request waits in
 * poll() on the server and on agentd's pipe together: when agentd writes,
 * the `interrupted` hook reads it, and a cancelled run stops the wait (the
 * server is sent notifications/cancelled).  No wait is unbounded: a call
 * has its timeout (progress notifications extend it, up to a maximum),
 * initialize has its own.
 */
#ifndef AGENTD_MCP_H
#define AGENTD_MCP_H

#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mcp;

struct mcp_hooks {
	/* True when the current wait must stop (a run cancelled); may read
	 * agentd's pipe.  NULL: never. */
	bool (*interrupted)(void *arg);
	void *arg;
	int agentd_fd;          /* polled with the servers; -1: none */
	/* Is this tool name taken by a local tool?  NULL: no local tools. */
	bool (*name_taken)(const char *name, void *arg);
	/* A server's state changed (mcp_server_status(); payload consumed). */
	void (*on_status)(json_t *payload, void *arg);
};

/*
 * Servers from an agent's mcp_tools list (NULL or empty: none), entries as
 * the config loader normalized them (conf/config.h).  Nothing is started
 * yet.  NULL and err when the list is unusable.
 */
struct mcp *mcp_new(const json_t *servers, const struct mcp_hooks *hooks,
    char *err, size_t errlen);

/* Stop every server (close stdin, wait, TERM, wait, KILL; DELETE the HTTP
 * session) and free. */
void mcp_free(struct mcp *m);

/* Connect every server that is down and due (blocks for each handshake,
 * within its timeout). */
void mcp_connect_due(struct mcp *m);

/* Milliseconds until a server is due for a reconnect; -1: none is. */
int64_t mcp_next_due_ms(const struct mcp *m);

/* While idle: the descriptors to watch (server stdout/stderr, its process,
 * its stdin while answers wait for it: at most MCP_POLLFDS_PER_SERVER a
 * server), and what to do when poll says they are ready (log stderr,
 * notice a dead server, answer pings, note list changes). */
#define MCP_POLLFDS_PER_SERVER 4
size_t mcp_pollfds(const struct mcp *m, struct pollfd *fds, size_t max);
void mcp_on_io(struct mcp *m);

/* The tools the model is offered: [{name, description, input_schema}]. */
json_t *mcp_offered_tools(struct mcp *m);

/* Is this (exposed) name one of the MCP tools? */
bool mcp_has_tool(const struct mcp *m, const char *name);

/* The exposed names, in order (for `ready` and status). */
json_t *mcp_tool_names(const struct mcp *m);

/*
 * Call a tool by its exposed name.  0 and *out ({text, content?,
 * structuredContent?}) on success; -1 and err (the tool's error text, or
 * why the call failed) otherwise.  *retryable is set when the failure is
 * the server's state, not the call's.
 */
int mcp_call(struct mcp *m, const char *name, const json_t *args,
    json_t **out, char *err, size_t errlen, bool *retryable);

/* Every server's state: {name: {state, transport, protocol_version, tools,
 * error}}. */
json_t *mcp_status(const struct mcp *m);

/* ---- for the probe and the tests ----------------------------------------- */

/* A one-server client from a command line or a URL (Streamable HTTP, or
 * the legacy SSE transport), connected at once. */
struct mcp *mcp_probe_new(const char *url_or_null, bool legacy_sse, char *const argv[],
    int64_t timeout_ms, char *err, size_t errlen);
/* Call a tool of server idx by the server's own name for it (no index). */
int mcp_call_server(struct mcp *m, size_t idx, const char *tool, const json_t *args,
    json_t **out, char *err, size_t errlen, bool *retryable);
/* The server's raw tools list ([] before it connects). */
const json_t *mcp_server_tools(const struct mcp *m, size_t i);

#endif
