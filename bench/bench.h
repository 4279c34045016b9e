/*
 * bench.h: what the weir-bench subcommands share.
 *
 * weir-bench runs the C twins of the BEAM peer scripts in bench/beam/: same
 * arguments, same output keys, one line `weir NAME key=value ...` each, so
 * bench/run.sh can put the two side by side. This header holds the
 * subcommand entry points and the small helpers they all use: a monotonic
 * clock, memory probes, argument parsing, a node with benchmark defaults, and
 * a one-shot flag that a process raises and the main thread waits on.
 *
 * A benchmark has no error recovery to offer: any failed weir call prints
 * the call and the error name and exits with status 1, and a wait that takes
 * longer than WEIR_BENCH_TIMEOUT seconds (default 300) prints what it was
 * waiting for and the node's counters and exits with status 3, so a runtime
 * bug shows up as a clear line instead of a hung CI job.
 */
#ifndef WEIR_BENCH_H
#define WEIR_BENCH_H

#include "weir.h"

#include <stdatomic.h>
#include <stdint.h>

/* The subcommands: argv[0] is the subcommand name. Return an exit status. */
int bench_fanin(int argc, char **argv);
int bench_pingpong(int argc, char **argv);
int bench_spawn_call(int argc, char **argv);
int bench_backlog(int argc, char **argv);
int bench_io_bound(int argc, char **argv);
int bench_bounded(int argc, char **argv);
int bench_flood(int argc, char **argv);
int bench_partitioned(int argc, char **argv);
int bench_proc_count(int argc, char **argv);
int bench_fanin_polled(int argc, char **argv);
int bench_queue_probe(int argc, char **argv);
/* The Savina actor micro-benchmarks (bench/savina_*.c); ARGS are optional
   and default to Savina's own defaults. */
int bench_savina_pingpong(int argc, char **argv);
int bench_savina_count(int argc, char **argv);
int bench_savina_fjthrput(int argc, char **argv);
int bench_savina_fjcreate(int argc, char **argv);
int bench_savina_threadring(int argc, char **argv);
int bench_savina_chameneos(int argc, char **argv);
int bench_savina_big(int argc, char **argv);

/* Seconds on the monotonic clock. */
double bench_now(void);
/* Resident set size of this process in bytes (/proc/self/statm). */
uint64_t bench_rss_bytes(void);
/* Bytes malloc has handed out and not taken back (mallinfo2). */
uint64_t bench_heap_bytes(void);

/* Exits with status 1 and a message naming what failed if err != WEIR_OK. */
void bench_check(int err, const char *what);
/* Parses a decimal integer >= min for argument name; exits 2 if it is not. */
uint64_t bench_arg(const char *s, const char *name, uint64_t min);

/* Starts a node for benchmarks: schedulers = online CPUs, no console, no
   alarms; max_processes and io_threads 0 keep the defaults. Exits on error.
   The node is also remembered for the timeout report. */
weir_rt *bench_rt_start(uint32_t max_processes, unsigned io_threads);
/* Stops the node started by bench_rt_start. */
void bench_rt_stop(weir_rt *rt);

/* A flag raised once (by a process or a thread) and awaited by a thread. */
typedef struct bench_flag {
  _Atomic uint32_t up;
} bench_flag;

void bench_flag_raise(bench_flag *f);
/* Waits until f is raised; exits 3 after WEIR_BENCH_TIMEOUT seconds, saying
   what it waited for. */
void bench_flag_wait(bench_flag *f, const char *what);

/* Savina helpers (bench/savina_common.c). */
/* Savina's performComputation: sin(theta)^2; exits 1 unless it is > 0. */
double savina_compute(double theta);
/* Savina's PseudoRandom.nextInt(max): a 16-bit LCG stepped in *value. */
uint32_t savina_rand_int(uint32_t *value, uint32_t exclusive_max);
/* argv[i] parsed as an integer >= 1 for name, or def if argc <= i. */
uint64_t savina_arg(int argc, char **argv, int i, const char *name,
                    uint64_t def);
/* Exits 1 with "NAME: wrong result: ..." unless ok. */
void savina_expect(int ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prints `weir NAME KEYS ops=OPS secs=SECS ops_per_s=OPS/SECS`. */
void savina_report(const char *name, const char *keys, double ops, double secs);

#endif
