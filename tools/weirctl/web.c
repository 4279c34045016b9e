/*
 * web.c: `weirctl web`, a read-only dashboard of the live nodes over HTTP.
 *
 * The browser loads one page (index.html, app.js, style.css and Debian's
 * Chart.js, all embedded in this binary at build time: nothing is fetched
 * from elsewhere at run time) and polls /api/ once a second. Each /api/
 * request becomes one console request line to one node (its socket in the
 * run dir, or the one given with -s), and the node's JSON reply is relayed
 * as it came once jansson has found it to be JSON: the page renders it. So
 * the dashboard can do exactly what `weirctl` can and no more: it runs no
 * code on a node and changes nothing there. `top` is the one composite:
 * proc_count and then info for each pid, on one connection.
 *
 * Security model (docs/DIAGNOSTICS.md): the server binds 127.0.0.1 by
 * default; any other address needs --token FILE, and then every request
 * must carry the token (Authorization: Bearer, the cookie the page gets
 * when it is opened with ?token=, or ?token=), compared in constant time.
 * Only GET is served; the request target is parsed by web_route.c (pure,
 * fuzzed); libmicrohttpd refuses a request whose headers or URL do not fit
 * its per-connection memory. A node that is gone, silent or answers
 * garbage is a 502 with a JSON error the page shows, never a crash here.
 */
#include "args.h"
#include "client.h"
#include "web_route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT;
#else
typedef enum MHD_Result MHD_RESULT;
#endif

/* The embedded files (generated at build time by cmake/embed.cmake). */
extern const unsigned char weirctl_web_index[], weirctl_web_app[],
    weirctl_web_style[], weirctl_web_chart[];
extern const size_t weirctl_web_index_len, weirctl_web_app_len,
    weirctl_web_style_len, weirctl_web_chart_len;

#define NODE_TIMEOUT_MS 5000
#define MEMORY_LIMIT    (16 * 1024) /* per connection: headers and URL */

static struct {
  const char *socket; /* -s SOCKET, or NULL */
  char token[128];    /* "" = none required */
  size_t token_len;
} web;

static volatile sig_atomic_t quit_flag;
static void on_signal(int sig) {
  (void)sig;
  quit_flag = 1;
}

/* ---- talking to a node ------------------------------------------------ */

/* The socket of node `name`: -s's (named by its file name less ".sock"),
   or the run dir's. */
static void node_path(const char *name, char *path, size_t n) {
  if (web.socket) {
    const char *base = strrchr(web.socket, '/');
    base = base ? base + 1 : web.socket;
    size_t k = strlen(base);
    if (k > 5 && strcmp(base + k - 5, ".sock") == 0) k -= 5;
    if (strlen(name) == k && strncmp(base, name, k) == 0) {
      snprintf(path, n, "%s", web.socket);
      return;
    }
  }
  char dir[200];
  weirctl_run_dir(dir, sizeof dir);
  snprintf(path, n, "%s/%s.sock", dir, name);
}

char *weirctl_ask(int fd, const char *req, int multiline, int timeout_ms,
                  char *err, size_t errn) {
  char line[300];
  int ln = snprintf(line, sizeof line, "%s\n", req);
  if (ln < 0 || (size_t)ln >= sizeof line) {
    snprintf(err, errn, "request too long");
    return NULL;
  }
  for (int off = 0; off < ln;) {
    ssize_t k = send(fd, line + off, (size_t)(ln - off), MSG_NOSIGNAL);
    if (k <= 0) {
      snprintf(err, errn, "cannot send to the node: %s", strerror(errno));
      return NULL;
    }
    off += (int)k;
  }
  size_t cap = 8192, len = 0;
  char *b = malloc(cap);
  if (!b) {
    snprintf(err, errn, "out of memory");
    return NULL;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    b[len] = 0;
    if (len && b[len - 1] == '\n') {
      if (!multiline || b[0] == '{') break;
      if (len >= 6 && strcmp(b + len - 6, "# EOF\n") == 0) break;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long el = (long)(t1.tv_sec - t0.tv_sec) * 1000 +
              (t1.tv_nsec - t0.tv_nsec) / 1000000;
    struct pollfd pf = {fd, POLLIN, 0};
    int pr = el >= timeout_ms ? 0 : poll(&pf, 1, (int)(timeout_ms - el));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) {
      snprintf(err, errn, "the node did not answer within %d ms", timeout_ms);
      free(b);
      return NULL;
    }
    if (len + 4096 > cap) {
      if (cap >= 64u << 20) {
        snprintf(err, errn, "the node's reply is larger than 64 MiB");
        free(b);
        return NULL;
      }
      char *nb = realloc(b, cap *= 2);
      if (!nb) {
        snprintf(err, errn, "out of memory");
        free(b);
        return NULL;
      }
      b = nb;
    }
    ssize_t k = recv(fd, b + len, cap - len - 1, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      snprintf(err, errn, "the node closed the connection");
      free(b);
      return NULL;
    }
    len += (size_t)k;
  }
  if (multiline || memchr(b, 0, len) == NULL) return b;
  snprintf(err, errn, "the node's reply holds a NUL byte");
  free(b);
  return NULL;
}

/* A node's JSON reply, checked: NULL with the reason in err if it is not
   JSON (garbage from the node). */
static json_t *ask_json(int fd, const char *req, int timeout_ms, char *err,
                        size_t errn) {
  char *r = weirctl_ask(fd, req, 0, timeout_ms, err, errn);
  if (!r) return NULL;
  json_error_t je;
  json_t *j = json_loads(r, JSON_REJECT_DUPLICATES, &je);
  free(r);
  if (!j) snprintf(err, errn, "malformed reply from the node: %s", je.text);
  return j;
}

/* ---- answers ------------------------------------------------------------ */

static MHD_RESULT answer(struct MHD_Connection *c, unsigned status,
                         const char *type, const void *body, size_t n,
                         enum MHD_ResponseMemoryMode mode, const char *cookie) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(n, (void *)(uintptr_t)body, mode);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Content-Type", type);
  MHD_add_response_header(r, "Cache-Control", "no-store");
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(r, "X-Frame-Options", "DENY");
  MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
  MHD_add_response_header(r, "Content-Security-Policy",
                          "default-src 'self'; img-src 'self' data:; "
                          "frame-ancestors 'none'");
  if (cookie) MHD_add_response_header(r, "Set-Cookie", cookie);
  MHD_RESULT rc = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return rc;
}

/* {"error": msg, "node": node}, status. */
static MHD_RESULT answer_error(struct MHD_Connection *c, unsigned status,
                               const char *msg, const char *node) {
  json_t *o = json_pack("{s:s}", "error", msg);
  if (o && node) json_object_set_new(o, "node", json_string(node));
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (!s)
    return answer(c, status, "application/json", "{}", 2,
                  MHD_RESPMEM_PERSISTENT, NULL);
  return answer(c, status, "application/json", s, strlen(s),
                MHD_RESPMEM_MUST_FREE, NULL);
}

static MHD_RESULT answer_json(struct MHD_Connection *c, json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT);
  if (!s) return answer_error(c, 500, "out of memory", NULL);
  return answer(c, 200, "application/json", s, strlen(s), MHD_RESPMEM_MUST_FREE,
                NULL);
}

/* /api/nodes: the run dir's live nodes, and -s's socket live or not. */
static MHD_RESULT api_nodes(struct MHD_Connection *c) {
  char dir[200];
  weirctl_run_dir(dir, sizeof dir);
  node_ent nodes[256];
  int n = weirctl_list_nodes(dir, nodes, 256);
  if (n < 0) n = 0;
  json_t *arr = json_array();
  for (int i = 0; i < n; i++)
    json_array_append_new(arr, json_pack("{s:s,s:s,s:b}", "node", nodes[i].name,
                                         "socket", nodes[i].path, "live", 1));
  if (web.socket) {
    const char *base = strrchr(web.socket, '/');
    base = base ? base + 1 : web.socket;
    char name[64];
    size_t k = strlen(base);
    if (k > 5 && strcmp(base + k - 5, ".sock") == 0) k -= 5;
    snprintf(name, sizeof name, "%.*s", (int)k, base);
    int fd = weirctl_sock_open(web.socket), dup = 0;
    for (int i = 0; i < n; i++)
      dup |= strcmp(nodes[i].path, web.socket) == 0;
    if (!dup) {
      json_t *o = json_pack("{s:s,s:s,s:b}", "node", name, "socket", web.socket,
                            "live", fd >= 0);
      if (fd < 0) json_object_set_new(o, "error", json_string(strerror(errno)));
      json_array_append_new(arr, o);
    }
    if (fd >= 0) close(fd);
  }
  json_t *o = json_pack("{s:s,s:o}", "run_dir", dir, "nodes", arr);
  MHD_RESULT rc = answer_json(c, o);
  json_decref(o);
  return rc;
}

/* top: proc_count, then each process's info, merged. */
static MHD_RESULT api_top(struct MHD_Connection *c, int fd,
                          const web_route *rt) {
  char err[256];
  json_t *top = ask_json(fd, rt->request, NODE_TIMEOUT_MS, err, sizeof err);
  if (!top) return answer_error(c, 502, err, rt->node);
  if (!json_is_array(top)) {
    MHD_RESULT rc = json_object_get(top, "error")
                        ? answer_json(c, top)
                        : answer_error(c, 502, "unexpected reply", rt->node);
    json_decref(top);
    return rc;
  }
  json_t *out = json_array();
  size_t i;
  json_t *e;
  json_array_foreach(top, i, e) {
    const char *pid = json_string_value(json_object_get(e, "pid"));
    char req[96];
    if (!pid || strlen(pid) > 60 || strchr(pid, ' ') || strchr(pid, '\n'))
      continue;
    snprintf(req, sizeof req, "info %s", pid);
    json_t *in = ask_json(fd, req, NODE_TIMEOUT_MS, err, sizeof err);
    if (!in) {
      json_decref(out);
      json_decref(top);
      return answer_error(c, 502, err, rt->node);
    }
    if (json_is_object(in) && !json_object_get(in, "error")) {
      json_object_set(in, "value", json_object_get(e, "value"));
      json_array_append(out, in);
    }
    json_decref(in);
  }
  json_t *o = json_pack("{s:o}", "processes", out);
  MHD_RESULT rc = answer_json(c, o);
  json_decref(o);
  json_decref(top);
  return rc;
}

static MHD_RESULT api_node(struct MHD_Connection *c, const web_route *rt) {
  char path[300], err[512];
  node_path(rt->node, path, sizeof path);
  int fd = weirctl_sock_open(path);
  if (fd < 0) {
    snprintf(err, sizeof err, "node %s is not running (%s: %s)", rt->node, path,
             strerror(errno));
    return answer_error(c, 502, err, rt->node);
  }
  MHD_RESULT rc;
  if (rt->kind == WEB_TOP) {
    rc = api_top(c, fd, rt);
    close(fd);
    return rc;
  }
  char *r = weirctl_ask(fd, rt->request, rt->multiline,
                        NODE_TIMEOUT_MS + (int)rt->ms, err, sizeof err);
  close(fd);
  if (!r) return answer_error(c, 502, err, rt->node);
  if (rt->multiline && r[0] != '{')
    return answer(c, 200, "text/plain; charset=utf-8", r, strlen(r),
                  MHD_RESPMEM_MUST_FREE, NULL);
  json_error_t je;
  json_t *j = json_loads(r, JSON_REJECT_DUPLICATES, &je);
  if (!j) {
    free(r);
    snprintf(err, sizeof err, "malformed reply from node %s: %s", rt->node,
             je.text);
    return answer_error(c, 502, err, rt->node);
  }
  json_decref(j);
  size_t n = strlen(r);
  while (n && (r[n - 1] == '\n' || r[n - 1] == '\r'))
    r[--n] = 0;
  return answer(c, 200, "application/json", r, n, MHD_RESPMEM_MUST_FREE, NULL);
}

/* ---- the token ------------------------------------------------------------
 */

/* Is s (n bytes) the token? Constant time in the token's length. */
static int token_is(const char *s, size_t n) {
  char buf[sizeof web.token];
  memset(buf, 0, sizeof buf);
  memcpy(buf, s, n < sizeof buf ? n : sizeof buf);
  int eq = web_token_eq(buf, web.token, web.token_len);
  return eq & (n == web.token_len);
}

static int authorized(struct MHD_Connection *c, const web_route *rt) {
  if (!web.token_len) return 1;
  const char *h =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  if (h && strncmp(h, "Bearer ", 7) == 0 && token_is(h + 7, strlen(h + 7)))
    return 1;
  const char *k = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, "weir_token");
  if (k && token_is(k, strlen(k))) return 1;
  return rt->has_token && token_is(rt->token, strlen(rt->token));
}

/* ---- the server -----------------------------------------------------------
 */

/* The raw request target, as the client sent it (query and all), for
   web_route_parse: kept as the connection's context. */
static void *uri_log(void *cls, const char *uri, struct MHD_Connection *c) {
  (void)cls;
  (void)c;
  return strdup(uri ? uri : "");
}

static void completed(void *cls, struct MHD_Connection *c, void **ctx,
                      enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)c;
  (void)toe;
  free(*ctx);
  *ctx = NULL;
}

static MHD_RESULT handle(void *cls, struct MHD_Connection *c, const char *url,
                         const char *method, const char *version,
                         const char *upload, size_t *upload_size, void **ctx) {
  (void)cls;
  (void)url;
  (void)version;
  (void)upload;
  (void)upload_size;
  const char *target = *ctx ? (const char *)*ctx : url;
  web_route rt;
  char err[160];
  int status = web_route_parse(method, target, &rt, err, sizeof err);
  /* the token before anything else, so a stranger learns nothing */
  if (!authorized(c, &rt))
    return answer_error(c, 401, "a valid token is needed", NULL);
  if (status != 200) return answer_error(c, (unsigned)status, err, NULL);
  char cookie[200];
  const char *set = NULL;
  if (web.token_len && rt.has_token && rt.kind == WEB_PAGE) {
    snprintf(cookie, sizeof cookie,
             "weir_token=%s; Path=/; HttpOnly; SameSite=Strict", web.token);
    set = cookie;
  }
  switch (rt.kind) {
  case WEB_PAGE:
    return answer(c, 200, "text/html; charset=utf-8", weirctl_web_index,
                  weirctl_web_index_len, MHD_RESPMEM_PERSISTENT, set);
  case WEB_APP_JS:
    return answer(c, 200, "text/javascript; charset=utf-8", weirctl_web_app,
                  weirctl_web_app_len, MHD_RESPMEM_PERSISTENT, NULL);
  case WEB_STYLE:
    return answer(c, 200, "text/css; charset=utf-8", weirctl_web_style,
                  weirctl_web_style_len, MHD_RESPMEM_PERSISTENT, NULL);
  case WEB_CHART_JS:
    return answer(c, 200, "text/javascript; charset=utf-8", weirctl_web_chart,
                  weirctl_web_chart_len, MHD_RESPMEM_PERSISTENT, NULL);
  case WEB_NODES:
    return api_nodes(c);
  case WEB_NODE:
  case WEB_TOP:
    return api_node(c, &rt);
  }
  return answer_error(c, 500, "unreachable", NULL);
}

/* The token file: its first line, at least 16 bytes, no spaces. */
static int read_token(const char *file) {
  FILE *f = fopen(file, "r");
  if (!f) {
    fprintf(stderr, "weirctl: cannot read token file %s: %s\n", file,
            strerror(errno));
    return -1;
  }
  char line[sizeof web.token + 2];
  if (!fgets(line, sizeof line, f)) line[0] = 0;
  fclose(f);
  size_t n = strcspn(line, "\r\n");
  line[n] = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)line[i];
    if (ch <= ' ' || ch >= 0x7F || ch == ';' || ch == ',') n = 0;
  }
  if (n < 16 || n >= sizeof web.token) {
    fprintf(stderr,
            "weirctl: the token in %s must be one line of 16 to 127 "
            "printable characters without spaces (e.g. from "
            "`head -c 24 /dev/urandom | base64`)\n",
            file);
    return -1;
  }
  memcpy(web.token, line, n + 1);
  web.token_len = n;
  return 0;
}

int weirctl_web(const weirctl_args *a) {
  char host[80];
  const char *colon = strrchr(a->listen, ':');
  snprintf(host, sizeof host, "%.*s", (int)(colon - a->listen), a->listen);
  unsigned port = (unsigned)atoi(colon + 1);
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  int loopback, v6 = host[0] == '[';
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD |
                   MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
  if (v6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    size_t hn = strlen(host);
    if (hn < 3 || host[hn - 1] != ']') goto bad;
    host[hn - 1] = 0;
    if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1) goto bad;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
    flags |= MHD_USE_IPv6;
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) goto bad;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
  }
  if (a->token && read_token(a->token) != 0) return 1;
  if (!loopback && !web.token_len) {
    fprintf(stderr,
            "weirctl: web: %s is not a loopback address; serving it needs "
            "--token FILE (or keep 127.0.0.1 and use an SSH tunnel: "
            "ssh -L 8086:127.0.0.1:8086 HOST)\n",
            a->listen);
    return 1;
  }
  web.socket = a->socket;
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, (uint16_t)port, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      (size_t)MEMORY_LIMIT, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)32,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_URI_LOG_CALLBACK,
      uri_log, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
      MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "weirctl: web: cannot listen on %s: %s\n", a->listen,
            strerror(errno));
    return 1;
  }
  printf("weirctl web: serving http://%s/%s (Ctrl-C stops)\n", a->listen,
         web.token_len ? " (token required)" : "");
  fflush(stdout);
  while (!quit_flag) /* the handler may run on any thread: poll the flag */
    poll(NULL, 0, 200);
  MHD_stop_daemon(d);
  return 0;
bad:
  fprintf(stderr, "weirctl: web: '%s' is not an IPv4 or [IPv6] address\n",
          host);
  return 1;
}
