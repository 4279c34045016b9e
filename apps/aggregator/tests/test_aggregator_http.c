/*
 * test_aggregator_http.c: the service end to end against SQLite, in process.
 *
 *  1. the HTTP contract: 202, 400 with the reason, 413, batch counts with
 *     per-line errors, 404/405, /metrics, /healthz; idempotent re-sends;
 *  2. per-user order under concurrent load (partitioned, batch and single);
 *  3. backpressure: a tiny --queue-limit and a slow --work-ms give 503 with
 *     Retry-After, the mailbox never passes its bound, and every event that
 *     was accepted (and only those) is in the database, in order;
 *  4. --ack stored (the default): the row is in the database when the 202
 *     arrives, a batch reply counts what is stored, and an event that cannot
 *     be stored in --ack-timeout-ms (the database locked) gets 503 with
 *     Retry-After, is stored once the lock goes, and its resend is safe.
 */
#include "agg_testlib.h"

#include <jansson.h>
#include <sqlite3.h>

static uint16_t port;

static void expect(const char *method, const char *path, const char *body,
                   int want, const char *substr) {
  char *resp;
  int st = agg_test_http(port, method, path, body, body ? strlen(body) : 0,
                         &resp, NULL);
  CHECK_MSG(st == want, "%s %s -> %d (want %d): %s", method, path, st, want,
            resp);
  if (substr)
    CHECK_MSG(strstr(resp, substr) != NULL, "%s %s: '%s' lacks '%s'", method,
              path, resp, substr);
  free(resp);
}

static void contract(const char *dir) {
  char db[1100];
  snprintf(db, sizeof db, "sqlite:%s/contract.db", dir);
  agg_serve_opts o = agg_test_opts(db);
  agg_service *svc = agg_test_start(&o);
  port = agg_service_port(svc);
  expect("POST", "/track",
         "{\"user_id\":42,\"seq\":1,\"event\":\"click\",\"data\":{\"a\":1}}",
         202, "accepted");
  expect("POST", "/track", "{\"user_id\":\"u7\",\"seq\":1,\"event\":\"view\"}",
         202, NULL);
  /* The same (user, seq) again: accepted, stored once. */
  expect("POST", "/track", "{\"user_id\":42,\"seq\":1,\"event\":\"click\"}",
         202, NULL);
  expect("POST", "/track", "{\"user_id\":42,", 400, "invalid JSON");
  expect("POST", "/track", "{\"user_id\":42,\"event\":\"x\"}", 400,
         "missing field \\\"seq\\\"");
  expect("POST", "/track", "", 400, "empty body");
  size_t big = 70 * 1024;
  char *huge = malloc(big + 1);
  CHECK(huge);
  memset(huge, ' ', big);
  huge[big] = '\0';
  memcpy(huge, "{\"user_id\":1,", 13);
  expect("POST", "/track", huge, 413, "larger than 65536");
  free(huge);
  const char *batch = "{\"user_id\":1,\"seq\":1,\"event\":\"a\"}\n"
                      "not json\n"
                      "{\"user_id\":1,\"seq\":2,\"event\":\"b\"}\r\n"
                      "\n"
                      "{\"user_id\":1,\"seq\":3}\n"
                      "{\"user_id\":\"u3\",\"seq\":1,\"event\":\"c\"}";
  char *resp;
  int st = agg_test_http(port, "POST", "/track/batch", batch, strlen(batch),
                         &resp, NULL);
  CHECK_MSG(st == 202, "batch -> %d: %s", st, resp);
  json_t *j = json_loads(resp, 0, NULL);
  CHECK_MSG(j, "batch reply is not JSON: %s", resp);
  CHECK_EQ(json_integer_value(json_object_get(j, "accepted")), 3);
  CHECK_EQ(json_integer_value(json_object_get(j, "rejected")), 2);
  json_t *errs = json_object_get(j, "errors");
  CHECK_EQ(json_array_size(errs), 2);
  CHECK_EQ(json_integer_value(json_object_get(json_array_get(errs, 0), "line")),
           2);
  CHECK_EQ(json_integer_value(json_object_get(json_array_get(errs, 1), "line")),
           5);
  CHECK(strstr(
      json_string_value(json_object_get(json_array_get(errs, 1), "error")),
      "missing field \"event\""));
  json_decref(j);
  free(resp);
  expect("POST", "/track/batch", "\n\n", 400, "empty batch");
  expect("POST", "/track/batch", "x\ny\n", 400, "\"invalid\":2");
  expect("GET", "/healthz", NULL, 200, "ok");
  expect("GET", "/nope", NULL, 404, "no such path");
  expect("GET", "/track", NULL, 405, "use POST");
  expect("POST", "/metrics", "x", 405, "use GET");
  expect("GET", "/metrics", NULL, 200, "weir_agg_accepted_total 6");
  expect("GET", "/metrics", NULL, 200, "weir_agg_queue_len{partition=\"3\"}");
  expect("GET", "/metrics", NULL, 200, "weir_agg_too_large_total 1");
  agg_counters c;
  CHECK(agg_service_stop(svc, &c) == 0);
  CHECK_EQ(c.accepted, 6);
  CHECK_EQ(c.stored, 5);
  CHECK_EQ(c.duplicates, 1);
  CHECK_EQ(c.invalid_lines, 4);
  CHECK_EQ(c.too_large, 1);
  agg_test_log("contract: ok (202/400/413/404/405, batch counts, metrics)");
}

static void ordered_load(const char *dir, unsigned batch) {
  char db[1100];
  snprintf(db, sizeof db, "sqlite:%s/order%u.db", dir, batch);
  agg_serve_opts o = agg_test_opts(db);
  o.partitions = 3;
  o.batch = 50;
  agg_service *svc = agg_test_start(&o);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", agg_service_port(svc));
  agg_load_opts lo = {.url = url,
                      .rate = 0,
                      .secs = 1.0,
                      .users = 40,
                      .batch = batch,
                      .conns = 4};
  agg_accept_log log;
  CHECK(agg_accept_log_init(&log, lo.users) == 0);
  agg_load_result r;
  char err[256];
  CHECK_MSG(agg_load_run(&lo, &log, &r, err, sizeof err) == 0, "%s", err);
  CHECK(r.accepted > 0);
  CHECK_EQ(r.errors + r.invalid + r.rejected, 0);
  agg_counters c;
  CHECK(agg_service_stop(svc, &c) == 0);
  CHECK_EQ(c.stored, r.accepted);
  uint64_t rows;
  char msg[256];
  CHECK_MSG(agg_accept_log_verify(&log, db, &rows, msg, sizeof msg) == 0, "%s",
            msg);
  CHECK_EQ(rows, r.accepted);
  agg_accept_log_free(&log);
  agg_test_log("order (batch %u): ok, %llu events, %s", batch,
               (unsigned long long)r.accepted, msg);
}

static void backpressure(const char *dir) {
  char db[1100];
  snprintf(db, sizeof db, "sqlite:%s/bp.db", dir);
  agg_serve_opts o = agg_test_opts(db);
  o.mode = AGG_SINGLETON;
  o.queue_limit = 4;
  o.work_ms = 10;
  o.ack = AGG_ACK_QUEUED; /* a mailbox that fills: one client, no waiting */
  agg_service *svc = agg_test_start(&o);
  port = agg_service_port(svc);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
  agg_accept_log log;
  CHECK(agg_accept_log_init(&log, 20) == 0);
  /* One 503 by hand, to see its headers and body. User 0's accepted events
     go in the log by hand too (before the load's: seqs from 1000000). */
  agg_user_log *u0 = &log.u[0];
  u0->cap = 256;
  u0->seq = calloc(u0->cap, sizeof *u0->seq);
  CHECK(u0->seq);
  int got503 = 0;
  for (int i = 0; i < 200 && !got503; i++) {
    char body[128], *resp;
    int ra;
    snprintf(body, sizeof body, "{\"user_id\":0,\"seq\":%d,\"event\":\"x\"}",
             1000000 + i);
    int st =
        agg_test_http(port, "POST", "/track", body, strlen(body), &resp, &ra);
    if (st == 503) {
      got503 = 1;
      CHECK_MSG(ra == 1, "503 without Retry-After: 1 (got %d)", ra);
      CHECK_MSG(strstr(resp, "mailbox full"), "503 body: %s", resp);
    } else {
      CHECK_MSG(st == 202, "status %d", st);
      u0->seq[u0->n++] = 1000000 + i;
    }
    free(resp);
  }
  CHECK_MSG(got503, "no 503 from a 4-deep mailbox at 10 ms per event");
  agg_load_opts lo = {
      .url = url, .rate = 0, .secs = 1.5, .users = 20, .batch = 1, .conns = 4};
  agg_load_result r;
  char err[256];
  CHECK_MSG(agg_load_run(&lo, &log, &r, err, sizeof err) == 0, "%s", err);
  CHECK(r.rejected > r.accepted); /* ~100/s served, far more offered */
  CHECK_EQ(r.retry_after, r.rejected);
  CHECK_EQ(r.errors, 0);
  weir_pid pid;
  weir_proc_info info;
  CHECK(weir_whereis(agg_service_rt(svc), "aggregator", &pid) == WEIR_OK);
  CHECK(weir_process_info(agg_service_rt(svc), pid, &info) == WEIR_OK);
  CHECK_MSG(info.queue_high_water <= 4, "mailbox reached %llu > bound 4",
            (unsigned long long)info.queue_high_water);
  weir_stats st;
  CHECK(weir_node_stats(agg_service_rt(svc), &st) == WEIR_OK);
  CHECK_MSG(st.queued_bytes < 4096, "queued bytes %llu: memory not bounded",
            (unsigned long long)st.queued_bytes);
  agg_counters c;
  CHECK(agg_service_stop(svc, &c) == 0);
  CHECK_EQ(c.rejected_full, r.rejected + 1);
  uint64_t rows;
  char msg[256];
  CHECK_MSG(agg_accept_log_verify(&log, db, &rows, msg, sizeof msg) == 0, "%s",
            msg);
  agg_accept_log_free(&log);
  agg_test_log("backpressure: ok, %llu accepted, %llu refused with 503 + "
               "Retry-After, high water %llu <= 4, %s",
               (unsigned long long)r.accepted, (unsigned long long)r.rejected,
               (unsigned long long)info.queue_high_water, msg);
}

/* Rows of user in the SQLite file at path, read on a connection of our own
   (what any other reader of the database would see). */
static long long rows_of(const char *path, const char *user) {
  sqlite3 *h;
  sqlite3_stmt *st;
  long long n = -1;
  CHECK(sqlite3_open(path, &h) == SQLITE_OK);
  sqlite3_busy_timeout(h, 5000);
  CHECK(sqlite3_prepare_v2(h, "SELECT count(*) FROM events WHERE user_id = ?",
                           -1, &st, NULL) == SQLITE_OK);
  sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return n;
}

static void stored_contract(const char *dir) {
  char db[1100];
  snprintf(db, sizeof db, "sqlite:%s/stored.db", dir);
  const char *path = db + 7;
  agg_serve_opts o = agg_test_opts(db);
  CHECK(o.ack == AGG_ACK_STORED); /* the default */
  o.ack_timeout_ms = 400;
  agg_service *svc = agg_test_start(&o);
  port = agg_service_port(svc);
  char body[128];
  for (int i = 0; i < 20; i++) {
    snprintf(body, sizeof body,
             "{\"user_id\":\"s1\",\"seq\":%d,\"event\":\"x\"}", i);
    expect("POST", "/track", body, 202, "accepted");
    CHECK_EQ(rows_of(path, "s1"), i + 1); /* stored before the 202 */
  }
  const char *batch = "{\"user_id\":\"s2\",\"seq\":0,\"event\":\"a\"}\n"
                      "nope\n"
                      "{\"user_id\":\"s2\",\"seq\":1,\"event\":\"a\"}\n"
                      "{\"user_id\":\"s2\",\"seq\":2,\"event\":\"a\"}\n";
  char *resp;
  int ra;
  int st = agg_test_http(port, "POST", "/track/batch", batch, strlen(batch),
                         &resp, &ra);
  CHECK_MSG(st == 202, "batch -> %d: %s", st, resp);
  json_t *j = json_loads(resp, 0, NULL);
  CHECK_MSG(j, "batch reply is not JSON: %s", resp);
  CHECK_EQ(json_integer_value(json_object_get(j, "accepted")), 3);
  CHECK_EQ(json_integer_value(json_object_get(j, "stored")), 3);
  CHECK_EQ(json_integer_value(json_object_get(j, "invalid")), 1);
  json_decref(j);
  free(resp);
  CHECK_EQ(rows_of(path, "s2"), 3);

  /* The database locked for longer than --ack-timeout-ms. */
  sqlite3 *h;
  CHECK(sqlite3_open(path, &h) == SQLITE_OK);
  CHECK(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL) == SQLITE_OK);
  const char *ev = "{\"user_id\":\"s3\",\"seq\":0,\"event\":\"x\"}";
  double t0 = agg_test_now_ms();
  st = agg_test_http(port, "POST", "/track", ev, strlen(ev), &resp, &ra);
  double waited = agg_test_now_ms() - t0;
  CHECK_MSG(st == 503 && ra == 1, "locked: %d (Retry-After %d): %s", st, ra,
            resp);
  CHECK_MSG(strstr(resp, "not stored within 400 ms"), "503 body: %s", resp);
  CHECK_MSG(waited >= 350 && waited < 5000, "answered after %.0f ms", waited);
  free(resp);
  CHECK_EQ(agg_test_metric(port, "weir_agg_ack_timeouts_total"), 1);
  CHECK(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(h);
  CHECK_MSG(agg_test_wait_stored(port, 20000) == 0, "not stored after unlock");
  CHECK_EQ(rows_of(path, "s3"), 1);              /* stored late, once */
  expect("POST", "/track", ev, 202, "accepted"); /* the client's resend */
  CHECK_EQ(rows_of(path, "s3"), 1);
  agg_counters c;
  CHECK(agg_service_stop(svc, &c) == 0);
  CHECK_EQ(c.ack_timeouts, 1);
  CHECK_EQ(c.stored, 24);
  CHECK_EQ(c.duplicates, 1);
  CHECK_EQ(c.lost, 0);
  agg_test_log("stored: ok (row in the database at each 202, batch counts "
               "stored, 503 + Retry-After after %.0f ms on a locked "
               "database, stored later once, resend safe)",
               waited);
}

int main(void) {
  char dir[512];
  agg_test_tmpdir(dir, sizeof dir);
  contract(dir);
  stored_contract(dir);
  ordered_load(dir, 1);
  ordered_load(dir, 100);
  backpressure(dir);
  agg_test_rmdir(dir);
  return 0;
}
