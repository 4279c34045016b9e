/*
 * main.c: weir-aggregator's entry point: serve, load, demo.
 *
 * serve blocks SIGINT and SIGTERM before any thread exists (every thread
 * inherits the mask), so the signal can only be taken by sigwait here: the
 * shutdown runs on the main thread, in order, with no async-signal-safety
 * puzzles. It stops HTTP, drains the mailboxes into the database and exits 0
 * only if everything accepted was stored.
 */
#include "args.h"
#include "consume.h"
#include "demo.h"
#include "load.h"
#include "service.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int serve(const agg_serve_opts *o) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  agg_service *svc;
  char err[512];
  if (agg_service_start(o, NULL, &svc, err, sizeof err)) {
    fprintf(stderr, "weir-aggregator: %s\n", err);
    return 1;
  }
  if (o->stream)
    printf("weir-aggregator: listening on http://%s:%u (ingest: stream %s, "
           "%u partitions, %u replicas, at %s; node %s)\n",
           o->host, agg_service_port(svc), o->stream_name, o->stream_partitions,
           o->stream_replicas, o->stream, o->node);
  else
    printf("weir-aggregator: listening on http://%s:%u (%s, %u worker%s, "
           "work-ms %u, queue-limit %u, batch %u, db %s, node %s)\n",
           o->host, agg_service_port(svc),
           o->mode == AGG_SINGLETON ? "singleton" : "partitioned",
           agg_service_workers(svc), agg_service_workers(svc) == 1 ? "" : "s",
           o->work_ms, o->queue_limit, o->batch, o->db, o->node);
  fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  printf("weir-aggregator: %s: stopping: draining mailboxes into the "
         "database\n",
         sig == SIGINT ? "SIGINT" : "SIGTERM");
  fflush(stdout);
  agg_counters c;
  int rc = agg_service_stop(svc, &c);
  printf("weir-aggregator: stopped: accepted %llu, stored %llu, duplicates "
         "%llu, rejected_full %llu, bad_requests %llu, invalid_lines %llu\n",
         (unsigned long long)c.accepted, (unsigned long long)c.stored,
         (unsigned long long)c.duplicates, (unsigned long long)c.rejected_full,
         (unsigned long long)c.bad_requests,
         (unsigned long long)c.invalid_lines);
  if (rc) fprintf(stderr, "weir-aggregator: not every event was stored\n");
  return rc ? 1 : 0;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  agg_args a;
  char err[256];
  if (agg_args_parse(argc, argv, &a, err, sizeof err)) {
    fprintf(stderr, "weir-aggregator: %s\n", err);
    return 2;
  }
  if (a.help) {
    fputs(agg_usage(a.cmd), stdout);
    return 0;
  }
  if (a.version) {
    printf("weir-aggregator %s\n", WEIR_VERSION_STRING);
    return 0;
  }
  switch (a.cmd) {
  case AGG_CMD_SERVE:
    return serve(&a.serve);
  case AGG_CMD_CONSUME:
    return agg_consume_main(&a.serve);
  case AGG_CMD_LOAD:
    return agg_load_main(&a.load);
  case AGG_CMD_DEMO:
    return agg_demo_main(&a.demo);
  default:
    fputs(agg_usage(AGG_CMD_NONE), stderr);
    return 2;
  }
}
