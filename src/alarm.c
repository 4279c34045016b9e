/*
 * alarm.c: overload alarms and smoothed rates (OTP's system_monitor, plus
 * what the seed wishes it had).
 *
 * One sampler thread per node wakes every WEIR__SAMPLE_MS and walks the slot
 * table reading counters that the send and receive paths keep anyway (in/out
 * counts). So an alarm costs the send path nothing: no check, no branch.
 * Per slot it keeps a small record: last counts, rates smoothed as an
 * exponential moving average (time constant ~1 s), and alarm state.
 *
 *  - long_message_queue: on when the queue reaches `enable`, off again when
 *    it falls to `disable` (OTP 27's {disable, enable} hysteresis), per
 *    process or from the node defaults.
 *  - queue_growth: the queue grew over a sustained window (growth_ms) with
 *    arrivals outpacing service; off once it shrinks for a window. The alarm
 *    says how long until the limit: the process's bound, else the node's
 *    mailbox budget, else the memory the kernel says is available.
 *  - mailbox_budget: queued bytes passed 80 % of the node budget (off < 60 %).
 *
 * Each alarm goes to every subscriber as a WEIR_TAG_ALARM message and, by
 * default, as one line on stderr naming the process: the node names the
 * culprit before the cliff.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define WEIR__SAMPLE_MS 100
#define CHUNK           4096u
#define RETRY_MAX       64u

typedef struct samp {
  uint32_t gen; /* incarnation this record describes */
  uint8_t lmq_on, growth_on;
  uint64_t last_in, last_out, last_len;
  double in_rate, out_rate; /* per second, smoothed */
  uint64_t grow_since;      /* first sample of a growth streak, 0 = none */
  uint64_t shrink_since;
} samp;

typedef struct weir__alarm_state {
  pthread_t thread;
  pthread_mutex_t mu;     /* guards stop and active */
  pthread_mutex_t rec_mu; /* guards chunks and the records in them */
  pthread_cond_t cv;
  int stop;
  samp **chunks; /* slot -> record, in chunks of CHUNK */
  uint32_t nchunks;
  weir_alarm *active; /* raised and not cleared */
  size_t nactive, capactive;
  int budget_on;
  /* Deliveries that failed for want of memory, retried each tick: `to` is
     a subscriber, or WEIR_PID_NONE for the active list itself. A fixed
     ring, allocated at start, so keeping a retry never needs memory. */
  struct {
    weir_alarm al;
    weir_pid to;
  } retry[RETRY_MAX];
  unsigned nretry;
  uint64_t lost; /* retries that did not fit (counted, reported) */
} weir__alarm_state;

/* The record of slot, its chunk allocated on first use (rec_mu held). */
static samp *rec_of(weir__alarm_state *a, uint32_t slot) {
  WEIR__ASSERT(weir__lock_held(&a->rec_mu));
  uint32_t c = slot / CHUNK;
  if (c >= a->nchunks) {
    uint32_t n = c + 1;
    samp **nc = weir__calloc(n, sizeof *nc);
    if (!nc) return NULL;
    if (a->nchunks) memcpy(nc, a->chunks, a->nchunks * sizeof *nc);
    weir__free(a->chunks);
    a->chunks = nc;
    a->nchunks = n;
  }
  if (!a->chunks[c]) {
    a->chunks[c] = weir__calloc(CHUNK, sizeof(samp));
    if (!a->chunks[c]) return NULL;
  }
  return &a->chunks[c][slot % CHUNK];
}

static const char *kind_name(weir_alarm_kind k) {
  switch (k) {
  case WEIR_ALARM_LONG_MESSAGE_QUEUE:
    return "long_message_queue";
  case WEIR_ALARM_QUEUE_GROWTH:
    return "queue_growth";
  case WEIR_ALARM_MAILBOX_BUDGET:
    return "mailbox_budget";
  }
  return "unknown";
}

const char *weir_alarm_kind_name(weir_alarm_kind k) {
  return kind_name(k);
}

static uint64_t mem_available(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[128];
  uint64_t kb = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "MemAvailable: %lu kB", &kb) == 1) break;
  fclose(f);
  return kb * 1024u;
}

/* Seconds until the process hits its limit at the current net rate. */
static double secs_to_limit(weir_rt *rt, weir__proc *p, samp *r) {
  double net = r->in_rate - r->out_rate;
  if (net <= 0.0) return -1.0;
  uint64_t len = weir__mbox_len(p);
  uint32_t max_len = WEIR__LD(p->max_len);
  if (max_len) return len >= max_len ? 0.0 : (double)(max_len - len) / net;
  double per_msg = len ? (double)weir__mbox_bytes(p) / (double)len +
                             (double)sizeof(weir__msg)
                       : (double)sizeof(weir__msg);
  uint64_t room;
  if (rt->opts.max_mailbox_bytes) {
    uint64_t q = atomic_load_explicit(&rt->queued_bytes, memory_order_relaxed);
    room = q >= rt->opts.max_mailbox_bytes ? 0 : rt->opts.max_mailbox_bytes - q;
  } else {
    room = mem_available();
  }
  return (double)room / (net * per_msg);
}

static void fill(weir_alarm *al, weir_rt *rt, weir__proc *p, samp *r,
                 weir_alarm_kind kind, int on) {
  memset(al, 0, sizeof *al);
  al->kind = kind;
  al->on = on;
  al->pid = weir__proc_pid(p);
  weir__registry_name(rt, p, al->registered_name, sizeof al->registered_name);
  const weir_server *srv = WEIR__LD(p->srv); /* see incarnate */
  const char *mod = srv && srv->name ? srv->name : "anonymous";
  const char *cur = atomic_load_explicit(&p->current, memory_order_relaxed);
  if (cur)
    snprintf(al->current_function, sizeof al->current_function, "%s:%s", mod,
             cur);
  else
    snprintf(al->current_function, sizeof al->current_function, "%s:waiting",
             mod);
  al->queue_len = weir__mbox_len(p);
  al->in_rate = r->in_rate;
  al->out_rate = r->out_rate;
  al->secs_to_limit = secs_to_limit(rt, p, r);
}

#define ALL_SUBS ((weir_pid){UINT64_MAX})
static void deliver_all(weir_rt *rt, weir__alarm_state *a,
                        const weir_alarm *al);

static void retry_later(weir__alarm_state *a, const weir_alarm *al,
                        weir_pid to) {
  weir__lock(&a->mu, WEIR__LK_ALARM);
  if (a->nretry < RETRY_MAX) {
    a->retry[a->nretry].al = *al;
    a->retry[a->nretry].to = to;
    a->nretry++;
  } else {
    a->lost++;
  }
  weir__unlock(&a->mu, WEIR__LK_ALARM);
}

/* Records a raised alarm in (or drops a cleared one from) the active list;
   false if the list could not grow. */
static bool active_put(weir__alarm_state *a, const weir_alarm *al) {
  weir__lock(&a->mu, WEIR__LK_ALARM);
  for (size_t i = 0; i < a->nactive; i++)
    if (a->active[i].kind == al->kind &&
        weir_pid_eq(a->active[i].pid, al->pid)) {
      if (al->on)
        a->active[i] = *al;
      else
        a->active[i] = a->active[--a->nactive];
      weir__unlock(&a->mu, WEIR__LK_ALARM);
      return true;
    }
  if (al->on) {
    if (a->nactive == a->capactive) {
      size_t cap = a->capactive ? a->capactive * 2 : 16;
      weir_alarm *n = weir__malloc(cap * sizeof *n);
      if (n) {
        if (a->nactive) memcpy(n, a->active, a->nactive * sizeof *n);
        weir__free(a->active);
        a->active = n;
        a->capactive = cap;
      }
    }
    if (a->nactive == a->capactive) {
      weir__unlock(&a->mu, WEIR__LK_ALARM);
      return false;
    }
    a->active[a->nactive++] = *al;
  }
  weir__unlock(&a->mu, WEIR__LK_ALARM);
  return true;
}

static void active_set(weir__alarm_state *a, const weir_alarm *al) {
  if (!active_put(a, al)) retry_later(a, al, WEIR_PID_NONE);
}

static bool deliver_alarm(weir_rt *rt, weir_pid to, const weir_alarm *al) {
  weir__msg *m = weir__msg_new(WEIR__K_INFO, WEIR_TAG_ALARM,
                               (uint32_t)(sizeof(weir_ref) + sizeof *al));
  if (!m) return false;
  weir_ref zero = 0;
  memcpy(weir__msg_data(m), &zero, sizeof zero);
  memcpy((char *)weir__msg_data(m) + sizeof zero, al, sizeof *al);
  m->flags |= WEIR__MF_NOBOUND;
  if (weir__deliver(rt, to, m) == WEIR_ENOPROC)
    weir_alarm_unsubscribe(rt, to); /* it ended: forget it */
  return true;
}

/* Once per tick: what failed for want of memory goes again, in order. */
static void retry_pending(weir_rt *rt, weir__alarm_state *a) {
  weir__lock(&a->mu, WEIR__LK_ALARM);
  unsigned n = a->nretry;
  weir__unlock(&a->mu, WEIR__LK_ALARM);
  for (unsigned i = 0; i < n; i++) {
    weir__lock(&a->mu, WEIR__LK_ALARM);
    weir_alarm al = a->retry[0].al;
    weir_pid to = a->retry[0].to;
    a->nretry--;
    memmove(&a->retry[0], &a->retry[1], a->nretry * sizeof a->retry[0]);
    weir__unlock(&a->mu, WEIR__LK_ALARM);
    bool ok;
    if (weir_pid_is_none(to))
      ok = active_put(a, &al);
    else if (weir_pid_eq(to, ALL_SUBS))
      ok = (deliver_all(rt, a, &al), true);
    else
      ok = deliver_alarm(rt, to, &al);
    if (!ok) retry_later(a, &al, to);
  }
}

/* To every subscriber; what cannot be sent now is retried next tick. */
static void deliver_all(weir_rt *rt, weir__alarm_state *a,
                        const weir_alarm *al) {
  weir__lock(&rt->sub_mu, WEIR__LK_SUB);
  size_t n = rt->nalarm_subs;
  weir_pid *subs = n ? weir__malloc(n * sizeof *subs) : NULL;
  if (subs) memcpy(subs, rt->alarm_subs, n * sizeof *subs);
  weir__unlock(&rt->sub_mu, WEIR__LK_SUB);
  if (!subs) {
    if (n) retry_later(a, al, ALL_SUBS); /* no memory for the copy */
    return;
  }
  for (size_t i = 0; i < n; i++)
    if (!deliver_alarm(rt, subs[i], al)) retry_later(a, al, subs[i]);
  weir__free(subs);
}

static void emit(weir_rt *rt, const weir_alarm *al) {
  weir__alarm_state *a = rt->alarm;
  active_set(a, al);
  if (rt->opts.alarm_log) {
    char pid[32];
    weir_pid_format(al->pid, pid, sizeof pid);
    char left[48];
    if (al->secs_to_limit < 0)
      snprintf(left, sizeof left, "never");
    else
      snprintf(left, sizeof left, "%.1fs", al->secs_to_limit);
    fprintf(stderr,
            "weir: alarm %s %s node=%s pid=%s name=%s "
            "current_function=%s queue_len=%llu in_rate=%.1f/s "
            "out_rate=%.1f/s time_to_limit=%s\n",
            kind_name(al->kind), al->on ? "raised" : "cleared", rt->node_name,
            pid, al->registered_name[0] ? al->registered_name : "-",
            al->current_function, (unsigned long long)al->queue_len,
            al->in_rate, al->out_rate, left);
  }
  deliver_all(rt, a, al);
}

/* Updates p's record (rec_mu held); alarms to emit go to out[*nout]. */
static void sample_proc(weir_rt *rt, weir__alarm_state *a, weir__proc *p,
                        uint64_t now, double dt, weir_alarm *emit_out,
                        int *nout) {
  samp *r = rec_of(a, p->slot);
  if (!r) return;
  uint32_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
  uint64_t in = atomic_load_explicit(&p->in_count, memory_order_relaxed);
  uint64_t outc = atomic_load_explicit(&p->out_count, memory_order_relaxed);
  uint64_t len = in > outc ? in - outc : 0;
  if (r->gen != g) { /* a new incarnation: start over */
    bool was_on = r->lmq_on || r->growth_on;
    if (was_on) { /* the old one's alarms end with it */
      for (int k = 0; k < 2; k++) {
        weir_alarm *al = &emit_out[(*nout)++];
        memset(al, 0, sizeof *al);
        al->pid = weir__pid_make(p->slot, r->gen);
        al->kind = k ? WEIR_ALARM_QUEUE_GROWTH : WEIR_ALARM_LONG_MESSAGE_QUEUE;
        al->secs_to_limit = -2.0; /* marks a silent removal */
      }
    }
    memset(r, 0, sizeof *r);
    r->gen = g;
    r->last_in = in;
    r->last_out = outc;
    r->last_len = len;
    return;
  }
  /* EWMA with a ~1 s time constant */
  double alpha = dt / (1.0 + dt);
  r->in_rate += alpha * ((double)(in - r->last_in) / dt - r->in_rate);
  r->out_rate += alpha * ((double)(outc - r->last_out) / dt - r->out_rate);
  r->last_in = in;
  r->last_out = outc;

  weir__slotx *x = WEIR__LD(p->x);
  uint32_t xen = x ? WEIR__LD(x->alarm_enable) : 0;
  uint32_t en = xen ? xen : rt->opts.alarm_enable;
  uint32_t dis = xen ? WEIR__LD(x->alarm_disable) : rt->opts.alarm_disable;
  if (en) {
    if (!r->lmq_on && len >= en) {
      r->lmq_on = 1;
      fill(&emit_out[(*nout)++], rt, p, r, WEIR_ALARM_LONG_MESSAGE_QUEUE, 1);
    } else if (r->lmq_on && len <= dis) {
      r->lmq_on = 0;
      fill(&emit_out[(*nout)++], rt, p, r, WEIR_ALARM_LONG_MESSAGE_QUEUE, 0);
    }
  }

  uint64_t window = (uint64_t)rt->opts.alarm_growth_ms * 1000000ull;
  if (len > r->last_len && r->in_rate > r->out_rate) {
    r->shrink_since = 0;
    if (!r->grow_since) r->grow_since = now;
    if (!r->growth_on && now - r->grow_since >= window && len >= 64) {
      r->growth_on = 1;
      fill(&emit_out[(*nout)++], rt, p, r, WEIR_ALARM_QUEUE_GROWTH, 1);
    }
  } else if (len < r->last_len || len == 0) {
    r->grow_since = 0;
    if (!r->shrink_since) r->shrink_since = now;
    if (r->growth_on && (len == 0 || now - r->shrink_since >= window)) {
      r->growth_on = 0;
      fill(&emit_out[(*nout)++], rt, p, r, WEIR_ALARM_QUEUE_GROWTH, 0);
    }
  }
  r->last_len = len;
}

static void sample_budget(weir_rt *rt, weir__alarm_state *a) {
  uint64_t b = rt->opts.max_mailbox_bytes;
  if (!b) return;
  uint64_t q = atomic_load_explicit(&rt->queued_bytes, memory_order_relaxed);
  int on = a->budget_on;
  if (!on && q >= b / 10 * 8)
    on = 1;
  else if (on && q < b / 10 * 6)
    on = 0;
  if (on == a->budget_on) return;
  a->budget_on = on;
  weir_alarm al;
  memset(&al, 0, sizeof al);
  al.kind = WEIR_ALARM_MAILBOX_BUDGET;
  al.on = on;
  al.queue_len = q; /* bytes, for this kind */
  al.secs_to_limit = -1.0;
  snprintf(al.current_function, sizeof al.current_function, "node");
  emit(rt, &al);
}

static bool has_rec(weir__alarm_state *a, uint32_t slot) {
  uint32_t c = slot / CHUNK;
  return c < a->nchunks && a->chunks[c] && a->chunks[c][slot % CHUNK].gen;
}

static void *sampler_main(void *arg) {
  weir_rt *rt = arg;
  weir__alarm_state *a = rt->alarm;
  uint64_t last = weir__now_ns();
  uint64_t scan_ns = 0;
  weir__lock(&a->mu, WEIR__LK_ALARM);
  while (!a->stop) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t wait = WEIR__SAMPLE_MS * 1000000ull;
    if (scan_ns * 10 > wait) wait = scan_ns * 10;
    uint64_t abs_ns =
        (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + wait;
    ts.tv_sec = (time_t)(abs_ns / 1000000000ull);
    ts.tv_nsec = (long)(abs_ns % 1000000000ull);
    pthread_cond_timedwait(&a->cv, &a->mu, &ts);
    if (a->stop) break;
    weir__unlock(&a->mu, WEIR__LK_ALARM);
    uint64_t now = weir__now_ns();
    double dt = (double)(now - last) / 1e9;
    last = now;
    if (dt <= 0) dt = 1e-3;
    uint32_t used = weir__proc_table_used(rt);
    uint64_t t0 = weir__now_ns();
    weir__lock(&a->rec_mu, WEIR__LK_ALARM_REC);
    for (uint32_t i = 0; i < used; i++) {
      weir__proc *p = weir__proc_slot(rt, i);
      if (!p ||
          atomic_load_explicit(&p->life, memory_order_acquire) != WEIR__P_LIVE)
        continue;
      /* A process that never got a message has no rates and no alarms:
         skip it without touching a record (idle servers cost nothing). */
      if (atomic_load_explicit(&p->in_count, memory_order_relaxed) ==
              atomic_load_explicit(&p->base_in, memory_order_relaxed) &&
          !has_rec(a, i))
        continue;
      weir_alarm out[4];
      int nout = 0;
      sample_proc(rt, a, p, now, dt, out, &nout);
      if (nout) {
        weir__unlock(&a->rec_mu, WEIR__LK_ALARM_REC);
        for (int k = 0; k < nout; k++) {
          if (out[k].secs_to_limit == -2.0)
            active_set(a, &out[k]); /* on == 0: drop it quietly */
          else
            emit(rt, &out[k]);
        }
        weir__lock(&a->rec_mu, WEIR__LK_ALARM_REC);
      }
    }
    weir__unlock(&a->rec_mu, WEIR__LK_ALARM_REC);
    /* Keep the sampler's share of a core small on huge nodes: wait ten
       times as long as the scan took before the next one. */
    scan_ns = weir__now_ns() - t0;
    sample_budget(rt, a);
    retry_pending(rt, a);
    weir__lock(&a->mu, WEIR__LK_ALARM);
  }
  weir__unlock(&a->mu, WEIR__LK_ALARM);
  return NULL;
}

int weir__alarm_start(weir_rt *rt) {
  weir__alarm_state *a = weir__calloc(1, sizeof *a);
  if (!a) return WEIR_ENOMEM;
  pthread_mutex_init(&a->mu, NULL);
  pthread_mutex_init(&a->rec_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&a->cv, &ca);
  pthread_condattr_destroy(&ca);
  rt->alarm = a;
  if (pthread_create(&a->thread, NULL, sampler_main, rt) != 0) {
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->rec_mu);
    weir__free(a);
    rt->alarm = NULL;
    return WEIR_ESYS;
  }
  return WEIR_OK;
}

void weir__alarm_stop(weir_rt *rt) {
  weir__alarm_state *a = rt->alarm;
  if (!a) return;
  weir__lock(&a->mu, WEIR__LK_ALARM);
  a->stop = 1;
  pthread_cond_signal(&a->cv);
  weir__unlock(&a->mu, WEIR__LK_ALARM);
  pthread_join(a->thread, NULL);
  for (uint32_t i = 0; i < a->nchunks; i++)
    weir__free(a->chunks[i]);
  weir__free(a->chunks);
  weir__free(a->active);
  pthread_cond_destroy(&a->cv);
  pthread_mutex_destroy(&a->mu);
  pthread_mutex_destroy(&a->rec_mu);
  weir__free(a);
  rt->alarm = NULL;
}

void weir__rates(weir_rt *rt, weir__proc *p, double *in_rate,
                 double *out_rate) {
  weir__alarm_state *a = rt->alarm;
  *in_rate = *out_rate = 0.0;
  if (!a) return;
  weir__lock(&a->rec_mu, WEIR__LK_ALARM_REC);
  uint32_t c = p->slot / CHUNK;
  if (c < a->nchunks && a->chunks[c]) {
    samp *r = &a->chunks[c][p->slot % CHUNK];
    if (r->gen == atomic_load_explicit(&p->gen, memory_order_relaxed)) {
      *in_rate = r->in_rate;
      *out_rate = r->out_rate;
    }
  }
  weir__unlock(&a->rec_mu, WEIR__LK_ALARM_REC);
}

uint64_t weir__alarms_active(weir_rt *rt) {
  weir__alarm_state *a = rt->alarm;
  if (!a) return 0;
  weir__lock(&a->mu, WEIR__LK_ALARM);
  uint64_t n = a->nactive;
  weir__unlock(&a->mu, WEIR__LK_ALARM);
  return n;
}

int weir_alarms(weir_rt *rt, weir_alarm *out, size_t n, size_t *count) {
  if (!rt || (n && !out)) return WEIR_EINVAL;
  weir__alarm_state *a = rt->alarm;
  size_t k = 0;
  if (a) {
    weir__lock(&a->mu, WEIR__LK_ALARM);
    k = a->nactive;
    for (size_t i = 0; i < k && i < n; i++)
      out[i] = a->active[i];
    weir__unlock(&a->mu, WEIR__LK_ALARM);
  }
  if (count) *count = k;
  return WEIR_OK;
}

/* ---- subscribers ------------------------------------------------------ */

int weir_alarm_subscribe(weir_rt *rt, weir_pid pid) {
  if (!rt) return WEIR_EINVAL;
  if (!weir__proc_get(rt, pid)) return WEIR_ENOPROC;
  weir__lock(&rt->sub_mu, WEIR__LK_SUB);
  for (size_t i = 0; i < rt->nalarm_subs; i++)
    if (weir_pid_eq(rt->alarm_subs[i], pid)) {
      weir__unlock(&rt->sub_mu, WEIR__LK_SUB);
      return WEIR_OK;
    }
  weir_pid *n = weir__malloc((rt->nalarm_subs + 1) * sizeof *n);
  if (!n) {
    weir__unlock(&rt->sub_mu, WEIR__LK_SUB);
    return WEIR_ENOMEM;
  }
  if (rt->nalarm_subs) memcpy(n, rt->alarm_subs, rt->nalarm_subs * sizeof *n);
  n[rt->nalarm_subs++] = pid;
  weir__free(rt->alarm_subs);
  rt->alarm_subs = n;
  weir__unlock(&rt->sub_mu, WEIR__LK_SUB);
  return WEIR_OK;
}

int weir_alarm_unsubscribe(weir_rt *rt, weir_pid pid) {
  if (!rt) return WEIR_EINVAL;
  int rc = WEIR_ENOTFOUND;
  weir__lock(&rt->sub_mu, WEIR__LK_SUB);
  for (size_t i = 0; i < rt->nalarm_subs; i++)
    if (weir_pid_eq(rt->alarm_subs[i], pid)) {
      rt->alarm_subs[i] = rt->alarm_subs[--rt->nalarm_subs];
      rc = WEIR_OK;
      break;
    }
  weir__unlock(&rt->sub_mu, WEIR__LK_SUB);
  return rc;
}

void weir__alarm_free(weir_rt *rt) {
  weir__free(rt->alarm_subs);
  rt->alarm_subs = NULL;
  rt->nalarm_subs = 0;
}
