/*
 * http.h: the HTTP front end (http.c) on its own.
 *
 * http.c parses requests and answers them; everything it does with what it
 * parsed goes through a sink the caller installs at start: queue an event,
 * ask whether the node is closing, render /metrics, judge /readyz. So
 * http.c knows no service: service.c installs a sink over its node, and a
 * test can install one of its own.
 */
#ifndef AGG_HTTP_H
#define AGG_HTTP_H

#include "ack.h"
#include "args.h"
#include "counters.h"
#include "event.h"

#include <stddef.h>
#include <stdint.h>

typedef struct agg_http agg_http;

typedef struct agg_http_sink {
  void *ctx; /* passed to every function below */
  /* Queues one parsed event; a weir code (WEIR_EFULL: 503). ack: the
     waiting request's token (ack.h), 0 for none. Called on the HTTP
     threads, concurrently. */
  int (*submit)(void *ctx, const agg_event *ev, uint64_t ack);
  /* 1 once the node is closing (new work is answered 503, shutting down).
     http.c asks after taking the request's ack, so it must fence (seq_cst)
     before it reads: whoever closes sets the flag, fences, then waits for
     the acks held, and sees this request's ack or this request sees the
     flag. */
  int (*closing)(void *ctx);
  /* GET /metrics: Prometheus text in a malloc'd string (http.c frees it),
     or NULL (the connection is dropped). */
  char *(*metrics)(void *ctx);
  /* GET /readyz: 1 (200 "ready"), or 0 with the reason in why (503). */
  int (*ready)(void *ctx, char *why, size_t n);
  /* Bumped by http.c: requests, accepted, rejected_full, bad_requests,
     invalid_lines, too_large. */
  agg_atomic_counters *ctr;
  /* --ack stored (o->ack): where requests take their acks. */
  agg_acks *acks;
} agg_http_sink;

/* Listens on o->host:o->port (0: any free port, *port tells which) with
   o's limits, handing what it parses to sink; o and sink are copied, and
   what sink points to must outlive *h. Returns 0, or -1 with err set
   (nothing left running). */
int agg__http_start(const agg_serve_opts *o, const agg_http_sink *sink,
                    agg_http **h, uint16_t *port, char *err, size_t errn);
/* Stops listening for new connections (open ones are still served). */
void agg__http_quiesce(agg_http *h);
/* Closes every connection, joins the HTTP threads and frees h. */
void agg__http_stop(agg_http *h);

#endif
