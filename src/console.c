/*
 * console.c: the diagnostics socket server (one per node).
 *
 * A node started with weir_rt_opts.console listens on a Unix stream socket
 * (default $WEIR_RUN_DIR/NODE.sock, run dir /tmp/weir-UID, mode 0700; the
 * socket itself 0600). A client writes one request line and reads one reply:
 * a JSON line, or for `metrics` Prometheus text ending with "# EOF", or for
 * a trace one line per message and a summary. A connection may carry
 * several requests, one at a time. This file is the server: the socket, the
 * clients, the worker threads of slow requests, trace streaming, start and
 * stop. What a request means is console_parse.c's business, what its reply
 * says console_render.c's (console.h).
 *
 * Why it is built this way:
 *   - One thread, poll(2) over the listening socket, the clients and a wake
 *     pipe. Nothing here runs on a scheduler: diagnostics read the counters
 *     the runtime keeps anyway (diag.c), so a drowning node can still be
 *     asked what drowns it.
 *   - Requests that take time (proc_window MS, scheduler_usage MS) run on a
 *     worker thread per request; their sleeps wait on a condition variable
 *     that stop signals, so weir_rt_stop never waits for a 60 s window. The
 *     other clients keep being served meanwhile.
 *   - Read-only by construction: the parser knows only queries, and no
 *     request evaluates anything. A peer of another uid (root aside) is
 *     refused via SO_PEERCRED, a line over WEIR__CONSOLE_LINE_MAX bytes is
 *     an error and closes the connection, an idle client is dropped after
 *     weir__console_idle_ms, and a client that does not read its reply is
 *     dropped too. No input can make this thread block or crash.
 *
 * A client slot goes C_READ (waiting for a line) -> C_JOB (a worker
 * renders into cl->job), C_TRACE (events pumped every TRACE_TICK_MS while
 * the client keeps up) or straight on -> C_WRITE (a reply queued) -> C_READ,
 * or after an error that closes -> C_DRAIN (half-closed, until the peer has
 * read it) -> C_FREE. Only this thread changes a slot; a worker writes
 * cl->job alone, then job_done, and nothing of the slot after that.
 */
#include "console.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS      16
#define WRITE_TIMEOUT_MS 10000u
#define DRAIN_MS         500u

_Atomic uint32_t weir__console_idle_ms = 10000;

enum { C_FREE = 0, C_READ, C_JOB, C_WRITE, C_DRAIN, C_TRACE };

#define TRACE_OUT_MAX 65536u /* reply bytes unsent before a trace waits */
#define TRACE_TICK_MS 20

typedef struct console console;

typedef struct client {
  console *con;
  int fd;
  int state;
  int close_after; /* after this reply, close (e.g. the line was too long) */
  uint64_t deadline_ns;
  char in[WEIR__CONSOLE_LINE_MAX + 2];
  size_t inlen;
  weir__sb out;
  size_t outpos;
  /* a slow request running on a worker thread */
  pthread_t thr;
  weir__console_req req;
  weir__sb job;
  _Atomic int job_done;
  /* a trace streaming to this client (C_TRACE) */
  weir__trace *trace;
  weir_pid trace_pid;
  uint32_t trace_count;
  uint64_t trace_end_ns;
  uint64_t trace_lines;   /* event lines queued for the client */
  uint64_t trace_dropped; /* events the console had no memory for */
} client;

struct console {
  weir_rt *rt;
  int lfd;
  int wake[2];
  pthread_t thr;
  _Atomic int stop;
  pthread_mutex_t mu; /* the workers' sleeps */
  pthread_cond_t cv;
  ino_t ino; /* the socket file we made, unlinked at stop if still ours */
  client cl[MAX_CLIENTS];
};

static uint64_t ms_ns(uint32_t ms) {
  return (uint64_t)ms * 1000000ull;
}

/* Sleeps until now + ms or stop; false if stopped. */
static bool job_sleep(console *c, uint32_t ms) {
  uint64_t until = weir__now_ns() + ms_ns(ms);
  weir__lock(&c->mu, WEIR__LK_CONSOLE);
  /* relaxed: stop is stored under c->mu, which we hold */
  while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
    uint64_t now = weir__now_ns();
    if (now >= until) break;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t t = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec +
                 (until - now);
    ts.tv_sec = (time_t)(t / 1000000000ull);
    ts.tv_nsec = (long)(t % 1000000000ull);
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
  }
  bool ok = !atomic_load_explicit(&c->stop, memory_order_relaxed);
  weir__unlock(&c->mu, WEIR__LK_CONSOLE);
  return ok;
}

/* Every live process and its attr value, sorted by pid (for bsearch). Uses
   proc_count with n = the table's high-water mark, so the values mean
   exactly what proc_count's mean. */
static int by_pid(const void *a, const void *b) {
  const weir_proc_sample *x = a, *y = b;
  return x->pid.id < y->pid.id ? -1 : x->pid.id > y->pid.id;
}
static int by_value_desc(const void *a, const void *b) {
  const weir_proc_sample *x = a, *y = b;
  return x->value < y->value ? 1 : x->value > y->value ? -1 : 0;
}

static weir_proc_sample *snapshot(weir_rt *rt, weir_attr attr, size_t *n) {
  size_t cap = (size_t)weir__proc_table_used(rt) + 1;
  weir_proc_sample *s = weir__calloc(cap, sizeof *s);
  if (!s) return NULL;
  if (weir_proc_count(rt, attr, cap, s, n) != WEIR_OK) {
    weir__free(s);
    return NULL;
  }
  qsort(s, *n, sizeof *s, by_pid);
  return s;
}

static void job_proc_window(client *cl) {
  console *c = cl->con;
  const weir__console_req *rq = &cl->req;
  size_t n0 = 0, n1 = 0;
  weir_proc_sample *s0 = snapshot(c->rt, rq->attr, &n0), *s1 = NULL;
  if (!s0) goto oom;
  if (!job_sleep(c, rq->ms)) goto out;
  if (!(s1 = snapshot(c->rt, rq->attr, &n1))) goto oom;
  /* recon: a process born inside the window counts its absolute value; a
     gauge that shrank counts as no increase. */
  for (size_t i = 0; i < n1; i++) {
    weir_proc_sample *old = bsearch(&s1[i], s0, n0, sizeof *s0, by_pid);
    if (old)
      s1[i].value = s1[i].value > old->value ? s1[i].value - old->value : 0;
  }
  qsort(s1, n1, sizeof *s1, by_value_desc);
  weir__console_samples(c->rt, &cl->job, s1, n1 < rq->n ? n1 : rq->n);
  goto out;
oom:
  weir__sb_error(&cl->job, "out of memory");
out:
  weir__free(s0);
  weir__free(s1);
}

static void job_scheduler_usage(client *cl) {
  console *c = cl->con;
  double acc[256] = {0}, part[256];
  size_t ns = 0;
  uint32_t left = cl->req.ms;
  /* In slices of at most 100 ms, so that stop is prompt; busy fractions of
     back-to-back slices average to the fraction over the whole window. */
  while (left > 0) {
    uint32_t slice = left > 100 ? 100 : left;
    if (weir_scheduler_usage(c->rt, slice, part, 256, &ns) != WEIR_OK) {
      weir__sb_error(&cl->job, "scheduler_usage failed");
      return;
    }
    for (size_t i = 0; i < ns && i < 256; i++)
      acc[i] += part[i] * slice;
    left -= slice;
    /* relaxed: a poll; the stop joins this thread, which orders the rest */
    if (atomic_load_explicit(&c->stop, memory_order_relaxed)) return;
  }
  weir__console_sched_usage(&cl->job, cl->req.ms, acc, ns > 256 ? 256 : ns);
}

static void *job_main(void *arg) {
  client *cl = arg;
  if (cl->req.cmd == WEIR__CMD_PROC_WINDOW)
    job_proc_window(cl);
  else
    job_scheduler_usage(cl);
  /* release: the console thread's acquire load then sees the reply. */
  atomic_store_explicit(&cl->job_done, 1, memory_order_release);
  char x = 1;
  if (write(cl->con->wake[1], &x, 1) < 0) {
    /* the pipe is full: the console thread is awake already */
  }
  return NULL;
}

static void client_free(client *cl) {
  if (cl->trace) {
    weir__trace_close(cl->con->rt, cl->trace);
    cl->trace = NULL;
  }
  if (cl->fd >= 0) close(cl->fd);
  weir__free(cl->out.p);
  weir__free(cl->job.p);
  memset(&cl->out, 0, sizeof cl->out);
  memset(&cl->job, 0, sizeof cl->job);
  cl->fd = -1;
  cl->state = C_FREE;
}

/* Queues b (taken over) as the reply, with its final newline. */
static void client_reply(client *cl, weir__sb *b) {
  weir__sb_put(b, "\n", 1);
  if (b->oom) {
    weir__free(b->p);
    memset(b, 0, sizeof *b);
    weir__sb_puts(b, "{\"error\":\"out of memory\"}\n");
    if (b->oom) { /* not even that: give up on this client */
      cl->close_after = 1;
      b->len = 0;
    }
  }
  weir__free(cl->out.p);
  cl->out = *b;
  memset(b, 0, sizeof *b);
  cl->outpos = 0;
  cl->state = C_WRITE;
  cl->deadline_ns = weir__now_ns() + ms_ns(WRITE_TIMEOUT_MS);
}

static void client_error(client *cl, const char *msg, int close_after) {
  weir__sb b = {0};
  weir__sb_error(&b, msg);
  cl->close_after = close_after;
  client_reply(cl, &b);
}

static void trace_begin(client *cl, const weir__console_req *rq);

static void client_request(client *cl, const char *line, size_t len) {
  char err[160];
  weir__console_req rq;
  if (weir__console_parse(line, len, &rq, err, sizeof err) != WEIR_OK) {
    client_error(cl, err, 0);
    return;
  }
  switch (rq.cmd) {
  case WEIR__CMD_PROC_WINDOW:
  case WEIR__CMD_SCHEDULER_USAGE:
    cl->req = rq;
    memset(&cl->job, 0, sizeof cl->job);
    atomic_store_explicit(&cl->job_done, 0, memory_order_relaxed);
    if (pthread_create(&cl->thr, NULL, job_main, cl) != 0) {
      client_error(cl, "cannot start a worker thread", 0);
      return;
    }
    cl->state = C_JOB;
    return;
  case WEIR__CMD_TRACE:
  case WEIR__CMD_TRACE_KEY:
    trace_begin(cl, &rq);
    return;
  case WEIR__CMD_PROC_COUNT: /* answered at once (console_render.c) */
  case WEIR__CMD_INFO:
  case WEIR__CMD_PARTITIONS:
  case WEIR__CMD_NODE_STATS:
  case WEIR__CMD_ALARMS:
  case WEIR__CMD_METRICS:
  case WEIR__CMD_CRASHES:
  case WEIR__CMD_TREE:
  case WEIR__CMD_HELP:
    break;
  }
  weir__sb b = {0};
  weir__console_reply(cl->con->rt, &rq, &b);
  client_reply(cl, &b);
}

/* ---- trace: a reply of many lines ------------------------------------- */

static void client_writable(client *cl);

/* Sends what it can of cl->out without blocking; false if the client was
   dropped. */
static bool trace_flush(client *cl) {
  while (cl->outpos < cl->out.len) {
    ssize_t k = send(cl->fd, cl->out.p + cl->outpos, cl->out.len - cl->outpos,
                     MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EAGAIN || errno == EINTR) return true;
      client_free(cl);
      return false;
    }
    cl->outpos += (size_t)k;
  }
  cl->out.len = cl->outpos = 0; /* all sent: reuse the buffer */
  if (cl->out.p) cl->out.p[0] = 0;
  return true;
}

static void trace_end(client *cl, const char *why) {
  uint64_t seen, lost;
  bool drained;
  weir__trace_counts(cl->trace, &seen, &lost, &drained);
  weir__trace_close(cl->con->rt, cl->trace);
  cl->trace = NULL;
  weir__sb_printf(&cl->out,
                  "{\"trace\":\"end\",\"reason\":\"%s\",\"messages\":%llu,"
                  "\"lost\":%llu}\n",
                  why, (unsigned long long)cl->trace_lines,
                  (unsigned long long)(lost + cl->trace_dropped));
  if (cl->out.oom) { /* not even the summary: drop the client */
    client_free(cl);
    return;
  }
  cl->state = C_WRITE;
  cl->deadline_ns = weir__now_ns() + ms_ns(WRITE_TIMEOUT_MS);
  client_writable(cl);
}

/* Moves events to the client while it keeps up, and ends the trace after
   N messages, SECS seconds, or the process's exit. */
static void trace_pump(client *cl) {
  weir_rt *rt = cl->con->rt;
  if (!trace_flush(cl)) return;
  /* acquire on life: an exit seen here comes after the process's last
     event, so the read below gets them all */
  weir__proc *p = weir__proc_slot(rt, weir__pid_slot(cl->trace_pid));
  bool dead =
      !p ||
      atomic_load_explicit(&p->life, memory_order_acquire) != WEIR__P_LIVE ||
      atomic_load_explicit(&p->gen, memory_order_acquire) !=
          weir__pid_gen(cl->trace_pid);
  weir__trace_ev ev[64];
  while (cl->out.len - cl->outpos < TRACE_OUT_MAX) {
    size_t k = weir__trace_read(cl->trace, ev, 64);
    for (size_t i = 0; i < k; i++) {
      size_t before = cl->out.len;
      weir__console_trace_ev(&cl->out, &ev[i]);
      if (cl->out.oom) { /* the line is lost; the buffer is kept */
        cl->out.oom = 0;
        cl->out.len = before;
        if (cl->out.p) cl->out.p[before] = 0;
        cl->trace_dropped++;
      } else {
        cl->trace_lines++;
      }
    }
    if (k < 64) break;
  }
  uint64_t seen, lost;
  bool drained;
  weir__trace_counts(cl->trace, &seen, &lost, &drained);
  const char *why = NULL;
  if (seen >= cl->trace_count && drained)
    why = "count";
  else if (weir__now_ns() >= cl->trace_end_ns)
    why = "time";
  else if (dead && drained)
    why = "exited";
  if (why)
    trace_end(cl, why);
  else
    trace_flush(cl);
}

static void trace_begin(client *cl, const weir__console_req *rq) {
  weir_rt *rt = cl->con->rt;
  weir_pid pid = rq->pid;
  char msg[200];
  if (rq->cmd == WEIR__CMD_TRACE_KEY) {
    weir_pid ps;
    if (weir_whereis(rt, rq->name, &ps) != WEIR_OK) {
      snprintf(msg, sizeof msg, "no process registered as '%s'", rq->name);
      client_error(cl, msg, 0);
      return;
    }
    int np = weir_partitions(rt, ps);
    if (np < 0) {
      snprintf(msg, sizeof msg, "'%s' is not a partition supervisor (%s)",
               rq->name, weir_strerror(np));
      client_error(cl, msg, 0);
      return;
    }
    if (weir_partition_whereis(rt, ps, rq->key, &pid) != WEIR_OK) {
      snprintf(msg, sizeof msg,
               "the worker of partition %llu (key %s) is not running",
               (unsigned long long)(rq->key % (unsigned)np), rq->key_text);
      client_error(cl, msg, 0);
      return;
    }
  } else if (!rq->has_pid && weir_whereis(rt, rq->name, &pid) != WEIR_OK) {
    snprintf(msg, sizeof msg, "no process registered as '%s'", rq->name);
    client_error(cl, msg, 0);
    return;
  }
  weir__trace *t = NULL;
  int rc = weir__trace_open(rt, pid, rq->n, rq->tags, rq->ntags, &t);
  if (rc != WEIR_OK) {
    if (rc == WEIR_ELIMIT)
      snprintf(msg, sizeof msg, "too many traces running (at most %d)",
               WEIR__TRACE_SESSIONS);
    else if (rc == WEIR_ENOPROC)
      snprintf(msg, sizeof msg, "no such process");
    else
      snprintf(msg, sizeof msg, "cannot trace: %s", weir_strerror(rc));
    client_error(cl, msg, 0);
    return;
  }
  weir__sb b = {0};
  weir__console_trace_started(&b, rq, pid);
  if (b.oom) {
    weir__free(b.p);
    weir__trace_close(rt, t);
    client_error(cl, "out of memory", 0);
    return;
  }
  weir__free(cl->out.p);
  cl->out = b;
  cl->outpos = 0;
  cl->trace = t;
  cl->trace_pid = pid;
  cl->trace_count = rq->n;
  cl->trace_end_ns = weir__now_ns() + (uint64_t)rq->secs * 1000000000ull;
  cl->trace_lines = cl->trace_dropped = 0;
  cl->state = C_TRACE;
  /* Only the started line here: the main loop pumps events (within
     TRACE_TICK_MS), so a trace never ends inside the request that began
     it. */
  trace_flush(cl);
}

/* An over-long line: an error, then the connection closes (what follows
   in the stream cannot be framed reliably). */
static void too_long(client *cl) {
  char msg[64];
  snprintf(msg, sizeof msg, "request line longer than %d bytes",
           WEIR__CONSOLE_LINE_MAX);
  client_error(cl, msg, 1);
}

/* In C_READ: handles the first complete line in the buffer, if any. */
static void client_next(client *cl) {
  char *nl = memchr(cl->in, '\n', cl->inlen);
  if (!nl) {
    /* Over the limit, a CR before the coming LF aside. */
    if (cl->inlen > WEIR__CONSOLE_LINE_MAX + 1 ||
        (cl->inlen == WEIR__CONSOLE_LINE_MAX + 1 &&
         cl->in[WEIR__CONSOLE_LINE_MAX] != '\r'))
      too_long(cl);
    return;
  }
  size_t len = (size_t)(nl - cl->in);
  size_t body = len && cl->in[len - 1] == '\r' ? len - 1 : len;
  if (body > WEIR__CONSOLE_LINE_MAX) {
    too_long(cl);
    return;
  }
  /* The line leaves the buffer before it is handled: handling may end in
     client_enter_read, which takes the next line (a trace that ends at
     once), and must not see this one again. */
  char line[WEIR__CONSOLE_LINE_MAX + 2];
  memcpy(line, cl->in, len);
  cl->inlen -= len + 1;
  memmove(cl->in, nl + 1, cl->inlen);
  client_request(cl, line, len);
}

static void client_enter_read(client *cl) {
  cl->state = C_READ;
  cl->deadline_ns =
      weir__now_ns() +
      ms_ns(atomic_load_explicit(&weir__console_idle_ms, memory_order_relaxed));
  client_next(cl);
}

static void client_readable(client *cl) {
  if (cl->state == C_DRAIN) {
    char junk[512];
    ssize_t k = recv(cl->fd, junk, sizeof junk, MSG_DONTWAIT);
    if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) client_free(cl);
    return;
  }
  size_t room = sizeof cl->in - cl->inlen;
  ssize_t k = recv(cl->fd, cl->in + cl->inlen, room, MSG_DONTWAIT);
  if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
    client_free(cl);
    return;
  }
  if (k < 0) return;
  cl->inlen += (size_t)k;
  client_next(cl);
}

static void client_writable(client *cl) {
  while (cl->outpos < cl->out.len) {
    ssize_t k = send(cl->fd, cl->out.p + cl->outpos, cl->out.len - cl->outpos,
                     MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      client_free(cl);
      return;
    }
    cl->outpos += (size_t)k;
  }
  weir__free(cl->out.p);
  memset(&cl->out, 0, sizeof cl->out);
  if (cl->close_after) {
    /* Half-close and read what the peer still sends, so that closing does
       not reset the connection before the peer has read our error. */
    shutdown(cl->fd, SHUT_WR);
    cl->state = C_DRAIN;
    cl->deadline_ns = weir__now_ns() + ms_ns(DRAIN_MS);
    return;
  }
  client_enter_read(cl);
}

static void job_finished(client *cl) {
  pthread_join(cl->thr, NULL);
  weir__sb b = cl->job;
  memset(&cl->job, 0, sizeof cl->job);
  if (b.len == 0 && !b.oom) weir__sb_error(&b, "stopped");
  client_reply(cl, &b);
  client_writable(cl);
}

/* A best-effort one-line refusal for a connection we will not serve. */
static void refuse(int fd, const char *msg) {
  weir__sb b = {0};
  weir__sb_error(&b, msg);
  weir__sb_put(&b, "\n", 1);
  if (!b.oom) {
    ssize_t k = send(fd, b.p, b.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)k;
  }
  weir__free(b.p);
  shutdown(fd, SHUT_RDWR);
  close(fd);
}

static void accept_clients(console *c) {
  for (;;) {
    int fd = accept4(c->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return; /* EAGAIN, or EMFILE etc.: try at the next poll */
    struct ucred cr;
    socklen_t crl = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) != 0) {
      refuse(fd, "cannot read peer credentials");
      continue;
    }
    if (cr.uid != geteuid() && cr.uid != 0) {
      refuse(fd, "permission denied: the console serves its own uid only");
      continue;
    }
    client *cl = NULL;
    for (int i = 0; i < MAX_CLIENTS && !cl; i++)
      if (c->cl[i].state == C_FREE) cl = &c->cl[i];
    if (!cl) {
      refuse(fd, "too many console clients");
      continue;
    }
    memset(cl, 0, sizeof *cl);
    cl->con = c;
    cl->fd = fd;
    client_enter_read(cl);
  }
}

static void *console_main(void *arg) {
  console *c = arg;
  struct pollfd pf[MAX_CLIENTS + 2];
  client *who[MAX_CLIENTS + 2];
  /* relaxed: a poll; weir__console_stop wakes the loop after the store and
     joins it, which orders everything after */
  while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
    nfds_t n = 0;
    pf[n] = (struct pollfd){c->lfd, POLLIN, 0};
    who[n++] = NULL;
    pf[n] = (struct pollfd){c->wake[0], POLLIN, 0};
    who[n++] = NULL;
    uint64_t now = weir__now_ns(), next = UINT64_MAX;
    bool tracing = false;
    for (int i = 0; i < MAX_CLIENTS; i++) {
      client *cl = &c->cl[i];
      if (cl->state == C_FREE || cl->state == C_JOB) continue;
      if (cl->state == C_TRACE) {
        /* POLLRDHUP: the client went away, the trace ends with it */
        tracing = true;
        short ev = POLLRDHUP;
        if (cl->outpos < cl->out.len) ev |= POLLOUT;
        pf[n] = (struct pollfd){cl->fd, ev, 0};
        who[n++] = cl;
        continue;
      }
      if (cl->deadline_ns <= now) {
        if (cl->state == C_READ && cl->inlen == 0) {
          client_error(cl, "idle timeout", 1);
          client_writable(cl);
        } else {
          client_free(cl);
        }
        if (cl->state == C_FREE) continue;
      }
      if (cl->deadline_ns < next) next = cl->deadline_ns;
      short ev = cl->state == C_WRITE ? POLLOUT : POLLIN;
      pf[n] = (struct pollfd){cl->fd, ev, 0};
      who[n++] = cl;
    }
    int timeout = -1;
    if (next != UINT64_MAX)
      timeout = next <= now ? 0 : (int)((next - now) / 1000000ull) + 1;
    if (tracing && (timeout < 0 || timeout > TRACE_TICK_MS))
      timeout = TRACE_TICK_MS;
    int k = poll(pf, n, timeout);
    if (k < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pf[1].revents) {
      char buf[64];
      while (read(c->wake[0], buf, sizeof buf) > 0) {
      }
      for (int i = 0; i < MAX_CLIENTS; i++) {
        client *cl = &c->cl[i];
        /* acquire: pairs with the worker's release, so its reply is whole */
        if (cl->state == C_JOB &&
            atomic_load_explicit(&cl->job_done, memory_order_acquire))
          job_finished(cl);
      }
    }
    for (nfds_t i = 2; i < n; i++) {
      client *cl = who[i];
      if (cl->state == C_TRACE) {
        if (pf[i].revents & (POLLRDHUP | POLLHUP | POLLERR))
          client_free(cl); /* closes the trace */
        else
          trace_pump(cl);
        continue;
      }
      if (!pf[i].revents || cl->state == C_FREE) continue;
      if (pf[i].revents & POLLOUT)
        client_writable(cl);
      else if (pf[i].revents & (POLLIN | POLLHUP | POLLERR))
        client_readable(cl);
    }
    if (pf[0].revents & POLLIN) accept_clients(c);
  }
  return NULL;
}

/* ---- start / stop ------------------------------------------------------ */

static int valid_node_name(const char *s) {
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.' ||
          *s == '@'))
      return 0;
  return 1;
}

/* The socket path for opt ("" = default), creating the run dir if needed. */
static int resolve_path(weir_rt *rt, const char *opt, char *path, size_t n) {
  if (*opt) {
    if (strlen(opt) >= n) return WEIR_EINVAL;
    snprintf(path, n, "%s", opt);
    return WEIR_OK;
  }
  const char *node = rt->node_name;
  if (!valid_node_name(node) || node[0] == '.') return WEIR_EINVAL;
  char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
  const char *env = getenv("WEIR_RUN_DIR");
  int k;
  if (env && *env)
    k = snprintf(dir, sizeof dir, "%s", env);
  else
    k = snprintf(dir, sizeof dir, "/tmp/weir-%u", (unsigned)geteuid());
  if (k < 0 || (size_t)k >= sizeof dir) return WEIR_EINVAL;
  if (mkdir(dir, 0700) == 0) {
    if (chmod(dir, 0700) != 0) return WEIR_ESYS; /* the umask aside */
  } else if (errno != EEXIST) {
    return WEIR_ESYS;
  }
  struct stat st;
  /* An existing run dir must be ours: another user's could hold a socket
     that impersonates this node. */
  if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
    return WEIR_ESYS;
  k = snprintf(path, n, "%s/%s.sock", dir, node);
  if (k < 0 || (size_t)k >= n) return WEIR_EINVAL;
  return WEIR_OK;
}

static int bind_socket(console *c, const char *path) {
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  struct stat st;
  if (lstat(path, &st) == 0) {
    /* A socket left by a node that died is replaced; a live node's is not,
       nor is anything that is not a socket. */
    if (!S_ISSOCK(st.st_mode)) return WEIR_EEXIST;
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) return WEIR_ESYS;
    int live = connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(probe);
    if (live) return WEIR_EEXIST;
    unlink(path);
  }
  c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (c->lfd < 0) return WEIR_ESYS;
  if (bind(c->lfd, (struct sockaddr *)&sa, sizeof sa) != 0)
    return errno == EADDRINUSE ? WEIR_EEXIST : WEIR_ESYS;
  if (chmod(path, 0600) != 0 || stat(path, &st) != 0 ||
      listen(c->lfd, 64) != 0) {
    unlink(path);
    return WEIR_ESYS;
  }
  c->ino = st.st_ino;
  return WEIR_OK;
}

static void console_free(console *c) {
  if (c->lfd >= 0) close(c->lfd);
  if (c->wake[0] >= 0) close(c->wake[0]);
  if (c->wake[1] >= 0) close(c->wake[1]);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  weir__free(c);
}

int weir__console_start(weir_rt *rt, const char *opt) {
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  int rc = resolve_path(rt, opt, path, sizeof path);
  if (rc != WEIR_OK) return rc;
  console *c = weir__calloc(1, sizeof *c);
  if (!c) return WEIR_ENOMEM;
  c->rt = rt;
  c->lfd = c->wake[0] = c->wake[1] = -1;
  for (int i = 0; i < MAX_CLIENTS; i++)
    c->cl[i].fd = -1;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&c->mu, NULL);
  rt->console_path = weir__strdup(path);
  if (!rt->console_path) {
    rc = WEIR_ENOMEM;
    goto fail;
  }
  if (pipe2(c->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
    rc = WEIR_ESYS;
    goto fail;
  }
  if ((rc = bind_socket(c, path)) != WEIR_OK) goto fail;
  if (pthread_create(&c->thr, NULL, console_main, c) != 0) {
    unlink(path);
    rc = WEIR_ESYS;
    goto fail;
  }
  rt->console = c;
  return WEIR_OK;
fail:
  weir__free(rt->console_path);
  rt->console_path = NULL;
  console_free(c);
  return rc;
}

void weir__console_stop(weir_rt *rt) {
  console *c = rt->console;
  if (!c) return;
  weir__lock(&c->mu, WEIR__LK_CONSOLE);
  /* relaxed: under c->mu for the jobs' sleeps; the loop's poll is woken
     by the pipe below and the join orders the rest */
  atomic_store_explicit(&c->stop, 1, memory_order_relaxed);
  pthread_cond_broadcast(&c->cv);
  weir__unlock(&c->mu, WEIR__LK_CONSOLE);
  char x = 1;
  if (write(c->wake[1], &x, 1) < 0) {
    /* full: the thread will wake anyway */
  }
  pthread_join(c->thr, NULL);
  for (int i = 0; i < MAX_CLIENTS; i++) {
    client *cl = &c->cl[i];
    if (cl->state == C_JOB) pthread_join(cl->thr, NULL);
    if (cl->state != C_FREE) client_free(cl);
  }
  /* Unlink only our own socket: a node started since may own the path. */
  struct stat st;
  if (rt->console_path && stat(rt->console_path, &st) == 0 &&
      st.st_ino == c->ino)
    unlink(rt->console_path);
  console_free(c);
  rt->console = NULL;
}