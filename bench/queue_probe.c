/*
 * queue_probe.c: the limits probe. The fan-in of `fanin` with no runtime
 * around weir's mailbox: P producer threads allocate a message from the
 * pools (alloc.c), copy the same 16-byte event into it and push it onto one
 * mailbox (mailbox.c) in chains of up to 64, as a callback's outbox does
 * (proc.c); one consumer thread pops and frees. No processes, no
 * scheduler, no parking: the consumer spins on an empty queue. What the
 * runtime adds on top is fanin's figure against this one.
 *
 *   weir-bench queue_probe P M   ->  weir queue_probe ... msgs_per_s=X
 */
#include "bench.h"
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct probe {
  weir__proc *p;
  uint64_t m;
} probe;

typedef struct probe_event {
  uint64_t user_id;
  char key[4];
  uint32_t value;
} probe_event;

/* As a callback's casts go through the outbox (proc.c): the first message
   alone, then chains of up to CHAIN linked locally and pushed with one
   exchange and one add per counter. */
enum { CHAIN = 64 };

static void push_counted(weir__proc *p, weir__msg *first, weir__msg *last,
                         uint64_t n, uint64_t bytes) {
  atomic_fetch_add_explicit(&p->in_count, n, memory_order_relaxed);
  atomic_fetch_add_explicit(&p->in_bytes, bytes, memory_order_relaxed);
  weir__mbox_push_chain(p, first, last);
}

static void *producer(void *arg) {
  probe *pr = arg;
  probe_event ev = {7, "k", 1};
  weir__msg *first = NULL, *last = NULL;
  uint64_t n = 0, bytes = 0;
  for (uint64_t i = 0; i < pr->m; i++) {
    weir__msg *m;
    while (!(m = weir__msg_new(WEIR__K_CAST, 1, sizeof ev)))
      weir__cpu_relax();
    weir__copy(weir__msg_data(m), &ev, sizeof ev);
    atomic_store_explicit(&m->node.next, NULL, memory_order_relaxed);
    if (i == 0) { /* the first one goes at once */
      push_counted(pr->p, m, m, 1, m->len);
      continue;
    }
    if (n)
      atomic_store_explicit(&last->node.next, &m->node, memory_order_relaxed);
    else
      first = m;
    last = m;
    bytes += m->len;
    if (++n == CHAIN) {
      push_counted(pr->p, first, last, n, bytes);
      n = bytes = 0;
    }
  }
  if (n) push_counted(pr->p, first, last, n, bytes);
  return NULL;
}

int bench_queue_probe(int argc, char **argv) {
  /* argv[0] is the workload's name (main.c checked the count) */
  uint64_t np = argc > 1 ? strtoull(argv[1], NULL, 10) : 2;
  uint64_t m = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
  if (np < 1 || np > 64 || m < 1) {
    fprintf(stderr, "queue_probe: P in 1..64, M >= 1\n");
    return 2;
  }
  weir__pools_acquire();
  weir__proc *p = weir__calloc(1, sizeof *p);
  if (!p) return 1;
  weir__mbox_init(p);
  /* the consumer holds the token: the push that finds it empty is ignored
     here, the consumer never stops polling */
  probe pr = {p, m};
  pthread_t t[64];
  double t0 = bench_now();
  for (uint64_t i = 0; i < np; i++)
    if (pthread_create(&t[i], NULL, producer, &pr) != 0) return 1;
  uint64_t want = np * m, got = 0, sum = 0;
  while (got < want) {
    weir__msg *msg = weir__mbox_pop(p);
    if (!msg) {
      weir__cpu_relax();
      continue;
    }
    probe_event ev;
    weir__copy(&ev, weir__msg_data(msg), sizeof ev);
    sum += ev.value;
    got++;
  }
  double secs = bench_now() - t0;
  for (uint64_t i = 0; i < np; i++)
    pthread_join(t[i], NULL);
  weir__mbox_destroy(p);
  weir__free(p);
  weir__pools_release();
  if (sum != want) {
    fprintf(stderr, "queue_probe: got %llu events of value 1, sum %llu\n",
            (unsigned long long)got, (unsigned long long)sum);
    return 1;
  }
  printf("weir queue_probe producers=%llu msgs=%llu secs=%.6f "
         "msgs_per_s=%.0f\n",
         (unsigned long long)np, (unsigned long long)want, secs,
         (double)want / secs);
  return 0;
}
