/*
 * test_aggregator_http_sink.c: http.c alone, on a sink of the test's own (no
 * runtime, no workers, no database): what it hands the sink and what it
 * answers for the sink's verdicts.
 *
 *  1. /track: a parsed event reaches submit, 202; submit's WEIR_EFULL is 503
 *     with Retry-After; a closing sink gets no submit, 503 "shutting down";
 *     a malformed body never reaches the sink (400);
 *  2. /track/batch: every good line reaches submit in order, bad ones come
 *     back per line;
 *  3. /readyz and /metrics answer with the sink's verdict and text;
 *     /healthz, 404, 405, 413 need no sink at all;
 *  4. the counters http.c bumps are the sink's.
 */
#include "agg_testlib.h"
#include "http.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct fake {
  pthread_mutex_t mu;
  int submits;
  char users[8][32]; /* the first users submitted, in order */
  int submit_rc;
  int closing;
  int ready;
} fake;

static int f_submit(void *ctx, const agg_event *ev, uint64_t ack) {
  fake *f = ctx;
  CHECK_EQ(ack, 0); /* --ack queued: no tokens */
  pthread_mutex_lock(&f->mu);
  if (f->submits < 8)
    snprintf(f->users[f->submits], sizeof f->users[0], "%.*s",
             (int)ev->user_len, ev->user);
  f->submits++;
  int rc = f->submit_rc;
  pthread_mutex_unlock(&f->mu);
  return rc;
}

static int f_closing(void *ctx) {
  fake *f = ctx;
  pthread_mutex_lock(&f->mu);
  int c = f->closing;
  pthread_mutex_unlock(&f->mu);
  return c;
}

static char *f_metrics(void *ctx) {
  (void)ctx;
  return strdup("fake_metric 7\n");
}

static int f_ready(void *ctx, char *why, size_t n) {
  fake *f = ctx;
  pthread_mutex_lock(&f->mu);
  int r = f->ready;
  pthread_mutex_unlock(&f->mu);
  if (!r) snprintf(why, n, "fake: not ready");
  return r;
}

static void set(fake *f, int *field, int v) {
  pthread_mutex_lock(&f->mu);
  *field = v;
  pthread_mutex_unlock(&f->mu);
}

static int submits(fake *f) {
  pthread_mutex_lock(&f->mu);
  int n = f->submits;
  pthread_mutex_unlock(&f->mu);
  return n;
}

static uint16_t port;

static void expect(const char *method, const char *path, const char *body,
                   int want, const char *substr, int want_retry) {
  char *resp;
  int retry;
  int st = agg_test_http(port, method, path, body, body ? strlen(body) : 0,
                         &resp, &retry);
  CHECK_MSG(st == want, "%s %s -> %d (want %d): %s", method, path, st, want,
            resp);
  if (substr)
    CHECK_MSG(resp && strstr(resp, substr) != NULL, "%s %s: '%s' lacks '%s'",
              method, path, resp, substr);
  CHECK_MSG((retry >= 0) == want_retry, "%s %s: Retry-After %d", method, path,
            retry);
  free(resp);
}

#define LOAD(ctr, f) atomic_load(&(ctr).f)

int main(void) {
  fake f = {.ready = 1};
  pthread_mutex_init(&f.mu, NULL);
  agg_atomic_counters ctr = {0};
  agg_http_sink sink = {.ctx = &f,
                        .submit = f_submit,
                        .closing = f_closing,
                        .metrics = f_metrics,
                        .ready = f_ready,
                        .ctr = &ctr,
                        .acks = NULL};
  agg_serve_opts o = agg_test_opts("sqlite:unused");
  o.ack = AGG_ACK_QUEUED;
  o.max_body = 1024;
  agg_http *h;
  char err[256];
  CHECK_MSG(agg__http_start(&o, &sink, &h, &port, err, sizeof err) == 0, "%s",
            err);
  CHECK(port != 0);

  /* 1. /track */
  expect("POST", "/track", "{\"user_id\":\"u1\",\"seq\":1,\"event\":\"e\"}",
         202, "accepted", 0);
  CHECK_EQ(submits(&f), 1);
  CHECK(!strcmp(f.users[0], "u1"));
  expect("POST", "/track", "{\"user_id\":1,", 400, "invalid JSON", 0);
  CHECK_EQ(submits(&f), 1);
  set(&f, &f.submit_rc, WEIR_EFULL);
  expect("POST", "/track", "{\"user_id\":\"u2\",\"seq\":1,\"event\":\"e\"}",
         503, "mailbox full", 1);
  CHECK_EQ(submits(&f), 2);
  set(&f, &f.submit_rc, WEIR_OK);
  set(&f, &f.closing, 1);
  expect("POST", "/track", "{\"user_id\":\"u3\",\"seq\":1,\"event\":\"e\"}",
         503, "shutting down", 1);
  CHECK_EQ(submits(&f), 2);
  set(&f, &f.closing, 0);

  /* 2. /track/batch */
  expect("POST", "/track/batch",
         "{\"user_id\":\"b1\",\"seq\":1,\"event\":\"e\"}\n"
         "not json\n"
         "{\"user_id\":\"b2\",\"seq\":1,\"event\":\"e\"}\n",
         202, "\"accepted\":2", 0);
  CHECK_EQ(submits(&f), 4);
  CHECK(!strcmp(f.users[2], "b1") && !strcmp(f.users[3], "b2"));

  /* 3. the sink's verdicts, and what needs no sink */
  expect("GET", "/readyz", NULL, 200, "ready", 0);
  set(&f, &f.ready, 0);
  expect("GET", "/readyz", NULL, 503, "fake: not ready", 1);
  expect("GET", "/metrics", NULL, 200, "fake_metric 7", 0);
  expect("GET", "/healthz", NULL, 200, "ok", 0);
  expect("GET", "/nope", NULL, 404, NULL, 0);
  expect("GET", "/track", NULL, 405, NULL, 0);
  char big[2048];
  memset(big, ' ', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  expect("POST", "/track", big, 413, "larger than 1024", 0);
  CHECK_EQ(submits(&f), 4);

  /* 4. the counters are the sink's */
  CHECK_EQ(LOAD(ctr, requests), 12);
  CHECK_EQ(LOAD(ctr, accepted), 3);
  CHECK_EQ(LOAD(ctr, rejected_full), 2);
  CHECK_EQ(LOAD(ctr, bad_requests), 1);
  CHECK_EQ(LOAD(ctr, invalid_lines), 1);
  CHECK_EQ(LOAD(ctr, too_large), 1);

  agg__http_quiesce(h);
  agg__http_stop(h);
  pthread_mutex_destroy(&f.mu);
  printf("test_aggregator_http_sink: ok\n");
  return 0;
}
