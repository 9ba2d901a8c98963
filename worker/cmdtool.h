/*
 * cmdtool: tools declared in YAML under local_tools that run a program.
 *
 *   local_tools:
 *     - name: disk_usage
 *       description: "Disk usage of a directory"
 *       inputSchema: {type: object, properties: {path: {type: string}},
 *                     required: [path], additionalProperties: false}
 *       command: ["/usr/bin/du", "-sh", "--", "{path}"]
 *       timeout: 10s          # default: agent_config.tool_call_timeout, else 30s
 *       output_max: 65536     # bytes kept of stdout+stderr
 *       cwd: /srv             # default: the worker's own directory
 *       env: [LANG]           # variables passed on from the worker
 *
 * The entry reaches the worker normalized by the loader (conf/config.h:
 * timeout_ms, output_max in bytes, the schema checked).  No shell, ever:
 * each template element becomes exactly one argv element, with {param}
 * replaced by the argument's value, so "; rm -rf /", "$(id)", backticks,
 * newlines and "--flag" arrive as literal text.  Arguments are checked
 * against inputSchema (every keyword conf/argschema.h enforces: types,
 * enum, pattern, lengths, bounds, required, additionalProperties, items)
 * before anything runs.
 *
 * The command runs in a process group of its own; the call is over when the
 * command itself exits (what it left running in the background is killed
 * then, and what it printed is its output) or at its timeout (everything
 * it started is killed, and the error tells what it had printed).  The
 * output is {output, exit_code, truncated, dropped_bytes}: what it printed
 * and nothing else, so two runs printing the same give the same output.
 */
#ifndef AGENTD_CMDTOOL_H
#define AGENTD_CMDTOOL_H

#include <jansson.h>
#include "worker/tools.h"

/* The command tool `name` in the agent's local_tools, or NULL. */
const json_t *cmdtool_find(const json_t *spec, const char *name);
/* Calls fn(def) for every command tool of the agent. */
void cmdtool_each(const json_t *spec, void (*fn)(const json_t *def, void *arg), void *arg);
int cmdtool_run(const json_t *def, const struct tool_ctx *ctx, const json_t *args,
    json_t **out, char *err, size_t errlen);

#endif
