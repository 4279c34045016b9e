/*
 * diag_cost.c: what diagnostics cost a running node.
 *
 *   weir-bench proc_count N       spawn N idle servers, then time
 *                                 weir_proc_count over all of them (median
 *                                 of 7 scans).
 *   weir-bench fanin_polled P M   the fan-in workload (P producer processes,
 *                                 one server) run twice in one node: once
 *                                 alone, once while a thread calls
 *                                 weir_proc_count(message_queue_len, 5)
 *                                 every 100 ms; prints both rates and their
 *                                 ratio (goal: >= 0.95).
 *
 * proc_count walks the slot table with relaxed loads and takes no lock a
 * scheduler waits on, so its cost is one pass over the table; the question
 * these answer is whether that pass disturbs the work around it.
 */
#include "bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { TAG_EV = 1, TAG_GO, TAG_MORE };
enum { CHUNK = 1024 };

static int take_arg(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int idle_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  (void)state;
  (void)m;
  return WEIR_OK;
}

static const weir_server idle_server = {
    .name = "idle", .init = take_arg, .handle_cast = idle_cast};

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int bench_proc_count(int argc, char **argv) {
  (void)argc;
  uint64_t n = bench_arg(argv[1], "N", 10);
  weir_rt *rt = bench_rt_start((uint32_t)(n + 1024), 0);
  weir_pid *pids = calloc(n, sizeof *pids);
  if (!pids) bench_check(WEIR_ENOMEM, "proc_count: calloc");
  double t0 = bench_now();
  for (uint64_t i = 0; i < n; i++)
    bench_check(weir_spawn(rt, &idle_server, NULL, NULL, &pids[i]),
                "proc_count: spawn");
  double spawn_s = bench_now() - t0;
  /* The figure is the time of one scan over the whole table (median of
     seven); the idle processes have empty queues, so the top five are any
     five, and the check is only that five came back. */
  const int scans = 7;
  double t[7];
  weir_proc_sample top[5];
  size_t got = 0;
  for (int k = 0; k < scans; k++) {
    double s0 = bench_now();
    bench_check(weir_proc_count(rt, WEIR_ATTR_MESSAGE_QUEUE_LEN, 5, top, &got),
                "proc_count: weir_proc_count");
    t[k] = bench_now() - s0;
  }
  qsort(t, (size_t)scans, sizeof t[0], cmp_double);
  printf("weir proc_count processes=%llu spawn_secs=%.3f scan_ms=%.2f "
         "ns_per_process=%.1f top=%zu\n",
         (unsigned long long)n, spawn_s, t[scans / 2] * 1e3,
         t[scans / 2] * 1e9 / (double)n, got);
  fflush(stdout);
  bench_rt_stop(rt);
  free(pids);
  return got == 5 ? 0 : 1;
}

/* ---- fan-in with and without a poller ---------------------------------- */

typedef struct sink {
  uint64_t handled, expect;
  bench_flag done;
} sink;

typedef struct producer {
  weir_pid sink;
  uint64_t m, sent;
} producer;

static int sink_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  (void)m;
  sink *s = state;
  if (++s->handled == s->expect) bench_flag_raise(&s->done);
  return WEIR_OK;
}

static const weir_server sink_server = {
    .name = "polled_sink", .init = take_arg, .handle_cast = sink_cast};

static int producer_info(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)m;
  producer *p = state;
  weir_rt *rt = weir_ctx_rt(cx);
  uint64_t end = p->sent + CHUNK < p->m ? p->sent + CHUNK : p->m;
  uint64_t ev[2] = {0, 0};
  for (uint64_t j = p->sent; j < end; j++) {
    ev[0] = j;
    bench_check(weir_cast(rt, p->sink, TAG_EV, ev, sizeof ev), "cast");
  }
  p->sent = end;
  if (p->sent < p->m)
    bench_check(weir_send(rt, weir_self(cx), TAG_MORE, NULL, 0), "send");
  return WEIR_OK;
}

static const weir_server producer_server = {
    .name = "polled_producer", .init = take_arg, .handle_info = producer_info};

typedef struct poller {
  weir_rt *rt;
  _Atomic int stop;
  uint64_t polls;
} poller;

static void *poll_main(void *arg) {
  poller *pl = arg;
  weir_proc_sample top[5];
  size_t got;
  while (!atomic_load(&pl->stop)) {
    bench_check(
        weir_proc_count(pl->rt, WEIR_ATTR_MESSAGE_QUEUE_LEN, 5, top, &got),
        "poll: weir_proc_count");
    pl->polls++;
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

static double run_fanin(weir_rt *rt, uint64_t np, uint64_t m) {
  sink s = {.expect = np * m};
  weir_pid sp;
  bench_check(weir_spawn(rt, &sink_server, &s, NULL, &sp), "spawn sink");
  producer *pr = calloc(np, sizeof *pr);
  weir_pid *pp = calloc(np, sizeof *pp);
  if (!pr || !pp) bench_check(WEIR_ENOMEM, "calloc");
  for (uint64_t i = 0; i < np; i++) {
    pr[i] = (producer){.sink = sp, .m = m};
    bench_check(weir_spawn(rt, &producer_server, &pr[i], NULL, &pp[i]),
                "spawn producer");
  }
  double t0 = bench_now();
  for (uint64_t i = 0; i < np; i++)
    bench_check(weir_send(rt, pp[i], TAG_GO, NULL, 0), "go");
  bench_flag_wait(&s.done, "fanin_polled: the sink");
  double rate = (double)(np * m) / (bench_now() - t0);
  for (uint64_t i = 0; i < np; i++)
    weir_exit(rt, pp[i], WEIR_REASON_KILL);
  weir_exit(rt, sp, WEIR_REASON_KILL);
  free(pr);
  free(pp);
  return rate;
}

int bench_fanin_polled(int argc, char **argv) {
  (void)argc;
  uint64_t np = bench_arg(argv[1], "P", 1);
  uint64_t m = bench_arg(argv[2], "M", 1);
  weir_rt *rt = bench_rt_start(0, 0);
  /* Some idle processes, so a scan has a table to walk (10,000). */
  for (int i = 0; i < 10000; i++) {
    weir_pid p;
    bench_check(weir_spawn(rt, &idle_server, NULL, NULL, &p), "spawn idle");
  }
  /* alternate: plain, polled, plain, polled, plain, polled; medians */
  double plain[3], polled[3];
  uint64_t polls = 0;
  for (int r = 0; r < 3; r++) {
    plain[r] = run_fanin(rt, np, m);
    poller pl = {.rt = rt};
    pthread_t th;
    if (pthread_create(&th, NULL, poll_main, &pl) != 0)
      bench_check(WEIR_ESYS, "pthread_create");
    polled[r] = run_fanin(rt, np, m);
    atomic_store(&pl.stop, 1);
    pthread_join(th, NULL);
    polls += pl.polls;
  }
  qsort(plain, 3, sizeof plain[0], cmp_double);
  qsort(polled, 3, sizeof polled[0], cmp_double);
  printf("weir fanin_polled producers=%llu msgs=%llu plain_msgs_per_s=%.0f "
         "polled_msgs_per_s=%.0f polls=%llu ratio=%.3f\n",
         (unsigned long long)np, (unsigned long long)(np * m), plain[1],
         polled[1], (unsigned long long)polls, polled[1] / plain[1]);
  fflush(stdout);
  bench_rt_stop(rt);
  return 0;
}
