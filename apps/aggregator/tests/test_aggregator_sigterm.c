/*
 * test_aggregator_sigterm.c: `weir-aggregator serve` as a real subprocess:
 * it prints its ephemeral port, takes a load that leaves a backlog in the
 * mailboxes, gets SIGTERM in the middle of it, and must exit 0 with every
 * accepted event in the database (in per-user order). Then SIGTERM while
 * the load generator is still sending at 5,000 events/s (five times what
 * the service drains): HTTP stops, the clients see their connections
 * refused, and every event answered 202 must be stored, in order; a send
 * whose reply was lost in the stop may be stored or not, but at most once
 * and in its place. Then SIGINT on an idle service, and a bad argument must
 * exit 2 with a message.
 */
#include "agg_testlib.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t server = -1;

/* A failed check must not leave a server running (ctest would wait for it). */
static void kill_server(void) {
  if (server > 0) kill(server, SIGKILL);
}

/* serve on a free port with this test's options, through the shared
   helper; remembered for kill_server. */
static pid_t spawn_serve(const char *db, const char *extra, uint16_t *port) {
  char dbarg[1200];
  snprintf(dbarg, sizeof dbarg, "--db=%s", db);
  const char *args[] = {dbarg, extra,     "--ack=queued", "--partitions",
                        "2",   "--batch", "32",           NULL};
  server = agg_test_spawn_serve(AGG_BINARY, args, port);
  return server;
}

static int wait_exit(pid_t pid) {
  int rc = agg_test_wait_exit(pid);
  if (pid == server) server = -1;
  return rc;
}

/* SIGTERM while the load is still sending. */
static void sigterm_mid_load(const char *dir) {
  char db[1100], dbarg[1200];
  snprintf(db, sizeof db, "sqlite:%s/midload.db", dir);
  snprintf(dbarg, sizeof dbarg, "--db=%s", db);
  const char *args[] = {dbarg, "--work-ms=2", "--ack=queued", "--partitions",
                        "2",   "--batch",     "32",           NULL};
  uint16_t port;
  server = agg_test_spawn_serve(AGG_BINARY, args, &port);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
  agg_load_job j = {.o = {.url = url,
                          .rate = 5000,
                          .secs = 10,
                          .users = 30,
                          .batch = 1,
                          .conns = 3}};
  CHECK(agg_accept_log_init(&j.log, j.o.users) == 0);
  pthread_t th;
  CHECK(pthread_create(&th, NULL, agg_load_thread, &j) == 0);
  agg_test_sleep_ms(1500);
  CHECK_MSG(!__atomic_load_n(&j.done, __ATOMIC_ACQUIRE),
            "the load ended before SIGTERM: the test is moot");
  double t0 = agg_test_now_ms();
  CHECK(kill(server, SIGTERM) == 0);
  int st = agg_test_wait_exit(server);
  server = -1;
  double drain = agg_test_now_ms() - t0;
  pthread_join(th, NULL);
  CHECK_EQ(st, 0);
  CHECK_MSG(j.rc == 0, "%s", j.err);
  CHECK(j.r.accepted > 1000);
  uint64_t rows;
  char msg[384];
  CHECK_MSG(agg_accept_log_verify(&j.log, db, &rows, msg, sizeof msg) == 0,
            "SIGTERM mid-load: %s", msg);
  CHECK(rows >= j.r.accepted);
  CHECK(rows <= j.r.accepted + j.r.errors);
  agg_test_log("SIGTERM mid-load (5000/s offered): exit 0 after %.1f s of "
               "draining; %llu accepted, %llu sends cut by the stop; %s",
               drain / 1e3, (unsigned long long)j.r.accepted,
               (unsigned long long)j.r.errors, msg);
  agg_accept_log_free(&j.log);
}

int main(void) {
  char dir[512], db[1100];
  agg_test_tmpdir(dir, sizeof dir);
  agg_test_on_fail = kill_server;
  snprintf(db, sizeof db, "sqlite:%s/sigterm.db", dir);
  uint16_t port;
  /* 2 ms per event on 2 partitions: ~900 events/s; offered ~4000/s. */
  pid_t pid = spawn_serve(db, "--work-ms=2", &port);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
  agg_load_opts lo = {.url = url,
                      .rate = 4000,
                      .secs = 1.0,
                      .users = 30,
                      .batch = 1,
                      .conns = 3};
  agg_accept_log log;
  CHECK(agg_accept_log_init(&log, lo.users) == 0);
  agg_load_result r;
  char err[256];
  CHECK_MSG(agg_load_run(&lo, &log, &r, err, sizeof err) == 0, "%s", err);
  CHECK(r.accepted > 1000);
  char *metrics;
  CHECK(agg_test_http(port, "GET", "/metrics", NULL, 0, &metrics, NULL) == 200);
  const char *q = strstr(metrics, "\nweir_agg_queue_len_all ");
  CHECK(q);
  long backlog = atol(q + 24);
  free(metrics);
  agg_test_log("load: %llu accepted; backlog at SIGTERM: %ld",
               (unsigned long long)r.accepted, backlog);
  CHECK_MSG(backlog > 100, "no backlog to drain (%ld): the test is moot",
            backlog);
  CHECK(kill(pid, SIGTERM) == 0);
  CHECK_EQ(wait_exit(pid), 0);
  uint64_t rows;
  char msg[256];
  CHECK_MSG(agg_accept_log_verify(&log, db, &rows, msg, sizeof msg) == 0,
            "after SIGTERM: %s", msg);
  CHECK_EQ(rows, r.accepted);
  agg_accept_log_free(&log);
  agg_test_log("SIGTERM: exit 0, %s", msg);

  sigterm_mid_load(dir);

  /* SIGINT on an idle service, same database: nothing lost either. */
  pid = spawn_serve(db, "--work-ms=0", &port);
  const char *late = "{\"user_id\":\"late\",\"seq\":1,\"event\":\"x\"}";
  CHECK(agg_test_http(port, "POST", "/track", late, strlen(late), NULL, NULL) ==
        202);
  CHECK(kill(pid, SIGINT) == 0);
  CHECK_EQ(wait_exit(pid), 0);
  agg_test_log("SIGINT: exit 0");

  /* A bad argument: exit 2, a message on stderr, nothing started. */
  pid = fork();
  if (pid == 0) {
    execl(AGG_BINARY, AGG_BINARY, "serve", "--partitions", "zero",
          (char *)NULL);
    _exit(127);
  }
  CHECK_EQ(wait_exit(pid), 2);
  agg_test_log("bad argument: exit 2");
  agg_test_rmdir(dir);
  return 0;
}
