/*
 * test_checks: the runtime's own checks, on in Debug and sanitizer builds
 * (WEIR_CHECKS). The lock order (src/lockorder.c): a lock taken at a rank
 * not above one held, a mutex taken twice, an unlock of a mutex not held or
 * at another rank each abort the process with a message naming the sites;
 * the order kept, nothing happens. A state rule (WEIR__ASSERT): a
 * consumer-only call on a mailbox whose token nobody holds aborts, naming
 * the rule. Without WEIR_CHECKS none of it is in the library (weir__lock is
 * pthread_mutex_lock, WEIR__ASSERT nothing). Each broken rule runs in a
 * child process whose stderr is read back.
 */
#include "testlib.h"

#include "internal.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* Defined only when the library was built with WEIR_CHECKS: weak, so that
   the test links either way and learns which build it runs against. */
#pragma weak weir__lock_at
#pragma weak weir__unlock_at
#pragma weak weir__lock_held

static pthread_mutex_t mu_a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t mu_b = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t mu_c = PTHREAD_MUTEX_INITIALIZER;

#define LOCK(mu, r) weir__lock_at((mu), (r), #mu, __FILE__, __LINE__, __func__)
#define UNLOCK(mu, r)                                                          \
  weir__unlock_at((mu), (r), #mu, __FILE__, __LINE__, __func__)

/* Runs fn in a child; returns its signal (0: it exited 0) and its stderr. */
static int in_child(void (*fn)(void), char *err, size_t n) {
  int fd[2];
  CHECK(pipe(fd) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(fd[0]);
    dup2(fd[1], 2);
    fn();
    _exit(0);
  }
  close(fd[1]);
  size_t k = 0;
  ssize_t r;
  while (k + 1 < n && (r = read(fd[0], err + k, n - 1 - k)) > 0)
    k += (size_t)r;
  err[k] = 0;
  close(fd[0]);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  if (WIFSIGNALED(st)) return WTERMSIG(st);
  CHECK_MSG(WEXITSTATUS(st) == 0, "exit %d, stderr: %s", WEXITSTATUS(st), err);
  return 0;
}

static void out_of_order(void) {
  LOCK(&mu_a, WEIR__LK_POOL);
  LOCK(&mu_b, WEIR__LK_TABLE); /* table_mu is outside g_pool_mu */
}

static void same_rank(void) {
  LOCK(&mu_a, WEIR__LK_DQ);
  LOCK(&mu_b, WEIR__LK_DQ); /* two slots' dq_mu at once */
}

static void twice(void) {
  LOCK(&mu_a, WEIR__LK_TABLE);
  LOCK(&mu_a, WEIR__LK_POOL);
}

static void unlock_not_held(void) {
  UNLOCK(&mu_a, WEIR__LK_TABLE);
}

static void unlock_other_rank(void) {
  LOCK(&mu_a, WEIR__LK_TABLE);
  UNLOCK(&mu_a, WEIR__LK_POOL);
}

static void in_order(void) {
  LOCK(&mu_a, WEIR__LK_RESIZE);
  LOCK(&mu_b, WEIR__LK_POOL);
  if (!weir__lock_held(&mu_a) || !weir__lock_held(&mu_b)) abort();
  UNLOCK(&mu_a, WEIR__LK_RESIZE); /* out of order is allowed */
  if (weir__lock_held(&mu_a) || !weir__lock_held(&mu_b)) abort();
  LOCK(&mu_c, WEIR__LK_POOL + 1); /* above what is held: fine */
  UNLOCK(&mu_c, WEIR__LK_POOL + 1);
  UNLOCK(&mu_b, WEIR__LK_POOL);
  if (weir__lock_held(&mu_a) || weir__lock_held(&mu_b)) abort();
  /* nothing held: any rank may be taken */
  LOCK(&mu_b, WEIR__LK_POOL);
  UNLOCK(&mu_b, WEIR__LK_POOL);
}

/* A consumer-only call on an idle process: nobody holds its token. */
static void pop_idle(void) {
  weir_rt *rt;
  weir_rt_opts o;
  weir_rt_opts_init(&o);
  o.schedulers = 1;
  if (weir_rt_start(&o, &rt) != WEIR_OK) _exit(3);
  static const weir_server idle = {.name = "idle"};
  weir_pid pid;
  if (weir_spawn(rt, &idle, NULL, NULL, &pid) != WEIR_OK) _exit(4);
  /* no message ever came: spawn gave the token back, the mailbox is idle */
  weir__mbox_pop(weir__proc_get(rt, pid));
}

static void expect_abort(const char *name, void (*fn)(void), const char *what,
                         const char *site) {
  char err[4096];
  int sig = in_child(fn, err, sizeof err);
  CHECK_MSG(sig == SIGABRT, "%s: signal %d, stderr: %s", name, sig, err);
  CHECK_MSG(strstr(err, what) != NULL, "%s: no \"%s\" in: %s", name, what, err);
  CHECK_MSG(strstr(err, site) != NULL, "%s: no \"%s\" in: %s", name, site, err);
  test_log("[%s] aborted: %s", name, what);
}

int main(void) {
  if (!weir__lock_at) {
    /* A build without WEIR_CHECKS: nothing of the checker is linked. */
    CHECK(weir__unlock_at == NULL && weir__lock_held == NULL);
    test_log("[checks] off in this build: weir__lock is pthread_mutex_lock, "
             "WEIR__ASSERT nothing");
    return 0;
  }
  expect_abort("out_of_order", out_of_order,
               "a lock taken at a rank not above one held",
               "while holding &mu_a (rank 180, g_pool_mu)");
  expect_abort("same_rank", same_rank,
               "a lock taken at a rank not above one held", "rank 60");
  expect_abort("twice", twice, "taken again by the thread that holds it",
               "taking &mu_a (rank 180");
  expect_abort("unlock_not_held", unlock_not_held,
               "an unlock of a mutex this thread does not hold",
               "test_checks.c");
  expect_abort("unlock_other_rank", unlock_other_rank,
               "an unlock at another rank than its lock", "rank 130");
  char err[4096];
  CHECK_EQ_INT(in_child(in_order, err, sizeof err), 0);
  CHECK_STR_EQ(err, "");
  test_log("[in_order] no complaint");
  expect_abort("pop_idle", pop_idle, "rule broken: weir__mbox_token_taken(p)",
               "weir__mbox_pop");
  return 0;
}
