/*
 * test_registry.c: weir_register / weir_whereis / weir_unregister and
 * spawn_opts.name. A name maps to one pid; a taken name is EEXIST; a name is
 * freed when its process ends; concurrent registrations of one name have
 * exactly one winner.
 */
#include "testlib.h"

#include <pthread.h>
#include <stdatomic.h>

#define TAG_STOP 1

static atomic_int inits;

static int r_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  atomic_fetch_add(&inits, 1);
  return WEIR_OK;
}

static int r_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  (void)state;
  CHECK_EQ_INT(m->tag, TAG_STOP);
  return WEIR_STOP;
}

static const weir_server rsrv = {
    .name = "named",
    .init = r_init,
    .handle_cast = r_cast,
};

static weir_rt *rt;
static test_watcher *w;
static uint64_t g_base; /* processes with only the watcher running */

static weir_pid spawn_plain(void) {
  weir_pid pid;
  CHECK_OK(weir_spawn(rt, &rsrv, NULL, NULL, &pid));
  return pid;
}

static void stop_wait(weir_pid pid) {
  weir_ref ref = test_watch(w, pid);
  CHECK_OK(weir_cast(rt, pid, TAG_STOP, NULL, 0));
  CHECK(test_wait_down(w, ref, TEST_LIVENESS_MS, NULL));
}

static void check_absent(const char *name) {
  weir_pid p = test_pid_make(3, 3);
  int rc = weir_whereis(rt, name, &p);
  CHECK_MSG(rc == WEIR_ENOTFOUND || rc == WEIR_ENOPROC,
            "whereis(\"%s\") returned %s (%d)", name, weir_err_name(rc), rc);
}

static void test_basic(void) {
  weir_pid a = spawn_plain(), b = spawn_plain(), p;
  check_absent("alpha");
  CHECK_OK(weir_register(rt, "alpha", a));
  CHECK_OK(weir_whereis(rt, "alpha", &p));
  CHECK_EQ_U64(p.id, a.id);
  /* Taken, by another pid or by the same one. */
  CHECK_RC(weir_register(rt, "alpha", b), WEIR_EEXIST);
  CHECK_RC(weir_register(rt, "alpha", a), WEIR_EEXIST);
  CHECK_OK(weir_whereis(rt, "alpha", &p));
  CHECK_EQ_U64(p.id, a.id);
  /* Names are exact: a prefix or a case change is another name. */
  check_absent("alph");
  check_absent("alphaa");
  check_absent("ALPHA");
  CHECK_OK(weir_register(rt, "beta", b));
  CHECK_OK(weir_whereis(rt, "beta", &p));
  CHECK_EQ_U64(p.id, b.id);

  /* The name is copied. */
  char buf[16];
  strcpy(buf, "gamma");
  weir_pid c = spawn_plain();
  CHECK_OK(weir_register(rt, buf, c));
  strcpy(buf, "XXXXX");
  CHECK_OK(weir_whereis(rt, "gamma", &p));
  CHECK_EQ_U64(p.id, c.id);

  CHECK_OK(weir_unregister(rt, "alpha"));
  check_absent("alpha");
  int rc = weir_unregister(rt, "alpha");
  CHECK_MSG(rc == WEIR_ENOTFOUND || rc == WEIR_ENOPROC, "rc %d", rc);
  /* Free again: anyone may take it. */
  weir_pid d = spawn_plain();
  CHECK_OK(weir_register(rt, "alpha", d));
  CHECK_OK(weir_whereis(rt, "alpha", &p));
  CHECK_EQ_U64(p.id, d.id);
  CHECK_OK(weir_unregister(rt, "alpha"));
  /* Unregistered, the process lives on and can take a name again. */
  CHECK_OK(weir_register(rt, "alpha", d));

  /* Bad arguments. */
  CHECK_RC(weir_register(rt, NULL, a), WEIR_EINVAL);
  CHECK_RC(weir_register(rt, "", a), WEIR_EINVAL);
  CHECK_RC(weir_whereis(rt, NULL, &p), WEIR_EINVAL);
  CHECK_RC(weir_unregister(rt, NULL), WEIR_EINVAL);

  stop_wait(a);
  stop_wait(b);
  stop_wait(c);
  stop_wait(d);
  check_absent("alpha");
  /* Names die with their processes. */
  check_absent("beta");
  check_absent("gamma");
}

static void test_stale(void) {
  weir_pid a = spawn_plain();
  stop_wait(a);
  CHECK_RC(weir_register(rt, "ghost", a), WEIR_ENOPROC);
  check_absent("ghost");
  CHECK_RC(weir_register(rt, "ghost", test_pid_make(1048575u, 1)),
           WEIR_ENOPROC);
  check_absent("ghost");
}

static void test_freed_on_exit(void) {
  for (int how = 0; how < 3; how++) {
    weir_pid a = spawn_plain(), p;
    CHECK_OK(weir_register(rt, "phoenix", a));
    weir_ref ref = test_watch(w, a);
    if (how == 0)
      CHECK_OK(weir_cast(rt, a, TAG_STOP, NULL, 0));
    else if (how == 1)
      CHECK_OK(weir_exit(rt, a, -1));
    else
      CHECK_OK(weir_exit(rt, a, WEIR_REASON_KILL));
    CHECK(test_wait_down(w, ref, TEST_LIVENESS_MS, NULL));
    /* Ended (its DOWN is out): the name is free. */
    check_absent("phoenix");
    weir_pid b = spawn_plain();
    CHECK_OK(weir_register(rt, "phoenix", b));
    CHECK_OK(weir_whereis(rt, "phoenix", &p));
    CHECK_EQ_U64(p.id, b.id);
    stop_wait(b);
    check_absent("phoenix");
  }
}

static void test_spawn_name(void) {
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  char name[16];
  strcpy(name, "delta");
  so.name = name;
  weir_pid a, p;
  CHECK_OK(weir_spawn(rt, &rsrv, NULL, &so, &a));
  strcpy(name, "zzzzz"); /* copied */
  CHECK_OK(weir_whereis(rt, "delta", &p));
  CHECK_EQ_U64(p.id, a.id);

  /* The name is taken: the spawn fails, calls no callback, starts nothing. */
  strcpy(name, "delta");
  /* Earlier processes may still be finishing their exits (the count drops a
     moment after the DOWN): settle at watcher + a. */
  WAIT_UNTIL(test_nprocs(rt) == g_base + 1, TEST_LIVENESS_MS);
  uint64_t before = test_nprocs(rt);
  int before_inits = atomic_load(&inits);
  weir_pid b = WEIR_PID_NONE;
  CHECK_RC(weir_spawn(rt, &rsrv, NULL, &so, &b), WEIR_EEXIST);
  CHECK_EQ_INT(atomic_load(&inits), before_inits);
  CHECK_EQ_U64(test_nprocs(rt), before);
  CHECK_OK(weir_whereis(rt, "delta", &p));
  CHECK_EQ_U64(p.id, a.id);

  stop_wait(a);
  check_absent("delta");
  CHECK_OK(weir_spawn(rt, &rsrv, NULL, &so, &b));
  CHECK_OK(weir_whereis(rt, "delta", &p));
  CHECK_EQ_U64(p.id, b.id);
  CHECK(!weir_pid_eq(a, b));
  stop_wait(b);
}

/* Threads race to register one name: exactly one wins each round. */
enum { NT = 4 };
static atomic_int round_go, wins, losses, round_done;

typedef struct race_arg {
  weir_pid pid;
  int rounds;
} race_arg;

static void *race_thread(void *p) {
  race_arg *a = p;
  for (int r = 1; r <= a->rounds; r++) {
    while (atomic_load(&round_go) < r) {
    }
    int rc = weir_register(rt, "contended", a->pid);
    if (rc == WEIR_OK)
      atomic_fetch_add(&wins, 1);
    else if (rc == WEIR_EEXIST)
      atomic_fetch_add(&losses, 1);
    else
      test_fail(__FILE__, __LINE__, "register rc %d", rc);
    atomic_fetch_add(&round_done, 1);
  }
  return NULL;
}

static void test_race(void) {
  int rounds = (int)test_scaled(400);
  pthread_t th[NT];
  race_arg a[NT];
  for (int i = 0; i < NT; i++) {
    a[i].pid = spawn_plain();
    a[i].rounds = rounds;
    CHECK(pthread_create(&th[i], NULL, race_thread, &a[i]) == 0);
  }
  for (int r = 1; r <= rounds; r++) {
    atomic_store(&wins, 0);
    atomic_store(&losses, 0);
    atomic_store(&round_done, 0);
    atomic_store(&round_go, r);
    WAIT_UNTIL(atomic_load(&round_done) == NT, TEST_LIVENESS_MS);
    CHECK_EQ_INT(atomic_load(&wins), 1);
    CHECK_EQ_INT(atomic_load(&losses), NT - 1);
    weir_pid p;
    CHECK_OK(weir_whereis(rt, "contended", &p));
    int owner = 0;
    for (int i = 0; i < NT; i++)
      owner += weir_pid_eq(p, a[i].pid);
    CHECK_EQ_INT(owner, 1);
    CHECK_OK(weir_unregister(rt, "contended"));
  }
  for (int i = 0; i < NT; i++) {
    pthread_join(th[i], NULL);
    stop_wait(a[i].pid);
  }
}

/* Many names at once. */
static void test_many(void) {
  enum { N = 1000 };
  static weir_pid pids[N];
  char name[32];
  for (int i = 0; i < N; i++) {
    pids[i] = spawn_plain();
    snprintf(name, sizeof name, "proc-%d", i);
    CHECK_OK(weir_register(rt, name, pids[i]));
  }
  for (int i = 0; i < N; i++) {
    weir_pid p;
    snprintf(name, sizeof name, "proc-%d", i);
    CHECK_OK(weir_whereis(rt, name, &p));
    CHECK_EQ_U64(p.id, pids[i].id);
  }
  for (int i = 0; i < N; i += 2) {
    snprintf(name, sizeof name, "proc-%d", i);
    CHECK_OK(weir_unregister(rt, name));
  }
  for (int i = 0; i < N; i++) {
    weir_pid p;
    snprintf(name, sizeof name, "proc-%d", i);
    if (i % 2 == 0) {
      check_absent(name);
    } else {
      CHECK_OK(weir_whereis(rt, name, &p));
      CHECK_EQ_U64(p.id, pids[i].id);
    }
    CHECK_OK(weir_cast(rt, pids[i], TAG_STOP, NULL, 0));
  }
}

int main(void) {
  test_seed();
  rt = test_rt_start(2);
  w = test_watcher_start(rt);
  g_base = test_nprocs(rt);
  test_basic();
  test_stale();
  test_freed_on_exit();
  test_spawn_name();
  test_race();
  test_many();
  test_rt_stop(rt);
  test_watcher_free(w);
  test_log("test_registry: ok");
  return 0;
}
