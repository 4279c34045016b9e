/*
 * overload.c: bounded mailboxes, shedding that is never silent, dead letters.
 *
 * The length bound is exact under any number of concurrent senders: a sender
 * reserves its place by a CAS on in_count against the consumer's out_count,
 * so in_count - out_count never passes max_queue_len (out_count only grows,
 * which can only make room). The CAS is paid only by bounded processes; an
 * unbounded send keeps its single fetch_add. The byte bound is checked
 * against the bytes queued when the send starts, so concurrent senders can
 * pass it by at most their own messages; it exists to cap memory, where that
 * slack does not matter.
 *
 * A sender on a scheduler thread may reserve places for the messages it is
 * about to send in the same callback (weir__bound_credit, proc.c's outbox):
 * in_count counts them from the reservation, so the bound stays exact; what
 * the callback did not spend is given back when it returns. A reservation
 * is at most an eighth of the room left, so only a mailbox near its bound
 * can refuse one sender while another holds places it has not used yet.
 *
 * REJECT returns WEIR_EFULL to the sender; DROP_NEWEST sheds the new message;
 * BLOCK parks the sender on a futex the receiver bumps after each pop when
 * someone waits (EDEADLK where waiting would stall a scheduler).
 *
 * DROP_OLDEST is exact: after any burst the queue holds the newest
 * max_queue_len messages (and at most max_queue_bytes of them), in order,
 * however long the receiver is stuck. A sender cannot pop an MPSC queue, but
 * it can unlink a node from its middle if nobody else moves the same links:
 * so a DROP_OLDEST slot has a mutex (x->dq_mu) that its senders hold to push
 * and evict, and its receiver holds to pop (mailbox.c). Under it a send
 * pushes, then unlinks and sheds the oldest evictable messages (MF_DQ: the
 * ones admitted this way, counted in dq_len/dq_bytes) while the bound is
 * passed; an eviction counts in out_count like a pop. The lock serialises the
 * senders of that one mailbox, which is the price of exactness; REJECT,
 * DROP_NEWEST, BLOCK and unbounded mailboxes never take it (their pop only
 * tests p->shed_oldest). Whether a slot evicts is p->shed_oldest, written
 * under dq_mu at each incarnation (the token held, so no pop runs), so a
 * stale sender that read the previous incarnation's policy cannot evict
 * behind a receiver that pops without the lock. Runtime signals (NOBOUND)
 * are never evicted and never take the lock.
 *
 * The node budget (max_mailbox_bytes) caps the bytes queued in all mailboxes;
 * when it is set, every send pays one shared atomic add. Over budget a send
 * fails with WEIR_EBUDGET.
 *
 * Every shed or refused message is counted on its process (dropped) and on
 * the node, and a shed one goes to the dead-letter subscriber if there is
 * one: nothing disappears silently.
 */
#include "internal.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void count_drop(weir_rt *rt, weir__proc *p) {
  weir__slotx *sx = WEIR__LD(p->x);
  if (sx) atomic_fetch_add_explicit(&sx->dropped, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&rt->dropped, 1, memory_order_relaxed);
}

/* What a shed message owes: a call gets its EFULL reply (its caller would
   wait for nothing), the dead-letter subscriber a copy, the counters one. */
static void shed_notify(weir_rt *rt, weir__proc *p, weir__msg *m) {
  count_drop(rt, p);
  if (m->kind == WEIR__K_CALL) {
    weir_from f;
    memcpy(&f, weir__msg_data(m), sizeof f);
    weir__call_fail(rt, f, WEIR_EFULL);
  }
  weir__dead_letter_notify(rt, weir__pid_make(p->slot, m->gen), m, WEIR_EFULL);
}

/* Frees m. err == WEIR__SHED: shed by the policy (the sender is told OK);
   else refused, and err goes back to the sender. */
static int shed(weir_rt *rt, weir__proc *p, weir__msg *m, int err) {
  if (err == WEIR__SHED)
    shed_notify(rt, p, m);
  else
    count_drop(rt, p);
  weir__msg_free(m);
  return err;
}

/* Moves seen_out up to out (never down: it must stay a value out_count
   once had, and out_count only grows). */
static void seen_out_raise(weir__slotx *sx, uint64_t out) {
  uint64_t s = atomic_load_explicit(&sx->seen_out, memory_order_relaxed);
  while (s < out && !atomic_compare_exchange_weak_explicit(
                        &sx->seen_out, &s, out, memory_order_relaxed,
                        memory_order_relaxed)) {
  }
}

/* Records the queue length an admission left (in_after = in_count after
   it), capped at the bound; reads the receiver's out_count. */
static void note_high_water(weir__proc *p, weir__slotx *sx, uint64_t in_after,
                            uint32_t max_len) {
  uint64_t out = atomic_load_explicit(&p->out_count, memory_order_relaxed);
  seen_out_raise(sx, out);
  uint64_t len = in_after > out ? in_after - out : 0;
  if (max_len && len > max_len) len = max_len;
  uint64_t hw = atomic_load_explicit(&sx->high_water, memory_order_relaxed);
  if (len > hw) /* a diagnostic: a lost race under-reports a little */
    atomic_store_explicit(&sx->high_water, len, memory_order_relaxed);
}

/* Is there room for a message of len bytes (length and byte bounds)? */
static bool has_room(weir__proc *p, uint32_t len) {
  uint32_t max_len = WEIR__LD(p->max_len);
  uint64_t max_bytes = WEIR__LD(p->max_bytes);
  return (!max_len || weir__mbox_len(p) < max_len) &&
         (!max_bytes || weir__mbox_bytes(p) + len <= max_bytes);
}

/* BLOCK: waits for room until the deadline; false on timeout. */
static bool wait_room(weir__proc *p, uint32_t len, uint64_t deadline) {
  uint32_t seq = atomic_load_explicit(&p->x->space_seq, memory_order_acquire);
  /* The consumer reads `blocked` after its pop (bound_popped); with the
     heavy fence here and its light one there, one of us sees the other
     (Dekker), so a wake-up is never lost. */
  atomic_fetch_add_explicit(&p->x->blocked, 1, memory_order_seq_cst);
  weir__fence_heavy();
  bool room =
      has_room(p, len) ||
      atomic_load_explicit(&p->x->space_seq, memory_order_acquire) != seq;
  if (!room) {
    uint64_t left = UINT64_MAX;
    if (deadline != UINT64_MAX) {
      uint64_t now = weir__now_ns();
      if (now >= deadline) {
        atomic_fetch_sub_explicit(&p->x->blocked, 1, memory_order_relaxed);
        return false;
      }
      left = deadline - now;
    }
    weir__futex_wait(&p->x->space_seq, seq, left);
  }
  atomic_fetch_sub_explicit(&p->x->blocked, 1, memory_order_relaxed);
  return true;
}

/* DROP_OLDEST (see the top of the file): queues m and sheds the oldest
   while the bound is passed. Returns WEIR__SHED (m taken), or WEIR_OK if the
   slot no longer evicts (a stale sender: the caller pushes m unbounded). */
static int admit_oldest(weir_rt *rt, weir__proc *p, weir__slotx *sx,
                        weir__msg *m) {
  weir__lock(&sx->dq_mu, WEIR__LK_DQ);
  if (WEIR__UNLIKELY(!p->shed_oldest)) {
    weir__unlock(&sx->dq_mu, WEIR__LK_DQ);
    atomic_fetch_add_explicit(&p->in_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->in_bytes, m->len, memory_order_relaxed);
    return WEIR_OK;
  }
  /* read under the lock: the same incarnation as shed_oldest */
  const uint32_t max_len = WEIR__LD(p->max_len);
  const uint64_t max_bytes = WEIR__LD(p->max_bytes);
  if (WEIR__UNLIKELY(max_bytes && m->len > max_bytes)) {
    /* It would push out everything and still not fit: it is the one shed. */
    weir__unlock(&sx->dq_mu, WEIR__LK_DQ);
    if (m->flags & WEIR__MF_BUDGET)
      atomic_fetch_sub_explicit(&rt->queued_bytes, m->len,
                                memory_order_relaxed);
    return shed(rt, p, m, WEIR__SHED);
  }
  m->flags |= WEIR__MF_DQ;
  uint32_t len = m->len;
  bool sched = weir__mbox_push(p, m);
  sx->dq_len++;
  sx->dq_bytes += len;
  uint64_t n_ev = 0, b_ev = 0;
  /* m itself always fits (len <= max_bytes), so this stops before it. The
     shed ones are notified under the lock, so dead letters keep the queue's
     order; that sends only runtime messages (NOBOUND), which never take a
     dq_mu. */
  while ((max_len && sx->dq_len > max_len) ||
         (max_bytes && sx->dq_bytes > max_bytes)) {
    weir__msg *o = weir__mbox_evict_oldest(p);
    sx->dq_len--;
    sx->dq_bytes -= o->len;
    n_ev++;
    b_ev += o->len;
    if (o->flags & WEIR__MF_BUDGET)
      atomic_fetch_sub_explicit(&rt->queued_bytes, o->len,
                                memory_order_relaxed);
    shed(rt, p, o, WEIR__SHED);
  }
  if (n_ev) { /* taken off the queue: every writer holds dq_mu here */
    atomic_store_explicit(
        &p->out_count,
        atomic_load_explicit(&p->out_count, memory_order_relaxed) + n_ev,
        memory_order_relaxed);
    atomic_store_explicit(
        &p->out_bytes,
        atomic_load_explicit(&p->out_bytes, memory_order_relaxed) + b_ev,
        memory_order_relaxed);
  }
  /* After the evictions' out_count: a reader that sees this in_count (it
     loads in first, acquire) sees them, so the length it computes never
     shows the bound passed. */
  atomic_fetch_add_explicit(&p->in_bytes, len, memory_order_release);
  atomic_fetch_add_explicit(&p->in_count, 1, memory_order_release);
  if (sx->dq_len > atomic_load_explicit(&sx->high_water, memory_order_relaxed))
    atomic_store_explicit(&sx->high_water, sx->dq_len, memory_order_relaxed);
  weir__unlock(&sx->dq_mu, WEIR__LK_DQ);
  if (sched) weir__schedule(rt, p);
  return WEIR__SHED;
}

int weir__bound_admit(weir_rt *rt, weir__proc *p, weir__msg *m) {
  if (m->flags & WEIR__MF_NOBOUND) {
    atomic_fetch_add_explicit(&p->in_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->in_bytes, m->len, memory_order_relaxed);
    return WEIR_OK;
  }
  uint64_t budget = rt->opts.max_mailbox_bytes;
  if (budget) {
    /* relaxed: a memory cap, not an ordering; the add-then-check admits
       at most one message per concurrent sender past the budget. */
    uint64_t q = atomic_fetch_add_explicit(&rt->queued_bytes, m->len,
                                           memory_order_relaxed);
    if (q + m->len > budget) {
      atomic_fetch_sub_explicit(&rt->queued_bytes, m->len,
                                memory_order_relaxed);
      return shed(rt, p, m, WEIR_EBUDGET);
    }
    m->flags |= WEIR__MF_BUDGET;
  }
  int rc = WEIR_OK;
  uint64_t deadline = 0;
  const uint32_t max_len = WEIR__LD(p->max_len);
  const uint64_t max_bytes = WEIR__LD(p->max_bytes);
  const uint8_t overflow = WEIR__LD(p->overflow);
  weir__slotx *const sx = WEIR__LD(p->x);
  if (overflow == WEIR_OVERFLOW_DROP_OLDEST && sx && (max_len | max_bytes)) {
    rc = admit_oldest(rt, p, sx, m);
    if (rc == WEIR__SHED) return rc;
    return WEIR_OK; /* counted; the caller pushes */
  }
  bool near_full = false;
  uint64_t in = atomic_load_explicit(&p->in_count, memory_order_relaxed);
  for (;;) {
    /* out_count only grows, so seen_out (a value it once had) gives an
       upper bound of the length: if that is under the bound there is room,
       without touching the receiver's cache line. Only an apparent "full"
       reads the real out_count (and moves seen_out up). */
    uint64_t out =
        sx ? atomic_load_explicit(&sx->seen_out, memory_order_relaxed) : 0;
    /* `in` may be stale (another sender's CAS moved it): then out can be
       past it; clamp, and the CAS below fails and reloads it. */
    uint64_t len = in > out ? in - out : 0;
    if (max_len && len + 1 >= max_len) {
      out = atomic_load_explicit(&p->out_count, memory_order_relaxed);
      if (sx) seen_out_raise(sx, out);
      len = in > out ? in - out : 0;
      near_full = true;
    }
    bool bytes_full = max_bytes && weir__mbox_bytes(p) + m->len > max_bytes;
    bool full = (max_len && len >= max_len) || bytes_full;
    if (full) {
      switch (overflow) {
      case WEIR_OVERFLOW_DROP_NEWEST:
        goto shed_new;
      case WEIR_OVERFLOW_BLOCK: {
        weir_ctx *cx = weir__current_ctx();
        if (weir__on_scheduler() || (cx && cx->p == p)) {
          rc = WEIR_EDEADLK;
          goto refuse;
        }
        if (!deadline)
          deadline =
              WEIR__LD(sx->push_timeout_ms) < 0
                  ? UINT64_MAX
                  : weir__now_ns() +
                        (uint64_t)WEIR__LD(sx->push_timeout_ms) * 1000000ull;
        if (!wait_room(p, m->len, deadline)) {
          rc = WEIR_EFULL;
          goto refuse;
        }
        in = atomic_load_explicit(&p->in_count, memory_order_relaxed);
        continue;
      }
      default:
        rc = WEIR_EFULL;
        goto refuse;
      }
    }
    /* relaxed: the reservation orders nothing by itself; the push that
       follows publishes the message. */
    if (atomic_compare_exchange_weak_explicit(&p->in_count, &in, in + 1,
                                              memory_order_relaxed,
                                              memory_order_relaxed))
      break;
  }
  atomic_fetch_add_explicit(&p->in_bytes, m->len, memory_order_relaxed);
  /* High water, sampled: every 64th admission (and every one that found
     the mailbox near full, below) reads the real out_count anyway, and
     records the length this admission made, never past the bound it just
     enforced. A mailbox that reaches its bound always records it. */
  if (sx && ((in & 63u) == 0 || near_full))
    note_high_water(p, sx, in + 1, max_len);
  return WEIR_OK;
shed_new:
  if (m->flags & WEIR__MF_BUDGET)
    atomic_fetch_sub_explicit(&rt->queued_bytes, m->len, memory_order_relaxed);
  return shed(rt, p, m, WEIR__SHED);
refuse:
  if (m->flags & WEIR__MF_BUDGET)
    atomic_fetch_sub_explicit(&rt->queued_bytes, m->len, memory_order_relaxed);
  if (rc == WEIR_EFULL) count_drop(rt, p);
  weir__msg_free(m);
  return rc;
}

uint32_t weir__bound_credit(weir__proc *p, uint32_t want) {
  const uint32_t max_len = WEIR__LD(p->max_len);
  if (!max_len || WEIR__LD(p->max_bytes) || !WEIR__LD(p->x) ||
      WEIR__LD(p->overflow) == WEIR_OVERFLOW_DROP_OLDEST ||
      p->rt->opts.max_mailbox_bytes)
    return 0;
  uint64_t in = atomic_load_explicit(&p->in_count, memory_order_relaxed);
  uint64_t out = atomic_load_explicit(&p->out_count, memory_order_relaxed);
  uint64_t len = in > out ? in - out : 0;
  if (len >= max_len) return 0;
  uint64_t k = (max_len - len) / 8;
  if (k > want) k = want;
  /* relaxed, as bound_admit's reservation; a lost race gives no credit */
  if (!k || !atomic_compare_exchange_strong_explicit(&p->in_count, &in, in + k,
                                                     memory_order_relaxed,
                                                     memory_order_relaxed))
    return 0;
  return (uint32_t)k;
}

void weir__bound_popped(weir__proc *p) {
  WEIR__ASSERT(weir__mbox_token_taken(p)); /* the receiver, after a pop */
  /* Orders the pop's out_count store (relaxed) before the read of
     `blocked`, the other half of wait_room's handshake. The light fence of
     an asymmetric pair (base.h): a pop is hot, a waiting sender rare, so
     wait_room's side pays for the barrier. */
  weir__fence_light();
  if (atomic_load_explicit(&p->x->blocked, memory_order_relaxed) > 0) {
    atomic_fetch_add_explicit(&p->x->space_seq, 1, memory_order_release);
    weir__futex_wake(&p->x->space_seq, INT32_MAX);
  }
}

void weir__bound_mode(weir__proc *p, bool shed_oldest) {
  WEIR__ASSERT(weir__mbox_token_taken(p)); /* incarnate: no pop runs */
  weir__slotx *sx = p->x;
  if (!sx) { /* never bounded, so no sender can be evicting */
    p->shed_oldest = 0;
    return;
  }
  /* Under dq_mu: a sender that holds it evicts only if it reads 1 here, and
     the receiver (after this incarnation is published) pops under the lock
     exactly when it reads 1. dq_len/dq_bytes stay: a restart that keeps
     the mailbox keeps its MF_DQ messages. */
  weir__lock(&sx->dq_mu, WEIR__LK_DQ);
  p->shed_oldest = shed_oldest ? 1 : 0;
  weir__unlock(&sx->dq_mu, WEIR__LK_DQ);
}

void weir__dead_letter_notify(weir_rt *rt, weir_pid to, weir__msg *m,
                              int reason) {
  weir__lock(&rt->sub_mu, WEIR__LK_SUB);
  weir_pid sub = rt->dead_letter_sub;
  weir__unlock(&rt->sub_mu, WEIR__LK_SUB);
  if (weir_pid_is_none(sub)) return;
  /* the user's bytes only, without the runtime's prefix (a call's from) */
  uint32_t pre = weir__kind_prefix(m->kind);
  uint32_t ulen = m->len > pre ? m->len - pre : 0;
  weir_dead_letter h;
  memset(&h, 0, sizeof h);
  h.to = to;
  h.tag = m->tag;
  h.len = ulen;
  h.reason = reason;
  weir__msg *d = weir__msg_new(WEIR__K_INFO, WEIR_TAG_DEAD_LETTER,
                               (uint32_t)(sizeof(weir_ref) + sizeof h) + ulen);
  if (!d) return;
  char *b = weir__msg_data(d);
  weir_ref zero = 0;
  memcpy(b, &zero, sizeof zero);
  memcpy(b + sizeof zero, &h, sizeof h);
  if (ulen)
    memcpy(b + sizeof zero + sizeof h, (char *)weir__msg_data(m) + pre, ulen);
  d->flags |= WEIR__MF_NOBOUND;
  weir__deliver(rt, sub, d);
}

int weir_dead_letter_subscribe(weir_rt *rt, weir_pid pid) {
  if (!rt) return WEIR_EINVAL;
  if (!weir_pid_is_none(pid) && !weir__proc_get(rt, pid)) return WEIR_ENOPROC;
  weir__lock(&rt->sub_mu, WEIR__LK_SUB);
  rt->dead_letter_sub = pid;
  weir__unlock(&rt->sub_mu, WEIR__LK_SUB);
  return WEIR_OK;
}

int weir__overload_start(weir_rt *rt) {
  rt->hooks.bound_admit = weir__bound_admit;
  rt->hooks.bound_credit = weir__bound_credit;
  rt->hooks.bound_popped = weir__bound_popped;
  rt->hooks.bound_mode = weir__bound_mode;
  rt->hooks.dead_letter = weir__dead_letter_notify;
  return WEIR_OK;
}
