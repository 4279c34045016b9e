/*
 * partsup.c: the partition supervisor (Elixir's PartitionSupervisor).
 *
 * A supervisor (sup.c) whose children are N copies of one child spec, plus
 * a routing table the senders read without a lock: the table holds the slot
 * of each partition's worker. Because workers keep their mailbox across
 * restarts (same slot, next generation), the table does not change when a
 * worker crashes: messages routed during the restart queue in the held slot
 * and the next incarnation handles them in order. A route costs one table
 * read and key % n (integer keys; a mask when n is a power of two) or XXH3
 * of the key bytes.
 *
 * Resize keeps per-key order. The new table is published with the next
 * epoch; every routed message carries its epoch. A worker that pops a message
 * of the new epoch before the resize is done defers it (in order) and goes on
 * with the old-epoch messages. The resizer waits out routers still using the
 * old table (each router marks itself busy in a per-thread record; a
 * membarrier, or a fence on the router side where membarrier is missing,
 * makes the marks visible), then sends a barrier through every old
 * partition. When the last old partition has handled its barrier, every
 * message routed with the old table is handled; the resize is done and the
 * deferred messages run. So a key that moves is drained from its old
 * partition before its new partition handles anything of it.
 *
 * Hot keys: one sampled cast in 16 updates a Space-Saving sketch of 8
 * counters per partition, under a try-lock that a busy sampler skips.
 */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define HOT_K      8
#define HOT_SAMPLE 16

typedef struct route_tab {
  unsigned n;
  unsigned mask; /* n - 1 when n is a power of two (key % n is key & mask,
                    no division on the routing path), else 0 */
  uint8_t epoch;
  struct route_tab *older; /* retired tables, freed with the partsup */
  _Atomic(weir__proc *) slot[];
} route_tab;

typedef struct hot_sketch {
  _Atomic int lock;
  weir_hot_key k[HOT_K];
} hot_sketch;

typedef struct hot_arr { /* replaced whole on growth; old ones retired */
  unsigned cap;
  hot_sketch s[];
} hot_arr;

struct weir__partsup {
  _Atomic(route_tab *) tab;
  /* A table being filled by a resize: a restart writes its slot there
     too. Freed only with the partsup (a restart may still hold it). */
  _Atomic(route_tab *) pending;
  /* The resize in progress: (epoch << 32) | old partitions still to drain.
     One word, so a worker never sees the count of one resize with the
     epoch of another. */
  _Atomic uint64_t resize_state;
  _Atomic int flush_left; /* second round: deferred messages all run */
  weir__proc *self;       /* the supervisor's slot */
  _Atomic(void *) sup;    /* its weir__sup while it runs */
  void *(*with_arguments)(void *arg, unsigned partition);
  pthread_mutex_t resize_mu;
  _Atomic(hot_arr *) hot;
  weir_rt *rt;
};

/* ---- memory on lines of its own ----------------------------------------

   What every route reads (the partsup, its table) and what routers write
   (their records, the hot-key sketches) each get whole cache lines: a
   small calloc shares its line with whatever malloc put beside it, and the
   table sat next to the sketches, whose lock a router writes every
   HOT_SAMPLE routes, so the other core's next route missed on it. */
static void *calloc_lines(size_t n) {
  size_t size = (n + WEIR__CACHELINE - 1) / WEIR__CACHELINE * WEIR__CACHELINE;
  char *raw = weir__calloc(1, size + WEIR__CACHELINE);
  if (!raw) return NULL;
  /* the raw pointer sits in the padding just before the aligned block */
  char *p = (char *)(((uintptr_t)raw + sizeof(void *) + WEIR__CACHELINE - 1) &
                     ~(uintptr_t)(WEIR__CACHELINE - 1));
  memcpy(p - sizeof(void *), &raw, sizeof raw);
  return p;
}

static void free_lines(void *p) {
  if (!p) return;
  void *raw;
  memcpy(&raw, (char *)p - sizeof(void *), sizeof raw);
  weir__free(raw);
}

/* ---- router records (who is routing right now) ------------------------ */

typedef struct router_rec {
  _Atomic uint64_t seq; /* odd while routing */
  struct router_rec *next;
} router_rec;

static pthread_mutex_t g_routers_mu = PTHREAD_MUTEX_INITIALIZER;
static router_rec *g_routers;
static int g_router_users;            /* live runtimes, under g_routers_mu */
static _Atomic uint32_t g_router_gen; /* bumped when the records are freed */
static WEIR__TLS router_rec *tl_router;
static WEIR__TLS uint32_t tl_router_gen;
static WEIR__TLS uint32_t tl_sample;
static router_rec *router_me(void) {
  /* relaxed: the generation moves only while no runtime lives, so no
     routing can race with it (weir__partsup_stop) */
  uint32_t gen = atomic_load_explicit(&g_router_gen, memory_order_relaxed);
  if (WEIR__LIKELY(tl_router != NULL && tl_router_gen == gen)) return tl_router;
  /* One record per thread that routed while runtimes lived; a thread that
     exits leaves an even seq. They are freed when the last runtime stops
     (a thread's cached record is then stale by its generation). */
  router_rec *r = calloc_lines(sizeof *r);
  if (!r) return NULL;
  weir__lock(&g_routers_mu, WEIR__LK_ROUTERS);
  r->next = g_routers;
  g_routers = r;
  weir__unlock(&g_routers_mu, WEIR__LK_ROUTERS);
  tl_router = r;
  tl_router_gen = gen;
  return r;
}

static inline void router_enter(router_rec *r) {
  uint64_t s = atomic_load_explicit(&r->seq, memory_order_relaxed);
  atomic_store_explicit(&r->seq, s + 1, memory_order_relaxed);
  /* Orders this store before our table load: the light half of an
     asymmetric pair (base.h) whose heavy half is routers_quiesce's. */
  weir__fence_light();
}

static inline void router_exit(router_rec *r) {
  uint64_t s = atomic_load_explicit(&r->seq, memory_order_relaxed);
  /* release: our push is complete before the resizer sees us leave */
  atomic_store_explicit(&r->seq, s + 1, memory_order_release);
}

static void router_release(void *r) {
  router_exit(r);
}

/* Waits until every router that could have read the old table is done (a
   router on a scheduler thread is done once its outbox is flushed). */
static void routers_quiesce(void) {
  weir__fence_heavy(); /* pairs with router_enter's light fence */
  weir__lock(&g_routers_mu, WEIR__LK_ROUTERS);
  for (router_rec *r = g_routers; r; r = r->next) {
    uint64_t s = atomic_load_explicit(&r->seq, memory_order_acquire);
    if (s & 1u)
      while (atomic_load_explicit(&r->seq, memory_order_acquire) == s)
        sched_yield();
  }
  weir__unlock(&g_routers_mu, WEIR__LK_ROUTERS);
}

/* ---- table ------------------------------------------------------------ */

static route_tab *tab_new(unsigned n, uint8_t epoch) {
  route_tab *t = calloc_lines(sizeof *t + n * sizeof(t->slot[0]));
  if (!t) return NULL;
  t->n = n;
  t->mask = (n & (n - 1)) == 0 ? n - 1 : 0;
  t->epoch = epoch;
  return t;
}

/* key % t->n, without a division when n is a power of two. */
static inline unsigned tab_part(const route_tab *t, uint64_t key) {
  if (t->mask || t->n == 1) return (unsigned)(key & t->mask);
  return (unsigned)(key % t->n);
}

/* Has every partition of t a slot? (WEIR__ASSERT: a grown table is
   published only once its new workers have filled it.) */
static inline bool tab_full(route_tab *t) {
  for (unsigned i = 0; i < t->n; i++)
    if (!atomic_load_explicit(&t->slot[i], memory_order_relaxed)) return false;
  return true;
}

static void partsup_free(void *arg) {
  weir__partsup *ps = arg;
  /* relaxed, both: the node stops, nothing routes or resizes */
  route_tab *t = atomic_load_explicit(&ps->tab, memory_order_relaxed);
  while (t) {
    route_tab *o = t->older;
    free_lines(t);
    t = o;
  }
  free_lines(atomic_load_explicit(&ps->hot, memory_order_relaxed));
  pthread_mutex_destroy(&ps->resize_mu);
  free_lines(ps);
}

/* ---- the partition supervisor's part in its supervisor (sup.h) ------- */

static void *ops_child_arg(void *ctx, void *arg, unsigned partition) {
  weir__partsup *ps = ctx;
  return ps->with_arguments ? ps->with_arguments(arg, partition) : arg;
}

/* Called by the supervisor when partition i (re)starts in `slot`. */
static void ops_set_slot(void *ctx, unsigned i, weir__proc *slot) {
  weir__partsup *ps = ctx;
  /* the supervisor (ps->self) starts its children in its own run */
  WEIR__ASSERT(weir__current_ctx() && weir__current_ctx()->p == ps->self);
  route_tab *t = atomic_load_explicit(&ps->tab, memory_order_acquire);
  /* release: the slot's incarnation is set up before routers use it */
  if (i < t->n) atomic_store_explicit(&t->slot[i], slot, memory_order_release);
  route_tab *pt = atomic_load_explicit(&ps->pending, memory_order_acquire);
  if (pt && i < pt->n)
    atomic_store_explicit(&pt->slot[i], slot, memory_order_release);
}

static void ops_bind(void *ctx, weir__proc *self, void *sup) {
  weir__partsup *ps = ctx;
  ps->self = self;
  atomic_store_explicit(&ps->sup, sup, memory_order_release);
}

static void ops_unbind(void *ctx) {
  weir__partsup *ps = ctx;
  atomic_store_explicit(&ps->sup, NULL, memory_order_release);
}

static const weir__sup_ops partsup_ops = {ops_child_arg, ops_set_slot, ops_bind,
                                          ops_unbind};

void weir_partsup_opts_init(weir_partsup_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  weir_child_spec_init(&o->child, "partition", NULL, NULL);
  o->strategy = WEIR_ONE_FOR_ONE;
  o->max_restarts = 3;
  o->max_seconds = 5;
}

int weir_partsup_start(weir_rt *rt, const weir_partsup_opts *o, weir_pid *pid) {
  if (!rt || !o || !o->child.server) return WEIR_EINVAL;
  if (o->name && strlen(o->name) >= 64) return WEIR_EINVAL;
  unsigned n = o->partitions ? o->partitions : rt->nscheds;
  if (n == 0 || n > 65536) return WEIR_EINVAL;
  if (o->strategy > WEIR_REST_FOR_ONE || o->max_restarts < 0 ||
      o->max_seconds <= 0 || o->child.restart > WEIR_TEMPORARY)
    return WEIR_EINVAL;
  weir__partsup *ps = calloc_lines(sizeof *ps);
  route_tab *t = tab_new(n, 0);
  hot_arr *hot = calloc_lines(sizeof *hot + n * sizeof(hot_sketch));
  weir_child_spec *specs = weir__calloc(n, sizeof *specs);
  char *ids = weir__calloc(n, 32);
  int rc = WEIR_ENOMEM;
  if (ps) pthread_mutex_init(&ps->resize_mu, NULL); /* fail: destroys it */
  if (!ps || !t || !hot || !specs || !ids) goto fail;
  ps->rt = rt;
  ps->with_arguments = o->with_arguments;
  hot->cap = n;
  /* relaxed: not yet shared. Routers find ps through the supervisor's
     slot (its route field), published by the spawn's release store of
     gen, which comes after these. */
  atomic_store_explicit(&ps->hot, hot, memory_order_relaxed);
  atomic_store_explicit(&ps->tab, t, memory_order_relaxed);
  for (unsigned i = 0; i < n; i++) {
    specs[i] = o->child;
    snprintf(ids + i * 32, 32, "partition-%u", i);
    specs[i].id = ids + i * 32;
    specs[i].opts.name = NULL; /* N workers cannot share one name */
  }
  weir_sup_opts so;
  weir_sup_opts_init(&so);
  so.name = o->name;
  so.strategy = o->strategy;
  so.max_restarts = o->max_restarts;
  so.max_seconds = o->max_seconds;
  weir__sup_def *d = weir__sup_def_new(&so, specs, n);
  if (!d) goto fail;
  /* The partsup outlives its process: routers may still hold it. */
  rc = weir__retire(rt, ps, partsup_free);
  if (rc) {
    weir__sup_def_free(d);
    goto fail;
  }
  weir__partsup *owned = ps;
  ps = NULL;
  t = NULL;
  hot = NULL;
  d->ops = &partsup_ops;
  d->ops_ctx = owned;
  rc = weir__sup_start_def(rt, d, owned, pid);
  weir__sup_def_free(d);
  weir__free(specs);
  weir__free(ids);
  return rc;
fail:
  if (ps) pthread_mutex_destroy(&ps->resize_mu);
  free_lines(ps);
  free_lines(t);
  free_lines(hot);
  weir__free(specs);
  weir__free(ids);
  return rc;
}

/* The partsup behind pid, or NULL. */
static weir__partsup *ps_of(weir_rt *rt, weir_pid ps_pid) {
  weir__proc *p = weir__proc_get(rt, ps_pid);
  if (!p) return NULL;
  weir__partsup *ps = WEIR__LD(p->route);
  if (!ps || ps->self != p) return NULL;
  return ps;
}

static void hot_record(weir__partsup *ps, unsigned part, uint64_t key) {
  hot_arr *ha = atomic_load_explicit(&ps->hot, memory_order_acquire);
  if (part >= ha->cap) return;
  hot_sketch *h = &ha->s[part];
  int free_ = 0;
  if (!atomic_compare_exchange_strong_explicit(
          &h->lock, &free_, 1, memory_order_acquire, memory_order_relaxed))
    return; /* busy: skip this sample */
  int min = 0;
  for (int i = 0; i < HOT_K; i++) {
    if (h->k[i].count && h->k[i].key == key) {
      h->k[i].count += HOT_SAMPLE;
      goto out;
    }
    if (h->k[i].count < h->k[min].count) min = i;
  }
  /* Space-Saving: replace the smallest counter, inheriting its count */
  h->k[min].key = key;
  h->k[min].count += HOT_SAMPLE;
out:
  atomic_store_explicit(&h->lock, 0, memory_order_release);
}

static int route(weir_rt *rt, weir_pid ps_pid, uint64_t key, bool hashed,
                 weir__msg *m) {
  weir__partsup *ps = ps_of(rt, ps_pid);
  if (!ps) {
    weir__msg_free(m);
    return weir__proc_get(rt, ps_pid) ? WEIR_EINVAL : WEIR_ENOPROC;
  }
  router_rec *r = router_me();
  if (!r) {
    weir__msg_free(m);
    return WEIR_ENOMEM;
  }
  /* A cast routed earlier in this callback may still wait in the outbox
     (proc.h), holding the mark: this one routes under it too. */
  bool held = weir__tl_ob.held == r;
  if (!held) router_enter(r);
  route_tab *t = atomic_load_explicit(&ps->tab, memory_order_acquire);
  unsigned part = tab_part(t, key);
  weir__proc *slot = atomic_load_explicit(&t->slot[part], memory_order_acquire);
  m->flags |= (uint16_t)(WEIR__MF_ROUTED | ((unsigned)t->epoch << 8));
  int rc = slot ? weir__deliver_slot(rt, slot, ps, m) : WEIR_ENOPROC;
  if (!slot) weir__msg_free(m);
  /* A message that waits in the outbox is not pushed yet: the mark stays
     until the outbox flushes, so a resize waits for it (routers_quiesce) */
  if (!weir__outbox_hold(r, router_release)) router_exit(r);
  if (WEIR__UNLIKELY(++tl_sample % HOT_SAMPLE == 0)) hot_record(ps, part, key);
  (void)hashed;
  return rc;
}

static weir__msg *cast_msg(uint32_t tag, const void *data, uint32_t len) {
  weir__msg *m = weir__msg_new(WEIR__K_CAST, tag, len);
  if (!m) return NULL;
  if (len) weir__copy(weir__msg_data(m), data, len);
  weir_ctx *cx = weir__current_ctx();
  if (cx) m->from = cx->self;
  return m;
}

int weir_partition_cast(weir_rt *rt, weir_pid ps, uint64_t key, uint32_t tag,
                        const void *data, uint32_t len) {
  if (!rt || (len && !data) || tag >= WEIR_TAG_SYSTEM) return WEIR_EINVAL;
  weir__msg *m = cast_msg(tag, data, len);
  if (!m) return WEIR_ENOMEM;
  return route(rt, ps, key, false, m);
}

int weir_partition_cast_bytes(weir_rt *rt, weir_pid ps, const void *key,
                              size_t keylen, uint32_t tag, const void *data,
                              uint32_t len) {
  if (!rt || (keylen && !key) || (len && !data) || tag >= WEIR_TAG_SYSTEM)
    return WEIR_EINVAL;
  uint64_t h = XXH3_64bits(key, keylen);
  weir__msg *m = cast_msg(tag, data, len);
  if (!m) return WEIR_ENOMEM;
  return route(rt, ps, h, true, m);
}

int weir_partition_whereis(weir_rt *rt, weir_pid ps_pid, uint64_t key,
                           weir_pid *pid) {
  if (!rt || !pid) return WEIR_EINVAL;
  weir__partsup *ps = ps_of(rt, ps_pid);
  if (!ps) return weir__proc_get(rt, ps_pid) ? WEIR_EINVAL : WEIR_ENOPROC;
  route_tab *t = atomic_load_explicit(&ps->tab, memory_order_acquire);
  weir__proc *slot =
      atomic_load_explicit(&t->slot[tab_part(t, key)], memory_order_acquire);
  /* acquire, as weir__deliver_slot: pairs with the exit's release stores
     of life. A LIVE that ends right after costs the caller an ENOPROC,
     as it would a moment later anyway. */
  if (!slot ||
      atomic_load_explicit(&slot->life, memory_order_acquire) != WEIR__P_LIVE)
    return WEIR_ENOPROC;
  *pid = weir__proc_pid(slot);
  return WEIR_OK;
}

int weir_partition_call(weir_rt *rt, weir_pid ps, uint64_t key, uint32_t tag,
                        const void *data, uint32_t len, void *reply,
                        uint32_t *reply_len, int timeout_ms) {
  weir_pid w;
  int rc = weir_partition_whereis(rt, ps, key, &w);
  if (rc) return rc;
  /* A call is a request/reply: ordering with casts of the same key holds
     because it goes to the same worker's mailbox. */
  return weir_call(rt, w, tag, data, len, reply, reply_len, timeout_ms);
}

int weir_partitions(weir_rt *rt, weir_pid ps_pid) {
  if (!rt) return WEIR_EINVAL;
  weir__partsup *ps = ps_of(rt, ps_pid);
  if (!ps) return weir__proc_get(rt, ps_pid) ? WEIR_EINVAL : WEIR_ENOPROC;
  route_tab *t = atomic_load_explicit(&ps->tab, memory_order_acquire);
  return (int)t->n;
}

static int by_count_desc(const void *a, const void *b) {
  const weir_hot_key *x = a, *y = b;
  return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

int weir_partition_hot_keys(weir_rt *rt, weir_pid ps_pid, unsigned partition,
                            weir_hot_key *out, size_t n, size_t *count) {
  if (!rt || (n && !out)) return WEIR_EINVAL;
  weir__partsup *ps = ps_of(rt, ps_pid);
  if (!ps) return weir__proc_get(rt, ps_pid) ? WEIR_EINVAL : WEIR_ENOPROC;
  hot_arr *ha = atomic_load_explicit(&ps->hot, memory_order_acquire);
  if (partition >= ha->cap) return WEIR_EINVAL;
  hot_sketch *h = &ha->s[partition];
  weir_hot_key tmp[HOT_K];
  int free_ = 0;
  while (!atomic_compare_exchange_weak_explicit(
      &h->lock, &free_, 1, memory_order_acquire, memory_order_relaxed)) {
    free_ = 0;
    weir__cpu_relax();
  }
  memcpy(tmp, h->k, sizeof tmp);
  atomic_store_explicit(&h->lock, 0, memory_order_release);
  qsort(tmp, HOT_K, sizeof tmp[0], by_count_desc);
  size_t k = 0;
  for (int i = 0; i < HOT_K && tmp[i].count; i++) {
    if (k < n) out[k] = tmp[i];
    k++;
  }
  if (count) *count = k < n ? k : n;
  return WEIR_OK;
}

/* ---- the worker side of a resize -------------------------------------- */

/* Called by a worker for each routed message: true = handle it now, false =
   it belongs to the resize in progress (the caller defers it). Resizes are
   serialized and each ends only when no worker holds a deferred message, so
   a message of any other epoch is older and runs at once. */
static bool route_admit(weir__proc *p, const weir__msg *m) {
  WEIR__ASSERT(weir__current_ctx() && weir__current_ctx()->p == p);
  weir__partsup *ps = p->route;
  uint64_t st = atomic_load_explicit(&ps->resize_state, memory_order_acquire);
  uint8_t e = (uint8_t)(m->flags >> 8);
  if (e != (uint8_t)(st >> 32)) return true; /* older: runs at once */
  /* Of the latest resize: waits while it is in progress, and also while
     this worker still holds earlier ones of it (the resize may have
     completed between the run loop's undefer check and this pop: they go
     first, at the loop's next turn). */
  return (uint32_t)st == 0 && p->x->defer_head == NULL;
}

static bool route_done(weir__proc *p) {
  WEIR__ASSERT(weir__current_ctx() && weir__current_ctx()->p == p);
  weir__partsup *ps = p->route;
  return (uint32_t)atomic_load_explicit(&ps->resize_state,
                                        memory_order_acquire) == 0;
}

int weir__partsup_start(weir_rt *rt) {
  rt->hooks.route_admit = route_admit;
  rt->hooks.route_done = route_done;
  weir__lock(&g_routers_mu, WEIR__LK_ROUTERS);
  g_router_users++;
  weir__unlock(&g_routers_mu, WEIR__LK_ROUTERS);
  return WEIR_OK;
}

void weir__partsup_stop(weir_rt *rt) {
  (void)rt;
  weir__lock(&g_routers_mu, WEIR__LK_ROUTERS);
  if (--g_router_users == 0) {
    router_rec *r = g_routers;
    g_routers = NULL;
    /* relaxed: nothing routes with no runtime alive (see router_me) */
    atomic_fetch_add_explicit(&g_router_gen, 1, memory_order_relaxed);
    while (r) {
      router_rec *n = r->next;
      free_lines(r);
      r = n;
    }
  }
  weir__unlock(&g_routers_mu, WEIR__LK_ROUTERS);
}

/* A barrier handled by an old partition: everything routed to it with the
   old table is done. */
static void barrier_cb(weir_ctx *cx, void *arg) {
  weir__partsup *ps = arg;
  (void)cx;
  uint64_t was =
      atomic_fetch_sub_explicit(&ps->resize_state, 1, memory_order_acq_rel);
  WEIR__ASSERT((uint32_t)was > 0); /* one barrier per old partition */
  (void)was;
}

/* Handled by a partition after the resize completed: its deferred messages
   (undeferred at the top of its run loop) ran before this. */
static void flush_cb(weir_ctx *cx, void *arg) {
  weir__partsup *ps = arg;
  (void)cx;
  int was = atomic_fetch_sub_explicit(&ps->flush_left, 1, memory_order_acq_rel);
  WEIR__ASSERT(was > 0); /* one flush per partition of the new table */
  (void)was;
}

/* Sends a runtime call (fn) through every slot of t; a slot that is gone
   counts as done at once. */
static void through_all(weir_rt *rt, weir__partsup *ps, route_tab *t,
                        unsigned n, void (*fn)(weir_ctx *, void *)) {
  WEIR__ASSERT(weir__lock_held(&ps->resize_mu)); /* resizes are serialized */
  for (unsigned i = 0; i < n; i++) {
    /* acquire, as route(): pairs with ops_set_slot's release store */
    weir__proc *slot = atomic_load_explicit(&t->slot[i], memory_order_acquire);
    weir__msg *b = weir__msg_new(WEIR__K_SYSCALL, 0, sizeof(weir__syscall));
    int rc = WEIR_ENOMEM;
    if (b) {
      weir__syscall sc = {fn, ps};
      memcpy(weir__msg_data(b), &sc, sizeof sc);
      b->flags |= WEIR__MF_NOBOUND;
      if (slot) {
        rc = weir__deliver_slot(rt, slot, ps, b);
      } else {
        weir__msg_free(b);
        rc = WEIR_ENOPROC;
      }
    }
    if (rc != WEIR_OK) fn(NULL, ps); /* gone: nothing to drain there */
  }
}

int weir_partsup_resize(weir_rt *rt, weir_pid ps_pid, unsigned n) {
  if (!rt || n == 0 || n > 65536) return WEIR_EINVAL;
  if (weir__on_scheduler()) return WEIR_EDEADLK;
  weir__partsup *ps = ps_of(rt, ps_pid);
  if (!ps) return weir__proc_get(rt, ps_pid) ? WEIR_EINVAL : WEIR_ENOPROC;
  weir__lock(&ps->resize_mu, WEIR__LK_RESIZE);
  route_tab *old = atomic_load_explicit(&ps->tab, memory_order_acquire);
  int rc = WEIR_OK;
  if (n == old->n) goto out;
  /* relaxed: after start only a resize stores it, under resize_mu, which
     we hold */
  hot_arr *ha = atomic_load_explicit(&ps->hot, memory_order_relaxed);
  if (n > ha->cap) {
    /* Samplers read the sketches lock-free: grow into a new array and
       retire the old one with the node. Counts restart from zero. */
    hot_arr *nh = calloc_lines(sizeof *nh + n * sizeof(hot_sketch));
    if (!nh) {
      rc = WEIR_ENOMEM;
      goto out;
    }
    nh->cap = n;
    rc = weir__retire(rt, ha, free_lines);
    if (rc) {
      free_lines(nh);
      goto out;
    }
    atomic_store_explicit(&ps->hot, nh, memory_order_release);
  }
  route_tab *t = tab_new(n, (uint8_t)(old->epoch + 1));
  if (!t) {
    rc = WEIR_ENOMEM;
    goto out;
  }
  /* acquire on the old entry: pairs with a restart's release store in
     ops_set_slot; relaxed on the new one: t is published to routers by
     the release of pending and the seq_cst store of tab below, which
     carry what we acquired here */
  for (unsigned i = 0; i < n && i < old->n; i++)
    atomic_store_explicit(
        &t->slot[i], atomic_load_explicit(&old->slot[i], memory_order_acquire),
        memory_order_relaxed);
  /* A restart during the resize writes its slot into `pending` too. */
  atomic_store_explicit(&ps->pending, t, memory_order_release);
  if (n > old->n) {
    /* New workers start before the table is published (they fill
       `pending`), so no route ever finds an empty entry. */
    rc = weir__sup_resize_children(rt, ps_pid, n);
    WEIR__ASSERT(rc != WEIR_OK || tab_full(t));
    if (rc != WEIR_OK) {
      atomic_store_explicit(&ps->pending, NULL, memory_order_release);
      /* a restart may still be writing into t: free it with the node */
      if (weir__retire(rt, t, free_lines) != WEIR_OK) {
        /* cannot defer the free: leak it rather than risk a write into
           freed memory (only after an allocation failure) */
      }
      goto out;
    }
  }
  t->older = old;
  atomic_store_explicit(&ps->resize_state, ((uint64_t)t->epoch << 32) | old->n,
                        memory_order_seq_cst);
  atomic_store_explicit(&ps->tab, t, memory_order_seq_cst);
  atomic_store_explicit(&ps->pending, NULL, memory_order_release);
  routers_quiesce();
  /* Every message routed with the old table is now queued: a barrier
     behind them in each old partition. */
  through_all(rt, ps, old, old->n, barrier_cb);
  while ((uint32_t)atomic_load_explicit(&ps->resize_state,
                                        memory_order_acquire) > 0)
    weir__sleep_ms(1);
  /* Done: deferred messages may run. Before the next resize may start,
     make sure they have (a second round through the new table). */
  atomic_store_explicit(&ps->flush_left, (int)t->n, memory_order_release);
  through_all(rt, ps, t, t->n, flush_cb);
  while (atomic_load_explicit(&ps->flush_left, memory_order_acquire) > 0)
    weir__sleep_ms(1);
  if (n < old->n) {
    /* The smaller table is live: the surplus workers must go. Asking the
       supervisor takes one small allocation; under memory pressure keep
       asking (for up to ~10 s) rather than leave them running unrouted. */
    for (int tries = 0; tries < 1000; tries++) {
      rc = weir__sup_resize_children(rt, ps_pid, n);
      if (rc != WEIR_ENOMEM) break;
      weir__sleep_ms(1);
      weir__sleep_ms(1);
    }
  }
out:
  weir__unlock(&ps->resize_mu, WEIR__LK_RESIZE);
  return rc;
}
