/*
 * tools: the worker's built-in tools.
 *
 * A tool is a name, a description, the JSON Schema of its arguments (a
 * JSON text, so it can be handed to a model unchanged) and a run function.
 * Today a task runs one tool directly (task_config.tool); when the model
 * runtime lands the same registry is what the model is offered, so the
 * schemas are real and every run function validates its own arguments
 * (a model's arguments are no more trusted than a config file).
 *
 * Arguments are a JSON object; keys a tool does not know are ignored,
 * because a task's arguments are its whole task_config (query, ...) with
 * the tool's own keys among them.
 *
 * The context gives a tool a place for state that survives the worker
 * (its state directory, written through tool_state_save, which holds it
 * back while the caller stages state: a change-gated run's watch tools
 * move their watermarks only with a successful run) and a way to notice
 * that the run was cancelled:
 * a tool that may take long calls tool_interrupted() every so often and,
 * when it returns true, stops and fails with "cancelled".
 */
#ifndef AGENTD_TOOLS_H
#define AGENTD_TOOLS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"

/* remember and recall reach agentd's memory through the worker running
 * them (arg: the tool_ctx's); NULL where there is none (they fail, saying
 * so).  store: 0, or -1 when it could not be sent.  recall: the answer of
 * worker_mem_recall (worker.h), or NULL with err. */
struct tool_memory {
	int (*store)(void *arg, const char *memory_type, const char *content,
	    const json_t *metadata);
	json_t *(*recall)(void *arg, const char *query, int limit, const json_t *types,
	    char *err, size_t errlen);
};

struct tool_ctx {
	const char *state_dir;          /* the worker's own directory */
	/* Nonzero when the run must stop now (cancel, shutdown).  May read
	 * messages from agentd; NULL means "never interrupted". */
	bool (*interrupted)(void *arg);
	void *arg;
	const json_t *spec;             /* the agent spec (read_file's read_dirs) */
	int64_t deadline;               /* mono ms the call must end by; 0: none */
	json_t *staged;                 /* set: state saved goes here, not to disk */
	const struct tool_memory *memory;
};

/* Save a tool's state file (name, inside ctx->state_dir) atomically, or
 * put it in ctx->staged ({name: text}) when that is set.  0, or -1 with
 * errno. */
int tool_state_save(const struct tool_ctx *ctx, const char *name, const char *text);
/* Write what was staged into state_dir.  0, or -1 with errno. */
int tool_state_commit(const char *state_dir, const json_t *staged);

/* True when the tool must stop: the run was cancelled, or the call's
 * deadline (agent_config.tool_call_timeout) has passed. */
static inline bool
tool_interrupted(const struct tool_ctx *ctx)
{
	if (ctx && ctx->deadline > 0 && mono_ms() >= ctx->deadline)
		return true;
	return ctx && ctx->interrupted && ctx->interrupted(ctx->arg);
}

/*
 * Run a tool: 0 and *out (a new JSON object) on success; -1 and a reason
 * in err (without the tool's name: the caller adds it) on failure.
 */
typedef int (*tool_fn)(const struct tool_ctx *ctx, const json_t *args,
    json_t **out, char *err, size_t errlen);

struct tool {
	const char *name;
	const char *description;
	const char *input_schema;       /* JSON Schema (draft 2020-12 subset) */
	tool_fn run;
};

/* The registry, NULL-name terminated. */
extern const struct tool builtin_tools[];

/* NULL when there is no built-in tool of that name. */
const struct tool *tool_find(const char *name);

/* The tools themselves (tool_system_info.c, tool_new_files.c). */
int tool_system_info(const struct tool_ctx *ctx, const json_t *args,
    json_t **out, char *err, size_t errlen);
int tool_new_files(const struct tool_ctx *ctx, const json_t *args,
    json_t **out, char *err, size_t errlen);
int tool_read_file(const struct tool_ctx *ctx, const json_t *args,
    json_t **out, char *err, size_t errlen);
int tool_remember(const struct tool_ctx *ctx, const json_t *args,
    json_t **out, char *err, size_t errlen);
int tool_recall(const struct tool_ctx *ctx, const json_t *args,
    json_t **out, char *err, size_t errlen);
extern const char tool_remember_schema[], tool_recall_schema[];

/* The file new_files keeps its watermark in, inside ctx->state_dir. */
#define NEW_FILES_STATE "new_files.state"

/*
 * Helpers shared by the tools and the worker.
 *
 * json_string_lossy: a JSON string from arbitrary bytes (file names are not
 * always UTF-8); invalid sequences become U+FFFD.  json_stringn_lossy: the
 * same for n bytes, NULs included (a NUL ends nothing).
 * (utf8_cut, for cutting text on a character, is common/util.h's.)
 */
json_t *json_string_lossy(const char *s);
json_t *json_stringn_lossy(const char *s, size_t n);

#endif
