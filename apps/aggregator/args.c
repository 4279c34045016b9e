/*
 * args.c: weir-aggregator's argument parser (see args.h).
 *
 * Options follow the command (`serve --mode singleton`), as `--opt VALUE` or
 * `--opt=VALUE`. Numbers are strict decimal within stated ranges: "8x",
 * "-1", "" and overflows are errors, not zeroes. Validation is done here,
 * before any socket or database is opened, so that a typo is a clear local
 * error and never a half-started service.
 */
#include "args.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(char *err, size_t errn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errn, const char *fmt, ...) {
  if (err && errn) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errn, fmt, ap);
    va_end(ap);
  }
  return -1;
}

const char *agg_usage(agg_cmd cmd) {
  switch (cmd) {
  case AGG_CMD_SERVE:
    return "usage: weir-aggregator serve [options]\n"
           "  --listen HOST:PORT   bind address (default 127.0.0.1:8080; "
           "port 0 = any)\n"
           "  --db URL             sqlite:PATH (default sqlite:aggregator.db)\n"
           "                       or postgresql://USER@HOST:PORT/DB\n"
           "  --mode M             partitioned (default) or singleton\n"
           "  --ack WHEN           stored (default): 202 only once every "
           "accepted event\n"
           "                       of the request is committed (a kill -9 "
           "loses no 202'd\n"
           "                       event); queued: 202 once in a mailbox, so "
           "a kill -9\n"
           "                       loses up to --queue-limit + --batch events "
           "per worker\n"
           "                       (no bound without --queue-limit)\n"
           "  --ack-timeout-ms MS  stored mode: not stored within MS -> 503 "
           "+ Retry-After\n"
           "                       (default 10000; resending is always "
           "safe)\n"
           "  --partitions N       workers in partitioned mode (default: one "
           "per CPU)\n"
           "  --work-ms MS         sleep per event, the seed's Process.sleep "
           "(default 0)\n"
           "  --queue-limit N      bound each worker's mailbox; full -> 503 "
           "(default 0 = unbounded)\n"
           "  --batch N            rows per DB transaction (default 256)\n"
           "  --node NAME          node name; console at "
           "$WEIR_RUN_DIR/NAME.sock\n"
           "  --no-console         no diagnostics console\n"
           "  --max-body BYTES     POST /track body limit (default 65536)\n"
           "  --max-batch-body B   POST /track/batch body limit (default "
           "8388608)\n"
           "  --http-threads N     HTTP threads (default: one per CPU)\n"
           "  --alarm-queue N      long_message_queue alarm at N (default "
           "1000, 0 = off)\n"
           "  --conn-timeout S     close an idle HTTP connection after S "
           "seconds (default 15)\n"
           "  --stream URLS        ingest node: publish each event to the "
           "JetStream stream\n"
           "                       at URLS (nats://H:P,nats://H:P,...); 202 "
           "once the stream\n"
           "                       stored it (replicated); no --db. Stored "
           "by `consume`\n"
           "  --stream-name NAME   stream (default WEIR_EVENTS)\n"
           "  --stream-partitions P  partitions (default 8; every node the "
           "same)\n"
           "  --stream-replicas R  replicas (default 3; 1 for one server)\n"
           "fault injection (to watch recovery; default off):\n"
           "  --fail-every N       a worker crashes on every Nth event it "
           "handles (N >= 2);\n"
           "                       its supervisor restarts it, the event is "
           "retried\n"
           "  --fail-db-every N    every Nth insert transaction fails "
           "(retried)\n";
  case AGG_CMD_CONSUME:
    return "usage: weir-aggregator consume --stream URLS --db "
           "postgresql://... [options]\n"
           "  a consumer node: takes partitions of the stream through leases "
           "(spread over\n"
           "  the live consumer nodes, moved when one dies or joins) and "
           "stores their events\n"
           "  in PostgreSQL with each partition's offset in the same "
           "transaction\n"
           "  --stream URLS        NATS servers, nats://H:P,nats://H:P,...\n"
           "  --db URL             postgresql://USER@HOST:PORT/DB (shared by "
           "the nodes)\n"
           "  --node NAME          this node's unique name, 1..32 of "
           "[A-Za-z0-9_-]\n"
           "                       (default consumer-PID)\n"
           "  --listen HOST:PORT   GET /metrics and /healthz (default "
           "127.0.0.1:0)\n"
           "  --stream-name NAME   stream (default WEIR_EVENTS)\n"
           "  --stream-partitions P  partitions (default 8)\n"
           "  --stream-replicas R  replicas (default 3)\n"
           "  --lease-ttl-ms MS    a lease lives MS unless renewed (default "
           "15000, >= 3000;\n"
           "                       keep it above a Raft election, ~7 s)\n"
           "  --batch N            messages per fetch and transaction "
           "(default 256)\n"
           "  --no-console         no diagnostics console\n";
  case AGG_CMD_LOAD:
    return "usage: weir-aggregator load --url URL [options]\n"
           "  --url URL        http://HOST:PORT of the service\n"
           "  --rate R         events per second (default 1000; 0 = as fast "
           "as possible)\n"
           "  --secs S         duration (default 10)\n"
           "  --users U        distinct user ids (default 100)\n"
           "  --batch N        events per request; N > 1 uses /track/batch "
           "(default 1)\n"
           "  --conns C        connections (default 4)\n"
           "  --json           print the report as JSON\n"
           "  --wait-stored    then wait until the service has stored every "
           "accepted\n"
           "                   event and report the end-to-end rate into the "
           "database\n";
  case AGG_CMD_DEMO:
    return "usage: weir-aggregator demo [options]\n"
           "  --out DIR        where queue.svg, queue.csv and the databases go "
           "(default demo-out)\n"
           "  --secs S         load per phase (default 8)\n"
           "  --rate R         events per second (default 250)\n"
           "  --partitions N   partitioned phase workers (default 8)\n"
           "  --work-ms MS     per-event work (default 5)\n";
  case AGG_CMD_NONE:
  default:
    return "usage: weir-aggregator COMMAND [options]\n"
           "  serve   the analytics service (HTTP -> workers -> database, or "
           "HTTP -> stream)\n"
           "  consume a consumer node: stream partitions -> PostgreSQL\n"
           "  load    a load generator for it\n"
           "  demo    the seed's story: a drowning singleton, then the fix\n"
           "Run `weir-aggregator COMMAND --help` for a command's options.\n";
  }
}

void agg_args_defaults(agg_args *a) {
  memset(a, 0, sizeof *a);
  snprintf(a->serve.host, sizeof a->serve.host, "127.0.0.1");
  a->serve.port = 8080;
  a->serve.db = "sqlite:aggregator.db";
  a->serve.mode = AGG_PARTITIONED;
  a->serve.batch = 256;
  a->serve.ack = AGG_ACK_STORED;
  a->serve.ack_timeout_ms = 10000;
  a->serve.stream_name = "WEIR_EVENTS";
  a->serve.stream_partitions = 8;
  a->serve.stream_replicas = 3;
  a->serve.lease_ttl_ms = 15000;
  a->serve.node = "aggregator";
  a->serve.console = 1;
  a->serve.max_body = 65536;
  a->serve.max_batch_body = 8u << 20;
  a->serve.alarm_queue = 1000;
  a->serve.conn_timeout = 15;
  a->load.rate = 1000;
  a->load.secs = 10;
  a->load.users = 100;
  a->load.batch = 1;
  a->load.conns = 4;
  a->demo.out = "demo-out";
  a->demo.secs = 8;
  a->demo.rate = 250;
  a->demo.partitions = 8;
  a->demo.work_ms = 5;
}

/* A decimal integer in [lo, hi]. */
static int num(const char *s, unsigned long long lo, unsigned long long hi,
               unsigned long long *out) {
  unsigned long long v = 0;
  if (!*s) return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    unsigned d = (unsigned)(*s - '0');
    if (v > (hi - d) / 10) return -1;
    v = v * 10 + d;
  }
  if (v < lo) return -1;
  *out = v;
  return 0;
}

/* A decimal number "I" or "I.F" in [lo, hi] (no exponent, no sign). */
static int real(const char *s, double lo, double hi, double *out) {
  double v = 0, scale = 1;
  int digits = 0, frac = 0;
  for (; *s; s++) {
    if (*s == '.' && !frac) {
      frac = 1;
      continue;
    }
    if (*s < '0' || *s > '9') return -1;
    digits++;
    if (digits > 15) return -1;
    if (frac) {
      scale /= 10;
      v += scale * (*s - '0');
    } else {
      v = v * 10 + (*s - '0');
    }
  }
  if (!digits || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

/* "HOST:PORT" with HOST a dotted IPv4 literal. */
static int listen_addr(const char *s, agg_serve_opts *o) {
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s || (size_t)(colon - s) >= sizeof o->host) return -1;
  size_t hl = (size_t)(colon - s);
  unsigned parts = 0, val = 0, digits = 0;
  for (size_t i = 0; i <= hl; i++) {
    char c = i < hl ? s[i] : '.';
    if (c == '.') {
      if (!digits || val > 255) return -1;
      parts++;
      val = digits = 0;
    } else if (c >= '0' && c <= '9' && digits < 3) {
      val = val * 10 + (unsigned)(c - '0');
      digits++;
    } else {
      return -1;
    }
  }
  if (parts != 4) return -1;
  unsigned long long port;
  if (num(colon + 1, 0, 65535, &port)) return -1;
  memcpy(o->host, s, hl);
  o->host[hl] = '\0';
  o->port = (uint16_t)port;
  return 0;
}

static int db_url(const char *s) {
  if (strncmp(s, "sqlite:", 7) == 0) return s[7] ? 0 : -1;
  if (strncmp(s, "postgresql://", 13) == 0 ||
      strncmp(s, "postgres://", 11) == 0)
    return 0;
  return -1;
}

static int http_url(const char *s) {
  if (strncmp(s, "http://", 7) != 0) return -1;
  s += 7;
  const char *end = s + strcspn(s, "/");
  const char *colon = memchr(s, ':', (size_t)(end - s));
  if (!colon || colon == s) return -1;
  char port[8];
  size_t pl = (size_t)(end - colon - 1);
  if (pl == 0 || pl >= sizeof port) return -1;
  memcpy(port, colon + 1, pl);
  port[pl] = '\0';
  unsigned long long p;
  return num(port, 1, 65535, &p);
}

/* Splits "--opt=VALUE"; *val is NULL when there is no '='. name gets the
   option without the value. */
static void split(const char *arg, char *name, size_t n, const char **val) {
  const char *eq = strchr(arg, '=');
  size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
  if (len >= n) len = n - 1;
  memcpy(name, arg, len);
  name[len] = '\0';
  *val = eq ? eq + 1 : NULL;
}

typedef struct {
  int argc, i;
  char *const *argv;
  char *err;
  size_t errn;
} cursor;

/* The value of option `name`: after '=' or the next argument. */
static int value(cursor *c, const char *name, const char *eqval,
                 const char **out) {
  if (eqval) {
    *out = eqval;
    return 0;
  }
  if (c->i + 1 >= c->argc || !c->argv[c->i + 1])
    return fail(c->err, c->errn, "option %s needs a value", name);
  *out = c->argv[++c->i];
  return 0;
}

#define BAD(what)                                                              \
  fail(c->err, c->errn, "%s: invalid value '%.40s' (%s)", name, v, what)

static int serve_opt(cursor *c, const char *name, const char *eqval,
                     agg_serve_opts *o) {
  const char *v = NULL;
  unsigned long long n;
  if (!strcmp(name, "--no-console")) {
    if (eqval) return fail(c->err, c->errn, "--no-console takes no value");
    o->console = 0;
    return 0;
  }
  if (value(c, name, eqval, &v)) return -1;
  if (!strcmp(name, "--listen")) {
    if (listen_addr(v, o)) return BAD("want IPv4:PORT, e.g. 127.0.0.1:8080");
  } else if (!strcmp(name, "--db")) {
    if (db_url(v)) return BAD("want sqlite:PATH or postgresql://...");
    o->db = v;
  } else if (!strcmp(name, "--mode")) {
    if (!strcmp(v, "partitioned"))
      o->mode = AGG_PARTITIONED;
    else if (!strcmp(v, "singleton"))
      o->mode = AGG_SINGLETON;
    else
      return BAD("partitioned or singleton");
  } else if (!strcmp(name, "--ack")) {
    if (!strcmp(v, "stored"))
      o->ack = AGG_ACK_STORED;
    else if (!strcmp(v, "queued"))
      o->ack = AGG_ACK_QUEUED;
    else
      return BAD("stored or queued");
  } else if (!strcmp(name, "--ack-timeout-ms")) {
    if (num(v, 10, 3600000, &n)) return BAD("10..3600000");
    o->ack_timeout_ms = (unsigned)n;
  } else if (!strcmp(name, "--partitions")) {
    if (num(v, 1, 1024, &n)) return BAD("1..1024");
    o->partitions = (unsigned)n;
  } else if (!strcmp(name, "--work-ms")) {
    if (num(v, 0, 60000, &n)) return BAD("0..60000");
    o->work_ms = (unsigned)n;
  } else if (!strcmp(name, "--queue-limit")) {
    if (num(v, 0, 100000000, &n)) return BAD("0..100000000");
    o->queue_limit = (uint32_t)n;
  } else if (!strcmp(name, "--batch")) {
    if (num(v, 1, 100000, &n)) return BAD("1..100000");
    o->batch = (unsigned)n;
  } else if (!strcmp(name, "--node")) {
    size_t l = strlen(v);
    if (l == 0 || l > 48 ||
        strspn(v, "abcdefghijklmnopqrstuvwxyz"
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "0123456789_-.") != l)
      return BAD("1..48 of [A-Za-z0-9_.-]");
    o->node = v;
  } else if (!strcmp(name, "--max-body")) {
    if (num(v, 64, 1u << 30, &n)) return BAD("64..1073741824");
    o->max_body = (size_t)n;
  } else if (!strcmp(name, "--max-batch-body")) {
    if (num(v, 64, 1u << 30, &n)) return BAD("64..1073741824");
    o->max_batch_body = (size_t)n;
  } else if (!strcmp(name, "--http-threads")) {
    if (num(v, 1, 256, &n)) return BAD("1..256");
    o->http_threads = (unsigned)n;
  } else if (!strcmp(name, "--alarm-queue")) {
    if (num(v, 0, 100000000, &n)) return BAD("0..100000000");
    o->alarm_queue = (uint32_t)n;
  } else if (!strcmp(name, "--conn-timeout")) {
    if (num(v, 1, 3600, &n)) return BAD("1..3600 seconds");
    o->conn_timeout = (unsigned)n;
  } else if (!strcmp(name, "--stream")) {
    if (strncmp(v, "nats://", 7) || strlen(v) > 1000)
      return BAD("nats://HOST:PORT[,nats://HOST:PORT...]");
    o->stream = v;
  } else if (!strcmp(name, "--stream-name")) {
    size_t l = strlen(v);
    if (l == 0 || l > 48 ||
        strspn(v, "abcdefghijklmnopqrstuvwxyz"
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "0123456789_-") != l)
      return BAD("1..48 of [A-Za-z0-9_-]");
    o->stream_name = v;
  } else if (!strcmp(name, "--stream-partitions")) {
    if (num(v, 1, 1024, &n)) return BAD("1..1024");
    o->stream_partitions = (unsigned)n;
  } else if (!strcmp(name, "--stream-replicas")) {
    if (num(v, 1, 5, &n)) return BAD("1..5");
    o->stream_replicas = (unsigned)n;
  } else if (!strcmp(name, "--lease-ttl-ms")) {
    if (num(v, 3000, 600000, &n)) return BAD("3000..600000");
    o->lease_ttl_ms = (unsigned)n;
  } else if (!strcmp(name, "--fail-every")) {
    /* 1 would crash on the retried event too, forever. */
    if (num(v, 0, 1000000000, &n) || n == 1) return BAD("0 (off) or 2..1e9");
    o->fail_every = (uint32_t)n;
  } else if (!strcmp(name, "--fail-db-every")) {
    if (num(v, 0, 1000000000, &n) || n == 1) return BAD("0 (off) or 2..1e9");
    o->fail_db_every = (uint32_t)n;
  } else {
    return fail(c->err, c->errn, "serve: unknown option '%.40s' (see --help)",
                name);
  }
  return 0;
}

/* consume takes a subset of serve's options (its --listen is for /metrics). */
static int consume_opt(cursor *c, const char *name, const char *eqval,
                       agg_serve_opts *o) {
  static const char *const ok[] = {"--stream",
                                   "--db",
                                   "--node",
                                   "--listen",
                                   "--stream-name",
                                   "--batch",
                                   "--no-console",
                                   "--stream-partitions",
                                   "--stream-replicas",
                                   "--lease-ttl-ms"};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
    if (!strcmp(name, ok[i])) return serve_opt(c, name, eqval, o);
  return fail(c->err, c->errn, "consume: unknown option '%.40s' (see --help)",
              name);
}

static int load_opt(cursor *c, const char *name, const char *eqval,
                    agg_load_opts *o) {
  const char *v = NULL;
  unsigned long long n;
  if (!strcmp(name, "--json") || !strcmp(name, "--wait-stored")) {
    if (eqval) return fail(c->err, c->errn, "%s takes no value", name);
    if (name[2] == 'j')
      o->json = 1;
    else
      o->wait_stored = 1;
    return 0;
  }
  if (value(c, name, eqval, &v)) return -1;
  if (!strcmp(name, "--url")) {
    if (http_url(v)) return BAD("want http://HOST:PORT");
    o->url = v;
  } else if (!strcmp(name, "--rate")) {
    if (real(v, 0, 1e8, &o->rate)) return BAD("0..1e8 events/s");
  } else if (!strcmp(name, "--secs")) {
    if (real(v, 0.01, 86400, &o->secs)) return BAD("0.01..86400");
  } else if (!strcmp(name, "--users")) {
    if (num(v, 1, 10000000, &n)) return BAD("1..10000000");
    o->users = (unsigned)n;
  } else if (!strcmp(name, "--batch")) {
    if (num(v, 1, 100000, &n)) return BAD("1..100000");
    o->batch = (unsigned)n;
  } else if (!strcmp(name, "--conns")) {
    if (num(v, 1, 256, &n)) return BAD("1..256");
    o->conns = (unsigned)n;
  } else {
    return fail(c->err, c->errn, "load: unknown option '%.40s' (see --help)",
                name);
  }
  return 0;
}

static int demo_opt(cursor *c, const char *name, const char *eqval,
                    agg_demo_opts *o) {
  const char *v = NULL;
  unsigned long long n;
  if (value(c, name, eqval, &v)) return -1;
  if (!strcmp(name, "--out")) {
    if (!*v) return BAD("a directory");
    o->out = v;
  } else if (!strcmp(name, "--secs")) {
    if (real(v, 1, 600, &o->secs)) return BAD("1..600");
  } else if (!strcmp(name, "--rate")) {
    if (real(v, 1, 1e6, &o->rate)) return BAD("1..1e6");
  } else if (!strcmp(name, "--partitions")) {
    if (num(v, 1, 1024, &n)) return BAD("1..1024");
    o->partitions = (unsigned)n;
  } else if (!strcmp(name, "--work-ms")) {
    if (num(v, 0, 1000, &n)) return BAD("0..1000");
    o->work_ms = (unsigned)n;
  } else {
    return fail(c->err, c->errn, "demo: unknown option '%.40s' (see --help)",
                name);
  }
  return 0;
}

int agg_args_parse(int argc, char *const argv[], agg_args *a, char *err,
                   size_t errn) {
  agg_args_defaults(a);
  cursor c = {.argc = argc, .i = 1, .argv = argv, .err = err, .errn = errn};
  if (argc < 2 || !argv) return fail(err, errn, "no command (see --help)");
  for (; c.i < argc; c.i++) {
    const char *arg = argv[c.i];
    if (!arg) return fail(err, errn, "argument %d is NULL", c.i);
    if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
      a->help = 1;
      continue;
    }
    if (!strcmp(arg, "--version") && a->cmd == AGG_CMD_NONE) {
      a->version = 1;
      continue;
    }
    if (a->cmd == AGG_CMD_NONE) {
      if (!strcmp(arg, "serve"))
        a->cmd = AGG_CMD_SERVE;
      else if (!strcmp(arg, "load"))
        a->cmd = AGG_CMD_LOAD;
      else if (!strcmp(arg, "demo"))
        a->cmd = AGG_CMD_DEMO;
      else if (!strcmp(arg, "consume"))
        a->cmd = AGG_CMD_CONSUME;
      else
        return fail(err, errn,
                    "unknown command '%.40s' (serve, consume, load or demo; "
                    "see --help)",
                    arg);
      continue;
    }
    if (strncmp(arg, "--", 2) != 0)
      return fail(err, errn, "unexpected argument '%.40s' (see --help)", arg);
    char name[32];
    const char *eqval;
    split(arg, name, sizeof name, &eqval);
    int rc = a->cmd == AGG_CMD_SERVE ? serve_opt(&c, name, eqval, &a->serve)
             : a->cmd == AGG_CMD_CONSUME
                 ? consume_opt(&c, name, eqval, &a->serve)
             : a->cmd == AGG_CMD_LOAD ? load_opt(&c, name, eqval, &a->load)
                                      : demo_opt(&c, name, eqval, &a->demo);
    if (rc) return -1;
  }
  if (a->help || a->version) return 0;
  if (a->cmd == AGG_CMD_NONE) return fail(err, errn, "no command (see --help)");
  if (a->cmd == AGG_CMD_SERVE && a->serve.stream &&
      a->serve.ack == AGG_ACK_QUEUED)
    return fail(err, errn,
                "serve: --stream answers once the stream stored the event: "
                "--ack queued does not apply");
  if (a->cmd == AGG_CMD_CONSUME && !a->serve.stream)
    return fail(err, errn, "consume: --stream is required");
  if (a->cmd == AGG_CMD_CONSUME && strncmp(a->serve.db, "postgresql://", 13) &&
      strncmp(a->serve.db, "postgres://", 11))
    return fail(err, errn,
                "consume: --db must be a postgresql:// URL (the nodes share "
                "one database)");
  if (a->cmd == AGG_CMD_CONSUME) a->serve.port = 0;
  if (a->cmd == AGG_CMD_LOAD && !a->load.url)
    return fail(err, errn,
                "load: --url is required (e.g. "
                "--url http://127.0.0.1:8080)");
  return 0;
}
