/*
 * agentd: entry point.  Parses the command line, loads and checks the
 * configuration, claims the state directory (statedir.c), opens the store
 * and hands over to the loop (sup.c).
 * Everything that can fail before the first worker starts fails here, with
 * a message, and exit status 1.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "supervisor/sup.h"

#define DEFAULT_CONFIG "/etc/agentd/agents.yaml"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: agentd [-c FILE] [--check-config] [-v] [--version]\n"
	    "  -c, --config FILE   configuration (default " DEFAULT_CONFIG ")\n"
	    "      --check-config  validate FILE, print what is wrong, exit 0 or 1\n"
	    "  -v, --verbose       debug logging\n"
	    "      --version       print the version\n");
}

static char *
exe_sibling(const char *name)
{
	char self[PATH_MAX], path[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return NULL;
	self[n] = '\0';
	snprintf(path, sizeof(path), "%s/%s", dirname(self), name);
	return access(path, X_OK) == 0 ? xstrdup(path) : NULL;
}

/* The worker binary: configured, $AGENTD_WORKER, beside agentd (a build
 * tree), in ../libexec/agentd beside it (an install, wherever it was
 * moved), or the libexec directory of the build's PREFIX. */
static char *
find_worker(const struct config *c)
{
	char *p;
	if (c->g.worker_path)
		return xstrdup(c->g.worker_path);
	if (getenv("AGENTD_WORKER"))
		return xstrdup(getenv("AGENTD_WORKER"));
	if ((p = exe_sibling("agentd-worker")) != NULL ||
	    (p = exe_sibling("../libexec/agentd/agentd-worker")) != NULL)
		return p;
	return xstrdup(AGENTD_LIBEXECDIR "/agentd-worker");
}

/* Workers chdir into their own directories: paths must be absolute. */
static int
absolutize(char **path)
{
	char buf[PATH_MAX];
	if ((*path)[0] == '/')
		return 0;
	if (getcwd(buf, sizeof(buf)) == NULL)
		return -1;
	size_t n = strlen(buf) + strlen(*path) + 2;
	char *abs = xmalloc(n);
	snprintf(abs, n, "%s/%s", buf, *path);
	free(*path);
	*path = abs;
	return 0;
}

/* Warnings are for --check-config: at start, what they warn of is logged
 * where it happens (a missing key when the worker starts, agent.c). */
static int
load(const char *path, struct config **cfg, bool check)
{
	struct conf_errors errs = { 0 };
	int rc = config_load(path, cfg, &errs);
	for (size_t i = 0; check && i < errs.nwarnings; i++)
		fprintf(stderr, "%s\n", errs.warnings[i]);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msgs[i]);
	conf_errors_free(&errs);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = DEFAULT_CONFIG;
	bool check = false, verbose = false;
	struct sup s = { .ctl_fd = -1, .lock_fd = -1 };
	char err[512];
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'C': check = true; break;
		case 'v': verbose = true; break;
		case 'V': printf("agentd %s\n", AGENTD_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!check && sup_block_signals() < 0) {
		fprintf(stderr, "agentd: sigprocmask: %s\n", strerror(errno));
		return 1;
	}
	if (load(path, &s.cfg, check) < 0)
		return 1;
	if (check) {
		printf("%s: ok, %zu agents\n", path, s.cfg->nagents);
		config_free(s.cfg);
		return 0;
	}
	if (log_init("agentd", verbose ? LL_DEBUG : s.cfg->g.log_level,
	    s.cfg->g.log_json, s.cfg->g.log_file) < 0)
		log_error("cannot open log file %s: %s; logging to stderr",
		    s.cfg->g.log_file, strerror(errno));
	s.config_path = xstrdup(path);
	if (mkdir_p(s.cfg->g.state_dir, 0700) < 0) {
		log_error("cannot create state_dir %s: %s", s.cfg->g.state_dir, strerror(errno));
		goto out;
	}
	if (absolutize(&s.cfg->g.state_dir) < 0 || absolutize(&s.cfg->g.control_socket) < 0) {
		log_error("state_dir %s: %s", s.cfg->g.state_dir, strerror(errno));
		goto out;
	}
	/* Before the store: a second agentd must not open the database at all. */
	if ((s.lock_fd = state_dir_claim(s.cfg->g.state_dir, err, sizeof(err))) < 0) {
		log_error("%s", err);
		goto out;
	}
	s.worker_path = find_worker(s.cfg);
	if (access(s.worker_path, X_OK) < 0) {
		log_error("worker program %s: %s", s.worker_path, strerror(errno));
		goto out;
	}
	if (store_open(&s.store, &s.cfg->g, err, sizeof(err)) < 0) {
		log_error("store: %s", err);
		goto out;
	}
	/* Orphans of workers (tools, MCP servers) come to us to be reaped. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	if (loop_init() < 0) {
		log_error("epoll: %s", strerror(errno));
		goto out;
	}
	s.cgroup_mode = cgroup_detect();
	rc = sup_run(&s);
out:
	store_close(s.store);
	cgroup_cleanup(s.cgroup_mode);
	loop_fini();
	config_free(s.cfg);
	free(s.config_path);
	free(s.worker_path);
	return rc;
}
