/*
 * msg.c: messages. One allocation per message from the pools (alloc.c): the
 * header, then the kind's runtime prefix, then the user's bytes, copied so
 * the sender may reuse its buffer. The mailbox links messages through their
 * first member; the receiver frees them.
 */
#include "internal.h"

#ifdef WEIR_CHECKS
/* Messages allocated and not yet freed, all runtimes together: a test reads
   it after weir_rt_stop (0 = nothing leaked). Relaxed: a count, ordered by
   the joins of the threads that allocate. Checks builds only: one shared
   counter per message would cost a fan-in its cache line. */
static _Atomic int64_t g_live;
#endif

int64_t weir__msgs_live(void) {
#ifdef WEIR_CHECKS
  return atomic_load_explicit(&g_live, memory_order_relaxed);
#else
  return -1;
#endif
}

weir__msg *weir__msg_new(uint32_t kind, uint32_t tag, uint32_t len) {
  weir__msg *m = weir__pool_alloc(weir__msg_size(len));
  if (!m) return NULL;
#ifdef WEIR_CHECKS
  atomic_fetch_add_explicit(&g_live, 1, memory_order_relaxed);
#endif
  m->from = 0;
  m->tag = tag;
  m->len = len;
  m->gen = 0;
  m->kind = (uint16_t)kind;
  m->flags = 0;
  return m;
}

void weir__msg_free(weir__msg *m) {
#ifdef WEIR_CHECKS
  atomic_fetch_sub_explicit(&g_live, 1, memory_order_relaxed);
#endif
  weir__pool_free(m, weir__msg_size(m->len));
}

/* Payload prefix per kind: bytes of runtime data before the user's bytes. */
uint32_t weir__kind_prefix(uint32_t kind) {
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
