/*
 * Unit tests: the configuration loader (conf/) and cron (common/cron.c).
 * Error positions are checked exactly, since file:line:column is what a
 * user acts on.
 */
#include <check.h>
#include "tests/unit/check_main.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "common/buf.h"
#include "common/cron.h"
#include "common/limits.h"
#include "conf/config.h"

static struct config *
load_ok(const char *yaml)
{
	struct config *c = NULL;
	struct conf_errors e;
	int rc = config_load_string("t.yaml", yaml, &c, &e);
	ck_assert_msg(rc == 0, "unexpected error: %s", e.n ? e.msgs[0] : "?");
	conf_errors_free(&e);
	return c;
}

static void
load_err(const char *yaml, const char *expect)
{
	struct config *c = NULL;
	struct conf_errors e;
	ck_assert_int_eq(config_load_string("t.yaml", yaml, &c, &e), -1);
	ck_assert_ptr_null(c);
	bool found = false;
	for (size_t i = 0; i < e.n; i++)
		found |= strstr(e.msgs[i], expect) != NULL;
	ck_assert_msg(found, "expected \"%s\", got \"%s\"", expect, e.n ? e.msgs[0] : "(none)");
	conf_errors_free(&e);
}

START_TEST(seed_config_and_defaults)
{
	struct config *c = load_ok(
	    "background_agents:\n"
	    "  file_monitor:\n"
	    "    agent_id: \"file_monitor\"\n"
	    "    system_instruction: \"Monitor file system for changes\"\n"
	    "    model_config:\n"
	    "      provider: \"openai\"\n"
	    "      model: \"gpt-4\"\n"
	    "    task_config:\n"
	    "      query: \"Check for new files and analyze them\"\n"
	    "      directories: [\"/tmp\", \"/home/user/documents\"]\n"
	    "    interval: 300\n"
	    "    max_retries: 3\n"
	    "    retry_delay: 60\n"
	    "  system_health:\n"
	    "    interval: 600\n");
	ck_assert_uint_eq(c->nagents, 2);
	const struct agent_conf *a = config_find(c, "file_monitor");
	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(a->agent_id, "file_monitor");
	ck_assert_int_eq(a->sched, SCHED_INTERVAL);
	ck_assert_int_eq(a->interval_ms, 300000);
	ck_assert_int_eq(a->retry_delay_ms, 60000);
	ck_assert_int_eq(a->max_retries, 3);
	ck_assert(!a->run_on_start);
	ck_assert_int_eq(a->overlap, OVERLAP_SKIP);
	ck_assert_int_eq(a->restart, RESTART_ALWAYS);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(a->spec,
	    "model_config"), "model")), "gpt-4");
	ck_assert_int_eq(json_array_size(json_object_get(json_object_get(a->spec,
	    "task_config"), "directories")), 2);
	const struct agent_conf *b = config_find(c, "system_health");
	ck_assert_str_eq(b->agent_id, "system_health");	/* defaults to the name */
	ck_assert(json_is_object(json_object_get(b->spec, "task_config")));
	ck_assert_str_eq(c->g.state_dir, "/var/lib/agentd");
	ck_assert_str_eq(c->g.control_socket, "/var/lib/agentd/agentd.sock");
	ck_assert_str_eq(c->g.event_store, "database");
	config_free(c);
}
END_TEST

START_TEST(our_keys)
{
	struct config *c = load_ok(
	    "agentd: {state_dir: /s, log_format: json, stop_grace: 2s, redis: {port: 7000},\n"
	    "  event_store: redis_stream, memory_store: redis, state_store: redis}\n"
	    "tasks:\n"
	    "  t1: {description: \"watch\", config: {tool: system_info, a: 1, b: 1}}\n"
	    "background_agents:\n"
	    "  x:\n"
	    "    task: t1\n"
	    "    task_config: {b: 2}\n"
	    "    interval: \"*/5 * * * *\"\n"
	    "    run_on_start: true\n"
	    "    overlap: cancel_previous\n"
	    "    run_timeout: none\n"
	    "    restart: {policy: on-failure, max_restarts: 2, window: 30s, backoff: 250ms}\n"
	    "    limits: {memory: 64M, open_files: 128, processes: 32, cpu_time: 1m, cpu: 0.5}\n"
	    "    env: {A: one, B: 2}\n"
	    "  y:\n"
	    "    restart: never\n"
	    "    interval: 1h30m\n");
	ck_assert_str_eq(c->g.event_store, "redis_stream");
	ck_assert_str_eq(c->g.memory_store, "redis");
	ck_assert_str_eq(c->g.state_store, "redis");
	const struct agent_conf *x = config_find(c, "x");
	ck_assert_int_eq(x->sched, SCHED_CRON);
	ck_assert_str_eq(x->schedule_text, "*/5 * * * *");
	ck_assert(x->run_on_start);
	ck_assert_int_eq(x->overlap, OVERLAP_CANCEL_PREVIOUS);
	ck_assert_int_eq(x->run_timeout_ms, 0);
	ck_assert_int_eq(x->restart, RESTART_ON_FAILURE);
	ck_assert_int_eq(x->restart_max, 2);
	ck_assert_int_eq(x->restart_window_ms, 30000);
	ck_assert_int_eq(x->backoff_ms, 250);
	ck_assert_int_eq(x->limits.memory, 64 << 20);
	ck_assert_int_eq(x->limits.nofile, 128);
	ck_assert_int_eq(x->limits.nproc, 32);
	ck_assert_int_eq(x->limits.cpu_ms, 60000);
	ck_assert(x->limits.cpu_quota > 0.49 && x->limits.cpu_quota < 0.51);
	ck_assert_str_eq(x->env[0], "A=one");
	ck_assert_str_eq(x->env[1], "B=2");
	ck_assert_ptr_null(x->env[2]);
	json_t *tc = json_object_get(x->spec, "task_config");
	ck_assert_str_eq(json_string_value(json_object_get(tc, "tool")), "system_info");
	ck_assert_int_eq(json_integer_value(json_object_get(tc, "a")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(tc, "b")), 2);	/* inline wins */
	ck_assert_str_eq(json_string_value(json_object_get(x->spec, "task_description")), "watch");
	ck_assert_int_eq(config_find(c, "y")->restart, RESTART_NEVER);
	ck_assert_int_eq(config_find(c, "y")->interval_ms, 5400000);
	ck_assert(c->g.log_json);
	ck_assert_int_eq(c->g.stop_grace_ms, 2000);
	ck_assert_int_eq(c->g.redis_port, 7000);
	ck_assert_ptr_nonnull(json_object_get(c->tasks, "t1"));
	config_free(c);
}
END_TEST

START_TEST(errors_with_positions)
{
	load_err("background_agents:\n  a:\n    intervall: 5\n",
	    "t.yaml:3:5: unknown key \"intervall\" in background_agents.a");
	load_err("background_agents:\n  a:\n    max_retries: \"3\"\n",
	    "t.yaml:3:18: background_agents.a.max_retries must be an integer");
	load_err("background_agents:\n  a:\n    retry_delay: 5 minutes\n",
	    "t.yaml:3:18: background_agents.a.retry_delay: bad duration \"5 minutes\"");
	load_err("background_agents:\n  a:\n    interval: \"0 25 * * *\"\n",
	    "t.yaml:3:15: background_agents.a.interval: bad cron expression \"0 25 * * *\": hour field");
	load_err("background_agents:\n  a: {agent_id: z}\n  b: {agent_id: z}\n",
	    "t.yaml:3:17: duplicate agent_id \"z\" (also used by agent \"a\" at t.yaml:2:3)");
	load_err("background_agents:\n  a: {}\n  a: {}\n", "t.yaml:3:3: duplicate key \"a\"");
	load_err("background_agents:\n  a: {run_on_start: maybe}\n",
	    "background_agents.a.run_on_start must be true or false");
	load_err("background_agents:\n  a: {restart: sometimes}\n",
	    "background_agents.a.restart must be one of always, on-failure, never");
	load_err("background_agents:\n  a: {limits: {memory: lots}}\n", "bad size \"lots\"");
	load_err("background_agents:\n  a: {limits: {swap: 1}}\n", "unknown key \"swap\"");
	load_err("background_agents:\n  a: {task_config: [1]}\n",
	    "background_agents.a.task_config must be a mapping");
	load_err("background_agents:\n  a: {env: {\"1BAD\": x}}\n", "not a valid variable name");
	load_err("background_agents:\n  a b: {}\n", "agent name \"a b\"");
	load_err("agentd: {event_store: kafka}\nbackground_agents: {}\n",
	    "agentd.event_store must be one of memory, database, redis_stream");
	load_err("background_agents:\n  a: {mcp_tools: [{transport_type: stdio}]}\n",
	    "each server is a mapping with a name");
	load_err("nope: 1\n", "missing background_agents");
	load_err("background_agents: {}\n---\nbackground_agents: {}\n", "only one YAML document");
	load_err("background_agents:\n  a: *nowhere\n", "unknown alias");
	/* Every mistake, not just the first. */
	struct config *c;
	struct conf_errors e;
	ck_assert_int_eq(config_load_string("t.yaml", "background_agents:\n  a:\n"
	    "    max_retries: x\n    retry_delay: y\n    zzz: 1\n", &c, &e), -1);
	ck_assert_uint_eq(e.n, 3);
	conf_errors_free(&e);
}
END_TEST

START_TEST(interpolation_and_env_overrides)
{
	setenv("AGENTD_T_DIR", "/data", 1);
	unsetenv("AGENTD_T_UNSET");
	struct config *c = load_ok(
	    "agentd: {state_dir: \"${AGENTD_T_DIR}/state\", log_level: \"${AGENTD_T_UNSET:-debug}\"}\n"
	    "background_agents:\n"
	    "  a: {system_instruction: \"costs $$5 in ${AGENTD_T_DIR}\"}\n");
	ck_assert_str_eq(c->g.state_dir, "/data/state");
	ck_assert_int_eq(c->g.log_level, 3);
	ck_assert_str_eq(json_string_value(json_object_get(config_find(c, "a")->spec,
	    "system_instruction")), "costs $5 in /data");
	config_free(c);
	load_err("background_agents:\n  a: {agent_id: \"${AGENTD_T_UNSET}\"}\n",
	    "t.yaml:2:17: environment variable AGENTD_T_UNSET is not set");
	load_err("background_agents:\n  a: {agent_id: \"${}\"}\n", "bad variable reference");

	setenv("EVENT_STORE_TYPE", "memory", 1);
	setenv("REDIS_PORT", "6390", 1);
	c = load_ok("agentd: {event_store: database}\nbackground_agents: {}\n");
	ck_assert_str_eq(c->g.event_store, "memory");
	ck_assert_int_eq(c->g.redis_port, 6390);
	config_free(c);
	setenv("REDIS_PORT", "port", 1);
	load_err("background_agents: {}\n", "REDIS_PORT");
	unsetenv("EVENT_STORE_TYPE");
	unsetenv("REDIS_PORT");
}
END_TEST

START_TEST(fingerprints)
{
	const char *base = "background_agents:\n  a: {interval: 5m, task_config: {x: 1}}\n"
	    "  b: {interval: 5m, task_config: {x: 1}}\n";
	struct config *c1 = load_ok(base), *c2 = load_ok(base);
	struct config *c3 = load_ok("background_agents:\n  a: {interval: 5m, task_config: {x: 2}}\n"
	    "  b: {interval: 6m, task_config: {x: 1}}\n");
	ck_assert_str_eq(config_find(c1, "a")->fingerprint, config_find(c2, "a")->fingerprint);
	ck_assert_str_ne(config_find(c1, "a")->fingerprint, config_find(c3, "a")->fingerprint);
	ck_assert_str_ne(config_find(c1, "b")->fingerprint, config_find(c3, "b")->fingerprint);
	struct agent_conf *d = agent_conf_dup(config_find(c1, "a"));
	ck_assert_str_eq(d->fingerprint, config_find(c1, "a")->fingerprint);
	ck_assert(json_equal(d->spec, config_find(c1, "a")->spec));
	agent_conf_free(d);
	config_free(c1);
	config_free(c2);
	config_free(c3);
}
END_TEST

START_TEST(example_config_loads)
{
	struct config *c = NULL;
	struct conf_errors e;
	int rc = config_load("conf/agents.example.yaml", &c, &e);
	ck_assert_msg(rc == 0, "%s", e.n ? e.msgs[0] : "?");
	ck_assert_uint_eq(c->nagents, 2);
	config_free(c);
	ck_assert_int_eq(config_load("/nonexistent.yaml", &c, &e), -1);
	ck_assert_ptr_nonnull(strstr(e.msgs[0], "cannot read"));
	conf_errors_free(&e);
}
END_TEST

/* Every message of one load, for exact comparisons. */
static char *
all_errors(const char *yaml)
{
	struct config *c = NULL;
	struct conf_errors e;
	config_load_string("t.yaml", yaml, &c, &e);
	config_free(c);
	size_t len = 1;
	for (size_t i = 0; i < e.n; i++)
		len += strlen(e.msgs[i]) + 1;
	char *all = calloc(1, len);
	for (size_t i = 0; i < e.n; i++)
		strcat(strcat(all, e.msgs[i]), "\n");
	conf_errors_free(&e);
	return all;
}

static void
only_error(const char *yaml, const char *expect)
{
	char *all = all_errors(yaml);
	char want[1024];
	snprintf(want, sizeof(want), "%s\n", expect);
	ck_assert_str_eq(all, want);
	free(all);
}

/* "Billion laughs": nine lists of nine aliases of the one before.  Each
 * level multiplies by 9; the bound stops it at the level that would cross
 * CONFIG_NODES_MAX, naming that alias, before copying it. */
static const char bomb[] =
	"a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n"
	"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
	"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
	"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
	"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
	"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
	"g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
	"h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
	"i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
	"background_agents: {}\n";

START_TEST(alias_bounds)
{
	only_error(bomb, "t.yaml:6:14: alias *e: the document expands past 262144 nodes "
	    "(an alias bomb?)");
	only_error("a: &a [1, *a]\nbackground_agents: {}\n",
	    "t.yaml:1:11: alias *a is inside the node it names (a recursive document)");
	/* more aliases than CONFIG_ALIASES_MAX, each of one node */
	struct buf b;
	buf_init(&b);
	const char *head = "x: &x 1\nl: [";
	buf_append(&b, head, strlen(head));
	for (unsigned i = 0; i <= CONFIG_ALIASES_MAX; i++)
		buf_append(&b, "*x,", 3);
	buf_append(&b, "]\nbackground_agents: {}\n", 24);
	char *all = all_errors((const char *)b.data);
	ck_assert_msg(strstr(all, "t.yaml:2:49157: alias *x: the document expands past 16384 "
	    "aliases") != NULL, "%s", all);
	free(all);
	/* and more nodes than CONFIG_NODES_MAX without an alias at all */
	buf_reset(&b);
	buf_append(&b, "l: [", 4);
	for (unsigned i = 0; i <= CONFIG_NODES_MAX; i++)
		buf_append(&b, "1,", 2);
	buf_append(&b, "]\nbackground_agents: {}\n", 24);
	all = all_errors((const char *)b.data);
	ck_assert_msg(strstr(all, "the document has more than 262144 nodes") != NULL, "%s", all);
	free(all);
	buf_free(&b);
}
END_TEST

/* Aliases within the bounds: every anchor usable (there were 256 slots),
 * the latest of a name wins, as YAML says. */
START_TEST(aliases)
{
	struct buf b;
	buf_init(&b);
	const char *head = "tasks:\n";
	buf_append(&b, head, strlen(head));
	char line[96];
	for (int i = 0; i < 300; i++) {
		snprintf(line, sizeof(line), "  t%d: &t%d {config: {n: %d}}\n", i, i, i);
		buf_append(&b, line, strlen(line));
	}
	const char *tail = "background_agents:\n  a: {task_config: {x: *t299, y: *t0}}\n"
	    "  b: {task_config: &t0 {n: again}}\n  c: {task_config: {z: *t0}}\n";
	buf_append(&b, tail, strlen(tail) + 1);
	struct config *c = load_ok((const char *)b.data);
	json_t *tc = json_object_get(config_find(c, "a")->spec, "task_config");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(json_object_get(tc,
	    "x"), "config"), "n")), 299);
	tc = json_object_get(config_find(c, "c")->spec, "task_config");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(tc, "z"), "n")), "again");
	config_free(c);
	buf_free(&b);
}
END_TEST

/* What is not a configuration file says so, before anything is parsed. */
START_TEST(not_a_config_file)
{
	struct config *c = NULL;
	struct conf_errors e;
	char dir[] = "/tmp/agentd-test-XXXXXX", path[128];
	ck_assert_ptr_nonnull(mkdtemp(dir));

	static const struct { const char *path, *want; } bad[] = {
		{ "/tmp", "/tmp: is a directory, not a configuration file" },
		{ "/dev/zero", "/dev/zero: is a character device, not a configuration file" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(config_load(bad[i].path, &c, &e), -1);
		ck_assert_uint_eq(e.n, 1);
		ck_assert_str_eq(e.msgs[0], bad[i].want);
		conf_errors_free(&e);
	}
	snprintf(path, sizeof(path), "%s/fifo", dir);	/* no writer: must not block */
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	ck_assert_int_eq(config_load(path, &c, &e), -1);
	ck_assert_ptr_nonnull(strstr(e.msgs[0], "fifo: is a FIFO, not a configuration file"));
	conf_errors_free(&e);
	unlink(path);

	snprintf(path, sizeof(path), "%s/huge.yaml", dir);	/* sparse: no disk used */
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_eq(ftruncate(fd, CONFIG_FILE_MAX + 1), 0);
	close(fd);
	ck_assert_int_eq(config_load(path, &c, &e), -1);
	ck_assert_ptr_nonnull(strstr(e.msgs[0], "huge.yaml: is larger than 16 MiB"));
	conf_errors_free(&e);
	unlink(path);

	snprintf(path, sizeof(path), "%s/nul.yaml", dir);
	FILE *f = fopen(path, "w");
	fwrite("background_agents:\n  a:\n    x\0y: 1\n", 1, 35, f);
	fclose(f);
	ck_assert_int_eq(config_load(path, &c, &e), -1);
	ck_assert_ptr_nonnull(strstr(e.msgs[0], "nul.yaml:3:6: contains a NUL byte"));
	conf_errors_free(&e);
	unlink(path);
	rmdir(dir);
}
END_TEST

static int64_t
at(const char *local)
{
	struct tm tm = { 0 };
	strptime(local, "%Y-%m-%d %H:%M", &tm);
	tm.tm_isdst = -1;
	return (int64_t)mktime(&tm) * 1000;
}

static void
next_is(const char *expr, const char *from, const char *want)
{
	struct cron c;
	char err[128];
	ck_assert_msg(cron_parse(expr, &c, err, sizeof(err)) == 0, "%s: %s", expr, err);
	int64_t got = cron_next(&c, at(from));
	ck_assert_msg(got == at(want), "%s after %s: got %lld, want %s", expr, from,
	    (long long)got, want);
}

START_TEST(cron_expressions)
{
	setenv("TZ", "UTC", 1);
	tzset();
	next_is("*/5 * * * *", "2026-01-01 10:02", "2026-01-01 10:05");
	next_is("*/5 * * * *", "2026-01-01 10:05", "2026-01-01 10:10");
	next_is("0 9 * * 1-5", "2026-11-27 10:00", "2026-11-30 09:00");	/* Fri -> Mon */
	next_is("30 2 1,15 * *", "2026-01-15 03:00", "2026-02-01 02:30");
	next_is("0 0 * * sun", "2026-11-24 00:00", "2026-11-29 00:00");
	next_is("0 0 * * 7", "2026-11-24 00:00", "2026-11-29 00:00");
	next_is("0 12 1 jan *", "2026-06-01 00:00", "2027-01-01 12:00");
	next_is("0 0 29 2 *", "2026-03-01 00:00", "2028-02-29 00:00");
	next_is("@hourly", "2026-01-01 10:59", "2026-01-01 11:00");
	next_is("0 0 13 * 5", "2026-11-01 00:00", "2026-11-06 00:00");	/* dom OR dow */
	next_is("10-20/5 * * * *", "2026-01-01 10:16", "2026-01-01 10:20");
	struct cron c;
	char err[128];
	static const struct { const char *e, *msg; } bad[] = {
		{ "61 * * * *", "minute field" }, { "* 24 * * *", "hour field" },
		{ "* * 0 * *", "day-of-month" }, { "* * * 13 *", "month field" },
		{ "* * * * 8", "day-of-week" }, { "* * * *", "expected 5 fields" },
		{ "*/0 * * * *", "bad step" }, { "@sometimes", "unknown macro" },
		{ "a * * * *", "not a number" }, { "1, * * * *", "trailing comma" },
		{ "5-1 * * * *", "out of range" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(cron_parse(bad[i].e, &c, err, sizeof(err)) < 0, "%s accepted", bad[i].e);
		ck_assert_msg(strstr(err, bad[i].msg) != NULL, "%s: %s", bad[i].e, err);
	}
	ck_assert(cron_parse("0 0 30 2 *", &c, err, sizeof(err)) == 0);
	ck_assert_int_eq(cron_next(&c, at("2026-01-01 00:00")), -1);	/* never */
	ck_assert(cron_looks_like("*/5 * * * *"));
	ck_assert(cron_looks_like("@daily"));
	ck_assert(!cron_looks_like("5m"));
}
END_TEST

START_TEST(cron_across_dst)
{
	setenv("TZ", "Europe/Berlin", 1);
	tzset();
	/* 2026-03-29 02:30 does not exist in Berlin: that day has no such
	 * minute, so the next run is the day after (and nothing loops). */
	next_is("30 2 * * *", "2026-03-28 03:00", "2026-03-30 02:30");
	next_is("0 3 * * *", "2026-03-29 01:00", "2026-03-29 03:00");
	/* The fall-back day has 25 hours; hourly still fires every hour. */
	next_is("0 * * * *", "2026-10-25 01:30", "2026-10-25 02:00");
	setenv("TZ", "UTC", 1);
	tzset();
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, seed_config_and_defaults);
	tcase_add_test(tc, our_keys);
	tcase_add_test(tc, errors_with_positions);
	tcase_add_test(tc, interpolation_and_env_overrides);
	tcase_add_test(tc, fingerprints);
	tcase_add_test(tc, example_config_loads);
	tcase_add_test(tc, alias_bounds);
	tcase_add_test(tc, aliases);
	tcase_add_test(tc, not_a_config_file);
	tcase_add_test(tc, cron_expressions);
	tcase_add_test(tc, cron_across_dst);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
