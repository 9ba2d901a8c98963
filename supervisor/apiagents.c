/*
 * apiagents: agents created at run time -- over the HTTP API or agentctl
 * (create, update, delete, export) -- and who owns which agent.
 *
 * Ownership, not precedence: an agent belongs to the file or to the API.
 * The API cannot change, delete or export a file's agent (RESP_REFUSED,
 * HTTP 409, saying it is the file's); the file's reload never touches an
 * API agent; a name one owner has is refused to the other -- a create of a
 * file agent's name, and a reload that would add a file agent with an API
 * agent's name (that reload is refused whole, the running config kept).
 * The same goes for agent_id, which the file keeps unique among its own:
 * an API agent's agent_id is its name, and no other agent may have it.
 *
 * An API agent's config is the JSON it was created with: one agent as it
 * would stand under background_agents:, its name its agent_id.  It is
 * checked by the file's tables (config_agent_from_json), every error
 * naming its JSON pointer.  An update is a JSON merge patch (RFC 7396)
 * over the config as given, the result checked whole and applied as a
 * reload applies a changed agent: nothing when its fingerprint is the
 * same, else agent_replace_conf, which restarts the worker only when what
 * the worker sees changed.  The agent_id cannot change (it is the name).
 *
 * Every write reaches the state db (store_api_*, committed before the
 * client is answered) with the agent's ETag, a digest of its config as
 * given; a write whose if_match is another ETag is refused
 * (RESP_PRECONDITION, HTTP 412); one without if_match applies.  At most
 * API_AGENTS_MAX of them (common/limits.h).
 *
 * At start they come back after the file's agents, with their state
 * (counters, schedule, pause) as every agent's is kept by name.  One whose
 * config no longer loads (a variable it names is gone, a task it names
 * left the file) is kept but not started, the reason in its status
 * (config_error), until an update fixes it or a delete removes it.  One
 * whose name the file has taken meanwhile stays in the db, left out, with
 * an error in the log, until the file's agent is renamed.
 *
 * The config as given holds what the file would hold, secrets included
 * (an MCP header's token, an env value marked secret): the state db keeps
 * it as the file does, and export shows it redacted, as every exit does
 * (not at all while it does not load: its secrets are learned from its
 * loaded config, when its worker starts).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/jsonmp.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/msg.h"
#include "supervisor/commands.h"
#include "supervisor/sup.h"

/* The agent whose agent_id is id: the file checks its own for
 * duplicates, this is the check across owners (a session id is made of
 * it, and two agents' sessions must not meet). */
static struct agent *
find_agent_id(const struct sup *s, const char *id)
{
	for (size_t i = 0; i < s->nagents; i++)
		if (strcmp(s->agents[i]->conf->agent_id, id) == 0)
			return s->agents[i];
	return NULL;
}

static size_t
api_count(const struct sup *s)
{
	size_t n = 0;
	for (size_t i = 0; i < s->nagents; i++)
		n += s->agents[i]->api;
	return n;
}

/* A config refused: every message, and each one's pointer. */
static void
invalid(struct cmd_result *r, const struct conf_errors *e)
{
	char *text = conf_errors_join(e);
	cmd_refuse(r, RESP_BAD_REQUEST, "%s", text);
	free(text);
	r->errors = json_array();
	for (size_t i = 0; i < e->n; i++) {
		const char *p = e->pointers[i], *m = e->msgs[i];
		if (*p && !strncmp(m, p, strlen(p)) && !strncmp(m + strlen(p), ": ", 2))
			m += strlen(p) + 2;	/* the line without its pointer */
		json_array_append_new(r->errors, json_pack("{s:s, s:s}", "pointer", p,
		    "message", m));
	}
}

/* Only the API's own: a file agent is refused, naming its file. */
static bool
owned(const struct sup *s, const struct agent *a, const char *what, struct cmd_result *r)
{
	if (!a->api)
		cmd_refuse(r, RESP_REFUSED, "%s belongs to the file (%s): the API cannot %s it; "
		    "edit the file and reload", a->name, s->config_path, what);
	else if (a->after == AFTER_REMOVE)
		cmd_refuse(r, RESP_REFUSED, "%s is being deleted", a->name);
	else
		return true;
	return false;
}

/* If-Match: the ETag the writer read, quoted or not. */
static bool
matches(const struct agent *a, const char *if_match, struct cmd_result *r)
{
	size_t n = if_match ? strlen(if_match) : 0;
	if (n >= 2 && if_match[0] == '"' && if_match[n - 1] == '"')
		if_match++, n -= 2;
	if (if_match == NULL || (n == 1 && *if_match == '*') ||
	    (n == strlen(a->etag) && !strncmp(if_match, a->etag, n)))
		return true;
	cmd_refuse(r, RESP_PRECONDITION, "%s has changed since that ETag was read (it is \"%s\" "
	    "now): read it again and apply the change to what it is", a->name, a->etag);
	return false;
}

static void
own(struct agent *a, const json_t *given, const char *etag)
{
	a->api = true;
	json_decref(a->given);
	a->given = json_deep_copy(given);
	free(a->etag);
	a->etag = xstrdup(etag);
}

static void
status_answer(struct cmd_result *r, const struct agent *a)
{
	r->code = RESP_OK;
	r->data = agent_status_json(a);
	r->etag = xstrdup(a->etag);
}

/* The config as stored: 0, or -1 with r refused. */
static int
save(struct sup *s, const char *name, const json_t *config, const char *etag,
    struct cmd_result *r)
{
	char err[512];
	char *text = json_dumps_short(config, JSON_COMPACT);
	int rc = text ? store_api_put(s->store, name, text, etag, err, sizeof(err)) : -1;
	free(text);
	if (rc < 0)
		cmd_refuse(r, RESP_UNAVAILABLE, "%s: %s", name, text ? err : "cannot be encoded");
	return rc;
}

void
api_agent_create(struct sup *s, const json_t *config, struct cmd_result *r)
{
	struct agent_conf *ac;
	struct conf_errors errs;
	struct agent *a;

	if (config == NULL) {
		r->bad_arg = "config";
		cmd_refuse(r, RESP_BAD_REQUEST, "create needs the agent's config");
		return;
	}
	if (config_agent_from_json(config, s->cfg->tasks, &ac, &errs) < 0) {
		invalid(r, &errs);
		conf_errors_free(&errs);
		return;
	}
	conf_errors_free(&errs);
	char *etag = config_digest(config);
	if ((a = sup_find(s, ac->name)))
		cmd_refuse(r, RESP_REFUSED, "an agent named %s exists already (%s)", ac->name,
		    a->api ? "created over the API: update it, or delete it first" :
		    "the file's: the API cannot replace it");
	else if ((a = find_agent_id(s, ac->agent_id)))
		cmd_refuse(r, RESP_REFUSED, "agent_id %s is agent %s's already (%s)", ac->agent_id,
		    a->name, a->api ? "created over the API" : "the file's");
	else if (api_count(s) >= API_AGENTS_MAX)
		cmd_refuse(r, RESP_REFUSED, "agentd holds %d agents created over the API, its "
		    "bound: delete one first", API_AGENTS_MAX);
	else if (save(s, ac->name, config, etag, r) == 0) {
		if ((a = sup_add_agent(s, ac)) == NULL) {
			char err[512];
			store_api_delete(s->store, ac->name, err, sizeof(err));
			cmd_refuse(r, RESP_UNAVAILABLE, "%s: its saved state cannot be read", ac->name);
		} else {
			own(a, config, etag);
			log_agent(LL_INFO, a->name, "created over the API");
			agent_start(a);
			status_answer(r, a);
			r->created = true;
		}
	}
	free(etag);
	agent_conf_free(ac);
}

void
api_agent_update(struct sup *s, struct agent *a, const json_t *patch, const char *if_match,
    struct cmd_result *r)
{
	struct agent_conf *ac = NULL;
	struct conf_errors errs = { 0 };

	if (!owned(s, a, "change", r) || !matches(a, if_match, r))
		return;
	if (patch == NULL) {
		r->bad_arg = "patch";
		cmd_refuse(r, RESP_BAD_REQUEST, "update needs a patch (the keys to change)");
		return;
	}
	json_t *next = json_merge_patch(a->given, patch);
	const json_t *id = json_object_get(next, "agent_id");
	if (json_is_string(id) && strcmp(json_string_value(id), a->name)) {
		r->bad_arg = "patch";
		cmd_refuse(r, RESP_BAD_REQUEST, "agent_id is %s's name and cannot change: create "
		    "an agent of the new name and delete this one", a->name);
		r->errors = json_pack("[{s:s, s:s}]", "pointer", "/agent_id", "message",
		    "agent_id cannot change");
	} else if (config_agent_from_json(next, s->cfg->tasks, &ac, &errs) < 0)
		invalid(r, &errs);
	conf_errors_free(&errs);
	if (r->code) {
		json_decref(next);
		return;
	}
	char *etag = config_digest(next);
	if (strcmp(etag, a->etag) == 0 || save(s, a->name, next, etag, r) == 0) {
		if (strcmp(a->conf->fingerprint, ac->fingerprint)) {
			log_agent(LL_INFO, a->name, "config changed over the API");
			agent_replace_conf(a, ac);
		}
		free(a->conf_error);
		a->conf_error = NULL;
		own(a, next, etag);
		status_answer(r, a);
	}
	free(etag);
	json_decref(next);
	agent_conf_free(ac);
}

void
api_agent_delete(struct sup *s, struct agent *a, const char *if_match, struct cmd_result *r)
{
	char err[512], msg[256];

	if (!owned(s, a, "delete", r) || !matches(a, if_match, r))
		return;
	if (store_api_delete(s->store, a->name, err, sizeof(err)) < 0) {
		cmd_refuse(r, RESP_UNAVAILABLE, "%s: %s", a->name, err);
		return;
	}
	snprintf(msg, sizeof(msg), "%s deleted", a->name);
	r->code = RESP_OK;
	r->data = json_pack("{s:s, s:s}", "agent", a->name, "message", msg);
	log_agent(LL_INFO, a->name, "deleted over the API");
	agent_stop(a, AFTER_REMOVE, "deleted over the API");	/* may free it at once */
}

void
api_agent_export(struct agent *a, struct cmd_result *r)
{
	if (!owned(a->sup, a, "export", r))
		return;
	if (a->conf_error) {	/* its secrets are learned from a config that loads */
		cmd_refuse(r, RESP_REFUSED, "%s: its config no longer loads, so its secrets cannot "
		    "be told apart to hide them; update it first (%s)", a->name, a->conf_error);
		return;
	}
	r->code = RESP_OK;
	/* as every exit: an MCP header's token, an env value marked secret */
	r->data = json_pack("{s:s, s:o, s:s}", "name", a->name, "config",
	    sup_redact(a->sup, json_deep_copy(a->given)), "etag", a->etag);
	r->etag = xstrdup(a->etag);
}

/* ---- start and reload -------------------------------------------------------------- */

/* An agent whose stored config no longer loads: kept, with why, unstarted.
 * Its empty fingerprint and bare spec are no loaded config's, so the
 * update that fixes it replaces its config and starts its worker. */
static struct agent *
add_unloadable(struct sup *s, const char *name, char *why)
{
	struct agent_conf stub = { .name = (char *)name, .agent_id = (char *)name,
		.fingerprint = (char *)"", .spec = json_pack("{s:s}", "name", name) };
	struct agent *a = sup_add_agent(s, &stub);
	json_decref(stub.spec);
	log_agent(LL_ERROR, name, "created over the API, its config no longer loads; kept, "
	    "not started: %s", why);
	if (a)
		a->conf_error = why;
	else
		free(why);
	return a;
}

int
api_agents_load(struct sup *s)
{
	json_t *rows = store_api_list(s->store), *row;
	size_t i;

	if (rows == NULL)
		return -1;
	json_array_foreach(rows, i, row) {
		const char *name = json_string_value(json_object_get(row, "name"));
		const json_t *config = json_object_get(row, "config");
		struct agent_conf *ac = NULL;
		struct conf_errors errs = { 0 };
		struct agent *a;

		if (sup_find(s, name) || find_agent_id(s, name)) {
			log_agent(LL_ERROR, name, "created over the API, left out: the file defines an "
			    "agent of that name or agent_id now (change the file's to bring it back; "
			    "it stays in the state db)");
			continue;
		}
		if (config == NULL)
			a = add_unloadable(s, name, xstrdup("its stored config is not JSON"));
		else if (config_agent_from_json(config, s->cfg->tasks, &ac, &errs) < 0)
			a = add_unloadable(s, name, conf_errors_join(&errs));
		else
			a = sup_add_agent(s, ac);
		conf_errors_free(&errs);
		agent_conf_free(ac);
		if (a == NULL) {
			json_decref(rows);
			return -1;
		}
		json_t *given = config ? json_incref((json_t *)config) : json_object();
		own(a, given, json_string_value(json_object_get(row, "etag")));
		json_decref(given);
	}
	json_decref(rows);
	return 0;
}

int
api_agents_reload_check(struct sup *s, const struct config *nc, char **errtext)
{
	struct buf b;
	buf_init(&b);
	for (size_t i = 0; i < nc->nagents; i++) {
		const struct agent *a = sup_find(s, nc->agents[i].name);
		const struct agent *id = find_agent_id(s, nc->agents[i].agent_id);
		char line[512];
		if (a && a->api)
			snprintf(line, sizeof(line), "%s%s:%d:%d: agent %s belongs to the API "
			    "(created at run time): the file cannot define it too; delete it over "
			    "the API, or give the file's another name", b.len ? "\n" : "", nc->path,
			    nc->agents[i].line, nc->agents[i].col, a->name);
		else if (id && id->api)
			snprintf(line, sizeof(line), "%s%s:%d:%d: agent %s: agent_id %s is agent %s's, "
			    "created over the API", b.len ? "\n" : "", nc->path, nc->agents[i].line,
			    nc->agents[i].col, nc->agents[i].name, id->conf->agent_id, id->name);
		else
			continue;
		buf_append(&b, line, strlen(line));
	}
	if (b.len == 0) {
		buf_free(&b);
		return 0;
	}
	buf_append(&b, "", 1);
	*errtext = (char *)b.data;
	return -1;
}
