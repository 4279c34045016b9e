/*
 * trace.c: message tracing, safe in production (recon_trace's promise).
 *
 * A trace session names one process incarnation (a pid), an optional tag
 * filter and a count. While a session is open the process's slot carries
 * WEIR__RX_TRACED in rx_flags; the run loop already tests rx_flags once per
 * message (a BLOCK mailbox wakes its senders there), so a node with nothing
 * traced pays no new branch and a traced process pays for its own events
 * only. Senders are never involved: a message is traced when the process
 * takes it off its mailbox to handle it.
 *
 * Each session has a fixed ring of events, written by the traced process
 * (one writer: a process's callbacks never run concurrently) and read by
 * the tracer (the console). The writer never waits: when the ring is full
 * the event is counted as lost, so a slow or stuck tracer costs the traced
 * process nothing but that count, and what was lost is reported. After
 * `count` matching messages the session records nothing more.
 *
 * Sessions are allocated on first use and kept until the node stops
 * (type-stable, like slots), so a process that read a session pointer never
 * touches freed memory. A writer announces itself in `writers` and then
 * re-checks the session's pid; closing clears the pid and waits for writers
 * to leave (both sides seq_cst: Dekker's pattern), so a reused session
 * never receives a stale writer's event.
 */
#include "internal.h"

#include <time.h>

typedef struct weir__trace_state {
  pthread_mutex_t mu; /* open / close / the slot flags */
  _Atomic(weir__trace *) sess[WEIR__TRACE_SESSIONS];
} weir__trace_state;

int weir__trace_start(weir_rt *rt) {
  rt->hooks.trace = weir__trace_msg;
  weir__trace_state *s = weir__calloc(1, sizeof *s);
  if (!s) return WEIR_ENOMEM;
  pthread_mutex_init(&s->mu, NULL);
  rt->trace = s;
  return WEIR_OK;
}

void weir__trace_stop(weir_rt *rt) {
  weir__trace_state *s = rt->trace;
  if (!s) return;
  for (int i = 0; i < WEIR__TRACE_SESSIONS; i++)
    weir__free(atomic_load_explicit(&s->sess[i], memory_order_relaxed));
  pthread_mutex_destroy(&s->mu);
  weir__free(s);
  rt->trace = NULL;
}

static bool traceable(uint32_t kind) {
  switch (kind) {
  case WEIR__K_CAST:
  case WEIR__K_CALL:
  case WEIR__K_INFO:
  case WEIR__K_REPLY:
  case WEIR__K_EXIT:
  case WEIR__K_DOWN:
  case WEIR__K_TIMEOUT:
    return true;
  default:
    return false; /* runtime bookkeeping: links, monitors, wakes */
  }
}

/* The tag the process's callback sees. */
static uint32_t seen_tag(const weir__msg *m) {
  switch (m->kind) {
  case WEIR__K_EXIT:
    return WEIR_TAG_EXIT;
  case WEIR__K_DOWN:
    return WEIR_TAG_DOWN;
  case WEIR__K_REPLY:
    return WEIR_TAG_REPLY;
  case WEIR__K_TIMEOUT:
    return WEIR_TAG_TIMEOUT;
  default:
    return m->tag;
  }
}

static void record(weir__trace *t, const weir__msg *m) {
  uint32_t tag = seen_tag(m);
  if (t->ntags) {
    unsigned i = 0;
    while (i < t->ntags && t->tags[i] != tag)
      i++;
    if (i == t->ntags) return;
  }
  /* relaxed: the one writer's own counter; the reader only reports it */
  uint64_t seen = atomic_load_explicit(&t->seen, memory_order_relaxed);
  if (seen >= t->count) return;
  uint64_t head = atomic_load_explicit(&t->head, memory_order_relaxed);
  /* acquire: pairs with the reader's release of tail, so the slot it
     freed is no longer being read */
  uint64_t tail = atomic_load_explicit(&t->tail, memory_order_acquire);
  if (head - tail >= WEIR__TRACE_RING) {
    atomic_fetch_add_explicit(&t->lost, 1, memory_order_relaxed);
  } else {
    weir__trace_ev *e = &t->ring[head % WEIR__TRACE_RING];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    e->t_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    uint32_t pre = weir__kind_prefix(m->kind);
    uint32_t len = m->len >= pre ? m->len - pre : 0;
    e->from = m->from;
    e->tag = tag;
    e->len = len;
    e->kind = (uint8_t)m->kind;
    e->head_len = (uint8_t)(len < sizeof e->head ? len : sizeof e->head);
    memcpy(e->head, (const char *)weir__msg_data((weir__msg *)m) + pre,
           e->head_len);
    /* release: the event is written before the reader sees head move */
    atomic_store_explicit(&t->head, head + 1, memory_order_release);
  }
  /* release: a reader that sees this count also sees the head or the
     loss it counts (weir__trace_counts) */
  atomic_store_explicit(&t->seen, seen + 1, memory_order_release);
}

void weir__trace_msg(weir_rt *rt, uint64_t self, const weir__msg *m) {
  weir__trace_state *s = rt->trace;
  /* the one writer of self's sessions: self's own run, token taken */
  WEIR__ASSERT(weir__mbox_token_taken(
      weir__proc_slot(rt, weir__pid_slot((weir_pid){self}))));
  if (!s || !traceable(m->kind)) return;
  for (int i = 0; i < WEIR__TRACE_SESSIONS; i++) {
    /* acquire: the session's fields were written before its publication */
    weir__trace *t = atomic_load_explicit(&s->sess[i], memory_order_acquire);
    if (!t || atomic_load_explicit(&t->pid, memory_order_acquire) != self)
      continue;
    /* seq_cst kept, both: increment, then re-check (store-load); closing
       stores pid 0 and then reads writers (see the file comment, Dekker):
       one of us sees the other */
    atomic_fetch_add_explicit(&t->writers, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&t->pid, memory_order_seq_cst) == self)
      record(t, m);
    atomic_fetch_sub_explicit(&t->writers, 1, memory_order_release);
  }
}

int weir__trace_open(weir_rt *rt, weir_pid pid, uint32_t count,
                     const uint32_t *tags, unsigned ntags, weir__trace **out) {
  weir__trace_state *s = rt->trace;
  if (!s || !out || pid.id == 0 || count == 0 || ntags > WEIR__TRACE_TAGS ||
      (ntags && !tags))
    return WEIR_EINVAL;
  weir__lock(&s->mu, WEIR__LK_TRACE);
  weir__proc *p = weir__proc_get(rt, pid);
  int rc = WEIR_OK;
  weir__trace *t = NULL;
  if (!p) {
    rc = WEIR_ENOPROC;
    goto out;
  }
  int i = 0;
  for (; i < WEIR__TRACE_SESSIONS; i++) {
    t = atomic_load_explicit(&s->sess[i], memory_order_relaxed);
    if (!t || !t->open) break;
  }
  if (i == WEIR__TRACE_SESSIONS) {
    rc = WEIR_ELIMIT;
    goto out;
  }
  bool fresh = !t;
  if (fresh && !(t = weir__calloc(1, sizeof *t))) {
    rc = WEIR_ENOMEM;
    goto out;
  }
  t->open = 1;
  t->slot = weir__pid_slot(pid);
  t->count = count;
  t->ntags = ntags;
  if (ntags) memcpy(t->tags, tags, ntags * sizeof *tags);
  atomic_store_explicit(&t->head, 0, memory_order_relaxed);
  atomic_store_explicit(&t->tail, 0, memory_order_relaxed);
  atomic_store_explicit(&t->seen, 0, memory_order_relaxed);
  atomic_store_explicit(&t->lost, 0, memory_order_relaxed);
  /* release: the pid goes live after the fields above (a writer's acquire
     load of pid sees them). Not part of the close handshake: no writer of
     this pid can be inside record() before this store. */
  atomic_store_explicit(&t->pid, pid.id, memory_order_release);
  /* release: publishes a fresh session with its fields */
  if (fresh) atomic_store_explicit(&s->sess[i], t, memory_order_release);
  /* relaxed: the first messages may be missed until the flag is seen; the
     session itself is published above */
  atomic_fetch_or_explicit(&p->rx_flags, WEIR__RX_TRACED, memory_order_relaxed);
  *out = t;
out:
  weir__unlock(&s->mu, WEIR__LK_TRACE);
  return rc;
}

size_t weir__trace_read(weir__trace *t, weir__trace_ev *out, size_t n) {
  uint64_t tail = atomic_load_explicit(&t->tail, memory_order_relaxed);
  /* acquire: pairs with the writer's release of head (events written) */
  uint64_t head = atomic_load_explicit(&t->head, memory_order_acquire);
  size_t k = 0;
  for (; k < n && tail + k < head; k++)
    out[k] = t->ring[(tail + k) % WEIR__TRACE_RING];
  /* release: the writer may reuse these slots only after the copies */
  atomic_store_explicit(&t->tail, tail + k, memory_order_release);
  return k;
}

void weir__trace_counts(weir__trace *t, uint64_t *seen, uint64_t *lost,
                        bool *drained) {
  /* acquire: seen is stored after the event or the loss it counts */
  *seen = atomic_load_explicit(&t->seen, memory_order_acquire);
  *lost = atomic_load_explicit(&t->lost, memory_order_relaxed);
  *drained = atomic_load_explicit(&t->head, memory_order_acquire) ==
             atomic_load_explicit(&t->tail, memory_order_relaxed);
}

void weir__trace_close(weir_rt *rt, weir__trace *t) {
  weir__trace_state *s = rt->trace;
  if (!s || !t) return;
  weir__lock(&s->mu, WEIR__LK_TRACE);
  uint32_t slot = t->slot;
  /* seq_cst kept, both: store pid 0, then read writers (store-load), the
     other half of weir__trace_msg's handshake */
  atomic_store_explicit(&t->pid, 0, memory_order_seq_cst);
  while (atomic_load_explicit(&t->writers, memory_order_seq_cst) != 0)
    weir__cpu_relax(); /* a writer is inside record(): a few ns */
  t->open = 0;
  bool others = false;
  for (int i = 0; i < WEIR__TRACE_SESSIONS; i++) {
    weir__trace *o = atomic_load_explicit(&s->sess[i], memory_order_relaxed);
    if (o && o->open && o->slot == slot) others = true;
  }
  weir__proc *p = weir__proc_slot(rt, slot);
  if (!others && p)
    atomic_fetch_and_explicit(&p->rx_flags, (uint8_t)~WEIR__RX_TRACED,
                              memory_order_relaxed);
  weir__unlock(&s->mu, WEIR__LK_TRACE);
}
