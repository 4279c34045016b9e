/*
 * testnode.c: a small node for weirctl's tests and for trying weirctl by
 * hand. It reproduces the seed's drowning singleton: a process registered as
 * "drowning" is blocked inside its first handle_cast while 10000 more casts
 * queue behind it, and 200 more a second after that. Beside it runs a partition
 * supervisor "events" with four workers that have seen a few keys, so `weirctl
 * partitions events` has something to show, and a supervisor "app_sup" whose
 * child "flaky" crashes every two seconds (restarted each time), for `weirctl
 * tree` and the dashboard's supervision view.
 *
 *   weirctl_testnode NODE [SECONDS]
 *
 * Serves a console at the default path ($WEIR_RUN_DIR/NODE.sock), prints
 * "ready PATH" on stdout, and runs until SECONDS pass (default 60), stdin
 * reaches EOF, or SIGINT/SIGTERM arrives; then it stops cleanly.
 */
#include "weir.h"

#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static atomic_int release_gate;
static volatile sig_atomic_t quit_flag;

static void on_signal(int sig) {
  (void)sig;
  quit_flag = 1;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int drown_cast(weir_ctx *cx, void *st, const weir_msg *m) {
  (void)cx;
  (void)st;
  (void)m;
  while (!atomic_load(&release_gate))
    sleep_ms(1);
  return WEIR_OK;
}

static int work_cast(weir_ctx *cx, void *st, const weir_msg *m) {
  (void)cx;
  (void)st;
  (void)m;
  return WEIR_OK;
}

static int crash_cast(weir_ctx *cx, void *st, const weir_msg *m) {
  (void)cx;
  (void)st;
  return m->tag == 9 ? WEIR_EINVAL : WEIR_OK; /* a crash report */
}
static const weir_server crash_srv = {.name = "crasher",
                                      .handle_cast = crash_cast};

static const weir_server drown_srv = {.name = "aggregator",
                                      .handle_cast = drown_cast};
static const weir_server work_srv = {.name = "event_worker",
                                     .handle_cast = work_cast};
static const weir_server steady_srv = {.name = "steady_worker",
                                       .handle_cast = work_cast};

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: weirctl_testnode NODE [SECONDS]\n");
    return 2;
  }
  int secs = argc > 2 ? atoi(argv[2]) : 60;
  weir_rt_opts o;
  weir_rt_opts_init(&o);
  o.schedulers = 2;
  o.node_name = argv[1];
  o.console = "";
  o.alarm_enable = 1000; /* drowning raises long_message_queue */
  o.alarm_log = 0;
  weir_rt *rt;
  int rc = weir_rt_start(&o, &rt);
  if (rc != WEIR_OK) {
    fprintf(stderr, "weirctl_testnode: start: %s\n", weir_strerror(rc));
    return 1;
  }
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.name = "drowning";
  so.blocking = 1;
  weir_pid d;
  if ((rc = weir_spawn(rt, &drown_srv, NULL, &so, &d)) != WEIR_OK) goto fail;
  for (int i = 0; i <= 10000; i++)
    if ((rc = weir_cast(rt, d, 1, &i, sizeof i)) != WEIR_OK) goto fail;

  weir_partsup_opts po;
  weir_partsup_opts_init(&po);
  po.name = "events";
  po.partitions = 4;
  weir_child_spec_init(&po.child, "event_worker", &work_srv, NULL);
  weir_pid ps;
  if ((rc = weir_partsup_start(rt, &po, &ps)) != WEIR_OK) goto fail;
  for (uint64_t i = 0; i < 2000; i++) {
    uint64_t key = i % 3 == 0 ? 42 : i % 17;
    if ((rc = weir_partition_cast(rt, ps, key, 1, &i, sizeof i)) != WEIR_OK)
      goto fail;
  }

  /* One crash, for weirctl crashes. */
  so.name = "crasher";
  so.blocking = 0;
  weir_pid c;
  if ((rc = weir_spawn(rt, &crash_srv, NULL, &so, &c)) != WEIR_OK) goto fail;
  if ((rc = weir_cast(rt, c, 9, "boom", 4)) != WEIR_OK) goto fail;

  /* app_sup: a steady worker and a flaky one, restarted again and again */
  weir_sup_opts sup_o;
  weir_sup_opts_init(&sup_o);
  sup_o.name = "app_sup";
  sup_o.max_restarts = 100;
  sup_o.max_seconds = 60;
  weir_child_spec kids[2];
  weir_child_spec_init(&kids[0], "steady", &steady_srv, NULL);
  weir_child_spec_init(&kids[1], "flaky", &crash_srv, NULL);
  kids[1].opts.name = "flaky";
  weir_pid app_sup;
  if ((rc = weir_sup_start(rt, &sup_o, kids, 2, &app_sup)) != WEIR_OK)
    goto fail;

  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  printf("ready %s\n", weir_rt_console_path(rt));
  fflush(stdout);
  for (int t = 0; t < secs * 10 && !quit_flag; t++) {
    struct pollfd pf = {STDIN_FILENO, POLLIN, 0};
    if (poll(&pf, 1, 100) > 0) {
      char buf[64];
      if (read(STDIN_FILENO, buf, sizeof buf) <= 0) break;
    }
    /* a trickle for weirctl trace: key 42, tag 5, ten a second */
    uint64_t n = (uint64_t)t;
    weir_partition_cast(rt, ps, 42, 5, &n, sizeof n);
    /* drowning keeps drowning: 200 more a second, none taken */
    for (int k = 0; k < 20; k++)
      weir_cast(rt, d, 1, &k, sizeof k);
    weir_pid f;
    if (t % 20 == 10 && weir_whereis(rt, "flaky", &f) == WEIR_OK)
      weir_cast(rt, f, 9, "flap", 4);
  }
  atomic_store(&release_gate, 1);
  weir_rt_stop(rt, 10000);
  return 0;
fail:
  fprintf(stderr, "weirctl_testnode: %s\n", weir_strerror(rc));
  atomic_store(&release_gate, 1);
  weir_rt_stop(rt, 10000);
  return 1;
}
