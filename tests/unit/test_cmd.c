/*
 * Unit tests: the command catalogue (proto/cmd.c) that agentd, agentctl and
 * the HTTP API share -- every command found by its name and only by it, and
 * every arg row checked at its bounds: the wrong type, one past each end,
 * a string or an object one byte over, an object one level too deep.
 */
#include <check.h>
#include "tests/unit/check_main.h"
#include <string.h>
#include "common/jsonmp.h"
#include "common/limits.h"
#include "proto/cmd.h"
#include "proto/msg.h"

START_TEST(names_once)
{
	for (int i = 0; i < CMD__COUNT; i++) {
		ck_assert_ptr_nonnull(cmd_defs[i].name);
		ck_assert_ptr_nonnull(cmd_defs[i].args);
		ck_assert_int_eq(cmd_lookup(cmd_defs[i].name), i);
		for (int k = 0; k < i; k++)
			ck_assert_str_ne(cmd_defs[i].name, cmd_defs[k].name);
	}
	ck_assert_int_eq(cmd_lookup("statu"), -1);
	ck_assert_int_eq(cmd_lookup(""), -1);
	ck_assert_int_eq(cmd_lookup(NULL), -1);
	ck_assert_int_eq(cmd_defs[CMD_RUN].agent, CA_ONE);
	ck_assert_int_eq(cmd_defs[CMD_EVENTS].agent, CA_FILTER);
	ck_assert_int_eq(cmd_defs[CMD_STATUS].agent, CA_MAYBE);
	ck_assert_int_eq(cmd_defs[CMD_RELOAD].agent, CA_NONE);
}
END_TEST

static int
check(int cmd, json_t *args, const char **bad)
{
	const struct cmd_arg *row = NULL;
	char err[256];
	int rc = cmd_check_args(&cmd_defs[cmd], args, &row, err, sizeof(err));
	*bad = row ? row->name : NULL;
	json_decref(args);
	return rc;
}

static json_t *
nested(int depth)
{
	json_t *v = json_integer(1);
	for (int i = 0; i < depth; i++)
		v = json_pack("{s:o}", "k", v);
	return v;
}

START_TEST(bounds)
{
	const char *bad;
	char big[FILTER_MAX + 2];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';

	ck_assert_int_eq(check(CMD_EVENTS, NULL, &bad), 0);
	ck_assert_int_eq(check(CMD_EVENTS, json_pack("{s:i, s:i, s:b, s:s}", "limit", 1, "after", 0,
	    "follow", 1, "type", "x"), &bad), 0);
	ck_assert_int_eq(check(CMD_EVENTS, json_pack("{s:i}", "limit", 0), &bad), -1);
	ck_assert_str_eq(bad, "limit");
	ck_assert_int_eq(check(CMD_EVENTS, json_pack("{s:i}", "after", -1), &bad), -1);
	ck_assert_str_eq(bad, "after");
	ck_assert_int_eq(check(CMD_EVENTS, json_pack("{s:s}", "limit", "5"), &bad), -1);
	ck_assert_int_eq(check(CMD_EVENTS, json_pack("{s:i}", "follow", 1), &bad), -1);
	ck_assert_str_eq(bad, "follow");
	big[FILTER_MAX] = '\0';	/* at the bound: in */
	ck_assert_int_eq(check(CMD_EVENTS, json_pack("{s:s}", "session_id", big), &bad), 0);
	big[FILTER_MAX] = 'x';	/* one over */
	ck_assert_int_eq(check(CMD_EVENTS, json_pack("{s:s}", "session_id", big), &bad), -1);
	ck_assert_str_eq(bad, "session_id");
	ck_assert_int_eq(check(CMD_MEMORY, json_pack("{s:i}", "limit", 10000), &bad), 0);
	ck_assert_int_eq(check(CMD_MEMORY, json_pack("{s:i}", "limit", 10001), &bad), -1);
	ck_assert_int_eq(check(CMD_RUN, json_pack("{s:o}", "kwargs", nested(VALUE_DEPTH_MAX - 1)),
	    &bad), 0);
	ck_assert_int_eq(check(CMD_RUN, json_pack("{s:o}", "kwargs", nested(VALUE_DEPTH_MAX + 1)),
	    &bad), -1);
	ck_assert_str_eq(bad, "kwargs");
	ck_assert_int_eq(check(CMD_RUN, json_pack("{s:[]}", "kwargs"), &bad), -1);
	/* kwargs of exactly KWARGS_MAX compact bytes, then one more */
	char *pad = malloc(KWARGS_MAX);
	memset(pad, 'a', KWARGS_MAX);
	size_t room = KWARGS_MAX - strlen("{\"p\":\"\"}");
	json_t *kw = json_pack("{s:s%}", "p", pad, room);
	ck_assert_uint_eq(json_compact_size(kw), KWARGS_MAX);
	ck_assert_int_eq(check(CMD_RUN, json_pack("{s:O}", "kwargs", kw), &bad), 0);
	json_decref(kw);
	kw = json_pack("{s:s%}", "p", pad, room + 1);
	ck_assert_int_eq(check(CMD_RUN, json_pack("{s:o}", "kwargs", kw), &bad), -1);
	free(pad);
	/* an arg a command does not take is no concern of its */
	ck_assert_int_eq(check(CMD_STATUS, json_pack("{s:s}", "limit", "x"), &bad), 0);
	ck_assert_ptr_null(cmd_arg(&cmd_defs[CMD_STATUS], "limit"));
	ck_assert_ptr_nonnull(cmd_arg(&cmd_defs[CMD_MEMORY], "memory_type"));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("cmd");
	TCase *tc = tcase_create("catalogue");
	tcase_add_test(tc, names_once);
	tcase_add_test(tc, bounds);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
