/*
 * msg.h: msg.c, messages: their kinds, layout, allocation (pooled) and the
 * runtime prefix each kind carries before the user's bytes.
 */
#ifndef WEIR_MSG_H
#define WEIR_MSG_H

#include "alloc.h"

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

/* A request a thread asks a process to run in its own context. */
typedef struct weir__syscall {
  void (*fn)(weir_ctx *cx, void *arg);
  void *arg;
} weir__syscall;

/* A runtime signal's payload: ref (8), aux (8), reason (4), pad (4). */
#define WEIR__SIG_PREFIX 24u
#ifdef WEIR_CHECKS
/* Messages allocated and not yet freed, all runtimes together: a test reads
   it after weir_rt_stop (0 = nothing leaked). Relaxed: a count, ordered by
   the joins of the threads that allocate. Checks builds only: one shared
   counter per message would cost a fan-in its cache line. */
extern _Atomic int64_t weir__msg_live;
#endif

/* Inline, as every send allocates one and every receive frees one. */
static inline weir__msg *weir__msg_new(uint32_t kind, uint32_t tag,
                                       uint32_t len) {
  weir__msg *m = weir__pool_alloc(weir__msg_size(len));
  if (!m) return NULL;
#ifdef WEIR_CHECKS
  atomic_fetch_add_explicit(&weir__msg_live, 1, memory_order_relaxed);
#endif
  m->from = 0;
  m->tag = tag;
  m->len = len;
  m->gen = 0;
  m->kind = (uint16_t)kind;
  m->flags = 0;
  return m;
}

static inline void weir__msg_free(weir__msg *m) {
#ifdef WEIR_CHECKS
  atomic_fetch_sub_explicit(&weir__msg_live, 1, memory_order_relaxed);
#endif
  weir__pool_free(m, weir__msg_size(m->len));
}
/* Messages not yet freed (all runtimes), or -1 without WEIR_CHECKS. */
int64_t weir__msgs_live(void);

/* Bytes of runtime data before the user's payload, per message kind. */
static inline uint32_t weir__kind_prefix(uint32_t kind) {
  switch (kind) {
  case WEIR__K_CAST:
  case WEIR__K_WAKE:
  case WEIR__K_STOP:
    return 0;
  case WEIR__K_CALL:
    return (uint32_t)sizeof(weir_from);
  case WEIR__K_SYSCALL:
    return (uint32_t)sizeof(weir__syscall);
  case WEIR__K_EXIT:
  case WEIR__K_LINK:
  case WEIR__K_UNLINK:
  case WEIR__K_MONITOR:
  case WEIR__K_DEMONITOR:
  case WEIR__K_DOWN:
    return WEIR__SIG_PREFIX; /* ref, aux, int32 reason, pad */
  default:
    return (uint32_t)sizeof(weir_ref);
  }
}

#endif
