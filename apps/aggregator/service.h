/*
 * service.h: the aggregator service: HTTP in, weir workers, database out.
 *
 *   HTTP thread --agg_service_submit--> weir_cast / weir_partition_cast
 *       --> worker (blocking process: sleep work_ms, buffer, batch insert)
 *       --> agg_ack_done --> the suspended request answers 202 (--ack stored)
 *
 * Singleton mode is the seed's "before": one registered process,
 * "aggregator". Partitioned mode is the "after": a partition supervisor,
 * "aggregator_partitions", keyed by user_id. Either way a full mailbox
 * (--queue-limit, REJECT) refuses the event and the client gets 503.
 *
 * agg_service_start runs a whole node (its own weir runtime), so a test or
 * the demo can start several in one process. agg_service_stop is the
 * graceful path: stop accepting, drain every mailbox, flush every batch.
 */
#ifndef AGG_SERVICE_H
#define AGG_SERVICE_H

#include "args.h"
#include "event.h"
#include "weir.h"

#include <stddef.h>
#include <stdint.h>

typedef struct agg_service agg_service;

typedef struct agg_counters {
  uint64_t requests;      /* HTTP requests handled */
  uint64_t accepted;      /* events queued to a worker (202) */
  uint64_t rejected_full; /* events refused: mailbox full (503) */
  uint64_t bad_requests;  /* 400 replies */
  uint64_t invalid_lines; /* malformed lines in batches (reported per line) */
  uint64_t too_large;     /* 413 replies */
  uint64_t stored;        /* rows committed */
  uint64_t duplicates;    /* rows ignored as already stored */
  uint64_t db_errors;     /* failed transactions (retried) */
  uint64_t commits;       /* transactions committed */
  uint64_t alarms;        /* alarms raised on this node */
  uint64_t crashes;       /* worker crashes (restarted by the supervisor) */
  uint64_t lost;          /* accepted events that will never be stored
                             (dead letters, or a database that never came
                             back): counted and logged, never silent */
  uint64_t ack_timeouts;  /* --ack stored: requests answered 503 because
                             their events were not stored in time */
} agg_counters;

/* Called on the alarm subscriber's process for every alarm (raised or
   cleared). Must not block long. */
typedef void (*agg_alarm_fn)(void *ud, const weir_alarm *a);

typedef struct agg_service_hooks {
  agg_alarm_fn on_alarm; /* NULL: print one line on stdout */
  void *ud;
  int alarm_log;          /* weir's own stderr alarm line (default off) */
  uint32_t alarm_disable; /* 0: alarm_queue / 4 */
} agg_service_hooks;

/* Starts a node, the workers, the alarm subscriber and the HTTP server.
   hooks may be NULL. Returns 0, or -1 with err set (nothing left running). */
int agg_service_start(const agg_serve_opts *o, const agg_service_hooks *hooks,
                      agg_service **svc, char *err, size_t errn);
/* The bound HTTP port (useful with port 0). */
uint16_t agg_service_port(const agg_service *svc);
weir_rt *agg_service_rt(agg_service *svc);
/* Worker count (1 in singleton mode). */
unsigned agg_service_workers(const agg_service *svc);
/* Queue length of each worker into out[0..n); returns the total. */
uint64_t agg_service_queue_lens(agg_service *svc, uint64_t *out, size_t n);
void agg_service_counters(agg_service *svc, agg_counters *c);
/* Queues one parsed event; returns a weir code (WEIR_EFULL = 503). ack: the
   waiting request's token (ack.h), 0 for none. */
int agg_service_submit(agg_service *svc, const agg_event *ev, uint64_t ack);
/* Prometheus text into a malloc'd string (caller frees), or NULL. */
char *agg_service_metrics(agg_service *svc);
/* Refuses new requests (503), lets the requests waiting for their commit
   (--ack stored) get their answer, stops HTTP, drains every mailbox into the
   database, stops the node and frees svc. final (may be NULL) gets the last
   counters. Returns 0, or -1 if events could not all be stored (see stderr). */
int agg_service_stop(agg_service *svc, agg_counters *final);

#endif
