/*
 * test_hooks: failure injection for the integration tests, compiled into
 * every worker but inert unless the agent's own environment sets
 * AGENTD_TEST_HOOKS=1 (agentd passes a worker only its agent's `env:`, so
 * no other agent can turn them on).  They make a real worker fail in real
 * ways -- crash, spin, exhaust memory, corrupt its pipe -- so agentd's
 * handling is tested against the real thing.
 */
#ifndef AGENTD_TEST_HOOKS_H
#define AGENTD_TEST_HOOKS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

bool test_hooks_enabled(void);

/* AGENTD_TEST_CRASH_AT_START=SEGV (or ABRT, KILL, ...): raise it now. */
void test_hooks_at_start(void);

/* Is `name` one of the test tools (and are hooks enabled)? */
bool test_hook_is_tool(const char *name);

/*
 * Run test tool `name` with args.  fd is the worker's pipe to agentd (the
 * sleeping tool watches it so a cancel interrupts it; the garbage tools
 * write to it).  Returns 0 with *out on success, -1 with err and
 * *retryable on failure.
 */
int test_hook_run(const char *name, const json_t *args, int fd, json_t **out,
    char *err, size_t errlen, bool *retryable);

/* Names of the test tools, for `ready`'s tool list (NULL-terminated). */
extern const char *const test_hook_tools[];

#endif
