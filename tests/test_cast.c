/*
 * test_cast.c: weir_cast and weir_send. What handle_cast sees (tag, len,
 * data, from), per-sender order, system tags refused, payloads copied, and
 * casts to ended or never-existing pids fail with ENOPROC.
 */
#include "testlib.h"

#include <pthread.h>
#include <stdatomic.h>

#define TAG_STOP  100
#define TAG_CRASH 101
#define TAG_SEQ   102
#define TAG_MARK  103
#define TAG_FWD   104

/* ---- recorder: remembers the first messages it gets ---------------------- */

typedef struct rec_msg {
  int kind; /* 1 cast, 2 info */
  uint32_t tag, len;
  weir_pid from;
  weir_ref ref;
  unsigned char data[64];
} rec_msg;

typedef struct recorder {
  pthread_mutex_t mu;
  rec_msg msgs[64];
  int n;
  atomic_uint_fast64_t casts, infos;
  /* sequence check */
  uint64_t next_seq;
  atomic_uint_fast64_t seq_ok;
  atomic_int terminated;
  int reason;
} recorder;

static void recorder_init(recorder *r) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
}

static void record(recorder *r, int kind, const weir_msg *m) {
  pthread_mutex_lock(&r->mu);
  if (r->n < 64) {
    rec_msg *x = &r->msgs[r->n++];
    x->kind = kind;
    x->tag = m->tag;
    x->len = m->len;
    x->from = m->from;
    x->ref = m->ref;
    memcpy(x->data, m->data, m->len < 64 ? m->len : 64);
  }
  pthread_mutex_unlock(&r->mu);
}

static int rec_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

/* The pattern byte k of a message with sequence number seq. */
static unsigned char pat(uint64_t seq, uint32_t k) {
  return (unsigned char)(seq * 31u + k * 7u + 1u);
}

static int rec_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  recorder *r = state;
  (void)cx;
  if (m->tag == TAG_STOP) return WEIR_STOP;
  if (m->tag == TAG_CRASH) return -5;
  if (m->tag == TAG_SEQ) {
    uint64_t seq;
    CHECK(m->len >= sizeof seq);
    memcpy(&seq, m->data, sizeof seq);
    CHECK_EQ_U64(seq, r->next_seq);
    const unsigned char *d = m->data;
    for (uint32_t k = sizeof seq; k < m->len; k++)
      CHECK_MSG(d[k] == pat(seq, k), "seq %llu byte %u corrupted",
                (unsigned long long)seq, k);
    r->next_seq++;
    atomic_fetch_add(&r->seq_ok, 1);
    return WEIR_OK;
  }
  if (m->tag == TAG_MARK) {
    atomic_fetch_add(&r->casts, 1);
    return WEIR_OK;
  }
  record(r, 1, m);
  atomic_fetch_add(&r->casts, 1);
  return WEIR_OK;
}

static int rec_info(weir_ctx *cx, void *state, const weir_msg *m) {
  recorder *r = state;
  (void)cx;
  record(r, 2, m);
  atomic_fetch_add(&r->infos, 1);
  return WEIR_OK;
}

static void rec_terminate(weir_ctx *cx, void *state, int reason,
                          const weir_msg *in_hand) {
  recorder *r = state;
  (void)cx;
  (void)in_hand;
  r->reason = reason;
  atomic_store(&r->terminated, 1);
}

static const weir_server rec_server = {
    .name = "recorder",
    .init = rec_init,
    .handle_cast = rec_cast,
    .handle_info = rec_info,
    .terminate = rec_terminate,
};

/* ---- relay: forwards a TAG_FWD cast's payload to a target ---------------- */

typedef struct relay {
  weir_pid target;
  atomic_int rc; /* last weir_cast result + 1000 (0 = none yet) */
} relay;

static int relay_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  relay *rl = state;
  if (m->tag == TAG_STOP) return WEIR_STOP;
  int rc = weir_cast(weir_ctx_rt(cx), rl->target, 42, m->data, m->len);
  atomic_store(&rl->rc, rc + 1000);
  return WEIR_OK;
}

static const weir_server relay_server = {
    .name = "relay",
    .init = rec_init,
    .handle_cast = relay_cast,
};

/* Waits until r has handled a marker cast sent now: every cast sent before it
   from this thread has been handled (per-sender order). */
static void sync_with(weir_rt *rt, weir_pid pid, recorder *r) {
  uint64_t before = atomic_load(&r->casts);
  CHECK_OK(weir_cast(rt, pid, TAG_MARK, NULL, 0));
  WAIT_UNTIL(atomic_load(&r->casts) > before, TEST_LIVENESS_MS);
}

static void test_fields(weir_rt *rt, test_watcher *w) {
  recorder r;
  recorder_init(&r);
  weir_pid pid;
  CHECK_OK(weir_spawn(rt, &rec_server, &r, NULL, &pid));

  CHECK_OK(weir_cast(rt, pid, 7, "hello", 5));
  CHECK_OK(weir_cast(rt, pid, 0, NULL, 0));
  CHECK_OK(weir_cast(rt, pid, WEIR_TAG_SYSTEM - 1, "x", 1));
  CHECK_OK(weir_send(rt, pid, 9, "info!", 5));
  WAIT_UNTIL(atomic_load(&r.casts) == 3 && atomic_load(&r.infos) == 1,
             TEST_LIVENESS_MS);

  pthread_mutex_lock(&r.mu);
  CHECK_EQ_INT(r.n, 4);
  /* The three casts keep their order; the send may interleave anywhere in
     principle, so look the messages up by kind. */
  rec_msg *c[3];
  rec_msg *info = NULL;
  int nc = 0;
  for (int i = 0; i < r.n; i++) {
    if (r.msgs[i].kind == 1)
      c[nc++] = &r.msgs[i];
    else
      info = &r.msgs[i];
  }
  CHECK_EQ_INT(nc, 3);
  CHECK(info != NULL);
  CHECK_EQ_U64(c[0]->tag, 7);
  CHECK_EQ_U64(c[0]->len, 5);
  CHECK(memcmp(c[0]->data, "hello", 5) == 0);
  CHECK(weir_pid_is_none(c[0]->from));
  CHECK_EQ_U64(c[0]->ref, 0);
  CHECK_EQ_U64(c[1]->tag, 0);
  CHECK_EQ_U64(c[1]->len, 0);
  CHECK_EQ_U64(c[2]->tag, WEIR_TAG_SYSTEM - 1);
  CHECK_EQ_U64(c[2]->len, 1);
  CHECK_EQ_U64(info->tag, 9);
  CHECK_EQ_U64(info->len, 5);
  CHECK(memcmp(info->data, "info!", 5) == 0);
  CHECK(weir_pid_is_none(info->from));
  CHECK_EQ_U64(info->ref, 0);
  pthread_mutex_unlock(&r.mu);

  /* From a process: m->from is the sender's pid. */
  relay rl = {.target = pid};
  weir_pid rpid;
  CHECK_OK(weir_spawn(rt, &relay_server, &rl, NULL, &rpid));
  CHECK(!weir_pid_eq(rpid, pid));
  CHECK_OK(weir_cast(rt, rpid, TAG_FWD, "abc", 3));
  WAIT_UNTIL(atomic_load(&r.casts) == 4, TEST_LIVENESS_MS);
  CHECK_EQ_INT(atomic_load(&rl.rc), WEIR_OK + 1000);
  pthread_mutex_lock(&r.mu);
  CHECK_EQ_INT(r.n, 5);
  CHECK_EQ_U64(r.msgs[4].tag, 42);
  CHECK_EQ_U64(r.msgs[4].len, 3);
  CHECK(memcmp(r.msgs[4].data, "abc", 3) == 0);
  CHECK_EQ_U64(r.msgs[4].from.id, rpid.id);
  pthread_mutex_unlock(&r.mu);

  weir_ref rref = test_watch(w, rpid);
  CHECK_OK(weir_cast(rt, rpid, TAG_STOP, NULL, 0));
  CHECK(test_wait_down(w, rref, TEST_LIVENESS_MS, NULL));
  CHECK_OK(weir_cast(rt, pid, TAG_STOP, NULL, 0));
  WAIT_UNTIL(atomic_load(&r.terminated), TEST_LIVENESS_MS);
  CHECK_EQ_INT(r.reason, WEIR_REASON_NORMAL);
}

static void test_order_and_copy(weir_rt *rt) {
  recorder r;
  recorder_init(&r);
  weir_pid pid;
  CHECK_OK(weir_spawn(rt, &rec_server, &r, NULL, &pid));
  test_rng rng;
  test_rng_init(&rng, test_seed() + 1);
  uint64_t n = test_scaled(50000);
  unsigned char buf[512];
  for (uint64_t seq = 0; seq < n; seq++) {
    uint32_t len = (uint32_t)sizeof seq + test_rng_below(&rng, 300);
    memcpy(buf, &seq, sizeof seq);
    for (uint32_t k = sizeof seq; k < len; k++)
      buf[k] = pat(seq, k);
    CHECK_OK(weir_cast(rt, pid, TAG_SEQ, buf, len));
    /* The payload was copied: scribbling on it now changes nothing. */
    memset(buf, 0xEE, len);
  }
  WAIT_UNTIL(atomic_load(&r.seq_ok) == n, TEST_LIVENESS_MS);

  /* A large payload arrives intact. */
  uint32_t big = 1u << 20;
  unsigned char *p = malloc(big);
  CHECK(p != NULL);
  uint64_t seq = n;
  memcpy(p, &seq, sizeof seq);
  for (uint32_t k = sizeof seq; k < big; k++)
    p[k] = pat(seq, k);
  CHECK_OK(weir_cast(rt, pid, TAG_SEQ, p, big));
  memset(p, 0, big);
  free(p);
  WAIT_UNTIL(atomic_load(&r.seq_ok) == n + 1, TEST_LIVENESS_MS);

  CHECK_OK(weir_cast(rt, pid, TAG_STOP, NULL, 0));
  WAIT_UNTIL(atomic_load(&r.terminated), TEST_LIVENESS_MS);
}

static void test_system_tags(weir_rt *rt) {
  recorder r;
  recorder_init(&r);
  weir_pid pid;
  CHECK_OK(weir_spawn(rt, &rec_server, &r, NULL, &pid));
  static const uint32_t sys[] = {WEIR_TAG_SYSTEM,  WEIR_TAG_REPLY,
                                 WEIR_TAG_DOWN,    WEIR_TAG_EXIT,
                                 WEIR_TAG_TIMEOUT, 0xFFFFFFFFu};
  for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++)
    CHECK_RC(weir_cast(rt, pid, sys[i], "z", 1), WEIR_EINVAL);
  sync_with(rt, pid, &r);
  /* Nothing of the refused casts arrived. */
  CHECK_EQ_U64(atomic_load(&r.casts), 1);
  CHECK_EQ_U64(atomic_load(&r.infos), 0);
  pthread_mutex_lock(&r.mu);
  CHECK_EQ_INT(r.n, 0);
  pthread_mutex_unlock(&r.mu);
  CHECK_OK(weir_cast(rt, pid, TAG_STOP, NULL, 0));
  WAIT_UNTIL(atomic_load(&r.terminated), TEST_LIVENESS_MS);
}

static void test_stale(weir_rt *rt, test_watcher *w) {
  for (int how = 0; how < 3; how++) {
    recorder r;
    recorder_init(&r);
    weir_pid pid;
    CHECK_OK(weir_spawn(rt, &rec_server, &r, NULL, &pid));
    weir_ref ref = test_watch(w, pid);
    int want;
    if (how == 0) {
      CHECK_OK(weir_cast(rt, pid, TAG_STOP, NULL, 0));
      want = WEIR_REASON_NORMAL;
    } else if (how == 1) {
      CHECK_OK(weir_cast(rt, pid, TAG_CRASH, NULL, 0));
      want = -5;
    } else {
      CHECK_OK(weir_exit(rt, pid, -77));
      want = -77;
    }
    int reason = 12345;
    CHECK(test_wait_down(w, ref, TEST_LIVENESS_MS, &reason));
    CHECK_EQ_INT(reason, want);
    CHECK(atomic_load(&r.terminated));
    CHECK_EQ_INT(r.reason, want);
    /* The DOWN has been delivered: the process has ended, its pid is stale. */
    CHECK_RC(weir_cast(rt, pid, 1, "late", 4), WEIR_ENOPROC);
    CHECK_RC(weir_send(rt, pid, 1, "late", 4), WEIR_ENOPROC);
    CHECK_RC(weir_cast(rt, pid, 1, NULL, 0), WEIR_ENOPROC);
  }
}

static void test_never_existed(weir_rt *rt) {
  recorder r;
  recorder_init(&r);
  weir_pid pid;
  CHECK_OK(weir_spawn(rt, &rec_server, &r, NULL, &pid));
  weir_pid bogus[] = {
      test_pid_make(0xFFFFFFFFu, 1), /* slot past any table */
      test_pid_make(1048576u, 1),    /* first slot past the default */
      test_pid_make(1048575u, 1),    /* a slot never used */
      test_pid_make(test_pid_slot(pid), test_pid_gen(pid) + 1), /* future */
      test_pid_make(test_pid_slot(pid), test_pid_gen(pid) ^ 0x80000000u),
  };
  for (size_t i = 0; i < sizeof bogus / sizeof bogus[0]; i++) {
    CHECK_RC(weir_cast(rt, bogus[i], 1, "x", 1), WEIR_ENOPROC);
    CHECK_RC(weir_send(rt, bogus[i], 1, "x", 1), WEIR_ENOPROC);
  }
  int rc = weir_cast(rt, WEIR_PID_NONE, 1, "x", 1);
  CHECK_MSG(rc == WEIR_ENOPROC || rc == WEIR_EINVAL,
            "cast to WEIR_PID_NONE returned %d", rc);
  /* The live process saw none of it. */
  sync_with(rt, pid, &r);
  CHECK_EQ_U64(atomic_load(&r.casts), 1);
  CHECK_EQ_U64(atomic_load(&r.infos), 0);
  CHECK_OK(weir_cast(rt, pid, TAG_STOP, NULL, 0));
  WAIT_UNTIL(atomic_load(&r.terminated), TEST_LIVENESS_MS);
}

/* Several threads cast to one process: each thread's casts arrive in order
   (checked per sender inside the callback), none lost. */
typedef struct mt_arg {
  weir_rt *rt;
  weir_pid pid;
  uint32_t id;
  uint64_t n;
} mt_arg;

typedef struct mt_state {
  uint64_t next[8];
  atomic_uint_fast64_t total;
  atomic_int terminated;
} mt_state;

static int mt_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  mt_state *s = state;
  (void)cx;
  if (m->tag == TAG_STOP) return WEIR_STOP;
  uint32_t id;
  uint64_t seq;
  CHECK_EQ_INT(m->len, 12);
  memcpy(&id, m->data, 4);
  memcpy(&seq, (const char *)m->data + 4, 8);
  CHECK(id < 8);
  CHECK_EQ_U64(seq, s->next[id]);
  s->next[id]++;
  atomic_fetch_add(&s->total, 1);
  return WEIR_OK;
}

static void mt_terminate(weir_ctx *cx, void *state, int reason,
                         const weir_msg *in_hand) {
  mt_state *s = state;
  (void)cx;
  (void)reason;
  (void)in_hand;
  atomic_store(&s->terminated, 1);
}

static const weir_server mt_server = {
    .name = "mt",
    .init = rec_init,
    .handle_cast = mt_cast,
    .terminate = mt_terminate,
};

static void *mt_thread(void *p) {
  mt_arg *a = p;
  unsigned char buf[12];
  for (uint64_t seq = 0; seq < a->n; seq++) {
    memcpy(buf, &a->id, 4);
    memcpy(buf + 4, &seq, 8);
    CHECK_OK(weir_cast(a->rt, a->pid, 1, buf, sizeof buf));
  }
  return NULL;
}

static void test_many_threads_one_receiver(weir_rt *rt) {
  mt_state s;
  memset(&s, 0, sizeof s);
  weir_pid pid;
  CHECK_OK(weir_spawn(rt, &mt_server, &s, NULL, &pid));
  pthread_t th[8];
  mt_arg a[8];
  uint64_t n = test_scaled(20000);
  for (uint32_t i = 0; i < 8; i++) {
    a[i] = (mt_arg){rt, pid, i, n};
    CHECK(pthread_create(&th[i], NULL, mt_thread, &a[i]) == 0);
  }
  for (int i = 0; i < 8; i++)
    pthread_join(th[i], NULL);
  WAIT_UNTIL(atomic_load(&s.total) == 8 * n, TEST_LIVENESS_MS);
  CHECK_OK(weir_cast(rt, pid, TAG_STOP, NULL, 0));
  WAIT_UNTIL(atomic_load(&s.terminated), TEST_LIVENESS_MS);
  CHECK_EQ_U64(atomic_load(&s.total), 8 * n);
  for (int i = 0; i < 8; i++)
    CHECK_EQ_U64(s.next[i], n);
}

int main(void) {
  test_seed();
  weir_rt *rt = test_rt_start(2);
  test_watcher *w = test_watcher_start(rt);
  test_fields(rt, w);
  test_order_and_copy(rt);
  test_system_tags(rt);
  test_stale(rt, w);
  test_never_existed(rt);
  test_many_threads_one_receiver(rt);
  test_rt_stop(rt);
  test_watcher_free(w);
  test_log("test_cast: ok");
  return 0;
}
