/*
 * timer.c: send_after, cancel, and call_async timeouts.
 *
 * One timer thread per node sleeps on a condition variable until the earliest
 * deadline, then delivers the due messages like any outside thread would.
 * Timers live in a binary min-heap ordered by deadline (each entry knows its
 * heap index) and in an open hash table keyed by ref, so that add and cancel
 * are O(log n) and a cancel never scans. A heap rather than a timer wheel:
 * weir's timers are few per process (send_after and call timeouts) and a
 * heap has no tick granularity (docs/DEVIATIONS.md).
 *
 * The message is built when the timer is set (so firing cannot fail for want
 * of memory) and freed if the timer is cancelled.
 */
#include "internal.h"

#include <errno.h>
#include <time.h>

typedef struct tmr {
  uint64_t due;
  weir_ref ref;
  weir_pid to;
  weir__msg *m;
  uint32_t heap_idx;
} tmr;

typedef struct {
  tmr **heap;
  uint32_t n, cap;
  tmr **hash; /* open addressing on ref; NULL = empty, TOMB = deleted */
  uint32_t hcap, hused;
} timers;

#define WATCHDOG_NS 5000000ull

static tmr tomb_obj;
#define TOMB (&tomb_obj)

static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

static void heap_swap(timers *t, uint32_t a, uint32_t b) {
  tmr *x = t->heap[a];
  t->heap[a] = t->heap[b];
  t->heap[b] = x;
  t->heap[a]->heap_idx = a;
  t->heap[b]->heap_idx = b;
}

static void heap_up(timers *t, uint32_t i) {
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (t->heap[p]->due <= t->heap[i]->due) break;
    heap_swap(t, p, i);
    i = p;
  }
}

static void heap_down(timers *t, uint32_t i) {
  for (;;) {
    uint32_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < t->n && t->heap[l]->due < t->heap[m]->due) m = l;
    if (r < t->n && t->heap[r]->due < t->heap[m]->due) m = r;
    if (m == i) return;
    heap_swap(t, i, m);
    i = m;
  }
}

static void heap_remove(timers *t, uint32_t i) {
  t->n--;
  if (i != t->n) {
    t->heap[i] = t->heap[t->n];
    t->heap[i]->heap_idx = i;
    heap_down(t, i);
    heap_up(t, i);
  }
}

static int hash_grow(timers *t) {
  /* Sized from the live count, so tombstones of a churning table are
     dropped instead of doubling it forever. */
  uint32_t ncap = 64;
  while (ncap < (t->n + 1) * 4)
    ncap *= 2;
  tmr **nh = weir__calloc(ncap, sizeof(tmr *));
  if (!nh) return WEIR_ENOMEM;
  for (uint32_t i = 0; i < t->hcap; i++) {
    tmr *e = t->hash[i];
    if (!e || e == TOMB) continue;
    uint32_t j = (uint32_t)mix(e->ref) & (ncap - 1);
    while (nh[j])
      j = (j + 1) & (ncap - 1);
    nh[j] = e;
  }
  weir__free(t->hash);
  t->hash = nh;
  t->hcap = ncap;
  t->hused = t->n;
  return WEIR_OK;
}

static uint32_t hash_find(timers *t, weir_ref ref) {
  if (!t->hcap) return UINT32_MAX;
  uint32_t j = (uint32_t)mix(ref) & (t->hcap - 1);
  for (uint32_t k = 0; k < t->hcap; k++) {
    tmr *e = t->hash[j];
    if (!e) return UINT32_MAX;
    if (e != TOMB && e->ref == ref) return j;
    j = (j + 1) & (t->hcap - 1);
  }
  return UINT32_MAX;
}

int weir__timer_add(weir_rt *rt, uint64_t due_ns, weir_pid to, weir__msg *m,
                    weir_ref ref) {
  tmr *e = weir__malloc(sizeof *e);
  if (!e) {
    weir__msg_free(m);
    return WEIR_ENOMEM;
  }
  e->due = due_ns;
  e->ref = ref;
  e->to = to;
  e->m = m;
  weir__lock(&rt->timer_mu, WEIR__LK_TIMER);
  timers *t = rt->timers;
  int rc = WEIR_OK;
  if ((t->hused + 1) * 2 > t->hcap) rc = hash_grow(t);
  if (rc == WEIR_OK && t->n == t->cap) {
    uint32_t ncap = t->cap ? t->cap * 2 : 64;
    tmr **nh = weir__malloc(ncap * sizeof(tmr *));
    if (!nh) {
      rc = WEIR_ENOMEM;
    } else {
      if (t->n) memcpy(nh, t->heap, t->n * sizeof(tmr *));
      weir__free(t->heap);
      t->heap = nh;
      t->cap = ncap;
    }
  }
  if (rc != WEIR_OK || rt->timer_stop) {
    weir__unlock(&rt->timer_mu, WEIR__LK_TIMER);
    weir__msg_free(m);
    weir__free(e);
    return rc != WEIR_OK ? rc : WEIR_ESTOPPED;
  }
  uint32_t j = (uint32_t)mix(ref) & (t->hcap - 1);
  while (t->hash[j] && t->hash[j] != TOMB)
    j = (j + 1) & (t->hcap - 1);
  if (!t->hash[j]) t->hused++;
  t->hash[j] = e;
  e->heap_idx = t->n;
  t->heap[t->n++] = e;
  heap_up(t, e->heap_idx);
  bool earliest = t->heap[0] == e;
  weir__unlock(&rt->timer_mu, WEIR__LK_TIMER);
  if (earliest) pthread_cond_signal(&rt->timer_cv);
  return WEIR_OK;
}

int weir__timer_cancel(weir_rt *rt, weir_ref ref) {
  weir__lock(&rt->timer_mu, WEIR__LK_TIMER);
  timers *t = rt->timers;
  uint32_t j = hash_find(t, ref);
  if (j == UINT32_MAX) {
    weir__unlock(&rt->timer_mu, WEIR__LK_TIMER);
    return WEIR_ENOTFOUND;
  }
  tmr *e = t->hash[j];
  t->hash[j] = TOMB;
  heap_remove(t, e->heap_idx);
  weir__unlock(&rt->timer_mu, WEIR__LK_TIMER);
  weir__msg_free(e->m);
  weir__free(e);
  return WEIR_OK;
}

static void *timer_main(void *arg) {
  weir_rt *rt = arg;
  weir__lock(&rt->timer_mu, WEIR__LK_TIMER);
  timers *t = rt->timers;
  while (!rt->timer_stop) {
    uint64_t now = weir__now_ns();
    if (t->n && t->heap[0]->due <= now) {
      tmr *e = t->heap[0];
      heap_remove(t, 0);
      uint32_t j = hash_find(t, e->ref);
      if (j != UINT32_MAX) t->hash[j] = TOMB;
      weir__unlock(&rt->timer_mu, WEIR__LK_TIMER);
      weir__deliver(rt, e->to, e->m); /* ENOPROC: the target is gone */
      weir__free(e);
      weir__lock(&rt->timer_mu, WEIR__LK_TIMER);
      continue;
    }
    /* Sleep until the next deadline, but at most WATCHDOG_NS: the thread
       also checks that no runnable process waits while a scheduler sleeps
       (sched.c's local-wake shortcut). */
    uint64_t wait = WATCHDOG_NS;
    if (t->n && t->heap[0]->due - now < wait) wait = t->heap[0]->due - now;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t abs_ns =
        (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + wait;
    ts.tv_sec = (time_t)(abs_ns / 1000000000ull);
    ts.tv_nsec = (long)(abs_ns % 1000000000ull);
    pthread_cond_timedwait(&rt->timer_cv, &rt->timer_mu, &ts);
    weir__unlock(&rt->timer_mu, WEIR__LK_TIMER);
    weir__sched_watchdog(rt);
    weir__lock(&rt->timer_mu, WEIR__LK_TIMER);
  }
  weir__unlock(&rt->timer_mu, WEIR__LK_TIMER);
  return NULL;
}

int weir__timer_start(weir_rt *rt) {
  rt->hooks.timer_cancel = weir__timer_cancel;
  timers *t = weir__calloc(1, sizeof *t);
  if (!t) return WEIR_ENOMEM;
  rt->timers = t;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&rt->timer_cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&rt->timer_mu, NULL);
  if (pthread_create(&rt->timer_thread, NULL, timer_main, rt) != 0) {
    pthread_cond_destroy(&rt->timer_cv);
    pthread_mutex_destroy(&rt->timer_mu);
    weir__free(t);
    rt->timers = NULL;
    return WEIR_ESYS;
  }
  return WEIR_OK;
}

void weir__timer_stop(weir_rt *rt) {
  if (!rt->timers) return;
  weir__lock(&rt->timer_mu, WEIR__LK_TIMER);
  rt->timer_stop = 1;
  weir__unlock(&rt->timer_mu, WEIR__LK_TIMER);
  pthread_cond_signal(&rt->timer_cv);
  pthread_join(rt->timer_thread, NULL);
  timers *t = rt->timers;
  for (uint32_t i = 0; i < t->n; i++) {
    weir__msg_free(t->heap[i]->m);
    weir__free(t->heap[i]);
  }
  weir__free(t->heap);
  weir__free(t->hash);
  weir__free(t);
  rt->timers = NULL;
  pthread_cond_destroy(&rt->timer_cv);
  pthread_mutex_destroy(&rt->timer_mu);
}

int weir_send_after(weir_rt *rt, weir_pid pid, uint32_t tag, const void *data,
                    uint32_t len, uint32_t ms, weir_ref *timer) {
  if (!rt || (len && !data) || tag >= WEIR_TAG_SYSTEM) return WEIR_EINVAL;
  if (len > UINT32_MAX - 64) return WEIR_EINVAL; /* the size would wrap */
  if (!weir__proc_get(rt, pid)) return WEIR_ENOPROC;
  weir_ref ref = weir__new_ref(rt);
  weir__msg *m = weir__msg_new(WEIR__K_INFO, tag, (uint32_t)sizeof ref + len);
  if (!m) return WEIR_ENOMEM;
  char *d = weir__msg_data(m);
  memcpy(d, &ref, sizeof ref);
  if (len) memcpy(d + sizeof ref, data, len);
  weir_ctx *cx = weir__current_ctx();
  if (cx && cx->p->rt == rt) m->from = weir__proc_pid(cx->p).id;
  int rc = weir__timer_add(rt, weir__now_ns() + (uint64_t)ms * 1000000ull, pid,
                           m, ref);
  if (rc == WEIR_OK && timer) *timer = ref;
  return rc;
}

int weir_cancel_timer(weir_rt *rt, weir_ref timer) {
  if (!rt || !timer) return WEIR_EINVAL;
  return weir__timer_cancel(rt, timer);
}
