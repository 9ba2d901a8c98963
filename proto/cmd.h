/*
 * cmd: the control commands, each named once.
 *
 * One catalogue lists every operation agentd offers its clients: its name,
 * whether it takes an agent, and the args it takes with their bounds.
 * agentd binds each to its handler (supervisor/commands.c), agentctl to
 * what it sends and prints (supervisor/agentctl.c), the HTTP API routes to
 * them (supervisor/api.c); none of them spells a command or an arg's bound
 * again.  The response codes the answers carry are proto/msg.h's.
 *
 * Args are checked as a request enters, against these rows: anything not
 * listed is ignored (newer clients), anything listed of the wrong type or
 * out of its bounds is refused before the command runs.  Containers are
 * bounded by depth (VALUE_DEPTH_MAX) and compact size, so what is accepted
 * can be stored, sent to a worker and read back later.  A new command is
 * a row here and a handler in commands.c; a new arg is a row here.
 */
#ifndef AGENTD_CMD_H
#define AGENTD_CMD_H

#include <jansson.h>
#include <stddef.h>

enum cmd_id {
	CMD_STATUS,
	CMD_LIST,
	CMD_PAUSE,
	CMD_RESUME,
	CMD_RESTART,
	CMD_RUN,
	CMD_RELOAD,
	CMD_EVENTS,
	CMD_MEMORY,
	CMD_TASKS,
	CMD_STOP,
	CMD_CREATE,
	CMD_UPDATE,
	CMD_DELETE,
	CMD_EXPORT,
	CMD__COUNT
};

/* What a command does with the request's agent. */
enum cmd_agent {
	CA_NONE,      /* takes none */
	CA_ONE,       /* needs one, and one that is configured */
	CA_MAYBE,     /* one or none; when given, a configured one */
	CA_FILTER,    /* one or none, any name: a removed agent's events stay in the log */
};

struct cmd_arg {
	const char *name;
	json_type type;           /* JSON_TRUE stands for either boolean */
	json_int_t min, max;      /* integers */
	size_t size_max;          /* strings: bytes; objects: compact JSON bytes */
};

struct cmd_def {
	const char *name;
	enum cmd_agent agent;
	const struct cmd_arg *args;   /* ends with a row whose name is NULL */
};

extern const struct cmd_def cmd_defs[CMD__COUNT];

/* The command of that name, or -1. */
int cmd_lookup(const char *name);
/* The row of def's arg of that name, or NULL when it takes none so named. */
const struct cmd_arg *cmd_arg(const struct cmd_def *def, const char *name);
/* args (an object, or NULL for none) against def's rows: 0, or -1 with
 * the reason in err and *bad the row it broke. */
int cmd_check_args(const struct cmd_def *def, const json_t *args, const struct cmd_arg **bad,
    char *err, size_t errlen);

#endif
