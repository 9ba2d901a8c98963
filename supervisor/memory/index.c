/*
 * index: the embedded vector index -- every agent's vectors in agentd's
 * memory, searched exactly (cosine, by brute force), and the fusion of a
 * vector ranking with a lexical one.
 *
 * Exact because it is cheap at the sizes memory_retention allows (a dot
 * product of 384 floats per row: ~10 ms for 50 000 rows on one core) and
 * gives what an approximate index cannot: the true nearest rows, so
 * recall@10 against exact search is 1 by construction.  Vectors are
 * normalized when added, so cosine is a dot product.  Each agent has its
 * own collection (one model, one dimension), so a search never touches
 * another agent's rows.  Deleted rows become holes, squeezed out once they
 * are a quarter of a collection.
 *
 * Fusion is reciprocal rank fusion (Cormack et al., SIGIR 2009): a row's
 * score is the sum over the rankings it appears in of 1 / (60 + rank).  It
 * needs no calibration between cosine similarities and BM25 scores, which
 * live on unrelated scales.  The score is then divided by the best a row
 * could have (first in every ranking), so 1 means "first in both".
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "common/util.h"
#include "supervisor/memory/memory.h"

#define RRF_K 60

struct coll {
	char *agent;
	char *model;
	int dim;
	size_t n, cap, holes;
	int64_t *ids;             /* 0: a hole */
	uint8_t *types;
	float *vecs;              /* n * dim */
};

struct vindex {
	struct coll *c;
	size_t n, cap;
};

struct vindex *
vindex_new(void)
{
	return xcalloc(1, sizeof(struct vindex));
}

static void
coll_clear(struct coll *c)
{
	free(c->agent);
	free(c->model);
	free(c->ids);
	free(c->types);
	free(c->vecs);
}

void
vindex_free(struct vindex *x)
{
	if (x == NULL)
		return;
	for (size_t i = 0; i < x->n; i++)
		coll_clear(&x->c[i]);
	free(x->c);
	free(x);
}

static struct coll *
find(const struct vindex *x, const char *agent)
{
	for (size_t i = 0; i < x->n; i++)
		if (strcmp(x->c[i].agent, agent) == 0)
			return &x->c[i];
	return NULL;
}

bool
vindex_has(const struct vindex *x, const char *agent, const char *model)
{
	const struct coll *c = find(x, agent);
	return c && strcmp(c->model, model) == 0;
}

void
vindex_reset(struct vindex *x, const char *agent, const char *model)
{
	struct coll *c = find(x, agent);
	if (c == NULL) {
		if (x->n == x->cap) {
			x->cap = x->cap ? 2 * x->cap : 8;
			x->c = xrealloc(x->c, x->cap * sizeof(*x->c));
		}
		c = &x->c[x->n++];
	} else
		coll_clear(c);
	memset(c, 0, sizeof(*c));
	c->agent = xstrdup(agent);
	c->model = xstrdup(model);
}

size_t
vindex_size(const struct vindex *x, const char *agent)
{
	const struct coll *c = find(x, agent);
	return c ? c->n - c->holes : 0;
}

json_t *
vindex_status(const struct vindex *x)
{
	size_t vectors = 0, bytes = 0;
	for (size_t i = 0; i < x->n; i++) {
		vectors += x->c[i].n - x->c[i].holes;
		bytes += x->c[i].cap * ((size_t)x->c[i].dim * sizeof(float) + sizeof(int64_t) + 1);
	}
	return json_pack("{s:I, s:I, s:I}", "agents", (json_int_t)x->n, "vectors",
	    (json_int_t)vectors, "bytes", (json_int_t)bytes);
}

void
vec_normalize(float *v, int dim)
{
	double ss = 0;
	for (int i = 0; i < dim; i++)
		ss += (double)v[i] * v[i];
	if (ss <= 0)
		return;
	float inv = (float)(1.0 / sqrt(ss));
	for (int i = 0; i < dim; i++)
		v[i] *= inv;
}

int
vindex_add(struct vindex *x, const char *agent, const char *model, int64_t id, int type,
    const float *v, int dim)
{
	struct coll *c = find(x, agent);
	if (c == NULL || strcmp(c->model, model) != 0)
		return 0;	/* not loaded, or of another model: loaded from the table later */
	if (c->dim == 0)
		c->dim = dim;
	if (dim != c->dim)
		return -1;
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 256;
		c->ids = xrealloc(c->ids, c->cap * sizeof(*c->ids));
		c->types = xrealloc(c->types, c->cap);
		c->vecs = xrealloc(c->vecs, c->cap * (size_t)dim * sizeof(float));
	}
	float *slot = c->vecs + c->n * (size_t)dim;
	memcpy(slot, v, (size_t)dim * sizeof(float));
	vec_normalize(slot, dim);
	c->ids[c->n] = id;
	c->types[c->n] = (uint8_t)type;
	c->n++;
	return 0;
}

static void
squeeze(struct coll *c)
{
	size_t k = 0;
	for (size_t i = 0; i < c->n; i++) {
		if (c->ids[i] == 0)
			continue;
		if (k != i) {
			c->ids[k] = c->ids[i];
			c->types[k] = c->types[i];
			memcpy(c->vecs + k * (size_t)c->dim, c->vecs + i * (size_t)c->dim,
			    (size_t)c->dim * sizeof(float));
		}
		k++;
	}
	c->n = k;
	c->holes = 0;
}

void
vindex_drop(struct vindex *x, const char *agent, int type, int64_t upto)
{
	struct coll *c = find(x, agent);
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++)
		if (c->ids[i] != 0 && c->ids[i] <= upto && (type < 0 || c->types[i] == type)) {
			c->ids[i] = 0;
			c->holes++;
		}
	if (c->holes > c->n / 4)
		squeeze(c);
}

/* Four running sums, so the compiler may keep them in vector registers
 * without reordering one sum (it may not, without -ffast-math). */
static float
dot(const float *a, const float *b, int dim)
{
	float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	int i = 0;
	for (; i + 4 <= dim; i += 4) {
		s0 += a[i] * b[i];
		s1 += a[i + 1] * b[i + 1];
		s2 += a[i + 2] * b[i + 2];
		s3 += a[i + 3] * b[i + 3];
	}
	for (; i < dim; i++)
		s0 += a[i] * b[i];
	return (s0 + s1) + (s2 + s3);
}

/* hits[0..n) as a min-heap on score (the worst on top), ties: lower id worse. */
static bool
worse(const struct vhit *a, const struct vhit *b)
{
	return a->score < b->score || (a->score == b->score && a->id < b->id);
}

static void
sift_down(struct vhit *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && worse(&h[l], &h[m]))
			m = l;
		if (r < n && worse(&h[r], &h[m]))
			m = r;
		if (m == i)
			return;
		struct vhit t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static int
by_score(const void *a, const void *b)
{
	const struct vhit *x = a, *y = b;
	return worse(x, y) ? 1 : worse(y, x) ? -1 : 0;
}

size_t
vindex_search(const struct vindex *x, const char *agent, const float *query, int dim,
    unsigned types, size_t k, struct vhit *out)
{
	const struct coll *c = find(x, agent);
	size_t n = 0;
	float *q;

	if (c == NULL || c->dim != dim || k == 0)
		return 0;
	q = xmalloc((size_t)dim * sizeof(float));
	memcpy(q, query, (size_t)dim * sizeof(float));
	vec_normalize(q, dim);
	for (size_t i = 0; i < c->n; i++) {
		if (c->ids[i] == 0 || !(types & (1u << c->types[i])))
			continue;
		struct vhit h = { c->ids[i], dot(q, c->vecs + i * (size_t)dim, dim) };
		if (n < k) {
			out[n++] = h;
			if (n == k)
				for (size_t j = k / 2 + 1; j-- > 0; )
					sift_down(out, n, j);
		} else if (worse(&out[0], &h)) {
			out[0] = h;
			sift_down(out, n, 0);
		}
	}
	free(q);
	qsort(out, n, sizeof(*out), by_score);
	return n;
}

/* ---- fusion ------------------------------------------------------------------------ */

static int
by_fused(const void *a, const void *b)
{
	const struct fused *x = a, *y = b;
	if (x->score != y->score)
		return x->score < y->score ? 1 : -1;
	return x->id < y->id ? 1 : x->id > y->id ? -1 : 0;	/* newer first */
}

static struct fused *
entry(struct fused *f, size_t *n, int64_t id)
{
	for (size_t i = 0; i < *n; i++)
		if (f[i].id == id)
			return &f[i];
	f[*n] = (struct fused){ .id = id };
	return &f[(*n)++];
}

size_t
rrf_fuse(const struct vhit *vec, size_t nvec, const struct vhit *text, size_t ntext,
    size_t k, struct fused *out)
{
	size_t n = 0;
	int lists = (nvec > 0) + (ntext > 0);
	for (size_t i = 0; i < nvec; i++) {
		struct fused *f = entry(out, &n, vec[i].id);
		f->vec_rank = (int)i + 1;
		f->similarity = vec[i].score;
		f->score += 1.0 / (RRF_K + (double)(i + 1));
	}
	for (size_t i = 0; i < ntext; i++) {
		struct fused *f = entry(out, &n, text[i].id);
		f->text_rank = (int)i + 1;
		f->score += 1.0 / (RRF_K + (double)(i + 1));
	}
	for (size_t i = 0; i < n; i++)	/* 1: first in every ranking there was */
		out[i].score /= lists / (RRF_K + 1.0);
	qsort(out, n, sizeof(*out), by_fused);
	return n < k ? n : k;
}
