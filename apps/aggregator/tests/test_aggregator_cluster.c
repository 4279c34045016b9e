/*
 * test_aggregator_cluster.c: weir-aggregator on a NATS JetStream cluster,
 * every process real: a 3-server cluster (agg_nats), a private PostgreSQL
 * (agg_pg), two ingest nodes (`serve --stream`) and three consumer nodes
 * (`consume`), then a fourth that joins mid-run.
 *
 * Four client threads send through both ingest nodes, two single events
 * (POST /track) and two batches (POST /track/batch, one event for each of
 * the thread's users); each owns its users and sends a user's next event
 * only after the previous one got its 202; a request that got no answer or
 * a 503 is sent again, unchanged, until it gets a 202 (as in
 * test_aggregator_sigkill.c). Under that load, in sequence:
 *
 *   1. SIGKILL of a consumer node: its partitions must move (after its
 *      leases lapse) and be stored by the others; the fail-over gap is the
 *      time from the kill to the first commit of another node on each of
 *      its partitions (commit timestamps, see below);
 *   2. SIGSTOP of another consumer for longer than its lease, then SIGCONT:
 *      the paused node is a zombie that believes it still owns partitions;
 *      it must not commit with any lease revision it held before the pause
 *      once it is resumed (fencing), and must say it let them go;
 *   3. SIGKILL of the NATS server that leads the stream (from /jsz): the
 *      pause is the longest time without a 202, and without a commit;
 *   4. a new consumer node joins: the partitions spread over three nodes.
 *
 * After each, the senders are held, and once everything acknowledged is
 * stored: every event that got a 202 is in `events` exactly once, each
 * user's events in seq order in insertion order (ORDER BY id), and
 * stream_commits, per partition in id order and in commit order, has
 * non-decreasing lease revisions and increasing, non-overlapping
 * [first_seq, last_seq] ranges, with stream_offsets at the last of them.
 * The PostgreSQL server runs with track_commit_timestamp = on, so "after
 * the SIGCONT" and "first commit after the kill" are read from each row's
 * commit time (pg_xact_commit_timestamp(xmin)), not from a clock of the
 * service's own.
 *
 * Then bad input, each bounded in time: an unreachable stream URL (serve
 * and consume exit non-zero with a one-line error), an existing stream
 * whose partition count or replica count differs (exit 1 or 2), and a
 * PostgreSQL that refuses (consume exits non-zero).
 *
 * The fault moments and the victims come from a seed, printed; AGG_SEED=N
 * repeats a run. Skipped (77) without nats-server or PostgreSQL.
 */
#include "agg_nats.h"
#include "agg_pg.h"
#include "agg_proc.h"
#include "agg_testlib.h"
#include "client.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define THREADS    4
#define USERS_EACH 16
#define USERS      (THREADS * USERS_EACH)
#define PARTS      8
#define LEASE_MS   10000
#define INGESTS    2
#define CONSUMERS  4 /* c1..c3 from the start, c4 joins */
#define STREAM     "WEIR_EVENTS"

/* The binary: AGG_BINARY, or $AGG_BIN (e.g. a copy under another name, so
   that a `pkill weir-aggregator` elsewhere on a shared machine cannot hit
   this test's nodes). */
static const char *bin = AGG_BINARY;
static agg_nats nats;
static agg_pg pg;
static agg_proc ingest[INGESTS], cons[CONSUMERS];
static int cons_paused[CONSUMERS];
static char logdir[512];
static PGconn *db;

/* ---- failing ------------------------------------------------------------ */

static void on_fail(void) {
  agg_proc_kill_all(); /* the nodes and the NATS servers */
  if (pg.started) agg_pg_stop(&pg, "immediate");
  fprintf(stderr, "logs of every process: %s (kept)\n", logdir);
}

/* ---- PostgreSQL --------------------------------------------------------- */

static PGresult *q(const char *sql) {
  PGresult *r = PQexec(db, sql);
  ExecStatusType st = PQresultStatus(r);
  CHECK_MSG(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "%s: %s", sql,
            PQerrorMessage(db));
  return r;
}

static long long q_ll(const char *sql) {
  PGresult *r = q(sql);
  long long v = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)
                    ? atoll(PQgetvalue(r, 0, 0))
                    : -1;
  PQclear(r);
  return v;
}

/* The server's clock now, as a timestamptz literal. */
static void db_now(char *buf, size_t n) {
  PGresult *r = q("SELECT clock_timestamp()::text");
  snprintf(buf, n, "%s", PQgetvalue(r, 0, 0));
  PQclear(r);
}

static void db_connect(void) {
  db = PQconnectdb(pg.url);
  CHECK_MSG(PQstatus(db) == CONNECTION_OK, "%s: %s", pg.url,
            PQerrorMessage(db));
  PGresult *r = PQexec(db, "SET client_min_messages = warning");
  PQclear(r);
}

/* Commit timestamps need a restart to turn on. */
static void pg_with_commit_timestamps(void) {
  db_connect();
  PQclear(q("ALTER SYSTEM SET track_commit_timestamp = on"));
  PQfinish(db);
  CHECK(agg_pg_stop(&pg, "fast") == 0);
  CHECK(agg_pg_start(&pg) == 0);
  db_connect();
  PGresult *r = q("SHOW track_commit_timestamp");
  CHECK_MSG(!strcmp(PQgetvalue(r, 0, 0), "on"), "track_commit_timestamp %s",
            PQgetvalue(r, 0, 0));
  PQclear(r);
}

/* What the nodes' sessions are doing (for a failure's diagnosis: a
   takeover stuck behind a paused node's open transaction shows here). */
static void db_sessions(void) {
  PGresult *r = PQexec(
      db, "SELECT pid, state, coalesce(wait_event_type, '-'), "
          "round(extract(epoch FROM clock_timestamp() - xact_start)), "
          "left(regexp_replace(query, '\\s+', ' ', 'g'), 90) FROM "
          "pg_stat_activity WHERE backend_type = 'client backend' AND pid <> "
          "pg_backend_pid()");
  if (PQresultStatus(r) == PGRES_TUPLES_OK)
    for (int k = 0; k < PQntuples(r); k++)
      agg_test_log("pg session %s: %s, waiting on %s, in a transaction for "
                   "%s s: %s",
                   PQgetvalue(r, k, 0), PQgetvalue(r, k, 1),
                   PQgetvalue(r, k, 2), PQgetvalue(r, k, 3),
                   PQgetvalue(r, k, 4));
  PQclear(r);
}

/* ---- child processes ---------------------------------------------------- */

static const char *cons_name(int i) {
  static const char *names[CONSUMERS] = {"c1", "c2", "c3", "c4"};
  return names[i];
}

static void start_ingest(int i) {
  char node[16], log[640];
  snprintf(node, sizeof node, "i%d", i + 1);
  snprintf(log, sizeof log, "%s/%s.log", logdir, node);
  const char *argv[] = {bin,
                        "serve",
                        "--stream",
                        nats.urls,
                        "--listen",
                        "127.0.0.1:0",
                        "--no-console",
                        "--node",
                        node,
                        "--ack-timeout-ms",
                        "5000",
                        NULL};
  agg_proc_start(&ingest[i], node, argv, log, 1);
  CHECK_MSG(agg_proc_wait_port(&ingest[i], 60000) != 0,
            "ingest node %s printed no \"listening on\" line: see %s", node,
            log);
}

static void start_consumer(int i) {
  char ttl[16], log[640];
  snprintf(ttl, sizeof ttl, "%d", LEASE_MS);
  snprintf(log, sizeof log, "%s/%s.log", logdir, cons_name(i));
  const char *argv[] = {bin,
                        "consume",
                        "--stream",
                        nats.urls,
                        "--db",
                        pg.url,
                        "--node",
                        cons_name(i),
                        "--lease-ttl-ms",
                        ttl,
                        "--listen",
                        "127.0.0.1:0",
                        "--no-console",
                        NULL};
  agg_proc_start(&cons[i], cons_name(i), argv, log, 1);
  CHECK_MSG(agg_proc_wait_port(&cons[i], 60000) != 0,
            "consumer %s printed no \"metrics on http://...\" line: see %s",
            cons_name(i), log);
}

static int cons_live(int i) {
  return atomic_load(&cons[i].pid) > 0 && !cons_paused[i];
}

/* ---- a consumer's /metrics ---------------------------------------------- */

typedef struct node_metrics {
  int owned[PARTS];
  long long offset[PARTS], lag[PARTS], stored;
} node_metrics;

static long long metric(const char *body, const char *name) {
  char key[128];
  snprintf(key, sizeof key, "\n%s ", name);
  const char *p = strstr(body, key);
  return p ? atoll(p + strlen(key)) : -1;
}

/* 0, or -1 if the node did not answer (never ask a paused one: the client
   has no timeout). */
static int read_metrics(int i, node_metrics *m) {
  CHECK(!cons_paused[i]);
  agg_client c;
  agg_client_init(&c, "127.0.0.1", (uint16_t)atomic_load(&cons[i].port));
  int rc = -1;
  if (agg_client_request(&c, "GET", "/metrics", NULL, NULL, 0, NULL) == 0 &&
      c.status == 200) {
    rc = 0;
    for (int p = 0; p < PARTS; p++) {
      char n[96];
      snprintf(n, sizeof n, "weir_agg_stream_owned{partition=\"%d\"}", p);
      m->owned[p] = (int)metric(c.body, n);
      snprintf(n, sizeof n, "weir_agg_stream_offset{partition=\"%d\"}", p);
      m->offset[p] = metric(c.body, n);
      snprintf(n, sizeof n, "weir_agg_stream_lag{partition=\"%d\"}", p);
      m->lag[p] = metric(c.body, n);
      CHECK_MSG(m->owned[p] >= 0 && m->offset[p] >= 0 && m->lag[p] >= 0,
                "%s: /metrics lacks partition %d's owned/offset/lag",
                cons_name(i), p);
    }
    m->stored = metric(c.body, "weir_agg_stored_total");
    CHECK_MSG(m->stored >= 0, "%s: /metrics lacks weir_agg_stored_total",
              cons_name(i));
  }
  agg_client_close(&c);
  return rc;
}

/* owner[p] = the live node that says it owns p, -1 none, -2 several. */
static void owners(int *owner) {
  for (int p = 0; p < PARTS; p++)
    owner[p] = -1;
  for (int i = 0; i < CONSUMERS; i++) {
    node_metrics m;
    if (!cons_live(i) || read_metrics(i, &m) != 0) continue;
    for (int p = 0; p < PARTS; p++)
      if (m.owned[p]) owner[p] = owner[p] == -1 ? i : -2;
  }
}

static void owners_text(const int *owner, char *buf, size_t n) {
  size_t len = 0;
  buf[0] = '\0';
  for (int i = 0; i < CONSUMERS; i++) {
    if (!cons_live(i)) continue;
    len += (size_t)snprintf(buf + len, n - len, "%s%s:", len ? " " : "",
                            cons_name(i));
    int first = 1;
    for (int p = 0; p < PARTS && len < n; p++)
      if (owner[p] == i) {
        len +=
            (size_t)snprintf(buf + len, n - len, "%s%d", first ? "" : ",", p);
        first = 0;
      }
  }
}

/* Waits up to ms until every partition has exactly one live owner and no
   live node owns more than max_each: the ms it took. */
static double wait_spread(int max_each, int ms, int *owner) {
  double t0 = agg_test_now_ms();
  for (;;) {
    owners(owner);
    int ok = 1, count[CONSUMERS] = {0};
    for (int p = 0; p < PARTS; p++) {
      if (owner[p] < 0)
        ok = 0;
      else
        count[owner[p]]++;
    }
    for (int i = 0; i < CONSUMERS; i++)
      if (count[i] > max_each) ok = 0;
    if (ok) return agg_test_now_ms() - t0;
    if (agg_test_now_ms() - t0 > ms) {
      char text[256];
      owners_text(owner, text, sizeof text);
      db_sessions();
      CHECK_MSG(0,
                "partitions not spread (one owner each, at most %d a node) "
                "after %d ms: %s",
                max_each, ms, text);
    }
    agg_test_sleep_ms(100);
  }
}

/* ---- senders ------------------------------------------------------------ */

typedef struct sender {
  int id, batch;
  int64_t next[USERS_EACH]; /* next seq to send; acknowledged = next */
  atomic_int idle;          /* parked while hold is set */
  uint64_t requests, unanswered, refused;
} sender;

static sender snd[THREADS];
static atomic_int stop_senders, hold;
/* The longest time between two consecutive 202s (any sender), in µs,
   since gap_reset: the pause clients see. */
static _Atomic long long last_ack_us, max_gap_us;

static long long now_us(void) {
  return (long long)(agg_test_now_ms() * 1e3);
}

static void gap_reset(void) {
  atomic_store(&last_ack_us, now_us());
  atomic_store(&max_gap_us, 0);
}

static void note_ack(void) {
  long long t = now_us(), prev = atomic_exchange(&last_ack_us, t);
  long long gap = t - prev, m = atomic_load(&max_gap_us);
  while (gap > m && !atomic_compare_exchange_weak(&max_gap_us, &m, gap)) {
  }
}

static void user_text(int t, int i, char *buf, size_t n) {
  snprintf(buf, n, "k%d", t * USERS_EACH + i);
}

/* One request until it gets a 202; 0, or -1 if told to stop. */
static int send_until_acked(sender *s, agg_client *c, const char *path,
                            const char *body, size_t len) {
  for (;;) {
    if (atomic_load(&stop_senders)) return -1;
    s->requests++;
    if (agg_client_request(c, "POST", path, "application/json", body, len,
                           NULL) != 0) {
      s->unanswered++;
      agg_client_close(c);
      agg_test_sleep_ms(20);
      continue;
    }
    if (c->status == 202) {
      if (s->batch) {
        json_t *o = json_loads(c->body, 0, NULL);
        json_int_t acc = json_integer_value(json_object_get(o, "accepted"));
        json_decref(o);
        CHECK_MSG(acc == USERS_EACH, "batch 202 with accepted %lld: %s",
                  (long long)acc, c->body);
      }
      note_ack();
      return 0;
    }
    CHECK_MSG(c->status == 503, "ingest answered %d: %s", c->status, c->body);
    s->refused++;
    agg_test_sleep_ms(50);
  }
}

static void *send_loop(void *arg) {
  sender *s = arg;
  agg_client c;
  agg_client_init(&c, "127.0.0.1",
                  (uint16_t)atomic_load(&ingest[s->id % INGESTS].port));
  char body[USERS_EACH * 96], user[16];
  int i = 0;
  while (!atomic_load(&stop_senders)) {
    if (atomic_load(&hold)) {
      atomic_store(&s->idle, 1);
      while (atomic_load(&hold) && !atomic_load(&stop_senders))
        agg_test_sleep_ms(5);
      atomic_store(&s->idle, 0);
      continue;
    }
    size_t len = 0;
    if (s->batch) {
      for (int k = 0; k < USERS_EACH; k++) {
        user_text(s->id, k, user, sizeof user);
        len += (size_t)snprintf(
            body + len, sizeof body - len,
            "{\"user_id\":\"%s\",\"seq\":%lld,\"event\":\"b\"}\n", user,
            (long long)s->next[k]);
      }
      if (send_until_acked(s, &c, "/track/batch", body, len)) break;
      for (int k = 0; k < USERS_EACH; k++)
        s->next[k]++;
    } else {
      user_text(s->id, i, user, sizeof user);
      len = (size_t)snprintf(body, sizeof body,
                             "{\"user_id\":\"%s\",\"seq\":%lld,\"event\":"
                             "\"s\",\"data\":{\"n\":%d}}",
                             user, (long long)s->next[i], i);
      if (send_until_acked(s, &c, "/track", body, len)) break;
      s->next[i]++;
      i = (i + 1) % USERS_EACH;
    }
  }
  agg_client_close(&c);
  return NULL;
}

/* Parks every sender after its current event got its 202 (so everything
   sent is acknowledged); the number of events acknowledged. */
static uint64_t hold_senders(void) {
  atomic_store(&hold, 1);
  double end = agg_test_now_ms() + 60000;
  for (int t = 0; t < THREADS; t++)
    while (!atomic_load(&snd[t].idle)) {
      CHECK_MSG(agg_test_now_ms() < end,
                "sender %d still has no 202 after 60 s", t);
      agg_test_sleep_ms(5);
    }
  uint64_t acked = 0;
  for (int t = 0; t < THREADS; t++)
    for (int i = 0; i < USERS_EACH; i++)
      acked += (uint64_t)snd[t].next[i];
  return acked;
}

static void release_senders(void) {
  atomic_store(&hold, 0);
  for (int t = 0; t < THREADS; t++)
    while (atomic_load(&snd[t].idle))
      agg_test_sleep_ms(1);
}

/* ---- the checks --------------------------------------------------------- */

/* On a shortfall: which users miss which acknowledged events, their
   partition (FNV-1a of the user id mod 8, as weir_stream routes), and the
   partitions' recorded offsets and owners. */
static void report_missing(void) {
  char sql[256], user[16];
  for (int t = 0; t < THREADS; t++)
    for (int i = 0; i < USERS_EACH; i++) {
      user_text(t, i, user, sizeof user);
      snprintf(sql, sizeof sql,
               "SELECT count(*) FROM events WHERE user_id = '%s'", user);
      long long got = q_ll(sql);
      if (got >= snd[t].next[i]) continue;
      uint32_t h = 2166136261u;
      for (const char *c = user; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
      snprintf(sql, sizeof sql,
               "SELECT min(s) FROM generate_series(0, %lld) s WHERE NOT EXISTS"
               " (SELECT 1 FROM events WHERE user_id = '%s' AND seq = s)",
               (long long)snd[t].next[i] - 1, user);
      agg_test_log("missing: user %s (partition %u): %lld of %lld stored, "
                   "first missing seq %lld",
                   user, h % 8, got, (long long)snd[t].next[i], q_ll(sql));
    }
  PGresult *r = PQexec(db, "SELECT partition, stream_seq, lease_rev, node FROM"
                           " stream_offsets ORDER BY partition");
  for (int k = 0; PQresultStatus(r) == PGRES_TUPLES_OK && k < PQntuples(r); k++)
    agg_test_log("offset: partition %s at %s, lease %s, %s",
                 PQgetvalue(r, k, 0), PQgetvalue(r, k, 1), PQgetvalue(r, k, 2),
                 PQgetvalue(r, k, 3));
  PQclear(r);
}

/* Waits until the events table holds `acked` rows; the ms it took. */
static double wait_stored(uint64_t acked, const char *when) {
  double t0 = agg_test_now_ms();
  long long rows = 0;
  while ((rows = q_ll("SELECT count(*) FROM events")) < (long long)acked) {
    /* 120 s: after a leader kill the partitions wait out the election
       and resubscribe; under TSan that took up to ~60 s here. */
    if (agg_test_now_ms() - t0 >= 120000) report_missing();
    CHECK_MSG(agg_test_now_ms() - t0 < 120000,
              "%s: %lld of %llu acknowledged events stored after 120 s", when,
              rows, (unsigned long long)acked);
    agg_test_sleep_ms(100);
  }
  CHECK_MSG(rows == (long long)acked,
            "%s: %lld rows for %llu acknowledged events (nothing unanswered "
            "is in flight: the senders are held)",
            when, rows, (unsigned long long)acked);
  return agg_test_now_ms() - t0;
}

/* Every acknowledged event once, each user's in seq order by id. */
static void check_events(const char *when) {
  int64_t next[USERS] = {0};
  PGresult *r = q("SELECT user_id, seq FROM events ORDER BY id");
  for (int k = 0; k < PQntuples(r); k++) {
    const char *user = PQgetvalue(r, k, 0);
    long long seq = atoll(PQgetvalue(r, k, 1));
    int u = user[0] == 'k' ? atoi(user + 1) : -1;
    CHECK_MSG(u >= 0 && u < USERS, "%s: foreign row user %s", when, user);
    CHECK_MSG(seq == next[u],
              "%s: user %s: seq %lld stored (row %d by id) where %lld was "
              "due: duplicate, gap or order broken",
              when, user, seq, k, (long long)next[u]);
    next[u]++;
  }
  PQclear(r);
  for (int t = 0; t < THREADS; t++)
    for (int i = 0; i < USERS_EACH; i++)
      CHECK_MSG(next[t * USERS_EACH + i] == snd[t].next[i],
                "%s: user k%d: %lld acknowledged, %lld stored", when,
                t * USERS_EACH + i, (long long)snd[t].next[i],
                (long long)next[t * USERS_EACH + i]);
}

/* stream_commits in one order: per partition, lease_rev non-decreasing,
   ranges increasing and disjoint. Returns the commit count. */
static long check_commit_order(const char *when, const char *order) {
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT partition, lease_rev, node, first_seq, last_seq, n, id "
           "FROM stream_commits ORDER BY partition, %s",
           order);
  PGresult *r = q(sql);
  long long rev[PARTS], last[PARTS];
  for (int p = 0; p < PARTS; p++)
    rev[p] = last[p] = 0;
  for (int k = 0; k < PQntuples(r); k++) {
    int p = atoi(PQgetvalue(r, k, 0));
    long long lr = atoll(PQgetvalue(r, k, 1));
    const char *node = PQgetvalue(r, k, 2);
    long long f = atoll(PQgetvalue(r, k, 3)), l = atoll(PQgetvalue(r, k, 4));
    long long n = atoll(PQgetvalue(r, k, 5)), id = atoll(PQgetvalue(r, k, 6));
    CHECK_MSG(p >= 0 && p < PARTS, "%s: commit %lld: partition %d", when, id,
              p);
    CHECK_MSG(lr >= rev[p],
              "%s (order by %s): partition %d: commit %lld by %s with lease "
              "%lld after a commit with lease %lld",
              when, order, p, id, node, lr, rev[p]);
    CHECK_MSG(f <= l && n >= 1 && n <= l - f + 1,
              "%s: commit %lld: [%lld, %lld] with n %lld", when, id, f, l, n);
    CHECK_MSG(f > last[p],
              "%s (order by %s): partition %d: commit %lld by %s (lease "
              "%lld) covers [%lld, %lld], overlapping or behind the "
              "previous commit's last_seq %lld",
              when, order, p, id, node, lr, f, l, last[p]);
    rev[p] = lr;
    last[p] = l;
  }
  long commits = PQntuples(r);
  PQclear(r);
  /* The offset is written with the batch: it is the last range's end. */
  r = q("SELECT partition, stream_seq, lease_rev FROM stream_offsets");
  for (int k = 0; k < PQntuples(r); k++) {
    int p = atoi(PQgetvalue(r, k, 0));
    long long seq = atoll(PQgetvalue(r, k, 1)), lr = atoll(PQgetvalue(r, k, 2));
    CHECK_MSG(p >= 0 && p < PARTS, "%s: stream_offsets partition %d", when, p);
    CHECK_MSG(seq == last[p],
              "%s: partition %d: stream_offsets.stream_seq %lld, last "
              "committed range ends at %lld",
              when, p, seq, last[p]);
    CHECK_MSG(lr >= rev[p],
              "%s: partition %d: stream_offsets.lease_rev %lld older than "
              "the last commit's %lld",
              when, p, lr, rev[p]);
  }
  PQclear(r);
  return commits;
}

static void check_all(const char *when) {
  uint64_t acked = hold_senders();
  double drain = wait_stored(acked, when);
  check_events(when);
  long commits = check_commit_order(when, "id");
  check_commit_order(when, "pg_xact_commit_timestamp(xmin), id");
  agg_test_log("check after %s: %llu events acknowledged, all stored once "
               "in per-user order (stored %.1f s after the senders were "
               "held); %ld commits in order (by id and by commit time)",
               when, (unsigned long long)acked, drain / 1e3, commits);
  release_senders();
}

/* ---- the faults --------------------------------------------------------- */

static unsigned seed;

static unsigned rnd(unsigned lo, unsigned hi) {
  return lo + (unsigned)rand() % (hi - lo + 1);
}

/* The (partition, lease) pairs a node said it took, from its log. */
typedef struct lease_set {
  int n;
  int part[256];
  long long rev[256];
} lease_set;

static void leases_taken(const agg_proc *p, lease_set *s) {
  s->n = 0;
  FILE *f = fopen(p->log, "r");
  CHECK(f);
  char line[4096];
  while (fgets(line, sizeof line, f) && s->n < 256) {
    int part;
    long long rev;
    const char *h = strstr(line, "partition ");
    if (h && sscanf(h, "partition %d: owned (lease %lld)", &part, &rev) == 2) {
      s->part[s->n] = part;
      s->rev[s->n++] = rev;
    }
  }
  fclose(f);
}

/* No two nodes ever said they owned the same (partition, lease). */
static void check_leases_unique(void) {
  lease_set s[CONSUMERS];
  int total = 0;
  for (int i = 0; i < CONSUMERS; i++) {
    leases_taken(&cons[i], &s[i]);
    total += s[i].n;
  }
  for (int i = 0; i < CONSUMERS; i++)
    for (int a = 0; a < s[i].n; a++)
      for (int j = i + 1; j < CONSUMERS; j++)
        for (int b = 0; b < s[j].n; b++)
          CHECK_MSG(s[i].part[a] != s[j].part[b] || s[i].rev[a] != s[j].rev[b],
                    "%s and %s both owned partition %d with lease %lld",
                    cons_name(i), cons_name(j), s[i].part[a], s[i].rev[a]);
  agg_test_log("leases: %d taken over the run, no (partition, lease) owned "
               "by two nodes",
               total);
}

static double fig_failover_owned, fig_failover_commit, fig_leader_pause,
    fig_leader_commit_pause, fig_leader_elected, fig_zombie_takeover, fig_join;
static int fig_leader_leases_lost;

static void consumer_sigkill(int victim) {
  int owner[PARTS], dead[PARTS], ndead = 0;
  wait_spread(PARTS, 30000, owner);
  for (int p = 0; p < PARTS; p++)
    if (owner[p] == victim) dead[ndead++] = p;
  CHECK_MSG(ndead > 0, "%s owns nothing: killing it is moot",
            cons_name(victim));
  char kill_at[64];
  db_now(kill_at, sizeof kill_at);
  gap_reset();
  double t0 = agg_test_now_ms();
  agg_proc_kill(&cons[victim]);
  /* Poll the survivors until each of the dead node's partitions has one. */
  double owned_ms[PARTS] = {0};
  int left = ndead;
  while (left > 0) {
    CHECK_MSG(agg_test_now_ms() - t0 < 3.0 * LEASE_MS + 10000,
              "%d of %s's partitions without a new owner %.0f ms after its "
              "SIGKILL",
              left, cons_name(victim), agg_test_now_ms() - t0);
    owners(owner);
    for (int k = 0; k < ndead; k++)
      if (owned_ms[k] == 0 && owner[dead[k]] >= 0) {
        owned_ms[k] = agg_test_now_ms() - t0;
        left--;
      }
    agg_test_sleep_ms(50);
  }
  /* The first commit by another node on each, by commit time. */
  char sql[1024], line[512];
  double worst = 0, worst_owned = 0;
  size_t len = 0;
  for (int k = 0; k < ndead; k++) {
    snprintf(sql, sizeof sql,
             "SELECT 1000 * extract(epoch FROM min(pg_xact_commit_timestamp("
             "xmin)) - '%s'::timestamptz) FROM stream_commits WHERE "
             "partition = %d AND node <> '%s' AND pg_xact_commit_timestamp("
             "xmin) > '%s'::timestamptz",
             kill_at, dead[k], cons_name(victim), kill_at);
    long long ms;
    double wait0 = agg_test_now_ms();
    while ((ms = q_ll(sql)) < 0) {
      CHECK_MSG(agg_test_now_ms() - wait0 < 30000,
                "partition %d: no commit by another node 30 s after it was "
                "taken over",
                dead[k]);
      agg_test_sleep_ms(100);
    }
    if ((double)ms > worst) worst = (double)ms;
    if (owned_ms[k] > worst_owned) worst_owned = owned_ms[k];
    owners(owner);
    len += (size_t)snprintf(
        line + len, sizeof line - len,
        "%sp%d -> %s owned %.1f s, first commit %.1f s", k ? "; " : "", dead[k],
        owner[dead[k]] >= 0 ? cons_name(owner[dead[k]]) : "?",
        owned_ms[k] / 1e3, (double)ms / 1e3);
  }
  fig_failover_owned = worst_owned;
  fig_failover_commit = worst;
  agg_test_log("consumer SIGKILL of %s (lease TTL %d ms): %s; ingest's "
               "longest time without a 202 meanwhile: %.2f s",
               cons_name(victim), LEASE_MS, line,
               (double)atomic_load(&max_gap_us) / 1e6);
}

static void consumer_sigstop(int victim) {
  int owner[PARTS], held[PARTS], nheld = 0, let_go[PARTS];
  wait_spread(PARTS, 30000, owner);
  for (int p = 0; p < PARTS; p++)
    if (owner[p] == victim) held[nheld++] = p;
  CHECK_MSG(nheld > 0, "%s owns nothing: pausing it is moot",
            cons_name(victim));
  /* Its tokens so far: the leases it said it took, and the ones it
     committed with. */
  lease_set old;
  leases_taken(&cons[victim], &old);
  char sql[4096];
  snprintf(sql, sizeof sql,
           "SELECT DISTINCT partition, lease_rev FROM stream_commits WHERE "
           "node = '%s'",
           cons_name(victim));
  PGresult *r = q(sql);
  for (int k = 0; k < PQntuples(r) && old.n < 256; k++) {
    old.part[old.n] = atoi(PQgetvalue(r, k, 0));
    old.rev[old.n++] = atoll(PQgetvalue(r, k, 1));
  }
  PQclear(r);
  for (int k = 0; k < nheld; k++) {
    char text[64];
    snprintf(text, sizeof text, "partition %d: let go (lease ", held[k]);
    let_go[k] = agg_proc_grep(&cons[victim], text);
  }
  unsigned pause_ms = LEASE_MS + rnd(3000, 5000);
  double t0 = agg_test_now_ms();
  CHECK(agg_proc_signal(&cons[victim], SIGSTOP) == 0);
  cons_paused[victim] = 1;
  /* The others take its partitions while it sleeps. */
  double took = wait_spread(PARTS, (int)pause_ms + 20000, owner);
  fig_zombie_takeover = took;
  double left = (double)pause_ms - (agg_test_now_ms() - t0);
  if (left > 0) agg_test_sleep_ms((unsigned)left);
  char cont_at[64];
  db_now(cont_at, sizeof cont_at);
  CHECK(agg_proc_signal(&cons[victim], SIGCONT) == 0);
  cons_paused[victim] = 0;
  double paused = agg_test_now_ms() - t0;
  /* It must find out it lost them and say so; give it a lease's time. */
  double t1 = agg_test_now_ms();
  for (int k = 0; k < nheld; k++) {
    char text[64];
    snprintf(text, sizeof text, "partition %d: let go (lease ", held[k]);
    while (agg_proc_grep(&cons[victim], text) == let_go[k]) {
      CHECK_MSG(agg_test_now_ms() - t1 < LEASE_MS + 5000,
                "%s, resumed, never printed \"%s...\" for the partition "
                "taken over while it was stopped",
                cons_name(victim), text);
      agg_test_sleep_ms(100);
    }
  }
  double noticed = agg_test_now_ms() - t1;
  agg_test_sleep_ms(2000); /* time for a zombie commit to land, if any */
  /* The zombie did not commit with a lease it held before the pause. */
  size_t len = (size_t)snprintf(
      sql, sizeof sql,
      "SELECT count(*) FROM stream_commits WHERE node = '%s' AND "
      "pg_xact_commit_timestamp(xmin) > '%s'::timestamptz AND "
      "(partition, lease_rev) IN (",
      cons_name(victim), cont_at);
  for (int k = 0; k < old.n && len < sizeof sql - 64; k++)
    len += (size_t)snprintf(sql + len, sizeof sql - len, "%s(%d, %lld)",
                            k ? ", " : "", old.part[k], old.rev[k]);
  snprintf(sql + len, sizeof sql - len, ")");
  long long zombie = old.n ? q_ll(sql) : 0;
  CHECK_MSG(zombie == 0,
            "%s committed %lld batches with a lease it held before its "
            "SIGSTOP, after the SIGCONT",
            cons_name(victim), zombie);
  agg_test_log("consumer SIGSTOP of %s for %.1f s (lease TTL %d ms): its %d "
               "partitions taken over by the others %.1f s into the pause; "
               "resumed, it let them go within %.1f s and committed nothing "
               "with its %d old leases",
               cons_name(victim), paused / 1e3, LEASE_MS, nheld, took / 1e3,
               noticed / 1e3, old.n);
}

static void leader_sigkill(void) {
  int leader = agg_nats_wait_stream_leader(&nats, STREAM, -1, 30000);
  CHECK_MSG(leader >= 0, "no leader for stream %s in /jsz", STREAM);
  char kill_at[64];
  db_now(kill_at, sizeof kill_at);
  int lost0 = 0, lost = 0;
  for (int i = 0; i < CONSUMERS; i++)
    lost0 += agg_proc_grep(&cons[i], "lease lost");
  gap_reset();
  double t0 = agg_test_now_ms();
  agg_nats_kill(&nats, leader);
  /* NATS's own election: ~6 s here, but under ASan or TSan with every core
     busy it has taken over 30 s (a CI run): allow 120 s. */
  int next = agg_nats_wait_stream_leader(&nats, STREAM, leader, 120000);
  CHECK_MSG(next >= 0, "no new leader for %s 120 s after killing %s", STREAM,
            nats.s[leader].name);
  fig_leader_elected = agg_test_now_ms() - t0;
  agg_test_sleep_ms(rnd(6000, 9000)); /* the load goes on */
  fig_leader_pause = (double)atomic_load(&max_gap_us) / 1e3;
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT 1000 * extract(epoch FROM max(d)) FROM (SELECT t - lag(t) "
           "OVER (ORDER BY t) AS d FROM (SELECT pg_xact_commit_timestamp(xmin)"
           " AS t FROM stream_commits WHERE pg_xact_commit_timestamp(xmin) > "
           "'%s'::timestamptz - interval '1 second' UNION ALL SELECT "
           "clock_timestamp()) x) y",
           kill_at);
  fig_leader_commit_pause = (double)q_ll(sql);
  for (int i = 0; i < CONSUMERS; i++)
    lost += agg_proc_grep(&cons[i], "lease lost");
  fig_leader_leases_lost = lost - lost0;
  agg_test_log("SIGKILL of %s, leader of stream %s: %s leads after %.1f s "
               "(/jsz); longest time without a 202: %.1f s, without a "
               "commit: %.1f s; leases lost meanwhile: %d of %d",
               nats.s[leader].name, STREAM, nats.s[next].name,
               fig_leader_elected / 1e3, fig_leader_pause / 1e3,
               fig_leader_commit_pause / 1e3, lost - lost0, PARTS);
  /* Whole again for the rest. */
  agg_nats_restart(&nats, leader);
  CHECK_MSG(agg_nats_wait_ready(&nats, 30000) >= 0,
            "restarted %s does not rejoin", nats.s[leader].name);
}

static void consumer_join(int joiner, int live) {
  int owner[PARTS];
  double t0 = agg_test_now_ms();
  start_consumer(joiner);
  int max_each = (PARTS + live - 1) / live;
  /* A node that is up owns at least one, and the rest move to spread. */
  for (;;) {
    wait_spread(max_each, 3 * LEASE_MS + 15000, owner);
    int mine = 0;
    for (int p = 0; p < PARTS; p++)
      mine += owner[p] == joiner;
    if (mine > 0) break;
    CHECK_MSG(agg_test_now_ms() - t0 < 3.0 * LEASE_MS + 15000,
              "%s joined but owns nothing", cons_name(joiner));
    agg_test_sleep_ms(100);
  }
  fig_join = agg_test_now_ms() - t0;
  char text[256];
  owners_text(owner, text, sizeof text);
  agg_test_log("%s joined: partitions spread over %d nodes after %.1f s (%s)",
               cons_name(joiner), live, fig_join / 1e3, text);
}

/* ---- bad input ---------------------------------------------------------- */

static uint16_t closed_port(void) {
  uint16_t p;
  agg_test_free_ports(&p, 1);
  return p;
}

/* Runs argv to its exit (bounded by ms); checks the exit status is one of
   the accepted ones and the output is one line of error. */
typedef struct bad_run {
  const char *what;
  agg_proc p;
  int want_lo, want_hi; /* accepted exit codes */
} bad_run;

static void bad_start(bad_run *b, const char *what, const char *const *argv,
                      int lo, int hi) {
  char log[640], name[32];
  static int n;
  b->what = what;
  b->want_lo = lo;
  b->want_hi = hi;
  snprintf(name, sizeof name, "bad%d", ++n);
  snprintf(log, sizeof log, "%s/%s.log", logdir, name);
  agg_proc_start(&b->p, name, argv, log, 0);
}

static void bad_finish(bad_run *b, int ms) {
  int st =
      agg_proc_wait(&b->p, ms - (int)(agg_test_now_ms() - b->p.started_ms));
  /* When its output closed, not when it was reaped (later, in turn). */
  double took = (double)atomic_load(&b->p.ended_us) / 1e3 - b->p.started_ms;
  CHECK_MSG(st != -1, "%s: still running after %.0f ms", b->what, took);
  CHECK_MSG(WIFEXITED(st), "%s: died of signal %d", b->what,
            WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  int code = WEXITSTATUS(st);
  char last[512];
  agg_proc_last_line(&b->p, last, sizeof last);
  CHECK_MSG(code >= b->want_lo && code <= b->want_hi,
            "%s: exit %d (wanted %d..%d); last line: %s", b->what, code,
            b->want_lo, b->want_hi, last);
  /* One line of error (a "listening on" line before it is allowed). */
  FILE *f = fopen(b->p.log, "r");
  CHECK(f);
  char line[4096];
  int lines = 0;
  while (fgets(line, sizeof line, f))
    if (line[0] != '\n' && !strstr(line, "listening on") &&
        !strstr(line, "consuming as"))
      lines++;
  fclose(f);
  CHECK_MSG(lines == 1, "%s: %d lines of error, not one (see %s)", b->what,
            lines, b->p.log);
  CHECK_MSG(strlen(last) > 10, "%s: an error line that says nothing: %s",
            b->what, last);
  agg_test_log("bad input: %s: exit %d after %.1f s: %s", b->what, code,
               took / 1e3, last);
}

/* Started before the nodes and collected once they are up: each takes the
   service's connect timeout, spent in parallel with the start-up. */
static bad_run early[3];

static void bad_inputs_early_start(void) {
  char nowhere[64], nowhere_pg[160];
  snprintf(nowhere, sizeof nowhere, "nats://127.0.0.1:%u", closed_port());
  snprintf(nowhere_pg, sizeof nowhere_pg,
           "postgresql://postgres@127.0.0.1:%u/postgres", closed_port());
  const char *serve_nowhere[] = {
      bin,        "serve",       "--stream",     nowhere,
      "--listen", "127.0.0.1:0", "--no-console", NULL};
  const char *consume_nowhere[] = {
      bin,    "consume", "--stream", nowhere,        "--db",
      pg.url, "--node",  "bad1",     "--no-console", NULL};
  const char *consume_nopg[] = {
      bin,        "consume", "--stream", nats.urls,      "--db",
      nowhere_pg, "--node",  "bad2",     "--no-console", NULL};
  bad_run *b = early;
  bad_start(&b[0], "serve --stream to a port nobody listens on", serve_nowhere,
            1, 255);
  bad_start(&b[1], "consume --stream to a port nobody listens on",
            consume_nowhere, 1, 255);
  bad_start(&b[2], "consume --db to a PostgreSQL port nobody listens on",
            consume_nopg, 1, 255);
}

static void bad_inputs_early_finish(void) {
  for (int i = 0; i < 3; i++)
    bad_finish(&early[i], 60000);
}

/* After the run, WEIR_EVENTS exists with 8 partitions and 3 replicas. */
static void bad_inputs_config(void) {
  const char *serve_p4[] = {
      bin,        "serve",       "--stream",     nats.urls,
      "--listen", "127.0.0.1:0", "--no-console", "--stream-partitions",
      "4",        NULL};
  const char *consume_p16[] = {
      bin,    "consume", "--stream", nats.urls,      "--db",
      pg.url, "--node",  "bad3",     "--no-console", "--stream-partitions",
      "16",   NULL};
  const char *serve_r1[] = {
      bin,           "serve",        "--stream",          nats.urls, "--listen",
      "127.0.0.1:0", "--no-console", "--stream-replicas", "1",       NULL};
  static bad_run b[3];
  bad_start(&b[0], "serve --stream-partitions 4 on an 8-partition stream",
            serve_p4, 1, 2);
  bad_start(&b[1], "consume --stream-partitions 16 on an 8-partition stream",
            consume_p16, 1, 2);
  bad_start(&b[2], "serve --stream-replicas 1 on an R3 stream", serve_r1, 1, 2);
  for (int i = 0; i < 3; i++)
    bad_finish(&b[i], 30000);
}

/* ---- main --------------------------------------------------------------- */

int main(void) {
  if (agg_nats_find(&nats) != 0) {
    printf("no nats-server (scripts/deps.sh test installs it): skipped\n");
    return 77;
  }
  if (agg_pg_find(&pg) != 0) {
    printf("no PostgreSQL server binaries: skipped\n");
    return 77;
  }
  if (getenv("AGG_BIN")) bin = getenv("AGG_BIN");
  const char *e = getenv("AGG_SEED");
  seed = e ? (unsigned)strtoul(e, NULL, 10) : (unsigned)time(NULL);
  srand(seed);
  agg_test_log("seed %u (AGG_SEED=%u repeats the fault schedule)", seed, seed);
  double t_start = agg_test_now_ms();
  agg_test_tmpdir(logdir, sizeof logdir);
  agg_pg_setup(&pg);
  pg_with_commit_timestamps();
  agg_nats_setup(&nats);
  agg_test_on_fail = on_fail;

  bad_inputs_early_start();
  for (int i = 0; i < INGESTS; i++)
    start_ingest(i);
  for (int i = 0; i < 3; i++)
    start_consumer(i);
  int owner[PARTS];
  double spread = wait_spread(3, 60000, owner);
  char text[256];
  owners_text(owner, text, sizeof text);
  agg_test_log("3 consumers own the %d partitions after %.1f s: %s", PARTS,
               spread / 1e3, text);
  bad_inputs_early_finish();

  pthread_t th[THREADS];
  for (int t = 0; t < THREADS; t++) {
    snd[t].id = t;
    snd[t].batch = t >= THREADS / 2;
    CHECK(pthread_create(&th[t], NULL, send_loop, &snd[t]) == 0);
  }
  agg_test_sleep_ms(rnd(3000, 5000));
  check_all("warm-up");

  /* The victims, by seed: one killed, one paused, the third stays. */
  int killed = (int)rnd(0, 2);
  int paused = (killed + (int)rnd(1, 2)) % 3;
  int third = 3 - killed - paused;
  agg_test_sleep_ms(rnd(1000, 3000));
  consumer_sigkill(killed);
  check_all("consumer SIGKILL");

  agg_test_sleep_ms(rnd(1000, 3000));
  consumer_sigstop(paused);
  check_all("consumer SIGSTOP/SIGCONT");

  agg_test_sleep_ms(rnd(1000, 3000));
  leader_sigkill();
  check_all("stream leader SIGKILL");

  agg_test_sleep_ms(rnd(1000, 3000));
  consumer_join(3, 3);
  agg_test_sleep_ms(rnd(2000, 4000));
  check_all("consumer join");
  (void)third;

  uint64_t acked = hold_senders();
  atomic_store(&stop_senders, 1);
  uint64_t requests = 0, unanswered = 0, refused = 0;
  for (int t = 0; t < THREADS; t++) {
    pthread_join(th[t], NULL);
    requests += snd[t].requests;
    unanswered += snd[t].unanswered;
    refused += snd[t].refused;
  }
  check_leases_unique();
  bad_inputs_config();

  /* SIGTERM: every node exits 0. */
  for (int i = 0; i < INGESTS; i++)
    CHECK(agg_proc_signal(&ingest[i], SIGTERM) == 0);
  for (int i = 0; i < CONSUMERS; i++)
    if (cons_live(i)) CHECK(agg_proc_signal(&cons[i], SIGTERM) == 0);
  for (int i = 0; i < INGESTS; i++) {
    int st = agg_proc_wait(&ingest[i], 30000);
    CHECK_MSG(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "ingest node i%d: SIGTERM: status %d", i + 1, st);
  }
  for (int i = 0; i < CONSUMERS; i++) {
    if (atomic_load(&cons[i].pid) <= 0) continue;
    int st = agg_proc_wait(&cons[i], 30000);
    CHECK_MSG(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "consumer %s: SIGTERM: status %d", cons_name(i), st);
  }
  agg_test_log("figures (lease TTL %d ms, seed %u): %llu events "
               "acknowledged in %llu requests (%llu resent unanswered, %llu "
               "503s); consumer SIGKILL: partitions re-owned after %.1f s, "
               "first commit after %.1f s (worst partition); SIGSTOP: "
               "taken over %.1f s into the pause; stream leader SIGKILL: "
               "elected %.1f s, no 202 for %.1f s, no commit for %.1f s, %d "
               "leases lost; "
               "join: spread after %.1f s; total %.0f s",
               LEASE_MS, seed, (unsigned long long)acked,
               (unsigned long long)requests, (unsigned long long)unanswered,
               (unsigned long long)refused, fig_failover_owned / 1e3,
               fig_failover_commit / 1e3, fig_zombie_takeover / 1e3,
               fig_leader_elected / 1e3, fig_leader_pause / 1e3,
               fig_leader_commit_pause / 1e3, fig_leader_leases_lost,
               fig_join / 1e3, (agg_test_now_ms() - t_start) / 1e3);
  agg_test_on_fail = NULL;
  PQfinish(db);
  agg_nats_teardown(&nats);
  agg_pg_stop(&pg, "fast");
  if (!getenv("AGG_KEEP")) agg_test_rmdir(logdir);
  return 0;
}
