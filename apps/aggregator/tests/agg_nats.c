/*
 * agg_nats.c: a private 3-server NATS JetStream cluster for the tests (see
 * agg_nats.h).
 *
 * Ports: all nine are picked at once by binding port 0 on loopback and
 * holding every socket until the nine are known, so no two servers get the
 * same one; the window between closing them and nats-server binding them is
 * the usual small race of this trick, and a lost race shows as a server
 * that exits at once (setup then fails with its log's path).
 *
 * Monitoring is read with a GET of its own (see http_get), with a timeout;
 * a server this harness paused is not asked at all.
 */
#include "agg_nats.h"

#include "agg_testlib.h"

#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static agg_nats *g_nats; /* for the on-fail hook */
static void (*g_prev_hook)(void);

int agg_nats_find(agg_nats *c) {
  memset(c, 0, sizeof *c);
  const char *env = getenv("NATS_SERVER");
  if (env && *env) {
    snprintf(c->bin, sizeof c->bin, "%s", env);
    return access(c->bin, X_OK);
  }
  const char *path = getenv("PATH");
  char dirs[2048];
  snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/usr/local/sbin",
           path ? path : "/usr/bin");
  for (char *save, *d = strtok_r(dirs, ":", &save); d;
       d = strtok_r(NULL, ":", &save)) {
    snprintf(c->bin, sizeof c->bin, "%s/nats-server", d);
    if (access(c->bin, X_OK) == 0) return 0;
  }
  c->bin[0] = '\0';
  return -1;
}

static void on_fail(void) {
  if (g_prev_hook) g_prev_hook();
  agg_proc_kill_all();
}

static void write_conf(agg_nats *c, int i) {
  agg_nats_server *s = &c->s[i];
  FILE *f = fopen(s->conf, "w");
  CHECK_MSG(f, "cannot write %s", s->conf);
  fprintf(f,
          "server_name: %s\n"
          "listen: 127.0.0.1:%u\n"
          "http: 127.0.0.1:%u\n"
          "jetstream {\n"
          "  store_dir: \"%s/%s\"\n"
          "  max_memory_store: 64MB\n"
          "  max_file_store: 2GB\n"
          "}\n"
          "cluster {\n"
          "  name: weirtest\n"
          "  listen: 127.0.0.1:%u\n"
          "  routes: [\n",
          s->name, s->port, s->http_port, c->dir, s->name, s->route_port);
  for (int k = 0; k < AGG_NATS_SERVERS; k++)
    fprintf(f, "    nats-route://127.0.0.1:%u\n", c->s[k].route_port);
  fprintf(f, "  ]\n}\n");
  CHECK(fclose(f) == 0);
}

static void start_server(agg_nats *c, int i) {
  agg_nats_server *s = &c->s[i];
  const char *argv[] = {c->bin, "-c", s->conf, NULL};
  char log[640];
  snprintf(log, sizeof log, "%s/%s.log", c->dir, s->name);
  agg_proc_start(&s->proc, s->name, argv, log, 0);
  s->paused = 0;
}

void agg_nats_setup(agg_nats *c) {
  CHECK_MSG(c->bin[0], "agg_nats_setup before agg_nats_find succeeded");
  agg_test_tmpdir(c->dir, sizeof c->dir);
  uint16_t ports[3 * AGG_NATS_SERVERS];
  agg_test_free_ports(ports, 3 * AGG_NATS_SERVERS);
  size_t len = 0;
  for (int i = 0; i < AGG_NATS_SERVERS; i++) {
    agg_nats_server *s = &c->s[i];
    snprintf(s->name, sizeof s->name, "n%d", i + 1);
    s->port = ports[3 * i];
    s->route_port = ports[3 * i + 1];
    s->http_port = ports[3 * i + 2];
    char conf[sizeof s->conf]; /* GCC cannot tell c->dir from s->conf */
    snprintf(conf, sizeof conf, "%s/%s.conf", c->dir, s->name);
    memcpy(s->conf, conf, sizeof conf);
    len += (size_t)snprintf(c->urls + len, sizeof c->urls - len,
                            "%snats://127.0.0.1:%u", i ? "," : "", s->port);
  }
  for (int i = 0; i < AGG_NATS_SERVERS; i++)
    write_conf(c, i);
  if (g_nats != c) {
    g_nats = c;
    g_prev_hook = agg_test_on_fail;
    agg_test_on_fail = on_fail;
  }
  double t0 = agg_test_now_ms();
  for (int i = 0; i < AGG_NATS_SERVERS; i++)
    start_server(c, i);
  int leader = agg_nats_wait_ready(c, 30000);
  CHECK_MSG(leader >= 0,
            "the NATS cluster is not ready after 30 s: see %s/*.log", c->dir);
  agg_test_log("nats: 3 servers ready in %.0f ms (meta leader %s), %s, "
               "monitoring on %u/%u/%u, in %s",
               agg_test_now_ms() - t0, c->s[leader].name, c->urls,
               c->s[0].http_port, c->s[1].http_port, c->s[2].http_port, c->dir);
}

static int running(const agg_nats *c, int i) {
  return atomic_load(&c->s[i].proc.pid) > 0 && !c->s[i].paused;
}

/* GET over HTTP/1.0, read to EOF, with a 2 s receive timeout: the
   aggregator's client (client.h) cannot be used here, because nats-server
   (Go's net/http) answers an HTTP/1.1 request whose body passes 2 KiB
   with chunked encoding, which that client does not read, and it has no
   timeout. The malloc'd body of a 200, or NULL. */
static char *http_get(uint16_t port, const char *path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return NULL;
  struct timeval tv = {2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons(port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  char *buf = NULL, req[512];
  size_t len = 0, cap = 0;
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      write(fd, req, (size_t)n) != n)
    goto out;
  for (;;) {
    if (cap - len < 4096) {
      cap = cap ? 2 * cap : 16384;
      char *nb = realloc(buf, cap);
      if (!nb) goto fail;
      buf = nb;
    }
    ssize_t r = read(fd, buf + len, cap - len - 1);
    if (r == 0) break;
    if (r < 0) goto fail; /* timeout or reset: no half answers */
    len += (size_t)r;
  }
  buf[len] = '\0';
  char *body = strstr(buf, "\r\n\r\n");
  if (strncmp(buf, "HTTP/1.", 7) || atoi(buf + 9) != 200 || !body) goto fail;
  memmove(buf, body + 4, len - (size_t)(body + 4 - buf) + 1);
  goto out;
fail:
  free(buf);
  buf = NULL;
out:
  close(fd);
  return buf;
}

json_t *agg_nats_monitor(agg_nats *c, int i, const char *path) {
  if (!running(c, i)) return NULL;
  char *body = http_get(c->s[i].http_port, path);
  /* /jsz has 2^64-1 in it (reserved_memory: no limit), which jansson
     refuses as an integer: numbers are read as doubles. */
  json_t *j = body ? json_loads(body, JSON_DECODE_INT_AS_REAL, NULL) : NULL;
  free(body);
  return j;
}

static int index_of(const agg_nats *c, const char *name) {
  for (int i = 0; name && i < AGG_NATS_SERVERS; i++)
    if (!strcmp(c->s[i].name, name)) return i;
  return -1;
}

int agg_nats_wait_ready(agg_nats *c, int ms) {
  double end = agg_test_now_ms() + ms;
  do {
    int leader = -2, agree = 1, asked = 0;
    for (int i = 0; i < AGG_NATS_SERVERS && agree; i++) {
      if (!running(c, i)) continue;
      asked++;
      json_t *j = agg_nats_monitor(c, i, "/jsz");
      const char *l = json_string_value(
          json_object_get(json_object_get(j, "meta_cluster"), "leader"));
      int k = index_of(c, l);
      if (k < 0 || (leader != -2 && k != leader)) agree = 0;
      leader = k;
      json_decref(j);
    }
    if (agree && asked > 0 && leader >= 0 && running(c, leader)) return leader;
    agg_test_sleep_ms(50);
  } while (agg_test_now_ms() < end);
  return -1;
}

void agg_nats_kill(agg_nats *c, int i) {
  CHECK_MSG(agg_proc_kill(&c->s[i].proc) != -1, "nats %s is not running",
            c->s[i].name);
  c->s[i].paused = 0;
}

void agg_nats_pause(agg_nats *c, int i) {
  CHECK(agg_proc_signal(&c->s[i].proc, SIGSTOP) == 0);
  c->s[i].paused = 1;
}

void agg_nats_resume(agg_nats *c, int i) {
  CHECK(agg_proc_signal(&c->s[i].proc, SIGCONT) == 0);
  c->s[i].paused = 0;
}

void agg_nats_restart(agg_nats *c, int i) {
  if (atomic_load(&c->s[i].proc.pid) > 0) agg_nats_kill(c, i);
  start_server(c, i);
}

/* The stream's entry in server i's /jsz, borrowed from j, or NULL. */
static json_t *stream_detail(json_t *j, const char *stream) {
  size_t ai, si;
  json_t *acc, *st;
  json_array_foreach(json_object_get(j, "account_details"), ai, acc) {
    json_array_foreach(json_object_get(acc, "stream_detail"), si, st) {
      if (!strcmp(json_string_value(json_object_get(st, "name")) ?: "", stream))
        return st;
    }
  }
  return NULL;
}

static const char *jsz_streams = "/jsz?accounts=true&streams=true&config=true";

int agg_nats_stream_leader(agg_nats *c, const char *stream) {
  for (int i = 0; i < AGG_NATS_SERVERS; i++) {
    json_t *j = agg_nats_monitor(c, i, jsz_streams);
    json_t *st = stream_detail(j, stream);
    const char *l = json_string_value(
        json_object_get(json_object_get(st, "cluster"), "leader"));
    int self = l && !strcmp(l, c->s[i].name);
    json_decref(j);
    if (self) return i;
  }
  return -1;
}

int agg_nats_wait_stream_leader(agg_nats *c, const char *stream, int not,
                                int ms) {
  double end = agg_test_now_ms() + ms;
  do {
    int l = agg_nats_stream_leader(c, stream);
    if (l >= 0 && l != not ) return l;
    agg_test_sleep_ms(50);
  } while (agg_test_now_ms() < end);
  return -1;
}

int agg_nats_replica_current(agg_nats *c, const char *stream, int i) {
  int l = agg_nats_stream_leader(c, stream);
  if (l < 0) return -1;
  if (l == i) return 1;
  json_t *j = agg_nats_monitor(c, l, jsz_streams);
  json_t *st = stream_detail(j, stream), *r;
  int current = 0;
  size_t k;
  json_array_foreach(
      json_object_get(json_object_get(st, "cluster"), "replicas"), k, r) {
    if (!strcmp(json_string_value(json_object_get(r, "name")) ?: "",
                c->s[i].name))
      current = json_is_true(json_object_get(r, "current")) &&
                json_number_value(json_object_get(r, "lag")) == 0;
  }
  json_decref(j);
  return current;
}

void agg_nats_teardown(agg_nats *c) {
  for (int i = 0; i < AGG_NATS_SERVERS; i++)
    if (atomic_load(&c->s[i].proc.pid) > 0) agg_nats_kill(c, i);
  if (getenv("AGG_KEEP"))
    agg_test_log("nats: kept %s (AGG_KEEP)", c->dir);
  else
    agg_test_rmdir(c->dir);
}
