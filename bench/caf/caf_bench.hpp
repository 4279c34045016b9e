// caf_bench.hpp: what the caf-bench subcommands share.
//
// caf-bench runs the C++ Actor Framework (CAF 0.17) twins of weir-bench's
// workloads (bench/*.c) and of the BEAM peer scripts (bench/beam/*.exs): same
// arguments, same output keys, one line `caf NAME key=value ...` each, so
// bench/run.sh can put weir, BEAM, Go and CAF side by side.
//
// The twins are written as CAF is written: event-based actors whose
// behaviour is a list of typed handlers, atoms as message tags, one actor
// system whose scheduler (work stealing) runs as many threads as there are
// cores, a scoped_actor for the main thread to wait on results. See
// bench/README.md for what this favours and what it does not measure.
#ifndef WEIR_CAF_BENCH_HPP
#define WEIR_CAF_BENCH_HPP

#include "caf/all.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>

namespace caf_bench {

using go_atom = caf::atom_constant<caf::atom("go")>;
using more_atom = caf::atom_constant<caf::atom("more")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using ping_atom = caf::atom_constant<caf::atom("ping")>;
using pong_atom = caf::atom_constant<caf::atom("pong")>;
using block_atom = caf::atom_constant<caf::atom("block")>;

// {:track, user_id, %{"k" => j}}: the fan-in and partitioned event.
struct event {
  uint64_t user_id;
  std::string key;
  uint32_t value;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector &f, event &x) {
  return f(caf::meta::type_name("event"), x.user_id, x.key, x.value);
}

// {:track, j, %{"event" => "click", "page" => "/home", "n" => j}}: the
// backlog event.
struct track_event {
  uint64_t user_id;
  std::string event;
  std::string page;
  uint32_t n;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector &f, track_event &x) {
  return f(caf::meta::type_name("track_event"), x.user_id, x.event, x.page,
           x.n);
}

// The configuration every subcommand starts its actor system with: the
// scheduler's threads = online cores (CAF's default is at least 4), the
// message types announced.
class config : public caf::actor_system_config {
public:
  config();
};

// Events a producer sends per handler before it sends itself `more`, as
// weir-bench's producers do (PRODUCER_CHUNK).
constexpr uint64_t producer_chunk = 1024;

// Subcommands: argv[0] is the subcommand name; they return an exit status.
int fanin(int argc, char **argv);
int partitioned(int argc, char **argv);
int pingpong(int argc, char **argv);
int spawn_call(int argc, char **argv);
int backlog(int argc, char **argv);

// Seconds on the monotonic clock.
double now();
// Resident set size of this process in bytes (/proc/self/statm).
uint64_t rss_bytes();
// Parses a decimal integer >= min for argument name; exits 2 if it is not.
uint64_t arg(const char *s, const char *name, uint64_t min);
// Prints "caf-bench: WHAT" to stderr and exits 1.
[[noreturn]] void fail(const std::string &what);

// A one-shot flag a handler raises or waits on, from any thread.
class flag {
public:
  void raise();
  void wait();

private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool up_ = false;
};

} // namespace caf_bench

#endif
