/*
 * store_sqlite.c: the SQLite backend.
 *
 * WAL mode so readers (the demo's check, `sqlite3` by hand) never block the
 * writers, synchronous=NORMAL (durable at each checkpoint, safe against
 * corruption; one fsync per transaction would cap a 2-core box far below
 * the batch endpoint's goal), and a busy_timeout because every partition owns
 * a connection and SQLite has one writer at a time: a worker that finds the
 * write lock taken waits its turn instead of failing. Each batch is one
 * BEGIN IMMEDIATE ... COMMIT with a prepared INSERT OR IGNORE. id is the
 * rowid (INTEGER PRIMARY KEY, not AUTOINCREMENT, which costs a write to
 * sqlite_sequence per row): new rows get max(id)+1, so id is the insertion
 * order as long as the newest row is never deleted, and nothing here deletes
 * (reset empties the table). A 64 MiB page cache keeps the UNIQUE index's
 * hot pages in memory under random user order.
 */
#include "store_backend.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  agg_store base;
  sqlite3 *db;
  sqlite3_stmt *ins;
} sq_store;

static const char *SCHEMA = "CREATE TABLE IF NOT EXISTS events ("
                            " id INTEGER PRIMARY KEY,"
                            " user_id TEXT NOT NULL,"
                            " seq INTEGER NOT NULL,"
                            " event TEXT NOT NULL,"
                            " data TEXT,"
                            " received_at INTEGER NOT NULL,"
                            " UNIQUE(user_id, seq))";

static int sq_fail(sq_store *s, const char *what, char *err, size_t errn) {
  snprintf(err, errn, "sqlite: %s: %s", what, sqlite3_errmsg(s->db));
  return -1;
}

static int exec(sq_store *s, const char *sql, char *err, size_t errn) {
  if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
    return sq_fail(s, sql, err, errn);
  return 0;
}

static int sq_insert(agg_store *st, const agg_row *rows, size_t n,
                     size_t *inserted, char *err, size_t errn) {
  sq_store *s = (sq_store *)st;
  if (exec(s, "BEGIN IMMEDIATE", err, errn)) return -1;
  size_t added = 0;
  for (size_t i = 0; i < n; i++) {
    const agg_row *r = &rows[i];
    sqlite3_stmt *q = s->ins;
    sqlite3_bind_text(q, 1, r->user, (int)r->user_len, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, r->seq);
    sqlite3_bind_text(q, 3, r->event, (int)r->event_len, SQLITE_STATIC);
    if (r->data)
      sqlite3_bind_text(q, 4, r->data, (int)r->data_len, SQLITE_STATIC);
    else
      sqlite3_bind_null(q, 4);
    sqlite3_bind_int64(q, 5, r->received_us);
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE) {
      sq_fail(s, "insert", err, errn);
      sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
      return -1;
    }
    added += (size_t)sqlite3_changes(s->db);
  }
  if (agg__store_fault(st, err, errn)) {
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
  }
  if (exec(s, "COMMIT", err, errn)) {
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
  }
  *inserted = added;
  return 0;
}

static int sq_scan(agg_store *st, agg_scan_fn fn, void *ctx, char *err,
                   size_t errn) {
  sq_store *s = (sq_store *)st;
  sqlite3_stmt *q;
  if (sqlite3_prepare_v2(s->db, "SELECT user_id, seq FROM events ORDER BY id",
                         -1, &q, NULL) != SQLITE_OK)
    return sq_fail(s, "scan", err, errn);
  int rc, ret = 0;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    ret = fn(ctx, (const char *)sqlite3_column_text(q, 0),
             sqlite3_column_int64(q, 1));
    if (ret) break;
  }
  if (!ret && rc != SQLITE_DONE) ret = sq_fail(s, "scan", err, errn);
  sqlite3_finalize(q);
  return ret;
}

static int sq_reset(agg_store *st, char *err, size_t errn) {
  return exec((sq_store *)st, "DELETE FROM events", err, errn);
}

static void sq_close(agg_store *st) {
  sq_store *s = (sq_store *)st;
  sqlite3_finalize(s->ins);
  sqlite3_close(s->db);
  free(s);
}

static const agg_store_ops SQ_OPS = {
    .insert = sq_insert, .scan = sq_scan, .reset = sq_reset, .close = sq_close};

/* url: "sqlite:PATH". */
static int sq_open(const char *url, int create, agg_store **out, char *err,
                   size_t errn) {
  const char *path = url + strlen("sqlite:");
  sq_store *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errn, "sqlite: out of memory");
    return -1;
  }
  s->base.ops = &SQ_OPS;
  if (sqlite3_open_v2(path, &s->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                          SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK) {
    snprintf(err, errn, "sqlite: cannot open '%.200s': %s", path,
             s->db ? sqlite3_errmsg(s->db) : "out of memory");
    goto fail;
  }
  sqlite3_busy_timeout(s->db, 10000);
  if (exec(s, "PRAGMA journal_mode=WAL", err, errn) ||
      exec(s, "PRAGMA synchronous=NORMAL", err, errn) ||
      exec(s, "PRAGMA cache_size=-65536", err, errn))
    goto fail;
  if (create && exec(s, SCHEMA, err, errn)) goto fail;
  if (sqlite3_prepare_v2(s->db,
                         "INSERT OR IGNORE INTO events"
                         " (user_id, seq, event, data, received_at)"
                         " VALUES (?1, ?2, ?3, ?4, ?5)",
                         -1, &s->ins, NULL) != SQLITE_OK) {
    sq_fail(s, "prepare insert (does the table exist?)", err, errn);
    goto fail;
  }
  *out = &s->base;
  return 0;
fail:
  sq_close(&s->base);
  return -1;
}

const agg_store_backend agg__sqlite_backend = {.prefix = {"sqlite:", NULL},
                                               .open = sq_open};
