/*
 * test_sup.c: supervisors (sup.c) through the public API.
 *
 * Every child runs one test behaviour, `worker`, whose state is a `wcfg`
 * owned by the test: it counts its starts and terminations, remembers its
 * pid and last exit reason, and appends START/TERM events to one shared
 * event log, so a test can check not only *which* children restarted but in
 * what order they were stopped and started. Messages (casts) either crash
 * the child (callback returns -1), end it normally, or carry a sequence
 * number that the child logs, so the headline property can be checked: a
 * child that crashes on message K with a backlog behind it is restarted and
 * the next incarnation handles every message after K, in order; the message
 * in hand goes to terminate, which may requeue it.
 *
 * Covered: one_for_one, one_for_all, rest_for_one (who restarts, pids,
 * order); permanent, transient, temporary; intensity and its window;
 * escalation to a parent supervisor (nested), and past the top; shutdown in
 * reverse start order across a nested tree (terminate_child and rt_stop);
 * shutdown_ms then kill for a child that traps exits and ignores shutdown,
 * and shutdown_ms = 0 (brutal kill); which/count/terminate/restart_child;
 * weir_rt_stop with a tree running and messages queued (run it under ASan:
 * nothing may leak).
 */
#include "testlib.h"

#include <stdatomic.h>

enum { T_WORK = 1, T_CRASH, T_STOP, T_GATE };
enum { NCFG = 8, NSEQ = 4000, NEV = 512 };
enum { EV_START = 1, EV_TERM = 2 };

typedef struct wcfg {
  int idx;
  int trap;     /* trap exits and ignore every exit signal */
  int crash_at; /* crash on T_WORK seq == crash_at, once; -1 = never */
  int requeue;  /* terminate puts the message in hand back */
  atomic_int crashed;
  atomic_int starts, terms;
  atomic_int last_reason;
  atomic_int exits_seen; /* EXIT messages seen while trapping */
  _Atomic uint64_t pid;
  atomic_int in_hand_seq; /* seq of the message terminate got; -1 none */
  atomic_int in_hand_tag;
  atomic_int requeue_rc;
  atomic_int gate;
  atomic_int nhandled;
  atomic_int handled[NSEQ];
  atomic_int first_after_restart; /* first seq the 2nd incarnation saw */
} wcfg;

static wcfg cfg[NCFG];
static atomic_int ev[NEV];
static atomic_int ev_n;

static void ev_add(int kind, int idx) {
  int i = atomic_fetch_add(&ev_n, 1);
  CHECK(i < NEV);
  atomic_store(&ev[i], kind * 100 + idx);
}

static void reset_all(void) {
  for (int i = 0; i < NCFG; i++) {
    wcfg *c = &cfg[i];
    memset(c, 0, sizeof *c);
    c->idx = i;
    c->crash_at = -1;
    atomic_store(&c->in_hand_seq, -1);
    atomic_store(&c->in_hand_tag, -1);
    atomic_store(&c->requeue_rc, 1);
    atomic_store(&c->first_after_restart, -1);
    atomic_store(&c->last_reason, 12345);
  }
  atomic_store(&ev_n, 0);
}

/* Checks that the events from index `from` are exactly want[0..n). */
static void check_events(int line, int from, const int *want, int n) {
  int have = atomic_load(&ev_n) - from;
  int ok = have == n;
  for (int i = 0; ok && i < n; i++)
    ok = atomic_load(&ev[from + i]) == want[i];
  if (ok) return;
  fprintf(stderr, "events (line %d): have", line);
  for (int i = 0; i < have; i++)
    fprintf(stderr, " %d", atomic_load(&ev[from + i]));
  fprintf(stderr, "; want");
  for (int i = 0; i < n; i++)
    fprintf(stderr, " %d", want[i]);
  fprintf(stderr, "  (1xx = start of child xx, 2xx = terminate)\n");
  test_fail(__FILE__, line, "event sequence differs");
}
#define CHECK_EVENTS(from, ...)                                                \
  do {                                                                         \
    const int w_[] = {__VA_ARGS__};                                            \
    check_events(__LINE__, (from), w_, (int)(sizeof w_ / sizeof w_[0]));       \
  } while (0)

/* ---- the worker --------------------------------------------------------- */

static int w_init(weir_ctx *cx, void *arg, void **state) {
  wcfg *c = arg;
  *state = c;
  if (c->trap) weir_trap_exit(cx, 1);
  atomic_store(&c->pid, weir_self(cx).id);
  atomic_fetch_add(&c->starts, 1);
  ev_add(EV_START, c->idx);
  return WEIR_OK;
}

static int w_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  wcfg *c = state;
  (void)cx;
  switch (m->tag) {
  case T_CRASH:
    return -1;
  case T_STOP:
    return WEIR_STOP;
  case T_GATE:
    while (!atomic_load(&c->gate))
      test_sleep_ms(1);
    return WEIR_OK;
  case T_WORK: {
    int32_t seq;
    CHECK_EQ_INT(m->len, sizeof seq);
    memcpy(&seq, m->data, sizeof seq);
    if (seq == c->crash_at && !atomic_exchange(&c->crashed, 1)) return -1;
    if (atomic_load(&c->starts) > 1)
      (void)atomic_compare_exchange_strong(&c->first_after_restart, &(int){-1},
                                           seq);
    int n = atomic_load(&c->nhandled);
    CHECK(n < NSEQ);
    atomic_store(&c->handled[n], seq);
    atomic_store(&c->nhandled, n + 1);
    return WEIR_OK;
  }
  default:
    CHECK_MSG(0, "unexpected tag %u", m->tag);
  }
  return WEIR_OK;
}

static int w_info(weir_ctx *cx, void *state, const weir_msg *m) {
  wcfg *c = state;
  (void)cx;
  if (m->tag == WEIR_TAG_EXIT) {
    CHECK(c->trap);
    atomic_fetch_add(&c->exits_seen, 1);
  }
  return WEIR_OK; /* ignore it: the supervisor will have to kill us */
}

static void w_terminate(weir_ctx *cx, void *state, int reason,
                        const weir_msg *in_hand) {
  wcfg *c = state;
  atomic_store(&c->last_reason, reason);
  if (in_hand) {
    atomic_store(&c->in_hand_tag, (int)in_hand->tag);
    if (in_hand->tag == T_WORK && in_hand->len == sizeof(int32_t)) {
      int32_t seq;
      memcpy(&seq, in_hand->data, sizeof seq);
      atomic_store(&c->in_hand_seq, seq);
    }
    if (c->requeue) atomic_store(&c->requeue_rc, weir_requeue(cx, in_hand));
  }
  atomic_fetch_add(&c->terms, 1);
  ev_add(EV_TERM, c->idx);
}

static const weir_server worker = {.name = "test_worker",
                                   .init = w_init,
                                   .handle_cast = w_cast,
                                   .handle_info = w_info,
                                   .terminate = w_terminate};

/* ---- helpers ------------------------------------------------------------ */

static const char *const ids[NCFG] = {"a", "b", "c", "d", "e", "f", "g", "h"};

static weir_child_spec spec(int i) {
  weir_child_spec cs;
  weir_child_spec_init(&cs, ids[i], &worker, &cfg[i]);
  return cs;
}

static weir_pid cpid(int i) {
  weir_pid p = {atomic_load(&cfg[i].pid)};
  return p;
}

static weir_pid which_pid(weir_rt *rt, weir_pid sup, const char *id) {
  weir_child_info ci[NCFG];
  size_t n = 0;
  CHECK_OK(weir_sup_which_children(rt, sup, ci, NCFG, &n));
  for (size_t i = 0; i < n && i < NCFG; i++)
    if (strcmp(ci[i].id, id) == 0) return ci[i].pid;
  test_fail(__FILE__, __LINE__, "child %s not in which_children", id);
}

static void crash(weir_rt *rt, int i) {
  CHECK_OK(weir_cast(rt, cpid(i), T_CRASH, NULL, 0));
}

static int alive(weir_rt *rt, weir_pid pid) {
  weir_proc_info info;
  return weir_process_info(rt, pid, &info) == WEIR_OK;
}

static weir_pid start_sup(weir_rt *rt, weir_strategy st, int max_r, int max_s,
                          int n) {
  weir_child_spec cs[NCFG];
  for (int i = 0; i < n; i++)
    cs[i] = spec(i);
  weir_sup_opts o;
  weir_sup_opts_init(&o);
  o.strategy = st;
  o.max_restarts = max_r;
  o.max_seconds = max_s;
  weir_pid sup;
  CHECK_OK(weir_sup_start(rt, &o, cs, (size_t)n, &sup));
  return sup;
}

/* ---- strategies --------------------------------------------------------- */

static void test_one_for_one(void) {
  test_log("[one_for_one]");
  reset_all();
  weir_rt *rt = test_rt_start(2);
  weir_pid sup = start_sup(rt, WEIR_ONE_FOR_ONE, 3, 5, 3);
  CHECK_EVENTS(0, 100, 101, 102); /* ordered start */
  weir_pid a0 = cpid(0), b0 = cpid(1), c0 = cpid(2);
  CHECK(weir_pid_eq(which_pid(rt, sup, "b"), b0));
  int mark = atomic_load(&ev_n);
  crash(rt, 1);
  WAIT_UNTIL(atomic_load(&cfg[1].starts) == 2, TEST_LIVENESS_MS);
  CHECK_EQ_INT(atomic_load(&cfg[1].last_reason), -1);
  weir_pid b1 = which_pid(rt, sup, "b");
  CHECK(!weir_pid_eq(b1, b0));
  CHECK(weir_pid_eq(b1, cpid(1)));
  CHECK(!alive(rt, b0));
  CHECK(alive(rt, b1));
  CHECK(weir_pid_eq(which_pid(rt, sup, "a"), a0));
  CHECK(weir_pid_eq(which_pid(rt, sup, "c"), c0));
  CHECK_EVENTS(mark, 201, 101);
  CHECK_EQ_INT(atomic_load(&cfg[0].starts), 1);
  CHECK_EQ_INT(atomic_load(&cfg[2].starts), 1);
  /* The crash message was in hand: terminate saw it. */
  CHECK_EQ_INT(atomic_load(&cfg[1].in_hand_tag), T_CRASH);
  /* An exit signal with an abnormal reason from outside: restarted too. */
  CHECK_OK(weir_exit(rt, cpid(2), -77));
  WAIT_UNTIL(atomic_load(&cfg[2].starts) == 2, TEST_LIVENESS_MS);
  CHECK_EQ_INT(atomic_load(&cfg[2].last_reason), -77);
  CHECK(alive(rt, sup));
  test_rt_stop(rt);
}

static void test_one_for_all(void) {
  test_log("[one_for_all]");
  reset_all();
  weir_rt *rt = test_rt_start(2);
  weir_pid sup = start_sup(rt, WEIR_ONE_FOR_ALL, 3, 5, 3);
  weir_pid old[3] = {cpid(0), cpid(1), cpid(2)};
  int mark = atomic_load(&ev_n);
  crash(rt, 1);
  for (int i = 0; i < 3; i++)
    WAIT_UNTIL(atomic_load(&cfg[i].starts) == 2, TEST_LIVENESS_MS);
  /* b's crash, then the others stopped last-started first, then all
     started again in order. */
  CHECK_EVENTS(mark, 201, 202, 200, 100, 101, 102);
  CHECK_EQ_INT(atomic_load(&cfg[1].last_reason), -1);
  CHECK_EQ_INT(atomic_load(&cfg[0].last_reason), WEIR_REASON_SHUTDOWN);
  CHECK_EQ_INT(atomic_load(&cfg[2].last_reason), WEIR_REASON_SHUTDOWN);
  for (int i = 0; i < 3; i++) {
    weir_pid p = which_pid(rt, sup, ids[i]);
    CHECK(!weir_pid_eq(p, old[i]));
    CHECK(weir_pid_eq(p, cpid(i)));
    CHECK(!alive(rt, old[i]));
    CHECK(alive(rt, p));
  }
  test_rt_stop(rt);
}

static void test_rest_for_one(void) {
  test_log("[rest_for_one]");
  reset_all();
  weir_rt *rt = test_rt_start(2);
  weir_pid sup = start_sup(rt, WEIR_REST_FOR_ONE, 3, 5, 4);
  weir_pid old[4] = {cpid(0), cpid(1), cpid(2), cpid(3)};
  int mark = atomic_load(&ev_n);
  crash(rt, 1);
  for (int i = 1; i < 4; i++)
    WAIT_UNTIL(atomic_load(&cfg[i].starts) == 2, TEST_LIVENESS_MS);
  CHECK_EVENTS(mark, 201, 203, 202, 101, 102, 103);
  CHECK_EQ_INT(atomic_load(&cfg[0].starts), 1);
  CHECK(weir_pid_eq(which_pid(rt, sup, "a"), old[0]));
  for (int i = 1; i < 4; i++)
    CHECK(!weir_pid_eq(which_pid(rt, sup, ids[i]), old[i]));
  /* The last child crashing restarts only itself. */
  mark = atomic_load(&ev_n);
  crash(rt, 3);
  WAIT_UNTIL(atomic_load(&cfg[3].starts) == 3, TEST_LIVENESS_MS);
  CHECK_EVENTS(mark, 203, 103);
  test_rt_stop(rt);
}

/* ---- restart types ------------------------------------------------------ */

static void test_restart_types(void) {
  test_log("[restart types]");
  reset_all();
  weir_rt *rt = test_rt_start(2);
  weir_child_spec cs[6];
  for (int i = 0; i < 6; i++)
    cs[i] = spec(i);
  cs[0].restart = WEIR_PERMANENT; /* a: normal exit */
  cs[1].restart = WEIR_TRANSIENT; /* b: normal exit */
  cs[2].restart = WEIR_TRANSIENT; /* c: crash */
  cs[3].restart = WEIR_TEMPORARY; /* d: crash */
  cs[4].restart = WEIR_TRANSIENT; /* e: exit(shutdown) */
  cs[5].restart = WEIR_PERMANENT; /* f: exit(shutdown) */
  weir_sup_opts o;
  weir_sup_opts_init(&o);
  o.max_restarts = 10;
  weir_pid sup;
  CHECK_OK(weir_sup_start(rt, &o, cs, 6, &sup));
  weir_child_counts cc;
  CHECK_OK(weir_sup_count_children(rt, sup, &cc));
  CHECK_EQ_INT(cc.specs, 6);
  CHECK_EQ_INT(cc.active, 6);

  CHECK_OK(weir_cast(rt, cpid(0), T_STOP, NULL, 0));
  CHECK_OK(weir_cast(rt, cpid(1), T_STOP, NULL, 0));
  crash(rt, 2);
  crash(rt, 3);
  CHECK_OK(weir_exit(rt, cpid(4), WEIR_REASON_SHUTDOWN));
  CHECK_OK(weir_exit(rt, cpid(5), WEIR_REASON_SHUTDOWN));
  for (int i = 0; i < 6; i++)
    WAIT_UNTIL(atomic_load(&cfg[i].terms) == 1, TEST_LIVENESS_MS);
  WAIT_UNTIL(atomic_load(&cfg[0].starts) == 2, TEST_LIVENESS_MS);
  WAIT_UNTIL(atomic_load(&cfg[2].starts) == 2, TEST_LIVENESS_MS);
  WAIT_UNTIL(atomic_load(&cfg[5].starts) == 2, TEST_LIVENESS_MS);
  CHECK_EQ_INT(atomic_load(&cfg[0].last_reason), WEIR_REASON_NORMAL);
  CHECK_EQ_INT(atomic_load(&cfg[1].last_reason), WEIR_REASON_NORMAL);
  CHECK_EQ_INT(atomic_load(&cfg[2].last_reason), -1);
  CHECK_EQ_INT(atomic_load(&cfg[3].last_reason), -1);
  CHECK_EQ_INT(atomic_load(&cfg[4].last_reason), WEIR_REASON_SHUTDOWN);
  CHECK_EQ_INT(atomic_load(&cfg[5].last_reason), WEIR_REASON_SHUTDOWN);

  /* The supervisor has handled every EXIT once which_children answers
     (requests queue behind the exits). Let a late restart show itself. */
  test_sleep_ms(50);
  weir_child_info ci[8];
  size_t n = 0;
  CHECK_OK(weir_sup_which_children(rt, sup, ci, 8, &n));
  CHECK_EQ_INT(n, 5); /* the temporary child is gone from the list */
  const char *want_ids[5] = {"a", "b", "c", "e", "f"};
  const int running[5] = {1, 0, 1, 0, 1};
  for (size_t i = 0; i < 5; i++) {
    CHECK_STR_EQ(ci[i].id, want_ids[i]);
    CHECK_EQ_INT(!weir_pid_is_none(ci[i].pid), running[i]);
    CHECK_EQ_INT(ci[i].is_supervisor, 0);
  }
  CHECK_EQ_INT(ci[1].restart, WEIR_TRANSIENT);
  CHECK_EQ_INT(atomic_load(&cfg[1].starts), 1);
  CHECK_EQ_INT(atomic_load(&cfg[3].starts), 1);
  CHECK_EQ_INT(atomic_load(&cfg[4].starts), 1);
  CHECK_OK(weir_sup_count_children(rt, sup, &cc));
  CHECK_EQ_INT(cc.specs, 5);
  CHECK_EQ_INT(cc.active, 3);
  CHECK_EQ_INT(cc.workers, 5);
  CHECK_EQ_INT(cc.supervisors, 0);
  /* A stopped transient child can be restarted by hand. */
  CHECK_OK(weir_sup_restart_child(rt, sup, "b"));
  CHECK_EQ_INT(atomic_load(&cfg[1].starts), 2);
  CHECK(weir_pid_eq(which_pid(rt, sup, "b"), cpid(1)));
  CHECK_RC(weir_sup_restart_child(rt, sup, "d"), WEIR_ENOTFOUND);
  test_rt_stop(rt);
}

/* ---- intensity ---------------------------------------------------------- */

static void test_intensity(void) {
  test_log("[intensity: 4th restart in 5 s stops the supervisor]");
  reset_all();
  weir_rt *rt = test_rt_start(2);
  test_watcher *w = test_watcher_start(rt);
  uint64_t base = test_nprocs(rt);
  weir_pid sup = start_sup(rt, WEIR_ONE_FOR_ONE, 3, 5, 2);
  weir_ref ref = test_watch(w, sup);
  CHECK_EQ_U64(test_nprocs(rt), base + 3);
  for (int k = 1; k <= 3; k++) {
    crash(rt, 0);
    WAIT_UNTIL(atomic_load(&cfg[0].starts) == k + 1, TEST_LIVENESS_MS);
  }
  CHECK(alive(rt, sup));
  int mark = atomic_load(&ev_n);
  crash(rt, 0);
  int reason = 0;
  CHECK(test_wait_down(w, ref, TEST_LIVENESS_MS, &reason));
  CHECK_EQ_INT(reason, WEIR_REASON_SHUTDOWN);
  /* No 5th start; the sibling was stopped with shutdown. */
  CHECK_EVENTS(mark, 200, 201);
  CHECK_EQ_INT(atomic_load(&cfg[0].starts), 4);
  CHECK_EQ_INT(atomic_load(&cfg[1].last_reason), WEIR_REASON_SHUTDOWN);
  WAIT_UNTIL(test_nprocs(rt) == base, TEST_LIVENESS_MS);
  test_rt_stop(rt);
  test_watcher_free(w);

  test_log("[intensity: restarts spread out over the window are fine]");
  reset_all();
  rt = test_rt_start(2);
  sup = start_sup(rt, WEIR_ONE_FOR_ONE, 1, 1, 1);
  for (int k = 1; k <= 3; k++) {
    crash(rt, 0);
    WAIT_UNTIL(atomic_load(&cfg[0].starts) == k + 1, TEST_LIVENESS_MS);
    test_sleep_ms(1100);
  }
  CHECK(alive(rt, sup));
  test_rt_stop(rt);

  test_log("[intensity: max_restarts 0 never restarts]");
  reset_all();
  rt = test_rt_start(2);
  w = test_watcher_start(rt);
  sup = start_sup(rt, WEIR_ONE_FOR_ONE, 0, 5, 1);
  ref = test_watch(w, sup);
  crash(rt, 0);
  CHECK(test_wait_down(w, ref, TEST_LIVENESS_MS, &reason));
  CHECK_EQ_INT(reason, WEIR_REASON_SHUTDOWN);
  CHECK_EQ_INT(atomic_load(&cfg[0].starts), 1);
  test_rt_stop(rt);
  test_watcher_free(w);
}

/* ---- weir_supervisor_stats: read without a message ----------------------- */

static void test_stats(void) {
  test_log("[supervisor_stats: strategy, restarts, intensity left]");
  reset_all();
  weir_rt *rt = test_rt_start(2);
  weir_pid sup = start_sup(rt, WEIR_REST_FOR_ONE, 3, 5, 2);
  weir_sup_stats st;
  CHECK_OK(weir_supervisor_stats(rt, sup, &st));
  CHECK_EQ_INT(st.strategy, WEIR_REST_FOR_ONE);
  CHECK(strcmp(weir_strategy_name(st.strategy), "rest_for_one") == 0);
  CHECK_EQ_INT(st.max_restarts, 3);
  CHECK_EQ_INT(st.max_seconds, 5);
  CHECK_EQ_U64(st.restarts, 0);
  CHECK_EQ_INT(st.restarts_recent, 0);
  CHECK_EQ_INT(st.intensity_left, 3);
  for (int k = 1; k <= 2; k++) {
    crash(rt, 1);
    WAIT_UNTIL(atomic_load(&cfg[1].starts) == k + 1, TEST_LIVENESS_MS);
    CHECK_OK(weir_supervisor_stats(rt, sup, &st));
    CHECK_EQ_U64(st.restarts, (uint64_t)k);
    CHECK_EQ_INT(st.restarts_recent, k);
    CHECK_EQ_INT(st.intensity_left, 3 - k);
  }
  /* a worker is no supervisor; a made-up pid is no process */
  CHECK_EQ_INT(weir_supervisor_stats(rt, cpid(0), &st), WEIR_EINVAL);
  CHECK_EQ_INT(weir_supervisor_stats(rt, sup, NULL), WEIR_EINVAL);
  CHECK_EQ_INT(weir_supervisor_stats(NULL, sup, &st), WEIR_EINVAL);
  CHECK(strcmp(weir_strategy_name((weir_strategy)99), "unknown") == 0);
  test_rt_stop(rt);

  test_log("[supervisor_stats: the window empties, a stopped one is gone]");
  reset_all();
  rt = test_rt_start(2);
  test_watcher *w = test_watcher_start(rt);
  sup = start_sup(rt, WEIR_ONE_FOR_ALL, 2, 1, 1);
  weir_ref ref = test_watch(w, sup);
  crash(rt, 0);
  WAIT_UNTIL(atomic_load(&cfg[0].starts) == 2, TEST_LIVENESS_MS);
  CHECK_OK(weir_supervisor_stats(rt, sup, &st));
  CHECK_EQ_INT(st.strategy, WEIR_ONE_FOR_ALL);
  CHECK_EQ_INT(st.intensity_left, 1);
  test_sleep_ms(1100);
  CHECK_OK(weir_supervisor_stats(rt, sup, &st));
  CHECK_EQ_U64(st.restarts, 1);
  CHECK_EQ_INT(st.restarts_recent, 0);
  CHECK_EQ_INT(st.intensity_left, 2);
  CHECK_OK(weir_exit(rt, sup, WEIR_REASON_KILL));
  int reason = 0;
  CHECK(test_wait_down(w, ref, TEST_LIVENESS_MS, &reason));
  CHECK_EQ_INT(weir_supervisor_stats(rt, sup, &st), WEIR_ENOPROC);
  test_rt_stop(rt);
  test_watcher_free(w);
}

/* ---- nested supervisors and escalation ---------------------------------- */

/* top: [a, inner{b, c}, d] */
static weir_pid start_tree(weir_rt *rt, int top_max, int inner_max,
                           weir_child_spec *inner_out) {
  weir_child_spec kids[2] = {spec(1), spec(2)};
  weir_sup_opts io;
  weir_sup_opts_init(&io);
  io.max_restarts = inner_max;
  io.max_seconds = 5;
  weir_child_spec inner;
  CHECK_OK(weir_sup_child_spec(rt, &inner, "inner", &io, kids, 2));
  CHECK(inner.is_supervisor);
  if (inner_out) *inner_out = inner;
  weir_child_spec top[3] = {spec(0), inner, spec(3)};
  weir_sup_opts to;
  weir_sup_opts_init(&to);
  to.max_restarts = top_max;
  to.max_seconds = 5;
  weir_pid sup;
  CHECK_OK(weir_sup_start(rt, &to, top, 3, &sup));
  CHECK_EVENTS(0, 100, 101, 102, 103);
  return sup;
}

static void test_nested(void) {
  test_log("[nested: the inner supervisor gives up, the top restarts it]");
  reset_all();
  weir_rt *rt = test_rt_start(2);
  test_watcher *w = test_watcher_start(rt);
  weir_pid top = start_tree(rt, 3, 1, NULL);
  weir_pid inner0 = which_pid(rt, top, "inner");
  CHECK(!weir_pid_is_none(inner0));
  weir_ref iref = test_watch(w, inner0);
  weir_child_counts cc;
  CHECK_OK(weir_sup_count_children(rt, top, &cc));
  CHECK_EQ_INT(cc.specs, 3);
  CHECK_EQ_INT(cc.active, 3);
  CHECK_EQ_INT(cc.supervisors, 1);
  CHECK_EQ_INT(cc.workers, 2);
  weir_child_info ci[4];
  size_t n = 0;
  CHECK_OK(weir_sup_which_children(rt, top, ci, 4, &n));
  CHECK_EQ_INT(n, 3);
  CHECK_EQ_INT(ci[1].is_supervisor, 1);
  CHECK(weir_pid_eq(which_pid(rt, inner0, "b"), cpid(1)));
  weir_proc_info info;
  CHECK_OK(weir_process_info(rt, cpid(1), &info));
  CHECK(weir_pid_eq(info.supervisor, inner0));
  CHECK_OK(weir_process_info(rt, inner0, &info));
  CHECK(weir_pid_eq(info.supervisor, top));

  crash(rt, 1); /* inner restarts b: 1 restart, within its intensity */
  WAIT_UNTIL(atomic_load(&cfg[1].starts) == 2, TEST_LIVENESS_MS);
  CHECK(alive(rt, inner0));
  int mark = atomic_load(&ev_n);
  crash(rt, 1); /* 2nd in 5 s: inner stops c and exits shutdown */
  int reason = 0;
  CHECK(test_wait_down(w, iref, TEST_LIVENESS_MS, &reason));
  CHECK_EQ_INT(reason, WEIR_REASON_SHUTDOWN);
  /* top restarts inner (permanent), which starts b and c again. */
  WAIT_UNTIL(atomic_load(&cfg[2].starts) == 2, TEST_LIVENESS_MS);
  CHECK_EVENTS(mark, 201, 202, 101, 102);
  weir_pid inner1 = which_pid(rt, top, "inner");
  CHECK(!weir_pid_eq(inner1, inner0));
  CHECK(alive(rt, inner1));
  CHECK(weir_pid_eq(which_pid(rt, inner1, "b"), cpid(1)));
  CHECK_EQ_INT(atomic_load(&cfg[0].starts), 1);
  CHECK_EQ_INT(atomic_load(&cfg[3].starts), 1);
  test_rt_stop(rt);
  test_watcher_free(w);

  test_log("[nested: escalation past the top supervisor]");
  reset_all();
  rt = test_rt_start(2);
  w = test_watcher_start(rt);
  uint64_t base = test_nprocs(rt);
  top = start_tree(rt, 0, 0, NULL);
  weir_ref tref = test_watch(w, top);
  CHECK_EQ_U64(test_nprocs(rt), base + 6);
  mark = atomic_load(&ev_n);
  crash(rt, 2);
  CHECK(test_wait_down(w, tref, TEST_LIVENESS_MS, &reason));
  CHECK_EQ_INT(reason, WEIR_REASON_SHUTDOWN);
  /* c crashed, inner stopped b and died, top stopped d then a. */
  CHECK_EVENTS(mark, 202, 201, 203, 200);
  WAIT_UNTIL(test_nprocs(rt) == base, TEST_LIVENESS_MS);
  for (int i = 0; i < 4; i++)
    CHECK_EQ_INT(atomic_load(&cfg[i].starts), 1);
  test_rt_stop(rt);
  test_watcher_free(w);
}

/* ---- shutdown ------------------------------------------------------------ */

static void test_shutdown_order(void) {
  test_log("[shutdown order: reverse start order through a nested tree]");
  reset_all();
  weir_rt *rt = test_rt_start(2);
  weir_pid top = start_tree(rt, 3, 3, NULL);
  int mark = atomic_load(&ev_n);
  CHECK_OK(weir_sup_terminate_child(rt, top, "inner"));
  CHECK_EVENTS(mark, 202, 201);
  CHECK(weir_pid_is_none(which_pid(rt, top, "inner")));
  weir_child_counts cc;
  CHECK_OK(weir_sup_count_children(rt, top, &cc));
  CHECK_EQ_INT(cc.specs, 3);
  CHECK_EQ_INT(cc.active, 2);
  mark = atomic_load(&ev_n);
  CHECK_OK(weir_sup_restart_child(rt, top, "inner"));
  CHECK_EVENTS(mark, 101, 102);
  CHECK(!weir_pid_is_none(which_pid(rt, top, "inner")));
  /* Messages queued everywhere: stop lets the tree drain them, top-down,
     last started first. */
  for (int i = 0; i < 4; i++)
    for (int32_t s = 0; s < 100; s++)
      CHECK_OK(weir_cast(rt, cpid(i), T_WORK, &s, sizeof s));
  mark = atomic_load(&ev_n);
  test_rt_stop(rt);
  CHECK_EVENTS(mark, 203, 202, 201, 200);
  for (int i = 0; i < 4; i++) {
    CHECK_EQ_INT(atomic_load(&cfg[i].last_reason), WEIR_REASON_SHUTDOWN);
    CHECK_EQ_INT(atomic_load(&cfg[i].nhandled), 100);
  }
}

static void test_shutdown_kill(void) {
  test_log("[shutdown_ms, then kill; shutdown_ms 0 = brutal kill]");
  reset_all();
  weir_rt *rt = test_rt_start(2);
  cfg[0].trap = 1; /* a: traps and ignores shutdown, 300 ms */
  cfg[2].trap = 1; /* c: traps, shutdown_ms 0 */
  weir_child_spec cs[4] = {spec(0), spec(1), spec(2), spec(3)};
  cs[0].shutdown_ms = 300;
  cs[2].shutdown_ms = 0;
  weir_pid sup;
  CHECK_OK(weir_sup_start(rt, NULL, cs, 4, &sup));

  uint64_t t0 = test_now_ms();
  CHECK_OK(weir_sup_terminate_child(rt, sup, "a"));
  uint64_t took = test_now_ms() - t0;
  CHECK_EQ_INT(atomic_load(&cfg[0].terms), 1);
  int r = atomic_load(&cfg[0].last_reason);
  CHECK_MSG(r == WEIR_REASON_KILL || r == WEIR_REASON_KILLED,
            "a ended with reason %d, expected a kill", r);
  CHECK_MSG(took >= 250, "terminate_child waited only %llu ms of 300",
            (unsigned long long)took);
  CHECK(atomic_load(&cfg[0].exits_seen) >= 1); /* it saw the shutdown */
  CHECK(weir_pid_is_none(which_pid(rt, sup, "a")));
  CHECK_EQ_INT(atomic_load(&cfg[0].starts), 1); /* not restarted */

  CHECK_OK(weir_sup_terminate_child(rt, sup, "b"));
  CHECK_EQ_INT(atomic_load(&cfg[1].last_reason), WEIR_REASON_SHUTDOWN);

  CHECK_OK(weir_sup_terminate_child(rt, sup, "c"));
  r = atomic_load(&cfg[2].last_reason);
  CHECK_MSG(r == WEIR_REASON_KILL || r == WEIR_REASON_KILLED,
            "c ended with reason %d, expected a kill", r);
  CHECK_EQ_INT(atomic_load(&cfg[2].exits_seen), 0);

  /* rt_stop with a trapping child that ignores shutdown: killed after its
     shutdown_ms, and stop still completes cleanly. */
  CHECK_OK(weir_sup_restart_child(rt, sup, "a"));
  CHECK_EQ_INT(atomic_load(&cfg[0].starts), 2);
  t0 = test_now_ms();
  test_rt_stop(rt);
  took = test_now_ms() - t0;
  CHECK_EQ_INT(atomic_load(&cfg[0].terms), 2);
  r = atomic_load(&cfg[0].last_reason);
  CHECK_MSG(r == WEIR_REASON_KILL || r == WEIR_REASON_KILLED,
            "a ended with reason %d at stop, expected a kill", r);
  CHECK(took >= 250);
}

/* ---- which / count / terminate / restart -------------------------------- */

static void test_admin(void) {
  test_log("[which/count/terminate/restart_child]");
  reset_all();
  weir_rt *rt = test_rt_start(2);
  weir_child_spec cs[3] = {spec(0), spec(1), spec(2)};
  cs[2].restart = WEIR_TEMPORARY;
  weir_sup_opts o;
  weir_sup_opts_init(&o);
  o.name = "admin_sup";
  weir_pid sup;
  CHECK_OK(weir_sup_start(rt, &o, cs, 3, &sup));
  weir_pid byname;
  CHECK_OK(weir_whereis(rt, "admin_sup", &byname));
  CHECK(weir_pid_eq(byname, sup));

  weir_child_info ci[3];
  size_t n = 0;
  CHECK_OK(weir_sup_which_children(rt, sup, ci, 3, &n));
  CHECK_EQ_INT(n, 3);
  for (int i = 0; i < 3; i++) {
    CHECK_STR_EQ(ci[i].id, ids[i]);
    CHECK(weir_pid_eq(ci[i].pid, cpid(i)));
    CHECK_EQ_INT(ci[i].is_supervisor, 0);
    weir_proc_info info;
    CHECK_OK(weir_process_info(rt, cpid(i), &info));
    CHECK(weir_pid_eq(info.supervisor, sup));
    CHECK_STR_EQ(info.initial_call, "test_worker");
  }
  CHECK_EQ_INT(ci[2].restart, WEIR_TEMPORARY);
  /* A short buffer: the count is still the whole. */
  n = 0;
  CHECK_OK(weir_sup_which_children(rt, sup, ci, 1, &n));
  CHECK_STR_EQ(ci[0].id, "a");
  CHECK(n >= 1);
  CHECK_OK(weir_sup_which_children(rt, sup, NULL, 0, &n));
  CHECK_EQ_INT(n, 3);

  weir_pid b0 = cpid(1);
  CHECK_OK(weir_sup_terminate_child(rt, sup, "b"));
  CHECK_EQ_INT(atomic_load(&cfg[1].terms), 1);
  CHECK_EQ_INT(atomic_load(&cfg[1].last_reason), WEIR_REASON_SHUTDOWN);
  CHECK(!alive(rt, b0));
  CHECK_RC(weir_cast(rt, b0, T_CRASH, NULL, 0), WEIR_ENOPROC);
  test_sleep_ms(20);
  CHECK_EQ_INT(atomic_load(&cfg[1].starts), 1); /* stays stopped */
  weir_child_counts cc;
  CHECK_OK(weir_sup_count_children(rt, sup, &cc));
  CHECK_EQ_INT(cc.specs, 3);
  CHECK_EQ_INT(cc.active, 2);
  CHECK_RC(weir_sup_terminate_child(rt, sup, "nope"), WEIR_ENOTFOUND);
  CHECK_RC(weir_sup_restart_child(rt, sup, "nope"), WEIR_ENOTFOUND);
  CHECK_RC(weir_sup_restart_child(rt, sup, "a"), WEIR_EEXIST);
  /* terminating a stopped child is fine */
  CHECK_OK(weir_sup_terminate_child(rt, sup, "b"));
  CHECK_OK(weir_sup_restart_child(rt, sup, "b"));
  CHECK_EQ_INT(atomic_load(&cfg[1].starts), 2);
  weir_pid b1 = which_pid(rt, sup, "b");
  CHECK(!weir_pid_eq(b1, b0));
  CHECK(alive(rt, b1));
  /* the restarted child is supervised as before */
  crash(rt, 1);
  WAIT_UNTIL(atomic_load(&cfg[1].starts) == 3, TEST_LIVENESS_MS);

  /* A temporary child that is terminated is gone. */
  CHECK_OK(weir_sup_terminate_child(rt, sup, "c"));
  CHECK_OK(weir_sup_count_children(rt, sup, &cc));
  CHECK_EQ_INT(cc.specs, 2);
  CHECK_EQ_INT(cc.active, 2);
  CHECK_RC(weir_sup_restart_child(rt, sup, "c"), WEIR_ENOTFOUND);

  /* Errors: not a supervisor, a stale pid, bad arguments. */
  CHECK_RC(weir_sup_count_children(rt, which_pid(rt, sup, "b"), &cc),
           WEIR_EINVAL);
  CHECK_RC(weir_sup_which_children(rt, b0, ci, 3, &n), WEIR_ENOPROC);
  CHECK_RC(weir_sup_terminate_child(rt, sup, NULL), WEIR_EINVAL);
  weir_child_spec dup[2] = {spec(0), spec(0)};
  weir_pid x;
  CHECK_RC(weir_sup_start(rt, NULL, dup, 2, &x), WEIR_EEXIST);
  weir_child_spec bad = spec(0);
  bad.server = NULL;
  CHECK_RC(weir_sup_start(rt, NULL, &bad, 1, &x), WEIR_EINVAL);
  test_rt_stop(rt);
}

/* ---- the headline: a crash loses at most the message in hand ------------- */

static void headline(int blocking, int requeue, int keep) {
  test_log("[backlog survives a crash: blocking=%d requeue=%d keep=%d]",
           blocking, requeue, keep);
  reset_all();
  const int N = 3000, K = 1000;
  weir_rt *rt = test_rt_start(2);
  wcfg *c = &cfg[0];
  c->crash_at = K;
  c->requeue = requeue;
  weir_child_spec cs = spec(0);
  cs.opts.blocking = blocking;
  cs.keep_mailbox = keep;
  weir_pid sup;
  CHECK_OK(weir_sup_start(rt, NULL, &cs, 1, &sup));
  weir_pid p0 = cpid(0);
  CHECK_OK(weir_cast(rt, p0, T_GATE, NULL, 0));
  for (int32_t s = 0; s < N; s++)
    CHECK_OK(weir_cast(rt, p0, T_WORK, &s, sizeof s));
  weir_proc_info info;
  CHECK_OK(weir_process_info(rt, p0, &info));
  CHECK(info.message_queue_len >= (uint64_t)N - 1);
  atomic_store(&c->gate, 1);
  WAIT_UNTIL(atomic_load(&c->starts) == 2, TEST_LIVENESS_MS);
  CHECK_EQ_INT(atomic_load(&c->terms), 1);
  CHECK_EQ_INT(atomic_load(&c->last_reason), -1);
  CHECK_EQ_INT(atomic_load(&c->in_hand_tag), T_WORK);
  CHECK_EQ_INT(atomic_load(&c->in_hand_seq), K);
  if (requeue) CHECK_OK(atomic_load(&c->requeue_rc));
  weir_pid p1 = which_pid(rt, sup, "a");
  CHECK(!weir_pid_eq(p0, p1));

  if (keep) {
    int want = requeue ? N : N - 1;
    WAIT_UNTIL(atomic_load(&c->nhandled) == want, TEST_LIVENESS_MS);
    int i = 0;
    for (int32_t s = 0; s < N; s++) {
      if (s == K && !requeue) continue;
      int got = atomic_load(&c->handled[i]);
      CHECK_MSG(got == s, "handled[%d] = %d, expected %d", i, got, s);
      i++;
    }
    CHECK_EQ_INT(atomic_load(&c->first_after_restart), requeue ? K : K + 1);
    /* New messages go to the new pid and follow the backlog. */
    int32_t s = N;
    CHECK_OK(weir_cast(rt, p1, T_WORK, &s, sizeof s));
    WAIT_UNTIL(atomic_load(&c->nhandled) == want + 1, TEST_LIVENESS_MS);
    CHECK_EQ_INT(atomic_load(&c->handled[want]), N);
    weir_stats st;
    CHECK_OK(weir_node_stats(rt, &st));
    CHECK_EQ_U64(st.dead_letters, 0);
  } else {
    /* No kept mailbox: the backlog is dead-lettered, counted. */
    weir_stats st;
    uint64_t dl = test_now_ms() + TEST_LIVENESS_MS;
    do {
      CHECK_OK(weir_node_stats(rt, &st));
    } while (st.dead_letters < (uint64_t)(N - K - 1) && test_now_ms() < dl &&
             (test_sleep_ms(1), 1));
    CHECK_EQ_U64(st.dead_letters, (uint64_t)(N - K - 1 + (requeue ? 1 : 0)));
    CHECK_EQ_INT(atomic_load(&c->nhandled), K);
    int32_t s = N;
    CHECK_OK(weir_cast(rt, p1, T_WORK, &s, sizeof s));
    WAIT_UNTIL(atomic_load(&c->nhandled) == K + 1, TEST_LIVENESS_MS);
    CHECK_EQ_INT(atomic_load(&c->handled[K]), N);
  }
  test_rt_stop(rt);
}

/* ---- rt_stop with a tree, queued messages, and crash-held slots -------- */

static void test_stop_tree(void) {
  test_log("[rt_stop with a tree running]");
  reset_all();
  weir_rt *rt = test_rt_start(2);
  cfg[0].trap = 0;
  weir_pid top = start_tree(rt, 100, 100, NULL);
  (void)top;
  /* a second top-level tree, started after */
  weir_child_spec cs[2] = {spec(4), spec(5)};
  weir_pid sup2;
  CHECK_OK(weir_sup_start(rt, NULL, cs, 2, &sup2));
  /* e crashes on seq 5 with the rest queued behind the gate; its kept
     mailbox goes to the next incarnation. */
  cfg[4].crash_at = 5;
  CHECK_OK(weir_cast(rt, cpid(4), T_GATE, NULL, 0));
  for (int i = 0; i < 6; i++)
    for (int32_t s = 0; s < 200; s++)
      CHECK_OK(weir_cast(rt, cpid(i), T_WORK, &s, sizeof s));
  atomic_store(&cfg[4].gate, 1);
  WAIT_UNTIL(atomic_load(&cfg[4].starts) == 2, TEST_LIVENESS_MS);
  int mark = atomic_load(&ev_n);
  test_rt_stop(rt);
  /* Every child stopped once more, with shutdown, after draining. */
  int last[6];
  for (int i = 0; i < 6; i++)
    last[i] = -1;
  for (int i = mark; i < atomic_load(&ev_n); i++) {
    int e = atomic_load(&ev[i]);
    CHECK_MSG(e / 100 == EV_TERM, "event %d after stop", e);
    last[e % 100] = i;
  }
  for (int i = 0; i < 6; i++) {
    CHECK_MSG(last[i] >= 0, "child %d not terminated by rt_stop", i);
    CHECK_EQ_INT(atomic_load(&cfg[i].last_reason), WEIR_REASON_SHUTDOWN);
  }
  CHECK_EQ_INT(atomic_load(&cfg[4].nhandled), 199); /* seq 5 crashed */
  for (int i = 0; i < 6; i++)
    if (i != 4) CHECK_EQ_INT(atomic_load(&cfg[i].nhandled), 200);
  /* Within each tree: last started, first stopped. */
  CHECK(last[3] < last[2] && last[2] < last[1] && last[1] < last[0]);
  CHECK(last[5] < last[4]);
  /* Across trees (weir_rt_stop stops supervision trees top-down in
     reverse start order): the later tree is stopped before the earlier
     one. */
  test_log("  stop order across trees: f@%d e@%d d@%d c@%d b@%d a@%d", last[5],
           last[4], last[3], last[2], last[1], last[0]);
}

int main(void) {
  test_seed();
  test_one_for_one();
  test_one_for_all();
  test_rest_for_one();
  test_restart_types();
  test_admin();
  test_nested();
  test_shutdown_order();
  test_shutdown_kill();
  for (int keep = 1; keep >= 0; keep--)
    for (int blocking = 0; blocking <= 1; blocking++)
      for (int requeue = 0; requeue <= 1; requeue++)
        headline(blocking, requeue, keep);
  test_stop_tree();
  test_intensity();
  test_stats();
  test_log("test_sup: ok");
  return 0;
}
