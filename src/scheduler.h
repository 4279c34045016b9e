/*
 * scheduler.h: sched.c, the M:N scheduler (installs hooks.schedule). Not
 * sched.h: the tests put src/ on the include path, where it would hide
 * libc's <sched.h>.
 */
#ifndef WEIR_SCHEDULER_H
#define WEIR_SCHEDULER_H

#include "iopool.h"

void weir__schedule(weir_rt *rt, weir__proc *p);
int weir__sched_start(weir_rt *rt);
void weir__sched_stop(weir_rt *rt);
/* One tick of the watchdog (timer.c's thread calls it). */
void weir__sched_watchdog(weir_rt *rt);
bool weir__on_scheduler(void); /* current thread is a scheduler thread */

#endif
