/*
 * test_stress_order.c: per-sender FIFO under load. Producer threads and
 * producer processes cast to many receivers at random; every message carries
 * (sender, seq-per-receiver) and a payload derived from them. Each receiver
 * checks, per sender, that seq grows by exactly 1 and the payload is intact;
 * at the end the totals received equal the totals sent: nothing lost, nothing
 * doubled. Runs twice: default batch, and batch = 1 with one scheduler less
 * (more rescheduling per message).
 */
#include "testlib.h"

#include <pthread.h>
#include <stdatomic.h>

enum { NRECV = 16, NTHREADS = 4, NPROCS = 4, NSEND = NTHREADS + NPROCS };
#define TAG_MSG  1
#define TAG_GO   2
#define TAG_STOP 3

typedef struct hdr {
  uint32_t sender;
  uint32_t pad_len;
  uint64_t seq;
} hdr;

static unsigned char pad_byte(uint32_t sender, uint64_t seq, uint32_t k) {
  return (unsigned char)(sender * 131u + seq * 7u + k);
}

typedef struct receiver {
  uint64_t next[NSEND];
  atomic_uint_fast64_t got;
  weir_pid sender_pid[NSEND]; /* NONE for threads */
  atomic_int terminated;
} receiver;

static receiver recv_state[NRECV];
static weir_pid recv_pid[NRECV];
static weir_pid prod_pid[NPROCS];
static atomic_uint_fast64_t sent_total;
static uint64_t per_sender; /* messages each sender sends */
static uint64_t seed;
static atomic_int producers_done;

static int p_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int r_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  receiver *r = state;
  (void)cx;
  if (m->tag == TAG_STOP) return WEIR_STOP;
  hdr h;
  CHECK(m->len >= sizeof h);
  memcpy(&h, m->data, sizeof h);
  CHECK(h.sender < NSEND);
  CHECK_EQ_INT(m->len, sizeof h + h.pad_len);
  CHECK_MSG(h.seq == r->next[h.sender],
            "receiver %d: sender %u seq %llu, expected %llu",
            (int)(r - recv_state), h.sender, (unsigned long long)h.seq,
            (unsigned long long)r->next[h.sender]);
  r->next[h.sender]++;
  const unsigned char *pad = (const unsigned char *)m->data + sizeof h;
  for (uint32_t k = 0; k < h.pad_len; k++)
    CHECK_MSG(pad[k] == pad_byte(h.sender, h.seq, k),
              "payload of sender %u seq %llu corrupted at %u", h.sender,
              (unsigned long long)h.seq, k);
  /* Threads send as NONE; processes as themselves. */
  if (h.sender < NTHREADS)
    CHECK(weir_pid_is_none(m->from));
  else
    CHECK_EQ_U64(m->from.id, prod_pid[h.sender - NTHREADS].id);
  atomic_fetch_add(&r->got, 1);
  return WEIR_OK;
}

static void r_terminate(weir_ctx *cx, void *state, int reason,
                        const weir_msg *in_hand) {
  receiver *r = state;
  (void)cx;
  (void)reason;
  (void)in_hand;
  atomic_store(&r->terminated, 1);
}

static const weir_server rsrv = {
    .name = "receiver",
    .init = p_init,
    .handle_cast = r_cast,
    .terminate = r_terminate,
};

/* One sender's state: the same code for threads and processes. */
typedef struct sender {
  uint32_t id;
  test_rng rng;
  uint64_t seq[NRECV];
  uint64_t sent;
} sender;

static sender senders[NSEND];

/* Sends up to n messages; returns how many. */
static uint64_t send_some(weir_rt *rt, sender *s, uint64_t n) {
  unsigned char buf[sizeof(hdr) + 96];
  uint64_t k = 0;
  for (; k < n && s->sent < per_sender; k++, s->sent++) {
    uint32_t to = test_rng_below(&s->rng, NRECV);
    hdr h = {s->id, test_rng_below(&s->rng, 97), s->seq[to]++};
    memcpy(buf, &h, sizeof h);
    for (uint32_t j = 0; j < h.pad_len; j++)
      buf[sizeof h + j] = pad_byte(h.sender, h.seq, j);
    CHECK_OK(weir_cast(rt, recv_pid[to], TAG_MSG, buf,
                       (uint32_t)sizeof h + h.pad_len));
    atomic_fetch_add(&sent_total, 1);
  }
  return k;
}

static int prod_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  sender *s = state;
  weir_rt *rt = weir_ctx_rt(cx);
  if (m->tag == TAG_STOP) return WEIR_STOP;
  CHECK_EQ_INT(m->tag, TAG_GO);
  /* A slice, then yield by casting to ourselves: other processes run. */
  send_some(rt, s, 64 + test_rng_below(&s->rng, 64));
  if (s->sent < per_sender)
    CHECK_OK(weir_cast(rt, weir_self(cx), TAG_GO, NULL, 0));
  else
    atomic_fetch_add(&producers_done, 1);
  return WEIR_OK;
}

static const weir_server psrv = {
    .name = "producer",
    .init = p_init,
    .handle_cast = prod_cast,
};

typedef struct targ {
  weir_rt *rt;
  sender *s;
} targ;

static void *prod_thread(void *p) {
  targ *a = p;
  while (a->s->sent < per_sender)
    send_some(a->rt, a->s, 1000);
  atomic_fetch_add(&producers_done, 1);
  return NULL;
}

static void run(unsigned schedulers, unsigned batch) {
  weir_rt_opts o;
  weir_rt_opts_init(&o);
  o.schedulers = schedulers;
  o.batch = batch;
  weir_rt *rt = test_rt_start_opts(&o);
  memset(recv_state, 0, sizeof recv_state);
  memset(senders, 0, sizeof senders);
  atomic_store(&sent_total, 0);
  atomic_store(&producers_done, 0);
  for (int i = 0; i < NRECV; i++)
    CHECK_OK(weir_spawn(rt, &rsrv, &recv_state[i], NULL, &recv_pid[i]));
  for (uint32_t i = 0; i < NSEND; i++) {
    senders[i].id = i;
    test_rng_init(&senders[i].rng, seed * 1000003u + i + batch * 100u);
  }
  for (int i = 0; i < NPROCS; i++)
    CHECK_OK(weir_spawn(rt, &psrv, &senders[NTHREADS + i], NULL, &prod_pid[i]));

  pthread_t th[NTHREADS];
  targ ta[NTHREADS];
  for (int i = 0; i < NPROCS; i++)
    CHECK_OK(weir_cast(rt, prod_pid[i], TAG_GO, NULL, 0));
  for (int i = 0; i < NTHREADS; i++) {
    ta[i] = (targ){rt, &senders[i]};
    CHECK(pthread_create(&th[i], NULL, prod_thread, &ta[i]) == 0);
  }
  for (int i = 0; i < NTHREADS; i++)
    pthread_join(th[i], NULL);
  WAIT_UNTIL(atomic_load(&producers_done) == NSEND, 120000);

  uint64_t want = per_sender * NSEND;
  CHECK_EQ_U64(atomic_load(&sent_total), want);
  uint64_t got = 0;
  uint64_t dl = test_now_ms() + 120000;
  for (;;) {
    got = 0;
    for (int i = 0; i < NRECV; i++)
      got += atomic_load(&recv_state[i].got);
    if (got >= want || test_now_ms() > dl) break;
    test_sleep_ms(2);
  }
  CHECK_EQ_U64(got, want);
  /* Stop drains what remains (nothing): the totals do not move. */
  CHECK_OK(weir_rt_stop(rt, -1));
  got = 0;
  for (int i = 0; i < NRECV; i++) {
    CHECK(atomic_load(&recv_state[i].terminated));
    got += atomic_load(&recv_state[i].got);
  }
  CHECK_EQ_U64(got, want);
  /* Per pair: the receiver saw exactly what the sender sent. */
  for (int r = 0; r < NRECV; r++)
    for (int s = 0; s < NSEND; s++)
      CHECK_EQ_U64(recv_state[r].next[s], senders[s].seq[r]);
  test_log("schedulers=%u batch=%u: %llu messages, in order", schedulers, batch,
           (unsigned long long)want);
}

int main(void) {
  seed = test_seed();
  per_sender = test_scaled(150000);
  run(0, 0);
  run(1, 1);
  run(2, 2);
  test_log("test_stress_order: ok");
  return 0;
}
