/*
 * store.c: picks the backend from the URL and forwards to it (see store.h).
 * Kept apart so that callers never include sqlite3.h or libpq-fe.h. The
 * backends are entries in a table (store_backend.h): this file knows each
 * one's entry and nothing else of it, and no backend calls into this file.
 */
#include "store_backend.h"

#include <stdio.h>
#include <string.h>

static const agg_store_backend *const BACKENDS[] = {&agg__sqlite_backend,
                                                    &agg__pg_backend};

int agg_store_open(const char *url, int create, agg_store **s, char *err,
                   size_t errn) {
  for (size_t i = 0; i < sizeof BACKENDS / sizeof BACKENDS[0]; i++) {
    const agg_store_backend *b = BACKENDS[i];
    for (size_t j = 0; j < sizeof b->prefix / sizeof b->prefix[0]; j++)
      if (b->prefix[j] && strncmp(url, b->prefix[j], strlen(b->prefix[j])) == 0)
        return b->open(url, create, s, err, errn);
  }
  snprintf(err, errn, "unknown database URL '%.60s'", url);
  return -1;
}

int agg_store_insert(agg_store *s, const agg_row *rows, size_t n,
                     size_t *inserted, char *err, size_t errn) {
  *inserted = 0;
  if (n == 0) return 0;
  return s->ops->insert(s, rows, n, inserted, err, errn);
}

int agg_store_scan(agg_store *s, agg_scan_fn fn, void *ctx, char *err,
                   size_t errn) {
  return s->ops->scan(s, fn, ctx, err, errn);
}

int agg_store_reset(agg_store *s, char *err, size_t errn) {
  return s->ops->reset(s, err, errn);
}

void agg_store_close(agg_store *s) {
  if (s) s->ops->close(s);
}

static int no_stream(char *err, size_t errn) {
  snprintf(err, errn, "stream offsets need PostgreSQL (--db postgresql://...)");
  return -1;
}

int agg_store_stream_init(agg_store *s, char *err, size_t errn) {
  if (!s->ops->stream_init) return no_stream(err, errn);
  return s->ops->stream_init(s, err, errn);
}

int agg_store_stream_claim(agg_store *s, unsigned partition, uint64_t token,
                           const char *node, uint64_t *stored_seq, int *fenced,
                           char *err, size_t errn) {
  *fenced = 0;
  if (!s->ops->stream_claim) return no_stream(err, errn);
  return s->ops->stream_claim(s, partition, token, node, stored_seq, fenced,
                              err, errn);
}

int agg_store_stream_insert(agg_store *s, const agg_row *rows, size_t n,
                            unsigned partition, uint64_t token,
                            const char *node, uint64_t first_seq,
                            uint64_t last_seq, size_t *inserted, int *fenced,
                            char *err, size_t errn) {
  *inserted = 0;
  *fenced = 0;
  if (!s->ops->stream_insert) return no_stream(err, errn);
  return s->ops->stream_insert(s, rows, n, partition, token, node, first_seq,
                               last_seq, inserted, fenced, err, errn);
}
