/*
 * Unit tests: the HTTP API's routing and decoding (supervisor/api.c) --
 * every row of the route table reached by its own path and method and by
 * no other, 404 and 405 (with the methods the path takes), query
 * parameters typed by the command's catalogue rows, refused when unknown,
 * repeated or malformed, bodies as JSON into the arg the route names, and
 * a command's answer codes as statuses with where the fault is.
 */
#include <check.h>
#include "tests/unit/check_main.h"
#include <stdlib.h>
#include <string.h>
#include "common/limits.h"
#include "proto/msg.h"
#include "supervisor/api.h"

/* A row's path with its {id} filled in. */
static void
concrete(const char *pattern, char *out, size_t len)
{
	const char *id = strstr(pattern, "{id}");
	if (id)
		snprintf(out, len, "%.*sagent-1%s", (int)(id - pattern), pattern, id + 4);
	else
		snprintf(out, len, "%s", pattern);
}

START_TEST(every_route_by_its_path)
{
	struct api_error e;
	char path[256], *agent;
	for (const struct route *r = api_routes; r->method; r++) {
		concrete(r->path, path, sizeof(path));
		const struct route *got = api_route(r->method, path, &agent, &e);
		ck_assert_msg(got == r, "%s %s", r->method, path);
		if (strstr(r->path, "{id}"))
			ck_assert_str_eq(agent, "agent-1");
		else
			ck_assert_ptr_null(agent);
		free(agent);
		if (!strcmp(r->method, "GET")) {
			ck_assert_ptr_eq(api_route("HEAD", path, &agent, &e), r);
			free(agent);
		}
		/* the same path by a method no row gives it */
		ck_assert_ptr_null(api_route("PUT", path, &agent, &e));
		ck_assert_int_eq(e.status, 405);
		ck_assert_str_eq(e.code, "method_not_allowed");
		ck_assert_ptr_nonnull(strstr(e.allow, r->method));
		ck_assert_ptr_null(agent);
	}
}
END_TEST

/* A dashboard session's cookie stands for the token on the page, its forms
 * and the stream it follows only: never on the JSON API's actions, which a
 * page elsewhere could otherwise post to with the browser's cookie. */
START_TEST(cookie_routes)
{
	static const char *const cookie_ok[] = { "/", "/login", "/ui/agents/{id}/pause",
		"/ui/agents/{id}/resume", "/ui/agents/{id}/run", "/ui/agents/{id}/restart",
		"/v1/events/stream" };
	size_t seen = 0;
	for (const struct route *r = api_routes; r->method; r++) {
		bool listed = false;
		for (size_t i = 0; i < sizeof(cookie_ok) / sizeof(cookie_ok[0]); i++)
			listed |= !strcmp(r->path, cookie_ok[i]);
		ck_assert_msg(!(r->flags & (R_COOKIE | R_PAGE)) || listed, "%s takes the cookie", r->path);
		ck_assert_msg(!(r->flags & R_LOGIN) || (r->flags & R_PAGE), "%s", r->path);
		ck_assert_msg(!(r->flags & R_PAGE) || r->fn, "%s", r->path);
		seen += listed;
	}
	ck_assert_uint_eq(seen, sizeof(cookie_ok) / sizeof(cookie_ok[0]));
}
END_TEST

START_TEST(not_found)
{
	static const char *const paths[] = { "/ui", "/ui/agents/a", "/login/", "/v1", "/v1/status/", "/v1/agents/",
		"/v1/agents//pause", "/v1/agents/a/b", "/v1/agents/a/pause/x", "/V1/status",
		"/v1/statusx", "/healthz/", "" };
	struct api_error e;
	char *agent;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		ck_assert_msg(api_route("GET", paths[i], &agent, &e) == NULL, "%s", paths[i]);
		ck_assert_msg(e.status == 404, "%s: %d", paths[i], e.status);
		ck_assert_str_eq(e.code, "not_found");
	}
	ck_assert_ptr_null(api_route("GET", "/v1/agents/a/pause", &agent, &e));
	ck_assert_int_eq(e.status, 405);
	ck_assert_str_eq(e.allow, "POST");
	char longname[FILTER_MAX + 32] = "/v1/agents/";
	memset(longname + strlen(longname), 'a', FILTER_MAX + 1);
	ck_assert_ptr_null(api_route("GET", longname, &agent, &e));
	ck_assert_int_eq(e.status, 404);
}
END_TEST

static const struct route *
route(const char *method, const char *path)
{
	struct api_error e;
	char *agent;
	const struct route *r = api_route(method, path, &agent, &e);
	free(agent);
	ck_assert_ptr_nonnull(r);
	return r;
}

static int
decode(const struct route *r, const char *query, const char *body, json_t **args,
    char **agent, struct api_error *e)
{
	struct api_param q[8];
	char buf[512];
	size_t n = 0;
	snprintf(buf, sizeof(buf), "%s", query);
	for (char *save, *p = strtok_r(buf, "&", &save); p && n < 8; p = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(p, '=');
		if (eq)
			*eq = '\0';
		q[n++] = (struct api_param){ p, eq ? eq + 1 : NULL };
	}
	*agent = NULL;
	return api_args(r, q, n, body, strlen(body), agent, args, e);
}

START_TEST(query_and_body)
{
	const struct route *ev = route("GET", "/v1/events"), *run = route("POST", "/v1/agents/a/run");
	const struct route *mem = route("GET", "/v1/agents/a/memory");
	const struct route *pause = route("POST", "/v1/agents/a/pause");
	struct api_error e;
	json_t *args;
	char *agent;

	ck_assert_int_eq(decode(ev, "after=5&limit=10&type=t&session_id=s&agent=x", "", &args,
	    &agent, &e), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(args, "after")), 5);
	ck_assert_int_eq(json_integer_value(json_object_get(args, "limit")), 10);
	ck_assert_str_eq(json_string_value(json_object_get(args, "type")), "t");
	ck_assert_str_eq(json_string_value(json_object_get(args, "session_id")), "s");
	ck_assert_str_eq(agent, "x");
	ck_assert_ptr_null(json_object_get(args, "agent"));
	json_decref(args);
	free(agent);
	ck_assert_int_eq(decode(ev, "", "", &args, &agent, &e), 0);
	ck_assert_ptr_null(args);

	static const struct { const char *q, *param; } bad[] = {
		{ "limit=ten", "limit" }, { "limit=", "limit" }, { "limit", "limit" },
		{ "limit=1x", "limit" }, { "limit=99999999999999999999", "limit" },
		{ "limit= 5", "limit" }, { "colour=red", "colour" }, { "after=1&after=2", "after" },
		{ "agent=", "agent" }, { "agent=a&agent=b", "agent" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(decode(ev, bad[i].q, "", &args, &agent, &e) == -1, "%s", bad[i].q);
		ck_assert_int_eq(e.status, 400);
		ck_assert_str_eq(e.where, "parameter");
		ck_assert_msg(!strcmp(e.at, bad[i].param), "%s: at %s", bad[i].q, e.at);
		free(agent);
	}
	ck_assert_int_eq(decode(mem, "type=episodic&limit=3", "", &args, &agent, &e), 0);
	ck_assert_str_eq(json_string_value(json_object_get(args, "memory_type")), "episodic");
	json_decref(args);
	ck_assert_int_eq(decode(pause, "x=1", "", &args, &agent, &e), -1);
	ck_assert_int_eq(e.status, 400);

	ck_assert_int_eq(decode(run, "", "{\"q\": [1, 2]}", &args, &agent, &e), 0);
	ck_assert(json_is_array(json_object_get(json_object_get(args, "kwargs"), "q")));
	json_decref(args);
	ck_assert_int_eq(decode(run, "", "", &args, &agent, &e), 0);
	ck_assert_ptr_null(args);
	ck_assert_int_eq(decode(run, "", "{\"q\": ", &args, &agent, &e), -1);
	ck_assert_int_eq(e.status, 400);
	ck_assert_ptr_nonnull(strstr(e.message, "not JSON"));
	ck_assert_int_eq(decode(run, "", "[1]", &args, &agent, &e), -1);
	ck_assert_str_eq(e.where, "pointer");
	ck_assert_str_eq(e.at, "");
	ck_assert_int_eq(decode(run, "", "{\"a\": 1, \"a\": 2}", &args, &agent, &e), -1);
	ck_assert_int_eq(decode(pause, "", "{\"ignored\": true}", &args, &agent, &e), 0);
	ck_assert_ptr_null(args);
	ck_assert_int_eq(decode(pause, "", "nope", &args, &agent, &e), -1);
}
END_TEST

START_TEST(answer_codes)
{
	static const struct { int code, status; const char *word; } m[] = {
		{ RESP_REFUSED, 409, "conflict" }, { RESP_BAD_REQUEST, 400, "bad_request" },
		{ RESP_UNKNOWN_AGENT, 404, "unknown_agent" }, { RESP_UNAVAILABLE, 503, "unavailable" },
		{ 99, 409, "conflict" },
	};
	const struct route *run = route("POST", "/v1/agents/a/run"), *mem = route("GET", "/v1/agents/a/memory");
	struct api_error e;
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		struct cmd_result r = { .code = m[i].code, .error = "why" };
		api_cmd_error(run, &r, &e);
		ck_assert_int_eq(e.status, m[i].status);
		ck_assert_str_eq(e.code, m[i].word);
		ck_assert_str_eq(e.message, "why");
		ck_assert_ptr_null(e.where);
	}
	struct cmd_result r = { .code = RESP_BAD_REQUEST, .error = "deep", .bad_arg = "kwargs" };
	api_cmd_error(run, &r, &e);
	ck_assert_str_eq(e.where, "pointer");
	r.bad_arg = "memory_type";
	api_cmd_error(mem, &r, &e);
	ck_assert_str_eq(e.where, "parameter");
	ck_assert_str_eq(e.at, "type");
	json_t *j = api_error_json(&e);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "parameter")), "type");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "bad_request");
	json_decref(j);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("api");
	TCase *tc = tcase_create("routes");
	tcase_add_test(tc, every_route_by_its_path);
	tcase_add_test(tc, cookie_routes);
	tcase_add_test(tc, not_found);
	tcase_add_test(tc, query_and_body);
	tcase_add_test(tc, answer_codes);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
