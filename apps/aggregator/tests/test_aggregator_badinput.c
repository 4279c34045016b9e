/*
 * test_aggregator_badinput.c: hostile and broken input gets a clear refusal,
 * costs bounded resources, and never takes the service down.
 *
 * In process against SQLite, --conn-timeout 2:
 *   - bodies over the limit: 413 by Content-Length and for a chunked body
 *     that outgrows it;
 *   - field limits, each 400 with its reason: user_id over 64 bytes, event
 *     name over 64 bytes, control characters, "data" nested deeper than 32
 *     levels or larger than 32 KiB, wrong types; the same in a batch line;
 *   - non-JSON bodies: text, binary with NUL bytes, a JSON array, a top-level
 *     string, invalid UTF-8;
 *   - a 100 KiB header and a 100 KiB URL: refused with a 4xx, connection
 *     closed;
 *   - slowloris: 50 connections that send half a request head and go quiet
 *     are closed by the server within the connection timeout, and the
 *     service keeps answering meanwhile;
 *   - binding: the default listen address is 127.0.0.1, the socket in
 *     /proc/net/tcp is bound to 127.0.0.1 (not 0.0.0.0), and the port is not
 *     reachable on the machine's other IPv4 addresses (if it has any).
 * Afterwards /healthz still answers and only the one good event is stored.
 */
#include "agg_testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

static uint16_t port;

static void expect(const char *body, size_t len, int want, const char *substr) {
  char *resp;
  int st = agg_test_http(port, "POST", "/track", body, len, &resp, NULL);
  CHECK_MSG(st == want, "-> %d (want %d): %s for %.80s", st, want, resp, body);
  if (substr)
    CHECK_MSG(strstr(resp, substr) != NULL, "'%s' lacks '%s'", resp, substr);
  free(resp);
}

static void expect_s(const char *body, int want, const char *substr) {
  expect(body, strlen(body), want, substr);
}

static int raw_connect(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons(port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  return fd;
}

static void send_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return; /* the server may close early: that is allowed */
    p += w;
    n -= (size_t)w;
  }
}

/* Reads until the peer closes or ms pass; returns the status of the first
   response (0 if none), *closed = 1 if the peer closed. */
static int raw_read(int fd, int ms, int *closed) {
  char buf[8192];
  size_t len = 0;
  double end = agg_test_now_ms() + ms;
  *closed = 0;
  for (;;) {
    int left = (int)(end - agg_test_now_ms());
    if (left <= 0) break;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, left) <= 0) continue;
    ssize_t r = recv(fd, buf + len, sizeof buf - 1 - len, 0);
    if (r <= 0) {
      *closed = 1;
      break;
    }
    len += (size_t)r;
    if (len == sizeof buf - 1) len = 0; /* the status line is long read */
  }
  buf[len] = '\0';
  return strncmp(buf, "HTTP/1.", 7) == 0 ? atoi(buf + 9) : 0;
}

static void limits(void) {
  /* Content-Length over the limit, and a chunked body that outgrows it. */
  size_t big = 70 * 1024;
  char *huge = malloc(big + 1);
  CHECK(huge);
  memset(huge, ' ', big);
  huge[big] = '\0';
  expect(huge, big, 413, "larger than 65536");
  int fd = raw_connect();
  const char *head = "POST /track HTTP/1.1\r\nHost: x\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n";
  send_all(fd, head, strlen(head));
  for (int i = 0; i < 20; i++) {
    char chunk[32];
    snprintf(chunk, sizeof chunk, "%x\r\n", 8192);
    send_all(fd, chunk, strlen(chunk));
    send_all(fd, huge, 8192);
    send_all(fd, "\r\n", 2);
  }
  send_all(fd, "0\r\n\r\n", 5);
  int closed;
  int st = raw_read(fd, 2000, &closed);
  CHECK_MSG(st == 413, "chunked 160 KiB body -> %d (want 413)", st);
  close(fd);

  /* Field limits, each with its reason. */
  char user[100], ev[200];
  memset(user, 'u', 65);
  user[65] = '\0';
  snprintf(ev, sizeof ev, "{\"user_id\":\"%s\",\"seq\":1,\"event\":\"x\"}",
           user);
  expect_s(ev, 400, "\\\"user_id\\\" longer than 64 bytes");
  snprintf(ev, sizeof ev, "{\"user_id\":1,\"seq\":1,\"event\":\"%s\"}", user);
  expect_s(ev, 400, "\\\"event\\\" must be 1..64 bytes");
  expect_s("{\"user_id\":\"a\\u0001b\",\"seq\":1,\"event\":\"x\"}", 400,
           "control characters");
  expect_s("{\"user_id\":1,\"seq\":1,\"event\":\"x\\ny\"}", 400,
           "control characters");
  expect_s("{\"user_id\":-1,\"seq\":1,\"event\":\"x\"}", 400, "negative");
  expect_s("{\"user_id\":1,\"seq\":1.5,\"event\":\"x\"}", 400,
           "non-negative integer");
  expect_s("{\"user_id\":[1],\"seq\":1,\"event\":\"x\"}", 400,
           "integer or a string");
  expect_s("{\"user_id\":1,\"seq\":1,\"event\":\"x\",\"user_id\":2}", 400,
           "duplicate");
  /* data 33 levels deep (32 is the limit). */
  char deep[512];
  size_t o = (size_t)snprintf(deep, sizeof deep,
                              "{\"user_id\":\"good\",\"seq\":1,\"event\":\"x\","
                              "\"data\":");
  for (int i = 0; i < 33; i++)
    o += (size_t)snprintf(deep + o, sizeof deep - o, "{\"a\":");
  o += (size_t)snprintf(deep + o, sizeof deep - o, "1");
  for (int i = 0; i < 33; i++)
    deep[o++] = '}';
  deep[o++] = '}';
  deep[o] = '\0';
  expect_s(deep, 400, "nested deeper than 32 levels");
  /* 40 KiB of data in a 64 KiB body. */
  size_t dl = 40 * 1024;
  char *fat = malloc(dl + 128);
  CHECK(fat);
  o = (size_t)snprintf(fat, dl + 128,
                       "{\"user_id\":1,\"seq\":1,\"event\":\"x\","
                       "\"data\":{\"s\":\"");
  memset(fat + o, 'a', dl);
  o += dl;
  o += (size_t)snprintf(fat + o, dl + 128 - o, "\"}}");
  expect(fat, o, 400, "\\\"data\\\" larger than 32768 bytes");
  free(fat);

  /* Not JSON at all, or the wrong JSON. */
  expect_s("hello, world", 400, "invalid JSON");
  expect("{\"user_id\":1,\0\"seq\":1}", 22, 400, "invalid JSON");
  expect_s("[{\"user_id\":1,\"seq\":1,\"event\":\"x\"}]", 400,
           "must be a JSON object");
  expect_s("\"just a string\"", 400, NULL);
  expect_s("{\"user_id\":\"\xff\xfe\",\"seq\":1,\"event\":\"x\"}", 400,
           "invalid JSON");

  /* The same in a batch: per-line errors, nothing accepted. */
  char *resp;
  char batch[1024];
  snprintf(batch, sizeof batch, "%s\nnot json\n%s\n", ev, deep);
  st = agg_test_http(port, "POST", "/track/batch", batch, strlen(batch), &resp,
                     NULL);
  CHECK_MSG(st == 400 && strstr(resp, "\"invalid\":3") &&
                strstr(resp, "\"line\":3") && strstr(resp, "nested deeper"),
            "batch -> %d %s", st, resp);
  free(resp);

  /* 100 KiB of header, then 100 KiB of URL. */
  size_t hl = 100 * 1024;
  char *req = malloc(hl + 256);
  CHECK(req);
  for (int k = 0; k < 2; k++) {
    memset(req, 'a', hl + 256);
    if (k == 0) {
      memcpy(req, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", 39);
      memcpy(req + hl, "\r\n\r\n", 5);
    } else {
      memcpy(req, "GET /", 5);
      memcpy(req + hl, " HTTP/1.1\r\nHost: x\r\n\r\n", 23);
    }
    fd = raw_connect();
    send_all(fd, req, strlen(req));
    st = raw_read(fd, 3000, &closed);
    agg_test_log("100 KiB %s -> %d, connection %s", k ? "URL" : "header", st,
                 closed ? "closed" : "open");
    CHECK_MSG(st >= 400 && st < 500, "huge %s -> %d (want 4xx)",
              k ? "URL" : "header", st);
    CHECK(closed);
    close(fd);
  }
  free(req);
  free(huge);
  agg_test_log("limits and bad bodies: each refused with its reason");
}

static void slowloris(void) {
  enum { N = 50 };
  int fds[N];
  const char *half = "POST /track HTTP/1.1\r\nHost: x\r\nContent-Le";
  for (int i = 0; i < N; i++) {
    fds[i] = raw_connect();
    send_all(fds[i], half, strlen(half));
  }
  double t0 = agg_test_now_ms();
  /* The service answers others meanwhile. */
  CHECK(agg_test_http(port, "GET", "/healthz", NULL, 0, NULL, NULL) == 200);
  double max_ms = 0;
  for (int i = 0; i < N; i++) {
    int closed;
    int st = raw_read(fds[i], 8000, &closed);
    double ms = agg_test_now_ms() - t0;
    if (ms > max_ms) max_ms = ms;
    CHECK_MSG(closed, "idle connection %d still open after 8 s (status %d)", i,
              st);
    close(fds[i]);
  }
  agg_test_log("slowloris: %d idle half-requests closed by the server "
               "within %.1f s (--conn-timeout 2)",
               N, max_ms / 1e3);
  CHECK(max_ms < 6000);
}

/* The listening socket for port in /proc/net/tcp: its local address as
   the kernel's hex ("0100007F" is 127.0.0.1). */
static int listen_addr(char *hex, size_t n) {
  FILE *f = fopen("/proc/net/tcp", "r");
  CHECK(f);
  char line[512];
  int found = 0;
  while (fgets(line, sizeof line, f)) {
    char local[64], rem[64], st[8];
    if (sscanf(line, " %*d: %63s %63s %7s", local, rem, st) != 3) continue;
    char *colon = strchr(local, ':');
    if (!colon || strcmp(st, "0A")) continue; /* 0A = LISTEN */
    if ((uint16_t)strtoul(colon + 1, NULL, 16) != port) continue;
    *colon = '\0';
    snprintf(hex, n, "%s", local);
    found++;
  }
  fclose(f);
  return found;
}

static void binding(const char *dir) {
  agg_args a;
  agg_args_defaults(&a);
  CHECK(!strcmp(a.serve.host, "127.0.0.1"));
  char hex[64];
  CHECK_EQ(listen_addr(hex, sizeof hex), 1);
  CHECK_MSG(!strcmp(hex, "0100007F"), "listening on %s, not 127.0.0.1", hex);
  struct ifaddrs *ifs, *i;
  int others = 0;
  CHECK(getifaddrs(&ifs) == 0);
  for (i = ifs; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    struct sockaddr_in sa = *(struct sockaddr_in *)i->ifa_addr;
    if ((ntohl(sa.sin_addr.s_addr) >> 24) == 127) continue;
    sa.sin_port = htons(port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    close(fd);
    char ip[32];
    inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
    CHECK_MSG(rc != 0 && e == ECONNREFUSED,
              "port %u reachable on %s (rc %d errno %d)", port, ip, rc, e);
    agg_test_log("binding: %s:%u refused", ip, port);
    others++;
  }
  freeifaddrs(ifs);
  agg_test_log("binding: default 127.0.0.1, listening socket 127.0.0.1:%u "
               "(/proc/net/tcp); %d other local IPv4 address%s refused",
               port, others, others == 1 ? "" : "es");
  (void)dir;
}

int main(void) {
  char dir[512], db[1100];
  agg_test_tmpdir(dir, sizeof dir);
  snprintf(db, sizeof db, "sqlite:%s/bad.db", dir);
  agg_serve_opts o = agg_test_opts(db);
  o.conn_timeout = 2;
  agg_service *svc = agg_test_start(&o);
  port = agg_service_port(svc);
  limits();
  slowloris();
  binding(dir);
  /* Still serving; exactly the one good event got in. */
  CHECK(agg_test_http(port, "GET", "/healthz", NULL, 0, NULL, NULL) == 200);
  expect_s("{\"user_id\":\"good\",\"seq\":2,\"event\":\"x\"}", 202, NULL);
  agg_counters c;
  CHECK(agg_service_stop(svc, &c) == 0);
  CHECK_EQ(c.accepted, 1);
  CHECK_EQ(c.stored, 1);
  agg_test_log("after all that: %llu bad requests, %llu too large, %llu "
               "invalid batch lines, 1 event stored",
               (unsigned long long)c.bad_requests,
               (unsigned long long)c.too_large,
               (unsigned long long)c.invalid_lines);
  agg_test_rmdir(dir);
  return 0;
}
