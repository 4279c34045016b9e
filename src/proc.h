/*
 * proc.h: table.c (the process table, objects kept until stop), proc.c
 * (spawn, delivery, exit, the bookkeeping of links and monitors) and run.c
 * (the run loop, dispatch to the behaviour's callbacks).
 */
#ifndef WEIR_PROC_H
#define WEIR_PROC_H

#include "node.h"

/* ---- table.c (lookups inline: every send makes one) ---- */
static inline weir__proc *weir__proc_slot(weir_rt *rt, uint32_t slot) {
  if (slot >= rt->max_processes) return NULL;
  /* acquire: pairs with the release store that published the slot. */
  return atomic_load_explicit(&rt->slots[slot], memory_order_acquire);
}
/* The live incarnation pid names, or NULL if stale. */
static inline weir__proc *weir__proc_get(weir_rt *rt, weir_pid pid) {
  weir__proc *p = weir__proc_slot(rt, weir__pid_slot(pid));
  if (!p) return NULL;
  /* acquire on gen: pairs with spawn's release store, so the bounds and
     flags written before it are visible. */
  if (atomic_load_explicit(&p->gen, memory_order_acquire) != weir__pid_gen(pid))
    return NULL;
  if (atomic_load_explicit(&p->life, memory_order_relaxed) != WEIR__P_LIVE)
    return NULL;
  return p;
}
static inline weir_pid weir__proc_pid(const weir__proc *p) {
  return weir__pid_make(p->slot,
                        atomic_load_explicit(&p->gen, memory_order_relaxed));
}
/* Slots in use so far (a scan's bound), read under the table lock. */
uint32_t weir__proc_table_used(weir_rt *rt);
weir_ref weir__new_ref(weir_rt *rt);
/* Takes a slot off the free list, or a fresh one (its proc allocated and
   its mailbox set up): ENOMEM, ELIMIT (max_processes in use). */
int weir__slot_alloc(weir_rt *rt, weir__proc **out);
void weir__slot_release(weir_rt *rt, weir__proc *p);
/* Objects that must live until the node stops (freed by fn then). */
int weir__retire(weir_rt *rt, void *obj, void (*fn)(void *));
void weir__retired_free(weir_rt *rt);

/* ---- proc.c ---- */
/* Frees every slot and what it holds (the node stops; nothing runs). */
void weir__proc_table_free(weir_rt *rt);
/* Delivers a message to pid; stamps and schedules. Takes ownership of m in
   all cases (frees it on error). */
int weir__deliver(weir_rt *rt, weir_pid to, weir__msg *m);
/* The same to a slot (partition routing): also into a HELD slot waiting for
   its restart; ENOPROC unless the slot is still routed by `route`. */
int weir__deliver_slot(weir_rt *rt, weir__proc *p, void *route, weir__msg *m);
/* p: the slot it was queued in (for the dead letter's `to`), or NULL. */
void weir__dead_letter(weir_rt *rt, weir__proc *p, weir__msg *m, int reason);
/* Runs fn(cx, arg) inside process pid, asynchronously. */
int weir__syscall_send(weir_rt *rt, weir_pid pid,
                       void (*fn)(weir_ctx *, void *), void *arg);
/* Ends the incarnation; true if the slot is now HELD (the caller must not
   touch p afterwards: a restart may already own it). */
bool weir__proc_exit_now(weir_ctx *cx, int reason, weir__msg *in_hand);
weir__ext *weir__ext_get(weir__proc *p);
/* Sends a runtime signal (kind, no tag) from `from` to `to`; its payload is
   ref (8), aux (8), reason (4), pad (4): WEIR__SIG_PREFIX. */
int weir__signal(weir_rt *rt, weir_pid from, weir_pid to, uint32_t kind,
                 weir_ref ref, uint64_t aux, int32_t reason);
/* Records a link (and its exit signal); ENOMEM leaves nothing recorded. */
int weir__link_add(weir__ext *e, weir_pid pid);
/* Room for one more link, so that a later weir__link_add cannot fail. */
int weir__link_reserve(weir__ext *e);
/* Removes the link to pid; false if there was none. */
bool weir__link_del(weir__ext *e, weir_pid pid);
int weir__mon_add(weir__ext *e, weir_ref ref, weir_pid pid, uint8_t watcher);
/* Removes a monitor entry; *pid (may be NULL) gets its other end. */
bool weir__mon_del(weir__ext *e, weir_ref ref, uint8_t watcher, weir_pid *pid);
/* Is m a LINK or MONITOR request addressed to the incarnation pid? */
bool weir__request_to(weir__msg *m, uint64_t pid);
/* Answers a LINK or MONITOR request its target will not handle. */
int weir__request_answer(weir_rt *rt, weir__msg *m, int32_t reason);

/* What a supervisor adds to a spawn. */
typedef struct weir__spawn_x {
  uint64_t supervisor;  /* pid id of the supervisor, 0 = none */
  int32_t partition;    /* -1 = none */
  uint8_t keep;         /* hold the mailbox at exit, for a restart */
  uint32_t accept_from; /* restart: oldest generation still accepted */
  void *route;          /* partition supervisor that routes here, or NULL */
  uint32_t restarts;    /* restarts of this child spec so far */
  uint8_t is_sup;       /* a supervisor: it keeps its figures in its extras */
} weir__spawn_x;
/* Spawns into slot p whose token the caller holds. On init failure with
   x->keep the slot is left HELD (token held), else it is freed. */
int weir__spawn_in(weir_rt *rt, weir__proc *p, const weir_server *srv,
                   void *arg, const weir_spawn_opts *so, const weir__spawn_x *x,
                   weir_pid *pid);
/* Spawn with extras; *slot (may be NULL) gets the slot used. */
int weir__spawn_ex(weir_rt *rt, const weir_server *srv, void *arg,
                   const weir_spawn_opts *so, const weir__spawn_x *x,
                   weir_pid *pid, weir__proc **slot);
void weir__proc_release_held(weir_rt *rt, weir__proc *p);

/* The outbox (proc.c): on a scheduler thread, the casts a callback makes
   to a few mailboxes wait here, one chain per receiver, and go in as one
   push each. weir__proc_run flushes it after each callback and before it
   returns. */
#define WEIR__OUTBOX_WAYS 4u
typedef struct weir__chain {
  weir__proc *to;
  weir_rt *rt;
  weir__msg *first, *last;
  uint32_t n;      /* messages in the chain */
  uint32_t ncount; /* of them, not counted in to->in_count yet (unbounded) */
  uint64_t bytes;  /* their bytes not added to to->in_bytes yet */
  uint32_t credit; /* places reserved in bounded `to`, unspent
                      (weir__bound_credit): given back at the flush */
} weir__chain;
typedef struct weir__outbox {
  uint32_t used;    /* chains c[0..used) in use (receivers seen) */
  uint32_t pending; /* messages waiting in them */
  uint32_t credit;  /* places reserved in bounded mailboxes, unspent */
  uint32_t on;      /* this thread is a scheduler thread */
  /* A partition router's mark (partsup.c), held while a message it routed
     waits here: a resize waits for it (see weir__outbox_hold) */
  void *held;
  void (*release)(void *held);
  weir__chain c[WEIR__OUTBOX_WAYS];
} weir__outbox;
extern WEIR__TLS weir__outbox weir__tl_ob;
void weir__outbox_enable(void); /* this thread is a scheduler thread */
void weir__outbox_flush_slow(void);
/* Everything waiting goes into its mailbox, and a held router mark is
   released. */
static inline void weir__outbox_flush(void) {
  weir__outbox *o = &weir__tl_ob;
  if (WEIR__UNLIKELY((o->pending | o->credit) != 0 || o->held != NULL))
    weir__outbox_flush_slow();
  else
    o->used = 0; /* the next callback's first messages go at once again */
}
/* Did the last delivery from this thread wait in the outbox? Then `mark`
   stays held (not released by the caller) until the flush, which calls
   release(mark); returns true. A mark already held is not taken twice. */
bool weir__outbox_hold(void *mark, void (*release)(void *));

/* ---- run.c ---- */
unsigned weir__proc_run(weir__proc *p, unsigned budget);
/* The resize is done: deferred messages go first, before anything queued. */
void weir__proc_undefer(weir__proc *p);
/* The process running on this thread (a thread-local, inlined: every send
   reads it). */
extern WEIR__TLS weir_ctx *weir__tl_cx;
static inline weir_ctx *weir__current_ctx(void) {
  return weir__tl_cx;
}
static inline void weir__set_current_ctx(weir_ctx *cx) {
  weir__tl_cx = cx;
}

#endif
