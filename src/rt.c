/*
 * rt.c: the node: options, start, stop; error names; pid text.
 *
 * Start builds the process table (a fixed array of slot pointers, sized by
 * max_processes and touched only as slots are first used), the registry, the
 * timer thread, the I/O pool and the scheduler threads, in that order; a
 * failure unwinds what was built.
 *
 * Stop is top-down and lossless where it can be: new spawns are refused,
 * every process that has no supervisor gets a stop message at the tail of its
 * mailbox, in reverse start order (a supervisor that gets one stops its
 * children in reverse order before itself), so each drains what was queued
 * before it. Whatever is still alive at the timeout is killed. Then threads
 * are joined and every slot, message and table is freed.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

_Atomic uint64_t weir__rt_ids = 1;

/* ---- errors ----------------------------------------------------------- */

const char *weir_strerror(int err) {
  switch (err) {
  case WEIR_OK:
    return "success";
#define X(name, code, text)                                                    \
  case WEIR_##name:                                                            \
    return text;
    WEIR_ERRNO_MAP(X)
#undef X
  default:
    return "unknown error";
  }
}

const char *weir_err_name(int err) {
  switch (err) {
  case WEIR_OK:
    return "WEIR_OK";
#define X(name, code, text)                                                    \
  case WEIR_##name:                                                            \
    return "WEIR_" #name;
    WEIR_ERRNO_MAP(X)
#undef X
  default:
    return "WEIR_UNKNOWN";
  }
}

/* ---- pids as text ----------------------------------------------------- */

int weir_pid_format(weir_pid pid, char *buf, size_t n) {
  if (!buf || n == 0) return WEIR_EINVAL;
  int k =
      snprintf(buf, n, "<0.%u.%u>", weir__pid_slot(pid), weir__pid_gen(pid));
  if (k < 0 || (size_t)k >= n) {
    buf[0] = 0;
    return WEIR_EINVAL;
  }
  return k;
}

static int parse_u32(const char **s, uint32_t *out) {
  const char *p = *s;
  if (*p < '0' || *p > '9') return -1;
  uint64_t v = 0;
  while (*p >= '0' && *p <= '9') {
    v = v * 10 + (uint64_t)(*p - '0');
    if (v > UINT32_MAX) return -1;
    p++;
  }
  *out = (uint32_t)v;
  *s = p;
  return 0;
}

int weir_pid_parse(const char *str, weir_pid *pid) {
  if (!str || !pid) return WEIR_EINVAL;
  const char *s = str;
  int angle = 0;
  if (*s == '<') {
    angle = 1;
    s++;
  }
  uint32_t node, slot, gen;
  if (parse_u32(&s, &node) || node != 0 || *s++ != '.') return WEIR_EINVAL;
  if (parse_u32(&s, &slot) || *s++ != '.') return WEIR_EINVAL;
  if (parse_u32(&s, &gen)) return WEIR_EINVAL;
  if (angle && *s++ != '>') return WEIR_EINVAL;
  if (*s != 0) return WEIR_EINVAL;
  *pid = weir__pid_make(slot, gen);
  return WEIR_OK;
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
  pthread_mutex_lock(&rt->retire_mu);
  r->next = rt->retired;
  rt->retired = r;
  pthread_mutex_unlock(&rt->retire_mu);
  return WEIR_OK;
}

static void retired_free(weir_rt *rt) {
  weir__retired *r = rt->retired;
  while (r) {
    weir__retired *n = r->next;
    r->fn(r->obj);
    weir__free(r);
    r = n;
  }
  rt->retired = NULL;
}

/* ---- running a function inside a process ------------------------------ */

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
  void (*fn)(weir_ctx *, void *);
  void *arg;
} run_in_req;

static void run_in_cb(weir_ctx *cx, void *a) {
  run_in_req *r = a;
  r->fn(cx, r->arg);
  pthread_mutex_lock(&r->mu);
  r->done = 1;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

int weir__run_in(weir_rt *rt, weir_pid pid, void (*fn)(weir_ctx *, void *),
                 void *arg) {
  weir_ctx *cx = weir__current_ctx();
  if (cx && cx->p->rt == rt && weir_pid_eq(weir__proc_pid(cx->p), pid)) {
    fn(cx, arg);
    return WEIR_OK;
  }
  if (weir__on_scheduler()) return WEIR_EDEADLK;
  run_in_req r = {.done = 0, .fn = fn, .arg = arg};
  pthread_mutex_init(&r.mu, NULL);
  pthread_cond_init(&r.cv, NULL);
  int rc = weir__syscall_send(rt, pid, run_in_cb, &r);
  if (rc == WEIR_OK) {
    pthread_mutex_lock(&r.mu);
    while (!r.done)
      pthread_cond_wait(&r.cv, &r.mu);
    pthread_mutex_unlock(&r.mu);
  }
  pthread_cond_destroy(&r.cv);
  pthread_mutex_destroy(&r.mu);
  return rc;
}

/* ---- options, start ------------------------------------------------- */

void weir_rt_opts_init(weir_rt_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->alarm_log = 1;
}

static unsigned online_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1;
}

static void rt_free(weir_rt *rt);

int weir_rt_start(const weir_rt_opts *o, weir_rt **out) {
  weir_rt_opts def;
  if (!out) return WEIR_EINVAL;
  if (!o) {
    weir_rt_opts_init(&def);
    o = &def;
  }
  if (o->schedulers > 1024 || (o->max_processes && o->max_processes < 2) ||
      (o->node_name && (!*o->node_name || strlen(o->node_name) > 63)))
    return WEIR_EINVAL;
  if (o->alarm_enable && o->alarm_disable > o->alarm_enable) return WEIR_EINVAL;
  weir__pools_acquire();
  weir_rt *rt = weir__calloc(1, sizeof *rt);
  if (!rt) {
    weir__pools_release();
    return WEIR_ENOMEM;
  }
  rt->opts = *o;
  rt->opts.node_name = NULL;
  rt->opts.console = NULL;
  if (!rt->opts.schedulers) rt->opts.schedulers = online_cpus();
  if (!rt->opts.io_threads) rt->opts.io_threads = 64;
  if (!rt->opts.max_processes) rt->opts.max_processes = 1u << 20;
  if (!rt->opts.batch) rt->opts.batch = 64;
  if (!rt->opts.alarm_growth_ms) rt->opts.alarm_growth_ms = 2000;
  if (rt->opts.alarm_enable && !rt->opts.alarm_disable)
    rt->opts.alarm_disable = rt->opts.alarm_enable / 2;
  rt->rt_id = atomic_fetch_add(&weir__rt_ids, 1);
  rt->start_ns = weir__now_ns();
  rt->max_processes = rt->opts.max_processes;
  atomic_store(&rt->next_ref, 2); /* 1 marks an explicit exit signal */
  pthread_mutex_init(&rt->table_mu, NULL);
  pthread_mutex_init(&rt->inject_mu, NULL);
  pthread_mutex_init(&rt->calls_mu, NULL);
  pthread_mutex_init(&rt->sub_mu, NULL);
  pthread_mutex_init(&rt->retire_mu, NULL);

  int rc = WEIR_ENOMEM;
  rt->node_name = weir__strdup(o->node_name ? o->node_name : "weir");
  if (!rt->node_name) goto fail;
  /* calloc of the slot table: pages are touched only as slots are used */
  rt->slots = calloc(rt->max_processes, sizeof(*rt->slots));
  rt->free_slots = calloc(rt->max_processes, sizeof(uint32_t));
  if (!rt->slots || !rt->free_slots) goto fail;
  if ((rc = weir__calls_init(rt)) != WEIR_OK) goto fail;
  if ((rc = weir__registry_init(rt)) != WEIR_OK) goto fail;
  if (rt->opts.report_ring > 4096) {
    rc = WEIR_EINVAL;
    goto fail;
  }
  if ((rc = weir__report_start(rt)) != WEIR_OK) goto fail;
  if ((rc = weir__trace_start(rt)) != WEIR_OK) goto fail;
  if ((rc = weir__timer_start(rt)) != WEIR_OK) goto fail;
  if ((rc = weir__io_start(rt)) != WEIR_OK) goto fail_timer;
  if ((rc = weir__sched_start(rt)) != WEIR_OK) goto fail_io;
  if ((rc = weir__alarm_start(rt)) != WEIR_OK) goto fail_sched;
  if (o->console) {
    rc = weir__console_start(rt, o->console);
    if (rc != WEIR_OK) goto fail_sched;
  }
  *out = rt;
  return WEIR_OK;

fail_sched:
  weir__alarm_stop(rt);
  weir__timer_stop(rt); /* first: its watchdog reads the schedulers */
  weir__sched_stop(rt);
fail_io:
  weir__io_stop(rt);
fail_timer:
  weir__timer_stop(rt);
fail:
  weir__trace_stop(rt);
  weir__report_stop(rt);
  rt_free(rt);
  return rc;
}

unsigned weir_rt_schedulers(const weir_rt *rt) {
  return rt ? rt->nscheds : 0;
}
const char *weir_rt_node_name(const weir_rt *rt) {
  return rt ? rt->node_name : NULL;
}
const char *weir_rt_console_path(const weir_rt *rt) {
  return rt ? rt->console_path : NULL;
}

/* ---- stop --------------------------------------------------------------- */

typedef struct {
  uint64_t seq;
  weir_pid pid;
} stop_item;

/* youngest first: reverse start order */
static int by_age(const void *a, const void *b) {
  const stop_item *x = a, *y = b;
  return x->seq < y->seq ? -1 : x->seq > y->seq ? 1 : 0;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Waits until no process is alive or the deadline passes. */
static bool wait_empty(weir_rt *rt, uint64_t deadline) {
  while (atomic_load(&rt->nprocs) > 0) {
    if (weir__now_ns() >= deadline) return false;
    sleep_ms(1);
  }
  return true;
}

static void signal_all(weir_rt *rt, bool kill) {
  uint32_t n;
  pthread_mutex_lock(&rt->table_mu);
  n = rt->next_fresh;
  pthread_mutex_unlock(&rt->table_mu);
  stop_item *items = weir__malloc((n ? n : 1) * sizeof *items);
  size_t k = 0;
  uint32_t now_seq = (uint32_t)atomic_load(&rt->spawn_seq);
  for (uint32_t i = 0; i < n; i++) {
    weir__proc *p = weir__proc_slot(rt, i);
    if (!p || atomic_load(&p->life) != WEIR__P_LIVE) continue;
    weir__slotx *sx = WEIR__LD(p->x);
    if (!kill && sx && WEIR__LD(sx->supervisor))
      continue; /* its supervisor stops it */
    if (items) {
      /* age in spawns (mod 2^32): smaller = started later */
      items[k].seq = (uint32_t)(now_seq - p->spawn_seq);
      items[k].pid = weir__proc_pid(p);
      k++;
    } else if (kill) {
      weir_exit(rt, weir__proc_pid(p), WEIR_REASON_KILL);
    }
  }
  if (!items) return;
  qsort(items, k, sizeof *items, by_age);
  for (size_t i = 0; i < k; i++) {
    if (kill) {
      weir_exit(rt, items[i].pid, WEIR_REASON_KILL);
    } else {
      weir__msg *m = weir__msg_new(WEIR__K_STOP, 0, 0);
      if (m) {
        m->flags |= WEIR__MF_NOBOUND;
        weir__deliver(rt, items[i].pid, m);
      }
    }
  }
  weir__free(items);
}

int weir_rt_stop(weir_rt *rt, int timeout_ms) {
  if (!rt) return WEIR_EINVAL;
  if (weir__current_ctx()) return WEIR_EDEADLK;
  int rc = WEIR_OK;
  atomic_store(&rt->stopping, 1);
  weir__console_stop(rt);
  uint64_t deadline = timeout_ms < 0
                          ? UINT64_MAX
                          : weir__now_ns() + (uint64_t)timeout_ms * 1000000ull;
  signal_all(rt, false);
  if (!wait_empty(rt, deadline)) {
    rc = WEIR_ETIMEDOUT;
    /* Supervised children whose supervisor did not get to them, and
       everything that outlived the timeout. */
    for (int round = 0; round < 100 && atomic_load(&rt->nprocs) > 0; round++) {
      signal_all(rt, true);
      wait_empty(rt, weir__now_ns() + 50000000ull);
    }
  }
  weir__alarm_stop(rt);
  weir__timer_stop(rt);
  weir__io_stop(rt);
  weir__sched_stop(rt);
  /* No process can run now: log what the exits above reported. */
  weir__report_stop(rt);
  weir__trace_stop(rt);
  rt_free(rt);
  return rc;
}

static void rt_free(weir_rt *rt) {
  if (rt->slots) {
    for (uint32_t i = 0; i < rt->next_fresh; i++) {
      weir__proc *p = atomic_load_explicit(&rt->slots[i], memory_order_relaxed);
      if (!p) continue;
      weir__proc_undefer(p);
      weir__mbox_destroy(p);
      if (p->ext) {
        weir__free(p->ext->links);
        weir__free(p->ext->mons);
        weir__free(p->ext->calls);
        weir__free(p->ext);
      }
      weir__free(p->name);
      weir__free(p->x);
      weir__pool_free(p, sizeof *p);
    }
  }
  retired_free(rt);
  weir__overload_free(rt);
  weir__calls_free(rt);
  weir__registry_free(rt);
  free(rt->slots);
  free(rt->free_slots);
  weir__free(rt->node_name);
  weir__free(rt->console_path);
  pthread_mutex_destroy(&rt->table_mu);
  pthread_mutex_destroy(&rt->inject_mu);
  pthread_mutex_destroy(&rt->calls_mu);
  pthread_mutex_destroy(&rt->sub_mu);
  pthread_mutex_destroy(&rt->retire_mu);
  weir__free(rt);
  weir__pools_release();
}
