/*
 * registry.c: names -> pids (Erlang's register/whereis).
 *
 * A chained hash table under one mutex. Registration is rare and lookups are
 * not on any hot path that matters (a sender that cares caches the pid), so
 * a lock is the simple, obviously correct choice. A process knows its own
 * name (p->name) so that exit can drop it without a scan.
 */
#include "internal.h"

typedef struct entry {
  struct entry *next;
  weir_pid pid;
  char name[];
} entry;

typedef struct {
  entry **b;
  size_t nb, n;
} reg;

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

int weir__registry_init(weir_rt *rt) {
  rt->hooks.name_register = weir_register;
  rt->hooks.name_release = weir__registry_drop_pid;
  reg *r = weir__calloc(1, sizeof *r);
  if (!r) return WEIR_ENOMEM;
  r->nb = 64;
  r->b = weir__calloc(r->nb, sizeof(entry *));
  if (!r->b) {
    weir__free(r);
    return WEIR_ENOMEM;
  }
  pthread_mutex_init(&rt->reg_mu, NULL);
  rt->registry = r;
  return WEIR_OK;
}

void weir__registry_free(weir_rt *rt) {
  reg *r = rt->registry;
  if (!r) return;
  for (size_t i = 0; i < r->nb; i++) {
    entry *e = r->b[i];
    while (e) {
      entry *n = e->next;
      weir__free(e);
      e = n;
    }
  }
  weir__free(r->b);
  weir__free(r);
  rt->registry = NULL;
  pthread_mutex_destroy(&rt->reg_mu);
}

static entry **find(reg *r, const char *name) {
  entry **pp = &r->b[hash_str(name) & (r->nb - 1)];
  while (*pp && strcmp((*pp)->name, name) != 0)
    pp = &(*pp)->next;
  return pp;
}

static void grow(reg *r) {
  size_t nb = r->nb * 2;
  entry **b = weir__calloc(nb, sizeof(entry *));
  if (!b) return; /* stay at the old size: slower, still correct */
  for (size_t i = 0; i < r->nb; i++) {
    entry *e = r->b[i];
    while (e) {
      entry *n = e->next;
      size_t j = hash_str(e->name) & (nb - 1);
      e->next = b[j];
      b[j] = e;
      e = n;
    }
  }
  weir__free(r->b);
  r->b = b;
  r->nb = nb;
}

int weir_register(weir_rt *rt, const char *name, weir_pid pid) {
  if (!rt || !name || !*name || strlen(name) >= 64) return WEIR_EINVAL;
  weir__proc *p = weir__proc_get(rt, pid);
  if (!p) return WEIR_ENOPROC;
  size_t len = strlen(name);
  entry *e = weir__malloc(sizeof *e + len + 1);
  char *own = weir__strdup(name);
  if (!e || !own) {
    weir__free(e);
    weir__free(own);
    return WEIR_ENOMEM;
  }
  memcpy(e->name, name, len + 1);
  e->pid = pid;
  weir__lock(&rt->reg_mu, WEIR__LK_REG);
  reg *r = rt->registry;
  entry **pp = find(r, name);
  int rc = WEIR_OK;
  /* Again under the lock: an exit marks the process EXITING before it
     takes this lock to drop its name, so either we see it gone, or the
     exit sees our entry and removes it. */
  if (!weir__proc_get(rt, pid)) {
    rc = WEIR_ENOPROC;
  } else if (*pp) {
    rc = WEIR_EEXIST;
  } else if (p->name) {
    rc = WEIR_EEXIST; /* one name per process, as in Erlang */
  } else {
    e->next = NULL;
    *pp = e;
    p->name = own;
    if (++r->n > r->nb) grow(r);
    e = NULL;
    own = NULL;
  }
  weir__unlock(&rt->reg_mu, WEIR__LK_REG);
  weir__free(e);
  weir__free(own);
  return rc;
}

int weir_unregister(weir_rt *rt, const char *name) {
  if (!rt || !name) return WEIR_EINVAL;
  weir__lock(&rt->reg_mu, WEIR__LK_REG);
  reg *r = rt->registry;
  entry **pp = find(r, name);
  entry *e = *pp;
  char *own = NULL;
  if (e) {
    *pp = e->next;
    r->n--;
    weir__proc *p = weir__proc_slot(rt, weir__pid_slot(e->pid));
    if (p && p->name && strcmp(p->name, name) == 0) {
      own = p->name;
      p->name = NULL;
    }
  }
  weir__unlock(&rt->reg_mu, WEIR__LK_REG);
  weir__free(e);
  weir__free(own);
  return e ? WEIR_OK : WEIR_ENOTFOUND;
}

int weir_whereis(weir_rt *rt, const char *name, weir_pid *pid) {
  if (!rt || !name || !pid) return WEIR_EINVAL;
  weir__lock(&rt->reg_mu, WEIR__LK_REG);
  entry *e = *find(rt->registry, name);
  if (e) *pid = e->pid;
  weir__unlock(&rt->reg_mu, WEIR__LK_REG);
  return e ? WEIR_OK : WEIR_ENOTFOUND;
}

/* Copies p's registered name into buf (diagnostics); "" if none. */
void weir__registry_name(weir_rt *rt, weir__proc *p, char *buf, size_t n) {
  weir__lock(&rt->reg_mu, WEIR__LK_REG);
  if (p->name) {
    strncpy(buf, p->name, n - 1);
    buf[n - 1] = 0;
  } else {
    buf[0] = 0;
  }
  weir__unlock(&rt->reg_mu, WEIR__LK_REG);
}

void weir__registry_drop_pid(weir_rt *rt, weir__proc *p) {
  weir__lock(&rt->reg_mu, WEIR__LK_REG);
  char *own = p->name;
  p->name = NULL;
  entry *e = NULL;
  if (own) {
    entry **pp = find(rt->registry, own);
    e = *pp;
    if (e) {
      *pp = e->next;
      ((reg *)rt->registry)->n--;
    }
  }
  weir__unlock(&rt->reg_mu, WEIR__LK_REG);
  weir__free(e);
  weir__free(own);
}
