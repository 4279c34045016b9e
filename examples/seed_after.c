/* seed_after.c: the article's Step 2, the fix: a partition supervisor.

   The same aggregator, the same 5 ms of blocking work per event and the
   same 400 events/s as seed_before.c, but started as N copies under a
   partition supervisor and reached with weir_partition_cast keyed by
   user_id (the article's {:via, PartitionSupervisor, {Swarm, user_id}}).
   Every event of one user goes to one partition, in order; each worker
   checks that. The work is a blocking wait, not CPU, so more partitions
   than cores pay off: 8 partitions handle up to 1,600 events/s. (For CPU
   work, leave partitions at 0: one per scheduler, the article's default.)

   The example prints every partition's queue length (weir_process_info),
   the longest queue on the node (weir_proc_count), and checks that the
   queues stay short, that every event was handled, and in per-user order. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <weir.h>

enum { TAG_TRACK = 1, USERS = 50, RATE = 400, SECONDS = 2, WORK_MS = 5 };
enum { PARTITIONS = 8 };

typedef struct event {
  uint32_t user_id;
  uint32_t seq; /* per user */
} event;

/* Per-user state: each user belongs to one partition, so one worker at a
   time touches its entry. */
static uint32_t next_seq[USERS];
static int out_of_order;
static long handled;

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int agg_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int agg_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  event ev;
  (void)cx;
  (void)state;
  if (m->tag != TAG_TRACK || m->len != sizeof ev) return WEIR_OK;
  memcpy(&ev, m->data, sizeof ev);
  sleep_ms(WORK_MS); /* do_heavy_processing(user_id, data) */
  if (ev.user_id >= USERS || ev.seq != next_seq[ev.user_id])
    __atomic_add_fetch(&out_of_order, 1, __ATOMIC_RELAXED);
  else
    next_seq[ev.user_id]++;
  __atomic_add_fetch(&handled, 1, __ATOMIC_RELEASE);
  return WEIR_OK;
}

static const weir_server aggregator = {
    .name = "Analytics.Aggregator", .init = agg_init, .handle_cast = agg_cast};

static uint64_t max_queue(weir_rt *rt, weir_pid swarm, char *line, size_t n) {
  uint64_t mx = 0;
  size_t off = 0;
  int parts = weir_partitions(rt, swarm);
  for (int i = 0; i < parts; i++) {
    weir_pid w;
    weir_proc_info info;
    /* integer keys route by key % partitions: key i is partition i */
    if (weir_partition_whereis(rt, swarm, (uint64_t)i, &w) != WEIR_OK ||
        weir_process_info(rt, w, &info) != WEIR_OK)
      continue;
    if (info.message_queue_len > mx) mx = info.message_queue_len;
    if (off < n)
      off += (size_t)snprintf(line + off, n - off, " %llu",
                              (unsigned long long)info.message_queue_len);
  }
  return mx;
}

int main(void) {
  weir_rt_opts o;
  weir_rt_opts_init(&o);
  o.node_name = "seed-after";
  o.alarm_log = 0;
  weir_rt *rt;
  if (weir_rt_start(&o, &rt) != WEIR_OK) return 1;

  /* {PartitionSupervisor, child_spec: Aggregator.child_spec([]),
      name: Aggregator.PartitionSwarm} */
  weir_partsup_opts po;
  weir_partsup_opts_init(&po);
  po.name = "Aggregator.PartitionSwarm";
  po.child.server = &aggregator;
  po.child.opts.blocking = 1;
  po.partitions = PARTITIONS;
  weir_pid swarm;
  if (weir_partsup_start(rt, &po, &swarm) != WEIR_OK) return 1;

  uint32_t seq[USERS] = {0};
  long sent = 0;
  uint64_t worst = 0;
  const int ticks = SECONDS * 100, per_tick = RATE / 100;
  printf("seed_after: %d partitions, %d events/s offered, %d ms each\n",
         weir_partitions(rt, swarm), RATE, WORK_MS);
  for (int t = 0; t < ticks; t++) {
    for (int k = 0; k < per_tick; k++) {
      uint32_t u = (uint32_t)(sent % USERS);
      event ev = {u, seq[u]++};
      if (weir_partition_cast(rt, swarm, u, TAG_TRACK, &ev, sizeof ev) !=
          WEIR_OK)
        return 1;
      sent++;
    }
    sleep_ms(10);
    if ((t + 1) % 25 == 0) {
      char line[128] = "";
      uint64_t mx = max_queue(rt, swarm, line, sizeof line);
      if (mx > worst) worst = mx;
      printf("  t=%4d ms  sent=%5ld  handled=%5ld  queues:%s\n", (t + 1) * 10,
             sent, __atomic_load_n(&handled, __ATOMIC_ACQUIRE), line);
    }
  }

  weir_proc_sample top[1];
  size_t n = 0;
  if (weir_proc_count(rt, WEIR_ATTR_MESSAGE_QUEUE_LEN, 1, top, &n) != WEIR_OK)
    return 1;
  if (n == 1) {
    char buf[24];
    weir_pid_format(top[0].pid, buf, sizeof buf);
    printf("proc_count(message_queue_len, 1): %s %llu\n", buf,
           (unsigned long long)top[0].value);
  }
  /* The backlog is small: it drains at once. */
  for (int i = 0; i < 300 && __atomic_load_n(&handled, __ATOMIC_ACQUIRE) < sent;
       i++)
    sleep_ms(10);
  long done = __atomic_load_n(&handled, __ATOMIC_ACQUIRE);
  int bad = __atomic_load_n(&out_of_order, __ATOMIC_RELAXED);
  int ok = done == sent && bad == 0 && worst <= 50;
  printf("seed_after: %s: %ld of %ld events handled, %d out of order, "
         "longest queue seen %llu\n",
         ok ? "keeping up" : "UNEXPECTED", done, sent, bad,
         (unsigned long long)worst);
  if (weir_rt_stop(rt, 1000) != WEIR_OK) return 1;
  return ok ? 0 : 1;
}
