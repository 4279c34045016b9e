/*
 * savina_pingpong.c: Savina's PingPong, the twin of
 * bench/beam/savina/pingpong.exs.
 *
 *   weir-bench savina_pingpong [N]      N pings (Savina default 40,000)
 *
 * As in Savina (PingPongAkkaActorBenchmark): a ping process, told `start`,
 * sends `send_ping` to the pong process; pong answers `send_pong` to the
 * sender; on each pong, ping sends itself a `ping` message (Savina's way of
 * yielding between round trips) and that ping sends the next `send_ping`.
 * After N round trips ping sends `stop` and ends; pong checks that it saw N
 * pings and ends. Three messages per round trip, one in flight at a time:
 * this measures latency (send, wake, schedule, run), not throughput.
 *
 * ops = N round trips. The clock runs from before the two spawns to pong's
 * `stop` (Savina times the actor system from creation to termination).
 */
#include "bench.h"

#include <stdio.h>

enum { TAG_START = 1, TAG_PING, TAG_SEND_PING, TAG_SEND_PONG, TAG_STOP };

typedef struct ping_state {
  weir_pid pong;
  uint64_t pings_left;
} ping_state;

typedef struct pong_state {
  uint64_t pongs; /* read by main after done is raised */
  bench_flag done;
} pong_state;

static int sp_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int ping_info(weir_ctx *cx, void *state, const weir_msg *m) {
  ping_state *p = state;
  weir_rt *rt = weir_ctx_rt(cx);
  switch (m->tag) {
  case TAG_START:
  case TAG_PING:
    bench_check(weir_send(rt, p->pong, TAG_SEND_PING, NULL, 0),
                "savina_pingpong: send send_ping");
    p->pings_left--;
    return WEIR_OK;
  case TAG_SEND_PONG:
    if (p->pings_left > 0) {
      bench_check(weir_send(rt, weir_self(cx), TAG_PING, NULL, 0),
                  "savina_pingpong: send ping to self");
      return WEIR_OK;
    }
    bench_check(weir_send(rt, p->pong, TAG_STOP, NULL, 0),
                "savina_pingpong: send stop");
    return WEIR_STOP;
  default:
    return WEIR_OK;
  }
}

static int pong_info(weir_ctx *cx, void *state, const weir_msg *m) {
  pong_state *p = state;
  if (m->tag == TAG_SEND_PING) {
    bench_check(weir_send(weir_ctx_rt(cx), m->from, TAG_SEND_PONG, NULL, 0),
                "savina_pingpong: send send_pong");
    p->pongs++;
    return WEIR_OK;
  }
  if (m->tag == TAG_STOP) {
    bench_flag_raise(&p->done); /* release: pongs is visible to main */
    return WEIR_STOP;
  }
  return WEIR_OK;
}

static const weir_server ping_server = {
    .name = "savina_ping", .init = sp_init, .handle_info = ping_info};
static const weir_server pong_server = {
    .name = "savina_pong", .init = sp_init, .handle_info = pong_info};

int bench_savina_pingpong(int argc, char **argv) {
  uint64_t n = savina_arg(argc, argv, 1, "N", 40000);

  weir_rt *rt = bench_rt_start(0, 0);
  pong_state pong = {0};
  ping_state ping = {.pings_left = n};
  weir_pid ping_pid;

  double t0 = bench_now();
  bench_check(weir_spawn(rt, &pong_server, &pong, NULL, &ping.pong),
              "savina_pingpong: spawn pong");
  bench_check(weir_spawn(rt, &ping_server, &ping, NULL, &ping_pid),
              "savina_pingpong: spawn ping");
  bench_check(weir_send(rt, ping_pid, TAG_START, NULL, 0),
              "savina_pingpong: send start");
  bench_flag_wait(&pong.done, "savina_pingpong: pong to be stopped");
  double secs = bench_now() - t0;

  savina_expect(pong.pongs == n, "savina_pingpong",
                "pong answered %llu pings, expected %llu",
                (unsigned long long)pong.pongs, (unsigned long long)n);
  char keys[64];
  snprintf(keys, sizeof keys, "n=%llu", (unsigned long long)n);
  savina_report("savina_pingpong", keys, (double)n, secs);
  bench_rt_stop(rt);
  return 0;
}
