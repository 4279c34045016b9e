/*
 * test_diag_restart.c: diagnostics read a process while its supervisor
 * restarts it in the same slot.
 *
 * A supervised child crashes on every message and is restarted at once
 * (keep_mailbox: the same slot, a new generation). Meanwhile a thread reads
 * the child through weir_process_info and weir_proc_count as fast as it
 * can, as a dashboard polling `info` does. Under TSan this found a restart
 * writing the slot's behaviour while process_info read it. Every reply must
 * be whole: the right behaviour name, or ENOPROC for an incarnation that
 * ended.
 */
#include "testlib.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

static int crash_cast(weir_ctx *cx, void *st, const weir_msg *m) {
  (void)cx;
  (void)st;
  (void)m;
  return WEIR_EINVAL; /* crash: the supervisor restarts us */
}
static const weir_server flapper = {.name = "flapper",
                                    .handle_cast = crash_cast};

static weir_rt *g_rt;
static _Atomic int g_stop;
static _Atomic uint64_t g_infos, g_gone, g_counts;

static void *poller(void *arg) {
  (void)arg;
  while (!atomic_load_explicit(&g_stop, memory_order_acquire)) {
    weir_pid pid;
    if (weir_whereis(g_rt, "flapper", &pid) == WEIR_OK) {
      weir_proc_info info;
      int rc = weir_process_info(g_rt, pid, &info);
      if (rc == WEIR_OK) {
        CHECK_MSG(strcmp(info.initial_call, "flapper") == 0,
                  "initial_call '%s'", info.initial_call);
        atomic_fetch_add_explicit(&g_infos, 1, memory_order_relaxed);
      } else {
        CHECK_EQ_INT(rc, WEIR_ENOPROC);
        atomic_fetch_add_explicit(&g_gone, 1, memory_order_relaxed);
      }
    }
    weir_proc_sample s[4];
    size_t n = 0;
    CHECK_OK(weir_proc_count(g_rt, WEIR_ATTR_MESSAGE_QUEUE_LEN, 4, s, &n));
    atomic_fetch_add_explicit(&g_counts, 1, memory_order_relaxed);
  }
  return NULL;
}

int main(void) {
  g_rt = test_rt_start(2);
  weir_child_spec cs;
  weir_child_spec_init(&cs, "flapper", &flapper, NULL);
  cs.opts.name = "flapper";
  weir_sup_opts o;
  weir_sup_opts_init(&o);
  o.max_restarts = 1000000; /* it never gives up in this test */
  o.max_seconds = 1;
  weir_pid sup;
  CHECK_OK(weir_sup_start(g_rt, &o, &cs, 1, &sup));
  pthread_t t;
  CHECK(pthread_create(&t, NULL, poller, NULL) == 0);
  /* 200 restarts read by at least 200 infos (a few seconds under TSan) */
  uint64_t crashes = 0, t0 = test_now_ms();
  while ((crashes < 200 || atomic_load(&g_infos) < 200) &&
         test_now_ms() - t0 < TEST_LIVENESS_MS) {
    weir_pid pid;
    if (weir_whereis(g_rt, "flapper", &pid) == WEIR_OK &&
        weir_cast(g_rt, pid, 1, NULL, 0) == WEIR_OK)
      crashes++;
    test_sleep_ms(1);
  }
  atomic_store_explicit(&g_stop, 1, memory_order_release);
  pthread_join(t, NULL);
  test_log("[diag] %llu crash casts, %llu infos, %llu gone, %llu scans",
           (unsigned long long)crashes,
           (unsigned long long)atomic_load(&g_infos),
           (unsigned long long)atomic_load(&g_gone),
           (unsigned long long)atomic_load(&g_counts));
  CHECK(crashes >= 200);
  CHECK(atomic_load(&g_infos) >= 200);
  test_rt_stop(g_rt);
  return 0;
}
