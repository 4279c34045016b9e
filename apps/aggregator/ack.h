/*
 * ack.h: a request that waits until its events are stored (--ack stored).
 *
 * The HTTP side makes one agg_ack per request, adds one to it per event it
 * casts (the event's packed header carries the ack as a token), suspends the
 * connection and arms the ack. The worker that commits an event reports it
 * with agg_ack_done; the report that completes the last event calls the
 * ack's wake function once, and the HTTP side resumes the connection and
 * answers with the stored counts. An ack that is not complete within the
 * timeout is woken as timed out instead (503 + Retry-After), exactly once:
 * whichever comes first, the last commit or the deadline, wins a
 * compare-and-swap and the other does nothing.
 *
 * Ownership: an ack is reference counted: one reference for the request
 * (dropped by agg_ack_release when the request is finished) and one per event
 * in flight (dropped by agg_ack_done, from the worker that stored it, or from
 * whoever learns that it was lost: a dead letter, a worker giving up). The
 * wake function runs on the thread that completed the ack (a worker, the
 * timeout thread, or the arming thread itself) with no lock of this module
 * held, and must not block.
 */
#ifndef AGG_ACK_H
#define AGG_ACK_H

#include <stddef.h>
#include <stdint.h>

typedef struct agg_ack agg_ack;
typedef struct agg_acks agg_acks; /* the live acks and their timeout thread */

typedef void (*agg_ack_wake_fn)(void *ud);

typedef enum {
  AGG_ACK_WAITING = 0,
  AGG_ACK_DONE,    /* every event stored or lost: see the counts */
  AGG_ACK_TIMEDOUT /* the deadline passed first */
} agg_ack_state;

/* Starts the timeout thread; 0, or -1 (errno set). */
int agg_acks_start(unsigned timeout_ms, agg_acks **out);
/* Joins the thread. Acks still waiting are never woken: stop them first
   (see agg_acks_wait_idle). */
void agg_acks_stop(agg_acks *a);
/* Waits until no request holds an ack (every one released), at most ms
   milliseconds; returns how many are still held. */
size_t agg_acks_wait_idle(agg_acks *a, unsigned ms);
/* Requests answered 503 because their events were not stored in time. */
uint64_t agg_acks_timeouts(agg_acks *a);

/* A new ack for one request, or NULL (out of memory). wake(ud) is called
   once when it completes or times out, after agg_ack_arm. */
agg_ack *agg_ack_new(agg_acks *a, agg_ack_wake_fn wake, void *ud);
/* The token that travels with an event; add one event before casting it,
   and agg_ack_cancel it if the cast is refused. */
uint64_t agg_ack_add(agg_ack *k);
void agg_ack_cancel(agg_ack *k);
/* The request has cast all its events and is ready to be woken (its
   connection suspended). Starts the deadline. If every event is already
   done, wake runs here, on the caller's thread. */
void agg_ack_arm(agg_ack *k);
/* One event of token's ack is done: stored = 1 (committed, or found already
   stored), 0 (lost: it will never be stored). Drops the event's reference. */
void agg_ack_done(uint64_t token, int stored);
/* The outcome, once woken; stored/lost counts may be NULL. */
agg_ack_state agg_ack_result(agg_ack *k, uint64_t *stored, uint64_t *lost);
/* The request is finished with k (answered or gone). */
void agg_ack_release(agg_ack *k);

#endif
