/*
 * test_aggregator_soak.c: twice the service's capacity for a minute, with
 * memory bounded and nothing lost.
 *
 * `serve` runs as a child process (so its RSS is its own) with 2
 * partitions, --work-ms 2 (capacity about 1,000 events/s) and
 * --queue-limit 200, under 2,000 single-event requests per second for
 * AGG_SOAK_SECS seconds (default 60, as the issue asks; set it lower for a
 * quick look). Checked:
 *   - every request is answered 202 or 503 (the load generator counts
 *     connection errors and any other status as errors: there must be none),
 *     and every 503 carries Retry-After;
 *   - VmRSS, sampled from /proc/PID/status every 500 ms, stays under 64 MiB
 *     and does not grow: the peak of the last 10 s is within 4 MiB of the
 *     peak of the first 10 s after a 5 s warm-up (the mailboxes are bounded,
 *     so the memory must be too);
 *   - after SIGTERM (exit 0) the database holds exactly the accepted
 *     events, once each, each user's in order.
 * It prints the RSS figures (start, peak, growth) for docs/RELIABILITY.md.
 * Under ASan the RSS bounds are not checked (its quarantine and shadow
 * memory dominate), everything else is.
 */
#include "agg_testlib.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

static int server = -1;
static void kill_server(void) {
  if (server > 0) kill(server, SIGKILL);
}

#define MAX_SAMPLES 100000

int main(void) {
  double secs = 60;
  const char *env = getenv("AGG_SOAK_SECS");
  if (env && atof(env) >= 15) secs = atof(env);
  char dir[512], db[1100], dbarg[1200];
  agg_test_tmpdir(dir, sizeof dir);
  snprintf(db, sizeof db, "sqlite:%s/soak.db", dir);
  snprintf(dbarg, sizeof dbarg, "--db=%s", db);
  const char *args[] = {
      dbarg,           "--work-ms=2", "--ack=queued", "--partitions", "2",
      "--queue-limit", "200",         "--batch",      "64",           NULL};
  uint16_t port;
  server = agg_test_spawn_serve(AGG_BINARY, args, &port);
  agg_test_on_fail = kill_server;
  long rss_start = agg_test_rss_kib(server);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
  agg_load_job j = {.o = {.url = url,
                          .rate = 2000,
                          .secs = secs,
                          .users = 200,
                          .batch = 1,
                          .conns = 4}};
  CHECK(agg_accept_log_init(&j.log, j.o.users) == 0);
  pthread_t th;
  double t0 = agg_test_now_ms();
  CHECK(pthread_create(&th, NULL, agg_load_thread, &j) == 0);
  static long rss[MAX_SAMPLES];
  static double at[MAX_SAMPLES];
  size_t n = 0;
  long long qmax = 0;
  while (!__atomic_load_n(&j.done, __ATOMIC_ACQUIRE) && n < MAX_SAMPLES) {
    agg_test_sleep_ms(500);
    rss[n] = agg_test_rss_kib(server);
    at[n] = (agg_test_now_ms() - t0) / 1e3;
    CHECK_MSG(rss[n] > 0, "cannot read the server's RSS");
    n++;
    long long q = agg_test_metric(port, "weir_agg_queue_len_all");
    if (q > qmax) qmax = q;
  }
  pthread_join(th, NULL);
  CHECK_MSG(j.rc == 0, "%s", j.err);
  long peak = 0, early = 0, late = 0;
  for (size_t i = 0; i < n; i++) {
    if (rss[i] > peak) peak = rss[i];
    if (at[i] >= 5 && at[i] < 15 && rss[i] > early) early = rss[i];
    if (at[i] >= secs - 10 && rss[i] > late) late = rss[i];
  }
  agg_test_log("soak %.0f s at %.0f events/s offered (capacity ~1000/s): "
               "%llu requests, %llu accepted (%.0f/s), %llu refused 503 "
               "(%llu with Retry-After), %llu errors, %llu invalid",
               secs, j.o.rate, (unsigned long long)j.r.requests,
               (unsigned long long)j.r.accepted, j.r.rate,
               (unsigned long long)j.r.rejected,
               (unsigned long long)j.r.retry_after,
               (unsigned long long)j.r.errors, (unsigned long long)j.r.invalid);
  agg_test_log("RSS: start %ld KiB, peak %ld KiB, peak of 5-15 s %ld KiB, "
               "peak of the last 10 s %ld KiB (growth %+ld KiB); queue "
               "peak %lld (limit 2 x 200); p50 %.2f ms p99 %.2f ms",
               rss_start, peak, early, late, late - early, qmax, j.r.p50_ms,
               j.r.p99_ms);
  CHECK_MSG(j.r.errors == 0 && j.r.invalid == 0,
            "every request must be answered 202 or 503");
  CHECK(j.r.rejected > 0 && j.r.retry_after == j.r.rejected);
  CHECK(j.r.accepted > 0);
  CHECK_MSG(qmax <= 400, "queue %lld over its bound", qmax);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  /* ASan holds freed memory in quarantine (256 MiB) and maps shadow
     memory, and TSan keeps shadow memory and history that grow with the
     run: RSS says nothing about the service there. Leaks are still caught
     (LeakSanitizer fails the ASan server's exit below); the plain build
     checks the bound. */
  agg_test_log("sanitizer build: RSS bounds not checked");
#else
  CHECK_MSG(peak < 64 * 1024, "RSS peak %ld KiB", peak);
  CHECK_MSG(late - early < 4096, "RSS grew %ld KiB", late - early);
#endif
  CHECK(kill(server, SIGTERM) == 0);
  CHECK_EQ(agg_test_wait_exit(server), 0);
  server = -1;
  agg_test_on_fail = NULL;
  uint64_t rows;
  char msg[384];
  CHECK_MSG(agg_accept_log_verify(&j.log, db, &rows, msg, sizeof msg) == 0,
            "%s", msg);
  CHECK_EQ(rows, j.r.accepted);
  agg_test_log("after SIGTERM: %s", msg);
  agg_accept_log_free(&j.log);
  agg_test_rmdir(dir);
  return 0;
}
