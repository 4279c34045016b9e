/*
 * weir_stream.c: the JetStream module (see include/weir_stream.h).
 *
 * Three kinds of weir processes, all blocking (they wait on the network):
 *
 *   stream_publishers  a partition supervisor, routed by key; each worker
 *                      publishes a window of queued events asynchronously,
 *                      at most one per key, then retries what failed in
 *                      place (same message id) until the stream
 *                      acknowledges or publish_timeout_ms passes: one
 *                      unacked publish per key, so a retry can never
 *                      overtake a later event of its key.
 *   stream_keeper      one per consumer node: every lease_ttl/3 it writes
 *                      the node's heartbeat, counts the live nodes, renews
 *                      its leases (compare-and-set on the revision), lets
 *                      go of partitions above its fair share and takes free
 *                      ones up to it.
 *   stream_part        one per owned partition: fetch a batch, hand it to
 *                      the caller's store, acknowledge (AckAll on the last)
 *                      only after store said durable; again.
 *
 * Shared state per partition (struct part) is atomics: the keeper writes the
 * lease, the partition process reads it before every commit and refuses to
 * commit on a lease it has not renewed within lease_ttl - 2 s (a process
 * that was stopped, SIGSTOP or a long pause, wakes up past its lease and
 * must not commit: its successor may already own the partition). The
 * database's token check (the store's job) is the second fence.
 */
#include "weir_stream.h"

#include <inttypes.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TAG_PUB   1u
#define TAG_TICK  2u
#define MAX_PARTS 1024
#define ID_MAX    128

typedef struct part {
  _Atomic int owned;
  _Atomic uint64_t token;
  _Atomic uint64_t renewed_ns; /* monotonic time of the last create/renew */
  _Atomic uint64_t stored_seq, stream_last, lag, stored;
  _Atomic int stop;    /* the keeper asks the partition process to end */
  _Atomic int running; /* the partition process is alive */
} part;

struct weir_stream {
  weir_stream_opts o;
  char name[64], prefix[96], bucket[96];
  natsConnection *nc;
  jsCtx *js, *js_fast; /* js_fast: the lease keeper's (1 s waits) */
  kvStore *kv;
  /* publisher */
  weir_rt *pub_rt;
  weir_pid pubsup;
  weir_stream_pub_opts po;
  /* consumer */
  weir_rt *con_rt;
  weir_stream_consumer_opts co;
  char node[40];
  weir_pid keeper;
  _Atomic int keeper_running, stopping;
  part *parts;
};

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int nats_err(char *err, size_t errn, const char *what, natsStatus st,
                    jsErrCode jerr) {
  if (err && errn)
    snprintf(err, errn, "%s: %s%s%.0d", what, natsStatus_GetText(st),
             jerr ? " (JetStream error " : "", (int)jerr);
  if (err && errn && jerr) {
    size_t l = strlen(err);
    snprintf(err + l, errn - l, ")");
  }
  return st == NATS_NO_MEMORY ? WEIR_ENOMEM : WEIR_ESYS;
}

void weir_stream_opts_init(weir_stream_opts *o) {
  memset(o, 0, sizeof *o);
  o->name = "WEIR_EVENTS";
  o->partitions = 8;
  o->replicas = 3;
  o->lease_ttl_ms = 15000;
  o->dup_window_ms = 120000;
  o->create = 1;
}

void weir_stream_pub_opts_init(weir_stream_pub_opts *o) {
  memset(o, 0, sizeof *o);
  o->workers = 8;
  o->publish_timeout_ms = 10000;
}

void weir_stream_consumer_opts_init(weir_stream_consumer_opts *o) {
  memset(o, 0, sizeof *o);
  o->batch = 256;
}

int weir_stream_connected(weir_stream *s) {
  return s && natsConnection_Status(s->nc) == NATS_CONN_STATUS_CONNECTED;
}

unsigned weir_stream_partitions(const weir_stream *s) {
  return s->o.partitions;
}

static uint32_t fnv1a(const void *key, size_t len) {
  uint32_t h = 2166136261u;
  const unsigned char *p = key;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 16777619u;
  }
  return h;
}

unsigned weir_stream_partition_of(const weir_stream *s, const void *key,
                                  size_t len) {
  return fnv1a(key, len) % s->o.partitions;
}

static int name_ok(const char *n, size_t max) {
  size_t l = n ? strlen(n) : 0;
  if (l == 0 || l > max) return 0;
  for (size_t i = 0; i < l; i++) {
    char c = n[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

/* ---- open: connection, stream, bucket ------------------------------------ */

/* The stream's description records its partition count, which the stream
   itself does not know: every node must agree on it. */
static void describe(char *out, size_t n, unsigned partitions) {
  snprintf(out, n, "weir stream, partitions=%u", partitions);
}

static int ensure_stream(weir_stream *s, char *err, size_t errn) {
  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  natsStatus st = js_GetStreamInfo(&si, s->js, s->name, NULL, &jerr);
  char subj[128], desc[64];
  snprintf(subj, sizeof subj, "%s.*", s->prefix);
  describe(desc, sizeof desc, s->o.partitions);
  if (st == NATS_OK) {
    const jsStreamConfig *c = si->Config;
    int ok = c->SubjectsLen == 1 && !strcmp(c->Subjects[0], subj) &&
             c->Replicas == (int64_t)s->o.replicas && c->Description &&
             !strcmp(c->Description, desc);
    if (!ok)
      snprintf(err, errn,
               "stream %s exists with other settings: subjects %s, %" PRId64
               " replicas, \"%s\" (want %s, %u replicas, %u partitions; "
               "every node must use the same --stream-* options)",
               s->name, c->SubjectsLen ? c->Subjects[0] : "none", c->Replicas,
               c->Description ? c->Description : "no description", subj,
               s->o.replicas, s->o.partitions);
    jsStreamInfo_Destroy(si);
    return ok ? WEIR_OK : WEIR_EINVAL;
  }
  if (st != NATS_NOT_FOUND) return nats_err(err, errn, "stream info", st, jerr);
  if (!s->o.create) {
    snprintf(err, errn, "stream %s does not exist", s->name);
    return WEIR_ENOTFOUND;
  }
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  const char *subjects[1] = {subj};
  sc.Name = s->name;
  sc.Description = desc;
  sc.Subjects = subjects;
  sc.SubjectsLen = 1;
  sc.Storage = js_FileStorage;
  sc.Replicas = s->o.replicas;
  sc.Duplicates = (int64_t)s->o.dup_window_ms * 1000000;
  st = js_AddStream(&si, s->js, &sc, NULL, &jerr);
  if (st != NATS_OK) return nats_err(err, errn, "create stream", st, jerr);
  jsStreamInfo_Destroy(si);
  return WEIR_OK;
}

/* The lease bucket, for a consumer node: its TTL is the lease time, so
   every consumer node must use the same (a bucket made with another TTL is
   refused, with both figures). */
static int ensure_bucket_once(weir_stream *s, char *err, size_t errn) {
  if (s->kv) {
    kvStore_Destroy(s->kv);
    s->kv = NULL;
  }
  natsStatus st = js_KeyValue(&s->kv, s->js_fast, s->bucket);
  if (st == NATS_NOT_FOUND && s->o.create) {
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = s->bucket;
    kc.History = 1;
    kc.TTL = (int64_t)s->o.lease_ttl_ms * 1000000;
    kc.Replicas = (int)s->o.replicas;
    kc.StorageType = js_FileStorage;
    st = js_CreateKeyValue(&s->kv, s->js, &kc);
    /* Another node created it first: bind to theirs. */
    if (st != NATS_OK) st = js_KeyValue(&s->kv, s->js_fast, s->bucket);
  }
  if (st != NATS_OK) return nats_err(err, errn, "lease bucket", st, 0);
  kvStatus *ks = NULL;
  st = kvStore_Status(&ks, s->kv);
  if (st != NATS_OK) return nats_err(err, errn, "lease bucket status", st, 0);
  int64_t ttl_ms = kvStatus_TTL(ks) / 1000000;
  kvStatus_Destroy(ks);
  if (ttl_ms != (int64_t)s->o.lease_ttl_ms) {
    snprintf(err, errn,
             "lease bucket %s has a %" PRId64 " ms lease time, not %u (every "
             "consumer node must use the same --lease-ttl-ms)",
             s->bucket, ttl_ms, s->o.lease_ttl_ms);
    return WEIR_EINVAL;
  }
  return WEIR_OK;
}

/* The lease bucket, for a consumer node: its TTL is the lease time, so
   every consumer node must use the same (a bucket made with another TTL is
   refused, with both figures). Transient failures are retried for 30 s. */
static int ensure_bucket(weir_stream *s, char *err, size_t errn) {
  uint64_t until = mono_ns() + 30000000000ull;
  for (;;) {
    int rc = ensure_bucket_once(s, err, errn);
    if (rc != WEIR_ESYS || mono_ns() >= until) return rc;
    sleep_ms(500);
  }
}

int weir_stream_open(const weir_stream_opts *o, unsigned connect_ms,
                     weir_stream **out, char *err, size_t errn) {
  if (!o || !out || !o->urls || !*o->urls || !name_ok(o->name, 48) ||
      o->partitions == 0 || o->partitions > MAX_PARTS || o->replicas == 0 ||
      o->replicas > 5 || o->lease_ttl_ms < 1000) {
    snprintf(err, errn, "invalid stream options");
    return WEIR_EINVAL;
  }
  weir_stream *s = calloc(1, sizeof *s);
  if (!s) return WEIR_ENOMEM;
  s->o = *o;
  snprintf(s->name, sizeof s->name, "%s", o->name);
  snprintf(s->prefix, sizeof s->prefix, "weir.%s", o->name);
  for (char *p = s->prefix; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
  snprintf(s->bucket, sizeof s->bucket, "%s_leases", o->name);
  s->o.name = s->name;
  s->parts = calloc(o->partitions, sizeof *s->parts);
  natsOptions *no = NULL;
  natsStatus st = s->parts ? natsOptions_Create(&no) : NATS_NO_MEMORY;
  /* natsOptions_SetURL does not take this list form in nats.c 3.4.1:
     split it for natsOptions_SetServers. */
  char urls[1024];
  const char *list[16];
  int nurls = 0;
  snprintf(urls, sizeof urls, "%s", o->urls);
  for (char *save = NULL, *t = strtok_r(urls, ", ", &save); t && nurls < 16;
       t = strtok_r(NULL, ", ", &save))
    list[nurls++] = t;
  if (st == NATS_OK)
    st = nurls ? natsOptions_SetServers(no, list, nurls) : NATS_INVALID_ARG;
  if (st == NATS_OK) st = natsOptions_SetMaxReconnect(no, -1);
  if (st == NATS_OK) st = natsOptions_SetReconnectWait(no, 250);
  if (st == NATS_OK) st = natsOptions_SetTimeout(no, 2000);
  if (st == NATS_OK) st = natsOptions_SetName(no, "weir");
  if (st != NATS_OK) {
    int rc = nats_err(err, errn, "options", st, 0);
    if (st == NATS_ERR || st == NATS_INVALID_ARG) {
      snprintf(err, errn, "bad stream URL list '%.100s'", o->urls);
      rc = WEIR_EINVAL;
    }
    natsOptions_Destroy(no);
    free(s->parts);
    free(s);
    return rc;
  }
  uint64_t until = mono_ns() + (uint64_t)connect_ms * 1000000ull;
  for (;;) {
    st = natsConnection_Connect(&s->nc, no);
    if (st == NATS_OK || mono_ns() >= until) break;
    sleep_ms(250);
  }
  natsOptions_Destroy(no);
  int rc;
  if (st != NATS_OK) {
    snprintf(err, errn, "no NATS server reachable at %.200s: %s", o->urls,
             natsStatus_GetText(st));
    rc = WEIR_ESYS;
    goto fail;
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 5000;
  st = natsConnection_JetStream(&s->js, s->nc, &jo);
  if (st != NATS_OK) {
    rc = nats_err(err, errn, "JetStream", st, 0);
    goto fail;
  }
  /* Right after the servers start, JetStream may still elect its meta
     leader: retry the management calls for the same connect_ms. */
  for (;;) {
    rc = ensure_stream(s, err, errn);
    if (rc != WEIR_ESYS || mono_ns() >= until) break;
    sleep_ms(500);
  }
  if (rc != WEIR_OK) goto fail;
  *out = s;
  return WEIR_OK;
fail:
  weir_stream_close(s);
  return rc;
}

void weir_stream_close(weir_stream *s) {
  if (!s) return;
  if (s->kv) kvStore_Destroy(s->kv);
  if (s->js) jsCtx_Destroy(s->js);
  if (s->js_fast) jsCtx_Destroy(s->js_fast);
  if (s->nc) natsConnection_Destroy(s->nc);
  free(s->parts);
  free(s);
}

/* ---- publisher ------------------------------------------------------------
 */

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
  uint32_t h = fnv1a(key, len);
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
    if (mono_ns() + (uint64_t)backoff * 1000000ull >= until)
      return WEIR_ETIMEDOUT;
    sleep_ms(backoff); /* a leader election: ~7 s of "no responders" */
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
  if (m->tag != TAG_PUB || m->len < sizeof h) return WEIR_OK;
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
               .t0_ns = mono_ns(),
               .idlen = (uint16_t)idlen,
               .keylen = (uint16_t)keylen,
               .part = weir_stream_partition_of(s, key, keylen)};
  memcpy(buf, &h, sizeof h);
  memcpy(buf + sizeof h, id, idlen);
  memcpy(buf + sizeof h + idlen, key, keylen);
  if (len) memcpy(buf + sizeof h + idlen + keylen, data, len);
  int rc = weir_partition_cast_bytes(s->pub_rt, s->pubsup, key, keylen, TAG_PUB,
                                     buf, (uint32_t)need);
  if (buf != stack) free(buf);
  return rc;
}

/* ---- consumer: one process per owned partition ----------------------------
 */

static void tell(weir_stream *s, unsigned i, int owned, uint64_t token,
                 const char *why);

typedef struct pstate {
  weir_stream *s;
  unsigned i;
  uint64_t token0; /* the lease revision it started with (consumer name) */
  char durable[96];
  natsSubscription *sub;
  unsigned idle; /* fetches in a row that brought nothing */
  uint64_t cseq; /* the consumer sequence of the last delivery taken */
  /* a batch whose store failed, kept to offer again */
  natsMsgList held;
  weir_stream_msg *msgs;
  size_t cap;
} pstate;

static void consumer_name(char *out, size_t n, unsigned i, const char *node,
                          uint64_t token) {
  snprintf(out, n, "c%u_%s_%" PRIu64, i, node, token);
}

/* Deletes the consumers of partition i made for an older lease than token
   (earlier owners'), never a newer owner's: a process that was slow to
   subscribe (a timeout, a pause) must not break its successor's. */
static void delete_old_consumers(weir_stream *s, unsigned i, uint64_t token) {
  jsConsumerNamesList *l = NULL;
  jsErrCode jerr = 0;
  if (js_ConsumerNames(&l, s->js, s->name, NULL, &jerr) != NATS_OK) return;
  char pre[16];
  int pl = snprintf(pre, sizeof pre, "c%u_", i);
  for (int k = 0; k < l->Count; k++) {
    const char *name = l->List[k];
    const char *us = strrchr(name, '_');
    if (strncmp(name, pre, (size_t)pl) || !us) continue;
    uint64_t t = strtoull(us + 1, NULL, 10);
    if (t < token) js_DeleteConsumer(s->js, s->name, name, NULL, &jerr);
  }
  jsConsumerNamesList_Destroy(l);
}

static int part_subscribe(pstate *ps, uint64_t from_seq, char *err,
                          size_t errn) {
  weir_stream *s = ps->s;
  char subj[128];
  snprintf(subj, sizeof subj, "%s.%u", s->prefix, ps->i);
  consumer_name(ps->durable, sizeof ps->durable, ps->i, s->node, ps->token0);
  delete_old_consumers(s, ps->i, ps->token0);
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = ps->durable;
  cc.FilterSubject = subj;
  cc.AckPolicy = js_AckAll;
  cc.AckWait = 30000000000ll;
  cc.MaxAckPending = 65536;
  if (from_seq > 1) {
    cc.DeliverPolicy = js_DeliverByStartSequence;
    cc.OptStartSeq = from_seq;
  } else {
    cc.DeliverPolicy = js_DeliverAll;
  }
  jsConsumerInfo *ci = NULL;
  jsErrCode jerr = 0;
  natsStatus st = js_AddConsumer(&ci, s->js, s->name, &cc, NULL, &jerr);
  if (st != NATS_OK) {
    /* It may exist anyway (a reply lost in an election), maybe from an
       earlier start: remove it so the next try starts clean. */
    jsErrCode e2 = 0;
    js_DeleteConsumer(s->js, s->name, ps->durable, NULL, &e2);
    return nats_err(err, errn, "add consumer", st, jerr);
  }
  jsConsumerInfo_Destroy(ci);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = s->name;
  so.Consumer = ps->durable;
  st = js_PullSubscribe(&ps->sub, s->js, subj, ps->durable, NULL, &so, &jerr);
  if (st != NATS_OK) return nats_err(err, errn, "subscribe", st, jerr);
  ps->cseq = 0; /* a new consumer numbers its deliveries from 1 */
  return WEIR_OK;
}

typedef struct part_arg {
  weir_stream *s;
  unsigned i;
  uint64_t token, stored_seq;
} part_arg;

static int part_init(weir_ctx *cx, void *arg, void **state) {
  part_arg *a = arg;
  pstate *ps = calloc(1, sizeof *ps);
  if (!ps) {
    free(a);
    return WEIR_ENOMEM;
  }
  ps->s = a->s;
  ps->i = a->i;
  ps->token0 = a->token;
  uint64_t from = a->stored_seq + 1;
  free(a);
  *state = ps;
  char err[256];
  int rc;
  while ((rc = part_subscribe(ps, from, err, sizeof err)) != WEIR_OK) {
    fprintf(stderr, "weir_stream: partition %u: %s (retrying)\n", ps->i, err);
    if (atomic_load(&ps->s->parts[ps->i].stop)) break;
    sleep_ms(500);
  }
  return weir_cast(weir_ctx_rt(cx), weir_self(cx), TAG_TICK, NULL, 0);
}

static void check_consumer(pstate *ps) {
  weir_stream *s = ps->s;
  jsConsumerInfo *ci = NULL;
  jsErrCode jerr = 0;
  natsStatus st =
      js_GetConsumerInfo(&ci, s->js, s->name, ps->durable, NULL, &jerr);
  if (st == NATS_OK) {
    jsConsumerInfo_Destroy(ci);
    return;
  }
  if (st != NATS_NOT_FOUND) return; /* unreachable: nothing to tell */
  fprintf(stderr,
          "weir_stream: partition %u: consumer %s is gone: "
          "subscribing again\n",
          ps->i, ps->durable);
  if (ps->sub) {
    natsSubscription_Destroy(ps->sub);
    ps->sub = NULL;
  }
  char err[256];
  if (part_subscribe(ps, atomic_load(&s->parts[ps->i].stored_seq) + 1, err,
                     sizeof err) != WEIR_OK)
    fprintf(stderr, "weir_stream: partition %u: %s (retrying)\n", ps->i, err);
}

static void drop_held(pstate *ps);

/* Drops the batch in hand and the consumer, and subscribes again on a new
   consumer from the last sequence this node stored. */
static void resubscribe(pstate *ps, const char *why) {
  weir_stream *s = ps->s;
  fprintf(stderr,
          "weir_stream: partition %u: %s: subscribing again from the stored "
          "offset\n",
          ps->i, why);
  drop_held(ps);
  if (ps->sub) {
    natsSubscription_Unsubscribe(ps->sub);
    natsSubscription_Destroy(ps->sub);
    ps->sub = NULL;
  }
  jsErrCode jerr = 0;
  js_DeleteConsumer(s->js, s->name, ps->durable, NULL, &jerr);
  char err[256];
  if (part_subscribe(ps, atomic_load(&s->parts[ps->i].stored_seq) + 1, err,
                     sizeof err) != WEIR_OK) {
    fprintf(stderr, "weir_stream: partition %u: %s (retrying)\n", ps->i, err);
    sleep_ms(200);
  }
}

static void drop_held(pstate *ps) {
  if (ps->held.Count) natsMsgList_Destroy(&ps->held);
  memset(&ps->held, 0, sizeof ps->held);
}

/* One fetch (or the held batch), stored and acknowledged. */
static void part_step(pstate *ps) {
  weir_stream *s = ps->s;
  part *p = &s->parts[ps->i];
  jsErrCode jerr = 0;
  if (!ps->held.Count) {
    if (!ps->sub) { /* a subscribe failed (an election): again */
      char err[256];
      if (part_subscribe(ps, atomic_load(&p->stored_seq) + 1, err,
                         sizeof err) != WEIR_OK) {
        if (ps->idle++ % 10 == 0)
          fprintf(stderr, "weir_stream: partition %u: %s (retrying)\n", ps->i,
                  err);
        sleep_ms(500);
      }
      return;
    }
    natsStatus st = natsSubscription_Fetch(&ps->held, ps->sub, (int)s->co.batch,
                                           500, &jerr);
    if (st != NATS_OK || ps->held.Count == 0) {
      drop_held(ps);
      if (st == NATS_TIMEOUT) atomic_store(&p->lag, 0);
      if (st != NATS_TIMEOUT) sleep_ms(100);
      /* Every ~5 s without a message, check that the consumer still
         exists (a server restored from an old state, an operator):
         if not, subscribe again from what this node stored. */
      if (++ps->idle % 10 == 0) check_consumer(ps);
      return;
    }
    ps->idle = 0;
  }
  size_t n = 0;
  if ((size_t)ps->held.Count > ps->cap) {
    weir_stream_msg *m = realloc(ps->msgs, (size_t)ps->held.Count * sizeof *m);
    if (!m) return; /* keep it held; again next tick */
    ps->msgs = m;
    ps->cap = (size_t)ps->held.Count;
  }
  uint64_t stored = atomic_load(&p->stored_seq), pending = 0;
  uint64_t cseq = ps->cseq;
  for (int k = 0; k < ps->held.Count; k++) {
    jsMsgMetaData *md = NULL;
    if (natsMsg_GetMetaData(&md, ps->held.Msgs[k]) != NATS_OK) {
      md = NULL;
      resubscribe(ps, "a message without JetStream metadata");
      return;
    }
    uint64_t seq = md->Sequence.Stream, c = md->Sequence.Consumer;
    pending = md->NumPending;
    jsMsgMetaData_Destroy(md);
    /* Deliveries come numbered: a jump means some were delivered and lost
       on the way (a server died under a pull). Acknowledging past them
       (AckAll) would drop them, and storing past them would break per-key
       order: start again from what is stored, on a fresh consumer. */
    if (c != cseq + 1) {
      char why[96];
      snprintf(why, sizeof why, "delivery %llu after %llu",
               (unsigned long long)c, (unsigned long long)cseq);
      resubscribe(ps, why);
      return;
    }
    cseq = c;
    if (seq <= stored) continue; /* stored before (a redelivery) */
    ps->msgs[n++] =
        (weir_stream_msg){seq, natsMsg_GetData(ps->held.Msgs[k]),
                          (size_t)natsMsg_GetDataLength(ps->held.Msgs[k])};
  }
  /* The lease first: a process that slept past it must not commit. */
  uint64_t ttl = (uint64_t)s->o.lease_ttl_ms * 1000000ull;
  if (!atomic_load(&p->owned) ||
      mono_ns() - atomic_load(&p->renewed_ns) > ttl - 2000000000ull) {
    sleep_ms(100);
    return; /* held; the keeper renews or lets go */
  }
  int rc = WEIR_OK;
  if (n) {
    weir_stream_batch b = {.partition = ps->i,
                           .token = atomic_load(&p->token),
                           .msgs = ps->msgs,
                           .n = n};
    rc = s->co.ops.store(s->co.ops.ud, &b);
  }
  if (rc == WEIR_EEXIST) { /* fenced: a newer owner committed */
    atomic_store(&p->stop, 1);
    atomic_store(&p->owned, 0);
    drop_held(ps);
    tell(s, ps->i, 0, atomic_load(&p->token), "fenced");
    return;
  }
  if (rc != WEIR_OK) {
    sleep_ms(200); /* offered again */
    return;
  }
  /* Durable: acknowledge everything up to the last (AckAll). */
  natsMsg_Ack(ps->held.Msgs[ps->held.Count - 1], NULL);
  ps->cseq = cseq;
  if (n) {
    atomic_store(&p->stored_seq, ps->msgs[n - 1].seq);
    atomic_fetch_add(&p->stored, n);
  }
  atomic_store(&p->lag, pending);
  atomic_store(&p->stream_last, atomic_load(&p->stored_seq) + pending);
  drop_held(ps);
}

static int part_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  pstate *ps = state;
  if (m->tag != TAG_TICK) return WEIR_OK;
  if (atomic_load(&ps->s->parts[ps->i].stop)) return WEIR_STOP;
  part_step(ps);
  if (atomic_load(&ps->s->parts[ps->i].stop)) return WEIR_STOP;
  return weir_cast(weir_ctx_rt(cx), weir_self(cx), TAG_TICK, NULL, 0) == WEIR_OK
             ? WEIR_OK
             : WEIR_STOP;
}

static void part_terminate(weir_ctx *cx, void *state, int reason,
                           const weir_msg *in_hand) {
  (void)cx;
  (void)reason;
  (void)in_hand;
  pstate *ps = state;
  if (!ps) return;
  drop_held(ps);
  if (ps->sub) {
    natsSubscription_Unsubscribe(ps->sub);
    natsSubscription_Destroy(ps->sub);
  }
  jsErrCode jerr = 0;
  if (ps->durable[0])
    js_DeleteConsumer(ps->s->js, ps->s->name, ps->durable, NULL, &jerr);
  atomic_store(&ps->s->parts[ps->i].running, 0);
  free(ps->msgs);
  free(ps);
}

static const weir_server part_server = {.name = "stream_part",
                                        .init = part_init,
                                        .handle_cast = part_cast,
                                        .terminate = part_terminate};

/* ---- consumer: the lease keeper ------------------------------------------ */

static void part_key(char *out, size_t n, unsigned i) {
  snprintf(out, n, "p.%u", i);
}

static void tell(weir_stream *s, unsigned i, int owned, uint64_t token,
                 const char *why) {
  if (s->co.ops.owner) s->co.ops.owner(s->co.ops.ud, i, owned, token, why);
}

/* Stops partition i's process and waits for it (its current batch ends). */
static void part_stop(weir_stream *s, unsigned i) {
  part *p = &s->parts[i];
  atomic_store(&p->stop, 1);
  for (int k = 0; k < 6000 && atomic_load(&p->running); k++)
    sleep_ms(10);
  atomic_store(&p->owned, 0);
}

static void let_go(weir_stream *s, unsigned i, int delete_key,
                   const char *why) {
  part *p = &s->parts[i];
  uint64_t token = atomic_load(&p->token);
  part_stop(s, i);
  if (delete_key) {
    char key[24];
    part_key(key, sizeof key, i);
    kvStore_Delete(s->kv, key);
  }
  tell(s, i, 0, token, why);
}

static void take(weir_stream *s, weir_ctx *cx, unsigned i) {
  part *p = &s->parts[i];
  char key[24];
  part_key(key, sizeof key, i);
  uint64_t rev = 0;
  if (kvStore_Create(&rev, s->kv, key, s->node, (int)strlen(s->node)) !=
      NATS_OK)
    return; /* owned by another node (or the bucket unreachable) */
  uint64_t stored = 0;
  int rc = s->co.ops.claim(s->co.ops.ud, i, rev, &stored);
  if (rc != WEIR_OK) {
    /* A newer token recorded (EEXIST) or the database unreachable: give
       the lease back for another node or a later tick. */
    kvStore_Delete(s->kv, key);
    return;
  }
  atomic_store(&p->token, rev);
  atomic_store(&p->renewed_ns, mono_ns());
  atomic_store(&p->stored_seq, stored);
  atomic_store(&p->stop, 0);
  atomic_store(&p->owned, 1);
  atomic_store(&p->running, 1);
  part_arg *a = malloc(sizeof *a);
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.blocking = 1;
  weir_pid pid;
  if (!a) {
    atomic_store(&p->running, 0);
    let_go(s, i, 1, "out of memory");
    return;
  }
  *a = (part_arg){s, i, rev, stored};
  if (weir_spawn(weir_ctx_rt(cx), &part_server, a, &so, &pid) != WEIR_OK) {
    atomic_store(&p->running, 0);
    let_go(s, i, 1, "cannot spawn");
    return;
  }
  tell(s, i, 1, rev, "taken");
}

static unsigned live_nodes(weir_stream *s) {
  kvKeysList l = {0};
  unsigned n = 0;
  if (kvStore_Keys(&l, s->kv, NULL) != NATS_OK) return 0;
  for (int k = 0; k < l.Count; k++)
    if (!strncmp(l.Keys[k], "n.", 2)) n++;
  kvKeysList_Destroy(&l);
  return n;
}

/* After a failed renewal: 1 if the key is no longer ours (expired,
   deleted, or rewritten by another node), 0 if it still is or if that
   cannot be told now (the bucket unreachable). A renewal whose reply was
   lost (an election) may still have happened: the key then holds our name
   at a newer revision, which becomes the token (only this node writes its
   name there: another can only create the key after it expired). */
static int lease_gone(weir_stream *s, const char *key, part *p) {
  kvEntry *e = NULL;
  natsStatus st = kvStore_Get(&e, s->kv, key);
  if (st == NATS_NOT_FOUND) return 1;
  if (st != NATS_OK) return 0;
  uint64_t rev = kvEntry_Revision(e);
  int ours = kvEntry_ValueLen(e) == (int)strlen(s->node) &&
             !memcmp(kvEntry_Value(e), s->node, strlen(s->node));
  kvEntry_Destroy(e);
  if (!ours) return 1;
  if (rev > atomic_load(&p->token)) atomic_store(&p->token, rev);
  return 0;
}

static void keeper_tick(weir_stream *s, weir_ctx *cx) {
  uint64_t t0 = mono_ns();
  unsigned P = s->o.partitions;
  uint64_t ttl = (uint64_t)s->o.lease_ttl_ms * 1000000ull;
  char key[64];
  uint64_t rev;
  snprintf(key, sizeof key, "n.%s", s->node);
  kvStore_Put(&rev, s->kv, key, "1", 1);
  /* Renew what is held; a lease whose renewal failed for longer than it
     lives is lost (another node may hold it now). */
  unsigned owned = 0;
  int unreachable = 0;
  for (unsigned i = 0; i < P; i++) {
    part *p = &s->parts[i];
    if (!atomic_load(&p->owned)) {
      if (atomic_load(&p->running)) part_stop(s, i); /* fenced: told */
      continue;
    }
    if (unreachable) { /* an election: try them all next tick */
      if (mono_ns() - atomic_load(&p->renewed_ns) > ttl)
        let_go(s, i, 0, "lease lost (not renewed in time)");
      else
        owned++;
      continue;
    }
    part_key(key, sizeof key, i);
    uint64_t nrev = 0;
    natsStatus st =
        kvStore_Update(&nrev, s->kv, key, s->node, (int)strlen(s->node),
                       atomic_load(&p->token));
    if (st == NATS_OK) {
      atomic_store(&p->token, nrev);
      atomic_store(&p->renewed_ns, mono_ns());
      owned++;
    } else if (st == NATS_TIMEOUT || st == NATS_NO_RESPONDERS) {
      /* The bucket does not answer (a leader election): do not spend a
         timeout on each lease; they are renewed together next tick. */
      unreachable = 1;
      if (mono_ns() - atomic_load(&p->renewed_ns) > ttl)
        let_go(s, i, 0, "lease lost (not renewed in time)");
      else
        owned++;
    } else if (lease_gone(s, key, p) ||
               mono_ns() - atomic_load(&p->renewed_ns) > ttl) {
      let_go(s, i, 0, "lease lost");
    } else {
      owned++; /* a transient failure: again next tick */
    }
  }
  if (atomic_load(&s->stopping) || unreachable) return;
  unsigned live = live_nodes(s);
  if (live == 0) live = 1;
  unsigned share = (P + live - 1) / live;
  for (unsigned i = P; i-- > 0 && owned > share;)
    if (atomic_load(&s->parts[i].owned)) {
      let_go(s, i, 1, "rebalance");
      owned--;
    }
  /* Taking is bounded to a third of the lease per tick, so that a slow
     bucket (an election) cannot delay the renewals of what is held. */
  uint64_t until = t0 + ttl / 3;
  for (unsigned i = 0; i < P && owned < share && mono_ns() < until; i++)
    if (!atomic_load(&s->parts[i].owned) &&
        !atomic_load(&s->parts[i].running)) {
      take(s, cx, i);
      if (atomic_load(&s->parts[i].owned)) owned++;
    }
}

static int keeper_init(weir_ctx *cx, void *arg, void **state) {
  *state = arg;
  return weir_cast(weir_ctx_rt(cx), weir_self(cx), TAG_TICK, NULL, 0);
}

static int keeper_on_tick(weir_ctx *cx, void *state, const weir_msg *m) {
  weir_stream *s = state;
  if (m->tag != TAG_TICK) return WEIR_OK;
  if (atomic_load(&s->stopping)) {
    for (unsigned i = 0; i < s->o.partitions; i++)
      if (atomic_load(&s->parts[i].owned) || atomic_load(&s->parts[i].running))
        let_go(s, i, 1, "stop");
    char key[64];
    snprintf(key, sizeof key, "n.%s", s->node);
    kvStore_Delete(s->kv, key);
    return WEIR_STOP;
  }
  keeper_tick(s, cx);
  weir_send_after(weir_ctx_rt(cx), weir_self(cx), TAG_TICK, NULL, 0,
                  s->o.lease_ttl_ms / 3, NULL);
  return WEIR_OK;
}

static void keeper_terminate(weir_ctx *cx, void *state, int reason,
                             const weir_msg *in_hand) {
  (void)cx;
  (void)reason;
  (void)in_hand;
  weir_stream *s = state;
  atomic_store(&s->keeper_running, 0);
}

static const weir_server keeper_server = {.name = "stream_keeper",
                                          .init = keeper_init,
                                          .handle_cast = keeper_on_tick,
                                          .handle_info = keeper_on_tick,
                                          .terminate = keeper_terminate};

int weir_stream_consumer_start(weir_rt *rt, weir_stream *s,
                               const weir_stream_consumer_opts *o, char *err,
                               size_t errn) {
  if (!rt || !s || !o || !o->ops.claim || !o->ops.store || o->batch == 0 ||
      !name_ok(o->node, 32) || s->con_rt) {
    snprintf(err, errn,
             "invalid consumer options (node: 1-32 of [A-Za-z0-9_-])");
    return WEIR_EINVAL;
  }
  /* The keeper's calls wait 1 s, not the 5 s of the management context:
     during an election it must not spend the lease waiting. */
  if (!s->js_fast) {
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 1000;
    if (natsConnection_JetStream(&s->js_fast, s->nc, &jo) != NATS_OK) {
      snprintf(err, errn, "JetStream context: out of memory");
      return WEIR_ENOMEM;
    }
  }
  int brc = ensure_bucket(s, err, errn);
  if (brc != WEIR_OK) return brc;
  s->co = *o;
  snprintf(s->node, sizeof s->node, "%s", o->node);
  s->co.node = s->node;
  s->con_rt = rt;
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.blocking = 1;
  so.name = "stream_keeper";
  atomic_store(&s->keeper_running, 1);
  int rc = weir_spawn(rt, &keeper_server, s, &so, &s->keeper);
  if (rc != WEIR_OK) {
    atomic_store(&s->keeper_running, 0);
    s->con_rt = NULL;
    snprintf(err, errn, "cannot start the lease keeper: %s", weir_strerror(rc));
  }
  return rc;
}

void weir_stream_consumer_stop(weir_stream *s) {
  if (!s || !s->con_rt) return;
  atomic_store(&s->stopping, 1);
  weir_cast(s->con_rt, s->keeper, TAG_TICK, NULL, 0);
  for (int k = 0; k < 6000 && atomic_load(&s->keeper_running); k++)
    sleep_ms(10);
}

int weir_stream_part_info_get(weir_stream *s, unsigned i,
                              weir_stream_part_info *out) {
  if (!s || !out || i >= s->o.partitions) return WEIR_EINVAL;
  part *p = &s->parts[i];
  out->owned = atomic_load(&p->owned);
  out->token = atomic_load(&p->token);
  out->stored_seq = atomic_load(&p->stored_seq);
  out->stream_last = atomic_load(&p->stream_last);
  out->lag = atomic_load(&p->lag);
  out->stored = atomic_load(&p->stored);
  return WEIR_OK;
}
