/*
 * args.h: weir-aggregator's command line, parsed by a pure function.
 *
 * agg_args_parse turns argv into an agg_args for one of the three commands
 * (serve, load, demo). It does no I/O, keeps no global state (no getopt) and
 * never reads past argc, so a fuzz target (fuzz/agg_args.c) can run it on any
 * argv. Every error comes back as one line of text naming the bad option and
 * why; strings in the result point into argv.
 */
#ifndef AGG_ARGS_H
#define AGG_ARGS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
  AGG_CMD_NONE = 0, /* --help / --version without a command */
  AGG_CMD_SERVE,
  AGG_CMD_LOAD,
  AGG_CMD_DEMO,
  AGG_CMD_CONSUME
} agg_cmd;

typedef enum { AGG_PARTITIONED = 0, AGG_SINGLETON } agg_mode;

/* When a 202 is sent (see docs/AGGREGATOR.md, "What a 202 promises"). */
typedef enum {
  AGG_ACK_STORED = 0, /* after the commit that stored every accepted event */
  AGG_ACK_QUEUED      /* once the event is in a worker's mailbox (a cast) */
} agg_ack_mode;

typedef struct agg_serve_opts {
  char host[64];           /* IPv4 literal to bind */
  uint16_t port;           /* 0 = ephemeral */
  const char *db;          /* "sqlite:PATH" or "postgresql://..." */
  agg_mode mode;           /* --mode */
  agg_ack_mode ack;        /* --ack */
  unsigned ack_timeout_ms; /* --ack-timeout-ms: stored mode's bound */
  unsigned partitions;     /* 0 = one per scheduler */
  unsigned work_ms;        /* per-event sleep (the seed's Process.sleep(5)) */
  uint32_t queue_limit;    /* per-worker mailbox bound; 0 = unbounded */
  unsigned batch;          /* rows per DB transaction */
  const char *node;        /* node name (console socket NODE.sock) */
  int console;             /* 1 = diagnostics console on */
  size_t max_body;         /* POST /track limit (bytes) */
  size_t max_batch_body;   /* POST /track/batch limit (bytes) */
  unsigned http_threads;   /* HTTP thread pool; 0 = online CPUs */
  uint32_t alarm_queue;    /* long_message_queue alarm threshold; 0 = off */
  unsigned conn_timeout;   /* seconds an idle HTTP connection is kept */
  /* --stream (serve: an ingest node; consume: a consumer node). */
  const char *stream;         /* NATS URLs, comma-separated; NULL = no stream */
  const char *stream_name;    /* default WEIR_EVENTS */
  unsigned stream_partitions; /* default 8 */
  unsigned stream_replicas;   /* default 3 */
  unsigned lease_ttl_ms;      /* consume: default 15000 */
  /* Fault injection (tests, demos of recovery); 0 = off. */
  uint32_t fail_every;    /* a worker crashes on every Nth event it handles */
  uint32_t fail_db_every; /* every Nth insert transaction fails (store) */
} agg_serve_opts;

typedef struct agg_load_opts {
  const char *url; /* base URL, http://HOST:PORT */
  double rate;     /* events per second; 0 = as fast as possible */
  double secs;     /* duration */
  unsigned users;  /* distinct user ids */
  unsigned batch;  /* events per request: 1 = POST /track, else /batch */
  unsigned conns;  /* connections (threads) */
  int json;        /* print the report as JSON */
  int wait_stored; /* then wait until everything accepted is stored and
                      report the end-to-end rate (reads GET /metrics) */
} agg_load_opts;

typedef struct agg_demo_opts {
  const char *out;     /* output directory */
  double secs;         /* load duration per phase */
  double rate;         /* events per second */
  unsigned partitions; /* partitioned phase */
  unsigned work_ms;
} agg_demo_opts;

typedef struct agg_args {
  agg_cmd cmd;
  int help;    /* --help / -h (for cmd, or global) */
  int version; /* --version */
  agg_serve_opts serve;
  agg_load_opts load;
  agg_demo_opts demo;
} agg_args;

/* Fills the defaults of every command. */
void agg_args_defaults(agg_args *a);
/* Parses argv[1..argc-1]. Returns 0, or -1 with a one-line message in err
   (errn > 0). Strings in *a point into argv. */
int agg_args_parse(int argc, char *const argv[], agg_args *a, char *err,
                   size_t errn);
/* Usage text for a command (AGG_CMD_NONE: the overview). */
const char *agg_usage(agg_cmd cmd);

#endif
