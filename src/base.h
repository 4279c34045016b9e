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

/* ---- os.c: the clock, sleeping, futexes ---------------------------------- */
uint64_t weir__now_ns(void); /* CLOCK_MONOTONIC */
void weir__sleep_ns(uint64_t ns);
void weir__sleep_ms(uint64_t ms);
/* Sleeps while *word == val, at most ns (UINT64_MAX: no limit); returns on
   a wake, a signal, a mismatch or the timeout (the caller re-checks). */
void weir__futex_wait(_Atomic uint32_t *word, uint32_t val, uint64_t ns);
void weir__futex_wake(_Atomic uint32_t *word, int n);

#endif
