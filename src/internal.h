/*
 * internal.h: the umbrella of the runtime's private headers, one per module,
 * included in stack order (nng's core/nng_impl.h): a header may use only
 * what is above it in this list. Nothing here is API; names are weir__
 * (exported only to the static library, for the tests). The layers and the
 * hook table that is their only way up: docs/ARCHITECTURE.md.
 *
 * The central object is the process slot (weir__proc). A slot owns a mailbox
 * that outlives any one incarnation of a process: a pid is (generation, slot)
 * and every queued message is stamped with the generation it was sent to. A
 * message whose generation the slot no longer accepts is a dead letter. So a
 * sender that raced with the receiver's exit never touches freed memory (slots
 * are type-stable until weir_rt_stop), and a supervisor can restart a child in
 * the same slot so that the next incarnation inherits the queued messages.
 */
#ifndef WEIR_INTERNAL_H
#define WEIR_INTERNAL_H

#include "base.h"      /* macros, os.c: clock, sleep, futex */
#include "alloc.h"     /* alloc.c: the one door for memory */
#include "msg.h"       /* msg.c: messages */
#include "slot.h"      /* the process slot (data) */
#include "mailbox.h"   /* mailbox.c */
#include "node.h"      /* the node (data) and the hook table */
#include "proc.h"      /* proc.c, run.c: table, spawn, delivery, run loop */
#include "iopool.h"    /* iopool.c: blocking processes */
#include "scheduler.h" /* sched.c: the schedulers */
#include "registry.h"  /* registry.c: names */
#include "timer.h"     /* timer.c: timers */
#include "server.h"    /* server.c: calls */
#include "overload.h"  /* overload.c: bounds, dead letters */
#include "report.h"    /* report.c: crash and supervisor reports */
#include "sup.h"       /* sup.c, partsup.c: supervision */
#include "trace.h"     /* trace.c: message tracing */
#include "alarm.h"     /* alarm.c: overload alarms */

/* console.c */
int weir__console_start(weir_rt *rt, const char *path);
void weir__console_stop(weir_rt *rt);

#endif
