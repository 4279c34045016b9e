/*
 * test_outbox.c: what weir.h promises of a callback's sends, now that a
 * scheduler thread batches them (the outbox, proc.c).
 *
 *   - flushed on return: a callback casts k messages to one receiver and
 *     returns, for k around the first-message and chain-size edges (1, 2,
 *     63, 64, 65, 129, 1000); all k arrive, in order, with nothing else
 *     sent afterwards to push them out;
 *   - many receivers: one callback casts round-robin to 7 receivers (more
 *     than the outbox's 4 chains); each gets its sequence whole and in order;
 *   - mixed paths keep per-sender order: in one callback, casts and sends
 *     (batched), a call (goes at once), casts to a bounded receiver (go at
 *     once), a monitor (a signal), more casts; the receiver sees its casts in
 *     order and the call after the casts sent before it and before those
 *     sent after it; the bounded receiver's casts are in order too;
 *   - a receiver killed while casts to it wait: every cast that returned
 *     OK is handled or counted as a dead letter;
 *   - exact queue length: a callback casts N to a receiver that is blocked
 *     (a blocking process waiting on a flag); once the sender's callback has
 *     returned, weir_process_info shows exactly N queued;
 *   - a bounded receiver's casts (REJECT, then DROP_NEWEST, bound 100, the
 *     receiver blocked): one callback casts 250; the first 100 are admitted
 *     and the rest refused (EFULL) or shed (OK, counted as dropped) as each
 *     is sent; the queue length counts the admitted ones while they still
 *     wait in the outbox (and places reserved for the next ones, never past
 *     the bound), and is exactly 100 once the callback has returned;
 *     exactly the first 100 arrive, in order;
 *   - places reserved and not spent are given back: k casts (1 to 200) to a
 *     blocked receiver bounded at 1000 leave exactly k queued once the
 *     callback has returned.
 * The whole runs on 2 schedulers and again on 1.
 */
#include "testlib.h"

#include <stdatomic.h>

enum { T_SEQ = 1, T_INFO = 2, T_CALL = 3, T_GO = 4, T_BLOCK = 5 };
enum { LOG_MAX = 4096 };

/* ---- the receiver: logs (tag, seq) and answers calls --------------------- */

typedef struct entry {
  uint32_t tag;
  uint64_t seq;
} entry;

typedef struct logr {
  entry log[LOG_MAX];
  atomic_uint n;
  atomic_int gate; /* T_BLOCK: wait until set */
} logr;

static void log_add(logr *l, uint32_t tag, const weir_msg *m) {
  uint64_t seq = 0;
  if (m->len >= sizeof seq) memcpy(&seq, m->data, sizeof seq);
  unsigned i = atomic_load(&l->n);
  CHECK(i < LOG_MAX);
  l->log[i] = (entry){tag, seq};
  atomic_store(&l->n, i + 1);
}

static int l_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int l_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  logr *l = state;
  if (m->tag == T_BLOCK) {
    while (!atomic_load(&l->gate))
      test_sleep_ms(1);
    return WEIR_OK;
  }
  log_add(l, m->tag, m);
  return WEIR_OK;
}

static int l_info(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  if (m->tag < WEIR_TAG_SYSTEM) log_add(state, m->tag, m);
  return WEIR_OK;
}

static int l_call(weir_ctx *cx, void *state, const weir_msg *m,
                  weir_from from) {
  log_add(state, T_CALL, m);
  /* the caller may have ended already (run_script ends it) */
  int rc = weir_reply(cx, from, NULL, 0);
  CHECK(rc == WEIR_OK || rc == WEIR_ENOPROC);
  return WEIR_OK;
}

static const weir_server lsrv = {.name = "outbox_receiver",
                                 .init = l_init,
                                 .handle_cast = l_cast,
                                 .handle_call = l_call,
                                 .handle_info = l_info};

/* ---- the sender: on T_GO runs its script in one callback ----------------- */

typedef struct sender sender;
struct sender {
  void (*script)(weir_ctx *cx, sender *s);
  weir_pid to[8];
  unsigned nto;
  uint64_t k;
  uint64_t ok; /* casts that returned WEIR_OK */
  atomic_int done;
};

static int s_info(weir_ctx *cx, void *state, const weir_msg *m) {
  sender *s = state;
  if (m->tag == T_GO) {
    s->script(cx, s);
    atomic_store(&s->done, 1);
  }
  return WEIR_OK;
}

static const weir_server ssrv = {
    .name = "outbox_sender", .init = l_init, .handle_info = s_info};

static void cast_seq(weir_ctx *cx, weir_pid to, uint32_t tag, uint64_t seq) {
  CHECK_OK(weir_cast(weir_ctx_rt(cx), to, tag, &seq, sizeof seq));
}

static test_watcher *g_w;

/* Runs s's script in one callback of a new process, and returns once that
   process has ended: its callback has returned, so its outbox is flushed */
static void run_script(weir_rt *rt, sender *s) {
  weir_pid pid;
  atomic_store(&s->done, 0);
  CHECK_OK(weir_spawn(rt, &ssrv, s, NULL, &pid));
  weir_ref ref = test_watch(g_w, pid);
  CHECK_OK(weir_send(rt, pid, T_GO, NULL, 0));
  WAIT_UNTIL(atomic_load(&s->done), TEST_LIVENESS_MS);
  CHECK_OK(weir_exit(rt, pid, WEIR_REASON_SHUTDOWN));
  CHECK(test_wait_down(g_w, ref, TEST_LIVENESS_MS, NULL));
}

static void check_seq(logr *l, uint32_t tag, uint64_t from, uint64_t to,
                      const char *what) {
  uint64_t want = from;
  unsigned n = atomic_load(&l->n);
  for (unsigned i = 0; i < n; i++) {
    if (l->log[i].tag != tag) continue;
    CHECK_MSG(l->log[i].seq == want, "%s: seq %llu at %u, expected %llu", what,
              (unsigned long long)l->log[i].seq, i, (unsigned long long)want);
    want++;
  }
  CHECK_MSG(want == to, "%s: %llu arrived, %llu sent", what,
            (unsigned long long)(want - from), (unsigned long long)(to - from));
}

/* ---- flushed on return ----------------------------------------------------
 */

static void script_k(weir_ctx *cx, sender *s) {
  for (uint64_t i = 0; i < s->k; i++)
    cast_seq(cx, s->to[0], T_SEQ, i);
}

static void test_flush_on_return(weir_rt *rt) {
  static const uint64_t ks[] = {1, 2, 63, 64, 65, 129, 1000};
  for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
    static logr l;
    memset(&l, 0, sizeof l);
    sender s = {.script = script_k, .nto = 1, .k = ks[j]};
    CHECK_OK(weir_spawn(rt, &lsrv, &l, NULL, &s.to[0]));
    /* nothing but the callback's return may push them out: the sender
       stays alive and idle, and nothing else runs on the node */
    weir_pid pid;
    CHECK_OK(weir_spawn(rt, &ssrv, &s, NULL, &pid));
    CHECK_OK(weir_send(rt, pid, T_GO, NULL, 0));
    WAIT_UNTIL(atomic_load(&l.n) == ks[j], TEST_LIVENESS_MS);
    CHECK_OK(weir_exit(rt, pid, WEIR_REASON_SHUTDOWN));
    check_seq(&l, T_SEQ, 0, ks[j], "flush on return");
    CHECK_OK(weir_exit(rt, s.to[0], WEIR_REASON_SHUTDOWN));
  }
}

/* ---- many receivers -------------------------------------------------------
 */

static void script_rr(weir_ctx *cx, sender *s) {
  for (uint64_t i = 0; i < s->k; i++)
    for (unsigned r = 0; r < s->nto; r++)
      cast_seq(cx, s->to[r], T_SEQ, i);
}

static void test_many_receivers(weir_rt *rt) {
  static logr l[7];
  memset(l, 0, sizeof l);
  sender s = {.script = script_rr, .nto = 7, .k = 300};
  for (unsigned r = 0; r < s.nto; r++)
    CHECK_OK(weir_spawn(rt, &lsrv, &l[r], NULL, &s.to[r]));
  run_script(rt, &s);
  for (unsigned r = 0; r < s.nto; r++) {
    WAIT_UNTIL(atomic_load(&l[r].n) == s.k, TEST_LIVENESS_MS);
    check_seq(&l[r], T_SEQ, 0, s.k, "round robin");
    CHECK_OK(weir_exit(rt, s.to[r], WEIR_REASON_SHUTDOWN));
  }
}

/* ---- mixed paths ----------------------------------------------------------
 */

static void script_mixed(weir_ctx *cx, sender *s) {
  weir_rt *rt = weir_ctx_rt(cx);
  weir_pid r = s->to[0], b = s->to[1];
  uint64_t seq = 0, bseq = 0, info = 0;
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < 30; i++)
      cast_seq(cx, r, T_SEQ, seq++);
    CHECK_OK(weir_send(rt, r, T_INFO, &info, sizeof info));
    info++;
    for (int i = 0; i < 5; i++)
      cast_seq(cx, b, T_SEQ, bseq++);
    /* the call's payload: how many casts went before it */
    CHECK_OK(weir_call_async(cx, r, T_CALL, &seq, sizeof seq, -1, NULL));
    for (int i = 0; i < 3; i++)
      cast_seq(cx, r, T_SEQ, seq++);
    CHECK_OK(weir_monitor(cx, r, NULL));
  }
  s->k = seq;
}

static void test_mixed_paths(weir_rt *rt) {
  static logr l, lb;
  memset(&l, 0, sizeof l);
  memset(&lb, 0, sizeof lb);
  sender s = {.script = script_mixed, .nto = 2};
  CHECK_OK(weir_spawn(rt, &lsrv, &l, NULL, &s.to[0]));
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.max_queue_len = 1000; /* bounded: admitted one by one, then batched */
  CHECK_OK(weir_spawn(rt, &lsrv, &lb, &so, &s.to[1]));
  run_script(rt, &s);
  unsigned want = (unsigned)s.k + 20 /* infos */ + 20 /* calls */;
  uint64_t dl = test_now_ms() + TEST_LIVENESS_MS;
  while ((atomic_load(&l.n) < want || atomic_load(&lb.n) < 100) &&
         test_now_ms() < dl)
    test_sleep_ms(1);
  CHECK_MSG(atomic_load(&l.n) == want && atomic_load(&lb.n) == 100,
            "mixed: %u of %u messages arrived, %u of 100 at the bounded one",
            atomic_load(&l.n), want, atomic_load(&lb.n));
  check_seq(&l, T_SEQ, 0, s.k, "mixed: casts");
  check_seq(&l, T_INFO, 0, 20, "mixed: sends");
  check_seq(&lb, T_SEQ, 0, 100, "mixed: bounded receiver");
  /* each call comes after the casts sent before it, before the next ones */
  uint64_t casts_seen = 0;
  for (unsigned i = 0; i < want; i++) {
    if (l.log[i].tag == T_SEQ) casts_seen++;
    if (l.log[i].tag == T_CALL)
      CHECK_MSG(l.log[i].seq == casts_seen,
                "a call sent after %llu casts arrived after %llu",
                (unsigned long long)l.log[i].seq,
                (unsigned long long)casts_seen);
  }
  CHECK_OK(weir_exit(rt, s.to[0], WEIR_REASON_SHUTDOWN));
  CHECK_OK(weir_exit(rt, s.to[1], WEIR_REASON_SHUTDOWN));
}

/* ---- a receiver killed while casts to it wait -----------------------------
 */

static void script_kill(weir_ctx *cx, sender *s) {
  for (uint64_t i = 0; i < s->k; i++) {
    if (i == 10) /* an exit signal goes at once, after the casts before it;
                    the casts after it wait in the outbox */
      CHECK_OK(weir_exit(weir_ctx_rt(cx), s->to[0], WEIR_REASON_KILL));
    int rc = weir_cast(weir_ctx_rt(cx), s->to[0], T_SEQ, &i, sizeof i);
    CHECK(rc == WEIR_OK || rc == WEIR_ENOPROC);
    if (rc == WEIR_OK) s->ok++;
  }
}

static void test_killed_receiver(weir_rt *rt, test_watcher *w) {
  static logr l;
  memset(&l, 0, sizeof l);
  weir_stats st0, st1;
  CHECK_OK(weir_node_stats(rt, &st0));
  sender s = {.script = script_kill, .nto = 1, .k = 200};
  CHECK_OK(weir_spawn(rt, &lsrv, &l, NULL, &s.to[0]));
  weir_ref ref = test_watch(w, s.to[0]);
  run_script(rt, &s);
  int reason = 0;
  CHECK(test_wait_down(w, ref, TEST_LIVENESS_MS, &reason));
  CHECK_EQ_INT(reason, WEIR_REASON_KILLED);
  /* every cast that returned OK is handled or counted as a dead letter */
  uint64_t handled = atomic_load(&l.n);
  CHECK(handled <= 10);
  CHECK(s.ok >= 10);
  check_seq(&l, T_SEQ, 0, handled, "killed receiver");
  uint64_t want = st0.dead_letters + (s.ok - handled);
  WAIT_UNTIL((weir_node_stats(rt, &st1), st1.dead_letters >= want),
             TEST_LIVENESS_MS);
}

static uint64_t queue_len(weir_rt *rt, weir_pid pid) {
  weir_proc_info pi;
  CHECK_OK(weir_process_info(rt, pid, &pi));
  return pi.message_queue_len;
}

/* ---- exact queue length ----------------------------------------------------
 */

/* A receiver held in a callback (a blocking process waiting on l->gate,
   so not on a scheduler), its mailbox empty; max_len 0: unbounded. */
static weir_pid spawn_gated(weir_rt *rt, logr *l, uint32_t max_len,
                            int overflow) {
  memset(l, 0, sizeof *l);
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.blocking = 1;
  so.max_queue_len = max_len;
  so.overflow = overflow;
  weir_pid r;
  CHECK_OK(weir_spawn(rt, &lsrv, l, &so, &r));
  CHECK_OK(weir_cast(rt, r, T_BLOCK, NULL, 0));
  WAIT_UNTIL(queue_len(rt, r) == 0, TEST_LIVENESS_MS);
  return r;
}

/* Opens the gate: casts 0..n-1 must arrive, in order; then r ends. */
static void open_and_check(weir_rt *rt, weir_pid r, logr *l, uint64_t n,
                           const char *what) {
  atomic_store(&l->gate, 1);
  WAIT_UNTIL(atomic_load(&l->n) == n, TEST_LIVENESS_MS);
  check_seq(l, T_SEQ, 0, n, what);
  CHECK_EQ_U64(queue_len(rt, r), 0);
  CHECK_OK(weir_exit(rt, r, WEIR_REASON_SHUTDOWN));
}

static void test_exact_len(weir_rt *rt) {
  static logr l;
  weir_pid r = spawn_gated(rt, &l, 0, WEIR_OVERFLOW_REJECT);
  sender s = {.script = script_k, .nto = 1, .k = 777};
  s.to[0] = r;
  run_script(rt, &s);
  CHECK_EQ_U64(queue_len(rt, r), 777);
  open_and_check(rt, r, &l, 777, "exact length");
}

/* ---- a bounded receiver ---------------------------------------------------
 */

enum { BOUND = 100, BOUND_SENT = 250 };

static uint64_t dropped(weir_rt *rt, weir_pid pid) {
  weir_proc_info pi;
  CHECK_OK(weir_process_info(rt, pid, &pi));
  return pi.dropped;
}

static void script_bounded(weir_ctx *cx, sender *s) {
  weir_rt *rt = weir_ctx_rt(cx);
  int want_full = s->k != 0; /* k: 1 = REJECT, 0 = DROP_NEWEST */
  for (uint64_t i = 0; i < BOUND_SENT; i++) {
    int rc = weir_cast(rt, s->to[0], T_SEQ, &i, sizeof i);
    if (i < BOUND || !want_full)
      CHECK_EQ_INT(rc, WEIR_OK);
    else
      CHECK_EQ_INT(rc, WEIR_EFULL);
    if (rc == WEIR_OK) s->ok++;
    /* admitted ones count from their admission, waiting or not, and so do
       the places reserved for the next ones (never past the bound) */
    uint64_t len = queue_len(rt, s->to[0]);
    uint64_t admitted = i < BOUND ? i + 1 : BOUND;
    CHECK_MSG(len >= admitted && len <= BOUND,
              "cast %llu: queue length %llu, %llu admitted, bound %u",
              (unsigned long long)i, (unsigned long long)len,
              (unsigned long long)admitted, (unsigned)BOUND);
  }
  CHECK_EQ_U64(dropped(rt, s->to[0]), BOUND_SENT - BOUND);
}

static void test_bounded(weir_rt *rt, int overflow) {
  static logr l;
  weir_pid r = spawn_gated(rt, &l, BOUND, overflow);
  sender s = {.script = script_bounded,
              .nto = 1,
              .k = overflow == WEIR_OVERFLOW_REJECT};
  s.to[0] = r;
  run_script(rt, &s);
  CHECK_EQ_U64(s.ok, overflow == WEIR_OVERFLOW_REJECT ? BOUND : BOUND_SENT);
  CHECK_EQ_U64(queue_len(rt, r), BOUND);
  open_and_check(rt, r, &l, BOUND, "bounded receiver");
}

/* Places reserved and not spent are given back when the callback returns:
   a few casts to a roomy bounded mailbox leave exactly that many queued. */
static void test_credit_returned(weir_rt *rt) {
  static const uint64_t ks[] = {1, 2, 10, 64, 70, 200};
  for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
    static logr l;
    weir_pid r = spawn_gated(rt, &l, 1000, WEIR_OVERFLOW_REJECT);
    sender s = {.script = script_k, .nto = 1, .k = ks[j]};
    s.to[0] = r;
    run_script(rt, &s);
    CHECK_EQ_U64(queue_len(rt, r), ks[j]);
    open_and_check(rt, r, &l, ks[j], "credit returned");
  }
}

static void run_all(unsigned schedulers) {
  test_log("[outbox] %u scheduler(s)", schedulers);
  weir_rt *rt = test_rt_start(schedulers);
  test_watcher *w = test_watcher_start(rt);
  g_w = w;
  test_flush_on_return(rt);
  test_many_receivers(rt);
  test_mixed_paths(rt);
  test_killed_receiver(rt, w);
  test_exact_len(rt);
  test_bounded(rt, WEIR_OVERFLOW_REJECT);
  test_bounded(rt, WEIR_OVERFLOW_DROP_NEWEST);
  test_credit_returned(rt);
  test_watcher_free(w);
  test_rt_stop(rt);
}

int main(void) {
  run_all(2);
  run_all(1);
  return 0;
}
