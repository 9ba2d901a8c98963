/*
 * secrets: what agentd knows to be secret, gathered from each source into
 * the one set it redacts with (struct sup.secrets, common/redact.h).
 *
 * Sources, each a row of a table below:
 *   per agent, learned when its worker is started -- what a worker is
 *   given is all it could echo:
 *     - every string of the `secrets` object sent to the worker: its model
 *       API key (agent.c's agent_secrets reads api_key_file, api_key_env or
 *       the provider's variable, at every start), and any key a later
 *       source puts there (embeddings);
 *     - the values of its MCP servers' `headers` (all but the few that only
 *       describe the request: Accept, Content-Type, User-Agent ...): for a
 *       value of the form "<scheme> <credentials>" ("Bearer tok..."), the
 *       credentials, so the token is caught wherever it turns up, quoted
 *       with its scheme or not;
 *     - the values of its env entries marked `secret: true`.
 *   global, learned at start:
 *     - the Redis password (agentd.redis.password, REDIS_PASSWORD);
 *     - the password in database_url, as libpq reads it;
 *     - Qdrant's api-key (agentd.qdrant.api_key_env or api_key_file, read
 *       as the qdrant backend reads it);
 *     - the Chroma token (agentd.chromadb.token_file or token_env).
 *
 * What the worker is told: the strings of `secrets` are its own already;
 * its other secrets go to it as `secrets.redact` (a list), so it redacts
 * with exactly these and decides nothing itself.  The header values stay
 * in the spec too (the worker sends them), the secret env values are in
 * its environment on purpose; neither is in argv or in any log.
 *
 * agentd redacts with every secret of every agent and its own, since any
 * agent's output (a shared file, a tool that prints the environment, a
 * confused model) can echo any of them.  The set only grows: a worker
 * started before a reload changed a key may still echo the old one.
 *
 * A value shorter than REDACT_MIN is not redacted (redact.h says why),
 * nor sent to the worker as one; where it was meant as a secret -- an API
 * key, an env value marked secret, a global password -- the log says so,
 * naming the source (never the value).  A short header value is just not
 * taken for a secret.
 */
#include <libpq-fe.h>
#include <string.h>
#include <strings.h>
#include "common/log.h"
#include "common/redact.h"
#include "common/util.h"
#include "supervisor/memory/memory.h"
#include "supervisor/sup.h"

/* ---- per agent ------------------------------------------------------------- */

/* The credentials of "<scheme> <credentials>", else the whole value. */
static void
add_header_value(const char *v, json_t *out)
{
	size_t scheme = 0;
	while (v[scheme] && ((v[scheme] | 0x20) >= 'a' && (v[scheme] | 0x20) <= 'z'))
		scheme++;
	const char *cred = v + scheme;
	while (*cred == ' ')
		cred++;
	bool split = scheme > 0 && cred > v + scheme && strlen(cred) >= REDACT_MIN;
	json_array_append_new(out, json_string(split ? cred : v));
}

/* Headers that say what a request is, never who makes it: their values
 * ("application/json") would garble every output they occur in. */
static const char *const public_headers[] = {
	"accept", "accept-encoding", "accept-language", "cache-control",
	"content-type", "user-agent",
};

static bool
is_public_header(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(public_headers); i++)
		if (strcasecmp(name, public_headers[i]) == 0)
			return true;
	return false;
}

static void
from_mcp_headers(const struct agent_conf *c, json_t *out)
{
	size_t i;
	json_t *server, *v;
	const char *k;

	json_array_foreach(json_object_get(c->spec, "mcp_tools"), i, server)
		json_object_foreach(json_object_get(server, "headers"), k, v)
			if (json_is_string(v) && !is_public_header(k))
				add_header_value(json_string_value(v), out);
}

static void
from_secret_env(const struct agent_conf *c, json_t *out)
{
	for (char **e = c->secret_env; e && *e; e++)
		json_array_append_new(out, json_string(*e));
}

/* The agent's secrets besides those the `secrets` object carries. */
static const struct {
	const char *what;       /* for the log, when a value is too short */
	void (*collect)(const struct agent_conf *c, json_t *out);
	bool meant;             /* the user meant it as a secret: say so */
} agent_sources[] = {
	{ "an MCP server's header", from_mcp_headers, false },
	{ "an env value marked secret", from_secret_env, true },
};

static void
too_short(const struct agent *a, const char *what)
{
	log_agent(LL_WARN, a->name, "%s is shorter than %d bytes: too short to redact "
	    "safely, so it is not redacted", what, REDACT_MIN);
}

void
secrets_for_worker(struct agent *a, json_t *secrets)
{
	json_t *list = json_array(), *v;
	const char *k;
	size_t i;

	json_object_foreach(secrets, k, v)
		if (json_is_string(v) && redact_add(a->sup->secrets, json_string_value(v)) < 0)
			too_short(a, k);
	for (size_t s = 0; s < ARRAY_LEN(agent_sources); s++) {
		json_t *found = json_array();
		agent_sources[s].collect(a->conf, found);
		json_array_foreach(found, i, v)
			if (redact_add(a->sup->secrets, json_string_value(v)) >= 0)
				json_array_append(list, v);
			else if (agent_sources[s].meant)
				too_short(a, agent_sources[s].what);
		json_decref(found);
	}
	json_object_set_new(secrets, "redact", list);
}

/* ---- global ---------------------------------------------------------------- */

static char *
redis_password(const struct global_conf *g)
{
	return g->redis_password ? xstrdup(g->redis_password) : NULL;
}

static char *
database_password(const struct global_conf *g)
{
	char *err = NULL, *pw = NULL;
	PQconninfoOption *opts = g->database_url ? PQconninfoParse(g->database_url, &err) : NULL;

	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val && *o->val)
			pw = xstrdup(o->val);
	PQconninfoFree(opts);
	PQfreemem(err);
	return pw;
}

static char *
qdrant_key(const struct global_conf *g)
{
	char key[4096], why[320];
	char *v = qdrant_read_key(g, key, sizeof(key), why, sizeof(why)) == 0 && key[0] ?
	    xstrdup(key) : NULL;
	explicit_bzero(key, sizeof(key));
	return v;
}

static char *
chromadb_token(const struct global_conf *g)
{
	char err[256];
	return mem_chroma_token(g->chromadb, err, sizeof(err));
}

static const struct {
	const char *what;
	char *(*get)(const struct global_conf *g);   /* malloc'd, or NULL: none */
} global_sources[] = {
	{ "agentd.redis.password", redis_password },
	{ "the password in database_url", database_password },
	{ "agentd.qdrant's api-key", qdrant_key },
	{ "agentd.chromadb's token", chromadb_token },
};

void
secrets_open(struct sup *s)
{
	s->secrets = redact_new();
	for (size_t i = 0; i < ARRAY_LEN(global_sources); i++) {
		char *v = global_sources[i].get(&s->cfg->g);
		if (v && redact_add(s->secrets, v) < 0)
			log_warn("%s is shorter than %d bytes: too short to redact safely, "
			    "so it is not redacted", global_sources[i].what, REDACT_MIN);
		if (v)
			explicit_bzero(v, strlen(v));
		free(v);
	}
	log_set_redact(s->secrets);
}

void
secrets_close(struct sup *s)
{
	log_set_redact(NULL);
	redact_free(s->secrets);
	s->secrets = NULL;
}

json_t *
sup_redact(const struct sup *s, json_t *v)
{
	json_t *clean = redact_json(s->secrets, v);
	json_decref(v);
	return clean;
}
