/*
 * test_console.c: the diagnostics console over its Unix socket.
 *
 * A node starts with a console in a fresh run dir; one registered process
 * ("drowning") is blocked in its first callback while the test casts 10000
 * messages to it, the seed's drowning singleton. Then, as a client would:
 * proc_count names it first; every command answers valid JSON (a small
 * validator below, so the test needs nothing outside libc); a line over the
 * limit, garbage, NUL bytes and invalid UTF-8 get {"error": ...} and the
 * connection stays usable where the protocol says so; an idle client is
 * dropped; a slow proc_window does not hold up other clients and does not
 * hold up weir_rt_stop; modes are 0700/0600; a stale socket is replaced and
 * a live one is not; a peer of another uid is refused (when run as root).
 * The request parser is also checked directly.
 */
#include "console.h"
#include "testlib.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define TAG_WORK 1
#define NCASTS   10000

/* ---- a tiny JSON validator (RFC 8259 grammar, no semantics) ------------- */

typedef struct {
  const char *s;
  size_t i, n;
  int depth;
} jp;

static void j_ws(jp *p) {
  while (p->i < p->n && strchr(" \t\r\n", p->s[p->i]))
    p->i++;
}
static int j_value(jp *p);
static int j_lit(jp *p, const char *w) {
  size_t k = strlen(w);
  if (p->n - p->i < k || memcmp(p->s + p->i, w, k)) return 0;
  p->i += k;
  return 1;
}
static int j_string(jp *p) {
  if (p->i >= p->n || p->s[p->i] != '"') return 0;
  p->i++;
  while (p->i < p->n) {
    unsigned char c = (unsigned char)p->s[p->i++];
    if (c == '"') return 1;
    if (c < 0x20) return 0;
    if (c == '\\') {
      if (p->i >= p->n) return 0;
      char e = p->s[p->i++];
      if (e == 'u') {
        for (int k = 0; k < 4; k++, p->i++)
          if (p->i >= p->n || !strchr("0123456789abcdefABCDEF", p->s[p->i]))
            return 0;
      } else if (!strchr("\"\\/bfnrt", e)) {
        return 0;
      }
    }
  }
  return 0;
}
static int j_number(jp *p) {
  size_t st = p->i;
  if (p->i < p->n && p->s[p->i] == '-') p->i++;
  size_t d = p->i;
  while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
    p->i++;
  if (p->i == d) return 0;
  if (p->i < p->n && p->s[p->i] == '.') {
    p->i++;
    d = p->i;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
      p->i++;
    if (p->i == d) return 0;
  }
  return p->i > st;
}
static int j_seq(jp *p, char close, int obj) {
  p->i++;
  j_ws(p);
  if (p->i < p->n && p->s[p->i] == close) {
    p->i++;
    return 1;
  }
  for (;;) {
    j_ws(p);
    if (obj) {
      if (!j_string(p)) return 0;
      j_ws(p);
      if (p->i >= p->n || p->s[p->i++] != ':') return 0;
    }
    if (!j_value(p)) return 0;
    j_ws(p);
    if (p->i >= p->n) return 0;
    char c = p->s[p->i++];
    if (c == close) return 1;
    if (c != ',') return 0;
  }
}
static int j_value(jp *p) {
  j_ws(p);
  if (p->i >= p->n || ++p->depth > 64) return 0;
  int ok;
  char c = p->s[p->i];
  if (c == '{')
    ok = j_seq(p, '}', 1);
  else if (c == '[')
    ok = j_seq(p, ']', 0);
  else if (c == '"')
    ok = j_string(p);
  else if (c == 't')
    ok = j_lit(p, "true");
  else if (c == 'f')
    ok = j_lit(p, "false");
  else if (c == 'n')
    ok = j_lit(p, "null");
  else
    ok = j_number(p);
  p->depth--;
  return ok;
}
/* 1 if s is exactly one JSON value (surrounding whitespace allowed). */
static int json_valid(const char *s) {
  jp p = {s, 0, strlen(s), 0};
  if (!j_value(&p)) return 0;
  j_ws(&p);
  return p.i == p.n;
}

/* ---- the drowning server ------------------------------------------------- */

static atomic_int release_gate;
static atomic_int entered;

static int drown_cast(weir_ctx *cx, void *st, const weir_msg *m) {
  (void)cx;
  (void)st;
  (void)m;
  atomic_store(&entered, 1);
  while (!atomic_load(&release_gate))
    test_sleep_ms(1);
  return WEIR_OK;
}
static const weir_server drown_srv = {.name = "drown",
                                      .handle_cast = drown_cast};

/* ---- a socket client ---------------------------------------------------- */

static void set_sun_path(struct sockaddr_un *sa, const char *path) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  CHECK(strlen(path) < sizeof sa->sun_path);
  memcpy(sa->sun_path, path, strlen(path) + 1);
}

static int sock_connect(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK(fd >= 0);
  struct sockaddr_un sa;
  set_sun_path(&sa, path);
  CHECK_MSG(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0,
            "connect %s: %s", path, strerror(errno));
  return fd;
}

static void send_all(int fd, const char *s, size_t n) {
  while (n) {
    ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
    CHECK_MSG(k > 0, "send: %s", strerror(errno));
    s += k;
    n -= (size_t)k;
  }
}

/* Reads one reply line (or, with until_eof_marker, up to "# EOF\n") into a
   malloc'd string; NULL on EOF before any byte. Fails after ms. */
static char *read_reply(int fd, int multiline, int ms) {
  size_t cap = 1 << 16, len = 0;
  char *b = malloc(cap);
  CHECK(b);
  uint64_t dl = test_now_ms() + (uint64_t)ms;
  for (;;) {
    b[len] = 0;
    if (!multiline && len && b[len - 1] == '\n') break;
    if (multiline && len >= 6 && strcmp(b + len - 6, "# EOF\n") == 0) break;
    if (multiline && len && b[0] == '{' && b[len - 1] == '\n') break;
    struct pollfd pf = {fd, POLLIN, 0};
    int left = (int)(dl > test_now_ms() ? dl - test_now_ms() : 0);
    CHECK_MSG(poll(&pf, 1, left) == 1, "no reply within %d ms (got %zu bytes)",
              ms, len);
    if (len + 1 >= cap) {
      cap *= 2;
      b = realloc(b, cap);
      CHECK(b);
    }
    /* One byte at a time for a line: the next reply stays in the socket. */
    ssize_t k = recv(fd, b + len, multiline ? cap - len - 1 : 1, 0);
    if (k <= 0) {
      if (len == 0) {
        free(b);
        return NULL;
      }
      break;
    }
    len += (size_t)k;
  }
  return b;
}

/* One request on a fresh connection; the reply, which must be JSON. */
static char *ask(const char *path, const char *req) {
  int fd = sock_connect(path);
  send_all(fd, req, strlen(req));
  send_all(fd, "\n", 1);
  char *r = read_reply(fd, 0, TEST_LIVENESS_MS);
  close(fd);
  CHECK_MSG(r, "no reply to '%s'", req);
  CHECK_MSG(json_valid(r), "reply to '%s' is not JSON: %s", req, r);
  return r;
}

/* 1 if `alarms` lists drowning's long_message_queue alarm. */
static int alarm_listed(const char *path) {
  char *r = ask(path, "alarms");
  int ok = strstr(r, "\"kind\":\"long_message_queue\"") &&
           strstr(r, "\"registered_name\":\"drowning\"") &&
           !strstr(r, "\"alarms_active\":0");
  free(r);
  return ok;
}

static void expect_error(const char *r, const char *what) {
  CHECK_MSG(strncmp(r, "{\"error\":", 9) == 0, "%s: expected an error: %s",
            what, r);
}

/* 1 if EOF comes within ms (the server closed the connection). */
static int closed_within(int fd, int ms) {
  char buf[256];
  uint64_t dl = test_now_ms() + (uint64_t)ms;
  while (test_now_ms() < dl) {
    struct pollfd pf = {fd, POLLIN, 0};
    if (poll(&pf, 1, 50) != 1) continue;
    ssize_t k = recv(fd, buf, sizeof buf, 0);
    if (k <= 0) return 1;
  }
  return 0;
}

/* ---- parser, directly ---------------------------------------------------- */

static void test_parser(void) {
  weir__console_req rq;
  char err[160];
  CHECK_OK(weir__console_parse("proc_count message_queue_len 3", 30, &rq, err,
                               sizeof err));
  CHECK_EQ_INT(rq.cmd, WEIR__CMD_PROC_COUNT);
  CHECK_EQ_INT(rq.attr, WEIR_ATTR_MESSAGE_QUEUE_LEN);
  CHECK_EQ_INT(rq.n, 3);
  const char *w = "  proc_window\treductions 10 250\r";
  CHECK_OK(weir__console_parse(w, strlen(w), &rq, err, sizeof err));
  CHECK_EQ_INT(rq.cmd, WEIR__CMD_PROC_WINDOW);
  CHECK_EQ_INT(rq.ms, 250);
  CHECK_OK(weir__console_parse("info <0.5.2>", 12, &rq, err, sizeof err));
  CHECK(rq.has_pid && rq.pid.id == ((uint64_t)2 << 32 | 5));
  CHECK_OK(weir__console_parse("info drowning", 13, &rq, err, sizeof err));
  CHECK(!rq.has_pid);
  CHECK_STR_EQ(rq.name, "drowning");
  static const struct {
    const char *in;
    size_t len;
    const char *msg;
  } bad[] = {
      {"", 0, "empty"},
      {"   ", 3, "empty"},
      {"nope", 4, "unknown command"},
      {"proc_count", 10, "usage"},
      {"proc_count foo 3", 16, "unknown attribute 'foo'"},
      {"proc_count memory 0", 19, "N must be"},
      {"proc_count memory 1001", 22, "N must be"},
      {"proc_count memory -1", 20, "N must be"},
      {"proc_count memory 99999999999", 29, "N must be"},
      {"proc_window memory 3 60001", 26, "MS must be"},
      {"scheduler_usage x", 17, "MS must be"},
      {"help me", 7, "usage"},
      {"help\0", 5, "NUL"},
      {"he\x01lp", 5, "control"},
      {"info \xff\xfe", 7, "UTF-8"},
      {"info \xc0\xaf", 7, "UTF-8"},     /* overlong */
      {"info \xed\xa0\x80", 8, "UTF-8"}, /* surrogate */
      {"a b c d e f g", 13, "too many"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_RC(weir__console_parse(bad[i].in, bad[i].len, &rq, err, sizeof err),
             WEIR_EINVAL);
    CHECK_MSG(strstr(err, bad[i].msg), "case %zu: '%s' lacks '%s'", i, err,
              bad[i].msg);
  }
  char big[WEIR__CONSOLE_LINE_MAX + 1];
  memset(big, 'a', sizeof big);
  CHECK_RC(weir__console_parse(big, sizeof big, &rq, err, sizeof err),
           WEIR_EINVAL);
  CHECK(strstr(err, "longer than 1024"));
  /* A 64-byte name does not fit the registry's 63. */
  char name[80] = "info ";
  memset(name + 5, 'n', 64);
  name[69] = 0;
  CHECK_RC(weir__console_parse(name, 69, &rq, err, sizeof err), WEIR_EINVAL);
  /* The error text survives a tiny buffer. */
  char tiny[4];
  CHECK_RC(weir__console_parse("zzz", 3, &rq, tiny, sizeof tiny), WEIR_EINVAL);
  CHECK_EQ_INT(strlen(tiny), 3);
  test_log("[console] parser ok");
}

/* ---- the node ------------------------------------------------------------ */

typedef struct {
  const char *path;
  char *reply;
  uint64_t took_ms;
} asker;

static void *ask_thread(void *arg) {
  asker *a = arg;
  uint64_t t0 = test_now_ms();
  a->reply = ask(a->path, "proc_window message_queue_len 3 1500");
  a->took_ms = test_now_ms() - t0;
  return NULL;
}

static char *app_metrics(void *ud) {
  return strdup((const char *)ud);
}

static void test_node(const char *tmp) {
  char run[256];
  snprintf(run, sizeof run, "%s/run", tmp);
  setenv("WEIR_RUN_DIR", run, 1);
  weir_rt_opts o;
  weir_rt_opts_init(&o);
  o.schedulers = 2;
  o.node_name = "ctest";
  o.console = "";
  o.alarm_enable = 1000; /* the drowning process raises one */
  o.alarm_log = 0;
  o.metrics_extra = app_metrics;
  o.metrics_ud = (void *)"# HELP app_partition_lag An application's own.\n"
                         "# TYPE app_partition_lag gauge\n"
                         "app_partition_lag{partition=\"3\"} 42\n";
  weir_rt *rt = test_rt_start_opts(&o);
  char path[300];
  snprintf(path, sizeof path, "%s/ctest.sock", run);
  CHECK_STR_EQ(weir_rt_console_path(rt), path);
  struct stat st;
  CHECK(stat(run, &st) == 0);
  CHECK_MSG((st.st_mode & 07777) == 0700, "run dir mode %o", st.st_mode);
  CHECK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode));
  CHECK_MSG((st.st_mode & 07777) == 0600, "socket mode %o", st.st_mode);

  /* The same path cannot be served twice. */
  weir_rt *rt2 = NULL;
  CHECK_RC(weir_rt_start(&o, &rt2), WEIR_EEXIST);

  /* The drowning singleton. */
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.name = "drowning";
  so.blocking = 1;
  weir_pid d;
  CHECK_OK(weir_spawn(rt, &drown_srv, NULL, &so, &d));
  for (int i = 0; i < NCASTS + 1; i++)
    CHECK_OK(weir_cast(rt, d, TAG_WORK, &i, sizeof i));
  WAIT_UNTIL(atomic_load(&entered), TEST_LIVENESS_MS);

  char *r = ask(path, "proc_count message_queue_len 3");
  test_log("[console] proc_count: %s", r);
  CHECK(r[0] == '[');
  const char *rn = strstr(r, "\"registered_name\":");
  CHECK(rn && strncmp(rn + 18, "\"drowning\"", 10) == 0);
  const char *v = strstr(r, "\"value\":");
  CHECK(v && strtoull(v + 8, NULL, 10) >= NCASTS);
  CHECK(strstr(r, "\"current_function\":\"drown:handle_cast\""));
  CHECK(strstr(r, "\"initial_call\":\"drown\""));
  free(r);

  /* The alarm it raised is listed. */
  WAIT_UNTIL(alarm_listed(path), TEST_LIVENESS_MS);

  /* Every command answers JSON. */
  char pidtxt[32], req[64];
  weir_pid_format(d, pidtxt, sizeof pidtxt);
  const char *cmds[] = {"help",
                        "node_stats",
                        "info drowning",
                        "alarms",
                        "proc_count memory 5",
                        "proc_count reductions 1000",
                        "proc_window messages_in 2 100",
                        "scheduler_usage 150",
                        "partitions drowning",
                        "partitions nosuch",
                        "info nosuch",
                        "info <0.999.1>"};
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    free(ask(path, cmds[i]));
  snprintf(req, sizeof req, "info %s", pidtxt);
  r = ask(path, req);
  CHECK(strstr(r, "\"registered_name\":\"drowning\""));
  CHECK(strstr(r, "\"blocking\":true"));
  free(r);
  r = ask(path, "node_stats");
  CHECK(strstr(r, "\"node\":\"ctest\""));
  free(r);
  r = ask(path, "scheduler_usage 100");
  CHECK(strstr(r, "\"schedulers\":["));
  free(r);
  expect_error((r = ask(path, "partitions nosuch")), "partitions"), free(r);
  expect_error((r = ask(path, "info nosuch")), "info"), free(r);

  /* metrics: Prometheus text ending with # EOF. */
  int fd = sock_connect(path);
  send_all(fd, "metrics\n", 8);
  r = read_reply(fd, 1, TEST_LIVENESS_MS);
  CHECK(r && strstr(r, "weir_processes "));
  CHECK(strstr(r, "# TYPE weir_dropped_total counter"));
  CHECK(strstr(r, "weir_process_message_queue_len{pid=\""));
  CHECK(strstr(r, "name=\"drowning\""));
  CHECK(strstr(r, "\napp_partition_lag{partition=\"3\"} 42\n")); /* hook */
  CHECK(strlen(r) >= 6 && strcmp(r + strlen(r) - 6, "# EOF\n") == 0);
  free(r);
  /* ... and the same connection serves the next request. */
  send_all(fd, "help\n", 5);
  r = read_reply(fd, 0, TEST_LIVENESS_MS);
  CHECK(r && json_valid(r));
  free(r);

  /* Garbage, NUL bytes, invalid UTF-8: errors, the connection stays. */
  static const struct {
    const char *s;
    size_t n;
  } junk[] = {{"blah\n", 5},
              {"\x01\x02\x03\n", 4},
              {"help\0x\n", 7},
              {"info \xff\xfe\n", 8},
              {"proc_count message_queue_len 0\n", 31},
              {"\n", 1},
              {"proc_count nonsense 3\n", 22}};
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
    send_all(fd, junk[i].s, junk[i].n);
    r = read_reply(fd, 0, TEST_LIVENESS_MS);
    CHECK_MSG(r && json_valid(r), "junk %zu", i);
    expect_error(r, "junk");
    free(r);
  }
  /* Two requests in one write: two replies, in order. */
  send_all(fd, "node_stats\nalarms\n", 18);
  r = read_reply(fd, 0, TEST_LIVENESS_MS);
  CHECK(r && strstr(r, "\"processes\""));
  free(r);
  r = read_reply(fd, 0, TEST_LIVENESS_MS);
  CHECK(r && strstr(r, "\"alarms\":["));
  free(r);
  close(fd);

  /* A line of exactly 1024 bytes (CR LF aside) is served, sent in pieces. */
  fd = sock_connect(path);
  char edge[WEIR__CONSOLE_LINE_MAX + 2];
  memset(edge, ' ', sizeof edge);
  memcpy(edge, "help", 4);
  edge[WEIR__CONSOLE_LINE_MAX] = '\r';
  edge[WEIR__CONSOLE_LINE_MAX + 1] = '\n';
  send_all(fd, edge, WEIR__CONSOLE_LINE_MAX + 1);
  test_sleep_ms(50);
  send_all(fd, edge + WEIR__CONSOLE_LINE_MAX + 1, 1);
  r = read_reply(fd, 0, TEST_LIVENESS_MS);
  CHECK(r && json_valid(r) && strstr(r, "\"commands\""));
  free(r);
  /* ... and one byte more is not. */
  edge[WEIR__CONSOLE_LINE_MAX] = ' ';
  send_all(fd, edge, WEIR__CONSOLE_LINE_MAX + 1);
  send_all(fd, "\n", 1);
  r = read_reply(fd, 0, TEST_LIVENESS_MS);
  CHECK(r && strstr(r, "longer than 1024"));
  free(r);
  CHECK(closed_within(fd, 5000));
  close(fd);

  /* A line over the limit: an error, then the server closes. */
  fd = sock_connect(path);
  char big[3000];
  memset(big, 'x', sizeof big);
  send_all(fd, big, sizeof big);
  r = read_reply(fd, 0, TEST_LIVENESS_MS);
  CHECK(r && json_valid(r));
  CHECK(strstr(r, "longer than 1024"));
  free(r);
  CHECK(closed_within(fd, 5000));
  close(fd);

  /* An idle client is dropped. */
  atomic_store(&weir__console_idle_ms, 300);
  fd = sock_connect(path);
  uint64_t t0 = test_now_ms();
  r = read_reply(fd, 0, 5000);
  CHECK(r && strstr(r, "idle timeout"));
  free(r);
  CHECK(closed_within(fd, 5000));
  CHECK(test_now_ms() - t0 < 5000);
  close(fd);
  atomic_store(&weir__console_idle_ms, 10000);

  /* A slow proc_window holds up nobody else. */
  asker a = {path, NULL, 0};
  pthread_t th;
  CHECK(pthread_create(&th, NULL, ask_thread, &a) == 0);
  test_sleep_ms(200);
  t0 = test_now_ms();
  free(ask(path, "node_stats"));
  uint64_t quick = test_now_ms() - t0;
  CHECK_MSG(quick < 1000, "node_stats took %llu ms during a proc_window",
            (unsigned long long)quick);
  pthread_join(th, NULL);
  CHECK(a.reply[0] == '[');
  CHECK_MSG(a.took_ms >= 1400, "proc_window 1500 took %llu ms",
            (unsigned long long)a.took_ms);
  free(a.reply);

  /* A peer of another uid is refused (only testable as root). */
  if (geteuid() == 0) {
    chmod(tmp, 0755);
    chmod(run, 0755);
    chmod(path, 0666);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
      if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
      int cfd = socket(AF_UNIX, SOCK_STREAM, 0);
      struct sockaddr_un sa;
      set_sun_path(&sa, path);
      if (connect(cfd, (struct sockaddr *)&sa, sizeof sa) != 0) _exit(4);
      if (send(cfd, "help\n", 5, MSG_NOSIGNAL) < 0) {
        /* refused early: fine, the read decides */
      }
      char buf[512] = {0};
      ssize_t k = recv(cfd, buf, sizeof buf - 1, 0);
      _exit(k > 0 && strstr(buf, "permission denied") ? 0 : 5);
    }
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "other-uid peer: child status %d", status);
    chmod(tmp, 0700);
    chmod(run, 0700);
    chmod(path, 0600);
    test_log("[console] other uid refused");
  }

  /* Stop during a long proc_window: prompt, and the socket file goes. */
  fd = sock_connect(path);
  send_all(fd, "proc_window memory 3 60000\n", 27);
  test_sleep_ms(100);
  atomic_store(&release_gate, 1);
  t0 = test_now_ms();
  test_rt_stop(rt);
  CHECK_MSG(test_now_ms() - t0 < 10000, "stop took %llu ms",
            (unsigned long long)(test_now_ms() - t0));
  CHECK(closed_within(fd, 5000));
  close(fd);
  CHECK(stat(path, &st) != 0 && errno == ENOENT);

  /* A stale socket (its node died) is replaced at start. */
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa;
  set_sun_path(&sa, path);
  CHECK(bind(s, (struct sockaddr *)&sa, sizeof sa) == 0);
  close(s);
  o.console = path; /* an explicit path this time */
  rt = test_rt_start_opts(&o);
  free(ask(path, "help"));
  test_rt_stop(rt);
  CHECK(stat(path, &st) != 0);
  unsetenv("WEIR_RUN_DIR");
  rmdir(run);
  test_log("[console] node ok");
}

int main(void) {
  test_parser();
  char tmp[] = "/tmp/weir-console-test-XXXXXX";
  CHECK(mkdtemp(tmp));
  test_node(tmp);
  CHECK(rmdir(tmp) == 0);
  return 0;
}
