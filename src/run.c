/*
 * run.c: the run loop. A scheduler thread (or an I/O thread, for a blocking
 * process) holding a process's schedule token calls weir__proc_run: it pops
 * up to `budget` messages and hands each to the behaviour's callback
 * (dispatch), the runtime's own kinds (signals, syscalls, call replies)
 * included. The loop gives the token back when the mailbox is empty, or
 * asks to be scheduled again when the budget is spent.
 *
 * What the loop needs from the modules above it (a bounded mailbox's
 * waiting senders, a trace, a partition resize, a call's bookkeeping) it
 * reaches through rt->hooks, and only on the rare paths: the common message
 * costs one test of rx_flags and one of the ROUTED flag.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- the process's own view (callbacks) -------------------------------- */

weir_pid weir_self(weir_ctx *cx) {
  return cx ? (weir_pid){cx->self} : WEIR_PID_NONE;
}

weir_rt *weir_ctx_rt(weir_ctx *cx) {
  return cx ? cx->p->rt : NULL;
}

uint64_t weir_queue_len(weir_ctx *cx) {
  return cx ? weir__mbox_len(cx->p) : 0;
}

int weir_requeue(weir_ctx *cx, const weir_msg *m) {
  if (!cx || !cx->in_hand || !m) return WEIR_EINVAL;
  WEIR__ASSERT(weir__current_ctx() == cx); /* from its own callback */
  if (cx->requeued) return WEIR_EEXIST;
  weir__msg *h = cx->in_hand;
  weir__msg *c = weir__msg_new(h->kind, h->tag, h->len);
  if (!c) return WEIR_ENOMEM;
  memcpy(weir__msg_data(c), weir__msg_data(h), h->len);
  c->from = h->from;
  c->gen = h->gen;
  c->flags = (uint16_t)(h->flags & ~WEIR__MF_FRONT);
  weir__mbox_unpop(cx->p, c);
  cx->requeued = 1;
  return WEIR_OK;
}

static inline bool msg_accepted(weir__proc *p, weir__msg *m) {
  uint32_t g = atomic_load_explicit(&p->gen, memory_order_relaxed);
  if (WEIR__LIKELY(m->gen == g)) return true;
  uint32_t lo = atomic_load_explicit(&p->accept_gen, memory_order_relaxed);
  return (uint32_t)(m->gen - lo) <= (uint32_t)(g - lo);
}

static int call_cb(weir_ctx *cx, weir__proc *p, const char *what,
                   int (*cb)(weir_ctx *, void *, const weir_msg *),
                   const weir_msg *v) {
  if (!cb) return WEIR_OK;
  atomic_store_explicit(&p->current, what, memory_order_relaxed);
  int rc = cb(cx, p->state, v);
  atomic_store_explicit(&p->current, NULL, memory_order_relaxed);
  atomic_store_explicit(
      &p->reductions,
      atomic_load_explicit(&p->reductions, memory_order_relaxed) + 1,
      memory_order_relaxed);
  return rc;
}

/* The callback a message of this kind runs, for a crash report. */
static const char *kind_callback(uint32_t kind) {
  switch (kind) {
  case WEIR__K_CAST:
    return "handle_cast";
  case WEIR__K_CALL:
    return "handle_call";
  default:
    return "handle_info";
  }
}

/* Handles one accepted message; returns the callback's result (or a reason
   to exit). */
static int dispatch(weir_ctx *cx, weir__proc *p, weir__msg *m) {
  WEIR__ASSERT(weir__current_ctx() == cx && cx->p == p);
  const weir_server *srv = p->srv;
  uint32_t pre = weir__kind_prefix(m->kind);
  char *d = weir__msg_data(m);
  weir_msg v;
  v.tag = m->tag;
  v.len = m->len - pre;
  v.data = d + pre;
  v.from.id = m->from;
  v.ref = 0;
  weir_ref ref = 0;
  int32_t reason = 0;
  if (pre == WEIR__SIG_PREFIX || pre == sizeof(weir_ref))
    memcpy(&ref, d, sizeof ref);
  if (pre == WEIR__SIG_PREFIX) memcpy(&reason, d + 16, sizeof reason);

  switch (m->kind) {
  case WEIR__K_CAST:
    return call_cb(cx, p, "handle_cast", srv->handle_cast, &v);
  case WEIR__K_CALL: {
    weir_from f;
    memcpy(&f, d, sizeof f);
    if (f.a == 0) p->served_calls = 1;
    if (!srv->handle_call) {
      p->rt->hooks.call_fail(p->rt, f, WEIR_ENOTSUP);
      return WEIR_OK;
    }
    atomic_store_explicit(&p->current, "handle_call", memory_order_relaxed);
    int rc = srv->handle_call(cx, p->state, &v, f);
    atomic_store_explicit(&p->current, NULL, memory_order_relaxed);
    atomic_store_explicit(
        &p->reductions,
        atomic_load_explicit(&p->reductions, memory_order_relaxed) + 1,
        memory_order_relaxed);
    return rc;
  }
  case WEIR__K_INFO:
    v.ref = ref;
    return call_cb(cx, p, "handle_info", srv->handle_info, &v);
  case WEIR__K_REPLY:
  case WEIR__K_TIMEOUT: {
    if (!p->rt->hooks.pending_take(p, ref, m->kind == WEIR__K_TIMEOUT))
      return WEIR_OK; /* a late reply, or its call timed out */
    v.tag = m->kind == WEIR__K_REPLY ? WEIR_TAG_REPLY : WEIR_TAG_TIMEOUT;
    v.ref = ref;
    return call_cb(cx, p, "handle_info", srv->handle_info, &v);
  }
  case WEIR__K_DOWN: {
    weir_pid target;
    if (!weir__mon_del(p->ext, ref, 0, &target))
      return WEIR_OK; /* demonitored */
    p->rt->hooks.pending_take(p, ref, 2);
    /* A DOWN from no one answers a call the server refused or shed
       (weir__call_fail): the server lives on, so drop its end of the
       call's monitor. */
    if (m->from == 0 && !weir_pid_is_none(target))
      weir__signal(p->rt, (weir_pid){cx->self}, target, WEIR__K_DEMONITOR, ref,
                   0, 0);
    v.tag = WEIR_TAG_DOWN;
    v.ref = ref;
    v.data = d + 16;
    v.len = sizeof(int32_t);
    return call_cb(cx, p, "handle_info", srv->handle_info, &v);
  }
  case WEIR__K_EXIT: {
    weir_pid from = {m->from};
    bool linked = weir__link_del(p->ext, from);
    bool explicit_sig = ref == 1;
    if (!linked && !explicit_sig)
      return WEIR_OK; /* from a partner we unlinked: stale */
    if (reason == WEIR_REASON_KILL && explicit_sig) {
      cx->exiting = 1;
      cx->exit_reason = WEIR_REASON_KILLED;
      cx->exit_from = m->from;
      cx->crash_cb = "exit_signal";
      return WEIR_OK;
    }
    if (p->trap_exit) {
      v.tag = WEIR_TAG_EXIT;
      v.data = d + 16;
      v.len = sizeof(int32_t);
      return call_cb(cx, p, "handle_info", srv->handle_info, &v);
    }
    if (reason == WEIR_REASON_NORMAL) return WEIR_OK;
    cx->exiting = 1;
    cx->exit_reason = reason;
    cx->exit_from = m->from;
    cx->crash_cb = "exit_signal";
    return WEIR_OK;
  }
  case WEIR__K_LINK: {
    if (WEIR__UNLIKELY(!weir__request_to(m, cx->self))) goto stale_request;
    weir__ext *e = weir__ext_get(p);
    if (!e || weir__link_add(e, (weir_pid){m->from}) != WEIR_OK)
      /* cannot hold our half: the linker must not believe it is linked */
      weir__signal(p->rt, (weir_pid){cx->self}, (weir_pid){m->from},
                   WEIR__K_EXIT, 0, 0, WEIR_ENOMEM);
    return WEIR_OK;
  }
  case WEIR__K_UNLINK:
    weir__link_del(p->ext, (weir_pid){m->from});
    return WEIR_OK;
  case WEIR__K_MONITOR: {
    if (WEIR__UNLIKELY(!weir__request_to(m, cx->self))) goto stale_request;
    weir__ext *e = weir__ext_get(p);
    if (!e || weir__mon_add(e, ref, (weir_pid){m->from}, 1) != WEIR_OK)
      weir__signal(p->rt, weir__proc_pid(p), (weir_pid){m->from}, WEIR__K_DOWN,
                   ref, 0, WEIR_ENOMEM);
    return WEIR_OK;
  }
  case WEIR__K_DEMONITOR:
    weir__mon_del(p->ext, ref, 1, NULL);
    return WEIR_OK;
  case WEIR__K_STOP:
    cx->exiting = 1;
    cx->exit_reason = WEIR_REASON_SHUTDOWN;
    return WEIR_OK;
  case WEIR__K_SYSCALL: {
    weir__syscall sc;
    memcpy(&sc, d, sizeof sc);
    sc.fn(cx, sc.arg);
    return WEIR_OK;
  }
  case WEIR__K_WAKE:
  default:
    return WEIR_OK;
  }
stale_request:
  /* A request to an earlier incarnation of this slot, kept for a restart:
     it reached the mailbox while that one was ending (else its exit would
     have answered it). Its target is gone; this process is not it. */
  weir__request_answer(p->rt, m, WEIR_REASON_NOPROC);
  return WEIR_OK;
}

/* A routed message of a resize still in progress waits, in order, until
   every old partition has drained (partsup.c). It is copied off the queue
   (the popped node stays the queue's tail) and no longer counts as taken. */
static bool defer(weir__proc *p, weir__msg *m) {
  weir__msg *c = weir__msg_new(m->kind, m->tag, m->len);
  if (!c) return false; /* no memory to hold it aside: handle it now */
  memcpy(weir__msg_data(c), weir__msg_data(m), m->len);
  c->from = m->from;
  c->gen = m->gen;
  c->flags = (uint16_t)((m->flags & ~(WEIR__MF_FRONT | WEIR__MF_ROUTED)));
  weir__slotx *sx = p->x; /* a partition worker always has its extras */
  atomic_store_explicit(&c->node.next, NULL, memory_order_relaxed);
  if (sx->defer_tail)
    atomic_store_explicit(&sx->defer_tail->node.next, &c->node,
                          memory_order_relaxed);
  else
    sx->defer_head = c;
  sx->defer_tail = c;
  if (m->flags & WEIR__MF_FRONT) weir__msg_free(m);
  weir__mbox_uncount(p, c->len);
  return true;
}

/* The behaviour's own account of its state, once per run (not per message),
   for process_info's memory. Runs in the process, so it may read state. */
static void note_state_size(weir__proc *p) {
  if (p->srv && p->srv->state_size) {
    size_t n = p->srv->state_size(p->state);
    atomic_store_explicit(&p->state_bytes,
                          n > UINT32_MAX ? UINT32_MAX : (uint32_t)n,
                          memory_order_relaxed);
  }
}

/* The rarely taken half of a pop: wake BLOCKed senders, trace. */
static void rx_slow(weir_ctx *cx, weir__proc *p, weir__msg *m, uint8_t rx) {
  if (rx & WEIR__RX_WAKE) p->rt->hooks.bound_popped(p);
  if ((rx & WEIR__RX_TRACED) &&
      atomic_load_explicit(&p->life, memory_order_relaxed) == WEIR__P_LIVE &&
      msg_accepted(p, m))
    p->rt->hooks.trace(p->rt, cx->self, m);
}

/* How often a long turn reads the clock, in messages handled, and how long
   (from the first read) it may run. */
#define TURN_CLOCK_EVERY  16u
#define WEIR__TURN_MAX_NS 1000000ull

unsigned weir__proc_run(weir__proc *p, unsigned budget) {
  WEIR__ASSERT(weir__mbox_token_taken(p)); /* the scheduler gave it to us */
  weir_rt *rt = p->rt;
  weir_ctx cx = {.p = p, .self = weir__proc_pid(p).id};
  weir_ctx *prev = weir__current_ctx();
  weir__set_current_ctx(&cx);
  atomic_store_explicit(&p->status, WEIR_STATUS_RUNNING, memory_order_relaxed);
  unsigned n = 0;
  /* acquire: pairs with weir_exit's release store of kill. */
  if (WEIR__UNLIKELY(atomic_load_explicit(&p->kill, memory_order_acquire) ==
                     atomic_load_explicit(&p->gen, memory_order_relaxed)) &&
      atomic_load_explicit(&p->life, memory_order_relaxed) == WEIR__P_LIVE) {
    cx.crash_cb = "exit_signal";
    if (weir__proc_exit_now(&cx, WEIR_REASON_KILL, NULL)) goto out;
  }
  /* The budget counts reductions, as BEAM's does: one per message handled
     and one per message sent (messages_out, which only this run writes
     now). A process whose callback casts in bulk (a fan-in producer, 1024
     casts a callback) yields after that callback instead of 64 of them,
     and the processes it feeds get their turn (as long a turn: sched.c's
     run). Returns the reductions this run took. */
  uint64_t out0 = atomic_load_explicit(&p->messages_out, memory_order_relaxed);
  uint64_t out = out0;
  /* A turn of slow callbacks ends on time too: from its TURN_CLOCK_EVERY-th
     message on, it yields once it has run WEIR__TURN_MAX_NS. (Reductions
     alone let a process whose callbacks take a millisecond hold its core
     for a second.) A short turn reads no clock. */
  uint64_t t_clock = 0;
  for (;;) {
    out = atomic_load_explicit(&p->messages_out, memory_order_relaxed);
    if (WEIR__UNLIKELY(n + (out - out0) >= budget)) break; /* spent: yield */
    if (WEIR__UNLIKELY(n && n % TURN_CLOCK_EVERY == 0)) {
      uint64_t now = weir__now_ns();
      if (!t_clock)
        t_clock = now;
      else if (now - t_clock >= WEIR__TURN_MAX_NS)
        break; /* ran long: yield */
    }
    if (WEIR__UNLIKELY(p->route != NULL) && p->x->defer_head &&
        p->rt->hooks.route_done(p))
      weir__proc_undefer(p);
    weir__msg *m = weir__mbox_pop(p);
    if (!m) {
      uint32_t st = atomic_load_explicit(&p->life, memory_order_relaxed);
      if (st == WEIR__P_LIVE) {
        note_state_size(p);
        atomic_store_explicit(&p->status, WEIR_STATUS_WAITING,
                              memory_order_relaxed);
      }
      weir__set_current_ctx(prev);
      weir__outbox_flush(); /* before p may run elsewhere */
      /* read while p is ours: once marked empty, it may run elsewhere */
      out = atomic_load_explicit(&p->messages_out, memory_order_relaxed);
      if (weir__mbox_markempty(p)) return n + (unsigned)(out - out0);
      weir__set_current_ctx(&cx);
      continue; /* a push is in flight; its link appears shortly */
    }
    /* relaxed: see incarnate and trace.c */
    uint8_t rx = atomic_load_explicit(&p->rx_flags, memory_order_relaxed);
    if (WEIR__UNLIKELY(rx)) rx_slow(&cx, p, m, rx);
    uint32_t st = atomic_load_explicit(&p->life, memory_order_relaxed);
    if (WEIR__UNLIKELY(st != WEIR__P_LIVE || !msg_accepted(p, m))) {
      weir__dead_letter(rt, p, m, WEIR_ENOPROC);
      continue;
    }
    /* A routed message of the resize in progress waits (partsup.c). */
    if (WEIR__UNLIKELY(m->flags & WEIR__MF_ROUTED) && p->route &&
        !rt->hooks.route_admit(p, m) && defer(p, m))
      continue;
    n++;
    cx.in_hand = m;
    cx.requeued = 0;
    int rc = dispatch(&cx, p, m);
    weir__outbox_flush(); /* what the callback sent is in the mailboxes */
    if (WEIR__UNLIKELY(rc != WEIR_OK || cx.exiting)) {
      int reason = rc < 0            ? rc
                   : rc == WEIR_STOP ? WEIR_REASON_NORMAL
                                     : cx.exit_reason;
      if (rc > 0 && rc != WEIR_STOP) reason = WEIR_EINVAL;
      if (!cx.crash_cb) { /* else the message was an exit signal */
        cx.crash_cb = kind_callback(m->kind);
        cx.crash_msg = m;
      }
      bool front = (m->flags & WEIR__MF_FRONT) != 0;
      bool held = weir__proc_exit_now(&cx, reason, rc < 0 ? m : NULL);
      if (front) weir__msg_free(m);
      if (held) goto out;
      cx.exiting = 0;
      cx.exit_from = 0;
      cx.crash_cb = NULL;
      cx.crash_msg = NULL;
      continue;
    }
    if (m->flags & WEIR__MF_FRONT) weir__msg_free(m);
  }
  note_state_size(p);
  atomic_store_explicit(&p->status, WEIR_STATUS_RUNNABLE, memory_order_relaxed);
  weir__set_current_ctx(prev);
  weir__outbox_flush();
  rt->hooks.schedule(rt, p);
  return n + (unsigned)(out - out0);
out:
  weir__set_current_ctx(prev);
  weir__outbox_flush();
  return n;
}
