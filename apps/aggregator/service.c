/*
 * service.c: one aggregator node: runtime, workers, alarms, HTTP (see
 * service.h for the shape).
 *
 * Start order is dependency order: the schema (once, before any worker, so
 * that N workers do not race to create it), the runtime, the alarm
 * subscriber, the workers under their supervisor, and HTTP last, so that no
 * request arrives before there is a mailbox to put it in. Stop is the
 * reverse and lossless: HTTP stops first (MHD joins its threads, so every
 * 202 already sent is a message in a mailbox), then weir_rt_stop drains the
 * mailboxes (workers are stopped by their supervisor with an unlimited
 * shutdown time, after the messages queued before the stop) and each
 * worker's terminate flushes its last batch.
 *
 * struct agg_service is this file's alone: HTTP sees the node through the
 * sink installed at start (http.h), a worker through its config (worker.h).
 */
#include "ack.h"
#include "counters.h"
#include "http.h"
#include "service.h"
#include "store.h"
#include "weir_stream.h"
#include "worker.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct agg_service {
  agg_serve_opts opts;
  agg_service_hooks hooks;
  char db_url[1024];
  weir_rt *rt;
  weir_pid sup;               /* singleton: its supervisor */
  weir_pid ps;                /* partitioned: the partition supervisor */
  _Atomic uint64_t singleton; /* the "aggregator" pid (re-read on restart) */
  weir_pid alarm_proc;
  unsigned nworkers;
  agg_worker_cfg wcfg;
  agg_atomic_counters ctr;
  _Atomic uint64_t unflushed; /* rows a worker could not store at the end */
  /* Set when agg_service_stop begins: no more injected crashes, because a
     supervisor that is stopping restarts nothing (the rest of a crashed
     worker's mailbox would be dead-lettered, as in OTP). Relaxed: a flag
     read once per event, ordering nothing else. */
  atomic_int stopping;
  /* Set when agg_service_stop begins: requests are refused (503, shutting
     down) from then on, so the acks in flight can only finish. */
  atomic_int closing;
  weir_pid dead_letter_proc;
  agg_acks *acks;             /* --ack stored */
  struct weir_stream *stream; /* --stream: an ingest node */
  agg_http *http;
  /* /readyz: the insert counters at the last probe, and whether the
     database looked down then (relaxed: concurrent probes only share a
     verdict, which the next probe corrects) */
  _Atomic uint64_t ready_errors, ready_commits;
  atomic_int db_down;
};

/* ---- alarm subscriber --------------------------------------------------- */

static int al_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int al_info(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  agg_service *svc = state;
  if (m->tag != WEIR_TAG_ALARM || m->len < sizeof(weir_alarm)) return WEIR_OK;
  weir_alarm a;
  memcpy(&a, m->data, sizeof a);
  if (a.on) AGG_INC(&svc->ctr, alarms, 1);
  if (svc->hooks.on_alarm) {
    svc->hooks.on_alarm(svc->hooks.ud, &a);
    return WEIR_OK;
  }
  char pid[32];
  weir_pid_format(a.pid, pid, sizeof pid);
  printf("alarm %s %s: %s %s queue_len=%llu in=%.0f/s out=%.0f/s\n",
         weir_alarm_kind_name(a.kind), a.on ? "raised" : "cleared", pid,
         a.registered_name[0] ? a.registered_name : "-",
         (unsigned long long)a.queue_len, a.in_rate, a.out_rate);
  fflush(stdout);
  return WEIR_OK;
}

static const weir_server alarm_server = {
    .name = "aggregator_alarms", .init = al_init, .handle_info = al_info};

/* ---- dead letters ------------------------------------------------------- */

/* An accepted event that weir could not deliver (its worker gone for good:
   a supervisor that gave up, a node stopping) will never be stored: its
   request, if it waits, learns so at once, and the loss is counted and
   logged instead of passing in silence. */
static int dl_info(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  agg_service *svc = state;
  weir_dead_letter h;
  if (m->tag != WEIR_TAG_DEAD_LETTER || m->len < sizeof h) return WEIR_OK;
  memcpy(&h, m->data, sizeof h);
  agg_row row;
  if (h.tag != AGG_TAG_EVENT || m->len - sizeof h != h.len ||
      agg_event_unpack((const char *)m->data + sizeof h, h.len, &row))
    return WEIR_OK;
  AGG_INC(&svc->ctr, lost, 1);
  fprintf(stderr,
          "weir-aggregator: event lost: user_id=%.*s seq=%lld: %s (not "
          "stored%s)\n",
          (int)row.user_len, row.user, (long long)row.seq,
          weir_strerror(h.reason),
          row.ack ? "; its request is answered 503" : "");
  agg_ack_done(row.ack, 0);
  return WEIR_OK;
}

static const weir_server dead_letter_server = {
    .name = "aggregator_dead_letters", .init = al_init, .handle_info = dl_info};

/* ---- the HTTP sink (http.h) ---------------------------------------------- */

static int submit(void *ctx, const agg_event *ev, uint64_t ack) {
  return agg_service_submit(ctx, ev, ack);
}

/* Fenced (see http.h): agg_service_stop sets closing, fences, then waits
   for the acks held. */
static int closing(void *ctx) {
  agg_service *svc = ctx;
  atomic_thread_fence(memory_order_seq_cst);
  return atomic_load(&svc->closing);
}

static char *metrics(void *ctx) {
  return agg_service_metrics(ctx);
}

/* Readiness (the sink's GET /readyz; /healthz stays liveness): 1, or 0 with the
   reason in why. Not ready while the node is stopping, while a
   long_message_queue alarm is raised (a partition drowns: send traffic
   elsewhere before the 503s of a full mailbox), or while the database is
   failing: inserts failed since the previous probe and none committed (the
   workers retry a failed batch with backoff, so an outage keeps failing; with
   no traffic there is no evidence either way and the last verdict stands), or,
   for an ingest node (--stream), while no NATS server is connected. */
static int ready(void *ctx, char *why, size_t n) {
  agg_service *svc = ctx;
  if (atomic_load_explicit(&svc->closing, memory_order_relaxed) ||
      atomic_load_explicit(&svc->stopping, memory_order_relaxed)) {
    snprintf(why, n, "stopping");
    return 0;
  }
  weir_alarm al[16];
  size_t k = 0;
  if (weir_alarms(svc->rt, al, 16, &k) == WEIR_OK)
    for (size_t i = 0; i < k && i < 16; i++) {
      if (al[i].kind != WEIR_ALARM_LONG_MESSAGE_QUEUE) continue;
      weir_proc_info in;
      int part = weir_process_info(svc->rt, al[i].pid, &in) == WEIR_OK
                     ? in.partition
                     : -1;
      char pid[32];
      weir_pid_format(al[i].pid, pid, sizeof pid);
      snprintf(why, n,
               "long_message_queue alarm: %s%s%s, partition %d, %llu queued",
               pid, al[i].registered_name[0] ? " " : "", al[i].registered_name,
               part, (unsigned long long)al[i].queue_len);
      return 0;
    }
  if (svc->stream && !weir_stream_connected(svc->stream)) {
    snprintf(why, n, "stream unreachable: no NATS server connected");
    return 0;
  }
  uint64_t e = atomic_load_explicit(&svc->ctr.db_errors, memory_order_relaxed);
  uint64_t c = atomic_load_explicit(&svc->ctr.commits, memory_order_relaxed);
  uint64_t e0 =
      atomic_exchange_explicit(&svc->ready_errors, e, memory_order_relaxed);
  uint64_t c0 =
      atomic_exchange_explicit(&svc->ready_commits, c, memory_order_relaxed);
  if (c != c0)
    atomic_store_explicit(&svc->db_down, 0, memory_order_relaxed);
  else if (e != e0)
    atomic_store_explicit(&svc->db_down, 1, memory_order_relaxed);
  if (atomic_load_explicit(&svc->db_down, memory_order_relaxed)) {
    snprintf(why, n,
             "database failing: inserts fail and none committed since the "
             "last probe (%llu failed transactions so far)",
             (unsigned long long)e);
    return 0;
  }
  return 1;
}

/* ---- start / stop ------------------------------------------------------- */

static int start_workers(agg_service *svc, char *err, size_t errn) {
  weir_child_spec cs;
  weir_child_spec_init(&cs, "aggregator", &agg_worker_server, &svc->wcfg);
  cs.opts.blocking = 1;
  cs.opts.max_queue_len = svc->opts.queue_limit;
  cs.opts.overflow = WEIR_OVERFLOW_REJECT;
  cs.shutdown_ms = -1; /* drain the whole mailbox, however long */
  cs.restart = WEIR_PERMANENT;
  /* Deliberate crashes (--fail-every) come faster than any sane restart
     intensity allows; the point there is to watch recovery, so lift it. */
  int max_restarts = svc->opts.fail_every ? 100000 : 3;
  int rc;
  if (svc->opts.mode == AGG_SINGLETON) {
    cs.opts.name = "aggregator";
    weir_sup_opts so;
    weir_sup_opts_init(&so);
    so.name = "aggregator_sup";
    so.max_restarts = max_restarts;
    rc = weir_sup_start(svc->rt, &so, &cs, 1, &svc->sup);
    weir_pid pid = WEIR_PID_NONE;
    if (rc == WEIR_OK) rc = weir_whereis(svc->rt, "aggregator", &pid);
    atomic_store(&svc->singleton, pid.id);
    svc->nworkers = 1;
  } else {
    weir_partsup_opts po;
    weir_partsup_opts_init(&po);
    po.name = "aggregator_partitions";
    po.child = cs;
    po.partitions = svc->opts.partitions;
    po.max_restarts = max_restarts;
    rc = weir_partsup_start(svc->rt, &po, &svc->ps);
    if (rc == WEIR_OK) {
      int n = weir_partitions(svc->rt, svc->ps);
      if (n < 0)
        rc = n;
      else
        svc->nworkers = (unsigned)n;
    }
  }
  if (rc != WEIR_OK) {
    snprintf(err, errn, "cannot start the workers: %s (see stderr)",
             weir_strerror(rc));
    return -1;
  }
  return 0;
}

/* --stream: an event is answered once the stream acknowledged it. */
static void stream_done(void *ud, uint64_t token, int status) {
  agg_service *svc = ud;
  if (status == WEIR_OK) AGG_INC(&svc->ctr, stored, 1);
  agg_ack_done(token, status == WEIR_OK);
}

static int start_stream(agg_service *svc, char *err, size_t errn) {
  const agg_serve_opts *o = &svc->opts;
  weir_stream_opts so;
  weir_stream_opts_init(&so);
  so.urls = o->stream;
  so.name = o->stream_name;
  so.partitions = o->stream_partitions;
  so.replicas = o->stream_replicas;
  so.lease_ttl_ms = o->lease_ttl_ms;
  char e[400];
  int rc = weir_stream_open(&so, 30000, &svc->stream, e, sizeof e);
  if (rc != WEIR_OK) {
    snprintf(err, errn, "stream: %s", e);
    return -1;
  }
  weir_stream_pub_opts po;
  weir_stream_pub_opts_init(&po);
  po.publish_timeout_ms = o->ack_timeout_ms;
  po.done = stream_done;
  po.ud = svc;
  rc = weir_stream_publisher_start(svc->rt, svc->stream, &po);
  if (rc != WEIR_OK) {
    snprintf(err, errn, "cannot start the stream publishers: %s",
             weir_strerror(rc));
    return -1;
  }
  svc->nworkers = po.workers;
  return 0;
}

int agg_service_start(const agg_serve_opts *o, const agg_service_hooks *hooks,
                      agg_service **out, char *err, size_t errn) {
  agg_service *svc = calloc(1, sizeof *svc);
  if (!svc) {
    snprintf(err, errn, "out of memory");
    return -1;
  }
  svc->opts = *o;
  if (hooks) svc->hooks = *hooks;
  snprintf(svc->db_url, sizeof svc->db_url, "%s", o->db);
  svc->wcfg =
      (agg_worker_cfg){.db_url = svc->db_url,
                       .work_ms = o->work_ms,
                       .batch = o->batch ? o->batch : 1,
                       .fail_every = o->fail_every,
                       .fail_db_every = o->fail_db_every,
                       .group_wait_us = o->ack == AGG_ACK_STORED ? 100 : 0,
                       .ctr = &svc->ctr,
                       .unflushed = &svc->unflushed,
                       .stopping = &svc->stopping};
  agg_store *db;
  if (!o->stream) {
    if (agg_store_open(svc->db_url, 1, &db, err, errn)) goto fail;
    agg_store_close(db);
  }

  weir_rt_opts ro;
  weir_rt_opts_init(&ro);
  ro.node_name = o->node;
  ro.console = o->console ? "" : NULL;
  ro.io_threads = o->partitions + 16 > 64 ? o->partitions + 16 : 64;
  ro.alarm_enable = o->alarm_queue;
  ro.alarm_disable =
      svc->hooks.alarm_disable ? svc->hooks.alarm_disable : o->alarm_queue / 4;
  ro.alarm_log = svc->hooks.alarm_log;
  int rc = weir_rt_start(&ro, &svc->rt);
  if (rc != WEIR_OK) {
    snprintf(err, errn, "cannot start the runtime: %s%s", weir_strerror(rc),
             o->console ? " (console socket in use? try --node or "
                          "--no-console)"
                        : "");
    goto fail;
  }
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.name = "aggregator_alarms";
  rc = weir_spawn(svc->rt, &alarm_server, svc, &so, &svc->alarm_proc);
  if (rc == WEIR_OK) rc = weir_alarm_subscribe(svc->rt, svc->alarm_proc);
  if (rc != WEIR_OK) {
    snprintf(err, errn, "cannot start the alarm subscriber: %s",
             weir_strerror(rc));
    goto fail;
  }
  so.name = "aggregator_dead_letters";
  rc = weir_spawn(svc->rt, &dead_letter_server, svc, &so,
                  &svc->dead_letter_proc);
  if (rc == WEIR_OK)
    rc = weir_dead_letter_subscribe(svc->rt, svc->dead_letter_proc);
  if (rc != WEIR_OK) {
    snprintf(err, errn, "cannot start the dead-letter subscriber: %s",
             weir_strerror(rc));
    goto fail;
  }
  if (o->ack == AGG_ACK_STORED &&
      agg_acks_start(o->ack_timeout_ms, &svc->acks)) {
    snprintf(err, errn, "cannot start the ack timer thread");
    goto fail;
  }
  if (o->stream ? start_stream(svc, err, errn) : start_workers(svc, err, errn))
    goto fail;
  agg_http_sink sink = {.ctx = svc,
                        .submit = submit,
                        .closing = closing,
                        .metrics = metrics,
                        .ready = ready,
                        .ctr = &svc->ctr,
                        .acks = svc->acks};
  uint16_t port;
  if (agg__http_start(&svc->opts, &sink, &svc->http, &port, err, errn))
    goto fail;
  svc->opts.port = port;
  *out = svc;
  return 0;
fail:
  if (svc->rt) weir_rt_stop(svc->rt, 10000);
  weir_stream_close(svc->stream);
  agg_acks_stop(svc->acks);
  free(svc);
  return -1;
}

int agg_service_stop(agg_service *svc, agg_counters *final) {
  atomic_store_explicit(&svc->stopping, 1, memory_order_relaxed);
  /* New requests get 503 from here on; the ones waiting for their commit
     are answered as the workers store them (or at their deadline). */
  atomic_store(&svc->closing, 1);
  atomic_thread_fence(memory_order_seq_cst);
  agg__http_quiesce(svc->http);
  if (svc->acks) {
    size_t left =
        agg_acks_wait_idle(svc->acks, svc->opts.ack_timeout_ms + 2000);
    if (left)
      fprintf(stderr,
              "weir-aggregator: stop: %zu requests still waiting for their "
              "answer are closed unanswered (their clients resend)\n",
              left);
  }
  agg__http_stop(svc->http);
  int rc = weir_rt_stop(svc->rt, 600000);
  if (rc != WEIR_OK)
    fprintf(stderr, "weir-aggregator: stop: %s\n", weir_strerror(rc));
  svc->rt = NULL;
  uint64_t lost = atomic_load(&svc->unflushed);
  if (final) agg_service_counters(svc, final);
  weir_stream_close(svc->stream);
  agg_acks_stop(svc->acks);
  free(svc);
  return rc == WEIR_OK && lost == 0 ? 0 : -1;
}

/* ---- the hot path ------------------------------------------------------- */

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int agg_service_submit(agg_service *svc, const agg_event *ev, uint64_t ack) {
  char stack[2048];
  size_t need = agg_event_packed_size(ev);
  if (need > UINT32_MAX) return WEIR_EINVAL;
  char *buf = need <= sizeof stack ? stack : malloc(need);
  if (!buf) return WEIR_ENOMEM;
  int rc;
  if (svc->stream) {
    /* The packed event travels in the stream (with no ack: that is this
       process's); its id makes a retry or a client's resend a duplicate
       the stream drops. */
    uint32_t len = (uint32_t)agg_event_pack(ev, now_us(), 0, buf, need);
    char id[AGG_USER_MAX + 32];
    snprintf(id, sizeof id, "%s:%lld", ev->user, (long long)ev->seq);
    rc = weir_stream_publish(svc->stream, ev->user, ev->user_len, id, buf, len,
                             ack);
    if (buf != stack) free(buf);
    return rc;
  }
  uint32_t len = (uint32_t)agg_event_pack(ev, now_us(), ack, buf, need);
  if (svc->opts.mode == AGG_SINGLETON) {
    weir_pid pid = {
        atomic_load_explicit(&svc->singleton, memory_order_relaxed)};
    rc = weir_cast(svc->rt, pid, AGG_TAG_EVENT, buf, len);
    if (rc == WEIR_ENOPROC &&
        weir_whereis(svc->rt, "aggregator", &pid) == WEIR_OK) {
      atomic_store_explicit(&svc->singleton, pid.id, memory_order_relaxed);
      rc = weir_cast(svc->rt, pid, AGG_TAG_EVENT, buf, len);
    }
  } else if (ev->user_is_int) {
    rc = weir_partition_cast(svc->rt, svc->ps, ev->user_int, AGG_TAG_EVENT, buf,
                             len);
  } else {
    rc = weir_partition_cast_bytes(svc->rt, svc->ps, ev->user, ev->user_len,
                                   AGG_TAG_EVENT, buf, len);
  }
  if (buf != stack) free(buf);
  return rc;
}

/* ---- observation -------------------------------------------------------- */

uint16_t agg_service_port(const agg_service *svc) {
  return svc->opts.port;
}
weir_rt *agg_service_rt(agg_service *svc) {
  return svc->rt;
}
unsigned agg_service_workers(const agg_service *svc) {
  return svc->nworkers;
}

uint64_t agg_service_queue_lens(agg_service *svc, uint64_t *out, size_t n) {
  uint64_t total = 0;
  for (unsigned i = 0; i < svc->nworkers; i++) {
    weir_pid pid = WEIR_PID_NONE;
    if (svc->opts.mode == AGG_SINGLETON) {
      if (weir_whereis(svc->rt, "aggregator", &pid) != WEIR_OK) continue;
    } else if (weir_partition_whereis(svc->rt, svc->ps, i, &pid) != WEIR_OK) {
      continue;
    }
    weir_proc_info info;
    uint64_t q = 0;
    if (weir_process_info(svc->rt, pid, &info) == WEIR_OK)
      q = info.message_queue_len;
    if (i < n) out[i] = q;
    total += q;
  }
  return total;
}

void agg_service_counters(agg_service *svc, agg_counters *c) {
#define LD(f) c->f = atomic_load_explicit(&svc->ctr.f, memory_order_relaxed)
  LD(requests);
  LD(accepted);
  LD(rejected_full);
  LD(bad_requests);
  LD(invalid_lines);
  LD(too_large);
  LD(stored);
  LD(duplicates);
  LD(db_errors);
  LD(commits);
  LD(alarms);
  LD(crashes);
  LD(lost);
#undef LD
  c->ack_timeouts = svc->acks ? agg_acks_timeouts(svc->acks) : 0;
}

typedef struct sbuf {
  char *s;
  size_t len, cap;
  int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf *b, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0,
                      fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (b->s && b->len + (size_t)n < b->cap) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->len + (size_t)n + 1)
      cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
      b->oom = 1;
      return;
    }
    b->s = s;
    b->cap = cap;
  }
}

static void counter(sbuf *b, const char *name, const char *help, uint64_t v) {
  sb_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name,
            name, (unsigned long long)v);
}

char *agg_service_metrics(agg_service *svc) {
  agg_counters c;
  agg_service_counters(svc, &c);
  sbuf b = {0};
  counter(&b, "weir_agg_requests_total", "HTTP requests", c.requests);
  counter(&b, "weir_agg_accepted_total",
          "Events accepted into a worker's mailbox", c.accepted);
  counter(&b, "weir_agg_rejected_full_total",
          "Events refused because the worker mailbox was full (503)",
          c.rejected_full);
  counter(&b, "weir_agg_bad_requests_total", "Requests answered 400",
          c.bad_requests);
  counter(&b, "weir_agg_invalid_lines_total",
          "Malformed batch lines (reported per line)", c.invalid_lines);
  counter(&b, "weir_agg_too_large_total", "Requests answered 413", c.too_large);
  counter(&b, "weir_agg_stored_total", "Rows committed to the database",
          c.stored);
  counter(&b, "weir_agg_duplicates_total",
          "Rows ignored as already stored (user_id, seq)", c.duplicates);
  counter(&b, "weir_agg_db_errors_total", "Failed transactions (retried)",
          c.db_errors);
  counter(&b, "weir_agg_commits_total", "Transactions committed", c.commits);
  counter(&b, "weir_agg_alarms_total", "Overload alarms raised", c.alarms);
  counter(&b, "weir_agg_lost_total",
          "Accepted events that will never be stored (dead letters, or a "
          "database that never came back)",
          c.lost);
  counter(&b, "weir_agg_ack_timeouts_total",
          "Requests answered 503 because their events were not stored "
          "within --ack-timeout-ms",
          c.ack_timeouts);
  counter(&b, "weir_agg_worker_crashes_total",
          "Worker crashes (each restarted with its mailbox kept)", c.crashes);
  uint64_t q[1024];
  unsigned n = svc->nworkers < 1024 ? svc->nworkers : 1024;
  uint64_t total = agg_service_queue_lens(svc, q, n);
  sb_printf(&b, "# HELP weir_agg_queue_len Events waiting in a worker's "
                "mailbox\n# TYPE weir_agg_queue_len gauge\n");
  for (unsigned i = 0; i < n; i++)
    sb_printf(&b, "weir_agg_queue_len{partition=\"%u\"} %llu\n", i,
              (unsigned long long)q[i]);
  sb_printf(&b,
            "# HELP weir_agg_queue_len_all Events waiting in all "
            "workers\n# TYPE weir_agg_queue_len_all gauge\n"
            "weir_agg_queue_len_all %llu\n",
            (unsigned long long)total);
  weir_stats st;
  if (weir_node_stats(svc->rt, &st) == WEIR_OK)
    sb_printf(&b,
              "# HELP weir_agg_processes Live weir processes\n"
              "# TYPE weir_agg_processes gauge\nweir_agg_processes %llu\n"
              "# HELP weir_agg_queued_bytes Bytes queued in all mailboxes\n"
              "# TYPE weir_agg_queued_bytes gauge\nweir_agg_queued_bytes "
              "%llu\n"
              "# HELP weir_agg_rss_bytes Resident memory of the node\n"
              "# TYPE weir_agg_rss_bytes gauge\nweir_agg_rss_bytes %llu\n",
              (unsigned long long)st.processes,
              (unsigned long long)st.queued_bytes,
              (unsigned long long)st.rss_bytes);
  if (b.oom) {
    free(b.s);
    return NULL;
  }
  return b.s;
}
