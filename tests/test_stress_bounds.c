/*
 * test_stress_bounds.c: bounded mailboxes under many concurrent senders,
 * randomised from the printed seed (WEIR_SEED replays a run).
 *
 * Each round draws a policy (REJECT, DROP_NEWEST, DROP_OLDEST, BLOCK), a
 * bound (length, sometimes bytes too), a number of sender threads, their
 * message counts, and how the receiver behaves: held in a callback until the
 * senders are done, or running and pausing now and then so the mailbox
 * fills and empties repeatedly. Whatever the draw, the same books must
 * balance:
 *
 *   - every message sent is handled, dead-lettered or refused (an error to
 *     its sender), exactly once; nothing is lost or duplicated;
 *   - the process's and the node's `dropped` equal refused + dead letters;
 *   - what is handled keeps each sender's order;
 *   - the queue (sampled, and queue_high_water) never passes the bound
 *     max_queue_len (DROP_OLDEST included: its senders evict the oldest
 *     before the send returns); the byte bound by at most one message per
 *     sender;
 *   - BLOCK with a 10 s push timeout refuses nothing (the receiver drains).
 *
 * In half the rounds of the other policies the senders are processes, each
 * sending a random number of messages per callback, so that their sends go
 * through the outbox: admitted one by one or from places reserved for them
 * (proc.c, weir__bound_credit), pushed in chains.
 */
#include "testlib.h"

#include <pthread.h>
#include <stdatomic.h>

enum { TAG_HOLD = 1, TAG_MSG = 2 };
enum { MSG_LEN = 16 };

#define ID(t, i) (((uint64_t)(t) << 32) | (uint64_t)(i))
#define ID_T(id) ((uint32_t)((id) >> 32))
#define ID_I(id) ((uint32_t)((id)&0xffffffffu))

typedef struct recv {
  atomic_int open;
  atomic_uint holds;
  unsigned pause_every; /* running mode: sleep 1 ms every this many */
  uint64_t *log;
  atomic_uint_fast64_t n;
} recv;

static int any_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int recv_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  recv *r = state;
  if (m->tag == TAG_HOLD) {
    atomic_fetch_add(&r->holds, 1);
    while (!atomic_load(&r->open))
      test_sleep_ms(1);
    return WEIR_OK;
  }
  uint64_t id;
  CHECK_EQ_U64(m->len, MSG_LEN);
  memcpy(&id, m->data, sizeof id);
  uint64_t k = atomic_load_explicit(&r->n, memory_order_relaxed);
  r->log[k] = id;
  atomic_store_explicit(&r->n, k + 1, memory_order_release);
  if (r->pause_every && (k + 1) % r->pause_every == 0) test_sleep_ms(1);
  return WEIR_OK;
}

static const weir_server recv_server = {
    .name = "bounded", .init = any_init, .handle_cast = recv_cast};

typedef struct dl {
  uint64_t *ids;
  atomic_uint_fast64_t n, bad;
} dl;

static int dl_info(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  dl *d = state;
  if (m->tag != WEIR_TAG_DEAD_LETTER) return WEIR_OK;
  weir_dead_letter h;
  uint64_t id = UINT64_MAX;
  if (m->len != sizeof h + MSG_LEN) {
    atomic_fetch_add(&d->bad, 1);
    return WEIR_OK;
  }
  memcpy(&h, m->data, sizeof h);
  if (h.reason != WEIR_EFULL || h.tag != TAG_MSG || h.len != MSG_LEN)
    atomic_fetch_add(&d->bad, 1);
  memcpy(&id, (const char *)m->data + sizeof h, sizeof id);
  uint64_t k = atomic_load_explicit(&d->n, memory_order_relaxed);
  d->ids[k] = id;
  atomic_store_explicit(&d->n, k + 1, memory_order_release);
  return WEIR_OK;
}

static const weir_server dl_server = {
    .name = "dead_letters", .init = any_init, .handle_info = dl_info};

typedef struct snd {
  pthread_t th;
  weir_rt *rt;
  weir_pid to;
  uint32_t id, n;
  uint32_t next;  /* a process sender: the next message to send */
  uint32_t chunk; /* a process sender: messages per callback */
  int *rc;
  atomic_int finished;
} snd;

static void send_one(snd *s, uint32_t i) {
  char buf[MSG_LEN];
  memset(buf, 0x5a, sizeof buf);
  uint64_t id = ID(s->id, i);
  memcpy(buf, &id, sizeof id);
  s->rc[i] = weir_cast(s->rt, s->to, TAG_MSG, buf, MSG_LEN);
}

static void *snd_main(void *arg) {
  snd *s = arg;
  for (uint32_t i = 0; i < s->n; i++)
    send_one(s, i);
  atomic_store(&s->finished, 1);
  return NULL;
}

/* A process sender: `chunk` casts per callback, then a send to itself. */
static int psnd_info(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)m;
  snd *s = state;
  uint32_t end = s->next + s->chunk < s->n ? s->next + s->chunk : s->n;
  for (; s->next < end; s->next++)
    send_one(s, s->next);
  if (s->next < s->n)
    CHECK_OK(weir_send(weir_ctx_rt(cx), weir_self(cx), TAG_MSG, NULL, 0));
  else
    atomic_store(&s->finished, 1); /* seq_cst: publishes rc[] */
  return WEIR_OK;
}

static const weir_server psnd_server = {
    .name = "sender", .init = any_init, .handle_info = psnd_info};

static const char *pol_name(weir_overflow o) {
  switch (o) {
  case WEIR_OVERFLOW_REJECT:
    return "REJECT";
  case WEIR_OVERFLOW_DROP_OLDEST:
    return "DROP_OLDEST";
  case WEIR_OVERFLOW_DROP_NEWEST:
    return "DROP_NEWEST";
  case WEIR_OVERFLOW_BLOCK:
    return "BLOCK";
  }
  return "?";
}

static void round_run(test_rng *rng, unsigned round) {
  weir_overflow pol = (weir_overflow)test_rng_below(rng, 4);
  uint32_t max = 1 + test_rng_below(rng, 64);
  uint64_t max_bytes = test_rng_below(rng, 4) == 0
                           ? (uint64_t)MSG_LEN * (1 + test_rng_below(rng, 64))
                           : 0;
  unsigned nt = 2 + test_rng_below(rng, 5);
  int held = test_rng_below(rng, 2) == 0 && pol != WEIR_OVERFLOW_BLOCK;
  unsigned pause_every = held ? 0 : 1 + test_rng_below(rng, 200);
  uint32_t per_max = (uint32_t)test_scaled(3000);
  int procs = pol != WEIR_OVERFLOW_BLOCK && test_rng_below(rng, 2) == 0;
  test_log("[round %u] %s max_len=%u max_bytes=%llu %s=%u %s", round,
           pol_name(pol), max, (unsigned long long)max_bytes,
           procs ? "processes" : "threads", nt, held ? "held" : "running");

  weir_rt_opts o;
  weir_rt_opts_init(&o);
  o.schedulers = 2;
  o.console = NULL;
  o.alarm_log = 0;
  weir_rt *rt = test_rt_start_opts(&o);

  snd *s = calloc(nt, sizeof *s);
  CHECK(s != NULL);
  uint64_t total = 0;
  for (unsigned t = 0; t < nt; t++) {
    s[t].n = 1 + test_rng_below(rng, per_max);
    total += s[t].n;
  }
  dl d;
  memset(&d, 0, sizeof d);
  d.ids = calloc(total, sizeof *d.ids);
  recv r;
  memset(&r, 0, sizeof r);
  r.pause_every = pause_every;
  r.log = calloc(total, sizeof *r.log);
  CHECK(d.ids != NULL && r.log != NULL);
  weir_pid dpid, pid;
  CHECK_OK(weir_spawn(rt, &dl_server, &d, NULL, &dpid));
  CHECK_OK(weir_dead_letter_subscribe(rt, dpid));
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.blocking = 1;
  so.max_queue_len = max;
  so.max_queue_bytes = max_bytes;
  so.overflow = pol;
  so.push_timeout_ms = 10000;
  CHECK_OK(weir_spawn(rt, &recv_server, &r, &so, &pid));
  if (held) {
    uint64_t z = 0;
    char buf[MSG_LEN] = {0};
    memcpy(buf, &z, sizeof z);
    CHECK_OK(weir_cast(rt, pid, TAG_HOLD, buf, MSG_LEN));
    WAIT_UNTIL(atomic_load(&r.holds) == 1, TEST_LIVENESS_MS);
  } else {
    atomic_store(&r.open, 1);
  }

  for (unsigned t = 0; t < nt; t++) {
    s[t].rt = rt;
    s[t].to = pid;
    s[t].id = t;
    s[t].rc = calloc(s[t].n, sizeof *s[t].rc);
    CHECK(s[t].rc != NULL);
    if (procs) {
      s[t].chunk = 1 + test_rng_below(rng, 300);
      weir_pid sp;
      CHECK_OK(weir_spawn(rt, &psnd_server, &s[t], NULL, &sp));
      CHECK_OK(weir_send(rt, sp, TAG_MSG, NULL, 0));
    } else {
      CHECK(pthread_create(&s[t].th, NULL, snd_main, &s[t]) == 0);
    }
  }
  uint64_t lim = max;
  uint64_t seen_len = 0, seen_bytes = 0;
  uint64_t dl_ms = test_now_ms() + TEST_LIVENESS_MS;
  for (;;) {
    unsigned fin = 0;
    for (unsigned t = 0; t < nt; t++)
      fin += (unsigned)atomic_load(&s[t].finished);
    if (fin == nt) break;
    weir_proc_info pi;
    CHECK_OK(weir_process_info(rt, pid, &pi));
    if (pi.message_queue_len > seen_len) seen_len = pi.message_queue_len;
    if (pi.mailbox_bytes > seen_bytes) seen_bytes = pi.mailbox_bytes;
    CHECK_MSG(test_now_ms() < dl_ms, "senders stuck");
    test_sleep_ms(1);
  }
  for (unsigned t = 0; t < nt && !procs; t++)
    pthread_join(s[t].th, NULL);
  atomic_store(&r.open, 1);

  uint64_t refused = 0;
  for (unsigned t = 0; t < nt; t++)
    for (uint32_t i = 0; i < s[t].n; i++) {
      int rc = s[t].rc[i];
      CHECK_MSG(rc == WEIR_OK || rc == WEIR_EFULL, "send returned %s",
                weir_err_name(rc));
      CHECK_MSG(rc == WEIR_OK || pol == WEIR_OVERFLOW_REJECT ||
                    pol == WEIR_OVERFLOW_BLOCK,
                "%s returned EFULL", pol_name(pol));
      refused += rc != WEIR_OK;
    }
  CHECK_MSG(pol != WEIR_OVERFLOW_BLOCK || refused == 0,
            "BLOCK refused %llu (push timeout 10 s, receiver draining)",
            (unsigned long long)refused);

  /* Everything not refused is handled or dead-lettered, once. */
  uint64_t dropped = 0;
  uint64_t dl_ms2 = test_now_ms() + TEST_LIVENESS_MS;
  for (;;) {
    weir_proc_info pi;
    CHECK_OK(weir_process_info(rt, pid, &pi));
    dropped = pi.dropped;
    uint64_t h = atomic_load_explicit(&r.n, memory_order_acquire);
    uint64_t x = atomic_load_explicit(&d.n, memory_order_acquire);
    if (h + x + refused >= total && pi.message_queue_len == 0) break;
    CHECK_MSG(test_now_ms() < dl_ms2,
              "books do not balance: handled %llu + dead %llu + refused "
              "%llu != sent %llu (queue %llu)",
              (unsigned long long)h, (unsigned long long)x,
              (unsigned long long)refused, (unsigned long long)total,
              (unsigned long long)pi.message_queue_len);
    test_sleep_ms(1);
  }
  test_sleep_ms(20);
  uint64_t handled = atomic_load_explicit(&r.n, memory_order_acquire);
  uint64_t dead = atomic_load_explicit(&d.n, memory_order_acquire);
  CHECK_EQ_U64(handled + dead + refused, total);
  CHECK_EQ_U64(atomic_load(&d.bad), 0);
  weir_proc_info pi;
  CHECK_OK(weir_process_info(rt, pid, &pi));
  CHECK_EQ_U64(pi.dropped, refused + dead);
  weir_stats st;
  CHECK_OK(weir_node_stats(rt, &st));
  CHECK_EQ_U64(st.dropped, refused + dead);
  CHECK_MSG(seen_len <= lim && pi.queue_high_water <= lim,
            "queue passed its bound %llu: sampled %llu, high water %llu",
            (unsigned long long)lim, (unsigned long long)seen_len,
            (unsigned long long)pi.queue_high_water);
  if (max_bytes)
    CHECK_MSG(seen_bytes <= max_bytes + (uint64_t)nt * MSG_LEN,
              "bytes %llu passed the bound %llu by more than one message "
              "per sender",
              (unsigned long long)seen_bytes, (unsigned long long)max_bytes);

  uint8_t **mark = calloc(nt, sizeof *mark);
  CHECK(mark != NULL);
  for (unsigned t = 0; t < nt; t++) {
    mark[t] = calloc(s[t].n, 1);
    CHECK(mark[t] != NULL);
    for (uint32_t i = 0; i < s[t].n; i++)
      mark[t][i] = s[t].rc[i] != WEIR_OK;
  }
  int64_t *last = malloc(nt * sizeof *last);
  CHECK(last != NULL);
  for (unsigned t = 0; t < nt; t++)
    last[t] = -1;
  for (uint64_t k = 0; k < handled; k++) {
    uint32_t t = ID_T(r.log[k]), i = ID_I(r.log[k]);
    CHECK(t < nt && i < s[t].n);
    CHECK_MSG((int64_t)i > last[t], "sender %u out of order", t);
    last[t] = i;
    mark[t][i]++;
  }
  for (uint64_t k = 0; k < dead; k++) {
    uint32_t t = ID_T(d.ids[k]), i = ID_I(d.ids[k]);
    CHECK(t < nt && i < s[t].n);
    mark[t][i]++;
  }
  for (unsigned t = 0; t < nt; t++) {
    for (uint32_t i = 0; i < s[t].n; i++)
      CHECK_MSG(mark[t][i] == 1, "sender %u message %u accounted %u times", t,
                i, mark[t][i]);
    free(mark[t]);
    free(s[t].rc);
  }
  test_log("  sent=%llu handled=%llu dead=%llu refused=%llu dropped=%llu "
           "max_seen=%llu hw=%llu",
           (unsigned long long)total, (unsigned long long)handled,
           (unsigned long long)dead, (unsigned long long)refused,
           (unsigned long long)dropped, (unsigned long long)seen_len,
           (unsigned long long)pi.queue_high_water);
  test_rt_stop(rt);
  free(mark);
  free(last);
  free(s);
  free(d.ids);
  free(r.log);
}

int main(void) {
  test_rng rng;
  test_rng_init(&rng, test_seed());
  unsigned rounds = (unsigned)test_scaled(24);
  uint64_t t0 = test_now_ms();
  for (unsigned i = 0; i < rounds; i++)
    round_run(&rng, i);
  test_log("test_stress_bounds: %u rounds passed in %llu ms", rounds,
           (unsigned long long)(test_now_ms() - t0));
  return 0;
}
