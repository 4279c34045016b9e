/*
 * overload.c: bounded mailboxes, shedding that is never silent, dead letters.
 *
 * The length bound is exact under any number of concurrent senders: a sender
 * reserves its place by a CAS on in_count against the consumer's out_count,
 * so in_count - out_count never passes max_queue_len (out_count only grows,
 * which can only make room). The CAS is paid only by bounded processes; an
 * unbounded send keeps its single fetch_add. The byte bound is checked
 * against the bytes queued when the send starts, so concurrent senders can
 * pass it by at most their own messages; it exists to cap memory, where that
 * slack does not matter.
 *
 * Every shed message is counted on its process (dropped) and on the node, and
 * goes to the dead-letter subscriber if there is one.
 */
#include "internal.h"

static int shed(weir_rt *rt, weir__proc *p, weir__msg *m, bool reject) {
  atomic_fetch_add_explicit(&p->stat.dropped, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&rt->dropped, 1, memory_order_relaxed);
  if (!reject) weir__dead_letter_notify(rt, m, WEIR_EFULL);
  weir__msg_free(m);
  return reject ? WEIR_EFULL : WEIR_OK;
}

int weir__bound_admit(weir_rt *rt, weir__proc *p, weir__msg *m) {
  if (m->flags & WEIR__MF_NOBOUND) {
    atomic_fetch_add_explicit(&p->in_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->in_bytes, m->len, memory_order_relaxed);
    return WEIR_OK;
  }
  bool reject = p->overflow != WEIR_OVERFLOW_DROP_NEWEST;
  if (p->max_bytes && weir__mbox_bytes(p) + m->len > p->max_bytes)
    return shed(rt, p, m, reject);
  uint64_t in = atomic_load_explicit(&p->in_count, memory_order_relaxed);
  for (;;) {
    uint64_t out = atomic_load_explicit(&p->out_count, memory_order_relaxed);
    if (p->max_len && in - out >= p->max_len) return shed(rt, p, m, reject);
    /* relaxed: the reservation orders nothing by itself; the push that
       follows publishes the message. */
    if (atomic_compare_exchange_weak_explicit(&p->in_count, &in, in + 1,
                                              memory_order_relaxed,
                                              memory_order_relaxed))
      break;
  }
  atomic_fetch_add_explicit(&p->in_bytes, m->len, memory_order_relaxed);
  return WEIR_OK;
}

void weir__dead_letter_notify(weir_rt *rt, weir__msg *m, int reason) {
  pthread_mutex_lock(&rt->sub_mu);
  weir_pid sub = rt->dead_letter_sub;
  pthread_mutex_unlock(&rt->sub_mu);
  if (weir_pid_is_none(sub)) return;
  weir_dead_letter h;
  memset(&h, 0, sizeof h);
  h.to = WEIR_PID_NONE;
  h.tag = m->tag;
  h.len = m->len;
  h.reason = reason;
  weir__msg *d = weir__msg_new(WEIR__K_INFO, WEIR_TAG_DEAD_LETTER,
                               (uint32_t)(sizeof(weir_ref) + sizeof h) + m->len);
  if (!d) return;
  char *b = weir__msg_data(d);
  weir_ref zero = 0;
  memcpy(b, &zero, sizeof zero);
  memcpy(b + sizeof zero, &h, sizeof h);
  memcpy(b + sizeof zero + sizeof h, weir__msg_data(m), m->len);
  d->flags |= WEIR__MF_NOBOUND;
  weir__deliver(rt, sub, d);
}

int weir_dead_letter_subscribe(weir_rt *rt, weir_pid pid) {
  if (!rt) return WEIR_EINVAL;
  if (!weir_pid_is_none(pid) && !weir__proc_get(rt, pid)) return WEIR_ENOPROC;
  pthread_mutex_lock(&rt->sub_mu);
  rt->dead_letter_sub = pid;
  pthread_mutex_unlock(&rt->sub_mu);
  return WEIR_OK;
}

int weir_alarm_subscribe(weir_rt *rt, weir_pid pid) {
  if (!rt) return WEIR_EINVAL;
  if (!weir__proc_get(rt, pid)) return WEIR_ENOPROC;
  pthread_mutex_lock(&rt->sub_mu);
  for (size_t i = 0; i < rt->nalarm_subs; i++)
    if (weir_pid_eq(rt->alarm_subs[i], pid)) {
      pthread_mutex_unlock(&rt->sub_mu);
      return WEIR_OK;
    }
  weir_pid *n = weir__malloc((rt->nalarm_subs + 1) * sizeof *n);
  if (!n) {
    pthread_mutex_unlock(&rt->sub_mu);
    return WEIR_ENOMEM;
  }
  if (rt->nalarm_subs) memcpy(n, rt->alarm_subs, rt->nalarm_subs * sizeof *n);
  n[rt->nalarm_subs++] = pid;
  weir__free(rt->alarm_subs);
  rt->alarm_subs = n;
  pthread_mutex_unlock(&rt->sub_mu);
  return WEIR_OK;
}

int weir_alarm_unsubscribe(weir_rt *rt, weir_pid pid) {
  if (!rt) return WEIR_EINVAL;
  int rc = WEIR_ENOTFOUND;
  pthread_mutex_lock(&rt->sub_mu);
  for (size_t i = 0; i < rt->nalarm_subs; i++)
    if (weir_pid_eq(rt->alarm_subs[i], pid)) {
      rt->alarm_subs[i] = rt->alarm_subs[--rt->nalarm_subs];
      rc = WEIR_OK;
      break;
    }
  pthread_mutex_unlock(&rt->sub_mu);
  return rc;
}

void weir__exit_hook(weir_rt *rt, weir__proc *p, weir_pid self, int reason) {
  (void)reason;
  if (p->served_calls) weir__calls_server_gone(rt, self);
  p->served_calls = 0;
}

void weir__overload_free(weir_rt *rt) {
  weir__free(rt->alarm_subs);
  rt->alarm_subs = NULL;
  rt->nalarm_subs = 0;
}

/* Rates until the alarm sampler lands: averages over the incarnation's life
   (not yet smoothed over a recent window). */
void weir__rates(weir_rt *rt, weir__proc *p, double *in_rate,
                 double *out_rate) {
  (void)rt;
  double age = (double)(weir__now_ns() - p->born_ns) / 1e9;
  if (age < 1e-3) age = 1e-3;
  uint64_t in = atomic_load_explicit(&p->in_count, memory_order_relaxed) -
                atomic_load_explicit(&p->stat.base_in, memory_order_relaxed);
  *in_rate = (double)in / age;
  *out_rate =
      (double)atomic_load_explicit(&p->stat.reductions, memory_order_relaxed) /
      age;
}

uint64_t weir__alarms_active(weir_rt *rt) {
  (void)rt;
  return 0;
}
