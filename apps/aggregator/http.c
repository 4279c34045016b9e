/*
 * http.c: the HTTP front end (libmicrohttpd; see docs/DEPENDENCIES.md).
 *
 *   POST /track        one JSON event  -> 202 | 400 | 413 | 503 + Retry-After
 *   POST /track/batch  NDJSON events   -> 202 with per-line results
 *   GET  /metrics      Prometheus text;  GET /healthz -> 200 "ok"
 *   GET  /readyz       200 "ready", or 503 + Retry-After with the reason
 *                      (the sink's verdict: see http.h)
 *
 * MHD runs a small pool of epoll threads; a handler parses the body and
 * casts into the workers' mailboxes, which costs microseconds, so the HTTP
 * threads never wait on the database: backpressure is the mailbox bound,
 * and it reaches the client as 503 with Retry-After instead of as memory.
 * Where the events go is the sink's business (http.h): this file only
 * speaks HTTP.
 *
 * Bodies are collected up to a limit (64 KiB for /track, 8 MiB for a batch
 * by default). A body over the limit, declared or chunked, is discarded as
 * it arrives and answered 413 at the end (one declared more than 64 MiB
 * over it: 413 at once, with a lingering close). Nothing in a batch is
 * dropped silently: every line that is not accepted comes back in "errors"
 * with its line number,
 * its status (400 malformed, 503 mailbox full) and the reason.
 *
 * Hostile clients: bodies are capped as above and each event's fields by
 * event.c; MHD caps a request's head (URL and headers) at its connection
 * memory limit (32 KiB: a bigger head is answered 431 and closed); a
 * connection idle for --conn-timeout seconds (default 15) is closed, so a
 * slow client trickling a request cannot hold a connection for long.
 */
#include "http.h"
#include "linger.h"
#include "weir.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct agg_http {
  struct MHD_Daemon *d;
  agg_serve_opts o;
  agg_http_sink sink;
  agg_linger *linger;
  /* the listening socket MHD_quiesce_daemon handed back: closed only after
     MHD_stop_daemon, as libmicrohttpd requires with internal threads (a
     worker may still hold it in its epoll set) */
  MHD_socket quiesced;
};

enum { R_NONE, R_TRACK, R_BATCH, R_METRICS, R_HEALTH, R_READY };

typedef struct req {
  int route;
  size_t limit;
  char *buf;
  size_t len, cap;
  int too_large;
  /* --ack stored: the request waits, suspended, for ack (see ack.h); a
     batch keeps what it will answer besides the stored count. */
  agg_ack *ack;
  uint64_t full, invalid;
  json_t *errors;
} req;

static const char ACCEPTED[] = "{\"status\":\"accepted\"}";

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
                             const char *body, size_t len,
                             enum MHD_ResponseMemoryMode mode,
                             const char *ctype, int retry) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, (void *)body, mode);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  if (retry) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

/* {"error": msg} with msg escaped by jansson. */
static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status,
                                   const char *msg, int retry) {
  json_t *o = json_pack("{s:s}", "error", msg);
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (!s) return MHD_NO;
  return reply(c, status, s, strlen(s), MHD_RESPMEM_MUST_FREE,
               "application/json", retry);
}

static const char *submit_error(int rc) {
  switch (rc) {
  case WEIR_EFULL:
    return "mailbox full: retry later";
  case WEIR_ESTOPPED:
  case WEIR_ESHUTDOWN:
    return "shutting down";
  case WEIR_EBUDGET:
    return "node mailbox memory budget exhausted: retry later";
  default:
    return weir_strerror(rc);
  }
}

static void wake(void *conn) {
  MHD_resume_connection(conn);
}

/* --ack stored: a new ack for the request on c, or NULL (queued mode). */
static int ack_begin(agg_http *h, struct MHD_Connection *c, req *r) {
  if (h->o.ack != AGG_ACK_STORED) return 0;
  r->ack = agg_ack_new(h->sink.acks, wake, c);
  return r->ack ? 0 : -1;
}

/* Stopping: no new work. Read after ack_begin, so that the sink's owner,
   which sets closing and then waits for the acks held, sees this request's
   ack or this request sees closing (both sides fence: see http.h). */
static int closing(agg_http *h) {
  return h->sink.closing(h->sink.ctx);
}

static int submit(agg_http *h, const agg_event *ev, uint64_t ack) {
  return h->sink.submit(h->sink.ctx, ev, ack);
}

/* The request has cast its events: wait for their commit, or answer now if
   none was accepted (the caller's reply). */
static int ack_wait(struct MHD_Connection *c, req *r, uint64_t accepted) {
  if (!r->ack) return 0;
  if (!accepted) {
    agg_ack_release(r->ack);
    r->ack = NULL;
    return 0;
  }
  MHD_suspend_connection(c);
  agg_ack_arm(r->ack);
  return 1;
}

static uint64_t token_add(req *r) {
  return r->ack ? agg_ack_add(r->ack) : 0;
}

static void token_cancel(req *r) {
  if (r->ack) agg_ack_cancel(r->ack);
}

static enum MHD_Result track(agg_http *h, struct MHD_Connection *c, req *r) {
  agg_event ev;
  char err[256];
  if (agg_event_parse(r->buf, r->len, &ev, err, sizeof err)) {
    AGG_INC(h->sink.ctr, bad_requests, 1);
    return reply_error(c, MHD_HTTP_BAD_REQUEST, err, 0);
  }
  if (ack_begin(h, c, r)) {
    agg_event_clear(&ev);
    return MHD_NO;
  }
  int rc = closing(h) ? WEIR_ESHUTDOWN : submit(h, &ev, token_add(r));
  agg_event_clear(&ev);
  if (rc == WEIR_OK) {
    AGG_INC(h->sink.ctr, accepted, 1);
    if (ack_wait(c, r, 1)) return MHD_YES;
    return reply(c, MHD_HTTP_ACCEPTED, ACCEPTED, sizeof ACCEPTED - 1,
                 MHD_RESPMEM_PERSISTENT, "application/json", 0);
  }
  token_cancel(r);
  ack_wait(c, r, 0);
  AGG_INC(h->sink.ctr, rejected_full, 1);
  return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, submit_error(rc), 1);
}

typedef struct batch_ctx {
  agg_http *h;
  req *r;
  uint64_t accepted, full, invalid;
  json_t *errors;
} batch_ctx;

static int batch_line(void *ctx, uint64_t lineno, const char *line, size_t n) {
  batch_ctx *b = ctx;
  agg_event ev;
  char err[256];
  int status = 0;
  if (agg_event_parse(line, n, &ev, err, sizeof err)) {
    b->invalid++;
    status = 400;
  } else {
    int rc =
        closing(b->h) ? WEIR_ESHUTDOWN : submit(b->h, &ev, token_add(b->r));
    agg_event_clear(&ev);
    if (rc == WEIR_OK) {
      b->accepted++;
    } else {
      token_cancel(b->r);
      b->full++;
      status = 503;
      snprintf(err, sizeof err, "%s", submit_error(rc));
    }
  }
  if (status)
    json_array_append_new(b->errors,
                          json_pack("{s:I,s:i,s:s}", "line", (json_int_t)lineno,
                                    "status", status, "error", err));
  return 0;
}

/* The batch reply: "accepted" is what was queued (--ack queued) or what is
   stored (--ack stored: then also "stored", and "lost" if the database gave
   up on some). */
static enum MHD_Result batch_reply(struct MHD_Connection *c, unsigned status,
                                   uint64_t accepted, uint64_t full,
                                   uint64_t invalid, json_t *errors,
                                   const uint64_t *lost) {
  json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:O}", "accepted",
                        (json_int_t)accepted, "rejected",
                        (json_int_t)(full + invalid), "full", (json_int_t)full,
                        "invalid", (json_int_t)invalid, "errors", errors);
  if (o && lost) {
    json_object_set_new(o, "stored", json_integer((json_int_t)accepted));
    if (*lost) json_object_set_new(o, "lost", json_integer((json_int_t)*lost));
  }
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (!s) return MHD_NO;
  return reply(c, status, s, strlen(s), MHD_RESPMEM_MUST_FREE,
               "application/json", status == MHD_HTTP_SERVICE_UNAVAILABLE);
}

static enum MHD_Result batch(agg_http *h, struct MHD_Connection *c, req *r) {
  batch_ctx b = {.h = h, .r = r, .errors = json_array()};
  if (!b.errors || ack_begin(h, c, r)) {
    json_decref(b.errors);
    return MHD_NO;
  }
  agg_ndjson_split(r->buf, r->len, batch_line, &b);
  uint64_t accepted = b.accepted, full = b.full, invalid = b.invalid;
  AGG_INC(h->sink.ctr, accepted, accepted);
  AGG_INC(h->sink.ctr, rejected_full, full);
  AGG_INC(h->sink.ctr, invalid_lines, invalid);
  if (ack_wait(c, r, accepted)) {
    r->full = full;
    r->invalid = invalid;
    r->errors = b.errors;
    return MHD_YES;
  }
  unsigned status = MHD_HTTP_ACCEPTED;
  if (accepted + full + invalid == 0) {
    json_decref(b.errors);
    AGG_INC(h->sink.ctr, bad_requests, 1);
    return reply_error(c, MHD_HTTP_BAD_REQUEST, "empty batch: no events", 0);
  }
  if (accepted == 0)
    status = full ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_BAD_REQUEST;
  if (status == MHD_HTTP_BAD_REQUEST) AGG_INC(h->sink.ctr, bad_requests, 1);
  uint64_t none = 0;
  enum MHD_Result ret =
      batch_reply(c, status, accepted, full, invalid, b.errors,
                  h->o.ack == AGG_ACK_STORED ? &none : NULL);
  json_decref(b.errors);
  return ret;
}

/* --ack stored, resumed: every event stored (202), some lost, or the
   deadline passed (503 + Retry-After; resending is safe). */
static enum MHD_Result ack_reply(agg_http *h, struct MHD_Connection *c,
                                 req *r) {
  uint64_t stored, lost;
  agg_ack_state st = agg_ack_result(r->ack, &stored, &lost);
  if (st == AGG_ACK_TIMEDOUT) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "not stored within %u ms (%llu of the request's events were): "
             "retry later, resending is safe",
             h->o.ack_timeout_ms, (unsigned long long)stored);
    return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, msg, 1);
  }
  unsigned status = lost ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_ACCEPTED;
  if (r->route == R_TRACK) {
    if (!lost)
      return reply(c, status, ACCEPTED, sizeof ACCEPTED - 1,
                   MHD_RESPMEM_PERSISTENT, "application/json", 0);
    return reply_error(c, status, "the event could not be stored: retry later",
                       1);
  }
  return batch_reply(c, status, stored, r->full, r->invalid, r->errors, &lost);
}

static int route_of(const char *url, const char *method, int *get) {
  *get = 0;
  if (!strcmp(url, "/track")) return R_TRACK;
  if (!strcmp(url, "/track/batch")) return R_BATCH;
  *get = 1;
  if (!strcmp(url, "/metrics")) return R_METRICS;
  if (!strcmp(url, "/healthz")) return R_HEALTH;
  if (!strcmp(url, "/readyz")) return R_READY;
  (void)method;
  return R_NONE;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c,
                               const char *url, const char *method,
                               const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
  (void)version;
  agg_http *h = cls;
  req *r = *con_cls;
  if (!r) {
    AGG_INC(h->sink.ctr, requests, 1);
    int get;
    int route = route_of(url, method, &get);
    if (route == R_NONE)
      return reply_error(c, MHD_HTTP_NOT_FOUND, "no such path", 0);
    if (get != !strcmp(method, "GET") || (!get && strcmp(method, "POST")))
      return reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                         get ? "use GET" : "use POST", 0);
    if (route == R_HEALTH)
      return reply(c, MHD_HTTP_OK, "ok\n", 3, MHD_RESPMEM_PERSISTENT,
                   "text/plain", 0);
    if (route == R_READY) {
      char why[256];
      if (h->sink.ready(h->sink.ctx, why, sizeof why))
        return reply(c, MHD_HTTP_OK, "ready\n", 6, MHD_RESPMEM_PERSISTENT,
                     "text/plain", 0);
      return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, why, 1);
    }
    if (route == R_METRICS) {
      char *m = h->sink.metrics(h->sink.ctx);
      if (!m) return MHD_NO;
      return reply(c, MHD_HTTP_OK, m, strlen(m), MHD_RESPMEM_MUST_FREE,
                   "text/plain; version=0.0.4", 0);
    }
    size_t limit = route == R_TRACK ? h->o.max_body : h->o.max_batch_body;
    const char *cl = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    /* A body over the limit by at most 64 MiB is read and discarded, then
       answered 413 (below): answering first and closing would reset a
       client still writing it. Beyond that, 413 now and lingering close. */
    unsigned long long clen = cl ? strtoull(cl, NULL, 10) : 0;
    if (cl && clen > limit && clen - limit > (64ull << 20)) {
      AGG_INC(h->sink.ctr, too_large, 1);
      char msg[96];
      snprintf(msg, sizeof msg, "body larger than %zu bytes", limit);
      return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, msg, 0);
    }
    if (!(r = calloc(1, sizeof *r))) return MHD_NO;
    r->route = route;
    r->limit = limit;
    *con_cls = r;
    return MHD_YES;
  }
  if (*upload_size) {
    size_t n = *upload_size;
    *upload_size = 0;
    if (r->too_large || r->len + n > r->limit) {
      r->too_large = 1;
      return MHD_YES;
    }
    if (r->len + n > r->cap) {
      size_t cap = r->cap ? r->cap : 1024;
      while (cap < r->len + n)
        cap *= 2;
      char *b = realloc(r->buf, cap);
      if (!b) return MHD_NO;
      r->buf = b;
      r->cap = cap;
    }
    memcpy(r->buf + r->len, upload, n);
    r->len += n;
    return MHD_YES;
  }
  if (r->ack) return ack_reply(h, c, r);
  if (r->too_large) {
    AGG_INC(h->sink.ctr, too_large, 1);
    char msg[96];
    snprintf(msg, sizeof msg, "body larger than %zu bytes", r->limit);
    return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, msg, 0);
  }
  return r->route == R_TRACK ? track(h, c, r) : batch(h, c, r);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)c;
  (void)toe;
  req *r = *con_cls;
  if (r) {
    if (r->ack) agg_ack_release(r->ack);
    json_decref(r->errors);
    free(r->buf);
    free(r);
    *con_cls = NULL;
  }
}

/* A connection closing with input unread (an answer given before the whole
   request was read: 413, 431, 414) lingers (linger.h), so that the client
   reads the answer instead of a reset. libmicrohttpd calls this before it
   closes its socket, so the descriptor is still this connection's. */
static void notify(void *cls, struct MHD_Connection *c, void **socket_context,
                   enum MHD_ConnectionNotificationCode code) {
  (void)socket_context;
  agg_http *h = cls;
  if (code != MHD_CONNECTION_NOTIFY_CLOSED) return;
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  int unread = 0;
  if (!ci || ioctl(ci->connect_fd, FIONREAD, &unread) != 0 || unread <= 0)
    return;
  int fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0);
  if (fd >= 0) agg_linger_fd(h->linger, fd);
}

int agg__http_start(const agg_serve_opts *o, const agg_http_sink *sink,
                    agg_http **out, uint16_t *port, char *err, size_t errn) {
  agg_http *h = calloc(1, sizeof *h);
  if (!h) {
    snprintf(err, errn, "out of memory");
    return -1;
  }
  h->o = *o;
  h->sink = *sink;
  h->quiesced = MHD_INVALID_SOCKET;
  if (agg_linger_start(&h->linger)) {
    snprintf(err, errn, "cannot start the lingering-close thread");
    free(h);
    return -1;
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(o->port)};
  if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1) {
    snprintf(err, errn, "bad listen address '%s'", o->host);
    agg_linger_stop(h->linger);
    free(h);
    return -1;
  }
  unsigned threads = o->http_threads;
  if (!threads) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n > 0 ? (unsigned)n : 2;
  }
  h->d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO |
          MHD_ALLOW_SUSPEND_RESUME,
      0, NULL, NULL, handler, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
      MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_NOTIFY_COMPLETED,
      completed, h, MHD_OPTION_NOTIFY_CONNECTION, notify, h,
      MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)(o->conn_timeout ? o->conn_timeout : 15),
      MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_END);
  if (!h->d) {
    snprintf(err, errn, "cannot listen on %s:%u (in use? permission?)", o->host,
             o->port);
    agg_linger_stop(h->linger);
    free(h);
    return -1;
  }
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
  *port = info ? info->port : o->port;
  *out = h;
  return 0;
}

void agg__http_quiesce(agg_http *h) {
  if (!h || h->quiesced != MHD_INVALID_SOCKET) return;
  h->quiesced = MHD_quiesce_daemon(h->d);
}

void agg__http_stop(agg_http *h) {
  if (!h) return;
  MHD_stop_daemon(h->d);
  if (h->quiesced != MHD_INVALID_SOCKET) close(h->quiesced);
  agg_linger_stop(h->linger);
  free(h);
}
