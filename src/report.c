/*
 * report.c: crash and supervisor reports (OTP's gen_server "terminating"
 * error report and the supervisor's child_terminated, as one record).
 *
 * A process that ends abnormally fills a weir_report in its own thread
 * (weir__report_exit, called from the exit path before its links hear of
 * it). An unsupervised one is final at once. A supervised one waits in a
 * small table of pending reports until its supervisor, handling the exit
 * signal, says what it did (weir__report_sup: restarted as pid X, restart N
 * of max_restarts in max_seconds, or gave up); so the log gets one line per
 * crash that names the culprit, the message in hand and the remedy. A
 * supervisor that never says (it died too, or is slow) lets the report go
 * after PEND_NS with action "unknown".
 *
 * A final report goes into the ring (the last report_ring, for weirctl
 * crashes), into the per-behaviour counters (metrics), and, if the rate
 * limits allow (report_rate per node and report_rate_proc per slot, per
 * second), into the log queue. One reporter thread per node empties that
 * queue: it formats the logfmt line and writes it to stderr or calls the
 * log hook, so a slow hook or a blocked stderr never stalls a scheduler.
 * What the limits or a full queue held back is counted exactly and logged
 * as one "suppressed" line per second.
 *
 * Trade-off: everything is preallocated at start (pending table, queue,
 * ring, counters) and guarded by one mutex held only for a copy, so making
 * a report allocates nothing (a crash under memory pressure is still
 * reported) and memory is bounded whatever the crash rate. The cost is
 * ~0.5 KB per ring entry and a mutex per crash, which only crashes pay.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#define PEND_MAX  64
#define QUEUE_MAX 64
#define PER_MAX   128 /* slots tracked by the per-process limit */
#define BEH_MAX   64  /* behaviours counted by name; the rest are "other" */
#define PEND_NS   5000000000ull
#define LINE_MAX  1024

typedef struct pend {
  weir_report r;
  uint64_t due_ns; /* 0 = free */
  uint32_t slot;
} pend;

typedef struct per_proc {
  uint32_t slot;
  uint32_t count; /* logged in window `win` */
  uint64_t win;
} per_proc;

typedef struct weir__report_state {
  pthread_t thr;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  uint32_t rate, rate_proc;
  int level;
  pend pend[PEND_MAX];
  unsigned npend;
  weir_report q[QUEUE_MAX]; /* the log queue, FIFO */
  unsigned qhead, qlen;
  weir_report *ring;
  unsigned ring_cap, ring_len, ring_pos; /* ring_pos: next write */
  uint64_t seq;                          /* reports made */
  uint64_t win, win_count;               /* node limit: second, logged in it */
  uint64_t held;                         /* suppressed, not yet logged */
  uint64_t suppressed_total;
  per_proc per[PER_MAX];
  struct {
    char name[64]; /* a copy: a behaviour may be unloaded */
    uint64_t n;
  } beh[BEH_MAX];
  unsigned nbeh;
  uint64_t beh_other;
} weir__report_state;

/* ---- names and the line ------------------------------------------------ */

const char *weir_reason_name(int reason) {
  switch (reason) {
  case WEIR_REASON_NORMAL:
    return "normal";
  case WEIR_REASON_SHUTDOWN:
    return "shutdown";
  case WEIR_REASON_KILL:
    return "kill";
  case WEIR_REASON_KILLED:
    return "killed";
  case WEIR_REASON_NOPROC:
    return "noproc";
  default:
    break;
  }
  if (reason > 0) return "exit";
  const char *n = weir_err_name(reason);
  return strcmp(n, "WEIR_UNKNOWN") == 0 ? "error" : n;
}

const char *weir_sup_action_name(weir_sup_action a) {
  switch (a) {
  case WEIR_SUP_ACTION_NONE:
    return "none";
  case WEIR_SUP_ACTION_RESTARTED:
    return "restarted";
  case WEIR_SUP_ACTION_NOT_RESTARTED:
    return "not_restarted";
  case WEIR_SUP_ACTION_GAVE_UP:
    return "gave_up";
  case WEIR_SUP_ACTION_STOPPED:
    return "stopped";
  case WEIR_SUP_ACTION_UNKNOWN:
    return "unknown";
  }
  return "unknown";
}

typedef struct {
  char *p;
  size_t n, len; /* len: the full length, also past n */
} lbuf;

static void put(lbuf *b, const char *s, size_t k) {
  if (b->len < b->n) {
    size_t room = b->n - 1 - b->len;
    memcpy(b->p + b->len, s, k < room ? k : room);
    b->p[b->len + (k < room ? k : room)] = 0;
  }
  b->len += k;
}

static void putf(lbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void putf(lbuf *b, const char *fmt, ...) {
  char tmp[160];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (k > 0) put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* A logfmt value: bare if it is plain, else quoted with \" \\ and \xNN for
   control bytes and bytes >= 0x80 (a name is anyone's bytes). */
static void put_val(lbuf *b, const char *s) {
  if (!*s) {
    put(b, "-", 1);
    return;
  }
  bool plain = true;
  for (const unsigned char *u = (const unsigned char *)s; *u; u++)
    if (*u <= ' ' || *u >= 0x7F || *u == '"' || *u == '=' || *u == '\\')
      plain = false;
  if (plain) {
    put(b, s, strlen(s));
    return;
  }
  put(b, "\"", 1);
  for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
    if (*u == '"' || *u == '\\') {
      char e[2] = {'\\', (char)*u};
      put(b, e, 2);
    } else if (*u < ' ' || *u >= 0x7F) {
      putf(b, "\\x%02x", *u);
    } else {
      put(b, (const char *)u, 1);
    }
  }
  put(b, "\"", 1);
}

static void put_kv(lbuf *b, const char *k, const char *v) {
  putf(b, " %s=", k);
  put_val(b, v);
}

static void put_pid(lbuf *b, const char *k, weir_pid pid) {
  char buf[32];
  if (weir_pid_is_none(pid))
    snprintf(buf, sizeof buf, "none");
  else
    weir_pid_format(pid, buf, sizeof buf);
  putf(b, " %s=%s", k, buf);
}

static void put_time(lbuf *b, double t) {
  time_t s = (time_t)t;
  struct tm tm;
  gmtime_r(&s, &tm);
  char buf[40];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  putf(b, " time=%s.%03dZ", buf, (int)((t - (double)s) * 1000.0) % 1000);
}

int weir_report_format(const weir_report *r, char *buf, size_t n) {
  if (!r || !buf || n == 0) return WEIR_EINVAL;
  lbuf b = {buf, n, 0};
  buf[0] = 0;
  if (r->kind == WEIR_REPORT_SUPPRESSED) {
    put(&b, "weir: suppressed", 16);
    put_time(&b, r->time);
    put_kv(&b, "node", r->node);
    putf(&b, " reports=%llu", (unsigned long long)r->suppressed);
    return (int)(b.len > INT32_MAX ? INT32_MAX : b.len);
  }
  put(&b, r->kind == WEIR_REPORT_CRASH ? "weir: crash" : "weir: supervisor",
      r->kind == WEIR_REPORT_CRASH ? 11 : 16);
  put_time(&b, r->time);
  put_kv(&b, "node", r->node);
  put_pid(&b, "pid", r->pid);
  put_kv(&b, "name", r->registered_name);
  put_kv(&b, "behaviour", r->behaviour);
  if (r->kind == WEIR_REPORT_SUPERVISOR) {
    put(&b, " event=gave_up reason=reached_max_restart_intensity", 51);
    putf(&b, " max_restarts=%d max_seconds=%d", r->max_restarts,
         r->max_seconds);
    put_pid(&b, "child", r->child);
    put_kv(&b, "child_id", r->child_id);
    return (int)(b.len > INT32_MAX ? INT32_MAX : b.len);
  }
  put_kv(&b, "callback", r->callback);
  if (!weir_pid_is_none(r->signal_from))
    put_pid(&b, "signal_from", r->signal_from);
  putf(&b, " reason=%s code=%d", weir_reason_name(r->reason), r->reason);
  if (r->has_msg) {
    putf(&b, " msg_tag=%u msg_len=%u", r->msg_tag, r->msg_len);
    put_pid(&b, "msg_from", r->msg_from);
    put(&b, " msg_head=", 10);
    if (!r->msg_head_len) put(&b, "-", 1);
    for (uint32_t i = 0; i < r->msg_head_len && i < WEIR_REPORT_HEAD; i++)
      putf(&b, "%02x", r->msg_head[i]);
  }
  putf(&b, " queue_len=%llu", (unsigned long long)r->queue_len);
  put_pid(&b, "supervisor", r->supervisor);
  if (!weir_pid_is_none(r->supervisor)) {
    put_kv(&b, "supervisor_name", r->supervisor_name);
    put_kv(&b, "child_id", r->child_id);
  }
  putf(&b, " action=%s", weir_sup_action_name(r->action));
  if (r->action == WEIR_SUP_ACTION_RESTARTED)
    put_pid(&b, "restarted_as", r->restarted_as);
  if (r->action == WEIR_SUP_ACTION_RESTARTED ||
      r->action == WEIR_SUP_ACTION_GAVE_UP)
    putf(&b, " restarts=%d max_restarts=%d max_seconds=%d", r->restarts,
         r->max_restarts, r->max_seconds);
  return (int)(b.len > INT32_MAX ? INT32_MAX : b.len);
}

/* ---- the state ------------------------------------------------------- */

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A final report (mu held): ring, counters, and the log if the limits
   allow. */
static void finalize(weir__report_state *s, weir_report *r, uint32_t slot,
                     const char *beh) {
  WEIR__ASSERT(weir__lock_held(&s->mu));
  s->ring[s->ring_pos] = *r;
  s->ring_pos = (s->ring_pos + 1) % s->ring_cap;
  if (s->ring_len < s->ring_cap) s->ring_len++;
  if (r->kind == WEIR_REPORT_CRASH) {
    unsigned i = 0;
    while (i < s->nbeh && strcmp(s->beh[i].name, beh) != 0)
      i++;
    if (i < s->nbeh) {
      s->beh[i].n++;
    } else if (s->nbeh < BEH_MAX) {
      snprintf(s->beh[s->nbeh].name, sizeof s->beh[0].name, "%s", beh);
      s->beh[s->nbeh++].n = 1;
    } else {
      s->beh_other++;
    }
  }
  if (s->level < WEIR_LOG_ERROR) return; /* logging off */
  uint64_t win = weir__now_ns() / 1000000000ull;
  if (win != s->win) {
    s->win = win;
    s->win_count = 0;
  }
  per_proc *pp = NULL, *old = &s->per[0];
  for (unsigned i = 0; i < PER_MAX && !pp; i++) {
    if (s->per[i].slot == slot && s->per[i].win == win)
      pp = &s->per[i];
    else if (s->per[i].win < old->win)
      old = &s->per[i];
  }
  if (!pp) { /* a slot not seen this second takes the stalest entry */
    pp = old;
    pp->slot = slot;
    pp->win = win;
    pp->count = 0;
  }
  if (s->win_count >= s->rate || pp->count >= s->rate_proc ||
      s->qlen == QUEUE_MAX) {
    s->held++;
    s->suppressed_total++;
    return;
  }
  s->win_count++;
  pp->count++;
  s->q[(s->qhead + s->qlen++) % QUEUE_MAX] = *r;
  pthread_cond_signal(&s->cv);
}

static const char *static_behaviour(const weir__proc *p) {
  return p->srv && p->srv->name ? p->srv->name : "anonymous";
}

void weir__report_exit(weir_ctx *cx, int reason) {
  weir__proc *p = cx->p;
  weir_rt *rt = p->rt;
  weir__report_state *s = rt->report;
  if (!s || !p->srv) return;
  weir_report r;
  memset(&r, 0, sizeof r);
  r.kind = WEIR_REPORT_CRASH;
  r.time = wall_now();
  snprintf(r.node, sizeof r.node, "%s", rt->node_name);
  r.pid = weir__proc_pid(p);
  weir__registry_name(rt, p, r.registered_name, sizeof r.registered_name);
  const char *beh = static_behaviour(p);
  snprintf(r.behaviour, sizeof r.behaviour, "%s", beh);
  snprintf(r.callback, sizeof r.callback, "%s",
           cx->crash_cb ? cx->crash_cb : "");
  r.signal_from.id = cx->exit_from;
  r.reason = reason;
  weir__msg *m = cx->crash_msg;
  if (m) {
    uint32_t pre = weir__kind_prefix(m->kind);
    uint32_t len = m->len >= pre ? m->len - pre : 0;
    r.has_msg = 1;
    /* the tag handle_info saw for a runtime message */
    r.msg_tag = m->kind == WEIR__K_EXIT      ? WEIR_TAG_EXIT
                : m->kind == WEIR__K_DOWN    ? WEIR_TAG_DOWN
                : m->kind == WEIR__K_REPLY   ? WEIR_TAG_REPLY
                : m->kind == WEIR__K_TIMEOUT ? WEIR_TAG_TIMEOUT
                                             : m->tag;
    r.msg_len = len;
    r.msg_from.id = m->from;
    r.msg_head_len = len < WEIR_REPORT_HEAD ? len : WEIR_REPORT_HEAD;
    memcpy(r.msg_head, (const char *)weir__msg_data(m) + pre, r.msg_head_len);
  }
  r.queue_len = weir__mbox_len(p);
  weir__slotx *x = p->x;
  uint64_t sup = x ? WEIR__LD(x->supervisor) : 0;
  /* relaxed: a hint. At stop no supervisor will say what it did, so the
     report goes at once; a stale 0 only makes it wait (PEND_NS at most,
     and weir__report_stop flushes what is pending). */
  bool wait = sup && !atomic_load_explicit(&rt->stopping, memory_order_relaxed);
  r.supervisor.id = sup;
  r.action = sup ? WEIR_SUP_ACTION_UNKNOWN : WEIR_SUP_ACTION_NONE;
  if (sup) { /* filled in now, in case the supervisor never says */
    weir__proc *sp = weir__proc_get(rt, r.supervisor);
    if (sp)
      weir__registry_name(rt, sp, r.supervisor_name, sizeof r.supervisor_name);
  }
  weir__lock(&s->mu, WEIR__LK_REPORT);
  r.seq = ++s->seq;
  if (wait && s->npend < PEND_MAX) {
    for (unsigned i = 0; i < PEND_MAX; i++)
      if (!s->pend[i].due_ns) {
        s->pend[i].r = r;
        s->pend[i].slot = p->slot;
        s->pend[i].due_ns = weir__now_ns() + PEND_NS;
        s->npend++;
        pthread_cond_signal(&s->cv); /* its deadline */
        break;
      }
  } else {
    finalize(s, &r, p->slot, beh);
  }
  weir__unlock(&s->mu, WEIR__LK_REPORT);
}

void weir__report_sup(weir_rt *rt, weir_pid child, const weir__sup_note *n) {
  weir__report_state *s = rt->report;
  if (!s) return;
  weir__lock(&s->mu, WEIR__LK_REPORT);
  for (unsigned i = 0; i < PEND_MAX && s->npend; i++) {
    pend *e = &s->pend[i];
    if (!e->due_ns || !weir_pid_eq(e->r.pid, child)) continue;
    e->r.action = n->action;
    e->r.restarted_as = n->restarted_as;
    e->r.restarts = n->restarts;
    e->r.max_restarts = n->max_restarts;
    e->r.max_seconds = n->max_seconds;
    snprintf(e->r.supervisor_name, sizeof e->r.supervisor_name, "%s",
             n->sup_name);
    snprintf(e->r.child_id, sizeof e->r.child_id, "%s", n->child_id);
    e->due_ns = 0;
    s->npend--;
    weir_report r = e->r;
    finalize(s, &r, e->slot, r.behaviour);
    break;
  }
  weir__unlock(&s->mu, WEIR__LK_REPORT);
}

void weir__report_gave_up(weir_rt *rt, weir_pid sup, weir_pid child,
                          const weir__sup_note *n) {
  weir__report_state *s = rt->report;
  if (!s) return;
  weir_report r;
  memset(&r, 0, sizeof r);
  r.kind = WEIR_REPORT_SUPERVISOR;
  r.time = wall_now();
  snprintf(r.node, sizeof r.node, "%s", rt->node_name);
  r.pid = sup;
  snprintf(r.registered_name, sizeof r.registered_name, "%s", n->sup_name);
  snprintf(r.behaviour, sizeof r.behaviour, "supervisor");
  r.reason = WEIR_REASON_SHUTDOWN;
  r.action = WEIR_SUP_ACTION_GAVE_UP;
  r.restarts = n->restarts;
  r.max_restarts = n->max_restarts;
  r.max_seconds = n->max_seconds;
  r.child = child;
  snprintf(r.child_id, sizeof r.child_id, "%s", n->child_id);
  weir__lock(&s->mu, WEIR__LK_REPORT);
  r.seq = ++s->seq;
  finalize(s, &r, weir__pid_slot(sup), "supervisor");
  weir__unlock(&s->mu, WEIR__LK_REPORT);
}

/* ---- the reporter thread ---------------------------------------------- */

static void emit(weir_rt *rt, weir__report_state *s, const weir_report *r) {
  char line[LINE_MAX];
  weir_report_format(r, line, sizeof line);
  int level =
      r->kind == WEIR_REPORT_SUPPRESSED ? WEIR_LOG_WARNING : WEIR_LOG_ERROR;
  if (level > s->level) return;
  if (rt->opts.log.fn)
    rt->opts.log.fn(rt->opts.log.ud, level, r, line);
  else
    fprintf(stderr, "%s\n", line);
}

/* Pending reports past their deadline go as they are (mu held). */
static void expire(weir__report_state *s, uint64_t now, bool all) {
  WEIR__ASSERT(weir__lock_held(&s->mu));
  for (unsigned i = 0; i < PEND_MAX && s->npend; i++) {
    pend *e = &s->pend[i];
    if (!e->due_ns || (!all && e->due_ns > now)) continue;
    e->due_ns = 0;
    s->npend--;
    weir_report r = e->r;
    finalize(s, &r, e->slot, r.behaviour);
  }
}

static void *reporter_main(void *arg) {
  weir_rt *rt = arg;
  weir__report_state *s = rt->report;
  weir__lock(&s->mu, WEIR__LK_REPORT);
  for (;;) {
    uint64_t now = weir__now_ns();
    expire(s, now, s->stop);
    /* The suppressed line once the second they were held in is over (or
       at stop), with the exact count, after what was logged before. */
    bool flush_held = s->held && (s->stop || now / 1000000000ull != s->win);
    if (s->qlen || flush_held) {
      weir_report r;
      if (s->qlen) {
        r = s->q[s->qhead];
        s->qhead = (s->qhead + 1) % QUEUE_MAX;
        s->qlen--;
      } else {
        memset(&r, 0, sizeof r);
        r.kind = WEIR_REPORT_SUPPRESSED;
        r.time = wall_now();
        snprintf(r.node, sizeof r.node, "%s", rt->node_name);
        r.suppressed = s->held;
        s->held = 0;
      }
      weir__unlock(&s->mu, WEIR__LK_REPORT);
      emit(rt, s, &r);
      weir__lock(&s->mu, WEIR__LK_REPORT);
      continue;
    }
    if (s->stop) break;
    uint64_t until = UINT64_MAX;
    for (unsigned i = 0; i < PEND_MAX && s->npend; i++)
      if (s->pend[i].due_ns && s->pend[i].due_ns < until)
        until = s->pend[i].due_ns;
    if (s->held) {
      uint64_t next = (s->win + 1) * 1000000000ull;
      if (next < until) until = next;
    }
    if (until == UINT64_MAX) {
      pthread_cond_wait(&s->cv, &s->mu);
    } else {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      uint64_t now2 = weir__now_ns();
      uint64_t abs_ns = (uint64_t)ts.tv_sec * 1000000000ull +
                        (uint64_t)ts.tv_nsec +
                        (until > now2 ? until - now2 : 0) + 1000000ull;
      ts.tv_sec = (time_t)(abs_ns / 1000000000ull);
      ts.tv_nsec = (long)(abs_ns % 1000000000ull);
      pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
  }
  weir__unlock(&s->mu, WEIR__LK_REPORT);
  return NULL;
}

int weir__report_start(weir_rt *rt) {
  rt->hooks.crash = weir__report_exit;
  weir__report_state *s = weir__calloc(1, sizeof *s);
  if (!s) return WEIR_ENOMEM;
  s->rate = rt->opts.report_rate ? rt->opts.report_rate : 20;
  s->rate_proc = rt->opts.report_rate_proc ? rt->opts.report_rate_proc : 5;
  s->level = rt->opts.log.level ? rt->opts.log.level : WEIR_LOG_INFO;
  s->ring_cap = rt->opts.report_ring ? rt->opts.report_ring : 64;
  s->ring = weir__calloc(s->ring_cap, sizeof *s->ring);
  if (!s->ring) {
    weir__free(s);
    return WEIR_ENOMEM;
  }
  for (unsigned i = 0; i < PER_MAX; i++)
    s->per[i].slot = UINT32_MAX;
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &ca);
  pthread_condattr_destroy(&ca);
  rt->report = s;
  if (pthread_create(&s->thr, NULL, reporter_main, rt) != 0) {
    rt->report = NULL;
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    weir__free(s->ring);
    weir__free(s);
    return WEIR_ESYS;
  }
  return WEIR_OK;
}

/* After the last process ended: logs what is pending and queued, then
   frees everything. */
void weir__report_stop(weir_rt *rt) {
  weir__report_state *s = rt->report;
  if (!s) return;
  weir__lock(&s->mu, WEIR__LK_REPORT);
  s->stop = 1;
  pthread_cond_signal(&s->cv);
  weir__unlock(&s->mu, WEIR__LK_REPORT);
  pthread_join(s->thr, NULL);
  rt->report = NULL;
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  weir__free(s->ring);
  weir__free(s);
}

/* ---- reading ----------------------------------------------------------- */

int weir_crash_reports(weir_rt *rt, weir_report *out, size_t n, size_t *count,
                       uint64_t *total) {
  if (!rt || (n && !out)) return WEIR_EINVAL;
  weir__report_state *s = rt->report;
  size_t k = 0;
  uint64_t t = 0;
  if (s) {
    weir__lock(&s->mu, WEIR__LK_REPORT);
    t = s->seq - s->npend; /* pending ones are not reports yet */
    for (; k < n && k < s->ring_len; k++)
      out[k] = s->ring[(s->ring_pos + s->ring_cap - 1 - k) % s->ring_cap];
    weir__unlock(&s->mu, WEIR__LK_REPORT);
  }
  if (count) *count = k;
  if (total) *total = t;
  return WEIR_OK;
}

size_t weir__report_counts(weir_rt *rt, weir__report_count *out, size_t n,
                           uint64_t *other, uint64_t *suppressed) {
  weir__report_state *s = rt->report;
  size_t k = 0;
  *other = *suppressed = 0;
  if (!s) return 0;
  weir__lock(&s->mu, WEIR__LK_REPORT);
  for (; k < n && k < s->nbeh; k++) {
    snprintf(out[k].behaviour, sizeof out[k].behaviour, "%s", s->beh[k].name);
    out[k].n = s->beh[k].n;
  }
  *other = s->beh_other;
  *suppressed = s->suppressed_total;
  weir__unlock(&s->mu, WEIR__LK_REPORT);
  return k;
}
