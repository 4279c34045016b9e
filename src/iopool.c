/*
 * iopool.c: the elastic pool that runs blocking processes.
 *
 * A process spawned with .blocking = 1 may sleep, wait on a socket or a
 * database inside its callbacks. It never runs on a scheduler thread: when it
 * becomes runnable it is appended to this pool's FIFO, and one of up to
 * io_threads threads runs a batch of its messages (BEAM's dirty I/O
 * schedulers, Akka's blocking dispatcher). Threads are started on demand when
 * work waits and none is idle, and leave after WEIR__IO_IDLE_S seconds idle,
 * so a node with no blocking work keeps no extra threads.
 *
 * A mutex and a condition variable are enough here: each item costs a
 * blocking call that takes milliseconds, so the queue is never the
 * bottleneck.
 */
#include "internal.h"

#include <errno.h>
#include <time.h>

#define WEIR__IO_IDLE_S 10

static __thread int tl_io;

bool weir__on_io_thread(void) {
  return tl_io != 0;
}

static void *io_main(void *arg) {
  weir_rt *rt = arg;
  tl_io = 1;
  unsigned budget = rt->opts.batch;
  weir__lock(&rt->io_mu, WEIR__LK_IO);
  for (;;) {
    weir__proc *p = rt->io_head;
    if (p) {
      rt->io_head = p->rq_next;
      if (!rt->io_head) rt->io_tail = NULL;
      weir__unlock(&rt->io_mu, WEIR__LK_IO);
      (void)weir__proc_run(p, budget);
      weir__lock(&rt->io_mu, WEIR__LK_IO);
      continue;
    }
    if (rt->io_stop) break;
    rt->io_idle++;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += WEIR__IO_IDLE_S;
    int rc = 0;
    while (!rt->io_head && !rt->io_stop && rc != ETIMEDOUT)
      rc = pthread_cond_timedwait(&rt->io_cv, &rt->io_mu, &ts);
    rt->io_idle--;
    if (rc == ETIMEDOUT && !rt->io_head && !rt->io_stop) break;
  }
  rt->io_live--;
  pthread_cond_broadcast(&rt->io_cv); /* io_stop waits for io_live == 0 */
  weir__unlock(&rt->io_mu, WEIR__LK_IO);
  return NULL;
}

void weir__io_schedule(weir_rt *rt, weir__proc *p) {
  weir__lock(&rt->io_mu, WEIR__LK_IO);
  p->rq_next = NULL;
  if (rt->io_tail)
    rt->io_tail->rq_next = p;
  else
    rt->io_head = p;
  rt->io_tail = p;
  if (rt->io_idle == 0 && rt->io_live < rt->io_max && !rt->io_stop) {
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &a, io_main, rt) == 0) rt->io_live++;
    pthread_attr_destroy(&a);
    /* If no thread could start, an existing one will get to p in time;
       with none at all, the next schedule retries. */
  } else {
    pthread_cond_signal(&rt->io_cv);
  }
  weir__unlock(&rt->io_mu, WEIR__LK_IO);
}

int weir__io_start(weir_rt *rt) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&rt->io_cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&rt->io_mu, NULL);
  rt->io_max = rt->opts.io_threads;
  return WEIR_OK;
}

void weir__io_stop(weir_rt *rt) {
  weir__lock(&rt->io_mu, WEIR__LK_IO);
  rt->io_stop = 1;
  pthread_cond_broadcast(&rt->io_cv);
  while (rt->io_live > 0)
    pthread_cond_wait(&rt->io_cv, &rt->io_mu);
  weir__unlock(&rt->io_mu, WEIR__LK_IO);
  pthread_cond_destroy(&rt->io_cv);
  pthread_mutex_destroy(&rt->io_mu);
}
