// main.cpp: caf-bench's entry point and the helpers every workload shares.
//
//   caf-bench fanin P M          P producer actors -> 1 server actor
//   caf-bench partitioned P M W  P producers -> one worker actor per core
//   caf-bench pingpong PAIRS N   ping-pong between actor pairs
//   caf-bench spawn_call N CALLS N idle actors, then CALLS requests to one
//   caf-bench backlog N MQD      bytes per queued event, drain vs stream
#include "caf_bench.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <unistd.h>

namespace caf_bench {

config::config() {
  auto cores = std::thread::hardware_concurrency();
  set("scheduler.max-threads", static_cast<int64_t>(cores > 0 ? cores : 1));
  add_message_type<event>("event");
  add_message_type<track_event>("track_event");
}

double now() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

uint64_t rss_bytes() {
  FILE *f = std::fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (f == nullptr) return 0;
  if (std::fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
  std::fclose(f);
  long page = sysconf(_SC_PAGESIZE);
  return static_cast<uint64_t>(resident) * (page > 0 ? page : 4096);
}

uint64_t arg(const char *s, const char *name, uint64_t min) {
  char *end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min) {
    std::fprintf(stderr, "caf-bench: %s must be an integer >= %llu, not '%s'\n",
                 name, static_cast<unsigned long long>(min), s);
    std::exit(2);
  }
  return v;
}

void fail(const std::string &what) {
  std::fprintf(stderr, "caf-bench: %s\n", what.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

void flag::raise() {
  std::lock_guard<std::mutex> guard{mu_};
  up_ = true;
  cv_.notify_all();
}

void flag::wait() {
  std::unique_lock<std::mutex> guard{mu_};
  cv_.wait(guard, [this] { return up_; });
}

} // namespace caf_bench

namespace {

struct subcommand {
  const char *name;
  int nargs;
  const char *usage;
  int (*run)(int, char **);
};

const subcommand subcommands[] = {
    {"fanin", 2, "P M", caf_bench::fanin},
    {"partitioned", 3, "P M W", caf_bench::partitioned},
    {"pingpong", 2, "PAIRS N", caf_bench::pingpong},
    {"spawn_call", 2, "N CALLS", caf_bench::spawn_call},
    {"backlog", 2, "N MQD", caf_bench::backlog},
};

int usage() {
  std::fprintf(stderr, "usage: caf-bench COMMAND ARGS\n");
  for (const auto &s : subcommands)
    std::fprintf(stderr, "  caf-bench %s %s\n", s.name, s.usage);
  return 2;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2) return usage();
  for (const auto &s : subcommands)
    if (std::strcmp(argv[1], s.name) == 0)
      return argc - 2 < s.nargs ? usage() : s.run(argc - 1, argv + 1);
  return usage();
}
