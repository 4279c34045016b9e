/*
 * overload.h: overload.c, bounded mailboxes, their policies and the dead
 * letters (installs the bound hooks and hooks.dead_letter).
 */
#ifndef WEIR_OVERLOAD_H
#define WEIR_OVERLOAD_H

#include "server.h"

int weir__overload_start(weir_rt *rt);
/* Admits m into bounded p (counts it) or sheds it. Consumes m on any
   error. */
int weir__bound_admit(weir_rt *rt, weir__proc *p, weir__msg *m);
/* After an admission to p: reserves places for up to `want` more messages
   (a sender's outbox spends them without touching p's counters, and gives
   back what it did not spend when its callback returns). Only for a bound
   on length alone, outside DROP_OLDEST, and at most an eighth of the room
   left, so near the bound every message is admitted alone. */
uint32_t weir__bound_credit(weir__proc *p, uint32_t want);
/* BLOCK, after each pop: wakes the senders waiting for room. */
void weir__bound_popped(weir__proc *p);
/* At each incarnation (token held): turns sender-side eviction on or off
   for the slot (DROP_OLDEST with a bound). */
void weir__bound_mode(weir__proc *p, bool shed_oldest);
void weir__dead_letter_notify(weir_rt *rt, weir_pid to, weir__msg *m,
                              int reason);

#endif
