/*
 * provider: the model services a model_config may name, as one table --
 * each service's wire format (the request and reply shapes: OpenAI's Chat
 * Completions or Anthropic's Messages), its documented endpoint, the
 * header its key goes in and the variable the key is read from by default
 * (conf/ internal; the model_config rows of config.c use it).
 *
 * The loader resolves a model_config against its row, so the worker gets
 * the endpoint, the auth header and the key's source already decided
 * (config.h, "the spec") and knows nothing of providers but the two wire
 * formats.  `base_url` still overrides a service's own; azure has none of
 * its own (every resource has its own endpoint) and builds the deployment
 * URL from `deployment` (default: the model) and `api_version`.
 */
#ifndef AGENTD_PROVIDER_H
#define AGENTD_PROVIDER_H

#include <jansson.h>
#include "conf/schema.h"

/* model_config.provider: a known name (its canonical form), or an error
 * listing the known ones. */
json_t *provider_conv(struct walk *w, const struct ynode *n, const struct field *f);
/* model_config's finish: the endpoint, auth and key of its provider. */
void provider_finish(struct walk *w, const struct ynode *n, json_t *mc);
/* embeddings' finish: provider hash takes only dimensions (default 384);
 * openai is any OpenAI-compatible POST .../embeddings, OpenAI's own by
 * default (model text-embedding-3-small), its key where model keys are
 * read from (api_key_env, api_key_file, else OPENAI_API_KEY, required by
 * OpenAI's own endpoint), the url resolved. */
void embeddings_finish(struct walk *w, const struct ynode *n, json_t *ec);

#endif
