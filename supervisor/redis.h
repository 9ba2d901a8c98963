/*
 * redis: one hiredis async connection driven by agentd's loop.
 *
 * Debian's hiredis (0.14) has no epoll adapter, no async timeouts and no
 * reconnect, so this module supplies them: hiredis's read/write hooks map
 * to epoll interest on a watch; a timer bounds the connect and the oldest
 * unanswered command (replies arrive in order, so the oldest is the only
 * one that needs a deadline); a lost or timed-out connection fails every
 * pending command (callback with reply NULL and a reason) and reconnects
 * with exponential backoff.  Nothing here ever blocks the loop.
 *
 * Commands are pipelined: rconn_command() only queues; hiredis writes when
 * the socket is writable.  AUTH and SELECT are queued first on every new
 * connection, so callers never see a connection that is not ready.
 */
#ifndef AGENTD_REDIS_H
#define AGENTD_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>

struct rconn;

/* up: the connection became usable (true) or was lost (false, with why). */
typedef void (*rconn_state_fn)(struct rconn *r, bool up, const char *why, void *ctx);
/* reply NULL means the command failed without an answer (err says why). */
typedef void (*rconn_reply_fn)(struct rconn *r, redisReply *reply, const char *err,
    void *priv);

struct rconn_opts {
	const char *host;            /* used when unix_path is NULL */
	int port;
	const char *unix_path;
	const char *password;        /* NULL: no AUTH */
	int db;
	int64_t connect_timeout_ms;  /* default 2000 */
	int64_t reply_timeout_ms;    /* default 5000 */
	int64_t backoff_ms;          /* default 100 */
	int64_t backoff_max_ms;      /* default 5000 */
};

struct rconn *rconn_new(const struct rconn_opts *o, rconn_state_fn fn, void *ctx);
void rconn_free(struct rconn *r);     /* fails pending commands first */
bool rconn_up(const struct rconn *r);
size_t rconn_pending(const struct rconn *r);
/* How long the oldest unanswered command has waited (0: none waits). */
int64_t rconn_waiting_ms(const struct rconn *r);
const char *rconn_last_error(const struct rconn *r);

/* Queue a command; -1 when the connection is not up (nothing queued). */
int rconn_command(struct rconn *r, rconn_reply_fn fn, void *priv, int argc,
    const char **argv, const size_t *lens);
/* The same for a command its caller encoded in RESP (for a big batch made
 * of pieces encoded once and used in more than one command).  fn NULL: the
 * reply is read and dropped (a transaction's QUEUED; EXEC's says it all). */
int rconn_formatted(struct rconn *r, rconn_reply_fn fn, void *priv, const char *cmd,
    size_t len);

#endif
