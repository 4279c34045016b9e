/*
 * lockorder.c: the lock order of the runtime, checked in Debug and sanitizer
 * builds (WEIR_CHECKS).
 *
 * Every mutex has a rank (WEIR__LOCK_RANKS in base.h; the table in
 * docs/ARCHITECTURE.md, "Locks", says what each guards and what is taken
 * while holding it). A thread may take a mutex only at a rank above the
 * highest it holds, so no two threads can each wait for a lock the other
 * holds: a deadlock needs a cycle, and ranks only go up. The BEAM checks its
 * locks the same way in debug builds (erl_lock_check.c); this is the small
 * version of that idea.
 *
 * Each thread keeps the locks it holds in a short stack: the rank, the
 * mutex, and where it was taken. A lock at a rank not above the top of the
 * stack aborts before it can deadlock, naming both sites; so does an unlock
 * of a mutex the thread does not hold, or at a rank other than the one it
 * was taken at (two sites disagreeing about a mutex's rank). A condition
 * wait keeps its mutex on the stack: it gives it back and takes it again
 * inside, and takes nothing else. Without WEIR_CHECKS, weir__lock and
 * weir__unlock are pthread_mutex_lock and pthread_mutex_unlock, and this
 * file is empty.
 */
#include "internal.h"

#ifdef WEIR_CHECKS

#include <stdio.h>
#include <stdlib.h>

#define HELD_MAX 16 /* the runtime nests three deep at most */

typedef struct held_lock {
  const pthread_mutex_t *mu;
  enum weir__lock_rank rank;
  const char *what; /* the expression at the lock site */
  const char *file;
  const char *func;
  int line;
} held_lock;

/* Plain __thread, not WEIR__TLS: Debug builds only, not a hot path. */
static __thread held_lock tl_held[HELD_MAX];
static __thread unsigned tl_nheld;

static const char *rank_name(enum weir__lock_rank rank) {
  switch (rank) {
#define RANK_NAME(name, r, what)                                               \
  case WEIR__LK_##name:                                                        \
    return what;
    WEIR__LOCK_RANKS(RANK_NAME)
#undef RANK_NAME
  }
  return "unknown rank";
}

_Noreturn static void broken(const char *why, const char *verb,
                             const held_lock *site, const held_lock *held) {
  fprintf(stderr,
          "weir: lock order broken: %s\n"
          "weir:   %s %s (rank %d, %s) at %s:%d (%s)\n",
          why, verb, site->what, (int)site->rank, rank_name(site->rank),
          site->file, site->line, site->func);
  if (held)
    fprintf(stderr,
            "weir:   while holding %s (rank %d, %s) taken at %s:%d (%s)\n",
            held->what, (int)held->rank, rank_name(held->rank), held->file,
            held->line, held->func);
  for (unsigned i = tl_nheld > 1 ? tl_nheld : 0; i-- > 0;)
    fprintf(stderr, "weir:   held: %s (rank %d) taken at %s:%d (%s)\n",
            tl_held[i].what, (int)tl_held[i].rank, tl_held[i].file,
            tl_held[i].line, tl_held[i].func);
  fprintf(stderr, "weir:   the order: docs/ARCHITECTURE.md, \"Locks\"\n");
  abort();
}

void weir__lock_at(pthread_mutex_t *mu, enum weir__lock_rank rank,
                   const char *what, const char *file, int line,
                   const char *func) {
  held_lock h = {mu, rank, what, file, func, line};
  for (unsigned i = 0; i < tl_nheld; i++)
    if (tl_held[i].mu == mu)
      broken("a mutex taken again by the thread that holds it", "taking", &h,
             &tl_held[i]);
  /* the stack's ranks only go up: its top is the highest held */
  if (tl_nheld > 0 && rank <= tl_held[tl_nheld - 1].rank)
    broken("a lock taken at a rank not above one held", "taking", &h,
           &tl_held[tl_nheld - 1]);
  if (tl_nheld == HELD_MAX)
    broken("too many locks held at once", "taking", &h, NULL);
  pthread_mutex_lock(mu);
  tl_held[tl_nheld++] = h;
}

void weir__unlock_at(pthread_mutex_t *mu, enum weir__lock_rank rank,
                     const char *what, const char *file, int line,
                     const char *func) {
  held_lock h = {mu, rank, what, file, func, line};
  unsigned i = tl_nheld;
  while (i > 0 && tl_held[i - 1].mu != mu)
    i--;
  if (i == 0)
    broken("an unlock of a mutex this thread does not hold", "releasing", &h,
           NULL);
  if (tl_held[i - 1].rank != rank)
    broken("an unlock at another rank than its lock", "releasing", &h,
           &tl_held[i - 1]);
  /* usually the top; an unlock out of order closes the gap */
  for (; i < tl_nheld; i++)
    tl_held[i - 1] = tl_held[i];
  tl_nheld--;
  pthread_mutex_unlock(mu);
}

bool weir__lock_held(const pthread_mutex_t *mu) {
  for (unsigned i = 0; i < tl_nheld; i++)
    if (tl_held[i].mu == mu) return true;
  return false;
}

#else
/* Nothing without WEIR_CHECKS (a translation unit may not be empty). */
typedef int weir__lockorder_unused;
#endif
