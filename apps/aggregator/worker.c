/*
 * worker.c: the aggregator worker, a weir_server run as a blocking process.
 *
 * One worker owns one database connection, opened in init and closed in
 * terminate, so connections are never shared between threads. Each event:
 * sleep --work-ms (the seed's Process.sleep(5): real time spent, on the I/O
 * pool, never on a scheduler thread), then buffer the row. The buffer is
 * flushed in one transaction when it holds --batch rows, when the mailbox
 * is empty, or when its oldest row has waited 100 ms: under load batches
 * fill up and amortise the commit; when idle, each event is stored at once;
 * and a slow, never-empty mailbox (the drowning singleton) still commits
 * every 100 ms instead of every --batch events. The age is checked as each
 * event arrives, which is enough: a buffer only waits while events keep
 * coming (otherwise the mailbox is empty and it was flushed), so no timer.
 *
 * A failed transaction keeps its rows buffered and is retried (with a short
 * backoff) at the next flush; terminate retries until it succeeds or a
 * minute passes. Rows that still cannot be stored are counted (unflushed)
 * and reported: nothing is dropped silently. Per-user order holds because a
 * user's events all go to one worker, which stores them in mailbox order.
 */
#include "agg_internal.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct worker {
  agg_worker_cfg *cfg;
  agg_store *db;
  void **msgs; /* owned copies of the packed messages in rows */
  agg_row *rows;
  size_t n, cap;
  unsigned failures; /* consecutive failed flushes */
  uint64_t first_ns; /* when the oldest buffered row arrived */
} worker;

/* A buffered row waits at most this long while the mailbox never empties. */
#define MAX_AGE_NS 100000000ull

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {.tv_sec = ms / 1000,
                        .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static int w_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  agg_worker_cfg *cfg = arg;
  worker *w = calloc(1, sizeof *w);
  if (!w) return WEIR_ENOMEM;
  w->cfg = cfg;
  char err[512];
  if (agg_store_open(cfg->db_url, 0, &w->db, err, sizeof err)) {
    fprintf(stderr, "weir-aggregator: worker: %s\n", err);
    free(w);
    return WEIR_ESYS;
  }
  *state = w;
  return WEIR_OK;
}

/* Stores the buffer; 0 on success (buffer empty), -1 if it stays. */
static int flush(worker *w) {
  if (w->n == 0) return 0;
  agg_service *svc = w->cfg->svc;
  size_t added = 0;
  char err[512];
  if (agg_store_insert(w->db, w->rows, w->n, &added, err, sizeof err)) {
    AGG_INC(svc, db_errors, 1);
    if (w->failures++ % 50 == 0)
      fprintf(stderr, "weir-aggregator: %zu rows kept for retry: %s\n", w->n,
              err);
    sleep_ms(w->failures < 10 ? 10 * w->failures : 100);
    return -1;
  }
  w->failures = 0;
  AGG_INC(svc, stored, added);
  AGG_INC(svc, duplicates, w->n - added);
  AGG_INC(svc, commits, 1);
  for (size_t i = 0; i < w->n; i++)
    free(w->msgs[i]);
  w->n = 0;
  return 0;
}

static int w_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  worker *w = state;
  if (m->tag != AGG_TAG_EVENT) return WEIR_OK;
  if (w->cfg->work_ms) sleep_ms(w->cfg->work_ms);
  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 64;
    void **msgs = realloc(w->msgs, cap * sizeof *msgs);
    if (msgs) w->msgs = msgs;
    agg_row *rows = msgs ? realloc(w->rows, cap * sizeof *rows) : NULL;
    if (!rows) {
      /* Keep the event: handle it again once memory is back. */
      weir_requeue(cx, m);
      flush(w);
      return WEIR_OK;
    }
    w->rows = rows;
    w->cap = cap;
  }
  void *copy = malloc(m->len ? m->len : 1);
  if (!copy) {
    weir_requeue(cx, m);
    flush(w);
    return WEIR_OK;
  }
  memcpy(copy, m->data, m->len);
  if (agg_event_unpack(copy, m->len, &w->rows[w->n])) {
    free(copy); /* not ours: only http.c casts AGG_TAG_EVENT */
    return WEIR_OK;
  }
  uint64_t now = mono_ns();
  if (w->n == 0) w->first_ns = now;
  w->msgs[w->n++] = copy;
  if (w->n >= w->cfg->batch || weir_queue_len(cx) == 0 ||
      now - w->first_ns >= MAX_AGE_NS)
    flush(w);
  return WEIR_OK;
}

static void w_terminate(weir_ctx *cx, void *state, int reason,
                        const weir_msg *in_hand) {
  (void)cx;
  (void)reason;
  (void)in_hand;
  worker *w = state;
  if (!w) return;
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (flush(w) != 0) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (t.tv_sec - t0.tv_sec > 60) {
      fprintf(stderr,
              "weir-aggregator: giving up: %zu accepted rows not stored\n",
              w->n);
      atomic_fetch_add(&w->cfg->svc->unflushed, w->n);
      for (size_t i = 0; i < w->n; i++)
        free(w->msgs[i]);
      w->n = 0;
      break;
    }
  }
  agg_store_close(w->db);
  free(w->msgs);
  free(w->rows);
  free(w);
}

static size_t w_size(const void *state) {
  const worker *w = state;
  return sizeof *w + w->cap * (sizeof(void *) + sizeof(agg_row));
}

const weir_server agg_worker_server = {.name = "aggregator",
                                       .init = w_init,
                                       .handle_cast = w_cast,
                                       .terminate = w_terminate,
                                       .state_size = w_size};
