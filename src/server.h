/*
 * server.h: server.c, the gen_server calls: call, call_async, reply, calls
 * from threads, and running a function inside a process (installs the call
 * hooks).
 */
#ifndef WEIR_SERVER_H
#define WEIR_SERVER_H

#include "timer.h"

int weir__calls_init(weir_rt *rt);
void weir__calls_free(weir_rt *rt);
int weir__reply_to(weir_rt *rt, weir_pid self, weir_from from, const void *d,
                   uint32_t len);
void weir__call_fail(weir_rt *rt, weir_from from, int err);
/* Takes a pending call_async entry: why 0 = reply (demonitor, cancel
   timer), 1 = timeout (demonitor), 2 = down (cancel timer). false if the
   ref is not pending. */
bool weir__pending_take(weir__proc *p, weir_ref ref, int why);
void weir__calls_server_gone(weir_rt *rt, weir_pid server);
/* Runs fn(cx, arg) inside process pid and waits for it (from a thread or a
   blocking process; inside pid itself it runs at once). fn gets cx NULL if
   the process ended first. EDEADLK from a scheduler thread. */
int weir__run_in(weir_rt *rt, weir_pid pid, void (*fn)(weir_ctx *, void *),
                 void *arg);

#endif
