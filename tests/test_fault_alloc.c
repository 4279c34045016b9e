/*
 * test_fault_alloc.c: "the Nth allocation fails", for every N, on the paths
 * a program actually walks (SQLite's malloc tests, applied to a runtime).
 *
 * Each scenario is a short, complete life of a node: start, a handful of API
 * calls that exercise one area (spawn, messages, timers, registry, links,
 * supervisors, partitions, bounded mailboxes, alarms), stop. It runs once
 * without a fault to count the allocations it makes (weir__alloc_count from
 * the moment the fault would be armed to the end of weir_rt_stop), then once
 * per N with weir__alloc_fail_nth(N) armed: the Nth allocation from then on
 * fails, whichever thread makes it, the test thread in an API call or a
 * scheduler, timer, sampler or I/O thread inside the runtime. Every N from 1
 * to 50 runs; above that, at most FAULT_MAX_RUNS runs (default 300, 100 under
 * TSan) are spread over the rest, one random N per stratum (seeded: WEIR_SEED
 * replays the same set).
 *
 * Each run checks what the API promises under memory pressure:
 *   - every call returns WEIR_OK or one of the codes listed at the call
 *     (FA_RC); WEIR_ENOMEM only once the injected fault has fired;
 *   - what a call accepted happens: a cast that returned OK is handled, a
 *     link that returned OK delivers the partner's exit, a timer that was
 *     set fires, a crashed child is restarted, a stopped process leaves the
 *     process count (liveness waits, FAULT_WAIT_MS, default 3000);
 *   - weir_rt_stop returns WEIR_OK (WEIR_ETIMEDOUT only if the fault hit the
 *     stop itself);
 *   - nothing leaks: the test installs a counting weir_allocator, and every
 *     block allocated through weir's door must be freed when weir_rt_stop
 *     returns; under ASan, LSan checks the whole heap at the end of each
 *     run and names the stack.
 *
 * Each run is a child process (fork; the driver itself never starts a
 * node, so it stays single-threaded). A broken promise is reported by the
 * child and the next N runs; a crash, a sanitizer report, a leak or a hang
 * (no end within FAULT_RUN_S, default 30 s: the driver kills it) is charged
 * to its (scenario, N) too. So one pass lists every failing (scenario, N),
 * with the replay line: FAULT_SCENARIO=name FAULT_N=n ./test_fault_alloc
 * runs that one run in process (under gdb, say). FAULT_MAX_RUNS caps the
 * runs per scenario (0 = every N), FAULT_FORK=0 runs everything in process.
 *
 * The runtime is not fixed here: a failure is a bug in src/ (or a promise
 * that weir.h should stop making), to be reported with its (scenario, N).
 */
#include "internal.h"
#include "testlib.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FA_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define FA_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FA_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define FA_TSAN 1
#endif
#if defined(FA_ASAN) || defined(FA_TSAN)
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(FA_ASAN)
#include <sanitizer/lsan_interface.h>
#endif

/* ---- the counting allocator ------------------------------------------- */

/* Live blocks handed out through weir's door. Relaxed: read only after
   weir_rt_stop has joined every thread that allocates. */
static atomic_long g_live;

static void *ca_malloc(size_t n, void *ud) {
  (void)ud;
  void *p = malloc(n);
  if (p) atomic_fetch_add_explicit(&g_live, 1, memory_order_relaxed);
  return p;
}

static void *ca_realloc(void *p, size_t n, void *ud) {
  (void)ud;
  void *q = realloc(p, n);
  if (q && !p) atomic_fetch_add_explicit(&g_live, 1, memory_order_relaxed);
  return q;
}

static void ca_free(void *p, void *ud) {
  (void)ud;
  if (p) atomic_fetch_sub_explicit(&g_live, 1, memory_order_relaxed);
  free(p);
}

/* ---- runs, failures, replay ------------------------------------------- */

typedef struct fa_run {
  const char *scen;
  uint64_t n;        /* the armed N; 0 = no fault */
  uint64_t armed_at; /* weir__alloc_count() when armed */
  uint64_t stop_at;  /* ... when weir_rt_stop began */
  uint64_t end_at;   /* ... when it returned */
  int failed;        /* a promise was broken in this run */
  weir_rt *rt;
} fa_run;

static int g_failures;                 /* failed checks over the whole test */
static char g_replay[256];             /* the replay line of the current run */
static _Atomic uint64_t g_deadline_ms; /* in-process watchdog; 0 = idle */
static uint32_t g_limit_s = 30;        /* a run's deadline (FAULT_RUN_S) */
static uint32_t g_wait_ms = 3000;      /* liveness wait for one event */

enum { SUMMARY_MAX = 64 };
static char g_summary[SUMMARY_MAX][200];
static int g_nsummary;

static void fa_fail(fa_run *r, const char *file, int line, const char *fmt, ...)
    TEST_PRINTF(4, 5);
static void fa_fail(fa_run *r, const char *file, int line, const char *fmt,
                    ...) {
  char msg[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr,
          "%s:%d: FAIL scenario=%s N=%llu: %s\n  replay: FAULT_SCENARIO=%s "
          "FAULT_N=%llu ./test_fault_alloc\n",
          file, line, r->scen, (unsigned long long)r->n, msg, r->scen,
          (unsigned long long)r->n);
  fflush(stderr);
  if (g_nsummary < SUMMARY_MAX)
    snprintf(g_summary[g_nsummary++], sizeof g_summary[0],
             "scenario=%s N=%llu line %d: %s", r->scen,
             (unsigned long long)r->n, line, msg);
  g_failures++;
  r->failed = 1;
}

#define FA_EXPECT(r, cond, ...)                                                \
  do {                                                                         \
    if (!(cond)) fa_fail((r), __FILE__, __LINE__, __VA_ARGS__);                \
  } while (0)

/* true once the armed allocation has been attempted (and failed). */
static int fa_fired(const fa_run *r) {
  return r->n != 0 && weir__alloc_count() >= r->armed_at + r->n;
}

/* Checks that rc is one of the n accepted codes. */
static int fa_rc_(fa_run *r, const char *file, int line, const char *expr,
                  int rc, const int *ok, size_t n) {
  size_t i = 0;
  while (i < n && ok[i] != rc)
    i++;
  if (i == n)
    fa_fail(r, file, line, "%s returned %s (%d)", expr, weir_err_name(rc), rc);
  else if (rc == WEIR_ENOMEM && !fa_fired(r))
    fa_fail(r, file, line, "%s returned WEIR_ENOMEM with no fault injected",
            expr);
  return rc;
}

/* rc = expr, checked against the codes this call may return under an
   allocation failure. */
#define FA_RC(r, expr, ...)                                                    \
  fa_rc_((r), __FILE__, __LINE__, #expr, (expr), (const int[]){__VA_ARGS__},   \
         sizeof((const int[]){__VA_ARGS__}) / sizeof(int))

/* Waits for cond; a broken promise if it does not come. After the first
   failure of a run the waits are short: the run is failing already. */
#define FA_WAIT(r, cond, ...)                                                  \
  do {                                                                         \
    uint64_t dl_ = test_now_ms() + ((r)->failed ? 200u : g_wait_ms);           \
    while (!(cond)) {                                                          \
      if (test_now_ms() > dl_) {                                               \
        fa_fail((r), __FILE__, __LINE__, __VA_ARGS__);                         \
        break;                                                                 \
      }                                                                        \
      test_sleep_ms(1);                                                        \
    }                                                                          \
  } while (0)

static void print_replay(void) {
  ssize_t w = write(2, g_replay, strlen(g_replay));
  (void)w;
}

static void on_abort(int sig) {
  print_replay();
  signal(sig, SIG_DFL);
  raise(sig);
}

/* A hang is fatal: there is no way to stop a node that does not stop. */
static void *watchdog_main(void *arg) {
  (void)arg; /* the deadline is g_deadline_ms */
  for (;;) {
    test_sleep_ms(200);
    uint64_t dl = atomic_load(&g_deadline_ms);
    if (dl && test_now_ms() > dl) {
      fprintf(stderr, "test_fault_alloc: HANG (run over its deadline)\n");
      print_replay();
      abort();
    }
  }
  return NULL;
}

/* ---- the node --------------------------------------------------------- */

static void fa_opts(weir_rt_opts *o) {
  weir_rt_opts_init(o);
  o->schedulers = 2;
  o->console = NULL;
  o->alarm_log = 0;
  o->max_processes = 256;
}

/* Starts the node with no fault armed (the fault belongs to the body). */
static void fa_start(fa_run *r, const weir_rt_opts *o) {
  weir_rt_opts def;
  if (!o) {
    fa_opts(&def);
    o = &def;
  }
  CHECK_OK(weir_rt_start(o, &r->rt));
}

static void fa_arm(fa_run *r) {
  r->armed_at = weir__alloc_count();
  weir__alloc_fail_nth(r->n);
}

static void gates_open_all(void);

/* Stops the node (part of the faulted body), then disarms. */
static void fa_stop(fa_run *r) {
  gates_open_all();
  r->stop_at = weir__alloc_count();
  if (r->rt) {
    /* A fault still pending will hit the stop itself: a stop message that
       cannot be allocated leaves its process to the timeout, so keep that
       short. Otherwise the stop has every chance to be clean. */
    int pending = r->n && r->armed_at + r->n > r->stop_at;
    int rc = weir_rt_stop(r->rt, pending ? 300 : 5000);
    r->rt = NULL;
    /* ... then rt_stop kills it and returns ETIMEDOUT, as documented. */
    int hit_stop = pending && weir__alloc_count() >= r->armed_at + r->n;
    if (!(rc == WEIR_OK || (rc == WEIR_ETIMEDOUT && hit_stop)))
      fa_fail(r, __FILE__, __LINE__, "weir_rt_stop returned %s",
              weir_err_name(rc));
  }
  r->end_at = weir__alloc_count();
  weir__alloc_fail_nth(0);
}

static uint64_t fa_nprocs(weir_rt *rt) {
  weir_stats s;
  CHECK_OK(weir_node_stats(rt, &s));
  return s.processes;
}

static int fa_alive(weir_rt *rt, weir_pid pid) {
  weir_proc_info info;
  return weir_process_info(rt, pid, &info) == WEIR_OK;
}

/* ---- the test process ------------------------------------------------- */

enum {
  T_WORK = 1, /* cast: counted (partition workers check per-key order) */
  T_STOP,     /* cast: end normally */
  T_CRASH,    /* cast: crash with reason CRASH_REASON */
  T_GATE,     /* cast: wait until the gate opens */
  T_EXEC,     /* cast: run the function in the payload in this process */
  T_ECHO,     /* call: reply with the request */
  T_DEFER,    /* call: keep the weir_from, reply later (or never) */
  T_TICK,     /* info: a timer that must fire */
  T_LATE      /* info: a timer that is cancelled and must never fire */
};
enum { CRASH_REASON = -100, NPROC = 96, NEV = 512, NKEYS = 5, NDEFER = 8 };

typedef struct fa_proc fa_proc;
typedef void (*exec_fn)(weir_ctx *cx, fa_proc *self);

struct fa_proc {
  int id;
  int trap;
  int part; /* a partition worker: check per-key order */
  atomic_int starts;
  atomic_int casts;
  atomic_int gate_open, in_gate;
  atomic_int execs;
  atomic_int reply_fail; /* weir_reply did not return OK */
  atomic_int dead_letters;
  _Atomic uint64_t pid;
  pthread_mutex_t mu;
  int ndefer;
  weir_from defer[NDEFER];
};

static fa_proc g_proc[NPROC];
static int g_nproc;
static atomic_int g_gates_all; /* opens every gate (node stop) */
static atomic_int g_part_handled, g_order_bad;
static atomic_int g_last_seq[NKEYS];

/* Events a process saw in handle_info, for the test thread to look up. */
typedef struct fa_ev {
  int who;
  uint32_t tag;
  weir_ref ref;
  uint64_t from;
  int32_t reason; /* DOWN, EXIT; alarm: on; else 0 */
  uint64_t pid;   /* alarm: the process it names */
} fa_ev;
static fa_ev g_ev[NEV];
static int g_nev;
static pthread_mutex_t g_ev_mu = PTHREAD_MUTEX_INITIALIZER;

static void procs_reset(void) {
  for (int i = 0; i < g_nproc; i++)
    pthread_mutex_destroy(&g_proc[i].mu);
  memset(g_proc, 0, sizeof g_proc);
  g_nproc = 0;
  atomic_store(&g_gates_all, 0);
  atomic_store(&g_part_handled, 0);
  atomic_store(&g_order_bad, 0);
  for (int k = 0; k < NKEYS; k++)
    atomic_store(&g_last_seq[k], 0);
  pthread_mutex_lock(&g_ev_mu);
  g_nev = 0;
  pthread_mutex_unlock(&g_ev_mu);
}

static fa_proc *proc_new(void) {
  CHECK(g_nproc < NPROC);
  fa_proc *p = &g_proc[g_nproc];
  p->id = g_nproc++;
  pthread_mutex_init(&p->mu, NULL);
  return p;
}

static void gates_open_all(void) {
  atomic_store(&g_gates_all, 1);
}

static weir_pid proc_pid(const fa_proc *p) {
  weir_pid pid = {atomic_load(&p->pid)};
  return pid;
}

static void ev_add(int who, const weir_msg *m) {
  fa_ev e = {.who = who, .tag = m->tag, .ref = m->ref, .from = m->from.id};
  if ((m->tag == WEIR_TAG_DOWN || m->tag == WEIR_TAG_EXIT) &&
      m->len >= sizeof(int32_t))
    memcpy(&e.reason, m->data, sizeof e.reason);
  if (m->tag == WEIR_TAG_ALARM && m->len >= sizeof(weir_alarm)) {
    weir_alarm al;
    memcpy(&al, m->data, sizeof al);
    e.reason = al.on;
    e.pid = al.pid.id;
  }
  pthread_mutex_lock(&g_ev_mu);
  CHECK(g_nev < NEV);
  g_ev[g_nev++] = e;
  pthread_mutex_unlock(&g_ev_mu);
}

/* Events at process `who` with this tag (and ref and from, when not 0). */
static int ev_count(int who, uint32_t tag, weir_ref ref, uint64_t from) {
  int k = 0;
  pthread_mutex_lock(&g_ev_mu);
  for (int i = 0; i < g_nev; i++) {
    const fa_ev *e = &g_ev[i];
    if (e->who == who && e->tag == tag && (!ref || e->ref == ref) &&
        (!from || e->from == from))
      k++;
  }
  pthread_mutex_unlock(&g_ev_mu);
  return k;
}

/* The reason of the first such event, or INT32_MIN. */
static int32_t ev_reason(int who, uint32_t tag, weir_ref ref, uint64_t from) {
  int32_t reason = INT32_MIN;
  pthread_mutex_lock(&g_ev_mu);
  for (int i = 0; i < g_nev; i++) {
    const fa_ev *e = &g_ev[i];
    if (e->who == who && e->tag == tag && (!ref || e->ref == ref) &&
        (!from || e->from == from)) {
      reason = e->reason;
      break;
    }
  }
  pthread_mutex_unlock(&g_ev_mu);
  return reason;
}

/* ALARM events at `who` about process `pid` with on == on. */
static int ev_alarms(int who, uint64_t pid, int on) {
  int k = 0;
  pthread_mutex_lock(&g_ev_mu);
  for (int i = 0; i < g_nev; i++)
    if (g_ev[i].who == who && g_ev[i].tag == WEIR_TAG_ALARM &&
        g_ev[i].pid == pid && g_ev[i].reason == on)
      k++;
  pthread_mutex_unlock(&g_ev_mu);
  return k;
}

static int p_init(weir_ctx *cx, void *arg, void **state) {
  fa_proc *p = arg;
  *state = p;
  if (p->trap) weir_trap_exit(cx, 1);
  atomic_store(&p->pid, weir_self(cx).id);
  atomic_fetch_add(&p->starts, 1);
  return WEIR_OK;
}

static void gate_wait(fa_proc *p) {
  atomic_store(&p->in_gate, 1);
  uint64_t dl = test_now_ms() + 60000;
  while (!atomic_load(&p->gate_open) && !atomic_load(&g_gates_all) &&
         test_now_ms() < dl)
    test_sleep_ms(1);
  atomic_store(&p->in_gate, 0);
}

static void part_check(const weir_msg *m) {
  int32_t kv[2];
  CHECK_EQ_INT(m->len, sizeof kv);
  memcpy(kv, m->data, sizeof kv);
  CHECK(kv[0] >= 0 && kv[0] < NKEYS);
  int prev = atomic_exchange(&g_last_seq[kv[0]], kv[1]);
  if (prev >= kv[1]) atomic_fetch_add(&g_order_bad, 1);
  atomic_fetch_add(&g_part_handled, 1);
}

static int p_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  fa_proc *p = state;
  switch (m->tag) {
  case T_WORK:
    if (p->part) part_check(m);
    atomic_fetch_add(&p->casts, 1);
    return WEIR_OK;
  case T_STOP:
    return WEIR_STOP;
  case T_CRASH:
    return CRASH_REASON;
  case T_GATE:
    gate_wait(p);
    return WEIR_OK;
  case T_EXEC: {
    exec_fn fn;
    CHECK_EQ_INT(m->len, sizeof fn);
    memcpy(&fn, m->data, sizeof fn);
    fn(cx, p);
    atomic_fetch_add(&p->execs, 1);
    return WEIR_OK;
  }
  default:
    test_fail(__FILE__, __LINE__, "unexpected cast tag %u", m->tag);
  }
}

static int p_call(weir_ctx *cx, void *state, const weir_msg *m,
                  weir_from from) {
  fa_proc *p = state;
  if (m->tag == T_DEFER) {
    pthread_mutex_lock(&p->mu);
    CHECK(p->ndefer < NDEFER);
    p->defer[p->ndefer++] = from;
    pthread_mutex_unlock(&p->mu);
    return WEIR_OK;
  }
  if (weir_reply(cx, from, m->data, m->len) != WEIR_OK)
    atomic_fetch_add(&p->reply_fail, 1);
  return WEIR_OK;
}

static int p_info(weir_ctx *cx, void *state, const weir_msg *m) {
  fa_proc *p = state;
  (void)cx;
  if (m->tag == WEIR_TAG_DEAD_LETTER) {
    atomic_fetch_add(&p->dead_letters, 1);
    return WEIR_OK;
  }
  ev_add(p->id, m);
  return WEIR_OK;
}

static const weir_server p_server = {.name = "fault_proc",
                                     .init = p_init,
                                     .handle_cast = p_cast,
                                     .handle_call = p_call,
                                     .handle_info = p_info};

/* Spawns a test process with no fault armed. */
static weir_pid fa_spawn(fa_run *r, fa_proc *p, const weir_spawn_opts *so) {
  weir_pid pid;
  CHECK_OK(weir_spawn(r->rt, &p_server, p, so, &pid));
  return pid;
}

/* Runs fn inside process p; OK once it ran, or the cast's error. */
static int fa_exec(fa_run *r, fa_proc *p, exec_fn fn) {
  int before = atomic_load(&p->execs);
  int rc = FA_RC(r, weir_cast(r->rt, proc_pid(p), T_EXEC, &fn, sizeof fn),
                 WEIR_OK, WEIR_ENOMEM);
  if (rc == WEIR_OK)
    FA_WAIT(r, atomic_load(&p->execs) > before, "exec in proc %d never ran",
            p->id);
  return rc;
}

/* Gates p: OK once p waits in the gate, or the cast's error. */
static int fa_gate(fa_run *r, fa_proc *p) {
  int rc = FA_RC(r, weir_cast(r->rt, proc_pid(p), T_GATE, NULL, 0), WEIR_OK,
                 WEIR_ENOMEM);
  if (rc == WEIR_OK)
    FA_WAIT(r, atomic_load(&p->in_gate), "proc %d never reached its gate",
            p->id);
  return rc;
}

/* ==== scenarios ========================================================= */

/* ---- rt: start and stop ----------------------------------------------- */

static void sc_rt(fa_run *r) {
  weir_rt_opts o;
  fa_opts(&o);
  o.node_name = "fault-node";
  o.alarm_enable = 100;
  fa_arm(r);
  FA_RC(r, weir_rt_start(&o, &r->rt), WEIR_OK, WEIR_ENOMEM);
  if (r->rt) FA_EXPECT(r, fa_nprocs(r->rt) == 0, "a new node has processes");
  fa_stop(r);
}

/* ---- spawn: with a name, linked and monitored from a process ----------- */

static struct {
  int spawn_rc, mon_rc;
  weir_pid child;
  weir_ref mref;
  fa_proc *cp;
} s_spawn;

static void spawn_in_parent(weir_ctx *cx, fa_proc *self) {
  (void)self;
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.link = 1;
  s_spawn.spawn_rc =
      weir_spawn(weir_ctx_rt(cx), &p_server, s_spawn.cp, &so, &s_spawn.child);
  if (s_spawn.spawn_rc == WEIR_OK)
    s_spawn.mon_rc = weir_monitor(cx, s_spawn.child, &s_spawn.mref);
}

static void sc_spawn(fa_run *r) {
  fa_start(r, NULL);
  weir_rt *rt = r->rt;
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  fa_proc *parent = proc_new();
  parent->trap = 1;
  fa_spawn(r, parent, NULL);
  fa_proc *named = proc_new();
  memset(&s_spawn, 0, sizeof s_spawn);
  s_spawn.spawn_rc = s_spawn.mon_rc = 1; /* not run */
  s_spawn.cp = proc_new();
  uint64_t alive = 1;
  fa_arm(r);

  /* A named spawn from a thread; the name goes with the process. */
  so.name = "fa.named";
  weir_pid pid = WEIR_PID_NONE, where = WEIR_PID_NONE;
  int rc = FA_RC(r, weir_spawn(rt, &p_server, named, &so, &pid), WEIR_OK,
                 WEIR_ENOMEM);
  if (rc == WEIR_OK) {
    FA_RC(r, weir_whereis(rt, "fa.named", &where), WEIR_OK);
    FA_EXPECT(r, weir_pid_eq(where, pid), "whereis names another pid");
    rc = FA_RC(r, weir_cast(rt, pid, T_STOP, NULL, 0), WEIR_OK, WEIR_ENOMEM);
    if (rc == WEIR_OK)
      FA_WAIT(r,
              !fa_alive(rt, pid) &&
                  weir_whereis(rt, "fa.named", &where) == WEIR_ENOTFOUND,
              "the named process or its name outlived T_STOP");
    else
      alive++;
  } else {
    FA_EXPECT(r, weir_whereis(rt, "fa.named", &where) == WEIR_ENOTFOUND,
              "a failed spawn left its name registered");
  }

  /* Linked and monitored from a process that traps exits. */
  if (fa_exec(r, parent, spawn_in_parent) == WEIR_OK) {
    FA_RC(r, s_spawn.spawn_rc, WEIR_OK, WEIR_ENOMEM);
    if (s_spawn.spawn_rc == WEIR_OK) {
      FA_RC(r, s_spawn.mon_rc, WEIR_OK, WEIR_ENOMEM);
      rc = FA_RC(r, weir_exit(rt, s_spawn.child, 77), WEIR_OK, WEIR_ENOMEM);
      if (rc == WEIR_OK) {
        FA_WAIT(r,
                ev_count(parent->id, WEIR_TAG_EXIT, 0, s_spawn.child.id) == 1,
                "spawn(link=1) returned OK but the child's exit never "
                "reached the parent");
        if (s_spawn.mon_rc == WEIR_OK)
          FA_WAIT(r, ev_count(parent->id, WEIR_TAG_DOWN, s_spawn.mref, 0) == 1,
                  "monitor returned OK but no DOWN came");
        /* 77, or ENOMEM: the target could not record the monitor and
           said so at once (proc.c, K_MONITOR). */
        int32_t why = ev_reason(parent->id, WEIR_TAG_DOWN, s_spawn.mref, 0);
        if (s_spawn.mon_rc == WEIR_OK && why != INT32_MIN)
          FA_EXPECT(r, why == 77 || why == WEIR_ENOMEM,
                    "DOWN reason %d, want 77", why);
      } else {
        alive++;
      }
    }
  }
  FA_WAIT(r, fa_nprocs(rt) == alive, "process count %llu, want %llu",
          (unsigned long long)fa_nprocs(rt), (unsigned long long)alive);
  fa_stop(r);
}

/* ---- messages: cast, send, call, call_async, reply -------------------- */

static struct {
  weir_pid srv, dfr;
  int rc_echo, rc_tmo, rc_def;
  weir_ref ref_echo, ref_tmo, ref_def;
} s_msg;

static void msg_async_echo(weir_ctx *cx, fa_proc *self) {
  (void)self;
  s_msg.rc_echo =
      weir_call_async(cx, s_msg.srv, T_ECHO, "ping", 4, -1, &s_msg.ref_echo);
}
static void msg_async_timeout(weir_ctx *cx, fa_proc *self) {
  (void)self;
  s_msg.rc_tmo =
      weir_call_async(cx, s_msg.dfr, T_DEFER, NULL, 0, 20, &s_msg.ref_tmo);
}
static void msg_async_deferred(weir_ctx *cx, fa_proc *self) {
  (void)self;
  s_msg.rc_def =
      weir_call_async(cx, s_msg.dfr, T_DEFER, NULL, 0, -1, &s_msg.ref_def);
}

static int ndefer(fa_proc *p) {
  pthread_mutex_lock(&p->mu);
  int n = p->ndefer;
  pthread_mutex_unlock(&p->mu);
  return n;
}

/* A reply to a call_async arrived, or the DOWN that stands for it. */
static int got_answer(int who, weir_ref ref) {
  return ev_count(who, WEIR_TAG_REPLY, ref, 0) +
         ev_count(who, WEIR_TAG_DOWN, ref, 0);
}

static void sc_msg(fa_run *r) {
  fa_start(r, NULL);
  weir_rt *rt = r->rt;
  fa_proc *srv = proc_new(), *dfr = proc_new(), *cli = proc_new();
  memset(&s_msg, 0, sizeof s_msg);
  s_msg.srv = fa_spawn(r, srv, NULL);
  s_msg.dfr = fa_spawn(r, dfr, NULL);
  fa_spawn(r, cli, NULL);
  s_msg.rc_echo = s_msg.rc_tmo = s_msg.rc_def = 1;
  fa_arm(r);

  int casts = 0, sends = 0;
  for (int32_t i = 0; i < 3; i++) {
    if (FA_RC(r, weir_cast(rt, s_msg.srv, T_WORK, &i, sizeof i), WEIR_OK,
              WEIR_ENOMEM) == WEIR_OK)
      casts++;
    if (FA_RC(r, weir_send(rt, s_msg.srv, T_TICK, &i, sizeof i), WEIR_OK,
              WEIR_ENOMEM) == WEIR_OK)
      sends++;
  }
  FA_WAIT(r, atomic_load(&srv->casts) == casts,
          "%d casts returned OK, %d handled", casts, atomic_load(&srv->casts));
  FA_WAIT(r, ev_count(srv->id, T_TICK, 0, 0) == sends,
          "%d sends returned OK, %d handled", sends,
          ev_count(srv->id, T_TICK, 0, 0));

  /* Calls from a thread: the reply copies into the caller's buffer. */
  for (int i = 0; i < 2; i++) {
    char buf[16] = {0};
    uint32_t len = sizeof buf;
    int rc = FA_RC(r,
                   weir_call(rt, s_msg.srv, T_ECHO, "hello", 5, buf, &len,
                             TEST_LIVENESS_MS),
                   WEIR_OK, WEIR_ENOMEM);
    if (rc == WEIR_OK)
      FA_EXPECT(r, len == 5 && memcmp(buf, "hello", 5) == 0,
                "call reply garbled (len %u)", len);
  }
  /* A thread call that times out (the server never answers it). */
  int deferred = 0;
  uint32_t zero = 0;
  int rc = FA_RC(r, weir_call(rt, s_msg.dfr, T_DEFER, NULL, 0, NULL, &zero, 20),
                 WEIR_ETIMEDOUT, WEIR_ENOMEM);
  if (rc == WEIR_ETIMEDOUT) deferred++;

  /* call_async from a process: a reply (or a DOWN standing for it). */
  if (fa_exec(r, cli, msg_async_echo) == WEIR_OK) {
    FA_RC(r, s_msg.rc_echo, WEIR_OK, WEIR_ENOMEM);
    if (s_msg.rc_echo == WEIR_OK)
      FA_WAIT(r,
              got_answer(cli->id, s_msg.ref_echo) == 1 ||
                  atomic_load(&srv->reply_fail) > 0,
              "call_async returned OK, the server replied, nothing came");
  }
  /* ... with a timeout and a server that never replies: TIMEOUT. */
  if (fa_exec(r, cli, msg_async_timeout) == WEIR_OK) {
    FA_RC(r, s_msg.rc_tmo, WEIR_OK, WEIR_ENOMEM);
    if (s_msg.rc_tmo == WEIR_OK) {
      deferred++;
      FA_WAIT(r,
              ev_count(cli->id, WEIR_TAG_TIMEOUT, s_msg.ref_tmo, 0) +
                      ev_count(cli->id, WEIR_TAG_DOWN, s_msg.ref_tmo, 0) ==
                  1,
              "call_async(timeout 20 ms) returned OK; no TIMEOUT came");
    }
  }
  /* ... answered later from a thread with weir_reply_rt. */
  if (fa_exec(r, cli, msg_async_deferred) == WEIR_OK) {
    FA_RC(r, s_msg.rc_def, WEIR_OK, WEIR_ENOMEM);
    if (s_msg.rc_def == WEIR_OK) {
      deferred++;
      FA_WAIT(r, ndefer(dfr) == deferred, "deferred calls: %d of %d arrived",
              ndefer(dfr), deferred);
      if (ndefer(dfr) == deferred) {
        /* The earlier ones have timed out: their replies are discarded
           (ENOPROC for the thread caller that left). */
        for (int i = 0; i < deferred - 1; i++) {
          weir_from f = dfr->defer[i];
          FA_RC(r, weir_reply_rt(rt, f, "old", 3), f.a ? WEIR_OK : WEIR_ENOPROC,
                WEIR_ENOMEM);
        }
        rc = FA_RC(r, weir_reply_rt(rt, dfr->defer[deferred - 1], "late", 4),
                   WEIR_OK, WEIR_ENOMEM);
        if (rc == WEIR_OK)
          FA_WAIT(r, got_answer(cli->id, s_msg.ref_def) == 1,
                  "weir_reply_rt returned OK; the reply never arrived");
      }
    }
  }
  if (s_msg.rc_tmo == WEIR_OK &&
      ev_count(cli->id, WEIR_TAG_TIMEOUT, s_msg.ref_tmo, 0) == 1)
    FA_EXPECT(r, ev_count(cli->id, WEIR_TAG_REPLY, s_msg.ref_tmo, 0) == 0,
              "a reply to a timed-out call_async was delivered");
  FA_WAIT(r, fa_nprocs(rt) == 3, "process count %llu, want 3",
          (unsigned long long)fa_nprocs(rt));
  fa_stop(r);
}

/* ---- timers: send_after, cancel --------------------------------------- */

static int s_timer_rc;
static void timer_in_proc(weir_ctx *cx, fa_proc *self) {
  (void)self;
  int32_t v = 99;
  s_timer_rc = weir_send_after(weir_ctx_rt(cx), weir_self(cx), T_TICK, &v,
                               sizeof v, 1, NULL);
}

static void sc_timer(fa_run *r) {
  fa_start(r, NULL);
  weir_rt *rt = r->rt;
  fa_proc *p = proc_new();
  weir_pid pid = fa_spawn(r, p, NULL);
  s_timer_rc = 1;
  fa_arm(r);

  int set = 0;
  weir_ref first = 0;
  for (int32_t i = 0; i < 3; i++) {
    weir_ref ref = 0;
    if (FA_RC(r, weir_send_after(rt, pid, T_TICK, &i, sizeof i, 2, &ref),
              WEIR_OK, WEIR_ENOMEM) == WEIR_OK) {
      set++;
      FA_EXPECT(r, ref != 0, "send_after gave ref 0");
      if (!first) first = ref;
    }
  }
  weir_ref late = 0;
  if (FA_RC(r, weir_send_after(rt, pid, T_LATE, NULL, 0, 60000, &late), WEIR_OK,
            WEIR_ENOMEM) == WEIR_OK) {
    FA_RC(r, weir_cancel_timer(rt, late), WEIR_OK);
    FA_RC(r, weir_cancel_timer(rt, late), WEIR_ENOTFOUND);
  }
  FA_RC(r, weir_cancel_timer(rt, (weir_ref)1 << 60), WEIR_ENOTFOUND);
  if (fa_exec(r, p, timer_in_proc) == WEIR_OK) {
    FA_RC(r, s_timer_rc, WEIR_OK, WEIR_ENOMEM);
    if (s_timer_rc == WEIR_OK) set++;
  }
  FA_WAIT(r, ev_count(p->id, T_TICK, 0, 0) == set, "%d timers set, %d fired",
          set, ev_count(p->id, T_TICK, 0, 0));
  if (first) FA_RC(r, weir_cancel_timer(rt, first), WEIR_ENOTFOUND);
  FA_EXPECT(r, ev_count(p->id, T_LATE, 0, 0) == 0, "a cancelled timer fired");
  fa_stop(r);
}

/* ---- registry --------------------------------------------------------- */

enum { NREG = 66 }; /* past the table's 64 buckets: it grows */

static void sc_registry(fa_run *r) {
  fa_start(r, NULL);
  weir_rt *rt = r->rt;
  fa_proc *a = proc_new(), *b = proc_new();
  weir_pid pa = fa_spawn(r, a, NULL), pb = fa_spawn(r, b, NULL);
  weir_pid many[NREG];
  for (int i = 0; i < NREG; i++)
    many[i] = fa_spawn(r, proc_new(), NULL);
  fa_arm(r);

  weir_pid w = WEIR_PID_NONE;
  int ra = FA_RC(r, weir_register(rt, "fa.a", pa), WEIR_OK, WEIR_ENOMEM);
  FA_RC(r, weir_whereis(rt, "fa.a", &w),
        ra == WEIR_OK ? WEIR_OK : WEIR_ENOTFOUND);
  if (ra == WEIR_OK) FA_EXPECT(r, weir_pid_eq(w, pa), "whereis(fa.a) wrong");
  /* Taken name; then a second name for a process that has one. */
  int rb = FA_RC(r, weir_register(rt, "fa.a", pb),
                 ra == WEIR_OK ? WEIR_EEXIST : WEIR_OK, WEIR_ENOMEM);
  if (ra == WEIR_OK)
    FA_RC(r, weir_register(rt, "fa.a2", pa), WEIR_EEXIST, WEIR_ENOMEM);
  FA_RC(r, weir_unregister(rt, "fa.a"),
        ra == WEIR_OK || rb == WEIR_OK ? WEIR_OK : WEIR_ENOTFOUND);
  FA_RC(r, weir_whereis(rt, "fa.a", &w), WEIR_ENOTFOUND);
  /* A name dies with its process. */
  if (rb != WEIR_OK &&
      FA_RC(r, weir_register(rt, "fa.b", pb), WEIR_OK, WEIR_ENOMEM) ==
          WEIR_OK &&
      FA_RC(r, weir_cast(rt, pb, T_STOP, NULL, 0), WEIR_OK, WEIR_ENOMEM) ==
          WEIR_OK)
    FA_WAIT(r, weir_whereis(rt, "fa.b", &w) == WEIR_ENOTFOUND,
            "a name outlived its process");
  /* Many names: the table grows (and may fail to). */
  int ok[NREG];
  for (int i = 0; i < NREG; i++) {
    char name[32];
    snprintf(name, sizeof name, "fa.r%d", i);
    ok[i] = FA_RC(r, weir_register(rt, name, many[i]), WEIR_OK, WEIR_ENOMEM);
  }
  for (int i = 0; i < NREG; i++) {
    char name[32];
    snprintf(name, sizeof name, "fa.r%d", i);
    int rc = weir_whereis(rt, name, &w);
    FA_EXPECT(r, rc == (ok[i] == WEIR_OK ? WEIR_OK : WEIR_ENOTFOUND),
              "whereis(%s) = %s after register returned %s", name,
              weir_err_name(rc), weir_err_name(ok[i]));
    if (rc == WEIR_OK)
      FA_EXPECT(r, weir_pid_eq(w, many[i]), "whereis(%s) wrong", name);
  }
  /* They end here rather than in the stop (a stop message that cannot be
     allocated costs the stop's timeout): their names go with them. */
  uint64_t alive = 2 + NREG;
  for (int i = 0; i < NREG; i++)
    if (FA_RC(r, weir_cast(rt, many[i], T_STOP, NULL, 0), WEIR_OK,
              WEIR_ENOMEM) == WEIR_OK)
      alive--;
  if (!fa_alive(rt, pb)) alive--;
  FA_WAIT(r, fa_nprocs(rt) == alive, "process count %llu, want %llu",
          (unsigned long long)fa_nprocs(rt), (unsigned long long)alive);
  for (int i = 0; i < NREG; i++) {
    char name[32];
    snprintf(name, sizeof name, "fa.r%d", i);
    if (!fa_alive(rt, many[i])) /* the name goes at the end of the exit */
      FA_WAIT(r, weir_whereis(rt, name, &w) == WEIR_ENOTFOUND,
              "%s outlived its process", name);
  }
  fa_stop(r);
}

/* ---- links, monitors, exit signals ------------------------------------ */

static struct {
  weir_pid b, c, d, e, x;
  int link_b, mon_c, link_d, unlink_d, mon_e, demon_e, link_x, mon_x;
  weir_ref ref_c, ref_e, ref_x;
} s_lnk;

static void links_in_a(weir_ctx *cx, fa_proc *self) {
  (void)self;
  s_lnk.link_b = weir_link(cx, s_lnk.b);
  s_lnk.mon_c = weir_monitor(cx, s_lnk.c, &s_lnk.ref_c);
  s_lnk.link_d = weir_link(cx, s_lnk.d);
  s_lnk.unlink_d = weir_unlink(cx, s_lnk.d);
  s_lnk.mon_e = weir_monitor(cx, s_lnk.e, &s_lnk.ref_e);
  if (s_lnk.mon_e == WEIR_OK) s_lnk.demon_e = weir_demonitor(cx, s_lnk.ref_e);
  s_lnk.link_x = weir_link(cx, s_lnk.x);
  s_lnk.mon_x = weir_monitor(cx, s_lnk.x, &s_lnk.ref_x);
}

static void sc_links(fa_run *r) {
  fa_start(r, NULL);
  weir_rt *rt = r->rt;
  fa_proc *a = proc_new();
  a->trap = 1;
  fa_spawn(r, a, NULL);
  memset(&s_lnk, 0, sizeof s_lnk);
  s_lnk.b = fa_spawn(r, proc_new(), NULL);
  s_lnk.c = fa_spawn(r, proc_new(), NULL);
  s_lnk.d = fa_spawn(r, proc_new(), NULL);
  s_lnk.e = fa_spawn(r, proc_new(), NULL);
  s_lnk.x = fa_spawn(r, proc_new(), NULL);
  CHECK_OK(weir_cast(rt, s_lnk.x, T_STOP, NULL, 0));
  WAIT_UNTIL(!fa_alive(rt, s_lnk.x), TEST_LIVENESS_MS); /* x: a stale pid */
  uint64_t alive = 5;
  fa_arm(r);

  if (fa_exec(r, a, links_in_a) == WEIR_OK) {
    FA_RC(r, s_lnk.link_b, WEIR_OK, WEIR_ENOMEM);
    FA_RC(r, s_lnk.mon_c, WEIR_OK, WEIR_ENOMEM);
    FA_RC(r, s_lnk.link_d, WEIR_OK, WEIR_ENOMEM);
    FA_RC(r, s_lnk.unlink_d, WEIR_OK, WEIR_ENOMEM);
    FA_RC(r, s_lnk.mon_e, WEIR_OK, WEIR_ENOMEM);
    if (s_lnk.mon_e == WEIR_OK) FA_RC(r, s_lnk.demon_e, WEIR_OK, WEIR_ENOMEM);
    FA_RC(r, s_lnk.link_x, WEIR_OK, WEIR_ENOMEM);
    FA_RC(r, s_lnk.mon_x, WEIR_OK, WEIR_ENOMEM);

    /* b exits with a reason: a (linked, trapping) sees EXIT 55. */
    if (FA_RC(r, weir_exit(rt, s_lnk.b, 55), WEIR_OK, WEIR_ENOMEM) == WEIR_OK) {
      alive--;
      if (s_lnk.link_b == WEIR_OK)
        FA_WAIT(r, ev_count(a->id, WEIR_TAG_EXIT, 0, s_lnk.b.id) == 1,
                "link returned OK; the partner's exit never arrived");
    }
    /* c stops: a (monitoring) sees DOWN. */
    if (FA_RC(r, weir_cast(rt, s_lnk.c, T_STOP, NULL, 0), WEIR_OK,
              WEIR_ENOMEM) == WEIR_OK) {
      alive--;
      if (s_lnk.mon_c == WEIR_OK)
        FA_WAIT(r, ev_count(a->id, WEIR_TAG_DOWN, s_lnk.ref_c, 0) == 1,
                "monitor returned OK; no DOWN came");
    }
    /* d (unlinked) and e (demonitored) end: a hears nothing of them. */
    if (FA_RC(r, weir_exit(rt, s_lnk.d, 66), WEIR_OK, WEIR_ENOMEM) == WEIR_OK)
      alive--;
    if (FA_RC(r, weir_cast(rt, s_lnk.e, T_STOP, NULL, 0), WEIR_OK,
              WEIR_ENOMEM) == WEIR_OK)
      alive--;
    /* x was gone already: EXIT / DOWN with reason NOPROC. */
    if (s_lnk.link_x == WEIR_OK)
      FA_WAIT(r, ev_count(a->id, WEIR_TAG_EXIT, 0, s_lnk.x.id) == 1,
              "link to a dead pid returned OK; no EXIT came");
    if (s_lnk.mon_x == WEIR_OK)
      FA_WAIT(r, ev_count(a->id, WEIR_TAG_DOWN, s_lnk.ref_x, 0) == 1,
              "monitor of a dead pid returned OK; no DOWN came");
    FA_WAIT(r, fa_nprocs(rt) == alive, "process count %llu, want %llu",
            (unsigned long long)fa_nprocs(rt), (unsigned long long)alive);
    FA_EXPECT(r, ev_count(a->id, WEIR_TAG_EXIT, 0, s_lnk.d.id) == 0,
              "EXIT from an unlinked process");
    if (s_lnk.mon_e == WEIR_OK)
      FA_EXPECT(r, ev_count(a->id, WEIR_TAG_DOWN, s_lnk.ref_e, 0) == 0,
                "DOWN from a demonitored process");
    if (s_lnk.link_b == WEIR_OK &&
        ev_count(a->id, WEIR_TAG_EXIT, 0, s_lnk.b.id) == 1)
      /* 55 is b's own exit; WEIR_ENOMEM is b telling a, at once, that it
         could not record its half of the link (proc.c, K_LINK). */
      FA_EXPECT(r,
                ev_reason(a->id, WEIR_TAG_EXIT, 0, s_lnk.b.id) == 55 ||
                    ev_reason(a->id, WEIR_TAG_EXIT, 0, s_lnk.b.id) ==
                        WEIR_ENOMEM,
                "EXIT reason %d, want 55 (or ENOMEM: link refused)",
                ev_reason(a->id, WEIR_TAG_EXIT, 0, s_lnk.b.id));
    if (s_lnk.mon_x == WEIR_OK &&
        ev_count(a->id, WEIR_TAG_DOWN, s_lnk.ref_x, 0) == 1)
      FA_EXPECT(r,
                ev_reason(a->id, WEIR_TAG_DOWN, s_lnk.ref_x, 0) ==
                    WEIR_REASON_NOPROC,
                "DOWN reason %d, want NOPROC",
                ev_reason(a->id, WEIR_TAG_DOWN, s_lnk.ref_x, 0));
  }
  fa_stop(r);
}

/* ---- a supervisor: 3 children, a crash and a restart ------------------ */

static void sc_sup(fa_run *r) {
  fa_start(r, NULL);
  weir_rt *rt = r->rt;
  fa_proc *k[3];
  weir_child_spec cs[3];
  static const char *const ids[3] = {"c0", "c1", "c2"};
  for (int i = 0; i < 3; i++) {
    k[i] = proc_new();
    weir_child_spec_init(&cs[i], ids[i], &p_server, k[i]);
    cs[i].shutdown_ms = 2000;
  }
  cs[2].shutdown_ms = 0; /* c2 is stopped by a brutal kill */
  weir_sup_opts so;
  weir_sup_opts_init(&so);
  so.max_restarts = 10;
  weir_pid sup = WEIR_PID_NONE;
  fa_arm(r);

  int rc = FA_RC(r, weir_sup_start(rt, &so, cs, 3, &sup), WEIR_OK, WEIR_ENOMEM);
  if (rc != WEIR_OK) {
    FA_WAIT(r, fa_nprocs(rt) == 0,
            "a failed sup_start left %llu processes running",
            (unsigned long long)fa_nprocs(rt));
    fa_stop(r);
    return;
  }
  for (int i = 0; i < 3; i++)
    FA_EXPECT(r, atomic_load(&k[i]->starts) == 1, "child %d starts %d", i,
              atomic_load(&k[i]->starts));
  FA_EXPECT(r, fa_nprocs(rt) == 4, "process count %llu, want 4",
            (unsigned long long)fa_nprocs(rt));

  /* A crash: the supervisor restarts the child. */
  if (FA_RC(r, weir_cast(rt, proc_pid(k[1]), T_CRASH, NULL, 0), WEIR_OK,
            WEIR_ENOMEM) == WEIR_OK)
    FA_WAIT(r, atomic_load(&k[1]->starts) == 2,
            "a crashed child was not restarted");
  FA_WAIT(r, fa_nprocs(rt) == 4, "process count %llu, want 4",
          (unsigned long long)fa_nprocs(rt));

  weir_child_counts cc;
  if (FA_RC(r, weir_sup_count_children(rt, sup, &cc), WEIR_OK, WEIR_ENOMEM) ==
      WEIR_OK)
    FA_EXPECT(r, cc.specs == 3 && cc.active == 3 && cc.workers == 3,
              "count_children: specs %u active %u workers %u", cc.specs,
              cc.active, cc.workers);
  weir_child_info ci[4];
  size_t n = 0;
  if (FA_RC(r, weir_sup_which_children(rt, sup, ci, 4, &n), WEIR_OK,
            WEIR_ENOMEM) == WEIR_OK) {
    FA_EXPECT(r, n == 3, "which_children: %zu children", n);
    for (size_t i = 0; i < n && i < 3; i++)
      FA_EXPECT(r, weir_pid_eq(ci[i].pid, proc_pid(k[i])),
                "which_children: child %zu pid differs", i);
  }
  /* terminate_child, then restart_child. */
  rc = FA_RC(r, weir_sup_terminate_child(rt, sup, "c2"), WEIR_OK, WEIR_ENOMEM);
  if (rc == WEIR_OK)
    FA_EXPECT(r, !fa_alive(rt, proc_pid(k[2])),
              "terminate_child returned; the child lives");
  int starts = atomic_load(&k[2]->starts);
  int rr = FA_RC(r, weir_sup_restart_child(rt, sup, "c2"),
                 rc == WEIR_OK ? WEIR_OK : WEIR_EEXIST, WEIR_ENOMEM);
  if (rr == WEIR_OK)
    FA_EXPECT(r, atomic_load(&k[2]->starts) == starts + 1,
              "restart_child returned OK; the child did not start");
  uint64_t want = rc == WEIR_OK && rr != WEIR_OK ? 3 : 4;
  FA_WAIT(r, fa_nprocs(rt) == want, "process count %llu, want %llu",
          (unsigned long long)fa_nprocs(rt), (unsigned long long)want);
  fa_stop(r);
}

/* ---- a partition supervisor: start, casts, resize --------------------- */

enum { NPARTMAX = 4 };
static fa_proc *g_part[NPARTMAX];

static void *part_arg(void *arg, unsigned partition) {
  (void)arg;
  CHECK(partition < NPARTMAX);
  return g_part[partition];
}

static void sc_partsup(fa_run *r) {
  fa_start(r, NULL);
  weir_rt *rt = r->rt;
  for (int i = 0; i < NPARTMAX; i++) {
    g_part[i] = proc_new();
    g_part[i]->part = 1;
  }
  weir_partsup_opts o;
  weir_partsup_opts_init(&o);
  o.child.server = &p_server;
  o.child.shutdown_ms = 2000;
  o.with_arguments = part_arg;
  o.partitions = 2;
  o.max_restarts = 10;
  weir_pid ps = WEIR_PID_NONE;
  fa_arm(r);

  int rc = FA_RC(r, weir_partsup_start(rt, &o, &ps), WEIR_OK, WEIR_ENOMEM);
  if (rc != WEIR_OK) {
    FA_WAIT(r, fa_nprocs(rt) == 0,
            "a failed partsup_start left %llu processes running",
            (unsigned long long)fa_nprocs(rt));
    fa_stop(r);
    return;
  }
  int sent = 0, parts = 2;
  int32_t seq = 0;
  static const unsigned resize_to[3] = {4, 2, 0};
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 10; i++) {
      int32_t kv[2] = {i % NKEYS, ++seq};
      if (FA_RC(r,
                weir_partition_cast(rt, ps, (uint64_t)kv[0], T_WORK, kv,
                                    sizeof kv),
                WEIR_OK, WEIR_ENOMEM) == WEIR_OK)
        sent++;
    }
    if (!resize_to[round]) break;
    rc = FA_RC(r, weir_partsup_resize(rt, ps, resize_to[round]), WEIR_OK,
               WEIR_ENOMEM);
    if (rc == WEIR_OK) parts = (int)resize_to[round];
    FA_EXPECT(r, weir_partitions(rt, ps) == parts,
              "resize to %u returned %s; %d partitions", resize_to[round],
              weir_err_name(rc), weir_partitions(rt, ps));
  }
  char buf[8];
  uint32_t len = sizeof buf;
  rc = FA_RC(r,
             weir_partition_call(rt, ps, 3, T_ECHO, "abc", 3, buf, &len,
                                 TEST_LIVENESS_MS),
             WEIR_OK, WEIR_ENOMEM);
  if (rc == WEIR_OK) FA_EXPECT(r, len == 3, "partition_call reply len %u", len);
  FA_WAIT(r, atomic_load(&g_part_handled) == sent,
          "%d partition casts returned OK, %d handled", sent,
          atomic_load(&g_part_handled));
  FA_EXPECT(r, atomic_load(&g_order_bad) == 0, "per-key order broken %d times",
            atomic_load(&g_order_bad));
  int np = weir_partitions(rt, ps);
  FA_WAIT(r, fa_nprocs(rt) == (uint64_t)(1 + np),
          "process count %llu, want 1 + %d partitions",
          (unsigned long long)fa_nprocs(rt), np);
  fa_stop(r);
}

/* ---- bounded mailboxes: DROP_OLDEST and REJECT ------------------------ */

static void sc_bounded(fa_run *r) {
  fa_start(r, NULL);
  weir_rt *rt = r->rt;
  fa_proc *dl = proc_new(), *w[2] = {proc_new(), proc_new()};
  weir_pid dlp = fa_spawn(r, dl, NULL);
  weir_pid wp[2];
  for (int i = 0; i < 2; i++) {
    weir_spawn_opts so;
    weir_spawn_opts_init(&so);
    so.max_queue_len = 4;
    so.overflow = i == 0 ? WEIR_OVERFLOW_DROP_OLDEST : WEIR_OVERFLOW_REJECT;
    wp[i] = fa_spawn(r, w[i], &so);
  }
  CHECK_OK(weir_dead_letter_subscribe(rt, dlp));
  fa_arm(r);

  for (int i = 0; i < 2; i++) {
    int gated = fa_gate(r, w[i]) == WEIR_OK && atomic_load(&w[i]->in_gate);
    int ok = 0, full = 0;
    for (int32_t j = 0; j < 10; j++) {
      int rc = i == 0 ? FA_RC(r, weir_cast(rt, wp[i], T_WORK, &j, sizeof j),
                              WEIR_OK, WEIR_ENOMEM)
                      : FA_RC(r, weir_cast(rt, wp[i], T_WORK, &j, sizeof j),
                              WEIR_OK, WEIR_EFULL, WEIR_ENOMEM);
      ok += rc == WEIR_OK;
      full += rc == WEIR_EFULL;
    }
    weir_proc_info info;
    memset(&info, 0, sizeof info);
    atomic_store(&w[i]->gate_open, 1);
    if (i == 0) {
      /* Every accepted cast is handled or shed, and a shed one counted. */
      FA_WAIT(r,
              weir_process_info(rt, wp[i], &info) == WEIR_OK &&
                  (uint64_t)atomic_load(&w[i]->casts) + info.dropped ==
                      (uint64_t)ok,
              "DROP_OLDEST: %d accepted, %d handled + %llu dropped", ok,
              atomic_load(&w[i]->casts), (unsigned long long)info.dropped);
      if (gated)
        FA_EXPECT(r, atomic_load(&w[i]->casts) <= 4,
                  "DROP_OLDEST: %d handled past a bound of 4",
                  atomic_load(&w[i]->casts));
      FA_WAIT(r,
              (uint64_t)atomic_load(&dl->dead_letters) == info.dropped ||
                  fa_fired(r),
              "%d dead letters for %llu shed messages",
              atomic_load(&dl->dead_letters), (unsigned long long)info.dropped);
      FA_EXPECT(r, (uint64_t)atomic_load(&dl->dead_letters) <= info.dropped,
                "more dead letters than shed messages");
    } else {
      FA_WAIT(r, atomic_load(&w[i]->casts) == ok,
              "REJECT: %d accepted, %d handled", ok, atomic_load(&w[i]->casts));
      CHECK_OK(weir_process_info(rt, wp[i], &info));
      FA_EXPECT(r, info.dropped == (uint64_t)full,
                "REJECT: %d refused, %llu counted", full,
                (unsigned long long)info.dropped);
      if (gated)
        FA_EXPECT(r, ok <= 4, "REJECT: %d accepted past a bound of 4", ok);
    }
  }
  fa_stop(r);
}

/* ---- alarms: subscribe, raise, clear ---------------------------------- */

static void sc_alarm(fa_run *r) {
  fa_start(r, NULL);
  weir_rt *rt = r->rt;
  fa_proc *sub = proc_new(), *w = proc_new();
  weir_pid subp = fa_spawn(r, sub, NULL);
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.alarm_enable = 3;
  so.alarm_disable = 1;
  weir_pid wp = fa_spawn(r, w, &so);
  fa_arm(r);

  int rs = FA_RC(r, weir_alarm_subscribe(rt, subp), WEIR_OK, WEIR_ENOMEM);
  int gated = fa_gate(r, w) == WEIR_OK && atomic_load(&w->in_gate);
  int ok = 0;
  for (int32_t j = 0; j < 6; j++)
    ok += FA_RC(r, weir_cast(rt, wp, T_WORK, &j, sizeof j), WEIR_OK,
                WEIR_ENOMEM) == WEIR_OK;
  if (gated && ok >= 3) {
    /* The sampler raises long_message_queue within a sample or two. */
    if (rs == WEIR_OK)
      FA_WAIT(r, ev_alarms(sub->id, wp.id, 1) == 1,
              "subscribed, queue at %d >= 3; no alarm came", ok);
    atomic_store(&w->gate_open, 1);
    if (rs == WEIR_OK)
      FA_WAIT(r, ev_alarms(sub->id, wp.id, 0) == 1,
              "the queue drained; no alarm-cleared came");
  }
  atomic_store(&w->gate_open, 1);
  FA_WAIT(r, atomic_load(&w->casts) == ok, "%d casts accepted, %d handled", ok,
          atomic_load(&w->casts));
  FA_RC(r, weir_alarm_unsubscribe(rt, subp),
        rs == WEIR_OK ? WEIR_OK : WEIR_ENOTFOUND);
  fa_stop(r);
}

/* ==== the driver ======================================================== */

typedef struct scenario {
  const char *name;
  void (*fn)(fa_run *r);
  int max_runs; /* 0 = the default cap */
} scenario;

static const scenario g_scen[] = {
    {"rt", sc_rt, 0},
    {"spawn", sc_spawn, 0},
    {"messages", sc_msg, 0},
    {"timers", sc_timer, 0},
    {"registry", sc_registry, 0},
    {"links", sc_links, 0},
    {"supervisor", sc_sup, 0},
    {"partsup", sc_partsup, 0},
    {"bounded", sc_bounded, 0},
    {"alarm", sc_alarm, 80},
};
#define NSCEN (sizeof g_scen / sizeof g_scen[0])

static uint64_t env_u64(const char *name, uint64_t def) {
  const char *v = getenv(name);
  return v && *v ? strtoull(v, NULL, 0) : def;
}

/* One run, in this process; returns its allocation count (from the arm
   to the end of the stop). */
static uint64_t run_one(const scenario *s, uint64_t n) {
  fa_run r;
  memset(&r, 0, sizeof r);
  r.scen = s->name;
  r.n = n;
  snprintf(g_replay, sizeof g_replay,
           "test_fault_alloc: died in scenario=%s N=%llu\n  replay: "
           "FAULT_SCENARIO=%s FAULT_N=%llu ./test_fault_alloc\n",
           s->name, (unsigned long long)n, s->name, (unsigned long long)n);
  procs_reset();
  long live0 = atomic_load(&g_live);
  atomic_store(&g_deadline_ms, test_now_ms() + g_limit_s * 1000ull);
  s->fn(&r);
  atomic_store(&g_deadline_ms, 0);
  CHECK(r.rt == NULL); /* every scenario ends with fa_stop */
  /* checks builds count pooled messages (-1 elsewhere): none may outlive
     weir_rt_stop, the signals a link or a monitor holds included */
  int64_t msgs = weir__msgs_live();
  if (msgs > 0)
    fa_fail(&r, __FILE__, __LINE__, "%lld messages not freed by weir_rt_stop",
            (long long)msgs);
  long leaked = atomic_load(&g_live) - live0;
  if (leaked != 0)
    fa_fail(&r, __FILE__, __LINE__,
            "%ld blocks allocated through weir's allocator not freed by "
            "weir_rt_stop",
            leaked);
  atomic_store(&g_live, live0); /* report each leak once */
  return r.end_at - r.armed_at;
}

/* What a forked run reports to the driver (shared anonymous mapping). */
typedef struct fa_report {
  uint64_t count;
  int failures, nsummary;
  char summary[8][200];
} fa_report;
static fa_report *g_report;

enum { EXIT_BROKEN = 3 }; /* a run that broke promises; ASan uses 1 */

static void note(const char *fmt, ...) TEST_PRINTF(1, 2);
static void note(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (g_nsummary < SUMMARY_MAX)
    vsnprintf(g_summary[g_nsummary++], sizeof g_summary[0], fmt, ap);
  va_end(ap);
  g_failures++;
}

/* One run in a child process, so that a crash, a hang or a leak found by
   LSan (at the child's exit) is charged to its (scenario, N) and the next
   run goes on. Returns the run's allocation count (0 if it died). */
static uint64_t run_forked(const scenario *s, uint64_t n, uint32_t limit_s) {
  fflush(stdout);
  fflush(stderr);
  memset(g_report, 0, sizeof *g_report);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    g_failures = 0; /* the child reports its own */
    g_nsummary = 0;
    uint64_t count = run_one(s, n);
    g_report->count = count;
    g_report->failures = g_failures;
    g_report->nsummary = g_nsummary < 8 ? g_nsummary : 8;
    for (int i = 0; i < g_report->nsummary; i++)
      memcpy(g_report->summary[i], g_summary[i], sizeof g_summary[i]);
    fflush(stdout);
    exit(g_failures ? EXIT_BROKEN : 0); /* exit(): LSan checks here */
  }
  uint64_t dl = test_now_ms() + (uint64_t)limit_s * 1000u;
  int st = 0;
  for (;;) {
    pid_t w = waitpid(pid, &st, WNOHANG);
    CHECK(w >= 0);
    if (w == pid) break;
    if (test_now_ms() > dl) {
      fprintf(stderr,
              "FAIL scenario=%s N=%llu: HANG (no end after %u s)\n  replay: "
              "FAULT_SCENARIO=%s FAULT_N=%llu ./test_fault_alloc\n",
              s->name, (unsigned long long)n, limit_s, s->name,
              (unsigned long long)n);
      kill(pid, SIGKILL);
      CHECK(waitpid(pid, &st, 0) == pid);
      note("scenario=%s N=%llu: HANG", s->name, (unsigned long long)n);
      return 0;
    }
    test_sleep_ms(1);
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return g_report->count;
  if (WIFEXITED(st) && WEXITSTATUS(st) == EXIT_BROKEN) {
    for (int i = 0; i < g_report->nsummary; i++)
      note("%s", g_report->summary[i]);
    g_failures += g_report->failures - g_report->nsummary;
    return g_report->count;
  }
  fprintf(stderr,
          "FAIL scenario=%s N=%llu: the run died (%s %d; a sanitizer report "
          "or a crash above)\n  replay: FAULT_SCENARIO=%s FAULT_N=%llu "
          "./test_fault_alloc\n",
          s->name, (unsigned long long)n,
          WIFEXITED(st) ? "exit status" : "signal",
          WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), s->name,
          (unsigned long long)n);
  note("scenario=%s N=%llu: died (%s %d)", s->name, (unsigned long long)n,
       WIFEXITED(st) ? "exit status" : "signal",
       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
  return 0;
}

/* The N to run for a scenario of `count` allocations: 1..50, then at most
   max_runs - 50 more, one random N in each equal stratum of the rest. */
static size_t plan(uint64_t count, uint64_t max_runs, test_rng *rng,
                   uint64_t *out, size_t cap) {
  size_t k = 0;
  uint64_t exact = count < 50 ? count : 50;
  if (max_runs == 0 || count <= max_runs) exact = count;
  for (uint64_t n = 1; n <= exact && k < cap; n++)
    out[k++] = n;
  if (exact == count) return k;
  uint64_t rest = count - exact, slots = max_runs > 50 ? max_runs - 50 : 0;
  for (uint64_t i = 0; i < slots && k < cap; i++) {
    uint64_t lo = exact + 1 + rest * i / slots;
    uint64_t hi = exact + rest * (i + 1) / slots; /* inclusive */
    if (hi < lo) continue;
    out[k++] = lo + test_rng_next(rng) % (hi - lo + 1);
  }
  return k;
}

int main(void) {
  static const weir_allocator counting = {ca_malloc, ca_realloc, ca_free, NULL};
  CHECK_OK(weir_set_allocator(&counting));
  signal(SIGABRT, on_abort);
#if defined(FA_ASAN) || defined(FA_TSAN)
  __sanitizer_set_death_callback(print_replay);
#else
  signal(SIGSEGV, on_abort);
  signal(SIGBUS, on_abort);
#endif
  setvbuf(stdout, NULL, _IOLBF, 0);

  g_wait_ms = (uint32_t)env_u64("FAULT_WAIT_MS", 3000);
  uint32_t limit_s = (uint32_t)env_u64("FAULT_RUN_S", 30);
  g_limit_s = limit_s;
  const char *only = getenv("FAULT_SCENARIO");
  uint64_t only_n = env_u64("FAULT_N", 0);
  int forked = env_u64("FAULT_FORK", 1) != 0 && !only_n;
  /* TSan is 5-15x slower: fewer runs there, every N up to 50 still. */
#if defined(FA_TSAN)
  uint64_t def_runs = 100;
#else
  uint64_t def_runs = 300;
#endif
  uint64_t max_runs = env_u64("FAULT_MAX_RUNS", def_runs);
  test_rng rng;
  test_rng_init(&rng, test_seed());
  if (forked) {
    g_report = mmap(NULL, sizeof *g_report, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(g_report != MAP_FAILED);
  } else {
    /* In process, a hang has no parent to notice it. */
    pthread_t wd;
    CHECK(pthread_create(&wd, NULL, watchdog_main, NULL) == 0);
    pthread_detach(wd);
  }

  uint64_t t0 = test_now_ms(), total_runs = 0, total_points = 0;
  int nscen = 0;
  for (size_t si = 0; si < NSCEN; si++) {
    const scenario *s = &g_scen[si];
    if (only && *only && strcmp(only, s->name) != 0) continue;
    nscen++;
    if (only_n) {
      run_one(s, only_n);
      total_runs++;
      test_log("[fault] scenario=%s N=%llu: %s", s->name,
               (unsigned long long)only_n, g_failures ? "FAILED" : "ok");
      continue;
    }
    uint64_t ts = test_now_ms();
    int fails0 = g_failures;
    uint64_t count = forked ? run_forked(s, 0, limit_s) : run_one(s, 0);
    if (g_failures != fails0) {
      note("scenario=%s fails with no fault injected", s->name);
      continue;
    }
    uint64_t cap = s->max_runs && (uint64_t)s->max_runs < max_runs
                       ? (uint64_t)s->max_runs
                       : max_runs;
    static uint64_t ns[4096];
    size_t k = plan(count, cap, &rng, ns, sizeof ns / sizeof ns[0]);
    for (size_t i = 0; i < k; i++) {
      if (forked)
        run_forked(s, ns[i], limit_s);
      else
        run_one(s, ns[i]);
    }
    total_runs += k + 1;
    total_points += count;
    test_log("[fault] scenario=%-10s allocations=%-4llu runs=%-4zu "
             "failures=%-3d %.1fs",
             s->name, (unsigned long long)count, k, g_failures - fails0,
             (double)(test_now_ms() - ts) / 1000.0);
  }
  CHECK_MSG(nscen > 0, "FAULT_SCENARIO=%s matches no scenario", only);
  test_log("[fault] %d scenarios, %llu allocation points, %llu runs, "
           "%d failures, %.1fs",
           nscen, (unsigned long long)total_points,
           (unsigned long long)total_runs, g_failures,
           (double)(test_now_ms() - t0) / 1000.0);
  if (g_failures) {
    fprintf(stderr, "test_fault_alloc: %d broken promises:\n", g_failures);
    for (int i = 0; i < g_nsummary; i++)
      fprintf(stderr, "  %s\n", g_summary[i]);
    return 1;
  }
  test_log("test_fault_alloc: ok");
  return 0;
}
