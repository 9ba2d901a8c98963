/*
 * The worker's built-in tools, run directly against this machine and a
 * temporary tree: system_info's figures are checked against each other
 * and against the thresholds, new_files against files whose mtimes the
 * test sets with utimensat, across calls sharing one state directory (as
 * runs of one agent share its directory, also across worker restarts).
 */
#include <check.h>
#include "tests/unit/check_main.h"
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "conf/config.h"
#include "worker/tools.h"

static char tmp[64];
static char state[96];
static struct tool_ctx ctx;

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void
setup(void)
{
	log_init("test", LL_ERROR, 0, NULL);
	snprintf(tmp, sizeof(tmp), "/tmp/test_worker_tools.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	snprintf(state, sizeof(state), "%s/state", tmp);
	ck_assert_int_eq(mkdir(state, 0700), 0);
	memset(&ctx, 0, sizeof(ctx));
	ctx.state_dir = state;
}

static void
teardown(void)
{
	nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- helpers -------------------------------------------------------------- */

static json_t *
run_tool(const char *name, json_t *args, char *err, size_t errlen)
{
	const struct tool *t = tool_find(name);
	json_t *out = NULL;
	ck_assert_ptr_nonnull(t);
	err[0] = '\0';
	int rc = t->run(&ctx, args, &out, err, errlen);
	json_decref(args);
	if (rc < 0) {
		ck_assert_ptr_null(out);
		ck_assert_str_ne(err, "");
		return NULL;
	}
	ck_assert_ptr_nonnull(out);
	return out;
}

static json_t *
must_run(const char *name, json_t *args)
{
	char err[512];
	json_t *out = run_tool(name, args, err, sizeof(err));
	ck_assert_msg(out != NULL, "%s failed: %s", name, err);
	return out;
}

static void
make_file(const char *rel, const char *content, time_t mtime, long nsec)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmp, rel);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	struct timespec ts[2] = { { mtime, nsec }, { mtime, nsec } };
	ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void
make_dir(const char *rel)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmp, rel);
	ck_assert_int_eq(mkdir(path, 0700), 0);
}

/* args for new_files over tmp/<rel> (NULL: tmp itself) */
static json_t *
nf_args(const char *rel, const char *types_json, int recursive, int max_files)
{
	char dir[256];
	if (rel)
		snprintf(dir, sizeof(dir), "%s/%s", tmp, rel);
	else
		snprintf(dir, sizeof(dir), "%s", tmp);
	json_t *a = json_pack("{s:[s]}", "directories", dir);
	if (types_json)
		json_object_set_new(a, "file_types", json_loads(types_json, 0, NULL));
	if (recursive >= 0)
		json_object_set_new(a, "recursive", json_boolean(recursive));
	if (max_files > 0)
		json_object_set_new(a, "max_files", json_integer(max_files));
	return a;
}

/* The reported paths, relative to tmp, joined with ',' in report order. */
static char *
names(const json_t *out)
{
	static char s[4096];
	size_t i;
	json_t *v;
	s[0] = '\0';
	json_array_foreach(json_object_get(out, "new_files"), i, v) {
		const char *p = json_string_value(json_object_get(v, "path"));
		ck_assert_ptr_nonnull(p);
		ck_assert_int_eq(strncmp(p, tmp, strlen(tmp)), 0);
		if (i)
			strcat(s, ",");
		strcat(s, p + strlen(tmp) + 1);
	}
	ck_assert_int_eq(json_integer_value(json_object_get(out, "count")),
	    json_array_size(json_object_get(out, "new_files")));
	return s;
}

static const time_t T0 = 1700000000;	/* 2023-11-14 */

/* ---- registry ------------------------------------------------------------- */

START_TEST(test_registry_schemas)
{
	size_t n = 0;
	for (const struct tool *t = builtin_tools; t->name; t++, n++) {
		json_error_t je;
		json_t *s = json_loads(t->input_schema, 0, &je);
		ck_assert_msg(s != NULL, "%s schema: %s", t->name, je.text);
		ck_assert_str_eq(json_string_value(json_object_get(s, "type")), "object");
		ck_assert(json_is_object(json_object_get(s, "properties")));
		ck_assert_ptr_eq(tool_find(t->name), t);
		ck_assert(strlen(t->description) > 20);
		ck_assert_str_eq(builtin_tool_names[n], t->name);   /* what the config accepts */
		json_decref(s);
	}
	ck_assert_uint_eq(n, 5);
	ck_assert_ptr_null(builtin_tool_names[n]);
	ck_assert_ptr_nonnull(tool_find("read_file"));
	ck_assert_ptr_nonnull(tool_find("remember"));
	ck_assert_ptr_null(tool_find("write_file"));
	ck_assert_ptr_null(tool_find(NULL));
	json_t *s = json_loads(tool_find("new_files")->input_schema, 0, NULL);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(s,
	    "required"), 0)), "directories");
	json_decref(s);
}
END_TEST

START_TEST(test_utf8_helpers)
{
	json_t *j = json_string_lossy("ok-\xc3\xa9");
	ck_assert_str_eq(json_string_value(j), "ok-\xc3\xa9");
	json_decref(j);
	j = json_string_lossy("a\xff" "b\xc3");	/* stray byte, cut sequence */
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(j), "a\xef\xbf\xbd" "b\xef\xbf\xbd");
	json_decref(j);
	j = json_string_lossy("\xed\xa0\x80");	/* a surrogate is not UTF-8 */
	ck_assert_str_eq(json_string_value(j), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	json_decref(j);

	const char *s = "ab\xc3\xa9z";	/* a b é z */
	ck_assert_uint_eq(utf8_cut(s, 5, 10), 5);
	ck_assert_uint_eq(utf8_cut(s, 5, 4), 4);
	ck_assert_uint_eq(utf8_cut(s, 5, 3), 2);	/* not inside é */
	ck_assert_uint_eq(utf8_cut(s, 5, 2), 2);
	ck_assert_uint_eq(utf8_cut(s, 5, 0), 0);

	const char *emoji = "\xf0\x9f\x98\x80\xf0\x9f\x98\x80";	/* two U+1F600 */
	for (size_t max = 4; max < 8; max++)
		ck_assert_uint_eq(utf8_cut(emoji, 8, max), 4);
	ck_assert_uint_eq(utf8_cut(emoji, 8, 3), 0);
	const char *junk = "\xc3\x80\x80\x80\x80\x80";	/* not UTF-8: cut anywhere */
	ck_assert_uint_eq(utf8_cut(junk, 6, 5), 5);
	ck_assert_uint_eq(utf8_cut("a\x80z", 3, 1), 1);

	j = json_stringn_lossy("a\0b\xff", 4);	/* a NUL is kept, a bad byte replaced */
	ck_assert_uint_eq(json_string_length(j), 6);
	ck_assert_mem_eq(json_string_value(j), "a\0b\xef\xbf\xbd", 6);
	json_decref(j);
}
END_TEST

/* State saved while staged stays in memory until committed. */
START_TEST(test_state_staged)
{
	char path[512];
	json_t *staged = json_object();
	struct tool_ctx sctx = { .state_dir = ctx.state_dir, .staged = staged };

	snprintf(path, sizeof(path), "%s/st.test", ctx.state_dir);
	ck_assert_int_eq(tool_state_save(&sctx, "st.test", "one"), 0);
	ck_assert_int_eq(access(path, F_OK), -1);
	ck_assert_str_eq(json_string_value(json_object_get(staged, "st.test")), "one");
	ck_assert_int_eq(tool_state_commit(ctx.state_dir, staged), 0);
	FILE *f = fopen(path, "r");
	char got[16] = "";
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(got, sizeof(got), f));
	fclose(f);
	ck_assert_str_eq(got, "one");
	ck_assert_int_eq(tool_state_save(&ctx, "st.test", "two"), 0);	/* unstaged: at once */
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(fgets(got, sizeof(got), f));
	fclose(f);
	ck_assert_str_eq(got, "two");
	unlink(path);
	json_decref(staged);
}
END_TEST

/* ---- system_info ---------------------------------------------------------- */

static double
num(const json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	ck_assert_msg(json_is_number(v), "%s is not a number", k);
	return json_number_value(v);
}

static bool
has_alert(const json_t *out, const char *metric)
{
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(out, "alerts"), i, a)
		if (strcmp(json_string_value(json_object_get(a, "metric")), metric) == 0)
			return true;
	return false;
}

static void
check_ranges(const json_t *out)
{
	const char *pct[] = { "cpu_usage", "memory_usage", "disk_usage" };
	for (size_t i = 0; i < 3; i++) {
		double v = num(out, pct[i]);
		ck_assert_msg(v >= 0 && v <= 100, "%s = %f", pct[i], v);
	}
	json_t *la = json_object_get(out, "load_avg");
	ck_assert_uint_eq(json_array_size(la), 3);
	for (size_t i = 0; i < 3; i++)
		ck_assert(json_number_value(json_array_get(la, i)) >= 0);
	ck_assert_int_eq((long)num(out, "cpus"), sysconf(_SC_NPROCESSORS_ONLN));
	double mt = num(out, "memory_total_bytes"), ma = num(out, "memory_available_bytes");
	ck_assert(mt > 0 && ma >= 0 && ma <= mt);
	/* memory_usage is what is not available (memory moves between reads:
	 * the figures come from one read, so they agree to the rounding) */
	ck_assert(fabs(num(out, "memory_usage") - 100.0 * (mt - ma) / mt) < 0.01);
	double dt = num(out, "disk_total_bytes"), df = num(out, "disk_free_bytes");
	ck_assert(dt > 0 && df >= 0 && df <= dt);
	ck_assert(num(out, "uptime_seconds") > 0);
}

START_TEST(test_system_info_thresholds_zero)
{
	json_t *out = must_run("system_info", json_pack("{s:s, s:{s:i, s:i, s:i}}",
	    "query", "Check CPU, memory, and disk usage",
	    "thresholds", "cpu_usage", 0, "memory_usage", 0, "disk_usage", 0));
	check_ranges(out);
	/* a metric alerts exactly when it is above its threshold */
	size_t expect = 0;
	const char *pct[] = { "cpu_usage", "memory_usage", "disk_usage" };
	for (size_t i = 0; i < 3; i++) {
		bool above = num(out, pct[i]) > 0;
		expect += above;
		ck_assert_msg(has_alert(out, pct[i]) == above, "%s", pct[i]);
	}
	ck_assert_uint_eq(json_array_size(json_object_get(out, "alerts")), expect);
	ck_assert(has_alert(out, "memory_usage"));	/* no machine uses 0 bytes */
	ck_assert_str_eq(json_string_value(json_object_get(out, "status")), "alert");
	json_t *a = json_array_get(json_object_get(out, "alerts"), 0);
	ck_assert(num(a, "value") > num(a, "threshold"));
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(out,
	    "thresholds"), "disk_usage")), 0);
	json_decref(out);
}
END_TEST

START_TEST(test_system_info_thresholds_hundred)
{
	json_t *out = must_run("system_info", json_pack("{s:{s:f, s:i, s:i}, s:s}",
	    "thresholds", "cpu_usage", 100.0, "memory_usage", 100, "disk_usage", 100,
	    "path", tmp));
	check_ranges(out);
	ck_assert_uint_eq(json_array_size(json_object_get(out, "alerts")), 0);
	ck_assert_str_eq(json_string_value(json_object_get(out, "status")), "ok");
	ck_assert_str_eq(json_string_value(json_object_get(out, "path")), tmp);
	json_decref(out);

	out = must_run("system_info", json_object());	/* no thresholds: no alerts */
	check_ranges(out);
	ck_assert_str_eq(json_string_value(json_object_get(out, "path")), "/");
	ck_assert_uint_eq(json_array_size(json_object_get(out, "alerts")), 0);
	ck_assert_uint_eq(json_object_size(json_object_get(out, "thresholds")), 0);
	json_decref(out);
}
END_TEST

START_TEST(test_system_info_bad_args)
{
	char err[512];
	ck_assert_ptr_null(run_tool("system_info", json_pack("{s:{s:i}}",
	    "thresholds", "cpu", 80), err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "unknown threshold \"cpu\""));
	ck_assert_ptr_null(run_tool("system_info", json_pack("{s:{s:s}}",
	    "thresholds", "cpu_usage", "80"), err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "cpu_usage"));
	ck_assert_ptr_null(run_tool("system_info", json_pack("{s:{s:i}}",
	    "thresholds", "disk_usage", 101), err, sizeof(err)));
	ck_assert_ptr_null(run_tool("system_info", json_pack("{s:i}",
	    "thresholds", 80), err, sizeof(err)));
	ck_assert_ptr_null(run_tool("system_info", json_pack("{s:s}",
	    "path", "/nonexistent/agentd-test"), err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/agentd-test"));
}
END_TEST

/* ---- new_files ------------------------------------------------------------ */

START_TEST(test_new_files_filter_and_watermark)
{
	make_file("a.txt", "aaa", T0 + 10, 0);
	make_file("b.log", "bb", T0 + 20, 0);
	make_file("c.csv", "c", T0 + 30, 0);
	make_file("d.bin", "d", T0 + 40, 0);
	make_file("e.TXT", "e", T0 + 50, 0);
	make_dir("sub");
	make_file("sub/f.txt", "f", T0 + 60, 0);

	/* first run: every matching file, oldest first; no subdirectories */
	json_t *out = must_run("new_files", nf_args(NULL, "[\".txt\", \"log\"]", -1, 0));
	ck_assert_str_eq(names(out), "a.txt,b.log,e.TXT");
	ck_assert(json_is_null(json_object_get(out, "since")));
	ck_assert(json_is_false(json_object_get(out, "truncated")));
	ck_assert_int_eq(json_integer_value(json_object_get(out, "scanned")), 5);
	json_t *f0 = json_array_get(json_object_get(out, "new_files"), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(f0, "size")), 3);
	ck_assert_str_eq(json_string_value(json_object_get(f0, "mtime")),
	    "2023-11-14T22:13:30.000Z");
	ck_assert_ptr_null(json_object_get(out, "errors"));
	json_decref(out);

	/* the watermark is on disk, in the state directory */
	char sp[128];
	snprintf(sp, sizeof(sp), "%s/%s", state, NEW_FILES_STATE);
	json_t *st = json_load_file(sp, 0, NULL);
	ck_assert_ptr_nonnull(st);
	ck_assert(json_is_string(json_object_get(st, "directories-hash")));
	ck_assert_int_eq(json_integer_value(json_object_get(st, "since")),
	    (json_int_t)(T0 + 50) * 1000000000);
	json_decref(st);

	/* second run: nothing new */
	out = must_run("new_files", nf_args(NULL, "[\".txt\", \"log\"]", -1, 0));
	ck_assert_str_eq(names(out), "");
	ck_assert_str_eq(json_string_value(json_object_get(out, "since")),
	    "2023-11-14T22:14:10.000Z");
	json_decref(out);

	/* a newer file, a file touched again, an older new file (not new) */
	make_file("g.txt", "g", T0 + 70, 0);
	make_file("a.txt", "aaaa", T0 + 80, 0);
	make_file("h.log", "h", T0 + 5, 0);
	make_file("i.csv", "i", T0 + 90, 0);
	out = must_run("new_files", nf_args(NULL, "[\".txt\", \"log\"]", -1, 0));
	ck_assert_str_eq(names(out), "g.txt,a.txt");
	json_decref(out);

	/* other file_types: another watch, starting over */
	out = must_run("new_files", nf_args(NULL, "[\".csv\"]", -1, 0));
	ck_assert_str_eq(names(out), "c.csv,i.csv");
	json_decref(out);
}
END_TEST

START_TEST(test_new_files_same_mtime)
{
	make_file("a.txt", "a", T0, 500);
	json_t *out = must_run("new_files", nf_args(NULL, NULL, -1, 0));
	ck_assert_str_eq(names(out), "a.txt");
	json_decref(out);
	/* written in the same clock tick as the last reported file */
	make_file("b.txt", "b", T0, 500);
	out = must_run("new_files", nf_args(NULL, NULL, -1, 0));
	ck_assert_str_eq(names(out), "b.txt");
	json_decref(out);
	make_file("c.txt", "c", T0, 500);
	out = must_run("new_files", nf_args(NULL, NULL, -1, 0));
	ck_assert_str_eq(names(out), "c.txt");
	json_decref(out);
	out = must_run("new_files", nf_args(NULL, NULL, -1, 0));
	ck_assert_str_eq(names(out), "");
	json_decref(out);
	/* one nanosecond later is newer */
	make_file("d.txt", "d", T0, 501);
	out = must_run("new_files", nf_args(NULL, NULL, -1, 0));
	ck_assert_str_eq(names(out), "d.txt");
	json_decref(out);
}
END_TEST

START_TEST(test_new_files_truncated_resumes)
{
	make_file("1.txt", "", T0 + 1, 0);
	make_file("2.txt", "", T0 + 2, 0);
	make_file("3a.txt", "", T0 + 3, 0);
	make_file("3b.txt", "", T0 + 3, 0);
	make_file("5.txt", "", T0 + 5, 0);

	json_t *out = must_run("new_files", nf_args(NULL, NULL, -1, 2));
	ck_assert_str_eq(names(out), "1.txt,2.txt");
	ck_assert(json_is_true(json_object_get(out, "truncated")));
	json_decref(out);
	out = must_run("new_files", nf_args(NULL, NULL, -1, 1));
	ck_assert_str_eq(names(out), "3a.txt");
	ck_assert(json_is_true(json_object_get(out, "truncated")));
	json_decref(out);
	/* 3b shares 3a's mtime: still new */
	out = must_run("new_files", nf_args(NULL, NULL, -1, 2));
	ck_assert_str_eq(names(out), "3b.txt,5.txt");
	ck_assert(json_is_false(json_object_get(out, "truncated")));
	json_decref(out);
	out = must_run("new_files", nf_args(NULL, NULL, -1, 2));
	ck_assert_str_eq(names(out), "");
	json_decref(out);
}
END_TEST

START_TEST(test_new_files_recursive)
{
	make_dir("w");
	make_dir("w/sub");
	make_dir("w/sub/deeper");
	make_file("w/top.txt", "", T0 + 1, 0);
	make_file("w/sub/mid.txt", "", T0 + 2, 0);
	make_file("w/sub/deeper/low.txt", "", T0 + 3, 0);
	make_file("w/sub/deeper/low.bin", "", T0 + 4, 0);
	char target[256];
	snprintf(target, sizeof(target), "%s/w", tmp);
	/* a loop and a symlinked file */
	char link[256];
	snprintf(link, sizeof(link), "%s/w/sub/loop", tmp);
	ck_assert_int_eq(symlink(target, link), 0);
	snprintf(link, sizeof(link), "%s/w/alias.txt", tmp);
	snprintf(target, sizeof(target), "%s/w/top.txt", tmp);
	ck_assert_int_eq(symlink(target, link), 0);

	json_t *out = must_run("new_files", nf_args("w", "[\".txt\"]", 1, 0));
	ck_assert_str_eq(names(out), "w/alias.txt,w/top.txt,w/sub/mid.txt,"
	    "w/sub/deeper/low.txt");
	ck_assert_int_eq(json_integer_value(json_object_get(out, "scanned")), 5);
	json_decref(out);
	out = must_run("new_files", nf_args("w", "[\".txt\"]", 1, 0));
	ck_assert_str_eq(names(out), "");
	json_decref(out);
	/* not recursive: another watch, top level only */
	out = must_run("new_files", nf_args("w", "[\".txt\"]", 0, 0));
	ck_assert_str_eq(names(out), "w/alias.txt,w/top.txt");
	json_decref(out);
}
END_TEST

START_TEST(test_new_files_missing_dirs)
{
	char err[512], dir[256], missing[256];
	make_file("a.txt", "", T0, 0);
	snprintf(dir, sizeof(dir), "%s", tmp);
	snprintf(missing, sizeof(missing), "%s/missing", tmp);

	json_t *out = must_run("new_files", json_pack("{s:[s,s,s]}", "directories",
	    missing, dir, dir));	/* a directory listed twice is walked once */
	ck_assert_str_eq(names(out), "a.txt");
	json_t *errors = json_object_get(out, "errors");
	ck_assert_uint_eq(json_array_size(errors), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(errors, 0),
	    "path")), missing);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(
	    json_array_get(errors, 0), "error")), "No such file"));
	json_decref(out);

	ck_assert_ptr_null(run_tool("new_files", json_pack("{s:[s]}", "directories",
	    missing), err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "no directory could be read"));
	ck_assert_ptr_nonnull(strstr(err, missing));

	snprintf(dir, sizeof(dir), "%s/a.txt", tmp);	/* not a directory */
	ck_assert_ptr_null(run_tool("new_files", json_pack("{s:[s]}", "directories",
	    dir), err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "Not a directory"));
}
END_TEST

START_TEST(test_new_files_future_mtime)
{
	time_t future = time(NULL) + 3600;
	make_file("a.txt", "", T0, 0);
	make_file("later.txt", "", future, 0);
	json_t *out = must_run("new_files", nf_args(NULL, NULL, -1, 0));
	ck_assert_str_eq(names(out), "a.txt,later.txt");
	json_decref(out);
	/* the watermark stopped at now: a file written now, with a real
	 * mtime, is still found; the future one is reported again */
	make_file("b.txt", "", time(NULL) + 1, 0);
	out = must_run("new_files", nf_args(NULL, NULL, -1, 0));
	ck_assert_str_eq(names(out), "b.txt,later.txt");
	json_decref(out);
}
END_TEST

static int interrupt_calls;

static bool
interrupt_now(void *arg)
{
	(void)arg;
	interrupt_calls++;
	return true;
}

START_TEST(test_new_files_cancel)
{
	char err[512], name[64], sp[128];
	for (int i = 0; i < 600; i++) {
		snprintf(name, sizeof(name), "f%03d.txt", i);
		make_file(name, "", T0 + i, 0);
	}
	ctx.interrupted = interrupt_now;
	ck_assert_ptr_null(run_tool("new_files", nf_args(NULL, NULL, -1, 0),
	    err, sizeof(err)));
	ck_assert_str_eq(err, "cancelled");
	ck_assert_int_eq(interrupt_calls, 1);
	snprintf(sp, sizeof(sp), "%s/%s", state, NEW_FILES_STATE);
	ck_assert_int_eq(access(sp, F_OK), -1);	/* no watermark moved */
	ctx.interrupted = NULL;
	json_t *out = must_run("new_files", nf_args(NULL, NULL, -1, 0));
	ck_assert_int_eq(json_integer_value(json_object_get(out, "count")), 600);
	json_decref(out);
}
END_TEST

/* A passed deadline (agent_config.tool_call_timeout) stops a scan the way a
 * cancel does, with nothing recorded. */
START_TEST(test_new_files_deadline)
{
	char err[512], name[64], sp[128];
	for (int i = 0; i < 600; i++) {
		snprintf(name, sizeof(name), "f%03d.txt", i);
		make_file(name, "", T0 + i, 0);
	}
	ctx.deadline = mono_ms() - 1;
	ck_assert(tool_interrupted(&ctx));
	ck_assert_ptr_null(run_tool("new_files", nf_args(NULL, NULL, -1, 0),
	    err, sizeof(err)));
	snprintf(sp, sizeof(sp), "%s/%s", state, NEW_FILES_STATE);
	ck_assert_int_eq(access(sp, F_OK), -1);
	ctx.deadline = mono_ms() + 60000;
	ck_assert(!tool_interrupted(&ctx));
	json_t *out = must_run("new_files", nf_args(NULL, NULL, -1, 0));
	ck_assert_int_eq(json_integer_value(json_object_get(out, "count")), 600);
	json_decref(out);
	ctx.deadline = 0;
}
END_TEST

START_TEST(test_new_files_bad_args)
{
	char err[512];
	ck_assert_ptr_null(run_tool("new_files", json_object(), err, sizeof(err)));
	ck_assert_str_eq(err, "directories is required");
	ck_assert_ptr_null(run_tool("new_files", json_pack("{s:s}", "directories",
	    tmp), err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "array"));
	ck_assert_ptr_null(run_tool("new_files", json_pack("{s:[]}", "directories"),
	    err, sizeof(err)));
	ck_assert_ptr_null(run_tool("new_files", json_pack("{s:[i]}", "directories",
	    1), err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "directories[0]"));
	ck_assert_ptr_null(run_tool("new_files", nf_args(NULL, "[1]", -1, 0),
	    err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "file_types[0]"));
	json_t *a = nf_args(NULL, NULL, -1, 0);
	json_object_set_new(a, "max_files", json_integer(0));
	ck_assert_ptr_null(run_tool("new_files", a, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "max_files"));
	a = nf_args(NULL, NULL, -1, 0);
	json_object_set_new(a, "recursive", json_string("yes"));
	ck_assert_ptr_null(run_tool("new_files", a, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "recursive"));
}
END_TEST

START_TEST(test_new_files_corrupt_state)
{
	char sp[128];
	snprintf(sp, sizeof(sp), "%s/%s", state, NEW_FILES_STATE);
	ck_assert_int_eq(write_file_atomic(sp, "{not json", 9, 0600), 0);
	make_file("a.txt", "", T0, 0);
	json_t *out = must_run("new_files", nf_args(NULL, NULL, -1, 0));
	ck_assert_str_eq(names(out), "a.txt");	/* starts over */
	json_decref(out);
	out = must_run("new_files", nf_args(NULL, NULL, -1, 0));
	ck_assert_str_eq(names(out), "");	/* and the state is good again */
	json_decref(out);
}
END_TEST

/* read_file reads only under read_dirs: not through "..", not through a
 * symlink that points out, not at all without read_dirs; bounded size. */
START_TEST(test_read_file_confined)
{
	char dir[] = "/tmp/agentd-rf-XXXXXX", path[256], link[256], err[256];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/notes.txt", dir);
	FILE *f = fopen(path, "w");
	fputs("0123456789abcdef", f);
	fclose(f);
	snprintf(link, sizeof(link), "%s/escape", dir);
	ck_assert_int_eq(symlink("/etc/passwd", link), 0);
	json_t *spec = json_pack("{s:{s:[s]}}", "agent_config", "read_dirs", dir);
	struct tool_ctx rctx = { .state_dir = dir, .spec = spec };
	json_t *out = NULL, *args = json_pack("{s:s, s:i}", "path", path, "max_bytes", 4);
	ck_assert_int_eq(tool_read_file(&rctx, args, &out, err, sizeof(err)), 0);
	ck_assert_str_eq(json_string_value(json_object_get(out, "content")), "0123");
	ck_assert(json_is_true(json_object_get(out, "truncated")));
	json_decref(out);
	json_decref(args);
	f = fopen(path, "w");	/* a NUL ends nothing; a cut never splits a character */
	fwrite("ab\0\xe2\x82\xac\xe2\x82\xac", 1, 9, f);
	fclose(f);
	args = json_pack("{s:s, s:i}", "path", path, "max_bytes", 7);
	ck_assert_int_eq(tool_read_file(&rctx, args, &out, err, sizeof(err)), 0);
	ck_assert_uint_eq(json_string_length(json_object_get(out, "content")), 6);
	ck_assert_mem_eq(json_string_value(json_object_get(out, "content")), "ab\0\xe2\x82\xac", 6);
	json_decref(out);
	json_decref(args);
	char up[300];
	snprintf(up, sizeof(up), "%s/../../etc/passwd", dir);
	const char *bad[] = { link, up, "/etc/passwd" };
	for (int i = 0; i < 3; i++) {
		args = json_pack("{s:s}", "path", bad[i]);
		ck_assert_int_eq(tool_read_file(&rctx, args, &out, err, sizeof(err)), -1);
		ck_assert_msg(strstr(err, "outside") != NULL, "%s: %s", bad[i], err);
		json_decref(args);
	}
	struct tool_ctx none = { .state_dir = dir };
	args = json_pack("{s:s}", "path", path);
	ck_assert_int_eq(tool_read_file(&none, args, &out, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "read_dirs"));
	json_decref(args);
	json_decref(spec);
	unlink(link);
	unlink(path);
	rmdir(dir);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("worker_tools");
	TCase *tc = tcase_create("tools");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_registry_schemas);
	tcase_add_test(tc, test_utf8_helpers);
	tcase_add_test(tc, test_state_staged);
	tcase_add_test(tc, test_system_info_thresholds_zero);
	tcase_add_test(tc, test_system_info_thresholds_hundred);
	tcase_add_test(tc, test_system_info_bad_args);
	tcase_add_test(tc, test_new_files_filter_and_watermark);
	tcase_add_test(tc, test_new_files_same_mtime);
	tcase_add_test(tc, test_new_files_truncated_resumes);
	tcase_add_test(tc, test_new_files_recursive);
	tcase_add_test(tc, test_new_files_missing_dirs);
	tcase_add_test(tc, test_new_files_future_mtime);
	tcase_add_test(tc, test_new_files_cancel);
	tcase_add_test(tc, test_new_files_deadline);
	tcase_add_test(tc, test_new_files_bad_args);
	tcase_add_test(tc, test_new_files_corrupt_state);
	tcase_add_test(tc, test_read_file_confined);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(suite());
}
