/*
 * alloc.h: alloc.c, the one door for memory (weir_set_allocator), its
 * pools for messages and slots, and fault injection for tests.
 */
#ifndef WEIR_ALLOC_H
#define WEIR_ALLOC_H

#include "base.h"

void *weir__malloc(size_t n);
void *weir__calloc(size_t n, size_t size);
void *weir__realloc(void *p, size_t n);
void weir__free(void *p);
char *weir__strdup(const char *s);
/* Pooled objects (messages, process slots): per-thread caches, cross-thread
   frees returned to a shared list in batches. */
void *weir__pool_alloc(size_t n);
void weir__pool_free(void *p, size_t n);
void weir__pools_acquire(void); /* a runtime starts */
void weir__pools_release(void); /* a runtime stopped; last one frees slabs */
/* Fault injection for tests: the nth allocation from now fails (0 = off). */
void weir__alloc_fail_nth(uint64_t n);
uint64_t weir__alloc_count(void); /* allocations made so far */

/* Grows p (old bytes in use) to n bytes: realloc when the allocator has
   one, else malloc, copy and free (weir_allocator.realloc may be NULL).
   NULL on failure, p untouched. */
void *weir__grow(void *p, size_t old, size_t n);

#endif
