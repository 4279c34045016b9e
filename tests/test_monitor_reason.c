/*
 * test_monitor_reason.c: a link or monitor that weir_link / weir_monitor
 * accepted while its target lived reports the target's real exit reason
 * (KILLED, the crash's code, NORMAL), also when the target ends before it
 * has handled the request; NOPROC only for a target already gone at the
 * call (issue "Monitors and links keep the real reason").
 *
 * Each scenario pins the order it tests rather than hoping for it: either
 * the node has one scheduler, which the requesting process holds while it
 * makes its request (the target cannot run before the kill or the crash is
 * queued), or the target is inside a callback that waits on a flag while
 * the request queues behind it. The races these orders used to lose are
 * then certain, and each scenario runs ITER times so that whatever is left
 * of a race shows. At the end of each scenario every requester must have
 * had exactly one event: a request is answered once, never by a later
 * incarnation of a supervised target.
 */
#include "testlib.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#define ITER 200

/* ---- the target: blocks on a flag, crashes on request ------------------ */

enum {
  T_BLOCK = 1, /* payload: int32 rc returned once released */
  T_CRASH      /* payload: int32 rc returned at once (< 0, or WEIR_STOP) */
};
#define CALL_PING 100

typedef struct tgt {
  atomic_int entered; /* inside T_BLOCK */
  atomic_int release; /* T_BLOCK may return */
  atomic_int starts;  /* incarnations (supervised: restarts) */
  _Atomic uint64_t pid;
} tgt;

static int t_init(weir_ctx *cx, void *arg, void **state) {
  tgt *t = arg;
  atomic_store(&t->pid, weir_self(cx).id);
  atomic_fetch_add(&t->starts, 1);
  *state = t;
  return WEIR_OK;
}

static int t_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  tgt *t = state;
  int32_t rc;
  (void)cx;
  CHECK_EQ_INT(m->len, sizeof rc);
  memcpy(&rc, m->data, sizeof rc);
  if (m->tag == T_BLOCK) {
    atomic_store(&t->entered, 1);
    while (!atomic_load(&t->release))
      sched_yield();
  }
  return rc;
}

static int t_call(weir_ctx *cx, void *state, const weir_msg *m,
                  weir_from from) {
  (void)state;
  CHECK_EQ_INT(m->tag, CALL_PING);
  CHECK_OK(weir_reply(cx, from, "pong", 4));
  return WEIR_OK;
}

static const weir_server tsrv = {.name = "target",
                                 .init = t_init,
                                 .handle_cast = t_cast,
                                 .handle_call = t_call};

/* ---- the requester: links to or monitors a target, records what comes -- */

enum { R_REQ = 1 };
enum { OP_MONITOR = 1, OP_LINK };
#define F_CRASH_FIRST 1 /* cast T_CRASH(arg) to the target just before */
#define F_KILL_AFTER  2 /* weir_exit(target, KILL) as soon as it returned */
#define F_BLOCK       4 /* then wait for the gate (holds the scheduler) */

typedef struct rcmd {
  weir_pid target;
  int32_t op, flags, arg;
} rcmd;

typedef struct ev {
  uint32_t tag;
  weir_pid from;
  weir_ref ref;
  int32_t reason;
} ev;

typedef struct req {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int issued; /* the request returned (rc, ref set) */
  int rc;
  weir_ref ref;
  atomic_int gate;
  ev ev[4];
  int nev;
} req;

static int r_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int r_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  req *r = state;
  rcmd c;
  CHECK_EQ_INT(m->tag, R_REQ);
  CHECK_EQ_INT(m->len, sizeof c);
  memcpy(&c, m->data, sizeof c);
  weir_rt *rt = weir_ctx_rt(cx);
  if (c.flags & F_CRASH_FIRST)
    CHECK_OK(weir_cast(rt, c.target, T_CRASH, &c.arg, sizeof c.arg));
  weir_ref ref = 0;
  int rc = c.op == OP_MONITOR ? weir_monitor(cx, c.target, &ref)
                              : weir_link(cx, c.target);
  if (c.flags & F_KILL_AFTER)
    CHECK_OK(weir_exit(rt, c.target, WEIR_REASON_KILL));
  pthread_mutex_lock(&r->mu);
  r->rc = rc;
  r->ref = ref;
  r->issued = 1;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  if (c.flags & F_BLOCK)
    while (!atomic_load(&r->gate))
      sched_yield();
  return WEIR_OK;
}

static int r_info(weir_ctx *cx, void *state, const weir_msg *m) {
  req *r = state;
  (void)cx;
  pthread_mutex_lock(&r->mu);
  CHECK_MSG(r->nev < 4, "too many events");
  ev *e = &r->ev[r->nev++];
  e->tag = m->tag;
  e->from = m->from;
  e->ref = m->ref;
  e->reason = 0x7777;
  if (m->len == sizeof(int32_t)) memcpy(&e->reason, m->data, sizeof(int32_t));
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  return WEIR_OK;
}

static const weir_server rsrv = {.name = "requester",
                                 .init = r_init,
                                 .handle_cast = r_cast,
                                 .handle_info = r_info};

/* ---- helpers ------------------------------------------------------------ */

static weir_rt *rt1, *rt2; /* one scheduler; two schedulers */
static test_watcher *w2;

/* The current scenario's requesters. Every state outlives the nodes (the
   requesters stay alive until weir_rt_stop): freed at the end. */
static req *reqs[ITER];
static void **owned;
static size_t nowned, capowned;

static void *own(size_t n) {
  void *p = calloc(1, n);
  CHECK(p != NULL);
  if (nowned == capowned) {
    capowned = capowned ? capowned * 2 : 1024;
    owned = realloc(owned, capowned * sizeof *owned);
    CHECK(owned != NULL);
  }
  owned[nowned++] = p;
  return p;
}

static tgt *new_tgt(void) {
  return own(sizeof(tgt));
}

static req *new_req(void) {
  req *r = own(sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  return r;
}

/* Ends a scenario: its requesters are no longer checked. */
static void next_scenario(void) {
  memset(reqs, 0, sizeof reqs);
}

static weir_pid spawn_t(weir_rt *rt, tgt *t) {
  weir_pid pid;
  CHECK_OK(weir_spawn(rt, &tsrv, t, NULL, &pid));
  return pid;
}

static weir_pid spawn_r(weir_rt *rt, req *r, int trap) {
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.trap_exit = trap;
  weir_pid pid;
  CHECK_OK(weir_spawn(rt, &rsrv, r, &so, &pid));
  return pid;
}

static void request(weir_rt *rt, weir_pid rp, weir_pid target, int32_t op,
                    int32_t flags, int32_t arg) {
  rcmd c = {target, op, flags, arg};
  CHECK_OK(weir_cast(rt, rp, R_REQ, &c, sizeof c));
}

/* Waits until r's request has returned; checks it returned OK. */
static void wait_issued(req *r) {
  pthread_mutex_lock(&r->mu);
  while (!r->issued)
    pthread_cond_wait(&r->cv, &r->mu); /* liveness: ctest's timeout */
  CHECK_OK(r->rc);
  pthread_mutex_unlock(&r->mu);
}

/* Waits for r's first event and checks it: a DOWN (monitor) or an EXIT
   (link) from target with reason. */
static void expect(req *r, int32_t op, weir_pid target, int32_t reason) {
  pthread_mutex_lock(&r->mu);
  while (r->nev == 0)
    pthread_cond_wait(&r->cv, &r->mu);
  ev e = r->ev[0];
  weir_ref ref = r->ref;
  pthread_mutex_unlock(&r->mu);
  CHECK_EQ_U64(e.tag, op == OP_MONITOR ? WEIR_TAG_DOWN : WEIR_TAG_EXIT);
  CHECK_EQ_U64(e.from.id, target.id);
  if (op == OP_MONITOR) CHECK_EQ_U64(e.ref, ref);
  CHECK_MSG(e.reason == reason, "%s reason %d (%s), want %d",
            op == OP_MONITOR ? "DOWN" : "EXIT", e.reason,
            e.reason == WEIR_REASON_NOPROC ? "NOPROC" : "other", reason);
}

/* After a scenario: no requester got a second answer. */
static void expect_one_each(void) {
  test_sleep_ms(50);
  for (int i = 0; i < ITER; i++) {
    if (!reqs[i]) continue;
    pthread_mutex_lock(&reqs[i]->mu);
    CHECK_MSG(reqs[i]->nev == 1, "requester %d got %d events", i, reqs[i]->nev);
    pthread_mutex_unlock(&reqs[i]->mu);
  }
}

static const char *op_name(int32_t op) {
  return op == OP_MONITOR ? "monitor" : "link";
}

/* ---- (1) killed before it handled the request --------------------------- */

/* One scheduler, held by the requester: its request is queued at the
   target, which has not run; then the kill. The target ends at its first
   run, the request still queued. */
static void test_kill_queued(int32_t op) {
  for (int i = 0; i < ITER; i++) {
    tgt *t = new_tgt();
    req *r = reqs[i] = new_req();
    weir_pid tp = spawn_t(rt1, t);
    weir_pid rp = spawn_r(rt1, r, op == OP_LINK);
    request(rt1, rp, tp, op, F_BLOCK, 0);
    wait_issued(r);
    CHECK_OK(weir_exit(rt1, tp, WEIR_REASON_KILL));
    atomic_store(&r->gate, 1);
    expect(r, op, tp, WEIR_REASON_KILLED);
    CHECK_EQ_INT(atomic_load(&t->entered), 0); /* it never ran a callback */
  }
  expect_one_each();
  next_scenario();
  test_log("kill with the %s request queued: ok", op_name(op));
}

/* Two schedulers; the target is busy in a callback, the request queues
   behind it, the kill comes, then the callback returns. */
static void test_kill_busy(int32_t op) {
  for (int i = 0; i < ITER; i++) {
    tgt *t = new_tgt();
    req *r = reqs[i] = new_req();
    weir_pid tp = spawn_t(rt2, t);
    weir_pid rp = spawn_r(rt2, r, op == OP_LINK);
    int32_t ok = WEIR_OK;
    CHECK_OK(weir_cast(rt2, tp, T_BLOCK, &ok, sizeof ok));
    WAIT_UNTIL(atomic_load(&t->entered), TEST_LIVENESS_MS);
    request(rt2, rp, tp, op, 0, 0);
    wait_issued(r);
    CHECK_OK(weir_exit(rt2, tp, WEIR_REASON_KILL));
    atomic_store(&t->release, 1);
    expect(r, op, tp, WEIR_REASON_KILLED);
  }
  expect_one_each();
  next_scenario();
  test_log("kill of a busy target, %s request queued: ok", op_name(op));
}

/* Two schedulers, the plain sequence: the request returns OK, then the
   requester kills the target at once (a race the kill flag used to win). */
static void test_kill_after(int32_t op) {
  for (int i = 0; i < ITER; i++) {
    tgt *t = new_tgt();
    req *r = reqs[i] = new_req();
    weir_pid tp = spawn_t(rt2, t);
    weir_pid rp = spawn_r(rt2, r, op == OP_LINK);
    request(rt2, rp, tp, op, F_KILL_AFTER, 0);
    wait_issued(r);
    expect(r, op, tp, WEIR_REASON_KILLED);
  }
  expect_one_each();
  next_scenario();
  test_log("%s, then kill: ok", op_name(op));
}

/* ---- (2) a crash queued just before the request ------------------------- */

/* One scheduler: the requester casts the crash and makes its request in
   one callback; the target runs after it, crashing with the request
   queued. reason WEIR_STOP stands for a normal stop. */
static void test_crash_first(int32_t op, int32_t code) {
  int32_t want = code == WEIR_STOP ? WEIR_REASON_NORMAL : code;
  for (int i = 0; i < ITER; i++) {
    tgt *t = new_tgt();
    req *r = reqs[i] = new_req();
    weir_pid tp = spawn_t(rt1, t);
    weir_pid rp = spawn_r(rt1, r, op == OP_LINK);
    request(rt1, rp, tp, op, F_CRASH_FIRST, code);
    wait_issued(r);
    expect(r, op, tp, want);
  }
  expect_one_each();
  next_scenario();
  test_log("%s queued behind a %s: ok", op_name(op),
           code == WEIR_STOP ? "normal stop" : "crash");
}

/* Two schedulers: the target is busy; the requester queues a crash and its
   request behind that; the callback returns and the crash follows. And the
   message in hand itself crashing, with the request queued behind it. */
static void test_crash_busy(int32_t op, int in_hand) {
  for (int i = 0; i < ITER; i++) {
    tgt *t = new_tgt();
    req *r = reqs[i] = new_req();
    weir_pid tp = spawn_t(rt2, t);
    weir_pid rp = spawn_r(rt2, r, op == OP_LINK);
    int32_t rc = in_hand ? -43 : WEIR_OK;
    CHECK_OK(weir_cast(rt2, tp, T_BLOCK, &rc, sizeof rc));
    WAIT_UNTIL(atomic_load(&t->entered), TEST_LIVENESS_MS);
    request(rt2, rp, tp, op, in_hand ? 0 : F_CRASH_FIRST, -42);
    wait_issued(r);
    atomic_store(&t->release, 1);
    expect(r, op, tp, in_hand ? -43 : -42);
  }
  expect_one_each();
  next_scenario();
  test_log("%s queued at a busy target that %s: ok", op_name(op),
           in_hand ? "crashes on the message in hand" : "crashes next");
}

/* ---- a supervised target: its mailbox is kept for the restart ----------- */

/* The request was for the incarnation that crashed: it answers with its
   crash, and the restart, which inherits the mailbox, does not take the
   request for its own (that would give a DOWN or EXIT from the wrong pid,
   and none for the crash). */
static void test_crash_supervised(int32_t op) {
  tgt *t = new_tgt();
  weir_child_spec cs;
  weir_child_spec_init(&cs, "t", &tsrv, t);
  weir_sup_opts o;
  weir_sup_opts_init(&o);
  o.max_restarts = 2 * ITER;
  o.max_seconds = 3600;
  weir_pid sup;
  CHECK_OK(weir_sup_start(rt2, &o, &cs, 1, &sup));
  for (int i = 0; i < ITER; i++) {
    req *r = reqs[i] = new_req();
    weir_pid tp = {atomic_load(&t->pid)};
    weir_pid rp = spawn_r(rt2, r, op == OP_LINK);
    int starts = atomic_load(&t->starts);
    atomic_store(&t->release, 0);
    atomic_store(&t->entered, 0);
    int32_t ok = WEIR_OK;
    CHECK_OK(weir_cast(rt2, tp, T_BLOCK, &ok, sizeof ok));
    WAIT_UNTIL(atomic_load(&t->entered), TEST_LIVENESS_MS);
    request(rt2, rp, tp, op, F_CRASH_FIRST, -44);
    wait_issued(r);
    atomic_store(&t->release, 1);
    expect(r, op, tp, -44);
    WAIT_UNTIL(atomic_load(&t->starts) == starts + 1, TEST_LIVENESS_MS);
  }
  /* The last incarnation ends too: it owes nobody an answer. */
  weir_ref ms = test_watch(w2, sup);
  CHECK_OK(weir_exit(rt2, sup, WEIR_REASON_KILL));
  CHECK(test_wait_down(w2, ms, TEST_LIVENESS_MS, NULL));
  expect_one_each();
  next_scenario();
  test_log("%s of a supervised target that crashes: ok", op_name(op));
}

/* ---- (3) already gone at the call: NOPROC ------------------------------- */

static void test_dead(int32_t op) {
  for (int i = 0; i < ITER; i++) {
    tgt *t = new_tgt();
    req *r = reqs[i] = new_req();
    weir_pid tp = spawn_t(rt2, t);
    weir_ref m = test_watch(w2, tp);
    int32_t stop = WEIR_STOP;
    CHECK_OK(weir_cast(rt2, tp, T_CRASH, &stop, sizeof stop));
    int reason = 0x5555;
    CHECK(test_wait_down(w2, m, TEST_LIVENESS_MS, &reason));
    CHECK_EQ_INT(reason, WEIR_REASON_NORMAL);
    weir_pid rp = spawn_r(rt2, r, op == OP_LINK);
    request(rt2, rp, tp, op, 0, 0);
    wait_issued(r);
    expect(r, op, tp, WEIR_REASON_NOPROC);
  }
  expect_one_each();
  next_scenario();
  test_log("%s of a dead pid: NOPROC: ok", op_name(op));
}

int main(void) {
  test_seed();
  rt1 = test_rt_start(1);
  rt2 = test_rt_start(2);
  w2 = test_watcher_start(rt2);
  for (int32_t op = OP_MONITOR; op <= OP_LINK; op++) {
    test_kill_queued(op);
    test_kill_busy(op);
    test_kill_after(op);
    test_crash_first(op, -42);
    test_crash_first(op, WEIR_STOP);
    test_crash_busy(op, 0);
    test_crash_busy(op, 1);
    test_crash_supervised(op);
    test_dead(op);
  }
  test_rt_stop(rt1);
  test_rt_stop(rt2);
  test_watcher_free(w2);
  for (size_t i = 0; i < nowned; i++)
    free(owned[i]); /* the mutexes and condvars hold no resources */
  free(owned);
  test_log("test_monitor_reason: ok");
  return 0;
}
