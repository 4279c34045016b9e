/*
 * table.c: the process table. A fixed array of slot pointers, sized by
 * max_processes and touched only as slots are first used; a slot, once
 * allocated, lives until the node stops (type-stable), so a sender holding
 * a stale pid reads a live slot whose generation tells it the process is
 * gone. Slots are taken and given back under table_mu; lookups take no
 * lock. Also the objects that must live until the node stops (retired).
 */
#include "internal.h"

weir_ref weir__new_ref(weir_rt *rt) {
  /* relaxed: refs need uniqueness, not ordering. */
  return atomic_fetch_add_explicit(&rt->next_ref, 1, memory_order_relaxed);
}

/* Takes a slot off the free list (or a fresh one), allocating its proc. */
int weir__slot_alloc(weir_rt *rt, weir__proc **out) {
  weir__lock(&rt->table_mu, WEIR__LK_TABLE);
  uint32_t slot;
  weir__proc *p = NULL;
  if (rt->nfree > 0) {
    slot = rt->free_slots[--rt->nfree];
    p = atomic_load_explicit(&rt->slots[slot], memory_order_relaxed);
    /* relaxed: FREE was stored before the slot went on the free list,
       under table_mu, which we hold */
    WEIR__ASSERT(atomic_load_explicit(&p->life, memory_order_relaxed) ==
                 WEIR__P_FREE);
  } else if (rt->next_fresh < rt->max_processes) {
    slot = rt->next_fresh;
    p = weir__pool_alloc(sizeof(weir__proc));
    if (!p) {
      weir__unlock(&rt->table_mu, WEIR__LK_TABLE);
      return WEIR_ENOMEM;
    }
    memset(p, 0, sizeof *p);
    p->slot = slot;
    p->rt = rt;
    weir__mbox_init(p);
    atomic_store_explicit(&p->life, WEIR__P_FREE, memory_order_relaxed);
    rt->next_fresh++;
    /* release: the initialised proc is visible to anyone loading the slot */
    atomic_store_explicit(&rt->slots[slot], p, memory_order_release);
  } else {
    weir__unlock(&rt->table_mu, WEIR__LK_TABLE);
    return WEIR_ELIMIT;
  }
  weir__unlock(&rt->table_mu, WEIR__LK_TABLE);
  *out = p;
  return WEIR_OK;
}

void weir__slot_release(weir_rt *rt, weir__proc *p) {
  /* relaxed: the caller stored FREE (or never incarnated the slot) */
  WEIR__ASSERT(atomic_load_explicit(&p->life, memory_order_relaxed) ==
               WEIR__P_FREE);
  weir__lock(&rt->table_mu, WEIR__LK_TABLE);
  rt->free_slots[rt->nfree++] = p->slot;
  weir__unlock(&rt->table_mu, WEIR__LK_TABLE);
}

uint32_t weir__proc_table_used(weir_rt *rt) {
  weir__lock(&rt->table_mu, WEIR__LK_TABLE);
  uint32_t n = rt->next_fresh;
  weir__unlock(&rt->table_mu, WEIR__LK_TABLE);
  return n;
}

/* ---- objects kept until stop ------------------------------------------ */

typedef struct weir__retired {
  struct weir__retired *next;
  void *obj;
  void (*fn)(void *);
} weir__retired;

int weir__retire(weir_rt *rt, void *obj, void (*fn)(void *)) {
  weir__retired *r = weir__malloc(sizeof *r);
  if (!r) return WEIR_ENOMEM;
  r->obj = obj;
  r->fn = fn;
  weir__lock(&rt->retire_mu, WEIR__LK_RETIRE);
  r->next = rt->retired;
  rt->retired = r;
  weir__unlock(&rt->retire_mu, WEIR__LK_RETIRE);
  return WEIR_OK;
}

void weir__retired_free(weir_rt *rt) {
  weir__retired *r = rt->retired;
  while (r) {
    weir__retired *n = r->next;
    r->fn(r->obj);
    weir__free(r);
    r = n;
  }
  rt->retired = NULL;
}
