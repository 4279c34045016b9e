/*
 * weir_stream.h: a partitioned, replicated event stream on NATS JetStream,
 * fed into weir processes (optional module: libweir_stream, built when
 * libnats is found; the core library does not depend on it).
 *
 * The stream has P partitions: partition i is the subject PREFIX.i, and a
 * key's partition is FNV-1a-32(key) mod P, so every event of one key is in
 * one partition, in publish order. Two halves, usable apart:
 *
 * Publisher (weir_stream_publisher_start): a partition supervisor of
 * blocking weir processes, routed by key, each with its own JetStream
 * context. A process takes the events waiting in its mailbox as one window
 * (at most one event per key, at most 256), publishes them asynchronously
 * with a message id (so the server drops a duplicate of a retry or of a
 * client's resend inside the stream's duplicate window), waits for the
 * acknowledgements, and publishes again, in order and with the same id,
 * whatever failed (a leader election, a timeout) before it takes the next
 * window. So a key never has two publishes in flight and a retry cannot
 * overtake a later event of its key. done(ud, token, status) is called once
 * per event, on the publisher's thread: WEIR_OK when the stream acknowledged
 * it (stored on a majority of the replicas), WEIR_ETIMEDOUT when it could
 * not be published within publish_timeout_ms (then it was given up, and the
 * caller answers its client "retry": a resend is deduplicated by its id).
 *
 * Consumer (weir_stream_consumer_start): partition ownership through leases
 * in a JetStream key-value bucket, and one blocking weir process per owned
 * partition that feeds batches in stream order to the caller's store
 * function and acknowledges them only after it returned WEIR_OK (durable).
 * A lease is a KV key "p.I" created or renewed by compare-and-set; its
 * revision is the fencing token the caller stores with its offset, so that
 * a node that lost its lease (paused, partitioned away) cannot commit over
 * its successor. Leases live lease_ttl_ms (default 15 s: longer than a Raft
 * election) unless renewed (every third of it); each node also keeps a
 * heartbeat key "n.NODE", and a node owns at most ceil(P / live nodes)
 * partitions, so partitions spread over the live nodes and move when one
 * dies or joins. On taking a partition the node calls claim(), which must
 * record the new token durably (so every older owner is fenced from then on)
 * and return the last stream sequence stored; fetching resumes after it,
 * from a consumer of the node's own (named after the partition, node and
 * revision; the previous owner's is deleted).
 *
 * Errors are weir codes (weir.h); the functions that talk to the servers
 * also write one line of text into err. Threads: the callbacks run on weir
 * blocking processes (the I/O pool), never on a scheduler.
 */
#ifndef WEIR_STREAM_H
#define WEIR_STREAM_H

#include "weir.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weir_stream weir_stream;

typedef struct weir_stream_opts {
  const char *urls;       /* "nats://h:p,nats://h:p,...", required */
  const char *name;       /* stream name (default "WEIR_EVENTS"); the subjects
                             are weir.<name in lower case>.<partition>, the KV
                             bucket <name>_leases */
  unsigned partitions;    /* default 8 */
  unsigned replicas;      /* default 3 (1 for a single server) */
  unsigned lease_ttl_ms;  /* default 15000 */
  uint64_t dup_window_ms; /* duplicate window (default 120000) */
  int create;             /* 1 (default): create the stream and bucket if
                             missing; an existing one must match partitions
                             and replicas (else WEIR_EINVAL and why) */
} weir_stream_opts;

WEIR_API void weir_stream_opts_init(weir_stream_opts *o);

/* Connects to the servers (retrying for up to connect_ms while none
   answers) and creates or checks the stream (its description records the
   partition count, so nodes that disagree on it are refused).
   Errors: EINVAL (bad options, or an existing stream or bucket that does
   not match: err says how), ESYS (no server reachable, or JetStream not
   answering within connect_ms), ENOTFOUND (create 0 and no stream),
   ENOMEM. */
WEIR_API int weir_stream_open(const weir_stream_opts *o, unsigned connect_ms,
                              weir_stream **out, char *err, size_t errn);
/* Closes the connection; the publisher and consumer must be stopped. */
WEIR_API void weir_stream_close(weir_stream *s);
/* Partition of a key: FNV-1a-32 of its bytes mod partitions. */
WEIR_API unsigned weir_stream_partition_of(const weir_stream *s,
                                           const void *key, size_t len);
WEIR_API unsigned weir_stream_partitions(const weir_stream *s);
/* 1 while connected to a server (0 while the client reconnects). */
WEIR_API int weir_stream_connected(weir_stream *s);

/* ---- publisher ----------------------------------------------------------- */

typedef void (*weir_stream_done_fn)(void *ud, uint64_t token, int status);

typedef struct weir_stream_pub_opts {
  unsigned workers;            /* publisher processes (default 8) */
  unsigned publish_timeout_ms; /* give an event up after this (10000) */
  weir_stream_done_fn done;    /* required */
  void *ud;
} weir_stream_pub_opts;

WEIR_API void weir_stream_pub_opts_init(weir_stream_pub_opts *o);
/* Starts the publisher processes in rt (a partition supervisor named
   "stream_publishers"). */
WEIR_API int weir_stream_publisher_start(weir_rt *rt, weir_stream *s,
                                         const weir_stream_pub_opts *o);
/* Queues one event: key (its partition and its order), id (the message id
   for deduplication, e.g. "user:seq"; NUL-terminated, <= 128 bytes), the
   payload (copied), and token, handed back to done. Errors: EINVAL,
   ENOMEM, ESTOPPED/ESHUTDOWN (publisher stopping); then done is not
   called. */
WEIR_API int weir_stream_publish(weir_stream *s, const void *key, size_t keylen,
                                 const char *id, const void *data, size_t len,
                                 uint64_t token);

/* ---- consumer ------------------------------------------------------------ */

typedef struct weir_stream_msg {
  uint64_t seq; /* stream sequence */
  const void *data;
  size_t len;
} weir_stream_msg;

typedef struct weir_stream_batch {
  unsigned partition;
  uint64_t token; /* the lease revision: the fencing token */
  const weir_stream_msg *msgs;
  size_t n;
} weir_stream_batch;

typedef struct weir_stream_consumer_ops {
  /* A partition was taken with token: record token durably (fencing every
     older owner) and set *stored_seq to the last stream sequence stored (0:
     none). WEIR_OK, WEIR_EEXIST (a newer token is already recorded: the
     partition is left to its owner), or another error (retried later). */
  int (*claim)(void *ud, unsigned partition, uint64_t token,
               uint64_t *stored_seq);
  /* Store a batch durably with its partition's offset (the last seq) and
     token, in one transaction, refusing it if a newer token is recorded.
     WEIR_OK (then the batch is acknowledged), WEIR_EEXIST (fenced: the
     partition is let go), another error (the batch is offered again). */
  int (*store)(void *ud, const weir_stream_batch *b);
  /* Told of every ownership change (may be NULL): owned 1 = taken, 0 =
     let go; why is a short text ("lease lost", "rebalance", "stop"). */
  void (*owner)(void *ud, unsigned partition, int owned, uint64_t token,
                const char *why);
  void *ud;
} weir_stream_consumer_ops;

typedef struct weir_stream_consumer_opts {
  const char *node; /* this node's name: [A-Za-z0-9_-]{1,32}, unique */
  unsigned batch;   /* messages per fetch (default 256) */
  weir_stream_consumer_ops ops;
} weir_stream_consumer_opts;

WEIR_API void weir_stream_consumer_opts_init(weir_stream_consumer_opts *o);
/* Creates or checks the lease bucket (its TTL is lease_ttl_ms: a bucket
   made with another is refused, EINVAL with both figures in err), then
   starts the lease keeper, which takes partitions and starts their
   processes in rt. */
WEIR_API int weir_stream_consumer_start(weir_rt *rt, weir_stream *s,
                                        const weir_stream_consumer_opts *o,
                                        char *err, size_t errn);
/* Stops fetching, lets every lease go (deleting its key, so another node
   takes the partition at once) and waits for the partition processes. */
WEIR_API void weir_stream_consumer_stop(weir_stream *s);

typedef struct weir_stream_part_info {
  int owned;            /* by this node */
  uint64_t token;       /* its lease revision */
  uint64_t stored_seq;  /* last stream sequence stored through this node */
  uint64_t stream_last; /* last sequence in the partition (from the
                           consumer's info: stored_seq + pending) */
  uint64_t lag;         /* messages not yet stored */
  uint64_t stored;      /* messages stored through this node */
} weir_stream_part_info;

/* Partition i as this node sees it; WEIR_EINVAL if i is out of range. */
WEIR_API int weir_stream_part_info_get(weir_stream *s, unsigned i,
                                       weir_stream_part_info *out);

#ifdef __cplusplus
}
#endif
#endif /* WEIR_STREAM_H */
