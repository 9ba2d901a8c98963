/*
 * libFuzzer target: the configuration loader, YAML text in -- the tree
 * builder and its alias bounds (conf/yamltree.c), interpolation, every
 * table of the schema walk (conf/schema.c, config.c), providers and
 * command-tool schemas (conf/provider.c, argschema.c), the spec's bounds.
 * `make fuzz` runs it with -rss_limit_mb and -timeout, so an input that
 * expands (an alias bomb) or takes long is a finding, not just a crash.
 * A loaded config is also duplicated and freed agent by agent, as a
 * reload does (agent_conf_dup), for the sanitizers to see.  An input that
 * is a JSON object is also an agent created over the API: checked through
 * the tree made from JSON (config_agent_from_json), and written as YAML
 * and read back (export's round trip), which must give the same value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "conf/config.h"
#include "conf/yamltree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct config *c;
	struct conf_errors e;

	if (!ready) {
		log_init("fuzz_config", LL_ERROR, 0, NULL);
		ready = 1;
	}
	if (config_load_buffer("fuzz.yaml", (const char *)data, size, &c, &e) == 0) {
		for (size_t i = 0; i < c->nagents; i++)
			agent_conf_free(agent_conf_dup(&c->agents[i]));
		config_free(c);
	}
	conf_errors_free(&e);
	json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (json_is_object(body)) {
		struct agent_conf *a;
		json_t *tasks = json_object();
		if (config_agent_from_json(body, tasks, &a, &e) == 0)
			agent_conf_free(a);
		conf_errors_free(&e);
		json_decref(tasks);
		char *yaml = yaml_from_json(body), err[256];
		struct ynode *root = yaml ? ytree_parse(yaml, strlen(yaml), err, sizeof(err)) : NULL;
		json_t *back = root ? ytree_to_json(root, err, sizeof(err)) : NULL;
		if (yaml && !json_equal(body, back))
			abort();	/* export's YAML does not read back as what it was */
		json_decref(back);
		ytree_free(root);
		free(yaml);
	}
	json_decref(body);
	return 0;
}
