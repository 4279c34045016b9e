/*
 * io_bound.c: handlers that block, the twin of bench/beam/io_bound.exs.
 *
 * The seed's handler does Process.sleep(5) per event, so one process tops
 * out at 200 events/s and the fix is P partitions. Here each handler really
 * blocks its thread for MS ms (nanosleep), which is why the workers are
 * spawned with .blocking = 1: they run on the elastic I/O pool, never on a
 * scheduler thread. EVENTS events keyed 1..EVENTS are cast at once by the
 * main thread; the figure is events per second until the last is handled,
 * against the ideal P * 1000 / MS (every worker sleeping all the time).
 *
 * Routing: the BEAM script casts through a PartitionSupervisor, which sends
 * an integer key to partition key % P. Until the partition supervisor lands
 * this routes the same way, by key % P, to P plain processes. The
 * `partitioned` workload and a partsup-based io_bound come with the
 * partition issue.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { TAG_TRACK = 1 };

typedef struct io_event {
  uint64_t user_id;
  uint32_t sleep_ms;
} io_event;

typedef struct io_shared {
  _Atomic uint64_t handled;
  uint64_t expect;
  bench_flag done;
} io_shared;

static int worker_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int worker_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  io_shared *sh = state;
  if (m->tag != TAG_TRACK || m->len != sizeof(io_event)) return WEIR_EINVAL;
  const io_event *ev = m->data;
  struct timespec ts = {(time_t)(ev->sleep_ms / 1000),
                        (long)(ev->sleep_ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  /* relaxed would count correctly; acq_rel orders each worker's count before
     the flag raise of the one that sees the total. */
  if (atomic_fetch_add_explicit(&sh->handled, 1, memory_order_acq_rel) + 1 ==
      sh->expect)
    bench_flag_raise(&sh->done);
  return WEIR_OK;
}

static const weir_server worker_server = {
    .name = "io_worker", .init = worker_init, .handle_cast = worker_cast};

int bench_io_bound(int argc, char **argv) {
  (void)argc;
  uint64_t parts = bench_arg(argv[1], "P", 1);
  uint64_t events = bench_arg(argv[2], "EVENTS", 1);
  uint64_t ms = bench_arg(argv[3], "MS", 1);
  if (parts > 100000 || ms > 100000) {
    fprintf(stderr, "weir-bench: P and MS must be at most 100000\n");
    return 2;
  }

  /* One pool thread per blocking worker, so P sleepers sleep at once. */
  weir_rt *rt = bench_rt_start(0, parts > 64 ? (unsigned)parts : 0);
  io_shared sh = {.expect = events};
  weir_pid *workers = calloc(parts, sizeof *workers);
  if (workers == NULL) bench_check(WEIR_ENOMEM, "io_bound: calloc");
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.blocking = 1;
  for (uint64_t i = 0; i < parts; i++)
    bench_check(weir_spawn(rt, &worker_server, &sh, &so, &workers[i]),
                "io_bound: spawn worker");

  double t0 = bench_now();
  io_event ev = {.sleep_ms = (uint32_t)ms};
  for (uint64_t u = 1; u <= events; u++) {
    ev.user_id = u;
    bench_check(weir_cast(rt, workers[u % parts], TAG_TRACK, &ev, sizeof ev),
                "io_bound: weir_cast");
  }
  bench_flag_wait(&sh.done, "io_bound: every event to be handled");
  double secs = bench_now() - t0;

  double rate = (double)events / secs;
  uint64_t ideal = parts * 1000 / ms;
  printf("weir io_bound partitions=%llu events=%llu sleep_ms=%llu "
         "events_per_s=%.0f ideal=%llu pct_of_ideal=%.1f\n",
         (unsigned long long)parts, (unsigned long long)events,
         (unsigned long long)ms, rate, (unsigned long long)ideal,
         ideal > 0 ? 100.0 * rate / (double)ideal : 0.0);
  fflush(stdout);
  bench_rt_stop(rt);
  free(workers);
  return 0;
}
