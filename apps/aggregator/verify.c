/*
 * verify.c: checks a database against the load generator's accept log.
 *
 * The log holds, per user, the seqs the service accepted, in send order.
 * Reading the table in insertion order (ORDER BY id), each user's rows must
 * be exactly that list: a row not in it was stored without being accepted
 * (or twice), a different seq is a loss or a reordering, and a list not
 * consumed to its end is a loss. One pass, one cursor per user.
 *
 * A send whose reply was lost (the service stopped under the load) is
 * "unsure": its row may be there or not. It is allowed once, only between
 * its accepted neighbours (seqs are sent in increasing order per user, so
 * "after the user's last stored seq and before the next accepted one").
 */
#include "load.h"
#include "store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct check {
  agg_accept_log *log;
  size_t *pos;
  int64_t *last; /* each user's last stored seq */
  uint64_t rows, unsure;
  char *msg;
  size_t msgn;
} check;

static int is_unsure(const agg_user_log *l, int64_t seq) {
  size_t lo = 0, hi = l->nunsure;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (l->unsure[mid] < seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < l->nunsure && l->unsure[lo] == seq;
}

static int check_row(void *ctx, const char *user, int64_t seq) {
  check *c = ctx;
  c->rows++;
  long u = agg_load_user_index(user);
  if (u < 0 || (unsigned long)u >= c->log->users) {
    snprintf(c->msg, c->msgn, "row for unknown user '%s'", user);
    return 1;
  }
  agg_user_log *l = &c->log->u[u];
  size_t at = c->pos[u];
  if (seq > c->last[u] && (at >= l->n || seq < l->seq[at]) &&
      is_unsure(l, seq)) {
    c->last[u] = seq;
    c->unsure++;
    return 0;
  }
  c->pos[u]++;
  c->last[u] = seq;
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
  size_t nu = log->users ? log->users : 1;
  check c = {.log = log,
             .pos = calloc(nu, sizeof(size_t)),
             .last = malloc(nu * sizeof(int64_t)),
             .msg = msg,
             .msgn = msgn};
  int ok = c.pos && c.last;
  for (size_t i = 0; ok && i < nu; i++)
    c.last[i] = INT64_MIN;
  int rc = ok ? agg_store_scan(db, check_row, &c, err, sizeof err) : -1;
  if (rc < 0) snprintf(msg, msgn, "%s", ok ? err : "out of memory");
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
  free(c.last);
  agg_store_close(db);
  if (rc == 0 && c.unsure)
    snprintf(msg, msgn,
             "all %llu accepted events stored exactly once, per-user seq "
             "order kept (and %llu sends whose reply was lost, once each, "
             "in order)",
             (unsigned long long)(c.rows - c.unsure),
             (unsigned long long)c.unsure);
  else if (rc == 0)
    snprintf(msg, msgn,
             "all %llu accepted events stored exactly once, per-user seq "
             "order kept",
             (unsigned long long)c.rows);
  return rc == 0 ? 0 : -1;
}
