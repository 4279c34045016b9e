/*
 * test_aggregator_parse.c: the two pure parsers of outside input.
 *
 * Table-driven cases for agg_args_parse and agg_event_parse (each error must
 * say why), the packed message round trip, then a seeded random mutation
 * run over both parsers (the in-tree stand-in for the libFuzzer targets in
 * fuzz/, which need clang): no crash, and every failure comes with a reason.
 * Prints its seed; WEIR_SEED=N replays a run.
 */
#include "agg_testlib.h"
#include "args.h"
#include "event.h"

#include <stdint.h>
#include <time.h>

static int parse_argv(const char *line, agg_args *a, char *err, size_t n) {
  char buf[512], *argv[32];
  int argc = 0;
  snprintf(buf, sizeof buf, "weir-aggregator %s", line);
  for (char *t = strtok(buf, " "); t && argc < 31; t = strtok(NULL, " "))
    argv[argc++] = t;
  argv[argc] = NULL;
  return agg_args_parse(argc, argv, a, err, n);
}

static void args_cases(void) {
  agg_args a;
  char err[256];
  CHECK(parse_argv("serve", &a, err, sizeof err) == 0);
  CHECK_EQ(a.cmd, AGG_CMD_SERVE);
  CHECK_EQ(a.serve.port, 8080);
  CHECK_EQ(a.serve.mode, AGG_PARTITIONED);
  CHECK(parse_argv("serve --listen 0.0.0.0:9000 --db sqlite:/tmp/x.db --mode "
                   "singleton --partitions 16 --work-ms 5 --queue-limit 100 "
                   "--batch 32 --node n1",
                   &a, err, sizeof err) == 0);
  CHECK(!strcmp(a.serve.host, "0.0.0.0") && a.serve.port == 9000);
  CHECK(a.serve.mode == AGG_SINGLETON && a.serve.partitions == 16);
  CHECK(a.serve.work_ms == 5 && a.serve.queue_limit == 100);
  CHECK(a.serve.batch == 32 && !strcmp(a.serve.node, "n1"));
  CHECK(parse_argv("serve --db=postgresql://u@h:5/db --mode=partitioned", &a,
                   err, sizeof err) == 0);
  CHECK(!strcmp(a.serve.db, "postgresql://u@h:5/db"));
  CHECK(parse_argv("load --url http://127.0.0.1:8080 --rate 2.5 --secs 3 "
                   "--users 7 --batch 100 --conns 3 --json",
                   &a, err, sizeof err) == 0);
  CHECK(a.load.rate == 2.5 && a.load.secs == 3 && a.load.users == 7);
  CHECK(a.load.batch == 100 && a.load.conns == 3 && a.load.json);
  CHECK(parse_argv("demo --out d --secs 2", &a, err, sizeof err) == 0);
  CHECK(!strcmp(a.demo.out, "d") && a.demo.secs == 2);
  CHECK(parse_argv("serve --help", &a, err, sizeof err) == 0 && a.help);
  struct {
    const char *line, *want;
  } bad[] = {
      {"", "no command"},
      {"frobnicate", "unknown command"},
      {"serve --partitions 0", "--partitions"},
      {"serve --partitions 8x", "--partitions"},
      {"serve --partitions -1", "--partitions"},
      {"serve --work-ms 99999999999999999999", "--work-ms"},
      {"serve --listen 127.0.0.1", "--listen"},
      {"serve --listen 300.0.0.1:80", "--listen"},
      {"serve --listen 127.0.0.1:65536", "--listen"},
      {"serve --db mysql://x", "--db"},
      {"serve --mode fast", "--mode"},
      {"serve --batch", "needs a value"},
      {"serve --bogus 1", "unknown option"},
      {"serve extra", "unexpected argument"},
      {"load", "--url is required"},
      {"load --url ftp://x:1", "--url"},
      {"load --url http://h:1 --rate -3", "--rate"},
      {"load --url http://h:1 --rate 1e5", "--rate"},
      {"demo --secs 0", "--secs"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    CHECK_MSG(parse_argv(bad[i].line, &a, err, sizeof err) == -1,
              "'%s' should fail", bad[i].line);
    CHECK_MSG(strstr(err, bad[i].want) != NULL,
              "'%s': error '%s' should mention '%s'", bad[i].line, err,
              bad[i].want);
  }
}

static void event_cases(void) {
  agg_event ev;
  char err[256];
  const char *good =
      "{\"user_id\": 42, \"seq\": 7, \"event\": \"click\", "
      "\"data\": {\"page\": \"/x\", \"n\": [1, 2]}, \"extra\": 1}";
  CHECK(agg_event_parse(good, strlen(good), &ev, err, sizeof err) == 0);
  CHECK(ev.user_is_int && ev.user_int == 42 && !strcmp(ev.user, "42"));
  CHECK(ev.seq == 7 && !strcmp(ev.event, "click"));
  CHECK(ev.data && !strcmp(ev.data, "{\"page\":\"/x\",\"n\":[1,2]}"));
  /* Round trip through the packed form. */
  char buf[512];
  size_t n = agg_event_pack(&ev, 123456, 0xabcdef, buf, sizeof buf);
  CHECK(n == agg_event_packed_size(&ev));
  agg_row r;
  CHECK(agg_event_unpack(buf, n, &r) == 0);
  CHECK(r.seq == 7 && r.received_us == 123456 && r.user_len == 2);
  CHECK(r.ack == 0xabcdef);
  CHECK(!memcmp(r.user, "42", 2) && !memcmp(r.event, "click", 5));
  CHECK(r.data_len == ev.data_len && !memcmp(r.data, ev.data, r.data_len));
  CHECK(agg_event_unpack(buf, n - 1, &r) == -1);
  CHECK(agg_event_pack(&ev, 0, 0, buf, n - 1) == 0);
  agg_event_clear(&ev);

  const char *s1 = "{\"user_id\":\"u42\",\"seq\":0,\"event\":\"x\"}";
  CHECK(agg_event_parse(s1, strlen(s1), &ev, err, sizeof err) == 0);
  CHECK(!ev.user_is_int && !strcmp(ev.user, "u42") && ev.data == NULL);
  agg_event_clear(&ev);
  const char *s2 =
      "{\"user_id\":\"42\",\"seq\":1,\"event\":\"x\",\"data\":null}";
  CHECK(agg_event_parse(s2, strlen(s2), &ev, err, sizeof err) == 0);
  CHECK(ev.user_is_int && ev.user_int == 42); /* same user as 42 */
  agg_event_clear(&ev);
  const char *s3 = "{\"user_id\":\"042\",\"seq\":1,\"event\":\"x\"}";
  CHECK(agg_event_parse(s3, strlen(s3), &ev, err, sizeof err) == 0);
  CHECK(!ev.user_is_int); /* not canonical: a string id */
  agg_event_clear(&ev);

  struct {
    const char *body, *want;
  } bad[] = {
      {"", "empty body"},
      {"{", "invalid JSON"},
      {"[1]", "must be a JSON object"},
      {"{\"seq\":1,\"event\":\"x\"}", "missing field \"user_id\""},
      {"{\"user_id\":-1,\"seq\":1,\"event\":\"x\"}", "negative"},
      {"{\"user_id\":1.5,\"seq\":1,\"event\":\"x\"}", "integer or a string"},
      {"{\"user_id\":\"\",\"seq\":1,\"event\":\"x\"}", "empty"},
      {"{\"user_id\":\"a\\u0001\",\"seq\":1,\"event\":\"x\"}", "control"},
      {"{\"user_id\":1,\"event\":\"x\"}", "missing field \"seq\""},
      {"{\"user_id\":1,\"seq\":\"7\",\"event\":\"x\"}", "\"seq\" must be"},
      {"{\"user_id\":1,\"seq\":-7,\"event\":\"x\"}", "\"seq\" must be"},
      {"{\"user_id\":1,\"seq\":7}", "missing field \"event\""},
      {"{\"user_id\":1,\"seq\":7,\"event\":\"\"}", "\"event\" must be 1.."},
      {"{\"user_id\":1,\"seq\":7,\"event\":3}", "\"event\" must be a string"},
      {"{\"user_id\":1,\"seq\":7,\"event\":\"x\",\"data\":[1]}",
       "\"data\" must be a JSON object"},
      {"{\"user_id\":1,\"user_id\":2,\"seq\":7,\"event\":\"x\"}",
       "invalid JSON"},
      {"{\"user_id\":1,\"seq\":99999999999999999999,\"event\":\"x\"}",
       "invalid JSON"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    CHECK_MSG(agg_event_parse(bad[i].body, strlen(bad[i].body), &ev, err,
                              sizeof err) == -1,
              "'%s' should fail", bad[i].body);
    CHECK_MSG(strstr(err, bad[i].want) != NULL,
              "'%s': error '%s' should mention '%s'", bad[i].body, err,
              bad[i].want);
  }
  char longid[200];
  snprintf(longid, sizeof longid,
           "{\"user_id\":\"%070d\",\"seq\":1,\"event\":\"x\"}", 1);
  CHECK(agg_event_parse(longid, strlen(longid), &ev, err, sizeof err) == -1);
  CHECK(strstr(err, "longer than") != NULL);
}

static uint64_t rng;
static uint32_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)rng;
}

/* Mutates valid inputs at random and feeds both parsers. */
static void smoke_fuzz(unsigned iters) {
  const char *seeds[] = {
      "{\"user_id\": 42, \"seq\": 7, \"event\": \"click\", \"data\": {\"a\": "
      "[1, {\"b\": null}], \"c\": \"\\u00e9\"}}",
      "{\"user_id\":\"u1\",\"seq\":0,\"event\":\"view\"}",
  };
  const char *argl[] = {"serve",
                        "--listen",
                        "127.0.0.1:0",
                        "--partitions",
                        "8",
                        "--mode",
                        "singleton",
                        "--db",
                        "sqlite:x",
                        "load",
                        "--url",
                        "http://h:1",
                        "--rate",
                        "1.5",
                        "demo",
                        "--out",
                        "=",
                        "--batch=3",
                        ""};
  for (unsigned it = 0; it < iters; it++) {
    char buf[256];
    const char *s = seeds[rnd() % 2];
    size_t n = strlen(s);
    memcpy(buf, s, n);
    for (unsigned m = rnd() % 6; m > 0; m--) {
      size_t at = rnd() % n;
      switch (rnd() % 3) {
      case 0:
        buf[at] = (char)rnd();
        break;
      case 1:
        if (n > 1) memmove(buf + at, buf + at + 1, n-- - at - 1);
        break;
      default:
        if (n < sizeof buf - 1) {
          memmove(buf + at + 1, buf + at, n++ - at);
          buf[at] = "{}[]\":,0-9ae\\u"[rnd() % 15];
        }
      }
    }
    agg_event ev;
    char err[256] = "";
    if (agg_event_parse(buf, n, &ev, err, sizeof err) == 0) {
      CHECK(ev.user_len >= 1 && ev.user_len <= AGG_USER_MAX);
      CHECK(ev.event_len >= 1 && ev.event_len <= AGG_EVENT_MAX);
      CHECK(ev.seq >= 0);
      agg_event_clear(&ev);
    } else {
      CHECK_MSG(err[0] != '\0', "a failure without a reason");
    }
    char *argv[8];
    int argc = 1 + (int)(rnd() % 7);
    argv[0] = "weir-aggregator";
    for (int i = 1; i < argc; i++)
      argv[i] = (char *)argl[rnd() % (sizeof argl / sizeof argl[0])];
    argv[argc] = NULL;
    agg_args a;
    err[0] = '\0';
    if (agg_args_parse(argc, argv, &a, err, sizeof err) != 0)
      CHECK_MSG(err[0] != '\0', "an argv failure without a reason");
  }
}

int main(void) {
  const char *s = getenv("WEIR_SEED");
  rng = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
  if (!rng) rng = 1;
  printf("seed=%llu\n", (unsigned long long)rng);
  args_cases();
  agg_test_log("args: ok");
  event_cases();
  agg_test_log("event: ok");
  smoke_fuzz(50000);
  agg_test_log("random mutations: ok");
  return 0;
}
