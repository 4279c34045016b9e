/*
 * test_aggregator_nats_harness.c: the NATS cluster harness (agg_nats.h)
 * does what the cluster tests rely on: three servers come up and elect a
 * meta leader; a server can be paused and resumed, killed and restarted;
 * the leader of a stream is found from the monitoring endpoint, and after
 * it is killed the survivors elect another. Prints the timings (how long a
 * leader kill stops publishing is a figure the cluster test compares with).
 *
 * With libnats (HAVE_LIBNATS) a real R3 stream is created and published to
 * around the kills: every publish acknowledged must be in the stream at the
 * end. Without it the meta leader is killed instead of a stream leader.
 * Exit 77 (skipped) only when there is no nats-server.
 */
#include "agg_nats.h"
#include "agg_testlib.h"

#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#ifdef HAVE_LIBNATS
#include <nats/nats.h>
#endif

static agg_nats nats;

static void check_pause_resume(void) {
  int leader = agg_nats_wait_ready(&nats, 10000);
  CHECK(leader >= 0);
  int other = (leader + 1) % AGG_NATS_SERVERS;
  agg_nats_pause(&nats, other);
  agg_test_sleep_ms(500);
  CHECK_MSG(agg_nats_wait_ready(&nats, 10000) >= 0,
            "the two unpaused servers lost their meta leader");
  agg_nats_resume(&nats, other);
  double t0 = agg_test_now_ms();
  CHECK_MSG(agg_nats_wait_ready(&nats, 30000) >= 0,
            "the resumed server does not rejoin");
  agg_test_log("pause: %s stopped 0.5 s, the others kept their meta leader; "
               "resumed, all agree again after %.0f ms",
               nats.s[other].name, agg_test_now_ms() - t0);
}

#ifdef HAVE_LIBNATS
static jsCtx *js;
static natsConnection *nc;
static uint64_t acked;

/* One publish with a 1 s wait; 0 when acknowledged. */
static int publish_one(uint64_t n) {
  char subj[32], body[32];
  snprintf(subj, sizeof subj, "harness.%llu", (unsigned long long)(n % 4));
  int len = snprintf(body, sizeof body, "%llu", (unsigned long long)n);
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 1000;
  char id[32];
  snprintf(id, sizeof id, "m%llu", (unsigned long long)n);
  po.MsgId = id; /* a retry after a lost ack is dropped by the server */
  jsPubAck *pa = NULL;
  jsErrCode jerr = 0;
  natsStatus s = js_Publish(&pa, js, subj, body, len, &po, &jerr);
  jsPubAck_Destroy(pa);
  return s == NATS_OK ? 0 : -1;
}

/* Publishes n events, each retried until acknowledged; returns the longest
   wait for one acknowledgement (ms). */
static double publish_n(int n) {
  double worst = 0;
  for (int i = 0; i < n; i++) {
    double t0 = agg_test_now_ms();
    while (publish_one(acked) != 0) {
      CHECK_MSG(agg_test_now_ms() - t0 < 60000,
                "no publish acknowledged for 60 s");
      agg_test_sleep_ms(20);
    }
    acked++;
    double w = agg_test_now_ms() - t0;
    if (w > worst) worst = w;
  }
  return worst;
}

static void stream_leader_kill(void) {
  natsOptions *opts;
  CHECK(natsOptions_Create(&opts) == NATS_OK);
  /* natsOptions_SetURL takes one URL: a comma list is SetServers' job. */
  const char *servers[AGG_NATS_SERVERS];
  char urls[AGG_NATS_SERVERS][64];
  for (int i = 0; i < AGG_NATS_SERVERS; i++) {
    snprintf(urls[i], sizeof urls[i], "nats://127.0.0.1:%u", nats.s[i].port);
    servers[i] = urls[i];
  }
  CHECK(natsOptions_SetServers(opts, servers, AGG_NATS_SERVERS) == NATS_OK);
  CHECK(natsOptions_SetMaxReconnect(opts, -1) == NATS_OK);
  CHECK(natsOptions_SetReconnectWait(opts, 100) == NATS_OK);
  natsStatus s = natsConnection_Connect(&nc, opts);
  CHECK_MSG(s == NATS_OK, "connect %s: %s", nats.urls, natsStatus_GetText(s));
  natsOptions_Destroy(opts);
  CHECK(natsConnection_JetStream(&js, nc, NULL) == NATS_OK);
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char *subjects[] = {"harness.>"};
  cfg.Name = "HARNESS";
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Replicas = 3;
  cfg.Storage = js_FileStorage;
  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  double t0 = agg_test_now_ms();
  s = js_AddStream(&si, js, &cfg, NULL, &jerr);
  CHECK_MSG(s == NATS_OK, "js_AddStream: %s (%d)", natsStatus_GetText(s),
            (int)jerr);
  jsStreamInfo_Destroy(si);
  int leader = agg_nats_wait_stream_leader(&nats, "HARNESS", -1, 10000);
  CHECK_MSG(leader >= 0, "no leader for the new stream in /jsz");
  agg_test_log("stream HARNESS (R3) created, leader %s in /jsz after %.0f ms",
               nats.s[leader].name, agg_test_now_ms() - t0);
  t0 = agg_test_now_ms();
  publish_n(1000);
  agg_test_log("1000 sync publishes in %.0f ms", agg_test_now_ms() - t0);

  /* Publishing goes on from the moment of the kill: the first
     acknowledgement after it measures the pause a publisher sees. */
  t0 = agg_test_now_ms();
  agg_nats_kill(&nats, leader);
  publish_n(1);
  double resumed = agg_test_now_ms() - t0;
  int next = agg_nats_wait_stream_leader(&nats, "HARNESS", leader, 30000);
  CHECK_MSG(next >= 0, "no new stream leader 30 s after killing %s",
            nats.s[leader].name);
  double worst = publish_n(500);
  agg_test_log("SIGKILL of stream leader %s: publishing paused %.0f ms; %s "
               "leads (in /jsz); 500 more publishes, the slowest %.0f ms",
               nats.s[leader].name, resumed, nats.s[next].name, worst);

  t0 = agg_test_now_ms();
  agg_nats_restart(&nats, leader);
  CHECK(agg_nats_wait_ready(&nats, 30000) >= 0);
  int cur = 0;
  while (agg_test_now_ms() - t0 < 30000 &&
         (cur = agg_nats_replica_current(&nats, "HARNESS", leader)) != 1)
    agg_test_sleep_ms(50);
  CHECK_MSG(cur == 1, "restarted %s did not catch up within 30 s",
            nats.s[leader].name);
  agg_test_log("%s restarted: its replica current (lag 0) after %.0f ms",
               nats.s[leader].name, agg_test_now_ms() - t0);

  /* Nothing acknowledged was lost, nothing duplicated. */
  s = js_GetStreamInfo(&si, js, "HARNESS", NULL, &jerr);
  CHECK_MSG(s == NATS_OK, "js_GetStreamInfo: %s", natsStatus_GetText(s));
  CHECK_EQ(si->State.Msgs, acked);
  jsStreamInfo_Destroy(si);
  agg_test_log("stream holds %llu messages: every acknowledged publish, "
               "once",
               (unsigned long long)acked);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
}
#endif

static void meta_leader_kill(void) {
  int leader = agg_nats_wait_ready(&nats, 10000);
  CHECK(leader >= 0);
  double t0 = agg_test_now_ms();
  agg_nats_kill(&nats, leader);
  int next = agg_nats_wait_ready(&nats, 30000);
  CHECK_MSG(next >= 0 && next != leader, "no new meta leader after 30 s");
  agg_test_log("SIGKILL of meta leader %s: %s leads after %.0f ms",
               nats.s[leader].name, nats.s[next].name, agg_test_now_ms() - t0);
  t0 = agg_test_now_ms();
  agg_nats_restart(&nats, leader);
  CHECK(agg_nats_wait_ready(&nats, 30000) >= 0);
  agg_test_log("%s restarted: all three agree on the meta leader after "
               "%.0f ms",
               nats.s[leader].name, agg_test_now_ms() - t0);
}

int main(void) {
  if (agg_nats_find(&nats) != 0) {
    printf("no nats-server (install nats-server, or set NATS_SERVER): "
           "skipped\n");
    return 77;
  }
  agg_nats_setup(&nats);
  check_pause_resume();
#ifdef HAVE_LIBNATS
  stream_leader_kill();
#else
  agg_test_log("built without libnats: the meta leader stands in for a "
               "stream leader");
#endif
  meta_leader_kill();
  /* A paused server is killed by teardown too (SIGKILL works on it). */
  agg_nats_pause(&nats, 0);
  agg_nats_teardown(&nats);
  for (int i = 0; i < AGG_NATS_SERVERS; i++)
    CHECK(atomic_load(&nats.s[i].proc.pid) == 0);
#ifdef HAVE_LIBNATS
  nats_Close();
#endif
  return 0;
}
