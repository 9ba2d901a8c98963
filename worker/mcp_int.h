/*
 * mcp_int: what mcp.c (the protocol, the servers' life) shares with the
 * HTTP transport (mcp_http.c).  Not for other users: see mcp.h.
 */
#ifndef AGENTD_MCP_INT_H
#define AGENTD_MCP_INT_H

#include <sys/types.h>
#include "common/buf.h"
#include "worker/mcp.h"

enum mcp_transport { MCP_STDIO, MCP_HTTP, MCP_SSE };
enum mcp_state { MCP_DOWN, MCP_CONNECTING, MCP_CONNECTED };

struct mcp_http;

struct mcp_server {
	struct mcp *m;
	char *name;
	json_t *def;                /* its mcp_tools entry */
	enum mcp_transport transport;
	enum mcp_state state;
	char version[16];           /* negotiated protocol version */
	json_t *tools;              /* validated tools/list entries */
	char error[512];            /* why it is (or was last) down */
	int64_t timeout_ms;         /* a call's timeout */
	int64_t init_timeout_ms;
	int failures;               /* consecutive failed connects or crashes */
	int64_t due;                /* when a reconnect may start (mono ms) */
	int64_t up_since;
	int64_t next_id;
	bool relist;                /* tools/list_changed seen */
	int64_t relisted_at;        /* the last tools/list for list_changed (mono ms) */
	int garbage;                /* non-JSON-RPC lines in a row */
	json_t *last_status;        /* the last mcp_server_status sent */
	char fault[256];            /* what it sent makes it unusable: why */
	int64_t log_start;          /* the second its log lines are counted in */
	unsigned log_lines, log_dropped;

	int64_t want_id;            /* the request being waited for ... */
	json_t *reply;              /* ... and its response once it came */
	bool progressed;            /* ... which sent progress meanwhile */

	pid_t pid;                  /* stdio */
	int pidfd;                  /* readable once the process ended; -1: none */
	int in, out, errfd;
	struct buf rb, eb;
	struct buf wq;              /* for its stdin, not yet taken */
	size_t req_bytes;           /* the request in flight, of wq */
	char last_stderr[256];

	struct mcp_http *http;      /* streamable_http */
};

struct mcp {
	struct mcp_server *srv;
	size_t n;
	struct mcp_hooks h;
	json_t *index;              /* exposed name -> [server index, tool name] */
};

/* mcp.c, for the transports: one JSON-RPC message arrived.  It never
 * takes the server down itself: what makes the server unusable is left in
 * s->fault, for the transport to act on once it is out of its transfer. */
void mcp_dispatch(struct mcp_server *s, const char *text, size_t len);

/* mcp_http.c, for streamable_http and the legacy sse.  mcp_http_post sends one message; messages in the reply
 * (JSON or an event stream) go to mcp_dispatch.  A request's POST returns
 * once s->reply is set, at *deadline (moved on by progress, never past
 * hard), or when interrupted.  0; MCP_E_* and err otherwise. */
int mcp_http_open(struct mcp_server *s, char *err, size_t errlen);
int mcp_http_post(struct mcp_server *s, const char *body, bool is_request,
    int64_t timeout_ms, int64_t hard_ms, char *err, size_t errlen);
void mcp_http_close(struct mcp_server *s);

#define MCP_E_RPC (-1)          /* the server answered with an error */
#define MCP_E_TIMEOUT (-2)
#define MCP_E_DOWN (-3)         /* the transport failed or the server died */
#define MCP_E_CANCELLED (-4)
#define MCP_E_SESSION (-5)      /* HTTP: the session is gone; initialize again */

#endif
