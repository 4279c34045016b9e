/*
 * worker.h: the aggregator worker (worker.c), a weir_server run as a
 * blocking process, one per partition (or the singleton "aggregator").
 *
 * Its argument is an agg_worker_cfg: the settings, and where it reports:
 * the counters, the rows it could not store, the stopping flag. The worker
 * knows nothing else of whoever started it.
 */
#ifndef AGG_WORKER_H
#define AGG_WORKER_H

#include "counters.h"
#include "weir.h"

/* The tag of an event message to a worker (an agg_event_pack'd event). */
#define AGG_TAG_EVENT 1u

typedef struct agg_worker_cfg {
  const char *db_url;
  unsigned work_ms;
  unsigned batch;
  uint32_t fail_every;    /* --fail-every: crash on every Nth event */
  uint32_t fail_db_every; /* --fail-db-every: fail every Nth transaction */
  unsigned group_wait_us; /* group commit: wait for more before a small one */
  /* Owned by the caller and outliving every worker: */
  agg_atomic_counters *ctr;    /* stored, duplicates, commits, db_errors,
                                  crashes, lost */
  _Atomic uint64_t *unflushed; /* rows a worker could not store at the end */
  /* Set (relaxed) once the node is stopping: no more injected crashes. */
  atomic_int *stopping;
} agg_worker_cfg;

/* The worker; its spawn argument is an agg_worker_cfg *. */
extern const weir_server agg_worker_server;

#endif
