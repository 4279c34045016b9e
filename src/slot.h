/*
 * slot.h: the process slot, the data the mailbox (mailbox.c) and the
 * process (proc.c) share, and a process's context. Data only: the
 * functions are in the modules' own headers.
 */
#ifndef WEIR_SLOT_H
#define WEIR_SLOT_H

#include "msg.h"

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
  /* A supervisor's own figures: sup.c writes them, weir_supervisor_stats
     and the console's tree read them without a message. Each is a figure
     on its own (relaxed); sup_self, stored last with release, says whose
     they are, so a reader that sees its pid there sees that incarnation's
     strategy and limits. Plain fields behind WEIR__LD/ST and __atomic
     builtins, like the rest of the extras. */
  uint64_t sup_self; /* pid id of the supervisor, 0 = none */
  int32_t sup_strategy, sup_max_restarts, sup_max_seconds;
  int32_t sup_recent; /* restarts in the window, at the last one */
  uint64_t sup_restarts, sup_last_ns; /* ever; time of the last */
  /* A supervised child's: how often its spec was restarted (sup.c). */
  uint32_t child_restarts;
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

#endif
