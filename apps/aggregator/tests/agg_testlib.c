/*
 * agg_testlib.c: see agg_testlib.h. Nothing here is clever: each helper
 * fails the test (CHECK) rather than return an error the caller might
 * forget to look at, except where the comment in the header says -1.
 */
#include "agg_testlib.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void (*agg_test_on_fail)(void);

void agg_test_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s:%d: FAIL: ", file, line);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  void (*hook)(void) = agg_test_on_fail;
  agg_test_on_fail = NULL;
  if (hook) hook();
  abort();
}

void agg_test_log(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

void agg_test_tmpdir(char *out, size_t n) {
  const char *t = getenv("TMPDIR");
  snprintf(out, n, "%s/weir-agg-test-XXXXXX", t && *t ? t : "/tmp");
  CHECK_MSG(mkdtemp(out) != NULL, "mkdtemp %s failed", out);
}

void agg_test_rmdir(const char *dir) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

agg_serve_opts agg_test_opts(const char *db) {
  agg_args a;
  agg_args_defaults(&a);
  agg_serve_opts o = a.serve;
  o.port = 0;
  o.db = db;
  o.console = 0;
  o.http_threads = 2;
  o.partitions = 4;
  o.batch = 16;
  o.alarm_queue = 0; /* floods here are on purpose: keep the log readable */
  return o;
}

agg_service *agg_test_start(const agg_serve_opts *o) {
  agg_service *svc;
  char err[512];
  CHECK_MSG(agg_service_start(o, NULL, &svc, err, sizeof err) == 0,
            "service start: %s", err);
  return svc;
}

int agg_test_http(uint16_t port, const char *method, const char *path,
                  const char *body, size_t len, char **resp, int *retry_after) {
  agg_client c;
  agg_client_init(&c, "127.0.0.1", port);
  int rc = agg_client_request(
      &c, method, path, body ? "application/json" : NULL, body, len, NULL);
  CHECK_MSG(rc == 0, "%s %s: connection failed", method, path);
  int status = c.status;
  if (resp) *resp = strdup(c.body ? c.body : "");
  if (retry_after) *retry_after = c.retry_after;
  agg_client_close(&c);
  return status;
}

long long agg_test_metric(uint16_t port, const char *name) {
  agg_client c;
  agg_client_init(&c, "127.0.0.1", port);
  long long v = -1;
  if (agg_client_request(&c, "GET", "/metrics", NULL, NULL, 0, NULL) == 0 &&
      c.status == 200) {
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(c.body, key);
    if (p) v = atoll(p + strlen(key));
  }
  agg_client_close(&c);
  return v;
}

int agg_test_wait_stored(uint16_t port, int ms) {
  double end = agg_test_now_ms() + ms;
  while (agg_test_now_ms() < end) {
    long long a = agg_test_metric(port, "weir_agg_accepted_total");
    long long s = agg_test_metric(port, "weir_agg_stored_total");
    long long d = agg_test_metric(port, "weir_agg_duplicates_total");
    if (a >= 0 && s >= 0 && d >= 0 && s + d >= a) return 0;
    agg_test_sleep_ms(50);
  }
  return -1;
}

int agg_test_spawn_serve(const char *path, const char *const *args,
                         uint16_t *port) {
  int fds[2];
  CHECK(pipe(fds) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    const char *argv[64];
    int n = 0;
    argv[n++] = path;
    argv[n++] = "serve";
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--no-console";
    for (int i = 0; args[i] && n < 63; i++)
      argv[n++] = args[i];
    argv[n] = NULL;
    execv(path, (char *const *)argv);
    _exit(127);
  }
  close(fds[1]);
  FILE *f = fdopen(fds[0], "r");
  char line[512] = "";
  CHECK_MSG(fgets(line, sizeof line, f) != NULL, "serve printed nothing");
  const char *p = strstr(line, "http://127.0.0.1:");
  CHECK_MSG(p, "unexpected first line: %s", line);
  *port = (uint16_t)atoi(p + 17);
  /* Keep reading its stdout in the background so it never blocks. */
  if (fork() == 0) {
    while (fgets(line, sizeof line, f))
      fputs(line, stdout);
    _exit(0);
  }
  fclose(f);
  return pid;
}

void *agg_load_thread(void *arg) {
  agg_load_job *j = arg;
  j->rc = agg_load_run(&j->o, &j->log, &j->r, j->err, sizeof j->err);
  __atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

int agg_test_wait_exit(int pid) {
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK_MSG(WIFEXITED(st), "serve did not exit normally (signal %d)",
            WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  return WEXITSTATUS(st);
}

long agg_test_rss_kib(int pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long v = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmRSS:", 6)) {
      v = atol(line + 6);
      break;
    }
  fclose(f);
  return v;
}

double agg_test_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void agg_test_sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

void agg_test_free_ports(uint16_t *out, int n) {
  int fds[16];
  CHECK(n > 0 && n <= 16);
  for (int i = 0; i < n; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fds[i] >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof sa;
    CHECK(bind(fds[i], (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(getsockname(fds[i], (struct sockaddr *)&sa, &l) == 0);
    out[i] = ntohs(sa.sin_port);
  }
  for (int i = 0; i < n; i++)
    close(fds[i]);
}
