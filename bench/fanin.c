/*
 * fanin.c: fan-in throughput, the twin of bench/beam/fanin.exs.
 *
 * P producer processes each cast M events {user_id, small map-like payload}
 * to ONE server process; the figure is messages per second from the first
 * cast to the last one handled. This is the seed's singleton aggregator at
 * full speed: how fast can one mailbox absorb many senders.
 *
 * A producer is a weir process, as in BEAM. It does not send its M casts in
 * one callback (that would hold a scheduler thread for the whole run and
 * hide how the runtime interleaves producers and the consumer); it sends a
 * chunk of PRODUCER_CHUNK casts per callback and then sends itself a
 * `more` message, so the scheduler sees an ordinary process that yields.
 *
 * The producers are spawned before the clock starts (BEAM spawns its two
 * inside the timed region; two spawns are noise next to 2 M messages) and
 * started together by a `go` message from the main thread. The server
 * raises a flag when it has handled P*M messages; the main thread reads the
 * clock when it sees the flag, as the BEAM script does on :done.
 *
 * `other_traced`: an idle process outside the fan-in is traced meanwhile
 * (a console trace session, opened in process), to show what tracing one
 * process costs the others: their run loop pays no new branch.
 */
#include "bench.h"
#include "internal.h" /* weir__trace_open: other_traced */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TAG_TRACK = 1, TAG_GO, TAG_MORE };
enum { PRODUCER_CHUNK = 1024 };

/* {:track, user_id, %{"k" => j}}: a user id and one small key/value pair. */
typedef struct fanin_event {
  uint64_t user_id;
  char key[4];
  uint32_t value;
} fanin_event;

typedef struct sink_state {
  uint64_t handled;
  uint64_t expect;
  bench_flag done;
} sink_state;

typedef struct producer_state {
  weir_pid sink;
  uint64_t id;
  uint64_t m;
  uint64_t sent;
} producer_state;

static int sink_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int sink_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  sink_state *s = state;
  if (m->tag != TAG_TRACK || m->len != sizeof(fanin_event)) return WEIR_EINVAL;
  if (++s->handled == s->expect) bench_flag_raise(&s->done);
  return WEIR_OK;
}

static const weir_server sink_server = {
    .name = "fanin_sink", .init = sink_init, .handle_cast = sink_cast};

static int producer_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int producer_info(weir_ctx *cx, void *state, const weir_msg *m) {
  producer_state *p = state;
  weir_rt *rt = weir_ctx_rt(cx);
  if (m->tag != TAG_GO && m->tag != TAG_MORE) return WEIR_OK;
  uint64_t end = p->sent + PRODUCER_CHUNK;
  if (end > p->m) end = p->m;
  fanin_event ev = {.key = "k"};
  for (uint64_t j = p->sent + 1; j <= end; j++) {
    ev.user_id = p->id * p->m + j;
    ev.value = (uint32_t)j;
    bench_check(weir_cast(rt, p->sink, TAG_TRACK, &ev, sizeof ev),
                "fanin: weir_cast");
  }
  p->sent = end;
  if (p->sent < p->m)
    bench_check(weir_send(rt, weir_self(cx), TAG_MORE, NULL, 0),
                "fanin: weir_send(self, more)");
  return WEIR_OK;
}

static const weir_server producer_server = {.name = "fanin_producer",
                                            .init = producer_init,
                                            .handle_info = producer_info};

int bench_fanin(int argc, char **argv) {
  int other_traced = argc > 3 && strcmp(argv[3], "other_traced") == 0;
  if (argc > 3 && !other_traced) bench_check(WEIR_EINVAL, "fanin: argument 3");
  uint64_t np = bench_arg(argv[1], "P", 1);
  uint64_t m = bench_arg(argv[2], "M", 1);
  uint64_t n = np * m;

  weir_rt *rt = bench_rt_start(0, 0);
  sink_state sink = {.expect = n};
  weir_pid sink_pid;
  bench_check(weir_spawn(rt, &sink_server, &sink, NULL, &sink_pid),
              "fanin: spawn sink");

  producer_state *prod = calloc(np, sizeof *prod);
  weir_pid *pids = calloc(np, sizeof *pids);
  if (prod == NULL || pids == NULL) bench_check(WEIR_ENOMEM, "fanin: calloc");
  for (uint64_t i = 0; i < np; i++) {
    prod[i] = (producer_state){.sink = sink_pid, .id = i + 1, .m = m};
    bench_check(weir_spawn(rt, &producer_server, &prod[i], NULL, &pids[i]),
                "fanin: spawn producer");
  }

  sink_state idle = {.expect = UINT64_MAX};
  weir__trace *tr = NULL;
  if (other_traced) {
    weir_pid idle_pid;
    bench_check(weir_spawn(rt, &sink_server, &idle, NULL, &idle_pid),
                "fanin: spawn the traced process");
    bench_check(weir__trace_open(rt, idle_pid, 10000, NULL, 0, &tr),
                "fanin: trace");
  }

  double t0 = bench_now();
  for (uint64_t i = 0; i < np; i++)
    bench_check(weir_send(rt, pids[i], TAG_GO, NULL, 0), "fanin: send go");
  bench_flag_wait(&sink.done, "fanin: the sink to handle every message");
  double secs = bench_now() - t0;

  printf("weir fanin producers=%llu msgs=%llu secs=%.6f msgs_per_s=%.0f%s\n",
         (unsigned long long)np, (unsigned long long)n, secs, (double)n / secs,
         other_traced ? " traced=other" : "");
  fflush(stdout);
  if (tr) weir__trace_close(rt, tr);
  bench_rt_stop(rt);
  free(prod);
  free(pids);
  return 0;
}
