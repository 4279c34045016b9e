/*
 * test_links.c: links, exit signals, trap_exit, monitors, terminate and
 * weir_requeue. Every process here runs the same "linker" behaviour, driven
 * by casts from the test thread; what it sees is recorded in a test-owned
 * struct (one per process, never freed before weir_rt_stop).
 */
#include "testlib.h"

#include <pthread.h>
#include <stdatomic.h>

enum {
  CMD_LINK = 1,  /* payload: pid */
  CMD_UNLINK,    /* payload: pid */
  CMD_MONITOR,   /* payload: pid; ref kept in mon_ref[nmon++] */
  CMD_DEMONITOR, /* payload: ref */
  CMD_TRAP,      /* payload: int on */
  CMD_CRASH,     /* payload: int32 reason (< 0): returned from the callback */
  CMD_STOP,      /* returns WEIR_STOP */
  CMD_EXIT_SELF, /* payload: int32 reason: weir_exit(self) then return OK */
  CMD_REQ,       /* payload: uint32 seq; the first seq 0 is requeued once */
  CMD_SPAWN_LINK /* payload: lstate *: spawns a linked child with it */
};
#define CALL_PING 100

typedef struct ev {
  uint32_t tag;
  weir_pid from;
  weir_ref ref;
  int32_t reason;
  uint32_t len;
} ev;

typedef struct lstate {
  pthread_mutex_t mu;
  ev ev[32];
  int nev;
  int rc_link, rc_unlink, rc_demon, rc_spawn, rc_requeue;
  weir_ref mon_ref[8];
  int nmon;
  weir_pid child;
  uint32_t reqs[16];
  int nreq, requeued;
  int requeue_in_terminate;
  /* terminate */
  atomic_int terminated;
  int term_reason;
  int in_hand_present;
  uint32_t in_hand_tag, in_hand_len;
  int32_t in_hand_word;
} lstate;

#define NPOOL 256
static lstate pool[NPOOL];
static int npool;

static lstate *new_state(void) {
  CHECK(npool < NPOOL);
  lstate *s = &pool[npool++];
  memset(s, 0, sizeof *s);
  pthread_mutex_init(&s->mu, NULL);
  s->rc_link = s->rc_unlink = s->rc_demon = s->rc_spawn = 12345;
  return s;
}

static int l_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static const weir_server lsrv;

static int l_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  lstate *s = state;
  weir_rt *rt = weir_ctx_rt(cx);
  weir_pid pid;
  int32_t v;
  switch (m->tag) {
  case CMD_LINK:
    memcpy(&pid, m->data, sizeof pid);
    s->rc_link = weir_link(cx, pid);
    return WEIR_OK;
  case CMD_UNLINK:
    memcpy(&pid, m->data, sizeof pid);
    s->rc_unlink = weir_unlink(cx, pid);
    return WEIR_OK;
  case CMD_MONITOR: {
    memcpy(&pid, m->data, sizeof pid);
    weir_ref ref = 0;
    CHECK_OK(weir_monitor(cx, pid, &ref));
    CHECK(ref != 0);
    pthread_mutex_lock(&s->mu);
    s->mon_ref[s->nmon++] = ref;
    pthread_mutex_unlock(&s->mu);
    return WEIR_OK;
  }
  case CMD_DEMONITOR: {
    weir_ref ref;
    memcpy(&ref, m->data, sizeof ref);
    s->rc_demon = weir_demonitor(cx, ref);
    return WEIR_OK;
  }
  case CMD_TRAP:
    memcpy(&v, m->data, sizeof v);
    weir_trap_exit(cx, v);
    return WEIR_OK;
  case CMD_CRASH:
    memcpy(&v, m->data, sizeof v);
    return v;
  case CMD_STOP:
    return WEIR_STOP;
  case CMD_EXIT_SELF:
    memcpy(&v, m->data, sizeof v);
    CHECK_OK(weir_exit(rt, weir_self(cx), v));
    return WEIR_OK;
  case CMD_REQ: {
    uint32_t seq;
    memcpy(&seq, m->data, sizeof seq);
    pthread_mutex_lock(&s->mu);
    s->reqs[s->nreq++] = seq;
    int again = seq == 0 && !s->requeued;
    pthread_mutex_unlock(&s->mu);
    if (again) {
      s->requeued = 1;
      s->rc_requeue = weir_requeue(cx, m);
    }
    return WEIR_OK;
  }
  case CMD_SPAWN_LINK: {
    lstate *cs;
    memcpy(&cs, m->data, sizeof cs);
    weir_spawn_opts so;
    weir_spawn_opts_init(&so);
    so.link = 1;
    s->rc_spawn = weir_spawn(rt, &lsrv, cs, &so, &s->child);
    return WEIR_OK;
  }
  }
  test_fail(__FILE__, __LINE__, "unexpected cast %u", m->tag);
}

static int l_call(weir_ctx *cx, void *state, const weir_msg *m,
                  weir_from from) {
  (void)state;
  CHECK_EQ_INT(m->tag, CALL_PING);
  CHECK_OK(weir_reply(cx, from, "pong", 4));
  return WEIR_OK;
}

static int l_info(weir_ctx *cx, void *state, const weir_msg *m) {
  lstate *s = state;
  (void)cx;
  pthread_mutex_lock(&s->mu);
  CHECK(s->nev < 32);
  ev *e = &s->ev[s->nev++];
  e->tag = m->tag;
  e->from = m->from;
  e->ref = m->ref;
  e->len = m->len;
  e->reason = 0x7777;
  if (m->len >= sizeof(int32_t)) memcpy(&e->reason, m->data, sizeof(int32_t));
  pthread_mutex_unlock(&s->mu);
  return WEIR_OK;
}

static void l_terminate(weir_ctx *cx, void *state, int reason,
                        const weir_msg *in_hand) {
  lstate *s = state;
  s->term_reason = reason;
  if (in_hand != NULL) {
    s->in_hand_present = 1;
    s->in_hand_tag = in_hand->tag;
    s->in_hand_len = in_hand->len;
    if (in_hand->len >= 4) memcpy(&s->in_hand_word, in_hand->data, 4);
    if (s->requeue_in_terminate) s->rc_requeue = weir_requeue(cx, in_hand);
  }
  atomic_store(&s->terminated, 1);
}

static const weir_server lsrv = {
    .name = "linker",
    .init = l_init,
    .handle_cast = l_cast,
    .handle_call = l_call,
    .handle_info = l_info,
    .terminate = l_terminate,
};

/* ---- helpers ----------------------------------------------------------------
 */

static weir_rt *rt;
static test_watcher *w;

static weir_pid spawn_l(lstate *s, int trap) {
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.trap_exit = trap;
  weir_pid pid;
  CHECK_OK(weir_spawn(rt, &lsrv, s, &so, &pid));
  return pid;
}

/* Sends a command, then pings: the ping's reply means the command (sent
   before it by this thread) has been handled. */
static void cmd(weir_pid pid, uint32_t tag, const void *d, uint32_t len) {
  CHECK_OK(weir_cast(rt, pid, tag, d, len));
}

static int ping(weir_pid pid) {
  char buf[8];
  uint32_t len = sizeof buf;
  int rc = weir_call(rt, pid, CALL_PING, NULL, 0, buf, &len, TEST_LIVENESS_MS);
  if (rc == WEIR_OK) CHECK(len == 4 && memcmp(buf, "pong", 4) == 0);
  return rc;
}

static void cmd_sync(weir_pid pid, uint32_t tag, const void *d, uint32_t len) {
  cmd(pid, tag, d, len);
  CHECK_OK(ping(pid));
}

static void crash(weir_pid pid, int32_t reason) {
  cmd(pid, CMD_CRASH, &reason, sizeof reason);
}

static int wait_down(weir_ref ref) {
  int reason = 0x5555;
  CHECK_MSG(test_wait_down(w, ref, TEST_LIVENESS_MS, &reason),
            "no DOWN for ref %llu", (unsigned long long)ref);
  return reason;
}

static int nev(lstate *s) {
  pthread_mutex_lock(&s->mu);
  int n = s->nev;
  pthread_mutex_unlock(&s->mu);
  return n;
}

/* The only event of s, once it has come. */
static ev one_event(lstate *s) {
  WAIT_UNTIL(nev(s) >= 1, TEST_LIVENESS_MS);
  test_sleep_ms(20);
  pthread_mutex_lock(&s->mu);
  CHECK_EQ_INT(s->nev, 1);
  ev e = s->ev[0];
  s->nev = 0;
  pthread_mutex_unlock(&s->mu);
  return e;
}

/* Alive after any signal in flight would have arrived. */
static void check_alive(weir_pid pid) {
  test_sleep_ms(50);
  CHECK_OK(ping(pid));
}

static void stop(weir_pid pid, lstate *s) {
  cmd(pid, CMD_STOP, NULL, 0);
  WAIT_UNTIL(atomic_load(&s->terminated), TEST_LIVENESS_MS);
}

/* ---- links
 * -------------------------------------------------------------------- */

static void test_link_crash(void) {
  lstate *sa = new_state(), *sb = new_state();
  weir_pid a = spawn_l(sa, 0), b = spawn_l(sb, 0);
  cmd_sync(a, CMD_LINK, &b, sizeof b);
  CHECK_OK(sa->rc_link);
  weir_ref ma = test_watch(w, a), mb = test_watch(w, b);
  crash(b, -5);
  CHECK_EQ_INT(wait_down(mb), -5);
  CHECK_EQ_INT(wait_down(ma), -5);
  WAIT_UNTIL(atomic_load(&sa->terminated) && atomic_load(&sb->terminated),
             TEST_LIVENESS_MS);
  /* The crasher's terminate holds the message it crashed on. */
  CHECK_EQ_INT(sb->term_reason, -5);
  CHECK(sb->in_hand_present);
  CHECK_EQ_U64(sb->in_hand_tag, CMD_CRASH);
  CHECK_EQ_INT(sb->in_hand_len, 4);
  CHECK_EQ_INT(sb->in_hand_word, -5);
  /* The linked one was killed by a signal: no message in hand. */
  CHECK_EQ_INT(sa->term_reason, -5);
  CHECK(!sa->in_hand_present);
  CHECK_RC(ping(a), WEIR_ENOPROC);
  CHECK_RC(ping(b), WEIR_ENOPROC);

  /* Links go both ways: the linker crashing kills the linked. */
  lstate *sc = new_state(), *sd = new_state();
  weir_pid c = spawn_l(sc, 0), d = spawn_l(sd, 0);
  cmd_sync(c, CMD_LINK, &d, sizeof d);
  weir_ref md = test_watch(w, d);
  crash(c, -6);
  CHECK_EQ_INT(wait_down(md), -6);
  CHECK_EQ_INT(sd->term_reason, -6);

  /* A chain: the crash travels along every link. */
  enum { N = 50 };
  weir_pid chain[N];
  lstate *cs[N];
  weir_ref mons[N];
  for (int i = 0; i < N; i++) {
    cs[i] = new_state();
    chain[i] = spawn_l(cs[i], 0);
    if (i > 0) cmd_sync(chain[i], CMD_LINK, &chain[i - 1], sizeof(weir_pid));
    mons[i] = test_watch(w, chain[i]);
  }
  crash(chain[N - 1], -21);
  for (int i = 0; i < N; i++)
    CHECK_EQ_INT(wait_down(mons[i]), -21);
}

static void test_link_normal_exit(void) {
  /* A normal exit does not kill a linked process that does not trap. */
  lstate *sa = new_state(), *sb = new_state();
  weir_pid a = spawn_l(sa, 0), b = spawn_l(sb, 0);
  cmd_sync(a, CMD_LINK, &b, sizeof b);
  weir_ref mb = test_watch(w, b);
  cmd(b, CMD_STOP, NULL, 0);
  CHECK_EQ_INT(wait_down(mb), WEIR_REASON_NORMAL);
  check_alive(a);
  CHECK_EQ_INT(nev(sa), 0);
  /* A trapping one hears about it as EXIT with reason NORMAL. */
  lstate *sc = new_state(), *sd = new_state();
  weir_pid c = spawn_l(sc, 1), d = spawn_l(sd, 0);
  cmd_sync(c, CMD_LINK, &d, sizeof d);
  cmd(d, CMD_STOP, NULL, 0);
  ev e = one_event(sc);
  CHECK_EQ_U64(e.tag, WEIR_TAG_EXIT);
  CHECK_EQ_U64(e.from.id, d.id);
  CHECK_EQ_INT(e.len, 4);
  CHECK_EQ_INT(e.reason, WEIR_REASON_NORMAL);
  check_alive(c);
  stop(a, sa);
  stop(c, sc);
}

static void test_trap_exit(void) {
  for (int via_opts = 0; via_opts < 2; via_opts++) {
    lstate *sa = new_state(), *sb = new_state();
    weir_pid a = spawn_l(sa, via_opts), b = spawn_l(sb, 0);
    if (!via_opts) {
      int32_t on = 1;
      cmd(a, CMD_TRAP, &on, sizeof on);
    }
    cmd_sync(a, CMD_LINK, &b, sizeof b);
    crash(b, -5);
    ev e = one_event(sa);
    CHECK_EQ_U64(e.tag, WEIR_TAG_EXIT);
    CHECK_EQ_U64(e.from.id, b.id);
    CHECK_EQ_INT(e.len, sizeof(int32_t));
    CHECK_EQ_INT(e.reason, -5);
    check_alive(a);
    CHECK(!atomic_load(&sa->terminated));
    /* Trapping turned off again: the next linked crash kills. */
    int32_t off = 0;
    cmd(a, CMD_TRAP, &off, sizeof off);
    lstate *sc = new_state();
    weir_pid c = spawn_l(sc, 0);
    cmd_sync(a, CMD_LINK, &c, sizeof c);
    weir_ref ma = test_watch(w, a);
    crash(c, -8);
    CHECK_EQ_INT(wait_down(ma), -8);
  }
}

static void test_unlink(void) {
  lstate *sa = new_state(), *sb = new_state();
  weir_pid a = spawn_l(sa, 0), b = spawn_l(sb, 0);
  cmd_sync(a, CMD_LINK, &b, sizeof b);
  cmd_sync(a, CMD_UNLINK, &b, sizeof b);
  CHECK_OK(sa->rc_unlink);
  weir_ref mb = test_watch(w, b);
  crash(b, -5);
  CHECK_EQ_INT(wait_down(mb), -5);
  check_alive(a);
  CHECK(!atomic_load(&sa->terminated));
  stop(a, sa);
}

static void test_link_dead(void) {
  lstate *sd = new_state();
  weir_pid dead = spawn_l(sd, 0);
  stop(dead, sd);
  weir_ref md = test_watch(w, dead);
  CHECK_EQ_INT(wait_down(md), WEIR_REASON_NOPROC);

  /* Trapping: an EXIT with reason NOPROC from the dead pid. */
  lstate *sa = new_state();
  weir_pid a = spawn_l(sa, 1);
  cmd(a, CMD_LINK, &dead, sizeof dead);
  ev e = one_event(sa);
  CHECK_EQ_U64(e.tag, WEIR_TAG_EXIT);
  CHECK_EQ_U64(e.from.id, dead.id);
  CHECK_EQ_INT(e.reason, WEIR_REASON_NOPROC);
  CHECK(sa->rc_link == WEIR_OK || sa->rc_link == WEIR_ENOPROC);
  check_alive(a);
  stop(a, sa);

  /* Not trapping: the NOPROC signal ends the caller. */
  lstate *sb = new_state();
  weir_pid b = spawn_l(sb, 0);
  weir_ref mb = test_watch(w, b);
  cmd(b, CMD_LINK, &dead, sizeof dead);
  CHECK_EQ_INT(wait_down(mb), WEIR_REASON_NOPROC);
}

/* ---- monitors
 * ----------------------------------------------------------------- */

static void test_monitor(void) {
  static const int32_t reasons[] = {-7, WEIR_REASON_NORMAL};
  for (int i = 0; i < 2; i++) {
    lstate *sw = new_state(), *sx = new_state();
    weir_pid wp = spawn_l(sw, 0), x = spawn_l(sx, 0);
    cmd_sync(wp, CMD_MONITOR, &x, sizeof x);
    CHECK_EQ_INT(sw->nmon, 1);
    if (reasons[i] < 0)
      crash(x, reasons[i]);
    else
      cmd(x, CMD_STOP, NULL, 0);
    ev e = one_event(sw);
    CHECK_EQ_U64(e.tag, WEIR_TAG_DOWN);
    CHECK_EQ_U64(e.from.id, x.id);
    CHECK_EQ_U64(e.ref, sw->mon_ref[0]);
    CHECK_EQ_INT(e.len, 4);
    CHECK_EQ_INT(e.reason, reasons[i]);
    /* A monitor is one-way: the watcher lives on. */
    check_alive(wp);
    stop(wp, sw);
  }

  /* Monitoring a dead pid: DOWN with NOPROC, at once. */
  lstate *sw = new_state(), *sd = new_state();
  weir_pid wp = spawn_l(sw, 0), dead = spawn_l(sd, 0);
  stop(dead, sd);
  weir_ref md = test_watch(w, dead);
  wait_down(md);
  cmd(wp, CMD_MONITOR, &dead, sizeof dead);
  ev e = one_event(sw);
  CHECK_EQ_U64(e.tag, WEIR_TAG_DOWN);
  CHECK_EQ_U64(e.ref, sw->mon_ref[0]);
  CHECK_EQ_U64(e.from.id, dead.id);
  CHECK_EQ_INT(e.reason, WEIR_REASON_NOPROC);

  /* Two monitors on one process: two DOWNs with distinct refs. */
  lstate *sx = new_state();
  weir_pid x = spawn_l(sx, 0);
  sw->nmon = 0;
  cmd(wp, CMD_MONITOR, &x, sizeof x);
  cmd_sync(wp, CMD_MONITOR, &x, sizeof x);
  CHECK(sw->mon_ref[0] != sw->mon_ref[1]);
  crash(x, -2);
  WAIT_UNTIL(nev(sw) == 2, TEST_LIVENESS_MS);
  pthread_mutex_lock(&sw->mu);
  CHECK(sw->ev[0].ref != sw->ev[1].ref);
  for (int i = 0; i < 2; i++) {
    CHECK_EQ_U64(sw->ev[i].tag, WEIR_TAG_DOWN);
    CHECK(sw->ev[i].ref == sw->mon_ref[0] || sw->ev[i].ref == sw->mon_ref[1]);
  }
  sw->nev = 0;
  pthread_mutex_unlock(&sw->mu);
  stop(wp, sw);
}

static void test_demonitor(void) {
  lstate *sw = new_state(), *sx = new_state();
  weir_pid wp = spawn_l(sw, 0), x = spawn_l(sx, 0);
  cmd(wp, CMD_MONITOR, &x, sizeof x);
  cmd_sync(wp, CMD_MONITOR, &x, sizeof x);
  weir_ref gone = sw->mon_ref[0], kept = sw->mon_ref[1];
  cmd_sync(wp, CMD_DEMONITOR, &gone, sizeof gone);
  CHECK_OK(sw->rc_demon);
  crash(x, -4);
  /* The kept monitor's DOWN comes; the removed one's never does. */
  ev e = one_event(sw);
  CHECK_EQ_U64(e.tag, WEIR_TAG_DOWN);
  CHECK_EQ_U64(e.ref, kept);
  test_sleep_ms(50);
  CHECK_EQ_INT(nev(sw), 0);
  stop(wp, sw);
}

/* ---- exit signals
 * --------------------------------------------------------------- */

static void test_exit_signals(void) {
  /* Not trapping: the signal's reason ends the process. */
  lstate *s1 = new_state();
  weir_pid p1 = spawn_l(s1, 0);
  weir_ref m1 = test_watch(w, p1);
  CHECK_OK(weir_exit(rt, p1, -9));
  CHECK_EQ_INT(wait_down(m1), -9);
  CHECK_EQ_INT(s1->term_reason, -9);
  CHECK_RC(weir_exit(rt, p1, -9), WEIR_ENOPROC);

  /* SHUTDOWN ends a process that does not trap. */
  lstate *s2 = new_state();
  weir_pid p2 = spawn_l(s2, 0);
  weir_ref m2 = test_watch(w, p2);
  CHECK_OK(weir_exit(rt, p2, WEIR_REASON_SHUTDOWN));
  CHECK_EQ_INT(wait_down(m2), WEIR_REASON_SHUTDOWN);

  /* NORMAL from elsewhere is ignored by a process that does not trap. */
  lstate *s3 = new_state();
  weir_pid p3 = spawn_l(s3, 0);
  CHECK_OK(weir_exit(rt, p3, WEIR_REASON_NORMAL));
  check_alive(p3);
  CHECK(!atomic_load(&s3->terminated));
  stop(p3, s3);

  /* Trapping: the signal becomes a message (from a thread: from NONE). */
  lstate *s4 = new_state();
  weir_pid p4 = spawn_l(s4, 1);
  CHECK_OK(weir_exit(rt, p4, -9));
  ev e = one_event(s4);
  CHECK_EQ_U64(e.tag, WEIR_TAG_EXIT);
  CHECK_EQ_INT(e.reason, -9);
  CHECK(weir_pid_is_none(e.from));
  CHECK_OK(weir_exit(rt, p4, WEIR_REASON_NORMAL));
  e = one_event(s4);
  CHECK_EQ_U64(e.tag, WEIR_TAG_EXIT);
  CHECK_EQ_INT(e.reason, WEIR_REASON_NORMAL);
  check_alive(p4);

  /* KILL cannot be trapped; links see KILLED. */
  lstate *s5 = new_state();
  weir_pid p5 = spawn_l(s5, 1);
  cmd_sync(p5, CMD_LINK, &p4, sizeof p4);
  weir_ref m4 = test_watch(w, p4);
  CHECK_OK(weir_exit(rt, p4, WEIR_REASON_KILL));
  /* KILL is prompt, and may end p4 before it has handled the watcher's
     monitor request (or p5's link): a request accepted while p4 lived is
     answered with the real reason all the same, never NOPROC
     (test_monitor_reason.c pins those orders). */
  CHECK_EQ_INT(wait_down(m4), WEIR_REASON_KILLED);
  e = one_event(s5);
  CHECK_EQ_U64(e.tag, WEIR_TAG_EXIT);
  CHECK_EQ_U64(e.from.id, p4.id);
  CHECK_EQ_INT(e.reason, WEIR_REASON_KILLED);
  check_alive(p5);
  /* A second KILL-linked level: KILLED is an ordinary reason and does not
     kill a trapper's links (only p5 heard it). */
  stop(p5, s5);

  /* weir_exit(self) from a callback: ends after the callback returns. */
  lstate *s6 = new_state();
  weir_pid p6 = spawn_l(s6, 0);
  weir_ref m6 = test_watch(w, p6);
  int32_t r = -11;
  cmd(p6, CMD_EXIT_SELF, &r, sizeof r);
  CHECK_EQ_INT(wait_down(m6), -11);
  CHECK_EQ_INT(s6->term_reason, -11);

  /* An exit signal from a process carries its pid. */
  lstate *s7 = new_state(), *s8 = new_state();
  weir_pid p7 = spawn_l(s7, 1), p8 = spawn_l(s8, 0);
  cmd_sync(p7, CMD_LINK, &p8, sizeof p8);
  /* p7's LINK is queued at p8 (maybe not handled yet): the KILL reaches p7
     as KILLED either way. */
  weir_ref m8 = test_watch(w, p8);
  CHECK_OK(weir_exit(rt, p8, WEIR_REASON_KILL));
  wait_down(m8);
  e = one_event(s7);
  CHECK_EQ_U64(e.from.id, p8.id);
  CHECK_EQ_INT(e.reason, WEIR_REASON_KILLED);
  stop(p7, s7);
}

/* ---- spawn with link from a process
 * -------------------------------------------- */

static void test_spawn_link(void) {
  lstate *sp = new_state(), *sc = new_state();
  weir_pid p = spawn_l(sp, 1);
  cmd_sync(p, CMD_SPAWN_LINK, &sc, sizeof sc);
  CHECK_OK(sp->rc_spawn);
  CHECK(!weir_pid_is_none(sp->child));
  CHECK_OK(ping(sp->child));
  crash(sp->child, -12);
  ev e = one_event(sp);
  CHECK_EQ_U64(e.tag, WEIR_TAG_EXIT);
  CHECK_EQ_U64(e.from.id, sp->child.id);
  CHECK_EQ_INT(e.reason, -12);
  check_alive(p);

  /* And the other way: the parent's crash kills the child. */
  lstate *sc2 = new_state();
  cmd_sync(p, CMD_SPAWN_LINK, &sc2, sizeof sc2);
  weir_ref mc = test_watch(w, sp->child);
  crash(p, -13);
  CHECK_EQ_INT(wait_down(mc), -13);
}

/* ---- terminate and requeue
 * ---------------------------------------------------- */

static void test_requeue(void) {
  /* In a handler: the message is handled again, before anything else. */
  lstate *s = new_state();
  weir_pid p = spawn_l(s, 0);
  for (uint32_t i = 0; i < 4; i++)
    cmd(p, CMD_REQ, &i, sizeof i);
  CHECK_OK(ping(p));
  pthread_mutex_lock(&s->mu);
  CHECK_OK(s->rc_requeue);
  CHECK_EQ_INT(s->nreq, 5);
  static const uint32_t want[] = {0, 0, 1, 2, 3};
  for (int i = 0; i < 5; i++)
    CHECK_EQ_INT(s->reqs[i], want[i]);
  pthread_mutex_unlock(&s->mu);
  stop(p, s);

  /* In terminate: allowed on the message in hand (it waits for a next
     incarnation that, without a supervisor, never comes). */
  lstate *t = new_state();
  t->requeue_in_terminate = 1;
  t->rc_requeue = 12345;
  weir_pid q = spawn_l(t, 0);
  weir_ref mq = test_watch(w, q);
  crash(q, -3);
  CHECK_EQ_INT(wait_down(mq), -3);
  CHECK(t->in_hand_present);
  CHECK_EQ_U64(t->in_hand_tag, CMD_CRASH);
  CHECK_OK(t->rc_requeue);
  CHECK_RC(ping(q), WEIR_ENOPROC);

  /* A normal stop has nothing in hand. */
  lstate *u = new_state();
  weir_pid up = spawn_l(u, 0);
  stop(up, u);
  CHECK_EQ_INT(u->term_reason, WEIR_REASON_NORMAL);
  CHECK(!u->in_hand_present);
}

int main(void) {
  test_seed();
  rt = test_rt_start(2);
  w = test_watcher_start(rt);
  test_link_crash();
  test_link_normal_exit();
  test_trap_exit();
  test_unlink();
  test_link_dead();
  test_monitor();
  test_demonitor();
  test_exit_signals();
  test_spawn_link();
  test_requeue();
  test_rt_stop(rt);
  test_watcher_free(w);
  test_log("test_links: ok");
  return 0;
}
