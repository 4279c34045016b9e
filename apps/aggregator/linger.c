/*
 * linger.c: lingering close (see linger.h).
 *
 * The table is a fixed array owned by the thread; agg_linger_fd hands a
 * socket over through a small mutex-protected inbox and an eventfd, so the
 * HTTP thread that gives it never waits on the draining.
 */
#include "linger.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LINGER_MAX     256
#define LINGER_TIME_NS 30000000000ull /* nginx lingering_time */
#define LINGER_IDLE_NS 5000000000ull  /* nginx lingering_timeout */

typedef struct slot {
  int fd; /* -1 = free */
  uint64_t until_ns, idle_ns;
} slot;

struct agg_linger {
  pthread_t thread;
  int ep, wake;
  pthread_mutex_t mu;
  int inbox[LINGER_MAX];
  unsigned ninbox;
  int stop;
  slot s[LINGER_MAX];
  _Atomic uint64_t count, overflow;
};

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void drop(agg_linger *l, slot *s) {
  epoll_ctl(l->ep, EPOLL_CTL_DEL, s->fd, NULL);
  close(s->fd);
  s->fd = -1;
}

static void adopt(agg_linger *l, int fd, uint64_t now) {
  for (int i = 0; i < LINGER_MAX; i++) {
    slot *s = &l->s[i];
    if (s->fd >= 0) continue;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
                             .data.u32 = (uint32_t)i};
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0) break;
    *s = (slot){fd, now + LINGER_TIME_NS, now + LINGER_IDLE_NS};
    return;
  }
  atomic_fetch_add_explicit(&l->overflow, 1, memory_order_relaxed);
  close(fd);
}

/* Reads and discards what is there; 1 if the socket is done (EOF, error). */
static int drain(int fd) {
  static char sink[65536]; /* only this thread reads into it */
  for (;;) {
    ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
    if (n > 0) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    if (n < 0 && errno == EINTR) continue;
    return 1;
  }
}

static void *run(void *arg) {
  agg_linger *l = arg;
  for (;;) {
    struct epoll_event ev[64];
    int n = epoll_wait(l->ep, ev, 64, 500);
    uint64_t now = mono_ns();
    for (int i = 0; i < n; i++) {
      if (ev[i].data.u32 == UINT32_MAX) {
        uint64_t v;
        if (read(l->wake, &v, sizeof v) < 0) {
          /* nothing to read: a spurious wake-up */
        }
        continue;
      }
      slot *s = &l->s[ev[i].data.u32];
      if (s->fd < 0) continue;
      if (drain(s->fd))
        drop(l, s);
      else
        s->idle_ns = now + LINGER_IDLE_NS;
    }
    pthread_mutex_lock(&l->mu);
    int stop = l->stop;
    unsigned k = l->ninbox;
    int in[LINGER_MAX];
    for (unsigned i = 0; i < k; i++)
      in[i] = l->inbox[i];
    l->ninbox = 0;
    pthread_mutex_unlock(&l->mu);
    for (unsigned i = 0; i < k; i++)
      adopt(l, in[i], now);
    for (int i = 0; i < LINGER_MAX; i++) {
      slot *s = &l->s[i];
      if (s->fd >= 0 && (stop || now >= s->until_ns || now >= s->idle_ns))
        drop(l, s);
    }
    if (stop) return NULL;
  }
}

int agg_linger_start(agg_linger **out) {
  agg_linger *l = calloc(1, sizeof *l);
  if (!l) return -1;
  for (int i = 0; i < LINGER_MAX; i++)
    l->s[i].fd = -1;
  pthread_mutex_init(&l->mu, NULL);
  l->ep = epoll_create1(EPOLL_CLOEXEC);
  l->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
  int rc = -1;
  if (l->ep >= 0 && l->wake >= 0 &&
      epoll_ctl(l->ep, EPOLL_CTL_ADD, l->wake, &ev) == 0) {
    rc = pthread_create(&l->thread, NULL, run, l);
    if (rc) errno = rc;
  }
  if (rc) {
    if (l->ep >= 0) close(l->ep);
    if (l->wake >= 0) close(l->wake);
    pthread_mutex_destroy(&l->mu);
    free(l);
    return -1;
  }
  *out = l;
  return 0;
}

void agg_linger_fd(agg_linger *l, int fd) {
  shutdown(fd, SHUT_WR); /* the answer is out: FIN, then keep reading */
  atomic_fetch_add_explicit(&l->count, 1, memory_order_relaxed);
  pthread_mutex_lock(&l->mu);
  int ok = !l->stop && l->ninbox < LINGER_MAX;
  if (ok) l->inbox[l->ninbox++] = fd;
  pthread_mutex_unlock(&l->mu);
  if (!ok) {
    atomic_fetch_add_explicit(&l->overflow, 1, memory_order_relaxed);
    close(fd);
    return;
  }
  uint64_t one = 1;
  if (write(l->wake, &one, sizeof one) < 0) {
    /* the counter is saturated: the thread is awake anyway */
  }
}

uint64_t agg_linger_count(agg_linger *l, uint64_t *overflow) {
  if (overflow)
    *overflow = atomic_load_explicit(&l->overflow, memory_order_relaxed);
  return atomic_load_explicit(&l->count, memory_order_relaxed);
}

void agg_linger_stop(agg_linger *l) {
  if (!l) return;
  pthread_mutex_lock(&l->mu);
  l->stop = 1;
  pthread_mutex_unlock(&l->mu);
  uint64_t one = 1;
  if (write(l->wake, &one, sizeof one) < 0) {
    /* saturated: awake anyway */
  }
  pthread_join(l->thread, NULL);
  for (unsigned i = 0; i < l->ninbox; i++)
    close(l->inbox[i]);
  close(l->ep);
  close(l->wake);
  pthread_mutex_destroy(&l->mu);
  free(l);
}
