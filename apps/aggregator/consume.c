/*
 * consume.c: `weir-aggregator consume`, a consumer node of the stream.
 *
 *   JetStream partition i --(weir_stream: lease, fetch)--> store() here
 *       --> one PostgreSQL transaction: the rows (idempotent on
 *           (user_id, seq)), the partition's offset and an audit row, refused
 *           if a newer lease revision is recorded --> acknowledged
 *
 * Each partition process has its own database connection (opened at its
 * first batch, kept in conns[i]); claims run on the lease keeper's
 * connection. Only one process per partition runs on a node at a time (the
 * keeper starts one after the previous one ended), so conns[i] is never
 * shared. A stream message that is not a packed event (a foreign publisher)
 * is counted, logged, and skipped: it is no accepted event of ours.
 *
 * GET /metrics (--listen) shows per partition: owned, offset (last stored
 * stream sequence), lag (messages after it); GET /healthz answers ok.
 */
#include "consume.h"
#include "store.h"
#include "weir_stream.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct node {
  const agg_serve_opts *o;
  char node[40];
  weir_stream *s;
  agg_store *keeper_db;
  agg_store **conns;
  agg_row *rows[1024]; /* per partition scratch (one process each) */
  size_t rows_cap[1024];
  pthread_mutex_t log_mu;
  _Atomic uint64_t stored, duplicates, commits, db_errors, fenced, foreign;
} node;

static void say(node *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(node *n, const char *fmt, ...) {
  pthread_mutex_lock(&n->log_mu);
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout);
  pthread_mutex_unlock(&n->log_mu);
}

static int claim(void *ud, unsigned i, uint64_t token, uint64_t *stored_seq) {
  node *n = ud;
  char err[512];
  int fenced = 0;
  if (!n->keeper_db &&
      agg_store_open(n->o->db, 0, &n->keeper_db, err, sizeof err)) {
    fprintf(stderr, "weir-aggregator: consume: %s\n", err);
    n->keeper_db = NULL;
    return WEIR_ESYS;
  }
  if (agg_store_stream_claim(n->keeper_db, i, token, n->node, stored_seq,
                             &fenced, err, sizeof err)) {
    fprintf(stderr, "weir-aggregator: consume: partition %u: %s\n", i, err);
    return WEIR_ESYS;
  }
  return fenced ? WEIR_EEXIST : WEIR_OK;
}

static int store(void *ud, const weir_stream_batch *b) {
  node *n = ud;
  unsigned i = b->partition;
  char err[512];
  if (!n->conns[i] &&
      agg_store_open(n->o->db, 0, &n->conns[i], err, sizeof err)) {
    n->conns[i] = NULL;
    atomic_fetch_add(&n->db_errors, 1);
    fprintf(stderr, "weir-aggregator: consume: partition %u: %s\n", i, err);
    return WEIR_ESYS;
  }
  if (b->n > n->rows_cap[i]) {
    agg_row *r = realloc(n->rows[i], b->n * sizeof *r);
    if (!r) return WEIR_ENOMEM;
    n->rows[i] = r;
    n->rows_cap[i] = b->n;
  }
  size_t k = 0;
  for (size_t j = 0; j < b->n; j++) {
    if (agg_event_unpack(b->msgs[j].data, b->msgs[j].len, &n->rows[i][k]) ||
        !agg_row_valid(&n->rows[i][k])) {
      atomic_fetch_add(&n->foreign, 1);
      fprintf(stderr,
              "weir-aggregator: consume: partition %u: stream message %llu "
              "is not an event (%zu bytes): skipped\n",
              i, (unsigned long long)b->msgs[j].seq, b->msgs[j].len);
      continue;
    }
    k++;
  }
  size_t added = 0;
  int fenced = 0;
  if (agg_store_stream_insert(n->conns[i], n->rows[i], k, i, b->token, n->node,
                              b->msgs[0].seq, b->msgs[b->n - 1].seq, &added,
                              &fenced, err, sizeof err)) {
    if (atomic_fetch_add(&n->db_errors, 1) % 50 == 0)
      fprintf(stderr, "weir-aggregator: consume: partition %u: %s (retrying)\n",
              i, err);
    return WEIR_ESYS;
  }
  if (fenced) {
    atomic_fetch_add(&n->fenced, 1);
    say(n, "partition %u: fenced: a newer lease than %llu committed\n", i,
        (unsigned long long)b->token);
    return WEIR_EEXIST;
  }
  atomic_fetch_add(&n->stored, added);
  atomic_fetch_add(&n->duplicates, k - added);
  atomic_fetch_add(&n->commits, 1);
  return WEIR_OK;
}

static void owner(void *ud, unsigned i, int owned, uint64_t token,
                  const char *why) {
  node *n = ud;
  if (owned)
    say(n, "partition %u: owned (lease %llu)\n", i, (unsigned long long)token);
  else
    say(n, "partition %u: let go (lease %llu): %s\n", i,
        (unsigned long long)token, why);
}

/* ---- /metrics, /healthz -------------------------------------------------- */

static char *metrics(node *n) {
  size_t cap = 4096 + (size_t)weir_stream_partitions(n->s) * 256, len = 0;
  char *b = malloc(cap);
  if (!b) return NULL;
#define P(...) len += (size_t)snprintf(b + len, cap - len, __VA_ARGS__)
  const struct {
    const char *name, *help;
    _Atomic uint64_t *v;
  } ctr[] = {
      {"weir_agg_stored_total", "Rows committed by this node", &n->stored},
      {"weir_agg_duplicates_total", "Rows ignored as already stored",
       &n->duplicates},
      {"weir_agg_commits_total", "Transactions committed", &n->commits},
      {"weir_agg_db_errors_total", "Failed transactions (retried)",
       &n->db_errors},
      {"weir_agg_stream_fenced_total",
       "Batches refused: a newer lease owner had committed", &n->fenced},
      {"weir_agg_stream_foreign_total",
       "Stream messages that were not events (skipped)", &n->foreign}};
  for (size_t k = 0; k < sizeof ctr / sizeof *ctr; k++)
    P("# HELP %s %s\n# TYPE %s counter\n%s %llu\n", ctr[k].name, ctr[k].help,
      ctr[k].name, ctr[k].name, (unsigned long long)atomic_load(ctr[k].v));
  const char *names[3] = {"owned", "offset", "lag"};
  const char *help[3] = {"1 if this node holds the partition's lease",
                         "Last stream sequence stored through this node",
                         "Messages in the partition after the offset"};
  for (int k = 0; k < 3; k++) {
    P("# HELP weir_agg_stream_%s %s\n# TYPE weir_agg_stream_%s gauge\n",
      names[k], help[k], names[k]);
    for (unsigned i = 0; i < weir_stream_partitions(n->s); i++) {
      weir_stream_part_info pi;
      weir_stream_part_info_get(n->s, i, &pi);
      uint64_t v = k == 0   ? (uint64_t)pi.owned
                   : k == 1 ? pi.stored_seq
                            : pi.lag;
      P("weir_agg_stream_%s{partition=\"%u\"} %llu\n", names[k], i,
        (unsigned long long)v);
    }
  }
#undef P
  return b;
}

static char *metrics_for_console(void *ud) {
  return metrics(ud);
}

static enum MHD_Result http(void *cls, struct MHD_Connection *c,
                            const char *url, const char *method,
                            const char *version, const char *upload,
                            size_t *upload_size, void **con_cls) {
  (void)version;
  (void)upload;
  (void)upload_size;
  (void)con_cls;
  node *n = cls;
  struct MHD_Response *r;
  unsigned status = MHD_HTTP_OK;
  if (strcmp(method, "GET")) {
    status = MHD_HTTP_METHOD_NOT_ALLOWED;
    r = MHD_create_response_from_buffer(8, (void *)"use GET\n",
                                        MHD_RESPMEM_PERSISTENT);
  } else if (!strcmp(url, "/metrics")) {
    char *m = metrics(n);
    if (!m) return MHD_NO;
    r = MHD_create_response_from_buffer(strlen(m), m, MHD_RESPMEM_MUST_FREE);
  } else if (!strcmp(url, "/healthz")) {
    r = MHD_create_response_from_buffer(3, (void *)"ok\n",
                                        MHD_RESPMEM_PERSISTENT);
  } else {
    status = MHD_HTTP_NOT_FOUND;
    r = MHD_create_response_from_buffer(13, (void *)"no such path\n",
                                        MHD_RESPMEM_PERSISTENT);
  }
  if (!r) return MHD_NO;
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

int agg_consume_main(const agg_serve_opts *o) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  node *n = calloc(1, sizeof *n);
  if (!n) return 1;
  n->o = o;
  pthread_mutex_init(&n->log_mu, NULL);
  if (o->node && strcmp(o->node, "aggregator"))
    snprintf(n->node, sizeof n->node, "%s", o->node);
  else
    snprintf(n->node, sizeof n->node, "consumer-%d", (int)getpid());
  char err[512];
  agg_store *db;
  int rc = 1;
  weir_rt *rt = NULL;
  struct MHD_Daemon *d = NULL;
  if (agg_store_open(o->db, 1, &db, err, sizeof err)) {
    fprintf(stderr, "weir-aggregator: consume: %s\n", err);
    goto out;
  }
  int init = agg_store_stream_init(db, err, sizeof err);
  agg_store_close(db);
  if (init) {
    fprintf(stderr, "weir-aggregator: consume: %s\n", err);
    goto out;
  }
  weir_stream_opts so;
  weir_stream_opts_init(&so);
  so.urls = o->stream;
  so.name = o->stream_name;
  so.partitions = o->stream_partitions;
  so.replicas = o->stream_replicas;
  so.lease_ttl_ms = o->lease_ttl_ms;
  int src = weir_stream_open(&so, 30000, &n->s, err, sizeof err);
  if (src != WEIR_OK) {
    fprintf(stderr, "weir-aggregator: consume: stream: %s\n", err);
    rc = src == WEIR_EINVAL ? 2 : 1;
    goto out;
  }
  n->conns = calloc(weir_stream_partitions(n->s), sizeof *n->conns);
  weir_rt_opts ro;
  weir_rt_opts_init(&ro);
  ro.node_name = n->node;
  ro.console = o->console ? "" : NULL;
  ro.io_threads = weir_stream_partitions(n->s) + 16;
  /* weirctl --node NODE metrics: the same per-partition owner, offset and
     lag as GET /metrics. */
  ro.metrics_extra = metrics_for_console;
  ro.metrics_ud = n;
  if (!n->conns || weir_rt_start(&ro, &rt) != WEIR_OK) {
    fprintf(stderr, "weir-aggregator: consume: cannot start the runtime%s\n",
            o->console ? " (console socket in use? try --node or "
                         "--no-console)"
                       : "");
    rt = NULL;
    goto out;
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(o->port)};
  if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1 ||
      !(d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0,
                             NULL, NULL, http, n, MHD_OPTION_SOCK_ADDR,
                             (struct sockaddr *)&sa, MHD_OPTION_END))) {
    fprintf(stderr, "weir-aggregator: consume: cannot listen on %s:%u\n",
            o->host, o->port);
    goto out;
  }
  const union MHD_DaemonInfo *di =
      MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  weir_stream_consumer_opts co;
  weir_stream_consumer_opts_init(&co);
  co.node = n->node;
  co.batch = o->batch;
  co.ops = (weir_stream_consumer_ops){
      .claim = claim, .store = store, .owner = owner, .ud = n};
  say(n,
      "weir-aggregator: consuming as %s, metrics on http://%s:%u (stream %s, "
      "%u partitions, lease %u ms, db %s)\n",
      n->node, o->host, di ? di->port : o->port, o->stream_name,
      weir_stream_partitions(n->s), o->lease_ttl_ms, o->db);
  src = weir_stream_consumer_start(rt, n->s, &co, err, sizeof err);
  if (src != WEIR_OK) {
    fprintf(stderr, "weir-aggregator: consume: %s\n", err);
    rc = src == WEIR_EINVAL ? 2 : 1;
    goto out;
  }
  int sig = 0;
  sigwait(&set, &sig);
  say(n, "weir-aggregator: %s: letting the partitions go\n",
      sig == SIGINT ? "SIGINT" : "SIGTERM");
  weir_stream_consumer_stop(n->s);
  rc = 0;
out:
  if (rt) weir_rt_stop(rt, 30000);
  if (d) MHD_stop_daemon(d);
  if (n->s) {
    for (unsigned i = 0; n->conns && i < weir_stream_partitions(n->s); i++) {
      agg_store_close(n->conns[i]);
      free(n->rows[i]);
    }
    weir_stream_close(n->s);
  }
  if (rc == 0)
    say(n,
        "weir-aggregator: stopped: stored %llu, duplicates %llu, commits "
        "%llu\n",
        (unsigned long long)atomic_load(&n->stored),
        (unsigned long long)atomic_load(&n->duplicates),
        (unsigned long long)atomic_load(&n->commits));
  agg_store_close(n->keeper_db);
  free(n->conns);
  pthread_mutex_destroy(&n->log_mu);
  free(n);
  return rc;
}
