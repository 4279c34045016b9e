/*
 * sup.c: supervisors (OTP's supervisor behaviour).
 *
 * A supervisor is an ordinary weir process that traps exits and is linked to
 * each child. It runs as a *blocking* process (on the I/O pool): stopping a
 * child means sending it a shutdown exit signal and waiting up to its
 * shutdown_ms for it to end, and that wait must not stall a scheduler.
 *
 * Restarts keep the mailbox. A child started with keep_mailbox (the default)
 * does not free its slot when it ends: the slot is HELD with its queued
 * messages and its schedule token, and the restart runs the next incarnation
 * in the same slot, accepting the messages sent to earlier generations. So a
 * crash loses at most the message in hand (which terminate receives and may
 * requeue). When no restart will come (temporary child, intensity exceeded,
 * supervisor stopping) the held slot is released and what it held is
 * dead-lettered: counted, never silent.
 *
 * Intensity: a ring of the last max_restarts+1 restart times; one more
 * restart inside max_seconds and the supervisor stops its children (reverse
 * start order) and exits with WEIR_REASON_SHUTDOWN, for its own supervisor to
 * decide.
 *
 * Debug builds check (WEIR__ASSERT): the supervisor is a blocking process
 * (its callbacks run on the I/O pool); a held child has its slot and no running
 * incarnation, and its slot is HELD with the schedule token taken when a
 * restart comes.
 */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>

typedef struct sup_child {
  weir_child_spec spec;
  char id[64];
  weir_pid pid;     /* running incarnation, or NONE */
  weir__proc *slot; /* its slot (live or held), or NULL */
  int held;         /* slot is HELD, waiting for a restart */
  int partition;    /* -1 unless a partition worker */
  int removed;      /* spec deleted (temporary child ended) */
  int started;      /* started once: every later start is a restart */
  uint32_t restarts;
} sup_child;

typedef struct weir__sup {
  weir_rt *rt;
  weir_sup_opts o;
  char name[64];
  sup_child *c;
  size_t n, cap;
  uint64_t *times; /* restart ring */
  int ntimes, tpos;
  /* a partition supervisor's part (sup.h), or NULL */
  const weir__sup_ops *ops;
  void *ops_ctx;
  void *route;
  weir_pid self;
  uint64_t parent; /* pid id of whoever started us (its EXIT stops us) */
  weir__slotx *sx; /* our slot's extras: the figures we publish */
} weir__sup;

static const weir_server sup_server;

/* A held child has its slot and no running incarnation (sup_child). */
static inline bool child_ok(const sup_child *ch) {
  return !ch->held || (ch->slot && weir_pid_is_none(ch->pid));
}
static void note_action(weir__sup *s, sup_child *ch, weir_pid pid,
                        weir_sup_action action);

void weir_sup_opts_init(weir_sup_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->strategy = WEIR_ONE_FOR_ONE;
  o->max_restarts = 3;
  o->max_seconds = 5;
}

void weir_child_spec_init(weir_child_spec *cs, const char *id,
                          const weir_server *server, void *arg) {
  if (!cs) return;
  memset(cs, 0, sizeof *cs);
  cs->id = id;
  cs->server = server;
  cs->arg = arg;
  weir_spawn_opts_init(&cs->opts);
  cs->restart = WEIR_PERMANENT;
  cs->shutdown_ms = 5000;
  cs->keep_mailbox = 1;
}

/* ---- definitions ------------------------------------------------------ */

static int check_specs(const weir_sup_opts *o, const weir_child_spec *c,
                       size_t n) {
  if (o->strategy > WEIR_REST_FOR_ONE || o->max_restarts < 0 ||
      o->max_seconds <= 0)
    return WEIR_EINVAL;
  if (o->name && strlen(o->name) >= 64) return WEIR_EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (!c[i].id || !*c[i].id || strlen(c[i].id) >= 64 || !c[i].server ||
        c[i].restart > WEIR_TEMPORARY)
      return WEIR_EINVAL;
    for (size_t j = 0; j < i; j++)
      if (strcmp(c[i].id, c[j].id) == 0) return WEIR_EEXIST;
  }
  return WEIR_OK;
}

weir__sup_def *weir__sup_def_new(const weir_sup_opts *o,
                                 const weir_child_spec *c, size_t n) {
  weir__sup_def *d = weir__calloc(1, sizeof *d);
  if (!d) return NULL;
  d->o = *o;
  if (o->name) snprintf(d->name, sizeof d->name, "%s", o->name);
  d->o.name = NULL;
  d->n = n;
  if (n) {
    d->c = weir__calloc(n, sizeof *d->c);
    d->ids = weir__calloc(n, 64);
    if (!d->c || !d->ids) {
      weir__sup_def_free(d);
      return NULL;
    }
    for (size_t i = 0; i < n; i++) {
      d->c[i] = c[i];
      snprintf(d->ids + i * 64, 64, "%s", c[i].id);
      d->c[i].id = d->ids + i * 64;
    }
  }
  return d;
}

void weir__sup_def_free(weir__sup_def *d) {
  if (!d) return;
  weir__free(d->c);
  weir__free(d->ids);
  weir__free(d);
}

/* ---- starting and stopping children ----------------------------------- */

static void *child_arg(weir__sup *s, sup_child *ch) {
  if (s->ops && ch->partition >= 0)
    return s->ops->child_arg(s->ops_ctx, ch->spec.arg, (unsigned)ch->partition);
  return ch->spec.arg;
}

/* Waits until a held slot has finished its exit (HELD is its last store). */
static void wait_held(weir__proc *p) {
  for (int i = 0;
       atomic_load_explicit(&p->life, memory_order_acquire) != WEIR__P_HELD;
       i++) {
    if (i < 1000)
      weir__cpu_relax();
    else
      sched_yield();
  }
}

static int start_child(weir__sup *s, sup_child *ch) {
  weir_rt *rt = s->rt;
  weir_spawn_opts so = ch->spec.opts;
  so.link = 1;
  if (ch->started) ch->restarts++;
  ch->started = 1;
  weir__spawn_x x = {.supervisor = s->self.id,
                     .partition = ch->partition,
                     .keep = ch->spec.keep_mailbox ? 1 : 0,
                     .accept_from = 0,
                     .route = s->route,
                     .restarts = ch->restarts,
                     .is_sup = ch->spec.is_supervisor ? 1 : 0};
  const weir_server *srv =
      ch->spec.is_supervisor ? &sup_server : ch->spec.server;
  void *arg =
      ch->spec.is_supervisor ? (void *)ch->spec.sup_def : child_arg(s, ch);
  if (ch->spec.is_supervisor) {
    so.blocking = 1;
    so.trap_exit = 1;
  }
  weir_pid pid = WEIR_PID_NONE;
  weir__proc *slot = NULL;
  int rc;
  WEIR__ASSERT(child_ok(ch));
  if (ch->held && ch->slot) {
    slot = ch->slot;
    wait_held(slot);
    /* the exit kept the token with the slot: this restart holds it */
    WEIR__ASSERT(weir__mbox_token_taken(slot));
    x.accept_from =
        atomic_load_explicit(&slot->accept_gen, memory_order_relaxed);
    rc = weir__spawn_in(rt, slot, srv, arg, &so, &x, &pid);
  } else {
    rc = weir__spawn_ex(rt, srv, arg, &so, &x, &pid, &slot);
  }
  if (rc == WEIR_OK) {
    ch->pid = pid;
    ch->slot = slot;
    ch->held = 0;
    if (s->ops && ch->partition >= 0)
      s->ops->set_slot(s->ops_ctx, (unsigned)ch->partition, slot);
    return WEIR_OK;
  }
  ch->pid = WEIR_PID_NONE;
  /* relaxed: a HELD here was stored by this thread (the failed init's exit
     ran in it) or already acquired by wait_held */
  if (slot && x.keep &&
      atomic_load_explicit(&slot->life, memory_order_relaxed) == WEIR__P_HELD) {
    ch->slot = slot; /* init failed: the mailbox waits for the next try */
    ch->held = 1;
  } else {
    ch->slot = NULL;
    ch->held = 0;
  }
  return rc;
}

static void release_held(weir__sup *s, sup_child *ch) {
  WEIR__ASSERT(child_ok(ch));
  if (ch->held && ch->slot) {
    wait_held(ch->slot);
    weir__proc_release_held(s->rt, ch->slot);
  }
  ch->held = 0;
  ch->slot = NULL;
}

/* true while the incarnation `pid` in slot p has not finished exiting */
static bool still_running(weir__proc *p, weir_pid pid) {
  uint32_t life = atomic_load_explicit(&p->life, memory_order_acquire);
  uint32_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
  return g == weir__pid_gen(pid) &&
         (life == WEIR__P_LIVE || life == WEIR__P_EXITING);
}

/* Stops a running child: shutdown signal, wait shutdown_ms, then kill. With
   keep, a kept mailbox stays held for the restart that follows. */
static void stop_child(weir__sup *s, sup_child *ch, bool keep) {
  weir_rt *rt = s->rt;
  WEIR__ASSERT(child_ok(ch));
  if (!weir_pid_is_none(ch->pid) && ch->slot) {
    weir_pid pid = ch->pid;
    weir__proc *p = ch->slot;
    ch->pid = WEIR_PID_NONE;
    if (ch->spec.shutdown_ms == 0) {
      weir_exit(rt, pid, WEIR_REASON_KILL);
    } else {
      weir_exit(rt, pid, WEIR_REASON_SHUTDOWN);
      uint64_t deadline =
          ch->spec.shutdown_ms < 0
              ? UINT64_MAX
              : weir__now_ns() + (uint64_t)ch->spec.shutdown_ms * 1000000ull;
      while (still_running(p, pid) && weir__now_ns() < deadline)
        weir__sleep_ms(1);
      if (still_running(p, pid)) weir_exit(rt, pid, WEIR_REASON_KILL);
    }
    /* A kill whose signal could not be allocated set the flag but woke
       nobody: send it again every 10 ms until the child is gone. */
    for (unsigned i = 1; still_running(p, pid); i++) {
      weir__sleep_ms(1);
      if (i % 10 == 0) weir_exit(rt, pid, WEIR_REASON_KILL);
    }
    if (ch->spec.keep_mailbox) {
      wait_held(p);
      ch->held = 1;
    } else {
      ch->slot = NULL;
    }
    /* killed after its shutdown time, or crashed meanwhile: its report */
    note_action(s, ch, pid, WEIR_SUP_ACTION_STOPPED);
  }
  if (!keep) release_held(s, ch);
}

/* ---- intensity -------------------------------------------------------- */

/* Restarts inside the last max_seconds, for reports. */
static int restarts_in_window(const weir__sup *s) {
  uint64_t now = weir__now_ns();
  uint64_t w = (uint64_t)s->o.max_seconds * 1000000000ull;
  int k = 0;
  for (int i = 0; i < s->ntimes; i++)
    if (s->times[i] && now - s->times[i] <= w) k++;
  return k;
}

/* Tells the reporter what became of child `pid` (its crash report, if it
   crashed, is waiting for this); GAVE_UP adds the supervisor's own. */
static void note_action(weir__sup *s, sup_child *ch, weir_pid pid,
                        weir_sup_action action) {
  weir__sup_note n = {.action = action,
                      .restarted_as = action == WEIR_SUP_ACTION_RESTARTED
                                          ? ch->pid
                                          : WEIR_PID_NONE,
                      .restarts = restarts_in_window(s),
                      .max_restarts = s->o.max_restarts,
                      .max_seconds = s->o.max_seconds,
                      .sup_name = s->name,
                      .child_id = ch->id};
  weir__report_sup(s->rt, pid, &n);
  if (action == WEIR_SUP_ACTION_GAVE_UP)
    weir__report_gave_up(s->rt, s->self, pid, &n);
}

/* The figures weir_supervisor_stats reads (slot.h): one more restart. */
static void publish_restart(weir__sup *s, uint64_t now) {
  weir__slotx *sx = s->sx;
  if (!sx) return;
  WEIR__ST(sx->sup_recent, (int32_t)restarts_in_window(s));
  WEIR__ST(sx->sup_last_ns, now);
  __atomic_fetch_add(&sx->sup_restarts, 1, __ATOMIC_RELAXED);
}

static bool intensity_ok(weir__sup *s) {
  uint64_t now = weir__now_ns();
  if (s->o.max_restarts == 0) return false;
  s->times[s->tpos] = now;
  s->tpos = (s->tpos + 1) % s->ntimes;
  /* the oldest of the last max_restarts+1 restarts */
  uint64_t oldest = s->times[s->tpos];
  publish_restart(s, now);
  if (!oldest) return true;
  return now - oldest > (uint64_t)s->o.max_seconds * 1000000000ull;
}

/* ---- the supervisor process ------------------------------------------- */

static int sup_init(weir_ctx *cx, void *arg, void **state) {
  const weir__sup_def *d = arg;
  weir__sup *s = weir__calloc(1, sizeof *s);
  if (!s) return WEIR_ENOMEM;
  s->rt = weir_ctx_rt(cx);
  s->o = d->o;
  memcpy(s->name, d->name, sizeof s->name);
  s->self = weir_self(cx);
  s->parent = cx->p->x ? cx->p->x->supervisor : 0;
  s->ops = d->ops;
  s->ops_ctx = d->ops_ctx;
  s->route = d->route;
  s->ntimes = s->o.max_restarts + 1;
  s->times = weir__calloc((size_t)s->ntimes, sizeof(uint64_t));
  s->cap = d->n ? d->n : 4;
  s->c = weir__calloc(s->cap, sizeof *s->c);
  if (!s->times || !s->c) {
    weir__free(s->times);
    weir__free(s->c);
    weir__free(s);
    return WEIR_ENOMEM;
  }
  s->n = d->n;
  for (size_t i = 0; i < d->n; i++) {
    sup_child *ch = &s->c[i];
    ch->spec = d->c[i];
    memcpy(ch->id, d->c[i].id, strlen(d->c[i].id) + 1);
    ch->spec.id = ch->id;
    ch->partition = d->ops ? (int)i : -1;
  }
  s->sx = cx->p->x; /* always there: spawned with is_sup */
  if (s->sx) {
    weir__slotx *sx = s->sx;
    WEIR__ST(sx->sup_strategy, (int32_t)s->o.strategy);
    WEIR__ST(sx->sup_max_restarts, (int32_t)s->o.max_restarts);
    WEIR__ST(sx->sup_max_seconds, (int32_t)s->o.max_seconds);
    WEIR__ST(sx->sup_recent, 0);
    WEIR__ST(sx->sup_last_ns, (uint64_t)0);
    WEIR__ST(sx->sup_restarts, (uint64_t)0);
    /* release: a reader that sees our pid sees the figures above */
    __atomic_store_n(&sx->sup_self, s->self.id, __ATOMIC_RELEASE);
  }
  if (s->ops) s->ops->bind(s->ops_ctx, cx->p, s);
  *state = s;
  for (size_t i = 0; i < s->n; i++) {
    int rc = start_child(s, &s->c[i]);
    if (rc != WEIR_OK) {
      for (size_t j = i + 1; j-- > 0;)
        stop_child(s, &s->c[j], false);
      weir__free(s->times);
      weir__free(s->c);
      weir__free(s);
      *state = NULL;
      return rc;
    }
  }
  return WEIR_OK;
}

static sup_child *find_pid(weir__sup *s, weir_pid pid) {
  for (size_t i = 0; i < s->n; i++)
    if (!s->c[i].removed && weir_pid_eq(s->c[i].pid, pid)) return &s->c[i];
  return NULL;
}

static sup_child *find_id(weir__sup *s, const char *id) {
  for (size_t i = 0; i < s->n; i++)
    if (!s->c[i].removed && strcmp(s->c[i].id, id) == 0) return &s->c[i];
  return NULL;
}

/* Restarts children [from, to) in order after a failure; on a start failure
   counts another restart and retries until the intensity gives out. */
static bool restart_range(weir__sup *s, size_t from, size_t to) {
  for (size_t i = from; i < to; i++) {
    sup_child *ch = &s->c[i];
    if (ch->removed || !weir_pid_is_none(ch->pid)) continue;
    while (start_child(s, ch) != WEIR_OK) {
      if (!intensity_ok(s)) return false;
    }
  }
  return true;
}

static int sup_child_exited(weir_ctx *cx, weir__sup *s, sup_child *ch,
                            int reason) {
  weir_rt *rt = s->rt;
  weir_pid was = ch->pid;
  ch->pid = WEIR_PID_NONE;
  if (ch->spec.keep_mailbox && ch->slot) ch->held = 1;
  WEIR__ASSERT(child_ok(ch));
  bool abnormal =
      reason != WEIR_REASON_NORMAL && reason != WEIR_REASON_SHUTDOWN;
  bool restart = ch->spec.restart == WEIR_PERMANENT ||
                 (ch->spec.restart == WEIR_TRANSIENT && abnormal);
  /* relaxed: the stop's store happens before every exit it causes (the
     STOP and EXIT messages are release/acquire), so those see it; a crash
     racing with the stop may restart once, as it could with any order */
  if (atomic_load_explicit(&rt->stopping, memory_order_relaxed))
    restart = false;
  if (!restart) {
    release_held(s, ch);
    if (ch->spec.restart == WEIR_TEMPORARY) ch->removed = 1;
    note_action(s, ch, was, WEIR_SUP_ACTION_NOT_RESTARTED);
    return WEIR_OK;
  }
  if (!intensity_ok(s)) {
    note_action(s, ch, was, WEIR_SUP_ACTION_GAVE_UP);
    weir_exit(rt, s->self, WEIR_REASON_SHUTDOWN);
    (void)cx;
    return WEIR_OK;
  }
  size_t i = (size_t)(ch - s->c);
  size_t from = i, to = i + 1;
  if (s->o.strategy == WEIR_ONE_FOR_ALL) {
    from = 0;
    to = s->n;
  } else if (s->o.strategy == WEIR_REST_FOR_ONE) {
    to = s->n;
  }
  /* Stop the siblings that go down with it, last started first. */
  for (size_t j = to; j-- > from;)
    if (j != i) stop_child(s, &s->c[j], true);
  if (!restart_range(s, from, to)) {
    note_action(s, ch, was, WEIR_SUP_ACTION_GAVE_UP);
    weir_exit(rt, s->self, WEIR_REASON_SHUTDOWN);
    return WEIR_OK;
  }
  note_action(s, ch, was, WEIR_SUP_ACTION_RESTARTED);
  return WEIR_OK;
}

static int sup_info(weir_ctx *cx, void *state, const weir_msg *m) {
  WEIR__ASSERT(WEIR__LD(cx->p->blocking)); /* runs on the I/O pool */
  weir__sup *s = state;
  if (m->tag != WEIR_TAG_EXIT) return WEIR_OK;
  int32_t reason = 0;
  if (m->len >= sizeof reason) memcpy(&reason, m->data, sizeof reason);
  sup_child *ch = find_pid(s, m->from);
  if (ch) return sup_child_exited(cx, s, ch, reason);
  if (s->parent && m->from.id == s->parent) {
    /* Our own supervisor tells us to stop: terminate stops the children. */
    weir_exit(s->rt, s->self, reason);
  }
  return WEIR_OK; /* a stale exit from a child we already stopped */
}

static void sup_terminate(weir_ctx *cx, void *state, int reason,
                          const weir_msg *in_hand) {
  (void)cx;
  (void)reason;
  (void)in_hand;
  WEIR__ASSERT(WEIR__LD(cx->p->blocking));
  weir__sup *s = state;
  if (!s) return;
  if (s->sx) WEIR__ST(s->sx->sup_self, (uint64_t)0);
  for (size_t i = s->n; i-- > 0;)
    if (!s->c[i].removed) stop_child(s, &s->c[i], false);
  if (s->ops) s->ops->unbind(s->ops_ctx);
  weir__free(s->times);
  weir__free(s->c);
  weir__free(s);
}

static const weir_server sup_server = {.name = "supervisor",
                                       .init = sup_init,
                                       .handle_info = sup_info,
                                       .terminate = sup_terminate};

/* ---- public API ------------------------------------------------------- */

int weir__sup_start_def(weir_rt *rt, weir__sup_def *d, void *route,
                        weir_pid *pid) {
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.blocking = 1;
  so.trap_exit = 1;
  so.name = d->name[0] ? d->name : NULL;
  weir__spawn_x x = {
      .supervisor = 0, .partition = -1, .route = route, .is_sup = 1};
  weir_ctx *cx = weir__current_ctx();
  if (cx && cx->p->rt == rt) {
    so.link = 1;
    x.supervisor = weir__proc_pid(cx->p).id;
  }
  d->route = route;
  return weir__spawn_ex(rt, &sup_server, d, &so, &x, pid, NULL);
}

int weir_sup_start(weir_rt *rt, const weir_sup_opts *o,
                   const weir_child_spec *children, size_t n, weir_pid *pid) {
  weir_sup_opts def;
  if (!rt || (n && !children)) return WEIR_EINVAL;
  if (!o) {
    weir_sup_opts_init(&def);
    o = &def;
  }
  int rc = check_specs(o, children, n);
  if (rc) return rc;
  weir__sup_def *d = weir__sup_def_new(o, children, n);
  if (!d) return WEIR_ENOMEM;
  rc = weir__sup_start_def(rt, d, NULL, pid);
  weir__sup_def_free(d); /* init copied what it needs */
  return rc;
}

int weir_sup_child_spec(weir_rt *rt, weir_child_spec *cs, const char *id,
                        const weir_sup_opts *o, const weir_child_spec *children,
                        size_t n) {
  weir_sup_opts def;
  if (!rt || !cs || !id || (n && !children)) return WEIR_EINVAL;
  if (!o) {
    weir_sup_opts_init(&def);
    o = &def;
  }
  int rc = check_specs(o, children, n);
  if (rc) return rc;
  weir__sup_def *d = weir__sup_def_new(o, children, n);
  if (!d) return WEIR_ENOMEM;
  rc = weir__retire(rt, d, (void (*)(void *))weir__sup_def_free);
  if (rc) {
    weir__sup_def_free(d);
    return rc;
  }
  weir_child_spec_init(cs, id, &sup_server, NULL);
  cs->is_supervisor = 1;
  cs->sup_def = d;
  cs->shutdown_ms = -1; /* a supervisor gets all the time it needs */
  return WEIR_OK;
}

/* Runs fn inside the supervisor `sup` (its state is the weir__sup). */
typedef struct sup_req {
  int (*fn)(weir__sup *s, struct sup_req *r);
  const char *id;
  weir_child_info *out;
  size_t n, count;
  weir_child_counts *counts;
  unsigned parts;
  int rc;
} sup_req;

static void sup_req_run(weir_ctx *cx, void *arg) {
  sup_req *r = arg;
  WEIR__ASSERT(!cx || cx->p->srv != &sup_server || WEIR__LD(cx->p->blocking));
  if (!cx || cx->p->srv != &sup_server || !cx->p->state) {
    r->rc = cx ? WEIR_EINVAL : WEIR_ENOPROC;
    return;
  }
  r->rc = r->fn(cx->p->state, r);
}

static int sup_request(weir_rt *rt, weir_pid sup, sup_req *r) {
  if (!rt) return WEIR_EINVAL;
  return weir__run_in(rt, sup, sup_req_run, r);
}

static int do_which(weir__sup *s, sup_req *r) {
  size_t k = 0;
  for (size_t i = 0; i < s->n; i++) {
    sup_child *ch = &s->c[i];
    if (ch->removed) continue;
    if (k < r->n) {
      weir_child_info *ci = &r->out[k];
      memset(ci, 0, sizeof *ci);
      memcpy(ci->id, ch->id, sizeof ci->id);
      ci->pid = ch->pid;
      ci->is_supervisor = ch->spec.is_supervisor;
      ci->restart = ch->spec.restart;
    }
    k++;
  }
  r->count = k;
  return WEIR_OK;
}

int weir_sup_which_children(weir_rt *rt, weir_pid sup, weir_child_info *out,
                            size_t n, size_t *count) {
  if (n && !out) return WEIR_EINVAL;
  sup_req r = {.fn = do_which, .out = out, .n = n};
  int rc = sup_request(rt, sup, &r);
  if (rc == WEIR_OK) rc = r.rc;
  if (rc == WEIR_OK && count) *count = r.count;
  return rc;
}

int weir_supervisor_stats(weir_rt *rt, weir_pid sup, weir_sup_stats *st) {
  if (!rt || !st) return WEIR_EINVAL;
  weir__proc *p = weir__proc_get(rt, sup);
  if (!p) return WEIR_ENOPROC;
  weir__slotx *sx = WEIR__LD(p->x);
  /* acquire: pairs with sup_init's release of sup_self */
  if (!sx || __atomic_load_n(&sx->sup_self, __ATOMIC_ACQUIRE) != sup.id)
    return weir__proc_get(rt, sup) ? WEIR_EINVAL : WEIR_ENOPROC;
  memset(st, 0, sizeof *st);
  st->strategy = (weir_strategy)WEIR__LD(sx->sup_strategy);
  st->max_restarts = WEIR__LD(sx->sup_max_restarts);
  st->max_seconds = WEIR__LD(sx->sup_max_seconds);
  st->restarts = WEIR__LD(sx->sup_restarts);
  uint64_t last = WEIR__LD(sx->sup_last_ns);
  int recent = WEIR__LD(sx->sup_recent);
  uint64_t w = (uint64_t)st->max_seconds * 1000000000ull;
  if (!last || weir__now_ns() - last > w) recent = 0;
  if (recent > st->max_restarts) recent = st->max_restarts;
  st->restarts_recent = recent;
  st->intensity_left = st->max_restarts - recent;
  /* it may have ended while we read: say so */
  if (!weir__proc_get(rt, sup)) return WEIR_ENOPROC;
  return WEIR_OK;
}

const char *weir_strategy_name(weir_strategy s) {
  switch (s) {
  case WEIR_ONE_FOR_ONE:
    return "one_for_one";
  case WEIR_ONE_FOR_ALL:
    return "one_for_all";
  case WEIR_REST_FOR_ONE:
    return "rest_for_one";
  }
  return "unknown";
}

static int do_count(weir__sup *s, sup_req *r) {
  weir_child_counts *c = r->counts;
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < s->n; i++) {
    sup_child *ch = &s->c[i];
    if (ch->removed) continue;
    c->specs++;
    if (!weir_pid_is_none(ch->pid)) c->active++;
    if (ch->spec.is_supervisor)
      c->supervisors++;
    else
      c->workers++;
  }
  return WEIR_OK;
}

int weir_sup_count_children(weir_rt *rt, weir_pid sup, weir_child_counts *c) {
  if (!c) return WEIR_EINVAL;
  sup_req r = {.fn = do_count, .counts = c};
  int rc = sup_request(rt, sup, &r);
  return rc == WEIR_OK ? r.rc : rc;
}

static int do_terminate(weir__sup *s, sup_req *r) {
  sup_child *ch = find_id(s, r->id);
  if (!ch) return WEIR_ENOTFOUND;
  stop_child(s, ch, false);
  if (ch->spec.restart == WEIR_TEMPORARY) ch->removed = 1;
  return WEIR_OK;
}

int weir_sup_terminate_child(weir_rt *rt, weir_pid sup, const char *id) {
  if (!id) return WEIR_EINVAL;
  sup_req r = {.fn = do_terminate, .id = id};
  int rc = sup_request(rt, sup, &r);
  return rc == WEIR_OK ? r.rc : rc;
}

static int do_restart(weir__sup *s, sup_req *r) {
  sup_child *ch = find_id(s, r->id);
  if (!ch) return WEIR_ENOTFOUND;
  if (!weir_pid_is_none(ch->pid)) return WEIR_EEXIST; /* already running */
  return start_child(s, ch);
}

int weir_sup_restart_child(weir_rt *rt, weir_pid sup, const char *id) {
  if (!id) return WEIR_EINVAL;
  sup_req r = {.fn = do_restart, .id = id};
  int rc = sup_request(rt, sup, &r);
  return rc == WEIR_OK ? r.rc : rc;
}

/* ---- partition supervisor support: add or remove partition workers ---- */

static int do_resize_children(weir__sup *s, sup_req *r) {
  unsigned want = r->parts;
  size_t have = 0;
  for (size_t i = 0; i < s->n; i++)
    if (!s->c[i].removed) have++;
  if (want > have) {
    if (want > s->cap) {
      sup_child *nc = weir__calloc(want, sizeof *nc);
      if (!nc) return WEIR_ENOMEM;
      memcpy(nc, s->c, s->n * sizeof *nc);
      for (size_t i = 0; i < s->n; i++)
        nc[i].spec.id = nc[i].id;
      weir__free(s->c);
      s->c = nc;
      s->cap = want;
    }
    size_t first = s->n;
    for (size_t i = first; i < want; i++) {
      sup_child *ch = &s->c[i];
      memset(ch, 0, sizeof *ch);
      ch->spec = s->c[0].spec;
      snprintf(ch->id, sizeof ch->id, "partition-%zu", i);
      ch->spec.id = ch->id;
      ch->partition = (int)i;
      s->n = i + 1;
      int rc = start_child(s, ch);
      if (rc != WEIR_OK) {
        /* all or nothing: the workers started by this call go too, or
           they would run on outside the routing table */
        release_held(s, ch);
        for (size_t j = i; j-- > first;)
          stop_child(s, &s->c[j], false);
        s->n = first;
        return rc;
      }
    }
  } else {
    for (size_t i = s->n; i-- > want;) {
      stop_child(s, &s->c[i], false);
    }
    s->n = want;
  }
  return WEIR_OK;
}

int weir__sup_resize_children(weir_rt *rt, weir_pid sup, unsigned n) {
  sup_req r = {.fn = do_resize_children, .parts = n};
  int rc = sup_request(rt, sup, &r);
  return rc == WEIR_OK ? r.rc : rc;
}
