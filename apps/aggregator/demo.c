/*
 * demo.c: `weir-aggregator demo`, the seed's story told by a real service.
 *
 * Two phases, each a whole node in this process (runtime with a console,
 * HTTP on an ephemeral loopback port, SQLite in the output directory) under
 * the same load from the in-process load generator:
 *   1. singleton (the seed's Before): one process, 5 ms per event, 250
 *      events/s offered: it serves ~190/s, so its mailbox grows ~50/s. The
 *      node's alarm names it, and weir_proc_count, printed like recon's
 *      proc_count, puts "aggregator" at the top.
 *   2. partitioned (the After): the same code under a partition supervisor;
 *      blocking workers run in parallel on the I/O pool; the queue stays
 *      near zero.
 * A sampler reads the queue length every 100 ms for the chart. After each
 * phase the node is stopped (draining every mailbox into the database) and
 * the database is checked against the load generator's log of accepted
 * events: each exactly once, each user's in seq order.
 */
#include "demo.h"
#include "load.h"
#include "service.h"
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 4000

typedef struct phase {
  const char *mode;
  agg_service *svc;
  double t[MAX_SAMPLES], q[MAX_SAMPLES];
  size_t n;
  _Atomic int stop;
  double t0;
  uint64_t peak;
  agg_load_result load;
  agg_counters ctr;
  _Atomic int lmq_alarm, growth_alarm; /* raised for "aggregator" */
  int db_ok;
  uint64_t rows;
  char db_msg[256];
} phase;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void *sampler(void *arg) {
  phase *p = arg;
  while (!atomic_load(&p->stop) && p->n < MAX_SAMPLES) {
    uint64_t q = agg_service_queue_lens(p->svc, NULL, 0);
    p->t[p->n] = now_s() - p->t0;
    p->q[p->n] = (double)q;
    p->n++;
    if (q > p->peak) p->peak = q;
    sleep_ms(100);
  }
  return NULL;
}

static void on_alarm(void *ud, const weir_alarm *a) {
  phase *p = ud;
  char pid[32];
  weir_pid_format(a->pid, pid, sizeof pid);
  printf("  ALARM %-18s %-7s %s %-12s queue_len=%llu in=%.0f/s out=%.0f/s",
         weir_alarm_kind_name(a->kind), a->on ? "raised" : "cleared", pid,
         a->registered_name[0] ? a->registered_name : "-",
         (unsigned long long)a->queue_len, a->in_rate, a->out_rate);
  if (a->on && a->secs_to_limit >= 0) {
    double t = a->secs_to_limit;
    const char *unit = "s";
    if (t >= 86400)
      t /= 86400, unit = "days";
    else if (t >= 3600)
      t /= 3600, unit = "h";
    else if (t >= 60)
      t /= 60, unit = "min";
    printf("\n        -> out of memory in ~%.0f %s at this rate", t, unit);
  }
  printf("\n");
  fflush(stdout);
  if (a->on && !strcmp(a->registered_name, "aggregator")) {
    if (a->kind == WEIR_ALARM_LONG_MESSAGE_QUEUE)
      atomic_store(&p->lmq_alarm, 1);
    if (a->kind == WEIR_ALARM_QUEUE_GROWTH) atomic_store(&p->growth_alarm, 1);
  }
}

/* recon:proc_count(message_queue_len, 3), printed the way recon prints. */
static void print_proc_count(weir_rt *rt) {
  weir_proc_sample top[3];
  size_t n = 0;
  if (weir_proc_count(rt, WEIR_ATTR_MESSAGE_QUEUE_LEN, 3, top, &n) != WEIR_OK)
    return;
  printf("  > weir_proc_count(rt, WEIR_ATTR_MESSAGE_QUEUE_LEN, 3)   "
         "%% recon:proc_count(message_queue_len, 3)\n  [");
  for (size_t i = 0; i < n; i++) {
    weir_proc_info info;
    char pid[32];
    weir_pid_format(top[i].pid, pid, sizeof pid);
    if (weir_process_info(rt, top[i].pid, &info) != WEIR_OK) continue;
    char fn[96];
    const char *colon = strchr(info.current_function, ':');
    if (colon)
      snprintf(fn, sizeof fn, "{%.*s, %s}",
               (int)(colon - info.current_function), info.current_function,
               colon + 1);
    else
      snprintf(fn, sizeof fn, "%s", info.current_function);
    printf("%s{%s, %llu,\n    [current_function: %s, registered_name: %s]}%s\n",
           i ? "   " : "", pid, (unsigned long long)top[i].value, fn,
           info.registered_name[0] ? info.registered_name : "[]",
           i + 1 < n ? "," : "]");
  }
}

/* Every accepted event stored exactly once, in per-user seq order. */
static int verify(const char *url, agg_accept_log *log, phase *p) {
  return agg_accept_log_verify(log, url, &p->rows, p->db_msg, sizeof p->db_msg);
}

static int run_phase(const agg_demo_opts *o, phase *p, agg_mode mode,
                     const char *dir) {
  char path[1024], url[1100];
  snprintf(path, sizeof path, "%s/%s.db", dir, p->mode);
  const char *sfx[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    char f[1100];
    snprintf(f, sizeof f, "%s%s", path, sfx[i]);
    unlink(f);
  }
  snprintf(url, sizeof url, "sqlite:%s", path);
  agg_args defaults;
  agg_args_defaults(&defaults);
  agg_serve_opts so = defaults.serve;
  so.port = 0;
  so.db = url;
  so.mode = mode;
  so.partitions = o->partitions;
  so.work_ms = o->work_ms;
  /* The seed's GenServer.cast: 202 as soon as the event is queued, so the
     backlog can build up in the mailbox (the story). */
  so.ack = AGG_ACK_QUEUED;
  so.batch = 64;
  so.node = "aggregator-demo";
  so.alarm_queue = 200;
  so.http_threads = 2;
  agg_service_hooks hooks = {
      .on_alarm = on_alarm, .ud = p, .alarm_disable = 50};
  char err[512];
  if (agg_service_start(&so, &hooks, &p->svc, err, sizeof err)) {
    so.console = 0; /* e.g. a stale socket from another demo */
    if (agg_service_start(&so, &hooks, &p->svc, err, sizeof err)) {
      fprintf(stderr, "demo: cannot start the %s service: %s\n", p->mode, err);
      return -1;
    }
  }
  weir_rt *rt = agg_service_rt(p->svc);
  const char *console = weir_rt_console_path(rt);
  printf("  service: http://127.0.0.1:%u, %u worker%s (%s), db %s\n",
         agg_service_port(p->svc), agg_service_workers(p->svc),
         agg_service_workers(p->svc) == 1 ? "" : "s",
         mode == AGG_SINGLETON ? "one registered process \"aggregator\""
                               : "partition supervisor keyed by user_id",
         path);
  if (console)
    printf("  console: %s   (try: weirctl --node aggregator-demo "
           "proc_count message_queue_len 3)\n",
           console);
  printf("  load: %.0f events/s for %.0f s, 100 users, %u ms of work per "
         "event\n",
         o->rate, o->secs, o->work_ms);
  fflush(stdout);
  pthread_t th;
  p->t0 = now_s();
  pthread_create(&th, NULL, sampler, p);
  char base[64];
  snprintf(base, sizeof base, "http://127.0.0.1:%u", agg_service_port(p->svc));
  agg_load_opts lo = {.url = base,
                      .rate = o->rate,
                      .secs = o->secs,
                      .users = 100,
                      .batch = 1,
                      .conns = 4};
  agg_accept_log log;
  int rc = agg_accept_log_init(&log, lo.users);
  if (rc == 0) rc = agg_load_run(&lo, &log, &p->load, err, sizeof err);
  if (rc) fprintf(stderr, "demo: load: %s\n", err);
  uint64_t q_end = agg_service_queue_lens(p->svc, NULL, 0);
  printf("  after %.0f s of load: %llu events waiting in mailboxes\n", o->secs,
         (unsigned long long)q_end);
  print_proc_count(rt);
  /* Let the backlog drain (the chart shows it), then stop the node: the
     stop drains whatever is left and flushes every batch. */
  double deadline = now_s() + 20;
  agg_counters c;
  do {
    sleep_ms(100);
    agg_service_counters(p->svc, &c);
  } while ((agg_service_queue_lens(p->svc, NULL, 0) > 0 ||
            c.stored + c.duplicates < c.accepted) &&
           now_s() < deadline);
  sleep_ms(300);
  atomic_store(&p->stop, 1);
  pthread_join(th, NULL);
  double t_drained = now_s() - p->t0;
  if (agg_service_stop(p->svc, &p->ctr))
    fprintf(stderr, "demo: the %s service did not store everything\n", p->mode);
  p->svc = NULL;
  printf("  drained after %.1f s; stored %llu rows in %llu transactions\n",
         t_drained, (unsigned long long)p->ctr.stored,
         (unsigned long long)p->ctr.commits);
  p->db_ok = rc == 0 && verify(url, &log, p) == 0;
  printf("  database check: %s: %s\n", p->db_ok ? "OK" : "FAILED", p->db_msg);
  agg_accept_log_free(&log);
  return p->db_ok ? 0 : -1;
}

static int write_csv(const char *path, const phase *a, const phase *b) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fprintf(f, "t_s,singleton_queue_len,partitioned_queue_len\n");
  size_t n = a->n > b->n ? a->n : b->n;
  for (size_t i = 0; i < n; i++) {
    fprintf(f, "%.1f,", (double)i * 0.1);
    if (i < a->n) fprintf(f, "%.0f", a->q[i]);
    fputc(',', f);
    if (i < b->n) fprintf(f, "%.0f", b->q[i]);
    fputc('\n', f);
  }
  return fclose(f) == 0 ? 0 : -1;
}

int agg_demo_main(const agg_demo_opts *o) {
  if (mkdir(o->out, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "demo: cannot create %s: %s\n", o->out, strerror(errno));
    return 1;
  }
  phase *ph = calloc(2, sizeof *ph);
  if (!ph) return 1;
  ph[0].mode = "singleton";
  ph[1].mode = "partitioned";
  printf("weir-aggregator demo: the seed's drowning GenServer, then the "
         "PartitionSupervisor fix\n\n");
  printf("  both phases run with --ack queued (the seed's cast: 202 once the "
         "event is in a\n  mailbox), so the backlog is visible; a kill -9 "
         "would lose every queued event.\n  `serve` defaults to --ack stored: "
         "202 only once the event is committed.\n\n");
  printf("== 1. singleton (Before): every event through one process\n");
  fflush(stdout);
  int bad = run_phase(o, &ph[0], AGG_SINGLETON, o->out) != 0;
  printf("\n== 2. partitioned (After): %u partitions keyed by user_id, "
         "blocking workers\n",
         o->partitions);
  fflush(stdout);
  bad |= run_phase(o, &ph[1], AGG_PARTITIONED, o->out) != 0;

  char csv[1024], svg[1024], title[160];
  snprintf(csv, sizeof csv, "%s/queue.csv", o->out);
  snprintf(svg, sizeof svg, "%s/queue.svg", o->out);
  snprintf(title, sizeof title,
           "Mailbox length under %.0f events/s, %u ms of work per event",
           o->rate, o->work_ms);
  char n0[64], n1[64];
  snprintf(n0, sizeof n0, "singleton (peak %llu)",
           (unsigned long long)ph[0].peak);
  snprintf(n1, sizeof n1, "partitioned x%u (peak %llu)", o->partitions,
           (unsigned long long)ph[1].peak);
  agg_series s[2] = {{n0, "#d62728", ph[0].t, ph[0].q, ph[0].n},
                     {n1, "#1f77b4", ph[1].t, ph[1].q, ph[1].n}};
  int chart = write_csv(csv, &ph[0], &ph[1]) == 0 &&
              agg_svg_chart(svg, title, "seconds since the load started",
                            "events waiting (all workers)", s, 2) == 0;

  printf("\n== summary\n");
  printf("  %-12s %9s %9s %9s %11s %8s %8s  %s\n", "mode", "accepted",
         "rejected", "stored", "peak queue", "p50 ms", "p99 ms", "database");
  for (int i = 0; i < 2; i++)
    printf("  %-12s %9llu %9llu %9llu %11llu %8.2f %8.2f  %s\n", ph[i].mode,
           (unsigned long long)ph[i].load.accepted,
           (unsigned long long)ph[i].load.rejected,
           (unsigned long long)ph[i].rows, (unsigned long long)ph[i].peak,
           ph[i].load.p50_ms, ph[i].load.p99_ms, ph[i].db_ok ? "OK" : "FAILED");
  int story = 1;
  if (ph[0].peak < 100 || !(ph[0].lmq_alarm || ph[0].growth_alarm)) {
    printf("  WARN: the singleton did not visibly drown (peak %llu, alarm "
           "%s); is the machine much faster or slower than expected?\n",
           (unsigned long long)ph[0].peak,
           ph[0].lmq_alarm || ph[0].growth_alarm ? "raised" : "not raised");
    story = 0;
  }
  if (ph[1].peak * 4 > ph[0].peak) {
    printf("  WARN: the partitioned queue (peak %llu) was not well below the "
           "singleton's (%llu)\n",
           (unsigned long long)ph[1].peak, (unsigned long long)ph[0].peak);
    story = 0;
  }
  if (story)
    printf("  the singleton drowned (alarm raised, proc_count named it); the "
           "partitioned service kept up\n");
  if (chart)
    printf("  chart: %s (data: %s)\n", svg, csv);
  else
    printf("  FAILED to write the chart %s\n", svg);
  printf("%s\n", !bad && chart ? "demo: PASS" : "demo: FAIL");
  free(ph);
  return !bad && chart ? 0 : 1;
}
