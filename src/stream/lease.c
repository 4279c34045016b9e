/*
 * lease.c: the consumer's lifecycle (weir_stream_consumer_start, _stop)
 * and its lease keeper "stream_keeper", one blocking process per consumer
 * node, which decides which partitions this node owns and starts and stops
 * their processes (consume.c). Calls consume.c and stream.c.
 *
 * Leases are keys "p.I" of the lease bucket, whose TTL is the lease time:
 * one is created (kvStore_Create: only if absent) to take a partition and
 * renewed by compare-and-set on its revision, which is the fencing token
 * handed to claim() and to every store. Every lease_ttl/3 the keeper writes
 * the node's heartbeat "n.NODE", renews its leases, lets go of a lease whose
 * renewal failed for longer than it lives (another node may hold it now),
 * counts the live nodes (the heartbeat keys), lets go of partitions above
 * its fair share ceil(P / live) and takes free ones up to it. So partitions
 * spread over the live nodes and move when one dies or joins.
 *
 * While the bucket does not answer (a leader election) the renewals are
 * tried together next tick rather than spending a timeout on each, and
 * taking is bounded to a third of the lease per tick, so that a slow bucket
 * cannot delay the renewals of what is held.
 */
#include "stream_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void weir_stream_consumer_opts_init(weir_stream_consumer_opts *o) {
  memset(o, 0, sizeof *o);
  o->batch = 256;
}

static void part_key(char *out, size_t n, unsigned i) {
  snprintf(out, n, "p.%u", i);
}

/* 1 while the partition's process is alive. Acquire: pairs with the release
   in its terminate, so all it did (its last store() call) happens before
   what the keeper does next: tell the owner, delete the lease, take the
   partition again. */
static int is_running(const weir__stream_part *p) {
  return atomic_load_explicit(&p->running, memory_order_acquire);
}

/* 1 while this node holds the partition's lease. Relaxed: it publishes
   nothing; the keeper wrote it, or the process cleared it on a fenced store
   (then the keeper stops it, waiting on is_running). */
static int is_owned(const weir__stream_part *p) {
  return atomic_load_explicit(&p->owned, memory_order_relaxed);
}

/* The lease's revision. Relaxed: only the keeper writes it. */
static uint64_t token_of(const weir__stream_part *p) {
  return atomic_load_explicit(&p->token, memory_order_relaxed);
}

/* Nanoseconds since the lease was last created or renewed. Relaxed: only
   the keeper writes renewed_ns. */
static uint64_t since_renewed(const weir__stream_part *p) {
  return weir__stream_mono_ns() -
         atomic_load_explicit(&p->renewed_ns, memory_order_relaxed);
}

/* Stops partition i's process and waits for it (its current batch ends). */
static void part_stop(weir_stream *s, unsigned i) {
  weir__stream_part *p = &s->parts[i];
  /* relaxed: a request that publishes nothing (see stop_asked, consume.c). */
  atomic_store_explicit(&p->stop, 1, memory_order_relaxed);
  for (int k = 0; k < 6000 && is_running(p); k++)
    weir__stream_sleep_ms(10);
  /* relaxed: it publishes nothing (a process still running after the wait
     only refuses to commit sooner). */
  atomic_store_explicit(&p->owned, 0, memory_order_relaxed);
}

static void let_go(weir_stream *s, unsigned i, int delete_key,
                   const char *why) {
  weir__stream_part *p = &s->parts[i];
  uint64_t token = token_of(p);
  part_stop(s, i);
  if (delete_key) {
    char key[24];
    part_key(key, sizeof key, i);
    kvStore_Delete(s->kv, key);
  }
  weir__stream_tell(s, i, 0, token, why);
}

static void take(weir_stream *s, weir_ctx *cx, unsigned i) {
  weir__stream_part *p = &s->parts[i];
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
  /* relaxed: the spawn below publishes these to the process (its init
     runs on this thread, its ticks come through its mailbox); the old
     process, if any, ended before (is_running was 0). */
  atomic_store_explicit(&p->token, rev, memory_order_relaxed);
  atomic_store_explicit(&p->renewed_ns, weir__stream_mono_ns(),
                        memory_order_relaxed);
  atomic_store_explicit(&p->stored_seq, stored, memory_order_relaxed);
  atomic_store_explicit(&p->stop, 0, memory_order_relaxed);
  atomic_store_explicit(&p->owned, 1, memory_order_relaxed);
  atomic_store_explicit(&p->running, 1, memory_order_relaxed);
  const char *why = NULL;
  if (weir__stream_part_start(weir_ctx_rt(cx), s, i, rev, stored, &why) !=
      WEIR_OK) {
    /* relaxed: no process runs, so there is nothing to publish. */
    atomic_store_explicit(&p->running, 0, memory_order_relaxed);
    let_go(s, i, 1, why);
    return;
  }
  weir__stream_tell(s, i, 1, rev, "taken");
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
static int lease_gone(weir_stream *s, const char *key, weir__stream_part *p) {
  kvEntry *e = NULL;
  natsStatus st = kvStore_Get(&e, s->kv, key);
  if (st == NATS_NOT_FOUND) return 1;
  if (st != NATS_OK) return 0;
  uint64_t rev = kvEntry_Revision(e);
  int ours = kvEntry_ValueLen(e) == (int)strlen(s->node) &&
             !memcmp(kvEntry_Value(e), s->node, strlen(s->node));
  kvEntry_Destroy(e);
  if (!ours) return 1;
  /* relaxed: only the keeper writes token; the process reads any value. */
  if (rev > token_of(p))
    atomic_store_explicit(&p->token, rev, memory_order_relaxed);
  return 0;
}

/* 1 once weir_stream_consumer_stop asked the keeper to end. Relaxed: it
   publishes nothing, and the cast sent after it brings the keeper a tick
   that sees it. */
static int stopping(weir_stream *s) {
  return atomic_load_explicit(&s->stopping, memory_order_relaxed);
}

static void keeper_tick(weir_stream *s, weir_ctx *cx) {
  uint64_t t0 = weir__stream_mono_ns();
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
    weir__stream_part *p = &s->parts[i];
    if (!is_owned(p)) {
      if (is_running(p)) part_stop(s, i); /* fenced: told */
      continue;
    }
    if (unreachable) { /* an election: try them all next tick */
      if (since_renewed(p) > ttl)
        let_go(s, i, 0, "lease lost (not renewed in time)");
      else
        owned++;
      continue;
    }
    part_key(key, sizeof key, i);
    uint64_t nrev = 0;
    natsStatus st = kvStore_Update(&nrev, s->kv, key, s->node,
                                   (int)strlen(s->node), token_of(p));
    if (st == NATS_OK) {
      /* relaxed: only the keeper writes these; the process reads any value
         (a stale one is older: see weir__stream_part in stream_int.h). */
      atomic_store_explicit(&p->token, nrev, memory_order_relaxed);
      atomic_store_explicit(&p->renewed_ns, weir__stream_mono_ns(),
                            memory_order_relaxed);
      owned++;
    } else if (st == NATS_TIMEOUT || st == NATS_NO_RESPONDERS) {
      /* The bucket does not answer (a leader election): do not spend a
         timeout on each lease; they are renewed together next tick. */
      unreachable = 1;
      if (since_renewed(p) > ttl)
        let_go(s, i, 0, "lease lost (not renewed in time)");
      else
        owned++;
    } else if (lease_gone(s, key, p) || since_renewed(p) > ttl) {
      let_go(s, i, 0, "lease lost");
    } else {
      owned++; /* a transient failure: again next tick */
    }
  }
  if (stopping(s) || unreachable) return;
  unsigned live = live_nodes(s);
  if (live == 0) live = 1;
  unsigned share = (P + live - 1) / live;
  for (unsigned i = P; i-- > 0 && owned > share;)
    if (is_owned(&s->parts[i])) {
      let_go(s, i, 1, "rebalance");
      owned--;
    }
  /* Taking is bounded to a third of the lease per tick, so that a slow
     bucket (an election) cannot delay the renewals of what is held. */
  uint64_t until = t0 + ttl / 3;
  for (unsigned i = 0; i < P && owned < share && weir__stream_mono_ns() < until;
       i++)
    if (!is_owned(&s->parts[i]) && !is_running(&s->parts[i])) {
      take(s, cx, i);
      if (is_owned(&s->parts[i])) owned++;
    }
}

static int keeper_init(weir_ctx *cx, void *arg, void **state) {
  *state = arg;
  return weir_cast(weir_ctx_rt(cx), weir_self(cx), WEIR__STREAM_TAG_TICK, NULL,
                   0);
}

static int keeper_on_tick(weir_ctx *cx, void *state, const weir_msg *m) {
  weir_stream *s = state;
  if (m->tag != WEIR__STREAM_TAG_TICK) return WEIR_OK;
  if (stopping(s)) {
    for (unsigned i = 0; i < s->o.partitions; i++)
      if (is_owned(&s->parts[i]) || is_running(&s->parts[i]))
        let_go(s, i, 1, "stop");
    char key[64];
    snprintf(key, sizeof key, "n.%s", s->node);
    kvStore_Delete(s->kv, key);
    return WEIR_STOP;
  }
  keeper_tick(s, cx);
  weir_send_after(weir_ctx_rt(cx), weir_self(cx), WEIR__STREAM_TAG_TICK, NULL,
                  0, s->o.lease_ttl_ms / 3, NULL);
  return WEIR_OK;
}

static void keeper_terminate(weir_ctx *cx, void *state, int reason,
                             const weir_msg *in_hand) {
  (void)cx;
  (void)reason;
  (void)in_hand;
  weir_stream *s = state;
  /* release: weir_stream_consumer_stop's acquire then sees every lease let
     go and told before its caller may close the stream. */
  atomic_store_explicit(&s->keeper_running, 0, memory_order_release);
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
      !weir__stream_name_ok(o->node, 32) || s->con_rt) {
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
  int brc = weir__stream_ensure_bucket(s, err, errn);
  if (brc != WEIR_OK) return brc;
  s->co = *o;
  snprintf(s->node, sizeof s->node, "%s", o->node);
  s->co.node = s->node;
  s->con_rt = rt;
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.blocking = 1;
  so.name = "stream_keeper";
  /* relaxed: read only by weir_stream_consumer_stop, called after this
     returns; the keeper itself only clears it. */
  atomic_store_explicit(&s->keeper_running, 1, memory_order_relaxed);
  int rc = weir_spawn(rt, &keeper_server, s, &so, &s->keeper);
  if (rc != WEIR_OK) {
    /* relaxed: no keeper runs. */
    atomic_store_explicit(&s->keeper_running, 0, memory_order_relaxed);
    s->con_rt = NULL;
    snprintf(err, errn, "cannot start the lease keeper: %s", weir_strerror(rc));
  }
  return rc;
}

/* 1 until the keeper has ended. Acquire: pairs with keeper_terminate's
   release, so its last acts happen before the caller goes on. */
static int keeper_alive(weir_stream *s) {
  return atomic_load_explicit(&s->keeper_running, memory_order_acquire);
}

void weir_stream_consumer_stop(weir_stream *s) {
  if (!s || !s->con_rt) return;
  /* relaxed: the cast that follows carries it to the keeper (a mailbox
     orders the two), and it publishes nothing. */
  atomic_store_explicit(&s->stopping, 1, memory_order_relaxed);
  weir_cast(s->con_rt, s->keeper, WEIR__STREAM_TAG_TICK, NULL, 0);
  for (int k = 0; k < 6000 && keeper_alive(s); k++)
    weir__stream_sleep_ms(10);
}
