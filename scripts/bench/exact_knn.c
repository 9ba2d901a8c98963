/*
 * exact_knn: the ground truth for run_memory's recall@10 -- the k nearest
 * rows to each query by cosine, the plainest way there is (every row, in
 * double precision, one full sort), independent of the index it checks
 * (supervisor/memory/index.c keeps a heap over float sums).
 *
 *   exact_knn DIM K BASE QUERIES
 * BASE: records of an int64 id and DIM float32s; QUERIES: DIM float32s
 * each.  Prints, per query, a line of the k ids, best first, and the k-th
 * cosine (ties at the k-th place count as hits).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct row { int64_t id; double cos; };

static int
by_cos(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	return x->cos < y->cos ? 1 : x->cos > y->cos ? -1 : 0;
}

static double
cosine(const float *a, const float *b, int dim)
{
	double d = 0, na = 0, nb = 0;
	for (int i = 0; i < dim; i++) {
		d += (double)a[i] * b[i];
		na += (double)a[i] * a[i];
		nb += (double)b[i] * b[i];
	}
	return na > 0 && nb > 0 ? d / sqrt(na * nb) : 0;
}

int
main(int argc, char **argv)
{
	if (argc != 5)
		return 2;
	int dim = atoi(argv[1]), k = atoi(argv[2]);
	FILE *fb = fopen(argv[3], "rb"), *fq = fopen(argv[4], "rb");
	if (!fb || !fq || dim <= 0 || k <= 0)
		return 2;
	size_t cap = 1024, n = 0;
	int64_t *ids = malloc(cap * sizeof(*ids));
	float *vecs = malloc(cap * dim * sizeof(float));
	while (fread(&ids[n], sizeof(int64_t), 1, fb) == 1) {
		if (fread(vecs + n * dim, sizeof(float), dim, fb) != (size_t)dim)
			return 3;
		if (++n == cap) {
			cap *= 2;
			ids = realloc(ids, cap * sizeof(*ids));
			vecs = realloc(vecs, cap * dim * sizeof(float));
		}
	}
	struct row *rows = malloc((n ? n : 1) * sizeof(*rows));
	float *q = malloc(dim * sizeof(float));
	while (fread(q, sizeof(float), dim, fq) == (size_t)dim) {
		for (size_t i = 0; i < n; i++)
			rows[i] = (struct row){ ids[i], cosine(q, vecs + i * dim, dim) };
		qsort(rows, n, sizeof(*rows), by_cos);
		for (int i = 0; i < k && (size_t)i < n; i++)
			printf("%lld ", (long long)rows[i].id);
		printf("%.9f\n", n ? rows[(size_t)k <= n ? (size_t)k - 1 : n - 1].cos : 0.0);
	}
	return 0;
}
