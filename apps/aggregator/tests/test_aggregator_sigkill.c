/*
 * test_aggregator_sigkill.c: a 202 means stored, even across kill -9.
 *
 * `serve --ack stored` runs as a child process on SQLite, then on a private
 * PostgreSQL. Four client threads send, two single events (POST /track) and
 * two batches (POST /track/batch, one event for each of the thread's users),
 * each owning its users, each user's events in seq order: a user's next
 * event is sent only after the previous one got its 202. A request that got
 * no answer (the service died under it) or a 503 is sent again, unchanged,
 * until it gets a 202: the inserts are idempotent, so a resend is safe. The
 * main thread kills the service with SIGKILL at 10 random moments (seeded;
 * the seed is printed, AGG_SEED=N repeats a run) and restarts it on the same
 * database each time.
 *
 * At the end every event that got a 202 must be in the database exactly
 * once, each user's events in seq order with no gap (what was acknowledged
 * is a prefix of what is stored; an unanswered last event may be stored or
 * not).
 *
 * Then the same kill in --ack queued mode, with a backlog in the mailboxes,
 * measures what the seed's fire-and-forget acknowledgement loses: printed
 * for docs/RELIABILITY.md, and checked to be more than nothing (else the
 * comparison would prove nothing).
 */
#include "agg_pg.h"
#include "agg_testlib.h"
#include "client.h"
#include "store.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS    4
#define USERS_EACH 8
#define USERS      (THREADS * USERS_EACH)
#define KILLS      10

static _Atomic int server = -1;
static _Atomic unsigned port;
static atomic_int stop;
static agg_pg pg;

static void kill_server(void) {
  int pid = atomic_load(&server);
  if (pid > 0) kill(pid, SIGKILL);
}

static void on_fail(void) {
  kill_server();
  if (pg.started) agg_pg_stop(&pg, "immediate");
}

typedef struct sender {
  int id, batch;
  int64_t next[USERS_EACH]; /* next seq to send; acked = next */
  uint64_t requests, unanswered, refused;
} sender;

static void user_text(int t, int i, char *buf, size_t n) {
  snprintf(buf, n, "k%d", t * USERS_EACH + i);
}

/* One request until it gets a 202; returns 0, or -1 if told to stop. */
static int send_until_acked(sender *s, agg_client *c, const char *path,
                            const char *body, size_t len) {
  for (;;) {
    if (atomic_load(&stop)) return -1;
    unsigned p = atomic_load(&port);
    if (c->port != p) {
      agg_client_close(c);
      agg_client_init(c, "127.0.0.1", (uint16_t)p);
    }
    s->requests++;
    if (agg_client_request(c, "POST", path, "application/json", body, len,
                           NULL) != 0) {
      s->unanswered++; /* the service died (or is restarting): resend */
      agg_client_close(c);
      agg_test_sleep_ms(20);
      continue;
    }
    if (c->status == 202) {
      if (!s->batch) return 0;
      json_t *o = json_loads(c->body, 0, NULL);
      json_int_t stored = json_integer_value(json_object_get(o, "stored"));
      json_decref(o);
      CHECK_MSG(stored == USERS_EACH, "batch 202 with stored %lld: %s",
                (long long)stored, c->body);
      return 0;
    }
    CHECK_MSG(c->status == 503, "status %d: %s", c->status, c->body);
    s->refused++;
    agg_test_sleep_ms(5);
  }
}

static void *send_loop(void *arg) {
  sender *s = arg;
  agg_client c;
  agg_client_init(&c, "127.0.0.1", (uint16_t)atomic_load(&port));
  char body[USERS_EACH * 96], user[16];
  int i = 0;
  while (!atomic_load(&stop)) {
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

typedef struct check {
  int64_t next[USERS]; /* the next seq expected in insertion order */
  uint64_t rows;
  char bad[256];
} check;

static int scan_row(void *ctx, const char *user, int64_t seq) {
  check *k = ctx;
  int u = user[0] == 'k' ? atoi(user + 1) : -1;
  if (u < 0 || u >= USERS) {
    snprintf(k->bad, sizeof k->bad, "foreign row user %s", user);
    return 1;
  }
  if (seq != k->next[u]) {
    snprintf(k->bad, sizeof k->bad,
             "user %s: seq %lld stored where %lld was due (duplicate, gap or "
             "order broken)",
             user, (long long)seq, (long long)k->next[u]);
    return 1;
  }
  k->next[u]++;
  k->rows++;
  return 0;
}

static int spawn(const char *db, const char *ack, const char *extra) {
  char dbarg[1200];
  uint16_t p;
  snprintf(dbarg, sizeof dbarg, "--db=%s", db);
  const char *args[] = {dbarg,     ack,  "--partitions", "2",
                        "--batch", "32", extra,          NULL};
  int pid = agg_test_spawn_serve(AGG_BINARY, args, &p);
  atomic_store(&port, p);
  atomic_store(&server, pid);
  return pid;
}

static void sigkill(void) {
  int pid = atomic_exchange(&server, -1);
  CHECK(kill(pid, SIGKILL) == 0);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %d", st);
}

static void stored_run(const char *what, const char *db, unsigned seed) {
  agg_store *s;
  char err[512];
  CHECK_MSG(agg_store_open(db, 1, &s, err, sizeof err) == 0, "%s", err);
  CHECK(agg_store_reset(s, err, sizeof err) == 0);
  agg_store_close(s);

  srand(seed);
  atomic_store(&stop, 0);
  spawn(db, "--ack=stored", NULL);
  sender snd[THREADS];
  pthread_t th[THREADS];
  memset(snd, 0, sizeof snd);
  for (int t = 0; t < THREADS; t++) {
    snd[t].id = t;
    snd[t].batch = t >= THREADS / 2;
    CHECK(pthread_create(&th[t], NULL, send_loop, &snd[t]) == 0);
  }
  for (int k = 0; k < KILLS; k++) {
    agg_test_sleep_ms(200 + (unsigned)(rand() % 600));
    sigkill();
    agg_test_sleep_ms((unsigned)(rand() % 100));
    spawn(db, "--ack=stored", NULL);
  }
  agg_test_sleep_ms(300);
  atomic_store(&stop, 1);
  uint64_t acked = 0, requests = 0, unanswered = 0, refused = 0;
  for (int t = 0; t < THREADS; t++) {
    pthread_join(th[t], NULL);
    for (int i = 0; i < USERS_EACH; i++)
      acked += (uint64_t)snd[t].next[i];
    requests += snd[t].requests;
    unanswered += snd[t].unanswered;
    refused += snd[t].refused;
  }
  int pid = atomic_exchange(&server, -1);
  CHECK(kill(pid, SIGTERM) == 0);
  CHECK_EQ(agg_test_wait_exit(pid), 0);

  check k;
  memset(&k, 0, sizeof k);
  CHECK_MSG(agg_store_open(db, 0, &s, err, sizeof err) == 0, "%s", err);
  int rc = agg_store_scan(s, scan_row, &k, err, sizeof err);
  agg_store_close(s);
  CHECK_MSG(rc == 0, "%s: %s", what, k.bad[0] ? k.bad : err);
  /* Acknowledged = a prefix of stored, at most one more per user. */
  uint64_t extra = 0;
  for (int t = 0; t < THREADS; t++)
    for (int i = 0; i < USERS_EACH; i++) {
      int64_t acked_u = snd[t].next[i], stored_u = k.next[t * USERS_EACH + i];
      CHECK_MSG(stored_u >= acked_u,
                "%s: user k%d: %lld events acknowledged, %lld stored", what,
                t * USERS_EACH + i, (long long)acked_u, (long long)stored_u);
      CHECK_MSG(stored_u <= acked_u + 1, "%s: user k%d: stored ahead", what,
                t * USERS_EACH + i);
      extra += (uint64_t)(stored_u - acked_u);
    }
  CHECK_MSG(acked > 1000, "%s: only %llu events acknowledged: moot", what,
            (unsigned long long)acked);
  agg_test_log("%s: %d SIGKILLs (seed %u): %llu events acknowledged 202, all "
               "stored exactly once in per-user order (%llu rows, %llu of "
               "them stored but unanswered; %llu unanswered sends resent, "
               "%llu 503s, %llu requests)",
               what, KILLS, seed, (unsigned long long)acked,
               (unsigned long long)k.rows, (unsigned long long)extra,
               (unsigned long long)unanswered, (unsigned long long)refused,
               (unsigned long long)requests);
}

static int count_row(void *ctx, const char *user, int64_t seq) {
  (void)user;
  (void)seq;
  ++*(uint64_t *)ctx;
  return 0;
}

/* --ack queued: what a kill -9 loses. */
static void queued_run(const char *db) {
  agg_store *s;
  char err[512];
  CHECK_MSG(agg_store_open(db, 1, &s, err, sizeof err) == 0, "%s", err);
  CHECK(agg_store_reset(s, err, sizeof err) == 0);
  agg_store_close(s);
  uint16_t p;
  spawn(db, "--ack=queued", "--work-ms=2");
  p = (uint16_t)atomic_load(&port);
  agg_load_job j;
  memset(&j, 0, sizeof j);
  snprintf(j.url, sizeof j.url, "http://127.0.0.1:%u", p);
  j.o = (agg_load_opts){.url = j.url,
                        .rate = 3000,
                        .secs = 2.0,
                        .users = 50,
                        .batch = 1,
                        .conns = 4};
  CHECK(agg_accept_log_init(&j.log, j.o.users) == 0);
  pthread_t th;
  CHECK(pthread_create(&th, NULL, agg_load_thread, &j) == 0);
  pthread_join(th, NULL);
  long long queued = agg_test_metric(p, "weir_agg_queue_len_all");
  long long stored = agg_test_metric(p, "weir_agg_stored_total");
  sigkill();
  CHECK_EQ(j.rc, 0);
  /* The load ended before the kill: every row is an accepted event. */
  CHECK_MSG(agg_store_open(db, 0, &s, err, sizeof err) == 0, "%s", err);
  uint64_t rows = 0;
  CHECK(agg_store_scan(s, count_row, &rows, err, sizeof err) == 0);
  agg_store_close(s);
  CHECK(rows <= j.r.accepted);
  uint64_t lost = j.r.accepted - rows;
  agg_test_log("queued: SIGKILL with %lld events in the mailboxes (%lld "
               "stored): of %llu events answered 202, %llu were lost (%.1f "
               "%%), with nothing to say so",
               queued, stored, (unsigned long long)j.r.accepted,
               (unsigned long long)lost,
               100.0 * (double)lost / (double)j.r.accepted);
  CHECK_MSG(lost > 0, "queued mode lost nothing: the comparison is moot");
  agg_accept_log_free(&j.log);
}

int main(void) {
  agg_test_on_fail = on_fail;
  const char *e = getenv("AGG_SEED");
  unsigned seed = e ? (unsigned)strtoul(e, NULL, 10) : (unsigned)time(NULL);
  char dir[512], db[1100];
  agg_test_tmpdir(dir, sizeof dir);
  snprintf(db, sizeof db, "sqlite:%s/kill.db", dir);
  stored_run("sqlite", db, seed);
  snprintf(db, sizeof db, "sqlite:%s/queued.db", dir);
  queued_run(db);
  if (agg_pg_find(&pg) == 0) {
    agg_pg_setup(&pg);
    stored_run("postgresql", pg.url, seed + 1);
    agg_pg_stop(&pg, "fast");
  } else {
    agg_test_log("postgresql: no server binaries here: skipped");
  }
  agg_test_rmdir(dir);
  return 0;
}
