/*
 * redact: see redact.h for the rules.
 *
 * A secret is kept twice: its bytes, for text and for JSON strings (which
 * hold raw UTF-8), and its JSON spelling (quotes, backslashes and control
 * characters escaped as jansson escapes them), for the quick look at
 * serialized text.  A secret that is not valid UTF-8 has no JSON spelling:
 * no JSON string can hold it, so it is looked for in plain text only.
 *
 * Replacing works on byte ranges: every occurrence of every secret is a
 * range, overlapping ranges are merged, and each merged range becomes one
 * marker.  Replacing secret after secret instead would let one marker cut
 * another secret short and leave the rest of it behind.
 *
 * Looking is one pass over the text whatever the number of secrets (agentd
 * holds every agent's; event_emit looks at every event): at each position
 * the next 4 bytes are hashed into a filter that has a bit for the first 4
 * bytes of every secret, and only where a bit is set are the secrets with
 * that hash compared.  On a 170-byte event the pass takes ~0.35 us with 1
 * secret and ~0.45 us with 100; memmem per secret took ~0.35 us each (glibc
 * builds a table per call), 38 us with 100.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/redact.h"
#include "common/util.h"

#define FILTER_BITS 16       /* 64 Ki bits: few false hits for hundreds of secrets */

enum form { RAW, JSON, FORMS };

struct spelling {
	char *s;             /* NULL: none (no JSON spelling) */
	size_t len;
	uint32_t h;          /* hash of its first 4 bytes */
};

struct secret {
	struct spelling form[FORMS];  /* its bytes; its JSON spelling without quotes */
};

struct redact {
	struct secret *v;
	size_t n, cap;
	uint64_t filter[FORMS][(1u << FILTER_BITS) / 64];
};

struct range { size_t from, to; };

_Static_assert(REDACT_MIN >= 4, "the filter hashes a secret's first 4 bytes");
_Static_assert(sizeof(REDACT_MARK) - 1 <= REDACT_MIN, "redacting must never lengthen a text");

static inline uint32_t
prefix_hash(const char *p)
{
	uint32_t x;
	memcpy(&x, p, 4);
	return (x * 2654435761u) >> (32 - FILTER_BITS);
}

struct redact *
redact_new(void)
{
	return xcalloc(1, sizeof(struct redact));
}

static void
wipe(char *p, size_t n)
{
	if (p)
		explicit_bzero(p, n);
	free(p);
}

void
redact_free(struct redact *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		for (int f = 0; f < FORMS; f++)
			wipe(r->v[i].form[f].s, r->v[i].form[f].len);
	free(r->v);
	free(r);
}

/* The secret as jansson writes it inside a string, quotes dropped. */
static char *
json_spelling(const char *s, size_t len, size_t *outlen)
{
	json_t *j = json_stringn(s, len);
	char *text = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
	json_decref(j);
	if (text == NULL)
		return NULL;
	size_t n = strlen(text) - 2;
	memmove(text, text + 1, n);
	explicit_bzero(text + n, 2);
	text[n] = '\0';
	*outlen = n;
	return text;
}

static void
set_form(struct redact *r, struct spelling *sp, enum form f, char *s, size_t len)
{
	sp->s = s;
	sp->len = len;
	if (s == NULL)
		return;
	sp->h = prefix_hash(s);
	r->filter[f][sp->h >> 6] |= 1ull << (sp->h & 63);
}

int
redact_add(struct redact *r, const char *secret)
{
	if (secret == NULL || strlen(secret) < REDACT_MIN)
		return -1;
	size_t len = strlen(secret), jlen = 0;
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].form[RAW].len == len && memcmp(r->v[i].form[RAW].s, secret, len) == 0)
			return 0;
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 8;
		r->v = xrealloc(r->v, r->cap * sizeof(*r->v));
	}
	struct secret *x = &r->v[r->n++];
	set_form(r, &x->form[RAW], RAW, xstrdup(secret), len);
	char *json = json_spelling(secret, len, &jlen);
	set_form(r, &x->form[JSON], JSON, json, jlen);
	return 1;
}

size_t
redact_count(const struct redact *r)
{
	return r ? r->n : 0;
}

/*
 * The occurrences of every secret, in form f, in s[0..n), by position
 * (overlapping ones too: "aaaa" twice in "aaaaa").  With ranges NULL, stop
 * at the first; else *ranges gets them all.  Returns how many were found.
 */
static size_t
scan(const struct redact *r, enum form f, const char *s, size_t n, struct range **ranges)
{
	size_t k = 0, cap = 0;

	if (redact_count(r) == 0)
		return 0;
	for (size_t i = 0; i + REDACT_MIN <= n; i++) {
		uint32_t h = prefix_hash(s + i);
		if (!(r->filter[f][h >> 6] >> (h & 63) & 1))
			continue;
		for (size_t j = 0; j < r->n; j++) {
			const struct spelling *sp = &r->v[j].form[f];
			if (sp->s == NULL || sp->h != h || sp->len > n - i ||
			    memcmp(s + i, sp->s, sp->len) != 0)
				continue;
			if (ranges == NULL)
				return 1;
			if (k == cap) {
				cap = cap ? cap * 2 : 4;
				*ranges = xrealloc(*ranges, cap * sizeof(**ranges));
			}
			(*ranges)[k++] = (struct range){ i, i + sp->len };
		}
	}
	return k;
}

bool
redact_hit(const struct redact *r, const char *s, size_t n)
{
	return scan(r, RAW, s, n, NULL) > 0;
}

bool
redact_hit_json(const struct redact *r, const char *text, size_t n)
{
	return scan(r, JSON, text, n, NULL) > 0;
}

char *
redact_text(const struct redact *r, const char *s, size_t n, size_t *outlen)
{
	struct range *v = NULL;
	size_t k = scan(r, RAW, s, n, &v);
	if (k == 0)
		return NULL;
	size_t cap = n + k * (sizeof(REDACT_MARK) - 1) + 1, len = 0, at = 0;
	char *out = xmalloc(cap);
	for (size_t i = 0; i < k; ) {
		size_t from = v[i].from, to = v[i].to;
		for (i++; i < k && v[i].from < to; i++)	/* merge what overlaps */
			if (v[i].to > to)
				to = v[i].to;
		memcpy(out + len, s + at, from - at);
		len += from - at;
		memcpy(out + len, REDACT_MARK, sizeof(REDACT_MARK) - 1);
		len += sizeof(REDACT_MARK) - 1;
		at = to;
	}
	memcpy(out + len, s + at, n - at);
	len += n - at;
	out[len] = '\0';
	free(v);
	*outlen = len;
	return out;
}

size_t
redact_tail(const struct redact *r, const char *s, size_t n)
{
	for (bool again = true; again; ) {
		again = false;
		for (size_t i = 0; r && i < r->n; i++) {
			const struct spelling *sp = &r->v[i].form[RAW];
			size_t k = sp->len - 1 < n ? sp->len - 1 : n;
			for (; k > 0; k--)
				if (memcmp(s + n - k, sp->s, k) == 0)
					break;
			if (k > 0) {
				n -= k;
				again = true;
			}
		}
	}
	return n;
}

size_t
redact_buf(const struct redact *r, char *buf, size_t len, bool cut)
{
	if (redact_count(r) == 0)
		return len;
	if (cut)
		len = redact_tail(r, buf, len);
	char *t = redact_text(r, buf, len, &len);
	if (t) {
		memcpy(buf, t, len);	/* no longer than it was */
		free(t);
	}
	buf[len] = '\0';
	return len;
}

/* ---- JSON values -------------------------------------------------------- */

static json_t *clean(const struct redact *r, json_t *v);

/* A key that redaction made equal to one already there gets a suffix:
 * two redacted keys must not overwrite each other. */
static void
set_unique(json_t *o, const char *key, json_t *v)
{
	if (json_object_get(o, key) == NULL) {
		json_object_set_new(o, key, v);
		return;
	}
	size_t len = strlen(key) + 24;
	char *k = xmalloc(len);
	for (unsigned i = 2; ; i++) {
		snprintf(k, len, "%s#%u", key, i);
		if (json_object_get(o, k) == NULL)
			break;
	}
	json_object_set_new(o, k, v);
	free(k);
}

static json_t *
clean_object(const struct redact *r, json_t *v)
{
	json_t *out = NULL, *child;
	const char *key;
	size_t at = 0;

	json_object_foreach(v, key, child) {
		size_t kl;
		char *nk = redact_text(r, key, strlen(key), &kl);
		json_t *nc = clean(r, child);
		if (out == NULL && (nk || nc != child)) {
			/* The first change: what came before it is shared as is. */
			const char *k2;
			json_t *c2;
			size_t i = 0;
			out = json_object();
			json_object_foreach(v, k2, c2) {
				if (i++ == at)
					break;
				json_object_set(out, k2, c2);
			}
		}
		if (out)
			set_unique(out, nk ? nk : key, nc);
		else
			json_decref(nc);
		free(nk);
		at++;
	}
	return out ? out : json_incref(v);
}

static json_t *
clean_array(const struct redact *r, json_t *v)
{
	json_t *out = NULL, *child;
	size_t i;

	json_array_foreach(v, i, child) {
		json_t *nc = clean(r, child);
		if (out == NULL && nc != child) {
			out = json_array();
			for (size_t j = 0; j < i; j++)
				json_array_append(out, json_array_get(v, j));
		}
		if (out)
			json_array_append_new(out, nc);
		else
			json_decref(nc);
	}
	return out ? out : json_incref(v);
}

static json_t *
clean_string(const struct redact *r, json_t *v)
{
	size_t n;
	char *t = redact_text(r, json_string_value(v), json_string_length(v), &n);
	if (t == NULL)
		return json_incref(v);
	/* A secret that is not valid UTF-8 can match inside a character and
	 * leave the rest invalid: then the whole string goes. */
	json_t *s = json_stringn(t, n);
	free(t);
	return s ? s : json_string(REDACT_MARK);
}

static json_t *
clean(const struct redact *r, json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		return clean_string(r, v);
	case JSON_OBJECT:
		return clean_object(r, v);
	case JSON_ARRAY:
		return clean_array(r, v);
	default:
		return json_incref(v);
	}
}

json_t *
redact_json(const struct redact *r, json_t *v)
{
	if (v == NULL)
		return NULL;
	if (redact_count(r) == 0)
		return json_incref(v);
	return clean(r, v);
}
