/*
 * test_allocator.c: the allocator door (weir_set_allocator), with a user
 * allocator that has no realloc (weir.h allows it) and keeps a table of
 * the blocks it handed out.
 *
 * - Every console reply works without realloc: replies longer than the
 *   first 256-byte buffer grow by copying (help, metrics).
 * - Nothing is allocated around the door: the slot table of a node is
 *   seen by the allocator, every free is of a block it allocated, and
 *   after weir_rt_stop no block is left (the partition router records
 *   included, freed when the last runtime stops).
 * - A node stopped while a linked, monitoring process is still stuck in a
 *   callback frees that process's links' and monitors' signal messages
 *   (checks builds count live messages; elsewhere that part is skipped).
 */
#include "internal.h"
#include "testlib.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- a tracking allocator without realloc ----------------------------- */

#define TBL (1u << 20)
static void *g_tbl[TBL]; /* open addressing, linear probing; NULL = empty */
static void *const g_gone = (void *)1; /* a freed entry */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static long g_live, g_foreign;
static size_t g_biggest;

static size_t h(void *p) {
  return (size_t)(((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull) & (TBL - 1);
}

static void *t_malloc(size_t n, void *ud) {
  (void)ud;
  void *p = malloc(n);
  if (!p) return NULL;
  pthread_mutex_lock(&g_mu);
  size_t i = h(p);
  while (g_tbl[i] && g_tbl[i] != g_gone)
    i = (i + 1) & (TBL - 1);
  g_tbl[i] = p;
  g_live++;
  if (n > g_biggest) g_biggest = n;
  pthread_mutex_unlock(&g_mu);
  return p;
}

static void t_free(void *p, void *ud) {
  (void)ud;
  if (!p) return;
  pthread_mutex_lock(&g_mu);
  size_t i = h(p);
  while (g_tbl[i] && g_tbl[i] != p)
    i = (i + 1) & (TBL - 1);
  if (g_tbl[i] == p) {
    g_tbl[i] = g_gone;
    g_live--;
  } else {
    g_foreign++; /* not ours: something allocated around the door */
  }
  pthread_mutex_unlock(&g_mu);
  free(p);
}

static long live(void) {
  pthread_mutex_lock(&g_mu);
  long n = g_live;
  pthread_mutex_unlock(&g_mu);
  return n;
}

/* ---- the console without realloc -------------------------------------- */

/* Sends req and reads until `end` is seen; returns the bytes read. */
static size_t ask(const char *path, const char *req, const char *end, char *buf,
                  size_t n) {
  int fd = test_unix_connect(path);
  CHECK(send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
  size_t len = 0;
  uint64_t dl = test_now_ms() + TEST_LIVENESS_MS;
  buf[0] = 0;
  while (!strstr(buf, end)) {
    struct pollfd pf = {fd, POLLIN, 0};
    CHECK_MSG(test_now_ms() < dl && poll(&pf, 1, 1000) >= 0,
              "no '%s' in the reply to %s: %s", end, req, buf);
    ssize_t k = recv(fd, buf + len, n - 1 - len, MSG_DONTWAIT);
    if (k == 0) break;
    if (k < 0) continue;
    len += (size_t)k;
    buf[len] = 0;
    CHECK(len + 1 < n);
  }
  close(fd);
  CHECK_MSG(strstr(buf, end), "reply to %s ends early: %s", req, buf);
  return len;
}

static int t_cast(weir_ctx *cx, void *st, const weir_msg *m) {
  (void)cx;
  (void)st;
  (void)m;
  return WEIR_OK;
}
static const weir_server idle = {.name = "idle", .handle_cast = t_cast};

static void test_console_no_realloc(void) {
  char dir[] = "/tmp/weir-alloc-test-XXXXXX";
  char path[128];
  test_console_path(dir, path, sizeof path);
  weir_rt_opts o;
  weir_rt_opts_init(&o);
  o.schedulers = 2;
  o.max_processes = 1u << 16;
  o.console = path;
  weir_rt *rt = test_rt_start_opts(&o);
  /* the slot table (8 bytes a slot) came through the door */
  pthread_mutex_lock(&g_mu);
  size_t biggest = g_biggest;
  pthread_mutex_unlock(&g_mu);
  CHECK_MSG(biggest >= (1u << 16) * sizeof(void *),
            "the largest block the allocator saw is %zu bytes", biggest);
  for (int i = 0; i < 40; i++) {
    weir_spawn_opts so;
    weir_spawn_opts_init(&so);
    char name[32];
    snprintf(name, sizeof name, "idle-%d", i);
    so.name = name;
    CHECK_OK(weir_spawn(rt, &idle, NULL, &so, NULL));
  }
  static char buf[1 << 20];
  size_t n = ask(path, "help\n", "trace_key", buf, sizeof buf);
  CHECK(n > 256);
  n = ask(path, "metrics\n", "# EOF", buf, sizeof buf);
  CHECK(n > 4096);
  n = ask(path, "proc_count message_queue_len 40\n", "]", buf, sizeof buf);
  CHECK(n > 256 && !strstr(buf, "out of memory"));
  test_rt_stop(rt);
  rmdir(dir);
  test_log("[alloc] console replies of up to %zu bytes without realloc: ok", n);
}

/* ---- partition routers and a node stopped around a stuck process ------ */

static _Atomic int g_release;
static int stuck_cast(weir_ctx *cx, void *st, const weir_msg *m) {
  (void)cx;
  (void)st;
  (void)m;
  while (!atomic_load_explicit(&g_release, memory_order_acquire))
    test_sleep_ms(5);
  return WEIR_OK;
}
static const weir_server stuck = {.name = "stuck", .handle_cast = stuck_cast};

static void *releaser(void *arg) {
  (void)arg;
  test_sleep_ms(5600); /* past weir_rt_stop's kill rounds (~5 s) */
  atomic_store_explicit(&g_release, 1, memory_order_release);
  return NULL;
}

static int link_init(weir_ctx *cx, void *arg, void **state) {
  (void)state;
  weir_pid other = *(weir_pid *)arg;
  weir_ref ref;
  CHECK_OK(weir_link(cx, other));
  CHECK_OK(weir_monitor(cx, other, &ref));
  return WEIR_OK;
}
static const weir_server linker = {
    .name = "linker", .init = link_init, .handle_cast = stuck_cast};

static void test_stop_around_stuck(void) {
  weir_rt_opts o;
  weir_rt_opts_init(&o);
  o.schedulers = 2;
  weir_rt *rt = test_rt_start_opts(&o);
  /* a partition supervisor routed to from this thread: a router record */
  weir_partsup_opts po;
  weir_partsup_opts_init(&po);
  po.partitions = 2;
  weir_child_spec_init(&po.child, "w", &idle, NULL);
  weir_pid ps;
  CHECK_OK(weir_partsup_start(rt, &po, &ps));
  for (uint64_t k = 0; k < 100; k++)
    CHECK_OK(weir_partition_cast(rt, ps, k, 1, &k, sizeof k));
  /* two processes linked and monitoring each other, both stuck */
  weir_pid a, b;
  CHECK_OK(weir_spawn(rt, &stuck, NULL, NULL, &a));
  CHECK_OK(weir_spawn(rt, &linker, &a, NULL, &b));
  CHECK_OK(weir_cast(rt, a, 1, NULL, 0));
  CHECK_OK(weir_cast(rt, b, 1, NULL, 0));
  atomic_store(&g_release, 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, releaser, NULL) == 0);
  /* the kill rounds end, the callbacks return, the schedulers stop: the
     two processes are still alive, holding their links and monitors */
  int rc = weir_rt_stop(rt, 0);
  CHECK(rc == WEIR_ETIMEDOUT || rc == WEIR_OK);
  pthread_join(t, NULL);
  int64_t msgs = weir__msgs_live();
  if (msgs < 0) {
    test_log("[alloc] stop around stuck processes: ok (live messages not "
             "counted in this build)");
  } else {
    CHECK_MSG(msgs == 0, "%lld messages left after weir_rt_stop",
              (long long)msgs);
    test_log("[alloc] stop around stuck processes: 0 messages left");
  }
}

int main(void) {
  static const weir_allocator a = {t_malloc, NULL, t_free, NULL};
  CHECK_OK(weir_set_allocator(&a));
  long live0 = live();
  test_console_no_realloc();
  CHECK_MSG(live() == live0, "%ld blocks left after weir_rt_stop",
            live() - live0);
  test_stop_around_stuck();
  CHECK_MSG(live() == live0, "%ld blocks left after weir_rt_stop",
            live() - live0);
  pthread_mutex_lock(&g_mu);
  long foreign = g_foreign;
  pthread_mutex_unlock(&g_mu);
  CHECK_MSG(foreign == 0, "%ld frees of blocks the allocator never gave",
            foreign);
  test_log("[alloc] every block through the door, none left: ok");
  return 0;
}
