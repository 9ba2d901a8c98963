/*
 * Unit tests: the JSON Schema subset command tools' arguments are held to
 * (conf/argschema.c) -- what the loader refuses, with the pointer it gives
 * for the position, and what the validator enforces, keyword by keyword.
 */
#include <check.h>
#include "tests/unit/check_main.h"
#include <string.h>
#include "conf/argschema.h"

static void
refused(const char *schema, const char *at, const char *why)
{
	char err[512], where[256];
	json_t *s = json_loads(schema, 0, NULL);
	ck_assert_msg(s != NULL, "test schema does not parse: %s", schema);
	ck_assert_msg(argschema_check(s, err, sizeof(err), where, sizeof(where)) == -1,
	    "accepted: %s", schema);
	ck_assert_str_eq(where, at);
	ck_assert_msg(strstr(err, why) != NULL, "%s: got \"%s\"", schema, err);
	json_decref(s);
}

static json_t *
accepted(const char *schema)
{
	char err[512], where[256];
	json_t *s = json_loads(schema, 0, NULL);
	ck_assert_msg(argschema_check(s, err, sizeof(err), where, sizeof(where)) == 0,
	    "%s refused: %s at %s", schema, err, where);
	return s;
}

/* args (JSON) against schema: NULL when valid, else the error. */
static char *
check_args(const json_t *schema, const char *args)
{
	static char err[512];
	json_t *a = json_loads(args, JSON_ALLOW_NUL, NULL);
	ck_assert_msg(a != NULL, "test args do not parse: %s", args);
	int rc = argschema_validate(schema, a, err, sizeof(err));
	json_decref(a);
	return rc == 0 ? NULL : err;
}

static void
valid(const json_t *schema, const char *args)
{
	char *err = check_args(schema, args);
	ck_assert_msg(err == NULL, "%s refused: %s", args, err);
}

static void
invalid(const json_t *schema, const char *args, const char *want)
{
	char *err = check_args(schema, args);
	ck_assert_msg(err != NULL, "%s accepted", args);
	ck_assert_str_eq(err, want);
}

START_TEST(refused_at_load)
{
	refused("{\"type\":\"object\",\"format\":\"x\"}", "/format",
	    "keyword format is not enforced for command tools");
	refused("{\"properties\":{\"a\":{\"type\":\"string\",\"format\":\"email\"}}}",
	    "/properties/a/format", "keyword format is not enforced");
	refused("{\"properties\":{\"a\":{\"items\":{\"oneOf\":[]}}}}", "/properties/a/items/oneOf",
	    "keyword oneOf is not enforced");
	refused("{\"type\":\"string\"}", "/type", "type must be object");
	refused("{\"properties\":{\"a\":{\"type\":\"str\"}}}", "/properties/a/type",
	    "type must be string, integer, number, boolean, array, object or null, not str");
	refused("{\"additionalProperties\":{\"type\":\"string\"}}", "/additionalProperties",
	    "additionalProperties must be true or false");
	refused("{\"properties\":{\"a\":{\"enum\":[]}}}", "/properties/a/enum", "enum must be a list");
	refused("{\"properties\":{\"a\":{\"minLength\":5,\"maxLength\":2}}}",
	    "/properties/a/minLength", "minLength is above maxLength");
	refused("{\"properties\":{\"a\":{\"maxLength\":-1}}}", "/properties/a/maxLength",
	    "must be a whole number");
	refused("{\"required\":[1]}", "/required", "required must be a list of argument names");
	/* patterns POSIX would read differently from ECMA-262, or not at all */
	refused("{\"properties\":{\"a\":{\"pattern\":\"^\\\\d+$\"}}}", "/properties/a/pattern",
	    "\\d is not supported");
	refused("{\"properties\":{\"a\":{\"pattern\":\"\\\\w\"}}}", "/properties/a/pattern",
	    "\\w is not supported");
	refused("{\"properties\":{\"a\":{\"pattern\":\"(a)\\\\1\"}}}", "/properties/a/pattern",
	    "\\1 is not supported");
	refused("{\"properties\":{\"a\":{\"pattern\":\"[\\\\d]\"}}}", "/properties/a/pattern",
	    "inside [...] a backslash is only allowed as \\\\");
	refused("{\"properties\":{\"a\":{\"pattern\":\"[]a]\"}}}", "/properties/a/pattern",
	    "starts with ]");
	refused("{\"properties\":{\"a\":{\"pattern\":\"(?=a)b\"}}}", "/properties/a/pattern",
	    "does not compile");
	refused("{\"properties\":{\"a\":{\"pattern\":\"a{\"}}}", "/properties/a/pattern",
	    "does not compile");
	refused("{\"properties\":{\"a\":{\"pattern\":\"(\"}}}", "/properties/a/pattern",
	    "does not compile");
	json_decref(accepted("{\"type\":\"object\",\"description\":\"d\",\"title\":\"t\","
	    "\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"properties\":"
	    "{\"a\":{\"type\":[\"string\",\"null\"],\"default\":\"x\",\"examples\":[\"y\"],"
	    "\"pattern\":\"^[[:digit:]]+\\\\.[a-z]*$\"}}}"));
}
END_TEST

START_TEST(types_required_enum_additional)
{
	json_t *s = accepted("{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\","
	    "\"enum\":[\"alpha\",\"beta\"]},\"n\":{\"type\":\"integer\"},\"x\":{\"type\":"
	    "[\"number\",\"null\"]}},\"required\":[\"name\"],\"additionalProperties\":false}");
	valid(s, "{\"name\":\"alpha\"}");
	valid(s, "{\"name\":\"beta\",\"n\":3,\"x\":null}");
	valid(s, "{\"name\":\"beta\",\"n\":3.0,\"x\":1.5}");	/* 3.0 is an integer */
	invalid(s, "{\"name\":\"gamma\"}", "argument \"name\" is not one of the allowed values");
	invalid(s, "{\"name\":5}", "argument \"name\" must be of type string");
	invalid(s, "{\"name\":\"alpha\",\"n\":2.5}", "argument \"n\" must be of type integer");
	invalid(s, "{\"name\":\"alpha\",\"x\":\"1\"}", "argument \"x\" must be of type number or null");
	invalid(s, "{}", "missing argument \"name\"");
	invalid(s, "{\"name\":\"alpha\",\"evil\":1}", "unknown argument \"evil\"");
	char err[64];
	json_t *notobj = json_pack("[]");
	ck_assert_int_eq(argschema_validate(s, notobj, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "arguments must be an object");
	json_decref(notobj);
	json_decref(s);
}
END_TEST

/* The traversal the issue reproduced: pattern ^[a-z]+$ must stop it. */
START_TEST(patterns)
{
	json_t *s = accepted("{\"properties\":{\"name\":{\"type\":\"string\",\"pattern\":\"^[a-z]+$\"},"
	    "\"file\":{\"pattern\":\"^[a-z]+\\\\.txt$\"},\"dot\":{\"pattern\":\"^a.b$\"},"
	    "\"free\":{\"pattern\":\"ab\"}}}");
	valid(s, "{\"name\":\"passwd\"}");
	invalid(s, "{\"name\":\"../../../../etc/passwd\"}",
	    "argument \"name\" does not match the pattern ^[a-z]+$");
	invalid(s, "{\"name\":\"abc\\n\"}", "argument \"name\" does not match the pattern ^[a-z]+$");
	invalid(s, "{\"name\":\"abc\\nxyz\"}", "argument \"name\" does not match the pattern ^[a-z]+$");
	invalid(s, "{\"name\":\"abc\\u0000/../x\"}", "argument \"name\" contains a NUL byte");
	valid(s, "{\"file\":\"notes.txt\"}");
	invalid(s, "{\"file\":\"notesxtxt\"}", "argument \"file\" does not match the pattern "
	    "^[a-z]+\\.txt$");
	valid(s, "{\"dot\":\"a\xe2\x82\xac" "b\"}");		/* . is one character, as in ECMA */
	invalid(s, "{\"dot\":\"a\\nb\"}", "argument \"dot\" does not match the pattern ^a.b$");
	valid(s, "{\"free\":\"xxabyy\"}");			/* unanchored: a search */
	valid(s, "{\"free\":7}");				/* a pattern says nothing of numbers */
	json_decref(s);
}
END_TEST

START_TEST(lengths_bounds_items)
{
	json_t *s = accepted("{\"properties\":{\"s\":{\"minLength\":2,\"maxLength\":3},"
	    "\"n\":{\"minimum\":1,\"maximum\":10.5},\"dirs\":{\"type\":\"array\",\"items\":"
	    "{\"type\":\"string\",\"pattern\":\"^/srv/\"}},\"o\":{\"properties\":{\"k\":"
	    "{\"enum\":[1,2]}},\"required\":[\"k\"]}}}");
	valid(s, "{\"s\":\"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\"}");	/* 3 characters, 9 bytes */
	invalid(s, "{\"s\":\"abcd\"}", "argument \"s\" is longer than 3 characters");
	invalid(s, "{\"s\":\"\xe2\x82\xac\"}", "argument \"s\" is shorter than 2 characters");
	valid(s, "{\"n\":1}");
	valid(s, "{\"n\":10.5}");
	invalid(s, "{\"n\":0}", "argument \"n\" must be at least 1");
	invalid(s, "{\"n\":11}", "argument \"n\" must be at most 10.5");
	valid(s, "{\"dirs\":[\"/srv/a\",\"/srv/b\"]}");
	invalid(s, "{\"dirs\":[\"/srv/a\",\"/etc\"]}",
	    "argument \"dirs[1]\" does not match the pattern ^/srv/");
	invalid(s, "{\"dirs\":[\"/srv/a\",7]}", "argument \"dirs[1]\" must be of type string");
	valid(s, "{\"o\":{\"k\":2}}");
	invalid(s, "{\"o\":{\"k\":3}}", "argument \"o.k\" is not one of the allowed values");
	invalid(s, "{\"o\":{}}", "missing argument \"o.k\"");
	json_decref(s);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("argschema");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, refused_at_load);
	tcase_add_test(tc, types_required_enum_additional);
	tcase_add_test(tc, patterns);
	tcase_add_test(tc, lengths_bounds_items);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
