/*
 * libFuzzer target: the configuration loader, YAML text in -- the tree
 * builder and its alias bounds (conf/yamltree.c), interpolation, every
 * table of the schema walk (conf/schema.c, config.c), providers and
 * command-tool schemas (conf/provider.c, argschema.c), the spec's bounds.
 * `make fuzz` runs it with -rss_limit_mb and -timeout, so an input that
 * expands (an alias bomb) or takes long is a finding, not just a crash.
 * A loaded config is also duplicated and freed agent by agent, as a
 * reload does (agent_conf_dup), for the sanitizers to see.
 */
#include <stdint.h>
#include "common/log.h"
#include "conf/config.h"

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
	return 0;
}
