/*
 * test_stress_churn.c: processes start and end all the time while other
 * threads cast, send, call and signal pids picked at random from a shared
 * pool (most of them stale by the time they are used) and at random from
 * nowhere. Every operation returns one of the codes its contract lists,
 * nothing crashes (ASan/TSan watch the stale-pid paths), and at the end the
 * process count returns to its baseline and init/terminate balance.
 */
#include "testlib.h"

#include <pthread.h>
#include <stdatomic.h>

#define TAG_STOP  1
#define TAG_CRASH 2
#define TAG_WORK  3
#define TAG_FORK  4 /* spawn a short-lived child from inside a process */
#define CALL_ECHO 10

enum { POOL = 512, NCHURN = 3, NCASTERS = 3 };

static _Atomic uint64_t pool[POOL];
static atomic_int live_inits, live_terms, init_failures, forks;
static weir_rt *rt;
static uint64_t seed;
static uint64_t churn_ops, cast_ops;

static const weir_server csrv;

static int c_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  intptr_t fail = (intptr_t)arg;
  if (fail) {
    atomic_fetch_add(&init_failures, 1);
    return (int)fail;
  }
  *state = NULL;
  atomic_fetch_add(&live_inits, 1);
  return WEIR_OK;
}

static int c_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)state;
  switch (m->tag) {
  case TAG_STOP:
    return WEIR_STOP;
  case TAG_CRASH:
    return -1;
  case TAG_WORK:
    return WEIR_OK;
  case TAG_FORK: {
    /* From a scheduler: init runs at once, on this thread; the child ends
       on its first message (a STOP cast right away), or spawn returns
       init's failure. */
    weir_pid child;
    intptr_t fail = (m->len > 0 && ((const char *)m->data)[0]) ? -9 : 0;
    int rc = weir_spawn(weir_ctx_rt(cx), &csrv, (void *)fail, NULL, &child);
    if (rc == WEIR_OK) {
      atomic_fetch_add(&forks, 1);
      rc = weir_cast(weir_ctx_rt(cx), child, TAG_STOP, NULL, 0);
      CHECK_MSG(rc == WEIR_OK || rc == WEIR_ENOPROC, "cast rc %d", rc);
    } else {
      CHECK_MSG(rc == -9, "spawn from a process rc %d", rc);
    }
    return WEIR_OK;
  }
  }
  test_fail(__FILE__, __LINE__, "unexpected tag %u", m->tag);
}

static int c_call(weir_ctx *cx, void *state, const weir_msg *m,
                  weir_from from) {
  (void)state;
  int rc = weir_reply(cx, from, m->data, m->len);
  CHECK_MSG(rc == WEIR_OK || rc == WEIR_ENOPROC, "reply rc %d", rc);
  return WEIR_OK;
}

static int c_info(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  (void)state;
  (void)m;
  return WEIR_OK;
}

static void c_terminate(weir_ctx *cx, void *state, int reason,
                        const weir_msg *in_hand) {
  (void)cx;
  (void)state;
  (void)reason;
  (void)in_hand;
  atomic_fetch_add(&live_terms, 1);
}

static const weir_server csrv = {
    .name = "churner",
    .init = c_init,
    .handle_cast = c_cast,
    .handle_call = c_call,
    .handle_info = c_info,
    .terminate = c_terminate,
};

#define OK_OR_NOPROC(rc)                                                       \
  CHECK_MSG((rc) == WEIR_OK || (rc) == WEIR_ENOPROC, "%s returned %s (%d)",    \
            #rc, weir_err_name(rc), (rc))

static void end_pid(weir_pid p, test_rng *rng) {
  int rc;
  switch (test_rng_below(rng, 4)) {
  case 0:
    rc = weir_cast(rt, p, TAG_STOP, NULL, 0);
    break;
  case 1:
    rc = weir_cast(rt, p, TAG_CRASH, NULL, 0);
    break;
  case 2:
    rc = weir_exit(rt, p, -4);
    break;
  default:
    rc = weir_exit(rt, p, WEIR_REASON_SHUTDOWN);
    break;
  }
  OK_OR_NOPROC(rc);
}

static void *churn_thread(void *arg) {
  test_rng rng;
  test_rng_init(&rng, seed + (uint64_t)(intptr_t)arg);
  for (uint64_t i = 0; i < churn_ops; i++) {
    uint32_t what = test_rng_below(&rng, 10);
    weir_pid p;
    if (what == 0) { /* an init that fails */
      int rc = weir_spawn(rt, &csrv, (void *)(intptr_t)-7, NULL, &p);
      CHECK_RC(rc, -7);
      continue;
    }
    if (what == 1) { /* a process spawns a child */
      weir_pid q = {atomic_load(&pool[test_rng_below(&rng, POOL)])};
      char fail = (char)test_rng_below(&rng, 2);
      int rc = weir_cast(rt, q, TAG_FORK, &fail, 1);
      CHECK_MSG(rc == WEIR_OK || rc == WEIR_ENOPROC ||
                    (weir_pid_is_none(q) && rc == WEIR_EINVAL),
                "fork cast rc %d", rc);
      continue;
    }
    CHECK_OK(weir_spawn(rt, &csrv, NULL, NULL, &p));
    weir_pid old = {atomic_exchange(&pool[test_rng_below(&rng, POOL)], p.id)};
    if (!weir_pid_is_none(old)) end_pid(old, &rng);
  }
  return NULL;
}

static void *caster_thread(void *arg) {
  test_rng rng;
  test_rng_init(&rng, seed * 7 + (uint64_t)(intptr_t)arg);
  char buf[64];
  for (uint64_t i = 0; i < cast_ops; i++) {
    weir_pid p = {atomic_load(&pool[test_rng_below(&rng, POOL)])};
    if (test_rng_below(&rng, 8) == 0) /* a pid from nowhere */
      p = test_pid_make(test_rng_below(&rng, 1u << 20),
                        test_rng_below(&rng, 64) + 1);
    if (weir_pid_is_none(p)) continue;
    uint32_t len = test_rng_below(&rng, 64);
    int rc;
    switch (test_rng_below(&rng, 16)) {
    case 0: {
      uint32_t rlen = sizeof buf;
      rc = weir_call(rt, p, CALL_ECHO, buf, len, buf, &rlen, 50);
      CHECK_MSG(rc == WEIR_OK || rc == WEIR_ENOPROC || rc == WEIR_ETIMEDOUT,
                "call rc %d", rc);
      if (rc == WEIR_OK) CHECK_EQ_INT(rlen, len);
      break;
    }
    case 1:
      rc = weir_send_after(rt, p, 5, buf, len, test_rng_below(&rng, 5), NULL);
      OK_OR_NOPROC(rc);
      break;
    case 2:
      rc = weir_exit(rt, p, WEIR_REASON_NORMAL); /* ignored by the living */
      OK_OR_NOPROC(rc);
      break;
    case 3:
      rc = weir_send(rt, p, 6, buf, len);
      OK_OR_NOPROC(rc);
      break;
    default:
      rc = weir_cast(rt, p, TAG_WORK, buf, len);
      OK_OR_NOPROC(rc);
      break;
    }
  }
  return NULL;
}

int main(void) {
  seed = test_seed();
  churn_ops = test_scaled(50000);
  cast_ops = test_scaled(300000);
  rt = test_rt_start(2);
  test_watcher *w = test_watcher_start(rt);
  uint64_t base = test_nprocs(rt);

  pthread_t th[NCHURN + NCASTERS];
  for (intptr_t i = 0; i < NCHURN; i++)
    CHECK(pthread_create(&th[i], NULL, churn_thread, (void *)i) == 0);
  for (intptr_t i = 0; i < NCASTERS; i++)
    CHECK(pthread_create(&th[NCHURN + i], NULL, caster_thread, (void *)i) == 0);
  for (int i = 0; i < NCHURN + NCASTERS; i++)
    pthread_join(th[i], NULL);

  /* End what is left in the pool and wait for each to be gone. */
  for (int i = 0; i < POOL; i++) {
    weir_pid p = {atomic_exchange(&pool[i], 0)};
    if (weir_pid_is_none(p)) continue;
    weir_ref ref = test_watch(w, p);
    int rc = weir_cast(rt, p, TAG_STOP, NULL, 0);
    OK_OR_NOPROC(rc);
    CHECK(test_wait_down(w, ref, TEST_LIVENESS_MS, NULL));
  }
  WAIT_UNTIL(test_nprocs(rt) == base, TEST_LIVENESS_MS);
  WAIT_UNTIL(atomic_load(&live_inits) == atomic_load(&live_terms),
             TEST_LIVENESS_MS);
  weir_stats st;
  CHECK_OK(weir_node_stats(rt, &st));
  CHECK_EQ_U64(st.processes, base);
  CHECK_EQ_U64(st.spawned - st.exited, base);
  CHECK(st.crashed > 0);
  test_log("churn: %d processes lived, %d forked, %d inits failed, "
           "spawned=%llu exited=%llu crashed=%llu",
           atomic_load(&live_inits), atomic_load(&forks),
           atomic_load(&init_failures), (unsigned long long)st.spawned,
           (unsigned long long)st.exited, (unsigned long long)st.crashed);
  test_rt_stop(rt);
  test_watcher_free(w);
  test_log("test_stress_churn: ok");
  return 0;
}
