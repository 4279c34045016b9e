/*
 * test_stress_partsup.c: per-key order through a partition supervisor while
 * workers crash and the partition count changes under traffic.
 *
 * NPROD producers, each with its own NKP keys, route (producer, key, seq)
 * with weir_partition_cast: half of them threads, half processes that cast
 * a chunk of 1-200 messages per callback (so their casts wait in the
 * scheduler thread's outbox, proc.c, and the router's mark with them).
 * Meanwhile (a) workers crash at random: a shared RNG, seeded from the run's
 * seed, picks the messages a worker crashes on (its callback returns -1);
 * terminate puts the message in hand back with weir_requeue, so nothing may be
 * lost; and (b) a resizer thread grows and shrinks the supervisor between 1 and
 * MAXP partitions, spread over the run. The workers check, per (producer, key),
 * that seqs arrive strictly increasing by exactly 1, and that no two workers
 * ever handle one key at the same time (that would be a key drained too late
 * after a resize). At the end every message has arrived exactly once: each
 * key's next expected seq equals what its producer sent, and the handled total
 * equals the sent total.
 *
 * A cast must never fail (the mailboxes are unbounded): any error is
 * counted by kind, the message is retried so that the run goes on to check
 * order and loss, and the test fails at the end naming the errors.
 *
 * The seed is printed; WEIR_SEED=N replays the same crash and resize
 * choices (the thread interleaving is the machine's). Size scales with
 * WEIR_STRESS_SCALE.
 */
#include "testlib.h"

#include <pthread.h>
#include <stdatomic.h>

enum { NPROD = 4, NKP = 16, NKEYS = NPROD * NKP, MAXP = 6, NRESIZE = 24 };
enum { CRASH_ONE_IN = 2500, T_EV = 1, T_MORE = 2, NPROD_THREADS = NPROD / 2 };

typedef struct ev {
  uint32_t prod, key; /* key: 0..NKP-1 within the producer */
  uint64_t seq;
} ev;

static _Atomic uint64_t next_seq[NKEYS];
static atomic_int busy[NKEYS];
static _Atomic uint64_t handled, sent_total, crashes, requeue_fail;
static uint64_t per_prod;
static uint64_t sent_key[NKEYS]; /* written by the owning producer only */
static atomic_int producers_done;

/* Diagnosis knobs: STRESS_NO_CRASH=1, STRESS_NO_RESIZE=1 turn one half of
   the storm off, to tell which one breaks an invariant. */
static int crash_on = 1, resize_on = 1;
static pthread_mutex_t crash_mu = PTHREAD_MUTEX_INITIALIZER;
static test_rng crash_rng;

/* cast errors by kind: index -rc (0 unused) */
static _Atomic uint64_t cast_err[32];

static uint64_t gkey(const ev *e) {
  return (uint64_t)e->prod * NKP + e->key;
}

static int w_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int w_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  (void)state;
  ev e;
  CHECK_EQ_INT(m->tag, T_EV);
  CHECK_EQ_INT(m->len, sizeof e);
  memcpy(&e, m->data, sizeof e);
  CHECK(e.prod < NPROD && e.key < NKP);
  uint64_t k = gkey(&e);
  CHECK_MSG(atomic_exchange(&busy[k], 1) == 0,
            "key %llu handled by two workers at once (seq %llu)",
            (unsigned long long)k, (unsigned long long)e.seq);
  int crash = 0;
  if (crash_on) {
    pthread_mutex_lock(&crash_mu);
    crash = test_rng_below(&crash_rng, CRASH_ONE_IN) == 0;
    pthread_mutex_unlock(&crash_mu);
  }
  if (crash) {
    atomic_store(&busy[k], 0);
    atomic_fetch_add(&crashes, 1);
    return -1; /* terminate requeues it */
  }
  uint64_t want = atomic_load(&next_seq[k]);
  CHECK_MSG(e.seq == want,
            "producer %u key %u: seq %llu arrived, expected %llu "
            "(%s)",
            e.prod, e.key, (unsigned long long)e.seq, (unsigned long long)want,
            e.seq < want ? "duplicate or reordered" : "gap: lost or late");
  atomic_store(&next_seq[k], want + 1);
  atomic_fetch_add(&handled, 1);
  atomic_store(&busy[k], 0);
  return WEIR_OK;
}

static void w_terminate(weir_ctx *cx, void *state, int reason,
                        const weir_msg *in_hand) {
  (void)state;
  if (reason < 0 && in_hand) {
    int rc = weir_requeue(cx, in_hand);
    if (rc != WEIR_OK) atomic_fetch_add(&requeue_fail, 1);
  }
}

static const weir_server wsrv = {.name = "stress_partition",
                                 .init = w_init,
                                 .handle_cast = w_cast,
                                 .terminate = w_terminate};

typedef struct prod_arg {
  weir_rt *rt;
  weir_pid ps;
  uint32_t id;
  test_rng rng;
  uint64_t i; /* messages sent so far */
} prod_arg;

static void cast_one(prod_arg *a) {
  uint32_t k = test_rng_below(&a->rng, NKP);
  uint64_t g = (uint64_t)a->id * NKP + k;
  ev e = {a->id, k, sent_key[g]};
  /* The routing key: distinct per (producer, key), spread over any n. */
  uint64_t rkey = g * 2654435761u + 17;
  int rc, tries = 0;
  while ((rc = weir_partition_cast(a->rt, a->ps, rkey, T_EV, &e, sizeof e)) !=
         WEIR_OK) {
    int idx = -rc > 0 && -rc < 32 ? -rc : 0;
    atomic_fetch_add(&cast_err[idx], 1);
    CHECK_MSG(++tries < 100000, "cast keeps failing: %s", weir_err_name(rc));
    test_sleep_ms(0);
  }
  sent_key[g]++;
  atomic_fetch_add(&sent_total, 1);
  a->i++;
}

static void *producer(void *p) {
  prod_arg *a = p;
  while (a->i < per_prod)
    cast_one(a);
  atomic_fetch_add(&producers_done, 1);
  return NULL;
}

/* A producer process: a chunk of casts per callback, then `more` to itself */
static int pp_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int pp_info(weir_ctx *cx, void *state, const weir_msg *m) {
  prod_arg *a = state;
  CHECK_EQ_INT(m->tag, T_MORE);
  uint32_t chunk = 1 + test_rng_below(&a->rng, 200);
  for (uint32_t c = 0; c < chunk && a->i < per_prod; c++)
    cast_one(a);
  if (a->i < per_prod)
    CHECK_OK(weir_send(a->rt, weir_self(cx), T_MORE, NULL, 0));
  else
    atomic_fetch_add(&producers_done, 1);
  return WEIR_OK;
}

static const weir_server psrv = {
    .name = "stress_producer", .init = pp_init, .handle_info = pp_info};

typedef struct resize_arg {
  weir_rt *rt;
  weir_pid ps;
  test_rng rng;
  unsigned sizes[NRESIZE];
  int done;
} resize_arg;

static void *resizer(void *p) {
  resize_arg *a = p;
  uint64_t total = per_prod * NPROD;
  for (int i = 0; i < NRESIZE && resize_on; i++) {
    /* resize i once (i+1)/(NRESIZE+1) of the traffic has been sent */
    uint64_t at = total * (uint64_t)(i + 1) / (NRESIZE + 1);
    while (atomic_load(&sent_total) < at &&
           atomic_load(&producers_done) < NPROD)
      test_sleep_ms(1);
    CHECK_OK(weir_partsup_resize(a->rt, a->ps, a->sizes[i]));
    int n = weir_partitions(a->rt, a->ps);
    CHECK_EQ_INT(n, (int)a->sizes[i]);
    a->done++;
  }
  return NULL;
}

int main(void) {
  uint64_t seed = test_seed();
  test_rng_init(&crash_rng, seed);
  per_prod = test_scaled(300000);
  const char *env = getenv("STRESS_NO_CRASH");
  crash_on = !(env && *env == '1');
  env = getenv("STRESS_NO_RESIZE");
  resize_on = !(env && *env == '1');
  test_log("[stress partsup] producers=%d keys=%d per_producer=%llu "
           "resizes=%d crash 1/%d%s%s",
           NPROD, NKEYS, (unsigned long long)per_prod, NRESIZE, CRASH_ONE_IN,
           crash_on ? "" : " (crashes off)", resize_on ? "" : " (resizes off)");
  uint64_t t0 = test_now_ms();

  weir_rt *rt = test_rt_start(0);
  weir_partsup_opts o;
  weir_partsup_opts_init(&o);
  o.name = "stress_ps";
  o.child.server = &wsrv;
  o.partitions = 3;
  o.max_restarts = 100000; /* crashes are the point here */
  o.max_seconds = 1;
  weir_pid ps;
  CHECK_OK(weir_partsup_start(rt, &o, &ps));

  resize_arg ra = {.rt = rt, .ps = ps};
  test_rng_init(&ra.rng, seed ^ 0xabcdef);
  unsigned cur = 3;
  for (int i = 0; i < NRESIZE; i++) {
    unsigned n;
    do
      n = 1 + test_rng_below(&ra.rng, MAXP);
    while (n == cur);
    /* make sure both ends are visited */
    if (i == 2) n = cur == MAXP ? 1 : MAXP;
    if (i == 5) n = cur == 1 ? MAXP : 1;
    ra.sizes[i] = cur = n;
  }
  {
    char buf[256];
    int off = 0;
    for (int i = 0; i < NRESIZE; i++)
      off += snprintf(buf + off, sizeof buf - (size_t)off, " %u", ra.sizes[i]);
    test_log("  sizes: 3 ->%s", buf);
  }

  prod_arg pa[NPROD];
  pthread_t th[NPROD], rth;
  CHECK(pthread_create(&rth, NULL, resizer, &ra) == 0);
  for (uint32_t i = 0; i < NPROD; i++) {
    pa[i] = (prod_arg){.rt = rt, .ps = ps, .id = i};
    test_rng_init(&pa[i].rng, seed * 31 + i);
    if (i < NPROD_THREADS) {
      CHECK(pthread_create(&th[i], NULL, producer, &pa[i]) == 0);
    } else {
      weir_pid pp;
      CHECK_OK(weir_spawn(rt, &psrv, &pa[i], NULL, &pp));
      CHECK_OK(weir_send(rt, pp, T_MORE, NULL, 0));
    }
  }
  for (int i = 0; i < NPROD_THREADS; i++)
    pthread_join(th[i], NULL);
  uint64_t pdl = test_now_ms() + 300000;
  while (atomic_load(&producers_done) < NPROD && test_now_ms() < pdl)
    test_sleep_ms(2);
  CHECK_EQ_INT(atomic_load(&producers_done), NPROD);
  pthread_join(rth, NULL);
  CHECK_EQ_INT(ra.done, resize_on ? NRESIZE : 0);

  uint64_t want = per_prod * NPROD;
  CHECK_EQ_U64(atomic_load(&sent_total), want);
  uint64_t dl = test_now_ms() + 120000;
  while (atomic_load(&handled) < want && test_now_ms() < dl)
    test_sleep_ms(2);
  uint64_t got = atomic_load(&handled);
  weir_stats st;
  CHECK_OK(weir_node_stats(rt, &st));
  test_log("  sent=%llu handled=%llu crashes=%llu dead_letters=%llu "
           "partitions=%d (%llu ms)",
           (unsigned long long)want, (unsigned long long)got,
           (unsigned long long)atomic_load(&crashes),
           (unsigned long long)st.dead_letters, weir_partitions(rt, ps),
           (unsigned long long)(test_now_ms() - t0));
  int errs = 0;
  for (int i = 1; i < 32; i++) {
    uint64_t c = atomic_load(&cast_err[i]);
    if (c) {
      fprintf(stderr, "  weir_partition_cast returned %s %llu times\n",
              weir_err_name(-i), (unsigned long long)c);
      errs = 1;
    }
  }
  CHECK_MSG(!errs, "weir_partition_cast failed during the run (see above); "
                   "every message is unbounded-mailbox traffic");
  CHECK_EQ_U64(atomic_load(&requeue_fail), 0);
  CHECK_EQ_U64(got, want);
  for (int k = 0; k < NKEYS; k++)
    CHECK_MSG(atomic_load(&next_seq[k]) == sent_key[k],
              "key %d: %llu handled in order, %llu sent", k,
              (unsigned long long)atomic_load(&next_seq[k]),
              (unsigned long long)sent_key[k]);
  CHECK_EQ_U64(st.dead_letters, 0);
  test_rt_stop(rt);
  CHECK_EQ_U64(atomic_load(&handled), want); /* nothing doubled at stop */
  test_log("test_stress_partsup: ok");
  return 0;
}
