/*
 * pingpong.c: Savina ping-pong, the twin of bench/beam/pingpong.exs.
 *
 * PAIRS pairs of processes; in each, a pinger sends `ping` and waits for
 * `pong`, N times. The figure is round trips per second over all pairs. It
 * measures the latency of the whole path (send, wake, schedule, run, reply)
 * rather than raw throughput, because only one message of a pair is ever in
 * flight.
 *
 * The BEAM script uses plain `send`/`receive`, so this uses weir_send, whose
 * messages arrive in handle_info; the ponger answers msg.from, the sender
 * pid the runtime stamps on every message (BEAM's {:ping, self()}). The
 * pairs are spawned before the clock starts and released by a `go` message;
 * the last pinger to finish raises the flag the main thread waits on.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>

enum { TAG_PING = 1, TAG_PONG, TAG_GO };

typedef struct pinger_state {
  weir_pid ponger;
  uint64_t n;
  uint64_t got;
  _Atomic uint64_t *pairs_left;
  bench_flag *done;
} pinger_state;

static int pp_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int ponger_info(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)state;
  if (m->tag != TAG_PING) return WEIR_OK;
  bench_check(weir_send(weir_ctx_rt(cx), m->from, TAG_PONG, NULL, 0),
              "pingpong: send pong");
  return WEIR_OK;
}

static int pinger_info(weir_ctx *cx, void *state, const weir_msg *m) {
  pinger_state *p = state;
  if (m->tag == TAG_PONG && ++p->got == p->n) {
    /* acq_rel: the last pinger to finish must see the others' decrements
       so that exactly one raises the flag. */
    if (atomic_fetch_sub_explicit(p->pairs_left, 1, memory_order_acq_rel) == 1)
      bench_flag_raise(p->done);
    return WEIR_OK;
  }
  if (m->tag != TAG_PONG && m->tag != TAG_GO) return WEIR_OK;
  bench_check(weir_send(weir_ctx_rt(cx), p->ponger, TAG_PING, NULL, 0),
              "pingpong: send ping");
  return WEIR_OK;
}

static const weir_server ponger_server = {
    .name = "pingpong_pong", .init = pp_init, .handle_info = ponger_info};
static const weir_server pinger_server = {
    .name = "pingpong_ping", .init = pp_init, .handle_info = pinger_info};

int bench_pingpong(int argc, char **argv) {
  (void)argc;
  uint64_t pairs = bench_arg(argv[1], "PAIRS", 1);
  uint64_t n = bench_arg(argv[2], "N", 1);

  weir_rt *rt = bench_rt_start(0, 0);
  pinger_state *ps = calloc(pairs, sizeof *ps);
  weir_pid *pingers = calloc(pairs, sizeof *pingers);
  if (ps == NULL || pingers == NULL)
    bench_check(WEIR_ENOMEM, "pingpong: calloc");
  _Atomic uint64_t pairs_left = pairs;
  bench_flag done = {0};
  for (uint64_t i = 0; i < pairs; i++) {
    weir_pid pong;
    bench_check(weir_spawn(rt, &ponger_server, NULL, NULL, &pong),
                "pingpong: spawn ponger");
    ps[i] = (pinger_state){
        .ponger = pong, .n = n, .pairs_left = &pairs_left, .done = &done};
    bench_check(weir_spawn(rt, &pinger_server, &ps[i], NULL, &pingers[i]),
                "pingpong: spawn pinger");
  }

  double t0 = bench_now();
  for (uint64_t i = 0; i < pairs; i++)
    bench_check(weir_send(rt, pingers[i], TAG_GO, NULL, 0),
                "pingpong: send go");
  bench_flag_wait(&done, "pingpong: every pair to finish");
  double secs = bench_now() - t0;

  printf("weir pingpong pairs=%llu round_trips=%llu round_trips_per_s=%.0f\n",
         (unsigned long long)pairs, (unsigned long long)(pairs * n),
         (double)(pairs * n) / secs);
  fflush(stdout);
  bench_rt_stop(rt);
  free(ps);
  free(pingers);
  return 0;
}
