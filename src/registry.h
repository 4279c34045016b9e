/*
 * registry.h: registry.c, registered names (installs the name hooks).
 */
#ifndef WEIR_REGISTRY_H
#define WEIR_REGISTRY_H

#include "scheduler.h"

int weir__registry_init(weir_rt *rt);
void weir__registry_free(weir_rt *rt);
/* Releases p's registered name (its exit). */
void weir__registry_drop_pid(weir_rt *rt, weir__proc *p);
void weir__registry_name(weir_rt *rt, weir__proc *p, char *buf, size_t n);

#endif
