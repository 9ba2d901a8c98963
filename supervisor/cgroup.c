/*
 * cgroup: one cgroup per worker with limits, so memory, process count and
 * CPU bind the worker's children (MCP servers, command tools) too.
 *
 * Two host layouts are supported:
 *   v2: the unified hierarchy at /sys/fs/cgroup with the memory and pids
 *       controllers delegated to agentd's cgroup.  agentd moves itself into
 *       a leaf "supervisor" child (v2 forbids processes in inner nodes) and
 *       enables the controllers for its siblings.
 *   v1: separate memory, pids and cpu hierarchies (as on hosts whose
 *       cgroup2 mount carries no controllers).
 * Each worker gets <agentd's cgroup>/agentd-<pid>/<agent> in each
 * hierarchy.  The child joins by writing "0" to cgroup.procs before exec,
 * so it can never fork outside.  Where nothing is writable agentd runs with
 * setrlimit alone and says so once at start.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "supervisor/sup.h"

#define BASE_MAX (PATH_MAX / 2)
static char base_v2[BASE_MAX];
static char base_mem[BASE_MAX], base_pids[BASE_MAX], base_cpu[BASE_MAX];

static int
write_str(const char *dir, const char *file, const char *val)
{
	char path[PATH_MAX];
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (write(fd, val, strlen(val)) < 0)
		rc = -1;
	close(fd);
	return rc;
}

/* agentd's own cgroup path in hierarchy `ctrl` ("" for v2's 0::). */
static int
own_cgroup(const char *ctrl, char *out, size_t outlen)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[1024];
	int found = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2 == NULL)
			continue;
		*c2 = '\0';
		line[strcspn(line, "\n")] = '\0';
		char *path = c2 + 1;
		path[strcspn(path, "\n")] = '\0';
		const char *ctrls = c1 + 1;
		bool match = ctrl[0] == '\0' ? (strcmp(line, "0") == 0 && *ctrls == '\0')
		    : (strcmp(ctrls, ctrl) == 0 || strstr(ctrls, ctrl) != NULL);
		if (match) {
			snprintf(out, outlen, "%s", strcmp(path, "/") == 0 ? "" : path);
			found = 0;
			break;
		}
	}
	fclose(f);
	return found;
}

static int
make_base(const char *mount, const char *ctrl, char *base, size_t len)
{
	char own[BASE_MAX / 2];
	struct stat sb;

	if (stat(mount, &sb) < 0 || own_cgroup(ctrl, own, sizeof(own)) < 0)
		return -1;
	snprintf(base, len, "%s%s/agentd-%d", mount, own, (int)getpid());
	if (mkdir(base, 0755) < 0 && errno != EEXIST) {
		base[0] = '\0';
		return -1;
	}
	return 0;
}

static int
detect_v2(void)
{
	char own[BASE_MAX / 2], path[PATH_MAX], ctl[256] = "";
	int fd;

	if (own_cgroup("", own, sizeof(own)) < 0)
		return -1;
	snprintf(path, sizeof(path), "/sys/fs/cgroup%s/cgroup.controllers", own);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, ctl, sizeof(ctl) - 1);
	close(fd);
	if (n <= 0 || !strstr(ctl, "memory") || !strstr(ctl, "pids"))
		return -1;
	/* Move agentd into a leaf so its own cgroup can delegate. */
	snprintf(path, sizeof(path), "/sys/fs/cgroup%s/agentd-supervisor", own);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -1;
	if (write_str(path, "cgroup.procs", "0") < 0)
		return -1;
	snprintf(path, sizeof(path), "/sys/fs/cgroup%s", own);
	if (write_str(path, "cgroup.subtree_control", "+memory +pids") < 0)
		return -1;
	(void)write_str(path, "cgroup.subtree_control", "+cpu");
	snprintf(base_v2, sizeof(base_v2), "/sys/fs/cgroup%s", own);
	return 0;
}

int
cgroup_detect(void)
{
	if (detect_v2() == 0) {
		log_info("cgroups: v2 at %s (memory, pids)", base_v2);
		return 2;
	}
	if (make_base("/sys/fs/cgroup/memory", "memory", base_mem, sizeof(base_mem)) == 0 &&
	    make_base("/sys/fs/cgroup/pids", "pids", base_pids, sizeof(base_pids)) == 0) {
		if (make_base("/sys/fs/cgroup/cpu", "cpu", base_cpu, sizeof(base_cpu)) < 0)
			base_cpu[0] = '\0';
		log_info("cgroups: v1 memory and pids hierarchies under %s", base_mem);
		return 1;
	}
	log_warn("cgroups: none writable here; limits are enforced by setrlimit "
	    "only and do not bind a worker's children as a group");
	return 0;
}

static int
mkgroup(const char *base, const char *name, char *out, size_t len)
{
	if (base[0] == '\0')
		return -1;
	snprintf(out, len, "%s/%s", base, name);
	if (mkdir(out, 0755) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int
set_num(const char *dir, const char *file, int64_t v)
{
	char s[32];
	snprintf(s, sizeof(s), "%lld", (long long)v);
	return write_str(dir, file, s);
}

/* One limit the worker's cgroup must have: -1 with errno and *what when it
 * could not be made or written. */
static int
must(int rc, const char **what, const char *file)
{
	if (rc < 0 && *what == NULL)
		*what = file;
	return rc;
}

/*
 * A limit the cgroup cannot carry is a failed start, never a worker that
 * runs without it: the limits are a promise to bind the worker's children
 * too.  Only cpu.max is best effort (the cpu controller may not be
 * delegated; cpu_quota says so in the README).  A failure for want of
 * descriptors or memory leaves errno at its cause, so the caller can wait
 * and try again rather than give up.
 */
int
cgroup_prepare(int mode, const char *name, const struct limits *l, char **out,
    char *err, size_t errlen)
{
	char p[PATH_MAX];
	const char *what = NULL;
	int rc = 0;

	*out = NULL;
	if (mode == 0 || (l->memory == 0 && l->nproc == 0 && l->cpu_quota == 0))
		return 0;
	if (mode == 2) {
		if (must(mkgroup(base_v2, name, p, sizeof(p)), &what, "mkdir") == 0) {
			rc |= must(set_num(p, "memory.max", l->memory ? l->memory :
			    INT64_MAX / 2), &what, "memory.max");
			if (l->memory)
				rc |= must(write_str(p, "memory.swap.max", "0"), &what,
				    "memory.swap.max");
			if (l->nproc)
				rc |= must(set_num(p, "pids.max", l->nproc), &what, "pids.max");
			if (l->cpu_quota > 0) {
				char s[64];
				snprintf(s, sizeof(s), "%lld 100000",
				    (long long)(l->cpu_quota * 100000));
				(void)write_str(p, "cpu.max", s);
			}
		} else
			rc = -1;
	} else {
		/* cgroup_enter joins both: the memory group also tells an OOM kill */
		if (must(mkgroup(base_mem, name, p, sizeof(p)), &what, "mkdir") < 0 ||
		    (l->memory && must(set_num(p, "memory.limit_in_bytes", l->memory), &what,
		    "memory.limit_in_bytes") < 0))
			rc = -1;
		else if (l->memory)
			(void)write_str(p, "memory.memsw.limit_in_bytes", "-1");
		if (rc == 0 && (must(mkgroup(base_pids, name, p, sizeof(p)), &what, "mkdir") < 0 ||
		    (l->nproc && must(set_num(p, "pids.max", l->nproc), &what, "pids.max") < 0)))
			rc = -1;
		if (rc == 0 && l->cpu_quota > 0 && mkgroup(base_cpu, name, p, sizeof(p)) == 0) {
			(void)set_num(p, "cpu.cfs_period_us", 100000);
			(void)set_num(p, "cpu.cfs_quota_us", (int64_t)(l->cpu_quota * 100000));
		}
	}
	if (rc < 0) {
		int e = errno;
		snprintf(err, errlen, "cgroup %s: %s: %s", name, what ? what : "?", strerror(e));
		cgroup_release(mode, name);
		errno = e;
		return -1;
	}
	*out = xstrdup(name);
	return 0;
}

/* Runs in the forked child: only async-signal-safe calls. */
int
cgroup_enter(int mode, const char *cg)
{
	char p[PATH_MAX];
	const char *bases[3] = { base_mem, base_pids, base_cpu };

	if (cg == NULL)
		return 0;
	if (mode == 2) {
		snprintf(p, sizeof(p), "%s/%s", base_v2, cg);
		return write_str(p, "cgroup.procs", "0");
	}
	for (int i = 0; i < 3; i++) {
		if (bases[i][0] == '\0')
			continue;
		snprintf(p, sizeof(p), "%s/%s", bases[i], cg);
		if (write_str(p, "cgroup.procs", "0") < 0 && i < 2)
			return -1;
	}
	return 0;
}

static void
kill_members(const char *dir)
{
	char path[PATH_MAX], line[32];
	FILE *f;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	if ((f = fopen(path, "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f))
		kill((pid_t)atoi(line), SIGKILL);
	fclose(f);
}

/* Returns whether the OOM killer acted in this group since it was made. */
bool
cgroup_oom_killed(int mode, const char *cg)
{
	char path[PATH_MAX], line[128];
	FILE *f;
	bool killed = false;

	if (cg == NULL || mode == 0)
		return false;
	if (mode == 2)
		snprintf(path, sizeof(path), "%s/%s/memory.events", base_v2, cg);
	else
		snprintf(path, sizeof(path), "%s/%s/memory.oom_control", base_mem, cg);
	if ((f = fopen(path, "re")) == NULL)
		return false;
	while (fgets(line, sizeof(line), f)) {
		long long n;
		if (sscanf(line, "oom_kill %lld", &n) == 1 && n > 0)
			killed = true;
	}
	fclose(f);
	return killed;
}

void
cgroup_release(int mode, const char *cg)
{
	char p[PATH_MAX];
	const char *bases[3] = { base_mem, base_pids, base_cpu };

	if (cg == NULL)
		return;
	if (mode == 2) {
		snprintf(p, sizeof(p), "%s/%s", base_v2, cg);
		kill_members(p);
		(void)rmdir(p);
		return;
	}
	for (int i = 0; i < 3; i++) {
		if (bases[i][0] == '\0')
			continue;
		snprintf(p, sizeof(p), "%s/%s", bases[i], cg);
		kill_members(p);
		(void)rmdir(p);	/* EBUSY while members die: reused next spawn */
	}
}

void
cgroup_cleanup(int mode)
{
	const char *bases[3] = { base_mem, base_pids, base_cpu };
	if (mode == 1)
		for (int i = 0; i < 3; i++)
			if (bases[i][0])
				(void)rmdir(bases[i]);
}
