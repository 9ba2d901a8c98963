/*
 * cmdtool: see cmdtool.h.  The child is a plain fork+execvp with stdin on
 * /dev/null and stdout+stderr on one pipe, the leader of a process group
 * of its own.  The worker polls the pipe and the child's pidfd with the
 * deadline and the run's cancel check, keeps output_max bytes (cut on a
 * character, NULs kept) and counts the rest.  The call is over when the
 * child ends, not when the pipe closes (a child it left behind may hold
 * it): then, or on a timeout or a cancel, the whole group is SIGKILLed.
 * What it printed is returned, or told in the error.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/buf.h"
#include "common/util.h"
#include "conf/argschema.h"
#include "worker/cmdtool.h"

extern char **environ;

const json_t *
cmdtool_find(const json_t *spec, const char *name)
{
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(spec, "local_tools"), i, t)
		if (json_is_object(t) && json_is_array(json_object_get(t, "command")) &&
		    name && json_is_string(json_object_get(t, "name")) &&
		    strcmp(json_string_value(json_object_get(t, "name")), name) == 0)
			return t;
	return NULL;
}

void
cmdtool_each(const json_t *spec, void (*fn)(const json_t *, void *), void *arg)
{
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(spec, "local_tools"), i, t)
		if (json_is_object(t) && json_is_array(json_object_get(t, "command")))
			fn(t, arg);
}

/* One template element -> one argv element, {name} replaced. */
static char *
fill(const char *tmpl, const json_t *args, char *err, size_t errlen)
{
	struct buf b;
	buf_init(&b);
	for (const char *p = tmpl; *p; ) {
		const char *close = p[0] == '{' ? strchr(p, '}') : NULL;
		if (close == NULL) {
			buf_append(&b, p++, 1);
			continue;
		}
		char name[128];
		snprintf(name, sizeof(name), "%.*s", (int)(close - p - 1), p + 1);
		json_t *v = json_object_get(args, name);
		char num[64];
		const char *s = NULL;
		if (json_is_string(v))
			s = json_string_value(v);
		else if (json_is_integer(v))
			snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v)), s = num;
		else if (json_is_real(v))
			snprintf(num, sizeof(num), "%.17g", json_real_value(v)), s = num;
		else if (json_is_boolean(v))
			s = json_is_true(v) ? "true" : "false";
		if (s == NULL) {
			snprintf(err, errlen, "argument \"%s\" is missing or not a scalar", name);
			buf_free(&b);
			return NULL;
		}
		buf_append(&b, s, strlen(s));
		p = close + 1;
	}
	buf_append(&b, "", 1);
	return (char *)b.data;
}

static char **
child_env(const json_t *names)
{
	size_t n = 0, i;
	json_t *v;
	char **env = xcalloc(json_array_size(names) + 2, sizeof(char *));
	const char *path = getenv("PATH") ? getenv("PATH") : "/usr/local/bin:/usr/bin:/bin";
	env[n] = xmalloc(strlen(path) + 6);
	sprintf(env[n++], "PATH=%s", path);
	json_array_foreach(names, i, v) {
		const char *k = json_string_value(v), *val = k ? getenv(k) : NULL;
		if (val) {
			size_t len = strlen(k) + strlen(val) + 2;
			env[n] = xmalloc(len);
			snprintf(env[n++], len, "%s=%s", k, val);
		}
	}
	return env;
}

static void
free_strv(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

/* What a command printed: the first cap bytes (cut on a character), the
 * count of the rest. */
struct output {
	struct buf b;
	size_t cap, dropped;
};

/* Read what the pipe has now (it is non-blocking).  false at EOF. */
static bool
read_some(int fd, struct output *o)
{
	char chunk[8192];
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == EAGAIN;
		if (r == 0)
			return false;
		/* a few bytes past cap, so the cut can end on a character */
		size_t room = o->cap + 4 > buf_pending(&o->b) ? o->cap + 4 - buf_pending(&o->b) : 0;
		size_t keep = (size_t)r < room ? (size_t)r : room;
		buf_append(&o->b, chunk, keep);
		o->dropped += (size_t)r - keep;
	}
}

/* Has the child ended?  It is left a zombie (WNOWAIT), so its pid, which
 * names its process group, cannot be reused before the group is killed. */
static bool
child_ended(pid_t pid)
{
	siginfo_t si = { 0 };
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

/*
 * Wait for the child (the leader of its own process group) to end, by the
 * deadline, reading its output meanwhile; its pipe may stay open after it,
 * held by what it left running (`sleep 300 &`).  Then its whole group is
 * killed -- what it left behind, or all of it on a timeout or a cancel --
 * and it is reaped.  NULL, or why it was stopped.
 */
static const char *
wait_child(pid_t pid, int fd, int64_t deadline, const struct tool_ctx *ctx,
    struct output *o, int *status)
{
	int pidfd = pidfd_open(pid, 0);	/* -1 (old kernel): the 100 ms polls tell */
	const char *killed = NULL;
	bool open = true;

	set_nonblock(fd);
	while (!child_ended(pid)) {
		int64_t left = deadline - mono_ms();
		if (left <= 0) {
			killed = "timed out";
			break;
		}
		if (tool_interrupted(ctx)) {
			killed = "cancelled";
			break;
		}
		struct pollfd pf[2] = { { open ? fd : -1, POLLIN, 0 }, { pidfd, POLLIN, 0 } };
		if (poll(pf, 2, left < 100 ? (int)left : 100) > 0 && pf[0].revents)
			open = read_some(fd, o);
	}
	kill(-pid, SIGKILL);
	if (open)
		(void)read_some(fd, o);	/* what it wrote before it ended */
	if (pidfd >= 0)
		close(pidfd);
	waitpid(pid, status, 0);
	return killed;
}

int
cmdtool_run(const json_t *def, const struct tool_ctx *ctx, const json_t *args,
    json_t **out, char *err, size_t errlen)
{
	/* the loader's values: timeout_ms defaulted, the schema checked */
	const json_t *tmpl = json_object_get(def, "command");
	const char *cwd = json_string_value(json_object_get(def, "cwd"));
	int64_t timeout = json_integer_value(json_object_get(def, "timeout_ms"));
	size_t cap = (size_t)json_integer_value(json_object_get(def, "output_max"));
	size_t n = json_array_size(tmpl), i;
	int p[2], status = 0;
	json_t *v;

	if (n == 0 || argschema_validate(json_object_get(def, "inputSchema"), args, err,
	    errlen) < 0) {
		if (n == 0)
			snprintf(err, errlen, "command is empty");
		return -1;
	}
	char **argv = xcalloc(n + 1, sizeof(char *));
	json_array_foreach(tmpl, i, v)
		if (!json_is_string(v) || (argv[i] = fill(json_string_value(v), args, err, errlen)) == NULL) {
			if (!json_is_string(v))
				snprintf(err, errlen, "command[%zu] is not a string", i);
			free_strv(argv);
			return -1;
		}
	char **env = child_env(json_object_get(def, "env"));
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		free_strv(argv);
		free_strv(env);
		return -1;
	}
	int64_t t0 = mono_ms();
	pid_t worker = getpid(), pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		setpgid(0, 0);	/* its own group: what it starts is killed with it */
		/* out of the worker's group, agentd's kill of it misses this one:
		 * it goes when the worker does */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != worker)
			_exit(125);
		dup2(devnull, 0);
		dup2(p[1], 1);
		dup2(p[1], 2);
		const char *dir = cwd ? cwd : (ctx && ctx->state_dir ? ctx->state_dir : ".");
		if (chdir(dir) < 0) {
			dprintf(2, "cannot enter %s: %s\n", dir, strerror(errno));
			_exit(126);
		}
		environ = env;
		execvp(argv[0], argv);
		dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(p[1]);
	free_strv(argv);
	free_strv(env);
	if (pid < 0) {
		close(p[0]);
		snprintf(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	setpgid(pid, pid);	/* both sides, so the group exists before any kill */
	struct output o = { .cap = cap };
	buf_init(&o.b);
	const char *killed = wait_child(pid, p[0], t0 + timeout, ctx, &o, &status);
	close(p[0]);
	size_t len = utf8_cut((const char *)buf_head(&o.b), buf_pending(&o.b), cap);
	o.dropped += buf_pending(&o.b) - len;
	json_t *text = json_stringn_lossy((const char *)buf_head(&o.b), len);
	buf_free(&o.b);
	int64_t dur = mono_ms() - t0;
	const char *printed = json_string_value(text);
	int shown = (int)utf8_cut(printed, json_string_length(text), 200);
	if (killed) {
		snprintf(err, errlen, "%s after %lld ms%s%.*s", killed, (long long)dur,
		    shown ? "; it printed: " : "", shown, printed);
		json_decref(text);
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(err, errlen, "%s %d: %.*s", WIFEXITED(status) ? "exited with code" :
		    "killed by signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
		    shown, printed);
		json_decref(text);
		return -1;
	}
	/* what it printed, and nothing that differs between two runs printing
	 * the same (a change-gated run compares outputs) */
	*out = json_pack("{s:o, s:i, s:b, s:I}", "output", text, "exit_code", 0,
	    "truncated", o.dropped > 0, "dropped_bytes", (json_int_t)o.dropped);
	return 0;
}
