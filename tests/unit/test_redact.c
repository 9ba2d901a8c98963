/* Unit tests: common/redact.c, and the log's use of it (common/log.c). */
#include <check.h>
#include "tests/unit/check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/log.h"
#include "common/redact.h"

static struct redact *
set_of(const char *const *secrets)
{
	struct redact *r = redact_new();
	for (; *secrets; secrets++)
		ck_assert_int_eq(redact_add(r, *secrets), 1);
	return r;
}

/* redact_text of s, or s itself when nothing was found (as a copy). */
static char *
text(const struct redact *r, const char *s)
{
	size_t n;
	char *t = redact_text(r, s, strlen(s), &n);
	if (t == NULL)
		return strdup(s);
	ck_assert_uint_eq(n, strlen(t));
	return t;
}

#define TEXT_IS(r, in, want) do { \
	char *got_ = text(r, in); \
	ck_assert_str_eq(got_, want); \
	free(got_); \
} while (0)

START_TEST(adding)
{
	struct redact *r = redact_new();
	ck_assert_int_eq(redact_add(r, "short"), -1);	/* under REDACT_MIN */
	ck_assert_int_eq(redact_add(r, "123456789"), -1);
	ck_assert_int_eq(redact_add(r, NULL), -1);
	ck_assert_int_eq(redact_add(r, "1234567890"), 1);
	ck_assert_int_eq(redact_add(r, "1234567890"), 0);	/* known */
	ck_assert_uint_eq(redact_count(r), 1);
	ck_assert_uint_eq(redact_count(NULL), 0);
	redact_free(r);
	redact_free(NULL);
}
END_TEST

START_TEST(only_the_secret_bytes)
{
	static const char *const s[] = { "sk-abcdefgh1234", NULL };
	struct redact *r = set_of(s);
	TEXT_IS(r, "Authorization: Bearer sk-abcdefgh1234", "Authorization: Bearer [redacted]");
	TEXT_IS(r, "sk-abcdefgh1234", "[redacted]");
	TEXT_IS(r, "a sk-abcdefgh1234 b sk-abcdefgh1234", "a [redacted] b [redacted]");
	TEXT_IS(r, "sk-abcdefgh1234sk-abcdefgh1234", "[redacted][redacted]");
	TEXT_IS(r, "sk-abcdefgh123 is not it", "sk-abcdefgh123 is not it");
	size_t n;
	ck_assert_ptr_null(redact_text(r, "nothing here", 12, &n));
	ck_assert_ptr_null(redact_text(NULL, "sk-abcdefgh1234", 15, &n));
	ck_assert(redact_hit(r, "x sk-abcdefgh1234", 17));
	ck_assert(!redact_hit(r, "x sk-abcdefgh123", 16));
	/* bytes after a NUL count: the length is what was given */
	ck_assert(redact_hit(r, "x\0sk-abcdefgh1234", 17));
	redact_free(r);
}
END_TEST

START_TEST(overlaps_leave_nothing)
{
	/* Replaced one after the other, the first marker would cut the
	 * second secret short and leave "ijkl" behind. */
	static const char *const s[] = { "abcdefghij", "ghijklmnop", NULL };
	struct redact *r = set_of(s);
	TEXT_IS(r, "xxabcdefghijklmnopyy", "xx[redacted]yy");
	TEXT_IS(r, "ghijklmnop abcdefghij", "[redacted] [redacted]");
	redact_free(r);
	static const char *const a[] = { "aaaaaaaaaa", NULL };
	r = set_of(a);
	TEXT_IS(r, "aaaaaaaaaaaaa!", "[redacted]!");	/* overlapping itself */
	redact_free(r);
	/* one secret inside another: the longer one goes whole */
	static const char *const b[] = { "tok-12345678", "Bearer tok-12345678", NULL };
	r = set_of(b);
	TEXT_IS(r, "h: Bearer tok-12345678.", "h: [redacted].");
	redact_free(r);
}
END_TEST

START_TEST(many_secrets)
{
	/* One pass finds any of hundreds, those sharing their first bytes too,
	 * at the very start and end of the text. */
	struct redact *r = redact_new();
	char k[32];
	for (int i = 0; i < 300; i++) {
		snprintf(k, sizeof(k), i % 2 ? "sk-same-%04d" : "tok%04d-other", i);
		ck_assert_int_eq(redact_add(r, k), 1);
	}
	TEXT_IS(r, "sk-same-0299", "[redacted]");
	TEXT_IS(r, "sk-same-0299 and tok0298-other", "[redacted] and [redacted]");
	TEXT_IS(r, "sk-same-0300 tok0299-other", "sk-same-0300 tok0299-other");
	ck_assert(redact_hit(r, "..tok0000-other", 15));
	ck_assert(!redact_hit(r, "sk-same", 7));	/* shorter than any secret */
	redact_free(r);
}
END_TEST

START_TEST(json_spelling)
{
	/* A secret with characters JSON escapes is found in serialized text
	 * by its escaped form, and in values by its bytes. */
	static const char *const s[] = { "pa\"ss\\wo\nrd-42", NULL };
	struct redact *r = set_of(s);
	json_t *v = json_pack("{s:s}", "pw", "x pa\"ss\\wo\nrd-42 y");
	char *t = json_dumps(v, JSON_COMPACT);
	ck_assert(!redact_hit(r, t, strlen(t)));	/* raw bytes: not in the text */
	ck_assert(redact_hit_json(r, t, strlen(t)));
	free(t);
	json_t *c = redact_json(r, v);
	ck_assert_str_eq(json_string_value(json_object_get(c, "pw")), "x [redacted] y");
	json_decref(c);
	json_decref(v);
	v = json_pack("{s:s}", "pw", "pa\"ss");
	t = json_dumps(v, JSON_COMPACT);
	ck_assert(!redact_hit_json(r, t, strlen(t)));
	free(t);
	json_decref(v);
	redact_free(r);

	/* Not UTF-8: no JSON string holds it, but text is still redacted. */
	static const char *const bad[] = { "\xff\xfe-binary-key", NULL };
	r = set_of(bad);
	TEXT_IS(r, "k=\xff\xfe-binary-key;", "k=[redacted];");
	ck_assert(!redact_hit_json(r, "{\"k\":\"x\"}", 9));
	redact_free(r);
}
END_TEST

START_TEST(json_copies_never_the_original)
{
	static const char *const s[] = { "sk-SECRET-0001", NULL };
	struct redact *r = set_of(s);
	json_t *args = json_pack("{s:s, s:{s:i}, s:[s,s]}", "path", "/tmp/sk-SECRET-0001",
	    "keep", "n", 1, "list", "plain", "sk-SECRET-0001");
	json_t *payload = json_pack("{s:s, s:O}", "tool", "echo", "arguments", args);
	json_t *c = redact_json(r, payload);

	/* what the tool holds is untouched */
	ck_assert_str_eq(json_string_value(json_object_get(args, "path")), "/tmp/sk-SECRET-0001");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(args, "list"), 1)),
	    "sk-SECRET-0001");
	/* the copy has only the secrets replaced, and shares what held none */
	ck_assert_ptr_ne(c, payload);
	json_t *ca = json_object_get(c, "arguments");
	ck_assert_ptr_ne(ca, args);
	ck_assert_str_eq(json_string_value(json_object_get(ca, "path")), "/tmp/[redacted]");
	ck_assert_ptr_eq(json_object_get(ca, "keep"), json_object_get(args, "keep"));
	ck_assert_ptr_eq(json_object_get(c, "tool"), json_object_get(payload, "tool"));
	json_t *cl = json_object_get(ca, "list");
	ck_assert_uint_eq(json_array_size(cl), 2);
	ck_assert_ptr_eq(json_array_get(cl, 0), json_array_get(json_object_get(args, "list"), 0));
	ck_assert_str_eq(json_string_value(json_array_get(cl, 1)), "[redacted]");
	ck_assert_uint_eq(json_object_size(ca), 3);
	json_decref(c);

	/* nothing to find: the value itself */
	json_t *plain = json_pack("{s:[i,s]}", "a", 1, "b");
	c = redact_json(r, plain);
	ck_assert_ptr_eq(c, plain);
	json_decref(c);
	json_decref(plain);
	ck_assert_ptr_null(redact_json(r, NULL));
	json_decref(payload);
	json_decref(args);
	redact_free(r);
}
END_TEST

START_TEST(json_keys)
{
	/* A secret used as a key goes too; two keys that become the same
	 * are both kept. */
	static const char *const s[] = { "sk-KEY-AAAA1", "sk-KEY-BBBB2", NULL };
	struct redact *r = set_of(s);
	json_t *v = json_pack("{s:i, s:i, s:i}", "sk-KEY-AAAA1", 1, "sk-KEY-BBBB2", 2,
	    "other", 3);
	json_t *c = redact_json(r, v);
	ck_assert_uint_eq(json_object_size(c), 3);
	ck_assert_ptr_nonnull(json_object_get(c, "[redacted]"));
	ck_assert_ptr_nonnull(json_object_get(c, "[redacted]#2"));
	ck_assert_int_eq(json_integer_value(json_object_get(c, "other")), 3);
	char *t = json_dumps(c, JSON_COMPACT);
	ck_assert_ptr_null(strstr(t, "sk-KEY"));
	free(t);
	json_decref(c);
	json_decref(v);
	redact_free(r);
}
END_TEST

START_TEST(cut_tails)
{
	static const char *const s[] = { "sk-abcdefgh1234", NULL };
	struct redact *r = set_of(s);
	const char *cut = "the key is sk-abcdef";	/* the rest was cut off */
	ck_assert_uint_eq(redact_tail(r, cut, strlen(cut)), strlen("the key is "));
	ck_assert_uint_eq(redact_tail(r, "nothing", 7), 7);
	ck_assert_uint_eq(redact_tail(r, "ends with s", 11), 10);	/* "s" could start it */
	ck_assert_uint_eq(redact_tail(r, "sk-abcdefgh1234", 15), 15);	/* whole: not a tail */
	ck_assert_uint_eq(redact_tail(NULL, "sk-ab", 5), 5);

	char buf[32];
	snprintf(buf, sizeof(buf), "x sk-abcdefgh1234 y sk-abc");
	size_t n = redact_buf(r, buf, strlen(buf), true);
	ck_assert_str_eq(buf, "x [redacted] y ");
	ck_assert_uint_eq(n, strlen(buf));
	snprintf(buf, sizeof(buf), "x sk-abcdefgh1234 y sk-abc");
	redact_buf(r, buf, strlen(buf), false);	/* not cut: kept */
	ck_assert_str_eq(buf, "x [redacted] y sk-abc");
	redact_free(r);
	/* The shortest secret is as long as the marker: a text never grows,
	 * so it still fits whatever bound it was held to. */
	static const char *const shortest[] = { "1234567890", NULL };
	r = set_of(shortest);
	char small[13] = "a 1234567890";
	n = redact_buf(r, small, strlen(small), false);
	ck_assert_uint_eq(n, 12);
	ck_assert_str_eq(small, "a [redacted]");
	redact_free(r);
}
END_TEST

/* Every line the log writes goes through its set, cut lines included. */
static char *
logged(const char *secret, int json, const char *fmt, const char *arg)
{
	char path[] = "/tmp/test_redact.XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	struct redact *r = redact_new();
	ck_assert_int_eq(redact_add(r, secret), 1);
	ck_assert_int_eq(log_init("test", LL_INFO, json, path), 0);
	log_set_redact(r);
	log_agent(LL_INFO, "alpha", fmt, arg);
	log_set_redact(NULL);
	log_init("test", LL_INFO, 0, NULL);
	redact_free(r);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	char *line = calloc(1, 20000);
	ck_assert_ptr_nonnull(fgets(line, 20000, f));
	fclose(f);
	unlink(path);
	return line;
}

START_TEST(log_lines)
{
	char *line = logged("sk-LOGSECRET-99", 0, "provider said: %s", "bad key sk-LOGSECRET-99!");
	ck_assert_ptr_nonnull(strstr(line, "provider said: bad key [redacted]!\n"));
	ck_assert_ptr_null(strstr(line, "LOGSECRET"));
	free(line);
	line = logged("sk-LOGSECRET-99", 1, "%s", "json sk-LOGSECRET-99");
	ck_assert_ptr_nonnull(strstr(line, "\"msg\":\"json [redacted]\""));
	free(line);

	/* A message past the line bound, with the secret across the cut:
	 * the bytes of it that were kept go too. */
	char *big = malloc(10000);
	memset(big, 'x', 10000);
	memcpy(big + 8185, "sk-LOGSECRET-99", 15);
	big[9999] = '\0';
	line = logged("sk-LOGSECRET-99", 0, "%s", big);
	ck_assert_ptr_null(strstr(line, "sk-L"));
	size_t n = strlen(line);
	ck_assert(n > 8000);
	ck_assert_str_eq(line + n - 3, "xx\n");
	free(line);
	free(big);
}
END_TEST

/* A rate-limited site keeps its last line to tell with the count: kept
 * redacted, and cut without a secret's first bytes. */
START_TEST(limited_lines)
{
	char path[] = "/tmp/test_redact.XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	struct redact *r = redact_new();
	ck_assert_int_eq(redact_add(r, "sk-LIMITED-0042"), 1);
	ck_assert_int_eq(log_init("test", LL_INFO, 0, path), 0);
	log_set_redact(r);
	char pad[300];
	memset(pad, 'y', 240);	/* "refused " + 240 + " ": the key across byte 255 */
	pad[240] = '\0';
	for (int i = 0; i < 3; i++)	/* the last one is kept, across its cut */
		log_limited(LL_WARN, "refused %s sk-LIMITED-0042", i < 2 ? "" : pad);
	log_limited_flush(INT64_MAX);
	log_set_redact(NULL);
	log_init("test", LL_INFO, 0, NULL);
	redact_free(r);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	char line[1024];
	int n = 0;
	while (fgets(line, sizeof(line), f)) {
		n++;
		ck_assert_msg(strstr(line, "sk-L") == NULL, "logged: %s", line);
	}
	fclose(f);
	unlink(path);
	ck_assert_int_eq(n, 2);	/* the first, then the count with the last */
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("redact");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, adding);
	tcase_add_test(tc, only_the_secret_bytes);
	tcase_add_test(tc, overlaps_leave_nothing);
	tcase_add_test(tc, many_secrets);
	tcase_add_test(tc, json_spelling);
	tcase_add_test(tc, json_copies_never_the_original);
	tcase_add_test(tc, json_keys);
	tcase_add_test(tc, cut_tails);
	tcase_add_test(tc, log_lines);
	tcase_add_test(tc, limited_lines);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
