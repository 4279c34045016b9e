/*
 * partitioned.c: partitioned cast throughput, the twin of
 * bench/beam/partitioned.exs.
 *
 *   weir-bench partitioned P M W
 *
 * P producer processes cast M events each through a partition supervisor
 * with the default partition count (one per scheduler, as BEAM's
 * schedulers_online), keyed by user_id = (i * 7919 + j) mod 100,000 as in
 * the BEAM script; each worker spins W loop iterations per event. The figure
 * is events per second from the first cast to the last one handled. This is
 * the seed's fix at full speed.
 *
 * A second run sends the same events from the same producers to the same
 * workers with a plain weir_cast to the worker the key would route to
 * (user_id mod partitions, pids looked up once before the clock starts):
 * `direct_msgs_per_s`. The difference is what routing costs (the table
 * read, the router record, the hot-key sample), reported per message as
 * `route_overhead_ns`. The partitioned run goes first, on a cold node, as
 * the BEAM script's only run does.
 *
 * Completion: the workers count in a local counter and add it to a shared
 * one every 256 events and whenever their mailbox is empty (so the last
 * event of every worker is always counted); BEAM's script bumps one shared
 * :counters cell per event. The worker whose addition reaches P*M raises
 * the flag the main thread waits on.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TAG_TRACK = 1, TAG_GO, TAG_MORE };
enum { PRODUCER_CHUNK = 1024, FLUSH_EVERY = 256 };

/* {:track, uid, %{"k" => j}} */
typedef struct part_event {
  uint64_t user_id;
  char key[4];
  uint32_t value;
} part_event;

typedef struct shared {
  _Atomic uint64_t handled;
  uint64_t expect;
  uint64_t work;
  bench_flag done;
} shared;

typedef struct worker {
  shared *sh;
  uint64_t local;
} worker;

typedef struct producer {
  weir_pid ps;          /* partitioned run: the partition supervisor */
  const weir_pid *pids; /* direct run: the workers, by partition */
  unsigned nparts;
  int direct;
  uint64_t id, m, sent;
} producer;

static void spin(uint64_t w) {
  for (uint64_t k = 0; k < w; k++)
    __asm__ volatile("" ::: "memory");
}

static int worker_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  worker *w = calloc(1, sizeof *w);
  if (w == NULL) return WEIR_ENOMEM;
  w->sh = arg;
  *state = w;
  return WEIR_OK;
}

static void flush(worker *w) {
  /* relaxed add: the flag's release/acquire orders the end time; the count
     only has to reach expect exactly once. */
  uint64_t now = atomic_fetch_add_explicit(&w->sh->handled, w->local,
                                           memory_order_relaxed) +
                 w->local;
  w->local = 0;
  if (now == w->sh->expect) bench_flag_raise(&w->sh->done);
}

static int worker_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  worker *w = state;
  if (m->tag != TAG_TRACK || m->len != sizeof(part_event)) return WEIR_EINVAL;
  spin(w->sh->work);
  if (++w->local >= FLUSH_EVERY || weir_queue_len(cx) == 0) flush(w);
  return WEIR_OK;
}

static void worker_terminate(weir_ctx *cx, void *state, int reason,
                             const weir_msg *in_hand) {
  (void)cx;
  (void)reason;
  (void)in_hand;
  free(state);
}

static const weir_server worker_server = {.name = "partitioned_worker",
                                          .init = worker_init,
                                          .handle_cast = worker_cast,
                                          .terminate = worker_terminate};

static int producer_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int producer_info(weir_ctx *cx, void *state, const weir_msg *m) {
  producer *p = state;
  weir_rt *rt = weir_ctx_rt(cx);
  if (m->tag != TAG_GO && m->tag != TAG_MORE) return WEIR_OK;
  uint64_t end = p->sent + PRODUCER_CHUNK;
  if (end > p->m) end = p->m;
  part_event ev = {.key = "k"};
  for (uint64_t j = p->sent + 1; j <= end; j++) {
    ev.user_id = (p->id * 7919 + j) % 100000;
    ev.value = (uint32_t)j;
    if (p->direct)
      bench_check(weir_cast(rt, p->pids[ev.user_id % p->nparts], TAG_TRACK, &ev,
                            sizeof ev),
                  "partitioned: weir_cast (direct)");
    else
      bench_check(
          weir_partition_cast(rt, p->ps, ev.user_id, TAG_TRACK, &ev, sizeof ev),
          "partitioned: weir_partition_cast");
  }
  p->sent = end;
  if (p->sent < p->m)
    bench_check(weir_send(rt, weir_self(cx), TAG_MORE, NULL, 0),
                "partitioned: weir_send(self, more)");
  return WEIR_OK;
}

static const weir_server producer_server = {.name = "partitioned_producer",
                                            .init = producer_init,
                                            .handle_info = producer_info};

/* One timed run: spawn the producers, go, wait, return seconds. */
static double run(weir_rt *rt, shared *sh, producer *tmpl, uint64_t np,
                  const char *what) {
  producer *prod = calloc(np, sizeof *prod);
  weir_pid *pids = calloc(np, sizeof *pids);
  if (prod == NULL || pids == NULL)
    bench_check(WEIR_ENOMEM, "partitioned: calloc");
  atomic_store(&sh->handled, 0);
  atomic_store(&sh->done.up, 0);
  for (uint64_t i = 0; i < np; i++) {
    prod[i] = *tmpl;
    prod[i].id = i + 1;
    bench_check(weir_spawn(rt, &producer_server, &prod[i], NULL, &pids[i]),
                "partitioned: spawn producer");
  }
  double t0 = bench_now();
  for (uint64_t i = 0; i < np; i++)
    bench_check(weir_send(rt, pids[i], TAG_GO, NULL, 0),
                "partitioned: send go");
  bench_flag_wait(&sh->done, what);
  double secs = bench_now() - t0;
  /* The producers are done (every event was handled); end them. */
  for (uint64_t i = 0; i < np; i++)
    weir_exit(rt, pids[i], WEIR_REASON_KILL);
  free(prod);
  free(pids);
  return secs;
}

int bench_partitioned(int argc, char **argv) {
  (void)argc;
  uint64_t np = bench_arg(argv[1], "P", 1);
  uint64_t m = bench_arg(argv[2], "M", 1);
  uint64_t w = bench_arg(argv[3], "W", 0);
  uint64_t n = np * m;

  weir_rt *rt = bench_rt_start(0, 0);
  shared sh = {.expect = n, .work = w};
  weir_partsup_opts po;
  weir_partsup_opts_init(&po);
  po.name = "Agg.Swarm";
  po.child.server = &worker_server;
  po.child.arg = &sh;
  po.partitions = 0; /* one per scheduler: schedulers_online */
  weir_pid ps;
  bench_check(weir_partsup_start(rt, &po, &ps), "partitioned: partsup_start");
  int parts = weir_partitions(rt, ps);
  if (parts <= 0) {
    bench_check(parts < 0 ? parts : WEIR_EINVAL,
                "partitioned: weir_partitions");
    return 1;
  }
  weir_pid *workers = calloc((size_t)parts, sizeof *workers);
  if (workers == NULL) bench_check(WEIR_ENOMEM, "partitioned: calloc");
  for (int i = 0; i < parts; i++)
    bench_check(weir_partition_whereis(rt, ps, (uint64_t)i, &workers[i]),
                "partitioned: partition_whereis");

  producer tmpl = {
      .ps = ps, .pids = workers, .nparts = (unsigned)parts, .m = m};
  double secs =
      run(rt, &sh, &tmpl, np, "partitioned: the workers to handle every event");
  tmpl.direct = 1;
  double dsecs = run(rt, &sh, &tmpl, np,
                     "partitioned (direct): the workers to handle every event");

  printf("weir partitioned partitions=%d producers=%llu work=%llu msgs=%llu "
         "secs=%.6f msgs_per_s=%.0f direct_secs=%.6f direct_msgs_per_s=%.0f "
         "route_overhead_ns=%.1f\n",
         parts, (unsigned long long)np, (unsigned long long)w,
         (unsigned long long)n, secs, (double)n / secs, dsecs,
         (double)n / dsecs, (secs - dsecs) * 1e9 / (double)n);
  fflush(stdout);
  bench_rt_stop(rt);
  free(workers);
  return 0;
}
