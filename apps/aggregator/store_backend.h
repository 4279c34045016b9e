/*
 * store_backend.h: what a store backend (store_sqlite.c, store_pg.c) is
 * made of; callers of the store never need this file.
 *
 * A backend exports one agg_store_backend entry: the URL prefixes it opens
 * and its open function, which makes a handle whose ops table does the rest.
 * store.c keeps the table of entries, picks one by prefix and forwards every
 * call through the ops; a backend calls nothing in store.c. The one thing
 * the backends share, the fault hook, lives below both in store_fault.c.
 */
#ifndef AGG_STORE_BACKEND_H
#define AGG_STORE_BACKEND_H

#include "store.h"

typedef struct agg_store_ops {
  int (*insert)(agg_store *, const agg_row *, size_t, size_t *, char *, size_t);
  int (*scan)(agg_store *, agg_scan_fn, void *, char *, size_t);
  int (*reset)(agg_store *, char *, size_t);
  void (*close)(agg_store *);
  /* stream offsets; NULL: not supported by the backend */
  int (*stream_init)(agg_store *, char *, size_t);
  int (*stream_claim)(agg_store *, unsigned, uint64_t, const char *, uint64_t *,
                      int *, char *, size_t);
  int (*stream_insert)(agg_store *, const agg_row *, size_t, unsigned, uint64_t,
                       const char *, uint64_t, uint64_t, size_t *, int *,
                       char *, size_t);
} agg_store_ops;

/* The head of every backend's handle. */
struct agg_store {
  const agg_store_ops *ops;
  uint32_t fail_every; /* see agg_store_fail_every */
  uint64_t writes;     /* insert transactions attempted */
};

/* One backend: the URL prefixes it opens (an unused one is NULL) and how.
   open gets the whole URL, prefix included, and behaves as agg_store_open:
   0 with *s set, or -1 with err set and nothing left open. */
typedef struct agg_store_backend {
  const char *prefix[2];
  int (*open)(const char *url, int create, agg_store **s, char *err,
              size_t errn);
} agg_store_backend;

extern const agg_store_backend agg__sqlite_backend; /* store_sqlite.c */
extern const agg_store_backend agg__pg_backend;     /* store_pg.c */

/* store_fault.c, for the backends: 1 if this transaction must fail (the
   injected fault), with err set. */
int agg__store_fault(agg_store *s, char *err, size_t errn);

#endif
