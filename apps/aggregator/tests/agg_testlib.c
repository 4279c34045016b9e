/*
 * agg_testlib.c: see agg_testlib.h.
 */
#include "agg_testlib.h"

#include <stdarg.h>
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
