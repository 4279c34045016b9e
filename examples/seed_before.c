/* seed_before.c: the article's Step 1, the drowning singleton.

   One registered aggregator process handles every analytics event; each
   event costs 5 ms of blocking work (the article's Process.sleep(5) plus a
   DB insert), so it is a blocking process, and it can do at most 200
   events/s. Events arrive at 400/s through an unbounded cast: the mailbox
   grows by ~200 a second, with no error anywhere. The example prints the
   queue length as it grows (weir_process_info), then asks the node which
   process has the longest queue (weir_proc_count, recon's proc_count), and
   checks that the answer is the aggregator. seed_after.c is the fix. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <weir.h>

enum { TAG_TRACK = 1, USERS = 50, RATE = 400, SECONDS = 2, WORK_MS = 5 };

typedef struct event {
  uint32_t user_id;
  uint32_t seq; /* per user */
} event;

typedef struct agg {
  long handled;
  uint32_t next_seq[USERS];
  int out_of_order;
} agg;

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int agg_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

/* handle_cast({:track, user_id, data}): 5 ms of blocking work per event. */
static int agg_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  agg *a = state;
  event ev;
  (void)cx;
  if (m->tag != TAG_TRACK || m->len != sizeof ev) return WEIR_OK;
  memcpy(&ev, m->data, sizeof ev);
  sleep_ms(WORK_MS); /* Process.sleep(5); Repo.insert!(...) */
  if (ev.user_id >= USERS || ev.seq != a->next_seq[ev.user_id])
    a->out_of_order++;
  else
    a->next_seq[ev.user_id]++;
  __atomic_store_n(&a->handled, a->handled + 1, __ATOMIC_RELEASE);
  return WEIR_OK;
}

static const weir_server aggregator = {
    .name = "Analytics.Aggregator", .init = agg_init, .handle_cast = agg_cast};

int main(void) {
  weir_rt_opts o;
  weir_rt_opts_init(&o);
  o.node_name = "seed-before";
  o.alarm_log = 0; /* this example reports the queue itself */
  weir_rt *rt;
  if (weir_rt_start(&o, &rt) != WEIR_OK) return 1;

  static agg state;
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.name = "aggregator"; /* GenServer.start_link(..., name: __MODULE__) */
  so.blocking = 1;        /* 5 ms of blocking work per event */
  weir_pid pid;
  if (weir_spawn(rt, &aggregator, &state, &so, &pid) != WEIR_OK) return 1;

  /* track_event(user_id, data): GenServer.cast(__MODULE__, ...) */
  uint32_t seq[USERS] = {0};
  long sent = 0;
  uint64_t first_len = 0, mid_len = 0, last_len = 0;
  const int ticks = SECONDS * 100, per_tick = RATE / 100; /* every 10 ms */
  printf("seed_before: one aggregator, %d events/s offered, %d ms each\n", RATE,
         WORK_MS);
  for (int t = 0; t < ticks; t++) {
    for (int k = 0; k < per_tick; k++) {
      uint32_t u = (uint32_t)(sent % USERS);
      event ev = {u, seq[u]++};
      weir_pid to;
      if (weir_whereis(rt, "aggregator", &to) != WEIR_OK ||
          weir_cast(rt, to, TAG_TRACK, &ev, sizeof ev) != WEIR_OK)
        return 1;
      sent++;
    }
    sleep_ms(10);
    if ((t + 1) % 25 == 0) {
      weir_proc_info info;
      if (weir_process_info(rt, pid, &info) != WEIR_OK) return 1;
      printf("  t=%4d ms  sent=%5ld  handled=%5ld  message_queue_len=%5llu\n",
             (t + 1) * 10, sent,
             __atomic_load_n(&state.handled, __ATOMIC_ACQUIRE),
             (unsigned long long)info.message_queue_len);
      if (!first_len) first_len = info.message_queue_len;
      if (t + 1 == ticks / 2) mid_len = info.message_queue_len;
      last_len = info.message_queue_len;
    }
  }

  /* :recon.proc_count(:message_queue_len, 3) */
  weir_proc_sample top[3];
  size_t n = 0;
  if (weir_proc_count(rt, WEIR_ATTR_MESSAGE_QUEUE_LEN, 3, top, &n) != WEIR_OK)
    return 1;
  printf("proc_count(message_queue_len, 3):\n");
  for (size_t i = 0; i < n; i++) {
    weir_proc_info info;
    char buf[24];
    weir_pid_format(top[i].pid, buf, sizeof buf);
    if (weir_process_info(rt, top[i].pid, &info) != WEIR_OK) continue;
    printf("  %-14s %6llu  registered_name=%s current_function=%s\n", buf,
           (unsigned long long)top[i].value,
           info.registered_name[0] ? info.registered_name : "-",
           info.current_function);
  }
  int ok = n >= 1 && weir_pid_eq(top[0].pid, pid) && last_len > mid_len &&
           mid_len > first_len && last_len >= (uint64_t)sent / 4;
  printf("seed_before: %s: the queue grew %llu -> %llu -> %llu while %ld "
         "events were sent\n",
         ok ? "drowning, as expected" : "UNEXPECTED",
         (unsigned long long)first_len, (unsigned long long)mid_len,
         (unsigned long long)last_len, sent);
  /* A short stop: the backlog would take seconds to drain; it is killed. */
  int rc = weir_rt_stop(rt, 100);
  if (rc != WEIR_OK && rc != WEIR_ETIMEDOUT) return 1;
  if (state.out_of_order) return 1;
  return ok ? 0 : 1;
}
