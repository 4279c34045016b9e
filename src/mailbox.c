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
 *
 * DROP_OLDEST mailboxes (p->shed_oldest) keep the same queue, but a sender
 * that finds the bound passed unlinks the oldest message itself (overload.c).
 * So there every pop, and every write of out_count/out_bytes (an eviction
 * counts as taken off the queue), holds the slot's x->dq_mu; senders evict
 * under it too. Lock-free pushes (runtime signals) still mix in: an eviction
 * only unlinks a node whose successor link is written, never the head, so
 * it cannot race with them. Every other mailbox pays one predictable branch
 * per pop for this.
 *
 * Debug builds check the consumer's rules (WEIR__ASSERT): the consumer-only
 * calls find the token taken (head unmarked), and a DROP_OLDEST mailbox's
 * counters and evictions find its dq_mu held by the caller.
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
  return weir__mbox_push_chain(p, m, m);
}

bool weir__mbox_push_chain(weir__proc *p, weir__msg *first, weir__msg *last) {
  /* acq_rel: release publishes the chain's contents and links to whoever
     follows prev->next; acquire pairs with the consumer's markempty CAS so
     the sender that sees the mark also sees every write the consumer made
     before giving up. */
  uintptr_t prev = atomic_exchange_explicit(&p->head, (uintptr_t)&last->node,
                                            memory_order_acq_rel);
  weir__node *pm = (weir__node *)(prev & ~(uintptr_t)1);
  /* release: the consumer's acquire load of next sees the chain. */
  atomic_store_explicit(&pm->next, &first->node, memory_order_release);
  return (prev & 1u) != 0;
}

static void node_free(weir__proc *p, weir__node *n) {
  if (n != &p->stub) weir__msg_free((weir__msg *)n);
}

/* Consumer-owned counters: a plain load and store, relaxed, because only the
   consumer writes them and readers tolerate a stale value. */
static void count_out_rare(weir__proc *p, weir__msg *m) {
  if (m->flags & WEIR__MF_BUDGET) {
    /* relaxed: a budget figure, ordering nothing */
    atomic_fetch_sub_explicit(&p->rt->queued_bytes, m->len,
                              memory_order_relaxed);
    m->flags &= (uint16_t)~WEIR__MF_BUDGET;
  }
  if (m->flags & WEIR__MF_DQ) {
    /* Queued for an earlier DROP_OLDEST incarnation of this slot: it still
       counts in dq_len, which a later one would inherit. */
    weir__slotx *sx = p->x;
    weir__lock(&sx->dq_mu, WEIR__LK_DQ);
    sx->dq_len--;
    sx->dq_bytes -= m->len;
    weir__unlock(&sx->dq_mu, WEIR__LK_DQ);
    m->flags &= (uint16_t)~WEIR__MF_DQ;
  }
}

static inline void count_out(weir__proc *p, weir__msg *m) {
  WEIR__ASSERT(!p->shed_oldest || weir__lock_held(&p->x->dq_mu));
  if (WEIR__UNLIKELY(m->flags & (WEIR__MF_BUDGET | WEIR__MF_DQ)))
    count_out_rare(p, m);
  atomic_store_explicit(
      &p->out_count,
      atomic_load_explicit(&p->out_count, memory_order_relaxed) + 1,
      memory_order_relaxed);
  atomic_store_explicit(
      &p->out_bytes,
      atomic_load_explicit(&p->out_bytes, memory_order_relaxed) + m->len,
      memory_order_relaxed);
}

void weir__mbox_uncount(weir__proc *p, uint32_t len) {
  WEIR__ASSERT(weir__mbox_token_taken(p));
  /* DROP_OLDEST: senders add evictions to out_count under dq_mu */
  bool locked = p->shed_oldest;
  if (WEIR__UNLIKELY(locked)) weir__lock(&p->x->dq_mu, WEIR__LK_DQ);
  atomic_store_explicit(
      &p->out_count,
      atomic_load_explicit(&p->out_count, memory_order_relaxed) - 1,
      memory_order_relaxed);
  atomic_store_explicit(
      &p->out_bytes,
      atomic_load_explicit(&p->out_bytes, memory_order_relaxed) - len,
      memory_order_relaxed);
  if (WEIR__UNLIKELY(locked)) weir__unlock(&p->x->dq_mu, WEIR__LK_DQ);
}

void weir__mbox_unpop(weir__proc *p, weir__msg *copy) {
  /* The copy is not MF_DQ (the pop cleared it): senders never evict a
     requeued message, it waits on the consumer's own front list. */
  atomic_store_explicit(&copy->node.next, (weir__node *)p->front,
                        memory_order_relaxed);
  p->front = copy;
  weir__mbox_uncount(p, copy->len);
}

/* DROP_OLDEST: the pop under dq_mu (see the top of the file). */
static weir__msg *pop_locked(weir__proc *p) {
  weir__slotx *sx = p->x;
  weir__lock(&sx->dq_mu, WEIR__LK_DQ);
  weir__msg *f = p->front;
  if (f) { /* requeued: never MF_DQ, but its count_out needs the lock */
    p->front =
        (weir__msg *)atomic_load_explicit(&f->node.next, memory_order_relaxed);
    atomic_store_explicit(&f->node.next, NULL, memory_order_relaxed);
    f->flags |= WEIR__MF_FRONT;
    count_out(p, f);
    weir__unlock(&sx->dq_mu, WEIR__LK_DQ);
    return f;
  }
  weir__node *tail = p->tail;
  /* acquire: pairs with the push's (or an eviction's) release store. */
  weir__node *next = atomic_load_explicit(&tail->next, memory_order_acquire);
  if (!next) {
    weir__unlock(&sx->dq_mu, WEIR__LK_DQ);
    return NULL;
  }
  p->tail = next;
  weir__msg *m = (weir__msg *)next;
  if (m->flags & WEIR__MF_DQ) {
    sx->dq_len--;
    sx->dq_bytes -= m->len;
    m->flags &= (uint16_t)~WEIR__MF_DQ;
  }
  count_out(p, m);
  weir__unlock(&sx->dq_mu, WEIR__LK_DQ);
  /* the old tail is behind p->tail: no sender looks at it any more */
  node_free(p, tail);
  return m;
}

weir__msg *weir__mbox_evict_oldest(weir__proc *p) {
  WEIR__ASSERT(p->shed_oldest && weir__lock_held(&p->x->dq_mu));
  weir__node *prev = p->tail, *n;
  for (;;) {
    /* acquire: the node's contents (its flags) were published by the
       release store that linked it. NULL: a lock-free push is between its
       exchange and its link; it completes shortly, as the consumer's own
       pop waits for it. */
    while (!(n = atomic_load_explicit(&prev->next, memory_order_acquire)))
      weir__cpu_relax();
    if (((weir__msg *)n)->flags & WEIR__MF_DQ) break;
    prev = n; /* a runtime signal, or queued before this slot's DROP_OLDEST
                 incarnation: not one to shed */
  }
  weir__node *after;
  /* n is older than the caller's push, so it is not the head: its
     successor is linked or about to be, and no push can link after it. */
  while (!(after = atomic_load_explicit(&n->next, memory_order_acquire)))
    weir__cpu_relax();
  /* release: the consumer (or the next evictor) that follows prev->next
     sees what `after`'s pusher published (acquired just above). */
  atomic_store_explicit(&prev->next, after, memory_order_release);
  weir__msg *m = (weir__msg *)n;
  m->flags &= (uint16_t)~WEIR__MF_DQ;
  atomic_store_explicit(&m->node.next, NULL, memory_order_relaxed);
  return m;
}

static weir__msg *pop(weir__proc *p) {
  if (WEIR__UNLIKELY(p->shed_oldest)) return pop_locked(p);
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
  /* The message after this one, if linked yet: its line comes from the
     sender's core, so start fetching it now, while this one is handled */
  weir__node *after = atomic_load_explicit(&next->next, memory_order_relaxed);
  if (after) __builtin_prefetch(after, 1);
  node_free(p, tail);
  weir__msg *m = (weir__msg *)next; /* node is a message's first member */
  count_out(p, m);
  return m;
}

weir__msg *weir__mbox_pop(weir__proc *p) {
  WEIR__ASSERT(weir__mbox_token_taken(p));
  return pop(p);
}

bool weir__mbox_markempty(weir__proc *p) {
  WEIR__ASSERT(weir__mbox_token_taken(p));
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

/* The node stops: nothing runs, so no token is taken (an idle slot's head
   is marked), and the pops need none. */
void weir__mbox_destroy(weir__proc *p) {
  weir__msg *m;
  while ((m = pop(p)) != NULL) {
    /* pop freed the previous tail; m becomes the tail (or is a front copy) */
    if (m->flags & WEIR__MF_FRONT) weir__msg_free(m);
  }
  node_free(p, p->tail);
  p->tail = &p->stub;
}
