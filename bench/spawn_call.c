/*
 * spawn_call.c: spawn cost and call latency, the twin of
 * bench/beam/spawn_call.exs.
 *
 * (1) The main thread spawns N idle servers one after the other, each spawn
 *     waiting for its init (GenServer.start does the same). Figures: spawns
 *     per second and bytes per process. Bytes are the growth of this
 *     process's resident set (/proc/self/statm) over the N spawns, divided
 *     by N: everything the runtime and malloc touched for them, page
 *     granular, which at N = 1 M is exact to well under a byte. The malloc
 *     part alone (mallinfo2) is printed too, as malloc_bytes_per_process.
 *     The idle server keeps a call counter as its state, as the BEAM Idle
 *     GenServer does (an integer in its heap); here it is 8 malloc'd bytes.
 *
 * (2) CALLS call round trips to the first server from one client. The twin
 *     of a BEAM process calling GenServer.call is a client *process*: it
 *     issues weir_call_async and takes the reply in handle_info, then issues
 *     the next call (calls_per_s, us_per_call). No call timeout is armed
 *     (GenServer.call(pid, msg, :infinity)). The second figure,
 *     sync_calls_per_s, is weir_call from the plain main thread, which parks
 *     on the reply: the path a C program outside the runtime uses.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TAG_PING = 1, TAG_GO };

static int idle_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  (void)arg;
  uint64_t *calls = calloc(1, sizeof *calls);
  if (calls == NULL) return WEIR_ENOMEM;
  *state = calls;
  return WEIR_OK;
}

static int idle_call(weir_ctx *cx, void *state, const weir_msg *m,
                     weir_from from) {
  (void)m;
  uint64_t *calls = state;
  ++*calls;
  return weir_reply(cx, from, "pong", 4);
}

static void idle_terminate(weir_ctx *cx, void *state, int reason,
                           const weir_msg *in_hand) {
  (void)cx;
  (void)reason;
  (void)in_hand;
  free(state);
}

static size_t idle_state_size(const void *state) {
  (void)state;
  return sizeof(uint64_t);
}

static const weir_server idle_server = {.name = "idle",
                                        .init = idle_init,
                                        .handle_call = idle_call,
                                        .terminate = idle_terminate,
                                        .state_size = idle_state_size};

typedef struct client_state {
  weir_pid server;
  uint64_t calls;
  uint64_t replies;
  weir_ref pending;
  bench_flag done;
} client_state;

static int client_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static void client_next(weir_ctx *cx, client_state *c) {
  bench_check(
      weir_call_async(cx, c->server, TAG_PING, NULL, 0, -1, &c->pending),
      "call: weir_call_async");
}

static int client_info(weir_ctx *cx, void *state, const weir_msg *m) {
  client_state *c = state;
  switch (m->tag) {
  case TAG_GO:
    client_next(cx, c);
    return WEIR_OK;
  case WEIR_TAG_REPLY:
    if (m->ref != c->pending || m->len != 4 || memcmp(m->data, "pong", 4) != 0)
      bench_check(WEIR_EINVAL, "call: unexpected reply");
    if (++c->replies == c->calls)
      bench_flag_raise(&c->done);
    else
      client_next(cx, c);
    return WEIR_OK;
  case WEIR_TAG_DOWN:
    bench_check(WEIR_ENOPROC, "call: the server went down");
    return WEIR_OK;
  case WEIR_TAG_TIMEOUT:
    bench_check(WEIR_ETIMEDOUT, "call: call_async timed out");
    return WEIR_OK;
  default:
    return WEIR_OK;
  }
}

static const weir_server client_server = {
    .name = "call_client", .init = client_init, .handle_info = client_info};

int bench_spawn_call(int argc, char **argv) {
  (void)argc;
  uint64_t n = bench_arg(argv[1], "N", 1);
  uint64_t calls = bench_arg(argv[2], "CALLS", 1);
  if (n > UINT32_MAX - 1024) {
    fprintf(stderr, "weir-bench: N must be below 2^32 - 1024\n");
    return 2;
  }

  /* Room for the N servers, the client and a margin for the runtime. */
  uint32_t cap = (uint32_t)(n + 1024 > 1048576 ? n + 1024 : 0);
  weir_rt *rt = bench_rt_start(cap, 0);
  weir_pid *pids = malloc(n * sizeof *pids);
  if (pids == NULL) bench_check(WEIR_ENOMEM, "spawn: malloc");
  memset(pids, 0, n * sizeof *pids); /* touched now, not in the measurement */

  uint64_t rss0 = bench_rss_bytes(), heap0 = bench_heap_bytes();
  double t0 = bench_now();
  for (uint64_t i = 0; i < n; i++)
    bench_check(weir_spawn(rt, &idle_server, NULL, NULL, &pids[i]),
                "spawn: weir_spawn");
  double secs = bench_now() - t0;
  uint64_t rss1 = bench_rss_bytes(), heap1 = bench_heap_bytes();
  printf("weir spawn n=%llu secs=%.6f spawns_per_s=%.0f bytes_per_process=%.0f "
         "malloc_bytes_per_process=%.0f bytes_measure=rss_delta\n",
         (unsigned long long)n, secs, (double)n / secs,
         (double)(rss1 > rss0 ? rss1 - rss0 : 0) / (double)n,
         (double)(heap1 > heap0 ? heap1 - heap0 : 0) / (double)n);
  fflush(stdout);

  /* Calls from a client process. */
  client_state cs = {.server = pids[0], .calls = calls};
  weir_pid client;
  bench_check(weir_spawn(rt, &client_server, &cs, NULL, &client),
              "call: spawn client");
  double t1 = bench_now();
  bench_check(weir_send(rt, client, TAG_GO, NULL, 0), "call: send go");
  bench_flag_wait(&cs.done, "call: the client's last reply");
  double call_secs = bench_now() - t1;

  /* Calls from the main thread. */
  char reply[8];
  double t2 = bench_now();
  for (uint64_t i = 0; i < calls; i++) {
    uint32_t len = sizeof reply;
    bench_check(weir_call(rt, pids[0], TAG_PING, NULL, 0, reply, &len, -1),
                "call: weir_call");
    if (len != 4 || memcmp(reply, "pong", 4) != 0)
      bench_check(WEIR_EINVAL, "call: weir_call: unexpected reply");
  }
  double sync_secs = bench_now() - t2;

  printf("weir call round_trips=%llu calls_per_s=%.0f us_per_call=%.3f "
         "sync_calls_per_s=%.0f sync_us_per_call=%.3f\n",
         (unsigned long long)calls, (double)calls / call_secs,
         call_secs * 1e6 / (double)calls, (double)calls / sync_secs,
         sync_secs * 1e6 / (double)calls);
  fflush(stdout);
  bench_rt_stop(rt);
  free(pids);
  return 0;
}
