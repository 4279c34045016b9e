/*
 * test_spawn.c: weir_spawn. init runs before weir_spawn returns and its
 * failure is the return value; init's state reaches the callbacks; a small
 * process table fills up (ELIMIT) and its slots are reused after exits with
 * a new generation, so that old pids are stale (ENOPROC); spawning from a
 * process runs init at once too (on the caller's thread), and the test
 * accepts either form of an init failure there: the return value, or an
 * exit.
 */
#include "testlib.h"

#include <pthread.h>
#include <stdatomic.h>

#define TAG_STOP  1
#define TAG_SPAWN 2 /* spawner: payload int32 init result for the child */
#define CALL_GET  10

typedef struct sstate {
  int value;
  weir_pid self_in_init;
} sstate;

static atomic_int inits, terms, init_ran_flag;

/* arg: int *: < 0 = fail with it; else the state's value. */
static int s_init(weir_ctx *cx, void *arg, void **state) {
  int v = arg ? *(int *)arg : 0;
  atomic_fetch_add(&inits, 1);
  atomic_store(&init_ran_flag, 1);
  if (v < 0) return v;
  sstate *s = malloc(sizeof *s);
  CHECK(s != NULL);
  s->value = v;
  s->self_in_init = weir_self(cx);
  *state = s;
  return WEIR_OK;
}

static int s_call(weir_ctx *cx, void *state, const weir_msg *m,
                  weir_from from) {
  sstate *s = state;
  CHECK_EQ_INT(m->tag, CALL_GET);
  int out[3] = {s ? s->value : -1, 0, 0};
  if (s) {
    out[1] = weir_pid_eq(s->self_in_init, weir_self(cx));
    out[2] = 1;
  }
  CHECK_OK(weir_reply(cx, from, out, sizeof out));
  return WEIR_OK;
}

static int s_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  (void)state;
  CHECK_EQ_INT(m->tag, TAG_STOP);
  return WEIR_STOP;
}

static void s_terminate(weir_ctx *cx, void *state, int reason,
                        const weir_msg *in_hand) {
  (void)cx;
  (void)reason;
  (void)in_hand;
  free(state);
  atomic_fetch_add(&terms, 1);
}

static const weir_server ssrv = {
    .name = "spawned",
    .init = s_init,
    .handle_call = s_call,
    .handle_cast = s_cast,
    .terminate = s_terminate,
};

/* No callbacks but handle_cast: init NULL leaves the state NULL. */
static int bare_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  CHECK(state == NULL);
  return m->tag == TAG_STOP ? WEIR_STOP : WEIR_OK;
}
static const weir_server bare = {.name = "bare", .handle_cast = bare_cast};

static weir_rt *rt;
static test_watcher *w;
static uint64_t g_base; /* processes of rt with only the watcher running */

/* node_stats.processes drops when an exit has fully finished, which may be
   a moment after its DOWN: wait for the count to settle back to g_base. */
static void settle(void) {
  WAIT_UNTIL(test_nprocs(rt) == g_base, TEST_LIVENESS_MS);
}

static void stop_wait(weir_pid pid) {
  weir_ref ref = test_watch(w, pid);
  CHECK_OK(weir_cast(rt, pid, TAG_STOP, NULL, 0));
  CHECK(test_wait_down(w, ref, TEST_LIVENESS_MS, NULL));
}

static void test_init(void) {
  settle();
  int v = 41;
  weir_pid pid = WEIR_PID_NONE;
  atomic_store(&init_ran_flag, 0);
  CHECK_OK(weir_spawn(rt, &ssrv, &v, NULL, &pid));
  /* init ran before weir_spawn returned. */
  CHECK(atomic_load(&init_ran_flag));
  CHECK(!weir_pid_is_none(pid));
  int out[3];
  uint32_t len = sizeof out;
  CHECK_OK(weir_call(rt, pid, CALL_GET, NULL, 0, out, &len, TEST_LIVENESS_MS));
  CHECK_EQ_INT(out[0], 41);
  CHECK_EQ_INT(out[1], 1); /* weir_self in init == weir_self later */
  CHECK_EQ_INT(out[2], 1);
  char buf[24];
  CHECK(weir_pid_format(pid, buf, sizeof buf) > 0);
  test_log("spawned %s", buf);
  stop_wait(pid);
  settle();

  /* A failing init: its code is weir_spawn's, no process is left. */
  uint64_t base = g_base;
  int before_terms = atomic_load(&terms);
  static const int codes[] = {-1, -42, WEIR_ENOMEM, -1000000};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    int c = codes[i];
    CHECK_RC(weir_spawn(rt, &ssrv, &c, NULL, &pid), c);
  }
  CHECK_EQ_U64(test_nprocs(rt), base);
  /* terminate is not called for a process whose init failed (as in OTP). */
  CHECK_EQ_INT(atomic_load(&terms), before_terms);

  /* init may be NULL. */
  weir_pid b;
  CHECK_OK(weir_spawn(rt, &bare, NULL, NULL, &b));
  CHECK_OK(weir_cast(rt, b, 7, NULL, 0));
  stop_wait(b);

  /* Bad arguments. */
  CHECK_RC(weir_spawn(rt, NULL, NULL, NULL, &pid), WEIR_EINVAL);
  CHECK_RC(weir_spawn(NULL, &bare, NULL, NULL, &pid), WEIR_EINVAL);
  settle();
}

static void test_table_limit(void) {
  weir_rt_opts o;
  weir_rt_opts_init(&o);
  o.schedulers = 2;
  o.max_processes = 64;
  weir_rt *small = test_rt_start_opts(&o);
  test_watcher *sw = test_watcher_start(small);
  uint64_t base = test_nprocs(small); /* the watcher, and any of the rt's */
  enum { CAP = 64 };
  weir_pid pids[CAP + 16];
  int n = 0;
  static int v = 1;
  for (int i = 0; i < CAP + 16; i++) {
    int rc = weir_spawn(small, &ssrv, &v, NULL, &pids[n]);
    if (rc == WEIR_ELIMIT) break;
    CHECK_OK(rc);
    n++;
  }
  CHECK_EQ_U64((uint64_t)n + base, CAP);
  CHECK_EQ_U64(test_nprocs(small), CAP);
  /* Still full: a failed spawn took nothing and ran no init. */
  int before = atomic_load(&inits);
  weir_pid x;
  CHECK_RC(weir_spawn(small, &ssrv, &v, NULL, &x), WEIR_ELIMIT);
  CHECK_EQ_INT(atomic_load(&inits), before);

  /* Churn in the full table: each exit frees one slot, the next spawn must
     take that very slot with another generation; the old pid is stale. */
  int rounds = (int)test_scaled(2000);
  size_t nhist = 0;
  weir_pid *hist = malloc(((size_t)rounds + CAP) * sizeof *hist);
  CHECK(hist != NULL);
  for (int i = 0; i < n; i++)
    hist[nhist++] = pids[i];
  test_rng rng;
  test_rng_init(&rng, test_seed());
  for (int r = 0; r < rounds; r++) {
    int i = (int)test_rng_below(&rng, (uint32_t)n);
    weir_pid old = pids[i];
    weir_ref ref = test_watch(sw, old);
    if (r % 3 == 0)
      CHECK_OK(weir_cast(small, old, TAG_STOP, NULL, 0));
    else if (r % 3 == 1)
      CHECK_OK(weir_exit(small, old, -1));
    else {
      int rk = weir_exit(small, old, WEIR_REASON_KILL);
      CHECK_MSG(rk == WEIR_OK, "round %d: exit(KILL) of live <0.%u.%u> -> %d",
                r, test_pid_slot(old), test_pid_gen(old), rk);
    }
    CHECK(test_wait_down(sw, ref, TEST_LIVENESS_MS, NULL));
    weir_pid fresh = WEIR_PID_NONE;
    int rc;
    uint64_t dl = test_now_ms() + TEST_LIVENESS_MS;
    while ((rc = weir_spawn(small, &ssrv, &v, NULL, &fresh)) == WEIR_ELIMIT &&
           test_now_ms() < dl)
      test_sleep_ms(1);
    CHECK_OK(rc);
    CHECK_EQ_INT(test_pid_slot(fresh), test_pid_slot(old));
    CHECK(test_pid_gen(fresh) != test_pid_gen(old));
    pids[i] = fresh;
    hist[nhist++] = fresh;
    /* Every use of the old pid is ENOPROC; the new one answers. */
    CHECK_RC(weir_cast(small, old, TAG_STOP, NULL, 0), WEIR_ENOPROC);
    CHECK_RC(weir_send(small, old, 5, NULL, 0), WEIR_ENOPROC);
    CHECK_RC(weir_exit(small, old, -1), WEIR_ENOPROC);
    if (r % 50 == 0) {
      int out[3];
      uint32_t len = sizeof out;
      CHECK_RC(weir_call(small, old, CALL_GET, NULL, 0, out, &len, 1000),
               WEIR_ENOPROC);
      CHECK_RC(weir_register(small, "stale", old), WEIR_ENOPROC);
      len = sizeof out;
      CHECK_OK(weir_call(small, fresh, CALL_GET, NULL, 0, out, &len,
                         TEST_LIVENESS_MS));
      CHECK_EQ_INT(out[0], 1);
      int reason = 0;
      weir_ref r2 = test_watch(sw, old);
      CHECK(test_wait_down(sw, r2, TEST_LIVENESS_MS, &reason));
      CHECK_EQ_INT(reason, WEIR_REASON_NOPROC);
      CHECK(!test_is_down(sw, test_watch(sw, fresh)));
    }
  }
  /* No pid was ever handed out twice. */
  for (size_t i = 0; i < nhist; i++)
    for (size_t j = i + 1; j < nhist; j++)
      CHECK_MSG(hist[i].id != hist[j].id, "pid %llx handed out twice",
                (unsigned long long)hist[i].id);
  free(hist);
  CHECK_EQ_U64(test_nprocs(small), CAP);
  test_rt_stop(small);
  test_watcher_free(sw);
}

/* ---- spawning from a process --------------------------------------------- */

typedef struct spawner {
  pthread_mutex_t mu;
  int rc;
  weir_pid child;
  int got_exit;
  weir_pid exit_from;
  int32_t exit_reason;
  atomic_int done;
} spawner;

static int sp_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  spawner *s = state;
  if (m->tag == TAG_STOP) return WEIR_STOP;
  CHECK_EQ_INT(m->tag, TAG_SPAWN);
  int *arg;
  memcpy(&arg, m->data, sizeof arg);
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.link = 1;
  weir_pid child = WEIR_PID_NONE;
  int rc = weir_spawn(weir_ctx_rt(cx), &ssrv, arg, &so, &child);
  pthread_mutex_lock(&s->mu);
  s->rc = rc;
  s->child = child;
  pthread_mutex_unlock(&s->mu);
  atomic_store(&s->done, 1);
  return WEIR_OK;
}

static int sp_info(weir_ctx *cx, void *state, const weir_msg *m) {
  spawner *s = state;
  (void)cx;
  CHECK_EQ_U64(m->tag, WEIR_TAG_EXIT);
  pthread_mutex_lock(&s->mu);
  s->got_exit++;
  s->exit_from = m->from;
  memcpy(&s->exit_reason, m->data, sizeof s->exit_reason);
  pthread_mutex_unlock(&s->mu);
  return WEIR_OK;
}

static int sp_init(weir_ctx *cx, void *arg, void **state) {
  weir_trap_exit(cx, 1);
  *state = arg;
  return WEIR_OK;
}

static const weir_server spsrv = {
    .name = "spawner",
    .init = sp_init,
    .handle_cast = sp_cast,
    .handle_info = sp_info,
};

static int got_exit(spawner *s) {
  pthread_mutex_lock(&s->mu);
  int g = s->got_exit;
  pthread_mutex_unlock(&s->mu);
  return g;
}

static void test_spawn_from_process(void) {
  spawner s;
  memset(&s, 0, sizeof s);
  pthread_mutex_init(&s.mu, NULL);
  weir_pid sp;
  CHECK_OK(weir_spawn(rt, &spsrv, &s, NULL, &sp));

  static int ok_value = 7, fail_value = -33;
  int *arg = &ok_value;
  CHECK_OK(weir_cast(rt, sp, TAG_SPAWN, &arg, sizeof arg));
  WAIT_UNTIL(atomic_load(&s.done), TEST_LIVENESS_MS);
  CHECK_OK(s.rc);
  CHECK(!weir_pid_is_none(s.child));
  int out[3];
  uint32_t len = sizeof out;
  CHECK_OK(
      weir_call(rt, s.child, CALL_GET, NULL, 0, out, &len, TEST_LIVENESS_MS));
  CHECK_EQ_INT(out[0], 7);
  CHECK_EQ_INT(out[1], 1);
  weir_pid first = s.child;
  stop_wait(first);
  WAIT_UNTIL(got_exit(&s) == 1, TEST_LIVENESS_MS);
  CHECK_EQ_INT(s.exit_reason, WEIR_REASON_NORMAL);
  CHECK_EQ_U64(s.exit_from.id, first.id);

  /* A failing init from a process: weir_spawn runs init at once and
     returns its code (the exit branch is kept for a future runtime that
     would start children asynchronously). */
  atomic_store(&s.done, 0);
  arg = &fail_value;
  CHECK_OK(weir_cast(rt, sp, TAG_SPAWN, &arg, sizeof arg));
  WAIT_UNTIL(atomic_load(&s.done), TEST_LIVENESS_MS);
  if (s.rc == WEIR_OK) {
    WAIT_UNTIL(got_exit(&s) == 2, TEST_LIVENESS_MS);
    CHECK_EQ_U64(s.exit_from.id, s.child.id);
    CHECK_EQ_INT(s.exit_reason, -33);
    CHECK_RC(weir_cast(rt, s.child, TAG_STOP, NULL, 0), WEIR_ENOPROC);
  } else {
    CHECK_RC(s.rc, -33);
  }
  stop_wait(sp);
}

static void test_many(void) {
  settle();
  uint64_t base = g_base;
  int n = (int)test_scaled(20000);
  weir_pid *p = malloc((size_t)n * sizeof *p);
  CHECK(p != NULL);
  static int v = 3;
  int t0 = atomic_load(&terms);
  for (int i = 0; i < n; i++)
    CHECK_OK(weir_spawn(rt, &ssrv, &v, NULL, &p[i]));
  CHECK_EQ_U64(test_nprocs(rt), base + (uint64_t)n);
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < i + 4 && j < n; j++)
      CHECK(p[i].id != p[j].id);
  for (int i = 0; i < n; i++)
    CHECK_OK(weir_cast(rt, p[i], TAG_STOP, NULL, 0));
  WAIT_UNTIL(atomic_load(&terms) - t0 == n, TEST_LIVENESS_MS);
  WAIT_UNTIL(test_nprocs(rt) == base, TEST_LIVENESS_MS);
  weir_stats st;
  CHECK_OK(weir_node_stats(rt, &st));
  CHECK(st.spawned >= (uint64_t)n);
  CHECK(st.exited >= (uint64_t)n);
  free(p);
}

int main(void) {
  test_seed();
  rt = test_rt_start(2);
  w = test_watcher_start(rt);
  g_base = test_nprocs(rt);
  test_init();
  test_table_limit();
  test_spawn_from_process();
  test_many();
  test_rt_stop(rt);
  test_watcher_free(w);
  test_log("test_spawn: ok");
  return 0;
}
