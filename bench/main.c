/*
 * main.c: weir-bench's entry point and the helpers every workload shares.
 *
 *   weir-bench fanin P M [other_traced]  P producers -> 1 server (another
 *                                   process traced meanwhile)
 *   weir-bench pingpong PAIRS N     Savina ping-pong between process pairs
 *   weir-bench spawn_call N CALLS   spawn N idle servers, then call one
 *   weir-bench backlog N MQD        bytes per queued event, drain vs stream
 *   weir-bench io_bound P EVENTS MS blocking handlers that sleep MS ms
 *   weir-bench bounded P M          fan-in: bounded vs unbounded mailbox
 *   weir-bench flood SECS           RSS of a flooded bounded vs unbounded one
 *   weir-bench partitioned P M W    P producers -> partition supervisor
 *   weir-bench proc_count N         cost of one proc_count scan over N
 *   weir-bench fanin_polled P M     fan-in with proc_count polled every 100 ms
 *   weir-bench queue_probe P M      the same mailbox with no runtime (limits)
 *   weir-bench savina_NAME [ARGS]   the Savina actor micro-benchmarks:
 *     pingpong, count, fjthrput, fjcreate, threadring, chameneos, big
 *     (bench/savina_*.c; bracketed arguments default to Savina's values)
 *
 * Each prints one line (spawn_call two) with the keys of the BEAM peer script
 * of the same name in bench/beam/, prefixed `weir` instead of `beam`.
 *
 * Completion is a futex flag: the process that handles the last message
 * raises it and the main thread, parked in FUTEX_WAIT, reads the clock. The
 * wait has a deadline so that a lost message is reported, not hung on.
 */
#include "bench.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static weir_rt *g_rt; /* for the timeout report only */

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t bench_rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (f == NULL) return 0;
  if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
  fclose(f);
  long page = sysconf(_SC_PAGESIZE);
  return (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096);
}

uint64_t bench_heap_bytes(void) {
  struct mallinfo2 mi = mallinfo2();
  return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
}

void bench_check(int err, const char *what) {
  if (err == WEIR_OK) return;
  fprintf(stderr, "weir-bench: %s: %s (%s)\n", what, weir_err_name(err),
          weir_strerror(err));
  fflush(stderr);
  _exit(1);
}

uint64_t bench_arg(const char *s, const char *name, uint64_t min) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min) {
    fprintf(stderr, "weir-bench: %s must be an integer >= %llu, not '%s'\n",
            name, (unsigned long long)min, s);
    exit(2);
  }
  return (uint64_t)v;
}

weir_rt *bench_rt_start(uint32_t max_processes, unsigned io_threads) {
  weir_rt_opts o;
  weir_rt_opts_init(&o);
  o.node_name = "weir-bench";
  o.console = NULL;
  /* WEIR_BENCH_CONSOLE=NAME: serve a console as node NAME, for bench/web.sh
     (a dashboard polling the node while it works) */
  const char *con = getenv("WEIR_BENCH_CONSOLE");
  if (con && *con) {
    o.node_name = con;
    o.console = "";
  }
  o.alarm_enable = 0;
  o.alarm_log = 0;
  o.max_processes = max_processes;
  o.io_threads = io_threads;
  weir_rt *rt = NULL;
  bench_check(weir_rt_start(&o, &rt), "weir_rt_start");
  g_rt = rt;
  return rt;
}

void bench_rt_stop(weir_rt *rt) {
  g_rt = NULL;
  int err = weir_rt_stop(rt, 10000);
  if (err != WEIR_OK && err != WEIR_ETIMEDOUT) bench_check(err, "weir_rt_stop");
}

static long futex(_Atomic uint32_t *addr, int op, uint32_t val,
                  const struct timespec *ts) {
  return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

void bench_flag_raise(bench_flag *f) {
  /* release: whatever the raiser wrote before (counts, end times) is visible
     to the waiter that sees up == 1 with acquire. */
  atomic_store_explicit(&f->up, 1, memory_order_release);
  futex(&f->up, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}

static double timeout_secs(void) {
  const char *s = getenv("WEIR_BENCH_TIMEOUT");
  double t = s != NULL ? atof(s) : 0.0;
  return t > 0.0 ? t : 300.0;
}

void bench_flag_wait(bench_flag *f, const char *what) {
  double deadline = bench_now() + timeout_secs();
  while (atomic_load_explicit(&f->up, memory_order_acquire) == 0) {
    double left = deadline - bench_now();
    if (left <= 0.0) {
      fprintf(stderr, "weir-bench: timed out after %.0f s waiting for %s\n",
              timeout_secs(), what);
      weir_stats st;
      if (g_rt != NULL && weir_node_stats(g_rt, &st) == WEIR_OK)
        fprintf(stderr,
                "weir-bench: node: processes=%llu messages_sent=%llu "
                "queued_messages=%llu queued_bytes=%llu dead_letters=%llu "
                "crashed=%llu\n",
                (unsigned long long)st.processes,
                (unsigned long long)st.messages_sent,
                (unsigned long long)st.queued_messages,
                (unsigned long long)st.queued_bytes,
                (unsigned long long)st.dead_letters,
                (unsigned long long)st.crashed);
      fflush(stderr);
      _exit(3);
    }
    /* At most a second per wait, so the deadline is checked regularly. */
    long ns = left >= 1.0 ? 999999999L : (long)(left * 1e9);
    struct timespec ts = {0, ns};
    futex(&f->up, FUTEX_WAIT_PRIVATE, 0, &ts);
  }
}

typedef struct bench_cmd {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *usage;
} bench_cmd;

static const bench_cmd cmds[] = {
    {"fanin", bench_fanin, "fanin P M [other_traced]"},
    {"pingpong", bench_pingpong, "pingpong PAIRS N"},
    {"spawn_call", bench_spawn_call, "spawn_call N CALLS"},
    {"backlog", bench_backlog, "backlog N MQD"},
    {"io_bound", bench_io_bound, "io_bound P EVENTS MS"},
    {"bounded", bench_bounded, "bounded P M"},
    {"flood", bench_flood, "flood SECS"},
    {"partitioned", bench_partitioned, "partitioned P M W"},
    {"proc_count", bench_proc_count, "proc_count N"},
    {"fanin_polled", bench_fanin_polled, "fanin_polled P M"},
    {"queue_probe", bench_queue_probe, "queue_probe P M"},
    {"savina_pingpong", bench_savina_pingpong, "savina_pingpong [N]"},
    {"savina_count", bench_savina_count, "savina_count [N]"},
    {"savina_fjthrput", bench_savina_fjthrput, "savina_fjthrput [A] [N]"},
    {"savina_fjcreate", bench_savina_fjcreate, "savina_fjcreate [N]"},
    {"savina_threadring", bench_savina_threadring,
     "savina_threadring [ACTORS] [PASSES]"},
    {"savina_chameneos", bench_savina_chameneos,
     "savina_chameneos [C] [MEETINGS]"},
    {"savina_big", bench_savina_big, "savina_big [A] [PINGS]"},
};

static int usage(void) {
  fprintf(stderr, "usage: weir-bench NAME ARGS\n");
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    fprintf(stderr, "  weir-bench %s\n", cmds[i].usage);
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 2) return usage();
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    if (strcmp(argv[1], cmds[i].name) != 0) continue;
    /* Each word of the usage is an argument; [BRACKETED] ones optional. */
    const char *sp = strchr(cmds[i].usage, ' ');
    int want = 1, optional = 0;
    for (; sp != NULL; sp = strchr(sp + 1, ' ')) {
      if (sp[1] == '[')
        optional++;
      else
        want++;
    }
    if (argc - 1 < want || argc - 1 > want + optional) {
      fprintf(stderr, "usage: weir-bench %s\n", cmds[i].usage);
      return 2;
    }
    return cmds[i].run(argc - 1, argv + 1);
  }
  return usage();
}
