/*
 * server.c: the gen_server behaviour's messaging: cast, send, call from a
 * thread, call_async from a process, reply.
 *
 * A call from a thread (or a blocking process, which owns its I/O thread)
 * waits on a per-thread waiter: a slot in a fixed table, found by index, that
 * holds the caller's reply buffer. The weir_from handed to the server names
 * (index, sequence); a reply copies into the buffer only if the sequence still
 * matches under the waiter's lock, so a reply that arrives after a timeout is
 * discarded and never writes into memory the caller has reused. The caller
 * spins briefly before sleeping on a futex: most replies come within
 * microseconds.
 *
 * A call from a process on a scheduler thread would block that scheduler:
 * it returns WEIR_EDEADLK, and the process uses weir_call_async, whose reply
 * arrives as a message. call_async monitors the server with the call's ref,
 * so a server that dies first produces a DOWN with the same ref.
 */
#include "internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WEIR__MAX_WAITERS 4096u
#define CALL_SPIN         4000

struct weir__waiter {
  pthread_mutex_t mu;
  _Atomic uint32_t done; /* futex word */
  uint32_t seq;
  int waiting;
  void *buf;
  uint32_t cap, got;
  int err;
  uint64_t server; /* pid id of the server being called */
};

typedef struct {
  uint64_t rt_id;
  uint32_t idx;
} tl_waiter;
static __thread tl_waiter tl_w[4];

static weir__waiter *waiter_get(weir_rt *rt, uint32_t *idx_out) {
  for (int i = 0; i < 4; i++)
    if (tl_w[i].rt_id == rt->rt_id) {
      *idx_out = tl_w[i].idx;
      return rt->waiters[tl_w[i].idx];
    }
  weir__waiter *w = weir__calloc(1, sizeof *w);
  if (!w) return NULL;
  pthread_mutex_init(&w->mu, NULL);
  weir__lock(&rt->calls_mu, WEIR__LK_CALLS);
  if (rt->nwaiters >= WEIR__MAX_WAITERS) {
    weir__unlock(&rt->calls_mu, WEIR__LK_CALLS);
    pthread_mutex_destroy(&w->mu);
    weir__free(w);
    return NULL;
  }
  uint32_t idx = rt->nwaiters++;
  rt->waiters[idx] = w;
  weir__unlock(&rt->calls_mu, WEIR__LK_CALLS);
  /* Replace the least recently added cache entry (round robin). */
  int victim = 0;
  for (int i = 0; i < 4; i++)
    if (tl_w[i].rt_id == 0) {
      victim = i;
      break;
    }
  if (tl_w[victim].rt_id != 0) {
    for (int i = 3; i > 0; i--)
      tl_w[i] = tl_w[i - 1];
    victim = 0;
  }
  tl_w[victim].rt_id = rt->rt_id;
  tl_w[victim].idx = idx;
  *idx_out = idx;
  return w;
}

int weir__calls_init(weir_rt *rt) {
  rt->hooks.call_fail = weir__call_fail;
  rt->hooks.pending_take = weir__pending_take;
  rt->hooks.server_gone = weir__calls_server_gone;
  rt->waiters = weir__calloc(WEIR__MAX_WAITERS, sizeof(weir__waiter *));
  return rt->waiters ? WEIR_OK : WEIR_ENOMEM;
}

void weir__calls_free(weir_rt *rt) {
  if (!rt->waiters) return;
  for (uint32_t i = 0; i < rt->nwaiters; i++) {
    pthread_mutex_destroy(&rt->waiters[i]->mu);
    weir__free(rt->waiters[i]);
  }
  weir__free(rt->waiters);
  rt->waiters = NULL;
}

static weir__waiter *waiter_of(weir_rt *rt, weir_from from, uint32_t *seq) {
  uint32_t idx = (uint32_t)(from.b >> 32);
  *seq = (uint32_t)(from.b & 0xffffffffu);
  if (idx >= WEIR__MAX_WAITERS) return NULL;
  weir__lock(&rt->calls_mu, WEIR__LK_CALLS);
  weir__waiter *w = idx < rt->nwaiters ? rt->waiters[idx] : NULL;
  weir__unlock(&rt->calls_mu, WEIR__LK_CALLS);
  return w;
}

/* Completes a thread caller's wait with (data, len) or err. */
static int waiter_finish(weir_rt *rt, weir_from from, const void *data,
                         uint32_t len, int err) {
  uint32_t seq;
  weir__waiter *w = waiter_of(rt, from, &seq);
  if (!w) return WEIR_ENOPROC;
  weir__lock(&w->mu, WEIR__LK_WAITER);
  if (!w->waiting || w->seq != seq) {
    weir__unlock(&w->mu, WEIR__LK_WAITER);
    return WEIR_ENOPROC; /* the caller timed out and left */
  }
  if (err == WEIR_OK && len && w->buf)
    memcpy(w->buf, data, len < w->cap ? len : w->cap);
  w->got = len;
  w->err = err;
  w->waiting = 0;
  /* release: the copied reply is visible to the caller's acquire load. */
  atomic_store_explicit(&w->done, 1, memory_order_release);
  weir__unlock(&w->mu, WEIR__LK_WAITER);
  weir__futex_wake(&w->done, 1);
  return WEIR_OK;
}

/* A server that ends with thread callers still waiting fails their calls. */
void weir__calls_server_gone(weir_rt *rt, weir_pid server) {
  weir__lock(&rt->calls_mu, WEIR__LK_CALLS);
  uint32_t n = rt->nwaiters;
  weir__unlock(&rt->calls_mu, WEIR__LK_CALLS);
  for (uint32_t i = 0; i < n; i++) {
    weir__waiter *w = rt->waiters[i];
    weir__lock(&w->mu, WEIR__LK_WAITER);
    if (w->waiting && w->server == server.id) {
      w->err = WEIR_ENOPROC;
      w->got = 0;
      w->waiting = 0;
      atomic_store_explicit(&w->done, 1, memory_order_release);
      weir__unlock(&w->mu, WEIR__LK_WAITER);
      weir__futex_wake(&w->done, 1);
      continue;
    }
    weir__unlock(&w->mu, WEIR__LK_WAITER);
  }
}

/* ---- cast and send ---------------------------------------------------- */

static weir__msg *build(uint32_t kind, uint32_t tag, const void *prefix,
                        uint32_t plen, const void *data, uint32_t len) {
  if (len > UINT32_MAX - 64) return NULL;
  weir__msg *m = weir__msg_new(kind, tag, plen + len);
  if (!m) return NULL;
  char *d = weir__msg_data(m);
  if (plen) memcpy(d, prefix, plen);
  if (len) weir__copy(d + plen, data, len);
  weir_ctx *cx = weir__current_ctx();
  if (cx) m->from = cx->self;
  return m;
}

static int send_kind(weir_rt *rt, weir_pid pid, uint32_t kind, uint32_t tag,
                     const void *data, uint32_t len) {
  if (!rt || (len && !data)) return WEIR_EINVAL;
  if (tag >= WEIR_TAG_SYSTEM) return WEIR_EINVAL;
  weir__msg *m;
  if (kind == WEIR__K_CAST) {
    m = build(kind, tag, NULL, 0, data, len);
  } else {
    weir_ref zero = 0;
    m = build(kind, tag, &zero, sizeof zero, data, len);
  }
  if (!m) return WEIR_ENOMEM;
  return weir__deliver(rt, pid, m);
}

int weir_cast(weir_rt *rt, weir_pid pid, uint32_t tag, const void *data,
              uint32_t len) {
  return send_kind(rt, pid, WEIR__K_CAST, tag, data, len);
}

int weir_send(weir_rt *rt, weir_pid pid, uint32_t tag, const void *data,
              uint32_t len) {
  return send_kind(rt, pid, WEIR__K_INFO, tag, data, len);
}

/* ---- call from a thread ----------------------------------------------- */

int weir_call(weir_rt *rt, weir_pid pid, uint32_t tag, const void *data,
              uint32_t len, void *reply, uint32_t *reply_len, int timeout_ms) {
  if (!rt || (len && !data) || tag >= WEIR_TAG_SYSTEM) return WEIR_EINVAL;
  uint32_t cap = reply_len ? *reply_len : 0;
  if (cap && !reply) return WEIR_EINVAL;
  if (weir__on_scheduler()) return WEIR_EDEADLK;
  weir_ctx *self = weir__current_ctx();
  if (self && self->self == pid.id) return WEIR_EDEADLK; /* calling itself */
  uint32_t idx;
  weir__waiter *w = waiter_get(rt, &idx);
  if (!w) return WEIR_ENOMEM;

  weir__lock(&w->mu, WEIR__LK_WAITER);
  w->seq++;
  uint32_t seq = w->seq;
  w->waiting = 1;
  w->buf = reply;
  w->cap = cap;
  w->got = 0;
  w->err = WEIR_OK;
  w->server = pid.id;
  atomic_store_explicit(&w->done, 0, memory_order_relaxed);
  weir__unlock(&w->mu, WEIR__LK_WAITER);

  weir_from from = {0, ((uint64_t)idx << 32) | seq};
  weir__msg *m = build(WEIR__K_CALL, tag, &from, sizeof from, data, len);
  int rc = m ? weir__deliver(rt, pid, m) : WEIR_ENOMEM;
  if (rc != WEIR_OK) {
    weir__lock(&w->mu, WEIR__LK_WAITER);
    w->waiting = 0;
    weir__unlock(&w->mu, WEIR__LK_WAITER);
    return rc;
  }

  uint64_t deadline = timeout_ms < 0
                          ? UINT64_MAX
                          : weir__now_ns() + (uint64_t)timeout_ms * 1000000ull;
  for (int i = 0; i < CALL_SPIN; i++) {
    if (atomic_load_explicit(&w->done, memory_order_acquire)) goto done;
    weir__cpu_relax();
  }
  while (!atomic_load_explicit(&w->done, memory_order_acquire)) {
    uint64_t left = UINT64_MAX;
    if (deadline != UINT64_MAX) {
      uint64_t now = weir__now_ns();
      if (now >= deadline) break;
      left = deadline - now;
    }
    weir__futex_wait(&w->done, 0, left);
  }
done:
  weir__lock(&w->mu, WEIR__LK_WAITER);
  if (!atomic_load_explicit(&w->done, memory_order_acquire)) {
    w->waiting = 0; /* a later reply sees waiting == 0 and is discarded */
    weir__unlock(&w->mu, WEIR__LK_WAITER);
    return WEIR_ETIMEDOUT;
  }
  rc = w->err;
  uint32_t got = w->got;
  weir__unlock(&w->mu, WEIR__LK_WAITER);
  if (reply_len) *reply_len = got;
  if (rc == WEIR_OK && got > cap) rc = WEIR_E2BIG;
  return rc;
}

/* ---- call from a process ---------------------------------------------- */

static int pending_add(weir__proc *p, weir_ref ref, weir_pid to) {
  weir__ext *e = weir__ext_get(p);
  if (!e) return WEIR_ENOMEM;
  if (e->ncalls == e->capcalls) {
    uint32_t cap = e->capcalls ? e->capcalls * 2 : 4;
    weir__pending *n = weir__malloc(cap * sizeof *n);
    if (!n) return WEIR_ENOMEM;
    if (e->ncalls) memcpy(n, e->calls, e->ncalls * sizeof *n);
    weir__free(e->calls);
    e->calls = n;
    e->capcalls = cap;
  }
  e->calls[e->ncalls].ref = ref;
  e->calls[e->ncalls].to = to;
  e->calls[e->ncalls].timer = 0;
  e->ncalls++;
  return WEIR_OK;
}

static weir__pending *pending_find(weir__proc *p, weir_ref ref) {
  weir__ext *e = p->ext;
  if (!e) return NULL;
  for (uint32_t i = 0; i < e->ncalls; i++)
    if (e->calls[i].ref == ref) return &e->calls[i];
  return NULL;
}

bool weir__pending_take(weir__proc *p, weir_ref ref, int why) {
  /* the process's own bookkeeping: from its run (a reply, a DOWN) or its
     callback (call_async) */
  WEIR__ASSERT(weir__current_ctx() && weir__current_ctx()->p == p);
  weir__pending *pc = pending_find(p, ref);
  if (!pc) return false;
  weir__pending c = *pc;
  *pc = p->ext->calls[--p->ext->ncalls];
  if (why != 2 && weir__current_ctx()) weir_demonitor(weir__current_ctx(), ref);
  if (why != 1 && c.timer) weir__timer_cancel(p->rt, c.timer);
  return true;
}

int weir_call_async(weir_ctx *cx, weir_pid pid, uint32_t tag, const void *data,
                    uint32_t len, int timeout_ms, weir_ref *ref) {
  if (!cx || (len && !data) || tag >= WEIR_TAG_SYSTEM) return WEIR_EINVAL;
  WEIR__ASSERT(weir__current_ctx() == cx); /* from its own callback */
  weir__proc *p = cx->p;
  weir_rt *rt = p->rt;
  weir_ref r;
  int rc = weir_monitor(cx, pid, &r);
  if (rc) return rc;
  rc = pending_add(p, r, pid);
  if (rc) {
    weir_demonitor(cx, r);
    return rc;
  }
  weir_pid self = weir__proc_pid(p);
  /* The timeout is armed before the call goes out: a call whose timer
     could not be set must fail now, not wait forever. */
  if (timeout_ms >= 0) {
    weir__msg *t = weir__msg_new(WEIR__K_TIMEOUT, 0, sizeof(weir_ref));
    weir_ref tref = weir__new_ref(rt);
    rc = WEIR_ENOMEM;
    if (t) {
      memcpy(weir__msg_data(t), &r, sizeof r);
      t->flags |= WEIR__MF_NOBOUND;
      rc = weir__timer_add(rt,
                           weir__now_ns() + (uint64_t)timeout_ms * 1000000ull,
                           self, t, tref); /* frees t on failure */
    }
    if (rc != WEIR_OK) {
      weir__pending_take(p, r, 0);
      return rc;
    }
    weir__pending *pc = pending_find(p, r);
    if (pc) pc->timer = tref;
  }
  weir_from from = {self.id, r};
  weir__msg *m = build(WEIR__K_CALL, tag, &from, sizeof from, data, len);
  rc = m ? weir__deliver(rt, pid, m) : WEIR_ENOMEM;
  if (rc != WEIR_OK && rc != WEIR_ENOPROC) {
    /* ENOPROC is reported by the monitor's DOWN; anything else now (this
       also cancels the timer). */
    weir__pending_take(p, r, 0);
    return rc;
  }
  if (ref) *ref = r;
  return WEIR_OK;
}

/* ---- replies ---------------------------------------------------------- */

int weir__reply_to(weir_rt *rt, weir_pid self, weir_from from, const void *d,
                   uint32_t len) {
  (void)self;
  if (from.a == 0) return waiter_finish(rt, from, d, len, WEIR_OK);
  weir_ref ref = from.b;
  weir__msg *m = build(WEIR__K_REPLY, 0, &ref, sizeof ref, d, len);
  if (!m) return WEIR_ENOMEM;
  m->flags |= WEIR__MF_NOBOUND;
  return weir__deliver(rt, (weir_pid){from.a}, m);
}

void weir__call_fail(weir_rt *rt, weir_from from, int err) {
  if (from.a == 0) {
    waiter_finish(rt, from, NULL, 0, err);
    return;
  }
  /* A process caller: a DOWN with the call's ref (its monitor's ref). */
  weir__signal(rt, WEIR_PID_NONE, (weir_pid){from.a}, WEIR__K_DOWN, from.b, 0,
               err);
}

int weir_reply(weir_ctx *cx, weir_from from, const void *data, uint32_t len) {
  if (!cx || (len && !data)) return WEIR_EINVAL;
  return weir__reply_to(cx->p->rt, weir__proc_pid(cx->p), from, data, len);
}

int weir_reply_rt(weir_rt *rt, weir_from from, const void *data, uint32_t len) {
  if (!rt || (len && !data)) return WEIR_EINVAL;
  return weir__reply_to(rt, WEIR_PID_NONE, from, data, len);
}

/* ---- running a function inside a process ------------------------------ */

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
  void (*fn)(weir_ctx *, void *);
  void *arg;
} run_in_req;

static void run_in_cb(weir_ctx *cx, void *a) {
  run_in_req *r = a;
  r->fn(cx, r->arg);
  weir__lock(&r->mu, WEIR__LK_RUN_IN);
  r->done = 1;
  pthread_cond_signal(&r->cv);
  weir__unlock(&r->mu, WEIR__LK_RUN_IN);
}

int weir__run_in(weir_rt *rt, weir_pid pid, void (*fn)(weir_ctx *, void *),
                 void *arg) {
  weir_ctx *cx = weir__current_ctx();
  if (cx && cx->p->rt == rt && weir_pid_eq(weir__proc_pid(cx->p), pid)) {
    fn(cx, arg);
    return WEIR_OK;
  }
  if (weir__on_scheduler()) return WEIR_EDEADLK;
  run_in_req r = {.done = 0, .fn = fn, .arg = arg};
  pthread_mutex_init(&r.mu, NULL);
  pthread_cond_init(&r.cv, NULL);
  int rc = weir__syscall_send(rt, pid, run_in_cb, &r);
  if (rc == WEIR_OK) {
    weir__lock(&r.mu, WEIR__LK_RUN_IN);
    while (!r.done)
      pthread_cond_wait(&r.cv, &r.mu);
    weir__unlock(&r.mu, WEIR__LK_RUN_IN);
  }
  pthread_cond_destroy(&r.cv);
  pthread_mutex_destroy(&r.mu);
  return rc;
}
