/*
 * agg_pg.c: a private PostgreSQL server for the aggregator's tests (see
 * agg_pg.h).
 */
#include "agg_pg.h"

#include "agg_testlib.h"

#include <glob.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static agg_pg *g_pg; /* for the stop-on-failure hook */

int agg_pg_find(agg_pg *pg) {
  memset(pg, 0, sizeof *pg);
  const char *env = getenv("PG_BINDIR");
  if (env) {
    snprintf(pg->bindir, sizeof pg->bindir, "%s", env);
  } else {
    glob_t g;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) != 0) return -1;
    snprintf(pg->bindir, sizeof pg->bindir, "%s", g.gl_pathv[g.gl_pathc - 1]);
    globfree(&g);
    *strrchr(pg->bindir, '/') = '\0';
  }
  char p[600];
  snprintf(p, sizeof p, "%s/pg_ctl", pg->bindir);
  return access(p, X_OK);
}

static int run(const agg_pg *pg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int run(const agg_pg *pg, const char *fmt, ...) {
  char cmd[2048], full[2300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  snprintf(full, sizeof full, "%s%s",
           pg->as_postgres ? "runuser -u postgres -- " : "", cmd);
  agg_test_log("$ %s", full);
  return system(full);
}

int agg_pg_start(agg_pg *pg) {
  int rc = run(pg,
               "%s/pg_ctl -D %s/data -l %s/pg.log -w -t 60 -o \"-p %u -k %s "
               "-c listen_addresses=127.0.0.1 -c fsync=off\" start >/dev/null",
               pg->bindir, pg->dir, pg->dir, pg->port, pg->dir);
  if (rc == 0) pg->started = 1;
  return rc;
}

int agg_pg_stop(agg_pg *pg, const char *mode) {
  int rc = run(pg, "%s/pg_ctl -D %s/data -m %s -w stop >/dev/null", pg->bindir,
               pg->dir, mode);
  if (rc == 0) pg->started = 0;
  return rc;
}

static void stop_on_fail(void) {
  if (g_pg && g_pg->started) agg_pg_stop(g_pg, "immediate");
}

void agg_pg_setup(agg_pg *pg) {
  pg->as_postgres = geteuid() == 0;
  agg_test_tmpdir(pg->dir, sizeof pg->dir);
  if (pg->as_postgres) {
    struct passwd *pw = getpwnam("postgres");
    CHECK_MSG(pw, "running as root but there is no postgres user");
    CHECK(chown(pg->dir, pw->pw_uid, pw->pw_gid) == 0);
  }
  agg_test_free_ports(&pg->port, 1);
  CHECK_MSG(run(pg,
                "%s/initdb -D %s/data -U postgres -A trust --no-sync -E UTF8 "
                ">%s/initdb.log 2>&1",
                pg->bindir, pg->dir, pg->dir) == 0,
            "initdb failed: see %s/initdb.log", pg->dir);
  CHECK_MSG(agg_pg_start(pg) == 0, "pg_ctl start failed: see %s/pg.log",
            pg->dir);
  g_pg = pg;
  agg_test_on_fail = stop_on_fail;
  snprintf(pg->url, sizeof pg->url,
           "postgresql://postgres@127.0.0.1:%u/postgres", pg->port);
}
