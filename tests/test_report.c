/*
 * test_report.c: crash and supervisor reports.
 *
 * Every field of the report is checked for a crash in handle_cast,
 * handle_call and handle_info, for a process killed by an exit signal
 * (from a thread and from a linked process), for a supervised child
 * (restarted, then the supervisor giving up, with its own report); a normal
 * stop and a shutdown make no report. A crash loop shows the rate limits
 * hold and that the suppressed count is exact (logged + suppressed = made);
 * the log hook gets the same reports as the ring; the ring keeps the newest
 * report_ring, newest first; the console's `crashes` and `metrics` show
 * them. The log hook is where the test reads what would go to stderr.
 */
#include "internal.h"
#include "testlib.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define TAG_CRASH 7
#define TAG_OK    8
#define MAXLOG    4096

/* ---- the log hook ------------------------------------------------------ */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static weir_report logged[MAXLOG];
static char lines[64][1024];
static int levels[MAXLOG];
static size_t nlogged;

static void hook(void *ud, int level, const weir_report *r, const char *line) {
  CHECK(ud == (void *)&log_mu);
  CHECK(!weir__on_scheduler()); /* never on a scheduler thread */
  pthread_mutex_lock(&log_mu);
  if (nlogged < 64) snprintf(lines[nlogged], sizeof lines[0], "%s", line);
  if (nlogged < MAXLOG) {
    levels[nlogged] = level;
    logged[nlogged++] = *r;
  }
  pthread_mutex_unlock(&log_mu);
}

static void log_reset(void) {
  pthread_mutex_lock(&log_mu);
  nlogged = 0;
  pthread_mutex_unlock(&log_mu);
}

static size_t log_count(void) {
  pthread_mutex_lock(&log_mu);
  size_t n = nlogged;
  pthread_mutex_unlock(&log_mu);
  return n;
}

/* Waits until the hook got n reports; returns the last one. */
static weir_report wait_logged(size_t n) {
  uint64_t dl = test_now_ms() + TEST_LIVENESS_MS;
  while (log_count() < n && test_now_ms() < dl)
    test_sleep_ms(2);
  pthread_mutex_lock(&log_mu);
  CHECK_MSG(nlogged >= n, "%zu reports logged, expected %zu", nlogged, n);
  weir_report r = logged[n - 1];
  pthread_mutex_unlock(&log_mu);
  return r;
}

static weir_rt *start(uint32_t rate, uint32_t rate_proc, uint32_t ring,
                      const char *console) {
  weir_rt_opts o;
  weir_rt_opts_init(&o);
  o.schedulers = 2;
  o.node_name = "reports";
  o.log.fn = hook;
  o.log.ud = &log_mu;
  o.report_rate = rate;
  o.report_rate_proc = rate_proc;
  o.report_ring = ring;
  o.console = console;
  log_reset();
  return test_rt_start_opts(&o);
}

/* ---- a worker that crashes on TAG_CRASH in any callback ---------------- */

static atomic_int handled;

static int crash_on(const weir_msg *m) {
  atomic_fetch_add(&handled, 1);
  return m->tag == TAG_CRASH ? -42 : WEIR_OK;
}
static int w_cast(weir_ctx *cx, void *st, const weir_msg *m) {
  (void)cx;
  (void)st;
  return crash_on(m);
}
static int w_call(weir_ctx *cx, void *st, const weir_msg *m, weir_from f) {
  (void)st;
  if (m->tag == TAG_CRASH) return WEIR_EINVAL;
  return weir_reply(cx, f, "ok", 2);
}
static int w_info(weir_ctx *cx, void *st, const weir_msg *m) {
  (void)cx;
  (void)st;
  return crash_on(m);
}
static const weir_server worker = {.name = "crashy",
                                   .handle_cast = w_cast,
                                   .handle_call = w_call,
                                   .handle_info = w_info};

static void check_common(const weir_report *r, weir_pid pid, const char *name,
                         const char *cb, int reason) {
  CHECK_EQ_INT(r->kind, WEIR_REPORT_CRASH);
  CHECK(r->seq > 0);
  CHECK(r->time > 1.6e9);
  CHECK_STR_EQ(r->node, "reports");
  CHECK(weir_pid_eq(r->pid, pid));
  CHECK_STR_EQ(r->registered_name, name);
  CHECK_STR_EQ(r->behaviour, "crashy");
  CHECK_STR_EQ(r->callback, cb);
  CHECK_EQ_INT(r->reason, reason);
}

static void wait_gone(weir_rt *rt, weir_pid pid) {
  weir_proc_info in;
  uint64_t dl = test_now_ms() + TEST_LIVENESS_MS;
  while (weir_process_info(rt, pid, &in) == WEIR_OK && test_now_ms() < dl)
    test_sleep_ms(1);
  CHECK(weir_process_info(rt, pid, &in) == WEIR_ENOPROC);
}

/* ---- the three callbacks, exit signals, no report for a normal end ----- */

static void test_callbacks(void) {
  weir_rt *rt = start(1000, 1000, 0, NULL);
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.name = "victim";
  weir_pid pid;

  /* handle_cast, from a thread, with messages queued behind it */
  CHECK_OK(weir_spawn(rt, &worker, NULL, &so, &pid));
  const char payload[] = "0123456789abcdefXYZ"; /* 19 bytes: head is 16 */
  weir__proc *p = weir__proc_get(rt, pid);
  CHECK(p);
  CHECK_OK(weir_cast(rt, pid, TAG_CRASH, payload, 19));
  wait_gone(rt, pid);
  weir_report r = wait_logged(1);
  check_common(&r, pid, "victim", "handle_cast", -42);
  CHECK_STR_EQ(weir_reason_name(r.reason), "error");
  CHECK(r.has_msg);
  CHECK_EQ_U64(r.msg_tag, TAG_CRASH);
  CHECK_EQ_U64(r.msg_len, 19);
  CHECK(weir_pid_is_none(r.msg_from));
  CHECK_EQ_U64(r.msg_head_len, WEIR_REPORT_HEAD);
  CHECK(memcmp(r.msg_head, payload, WEIR_REPORT_HEAD) == 0);
  CHECK(weir_pid_is_none(r.supervisor));
  CHECK_EQ_INT(r.action, WEIR_SUP_ACTION_NONE);
  pthread_mutex_lock(&log_mu);
  CHECK_EQ_INT(levels[0], WEIR_LOG_ERROR);
  test_log("line: %s", lines[0]);
  CHECK(strstr(lines[0], "weir: crash "));
  CHECK(strstr(lines[0],
               " name=victim behaviour=crashy callback=handle_cast "
               "reason=error code=-42 msg_tag=7 msg_len=19 "
               "msg_from=none msg_head=30313233343536373839616263646566 "
               "queue_len="));
  CHECK(strstr(lines[0], " supervisor=none action=none"));
  pthread_mutex_unlock(&log_mu);

  /* handle_call: the reason is the callback's error */
  CHECK_OK(weir_spawn(rt, &worker, NULL, &so, &pid));
  char rep[8];
  uint32_t rl = sizeof rep;
  CHECK_RC(weir_call(rt, pid, TAG_CRASH, "q", 1, rep, &rl, 5000), WEIR_ENOPROC);
  r = wait_logged(2);
  check_common(&r, pid, "victim", "handle_call", WEIR_EINVAL);
  CHECK(r.has_msg && r.msg_len == 1 && r.msg_head[0] == 'q');
  CHECK_STR_EQ(weir_reason_name(r.reason), "WEIR_EINVAL");

  /* handle_info (weir_send), and the queue length at the crash */
  CHECK_OK(weir_spawn(rt, &worker, NULL, &so, &pid));
  CHECK_OK(weir_send(rt, pid, TAG_CRASH, "i", 1));
  r = wait_logged(3);
  check_common(&r, pid, "victim", "handle_info", -42);
  CHECK_EQ_U64(r.msg_tag, TAG_CRASH);

  /* An exit signal from a thread: no message in hand, no sender */
  CHECK_OK(weir_spawn(rt, &worker, NULL, &so, &pid));
  CHECK_OK(weir_exit(rt, pid, -99));
  r = wait_logged(4);
  check_common(&r, pid, "victim", "exit_signal", -99);
  CHECK(!r.has_msg);
  CHECK(weir_pid_is_none(r.signal_from));

  /* A kill */
  CHECK_OK(weir_spawn(rt, &worker, NULL, &so, &pid));
  CHECK_OK(weir_exit(rt, pid, WEIR_REASON_KILL));
  r = wait_logged(5);
  check_common(&r, pid, "victim", "exit_signal", WEIR_REASON_KILL);
  CHECK_STR_EQ(weir_reason_name(r.reason), "kill");

  test_rt_stop(rt);
}

/* ---- links: a crash propagates as an exit signal ----------------------- */

static weir_pid link_target;
static int lk_init(weir_ctx *cx, void *arg, void **st) {
  (void)arg;
  *st = NULL;
  return weir_link(cx, link_target);
}
static const weir_server linker = {.name = "linker", .init = lk_init};

static void test_link_signal(void) {
  weir_rt *rt = start(1000, 1000, 0, NULL);
  weir_pid a, b;
  CHECK_OK(weir_spawn(rt, &worker, NULL, NULL, &a));
  link_target = a;
  CHECK_OK(weir_spawn(rt, &linker, NULL, NULL, &b));
  CHECK_OK(weir_cast(rt, a, TAG_CRASH, NULL, 0));
  wait_gone(rt, b);
  wait_logged(2);
  pthread_mutex_lock(&log_mu);
  const weir_report *ra = &logged[0], *rb = &logged[1];
  if (weir_pid_eq(ra->pid, b)) { /* the reporter logs in the order made */
    const weir_report *t = ra;
    ra = rb;
    rb = t;
  }
  CHECK(weir_pid_eq(ra->pid, a));
  CHECK_STR_EQ(ra->callback, "handle_cast");
  CHECK(weir_pid_eq(rb->pid, b));
  CHECK_STR_EQ(rb->behaviour, "linker");
  CHECK_STR_EQ(rb->callback, "exit_signal");
  CHECK(weir_pid_eq(rb->signal_from, a));
  CHECK_EQ_INT(rb->reason, -42);
  CHECK(!rb->has_msg);
  pthread_mutex_unlock(&log_mu);
  test_rt_stop(rt);
  CHECK_EQ_U64(log_count(), 2);
  test_log("[reports] callbacks, exit signals: ok");
}

/* ---- supervisors ------------------------------------------------------- */

static weir_pid child_pid(weir_rt *rt, weir_pid sup) {
  weir_child_info ci;
  size_t n = 0;
  CHECK_OK(weir_sup_which_children(rt, sup, &ci, 1, &n));
  CHECK_EQ_U64(n, 1);
  return ci.pid;
}

static void test_supervisor(void) {
  weir_rt *rt = start(1000, 1000, 0, NULL);
  weir_child_spec cs;
  weir_child_spec_init(&cs, "w1", &worker, NULL);
  weir_sup_opts so;
  weir_sup_opts_init(&so);
  so.name = "top_sup";
  so.max_restarts = 2;
  so.max_seconds = 60;
  weir_pid sup;
  CHECK_OK(weir_sup_start(rt, &so, &cs, 1, &sup));
  weir_pid c1 = child_pid(rt, sup);
  CHECK_OK(weir_cast(rt, c1, TAG_CRASH, "x", 1));
  weir_report r = wait_logged(1);
  weir_pid c2 = child_pid(rt, sup);
  CHECK(!weir_pid_eq(c1, c2));
  check_common(&r, c1, "", "handle_cast", -42);
  CHECK(weir_pid_eq(r.supervisor, sup));
  CHECK_STR_EQ(r.supervisor_name, "top_sup");
  CHECK_STR_EQ(r.child_id, "w1");
  CHECK_EQ_INT(r.action, WEIR_SUP_ACTION_RESTARTED);
  CHECK(weir_pid_eq(r.restarted_as, c2));
  CHECK_EQ_INT(r.restarts, 1);
  CHECK_EQ_INT(r.max_restarts, 2);
  CHECK_EQ_INT(r.max_seconds, 60);
  pthread_mutex_lock(&log_mu);
  test_log("line: %s", lines[0]);
  CHECK(strstr(lines[0], " supervisor_name=top_sup child_id=w1 "
                         "action=restarted restarted_as="));
  CHECK(strstr(lines[0], " restarts=1 max_restarts=2 max_seconds=60"));
  pthread_mutex_unlock(&log_mu);

  CHECK_OK(weir_cast(rt, c2, TAG_CRASH, NULL, 0));
  r = wait_logged(2);
  weir_pid c3 = child_pid(rt, sup);
  CHECK_EQ_INT(r.action, WEIR_SUP_ACTION_RESTARTED);
  CHECK(weir_pid_eq(r.restarted_as, c3));
  CHECK_EQ_INT(r.restarts, 2);

  /* The third crash in 60 s is one too many: the child's report says the
     supervisor gave up, and the supervisor's own report follows. */
  test_watcher *w = test_watcher_start(rt);
  weir_ref ref = test_watch(w, sup);
  CHECK_OK(weir_cast(rt, c3, TAG_CRASH, NULL, 0));
  int reason = 0;
  CHECK(test_wait_down(w, ref, TEST_LIVENESS_MS, &reason));
  CHECK_EQ_INT(reason, WEIR_REASON_SHUTDOWN); /* a supervisor's stop... */
  wait_logged(4);
  pthread_mutex_lock(&log_mu);
  CHECK(weir_pid_eq(logged[2].pid, c3));
  CHECK_EQ_INT(logged[2].action, WEIR_SUP_ACTION_GAVE_UP);
  CHECK_EQ_INT(logged[2].restarts, 3); /* the one past the limit */
  const weir_report *s = &logged[3];
  CHECK_EQ_INT(s->kind, WEIR_REPORT_SUPERVISOR);
  CHECK(weir_pid_eq(s->pid, sup));
  CHECK_STR_EQ(s->registered_name, "top_sup");
  CHECK_STR_EQ(s->behaviour, "supervisor");
  CHECK_EQ_INT(s->action, WEIR_SUP_ACTION_GAVE_UP);
  CHECK(weir_pid_eq(s->child, c3));
  CHECK_STR_EQ(s->child_id, "w1");
  CHECK_EQ_INT(s->max_restarts, 2);
  test_log("line: %s", lines[3]);
  CHECK(strstr(lines[3], "weir: supervisor "));
  CHECK(strstr(lines[3], " name=top_sup behaviour=supervisor event=gave_up "
                         "reason=reached_max_restart_intensity max_restarts=2 "
                         "max_seconds=60 child="));
  pthread_mutex_unlock(&log_mu);
  test_rt_stop(rt);
  /* ... and its SHUTDOWN is no crash: nothing more was logged */
  CHECK_EQ_U64(log_count(), 4);
  test_watcher_free(w);

  /* A normal stop and a shutdown make no report. */
  rt = start(1000, 1000, 0, NULL);
  weir_pid pid;
  CHECK_OK(weir_spawn(rt, &worker, NULL, NULL, &pid));
  CHECK_OK(weir_exit(rt, pid, WEIR_REASON_SHUTDOWN));
  wait_gone(rt, pid);
  CHECK_OK(weir_sup_start(rt, NULL, &cs, 1, &sup));
  test_rt_stop(rt);
  CHECK_EQ_U64(log_count(), 0);
  test_log("[reports] supervisor: restarted, gave up; no report for a stop");
}

/* ---- a crash loop: rate limits, exact suppressed count, the ring ------- */

static void test_crash_loop(void) {
  const uint32_t RATE = 6, RATE_PROC = 3, RING = 8;
  const uint64_t N = 200;
  weir_rt *rt = start(RATE, RATE_PROC, RING, NULL);
  /* A partition supervisor routes to a slot, whatever incarnation runs
     in it: two workers crash on every message. */
  weir_partsup_opts po;
  weir_partsup_opts_init(&po);
  weir_child_spec_init(&po.child, "w", &worker, NULL);
  po.partitions = 2;
  po.max_restarts = 1000000;
  weir_pid ps;
  CHECK_OK(weir_partsup_start(rt, &po, &ps));
  for (uint64_t i = 0; i < N; i++)
    CHECK_OK(weir_partition_cast(rt, ps, i, TAG_CRASH, &i, sizeof i));
  uint64_t total = 0;
  uint64_t dl = test_now_ms() + TEST_LIVENESS_MS;
  while (total < N && test_now_ms() < dl) {
    CHECK_OK(weir_crash_reports(rt, NULL, 0, NULL, &total));
    test_sleep_ms(5);
  }
  CHECK_EQ_U64(total, N);
  /* The ring: the newest RING, newest first, numbered without gaps. */
  weir_report ring[16];
  size_t n = 0;
  CHECK_OK(weir_crash_reports(rt, ring, 16, &n, &total));
  CHECK_EQ_U64(n, RING);
  CHECK_EQ_U64(ring[0].seq, N);
  for (size_t i = 1; i < n; i++)
    CHECK_EQ_U64(ring[i].seq, ring[i - 1].seq - 1);
  for (size_t i = 0; i < n; i++)
    CHECK_EQ_INT(ring[i].action, WEIR_SUP_ACTION_RESTARTED);
  test_rt_stop(rt); /* flushes the last suppressed line */

  pthread_mutex_lock(&log_mu);
  uint64_t crashes = 0, suppressed = 0, lines_sup = 0;
  /* per second of wall time (the limits' window is a monotonic second, so
     allow two windows per wall second) */
  for (size_t i = 0; i < nlogged; i++) {
    if (logged[i].kind == WEIR_REPORT_SUPPRESSED) {
      CHECK_EQ_INT(levels[i], WEIR_LOG_WARNING);
      CHECK(logged[i].suppressed > 0);
      suppressed += logged[i].suppressed;
      lines_sup++;
    } else {
      CHECK_EQ_INT(logged[i].kind, WEIR_REPORT_CRASH);
      crashes++;
      /* the hook got exactly what the ring kept, where they overlap */
      for (size_t k = 0; k < n; k++)
        if (ring[k].seq == logged[i].seq)
          CHECK(memcmp(&ring[k], &logged[i], sizeof ring[k]) == 0);
    }
  }
  test_log("[reports] crash loop: %llu crashes, %llu logged, %llu suppressed "
           "in %llu lines",
           (unsigned long long)N, (unsigned long long)crashes,
           (unsigned long long)suppressed, (unsigned long long)lines_sup);
  CHECK_EQ_U64(crashes + suppressed, N);
  CHECK(suppressed > 0);
  /* Logged reports of one second never pass the node limit, nor the
     per-process limit. */
  for (size_t i = 0; i < nlogged; i++) {
    if (logged[i].kind != WEIR_REPORT_CRASH) continue;
    unsigned same_s = 0, same_pid_s = 0;
    for (size_t k = 0; k < nlogged; k++) {
      if (logged[k].kind != WEIR_REPORT_CRASH) continue;
      if (logged[k].time >= logged[i].time &&
          logged[k].time < logged[i].time + 0.5) {
        same_s++;
        if (test_pid_slot(logged[k].pid) == test_pid_slot(logged[i].pid))
          same_pid_s++;
      }
    }
    CHECK_MSG(same_s <= 2 * RATE, "%u reports logged within 0.5 s", same_s);
    CHECK_MSG(same_pid_s <= 2 * RATE_PROC,
              "%u reports of one process logged within 0.5 s", same_pid_s);
  }
  pthread_mutex_unlock(&log_mu);
}

/* ---- the console: crashes and metrics ---------------------------------- */

static char *ask(const char *path, const char *req, int multiline) {
  int fd = test_unix_connect(path);
  CHECK(send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
  size_t cap = 1 << 20, len = 0;
  char *b = malloc(cap);
  CHECK(b);
  uint64_t dl = test_now_ms() + TEST_LIVENESS_MS;
  for (;;) {
    b[len] = 0;
    if (len && b[len - 1] == '\n' && (!multiline || strstr(b, "# EOF\n")))
      break;
    struct pollfd pf = {fd, POLLIN, 0};
    CHECK(test_now_ms() < dl && poll(&pf, 1, 100) >= 0);
    if (!(pf.revents & POLLIN)) continue;
    ssize_t k = recv(fd, b + len, cap - len - 1, 0);
    CHECK(k > 0);
    len += (size_t)k;
  }
  close(fd);
  return b;
}

static void test_console(void) {
  char dir[] = "/tmp/weir-report-test-XXXXXX";
  char path[128];
  test_console_path(dir, path, sizeof path);
  weir_rt *rt = start(1000, 1000, 0, path);
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.name = "we\"ird";
  weir_pid pid;
  CHECK_OK(weir_spawn(rt, &worker, NULL, &so, &pid));
  CHECK_OK(weir_cast(rt, pid, TAG_CRASH, "\x01\x02", 2));
  wait_logged(1);
  char *r = ask(path, "crashes\n", 0);
  char pidtxt[32];
  weir_pid_format(pid, pidtxt, sizeof pidtxt);
  test_log("crashes: %s", r);
  CHECK(strstr(r, "{\"node\":\"reports\",\"total\":1,\"suppressed\":0,"
                  "\"kept\":1,\"reports\":[{\"seq\":1,\"kind\":\"crash\""));
  CHECK(strstr(r, "\"registered_name\":\"we\\\"ird\",\"behaviour\":\"crashy\","
                  "\"callback\":\"handle_cast\",\"signal_from\":null,"
                  "\"reason\":\"error\",\"code\":-42,\"message\":{\"tag\":7,"
                  "\"len\":2,\"from\":null,\"head\":\"0102\"}"));
  CHECK(strstr(r, "\"action\":\"none\""));
  CHECK(strstr(r, pidtxt));
  free(r);
  pthread_mutex_lock(&log_mu);
  CHECK(strstr(lines[0], " name=\"we\\\"ird\" "));
  pthread_mutex_unlock(&log_mu);
  r = ask(path, "metrics\n", 1);
  CHECK(strstr(r, "# TYPE weir_crashes_total counter\n"
                  "weir_crashes_total{behaviour=\"crashy\"} 1\n"));
  CHECK(strstr(r, "weir_reports_suppressed_total 0\n"));
  free(r);
  test_rt_stop(rt);
  rmdir(dir);
  test_log("[reports] console crashes and metrics: ok");
}

/* ---- formatting edge cases --------------------------------------------- */

static void test_format(void) {
  weir_report r;
  memset(&r, 0, sizeof r);
  char small[24];
  int full = weir_report_format(&r, small, sizeof small);
  CHECK(full > (int)sizeof small); /* truncated, NUL-terminated */
  CHECK_EQ_U64(strlen(small), sizeof small - 1);
  CHECK_RC(weir_report_format(NULL, small, sizeof small), WEIR_EINVAL);
  CHECK_RC(weir_report_format(&r, small, 0), WEIR_EINVAL);
  CHECK_STR_EQ(weir_reason_name(WEIR_REASON_NORMAL), "normal");
  CHECK_STR_EQ(weir_reason_name(WEIR_REASON_KILLED), "killed");
  CHECK_STR_EQ(weir_reason_name(77), "exit");
  CHECK_STR_EQ(weir_reason_name(WEIR_EFULL), "WEIR_EFULL");
  CHECK_STR_EQ(weir_sup_action_name(WEIR_SUP_ACTION_GAVE_UP), "gave_up");
  CHECK_STR_EQ(weir_sup_action_name((weir_sup_action)99), "unknown");
  /* report_ring past 4096 is refused */
  weir_rt_opts o;
  weir_rt_opts_init(&o);
  o.report_ring = 4097;
  weir_rt *rt = NULL;
  CHECK_RC(weir_rt_start(&o, &rt), WEIR_EINVAL);
}

int main(void) {
  test_format();
  test_callbacks();
  test_link_signal();
  test_supervisor();
  test_crash_loop();
  test_console();
  return 0;
}
