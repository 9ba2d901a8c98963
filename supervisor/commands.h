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

struct sup;

struct cmd_result {
	int code;                 /* enum resp_code (proto/msg.h) */
	char *error;              /* why, when code is not RESP_OK */
	const char *bad_arg;      /* the arg the error is about (its cmd_arg name), or NULL */
	json_t *data;
	json_t *cursor;           /* events: the id to go on after (the page was cut) */
	bool follow;              /* events: the page reached the end and follow was
	                           * asked: the transport subscribes the client now */
};

/* Runs command id for agent (NULL: none given) with args (an object, or
 * NULL): checks the agent and the args against the catalogue first.  *r is
 * filled either way; cmd_result_clear frees it. */
void commands_run(struct sup *s, enum cmd_id id, const char *agent, json_t *args,
    struct cmd_result *r);
void cmd_result_clear(struct cmd_result *r);

#endif
