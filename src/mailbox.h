/*
 * mailbox.h: mailbox.c, a slot's queue (Vyukov's intrusive MPSC): many
 * senders push, the one holder of the schedule token pops.
 */
#ifndef WEIR_MAILBOX_H
#define WEIR_MAILBOX_H

#include "slot.h"

void weir__mbox_init(weir__proc *p);
/* Pushes m; returns true if the mailbox was empty-and-unscheduled, in which
   case the caller (exactly one sender) must schedule the process. */
bool weir__mbox_push(weir__proc *p, weir__msg *m);
/* Pushes first..last, already linked in order (last's next NULL), with one
   exchange; returns as weir__mbox_push. */
bool weir__mbox_push_chain(weir__proc *p, weir__msg *first, weir__msg *last);
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

/* For WEIR__ASSERT: is the schedule token taken? Bit 0 of head set means
   the mailbox was found empty and nobody holds the token; clear, that
   somebody does (only the holder may set it again). So the check cannot
   tell which thread holds it, only that one does: a consumer-only call
   made while the process is idle is caught. */
static inline bool weir__mbox_token_taken(const weir__proc *p) {
  /* relaxed: the holder set the bit clear itself or acquired the state
     of whoever did (the run queue, the HELD store), and nobody else can
     set it: a holder never reads it set */
  return (atomic_load_explicit(&p->head, memory_order_relaxed) & 1u) == 0;
}

#endif
