/*
 * savina_fjthrput.c: Savina's Fork-Join (throughput), the twin of
 * bench/beam/savina/fjthrput.exs.
 *
 *   weir-bench savina_fjthrput [A] [N]   A actors (Savina default 60), N
 *                                        messages each (default 10,000)
 *
 * As in Savina (ThroughputAkkaActorBenchmark): A worker processes; one
 * sender sends N rounds of one message to every worker (round-robin, so all
 * A mailboxes fill at once); each worker does Savina's performComputation
 * (sin(37.2)^2) per message and ends after its N-th. In Savina the sender is
 * the benchmark's main thread; here it is a driver process, as the BEAM
 * twin's sender is the script's own process. Many mailboxes, many runnable
 * processes: this is the scheduler's throughput with fan-out.
 *
 * ops = A*N messages handled. The clock runs from before the spawns to the
 * last worker's last message (an atomic countdown of workers left).
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>

enum { TAG_GO = 1, TAG_WORK };

typedef struct fj_shared {
  uint64_t n;
  volatile double theta; /* 37.2, read per message: no constant folding */
  _Atomic uint64_t workers_left;
  bench_flag done;
} fj_shared;

typedef struct worker_state {
  fj_shared *sh;
  uint64_t processed;
} worker_state;

typedef struct driver_state {
  fj_shared *sh;
  weir_pid *workers;
  uint64_t a;
} driver_state;

static int ft_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int worker_info(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  worker_state *w = state;
  if (m->tag != TAG_WORK) return WEIR_OK;
  w->processed++;
  savina_compute(w->sh->theta);
  if (w->processed < w->sh->n) return WEIR_OK;
  /* acq_rel: the last worker sees every other worker's processed count
     written before its decrement, and publishes them with the flag. */
  if (atomic_fetch_sub_explicit(&w->sh->workers_left, 1,
                                memory_order_acq_rel) == 1)
    bench_flag_raise(&w->sh->done);
  return WEIR_STOP;
}

static int driver_info(weir_ctx *cx, void *state, const weir_msg *m) {
  driver_state *d = state;
  if (m->tag != TAG_GO) return WEIR_OK;
  weir_rt *rt = weir_ctx_rt(cx);
  for (uint64_t r = 0; r < d->sh->n; r++)
    for (uint64_t i = 0; i < d->a; i++)
      bench_check(weir_send(rt, d->workers[i], TAG_WORK, NULL, 0),
                  "savina_fjthrput: send work");
  return WEIR_STOP;
}

static const weir_server worker_server = {
    .name = "savina_fj_worker", .init = ft_init, .handle_info = worker_info};
static const weir_server driver_server = {
    .name = "savina_fj_driver", .init = ft_init, .handle_info = driver_info};

int bench_savina_fjthrput(int argc, char **argv) {
  uint64_t a = savina_arg(argc, argv, 1, "A", 60);
  uint64_t n = savina_arg(argc, argv, 2, "N", 10000);

  weir_rt *rt = bench_rt_start(0, 0);
  fj_shared sh = {.n = n, .theta = 37.2, .workers_left = a};
  worker_state *ws = calloc(a, sizeof *ws);
  weir_pid *pids = calloc(a, sizeof *pids);
  if (ws == NULL || pids == NULL)
    bench_check(WEIR_ENOMEM, "savina_fjthrput: calloc");
  driver_state drv = {.sh = &sh, .workers = pids, .a = a};
  weir_pid drv_pid;

  double t0 = bench_now();
  for (uint64_t i = 0; i < a; i++) {
    ws[i].sh = &sh;
    bench_check(weir_spawn(rt, &worker_server, &ws[i], NULL, &pids[i]),
                "savina_fjthrput: spawn worker");
  }
  bench_check(weir_spawn(rt, &driver_server, &drv, NULL, &drv_pid),
              "savina_fjthrput: spawn driver");
  bench_check(weir_send(rt, drv_pid, TAG_GO, NULL, 0),
              "savina_fjthrput: send go");
  bench_flag_wait(&sh.done, "savina_fjthrput: every worker to finish");
  double secs = bench_now() - t0;

  uint64_t total = 0;
  for (uint64_t i = 0; i < a; i++)
    total += ws[i].processed;
  savina_expect(total == a * n, "savina_fjthrput",
                "workers handled %llu messages, expected %llu",
                (unsigned long long)total, (unsigned long long)(a * n));
  char keys[64];
  snprintf(keys, sizeof keys, "actors=%llu n=%llu", (unsigned long long)a,
           (unsigned long long)n);
  savina_report("savina_fjthrput", keys, (double)(a * n), secs);
  bench_rt_stop(rt);
  free(ws);
  free(pids);
  return 0;
}
