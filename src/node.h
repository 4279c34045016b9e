/*
 * node.h: the node (struct weir_rt), the state every module reaches through
 * rt, and the hook table through which a lower module calls an upper one.
 * Data only: rt.c starts and stops the node.
 */
#ifndef WEIR_NODE_H
#define WEIR_NODE_H

#include "mailbox.h"

typedef struct weir__sched weir__sched;
typedef struct weir__waiter weir__waiter;

/* The hook table: the only way a module calls a module above it. An upper
   module installs its hooks when it starts (weir_rt_start starts them in
   stack order, before any process runs) and they stay until weir_rt_stop;
   the caller below names the hook, never the module. Each is listed, with
   the reason for the cycle it breaks, in docs/ARCHITECTURE.md. */
typedef struct weir__hooks {
  /* sched.c: a process became runnable (a send woke it, its run ended with
     messages left). The scheduler runs processes; a process wakes it. */
  void (*schedule)(weir_rt *rt, weir__proc *p);
  /* registry.c: a name given at spawn; the name released at exit. */
  int (*name_register)(weir_rt *rt, const char *name, weir_pid pid);
  void (*name_release)(weir_rt *rt, weir__proc *p);
  /* server.c, call cleanup: answer a call that will not be handled; take
     a pending call_async on its reply, timeout or DOWN; a server that took
     calls from threads ended. */
  void (*call_fail)(weir_rt *rt, weir_from from, int err);
  bool (*pending_take)(weir__proc *p, weir_ref ref, int why);
  void (*server_gone)(weir_rt *rt, weir_pid server);
  /* timer.c: a pending call's timer, cancelled at exit. */
  int (*timer_cancel)(weir_rt *rt, weir_ref ref);
  /* overload.c: bounded mailboxes (admit a send, a pop made room, the
     policy of a new incarnation) and the dead-letter subscriber. */
  int (*bound_admit)(weir_rt *rt, weir__proc *p, weir__msg *m);
/* bound_admit took m: shed it by the policy, or (DROP_OLDEST) queued it
   itself; the caller reports WEIR_OK to the sender and must not push. */
#define WEIR__SHED 1
  /* Places in bounded p reserved for up to `want` more messages from the
     same sender (weir__bound_credit); 0 if none. */
  uint32_t (*bound_credit)(weir__proc *p, uint32_t want);
  void (*bound_popped)(weir__proc *p);
  void (*bound_mode)(weir__proc *p, bool shed_oldest);
  void (*dead_letter)(weir_rt *rt, weir_pid to, weir__msg *m, int reason);
  /* partsup.c, partition routing: may a routed message run now (a resize
     in progress defers it), and is the resize done. */
  bool (*route_admit)(weir__proc *p, const weir__msg *m);
  bool (*route_done)(weir__proc *p);
  /* report.c: an abnormal exit, before links and monitors hear of it. */
  void (*crash)(weir_ctx *cx, int reason);
  /* trace.c: a traced process took m. */
  void (*trace)(weir_rt *rt, uint64_t self, const weir__msg *m);
} weir__hooks;

struct weir_rt {
  weir_rt_opts opts;
  char *node_name;
  char *console_path;
  uint64_t rt_id;
  uint64_t start_ns;
  _Atomic int stopping;

  /* process table */
  _Atomic(weir__proc *) *slots;
  uint32_t max_processes;
  pthread_mutex_t table_mu;
  uint32_t *free_slots; /* stack of free slot indexes */
  uint32_t nfree;
  uint32_t next_fresh; /* slots never used start here */
  _Atomic uint64_t nprocs;
  _Atomic uint64_t spawn_seq;
  _Atomic uint64_t next_ref;

  /* counters for node_stats */
  _Atomic uint64_t spawned, exited, crashed, sent, dead_letters, dropped;
  _Atomic uint64_t queued_bytes; /* node-wide, for the budget */

  /* schedulers */
  weir__sched *scheds;
  unsigned nscheds;
  _Atomic unsigned nsleeping;
  _Atomic unsigned nspinning;
  pthread_mutex_t inject_mu; /* the shared queue from outside threads */
  weir__proc *inject_head, *inject_tail;
  _Atomic uint64_t inject_len;

  /* I/O pool */
  pthread_mutex_t io_mu;
  pthread_cond_t io_cv;
  weir__proc *io_head, *io_tail;
  unsigned io_live, io_idle, io_max;
  int io_stop;

  /* timers */
  pthread_t timer_thread;
  pthread_mutex_t timer_mu;
  pthread_cond_t timer_cv;
  void *timers; /* timer.c's heap */
  int timer_stop;

  /* calls from threads */
  pthread_mutex_t calls_mu;
  weir__waiter **waiters;
  uint32_t nwaiters, capwaiters;

  /* registry */
  pthread_mutex_t reg_mu;
  void *registry;

  /* subscribers */
  pthread_mutex_t sub_mu;
  weir_pid *alarm_subs;
  size_t nalarm_subs;
  weir_pid dead_letter_sub;

  /* objects freed at stop */
  pthread_mutex_t retire_mu;
  struct weir__retired *retired;

  /* the upper modules' calls, installed at start (hooks above) */
  weir__hooks hooks;

  /* the upper modules' state */
  void *console;
  void *alarm;
  void *report; /* report.c */
  void *trace;  /* trace.c */
};

extern _Atomic uint64_t weir__rt_ids;

#endif
