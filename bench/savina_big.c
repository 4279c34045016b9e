/*
 * savina_big.c: Savina's Big, the twin of bench/beam/savina/big.exs.
 *
 *   weir-bench savina_big [A] [PINGS]
 *        A actors (Savina's W, default 120), PINGS pings each (Savina's N,
 *        default 20,000; Savina's BigConfig has N = 20,000)
 *
 * As in Savina (BigAkkaActorBenchmark): A actors and a sink; every actor
 * knows every other (the neighbour array). Each actor, started by a
 * `pong(-1)`, sends `ping(self)` to a neighbour picked with Savina's
 * PseudoRandom seeded by its index, waits for that neighbour's `pong`, and
 * does it again, PINGS times; it answers every `ping` it gets with a `pong`.
 * After its last pong it tells the sink; when all A have, the sink sends
 * `exit` to every actor. Many-to-many traffic with A pings in flight: this
 * is mailbox contention and scheduling under a random communication graph.
 *
 * Checks: each pong comes from the neighbour pinged (Savina prints an error
 * otherwise; here it counts them and fails the run), each actor sent PINGS
 * pings, the sink heard from all A, and all A actors ended.
 *
 * ops = A * PINGS ping/pong round trips. The clock runs from before the
 * spawns to the last actor ending on `exit` (an atomic countdown).
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TAG_PING = 1, TAG_PONG, TAG_EXIT };

typedef struct big_shared {
  const weir_pid *actors;
  uint64_t a;
  uint64_t pings; /* per actor */
  weir_pid sink;
  _Atomic uint64_t actors_left;
  bench_flag done;
} big_shared;

typedef struct big_actor {
  big_shared *sh;
  int32_t id;
  int32_t exp_pinger;
  uint32_t rand;
  uint64_t sent;
  uint64_t wrong_pongs;
} big_actor;

typedef struct sink_state {
  big_shared *sh;
  uint64_t exits; /* read by main after done */
} sink_state;

static int bg_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int big_info(weir_ctx *cx, void *state, const weir_msg *m) {
  big_actor *b = state;
  big_shared *sh = b->sh;
  weir_rt *rt = weir_ctx_rt(cx);
  int32_t sender;
  if (m->tag == TAG_PING && m->len == sizeof sender) {
    memcpy(&sender, m->data, sizeof sender);
    bench_check(
        weir_send(rt, sh->actors[sender], TAG_PONG, &b->id, sizeof b->id),
        "savina_big: send pong");
    return WEIR_OK;
  }
  if (m->tag == TAG_PONG && m->len == sizeof sender) {
    memcpy(&sender, m->data, sizeof sender);
    if (sender != b->exp_pinger) b->wrong_pongs++;
    if (b->sent == sh->pings) {
      bench_check(weir_send(rt, sh->sink, TAG_EXIT, NULL, 0),
                  "savina_big: send exit to sink");
      return WEIR_OK;
    }
    uint32_t target = savina_rand_int(&b->rand, (uint32_t)sh->a);
    b->exp_pinger = (int32_t)target;
    bench_check(
        weir_send(rt, sh->actors[target], TAG_PING, &b->id, sizeof b->id),
        "savina_big: send ping");
    b->sent++;
    return WEIR_OK;
  }
  if (m->tag == TAG_EXIT) {
    /* acq_rel: the last actor sees every other actor's counters written
       before its decrement, and publishes them with the flag. */
    if (atomic_fetch_sub_explicit(&sh->actors_left, 1, memory_order_acq_rel) ==
        1)
      bench_flag_raise(&sh->done);
    return WEIR_STOP;
  }
  return WEIR_OK;
}

static int sink_info(weir_ctx *cx, void *state, const weir_msg *m) {
  sink_state *s = state;
  if (m->tag != TAG_EXIT) return WEIR_OK;
  if (++s->exits < s->sh->a) return WEIR_OK;
  weir_rt *rt = weir_ctx_rt(cx);
  for (uint64_t i = 0; i < s->sh->a; i++)
    bench_check(weir_send(rt, s->sh->actors[i], TAG_EXIT, NULL, 0),
                "savina_big: send exit to actor");
  return WEIR_STOP;
}

static const weir_server big_server = {
    .name = "savina_big_actor", .init = bg_init, .handle_info = big_info};
static const weir_server sink_server = {
    .name = "savina_big_sink", .init = bg_init, .handle_info = sink_info};

int bench_savina_big(int argc, char **argv) {
  uint64_t a = savina_arg(argc, argv, 1, "A", 120);
  uint64_t pings = savina_arg(argc, argv, 2, "PINGS", 20000);
  if (a > 65536) {
    fprintf(stderr, "weir-bench: savina_big: A must be <= 65536 (Savina's "
                    "PseudoRandom is 16-bit)\n");
    return 2;
  }

  weir_rt *rt = bench_rt_start(0, 0);
  weir_pid *pids = calloc(a, sizeof *pids);
  big_actor *bs = calloc(a, sizeof *bs);
  if (pids == NULL || bs == NULL)
    bench_check(WEIR_ENOMEM, "savina_big: calloc");
  big_shared sh = {.actors = pids, .a = a, .pings = pings, .actors_left = a};
  sink_state sink = {.sh = &sh};

  double t0 = bench_now();
  bench_check(weir_spawn(rt, &sink_server, &sink, NULL, &sh.sink),
              "savina_big: spawn sink");
  for (uint64_t i = 0; i < a; i++) {
    bs[i] = (big_actor){
        .sh = &sh, .id = (int32_t)i, .exp_pinger = -1, .rand = (uint32_t)i};
    bench_check(weir_spawn(rt, &big_server, &bs[i], NULL, &pids[i]),
                "savina_big: spawn actor");
  }
  /* The neighbour array is complete before any actor is started: the
     start message publishes it (Savina sends a NeighborMessage). */
  int32_t start = -1;
  for (uint64_t i = 0; i < a; i++)
    bench_check(weir_send(rt, pids[i], TAG_PONG, &start, sizeof start),
                "savina_big: send start");
  bench_flag_wait(&sh.done, "savina_big: every actor to end");
  double secs = bench_now() - t0;

  uint64_t sent = 0, wrong = 0;
  for (uint64_t i = 0; i < a; i++) {
    sent += bs[i].sent;
    wrong += bs[i].wrong_pongs;
  }
  savina_expect(sent == a * pings && wrong == 0 && sink.exits == a,
                "savina_big",
                "pings sent %llu of %llu, pongs from the wrong actor %llu, "
                "sink heard %llu of %llu",
                (unsigned long long)sent, (unsigned long long)(a * pings),
                (unsigned long long)wrong, (unsigned long long)sink.exits,
                (unsigned long long)a);
  char keys[64];
  snprintf(keys, sizeof keys, "actors=%llu pings=%llu", (unsigned long long)a,
           (unsigned long long)pings);
  savina_report("savina_big", keys, (double)(a * pings), secs);
  bench_rt_stop(rt);
  free(pids);
  free(bs);
  return 0;
}
