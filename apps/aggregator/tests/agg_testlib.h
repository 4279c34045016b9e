/*
 * agg_testlib.h: what the aggregator's tests share: checks that abort with
 * file:line, a temporary directory, an in-process service on an ephemeral
 * loopback port, and one-shot HTTP requests.
 */
#ifndef AGG_TESTLIB_H
#define AGG_TESTLIB_H

#include "client.h"
#include "load.h"
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void agg_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/* Called (if set) by a failing check before it aborts: stop servers. */
extern void (*agg_test_on_fail)(void);

#define CHECK(c)                                                               \
  do {                                                                         \
    if (!(c)) agg_test_fail(__FILE__, __LINE__, "CHECK(%s)", #c);              \
  } while (0)
#define CHECK_MSG(c, ...)                                                      \
  do {                                                                         \
    if (!(c)) agg_test_fail(__FILE__, __LINE__, __VA_ARGS__);                  \
  } while (0)
#define CHECK_EQ(a, b)                                                         \
  do {                                                                         \
    long long a_ = (long long)(a), b_ = (long long)(b);                        \
    if (a_ != b_)                                                              \
      agg_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_,  \
                    b_);                                                       \
  } while (0)

/* A fresh directory under $TMPDIR (or /tmp), removed by agg_test_rmdir. */
void agg_test_tmpdir(char *out, size_t n);
void agg_test_rmdir(const char *dir);

/* Default serve options for a test: port 0, no console, the given db. */
agg_serve_opts agg_test_opts(const char *db);
agg_service *agg_test_start(const agg_serve_opts *o);

/* One request on a fresh connection; returns the status; body (may be NULL)
   gets a malloc'd copy of the response body, retry_after (may be NULL) the
   header's value or -1. */
int agg_test_http(uint16_t port, const char *method, const char *path,
                  const char *body, size_t len, char **resp, int *retry_after);

void agg_test_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One counter or gauge from GET /metrics ("weir_agg_stored_total"), or -1
   if the request failed or the name is missing. */
long long agg_test_metric(uint16_t port, const char *name);

/* Waits up to ms for stored + duplicates >= accepted (GET /metrics); 0 when
   reached, -1 on timeout. */
int agg_test_wait_stored(uint16_t port, int ms);

/* `weir-aggregator serve` (binary at path) as a child process with argv
   args (NULL-terminated; --listen 127.0.0.1:0 and --no-console are added),
   its stdout copied to ours by a helper process. Returns the pid and sets
   *port from the "listening on" line. */
int agg_test_spawn_serve(const char *path, const char *const *args,
                         uint16_t *port);
/* Waits for pid; returns its exit status (a signal death fails the test). */
int agg_test_wait_exit(int pid);
/* VmRSS of pid in KiB from /proc/PID/status, or -1. */
long agg_test_rss_kib(int pid);
/* Milliseconds on a monotonic clock. */
/* A load generator run on its own thread: fill o (and log with
   agg_accept_log_init), then pthread_create(&th, NULL, agg_load_thread, &j);
   rc, r and err hold agg_load_run's outcome, done turns 1 at the end. */
typedef struct agg_load_job {
  agg_load_opts o;
  agg_accept_log log;
  agg_load_result r;
  char url[64]; /* room for o.url, if the caller wants it here */
  int rc, done;
  char err[256];
} agg_load_job;
void *agg_load_thread(void *arg);

/* n (<= 16) distinct loopback ports that were free a moment ago (bound
   together, then released): for servers a test starts, or as a port nobody
   listens on. */
void agg_test_free_ports(uint16_t *out, int n);

double agg_test_now_ms(void);
void agg_test_sleep_ms(unsigned ms);

#endif
