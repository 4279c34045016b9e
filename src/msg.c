/*
 * msg.c: messages. One allocation per message from the pools (alloc.c): the
 * header, then the kind's runtime prefix, then the user's bytes, copied so
 * the sender may reuse its buffer. The mailbox links messages through their
 * first member; the receiver frees them.
 */
#include "internal.h"

#ifdef WEIR_CHECKS
_Atomic int64_t weir__msg_live;
#endif

int64_t weir__msgs_live(void) {
#ifdef WEIR_CHECKS
  return atomic_load_explicit(&weir__msg_live, memory_order_relaxed);
#else
  return -1;
#endif
}
