/*
 * ack.c: acks that wait for their events' commit (see ack.h).
 *
 * pending counts the events not yet done, plus one "guard" held by the
 * request until agg_ack_arm, so that no worker can complete the ack while
 * the request is still casting (or before its connection is suspended).
 * state goes WAITING -> DONE (the report that takes pending to 0) or
 * WAITING -> TIMEDOUT (the timeout thread), by compare-and-swap: the winner
 * calls wake, once.
 *
 * Every ack has the same timeout, so arming in time order keeps the armed
 * list in deadline order: the timeout thread only looks at its head. It
 * takes a reference on each expired ack under the list lock and wakes them
 * after letting go of it, because wake calls into the HTTP library, whose
 * own locks may be held while it calls back into agg_ack_release.
 */
#include "ack.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct agg_ack {
  agg_acks *owner;
  agg_ack_wake_fn wake;
  void *ud;
  atomic_uint refs;
  _Atomic uint64_t pending; /* events not done + the guard until armed */
  _Atomic uint64_t stored, lost;
  atomic_int state;
  /* armed list (under owner->mu) */
  uint64_t deadline_ns;
  int armed;
  agg_ack *prev, *next;
};

struct agg_acks {
  pthread_mutex_t mu;
  pthread_cond_t cv;    /* the list got a head, or stop */
  pthread_cond_t idle;  /* a request released its ack */
  agg_ack *head, *tail; /* armed, in deadline order */
  uint64_t timeout_ns;
  size_t held; /* acks not yet released by their request */
  int stop;
  pthread_t thread;
  _Atomic uint64_t timeouts;
};

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct timespec abs_time(uint64_t ns) {
  return (struct timespec){.tv_sec = (time_t)(ns / 1000000000ull),
                           .tv_nsec = (long)(ns % 1000000000ull)};
}

static void unref(agg_ack *k) {
  if (atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) == 1)
    free(k);
}

/* pending dropped by n: the one that reaches 0 completes the ack. */
static void settle(agg_ack *k, uint64_t n) {
  if (atomic_fetch_sub_explicit(&k->pending, n, memory_order_acq_rel) != n)
    return;
  int w = AGG_ACK_WAITING;
  if (atomic_compare_exchange_strong(&k->state, &w, AGG_ACK_DONE))
    k->wake(k->ud);
}

static void *reaper(void *arg) {
  agg_acks *a = arg;
  pthread_mutex_lock(&a->mu);
  while (!a->stop) {
    uint64_t now = mono_ns();
    agg_ack *due[64];
    size_t n = 0;
    for (agg_ack *k = a->head; k && k->deadline_ns <= now && n < 64;
         k = k->next) {
      if (atomic_load(&k->state) != AGG_ACK_WAITING) continue;
      atomic_fetch_add(&k->refs, 1);
      due[n++] = k;
    }
    if (n) {
      pthread_mutex_unlock(&a->mu);
      for (size_t i = 0; i < n; i++) {
        int w = AGG_ACK_WAITING;
        if (atomic_compare_exchange_strong(&due[i]->state, &w,
                                           AGG_ACK_TIMEDOUT)) {
          atomic_fetch_add_explicit(&a->timeouts, 1, memory_order_relaxed);
          due[i]->wake(due[i]->ud);
        }
        unref(due[i]);
      }
      pthread_mutex_lock(&a->mu);
      continue;
    }
    /* Sleep until the first deadline still waiting, at most 100 ms (an
       expired head that is done but not yet released is skipped above). */
    uint64_t next = now + 100000000ull;
    for (agg_ack *k = a->head; k; k = k->next)
      if (atomic_load(&k->state) == AGG_ACK_WAITING) {
        if (k->deadline_ns < next) next = k->deadline_ns;
        break;
      }
    struct timespec ts = abs_time(next);
    pthread_cond_timedwait(&a->cv, &a->mu, &ts);
  }
  pthread_mutex_unlock(&a->mu);
  return NULL;
}

int agg_acks_start(unsigned timeout_ms, agg_acks **out) {
  agg_acks *a = calloc(1, sizeof *a);
  if (!a) return -1;
  a->timeout_ns = (uint64_t)timeout_ms * 1000000ull;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&a->mu, NULL);
  pthread_cond_init(&a->cv, &ca);
  pthread_cond_init(&a->idle, &ca);
  pthread_condattr_destroy(&ca);
  int rc = pthread_create(&a->thread, NULL, reaper, a);
  if (rc) {
    pthread_cond_destroy(&a->cv);
    pthread_cond_destroy(&a->idle);
    pthread_mutex_destroy(&a->mu);
    free(a);
    errno = rc;
    return -1;
  }
  *out = a;
  return 0;
}

void agg_acks_stop(agg_acks *a) {
  if (!a) return;
  pthread_mutex_lock(&a->mu);
  a->stop = 1;
  pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->mu);
  pthread_join(a->thread, NULL);
  pthread_cond_destroy(&a->cv);
  pthread_cond_destroy(&a->idle);
  pthread_mutex_destroy(&a->mu);
  free(a);
}

size_t agg_acks_wait_idle(agg_acks *a, unsigned ms) {
  struct timespec ts = abs_time(mono_ns() + (uint64_t)ms * 1000000ull);
  pthread_mutex_lock(&a->mu);
  while (a->held && pthread_cond_timedwait(&a->idle, &a->mu, &ts) == 0) {
  }
  size_t held = a->held;
  pthread_mutex_unlock(&a->mu);
  return held;
}

uint64_t agg_acks_timeouts(agg_acks *a) {
  return atomic_load_explicit(&a->timeouts, memory_order_relaxed);
}

agg_ack *agg_ack_new(agg_acks *a, agg_ack_wake_fn wake, void *ud) {
  agg_ack *k = calloc(1, sizeof *k);
  if (!k) return NULL;
  k->owner = a;
  k->wake = wake;
  k->ud = ud;
  atomic_init(&k->refs, 1);
  atomic_init(&k->pending, 1);
  pthread_mutex_lock(&a->mu);
  a->held++;
  pthread_mutex_unlock(&a->mu);
  return k;
}

uint64_t agg_ack_add(agg_ack *k) {
  atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&k->pending, 1, memory_order_relaxed);
  return (uint64_t)(uintptr_t)k;
}

void agg_ack_cancel(agg_ack *k) {
  /* The guard is still held, so this never completes the ack. */
  atomic_fetch_sub_explicit(&k->pending, 1, memory_order_relaxed);
  atomic_fetch_sub_explicit(&k->refs, 1, memory_order_relaxed);
}

void agg_ack_arm(agg_ack *k) {
  agg_acks *a = k->owner;
  pthread_mutex_lock(&a->mu);
  k->deadline_ns = mono_ns() + a->timeout_ns;
  k->armed = 1;
  k->prev = a->tail;
  k->next = NULL;
  if (a->tail)
    a->tail->next = k;
  else
    a->head = k;
  a->tail = k;
  if (a->head == k) pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->mu);
  settle(k, 1); /* drop the guard */
}

void agg_ack_done(uint64_t token, int stored) {
  agg_ack *k = (agg_ack *)(uintptr_t)token;
  if (!k) return;
  atomic_fetch_add_explicit(stored ? &k->stored : &k->lost, 1,
                            memory_order_relaxed);
  settle(k, 1);
  unref(k);
}

agg_ack_state agg_ack_result(agg_ack *k, uint64_t *stored, uint64_t *lost) {
  agg_ack_state s = (agg_ack_state)atomic_load(&k->state);
  if (stored) *stored = atomic_load(&k->stored);
  if (lost) *lost = atomic_load(&k->lost);
  return s;
}

void agg_ack_release(agg_ack *k) {
  agg_acks *a = k->owner;
  pthread_mutex_lock(&a->mu);
  if (k->armed) {
    if (k->prev)
      k->prev->next = k->next;
    else
      a->head = k->next;
    if (k->next)
      k->next->prev = k->prev;
    else
      a->tail = k->prev;
    k->armed = 0;
  }
  if (--a->held == 0) pthread_cond_broadcast(&a->idle);
  pthread_mutex_unlock(&a->mu);
  unref(k);
}
