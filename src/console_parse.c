/*
 * console_parse.c: the console's request parser, and the node's side of the
 * command table (console_cmds.h).
 *
 * A request is one line of at most WEIR__CONSOLE_LINE_MAX bytes: a command
 * name and its arguments, separated by spaces or tabs. The parser checks
 * the bytes first (no NUL, no control characters, valid UTF-8), then the
 * command and its argument count against the table, then each argument's
 * range, so that a weir__console_req it returns is always within the
 * limits the server and the renderers rely on (N, MS, a name that fits,
 * at most WEIR__TRACE_TAGS tags).
 *
 * Read-only by construction: the table holds queries only, and no request
 * evaluates anything. The parser is a pure function (bytes -> request or
 * error text: no I/O, no allocation, no state) so that fuzz/console_parse
 * can hammer it without a runtime, and every error is a sentence the
 * client can show as is.
 */
#include "console.h"

#include <stdarg.h>
#include <stdio.h>
#include <xxhash.h>

size_t weir__console_utf8_len(const unsigned char *s, size_t n) {
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

/* The node's side of console_cmds.h, indexed by weir__console_cmd (whose
   order is the table's, and the help reply's). */
#define TABLE_NODE(name_, id, nargs_, args_, doc_)                             \
  [WEIR__CMD_##id] = {name_, nargs_, args_, doc_},
#define TABLE_BOTH(name_, id, nargs_, args_, doc_, cmin, cmax, cargs, cdoc)    \
  [WEIR__CMD_##id] = {name_, nargs_, args_, doc_},
#define TABLE_CTL(name_, id, cmin, cmax, cargs, cdoc)
const weir__console_cmd_info weir__console_cmds[WEIR__CMD__COUNT] = {
    WEIR__CONSOLE_CMDS(TABLE_NODE, TABLE_BOTH, TABLE_CTL)};

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
    size_t k = weir__console_utf8_len(u + i, len - i);
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
  while (c < WEIR__CMD__COUNT && !tok_is(t[0], weir__console_cmds[c].name))
    c++;
  if (c == WEIR__CMD__COUNT) {
    int shown = t[0].len > 32 ? 32 : (int)t[0].len;
    set_err(err, errn, "unknown command '%.*s' (try help)", shown, t[0].p);
    return WEIR_EINVAL;
  }
  const weir__console_cmd_info *ci = &weir__console_cmds[c];
  if (nt - 1 != (size_t)ci->nargs) {
    set_err(err, errn, "usage: %s%s%s", ci->name, ci->nargs ? " " : "",
            ci->args);
    return WEIR_EINVAL;
  }
  req->cmd = (weir__console_cmd)c;
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
