/*
 * store_fault.c: the fault hook (--fail-db-every) every backend calls
 * before its commit. A counter per handle, which is per worker, so no
 * sharing between threads. Kept below store.c and the backends, so that a
 * backend never calls back into store.c.
 */
#include "store_backend.h"

#include <stdio.h>

void agg_store_fail_every(agg_store *s, uint32_t n) {
  s->fail_every = n;
}

int agg__store_fault(agg_store *s, char *err, size_t errn) {
  if (!s->fail_every || ++s->writes % s->fail_every) return 0;
  snprintf(err, errn, "injected write failure (--fail-db-every %u)",
           s->fail_every);
  return 1;
}
