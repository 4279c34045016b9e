// fanin.cpp: fan-in throughput, the twin of bench/fanin.c and
// bench/beam/fanin.exs.
//
// P producer actors each anon_send M events to ONE server actor; the figure
// is events per second from the first send to the last event handled. The
// producers are spawned before the clock starts and released by a `go`
// message; the server counts to P*M and tells the main thread's
// scoped_actor, which reads the clock.
//
// A producer sends producer_chunk events per handler and then sends itself
// `more`, as weir-bench's producers do, rather than all M from one handler
// (a CAF handler runs to completion). With CAF's default scheduler settings
// (unlimited throughput per resume) the producer keeps its thread across
// chunks anyway; the two forms measured the same within noise here. The
// scheduler keeps its defaults apart from its thread count.
#include "caf_bench.hpp"

#include <algorithm>
#include <cstdio>
#include <vector>

using namespace caf;

namespace caf_bench {

namespace {

struct sink_state {
  uint64_t handled = 0;
};

behavior sink(stateful_actor<sink_state> *self, uint64_t expect, actor parent) {
  return {
      [=](const event &) {
        if (++self->state.handled == expect)
          self->send(parent, done_atom::value);
      },
  };
}

struct producer_state {
  uint64_t sent = 0;
};

behavior producer(stateful_actor<producer_state> *self, actor sink, uint64_t id,
                  uint64_t m) {
  auto send_chunk = [=] {
    auto &sent = self->state.sent;
    uint64_t end = std::min(sent + producer_chunk, m);
    event ev{0, "k", 0};
    for (uint64_t j = sent + 1; j <= end; ++j) {
      ev.user_id = id * m + j;
      ev.value = static_cast<uint32_t>(j);
      anon_send(sink, ev);
    }
    sent = end;
    if (sent < m)
      self->send(self, more_atom::value);
    else
      self->quit();
  };
  return {
      [=](go_atom) { send_chunk(); },
      [=](more_atom) { send_chunk(); },
  };
}

} // namespace

int fanin(int, char **argv) {
  uint64_t p = arg(argv[1], "P", 1);
  uint64_t m = arg(argv[2], "M", 1);
  uint64_t n = p * m;
  config cfg;
  actor_system sys{cfg};
  scoped_actor self{sys};
  auto server = sys.spawn(sink, n, actor{self});
  std::vector<actor> producers;
  for (uint64_t i = 1; i <= p; ++i)
    producers.push_back(sys.spawn(producer, server, i, m));

  double t0 = now();
  for (auto &prod : producers)
    anon_send(prod, go_atom::value);
  self->receive([](done_atom) {});
  double secs = now() - t0;

  std::printf("caf fanin producers=%llu msgs=%llu secs=%.6f msgs_per_s=%.0f\n",
              static_cast<unsigned long long>(p),
              static_cast<unsigned long long>(n), secs, n / secs);
  std::fflush(stdout);
  anon_send_exit(server, exit_reason::user_shutdown);
  return 0;
}

} // namespace caf_bench
