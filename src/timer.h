/*
 * timer.h: timer.c, one thread and a heap of timers (installs
 * hooks.timer_cancel).
 */
#ifndef WEIR_TIMER_H
#define WEIR_TIMER_H

#include "registry.h"

int weir__timer_start(weir_rt *rt);
void weir__timer_stop(weir_rt *rt);
int weir__timer_add(weir_rt *rt, uint64_t due_ns, weir_pid to, weir__msg *m,
                    weir_ref ref);
int weir__timer_cancel(weir_rt *rt, weir_ref ref);

#endif
