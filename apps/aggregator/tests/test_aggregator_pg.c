/*
 * test_aggregator_pg.c: the service against a real PostgreSQL server that
 * the test starts itself: initdb + pg_ctl in a temporary directory, on a
 * free port, listening on loopback and a socket in that directory. As root
 * (PostgreSQL refuses to run as root) the directory is given to the
 * postgres user and the server tools run via `runuser -u postgres --`.
 * Exits 77 (ctest SKIP) only when the PostgreSQL server binaries are not
 * installed; any other failure is a failure.
 */
#include "agg_pg.h"
#include "agg_testlib.h"
#include "store.h"

#include <unistd.h>

static agg_pg pg;

int main(void) {
  if (agg_pg_find(&pg) != 0) {
    printf("SKIP: PostgreSQL server binaries not found (install postgresql, "
           "or set PG_BINDIR)\n");
    return 77;
  }
  agg_pg_setup(&pg);
  const char *db = pg.url;

  agg_serve_opts o = agg_test_opts(db);
  o.partitions = 4;
  o.batch = 64;
  agg_service *svc = agg_test_start(&o);
  uint16_t port = agg_service_port(svc);
  const char *ev = "{\"user_id\":5,\"seq\":1,\"event\":\"click\","
                   "\"data\":{\"quote\":\"it's \\\"fine\\\"\"}}";
  CHECK(agg_test_http(port, "POST", "/track", ev, strlen(ev), NULL, NULL) ==
        202);
  /* Again: idempotent, stored once. */
  CHECK(agg_test_http(port, "POST", "/track", ev, strlen(ev), NULL, NULL) ==
        202);
  CHECK(agg_test_http(port, "POST", "/track", "{bad", 4, NULL, NULL) == 400);
  agg_counters c;
  CHECK(agg_service_stop(svc, &c) == 0);
  CHECK_EQ(c.stored, 1);
  CHECK_EQ(c.duplicates, 1);
  agg_test_log("postgresql: single event, duplicate ignored: ok");

  /* Order under load, single and batch requests; fresh table first. */
  for (unsigned batch = 1; batch <= 100; batch += 99) {
    agg_store *st;
    char err[256];
    CHECK_MSG(agg_store_open(db, 0, &st, err, sizeof err) == 0, "%s", err);
    CHECK(agg_store_reset(st, err, sizeof err) == 0);
    agg_store_close(st);
    svc = agg_test_start(&o);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", agg_service_port(svc));
    agg_load_opts lo = {.url = url,
                        .rate = 0,
                        .secs = 1.0,
                        .users = 50,
                        .batch = batch,
                        .conns = 4};
    agg_accept_log log;
    CHECK(agg_accept_log_init(&log, lo.users) == 0);
    agg_load_result r;
    CHECK_MSG(agg_load_run(&lo, &log, &r, err, sizeof err) == 0, "%s", err);
    CHECK(r.accepted > 0 && r.errors == 0);
    CHECK(agg_service_stop(svc, &c) == 0);
    CHECK_EQ(c.stored, r.accepted);
    CHECK_EQ(c.db_errors, 0);
    uint64_t rows;
    char msg[256];
    CHECK_MSG(agg_accept_log_verify(&log, db, &rows, msg, sizeof msg) == 0,
              "%s", msg);
    agg_accept_log_free(&log);
    agg_test_log("postgresql (batch %u): %s", batch, msg);
  }
  agg_test_on_fail = NULL;
  agg_pg_stop(&pg, "fast");
  agg_test_rmdir(pg.dir);
  return 0;
}
