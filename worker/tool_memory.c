/*
 * remember, recall: the model's hands on its agent's memory.
 *
 * Both go to agentd through the worker (tool_ctx.memory), which names no
 * agent: agentd files a write under the agent whose pipe it came by and
 * answers a recall from that agent's memory alone.  remember writes
 * long_term (a fact kept for later runs) or working (the session's
 * scratch, given back with every run of the session); recall is the
 * seed's query_both_memory_types, episodic and long_term by default.
 *
 * The arguments are the model's, checked here against what agentd would
 * keep (common/limits.h): content or a query over its bound is refused
 * with the reason, never cut without a word, so the model can say less.
 * Each hit's content is cut to HIT_TEXT_MAX for the model (the row keeps
 * all of it).
 */
#include <stdio.h>
#include <string.h>
#include "common/jsonmp.h"
#include "common/limits.h"
#include "common/util.h"
#include "worker/tools.h"

#define RECALL_DEFAULT 5
#define HIT_TEXT_MAX 2000

const char tool_remember_schema[] =
	"{\"type\":\"object\","
	"\"properties\":{"
	  "\"content\":{\"type\":\"string\",\"minLength\":1,"
	    "\"description\":\"What to remember, said so that it makes sense on its own\"},"
	  "\"memory_type\":{\"type\":\"string\",\"enum\":[\"long_term\",\"working\"],"
	    "\"default\":\"long_term\",\"description\":\"long_term: kept for later runs; "
	    "working: for the rest of this session\"},"
	  "\"metadata\":{\"type\":\"object\",\"description\":\"Anything to keep with it\"}},"
	"\"required\":[\"content\"],\"additionalProperties\":false}";

const char tool_recall_schema[] =
	"{\"type\":\"object\","
	"\"properties\":{"
	  "\"query\":{\"type\":\"string\",\"minLength\":1,"
	    "\"description\":\"What to look for\"},"
	  "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":50,\"default\":5,"
	    "\"description\":\"At most this many hits\"},"
	  "\"memory_types\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":4,"
	    "\"items\":{\"type\":\"string\",\"enum\":[\"episodic\",\"long_term\",\"working\","
	    "\"procedural\"]},\"description\":\"Where to look (default: episodic and "
	    "long_term)\"}},"
	"\"required\":[\"query\"],\"additionalProperties\":false}";

int
tool_remember(const struct tool_ctx *ctx, const json_t *args, json_t **out, char *err,
    size_t errlen)
{
	const json_t *c = json_object_get(args, "content"), *md = json_object_get(args, "metadata");
	const json_t *t = json_object_get(args, "memory_type");
	const char *type = t ? json_string_value(t) : "long_term";

	if (!json_is_string(c) || json_string_length(c) == 0)
		snprintf(err, errlen, "content (a string, not empty) is required");
	else if (json_string_length(c) > MEMORY_CONTENT_MAX)
		snprintf(err, errlen, "content is %zu bytes, over the limit of %u; remember less",
		    json_string_length(c), MEMORY_CONTENT_MAX);
	else if (type == NULL || (strcmp(type, "long_term") && strcmp(type, "working")))
		snprintf(err, errlen, "memory_type must be long_term or working");
	else if (md && !json_is_object(md))
		snprintf(err, errlen, "metadata must be an object");
	else if (md && (json_depth(md, VALUE_DEPTH_MAX) > VALUE_DEPTH_MAX - 1 ||
	    json_compact_size(md) > MEMORY_CONTENT_MAX))
		snprintf(err, errlen, "metadata is too large or too deep to keep");
	else if (ctx == NULL || ctx->memory == NULL)
		snprintf(err, errlen, "memory is not available here");
	else if (ctx->memory->store(ctx->arg, type, json_string_value(c), md) < 0)
		snprintf(err, errlen, "it could not be sent to agentd");
	else {
		*out = json_pack("{s:b, s:s}", "remembered", 1, "memory_type", type);
		return 0;
	}
	return -1;
}

/* Known type names, each once, 1 to 4 of them. */
static bool
types_ok(const json_t *types)
{
	static const char *const names[] = { "episodic", "long_term", "working", "procedural" };
	unsigned seen = 0;
	size_t i;
	json_t *v;
	if (!json_is_array(types) || json_array_size(types) == 0)
		return false;
	json_array_foreach(types, i, v) {
		size_t k = 0;
		while (k < ARRAY_LEN(names) && (!json_is_string(v) ||
		    strcmp(json_string_value(v), names[k])))
			k++;
		if (k == ARRAY_LEN(names) || (seen & (1u << k)))
			return false;
		seen |= 1u << k;
	}
	return true;
}

/* What the model sees of a hit: no metadata, the text cut. */
static json_t *
shown(const json_t *h)
{
	const char *text = json_string_value(json_object_get(h, "content"));
	size_t n = text ? strlen(text) : 0, keep = utf8_cut(text ? text : "", n, HIT_TEXT_MAX);
	json_t *o = json_pack("{s:O?, s:O?, s:s%, s:O?, s:O?}", "memory_type",
	    json_object_get(h, "memory_type"), "role", json_object_get(h, "role"), "content",
	    text ? text : "", keep, "timestamp", json_object_get(h, "timestamp"), "score",
	    json_object_get(h, "score"));
	if (o && keep < n)
		json_object_set_new(o, "truncated", json_true());
	return o ? o : json_object();
}

int
tool_recall(const struct tool_ctx *ctx, const json_t *args, json_t **out, char *err,
    size_t errlen)
{
	const json_t *q = json_object_get(args, "query"), *l = json_object_get(args, "limit");
	const json_t *types = json_object_get(args, "memory_types");
	json_int_t limit = l ? json_integer_value(l) : RECALL_DEFAULT;
	char why[512];

	if (!json_is_string(q) || json_string_length(q) == 0)
		snprintf(err, errlen, "query (a string, not empty) is required");
	else if (json_string_length(q) > RECALL_QUERY_MAX)
		snprintf(err, errlen, "query is %zu bytes, over the limit of %u",
		    json_string_length(q), RECALL_QUERY_MAX);
	else if ((l && !json_is_integer(l)) || limit < 1 || limit > RECALL_LIMIT_MAX)
		snprintf(err, errlen, "limit must be an integer from 1 to %d", RECALL_LIMIT_MAX);
	else if (types && !types_ok(types))
		snprintf(err, errlen, "memory_types must list, once each, some of episodic, "
		    "long_term, working, procedural");
	else if (ctx == NULL || ctx->memory == NULL)
		snprintf(err, errlen, "memory is not available here");
	else {
		json_t *ans = ctx->memory->recall(ctx->arg, json_string_value(q), (int)limit, types,
		    why, sizeof(why));
		if (ans == NULL) {
			snprintf(err, errlen, "%s", why);
			return -1;
		}
		json_t *hits = json_array(), *h;
		size_t i;
		json_array_foreach(json_object_get(ans, "hits"), i, h)
			json_array_append_new(hits, shown(h));
		*out = json_pack("{s:o, s:O}", "hits", hits, "degraded",
		    json_object_get(ans, "degraded"));
		if (json_object_get(ans, "reason"))
			json_object_set(*out, "reason", json_object_get(ans, "reason"));
		json_decref(ans);
		return 0;
	}
	return -1;
}
