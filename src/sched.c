/*
 * sched.c: scheduler threads, run queues, work stealing, parking.
 *
 * One thread per scheduler. Each owns a bounded ring of runnable processes
 * (Go's runq design): only the owner pushes, at tail; anyone takes from head
 * with a CAS, so the owner runs its queue in FIFO order (fair: a pair of
 * processes that keep waking each other cannot starve the rest) and idle
 * schedulers steal from the same end. A full ring spills half of itself to
 * the shared inject queue, which is also where threads outside the runtime
 * put processes they wake; every scheduler looks there first once in 16
 * turns. A woken process goes to the waker's own ring: the data it is about
 * to read is in the waker's cache. Bulk senders are the exception: two of
 * them are kept off one core (hand_off).
 *
 * An idle scheduler spins a while (checking its ring, the inject queue and
 * its peers'), then parks on a futex. Lost wake-ups are ruled out by a
 * Dekker-style handshake: the sleeper announces itself (nsleeping, seq_cst)
 * and then re-checks every queue; a waker makes its work visible and then
 * (seq_cst) reads nsleeping.
 *
 * Blocking processes never come here: weir__schedule hands them to iopool.c.
 */
#include "internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RQ_SIZE     256u
#define SPIN_ROUNDS 200

struct weir__sched {
  /* head: CAS by any thread taking; tail: stored by the owner only. */
  _Atomic uint32_t head WEIR__ALIGNED;
  _Atomic uint32_t tail WEIR__ALIGNED;
  _Atomic uint32_t running; /* 1 while the owner runs a process (owner's
                               stores, rq_balance reads; relaxed: a hint) */
  _Atomic(weir__proc *) ring[RQ_SIZE];
  _Atomic uint32_t parked WEIR__ALIGNED; /* futex word: 1 = asleep */
  weir_rt *rt;
  unsigned index;
  pthread_t thread;
  uint64_t rng;
  weir__sched *seen_victim; /* rq_steal's memory of a lone process */
  uint32_t seen_head;
  unsigned stale;
  unsigned ticks;     /* find_work calls, for the periodic balance check */
  unsigned last_turn; /* reductions the last turn here took (see run) */
  /* Bulk senders kept apart (see hand_off): the process running now and
     its messages_out before the turn; the last bulk sender that ran here
     and when its turn ended; that time, published for the peers; and a
     process a peer handed to this scheduler. */
  weir__proc *cur;
  uint64_t cur_out0;
  weir__proc *last_bulk;
  uint64_t last_bulk_ns;
  _Atomic uint64_t bulk_ns;
  _Atomic(weir__proc *) gift;
  /* busy time, for scheduler_usage: written by the owner, read by anyone */
  _Atomic uint64_t busy_ns;
  _Atomic uint64_t busy_since; /* 0 = idle now */
};

typedef struct {
  weir_rt *rt;
  weir__sched *sched;
} tl_thread;

static WEIR__TLS tl_thread tl;

bool weir__on_scheduler(void) {
  return tl.sched != NULL;
}

/* ---- the shared inject queue ------------------------------------------ */

static void inject_push(weir_rt *rt, weir__proc *p) {
  weir__lock(&rt->inject_mu, WEIR__LK_INJECT);
  p->rq_next = NULL;
  if (rt->inject_tail)
    rt->inject_tail->rq_next = p;
  else
    rt->inject_head = p;
  rt->inject_tail = p;
  atomic_fetch_add_explicit(&rt->inject_len, 1, memory_order_relaxed);
  weir__unlock(&rt->inject_mu, WEIR__LK_INJECT);
}

static weir__proc *inject_pop(weir_rt *rt) {
  /* Cheap peek first; the mutex makes the real answer. */
  if (atomic_load_explicit(&rt->inject_len, memory_order_relaxed) == 0)
    return NULL;
  weir__lock(&rt->inject_mu, WEIR__LK_INJECT);
  weir__proc *p = rt->inject_head;
  if (p) {
    rt->inject_head = p->rq_next;
    if (!rt->inject_head) rt->inject_tail = NULL;
    atomic_fetch_sub_explicit(&rt->inject_len, 1, memory_order_relaxed);
  }
  weir__unlock(&rt->inject_mu, WEIR__LK_INJECT);
  return p;
}

/* ---- the per-scheduler ring ------------------------------------------- */

static weir__proc *rq_take(weir__sched *s) {
  for (;;) {
    /* acquire on head and tail: the slot we read was published by the
       owner's release store of tail. */
    uint32_t h = atomic_load_explicit(&s->head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&s->tail, memory_order_acquire);
    if (h == t) return NULL;
    weir__proc *p =
        atomic_load_explicit(&s->ring[h % RQ_SIZE], memory_order_relaxed);
    /* The owner can overwrite slot h only once head has moved past h, so
       a successful CAS proves p was still the item at h. */
    if (atomic_compare_exchange_weak_explicit(
            &s->head, &h, h + 1, memory_order_acq_rel, memory_order_relaxed))
      return p;
  }
}

static void rq_push(weir__sched *s, weir__proc *p) {
  WEIR__ASSERT(tl.sched == s); /* only the owner pushes */
  for (;;) {
    uint32_t t = atomic_load_explicit(&s->tail, memory_order_relaxed);
    uint32_t h = atomic_load_explicit(&s->head, memory_order_acquire);
    if (t - h < RQ_SIZE) {
      atomic_store_explicit(&s->ring[t % RQ_SIZE], p, memory_order_relaxed);
      /* release: publishes the slot (and p's state) to takers. */
      atomic_store_explicit(&s->tail, t + 1, memory_order_release);
      return;
    }
    /* Full: move half to the inject queue, then retry. */
    for (uint32_t i = 0; i < RQ_SIZE / 2; i++) {
      weir__proc *q = rq_take(s);
      if (!q) break;
      inject_push(s->rt, q);
    }
  }
}

static void wake_one(weir_rt *rt) {
  /* seq_cst: orders our enqueue before this read (Dekker with park). */
  if (atomic_load_explicit(&rt->nsleeping, memory_order_seq_cst) == 0) return;
  if (atomic_load_explicit(&rt->nspinning, memory_order_relaxed) > 0) return;
  for (unsigned i = 0; i < rt->nscheds; i++) {
    weir__sched *s = &rt->scheds[i];
    uint32_t one = 1;
    if (atomic_compare_exchange_strong_explicit(
            &s->parked, &one, 0, memory_order_seq_cst, memory_order_relaxed)) {
      atomic_fetch_sub_explicit(&rt->nsleeping, 1, memory_order_seq_cst);
      weir__futex_wake(&s->parked, 1);
      return;
    }
  }
}

static void wake_all(weir_rt *rt) {
  for (unsigned i = 0; i < rt->nscheds; i++) {
    weir__sched *s = &rt->scheds[i];
    uint32_t one = 1;
    /* seq_cst kept, as in wake_one: the waker's half of the parking
       handshake (the stopper stores stopping, then reads parked; a parker
       stores parked, then reads stopping) */
    if (atomic_compare_exchange_strong_explicit(
            &s->parked, &one, 0, memory_order_seq_cst, memory_order_relaxed)) {
      atomic_fetch_sub_explicit(&rt->nsleeping, 1, memory_order_seq_cst);
      weir__futex_wake(&s->parked, 1);
    }
  }
}

/* A bulk sender (a turn that sent BULK_SENDS or more) that would share
   this core with another bulk sender that ran here within BULK_WINDOW_NS
   goes to a peer that ran none in that window: two producers on one core
   leave the other core only the consumers, and every message crosses
   between the cores (partitioned cast ran at half speed in that layout).
   The peer finds it in its gift slot before anything else; an idle
   scheduler may take it from there too (a peer in a long callback must
   not hold it), and a scheduler that leaves at stop closes its slot
   (GIFT_CLOSED) so nothing is handed to it afterwards. */
#define BULK_SENDS     256u
#define GIFT_CLOSED    ((weir__proc *)1)
#define BULK_WINDOW_NS 200000ull
static bool hand_off(weir_rt *rt, weir__sched *s, weir__proc *p) {
  uint64_t now = weir__now_ns();
  if (!s->last_bulk || s->last_bulk == p ||
      now - s->last_bulk_ns >= BULK_WINDOW_NS) {
    s->last_bulk = p;
    s->last_bulk_ns = now;
    atomic_store_explicit(&s->bulk_ns, now, memory_order_relaxed);
    return false;
  }
  for (unsigned i = 0; i < rt->nscheds; i++) {
    weir__sched *v = &rt->scheds[i];
    weir__proc *none = NULL;
    if (v == s ||
        now - atomic_load_explicit(&v->bulk_ns, memory_order_relaxed) <
            BULK_WINDOW_NS)
      continue;
    /* seq_cst: the gift is visible before we read v's parked flag, and v
       reads its gift after announcing itself parked (sched_main) */
    if (!atomic_compare_exchange_strong_explicit(
            &v->gift, &none, p, memory_order_seq_cst, memory_order_relaxed))
      continue;
    atomic_store_explicit(&v->bulk_ns, now, memory_order_relaxed);
    uint32_t one = 1;
    if (atomic_compare_exchange_strong_explicit(
            &v->parked, &one, 0, memory_order_seq_cst, memory_order_relaxed)) {
      atomic_fetch_sub_explicit(&rt->nsleeping, 1, memory_order_seq_cst);
      weir__futex_wake(&v->parked, 1);
    }
    return true;
  }
  return false;
}

void weir__schedule(weir_rt *rt, weir__proc *p) {
  if (WEIR__LD(p->blocking)) {
    weir__io_schedule(rt, p);
    return;
  }
  if (tl.sched && tl.rt == rt && p == tl.sched->cur && rt->nscheds > 1 &&
      atomic_load_explicit(&p->messages_out, memory_order_relaxed) -
              tl.sched->cur_out0 >=
          BULK_SENDS &&
      hand_off(rt, tl.sched, p))
    return;
  if (tl.sched && tl.rt == rt) {
    rq_push(tl.sched, p);
    /* This thread runs p as soon as its current process yields, so a
       sleeping peer is woken only when there is more work here than that
       (a ping-pong pair then stays on one core, with no futex per hop).
       A peer that is still spinning steals without being woken; the
       watchdog (weir__sched_watchdog) covers a callback that runs long. */
    weir__sched *s = tl.sched;
    uint32_t t = atomic_load_explicit(&s->tail, memory_order_relaxed);
    uint32_t h = atomic_load_explicit(&s->head, memory_order_relaxed);
    if (t - h <= 1) return;
  } else {
    inject_push(rt, p);
  }
  atomic_thread_fence(memory_order_seq_cst);
  wake_one(rt);
}

/* Called every few milliseconds off the schedulers: if work waits in some
   ring while a scheduler sleeps, wake one (the local-wake shortcut in
   weir__schedule never strands work for longer than this). */
void weir__sched_watchdog(weir_rt *rt) {
  if (atomic_load_explicit(&rt->nsleeping, memory_order_seq_cst) == 0) return;
  for (unsigned i = 0; i < rt->nscheds; i++) {
    weir__sched *s = &rt->scheds[i];
    uint32_t t = atomic_load_explicit(&s->tail, memory_order_acquire);
    uint32_t h = atomic_load_explicit(&s->head, memory_order_acquire);
    if (t != h) {
      wake_one(rt);
      return;
    }
  }
}

/* ---- the scheduler loop ----------------------------------------------- */

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* Steals from a peer's ring. A lone process in a busy peer's ring is
   usually the one its running process just woke (the other half of a
   ping-pong) and will run within a microsecond: taking it would split the
   pair across cores. So a singleton is taken only once the peer's head has
   stood still for STALE_CHECKS of our looks (the peer is in a long
   callback, as a fan-in producer is); two or more are taken at once. */
#define STALE_CHECKS 4
static weir__proc *rq_steal(weir__sched *s, weir__sched *v) {
  uint32_t h = atomic_load_explicit(&v->head, memory_order_acquire);
  uint32_t t = atomic_load_explicit(&v->tail, memory_order_acquire);
  if (t == h) return NULL;
  if (t - h == 1) {
    if (s->seen_victim != v || s->seen_head != h) {
      s->seen_victim = v;
      s->seen_head = h;
      s->stale = 0;
      return NULL;
    }
    if (++s->stale < STALE_CHECKS) return NULL;
  }
  return rq_take(v);
}

/* Every BALANCE_EVERY looks for work, a scheduler compares its load with
   its peers': its own ring (it runs nothing now) against a peer's ring
   plus the process the peer is running (`running`). A peer ahead by two or more
   gives up the oldest process in its ring. A busy scheduler never steals
   otherwise, so without this the processes that happened to be woken on
   one core stayed there: a partitioned cast's two workers shared a core
   with one producer while the other core ran the other producer alone.
   Two apart, not one, so that a process that moved does not move back. */
#define BALANCE_EVERY 16
static weir__proc *rq_balance(weir__sched *s) {
  weir_rt *rt = s->rt;
  uint32_t mine = atomic_load_explicit(&s->tail, memory_order_relaxed) -
                  atomic_load_explicit(&s->head, memory_order_relaxed);
  for (unsigned i = 0; i < rt->nscheds; i++) {
    weir__sched *v = &rt->scheds[i];
    if (v == s) continue;
    /* relaxed: a hint; rq_take does the real, synchronised take */
    uint32_t len = atomic_load_explicit(&v->tail, memory_order_relaxed) -
                   atomic_load_explicit(&v->head, memory_order_relaxed);
    uint32_t running = atomic_load_explicit(&v->running, memory_order_relaxed);
    if (len <= RQ_SIZE && len + running >= mine + 2) return rq_take(v);
  }
  return NULL;
}

/* Takes the process handed to v, if any (v's owner, or an idle peer). */
static weir__proc *gift_take(weir__sched *v) {
  /* seq_cst: the other half of hand_off's handshake with a parked owner */
  weir__proc *g = atomic_load_explicit(&v->gift, memory_order_seq_cst);
  while (g && g != GIFT_CLOSED)
    if (atomic_compare_exchange_weak_explicit(
            &v->gift, &g, NULL, memory_order_seq_cst, memory_order_seq_cst))
      return g;
  return NULL;
}

/* Every BALANCE_EVERY looks for work, the shared queue comes first (as
   Go's scheduler looks at its global queue every 61 ticks): a process woken
   from outside the schedulers (a user thread, an I/O thread, the console)
   would otherwise wait until some scheduler's own ring ran dry, which with
   processes that keep sending to themselves never happens. A process handed
   over (hand_off) comes before anything. */
static weir__proc *find_work(weir__sched *s) {
  weir_rt *rt = s->rt;
  weir__proc *g = gift_take(s);
  if (g) return g;
  if (++s->ticks % BALANCE_EVERY == 0) {
    weir__proc *b = inject_pop(rt);
    if (!b && rt->nscheds > 1) b = rq_balance(s);
    if (b) return b;
  }
  weir__proc *p = rq_take(s);
  if (p) return p;
  p = inject_pop(rt);
  if (p) return p;
  if (rt->nscheds > 1) {
    unsigned start = (unsigned)(xorshift(&s->rng) % rt->nscheds);
    for (unsigned i = 0; i < rt->nscheds; i++) {
      weir__sched *v = &rt->scheds[(start + i) % rt->nscheds];
      if (v == s) continue;
      p = rq_steal(s, v);
      if (!p) p = gift_take(v);
      if (p) return p;
    }
  }
  return NULL;
}

static void busy_begin(weir__sched *s) {
  WEIR__ASSERT(tl.sched == s); /* written by the owner */
  atomic_store_explicit(&s->busy_since, weir__now_ns(), memory_order_relaxed);
}

static void busy_end(weir__sched *s) {
  WEIR__ASSERT(tl.sched == s);
  uint64_t since = atomic_load_explicit(&s->busy_since, memory_order_relaxed);
  if (!since) return;
  atomic_store_explicit(
      &s->busy_ns,
      atomic_load_explicit(&s->busy_ns, memory_order_relaxed) +
          (weir__now_ns() - since),
      memory_order_relaxed);
  atomic_store_explicit(&s->busy_since, 0, memory_order_relaxed);
}

/* A turn's budget, in reductions: the runtime's batch, or as many as the
   turn before it on this scheduler took, up to WEIR__TURN_MAX batches.
   A callback cannot be cut short, so a bulk sender's turn is one callback
   however many it sends (a fan-in producer's, 1024 casts); the process it
   feeds, sharing its core, then gets a turn as long, in messages handled,
   and keeps up with it. With turns of one batch it fell behind 16 to 1 and
   its queue grew for as long as the sender ran; with a turn of a fixed
   time (200 us, an earlier design) it starved the sender instead: with a
   partitioned cast's sender and worker on each core, each sender got one
   callback (1024 casts) per 230 us, 9 M msgs/s in all. */
#define WEIR__TURN_MAX 16u
static void run(weir__sched *s, weir__proc *p) {
  unsigned batch = s->rt->opts.batch;
  unsigned budget = s->last_turn > batch ? s->last_turn : batch;
  if (budget > WEIR__TURN_MAX * batch) budget = WEIR__TURN_MAX * batch;
  /* relaxed: a hint for the peers' rq_balance */
  atomic_store_explicit(&s->running, 1, memory_order_relaxed);
  s->cur = p;
  s->cur_out0 = atomic_load_explicit(&p->messages_out, memory_order_relaxed);
  s->last_turn = weir__proc_run(p, budget);
  s->cur = NULL;
  atomic_store_explicit(&s->running, 0, memory_order_relaxed);
}

static void *sched_main(void *arg) {
  weir__sched *s = arg;
  weir_rt *rt = s->rt;
  tl.rt = rt;
  tl.sched = s;
  weir__outbox_enable();
  busy_begin(s);
  for (;;) {
    weir__proc *p = find_work(s);
    if (p) {
      run(s, p);
      continue;
    }
    if (atomic_load_explicit(&rt->stopping, memory_order_acquire) == 2) {
      /* Leaving: close the gift slot; a process handed over since the
         look above runs first. */
      p = atomic_exchange_explicit(&s->gift, GIFT_CLOSED, memory_order_seq_cst);
      if (p && p != GIFT_CLOSED) {
        run(s, p);
        continue;
      }
      break;
    }
    /* Spin a little: work often arrives within microseconds. */
    atomic_fetch_add_explicit(&rt->nspinning, 1, memory_order_relaxed);
    for (int i = 0; i < SPIN_ROUNDS && !p; i++) {
      for (int k = 0; k < 32; k++)
        weir__cpu_relax();
      p = find_work(s);
    }
    atomic_fetch_sub_explicit(&rt->nspinning, 1, memory_order_relaxed);
    if (p) {
      run(s, p);
      continue;
    }
    /* Park: announce, re-check, sleep. */
    busy_end(s);
    atomic_store_explicit(&s->parked, 1, memory_order_seq_cst);
    atomic_fetch_add_explicit(&rt->nsleeping, 1, memory_order_seq_cst);
    p = find_work(s);
    if (p || atomic_load_explicit(&rt->stopping, memory_order_acquire) == 2) {
      uint32_t one = 1;
      if (atomic_compare_exchange_strong_explicit(
              &s->parked, &one, 0, memory_order_seq_cst, memory_order_relaxed))
        atomic_fetch_sub_explicit(&rt->nsleeping, 1, memory_order_seq_cst);
      busy_begin(s);
      if (p) run(s, p);
      continue;
    }
    while (atomic_load_explicit(&s->parked, memory_order_acquire) == 1)
      weir__futex_wait(&s->parked, 1, UINT64_MAX);
    busy_begin(s);
  }
  busy_end(s);
  return NULL;
}

int weir__sched_start(weir_rt *rt) {
  rt->hooks.schedule = weir__schedule;
  rt->nscheds = rt->opts.schedulers;
  rt->scheds = weir__calloc(rt->nscheds, sizeof(weir__sched));
  if (!rt->scheds) return WEIR_ENOMEM;
  for (unsigned i = 0; i < rt->nscheds; i++) {
    weir__sched *s = &rt->scheds[i];
    s->rt = rt;
    s->index = i;
    s->rng = 0x9E3779B97F4A7C15ull * (i + 1);
  }
  for (unsigned i = 0; i < rt->nscheds; i++) {
    if (pthread_create(&rt->scheds[i].thread, NULL, sched_main,
                       &rt->scheds[i]) != 0) {
      /* seq_cst, as in weir__sched_stop: the store before wake_all reads
         parked (store-load: a scheduler parking now sees stopping) */
      atomic_store_explicit(&rt->stopping, 2, memory_order_seq_cst);
      wake_all(rt);
      for (unsigned j = 0; j < i; j++)
        pthread_join(rt->scheds[j].thread, NULL);
      weir__free(rt->scheds);
      rt->scheds = NULL;
      return WEIR_ESYS;
    }
  }
  return WEIR_OK;
}

void weir__sched_stop(weir_rt *rt) {
  if (!rt->scheds) return;
  /* stopping == 2: the schedulers leave once they find no work. */
  atomic_store_explicit(&rt->stopping, 2, memory_order_seq_cst);
  /* seq_cst kept: reads nsleeping after the seq_cst store of stopping,
     while a parker adds itself to nsleeping (seq_cst) and then reads
     stopping; store-load on both sides (Dekker), so one sees the other */
  while (atomic_load_explicit(&rt->nsleeping, memory_order_seq_cst) > 0) {
    wake_all(rt);
  }
  for (unsigned i = 0; i < rt->nscheds; i++) {
    wake_all(rt);
    pthread_join(rt->scheds[i].thread, NULL);
  }
  weir__free(rt->scheds);
  rt->scheds = NULL;
}

int weir_scheduler_usage(weir_rt *rt, uint32_t ms, double *out, size_t n,
                         size_t *count) {
  if (!rt || (!out && n)) return WEIR_EINVAL;
  if (weir__on_scheduler()) return WEIR_EDEADLK;
  unsigned ns = rt->nscheds;
  uint64_t b0[256], b1[256];
  if (ns > 256) ns = 256;
  uint64_t t0 = weir__now_ns();
  for (unsigned i = 0; i < ns; i++) {
    weir__sched *s = &rt->scheds[i];
    uint64_t since = atomic_load_explicit(&s->busy_since, memory_order_relaxed);
    b0[i] = atomic_load_explicit(&s->busy_ns, memory_order_relaxed) +
            (since && since < t0 ? t0 - since : 0);
  }
  weir__sleep_ms(ms);
  uint64_t t1 = weir__now_ns();
  for (unsigned i = 0; i < ns; i++) {
    weir__sched *s = &rt->scheds[i];
    uint64_t since = atomic_load_explicit(&s->busy_since, memory_order_relaxed);
    b1[i] = atomic_load_explicit(&s->busy_ns, memory_order_relaxed) +
            (since && since < t1 ? t1 - since : 0);
  }
  double span = (double)(t1 - t0);
  for (unsigned i = 0; i < ns && i < n; i++) {
    double u = b1[i] > b0[i] ? (double)(b1[i] - b0[i]) / span : 0.0;
    out[i] = u > 1.0 ? 1.0 : u;
  }
  if (count) *count = ns;
  return WEIR_OK;
}
