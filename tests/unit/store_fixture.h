/* The state store on a fresh temporary state_dir, for the suites that test
 * it (test_sup_db, test_sup_memory): the database backends, small bounds. */
#ifndef AGENTD_STORE_FIXTURE_H
#define AGENTD_STORE_FIXTURE_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "conf/config.h"
#include "supervisor/store.h"

static char dir[64];
static struct global_conf g;

static void
fixture_setup(const char *what)
{
	snprintf(dir, sizeof(dir), "/tmp/agentd-%s-XXXXXX", what);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	memset(&g, 0, sizeof(g));
	g.state_dir = dir;
	g.event_store = "database";
	g.memory_store = "database";
	g.event_retention = 1000;
	g.memory_retention = 100;
}

static void
teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
}

static struct store *
open_store(void)
{
	struct store *s;
	char err[256];
	ck_assert_msg(store_open(&s, &g, err, sizeof(err)) == 0, "%s", err);
	return s;
}

#endif
