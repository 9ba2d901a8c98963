/*
 * agent_loop: a run with a model (worker_run_model, see worker.h).
 *
 *   system_instruction
 *   user:  what memory gives the run -- the memories most related to the
 *          task (recall over episodic and long_term memory_recall_limit,
 *          labelled as recalled), the recent episodic turns (memory_limit),
 *          the session's working memory (its newest WORKING_MAX) -- then
 *          the task (task_config.query, the rest of task_config as JSON
 *          input)
 *   loop up to agent_config.max_steps (10):
 *     model call -> tool calls? run each (only the agent's allowed tools),
 *     send the results back : final answer -> done
 *
 * Limits are per run and per agent, never process-wide: max_steps,
 * request_limit (model calls), total_tokens_limit, and tool output cut to
 * agent_config.tool_output_max bytes (on a character, with a marker saying
 * how much was cut).  A retryable provider error fails the attempt
 * (agentd's retry policy applies, with the server's delay); a fatal one
 * fails the run.  A successful run leaves its exchange in episodic memory
 * and its tool sequence in procedural memory.  An Anthropic pause_turn is
 * continued: its message goes back as it came, and the next call counts
 * as a step.
 *
 * total_tokens_limit does not take the provider's word alone: a reply
 * with no usable usage (missing, negative, not integers) fails the run,
 * since the limit cannot be kept, and each call counts at least its
 * request and reply bodies at MODEL_BYTES_PER_TOKEN_FLOOR, so a provider
 * that under-reports cannot run past the limit either.
 *
 * Change-gated runs (run_model: on_change): the `watch:` tools run first;
 * when their outputs (the tools' own: a command tool's has no timings)
 * hash the same as at the last successful run (kept in the worker's
 * directory, so it survives restarts), the run completes without calling
 * the model.  Otherwise their output joins the task and the model runs.
 * The whole output is hashed; the model sees each cut to tool_output_max,
 * a skipped run's result each cut to WORKER_EVENT_OUTPUT_MAX.  The new
 * hash, and the state the watch tools saved (new_files' watermark, held
 * back meanwhile), are kept only if the run succeeds: a failed run shows
 * the same change again next time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/jsonmp.h"
#include "common/log.h"
#include "common/util.h"
#include "worker/cmdtool.h"
#include "worker/model.h"
#include "worker/tools.h"
#include "worker/worker.h"

#define WORKING_MAX 50         /* working memory items given to a run, the newest */
#define CONTEXT_ITEM_MAX 2000  /* bytes of each memory item in the prompt */

struct limits {
	int64_t max_steps, request_limit, total_tokens, tool_output_max, memory_limit;
	int64_t recall_limit;
};

/* The spec's values, checked and defaulted by the loader (conf/config.h). */
static struct limits
run_limits(const json_t *spec)
{
	const json_t *ac = json_object_get(spec, "agent_config");
	return (struct limits){
		.max_steps = json_integer_value(json_object_get(ac, "max_steps")),
		.request_limit = json_integer_value(json_object_get(ac, "request_limit")),
		.total_tokens = json_integer_value(json_object_get(ac, "total_tokens_limit")),
		.tool_output_max = json_integer_value(json_object_get(ac, "tool_output_max")),
		.memory_limit = json_integer_value(json_object_get(spec, "memory_limit")),
		.recall_limit = json_integer_value(json_object_get(spec, "memory_recall_limit")),
	};
}

static void
offer_command(const json_t *def, void *arr)
{
	json_array_append_new(arr, json_pack("{s:O, s:O, s:O}", "name", json_object_get(def, "name"),
	    "description", json_object_get(def, "description"),
	    "input_schema", json_object_get(def, "inputSchema")));
}

static json_t *
offered_tools(struct worker *w)
{
	json_t *arr = json_array();
	cmdtool_each(worker_spec(w), offer_command, arr);
	for (const struct tool *t = builtin_tools; t->name; t++) {
		if (!worker_tool_allowed(w, t->name))
			continue;
		json_t *schema = json_loads(t->input_schema, 0, NULL);
		json_array_append_new(arr, json_pack("{s:s, s:s, s:o}", "name", t->name,
		    "description", t->description, "input_schema", schema ? schema : json_object()));
	}
	json_t *mcp = worker_mcp_tools(w);
	json_array_extend(arr, mcp);
	json_decref(mcp);
	return arr;
}

/* One memory item as a line of the prompt: "- (label) content". */
static void
item_line(struct buf *b, const char *label, const json_t *it)
{
	const char *content = json_string_value(json_object_get(it, "content"));
	char line[96];
	snprintf(line, sizeof(line), "- (%s) ", label ? label : "?");
	buf_append(b, line, strlen(line));
	if (content)
		buf_append(b, content, utf8_cut(content, strlen(content), CONTEXT_ITEM_MAX));
	buf_append(b, "\n", 1);
}

static bool
listed(const json_t *items, const json_t *id)
{
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it)
		if (json_equal(json_object_get(it, "id"), id))
			return true;
	return false;
}

/* The memories most related to the query (the seed's "Load Context &
 * Memory"), but those the recent turns show anyway. */
static void
recalled_block(struct worker *w, struct buf *b, const char *query, int64_t limit,
    const json_t *recent)
{
	char err[256], label[64];
	json_t *ans, *it;
	size_t i, shown = 0;
	if (limit <= 0 || query == NULL || !*query ||
	    (ans = worker_mem_recall(w, query, (int)limit, NULL, err, sizeof(err))) == NULL)
		return;
	json_array_foreach(json_object_get(ans, "hits"), i, it) {
		if (listed(recent, json_object_get(it, "id")))
			continue;
		if (shown++ == 0) {
			const char *h = "Recalled memory (what this agent remembers that is most "
			    "related to the task):\n";
			buf_append(b, h, strlen(h));
		}
		snprintf(label, sizeof(label), "%s, score %.2f",
		    json_string_value(json_object_get(it, "memory_type")),
		    json_number_value(json_object_get(it, "score")));
		item_line(b, label, it);
	}
	if (shown)
		buf_append(b, "\n", 1);
	json_decref(ans);
}

/* The first user message: what memory gives the run, then the task. */
static char *
task_text(struct worker *w, const json_t *task, const struct limits *lim)
{
	struct buf b;
	json_t *items = NULL, *working = NULL, *rest = json_deep_copy(task), *it;
	char err[256];
	size_t i;
	const char *query = json_string_value(json_object_get(task, "query"));

	buf_init(&b);
	if (lim->memory_limit > 0)
		(void)worker_mem_query(w, "episodic", (int)lim->memory_limit, NULL, &items, err,
		    sizeof(err));
	recalled_block(w, &b, query, lim->recall_limit, items);
	if (json_array_size(items) > 0) {
		const char *h = "Context from earlier runs:\n";
		buf_append(&b, h, strlen(h));
		json_array_foreach(items, i, it)
			item_line(&b, json_string_value(json_object_get(it, "role")), it);
		buf_append(&b, "\n", 1);
	}
	if (worker_mem_query(w, "working", WORKING_MAX, NULL, &working, err, sizeof(err)) == 0 &&
	    json_array_size(working) > 0) {
		const char *h = "Working memory (notes of this session):\n";
		buf_append(&b, h, strlen(h));
		json_array_foreach(working, i, it)
			item_line(&b, "note", it);
		buf_append(&b, "\n", 1);
	}
	json_decref(items);
	json_decref(working);
	buf_append(&b, "Task: ", 6);
	buf_append(&b, query ? query : "Carry out the task described by the input.",
	    strlen(query ? query : "Carry out the task described by the input."));
	json_object_del(rest, "query");
	if (json_object_size(rest) > 0) {
		char *s = json_dumps(rest, JSON_COMPACT | JSON_SORT_KEYS);
		buf_append(&b, "\n\nInput (JSON): ", 16);
		buf_append(&b, s, strlen(s));
		free(s);
	}
	json_decref(rest);
	buf_append(&b, "", 1);
	return (char *)b.data;
}

/* text (n bytes, NULs included) as at most cap bytes of it, cut on a
 * character, with a marker saying how much was cut: a JSON string
 * (bytes that are not UTF-8 become U+FFFD). */
static json_t *
capped_text(const char *text, size_t n, int64_t cap)
{
	size_t keep = utf8_cut(text, n, cap > 0 ? (size_t)cap : 0);
	if (keep == n)
		return json_stringn_lossy(text, n);
	char marker[64];
	int m = snprintf(marker, sizeof(marker), "...[truncated %zu bytes]", n - keep);
	char *t = xmalloc(keep + (size_t)m + 1);
	memcpy(t, text, keep);
	memcpy(t + keep, marker, (size_t)m + 1);
	json_t *j = json_stringn_lossy(t, keep + (size_t)m);
	free(t);
	return j;
}

/* A tool's output as compact JSON text, capped; reals as people write
 * them (a recall's 0.4841, not 0.48409999999999997). */
static json_t *
capped_json(const json_t *out, int64_t cap)
{
	char *text = json_dumps_short(out, JSON_COMPACT);
	json_t *j = capped_text(text ? text : "", text ? strlen(text) : 0, cap);
	free(text);
	return j;
}

/* One tool call's result, as the text the model sees. */
static json_t *
call_tool(struct worker *w, const json_t *call, int64_t cap, json_t *used)
{
	const char *name = json_string_value(json_object_get(call, "name"));
	json_t *args = json_object_get(call, "arguments"), *out = NULL;
	char err[1024];
	json_t *text;
	bool is_error = true;

	if (json_object_get(args, "_invalid_arguments"))
		snprintf(err, sizeof(err), "arguments are not a JSON object");
	else if (!worker_tool_allowed(w, name))
		snprintf(err, sizeof(err), "tool %s is not available to this agent", name);
	else if (worker_call_tool(w, name, args, &out, err, sizeof(err), NULL) == 0)
		is_error = false;
	if (is_error)
		text = capped_text(err, strlen(err), cap);
	else {
		text = capped_json(out, cap);
		json_decref(out);
	}
	json_array_append_new(used, json_string(name));
	return json_pack("{s:O, s:o, s:b}", "id", json_object_get(call, "id"),
	    "content", text, "is_error", is_error);
}

static void
emit_request(struct worker *w, const struct model_cfg *c, const struct model_reply *r,
    const struct model_error *e)
{
	json_t *p = json_pack("{s:s, s:s, s:i, s:I}", "provider", c->name,
	    "model", c->model, "status", e ? e->status : r->status, "latency_ms",
	    (json_int_t)(r ? r->latency_ms : 0));
	if (e) {
		json_object_set_new(p, "error_type", json_string(e->type));
		json_object_set_new(p, "error", json_string(e->message));
		json_object_set_new(p, "retryable", json_boolean(e->cls == MODEL_RETRYABLE));
	} else {	/* null: the provider reported no usable count */
		json_object_set_new(p, "input_tokens", r->usage_ok ?
		    json_integer(r->input_tokens) : json_null());
		json_object_set_new(p, "output_tokens", r->usage_ok ?
		    json_integer(r->output_tokens) : json_null());
		json_object_set_new(p, "finish", json_string(r->finish));
	}
	worker_emit(w, "model_request", p);
}

#define WATCH_STATE "watch.state"

/* Runs the watch tools; returns their outputs (an array), or NULL with err. */
static json_t *
run_watch(struct worker *w, const json_t *watch, char *err, size_t errlen)
{
	json_t *outs = json_array(), *item;
	size_t i;
	json_array_foreach(watch, i, item) {
		const char *tool = json_string_value(json_object_get(item, "tool"));
		const json_t *args = json_object_get(item, "args");
		json_t *out = NULL;
		if (worker_call_tool(w, tool, args, &out, err, errlen, NULL) < 0) {
			json_decref(outs);
			return NULL;
		}
		json_array_append_new(outs, json_pack("{s:s, s:o}", "tool", tool, "output", out));
	}
	return outs;
}

/* The watch outputs as text, each cut to cap: what the model is shown
 * (tool_output_max), what a skipped run's result holds (the event bound). */
static json_t *
watch_shown(const json_t *outs, int64_t cap)
{
	json_t *shown = json_array(), *item;
	size_t i;
	json_array_foreach(outs, i, item)
		json_array_append_new(shown, json_pack("{s:O, s:o}", "tool",
		    json_object_get(item, "tool"), "output",
		    capped_json(json_object_get(item, "output"), cap)));
	return shown;
}

static void
watch_hash(const json_t *outs, char hex[17])
{
	char *text = json_dumps(outs, JSON_SORT_KEYS | JSON_COMPACT);
	uint64_t h = 1469598103934665603ULL;
	for (const unsigned char *p = (const unsigned char *)text; p && *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	free(text);
	snprintf(hex, 17, "%016llx", (unsigned long long)h);
}

static bool
watch_unchanged(struct worker *w, const char *hex)
{
	char path[4096], old[32] = "";
	snprintf(path, sizeof(path), "%s/" WATCH_STATE, worker_state_dir(w));
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return false;
	bool same = fgets(old, sizeof(old), f) && strncmp(old, hex, 16) == 0;
	fclose(f);
	return same;
}

static void
watch_keep(struct worker *w, const char *hex)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/" WATCH_STATE, worker_state_dir(w));
	(void)write_file_atomic(path, hex, strlen(hex), 0600);
}

static bool
cancelled_cb(void *w)
{
	return worker_cancelled(w);
}

static int
fail(struct run_outcome *out, bool retryable, int64_t retry_after, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
fail(struct run_outcome *out, bool retryable, int64_t retry_after, const char *fmt, ...)
{
	char msg[2 * sizeof(out->error)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	size_t n = utf8_cut(msg, strlen(msg), sizeof(out->error) - 1);	/* it goes into JSON */
	memcpy(out->error, msg, n);
	out->error[n] = '\0';
	out->retryable = retryable;
	out->retry_after_ms = retry_after;
	return -1;
}

static void
remember(struct worker *w, const char *query, const char *answer, json_t *used)
{
	json_t *md = json_pack("{s:O}", "tools", used);
	worker_mem_store(w, "episodic", "user", query ? query : "(task)", NULL);
	worker_mem_store(w, "episodic", "assistant", answer ? answer : "", md);
	if (json_array_size(used) > 0) {
		struct buf b;
		size_t i;
		json_t *t;
		buf_init(&b);
		json_array_foreach(used, i, t) {
			if (i)
				buf_append(&b, " -> ", 4);
			buf_append(&b, json_string_value(t), strlen(json_string_value(t)));
		}
		buf_append(&b, "", 1);
		worker_mem_store(w, "procedural", "assistant", (char *)b.data, md);
		buf_free(&b);
	}
	json_decref(md);
}

/* A change-gated run's watch: what the tools gave, the state they saved
 * (held back until the run succeeds) and the hash of their outputs. */
struct watch {
	json_t *outs;               /* NULL: the run is not gated */
	json_t *staged;
	char hash[17];
};

/* The run succeeded: what the watch saw is the new baseline. */
static void
watch_commit(struct worker *w, const struct watch *wt)
{
	if (wt->outs == NULL)
		return;
	if (tool_state_commit(worker_state_dir(w), wt->staged) < 0)
		log_warn("watch: cannot save the watch tools' state: %s", strerror(errno));
	watch_keep(w, wt->hash);
}

static void
watch_free(struct watch *wt)
{
	json_decref(wt->outs);
	json_decref(wt->staged);
}

/*
 * Run the watch of a gated run.  0: the model runs (wt->outs set when
 * gated); 1: nothing changed, the run is done (out->result); -1: the
 * watch failed (out->error).
 */
static int
watch_gate(struct worker *w, const json_t *spec, struct watch *wt, struct run_outcome *out)
{
	const char *gate = json_string_value(json_object_get(spec, "run_model"));
	char err[1024];

	if (gate == NULL || strcmp(gate, "on_change") != 0)
		return 0;
	wt->staged = json_object();
	worker_stage_state(w, wt->staged);
	wt->outs = run_watch(w, json_object_get(spec, "watch"), err, sizeof(err));
	worker_stage_state(w, NULL);
	if (wt->outs == NULL)
		return fail(out, false, -1, "watch: %s", err);
	watch_hash(wt->outs, wt->hash);
	if (!watch_unchanged(w, wt->hash))
		return 0;
	out->result = json_pack("{s:b, s:s, s:o}", "model_skipped", 1, "reason",
	    "the watched tools' output is unchanged since the last run", "watch",
	    watch_shown(wt->outs, WORKER_EVENT_OUTPUT_MAX));
	watch_commit(w, wt);
	return 1;
}

/* The task, with what the watch saw (each tool's output capped). */
static char *
task_with_watch(char *task, const json_t *outs, int64_t cap)
{
	const char *head = "\n\nWatched tools (changed since the last run):";
	json_t *shown = watch_shown(outs, cap), *item;
	struct buf b;
	size_t i;

	buf_init(&b);
	buf_append(&b, task, strlen(task));
	buf_append(&b, head, strlen(head));
	json_array_foreach(shown, i, item) {
		const json_t *o = json_object_get(item, "output");
		const char *tool = json_string_value(json_object_get(item, "tool"));
		buf_append(&b, "\n", 1);
		buf_append(&b, tool, strlen(tool));
		buf_append(&b, ": ", 2);
		buf_append(&b, json_string_value(o), json_string_length(o));
	}
	buf_append(&b, "", 1);
	json_decref(shown);
	free(task);
	return (char *)b.data;
}

/* What a reply counts against total_tokens_limit: the provider's counts,
 * never less than its bodies' floor.  -1: it reported no usable counts. */
static int64_t
counted_tokens(const struct model_reply *r)
{
	int64_t in = r->request_bytes / MODEL_BYTES_PER_TOKEN_FLOOR;
	int64_t o = r->reply_bytes / MODEL_BYTES_PER_TOKEN_FLOOR;

	if (!r->usage_ok)
		return -1;
	return (r->input_tokens > in ? r->input_tokens : in) +
	    (r->output_tokens > o ? r->output_tokens : o);
}

/* Over total_tokens_limit after this reply?  Then the run fails (-1). */
static int
check_tokens(const struct limits *lim, const struct model_cfg *c, const struct model_reply *r,
    int64_t *counted, struct run_outcome *out)
{
	int64_t n = counted_tokens(r);

	if (lim->total_tokens == 0)
		return 0;
	if (n < 0)
		return fail(out, false, -1, "the %s reply reported no token usage it could be held "
		    "to, so total_tokens_limit (%lld) cannot be kept", c->name,
		    (long long)lim->total_tokens);
	*counted += n;
	if (*counted > lim->total_tokens)
		return fail(out, false, -1, "total_tokens_limit (%lld) exceeded: %lld tokens used "
		    "(as the provider counted them, or as the size of what was sent and received "
		    "where it counted fewer)", (long long)lim->total_tokens, (long long)*counted);
	return 0;
}

int
worker_run_model(struct worker *w, const struct worker_run *run, struct run_outcome *out)
{
	const json_t *spec = worker_spec(w);
	struct model_cfg cfg;
	struct limits lim = run_limits(spec);
	struct watch wt = { 0 };
	char err[256];
	int64_t in_tok = 0, out_tok = 0, counted = 0, requests = 0, t0 = mono_ms();
	int64_t external_us = 0;	/* time in the model and in tools */
	int rc = -1;

	if (json_object_get(spec, "model_config") == NULL)
		return fail(out, false, -1, "this agent has no model_config, and its "
		    "task_config names no tool to run");
	if (worker_api_key_error(w))
		return fail(out, false, -1, "%s", worker_api_key_error(w));
	if (model_cfg_parse(json_object_get(spec, "model_config"),
	    json_string_value(json_object_get(worker_secrets(w), "api_key")), &cfg,
	    err, sizeof(err)) < 0)
		return fail(out, false, -1, "%s", err);
	cfg.redact = worker_redact(w);

	int gated = watch_gate(w, spec, &wt, out);
	if (gated != 0) {
		watch_free(&wt);
		return gated > 0 ? 0 : -1;
	}
	const char *system = json_string_value(json_object_get(spec, "system_instruction"));
	json_t *tools = offered_tools(w), *messages = json_array(), *used = json_array();
	char *task = task_text(w, run->task, &lim);
	if (wt.outs)	/* what changed is part of the task */
		task = task_with_watch(task, wt.outs, lim.tool_output_max);
	json_array_append_new(messages, model_user_message(&cfg, task));

	for (int64_t step = 1; ; step++) {
		struct model_reply r;
		struct model_error e;
		if (worker_cancelled(w)) {
			fail(out, false, -1, "cancelled");
			break;
		}
		if (step > lim.max_steps || requests >= lim.request_limit) {
			fail(out, false, -1, "%s (%lld) reached without a final answer",
			    step > lim.max_steps ? "max_steps" : "request_limit",
			    (long long)(step > lim.max_steps ? lim.max_steps : lim.request_limit));
			break;
		}
		model_trim(&cfg, messages, system);
		requests++;
		int64_t c0 = mono_us();
		int mrc = model_call(&cfg, system, messages, tools, cancelled_cb, w, &r, &e);
		external_us += mono_us() - c0;
		if (mrc < 0) {
			if (e.cls != MODEL_CANCELLED)
				emit_request(w, &cfg, NULL, &e);
			fail(out, e.cls == MODEL_RETRYABLE, e.retry_after_ms, "%s", e.message);
			break;
		}
		emit_request(w, &cfg, &r, NULL);
		in_tok += r.input_tokens;
		out_tok += r.output_tokens;
		json_array_append(messages, r.assistant);
		if (check_tokens(&lim, &cfg, &r, &counted, out) < 0) {
			model_reply_free(&r);
			break;
		}
		if (json_array_size(r.calls) == 0 && strcmp(r.finish, "pause_turn") == 0) {
			model_reply_free(&r);	/* paused: its own message, sent back, goes on */
			continue;
		}
		if (json_array_size(r.calls) == 0) {
			out->result = json_pack("{s:s, s:s, s:I, s:I, s:O, s:I}", "answer",
			    r.text ? r.text : "", "finish", r.finish, "steps", (json_int_t)step,
			    "tool_calls", (json_int_t)json_array_size(used), "tools_used", used,
			    "duration_ms", (json_int_t)(mono_ms() - t0));
			if (!strcmp(r.finish, "length") || !strcmp(r.finish, "max_tokens"))
				json_object_set_new(out->result, "truncated", json_true());
			remember(w, json_string_value(json_object_get(run->task, "query")), r.text, used);
			watch_commit(w, &wt);
			model_reply_free(&r);
			rc = 0;
			break;
		}
		json_t *results = json_array();
		size_t i;
		json_t *call;
		int64_t c1 = mono_us();
		json_array_foreach(r.calls, i, call)
			json_array_append_new(results, call_tool(w, call, lim.tool_output_max, used));
		external_us += mono_us() - c1;
		model_tool_results(&cfg, messages, results);
		json_decref(results);
		model_reply_free(&r);
	}
	out->usage = json_pack("{s:I, s:I, s:I, s:I, s:I}", "input_tokens", (json_int_t)in_tok,
	    "output_tokens", (json_int_t)out_tok, "total_tokens", (json_int_t)(in_tok + out_tok),
	    "requests", (json_int_t)requests, "external_us", (json_int_t)external_us);
	if (lim.total_tokens)	/* what the limit was held to */
		json_object_set_new(out->usage, "counted_tokens", json_integer(counted));
	memset(&cfg.api_key, 0, sizeof(cfg.api_key));
	free(task);
	watch_free(&wt);
	json_decref(tools);
	json_decref(messages);
	json_decref(used);
	return rc;
}
