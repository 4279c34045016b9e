/*
 * test_alarm.c: overload alarms (alarm.c's sampler, every 100 ms).
 *
 *  - long_message_queue hysteresis, per process (spawn opts) and from the
 *    node defaults (rt opts): filled to `enable` -> exactly one raised;
 *    drained to between the two -> still on; drained to `disable` ->
 *    cleared. A subscriber gets exactly those, weir_alarms() lists the
 *    active ones, and (alarm_log = 1) each is one line on stderr, which is
 *    captured through dup2 and parsed; alarm_log = 0 prints nothing.
 *  - queue_growth with a controlled arrival rate: a producer thread sends at
 *    about twice the consumer's service rate for 3 s (alarm_growth_ms =
 *    1000): raised, with in_rate > out_rate and secs_to_limit > 0 for a
 *    bounded process; production stops: cleared.
 *
 * The consumers are blocking processes (they sleep in their callbacks). No
 * check is about speed: the rates are compared with each other only, and
 * waits are liveness timeouts.
 */
#include "testlib.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

enum { TAG_MSG = 1 };

/* ---- consumer: metered (one permit per message) or slow (sleeps) -------- */

typedef struct consumer {
  atomic_int metered;
  atomic_uint_fast64_t permits;
  atomic_uint service_ms; /* slow mode: sleep per message */
  atomic_uint_fast64_t handled;
} consumer;

static int cons_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int cons_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  (void)m;
  consumer *c = state;
  if (atomic_load(&c->metered)) {
    while (atomic_load(&c->metered)) {
      uint_fast64_t p = atomic_load(&c->permits);
      if (p > 0 && atomic_compare_exchange_weak(&c->permits, &p, p - 1)) break;
      if (p == 0) test_sleep_ms(1);
    }
  } else if (atomic_load(&c->service_ms)) {
    test_sleep_ms(atomic_load(&c->service_ms));
  }
  atomic_fetch_add(&c->handled, 1);
  return WEIR_OK;
}

static const weir_server cons_server = {
    .name = "lmqproc", .init = cons_init, .handle_cast = cons_cast};

static weir_pid spawn_consumer(weir_rt *rt, consumer *c, const char *name,
                               uint32_t en, uint32_t dis, uint32_t max_len) {
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.blocking = 1;
  so.name = name;
  so.alarm_enable = en;
  so.alarm_disable = dis;
  so.max_queue_len = max_len;
  weir_pid pid;
  CHECK_OK(weir_spawn(rt, &cons_server, c, &so, &pid));
  return pid;
}

static void send_n(weir_rt *rt, weir_pid pid, unsigned n) {
  for (unsigned i = 0; i < n; i++) {
    uint64_t v = i;
    CHECK_OK(weir_cast(rt, pid, TAG_MSG, &v, sizeof v));
  }
}

static uint64_t qlen(weir_rt *rt, weir_pid pid) {
  weir_proc_info pi;
  CHECK_OK(weir_process_info(rt, pid, &pi));
  return pi.message_queue_len;
}

/* Lets n more messages through and waits until the queue is down to want. */
static void drain_to(weir_rt *rt, weir_pid pid, consumer *c, uint64_t want) {
  uint64_t q = qlen(rt, pid);
  CHECK(q >= want);
  atomic_fetch_add(&c->permits, q - want);
  WAIT_UNTIL(qlen(rt, pid) == want, TEST_LIVENESS_MS);
}

/* ---- alarm subscriber ------------------------------------------------------
 */

#define MAX_ALARMS 256

typedef struct alarm_log {
  weir_alarm a[MAX_ALARMS];
  atomic_uint n;
} alarm_log;

static int sub_info(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  alarm_log *l = state;
  if (m->tag != WEIR_TAG_ALARM) return WEIR_OK;
  CHECK_EQ_U64(m->len, sizeof(weir_alarm));
  unsigned k = atomic_load_explicit(&l->n, memory_order_relaxed);
  CHECK(k < MAX_ALARMS);
  memcpy(&l->a[k], m->data, sizeof(weir_alarm));
  /* release: the test reads a[0..k] after acquiring n */
  atomic_store_explicit(&l->n, k + 1, memory_order_release);
  return WEIR_OK;
}

static const weir_server sub_server = {
    .name = "alarm_sub", .init = cons_init, .handle_info = sub_info};

static weir_pid subscribe(weir_rt *rt, alarm_log *l) {
  memset(l, 0, sizeof *l);
  weir_pid pid;
  CHECK_OK(weir_spawn(rt, &sub_server, l, NULL, &pid));
  CHECK_OK(weir_alarm_subscribe(rt, pid));
  return pid;
}

/* Alarms of kind for pid received so far, copied into out (up to n). */
static unsigned alarms_for(alarm_log *l, weir_alarm_kind kind, weir_pid pid,
                           weir_alarm *out, unsigned n) {
  unsigned total = atomic_load_explicit(&l->n, memory_order_acquire), k = 0;
  for (unsigned i = 0; i < total; i++)
    if (l->a[i].kind == kind && weir_pid_eq(l->a[i].pid, pid)) {
      if (k < n) out[k] = l->a[i];
      k++;
    }
  return k;
}

/* 1 if weir_alarms() lists an active alarm of kind for pid. */
static int active(weir_rt *rt, weir_alarm_kind kind, weir_pid pid) {
  weir_alarm a[64];
  size_t n = 0;
  CHECK_OK(weir_alarms(rt, a, 64, &n));
  int found = 0;
  for (size_t i = 0; i < n && i < 64; i++)
    if (a[i].kind == kind && weir_pid_eq(a[i].pid, pid)) {
      CHECK_EQ_INT(a[i].on, 1);
      found++;
    }
  CHECK(found <= 1);
  return found;
}

/* Waits for the n-th long_message_queue alarm of pid; on a timeout says
   where the consumer stands. */
static void wait_alarms(weir_rt *rt, weir_pid pid, consumer *c, alarm_log *l,
                        unsigned n) {
  weir_alarm got[8];
  uint64_t dl = test_now_ms() + TEST_LIVENESS_MS;
  while (alarms_for(l, WEIR_ALARM_LONG_MESSAGE_QUEUE, pid, got, 8) < n) {
    if (test_now_ms() > dl) {
      weir_proc_info pi;
      CHECK_OK(weir_process_info(rt, pid, &pi));
      test_fail(__FILE__, __LINE__,
                "no alarm #%u after %d ms: queue_len=%llu handled=%llu "
                "status=%s current_function=%s active=%d",
                n, TEST_LIVENESS_MS, (unsigned long long)pi.message_queue_len,
                (unsigned long long)atomic_load(&c->handled),
                weir_status_name(pi.status), pi.current_function,
                active(rt, WEIR_ALARM_LONG_MESSAGE_QUEUE, pid));
    }
    test_sleep_ms(1);
  }
}

/* ---- stderr capture --------------------------------------------------------
 */

typedef struct capture {
  int saved;
  char path[64];
} capture;

static void capture_start(capture *c) {
  snprintf(c->path, sizeof c->path, "/tmp/weir-test-alarm-XXXXXX");
  int fd = mkstemp(c->path);
  CHECK(fd >= 0);
  test_log("(stderr goes to %s until the check)", c->path);
  fflush(stderr);
  c->saved = dup(2);
  CHECK(c->saved >= 0);
  CHECK(dup2(fd, 2) == 2);
  close(fd);
}

/* Restores stderr; returns what was written (caller frees). */
static char *capture_stop(capture *c) {
  fflush(stderr);
  CHECK(dup2(c->saved, 2) == 2);
  close(c->saved);
  FILE *f = fopen(c->path, "r");
  CHECK(f != NULL);
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  CHECK(buf != NULL);
  size_t r;
  while ((r = fread(buf + n, 1, cap - 1 - n, f)) > 0) {
    n += r;
    if (n == cap - 1) {
      cap *= 2;
      buf = realloc(buf, cap);
      CHECK(buf != NULL);
    }
  }
  buf[n] = '\0';
  fclose(f);
  unlink(c->path);
  return buf;
}

/* Counts the lines of text that start with prefix; *first gets the first. */
static int lines_with(const char *text, const char *prefix, char *first,
                      size_t n) {
  int k = 0;
  size_t pl = strlen(prefix);
  for (const char *s = text; *s;) {
    const char *e = strchr(s, '\n');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    if (len >= pl && strncmp(s, prefix, pl) == 0) {
      if (k == 0 && first) {
        size_t c = len < n - 1 ? len : n - 1;
        memcpy(first, s, c);
        first[c] = '\0';
      }
      k++;
    }
    s += len + (e ? 1 : 0);
  }
  return k;
}

/* Checks one stderr alarm line field by field. */
static void check_line(const char *line, const char *kind, const char *state,
                       weir_pid pid, const char *name, const char *cur) {
  char want[256], pidbuf[32];
  weir_pid_format(pid, pidbuf, sizeof pidbuf);
  snprintf(want, sizeof want,
           "weir: alarm %s %s node=alarmnode pid=%s name=%s "
           "current_function=%s queue_len=",
           kind, state, pidbuf, name, cur);
  CHECK_MSG(strncmp(line, want, strlen(want)) == 0,
            "stderr line\n  %s\ndoes not start with\n  %s", line, want);
  unsigned long long q = 0;
  double in = -1, out = -1;
  char left[32] = "";
  const char *rest = line + strlen(want);
  int got = sscanf(rest, "%llu in_rate=%lf/s out_rate=%lf/s time_to_limit=%31s",
                   &q, &in, &out, left);
  CHECK_MSG(got == 4, "cannot parse the tail of: %s", line);
  CHECK(in >= 0 && out >= 0);
  size_t ll = strlen(left);
  CHECK_MSG(strcmp(left, "never") == 0 || (ll > 1 && left[ll - 1] == 's'),
            "time_to_limit=%s", left);
}

static weir_rt *rt_start(uint32_t en, uint32_t dis, uint32_t growth_ms,
                         int log) {
  weir_rt_opts o;
  weir_rt_opts_init(&o);
  o.schedulers = 2;
  o.console = NULL;
  o.node_name = "alarmnode";
  o.alarm_enable = en;
  o.alarm_disable = dis;
  o.alarm_growth_ms = growth_ms;
  o.alarm_log = log;
  return test_rt_start_opts(&o);
}

/* ---- long_message_queue: per-process thresholds, logged ------------------ */

static void test_lmq_hysteresis(void) {
  capture cap;
  capture_start(&cap);
  weir_rt *rt = rt_start(0, 0, 600000, 1);
  alarm_log l;
  subscribe(rt, &l);
  consumer c;
  memset(&c, 0, sizeof c);
  atomic_store(&c.metered, 1);
  weir_pid pid = spawn_consumer(rt, &c, "lmq_victim", 100, 20, 0);
  weir_alarm got[8];

  /* One message in hand (waiting for a permit), 99 queued: below enable. */
  send_n(rt, pid, 100);
  WAIT_UNTIL(qlen(rt, pid) == 99, TEST_LIVENESS_MS);
  test_sleep_ms(400);
  CHECK_EQ_INT(alarms_for(&l, WEIR_ALARM_LONG_MESSAGE_QUEUE, pid, got, 8), 0);
  CHECK_EQ_INT(active(rt, WEIR_ALARM_LONG_MESSAGE_QUEUE, pid), 0);

  /* At enable: raised, once. */
  send_n(rt, pid, 1);
  WAIT_UNTIL(alarms_for(&l, WEIR_ALARM_LONG_MESSAGE_QUEUE, pid, got, 8) >= 1,
             TEST_LIVENESS_MS);
  CHECK_EQ_INT(got[0].on, 1);
  CHECK(got[0].queue_len >= 100);
  CHECK_STR_EQ(got[0].registered_name, "lmq_victim");
  CHECK_STR_EQ(got[0].current_function, "lmqproc:handle_cast");
  CHECK_EQ_INT(active(rt, WEIR_ALARM_LONG_MESSAGE_QUEUE, pid), 1);
  weir_stats st;
  CHECK_OK(weir_node_stats(rt, &st));
  CHECK_EQ_U64(st.alarms_active, 1);

  /* Drained to between disable and enable: still on, nothing new. */
  drain_to(rt, pid, &c, 50);
  test_sleep_ms(500);
  CHECK_EQ_INT(alarms_for(&l, WEIR_ALARM_LONG_MESSAGE_QUEUE, pid, got, 8), 1);
  CHECK_EQ_INT(active(rt, WEIR_ALARM_LONG_MESSAGE_QUEUE, pid), 1);
  /* Refilled past enable while on: still one alarm. */
  send_n(rt, pid, 70);
  test_sleep_ms(400);
  CHECK_EQ_INT(alarms_for(&l, WEIR_ALARM_LONG_MESSAGE_QUEUE, pid, got, 8), 1);

  /* Drained to disable: cleared. */
  drain_to(rt, pid, &c, 20);
  WAIT_UNTIL(alarms_for(&l, WEIR_ALARM_LONG_MESSAGE_QUEUE, pid, got, 8) >= 2,
             TEST_LIVENESS_MS);
  CHECK_EQ_INT(got[1].on, 0);
  CHECK(got[1].queue_len <= 20);
  CHECK_EQ_INT(active(rt, WEIR_ALARM_LONG_MESSAGE_QUEUE, pid), 0);
  CHECK_OK(weir_node_stats(rt, &st));
  CHECK_EQ_U64(st.alarms_active, 0);

  /* Below disable, empty: no more alarms; filled again: raised again. */
  drain_to(rt, pid, &c, 0);
  test_sleep_ms(300);
  CHECK_EQ_INT(alarms_for(&l, WEIR_ALARM_LONG_MESSAGE_QUEUE, pid, got, 8), 2);
  send_n(rt, pid, 120);
  WAIT_UNTIL(alarms_for(&l, WEIR_ALARM_LONG_MESSAGE_QUEUE, pid, got, 8) >= 3,
             TEST_LIVENESS_MS);
  CHECK_EQ_INT(got[2].on, 1);
  atomic_store(&c.metered, 0);
  wait_alarms(rt, pid, &c, &l, 4);
  CHECK_EQ_INT(got[3].on, 0);
  test_sleep_ms(300);
  CHECK_EQ_INT(alarms_for(&l, WEIR_ALARM_LONG_MESSAGE_QUEUE, pid, got, 8), 4);
  /* No other kind fired for it (growth window is 600 s). */
  CHECK_EQ_INT(alarms_for(&l, WEIR_ALARM_QUEUE_GROWTH, pid, got, 8), 0);
  test_rt_stop(rt);

  char *err = capture_stop(&cap);
  char line[512];
  CHECK_EQ_INT(lines_with(err, "weir: alarm long_message_queue raised", line,
                          sizeof line),
               2);
  test_log("[lmq] stderr: %s", line);
  check_line(line, "long_message_queue", "raised", pid, "lmq_victim",
             "lmqproc:handle_cast");
  CHECK_EQ_INT(lines_with(err, "weir: alarm long_message_queue cleared", line,
                          sizeof line),
               2);
  test_log("[lmq] stderr: %s", line);
  check_line(line, "long_message_queue", "cleared", pid, "lmq_victim",
             "lmqproc:handle_cast");
  CHECK_EQ_INT(lines_with(err, "weir: alarm ", NULL, 0), 4);
  free(err);
  test_log("[lmq_hysteresis] ok");
}

/* ---- long_message_queue: node defaults, not logged ------------------------
 */

static void test_lmq_node_defaults(void) {
  capture cap;
  capture_start(&cap);
  weir_rt *rt = rt_start(50, 10, 600000, 0);
  alarm_log l;
  weir_pid sub = subscribe(rt, &l);
  consumer a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  atomic_store(&a.metered, 1);
  atomic_store(&b.metered, 1);
  weir_pid pa = spawn_consumer(rt, &a, NULL, 0, 0, 0);      /* defaults */
  weir_pid pb = spawn_consumer(rt, &b, NULL, 1000, 900, 0); /* its own */
  send_n(rt, pa, 61);
  send_n(rt, pb, 61);
  weir_alarm got[8];
  WAIT_UNTIL(alarms_for(&l, WEIR_ALARM_LONG_MESSAGE_QUEUE, pa, got, 8) >= 1,
             TEST_LIVENESS_MS);
  CHECK_EQ_INT(got[0].on, 1);
  CHECK_STR_EQ(got[0].registered_name, "");
  test_sleep_ms(300);
  CHECK_EQ_INT(alarms_for(&l, WEIR_ALARM_LONG_MESSAGE_QUEUE, pb, got, 8), 0);
  drain_to(rt, pa, &a, 30);
  test_sleep_ms(400);
  CHECK_EQ_INT(alarms_for(&l, WEIR_ALARM_LONG_MESSAGE_QUEUE, pa, got, 8), 1);
  drain_to(rt, pa, &a, 10);
  WAIT_UNTIL(alarms_for(&l, WEIR_ALARM_LONG_MESSAGE_QUEUE, pa, got, 8) >= 2,
             TEST_LIVENESS_MS);
  CHECK_EQ_INT(got[1].on, 0);

  /* Unsubscribed: alarms still happen (weir_alarms) but are not sent. */
  CHECK_OK(weir_alarm_unsubscribe(rt, sub));
  CHECK_RC(weir_alarm_unsubscribe(rt, sub), WEIR_ENOTFOUND);
  send_n(rt, pa, 60);
  WAIT_UNTIL(active(rt, WEIR_ALARM_LONG_MESSAGE_QUEUE, pa) == 1,
             TEST_LIVENESS_MS);
  test_sleep_ms(200);
  CHECK_EQ_INT(alarms_for(&l, WEIR_ALARM_LONG_MESSAGE_QUEUE, pa, got, 8), 2);
  atomic_store(&a.metered, 0);
  atomic_store(&b.metered, 0);
  WAIT_UNTIL(active(rt, WEIR_ALARM_LONG_MESSAGE_QUEUE, pa) == 0,
             TEST_LIVENESS_MS);
  test_rt_stop(rt);
  char *err = capture_stop(&cap);
  CHECK_MSG(strstr(err, "weir: alarm") == NULL,
            "alarm_log = 0, yet stderr has: %s", err);
  free(err);
  test_log("[lmq_node_defaults] ok");
}

/* ---- queue_growth ----------------------------------------------------------
 */

typedef struct producer {
  weir_rt *rt;
  weir_pid to;
  unsigned interval_us;
  unsigned secs;
  atomic_int stop;
  uint64_t sent, refused;
} producer;

/* Sends one message every interval_us on average (it catches up after a
   late wake-up, so the mean arrival rate holds on a loaded machine). */
static void *producer_main(void *arg) {
  producer *p = arg;
  uint64_t t0 = test_now_us(), end = t0 + (uint64_t)p->secs * 1000000u;
  for (;;) {
    uint64_t now = test_now_us();
    if (now >= end || atomic_load(&p->stop)) break;
    uint64_t due = (now - t0) / p->interval_us + 1;
    while (p->sent + p->refused < due) {
      uint64_t v = p->sent;
      if (weir_cast(p->rt, p->to, TAG_MSG, &v, sizeof v) == WEIR_OK)
        p->sent++;
      else
        p->refused++;
    }
    test_sleep_ms(1);
  }
  return NULL;
}

static void test_queue_growth(void) {
  capture cap;
  capture_start(&cap);
  weir_rt *rt = rt_start(0, 0, 1000, 1);
  alarm_log l;
  subscribe(rt, &l);
  consumer c;
  memset(&c, 0, sizeof c);
  atomic_store(&c.service_ms, 4); /* <= 250 messages/s */
  const uint32_t bound = 100000;
  weir_pid pid = spawn_consumer(rt, &c, "grower", 0, 0, bound);
  producer pr = {.rt = rt, .to = pid, .interval_us = 2000, .secs = 3};
  pthread_t th;
  uint64_t t0 = test_now_ms();
  CHECK(pthread_create(&th, NULL, producer_main, &pr) == 0);
  weir_alarm got[8];
  WAIT_UNTIL(alarms_for(&l, WEIR_ALARM_QUEUE_GROWTH, pid, got, 8) >= 1,
             TEST_LIVENESS_MS);
  uint64_t raised_ms = test_now_ms() - t0;
  weir_alarm a = got[0];
  CHECK_EQ_INT(a.on, 1);
  CHECK_STR_EQ(a.registered_name, "grower");
  CHECK(a.queue_len >= 64);
  CHECK_MSG(a.in_rate > a.out_rate, "in_rate %.1f <= out_rate %.1f", a.in_rate,
            a.out_rate);
  CHECK(a.out_rate > 0);
  CHECK_MSG(a.secs_to_limit > 0, "secs_to_limit %.1f", a.secs_to_limit);
  /* It cannot be more than the room left at the net rate seen */
  CHECK(a.secs_to_limit <=
        (double)(bound - a.queue_len) / (a.in_rate - a.out_rate) * 1.001 + 1);
  CHECK_EQ_INT(active(rt, WEIR_ALARM_QUEUE_GROWTH, pid), 1);
  weir_proc_info pi;
  CHECK_OK(weir_process_info(rt, pid, &pi));
  CHECK(pi.in_rate > 0 && pi.out_rate > 0);
  test_log("[growth] raised after %llu ms: queue_len=%llu in=%.1f/s "
           "out=%.1f/s secs_to_limit=%.1f",
           (unsigned long long)raised_ms, (unsigned long long)a.queue_len,
           a.in_rate, a.out_rate, a.secs_to_limit);
  pthread_join(th, NULL);
  CHECK_EQ_U64(pr.refused, 0);
  /* Production stopped: the queue shrinks, the alarm clears. */
  WAIT_UNTIL(alarms_for(&l, WEIR_ALARM_QUEUE_GROWTH, pid, got, 8) >= 2,
             TEST_LIVENESS_MS);
  CHECK_EQ_INT(got[1].on, 0);
  CHECK_EQ_INT(active(rt, WEIR_ALARM_QUEUE_GROWTH, pid), 0);
  CHECK_EQ_INT(alarms_for(&l, WEIR_ALARM_QUEUE_GROWTH, pid, got, 8), 2);
  test_log("[growth] cleared at queue_len=%llu after %llu ms",
           (unsigned long long)got[1].queue_len,
           (unsigned long long)(test_now_ms() - t0));
  atomic_store(&pr.stop, 1);
  atomic_store(&c.service_ms, 0); /* drain fast for the stop */
  test_rt_stop(rt);
  char *err = capture_stop(&cap);
  char line[512];
  CHECK_EQ_INT(
      lines_with(err, "weir: alarm queue_growth raised", line, sizeof line), 1);
  test_log("[growth] stderr: %s", line);
  check_line(line, "queue_growth", "raised", pid, "grower",
             "lmqproc:handle_cast");
  CHECK(strstr(line, "time_to_limit=never") == NULL);
  CHECK_EQ_INT(
      lines_with(err, "weir: alarm queue_growth cleared", line, sizeof line),
      1);
  test_log("[growth] stderr: %s", line);
  free(err);
}

int main(void) {
  test_seed();
  test_lmq_hysteresis();
  test_lmq_node_defaults();
  test_queue_growth();
  test_log("test_alarm: passed");
  return 0;
}
