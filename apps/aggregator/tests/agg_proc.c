/*
 * agg_proc.c: child processes for the multi-process tests (see agg_proc.h).
 *
 * The registry of children is a fixed array of pointers written by the main
 * thread only (starts happen there, see the header) and read by
 * agg_proc_kill_all, which may run on any thread from a failing check: the
 * pid fields are atomics, so a half-started child is either seen with its
 * pid or not at all.
 */
#include "agg_proc.h"

#include "agg_testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PROCS 64

static agg_proc *g_procs[MAX_PROCS];
static _Atomic int g_nprocs;
static double g_t0; /* the first start: echoed lines say seconds since */

typedef struct copier_arg {
  agg_proc *p;
  int fd;
} copier_arg;

static void *copy_output(void *arg) {
  copier_arg *a = arg;
  agg_proc *p = a->p;
  FILE *in = fdopen(a->fd, "r");
  FILE *out = fopen(p->log, "a");
  free(a);
  char line[4096];
  while (in && fgets(line, sizeof line, in)) {
    if (out) {
      fputs(line, out);
      fflush(out);
    }
    if (p->echo) {
      flockfile(stdout);
      printf("[%s %.1f] %s", p->name, (agg_test_now_ms() - g_t0) / 1e3, line);
      if (!strchr(line, '\n')) putchar('\n');
      fflush(stdout);
      funlockfile(stdout);
    }
    const char *h = strstr(line, "http://127.0.0.1:");
    if (h && atomic_load(&p->port) == 0)
      atomic_store(&p->port, (unsigned)atoi(h + 17));
  }
  if (in) fclose(in);
  if (out) fclose(out);
  atomic_store(&p->ended_us, (long long)(agg_test_now_ms() * 1e3));
  atomic_store(&p->eof, 1);
  return NULL;
}

void agg_proc_start(agg_proc *p, const char *name, const char *const *argv,
                    const char *log, int echo) {
  CHECK_MSG(atomic_load(&p->pid) <= 0, "%s is already running", name);
  snprintf(p->name, sizeof p->name, "%s", name);
  if (p->log != log) snprintf(p->log, sizeof p->log, "%s", log);
  p->echo = echo;
  atomic_store(&p->port, 0);
  atomic_store(&p->eof, 0);
  atomic_store(&p->ended_us, 0);
  int fds[2];
  CHECK(pipe2(fds, O_CLOEXEC) == 0);
  fflush(stdout);
  fflush(stderr);
  if (g_t0 == 0) g_t0 = agg_test_now_ms();
  pid_t parent = getpid();
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126); /* the test died meanwhile */
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(fds[1]);
  atomic_store(&p->pid, pid);
  p->started_ms = agg_test_now_ms();
  int n = atomic_load(&g_nprocs), known = 0;
  for (int i = 0; i < n; i++)
    known |= g_procs[i] == p;
  if (!known) {
    CHECK_MSG(n < MAX_PROCS, "too many child processes");
    g_procs[n] = p;
    atomic_store(&g_nprocs, n + 1);
  }
  copier_arg *a = malloc(sizeof *a);
  CHECK(a);
  a->p = p;
  a->fd = fds[0];
  CHECK(pthread_create(&p->copier, NULL, copy_output, a) == 0);
  p->copier_live = 1;
}

unsigned agg_proc_wait_port(agg_proc *p, int ms) {
  double end = agg_test_now_ms() + ms;
  for (;;) {
    unsigned port = atomic_load(&p->port);
    if (port) return port;
    if (atomic_load(&p->eof) || agg_test_now_ms() > end) return 0;
    agg_test_sleep_ms(10);
  }
}

static void reaped(agg_proc *p) {
  atomic_store(&p->pid, 0);
  if (p->copier_live) {
    pthread_join(p->copier, NULL);
    p->copier_live = 0;
  }
}

int agg_proc_wait(agg_proc *p, int ms) {
  int pid = atomic_load(&p->pid);
  if (pid <= 0) return -1;
  double end = agg_test_now_ms() + ms;
  for (;;) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      reaped(p);
      return st;
    }
    CHECK_MSG(r == 0, "waitpid %s: %s", p->name, strerror(errno));
    if (agg_test_now_ms() > end) return -1;
    agg_test_sleep_ms(5);
  }
}

int agg_proc_signal(agg_proc *p, int sig) {
  int pid = atomic_load(&p->pid);
  return pid > 0 ? kill(pid, sig) : -1;
}

int agg_proc_kill(agg_proc *p) {
  int pid = atomic_load(&p->pid);
  if (pid <= 0) return -1;
  kill(pid, SIGKILL);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  reaped(p);
  return st;
}

void agg_proc_kill_all(void) {
  int n = atomic_load(&g_nprocs);
  for (int i = 0; i < n; i++) {
    int pid = atomic_load(&g_procs[i]->pid);
    if (pid > 0) kill(pid, SIGKILL);
  }
}

int agg_proc_grep(const agg_proc *p, const char *text) {
  FILE *f = fopen(p->log, "r");
  if (!f) return 0;
  char line[4096];
  int found = 0;
  while (fgets(line, sizeof line, f))
    found += strstr(line, text) != NULL;
  fclose(f);
  return found;
}

void agg_proc_last_line(const agg_proc *p, char *buf, size_t n) {
  buf[0] = '\0';
  FILE *f = fopen(p->log, "r");
  if (!f) return;
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0]) snprintf(buf, n, "%s", line);
  }
  fclose(f);
}
