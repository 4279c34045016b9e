/*
 * savina_count.c: Savina's Counting Actor, the twin of
 * bench/beam/savina/count.exs.
 *
 *   weir-bench savina_count [N]      N increments (Savina default 1,000,000)
 *
 * As in Savina (CountingAkkaActorBenchmark): a producer process, told to
 * start, sends N `increment` messages to a counter process in one go, then a
 * `retrieve`; the counter answers the retrieve with its count and ends; the
 * producer checks the count is N and ends. One sender, one receiver, the
 * mailbox free to grow: this is raw one-to-one send + receive throughput,
 * with the two sides on different schedulers when the runtime spreads them.
 *
 * ops = N messages counted. The clock runs from before the two spawns to the
 * producer holding the result.
 */
#include "bench.h"

#include <stdio.h>
#include <string.h>

enum { TAG_START = 1, TAG_INCREMENT, TAG_RETRIEVE, TAG_RESULT };

typedef struct producer_state {
  weir_pid counter;
  uint64_t n;
  uint64_t result; /* read by main after done is raised */
  bench_flag done;
} producer_state;

static int sc_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int producer_info(weir_ctx *cx, void *state, const weir_msg *m) {
  producer_state *p = state;
  weir_rt *rt = weir_ctx_rt(cx);
  if (m->tag == TAG_START) {
    for (uint64_t i = 0; i < p->n; i++)
      bench_check(weir_send(rt, p->counter, TAG_INCREMENT, NULL, 0),
                  "savina_count: send increment");
    bench_check(weir_send(rt, p->counter, TAG_RETRIEVE, NULL, 0),
                "savina_count: send retrieve");
    return WEIR_OK;
  }
  if (m->tag == TAG_RESULT && m->len == sizeof p->result) {
    memcpy(&p->result, m->data, sizeof p->result);
    bench_flag_raise(&p->done); /* release: result is visible to main */
    return WEIR_STOP;
  }
  return WEIR_OK;
}

static int counter_info(weir_ctx *cx, void *state, const weir_msg *m) {
  uint64_t *count = state;
  if (m->tag == TAG_INCREMENT) {
    ++*count;
    return WEIR_OK;
  }
  if (m->tag == TAG_RETRIEVE) {
    bench_check(
        weir_send(weir_ctx_rt(cx), m->from, TAG_RESULT, count, sizeof *count),
        "savina_count: send result");
    return WEIR_STOP;
  }
  return WEIR_OK;
}

static const weir_server producer_server = {
    .name = "savina_producer", .init = sc_init, .handle_info = producer_info};
static const weir_server counter_server = {
    .name = "savina_counter", .init = sc_init, .handle_info = counter_info};

int bench_savina_count(int argc, char **argv) {
  uint64_t n = savina_arg(argc, argv, 1, "N", 1000000);

  weir_rt *rt = bench_rt_start(0, 0);
  uint64_t count = 0; /* the counter's state; only it touches it */
  producer_state prod = {.n = n};
  weir_pid prod_pid;

  double t0 = bench_now();
  bench_check(weir_spawn(rt, &counter_server, &count, NULL, &prod.counter),
              "savina_count: spawn counter");
  bench_check(weir_spawn(rt, &producer_server, &prod, NULL, &prod_pid),
              "savina_count: spawn producer");
  bench_check(weir_send(rt, prod_pid, TAG_START, NULL, 0),
              "savina_count: send start");
  bench_flag_wait(&prod.done, "savina_count: the producer's result");
  double secs = bench_now() - t0;

  savina_expect(prod.result == n, "savina_count", "counted %llu, expected %llu",
                (unsigned long long)prod.result, (unsigned long long)n);
  char keys[64];
  snprintf(keys, sizeof keys, "n=%llu", (unsigned long long)n);
  savina_report("savina_count", keys, (double)n, secs);
  bench_rt_stop(rt);
  return 0;
}
