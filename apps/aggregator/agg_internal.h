/*
 * agg_internal.h: what service.c and http.c share.
 */
#ifndef AGG_INTERNAL_H
#define AGG_INTERNAL_H

#include "counters.h"
#include "service.h"
#include "worker.h"

typedef struct agg_http agg_http;
struct agg_acks;

struct agg_service {
  agg_serve_opts opts;
  agg_service_hooks hooks;
  char db_url[1024];
  weir_rt *rt;
  weir_pid sup;               /* singleton: its supervisor */
  weir_pid ps;                /* partitioned: the partition supervisor */
  _Atomic uint64_t singleton; /* the "aggregator" pid (re-read on restart) */
  weir_pid alarm_proc;
  unsigned nworkers;
  agg_worker_cfg wcfg;
  agg_atomic_counters ctr;
  _Atomic uint64_t unflushed; /* rows a worker could not store at the end */
  /* Set when agg_service_stop begins: no more injected crashes, because a
     supervisor that is stopping restarts nothing (the rest of a crashed
     worker's mailbox would be dead-lettered, as in OTP). Relaxed: a flag
     read once per event, ordering nothing else. */
  atomic_int stopping;
  /* Set when agg_service_stop begins: requests are refused (503, shutting
     down) from then on, so the acks in flight can only finish. */
  atomic_int closing;
  weir_pid dead_letter_proc;
  struct agg_acks *acks;      /* --ack stored */
  struct weir_stream *stream; /* --stream: an ingest node */
  agg_http *http;
};

/* http.c */
int agg__http_start(agg_service *svc, agg_http **h, uint16_t *port, char *err,
                    size_t errn);
/* Stops listening for new connections (open ones are still served). */
void agg__http_quiesce(agg_http *h);
/* Closes every connection and joins the HTTP threads. */
void agg__http_stop(agg_http *h);

#endif
