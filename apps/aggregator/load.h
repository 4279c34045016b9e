/*
 * load.h: the load generator (`weir-aggregator load`), also used in-process
 * by the demo and the tests.
 *
 * Users are spread over connections (user u always on connection u % conns)
 * and each connection sends its requests one at a time, so every user's
 * events leave in seq order and, if accepted, must be stored in that order.
 * Even-numbered users are sent as integer ids (42), odd ones as strings
 * ("u43"), so both routing paths are exercised. The rate is open-loop per
 * connection (a schedule of send times; a late connection catches up).
 * A connection refused means the service is gone: that connection stops
 * (this is how a load ends when the service is stopped under it).
 */
#ifndef AGG_LOAD_H
#define AGG_LOAD_H

#include "args.h"

#include <stddef.h>
#include <stdint.h>

typedef struct agg_user_log { /* accepted seqs of one user, in send order */
  int64_t *seq;
  size_t n, cap;
  /* seqs sent whose reply never came (connection error): the service may
     or may not have taken them, so the check allows them, in order, at most
     once, without requiring them */
  int64_t *unsure;
  size_t nunsure, capunsure;
} agg_user_log;

typedef struct agg_accept_log {
  unsigned users;
  agg_user_log *u;
} agg_accept_log;

typedef struct agg_load_result {
  uint64_t requests, events;
  uint64_t accepted;    /* events answered 202 (or accepted in a batch) */
  uint64_t rejected;    /* events refused with 503 (mailbox full) */
  uint64_t invalid;     /* events answered 400 */
  uint64_t errors;      /* events lost to connection errors or other statuses */
  uint64_t retry_after; /* 503 replies that carried Retry-After */
  double secs;
  double rate;                   /* accepted events per second */
  double p50_ms, p99_ms, max_ms; /* request latency */
} agg_load_result;

/* The text form of user u ("42" or "u43"). */
void agg_load_user_text(unsigned u, char *buf, size_t n);
/* User index of a stored user_id text, or -1. */
long agg_load_user_index(const char *text);

int agg_accept_log_init(agg_accept_log *log, unsigned users);
void agg_accept_log_free(agg_accept_log *log);

/* Checks the database at url against log: every accepted event stored
   exactly once and each user's in the order sent; an unsure event (see
   agg_user_log) may be stored, once, in its place. 0, or -1 with msg saying
   the first discrepancy; msg also gets the verdict on success. *rows counts
   every row read. */
int agg_accept_log_verify(agg_accept_log *log, const char *url, uint64_t *rows,
                          char *msg, size_t msgn);

/* Runs the load; log may be NULL. Returns 0, or -1 with err set (e.g. the
   service could not be reached at all). */
int agg_load_run(const agg_load_opts *o, agg_accept_log *log,
                 agg_load_result *res, char *err, size_t errn);
/* `weir-aggregator load`: runs and prints the report; the exit code. */
int agg_load_main(const agg_load_opts *o);

#endif
