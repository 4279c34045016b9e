/*
 * test_timer.c: weir_send_after and weir_cancel_timer. A timer's message
 * arrives in handle_info with ref == the timer, not before its time; a
 * cancelled timer never fires; cancelling a fired timer is ENOTFOUND; and
 * thousands of timers from several threads, some cancelled, fire exactly once
 * each (the stress part: seeded, scaled).
 */
#include "testlib.h"

#include <pthread.h>
#include <stdatomic.h>

#define TAG_STOP 1
#define TAG_TICK 2
#define TAG_IDX  3

typedef struct tev {
  uint32_t tag, len;
  weir_ref ref;
  weir_pid from;
  uint64_t at_us;
  char data[16];
} tev;

typedef struct trcv {
  pthread_mutex_t mu;
  tev ev[64];
  int n;
  atomic_int terminated;
} trcv;

/* Stress bookkeeping, indexed by timer number. */
static atomic_uint *fired;
static _Atomic uint64_t *fired_ref;
static atomic_uint_fast64_t fired_total;

static int t_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int t_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  (void)state;
  CHECK_EQ_INT(m->tag, TAG_STOP);
  return WEIR_STOP;
}

static int t_info(weir_ctx *cx, void *state, const weir_msg *m) {
  trcv *r = state;
  (void)cx;
  if (m->tag == TAG_IDX) {
    uint32_t i;
    CHECK_EQ_INT(m->len, sizeof i);
    memcpy(&i, m->data, sizeof i);
    atomic_fetch_add(&fired[i], 1);
    atomic_store(&fired_ref[i], m->ref);
    atomic_fetch_add(&fired_total, 1);
    return WEIR_OK;
  }
  uint64_t now = test_now_us();
  pthread_mutex_lock(&r->mu);
  CHECK(r->n < 64);
  tev *e = &r->ev[r->n++];
  e->tag = m->tag;
  e->len = m->len;
  e->ref = m->ref;
  e->from = m->from;
  e->at_us = now;
  memcpy(e->data, m->data, m->len < 16 ? m->len : 16);
  pthread_mutex_unlock(&r->mu);
  return WEIR_OK;
}

static void t_terminate(weir_ctx *cx, void *state, int reason,
                        const weir_msg *in_hand) {
  trcv *r = state;
  (void)cx;
  (void)reason;
  (void)in_hand;
  atomic_store(&r->terminated, 1);
}

static const weir_server tsrv = {
    .name = "timer_rcv",
    .init = t_init,
    .handle_cast = t_cast,
    .handle_info = t_info,
    .terminate = t_terminate,
};

static int nev(trcv *r) {
  pthread_mutex_lock(&r->mu);
  int n = r->n;
  pthread_mutex_unlock(&r->mu);
  return n;
}

static weir_pid spawn_rcv(weir_rt *rt, trcv *r) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
  weir_pid pid;
  CHECK_OK(weir_spawn(rt, &tsrv, r, NULL, &pid));
  return pid;
}

static void stop_rcv(weir_rt *rt, weir_pid pid, trcv *r) {
  CHECK_OK(weir_cast(rt, pid, TAG_STOP, NULL, 0));
  WAIT_UNTIL(atomic_load(&r->terminated), TEST_LIVENESS_MS);
}

static void test_basic(weir_rt *rt) {
  trcv r;
  weir_pid pid = spawn_rcv(rt, &r);
  weir_ref t = 0;
  uint64_t t0 = test_now_us();
  CHECK_OK(weir_send_after(rt, pid, TAG_TICK, "tick", 4, 20, &t));
  CHECK(t != 0);
  WAIT_UNTIL(nev(&r) == 1, TEST_LIVENESS_MS);
  pthread_mutex_lock(&r.mu);
  CHECK_EQ_U64(r.ev[0].tag, TAG_TICK);
  CHECK_EQ_U64(r.ev[0].ref, t);
  CHECK_EQ_INT(r.ev[0].len, 4);
  CHECK(memcmp(r.ev[0].data, "tick", 4) == 0);
  CHECK(weir_pid_is_none(r.ev[0].from));
  /* Never early (1 ms of clock slack). */
  CHECK_MSG(r.ev[0].at_us + 1000 >= t0 + 20000, "fired after %llu us",
            (unsigned long long)(r.ev[0].at_us - t0));
  pthread_mutex_unlock(&r.mu);
  /* It fired: cancelling it now finds nothing. */
  CHECK_RC(weir_cancel_timer(rt, t), WEIR_ENOTFOUND);

  /* 0 ms, no payload, no ref wanted. */
  CHECK_OK(weir_send_after(rt, pid, TAG_TICK, NULL, 0, 0, NULL));
  WAIT_UNTIL(nev(&r) == 2, TEST_LIVENESS_MS);
  pthread_mutex_lock(&r.mu);
  CHECK_EQ_INT(r.ev[1].len, 0);
  CHECK(r.ev[1].ref != 0);
  CHECK(r.ev[1].ref != t);
  pthread_mutex_unlock(&r.mu);

  /* Distinct due times fire in due order, whatever the creation order. */
  weir_ref refs[4];
  for (int i = 3; i >= 0; i--) {
    char d = (char)('a' + i);
    CHECK_OK(weir_send_after(rt, pid, TAG_TICK, &d, 1, (uint32_t)(i * 40),
                             &refs[i]));
  }
  WAIT_UNTIL(nev(&r) == 6, TEST_LIVENESS_MS);
  pthread_mutex_lock(&r.mu);
  for (int i = 0; i < 4; i++) {
    CHECK_EQ_INT(r.ev[2 + i].data[0], 'a' + i);
    CHECK_EQ_U64(r.ev[2 + i].ref, refs[i]);
  }
  pthread_mutex_unlock(&r.mu);
  stop_rcv(rt, pid, &r);
}

static void test_cancel(weir_rt *rt) {
  trcv r;
  weir_pid pid = spawn_rcv(rt, &r);
  weir_ref t1 = 0, t2 = 0;
  CHECK_OK(weir_send_after(rt, pid, TAG_TICK, "no", 2, 300, &t1));
  CHECK_OK(weir_send_after(rt, pid, TAG_TICK, "yes", 3, 400, &t2));
  CHECK(t1 != t2);
  CHECK_OK(weir_cancel_timer(rt, t1));
  CHECK_RC(weir_cancel_timer(rt, t1), WEIR_ENOTFOUND);
  /* t2 fires after t1's due time: once it is here, t1 would have been too. */
  WAIT_UNTIL(nev(&r) >= 1, TEST_LIVENESS_MS);
  test_sleep_ms(50);
  pthread_mutex_lock(&r.mu);
  CHECK_EQ_INT(r.n, 1);
  CHECK_EQ_U64(r.ev[0].ref, t2);
  CHECK(memcmp(r.ev[0].data, "yes", 3) == 0);
  pthread_mutex_unlock(&r.mu);
  CHECK_RC(weir_cancel_timer(rt, t2), WEIR_ENOTFOUND);
  /* Refs that never were timers. */
  CHECK_RC(weir_cancel_timer(rt, (weir_ref)0x7fffffffffffull), WEIR_ENOTFOUND);
  int rc = weir_cancel_timer(rt, 0);
  CHECK_MSG(rc == WEIR_ENOTFOUND || rc == WEIR_EINVAL, "cancel(0) rc %d", rc);
  stop_rcv(rt, pid, &r);
}

static void test_dead_target(weir_rt *rt, test_watcher *w) {
  trcv r;
  weir_pid pid = spawn_rcv(rt, &r);
  weir_ref t = 0;
  CHECK_OK(weir_send_after(rt, pid, TAG_TICK, "x", 1, 50, &t));
  weir_ref mon = test_watch(w, pid);
  stop_rcv(rt, pid, &r);
  CHECK(test_wait_down(w, mon, TEST_LIVENESS_MS, NULL));
  /* The timer is due after the process ended: it fires into nothing. */
  test_sleep_ms(150);
  CHECK_EQ_INT(nev(&r), 0);
  CHECK_RC(weir_cancel_timer(rt, t), WEIR_ENOTFOUND);
  /* A new timer to the stale pid: refused, or accepted and dropped. */
  weir_ref t2 = 0;
  int rc = weir_send_after(rt, pid, TAG_TICK, "x", 1, 0, &t2);
  CHECK_MSG(rc == WEIR_OK || rc == WEIR_ENOPROC, "rc %d", rc);
  test_sleep_ms(50);
  CHECK_EQ_INT(nev(&r), 0);
}

/* ---- stress: many timers, many threads, some cancelled ------------------- */

#define NRCV 4

typedef struct tt_arg {
  weir_rt *rt;
  weir_pid rcv[NRCV];
  uint32_t first, count;
  uint64_t seed;
  weir_ref *refs;
  uint8_t *cancelled; /* 1 = cancel returned OK */
} tt_arg;

static void *tt_thread(void *p) {
  tt_arg *a = p;
  test_rng rng;
  test_rng_init(&rng, a->seed);
  for (uint32_t i = a->first; i < a->first + a->count; i++) {
    uint32_t delay = test_rng_below(&rng, 201);
    weir_ref ref = 0;
    CHECK_OK(weir_send_after(a->rt, a->rcv[i % NRCV], TAG_IDX, &i, sizeof i,
                             delay, &ref));
    CHECK(ref != 0);
    a->refs[i] = ref;
    /* Cancel about a quarter: some at once, some a little later (a few of
       those will have fired already). */
    if (test_rng_below(&rng, 4) == 0) {
      if (test_rng_below(&rng, 2)) test_sleep_ms(test_rng_below(&rng, 3));
      int rc = weir_cancel_timer(a->rt, ref);
      CHECK_MSG(rc == WEIR_OK || rc == WEIR_ENOTFOUND, "cancel rc %d", rc);
      a->cancelled[i] = rc == WEIR_OK;
      if (rc == WEIR_OK) /* a second cancel never succeeds */
        CHECK_RC(weir_cancel_timer(a->rt, ref), WEIR_ENOTFOUND);
    }
  }
  return NULL;
}

static void test_many_timers(weir_rt *rt) {
  uint32_t n = (uint32_t)test_scaled(5000);
  if (n < 64) n = 64;
  fired = calloc(n, sizeof *fired);
  fired_ref = calloc(n, sizeof *fired_ref);
  weir_ref *refs = calloc(n, sizeof *refs);
  uint8_t *cancelled = calloc(n, 1);
  CHECK(fired && fired_ref && refs && cancelled);
  trcv r[NRCV];
  weir_pid rcv[NRCV];
  for (int i = 0; i < NRCV; i++)
    rcv[i] = spawn_rcv(rt, &r[i]);

  enum { NT = 4 };
  pthread_t th[NT];
  tt_arg a[NT];
  uint32_t per = n / NT;
  for (uint32_t t = 0; t < NT; t++) {
    a[t].rt = rt;
    memcpy(a[t].rcv, rcv, sizeof rcv);
    a[t].first = t * per;
    a[t].count = t == NT - 1 ? n - t * per : per;
    a[t].seed = test_seed() * 31 + t;
    a[t].refs = refs;
    a[t].cancelled = cancelled;
    CHECK(pthread_create(&th[t], NULL, tt_thread, &a[t]) == 0);
  }
  for (int t = 0; t < NT; t++)
    pthread_join(th[t], NULL);

  uint64_t want = 0;
  for (uint32_t i = 0; i < n; i++)
    want += !cancelled[i];
  WAIT_UNTIL(atomic_load(&fired_total) >= want, TEST_LIVENESS_MS);
  test_sleep_ms(300); /* past every due time: late duplicates would show */
  CHECK_EQ_U64(atomic_load(&fired_total), want);
  for (uint32_t i = 0; i < n; i++) {
    unsigned f = atomic_load(&fired[i]);
    if (cancelled[i]) {
      CHECK_MSG(f == 0, "timer %u fired %u times after a successful cancel", i,
                f);
    } else {
      CHECK_MSG(f == 1, "timer %u fired %u times", i, f);
      CHECK_EQ_U64(atomic_load(&fired_ref[i]), refs[i]);
      /* Fired timers are gone. */
      CHECK_RC(weir_cancel_timer(rt, refs[i]), WEIR_ENOTFOUND);
    }
    if (i > 0) CHECK(refs[i] != refs[i - 1]);
  }
  test_log("timers: %u created, %llu fired, %llu cancelled", n,
           (unsigned long long)want, (unsigned long long)(n - want));
  for (int i = 0; i < NRCV; i++)
    stop_rcv(rt, rcv[i], &r[i]);
  free(fired);
  free(fired_ref);
  free(refs);
  free(cancelled);
}

int main(void) {
  test_seed();
  weir_rt *rt = test_rt_start(2);
  test_watcher *w = test_watcher_start(rt);
  test_basic(rt);
  test_cancel(rt);
  test_dead_target(rt, w);
  test_many_timers(rt);

  /* Pending timers at stop: stop does not wait for them, and frees them. */
  trcv r;
  weir_pid pid = spawn_rcv(rt, &r);
  for (int i = 0; i < 100; i++)
    CHECK_OK(weir_send_after(rt, pid, TAG_TICK, "later", 5, 60000, NULL));
  uint64_t t0 = test_now_ms();
  test_rt_stop(rt);
  CHECK_MSG(test_now_ms() - t0 < 30000, "stop waited for pending timers");
  CHECK_EQ_INT(r.n, 0);
  test_watcher_free(w);
  test_log("test_timer: ok");
  return 0;
}
