/*
 * mailbox.c: the intrusive MPSC queue every process slot owns.
 *
 * Dmitry Vyukov's non-intrusive-stub MPSC queue, with Pony's trick for
 * scheduling: bit 0 of `head` means "the queue was found empty and the
 * process gave up its place in the run queues". A push is one atomic
 * exchange on head and one release store of the previous node's next. The
 * push whose exchange returns a marked pointer is the one sender that must
 * schedule the process: exactly one, because the mark can only be set again by
 * the consumer, and only while it holds the schedule token.
 *
 * Pop touches no shared read-modify-write: the consumer follows tail->next.
 * The node just popped stays as the queue's tail (Vyukov's "stub" role) until
 * the next pop frees it; its payload is therefore valid for the whole
 * callback it is handed to.
 *
 * Length and bytes: senders add to in_count/in_bytes beside head (the line a
 * send already owns), the consumer adds to out_count/out_bytes on its own
 * line; the length is the difference. Readers may see a difference that is a
 * message off in either direction, never more; diagnostics tolerate that.
 */
#include "internal.h"

void weir__mbox_init(weir__proc *p) {
  atomic_store_explicit(&p->stub.next, NULL, memory_order_relaxed);
  p->tail = &p->stub;
  p->front = NULL;
  /* Starts empty and unscheduled: the first push schedules. */
  atomic_store_explicit(&p->head, (uintptr_t)&p->stub | 1u,
                        memory_order_relaxed);
}

bool weir__mbox_push(weir__proc *p, weir__msg *m) {
  atomic_store_explicit(&m->node.next, NULL, memory_order_relaxed);
  /* acq_rel: release publishes m's contents to whoever follows prev->next;
     acquire pairs with the consumer's markempty CAS so the sender that sees
     the mark also sees every write the consumer made before giving up. */
  uintptr_t prev = atomic_exchange_explicit(&p->head, (uintptr_t)&m->node,
                                            memory_order_acq_rel);
  weir__node *pm = (weir__node *)(prev & ~(uintptr_t)1);
  /* release: the consumer's acquire load of next sees m's contents. */
  atomic_store_explicit(&pm->next, &m->node, memory_order_release);
  return (prev & 1u) != 0;
}

static void node_free(weir__proc *p, weir__node *n) {
  if (n != &p->stub) weir__msg_free((weir__msg *)n);
}

/* Consumer-owned counters: a plain load and store, relaxed, because only the
   consumer writes them and readers tolerate a stale value. */
static inline void count_out(weir__proc *p, weir__msg *m) {
  if (WEIR__UNLIKELY(m->flags & WEIR__MF_BUDGET)) {
    /* relaxed: a budget figure, ordering nothing */
    atomic_fetch_sub_explicit(&p->rt->queued_bytes, m->len,
                              memory_order_relaxed);
    m->flags &= (uint16_t)~WEIR__MF_BUDGET;
  }
  atomic_store_explicit(
      &p->out_count,
      atomic_load_explicit(&p->out_count, memory_order_relaxed) + 1,
      memory_order_relaxed);
  atomic_store_explicit(
      &p->out_bytes,
      atomic_load_explicit(&p->out_bytes, memory_order_relaxed) + m->len,
      memory_order_relaxed);
}

void weir__mbox_unpop(weir__proc *p, weir__msg *copy) {
  atomic_store_explicit(&copy->node.next, (weir__node *)p->front,
                        memory_order_relaxed);
  p->front = copy;
  atomic_store_explicit(
      &p->out_count,
      atomic_load_explicit(&p->out_count, memory_order_relaxed) - 1,
      memory_order_relaxed);
  atomic_store_explicit(
      &p->out_bytes,
      atomic_load_explicit(&p->out_bytes, memory_order_relaxed) - copy->len,
      memory_order_relaxed);
}

weir__msg *weir__mbox_pop(weir__proc *p) {
  weir__msg *f = p->front;
  if (f) { /* requeued messages come first; they are not tail nodes, so
               the caller frees them (WEIR__MF_FRONT tells) */
    p->front =
        (weir__msg *)atomic_load_explicit(&f->node.next, memory_order_relaxed);
    atomic_store_explicit(&f->node.next, NULL, memory_order_relaxed);
    f->flags |= WEIR__MF_FRONT;
    count_out(p, f);
    return f;
  }
  weir__node *tail = p->tail;
  /* acquire: pairs with the push's release store of next. */
  weir__node *next = atomic_load_explicit(&tail->next, memory_order_acquire);
  if (!next) return NULL;
  p->tail = next;
  node_free(p, tail);
  weir__msg *m = (weir__msg *)next; /* node is a message's first member */
  count_out(p, m);
  return m;
}

bool weir__mbox_markempty(weir__proc *p) {
  uintptr_t expect = (uintptr_t)p->tail;
  /* acq_rel: release hands the process's state to the next sender that
     schedules it (it acquires in its exchange); acquire because on failure
     we keep running and must see the new message. */
  return atomic_compare_exchange_strong_explicit(&p->head, &expect, expect | 1u,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire);
}

/* in first, then out: both only grow, so the difference can under-count
   what arrived meanwhile but never reports more than was ever queued at
   once (reading out first could: pops and pushes between the two loads
   would both count). acquire keeps the second load after the first. */
uint64_t weir__mbox_len(const weir__proc *p) {
  uint64_t in = atomic_load_explicit(&p->in_count, memory_order_acquire);
  uint64_t out = atomic_load_explicit(&p->out_count, memory_order_relaxed);
  return in > out ? in - out : 0;
}

uint64_t weir__mbox_bytes(const weir__proc *p) {
  uint64_t in = atomic_load_explicit(&p->in_bytes, memory_order_acquire);
  uint64_t out = atomic_load_explicit(&p->out_bytes, memory_order_relaxed);
  return in > out ? in - out : 0;
}

void weir__mbox_destroy(weir__proc *p) {
  weir__msg *m;
  while ((m = weir__mbox_pop(p)) != NULL) {
    /* pop freed the previous tail; m becomes the tail (or is a front copy) */
    if (m->flags & WEIR__MF_FRONT) weir__msg_free(m);
  }
  node_free(p, p->tail);
  p->tail = &p->stub;
}
