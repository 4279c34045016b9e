/*
 * counters.h: a node's live counters, bumped by the HTTP front end (http.c)
 * and the workers (worker.c) and read by the service (service.c) for
 * /metrics and agg_service_counters. The service owns them; the others get
 * a pointer to them, so none of them needs to know the service.
 *
 * Relaxed atomics: they are statistics, never used to order other memory.
 */
#ifndef AGG_COUNTERS_H
#define AGG_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct agg_atomic_counters {
  _Atomic uint64_t requests, accepted, rejected_full, bad_requests,
      invalid_lines, too_large, stored, duplicates, db_errors, commits, alarms,
      crashes, lost;
} agg_atomic_counters;

/* ctr: an agg_atomic_counters pointer. */
#define AGG_INC(ctr, field, n)                                                 \
  atomic_fetch_add_explicit(&(ctr)->field, (n), memory_order_relaxed)

#endif
