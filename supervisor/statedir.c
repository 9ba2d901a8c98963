/*
 * statedir: agentd's claim on its state directory.
 *
 * One agentd per state_dir: a second one would run every agent a second
 * time and write the same event ids and sequence numbers into the same
 * database.  The claim is a POSIX lock on <state_dir>/agentd.pid, taken
 * before the store is opened and held for agentd's life (the descriptor is
 * never closed; the kernel drops the lock when the process ends, however
 * it ends, so a pid file left by a killed agentd stops nobody).  The file
 * holds the holder's pid, for people and for the refusal message.  POSIX
 * locks are not inherited across fork, and the descriptor is close-on-exec,
 * so no worker ever holds it.
 *
 * Creating that file is also the first write into state_dir, so a
 * directory agentd cannot write (read-only file system, permissions) is
 * refused here, by name and reason, before anything else depends on it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "supervisor/sup.h"

/* Who holds the lock: the kernel's answer, else what the file says. */
static pid_t
holder(int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char buf[32];
	ssize_t n;

	if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK && fl.l_pid > 0)
		return fl.l_pid;
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return (pid_t)atoi(buf);
}

int
state_dir_claim(const char *dir, char *err, size_t errlen)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char path[4096], pid[32];
	int fd, n;

	snprintf(path, sizeof(path), "%s/agentd.pid", dir);
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "state_dir %s is not writable: cannot create %s: %s",
		    dir, path, strerror(errno));
		return -1;
	}
	if (fcntl(fd, F_SETLK, &fl) < 0) {
		if (errno == EACCES || errno == EAGAIN) {
			pid_t p = holder(fd);
			char who[32] = "";
			if (p > 0)
				snprintf(who, sizeof(who), ", pid %d", (int)p);
			snprintf(err, errlen, "state_dir %s is in use by another agentd%s "
			    "(it holds %s); stop that one, or give this one another state_dir",
			    dir, who, path);
		} else
			snprintf(err, errlen, "cannot lock %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		snprintf(err, errlen, "state_dir %s: cannot write %s: %s", dir, path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}
