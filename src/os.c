/*
 * os.c: the few operating-system calls the runtime makes directly: the
 * monotonic clock, sleeping, futexes and membarrier (Linux). Everything
 * else in src/ reaches the kernel only through libc's pthreads and sockets.
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
#include <linux/membarrier.h>
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

/* Set once, by the first weir_rt_start, before that node's threads exist
   (relaxed: each reader is ordered after the write by the thread creation
   or the hand-over of the node that followed it). */
_Atomic int weir__membarrier;

static void membarrier_register(void) {
  const char *off = getenv("WEIR_NO_MEMBARRIER");
  if (off && *off && strcmp(off, "0") != 0) return;
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0,
              0) == 0)
    atomic_store_explicit(&weir__membarrier, 1, memory_order_relaxed);
}

void weir__fences_init(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, membarrier_register);
}

void weir__fence_heavy(void) {
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load_explicit(&weir__membarrier, memory_order_relaxed) &&
      syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
    /* registered, so it cannot fail; if it ever did, a lost wake-up
       would hang a sender: stop instead. */
    weir__assert_fail("membarrier(PRIVATE_EXPEDITED) == 0", __FILE__, __LINE__,
                      __func__);
}

_Noreturn void weir__assert_fail(const char *cond, const char *file, int line,
                                 const char *func) {
  fprintf(stderr, "weir: %s:%d: %s: rule broken: %s\n", file, line, func, cond);
  abort();
}
