/*
 * agg_pg.h: a private PostgreSQL server for the aggregator's tests.
 *
 * The tests that need PostgreSQL start their own: initdb into a temporary
 * directory, pg_ctl on a free loopback port, fsync off. PostgreSQL refuses
 * to run as root, so as root the directory is given to the postgres user and
 * every command runs through `runuser -u postgres --`.
 */
#ifndef AGG_PG_H
#define AGG_PG_H

#include <stddef.h>
#include <stdint.h>

typedef struct agg_pg {
  char bindir[512]; /* where initdb and pg_ctl are */
  char dir[512];    /* the cluster's temporary directory */
  int as_postgres;  /* run the server as the postgres user */
  uint16_t port;
  int started;
  char url[256]; /* postgresql://postgres@127.0.0.1:PORT/postgres */
} agg_pg;

/* Finds the server binaries (PG_BINDIR or /usr/lib/postgresql/N/bin);
   -1 if there are none: the caller skips with exit code 77. */
int agg_pg_find(agg_pg *pg);
/* initdb and start on a free port; CHECK-fails with the log's path. Stops
   the server if a later check fails. */
void agg_pg_setup(agg_pg *pg);
/* Starts (again) on the same port; the shell status of pg_ctl start. */
int agg_pg_start(agg_pg *pg);
/* pg_ctl stop with MODE (fast, immediate); the shell status. */
int agg_pg_stop(agg_pg *pg, const char *mode);

#endif
