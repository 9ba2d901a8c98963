/*
 * test_hooks: see test_hooks.h.  Each tool does one thing the tests need a
 * worker to do, in the most direct way (raise, busy loop, touch memory,
 * write bytes), so a test failure points at agentd, not at the hook.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "common/buf.h"
#include "common/util.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "worker/test_hooks.h"

const char *const test_hook_tools[] = {
	"test_sleep", "test_spin", "test_crash", "test_alloc", "test_fail",
	"test_garbage", "test_oversize", "test_exit", "test_emit", "test_mem_forge",
	"test_value", "test_mem_query", "test_send", NULL,
};

bool
test_hooks_enabled(void)
{
	const char *v = getenv("AGENTD_TEST_HOOKS");
	return v && strcmp(v, "1") == 0;
}

static int
signal_number(const char *name)
{
	if (name == NULL)
		return SIGSEGV;
	if (strncmp(name, "SIG", 3) == 0)
		name += 3;
	for (int s = 1; s < NSIG; s++) {
		const char *abbrev = sigabbrev_np(s);
		if (abbrev && strcmp(abbrev, name) == 0)
			return s;
	}
	return atoi(name) > 0 ? atoi(name) : SIGSEGV;
}

static void
die_by(int sig)
{
	signal(sig, SIG_DFL);
	raise(sig);
	_exit(128 + sig);	/* a signal that was blocked or ignored */
}

void
test_hooks_at_start(void)
{
	const char *sig = getenv("AGENTD_TEST_CRASH_AT_START");
	if (test_hooks_enabled() && sig && *sig)
		die_by(signal_number(sig));
}

bool
test_hook_is_tool(const char *name)
{
	if (!test_hooks_enabled())
		return false;
	for (int i = 0; test_hook_tools[i]; i++)
		if (strcmp(name, test_hook_tools[i]) == 0)
			return true;
	return false;
}

static double
num_arg(const json_t *args, const char *key, double dflt)
{
	json_t *v = json_object_get(args, key);
	return json_is_number(v) ? json_number_value(v) : dflt;
}

/* Sleeps, but a message from agentd (a cancel) interrupts it. */
static int
hook_sleep(const json_t *args, int fd, json_t **out, char *err, size_t errlen)
{
	int64_t end = mono_ms() + (int64_t)(num_arg(args, "seconds", 1) * 1000);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	for (;;) {
		int64_t left = end - mono_ms();
		if (left <= 0)
			break;
		int n = poll(&p, 1, (int)left);
		if (n > 0) {
			snprintf(err, errlen, "interrupted by a message from agentd");
			return -1;
		}
	}
	*out = json_pack("{s:f}", "slept_s", num_arg(args, "seconds", 1));
	return 0;
}

static int
hook_spin(const json_t *args, json_t **out)
{
	double secs = num_arg(args, "seconds", 0);
	int64_t end = secs > 0 ? mono_ms() + (int64_t)(secs * 1000) : INT64_MAX;
	volatile uint64_t x = 0;
	while (mono_ms() < end)
		for (int i = 0; i < 100000; i++)
			x += (uint64_t)i;
	*out = json_pack("{s:f}", "spun_s", secs);
	return 0;
}

static int
hook_alloc(const json_t *args, json_t **out, char *err, size_t errlen)
{
	size_t bytes = (size_t)num_arg(args, "bytes", 1 << 20);
	char *p = malloc(bytes);
	if (p == NULL) {
		snprintf(err, errlen, "cannot allocate %zu bytes: %s", bytes, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < bytes; i += 4096)
		p[i] = (char)i;
	*out = json_pack("{s:I}", "allocated", (json_int_t)bytes);
	free(p);
	return 0;
}

static int
hook_garbage(int fd, bool oversize, json_t **out)
{
	uint8_t junk[64];
	if (oversize) {
		const uint8_t hdr[4] = { 0x40, 0x00, 0x00, 0x00 };	/* 1 GiB */
		(void)write_all(fd, hdr, sizeof(hdr));
	} else {
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (uint8_t)(rand_unit() * 256);
		junk[0] = 0; junk[1] = 0; junk[2] = 0; junk[3] = 60;	/* a frame of junk */
		(void)write_all(fd, junk, sizeof(junk));
	}
	*out = json_object();
	return 0;
}

/* `count` tool_call_bench events, each stamped with the wall clock (µs)
 * it was made at: the relay benchmark's load.  As fast as the pipe takes
 * them, written 64 KiB at a time so the load generator costs the box little
 * next to what it measures; or `rate` a second, written as they are due. */
static int
hook_emit(int fd, long count, double rate, json_t **out)
{
	struct buf b;
	int rc = 0;
	int64_t start = mono_us();
	buf_init(&b);
	for (long i = 0; i < count && rc == 0; i++) {
		int64_t due = rate > 0 ? start + (int64_t)((double)i * 1e6 / rate) : 0;
		if (due > mono_us()) {	/* ahead: send what is made, then wait */
			if (buf_pending(&b))
				rc = write_all(fd, buf_head(&b), buf_pending(&b));
			buf_reset(&b);
			int64_t wait = due - mono_us();
			if (wait > 0)
				usleep((useconds_t)wait);
		}
		json_t *m = json_pack("{s:s, s:{s:I, s:I}}", "type", "tool_call_bench",
		    "payload", "i", (json_int_t)i, "emit_us", (json_int_t)(wall_ms() * 1000));
		rc = msg_pack(MSG_EVENT, m, &b);
		json_decref(m);
		if (rc == 0 && (buf_pending(&b) >= 65536 || i == count - 1)) {
			rc = write_all(fd, buf_head(&b), buf_pending(&b));
			buf_reset(&b);
		}
	}
	buf_free(&b);
	if (rc < 0)
		return -1;
	*out = json_pack("{s:I}", "emitted", (json_int_t)count);
	return 0;
}

/* Message m (taken) to agentd, past the worker's own sender; -1 with err. */
static int
send_forged(int fd, enum msg_type t, json_t *m, char *err, size_t errlen)
{
	struct buf b;
	buf_init(&b);
	int rc = m ? msg_pack(t, m, &b) : -1;
	json_decref(m);
	if (rc == 0)
		rc = write_all(fd, buf_head(&b), buf_pending(&b));
	buf_free(&b);
	if (rc < 0)
		snprintf(err, errlen, "cannot send a forged %s", msg_type_name(t));
	return rc;
}

/* A memory write that names another agent every way it could: agentd must
 * file it under this worker's agent all the same. */
static int
hook_mem_forge(int fd, const json_t *args, json_t **out, char *err, size_t errlen)
{
	const char *victim = json_string_value(json_object_get(args, "agent"));
	const char *content = json_string_value(json_object_get(args, "content"));
	json_t *m = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s}}", "memory_type", "episodic",
	    "role", "user", "content", content ? content : "forged", "agent_id", victim ? victim : "",
	    "agent", victim ? victim : "", "agent_name", victim ? victim : "",
	    "metadata", "agent_id", victim ? victim : "");
	if (send_forged(fd, MSG_MEM_STORE, m, err, errlen) < 0)
		return -1;
	*out = json_object();
	return 0;
}

/* Any message agentd could be sent: type (a catalogue name) and its fields,
 * whatever the worker may or may not say. */
static int
hook_send(int fd, const json_t *args, json_t **out, char *err, size_t errlen)
{
	const char *name = json_string_value(json_object_get(args, "type"));
	json_t *fields = json_object_get(args, "fields");
	int t = msg_type_lookup(name);
	if (t < 0) {
		snprintf(err, errlen, "test_send: no message type \"%s\"", name ? name : "");
		return -1;
	}
	if (send_forged(fd, (enum msg_type)t, json_is_object(fields) ? json_incref(fields) :
	    json_object(), err, errlen) < 0)
		return -1;
	*out = json_object();
	return 0;
}

/* The next message from agentd (up to 10 s), as the worker's own reader
 * would take it; -1 with err on EOF, silence or bytes that do not decode. */
static int
next_msg(int fd, enum msg_type *t, json_t **m, char *err, size_t errlen)
{
	struct frame_reader rd;
	const uint8_t *p;
	size_t len;
	const char *why = NULL;
	int rc;

	frame_reader_init(&rd, FRAME_MAX_DEFAULT);
	while ((rc = frame_reader_next(&rd, &p, &len, &why)) == 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, 10000) <= 0 || frame_reader_fill(&rd, fd) <= 0) {
			why = "no reply from agentd";
			break;
		}
	}
	if (rc == 1)
		rc = msg_unpack(p, len, t, m, err, errlen);
	else {
		snprintf(err, errlen, "test_mem_query: %s", why ? why : "read failed");
		rc = -1;
	}
	frame_reader_free(&rd);
	return rc;
}

/* A memory query that names another agent every way a message could: agentd
 * must answer from this worker's agent's memory all the same.  With
 * `recall`, a mem_recall for `query` (default: the other agent's name).
 * The result is what came back. */
static int
hook_mem_query(int fd, const json_t *args, json_t **out, char *err, size_t errlen)
{
	const char *victim = json_string_value(json_object_get(args, "agent"));
	const char *type = json_string_value(json_object_get(args, "memory_type"));
	const char *query = json_string_value(json_object_get(args, "query"));
	bool recall = json_is_true(json_object_get(args, "recall"));
	const json_int_t req = 1000000007;	/* not one the worker's own queries reach */
	enum msg_type t;
	json_t *m;

	victim = victim ? victim : "";
	m = json_pack("{s:I, s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:{s:s}}", "req_id", req,
	    "memory_type", type ? type : "episodic", "limit", recall ? 50 : 100, "query",
	    query ? query : victim, "agent_id", victim, "agent", victim, "agent_name", victim,
	    "namespace", victim, "metadata", "agent_id", victim);
	if (recall)
		json_object_set_new(m, "memory_types", json_pack("[s,s,s,s]", "working", "episodic",
		    "long_term", "procedural"));
	if (send_forged(fd, recall ? MSG_MEM_RECALL : MSG_MEM_QUERY, m, err, errlen) < 0 ||
	    next_msg(fd, &t, &m, err, errlen) < 0)
		return -1;
	if (t != MSG_MEM_REPLY || json_integer_value(json_object_get(m, "req_id")) != req) {
		snprintf(err, errlen, "test_mem_query: agentd sent a %s instead of the reply",
		    msg_type_name(t));
		json_decref(m);
		return -1;
	}
	*out = json_pack("{s:O}", "items", json_object_get(m, "items"));
	if (json_object_get(m, "error"))
		json_object_set(*out, "error", json_object_get(m, "error"));
	json_decref(m);
	return 0;
}

/* A value `depth` lists deep around a string of `bytes`: the tool's output,
 * or with `send` (event, mem_store, result with `run_id`) written straight
 * onto the pipe, past the worker's own bounds, as a broken worker would. */
static int
hook_value(int fd, const json_t *args, json_t **out, char *err, size_t errlen)
{
	size_t bytes = (size_t)num_arg(args, "bytes", 1);
	const char *send = json_string_value(json_object_get(args, "send"));
	char *pad = xmalloc(bytes + 1);
	memset(pad, 'x', bytes);
	pad[bytes] = '\0';
	json_t *v = json_string(pad), *m = NULL;
	for (int i = 0; i < (int)num_arg(args, "depth", 0); i++)
		v = json_pack("[o]", v);
	if (send == NULL) {
		free(pad);
		*out = v;
		return 0;
	}
	if (strcmp(send, "event") == 0)
		m = json_pack("{s:s, s:{s:o}}", "type", "tool_call_probe", "payload", "v", v);
	else if (strcmp(send, "mem_store") == 0)
		m = json_pack("{s:s, s:s, s:s, s:{s:o}}", "memory_type", "episodic", "role", "user",
		    "content", pad, "metadata", "v", v);
	else
		m = json_pack("{s:I, s:b, s:o}", "run_id", (json_int_t)num_arg(args, "run_id", 1),
		    "ok", 1, "result", v);
	free(pad);
	enum msg_type t = strcmp(send, "event") == 0 ? MSG_EVENT :
	    strcmp(send, "mem_store") == 0 ? MSG_MEM_STORE : MSG_RESULT;
	if (send_forged(fd, t, m, err, errlen) < 0)
		return -1;
	*out = json_object();
	return 0;
}

int
test_hook_run(const char *name, const json_t *args, int fd, json_t **out,
    char *err, size_t errlen, bool *retryable)
{
	*retryable = false;
	if (strcmp(name, "test_sleep") == 0)
		return hook_sleep(args, fd, out, err, errlen);
	if (strcmp(name, "test_spin") == 0)
		return hook_spin(args, out);
	if (strcmp(name, "test_crash") == 0)
		die_by(signal_number(json_string_value(json_object_get(args, "signal"))));
	if (strcmp(name, "test_alloc") == 0)
		return hook_alloc(args, out, err, errlen);
	if (strcmp(name, "test_fail") == 0) {
		const char *m = json_string_value(json_object_get(args, "message"));
		*retryable = json_is_true(json_object_get(args, "retryable"));
		snprintf(err, errlen, "%s", m ? m : "test_fail");
		return -1;
	}
	if (strcmp(name, "test_garbage") == 0)
		return hook_garbage(fd, false, out);
	if (strcmp(name, "test_oversize") == 0)
		return hook_garbage(fd, true, out);
	if (strcmp(name, "test_exit") == 0)
		_exit((int)num_arg(args, "code", 1));
	if (strcmp(name, "test_emit") == 0)
		return hook_emit(fd, (long)num_arg(args, "count", 1000), num_arg(args, "rate", 0), out);
	if (strcmp(name, "test_mem_forge") == 0)
		return hook_mem_forge(fd, args, out, err, errlen);
	if (strcmp(name, "test_value") == 0)
		return hook_value(fd, args, out, err, errlen);
	if (strcmp(name, "test_mem_query") == 0)
		return hook_mem_query(fd, args, out, err, errlen);
	if (strcmp(name, "test_send") == 0)
		return hook_send(fd, args, out, err, errlen);
	snprintf(err, errlen, "unknown test tool %s", name);
	return -1;
}
