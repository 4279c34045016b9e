/*
 * test_aggregator_pg_outage.c: PostgreSQL stopped for 10 s under load, then
 * started again: nothing accepted is lost, nothing is stored twice.
 *
 * The test starts its own server (initdb + pg_ctl in a temporary directory
 * on a free port, as test_aggregator_pg does; via `runuser -u postgres` as
 * root), then runs the service in process with 4 partitions, --batch 64 and
 * --queue-limit 500 under 2,000 events/s for 20 s. Three seconds in, the
 * server is stopped with `pg_ctl stop -m fast` (connections cut); ten
 * seconds later it is started again on the same port. Meanwhile:
 *   - the workers' inserts fail; each keeps its buffered batch and retries
 *     with backoff (weir_agg_db_errors_total grows), resetting its
 *     connection once the server is back;
 *   - the workers stop draining, the mailboxes fill to the limit, and the
 *     load generator gets 503 + Retry-After (backpressure reached the
 *     client: checked in /metrics during the outage);
 *   - after the restart, everything accepted is stored: the table is checked
 *     row by row against the load's accept log (each accepted event exactly
 *     once, UNIQUE(user_id, seq) with ON CONFLICT DO NOTHING; each user's in
 *     the order sent).
 * Exits 77 (ctest SKIP) only when the PostgreSQL server binaries are absent.
 */
#include "agg_pg.h"
#include "agg_testlib.h"

#include <pthread.h>
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
  o.ack = AGG_ACK_QUEUED; /* the mailbox bound is what is tested */
  o.partitions = 4;
  o.batch = 64;
  o.queue_limit = 500;
  agg_service *svc = agg_test_start(&o);
  uint16_t port = agg_service_port(svc);
  agg_load_job j = {0};
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
  j.o = (agg_load_opts){.url = url,
                        .rate = 2000,
                        .secs = 20,
                        .users = 100,
                        .batch = 1,
                        .conns = 4};
  CHECK(agg_accept_log_init(&j.log, j.o.users) == 0);
  pthread_t th;
  CHECK(pthread_create(&th, NULL, agg_load_thread, &j) == 0);

  agg_test_sleep_ms(3000);
  long long acc0 = agg_test_metric(port, "weir_agg_accepted_total");
  CHECK_MSG(agg_pg_stop(&pg, "fast") == 0, "pg_ctl stop failed");
  double t_down = agg_test_now_ms();
  long long rej0 = agg_test_metric(port, "weir_agg_rejected_full_total");
  long long qmax = 0;
  while (agg_test_now_ms() - t_down < 10000) {
    long long q = agg_test_metric(port, "weir_agg_queue_len_all");
    if (q > qmax) qmax = q;
    agg_test_sleep_ms(200);
  }
  long long rej1 = agg_test_metric(port, "weir_agg_rejected_full_total");
  long long errs = agg_test_metric(port, "weir_agg_db_errors_total");
  long long acc1 = agg_test_metric(port, "weir_agg_accepted_total");
  CHECK_MSG(agg_pg_start(&pg) == 0, "pg_ctl restart failed: see %s/pg.log",
            pg.dir);
  double t_up = agg_test_now_ms();
  agg_test_log("outage: %.1f s; accepted before %lld, during %lld; 503s "
               "during %lld; queue peak %lld (limit 4 x 500); failed "
               "transactions %lld",
               (t_up - t_down) / 1e3, acc0, acc1 - acc0, rej1 - rej0, qmax,
               errs);
  /* The backlog drains once the workers' retries find the server again. */
  while (agg_test_now_ms() - t_up < 6000 &&
         agg_test_metric(port, "weir_agg_queue_len_all") > 100)
    agg_test_sleep_ms(50);
  agg_test_log("backlog under 100 events %.2f s after the restart",
               (agg_test_now_ms() - t_up) / 1e3);
  CHECK_MSG(rej1 - rej0 > 1000, "backpressure did not reach the clients");
  CHECK_MSG(qmax >= 1800, "the mailboxes did not fill during the outage");
  CHECK(errs > 0);

  pthread_join(th, NULL);
  CHECK_MSG(j.rc == 0, "%s", j.err);
  CHECK_MSG(j.r.errors == 0 && j.r.invalid == 0, "errors %llu invalid %llu",
            (unsigned long long)j.r.errors, (unsigned long long)j.r.invalid);
  double t_end = agg_test_now_ms();
  CHECK_MSG(agg_test_wait_stored(port, 30000) == 0,
            "accepted events not stored 30 s after the load");
  agg_test_log("load ended %.1f s after the restart; all stored %.2f s "
               "later",
               (t_end - t_up) / 1e3, (agg_test_now_ms() - t_end) / 1e3);
  agg_counters c;
  CHECK(agg_service_stop(svc, &c) == 0);
  CHECK(c.stored + c.duplicates >= j.r.accepted);
  uint64_t rows;
  char msg[256];
  CHECK_MSG(agg_accept_log_verify(&j.log, db, &rows, msg, sizeof msg) == 0,
            "%s", msg);
  CHECK_EQ(rows, j.r.accepted);
  agg_test_log("load: %llu accepted, %llu refused (503, %llu with "
               "Retry-After); %s",
               (unsigned long long)j.r.accepted,
               (unsigned long long)j.r.rejected,
               (unsigned long long)j.r.retry_after, msg);
  agg_accept_log_free(&j.log);
  agg_test_on_fail = NULL;
  agg_pg_stop(&pg, "fast");
  agg_test_rmdir(pg.dir);
  return 0;
}
