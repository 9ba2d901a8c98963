/*
 * Unit tests: the hiredis adapter (supervisor/redis.c) against a real
 * redis-server started on a free loopback port: pipelining, a server killed
 * with commands in flight, reconnection, reply timeouts (SIGSTOP), and a
 * stopped server never taken for up.  And the event lane's script
 * (supervisor/streams.c): a batch whose predecessor did not land is refused
 * and appends nothing; a resent batch appends only what is new.
 */
#include <check.h>
#include "tests/unit/check_main.h"
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/util.h"
#include "supervisor/loop.h"
#include "supervisor/redis.h"
#include "supervisor/relay_int.h"

static pid_t redis_pid;
static int redis_port;
static char redis_dir[64];

static int
free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static void
redis_start(void)
{
	char port[16];
	snprintf(port, sizeof(port), "%d", redis_port);
	redis_pid = fork();
	ck_assert_int_ge(redis_pid, 0);
	if (redis_pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 1);
		execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
		    "--save", "", "--appendonly", "no", "--dir", redis_dir, (char *)NULL);
		_exit(127);
	}
}

static void
redis_kill(void)
{
	if (redis_pid > 0) {
		kill(redis_pid, SIGKILL);
		waitpid(redis_pid, NULL, 0);
		redis_pid = 0;
	}
}

static bool up_seen, down_seen;
static void
on_state(struct rconn *r, bool up, const char *why, void *ctx)
{
	if (up)
		up_seen = true;
	else
		down_seen = true;
}

static int replies_ok, replies_failed;
static char last_err[320];
static void
on_reply(struct rconn *r, redisReply *reply, const char *err, void *priv)
{
	if (reply && reply->type != REDIS_REPLY_ERROR)
		replies_ok++;
	else {
		replies_failed++;
		snprintf(last_err, sizeof(last_err), "%s", err ? err : reply->str);
	}
}

/* Run the loop until cond holds or ms pass. */
#define RUN_UNTIL(cond, ms) do { \
	int64_t _end = mono_ms() + (ms); \
	struct timer _tick; \
	while (!(cond) && mono_ms() < _end) { \
		timer_init(&_tick, tick, NULL); timer_in(&_tick, 20); \
		loop_once(); timer_stop(&_tick); } \
} while (0)
static void tick(struct timer *t) { (void)t; }

static void
setup(void)
{
	snprintf(redis_dir, sizeof(redis_dir), "/tmp/agentd-redis-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(redis_dir));
	redis_port = free_port();
	redis_start();
	ck_assert_int_eq(loop_init(), 0);
	up_seen = down_seen = false;
	replies_ok = replies_failed = 0;
}

static void
teardown(void)
{
	redis_kill();
	loop_fini();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", redis_dir);
	(void)!system(cmd);
}

static struct rconn *
connect_test(int64_t reply_timeout)
{
	struct rconn_opts o = { .host = "127.0.0.1", .port = redis_port,
		.reply_timeout_ms = reply_timeout, .backoff_ms = 20, .backoff_max_ms = 100 };
	struct rconn *r = rconn_new(&o, on_state, NULL);
	RUN_UNTIL(up_seen, 5000);
	ck_assert_msg(up_seen, "never connected: %s", rconn_last_error(r));
	return r;
}

START_TEST(pipelined_commands)
{
	struct rconn *r = connect_test(2000);
	for (int i = 0; i < 1000; i++) {
		char v[16];
		snprintf(v, sizeof(v), "%d", i);
		const char *argv[] = { "RPUSH", "k", v };
		ck_assert_int_eq(rconn_command(r, on_reply, NULL, 3, argv, NULL), 0);
	}
	RUN_UNTIL(replies_ok == 1000, 5000);
	ck_assert_int_eq(replies_ok, 1000);
	ck_assert_uint_eq(rconn_pending(r), 0);
	rconn_free(r);
}
END_TEST

START_TEST(server_killed_then_back)
{
	struct rconn *r = connect_test(2000);
	redis_kill();
	const char *argv[] = { "PING" };
	/* Either refused at once (already down) or failed when the loss shows. */
	if (rconn_command(r, on_reply, NULL, 1, argv, NULL) == 0) {
		RUN_UNTIL(replies_failed == 1, 3000);
		ck_assert_int_eq(replies_failed, 1);
	}
	RUN_UNTIL(down_seen, 3000);
	ck_assert(down_seen);
	ck_assert(!rconn_up(r));
	ck_assert_int_lt(rconn_command(r, on_reply, NULL, 1, argv, NULL), 0);
	up_seen = false;
	redis_start();
	RUN_UNTIL(up_seen, 5000);
	ck_assert_msg(up_seen, "no reconnect: %s", rconn_last_error(r));
	ck_assert_int_eq(rconn_command(r, on_reply, NULL, 1, argv, NULL), 0);
	RUN_UNTIL(replies_ok == 1, 3000);
	ck_assert_int_eq(replies_ok, 1);
	rconn_free(r);
}
END_TEST

START_TEST(reply_timeout_on_stopped_server)
{
	struct rconn *r = connect_test(300);
	kill(redis_pid, SIGSTOP);
	const char *argv[] = { "PING" };
	int64_t t0 = mono_ms();
	ck_assert_int_eq(rconn_command(r, on_reply, NULL, 1, argv, NULL), 0);
	RUN_UNTIL(replies_failed == 1, 3000);
	ck_assert_int_eq(replies_failed, 1);
	ck_assert_msg(strstr(last_err, "no reply") != NULL, "%s", last_err);
	ck_assert_int_ge(mono_ms() - t0, 290);
	kill(redis_pid, SIGCONT);
	up_seen = false;
	RUN_UNTIL(up_seen, 5000);
	ck_assert(up_seen);
	rconn_free(r);
}
END_TEST

/* A stopped server still completes the TCP handshake (the kernel does):
 * the connection must not count as up until the server answers, so while
 * it is stopped rconn stays down, with a reason that says so. */
START_TEST(stopped_server_is_never_up)
{
	struct rconn_opts o = { .host = "127.0.0.1", .port = redis_port,
		.reply_timeout_ms = 300, .connect_timeout_ms = 300, .backoff_ms = 20,
		.backoff_max_ms = 100 };
	struct rconn *r = rconn_new(&o, on_state, NULL);
	RUN_UNTIL(up_seen, 5000);
	ck_assert_msg(up_seen, "never connected: %s", rconn_last_error(r));
	kill(redis_pid, SIGSTOP);
	const char *argv[] = { "PING" };
	ck_assert_int_eq(rconn_command(r, on_reply, NULL, 1, argv, NULL), 0);
	RUN_UNTIL(mono_ms() < 0, 100);	/* let it wait a little */
	ck_assert_int_ge(rconn_waiting_ms(r), 50);
	RUN_UNTIL(down_seen, 3000);
	ck_assert(down_seen);
	up_seen = false;
	RUN_UNTIL(up_seen, 1500);	/* several connects, each accepted by the kernel */
	ck_assert_msg(!up_seen && !rconn_up(r), "a stopped server was taken for up");
	ck_assert_msg(strstr(rconn_last_error(r), "no answer"), "%s", rconn_last_error(r));
	kill(redis_pid, SIGCONT);
	RUN_UNTIL(up_seen, 5000);
	ck_assert(up_seen && rconn_up(r));
	ck_assert_int_eq(rconn_waiting_ms(r), 0);
	rconn_free(r);
}
END_TEST

START_TEST(free_fails_pending)
{
	struct rconn *r = connect_test(2000);
	kill(redis_pid, SIGSTOP);
	const char *argv[] = { "PING" };
	ck_assert_int_eq(rconn_command(r, on_reply, NULL, 1, argv, NULL), 0);
	ck_assert_int_eq(rconn_command(r, on_reply, NULL, 1, argv, NULL), 0);
	rconn_free(r);
	ck_assert_int_eq(replies_failed, 2);
	kill(redis_pid, SIGCONT);
}
END_TEST

/* One command, run to its reply: the reply's integer, or -1 with a string
 * reply in last_str or an error in last_err. */
static long long last_int;
static char last_str[320];
static bool got_reply;
static void
on_one(struct rconn *r, redisReply *reply, const char *err, void *priv)
{
	got_reply = true;
	last_int = -1;
	if (reply && reply->type == REDIS_REPLY_INTEGER)
		last_int = reply->integer;
	else if (reply && (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS))
		snprintf(last_str, sizeof(last_str), "%s", reply->str);
	else
		snprintf(last_err, sizeof(last_err), "%s", reply ? reply->str : err);
}

static long long
command(struct rconn *r, int argc, const char **argv)
{
	got_reply = false;
	last_err[0] = last_str[0] = 0;
	ck_assert_int_eq(rconn_command(r, on_one, NULL, argc, argv, NULL), 0);
	RUN_UNTIL(got_reply, 5000);
	ck_assert_msg(got_reply, "no reply to %s", argv[0]);
	return last_int;
}

/* The script's call for the stream "s" (db epoch 7): events first..last
 * (store ids), the stream expected to be at `expect`. */
static long long
ship(struct rconn *r, const char *sha, int first, int last, int expect)
{
	const char *argv[8 + 8 * 8];
	char num[8][3][16], exp[16];
	int argc = 8;
	ck_assert_int_le(last - first + 1, 8);
	snprintf(exp, sizeof(exp), "%d", expect);
	const char *head[] = { "EVALSHA", sha, "2", "s", "{s}:cursors", "7", exp, "1000" };
	memcpy(argv, head, sizeof(head));
	for (int id = first; id <= last; id++) {
		char (*n)[16] = num[id - first];
		snprintf(n[0], 16, "%d", id);
		snprintf(n[1], 16, "ev-%d", id);
		snprintf(n[2], 16, "%d", id);	/* seq */
		const char *ev[] = { n[0], n[1], "tick", "a", "2026-01-01T00:00:00.000Z", n[2],
			"sess", "{}" };
		for (int i = 0; i < 8; i++)
			argv[argc++] = ev[i];
	}
	return command(r, argc, argv);
}

/* What the stream holds, as "ev-1 ev-2 ..." in last_str. */
static const char *
stream_ids(struct rconn *r)
{
	const char *argv[] = { "EVAL", "local o = {} for _, e in ipairs(redis.call('XRANGE', "
	    "KEYS[1], '-', '+')) do o[#o + 1] = e[2][2] end return table.concat(o, ' ')",
	    "1", "s" };
	command(r, 4, argv);
	return last_str;
}

START_TEST(stream_script_order)
{
	struct rconn *r = connect_test(2000);
	const char *load[] = { "SCRIPT", "LOAD", streams_script };
	char sha[41];
	const char *cursor[] = { "HGET", "{s}:cursors", "7" };
	command(r, 3, load);
	ck_assert_int_eq(strlen(last_str), 40);
	memcpy(sha, last_str, sizeof(sha));

	ck_assert_int_eq(ship(r, sha, 1, 2, 0), 2);
	/* Ids 3-4 never landed: the batch of 5-6 that follows them is refused. */
	ck_assert_int_eq(ship(r, sha, 5, 6, 4), -1);
	ck_assert_str_eq(last_err, "ORDER s is at 2, the batch expects 4");
	ck_assert_str_eq(stream_ids(r), "ev-1 ev-2");
	command(r, 3, cursor);
	ck_assert_str_eq(last_str, "2");
	/* Shipping again from what was acknowledged: 1-2 are not added twice. */
	ck_assert_int_eq(ship(r, sha, 1, 4, 0), 2);
	ck_assert_int_eq(ship(r, sha, 5, 6, 4), 2);
	ck_assert_int_eq(ship(r, sha, 5, 6, 4), 0);	/* a reply lost, the batch resent */
	ck_assert_str_eq(stream_ids(r), "ev-1 ev-2 ev-3 ev-4 ev-5 ev-6");
	rconn_free(r);
}
END_TEST

int
main(void)
{
	if (system("command -v redis-server >/dev/null") != 0) {
		fprintf(stderr, "test_sup_redis: redis-server is not installed "
		    "(scripts/bootstrap installs it)\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	Suite *s = suite_create("redis");
	TCase *tc = tcase_create("adapter");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, pipelined_commands);
	tcase_add_test(tc, server_killed_then_back);
	tcase_add_test(tc, reply_timeout_on_stopped_server);
	tcase_add_test(tc, stopped_server_is_never_up);
	tcase_add_test(tc, free_fails_pending);
	suite_add_tcase(s, tc);
	tc = tcase_create("streams");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, stream_script_order);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
