/*
 * internal.h: the runtime's private structures, shared by the modules in
 * src/. Nothing here is API; names are weir__ (exported only to the static
 * library, for the tests).
 *
 * The central object is the process slot (weir__proc). A slot owns a mailbox
 * that outlives any one incarnation of a process: a pid is (generation, slot)
 * and every queued message is stamped with the generation it was sent to. A
 * message whose generation the slot no longer accepts is a dead letter. So a
 * sender that raced with the receiver's exit never touches freed memory (slots
 * are type-stable until weir_rt_stop), and a supervisor can restart a child in
 * the same slot so that the next incarnation inherits the queued messages.
 */
#ifndef WEIR_INTERNAL_H
#define WEIR_INTERNAL_H

#include "weir.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define WEIR__CACHELINE   64
#define WEIR__ALIGNED     __attribute__((aligned(WEIR__CACHELINE)))
#define WEIR__UNUSED(x)   ((void)(x))
#define WEIR__LIKELY(x)   __builtin_expect(!!(x), 1)
#define WEIR__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Fields a slot's spawner writes while stale senders of the previous
   incarnation may still read them (bounds, route, flags): relaxed atomic
   accesses, so the race is defined; the values a sender acts on are
   published by the release store of gen (see proc.c). */
/* Hot thread-locals use the initial-exec model: a direct offset from the
   thread pointer instead of a __tls_get_addr call per access (libweir is
   linked at program start, not dlopen'ed late; the few bytes fit the static
   TLS surplus glibc reserves). */
#define WEIR__TLS __thread __attribute__((tls_model("initial-exec")))

#define WEIR__LD(f)    __atomic_load_n(&(f), __ATOMIC_RELAXED)
#define WEIR__ST(f, v) __atomic_store_n(&(f), (v), __ATOMIC_RELAXED)

/* memcpy for payloads: most are a few dozen bytes, and a call into libc's
   memcpy for 24 bytes costs more than the copy. Overlapping fixed-size
   moves cover 4..32 bytes; the rest goes to memcpy. */
static inline void weir__copy(void *dst, const void *src, size_t n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  if (n > 32) {
    memcpy(d, s, n);
  } else if (n >= 16) {
    memcpy(d, s, 8);
    memcpy(d + 8, s + 8, 8);
    memcpy(d + n - 16, s + n - 16, 8);
    memcpy(d + n - 8, s + n - 8, 8);
  } else if (n >= 8) {
    memcpy(d, s, 8);
    memcpy(d + n - 8, s + n - 8, 8);
  } else if (n >= 4) {
    memcpy(d, s, 4);
    memcpy(d + n - 4, s + n - 4, 4);
  } else {
    for (size_t i = 0; i < n; i++)
      d[i] = s[i];
  }
}

static inline void weir__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

uint64_t weir__now_ns(void); /* CLOCK_MONOTONIC */

/* ---- alloc.c: the one door for memory --------------------------------- */
void *weir__malloc(size_t n);
void *weir__calloc(size_t n, size_t size);
void *weir__realloc(void *p, size_t n);
void weir__free(void *p);
char *weir__strdup(const char *s);
/* Pooled objects (messages, process slots): per-thread caches, cross-thread
   frees returned to a shared list in batches. */
void *weir__pool_alloc(size_t n);
void weir__pool_free(void *p, size_t n);
void weir__pools_acquire(void); /* a runtime starts */
void weir__pools_release(void); /* a runtime stopped; last one frees slabs */
/* Fault injection for tests: the nth allocation from now fails (0 = off). */
void weir__alloc_fail_nth(uint64_t n);
uint64_t weir__alloc_count(void); /* allocations made so far */

/* ---- messages --------------------------------------------------------- */
enum {
  WEIR__K_CAST = 1, /* handle_cast */
  WEIR__K_CALL,     /* handle_call; payload prefix: weir_from */
  WEIR__K_INFO,     /* handle_info (send, timers); prefix: weir_ref */
  WEIR__K_REPLY,    /* call_async reply; prefix: weir_ref */
  WEIR__K_EXIT,     /* exit signal; data: int32 reason */
  WEIR__K_LINK,
  WEIR__K_UNLINK,
  WEIR__K_MONITOR,   /* prefix: weir_ref */
  WEIR__K_DEMONITOR, /* prefix: weir_ref */
  WEIR__K_DOWN,      /* prefix: weir_ref; data: int32 reason */
  WEIR__K_TIMEOUT,   /* call_async timeout; prefix: weir_ref */
  WEIR__K_STOP,      /* drain what is queued before it, then exit SHUTDOWN */
  WEIR__K_WAKE,      /* schedules the process; carries nothing */
  WEIR__K_SYSCALL    /* runtime-internal request run inside the process;
                        data: weir__syscall */
};

typedef struct weir__node { /* a queue link; first member of a message */
  _Atomic(struct weir__node *) next;
} weir__node;

typedef struct weir__msg {
  weir__node node; /* Vyukov link (must stay first) */
  uint64_t from;   /* sender pid id */
  uint32_t tag;
  uint32_t len;   /* payload bytes including the kind's prefix */
  uint32_t gen;   /* generation of the receiver it was sent to */
  uint16_t kind;  /* WEIR__K_* */
  uint16_t flags; /* WEIR__MF_*; bits 8-15: partition epoch */
} weir__msg;      /* payload follows, 8-byte aligned */

#define WEIR__MF_ROUTED  1u /* sent through a partition router */
#define WEIR__MF_NOBOUND 2u /* runtime message: not counted against bounds */
#define WEIR__MF_FRONT   4u /* popped from the requeue list: caller frees */
#define WEIR__MF_BUDGET  8u /* counted in the node's mailbox budget */
#define WEIR__MF_DQ      16 /* DROP_OLDEST: in dq_len, a sender may evict */

static inline void *weir__msg_data(weir__msg *m) {
  return (void *)(m + 1);
}
static inline size_t weir__msg_size(uint32_t len) {
  return sizeof(weir__msg) + len;
}
weir__msg *weir__msg_new(uint32_t kind, uint32_t tag, uint32_t len);
void weir__msg_free(weir__msg *m);

/* A request a thread asks a process to run in its own context. */
typedef struct weir__syscall {
  void (*fn)(weir_ctx *cx, void *arg);
  void *arg;
} weir__syscall;

/* ---- processes -------------------------------------------------------- */
enum {
  WEIR__P_FREE = 0, /* slot unused */
  WEIR__P_LIVE,     /* an incarnation runs here */
  WEIR__P_EXITING,  /* ending: terminate, signals, drain */
  WEIR__P_HELD      /* ended, mailbox kept for a restart in this slot */
};

/* A link or a watcher's monitor carries the signal it will send when this
   process ends, allocated when the link is made: an exit under memory
   pressure can then never lose an EXIT or a DOWN (a supervisor that missed
   its child's exit would never restart it). */
typedef struct weir__link {
  weir_pid pid;
  struct weir__msg *sig; /* the EXIT to send pid at our exit */
} weir__link;

typedef struct weir__mon {
  weir_ref ref;
  weir_pid pid;
  uint8_t watcher;       /* 1: pid watches me; 0: I watch pid */
  struct weir__msg *sig; /* watcher: the DOWN to send pid at our exit */
} weir__mon;

typedef struct weir__pending {
  weir_ref ref; /* call_async ref (= its monitor ref) */
  weir_pid to;
  weir_ref timer; /* 0 = none */
} weir__pending;

/* Rarely-needed per-incarnation data, allocated on first use so that an idle
   process stays small. Owned by the process; touched only from its own run. */
typedef struct weir__ext {
  weir__link *links;
  uint32_t nlinks, caplinks;
  weir__mon *mons;
  uint32_t nmons, capmons;
  weir__pending *calls;
  uint32_t ncalls, capcalls;
} weir__ext;

/* Per-slot extras, allocated the first time a slot needs them (a bounded
   mailbox, a supervised child, a partition worker) and then kept, like the
   slot, until weir_rt_stop: type-stable, so a sender may read them without
   a lock. Reset for each incarnation by the spawner (token held). */
typedef struct weir__slotx {
  int push_timeout_ms;                  /* BLOCK */
  uint32_t alarm_enable, alarm_disable; /* 0 = node default */
  _Atomic uint64_t seen_out;   /* a lower bound of out_count, kept by the
                                  senders: while in - seen_out is under the
                                  bound, a send need not read the
                                  receiver's line at all */
  _Atomic uint32_t space_seq;  /* BLOCK: futex word, bumped on room */
  _Atomic uint32_t blocked;    /* BLOCK: senders waiting for room */
  _Atomic uint64_t dropped;    /* shed or refused (per incarnation) */
  _Atomic uint64_t high_water; /* longest queue seen (bounded only) */
  uint64_t supervisor;         /* pid id of the supervisor, 0 = none */
  int32_t partition;           /* -1 if none */
  /* routed messages of a resize in progress (consumer-owned) */
  weir__msg *defer_head, *defer_tail;
  /* DROP_OLDEST (overload.c): dq_mu orders the senders' pushes and
     evictions with the receiver's pops; dq_len/dq_bytes count the MF_DQ
     messages linked in the queue (the evictable ones), under dq_mu. */
  pthread_mutex_t dq_mu;
  uint64_t dq_len, dq_bytes;
} weir__slotx;

typedef struct weir__proc weir__proc;
struct weir__proc {
  /* ---- the senders' line: a send writes head and the counters, and reads
     the rest (written at spawn before gen is published) */
  _Atomic(uintptr_t) head;     /* Vyukov head; bit 0 = "empty, unscheduled" */
  _Atomic uint64_t in_count;   /* messages ever pushed to this slot */
  _Atomic uint64_t in_bytes;   /* payload bytes ever pushed */
  _Atomic uint32_t gen;        /* generation of the live incarnation */
  _Atomic uint32_t life;       /* WEIR__P_* */
  _Atomic uint32_t accept_gen; /* oldest generation whose messages count */
  _Atomic uint32_t kill;       /* generation with a pending KILL, or 0 */
  uint32_t max_len;
  uint8_t overflow;
  uint8_t blocking;
  uint8_t keep_on_exit; /* hold the mailbox for a restart (atomic access) */
  uint8_t shed_oldest;  /* bounded and overflow == DROP_OLDEST: senders
                           evict, pops take x->dq_mu (written under it) */
  uint64_t max_bytes;
  void *route; /* the partition supervisor routing here, or NULL */

  /* ---- the receiver's line (64 bytes in: the senders' line above is
     exactly 64; no alignment attribute, so a slot fits a 208-byte pool
     class: an idle process costs 208 bytes plus its table entry) */
  weir__node *tail;           /* consumer-owned */
  weir__msg *front;           /* requeued messages, consumer-owned */
  _Atomic uint64_t out_count; /* messages taken off the queue */
  _Atomic uint64_t out_bytes;
  const weir_server *srv;
  void *state;
  _Atomic(const char *) current; /* callback running now, or NULL */
  _Atomic uint64_t reductions;   /* callbacks run */

  /* ---- the rest: touched rarely */
  weir__node stub; /* the queue's initial node */
  weir_rt *rt;
  weir__ext *ext;
  weir__slotx *x; /* extras, or NULL (see weir__slotx) */
  _Atomic uint64_t messages_out;
  _Atomic uint64_t base_in;     /* in_count at this incarnation's start */
  uint32_t spawn_seq;           /* start order (mod 2^32), for top-down stop */
  _Atomic uint32_t state_bytes; /* weir_server.state_size at the last run
                                   (saturates at 4 GiB) */
  weir__proc *rq_next;          /* link in a shared run queue */
  char *name;                   /* registered name (owned), or NULL */
  uint32_t slot;
  _Atomic uint8_t status; /* weir_status for diagnostics */
  uint8_t trap_exit;      /* owner-only */
  uint8_t served_calls;   /* owner-only: took a call from a thread */
  /* WEIR__RX_*, tested once per message taken: WAKE (set at each
     incarnation: bounded and overflow == BLOCK) and TRACED (trace.c) */
  _Atomic uint8_t rx_flags;
};
#define WEIR__RX_WAKE   1u
#define WEIR__RX_TRACED 2u

struct weir_ctx {
  weir__proc *p;
  uint64_t self; /* p's pid id for this run (every send stamps it) */
  weir__msg *in_hand;
  int requeued;
  int exit_reason; /* set by weir_exit(self) */
  int exiting;
  /* for the crash report (report.c), set just before an abnormal exit */
  const char *crash_cb; /* the callback that failed, or "exit_signal" */
  weir__msg *crash_msg; /* the message in hand, or NULL */
  uint64_t exit_from;   /* exit signal: its sender's pid id, or 0 */
};

static inline uint32_t weir__pid_slot(weir_pid p) {
  return (uint32_t)(p.id & 0xffffffffu);
}
static inline uint32_t weir__pid_gen(weir_pid p) {
  return (uint32_t)(p.id >> 32);
}
static inline weir_pid weir__pid_make(uint32_t slot, uint32_t gen) {
  weir_pid p = {((uint64_t)gen << 32) | slot};
  return p;
}

/* mailbox.c */
void weir__mbox_init(weir__proc *p);
/* Pushes m; returns true if the mailbox was empty-and-unscheduled, in which
   case the caller (exactly one sender) must schedule the process. */
bool weir__mbox_push(weir__proc *p, weir__msg *m);
/* Consumer only: the next message, or NULL. The returned message stays the
   queue's tail node until the next pop, which frees it. */
weir__msg *weir__mbox_pop(weir__proc *p);
/* Consumer only: after pop returned NULL, try to mark the mailbox empty and
   give up the schedule token. false: a message arrived; keep running. */
bool weir__mbox_markempty(weir__proc *p);
/* Consumer only: puts a copy of a popped message back at the head. */
void weir__mbox_unpop(weir__proc *p, weir__msg *copy);
/* Consumer only: a popped message of len bytes counts as queued again
   (unpop, and a partition worker's deferred message). */
void weir__mbox_uncount(weir__proc *p, uint32_t len);
/* DROP_OLDEST, x->dq_mu held: unlinks the oldest MF_DQ message, which must
   not be the newest one queued (the caller pushed after it). */
weir__msg *weir__mbox_evict_oldest(weir__proc *p);
uint64_t weir__mbox_len(const weir__proc *p);
uint64_t weir__mbox_bytes(const weir__proc *p);
/* Consumer only: frees every queued node (runtime teardown). */
void weir__mbox_destroy(weir__proc *p);

/* proc.c */
weir__proc *weir__proc_get(weir_rt *rt, weir_pid pid); /* NULL if stale */
weir__proc *weir__proc_slot(weir_rt *rt, uint32_t slot);
weir_pid weir__proc_pid(const weir__proc *p);
/* Delivers a message to pid; stamps and schedules. Takes ownership of m in
   all cases (frees it on error). */
int weir__deliver(weir_rt *rt, weir_pid to, weir__msg *m);
/* The same to a slot (partition routing): also into a HELD slot waiting for
   its restart; ENOPROC unless the slot is still routed by `route`. */
int weir__deliver_slot(weir_rt *rt, weir__proc *p, void *route, weir__msg *m);
void weir__proc_run(weir__proc *p, unsigned budget);
/* Ends the incarnation; true if the slot is now HELD (the caller must not
   touch p afterwards: a restart may already own it). */
bool weir__proc_exit_now(weir_ctx *cx, int reason, weir__msg *in_hand);
weir__ext *weir__ext_get(weir__proc *p);
weir_ref weir__new_ref(weir_rt *rt);
/* Sends a runtime signal (kind, no tag) from `from` to `to`; its payload is
   ref (8), aux (8), reason (4), pad (4). */
#define WEIR__SIG_PREFIX 24u
int weir__signal(weir_rt *rt, weir_pid from, weir_pid to, uint32_t kind,
                 weir_ref ref, uint64_t aux, int32_t reason);
/* Records a link (and its exit signal); ENOMEM leaves nothing recorded. */
int weir__link_add(weir__ext *e, weir_pid pid);
/* Room for one more link, so that a later weir__link_add cannot fail. */
int weir__link_reserve(weir__ext *e);
/* sup.c and partsup.c */
typedef struct weir__partsup weir__partsup;
typedef struct weir__sup_def { /* a supervisor's definition (init's arg) */
  weir_sup_opts o;
  char name[64];
  weir_child_spec *c;
  char *ids; /* n x 64 bytes: the copied child ids */
  size_t n;
  weir__partsup *ps;
} weir__sup_def;
weir__sup_def *weir__sup_def_new(const weir_sup_opts *o,
                                 const weir_child_spec *c, size_t n);
void weir__sup_def_free(weir__sup_def *d);
int weir__sup_start_def(weir_rt *rt, weir__sup_def *d, weir__partsup *ps,
                        weir_pid *pid);
int weir__sup_resize_children(weir_rt *rt, weir_pid sup, unsigned n);
void *weir__partsup_child_arg(weir__partsup *ps, void *arg, unsigned partition);
void weir__partsup_set_slot(weir__partsup *ps, unsigned i, weir__proc *slot);
void weir__partsup_bind(weir__partsup *ps, weir__proc *self, void *sup);
void weir__partsup_unbind(weir__partsup *ps);
bool weir__partsup_admit(weir__proc *p, const weir__msg *m);
bool weir__partsup_done(weir__proc *p);
/* rt.c: objects that must live until the node stops (freed by fn then). */
int weir__retire(weir_rt *rt, void *obj, void (*fn)(void *));
/* Runs fn(cx, arg) inside process pid and waits for it (from a thread or a
   blocking process; inside pid itself it runs at once). fn gets cx NULL if
   the process ended first. EDEADLK from a scheduler thread. */
int weir__run_in(weir_rt *rt, weir_pid pid, void (*fn)(weir_ctx *, void *),
                 void *arg);

/* What a supervisor adds to a spawn. */
typedef struct weir__spawn_x {
  uint64_t supervisor;  /* pid id of the supervisor, 0 = none */
  int32_t partition;    /* -1 = none */
  uint8_t keep;         /* hold the mailbox at exit, for a restart */
  uint32_t accept_from; /* restart: oldest generation still accepted */
  void *route;          /* partition supervisor that routes here, or NULL */
} weir__spawn_x;
/* Spawns into slot p whose token the caller holds. On init failure with
   x->keep the slot is left HELD (token held), else it is freed. */
int weir__spawn_in(weir_rt *rt, weir__proc *p, const weir_server *srv,
                   void *arg, const weir_spawn_opts *so, const weir__spawn_x *x,
                   weir_pid *pid);
/* Spawn with extras; *slot (may be NULL) gets the slot used. */
int weir__spawn_ex(weir_rt *rt, const weir_server *srv, void *arg,
                   const weir_spawn_opts *so, const weir__spawn_x *x,
                   weir_pid *pid, weir__proc **slot);
void weir__proc_release_held(weir_rt *rt, weir__proc *p);
void weir__proc_undefer(weir__proc *p);
/* overload.c: admits m into bounded p (counts it) or sheds it. Consumes m
   on any error. */
int weir__bound_admit(weir_rt *rt, weir__proc *p, weir__msg *m);
/* BLOCK, after each pop: wakes the senders waiting for room. */
void weir__bound_popped(weir__proc *p);
/* At each incarnation (token held): turns sender-side eviction on or off
   for the slot (DROP_OLDEST with a bound). */
void weir__bound_mode(weir__proc *p, bool shed_oldest);
void weir__dead_letter_notify(weir_rt *rt, weir_pid to, weir__msg *m,
                              int reason);
/* bound_admit took m: shed it by the policy, or (DROP_OLDEST) queued it
   itself; the caller reports WEIR_OK to the sender and must not push. */
#define WEIR__SHED 1
/* Bytes of runtime data before the user's payload, per message kind. */
uint32_t weir__kind_prefix(uint32_t kind);
/* overload.c: called at each exit (after links/monitors were signalled). */
void weir__exit_hook(weir_rt *rt, weir__proc *p, weir_pid self, int reason);
void weir__overload_free(weir_rt *rt);
/* alarm.c */
void weir__rates(weir_rt *rt, weir__proc *p, double *in_rate, double *out_rate);
uint64_t weir__alarms_active(weir_rt *rt);
int weir__alarm_start(weir_rt *rt);
void weir__alarm_stop(weir_rt *rt);
/* report.c: crash and supervisor reports */
int weir__report_start(weir_rt *rt);
void weir__report_stop(weir_rt *rt);
/* An abnormal exit of cx's process (its thread, before links hear of it):
   cx->crash_cb, crash_msg and exit_from say how it died. */
void weir__report_exit(weir_ctx *cx, int reason);
typedef struct weir__sup_note { /* what a supervisor did about a child */
  weir_sup_action action;
  weir_pid restarted_as;
  int restarts, max_restarts, max_seconds;
  const char *sup_name, *child_id;
} weir__sup_note;
/* Completes child's pending crash report (none pending: nothing). */
void weir__report_sup(weir_rt *rt, weir_pid child, const weir__sup_note *n);
/* A supervisor gave up: its own report. */
void weir__report_gave_up(weir_rt *rt, weir_pid sup, weir_pid child,
                          const weir__sup_note *n);
typedef struct weir__report_count {
  char behaviour[64];
  uint64_t n;
} weir__report_count;
/* Crashes by behaviour (up to n into out; returns how many); *other: of
   behaviours past the table; *suppressed: reports not logged. */
size_t weir__report_counts(weir_rt *rt, weir__report_count *out, size_t n,
                           uint64_t *other, uint64_t *suppressed);
/* server.c */
int weir__calls_init(weir_rt *rt);
void weir__calls_server_gone(weir_rt *rt, weir_pid server);
/* trace.c: message tracing */
#define WEIR__TRACE_SESSIONS 16    /* open traces per node */
#define WEIR__TRACE_RING     256   /* events a session buffers */
#define WEIR__TRACE_TAGS     8     /* tags in one filter */
#define WEIR__TRACE_MAX_N    10000 /* hard caps of a console trace */
#define WEIR__TRACE_MAX_S    300
typedef struct weir__trace_ev {
  uint64_t t_ns; /* CLOCK_REALTIME */
  uint64_t from; /* sender pid id, 0 = a thread */
  uint32_t tag;  /* as the callback sees it */
  uint32_t len;  /* user payload bytes */
  uint8_t kind;  /* WEIR__K_* */
  uint8_t head_len;
  uint8_t head[16];
} weir__trace_ev;
typedef struct weir__trace {
  _Atomic uint64_t pid;     /* traced incarnation; 0 = closed */
  _Atomic uint32_t writers; /* the process inside record() */
  int open;                 /* under the state's mutex */
  uint32_t slot;
  uint32_t count; /* record at most this many */
  unsigned ntags; /* 0 = every tag */
  uint32_t tags[WEIR__TRACE_TAGS];
  _Atomic uint64_t seen;               /* matched: recorded + lost */
  _Atomic uint64_t lost;               /* matched while the ring was full */
  _Atomic uint64_t head WEIR__ALIGNED; /* the writer's */
  _Atomic uint64_t tail WEIR__ALIGNED; /* the reader's */
  weir__trace_ev ring[WEIR__TRACE_RING];
} weir__trace;
int weir__trace_start(weir_rt *rt);
void weir__trace_stop(weir_rt *rt);
/* The traced process took m (self: its pid id). */
void weir__trace_msg(weir_rt *rt, uint64_t self, const weir__msg *m);
/* Opens a session on pid for count messages with one of tags (ntags 0:
   any). Errors: EINVAL, ENOPROC, ELIMIT (WEIR__TRACE_SESSIONS open),
   ENOMEM. */
int weir__trace_open(weir_rt *rt, weir_pid pid, uint32_t count,
                     const uint32_t *tags, unsigned ntags, weir__trace **t);
/* The reader's side: up to n events, oldest first. */
size_t weir__trace_read(weir__trace *t, weir__trace_ev *out, size_t n);
void weir__trace_counts(weir__trace *t, uint64_t *seen, uint64_t *lost,
                        bool *drained);
void weir__trace_close(weir_rt *rt, weir__trace *t);
/* console.c */
int weir__console_start(weir_rt *rt, const char *path);
void weir__console_stop(weir_rt *rt);
/* registry.c */
void weir__registry_name(weir_rt *rt, weir__proc *p, char *buf, size_t n);
/* p: the slot it was queued in (for the dead letter's `to`), or NULL. */
void weir__dead_letter(weir_rt *rt, weir__proc *p, weir__msg *m, int reason);
/* Runs fn(cx, arg) inside process pid, asynchronously. */
int weir__syscall_send(weir_rt *rt, weir_pid pid,
                       void (*fn)(weir_ctx *, void *), void *arg);

/* sched.c */
typedef struct weir__sched weir__sched;
void weir__schedule(weir_rt *rt, weir__proc *p);
int weir__sched_start(weir_rt *rt);
void weir__sched_stop(weir_rt *rt);
void weir__sched_watchdog(weir_rt *rt);
bool weir__on_scheduler(void); /* current thread is a scheduler thread */
/* The process running on this thread (a thread-local, inlined: every send
   reads it). */
extern WEIR__TLS weir_ctx *weir__tl_cx;
static inline weir_ctx *weir__current_ctx(void) {
  return weir__tl_cx;
}
static inline void weir__set_current_ctx(weir_ctx *cx) {
  weir__tl_cx = cx;
}

/* iopool.c */
int weir__io_start(weir_rt *rt);
void weir__io_stop(weir_rt *rt);
void weir__io_schedule(weir_rt *rt, weir__proc *p);
bool weir__on_io_thread(void);

/* timer.c */
int weir__timer_start(weir_rt *rt);
void weir__timer_stop(weir_rt *rt);
int weir__timer_add(weir_rt *rt, uint64_t due_ns, weir_pid to, weir__msg *m,
                    weir_ref ref);
int weir__timer_cancel(weir_rt *rt, weir_ref ref);

/* registry.c */
int weir__registry_init(weir_rt *rt);
void weir__registry_free(weir_rt *rt);
void weir__registry_drop_pid(weir_rt *rt, weir__proc *p);

/* server.c */
void weir__calls_free(weir_rt *rt);
int weir__reply_to(weir_rt *rt, weir_pid self, weir_from from, const void *d,
                   uint32_t len);
void weir__call_fail(weir_rt *rt, weir_from from, int err);
/* Takes a pending call_async entry: why 0 = reply (demonitor, cancel
   timer), 1 = timeout (demonitor), 2 = down (cancel timer). false if the
   ref is not pending. */
bool weir__pending_take(weir__proc *p, weir_ref ref, int why);

/* The node. */
typedef struct weir__waiter weir__waiter;
struct weir_rt {
  weir_rt_opts opts;
  char *node_name;
  char *console_path;
  uint64_t rt_id;
  uint64_t start_ns;
  _Atomic int stopping;

  /* process table */
  _Atomic(weir__proc *) *slots;
  uint32_t max_processes;
  pthread_mutex_t table_mu;
  uint32_t *free_slots; /* stack of free slot indexes */
  uint32_t nfree;
  uint32_t next_fresh; /* slots never used start here */
  _Atomic uint64_t nprocs;
  _Atomic uint64_t spawn_seq;
  _Atomic uint64_t next_ref;

  /* counters for node_stats */
  _Atomic uint64_t spawned, exited, crashed, sent, dead_letters, dropped;
  _Atomic uint64_t queued_bytes; /* node-wide, for the budget */

  /* schedulers */
  weir__sched *scheds;
  unsigned nscheds;
  _Atomic unsigned nsleeping;
  _Atomic unsigned nspinning;
  pthread_mutex_t inject_mu; /* the shared queue from outside threads */
  weir__proc *inject_head, *inject_tail;
  _Atomic uint64_t inject_len;

  /* I/O pool */
  pthread_mutex_t io_mu;
  pthread_cond_t io_cv;
  weir__proc *io_head, *io_tail;
  unsigned io_live, io_idle, io_max;
  int io_stop;

  /* timers */
  pthread_t timer_thread;
  pthread_mutex_t timer_mu;
  pthread_cond_t timer_cv;
  void *timers; /* timer.c's heap */
  int timer_stop;

  /* calls from threads */
  pthread_mutex_t calls_mu;
  weir__waiter **waiters;
  uint32_t nwaiters, capwaiters;

  /* registry */
  pthread_mutex_t reg_mu;
  void *registry;

  /* subscribers */
  pthread_mutex_t sub_mu;
  weir_pid *alarm_subs;
  size_t nalarm_subs;
  weir_pid dead_letter_sub;

  /* objects freed at stop */
  pthread_mutex_t retire_mu;
  struct weir__retired *retired;

  /* hooks for later modules (supervisors, console, alarms) */
  void *console;
  void *alarm;
  void *report; /* report.c */
  void *trace;  /* trace.c */
};

extern _Atomic uint64_t weir__rt_ids;

/* ---- console.c: the request parser (pure, fuzzed) ---------------------
   Added by the diagnostics work; a pure addition. */
#define WEIR__CONSOLE_LINE_MAX 1024  /* bytes of one request, newline aside */
#define WEIR__CONSOLE_MAX_N    1000  /* proc_count / proc_window N */
#define WEIR__CONSOLE_MAX_MS   60000 /* proc_window / scheduler_usage MS */
typedef enum {
  WEIR__CMD_HELP = 0,
  WEIR__CMD_PROC_COUNT,
  WEIR__CMD_PROC_WINDOW,
  WEIR__CMD_INFO,
  WEIR__CMD_PARTITIONS,
  WEIR__CMD_NODE_STATS,
  WEIR__CMD_SCHEDULER_USAGE,
  WEIR__CMD_ALARMS,
  WEIR__CMD_METRICS,
  WEIR__CMD_CRASHES,
  WEIR__CMD_TRACE,    /* trace PID|NAME N SECS TAGS */
  WEIR__CMD_TRACE_KEY /* trace_key NAME KEY N SECS TAGS */
} weir__console_cmd;
typedef struct weir__console_req {
  weir__console_cmd cmd;
  weir_attr attr; /* proc_count, proc_window */
  uint32_t n;     /* proc_count, proc_window: 1..WEIR__CONSOLE_MAX_N */
  uint32_t ms;    /* proc_window, scheduler_usage: 1..WEIR__CONSOLE_MAX_MS */
  int has_pid;    /* info: arg parsed as a pid */
  weir_pid pid;
  char name[64]; /* info NAME, partitions NAME, trace PID|NAME */
  /* trace, trace_key: n = messages (1..WEIR__TRACE_MAX_N), secs
     (1..WEIR__TRACE_MAX_S), tags (ntags 0 = every tag) */
  uint32_t secs;
  unsigned ntags;
  uint32_t tags[WEIR__TRACE_TAGS];
  int key_is_int; /* trace_key: KEY all digits (an integer key) */
  uint64_t key;   /* ... its value, or XXH3-64 of its bytes */
  char key_text[64];
} weir__console_req;
/* Parses one request line of len bytes (no newline; a trailing CR is
   ignored). Pure: no I/O, no allocation. Returns WEIR_OK, or WEIR_EINVAL
   with a human message in err (always NUL-terminated if errn > 0). */
int weir__console_parse(const char *line, size_t len, weir__console_req *req,
                        char *err, size_t errn);
/* Idle timeout of a console client, ms (tests shorten it). */
extern _Atomic uint32_t weir__console_idle_ms;
/* ---- end of the console block ------------------------------------------ */

#endif
