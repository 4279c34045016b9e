/*
 * signal.c: links, monitors and exit signals, the calls a process makes
 * (weir_link, weir_monitor, weir_exit...). Each sends a runtime signal
 * through the target's mailbox, so that signals keep Erlang's per-sender
 * order with the messages around them; the bookkeeping on each side
 * (proc.c) runs in the owner's own run. A weir_ctx exists only inside its
 * process's callbacks: Debug builds check that each call here comes from
 * the callback cx was handed to (WEIR__ASSERT).
 */
#include "internal.h"

int weir_link(weir_ctx *cx, weir_pid pid) {
  if (!cx) return WEIR_EINVAL;
  WEIR__ASSERT(weir__current_ctx() == cx); /* from its own callback */
  weir__proc *p = cx->p;
  weir_pid self = weir__proc_pid(p);
  if (weir_pid_eq(self, pid)) return WEIR_OK;
  weir__ext *e = weir__ext_get(p);
  if (!e) return WEIR_ENOMEM;
  int rc = weir__link_add(e, pid);
  if (rc) return rc;
  /* The LINK signal carries the target's pid (aux) so that a dead-lettered
     LINK can answer with an exit signal from the right pid. */
  rc = weir__signal(p->rt, self, pid, WEIR__K_LINK, 0, pid.id, 0);
  if (rc == WEIR_ENOMEM) {
    weir__link_del(e, pid);
    return rc;
  }
  if (rc == WEIR_ENOPROC)
    rc = weir__signal(p->rt, pid, self, WEIR__K_EXIT, 0, 0, WEIR_REASON_NOPROC);
  /* The exit signal to ourselves may fail only with ENOMEM. */
  return rc == WEIR_ENOPROC ? WEIR_OK : rc;
}

int weir_unlink(weir_ctx *cx, weir_pid pid) {
  if (!cx) return WEIR_EINVAL;
  WEIR__ASSERT(weir__current_ctx() == cx);
  weir__proc *p = cx->p;
  weir__link_del(p->ext, pid);
  int rc = weir__signal(p->rt, weir__proc_pid(p), pid, WEIR__K_UNLINK, 0, 0, 0);
  return rc == WEIR_ENOPROC ? WEIR_OK : rc;
}

int weir_monitor(weir_ctx *cx, weir_pid pid, weir_ref *ref) {
  if (!cx) return WEIR_EINVAL;
  WEIR__ASSERT(weir__current_ctx() == cx);
  weir__proc *p = cx->p;
  weir__ext *e = weir__ext_get(p);
  if (!e) return WEIR_ENOMEM;
  weir_ref r = weir__new_ref(p->rt);
  int rc = weir__mon_add(e, r, pid, 0);
  if (rc) return rc;
  weir_pid self = weir__proc_pid(p);
  rc = weir__signal(p->rt, self, pid, WEIR__K_MONITOR, r, pid.id, 0);
  if (rc == WEIR_ENOPROC)
    rc = weir__signal(p->rt, pid, self, WEIR__K_DOWN, r, 0, WEIR_REASON_NOPROC);
  if (rc) {
    weir__mon_del(e, r, 0, NULL);
    return rc;
  }
  if (ref) *ref = r;
  return WEIR_OK;
}

int weir_demonitor(weir_ctx *cx, weir_ref ref) {
  if (!cx) return WEIR_EINVAL;
  WEIR__ASSERT(weir__current_ctx() == cx);
  weir__proc *p = cx->p;
  weir_pid target;
  if (!weir__mon_del(p->ext, ref, 0, &target)) return WEIR_ENOTFOUND;
  int rc = weir__signal(p->rt, weir__proc_pid(p), target, WEIR__K_DEMONITOR,
                        ref, 0, 0);
  return rc == WEIR_ENOPROC ? WEIR_OK : rc;
}

void weir_trap_exit(weir_ctx *cx, int on) {
  WEIR__ASSERT(!cx || weir__current_ctx() == cx); /* owner-only field */
  if (cx) cx->p->trap_exit = on ? 1 : 0;
}

int weir_exit(weir_rt *rt, weir_pid pid, int reason) {
  if (!rt) return WEIR_EINVAL;
  weir_ctx *cx = weir__current_ctx();
  if (cx && cx->p->rt == rt && weir_pid_eq(weir__proc_pid(cx->p), pid)) {
    cx->exiting = 1;
    cx->exit_reason = reason == WEIR_REASON_KILL ? WEIR_REASON_KILLED : reason;
    return WEIR_OK;
  }
  weir__proc *p = weir__proc_get(rt, pid);
  if (!p) return WEIR_ENOPROC;
  if (reason == WEIR_REASON_KILL)
    /* The generation, not a bit: a kill that races with the target's own
       exit can never hit the next incarnation of the slot. */
    atomic_store_explicit(&p->kill, weir__pid_gen(pid), memory_order_release);
  weir_pid from = cx && cx->p->rt == rt ? weir__proc_pid(cx->p) : WEIR_PID_NONE;
  int rc =
      weir__signal(rt, from, pid, WEIR__K_EXIT, 1 /* explicit */, 0, reason);
  /* A running process may see the kill flag and end before the signal is
     delivered: the kill happened all the same. */
  if (rc == WEIR_ENOPROC && reason == WEIR_REASON_KILL) rc = WEIR_OK;
  return rc;
}
