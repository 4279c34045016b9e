/*
 * console.c: the diagnostics socket server (one per node).
 *
 * A node started with weir_rt_opts.console listens on a Unix stream socket
 * (default $WEIR_RUN_DIR/NODE.sock, run dir /tmp/weir-UID, mode 0700; the
 * socket itself 0600). A client writes one request line and reads one reply:
 * a JSON line, or for `metrics` Prometheus text ending with "# EOF". A
 * connection may carry several requests, one at a time.
 *
 * Why it is built this way:
 *   - One thread, poll(2) over the listening socket, the clients and a wake
 *     pipe. Nothing here runs on a scheduler: diagnostics read the counters
 *     the runtime keeps anyway (diag.c), so a drowning node can still be
 *     asked what drowns it.
 *   - Requests that take time (proc_window MS, scheduler_usage MS) run on a
 *     worker thread per request; their sleeps wait on a condition variable
 *     that stop signals, so weir_rt_stop never waits for a 60 s window. The
 *     other clients keep being served meanwhile.
 *   - Read-only by construction: the parser below knows only queries, and
 *     no request evaluates anything. A peer of another uid (root aside) is
 *     refused via SO_PEERCRED, a line over WEIR__CONSOLE_LINE_MAX bytes is
 *     an error and closes the connection, an idle client is dropped after
 *     weir__console_idle_ms, and a client that does not read its reply is
 *     dropped too. No input can make this thread block or crash.
 *   - The parser is a pure function (bytes -> request or error text) so
 *     that fuzz/ can hammer it without a runtime.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define MAX_CLIENTS      16
#define WRITE_TIMEOUT_MS 10000u
#define DRAIN_MS         500u
#define TOP_METRICS      10

_Atomic uint32_t weir__console_idle_ms = 10000;

/* ======================================================================== */
/* Request parser (pure)                                                     */
/* ======================================================================== */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if invalid
   (overlong forms, surrogates and code points past U+10FFFF are invalid). */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t k;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    k = 2;
    cp = c & 0x1Fu;
  } else if (c >= 0xE0 && c <= 0xEF) {
    k = 3;
    cp = c & 0x0Fu;
  } else if (c >= 0xF0 && c <= 0xF4) {
    k = 4;
    cp = c & 0x07u;
  } else {
    return 0;
  }
  if (n < k) return 0;
  for (size_t i = 1; i < k; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3Fu);
  }
  if ((k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return k;
}

static void set_err(char *err, size_t errn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errn, const char *fmt, ...) {
  if (!err || errn == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errn, fmt, ap);
  va_end(ap);
}

/* A decimal number in [lo, hi]: digits only, no sign, no spaces. */
static int parse_num(const char *s, size_t len, uint32_t lo, uint32_t hi,
                     uint32_t *out) {
  if (len == 0 || len > 10) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (v < lo || v > hi) return -1;
  *out = (uint32_t)v;
  return 0;
}

typedef struct {
  const char *p;
  size_t len;
} tok;

static int tok_is(tok t, const char *s) {
  return strlen(s) == t.len && memcmp(t.p, s, t.len) == 0;
}

static const struct {
  const char *name;
  weir__console_cmd cmd;
  int nargs;
  const char *usage;
  const char *doc;
} commands[] = {
    {"proc_count", WEIR__CMD_PROC_COUNT, 2, "ATTR N",
     "top N processes by an attribute, largest first"},
    {"proc_window", WEIR__CMD_PROC_WINDOW, 3, "ATTR N MS",
     "top N by an attribute's increase over MS ms"},
    {"info", WEIR__CMD_INFO, 1, "PID|NAME", "process_info of one process"},
    {"partitions", WEIR__CMD_PARTITIONS, 1, "NAME",
     "workers of a partition supervisor, hot keys"},
    {"node_stats", WEIR__CMD_NODE_STATS, 0, "", "node-wide counters"},
    {"scheduler_usage", WEIR__CMD_SCHEDULER_USAGE, 1, "MS",
     "busy fraction of each scheduler over MS ms"},
    {"alarms", WEIR__CMD_ALARMS, 0, "", "active overload alarms"},
    {"metrics", WEIR__CMD_METRICS, 0, "",
     "Prometheus text format, ends with a line # EOF"},
    {"crashes", WEIR__CMD_CRASHES, 0, "",
     "the last crash and supervisor reports, newest first"},
    {"trace", WEIR__CMD_TRACE, 4, "PID|NAME N SECS TAGS",
     "stream the messages a process takes, until N or SECS (TAGS: * or "
     "a,b,...); one JSON line each, then a summary"},
    {"trace_key", WEIR__CMD_TRACE_KEY, 5, "NAME KEY N SECS TAGS",
     "trace the worker of partition supervisor NAME that KEY routes to"},
    {"help", WEIR__CMD_HELP, 0, "", "this list"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static int parse_name(tok t, weir__console_req *req, char *err, size_t errn) {
  if (t.len >= sizeof req->name) {
    set_err(err, errn, "name longer than %zu bytes", sizeof req->name - 1);
    return WEIR_EINVAL;
  }
  memcpy(req->name, t.p, t.len);
  req->name[t.len] = 0;
  return WEIR_OK;
}

/* TAGS: "*" (every tag) or 1 to WEIR__TRACE_TAGS decimal tags, a,b,c. */
static int parse_tags(tok t, weir__console_req *req, char *err, size_t errn) {
  if (tok_is(t, "*")) return WEIR_OK;
  size_t s = 0;
  for (size_t i = 0; i <= t.len; i++) {
    if (i < t.len && t.p[i] != ',') continue;
    if (req->ntags == WEIR__TRACE_TAGS ||
        parse_num(t.p + s, i - s, 0, UINT32_MAX, &req->tags[req->ntags])) {
      set_err(err, errn,
              "TAGS must be * or 1 to %d numbers separated by commas",
              WEIR__TRACE_TAGS);
      return WEIR_EINVAL;
    }
    req->ntags++;
    s = i + 1;
  }
  return WEIR_OK;
}

/* KEY: digits only is an integer key (up to 2^64-1); anything else is a
   byte key, routed by its XXH3-64 (weir_partition_cast_bytes). */
static int parse_key(tok t, weir__console_req *req, char *err, size_t errn) {
  if (t.len >= sizeof req->key_text) {
    set_err(err, errn, "KEY longer than %zu bytes", sizeof req->key_text - 1);
    return WEIR_EINVAL;
  }
  memcpy(req->key_text, t.p, t.len);
  req->key_text[t.len] = 0;
  bool digits = t.len <= 20;
  uint64_t v = 0;
  for (size_t i = 0; i < t.len && digits; i++) {
    unsigned d = (unsigned)(t.p[i] - '0');
    if (t.p[i] < '0' || t.p[i] > '9' || v > (UINT64_MAX - d) / 10)
      digits = false;
    else
      v = v * 10 + d;
  }
  req->key_is_int = digits;
  req->key = digits ? v : XXH3_64bits(t.p, t.len);
  return WEIR_OK;
}

int weir__console_parse(const char *line, size_t len, weir__console_req *req,
                        char *err, size_t errn) {
  if (errn) err[0] = 0;
  if (!line || !req) {
    set_err(err, errn, "no request");
    return WEIR_EINVAL;
  }
  memset(req, 0, sizeof *req);
  if (len > 0 && line[len - 1] == '\r') len--;
  if (len > WEIR__CONSOLE_LINE_MAX) {
    set_err(err, errn, "request line longer than %d bytes",
            WEIR__CONSOLE_LINE_MAX);
    return WEIR_EINVAL;
  }
  /* Bytes first: no NUL, no control characters, valid UTF-8. */
  const unsigned char *u = (const unsigned char *)line;
  for (size_t i = 0; i < len;) {
    if (u[i] == 0) {
      set_err(err, errn, "NUL byte in request");
      return WEIR_EINVAL;
    }
    if ((u[i] < 0x20 && u[i] != '\t') || u[i] == 0x7F) {
      set_err(err, errn, "control character in request");
      return WEIR_EINVAL;
    }
    size_t k = utf8_len(u + i, len - i);
    if (k == 0) {
      set_err(err, errn, "request is not valid UTF-8");
      return WEIR_EINVAL;
    }
    i += k;
  }
  /* Tokens separated by spaces or tabs. */
  tok t[6];
  size_t nt = 0;
  for (size_t i = 0; i < len;) {
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
      i++;
    if (i == len) break;
    size_t s = i;
    while (i < len && line[i] != ' ' && line[i] != '\t')
      i++;
    if (nt == 6) {
      set_err(err, errn, "too many arguments");
      return WEIR_EINVAL;
    }
    t[nt].p = line + s;
    t[nt].len = i - s;
    nt++;
  }
  if (nt == 0) {
    set_err(err, errn, "empty request (try help)");
    return WEIR_EINVAL;
  }
  size_t c = 0;
  while (c < NCOMMANDS && !tok_is(t[0], commands[c].name))
    c++;
  if (c == NCOMMANDS) {
    int shown = t[0].len > 32 ? 32 : (int)t[0].len;
    set_err(err, errn, "unknown command '%.*s' (try help)", shown, t[0].p);
    return WEIR_EINVAL;
  }
  if (nt - 1 != (size_t)commands[c].nargs) {
    set_err(err, errn, "usage: %s%s%s", commands[c].name,
            commands[c].nargs ? " " : "", commands[c].usage);
    return WEIR_EINVAL;
  }
  req->cmd = commands[c].cmd;
  switch (req->cmd) {
  case WEIR__CMD_PROC_COUNT:
  case WEIR__CMD_PROC_WINDOW: {
    char a[32];
    if (t[1].len >= sizeof a || (memcpy(a, t[1].p, t[1].len), a[t[1].len] = 0,
                                 weir_attr_parse(a, &req->attr) != WEIR_OK)) {
      int shown = t[1].len > 32 ? 32 : (int)t[1].len;
      set_err(err, errn,
              "unknown attribute '%.*s' (message_queue_len, mailbox_bytes, "
              "memory, reductions, messages_in, messages_out, dropped, "
              "queue_high_water)",
              shown, t[1].p);
      return WEIR_EINVAL;
    }
    if (parse_num(t[2].p, t[2].len, 1, WEIR__CONSOLE_MAX_N, &req->n)) {
      set_err(err, errn, "N must be a number from 1 to %d",
              WEIR__CONSOLE_MAX_N);
      return WEIR_EINVAL;
    }
    if (req->cmd == WEIR__CMD_PROC_WINDOW &&
        parse_num(t[3].p, t[3].len, 1, WEIR__CONSOLE_MAX_MS, &req->ms)) {
      set_err(err, errn, "MS must be a number from 1 to %d",
              WEIR__CONSOLE_MAX_MS);
      return WEIR_EINVAL;
    }
    break;
  }
  case WEIR__CMD_SCHEDULER_USAGE:
    if (parse_num(t[1].p, t[1].len, 1, WEIR__CONSOLE_MAX_MS, &req->ms)) {
      set_err(err, errn, "MS must be a number from 1 to %d",
              WEIR__CONSOLE_MAX_MS);
      return WEIR_EINVAL;
    }
    break;
  case WEIR__CMD_INFO:
    if (parse_name(t[1], req, err, errn) != WEIR_OK) return WEIR_EINVAL;
    if (weir_pid_parse(req->name, &req->pid) == WEIR_OK) req->has_pid = 1;
    break;
  case WEIR__CMD_PARTITIONS:
    if (parse_name(t[1], req, err, errn) != WEIR_OK) return WEIR_EINVAL;
    break;
  case WEIR__CMD_TRACE:
  case WEIR__CMD_TRACE_KEY: {
    if (parse_name(t[1], req, err, errn) != WEIR_OK) return WEIR_EINVAL;
    size_t a = 2;
    if (req->cmd == WEIR__CMD_TRACE) {
      if (weir_pid_parse(req->name, &req->pid) == WEIR_OK) req->has_pid = 1;
    } else if (parse_key(t[a++], req, err, errn) != WEIR_OK) {
      return WEIR_EINVAL;
    }
    if (parse_num(t[a].p, t[a].len, 1, WEIR__TRACE_MAX_N, &req->n)) {
      set_err(err, errn, "N must be a number from 1 to %d", WEIR__TRACE_MAX_N);
      return WEIR_EINVAL;
    }
    if (parse_num(t[a + 1].p, t[a + 1].len, 1, WEIR__TRACE_MAX_S, &req->secs)) {
      set_err(err, errn, "SECS must be a number from 1 to %d",
              WEIR__TRACE_MAX_S);
      return WEIR_EINVAL;
    }
    if (parse_tags(t[a + 2], req, err, errn) != WEIR_OK) return WEIR_EINVAL;
    break;
  }
  default:
    break;
  }
  return WEIR_OK;
}

/* ======================================================================== */
/* Replies: a growable buffer, JSON and Prometheus text                     */
/* ======================================================================== */

typedef struct {
  char *p;
  size_t len, cap;
  int oom;
} sb;

static void sb_put(sb *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *p = weir__grow(b->p, b->len + 1, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void sb_puts(sb *b, const char *s) {
  sb_put(b, s, strlen(s));
}

static void sb_printf(sb *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_printf(sb *b, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (k < 0) return;
  sb_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* A JSON string: quotes, backslash and control characters escaped; a byte
   that is not part of valid UTF-8 becomes U+FFFD, so the reply is always
   valid JSON whatever a process registered. */
static void sb_json_str(sb *b, const char *s) {
  const unsigned char *u = (const unsigned char *)s;
  size_t n = strlen(s);
  sb_put(b, "\"", 1);
  for (size_t i = 0; i < n;) {
    unsigned char c = u[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      sb_put(b, e, 2);
      i++;
    } else if (c < 0x20 || c == 0x7F) {
      sb_printf(b, "\\u%04x", c);
      i++;
    } else {
      size_t k = utf8_len(u + i, n - i);
      if (k == 0) {
        sb_puts(b, "\\ufffd");
        i++;
      } else {
        sb_put(b, s + i, k);
        i += k;
      }
    }
  }
  sb_put(b, "\"", 1);
}

static void sb_json_str_or_null(sb *b, const char *s) {
  if (s && *s)
    sb_json_str(b, s);
  else
    sb_puts(b, "null");
}

static void sb_pid(sb *b, weir_pid pid) {
  char buf[32];
  weir_pid_format(pid, buf, sizeof buf);
  sb_printf(b, "\"%s\"", buf);
}

static void sb_double(sb *b, double d) {
  sb_printf(b, "%.3f", isfinite(d) ? d : 0.0);
}

/* A Prometheus label value: backslash, quote and newline escaped; bytes of
   invalid UTF-8 become '?'. */
static void sb_prom_label(sb *b, const char *s) {
  const unsigned char *u = (const unsigned char *)s;
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    if (u[i] == '\\' || u[i] == '"') {
      char e[2] = {'\\', (char)u[i]};
      sb_put(b, e, 2);
      i++;
    } else if (u[i] == '\n') {
      sb_puts(b, "\\n");
      i++;
    } else {
      size_t k = utf8_len(u + i, n - i);
      if (k == 0 || u[i] < 0x20) {
        sb_put(b, "?", 1);
        i++;
      } else {
        sb_put(b, s + i, k);
        i += k;
      }
    }
  }
}

static void sb_error(sb *b, const char *msg) {
  sb_puts(b, "{\"error\":");
  sb_json_str(b, msg);
  sb_puts(b, "}");
}

/* ======================================================================== */
/* Commands                                                                  */
/* ======================================================================== */

/* The proc_count / proc_window array (DESIGN.md): processes that ended
   since they were sampled are left out. */
static void reply_samples(weir_rt *rt, sb *b, const weir_proc_sample *s,
                          size_t n) {
  sb_puts(b, "[");
  int first = 1;
  for (size_t i = 0; i < n; i++) {
    weir_proc_info info;
    if (weir_process_info(rt, s[i].pid, &info) != WEIR_OK) continue;
    sb_puts(b, first ? "{\"pid\":" : ",{\"pid\":");
    first = 0;
    sb_pid(b, s[i].pid);
    sb_printf(b, ",\"value\":%llu,\"registered_name\":",
              (unsigned long long)s[i].value);
    sb_json_str_or_null(b, info.registered_name);
    sb_puts(b, ",\"current_function\":");
    sb_json_str(b, info.current_function);
    sb_puts(b, ",\"initial_call\":");
    sb_json_str(b, info.initial_call);
    sb_puts(b, "}");
  }
  sb_puts(b, "]");
}

static void cmd_proc_count(weir_rt *rt, const weir__console_req *rq, sb *b) {
  weir_proc_sample *s = weir__calloc(rq->n, sizeof *s);
  size_t n = 0;
  if (!s || weir_proc_count(rt, rq->attr, rq->n, s, &n) != WEIR_OK) {
    sb_error(b, s ? "proc_count failed" : "out of memory");
  } else {
    reply_samples(rt, b, s, n);
  }
  weir__free(s);
}

static void info_json(sb *b, const weir_proc_info *in) {
  sb_puts(b, "{\"pid\":");
  sb_pid(b, in->pid);
  sb_puts(b, ",\"registered_name\":");
  sb_json_str_or_null(b, in->registered_name);
  sb_puts(b, ",\"initial_call\":");
  sb_json_str(b, in->initial_call);
  sb_puts(b, ",\"current_function\":");
  sb_json_str(b, in->current_function);
  sb_printf(b, ",\"status\":\"%s\"", weir_status_name(in->status));
  sb_printf(b,
            ",\"message_queue_len\":%llu,\"mailbox_bytes\":%llu,"
            "\"memory\":%llu,\"reductions\":%llu",
            (unsigned long long)in->message_queue_len,
            (unsigned long long)in->mailbox_bytes,
            (unsigned long long)in->memory, (unsigned long long)in->reductions);
  sb_printf(
      b,
      ",\"messages_in\":%llu,\"messages_out\":%llu,\"dropped\":%llu,"
      "\"queue_high_water\":%llu,\"max_queue_len\":%llu",
      (unsigned long long)in->messages_in, (unsigned long long)in->messages_out,
      (unsigned long long)in->dropped, (unsigned long long)in->queue_high_water,
      (unsigned long long)in->max_queue_len);
  sb_puts(b, ",\"in_rate\":");
  sb_double(b, in->in_rate);
  sb_puts(b, ",\"out_rate\":");
  sb_double(b, in->out_rate);
  sb_puts(b, ",\"supervisor\":");
  if (weir_pid_is_none(in->supervisor))
    sb_puts(b, "null");
  else
    sb_pid(b, in->supervisor);
  if (in->partition >= 0)
    sb_printf(b, ",\"partition\":%d", in->partition);
  else
    sb_puts(b, ",\"partition\":null");
  sb_printf(b, ",\"blocking\":%s}", in->blocking ? "true" : "false");
}

static void cmd_info(weir_rt *rt, const weir__console_req *rq, sb *b) {
  weir_pid pid = rq->pid;
  if (!rq->has_pid && weir_whereis(rt, rq->name, &pid) != WEIR_OK) {
    char msg[128];
    snprintf(msg, sizeof msg, "no process registered as '%s'", rq->name);
    sb_error(b, msg);
    return;
  }
  weir_proc_info in;
  if (weir_process_info(rt, pid, &in) != WEIR_OK) {
    sb_error(b, "no such process");
    return;
  }
  info_json(b, &in);
}

static void cmd_partitions(weir_rt *rt, const weir__console_req *rq, sb *b) {
  weir_pid ps;
  char msg[160];
  if (weir_whereis(rt, rq->name, &ps) != WEIR_OK) {
    snprintf(msg, sizeof msg, "no process registered as '%s'", rq->name);
    sb_error(b, msg);
    return;
  }
  int np = weir_partitions(rt, ps);
  if (np < 0) {
    snprintf(msg, sizeof msg, "'%s' is not a partition supervisor (%s)",
             rq->name, weir_strerror(np));
    sb_error(b, msg);
    return;
  }
  if (np > 4096) np = 4096;
  sb_puts(b, "{\"name\":");
  sb_json_str(b, rq->name);
  sb_puts(b, ",\"supervisor\":");
  sb_pid(b, ps);
  sb_printf(b, ",\"count\":%d,\"partitions\":[", np);
  for (int i = 0; i < np; i++) {
    weir_pid w;
    weir_proc_info in;
    sb_printf(b, "%s{\"partition\":%d,\"pid\":", i ? "," : "", i);
    if (weir_partition_whereis(rt, ps, (uint64_t)i, &w) != WEIR_OK ||
        weir_process_info(rt, w, &in) != WEIR_OK) {
      sb_puts(b, "null,\"status\":\"down\"}");
      continue;
    }
    sb_pid(b, w);
    sb_printf(
        b,
        ",\"status\":\"%s\",\"message_queue_len\":%llu,"
        "\"mailbox_bytes\":%llu,\"dropped\":%llu,\"in_rate\":",
        weir_status_name(in.status), (unsigned long long)in.message_queue_len,
        (unsigned long long)in.mailbox_bytes, (unsigned long long)in.dropped);
    sb_double(b, in.in_rate);
    sb_puts(b, ",\"out_rate\":");
    sb_double(b, in.out_rate);
    sb_puts(b, ",\"current_function\":");
    sb_json_str(b, in.current_function);
    sb_puts(b, ",\"hot_keys\":[");
    weir_hot_key hk[5];
    size_t nk = 0;
    if (weir_partition_hot_keys(rt, ps, (unsigned)i, hk, 5, &nk) != WEIR_OK)
      nk = 0;
    for (size_t k = 0; k < nk && k < 5; k++)
      sb_printf(b, "%s{\"key\":%llu,\"count\":%llu}", k ? "," : "",
                (unsigned long long)hk[k].key, (unsigned long long)hk[k].count);
    sb_puts(b, "]}");
  }
  sb_puts(b, "]}");
}

static void cmd_node_stats(weir_rt *rt, sb *b) {
  weir_stats s;
  if (weir_node_stats(rt, &s) != WEIR_OK) {
    sb_error(b, "node_stats failed");
    return;
  }
  sb_puts(b, "{\"node\":");
  sb_json_str(b, rt->node_name);
  sb_printf(b,
            ",\"processes\":%llu,\"max_processes\":%llu,\"spawned\":%llu,"
            "\"exited\":%llu,\"crashed\":%llu,\"messages_sent\":%llu",
            (unsigned long long)s.processes,
            (unsigned long long)s.max_processes, (unsigned long long)s.spawned,
            (unsigned long long)s.exited, (unsigned long long)s.crashed,
            (unsigned long long)s.messages_sent);
  sb_printf(b,
            ",\"queued_messages\":%llu,\"queued_bytes\":%llu,"
            "\"mailbox_budget\":%llu,\"dropped\":%llu,\"dead_letters\":%llu",
            (unsigned long long)s.queued_messages,
            (unsigned long long)s.queued_bytes,
            (unsigned long long)s.mailbox_budget, (unsigned long long)s.dropped,
            (unsigned long long)s.dead_letters);
  sb_printf(b,
            ",\"alarms_active\":%llu,\"rss_bytes\":%llu,\"schedulers\":%u,"
            "\"io_threads_live\":%u,\"io_threads_max\":%u,\"uptime_s\":",
            (unsigned long long)s.alarms_active,
            (unsigned long long)s.rss_bytes, s.schedulers, s.io_threads_live,
            s.io_threads_max);
  sb_double(b, s.uptime_s);
  sb_puts(b, "}");
}

static void cmd_alarms(weir_rt *rt, sb *b) {
  enum { MAX_LISTED = 256 };
  weir_alarm *al = weir__calloc(MAX_LISTED, sizeof *al);
  size_t n = 0;
  if (!al || weir_alarms(rt, al, MAX_LISTED, &n) != WEIR_OK) {
    sb_error(b, al ? "alarms failed" : "out of memory");
    weir__free(al);
    return;
  }
  sb_printf(b, "{\"alarms_active\":%zu,\"alarms\":[", n);
  for (size_t i = 0; i < n && i < MAX_LISTED; i++) {
    const weir_alarm *x = &al[i];
    sb_printf(b, "%s{\"kind\":\"%s\",\"pid\":", i ? "," : "",
              weir_alarm_kind_name(x->kind));
    if (weir_pid_is_none(x->pid))
      sb_puts(b, "null");
    else
      sb_pid(b, x->pid);
    sb_puts(b, ",\"registered_name\":");
    sb_json_str_or_null(b, x->registered_name);
    sb_puts(b, ",\"current_function\":");
    sb_json_str(b, x->current_function);
    sb_printf(b, ",\"queue_len\":%llu,\"in_rate\":",
              (unsigned long long)x->queue_len);
    sb_double(b, x->in_rate);
    sb_puts(b, ",\"out_rate\":");
    sb_double(b, x->out_rate);
    sb_puts(b, ",\"secs_to_limit\":");
    if (x->secs_to_limit < 0 || !isfinite(x->secs_to_limit))
      sb_puts(b, "null");
    else
      sb_double(b, x->secs_to_limit);
    sb_puts(b, "}");
  }
  sb_puts(b, "]}");
  weir__free(al);
}

static void sb_pid_or_null(sb *b, weir_pid pid) {
  if (weir_pid_is_none(pid))
    sb_puts(b, "null");
  else
    sb_pid(b, pid);
}

static void report_json(sb *b, const weir_report *r) {
  static const char *const kinds[] = {"crash", "supervisor", "suppressed"};
  sb_printf(b, "{\"seq\":%llu,\"kind\":\"%s\",\"time\":%.3f,\"pid\":",
            (unsigned long long)r->seq, kinds[r->kind % 3], r->time);
  sb_pid_or_null(b, r->pid);
  sb_puts(b, ",\"registered_name\":");
  sb_json_str_or_null(b, r->registered_name);
  sb_puts(b, ",\"behaviour\":");
  sb_json_str(b, r->behaviour);
  sb_puts(b, ",\"callback\":");
  sb_json_str_or_null(b, r->callback);
  sb_puts(b, ",\"signal_from\":");
  sb_pid_or_null(b, r->signal_from);
  sb_printf(b, ",\"reason\":\"%s\",\"code\":%d,\"message\":",
            weir_reason_name(r->reason), r->reason);
  if (r->has_msg) {
    sb_printf(b, "{\"tag\":%u,\"len\":%u,\"from\":", r->msg_tag, r->msg_len);
    sb_pid_or_null(b, r->msg_from);
    sb_puts(b, ",\"head\":\"");
    for (uint32_t i = 0; i < r->msg_head_len && i < WEIR_REPORT_HEAD; i++)
      sb_printf(b, "%02x", r->msg_head[i]);
    sb_puts(b, "\"}");
  } else {
    sb_puts(b, "null");
  }
  sb_printf(b, ",\"queue_len\":%llu,\"supervisor\":",
            (unsigned long long)r->queue_len);
  sb_pid_or_null(b, r->supervisor);
  sb_puts(b, ",\"supervisor_name\":");
  sb_json_str_or_null(b, r->supervisor_name);
  sb_puts(b, ",\"child_id\":");
  sb_json_str_or_null(b, r->child_id);
  sb_printf(b, ",\"action\":\"%s\",\"restarted_as\":",
            weir_sup_action_name(r->action));
  sb_pid_or_null(b, r->restarted_as);
  sb_printf(b,
            ",\"restarts\":%d,\"max_restarts\":%d,\"max_seconds\":%d,"
            "\"child\":",
            r->restarts, r->max_restarts, r->max_seconds);
  sb_pid_or_null(b, r->child);
  sb_puts(b, "}");
}

static void cmd_crashes(weir_rt *rt, sb *b) {
  size_t cap = rt->opts.report_ring ? rt->opts.report_ring : 64, n = 0;
  uint64_t total = 0, other, suppressed;
  weir_report *r = weir__calloc(cap, sizeof *r);
  if (!r || weir_crash_reports(rt, r, cap, &n, &total) != WEIR_OK) {
    sb_error(b, r ? "crashes failed" : "out of memory");
    weir__free(r);
    return;
  }
  weir__report_count none;
  weir__report_counts(rt, &none, 0, &other, &suppressed);
  sb_puts(b, "{\"node\":");
  sb_json_str(b, rt->node_name);
  sb_printf(b,
            ",\"total\":%llu,\"suppressed\":%llu,\"kept\":%zu,"
            "\"reports\":[",
            (unsigned long long)total, (unsigned long long)suppressed, n);
  for (size_t i = 0; i < n; i++) {
    if (i) sb_puts(b, ",");
    report_json(b, &r[i]);
  }
  sb_puts(b, "]}");
  weir__free(r);
}

static void cmd_help(sb *b) {
  sb_puts(b, "{\"commands\":[");
  for (size_t i = 0; i < NCOMMANDS; i++) {
    sb_printf(b, "%s{\"name\":\"%s\",\"args\":\"%s\",\"doc\":", i ? "," : "",
              commands[i].name, commands[i].usage);
    sb_json_str(b, commands[i].doc);
    sb_puts(b, "}");
  }
  sb_puts(b, "],\"attributes\":[");
  for (int a = 0; a < WEIR_ATTR__COUNT; a++)
    sb_printf(b, "%s\"%s\"", a ? "," : "", weir_attr_name((weir_attr)a));
  sb_printf(b, "],\"max_line\":%d,\"max_n\":%d,\"max_ms\":%d}",
            WEIR__CONSOLE_LINE_MAX, WEIR__CONSOLE_MAX_N, WEIR__CONSOLE_MAX_MS);
}

static void prom_metric(sb *b, const char *name, const char *type,
                        const char *help, uint64_t v) {
  sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type,
            name, (unsigned long long)v);
}

static void prom_top(weir_rt *rt, sb *b, weir_attr attr, const char *name,
                     const char *help) {
  weir_proc_sample s[TOP_METRICS];
  size_t n = 0;
  if (weir_proc_count(rt, attr, TOP_METRICS, s, &n) != WEIR_OK) n = 0;
  sb_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
  for (size_t i = 0; i < n; i++) {
    weir_proc_info in;
    if (weir_process_info(rt, s[i].pid, &in) != WEIR_OK) continue;
    char pid[32];
    weir_pid_format(s[i].pid, pid, sizeof pid);
    sb_printf(b, "%s{pid=\"%s\",name=\"", name, pid);
    sb_prom_label(b, in.registered_name);
    sb_puts(b, "\",initial_call=\"");
    sb_prom_label(b, in.initial_call);
    sb_printf(b, "\"} %llu\n", (unsigned long long)s[i].value);
  }
}

static void cmd_metrics(weir_rt *rt, sb *b) {
  weir_stats s;
  if (weir_node_stats(rt, &s) != WEIR_OK) memset(&s, 0, sizeof s);
  prom_metric(b, "weir_processes", "gauge", "Live processes.", s.processes);
  prom_metric(b, "weir_processes_max", "gauge", "Process table capacity.",
              s.max_processes);
  prom_metric(b, "weir_messages_queued", "gauge",
              "Messages queued in all mailboxes.", s.queued_messages);
  prom_metric(b, "weir_mailbox_bytes", "gauge",
              "Payload bytes queued in all mailboxes.", s.queued_bytes);
  prom_metric(b, "weir_mailbox_budget_bytes", "gauge",
              "Node budget for queued bytes (0 = none).", s.mailbox_budget);
  prom_metric(b, "weir_messages_sent_total", "counter",
              "Messages ever sent to a mailbox.", s.messages_sent);
  prom_metric(b, "weir_dropped_total", "counter",
              "Messages shed by overflow policies.", s.dropped);
  prom_metric(b, "weir_dead_letters_total", "counter",
              "Messages that could not be delivered.", s.dead_letters);
  prom_metric(b, "weir_spawned_total", "counter", "Processes spawned.",
              s.spawned);
  prom_metric(b, "weir_exited_total", "counter", "Processes ended.", s.exited);
  prom_metric(b, "weir_crashed_total", "counter", "Processes ended by a crash.",
              s.crashed);
  prom_metric(b, "weir_alarms_active", "gauge", "Overload alarms raised now.",
              s.alarms_active);
  prom_metric(b, "weir_rss_bytes", "gauge", "Resident set size of the node.",
              s.rss_bytes);
  prom_metric(b, "weir_schedulers", "gauge", "Scheduler threads.",
              s.schedulers);
  prom_metric(b, "weir_io_threads", "gauge", "Live threads of the I/O pool.",
              s.io_threads_live);
  sb_puts(b, "# HELP weir_uptime_seconds Time since the node started.\n"
             "# TYPE weir_uptime_seconds gauge\nweir_uptime_seconds ");
  sb_double(b, s.uptime_s);
  sb_puts(b, "\n");
  enum { MAX_BEH = 64 };
  weir__report_count rc[MAX_BEH];
  uint64_t other = 0, suppressed = 0;
  size_t nb = weir__report_counts(rt, rc, MAX_BEH, &other, &suppressed);
  sb_puts(b, "# HELP weir_crashes_total Crash reports by behaviour.\n"
             "# TYPE weir_crashes_total counter\n");
  for (size_t i = 0; i < nb; i++) {
    sb_puts(b, "weir_crashes_total{behaviour=\"");
    sb_prom_label(b, rc[i].behaviour);
    sb_printf(b, "\"} %llu\n", (unsigned long long)rc[i].n);
  }
  if (other)
    sb_printf(b, "weir_crashes_total{behaviour=\"(other)\"} %llu\n",
              (unsigned long long)other);
  prom_metric(b, "weir_reports_suppressed_total", "counter",
              "Crash and supervisor reports the rate limits kept out of the "
              "log.",
              suppressed);
  if (rt->opts.metrics_extra) { /* the application's own (weir_rt_opts) */
    char *extra = rt->opts.metrics_extra(rt->opts.metrics_ud);
    if (extra) {
      sb_puts(b, extra);
      if (extra[0] && extra[strlen(extra) - 1] != '\n') sb_puts(b, "\n");
      free(extra);
    }
  }
  prom_top(rt, b, WEIR_ATTR_MESSAGE_QUEUE_LEN, "weir_process_message_queue_len",
           "Mailbox length of the processes with the longest queues.");
  prom_top(rt, b, WEIR_ATTR_MAILBOX_BYTES, "weir_process_mailbox_bytes",
           "Queued bytes of the processes with the most queued bytes.");
  prom_top(rt, b, WEIR_ATTR_MEMORY, "weir_process_memory_bytes",
           "Memory of the processes that use the most.");
  sb_puts(b, "# EOF");
}

/* ======================================================================== */
/* The server                                                                */
/* ======================================================================== */

enum { C_FREE = 0, C_READ, C_JOB, C_WRITE, C_DRAIN, C_TRACE };

#define TRACE_OUT_MAX 65536u /* reply bytes unsent before a trace waits */
#define TRACE_TICK_MS 20

typedef struct console console;

typedef struct client {
  console *con;
  int fd;
  int state;
  int close_after; /* after this reply, close (e.g. the line was too long) */
  uint64_t deadline_ns;
  char in[WEIR__CONSOLE_LINE_MAX + 2];
  size_t inlen;
  sb out;
  size_t outpos;
  /* a slow request running on a worker thread */
  pthread_t thr;
  weir__console_req req;
  sb job;
  _Atomic int job_done;
  /* a trace streaming to this client (C_TRACE) */
  weir__trace *trace;
  weir_pid trace_pid;
  uint32_t trace_count;
  uint64_t trace_end_ns;
  uint64_t trace_lines;   /* event lines queued for the client */
  uint64_t trace_dropped; /* events the console had no memory for */
} client;

struct console {
  weir_rt *rt;
  int lfd;
  int wake[2];
  pthread_t thr;
  _Atomic int stop;
  pthread_mutex_t mu; /* the workers' sleeps */
  pthread_cond_t cv;
  ino_t ino; /* the socket file we made, unlinked at stop if still ours */
  client cl[MAX_CLIENTS];
};

static uint64_t ms_ns(uint32_t ms) {
  return (uint64_t)ms * 1000000ull;
}

/* Sleeps until now + ms or stop; false if stopped. */
static bool job_sleep(console *c, uint32_t ms) {
  uint64_t until = weir__now_ns() + ms_ns(ms);
  pthread_mutex_lock(&c->mu);
  while (!atomic_load(&c->stop)) {
    uint64_t now = weir__now_ns();
    if (now >= until) break;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t t = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec +
                 (until - now);
    ts.tv_sec = (time_t)(t / 1000000000ull);
    ts.tv_nsec = (long)(t % 1000000000ull);
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
  }
  bool ok = !atomic_load(&c->stop);
  pthread_mutex_unlock(&c->mu);
  return ok;
}

/* Every live process and its attr value, sorted by pid (for bsearch). Uses
   proc_count with n = the table's high-water mark, so the values mean
   exactly what proc_count's mean. */
static int by_pid(const void *a, const void *b) {
  const weir_proc_sample *x = a, *y = b;
  return x->pid.id < y->pid.id ? -1 : x->pid.id > y->pid.id;
}
static int by_value_desc(const void *a, const void *b) {
  const weir_proc_sample *x = a, *y = b;
  return x->value < y->value ? 1 : x->value > y->value ? -1 : 0;
}

static weir_proc_sample *snapshot(weir_rt *rt, weir_attr attr, size_t *n) {
  size_t cap = (size_t)weir__proc_table_used(rt) + 1;
  weir_proc_sample *s = weir__calloc(cap, sizeof *s);
  if (!s) return NULL;
  if (weir_proc_count(rt, attr, cap, s, n) != WEIR_OK) {
    weir__free(s);
    return NULL;
  }
  qsort(s, *n, sizeof *s, by_pid);
  return s;
}

static void job_proc_window(client *cl) {
  console *c = cl->con;
  const weir__console_req *rq = &cl->req;
  size_t n0 = 0, n1 = 0;
  weir_proc_sample *s0 = snapshot(c->rt, rq->attr, &n0), *s1 = NULL;
  if (!s0) goto oom;
  if (!job_sleep(c, rq->ms)) goto out;
  if (!(s1 = snapshot(c->rt, rq->attr, &n1))) goto oom;
  /* recon: a process born inside the window counts its absolute value; a
     gauge that shrank counts as no increase. */
  for (size_t i = 0; i < n1; i++) {
    weir_proc_sample *old = bsearch(&s1[i], s0, n0, sizeof *s0, by_pid);
    if (old)
      s1[i].value = s1[i].value > old->value ? s1[i].value - old->value : 0;
  }
  qsort(s1, n1, sizeof *s1, by_value_desc);
  reply_samples(c->rt, &cl->job, s1, n1 < rq->n ? n1 : rq->n);
  goto out;
oom:
  sb_error(&cl->job, "out of memory");
out:
  weir__free(s0);
  weir__free(s1);
}

static void job_scheduler_usage(client *cl) {
  console *c = cl->con;
  double acc[256] = {0}, part[256];
  size_t ns = 0;
  uint32_t left = cl->req.ms;
  /* In slices of at most 100 ms, so that stop is prompt; busy fractions of
     back-to-back slices average to the fraction over the whole window. */
  while (left > 0) {
    uint32_t slice = left > 100 ? 100 : left;
    if (weir_scheduler_usage(c->rt, slice, part, 256, &ns) != WEIR_OK) {
      sb_error(&cl->job, "scheduler_usage failed");
      return;
    }
    for (size_t i = 0; i < ns && i < 256; i++)
      acc[i] += part[i] * slice;
    left -= slice;
    if (atomic_load(&c->stop)) return;
  }
  if (ns > 256) ns = 256;
  double total = 0;
  sb_printf(&cl->job, "{\"ms\":%u,\"schedulers\":[", cl->req.ms);
  for (size_t i = 0; i < ns; i++) {
    double u = acc[i] / cl->req.ms;
    total += u;
    sb_puts(&cl->job, i ? "," : "");
    sb_double(&cl->job, u);
  }
  sb_puts(&cl->job, "],\"total\":");
  sb_double(&cl->job, ns ? total / (double)ns : 0.0);
  sb_puts(&cl->job, "}");
}

static void *job_main(void *arg) {
  client *cl = arg;
  if (cl->req.cmd == WEIR__CMD_PROC_WINDOW)
    job_proc_window(cl);
  else
    job_scheduler_usage(cl);
  /* release: the console thread's acquire load then sees the reply. */
  atomic_store_explicit(&cl->job_done, 1, memory_order_release);
  char x = 1;
  if (write(cl->con->wake[1], &x, 1) < 0) {
    /* the pipe is full: the console thread is awake already */
  }
  return NULL;
}

static void client_free(client *cl) {
  if (cl->trace) {
    weir__trace_close(cl->con->rt, cl->trace);
    cl->trace = NULL;
  }
  if (cl->fd >= 0) close(cl->fd);
  weir__free(cl->out.p);
  weir__free(cl->job.p);
  memset(&cl->out, 0, sizeof cl->out);
  memset(&cl->job, 0, sizeof cl->job);
  cl->fd = -1;
  cl->state = C_FREE;
}

/* Queues b (taken over) as the reply, with its final newline. */
static void client_reply(client *cl, sb *b) {
  sb_put(b, "\n", 1);
  if (b->oom) {
    weir__free(b->p);
    memset(b, 0, sizeof *b);
    sb_puts(b, "{\"error\":\"out of memory\"}\n");
    if (b->oom) { /* not even that: give up on this client */
      cl->close_after = 1;
      b->len = 0;
    }
  }
  weir__free(cl->out.p);
  cl->out = *b;
  memset(b, 0, sizeof *b);
  cl->outpos = 0;
  cl->state = C_WRITE;
  cl->deadline_ns = weir__now_ns() + ms_ns(WRITE_TIMEOUT_MS);
}

static void client_error(client *cl, const char *msg, int close_after) {
  sb b = {0};
  sb_error(&b, msg);
  cl->close_after = close_after;
  client_reply(cl, &b);
}

static void trace_begin(client *cl, const weir__console_req *rq);

static void client_request(client *cl, const char *line, size_t len) {
  char err[160];
  weir__console_req rq;
  if (weir__console_parse(line, len, &rq, err, sizeof err) != WEIR_OK) {
    client_error(cl, err, 0);
    return;
  }
  weir_rt *rt = cl->con->rt;
  sb b = {0};
  switch (rq.cmd) {
  case WEIR__CMD_PROC_WINDOW:
  case WEIR__CMD_SCHEDULER_USAGE:
    cl->req = rq;
    memset(&cl->job, 0, sizeof cl->job);
    atomic_store_explicit(&cl->job_done, 0, memory_order_relaxed);
    if (pthread_create(&cl->thr, NULL, job_main, cl) != 0) {
      client_error(cl, "cannot start a worker thread", 0);
      return;
    }
    cl->state = C_JOB;
    return;
  case WEIR__CMD_PROC_COUNT:
    cmd_proc_count(rt, &rq, &b);
    break;
  case WEIR__CMD_INFO:
    cmd_info(rt, &rq, &b);
    break;
  case WEIR__CMD_PARTITIONS:
    cmd_partitions(rt, &rq, &b);
    break;
  case WEIR__CMD_NODE_STATS:
    cmd_node_stats(rt, &b);
    break;
  case WEIR__CMD_ALARMS:
    cmd_alarms(rt, &b);
    break;
  case WEIR__CMD_METRICS:
    cmd_metrics(rt, &b);
    break;
  case WEIR__CMD_CRASHES:
    cmd_crashes(rt, &b);
    break;
  case WEIR__CMD_TRACE:
  case WEIR__CMD_TRACE_KEY:
    trace_begin(cl, &rq);
    return;
  case WEIR__CMD_HELP:
    cmd_help(&b);
    break;
  }
  client_reply(cl, &b);
}

/* ---- trace: a reply of many lines ------------------------------------- */

static void client_writable(client *cl);

/* Sends what it can of cl->out without blocking; false if the client was
   dropped. */
static bool trace_flush(client *cl) {
  while (cl->outpos < cl->out.len) {
    ssize_t k = send(cl->fd, cl->out.p + cl->outpos, cl->out.len - cl->outpos,
                     MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EAGAIN || errno == EINTR) return true;
      client_free(cl);
      return false;
    }
    cl->outpos += (size_t)k;
  }
  cl->out.len = cl->outpos = 0; /* all sent: reuse the buffer */
  if (cl->out.p) cl->out.p[0] = 0;
  return true;
}

static const char *kind_text(uint8_t kind) {
  switch (kind) {
  case WEIR__K_CAST:
    return "cast";
  case WEIR__K_CALL:
    return "call";
  case WEIR__K_REPLY:
    return "reply";
  case WEIR__K_EXIT:
    return "exit";
  case WEIR__K_DOWN:
    return "down";
  case WEIR__K_TIMEOUT:
    return "timeout";
  default:
    return "info";
  }
}

static void trace_line(client *cl, const weir__trace_ev *e) {
  sb *b = &cl->out;
  sb_printf(b,
            "{\"t\":%llu.%06llu,\"kind\":\"%s\",\"tag\":%u,\"len\":%u,"
            "\"from\":",
            (unsigned long long)(e->t_ns / 1000000000ull),
            (unsigned long long)(e->t_ns % 1000000000ull / 1000ull),
            kind_text(e->kind), e->tag, e->len);
  sb_pid_or_null(b, (weir_pid){e->from});
  sb_puts(b, ",\"head\":\"");
  for (unsigned i = 0; i < e->head_len && i < sizeof e->head; i++)
    sb_printf(b, "%02x", e->head[i]);
  sb_puts(b, "\"}\n");
}

/* The summary line; the client then reads it and goes back to requests. */
static void trace_end(client *cl, const char *why) {
  uint64_t seen, lost;
  bool drained;
  weir__trace_counts(cl->trace, &seen, &lost, &drained);
  weir__trace_close(cl->con->rt, cl->trace);
  cl->trace = NULL;
  sb_printf(&cl->out,
            "{\"trace\":\"end\",\"reason\":\"%s\",\"messages\":%llu,"
            "\"lost\":%llu}\n",
            why, (unsigned long long)cl->trace_lines,
            (unsigned long long)(lost + cl->trace_dropped));
  if (cl->out.oom) { /* not even the summary: drop the client */
    client_free(cl);
    return;
  }
  cl->state = C_WRITE;
  cl->deadline_ns = weir__now_ns() + ms_ns(WRITE_TIMEOUT_MS);
  client_writable(cl);
}

/* Moves events to the client while it keeps up, and ends the trace after
   N messages, SECS seconds, or the process's exit. */
static void trace_pump(client *cl) {
  weir_rt *rt = cl->con->rt;
  if (!trace_flush(cl)) return;
  /* acquire on life: an exit seen here comes after the process's last
     event, so the read below gets them all */
  weir__proc *p = weir__proc_slot(rt, weir__pid_slot(cl->trace_pid));
  bool dead =
      !p ||
      atomic_load_explicit(&p->life, memory_order_acquire) != WEIR__P_LIVE ||
      atomic_load_explicit(&p->gen, memory_order_acquire) !=
          weir__pid_gen(cl->trace_pid);
  weir__trace_ev ev[64];
  while (cl->out.len - cl->outpos < TRACE_OUT_MAX) {
    size_t k = weir__trace_read(cl->trace, ev, 64);
    for (size_t i = 0; i < k; i++) {
      size_t before = cl->out.len;
      trace_line(cl, &ev[i]);
      if (cl->out.oom) { /* the line is lost; the buffer is kept */
        cl->out.oom = 0;
        cl->out.len = before;
        if (cl->out.p) cl->out.p[before] = 0;
        cl->trace_dropped++;
      } else {
        cl->trace_lines++;
      }
    }
    if (k < 64) break;
  }
  uint64_t seen, lost;
  bool drained;
  weir__trace_counts(cl->trace, &seen, &lost, &drained);
  const char *why = NULL;
  if (seen >= cl->trace_count && drained)
    why = "count";
  else if (weir__now_ns() >= cl->trace_end_ns)
    why = "time";
  else if (dead && drained)
    why = "exited";
  if (why)
    trace_end(cl, why);
  else
    trace_flush(cl);
}

static void trace_begin(client *cl, const weir__console_req *rq) {
  weir_rt *rt = cl->con->rt;
  weir_pid pid = rq->pid;
  char msg[200];
  if (rq->cmd == WEIR__CMD_TRACE_KEY) {
    weir_pid ps;
    if (weir_whereis(rt, rq->name, &ps) != WEIR_OK) {
      snprintf(msg, sizeof msg, "no process registered as '%s'", rq->name);
      client_error(cl, msg, 0);
      return;
    }
    int np = weir_partitions(rt, ps);
    if (np < 0) {
      snprintf(msg, sizeof msg, "'%s' is not a partition supervisor (%s)",
               rq->name, weir_strerror(np));
      client_error(cl, msg, 0);
      return;
    }
    if (weir_partition_whereis(rt, ps, rq->key, &pid) != WEIR_OK) {
      snprintf(msg, sizeof msg,
               "the worker of partition %llu (key %s) is not running",
               (unsigned long long)(rq->key % (unsigned)np), rq->key_text);
      client_error(cl, msg, 0);
      return;
    }
  } else if (!rq->has_pid && weir_whereis(rt, rq->name, &pid) != WEIR_OK) {
    snprintf(msg, sizeof msg, "no process registered as '%s'", rq->name);
    client_error(cl, msg, 0);
    return;
  }
  weir__trace *t = NULL;
  int rc = weir__trace_open(rt, pid, rq->n, rq->tags, rq->ntags, &t);
  if (rc != WEIR_OK) {
    if (rc == WEIR_ELIMIT)
      snprintf(msg, sizeof msg, "too many traces running (at most %d)",
               WEIR__TRACE_SESSIONS);
    else if (rc == WEIR_ENOPROC)
      snprintf(msg, sizeof msg, "no such process");
    else
      snprintf(msg, sizeof msg, "cannot trace: %s", weir_strerror(rc));
    client_error(cl, msg, 0);
    return;
  }
  sb b = {0};
  sb_puts(&b, "{\"trace\":\"started\",\"pid\":");
  sb_pid(&b, pid);
  sb_printf(&b, ",\"count\":%u,\"secs\":%u,\"tags\":", rq->n, rq->secs);
  if (!rq->ntags) {
    sb_puts(&b, "null");
  } else {
    for (unsigned i = 0; i < rq->ntags; i++)
      sb_printf(&b, "%s%u", i ? "," : "[", rq->tags[i]);
    sb_puts(&b, "]");
  }
  if (rq->cmd == WEIR__CMD_TRACE_KEY) {
    sb_puts(&b, ",\"key\":");
    sb_json_str(&b, rq->key_text);
  }
  sb_puts(&b, "}\n");
  if (b.oom) {
    weir__free(b.p);
    weir__trace_close(rt, t);
    client_error(cl, "out of memory", 0);
    return;
  }
  weir__free(cl->out.p);
  cl->out = b;
  cl->outpos = 0;
  cl->trace = t;
  cl->trace_pid = pid;
  cl->trace_count = rq->n;
  cl->trace_end_ns = weir__now_ns() + (uint64_t)rq->secs * 1000000000ull;
  cl->trace_lines = cl->trace_dropped = 0;
  cl->state = C_TRACE;
  /* Only the started line here: the main loop pumps events (within
     TRACE_TICK_MS), so a trace never ends inside the request that began
     it. */
  trace_flush(cl);
}

/* An over-long line: an error, then the connection closes (what follows
   in the stream cannot be framed reliably). */
static void too_long(client *cl) {
  char msg[64];
  snprintf(msg, sizeof msg, "request line longer than %d bytes",
           WEIR__CONSOLE_LINE_MAX);
  client_error(cl, msg, 1);
}

/* In C_READ: handles the first complete line in the buffer, if any. */
static void client_next(client *cl) {
  char *nl = memchr(cl->in, '\n', cl->inlen);
  if (!nl) {
    /* Over the limit, a CR before the coming LF aside. */
    if (cl->inlen > WEIR__CONSOLE_LINE_MAX + 1 ||
        (cl->inlen == WEIR__CONSOLE_LINE_MAX + 1 &&
         cl->in[WEIR__CONSOLE_LINE_MAX] != '\r'))
      too_long(cl);
    return;
  }
  size_t len = (size_t)(nl - cl->in);
  size_t body = len && cl->in[len - 1] == '\r' ? len - 1 : len;
  if (body > WEIR__CONSOLE_LINE_MAX) {
    too_long(cl);
    return;
  }
  /* The line leaves the buffer before it is handled: handling may end in
     client_enter_read, which takes the next line (a trace that ends at
     once), and must not see this one again. */
  char line[WEIR__CONSOLE_LINE_MAX + 2];
  memcpy(line, cl->in, len);
  cl->inlen -= len + 1;
  memmove(cl->in, nl + 1, cl->inlen);
  client_request(cl, line, len);
}

static void client_enter_read(client *cl) {
  cl->state = C_READ;
  cl->deadline_ns = weir__now_ns() + ms_ns(atomic_load(&weir__console_idle_ms));
  client_next(cl);
}

static void client_readable(client *cl) {
  if (cl->state == C_DRAIN) {
    char junk[512];
    ssize_t k = recv(cl->fd, junk, sizeof junk, MSG_DONTWAIT);
    if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) client_free(cl);
    return;
  }
  size_t room = sizeof cl->in - cl->inlen;
  ssize_t k = recv(cl->fd, cl->in + cl->inlen, room, MSG_DONTWAIT);
  if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
    client_free(cl);
    return;
  }
  if (k < 0) return;
  cl->inlen += (size_t)k;
  client_next(cl);
}

static void client_writable(client *cl) {
  while (cl->outpos < cl->out.len) {
    ssize_t k = send(cl->fd, cl->out.p + cl->outpos, cl->out.len - cl->outpos,
                     MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      client_free(cl);
      return;
    }
    cl->outpos += (size_t)k;
  }
  weir__free(cl->out.p);
  memset(&cl->out, 0, sizeof cl->out);
  if (cl->close_after) {
    /* Half-close and read what the peer still sends, so that closing does
       not reset the connection before the peer has read our error. */
    shutdown(cl->fd, SHUT_WR);
    cl->state = C_DRAIN;
    cl->deadline_ns = weir__now_ns() + ms_ns(DRAIN_MS);
    return;
  }
  client_enter_read(cl);
}

static void job_finished(client *cl) {
  pthread_join(cl->thr, NULL);
  sb b = cl->job;
  memset(&cl->job, 0, sizeof cl->job);
  if (b.len == 0 && !b.oom) sb_error(&b, "stopped");
  client_reply(cl, &b);
  client_writable(cl);
}

/* A best-effort one-line refusal for a connection we will not serve. */
static void refuse(int fd, const char *msg) {
  sb b = {0};
  sb_error(&b, msg);
  sb_put(&b, "\n", 1);
  if (!b.oom) {
    ssize_t k = send(fd, b.p, b.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)k;
  }
  weir__free(b.p);
  shutdown(fd, SHUT_RDWR);
  close(fd);
}

static void accept_clients(console *c) {
  for (;;) {
    int fd = accept4(c->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return; /* EAGAIN, or EMFILE etc.: try at the next poll */
    struct ucred cr;
    socklen_t crl = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) != 0) {
      refuse(fd, "cannot read peer credentials");
      continue;
    }
    if (cr.uid != geteuid() && cr.uid != 0) {
      refuse(fd, "permission denied: the console serves its own uid only");
      continue;
    }
    client *cl = NULL;
    for (int i = 0; i < MAX_CLIENTS && !cl; i++)
      if (c->cl[i].state == C_FREE) cl = &c->cl[i];
    if (!cl) {
      refuse(fd, "too many console clients");
      continue;
    }
    memset(cl, 0, sizeof *cl);
    cl->con = c;
    cl->fd = fd;
    client_enter_read(cl);
  }
}

static void *console_main(void *arg) {
  console *c = arg;
  struct pollfd pf[MAX_CLIENTS + 2];
  client *who[MAX_CLIENTS + 2];
  while (!atomic_load(&c->stop)) {
    nfds_t n = 0;
    pf[n] = (struct pollfd){c->lfd, POLLIN, 0};
    who[n++] = NULL;
    pf[n] = (struct pollfd){c->wake[0], POLLIN, 0};
    who[n++] = NULL;
    uint64_t now = weir__now_ns(), next = UINT64_MAX;
    bool tracing = false;
    for (int i = 0; i < MAX_CLIENTS; i++) {
      client *cl = &c->cl[i];
      if (cl->state == C_FREE || cl->state == C_JOB) continue;
      if (cl->state == C_TRACE) {
        /* POLLRDHUP: the client went away, the trace ends with it */
        tracing = true;
        short ev = POLLRDHUP;
        if (cl->outpos < cl->out.len) ev |= POLLOUT;
        pf[n] = (struct pollfd){cl->fd, ev, 0};
        who[n++] = cl;
        continue;
      }
      if (cl->deadline_ns <= now) {
        if (cl->state == C_READ && cl->inlen == 0) {
          client_error(cl, "idle timeout", 1);
          client_writable(cl);
        } else {
          client_free(cl);
        }
        if (cl->state == C_FREE) continue;
      }
      if (cl->deadline_ns < next) next = cl->deadline_ns;
      short ev = cl->state == C_WRITE ? POLLOUT : POLLIN;
      pf[n] = (struct pollfd){cl->fd, ev, 0};
      who[n++] = cl;
    }
    int timeout = -1;
    if (next != UINT64_MAX)
      timeout = next <= now ? 0 : (int)((next - now) / 1000000ull) + 1;
    if (tracing && (timeout < 0 || timeout > TRACE_TICK_MS))
      timeout = TRACE_TICK_MS;
    int k = poll(pf, n, timeout);
    if (k < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pf[1].revents) {
      char buf[64];
      while (read(c->wake[0], buf, sizeof buf) > 0) {
      }
      for (int i = 0; i < MAX_CLIENTS; i++) {
        client *cl = &c->cl[i];
        /* acquire: pairs with the worker's release, so its reply is whole */
        if (cl->state == C_JOB &&
            atomic_load_explicit(&cl->job_done, memory_order_acquire))
          job_finished(cl);
      }
    }
    for (nfds_t i = 2; i < n; i++) {
      client *cl = who[i];
      if (cl->state == C_TRACE) {
        if (pf[i].revents & (POLLRDHUP | POLLHUP | POLLERR))
          client_free(cl); /* closes the trace */
        else
          trace_pump(cl);
        continue;
      }
      if (!pf[i].revents || cl->state == C_FREE) continue;
      if (pf[i].revents & POLLOUT)
        client_writable(cl);
      else if (pf[i].revents & (POLLIN | POLLHUP | POLLERR))
        client_readable(cl);
    }
    if (pf[0].revents & POLLIN) accept_clients(c);
  }
  return NULL;
}

/* ---- start / stop ------------------------------------------------------ */

static int valid_node_name(const char *s) {
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.' ||
          *s == '@'))
      return 0;
  return 1;
}

/* The socket path for opt ("" = default), creating the run dir if needed. */
static int resolve_path(weir_rt *rt, const char *opt, char *path, size_t n) {
  if (*opt) {
    if (strlen(opt) >= n) return WEIR_EINVAL;
    snprintf(path, n, "%s", opt);
    return WEIR_OK;
  }
  const char *node = rt->node_name;
  if (!valid_node_name(node) || node[0] == '.') return WEIR_EINVAL;
  char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
  const char *env = getenv("WEIR_RUN_DIR");
  int k;
  if (env && *env)
    k = snprintf(dir, sizeof dir, "%s", env);
  else
    k = snprintf(dir, sizeof dir, "/tmp/weir-%u", (unsigned)geteuid());
  if (k < 0 || (size_t)k >= sizeof dir) return WEIR_EINVAL;
  if (mkdir(dir, 0700) == 0) {
    if (chmod(dir, 0700) != 0) return WEIR_ESYS; /* the umask aside */
  } else if (errno != EEXIST) {
    return WEIR_ESYS;
  }
  struct stat st;
  /* An existing run dir must be ours: another user's could hold a socket
     that impersonates this node. */
  if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
    return WEIR_ESYS;
  k = snprintf(path, n, "%s/%s.sock", dir, node);
  if (k < 0 || (size_t)k >= n) return WEIR_EINVAL;
  return WEIR_OK;
}

static int bind_socket(console *c, const char *path) {
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  struct stat st;
  if (lstat(path, &st) == 0) {
    /* A socket left by a node that died is replaced; a live node's is not,
       nor is anything that is not a socket. */
    if (!S_ISSOCK(st.st_mode)) return WEIR_EEXIST;
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) return WEIR_ESYS;
    int live = connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(probe);
    if (live) return WEIR_EEXIST;
    unlink(path);
  }
  c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (c->lfd < 0) return WEIR_ESYS;
  if (bind(c->lfd, (struct sockaddr *)&sa, sizeof sa) != 0)
    return errno == EADDRINUSE ? WEIR_EEXIST : WEIR_ESYS;
  if (chmod(path, 0600) != 0 || stat(path, &st) != 0 ||
      listen(c->lfd, 64) != 0) {
    unlink(path);
    return WEIR_ESYS;
  }
  c->ino = st.st_ino;
  return WEIR_OK;
}

static void console_free(console *c) {
  if (c->lfd >= 0) close(c->lfd);
  if (c->wake[0] >= 0) close(c->wake[0]);
  if (c->wake[1] >= 0) close(c->wake[1]);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  weir__free(c);
}

int weir__console_start(weir_rt *rt, const char *opt) {
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  int rc = resolve_path(rt, opt, path, sizeof path);
  if (rc != WEIR_OK) return rc;
  console *c = weir__calloc(1, sizeof *c);
  if (!c) return WEIR_ENOMEM;
  c->rt = rt;
  c->lfd = c->wake[0] = c->wake[1] = -1;
  for (int i = 0; i < MAX_CLIENTS; i++)
    c->cl[i].fd = -1;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&c->mu, NULL);
  rt->console_path = weir__strdup(path);
  if (!rt->console_path) {
    rc = WEIR_ENOMEM;
    goto fail;
  }
  if (pipe2(c->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
    rc = WEIR_ESYS;
    goto fail;
  }
  if ((rc = bind_socket(c, path)) != WEIR_OK) goto fail;
  if (pthread_create(&c->thr, NULL, console_main, c) != 0) {
    unlink(path);
    rc = WEIR_ESYS;
    goto fail;
  }
  rt->console = c;
  return WEIR_OK;
fail:
  weir__free(rt->console_path);
  rt->console_path = NULL;
  console_free(c);
  return rc;
}

void weir__console_stop(weir_rt *rt) {
  console *c = rt->console;
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  atomic_store(&c->stop, 1);
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  char x = 1;
  if (write(c->wake[1], &x, 1) < 0) {
    /* full: the thread will wake anyway */
  }
  pthread_join(c->thr, NULL);
  for (int i = 0; i < MAX_CLIENTS; i++) {
    client *cl = &c->cl[i];
    if (cl->state == C_JOB) pthread_join(cl->thr, NULL);
    if (cl->state != C_FREE) client_free(cl);
  }
  /* Unlink only our own socket: a node started since may own the path. */
  struct stat st;
  if (rt->console_path && stat(rt->console_path, &st) == 0 &&
      st.st_ino == c->ino)
    unlink(rt->console_path);
  console_free(c);
  rt->console = NULL;
}
