/*
 * The worker's protocol, end to end but in-process: each test forks a
 * child that runs worker_serve() on one end of a socketpair and plays
 * agentd on the other with the real codec (msg_pack, frame_reader), so
 * what is checked is what agentd would see: the order of messages, their
 * fields, and how the worker exits.  The child's stderr goes to a file in
 * the test's temp dir (for the test that looks for leaked secrets).
 */
#include <check.h>
#include "tests/unit/check_main.h"
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "worker/tools.h"
#include "worker/worker.h"

#define TIMEOUT_MS 10000

struct peer {
	int fd;
	pid_t pid;
	struct frame_reader rd;
	char dir[64];
	char log[96];
};

static struct peer P;

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void
setup(void)
{
	memset(&P, 0, sizeof(P));
	P.fd = -1;
	snprintf(P.dir, sizeof(P.dir), "/tmp/test_worker_proto.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(P.dir));
	snprintf(P.log, sizeof(P.log), "%s/worker.log", P.dir);
	frame_reader_init(&P.rd, FRAME_MAX_DEFAULT);
}

static void
teardown(void)
{
	if (P.pid > 0) {
		kill(P.pid, SIGKILL);
		waitpid(P.pid, NULL, 0);
	}
	if (P.fd >= 0)
		close(P.fd);
	frame_reader_free(&P.rd);
	nftw(P.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

typedef int (*child_fn)(int fd);

static int
serve_alpha(int fd)
{
	return worker_serve(fd, "alpha");
}

/* Fork the worker; hooks: enable the test tools in its environment. */
static void
start_with(child_fn fn, bool hooks)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	P.pid = fork();
	ck_assert_int_ge(P.pid, 0);
	if (P.pid == 0) {
		close(sv[0]);
		if (chdir(P.dir) < 0)	/* as agentd starts it: in its own directory */
			_exit(2);
		int lf = open(P.log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (lf >= 0)
			dup2(lf, 2);
		if (hooks)
			setenv("AGENTD_TEST_HOOKS", "1", 1);
		else
			unsetenv("AGENTD_TEST_HOOKS");
		log_init("agentd-worker", LL_INFO, 0, NULL);
		_exit(fn(sv[1]));
	}
	close(sv[1]);
	P.fd = sv[0];
}

static void
start(bool hooks)
{
	start_with(serve_alpha, hooks);
}

static void
send_raw(const void *p, size_t n)
{
	ck_assert_int_eq(write_all(P.fd, p, n), 0);
}

/* Send a message; fields (may be NULL) are consumed. */
static void
send_msg(enum msg_type t, json_t *fields)
{
	struct buf b;
	buf_init(&b);
	ck_assert_int_eq(msg_pack(t, fields, &b), 0);
	send_raw(buf_head(&b), buf_pending(&b));
	buf_free(&b);
	json_decref(fields);
}

/* Next message within timeout_ms; NULL at EOF or timeout. */
static json_t *
recv_msg(enum msg_type *t, int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	for (;;) {
		const uint8_t *p;
		size_t len;
		const char *ferr;
		char err[256];
		json_t *m;
		int rc = frame_reader_next(&P.rd, &p, &len, &ferr);
		ck_assert_msg(rc >= 0, "bad frame from the worker: %s", ferr);
		if (rc == 1) {
			ck_assert_msg(msg_unpack(p, len, t, &m, err, sizeof(err)) == 0,
			    "bad message from the worker: %s", err);
			return m;
		}
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			return NULL;
		struct pollfd pfd = { .fd = P.fd, .events = POLLIN };
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		ssize_t n = frame_reader_fill(&P.rd, P.fd);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return NULL;
	}
}

static json_t *
expect(enum msg_type want)
{
	enum msg_type t;
	json_t *m = recv_msg(&t, TIMEOUT_MS);
	ck_assert_msg(m != NULL, "no %s from the worker", msg_type_name(want));
	ck_assert_msg(t == want, "expected %s, got %s", msg_type_name(want),
	    msg_type_name(t));
	return m;
}

/* Expect an event of this type; returns its payload (a new reference). */
static json_t *
expect_event(const char *type, int64_t run_id)
{
	json_t *m = expect(MSG_EVENT);
	ck_assert_str_eq(json_string_value(json_object_get(m, "type")), type);
	ck_assert_int_eq(json_integer_value(json_object_get(m, "run_id")), run_id);
	json_t *p = json_incref(json_object_get(m, "payload"));
	json_decref(m);
	return p;
}

/* Nothing arrives for ms (the worker is quiet, and alive). */
static void
expect_silence(int ms)
{
	enum msg_type t;
	json_t *m = recv_msg(&t, ms);
	ck_assert_msg(m == NULL, "unexpected %s from the worker", msg_type_name(t));
	ck_assert_int_eq(waitpid(P.pid, NULL, WNOHANG), 0);
}

/* The worker's exit code; fails when it does not exit in time. */
static int
wait_exit(void)
{
	int64_t deadline = mono_ms() + TIMEOUT_MS;
	int status;
	for (;;) {
		pid_t r = waitpid(P.pid, &status, WNOHANG);
		if (r == P.pid)
			break;
		ck_assert_msg(mono_ms() < deadline, "worker did not exit");
		usleep(5000);
	}
	P.pid = 0;
	ck_assert_msg(WIFEXITED(status), "worker died by signal %d", WTERMSIG(status));
	return WEXITSTATUS(status);
}

/* config {name, agent: spec, secrets, state_dir} and the ready reply;
 * returns ready's tool list (new reference).  spec is consumed. */
static json_t *
configure(json_t *spec, json_t *secrets)
{
	json_t *c = json_pack("{s:s, s:o, s:s}", "name", "alpha", "agent", spec,
	    "state_dir", P.dir);
	if (secrets)
		json_object_set_new(c, "secrets", secrets);
	send_msg(MSG_CONFIG, c);
	json_t *r = expect(MSG_READY);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "pid")), P.pid);
	json_t *tools = json_incref(json_object_get(r, "tools"));
	json_decref(r);
	return tools;
}

static void
send_run(int64_t run_id, json_t *kwargs)
{
	send_msg(MSG_RUN, json_pack("{s:I, s:i, s:s, s:I, s:o}", "run_id",
	    (json_int_t)run_id, "attempt", 1, "session_id", "background_alpha_1",
	    "run_count", (json_int_t)run_id, "kwargs", kwargs ? kwargs : json_object()));
	json_t *ack = expect(MSG_RUN_ACK);
	ck_assert_int_eq(json_integer_value(json_object_get(ack, "run_id")), run_id);
	json_decref(ack);
}

static json_t *
expect_result(int64_t run_id, bool ok)
{
	json_t *r = expect(MSG_RESULT);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "run_id")), run_id);
	ck_assert_msg(json_is_true(json_object_get(r, "ok")) == ok,
	    "result ok=%d, error: %s", !ok,
	    json_string_value(json_object_get(r, "error")));
	return r;
}

static const char *
str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	ck_assert_msg(s != NULL, "%s is not a string", k);
	return s;
}

static bool
list_has(const json_t *a, const char *name)
{
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v)
		if (strcmp(json_string_value(v), name) == 0)
			return true;
	return false;
}

/* ---- tests ---------------------------------------------------------------- */

START_TEST(test_tool_run)
{
	start(false);
	json_t *tools = configure(json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:i}}}",
	    "name", "alpha", "agent_id", "alpha", "task_config", "query",
	    "Check CPU, memory, and disk usage", "tool", "system_info",
	    "thresholds", "cpu_usage", 100), NULL);
	ck_assert_uint_eq(json_array_size(tools), 5);
	ck_assert(list_has(tools, "system_info") && list_has(tools, "new_files") &&
	    list_has(tools, "read_file") && list_has(tools, "remember") &&
	    list_has(tools, "recall"));
	json_decref(tools);

	/* kwargs reach the tool over task_config */
	char dir[80];
	snprintf(dir, sizeof(dir), "%s", P.dir);
	send_run(1, json_pack("{s:{s:i}, s:s}", "thresholds", "memory_usage", 0,
	    "path", dir));
	json_t *p = expect_event("tool_call_started", 1);
	ck_assert_str_eq(str(p, "tool"), "system_info");
	json_t *args = json_object_get(p, "arguments");
	ck_assert_str_eq(str(args, "path"), dir);
	ck_assert_ptr_null(json_object_get(args, "tool"));
	json_decref(p);
	p = expect_event("tool_call_result", 1);
	ck_assert_str_eq(str(p, "tool"), "system_info");
	ck_assert(json_integer_value(json_object_get(p, "duration_ms")) >= 150);
	json_t *echo = json_loads(str(p, "output"), 0, NULL);	/* whole: < 4096 */
	ck_assert_ptr_nonnull(echo);
	ck_assert_str_eq(str(echo, "status"), "alert");
	json_decref(echo);
	json_decref(p);

	json_t *mem = expect(MSG_MEM_STORE);
	ck_assert_str_eq(str(mem, "memory_type"), "episodic");
	ck_assert_str_eq(str(mem, "role"), "assistant");
	json_t *content = json_loads(str(mem, "content"), 0, NULL);
	ck_assert_ptr_nonnull(content);
	ck_assert(json_is_number(json_object_get(content, "memory_usage")));
	json_decref(content);
	json_t *meta = json_object_get(mem, "metadata");
	ck_assert_int_eq(json_integer_value(json_object_get(meta, "run_id")), 1);
	ck_assert_str_eq(str(meta, "tool"), "system_info");
	json_decref(mem);

	json_t *r = expect_result(1, true);
	json_t *res = json_object_get(r, "result");
	ck_assert_str_eq(str(res, "status"), "alert");
	ck_assert_str_eq(str(res, "path"), dir);
	json_t *alert = json_array_get(json_object_get(res, "alerts"), 0);
	ck_assert_str_eq(str(alert, "metric"), "memory_usage");
	json_decref(r);

	/* the same worker takes the next run */
	send_run(2, NULL);
	json_decref(expect_event("tool_call_started", 2));
	json_decref(expect_event("tool_call_result", 2));
	json_decref(expect(MSG_MEM_STORE));
	r = expect_result(2, true);
	ck_assert_str_eq(str(json_object_get(r, "result"), "path"), "/");
	json_decref(r);

	send_msg(MSG_SHUTDOWN, NULL);
	ck_assert_int_eq(wait_exit(), 0);
}
END_TEST

START_TEST(test_tool_args_and_new_files)
{
	char watched[96];
	snprintf(watched, sizeof(watched), "%s/watched", P.dir);
	start(false);
	ck_assert_int_eq(mkdir(watched, 0700), 0);
	for (int i = 0; i < 200; i++) {	/* enough to need truncated output */
		char f[160];
		snprintf(f, sizeof(f), "%s/file-with-a-long-name-%03d.txt", watched, i);
		ck_assert_int_eq(write_file_atomic(f, "x", 1, 0600), 0);
	}
	/* args override the task's own keys */
	json_decref(configure(json_pack("{s:{s:s, s:[s], s:{s:[s]}}}",
	    "task_config", "tool", "new_files", "directories", "/nonexistent",
	    "args", "directories", watched), NULL));
	send_run(1, NULL);
	json_decref(expect_event("tool_call_started", 1));
	json_t *p = expect_event("tool_call_result", 1);
	const char *out = str(p, "output");
	const char *mark = strstr(out, "...[truncated ");
	ck_assert_ptr_nonnull(mark);
	ck_assert_uint_eq((size_t)(mark - out), WORKER_EVENT_OUTPUT_MAX);
	long dropped = atol(mark + strlen("...[truncated "));
	ck_assert(dropped > 1000);
	ck_assert_str_eq(mark + strcspn(mark, "]"), "]");
	json_decref(p);
	json_t *mem = expect(MSG_MEM_STORE);
	ck_assert_ptr_nonnull(strstr(str(mem, "content"), "...[truncated "));
	ck_assert_uint_le(strlen(str(mem, "content")), WORKER_MEMORY_CONTENT_MAX + 40);
	json_decref(mem);
	json_t *r = expect_result(1, true);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r, "result"),
	    "count")), 200);
	json_decref(r);

	/* the watermark was kept: the second run finds nothing */
	send_run(2, NULL);
	json_decref(expect_event("tool_call_started", 2));
	json_decref(expect_event("tool_call_result", 2));
	json_decref(expect(MSG_MEM_STORE));
	r = expect_result(2, true);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r, "result"),
	    "count")), 0);
	json_decref(r);

	/* a failing tool: a failed run, not retryable, with a tool_call_error */
	send_run(3, json_pack("{s:{s:[s]}}", "args", "directories", "/nonexistent/x"));
	json_decref(expect_event("tool_call_started", 3));
	p = expect_event("tool_call_error", 3);
	ck_assert_str_eq(str(p, "tool"), "new_files");
	ck_assert_ptr_nonnull(strstr(str(p, "error"), "new_files: no directory could be read"));
	json_decref(p);
	r = expect_result(3, false);
	ck_assert_ptr_nonnull(strstr(str(r, "error"), "new_files: no directory could be read"));
	ck_assert(json_is_false(json_object_get(r, "retryable")));
	ck_assert_ptr_null(json_object_get(r, "cancelled"));
	json_decref(r);

	close(P.fd);	/* agentd gone: exit 0 */
	P.fd = -1;
	ck_assert_int_eq(wait_exit(), 0);
}
END_TEST

START_TEST(test_refused_tools)
{
	start(false);
	json_t *tools = configure(json_pack("{s:[s, {s:s}], s:{s:s}}",
	    "local_tools", "new_files", "name", "made_up", "task_config", "tool",
	    "system_info"), NULL);
	ck_assert_uint_eq(json_array_size(tools), 1);
	ck_assert_str_eq(json_string_value(json_array_get(tools, 0)), "new_files");
	json_decref(tools);

	send_run(1, NULL);
	json_t *r = expect_result(1, false);
	ck_assert_str_eq(str(r, "error"), "tool system_info is not enabled for this agent");
	ck_assert(json_is_false(json_object_get(r, "retryable")));
	json_decref(r);

	send_run(2, json_pack("{s:s}", "tool", "made_up"));
	r = expect_result(2, false);
	ck_assert_str_eq(str(r, "error"), "unknown tool made_up");
	json_decref(r);

	/* test tools do not exist unless the agent's environment enables them */
	send_run(3, json_pack("{s:s}", "tool", "test_sleep"));
	r = expect_result(3, false);
	ck_assert_str_eq(str(r, "error"), "unknown tool test_sleep");
	json_decref(r);

	send_run(4, json_pack("{s:i}", "tool", 7));
	r = expect_result(4, false);
	ck_assert_ptr_nonnull(strstr(str(r, "error"), "task_config.tool"));
	json_decref(r);

	send_msg(MSG_SHUTDOWN, NULL);
	ck_assert_int_eq(wait_exit(), 0);
}
END_TEST

/* A task with no tool goes to the model runtime, which refuses a
 * model_config it cannot use, for good (no retry). */
START_TEST(test_no_model_runtime)
{
	start(false);
	json_decref(configure(json_pack("{s:{s:s}, s:{s:s}}", "model_config",
	    "provider", "openai", "task_config", "query", "Check for new files"), NULL));
	send_run(1, NULL);
	json_t *r = expect_result(1, false);
	ck_assert_str_eq(str(r, "error"), "model_config.model is required");
	ck_assert(json_is_false(json_object_get(r, "retryable")));
	json_decref(r);
	send_msg(MSG_SHUTDOWN, NULL);
	ck_assert_int_eq(wait_exit(), 0);
}
END_TEST

START_TEST(test_cancel_running)
{
	start(true);
	json_t *tools = configure(json_pack("{s:{s:s, s:i}}", "task_config",
	    "tool", "test_sleep", "seconds", 30), NULL);
	ck_assert(list_has(tools, "test_sleep") && list_has(tools, "system_info"));
	json_decref(tools);

	send_run(5, NULL);
	json_decref(expect_event("tool_call_started", 5));
	int64_t t0 = mono_ms();
	send_msg(MSG_CANCEL, json_pack("{s:i, s:s}", "run_id", 5, "reason", "test"));
	json_t *p = expect_event("tool_call_error", 5);
	json_decref(p);
	json_t *r = expect_result(5, false);
	ck_assert(json_is_true(json_object_get(r, "cancelled")));
	ck_assert_str_eq(str(r, "error"), "cancelled");
	ck_assert(json_is_false(json_object_get(r, "retryable")));
	ck_assert(mono_ms() - t0 < 5000);
	json_decref(r);

	/* a cancel that arrives with its run: the run never starts */
	struct buf b;
	buf_init(&b);
	json_t *run = json_pack("{s:i, s:i, s:s, s:i, s:{}}", "run_id", 6, "attempt", 1,
	    "session_id", "s", "run_count", 6, "kwargs");
	json_t *cancel = json_pack("{s:i}", "run_id", 6);
	msg_pack(MSG_RUN, run, &b);
	msg_pack(MSG_CANCEL, cancel, &b);
	send_raw(buf_head(&b), buf_pending(&b));
	buf_free(&b);
	json_decref(run);
	json_decref(cancel);
	json_decref(expect(MSG_RUN_ACK));
	r = expect_result(6, false);
	ck_assert(json_is_true(json_object_get(r, "cancelled")));
	json_decref(r);

	/* a test tool's failure keeps its retryable flag */
	send_run(7, json_pack("{s:s, s:s, s:b}", "tool", "test_fail", "message",
	    "flaky", "retryable", 1));
	json_decref(expect_event("tool_call_started", 7));
	json_decref(expect_event("tool_call_error", 7));
	r = expect_result(7, false);
	ck_assert_str_eq(str(r, "error"), "test_fail: flaky");
	ck_assert(json_is_true(json_object_get(r, "retryable")));
	json_decref(r);

	/* shutdown in the middle of a run: out promptly */
	send_run(8, NULL);
	json_decref(expect_event("tool_call_started", 8));
	t0 = mono_ms();
	send_msg(MSG_SHUTDOWN, NULL);
	ck_assert_int_eq(wait_exit(), 0);
	ck_assert(mono_ms() - t0 < 5000);
}
END_TEST

START_TEST(test_mem_reply_unknown_and_wrong_messages)
{
	start(false);
	json_decref(configure(json_pack("{s:{s:s}}", "task_config", "tool",
	    "system_info"), NULL));
	send_msg(MSG_MEM_REPLY, json_pack("{s:i, s:[]}", "req_id", 99, "items"));
	send_msg(MSG_CANCEL, json_pack("{s:i}", "run_id", 3));	/* nothing running */
	expect_silence(200);
	send_run(1, NULL);
	json_decref(expect_event("tool_call_started", 1));
	json_decref(expect_event("tool_call_result", 1));
	json_decref(expect(MSG_MEM_STORE));
	json_decref(expect_result(1, true));
	/* a message only workers send */
	send_msg(MSG_RESULT, json_pack("{s:i, s:b}", "run_id", 1, "ok", 1));
	ck_assert_int_eq(wait_exit(), 3);
}
END_TEST

START_TEST(test_garbage_after_config)
{
	start(false);
	json_decref(configure(json_object(), NULL));
	const uint8_t junk[] = { 0, 0, 0, 4, 0xc1, 0xc1, 0xc1, 0xc1 };	/* not msgpack */
	send_raw(junk, sizeof(junk));
	ck_assert_int_eq(wait_exit(), 3);
}
END_TEST

START_TEST(test_oversized_frame)
{
	start(false);
	json_decref(configure(json_object(), NULL));
	const uint8_t hdr[] = { 0x7f, 0xff, 0xff, 0xff };
	send_raw(hdr, sizeof(hdr));
	ck_assert_int_eq(wait_exit(), 3);
}
END_TEST

START_TEST(test_startup_errors)
{
	/* first message not a config */
	start(false);
	send_msg(MSG_SHUTDOWN, NULL);
	ck_assert_int_eq(wait_exit(), 2);
	close(P.fd);

	/* a config for another agent */
	start(false);
	send_msg(MSG_CONFIG, json_pack("{s:s, s:{}}", "name", "beta", "agent"));
	ck_assert_int_eq(wait_exit(), 2);
	close(P.fd);

	/* an unusable local_tools */
	start(false);
	send_msg(MSG_CONFIG, json_pack("{s:s, s:{s:s}}", "name", "alpha", "agent",
	    "local_tools", "system_info"));
	ck_assert_int_eq(wait_exit(), 2);
	close(P.fd);

	/* no config at all: agentd went away */
	start(false);
	close(P.fd);
	P.fd = -1;
	ck_assert_int_eq(wait_exit(), 2);

	/* garbage first */
	frame_reader_free(&P.rd);
	frame_reader_init(&P.rd, FRAME_MAX_DEFAULT);
	start(false);
	const uint8_t junk[] = { 0, 0, 0, 1, 0xc1 };
	send_raw(junk, sizeof(junk));
	ck_assert_int_eq(wait_exit(), 3);
}
END_TEST

START_TEST(test_secrets_not_logged)
{
	start(false);
	json_decref(configure(json_pack("{s:b, s:{s:s}, s:{s:s}}", "debug", 1,
	    "model_config", "provider", "openai", "task_config", "tool",
	    "system_info"), json_pack("{s:s}", "api_key", "sk-TESTSECRET-4242")));
	send_run(1, NULL);
	json_decref(expect_event("tool_call_started", 1));
	json_decref(expect_event("tool_call_result", 1));
	json_decref(expect(MSG_MEM_STORE));
	json_decref(expect_result(1, true));
	send_run(2, json_pack("{s:n}", "tool"));	/* the model path */
	json_decref(expect_result(2, false));
	send_msg(MSG_SHUTDOWN, NULL);
	ck_assert_int_eq(wait_exit(), 0);

	FILE *f = fopen(P.log, "r");
	ck_assert_ptr_nonnull(f);
	char line[8192];
	int lines = 0;
	while (fgets(line, sizeof(line), f)) {
		lines++;
		ck_assert_ptr_null(strstr(line, "sk-TESTSECRET"));
	}
	fclose(f);
	ck_assert_int_gt(lines, 2);	/* debug logging was on */
}
END_TEST

/* No secret, nor the first bytes of one, in a message the worker sent. */
static void
no_secret(const json_t *m, const char *const *secrets)
{
	char *t = json_dumps(m, JSON_COMPACT);
	for (; *secrets; secrets++) {
		char start[7];
		memcpy(start, *secrets, sizeof(start) - 1);	/* secrets are longer */
		start[sizeof(start) - 1] = '\0';
		ck_assert_msg(strstr(t, start) == NULL, "%.6s... left in %.300s", *secrets, t);
	}
	free(t);
}

START_TEST(test_secrets_redacted_on_the_way_out)
{
	static const char *const secrets[] = { "sk-WKEY-123456789", "tok-HEADER-9999", NULL };
	char got[96], cmd[256], text[4200];
	snprintf(got, sizeof(got), "%s/got.txt", P.dir);
	snprintf(cmd, sizeof(cmd), "printf %%s \"$1\" > %s; printf %%s \"$1\"", got);
	/* The key straddles the cut of the event's output (4096 bytes of
	 * {"output":"xxx...): redacted before the cut, nothing of it is left. */
	memset(text, 'x', 4078);
	snprintf(text + 4078, sizeof(text) - 4078, "%s and tok-HEADER-9999", secrets[0]);
	start(false);
	/* command tools as the loader leaves them: timeout_ms, output_max */
	json_decref(configure(json_pack("{s:b, s:[{s:s, s:[s,s,s,s,s], s:{s:s}, s:i, s:i}, "
	    "{s:s, s:[s,s,s,s,s], s:{s:s}, s:i, s:i}, {s:s, s:[s,s], s:{s:s}, s:i, s:i}], "
	    "s:{s:s, s:s}}",
	    "debug", 1, "local_tools", "name", "echo", "command", "/bin/sh", "-c", cmd, "sh",
	    "{text}", "inputSchema", "type", "object", "timeout_ms", 10000, "output_max", 65536,
	    "name", "fail", "command", "/bin/sh", "-c", "echo \"$1\"; exit 1", "sh", "{text}",
	    "inputSchema", "type", "object", "timeout_ms", 10000, "output_max", 65536,
	    "name", secrets[1], "command", "/bin/echo", "ok", "inputSchema", "type", "object",
	    "timeout_ms", 10000, "output_max", 65536,
	    "task_config", "tool", "echo",
	    "text", text), json_pack("{s:s, s:[s]}", "api_key", secrets[0], "redact",
	    secrets[1])));
	send_run(1, NULL);
	json_t *p = expect_event("tool_call_started", 1);
	no_secret(p, secrets);
	ck_assert_ptr_nonnull(strstr(str(json_object_get(p, "arguments"), "text"),
	    "x[redacted] and [redacted]"));
	json_decref(p);
	p = expect_event("tool_call_result", 1);
	no_secret(p, secrets);
	ck_assert_ptr_nonnull(strstr(str(p, "output"), "...[truncated "));
	json_decref(p);
	json_t *m = expect(MSG_MEM_STORE);
	no_secret(m, secrets);
	ck_assert_ptr_nonnull(strstr(str(m, "content"), "[redacted] and [redacted]"));
	json_decref(m);
	m = expect_result(1, true);
	no_secret(m, secrets);
	json_decref(m);
	/* the tool got what it was sent */
	FILE *f = fopen(got, "r");
	char back[sizeof(text)] = "";
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(back, sizeof(back), f));
	fclose(f);
	ck_assert_str_eq(back, text);

	/* a key used as a tool's name: the error says which, redacted */
	send_run(2, json_pack("{s:s}", "tool", secrets[0]));
	m = expect_result(2, false);
	no_secret(m, secrets);
	ck_assert_str_eq(str(m, "error"), "unknown tool [redacted]");
	json_decref(m);

	/* a tool that fails quoting them: its error event, the result, the
	 * worker's log line about it */
	send_run(3, json_pack("{s:s, s:s}", "tool", "fail", "text", "no: sk-WKEY-123456789 "
	    "tok-HEADER-9999"));
	json_decref(expect_event("tool_call_started", 3));
	p = expect_event("tool_call_error", 3);
	no_secret(p, secrets);
	ck_assert_ptr_nonnull(strstr(str(p, "error"), "no: [redacted] [redacted]"));
	json_decref(p);
	m = expect_result(3, false);
	no_secret(m, secrets);
	json_decref(m);

	/* a tool named like a secret: its memory's metadata */
	send_run(4, json_pack("{s:s}", "tool", secrets[1]));
	json_decref(expect_event("tool_call_started", 4));
	json_decref(expect_event("tool_call_result", 4));
	m = expect(MSG_MEM_STORE);
	no_secret(m, secrets);
	ck_assert_str_eq(str(json_object_get(m, "metadata"), "tool"), "[redacted]");
	json_decref(m);
	json_decref(expect_result(4, true));
	send_msg(MSG_SHUTDOWN, NULL);
	ck_assert_int_eq(wait_exit(), 0);

	f = fopen(P.log, "r");	/* the worker's log */
	ck_assert_ptr_nonnull(f);
	char line[8192];
	bool told = false;
	while (fgets(line, sizeof(line), f)) {
		for (const char *const *sp = secrets; *sp; sp++)
			ck_assert_msg(strstr(line, *sp) == NULL, "logged: %s", line);
		told |= strstr(line, "tool fail failed") && strstr(line, "no: [redacted] [redacted]");
	}
	fclose(f);
	ck_assert_msg(told, "the failed tool is not in the worker's log");
}
END_TEST

/* A child that, once configured, asks agentd for memory (as the model
 * runtime will) and exits 0 only when the answer is what the test sent. */
static int
query_memory(int fd)
{
	struct worker *w = worker_new(fd, "alpha");
	int rc = worker_start(w);
	if (rc != 0)
		return rc;
	json_t *items;
	char err[256];
	if (worker_mem_query(w, "episodic", 5, "files", &items, err, sizeof(err)) < 0)
		return 10;
	rc = json_array_size(items) == 2 &&
	    strcmp(json_string_value(json_array_get(items, 1)), "two") == 0 ? 0 : 11;
	json_decref(items);
	if (rc == 0 && (worker_mem_query(w, "bogus", 5, NULL, &items, err,
	    sizeof(err)) == 0 || strstr(err, "unknown memory_type") == NULL))
		rc = 12;
	if (rc == 0)
		rc = worker_loop(w);	/* then the normal life: shutdown -> 0 */
	worker_free(w);
	return rc;
}

START_TEST(test_mem_query)
{
	start_with(query_memory, false);
	json_decref(configure(json_object(), NULL));
	json_t *q = expect(MSG_MEM_QUERY);
	ck_assert_str_eq(str(q, "memory_type"), "episodic");
	ck_assert_int_eq(json_integer_value(json_object_get(q, "limit")), 5);
	ck_assert_str_eq(str(q, "query"), "files");
	json_int_t id = json_integer_value(json_object_get(q, "req_id"));
	json_decref(q);
	/* a stale reply first: ignored */
	send_msg(MSG_MEM_REPLY, json_pack("{s:I, s:[s]}", "req_id", id + 100,
	    "items", "stale"));
	send_msg(MSG_MEM_REPLY, json_pack("{s:I, s:[s,s]}", "req_id", id,
	    "items", "one", "two"));
	q = expect(MSG_MEM_QUERY);
	ck_assert(json_integer_value(json_object_get(q, "req_id")) != id);
	send_msg(MSG_MEM_REPLY, json_pack("{s:O, s:[], s:s}", "req_id",
	    json_object_get(q, "req_id"), "items", "error", "unknown memory_type"));
	json_decref(q);
	send_msg(MSG_SHUTDOWN, NULL);
	ck_assert_int_eq(wait_exit(), 0);
}
END_TEST

/* remember and recall, run as tools: a write of the type asked for (and
 * of the assistant), a mem_recall with the model's arguments, whose answer
 * becomes the tool's output; arguments over the bounds never leave. */
START_TEST(test_memory_tools)
{
	start(false);
	json_decref(configure(json_pack("{s:s, s:s}", "name", "alpha", "agent_id", "alpha"),
	    NULL));
	send_run(1, json_pack("{s:s, s:s, s:s, s:{s:i}}", "tool", "remember", "content",
	    "db1 is the primary", "memory_type", "long_term", "metadata", "prio", 1));
	json_decref(expect_event("tool_call_started", 1));
	json_t *m = expect(MSG_MEM_STORE);
	ck_assert_str_eq(str(m, "memory_type"), "long_term");
	ck_assert_str_eq(str(m, "role"), "assistant");
	ck_assert_str_eq(str(m, "content"), "db1 is the primary");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(m, "metadata"),
	    "prio")), 1);
	json_decref(m);
	json_decref(expect_event("tool_call_result", 1));
	json_decref(expect(MSG_MEM_STORE));	/* the run's own episodic row */
	json_decref(expect_result(1, true));

	send_run(2, json_pack("{s:s, s:s, s:i, s:[s]}", "tool", "recall", "query", "primary db",
	    "limit", 3, "memory_types", "long_term"));
	json_decref(expect_event("tool_call_started", 2));
	json_t *q = expect(MSG_MEM_RECALL);
	ck_assert_str_eq(str(q, "query"), "primary db");
	ck_assert_int_eq(json_integer_value(json_object_get(q, "limit")), 3);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(q, "memory_types"), 0)),
	    "long_term");
	send_msg(MSG_MEM_REPLY, json_pack("{s:O, s:[{s:s, s:s, s:s, s:f, s:s}], s:b, s:s}",
	    "req_id", json_object_get(q, "req_id"), "items", "memory_type", "long_term", "role",
	    "assistant", "content", "db1 is the primary", "score", 1.0, "timestamp", "t",
	    "degraded", 1, "reason", "the endpoint is down"));
	json_decref(q);
	json_decref(expect_event("tool_call_result", 2));
	json_decref(expect(MSG_MEM_STORE));
	json_t *r = expect_result(2, true);
	json_t *res = json_object_get(r, "result");
	ck_assert(json_is_true(json_object_get(res, "degraded")));
	ck_assert_str_eq(str(res, "reason"), "the endpoint is down");
	ck_assert_str_eq(str(json_array_get(json_object_get(res, "hits"), 0), "content"),
	    "db1 is the primary");
	json_decref(r);

	/* remember keeps a fact unless told otherwise */
	send_run(5, json_pack("{s:s, s:s}", "tool", "remember", "content", "a fact"));
	json_decref(expect_event("tool_call_started", 5));
	m = expect(MSG_MEM_STORE);
	ck_assert_str_eq(str(m, "memory_type"), "long_term");
	json_decref(m);
	json_decref(expect_event("tool_call_result", 5));
	json_decref(expect(MSG_MEM_STORE));
	json_decref(expect_result(5, true));

	/* refused before anything is sent: the next message is the result */
	send_run(3, json_pack("{s:s, s:s, s:s}", "tool", "remember", "content", "x",
	    "memory_type", "episodic"));
	json_decref(expect_event("tool_call_started", 3));
	json_t *e = expect_event("tool_call_error", 3);
	ck_assert_ptr_nonnull(strstr(str(e, "error"), "long_term or working"));
	json_decref(e);
	json_decref(expect_result(3, false));
	send_run(4, json_pack("{s:s, s:s, s:[s]}", "tool", "recall", "query", "x",
	    "memory_types", "semantic"));
	json_decref(expect_event("tool_call_started", 4));
	json_decref(expect_event("tool_call_error", 4));
	json_decref(expect_result(4, false));
	send_msg(MSG_SHUTDOWN, NULL);
	ck_assert_int_eq(wait_exit(), 0);
}
END_TEST

/* Memory content over MEMORY_CONTENT_MAX (agentd would kill the worker for
 * it) goes cut where a character ends, saying how much was cut. */
static int
store_long_memory(int fd)
{
	struct worker *w = worker_new(fd, "alpha");
	char *text = xmalloc(300001);
	for (int i = 0; i < 100000; i++)
		memcpy(text + 3 * i, "\xe2\x82\xac", 3);	/* the euro sign, 3 bytes */
	text[300000] = '\0';
	int rc = worker_mem_store(w, "episodic", "assistant", text, NULL);
	free(text);
	worker_free(w);
	return rc == 0 ? 0 : 1;
}

START_TEST(test_long_memory_cut)
{
	start_with(store_long_memory, false);
	json_t *m = expect(MSG_MEM_STORE);
	const char *c = str(m, "content");
	size_t n = strlen(c);
	ck_assert_uint_le(n, MEMORY_CONTENT_MAX);
	char *tail = strstr(c, "...[truncated ");
	ck_assert_ptr_nonnull(tail);
	ck_assert_uint_eq((size_t)(tail - c) % 3, 0);	/* whole characters */
	char want[64];
	snprintf(want, sizeof(want), "...[truncated %zu bytes]", 300000 - (size_t)(tail - c));
	ck_assert_str_eq(tail, want);
	char err[200];
	ck_assert_int_eq(msg_check_bounds(MSG_MEM_STORE, m, err, sizeof(err)), 0);
	json_decref(m);
	ck_assert_int_eq(wait_exit(), 0);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("worker_proto");
	TCase *tc = tcase_create("proto");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_tool_run);
	tcase_add_test(tc, test_tool_args_and_new_files);
	tcase_add_test(tc, test_refused_tools);
	tcase_add_test(tc, test_no_model_runtime);
	tcase_add_test(tc, test_cancel_running);
	tcase_add_test(tc, test_mem_reply_unknown_and_wrong_messages);
	tcase_add_test(tc, test_garbage_after_config);
	tcase_add_test(tc, test_oversized_frame);
	tcase_add_test(tc, test_startup_errors);
	tcase_add_test(tc, test_secrets_not_logged);
	tcase_add_test(tc, test_secrets_redacted_on_the_way_out);
	tcase_add_test(tc, test_mem_query);
	tcase_add_test(tc, test_memory_tools);
	tcase_add_test(tc, test_long_memory_cut);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return run_suite(suite());
}
