/*
 * stream.c: the stream handle (weir_stream_open and _close): the connection
 * to the servers, the stream, the lease bucket; and the helpers every file
 * of the module uses (stream_int.h). The bottom of the module's stack: it
 * calls no other file of it.
 *
 * One connection per handle, which reconnects for ever (250 ms apart):
 * weir_stream_connected tells whether it is up now. Management calls go
 * through s->js (5 s waits); the lease keeper's through s->js_fast (1 s
 * waits, made by weir_stream_consumer_start), so that an election cannot
 * eat its lease. Every node must agree on the partition count, which the
 * stream itself does not know: it is written in the stream's description
 * and checked on open, as are the subjects and replicas; the lease bucket's
 * TTL is the lease time, checked the same way. Right after the servers
 * start, JetStream may still be electing its meta leader, so the management
 * calls are retried (for connect_ms, and 30 s for the bucket).
 */
#include "stream_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PARTS 1024

uint64_t weir__stream_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void weir__stream_sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int weir__stream_nats_err(char *err, size_t errn, const char *what,
                          natsStatus st, jsErrCode jerr) {
  if (err && errn)
    snprintf(err, errn, "%s: %s%s%.0d", what, natsStatus_GetText(st),
             jerr ? " (JetStream error " : "", (int)jerr);
  if (err && errn && jerr) {
    size_t l = strlen(err);
    snprintf(err + l, errn - l, ")");
  }
  return st == NATS_NO_MEMORY ? WEIR_ENOMEM : WEIR_ESYS;
}

void weir_stream_opts_init(weir_stream_opts *o) {
  memset(o, 0, sizeof *o);
  o->name = "WEIR_EVENTS";
  o->partitions = 8;
  o->replicas = 3;
  o->lease_ttl_ms = 15000;
  o->dup_window_ms = 120000;
  o->create = 1;
}

int weir_stream_connected(weir_stream *s) {
  return s && natsConnection_Status(s->nc) == NATS_CONN_STATUS_CONNECTED;
}

unsigned weir_stream_partitions(const weir_stream *s) {
  return s->o.partitions;
}

uint32_t weir__stream_fnv1a(const void *key, size_t len) {
  uint32_t h = 2166136261u;
  const unsigned char *p = key;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 16777619u;
  }
  return h;
}

unsigned weir_stream_partition_of(const weir_stream *s, const void *key,
                                  size_t len) {
  return weir__stream_fnv1a(key, len) % s->o.partitions;
}

int weir__stream_name_ok(const char *n, size_t max) {
  size_t l = n ? strlen(n) : 0;
  if (l == 0 || l > max) return 0;
  for (size_t i = 0; i < l; i++) {
    char c = n[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

/* ---- open: connection, stream, bucket ------------------------------------ */

/* The stream's description records its partition count, which the stream
   itself does not know: every node must agree on it. */
static void describe(char *out, size_t n, unsigned partitions) {
  snprintf(out, n, "weir stream, partitions=%u", partitions);
}

static int ensure_stream(weir_stream *s, char *err, size_t errn) {
  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  natsStatus st = js_GetStreamInfo(&si, s->js, s->name, NULL, &jerr);
  char subj[128], desc[64];
  snprintf(subj, sizeof subj, "%s.*", s->prefix);
  describe(desc, sizeof desc, s->o.partitions);
  if (st == NATS_OK) {
    const jsStreamConfig *c = si->Config;
    int ok = c->SubjectsLen == 1 && !strcmp(c->Subjects[0], subj) &&
             c->Replicas == (int64_t)s->o.replicas && c->Description &&
             !strcmp(c->Description, desc);
    if (!ok)
      snprintf(err, errn,
               "stream %s exists with other settings: subjects %s, %" PRId64
               " replicas, \"%s\" (want %s, %u replicas, %u partitions; "
               "every node must use the same --stream-* options)",
               s->name, c->SubjectsLen ? c->Subjects[0] : "none", c->Replicas,
               c->Description ? c->Description : "no description", subj,
               s->o.replicas, s->o.partitions);
    jsStreamInfo_Destroy(si);
    return ok ? WEIR_OK : WEIR_EINVAL;
  }
  if (st != NATS_NOT_FOUND)
    return weir__stream_nats_err(err, errn, "stream info", st, jerr);
  if (!s->o.create) {
    snprintf(err, errn, "stream %s does not exist", s->name);
    return WEIR_ENOTFOUND;
  }
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  const char *subjects[1] = {subj};
  sc.Name = s->name;
  sc.Description = desc;
  sc.Subjects = subjects;
  sc.SubjectsLen = 1;
  sc.Storage = js_FileStorage;
  sc.Replicas = s->o.replicas;
  sc.Duplicates = (int64_t)s->o.dup_window_ms * 1000000;
  st = js_AddStream(&si, s->js, &sc, NULL, &jerr);
  if (st != NATS_OK)
    return weir__stream_nats_err(err, errn, "create stream", st, jerr);
  jsStreamInfo_Destroy(si);
  return WEIR_OK;
}

/* One try of weir__stream_ensure_bucket. */
static int ensure_bucket_once(weir_stream *s, char *err, size_t errn) {
  if (s->kv) {
    kvStore_Destroy(s->kv);
    s->kv = NULL;
  }
  natsStatus st = js_KeyValue(&s->kv, s->js_fast, s->bucket);
  if (st == NATS_NOT_FOUND && s->o.create) {
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = s->bucket;
    kc.History = 1;
    kc.TTL = (int64_t)s->o.lease_ttl_ms * 1000000;
    kc.Replicas = (int)s->o.replicas;
    kc.StorageType = js_FileStorage;
    st = js_CreateKeyValue(&s->kv, s->js, &kc);
    /* Another node created it first: bind to theirs. */
    if (st != NATS_OK) st = js_KeyValue(&s->kv, s->js_fast, s->bucket);
  }
  if (st != NATS_OK)
    return weir__stream_nats_err(err, errn, "lease bucket", st, 0);
  kvStatus *ks = NULL;
  st = kvStore_Status(&ks, s->kv);
  if (st != NATS_OK)
    return weir__stream_nats_err(err, errn, "lease bucket status", st, 0);
  int64_t ttl_ms = kvStatus_TTL(ks) / 1000000;
  kvStatus_Destroy(ks);
  if (ttl_ms != (int64_t)s->o.lease_ttl_ms) {
    snprintf(err, errn,
             "lease bucket %s has a %" PRId64 " ms lease time, not %u (every "
             "consumer node must use the same --lease-ttl-ms)",
             s->bucket, ttl_ms, s->o.lease_ttl_ms);
    return WEIR_EINVAL;
  }
  return WEIR_OK;
}

/* The lease bucket, for a consumer node: its TTL is the lease time, so
   every consumer node must use the same (a bucket made with another TTL is
   refused, with both figures). Transient failures are retried for 30 s. */
int weir__stream_ensure_bucket(weir_stream *s, char *err, size_t errn) {
  uint64_t until = weir__stream_mono_ns() + 30000000000ull;
  for (;;) {
    int rc = ensure_bucket_once(s, err, errn);
    if (rc != WEIR_ESYS || weir__stream_mono_ns() >= until) return rc;
    weir__stream_sleep_ms(500);
  }
}

int weir_stream_open(const weir_stream_opts *o, unsigned connect_ms,
                     weir_stream **out, char *err, size_t errn) {
  if (!o || !out || !o->urls || !*o->urls ||
      !weir__stream_name_ok(o->name, 48) || o->partitions == 0 ||
      o->partitions > MAX_PARTS || o->replicas == 0 || o->replicas > 5 ||
      o->lease_ttl_ms < 1000) {
    snprintf(err, errn, "invalid stream options");
    return WEIR_EINVAL;
  }
  weir_stream *s = calloc(1, sizeof *s);
  if (!s) return WEIR_ENOMEM;
  s->o = *o;
  snprintf(s->name, sizeof s->name, "%s", o->name);
  snprintf(s->prefix, sizeof s->prefix, "weir.%s", o->name);
  for (char *p = s->prefix; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
  snprintf(s->bucket, sizeof s->bucket, "%s_leases", o->name);
  s->o.name = s->name;
  s->parts = calloc(o->partitions, sizeof *s->parts);
  natsOptions *no = NULL;
  natsStatus st = s->parts ? natsOptions_Create(&no) : NATS_NO_MEMORY;
  /* natsOptions_SetURL does not take this list form in nats.c 3.4.1:
     split it for natsOptions_SetServers. */
  char urls[1024];
  const char *list[16];
  int nurls = 0;
  snprintf(urls, sizeof urls, "%s", o->urls);
  for (char *save = NULL, *t = strtok_r(urls, ", ", &save); t && nurls < 16;
       t = strtok_r(NULL, ", ", &save))
    list[nurls++] = t;
  if (st == NATS_OK)
    st = nurls ? natsOptions_SetServers(no, list, nurls) : NATS_INVALID_ARG;
  if (st == NATS_OK) st = natsOptions_SetMaxReconnect(no, -1);
  if (st == NATS_OK) st = natsOptions_SetReconnectWait(no, 250);
  if (st == NATS_OK) st = natsOptions_SetTimeout(no, 2000);
  if (st == NATS_OK) st = natsOptions_SetName(no, "weir");
  if (st != NATS_OK) {
    int rc = weir__stream_nats_err(err, errn, "options", st, 0);
    if (st == NATS_ERR || st == NATS_INVALID_ARG) {
      snprintf(err, errn, "bad stream URL list '%.100s'", o->urls);
      rc = WEIR_EINVAL;
    }
    natsOptions_Destroy(no);
    free(s->parts);
    free(s);
    return rc;
  }
  uint64_t until = weir__stream_mono_ns() + (uint64_t)connect_ms * 1000000ull;
  for (;;) {
    st = natsConnection_Connect(&s->nc, no);
    if (st == NATS_OK || weir__stream_mono_ns() >= until) break;
    weir__stream_sleep_ms(250);
  }
  natsOptions_Destroy(no);
  int rc;
  if (st != NATS_OK) {
    snprintf(err, errn, "no NATS server reachable at %.200s: %s", o->urls,
             natsStatus_GetText(st));
    rc = WEIR_ESYS;
    goto fail;
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 5000;
  st = natsConnection_JetStream(&s->js, s->nc, &jo);
  if (st != NATS_OK) {
    rc = weir__stream_nats_err(err, errn, "JetStream", st, 0);
    goto fail;
  }
  /* Right after the servers start, JetStream may still elect its meta
     leader: retry the management calls for the same connect_ms. */
  for (;;) {
    rc = ensure_stream(s, err, errn);
    if (rc != WEIR_ESYS || weir__stream_mono_ns() >= until) break;
    weir__stream_sleep_ms(500);
  }
  if (rc != WEIR_OK) goto fail;
  *out = s;
  return WEIR_OK;
fail:
  weir_stream_close(s);
  return rc;
}

void weir_stream_close(weir_stream *s) {
  if (!s) return;
  if (s->kv) kvStore_Destroy(s->kv);
  if (s->js) jsCtx_Destroy(s->js);
  if (s->js_fast) jsCtx_Destroy(s->js_fast);
  if (s->nc) natsConnection_Destroy(s->nc);
  free(s->parts);
  free(s);
}
