/*
 * consume.c: the partition process "stream_part", one per partition this
 * node owns (started by the lease keeper, lease.c); and what it reports
 * (weir_stream_part_info_get). Calls only stream.c.
 *
 * Each step fetches a batch from the partition's consumer, hands it to the
 * caller's store and acknowledges it (AckAll on the last message) only
 * after store said it is durable; a batch whose store failed is held and
 * offered again. The consumer is durable and the node's own, named after
 * the partition, node and lease revision (c<I>_<NODE>_<REV>); it starts
 * after the last sequence claim() or a store recorded, and the consumers of
 * older leases (earlier owners') are deleted, never a newer one's.
 *
 * Deliveries come numbered: a gap means some were lost on the way (a server
 * died under a pull), and acknowledging past them would drop them, so the
 * process starts again on a fresh consumer from what it stored. Before every
 * commit it checks its lease (see weir__stream_part in stream_int.h): one
 * not renewed within lease_ttl - 2 s is not committed on; a store that says
 * fenced (a newer owner committed) ends the process.
 */
#include "stream_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void weir__stream_tell(weir_stream *s, unsigned i, int owned, uint64_t token,
                       const char *why) {
  if (s->co.ops.owner) s->co.ops.owner(s->co.ops.ud, i, owned, token, why);
}

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

/* The last sequence stored through this node. Relaxed: while the process
   runs only it writes this (the keeper's value from the claim came before
   the spawn, which publishes it). */
static uint64_t last_stored(const pstate *ps) {
  return atomic_load_explicit(&ps->s->parts[ps->i].stored_seq,
                              memory_order_relaxed);
}

/* 1 once the keeper (or a fenced store) asked the process to end. Relaxed:
   a request that publishes nothing; seen a step late, it only ends the
   process a step later. */
static int stop_asked(const pstate *ps) {
  return atomic_load_explicit(&ps->s->parts[ps->i].stop, memory_order_relaxed);
}

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
    return weir__stream_nats_err(err, errn, "add consumer", st, jerr);
  }
  jsConsumerInfo_Destroy(ci);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = s->name;
  so.Consumer = ps->durable;
  st = js_PullSubscribe(&ps->sub, s->js, subj, ps->durable, NULL, &so, &jerr);
  if (st != NATS_OK)
    return weir__stream_nats_err(err, errn, "subscribe", st, jerr);
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
    if (stop_asked(ps)) break;
    weir__stream_sleep_ms(500);
  }
  return weir_cast(weir_ctx_rt(cx), weir_self(cx), WEIR__STREAM_TAG_TICK, NULL,
                   0);
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
  if (part_subscribe(ps, last_stored(ps) + 1, err, sizeof err) != WEIR_OK)
    fprintf(stderr, "weir_stream: partition %u: %s (retrying)\n", ps->i, err);
}

static void drop_held(pstate *ps) {
  if (ps->held.Count) natsMsgList_Destroy(&ps->held);
  memset(&ps->held, 0, sizeof ps->held);
}

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
  if (part_subscribe(ps, last_stored(ps) + 1, err, sizeof err) != WEIR_OK) {
    fprintf(stderr, "weir_stream: partition %u: %s (retrying)\n", ps->i, err);
    weir__stream_sleep_ms(200);
  }
}

/* One fetch (or the held batch), stored and acknowledged. */
static void part_step(pstate *ps) {
  weir_stream *s = ps->s;
  weir__stream_part *p = &s->parts[ps->i];
  jsErrCode jerr = 0;
  if (!ps->held.Count) {
    if (!ps->sub) { /* a subscribe failed (an election): again */
      char err[256];
      if (part_subscribe(ps, last_stored(ps) + 1, err, sizeof err) != WEIR_OK) {
        if (ps->idle++ % 10 == 0)
          fprintf(stderr, "weir_stream: partition %u: %s (retrying)\n", ps->i,
                  err);
        weir__stream_sleep_ms(500);
      }
      return;
    }
    natsStatus st = natsSubscription_Fetch(&ps->held, ps->sub, (int)s->co.batch,
                                           500, &jerr);
    if (st != NATS_OK || ps->held.Count == 0) {
      drop_held(ps);
      /* relaxed: a figure for part_info_get, publishing nothing. */
      if (st == NATS_TIMEOUT)
        atomic_store_explicit(&p->lag, 0, memory_order_relaxed);
      if (st != NATS_TIMEOUT) weir__stream_sleep_ms(100);
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
  uint64_t stored = last_stored(ps), pending = 0;
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
  /* relaxed: owned publishes nothing; a stale renewed_ns is an older one,
     which only refuses sooner (stream_int.h). */
  int owned = atomic_load_explicit(&p->owned, memory_order_relaxed);
  uint64_t renewed = atomic_load_explicit(&p->renewed_ns, memory_order_relaxed);
  if (!owned || weir__stream_mono_ns() - renewed > ttl - 2000000000ull) {
    weir__stream_sleep_ms(100);
    return; /* held; the keeper renews or lets go */
  }
  int rc = WEIR_OK;
  if (n) {
    /* relaxed: a stale token is an older revision of this node's lease,
       still newer than any earlier owner's (stream_int.h). */
    weir_stream_batch b = {
        .partition = ps->i,
        .token = atomic_load_explicit(&p->token, memory_order_relaxed),
        .msgs = ps->msgs,
        .n = n};
    rc = s->co.ops.store(s->co.ops.ud, &b);
  }
  if (rc == WEIR_EEXIST) { /* fenced: a newer owner committed */
    /* relaxed: stop is read back by this process (part_cast); the keeper
       acts on owned only after its acquire of running (part_terminate). */
    atomic_store_explicit(&p->stop, 1, memory_order_relaxed);
    atomic_store_explicit(&p->owned, 0, memory_order_relaxed);
    drop_held(ps);
    /* relaxed: any revision this node held names the lease let go. */
    weir__stream_tell(s, ps->i, 0,
                      atomic_load_explicit(&p->token, memory_order_relaxed),
                      "fenced");
    return;
  }
  if (rc != WEIR_OK) {
    weir__stream_sleep_ms(200); /* offered again */
    return;
  }
  /* Durable: acknowledge everything up to the last (AckAll). */
  natsMsg_Ack(ps->held.Msgs[ps->held.Count - 1], NULL);
  ps->cseq = cseq;
  /* relaxed: only this process writes these while it runs; other threads
     read them as figures (part_info_get), and the keeper sees the last ones
     through its acquire of running. */
  if (n) {
    atomic_store_explicit(&p->stored_seq, ps->msgs[n - 1].seq,
                          memory_order_relaxed);
    atomic_fetch_add_explicit(&p->stored, n, memory_order_relaxed);
  }
  atomic_store_explicit(&p->lag, pending, memory_order_relaxed);
  atomic_store_explicit(&p->stream_last, last_stored(ps) + pending,
                        memory_order_relaxed);
  drop_held(ps);
}

static int part_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  pstate *ps = state;
  if (m->tag != WEIR__STREAM_TAG_TICK) return WEIR_OK;
  if (stop_asked(ps)) return WEIR_STOP;
  part_step(ps);
  if (stop_asked(ps)) return WEIR_STOP;
  int rc =
      weir_cast(weir_ctx_rt(cx), weir_self(cx), WEIR__STREAM_TAG_TICK, NULL, 0);
  return rc == WEIR_OK ? WEIR_OK : WEIR_STOP;
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
  /* release: the keeper's acquire of running then sees all this process
     did (its last store, its consumer deleted) before it lets go, tells
     the owner or takes the partition again. ps is not shared. */
  atomic_store_explicit(&ps->s->parts[ps->i].running, 0, memory_order_release);
  free(ps->msgs);
  free(ps);
}

static const weir_server part_server = {.name = "stream_part",
                                        .init = part_init,
                                        .handle_cast = part_cast,
                                        .terminate = part_terminate};

int weir__stream_part_start(weir_rt *rt, weir_stream *s, unsigned i,
                            uint64_t token, uint64_t stored_seq,
                            const char **why) {
  part_arg *a = malloc(sizeof *a);
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.blocking = 1;
  weir_pid pid;
  if (!a) {
    *why = "out of memory";
    return WEIR_ENOMEM;
  }
  *a = (part_arg){s, i, token, stored_seq};
  int rc = weir_spawn(rt, &part_server, a, &so, &pid);
  if (rc != WEIR_OK) *why = "cannot spawn";
  return rc;
}

int weir_stream_part_info_get(weir_stream *s, unsigned i,
                              weir_stream_part_info *out) {
  if (!s || !out || i >= s->o.partitions) return WEIR_EINVAL;
  weir__stream_part *p = &s->parts[i];
  /* relaxed: figures to show, each a value its writer stored; they may be
     from slightly different moments, and nothing is read through them. */
  out->owned = atomic_load_explicit(&p->owned, memory_order_relaxed);
  out->token = atomic_load_explicit(&p->token, memory_order_relaxed);
  out->stored_seq = atomic_load_explicit(&p->stored_seq, memory_order_relaxed);
  out->stream_last =
      atomic_load_explicit(&p->stream_last, memory_order_relaxed);
  out->lag = atomic_load_explicit(&p->lag, memory_order_relaxed);
  out->stored = atomic_load_explicit(&p->stored, memory_order_relaxed);
  return WEIR_OK;
}
