// backlog.cpp: the cost of a backlog, the twin of bench/backlog.c and
// bench/beam/backlog.exs.
//
// (a) A server actor is blocked inside a handler (it waits on a flag, and
//     so holds one scheduler thread, as weir's server does); the main thread
//     anon_sends it N events, user_id + 3 small fields, the BEAM
//     {:track, j, %{"event" => "click", "page" => "/home", "n" => j}}.
//     vm_bytes_per_msg = growth of the resident set / N: each CAF message
//     is a mailbox element allocated for it, holding the type-erased tuple.
// (b) The server is released and drains the backlog: drain_msgs_per_s.
// (c) A fresh server handles N events sent while it runs:
//     stream_msgs_per_s.
//
// As in weir-bench, (a) runs first on a fresh process, so that freed memory
// a previous phase left to malloc does not hide the backlog's cost. MQD
// (BEAM's message_queue_data) is accepted and printed for symmetry.
#include "caf_bench.hpp"

#include <cstdio>
#include <memory>

using namespace caf;

namespace caf_bench {

namespace {

struct slow_state {
  uint64_t handled = 0;
  uint64_t touched = 0; // keeps the payload reads alive
};

struct gate {
  flag blocked;
  flag go;
};

behavior slow(stateful_actor<slow_state> *self, uint64_t expect,
              std::shared_ptr<gate> g, actor parent) {
  return {
      [=](block_atom) {
        g->blocked.raise();
        g->go.wait();
      },
      [=](const track_event &ev) {
        // A little real work per message, like map_size/1: read the payload.
        self->state.touched += ev.n + static_cast<unsigned char>(ev.event[0]);
        if (++self->state.handled == expect)
          self->send(parent, done_atom::value, self->state.touched);
      },
  };
}

void send_events(const actor &dest, uint64_t n) {
  for (uint64_t j = 1; j <= n; ++j)
    anon_send(dest, track_event{j, "click", "/home", static_cast<uint32_t>(j)});
}

} // namespace

int backlog(int, char **argv) {
  uint64_t n = arg(argv[1], "N", 1);
  const char *mqd = argv[2];
  config cfg;
  actor_system sys{cfg};
  scoped_actor self{sys};

  // (a) fill a blocked server.
  auto g = std::make_shared<gate>();
  auto blocked = sys.spawn(slow, n, g, actor{self});
  anon_send(blocked, block_atom::value);
  g->blocked.wait();
  uint64_t rss0 = rss_bytes();
  send_events(blocked, n);
  uint64_t rss1 = rss_bytes();

  // (b) drain it.
  double t1 = now();
  g->go.raise();
  self->receive([](done_atom, uint64_t) {});
  double drain_secs = now() - t1;

  // (c) stream into a fresh server.
  auto fresh = sys.spawn(slow, n, std::make_shared<gate>(), actor{self});
  double t0 = now();
  send_events(fresh, n);
  self->receive([](done_atom, uint64_t) {});
  double stream_secs = now() - t0;

  double stream = n / stream_secs, drain = n / drain_secs;
  std::printf("caf backlog mqd=%s queued=%llu vm_bytes_per_msg=%.1f "
              "stream_msgs_per_s=%.0f drain_msgs_per_s=%.0f "
              "drain_ratio=%.3f\n",
              mqd, static_cast<unsigned long long>(n),
              rss1 > rss0 ? static_cast<double>(rss1 - rss0) / n : 0.0, stream,
              drain, drain / stream);
  std::fflush(stdout);
  anon_send_exit(blocked, exit_reason::user_shutdown);
  anon_send_exit(fresh, exit_reason::user_shutdown);
  return 0;
}

} // namespace caf_bench
