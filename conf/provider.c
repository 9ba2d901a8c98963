/*
 * provider: see provider.h.  Each row cites the service's own page for its
 * endpoint, auth header and key variable (read 2026-12; the pages move,
 * the endpoints have not).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/buf.h"
#include "common/util.h"
#include "conf/provider.h"

struct provider {
	const char *name;
	const char *wire;          /* request/reply format: openai | anthropic */
	const char *base_url;      /* documented; NULL: the user's base_url is needed */
	const char *path;          /* the endpoint under base_url ({deployment}, {api_version}) */
	const char *auth;          /* the header the key goes in, up to the key */
	const char *key_env;       /* where the key is read from by default */
	bool key_required;         /* its own endpoint refuses a request without one */
	const char *header;        /* one more header the API requires, or NULL */
};

#define BEARER "Authorization: Bearer "
#define CHAT "/chat/completions"

static const struct provider providers[] = {
	/* platform.openai.com/docs/api-reference/chat/create:
	 * POST https://api.openai.com/v1/chat/completions, Bearer $OPENAI_API_KEY */
	{ "openai", "openai", "https://api.openai.com/v1", CHAT, BEARER, "OPENAI_API_KEY",
	  true, NULL },
	/* docs.anthropic.com/en/api/messages: POST https://api.anthropic.com/v1/messages,
	 * x-api-key: $ANTHROPIC_API_KEY, anthropic-version: 2023-06-01 */
	{ "anthropic", "anthropic", "https://api.anthropic.com", "/v1/messages", "x-api-key: ",
	  "ANTHROPIC_API_KEY", true, "anthropic-version: 2023-06-01" },
	/* docs.ollama.com/api/openai-compatibility: base_url http://localhost:11434/v1,
	 * no key locally ("required but ignored"); OLLAMA_API_KEY for ollama.com */
	{ "ollama", "openai", "http://localhost:11434/v1", CHAT, BEARER, "OLLAMA_API_KEY",
	  false, NULL },
	/* openrouter.ai/docs/quickstart: POST https://openrouter.ai/api/v1/chat/completions,
	 * Bearer $OPENROUTER_API_KEY */
	{ "openrouter", "openai", "https://openrouter.ai/api/v1", CHAT, BEARER,
	  "OPENROUTER_API_KEY", true, NULL },
	/* console.groq.com/docs/openai: base_url https://api.groq.com/openai/v1,
	 * api_key GROQ_API_KEY */
	{ "groq", "openai", "https://api.groq.com/openai/v1", CHAT, BEARER, "GROQ_API_KEY",
	  true, NULL },
	/* api-docs.deepseek.com: base_url https://api.deepseek.com ("/v1" also served),
	 * POST /chat/completions, Bearer ${DEEPSEEK_API_KEY} */
	{ "deepseek", "openai", "https://api.deepseek.com", CHAT, BEARER, "DEEPSEEK_API_KEY",
	  true, NULL },
	/* docs.mistral.ai/api: POST https://api.mistral.ai/v1/chat/completions,
	 * Bearer $MISTRAL_API_KEY */
	{ "mistral", "openai", "https://api.mistral.ai/v1", CHAT, BEARER, "MISTRAL_API_KEY",
	  true, NULL },
	/* docs.together.ai/docs/openai-api-compatibility: base_url
	 * https://api.together.ai/v1, api_key TOGETHER_API_KEY */
	{ "together", "openai", "https://api.together.ai/v1", CHAT, BEARER, "TOGETHER_API_KEY",
	  true, NULL },
	/* ai.google.dev/gemini-api/docs/openai: base_url
	 * https://generativelanguage.googleapis.com/v1beta/openai/, Bearer $GEMINI_API_KEY */
	{ "gemini", "openai", "https://generativelanguage.googleapis.com/v1beta/openai", CHAT,
	  BEARER, "GEMINI_API_KEY", true, NULL },
	/* learn.microsoft.com/azure/ai-services/openai/reference: POST {endpoint}/openai/
	 * deployments/{deployment-id}/chat/completions?api-version=..., header api-key
	 * (AZURE_OPENAI_API_KEY is the variable its SDKs read) */
	{ "azure", "openai", NULL, "/openai/deployments/{deployment}/chat/completions"
	  "?api-version={api_version}", "api-key: ", "AZURE_OPENAI_API_KEY", true, NULL },
};

#define AZURE_API_VERSION "2024-10-21"	/* the latest GA data-plane version */
#define URL_SAFE "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

static const struct provider *
provider_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(providers); i++)
		if (!strcmp(providers[i].name, name))
			return &providers[i];
	return NULL;
}

json_t *
provider_conv(struct walk *w, const struct ynode *n, const struct field *f)
{
	if (!want_scalar(w, n))
		return NULL;
	if (provider_find(n->value))
		return json_string(n->value);
	char list[256] = "";
	for (size_t i = 0; i < ARRAY_LEN(providers); i++) {
		strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
		strncat(list, providers[i].name, sizeof(list) - strlen(list) - 1);
	}
	err_at(w->L, n, "%s: unknown provider \"%s\" (known: %s; any other OpenAI-compatible "
	    "service is openai with its base_url)", w->path, n->value, list);
	return NULL;
}

/* path with {deployment} and {api_version} filled from mc. */
static char *
endpoint(const char *base, const char *path, const json_t *mc)
{
	struct buf b;
	buf_init(&b);
	buf_append(&b, base, strlen(base));
	while (b.len > 0 && b.data[b.len - 1] == '/')
		b.len--;
	for (const char *p = path; *p; ) {
		const char *close = *p == '{' ? strchr(p, '}') : NULL;
		if (close == NULL) {
			buf_append(&b, p++, 1);
			continue;
		}
		char key[32];
		snprintf(key, sizeof(key), "%.*s", (int)(close - p - 1), p + 1);
		const char *v = json_string_value(json_object_get(mc, key));
		buf_append(&b, v, strlen(v));
		p = close + 1;
	}
	buf_append(&b, "", 1);
	return (char *)b.data;
}

/* Where the key comes from, and whether a run can go without one.  The
 * variable's value is not ours to read here (agentd reads it when the
 * worker starts, agent.c), but --check-config says what it will find. */
static void
key_source(struct walk *w, const struct ynode *n, const struct provider *p, json_t *mc,
    const char *without)
{
	const char *env = json_string_value(json_object_get(mc, "api_key_env"));
	const char *file = json_string_value(json_object_get(mc, "api_key_file"));
	bool named = env || file;

	if (env && file) {
		err_at(w->L, ymap_get(n, "api_key_file"), "%s: api_key_env and api_key_file "
		    "both name a key; keep one", w->path);
		return;
	}
	if (!named)
		json_object_set_new(mc, "api_key_env", json_string(p->key_env));
	/* A base_url of the user's may be a server that takes no key. */
	bool required = named || (p->key_required &&
	    (p->base_url == NULL || !json_object_get(mc, "base_url")));
	json_object_set_new(mc, "api_key_required", json_boolean(required));
	if (required && file && access(file, R_OK) < 0)
		warn_at(w->L, ymap_get(n, "api_key_file"), "%s.api_key_file: %s is not readable "
		    "here; %s unless agentd can read it", w->path, file, without);
	else if (required && !file && !*(getenv(env ? env : p->key_env) ?: ""))
		warn_at(w->L, env ? ymap_get(n, "api_key_env") : n, "%s: %s is not set in this "
		    "environment; %s unless agentd's has it", w->path,
		    env ? env : p->key_env, without);
}

void
provider_finish(struct walk *w, const struct ynode *n, json_t *mc)
{
	const char *name = json_string_value(json_object_get(mc, "provider"));
	const struct provider *p = name ? provider_find(name) : NULL;
	const char *base = json_string_value(json_object_get(mc, "base_url"));
	bool azure = p && p->base_url == NULL;

	if (p == NULL)
		return;	/* reported */
	static const char *const azure_keys[] = { "deployment", "api_version" };
	for (size_t i = 0; i < ARRAY_LEN(azure_keys); i++)
		if (!azure && ymap_get(n, azure_keys[i]))
			err_at(w->L, ymap_get(n, azure_keys[i]), "%s.%s is for provider azure only",
			    w->path, azure_keys[i]);
	if (azure && base == NULL) {
		err_at(w->L, n, "%s: provider azure needs base_url, the resource's endpoint "
		    "(https://RESOURCE.openai.azure.com)", w->path);
		return;
	}
	if (azure) {
		if (!json_object_get(mc, "deployment"))
			json_object_set(mc, "deployment", json_object_get(mc, "model"));
		if (!json_object_get(mc, "api_version"))
			json_object_set_new(mc, "api_version", json_string(AZURE_API_VERSION));
		const char *dep = json_string_value(json_object_get(mc, "deployment"));
		const char *ver = json_string_value(json_object_get(mc, "api_version"));
		if (dep == NULL)
			return;	/* the model was refused */
		/* both go into the URL as they are */
		if (strspn(dep, URL_SAFE) != strlen(dep) || strspn(ver, URL_SAFE) != strlen(ver)) {
			err_at(w->L, ymap_get(n, strspn(dep, URL_SAFE) != strlen(dep) ?
			    (ymap_get(n, "deployment") ? "deployment" : "model") : "api_version"),
			    "%s: an azure deployment and api_version are A-Z a-z 0-9 . _ -", w->path);
			return;
		}
	}
	char *url = endpoint(base ? base : p->base_url, p->path, mc);
	json_object_set_new(mc, "wire", json_string(p->wire));
	json_object_set_new(mc, "url", json_string(url));
	json_object_set_new(mc, "auth_header", json_string(p->auth));
	json_object_set_new(mc, "headers", p->header ? json_pack("[s]", p->header) : json_array());
	free(url);
	key_source(w, n, p, mc, "runs fail");
	/* What the worker uses is url: the parts it was made of are not sent. */
	json_object_del(mc, "base_url");
	json_object_del(mc, "deployment");
	json_object_del(mc, "api_version");
}

/* platform.openai.com/docs/api-reference/embeddings: POST
 * https://api.openai.com/v1/embeddings, Bearer $OPENAI_API_KEY; the same
 * path under any compatible server's base_url. */
#define EMBED_DEFAULT_MODEL "text-embedding-3-small"
#define HASH_DIMENSIONS 384

void
embeddings_finish(struct walk *w, const struct ynode *n, json_t *ec)
{
	static const char *const openai_only[] = { "model", "base_url", "api_key_env",
		"api_key_file", "batch_size", "request_timeout" };
	const char *name = json_string_value(json_object_get(ec, "provider"));
	const char *base = json_string_value(json_object_get(ec, "base_url"));

	if (name == NULL)
		return;	/* refused */
	if (strcmp(name, "hash") == 0) {
		for (size_t i = 0; i < ARRAY_LEN(openai_only); i++)
			if (ymap_get(n, openai_only[i]))
				err_at(w->L, ymap_get(n, openai_only[i]), "%s.%s is for provider "
				    "openai (hash embeds in agentd, with no model or endpoint)", w->path,
				    openai_only[i]);
		if (!json_object_get(ec, "dimensions"))
			json_object_set_new(ec, "dimensions", json_integer(HASH_DIMENSIONS));
		return;
	}
	const struct provider *p = provider_find("openai");
	char *url = endpoint(base ? base : p->base_url, "/embeddings", ec);
	if (!json_object_get(ec, "model"))
		json_object_set_new(ec, "model", json_string(EMBED_DEFAULT_MODEL));
	json_object_set_new(ec, "url", json_string(url));
	free(url);
	key_source(w, n, p, ec, "recall goes by words alone");
	json_object_del(ec, "base_url");
}
