/*
 * agg_nats.h: a private 3-server NATS JetStream cluster for the
 * aggregator's tests.
 *
 * Each server gets, on 127.0.0.1, free ports for clients, cluster routes
 * and monitoring (http), a server_name "n1".."n3", a config file and a
 * JetStream store_dir in one temporary directory, and runs as the current
 * user (nats-server does not mind root). Ready means every running server
 * names the same meta leader in its /jsz (the JetStream meta group has
 * elected one, so a stream can be created). A server can be killed
 * (SIGKILL), paused (SIGSTOP), resumed (SIGCONT) and started again on its
 * ports and store; the leader of a stream is read from the monitoring
 * endpoint (/jsz?accounts=true&streams=true&config=true, parsed with
 * jansson).
 *
 * agg_nats_setup chains itself onto agg_test_on_fail (after whatever hook
 * was there, e.g. agg_pg's): a failed check kills every server. Tests that
 * install their own hook afterwards call agg_proc_kill_all in it (the
 * servers are agg_proc children, killed with the test's other children).
 * agg_nats_teardown kills the servers and removes the directory.
 */
#ifndef AGG_NATS_H
#define AGG_NATS_H

#include "agg_proc.h"

#include <stdint.h>

#define AGG_NATS_SERVERS 3

typedef struct agg_nats_server {
  char name[8]; /* server_name: "n1".."n3" */
  uint16_t port, route_port, http_port;
  char conf[640];
  int paused; /* SIGSTOPped: its monitoring port would not answer */
  agg_proc proc;
} agg_nats_server;

typedef struct agg_nats {
  char bin[512];  /* the nats-server binary */
  char dir[512];  /* configs, stores and logs */
  char urls[256]; /* "nats://127.0.0.1:P1,nats://127.0.0.1:P2,..." */
  agg_nats_server s[AGG_NATS_SERVERS];
} agg_nats;

/* Finds nats-server ($NATS_SERVER, else on PATH, else /usr/sbin): 0, or -1
   if there is none (the caller skips with exit code 77). */
int agg_nats_find(agg_nats *c);
/* Writes the configs, starts the three servers and waits (up to 30 s) for
   the cluster to be ready; CHECK-fails pointing at the logs. Prints the
   time it took. */
void agg_nats_setup(agg_nats *c);
/* Waits up to ms for every running, unpaused server to name one meta
   leader: its index, or -1 on timeout. */
int agg_nats_wait_ready(agg_nats *c, int ms);
/* Server i: SIGKILL (and reap), SIGSTOP, SIGCONT, start again. */
void agg_nats_kill(agg_nats *c, int i);
void agg_nats_pause(agg_nats *c, int i);
void agg_nats_resume(agg_nats *c, int i);
void agg_nats_restart(agg_nats *c, int i);
/* The index of the server that leads stream (it says so itself in its
   /jsz), or -1 if none does right now (no stream, an election). Paused and
   dead servers are not asked. */
int agg_nats_stream_leader(agg_nats *c, const char *stream);
/* Polls agg_nats_stream_leader every 50 ms for up to ms until a leader
   other than `not` (-1: any) is there: its index, or -1. */
int agg_nats_wait_stream_leader(agg_nats *c, const char *stream, int not,
                                int ms);
/* Whether server i hosts a replica of stream that is current (caught up)
   as the leader sees it: 1, 0, or -1 if no leader answers. */
int agg_nats_replica_current(agg_nats *c, const char *stream, int i);
/* GET path on server i's monitoring port: the parsed JSON (json_decref it;
   every number is a real: use json_number_value), or NULL. */
struct json_t *agg_nats_monitor(agg_nats *c, int i, const char *path);
/* Kills every server and removes the directory (unless AGG_KEEP is set:
   then it is printed and kept). */
void agg_nats_teardown(agg_nats *c);

#endif
