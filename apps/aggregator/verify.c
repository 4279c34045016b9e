/*
 * verify.c: checks a database against the load generator's accept log.
 *
 * The log holds, per user, the seqs the service accepted, in send order.
 * Reading the table in insertion order (ORDER BY id), each user's rows must
 * be exactly that list: a row not in it was stored without being accepted
 * (or twice), a different seq is a loss or a reordering, and a list not
 * consumed to its end is a loss. One pass, one cursor per user.
 */
#include "load.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct check {
  agg_accept_log *log;
  size_t *pos;
  uint64_t rows;
  char *msg;
  size_t msgn;
} check;

static int check_row(void *ctx, const char *user, int64_t seq) {
  check *c = ctx;
  c->rows++;
  long u = agg_load_user_index(user);
  if (u < 0 || (unsigned long)u >= c->log->users) {
    snprintf(c->msg, c->msgn, "row for unknown user '%s'", user);
    return 1;
  }
  agg_user_log *l = &c->log->u[u];
  size_t at = c->pos[u]++;
  if (at >= l->n) {
    snprintf(c->msg, c->msgn, "user %s: seq %lld stored but never accepted",
             user, (long long)seq);
    return 1;
  }
  if (l->seq[at] != seq) {
    snprintf(c->msg, c->msgn,
             "user %s: expected seq %lld next, found %lld (lost, duplicated "
             "or out of order)",
             user, (long long)l->seq[at], (long long)seq);
    return 1;
  }
  return 0;
}

int agg_accept_log_verify(agg_accept_log *log, const char *url, uint64_t *rows,
                          char *msg, size_t msgn) {
  agg_store *db;
  char err[256];
  *rows = 0;
  if (agg_store_open(url, 0, &db, err, sizeof err)) {
    snprintf(msg, msgn, "%s", err);
    return -1;
  }
  check c = {.log = log,
             .pos = calloc(log->users ? log->users : 1, sizeof(size_t)),
             .msg = msg,
             .msgn = msgn};
  int rc = c.pos ? agg_store_scan(db, check_row, &c, err, sizeof err) : -1;
  if (rc < 0) snprintf(msg, msgn, "%s", c.pos ? err : "out of memory");
  for (unsigned u = 0; rc == 0 && u < log->users; u++)
    if (c.pos[u] != log->u[u].n) {
      char ut[24];
      agg_load_user_text(u, ut, sizeof ut);
      snprintf(msg, msgn,
               "user %s: %zu accepted events missing from the database", ut,
               log->u[u].n - c.pos[u]);
      rc = 1;
    }
  *rows = c.rows;
  free(c.pos);
  agg_store_close(db);
  if (rc == 0)
    snprintf(msg, msgn,
             "all %llu accepted events stored exactly once, per-user seq "
             "order kept",
             (unsigned long long)c.rows);
  return rc == 0 ? 0 : -1;
}
