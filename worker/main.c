/*
 * agentd-worker: one agent's process, started by agentd as
 * `agentd-worker AGENT` with its pipe to agentd on fd 3 (AGENTD_FD
 * overrides the number, for running it by hand under a test harness).
 *
 * main only prepares the process -- process title, logging to stderr
 * (which agentd turns into its own log lines, under the agent's name),
 * the test hooks -- and hands the pipe to worker_serve().  Everything else
 * (isolation, limits, environment, directory) agentd has done before the
 * exec.  Nothing big is allocated before the config arrives, so an idle
 * worker stays small.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bsd/unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "worker/mcp_probe.h"
#include "worker/test_hooks.h"
#include "worker/worker.h"

extern char **environ;

static int
pipe_fd(void)
{
	const char *v = getenv("AGENTD_FD");
	char *end;
	long fd;

	if (v == NULL || *v == '\0')
		return 3;
	errno = 0;
	fd = strtol(v, &end, 10);
	if (errno || *end != '\0' || fd < 0 || fd > INT_MAX) {
		log_error("AGENTD_FD=\"%s\" is not a descriptor number", v);
		return -1;
	}
	return (int)fd;
}

int
main(int argc, char **argv)
{
	char *name;
	int fd, rc;

	if (argc >= 2 && strcmp(argv[1], "--mcp-probe") == 0)
		return mcp_probe_main(argc - 1, argv + 1);
	log_init("agentd-worker", LL_INFO, 0, NULL);
	if (argc != 2 || argv[1][0] == '\0') {
		fprintf(stderr, "usage: agentd-worker AGENT (started by agentd, "
		    "with its pipe on fd 3)\n");
		return 2;
	}
	name = xstrdup(argv[1]);	/* setproctitle reuses argv's memory */
	setproctitle_init(argc, argv, environ);
	worker_use_proctitle();
	setproctitle("-agentd-worker: %s starting", name);

	test_hooks_at_start();
	if ((fd = pipe_fd()) < 0) {
		free(name);
		return 2;
	}
	if (fcntl(fd, F_GETFD) < 0) {
		log_error("fd %d is not open: agentd-worker is started by agentd", fd);
		free(name);
		return 2;
	}
	set_cloexec(fd);	/* tools' children must not hold agentd's pipe */
	rc = worker_serve(fd, name);
	free(name);
	return rc;
}
