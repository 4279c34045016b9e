/*
 * proc.c: the process table, spawn, delivery, the run loop, exit, links and
 * monitors.
 *
 * Slots are type-stable: a weir__proc, once allocated for a slot, lives until
 * weir_rt_stop. A pid names (generation, slot); each incarnation in a slot
 * gets the next generation. Delivery reads the slot's generation and state,
 * then pushes a message stamped with that generation. If the process ends
 * between the check and the push, the message lands in a mailbox whose
 * generation has moved on and becomes a dead letter, counted and reported;
 * nothing ever touches freed memory, and no lock is taken on the send path.
 *
 * The schedule token: a process runs on at most one thread at a time because
 * only the holder of its mailbox's "scheduled" state runs it (mailbox.c).
 * weir_spawn takes the token of the fresh slot before publishing the pid, runs
 * init in the caller's thread as the new process, then hands the token back
 * (scheduling the process if messages arrived meanwhile). Exit with
 * keep_on_exit leaves the token held so that a supervisor restarts a child in
 * the same slot with its queued messages intact.
 *
 * Signals (link, monitor, exit, down) travel as messages of runtime kinds in
 * the same mailbox, so they keep Erlang's per-sender ordering with respect to
 * ordinary messages. A KILL also raises a flag checked once per batch, so a
 * process with a million queued messages still dies promptly.
 *
 * A LINK or MONITOR request that reached the mailbox of a live incarnation
 * is answered by that incarnation, whatever happens: handled, it becomes a
 * link or a watcher's monitor that signals the real exit reason; still
 * queued when the process ends (a KILL, a crash on an earlier message), the
 * exit answers it with the same real reason, as the BEAM's in-order signal
 * handling would. Only a request that found the target already gone, or one
 * pushed while the target was ending, is answered NOPROC. A freed slot
 * answers them in the drain of its leftover queue it made anyway; a slot
 * held for a restart walks its kept queue once, in place (answer_queued).
 * The send path and the run loop are unchanged.
 *
 * Debug builds check these rules (WEIR__ASSERT): whoever incarnates, exits
 * or frees a slot, or touches its per-incarnation data, holds the token;
 * an incarnation starts in a FREE or HELD slot, an exit starts LIVE and
 * walks its queue EXITING (held) or FREE (freed), and only a HELD slot is
 * released.
 */
#include "internal.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

WEIR__TLS weir_ctx *weir__tl_cx; /* the process running on this thread */

static void proc_drain_dead(weir__proc *p, uint64_t self, int32_t reason);
static void answer_queued(weir__proc *p, uint64_t self, int32_t reason);
static weir__msg *sig_new(uint32_t kind);
static void link_install(weir__ext *e, weir_pid pid, weir__msg *sig);
static bool needs_x(const weir_rt *rt, const weir_spawn_opts *so,
                    const weir__spawn_x *x);
static int slotx_ensure(weir__proc *p);
static void undefer(weir__proc *p);

/* ---- slots ----------------------------------------------------------- */

/* Takes the schedule token of a free slot: waits out a runner that is still
   dead-lettering the previous incarnation's leftovers (short). */
static void token_take(weir__proc *p) {
  for (;;) {
    uintptr_t h = atomic_load_explicit(&p->head, memory_order_acquire);
    if ((h & 1u) && atomic_compare_exchange_weak_explicit(
                        &p->head, &h, h & ~(uintptr_t)1, memory_order_acq_rel,
                        memory_order_relaxed))
      return;
    weir__cpu_relax();
  }
}

/* Gives the token back: schedules the process if its mailbox is not empty. */
static void token_release(weir_rt *rt, weir__proc *p) {
  WEIR__ASSERT(weir__mbox_token_taken(p));
  if (p->front ||
      atomic_load_explicit(&p->tail->next, memory_order_acquire) != NULL ||
      !weir__mbox_markempty(p))
    rt->hooks.schedule(rt, p);
}

weir__ext *weir__ext_get(weir__proc *p) {
  /* per incarnation, touched by its token holder only (slot.h) */
  WEIR__ASSERT(weir__mbox_token_taken(p));
  if (!p->ext) p->ext = weir__calloc(1, sizeof(weir__ext));
  return p->ext;
}

static void ext_free(weir__proc *p) {
  if (!p->ext) return;
  weir__ext *e = p->ext;
  for (uint32_t i = 0; i < e->nlinks; i++)
    if (e->links[i].sig) weir__msg_free(e->links[i].sig);
  for (uint32_t i = 0; i < e->nmons; i++)
    if (e->mons[i].sig) weir__msg_free(e->mons[i].sig);
  weir__free(p->ext->links);
  weir__free(p->ext->mons);
  weir__free(p->ext->calls);
  weir__free(p->ext);
  p->ext = NULL;
}

/* The node stops: every slot goes, with what its last incarnation held
   (ext_free also frees the exit signals a link or a monitor keeps). */
void weir__proc_table_free(weir_rt *rt) {
  for (uint32_t i = 0; i < rt->next_fresh; i++) {
    /* relaxed: the schedulers and every other thread have stopped */
    weir__proc *p = atomic_load_explicit(&rt->slots[i], memory_order_relaxed);
    if (!p) continue;
    weir__proc_undefer(p);
    weir__mbox_destroy(p);
    ext_free(p);
    weir__free(p->name);
    if (p->x) pthread_mutex_destroy(&p->x->dq_mu);
    weir__free(p->x);
    weir__pool_free(p, sizeof *p);
  }
}

/* ---- spawn ------------------------------------------------------------ */

void weir_spawn_opts_init(weir_spawn_opts *so) {
  if (!so) return;
  memset(so, 0, sizeof *so);
  so->overflow = WEIR_OVERFLOW_REJECT;
  so->push_timeout_ms = -1;
}

/* Prepares slot p for a new incarnation; the caller holds the token. */
static void incarnate(weir_rt *rt, weir__proc *p, const weir_server *srv,
                      const weir_spawn_opts *so, const weir__spawn_x *x) {
  WEIR__ASSERT(weir__mbox_token_taken(p));
  WEIR__ASSERT(
      atomic_load_explicit(&p->life, memory_order_relaxed) == WEIR__P_FREE ||
      atomic_load_explicit(&p->life, memory_order_relaxed) == WEIR__P_HELD);
  uint32_t accept_from = x ? x->accept_from : 0;
  uint32_t g = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1;
  if (g == 0) g = 1;
  /* relaxed atomic: diagnostics (weir_process_info, the alarm sampler)
     read the behaviour's name from other threads while a restart writes
     it; the process's own runs read it plainly (the token orders them) */
  WEIR__ST(p->srv, srv);
  p->state = NULL;
  p->ext = NULL;
  WEIR__ST(p->max_len, so->max_queue_len);
  WEIR__ST(p->max_bytes, so->max_queue_bytes);
  WEIR__ST(p->overflow, (uint8_t)so->overflow);
  bool bounded = so->max_queue_len || so->max_queue_bytes;
  rt->hooks.bound_mode(p, bounded && so->overflow == WEIR_OVERFLOW_DROP_OLDEST);
  /* relaxed: read by this slot's own runs, which the token orders; a
     TRACED bit of a session on an earlier incarnation goes with it */
  atomic_store_explicit(&p->rx_flags,
                        (uint8_t)(bounded && so->overflow == WEIR_OVERFLOW_BLOCK
                                      ? WEIR__RX_WAKE
                                      : 0),
                        memory_order_relaxed);
  weir__slotx *sx = p->x; /* allocated by the caller when needed */
  if (sx) {
    WEIR__ST(sx->push_timeout_ms, so->push_timeout_ms);
    WEIR__ST(sx->alarm_enable, so->alarm_enable);
    WEIR__ST(sx->alarm_disable, so->alarm_disable);
    atomic_store_explicit(&sx->dropped, 0, memory_order_relaxed);
    atomic_store_explicit(&sx->high_water, 0, memory_order_relaxed);
    WEIR__ST(sx->partition, x ? x->partition : -1);
    WEIR__ST(sx->supervisor, x ? x->supervisor : (uint64_t)0);
    WEIR__ST(sx->child_restarts, x ? x->restarts : 0u);
    /* the defer list belongs to the slot: it survives a restart */
  }
  WEIR__ST(p->blocking, (uint8_t)(so->blocking ? 1 : 0));
  p->trap_exit = so->trap_exit ? 1 : 0;
  __atomic_store_n(&p->keep_on_exit, (uint8_t)(x ? x->keep : 0),
                   __ATOMIC_RELAXED);
  p->served_calls = 0;
  WEIR__ST(p->route, x ? x->route : NULL);
  /* p->name is NULL already: the previous incarnation's exit released it
     under reg_mu (a fresh slot starts zeroed), and diagnostics read it
     under that lock, so it is not written here */
  p->spawn_seq = (uint32_t)atomic_fetch_add_explicit(&rt->spawn_seq, 1,
                                                     memory_order_relaxed);
  atomic_store_explicit(&p->state_bytes, 0, memory_order_relaxed);
  atomic_store_explicit(&p->kill, 0, memory_order_relaxed);
  atomic_store_explicit(&p->reductions, 0, memory_order_relaxed);
  atomic_store_explicit(&p->messages_out, 0, memory_order_relaxed);
  atomic_store_explicit(
      &p->base_in, atomic_load_explicit(&p->in_count, memory_order_relaxed),
      memory_order_relaxed);
  atomic_store_explicit(&p->current, NULL, memory_order_relaxed);
  atomic_store_explicit(&p->status, WEIR_STATUS_RUNNING, memory_order_relaxed);
  atomic_store_explicit(&p->accept_gen, accept_from ? accept_from : g,
                        memory_order_relaxed);
  atomic_store_explicit(&p->life, WEIR__P_LIVE, memory_order_relaxed);
  /* release: everything above is visible to a sender whose acquire load of
     gen sees g (weir__proc_get). */
  atomic_store_explicit(&p->gen, g, memory_order_release);
}

/* Runs init for a freshly incarnated p (token held); on failure undoes the
   incarnation. Returns init's result. */
static int run_init(weir__proc *p, void *arg) {
  int rc = WEIR_OK;
  if (p->srv->init) {
    weir_ctx cx = {.p = p, .self = weir__proc_pid(p).id};
    weir_ctx *prev = weir__current_ctx();
    weir__set_current_ctx(&cx);
    atomic_store_explicit(&p->current, "init", memory_order_relaxed);
    rc = p->srv->init(&cx, arg, &p->state);
    atomic_store_explicit(&p->current, NULL, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->reductions, 1, memory_order_relaxed);
    weir__set_current_ctx(prev);
    if (rc > 0) rc = WEIR_EINVAL; /* init may not return WEIR_STOP */
  }
  return rc;
}

/* The common tail of spawn and restart: init, publish, hand the token. */
/* Does a slot need its extras for these options? */
static bool needs_x(const weir_rt *rt, const weir_spawn_opts *so,
                    const weir__spawn_x *x) {
  /* a node budget can refuse any process's sends: each counts its drops */
  return so->max_queue_len || so->max_queue_bytes || so->alarm_enable ||
         rt->opts.max_mailbox_bytes ||
         (x && (x->supervisor || x->route || x->partition >= 0 || x->is_sup));
}

static int slotx_ensure(weir__proc *p) {
  if (p->x) return WEIR_OK;
  weir__slotx *sx = weir__calloc(1, sizeof *sx);
  if (!sx) return WEIR_ENOMEM;
  sx->partition = -1;
  pthread_mutex_init(&sx->dq_mu, NULL);
  WEIR__ST(p->x, sx); /* published by the gen store in incarnate */
  return WEIR_OK;
}

int weir__spawn_in(weir_rt *rt, weir__proc *p, const weir_server *srv,
                   void *arg, const weir_spawn_opts *so, const weir__spawn_x *x,
                   weir_pid *pid) {
  if (needs_x(rt, so, x) && slotx_ensure(p) != WEIR_OK)
    return WEIR_ENOMEM; /* a held slot stays held for another try */
  incarnate(rt, p, srv, so, x);
  weir_pid self = weir__proc_pid(p);
  atomic_fetch_add_explicit(&rt->nprocs, 1, memory_order_relaxed);
  int rc = WEIR_OK;
  /* A link to the spawner: everything it needs is taken now, so that after
     init it cannot fail (a supervisor must hear of every child's exit). */
  weir_ctx *parent = so->link ? weir__current_ctx() : NULL;
  bool link_ok = false;
  weir__msg *sig_up = NULL, *sig_down = NULL;
  if (parent && parent->p->rt == rt) {
    weir__ext *e1 = weir__ext_get(parent->p), *e2 = weir__ext_get(p);
    sig_up = sig_new(WEIR__K_EXIT);
    sig_down = sig_new(WEIR__K_EXIT);
    if (!e1 || !e2 || !sig_up || !sig_down || weir__link_reserve(e1) ||
        weir__link_reserve(e2))
      rc = WEIR_ENOMEM;
    else
      link_ok = true;
  }
  if (rc == WEIR_OK && so->name) {
    rc = rt->hooks.name_register(rt, so->name, self);
  }
  if (rc == WEIR_OK) rc = run_init(p, arg);
  if (rc != WEIR_OK) {
    if (sig_up) weir__msg_free(sig_up);
    if (sig_down) weir__msg_free(sig_down);
  }
  if (rc != WEIR_OK) {
    /* The process never lived: undo without terminate, dead-letter what
       arrived during init, free the slot, hand back the token. */
    weir_ctx cx = {.p = p, .self = weir__proc_pid(p).id};
    WEIR__ST(p->srv, (const weir_server *)NULL);
    bool held = weir__proc_exit_now(&cx, rc, NULL);
    /* it never lived: not an exit or a crash in the node's counts */
    atomic_fetch_sub_explicit(&rt->exited, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&rt->crashed, 1, memory_order_relaxed);
    if (!held) token_release(rt, p);
    return rc;
  }
  atomic_fetch_add_explicit(&rt->spawned, 1, memory_order_relaxed);
  if (link_ok) {
    /* Both ends at once: the parent records the link, and the child records
       the parent before anyone can run it (we hold its token). */
    link_install(parent->p->ext, self, sig_down);
    link_install(p->ext, (weir_pid){parent->self}, sig_up);
  }
  if (pid) *pid = self;
  token_release(rt, p);
  return WEIR_OK;
}

int weir_spawn(weir_rt *rt, const weir_server *server, void *arg,
               const weir_spawn_opts *so, weir_pid *pid) {
  return weir__spawn_ex(rt, server, arg, so, NULL, pid, NULL);
}

int weir__spawn_ex(weir_rt *rt, const weir_server *server, void *arg,
                   const weir_spawn_opts *so, const weir__spawn_x *x,
                   weir_pid *pid, weir__proc **slot) {
  weir_spawn_opts def;
  if (!rt || !server) return WEIR_EINVAL;
  if (!so) {
    weir_spawn_opts_init(&def);
    so = &def;
  }
  if (so->overflow > WEIR_OVERFLOW_BLOCK) return WEIR_EINVAL;
  if (atomic_load_explicit(&rt->stopping, memory_order_acquire))
    return WEIR_ESTOPPED;
  weir__proc *p;
  int rc = weir__slot_alloc(rt, &p);
  if (rc) return rc;
  if (needs_x(rt, so, x) && slotx_ensure(p) != WEIR_OK) {
    weir__slot_release(rt, p);
    return WEIR_ENOMEM;
  }
  token_take(p);
  if (slot) *slot = p;
  return weir__spawn_in(rt, p, server, arg, so, x, pid);
}

/* ---- delivery --------------------------------------------------------- */

static inline void count_in(weir__proc *p, weir__msg *m) {
  /* relaxed: the counters order nothing; the push publishes the message. */
  atomic_fetch_add_explicit(&p->in_count, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&p->in_bytes, m->len, memory_order_relaxed);
}

static inline void count_out_sender(weir_rt *rt) {
  weir_ctx *cx = weir__current_ctx();
  if (cx && cx->p->rt == rt)
    atomic_store_explicit(
        &cx->p->messages_out,
        atomic_load_explicit(&cx->p->messages_out, memory_order_relaxed) + 1,
        memory_order_relaxed);
}

/* ---- the outbox -------------------------------------------------------

   A callback that casts many messages to one mailbox (a fan-in producer)
   would pay, per message, an exchange on the receiver's head and two adds
   on its counters, all on one cache line that its fellow senders on the
   other cores fight over. On a scheduler thread such casts and sends wait
   instead in the thread's outbox, one chain per receiver (up to
   WEIR__OUTBOX_WAYS receivers), and each chain goes into its mailbox with
   one exchange and one add per counter, for up to WEIR__OUTBOX_MAX
   messages.

   A bounded mailbox (REJECT, DROP_NEWEST, BLOCK, or any mailbox under a
   node budget) admits each message as it is sent: the sender gets its
   EFULL at once and the bound stays exact, because an admitted message
   counts in the length from its admission. Only the push waits. With a
   bound on length alone, an admission also reserves places for the
   sender's next messages to that mailbox (weir__bound_credit, at most an
   eighth of the room left): they are admitted from the chain's credit
   without touching the receiver's line, and the flush gives back what the
   callback did not spend. DROP_OLDEST pushes under its mailbox's lock as it
   evicts, so its messages never wait here.

   Every other delivery from this thread (a call, a signal, a reply, a
   DROP_OLDEST mailbox) flushes the outbox first, so per-sender order
   holds. So does weir__proc_run after every callback: a message is in its
   receiver's mailbox at the latest when the callback that sent it returns.
   Only scheduler threads batch, where a callback may not block waiting for
   a receiver (weir.h); threads and blocking processes send at once. */
#define WEIR__OUTBOX_MAX 64u
WEIR__TLS weir__outbox weir__tl_ob;

void weir__outbox_enable(void) {
  weir__tl_ob.on = 1;
}

WEIR__NOINLINE static void chain_push(weir__chain *c) {
  weir__proc *p = c->to;
  /* relaxed: the counters order nothing; the push publishes the chain. */
  if (c->ncount)
    atomic_fetch_add_explicit(&p->in_count, c->ncount, memory_order_relaxed);
  if (c->bytes)
    atomic_fetch_add_explicit(&p->in_bytes, c->bytes, memory_order_relaxed);
  if (weir__mbox_push_chain(p, c->first, c->last))
    c->rt->hooks.schedule(c->rt, p);
}

WEIR__NOINLINE static void outbox_push_all(weir__outbox *o) {
  /* counts drop first: a schedule hook never sends, but be re-entrant */
  uint32_t n = o->used;
  o->used = 0;
  o->pending = 0;
  o->credit = 0;
  for (uint32_t i = 0; i < n; i++) {
    weir__chain *c = &o->c[i];
    if (c->n) chain_push(c);
    if (c->credit) /* the places this callback reserved and did not use */
      atomic_fetch_sub_explicit(&c->to->in_count, c->credit,
                                memory_order_relaxed);
  }
}

void weir__outbox_flush_slow(void) {
  weir__outbox *o = &weir__tl_ob;
  outbox_push_all(o);
  if (o->held) {
    void *h = o->held;
    o->held = NULL;
    o->release(h);
  }
}

static WEIR__TLS bool tl_took; /* the last delivery went into the outbox */

bool weir__outbox_hold(void *mark, void (*release)(void *)) {
  weir__outbox *o = &weir__tl_ob;
  if (!tl_took) return o->held == mark;
  if (!o->held) {
    o->held = mark;
    o->release = release;
  }
  return true;
}

/* What outbox_take did with m: */
enum { OB_TAKEN, OB_DIRECT, OB_NOT };

/* Can m wait in the outbox? Only on a scheduler thread, in a callback, and
   for a cast or a send. */
static inline bool batchable(const weir__msg *m) {
  return weir__tl_ob.on && weir__tl_cx &&
         (m->kind == WEIR__K_CAST || m->kind == WEIR__K_INFO);
}

/* The chain to p, or NULL if there is none yet. */
static inline weir__chain *outbox_find(const weir__proc *p) {
  weir__outbox *o = &weir__tl_ob;
  for (uint32_t i = 0; i < o->used; i++)
    if (o->c[i].to == p) return &o->c[i];
  return NULL;
}

/* What a chain's push still adds a message to, of its receiver's counts */
enum {
  COUNTED,     /* neither: admitted one by one by a bound, which counted it */
  COUNT_BYTES, /* its bytes: spent from a reserved place (counted) */
  COUNT_BOTH   /* length and bytes: an unbounded mailbox */
};

/* Appends m to c, to be counted at the push as `count` says. */
static inline void chain_add(weir__outbox *o, weir__chain *c, weir_rt *rt,
                             weir__msg *m, int count) {
  atomic_store_explicit(&m->node.next, NULL, memory_order_relaxed);
  if (c->n)
    atomic_store_explicit(&c->last->node.next, &m->node, memory_order_relaxed);
  else
    c->first = m;
  c->rt = rt;
  c->last = m;
  c->n++;
  c->ncount += count == COUNT_BOTH;
  c->bytes += count != COUNTED ? m->len : 0;
  o->pending++;
  if (c->n >= WEIR__OUTBOX_MAX) {
    chain_push(c);
    o->pending -= c->n;
    c->n = 0;
    c->ncount = 0;
    c->bytes = 0;
  }
}

/* OB_TAKEN: m waits in the outbox. OB_DIRECT: m is this callback's first
   message to p, to be pushed at once by the caller (a callback that sends
   one message, a ping-pong's, pays nothing for the outbox); the next ones
   wait. OB_NOT: not a batched delivery (a thread, a blocking process, a
   call...). count: as chain_add's. *cp: p's chain (OB_TAKEN, OB_DIRECT). */
static inline int outbox_take(weir_rt *rt, weir__proc *p, weir__msg *m,
                              int count, weir__chain **cp) {
  weir__outbox *o = &weir__tl_ob;
  if (!batchable(m)) return OB_NOT;
  weir__chain *c = *cp = outbox_find(p);
  if (!c) {
    if (o->used == WEIR__OUTBOX_WAYS) outbox_push_all(o);
    c = *cp = &o->c[o->used++];
    c->to = p;
    c->n = 0;
    c->ncount = 0;
    c->bytes = 0;
    c->credit = 0;
    return OB_DIRECT;
  }
  chain_add(o, c, rt, m, count);
  return OB_TAKEN;
}

/* A bounded mailbox's message: spent from credit, or else bound_admit
   counts it (or sheds, refuses, or, for DROP_OLDEST, pushes it itself). */
static int push_bounded(weir_rt *rt, weir__proc *p, weir__msg *m) {
  weir__outbox *o = &weir__tl_ob;
  tl_took = false;
  if (WEIR__LD(p->overflow) == WEIR_OVERFLOW_DROP_OLDEST) {
    /* pushed under the mailbox's lock: what this thread sent goes first */
    if (o->pending) outbox_push_all(o);
    int rc = rt->hooks.bound_admit(rt, p, m);
    if (rc != WEIR_OK) return rc == WEIR__SHED ? WEIR_OK : rc;
    if (weir__mbox_push(p, m)) rt->hooks.schedule(rt, p);
    return WEIR_OK;
  }
  weir__chain *c = batchable(m) ? outbox_find(p) : NULL;
  if (c && c->credit && !(m->flags & WEIR__MF_NOBOUND)) {
    c->credit--; /* its place is reserved: admitted, counted */
    o->credit--;
    chain_add(o, c, rt, m, COUNT_BYTES);
    tl_took = true;
    return WEIR_OK;
  }
  int rc = rt->hooks.bound_admit(rt, p, m);
  if (rc != WEIR_OK) /* m is gone: shed (the sender is told OK) or refused */
    return rc == WEIR__SHED ? WEIR_OK : rc;
  int ob = outbox_take(rt, p, m, COUNTED, &c);
  if (ob != OB_NOT && !c->credit) { /* places for the next messages */
    c->credit = rt->hooks.bound_credit(p, WEIR__OUTBOX_MAX - 1);
    o->credit += c->credit;
  }
  if (ob == OB_TAKEN) {
    tl_took = true;
    return WEIR_OK;
  }
  if (ob == OB_NOT && o->pending) outbox_push_all(o);
  if (weir__mbox_push(p, m)) rt->hooks.schedule(rt, p);
  return WEIR_OK;
}

static inline int push_counted(weir_rt *rt, weir__proc *p, weir__msg *m,
                               uint32_t gen) {
  m->gen = gen;
  if (WEIR__UNLIKELY(WEIR__LD(p->max_len) | WEIR__LD(p->max_bytes) |
                     rt->opts.max_mailbox_bytes))
    return push_bounded(rt, p, m);
  weir__chain *c;
  int ob = outbox_take(rt, p, m, COUNT_BOTH, &c);
  if (ob == OB_TAKEN) {
    tl_took = true;
    return WEIR_OK;
  }
  tl_took = false;
  /* what this thread sent before goes first (a held router mark stays);
     a first message to p has nothing of this callback before it there */
  if (ob == OB_NOT && weir__tl_ob.pending) outbox_push_all(&weir__tl_ob);
  count_in(p, m);
  if (weir__mbox_push(p, m)) rt->hooks.schedule(rt, p);
  return WEIR_OK;
}

int weir__deliver(weir_rt *rt, weir_pid to, weir__msg *m) {
  weir__proc *p = weir__proc_get(rt, to);
  if (WEIR__UNLIKELY(!p)) {
    weir__msg_free(m);
    return WEIR_ENOPROC;
  }
  count_out_sender(rt);
  return push_counted(rt, p, m, weir__pid_gen(to));
}

int weir__deliver_slot(weir_rt *rt, weir__proc *p, void *route, weir__msg *m) {
  uint32_t st = atomic_load_explicit(&p->life, memory_order_acquire);
  /* An exiting worker that keeps its mailbox will be HELD in a moment and
     restarted: its messages wait for the next incarnation. */
  bool ok = st == WEIR__P_LIVE || st == WEIR__P_HELD ||
            (st == WEIR__P_EXITING &&
             __atomic_load_n(&p->keep_on_exit, __ATOMIC_RELAXED));
  if (!ok || WEIR__LD(p->route) != route) {
    weir__msg_free(m);
    return WEIR_ENOPROC;
  }
  /* Stamped with the current generation: a restart in this slot accepts it
     (accept_gen), an unrelated process reusing the slot would not. */
  count_out_sender(rt);
  return push_counted(rt, p, m,
                      atomic_load_explicit(&p->gen, memory_order_acquire));
}

int weir__signal(weir_rt *rt, weir_pid from, weir_pid to, uint32_t kind,
                 weir_ref ref, uint64_t aux, int32_t reason) {
  weir__msg *m = weir__msg_new(kind, 0, WEIR__SIG_PREFIX);
  if (!m) return WEIR_ENOMEM;
  m->from = from.id;
  m->flags |= WEIR__MF_NOBOUND;
  char *d = weir__msg_data(m);
  memcpy(d, &ref, sizeof ref);
  memcpy(d + 8, &aux, sizeof aux);
  memcpy(d + 16, &reason, sizeof reason);
  memset(d + 20, 0, 4);
  return weir__deliver(rt, to, m);
}

int weir__syscall_send(weir_rt *rt, weir_pid pid,
                       void (*fn)(weir_ctx *, void *), void *arg) {
  weir__msg *m = weir__msg_new(WEIR__K_SYSCALL, 0, sizeof(weir__syscall));
  if (!m) return WEIR_ENOMEM;
  weir__syscall sc = {fn, arg};
  memcpy(weir__msg_data(m), &sc, sizeof sc);
  m->flags |= WEIR__MF_NOBOUND;
  return weir__deliver(rt, pid, m);
}

/* An undeliverable message: answer what expects an answer, count the rest. */
void weir__dead_letter(weir_rt *rt, weir__proc *p, weir__msg *m, int reason) {
  switch (m->kind) {
  case WEIR__K_CALL: {
    weir_from f;
    memcpy(&f, weir__msg_data(m), sizeof f);
    rt->hooks.call_fail(rt, f, WEIR_ENOPROC);
    break;
  }
  case WEIR__K_LINK:
  case WEIR__K_MONITOR:
    /* The requester learns its target was gone. (A request queued while
       the target lived was answered with its real reason by its exit; one
       left here was pushed while the target was ending.) */
    weir__request_answer(rt, m, WEIR_REASON_NOPROC);
    break;
  case WEIR__K_EXIT:
  case WEIR__K_UNLINK:
  case WEIR__K_DEMONITOR:
  case WEIR__K_DOWN:
  case WEIR__K_WAKE:
  case WEIR__K_STOP:
  case WEIR__K_TIMEOUT:
    break;
  case WEIR__K_SYSCALL: {
    /* The requester waits for its syscall: run it with no process. */
    weir__syscall sc;
    memcpy(&sc, weir__msg_data(m), sizeof sc);
    sc.fn(NULL, sc.arg);
    break;
  }
  default:
    atomic_fetch_add_explicit(&rt->dead_letters, 1, memory_order_relaxed);
    rt->hooks.dead_letter(
        rt, p ? weir__pid_make(p->slot, m->gen) : WEIR_PID_NONE, m, reason);
    break;
  }
  if (m->flags & WEIR__MF_FRONT) weir__msg_free(m);
}

/* ---- links and monitors (owner-side bookkeeping) ---------------------- */

/* Is m a LINK or MONITOR request addressed to the incarnation pid? Its aux
   is the pid the requester named (weir_link, weir_monitor). */
bool weir__request_to(weir__msg *m, uint64_t pid) {
  if (m->kind != WEIR__K_LINK && m->kind != WEIR__K_MONITOR) return false;
  uint64_t aux;
  memcpy(&aux, (char *)weir__msg_data(m) + 8, sizeof aux);
  return aux == pid;
}

/* Answers a LINK or MONITOR request its target will not handle: an exit
   signal (LINK) or a DOWN with the request's ref (MONITOR), carrying reason
   and sent in the name of the pid the requester named, so that it finds and
   removes its link or monitor entry. */
int weir__request_answer(weir_rt *rt, weir__msg *m, int32_t reason) {
  const char *d = weir__msg_data(m);
  weir_ref ref;
  uint64_t aux;
  memcpy(&ref, d, sizeof ref);
  memcpy(&aux, d + 8, sizeof aux);
  if (m->kind == WEIR__K_LINK)
    return weir__signal(rt, (weir_pid){aux}, (weir_pid){m->from}, WEIR__K_EXIT,
                        0, 0, reason);
  return weir__signal(rt, (weir_pid){aux}, (weir_pid){m->from}, WEIR__K_DOWN,
                      ref, 0, reason);
}

static weir__msg *sig_new(uint32_t kind) {
  weir__msg *m = weir__msg_new(kind, 0, WEIR__SIG_PREFIX);
  if (m) m->flags |= WEIR__MF_NOBOUND;
  return m;
}

/* Fills a signal message (see weir__signal for the layout). */
static void sig_fill(weir__msg *m, weir_pid from, weir_ref ref, uint64_t aux,
                     int32_t reason) {
  m->from = from.id;
  char *d = weir__msg_data(m);
  memcpy(d, &ref, sizeof ref);
  memcpy(d + 8, &aux, sizeof aux);
  memcpy(d + 16, &reason, sizeof reason);
  memset(d + 20, 0, 4);
}

int weir__link_reserve(weir__ext *e) {
  if (e->nlinks < e->caplinks) return WEIR_OK;
  uint32_t cap = e->caplinks ? e->caplinks * 2 : 4;
  weir__link *n = weir__malloc(cap * sizeof *n);
  if (!n) return WEIR_ENOMEM;
  if (e->nlinks) memcpy(n, e->links, e->nlinks * sizeof *n);
  weir__free(e->links);
  e->links = n;
  e->caplinks = cap;
  return WEIR_OK;
}

/* Records a link with its ready exit signal; room was reserved. A link that
   already exists keeps its signal and sig is freed. */
static void link_install(weir__ext *e, weir_pid pid, weir__msg *sig) {
  for (uint32_t i = 0; i < e->nlinks; i++)
    if (weir_pid_eq(e->links[i].pid, pid)) {
      weir__msg_free(sig);
      return;
    }
  /* init itself may have used the room reserved for this link */
  if (weir__link_reserve(e) != WEIR_OK) {
    weir__msg_free(sig); /* only if init made links and memory ran out */
    return;
  }
  e->links[e->nlinks].pid = pid;
  e->links[e->nlinks].sig = sig;
  e->nlinks++;
}

int weir__link_add(weir__ext *e, weir_pid pid) {
  for (uint32_t i = 0; i < e->nlinks; i++)
    if (weir_pid_eq(e->links[i].pid, pid)) return WEIR_OK;
  if (weir__link_reserve(e) != WEIR_OK) return WEIR_ENOMEM;
  weir__msg *sig = sig_new(WEIR__K_EXIT);
  if (!sig) return WEIR_ENOMEM;
  e->links[e->nlinks].pid = pid;
  e->links[e->nlinks].sig = sig;
  e->nlinks++;
  return WEIR_OK;
}

bool weir__link_del(weir__ext *e, weir_pid pid) {
  if (!e) return false;
  for (uint32_t i = 0; i < e->nlinks; i++)
    if (weir_pid_eq(e->links[i].pid, pid)) {
      if (e->links[i].sig) weir__msg_free(e->links[i].sig);
      e->links[i] = e->links[--e->nlinks];
      return true;
    }
  return false;
}

int weir__mon_add(weir__ext *e, weir_ref ref, weir_pid pid, uint8_t watcher) {
  if (e->nmons == e->capmons) {
    uint32_t cap = e->capmons ? e->capmons * 2 : 4;
    weir__mon *n = weir__malloc(cap * sizeof *n);
    if (!n) return WEIR_ENOMEM;
    if (e->nmons) memcpy(n, e->mons, e->nmons * sizeof *n);
    weir__free(e->mons);
    e->mons = n;
    e->capmons = cap;
  }
  weir__msg *sig = NULL;
  if (watcher && !(sig = sig_new(WEIR__K_DOWN))) return WEIR_ENOMEM;
  e->mons[e->nmons].ref = ref;
  e->mons[e->nmons].pid = pid;
  e->mons[e->nmons].watcher = watcher;
  e->mons[e->nmons].sig = sig;
  e->nmons++;
  return WEIR_OK;
}

bool weir__mon_del(weir__ext *e, weir_ref ref, uint8_t watcher, weir_pid *pid) {
  if (!e) return false;
  for (uint32_t i = 0; i < e->nmons; i++)
    if (e->mons[i].ref == ref && e->mons[i].watcher == watcher) {
      if (pid) *pid = e->mons[i].pid;
      if (e->mons[i].sig) weir__msg_free(e->mons[i].sig);
      e->mons[i] = e->mons[--e->nmons];
      return true;
    }
  return false;
}

/* The resize is done: deferred messages go first, before anything queued. */
void weir__proc_undefer(weir__proc *p) {
  if (p->x && p->x->defer_head) undefer(p);
}

static void undefer(weir__proc *p) {
  weir__slotx *sx = p->x;
  atomic_store_explicit(&sx->defer_tail->node.next, (weir__node *)p->front,
                        memory_order_relaxed);
  p->front = sx->defer_head;
  sx->defer_head = sx->defer_tail = NULL;
}

/* ---- exit ------------------------------------------------------------- */

/* Ends the incarnation in cx (token held by the caller). */
bool weir__proc_exit_now(weir_ctx *cx, int reason, weir__msg *in_hand) {
  weir__proc *p = cx->p;
  weir_rt *rt = p->rt;
  weir_pid self = weir__proc_pid(p);
  WEIR__ASSERT(weir__mbox_token_taken(p));
  /* relaxed: the token holder's own store (incarnate) */
  WEIR__ASSERT(atomic_load_explicit(&p->life, memory_order_relaxed) ==
               WEIR__P_LIVE);
  atomic_store_explicit(&p->status, WEIR_STATUS_EXITING, memory_order_relaxed);
  atomic_store_explicit(&p->life, WEIR__P_EXITING, memory_order_release);
  /* Not counted from here: whoever gets our DOWN or EXIT sees us gone. */
  atomic_fetch_sub_explicit(&rt->nprocs, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&rt->exited, 1, memory_order_relaxed);
  if (reason != WEIR_REASON_NORMAL && reason != WEIR_REASON_SHUTDOWN) {
    atomic_fetch_add_explicit(&rt->crashed, 1, memory_order_relaxed);
    /* Before terminate (the queue as it was) and before the supervisor
       hears of it (the report waits for what it does). */
    rt->hooks.crash(cx, reason);
  }

  if (p->srv && p->srv->terminate) {
    weir_msg view, *vp = NULL;
    if (in_hand) {
      uint32_t pre = weir__kind_prefix(in_hand->kind);
      view.tag = in_hand->tag;
      view.len = in_hand->len - pre;
      view.data = (char *)weir__msg_data(in_hand) + pre;
      view.from.id = in_hand->from;
      view.ref = 0;
      vp = &view;
    }
    cx->in_hand = in_hand;
    cx->requeued = 0;
    weir_ctx *prev = weir__current_ctx();
    weir__set_current_ctx(cx);
    atomic_store_explicit(&p->current, "terminate", memory_order_relaxed);
    p->srv->terminate(cx, p->state, reason, vp);
    atomic_store_explicit(&p->current, NULL, memory_order_relaxed);
    weir__set_current_ctx(prev);
  }
  p->state = NULL;

  rt->hooks.name_release(rt, p);
  int32_t out_reason = reason == WEIR_REASON_KILL ? WEIR_REASON_KILLED : reason;
  weir__ext *e = p->ext;
  if (e) {
    /* The EXITs and DOWNs were allocated with their links and monitors:
       they go out whatever memory is left now. */
    for (uint32_t i = 0; i < e->nlinks; i++) {
      weir__msg *sig = e->links[i].sig;
      e->links[i].sig = NULL;
      sig_fill(sig, self, 0, 0, out_reason);
      weir__deliver(rt, e->links[i].pid, sig);
    }
    for (uint32_t i = 0; i < e->nmons; i++) {
      if (e->mons[i].watcher) {
        weir__msg *sig = e->mons[i].sig;
        e->mons[i].sig = NULL;
        sig_fill(sig, self, e->mons[i].ref, 0, out_reason);
        weir__deliver(rt, e->mons[i].pid, sig);
      } else {
        /* only tidies the other side; a loss costs it a stale entry */
        weir__signal(rt, self, e->mons[i].pid, WEIR__K_DEMONITOR,
                     e->mons[i].ref, 0, 0);
      }
    }
    for (uint32_t i = 0; i < e->ncalls; i++)
      if (e->calls[i].timer) rt->hooks.timer_cancel(rt, e->calls[i].timer);
    ext_free(p);
  }
  /* a server that took calls from threads: their waiters hear of it */
  if (p->served_calls) rt->hooks.server_gone(rt, self);
  p->served_calls = 0;

  /* From here weir__proc_get fails (state is not LIVE): ENOPROC. */
  if (p->keep_on_exit) {
    /* Held for a restart in this slot: messages stay, the token stays with
       the slot (the restart hands it back). The links and monitors asked of
       this incarnation are not the next one's: answered now. The HELD store
       is the last touch: a supervisor waiting for it may restart the slot at
       once. */
    answer_queued(p, self.id, out_reason);
    atomic_store_explicit(&p->status, WEIR_STATUS_WAITING,
                          memory_order_relaxed);
    atomic_store_explicit(&p->life, WEIR__P_HELD, memory_order_release);
    return true;
  }
  atomic_store_explicit(&p->life, WEIR__P_FREE, memory_order_release);
  proc_drain_dead(p, self.id, out_reason);
  atomic_store_explicit(&p->status, WEIR_STATUS_WAITING, memory_order_relaxed);
  weir__slot_release(rt, p);
  return false;
}

/* The last node pushed so far (token held, so head carries no mark). */
static weir__node *queue_head(weir__proc *p) {
  /* acquire: pairs with the push's exchange (its message is written). */
  uintptr_t h = atomic_load_explicit(&p->head, memory_order_acquire);
  WEIR__ASSERT((h & 1u) == 0);
  return (weir__node *)(h & ~(uintptr_t)1);
}

/* A sender is between its exchange and its link store: let it finish. */
static void backoff(unsigned *spins) {
  if (++*spins < 64)
    weir__cpu_relax();
  else
    sched_yield(); /* a preempted sender: give it the CPU */
}

/* Answers, with the real exit reason, each LINK and MONITOR request queued
   for the ending incarnation self (token held, state no longer LIVE), and
   neuters it (a WAKE, which nobody handles) so that a restart in this slot
   does not take it for its own. The queue is walked in place up to the last
   node pushed before the walk, waiting out a sender caught between its
   exchange and its link, so that no request weir_link/weir_monitor returned
   on before the exit began is missed; later ones raced the exit and get the
   NOPROC of dispatch or of a dead letter. A DROP_OLDEST slot's senders
   unlink nodes from the middle under x->dq_mu: the walk holds it (its
   senders push under it too, so none is caught mid-push; runtime signals
   push without it, and are waited out as above). Requeued (front) and
   deferred messages are users' messages, never requests. An answer that
   cannot be allocated leaves its request in place for that NOPROC (one to
   a requester that has ended is as good as sent). */
static void answer_queued(weir__proc *p, uint64_t self, int32_t reason) {
  WEIR__ASSERT(atomic_load_explicit(&p->life, memory_order_relaxed) ==
               WEIR__P_EXITING);
  pthread_mutex_t *mu = p->shed_oldest ? &p->x->dq_mu : NULL;
  if (mu) weir__lock(mu, WEIR__LK_DQ);
  weir__node *end = queue_head(p);
  unsigned spins = 0;
  for (weir__node *n = p->tail; n != end;) {
    /* acquire: pairs with the push's release store of next. */
    weir__node *next = atomic_load_explicit(&n->next, memory_order_acquire);
    if (!next) {
      backoff(&spins);
      continue;
    }
    n = next;
    weir__msg *m = (weir__msg *)n; /* past the tail, nodes are messages */
    if (weir__request_to(m, self) &&
        weir__request_answer(p->rt, m, reason) != WEIR_ENOMEM)
      m->kind = WEIR__K_WAKE; /* senders never read a queued node's kind */
  }
  if (mu) weir__unlock(mu, WEIR__LK_DQ);
}

/* Dead-letters everything queued (token held, state FREE). The LINK and
   MONITOR requests addressed to self, the incarnation that just ended, get
   its exit reason (see answer_queued; self 0: none is); the rest NOPROC.
   Empty means head == tail: a push caught between its exchange and its link
   is waited for (an eviction never moves head), so a request queued behind
   it is not left to the run loop's NOPROC. */
static void proc_drain_dead(weir__proc *p, uint64_t self, int32_t reason) {
  WEIR__ASSERT(atomic_load_explicit(&p->life, memory_order_relaxed) ==
               WEIR__P_FREE);
  if (p->x && p->x->defer_head) undefer(p);
  unsigned spins = 0;
  for (;;) {
    weir__msg *m = weir__mbox_pop(p);
    if (!m) {
      if (queue_head(p) == p->tail) break;
      backoff(&spins);
      continue;
    }
    if (self && weir__request_to(m, self) &&
        weir__request_answer(p->rt, m, reason) != WEIR_ENOMEM) {
      if (m->flags & WEIR__MF_FRONT) weir__msg_free(m);
      continue;
    }
    weir__dead_letter(p->rt, p, m, WEIR_ENOPROC);
  }
}

/* Frees a held slot whose restart will not come (token held by the slot). */
void weir__proc_release_held(weir_rt *rt, weir__proc *p) {
  /* relaxed: the caller acquired HELD (sup.c's wait_held) */
  WEIR__ASSERT(atomic_load_explicit(&p->life, memory_order_relaxed) ==
               WEIR__P_HELD);
  WEIR__ASSERT(weir__mbox_token_taken(p));
  atomic_store_explicit(&p->life, WEIR__P_FREE, memory_order_release);
  proc_drain_dead(p, 0, WEIR_REASON_NOPROC); /* answered at the exit */
  weir__slot_release(rt, p);
  token_release(rt, p);
}
