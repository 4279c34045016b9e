/*
 * testlib.h: the tiny framework every tests/test_*.c links with.
 *
 * A failed check prints file:line and what was expected, then aborts: a test
 * is one executable whose exit status is the verdict (ctest), and aborting
 * also works from inside a callback on a scheduler thread, where returning an
 * error to main() is not possible.
 *
 * Randomness comes from one seed (test_seed: env WEIR_SEED, else the clock),
 * printed as "seed=N" so that a failing run can be replayed. Iteration counts
 * of stress tests scale with env WEIR_STRESS_SCALE (default 1, or 0.25 under
 * a sanitizer), so the same code runs fast in CI and long when hunting.
 *
 * No check here measures speed: timeouts are for liveness only and are
 * generous, because the machine is shared and sanitizers are slow.
 */
#ifndef WEIR_TESTLIB_H
#define WEIR_TESTLIB_H

#include "weir.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define TEST_NORETURN     __attribute__((noreturn))
#define TEST_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TEST_NORETURN
#define TEST_PRINTF(a, b)
#endif

/* Prints "file:line: FAIL: ..." on stderr and aborts the process. */
TEST_NORETURN void test_fail(const char *file, int line, const char *fmt, ...)
    TEST_PRINTF(3, 4);
/* Prints a progress line ("[name] ...") on stdout. */
void test_log(const char *fmt, ...) TEST_PRINTF(1, 2);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);            \
  } while (0)

#define CHECK_MSG(cond, ...)                                                   \
  do {                                                                         \
    if (!(cond)) test_fail(__FILE__, __LINE__, __VA_ARGS__);                   \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                     \
  do {                                                                         \
    long long a_ = (long long)(a), b_ = (long long)(b);                        \
    if (a_ != b_)                                                              \
      test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_); \
  } while (0)

#define CHECK_EQ_U64(a, b)                                                     \
  do {                                                                         \
    unsigned long long a_ = (unsigned long long)(a),                           \
                       b_ = (unsigned long long)(b);                           \
    if (a_ != b_)                                                              \
      test_fail(__FILE__, __LINE__, "%s == %s: %llu != %llu", #a, #b, a_, b_); \
  } while (0)

#define CHECK_STR_EQ(a, b)                                                     \
  do {                                                                         \
    const char *a_ = (a), *b_ = (b);                                           \
    if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                       \
      test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,      \
                a_ ? a_ : "(null)", b_ ? b_ : "(null)");                       \
  } while (0)

/* An API call expected to return the error code `want` (WEIR_OK included). */
#define CHECK_RC(expr, want)                                                   \
  do {                                                                         \
    int r_ = (expr), w_ = (want);                                              \
    if (r_ != w_)                                                              \
      test_fail(__FILE__, __LINE__, "%s returned %s (%d), expected %s (%d)",   \
                #expr, weir_err_name(r_), r_, weir_err_name(w_), w_);          \
  } while (0)

#define CHECK_OK(expr) CHECK_RC(expr, WEIR_OK)

/* Polls cond every millisecond; fails after ms milliseconds. */
#define WAIT_UNTIL(cond, ms)                                                   \
  do {                                                                         \
    uint64_t dl_ = test_now_ms() + (uint64_t)(ms);                             \
    while (!(cond)) {                                                          \
      if (test_now_ms() > dl_)                                                 \
        test_fail(__FILE__, __LINE__, "timed out after %d ms waiting for %s",  \
                  (int)(ms), #cond);                                           \
      test_sleep_ms(1);                                                        \
    }                                                                          \
  } while (0)

/* Liveness timeout for WAIT_UNTIL and calls: generous on purpose. */
#define TEST_LIVENESS_MS 30000

/* ---- time ---------------------------------------------------------------- */
uint64_t test_now_ms(void); /* CLOCK_MONOTONIC */
uint64_t test_now_us(void);
void test_sleep_ms(unsigned ms);

/* ---- seed, RNG, scale -----------------------------------------------------
 */
/* The run's seed: env WEIR_SEED, else derived from the clock and pid. Prints
   "seed=N" on the first call; later calls return the same value. */
uint64_t test_seed(void);

typedef struct test_rng {
  uint64_t s;
} test_rng;
/* xorshift64*; any seed (0 included) gives a valid stream. */
void test_rng_init(test_rng *r, uint64_t seed);
uint64_t test_rng_next(test_rng *r);
/* Uniform in [0, n); n > 0. */
uint32_t test_rng_below(test_rng *r, uint32_t n);

/* Env WEIR_STRESS_SCALE (a positive number), default 1, or 0.25 when built
   with a sanitizer. */
double test_scale(void);
/* n * test_scale(), at least 1. */
uint64_t test_scaled(uint64_t n);
/* 1 when built with ASan or TSan. */
int test_sanitized(void);

/* ---- runtime helpers ------------------------------------------------------
 */
/* Starts a runtime with n schedulers (0 = online CPUs) and default options
   otherwise; fails the test on error. */
weir_rt *test_rt_start(unsigned schedulers);
/* The same with caller's options. */
weir_rt *test_rt_start_opts(const weir_rt_opts *o);
/* Makes the directory dir (a mkdtemp template, changed in place) and puts
   the path of a console socket in it into path. */
void test_console_path(char *dir, char *path, size_t n);
/* A connected AF_UNIX stream socket to path (a node's console). */
int test_unix_connect(const char *path);
/* Stops rt (timeout 30 s) and checks it returned WEIR_OK. */
void test_rt_stop(weir_rt *rt);
/* weir_node_stats(rt).processes. */
uint64_t test_nprocs(weir_rt *rt);
/* A pid from slot and generation (the layout weir.h documents). */
weir_pid test_pid_make(uint32_t slot, uint32_t gen);
uint32_t test_pid_slot(weir_pid p);
uint32_t test_pid_gen(weir_pid p);

/* ---- watcher: a process that monitors pids for the test thread ----------- */
/* A watcher lets the test thread learn, synchronously, that a process has
   ended and with which reason: test_watch() installs a monitor (through a
   call, so it is in place on return), test_wait_down() waits for its DOWN. */
typedef struct test_watcher test_watcher;
test_watcher *test_watcher_start(weir_rt *rt);
/* The watcher's own pid. */
weir_pid test_watcher_pid(const test_watcher *w);
/* Monitors pid; returns the monitor ref. */
weir_ref test_watch(test_watcher *w, weir_pid pid);
/* Waits up to ms for the DOWN of the monitor ref; returns 1 and sets *reason
   (may be NULL) if it came, 0 on timeout. */
int test_wait_down(test_watcher *w, weir_ref ref, int ms, int *reason);
/* 1 if the DOWN of ref has arrived already. */
int test_is_down(test_watcher *w, weir_ref ref);
/* Frees the watcher's memory; call after weir_rt_stop. */
void test_watcher_free(test_watcher *w);

#endif
