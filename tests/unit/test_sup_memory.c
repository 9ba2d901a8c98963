/*
 * Unit tests: recall (supervisor/memory/) -- the hash embedder's
 * determinism, the exact vector index against brute force, reciprocal
 * rank fusion, recall on the store's two local backends (the agent's own
 * rows only, the types asked for, rows gone by retention or a clear gone
 * from the index too), vectors kept with the store's degraded mode, and a
 * db from before recall given its text index at open.
 */
#include <check.h>
#include "tests/unit/check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include "common/util.h"
#include "conf/config.h"
#include "supervisor/loop.h"
#include "supervisor/memory/memory.h"
#include "supervisor/store.h"

#include "tests/unit/store_fixture.h"

static void
setup(void)
{
	fixture_setup("mem");
}

/* ---- the hash embedder ----------------------------------------------------------- */

static double
checksum(const float *v, int dim)
{
	double c = 0;
	for (int i = 0; i < dim; i++)
		c += v[i] * (i % 7 + 1);
	return c;
}

static float
cosine(const float *a, const float *b, int dim)
{
	float s = 0;
	for (int i = 0; i < dim; i++)
		s += a[i] * b[i];
	return s;
}

START_TEST(hash_embedder)
{
	float a[384], b[384], c[384], d[384];
	const char *t = "The disk /var is full: PostgreSQL stopped writing";
	hash_embed(t, strlen(t), a, 384);
	hash_embed(t, strlen(t), b, 384);
	ck_assert(memcmp(a, b, sizeof(a)) == 0);
	/* The same vector in every process and every version of agentd that
	 * calls it HASH_MODEL: stored vectors stay valid.  A change of the
	 * algorithm must change HASH_MODEL (and this number). */
	ck_assert_msg(fabs(checksum(a, 384) - 7.1640) < 1e-3, "checksum %.6f", checksum(a, 384));
	ck_assert(fabs(cosine(a, a, 384) - 1) < 1e-5);	/* normalized */
	hash_embed("disk full on /var", 17, c, 384);
	hash_embed("the weather in Lisbon is sunny", 30, d, 384);
	ck_assert(cosine(a, c, 384) > 0.3);
	ck_assert(fabs(cosine(a, d, 384)) < 0.15);
	/* words in common with a variant spelling: subword features */
	hash_embed("postgres", 8, c, 384);
	hash_embed("postgresql", 10, d, 384);
	ck_assert_msg(cosine(c, d, 384) > 0.3, "%f", cosine(c, d, 384));
	/* function words carry nothing; case carries nothing */
	hash_embed("DISK FULL", 9, c, 384);
	hash_embed("the disk is full", 16, d, 384);
	ck_assert(fabs(cosine(c, d, 384) - 1) < 1e-5);
	hash_embed("", 0, c, 384);	/* nothing to say: a zero vector, no NaN */
	for (int i = 0; i < 384; i++)
		ck_assert(c[i] == 0);
}
END_TEST

/* ---- the index ------------------------------------------------------------------------ */

static void
random_vec(float *v, int dim, unsigned *seed)
{
	for (int i = 0; i < dim; i++)
		v[i] = (float)rand_r(seed) / RAND_MAX - 0.5f;
}

static int
by_score_desc(const void *a, const void *b)
{
	const struct vhit *x = a, *y = b;
	return x->score < y->score ? 1 : x->score > y->score ? -1 : (x->id < y->id) - (x->id > y->id);
}

START_TEST(exact_index)
{
	enum { N = 2000, DIM = 32, K = 10 };
	struct vindex *x = vindex_new();
	float *vecs = malloc(sizeof(float) * N * DIM), q[DIM];
	unsigned seed = 7;
	struct vhit got[K], *all = malloc(sizeof(*all) * N);

	ck_assert_int_eq(vindex_add(x, "a", "m", 1, MT_EPISODIC, q, DIM), 0);	/* not loaded */
	ck_assert_uint_eq(vindex_size(x, "a"), 0);
	vindex_reset(x, "a", "m");
	vindex_reset(x, "b", "m");
	for (int i = 0; i < N; i++) {
		random_vec(vecs + i * DIM, DIM, &seed);
		ck_assert_int_eq(vindex_add(x, "a", "m", i + 1, i % 2 ? MT_EPISODIC : MT_LONG_TERM,
		    vecs + i * DIM, DIM), 0);
		ck_assert_int_eq(vindex_add(x, "b", "m", i + 1, MT_EPISODIC, vecs, DIM), 0);
	}
	ck_assert_int_eq(vindex_add(x, "a", "m", N + 1, MT_EPISODIC, q, DIM - 1), -1);
	ck_assert(!vindex_has(x, "a", "other"));
	random_vec(q, DIM, &seed);
	/* brute force, in double, over the episodic rows */
	size_t n = 0;
	for (int i = 0; i < N; i++) {
		if (!(i % 2))
			continue;
		float v[DIM];
		memcpy(v, vecs + i * DIM, sizeof(v));
		vec_normalize(v, DIM);
		float qq[DIM];
		memcpy(qq, q, sizeof(qq));
		vec_normalize(qq, DIM);
		all[n++] = (struct vhit){ i + 1, cosine(qq, v, DIM) };
	}
	qsort(all, n, sizeof(*all), by_score_desc);
	ck_assert_uint_eq(vindex_search(x, "a", q, DIM, 1u << MT_EPISODIC, K, got), K);
	for (int i = 0; i < K; i++) {	/* recall@10 = 1: the same rows, in order */
		ck_assert_int_eq(got[i].id, all[i].id);
		ck_assert(fabsf(got[i].score - all[i].score) < 1e-5);
	}
	/* dropped rows are never found again, holes squeezed out */
	vindex_drop(x, "a", MT_EPISODIC, all[0].id);
	ck_assert_uint_eq(vindex_search(x, "a", q, DIM, 1u << MT_EPISODIC, K, got), K);
	for (int i = 0; i < K; i++)
		ck_assert_int_gt(got[i].id, all[0].id);
	vindex_drop(x, "a", -1, INT64_MAX);
	ck_assert_uint_eq(vindex_size(x, "a"), 0);
	ck_assert_uint_eq(vindex_search(x, "a", q, DIM, ~0u, K, got), 0);
	ck_assert_uint_eq(vindex_size(x, "b"), N);
	ck_assert_uint_eq(vindex_search(x, "b", q, DIM - 1, ~0u, K, got), 0);	/* dims differ */
	free(vecs);
	free(all);
	vindex_free(x);
}
END_TEST

START_TEST(fusion)
{
	struct vhit vec[] = { { 10, 0.9f }, { 11, 0.8f }, { 12, 0.7f } };
	struct vhit text[] = { { 11, 5 }, { 13, 4 }, { 10, 3 } };
	struct fused f[6];
	size_t n = rrf_fuse(vec, 3, text, 3, 10, f);
	ck_assert_uint_eq(n, 4);
	/* 11: 1/62 + 1/61; 10: 1/61 + 1/63; 12: 1/63; 13: 1/62 */
	ck_assert_int_eq(f[0].id, 11);
	ck_assert_int_eq(f[1].id, 10);
	ck_assert_int_eq(f[2].id, 13);
	ck_assert_int_eq(f[3].id, 12);
	ck_assert(fabs(f[0].score - (1 / 62.0 + 1 / 61.0) / (2 / 61.0)) < 1e-9);
	ck_assert_int_eq(f[0].vec_rank, 2);
	ck_assert_int_eq(f[0].text_rank, 1);
	ck_assert(fabsf(f[1].similarity - 0.9f) < 1e-6);
	ck_assert_int_eq(f[2].vec_rank, 0);
	ck_assert_uint_eq(rrf_fuse(vec, 3, text, 3, 2, f), 2);
	/* one ranking alone: its first scores 1 */
	ck_assert_uint_eq(rrf_fuse(NULL, 0, text, 3, 10, f), 3);
	ck_assert(fabs(f[0].score - 1) < 1e-9);
	ck_assert_int_eq(f[0].id, 11);
	ck_assert_uint_eq(rrf_fuse(NULL, 0, NULL, 0, 10, f), 0);
}
END_TEST

/* ---- recall on the store ----------------------------------------------------------------- */

static json_t *answer;

static void
got_answer(struct mem_recall *q, json_t *a)
{
	json_decref(answer);
	answer = a;
}

/* A recall answered at once (the hash embedder); its hits' contents. */
static json_t *
recall(struct store *s, const char *agent, const char *query, int limit, unsigned types)
{
	struct mem_recall q = { .done = got_answer };
	json_decref(answer);
	answer = NULL;
	store_mem_recall(s, &q, agent, query, limit, types);
	ck_assert_ptr_nonnull(answer);
	ck_assert(!q.busy);
	ck_assert(json_is_false(json_object_get(answer, "degraded")));
	json_t *contents = json_array(), *h;
	size_t i;
	json_array_foreach(json_object_get(answer, "hits"), i, h)
		json_array_append(contents, json_object_get(h, "content"));
	return contents;
}

static const char *
hit(json_t *contents, size_t i)
{
	return json_string_value(json_array_get(contents, i));
}

static void
commit_and_embed(struct store *s)
{
	ck_assert_int_eq(store_flush(s), 0);
	store_mem_pump(s);
	ck_assert_int_eq(store_flush(s), 0);
}

static void
recall_behaves(void)
{
	struct store *s = open_store();
	static const char *rows[] = {
		"disk /var is 97% full; rotated the nginx logs",
		"postgres restarted after an out of memory kill",
		"the weekly report went to the ops channel",
		"certificate for api.example.com expires in 12 days",
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++)
		ck_assert_int_eq(store_mem_append(s, "a", "sid", "episodic", "assistant", rows[i],
		    NULL), 0);
	ck_assert_int_eq(store_mem_append(s, "a", "sid", "long_term", "assistant",
	    "the database host is db1, postgresql 15", NULL), 0);
	ck_assert_int_eq(store_mem_append(s, "b", "sid", "long_term", "assistant",
	    "b's own note about postgresql and disks", NULL), 0);
	commit_and_embed(s);

	json_t *c = recall(s, "a", "is postgresql down?", 3, MEMORY_RECALL_TYPES);
	ck_assert_uint_ge(json_array_size(c), 2);
	ck_assert_str_eq(hit(c, 0), "the database host is db1, postgresql 15");
	ck_assert_str_eq(hit(c, 1), "postgres restarted after an out of memory kill");
	for (size_t i = 0; i < json_array_size(c); i++)	/* b's rows are b's */
		ck_assert(strstr(hit(c, i), "b's") == NULL);
	json_t *h = json_array_get(json_object_get(answer, "hits"), 0);
	ck_assert(json_real_value(json_object_get(h, "score")) > 0.9);
	ck_assert_ptr_nonnull(json_object_get(h, "similarity"));
	ck_assert_str_eq(json_string_value(json_object_get(h, "memory_type")), "long_term");
	ck_assert(json_integer_value(json_object_get(h, "id")) > 0);
	json_decref(c);

	c = recall(s, "a", "postgresql", 5, 1u << MT_EPISODIC);	/* the types asked for */
	for (size_t i = 0; i < json_array_size(c); i++)
		ck_assert(strstr(hit(c, i), "db1") == NULL);
	json_decref(c);
	c = recall(s, "a", "disks full", 1, MEMORY_RECALL_TYPES);
	ck_assert_uint_eq(json_array_size(c), 1);
	ck_assert_str_eq(hit(c, 0), rows[0]);
	json_decref(c);
	c = recall(s, "b", "postgresql", 10, MEMORY_RECALL_TYPES);
	ck_assert_uint_eq(json_array_size(c), 1);
	json_decref(c);
	c = recall(s, "nobody", "postgresql", 10, ~0u);
	ck_assert_uint_eq(json_array_size(c), 0);
	json_decref(c);
	/* a query FTS5 would read as syntax is words to it */
	c = recall(s, "a", "\"NEAR(disk* OR) AND -", 10, ~0u);
	ck_assert_uint_ge(json_array_size(c), 1);
	json_decref(c);

	/* cleared and pruned rows are gone from both rankings */
	ck_assert_int_eq(store_mem_clear(s, "a", "long_term"), 0);
	commit_and_embed(s);
	c = recall(s, "a", "database host db1", 10, ~0u);
	for (size_t i = 0; i < json_array_size(c); i++)
		ck_assert(strstr(hit(c, i), "db1") == NULL);
	json_decref(c);
	for (int i = 0; i < 120; i++) {	/* memory_retention is 100 */
		char text[64];
		snprintf(text, sizeof(text), "filler row %d about nothing in particular", i);
		ck_assert_int_eq(store_mem_append(s, "a", "sid", "episodic", "user", text, NULL), 0);
		if (i % 30 == 29)
			commit_and_embed(s);
	}
	commit_and_embed(s);
	c = recall(s, "a", "certificate expires api.example.com", 3, ~0u);
	for (size_t i = 0; i < json_array_size(c); i++)
		ck_assert(strstr(hit(c, i), "certificate") == NULL);
	json_decref(c);
	c = recall(s, "a", "filler row 119", 1, ~0u);
	ck_assert_str_eq(hit(c, 0), "filler row 119 about nothing in particular");
	json_decref(c);
	/* the index holds the rows there are, no more: 100 episodic (retention) */
	json_t *st = json_object();
	store_mem_status(s, st);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(json_object_get(st,
	    "memory"), "index"), "vectors")), 100 + 1);	/* and b's one */
	json_decref(st);
	json_decref(answer);
	answer = NULL;
	store_close(s);
}

START_TEST(recall_sqlite)
{
	recall_behaves();
}
END_TEST

START_TEST(recall_in_memory)
{
	g.memory_store = "memory";
	recall_behaves();
}
END_TEST

/* The text ranking is the agent's own: another agent's many rows with the
 * same words take none of its places. */
START_TEST(text_ranking_per_agent)
{
	struct store *s = open_store();
	char text[64];
	for (int i = 0; i < 1300; i++) {	/* a rare word (BM25 has it count), and b's */
		snprintf(text, sizeof(text), i < 300 ? "zebra zebra %d" : "filler %d", i);
		ck_assert_int_eq(store_mem_append(s, i < 300 ? "b" : "c", "sid", "episodic", "user",
		    text, NULL), 0);	/* each of b's ranks above a's */
	}
	ck_assert_int_eq(store_mem_append(s, "a", "sid", "episodic", "user", "a's own long note, "
	    "of many words about the garden, the weather and the roads, and one zebra", NULL), 0);
	ck_assert_int_eq(store_flush(s), 0);
	struct mem_recall q = { .done = got_answer, .rank = RANK_TEXT };
	store_mem_recall(s, &q, "a", "zebra", 5, ~0u);
	ck_assert_uint_eq(json_array_size(json_object_get(answer, "hits")), 1);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(json_array_get(
	    json_object_get(answer, "hits"), 0), "content")), "one zebra"));
	json_decref(answer);
	answer = NULL;
	store_close(s);
}
END_TEST

/* A state db that takes no writes: rows and vectors wait with the store's
 * other writes and are committed, recallable, once it takes them again. */
START_TEST(recall_after_degraded)
{
	char path[128];
	sqlite3 *other;
	ck_assert_int_eq(loop_init(), 0);
	struct store *s = open_store();
	ck_assert_int_eq(store_mem_append(s, "a", "sid", "long_term", "user", "the vault is sealed",
	    NULL), 0);
	commit_and_embed(s);
	snprintf(path, sizeof(path), "%s/agentd.db", dir);
	ck_assert_int_eq(sqlite3_open(path, &other), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(store_mem_append(s, "a", "sid", "long_term", "user", "the vault was "
	    "unsealed at noon", NULL), 0);
	ck_assert_int_eq(store_flush(s), -1);	/* degraded: it waits */
	store_mem_pump(s);
	json_t *c = recall(s, "a", "vault unsealed", 5, ~0u);	/* the committed one only */
	ck_assert_uint_eq(json_array_size(c), 1);
	json_decref(c);
	ck_assert_int_eq(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	json_t *st = store_status(s);
	for (int i = 0; i < 50 && strcmp(json_string_value(json_object_get(st, "state")), "ok"); i++) {
		ck_assert_int_eq(loop_once(), 0);
		json_decref(st);
		st = store_status(s);
	}
	ck_assert_str_eq(json_string_value(json_object_get(st, "state")), "ok");
	json_decref(st);
	store_mem_pump(s);
	ck_assert_int_eq(store_flush(s), 0);
	c = recall(s, "a", "vault unsealed", 5, ~0u);
	ck_assert_str_eq(hit(c, 0), "the vault was unsealed at noon");
	ck_assert_ptr_nonnull(json_object_get(json_array_get(json_object_get(answer, "hits"), 0),
	    "similarity"));	/* and embedded */
	json_decref(c);
	json_decref(answer);
	answer = NULL;
	store_close(s);
	loop_fini();
}
END_TEST

/* A db from before recall: its rows are found by their words, and given
 * vectors, once it is opened. */
START_TEST(old_db_gets_indexes)
{
	char path[128];
	sqlite3 *db;
	snprintf(path, sizeof(path), "%s/agentd.db", dir);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "CREATE TABLE memory (id INTEGER PRIMARY KEY, "
	    "agent TEXT, session_id TEXT, memory_type TEXT, role TEXT, content TEXT, metadata "
	    "TEXT, timestamp INTEGER); INSERT INTO memory (agent, memory_type, role, content) "
	    "VALUES ('a', 'episodic', 'assistant', 'the backup of /srv finished'), "
	    "('a', 'episodic', 'assistant', 'nginx reloaded');", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct store *s = open_store();
	struct mem_recall q = { .done = got_answer };
	store_mem_recall(s, &q, "a", "backups", 5, ~0u);	/* before any vector: words */
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(answer,
	    "hits"), 0), "content")), "the backup of /srv finished");
	ck_assert_ptr_null(json_object_get(json_array_get(json_object_get(answer, "hits"), 0),
	    "similarity"));
	store_mem_pump(s);
	ck_assert_int_eq(store_flush(s), 0);
	json_t *c = recall(s, "a", "backup", 5, ~0u);
	ck_assert_str_eq(hit(c, 0), "the backup of /srv finished");
	ck_assert_ptr_nonnull(json_object_get(json_array_get(json_object_get(answer, "hits"), 0),
	    "similarity"));
	json_decref(c);
	json_decref(answer);
	answer = NULL;
	store_close(s);
}
END_TEST

/* What a vector store would ship: rows in order with their vectors, none
 * past one not embedded yet. */
START_TEST(outbox_with_vectors)
{
	g.memory_store = "redis";	/* a backend that ships: the outbox keeps rows */
	struct store *s = open_store();
	json_t *rows;
	ck_assert_int_eq(store_mem_append(s, "a", "sid", "episodic", "user", "one", NULL), 0);
	ck_assert_int_eq(store_mem_append(s, "b", "sid", "long_term", "user", "two", NULL), 0);
	ck_assert_int_eq(store_flush(s), 0);
	ck_assert_int_eq(store_mem_pending_vectors(s, 0, 10, &rows), 0);
	ck_assert_uint_eq(json_array_size(rows), 0);	/* not embedded: nothing yet */
	json_decref(rows);
	store_mem_pump(s);
	ck_assert_int_eq(store_flush(s), 0);
	ck_assert_int_eq(store_mem_append(s, "a", "sid", "episodic", "user", "three", NULL), 0);
	ck_assert_int_eq(store_flush(s), 0);	/* committed, not embedded */
	ck_assert_int_eq(store_mem_pending_vectors(s, 0, 10, &rows), 0);
	ck_assert_uint_eq(json_array_size(rows), 2);
	json_t *r = json_array_get(rows, 1);
	ck_assert_str_eq(json_string_value(json_object_get(r, "content")), "two");
	ck_assert_str_eq(json_string_value(json_object_get(r, "agent_id")), "b");
	ck_assert_str_eq(json_string_value(json_object_get(r, "model")), "hash:hash-v1/384");
	ck_assert_uint_eq(json_array_size(json_object_get(r, "vector")), 384);
	float v[384], norm = 0;
	hash_embed("two", 3, v, 384);
	for (int i = 0; i < 384; i++) {
		ck_assert(fabs(json_real_value(json_array_get(json_object_get(r, "vector"), i)) -
		    v[i]) < 1e-6);
		norm += v[i] * v[i];
	}
	ck_assert(fabs(norm - 1) < 1e-4);
	json_decref(rows);
	/* a row of an agent whose embedder has not answered holds back the
	 * rows after it, embedded or not */
	json_t *conf = json_pack("{s:s, s:s, s:s, s:b}", "provider", "openai", "model", "m",
	    "url", "http://127.0.0.1:9/v1/embeddings", "api_key_required", 0);
	store_mem_agent(s, "x", conf);
	json_decref(conf);
	ck_assert_int_eq(store_mem_append(s, "x", "sid", "episodic", "user", "four", NULL), 0);
	ck_assert_int_eq(store_mem_append(s, "a", "sid", "episodic", "user", "five", NULL), 0);
	ck_assert_int_eq(store_flush(s), 0);
	store_mem_pump(s);	/* a's by hash; x's request waits on a loop that never runs */
	ck_assert_int_eq(store_flush(s), 0);
	ck_assert_int_eq(store_mem_pending_vectors(s, 2, 10, &rows), 0);
	ck_assert_uint_eq(json_array_size(rows), 1);	/* three, and nothing past four */
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 0), "content")),
	    "three");
	json_decref(rows);
	store_close(s);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("memory");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, hash_embedder);
	tcase_add_test(tc, exact_index);
	tcase_add_test(tc, fusion);
	tcase_add_test(tc, recall_sqlite);
	tcase_add_test(tc, recall_in_memory);
	tcase_add_test(tc, text_ranking_per_agent);
	tcase_add_test(tc, recall_after_degraded);
	tcase_add_test(tc, old_db_gets_indexes);
	tcase_add_test(tc, outbox_with_vectors);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
