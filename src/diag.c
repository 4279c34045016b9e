/*
 * diag.c: process_info, proc_count, proc_window, node_stats.
 *
 * Everything here reads counters the runtime keeps anyway (mailbox in/out
 * counts, per-process stats), with relaxed loads and no lock that a scheduler
 * could wait on: a reader walks the slot table while processes run, so a
 * figure can be a message stale, never torn memory. Nothing is computed while
 * nobody asks. proc_count keeps the top N in a small binary heap, so a scan
 * of a million processes costs one pass and O(N) memory.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <errno.h>

static const char *const attr_names[WEIR_ATTR__COUNT] = {
    "message_queue_len", "mailbox_bytes", "memory",  "reductions",
    "messages_in",       "messages_out",  "dropped", "queue_high_water"};

const char *weir_attr_name(weir_attr a) {
  return (unsigned)a < WEIR_ATTR__COUNT ? attr_names[a] : "unknown";
}

int weir_attr_parse(const char *name, weir_attr *a) {
  if (!name || !a) return WEIR_EINVAL;
  for (int i = 0; i < WEIR_ATTR__COUNT; i++)
    if (strcmp(name, attr_names[i]) == 0) {
      *a = (weir_attr)i;
      return WEIR_OK;
    }
  return WEIR_EINVAL;
}

const char *weir_status_name(weir_status s) {
  switch (s) {
  case WEIR_STATUS_RUNNING:
    return "running";
  case WEIR_STATUS_RUNNABLE:
    return "runnable";
  case WEIR_STATUS_WAITING:
    return "waiting";
  case WEIR_STATUS_EXITING:
    return "exiting";
  }
  return "unknown";
}

/* The slot, its extras, the state the behaviour reports (state_size, as of
   its last run) and the queued messages with their headers. */
static uint64_t proc_memory(const weir__proc *p) {
  uint64_t m = sizeof(weir__proc) + weir__mbox_bytes(p) +
               weir__mbox_len(p) * sizeof(weir__msg) +
               atomic_load_explicit(&p->state_bytes, memory_order_relaxed);
  weir__slotx *sx = WEIR__LD(p->x);
  if (sx) m += sizeof *sx;
  return m;
}

static uint64_t attr_value(const weir__proc *p, weir_attr a) {
  switch (a) {
  case WEIR_ATTR_MESSAGE_QUEUE_LEN:
    return weir__mbox_len(p);
  case WEIR_ATTR_MAILBOX_BYTES:
    return weir__mbox_bytes(p);
  case WEIR_ATTR_MEMORY:
    return proc_memory(p);
  case WEIR_ATTR_REDUCTIONS:
    return atomic_load_explicit(&p->reductions, memory_order_relaxed);
  case WEIR_ATTR_MESSAGES_IN: {
    uint64_t in = atomic_load_explicit(&p->in_count, memory_order_relaxed);
    uint64_t b = atomic_load_explicit(&p->base_in, memory_order_relaxed);
    return in > b ? in - b : 0;
  }
  case WEIR_ATTR_MESSAGES_OUT:
    return atomic_load_explicit(&p->messages_out, memory_order_relaxed);
  case WEIR_ATTR_DROPPED:
    return WEIR__LD(p->x)
               ? atomic_load_explicit(&p->x->dropped, memory_order_relaxed)
               : 0;
  case WEIR_ATTR_QUEUE_HIGH_WATER: {
    uint64_t hw = WEIR__LD(p->x) ? atomic_load_explicit(&p->x->high_water,
                                                        memory_order_relaxed)
                                 : 0;
    uint64_t len = weir__mbox_len(p);
    return hw > len ? hw : len;
  }
  default:
    return 0;
  }
}

int weir_process_info(weir_rt *rt, weir_pid pid, weir_proc_info *info) {
  if (!rt || !info) return WEIR_EINVAL;
  weir__proc *p = weir__proc_get(rt, pid);
  if (!p) return WEIR_ENOPROC;
  memset(info, 0, sizeof *info);
  info->pid = pid;
  weir__registry_name(rt, p, info->registered_name,
                      sizeof info->registered_name);
  const weir_server *srv = WEIR__LD(p->srv); /* see incarnate */
  snprintf(info->initial_call, sizeof info->initial_call, "%s",
           srv && srv->name ? srv->name : "anonymous");
  const char *cur = atomic_load_explicit(&p->current, memory_order_relaxed);
  if (cur)
    snprintf(info->current_function, sizeof info->current_function, "%s:%s",
             info->initial_call, cur);
  else
    snprintf(info->current_function, sizeof info->current_function, "waiting");
  info->status =
      (weir_status)atomic_load_explicit(&p->status, memory_order_relaxed);
  info->message_queue_len = weir__mbox_len(p);
  info->mailbox_bytes = weir__mbox_bytes(p);
  info->memory = proc_memory(p);
  info->reductions = attr_value(p, WEIR_ATTR_REDUCTIONS);
  info->messages_in = attr_value(p, WEIR_ATTR_MESSAGES_IN);
  info->messages_out = attr_value(p, WEIR_ATTR_MESSAGES_OUT);
  info->dropped = attr_value(p, WEIR_ATTR_DROPPED);
  info->queue_high_water = attr_value(p, WEIR_ATTR_QUEUE_HIGH_WATER);
  info->max_queue_len = WEIR__LD(p->max_len);
  weir__rates(rt, p, &info->in_rate, &info->out_rate);
  weir__slotx *sx = WEIR__LD(p->x);
  info->supervisor.id = sx ? WEIR__LD(sx->supervisor) : 0;
  info->partition = sx ? WEIR__LD(sx->partition) : -1;
  info->blocking = WEIR__LD(p->blocking);
  /* The process may have ended while we read: report that honestly. */
  if (!weir__proc_get(rt, pid)) return WEIR_ENOPROC;
  return WEIR_OK;
}

/* ---- top N ------------------------------------------------------------ */

typedef struct {
  weir_proc_sample *h;
  size_t n, cap;
} topn;

static void top_push(topn *t, weir_pid pid, uint64_t v) {
  /* a min-heap of the best cap values seen so far */
  if (t->n < t->cap) {
    size_t i = t->n++;
    t->h[i].pid = pid;
    t->h[i].value = v;
    while (i > 0) {
      size_t p = (i - 1) / 2;
      if (t->h[p].value <= t->h[i].value) break;
      weir_proc_sample x = t->h[p];
      t->h[p] = t->h[i];
      t->h[i] = x;
      i = p;
    }
    return;
  }
  if (t->cap == 0 || v <= t->h[0].value) return;
  t->h[0].pid = pid;
  t->h[0].value = v;
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < t->n && t->h[l].value < t->h[m].value) m = l;
    if (r < t->n && t->h[r].value < t->h[m].value) m = r;
    if (m == i) break;
    weir_proc_sample x = t->h[m];
    t->h[m] = t->h[i];
    t->h[i] = x;
    i = m;
  }
}

static int by_value_desc(const void *a, const void *b) {
  const weir_proc_sample *x = a, *y = b;
  return x->value < y->value ? 1 : x->value > y->value ? -1 : 0;
}

int weir_proc_count(weir_rt *rt, weir_attr attr, size_t n,
                    weir_proc_sample *out, size_t *count) {
  if (!rt || (unsigned)attr >= WEIR_ATTR__COUNT || (n && !out))
    return WEIR_EINVAL;
  topn t = {out, 0, n};
  uint32_t used = weir__proc_table_used(rt);
  for (uint32_t i = 0; i < used; i++) {
    weir__proc *p = weir__proc_slot(rt, i);
    if (!p ||
        atomic_load_explicit(&p->life, memory_order_acquire) != WEIR__P_LIVE)
      continue;
    top_push(&t, weir__proc_pid(p), attr_value(p, attr));
  }
  qsort(out, t.n, sizeof *out, by_value_desc);
  if (count) *count = t.n;
  return WEIR_OK;
}

int weir_proc_window(weir_rt *rt, weir_attr attr, size_t n, uint32_t ms,
                     weir_proc_sample *out, size_t *count) {
  if (!rt || (unsigned)attr >= WEIR_ATTR__COUNT || (n && !out))
    return WEIR_EINVAL;
  if (weir__current_ctx()) return WEIR_EDEADLK;
  /* First sample: (pid, value) for every live process, indexed by slot. */
  uint32_t used = weir__proc_table_used(rt);
  weir_proc_sample *before = weir__calloc(used ? used : 1, sizeof *before);
  if (!before) return WEIR_ENOMEM;
  for (uint32_t i = 0; i < used; i++) {
    weir__proc *p = weir__proc_slot(rt, i);
    if (!p ||
        atomic_load_explicit(&p->life, memory_order_acquire) != WEIR__P_LIVE)
      continue;
    before[i].pid = weir__proc_pid(p);
    before[i].value = attr_value(p, attr);
  }
  weir__sleep_ms(ms);
  topn t = {out, 0, n};
  uint32_t used2 = weir__proc_table_used(rt);
  for (uint32_t i = 0; i < used2; i++) {
    weir__proc *p = weir__proc_slot(rt, i);
    if (!p ||
        atomic_load_explicit(&p->life, memory_order_acquire) != WEIR__P_LIVE)
      continue;
    weir_pid pid = weir__proc_pid(p);
    uint64_t v = attr_value(p, attr);
    /* recon: a process born inside the window counts its absolute value;
       a gauge that shrank counts as no increase. */
    uint64_t inc = v;
    if (i < used && weir_pid_eq(before[i].pid, pid))
      inc = v > before[i].value ? v - before[i].value : 0;
    top_push(&t, pid, inc);
  }
  weir__free(before);
  qsort(out, t.n, sizeof *out, by_value_desc);
  if (count) *count = t.n;
  return WEIR_OK;
}

static uint64_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, res = 0;
  int k = fscanf(f, "%lu %lu", &size, &res);
  fclose(f);
  if (k != 2) return 0;
  return (uint64_t)res * 4096u;
}

int weir_node_stats(weir_rt *rt, weir_stats *s) {
  if (!rt || !s) return WEIR_EINVAL;
  memset(s, 0, sizeof *s);
  /* relaxed: counters that order nothing, read for a report; each is
     exact, the set of them a snapshot a message stale (see the top) */
  s->processes = atomic_load_explicit(&rt->nprocs, memory_order_relaxed);
  s->max_processes = rt->max_processes;
  s->spawned = atomic_load_explicit(&rt->spawned, memory_order_relaxed);
  s->exited = atomic_load_explicit(&rt->exited, memory_order_relaxed);
  s->crashed = atomic_load_explicit(&rt->crashed, memory_order_relaxed);
  s->dropped = atomic_load_explicit(&rt->dropped, memory_order_relaxed);
  s->dead_letters =
      atomic_load_explicit(&rt->dead_letters, memory_order_relaxed);
  uint32_t used = weir__proc_table_used(rt);
  for (uint32_t i = 0; i < used; i++) {
    weir__proc *p = weir__proc_slot(rt, i);
    if (!p) continue;
    s->queued_messages += weir__mbox_len(p);
    s->queued_bytes += weir__mbox_bytes(p);
    s->messages_sent +=
        atomic_load_explicit(&p->in_count, memory_order_relaxed);
  }
  s->mailbox_budget = rt->opts.max_mailbox_bytes;
  s->alarms_active = weir__alarms_active(rt);
  s->rss_bytes = rss_bytes();
  s->schedulers = rt->nscheds;
  weir__lock(&rt->io_mu, WEIR__LK_IO);
  s->io_threads_live = rt->io_live;
  weir__unlock(&rt->io_mu, WEIR__LK_IO);
  s->io_threads_max = rt->io_max;
  s->uptime_s = (double)(weir__now_ns() - rt->start_ns) / 1e9;
  return WEIR_OK;
}
