/*
 * commands: what each control command does, for every transport.  The
 * catalogue (names, agents, args and their bounds) is proto/cmd.h's; the
 * control socket (ctl.c) and the HTTP API (http.c) decode a request their
 * own way, call commands_run, and send its answer their own way.
 */
#ifndef AGENTD_COMMANDS_H
#define AGENTD_COMMANDS_H

#include <stdbool.h>
#include <jansson.h>
#include "proto/cmd.h"
#include "supervisor/store.h"

struct sup;

struct cmd_result {
	int code;                 /* enum resp_code (proto/msg.h) */
	char *error;              /* why, when code is not RESP_OK */
	const char *bad_arg;      /* the arg the error is about (its cmd_arg name), or NULL */
	json_t *data;
	json_t *cursor;           /* events: the id to go on after (the page was cut) */
	bool follow;              /* events: the page reached the end and follow was
	                           * asked: the transport subscribes the client now */
	bool later;               /* the answer comes through the cmd_later's done */
	bool created;             /* create: a new agent (HTTP 201) */
	char *etag;               /* the agent's ETag (an API agent's), or NULL */
	json_t *errors;           /* a config refused: [{pointer, message}], or NULL */
};

/* A command may answer later (memory with a query: its vector may have to
 * come from an embeddings endpoint).  A transport that can wait gives
 * commands_run_later one of these, living as long as its client; when the
 * command takes it, r->later is set, and done(l, result) brings the answer
 * -- before commands_run_later returns, or once it is in.  A client that
 * goes away first cancels.  One command at a time on each. */
struct cmd_later {
	void (*done)(struct cmd_later *l, struct cmd_result *r);
	void *ctx;
	struct mem_recall recall;     /* the command's */
};

/* Runs command id for agent (NULL: none given) with args (an object, or
 * NULL): checks the agent and the args against the catalogue first.  *r is
 * filled either way; cmd_result_clear frees it. */
void commands_run(struct sup *s, enum cmd_id id, const char *agent, json_t *args,
    struct cmd_result *r);
void commands_run_later(struct sup *s, enum cmd_id id, const char *agent, json_t *args,
    struct cmd_result *r, struct cmd_later *later);
bool cmd_later_busy(const struct cmd_later *l);
void cmd_later_cancel(struct cmd_later *l);
void cmd_result_clear(struct cmd_result *r);
/* r refused with code and why (for handlers outside commands.c). */
void cmd_refuse(struct cmd_result *r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* apiagents.c: the agents created over the API (create, update, delete,
 * export) -- the handlers of those commands. */
struct agent;
void api_agent_create(struct sup *s, const json_t *config, struct cmd_result *r);
void api_agent_update(struct sup *s, struct agent *a, const json_t *patch, const char *if_match,
    struct cmd_result *r);
void api_agent_delete(struct sup *s, struct agent *a, const char *if_match,
    struct cmd_result *r);
void api_agent_export(struct agent *a, struct cmd_result *r);

#endif
