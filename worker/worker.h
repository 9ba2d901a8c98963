/*
 * worker: agentd-worker's side of the pipe protocol (proto/msg.h).
 *
 *   agentd                         worker
 *   config {name, agent, ...}  ->
 *                              <-  ready {tools, pid}
 *   run {run_id, kwargs, ...}  ->
 *                              <-  run_ack {run_id}
 *                              <-  event {tool_call_*}, mem_store ...
 *                              <-  result {run_id, ok, ...}
 *   cancel {run_id}            ->  (the run stops; result cancelled:true)
 *   shutdown                   ->  (exit 0)
 *
 * One thread.  While a run executes, the worker still reads its pipe at
 * the points where a run can stop (between files of a long scan, while
 * waiting for a memory reply, inside tools that wait): a cancel is
 * honoured there, a shutdown ends the process at once.
 *
 * A run's task is the agent's task_config with the run's kwargs over it.
 * With task_config.tool set, that built-in tool runs directly with the
 * task's other keys (and its `args` object over them) as arguments.
 * Otherwise the task goes to the model loop, worker_run_model(), which the
 * model runtime provides (worker/provider*.c); this build's default
 * answers that there is no model runtime.
 *
 * Which built-in tools an agent may use: all of them when its spec has no
 * `local_tools`; only the ones it lists when it has (items are names, or
 * maps with a `name`).  The failure-injection tools of test_hooks.h join
 * the built-ins only when the agent's environment enables them.
 *
 * Exit codes: 0 shutdown, or agentd gone (EOF) once configured; 2 bad
 * start (no config: another message first, or EOF before it; or a config
 * that is not usable); 3 a frame from agentd that does not decode, or a
 * message agentd does not send at that point.
 */
#ifndef AGENTD_WORKER_H
#define AGENTD_WORKER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WORKER_EXIT_OK 0
#define WORKER_EXIT_STARTUP 2
#define WORKER_EXIT_PROTOCOL 3

#define WORKER_EVENT_OUTPUT_MAX 4096       /* tool output in tool_call_result */
#define WORKER_MEMORY_CONTENT_MAX 8192     /* mem_store content of a run */

struct worker;

/* The whole life of a worker on fd: config, ready, runs until shutdown or
 * EOF.  Returns the exit code.  name is the agent name from argv; the
 * config must carry the same one. */
int worker_serve(int fd, const char *name);

/* The same, in steps, for callers that need the worker in between (the
 * model runtime's tests).  worker_start waits for the config and sends
 * ready: 0, or the exit code (> 0) to leave with. */
struct worker *worker_new(int fd, const char *name);
int worker_start(struct worker *w);
int worker_loop(struct worker *w);
void worker_free(struct worker *w);

/* main() calls this once setproctitle_init() has run: the worker then
 * shows "agentd-worker: NAME idle|running" in ps. */
void worker_use_proctitle(void);

/* ---- for the model runtime ------------------------------------------------ */

struct worker_run {
	int64_t run_id;
	int attempt;
	const char *session_id;
	int64_t run_count;
	const json_t *task;         /* task_config with kwargs over it */
};

struct run_outcome {
	json_t *result;             /* success: the run's result (owned) */
	json_t *usage;              /* optional token usage object (owned) */
	char error[1024];           /* failure: why */
	bool retryable;             /* failure: worth another attempt */
	int64_t retry_after_ms;     /* failure: server's Retry-After, or -1 */
};

/*
 * The model loop: run one task with the agent's model and tools.  0 and
 * out->result on success; -1 and out->error (retryable, retry_after_ms)
 * on failure.  It should check worker_cancelled() between steps and return
 * -1 when it is true; the worker then reports the cancel itself.  It
 * stores what it wants remembered with worker_mem_store().
 *
 * worker.c holds a weak default that fails with "no model runtime in this
 * build".  The runtime's definition replaces it when its object file is
 * linked into agentd-worker (libworker.a members are linked only when a
 * symbol from them is needed: either delete the default, or have main.c
 * reference the runtime).
 */
int worker_run_model(struct worker *w, const struct worker_run *run,
    struct run_outcome *out);

const char *worker_name(const struct worker *w);
const json_t *worker_spec(const struct worker *w);      /* the agent spec */
const json_t *worker_secrets(const struct worker *w);   /* never log these */
/* Why agentd could not give this worker the model key it needs, or NULL. */
const char *worker_api_key_error(const struct worker *w);
/* The worker's redaction set (common/redact.h), for text it cuts before
 * it leaves (a provider's error message). */
const struct redact *worker_redact(const struct worker *w);
const char *worker_state_dir(const struct worker *w);

/* Reads agentd's pending messages; true when the current run must stop
 * (cancelled, or the worker is shutting down). */
bool worker_cancelled(struct worker *w);

/* May this agent use this tool (built-in or test tool)? */
bool worker_tool_allowed(const struct worker *w, const char *name);

/*
 * Run a built-in tool for the current run, with the tool_call_started /
 * tool_call_result / tool_call_error events.  0 and *out, or -1 and err
 * ("<tool>: <reason>"); *retryable (may be NULL) tells whether the failure
 * is transient.
 */
int worker_call_tool(struct worker *w, const char *name, const json_t *args,
    json_t **out, char *err, size_t errlen, bool *retryable);

/* While staged is set (an object, borrowed), the state tools save for the
 * next run (new_files' watermark) goes into it instead of the worker's
 * directory; tool_state_commit() writes it.  For a change-gated run's
 * watch tools, whose state must move only with a run that succeeds.
 * NULL: tools save to the directory again. */
void worker_stage_state(struct worker *w, json_t *staged);

/* The agent's MCP tools for the model ([{name, description, input_schema}]),
 * after connecting the servers that are due. */
json_t *worker_mcp_tools(struct worker *w);

/* An event for the current run (payload is consumed).  0, or -1 when it
 * could not be sent. */
int worker_emit(struct worker *w, const char *type, json_t *payload);

/* Store one memory item; metadata may be NULL (it is not consumed). */
int worker_mem_store(struct worker *w, const char *memory_type,
    const char *role, const char *content, const json_t *metadata);

/*
 * Ask agentd for the latest `limit` items of a memory type (query: a
 * semantic query, or NULL).  Waits for the reply while still honouring a
 * cancel.  0 and *items (an array, owned), or -1 and err.
 */
int worker_mem_query(struct worker *w, const char *memory_type, int limit,
    const char *query, json_t **items, char *err, size_t errlen);

/*
 * Ask agentd to recall (query_both_memory_types, proto/msg.h): the items of
 * this agent's memory most related to query, of the types listed (NULL:
 * episodic and long_term), at most limit.  Waits as worker_mem_query does.
 * {"hits": [...], "degraded": bool[, "reason"]} (owned), or NULL and err.
 */
json_t *worker_mem_recall(struct worker *w, const char *query, int limit, const json_t *types,
    char *err, size_t errlen);

#endif
