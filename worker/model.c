/*
 * model: see model.h.  One libcurl easy handle per request (a run makes a
 * handful); the body is capped in the write callback; response headers are
 * read for Retry-After, x-should-retry and the content type; the transfer
 * polls the caller's cancel check through the progress callback.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/buf.h"
#include "common/httphdr.h"
#include "common/redact.h"
#include "common/util.h"
#include "worker/model.h"
#include "worker/tools.h"

const char *
provider_name(enum provider p)
{
	return p == PROVIDER_ANTHROPIC ? "anthropic" : "openai";
}

static void
copy_str(char *dst, size_t len, const json_t *v, const char *dflt)
{
	snprintf(dst, len, "%s", json_is_string(v) ? json_string_value(v) : dflt);
}

int
model_cfg_parse(const json_t *mc, const char *api_key, struct model_cfg *c,
    char *err, size_t errlen)
{
	static const char *const needed[] = { "model", "wire", "url", "auth_header", "headers",
		"max_tokens", "request_timeout_ms" };
	json_t *v;

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < ARRAY_LEN(needed); i++)
		if (json_object_get(mc, needed[i]) == NULL) {
			snprintf(err, errlen, "model_config.%s is required", needed[i]);
			return -1;
		}
	c->provider = strcmp(json_string_value(json_object_get(mc, "wire")), "anthropic") ?
	    PROVIDER_OPENAI : PROVIDER_ANTHROPIC;
	copy_str(c->name, sizeof(c->name), json_object_get(mc, "provider"), provider_name(c->provider));
	copy_str(c->model, sizeof(c->model), json_object_get(mc, "model"), "");
	copy_str(c->url, sizeof(c->url), json_object_get(mc, "url"), "");
	copy_str(c->auth_header, sizeof(c->auth_header), json_object_get(mc, "auth_header"), "");
	c->headers = json_object_get(mc, "headers");
	snprintf(c->api_key, sizeof(c->api_key), "%s", api_key ? api_key : "");
	if ((c->has_temperature = (v = json_object_get(mc, "temperature")) != NULL))
		c->temperature = json_number_value(v);
	if ((c->has_top_p = (v = json_object_get(mc, "top_p")) != NULL))
		c->top_p = json_number_value(v);
	c->max_tokens = json_integer_value(json_object_get(mc, "max_tokens"));
	c->max_context = json_integer_value(json_object_get(mc, "max_context_length"));
	c->timeout_ms = json_integer_value(json_object_get(mc, "request_timeout_ms"));
	c->connect_timeout_ms = 10000;
	return 0;
}

/* ---- messages ---------------------------------------------------------------- */

json_t *
model_user_message(const struct model_cfg *c, const char *text)
{
	if (c->provider == PROVIDER_ANTHROPIC)
		return json_pack("{s:s, s:[{s:s, s:s}]}", "role", "user", "content",
		    "type", "text", "text", text);
	return json_pack("{s:s, s:s}", "role", "user", "content", text);
}

void
model_tool_results(const struct model_cfg *c, json_t *messages, const json_t *results)
{
	size_t i;
	json_t *r;

	if (c->provider == PROVIDER_ANTHROPIC) {	/* one user message of blocks */
		json_t *blocks = json_array();
		json_array_foreach(results, i, r)
			json_array_append_new(blocks, json_pack("{s:s, s:O, s:O, s:O}",
			    "type", "tool_result", "tool_use_id", json_object_get(r, "id"),
			    "content", json_object_get(r, "content"),
			    "is_error", json_object_get(r, "is_error")));
		json_array_append_new(messages, json_pack("{s:s, s:o}", "role", "user",
		    "content", blocks));
		return;
	}
	json_array_foreach(results, i, r)	/* one role:tool message per call */
		json_array_append_new(messages, json_pack("{s:s, s:O, s:O}", "role", "tool",
		    "tool_call_id", json_object_get(r, "id"), "content",
		    json_object_get(r, "content")));
}

static size_t
message_chars(const json_t *m)
{
	char *s = json_dumps(m, JSON_COMPACT);
	size_t n = s ? strlen(s) : 0;
	free(s);
	return n;
}

/* A message that answers tool calls cannot lead the conversation. */
static bool
is_tool_answer(const struct model_cfg *c, const json_t *m)
{
	if (c->provider == PROVIDER_OPENAI)
		return strcmp(json_string_value(json_object_get(m, "role")), "tool") == 0;
	json_t *content = json_object_get(m, "content");
	json_t *first = json_is_array(content) ? json_array_get(content, 0) : NULL;
	return first && json_is_string(json_object_get(first, "type")) &&
	    strcmp(json_string_value(json_object_get(first, "type")), "tool_result") == 0;
}

void
model_trim(const struct model_cfg *c, json_t *messages, const char *system)
{
	if (c->max_context <= 0)
		return;
	size_t budget = (size_t)c->max_context * 4, total = system ? strlen(system) : 0;
	for (size_t i = 0; i < json_array_size(messages); i++)
		total += message_chars(json_array_get(messages, i));
	/* Keep the last message (the task, or the latest results) always. */
	while (total > budget && json_array_size(messages) > 1) {
		total -= message_chars(json_array_get(messages, 0));
		json_array_remove(messages, 0);
		while (json_array_size(messages) > 1 && is_tool_answer(c, json_array_get(messages, 0))) {
			total -= message_chars(json_array_get(messages, 0));
			json_array_remove(messages, 0);
		}
	}
}

/* ---- HTTP ----------------------------------------------------------------------- */

struct xfer {
	struct buf body;
	bool too_big;
	char content_type[128];
	int64_t retry_after_ms;
	int should_retry;          /* -1 unset, 0 false, 1 true */
	bool (*cancelled)(void *);
	void *arg;
	bool was_cancelled;
};

static size_t
on_body(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;
	if (buf_pending(&x->body) + len > MODEL_BODY_MAX) {
		x->too_big = true;
		return 0;	/* aborts the transfer */
	}
	buf_append(&x->body, p, len);
	return len;
}

static size_t
on_header(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;
	char line[512];
	const char *v;

	if (http_retry_header(p, len, line, sizeof(line), &x->retry_after_ms))
		return len;
	if (http_header_is(line, strlen(line), "x-should-retry", &v))
		x->should_retry = strncasecmp(v, "true", 4) == 0;
	else if (http_header_is(line, strlen(line), "content-type", &v))
		snprintf(x->content_type, sizeof(x->content_type), "%s", v);
	return len;
}

static int
on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	struct xfer *x = ud;
	if (x->cancelled && x->cancelled(x->arg)) {
		x->was_cancelled = true;
		return 1;
	}
	return 0;
}

static void
set_err(struct model_error *e, enum model_errclass cls, int status, const char *type,
    const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	e->cls = cls;
	e->status = status;
	snprintf(e->type, sizeof(e->type), "%s", type);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* cut on a character: the message goes into JSON (events, results) */
	size_t n = utf8_cut(msg, strlen(msg), sizeof(e->message) - 1);
	memcpy(e->message, msg, n);
	e->message[n] = '\0';
}

/* ---- request bodies ------------------------------------------------------------- */

/* The sampling settings both APIs take under the same names. */
static void
set_sampling(json_t *b, const struct model_cfg *c)
{
	if (c->has_temperature)
		json_object_set_new(b, "temperature", json_real(c->temperature));
	if (c->has_top_p)
		json_object_set_new(b, "top_p", json_real(c->top_p));
}

static json_t *
openai_body(const struct model_cfg *c, const char *system, const json_t *messages,
    const json_t *tools)
{
	json_t *msgs = json_array(), *b;
	size_t i;
	json_t *t;
	if (system && *system)
		json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", system));
	json_array_extend(msgs, (json_t *)messages);
	b = json_pack("{s:s, s:o, s:I}", "model", c->model, "messages", msgs,
	    "max_tokens", (json_int_t)c->max_tokens);
	set_sampling(b, c);
	if (json_array_size(tools)) {
		json_t *arr = json_array();
		json_array_foreach(tools, i, t)
			json_array_append_new(arr, json_pack("{s:s, s:{s:O, s:O, s:O}}", "type",
			    "function", "function", "name", json_object_get(t, "name"),
			    "description", json_object_get(t, "description"), "parameters",
			    json_object_get(t, "input_schema")));
		json_object_set_new(b, "tools", arr);
	}
	return b;
}

static json_t *
anthropic_body(const struct model_cfg *c, const char *system, const json_t *messages,
    const json_t *tools)
{
	json_t *b = json_pack("{s:s, s:O, s:I}", "model", c->model, "messages", messages,
	    "max_tokens", (json_int_t)c->max_tokens);
	size_t i;
	json_t *t;
	if (system && *system)
		json_object_set_new(b, "system", json_string(system));
	set_sampling(b, c);
	if (json_array_size(tools)) {
		json_t *arr = json_array();
		json_array_foreach(tools, i, t)
			json_array_append_new(arr, json_pack("{s:O, s:O, s:O}", "name",
			    json_object_get(t, "name"), "description", json_object_get(t, "description"),
			    "input_schema", json_object_get(t, "input_schema")));
		json_object_set_new(b, "tools", arr);
	}
	return b;
}

/* ---- responses -------------------------------------------------------------------- */

/* A string's text for the answer: a NUL (valid JSON) would end a C
 * string early, so it is shown as U+FFFD. */
static void
append_text(struct buf *b, const json_t *str)
{
	const char *p = json_string_value(str);
	size_t n = json_string_length(str);
	for (const char *z; n > 0 && (z = memchr(p, '\0', n)); n -= (size_t)(z - p) + 1, p = z + 1) {
		buf_append(b, p, (size_t)(z - p));
		buf_append(b, "\xef\xbf\xbd", 3);
	}
	buf_append(b, p, n);
}

static char *
buf_text(struct buf *b)
{
	buf_append(b, "", 1);
	char *t = xstrdup((const char *)buf_head(b));
	buf_free(b);
	return t;
}

/* A tool call's arguments: an object, else what the model wrote, for it
 * to be told (the loop answers "arguments are not a JSON object"). */
static json_t *
call_arguments(const json_t *v)
{
	if (v == NULL)	/* none given: none taken */
		return json_object();
	if (json_is_object(v))
		return json_incref((json_t *)v);
	json_t *parsed = json_is_string(v) ? json_loadb(json_string_value(v), json_string_length(v),
	    JSON_ALLOW_NUL, NULL) : NULL;
	if (json_is_object(parsed))
		return parsed;
	json_decref(parsed);
	char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	json_t *bad = json_pack("{s:s}", "_invalid_arguments", text ? text :
	    json_string_value(v) ?: "");
	free(text);
	return bad ? bad : json_pack("{s:s}", "_invalid_arguments", "");
}

/* Usage counts as reported: present, integers, not negative. */
static bool
count_of(const json_t *u, const char *key, bool optional, int64_t *n)
{
	const json_t *v = json_object_get(u, key);
	if (v == NULL && optional)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*n += json_integer_value(v);
	return true;
}

/* OpenAI content: a string, null, or parts (text, refusal). -1 and e when
 * it is none of them or a part is a refusal. */
static int
openai_content(const json_t *content, struct buf *text, struct model_error *e)
{
	const json_t *part;
	size_t i;

	if (content == NULL || json_is_null(content))
		return 0;
	if (json_is_string(content)) {
		append_text(text, content);
		return 0;
	}
	if (!json_is_array(content)) {
		set_err(e, MODEL_FATAL, 200, "malformed_response", "choices[0].message.content "
		    "is neither text, null nor a list of parts");
		return -1;
	}
	json_array_foreach(content, i, part) {
		const char *type = json_string_value(json_object_get(part, "type"));
		const json_t *refusal = json_object_get(part, "refusal");
		if (type && !strcmp(type, "text") && json_is_string(json_object_get(part, "text")))
			append_text(text, json_object_get(part, "text"));
		else if (type && !strcmp(type, "refusal") && json_is_string(refusal)) {
			set_err(e, MODEL_FATAL, 200, "refusal", "the model refused: %s",
			    json_string_value(refusal));
			return -1;
		}
	}
	return 0;
}

static int
parse_openai(json_t *doc, struct model_reply *r, struct model_error *e)
{
	json_t *choice = json_array_get(json_object_get(doc, "choices"), 0);
	json_t *msg = json_object_get(choice, "message");
	json_t *calls = json_object_get(msg, "tool_calls"), *call;
	const json_t *refusal = json_object_get(msg, "refusal");
	struct buf text;
	size_t i;

	if (!json_is_object(msg)) {
		set_err(e, MODEL_FATAL, 200, "malformed_response", "response has no choices[0].message");
		return -1;
	}
	if (json_is_string(refusal)) {
		set_err(e, MODEL_FATAL, 200, "refusal", "the model refused: %s",
		    json_string_value(refusal));
		return -1;
	}
	copy_str(r->finish, sizeof(r->finish), json_object_get(choice, "finish_reason"), "stop");
	buf_init(&text);
	if (openai_content(json_object_get(msg, "content"), &text, e) < 0) {
		buf_free(&text);
		return -1;
	}
	r->text = buf_text(&text);
	/* The provider's filter withheld or cut the answer: what is left is not
	 * the model's answer, and the same request would be filtered again. */
	if (strcmp(r->finish, "content_filter") == 0) {
		set_err(e, MODEL_FATAL, 200, "content_filter",
		    "the provider's content filter withheld the answer (finish_reason content_filter)%s%s",
		    r->text[0] ? "; partial answer: " : "", r->text);
		return -1;
	}
	r->calls = json_array();
	json_array_foreach(calls, i, call) {
		json_t *fn = json_object_get(call, "function");
		if (!json_is_string(json_object_get(call, "id")) ||
		    !json_is_string(json_object_get(fn, "name"))) {
			set_err(e, MODEL_FATAL, 200, "malformed_response", "tool call without id or name");
			return -1;
		}
		json_array_append_new(r->calls, json_pack("{s:O, s:O, s:o}", "id",
		    json_object_get(call, "id"), "name", json_object_get(fn, "name"),
		    "arguments", call_arguments(json_object_get(fn, "arguments"))));
	}
	json_t *u = json_object_get(doc, "usage");
	r->usage_ok = count_of(u, "prompt_tokens", false, &r->input_tokens) &&
	    count_of(u, "completion_tokens", false, &r->output_tokens);
	r->assistant = json_incref(msg);
	return 0;
}

static int
parse_anthropic(json_t *doc, struct model_reply *r, struct model_error *e)
{
	json_t *content = json_object_get(doc, "content"), *b;
	const char *type = json_string_value(json_object_get(doc, "type"));
	struct buf text;
	size_t i;

	if (type && strcmp(type, "error") == 0) {	/* an error event after a 200 */
		json_t *err = json_object_get(doc, "error");
		const char *et = json_string_value(json_object_get(err, "type"));
		set_err(e, et && (!strcmp(et, "overloaded_error") || !strcmp(et, "api_error")) ?
		    MODEL_RETRYABLE : MODEL_FATAL, 200, et ? et : "error", "%s",
		    json_string_value(json_object_get(err, "message")) ?: "error");
		return -1;
	}
	if (!json_is_array(content)) {
		set_err(e, MODEL_FATAL, 200, "malformed_response", "response has no content array");
		return -1;
	}
	copy_str(r->finish, sizeof(r->finish), json_object_get(doc, "stop_reason"), "end_turn");
	r->calls = json_array();
	buf_init(&text);
	json_array_foreach(content, i, b) {
		const char *bt = json_string_value(json_object_get(b, "type"));
		if (bt && !strcmp(bt, "text") && json_is_string(json_object_get(b, "text")))
			append_text(&text, json_object_get(b, "text"));
		else if (bt && !strcmp(bt, "tool_use")) {
			if (!json_is_string(json_object_get(b, "id")) ||
			    !json_is_string(json_object_get(b, "name"))) {
				buf_free(&text);
				set_err(e, MODEL_FATAL, 200, "malformed_response",
				    "content[%zu]: tool_use without id or name", i);
				return -1;
			}
			json_array_append_new(r->calls, json_pack("{s:O, s:O, s:o}", "id",
			    json_object_get(b, "id"), "name", json_object_get(b, "name"),
			    "arguments", call_arguments(json_object_get(b, "input"))));
		}
	}
	r->text = buf_text(&text);
	if (strcmp(r->finish, "refusal") == 0) {
		set_err(e, MODEL_FATAL, 200, "refusal", "the model refused (stop_reason refusal)%s%s",
		    r->text[0] ? ": " : "", r->text);
		return -1;
	}
	/* cache reads and writes are input too, and not in input_tokens */
	json_t *u = json_object_get(doc, "usage");
	r->usage_ok = count_of(u, "input_tokens", false, &r->input_tokens) &&
	    count_of(u, "cache_creation_input_tokens", true, &r->input_tokens) &&
	    count_of(u, "cache_read_input_tokens", true, &r->input_tokens) &&
	    count_of(u, "output_tokens", false, &r->output_tokens);
	r->assistant = json_pack("{s:s, s:O}", "role", "assistant", "content", content);
	return 0;
}

/* An HTTP error status: classify by status, then by the body's error type. */
static void
classify_status(const struct model_cfg *c, int status, struct xfer *x, struct model_error *e)
{
	json_t *doc = json_loadb((const char *)buf_head(&x->body), buf_pending(&x->body), 0, NULL);
	json_t *err = json_object_get(doc, "error");
	const char *type = json_string_value(json_object_get(err, "type"));
	const char *code = json_string_value(json_object_get(err, "code"));
	const char *msg = json_string_value(json_object_get(err, "message"));
	bool retry = status == 408 || status == 409 || status == 429 || status >= 500;

	if ((code && !strcmp(code, "insufficient_quota")) || (type && !strcmp(type, "insufficient_quota")))
		retry = false;
	if (x->should_retry >= 0)
		retry = x->should_retry;
	if (msg == NULL)
		msg = doc ? "(no message)" : "(body is not JSON)";
	size_t cl;
	char *clean = redact_text(c->redact, msg, strlen(msg), &cl);	/* before the cut */
	if (clean)
		msg = clean;
	set_err(e, retry ? MODEL_RETRYABLE : MODEL_FATAL, status,
	    code && !strcmp(code, "insufficient_quota") ? code : type ? type :
	    status == 429 ? "rate_limit" : status >= 500 ? "server_error" : "http_error",
	    "%s HTTP %d: %.*s", c->name, status,
	    (int)utf8_cut(msg, strlen(msg), 300), msg);
	e->retry_after_ms = x->retry_after_ms;
	free(clean);
	json_decref(doc);
}

int
model_call(const struct model_cfg *c, const char *system, const json_t *messages,
    const json_t *tools, bool (*cancelled)(void *), void *arg,
    struct model_reply *r, struct model_error *e)
{
	static bool curl_ready;
	struct xfer x = { .retry_after_ms = -1, .should_retry = -1, .cancelled = cancelled, .arg = arg };
	struct curl_slist *h = NULL;
	char auth[1100];
	size_t i;
	json_t *hv;
	long status = 0;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	memset(e, 0, sizeof(*e));
	e->retry_after_ms = -1;
	if (!curl_ready) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		curl_ready = true;
	}
	json_t *body = c->provider == PROVIDER_ANTHROPIC ? anthropic_body(c, system, messages, tools) :
	    openai_body(c, system, messages, tools);
	char *payload = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	h = curl_slist_append(h, "Content-Type: application/json");
	json_array_foreach(c->headers, i, hv)
		h = curl_slist_append(h, json_string_value(hv));
	snprintf(auth, sizeof(auth), "%s%s", c->auth_header, c->api_key);
	if (c->api_key[0])
		h = curl_slist_append(h, auth);
	memset(auth, 0, sizeof(auth));

	CURL *cu = curl_easy_init();
	buf_init(&x.body);
	curl_easy_setopt(cu, CURLOPT_URL, c->url);
	curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(cu, CURLOPT_POSTFIELDS, payload);
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(cu, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(cu, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(cu, CURLOPT_XFERINFODATA, &x);
	curl_easy_setopt(cu, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(cu, CURLOPT_USERAGENT, "agentd/" AGENTD_VERSION);

	int64_t t0 = mono_us();
	CURLcode cc = curl_easy_perform(cu);
	r->latency_us = mono_us() - t0;
	r->latency_ms = r->latency_us / 1000;
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
	r->status = (int)status;

	if (x.was_cancelled)
		set_err(e, MODEL_CANCELLED, 0, "cancelled", "cancelled");
	else if (x.too_big)
		set_err(e, MODEL_FATAL, (int)status, "response_too_large",
		    "%s response body exceeds %u MiB", c->name, MODEL_BODY_MAX >> 20);
	else if (cc == CURLE_OPERATION_TIMEDOUT)
		set_err(e, MODEL_RETRYABLE, 0, "timeout", "%s request timed out after %lld ms",
		    c->name, (long long)c->timeout_ms);
	else if (cc != CURLE_OK)
		set_err(e, MODEL_RETRYABLE, 0, "connection", "%s request failed: %s",
		    c->name, curl_easy_strerror(cc));
	else if (status != 200)
		classify_status(c, (int)status, &x, e);
	else if (strncasecmp(x.content_type, "application/json", 16) != 0)
		set_err(e, MODEL_FATAL, 200, "malformed_response", "%s answered with content type "
		    "\"%s\", not JSON", c->name, x.content_type);
	else {
		json_error_t je;
		json_t *doc = json_loadb((const char *)buf_head(&x.body), buf_pending(&x.body),
		    JSON_ALLOW_NUL, &je);
		if (!json_is_object(doc))
			set_err(e, MODEL_FATAL, 200, "malformed_response", "%s response is not JSON: %s",
			    c->name, je.text);
		else
			rc = c->provider == PROVIDER_ANTHROPIC ? parse_anthropic(doc, r, e) :
			    parse_openai(doc, r, e);
		json_decref(doc);
	}
	r->request_bytes = (int64_t)strlen(payload);
	r->reply_bytes = (int64_t)buf_pending(&x.body);
	if (rc < 0)
		model_reply_free(r);
	curl_easy_cleanup(cu);
	curl_slist_free_all(h);
	free(payload);
	buf_free(&x.body);
	return rc;
}

void
model_reply_free(struct model_reply *r)
{
	free(r->text);
	json_decref(r->calls);
	json_decref(r->assistant);
	r->text = NULL;
	r->calls = r->assistant = NULL;
}
