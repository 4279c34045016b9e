/*
 * os.c: the few operating-system calls the runtime makes directly: the
 * monotonic clock, sleeping, and futexes (Linux). Everything else in src/
 * reaches the kernel only through libc's pthreads and sockets.
 *
 * Futex words are _Atomic uint32_t: the kernel compares and sleeps
 * atomically, so a waker that changes the word before its wake can never be
 * missed by a waiter that read the old value (the wait returns EAGAIN).
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

uint64_t weir__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void weir__sleep_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000ull),
                        (long)(ns % 1000000000ull)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

void weir__sleep_ms(uint64_t ms) {
  weir__sleep_ns(ms * 1000000ull);
}

void weir__futex_wait(_Atomic uint32_t *word, uint32_t val, uint64_t ns) {
  struct timespec ts, *tsp = NULL;
  if (ns != UINT64_MAX) {
    ts.tv_sec = (time_t)(ns / 1000000000ull);
    ts.tv_nsec = (long)(ns % 1000000000ull);
    tsp = &ts;
  }
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, val, tsp, NULL, 0);
}

void weir__futex_wake(_Atomic uint32_t *word, int n) {
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

_Noreturn void weir__assert_fail(const char *cond, const char *file, int line,
                                 const char *func) {
  fprintf(stderr, "weir: %s:%d: %s: rule broken: %s\n", file, line, func, cond);
  abort();
}
