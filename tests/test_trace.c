/*
 * test_trace.c: message tracing over the console (`trace`, `trace_key`).
 *
 * Exact messages in order (kind, tag, length, sender, first bytes), the tag
 * filter, the caps and the end reasons (count, time, the process's exit),
 * a trace on a dead pid, the worker of a partition supervisor by key, a
 * slow tracer (the traced process handles every message while its tracer
 * reads nothing, and each message is either printed or counted lost:
 * printed + lost = N exactly), a trace ending with its client, and
 * requests pipelined behind a trace.
 */
#include "internal.h"
#include "testlib.h"

#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static atomic_ullong handled;

static int t_cast(weir_ctx *cx, void *st, const weir_msg *m) {
  (void)cx;
  (void)st;
  (void)m;
  atomic_fetch_add(&handled, 1);
  return WEIR_OK;
}
static int t_info(weir_ctx *cx, void *st, const weir_msg *m) {
  (void)cx;
  (void)st;
  return m->tag == 99 ? WEIR_STOP : WEIR_OK;
}
static const weir_server traced = {
    .name = "traced", .handle_cast = t_cast, .handle_info = t_info};

static void say(int fd, const char *req) {
  size_t n = strlen(req);
  CHECK(send(fd, req, n, MSG_NOSIGNAL) == (ssize_t)n);
}

/* One line (without its newline) into buf; fails after ms. */
static void line(int fd, char *buf, size_t n, int ms) {
  size_t len = 0;
  uint64_t dl = test_now_ms() + (uint64_t)ms;
  for (;;) {
    struct pollfd pf = {fd, POLLIN, 0};
    int left = (int)(dl > test_now_ms() ? dl - test_now_ms() : 0);
    CHECK_MSG(poll(&pf, 1, left) == 1, "no line within %d ms", ms);
    char c;
    CHECK(recv(fd, &c, 1, 0) == 1);
    if (c == '\n') break;
    CHECK(len + 1 < n);
    buf[len++] = c;
  }
  buf[len] = 0;
}

static unsigned long long field(const char *l, const char *key) {
  const char *p = strstr(l, key);
  CHECK_MSG(p, "'%s' lacks %s", l, key);
  return strtoull(p + strlen(key), NULL, 10);
}

static void test_exact(const char *path, weir_rt *rt, weir_pid pid) {
  char l[512], req[128], pidtxt[32];
  weir_pid_format(pid, pidtxt, sizeof pidtxt);
  int fd = test_unix_connect(path);
  say(fd, "trace tracee 5 30 *\n");
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  snprintf(req, sizeof req,
           "{\"trace\":\"started\",\"pid\":\"%s\",\"count\":5,\"secs\":30,"
           "\"tags\":null}",
           pidtxt);
  CHECK_STR_EQ(l, req);
  for (uint32_t i = 0; i < 5; i++) {
    char payload[20];
    snprintf(payload, sizeof payload, "msg-%u-abcdefghijk", i);
    if (i == 3)
      CHECK_OK(weir_send(rt, pid, 40 + i, payload, (uint32_t)strlen(payload)));
    else
      CHECK_OK(weir_cast(rt, pid, 40 + i, payload, (uint32_t)strlen(payload)));
  }
  for (uint32_t i = 0; i < 5; i++) {
    line(fd, l, sizeof l, TEST_LIVENESS_MS);
    CHECK_MSG(strstr(l, i == 3 ? "\"kind\":\"info\"" : "\"kind\":\"cast\""),
              "%s", l);
    CHECK_EQ_U64(field(l, "\"tag\":"), 40 + i);
    CHECK_EQ_U64(field(l, "\"len\":"), 17);
    CHECK(strstr(l, "\"from\":null"));
    char hex[64];
    snprintf(hex, sizeof hex, "\"head\":\"6d73672d%02x2d6162636465666768696a\"",
             '0' + i); /* "msg-N-abcdefgh" */
    CHECK_MSG(strstr(l, hex), "%s lacks %s", l, hex);
  }
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK_STR_EQ(
      l, "{\"trace\":\"end\",\"reason\":\"count\",\"messages\":5,\"lost\":0}");
  /* the connection serves requests again, and the tag filter */
  say(fd, "trace tracee 2 30 7,9\n");
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK(strstr(l, "\"tags\":[7,9]}"));
  for (uint32_t t = 1; t <= 10; t++)
    CHECK_OK(weir_cast(rt, pid, t, NULL, 0));
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK_EQ_U64(field(l, "\"tag\":"), 7);
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK_EQ_U64(field(l, "\"tag\":"), 9);
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK(strstr(l, "\"reason\":\"count\",\"messages\":2,\"lost\":0"));
  /* time: nothing comes within 1 s */
  uint64_t t0 = test_now_ms();
  say(fd, "trace tracee 10 1 5\n");
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK_STR_EQ(
      l, "{\"trace\":\"end\",\"reason\":\"time\",\"messages\":0,\"lost\":0}");
  CHECK(test_now_ms() - t0 >= 1000);
  close(fd);
  test_log("[trace] exact messages, filter, count and time: ok");
}

/* Requests pipelined behind a trace, in one write, are served once each
   and in order after the trace ends, however fast it ends. (A trace that
   ended inside the request that began it once handled that request again
   and corrupted the client's buffer.) */
static void test_pipelined(const char *path, weir_rt *rt, weir_pid pid) {
  char l[512];
  for (int round = 0; round < 50; round++) {
    int fd = test_unix_connect(path);
    say(fd, "trace tracee 1 5 77\nnode_stats\ntrace tracee 1 5 78\n");
    line(fd, l, sizeof l, TEST_LIVENESS_MS);
    CHECK_MSG(strstr(l, "\"trace\":\"started\""), "%s", l);
    CHECK_OK(weir_cast(rt, pid, 77, NULL, 0));
    line(fd, l, sizeof l, TEST_LIVENESS_MS);
    CHECK_EQ_U64(field(l, "\"tag\":"), 77);
    line(fd, l, sizeof l, TEST_LIVENESS_MS);
    CHECK_MSG(strstr(l, "\"reason\":\"count\",\"messages\":1"), "%s", l);
    line(fd, l, sizeof l, TEST_LIVENESS_MS);
    CHECK_MSG(strstr(l, "\"processes\""), "node_stats: %s", l);
    line(fd, l, sizeof l, TEST_LIVENESS_MS);
    CHECK_MSG(strstr(l, "\"trace\":\"started\"") && strstr(l, "[78]"), "%s", l);
    CHECK_OK(weir_cast(rt, pid, 78, NULL, 0));
    line(fd, l, sizeof l, TEST_LIVENESS_MS);
    CHECK_EQ_U64(field(l, "\"tag\":"), 78);
    line(fd, l, sizeof l, TEST_LIVENESS_MS);
    CHECK_MSG(strstr(l, "\"reason\":\"count\""), "%s", l);
    /* nothing more: each request was served once */
    struct pollfd pf = {fd, POLLIN, 0};
    CHECK(poll(&pf, 1, 50) == 0);
    close(fd);
  }
  test_log("[trace] pipelined requests behind a trace, 50 rounds: ok");
}

/* The tracer reads nothing while the process takes N messages. */
static void test_slow_tracer(const char *path, weir_rt *rt, weir_pid pid) {
  const uint64_t N = 10000;
  char l[512];
  int fd = test_unix_connect(path);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  say(fd, "trace tracee 10000 300 *\n");
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK(strstr(l, "\"trace\":\"started\""));
  uint64_t before = atomic_load(&handled);
  for (uint64_t i = 0; i < 2 * N; i++)
    CHECK_OK(weir_cast(rt, pid, 1, &i, sizeof i));
  /* the process handles all 2N while nobody reads its trace */
  uint64_t dl = test_now_ms() + TEST_LIVENESS_MS;
  while (atomic_load(&handled) - before < 2 * N && test_now_ms() < dl)
    test_sleep_ms(1);
  CHECK_EQ_U64(atomic_load(&handled) - before, 2 * N);
  /* now read: every one of the first N is a line or counted lost */
  uint64_t lines = 0, prev = 0;
  for (;;) {
    line(fd, l, sizeof l, TEST_LIVENESS_MS);
    if (strstr(l, "\"trace\":\"end\"")) break;
    uint64_t v = 0;
    const char *h = strstr(l, "\"head\":\"");
    CHECK(h);
    for (int k = 7; k >= 0; k--) { /* little-endian u64 in hex */
      unsigned byte;
      CHECK(sscanf(h + 8 + 2 * k, "%2x", &byte) == 1);
      v = v << 8 | byte;
    }
    CHECK_MSG(lines == 0 || v > prev, "out of order: %llu after %llu",
              (unsigned long long)v, (unsigned long long)prev);
    prev = v;
    lines++;
  }
  uint64_t lost = field(l, "\"lost\":");
  test_log("[trace] slow tracer: %llu printed, %llu lost of %llu",
           (unsigned long long)lines, (unsigned long long)lost,
           (unsigned long long)N);
  CHECK(strstr(l, "\"reason\":\"count\""));
  CHECK_EQ_U64(field(l, "\"messages\":"), lines);
  CHECK_EQ_U64(lines + lost, N);
  CHECK(lost > 0);
  close(fd);
}

static void test_edges(const char *path, weir_rt *rt, weir_pid pid) {
  char l[512];
  int fd = test_unix_connect(path);
  /* a dead pid, an unknown name, the caps */
  say(fd, "trace <0.999.7> 1 1 *\n");
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK_STR_EQ(l, "{\"error\":\"no such process\"}");
  say(fd, "trace nobody 1 1 *\n");
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK(strstr(l, "no process registered as 'nobody'"));
  say(fd, "trace tracee 10001 1 *\n");
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK(strstr(l, "N must be a number from 1 to 10000"));
  say(fd, "trace tracee 1 301 *\n");
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK(strstr(l, "SECS must be a number from 1 to 300"));
  say(fd, "trace tracee 1 1 1,,2\n");
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK(strstr(l, "TAGS must be"));
  say(fd, "trace_key tracee 3 1 1 *\n");
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK(strstr(l, "'tracee' is not a partition supervisor"));
  close(fd);

  /* the trace ends with its client: the slot's flag goes */
  weir__proc *p = weir__proc_get(rt, pid);
  CHECK(p);
  fd = test_unix_connect(path);
  say(fd, "trace tracee 100 300 *\n");
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK(atomic_load(&p->rx_flags) & WEIR__RX_TRACED);
  close(fd);
  uint64_t dl = test_now_ms() + TEST_LIVENESS_MS;
  while ((atomic_load(&p->rx_flags) & WEIR__RX_TRACED) && test_now_ms() < dl)
    test_sleep_ms(2);
  CHECK(!(atomic_load(&p->rx_flags) & WEIR__RX_TRACED));

  /* the process's exit ends the trace, after what it took before */
  fd = test_unix_connect(path);
  say(fd, "trace tracee 100 300 *\n");
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK_OK(weir_cast(rt, pid, 5, NULL, 0));
  CHECK_OK(weir_send(rt, pid, 99, NULL, 0)); /* handle_info: stop */
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK_EQ_U64(field(l, "\"tag\":"), 5);
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK_EQ_U64(field(l, "\"tag\":"), 99);
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK_STR_EQ(
      l, "{\"trace\":\"end\",\"reason\":\"exited\",\"messages\":2,\"lost\":0}");
  close(fd);
  test_log("[trace] dead pid, caps, client gone, exit: ok");
}

static void test_key(const char *path, weir_rt *rt) {
  weir_partsup_opts po;
  weir_partsup_opts_init(&po);
  po.name = "parts";
  po.partitions = 4;
  weir_child_spec_init(&po.child, "w", &traced, NULL);
  weir_pid ps, w;
  CHECK_OK(weir_partsup_start(rt, &po, &ps));
  CHECK_OK(weir_partition_whereis(rt, ps, 6, &w));
  char l[512], want[64], pidtxt[32];
  weir_pid_format(w, pidtxt, sizeof pidtxt);
  int fd = test_unix_connect(path);
  say(fd, "trace_key parts 6 1 10 *\n");
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  snprintf(want, sizeof want, "\"pid\":\"%s\"", pidtxt);
  CHECK_MSG(strstr(l, want) && strstr(l, "\"key\":\"6\""), "%s", l);
  CHECK_OK(weir_partition_cast(rt, ps, 2, 11, NULL, 0)); /* same partition */
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK_EQ_U64(field(l, "\"tag\":"), 11);
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK(strstr(l, "\"reason\":\"count\""));
  /* a byte key routes as weir_partition_cast_bytes does */
  say(fd, "trace_key parts u42 1 10 *\n");
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK(strstr(l, "\"key\":\"u42\""));
  CHECK_OK(weir_partition_cast_bytes(rt, ps, "u42", 3, 12, NULL, 0));
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  CHECK_EQ_U64(field(l, "\"tag\":"), 12);
  line(fd, l, sizeof l, TEST_LIVENESS_MS);
  close(fd);
  test_log("[trace] partition worker by key: ok");
}

int main(void) {
  char dir[] = "/tmp/weir-trace-test-XXXXXX";
  char path[128];
  test_console_path(dir, path, sizeof path);
  weir_rt_opts o;
  weir_rt_opts_init(&o);
  o.schedulers = 2;
  o.console = path;
  weir_rt *rt = test_rt_start_opts(&o);
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.name = "tracee";
  weir_pid pid;
  CHECK_OK(weir_spawn(rt, &traced, NULL, &so, &pid));
  test_exact(path, rt, pid);
  test_pipelined(path, rt, pid);
  test_slow_tracer(path, rt, pid);
  test_key(path, rt);
  test_edges(path, rt, pid);
  test_rt_stop(rt);
  rmdir(dir);
  return 0;
}
