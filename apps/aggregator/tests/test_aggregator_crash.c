/*
 * test_aggregator_crash.c: workers that crash under load lose nothing.
 *
 * The service runs in process against SQLite with --fail-every 97: each
 * worker's handle_cast returns a negative value (a crash) on every 97th
 * event it takes, with that event in hand. The partition supervisor restarts
 * the worker in the same slot with its mailbox kept; terminate has stored the
 * rows buffered before the crash and requeued the event in hand. The load
 * (single-event requests, then NDJSON batches) is checked against the
 * database row by row: every accepted event stored exactly once, each user's
 * in the order sent; the crashes are counted in /metrics
 * (weir_agg_worker_crashes_total) and there must be at least as many as the
 * handled events imply. Also: the serve command line refuses --fail-every 1
 * (it would crash on the retried event forever).
 */
#include "agg_testlib.h"

static void run(const char *dir, unsigned batch, double rate, double secs) {
  char db[1100];
  snprintf(db, sizeof db, "sqlite:%s/crash-%u.db", dir, batch);
  agg_serve_opts o = agg_test_opts(db);
  o.partitions = 4;
  o.batch = 16;
  o.fail_every = 97;
  agg_service *svc = agg_test_start(&o);
  uint16_t port = agg_service_port(svc);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
  agg_load_opts lo = {.url = url,
                      .rate = rate,
                      .secs = secs,
                      .users = 60,
                      .batch = batch,
                      .conns = 4};
  agg_accept_log log;
  CHECK(agg_accept_log_init(&log, lo.users) == 0);
  agg_load_result r;
  char err[256];
  CHECK_MSG(agg_load_run(&lo, &log, &r, err, sizeof err) == 0, "%s", err);
  CHECK_MSG(r.errors == 0 && r.invalid == 0,
            "errors %llu invalid %llu: every request must be answered",
            (unsigned long long)r.errors, (unsigned long long)r.invalid);
  CHECK(r.accepted > 1000);
  CHECK_MSG(agg_test_wait_stored(port, 30000) == 0,
            "accepted events not stored after 30 s");
  long long crashes = agg_test_metric(port, "weir_agg_worker_crashes_total");
  /* Each worker crashes once per 97 events taken, and a requeued event is
     taken again: at least accepted / 97 minus one partial run per worker. */
  long long want = (long long)(r.accepted / 97) - (long long)o.partitions;
  agg_test_log("batch %u: %llu accepted, %llu crashes (>= %lld expected)",
               batch, (unsigned long long)r.accepted, crashes, want);
  CHECK_MSG(crashes >= want && crashes > 0, "crashes %lld, want >= %lld",
            crashes, want);
  agg_counters c;
  CHECK(agg_service_stop(svc, &c) == 0);
  CHECK_EQ(c.stored, r.accepted);
  CHECK_EQ(c.crashes, crashes); /* none injected while stopping */
  uint64_t rows;
  char msg[256];
  CHECK_MSG(agg_accept_log_verify(&log, db, &rows, msg, sizeof msg) == 0, "%s",
            msg);
  CHECK_EQ(rows, r.accepted);
  agg_test_log("batch %u: %s", batch, msg);
  agg_accept_log_free(&log);
}

int main(void) {
  char dir[512];
  agg_test_tmpdir(dir, sizeof dir);
  run(dir, 1, 4000, 2.0);
  run(dir, 50, 20000, 1.5);

  agg_args a;
  char err[256];
  char *bad[] = {"weir-aggregator", "serve", "--fail-every", "1", NULL};
  CHECK(agg_args_parse(4, bad, &a, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "--fail-every") != NULL, "%s", err);
  char *good[] = {"weir-aggregator", "serve", "--fail-every=97", NULL};
  CHECK(agg_args_parse(3, good, &a, err, sizeof err) == 0);
  CHECK_EQ(a.serve.fail_every, 97);
  agg_test_log("--fail-every 1 refused: %s", err);
  agg_test_rmdir(dir);
  return 0;
}
