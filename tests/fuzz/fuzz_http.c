/*
 * libFuzzer target: what the HTTP API decodes itself (supervisor/api.c) --
 * the route and its {id} from a method and a path, the query parameters
 * into a command's typed args, the body into the arg its route names.
 * Input: "METHOD\nPATH\nk=v&k2=v2\nBODY..." (a missing line is empty);
 * parameters as MHD hands them over, already unescaped.  Whatever comes
 * in, decoding ends with an answer or an error, never a crash or a leak,
 * and args it accepts are of the types the command's rows say.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "proto/cmd.h"
#include "supervisor/api.h"

static char *
line(const char **p, const char *end)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	const char *stop = nl ? nl : end;
	char *s = strndup(*p, (size_t)(stop - *p));
	*p = nl ? nl + 1 : end;
	return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	char *method = line(&p, end), *path = line(&p, end), *query = line(&p, end);
	struct api_param q[16];
	size_t n = 0;
	struct api_error err;
	char *agent = NULL;
	json_t *args = NULL;

	for (char *save, *kv = strtok_r(query, "&", &save); kv && n < 16; kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');
		if (eq)
			*eq = '\0';
		q[n++] = (struct api_param){ kv, eq ? eq + 1 : NULL };
	}
	const struct route *r = api_route(method, path, &agent, &err);
	if (r && api_args(r, q, n, p, (size_t)(end - p), &agent, &args, &err) == 0 && r->cmd >= 0) {
		const char *k;
		json_t *v;
		json_object_foreach(args, k, v) {
			const struct cmd_arg *row = cmd_arg(&cmd_defs[r->cmd], k);
			if (row == NULL || (row->type == JSON_TRUE ? !json_is_boolean(v) :
			    json_typeof(v) != row->type))
				abort();	/* an arg the catalogue does not type so */
		}
	}
	if (r == NULL && err.status != 404 && err.status != 405)
		abort();
	json_t *e = r ? NULL : api_error_json(&err);
	json_decref(e);
	json_decref(args);
	free(agent);
	free(method);
	free(path);
	free(query);
	return 0;
}
