/*
 * consume.h: `weir-aggregator consume`, a consumer node of the JetStream
 * stream (see consume.c and docs/AGGREGATOR.md, "Beyond one machine").
 */
#ifndef AGG_CONSUME_H
#define AGG_CONSUME_H

#include "args.h"

/* Runs until SIGTERM or SIGINT; the exit code (2: the stream's settings
   do not match, 1: another failure). */
int agg_consume_main(const agg_serve_opts *o);

#endif
