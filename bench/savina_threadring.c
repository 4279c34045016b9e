/*
 * savina_threadring.c: Savina's Thread Ring, the twin of
 * bench/beam/savina/threadring.exs.
 *
 *   weir-bench savina_threadring [ACTORS] [PASSES]
 *        ACTORS processes in a ring (Savina's N, default 100), a token
 *        passed PASSES times (Savina's R, default 100,000)
 *
 * As in Savina (ThreadRingAkkaActorBenchmark): the token `ping(k)` starts at
 * actor 0 with k = PASSES; an actor that gets ping(k > 0) sends ping(k - 1)
 * to its successor; the one that gets ping(0) sends `exit(ACTORS)` around
 * the ring, and each actor ends on it. One message in flight at any time,
 * each hop to a different process: this is the cost of a context switch
 * between processes (wake the next one, run it, park this one).
 *
 * The successors are a shared pid array written before the token starts
 * (Savina sends each actor a DataMessage; the mailbox's release/acquire
 * publishes the array the same way). Here the exit token also sums the
 * pings each actor handled, and the last actor to end (the one that
 * started it) raises the flag: the total must be PASSES + 1.
 *
 * ops = PASSES token passes. The clock runs from before the spawns to the
 * last exit.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TAG_PING = 1, TAG_EXIT };

typedef struct ring_shared {
  const weir_pid *pids;
  uint64_t actors;
  uint64_t total_pings; /* written by the last actor before done */
  bench_flag done;
} ring_shared;

typedef struct ring_actor {
  ring_shared *sh;
  uint64_t next; /* index of the successor */
  uint64_t pings;
} ring_actor;

typedef struct exit_token {
  uint64_t left;  /* actors still to end, this one included */
  uint64_t pings; /* pings handled by the actors that ended */
} exit_token;

static int tr_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int ring_info(weir_ctx *cx, void *state, const weir_msg *m) {
  ring_actor *a = state;
  weir_rt *rt = weir_ctx_rt(cx);
  weir_pid next = a->sh->pids[a->next];
  if (m->tag == TAG_PING && m->len == sizeof(uint64_t)) {
    uint64_t k;
    memcpy(&k, m->data, sizeof k);
    a->pings++;
    if (k > 0) {
      k--;
      bench_check(weir_send(rt, next, TAG_PING, &k, sizeof k),
                  "savina_threadring: send ping");
    } else {
      exit_token t = {.left = a->sh->actors, .pings = 0};
      bench_check(weir_send(rt, next, TAG_EXIT, &t, sizeof t),
                  "savina_threadring: send exit");
    }
    return WEIR_OK;
  }
  if (m->tag == TAG_EXIT && m->len == sizeof(exit_token)) {
    exit_token t;
    memcpy(&t, m->data, sizeof t);
    t.pings += a->pings;
    if (--t.left > 0) {
      bench_check(weir_send(rt, next, TAG_EXIT, &t, sizeof t),
                  "savina_threadring: send exit");
    } else {
      a->sh->total_pings = t.pings;
      bench_flag_raise(&a->sh->done); /* release: total_pings */
    }
    return WEIR_STOP;
  }
  return WEIR_OK;
}

static const weir_server ring_server = {
    .name = "savina_ring", .init = tr_init, .handle_info = ring_info};

int bench_savina_threadring(int argc, char **argv) {
  uint64_t actors = savina_arg(argc, argv, 1, "ACTORS", 100);
  uint64_t passes = savina_arg(argc, argv, 2, "PASSES", 100000);

  weir_rt *rt = bench_rt_start(0, 0);
  weir_pid *pids = calloc(actors, sizeof *pids);
  ring_actor *as = calloc(actors, sizeof *as);
  if (pids == NULL || as == NULL)
    bench_check(WEIR_ENOMEM, "savina_threadring: calloc");
  ring_shared sh = {.pids = pids, .actors = actors};

  double t0 = bench_now();
  for (uint64_t i = 0; i < actors; i++) {
    as[i] = (ring_actor){.sh = &sh, .next = (i + 1) % actors};
    bench_check(weir_spawn(rt, &ring_server, &as[i], NULL, &pids[i]),
                "savina_threadring: spawn");
  }
  uint64_t k = passes;
  bench_check(weir_send(rt, pids[0], TAG_PING, &k, sizeof k),
              "savina_threadring: send first ping");
  bench_flag_wait(&sh.done, "savina_threadring: the exit token");
  double secs = bench_now() - t0;

  savina_expect(sh.total_pings == passes + 1, "savina_threadring",
                "the ring handled %llu pings, expected %llu",
                (unsigned long long)sh.total_pings,
                (unsigned long long)(passes + 1));
  char keys[64];
  snprintf(keys, sizeof keys, "actors=%llu passes=%llu",
           (unsigned long long)actors, (unsigned long long)passes);
  savina_report("savina_threadring", keys, (double)passes, secs);
  bench_rt_stop(rt);
  free(pids);
  free(as);
  return 0;
}
