/*
 * test_aggregator_sqlite_faults.c: SQLite refusing writes under load loses
 * nothing. Three faults, each under a steady load, each checked against the
 * database row by row (every accepted event stored exactly once, each
 * user's in order):
 *
 *  1. busy: another connection holds an EXCLUSIVE transaction for 3 s in
 *     the middle of the load. The workers wait in SQLite's busy handler
 *     (busy_timeout 10 s), their mailboxes fill up to --queue-limit, the
 *     clients get 503 + Retry-After, and when the lock goes everything
 *     accepted is stored.
 *  2. injected write failures: --fail-db-every 3 makes every third
 *     transaction of each worker fail after its rows were written (the
 *     rollback path); the rows stay buffered and are retried.
 *  3. a real I/O error: `serve` as a child process whose file-size limit
 *     (RLIMIT_FSIZE, set from outside with prlimit) drops to 4 KiB for 2 s
 *     mid-load, so SQLite's writes to the WAL fail with EFBIG (SIGXFSZ is
 *     ignored); then the limit is lifted. The failed transactions are
 *     counted in weir_agg_db_errors_total and retried; the service is then
 *     stopped with SIGTERM and must exit 0.
 */
#include "agg_testlib.h"

#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <unistd.h>

static void start_load(agg_load_job *j, uint16_t port, double rate, double secs,
                       pthread_t *th) {
  memset(j, 0, sizeof *j);
  snprintf(j->url, sizeof j->url, "http://127.0.0.1:%u", port);
  j->o = (agg_load_opts){.url = j->url,
                         .rate = rate,
                         .secs = secs,
                         .users = 40,
                         .batch = 1,
                         .conns = 4};
  CHECK(agg_accept_log_init(&j->log, j->o.users) == 0);
  CHECK(pthread_create(th, NULL, agg_load_thread, j) == 0);
}

static void finish_load(agg_load_job *j, pthread_t th) {
  pthread_join(th, NULL);
  CHECK_MSG(j->rc == 0, "%s", j->err);
  CHECK_MSG(j->r.errors == 0 && j->r.invalid == 0, "errors %llu invalid %llu",
            (unsigned long long)j->r.errors, (unsigned long long)j->r.invalid);
}

static void verify(agg_load_job *j, const char *db, const char *what) {
  uint64_t rows;
  char msg[256];
  CHECK_MSG(agg_accept_log_verify(&j->log, db, &rows, msg, sizeof msg) == 0,
            "%s: %s", what, msg);
  CHECK_EQ(rows, j->r.accepted);
  agg_test_log("%s: %s", what, msg);
  agg_accept_log_free(&j->log);
}

static void busy(const char *dir) {
  char db[1100];
  snprintf(db, sizeof db, "sqlite:%s/busy.db", dir);
  agg_serve_opts o = agg_test_opts(db);
  o.ack = AGG_ACK_QUEUED; /* the mailbox bound is what is tested */
  o.queue_limit = 200;
  agg_service *svc = agg_test_start(&o);
  uint16_t port = agg_service_port(svc);
  agg_load_job j;
  pthread_t th;
  start_load(&j, port, 3000, 5.0, &th);
  agg_test_sleep_ms(1000);
  sqlite3 *h;
  CHECK(sqlite3_open(db + 7, &h) == SQLITE_OK);
  sqlite3_busy_timeout(h, 10000);
  CHECK(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL) == SQLITE_OK);
  long long rej0 = agg_test_metric(port, "weir_agg_rejected_full_total");
  agg_test_sleep_ms(2500);
  long long q = agg_test_metric(port, "weir_agg_queue_len_all");
  long long rej1 = agg_test_metric(port, "weir_agg_rejected_full_total");
  agg_test_sleep_ms(500);
  CHECK(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(h);
  finish_load(&j, th);
  agg_test_log("busy: lock held 3 s: queue %lld (limit 4 x 200), 503s "
               "during the lock %lld, total 503s %llu (%llu with "
               "Retry-After), accepted %llu",
               q, rej1 - rej0, (unsigned long long)j.r.rejected,
               (unsigned long long)j.r.retry_after,
               (unsigned long long)j.r.accepted);
  CHECK_MSG(q >= 700, "mailboxes did not fill while the db was locked (%lld)",
            q);
  CHECK_MSG(rej1 > rej0, "no 503 while the database was locked");
  CHECK_EQ(j.r.retry_after, j.r.rejected);
  agg_counters c;
  CHECK(agg_service_stop(svc, &c) == 0);
  CHECK_EQ(c.stored, j.r.accepted);
  verify(&j, db, "busy");
}

static void injected(const char *dir) {
  char db[1100];
  snprintf(db, sizeof db, "sqlite:%s/inject.db", dir);
  agg_serve_opts o = agg_test_opts(db);
  o.fail_db_every = 3; /* --ack stored (the default): 202 after the retry */
  agg_service *svc = agg_test_start(&o);
  agg_load_job j;
  pthread_t th;
  start_load(&j, agg_service_port(svc), 3000, 2.0, &th);
  finish_load(&j, th);
  agg_counters c;
  CHECK(agg_service_stop(svc, &c) == 0);
  agg_test_log("injected: %llu transactions failed and were retried, %llu "
               "committed",
               (unsigned long long)c.db_errors, (unsigned long long)c.commits);
  CHECK(c.db_errors > 10);
  CHECK(c.db_errors * 2 + 8 >= c.commits); /* every third one failed */
  CHECK_EQ(c.stored, j.r.accepted);
  verify(&j, db, "injected");
}

static int serve_pid = -1;
static void kill_serve(void) {
  if (serve_pid > 0) kill(serve_pid, SIGKILL);
}

static void set_fsize(int pid, rlim_t soft) {
  struct rlimit rl = {soft, RLIM_INFINITY};
  CHECK_MSG(prlimit(pid, RLIMIT_FSIZE, &rl, NULL) == 0, "prlimit failed");
}

static void io_error(const char *dir) {
  char db[1100], dbarg[1200];
  snprintf(db, sizeof db, "sqlite:%s/ioerr.db", dir);
  snprintf(dbarg, sizeof dbarg, "--db=%s", db);
  /* Ignored signals stay ignored across exec: EFBIG instead of a kill. */
  signal(SIGXFSZ, SIG_IGN);
  const char *args[] = {dbarg, "--ack=queued",  "--partitions", "2", "--batch",
                        "16",  "--queue-limit", "500",          NULL};
  uint16_t port;
  serve_pid = agg_test_spawn_serve(AGG_BINARY, args, &port);
  agg_test_on_fail = kill_serve;
  agg_load_job j;
  pthread_t th;
  start_load(&j, port, 2000, 5.0, &th);
  agg_test_sleep_ms(1000);
  set_fsize(serve_pid, 4096);
  agg_test_sleep_ms(2000);
  long long errs = agg_test_metric(port, "weir_agg_db_errors_total");
  set_fsize(serve_pid, RLIM_INFINITY);
  finish_load(&j, th);
  CHECK_MSG(agg_test_wait_stored(port, 30000) == 0,
            "accepted events not stored 30 s after the fault cleared");
  CHECK(kill(serve_pid, SIGTERM) == 0);
  CHECK_EQ(agg_test_wait_exit(serve_pid), 0);
  serve_pid = -1;
  agg_test_on_fail = NULL;
  agg_test_log("io error: %lld failed transactions during the 2 s of EFBIG, "
               "%llu accepted, %llu refused (503)",
               errs, (unsigned long long)j.r.accepted,
               (unsigned long long)j.r.rejected);
  CHECK_MSG(errs > 0, "the file-size limit caused no write error: moot");
  verify(&j, db, "io error");
}

int main(void) {
  char dir[512];
  agg_test_tmpdir(dir, sizeof dir);
  busy(dir);
  injected(dir);
  io_error(dir);
  agg_test_rmdir(dir);
  return 0;
}
