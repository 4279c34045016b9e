/*
 * web_route.c: `weirctl web`'s request parser (see web_route.h).
 *
 * Strict on purpose: the dashboard's own page is the only client meant to
 * call it, so anything it would not send is refused with a precise status
 * instead of guessed at. Paths are matched whole (no normalisation, so no
 * "/api/../" tricks), query values are percent-decoded once and must then
 * be words the console accepts (printable, no space), numbers are decimal
 * in a range. The console request line is built here from checked parts
 * only, never copied from the URL.
 */
#include "web_route.h"
#include "args.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(web_route *r, int status, char *err, size_t errn,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail(web_route *r, int status, char *err, size_t errn,
                const char *fmt, ...) {
  r->status = status;
  if (err && errn) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errn, fmt, ap);
    va_end(ap);
  }
  return status;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes s[0..n) into out (cap bytes, NUL-terminated); '+' is a
   space. -1 on a bad escape, a NUL byte or no room. */
static int decode(const char *s, size_t n, char *out, size_t cap) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)s[i];
    if (c == '%') {
      if (i + 2 >= n) return -1;
      int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
      if (h < 0 || l < 0) return -1;
      c = h * 16 + l;
      i += 2;
    } else if (c == '+') {
      c = ' ';
    }
    if (c == 0 || k + 1 >= cap) return -1;
    out[k++] = (char)c;
  }
  out[k] = 0;
  return 0;
}

/* A word the console takes: 1..63 printable ASCII bytes, no space. (The
   console also takes UTF-8 names; the dashboard, which only sends back the
   pids and names it was shown, keeps to ASCII: docs/DEVIATIONS.md.) */
static int is_word(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 63) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= ' ' || c >= 0x7F) return 0;
  }
  return 1;
}

/* A node name: [A-Za-z0-9_.-], 1..63, not starting with '.'. */
static int is_node(const char *s, size_t n) {
  if (n == 0 || n > 63 || s[0] == '.') return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
      return 0;
  }
  return 1;
}

static const char *const attrs[] = {
    "message_queue_len", "mailbox_bytes", "memory",  "reductions",
    "messages_in",       "messages_out",  "dropped", "queue_high_water"};

static int is_attr(const char *s) {
  for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++)
    if (strcmp(s, attrs[i]) == 0) return 1;
  return 0;
}

/* The query's parameters this parser knows. */
typedef struct query {
  char attr[64], n[16], pid[64], name[64], ms[16];
  int has_attr, has_n, has_pid, has_name, has_ms;
} query;

static int parse_query(const char *q, size_t qn, query *x, web_route *r,
                       char *err, size_t errn) {
  size_t i = 0;
  while (i < qn) {
    size_t end = i;
    while (end < qn && q[end] != '&')
      end++;
    if (end > i) {
      size_t eq = i;
      while (eq < end && q[eq] != '=')
        eq++;
      char key[16], val[192];
      if (eq == end || eq - i >= sizeof key)
        return fail(r, 400, err, errn, "malformed query parameter");
      memcpy(key, q + i, eq - i);
      key[eq - i] = 0;
      if (decode(q + eq + 1, end - eq - 1, val, sizeof val))
        return fail(r, 400, err, errn, "malformed value of '%s'", key);
      char *dst = NULL;
      size_t cap = 0;
      int *has = NULL;
      if (strcmp(key, "attr") == 0)
        dst = x->attr, cap = sizeof x->attr, has = &x->has_attr;
      else if (strcmp(key, "n") == 0)
        dst = x->n, cap = sizeof x->n, has = &x->has_n;
      else if (strcmp(key, "pid") == 0)
        dst = x->pid, cap = sizeof x->pid, has = &x->has_pid;
      else if (strcmp(key, "name") == 0)
        dst = x->name, cap = sizeof x->name, has = &x->has_name;
      else if (strcmp(key, "ms") == 0)
        dst = x->ms, cap = sizeof x->ms, has = &x->has_ms;
      else if (strcmp(key, "token") == 0)
        dst = r->token, cap = sizeof r->token, has = &r->has_token;
      else if (strcmp(key, "t") == 0) /* a cache buster: ignored */
        dst = NULL;
      else
        return fail(r, 400, err, errn, "unknown query parameter '%s'", key);
      if (dst) {
        if (strlen(val) >= cap)
          return fail(r, 400, err, errn, "value of '%s' too long", key);
        memcpy(dst, val, strlen(val) + 1);
        *has = 1;
      }
    }
    i = end + 1;
  }
  return 200;
}

/* The commands a page may send, and what each takes. */
static int node_cmd(const char *cmd, const query *x, web_route *r, char *err,
                    size_t errn) {
  unsigned v;
  if (strcmp(cmd, "node_stats") == 0 || strcmp(cmd, "alarms") == 0 ||
      strcmp(cmd, "crashes") == 0 || strcmp(cmd, "tree") == 0 ||
      strcmp(cmd, "metrics") == 0 || strcmp(cmd, "help") == 0) {
    snprintf(r->request, sizeof r->request, "%s", cmd);
    r->multiline = strcmp(cmd, "metrics") == 0;
    return 200;
  }
  if (strcmp(cmd, "proc_count") == 0 || strcmp(cmd, "top") == 0) {
    unsigned n = 20;
    const char *attr = x->has_attr ? x->attr : "message_queue_len";
    if (!is_attr(attr))
      return fail(r, 400, err, errn, "unknown attribute '%.40s'", attr);
    if (x->has_n && weirctl_num(x->n, 1, WEB_TOP_MAX, &n))
      return fail(r, 400, err, errn, "n must be a number from 1 to %d",
                  WEB_TOP_MAX);
    snprintf(r->request, sizeof r->request, "proc_count %s %u", attr, n);
    if (cmd[0] == 't') r->kind = WEB_TOP;
    return 200;
  }
  if (strcmp(cmd, "info") == 0) {
    if (!x->has_pid || !is_word(x->pid))
      return fail(r, 400, err, errn, "info needs pid=PID|NAME (a word)");
    snprintf(r->request, sizeof r->request, "info %s", x->pid);
    return 200;
  }
  if (strcmp(cmd, "partitions") == 0) {
    if (!x->has_name || !is_word(x->name))
      return fail(r, 400, err, errn, "partitions needs name=NAME (a word)");
    snprintf(r->request, sizeof r->request, "partitions %s", x->name);
    return 200;
  }
  if (strcmp(cmd, "scheduler_usage") == 0) {
    v = 500;
    if (x->has_ms && weirctl_num(x->ms, 1, 1000, &v))
      return fail(r, 400, err, errn, "ms must be a number from 1 to 1000");
    snprintf(r->request, sizeof r->request, "scheduler_usage %u", v);
    r->ms = v;
    return 200;
  }
  return fail(r, 404, err, errn, "no such command '%.40s'", cmd);
}

int web_route_parse(const char *method, const char *target, web_route *r,
                    char *err, size_t errn) {
  memset(r, 0, sizeof *r);
  r->status = 200;
  if (err && errn) err[0] = 0;
  if (!method || !target) return fail(r, 400, err, errn, "bad request");
  size_t tn = strnlen(target, WEB_TARGET_MAX + 1);
  if (tn > WEB_TARGET_MAX)
    return fail(r, 414, err, errn, "request target longer than %d bytes",
                WEB_TARGET_MAX);
  if (strcmp(method, "GET") != 0)
    return fail(r, 405, err, errn, "only GET is served (read-only)");
  if (target[0] != '/') return fail(r, 400, err, errn, "bad request target");
  for (size_t i = 0; i < tn; i++) {
    unsigned char c = (unsigned char)target[i];
    if (c <= ' ' || c >= 0x7F)
      return fail(r, 400, err, errn, "bad byte in the request target");
  }
  const char *qm = memchr(target, '?', tn);
  size_t pn = qm ? (size_t)(qm - target) : tn;
  query x;
  memset(&x, 0, sizeof x);
  if (qm && parse_query(qm + 1, tn - pn - 1, &x, r, err, errn) != 200)
    return r->status;
#define PATH_IS(s) (pn == sizeof(s) - 1 && memcmp(target, s, pn) == 0)
  if (PATH_IS("/") || PATH_IS("/index.html")) {
    r->kind = WEB_PAGE;
  } else if (PATH_IS("/app.js")) {
    r->kind = WEB_APP_JS;
  } else if (PATH_IS("/style.css")) {
    r->kind = WEB_STYLE;
  } else if (PATH_IS("/chart.js")) {
    r->kind = WEB_CHART_JS;
  } else if (PATH_IS("/api/nodes")) {
    r->kind = WEB_NODES;
  } else if (pn > 10 && memcmp(target, "/api/node/", 10) == 0) {
    const char *name = target + 10;
    const char *slash = memchr(name, '/', pn - 10);
    if (!slash) return fail(r, 404, err, errn, "no such path");
    size_t nn = (size_t)(slash - name);
    if (!is_node(name, nn)) return fail(r, 404, err, errn, "bad node name");
    memcpy(r->node, name, nn);
    r->node[nn] = 0;
    char cmd[32];
    size_t cn = pn - 10 - nn - 1;
    if (cn == 0 || cn >= sizeof cmd)
      return fail(r, 404, err, errn, "no such path");
    memcpy(cmd, slash + 1, cn);
    cmd[cn] = 0;
    if (memchr(cmd, '/', cn)) return fail(r, 404, err, errn, "no such path");
    r->kind = WEB_NODE;
    if (node_cmd(cmd, &x, r, err, errn) != 200) return r->status;
  } else {
    return fail(r, 404, err, errn, "no such path");
  }
#undef PATH_IS
  return 200;
}

int web_token_eq(const char *a, const char *b, size_t n) {
  volatile unsigned char d = 0;
  for (size_t i = 0; i < n; i++)
    d |= (unsigned char)(a[i] ^ b[i]);
  return d == 0;
}
