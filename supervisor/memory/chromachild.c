/*
 * chromachild: agentd's own Chroma server -- memory_store chromadb with
 * agentd.chromadb.path (CHROMADB_PERSIST_DIRECTORY) and no url, the seed's
 * "local fallback".  agentd runs `COMMAND run --path DIR --host 127.0.0.1
 * --port N` (command: agentd.chromadb.command, `chroma` on agentd's PATH by
 * default; N a free loopback port chosen once, so the URL stays the same
 * across restarts) as a child of its own: started with the memory backend,
 * before the agents; ready when it answers (chroma.c's setup polls it,
 * heartbeat first); restarted when it exits, after a backoff of 1 s
 * doubling to 30 s that starts over once it answered again; stopped last at
 * shutdown, after the agents (SIGTERM, SIGKILL after stop_grace).  Its
 * output (stdout and stderr) is agentd's log, rate-limited: CHILD_LOG_BURST
 * lines a minute (its start banner is 20), the rest of a storm through
 * log_limited (a line and a count per 10 s); it dies with
 * agentd (PR_SET_PDEATHSIG), so a SIGKILLed agentd leaves no orphan.
 *
 * Its exit is seen through a pidfd on the loop, so sup.c's reaper (which
 * collects any child it does not know) needs no word of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include "common/log.h"
#include "common/util.h"
#include "supervisor/loop.h"
#include "supervisor/memory/memory.h"

#define CHILD_BACKOFF_MIN_MS 1000
#define CHILD_BACKOFF_MAX_MS 30000
#define CHILD_KILL_WAIT_MS 5000
#define CHILD_LOG_BURST 100
#define CHILD_LOG_WINDOW_MS 60000

struct chroma_child {
	char *command, *dir;
	char port[8];
	int64_t grace_ms;
	pid_t pid;               /* 0: not running */
	struct watch exitw;      /* its pidfd */
	struct watch outw;       /* its stdout and stderr */
	char line[1024];
	size_t len;
	int64_t log_window;      /* mono ms its minute started */
	int log_lines;           /* lines logged in it */
	struct timer restart;
	int64_t backoff;
	int64_t restarts;
};

static int
free_port(char *out, size_t len, char *err, size_t errlen)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
		snprintf(err, errlen, "no free loopback port for agentd's Chroma server: %s",
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	snprintf(out, len, "%d", ntohs(a.sin_port));
	close(fd);
	return 0;
}

/* Can command be run: a path to an executable, or a name on agentd's PATH? */
static bool
runnable(const char *command)
{
	if (strchr(command, '/'))
		return access(command, X_OK) == 0;
	const char *path = getenv("PATH");
	char *dirs = xstrdup(path ? path : "/usr/bin:/bin"), *save = NULL, full[4096];
	bool ok = false;
	for (char *d = strtok_r(dirs, ":", &save); d && !ok; d = strtok_r(NULL, ":", &save)) {
		snprintf(full, sizeof(full), "%s/%s", *d ? d : ".", command);
		ok = access(full, X_OK) == 0;
	}
	free(dirs);
	return ok;
}

/* ---- its output ---------------------------------------------------------------------- */

static void
take_line(struct chroma_child *k)
{
	char clean[sizeof(k->line)];
	int64_t now = mono_ms();
	if (k->len) {
		str_printable(clean, sizeof(clean), k->line, k->len);
		if (now - k->log_window >= CHILD_LOG_WINDOW_MS) {
			k->log_window = now;
			k->log_lines = 0;
		}
		if (k->log_lines++ < CHILD_LOG_BURST)
			log_info("chroma[%d]: %s", (int)k->pid, clean);
		else
			log_limited(LL_INFO, "chroma[%d]: %s", (int)k->pid, clean);
	}
	k->len = 0;
}

static void
drain(struct chroma_child *k)
{
	char chunk[4096];
	ssize_t n;

	if (!k->outw.added)
		return;
	while ((n = read(k->outw.fd, chunk, sizeof(chunk))) > 0)
		for (ssize_t i = 0; i < n; i++) {
			if (chunk[i] == '\n')
				take_line(k);
			else if (k->len < sizeof(k->line))
				k->line[k->len++] = chunk[i];
		}
	if (n == 0 || (n < 0 && errno != EAGAIN)) {
		take_line(k);
		int fd = k->outw.fd;
		loop_del(&k->outw);
		close(fd);
	}
}

static void
on_out(struct watch *w, uint32_t events)
{
	drain(w->ctx);
}

/* ---- the process --------------------------------------------------------------------- */

static void __attribute__((noreturn))
child(struct chroma_child *k, int out, pid_t parent)
{
	sigset_t none;
	if (setsid() < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	int devnull = open("/dev/null", O_RDONLY);
	if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(127);
#ifdef SYS_close_range
	syscall(SYS_close_range, 3, ~0U, 0);
#endif
	execlp(k->command, k->command, "run", "--path", k->dir, "--host", "127.0.0.1", "--port",
	    k->port, (char *)NULL);
	dprintf(2, "cannot run %s: %s\n", k->command, strerror(errno));
	_exit(127);
}

static void on_exit_fd(struct watch *w, uint32_t events);

static int
spawn(struct chroma_child *k, char *err, size_t errlen)
{
	int p[2];
	pid_t parent = getpid();

	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0)
		child(k, p[1], parent);
	close(p[1]);
	int pidfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
	if (pidfd < 0) {
		snprintf(err, errlen, "starting %s: %s", k->command, strerror(errno));
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		close(p[0]);
		return -1;
	}
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	fcntl(pidfd, F_SETFD, FD_CLOEXEC);
	k->pid = pid;
	loop_add(&k->outw, p[0], EPOLLIN, on_out, k);
	loop_add(&k->exitw, pidfd, EPOLLIN, on_exit_fd, k);
	log_info("chromadb: started agentd's Chroma server (pid %d) on 127.0.0.1:%s, data in %s",
	    (int)pid, k->port, k->dir);
	return 0;
}

static void
on_restart(struct timer *t)
{
	struct chroma_child *k = t->ctx;
	char err[256];
	if (spawn(k, err, sizeof(err)) < 0) {
		log_error("chromadb: %s", err);
		timer_in(&k->restart, k->backoff);
	}
}

/* It exited (and may have been reaped already by agentd's reaper). */
static void
gone(struct chroma_child *k)
{
	int fd = k->exitw.fd;
	loop_del(&k->exitw);
	close(fd);
	drain(k);
	waitpid(k->pid, NULL, WNOHANG);
	k->pid = 0;
}

static void
on_exit_fd(struct watch *w, uint32_t events)
{
	struct chroma_child *k = w->ctx;
	pid_t pid = k->pid;
	gone(k);
	k->restarts++;
	k->backoff = k->backoff ? k->backoff * 2 : CHILD_BACKOFF_MIN_MS;
	if (k->backoff > CHILD_BACKOFF_MAX_MS)
		k->backoff = CHILD_BACKOFF_MAX_MS;
	log_warn("chromadb: agentd's Chroma server (pid %d) exited; starting it again in %lld ms",
	    (int)pid, (long long)k->backoff);
	timer_in(&k->restart, k->backoff);
}

/* ---- the calls ----------------------------------------------------------------------- */

struct chroma_child *
chroma_child_start(const char *command, const char *dir, int64_t grace_ms, char *url,
    size_t urllen, char *err, size_t errlen)
{
	struct chroma_child *k = xcalloc(1, sizeof(*k));
	k->command = xstrdup(command);
	k->dir = xstrdup(dir);
	k->grace_ms = grace_ms;
	k->outw.fd = k->exitw.fd = -1;
	timer_init(&k->restart, on_restart, k);
	if (!runnable(command)) {
		snprintf(err, errlen, "agentd.chromadb.command %s: not an executable%s", command,
		    strchr(command, '/') ? "" : " on agentd's PATH");
		chroma_child_stop(k);
		return NULL;
	}
	if (free_port(k->port, sizeof(k->port), err, errlen) < 0 ||
	    spawn(k, err, errlen) < 0) {
		chroma_child_stop(k);
		return NULL;
	}
	snprintf(url, urllen, "http://127.0.0.1:%s", k->port);
	return k;
}

void
chroma_child_ready(struct chroma_child *k)
{
	k->backoff = 0;
}

/* Waits (the loop is over) up to ms for the pidfd: true when it exited. */
static bool
wait_exit(struct chroma_child *k, int64_t ms)
{
	struct pollfd p = { .fd = k->exitw.fd, .events = POLLIN };
	return poll(&p, 1, (int)ms) == 1;
}

void
chroma_child_stop(struct chroma_child *k)
{
	if (k == NULL)
		return;
	timer_stop(&k->restart);
	if (k->pid) {
		kill(k->pid, SIGTERM);
		if (!wait_exit(k, k->grace_ms)) {
			log_warn("chromadb: agentd's Chroma server (pid %d) still runs after %lld ms; "
			    "killing it", (int)k->pid, (long long)k->grace_ms);
			kill(k->pid, SIGKILL);
			wait_exit(k, CHILD_KILL_WAIT_MS);
		}
		log_info("chromadb: agentd's Chroma server (pid %d) stopped", (int)k->pid);
		gone(k);
	}
	if (k->outw.added) {
		int fd = k->outw.fd;
		loop_del(&k->outw);
		close(fd);
	}
	free(k->command);
	free(k->dir);
	free(k);
}

void
chroma_child_status(const struct chroma_child *k, json_t *o)
{
	json_object_set_new(o, "managed", json_pack("{s:I, s:s, s:s, s:I}", "pid",
	    (json_int_t)k->pid, "port", k->port, "path", k->dir, "restarts",
	    (json_int_t)k->restarts));
}
