/*
 * spawn: fork+exec of one worker, isolated.
 *
 * The parent prepares everything that allocates (argv, the environment, the
 * cgroup) before fork; the child only makes async-signal-safe calls, in an
 * order where each step cannot be undone by the next: session, death
 * signal, signal state, descriptors, cgroup, limits, directory, identity,
 * no_new_privs, exec.  A failure in the child is written to its stderr
 * (which agentd captures) and the child exits 127, which agentd reports
 * with that line.  A failure in the parent leaves errno at its cause, so
 * the caller can tell a host short of descriptors, processes or memory
 * (worth trying again) from a start that cannot work as configured.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "supervisor/sup.h"

#define WORKER_FD 3

/* Variables a worker inherits from agentd's environment; everything else
 * must be declared in the agent's `env:`. */
static const char *env_allow[] = {
	"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "TMPDIR",
	"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
	"NO_PROXY", "ALL_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR",
	"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
};

static char **
build_env(const struct agent_conf *c)
{
	size_t n = 0, cap = ARRAY_LEN(env_allow) + 4;
	for (char **e = c->env; e && *e; e++)
		cap++;
	char **env = xcalloc(cap, sizeof(char *));

	for (size_t i = 0; i < ARRAY_LEN(env_allow); i++) {
		const char *v = getenv(env_allow[i]);
		if (v == NULL)
			continue;
		size_t len = strlen(env_allow[i]) + strlen(v) + 2;
		env[n] = xmalloc(len);
		snprintf(env[n++], len, "%s=%s", env_allow[i], v);
	}
	if (getenv("PATH") == NULL)
		env[n++] = xstrdup("PATH=/usr/local/bin:/usr/bin:/bin");
	for (char **e = c->env; e && *e; e++)
		env[n++] = xstrdup(*e);
	env[n] = NULL;
	return env;
}

static void
free_env(char **env)
{
	for (char **e = env; *e; e++)
		free(*e);
	free(env);
}

static void
child_fail(const char *what)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "agentd: cannot start worker: %s: %s\n",
	    what, strerror(errno));
	if (n > 0)
		(void)!write(2, msg, (size_t)n);
	_exit(127);
}

static void
child_limits(const struct limits *l)
{
	struct rlimit rl;

	rl.rlim_cur = rl.rlim_max = 0;
	if (setrlimit(RLIMIT_CORE, &rl) < 0)	/* no core: secrets live in memory */
		child_fail("setrlimit(RLIMIT_CORE)");
#if !defined(__SANITIZE_ADDRESS__)
	/* ASan reserves terabytes of address space: an RLIMIT_AS build cannot
	 * run under it, so sanitizer builds rely on the cgroup alone. */
	if (l->memory > 0) {
		rl.rlim_cur = rl.rlim_max = (rlim_t)l->memory;
		if (setrlimit(RLIMIT_AS, &rl) < 0)
			child_fail("setrlimit(RLIMIT_AS)");
	}
#endif
	if (l->nofile > 0) {
		rl.rlim_cur = rl.rlim_max = (rlim_t)l->nofile;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			child_fail("setrlimit(RLIMIT_NOFILE)");
	}
	if (l->nproc > 0) {
		rl.rlim_cur = rl.rlim_max = (rlim_t)l->nproc;
		if (setrlimit(RLIMIT_NPROC, &rl) < 0)
			child_fail("setrlimit(RLIMIT_NPROC)");
	}
	if (l->cpu_ms > 0) {
		rl.rlim_cur = (rlim_t)((l->cpu_ms + 999) / 1000);
		rl.rlim_max = rl.rlim_cur + 5;	/* SIGXCPU first, then SIGKILL */
		if (setrlimit(RLIMIT_CPU, &rl) < 0)
			child_fail("setrlimit(RLIMIT_CPU)");
	}
}

/* May agentd raise a hard limit (CAP_SYS_RESOURCE in its effective set)? */
static bool
can_raise_limits(void)
{
	char line[256];
	unsigned long long eff = 0;
	FILE *f = fopen("/proc/self/status", "re");
	if (f == NULL)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	fclose(f);
	return (eff >> 24) & 1;	/* CAP_SYS_RESOURCE */
}

/*
 * A limit above the hard limit agentd itself runs under can only be set
 * with CAP_SYS_RESOURCE; without it every start would fail in the child
 * ("setrlimit: Operation not permitted") and the agent crash-loop to fatal.
 * Said here, once, with the numbers and what to change.  errno EPERM: a
 * start that waiting cannot fix.
 */
static int
limits_allowed(const struct limits *l, char *err, size_t errlen)
{
	static const struct { int res; const char *key; size_t off; bool secs; } rows[] = {
		{ RLIMIT_NOFILE, "open_files", offsetof(struct limits, nofile), false },
		{ RLIMIT_NPROC, "processes", offsetof(struct limits, nproc), false },
		{ RLIMIT_CPU, "cpu_time", offsetof(struct limits, cpu_ms), true },
#if !defined(__SANITIZE_ADDRESS__)
		{ RLIMIT_AS, "memory", offsetof(struct limits, memory), false },
#endif
	};
	struct rlimit rl;

	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		int64_t v = *(const int64_t *)((const char *)l + rows[i].off);
		if (v <= 0)
			continue;	/* not set */
		if (rows[i].secs)
			v = (v + 999) / 1000 + 5;	/* the hard limit child_limits sets */
		if (getrlimit(rows[i].res, &rl) < 0 || rl.rlim_max == RLIM_INFINITY ||
		    (rlim_t)v <= rl.rlim_max || can_raise_limits())
			continue;
		snprintf(err, errlen, "limits.%s (%lld%s) is above the hard limit agentd runs "
		    "under (%llu%s) and agentd may not raise it (no CAP_SYS_RESOURCE): lower it, "
		    "or raise agentd's own limit (systemd's Limit*=, ulimit -H)", rows[i].key,
		    (long long)v, rows[i].secs ? " s" : "", (unsigned long long)rl.rlim_max,
		    rows[i].secs ? " s" : "");
		errno = EPERM;
		return -1;
	}
	return 0;
}

struct ids { bool set; uid_t uid; gid_t gid; };

/* getpwnam/getgrnam gave nothing: no such name (errno 0 or one of the
 * "not found" codes, made ENOENT), or the lookup itself failed (no
 * descriptor to read /etc/passwd with: errno kept). */
static int
lookup_failed(char *err, size_t errlen, const char *what, const char *name)
{
	int e = errno;
	if (e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM) {
		snprintf(err, errlen, "unknown %s \"%s\"", what, name);
		errno = ENOENT;
	} else {
		snprintf(err, errlen, "looking up %s \"%s\": %s", what, name, strerror(e));
		errno = e;
	}
	return -1;
}

/* err says what failed and why; errno stays at the cause. */
static int
parent_failed(char *err, size_t errlen, const char *what, const char *detail)
{
	int e = errno;
	snprintf(err, errlen, "%s%s%s: %s", what, detail ? " " : "", detail ? detail : "",
	    strerror(e));
	errno = e;
	return -1;
}

static void
close_pair(int fds[2])
{
	int e = errno;
	close(fds[0]);
	close(fds[1]);
	errno = e;
}

static int
resolve_ids(const struct agent_conf *c, struct ids *ids, char *err, size_t errlen)
{
	memset(ids, 0, sizeof(*ids));
	if (c->user == NULL && c->group == NULL)
		return 0;
	ids->uid = getuid();
	ids->gid = getgid();
	if (c->user) {
		errno = 0;
		struct passwd *pw = getpwnam(c->user);
		if (pw == NULL)
			return lookup_failed(err, errlen, "user", c->user);
		ids->uid = pw->pw_uid;
		ids->gid = pw->pw_gid;
	}
	if (c->group) {
		errno = 0;
		struct group *gr = getgrnam(c->group);
		if (gr == NULL)
			return lookup_failed(err, errlen, "group", c->group);
		ids->gid = gr->gr_gid;
	}
	ids->set = true;
	return 0;
}

static void
child_close_fds(void)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, WORKER_FD + 1, ~0U, 0) == 0)
		return;
#endif
	for (int fd = WORKER_FD + 1; fd < 65536; fd++)
		close(fd);
}

static void __attribute__((noreturn))
child(struct agent *a, int sock, int errw, char **argv, char **env,
    const struct ids *ids, pid_t parent)
{
	const struct agent_conf *c = a->conf;
	sigset_t none;
	int devnull;

	if (setsid() < 0)
		child_fail("setsid");
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		child_fail("PR_SET_PDEATHSIG");
	if (getppid() != parent)	/* agentd died before the prctl */
		_exit(127);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	devnull = open("/dev/null", O_RDONLY);
	if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(errw, 1) < 0 ||
	    dup2(errw, 2) < 0 || dup2(sock, WORKER_FD) < 0)
		child_fail("dup2");
	child_close_fds();

	if (cgroup_enter(a->sup->cgroup_mode, a->cgroup) < 0)
		child_fail("joining cgroup");
	child_limits(&c->limits);
	umask(077);
	if (chdir(a->dir) < 0)
		child_fail(a->dir);
	if (ids->set) {
		if (setgroups(0, NULL) < 0 || setgid(ids->gid) < 0 ||
		    setuid(ids->uid) < 0)
			child_fail("dropping privileges");
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail("PR_SET_NO_NEW_PRIVS");
	execve(a->sup->worker_path, argv, env);
	child_fail(a->sup->worker_path);
	_exit(127);
}

int
worker_spawn(struct agent *a, int *sockfd, int *errfd, char *err, size_t errlen)
{
	int sv[2], ep[2];
	struct ids ids;
	char *argv[3] = { "agentd-worker", a->name, NULL };
	char **env;
	pid_t pid, parent = getpid();

	if (mkdir_p(a->dir, 0700) < 0)
		return parent_failed(err, errlen, "cannot create", a->dir);
	if (resolve_ids(a->conf, &ids, err, errlen) < 0 ||
	    limits_allowed(&a->conf->limits, err, errlen) < 0)
		return -1;
	if (ids.set && chown(a->dir, ids.uid, ids.gid) < 0)
		return parent_failed(err, errlen, "chown", a->dir);
	free(a->cgroup);
	char cgname[128];
	snprintf(cgname, sizeof(cgname), "agent-%s", a->name);
	if (cgroup_prepare(a->sup->cgroup_mode, cgname, &a->conf->limits, &a->cgroup,
	    err, errlen) < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return parent_failed(err, errlen, "socketpair", NULL);
	if (pipe2(ep, O_CLOEXEC) < 0) {
		parent_failed(err, errlen, "pipe", NULL);
		close_pair(sv);
		return -1;
	}
	env = build_env(a->conf);

	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		close(ep[0]);
		child(a, sv[1], ep[1], argv, env, &ids, parent);
	}
	if (pid < 0) {
		parent_failed(err, errlen, "fork", NULL);
		free_env(env);
		close_pair(sv);
		close_pair(ep);
		return -1;
	}
	free_env(env);
	close(sv[1]);
	close(ep[1]);
	set_nonblock(sv[0]);
	set_nonblock(ep[0]);
	a->pid = pid;
	*sockfd = sv[0];
	*errfd = ep[0];
	return 0;
}

/*
 * What a worker leaves behind: its process group (MCP servers), and the
 * processes of its session outside that group -- a command tool runs in a
 * group of its own so its children die with it, which also puts them out
 * of reach of kill(-worker).  They keep the worker's session (the worker
 * is its leader: setsid in child()), so the session id finds them.  A
 * process that made a session of its own has left on purpose; only the
 * agent's cgroup, where there is one, still holds it.
 */
void
worker_kill_session(pid_t sid)
{
	DIR *d;
	struct dirent *de;
	char path[64], buf[512];

	if (sid <= 1)
		return;
	kill(-sid, SIGKILL);
	if ((d = opendir("/proc")) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		pid_t pid = (pid_t)atoi(de->d_name);
		if (pid <= 1 || pid == sid)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		/* pid (comm) state ppid pgrp session: comm may hold spaces and ')' */
		const char *p = strrchr(buf, ')');
		int ppid, pgrp, session;
		if (p && sscanf(p + 1, " %*c %d %d %d", &ppid, &pgrp, &session) == 3 &&
		    session == sid)
			kill(pid, SIGKILL);
	}
	closedir(d);
}

