/*
 * testlib.c: see testlib.h. Kept free of runtime internals so that it links
 * against any state of src/: it uses only the public API.
 */
#include "testlib.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TEST_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TEST_SANITIZED 1
#endif
#ifndef TEST_SANITIZED
#define TEST_SANITIZED 0
#endif

void test_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s:%d: FAIL: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
  fflush(stdout);
  abort();
}

void test_log(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stdout, fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
  fflush(stdout);
}

/* ---- time ---------------------------------------------------------------- */

uint64_t test_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t test_now_ms(void) {
  return test_now_us() / 1000u;
}

void test_sleep_ms(unsigned ms) {
  struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- seed, RNG, scale -----------------------------------------------------
 */

static pthread_once_t seed_once = PTHREAD_ONCE_INIT;
static uint64_t seed_value;

static void seed_init(void) {
  const char *env = getenv("WEIR_SEED");
  if (env != NULL && *env != '\0') {
    seed_value = strtoull(env, NULL, 0);
  } else {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed_value = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^
                 ((uint64_t)getpid() << 40);
  }
  printf("seed=%llu\n", (unsigned long long)seed_value);
  fflush(stdout);
}

uint64_t test_seed(void) {
  pthread_once(&seed_once, seed_init);
  return seed_value;
}

void test_rng_init(test_rng *r, uint64_t seed) {
  /* splitmix64 of the seed: nearby seeds give unrelated streams, and the
     state is never 0 (xorshift's fixed point). */
  uint64_t z = seed + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  r->s = z ? z : 0x2545F4914F6CDD1Dull;
}

uint64_t test_rng_next(test_rng *r) {
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545F4914F6CDD1Dull;
}

uint32_t test_rng_below(test_rng *r, uint32_t n) {
  return (uint32_t)((test_rng_next(r) >> 32) % n);
}

int test_sanitized(void) {
  return TEST_SANITIZED;
}

double test_scale(void) {
  const char *env = getenv("WEIR_STRESS_SCALE");
  if (env != NULL && *env != '\0') {
    double s = strtod(env, NULL);
    if (s > 0) return s;
  }
  return TEST_SANITIZED ? 0.25 : 1.0;
}

uint64_t test_scaled(uint64_t n) {
  double v = (double)n * test_scale();
  return v < 1.0 ? 1u : (uint64_t)v;
}

/* ---- runtime helpers ------------------------------------------------------
 */

weir_rt *test_rt_start_opts(const weir_rt_opts *o) {
  weir_rt *rt = NULL;
  CHECK_OK(weir_rt_start(o, &rt));
  CHECK(rt != NULL);
  return rt;
}

weir_rt *test_rt_start(unsigned schedulers) {
  weir_rt_opts o;
  weir_rt_opts_init(&o);
  o.schedulers = schedulers;
  o.console = NULL;
  return test_rt_start_opts(&o);
}

void test_rt_stop(weir_rt *rt) {
  CHECK_OK(weir_rt_stop(rt, 30000));
}

uint64_t test_nprocs(weir_rt *rt) {
  weir_stats s;
  memset(&s, 0, sizeof s);
  CHECK_OK(weir_node_stats(rt, &s));
  return s.processes;
}

weir_pid test_pid_make(uint32_t slot, uint32_t gen) {
  weir_pid p = {((uint64_t)gen << 32) | slot};
  return p;
}

uint32_t test_pid_slot(weir_pid p) {
  return (uint32_t)(p.id & 0xffffffffu);
}
uint32_t test_pid_gen(weir_pid p) {
  return (uint32_t)(p.id >> 32);
}

/* ---- watcher ---------------------------------------------------------------
 */

typedef struct watch_entry {
  weir_ref ref;
  weir_pid pid;
  int done;
  int reason;
} watch_entry;

struct test_watcher {
  weir_rt *rt;
  weir_pid pid;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  watch_entry *e;
  size_t n, cap;
};

static int watcher_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int watcher_call(weir_ctx *cx, void *state, const weir_msg *m,
                        weir_from from) {
  test_watcher *w = state;
  weir_pid target;
  weir_ref ref = 0;
  CHECK_EQ_INT(m->len, sizeof target);
  memcpy(&target, m->data, sizeof target);
  CHECK_OK(weir_monitor(cx, target, &ref));
  CHECK(ref != 0);
  pthread_mutex_lock(&w->mu);
  if (w->n == w->cap) {
    w->cap = w->cap ? w->cap * 2 : 64;
    w->e = realloc(w->e, w->cap * sizeof *w->e);
    CHECK(w->e != NULL);
  }
  w->e[w->n].ref = ref;
  w->e[w->n].pid = target;
  w->e[w->n].done = 0;
  w->e[w->n].reason = 0;
  w->n++;
  pthread_mutex_unlock(&w->mu);
  CHECK_OK(weir_reply(cx, from, &ref, sizeof ref));
  return WEIR_OK;
}

static int watcher_info(weir_ctx *cx, void *state, const weir_msg *m) {
  test_watcher *w = state;
  int32_t reason;
  (void)cx;
  if (m->tag != WEIR_TAG_DOWN) return WEIR_OK;
  CHECK_EQ_INT(m->len, sizeof reason);
  memcpy(&reason, m->data, sizeof reason);
  pthread_mutex_lock(&w->mu);
  int found = 0;
  for (size_t i = 0; i < w->n; i++) {
    if (w->e[i].ref == m->ref) {
      CHECK_MSG(!w->e[i].done, "two DOWN messages for monitor ref %llu",
                (unsigned long long)m->ref);
      CHECK_MSG(
          weir_pid_eq(w->e[i].pid, m->from), "DOWN from %llx, monitored %llx",
          (unsigned long long)m->from.id, (unsigned long long)w->e[i].pid.id);
      w->e[i].done = 1;
      w->e[i].reason = reason;
      found = 1;
      break;
    }
  }
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  CHECK_MSG(found, "DOWN with unknown ref %llu", (unsigned long long)m->ref);
  return WEIR_OK;
}

static const weir_server watcher_server = {
    .name = "test_watcher",
    .init = watcher_init,
    .handle_call = watcher_call,
    .handle_info = watcher_info,
};

test_watcher *test_watcher_start(weir_rt *rt) {
  test_watcher *w = calloc(1, sizeof *w);
  CHECK(w != NULL);
  w->rt = rt;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  CHECK_OK(weir_spawn(rt, &watcher_server, w, NULL, &w->pid));
  return w;
}

weir_pid test_watcher_pid(const test_watcher *w) {
  return w->pid;
}

weir_ref test_watch(test_watcher *w, weir_pid pid) {
  weir_ref ref = 0;
  uint32_t len = sizeof ref;
  CHECK_OK(weir_call(w->rt, w->pid, 1, &pid, sizeof pid, &ref, &len,
                     TEST_LIVENESS_MS));
  CHECK_EQ_INT(len, sizeof ref);
  CHECK(ref != 0);
  return ref;
}

static watch_entry *watch_find(test_watcher *w, weir_ref ref) {
  for (size_t i = 0; i < w->n; i++)
    if (w->e[i].ref == ref) return &w->e[i];
  return NULL;
}

int test_wait_down(test_watcher *w, weir_ref ref, int ms, int *reason) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += ms / 1000;
  dl.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  int got = 0;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    watch_entry *e = watch_find(w, ref);
    CHECK_MSG(e != NULL, "test_wait_down: ref %llu is not watched",
              (unsigned long long)ref);
    if (e->done) {
      if (reason) *reason = e->reason;
      got = 1;
      break;
    }
    if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) == ETIMEDOUT) break;
  }
  pthread_mutex_unlock(&w->mu);
  return got;
}

int test_is_down(test_watcher *w, weir_ref ref) {
  pthread_mutex_lock(&w->mu);
  watch_entry *e = watch_find(w, ref);
  int done = e != NULL && e->done;
  pthread_mutex_unlock(&w->mu);
  return done;
}

void test_watcher_free(test_watcher *w) {
  if (w == NULL) return;
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  free(w->e);
  free(w);
}

int test_unix_connect(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK(fd >= 0);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  CHECK_MSG(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0,
            "cannot connect to %s", path);
  return fd;
}

void test_console_path(char *dir, char *path, size_t n) {
  CHECK_MSG(mkdtemp(dir), "mkdtemp %s", dir);
  int k = snprintf(path, n, "%s/n.sock", dir);
  CHECK(k > 0 && (size_t)k < n);
}
