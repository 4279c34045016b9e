/*
 * alloc.c: the one door for memory, and the pools messages and process slots
 * come from.
 *
 * Every allocation in libweir goes through weir__malloc/weir__free, which
 * call the replaceable weir_allocator (malloc by default), can be made to fail
 * on purpose (weir__alloc_fail_nth) and are counted.
 *
 * Small objects of the hot path (messages, slots) come from size-class pools.
 * Each thread keeps a free list per class, with no synchronisation. A message
 * is usually allocated by its sender and freed by its receiver, so free lists
 * drift between threads: a thread whose list passes WEIR__POOL_HIGH objects
 * hands a batch of WEIR__POOL_BATCH to a shared per-class stack (one mutex
 * acquisition per batch), and a thread whose list is empty takes a batch from
 * there before it reserves a run of fresh objects from a slab, which it then
 * hands out in address order. The lock covers pointer moves only: a slab's
 * malloc and the page faults of its first touch happen outside it (a fan-in
 * whose backlog grows the pools used to sleep on this mutex behind a page
 * fault: 14 K context switches a second). Objects carry no header: the
 * caller passes the size back to weir__pool_free, which maps it to the same
 * class.
 *
 * Slabs live until the last runtime stops; then they are freed all at once
 * and an epoch bump makes every thread drop its (now dangling) free lists.
 */
#include "internal.h"

#include <stdlib.h>
#include <time.h>

static void *default_malloc(size_t n, void *ud) {
  (void)ud;
  return malloc(n);
}
static void *default_realloc(void *p, size_t n, void *ud) {
  (void)ud;
  return realloc(p, n);
}
static void default_free(void *p, void *ud) {
  (void)ud;
  free(p);
}

static weir_allocator g_alloc = {default_malloc, default_realloc, default_free,
                                 NULL};
/* Relaxed is enough for the counters: they order nothing, tests read them
   after joining the threads that allocate. */
static _Atomic uint64_t g_alloc_count;
static _Atomic uint64_t g_fail_at; /* allocation number that fails; 0 none */
static _Atomic int g_runtimes;

int weir_set_allocator(const weir_allocator *a) {
  if (!a || !a->malloc || !a->free) return WEIR_EINVAL;
  /* relaxed: a check for misuse. weir.h asks for this call before the
     first runtime starts, with no other thread in libweir: nothing may
     race it, so no order could make a racing start safe. */
  if (atomic_load_explicit(&g_runtimes, memory_order_relaxed) > 0)
    return WEIR_EINVAL;
  g_alloc = *a;
  return WEIR_OK;
}

/* Counting every allocation would put one shared atomic on every message
   (the senders of a fan-in would fight over its cache line), so the count
   runs only once a test has asked for it: the first call to
   weir__alloc_count or weir__alloc_fail_nth turns it on for good. */
static _Atomic int g_counting;

/* The stores below are relaxed: their one reader, should_fail, loads them
   relaxed, so a stronger store would order nothing for it; the test then
   starts the work that allocates (a spawn, a send), and that work's own
   synchronisation carries the values to the threads that do it. */
void weir__alloc_fail_nth(uint64_t n) {
  atomic_store_explicit(&g_counting, 1, memory_order_relaxed);
  uint64_t now = atomic_load_explicit(&g_alloc_count, memory_order_relaxed);
  atomic_store_explicit(&g_fail_at, n ? now + n : 0, memory_order_relaxed);
}

uint64_t weir__alloc_count(void) {
  atomic_store_explicit(&g_counting, 1, memory_order_relaxed); /* as above */
  return atomic_load_explicit(&g_alloc_count, memory_order_relaxed);
}

static inline bool should_fail(void) {
  if (WEIR__LIKELY(!atomic_load_explicit(&g_counting, memory_order_relaxed)))
    return false;
  uint64_t k =
      atomic_fetch_add_explicit(&g_alloc_count, 1, memory_order_relaxed) + 1;
  uint64_t f = atomic_load_explicit(&g_fail_at, memory_order_relaxed);
  return WEIR__UNLIKELY(f != 0 && k == f);
}

void *weir__malloc(size_t n) {
  if (should_fail()) return NULL;
  return g_alloc.malloc(n ? n : 1, g_alloc.ud);
}

void *weir__calloc(size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) return NULL;
  if (g_alloc.malloc == default_malloc) {
    /* libc's calloc: fresh pages stay untouched until used (the slot
       table of a node with a high process limit) */
    if (should_fail()) return NULL;
    return calloc(n ? n : 1, size ? size : 1);
  }
  void *p = weir__malloc(n * size);
  if (p) memset(p, 0, n * size);
  return p;
}

void *weir__realloc(void *p, size_t n) {
  if (should_fail()) return NULL;
  if (g_alloc.realloc) return g_alloc.realloc(p, n ? n : 1, g_alloc.ud);
  return NULL; /* an allocator without realloc: use weir__grow */
}

void *weir__grow(void *p, size_t old, size_t n) {
  if (g_alloc.realloc || !p) return p ? weir__realloc(p, n) : weir__malloc(n);
  void *q = weir__malloc(n);
  if (!q) return NULL;
  memcpy(q, p, old < n ? old : n);
  weir__free(p);
  return q;
}

void weir__free(void *p) {
  if (p) g_alloc.free(p, g_alloc.ud);
}

char *weir__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = weir__malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* ---- pools ------------------------------------------------------------ */

#define WEIR__NCLASS     15
#define WEIR__POOL_HIGH  1024
#define WEIR__POOL_BATCH 256
/* A slab is malloc'ed: 256 KiB less a little, so that with malloc's own
   header it fills 64 pages of an mmap (a full 256 KiB request took 65, and
   that page was 1.6 % of every queued message) */
#define WEIR__SLAB_BYTES (256u * 1024u - 64u)

static const uint32_t class_size[WEIR__NCLASS] = {
    48, 64, 80, 96, 128, 160, 192, 208, 256, 320, 384, 512, 768, 1024, 2048};

typedef struct pool_obj {
  struct pool_obj *next;       /* next object in a list */
  struct pool_obj *next_batch; /* in the shared stack: next batch */
  uint32_t batch_n;            /* in a batch's first object: its length (so
                                  taking a batch never walks it: its objects
                                  were freed on another core, each a miss) */
} pool_obj;

typedef struct {
  pool_obj *head;
  uint32_t count;
  /* A run of never-used objects reserved from a slab: allocated in address
     order once the free list is empty, so a thread touches (and faults in)
     fresh memory itself, outside g_pool_mu. */
  char *bump, *bump_end;
} tl_class;

typedef struct {
  uint64_t epoch;
  tl_class cls[WEIR__NCLASS];
  bool registered;
} tl_cache;

typedef struct slab {
  struct slab *next;
} slab;

static pthread_mutex_t g_pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pool_obj *g_batches[WEIR__NCLASS]; /* stacks of full batches */
static slab *g_slabs;
/* Carving cursor per class, protected by g_pool_mu. */
static char *g_carve[WEIR__NCLASS];
static char *g_carve_end[WEIR__NCLASS];
/* Bumped when slabs are freed; a thread cache of another epoch is stale.
   Acquire/release pairs the bump with the frees that precede it. */
static _Atomic uint64_t g_epoch = 1;

static WEIR__TLS tl_cache tl;
static pthread_key_t g_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

static inline int class_of(size_t n) {
  if (n <= 64) return n <= 48 ? 0 : 1;
  if (n <= 96) return n <= 80 ? 2 : 3;
  for (int c = 4; c < WEIR__NCLASS; c++)
    if (n <= class_size[c]) return c;
  return -1;
}

/* Hands a thread's lists back to the shared stacks (thread exit). */
static void tl_flush(void *unused) {
  (void)unused;
  /* Under the lock: a release between the check and the push would hand
     objects of freed slabs to the shared stacks. */
  weir__lock(&g_pool_mu, WEIR__LK_POOL);
  if (tl.epoch != atomic_load_explicit(&g_epoch, memory_order_acquire)) {
    weir__unlock(&g_pool_mu, WEIR__LK_POOL);
    return;
  }
  for (int c = 0; c < WEIR__NCLASS; c++) {
    tl_class *tc = &tl.cls[c];
    /* the reserved run joins the list, so an exiting thread keeps none */
    while (tc->bump + class_size[c] <= tc->bump_end) {
      pool_obj *o = (pool_obj *)tc->bump;
      tc->bump += class_size[c];
      o->next = tc->head;
      tc->head = o;
      tc->count++;
    }
    if (tc->head) {
      tc->head->next_batch = g_batches[c];
      tc->head->batch_n = tc->count;
      g_batches[c] = tc->head;
    }
    memset(tc, 0, sizeof *tc);
  }
  weir__unlock(&g_pool_mu, WEIR__LK_POOL);
}

static void key_once(void) {
  pthread_key_create(&g_key, tl_flush);
}

static inline void tl_check(void) {
  uint64_t e = atomic_load_explicit(&g_epoch, memory_order_acquire);
  if (WEIR__UNLIKELY(tl.epoch != e)) {
    memset(tl.cls, 0, sizeof tl.cls);
    tl.epoch = e;
    if (!tl.registered) {
      pthread_once(&g_key_once, key_once);
      pthread_setspecific(g_key, &tl);
      tl.registered = true;
    }
  }
}

/* The free list is empty: take a batch freed by other threads, or else
   reserve a run of fresh objects. Under g_pool_mu only pointer moves: the
   slab's malloc and the first touch of its pages (a page fault per 4 KiB)
   happen outside it, so a thread growing the pools never stalls the
   others' refills and batch returns on a sleeping mutex. */
static void *pool_refill(int c) {
  size_t sz = class_size[c];
  tl_class *tc = &tl.cls[c];
  slab *fresh = NULL;
  for (;;) {
    weir__lock(&g_pool_mu, WEIR__LK_POOL);
    pool_obj *got = g_batches[c];
    if (got) {
      g_batches[c] = got->next_batch;
      weir__unlock(&g_pool_mu, WEIR__LK_POOL);
      if (fresh) weir__free(fresh); /* lost a race; rare */
      /* The batch's first object is returned; the rest become the list. */
      tc->head = got->next;
      tc->count = got->batch_n - 1;
      return got;
    }
    if (g_carve[c] + sz > g_carve_end[c] && fresh) {
      fresh->next = g_slabs;
      g_slabs = fresh;
      g_carve[c] = (char *)fresh + WEIR__CACHELINE;
      g_carve_end[c] = (char *)fresh + WEIR__SLAB_BYTES;
      fresh = NULL;
    }
    if (g_carve[c] + sz <= g_carve_end[c]) {
      size_t room = (size_t)(g_carve_end[c] - g_carve[c]) / sz;
      size_t n = room < WEIR__POOL_BATCH ? room : WEIR__POOL_BATCH;
      char *run = g_carve[c];
      g_carve[c] += n * sz;
      weir__unlock(&g_pool_mu, WEIR__LK_POOL);
      if (fresh) weir__free(fresh); /* another thread grew the class */
      tc->bump = run + sz;
      tc->bump_end = run + n * sz;
      return run;
    }
    weir__unlock(&g_pool_mu, WEIR__LK_POOL);
    fresh = weir__malloc(WEIR__SLAB_BYTES);
    if (!fresh) return NULL;
  }
}

void *weir__pool_alloc(size_t n) {
  int c = class_of(n);
  if (c < 0) return weir__malloc(n);
  if (should_fail()) return NULL;
  tl_check();
  tl_class *tc = &tl.cls[c];
  pool_obj *o = tc->head;
  if (WEIR__LIKELY(o != NULL)) {
    tc->head = o->next;
    tc->count--;
    /* The next object is likely freed on another core (a message its
       receiver handled): fetch its line for writing ahead of its turn */
    if (tc->head) __builtin_prefetch(tc->head, 1);
    return o;
  }
  if (WEIR__LIKELY(tc->bump < tc->bump_end)) {
    void *r = tc->bump;
    tc->bump += class_size[c];
    return r;
  }
  return pool_refill(c);
}

void weir__pool_free(void *p, size_t n) {
  if (!p) return;
  int c = class_of(n);
  if (c < 0) {
    weir__free(p);
    return;
  }
  tl_check();
  tl_class *tc = &tl.cls[c];
  pool_obj *o = p;
  o->next = tc->head;
  tc->head = o;
  if (WEIR__UNLIKELY(++tc->count > WEIR__POOL_HIGH)) {
    /* Split off a batch from the front of the list and publish it. */
    pool_obj *batch = tc->head, *last = batch;
    for (int i = 1; i < WEIR__POOL_BATCH; i++)
      last = last->next;
    tc->head = last->next;
    last->next = NULL;
    tc->count -= WEIR__POOL_BATCH;
    batch->batch_n = WEIR__POOL_BATCH;
    weir__lock(&g_pool_mu, WEIR__LK_POOL);
    batch->next_batch = g_batches[c];
    g_batches[c] = batch;
    weir__unlock(&g_pool_mu, WEIR__LK_POOL);
  }
}

void weir__pools_acquire(void) {
  /* relaxed: a read-modify-write reads the latest count whatever its
     order, so the count alone decides which release is the last; the
     slabs that one frees are ordered by g_pool_mu, which it and every
     refill hold (a runtime starting now refills after the frees). */
  atomic_fetch_add_explicit(&g_runtimes, 1, memory_order_relaxed);
}

void weir__pools_release(void) {
  weir__lock(&g_pool_mu, WEIR__LK_POOL);
  /* relaxed: under g_pool_mu (see weir__pools_acquire) */
  if (atomic_fetch_sub_explicit(&g_runtimes, 1, memory_order_relaxed) == 1) {
    /* Last runtime gone: every pooled object is dead. */
    while (g_slabs) {
      slab *s = g_slabs;
      g_slabs = s->next;
      weir__free(s);
    }
    memset(g_batches, 0, sizeof g_batches);
    memset(g_carve, 0, sizeof g_carve);
    memset(g_carve_end, 0, sizeof g_carve_end);
    atomic_fetch_add_explicit(&g_epoch, 1, memory_order_release);
  }
  weir__unlock(&g_pool_mu, WEIR__LK_POOL);
}
