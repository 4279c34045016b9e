/*
 * store.h: where events end up: SQLite (the embedded default) or PostgreSQL.
 *
 * One schema for both:
 *   events(id           autoincrementing, the insertion order,
 *          user_id      TEXT, seq INTEGER, event TEXT, data TEXT (JSON),
 *          received_at  INTEGER microseconds since the epoch,
 *          UNIQUE(user_id, seq))
 * Inserts are idempotent (INSERT OR IGNORE / ON CONFLICT DO NOTHING): a
 * client retrying an event it is unsure about cannot create a duplicate, and
 * ordering by id shows the order events were stored in, so per-user order can
 * be checked.
 *
 * A store handle is one connection, used by one thread at a time: each worker
 * owns its own (the seed's "each partition owns its DB connection").
 */
#ifndef AGG_STORE_H
#define AGG_STORE_H

#include "event.h"

#include <stddef.h>
#include <stdint.h>

typedef struct agg_store agg_store; /* see store_backend.h */

/* Opens url ("sqlite:PATH" or "postgresql://..."); create = 1 also creates
   the table if missing. Returns 0, or -1 with err set. */
int agg_store_open(const char *url, int create, agg_store **s, char *err,
                   size_t errn);
/* Inserts rows in one transaction. *inserted = rows that were new (the rest
   were duplicates). Returns 0, or -1 with err set and nothing committed. */
int agg_store_insert(agg_store *s, const agg_row *rows, size_t n,
                     size_t *inserted, char *err, size_t errn);
/* Calls fn for every row in insertion order (ORDER BY id); stops early and
   returns fn's value if it is non-zero. Returns 0, or -1 with err set. */
typedef int (*agg_scan_fn)(void *ctx, const char *user, int64_t seq);
int agg_store_scan(agg_store *s, agg_scan_fn fn, void *ctx, char *err,
                   size_t errn);
/* Deletes every row (for a fresh demo or test run). */
int agg_store_reset(agg_store *s, char *err, size_t errn);
void agg_store_close(agg_store *s);

/* ---- the stream consumer's offsets (PostgreSQL only) ----------------------
 *
 *   stream_offsets(partition INT PRIMARY KEY, stream_seq BIGINT,
 *                  lease_rev BIGINT, node TEXT)
 *   stream_commits(id BIGSERIAL, partition, lease_rev, node, first_seq,
 *                  last_seq, n, at TIMESTAMPTZ): one row per batch, the audit
 *                  trail the cluster test checks fencing against
 *
 * A partition's rows, offset and audit row are written in one transaction
 * that first locks the partition's offset row and refuses (*fenced = 1) when
 * a newer lease revision is recorded there: a node that lost its lease can
 * never commit over its successor. SQLite handles answer ENOTSUP-like -1
 * with err set. */
int agg_store_stream_init(agg_store *s, char *err, size_t errn);
/* Records token as partition's owner unless a newer one is there (*fenced
   = 1); *stored_seq = the partition's last stored stream sequence. */
int agg_store_stream_claim(agg_store *s, unsigned partition, uint64_t token,
                           const char *node, uint64_t *stored_seq, int *fenced,
                           char *err, size_t errn);
/* Inserts rows (as agg_store_insert) with the offset last_seq and an audit
   row, in one transaction, unless fenced. */
int agg_store_stream_insert(agg_store *s, const agg_row *rows, size_t n,
                            unsigned partition, uint64_t token,
                            const char *node, uint64_t first_seq,
                            uint64_t last_seq, size_t *inserted, int *fenced,
                            char *err, size_t errn);

/* Fault injection: from now on every nth agg_store_insert on this handle
   fails (0 = never) as a write error would, after the rows were written and
   before the commit, so the rollback path runs too. */
void agg_store_fail_every(agg_store *s, uint32_t n);

#endif
