/*
 * config: YAML -> struct config, with every mistake reported as
 * file:line:column.
 *
 * The file is read whole, bounded (CONFIG_FILE_MAX, a regular file, text
 * without NUL bytes) and parsed into a tree that keeps every node's
 * position (conf/yamltree.c, which also bounds alias expansion).  Then:
 * expand ${VAR} in every scalar value; walk the tree against the schema
 * tables below (conf/schema.c: one row per key with its type, bounds or
 * choices and default), which reports every mistake and yields each
 * section's normalized JSON; resolve what needs the whole file (task
 * references, duplicate agent ids) and apply the seed's environment
 * overrides.
 *
 * An agent's rows marked F_SPEC make its spec, the normalized JSON its
 * worker receives (see config.h for its shape): defaults filled in,
 * durations in milliseconds, choices canonical, the provider resolved to
 * an endpoint (conf/provider.c), a command tool's inputSchema checked
 * against what the worker enforces (conf/argschema.c).  The spec is
 * measured as it will be sent -- depth and size, the bounds of
 * common/limits.h -- so an agent that loads can always be configured.
 * The other rows go to struct agent_conf for the supervisor.
 */
#include <errno.h>
#include <ctype.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "common/buf.h"
#include "common/jsonmp.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/util.h"
#include "conf/argschema.h"
#include "conf/config.h"
#include "conf/provider.h"
#include "conf/schema.h"
#include "conf/yamltree.h"

void
conf_errors_free(struct conf_errors *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->msgs[i]);
		free(e->pointers ? e->pointers[i] : NULL);
	}
	free(e->pointers);
	for (size_t i = 0; i < e->nwarnings; i++)
		free(e->warnings[i]);
	free(e->msgs);
	free(e->warnings);
	memset(e, 0, sizeof(*e));
}

char *
conf_errors_join(const struct conf_errors *e)
{
	struct buf b;
	buf_init(&b);
	for (size_t i = 0; i < e->n; i++) {
		if (i)
			buf_append(&b, "\n", 1);
		buf_append(&b, e->msgs[i], strlen(e->msgs[i]));
	}
	buf_append(&b, "", 1);
	return (char *)b.data;
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
		if (out.len > CONFIG_FILE_MAX) {
			err_at(L, n, "\"%.40s...\" expands past %u MiB", s, CONFIG_FILE_MAX >> 20);
			buf_free(&out);
			return NULL;
		}
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

/* ---- checks for single values (V_STR rows' conv) ----------------------------- */

#define SEC(n) ((int64_t)(n) * 1000)
#define MIN(n) (SEC(n) * 60)
#define HOUR(n) (MIN(n) * 60)
#define DAY(n) (HOUR(n) * 24)

static bool
chars_in(const char *s, const char *extra)
{
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(extra, *p))
			return false;
	return true;
}

static json_t *
check_env_name(struct walk *w, const struct ynode *n, const struct field *f)
{
	if (env_name_ok(n->value))
		return json_string(n->value);
	err_at(w->L, n, "%s: \"%s\" is not a valid variable name", w->path, n->value);
	return NULL;
}

/* What a model sees as a tool's name: OpenAI allows ^[a-zA-Z0-9_-]{1,64}$. */
static json_t *
check_tool_name(struct walk *w, const struct ynode *n, const struct field *f)
{
	if (n->len >= 1 && n->len <= 64 && chars_in(n->value, "_-"))
		return json_string(n->value);
	err_at(w->L, n, "%s: a tool name is 1-64 of A-Z a-z 0-9 _ -", w->path);
	return NULL;
}

static json_t *
check_server_name(struct walk *w, const struct ynode *n, const struct field *f)
{
	if (n->len >= 1 && n->len <= 32 && chars_in(n->value, "_-"))
		return json_string(n->value);
	err_at(w->L, n, "%s: a server name is 1-32 of A-Z a-z 0-9 _ -", w->path);
	return NULL;
}

static json_t *
check_abs_path(struct walk *w, const struct ynode *n, const struct field *f)
{
	if (n->value[0] == '/')
		return json_string(n->value);
	err_at(w->L, n, "%s must be an absolute path, not \"%s\" (the worker runs in its own "
	    "directory)", w->path, n->value);
	return NULL;
}

/* http(s)://host...; a base URL gets a path appended, so no query either. */
static json_t *
url_check(struct walk *w, const struct ynode *n, bool base)
{
	const char *v = n->value;
	size_t scheme = !strncmp(v, "https://", 8) ? 8 : !strncmp(v, "http://", 7) ? 7 : 0;
	bool ok = scheme && v[scheme] && v[scheme] != '/';
	for (const char *p = v; ok && *p; p++)
		ok = (unsigned char)*p > ' ' && *p != 0x7f && (!base || (*p != '?' && *p != '#'));
	if (ok)
		return json_string(v);
	err_at(w->L, n, "%s must be an http:// or https:// URL%s, not \"%s\"", w->path,
	    base ? " without ?query" : "", v);
	return NULL;
}

static json_t *
check_base_url(struct walk *w, const struct ynode *n, const struct field *f)
{
	return url_check(w, n, true);
}

static json_t *
check_url(struct walk *w, const struct ynode *n, const struct field *f)
{
	return url_check(w, n, false);
}

/* A Chroma tenant, database or collection name, as Chroma takes it: 3-63
 * of A-Z a-z 0-9 . _ - (collection names get "-MODEL-DIM" appended, within
 * Chroma's 512), starting and ending with a letter or digit. */
static json_t *
check_chroma_name(struct walk *w, const struct ynode *n, const struct field *f)
{
	const char *v = n->value;
	bool edge_ok = n->len && isalnum((unsigned char)v[0]) && isalnum((unsigned char)v[n->len - 1]);
	if (n->len >= 3 && n->len <= 63 && edge_ok && chars_in(v, "._-"))
		return json_string(v);
	err_at(w->L, n, "%s: a Chroma name is 3-63 of A-Z a-z 0-9 . _ -, starting and ending "
	    "with a letter or digit, not \"%s\"", w->path, v);
	return NULL;
}

static json_t *
check_pg_url(struct walk *w, const struct ynode *n, const struct field *f)
{
	if (!strncmp(n->value, "postgresql://", 13) || !strncmp(n->value, "postgres://", 11))
		return json_string(n->value);
	err_at(w->L, n, "%s must be a postgresql:// URL (the embedded SQLite store needs none)",
	    w->path);
	return NULL;
}

/* A user or group this host does not know fails the worker's start; the
 * service may run on another host, so it is a warning here. */
static json_t *
check_user(struct walk *w, const struct ynode *n, const struct field *f)
{
	bool group = !strcmp(f->key, "group");
	if (group ? getgrnam(n->value) == NULL : getpwnam(n->value) == NULL)
		warn_at(w->L, n, "%s: no %s \"%s\" on this host; the worker cannot start without "
		    "one", w->path, f->key, n->value);
	return json_string(n->value);
}

/* ---- custom rows ----------------------------------------------------------------- */

static json_t *
conv_interval(struct walk *w, const struct ynode *n, const struct field *f)
{
	struct agent_conf *a = w->base;
	char err[200];
	if (!want_scalar(w, n))
		return NULL;
	if (cron_looks_like(n->value)) {
		if (cron_parse(n->value, &a->cron, err, sizeof(err)) < 0) {
			err_at(w->L, n, "%s: bad cron expression \"%s\": %s", w->path, n->value, err);
			return NULL;
		}
		a->sched = SCHED_CRON;
	} else {
		static const struct field every = { "interval", V_DURATION, .min = 100,
			.max = DAY(366) };
		json_t *ms = walk_field(w, n, &every);
		if (ms == NULL)
			return NULL;
		a->sched = SCHED_INTERVAL;
		a->interval_ms = json_integer_value(ms);
		json_decref(ms);
	}
	free(a->schedule_text);
	a->schedule_text = xstrdup(n->value);
	return json_string(n->value);
}

static json_t *
conv_run_timeout(struct walk *w, const struct ynode *n, const struct field *f)
{
	static const struct field timeout = { "run_timeout", V_DURATION, .min = 100,
		.max = DAY(366) };
	if (n->kind == Y_SCALAR && !n->quoted && !strcmp(n->value, "none"))
		return json_integer(0);
	return walk_field(w, n, &timeout);
}

/* env: NAME: value, or NAME: {value: ..., secret: true}.  Both kinds go
 * into the worker's environment; a secret's value is also listed in
 * secret_env, for the redaction of everything agentd writes. */
static const struct field env_entry_fields[] = {
	{ "value", V_STR, F_REQUIRED, .min = 0 },
	{ "secret", V_BOOL, .dflt = "false" },
	{ NULL },
};
static const struct table env_entry_table = { .fields = env_entry_fields };

static json_t *
conv_env(struct walk *w, const struct ynode *n, const struct field *f)
{
	struct agent_conf *a = w->base;
	size_t nenv = 0, nsecret = 0;
	if (n->kind != Y_MAP) {
		err_at(w->L, n, "%s must be a mapping", w->path);
		return NULL;
	}
	check_duplicates(w->L, n, w->path);
	json_t *out = json_object();
	a->env = xcalloc(n->n + 1, sizeof(char *));
	a->secret_env = xcalloc(n->n + 1, sizeof(char *));
	for (size_t i = 0; i < n->n; i++) {
		const char *name = n->keys[i]->value;
		const struct ynode *v = n->vals[i];
		size_t mark = walk_push(w, name);
		json_t *entry = !env_name_ok(name) ? NULL : v->kind == Y_MAP ?
		    walk_table(w, v, &env_entry_table) : walk_field(w, v, env_entry_fields);
		if (!env_name_ok(name))
			err_at(w->L, n->keys[i], "%s: \"%s\" is not a valid variable name",
			    w->path, name);
		walk_pop(w, mark);
		const char *val = json_string_value(json_is_object(entry) ?
		    json_object_get(entry, "value") : entry);
		if (val && !json_object_get(out, name)) {
			size_t len = strlen(name) + strlen(val) + 2;
			a->env[nenv] = xmalloc(len);
			snprintf(a->env[nenv++], len, "%s=%s", name, val);
			if (json_is_true(json_object_get(entry, "secret")))
				a->secret_env[nsecret++] = xstrdup(val);
			json_object_set(out, name, entry);
		}
		json_decref(entry);
	}
	return out;
}

/* The node an argschema pointer ("/properties/x/pattern") names: the
 * keyword's key where it can, the deepest node found on the way else. */
static const struct ynode *
ynode_locate(const struct ynode *n, const char *pointer)
{
	char seg[256];
	const struct ynode *at = n;
	for (const char *p = pointer; *p == '/'; ) {
		size_t len = strcspn(p + 1, "/");
		snprintf(seg, sizeof(seg), "%.*s", (int)len, p + 1);
		p += len + 1;
		const struct ynode *next = NULL;
		for (size_t i = 0; n->kind == Y_MAP && i < n->n && next == NULL; i++)
			if (!strcmp(n->keys[i]->value, seg)) {
				next = n->vals[i];
				at = *p ? next : n->keys[i];
			}
		if (next == NULL)
			break;
		n = next;
	}
	return at;
}

static json_t *
conv_input_schema(struct walk *w, const struct ynode *n, const struct field *f)
{
	char err[512], at[256];
	if (n->kind != Y_MAP) {
		err_at(w->L, n, "%s must be a mapping (a JSON Schema)", w->path);
		return NULL;
	}
	json_t *s = conv_any(w, n, w->level + 1);
	if (s && argschema_check(s, err, sizeof(err), at, sizeof(at)) < 0) {
		err_at(w->L, ynode_locate(n, at), "%s: %s", w->path, err);
		json_decref(s);
		return NULL;
	}
	if (s && !json_object_get(s, "type"))	/* arguments are an object, said to the model */
		json_object_set_new(s, "type", json_string("object"));
	return s;
}

/* HTTP headers go on the wire as "Name: value" lines. */
static json_t *
conv_headers(struct walk *w, const struct ynode *n, const struct field *f)
{
	json_t *h = conv_strmap(w, n, f), *v;
	const char *k;
	size_t i = 0;
	json_object_foreach(h, k, v) {
		if (!*k || !chars_in(k, "!#$%&'*+-.^_`|~") || strpbrk(json_string_value(v), "\r\n")) {
			for (i = 0; i < n->n && strcmp(n->keys[i]->value, k); i++)
				;
			err_at(w->L, i < n->n ? n->keys[i] : n, "%s: header %s: %s", w->path, k,
			    !*k || !chars_in(k, "!#$%&'*+-.^_`|~") ? "not a valid header name" :
			    "a value may not hold a line break");
			json_decref(h);
			return NULL;
		}
	}
	return h;
}

static const struct field str_item = { "item", V_STR, .min = 0 };
static const struct field path_item = { "item", V_STR, .min = 1, .conv = check_abs_path };
static const struct field env_name_item = { "item", V_STR, .conv = check_env_name };

/* local_tools[]: a command tool (a mapping), as one table. */
static const struct field cmdtool_fields[] = {
	{ "name", V_STR, F_REQUIRED, .conv = check_tool_name },
	{ "description", V_STR, .dflt = "" },
	{ "inputSchema", V_CUSTOM, .dflt = "{}", .conv = conv_input_schema },
	{ "command", V_LIST, F_REQUIRED, .min = 1, .max = 256, .item = &str_item },
	{ "timeout", V_DURATION, .min = 1, .max = HOUR(1) },  /* absent: agent_finish */
	{ "output_max", V_SIZE, .min = 1, .max = 16 << 20, .dflt = "64k" },
	{ "cwd", V_STR, .conv = check_abs_path },
	{ "env", V_LIST, .item = &env_name_item, .dflt = "[]" },
	{ NULL },
};
static const struct table cmdtool_table = { .fields = cmdtool_fields };

const char *const builtin_tool_names[] = { "system_info", "new_files", "read_file", "remember",
	"recall", NULL };

/* local_tools: names of built-ins, and command tools declared in place.  A
 * name that is neither is an error here, not a tool the worker ignores. */
static json_t *
conv_local_tools(struct walk *w, const struct ynode *n, const struct field *f)
{
	static const struct field builtin = { "item", V_CHOICE, .choices = builtin_tool_names };
	static const struct field cmdtool = { "item", V_MAP, .sub = &cmdtool_table };
	if (n->kind != Y_SEQ) {
		err_at(w->L, n, "%s must be a list", w->path);
		return NULL;
	}
	json_t *list = json_array();
	w->level++;
	for (size_t i = 0; i < n->n; i++) {
		size_t mark = walk_push_index(w, i);
		const struct ynode *t = n->vals[i];
		json_t *v = t->kind == Y_SEQ ? NULL : walk_field(w, t, t->kind == Y_MAP ?
		    &cmdtool : &builtin);
		if (t->kind == Y_SEQ)
			err_at(w->L, t, "%s: each item is a tool name or a mapping with a name",
			    w->path);
		const char *name = json_is_string(v) ? json_string_value(v) :
		    json_string_value(json_object_get(v, "name"));
		for (size_t k = 0; name && k < json_array_size(list); k++) {
			json_t *o = json_array_get(list, k);
			if (!strcmp(name, json_is_string(o) ? json_string_value(o) :
			    json_string_value(json_object_get(o, "name")) ?: "")) {
				err_at(w->L, t, "%s: tool %s is listed twice", w->path, name);
				break;
			}
		}
		if (v)
			json_array_append_new(list, v);
		walk_pop(w, mark);
	}
	w->level--;
	return list;
}

/* ---- model_config, agent_config, mcp_tools, watch ------------------------------- */

static const struct field model_fields[] = {
	{ "provider", V_CUSTOM, F_REQUIRED, .conv = provider_conv },
	{ "model", V_STR, F_REQUIRED | F_TEXT, .min = 1, .max = 127 },
	{ "base_url", V_STR, .max = 511, .conv = check_base_url },
	{ "api_key_env", V_STR, .conv = check_env_name },
	{ "api_key_file", V_STR, .conv = check_abs_path },
	{ "temperature", V_NUM, .fmin = 0, .fmax = 2 },
	{ "top_p", V_NUM, .fmin = 0, .fmax = 1 },
	{ "max_tokens", V_INT, .min = 1, .max = 1 << 20, .dflt = "4096" },
	{ "max_context_length", V_INT, .min = 0, .max = 1 << 30, .dflt = "0" },
	/* 0 or less would mean no timeout: a run held by a silent server */
	{ "request_timeout", V_DURATION, .min = 100, .max = HOUR(1), .dflt = "120s" },
	{ "deployment", V_STR, F_TEXT, .min = 1, .max = 128 },                 /* azure */
	{ "api_version", V_STR, F_TEXT, .min = 1, .max = 64 },                 /* azure */
	{ NULL },
};
static const struct table model_table = { .fields = model_fields, .finish = provider_finish };

static void
agent_config_finish(struct walk *w, const struct ynode *n, json_t *ac)
{
	if (!json_object_get(ac, "request_limit") && json_object_get(ac, "max_steps"))
		json_object_set(ac, "request_limit", json_object_get(ac, "max_steps"));
	if (!json_object_get(ac, "tool_call_timeout_ms"))
		json_object_set_new(ac, "tool_call_timeout_ms", json_integer(0));	/* none */
}

static const struct field agent_config_fields[] = {
	{ "max_steps", V_INT, .min = 1, .max = 1000, .dflt = "10" },
	{ "request_limit", V_INT, .min = 1, .max = 10000 },         /* default: max_steps */
	{ "total_tokens_limit", V_INT, .min = 0, .max = INT64_C(1) << 40, .dflt = "0" },
	{ "tool_output_max", V_SIZE, .min = 64, .max = 1 << 20, .dflt = "16k" },
	{ "tool_call_timeout", V_DURATION, .min = 1, .max = HOUR(1) },  /* absent: none */
	{ "read_dirs", V_LIST, .item = &path_item, .dflt = "[]" },
	{ NULL },
};
static const struct table agent_config_table = { .fields = agent_config_fields,
	.finish = agent_config_finish };

static const char *const transports[] = { "stdio", "streamable_http", "sse", NULL };

/* A server is either a command (stdio) or a URL (the HTTP transports). */
static void
mcp_finish(struct walk *w, const struct ynode *n, json_t *s)
{
	const char *tt = json_string_value(json_object_get(s, "transport_type"));
	bool has_url = json_object_get(s, "url") || ymap_get(n, "url");
	bool has_cmd = json_object_get(s, "command") || ymap_get(n, "command");
	if (tt == NULL && ymap_get(n, "transport_type"))
		return;	/* refused */
	if (tt == NULL) {
		tt = has_url ? "streamable_http" : "stdio";
		json_object_set_new(s, "transport_type", json_string(tt));
	}
	bool stdio = !strcmp(tt, "stdio");
	if (stdio ? !has_cmd : !has_url)
		err_at(w->L, n, "%s: transport_type %s needs a %s", w->path, tt,
		    stdio ? "command" : "url");
	else if (stdio ? has_url : has_cmd)
		err_at(w->L, ymap_get(n, stdio ? "url" : "command"), "%s: %s is not used by "
		    "transport_type %s", w->path, stdio ? "url" : "command", tt);
}

static const struct field mcp_fields[] = {
	{ "name", V_STR, F_REQUIRED, .conv = check_server_name },
	{ "transport_type", V_CHOICE, .choices = transports },     /* default: mcp_finish */
	{ "command", V_STR, .min = 1 },
	{ "args", V_LIST, .item = &str_item, .dflt = "[]" },
	{ "env", V_STRMAP, .dflt = "{}" },
	{ "url", V_STR, .max = 2048, .conv = check_url },
	{ "headers", V_CUSTOM, .dflt = "{}", .conv = conv_headers },
	{ "timeout", V_DURATION, .min = 1, .max = HOUR(1) },          /* absent: agent_finish */
	{ "init_timeout", V_DURATION, .min = 1, .max = HOUR(1), .dflt = "30s" },
	{ NULL },
};
static const struct table mcp_table = { .fields = mcp_fields, .finish = mcp_finish };
static const struct field mcp_item = { "item", V_MAP, .sub = &mcp_table };

static const struct field watch_fields[] = {
	{ "tool", V_STR, F_REQUIRED, .min = 1 },
	{ "args", V_ANY, F_MAPPING, .dflt = "{}" },
	{ NULL },
};
static const struct table watch_table = { .fields = watch_fields, .shorthand = "tool" };
static const struct field watch_item = { "item", V_MAP, .sub = &watch_table };

/* ---- embeddings, memory_config -------------------------------------------------- */

static const char *const embed_providers[] = { "hash", "openai", NULL };

/* agentd.embeddings, and an agent's memory_config.embeddings: where the
 * vectors of its memory come from (agentd's, not the worker's). */
static const struct field embeddings_fields[] = {
	{ "provider", V_CHOICE, .choices = embed_providers, .dflt = "hash" },
	{ "model", V_STR, F_TEXT, .min = 1, .max = 127 },                 /* default: finish */
	{ "base_url", V_STR, .max = 511, .conv = check_base_url },
	{ "api_key_env", V_STR, .conv = check_env_name },
	{ "api_key_file", V_STR, .conv = check_abs_path },
	{ "dimensions", V_INT, .min = 1, .max = EMBED_DIM_MAX },        /* hash: 384 */
	{ "batch_size", V_INT, .min = 1, .max = EMBED_BATCH_MAX, .dflt = "64" },
	{ "request_timeout", V_DURATION, .min = 100, .max = MIN(10), .dflt = "30s" },
	{ NULL },
};
static const struct table embeddings_table = { .fields = embeddings_fields,
	.finish = embeddings_finish };

#define AC(m) .off = offsetof(struct agent_conf, m)
static const struct field memory_config_fields[] = {
	{ "embeddings", V_MAP, .sub = &embeddings_table, .ctype = C_JSON, AC(embeddings) },
	{ NULL },
};
static const struct table memory_config_table = { .fields = memory_config_fields };

/* ---- the supervisor's rows: restart, limits ------------------------------------- */

static const char *const restart_policies[] = { "always", "on-failure", "never", NULL };

static void
restart_finish(struct walk *w, const struct ynode *n, json_t *r)
{
	if (json_integer_value(json_object_get(r, "backoff_ms")) >
	    json_integer_value(json_object_get(r, "max_backoff_ms")))
		err_at(w->L, ymap_get(n, "backoff") ?: n, "%s: backoff is above max_backoff",
		    w->path);
}

static const struct field restart_fields[] = {
	{ "policy", V_CHOICE, .choices = restart_policies, .dflt = "always",
	  .ctype = C_ENUM, .off = offsetof(struct agent_conf, restart) },
	{ "max_restarts", V_INT, .min = 0, .max = 1000000, .dflt = "5",
	  .ctype = C_INT, .off = offsetof(struct agent_conf, restart_max) },
	{ "window", V_DURATION, .min = SEC(1), .max = DAY(1), .dflt = "60s",
	  .ctype = C_I64, .off = offsetof(struct agent_conf, restart_window_ms) },
	{ "backoff", V_DURATION, .min = 1, .max = HOUR(1), .dflt = "1s",
	  .ctype = C_I64, .off = offsetof(struct agent_conf, backoff_ms) },
	{ "max_backoff", V_DURATION, .min = 1, .max = DAY(1), .dflt = "60s",
	  .ctype = C_I64, .off = offsetof(struct agent_conf, backoff_max_ms) },
	{ "stable_after", V_DURATION, .min = 0, .max = DAY(1), .dflt = "10s",
	  .ctype = C_I64, .off = offsetof(struct agent_conf, stable_ms) },
	{ NULL },
};
static const struct table restart_table = { .fields = restart_fields, .shorthand = "policy",
	.finish = restart_finish };

static const struct field limits_fields[] = {   /* absent: not limited */
	{ "memory", V_SIZE, .min = 1 << 20, .max = INT64_C(1) << 50,
	  .ctype = C_I64, .off = offsetof(struct limits, memory) },
	{ "open_files", V_INT, .min = 16, .max = 1 << 20,
	  .ctype = C_I64, .off = offsetof(struct limits, nofile) },
	{ "processes", V_INT, .min = 1, .max = 1 << 22,
	  .ctype = C_I64, .off = offsetof(struct limits, nproc) },
	{ "cpu_time", V_DURATION, .min = SEC(1), .max = DAY(366),
	  .ctype = C_I64, .off = offsetof(struct limits, cpu_ms) },
	{ "cpu", V_NUM, .fmin = 0.01, .fmax = 4096,
	  .ctype = C_DOUBLE, .off = offsetof(struct limits, cpu_quota) },
	{ NULL },
};
static const struct table limits_table = { .fields = limits_fields };

/* ---- an agent --------------------------------------------------------------------- */

static const char *const overlaps[] = { "skip", "queue", "cancel_previous", NULL };
static const char *const run_models[] = { "always", "on_change", NULL };

static void agent_finish(struct walk *w, const struct ynode *n, json_t *obj);

static const struct field agent_fields[] = {
	/* what the worker runs (the spec) */
	{ "agent_id", V_STR, F_SPEC, .min = 1, .max = 128, .ctype = C_STR, AC(agent_id) },
	{ "description", V_STR, F_SPEC, .min = 0 },
	{ "system_instruction", V_STR, F_SPEC, .dflt = "" },
	{ "model_config", V_MAP, F_SPEC, .sub = &model_table },
	{ "task_config", V_ANY, F_SPEC | F_MAPPING, .dflt = "{}" },
	{ "local_tools", V_CUSTOM, F_SPEC, .conv = conv_local_tools },  /* absent: all built-ins */
	{ "mcp_tools", V_LIST, F_SPEC, .max = 64, .item = &mcp_item, .dflt = "[]" },
	{ "agent_config", V_MAP, F_SPEC, .sub = &agent_config_table, .dflt = "{}" },
	{ "memory_limit", V_INT, F_SPEC, .min = 0, .max = 100000, .dflt = "5" },
	{ "memory_recall_limit", V_INT, F_SPEC, .min = 0, .max = RECALL_LIMIT_MAX, .dflt = "3" },
	{ "run_model", V_CHOICE, F_SPEC, .choices = run_models, .dflt = "always" },
	{ "watch", V_LIST, F_SPEC, .max = 64, .item = &watch_item, .dflt = "[]" },
	{ "debug", V_BOOL, F_SPEC, .dflt = "false", .ctype = C_BOOL, AC(debug) },
	/* how the supervisor runs it */
	{ "task", V_STR, .min = 1 },
	{ "interval", V_CUSTOM, .conv = conv_interval },               /* absent: manual */
	{ "run_on_start", V_BOOL, .dflt = "false", .ctype = C_BOOL, AC(run_on_start) },
	{ "overlap", V_CHOICE, .choices = overlaps, .dflt = "skip", .ctype = C_ENUM, AC(overlap) },
	{ "max_retries", V_INT, .min = 0, .max = 1000, .dflt = "3", .ctype = C_INT, AC(max_retries) },
	{ "retry_delay", V_DURATION, .min = 0, .max = DAY(1), .dflt = "60s",
	  .ctype = C_I64, AC(retry_delay_ms) },
	{ "retry_max_delay", V_DURATION, .min = 0, .max = DAY(7), .dflt = "1h",
	  .ctype = C_I64, AC(retry_max_delay_ms) },
	{ "run_timeout", V_CUSTOM, .dflt = "1h", .conv = conv_run_timeout,
	  .ctype = C_I64, AC(run_timeout_ms) },
	{ "restart", V_MAP, .sub = &restart_table, .dflt = "{}", .ctype = C_STRUCT },
	{ "limits", V_MAP, .sub = &limits_table, .dflt = "{}", .ctype = C_STRUCT, AC(limits) },
	{ "user", V_STR, .min = 1, .conv = check_user, .ctype = C_STR, AC(user) },
	{ "group", V_STR, .min = 1, .conv = check_user, .ctype = C_STR, AC(group) },
	{ "env", V_CUSTOM, .conv = conv_env },
	{ "memory_config", V_MAP, .sub = &memory_config_table, .ctype = C_STRUCT },
	{ NULL },
};
static const struct table agent_table = { .fields = agent_fields, .finish = agent_finish };

/* A command tool or MCP server without a timeout of its own has the
 * agent's tool_call_timeout, else its kind's default. */
static void
default_timeouts(json_t *list, const char *key, int64_t tool_call, int64_t dflt)
{
	size_t i;
	json_t *t;
	json_array_foreach(list, i, t)
		if (json_is_object(t) && !json_object_get(t, key))
			json_object_set_new(t, key, json_integer(tool_call > 0 ? tool_call : dflt));
}

static void
agent_finish(struct walk *w, const struct ynode *n, json_t *obj)
{
	struct agent_conf *a = w->base;
	json_t *mcp = json_object_get(obj, "mcp_tools"), *s;
	int64_t tool_call = json_integer_value(json_object_get(json_object_get(obj,
	    "agent_config"), "tool_call_timeout_ms"));
	size_t i;

	if (a->agent_id == NULL) {
		a->agent_id = xstrdup(a->name);
		json_object_set_new(obj, "agent_id", json_string(a->name));
	}
	if (a->retry_delay_ms > a->retry_max_delay_ms)
		err_at(w->L, ymap_get(n, "retry_delay") ?: n, "%s: retry_delay is above "
		    "retry_max_delay", w->path);
	if (!strcmp(json_string_value(json_object_get(obj, "run_model")) ?: "", "on_change") &&
	    json_array_size(json_object_get(obj, "watch")) == 0)
		err_at(w->L, ymap_get(n, "run_model"), "%s: run_model on_change needs a watch: "
		    "list (what to compare between runs)", w->path);
	default_timeouts(json_object_get(obj, "local_tools"), "timeout_ms", tool_call, SEC(30));
	default_timeouts(mcp, "timeout_ms", tool_call, SEC(60));
	const struct ynode *items = ymap_get(n, "mcp_tools");
	json_array_foreach(mcp, i, s)
		for (size_t k = 0; k < i; k++)
			if (json_equal(json_object_get(s, "name"),
			    json_object_get(json_array_get(mcp, k), "name"))) {
				/* item i is node i unless a server before it was refused
				 * (and the load has failed already) */
				err_at(w->L, ymap_get(items->vals[i], "name"), "%s.mcp_tools: two "
				    "servers are named %s", w->path,
				    json_string_value(json_object_get(s, "name")));
				break;
			}
}

/* agentd.chromadb: the Chroma server memory_store chromadb ships to. */
static const struct field chromadb_fields[] = {
	{ "url", V_STR, .max = 2048, .conv = check_base_url },
	/* No url: agentd's own server on this directory (CHROMADB_PERSIST_DIRECTORY). */
	{ "path", V_STR, .max = 1024, .conv = check_abs_path },
	{ "command", V_STR, .min = 1, .max = 1024, .dflt = "chroma" },   /* its executable */
	{ "tenant", V_STR, .dflt = "default_tenant", .conv = check_chroma_name },
	{ "database", V_STR, .dflt = "default_database", .conv = check_chroma_name },
	{ "collection", V_STR, .dflt = "agentd", .conv = check_chroma_name },
	{ "token_env", V_STR, .conv = check_env_name },
	{ "token_file", V_STR, .conv = check_abs_path },
	{ "request_timeout", V_DURATION, .min = 100, .max = MIN(10), .dflt = "30s" },
	{ NULL },
};
static const struct table chromadb_table = { .fields = chromadb_fields };

/* ---- the agentd block -------------------------------------------------------------- */

static const char *const event_stores[] = { "memory", "database", "redis_stream", NULL };
static const char *const state_stores[] = { "database", "redis", NULL };
static const char *const memory_stores[] = { "memory", "database", "redis", "qdrant",
	"chromadb", NULL };
static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const log_formats[] = { "text", "json", NULL };

#define GC(m) .off = offsetof(struct global_conf, m)
static const struct field redis_fields[] = {
	{ "host", V_STR, .min = 1, .dflt = "127.0.0.1", .ctype = C_STR, GC(redis_host) },
	{ "port", V_INT, .min = 1, .max = 65535, .dflt = "6379", .ctype = C_INT, GC(redis_port) },
	{ "db", V_INT, .min = 0, .max = 1 << 20, .dflt = "0", .ctype = C_INT, GC(redis_db) },
	{ "password", V_STR, .ctype = C_STR, GC(redis_password) },
	{ "socket", V_STR, .min = 1, .ctype = C_STR, GC(redis_socket) },
	{ "stream_key", V_STR, .min = 1, .dflt = "background_agent_events",
	  .ctype = C_STR, GC(redis_stream_key) },
	{ "stream_maxlen", V_INT, .min = 1, .max = INT64_MAX, .dflt = "100000",
	  .ctype = C_I64, GC(redis_stream_maxlen) },
	{ NULL },
};
static const struct table redis_table = { .fields = redis_fields };

/* A collection name is in URLs as it is. */
static json_t *
check_prefix(struct walk *w, const struct ynode *n, const struct field *f)
{
	if (n->len >= 1 && n->len <= 64 && chars_in(n->value, "_-"))
		return json_string(n->value);
	err_at(w->L, n, "%s: \"%s\" is not 1 to 64 of A-Z a-z 0-9 _ -", w->path, n->value);
	return NULL;
}

/* One place for the key, and --check-config says what agentd will find
 * (the key itself is agentd's to read, supervisor/memory/qdrant.c). */
static void
qdrant_finish(struct walk *w, const struct ynode *n, json_t *obj)
{
	struct global_conf *g = w->base;
	if (g == NULL)
		return;
	if (g->qdrant_url && (ymap_get(n, "host") || ymap_get(n, "port")))
		err_at(w->L, ymap_get(n, "url"), "%s: url and host/port both say where Qdrant is; "
		    "keep one", w->path);
	if (g->qdrant_key_env && g->qdrant_key_file)
		err_at(w->L, ymap_get(n, "api_key_file"), "%s: api_key_env and api_key_file both "
		    "name a key; keep one", w->path);
	else if (g->qdrant_key_file && access(g->qdrant_key_file, R_OK) < 0)
		warn_at(w->L, ymap_get(n, "api_key_file"), "%s.api_key_file: %s is not readable here; "
		    "Qdrant refuses agentd unless agentd can read it", w->path, g->qdrant_key_file);
	else if (g->qdrant_key_env && !*(getenv(g->qdrant_key_env) ?: ""))
		warn_at(w->L, ymap_get(n, "api_key_env"), "%s: %s is not set in this environment; "
		    "Qdrant refuses agentd unless agentd's has it", w->path, g->qdrant_key_env);
}

/* memory_store qdrant: where it is, how agentd names its collections. */
static const struct field qdrant_fields[] = {
	{ "url", V_STR, .max = 511, .conv = check_base_url, .ctype = C_STR, GC(qdrant_url) },
	{ "host", V_STR, .min = 1, .max = 255, .dflt = "127.0.0.1", .ctype = C_STR,
	  GC(qdrant_host) },
	{ "port", V_INT, .min = 1, .max = 65535, .dflt = "6333", .ctype = C_INT, GC(qdrant_port) },
	{ "collection_prefix", V_STR, .dflt = "agentd", .conv = check_prefix, .ctype = C_STR,
	  GC(qdrant_prefix) },
	{ "api_key_env", V_STR, .conv = check_env_name, .ctype = C_STR, GC(qdrant_key_env) },
	{ "api_key_file", V_STR, .conv = check_abs_path, .ctype = C_STR, GC(qdrant_key_file) },
	{ "request_timeout", V_DURATION, .min = 100, .max = MIN(10), .dflt = "10s",
	  .ctype = C_I64, GC(qdrant_timeout_ms) },
	{ NULL },
};
static const struct table qdrant_table = { .fields = qdrant_fields, .finish = qdrant_finish };

int
listen_addr_parse(const char *spec, struct listen_addr *a, char *err, size_t errlen)
{
	const char *colon;
	char *end;

	memset(a, 0, sizeof(*a));
	if (!strncmp(spec, "unix:", 5)) {
		a->is_unix = true;
		if (!spec[5] || strlen(spec + 5) >= sizeof(a->path)) {
			snprintf(err, errlen, "a unix socket path of 1 to %zu bytes", sizeof(a->path) - 1);
			return -1;
		}
		strcpy(a->path, spec + 5);
		return 0;
	}
	/* HOST:PORT, the host a name or an address ([...] around an IPv6 one) */
	const char *host = spec;
	size_t hl = (colon = strrchr(spec, ':')) ? (size_t)(colon - spec) : 0;
	bool bracketed = hl >= 2 && host[0] == '[' && host[hl - 1] == ']';
	if (bracketed) {
		host++;
		hl -= 2;
	}
	long port = colon ? strtol(colon + 1, &end, 10) : 0;
	if (hl == 0 || hl >= sizeof(a->host) || memchr(host, '[', hl) || memchr(host, ']', hl) ||
	    (!bracketed && memchr(host, ':', hl))) {
		snprintf(err, errlen, "unix:PATH, or HOST:PORT ([ADDRESS]:PORT for IPv6)");
		return -1;
	}
	if (!isdigit((unsigned char)colon[1]) || *end || port < 1 || port > 65535) {
		snprintf(err, errlen, "a port from 1 to 65535 after the host");
		return -1;
	}
	memcpy(a->host, host, hl);
	snprintf(a->port, sizeof(a->port), "%ld", port);
	return 0;
}

static json_t *
check_listen(struct walk *w, const struct ynode *n, const struct field *f)
{
	struct listen_addr a;
	char why[128];
	if (listen_addr_parse(n->value, &a, why, sizeof(why)) == 0)
		return json_string(n->value);
	err_at(w->L, n, "%s: \"%s\" is not an address to listen on: %s", w->path, n->value, why);
	return NULL;
}

/* The listeners as given (the default is state_dir's, global_finish), and
 * a token for any on TCP: agentd refuses to start without one, and the
 * environment of --check-config may not be the service's. */
static void
http_finish(struct walk *w, const struct ynode *n, json_t *obj)
{
	struct global_conf *g = w->base;
	json_t *listen = json_object_get(obj, "listen"), *v;
	struct listen_addr a;
	char why[128];
	size_t i;

	if (g == NULL || listen == NULL)
		return;
	g->http_listen = xcalloc(json_array_size(listen) + 1, sizeof(char *));
	json_array_foreach(listen, i, v) {
		g->http_listen[i] = xstrdup(json_string_value(v));
		if (listen_addr_parse(g->http_listen[i], &a, why, sizeof(why)) == 0 && !a.is_unix &&
		    g->http_token_file == NULL && !getenv("AGENTD_HTTP_TOKEN"))
			warn_at(w->L, ymap_get(n, "listen")->vals[i], "agentd.http.listen: %s is on TCP, "
			    "which needs a bearer token: agentd.http.token_file, or AGENTD_HTTP_TOKEN "
			    "(not set here); agentd does not start without one", g->http_listen[i]);
	}
}

static const struct field http_listen_item = { "listen", V_STR, .min = 1, .conv = check_listen };
static const struct field http_fields[] = {
	{ "listen", V_LIST, .max = 16, .item = &http_listen_item },
	{ "token_file", V_STR, .min = 1, .ctype = C_STR, GC(http_token_file) },
	{ NULL },
};
static const struct table http_table = { .fields = http_fields, .finish = http_finish };

/* A unix socket path bind() can take, or the error at the key that made it. */
static void
check_sun_path(struct walk *w, const struct ynode *at, const char *key, const char *path)
{
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		err_at(w->L, at, "agentd.%s: %s is longer than a unix socket path can be (%zu)",
		    key, path, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
}

/* The sockets' defaults (the control socket's, the HTTP API's), and paths
 * bind() can take. */
static void
global_finish(struct walk *w, const struct ynode *n, json_t *obj)
{
	struct global_conf *g = w->base;
	if (g->state_dir == NULL)
		return;	/* refused, and reported: nothing to derive a default from */
	if (g->control_socket == NULL) {
		size_t len = strlen(g->state_dir) + 16;
		g->control_socket = xmalloc(len);
		snprintf(g->control_socket, len, "%s/agentd.sock", g->state_dir);
	}
	if (g->http_listen == NULL) {
		size_t len = strlen(g->state_dir) + 16;
		g->http_listen = xcalloc(2, sizeof(char *));
		g->http_listen[0] = xmalloc(len);
		snprintf(g->http_listen[0], len, "unix:%s/http.sock", g->state_dir);
		check_sun_path(w, ymap_get(n, "state_dir") ?: n, "http.listen", g->http_listen[0] + 5);
	}
	check_sun_path(w, ymap_get(n, "control_socket") ?: ymap_get(n, "state_dir") ?: n,
	    "control_socket", g->control_socket);
	const char *dir = getenv("CHROMADB_PERSIST_DIRECTORY");
	if (g->memory_store && !strcmp(g->memory_store, "chromadb") &&
	    json_object_get(g->chromadb, "url") == NULL &&
	    json_object_get(g->chromadb, "path") == NULL && !(dir && *dir))
		err_at(w->L, ymap_get(n, "chromadb") ?: ymap_get(n, "memory_store") ?: n,
		    "agentd.memory_store chromadb needs agentd.chromadb.url (the Chroma server's "
		    "http:// URL) or a path for agentd's own (CHROMADB_PERSIST_DIRECTORY)");
}

static const struct field global_fields[] = {
	{ "state_dir", V_STR, .min = 1, .dflt = "/var/lib/agentd", .ctype = C_STR, GC(state_dir) },
	{ "control_socket", V_STR, .min = 1, .ctype = C_STR, GC(control_socket) },
	{ "log_level", V_CHOICE, .choices = log_levels, .dflt = "info", .ctype = C_ENUM,
	  GC(log_level) },
	{ "log_format", V_CHOICE, .choices = log_formats, .dflt = "text", .ctype = C_BOOL,
	  GC(log_json) },
	{ "log_file", V_STR, .min = 1, .ctype = C_STR, GC(log_file) },
	{ "event_store", V_CHOICE, .choices = event_stores, .dflt = "database",
	  .ctype = C_STR, GC(event_store) },
	{ "memory_store", V_CHOICE, .choices = memory_stores, .dflt = "database",
	  .ctype = C_STR, GC(memory_store) },
	{ "state_store", V_CHOICE, .choices = state_stores, .dflt = "database",
	  .ctype = C_STR, GC(state_store) },
	{ "database_url", V_STR, .conv = check_pg_url, .ctype = C_STR, GC(database_url) },
	{ "event_retention", V_INT, .min = 1, .max = INT64_C(1) << 40, .dflt = "100000",
	  .ctype = C_I64, GC(event_retention) },
	{ "memory_retention", V_INT, .min = 1, .max = INT64_C(1) << 40, .dflt = "10000",
	  .ctype = C_I64, GC(memory_retention) },
	{ "stop_grace", V_DURATION, .min = 0, .max = HOUR(1), .dflt = "10s",
	  .ctype = C_I64, GC(stop_grace_ms) },
	{ "ack_timeout", V_DURATION, .min = 100, .max = HOUR(1), .dflt = "10s",
	  .ctype = C_I64, GC(ack_timeout_ms) },
	{ "worker_path", V_STR, .min = 1, .ctype = C_STR, GC(worker_path) },
	{ "redis", V_MAP, .sub = &redis_table, .dflt = "{}", .ctype = C_STRUCT },
	{ "qdrant", V_MAP, .sub = &qdrant_table, .dflt = "{}", .ctype = C_STRUCT },
	{ "http", V_MAP, .sub = &http_table, .dflt = "{}", .ctype = C_STRUCT },
	{ "embeddings", V_MAP, .sub = &embeddings_table, .ctype = C_JSON, GC(embeddings) },
	{ "chromadb", V_MAP, .sub = &chromadb_table, .dflt = "{}", .ctype = C_JSON, GC(chromadb) },
	{ NULL },
};
static const struct table global_table = { .fields = global_fields, .finish = global_finish };

/* The seed's variables win over the file, as the seed documents them. */
static void
env_overrides(struct loader *L, struct global_conf *g)
{
	const char *v;
	long long n;
	char *end;
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
	if ((v = getenv("CHROMADB_PERSIST_DIRECTORY")) && *v) {
		char *abs = v[0] == '/' ? xstrdup(v) : NULL, *cwd = abs ? NULL : getcwd(NULL, 0);
		if (cwd) {	/* the seed's ./chromadb_data: agentd's working directory's */
			size_t len = strlen(cwd) + strlen(v) + 2;
			abs = xmalloc(len);
			snprintf(abs, len, "%s/%s", cwd, v);
		}
		if (abs)
			json_object_set_new(g->chromadb, "path", json_string(abs));
		else
			err_at(L, NULL, "environment variable CHROMADB_PERSIST_DIRECTORY: %s",
			    strerror(errno));
		free(abs);
		free(cwd);
	}
	if ((v = getenv("MEMORY_STORE_TYPE")) && !strcmp(v, "chromadb") &&
	    json_object_get(g->chromadb, "url") == NULL && json_object_get(g->chromadb, "path") == NULL)
		err_at(L, NULL, "environment variable MEMORY_STORE_TYPE chromadb needs "
		    "agentd.chromadb.url (the Chroma server's http:// URL) or CHROMADB_PERSIST_DIRECTORY");
	if ((v = getenv("REDIS_HOST")) && *v) {
		free(g->redis_host);
		g->redis_host = xstrdup(v);
	}
	if ((v = getenv("REDIS_PORT")) && *v) {
		n = strtoll(v, &end, 10);
		if (*end || n < 1 || n > 65535)
			err_at(L, NULL, "environment variable REDIS_PORT: bad port \"%s\"", v);
		else
			g->redis_port = (int)n;
	}
	if ((v = getenv("REDIS_DB")) && *v) {
		n = strtoll(v, &end, 10);
		if (*end || n < 0 || n > (1 << 20))
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
	if ((v = getenv("QDRANT_HOST")) && *v) {
		free(g->qdrant_host);
		g->qdrant_host = xstrdup(v);
		free(g->qdrant_url);
		g->qdrant_url = NULL;
	}
	if ((v = getenv("QDRANT_PORT")) && *v) {
		n = strtoll(v, &end, 10);
		if (*end || n < 1 || n > 65535)
			err_at(L, NULL, "environment variable QDRANT_PORT: bad port \"%s\"", v);
		else
			g->qdrant_port = (int)n;
		free(g->qdrant_url);
		g->qdrant_url = NULL;
	}
}

/* ---- tasks and agents ------------------------------------------------------------ */

static const struct field task_fields[] = {
	{ "description", V_STR, .min = 0 },
	{ "config", V_ANY, F_MAPPING, .dflt = "{}" },   /* merged into task_config: level 2 */
	{ NULL },
};
static const struct table task_table = { .fields = task_fields };

static void
parse_tasks(struct loader *L, const struct ynode *m)
{
	struct walk w = { .L = L, .level = 1 };
	if (m->kind != Y_MAP) {
		err_at(L, m, "tasks must be a mapping");
		return;
	}
	check_duplicates(L, m, "tasks");
	for (size_t i = 0; i < m->n; i++) {
		snprintf(w.path, sizeof(w.path), "tasks.%s", m->keys[i]->value);
		json_t *t = walk_table(&w, m->vals[i], &task_table);
		if (t)
			json_object_set_new(L->cfg->tasks, m->keys[i]->value, t);
	}
}

static bool
valid_agent_name(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= 64 && chars_in(s, "_.-") && strcmp(s, ".") && strcmp(s, "..");
}

/* The inline task_config over the named task's config. */
static void
resolve_task(struct loader *L, struct agent_conf *a, const json_t *obj, const struct ynode *m,
    const char *path)
{
	const char *ref = json_string_value(json_object_get(obj, "task"));
	json_t *tc = json_deep_copy(json_object_get(obj, "task_config")) ?: json_object();
	if (ref) {
		json_t *t = json_object_get(L->cfg->tasks, ref);
		if (t == NULL)
			err_at(L, ymap_get(m, "task"), "%s.task: no task \"%s\" in the tasks registry",
			    path, ref);
		else {
			json_t *merged = json_deep_copy(json_object_get(t, "config"));
			json_object_update(merged, tc);
			json_decref(tc);
			tc = merged;
			if (json_object_get(t, "description"))
				json_object_set(a->spec, "task_description",
				    json_object_get(t, "description"));
		}
	}
	json_object_set_new(a->spec, "task_config", tc);
}

char *
config_digest(const json_t *v)
{
	char *text = json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
	uint64_t h1 = 1469598103934665603ULL, h2 = 1099511628211ULL * 31;
	for (const unsigned char *p = (const unsigned char *)text; p && *p; p++) {
		h1 = (h1 ^ *p) * 1099511628211ULL;
		h2 = (h2 ^ *p) * 0x100000001b3ULL + 0x9e3779b97f4a7c15ULL;
	}
	free(text);
	char hex[40];
	snprintf(hex, sizeof(hex), "%016llx%016llx", (unsigned long long)h1,
	    (unsigned long long)h2);
	return xstrdup(hex);
}

/* Equal fingerprints: nothing the agent runs with changed (its spec and
 * every supervisor setting, both normalized). */
static void
fingerprint(struct agent_conf *a, const json_t *obj)
{
	json_t *all = json_pack("{s:O, s:O}", "spec", a->spec, "agent", obj);
	a->fingerprint = config_digest(all);
	json_decref(all);
}

/* The spec as its worker will receive it, and its bounds (limits.h). */
static void
build_spec(struct loader *L, struct agent_conf *a, const json_t *obj, const struct ynode *key,
    const struct ynode *m, const char *path)
{
	a->spec = json_object();
	for (const struct field *f = agent_fields; f->key; f++)
		if ((f->flags & F_SPEC) && json_object_get(obj, f->key))
			json_object_set(a->spec, f->key, json_object_get(obj, f->key));
	json_object_set_new(a->spec, "name", json_string(a->name));
	resolve_task(L, a, obj, m, path);
	size_t size = json_compact_size(a->spec);
	if (size > SPEC_MAX)
		err_at(L, key, "%s: the agent's spec is %zu bytes as sent to its worker, over the "
		    "%u KiB bound (keep bulk data out of task_config)", path, size, SPEC_MAX >> 10);
	if (json_depth(a->spec, VALUE_DEPTH_MAX) > VALUE_DEPTH_MAX)
		err_at(L, key, "%s: the agent's spec nests deeper than %d levels", path,
		    VALUE_DEPTH_MAX);
}

static void
parse_agent(struct loader *L, const struct ynode *key, const struct ynode *m,
    struct agent_conf *a)
{
	struct walk w = { .L = L, .level = 1, .base = a };
	const char *name = key->value;

	snprintf(w.path, sizeof(w.path), "background_agents.%s", name);
	a->name = xstrdup(name);
	a->line = key->line;
	a->col = key->col;
	if (!valid_agent_name(name))
		err_at(L, key, "agent name \"%s\" must be 1-64 characters of A-Z a-z 0-9 _ . -",
		    name);
	json_t *obj = walk_table(&w, m, &agent_table);
	if (obj == NULL) {	/* not a mapping: reported */
		obj = json_object();
		a->agent_id = xstrdup(name);
	}
	build_spec(L, a, obj, key, m, w.path);
	fingerprint(a, obj);
	json_decref(obj);
}

int
config_agent_from_json(const json_t *body, const json_t *tasks, struct agent_conf **out,
    struct conf_errors *errs)
{
	struct config scratch = { .tasks = (json_t *)tasks };
	struct loader L = { .file = NULL, .errs = errs, .cfg = &scratch };
	const json_t *id = json_object_get(body, "agent_id");

	memset(errs, 0, sizeof(*errs));
	*out = NULL;
	struct ynode *root = ytree_from_json(body, "");
	if (!json_is_string(id)) {
		struct ynode *at = ymap_get(root, "agent_id");
		err_at(&L, at ? at : root, "agent_id is %s (the agent's name: a text)",
		    at ? "not a text" : "required");
		ytree_free(root);
		return -1;
	}
	struct ynode *key = ymap_get(root, "agent_id");
	struct agent_conf *a = xcalloc(1, sizeof(*a));
	interpolate_tree(&L, root);
	if (root->kind == Y_MAP)
		parse_agent(&L, key, root, a);
	else
		err_at(&L, root, "an agent's config must be a mapping");
	ytree_free(root);
	if (errs->n) {
		agent_conf_free(a);
		return -1;
	}
	*out = a;
	return 0;
}

static void
parse_agents(struct loader *L, const struct ynode *m)
{
	struct config *c = L->cfg;
	if (m->kind != Y_MAP) {
		if (!(m->kind == Y_SCALAR && m->is_null))	/* "background_agents:" alone: none */
			err_at(L, m, "background_agents must be a mapping");
		return;
	}
	check_duplicates(L, m, "background_agents");
	c->agents = xcalloc(m->n ? m->n : 1, sizeof(*c->agents));
	for (size_t i = 0; i < m->n; i++) {
		bool dup = false;
		for (size_t j = 0; j < i; j++)
			dup |= !strcmp(m->keys[i]->value, m->keys[j]->value);
		if (dup)
			continue;	/* reported by check_duplicates */
		struct agent_conf *a = &c->agents[c->nagents++];
		parse_agent(L, m->keys[i], m->vals[i], a);
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
	static const struct ynode empty = { .kind = Y_MAP, .line = 1, .col = 1 };
	struct config *c = L->cfg;
	struct walk g = { .L = L, .level = 1, .base = &c->g };
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
	snprintf(g.path, sizeof(g.path), "agentd");
	json_decref(walk_table(&g, (n = ymap_get(root, "agentd")) ? n : &empty, &global_table));
	env_overrides(L, &c->g);
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
free_strv(char **v)
{
	for (char **e = v; e && *e; e++)
		free(*e);
	free(v);
}

static char **
dup_strv(char *const *v)
{
	size_t n = 0;
	if (v == NULL)
		return NULL;
	while (v[n])
		n++;
	char **d = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		d[i] = xstrdup(v[i]);
	return d;
}

static void
agent_conf_clear(struct agent_conf *a)
{
	free(a->name);
	free(a->agent_id);
	free(a->schedule_text);
	free(a->user);
	free(a->group);
	free_strv(a->env);
	if (a->secret_env)
		for (char **s = a->secret_env; *s; s++)
			explicit_bzero(*s, strlen(*s));
	free_strv(a->secret_env);
	json_decref(a->embeddings);
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
	json_decref(g->embeddings);
	json_decref(g->chromadb);
	free(g->redis_host);
	free(g->redis_password);
	free(g->redis_socket);
	free(g->redis_stream_key);
	free(g->qdrant_url);
	free(g->qdrant_host);
	free(g->qdrant_prefix);
	free(g->qdrant_key_env);
	free(g->qdrant_key_file);
	free(g->worker_path);
	free_strv(g->http_listen);
	free(g->http_token_file);
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
	d->embeddings = json_deep_copy(a->embeddings);
	d->env = dup_strv(a->env);
	d->secret_env = dup_strv(a->secret_env);
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
	return overlaps[p];
}

const char *
restart_name(enum restart_policy p)
{
	return restart_policies[p];
}
