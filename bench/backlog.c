/*
 * backlog.c: the cost of a backlog, the twin of bench/beam/backlog.exs.
 *
 * The seed's failure is a mailbox that grows without bound, so two things
 * matter: what each queued message costs, and whether a long queue makes the
 * consumer slower (BEAM on_heap: a 1 M backlog drains several times slower
 * than an empty-queue stream, so a backlog feeds itself).
 *
 * (a) A server is blocked inside a callback (it waits on a flag in
 *     handle_info; it holds one scheduler thread, which is harmless here: the
 *     main thread is the only sender). The main thread casts N events to it:
 *     user_id + 3 small fields as a packed 28-byte struct, the BEAM
 *     {:track, j, %{"event" => "click", "page" => "/home", "n" => j}}.
 *     proc_bytes_per_msg = process_info's memory / queue length (BEAM's
 *     Process.info(pid, :memory)); vm_bytes_per_msg = growth of this
 *     process's resident set / queue length (BEAM's :erlang.memory(:total)
 *     delta). mailbox_bytes_per_msg is process_info's mailbox_bytes / length.
 * (b) The server is released and drains the backlog: drain_msgs_per_s.
 * (c) A fresh server handles N events cast while it runs, with its queue
 *     (nearly) empty: stream_msgs_per_s.
 *
 * BEAM runs (c) first; here it runs last so that the memory figure in (a)
 * is taken on a cold node: the message pools keep freed memory for reuse,
 * and a stream run first would let the backlog reuse it and look free.
 * MQD (on_heap/off_heap in BEAM) is accepted and printed for symmetry: weir
 * has one mailbox kind, outside any heap, like off_heap.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TAG_TRACK = 1, TAG_BLOCK };

typedef struct __attribute__((packed)) backlog_event {
  uint64_t user_id;
  char event[8];
  char page[8];
  uint32_t n;
} backlog_event;
_Static_assert(sizeof(backlog_event) == 28, "backlog_event is packed");

typedef struct slow_state {
  uint64_t handled;
  uint64_t expect;
  uint64_t touched; /* keeps the payload reads alive */
  bench_flag blocked;
  bench_flag go;
  bench_flag done;
} slow_state;

static int slow_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int slow_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  slow_state *s = state;
  if (m->tag != TAG_TRACK || m->len != sizeof(backlog_event))
    return WEIR_EINVAL;
  /* A little real work per message, like map_size/1: read the payload. */
  backlog_event ev;
  memcpy(&ev, m->data, sizeof ev);
  s->touched += ev.n + (uint64_t)(unsigned char)ev.event[0];
  if (++s->handled == s->expect) bench_flag_raise(&s->done);
  return WEIR_OK;
}

static int slow_info(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  slow_state *s = state;
  if (m->tag != TAG_BLOCK) return WEIR_OK;
  bench_flag_raise(&s->blocked);
  bench_flag_wait(&s->go, "backlog: the main thread to release the server");
  return WEIR_OK;
}

static const weir_server slow_server = {.name = "backlog_slow",
                                        .init = slow_init,
                                        .handle_cast = slow_cast,
                                        .handle_info = slow_info};

static void cast_events(weir_rt *rt, weir_pid pid, uint64_t n) {
  backlog_event ev = {.event = "click", .page = "/home"};
  for (uint64_t j = 1; j <= n; j++) {
    ev.user_id = j;
    ev.n = (uint32_t)j;
    bench_check(weir_cast(rt, pid, TAG_TRACK, &ev, sizeof ev),
                "backlog: weir_cast");
  }
}

int bench_backlog(int argc, char **argv) {
  (void)argc;
  uint64_t n = bench_arg(argv[1], "N", 1);
  const char *mqd = argv[2];

  weir_rt *rt = bench_rt_start(0, 0);

  /* (a) fill a blocked server. */
  slow_state *bs = calloc(1, sizeof *bs);
  if (bs == NULL) bench_check(WEIR_ENOMEM, "backlog: calloc");
  bs->expect = n;
  weir_pid pid;
  bench_check(weir_spawn(rt, &slow_server, bs, NULL, &pid), "backlog: spawn");
  bench_check(weir_send(rt, pid, TAG_BLOCK, NULL, 0), "backlog: send block");
  bench_flag_wait(&bs->blocked, "backlog: the server to block");
  uint64_t rss0 = bench_rss_bytes();
  cast_events(rt, pid, n);
  weir_proc_info info;
  bench_check(weir_process_info(rt, pid, &info), "backlog: process_info");
  uint64_t rss1 = bench_rss_bytes();
  uint64_t qlen = info.message_queue_len > 0 ? info.message_queue_len : 1;

  /* (b) drain it. */
  double t1 = bench_now();
  bench_flag_raise(&bs->go);
  bench_flag_wait(&bs->done, "backlog: the backlog to drain");
  double drain_secs = bench_now() - t1;

  /* (c) stream into a fresh server. */
  slow_state *ss = calloc(1, sizeof *ss);
  if (ss == NULL) bench_check(WEIR_ENOMEM, "backlog: calloc");
  ss->expect = n;
  weir_pid pid0;
  bench_check(weir_spawn(rt, &slow_server, ss, NULL, &pid0), "backlog: spawn");
  double t0 = bench_now();
  cast_events(rt, pid0, n);
  bench_flag_wait(&ss->done, "backlog: the stream to be handled");
  double stream_secs = bench_now() - t0;

  double stream = (double)n / stream_secs, drain = (double)n / drain_secs;
  printf("weir backlog mqd=%s queued=%llu proc_bytes_per_msg=%.1f "
         "vm_bytes_per_msg=%.1f stream_msgs_per_s=%.0f drain_msgs_per_s=%.0f "
         "mailbox_bytes_per_msg=%.1f drain_ratio=%.3f\n",
         mqd, (unsigned long long)info.message_queue_len,
         (double)info.memory / (double)qlen,
         (double)(rss1 > rss0 ? rss1 - rss0 : 0) / (double)qlen, stream, drain,
         (double)info.mailbox_bytes / (double)qlen, drain / stream);
  fflush(stdout);
  bench_rt_stop(rt);
  free(bs);
  free(ss);
  return 0;
}
