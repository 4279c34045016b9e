/*
 * store_pg.c: the PostgreSQL backend (libpq).
 *
 * A batch is sent as multi-row INSERT ... VALUES (...),(...) ... ON CONFLICT
 * (user_id, seq) DO NOTHING statements of up to CHUNK rows, inside one
 * transaction: one round trip per CHUNK rows instead of one per row, which is
 * what makes a network database keep up with a batch endpoint. Rows of one
 * statement get their BIGSERIAL ids in VALUES order, so id still tells the
 * insertion order. Parameters go as text; the statement texts for each
 * chunk size are built once and cached per connection.
 *
 * Outages: a failed insert leaves nothing committed (one statement, or one
 * transaction) and the worker retries the same rows; a connection the server
 * dropped is reset before the next attempt. A commit whose reply was lost
 * may have happened: the retry then finds the rows already there and ON
 * CONFLICT skips them, so a retry never duplicates and never reorders (the
 * rows keep the ids of their first insert).
 */
#include "store_backend.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 1000

typedef struct {
  agg_store base;
  PGconn *conn;
  char *sql_full;     /* the statement for CHUNK rows */
  int stream_session; /* the consumer's session settings are made */
} pg_store;

static const char *SCHEMA = "CREATE TABLE IF NOT EXISTS events ("
                            " id BIGSERIAL PRIMARY KEY,"
                            " user_id TEXT NOT NULL,"
                            " seq BIGINT NOT NULL,"
                            " event TEXT NOT NULL,"
                            " data TEXT,"
                            " received_at BIGINT NOT NULL,"
                            " UNIQUE(user_id, seq))";

static void quiet(void *arg, const char *msg) {
  (void)arg;
  (void)msg;
}

static int pg_fail(pg_store *s, const char *what, char *err, size_t errn) {
  const char *m = PQerrorMessage(s->conn);
  size_t l = strlen(m);
  while (l && (m[l - 1] == '\n' || m[l - 1] == ' '))
    l--;
  snprintf(err, errn, "postgresql: %s: %.*s", what, (int)l, m);
  for (char *p = err; *p; p++) /* libpq's messages span lines: keep one */
    if (*p == '\n' || *p == '\t') *p = ' ';
  return -1;
}

static int cmd(pg_store *s, const char *sql, char *err, size_t errn) {
  PGresult *r = PQexec(s->conn, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  return ok ? 0 : pg_fail(s, sql, err, errn);
}

/* "INSERT ... VALUES ($1,...,$5),...,($5n-4,...,$5n) ON CONFLICT ..." */
static char *build_sql(size_t n) {
  size_t cap = 160 + n * 48;
  char *sql = malloc(cap);
  if (!sql) return NULL;
  size_t o = (size_t)snprintf(sql, cap,
                              "INSERT INTO events (user_id, seq, event, data,"
                              " received_at) VALUES ");
  for (size_t i = 0; i < n; i++) {
    size_t b = i * 5;
    o += (size_t)snprintf(sql + o, cap - o, "%s($%zu,$%zu,$%zu,$%zu,$%zu)",
                          i ? "," : "", b + 1, b + 2, b + 3, b + 4, b + 5);
  }
  snprintf(sql + o, cap - o, " ON CONFLICT (user_id, seq) DO NOTHING");
  return sql;
}

/* libpq reads text parameters up to their NUL (lengths are for binary
   ones), and rows are views into packed messages: copy them, NUL-terminated,
   into one arena per chunk. */
static int insert_chunk(pg_store *s, const agg_row *rows, size_t n,
                        size_t *added, char *err, size_t errn) {
  int rc = -1;
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++)
    bytes += rows[i].user_len + rows[i].event_len + rows[i].data_len + 3 + 48;
  const char **vals = malloc(n * 5 * sizeof *vals);
  char *arena = malloc(bytes);
  char *sql = n == CHUNK ? s->sql_full : build_sql(n);
  if (!vals || !arena || !sql) {
    snprintf(err, errn, "postgresql: out of memory");
    goto out;
  }
  char *a = arena;
  for (size_t i = 0; i < n; i++) {
    const agg_row *r = &rows[i];
    const char **v = vals + i * 5;
    v[0] = a, memcpy(a, r->user, r->user_len), a += r->user_len, *a++ = 0;
    v[1] = a, a += (size_t)sprintf(a, "%" PRId64, r->seq) + 1;
    v[2] = a, memcpy(a, r->event, r->event_len), a += r->event_len, *a++ = 0;
    if (r->data) {
      v[3] = a, memcpy(a, r->data, r->data_len), a += r->data_len, *a++ = 0;
    } else {
      v[3] = NULL;
    }
    v[4] = a, a += (size_t)sprintf(a, "%" PRId64, r->received_us) + 1;
  }
  PGresult *r =
      PQexecParams(s->conn, sql, (int)(n * 5), NULL, vals, NULL, NULL, 0);
  if (PQresultStatus(r) == PGRES_COMMAND_OK) {
    *added += (size_t)strtoull(PQcmdTuples(r), NULL, 10);
    rc = 0;
  } else {
    pg_fail(s, "insert", err, errn);
  }
  PQclear(r);
out:
  if (sql != s->sql_full) free(sql);
  free(vals);
  free(arena);
  return rc;
}

static int pg_insert(agg_store *st, const agg_row *rows, size_t n,
                     size_t *inserted, char *err, size_t errn) {
  pg_store *s = (pg_store *)st;
  /* A connection the server dropped (restart, failover) stays BAD until
     reset; the worker retries the same rows on the new one. */
  if (PQstatus(s->conn) != CONNECTION_OK) {
    PQreset(s->conn);
    if (PQstatus(s->conn) != CONNECTION_OK)
      return pg_fail(s, "reconnect", err, errn);
  }
  if (agg__store_fault(st, err, errn)) return -1;
  int multi = n > CHUNK;
  if (multi && cmd(s, "BEGIN", err, errn)) return -1;
  size_t added = 0;
  for (size_t i = 0; i < n; i += CHUNK) {
    size_t k = n - i < CHUNK ? n - i : CHUNK;
    if (insert_chunk(s, rows + i, k, &added, err, errn)) {
      if (multi) PQclear(PQexec(s->conn, "ROLLBACK"));
      return -1;
    }
  }
  if (multi && cmd(s, "COMMIT", err, errn)) {
    PQclear(PQexec(s->conn, "ROLLBACK"));
    return -1;
  }
  *inserted = added;
  return 0;
}

static int pg_scan(agg_store *st, agg_scan_fn fn, void *ctx, char *err,
                   size_t errn) {
  pg_store *s = (pg_store *)st;
  PGresult *r = PQexec(s->conn, "SELECT user_id, seq FROM events ORDER BY id");
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    PQclear(r);
    return pg_fail(s, "scan", err, errn);
  }
  int ret = 0;
  for (int i = 0, n = PQntuples(r); i < n && !ret; i++)
    ret = fn(ctx, PQgetvalue(r, i, 0), strtoll(PQgetvalue(r, i, 1), NULL, 10));
  PQclear(r);
  return ret;
}

static int pg_reset(agg_store *st, char *err, size_t errn) {
  return cmd((pg_store *)st, "TRUNCATE events", err, errn);
}

static void pg_close(agg_store *st) {
  pg_store *s = (pg_store *)st;
  PQfinish(s->conn);
  free(s->sql_full);
  free(s);
}

/* ---- stream offsets (see store.h) ---------------------------------------- */

static const char *STREAM_SCHEMA =
    "CREATE TABLE IF NOT EXISTS stream_offsets ("
    " partition INT PRIMARY KEY, stream_seq BIGINT NOT NULL,"
    " lease_rev BIGINT NOT NULL, node TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS stream_commits ("
    " id BIGSERIAL PRIMARY KEY, partition INT NOT NULL,"
    " lease_rev BIGINT NOT NULL, node TEXT NOT NULL, first_seq BIGINT NOT NULL,"
    " last_seq BIGINT NOT NULL, n INT NOT NULL,"
    " at TIMESTAMPTZ NOT NULL DEFAULT now())";

static int pg_ready(pg_store *s, char *err, size_t errn) {
  if (PQstatus(s->conn) != CONNECTION_OK) {
    s->stream_session = 0; /* a new session: its settings again */
    PQreset(s->conn);
    if (PQstatus(s->conn) != CONNECTION_OK)
      return pg_fail(s, "reconnect", err, errn);
  }
  return 0;
}

/* A consumer session must never hold a partition's row lock for long: a
   node paused in the middle of its transaction (SIGSTOP) would block its
   successor's claim. The server ends a transaction idle for 5 s, and a
   claim waits at most 2 s for a lock (then it is retried next tick). */
static int pg_stream_session(pg_store *s, char *err, size_t errn) {
  if (s->stream_session) return 0;
  if (cmd(s,
          "SET idle_in_transaction_session_timeout = '5s';"
          " SET lock_timeout = '2s'",
          err, errn))
    return -1;
  s->stream_session = 1;
  return 0;
}

static int pg_stream_init(agg_store *st, char *err, size_t errn) {
  pg_store *s = (pg_store *)st;
  if (pg_ready(s, err, errn)) return -1;
  /* Two nodes starting at once race on CREATE TABLE IF NOT EXISTS (a
     unique violation in the catalog): one more try settles it. */
  if (cmd(s, STREAM_SCHEMA, err, errn) == 0) return 0;
  return cmd(s, STREAM_SCHEMA, err, errn);
}

static int pg_stream_claim(agg_store *st, unsigned partition, uint64_t token,
                           const char *node, uint64_t *stored_seq, int *fenced,
                           char *err, size_t errn) {
  pg_store *s = (pg_store *)st;
  if (pg_ready(s, err, errn) || pg_stream_session(s, err, errn)) return -1;
  char p[16], t[24];
  snprintf(p, sizeof p, "%u", partition);
  snprintf(t, sizeof t, "%" PRIu64, token);
  const char *v[3] = {p, t, node};
  PGresult *r = PQexecParams(
      s->conn,
      "INSERT INTO stream_offsets (partition, stream_seq, lease_rev, node)"
      " VALUES ($1, 0, $2, $3) ON CONFLICT (partition) DO UPDATE"
      " SET lease_rev = EXCLUDED.lease_rev, node = EXCLUDED.node"
      " WHERE stream_offsets.lease_rev < EXCLUDED.lease_rev"
      " RETURNING stream_seq",
      3, NULL, v, NULL, NULL, 0);
  int rc = -1;
  if (PQresultStatus(r) == PGRES_TUPLES_OK) {
    *fenced = PQntuples(r) == 0;
    if (!*fenced) *stored_seq = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    rc = 0;
  } else {
    pg_fail(s, "claim", err, errn);
  }
  PQclear(r);
  return rc;
}

static int pg_stream_insert(agg_store *st, const agg_row *rows, size_t n,
                            unsigned partition, uint64_t token,
                            const char *node, uint64_t first_seq,
                            uint64_t last_seq, size_t *inserted, int *fenced,
                            char *err, size_t errn) {
  pg_store *s = (pg_store *)st;
  if (pg_ready(s, err, errn) || pg_stream_session(s, err, errn)) return -1;
  if (cmd(s, "BEGIN", err, errn)) return -1;
  char p[16], t[24], f[24], l[24], k[24];
  snprintf(p, sizeof p, "%u", partition);
  snprintf(t, sizeof t, "%" PRIu64, token);
  snprintf(f, sizeof f, "%" PRIu64, first_seq);
  snprintf(l, sizeof l, "%" PRIu64, last_seq);
  snprintf(k, sizeof k, "%zu", n);
  const char *v1[1] = {p};
  PGresult *r = PQexecParams(s->conn,
                             "SELECT lease_rev FROM stream_offsets"
                             " WHERE partition = $1 FOR UPDATE",
                             1, NULL, v1, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    PQclear(r);
    pg_fail(s, "offset", err, errn);
    goto rollback;
  }
  /* No row: never claimed (claim always runs first): refuse as fenced. */
  *fenced =
      PQntuples(r) == 0 || strtoull(PQgetvalue(r, 0, 0), NULL, 10) > token;
  PQclear(r);
  if (*fenced) {
    PQclear(PQexec(s->conn, "ROLLBACK"));
    return 0;
  }
  size_t added = 0;
  for (size_t i = 0; i < n; i += CHUNK) {
    size_t c = n - i < CHUNK ? n - i : CHUNK;
    if (insert_chunk(s, rows + i, c, &added, err, errn)) goto rollback;
  }
  const char *v2[4] = {p, l, t, node};
  r = PQexecParams(
      s->conn,
      "UPDATE stream_offsets SET stream_seq = GREATEST(stream_seq,"
      " $2::BIGINT), lease_rev = $3, node = $4 WHERE partition = $1",
      4, NULL, v2, NULL, NULL, 0);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok) {
    pg_fail(s, "offset update", err, errn);
    goto rollback;
  }
  const char *v3[6] = {p, t, node, f, l, k};
  r = PQexecParams(s->conn,
                   "INSERT INTO stream_commits (partition, lease_rev, node,"
                   " first_seq, last_seq, n) VALUES ($1, $2, $3, $4, $5, $6)",
                   6, NULL, v3, NULL, NULL, 0);
  ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok) {
    pg_fail(s, "commit log", err, errn);
    goto rollback;
  }
  if (cmd(s, "COMMIT", err, errn)) goto rollback;
  *inserted = added;
  return 0;
rollback:
  PQclear(PQexec(s->conn, "ROLLBACK"));
  return -1;
}

static const agg_store_ops PG_OPS = {
    pg_insert,      pg_scan,         pg_reset,        pg_close,
    pg_stream_init, pg_stream_claim, pg_stream_insert};

/* conninfo: the whole URL, postgresql://... */
static int pg_open(const char *conninfo, int create, agg_store **out, char *err,
                   size_t errn) {
  pg_store *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errn, "postgresql: out of memory");
    return -1;
  }
  s->base.ops = &PG_OPS;
  s->conn = PQconnectdb(conninfo);
  if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
    if (s->conn)
      pg_fail(s, "connect", err, errn);
    else
      snprintf(err, errn, "postgresql: out of memory");
    goto fail;
  }
  PQsetNoticeProcessor(s->conn, quiet, NULL);
  /* Nodes starting together race on CREATE TABLE IF NOT EXISTS (a unique
     violation in the catalog): another try finds the table there. */
  if (create && cmd(s, SCHEMA, err, errn) && cmd(s, SCHEMA, err, errn))
    goto fail;
  if (!(s->sql_full = build_sql(CHUNK))) {
    snprintf(err, errn, "postgresql: out of memory");
    goto fail;
  }
  *out = &s->base;
  return 0;
fail:
  pg_close(&s->base);
  return -1;
}

const agg_store_backend agg__pg_backend = {
    .prefix = {"postgresql://", "postgres://"}, .open = pg_open};
