/*
 * test_rt.c: runtime start/stop. Options and their defaults, several
 * runtimes at once, repeated start/stop, and what weir_rt_stop promises:
 * queued messages are drained within the timeout (every one handled, none
 * twice), every process's terminate runs, ETIMEDOUT when the drain could not
 * finish, no spawn while stopping; and a process woken from outside the
 * schedulers runs while every scheduler has work of its own, and a turn of
 * slow callbacks ends on time.
 */
#include "testlib.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

#define TAG_WORK 1
#define TAG_SLOW 2
#define TAG_STOP 3

static atomic_uint_fast64_t handled, terminated, term_shutdown, spawn_rc_bad;
static atomic_int spawn_rc_seen;

static int c_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static void busy_us(unsigned us) {
  uint64_t end = test_now_us() + us;
  while (test_now_us() < end) {
  }
}

static int c_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  uint64_t *seen = state;
  (void)cx;
  if (m->tag == TAG_STOP) return WEIR_STOP;
  if (seen != NULL) { /* per-process order check: payload is a sequence */
    uint64_t seq;
    CHECK_EQ_INT(m->len, sizeof seq);
    memcpy(&seq, m->data, sizeof seq);
    CHECK_EQ_U64(seq, *seen);
    (*seen)++;
  }
  if (m->tag == TAG_SLOW) busy_us(1000);
  atomic_fetch_add(&handled, 1);
  return WEIR_OK;
}

static const weir_server never = {.name = "never"};

static void c_terminate(weir_ctx *cx, void *state, int reason,
                        const weir_msg *in_hand) {
  (void)state;
  (void)in_hand;
  atomic_fetch_add(&terminated, 1);
  if (reason == WEIR_REASON_SHUTDOWN) atomic_fetch_add(&term_shutdown, 1);
  if (reason != WEIR_REASON_SHUTDOWN) return;
  /* Stopping: no new process may start. */
  weir_pid p;
  int rc = weir_spawn(weir_ctx_rt(cx), &never, NULL, NULL, &p);
  if (rc != WEIR_ESTOPPED) atomic_fetch_add(&spawn_rc_bad, 1);
  atomic_store(&spawn_rc_seen, rc);
}

static const weir_server csrv = {
    .name = "counter",
    .init = c_init,
    .handle_cast = c_cast,
    .terminate = c_terminate,
};

static void reset(void) {
  atomic_store(&handled, 0);
  atomic_store(&terminated, 0);
  atomic_store(&term_shutdown, 0);
  atomic_store(&spawn_rc_bad, 0);
}

static void test_opts(void) {
  weir_rt_opts o;
  memset(&o, 0x5a, sizeof o);
  weir_rt_opts_init(&o);
  CHECK_EQ_INT(o.schedulers, 0);
  CHECK_EQ_INT(o.io_threads, 0);
  CHECK_EQ_INT(o.max_processes, 0);
  CHECK(o.node_name == NULL);
  CHECK_EQ_INT(o.batch, 0);
  CHECK_EQ_INT(o.alarm_log, 1);
  CHECK_EQ_U64(o.max_mailbox_bytes, 0);

  weir_spawn_opts so;
  memset(&so, 0x5a, sizeof so);
  weir_spawn_opts_init(&so);
  CHECK(so.name == NULL);
  CHECK_EQ_INT(so.blocking, 0);
  CHECK_EQ_INT(so.max_queue_len, 0);
  CHECK_EQ_U64(so.max_queue_bytes, 0);
  CHECK_EQ_INT(so.link, 0);
  CHECK_EQ_INT(so.trap_exit, 0);

  CHECK_RC(weir_rt_start(&o, NULL), WEIR_EINVAL);

  /* Default schedulers: one per online CPU. */
  weir_rt *rt = test_rt_start(0);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  CHECK_EQ_INT(weir_rt_schedulers(rt), cpus);
  CHECK_STR_EQ(weir_rt_node_name(rt), "weir");
  CHECK(weir_rt_console_path(rt) == NULL);
  weir_stats st;
  CHECK_OK(weir_node_stats(rt, &st));
  CHECK_EQ_INT(st.schedulers, cpus);
  CHECK_EQ_U64(st.max_processes, 1048576u);
  test_rt_stop(rt);

  /* Explicit values; the node name is copied. */
  for (unsigned n = 1; n <= 4; n++) {
    char name[16];
    snprintf(name, sizeof name, "node%u", n);
    weir_rt_opts_init(&o);
    o.schedulers = n;
    o.node_name = name;
    o.max_processes = 1000;
    rt = test_rt_start_opts(&o);
    memset(name, 'x', 5);
    CHECK_EQ_INT(weir_rt_schedulers(rt), n);
    snprintf(name, sizeof name, "node%u", n);
    CHECK_STR_EQ(weir_rt_node_name(rt), name);
    CHECK_OK(weir_node_stats(rt, &st));
    CHECK_EQ_U64(st.max_processes, 1000);
    CHECK_EQ_INT(st.schedulers, n);
    test_rt_stop(rt);
  }
}

/* Casts n messages to each of np processes (in order, per process). */
static void flood(weir_rt *rt, weir_pid *pids, int np, uint64_t n,
                  uint32_t tag) {
  for (uint64_t seq = 0; seq < n; seq++)
    for (int i = 0; i < np; i++)
      CHECK_OK(weir_cast(rt, pids[i], tag, &seq, sizeof seq));
}

static void test_stop_drains(void) {
  for (int blocking = 0; blocking < 2; blocking++) {
    reset();
    weir_rt *rt = test_rt_start(2);
    enum { NP = 8 };
    weir_pid pids[NP];
    uint64_t seen[NP] = {0};
    weir_spawn_opts so;
    weir_spawn_opts_init(&so);
    so.blocking = blocking;
    for (int i = 0; i < NP; i++)
      CHECK_OK(weir_spawn(rt, &csrv, &seen[i], &so, &pids[i]));
    uint64_t n = test_scaled(20000);
    flood(rt, pids, NP, n, TAG_WORK);
    /* Backlogs are (most likely) still queued: stop drains them all. */
    CHECK_OK(weir_rt_stop(rt, -1));
    CHECK_EQ_U64(atomic_load(&handled), NP * n);
    for (int i = 0; i < NP; i++)
      CHECK_EQ_U64(seen[i], n);
    CHECK_EQ_U64(atomic_load(&terminated), NP);
    CHECK_EQ_U64(atomic_load(&term_shutdown), NP);
    CHECK_EQ_U64(atomic_load(&spawn_rc_bad), 0);
    test_log("drain (blocking=%d): %llu messages handled at stop", blocking,
             (unsigned long long)(NP * n));
  }
}

static void test_stop_timeout(void) {
  reset();
  weir_rt *rt = test_rt_start(2);
  weir_pid pid;
  CHECK_OK(weir_spawn(rt, &csrv, NULL, NULL, &pid));
  /* 1 ms per message, 20 s of work: cannot drain in 100 ms. */
  uint64_t n = 20000;
  for (uint64_t i = 0; i < n; i++)
    CHECK_OK(weir_cast(rt, pid, TAG_SLOW, NULL, 0));
  uint64_t t0 = test_now_ms();
  CHECK_RC(weir_rt_stop(rt, 100), WEIR_ETIMEDOUT);
  uint64_t took = test_now_ms() - t0;
  CHECK_MSG(took < 15000, "stop(100 ms) took %llu ms",
            (unsigned long long)took);
  CHECK(atomic_load(&handled) < n);
  test_log("stop timeout: %llu of %llu handled, took %llu ms",
           (unsigned long long)atomic_load(&handled), (unsigned long long)n,
           (unsigned long long)took);
}

static void test_many_idle(void) {
  reset();
  weir_rt *rt = test_rt_start(2);
  uint64_t base = test_nprocs(rt);
  int n = (int)test_scaled(5000);
  for (int i = 0; i < n; i++) {
    weir_pid p;
    CHECK_OK(weir_spawn(rt, &csrv, NULL, NULL, &p));
  }
  CHECK_EQ_U64(test_nprocs(rt), base + (uint64_t)n);
  weir_stats st;
  CHECK_OK(weir_node_stats(rt, &st));
  CHECK(st.spawned >= (uint64_t)n);
  test_rt_stop(rt);
  CHECK_EQ_U64(atomic_load(&terminated), n);
  CHECK_EQ_U64(atomic_load(&term_shutdown), n);
  CHECK_EQ_U64(atomic_load(&spawn_rc_bad), 0);
}

/* Two runtimes side by side, each with its own traffic. */
typedef struct side {
  weir_rt *rt;
  weir_pid pid;
  uint64_t seen;
  uint64_t n;
} side;

static void *side_thread(void *p) {
  side *s = p;
  for (uint64_t seq = 0; seq < s->n; seq++)
    CHECK_OK(weir_cast(s->rt, s->pid, TAG_WORK, &seq, sizeof seq));
  return NULL;
}

static void test_two_runtimes(void) {
  reset();
  side s[2];
  pthread_t th[2];
  for (int i = 0; i < 2; i++) {
    char name[16];
    snprintf(name, sizeof name, "rt%d", i);
    weir_rt_opts o;
    weir_rt_opts_init(&o);
    o.schedulers = 2;
    o.node_name = name;
    s[i].rt = test_rt_start_opts(&o);
    s[i].seen = 0;
    s[i].n = test_scaled(20000);
    CHECK_OK(weir_spawn(s[i].rt, &csrv, &s[i].seen, NULL, &s[i].pid));
  }
  CHECK_STR_EQ(weir_rt_node_name(s[0].rt), "rt0");
  CHECK_STR_EQ(weir_rt_node_name(s[1].rt), "rt1");
  for (int i = 0; i < 2; i++)
    CHECK(pthread_create(&th[i], NULL, side_thread, &s[i]) == 0);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  /* Stop the first while the second still runs. */
  CHECK_OK(weir_rt_stop(s[0].rt, -1));
  CHECK_EQ_U64(s[0].seen, s[0].n);
  uint64_t q = s[1].n;
  CHECK_OK(weir_cast(s[1].rt, s[1].pid, TAG_WORK, &q, sizeof q));
  CHECK_OK(weir_rt_stop(s[1].rt, -1));
  CHECK_EQ_U64(s[1].seen, s[1].n + 1);
  CHECK_EQ_U64(atomic_load(&handled), s[0].n + s[1].n + 1);
}

static void test_restart_loop(void) {
  int rounds = (int)test_scaled(40);
  if (rounds < 5) rounds = 5;
  for (int r = 0; r < rounds; r++) {
    reset();
    weir_rt *rt = test_rt_start((unsigned)(1 + r % 3));
    weir_pid pids[4];
    uint64_t seen[4] = {0};
    for (int i = 0; i < 4; i++)
      CHECK_OK(weir_spawn(rt, &csrv, &seen[i], NULL, &pids[i]));
    flood(rt, pids, 4, 100, TAG_WORK);
    CHECK_OK(weir_cast(rt, pids[0], TAG_STOP, NULL, 0));
    CHECK_OK(weir_rt_stop(rt, -1));
    CHECK_EQ_U64(atomic_load(&handled), 400);
    CHECK_EQ_U64(atomic_load(&terminated), 4);
    /* pids[0] stopped itself (NORMAL); the others were shut down. */
    CHECK_EQ_U64(atomic_load(&term_shutdown), 3);
  }
}

/* A process woken from a thread that is not a scheduler goes to the shared
   queue; it must run even while every scheduler's own ring never empties
   (processes that send themselves a message after each short callback).
   Before the schedulers looked at the shared queue on their own, it only
   ran once some ring emptied: never, here. */
static atomic_int busy_stop;
static atomic_uint_fast64_t sink_got; /* the sinks' casts */

/* A process that counts its casts in the counter it was spawned with. */
static int count_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  (void)m;
  atomic_fetch_add((atomic_uint_fast64_t *)state, 1);
  return WEIR_OK;
}

static const weir_server count_srv = {
    .name = "counter", .init = c_init, .handle_cast = count_cast};

static int busy_info(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)state;
  (void)m;
  uint64_t t = test_now_ms();
  while (test_now_ms() == t) /* about half a millisecond of work */
    ;
  if (!atomic_load(&busy_stop))
    CHECK_OK(weir_send(weir_ctx_rt(cx), weir_self(cx), TAG_WORK, NULL, 0));
  return WEIR_OK;
}

static const weir_server busy_srv = {
    .name = "busy", .init = c_init, .handle_info = busy_info};

static void test_outside_wake_not_starved(void) {
  const unsigned nsched = 2, nbusy = 4;
  weir_rt *rt = test_rt_start(nsched);
  atomic_store(&busy_stop, 0);
  atomic_uint_fast64_t outsider_ran = 0;
  weir_pid busy[4], out;
  CHECK_OK(weir_spawn(rt, &count_srv, &outsider_ran, NULL, &out));
  for (unsigned i = 0; i < nbusy; i++) {
    CHECK_OK(weir_spawn(rt, &busy_srv, NULL, NULL, &busy[i]));
    CHECK_OK(weir_send(rt, busy[i], TAG_WORK, NULL, 0));
  }
  test_sleep_ms(50); /* every ring now holds busy processes */
  uint64_t t0 = test_now_ms();
  CHECK_OK(weir_cast(rt, out, TAG_WORK, NULL, 0));
  while (!atomic_load(&outsider_ran) && test_now_ms() - t0 < 5000)
    test_sleep_ms(1);
  uint64_t waited = test_now_ms() - t0;
  atomic_store(&busy_stop, 1);
  CHECK_MSG(atomic_load(&outsider_ran),
            "a process cast to from outside did not run in 5 s while %u "
            "busy processes kept %u schedulers' rings full",
            nbusy, nsched);
  test_rt_stop(rt);
  test_log("[outside_wake_not_starved] ran after %llu ms",
           (unsigned long long)waited);
}

/* A turn ends on time as well as on reductions. On one scheduler, a bulk
   sender (1024 casts a callback, so its turn is 1024 reductions) and a
   process whose callbacks take a millisecond each take turns; the slow
   one's turn, as long in reductions as the bulk sender's, would be 512
   callbacks, half a second, without the clock. The gap between the bulk
   sender's callbacks stays far under that. */
static atomic_uint_fast64_t bulk_last_ms, bulk_max_gap_ms, bulk_rounds;

static int bulk_info(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)m;
  weir_pid *sink = state;
  weir_rt *rt = weir_ctx_rt(cx);
  uint64_t now = test_now_ms(), last = atomic_load(&bulk_last_ms);
  if (last && now - last > atomic_load(&bulk_max_gap_ms))
    atomic_store(&bulk_max_gap_ms, now - last);
  atomic_store(&bulk_last_ms, now);
  for (int i = 0; i < 1024; i++)
    CHECK_OK(weir_cast(rt, *sink, TAG_WORK, NULL, 0));
  if (atomic_fetch_add(&bulk_rounds, 1) < 1000000 && !atomic_load(&busy_stop))
    CHECK_OK(weir_send(rt, weir_self(cx), TAG_WORK, NULL, 0));
  return WEIR_OK;
}

static const weir_server bulk_srv = {
    .name = "bulk", .init = c_init, .handle_info = bulk_info};

static void test_slow_turns_end_on_time(void) {
  weir_rt *rt = test_rt_start(1);
  atomic_store(&busy_stop, 0);
  atomic_store(&bulk_last_ms, 0);
  atomic_store(&bulk_max_gap_ms, 0);
  weir_pid sink, bulk, slow;
  CHECK_OK(weir_spawn(rt, &count_srv, &sink_got, NULL, &sink));
  CHECK_OK(weir_spawn(rt, &bulk_srv, &sink, NULL, &bulk));
  CHECK_OK(weir_spawn(rt, &busy_srv, NULL, NULL, &slow));
  CHECK_OK(weir_send(rt, slow, TAG_WORK, NULL, 0));
  CHECK_OK(weir_send(rt, bulk, TAG_WORK, NULL, 0));
  test_sleep_ms(1500);
  atomic_store(&busy_stop, 1);
  test_rt_stop(rt);
  uint64_t gap = atomic_load(&bulk_max_gap_ms);
  CHECK_MSG(gap < 400,
            "the bulk sender waited %llu ms for its core: a turn of slow "
            "callbacks did not end on time",
            (unsigned long long)gap);
  test_log("[slow_turns_end_on_time] the bulk sender's longest wait: %llu ms "
           "(%llu callbacks)",
           (unsigned long long)gap,
           (unsigned long long)atomic_load(&bulk_rounds));
}

/* Bulk senders on two schedulers are handed between them (sched.c's
   hand_off, which keeps two of them off one core) while the node stops:
   none may be left in a hand-off slot, where it would never run and its
   queued message never drain (weir_rt_stop(-1) would not return). Half the
   reps first wait for every round to be handled (a process handed to a
   parked scheduler that is never woken would stall them); the others stop
   at once, where a sink may end before its senders: their casts are then
   refused (ENOPROC) or, flushed from a sender's outbox after the sink
   ended, dead letters, so the sinks handle at most what was accepted. */
typedef struct rounds_sender {
  weir_pid sink;
  uint64_t left, accepted;
} rounds_sender;

static int rounds_info(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)m;
  rounds_sender *r = state;
  weir_rt *rt = weir_ctx_rt(cx);
  for (int i = 0; i < 1024; i++) {
    int rc = weir_cast(rt, r->sink, TAG_WORK, NULL, 0);
    CHECK_MSG(rc == WEIR_OK || rc == WEIR_ENOPROC, "cast: %s",
              weir_err_name(rc));
    r->accepted += rc == WEIR_OK;
  }
  if (--r->left) (void)weir_send(rt, weir_self(cx), TAG_WORK, NULL, 0);
  return WEIR_OK;
}

static const weir_server rounds_srv = {
    .name = "rounds", .init = c_init, .handle_info = rounds_info};

static void test_stop_with_bulk_senders(void) {
  int reps = (int)test_scaled(20);
  if (reps < 3) reps = 3;
  uint64_t total = 0;
  for (int rep = 0; rep < reps; rep++) {
    enum { NS = 4 };
    const uint64_t rounds = 40;
    weir_rt *rt = test_rt_start(2);
    atomic_store(&sink_got, 0);
    weir_pid sinks[2], pids[NS];
    rounds_sender rs[NS];
    for (int i = 0; i < 2; i++)
      CHECK_OK(weir_spawn(rt, &count_srv, &sink_got, NULL, &sinks[i]));
    for (int i = 0; i < NS; i++) {
      rs[i] = (rounds_sender){.sink = sinks[i % 2], .left = rounds};
      CHECK_OK(weir_spawn(rt, &rounds_srv, &rs[i], NULL, &pids[i]));
    }
    for (int i = 0; i < NS; i++)
      CHECK_OK(weir_send(rt, pids[i], TAG_WORK, NULL, 0));
    bool to_the_end = rep % 2 == 0;
    if (to_the_end)
      WAIT_UNTIL(atomic_load(&sink_got) == NS * rounds * 1024,
                 TEST_LIVENESS_MS);
    else
      test_sleep_ms((unsigned)(rep % 4)); /* stop at different points */
    CHECK_OK(weir_rt_stop(rt, -1));
    uint64_t accepted = 0;
    for (int i = 0; i < NS; i++)
      accepted += rs[i].accepted;
    if (to_the_end) CHECK_EQ_U64(accepted, NS * rounds * 1024);
    CHECK(atomic_load(&sink_got) <= accepted);
    CHECK(accepted > 0);
    total += accepted;
  }
  test_log("[stop_with_bulk_senders] %d stops, %llu casts accepted", reps,
           (unsigned long long)total);
}

int main(void) {
  test_seed();
  test_opts();
  test_stop_drains();
  test_stop_timeout();
  test_many_idle();
  test_two_runtimes();
  test_restart_loop();
  test_outside_wake_not_starved();
  test_slow_turns_end_on_time();
  test_stop_with_bulk_senders();
  test_log("test_rt: ok");
  return 0;
}
