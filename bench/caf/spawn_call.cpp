// spawn_call.cpp: spawn cost and call latency, the twin of
// bench/spawn_call.c and bench/beam/spawn_call.exs.
//
// (1) The main thread spawns N idle event-based actors, each keeping a call
//     counter as its state (the BEAM Idle GenServer's integer). Figures:
//     spawns per second and bytes per actor = growth of the resident set
//     over the N spawns / N, weir-bench's probe. CAF's spawn returns once
//     the actor exists and is scheduled; its behaviour is made by a
//     scheduler thread when the actor first runs, meanwhile.
// (2) CALLS calls to the first actor from a client actor:
//     request(server, infinite, ping).then(...), the next request from the
//     response handler (calls_per_s, us_per_call); then CALLS calls from the
//     main thread through a scoped_actor, request(...).receive(...), which
//     blocks the thread on the reply (sync_calls_per_s), the twin of
//     weir_call from a thread.
#include "caf_bench.hpp"

#include <cstdio>
#include <vector>

using namespace caf;

namespace caf_bench {

namespace {

struct idle_state {
  uint64_t calls = 0;
};

behavior idle(stateful_actor<idle_state> *self) {
  return {
      [=](ping_atom) {
        ++self->state.calls;
        return pong_atom::value;
      },
  };
}

struct client_state {
  uint64_t replies = 0;
};

void client_next(stateful_actor<client_state> *self, actor server,
                 uint64_t calls, actor parent) {
  self->request(server, infinite, ping_atom::value)
      .then(
          [=](pong_atom) {
            if (++self->state.replies == calls) {
              self->send(parent, done_atom::value);
              self->quit();
            } else {
              client_next(self, server, calls, parent);
            }
          },
          [=](error &err) { fail("call: " + self->system().render(err)); });
}

behavior client(stateful_actor<client_state> *self, actor server,
                uint64_t calls, actor parent) {
  return {
      [=](go_atom) { client_next(self, server, calls, parent); },
  };
}

} // namespace

int spawn_call(int, char **argv) {
  uint64_t n = arg(argv[1], "N", 1);
  uint64_t calls = arg(argv[2], "CALLS", 1);
  config cfg;
  actor_system sys{cfg};
  scoped_actor self{sys};
  std::vector<actor> actors;
  actors.reserve(n);
  // Touched now, not in the measurement (weir-bench memsets its pids).
  for (uint64_t i = 0; i < n; ++i)
    actors.emplace_back();

  uint64_t rss0 = rss_bytes();
  double t0 = now();
  for (uint64_t i = 0; i < n; ++i)
    actors[i] = sys.spawn(idle);
  double secs = now() - t0;
  uint64_t rss1 = rss_bytes();
  std::printf("caf spawn n=%llu secs=%.6f spawns_per_s=%.0f "
              "bytes_per_process=%.0f bytes_measure=rss_delta\n",
              static_cast<unsigned long long>(n), secs, n / secs,
              rss1 > rss0 ? static_cast<double>(rss1 - rss0) / n : 0.0);
  std::fflush(stdout);

  // Calls from a client actor.
  auto server = actors[0];
  auto c = sys.spawn(client, server, calls, actor{self});
  double t1 = now();
  anon_send(c, go_atom::value);
  self->receive([](done_atom) {});
  double call_secs = now() - t1;

  // Calls from the main thread.
  double t2 = now();
  for (uint64_t i = 0; i < calls; ++i)
    self->request(server, infinite, ping_atom::value)
        .receive([](pong_atom) {},
                 [&](error &err) { fail("sync call: " + sys.render(err)); });
  double sync_secs = now() - t2;

  std::printf("caf call round_trips=%llu calls_per_s=%.0f us_per_call=%.3f "
              "sync_calls_per_s=%.0f sync_us_per_call=%.3f\n",
              static_cast<unsigned long long>(calls), calls / call_secs,
              call_secs * 1e6 / calls, calls / sync_secs,
              sync_secs * 1e6 / calls);
  std::fflush(stdout);
  for (auto &a : actors)
    anon_send_exit(a, exit_reason::user_shutdown);
  return 0;
}

} // namespace caf_bench
