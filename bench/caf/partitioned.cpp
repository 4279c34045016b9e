// partitioned.cpp: partitioned throughput, the twin of bench/partitioned.c
// and bench/beam/partitioned.exs.
//
// One worker actor per scheduler thread (BEAM's partitions =
// schedulers_online); P producer actors anon_send M events each to the
// worker their key picks, key = (i*7919 + j) mod 100,000, worker = key mod
// partitions; each worker spins W loop iterations per event. CAF has no
// partition supervisor to route through: a producer indexes a vector of
// handles, which is what weir reports as direct_msgs_per_s, not its routed
// figure. Producers send in chunks, as in fanin.cpp.
//
// Completion: a producer that has sent everything sends `done` to every
// worker (after its events: CAF keeps the order of messages between one
// sender and one receiver); a worker that has P `done`s reports its count
// to the main thread's scoped_actor, which reads the clock at the last
// report and checks that the counts add up to P*M.
#include "caf_bench.hpp"

#include <algorithm>
#include <cstdio>
#include <vector>

using namespace caf;

namespace caf_bench {

namespace {

struct worker_state {
  uint64_t handled = 0;
  uint64_t dones = 0;
};

void spin(uint64_t w) {
  for (uint64_t k = 0; k < w; ++k)
    __asm__ volatile("" ::: "memory");
}

behavior worker(stateful_actor<worker_state> *self, uint64_t producers,
                uint64_t work, actor parent) {
  return {
      [=](const event &) {
        spin(work);
        ++self->state.handled;
      },
      [=](done_atom) {
        if (++self->state.dones == producers)
          self->send(parent, done_atom::value, self->state.handled);
      },
  };
}

struct producer_state {
  uint64_t sent = 0;
};

behavior producer(stateful_actor<producer_state> *self,
                  std::vector<actor> workers, uint64_t id, uint64_t m) {
  auto send_chunk = [=] {
    auto &sent = self->state.sent;
    uint64_t end = std::min(sent + producer_chunk, m);
    event ev{0, "k", 0};
    for (uint64_t j = sent + 1; j <= end; ++j) {
      ev.user_id = (id * 7919 + j) % 100000;
      ev.value = static_cast<uint32_t>(j);
      anon_send(workers[ev.user_id % workers.size()], ev);
    }
    sent = end;
    if (sent < m) {
      self->send(self, more_atom::value);
      return;
    }
    for (auto &w : workers)
      anon_send(w, done_atom::value);
    self->quit();
  };
  return {
      [=](go_atom) { send_chunk(); },
      [=](more_atom) { send_chunk(); },
  };
}

} // namespace

int partitioned(int, char **argv) {
  uint64_t p = arg(argv[1], "P", 1);
  uint64_t m = arg(argv[2], "M", 1);
  uint64_t w = arg(argv[3], "W", 0);
  config cfg;
  actor_system sys{cfg};
  scoped_actor self{sys};
  size_t parts = sys.scheduler().num_workers();
  std::vector<actor> workers;
  for (size_t k = 0; k < parts; ++k)
    workers.push_back(sys.spawn(worker, p, w, actor{self}));
  std::vector<actor> producers;
  for (uint64_t i = 1; i <= p; ++i)
    producers.push_back(sys.spawn(producer, workers, i, m));

  double t0 = now();
  for (auto &prod : producers)
    anon_send(prod, go_atom::value);
  uint64_t handled = 0;
  for (size_t k = 0; k < parts; ++k)
    self->receive([&](done_atom, uint64_t n) { handled += n; });
  double secs = now() - t0;
  if (handled != p * m)
    fail("partitioned: the workers handled " + std::to_string(handled) +
         " events, not " + std::to_string(p * m));

  std::printf("caf partitioned partitions=%zu producers=%llu work=%llu "
              "msgs=%llu secs=%.6f msgs_per_s=%.0f\n",
              parts, static_cast<unsigned long long>(p),
              static_cast<unsigned long long>(w),
              static_cast<unsigned long long>(handled), secs, handled / secs);
  std::fflush(stdout);
  for (auto &wk : workers)
    anon_send_exit(wk, exit_reason::user_shutdown);
  return 0;
}

} // namespace caf_bench
