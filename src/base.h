/*
 * base.h: what every module of src/ may use: compiler helpers, the small
 * inline copy, assertions, and os.c (clock, sleep, futex). The bottom of
 * the stack: it includes only weir.h and libc.
 */
#ifndef WEIR_BASE_H
#define WEIR_BASE_H

#include "weir.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define WEIR__CACHELINE   64
#define WEIR__ALIGNED     __attribute__((aligned(WEIR__CACHELINE)))
#define WEIR__UNUSED(x)   ((void)(x))
#define WEIR__LIKELY(x)   __builtin_expect(!!(x), 1)
#define WEIR__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define WEIR__NOINLINE    __attribute__((noinline))

/* Fields a slot's spawner writes while stale senders of the previous
   incarnation may still read them (bounds, route, flags): relaxed atomic
   accesses, so the race is defined; the values a sender acts on are
   published by the release store of gen (see proc.c). */
/* Hot thread-locals use the initial-exec model: a direct offset from the
   thread pointer instead of a __tls_get_addr call per access (libweir is
   linked at program start, not dlopen'ed late; the few bytes fit the static
   TLS surplus glibc reserves). */
#define WEIR__TLS __thread __attribute__((tls_model("initial-exec")))

#define WEIR__LD(f)    __atomic_load_n(&(f), __ATOMIC_RELAXED)
#define WEIR__ST(f, v) __atomic_store_n(&(f), (v), __ATOMIC_RELAXED)

/* memcpy for payloads: most are a few dozen bytes, and a call into libc's
   memcpy for 24 bytes costs more than the copy. Overlapping fixed-size
   moves cover 4..32 bytes; the rest goes to memcpy. */
static inline void weir__copy(void *dst, const void *src, size_t n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  if (n > 32) {
    memcpy(d, s, n);
  } else if (n >= 16) {
    memcpy(d, s, 8);
    memcpy(d + 8, s + 8, 8);
    memcpy(d + n - 16, s + n - 16, 8);
    memcpy(d + n - 8, s + n - 8, 8);
  } else if (n >= 8) {
    memcpy(d, s, 8);
    memcpy(d + n - 8, s + n - 8, 8);
  } else if (n >= 4) {
    memcpy(d, s, 4);
    memcpy(d + n - 4, s + n - 4, 4);
  } else {
    for (size_t i = 0; i < n; i++)
      d[i] = s[i];
  }
}

static inline void weir__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Rules that fail loudly in Debug and sanitizer builds (WEIR_CHECKS, set
   by CMake) and cost nothing in Release: the state rules the comments
   state (the token held, consumer-only calls, slot states). */
#ifdef WEIR_CHECKS
#define WEIR__ASSERT(cond)                                                     \
  ((cond) ? (void)0 : weir__assert_fail(#cond, __FILE__, __LINE__, __func__))
#else
#define WEIR__ASSERT(cond) ((void)0)
#endif
_Noreturn void weir__assert_fail(const char *cond, const char *file, int line,
                                 const char *func);

/* ---- lockorder.c: the lock order, checked ----------------------------------
   Every mutex of the runtime has a rank; a thread may take a mutex only at a
   rank above every rank it holds (docs/ARCHITECTURE.md, "Locks", is this
   list with what each guards and what is taken under it). Lower ranks are
   the outer locks. weir__lock/weir__unlock are pthread_mutex_lock/unlock;
   with WEIR_CHECKS they also keep the thread's held locks and abort, naming
   both sites, on a lock taken out of order, an unlock of a lock not held or
   at another rank (the idea of the BEAM's erl_lock_check.c). */
#define WEIR__LOCK_RANKS(X)                                                    \
  X(CONSOLE, 5, "console mu")                                                  \
  X(RESIZE, 10, "partsup resize_mu")                                           \
  X(ALARM_REC, 20, "alarm rec_mu")                                             \
  X(ALARM, 30, "alarm mu")                                                     \
  X(TRACE, 40, "trace mu")                                                     \
  X(REPORT, 50, "report mu")                                                   \
  X(DQ, 60, "slot dq_mu")                                                      \
  X(SUB, 70, "sub_mu")                                                         \
  X(REG, 80, "reg_mu")                                                         \
  X(TIMER, 90, "timer_mu")                                                     \
  X(CALLS, 100, "calls_mu")                                                    \
  X(WAITER, 110, "waiter mu")                                                  \
  X(RUN_IN, 120, "run_in mu")                                                  \
  X(TABLE, 130, "table_mu")                                                    \
  X(RETIRE, 140, "retire_mu")                                                  \
  X(ROUTERS, 150, "g_routers_mu")                                              \
  X(INJECT, 160, "inject_mu")                                                  \
  X(IO, 170, "io_mu")                                                          \
  X(POOL, 180, "g_pool_mu")
enum weir__lock_rank {
#define WEIR__LOCK_RANK_ENUM(name, rank, what) WEIR__LK_##name = rank,
  WEIR__LOCK_RANKS(WEIR__LOCK_RANK_ENUM)
#undef WEIR__LOCK_RANK_ENUM
};
#ifdef WEIR_CHECKS
#define weir__lock(mu, rank)                                                   \
  weir__lock_at((mu), (rank), #mu, __FILE__, __LINE__, __func__)
#define weir__unlock(mu, rank)                                                 \
  weir__unlock_at((mu), (rank), #mu, __FILE__, __LINE__, __func__)
#else
#define weir__lock(mu, rank)   ((void)(rank), (void)pthread_mutex_lock(mu))
#define weir__unlock(mu, rank) ((void)(rank), (void)pthread_mutex_unlock(mu))
#endif
void weir__lock_at(pthread_mutex_t *mu, enum weir__lock_rank rank,
                   const char *what, const char *file, int line,
                   const char *func);
void weir__unlock_at(pthread_mutex_t *mu, enum weir__lock_rank rank,
                     const char *what, const char *file, int line,
                     const char *func);
/* Does this thread hold mu? For WEIR__ASSERT (WEIR_CHECKS only). */
bool weir__lock_held(const pthread_mutex_t *mu);

/* ---- os.c: the clock, sleeping, futexes ---------------------------------- */
uint64_t weir__now_ns(void); /* CLOCK_MONOTONIC */
void weir__sleep_ns(uint64_t ns);
void weir__sleep_ms(uint64_t ms);
/* Sleeps while *word == val, at most ns (UINT64_MAX: no limit); returns on
   a wake, a signal, a mismatch or the timeout (the caller re-checks). */
void weir__futex_wait(_Atomic uint32_t *word, uint32_t val, uint64_t ns);
void weir__futex_wake(_Atomic uint32_t *word, int n);

/* Asymmetric fences (a Dekker handshake whose one side is hot and the other
   rare): the hot side calls weir__fence_light, the rare side
   weir__fence_heavy; together they order as two seq_cst fences would.
   With Linux's membarrier (registered by weir__fences_init, which
   weir_rt_start calls before any thread of a node runs), the light fence is
   only a compiler barrier and the heavy one makes every running thread of
   the process pass a full barrier. Without it (an old kernel, a seccomp
   filter, valgrind, or WEIR_NO_MEMBARRIER=1 in the environment), both are
   full fences. */
extern _Atomic int weir__membarrier;
void weir__fences_init(void);
static inline void weir__fence_light(void) {
  if (atomic_load_explicit(&weir__membarrier, memory_order_relaxed))
    atomic_signal_fence(memory_order_seq_cst);
  else
    atomic_thread_fence(memory_order_seq_cst);
}
void weir__fence_heavy(void);

#endif
