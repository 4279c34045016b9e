/*
 * publish.c: the publisher (weir_stream_publisher_start, _publish): a
 * partition supervisor "stream_publishers" of blocking processes, routed by
 * key, each with its own JetStream context. Calls only stream.c.
 *
 * A worker takes the events waiting in its mailbox as one window (at most
 * one event per key, at most 256), publishes them all asynchronously
 * with their message ids, waits for the acknowledgements, then publishes
 * again, one by one in window order and with the same id, whatever failed
 * or got no ack in time, until the stream acknowledges it or
 * publish_timeout_ms (counted from when it was queued) passes. So a key has
 * at most one unacknowledged publish, and a retry can never overtake a
 * later event of its key; the server drops the duplicate a retry may make.
 *
 * The acks arrive on a nats.c thread (on_ack): the window's entries and
 * counters are shared with it under the worker's mutex, and a window whose
 * wait timed out reclaims its pending publishes before the next one starts.
 */
#include "stream_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ID_MAX 128

void weir_stream_pub_opts_init(weir_stream_pub_opts *o) {
  memset(o, 0, sizeof *o);
  o->workers = 8;
  o->publish_timeout_ms = 10000;
}

/* A publish message: token, id length, key length, id, key, data. */
typedef struct pub_hdr {
  uint64_t token;
  uint64_t t0_ns; /* when it was queued: the timeout counts from here */
  uint16_t idlen, keylen;
  uint32_t part;
} pub_hdr;

/* A publisher process: the window of events in flight (one per key). */
#define WINDOW 256
typedef struct pub_entry {
  uint64_t token, t0_ns;
  int state; /* 0 in flight, 1 acked, 2 failed */
  char id[ID_MAX + 1];
  char subj[112];
  char *data;
  int len;
} pub_entry;

typedef struct pub {
  weir_stream *s;
  jsCtx *js; /* its own: the ack handler and the pending set are per window */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pub_entry e[WINDOW];
  int n, answered, cursor;
  uint32_t keys[2 * WINDOW]; /* key hashes in the window (0 = empty) */
} pub;

static uint32_t key_hash(const void *key, size_t len) {
  uint32_t h = weir__stream_fnv1a(key, len);
  return h ? h : 1; /* 0 marks an empty slot */
}

/* 1 if a key with this hash is in the window (a collision only flushes
   early), else records it. */
static int key_seen(pub *w, uint32_t h) {
  for (uint32_t k = h % (2 * WINDOW);; k = (k + 1) % (2 * WINDOW)) {
    if (w->keys[k] == h) return 1;
    if (w->keys[k] == 0) {
      w->keys[k] = h;
      return 0;
    }
  }
}

/* The ack handler (a nats.c thread): find the entry by its message id,
   starting where the previous ack was (acks come back in order). The
   message is the handler's to destroy. */
static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae,
                   void *closure) {
  (void)js;
  (void)pa;
  pub *w = closure;
  const char *id = NULL;
  if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) != NATS_OK || !id) {
    natsMsg_Destroy(msg); /* the handler owns it (nats.h) */
    return;
  }
  pthread_mutex_lock(&w->mu);
  for (int k = 0; k < w->n; k++) {
    int i = (w->cursor + k) % w->n;
    if (w->e[i].state == 0 && !strcmp(w->e[i].id, id)) {
      w->e[i].state = pae ? 2 : 1;
      w->cursor = i + 1;
      if (++w->answered == w->n) pthread_cond_signal(&w->cv);
      break;
    }
  }
  pthread_mutex_unlock(&w->mu);
  natsMsg_Destroy(msg); /* the handler owns it (nats.h) */
}

static int pub_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  weir_stream *s = arg;
  pub *w = calloc(1, sizeof *w);
  if (!w) return WEIR_ENOMEM;
  w->s = s;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.AckHandler = on_ack;
  jo.PublishAsync.AckHandlerClosure = w;
  jo.PublishAsync.MaxPending = WINDOW;
  if (natsConnection_JetStream(&w->js, s->nc, &jo) != NATS_OK) {
    free(w);
    return WEIR_ENOMEM;
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
  *state = w;
  return WEIR_OK;
}

/* Publishes one entry synchronously, again and again (same id: the server
   drops a duplicate) until acknowledged or its time is up. */
static int publish_sync(pub *w, pub_entry *e) {
  weir_stream *s = w->s;
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = e->id;
  po.MaxWait = 2000;
  uint64_t until = e->t0_ns + (uint64_t)s->po.publish_timeout_ms * 1000000ull;
  unsigned backoff = 50;
  for (;;) {
    jsErrCode jerr = 0;
    if (js_Publish(NULL, s->js, e->subj, e->data, e->len, &po, &jerr) ==
        NATS_OK)
      return WEIR_OK;
    if (weir__stream_mono_ns() + (uint64_t)backoff * 1000000ull >= until)
      return WEIR_ETIMEDOUT;
    /* a leader election: ~7 s of "no responders" */
    weir__stream_sleep_ms(backoff);
    backoff = backoff < 800 ? backoff * 2 : 1000;
  }
}

/* Publishes the window: all at once, asynchronously; then, in window order,
   whatever failed or got no ack in time, one by one (its key has nothing
   else in flight, so order holds); then tells the caller about each. */
static void flush_window(pub *w) {
  weir_stream *s = w->s;
  pthread_mutex_lock(&w->mu);
  w->answered = 0;
  w->cursor = 0;
  pthread_mutex_unlock(&w->mu);
  for (int i = 0; i < w->n; i++) {
    pub_entry *e = &w->e[i];
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = e->id;
    if (js_PublishAsync(w->js, e->subj, e->data, e->len, &po) != NATS_OK) {
      pthread_mutex_lock(&w->mu);
      e->state = 2;
      w->answered++;
      pthread_mutex_unlock(&w->mu);
    }
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += 3;
  pthread_mutex_lock(&w->mu);
  while (w->answered < w->n &&
         pthread_cond_timedwait(&w->cv, &w->mu, &ts) == 0) {
  }
  int all = w->answered == w->n;
  pthread_mutex_unlock(&w->mu);
  if (!all) {
    /* Reclaim what is still pending, so that no late ack touches the next
       window; those entries are retried below. */
    natsMsgList pl = {0};
    if (js_PublishAsyncGetPendingList(&pl, w->js) == NATS_OK)
      natsMsgList_Destroy(&pl);
    pthread_mutex_lock(&w->mu);
    for (int i = 0; i < w->n; i++)
      if (w->e[i].state == 0) w->e[i].state = 2;
    pthread_mutex_unlock(&w->mu);
  }
  for (int i = 0; i < w->n; i++) {
    pub_entry *e = &w->e[i];
    int status = e->state == 1 ? WEIR_OK : publish_sync(w, e);
    s->po.done(s->po.ud, e->token, status);
    free(e->data);
    e->data = NULL; /* state is reset under the lock when reused */
  }
  pthread_mutex_lock(&w->mu);
  w->n = 0;
  pthread_mutex_unlock(&w->mu);
  memset(w->keys, 0, sizeof w->keys);
}

static int pub_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  pub *w = state;
  weir_stream *s = w->s;
  pub_hdr h;
  if (m->tag != WEIR__STREAM_TAG_PUB || m->len < sizeof h) return WEIR_OK;
  memcpy(&h, m->data, sizeof h);
  if (sizeof h + (size_t)h.idlen + h.keylen > m->len) return WEIR_OK;
  const char *id = (const char *)m->data + sizeof h;
  const char *key = id + h.idlen;
  const char *data = key + h.keylen;
  size_t dlen = m->len - sizeof h - h.idlen - h.keylen;
  uint32_t kh = key_hash(key, h.keylen);
  if (w->n == WINDOW || key_seen(w, kh)) {
    flush_window(w);
    key_seen(w, kh);
  }
  char *copy = malloc(dlen ? dlen : 1);
  if (!copy) {
    s->po.done(s->po.ud, h.token, WEIR_ENOMEM);
    return WEIR_OK;
  }
  /* Under the lock: a late ack of an earlier window (one whose wait timed
     out) may be reading the window in on_ack. */
  pthread_mutex_lock(&w->mu);
  pub_entry *e = &w->e[w->n];
  e->data = copy;
  memcpy(e->data, data, dlen);
  e->len = (int)dlen;
  e->token = h.token;
  e->t0_ns = h.t0_ns;
  e->state = 0;
  memcpy(e->id, id, h.idlen);
  e->id[h.idlen] = 0;
  snprintf(e->subj, sizeof e->subj, "%s.%u", s->prefix, h.part);
  w->n++;
  pthread_mutex_unlock(&w->mu);
  if (weir_queue_len(cx) == 0) flush_window(w);
  return WEIR_OK;
}

static void pub_terminate(weir_ctx *cx, void *state, int reason,
                          const weir_msg *in_hand) {
  (void)cx;
  (void)reason;
  (void)in_hand;
  pub *w = state;
  if (!w) return;
  if (w->n) flush_window(w);
  jsCtx_Destroy(w->js);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

static const weir_server pub_server = {.name = "stream_publisher",
                                       .init = pub_init,
                                       .handle_cast = pub_cast,
                                       .terminate = pub_terminate};

int weir_stream_publisher_start(weir_rt *rt, weir_stream *s,
                                const weir_stream_pub_opts *o) {
  if (!rt || !s || !o || !o->done || o->workers == 0 || s->pub_rt)
    return WEIR_EINVAL;
  s->po = *o;
  weir_partsup_opts ps;
  weir_partsup_opts_init(&ps);
  ps.name = "stream_publishers";
  weir_child_spec_init(&ps.child, "stream_publisher", &pub_server, s);
  ps.child.opts.blocking = 1;
  ps.partitions = o->workers;
  int rc = weir_partsup_start(rt, &ps, &s->pubsup);
  if (rc == WEIR_OK) s->pub_rt = rt;
  return rc;
}

int weir_stream_publish(weir_stream *s, const void *key, size_t keylen,
                        const char *id, const void *data, size_t len,
                        uint64_t token) {
  size_t idlen = id ? strlen(id) : 0;
  if (!s || !s->pub_rt || !key || keylen == 0 || keylen > 65535 || idlen == 0 ||
      idlen > ID_MAX || (!data && len))
    return WEIR_EINVAL;
  size_t need = sizeof(pub_hdr) + idlen + keylen + len;
  if (need > UINT32_MAX) return WEIR_EINVAL;
  char stack[4096];
  char *buf = need <= sizeof stack ? stack : malloc(need);
  if (!buf) return WEIR_ENOMEM;
  pub_hdr h = {.token = token,
               .t0_ns = weir__stream_mono_ns(),
               .idlen = (uint16_t)idlen,
               .keylen = (uint16_t)keylen,
               .part = weir_stream_partition_of(s, key, keylen)};
  memcpy(buf, &h, sizeof h);
  memcpy(buf + sizeof h, id, idlen);
  memcpy(buf + sizeof h + idlen, key, keylen);
  if (len) memcpy(buf + sizeof h + idlen + keylen, data, len);
  int rc = weir_partition_cast_bytes(s->pub_rt, s->pubsup, key, keylen,
                                     WEIR__STREAM_TAG_PUB, buf, (uint32_t)need);
  if (buf != stack) free(buf);
  return rc;
}
