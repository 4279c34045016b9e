/*
 * load.c: the load generator (see load.h).
 *
 * One thread per connection. Latencies are kept per thread (no sharing on
 * the hot path) and merged at the end for the percentiles. In batch mode the
 * reply's per-line "errors" say exactly which lines were not accepted, so the
 * accept log stays exact: the demo and the tests check the database against
 * it, event by event.
 */
#include "load.h"
#include "client.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void agg_load_user_text(unsigned u, char *buf, size_t n) {
  snprintf(buf, n, u % 2 ? "u%u" : "%u", u);
}

long agg_load_user_index(const char *t) {
  const char *p = t[0] == 'u' ? t + 1 : t;
  char *e;
  if (!*p) return -1;
  long v = strtol(p, &e, 10);
  if (*e || v < 0 || (t[0] == 'u') != (v % 2 == 1)) return -1;
  return v;
}

int agg_accept_log_init(agg_accept_log *log, unsigned users) {
  log->users = users;
  log->u = calloc(users, sizeof *log->u);
  return log->u ? 0 : -1;
}

void agg_accept_log_free(agg_accept_log *log) {
  if (!log->u) return;
  for (unsigned i = 0; i < log->users; i++) {
    free(log->u[i].seq);
    free(log->u[i].unsure);
  }
  free(log->u);
  log->u = NULL;
}

static void push(int64_t **v, size_t *n, size_t *cap, int64_t seq) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 64;
    int64_t *s = realloc(*v, c * sizeof *s);
    if (!s) abort(); /* the check would be wrong without it */
    *v = s;
    *cap = c;
  }
  (*v)[(*n)++] = seq;
}

static void log_add(agg_accept_log *log, unsigned u, int64_t seq) {
  if (!log) return;
  agg_user_log *l = &log->u[u];
  push(&l->seq, &l->n, &l->cap, seq);
}

static void log_unsure(agg_accept_log *log, unsigned u, int64_t seq) {
  if (!log) return;
  agg_user_log *l = &log->u[u];
  push(&l->unsure, &l->nunsure, &l->capunsure, seq);
}

typedef struct conn_job {
  const agg_load_opts *o;
  agg_accept_log *log;
  char host[128];
  uint16_t port;
  unsigned k, conns;
  double start, end, interval; /* interval between requests; 0 = flat out */
  agg_load_result r;
  double *lat;
  size_t nlat, caplat;
  int connect_failed;
} conn_job;

static void lat_add(conn_job *j, double ms) {
  if (j->nlat == j->caplat) {
    size_t cap = j->caplat ? j->caplat * 2 : 4096;
    double *l = realloc(j->lat, cap * sizeof *l);
    if (!l) return;
    j->lat = l;
    j->caplat = cap;
  }
  j->lat[j->nlat++] = ms;
}

/* Marks the lines of a batch reply: ok[i] = 1 unless "errors" names line
   i+1. Returns the number of 503 lines found. */
static unsigned batch_verdicts(const char *body, unsigned n, unsigned char *ok,
                               unsigned *invalid) {
  memset(ok, 1, n);
  unsigned full = 0;
  *invalid = 0;
  json_t *o = json_loads(body, 0, NULL);
  json_t *errs = o ? json_object_get(o, "errors") : NULL;
  if (!json_is_array(errs)) {
    memset(ok, 0, n);
    json_decref(o);
    return 0;
  }
  size_t i;
  json_t *e;
  json_array_foreach(errs, i, e) {
    json_int_t line = json_integer_value(json_object_get(e, "line"));
    json_int_t st = json_integer_value(json_object_get(e, "status"));
    if (line >= 1 && line <= n) {
      ok[line - 1] = 0;
      if (st == 503)
        full++;
      else
        (*invalid)++;
    }
  }
  json_decref(o);
  return full;
}

static void *conn_main(void *arg) {
  conn_job *j = arg;
  const agg_load_opts *o = j->o;
  unsigned nu = 0;
  for (unsigned u = j->k; u < o->users; u += j->conns)
    nu++;
  int64_t *seq = calloc(nu ? nu : 1, sizeof *seq);
  unsigned batch = o->batch ? o->batch : 1;
  size_t cap = (size_t)batch * 160 + 64;
  char *body = malloc(cap);
  unsigned *bu = malloc(batch * sizeof *bu);
  int64_t *bs = malloc(batch * sizeof *bs);
  unsigned char *ok = malloc(batch);
  agg_client c;
  agg_client_init(&c, j->host, j->port);
  if (!seq || !body || !bu || !bs || !ok) goto out;
  double t_next = j->start;
  unsigned rr = 0;
  for (;;) {
    double now = now_s();
    if (now >= j->end) break;
    if (j->interval > 0) {
      if (t_next > now) {
        double d = t_next - now;
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        nanosleep(&ts, NULL);
        if (t_next >= j->end) break;
      }
      t_next += j->interval;
    }
    size_t len = 0;
    for (unsigned b = 0; b < batch; b++) {
      unsigned idx = rr++ % nu;
      unsigned u = j->k + idx * j->conns;
      char user[24];
      agg_load_user_text(u, user, sizeof user);
      int64_t s = ++seq[idx];
      bu[b] = u;
      bs[b] = s;
      len += (size_t)snprintf(
          body + len, cap - len,
          u % 2 ? "{\"user_id\":\"%s\",\"seq\":%lld,\"event\":\"click\","
                  "\"data\":{\"page\":\"/p/%lld\",\"n\":%u}}\n"
                : "{\"user_id\":%s,\"seq\":%lld,\"event\":\"click\","
                  "\"data\":{\"page\":\"/p/%lld\",\"n\":%u}}\n",
          user, (long long)s, (long long)s, b);
    }
    double t0 = now_s();
    int rc = agg_client_request(
        &c, "POST", batch > 1 ? "/track/batch" : "/track",
        batch > 1 ? "application/x-ndjson" : "application/json", body, len,
        NULL);
    double ms = (now_s() - t0) * 1e3;
    j->r.requests++;
    j->r.events += batch;
    if (rc) {
      int e = errno;
      j->r.errors += batch;
      for (unsigned b = 0; b < batch; b++)
        log_unsure(j->log, bu[b], bs[b]);
      if (e == ECONNREFUSED) { /* the service is gone */
        if (j->r.requests == 1) j->connect_failed = 1;
        break;
      }
      continue;
    }
    lat_add(j, ms);
    if (c.status == 503 && c.retry_after >= 0) j->r.retry_after++;
    if (batch == 1) {
      if (c.status == 202) {
        j->r.accepted++;
        log_add(j->log, bu[0], bs[0]);
      } else if (c.status == 503) {
        j->r.rejected++;
      } else if (c.status == 400) {
        j->r.invalid++;
      } else {
        j->r.errors++;
      }
      continue;
    }
    if (c.status != 202 && c.status != 503 && c.status != 400) {
      j->r.errors += batch;
      continue;
    }
    unsigned invalid;
    unsigned full = batch_verdicts(c.body, batch, ok, &invalid);
    j->r.rejected += full;
    j->r.invalid += invalid;
    unsigned good = 0;
    for (unsigned b = 0; b < batch; b++) {
      if (!ok[b]) continue;
      good++;
      log_add(j->log, bu[b], bs[b]);
    }
    j->r.accepted += good;
    /* Lines the reply did not account for (an unparsable reply). */
    j->r.errors += batch - good - full - invalid;
  }
out:
  agg_client_close(&c);
  free(seq);
  free(body);
  free(bu);
  free(bs);
  free(ok);
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int agg_load_run(const agg_load_opts *o, agg_accept_log *log,
                 agg_load_result *res, char *err, size_t errn) {
  memset(res, 0, sizeof *res);
  char host[128];
  uint16_t port;
  if (agg_url_parse(o->url, host, sizeof host, &port)) {
    snprintf(err, errn, "bad URL '%s' (want http://HOST:PORT)", o->url);
    return -1;
  }
  unsigned conns = o->conns ? o->conns : 1;
  if (conns > o->users) conns = o->users;
  conn_job *jobs = calloc(conns, sizeof *jobs);
  pthread_t *th = calloc(conns, sizeof *th);
  if (!jobs || !th) {
    free(jobs);
    free(th);
    snprintf(err, errn, "out of memory");
    return -1;
  }
  double start = now_s() + 0.01;
  unsigned batch = o->batch ? o->batch : 1;
  unsigned started = 0;
  for (unsigned k = 0; k < conns; k++) {
    conn_job *j = &jobs[k];
    j->o = o;
    j->log = log;
    snprintf(j->host, sizeof j->host, "%s", host);
    j->port = port;
    j->k = k;
    j->conns = conns;
    j->start = start;
    j->end = start + o->secs;
    unsigned nu = 0;
    for (unsigned u = k; u < o->users; u += conns)
      nu++;
    double share = o->rate * nu / o->users; /* events/s of this connection */
    j->interval = o->rate > 0 ? batch / share : 0;
    /* Spread the connections' send times over one interval. */
    j->start += j->interval * k / conns;
    if (pthread_create(&th[k], NULL, conn_main, j) != 0) break;
    started++;
  }
  double t0 = now_s();
  for (unsigned k = 0; k < started; k++)
    pthread_join(th[k], NULL);
  double t1 = now_s();
  size_t nlat = 0;
  int refused = 0;
  for (unsigned k = 0; k < started; k++)
    nlat += jobs[k].nlat;
  double *lat = malloc((nlat ? nlat : 1) * sizeof *lat);
  size_t at = 0;
  for (unsigned k = 0; k < started; k++) {
    conn_job *j = &jobs[k];
    res->requests += j->r.requests;
    res->events += j->r.events;
    res->accepted += j->r.accepted;
    res->rejected += j->r.rejected;
    res->invalid += j->r.invalid;
    res->errors += j->r.errors;
    res->retry_after += j->r.retry_after;
    refused |= j->connect_failed;
    if (lat) memcpy(lat + at, j->lat, j->nlat * sizeof *lat);
    at += j->nlat;
    free(j->lat);
  }
  res->secs = t1 - (t0 < start ? start : t0);
  if (res->secs <= 0) res->secs = 1e-9;
  res->rate = (double)res->accepted / res->secs;
  if (lat && nlat) {
    qsort(lat, nlat, sizeof *lat, cmp_double);
    res->p50_ms = lat[(size_t)((double)(nlat - 1) * 0.50)];
    res->p99_ms = lat[(size_t)((double)(nlat - 1) * 0.99)];
    res->max_ms = lat[nlat - 1];
  }
  free(lat);
  free(jobs);
  free(th);
  if (started < conns) {
    snprintf(err, errn, "cannot start the load threads");
    return -1;
  }
  if (refused && res->accepted == 0) {
    snprintf(err, errn, "connection refused at %s", o->url);
    return -1;
  }
  return 0;
}

/* The service's stored, duplicates and accepted counters (GET /metrics). */
static int read_counters(const char *url, uint64_t v[3]) {
  char host[128];
  uint16_t port;
  if (agg_url_parse(url, host, sizeof host, &port)) return -1;
  agg_client c;
  agg_client_init(&c, host, port);
  int rc = agg_client_request(&c, "GET", "/metrics", NULL, NULL, 0, NULL);
  const char *names[3] = {"\nweir_agg_stored_total ",
                          "\nweir_agg_duplicates_total ",
                          "\nweir_agg_accepted_total "};
  for (int i = 0; rc == 0 && i < 3; i++) {
    const char *p = c.status == 200 ? strstr(c.body, names[i]) : NULL;
    if (!p)
      rc = -1;
    else
      v[i] = strtoull(p + strlen(names[i]), NULL, 10);
  }
  agg_client_close(&c);
  return rc;
}

int agg_load_main(const agg_load_opts *o) {
  agg_load_result r;
  char err[256];
  uint64_t before[3] = {0}, after[3] = {0};
  if (o->wait_stored && read_counters(o->url, before)) {
    fprintf(stderr, "weir-aggregator load: cannot read %s/metrics\n", o->url);
    return 1;
  }
  double t0 = now_s();
  if (agg_load_run(o, NULL, &r, err, sizeof err)) {
    fprintf(stderr, "weir-aggregator load: %s\n", err);
    return 1;
  }
  double stored_secs = 0;
  if (o->wait_stored) {
    while (read_counters(o->url, after) == 0 && after[0] + after[1] < after[2])
      nanosleep(&(struct timespec){0, 20000000}, NULL);
    stored_secs = now_s() - t0;
  }
  if (o->json) {
    printf("{\"requests\":%llu,\"events\":%llu,\"accepted\":%llu,"
           "\"rejected\":%llu,\"invalid\":%llu,\"errors\":%llu,"
           "\"secs\":%.3f,\"rate\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"max_ms\":%.3f}\n",
           (unsigned long long)r.requests, (unsigned long long)r.events,
           (unsigned long long)r.accepted, (unsigned long long)r.rejected,
           (unsigned long long)r.invalid, (unsigned long long)r.errors, r.secs,
           r.rate, r.p50_ms, r.p99_ms, r.max_ms);
  } else {
    printf("load: %.2f s, %llu requests, %llu events (%s, %u conns, %u "
           "users, target %s)\n",
           r.secs, (unsigned long long)r.requests, (unsigned long long)r.events,
           o->batch > 1 ? "POST /track/batch" : "POST /track", o->conns,
           o->users, o->rate > 0 ? "rate-limited" : "flat out");
    printf("  accepted %llu   rejected (503) %llu   invalid (400) %llu   "
           "errors %llu\n",
           (unsigned long long)r.accepted, (unsigned long long)r.rejected,
           (unsigned long long)r.invalid, (unsigned long long)r.errors);
    printf("  achieved %.0f events/s accepted; request latency p50 %.3f ms, "
           "p99 %.3f ms, max %.3f ms\n",
           r.rate, r.p50_ms, r.p99_ms, r.max_ms);
  }
  if (o->wait_stored) {
    uint64_t stored = after[0] - before[0], dups = after[1] - before[1];
    printf(o->json ? "{\"stored\":%llu,\"duplicates\":%llu,"
                     "\"stored_secs\":%.3f,\"stored_rate\":%.1f}\n"
                   : "  stored %llu (+%llu duplicates) in %.2f s from the "
                     "first request: %.0f events/s end to end\n",
           (unsigned long long)stored, (unsigned long long)dups, stored_secs,
           (double)(stored + dups) / stored_secs);
  }
  return r.errors ? 1 : 0;
}
