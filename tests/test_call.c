/*
 * test_call.c: weir_call, weir_reply, weir_reply_rt, weir_call_async.
 * Replies now and deferred (from another thread, from another process),
 * timeouts and the late reply they make stale, truncation (E2BIG), servers
 * that end before replying (ENOPROC), EDEADLK on a scheduler thread, calls
 * from a blocking process, async calls with REPLY / TIMEOUT / DOWN.
 */
#include "testlib.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

enum {
  CALL_ECHO = 1,   /* replies with the request bytes */
  CALL_BIG,        /* request: uint32 n; replies n pattern bytes */
  CALL_DEFER,      /* stores from in g_from, replies later (from the test) */
  CALL_STOP,       /* ends normally without replying */
  CALL_CRASH,      /* crashes (-3) without replying */
  CALL_DEFER_STOP, /* stores from, then ends without replying */
  CALL_FROM,       /* replies with m->from */
  CALL_NESTED,     /* calls weir_call itself; replies with its int result */
  CALL_SLEEP,      /* sleeps 10 ms (blocking servers only), then echoes */
  CAST_STOP = 50,
  CAST_DEADLK, /* payload: a pid; weir_call to it and to self */
  CAST_GO,     /* clients: start */
  CAST_REPLY,  /* replier: payload weir_from + bytes: weir_reply them */
};

static unsigned char bigpat(uint32_t k) {
  return (unsigned char)(k * 13 + 5);
}

/* ---- the deferred caller's from, handed to the test thread --------------- */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static weir_from g_from;
static int g_have_from;

static void from_put(weir_from f) {
  pthread_mutex_lock(&g_mu);
  g_from = f;
  g_have_from = 1;
  pthread_mutex_unlock(&g_mu);
}

static int from_ready(void) {
  pthread_mutex_lock(&g_mu);
  int r = g_have_from;
  pthread_mutex_unlock(&g_mu);
  return r;
}

/* Waits for a deferred call's from and takes it. */
static weir_from from_take(void) {
  WAIT_UNTIL(from_ready(), TEST_LIVENESS_MS);
  pthread_mutex_lock(&g_mu);
  weir_from f = g_from;
  g_have_from = 0;
  pthread_mutex_unlock(&g_mu);
  return f;
}

/* ---- the server ------------------------------------------------------------
 */
static atomic_int deadlk_rc_other, deadlk_rc_self, deadlk_done;

static int srv_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int srv_call(weir_ctx *cx, void *state, const weir_msg *m,
                    weir_from from) {
  (void)state;
  switch (m->tag) {
  case CALL_ECHO:
    CHECK_OK(weir_reply(cx, from, m->data, m->len));
    return WEIR_OK;
  case CALL_BIG: {
    uint32_t n;
    CHECK_EQ_INT(m->len, sizeof n);
    memcpy(&n, m->data, sizeof n);
    unsigned char *b = malloc(n ? n : 1);
    CHECK(b != NULL);
    for (uint32_t k = 0; k < n; k++)
      b[k] = bigpat(k);
    int rc = weir_reply(cx, from, b, n);
    free(b);
    CHECK_OK(rc);
    return WEIR_OK;
  }
  case CALL_DEFER:
    from_put(from);
    return WEIR_OK;
  case CALL_STOP:
    return WEIR_STOP;
  case CALL_CRASH:
    return -3;
  case CALL_DEFER_STOP:
    from_put(from);
    return WEIR_STOP;
  case CALL_FROM:
    CHECK_OK(weir_reply(cx, from, &m->from, sizeof m->from));
    return WEIR_OK;
  case CALL_NESTED: {
    weir_pid target;
    memcpy(&target, m->data, sizeof target);
    char buf[8];
    uint32_t len = sizeof buf;
    int rc =
        weir_call(weir_ctx_rt(cx), target, CALL_ECHO, "n", 1, buf, &len, 1000);
    CHECK_OK(weir_reply(cx, from, &rc, sizeof rc));
    return WEIR_OK;
  }
  case CALL_SLEEP:
    usleep(10000);
    CHECK_OK(weir_reply(cx, from, m->data, m->len));
    return WEIR_OK;
  }
  test_fail(__FILE__, __LINE__, "unexpected call tag %u", m->tag);
}

static int srv_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)state;
  if (m->tag == CAST_STOP) return WEIR_STOP;
  if (m->tag == CAST_DEADLK) {
    weir_pid target;
    memcpy(&target, m->data, sizeof target);
    char buf[8];
    uint32_t len = sizeof buf;
    atomic_store(&deadlk_rc_other, weir_call(weir_ctx_rt(cx), target, CALL_ECHO,
                                             "x", 1, buf, &len, 1000));
    len = sizeof buf;
    atomic_store(&deadlk_rc_self,
                 weir_call(weir_ctx_rt(cx), weir_self(cx), CALL_ECHO, "x", 1,
                           buf, &len, 1000));
    atomic_store(&deadlk_done, 1);
    return WEIR_OK;
  }
  if (m->tag == CAST_REPLY) {
    weir_from f;
    CHECK(m->len >= sizeof f);
    memcpy(&f, m->data, sizeof f);
    CHECK_OK(weir_reply(cx, f, (const char *)m->data + sizeof f,
                        m->len - (uint32_t)sizeof f));
    return WEIR_OK;
  }
  test_fail(__FILE__, __LINE__, "unexpected cast tag %u", m->tag);
}

static const weir_server srv = {
    .name = "callsrv",
    .init = srv_init,
    .handle_call = srv_call,
    .handle_cast = srv_cast,
};

static weir_pid spawn_srv(weir_rt *rt, int blocking) {
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.blocking = blocking;
  weir_pid pid;
  CHECK_OK(weir_spawn(rt, &srv, NULL, &so, &pid));
  return pid;
}

static void stop_srv(weir_rt *rt, test_watcher *w, weir_pid pid) {
  weir_ref ref = test_watch(w, pid);
  CHECK_OK(weir_cast(rt, pid, CAST_STOP, NULL, 0));
  CHECK(test_wait_down(w, ref, TEST_LIVENESS_MS, NULL));
}

/* ---- synchronous calls from the test thread ------------------------------ */

static void test_basic(weir_rt *rt, test_watcher *w) {
  weir_pid s = spawn_srv(rt, 0);
  char buf[64];
  uint32_t len = sizeof buf;
  CHECK_OK(
      weir_call(rt, s, CALL_ECHO, "hello", 5, buf, &len, TEST_LIVENESS_MS));
  CHECK_EQ_INT(len, 5);
  CHECK(memcmp(buf, "hello", 5) == 0);

  /* From a thread, m->from is WEIR_PID_NONE. */
  weir_pid from = test_pid_make(9, 9);
  len = sizeof from;
  CHECK_OK(weir_call(rt, s, CALL_FROM, NULL, 0, &from, &len, TEST_LIVENESS_MS));
  CHECK_EQ_INT(len, sizeof from);
  CHECK(weir_pid_is_none(from));

  /* Empty reply into no buffer. */
  uint32_t n0 = 0;
  len = 0;
  CHECK_OK(
      weir_call(rt, s, CALL_BIG, &n0, sizeof n0, NULL, &len, TEST_LIVENESS_MS));
  CHECK_EQ_INT(len, 0);

  /* Exact fit. */
  uint32_t n = 64;
  len = 64;
  CHECK_OK(
      weir_call(rt, s, CALL_BIG, &n, sizeof n, buf, &len, TEST_LIVENESS_MS));
  CHECK_EQ_INT(len, 64);
  for (uint32_t k = 0; k < 64; k++)
    CHECK_EQ_INT((unsigned char)buf[k], bigpat(k));

  /* A large reply. */
  n = 1u << 20;
  unsigned char *big = malloc(n);
  CHECK(big != NULL);
  len = n;
  CHECK_OK(
      weir_call(rt, s, CALL_BIG, &n, sizeof n, big, &len, TEST_LIVENESS_MS));
  CHECK_EQ_INT(len, n);
  for (uint32_t k = 0; k < n; k++)
    if (big[k] != bigpat(k))
      test_fail(__FILE__, __LINE__, "big reply byte %u corrupted", k);
  free(big);
  stop_srv(rt, w, s);
}

static void test_e2big(weir_rt *rt, test_watcher *w) {
  weir_pid s = spawn_srv(rt, 0);
  unsigned char buf[48];
  memset(buf, 0xA5, sizeof buf);
  uint32_t n = 100, len = 10;
  CHECK_RC(
      weir_call(rt, s, CALL_BIG, &n, sizeof n, buf + 8, &len, TEST_LIVENESS_MS),
      WEIR_E2BIG);
  /* *reply_len holds the reply's full length; the buffer got its head. */
  CHECK_EQ_INT(len, 100);
  for (uint32_t k = 0; k < 10; k++)
    CHECK_EQ_INT(buf[8 + k], bigpat(k));
  for (uint32_t k = 0; k < 8; k++)
    CHECK_EQ_INT(buf[k], 0xA5);
  for (uint32_t k = 18; k < sizeof buf; k++)
    CHECK_EQ_INT(buf[k], 0xA5);

  /* No buffer at all. */
  n = 5;
  len = 0;
  CHECK_RC(
      weir_call(rt, s, CALL_BIG, &n, sizeof n, NULL, &len, TEST_LIVENESS_MS),
      WEIR_E2BIG);
  CHECK_EQ_INT(len, 5);

  /* The server is unaffected. */
  char e[8];
  len = sizeof e;
  CHECK_OK(weir_call(rt, s, CALL_ECHO, "ok", 2, e, &len, TEST_LIVENESS_MS));
  CHECK_EQ_INT(len, 2);
  stop_srv(rt, w, s);
}

typedef struct caller_arg {
  weir_rt *rt;
  weir_pid pid;
  uint32_t tag;
  int timeout;
  int rc;
  char reply[64];
  uint32_t len;
} caller_arg;

static void *caller_thread(void *p) {
  caller_arg *a = p;
  a->len = sizeof a->reply;
  a->rc =
      weir_call(a->rt, a->pid, a->tag, "q", 1, a->reply, &a->len, a->timeout);
  return NULL;
}

static void test_deferred(weir_rt *rt, test_watcher *w) {
  weir_pid s = spawn_srv(rt, 0);

  /* Reply from another thread. */
  caller_arg a = {rt, s, CALL_DEFER, TEST_LIVENESS_MS, 0, {0}, 0};
  pthread_t th;
  CHECK(pthread_create(&th, NULL, caller_thread, &a) == 0);
  weir_from f = from_take();
  CHECK_OK(weir_reply_rt(rt, f, "later", 5));
  pthread_join(th, NULL);
  CHECK_OK(a.rc);
  CHECK_EQ_INT(a.len, 5);
  CHECK(memcmp(a.reply, "later", 5) == 0);
  /* The caller has its reply and has gone: a second reply is discarded. */
  CHECK_RC(weir_reply_rt(rt, f, "again", 5), WEIR_ENOPROC);

  /* Reply from another process (weir_from is a value). */
  weir_pid replier = spawn_srv(rt, 0);
  caller_arg b = {rt, s, CALL_DEFER, TEST_LIVENESS_MS, 0, {0}, 0};
  CHECK(pthread_create(&th, NULL, caller_thread, &b) == 0);
  f = from_take();
  unsigned char msg[sizeof f + 8];
  memcpy(msg, &f, sizeof f);
  memcpy(msg + sizeof f, "via-proc", 8);
  CHECK_OK(weir_cast(rt, replier, CAST_REPLY, msg, sizeof msg));
  pthread_join(th, NULL);
  CHECK_OK(b.rc);
  CHECK_EQ_INT(b.len, 8);
  CHECK(memcmp(b.reply, "via-proc", 8) == 0);

  stop_srv(rt, w, replier);
  stop_srv(rt, w, s);
}

static void test_timeout(weir_rt *rt, test_watcher *w) {
  weir_pid s = spawn_srv(rt, 0);
  char buf[16];
  uint32_t len = sizeof buf;
  uint64_t t0 = test_now_ms();
  CHECK_RC(weir_call(rt, s, CALL_DEFER, "q", 1, buf, &len, 100),
           WEIR_ETIMEDOUT);
  /* Not before the timeout (1 ms of clock slack). */
  CHECK(test_now_ms() - t0 >= 99);
  weir_from f = from_take();
  /* The late reply has nobody to go to. */
  CHECK_RC(weir_reply_rt(rt, f, "stale", 5), WEIR_ENOPROC);
  /* And it is not mistaken for the answer to the next call. */
  len = sizeof buf;
  CHECK_OK(
      weir_call(rt, s, CALL_ECHO, "fresh", 5, buf, &len, TEST_LIVENESS_MS));
  CHECK_EQ_INT(len, 5);
  CHECK(memcmp(buf, "fresh", 5) == 0);

  /* A reply racing with the timeout: whatever wins, the next call gets its
     own answer. */
  for (int i = 0; i < 20; i++) {
    caller_arg a = {rt, s, CALL_DEFER, 20 + i, 0, {0}, 0};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, caller_thread, &a) == 0);
    f = from_take();
    test_sleep_ms((unsigned)(15 + i));
    int rc = weir_reply_rt(rt, f, "race", 4);
    pthread_join(th, NULL);
    CHECK_MSG(a.rc == WEIR_OK || a.rc == WEIR_ETIMEDOUT, "rc %d", a.rc);
    if (a.rc == WEIR_OK) {
      CHECK_OK(rc);
      CHECK_EQ_INT(a.len, 4);
      CHECK(memcmp(a.reply, "race", 4) == 0);
    }
    CHECK_MSG(rc == WEIR_OK || rc == WEIR_ENOPROC, "reply rc %d", rc);
    char tag[16];
    snprintf(tag, sizeof tag, "n%d", i);
    len = sizeof buf;
    CHECK_OK(weir_call(rt, s, CALL_ECHO, tag, (uint32_t)strlen(tag), buf, &len,
                       TEST_LIVENESS_MS));
    CHECK_EQ_INT(len, strlen(tag));
    CHECK(memcmp(buf, tag, len) == 0);
  }
  stop_srv(rt, w, s);
}

static void test_server_ends(weir_rt *rt, test_watcher *w) {
  static const uint32_t tags[] = {CALL_STOP, CALL_CRASH, CALL_DEFER_STOP};
  static const int reasons[] = {WEIR_REASON_NORMAL, -3, WEIR_REASON_NORMAL};
  for (int i = 0; i < 3; i++) {
    weir_pid s = spawn_srv(rt, 0);
    weir_ref ref = test_watch(w, s);
    char buf[8];
    uint32_t len = sizeof buf;
    CHECK_RC(weir_call(rt, s, tags[i], "q", 1, buf, &len, TEST_LIVENESS_MS),
             WEIR_ENOPROC);
    int reason = 99;
    CHECK(test_wait_down(w, ref, TEST_LIVENESS_MS, &reason));
    CHECK_EQ_INT(reason, reasons[i]);
    if (tags[i] == CALL_DEFER_STOP) {
      weir_from f = from_take();
      CHECK_RC(weir_reply_rt(rt, f, "x", 1), WEIR_ENOPROC);
    }
    /* A stale pid: ENOPROC at once. */
    len = sizeof buf;
    CHECK_RC(weir_call(rt, s, CALL_ECHO, "q", 1, buf, &len, TEST_LIVENESS_MS),
             WEIR_ENOPROC);
  }

  /* Killed by an exit signal while the caller waits. */
  weir_pid s = spawn_srv(rt, 0);
  caller_arg a = {rt, s, CALL_DEFER, TEST_LIVENESS_MS, 0, {0}, 0};
  pthread_t th;
  CHECK(pthread_create(&th, NULL, caller_thread, &a) == 0);
  weir_from f = from_take();
  CHECK_OK(weir_exit(rt, s, -9));
  pthread_join(th, NULL);
  CHECK_RC(a.rc, WEIR_ENOPROC);
  CHECK_RC(weir_reply_rt(rt, f, "x", 1), WEIR_ENOPROC);
}

static void test_edeadlk(weir_rt *rt, test_watcher *w) {
  weir_pid s = spawn_srv(rt, 0), t = spawn_srv(rt, 0);
  CHECK_OK(weir_cast(rt, s, CAST_DEADLK, &t, sizeof t));
  WAIT_UNTIL(atomic_load(&deadlk_done), TEST_LIVENESS_MS);
  CHECK_RC(atomic_load(&deadlk_rc_other), WEIR_EDEADLK);
  CHECK_RC(atomic_load(&deadlk_rc_self), WEIR_EDEADLK);

  /* From handle_call too: the nested call fails, the outer one works. */
  int rc = 0;
  uint32_t len = sizeof rc;
  CHECK_OK(
      weir_call(rt, s, CALL_NESTED, &t, sizeof t, &rc, &len, TEST_LIVENESS_MS));
  CHECK_EQ_INT(len, sizeof rc);
  CHECK_RC(rc, WEIR_EDEADLK);
  stop_srv(rt, w, s);
  stop_srv(rt, w, t);
}

/* ---- a blocking process calls ----------------------------------------------
 */

typedef struct bclient {
  weir_pid server;
  int rc_echo, rc_from, rc_slow;
  char reply[16];
  uint32_t len;
  weir_pid seen_from;
  weir_pid self;
  atomic_int done;
} bclient;

static int bclient_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  bclient *c = state;
  weir_rt *rt = weir_ctx_rt(cx);
  if (m->tag == CAST_STOP) return WEIR_STOP;
  c->self = weir_self(cx);
  c->len = sizeof c->reply;
  c->rc_echo = weir_call(rt, c->server, CALL_ECHO, "blk", 3, c->reply, &c->len,
                         TEST_LIVENESS_MS);
  uint32_t len = sizeof c->seen_from;
  c->rc_from = weir_call(rt, c->server, CALL_FROM, NULL, 0, &c->seen_from, &len,
                         TEST_LIVENESS_MS);
  char tmp[4];
  len = sizeof tmp;
  c->rc_slow = weir_call(rt, c->server, CALL_DEFER, "q", 1, tmp, &len, 50);
  atomic_store(&c->done, 1);
  return WEIR_OK;
}

static const weir_server bclient_srv = {
    .name = "bclient",
    .init = srv_init,
    .handle_cast = bclient_cast,
};

static void test_blocking_caller(weir_rt *rt, test_watcher *w) {
  weir_pid s = spawn_srv(rt, 0);
  bclient c;
  memset(&c, 0, sizeof c);
  c.server = s;
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.blocking = 1;
  weir_pid cp;
  CHECK_OK(weir_spawn(rt, &bclient_srv, &c, &so, &cp));
  CHECK_OK(weir_cast(rt, cp, CAST_GO, NULL, 0));
  WAIT_UNTIL(atomic_load(&c.done), TEST_LIVENESS_MS);
  CHECK_OK(c.rc_echo);
  CHECK_EQ_INT(c.len, 3);
  CHECK(memcmp(c.reply, "blk", 3) == 0);
  CHECK_OK(c.rc_from);
  CHECK_EQ_U64(c.seen_from.id, cp.id);
  CHECK_EQ_U64(c.self.id, cp.id);
  CHECK_RC(c.rc_slow, WEIR_ETIMEDOUT);
  weir_from f = from_take();
  (void)f; /* the late reply is never sent; the caller moved on */
  stop_srv(rt, w, cp);
  stop_srv(rt, w, s);

  /* A blocking server may block in handle_call. */
  weir_pid bs = spawn_srv(rt, 1);
  for (int i = 0; i < 5; i++) {
    char buf[8];
    uint32_t len = sizeof buf;
    CHECK_OK(
        weir_call(rt, bs, CALL_SLEEP, "zz", 2, buf, &len, TEST_LIVENESS_MS));
    CHECK_EQ_INT(len, 2);
  }
  stop_srv(rt, w, bs);
}

/* ---- many threads call one server ------------------------------------------
 */

typedef struct mc_arg {
  weir_rt *rt;
  weir_pid pid;
  uint32_t id;
  int n;
} mc_arg;

static void *mc_thread(void *p) {
  mc_arg *a = p;
  for (int i = 0; i < a->n; i++) {
    uint32_t req[2] = {a->id, (uint32_t)i}, rep[2] = {0, 0};
    uint32_t len = sizeof rep;
    CHECK_OK(weir_call(a->rt, a->pid, CALL_ECHO, req, sizeof req, rep, &len,
                       TEST_LIVENESS_MS));
    CHECK_EQ_INT(len, sizeof rep);
    CHECK_EQ_INT(rep[0], a->id);
    CHECK_EQ_INT(rep[1], i);
  }
  return NULL;
}

static void test_concurrent_calls(weir_rt *rt, test_watcher *w) {
  weir_pid s = spawn_srv(rt, 0);
  pthread_t th[8];
  mc_arg a[8];
  for (uint32_t i = 0; i < 8; i++) {
    a[i] = (mc_arg){rt, s, i, (int)test_scaled(2000)};
    CHECK(pthread_create(&th[i], NULL, mc_thread, &a[i]) == 0);
  }
  for (int i = 0; i < 8; i++)
    pthread_join(th[i], NULL);
  stop_srv(rt, w, s);
}

/* ---- weir_call_async ---------------------------------------------------- */

#define NASYNC 10

typedef struct aevent {
  uint32_t tag;
  weir_ref ref;
  weir_pid from;
  uint32_t len;
  char data[16];
} aevent;

typedef struct aclient {
  pthread_mutex_t mu;
  weir_pid echo, deferer, stopper;
  weir_ref refs[NASYNC];
  weir_ref ref_timeout, ref_down, ref_stale;
  int rc_stale;
  aevent ev[64];
  int nev;
  atomic_int issued;
} aclient;

static int aclient_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  aclient *c = state;
  if (m->tag == CAST_STOP) return WEIR_STOP;
  CHECK_EQ_INT(m->tag, CAST_GO);
  pthread_mutex_lock(&c->mu);
  for (int i = 0; i < NASYNC; i++) {
    char req[16];
    int n = snprintf(req, sizeof req, "req-%d", i);
    /* A timeout that does not fire: after the reply, no TIMEOUT follows. */
    CHECK_OK(weir_call_async(cx, c->echo, CALL_ECHO, req, (uint32_t)n, 1000,
                             &c->refs[i]));
    CHECK(c->refs[i] != 0);
  }
  CHECK_OK(
      weir_call_async(cx, c->deferer, CALL_DEFER, "d", 1, 50, &c->ref_timeout));
  CHECK_OK(weir_call_async(cx, c->stopper, CALL_CRASH, "s", 1, TEST_LIVENESS_MS,
                           &c->ref_down));
  /* A pid that has ended: either refused at once, or a DOWN with the ref. */
  c->rc_stale = weir_call_async(cx, test_pid_make(1048575u, 7), CALL_ECHO, "x",
                                1, TEST_LIVENESS_MS, &c->ref_stale);
  pthread_mutex_unlock(&c->mu);
  atomic_store(&c->issued, 1);
  return WEIR_OK;
}

static int aclient_info(weir_ctx *cx, void *state, const weir_msg *m) {
  aclient *c = state;
  (void)cx;
  pthread_mutex_lock(&c->mu);
  CHECK(c->nev < 64);
  aevent *e = &c->ev[c->nev++];
  e->tag = m->tag;
  e->ref = m->ref;
  e->from = m->from;
  e->len = m->len;
  memcpy(e->data, m->data, m->len < 16 ? m->len : 16);
  pthread_mutex_unlock(&c->mu);
  return WEIR_OK;
}

static const weir_server aclient_srv = {
    .name = "aclient",
    .init = srv_init,
    .handle_cast = aclient_cast,
    .handle_info = aclient_info,
};

static int aclient_nev(aclient *c) {
  pthread_mutex_lock(&c->mu);
  int n = c->nev;
  pthread_mutex_unlock(&c->mu);
  return n;
}

static const aevent *find_ev(aclient *c, weir_ref ref) {
  const aevent *found = NULL;
  for (int i = 0; i < c->nev; i++)
    if (c->ev[i].ref == ref) {
      CHECK_MSG(found == NULL, "two messages for ref %llu",
                (unsigned long long)ref);
      found = &c->ev[i];
    }
  return found;
}

static void test_async(weir_rt *rt, test_watcher *w) {
  aclient c;
  memset(&c, 0, sizeof c);
  pthread_mutex_init(&c.mu, NULL);
  c.echo = spawn_srv(rt, 0);
  c.deferer = spawn_srv(rt, 0);
  c.stopper = spawn_srv(rt, 0);
  weir_pid cp;
  CHECK_OK(weir_spawn(rt, &aclient_srv, &c, NULL, &cp));
  CHECK_OK(weir_cast(rt, cp, CAST_GO, NULL, 0));
  WAIT_UNTIL(atomic_load(&c.issued), TEST_LIVENESS_MS);
  int want = NASYNC + 2 + (c.rc_stale == WEIR_OK ? 1 : 0);
  if (c.rc_stale != WEIR_OK) CHECK_RC(c.rc_stale, WEIR_ENOPROC);
  WAIT_UNTIL(aclient_nev(&c) >= want, TEST_LIVENESS_MS);

  /* The deferred call has timed out; its late reply must not arrive. */
  weir_from f = from_take();
  int rc = weir_reply_rt(rt, f, "late", 4);
  CHECK_MSG(rc == WEIR_OK || rc == WEIR_ENOPROC, "rc %d", rc);
  /* Past the echo calls' 1 s timeouts: nothing more may arrive. */
  test_sleep_ms(1200);

  pthread_mutex_lock(&c.mu);
  CHECK_EQ_INT(c.nev, want);
  for (int i = 0; i < NASYNC; i++) {
    for (int j = 0; j < i; j++)
      CHECK(c.refs[i] != c.refs[j]);
    const aevent *e = find_ev(&c, c.refs[i]);
    CHECK(e != NULL);
    CHECK_EQ_U64(e->tag, WEIR_TAG_REPLY);
    char req[16];
    int n = snprintf(req, sizeof req, "req-%d", i);
    CHECK_EQ_INT(e->len, n);
    CHECK(memcmp(e->data, req, (size_t)n) == 0);
  }
  const aevent *e = find_ev(&c, c.ref_timeout);
  CHECK(e != NULL);
  CHECK_EQ_U64(e->tag, WEIR_TAG_TIMEOUT);
  e = find_ev(&c, c.ref_down);
  CHECK(e != NULL);
  CHECK_EQ_U64(e->tag, WEIR_TAG_DOWN);
  CHECK_EQ_U64(e->from.id, c.stopper.id);
  int32_t reason;
  CHECK_EQ_INT(e->len, sizeof reason);
  memcpy(&reason, e->data, sizeof reason);
  CHECK_EQ_INT(reason, -3);
  if (c.rc_stale == WEIR_OK) {
    e = find_ev(&c, c.ref_stale);
    CHECK(e != NULL);
    CHECK_EQ_U64(e->tag, WEIR_TAG_DOWN);
    memcpy(&reason, e->data, sizeof reason);
    CHECK_EQ_INT(reason, WEIR_REASON_NOPROC);
  }
  pthread_mutex_unlock(&c.mu);

  stop_srv(rt, w, cp);
  stop_srv(rt, w, c.echo);
  stop_srv(rt, w, c.deferer);
}

static void test_stale_call(weir_rt *rt) {
  char buf[8];
  uint32_t len = sizeof buf;
  CHECK_RC(weir_call(rt, test_pid_make(1048575u, 3), CALL_ECHO, "x", 1, buf,
                     &len, TEST_LIVENESS_MS),
           WEIR_ENOPROC);
}

int main(void) {
  test_seed();
  weir_rt *rt = test_rt_start(2);
  test_watcher *w = test_watcher_start(rt);
  test_basic(rt, w);
  test_e2big(rt, w);
  test_deferred(rt, w);
  test_timeout(rt, w);
  test_server_ends(rt, w);
  test_edeadlk(rt, w);
  test_blocking_caller(rt, w);
  test_concurrent_calls(rt, w);
  test_async(rt, w);
  test_stale_call(rt);
  test_rt_stop(rt);
  test_watcher_free(w);
  test_log("test_call: ok");
  return 0;
}
