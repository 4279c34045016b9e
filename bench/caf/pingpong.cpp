// pingpong.cpp: Savina ping-pong, the twin of bench/pingpong.c and
// bench/beam/pingpong.exs.
//
// PAIRS pairs of event-based actors; in each, the pinger sends `ping` and
// waits for `pong`, N times. The ponger's handler returns `pong`, which CAF
// sends back to the sender of the `ping` (BEAM's {:ping, self()} and send
// back). The pairs are spawned before the clock and released by `go`; each
// pinger reports to the main thread's scoped_actor when done.
#include "caf_bench.hpp"

#include <cstdio>
#include <vector>

using namespace caf;

namespace caf_bench {

namespace {

behavior ponger(event_based_actor *) {
  return {
      [](ping_atom) { return pong_atom::value; },
  };
}

struct pinger_state {
  uint64_t got = 0;
};

behavior pinger(stateful_actor<pinger_state> *self, actor pong, uint64_t n,
                actor parent) {
  return {
      [=](go_atom) { self->send(pong, ping_atom::value); },
      [=](pong_atom) {
        if (++self->state.got < n) {
          self->send(pong, ping_atom::value);
          return;
        }
        self->send(parent, done_atom::value);
        self->quit();
      },
  };
}

} // namespace

int pingpong(int, char **argv) {
  uint64_t pairs = arg(argv[1], "PAIRS", 1);
  uint64_t n = arg(argv[2], "N", 1);
  config cfg;
  actor_system sys{cfg};
  scoped_actor self{sys};
  std::vector<actor> pongers, pingers;
  for (uint64_t i = 0; i < pairs; ++i) {
    pongers.push_back(sys.spawn(ponger));
    pingers.push_back(sys.spawn(pinger, pongers.back(), n, actor{self}));
  }

  double t0 = now();
  for (auto &p : pingers)
    anon_send(p, go_atom::value);
  for (uint64_t i = 0; i < pairs; ++i)
    self->receive([](done_atom) {});
  double secs = now() - t0;

  std::printf("caf pingpong pairs=%llu round_trips=%llu "
              "round_trips_per_s=%.0f\n",
              static_cast<unsigned long long>(pairs),
              static_cast<unsigned long long>(pairs * n), pairs * n / secs);
  std::fflush(stdout);
  for (auto &p : pongers)
    anon_send_exit(p, exit_reason::user_shutdown);
  return 0;
}

} // namespace caf_bench
