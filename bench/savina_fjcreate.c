/*
 * savina_fjcreate.c: Savina's Fork-Join (actor creation), the twin of
 * bench/beam/savina/fjcreate.exs.
 *
 *   weir-bench savina_fjcreate [N]      N actors (Savina default 40,000)
 *
 * As in Savina (ForkJoinAkkaActorBenchmark): N times, create an actor and
 * send it one message; the actor does Savina's performComputation
 * (sin(37.2)^2) and ends. In Savina the creator is the main thread; here it
 * is a driver process, as in the BEAM twin (the script's process spawns).
 * weir_spawn from a process does not wait for init, like Erlang's spawn, so
 * creation, first message and exit overlap across the schedulers: this is
 * the whole life cycle of a short-lived process.
 *
 * ops = N actors created, run and ended. The clock runs from before the
 * driver's spawn to the last actor's message (an atomic countdown).
 */
#include "bench.h"

#include <stdio.h>

enum { TAG_GO = 1, TAG_WORK };

typedef struct fjc_shared {
  uint64_t n;
  volatile double theta; /* 37.2, read per actor: no constant folding */
  _Atomic uint64_t left;
  bench_flag done;
} fjc_shared;

static int fc_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int actor_info(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  fjc_shared *sh = state;
  if (m->tag != TAG_WORK) return WEIR_OK;
  savina_compute(sh->theta);
  /* relaxed would do for the count; acq_rel keeps the "last one raises"
     reasoning the same as in the other workloads. */
  if (atomic_fetch_sub_explicit(&sh->left, 1, memory_order_acq_rel) == 1)
    bench_flag_raise(&sh->done);
  return WEIR_STOP;
}

static const weir_server actor_server = {
    .name = "savina_fjc_actor", .init = fc_init, .handle_info = actor_info};

static int driver_info(weir_ctx *cx, void *state, const weir_msg *m) {
  fjc_shared *sh = state;
  if (m->tag != TAG_GO) return WEIR_OK;
  weir_rt *rt = weir_ctx_rt(cx);
  for (uint64_t i = 0; i < sh->n; i++) {
    weir_pid pid;
    bench_check(weir_spawn(rt, &actor_server, sh, NULL, &pid),
                "savina_fjcreate: spawn actor");
    bench_check(weir_send(rt, pid, TAG_WORK, NULL, 0),
                "savina_fjcreate: send work");
  }
  return WEIR_STOP;
}

static const weir_server driver_server = {
    .name = "savina_fjc_driver", .init = fc_init, .handle_info = driver_info};

int bench_savina_fjcreate(int argc, char **argv) {
  uint64_t n = savina_arg(argc, argv, 1, "N", 40000);

  weir_rt *rt = bench_rt_start(0, 0);
  fjc_shared sh = {.n = n, .theta = 37.2, .left = n};
  weir_pid drv;

  double t0 = bench_now();
  bench_check(weir_spawn(rt, &driver_server, &sh, NULL, &drv),
              "savina_fjcreate: spawn driver");
  bench_check(weir_send(rt, drv, TAG_GO, NULL, 0), "savina_fjcreate: send go");
  bench_flag_wait(&sh.done, "savina_fjcreate: every actor to run");
  double secs = bench_now() - t0;

  weir_stats st;
  bench_check(weir_node_stats(rt, &st), "savina_fjcreate: node stats");
  /* N actors + the driver were spawned; none may have crashed. */
  savina_expect(atomic_load(&sh.left) == 0 && st.spawned >= n + 1 &&
                    st.crashed == 0,
                "savina_fjcreate", "left=%llu spawned=%llu crashed=%llu",
                (unsigned long long)atomic_load(&sh.left),
                (unsigned long long)st.spawned, (unsigned long long)st.crashed);
  char keys[64];
  snprintf(keys, sizeof keys, "n=%llu", (unsigned long long)n);
  savina_report("savina_fjcreate", keys, (double)n, secs);
  bench_rt_stop(rt);
  return 0;
}
