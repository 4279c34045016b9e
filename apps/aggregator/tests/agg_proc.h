/*
 * agg_proc.h: child processes for the multi-process tests (a NATS cluster,
 * ingest and consumer nodes): started, signalled, reaped, and all killed
 * when a check fails.
 *
 * A child's stdout and stderr go, merged, through a pipe to a copier thread
 * that appends every line to the child's log file and (if asked) echoes it
 * to our stdout prefixed with "[name SECONDS] " (since the first child
 * started), and that notes the port of the
 * first line saying "http://127.0.0.1:PORT" (the aggregator's first line).
 * The log file stays, so a test can look for a line the child printed
 * (agg_proc_grep) and a failed check can point at it.
 *
 * Every child gets PR_SET_PDEATHSIG(SIGKILL): if the test dies in a way no
 * hook sees (ctest's timeout kills it), its servers die with it. The death
 * signal fires when the *thread* that forked exits, so start children from
 * the main thread only. agg_proc_kill_all (for agg_test_on_fail) kills
 * every child still running, stopped ones included.
 */
#ifndef AGG_PROC_H
#define AGG_PROC_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct agg_proc {
  char name[32]; /* prefix of the echoed lines */
  char log[640]; /* its output, appended across restarts */
  int echo;
  _Atomic int pid;       /* > 0 from start until reaped */
  _Atomic unsigned port; /* 0 until the "http://127.0.0.1:PORT" line */
  _Atomic int eof;       /* the copier saw the end of the output */
  int copier_live;
  pthread_t copier;
  double started_ms;          /* agg_test_now_ms() at the start */
  _Atomic long long ended_us; /* when its output closed (it exited) */
} agg_proc;

/* Starts argv[0] (a path; argv NULL-terminated) as name, its output
   appended to log (echoed to our stdout when echo). CHECK-fails if fork
   or exec plumbing fails; an exec failure is exit 127. p must stay where
   it is until the child is reaped (the copier writes into it). */
void agg_proc_start(agg_proc *p, const char *name, const char *const *argv,
                    const char *log, int echo);
/* Waits up to ms for the port line: the port, or 0 if the child ended its
   output or the time ran out first. */
unsigned agg_proc_wait_port(agg_proc *p, int ms);
/* Waits up to ms for the child to exit: its wait status (waitpid's), or -1
   on timeout (the child is still running). Joins the copier. */
int agg_proc_wait(agg_proc *p, int ms);
/* kill(pid, sig); 0 or -1 (not running). */
int agg_proc_signal(agg_proc *p, int sig);
/* SIGKILL and reap; the wait status, or -1 if it was not running. */
int agg_proc_kill(agg_proc *p);
/* SIGKILL to every child still running (async-signal-safe). */
void agg_proc_kill_all(void);
/* How many lines of p's log contain text. */
int agg_proc_grep(const agg_proc *p, const char *text);
/* The last non-empty line of p's log (newline stripped) into buf. */
void agg_proc_last_line(const agg_proc *p, char *buf, size_t n);

#endif
