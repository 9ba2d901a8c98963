/*
 * config: YAML -> struct config, with every mistake reported as
 * file:line:column.
 *
 * The file must be a regular file of text (no NUL byte) of at most
 * CONFIG_FILE_MAX bytes: agentd reads it again on every reload, and a FIFO
 * or a device would block it or never end.
 *
 * Three passes over the node tree (conf/yamltree.c): expand ${VAR} in every
 * scalar value; walk the known schema, converting values and collecting
 * errors (the walk goes on after an error, so one run of --check-config
 * shows every mistake); then resolve what needs the whole file (task
 * references, duplicate agent ids) and apply the seed's environment
 * overrides.  Free-form subtrees become JSON; the agent's whole mapping,
 * as JSON, is the spec its worker receives.
 */
#include <errno.h>
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/buf.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/util.h"
#include "conf/config.h"
#include "conf/yamltree.h"

struct loader {
	const char *file;
	struct conf_errors *errs;
	struct config *cfg;
};

static void __attribute__((format(printf, 3, 4)))
err_at(struct loader *L, const struct ynode *n, const char *fmt, ...)
{
	char msg[768], *line;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	size_t len = strlen(L->file) + strlen(msg) + 32;
	line = xmalloc(len);
	snprintf(line, len, "%s:%d:%d: %s", L->file, n ? n->line : 1, n ? n->col : 1, msg);
	L->errs->msgs = xrealloc(L->errs->msgs, (L->errs->n + 1) * sizeof(char *));
	L->errs->msgs[L->errs->n++] = line;
}

void
conf_errors_free(struct conf_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->msgs[i]);
	free(e->msgs);
	e->msgs = NULL;
	e->n = 0;
}

/* ---- ${VAR} interpolation ------------------------------------------------- */

static bool
env_name_char(char c, bool first)
{
	return c == '_' || isalpha((unsigned char)c) || (!first && isdigit((unsigned char)c));
}

/* Expands s; NULL (with an error at n) when a variable is unset with no
 * default or the syntax is broken. */
static char *
interpolate(struct loader *L, const struct ynode *n, const char *s)
{
	struct buf out;
	buf_init(&out);
	for (const char *p = s; *p; ) {
		if (p[0] == '$' && p[1] == '$') {
			buf_append(&out, "$", 1);
			p += 2;
			continue;
		}
		if (p[0] != '$' || p[1] != '{') {
			buf_append(&out, p++, 1);
			continue;
		}
		const char *name = p + 2, *e = name;
		while (env_name_char(*e, e == name))
			e++;
		const char *close = strchr(e, '}');
		if (e == name || close == NULL || (*e != '}' && strncmp(e, ":-", 2) != 0)) {
			err_at(L, n, "bad variable reference in \"%s\" (use ${NAME} or ${NAME:-default})", s);
			buf_free(&out);
			return NULL;
		}
		char var[256];
		snprintf(var, sizeof(var), "%.*s", (int)(e - name), name);
		const char *val = getenv(var);
		if (val == NULL || (*e == ':' && *val == '\0')) {
			if (*e != ':') {
				err_at(L, n, "environment variable %s is not set (use ${%s:-default})",
				    var, var);
				buf_free(&out);
				return NULL;
			}
			buf_append(&out, e + 2, (size_t)(close - e - 2));
		} else
			buf_append(&out, val, strlen(val));
		p = close + 1;
	}
	buf_append(&out, "", 1);
	return (char *)out.data;
}

static void
interpolate_tree(struct loader *L, struct ynode *n)
{
	if (n->kind == Y_SCALAR) {
		if (strchr(n->value, '$') == NULL)
			return;
		char *v = interpolate(L, n, n->value);
		if (v) {
			free(n->value);
			n->value = v;
			n->len = strlen(v);
		}
		return;
	}
	for (size_t i = 0; i < n->n; i++)
		interpolate_tree(L, n->vals[i]);
}

/* ---- scalar conversions --------------------------------------------------- */

static bool
is_scalar(struct loader *L, const struct ynode *n, const char *path)
{
	if (n->kind == Y_SCALAR)
		return true;
	err_at(L, n, "%s must be a single value, not a %s", path,
	    n->kind == Y_MAP ? "mapping" : "list");
	return false;
}

static bool
get_str(struct loader *L, const struct ynode *n, const char *path, char **out)
{
	if (!is_scalar(L, n, path))
		return false;
	free(*out);
	*out = n->is_null ? NULL : xstrdup(n->value);
	return true;
}

static bool
parse_int(const char *s, long long *v)
{
	char *end;
	errno = 0;
	*v = strtoll(s, &end, 10);
	return *s && *end == '\0' && errno == 0;
}

static bool
get_int(struct loader *L, const struct ynode *n, const char *path, long long min,
    long long max, int64_t *out)
{
	long long v;
	if (!is_scalar(L, n, path))
		return false;
	if (n->quoted || !parse_int(n->value, &v)) {
		err_at(L, n, "%s must be an integer, not \"%s\"", path, n->value);
		return false;
	}
	if (v < min || v > max) {
		err_at(L, n, "%s must be between %lld and %lld", path, min, max);
		return false;
	}
	*out = v;
	return true;
}

static int
bool_word(const char *s)
{
	static const char *yes[] = { "true", "True", "TRUE", "yes", "Yes", "on", "On" };
	static const char *no[] = { "false", "False", "FALSE", "no", "No", "off", "Off" };
	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (!strcmp(s, yes[i]))
			return 1;
		if (!strcmp(s, no[i]))
			return 0;
	}
	return -1;
}

static bool
get_bool(struct loader *L, const struct ynode *n, const char *path, bool *out)
{
	if (!is_scalar(L, n, path))
		return false;
	int b = n->quoted ? -1 : bool_word(n->value);
	if (b < 0) {
		err_at(L, n, "%s must be true or false, not \"%s\"", path, n->value);
		return false;
	}
	*out = b;
	return true;
}

static bool
get_duration(struct loader *L, const struct ynode *n, const char *path, int64_t *out)
{
	if (!is_scalar(L, n, path))
		return false;
	if (parse_duration(n->value, out) < 0) {
		err_at(L, n, "%s: bad duration \"%s\" (use seconds or e.g. 90s, 5m, 1h30m)",
		    path, n->value);
		return false;
	}
	return true;
}

static bool
get_size(struct loader *L, const struct ynode *n, const char *path, int64_t *out)
{
	if (!is_scalar(L, n, path))
		return false;
	if (parse_size(n->value, out) < 0) {
		err_at(L, n, "%s: bad size \"%s\" (use bytes or e.g. 64k, 512M, 2G)",
		    path, n->value);
		return false;
	}
	return true;
}

static bool
get_choice(struct loader *L, const struct ynode *n, const char *path,
    const char *const *choices, int *out)
{
	if (!is_scalar(L, n, path))
		return false;
	for (int i = 0; choices[i]; i++)
		if (!strcmp(n->value, choices[i])) {
			*out = i;
			return true;
		}
	char list[256] = "";
	for (int i = 0; choices[i]; i++) {
		strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
		strncat(list, choices[i], sizeof(list) - strlen(list) - 1);
	}
	err_at(L, n, "%s must be one of %s, not \"%s\"", path, list, n->value);
	return false;
}

static bool
want_kind(struct loader *L, const struct ynode *n, enum ynode_kind k, const char *path)
{
	if (n->kind == k)
		return true;
	if (k == Y_MAP && n->kind == Y_SCALAR && n->is_null)
		return true;	/* "key:" with nothing: an empty mapping */
	err_at(L, n, "%s must be a %s", path, k == Y_MAP ? "mapping" : "list");
	return false;
}

/* "a.b" for messages; a path too long to print is cut, never an error. */
static void
join_path(char *out, size_t len, const char *a, const char *b)
{
	if (snprintf(out, len, "%s.%s", a, b) >= (int)len)
		out[len - 1] = '\0';
}

/* ---- YAML -> JSON --------------------------------------------------------- */

static json_t *
to_json(const struct ynode *n)
{
	long long iv;
	if (n->kind == Y_MAP) {
		json_t *o = json_object();
		for (size_t i = 0; i < n->n; i++)
			json_object_set_new(o, n->keys[i]->value, to_json(n->vals[i]));
		return o;
	}
	if (n->kind == Y_SEQ) {
		json_t *a = json_array();
		for (size_t i = 0; i < n->n; i++)
			json_array_append_new(a, to_json(n->vals[i]));
		return a;
	}
	if (n->quoted)
		return json_stringn(n->value, n->len) ?: json_string("");
	if (n->is_null)
		return json_null();
	int b = bool_word(n->value);
	if (b >= 0 && (strcmp(n->value, "on") && strcmp(n->value, "off") &&
	    strcmp(n->value, "On") && strcmp(n->value, "Off")))
		return json_boolean(b);
	if (parse_int(n->value, &iv))
		return json_integer(iv);
	char *end;
	double d = strtod(n->value, &end);
	if (*n->value && *end == '\0' && strpbrk(n->value, "0123456789") &&
	    !strpbrk(n->value, "xXnN"))
		return json_real(d);
	return json_stringn(n->value, n->len) ?: json_string("");
}

/* ---- duplicate keys and unknown keys --------------------------------------- */

static void
check_duplicates(struct loader *L, const struct ynode *n, const char *path)
{
	if (n->kind != Y_MAP)
		return;
	for (size_t i = 0; i < n->n; i++)
		for (size_t j = 0; j < i; j++)
			if (!strcmp(n->keys[i]->value, n->keys[j]->value)) {
				err_at(L, n->keys[i], "duplicate key \"%s\" in %s (first at line %d)",
				    n->keys[i]->value, path, n->keys[j]->line);
				break;
			}
}

/* ---- the agentd block ------------------------------------------------------ */

static void
global_defaults(struct global_conf *g)
{
	memset(g, 0, sizeof(*g));
	g->state_dir = xstrdup("/var/lib/agentd");
	g->log_level = LL_INFO;
	g->event_store = xstrdup("database");
	g->memory_store = xstrdup("database");
	g->state_store = xstrdup("database");
	g->event_retention = 100000;
	g->memory_retention = 10000;
	g->stop_grace_ms = 10000;
	g->ack_timeout_ms = 10000;
	g->redis_host = xstrdup("127.0.0.1");
	g->redis_port = 6379;
	g->redis_stream_key = xstrdup("background_agent_events");
	g->redis_stream_maxlen = 100000;
}

static const char *const event_stores[] = { "memory", "database", "redis_stream", NULL };
static const char *const state_stores[] = { "database", "redis", NULL };
static const char *const memory_stores[] = { "memory", "database", "redis", "qdrant",
	"chromadb", NULL };

static void
parse_redis(struct loader *L, const struct ynode *m, struct global_conf *g)
{
	int64_t v;
	if (!want_kind(L, m, Y_MAP, "agentd.redis"))
		return;
	check_duplicates(L, m, "agentd.redis");
	for (size_t i = 0; i < m->n; i++) {
		const char *k = m->keys[i]->value;
		const struct ynode *n = m->vals[i];
		if (!strcmp(k, "host"))
			get_str(L, n, "agentd.redis.host", &g->redis_host);
		else if (!strcmp(k, "port")) {
			if (get_int(L, n, "agentd.redis.port", 1, 65535, &v))
				g->redis_port = (int)v;
		} else if (!strcmp(k, "db")) {
			if (get_int(L, n, "agentd.redis.db", 0, 1 << 20, &v))
				g->redis_db = (int)v;
		} else if (!strcmp(k, "password"))
			get_str(L, n, "agentd.redis.password", &g->redis_password);
		else if (!strcmp(k, "socket"))
			get_str(L, n, "agentd.redis.socket", &g->redis_socket);
		else if (!strcmp(k, "stream_key"))
			get_str(L, n, "agentd.redis.stream_key", &g->redis_stream_key);
		else if (!strcmp(k, "stream_maxlen"))
			get_int(L, n, "agentd.redis.stream_maxlen", 1, INT64_MAX, &g->redis_stream_maxlen);
		else
			err_at(L, m->keys[i], "unknown key \"%s\" in agentd.redis", k);
	}
}

static void
parse_global(struct loader *L, const struct ynode *m, struct global_conf *g)
{
	int choice;
	if (!want_kind(L, m, Y_MAP, "agentd"))
		return;
	check_duplicates(L, m, "agentd");
	for (size_t i = 0; i < m->n; i++) {
		const char *k = m->keys[i]->value;
		const struct ynode *n = m->vals[i];
		static const char *const levels[] = { "error", "warn", "info", "debug", NULL };
		static const char *const formats[] = { "text", "json", NULL };
		if (!strcmp(k, "state_dir"))
			get_str(L, n, "agentd.state_dir", &g->state_dir);
		else if (!strcmp(k, "control_socket"))
			get_str(L, n, "agentd.control_socket", &g->control_socket);
		else if (!strcmp(k, "log_level")) {
			if (get_choice(L, n, "agentd.log_level", levels, &choice))
				g->log_level = choice;
		} else if (!strcmp(k, "log_format")) {
			if (get_choice(L, n, "agentd.log_format", formats, &choice))
				g->log_json = choice == 1;
		} else if (!strcmp(k, "log_file"))
			get_str(L, n, "agentd.log_file", &g->log_file);
		else if (!strcmp(k, "event_store")) {
			if (get_choice(L, n, "agentd.event_store", event_stores, &choice)) {
				free(g->event_store);
				g->event_store = xstrdup(event_stores[choice]);
			}
		} else if (!strcmp(k, "memory_store")) {
			if (get_choice(L, n, "agentd.memory_store", memory_stores, &choice)) {
				free(g->memory_store);
				g->memory_store = xstrdup(memory_stores[choice]);
			}
		} else if (!strcmp(k, "state_store")) {
			if (get_choice(L, n, "agentd.state_store", state_stores, &choice)) {
				free(g->state_store);
				g->state_store = xstrdup(state_stores[choice]);
			}
		} else if (!strcmp(k, "database_url"))
			get_str(L, n, "agentd.database_url", &g->database_url);
		else if (!strcmp(k, "event_retention"))
			get_int(L, n, "agentd.event_retention", 1, INT64_MAX, &g->event_retention);
		else if (!strcmp(k, "memory_retention"))
			get_int(L, n, "agentd.memory_retention", 1, INT64_MAX, &g->memory_retention);
		else if (!strcmp(k, "stop_grace"))
			get_duration(L, n, "agentd.stop_grace", &g->stop_grace_ms);
		else if (!strcmp(k, "ack_timeout"))
			get_duration(L, n, "agentd.ack_timeout", &g->ack_timeout_ms);
		else if (!strcmp(k, "worker_path"))
			get_str(L, n, "agentd.worker_path", &g->worker_path);
		else if (!strcmp(k, "redis"))
			parse_redis(L, n, g);
		else
			err_at(L, m->keys[i], "unknown key \"%s\" in agentd", k);
	}
}

/* The seed's variables win over the file, as the seed documents them. */
static void
env_overrides(struct loader *L, struct global_conf *g)
{
	const char *v;
	long long n;
	struct { const char *var; const char *const *choices; char **field; } stores[] = {
		{ "EVENT_STORE_TYPE", event_stores, &g->event_store },
		{ "MEMORY_STORE_TYPE", memory_stores, &g->memory_store },
	};
	for (size_t i = 0; i < ARRAY_LEN(stores); i++) {
		if ((v = getenv(stores[i].var)) == NULL || !*v)
			continue;
		int ok = 0;
		for (int c = 0; stores[i].choices[c]; c++)
			ok |= !strcmp(v, stores[i].choices[c]);
		if (!ok) {
			err_at(L, NULL, "environment variable %s: unknown store \"%s\"",
			    stores[i].var, v);
			continue;
		}
		free(*stores[i].field);
		*stores[i].field = xstrdup(v);
	}
	if ((v = getenv("REDIS_HOST")) && *v) {
		free(g->redis_host);
		g->redis_host = xstrdup(v);
	}
	if ((v = getenv("REDIS_PORT")) && *v) {
		if (!parse_int(v, &n) || n < 1 || n > 65535)
			err_at(L, NULL, "environment variable REDIS_PORT: bad port \"%s\"", v);
		else
			g->redis_port = (int)n;
	}
	if ((v = getenv("REDIS_DB")) && *v) {
		if (!parse_int(v, &n) || n < 0)
			err_at(L, NULL, "environment variable REDIS_DB: bad number \"%s\"", v);
		else
			g->redis_db = (int)n;
	}
	if ((v = getenv("REDIS_PASSWORD")) && *v) {	/* not in the seed: keeps it out of the file */
		free(g->redis_password);
		g->redis_password = xstrdup(v);
	}
	if ((v = getenv("REDIS_STREAM_KEY")) && *v) {
		free(g->redis_stream_key);
		g->redis_stream_key = xstrdup(v);
	}
}

/* ---- agents ----------------------------------------------------------------- */

static void
agent_defaults(struct agent_conf *a)
{
	a->max_retries = 3;
	a->retry_delay_ms = 60000;
	a->retry_max_delay_ms = 3600000;
	a->run_timeout_ms = 3600000;
	a->restart = RESTART_ALWAYS;
	a->restart_max = 5;
	a->restart_window_ms = 60000;
	a->backoff_ms = 1000;
	a->backoff_max_ms = 60000;
	a->stable_ms = 10000;
}

static void
parse_interval(struct loader *L, const struct ynode *n, const char *path, struct agent_conf *a)
{
	char err[200];
	if (!is_scalar(L, n, path))
		return;
	free(a->schedule_text);
	a->schedule_text = xstrdup(n->value);
	if (cron_looks_like(n->value)) {
		if (cron_parse(n->value, &a->cron, err, sizeof(err)) < 0) {
			err_at(L, n, "%s: bad cron expression \"%s\": %s", path, n->value, err);
			return;
		}
		a->sched = SCHED_CRON;
		return;
	}
	if (get_duration(L, n, path, &a->interval_ms)) {
		if (a->interval_ms < 100) {
			err_at(L, n, "%s must be at least 100ms", path);
			return;
		}
		a->sched = SCHED_INTERVAL;
	}
}

static void
parse_restart(struct loader *L, const struct ynode *n, const char *path, struct agent_conf *a)
{
	static const char *const policies[] = { "always", "on-failure", "never", NULL };
	int p;
	int64_t v;
	char sub[512];
	if (n->kind == Y_SCALAR) {
		if (get_choice(L, n, path, policies, &p))
			a->restart = p;
		return;
	}
	if (!want_kind(L, n, Y_MAP, path))
		return;
	check_duplicates(L, n, path);
	for (size_t i = 0; i < n->n; i++) {
		const char *k = n->keys[i]->value;
		const struct ynode *v_n = n->vals[i];
		join_path(sub, sizeof(sub), path, k);
		if (!strcmp(k, "policy")) {
			if (get_choice(L, v_n, sub, policies, &p))
				a->restart = p;
		} else if (!strcmp(k, "max_restarts")) {
			if (get_int(L, v_n, sub, 0, 1000000, &v))
				a->restart_max = (int)v;
		} else if (!strcmp(k, "window"))
			get_duration(L, v_n, sub, &a->restart_window_ms);
		else if (!strcmp(k, "backoff"))
			get_duration(L, v_n, sub, &a->backoff_ms);
		else if (!strcmp(k, "max_backoff"))
			get_duration(L, v_n, sub, &a->backoff_max_ms);
		else if (!strcmp(k, "stable_after"))
			get_duration(L, v_n, sub, &a->stable_ms);
		else
			err_at(L, n->keys[i], "unknown key \"%s\" in %s", k, path);
	}
}

static void
parse_limits(struct loader *L, const struct ynode *n, const char *path, struct limits *l)
{
	char sub[512];
	if (!want_kind(L, n, Y_MAP, path))
		return;
	check_duplicates(L, n, path);
	for (size_t i = 0; i < n->n; i++) {
		const char *k = n->keys[i]->value;
		const struct ynode *v = n->vals[i];
		join_path(sub, sizeof(sub), path, k);
		if (!strcmp(k, "memory"))
			get_size(L, v, sub, &l->memory);
		else if (!strcmp(k, "open_files"))
			get_int(L, v, sub, 16, 1 << 20, &l->nofile);
		else if (!strcmp(k, "processes"))
			get_int(L, v, sub, 1, 1 << 22, &l->nproc);
		else if (!strcmp(k, "cpu_time"))
			get_duration(L, v, sub, &l->cpu_ms);
		else if (!strcmp(k, "cpu")) {
			char *end;
			if (is_scalar(L, v, sub)) {
				double d = strtod(v->value, &end);
				if (*end || d <= 0 || d > 4096)
					err_at(L, v, "%s must be a number of cores, e.g. 0.5", sub);
				else
					l->cpu_quota = d;
			}
		} else
			err_at(L, n->keys[i], "unknown key \"%s\" in %s", k, path);
	}
}

static void
parse_env(struct loader *L, const struct ynode *n, const char *path, struct agent_conf *a)
{
	if (!want_kind(L, n, Y_MAP, path))
		return;
	check_duplicates(L, n, path);
	a->env = xcalloc(n->n + 1, sizeof(char *));
	size_t k = 0;
	for (size_t i = 0; i < n->n; i++) {
		const char *name = n->keys[i]->value;
		bool ok = *name != '\0';
		for (const char *p = name; *p; p++)
			ok &= env_name_char(*p, p == name);
		if (!ok) {
			err_at(L, n->keys[i], "%s: \"%s\" is not a valid variable name", path, name);
			continue;
		}
		if (!is_scalar(L, n->vals[i], path))
			continue;
		const char *val = n->vals[i]->is_null ? "" : n->vals[i]->value;
		size_t len = strlen(name) + strlen(val) + 2;
		a->env[k] = xmalloc(len);
		snprintf(a->env[k++], len, "%s=%s", name, val);
	}
}

/* What the worker would refuse at start, said here with a position. */
static void
check_mcp_server(struct loader *L, const struct ynode *t, const char *path)
{
	static const char *const transports[] = { "stdio", "streamable_http", "sse", NULL };
	const struct ynode *n = ymap_get(t, "transport_type");

	if (n && n->kind == Y_SCALAR && !n->is_null) {
		int i;
		for (i = 0; transports[i] && strcmp(transports[i], n->value); i++)
			;
		if (transports[i] == NULL)
			err_at(L, n, "%s: transport_type must be stdio, streamable_http or sse, "
			    "not \"%s\"", path, n->value);
	}
	n = ymap_get(t, "name");
	if (n->kind != Y_SCALAR || n->is_null || strlen(n->value) == 0 || strlen(n->value) > 32 ||
	    strspn(n->value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
	    strlen(n->value))
		err_at(L, n, "%s: a server name is 1-32 of A-Z a-z 0-9 _ -", path);
}

static void
check_tool_lists(struct loader *L, const struct ynode *m, const char *path)
{
	const struct ynode *n;
	char sub[512];
	if ((n = ymap_get(m, "local_tools")) && !(n->kind == Y_SCALAR && n->is_null)) {
		snprintf(sub, sizeof(sub), "%s.local_tools", path);
		if (want_kind(L, n, Y_SEQ, sub))
			for (size_t i = 0; i < n->n; i++) {
				const struct ynode *t = n->vals[i];
				if (t->kind == Y_SEQ || (t->kind == Y_MAP && !ymap_get(t, "name")))
					err_at(L, t, "%s: each item is a tool name or a mapping with a name", sub);
			}
	}
	if ((n = ymap_get(m, "mcp_tools")) && !(n->kind == Y_SCALAR && n->is_null)) {
		snprintf(sub, sizeof(sub), "%s.mcp_tools", path);
		if (want_kind(L, n, Y_SEQ, sub))
			for (size_t i = 0; i < n->n; i++) {
				const struct ynode *t = n->vals[i];
				if (t->kind != Y_MAP || !ymap_get(t, "name") ||
				    (!ymap_get(t, "command") && !ymap_get(t, "url")))
					err_at(L, t, "%s: each server is a mapping with a name and a "
					    "command (stdio) or a url", sub);
				else
					check_mcp_server(L, t, sub);
			}
	}
}

/* Keys the worker reads, kept as JSON in the spec; their shape checked here. */
static const char *const free_keys[] = { "system_instruction", "model_config",
	"task_config", "local_tools", "mcp_tools", "agent_config", "memory_limit",
	"run_model", "watch", "description", NULL };

static bool
is_free_key(const char *k)
{
	for (int i = 0; free_keys[i]; i++)
		if (!strcmp(k, free_keys[i]))
			return true;
	return false;
}

static void
parse_agent_key(struct loader *L, const struct ynode *keyn, const struct ynode *n,
    const char *path, struct agent_conf *a, const char **task_ref,
    const struct ynode **task_node)
{
	static const char *const overlaps[] = { "skip", "queue", "cancel_previous", NULL };
	const char *k = keyn->value;
	int64_t v;
	int choice;
	char sub[512];
	join_path(sub, sizeof(sub), path, k);

	if (!strcmp(k, "agent_id"))
		get_str(L, n, sub, &a->agent_id);
	else if (!strcmp(k, "interval"))
		parse_interval(L, n, sub, a);
	else if (!strcmp(k, "max_retries")) {
		if (get_int(L, n, sub, 0, 1000, &v))
			a->max_retries = (int)v;
	} else if (!strcmp(k, "retry_delay"))
		get_duration(L, n, sub, &a->retry_delay_ms);
	else if (!strcmp(k, "retry_max_delay"))
		get_duration(L, n, sub, &a->retry_max_delay_ms);
	else if (!strcmp(k, "run_timeout")) {
		if (n->kind == Y_SCALAR && !strcmp(n->value, "none"))
			a->run_timeout_ms = 0;
		else
			get_duration(L, n, sub, &a->run_timeout_ms);
	} else if (!strcmp(k, "run_on_start"))
		get_bool(L, n, sub, &a->run_on_start);
	else if (!strcmp(k, "debug"))
		get_bool(L, n, sub, &a->debug);
	else if (!strcmp(k, "overlap")) {
		if (get_choice(L, n, sub, overlaps, &choice))
			a->overlap = choice;
	} else if (!strcmp(k, "restart"))
		parse_restart(L, n, sub, a);
	else if (!strcmp(k, "limits"))
		parse_limits(L, n, sub, &a->limits);
	else if (!strcmp(k, "user"))
		get_str(L, n, sub, &a->user);
	else if (!strcmp(k, "group"))
		get_str(L, n, sub, &a->group);
	else if (!strcmp(k, "env"))
		parse_env(L, n, sub, a);
	else if (!strcmp(k, "task")) {
		if (is_scalar(L, n, sub)) {
			*task_ref = n->value;
			*task_node = n;
		}
	} else if (!strcmp(k, "task_config") || !strcmp(k, "model_config") ||
	    !strcmp(k, "agent_config")) {
		want_kind(L, n, Y_MAP, sub);
	} else if (!strcmp(k, "memory_limit")) {
		get_int(L, n, sub, 0, 100000, &v);
	} else if (!is_free_key(k))
		err_at(L, keyn, "unknown key \"%s\" in %s", k, path);
}

static bool
valid_agent_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("_.-", *p))
			return false;
	return strcmp(s, ".") && strcmp(s, "..");
}

static void
fingerprint(struct agent_conf *a)
{
	char *text = json_dumps(a->spec, JSON_SORT_KEYS | JSON_COMPACT);
	uint64_t h1 = 1469598103934665603ULL, h2 = 1099511628211ULL * 31;
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		h1 = (h1 ^ *p) * 1099511628211ULL;
		h2 = (h2 ^ *p) * 0x100000001b3ULL + 0x9e3779b97f4a7c15ULL;
	}
	free(text);
	char hex[40];
	snprintf(hex, sizeof(hex), "%016llx%016llx", (unsigned long long)h1,
	    (unsigned long long)h2);
	a->fingerprint = xstrdup(hex);
}

static void
resolve_task(struct loader *L, struct agent_conf *a, const char *task_ref,
    const struct ynode *task_node, const char *path)
{
	json_t *inline_tc = json_object_get(a->spec, "task_config");
	json_t *tc = json_is_object(inline_tc) ? json_deep_copy(inline_tc) : json_object();
	if (task_ref) {
		json_t *t = json_object_get(L->cfg->tasks, task_ref);
		if (t == NULL)
			err_at(L, task_node, "%s.task: no task \"%s\" in the tasks registry",
			    path, task_ref);
		else {
			json_t *merged = json_deep_copy(json_object_get(t, "config"));
			if (!json_is_object(merged)) {
				json_decref(merged);
				merged = json_object();
			}
			json_object_update(merged, tc);
			json_decref(tc);
			tc = merged;
			json_t *d = json_object_get(t, "description");
			if (d)
				json_object_set(a->spec, "task_description", d);
		}
	}
	json_object_set_new(a->spec, "task_config", tc);
}

static void
parse_agent(struct loader *L, const char *name, const struct ynode *key,
    const struct ynode *m, struct agent_conf *a)
{
	char path[128];
	const char *task_ref = NULL;
	const struct ynode *task_node = NULL;

	snprintf(path, sizeof(path), "background_agents.%s", name);
	agent_defaults(a);
	a->name = xstrdup(name);
	a->line = key->line;
	a->col = key->col;
	if (!valid_agent_name(name))
		err_at(L, key, "agent name \"%s\" must be 1-64 characters of A-Z a-z 0-9 _ . -",
		    name);
	if (!want_kind(L, m, Y_MAP, path)) {
		a->spec = json_object();
		a->agent_id = xstrdup(name);
		return;
	}
	check_duplicates(L, m, path);
	for (size_t i = 0; i < m->n; i++)
		parse_agent_key(L, m->keys[i], m->vals[i], path, a, &task_ref, &task_node);
	check_tool_lists(L, m, path);
	if (a->agent_id == NULL)
		a->agent_id = xstrdup(name);
	a->spec = m->kind == Y_MAP ? to_json(m) : json_object();
	json_object_set_new(a->spec, "name", json_string(name));
	json_object_set_new(a->spec, "agent_id", json_string(a->agent_id));
	resolve_task(L, a, task_ref, task_node, path);
	fingerprint(a);
}

static void
parse_tasks(struct loader *L, const struct ynode *m)
{
	if (!want_kind(L, m, Y_MAP, "tasks"))
		return;
	check_duplicates(L, m, "tasks");
	for (size_t i = 0; i < m->n; i++) {
		const char *id = m->keys[i]->value;
		const struct ynode *t = m->vals[i];
		char path[300];
		snprintf(path, sizeof(path), "tasks.%s", id);
		if (!want_kind(L, t, Y_MAP, path))
			continue;
		for (size_t k = 0; k < t->n; k++) {
			const char *key = t->keys[k]->value;
			char sub[700];
			join_path(sub, sizeof(sub), path, key);
			if (!strcmp(key, "description"))
				is_scalar(L, t->vals[k], sub);
			else if (!strcmp(key, "config"))
				want_kind(L, t->vals[k], Y_MAP, sub);
			else
				err_at(L, t->keys[k], "unknown key \"%s\" in %s (description, config)",
				    key, path);
		}
		json_object_set_new(L->cfg->tasks, id, t->kind == Y_MAP ? to_json(t) : json_object());
	}
}

static void
parse_agents(struct loader *L, const struct ynode *m)
{
	struct config *c = L->cfg;
	if (!want_kind(L, m, Y_MAP, "background_agents"))
		return;
	check_duplicates(L, m, "background_agents");
	c->agents = xcalloc(m->n ? m->n : 1, sizeof(*c->agents));
	for (size_t i = 0; i < m->n; i++) {
		bool dup = false;
		for (size_t j = 0; j < i; j++)
			dup |= !strcmp(m->keys[i]->value, m->keys[j]->value);
		if (dup)
			continue;	/* reported by check_duplicates */
		struct agent_conf *a = &c->agents[c->nagents++];
		parse_agent(L, m->keys[i]->value, m->keys[i], m->vals[i], a);
		for (size_t j = 0; j + 1 < c->nagents; j++)
			if (!strcmp(c->agents[j].agent_id, a->agent_id)) {
				const struct ynode *at = ymap_get(m->vals[i], "agent_id");
				err_at(L, at ? at : m->keys[i], "duplicate agent_id \"%s\" (also used "
				    "by agent \"%s\" at %s:%d:%d)", a->agent_id, c->agents[j].name,
				    L->file, c->agents[j].line, c->agents[j].col);
			}
	}
}

static int
load_tree(struct loader *L, struct ynode *root)
{
	struct config *c = L->cfg;
	const struct ynode *n;

	if (root->kind != Y_MAP) {
		err_at(L, root, "the file must be a mapping with background_agents:");
		return -1;
	}
	interpolate_tree(L, root);
	check_duplicates(L, root, "the top level");
	for (size_t i = 0; i < root->n; i++) {
		const char *k = root->keys[i]->value;
		if (strcmp(k, "background_agents") && strcmp(k, "agentd") && strcmp(k, "tasks"))
			err_at(L, root->keys[i], "unknown top-level key \"%s\" (background_agents, "
			    "agentd, tasks)", k);
	}
	if ((n = ymap_get(root, "agentd")))
		parse_global(L, n, &c->g);
	env_overrides(L, &c->g);
	if (c->g.control_socket == NULL) {
		size_t len = strlen(c->g.state_dir) + 16;
		c->g.control_socket = xmalloc(len);
		snprintf(c->g.control_socket, len, "%s/agentd.sock", c->g.state_dir);
	}
	if ((n = ymap_get(root, "tasks")))
		parse_tasks(L, n);
	if ((n = ymap_get(root, "background_agents")))
		parse_agents(L, n);
	else
		err_at(L, root, "missing background_agents:");
	return L->errs->n ? -1 : 0;
}

static int __attribute__((format(printf, 2, 3)))
one_error(struct conf_errors *errs, const char *fmt, ...)
{
	va_list ap;
	char msg[1024];
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	errs->msgs = xrealloc(errs->msgs, (errs->n + 1) * sizeof(char *));
	errs->msgs[errs->n++] = xstrdup(msg);
	return -1;
}

int
config_load_buffer(const char *name, const char *data, size_t len, struct config **out,
    struct conf_errors *errs)
{
	struct loader L = { .file = name, .errs = errs };
	char err[512];

	memset(errs, 0, sizeof(*errs));
	*out = NULL;
	const char *nul = memchr(data, '\0', len);
	if (nul) {
		int line = 1, col = 1;
		for (const char *p = data; p < nul; p++, col++)
			if (*p == '\n')
				line++, col = 0;
		return one_error(errs, "%s:%d:%d: contains a NUL byte (a configuration is text)",
		    name, line, col);
	}
	struct ynode *root = ytree_parse(data, len, err, sizeof(err));
	if (root == NULL)
		return one_error(errs, "%s:%s", name, err);
	L.cfg = xcalloc(1, sizeof(*L.cfg));
	L.cfg->path = xstrdup(name);
	L.cfg->tasks = json_object();
	global_defaults(&L.cfg->g);
	int rc = load_tree(&L, root);
	ytree_free(root);
	if (rc < 0) {
		config_free(L.cfg);
		return -1;
	}
	*out = L.cfg;
	return 0;
}

int
config_load_string(const char *name, const char *yaml, struct config **out,
    struct conf_errors *errs)
{
	return config_load_buffer(name, yaml, strlen(yaml), out, errs);
}

static const char *
file_kind(mode_t m)
{
	return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ?
	    "a character device" : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" :
	    "not a regular file";
}

/* Only a regular file: agentd reads the file again on every reload, and a
 * FIFO or a device would block it or never end. */
int
config_load(const char *path, struct config **out, struct conf_errors *errs)
{
	struct stat st;
	struct buf b;
	ssize_t n = 1;

	memset(errs, 0, sizeof(*errs));
	*out = NULL;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);	/* a FIFO must not block */
	if (fd < 0)
		return one_error(errs, "%s: cannot read: %s", path, strerror(errno));
	const char *why = fstat(fd, &st) < 0 ? strerror(errno) : NULL;
	if (why || !S_ISREG(st.st_mode) || st.st_size > (off_t)CONFIG_FILE_MAX) {
		close(fd);
		if (why)
			return one_error(errs, "%s: %s", path, why);
		if (!S_ISREG(st.st_mode))
			return one_error(errs, "%s: is %s, not a configuration file", path,
			    file_kind(st.st_mode));
		return one_error(errs, "%s: is larger than %u MiB", path, CONFIG_FILE_MAX >> 20);
	}
	buf_init(&b);
	while (n > 0 && b.len <= CONFIG_FILE_MAX) {	/* it may grow while we read */
		n = read(fd, buf_reserve(&b, 65536), 65536);
		if (n > 0)
			buf_commit(&b, (size_t)n);
		else if (n < 0 && errno == EINTR)
			n = 1;
	}
	int e = errno;
	close(fd);
	int rc = n < 0 ? one_error(errs, "%s: cannot read: %s", path, strerror(e)) :
	    b.len > CONFIG_FILE_MAX ? one_error(errs, "%s: is larger than %u MiB", path,
	    CONFIG_FILE_MAX >> 20) : config_load_buffer(path, (const char *)b.data, b.len, out, errs);
	buf_free(&b);
	return rc;
}

static void
agent_conf_clear(struct agent_conf *a)
{
	free(a->name);
	free(a->agent_id);
	free(a->schedule_text);
	free(a->user);
	free(a->group);
	for (char **e = a->env; e && *e; e++)
		free(*e);
	free(a->env);
	json_decref(a->spec);
	free(a->fingerprint);
}

void
config_free(struct config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nagents; i++)
		agent_conf_clear(&c->agents[i]);
	free(c->agents);
	struct global_conf *g = &c->g;
	free(g->state_dir);
	free(g->control_socket);
	free(g->log_file);
	free(g->event_store);
	free(g->memory_store);
	free(g->state_store);
	free(g->database_url);
	free(g->redis_host);
	free(g->redis_password);
	free(g->redis_socket);
	free(g->redis_stream_key);
	free(g->worker_path);
	json_decref(c->tasks);
	free(c->path);
	free(c);
}

const struct agent_conf *
config_find(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->nagents; i++)
		if (!strcmp(c->agents[i].name, name))
			return &c->agents[i];
	return NULL;
}

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

struct agent_conf *
agent_conf_dup(const struct agent_conf *a)
{
	struct agent_conf *d = xmalloc(sizeof(*d));
	*d = *a;
	d->name = xstrdup(a->name);
	d->agent_id = xstrdup(a->agent_id);
	d->schedule_text = dup_or_null(a->schedule_text);
	d->user = dup_or_null(a->user);
	d->group = dup_or_null(a->group);
	d->fingerprint = xstrdup(a->fingerprint);
	d->spec = json_deep_copy(a->spec);
	size_t n = 0;
	while (a->env && a->env[n])
		n++;
	d->env = NULL;
	if (a->env) {
		d->env = xcalloc(n + 1, sizeof(char *));
		for (size_t i = 0; i < n; i++)
			d->env[i] = xstrdup(a->env[i]);
	}
	return d;
}

void
agent_conf_free(struct agent_conf *a)
{
	if (a == NULL)
		return;
	agent_conf_clear(a);
	free(a);
}

const char *
overlap_name(enum overlap_policy p)
{
	static const char *names[] = { "skip", "queue", "cancel_previous" };
	return names[p];
}

const char *
restart_name(enum restart_policy p)
{
	static const char *names[] = { "always", "on-failure", "never" };
	return names[p];
}
