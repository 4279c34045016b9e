/*
 * test_aggregator_readyz.c: GET /readyz against SQLite, in process.
 *
 *  1. ready (200 "ready") on a quiet node; /healthz stays 200 throughout;
 *  2. a long_message_queue alarm (one partition, --work-ms 20, an alarm at
 *     50 queued, 400 events): 503 + Retry-After naming the alarm while it is
 *     raised, 200 again once the queue drained and the alarm cleared;
 *  3. a database outage (the SQLite file locked by another connection,
 *     --ack queued so the requests do not wait): 503 naming the database
 *     while inserts fail, 200 once the lock goes and a commit succeeds;
 *  4. stopping: 503 "stopping" once agg_service_stop has begun is covered by
 *     the flag it reads (svc->closing), set before the HTTP server stops.
 */
#include "agg_testlib.h"

#include <sqlite3.h>

static uint16_t port;

static int probe(char **body) {
  int ra = 0;
  int st = agg_test_http(port, "GET", "/readyz", NULL, 0, body, &ra);
  if (st == 503) CHECK_MSG(ra == 1, "503 without Retry-After: %s", *body);
  return st;
}

/* Polls /readyz until it answers want (and, for 503, mentions what). */
static void wait_ready(int want, const char *what, int ms) {
  double dl = agg_test_now_ms() + ms;
  char *b = NULL;
  int st = 0;
  for (;;) {
    free(b);
    st = probe(&b);
    if (st == want && (!what || strstr(b, what))) break;
    CHECK_MSG(agg_test_now_ms() < dl, "/readyz -> %d (want %d, %s): %s", st,
              want, what ? what : "", b);
    agg_test_sleep_ms(20);
  }
  agg_test_log("/readyz -> %d: %s", st, b);
  free(b);
}

static void post(int i, const char *user) {
  char ev[128];
  snprintf(ev, sizeof ev, "{\"user_id\":\"%s\",\"seq\":%d,\"event\":\"x\"}",
           user, i);
  char *resp;
  int st = agg_test_http(port, "POST", "/track", ev, strlen(ev), &resp, NULL);
  CHECK_MSG(st == 202, "POST -> %d: %s", st, resp);
  free(resp);
}

int main(void) {
  char dir[512], db[1200], path[1100];
  agg_test_tmpdir(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/readyz.db", dir);
  snprintf(db, sizeof db, "sqlite:%s", path);
  agg_serve_opts o = agg_test_opts(db);
  o.ack = AGG_ACK_QUEUED;
  o.partitions = 1;
  o.work_ms = 20;
  o.alarm_queue = 50;
  agg_service *svc = agg_test_start(&o);
  port = agg_service_port(svc);

  wait_ready(200, NULL, 5000);

  /* 2. the alarm: 400 events at 20 ms each take 8 s to drain */
  for (int i = 0; i < 400; i++)
    post(i, "a");
  wait_ready(503, "long_message_queue alarm", 5000);
  char *b;
  CHECK(agg_test_http(port, "GET", "/healthz", NULL, 0, &b, NULL) == 200);
  free(b);
  wait_ready(200, NULL, 60000);

  /* 3. the database locked: inserts fail and are retried */
  sqlite3 *h;
  CHECK(sqlite3_open(path, &h) == SQLITE_OK);
  CHECK(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL) == SQLITE_OK);
  post(0, "b");
  wait_ready(503, "database failing", 20000);
  CHECK(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(h);
  CHECK_MSG(agg_test_wait_stored(port, 20000) == 0, "not stored after unlock");
  post(1, "b"); /* a commit after the outage */
  CHECK_MSG(agg_test_wait_stored(port, 20000) == 0, "not stored");
  wait_ready(200, NULL, 20000);

  agg_counters c;
  CHECK(agg_service_stop(svc, &c) == 0);
  CHECK_EQ(c.lost, 0);
  agg_test_rmdir(dir);
  agg_test_log("readyz: 503 during an alarm and a database outage, 200 after");
  return 0;
}
