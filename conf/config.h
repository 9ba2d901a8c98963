/*
 * config: the configuration model and its YAML loader.
 *
 * The file has three top-level blocks:
 *   background_agents:  the seed's map, read unchanged (agent name -> agent)
 *   agentd:             optional global settings
 *   tasks:              optional task registry (task_id -> description, config)
 *
 * Every key of every block is a row of a table (conf/config.c) with its
 * type, bounds or choices and default, checked at load: an unknown key, a
 * wrong type, a value out of bounds, an unknown provider, a command tool's
 * schema keyword the worker does not enforce -- each is recorded as
 * "file:line:column: message" and loading goes on to report as many as it
 * can, then fails.  Warnings (an api_key_env not set here, a user this
 * host does not have) do not fail the load; --check-config prints them.
 * The file must be a regular file of at most CONFIG_FILE_MAX bytes of
 * text; aliases expand within CONFIG_NODES_MAX nodes (common/limits.h).
 *
 * The seed's environment variables override the file where the seed names
 * them: EVENT_STORE_TYPE, MEMORY_STORE_TYPE, REDIS_HOST, REDIS_PORT,
 * REDIS_DB, REDIS_STREAM_KEY (and REDIS_PASSWORD, ours), QDRANT_HOST and
 * QDRANT_PORT (which replace agentd.qdrant.url when set).
 *
 * Supervisor-side settings (schedule, retries, restart policy, limits,
 * user/group, env) are parsed into struct agent_conf.  What the worker runs
 * travels as agent_conf.spec, which is normalized: the worker may rely on
 * every key below being present with the type shown (unless marked
 * optional), already checked, and parses nothing.  Durations are integer
 * milliseconds under the key's name plus "_ms".
 *
 *   name, agent_id          str
 *   description             str (optional)
 *   debug                   bool
 *   system_instruction      str ("" when not given)
 *   task_config             object: inline, or the named task's config with
 *                           the inline one merged over it
 *   task_description        str (optional: the named task's)
 *   memory_limit            int >= 0 (episodic items given as context; 0: none)
 *   run_model               "always" | "on_change"
 *   watch                   [{tool: str, args: object}] (non-empty for on_change)
 *   local_tools             optional (absent: every built-in); a list of
 *                           built-in names (str) and command tools:
 *                           {name, description: str, inputSchema: object
 *                           (checked by conf/argschema.h), command: [str]
 *                           (1+), timeout_ms: int > 0, output_max: int > 0,
 *                           cwd: str (optional, absolute), env: [str]}
 *   mcp_tools               [{name, transport_type: "stdio" |
 *                           "streamable_http" | "sse", command: str (stdio),
 *                           url: str (http ones), args: [str], env: {str: str},
 *                           headers: {str: str}, timeout_ms, init_timeout_ms}]
 *                           names unique
 *   agent_config            {max_steps, request_limit, total_tokens_limit (0:
 *                           none), tool_output_max: int, tool_call_timeout_ms
 *                           (0: none), read_dirs: [absolute path]}
 *   model_config            optional: {provider (its name), wire: "openai" |
 *                           "anthropic", model: str, url: the endpoint to POST
 *                           to, auth_header: the header up to the key
 *                           ("Authorization: Bearer "), headers: [str] more to
 *                           send, api_key_env: str or api_key_file: str (where
 *                           agentd reads the key), api_key_required: bool,
 *                           max_tokens: int, max_context_length: int (0: no
 *                           trim), request_timeout_ms: int > 0, temperature,
 *                           top_p: number (optional)}
 *
 * The spec fits what a worker's config message can carry: at most
 * SPEC_MAX bytes of compact JSON, nested at most VALUE_DEPTH_MAX levels.
 */
#ifndef AGENTD_CONFIG_H
#define AGENTD_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/cron.h"

enum sched_kind {
	SCHED_MANUAL = 0,  /* no interval: runs only on `agentctl run` */
	SCHED_INTERVAL,
	SCHED_CRON,
};

enum overlap_policy { OVERLAP_SKIP = 0, OVERLAP_QUEUE, OVERLAP_CANCEL_PREVIOUS };
enum restart_policy { RESTART_ALWAYS = 0, RESTART_ON_FAILURE, RESTART_NEVER };

struct limits {                /* 0 means "not set" for each */
	int64_t memory;        /* bytes: RLIMIT_AS and cgroup memory.max */
	int64_t nofile;        /* RLIMIT_NOFILE */
	int64_t nproc;         /* RLIMIT_NPROC and cgroup pids.max */
	int64_t cpu_ms;        /* CPU time per run: RLIMIT_CPU (rounded up to s) */
	double cpu_quota;      /* cores, e.g. 0.5: cgroup cpu.max */
};

struct agent_conf {
	char *name;            /* key in background_agents */
	char *agent_id;        /* seed's agent_id; defaults to name */

	enum sched_kind sched;
	int64_t interval_ms;   /* SCHED_INTERVAL */
	struct cron cron;      /* SCHED_CRON */
	char *schedule_text;   /* the interval as written, for status */
	bool run_on_start;     /* default false: first run one interval after start */
	enum overlap_policy overlap;

	int max_retries;       /* seed default 3 */
	int64_t retry_delay_ms;     /* seed's retry_delay; default 60s */
	int64_t retry_max_delay_ms; /* cap on the exponential growth; default 1h */
	int64_t run_timeout_ms;     /* 0: none; default 1h */

	enum restart_policy restart;
	int restart_max;            /* budget: restarts within restart_window; default 5 */
	int64_t restart_window_ms;  /* default 60s */
	int64_t backoff_ms;         /* first crash-loop delay; default 1s */
	int64_t backoff_max_ms;     /* default 60s */
	int64_t stable_ms;          /* uptime after which a crash restarts at once; default 10s */

	struct limits limits;
	char *user, *group;         /* NULL: keep agentd's */
	char **env;                 /* "KEY=VALUE", NULL-terminated; the agent's own variables */
	char **secret_env;          /* the values of the env entries marked secret
	                               ({value: ..., secret: true}), NULL-terminated */
	bool debug;

	json_t *embeddings;         /* memory_config.embeddings, normalized; NULL: agentd's */
	json_t *spec;               /* what the worker runs, normalized (see above) */
	char *fingerprint;          /* hex digest of the spec and every supervisor
	                               setting: equal fingerprints = unchanged agent */
	int line, col;              /* where the agent is defined */
};

struct global_conf {
	char *state_dir;            /* default /var/lib/agentd */
	char *control_socket;       /* default <state_dir>/agentd.sock */
	int log_level;              /* enum log_level; default info */
	bool log_json;              /* log_format: json */
	char *log_file;             /* NULL: stderr */
	char *event_store;          /* "database" (default), "memory", "redis_stream" */
	char *memory_store;         /* "database" (default), "memory", "redis", "qdrant" */
	char *state_store;          /* "database" (default), "redis" (mirrored there) */
	char *database_url;         /* memory_store database: postgresql://... ships there */
	json_t *embeddings;         /* agentd.embeddings, normalized (NULL: hash, 384) */
	json_t *chromadb;           /* agentd.chromadb, normalized (memory_store chromadb) */
	int64_t event_retention;    /* events kept per store; default 100000 */
	int64_t memory_retention;   /* memory items kept per agent and type; default 10000 */
	int64_t stop_grace_ms;      /* SIGTERM/cancel grace; default 10s */
	int64_t ack_timeout_ms;     /* worker must ack config/run within; default 10s */
	char *redis_host;           /* default 127.0.0.1 */
	int redis_port;             /* default 6379 */
	int redis_db;               /* default 0 */
	char *redis_password;
	char *redis_socket;
	char *redis_stream_key;     /* default background_agent_events */
	int64_t redis_stream_maxlen;/* default 100000 */
	char *qdrant_url;           /* agentd.qdrant.url; NULL: http://host:port */
	char *qdrant_host;          /* default 127.0.0.1 */
	int qdrant_port;            /* default 6333 */
	char *qdrant_prefix;        /* collection names start with it; default agentd */
	char *qdrant_key_env;       /* where agentd reads the api-key, if anywhere */
	char *qdrant_key_file;
	int64_t qdrant_timeout_ms;  /* per request; default 10s */
	char *worker_path;          /* agentd-worker binary; default: beside agentd */
	char **http_listen;         /* "unix:PATH" | "HOST:PORT", NULL-terminated;
	                               default unix:<state_dir>/http.sock; none: off */
	char *http_token_file;      /* the bearer token TCP listeners require */
};

/* Where a listener listens (agentd.http.listen). */
struct listen_addr {
	bool is_unix;
	char path[108];             /* unix: sun_path's size */
	char host[256], port[8];    /* TCP: a name or an address, a port 1-65535 */
};
/* "unix:PATH" or "HOST:PORT" ("[ADDRESS]:PORT" for IPv6): 0, or -1 with
 * what was expected in err. */
int listen_addr_parse(const char *spec, struct listen_addr *a, char *err, size_t errlen);

struct config {
	char *path;
	struct global_conf g;
	struct agent_conf *agents;
	size_t nagents;
	json_t *tasks;              /* {task_id: {description, config}}; never NULL */
};

struct conf_errors {
	char **msgs;                /* "file:line:col: message" ("/pointer: message" for JSON) */
	size_t n;
	char **pointers;            /* JSON: each message's pointer ("": the whole); else NULL */
	char **warnings;            /* "file:line:col: warning: message" */
	size_t nwarnings;
};

/* Load and validate.  0 and *out on success; -1 and errors otherwise
 * (also -1 with one message when the file cannot be read or is not a
 * regular file of text).  Warnings may come either way. */
int config_load(const char *path, struct config **out, struct conf_errors *errs);
/* Same, from bytes (tests, the fuzzer); name is used in messages. */
int config_load_buffer(const char *name, const char *data, size_t len, struct config **out,
    struct conf_errors *errs);
int config_load_string(const char *name, const char *yaml, struct config **out,
    struct conf_errors *errs);
/* One agent from JSON (an agent created over the API): its name is its
 * agent_id, and it is checked by the same tables, with the same messages,
 * as an agent of the file, each error naming its JSON pointer (errs->
 * pointers); ${VAR} is expanded as in the file; task names a task of tasks
 * (the running config's).  0 and *out, or -1 with errs. */
int config_agent_from_json(const json_t *body, const json_t *tasks, struct agent_conf **out,
    struct conf_errors *errs);
/* A hex digest of v's canonical JSON (sorted keys). */
char *config_digest(const json_t *v);
void config_free(struct config *c);
void conf_errors_free(struct conf_errors *e);
/* The messages, one a line (malloc'd). */
char *conf_errors_join(const struct conf_errors *e);

const struct agent_conf *config_find(const struct config *c, const char *name);

/* Deep copy of one agent (the supervisor keeps agents across reloads). */
struct agent_conf *agent_conf_dup(const struct agent_conf *a);
void agent_conf_free(struct agent_conf *a);

/* The worker's built-in tools, by name: what a name in local_tools may be
 * (worker/tools.c's table holds them; test_worker_tools checks the two
 * agree). */
extern const char *const builtin_tool_names[];

const char *overlap_name(enum overlap_policy p);
const char *restart_name(enum restart_policy p);

#endif
