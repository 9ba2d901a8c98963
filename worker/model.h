/*
 * model: one request to a model provider, and what came back.
 *
 * Two wire formats: `openai` (Chat Completions, which every OpenAI-compatible
 * service speaks: Ollama, OpenRouter, Groq, DeepSeek, Mistral, Together,
 * Gemini, Azure, vLLM, llama.cpp's server) and `anthropic` (Messages).
 * Which service, its endpoint and its auth header were decided by the
 * config loader (conf/provider.c); the worker takes them as they come.
 * The conversation is kept in the provider's own message format, so an
 * assistant message goes back exactly as it came; model_user_message()
 * and model_tool_results() build the messages the loop adds.
 *
 * Every failure is classified: RETRYABLE (408, 409, 429, 5xx, Anthropic's
 * 529 overloaded_error also as an error body after a 200, connection
 * failures, timeouts; the server's retry-after-ms / retry-after kept) or
 * FATAL (400-404, 413, 422, insufficient_quota, a body that is not the
 * expected JSON, a body over the cap).  x-should-retry overrides.  The API
 * key is sent in a header and never appears in any message; a provider's
 * error text that quotes it (or another secret of the worker's) is redacted
 * before it is cut to fit the error, so the cut cannot leave part of one.
 *
 * A reply is read as each provider documents it, and what is not is an
 * error, never an empty success: OpenAI `content` a string, null, or a
 * list of text/refusal parts; `arguments` a JSON text (an object, as some
 * compatible servers send, is taken as it is); a `refusal` (OpenAI's
 * field or part, Anthropic's stop_reason) fails the attempt with the
 * model's words; an Anthropic tool_use needs its id and name.  Arguments
 * that are not an object are handed to the loop as {"_invalid_arguments":
 * text}, for the model to be told.  A NUL in a string is read (it is valid
 * JSON) and shown in the answer as U+FFFD.  Usage counts that are missing,
 * not integers or negative leave usage_ok false.
 */
#ifndef AGENTD_MODEL_H
#define AGENTD_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

enum provider { PROVIDER_OPENAI, PROVIDER_ANTHROPIC };
enum model_errclass { MODEL_OK = 0, MODEL_RETRYABLE, MODEL_FATAL, MODEL_CANCELLED };

#define MODEL_BODY_MAX (8u << 20)
/* A floor under what a provider may claim a request cost: English runs
 * about 4 bytes a token and JSON fewer, so an honest count stays above one
 * token per 6 bytes of the bodies sent and received, and a provider that
 * reports less (or nothing) cannot make total_tokens_limit let a run go on
 * without end. */
#define MODEL_BYTES_PER_TOKEN_FLOOR 6

struct model_cfg {
	enum provider provider;     /* the wire format */
	char name[32];              /* the service, as configured (groq, azure, ...) */
	char model[128];
	char url[1024];             /* the endpoint to POST to */
	char auth_header[64];       /* the header up to the key: "x-api-key: " */
	const json_t *headers;      /* more headers to send ([str], the spec's) */
	char api_key[1024];
	double temperature, top_p;
	bool has_temperature, has_top_p;
	int64_t max_tokens;         /* default 4096 (Anthropic requires one) */
	int64_t timeout_ms;         /* request_timeout; default 120 s */
	int64_t connect_timeout_ms; /* default 10 s */
	int64_t max_context;        /* max_context_length in tokens; 0: no trim */
	const struct redact *redact;/* the worker's secrets: a provider's error
	                               message is redacted before it is cut */
};

struct model_reply {
	char *text;                 /* final text, may be NULL */
	json_t *calls;              /* [{id, name, arguments (object)}] */
	char finish[32];            /* stop, length, tool_calls, content_filter,
	                               end_turn, tool_use, max_tokens, refusal, pause_turn */
	int64_t input_tokens, output_tokens;
	bool usage_ok;              /* both were reported, as counts */
	int64_t request_bytes, reply_bytes;  /* the bodies, whatever usage says */
	json_t *assistant;          /* the message to append, as the provider sent it */
	int status;
	int64_t latency_ms;
	int64_t latency_us;
};

struct model_error {
	enum model_errclass cls;
	int status;                 /* HTTP status, 0 when none */
	char type[64];              /* rate_limit_error, insufficient_quota, timeout, ... */
	char message[512];
	int64_t retry_after_ms;     /* -1: none given */
};

/* The spec's model_config, normalized by the loader (conf/config.h), and
 * the key agentd handed over -> cfg; -1 with err when the spec lacks what
 * a model call needs (a spec agentd did not make). */
int model_cfg_parse(const json_t *model_config, const char *api_key,
    struct model_cfg *cfg, char *err, size_t errlen);
const char *provider_name(enum provider p);

json_t *model_user_message(const struct model_cfg *c, const char *text);
/* results: [{id, content (string), is_error}] -> message(s) to append. */
void model_tool_results(const struct model_cfg *c, json_t *messages, const json_t *results);

/* Trim the oldest messages (keeping tool calls with their results) so an
 * estimate of the context (chars / 4) fits max_context. */
void model_trim(const struct model_cfg *c, json_t *messages, const char *system);

/* tools: [{name, description, input_schema}].  cancelled() is polled during
 * the transfer.  0 and *reply, or -1 and *err. */
int model_call(const struct model_cfg *c, const char *system, const json_t *messages,
    const json_t *tools, bool (*cancelled)(void *), void *arg,
    struct model_reply *reply, struct model_error *err);
void model_reply_free(struct model_reply *r);

#endif
