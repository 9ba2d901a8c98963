/*
 * agentctl: a thin client of agentd's control socket.  It sends one
 * `request` frame, prints the `response` (a table for people, JSON with
 * --json); `events` asks for page after page until it has its N events,
 * and with -f then prints `record` frames until agentd closes the
 * connection (an exit code that says so, not 0).  All knowledge of agents
 * lives in agentd; this only formats.  The commands, whether each takes an
 * agent, and the args it takes are proto/cmd.h's catalogue, which agentd
 * checks requests against; the tables here say which option fills which
 * arg, how each answer is printed, and what each response code exits with.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "common/buf.h"
#include "common/jsonmp.h"
#include "common/limits.h"
#include "common/util.h"
#include "conf/yamltree.h"
#include "proto/cmd.h"
#include "proto/frame.h"
#include "proto/msg.h"

#define DEFAULT_SOCKET "/var/lib/agentd/agentd.sock"
enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNKNOWN = 3,
	EXIT_UNREACHABLE = 4, EXIT_PROTO = 5 };

/* A response's code as an exit code; one this does not know is a refusal. */
static const int code_exits[RESP__COUNT] = {
	[RESP_OK] = EXIT_OK, [RESP_REFUSED] = EXIT_REFUSED, [RESP_BAD_REQUEST] = EXIT_USAGE,
	[RESP_UNKNOWN_AGENT] = EXIT_UNKNOWN, [RESP_UNAVAILABLE] = EXIT_REFUSED,
	[RESP_PRECONDITION] = EXIT_REFUSED,
};

static bool json_out;

static void
usage(void)
{
	fprintf(stderr,
	    "usage: agentctl [-s SOCKET] [--json] COMMAND [ARGS]\n"
	    "commands:\n"
	    "  status [AGENT]          agents and their state\n"
	    "  list                    configured agents\n"
	    "  pause AGENT | resume AGENT | restart AGENT | run AGENT\n"
	    "  reload                  re-read the configuration\n"
	    "  events [-f] [-n N] [AGENT]\n"
	    "  memory AGENT [--type working|episodic|long_term|procedural] [-n N]\n"
	    "  memory AGENT --query TEXT [-n N] [--type T] [--rank hybrid|vector|text]\n"
	    "                          the most related, with score and type\n"
	    "  memory AGENT --clear TYPE\n"
	    "  tasks                   the task registry\n"
	    "  create FILE             an agent from FILE (one agent's YAML mapping, with\n"
	    "                          agent_id, as under background_agents:), owned by the API\n"
	    "  update AGENT -f FILE    FILE's keys merged over an API agent's config\n"
	    "  delete AGENT            an API agent, for good\n"
	    "  export AGENT            an API agent as YAML for the configuration file\n"
	    "  stop                    stop agentd\n");
}

static const char *
str(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void
fmt_time(const char *iso, char *out, size_t len)
{
	struct tm tm = { 0 };
	if (iso == NULL || strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm) == NULL) {
		snprintf(out, len, "-");
		return;
	}
	time_t t = timegm(&tm);
	localtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%d %H:%M:%S", &tm);
}

static void
fmt_uptime(json_t *v, char *out, size_t len)
{
	if (!json_is_number(v)) {
		snprintf(out, len, "-");
		return;
	}
	long s = (long)json_number_value(v);
	if (s >= 86400)
		snprintf(out, len, "%ldd%ldh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(out, len, "%ldh%ldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(out, len, "%ldm%lds", s / 60, s % 60);
	else
		snprintf(out, len, "%lds", s);
}

static void
fmt_int(json_t *v, char *out, size_t len)
{
	if (json_is_integer(v))
		snprintf(out, len, "%lld", (long long)json_integer_value(v));
	else
		snprintf(out, len, "-");
}

#define COLS 10
static void
print_status_table(json_t *agents)
{
	static const char *head[COLS] = { "AGENT", "STATE", "PID", "UPTIME", "RUNS",
		"ERRORS", "LAST RUN", "NEXT RUN", "RESTARTS", "OWNER" };
	size_t n = json_array_size(agents), w[COLS];
	char (*cells)[COLS][64] = xcalloc(n ? n : 1, sizeof(*cells));

	for (int c = 0; c < COLS; c++)
		w[c] = strlen(head[c]);
	for (size_t i = 0; i < n; i++) {
		json_t *a = json_array_get(agents, i);
		snprintf(cells[i][0], 64, "%s", str(a, "name") ? str(a, "name") : "-");
		snprintf(cells[i][1], 64, "%s%s", str(a, "state") ? str(a, "state") : "-",
		    json_is_true(json_object_get(a, "paused")) ? ",paused" : "");
		fmt_int(json_object_get(a, "pid"), cells[i][2], 64);
		fmt_uptime(json_object_get(a, "uptime_s"), cells[i][3], 64);
		fmt_int(json_object_get(a, "run_count"), cells[i][4], 64);
		fmt_int(json_object_get(a, "error_count"), cells[i][5], 64);
		fmt_time(str(a, "last_run"), cells[i][6], 64);
		fmt_time(str(a, "next_run"), cells[i][7], 64);
		fmt_int(json_object_get(a, "restart_count"), cells[i][8], 64);
		snprintf(cells[i][9], 64, "%s", str(a, "owner") ? str(a, "owner") : "-");
		for (int c = 0; c < COLS; c++)
			if (strlen(cells[i][c]) > w[c])
				w[c] = strlen(cells[i][c]);
	}
	for (int c = 0; c < COLS; c++)
		printf("%-*s%s", c + 1 < COLS ? (int)w[c] : 0, head[c], c + 1 < COLS ? "  " : "\n");
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < COLS; c++)
			printf("%-*s%s", c + 1 < COLS ? (int)w[c] : 0, cells[i][c], c + 1 < COLS ? "  " : "\n");
	free(cells);
}

/* A degraded store is news: one line under the table. */
static void
print_store(json_t *st)
{
	char since[64], next[64];
	if (st == NULL || !strcmp(str(st, "state") ? str(st, "state") : "ok", "ok"))
		return;
	fmt_time(str(st, "since"), since, sizeof(since));
	fmt_time(str(st, "next_retry"), next, sizeof(next));
	printf("store: %s since %s: %s; %lld events and %lld memory rows wait in memory "
	    "(%lld events dropped), next try %s\n", str(st, "state"), since,
	    str(st, "error") ? str(st, "error") : "-",
	    (long long)json_integer_value(json_object_get(st, "pending_events")),
	    (long long)json_integer_value(json_object_get(st, "pending_memory")),
	    (long long)json_integer_value(json_object_get(st, "dropped_events")), next);
}

static void
print_kv(json_t *o)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		char *s = json_is_string(v) ? NULL : json_dumps_short(v, JSON_COMPACT);
		printf("%s: %s\n", k, s ? s : json_string_value(v));
		free(s);
	}
}

static void
print_event(json_t *ev)
{
	char ts[64], line[4096];
	const char *k;
	json_t *v;
	size_t off = 0;

	fmt_time(str(ev, "timestamp"), ts, sizeof(ts));
	off += (size_t)snprintf(line, sizeof(line), "%s %s %s", ts,
	    str(ev, "agent_name") ? str(ev, "agent_name") : "-",
	    str(ev, "type") ? str(ev, "type") : "-");
	json_object_foreach(json_object_get(ev, "payload"), k, v) {
		if (!strcmp(k, "agent_id") || !strcmp(k, "timestamp") || !strcmp(k, "session_id"))
			continue;
		char *s = json_is_string(v) ? xstrdup(json_string_value(v)) :
		    json_dumps_short(v, JSON_COMPACT);
		if (s && strlen(s) > 120)
			strcpy(s + 117, "...");
		if (off < sizeof(line))
			off += (size_t)snprintf(line + off, sizeof(line) - off, " %s=%s", k, s ? s : "");
		free(s);
	}
	printf("%s\n", line);
	fflush(stdout);
}

static void
print_json(json_t *data)
{
	char *s = json_dumps_short(data, JSON_INDENT(2));
	printf("%s\n", s ? s : "null");
	free(s);
}

static void
print_status(json_t *data)
{
	if (json_object_get(data, "agents")) {
		print_status_table(json_object_get(data, "agents"));
		print_store(json_object_get(data, "store"));
	} else
		print_kv(data);
}

static void
print_list(json_t *data)
{
	size_t i;
	json_t *a;
	printf("%-24s %-24s %-20s %s\n", "NAME", "AGENT_ID", "SCHEDULE", "STATE");
	json_array_foreach(data, i, a)
		printf("%-24s %-24s %-20s %s%s\n", str(a, "name"), str(a, "agent_id"),
		    str(a, "schedule"), str(a, "state"),
		    json_is_true(json_object_get(a, "paused")) ? ",paused" : "");
}

/* A recall's hits: score, type, time, content; a degraded one says why. */
static void
print_hits(json_t *data)
{
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(data, "hits"), i, m) {
		char ts[64];
		fmt_time(str(m, "timestamp"), ts, sizeof(ts));
		printf("%.3f %-10s %s %s\n", json_number_value(json_object_get(m, "score")),
		    str(m, "memory_type") ? str(m, "memory_type") : "-", ts,
		    str(m, "content") ? str(m, "content") : "");
	}
	if (json_is_true(json_object_get(data, "degraded")))
		fprintf(stderr, "agentctl: ranked by words alone: %s\n", str(data, "reason") ?
		    str(data, "reason") : "no vector for the query");
}

static void
print_memory(json_t *data)
{
	size_t i;
	json_t *m;
	if (json_object_get(data, "hits")) {
		print_hits(data);
		return;
	}
	if (str(data, "message")) {	/* a clear */
		printf("%s\n", str(data, "message"));
		return;
	}
	json_array_foreach(data, i, m) {
		char ts[64];
		fmt_time(str(m, "timestamp"), ts, sizeof(ts));
		printf("%s %-10s %-9s %s\n", ts, str(m, "memory_type") ? str(m, "memory_type") : "-",
		    str(m, "role") ? str(m, "role") : "-", str(m, "content") ? str(m, "content") : "");
	}
}

static void
print_reload(json_t *data)
{
	char *s = json_dumps_short(data, JSON_COMPACT);
	printf("reloaded: %s\n", s ? s : "");
	free(s);
}

/* A message when the answer has one (what pause, run ... did), else JSON. */
static void
print_message(json_t *data)
{
	if (str(data, "message"))
		printf("%s\n", str(data, "message"));
	else
		print_json(data);
}

/* An API agent written: its state and ETag. */
static void
print_written(json_t *data)
{
	printf("%s: %s, owner %s, etag %s\n", str(data, "name"), str(data, "state"),
	    str(data, "owner"), str(data, "etag"));
}

/* An API agent as the file would hold it. */
static void
print_export(json_t *data)
{
	json_t *doc = json_pack("{s:{s:O}}", "background_agents", str(data, "name"),
	    json_object_get(data, "config"));
	char *yaml = doc ? yaml_from_json(doc) : NULL;
	json_decref(doc);
	if (yaml == NULL) {
		fprintf(stderr, "agentctl: the config cannot be written as YAML\n");
		return;
	}
	fputs(yaml, stdout);
	free(yaml);
}

/* How each command's answer is shown to people (--json: as it came). */
static void (*const printers[CMD__COUNT])(json_t *) = {
	[CMD_STATUS] = print_status, [CMD_LIST] = print_list, [CMD_MEMORY] = print_memory,
	[CMD_RELOAD] = print_reload, [CMD_CREATE] = print_written, [CMD_UPDATE] = print_written,
	[CMD_EXPORT] = print_export,
};

static void
print_data(int cmd, json_t *data)
{
	if (json_out)
		print_json(data);
	else
		(printers[cmd] ? printers[cmd] : print_message)(data);
}

static int
connect_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "agentctl: socket path too long: %s\n", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "agentctl: cannot connect to %s: %s (is agentd running?)\n",
		    path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

struct conn {
	int fd;
	struct frame_reader rd;
};

/* Next frame from agentd: 1 with *t and *m, 0 at EOF, -1 on error, -2 when
 * nothing came within timeout_ms. */
static int
next_msg(int fd, struct frame_reader *rd, int timeout_ms, enum msg_type *t, json_t **m)
{
	const uint8_t *p;
	size_t len;
	const char *ferr;
	char err[256];

	for (;;) {
		int rc = frame_reader_next(rd, &p, &len, &ferr);
		if (rc == 1) {
			if (msg_unpack(p, len, t, m, err, sizeof(err)) < 0) {
				fprintf(stderr, "agentctl: bad message from agentd: %s\n", err);
				return -1;
			}
			return 1;
		}
		if (rc < 0) {
			fprintf(stderr, "agentctl: bad frame from agentd: %s\n", ferr);
			return -1;
		}
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int n = poll(&pfd, 1, timeout_ms);
		if (n == 0) {
			fprintf(stderr, "agentctl: agentd did not answer within %d s\n",
			    timeout_ms / 1000);
			return -2;
		}
		if (n < 0 && errno == EINTR)
			continue;
		ssize_t r = frame_reader_fill(rd, fd);
		if (r == 0)
			return 0;
		if (r < 0 && errno != EAGAIN && errno != EINTR) {
			fprintf(stderr, "agentctl: reading from agentd: %s\n", strerror(errno));
			return -1;
		}
	}
}

/* One request on c and its response: EXIT_OK with *resp (ok), else the
 * exit code, said on stderr. */
static int
exchange(struct conn *c, const char *cmd, const char *agent, json_t *args, json_t **resp)
{
	enum msg_type t;
	json_t *m = NULL;
	struct buf out;
	int rc, werr = 0;

	json_t *req = json_pack("{s:s}", "cmd", cmd);
	if (agent)
		json_object_set_new(req, "agent", json_string(agent));
	if (args)
		json_object_set(req, "args", args);
	buf_init(&out);
	rc = msg_pack(MSG_REQUEST, req, &out);
	json_decref(req);
	if (rc < 0) {
		fprintf(stderr, "agentctl: cannot encode the request\n");
		buf_free(&out);
		return EXIT_USAGE;
	}
	if (write_all(c->fd, buf_head(&out), buf_pending(&out)) < 0)
		werr = errno;	/* agentd may have refused us, and said why */
	buf_free(&out);
	rc = next_msg(c->fd, &c->rd, werr ? 1000 : 30000, &t, &m);
	if (rc != 1 || t != MSG_RESPONSE) {
		if (werr)
			fprintf(stderr, "agentctl: writing to agentd: %s\n", strerror(werr));
		else if (rc == 1)
			fprintf(stderr, "agentctl: unexpected %s message\n", msg_type_name(t));
		else if (rc == 0)
			fprintf(stderr, "agentctl: agentd closed the connection\n");
		json_decref(m);
		return rc == -2 || werr ? EXIT_UNREACHABLE : EXIT_PROTO;
	}
	if (!json_is_true(json_object_get(m, "ok"))) {
		json_int_t code = json_integer_value(json_object_get(m, "code"));
		fprintf(stderr, "agentctl: %s\n", str(m, "error") ? str(m, "error") : "failed");
		json_decref(m);
		return code > RESP_OK && code < RESP__COUNT ? code_exits[code] : EXIT_REFUSED;
	}
	*resp = m;
	return EXIT_OK;
}

/* New events as agentd sends them, until it closes the connection: it
 * stopped, or dropped us (a follower that did not keep up) -- either way
 * the output has ended early, which scripts must be able to tell. */
static int
follow(struct conn *c)
{
	enum msg_type t;
	json_t *m;
	int rc;
	while ((rc = next_msg(c->fd, &c->rd, -1, &t, &m)) == 1) {
		json_t *ev = json_object_get(m, "event");
		if (t == MSG_RECORD && ev) {
			if (json_out) {
				char *s = json_dumps_short(ev, JSON_COMPACT);
				printf("%s\n", s);
				fflush(stdout);
				free(s);
			} else
				print_event(ev);
		}
		json_decref(m);
	}
	if (rc < 0)
		return EXIT_PROTO;
	fprintf(stderr, "agentctl: agentd closed the connection (it stopped, or dropped this "
	    "follower; its log says which)\n");
	return EXIT_UNREACHABLE;
}

static void
print_page(json_t *events, long *printed)
{
	size_t i;
	json_t *e;
	json_array_foreach(events, i, e) {
		if (!json_out) {
			print_event(e);
			continue;
		}
		char *s = json_dumps_short(e, JSON_INDENT(2));
		printf("%s%s", (*printed)++ ? ",\n" : "[\n", s ? s : "null");
		free(s);
	}
}

/*
 * events [-f] [-n N]: agentd answers in pages that fit a frame, each but
 * the last with a cursor (the id to go on after), so any N works.  Without
 * -f the pages stop at N events; with -f they go on to the end of the log,
 * and the page that reaches it subscribes us to what comes next.
 */
static int
list_events(struct conn *c, const char *agent, long limit, bool follow_flag)
{
	json_t *args = json_pack("{s:I, s:b}", "limit", (json_int_t)limit, "follow", follow_flag);
	json_t *m, *cursor;
	long got = 0, printed = 0;
	int code;

	while ((code = exchange(c, cmd_defs[CMD_EVENTS].name, agent, args, &m)) == EXIT_OK) {
		json_t *page = json_object_get(m, "data");
		got += (long)json_array_size(page);
		print_page(page, &printed);
		cursor = json_object_get(m, "cursor");
		bool more = json_is_integer(cursor) && json_array_size(page) > 0 &&
		    (follow_flag || got < limit);
		json_decref(args);
		args = more ? json_pack("{s:O, s:b}", "after", cursor, "follow", follow_flag) : NULL;
		if (more && !follow_flag)
			json_object_set_new(args, "limit", json_integer(limit - got));
		json_decref(m);
		if (!more)
			break;
	}
	json_decref(args);
	if (json_out && code == EXIT_OK)
		printf("%s\n", printed ? "\n]" : "[]");
	fflush(stdout);
	if (code == EXIT_OK && follow_flag)
		code = follow(c);
	return code;
}

static int
run_command(const char *sock, int cmd, const char *agent, json_t *args)
{
	struct conn c;
	json_t *m = NULL;
	int code;

	if ((c.fd = connect_socket(sock)) < 0)
		return EXIT_UNREACHABLE;
	frame_reader_init(&c.rd, FRAME_MAX_DEFAULT);
	if (cmd == CMD_EVENTS)
		code = list_events(&c, agent, (long)json_integer_value(json_object_get(args, "limit")),
		    json_is_true(json_object_get(args, "follow")));
	else if ((code = exchange(&c, cmd_defs[cmd].name, agent, args, &m)) == EXIT_OK)
		print_data(cmd, json_object_get(m, "data"));
	json_decref(m);
	frame_reader_free(&c.rd);
	close(c.fd);
	return code;
}

/*
 * The options that fill a command's args: each goes to the commands whose
 * catalogue row has an arg of its name (-n is events' and memory's limit),
 * and is ignored by the others, as it always was.  One with a default is
 * always sent to a command that takes it.
 */
struct opt_arg {
	const char *arg;
	json_t *value;            /* NULL: not given, nor defaulted */
};
enum { OPT_LIMIT, OPT_FOLLOW, OPT_TYPE, OPT_QUERY, OPT_CLEAR, OPT_RANK, OPT__COUNT };

static json_t *
request_args(int cmd, struct opt_arg *opts)
{
	json_t *args = NULL;
	for (int i = 0; i < OPT__COUNT; i++) {
		if (opts[i].value == NULL || cmd_arg(&cmd_defs[cmd], opts[i].arg) == NULL)
			continue;
		if (args == NULL)
			args = json_object();
		json_object_set(args, opts[i].arg, opts[i].value);
	}
	return args;
}

/*
 * FILE, one agent's YAML mapping, as the JSON create and update send
 * (agentd checks it; its errors name JSON pointers, the path of keys
 * written in FILE).  NULL, said, when FILE is not one YAML mapping.
 */
static json_t *
read_agent_file(const char *path)
{
	char err[512], *text = xmalloc(CONFIG_FILE_MAX + 1);
	json_t *v = NULL;
	FILE *f = fopen(path, "r");
	size_t len = f ? fread(text, 1, CONFIG_FILE_MAX + 1, f) : 0;
	struct ynode *root = NULL;

	if (f == NULL || ferror(f))
		fprintf(stderr, "agentctl: %s: %s\n", path, strerror(errno));
	else if (len > CONFIG_FILE_MAX)
		fprintf(stderr, "agentctl: %s: larger than %u MiB\n", path, CONFIG_FILE_MAX >> 20);
	else if ((root = ytree_parse(text, len, err, sizeof(err))) == NULL)
		fprintf(stderr, "agentctl: %s:%s\n", path, err);
	else if (root->kind != Y_MAP || ymap_get(root, "background_agents"))
		fprintf(stderr, "agentctl: %s: must be one agent's mapping (its keys, agent_id "
		    "among them, as under background_agents:)\n", path);
	else if ((v = ytree_to_json(root, err, sizeof(err))) == NULL)
		fprintf(stderr, "agentctl: %s:%s\n", path, err);
	if (f)
		fclose(f);
	ytree_free(root);
	free(text);
	return v;
}

/* The command's positional words fit what its row says it takes. */
static bool
usage_ok(int cmd, int npos)
{
	if (cmd == CMD_CREATE)	/* its file */
		return npos == 2;
	switch (cmd_defs[cmd].agent) {
	case CA_NONE: return npos == 1;
	case CA_ONE: return npos == 2;
	case CA_MAYBE:
	case CA_FILTER: return npos <= 2;
	}
	return false;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' },
		{ "type", required_argument, NULL, 't' }, { "limit", required_argument, NULL, 'n' },
		{ "follow", no_argument, NULL, 'f' }, { "help", no_argument, NULL, 'h' },
		{ "query", required_argument, NULL, 'q' }, { "clear", required_argument, NULL, 'C' },
		{ "rank", required_argument, NULL, 'R' },
		{ "version", no_argument, NULL, 'V' }, { NULL, 0, NULL, 0 },
	};
	const char *sock = getenv("AGENTD_SOCKET") ? getenv("AGENTD_SOCKET") : DEFAULT_SOCKET;
	struct opt_arg oa[OPT__COUNT] = {
		[OPT_LIMIT] = { "limit", json_integer(20) },
		[OPT_FOLLOW] = { "follow", json_false() },
		[OPT_TYPE] = { "memory_type", NULL },
		[OPT_QUERY] = { "query", NULL },
		[OPT_CLEAR] = { "clear", NULL },
		[OPT_RANK] = { "rank", NULL },
	};
	bool limit_given = false;
	const char *file = NULL;
	int c, cmd, rc = EXIT_USAGE;
	char *pos[4];
	int npos = 0;

	signal(SIGPIPE, SIG_IGN);
	/* Options may come before or after the command ("status --json x"). */
	while (optind < argc) {
		if ((c = getopt_long(argc, argv, "+s:jfn:t:q:hV", opts, NULL)) == -1) {
			if (npos == 4) {
				usage();
				goto out;
			}
			pos[npos++] = argv[optind++];
			continue;
		}
		switch (c) {
		case 's': sock = optarg; break;
		case 't':
		case 'q':
		case 'C':
		case 'R': {
			static const char *const flags[OPT__COUNT] = { [OPT_TYPE] = "type",
				[OPT_QUERY] = "query", [OPT_CLEAR] = "clear", [OPT_RANK] = "rank" };
			int o = c == 't' ? OPT_TYPE : c == 'q' ? OPT_QUERY : c == 'C' ? OPT_CLEAR :
			    OPT_RANK;
			json_decref(oa[o].value);
			if ((oa[o].value = json_string(optarg)) == NULL) {
				fprintf(stderr, "agentctl: --%s takes UTF-8 text\n", flags[o]);
				goto out;
			}
			break;
		}
		case 'j': json_out = true; break;
		case 'f':
			if (npos > 0 && !strcmp(pos[0], cmd_defs[CMD_UPDATE].name)) {
				if (optind == argc) {	/* update's -f FILE */
					usage();
					goto out;
				}
				file = argv[optind++];
				break;
			}
			json_decref(oa[OPT_FOLLOW].value);
			oa[OPT_FOLLOW].value = json_true();
			break;
		case 'n': {
			char *end;
			long limit = strtol(optarg, &end, 10);
			if (*end || limit <= 0) {
				fprintf(stderr, "agentctl: -n takes a positive number\n");
				goto out;
			}
			json_decref(oa[OPT_LIMIT].value);
			oa[OPT_LIMIT].value = json_integer(limit);
			limit_given = true;
			break;
		}
		case 'h': usage(); rc = EXIT_OK; goto out;
		case 'V': printf("agentctl %s\n", AGENTD_VERSION); rc = EXIT_OK; goto out;
		default: usage(); goto out;
		}
	}
	cmd = npos > 0 ? cmd_lookup(pos[0]) : -1;
	if (cmd < 0 || !usage_ok(cmd, npos)) {
		if (npos > 0 && cmd < 0)
			fprintf(stderr, "agentctl: unknown command \"%s\"\n", pos[0]);
		usage();
		goto out;
	}
	if (oa[OPT_QUERY].value && !limit_given) {	/* a recall's default */
		json_decref(oa[OPT_LIMIT].value);
		oa[OPT_LIMIT].value = json_integer(5);
	}
	if (cmd == CMD_UPDATE && file == NULL) {
		fprintf(stderr, "agentctl: update needs -f FILE (the keys to change)\n");
		goto out;
	}
	json_t *args = request_args(cmd, oa);
	if (cmd == CMD_CREATE || cmd == CMD_UPDATE) {
		json_t *body = read_agent_file(cmd == CMD_CREATE ? pos[1] : file);
		if (body == NULL) {
			json_decref(args);
			goto out;
		}
		json_decref(args);
		args = json_pack("{s:o}", cmd == CMD_CREATE ? "config" : "patch", body);
	}
	rc = run_command(sock, cmd, npos == 2 && cmd != CMD_CREATE ? pos[1] : NULL, args);
	json_decref(args);
out:
	for (int i = 0; i < OPT__COUNT; i++)
		json_decref(oa[i].value);
	return rc;
}
