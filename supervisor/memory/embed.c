/*
 * embed: the embedders, what turns text into vectors, and the pipeline
 * that gives every committed memory row its vector.
 *
 * An embedder is one `embeddings` configuration (agentd.embeddings, or an
 * agent's memory_config.embeddings): provider `hash` (hashembed.c, in
 * process) or `openai`, any OpenAI-compatible POST .../embeddings (OpenAI,
 * Ollama, vLLM, llama.cpp's server, LM Studio) over http.c, never blocking
 * agentd's loop.  Its vectors are stored under its model name, which
 * carries the dimensions asked for (a change of model or dimensions is a
 * new collection, and the rows are embedded again).
 *
 * Rows are committed first and embedded afterwards: a run never waits on
 * an embedding to store.  Each embedder walks the memory table behind a
 * cursor of its own, taking the rows of the agents it serves that have no
 * vector of its model, in id order, at most batch_size to a request, one
 * request at a time.  A failed request (no answer, 429, 5xx, an answer
 * that is not what the API documents, a vector of the wrong dimension) is
 * sent again after a backoff: the server's Retry-After when it gave one
 * (up to RETRY_MAX_MS), else 1 s doubling to RETRY_MAX_MS.  Rows waiting
 * meanwhile are found by their text (FTS5) all the same.
 *
 * The wire format (platform.openai.com/docs/api-reference/embeddings):
 * {"model", "input": [texts], "encoding_format": "float", "dimensions"
 * (only when configured)} -> {"data": [{"index", "embedding"}], ...}.
 * "float" is always asked for, and a base64 answer (little-endian float32,
 * what several SDKs ask for and some servers send regardless) is read too.
 * Every vector's dimension must be the collection's: the one configured,
 * else the one its vectors already have, else the first answer's; an
 * answer of another is refused, never stored.
 *
 * The API key is read from its variable or file when the embedder is made
 * and is never written anywhere: an error text the server sends has it
 * taken out before it is logged or shown.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/jsonmp.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/util.h"
#include "supervisor/loop.h"
#include "supervisor/memory/memory.h"
#include "supervisor/store.h"

#define SCAN_ROWS 256             /* rows looked at per read */
#define PASS_ROWS 4096            /* rows looked at per pump; the rest next pass */
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 60000
#define HASH_DIM_DEFAULT 384

struct item {
	int64_t id;
	char *agent;
	int type;
	char *text;
};

struct embedder {
	struct memory *m;
	char *conf;               /* its configuration, compact: the same one, the same embedder */
	bool hash;
	char *model;              /* the vectors' model column */
	char *model_name;         /* what the endpoint is asked for */
	int dim;                  /* 0: not known until the first answer */
	bool dim_fixed;           /* configured */
	char *url;
	char *api_key;
	char key_error[256];
	int batch_max;
	int64_t timeout_ms;
	int64_t cursor;           /* rows up to here are looked at */
	struct item *batch;       /* in flight, or waiting to be sent again */
	size_t nbatch;
	struct http_req *req;
	struct timer retry;       /* the batch is sent again */
	struct timer more;        /* more rows than one pass takes */
	int64_t backoff;
	int64_t retry_at;         /* wall ms */
	char last_error[320];
	int64_t failing_since;    /* wall ms; 0: the last request went through */
	int64_t embedded;         /* rows given vectors since start */
	struct embed_query *queries;
};

struct embed_query {
	struct embedder *e;
	struct http_req *req;
	embed_query_fn fn;
	void *ctx;
	struct embed_query *next;
};

static void on_rows(void *ctx, const struct http_reply *r);
static void on_retry(struct timer *t);

/* ---- the key, and what must never show it --------------------------------------- */

static void
read_key(struct embedder *e, const json_t *conf)
{
	const char *var = json_string_value(json_object_get(conf, "api_key_env"));
	const char *file = json_string_value(json_object_get(conf, "api_key_file"));
	char key[4096] = "";

	if (file) {
		FILE *f = fopen(file, "re");
		if (f && fgets(key, sizeof(key), f))
			key[strcspn(key, "\r\n")] = '\0';
		snprintf(e->key_error, sizeof(e->key_error), "embeddings.api_key_file %s: %s",
		    file, f == NULL ? strerror(errno) : "holds no key");
		if (f)
			fclose(f);
	} else if (var && getenv(var) && *getenv(var))
		snprintf(key, sizeof(key), "%s", getenv(var));
	else if (var)
		snprintf(e->key_error, sizeof(e->key_error), "embeddings.api_key_env: %s is not "
		    "set in agentd's environment", var);
	if (key[0]) {
		e->api_key = xstrdup(key);
		e->key_error[0] = '\0';
	} else if (!json_is_true(json_object_get(conf, "api_key_required")))
		e->key_error[0] = '\0';
	explicit_bzero(key, sizeof(key));
}

/* text with the key, wherever it appears, replaced. */
static void
scrub(const struct embedder *e, char *text)
{
	size_t k = e->api_key ? strlen(e->api_key) : 0;
	char *p;
	if (k == 0)
		return;
	while ((p = strstr(text, e->api_key))) {
		static const char mark[] = "[redacted]";
		size_t rest = strlen(p + k);
		if (k >= sizeof(mark) - 1) {
			memcpy(p, mark, sizeof(mark) - 1);
			memmove(p + sizeof(mark) - 1, p + k, rest + 1);
		} else
			memmove(p, p + k, rest + 1);
	}
}

/* ---- making one ------------------------------------------------------------------- */

static void
set_model(struct embedder *e, const char *provider, const char *name)
{
	char m[256];
	if (e->dim_fixed)
		snprintf(m, sizeof(m), "%s:%s/%d", provider, name, e->dim);
	else
		snprintf(m, sizeof(m), "%s:%s", provider, name);
	e->model = xstrdup(m);
	e->model_name = xstrdup(name);
}

struct embedder *
embedder_new(struct memory *m, const json_t *conf)
{
	struct embedder *e = xcalloc(1, sizeof(*e));
	const char *provider = json_string_value(json_object_get(conf, "provider"));
	json_t *dims = json_object_get(conf, "dimensions");

	e->m = m;
	e->conf = conf ? json_dumps(conf, JSON_COMPACT | JSON_SORT_KEYS) : xstrdup("null");
	e->hash = provider == NULL || strcmp(provider, "hash") == 0;
	e->dim = dims ? (int)json_integer_value(dims) : e->hash ? HASH_DIM_DEFAULT : 0;
	e->dim_fixed = e->dim > 0;
	e->batch_max = (int)json_integer_value(json_object_get(conf, "batch_size"));
	if (e->batch_max <= 0 || e->batch_max > EMBED_BATCH_MAX)
		e->batch_max = e->hash ? EMBED_BATCH_MAX : 64;
	e->timeout_ms = json_integer_value(json_object_get(conf, "request_timeout_ms"));
	if (e->timeout_ms <= 0)
		e->timeout_ms = 30000;
	e->batch = xcalloc((size_t)e->batch_max, sizeof(*e->batch));
	timer_init(&e->retry, on_retry, e);
	timer_init(&e->more, on_retry, e);
	if (e->hash) {
		set_model(e, "hash", HASH_MODEL);
		return e;
	}
	set_model(e, provider, json_string_value(json_object_get(conf, "model")));
	e->url = xstrdup(json_string_value(json_object_get(conf, "url")));
	read_key(e, conf);
	if (e->key_error[0])
		log_error("memory: %s: semantic recall with %s falls back to text search", e->key_error,
		    e->model);
	if (!e->dim_fixed)
		e->dim = emb_model_dim(mem_local(m), e->model);	/* the collection's, if any */
	return e;
}

static void
batch_clear(struct embedder *e)
{
	for (size_t i = 0; i < e->nbatch; i++) {
		free(e->batch[i].agent);
		free(e->batch[i].text);
	}
	e->nbatch = 0;
}

void
embedder_free(struct embedder *e)
{
	if (e == NULL)
		return;
	embedder_stop(e);
	batch_clear(e);
	free(e->batch);
	if (e->api_key)
		explicit_bzero(e->api_key, strlen(e->api_key));
	free(e->api_key);
	free(e->url);
	free(e->model);
	free(e->model_name);
	free(e->conf);
	free(e);
}

/* Requests stop (their callbacks never come); rows wait for the next start. */
void
embedder_stop(struct embedder *e)
{
	timer_stop(&e->retry);
	timer_stop(&e->more);
	http_cancel(e->req);
	e->req = NULL;
	while (e->queries)	/* their owners cancel them first; any left are dropped */
		embed_query_cancel(e->queries);
}

bool embedder_is(const struct embedder *e, const char *conf) { return strcmp(e->conf, conf) == 0; }
const char *embedder_model(const struct embedder *e) { return e->model; }

void
embedder_rescan(struct embedder *e)
{
	e->cursor = 0;
}

/* ---- the rows' vectors ------------------------------------------------------------ */

static bool
take_row(void *ctx, int64_t id, const char *agent, int type, const char *content,
    const char *model)
{
	struct embedder *e = ctx;
	if (mem_embedder_for(e->m, agent) != e || (model && strcmp(model, e->model) == 0))
		return true;	/* another's, or done */
	if (e->nbatch == (size_t)e->batch_max)
		return false;
	size_t len = strlen(content);
	size_t keep = utf8_cut(content, len, EMBED_INPUT_MAX);
	struct item *it = &e->batch[e->nbatch++];
	it->id = id;
	it->agent = xstrdup(agent);
	it->type = type;
	it->text = xmalloc(keep + 1);
	memcpy(it->text, content, keep);
	it->text[keep] = '\0';
	return true;
}

/* The batch's vectors are in: stored, indexed, counted. */
static void
keep_vectors(struct embedder *e, const float *vecs, int dim)
{
	for (size_t i = 0; i < e->nbatch; i++) {
		const struct item *it = &e->batch[i];
		const float *v = vecs + i * (size_t)dim;
		emb_put_vector(mem_local(e->m), it->agent, it->id, e->model, v, dim);
		vindex_add(mem_index(e->m), it->agent, e->model, it->id, it->type, v, dim);
	}
	e->embedded += (int64_t)e->nbatch;
	batch_clear(e);
	store_flush(mem_store(e->m));
}

static void
hash_batch(struct embedder *e)
{
	float *vecs = xmalloc(e->nbatch * (size_t)e->dim * sizeof(float));
	for (size_t i = 0; i < e->nbatch; i++)
		hash_embed(e->batch[i].text, strlen(e->batch[i].text), vecs + i * (size_t)e->dim,
		    e->dim);
	keep_vectors(e, vecs, e->dim);
	free(vecs);
}

/* {"model", "input", "encoding_format": "float"[, "dimensions"]} */
static char *
request_body(const struct embedder *e, json_t *input, size_t *len)
{
	json_t *req = json_pack("{s:s, s:o, s:s}", "model", e->model_name, "input", input,
	    "encoding_format", "float");
	if (e->dim_fixed)
		json_object_set_new(req, "dimensions", json_integer(e->dim));
	char *body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	*len = body ? strlen(body) : 0;
	return body;
}

static struct http_req *
post(struct embedder *e, json_t *input, int64_t timeout_ms, http_done_fn fn, void *ctx,
    char *err, size_t errlen)
{
	char auth[4200] = "";
	const char *headers[3] = { "Content-Type: application/json", NULL, NULL };
	size_t len;
	char *body = request_body(e, input, &len);

	if (e->api_key) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", e->api_key);
		headers[1] = auth;
	}
	struct http_opts o = { .url = e->url, .headers = headers, .body = body, .len = len,
		.timeout_ms = timeout_ms, .max_reply = EMBED_REPLY_MAX };
	struct http_req *r = http_request(&o, fn, ctx, err, errlen);
	explicit_bzero(auth, sizeof(auth));
	free(body);
	return r;
}

static void
send_batch(struct embedder *e)
{
	char err[256];
	json_t *input = json_array();
	for (size_t i = 0; i < e->nbatch; i++)
		json_array_append_new(input, json_string(e->batch[i].text));
	e->req = post(e, input, e->timeout_ms, on_rows, e, err, sizeof(err));
	if (e->req == NULL) {
		snprintf(e->last_error, sizeof(e->last_error), "%s", err);
		e->backoff = RETRY_MAX_MS;
		timer_in(&e->retry, e->backoff);
	}
}

void
embedder_pump(struct embedder *e)
{
	int64_t upto = emb_last_id(mem_local(e->m)), budget = PASS_ROWS;

	if (e->req || timer_armed(&e->retry) || e->key_error[0])
		return;
	for (;;) {
		int64_t before = e->cursor;
		while (e->nbatch < (size_t)e->batch_max && e->cursor < upto && budget > 0) {
			int64_t from = e->cursor;
			e->cursor = emb_scan(mem_local(e->m), from, upto, SCAN_ROWS, take_row, e);
			if (e->cursor == from)
				break;	/* the batch is full at that row, or the read failed */
			budget -= e->cursor - from;
		}
		if (e->nbatch && !e->hash) {
			send_batch(e);
			return;
		}
		if (e->nbatch == 0 && e->cursor == before)
			return;	/* a read failed: the next commit tries again */
		if (e->nbatch)
			hash_batch(e);
		if (e->cursor >= upto)
			return;
		if (budget <= 0) {	/* the rest in the next pass: the loop has others to serve */
			timer_in(&e->more, 0);
			return;
		}
	}
}

static void
on_retry(struct timer *t)
{
	struct embedder *e = t->ctx;
	if (e->nbatch && !e->hash && e->req == NULL && !timer_armed(&e->retry)) {
		send_batch(e);
		return;
	}
	embedder_pump(e);
}

/* ---- reading an answer ------------------------------------------------------------ */

static int
base64_value(int c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+' || c == '-') return 62;
	if (c == '/' || c == '_') return 63;
	return -1;
}

/* Little-endian float32s, base64 (standard or URL alphabet): the count, or
 * -1 when it is not that. */
static int
decode_base64(const char *s, float **out)
{
	size_t n = strlen(s), k = 0;
	while (n > 0 && s[n - 1] == '=')
		n--;
	uint8_t *bytes = xmalloc(n * 3 / 4 + 3);
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = base64_value((unsigned char)s[i]);
		if (v < 0) {
			free(bytes);
			return -1;
		}
		acc = (acc << 6) | (uint32_t)v;
		if ((bits += 6) >= 8) {
			bits -= 8;
			bytes[k++] = (uint8_t)(acc >> bits);
		}
	}
	if (k % 4 || k == 0) {
		free(bytes);
		return -1;
	}
	*out = xmalloc(k);
	for (size_t i = 0; i < k / 4; i++) {
		uint32_t u = (uint32_t)bytes[4 * i] | (uint32_t)bytes[4 * i + 1] << 8 |
		    (uint32_t)bytes[4 * i + 2] << 16 | (uint32_t)bytes[4 * i + 3] << 24;
		memcpy(&(*out)[i], &u, sizeof(u));
	}
	free(bytes);
	return (int)(k / 4);
}

/* One "embedding": an array of numbers or a base64 string; its count. */
static int
read_vector(const json_t *emb, float **out)
{
	if (json_is_string(emb))
		return decode_base64(json_string_value(emb), out);
	if (!json_is_array(emb) || json_array_size(emb) == 0 ||
	    json_array_size(emb) > EMBED_DIM_MAX)
		return -1;
	size_t n = json_array_size(emb), i;
	const json_t *x;
	*out = xmalloc(n * sizeof(float));
	json_array_foreach(emb, i, x) {
		if (!json_is_number(x)) {
			free(*out);
			return -1;
		}
		(*out)[i] = (float)json_number_value(x);
	}
	return (int)n;
}

/* The dimension check: the collection's (configured, stored, or now
 * learned), or a refusal saying which. */
static int
check_dim(struct embedder *e, int dim, char *err, size_t errlen)
{
	if (dim <= 0 || dim > EMBED_DIM_MAX) {
		snprintf(err, errlen, "a vector of %d coordinates (at most %d)", dim, EMBED_DIM_MAX);
		return -1;
	}
	if (e->dim == 0)
		e->dim = dim;
	if (dim == e->dim)
		return 0;
	snprintf(err, errlen, "the endpoint answered %d-dimensional vectors, but the collection "
	    "of %s has %d (%s); refused, nothing stored", dim, e->model, e->dim,
	    e->dim_fixed ? "the dimensions configured" : "its vectors' dimension");
	return -1;
}

/* What the server said, from an error answer: {"error": {"message"}}, or
 * its first bytes. */
static void
error_text(const struct embedder *e, const struct http_reply *r, char *out, size_t len)
{
	json_t *j = r->status ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	json_t *err = json_object_get(j, "error");
	const char *msg = json_string_value(json_is_object(err) ? json_object_get(err, "message") :
	    err);
	char text[200];
	if (r->error)
		snprintf(out, len, "%s", r->error);
	else if (msg) {
		str_printable(text, sizeof(text), msg, strlen(msg));
		snprintf(out, len, "HTTP %ld: %s", r->status, text);
	} else {
		str_printable(text, sizeof(text), r->body, r->len < 120 ? r->len : 120);
		snprintf(out, len, "HTTP %ld%s%s", r->status, text[0] ? ": " : "", text);
	}
	json_decref(j);
	scrub(e, out);
}

/* n vectors from a 200 answer, in input order; -1 with err. */
static int
read_answer(struct embedder *e, const struct http_reply *r, size_t n, float **vecs,
    char *err, size_t errlen)
{
	json_error_t je;
	json_t *j = json_loadb(r->body, r->len, 0, &je), *item;
	json_t *data = json_object_get(j, "data");
	size_t i;
	int dim = 0, rc = -1;
	bool *seen = xcalloc(n ? n : 1, sizeof(bool));

	*vecs = NULL;
	if (!json_is_array(data) || json_array_size(data) != n) {
		snprintf(err, errlen, "the answer is not %zu embeddings in \"data\"%s%s", n,
		    j ? "" : ": ", j ? "" : je.text);
		goto out;
	}
	json_array_foreach(data, i, item) {
		json_t *ix = json_object_get(item, "index");
		size_t at = ix ? (size_t)json_integer_value(ix) : i;
		float *v = NULL;
		int d = read_vector(json_object_get(item, "embedding"), &v);
		if (!json_is_object(item) || (ix && !json_is_integer(ix)) || at >= n || seen[at] ||
		    d < 0) {
			snprintf(err, errlen, "data[%zu] is not an embedding of an input", i);
			free(v);
			goto out;
		}
		if (check_dim(e, d, err, errlen) < 0) {
			free(v);
			goto out;
		}
		if (*vecs == NULL)
			*vecs = xmalloc(n * (size_t)d * sizeof(float));
		memcpy(*vecs + at * (size_t)d, v, (size_t)d * sizeof(float));
		seen[at] = true;
		dim = d;
		free(v);
	}
	rc = dim;
out:
	if (rc < 0) {
		free(*vecs);
		*vecs = NULL;
	}
	free(seen);
	json_decref(j);
	return rc;
}

static bool
retryable(long status)
{
	return status == 0 || status == 408 || status == 409 || status == 429 || status >= 500;
}

static void
failed(struct embedder *e, const char *why, int64_t retry_after_ms)
{
	if (e->failing_since == 0) {
		e->failing_since = wall_ms();
		log_error("memory: embeddings from %s failing: %s", e->url, why);
	}
	snprintf(e->last_error, sizeof(e->last_error), "%s", why);
	e->backoff = e->backoff ? 2 * e->backoff : RETRY_FIRST_MS;
	if (retry_after_ms > e->backoff)
		e->backoff = retry_after_ms;
	if (e->backoff > RETRY_MAX_MS)
		e->backoff = RETRY_MAX_MS;
	e->retry_at = wall_ms() + e->backoff;
	timer_in(&e->retry, e->backoff);
}

static void
recovered(struct embedder *e)
{
	if (e->failing_since)
		log_info("memory: embeddings from %s work again after %lld s", e->url,
		    (long long)(wall_ms() - e->failing_since) / 1000);
	e->failing_since = 0;
	e->backoff = 0;
	e->retry_at = 0;
}

static void
on_rows(void *ctx, const struct http_reply *r)
{
	struct embedder *e = ctx;
	char why[320];
	float *vecs = NULL;
	int dim;

	e->req = NULL;
	if (r->error || r->status != 200) {
		error_text(e, r, why, sizeof(why));
		if (!retryable(r->status))
			strncat(why, " (sent again later: the endpoint may be fixed meanwhile)",
			    sizeof(why) - strlen(why) - 1);
		failed(e, why, r->retry_after_ms);
		return;
	}
	if ((dim = read_answer(e, r, e->nbatch, &vecs, why, sizeof(why))) < 0) {
		scrub(e, why);
		failed(e, why, -1);
		return;
	}
	recovered(e);
	keep_vectors(e, vecs, dim);
	free(vecs);
	embedder_pump(e);
}

/* ---- a query's vector -------------------------------------------------------------- */

static void
query_unlink(struct embed_query *q)
{
	for (struct embed_query **pp = &q->e->queries; *pp; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			return;
		}
}

static void
on_query(void *ctx, const struct http_reply *r)
{
	struct embed_query *q = ctx;
	struct embedder *e = q->e;
	char why[320];
	float *vec = NULL;
	int dim = -1;

	query_unlink(q);
	if (r->error || r->status != 200)
		error_text(e, r, why, sizeof(why));
	else if ((dim = read_answer(e, r, 1, &vec, why, sizeof(why))) < 0)
		scrub(e, why);
	if (dim < 0) {
		snprintf(e->last_error, sizeof(e->last_error), "%s", why);
		q->fn(q->ctx, NULL, 0, why);
	} else
		q->fn(q->ctx, vec, dim, NULL);
	free(vec);
	free(q);
}

struct embed_query *
embedder_query(struct embedder *e, const char *text, int64_t wait_ms, embed_query_fn fn,
    void *ctx)
{
	char why[400];
	size_t keep = utf8_cut(text, strlen(text), EMBED_INPUT_MAX);

	if (e->hash) {
		float *v = xmalloc((size_t)e->dim * sizeof(float));
		hash_embed(text, keep, v, e->dim);
		fn(ctx, v, e->dim, NULL);
		free(v);
		return NULL;
	}
	if (e->key_error[0]) {
		fn(ctx, NULL, 0, e->key_error);
		return NULL;
	}
	if (timer_armed(&e->retry)) {	/* known down: the answer need not wait */
		snprintf(why, sizeof(why), "the embeddings endpoint is failing (%s)", e->last_error);
		fn(ctx, NULL, 0, why);
		return NULL;
	}
	struct embed_query *q = xcalloc(1, sizeof(*q));
	q->e = e;
	q->fn = fn;
	q->ctx = ctx;
	char *input = xmalloc(keep + 1);
	memcpy(input, text, keep);
	input[keep] = '\0';
	q->req = post(e, json_pack("[s]", input), wait_ms < e->timeout_ms ? wait_ms :
	    e->timeout_ms, on_query, q, why, sizeof(why));
	free(input);
	if (q->req == NULL) {
		free(q);
		fn(ctx, NULL, 0, why);
		return NULL;
	}
	q->next = e->queries;
	e->queries = q;
	return q;
}

void
embed_query_cancel(struct embed_query *q)
{
	if (q == NULL)
		return;
	query_unlink(q);
	http_cancel(q->req);
	free(q);
}

/* ---- status ------------------------------------------------------------------------ */

json_t *
embedder_status(const struct embedder *e)
{
	char at[32];
	int64_t upto = emb_last_id(mem_local(e->m));
	const char *state = e->key_error[0] ? "no key" : e->failing_since ? "failing" : "ok";
	json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I}", "provider", e->hash ? "hash" : "openai",
	    "model", e->model, "state", state,
	    "pending", (json_int_t)(e->nbatch + (upto > e->cursor ? upto - e->cursor : 0)),
	    "embedded", (json_int_t)e->embedded);
	json_object_set_new(o, "dimensions", e->dim ? json_integer(e->dim) : json_null());
	if (e->url)
		json_object_set_new(o, "url", json_string(e->url));
	json_object_set_new(o, "last_error", e->key_error[0] ? json_string(e->key_error) :
	    e->failing_since ? json_string(e->last_error) : json_null());
	iso8601(e->retry_at, at, sizeof(at));
	json_object_set_new(o, "next_retry", e->failing_since && at[0] ? json_string(at) :
	    json_null());
	return o;
}
