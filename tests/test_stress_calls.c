/*
 * test_stress_calls.c: call timeouts under load. Threads call slow servers
 * (blocking processes that sleep, and servers whose replies a separate
 * thread sends late) with short timeouts: each call returns OK with ITS OWN
 * reply, or ETIMEDOUT; a late reply never lands in a later call. Client
 * processes do the same with weir_call_async: for every ref exactly one of
 * REPLY / TIMEOUT arrives, never both, never neither. No crash, no leak
 * (ASan), no race (TSan).
 */
#include "testlib.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define CALL_SLOW  1 /* blocking server: sleep request.delay_us, then reply */
#define CALL_LATER 2 /* deferring server: hand from to the replier thread */
#define TAG_GO     3
#define TAG_STOP   4

typedef struct req {
  uint64_t id;
  uint32_t delay_us;
  uint32_t pad;
} req;

static weir_rt *rt;
static uint64_t seed;

/* ---- servers ---------------------------------------------------------------
 */

/* Deferred replies go through a bounded queue to the replier thread. */
typedef struct pending {
  weir_from from;
  uint64_t id;
  uint64_t due_us;
  uint32_t async; /* the caller is a process (call_async) */
} pending;

enum { QCAP = 1 << 16 };
static pending q[QCAP];
static size_t qhead, qtail;
static pthread_mutex_t qmu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int replier_stop;
static atomic_uint_fast64_t late_ok, late_noproc, late_ok_thread;
static atomic_uint_fast64_t ok_later_thread;

static int s_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int s_call(weir_ctx *cx, void *state, const weir_msg *m,
                  weir_from from) {
  (void)state;
  req r;
  CHECK_EQ_INT(m->len, sizeof r);
  memcpy(&r, m->data, sizeof r);
  if (m->tag == CALL_SLOW) {
    usleep(r.delay_us);
    int rc = weir_reply(cx, from, &r.id, sizeof r.id);
    CHECK_MSG(rc == WEIR_OK || rc == WEIR_ENOPROC, "reply rc %d", rc);
    return WEIR_OK;
  }
  CHECK_EQ_INT(m->tag, CALL_LATER);
  pthread_mutex_lock(&qmu);
  CHECK(qtail - qhead < QCAP);
  q[qtail % QCAP] = (pending){from, r.id, test_now_us() + r.delay_us, r.pad};
  qtail++;
  pthread_mutex_unlock(&qmu);
  return WEIR_OK;
}

static int s_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  (void)state;
  CHECK_EQ_INT(m->tag, TAG_STOP);
  return WEIR_STOP;
}

static const weir_server ssrv = {
    .name = "slow",
    .init = s_init,
    .handle_call = s_call,
    .handle_cast = s_cast,
};

static void *replier_thread(void *arg) {
  (void)arg;
  for (;;) {
    pending p;
    int have = 0;
    pthread_mutex_lock(&qmu);
    if (qhead < qtail && q[qhead % QCAP].due_us <= test_now_us()) {
      p = q[qhead % QCAP];
      qhead++;
      have = 1;
    }
    size_t left = qtail - qhead;
    pthread_mutex_unlock(&qmu);
    if (!have) {
      if (atomic_load(&replier_stop) && left == 0) return NULL;
      usleep(200);
      continue;
    }
    int rc = weir_reply_rt(rt, p.from, &p.id, sizeof p.id);
    if (rc == WEIR_OK) {
      atomic_fetch_add(&late_ok, 1);
      if (!p.async) atomic_fetch_add(&late_ok_thread, 1);
    } else if (rc == WEIR_ENOPROC)
      atomic_fetch_add(&late_noproc, 1);
    else
      test_fail(__FILE__, __LINE__, "reply_rt rc %d", rc);
  }
}

/* ---- callers: threads ------------------------------------------------------
 */

enum { NSLOW = 4, NLATER = 2, NCALLERS = 8 };
static weir_pid slow_pid[NSLOW], later_pid[NLATER];
static atomic_uint_fast64_t calls_ok, calls_timeout, next_id;

static void *caller_thread(void *arg) {
  test_rng rng;
  test_rng_init(&rng, seed + (uint64_t)(intptr_t)arg);
  uint64_t n = test_scaled(400);
  for (uint64_t i = 0; i < n; i++) {
    req r = {atomic_fetch_add(&next_id, 1), 0, 0};
    int to_later = test_rng_below(&rng, 2);
    weir_pid p = to_later ? later_pid[test_rng_below(&rng, NLATER)]
                          : slow_pid[test_rng_below(&rng, NSLOW)];
    r.delay_us = test_rng_below(&rng, 8000);
    int timeout = 1 + (int)test_rng_below(&rng, 8);
    uint64_t got = ~0ull;
    uint32_t len = sizeof got;
    int rc = weir_call(rt, p, to_later ? CALL_LATER : CALL_SLOW, &r, sizeof r,
                       &got, &len, timeout);
    if (rc == WEIR_OK) {
      CHECK_EQ_INT(len, sizeof got);
      CHECK_MSG(got == r.id, "call %llu got the reply of call %llu",
                (unsigned long long)r.id, (unsigned long long)got);
      atomic_fetch_add(&calls_ok, 1);
      if (to_later) atomic_fetch_add(&ok_later_thread, 1);
    } else {
      CHECK_MSG(rc == WEIR_ETIMEDOUT, "call rc %s (%d)", weir_err_name(rc), rc);
      atomic_fetch_add(&calls_timeout, 1);
    }
  }
  return NULL;
}

/* ---- callers: processes with call_async -----------------------------------
 */

enum { NCLIENTS = 4, PER_CLIENT = 256 };

typedef struct client {
  weir_ref refs[PER_CLIENT];
  uint64_t ids[PER_CLIENT];
  uint8_t outcome[PER_CLIENT]; /* 0 none, 1 reply, 2 timeout */
  int issued;
  atomic_int resolved;
  test_rng rng;
} client;

static client clients[NCLIENTS];
static uint32_t per_client;

static int find_ref(client *c, weir_ref ref) {
  for (int i = 0; i < c->issued; i++)
    if (c->refs[i] == ref) return i;
  return -1;
}

static int c_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  client *c = state;
  if (m->tag == TAG_STOP) return WEIR_STOP;
  CHECK_EQ_INT(m->tag, TAG_GO);
  /* Issue a few calls per run, then come back: keeps callbacks short. */
  for (int k = 0; k < 8 && (uint32_t)c->issued < per_client; k++) {
    int i = c->issued;
    req r = {atomic_fetch_add(&next_id, 1), 0, 1};
    int to_later = test_rng_below(&c->rng, 2);
    weir_pid p = to_later ? later_pid[test_rng_below(&c->rng, NLATER)]
                          : slow_pid[test_rng_below(&c->rng, NSLOW)];
    r.delay_us = test_rng_below(&c->rng, 8000);
    c->ids[i] = r.id;
    CHECK_OK(weir_call_async(cx, p, to_later ? CALL_LATER : CALL_SLOW, &r,
                             sizeof r, 1 + (int)test_rng_below(&c->rng, 8),
                             &c->refs[i]));
    CHECK(c->refs[i] != 0);
    c->issued++;
  }
  if ((uint32_t)c->issued < per_client)
    CHECK_OK(weir_cast(weir_ctx_rt(cx), weir_self(cx), TAG_GO, NULL, 0));
  return WEIR_OK;
}

static int c_info(weir_ctx *cx, void *state, const weir_msg *m) {
  client *c = state;
  (void)cx;
  int i = find_ref(c, m->ref);
  CHECK_MSG(i >= 0, "message tag %x with unknown ref %llu", m->tag,
            (unsigned long long)m->ref);
  CHECK_MSG(c->outcome[i] == 0,
            "ref %llu resolved twice (first %d, now tag %x)",
            (unsigned long long)m->ref, c->outcome[i], m->tag);
  if (m->tag == WEIR_TAG_REPLY) {
    uint64_t id;
    CHECK_EQ_INT(m->len, sizeof id);
    memcpy(&id, m->data, sizeof id);
    CHECK_EQ_U64(id, c->ids[i]);
    c->outcome[i] = 1;
  } else {
    CHECK_MSG(m->tag == WEIR_TAG_TIMEOUT, "unexpected tag %x", m->tag);
    c->outcome[i] = 2;
  }
  atomic_fetch_add(&c->resolved, 1);
  return WEIR_OK;
}

static const weir_server csrv = {
    .name = "async_client",
    .init = s_init,
    .handle_cast = c_cast,
    .handle_info = c_info,
};

int main(void) {
  seed = test_seed();
  weir_rt_opts o;
  weir_rt_opts_init(&o);
  o.schedulers = 2;
  rt = test_rt_start_opts(&o);
  test_watcher *w = test_watcher_start(rt);
  uint64_t base = test_nprocs(rt);

  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.blocking = 1;
  for (int i = 0; i < NSLOW; i++)
    CHECK_OK(weir_spawn(rt, &ssrv, NULL, &so, &slow_pid[i]));
  for (int i = 0; i < NLATER; i++)
    CHECK_OK(weir_spawn(rt, &ssrv, NULL, NULL, &later_pid[i]));

  pthread_t rep;
  CHECK(pthread_create(&rep, NULL, replier_thread, NULL) == 0);

  per_client = (uint32_t)test_scaled(PER_CLIENT);
  if (per_client > PER_CLIENT) per_client = PER_CLIENT;
  weir_pid cl[NCLIENTS];
  for (int i = 0; i < NCLIENTS; i++) {
    memset(&clients[i], 0, sizeof clients[i]);
    test_rng_init(&clients[i].rng, seed * 3 + (uint64_t)i);
    CHECK_OK(weir_spawn(rt, &csrv, &clients[i], NULL, &cl[i]));
    CHECK_OK(weir_cast(rt, cl[i], TAG_GO, NULL, 0));
  }

  pthread_t th[NCALLERS];
  for (intptr_t i = 0; i < NCALLERS; i++)
    CHECK(pthread_create(&th[i], NULL, caller_thread, (void *)i) == 0);
  for (int i = 0; i < NCALLERS; i++)
    pthread_join(th[i], NULL);

  for (int i = 0; i < NCLIENTS; i++)
    WAIT_UNTIL(atomic_load(&clients[i].resolved) == (int)per_client, 120000);
  /* Every timeout is 8 ms at most and every reply 8 ms late at most: wait
     well past both, then nothing more may have come (c_info would fail). */
  atomic_store(&replier_stop, 1);
  pthread_join(rep, NULL);
  test_sleep_ms(100);
  uint64_t a_ok = 0, a_to = 0;
  for (int i = 0; i < NCLIENTS; i++) {
    CHECK_EQ_INT(atomic_load(&clients[i].resolved), per_client);
    for (uint32_t k = 0; k < per_client; k++) {
      CHECK(clients[i].outcome[k] != 0);
      a_ok += clients[i].outcome[k] == 1;
      a_to += clients[i].outcome[k] == 2;
    }
    weir_ref ref = test_watch(w, cl[i]);
    CHECK_OK(weir_cast(rt, cl[i], TAG_STOP, NULL, 0));
    CHECK(test_wait_down(w, ref, TEST_LIVENESS_MS, NULL));
  }
  test_log("thread calls: %llu ok, %llu timed out; async: %llu ok, %llu "
           "timed out; late replies: %llu delivered, %llu discarded",
           (unsigned long long)atomic_load(&calls_ok),
           (unsigned long long)atomic_load(&calls_timeout),
           (unsigned long long)a_ok, (unsigned long long)a_to,
           (unsigned long long)atomic_load(&late_ok),
           (unsigned long long)atomic_load(&late_noproc));
  CHECK_EQ_U64(atomic_load(&calls_ok) + atomic_load(&calls_timeout),
               NCALLERS * test_scaled(400));
  /* A thread caller either got the deferred reply (weir_reply_rt said OK) or
     timed out (weir_reply_rt said ENOPROC: discarded): a reply reported as
     delivered is never lost. */
  CHECK_EQ_U64(atomic_load(&late_ok_thread), atomic_load(&ok_later_thread));

  /* The servers are still healthy. */
  for (int i = 0; i < NSLOW; i++) {
    req r = {424242, 0, 0};
    uint64_t got = 0;
    uint32_t len = sizeof got;
    CHECK_OK(weir_call(rt, slow_pid[i], CALL_SLOW, &r, sizeof r, &got, &len,
                       TEST_LIVENESS_MS));
    CHECK_EQ_U64(got, 424242);
  }
  for (int i = 0; i < NSLOW; i++)
    CHECK_OK(weir_cast(rt, slow_pid[i], TAG_STOP, NULL, 0));
  for (int i = 0; i < NLATER; i++)
    CHECK_OK(weir_cast(rt, later_pid[i], TAG_STOP, NULL, 0));
  WAIT_UNTIL(test_nprocs(rt) == base, TEST_LIVENESS_MS);
  test_rt_stop(rt);
  test_watcher_free(w);
  test_log("test_stress_calls: ok");
  return 0;
}
