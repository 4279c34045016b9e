/*
 * alarm.h: alarm.c, overload alarms, their sampler and subscribers.
 */
#ifndef WEIR_ALARM_H
#define WEIR_ALARM_H

#include "trace.h"

void weir__rates(weir_rt *rt, weir__proc *p, double *in_rate, double *out_rate);
uint64_t weir__alarms_active(weir_rt *rt);
int weir__alarm_start(weir_rt *rt);
void weir__alarm_stop(weir_rt *rt);
/* Frees the subscribers' list (the node stops). */
void weir__alarm_free(weir_rt *rt);

#endif
