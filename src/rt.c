/*
 * rt.c: the node: options, start, stop. The top of the stack: it starts
 * every module in stack order (each installs its hooks as it starts) and
 * stops them in reverse.
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
  weir__fences_init();
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
  /* relaxed: ids need uniqueness, not order */
  rt->rt_id = atomic_fetch_add_explicit(&weir__rt_ids, 1, memory_order_relaxed);
  rt->start_ns = weir__now_ns();
  rt->max_processes = rt->opts.max_processes;
  /* relaxed: rt is not shared yet (its threads start below, and
     pthread_create orders what we wrote) */
  atomic_store_explicit(&rt->next_ref, 2, /* 1: an explicit exit signal */
                        memory_order_relaxed);
  pthread_mutex_init(&rt->table_mu, NULL);
  pthread_mutex_init(&rt->inject_mu, NULL);
  pthread_mutex_init(&rt->calls_mu, NULL);
  pthread_mutex_init(&rt->sub_mu, NULL);
  pthread_mutex_init(&rt->retire_mu, NULL);
  /* cannot fail; first, so that rt_free may always undo it */
  weir__partsup_start(rt);

  int rc = WEIR_ENOMEM;
  rt->node_name = weir__strdup(o->node_name ? o->node_name : "weir");
  if (!rt->node_name) goto fail;
  /* weir__calloc: with the default allocator, pages are touched only as
     slots are used */
  rt->slots = weir__calloc(rt->max_processes, sizeof(*rt->slots));
  rt->free_slots = weir__calloc(rt->max_processes, sizeof(uint32_t));
  if (!rt->slots || !rt->free_slots) goto fail;
  if ((rc = weir__calls_init(rt)) != WEIR_OK) goto fail;
  if ((rc = weir__registry_init(rt)) != WEIR_OK) goto fail;
  if ((rc = weir__overload_start(rt)) != WEIR_OK) goto fail;
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

/* Processes alive now, for stop's polls. */
static uint64_t live(weir_rt *rt) {
  /* relaxed: a poll. An exit counts itself out before it is done (proc.c);
     what the exits did is ordered for stop by the joins of the threads
     that ran them (weir__sched_stop, weir__io_stop), not by this count. */
  return atomic_load_explicit(&rt->nprocs, memory_order_relaxed);
}

/* Waits until no process is alive or the deadline passes. */
static bool wait_empty(weir_rt *rt, uint64_t deadline) {
  while (live(rt) > 0) {
    if (weir__now_ns() >= deadline) return false;
    weir__sleep_ms(1);
  }
  return true;
}

static void signal_all(weir_rt *rt, bool kill) {
  uint32_t n = weir__proc_table_used(rt);
  stop_item *items = weir__malloc((n ? n : 1) * sizeof *items);
  size_t k = 0;
  /* relaxed: an age, for the order of the stops; a spawn racing with it
     is refused (stopping) or caught by the kill rounds */
  uint32_t now_seq =
      (uint32_t)atomic_load_explicit(&rt->spawn_seq, memory_order_relaxed);
  for (uint32_t i = 0; i < n; i++) {
    weir__proc *p = weir__proc_slot(rt, i);
    /* acquire, as the scans of diag.c and alarm.c: pairs with the exit's
       release stores of life; a process caught changing gets a stop it
       handles, or its ENOPROC */
    if (!p ||
        atomic_load_explicit(&p->life, memory_order_acquire) != WEIR__P_LIVE)
      continue;
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
  /* release: it publishes nothing, but spawn's acquire load pairs with it
     (refused from here). No store-load order rests on it: a spawn that
     read 0 just before may still start (the kill rounds below catch it).
     The supervisors' relaxed reads (sup.c, report.c) see it through the
     STOP and EXIT messages that follow, which are release/acquire. */
  atomic_store_explicit(&rt->stopping, 1, memory_order_release);
  weir__console_stop(rt);
  uint64_t deadline = timeout_ms < 0
                          ? UINT64_MAX
                          : weir__now_ns() + (uint64_t)timeout_ms * 1000000ull;
  signal_all(rt, false);
  if (!wait_empty(rt, deadline)) {
    rc = WEIR_ETIMEDOUT;
    /* Supervised children whose supervisor did not get to them, and
       everything that outlived the timeout. */
    for (int round = 0; round < 100 && live(rt) > 0; round++) {
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
  if (rt->slots) weir__proc_table_free(rt);
  weir__retired_free(rt);
  weir__alarm_free(rt);
  weir__partsup_stop(rt);
  weir__calls_free(rt);
  weir__registry_free(rt);
  weir__free(rt->slots);
  weir__free(rt->free_slots);
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
