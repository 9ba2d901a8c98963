/* Unit tests: common/util.c, common/buf.c, common/jsonmp.c's measures and
 * text, common/log.c's rate limit. */
#include <check.h>
#include "tests/unit/check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/buf.h"
#include "common/jsonmp.h"
#include "common/log.h"
#include "common/util.h"

START_TEST(durations)
{
	static const struct { const char *s; int64_t ms; } ok[] = {
		{ "300", 300000 }, { "1.5", 1500 }, { "0", 0 }, { "90s", 90000 },
		{ "5m", 300000 }, { "1h30m", 5400000 }, { "250ms", 250 },
		{ "1d", 86400000 }, { "2h0m5s", 7205000 }, { "0.5s", 500 },
	};
	static const char *bad[] = { "", "5 minutes", "-1", "5x", "m5", "1h-2m",
		"ms", "1..2s", "5mm", "1e400" };
	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		int64_t ms = -1;
		ck_assert_msg(parse_duration(ok[i].s, &ms) == 0, "%s", ok[i].s);
		ck_assert_int_eq(ms, ok[i].ms);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		int64_t ms;
		ck_assert_msg(parse_duration(bad[i], &ms) < 0, "accepted \"%s\"", bad[i]);
	}
}
END_TEST

START_TEST(sizes)
{
	int64_t b;
	ck_assert_int_eq(parse_size("512M", &b), 0);
	ck_assert_int_eq(b, 512LL << 20);
	ck_assert_int_eq(parse_size("1G", &b), 0);
	ck_assert_int_eq(b, 1LL << 30);
	ck_assert_int_eq(parse_size("64k", &b), 0);
	ck_assert_int_eq(b, 65536);
	ck_assert_int_eq(parse_size("2GiB", &b), 0);
	ck_assert_int_eq(b, 2LL << 30);
	ck_assert_int_eq(parse_size("100MB", &b), 0);
	ck_assert_int_eq(b, 100LL << 20);
	ck_assert_int_eq(parse_size("1048576", &b), 0);
	ck_assert_int_eq(b, 1048576);
	ck_assert_int_lt(parse_size("12Q", &b), 0);
	ck_assert_int_lt(parse_size("M", &b), 0);
	ck_assert_int_lt(parse_size("-5M", &b), 0);
	ck_assert_int_lt(parse_size("5Mx", &b), 0);
}
END_TEST

START_TEST(timestamps)
{
	char ts[32];
	iso8601(1700000000123LL, ts, sizeof(ts));
	ck_assert_str_eq(ts, "2023-11-14T22:13:20.123Z");
	iso8601(0, ts, sizeof(ts));
	ck_assert_str_eq(ts, "");
	/* the second's text is cached: a new second, then the old one again */
	iso8601(1700000000999LL, ts, sizeof(ts));
	ck_assert_str_eq(ts, "2023-11-14T22:13:20.999Z");
	iso8601(1700000001005LL, ts, sizeof(ts));
	ck_assert_str_eq(ts, "2023-11-14T22:13:21.005Z");
	iso8601(1700000000050LL, ts, sizeof(ts));
	ck_assert_str_eq(ts, "2023-11-14T22:13:20.050Z");
	iso8601(-1, ts, sizeof(ts));	/* a file from before 1970 */
	ck_assert_str_eq(ts, "1969-12-31T23:59:59.999Z");
}
END_TEST

START_TEST(uuids)
{
	char a[37], b[37];
	uuid4(a);
	uuid4(b);
	ck_assert_int_eq(strlen(a), 36);
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(a[14], '4');
	ck_assert(strchr("89ab", a[19]) != NULL);
	ck_assert(a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-');
	/* ids come from a pool: a forked child must not hand out the parent's */
	int fd[2];
	ck_assert_int_eq(pipe(fd), 0);
	pid_t pid = fork();
	if (pid == 0) {
		uuid4(a);
		_exit(write(fd[1], a, 36) == 36 ? 0 : 1);
	}
	char child[37] = { 0 };
	uuid4(b);
	ck_assert_int_eq(read(fd[0], child, 36), 36);
	waitpid(pid, NULL, 0);
	close(fd[0]);
	close(fd[1]);
	ck_assert_str_ne(child, b);
	for (int i = 0; i < 1000; i++) {
		double r = rand_unit();
		ck_assert(r >= 0.0 && r < 1.0);
	}
}
END_TEST

START_TEST(buffers)
{
	struct buf b;
	buf_init(&b);
	for (int i = 0; i < 1000; i++)
		buf_append(&b, "abcdefgh", 8);
	ck_assert_uint_eq(buf_pending(&b), 8000);
	buf_consume(&b, 7996);
	ck_assert_uint_eq(buf_pending(&b), 4);
	ck_assert(memcmp(buf_head(&b), "efgh", 4) == 0);
	/* Reserving reclaims the consumed front instead of growing. */
	size_t cap = b.cap;
	buf_reserve(&b, cap - 8);
	ck_assert_uint_eq(b.cap, cap);
	ck_assert(memcmp(buf_head(&b), "efgh", 4) == 0);
	buf_consume(&b, 4);
	ck_assert_uint_eq(buf_pending(&b), 0);
	buf_free(&b);
}
END_TEST

/* The measures behind common/limits.h: exact up to the limit, and a value
 * past it reads as past it however deep it really is. */
START_TEST(json_bounds)
{
	json_t *v = json_integer(1);
	ck_assert_int_eq(json_depth(v, 5), 0);
	for (int i = 0; i < 100; i++)
		v = i % 2 ? json_pack("[o]", v) : json_pack("{s:o}", "k", v);
	ck_assert_int_gt(json_depth(v, 24), 24);
	ck_assert_int_eq(json_depth(v, 200), 100);
	json_t *flat = json_pack("{s:[], s:{s:{}}}", "a", "b", "c");
	ck_assert_int_eq(json_depth(flat, 24), 3);
	ck_assert_uint_eq(json_compact_size(flat), strlen("{\"a\":[],\"b\":{\"c\":{}}}"));
	json_decref(flat);
	json_decref(v);
}
END_TEST

START_TEST(atomic_files)
{
	char dir[] = "/tmp/agentd-util-XXXXXX", path[256], sub[128];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
	ck_assert_int_eq(mkdir_p(sub, 0700), 0);
	ck_assert_int_eq(mkdir_p(sub, 0700), 0);	/* exists: fine */
	snprintf(path, sizeof(path), "%s/state.json", sub);
	ck_assert_int_eq(write_file_atomic(path, "{\"a\":1}", 7, 0600), 0);
	ck_assert_int_eq(write_file_atomic(path, "{}", 2, 0600), 0);
	FILE *f = fopen(path, "r");
	char got[16] = "";
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(got, sizeof(got), f));
	fclose(f);
	ck_assert_str_eq(got, "{}");
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(shortest_reals)
{
	static const struct { double v; const char *text; } cases[] = {
		{ 1.56, "1.56" }, { 0.1, "0.1" }, { 2.0, "2.0" }, { -0.5, "-0.5" },
		{ 0.1 + 0.2, "0.30000000000000004" }, { 1e300, "1e+300" }, { 1e-7, "1e-07" },
		{ 123456789012345680.0, "1.2345678901234568e+17" }, { 5e-324, "4.94065645841247e-324" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		json_t *r = json_real(cases[i].v);
		char *s = json_dumps_short(r, 0);
		ck_assert_str_eq(s, cases[i].text);
		json_t *back = json_loads(s, JSON_DECODE_ANY, NULL);
		ck_assert(json_is_real(back) && json_real_value(back) == cases[i].v);
		json_decref(back);
		free(s);
		json_decref(r);
	}
	/* Only reals change: not integers, not strings or keys that look like
	 * numbers, not literals; and the same with indentation. */
	json_t *j = json_pack("{s:f, s:s, s:I, s:[f, b, n, s], s:{s:f}}", "1.5600000000000001", 1.56,
	    "s", "1.5600000000000001", "i", (json_int_t)-12, "a", 3.3, 1, "e1.0",
	    "o", "x", 100.0);
	char *s = json_dumps_short(j, JSON_COMPACT);
	ck_assert_str_eq(s, "{\"1.5600000000000001\":1.56,\"s\":\"1.5600000000000001\",\"i\":-12,"
	    "\"a\":[3.3,true,null,\"e1.0\"],\"o\":{\"x\":100.0}}");
	free(s);
	s = json_dumps_short(j, JSON_INDENT(2));
	char *want = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
	ck_assert_str_eq(s, want);
	free(want);
	free(s);
	json_decref(j);
}
END_TEST

START_TEST(repeated_log_lines)
{
	char path[] = "/tmp/agentd-log-XXXXXX", text[4096] = "";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(log_init("test", LL_INFO, 0, path), 0);

	struct log_limit site = { 0 };
	for (int i = 0; i < 1000; i++)
		log_limited_at(&site, LL_WARN, NULL, "accept: %s #%d", "Too many open files", i);
	int64_t due = log_limited_flush(mono_ms());
	ck_assert_int_gt(due, mono_ms());	/* the window is open: nothing told yet */
	site.window_end = mono_ms();		/* as if 10 s had passed */
	ck_assert_int_eq(log_limited_flush(mono_ms()), -1);	/* closed: the count is told */
	log_limited_at(&site, LL_WARN, "a1", "accept: again");	/* a new window */
	struct log_limit next = { 0 };	/* no flush: the count comes with the next line */
	for (int i = 0; i < 3; i++)
		log_limited_at(&next, LL_WARN, NULL, "refused uid %d", i);
	next.window_end = mono_ms();
	log_limited_at(&next, LL_WARN, NULL, "refused uid %d", 3);
	struct log_limit quiet = { 0 };
	log_limited_at(&quiet, LL_DEBUG, NULL, "below the level");
	log_init("test", LL_ERROR, 0, NULL);

	ck_assert_int_gt(read(fd, text, sizeof(text) - 1), 0);
	close(fd);
	unlink(path);
	ck_assert_msg(strstr(text, "warn: accept: Too many open files #0\n"), "%s", text);
	ck_assert_msg(strstr(text, "accept: Too many open files #999 (repeated 999 more times in 10 s)\n"),
	    "%s", text);
	ck_assert_msg(strstr(text, "agent a1: accept: again\n"), "%s", text);
	ck_assert_msg(strstr(text, "refused uid 0\n") && strstr(text, "refused uid 3\n") &&
	    strstr(text, "refused uid 2 (repeated 2 more times in 10 s)\n"), "%s", text);
	ck_assert_msg(strstr(text, "(repeated 2 more") < strstr(text, "refused uid 3\n"), "%s", text);
	ck_assert_msg(!strstr(text, "#1\n") && !strstr(text, "below"), "%s", text);
	int lines = 0;
	for (char *p = text; (p = strchr(p, '\n')); p++)
		lines++;
	ck_assert_int_eq(lines, 6);
}
END_TEST

/* A cut text stays UTF-8: a last character that lost bytes goes whole. */
START_TEST(utf8_cuts)
{
	char b[16];
	static const struct { size_t size; const char *want; } cases[] = {
		{ 3, "ab" }, { 4, "ab" }, { 5, "ab" }, { 6, "ab\xe2\x82\xac" },	/* ab€ */
		{ 9, "ab\xe2\x82\xac" }, { 10, "ab\xe2\x82\xac\xf0\x9f\x98\x80" },	/* then 😀 */
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		int n = utf8_snprintf(b, cases[i].size, "ab%s%s", "\xe2\x82\xac", "\xf0\x9f\x98\x80");
		ck_assert_int_eq(n, 9);
		ck_assert_msg(strcmp(b, cases[i].want) == 0, "size %zu: \"%s\"", cases[i].size, b);
	}
	/* bytes that are not UTF-8 are cut where they fall */
	utf8_snprintf(b, 4, "%s", "a\x80\x80\x80\x80");
	ck_assert_str_eq(b, "a\x80\x80");
	utf8_snprintf(b, 4, "%s", "abcdef");
	ck_assert_str_eq(b, "abc");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, durations);
	tcase_add_test(tc, sizes);
	tcase_add_test(tc, timestamps);
	tcase_add_test(tc, uuids);
	tcase_add_test(tc, buffers);
	tcase_add_test(tc, atomic_files);
	tcase_add_test(tc, json_bounds);
	tcase_add_test(tc, shortest_reals);
	tcase_add_test(tc, repeated_log_lines);
	tcase_add_test(tc, utf8_cuts);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
