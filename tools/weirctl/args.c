/*
 * args.c: weirctl's argument parser (see args.h). Global options come
 * before the command (`--node`, `-s`, `--json`, also in --opt=VALUE form);
 * `top` takes its own after it. Validation happens here, before any socket
 * is opened, so that an unknown attribute or a malformed number is a clear
 * local error and the node only ever sees well-formed requests.
 *
 * The commands, their argument counts, usage errors and --help lines come
 * from the node's own command list (src/console_cmds.h), so weirctl and
 * the console cannot drift apart on what exists and how it is called.
 */
#include "args.h"
#include "console_cmds.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* weirctl's side of console_cmds.h: its commands, in its --help order. */
#define ROW_NODE(name_, id, nargs, args_, doc_)
#define ROW_BOTH(name_, id, nargs, args_, doc_, cmin, cmax, cargs, cdoc)       \
  {name_, WEIRCTL_##id, cmin, cmax, cargs, cdoc},
#define ROW_CTL(name_, id, cmin, cmax, cargs, cdoc)                            \
  {name_, WEIRCTL_##id, cmin, cmax, cargs, cdoc},
typedef struct cmd_row {
  const char *name;
  weirctl_cmd cmd;
  int min, max;     /* positional arguments, options aside */
  const char *args; /* the usage after the name, "" for none */
  const char *doc;  /* --help text, "\n" between its lines */
} cmd_row;
static const cmd_row cmds[] = {WEIR__CONSOLE_CMDS(ROW_NODE, ROW_BOTH, ROW_CTL)};
#define NCMDS (sizeof cmds / sizeof cmds[0])

static int fail(char *err, size_t errn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errn, const char *fmt, ...) {
  if (err && errn) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errn, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* The --help text's column of descriptions; a command line longer than
   fits before it goes on a line of its own. */
#define DOC_COL 29

void weirctl_usage(FILE *out) {
  fputs("usage: weirctl [--node NAME | -s SOCKET] [--json] COMMAND [ARGS]\n"
        "\n"
        "commands:\n",
        out);
  for (const cmd_row *c = cmds; c < cmds + NCMDS; c++) {
    char line[128];
    int k = snprintf(line, sizeof line, "%s%s%s", c->name, *c->args ? " " : "",
                     c->args);
    if (k < DOC_COL - 2)
      fprintf(out, "  %-*s", DOC_COL - 2, line);
    else
      fprintf(out, "  %s\n%*s", line, DOC_COL, "");
    for (const char *d = c->doc; *d; d++) {
      fputc(*d, out);
      if (*d == '\n') fprintf(out, "%*s", DOC_COL, "");
    }
    fputc('\n', out);
  }
  fputs("\n"
        "ATTR: message_queue_len mailbox_bytes memory reductions messages_in\n"
        "      messages_out dropped queue_high_water\n"
        "\n"
        "options:\n"
        "  --node NAME   the node's socket is $WEIR_RUN_DIR/NAME.sock\n"
        "                (run dir default /tmp/weir-UID)\n"
        "  -s SOCKET     a socket path\n"
        "  --json        print the node's JSON reply as is\n"
        "  -h, --help    this text;  -V, --version  the version\n"
        "Without --node or -s, the only live node in the run dir is used.\n",
        out);
}

static int usage(char *err, size_t errn, const cmd_row *c) {
  return fail(err, errn, "usage: weirctl %s%s%s", c->name, *c->args ? " " : "",
              c->args);
}

int weirctl_num(const char *s, unsigned lo, unsigned hi, unsigned *out) {
  unsigned long long v = 0;
  if (!*s) return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    v = v * 10 + (unsigned)(*s - '0');
    if (v > hi) return -1;
  }
  if (v < lo) return -1;
  *out = (unsigned)v;
  return 0;
}

static int attr(const char *s, weir_attr *a, char *err, size_t errn) {
  if (weir_attr_parse(s, a) == WEIR_OK) return 0;
  return fail(err, errn,
              "unknown attribute '%.40s' (one of: message_queue_len, "
              "mailbox_bytes, memory, reductions, messages_in, messages_out, "
              "dropped, queue_high_water)",
              s);
}

/* A process name or pid: printable, no spaces, at most 63 bytes. */
static int word(const char *s, const char *what, char *err, size_t errn) {
  size_t n = strlen(s);
  if (n == 0 || n > 63)
    return fail(err, errn, "%s must be 1 to 63 bytes", what);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= ' ' || c == 0x7F)
      return fail(err, errn, "%s must not contain spaces or control characters",
                  what);
  }
  return 0;
}

/* "--opt=value" or "--opt value": the value, advancing *i; NULL if none. */
static const char *optval(int argc, char *const argv[], int *i,
                          const char *opt) {
  const char *a = argv[*i];
  size_t k = strlen(opt);
  if (strncmp(a, opt, k) == 0 && a[k] == '=') return a + k + 1;
  if (strcmp(a, opt) != 0) return NULL;
  if (*i + 1 >= argc) return NULL;
  return argv[++*i];
}

static int is_opt(const char *a, const char *opt) {
  size_t k = strlen(opt);
  return strncmp(a, opt, k) == 0 && (a[k] == 0 || a[k] == '=');
}

/* TAGS: decimal tags separated by commas, at most 8 (the node's limit). */
static int tags(const char *s, char *err, size_t errn) {
  unsigned n = 0, t;
  char one[16];
  while (*s) {
    size_t k = strcspn(s, ",");
    if (k == 0 || k > 10 || ++n > 8) goto bad; /* the node's limits */
    memcpy(one, s, k);
    one[k] = 0;
    if (weirctl_num(one, 0, 4294967295u, &t)) goto bad;
    s += k;
    if (*s == ',' && !*++s) goto bad;
  }
  if (n) return 0;
bad:
  return fail(err, errn,
              "--tag needs 1 to 8 numbers separated by commas (e.g. 1,7)");
}

/* trace PID|NAME [--count N] [--secs S] [--tag T,...] [--key K] */
static int parse_trace(weirctl_args *a, const cmd_row *c, char *const *pos,
                       int np, char *err, size_t errn) {
  const char *target = NULL, *tag = "*", *key = NULL, *v;
  a->count = 10;
  a->secs = 10;
  for (int k = 0; k < np; k++) {
    const char *s = pos[k];
    int j = k + 1;
    char *const *sub = pos - 1;
    if (is_opt(s, "--count")) {
      if (!(v = optval(np + 1, sub, &j, "--count")) ||
          weirctl_num(v, 1, 10000, &a->count))
        return fail(err, errn, "--count needs a number from 1 to 10000");
    } else if (is_opt(s, "--secs")) {
      if (!(v = optval(np + 1, sub, &j, "--secs")) ||
          weirctl_num(v, 1, 300, &a->secs))
        return fail(err, errn, "--secs needs a number from 1 to 300");
    } else if (is_opt(s, "--tag")) {
      if (!(v = optval(np + 1, sub, &j, "--tag")) || tags(v, err, errn))
        return fail(err, errn,
                    "--tag needs 1 to 8 numbers separated by commas "
                    "(e.g. 1,7)");
      tag = v;
    } else if (is_opt(s, "--key")) {
      if (!(v = optval(np + 1, sub, &j, "--key")) ||
          word(v, "a key", err, errn))
        return fail(err, errn,
                    "--key needs a key of 1 to 63 bytes without spaces");
      key = v;
    } else if (strcmp(s, "--json") == 0) {
      a->json = 1;
    } else if (s[0] == '-' && s[1]) {
      return fail(err, errn, "unknown trace option '%.40s'", s);
    } else if (!target) {
      if (word(s, key ? "a name" : "a pid or name", err, errn)) return -1;
      target = s;
    } else {
      return usage(err, errn, c);
    }
    k = j - 1;
  }
  if (!target) return usage(err, errn, c);
  a->target = target;
  if (key)
    snprintf(a->request, sizeof a->request, "trace_key %s %s %u %u %s", target,
             key, a->count, a->secs, tag);
  else
    snprintf(a->request, sizeof a->request, "trace %s %u %u %s", target,
             a->count, a->secs, tag);
  return 0;
}

/* ADDR:PORT: a non-empty address (an IPv4 literal or [IPv6]; web.c checks
   it) and a port from 1 to 65535. */
static int listen_addr(const char *s) {
  const char *colon = strrchr(s, ':');
  unsigned port;
  if (!colon || colon == s || strlen(s) > 64) return -1;
  if (s[0] == '[' && colon[-1] != ']') return -1;
  return weirctl_num(colon + 1, 1, 65535, &port);
}

/* web [--listen ADDR:PORT] [--token FILE] */
static int parse_web(weirctl_args *a, const cmd_row *c, char *const *pos,
                     int np, char *err, size_t errn) {
  a->listen = "127.0.0.1:8086";
  for (int k = 0; k < np; k++) {
    const char *s = pos[k], *v;
    int j = k + 1;
    char *const *sub = pos - 1;
    if (is_opt(s, "--listen")) {
      if (!(v = optval(np + 1, sub, &j, "--listen")) || listen_addr(v))
        return fail(err, errn,
                    "--listen needs ADDR:PORT (e.g. 127.0.0.1:8086, "
                    "[::1]:8086)");
      a->listen = v;
    } else if (is_opt(s, "--token")) {
      if (!(v = optval(np + 1, sub, &j, "--token")) || !*v)
        return fail(err, errn, "--token needs a file");
      a->token = v;
    } else {
      return usage(err, errn, c);
    }
    k = j - 1;
  }
  return 0;
}

int weirctl_parse_args(int argc, char *const argv[], weirctl_args *a, char *err,
                       size_t errn) {
  if (err && errn) err[0] = 0;
  memset(a, 0, sizeof *a);
  a->attr = WEIR_ATTR_MESSAGE_QUEUE_LEN;
  int i = 1;
  for (; i < argc; i++) {
    const char *s = argv[i];
    if (!s) return fail(err, errn, "missing argument");
    const char *v;
    if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
      a->help = 1;
    } else if (strcmp(s, "-V") == 0 || strcmp(s, "--version") == 0) {
      a->version = 1;
    } else if (strcmp(s, "--json") == 0) {
      a->json = 1;
    } else if (is_opt(s, "--node")) {
      if (!(v = optval(argc, argv, &i, "--node")))
        return fail(err, errn, "--node needs a node name");
      if (word(v, "a node name", err, errn)) return -1;
      if (strchr(v, '/'))
        return fail(err, errn, "a node name cannot contain '/' (use -s)");
      a->node = v;
    } else if (is_opt(s, "-s") || is_opt(s, "--socket")) {
      if (!(v = optval(argc, argv, &i, s[1] == 's' ? "-s" : "--socket")))
        return fail(err, errn, "-s needs a socket path");
      if (!*v) return fail(err, errn, "-s needs a socket path");
      a->socket = v;
    } else if (s[0] == '-' && s[1]) {
      return fail(err, errn, "unknown option '%.40s' (try --help)", s);
    } else {
      break;
    }
  }
  if (a->node && a->socket)
    return fail(err, errn, "--node and -s cannot be used together");
  if (i >= argc) {
    if (a->help || a->version) return 0;
    return fail(err, errn, "no command (try --help)");
  }
  if (!argv[i]) return fail(err, errn, "missing argument");
  const cmd_row *c = cmds;
  while (c < cmds + NCMDS && strcmp(argv[i], c->name) != 0)
    c++;
  if (c == cmds + NCMDS)
    return fail(err, errn, "unknown command '%.40s' (try --help)", argv[i]);
  a->cmd = c->cmd;
  char *const *pos = argv + i + 1;
  int np = argc - i - 1;
  for (int k = 0; k < np; k++)
    if (!pos[k]) return fail(err, errn, "missing argument");

  if (a->cmd == WEIRCTL_TOP) {
    a->n = 0;
    for (int k = 0; k < np; k++) {
      const char *s = pos[k], *v;
      int j = k + 1; /* optval's index into pos, shifted by one */
      char *const *sub = pos - 1;
      if (strcmp(s, "--once") == 0) {
        a->once = 1;
      } else if (strcmp(s, "--json") == 0) {
        a->json = 1;
      } else if (is_opt(s, "--sort")) {
        if (!(v = optval(np + 1, sub, &j, "--sort")))
          return fail(err, errn, "--sort needs an attribute");
        if (attr(v, &a->attr, err, errn)) return -1;
        k = j - 1;
      } else if (is_opt(s, "-n")) {
        if (!(v = optval(np + 1, sub, &j, "-n")) ||
            weirctl_num(v, 1, 200, &a->n))
          return fail(err, errn, "-n needs a number from 1 to 200");
        k = j - 1;
      } else {
        return usage(err, errn, c);
      }
    }
    snprintf(a->request, sizeof a->request, "proc_count %s %u",
             weir_attr_name(a->attr), a->n ? a->n : 20);
    return 0;
  }
  if (a->cmd == WEIRCTL_TRACE) return parse_trace(a, c, pos, np, err, errn);
  if (a->cmd == WEIRCTL_WEB) return parse_web(a, c, pos, np, err, errn);
  if (np < c->min || np > c->max) return usage(err, errn, c);
  switch (a->cmd) {
  case WEIRCTL_PROC_COUNT:
  case WEIRCTL_PROC_WINDOW:
    if (attr(pos[0], &a->attr, err, errn)) return -1;
    if (weirctl_num(pos[1], 1, 1000, &a->n))
      return fail(err, errn, "N must be a number from 1 to 1000");
    if (a->cmd == WEIRCTL_PROC_COUNT) {
      snprintf(a->request, sizeof a->request, "proc_count %s %u",
               weir_attr_name(a->attr), a->n);
      break;
    }
    if (weirctl_num(pos[2], 1, 60000, &a->ms))
      return fail(err, errn, "MS must be a number from 1 to 60000");
    snprintf(a->request, sizeof a->request, "proc_window %s %u %u",
             weir_attr_name(a->attr), a->n, a->ms);
    break;
  case WEIRCTL_INFO:
  case WEIRCTL_PARTITIONS:
    if (word(pos[0], a->cmd == WEIRCTL_INFO ? "a pid or name" : "a name", err,
             errn))
      return -1;
    a->target = pos[0];
    snprintf(a->request, sizeof a->request, "%s %s", c->name, pos[0]);
    break;
  case WEIRCTL_SCHEDULER_USAGE:
    a->ms = 1000;
    if (np == 1 && weirctl_num(pos[0], 1, 60000, &a->ms))
      return fail(err, errn, "MS must be a number from 1 to 60000");
    snprintf(a->request, sizeof a->request, "scheduler_usage %u", a->ms);
    break;
  case WEIRCTL_NODES:
    break;
  default:
    snprintf(a->request, sizeof a->request, "%s", c->name);
    break;
  }
  return 0;
}
