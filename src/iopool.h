/*
 * iopool.h: iopool.c, the threads that run blocking processes.
 */
#ifndef WEIR_IOPOOL_H
#define WEIR_IOPOOL_H

#include "proc.h"

int weir__io_start(weir_rt *rt);
void weir__io_stop(weir_rt *rt);
void weir__io_schedule(weir_rt *rt, weir__proc *p);
bool weir__on_io_thread(void);

#endif
