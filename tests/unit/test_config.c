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
#include "common/jsonmp.h"
#include "common/util.h"
#include "conf/config.h"
#include "conf/yamltree.h"

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
	    "t.yaml:2:19: background_agents.a.mcp_tools[0].name is required");
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

/* The mistakes that used to pass --check-config and fail at run time, or
 * quietly become defaults: each refused, at its position. */
START_TEST(schema_mistakes)
{
	static const struct { const char *yaml, *want; } bad[] = {
		{ "  a: {model_config: {provider: openaix, model: m}}\n",
		  "t.yaml:2:32: background_agents.a.model_config.provider: unknown provider "
		  "\"openaix\" (known: openai, anthropic, ollama, openrouter, groq, deepseek, "
		  "mistral, together, gemini, azure; any other OpenAI-compatible service is "
		  "openai with its base_url)" },
		{ "  a: {model_config: {provider: openai, model: 3}}\n",
		  "t.yaml:2:47: background_agents.a.model_config.model must be text, not 3 "
		  "(quote it if you mean the text)" },
		{ "  a: {model_config: {provider: openai, model: m, request_timeout: 5parsecs}}\n",
		  "t.yaml:2:67: background_agents.a.model_config.request_timeout: bad duration "
		  "\"5parsecs\" (use seconds or e.g. 90s, 5m, 1h30m)" },
		{ "  a: {model_config: {provider: openai, model: m, request_timeout: 0}}\n",
		  "t.yaml:2:67: background_agents.a.model_config.request_timeout must be at "
		  "least 100ms, not 0" },
		{ "  a: {model_config: {provider: openai, model: m, request_timeout: -1}}\n",
		  "t.yaml:2:67: background_agents.a.model_config.request_timeout: bad duration "
		  "\"-1\" (use seconds or e.g. 90s, 5m, 1h30m)" },
		{ "  a: {model_config: {provider: openai, model: m, temprature: 1}}\n",
		  "t.yaml:2:50: unknown key \"temprature\" in background_agents.a.model_config "
		  "(did you mean temperature?)" },
		{ "  a: {model_config: {model: m}}\n",
		  "t.yaml:2:21: background_agents.a.model_config.provider is required" },
		{ "  a: {agent_config: {max_stepz: 4}}\n",
		  "t.yaml:2:22: unknown key \"max_stepz\" in background_agents.a.agent_config "
		  "(did you mean max_steps?)" },
		{ "  a: {agent_config: {max_steps: ten}}\n",
		  "t.yaml:2:33: background_agents.a.agent_config.max_steps must be an integer, "
		  "not \"ten\"" },
		{ "  a: {agent_config: {tool_call_timeout: 0}}\n",
		  "t.yaml:2:41: background_agents.a.agent_config.tool_call_timeout must be at "
		  "least 1ms, not 0" },
		{ "  a: {mcp_tools: [{name: x, command: y, args: notalist}]}\n",
		  "t.yaml:2:47: background_agents.a.mcp_tools[0].args must be a list" },
		{ "  a: {mcp_tools: [{name: x, url: ftp://h/}]}\n",
		  "t.yaml:2:34: background_agents.a.mcp_tools[0].url must be an http:// or "
		  "https:// URL, not \"ftp://h/\"" },
		{ "  a: {mcp_tools: [{name: x, transport_type: sse}]}\n",
		  "t.yaml:2:19: background_agents.a.mcp_tools[0]: transport_type sse needs a url" },
		{ "  a: {mcp_tools: [{name: x, command: y, url: \"http://h\"}]}\n",
		  "t.yaml:2:38: background_agents.a.mcp_tools[0]: command is not used by "
		  "transport_type streamable_http" },
		{ "  a: {mcp_tools: [{name: x, url: \"http://h\", headers: {\"A b\": c}}]}\n",
		  "t.yaml:2:56: background_agents.a.mcp_tools[0].headers: header A b: not a "
		  "valid header name" },
		{ "  a: {mcp_tools: [{name: x, command: y}, {name: x, command: z}]}\n",
		  "t.yaml:2:49: background_agents.a.mcp_tools: two servers are named x" },
		{ "  a: {local_tools: [{name: t}]}\n",
		  "t.yaml:2:21: background_agents.a.local_tools[0].command is required" },
		{ "  a: {local_tools: [{name: \"no spaces\", command: [x]}]}\n",
		  "t.yaml:2:28: background_agents.a.local_tools[0].name: a tool name is 1-64 of "
		  "A-Z a-z 0-9 _ -" },
		{ "  a: {local_tools: [system_info, disk_usage]}\n",
		  "t.yaml:2:34: background_agents.a.local_tools[1] must be one of system_info, "
		  "new_files, read_file, remember, recall, not \"disk_usage\"" },
		{ "  a: {local_tools: [system_info, system_info]}\n",
		  "t.yaml:2:34: background_agents.a.local_tools[1]: tool system_info is listed "
		  "twice" },
		{ "  a: {run_model: on_change}\n",
		  "t.yaml:2:18: background_agents.a: run_model on_change needs a watch: list "
		  "(what to compare between runs)" },
		{ "  a: {watch: [{args: {}}]}\n",
		  "t.yaml:2:15: background_agents.a.watch[0].tool is required" },
		{ "  a: {restart: {backoff: 2m, max_backoff: 1m}}\n",
		  "t.yaml:2:26: background_agents.a.restart: backoff is above max_backoff" },
		{ "  a: {retry_delay: 2h, retry_max_delay: 1h}\n",
		  "t.yaml:2:20: background_agents.a: retry_delay is above retry_max_delay" },
		{ "  a: {memory_limit: -1}\n",
		  "t.yaml:2:21: background_agents.a.memory_limit must be between 0 and 100000" },
		{ "  a: {limits: {cpu: 0}}\n",
		  "t.yaml:2:21: background_agents.a.limits.cpu must be between 0.01 and 4096" },
		{ "  a: {env: {X: [1]}}\n",
		  "t.yaml:2:16: background_agents.a.env.X must be a single value, not a list" },
		{ "  a: {model_config: {provider: openai, model: m, base_url: \"http://h/v1?x=1\"}}\n",
		  "t.yaml:2:60: background_agents.a.model_config.base_url must be an http:// or "
		  "https:// URL without ?query, not \"http://h/v1?x=1\"" },
		{ "  a: {model_config: {provider: openai, model: m, deployment: d}}\n",
		  "t.yaml:2:62: background_agents.a.model_config.deployment is for provider "
		  "azure only" },
		{ "  a: {model_config: {provider: azure, model: m}}\n",
		  "t.yaml:2:21: background_agents.a.model_config: provider azure needs base_url, "
		  "the resource's endpoint (https://RESOURCE.openai.azure.com)" },
		{ "  a: {model_config: {provider: openai, model: m, api_key_env: A, "
		  "api_key_file: /k}}\n",
		  "t.yaml:2:80: background_agents.a.model_config: api_key_env and api_key_file "
		  "both name a key; keep one" },
		{ "  a: {model_config: {provider: openai, model: m, api_key_env: 1A}}\n",
		  "t.yaml:2:63: background_agents.a.model_config.api_key_env: \"1A\" is not a "
		  "valid variable name" },
	};
	char yaml[512];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(yaml, sizeof(yaml), "background_agents:\n%s", bad[i].yaml);
		only_error(yaml, bad[i].want);
	}
	only_error("agentd: {memory_store: qdrnt}\nbackground_agents: {}\n",
	    "t.yaml:1:24: agentd.memory_store must be one of memory, database, redis, qdrant, "
	    "chromadb, not \"qdrnt\"");
	/* found by fuzz_config: a refused state_dir left the socket's default
	 * to be made from NULL */
	only_error("agentd: {state_dir: \"\"}\nbackground_agents: {}\n",
	    "t.yaml:1:21: agentd.state_dir must not be empty");
	only_error("agentd: {database_url: \"mysql://x\"}\nbackground_agents: {}\n",
	    "t.yaml:1:24: agentd.database_url must be a postgresql:// URL (the embedded "
	    "SQLite store needs none)");
	char longdir[200];
	memset(longdir, 'd', sizeof(longdir) - 1);
	longdir[sizeof(longdir) - 1] = '\0';
	snprintf(yaml, sizeof(yaml), "agentd: {state_dir: /%s}\nbackground_agents: {}\n", longdir);
	char *all = all_errors(yaml);
	ck_assert_msg(strstr(all, "t.yaml:1:21: agentd.control_socket: ") &&
	    strstr(all, "is longer than a unix socket path can be (107)"), "%s", all);
	free(all);
}
END_TEST

static const json_t *
spec_at(const struct config *c, const char *agent, const char *path)
{
	const json_t *v = config_find(c, agent)->spec;
	char key[64];
	for (const char *p = path; v && *p; ) {
		size_t n = strcspn(p, ".");
		snprintf(key, sizeof(key), "%.*s", (int)n, p);
		v = json_is_array(v) ? json_array_get(v, (size_t)atoi(key)) : json_object_get(v, key);
		p += n + (p[n] == '.');
	}
	return v;
}

static int64_t
spec_int(const struct config *c, const char *agent, const char *path)
{
	const json_t *v = spec_at(c, agent, path);
	ck_assert_msg(json_is_integer(v), "%s.%s is not an integer", agent, path);
	return json_integer_value(v);
}

static const char *
spec_str(const struct config *c, const char *agent, const char *path)
{
	const json_t *v = spec_at(c, agent, path);
	ck_assert_msg(json_is_string(v), "%s.%s is not a string", agent, path);
	return json_string_value(v);
}

/* The worker parses nothing: what it gets is checked, defaulted, in ms. */
START_TEST(normalized_spec)
{
	setenv("OPENAI_API_KEY", "k", 1);
	struct config *c = load_ok(
	    "background_agents:\n"
	    "  a:\n"
	    "    model_config: {provider: openai, model: gpt-4o, request_timeout: 1m30s}\n"
	    "    agent_config: {max_steps: 4, tool_call_timeout: 5s, tool_output_max: 2k}\n"
	    "    run_model: on_change\n"
	    "    watch: [new_files, {tool: system_info, args: {path: /}}]\n"
	    "    local_tools:\n"
	    "      - system_info\n"
	    "      - {name: du, command: [du, \"{p}\"]}\n"
	    "      - {name: ls, command: [ls], timeout: 2s, output_max: 1M, env: [LANG]}\n"
	    "    mcp_tools:\n"
	    "      - {name: fs, command: npx, env: {PORT: 8080}}\n"
	    "      - {name: web, url: \"https://h/mcp\", timeout: 1m}\n"
	    "  b: {}\n");
	ck_assert_str_eq(spec_str(c, "a", "model_config.wire"), "openai");
	ck_assert_str_eq(spec_str(c, "a", "model_config.url"), "https://api.openai.com/v1/chat/completions");
	ck_assert_int_eq(spec_int(c, "a", "model_config.request_timeout_ms"), 90000);
	ck_assert_int_eq(spec_int(c, "a", "model_config.max_tokens"), 4096);
	ck_assert_ptr_null(spec_at(c, "a", "model_config.request_timeout"));
	ck_assert_int_eq(spec_int(c, "a", "agent_config.request_limit"), 4);	/* = max_steps */
	ck_assert_int_eq(spec_int(c, "a", "agent_config.tool_call_timeout_ms"), 5000);
	ck_assert_int_eq(spec_int(c, "a", "agent_config.tool_output_max"), 2048);
	ck_assert_str_eq(spec_str(c, "a", "watch.0.tool"), "new_files");
	ck_assert(json_is_object(spec_at(c, "a", "watch.0.args")));
	ck_assert_str_eq(spec_str(c, "a", "watch.1.args.path"), "/");
	ck_assert_str_eq(spec_str(c, "a", "local_tools.0"), "system_info");
	ck_assert_int_eq(spec_int(c, "a", "local_tools.1.timeout_ms"), 5000);	/* tool_call_timeout */
	ck_assert_int_eq(spec_int(c, "a", "local_tools.1.output_max"), 65536);
	ck_assert_str_eq(spec_str(c, "a", "local_tools.1.inputSchema.type"), "object");
	ck_assert_int_eq(spec_int(c, "a", "local_tools.2.timeout_ms"), 2000);
	ck_assert_int_eq(spec_int(c, "a", "local_tools.2.output_max"), 1 << 20);
	ck_assert_str_eq(spec_str(c, "a", "local_tools.2.env.0"), "LANG");
	ck_assert_str_eq(spec_str(c, "a", "mcp_tools.0.transport_type"), "stdio");
	ck_assert_str_eq(spec_str(c, "a", "mcp_tools.0.env.PORT"), "8080");	/* text, as env is */
	ck_assert_int_eq(spec_int(c, "a", "mcp_tools.0.timeout_ms"), 5000);
	ck_assert_int_eq(spec_int(c, "a", "mcp_tools.0.init_timeout_ms"), 30000);
	ck_assert_str_eq(spec_str(c, "a", "mcp_tools.1.transport_type"), "streamable_http");
	ck_assert_int_eq(spec_int(c, "a", "mcp_tools.1.timeout_ms"), 60000);
	/* b: every default, and nothing of the supervisor's */
	ck_assert_int_eq(spec_int(c, "b", "agent_config.max_steps"), 10);
	ck_assert_int_eq(spec_int(c, "b", "agent_config.request_limit"), 10);
	ck_assert_int_eq(spec_int(c, "b", "agent_config.tool_call_timeout_ms"), 0);
	ck_assert_int_eq(spec_int(c, "b", "memory_limit"), 5);
	ck_assert_str_eq(spec_str(c, "b", "run_model"), "always");
	ck_assert_str_eq(spec_str(c, "b", "system_instruction"), "");
	ck_assert_ptr_null(spec_at(c, "b", "local_tools"));	/* every built-in */
	ck_assert_ptr_null(spec_at(c, "b", "model_config"));
	ck_assert_ptr_null(spec_at(c, "b", "interval"));
	ck_assert_ptr_null(spec_at(c, "b", "max_retries"));
	config_free(c);
	unsetenv("OPENAI_API_KEY");
}
END_TEST

static void
provider_is(const char *mc, const char *url, const char *auth, const char *key_env,
    bool required)
{
	char yaml[512];
	snprintf(yaml, sizeof(yaml), "background_agents:\n  a: {model_config: %s}\n", mc);
	struct config *c = load_ok(yaml);
	ck_assert_str_eq(spec_str(c, "a", "model_config.url"), url);
	ck_assert_str_eq(spec_str(c, "a", "model_config.auth_header"), auth);
	ck_assert_str_eq(spec_str(c, "a", "model_config.api_key_env"), key_env);
	ck_assert(json_is_true(spec_at(c, "a", "model_config.api_key_required")) == required);
	ck_assert_ptr_null(spec_at(c, "a", "model_config.base_url"));
	config_free(c);
}

/* Each service by name, at its documented endpoint, with its header and
 * key variable (conf/provider.c cites where each is documented). */
START_TEST(providers)
{
	const char *bearer = "Authorization: Bearer ";
	provider_is("{provider: openai, model: m}", "https://api.openai.com/v1/chat/completions",
	    bearer, "OPENAI_API_KEY", true);
	provider_is("{provider: anthropic, model: m}", "https://api.anthropic.com/v1/messages",
	    "x-api-key: ", "ANTHROPIC_API_KEY", true);
	provider_is("{provider: ollama, model: m}", "http://localhost:11434/v1/chat/completions",
	    bearer, "OLLAMA_API_KEY", false);
	provider_is("{provider: openrouter, model: m}",
	    "https://openrouter.ai/api/v1/chat/completions", bearer, "OPENROUTER_API_KEY", true);
	provider_is("{provider: groq, model: m}", "https://api.groq.com/openai/v1/chat/completions",
	    bearer, "GROQ_API_KEY", true);
	provider_is("{provider: deepseek, model: m}", "https://api.deepseek.com/chat/completions",
	    bearer, "DEEPSEEK_API_KEY", true);
	provider_is("{provider: mistral, model: m}", "https://api.mistral.ai/v1/chat/completions",
	    bearer, "MISTRAL_API_KEY", true);
	provider_is("{provider: together, model: m}", "https://api.together.ai/v1/chat/completions",
	    bearer, "TOGETHER_API_KEY", true);
	provider_is("{provider: gemini, model: m}",
	    "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions", bearer,
	    "GEMINI_API_KEY", true);
	provider_is("{provider: azure, model: gpt-4o, base_url: \"https://r.openai.azure.com/\"}",
	    "https://r.openai.azure.com/openai/deployments/gpt-4o/chat/completions"
	    "?api-version=2024-10-21", "api-key: ", "AZURE_OPENAI_API_KEY", true);
	provider_is("{provider: azure, model: m, base_url: \"https://r.openai.azure.com\", "
	    "deployment: prod, api_version: 2025-01-01-preview}",
	    "https://r.openai.azure.com/openai/deployments/prod/chat/completions"
	    "?api-version=2025-01-01-preview", "api-key: ", "AZURE_OPENAI_API_KEY", true);
	/* base_url overrides; the default key then becomes optional (a local server
	 * may take none), a key the config names never is */
	provider_is("{provider: groq, model: m, base_url: \"http://127.0.0.1:9/g/v1/\"}",
	    "http://127.0.0.1:9/g/v1/chat/completions", bearer, "GROQ_API_KEY", false);
	provider_is("{provider: openai, model: m, base_url: \"http://h/v1\", api_key_env: MY_KEY}",
	    "http://h/v1/chat/completions", bearer, "MY_KEY", true);
	struct config *c = load_ok("background_agents:\n  a: {model_config: {provider: anthropic, "
	    "model: m}}\n");
	ck_assert_str_eq(spec_str(c, "a", "model_config.wire"), "anthropic");
	ck_assert_str_eq(spec_str(c, "a", "model_config.headers.0"), "anthropic-version: 2023-06-01");
	config_free(c);
}
END_TEST

/* A key the config needs and this environment lacks: a warning (the
 * service's environment may differ), never an error. */
START_TEST(api_key_warnings)
{
	struct config *c = NULL;
	struct conf_errors e;
	unsetenv("AGENTD_T_KEY");
	unsetenv("GROQ_API_KEY");
	ck_assert_int_eq(config_load_string("t.yaml", "background_agents:\n"
	    "  a: {model_config: {provider: openai, model: m, api_key_env: AGENTD_T_KEY}}\n"
	    "  b: {model_config: {provider: groq, model: m}}\n"
	    "  c: {model_config: {provider: ollama, model: m}}\n"
	    "  d: {model_config: {provider: openai, model: m, api_key_file: /nonexistent/k}}\n",
	    &c, &e), 0);
	ck_assert_uint_eq(e.n, 0);
	ck_assert_uint_eq(e.nwarnings, 3);
	ck_assert_str_eq(e.warnings[0], "t.yaml:2:63: warning: background_agents.a.model_config: "
	    "AGENTD_T_KEY is not set in this environment; runs fail unless agentd's has it");
	ck_assert_str_eq(e.warnings[1], "t.yaml:3:21: warning: background_agents.b.model_config: "
	    "GROQ_API_KEY is not set in this environment; runs fail unless agentd's has it");
	ck_assert_str_eq(e.warnings[2], "t.yaml:5:64: warning: background_agents.d.model_config."
	    "api_key_file: /nonexistent/k is not readable here; runs fail unless agentd can read it");
	conf_errors_free(&e);
	config_free(c);
	setenv("AGENTD_T_KEY", "x", 1);
	setenv("GROQ_API_KEY", "y", 1);
	ck_assert_int_eq(config_load_string("t.yaml", "background_agents:\n"
	    "  a: {model_config: {provider: openai, model: m, api_key_env: AGENTD_T_KEY}}\n"
	    "  b: {model_config: {provider: groq, model: m}}\n", &c, &e), 0);
	ck_assert_uint_eq(e.nwarnings, 0);
	conf_errors_free(&e);
	config_free(c);
	unsetenv("AGENTD_T_KEY");
	unsetenv("GROQ_API_KEY");
}
END_TEST

/* agentd.http: the listeners' default from state_dir, [] for none, each
 * address checked with its position, a TCP one without a token warned of. */
START_TEST(http_block)
{
	struct config *c = load_ok("agentd: {state_dir: /s}\nbackground_agents: {a: {}}\n");
	ck_assert_str_eq(c->g.http_listen[0], "unix:/s/http.sock");
	ck_assert_ptr_null(c->g.http_listen[1]);
	config_free(c);
	c = load_ok("agentd: {http: {listen: []}}\nbackground_agents: {a: {}}\n");
	ck_assert_ptr_null(c->g.http_listen[0]);
	config_free(c);
	c = load_ok("agentd: {http: {listen: ['unix:/x.sock', '127.0.0.1:8080', '[::1]:9', "
	    "'localhost:1'], token_file: /t}}\nbackground_agents: {a: {}}\n");
	ck_assert_str_eq(c->g.http_listen[1], "127.0.0.1:8080");
	ck_assert_str_eq(c->g.http_listen[3], "localhost:1");
	ck_assert_str_eq(c->g.http_token_file, "/t");
	struct listen_addr a;
	char why[128];
	ck_assert_int_eq(listen_addr_parse(c->g.http_listen[2], &a, why, sizeof(why)), 0);
	ck_assert(!a.is_unix);
	ck_assert_str_eq(a.host, "::1");
	ck_assert_str_eq(a.port, "9");
	config_free(c);
	static const struct { const char *yaml, *want; } bad[] = {
		{ "agentd: {http: {listen: ['8080']}}\n", "t.yaml:1:26: agentd.http.listen[0]: "
		  "\"8080\" is not an address to listen on: unix:PATH, or HOST:PORT" },
		{ "agentd: {http: {listen: ['h:0']}}\n", "agentd.http.listen[0]: \"h:0\" is not an "
		  "address to listen on: a port from 1 to 65535 after the host" },
		{ "agentd: {http: {listen: ['h:65536']}}\n", "a port from 1 to 65535" },
		{ "agentd: {http: {listen: ['::1:80']}}\n", "([ADDRESS]:PORT for IPv6)" },
		{ "agentd: {http: {listen: ['unix:']}}\n", "a unix socket path of 1 to 107 bytes" },
		{ "agentd: {http: {listen: 'unix:/x'}}\n", "agentd.http.listen must be a list" },
		{ "agentd: {http: {lisen: []}}\n", "unknown key \"lisen\" in agentd.http (did you "
		  "mean listen?)" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char yaml[256];
		snprintf(yaml, sizeof(yaml), "%sbackground_agents: {a: {}}\n", bad[i].yaml);
		load_err(yaml, bad[i].want);
	}
	struct conf_errors e;
	unsetenv("AGENTD_HTTP_TOKEN");
	ck_assert_int_eq(config_load_string("t.yaml", "agentd: {http: {listen: ['127.0.0.1:80']}}\n"
	    "background_agents: {a: {}}\n", &c, &e), 0);
	ck_assert_uint_eq(e.nwarnings, 1);
	ck_assert_ptr_nonnull(strstr(e.warnings[0], "t.yaml:1:26: warning: agentd.http.listen: "
	    "127.0.0.1:80 is on TCP, which needs a bearer token"));
	conf_errors_free(&e);
	config_free(c);
}
END_TEST

/* agentd.embeddings and an agent's memory_config.embeddings, normalized
 * for agentd (the worker never sees them); memory_recall_limit in the
 * spec; the seed's vector stores accepted, with a warning that agentd
 * will not start with them yet. */
START_TEST(embeddings_config)
{
	struct config *c = NULL;
	struct conf_errors e;
	setenv("AGENTD_T_EKEY", "k", 1);
	ck_assert_int_eq(config_load_string("t.yaml", "agentd:\n"
	    "  embeddings: {provider: openai, base_url: \"http://127.0.0.1:9/v1/\", "
	    "api_key_env: AGENTD_T_EKEY, dimensions: 8}\n"
	    "background_agents:\n"
	    "  a: {memory_recall_limit: 7}\n"
	    "  b: {memory_config: {embeddings: {provider: hash}}}\n", &c, &e), 0);
	ck_assert_uint_eq(e.nwarnings, 0);
	json_t *g = c->g.embeddings;
	ck_assert_str_eq(json_string_value(json_object_get(g, "url")), "http://127.0.0.1:9/v1/embeddings");
	ck_assert_str_eq(json_string_value(json_object_get(g, "model")), "text-embedding-3-small");
	ck_assert_str_eq(json_string_value(json_object_get(g, "api_key_env")), "AGENTD_T_EKEY");
	ck_assert(json_is_true(json_object_get(g, "api_key_required")));
	ck_assert_int_eq(json_integer_value(json_object_get(g, "dimensions")), 8);
	ck_assert_int_eq(json_integer_value(json_object_get(g, "batch_size")), 64);
	ck_assert_int_eq(json_integer_value(json_object_get(g, "request_timeout_ms")), 30000);
	ck_assert_ptr_null(json_object_get(g, "base_url"));
	ck_assert_int_eq(spec_int(c, "a", "memory_recall_limit"), 7);
	ck_assert_int_eq(spec_int(c, "b", "memory_recall_limit"), 3);
	ck_assert_ptr_null(config_find(c, "a")->embeddings);
	json_t *b = config_find(c, "b")->embeddings;
	ck_assert_str_eq(json_string_value(json_object_get(b, "provider")), "hash");
	ck_assert_int_eq(json_integer_value(json_object_get(b, "dimensions")), 384);
	ck_assert_ptr_null(json_object_get(config_find(c, "b")->spec, "memory_config"));
	struct agent_conf *d = agent_conf_dup(config_find(c, "b"));
	ck_assert(json_equal(d->embeddings, b));
	agent_conf_free(d);
	conf_errors_free(&e);
	config_free(c);
	unsetenv("AGENTD_T_EKEY");

	/* OpenAI's own endpoint needs its key: a warning here */
	unsetenv("OPENAI_API_KEY");
	ck_assert_int_eq(config_load_string("t.yaml", "agentd: {memory_store: database, "
	    "embeddings: {provider: openai}}\nbackground_agents: {}\n", &c, &e), 0);
	ck_assert_uint_eq(e.nwarnings, 1);
	ck_assert_str_eq(e.warnings[0], "t.yaml:1:46: warning: agentd.embeddings: OPENAI_API_KEY "
	    "is not set in this environment; recall goes by words alone unless agentd's has it");
	conf_errors_free(&e);
	config_free(c);

	only_error("agentd: {embeddings: {provider: hash, model: m}}\nbackground_agents: {}\n",
	    "t.yaml:1:46: agentd.embeddings.model is for provider openai (hash embeds in agentd, "
	    "with no model or endpoint)");
	only_error("background_agents:\n  a: {memory_config: {embeddings: {provider: word2vec}}}\n",
	    "t.yaml:2:46: background_agents.a.memory_config.embeddings.provider must be one of "
	    "hash, openai, not \"word2vec\"");
	only_error("agentd: {embeddings: {dimensions: 0}}\nbackground_agents: {}\n",
	    "t.yaml:1:35: agentd.embeddings.dimensions must be between 1 and 8192");
	only_error("background_agents:\n  a: {memory_recall_limit: 51}\n",
	    "t.yaml:2:28: background_agents.a.memory_recall_limit must be between 0 and 50");
	only_error("background_agents:\n  a: {memory_config: {embedings: {}}}\n",
	    "t.yaml:2:23: unknown key \"embedings\" in background_agents.a.memory_config "
	    "(did you mean embeddings?)");
}
END_TEST

/* An agent's spec must fit the config message that carries it. */
/* agentd.qdrant: defaults, the seed's QDRANT_HOST/QDRANT_PORT over the
 * file (and over its url), a key from one place, what --check-config can
 * say without connecting. */
START_TEST(qdrant_block)
{
	struct config *c = load_ok("agentd: {memory_store: qdrant}\nbackground_agents: {}\n");
	ck_assert_str_eq(c->g.memory_store, "qdrant");
	ck_assert_ptr_null(c->g.qdrant_url);
	ck_assert_str_eq(c->g.qdrant_host, "127.0.0.1");
	ck_assert_int_eq(c->g.qdrant_port, 6333);
	ck_assert_str_eq(c->g.qdrant_prefix, "agentd");
	ck_assert_int_eq(c->g.qdrant_timeout_ms, 10000);
	config_free(c);
	c = load_ok("agentd: {qdrant: {url: \"https://q.example:6334/\", collection_prefix: mem_1, "
	    "api_key_file: /etc/hostname, request_timeout: 2s}}\nbackground_agents: {}\n");
	ck_assert_str_eq(c->g.qdrant_url, "https://q.example:6334/");
	ck_assert_str_eq(c->g.qdrant_prefix, "mem_1");
	ck_assert_str_eq(c->g.qdrant_key_file, "/etc/hostname");
	ck_assert_int_eq(c->g.qdrant_timeout_ms, 2000);
	config_free(c);

	setenv("QDRANT_HOST", "qdrant", 1);
	setenv("QDRANT_PORT", "6400", 1);
	setenv("MEMORY_STORE_TYPE", "qdrant", 1);
	c = load_ok("agentd: {qdrant: {url: \"http://elsewhere:1\"}}\nbackground_agents: {}\n");
	ck_assert_str_eq(c->g.memory_store, "qdrant");
	ck_assert_ptr_null(c->g.qdrant_url);	/* the seed's variables win */
	ck_assert_str_eq(c->g.qdrant_host, "qdrant");
	ck_assert_int_eq(c->g.qdrant_port, 6400);
	config_free(c);
	setenv("QDRANT_PORT", "0", 1);
	load_err("background_agents: {}\n", "environment variable QDRANT_PORT: bad port \"0\"");
	unsetenv("QDRANT_HOST");
	unsetenv("QDRANT_PORT");
	unsetenv("MEMORY_STORE_TYPE");

	only_error("agentd: {qdrant: {url: \"ftp://q\"}}\nbackground_agents: {}\n",
	    "t.yaml:1:24: agentd.qdrant.url must be an http:// or https:// URL without ?query, "
	    "not \"ftp://q\"");
	only_error("agentd: {qdrant: {url: \"http://q\", port: 1}}\nbackground_agents: {}\n",
	    "t.yaml:1:24: agentd.qdrant: url and host/port both say where Qdrant is; keep one");
	only_error("agentd: {qdrant: {collection_prefix: \"a/b\"}}\nbackground_agents: {}\n",
	    "t.yaml:1:38: agentd.qdrant.collection_prefix: \"a/b\" is not 1 to 64 of A-Z a-z 0-9 _ -");
	only_error("agentd: {qdrant: {api_key_env: K, api_key_file: /k}}\nbackground_agents: {}\n",
	    "t.yaml:1:49: agentd.qdrant: api_key_env and api_key_file both name a key; keep one");
	only_error("agentd: {qdrant: {port: 65536}}\nbackground_agents: {}\n",
	    "t.yaml:1:25: agentd.qdrant.port must be between 1 and 65535");

	struct conf_errors e = { 0 };
	unsetenv("AGENTD_T_QKEY");
	ck_assert_int_eq(config_load_string("t.yaml", "agentd: {qdrant: {api_key_env: AGENTD_T_QKEY}}"
	    "\nbackground_agents: {}\n", &c, &e), 0);
	ck_assert_uint_eq(e.nwarnings, 1);
	ck_assert_str_eq(e.warnings[0], "t.yaml:1:32: warning: agentd.qdrant: AGENTD_T_QKEY is not "
	    "set in this environment; Qdrant refuses agentd unless agentd's has it");
	conf_errors_free(&e);
	config_free(c);
}
END_TEST

START_TEST(spec_bounds)
{
	struct buf b;
	buf_init(&b);
	const char *head = "background_agents:\n  a:\n    task_config:\n      x: ";
	buf_append(&b, head, strlen(head));
	for (int i = 0; i < 50; i++)
		buf_append(&b, "[", 1);
	for (int i = 0; i < 50; i++)
		buf_append(&b, "]", 1);
	buf_append(&b, "\n", 2);
	/* spec 1, task_config 2, x's lists 3...: the 23rd list is level 25 */
	only_error((const char *)b.data, "t.yaml:4:32: background_agents.a.task_config nests "
	    "deeper than 24 levels (the bound on every value agentd passes on)");
	/* the same through the task registry */
	only_error("tasks:\n  t: {config: {a: [[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]}}\n"
	    "background_agents: {}\n", "t.yaml:2:41: tasks.t.config nests deeper than 24 levels "
	    "(the bound on every value agentd passes on)");
	buf_reset(&b);
	buf_append(&b, head, strlen(head));
	buf_append(&b, "\"", 1);
	for (int i = 0; i < (5 << 20) / 64; i++)
		buf_append(&b, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 64);
	buf_append(&b, "\"\n", 3);
	char *all = all_errors((const char *)b.data);
	ck_assert_msg(strstr(all, "t.yaml:2:3: background_agents.a: the agent's spec is ") &&
	    strstr(all, "bytes as sent to its worker, over the 1024 KiB bound"), "%s", all);
	free(all);
	buf_free(&b);
	/* just within: accepted */
	struct config *c = load_ok("background_agents:\n  a: {task_config: {a: [[[[[[[[[[[[[[[[[[[["
	    "[[1]]]]]]]]]]]]]]]]]]]]]]}}\n");
	config_free(c);
}
END_TEST

/* env: a value, or {value, secret: true}; both reach the environment, the
 * secret ones are listed for redaction. */
START_TEST(env_secrets)
{
	struct config *c = load_ok("background_agents:\n  a:\n    env:\n      A: one\n"
	    "      N: 2\n      TOKEN: {value: s3cret, secret: true}\n"
	    "      PLAIN: {value: open}\n      E:\n");
	const struct agent_conf *a = config_find(c, "a");
	ck_assert_str_eq(a->env[0], "A=one");
	ck_assert_str_eq(a->env[1], "N=2");
	ck_assert_str_eq(a->env[2], "TOKEN=s3cret");
	ck_assert_str_eq(a->env[3], "PLAIN=open");
	ck_assert_str_eq(a->env[4], "E=");
	ck_assert_ptr_null(a->env[5]);
	ck_assert_str_eq(a->secret_env[0], "s3cret");
	ck_assert_ptr_null(a->secret_env[1]);
	struct agent_conf *d = agent_conf_dup(a);
	ck_assert_str_eq(d->secret_env[0], "s3cret");
	ck_assert_str_eq(d->env[2], "TOKEN=s3cret");
	agent_conf_free(d);
	ck_assert_ptr_null(json_object_get(a->spec, "env"));	/* not the worker's to see */
	config_free(c);
	only_error("background_agents:\n  a: {env: {T: {value: x, secret: maybe}}}\n",
	    "t.yaml:2:35: background_agents.a.env.T.secret must be true or false, not \"maybe\"");
	only_error("background_agents:\n  a: {env: {T: {secret: true}}}\n",
	    "t.yaml:2:16: background_agents.a.env.T.value is required");
}
END_TEST

/* Equal fingerprints: nothing the agent runs with changed -- its spec and
 * every supervisor setting, normalized (5m and 300 are the same). */
START_TEST(fingerprint_covers_everything)
{
	static const char *const same[] = {
		"background_agents:\n  a: {interval: 5m, agent_config: {max_steps: 10}}\n",
		"background_agents:\n  a: {interval: 5m, agent_config: {}}\n",
	};
	static const char *const differ[] = {
		"background_agents:\n  a: {interval: 6m}\n",
		"background_agents:\n  a: {interval: 5m, env: {A: b}}\n",
		"background_agents:\n  a: {interval: 5m, env: {A: {value: b, secret: true}}}\n",
		"background_agents:\n  a: {interval: 5m, limits: {memory: 64M}}\n",
		"background_agents:\n  a: {interval: 5m, restart: never}\n",
		"background_agents:\n  a: {interval: 5m, max_retries: 1}\n",
		"background_agents:\n  a: {interval: 5m, agent_config: {max_steps: 9}}\n",
	};
	struct config *base = load_ok(same[0]);
	const char *fp = config_find(base, "a")->fingerprint;
	struct config *c = load_ok(same[1]);
	ck_assert_str_eq(config_find(c, "a")->fingerprint, fp);
	config_free(c);
	for (size_t i = 0; i < sizeof(differ) / sizeof(differ[0]); i++) {
		c = load_ok(differ[i]);
		ck_assert_msg(strcmp(config_find(c, "a")->fingerprint, fp) != 0, "%s", differ[i]);
		if (i == 1) {
			struct config *c2 = load_ok(differ[2]);
			ck_assert_str_ne(config_find(c2, "a")->fingerprint,
			    config_find(c, "a")->fingerprint);
			config_free(c2);
		}
		config_free(c);
	}
	config_free(base);
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

/* An agent from JSON: the file's tables, each error with its pointer. */
static struct agent_conf *
json_agent(const char *text, struct conf_errors *e)
{
	struct agent_conf *a = NULL;
	json_t *body = json_loads(text, 0, NULL), *tasks = json_pack("{s:{s:{s:i}}}", "t",
	    "config", "from_task", 1);
	ck_assert_ptr_nonnull(body);
	int rc = config_agent_from_json(body, tasks, &a, e);
	ck_assert_int_eq(rc, a ? 0 : -1);
	json_decref(body);
	json_decref(tasks);
	return a;
}

static bool
has_error(const struct conf_errors *e, const char *pointer, const char *line)
{
	for (size_t i = 0; i < e->n; i++)
		if (!strcmp(e->pointers[i], pointer) && !strcmp(e->msgs[i], line))
			return true;
	return false;
}

START_TEST(agent_from_json)
{
	struct conf_errors e;
	setenv("AGENTD_T_NOTE", "noted", 1);
	struct agent_conf *a = json_agent("{\"agent_id\": \"made\", \"interval\": 90, "
	    "\"task\": \"t\", \"task_config\": {\"n\": 2.5, \"note\": \"${AGENTD_T_NOTE}\"}, "
	    "\"max_retries\": 4, \"debug\": true, \"system_instruction\": \"42\"}", &e);
	ck_assert_msg(a != NULL, "%s", e.n ? e.msgs[0] : "?");
	ck_assert_str_eq(a->name, "made");
	ck_assert_str_eq(a->agent_id, "made");
	ck_assert_int_eq(a->interval_ms, 90000);
	ck_assert_int_eq(a->max_retries, 4);
	ck_assert(a->debug);
	json_t *tc = json_object_get(a->spec, "task_config");
	ck_assert_int_eq(json_integer_value(json_object_get(tc, "from_task")), 1);
	ck_assert(json_real_value(json_object_get(tc, "n")) == 2.5);
	ck_assert_str_eq(json_string_value(json_object_get(tc, "note")), "noted");
	/* a JSON string is text, as a quoted scalar is */
	ck_assert_str_eq(json_string_value(json_object_get(a->spec, "system_instruction")), "42");
	conf_errors_free(&e);

	/* The same agent in the file: the same fingerprint. */
	struct config *c = load_ok("tasks:\n  t: {config: {from_task: 1}}\nbackground_agents:\n"
	    "  made:\n    agent_id: made\n    interval: 90\n    task: t\n"
	    "    task_config: {n: 2.5, note: \"${AGENTD_T_NOTE}\"}\n    max_retries: 4\n"
	    "    debug: true\n    system_instruction: \"42\"\n");
	ck_assert_str_eq(c->agents[0].fingerprint, a->fingerprint);
	config_free(c);
	agent_conf_free(a);

	/* Every mistake at once, each at its pointer, with the file's message. */
	ck_assert_ptr_null(json_agent("{\"agent_id\": \"bad\", \"interval\": \"soon\", "
	    "\"max_retries\": \"3\", \"colour\": 1, \"model_config\": {\"provider\": \"openai\", "
	    "\"model\": \"m\", \"temperature\": 9}, \"mcp_tools\": [{\"name\": \"x\", "
	    "\"transport_type\": \"stdio\"}], \"task\": \"missing\", \"a/b~c\": 0}", &e));
	ck_assert(has_error(&e, "/interval", "/interval: background_agents.bad.interval: bad "
	    "duration \"soon\" (use seconds or e.g. 90s, 5m, 1h30m)"));
	ck_assert(has_error(&e, "/max_retries", "/max_retries: background_agents.bad.max_retries "
	    "must be an integer, not \"3\""));
	ck_assert(has_error(&e, "/colour", "/colour: unknown key \"colour\" in background_agents.bad"));
	ck_assert(has_error(&e, "/model_config/temperature", "/model_config/temperature: "
	    "background_agents.bad.model_config.temperature must be between 0 and 2"));
	ck_assert(has_error(&e, "/mcp_tools/0", "/mcp_tools/0: background_agents.bad.mcp_tools[0]: "
	    "transport_type stdio needs a command"));
	ck_assert(has_error(&e, "/task", "/task: background_agents.bad.task: no task \"missing\" "
	    "in the tasks registry"));
	ck_assert(has_error(&e, "/a~1b~0c", "/a~1b~0c: unknown key \"a/b~c\" in background_agents.bad"));
	conf_errors_free(&e);

	/* The name is agent_id, and it is checked as a name. */
	ck_assert_ptr_null(json_agent("{\"interval\": 5}", &e));
	ck_assert(has_error(&e, "", "agent_id is required (the agent's name: a text)"));
	conf_errors_free(&e);
	ck_assert_ptr_null(json_agent("{\"agent_id\": 7}", &e));
	ck_assert(has_error(&e, "/agent_id", "/agent_id: agent_id is not a text (the agent's "
	    "name: a text)"));
	conf_errors_free(&e);
	ck_assert_ptr_null(json_agent("{\"agent_id\": \"a b\"}", &e));
	ck_assert(has_error(&e, "/agent_id", "/agent_id: agent name \"a b\" must be 1-64 "
	    "characters of A-Z a-z 0-9 _ . -"));
	conf_errors_free(&e);
	unsetenv("AGENTD_T_NOTE");
	ck_assert_ptr_null(json_agent("{\"agent_id\": \"v\", \"system_instruction\": "
	    "\"${AGENTD_T_NOTE}\"}", &e));
	ck_assert_msg(e.n == 1 && !strcmp(e.pointers[0], "/system_instruction"), "%s",
	    e.n ? e.msgs[0] : "none");
	conf_errors_free(&e);
}
END_TEST

/* JSON into YAML and back: the same value (export's round trip). */
START_TEST(yaml_json_round_trip)
{
	const char *text = "{\"agent_id\": \"a\", \"s\": \"true\", \"n\": \"42\", \"i\": 42, "
	    "\"r\": 1.5, \"b\": false, \"z\": null, \"l\": [\"x\", 1, {\"k\": \"two\\nlines\"}], "
	    "\"e\": {}, \"q\": \"it's: #1\", \"on\": \"on\"}";
	json_t *v = json_loads(text, 0, NULL);
	char *yaml = yaml_from_json(v), err[256];
	ck_assert_ptr_nonnull(yaml);
	struct ynode *root = ytree_parse(yaml, strlen(yaml), err, sizeof(err));
	ck_assert_msg(root != NULL, "%s: %s", err, yaml);
	json_t *back = ytree_to_json(root, err, sizeof(err));
	ck_assert_msg(json_equal(v, back), "%s", yaml);
	json_decref(back);
	ytree_free(root);
	free(yaml);
	json_decref(v);

	/* YAML as the file types it: plain words are booleans, numbers, null */
	const char *y = "a: yes\nb: 07\nc: ~\nd: on\ne: '1'\nf: 1e3\n";
	root = ytree_parse(y, strlen(y), err, sizeof(err));
	ck_assert_ptr_nonnull(root);
	back = ytree_to_json(root, err, sizeof(err));
	json_t *want = json_pack("{s:b, s:i, s:n, s:s, s:s, s:f}", "a", 1, "b", 7, "c", "d", "on",
	    "e", "1", "f", 1000.0);
	ck_assert_msg(json_equal(back, want), "%s", json_dumps(back, 0));
	json_decref(want);
	json_decref(back);
	ytree_free(root);
}
END_TEST

START_TEST(merge_patch)
{
	/* RFC 7396's appendix A, and a patch that is not an object */
	static const char *const cases[][3] = {
		{ "{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}" },
		{ "{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}" },
		{ "{\"a\":\"b\"}", "{\"a\":null}", "{}" },
		{ "{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}" },
		{ "{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}" },
		{ "{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}" },
		{ "{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}", "{\"a\":{\"b\":\"d\"}}" },
		{ "{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}" },
		{ "[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]" },
		{ "{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]" },
		{ "{\"a\":\"foo\"}", "null", "null" },
		{ "{\"a\":\"foo\"}", "\"bar\"", "\"bar\"" },
		{ "{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}" },
		{ "[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}" },
		{ "{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		json_t *t = json_loads(cases[i][0], JSON_DECODE_ANY, NULL);
		json_t *p = json_loads(cases[i][1], JSON_DECODE_ANY, NULL);
		json_t *want = json_loads(cases[i][2], JSON_DECODE_ANY, NULL);
		json_t *before = json_deep_copy(t);
		json_t *got = json_merge_patch(t, p);
		ck_assert_msg(json_equal(got, want), "case %zu: %s", i, json_dumps(got, JSON_ENCODE_ANY));
		ck_assert_msg(json_equal(t, before), "case %zu changed its target", i);
		json_decref(t);
		json_decref(p);
		json_decref(want);
		json_decref(before);
		json_decref(got);
	}
}
END_TEST

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
	tcase_add_test(tc, schema_mistakes);
	tcase_add_test(tc, normalized_spec);
	tcase_add_test(tc, providers);
	tcase_add_test(tc, api_key_warnings);
	tcase_add_test(tc, embeddings_config);
	tcase_add_test(tc, spec_bounds);
	tcase_add_test(tc, qdrant_block);
	tcase_add_test(tc, http_block);
	tcase_add_test(tc, env_secrets);
	tcase_add_test(tc, fingerprint_covers_everything);
	tcase_add_test(tc, agent_from_json);
	tcase_add_test(tc, yaml_json_round_trip);
	tcase_add_test(tc, merge_patch);
	tcase_add_test(tc, cron_expressions);
	tcase_add_test(tc, cron_across_dst);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
