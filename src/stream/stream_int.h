/*
 * stream_int.h: what the files of the JetStream module (weir_stream.h)
 * share: the stream handle, the per-partition state, the message tags and
 * the weir__stream_* functions.
 *
 * The files form a stack; each calls only the ones below it:
 *
 *   lease.c    the lease keeper, consumer start and stop
 *   consume.c  the partition process: fetch, store, acknowledge
 *   publish.c  the publisher processes (beside the consumer: neither calls
 *              the other)
 *   stream.c   open and close: the connection, the stream, the lease bucket;
 *              the helpers every file uses
 *
 * Three kinds of weir processes, all blocking (they wait on the network):
 * stream_publisher (publish.c), stream_keeper (lease.c), stream_part
 * (consume.c).
 */
#ifndef WEIR_STREAM_INT_H
#define WEIR_STREAM_INT_H

#include "weir_stream.h"

#include <nats/nats.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Message tags of the module's processes, in one list so they stay apart:
   an event for a publisher; the next step of the keeper or a partition. */
#define WEIR__STREAM_TAG_PUB  1u
#define WEIR__STREAM_TAG_TICK 2u

/* Shared state of partition i (s->parts[i]), all atomics: the keeper
   (lease.c) writes the lease, the partition process (consume.c) reads it
   before every commit and refuses to commit on a lease not renewed within
   lease_ttl - 2 s (a process that was stopped, SIGSTOP or a long pause,
   wakes up past its lease and must not commit: its successor may already
   own the partition). The database's token check (the store's job) is the
   second fence.

   Memory orders. running is the one handoff: the partition process clears
   it last (release) and the keeper reads it (acquire) before it tells the
   owner, deletes the lease or takes the partition again, so all that the
   process did (its last store() call) happens before. What the keeper
   writes before it spawns a process is published by the spawn (init runs
   on the keeper's thread, the first tick comes through the mailbox). The
   rest are single values that publish nothing: relaxed. A stale token is
   an older revision of this node's own lease (still newer than every
   earlier owner's claim); a stale renewed_ns only makes the lease check
   stricter. */
typedef struct weir__stream_part {
  _Atomic int owned;
  _Atomic uint64_t token;
  _Atomic uint64_t renewed_ns; /* monotonic time of the last create/renew */
  _Atomic uint64_t stored_seq, stream_last, lag, stored;
  _Atomic int stop;    /* the keeper asks the partition process to end */
  _Atomic int running; /* the partition process is alive */
} weir__stream_part;

struct weir_stream {
  weir_stream_opts o;
  char name[64], prefix[96], bucket[96];
  natsConnection *nc;
  jsCtx *js, *js_fast; /* js_fast: the lease keeper's (1 s waits) */
  kvStore *kv;
  /* publisher */
  weir_rt *pub_rt;
  weir_pid pubsup;
  weir_stream_pub_opts po;
  /* consumer */
  weir_rt *con_rt;
  weir_stream_consumer_opts co;
  char node[40];
  weir_pid keeper;
  _Atomic int keeper_running, stopping;
  weir__stream_part *parts;
};

/* ---- stream.c ------------------------------------------------------------ */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t weir__stream_mono_ns(void);
void weir__stream_sleep_ms(unsigned ms);
/* Writes "what: status (JetStream error N)" into err (may be NULL) and
   returns the weir code for st: ENOMEM or ESYS. */
int weir__stream_nats_err(char *err, size_t errn, const char *what,
                          natsStatus st, jsErrCode jerr);
/* FNV-1a-32 of the key's bytes: a key's partition and the publisher's key
   hash. */
uint32_t weir__stream_fnv1a(const void *key, size_t len);
/* 1 if n is 1..max of [A-Za-z0-9_-]. */
int weir__stream_name_ok(const char *n, size_t max);
/* Binds s->kv to the lease bucket (through s->js_fast, which the caller
   made), creating it if missing and s->o.create; a bucket with another TTL
   is EINVAL. Transient failures are retried for 30 s; err says why. */
int weir__stream_ensure_bucket(weir_stream *s, char *err, size_t errn);

/* ---- consume.c ----------------------------------------------------------- */

/* Tells the caller's owner callback (if any) of an ownership change. */
void weir__stream_tell(weir_stream *s, unsigned i, int owned, uint64_t token,
                       const char *why);
/* Spawns partition i's process in rt with its lease token, fetching after
   stored_seq; the caller set s->parts[i] first (owned, running, stop 0).
   On failure *why says what for the owner callback ("out of memory",
   "cannot spawn") and no process runs. */
int weir__stream_part_start(weir_rt *rt, weir_stream *s, unsigned i,
                            uint64_t token, uint64_t stored_seq,
                            const char **why);

#endif /* WEIR_STREAM_INT_H */
