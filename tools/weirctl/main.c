/*
 * weirctl: production diagnostics for a running weir node, over its console
 * socket (see docs/DIAGNOSTICS.md and weirctl(1)).
 *
 * weirctl is only a client: it parses its arguments (args.c, pure), finds
 * the node's socket, sends one request line per query and renders the reply.
 * With --json the node's reply is printed as it came; otherwise jansson
 * parses it and weirctl prints aligned tables that fit 80 columns. Every
 * failure is one line on stderr and exit status 1: an unknown node names the
 * run dir and suggests `weirctl nodes`, an unknown attribute lists the valid
 * ones, a node that stops answering is a timeout, never a hang.
 */
#include "args.h"
#include "client.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define REPLY_TIMEOUT_MS 15000

static int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("weirctl: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return 1;
}

/* ---- finding nodes ----------------------------------------------------- */

void weirctl_run_dir(char *buf, size_t n) {
  const char *env = getenv("WEIR_RUN_DIR");
  if (env && *env)
    snprintf(buf, n, "%s", env);
  else
    snprintf(buf, n, "/tmp/weir-%u", (unsigned)geteuid());
}

int weirctl_sock_open(const char *path) {
  struct sockaddr_un sa;
  if (strlen(path) >= sizeof sa.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int weirctl_list_nodes(const char *dir, node_ent *out, int max) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < max) {
    size_t k = strlen(e->d_name);
    if (k <= 5 || k - 5 >= sizeof out->name ||
        strcmp(e->d_name + k - 5, ".sock") != 0)
      continue;
    node_ent *x = &out[n];
    snprintf(x->name, sizeof x->name, "%.*s", (int)(k - 5), e->d_name);
    if ((size_t)snprintf(x->path, sizeof x->path, "%s/%s", dir, e->d_name) >=
        sizeof x->path)
      continue;
    int fd = weirctl_sock_open(x->path);
    if (fd < 0) continue;
    close(fd);
    n++;
  }
  closedir(d);
  return n;
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const node_ent *)a)->name, ((const node_ent *)b)->name);
}

static int cmd_nodes(const weirctl_args *a) {
  char dir[200];
  weirctl_run_dir(dir, sizeof dir);
  node_ent nodes[256];
  int n = weirctl_list_nodes(dir, nodes, 256);
  if (n < 0) n = 0; /* no run dir: no nodes */
  qsort(nodes, (size_t)n, sizeof nodes[0], by_name);
  if (a->json) {
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
      json_array_append_new(arr, json_pack("{s:s,s:s}", "node", nodes[i].name,
                                           "socket", nodes[i].path));
    char *s = json_dumps(arr, JSON_COMPACT);
    puts(s ? s : "[]");
    free(s);
    json_decref(arr);
    return 0;
  }
  if (n == 0) {
    printf("no live node in %s\n", dir);
    return 0;
  }
  printf("%-24s %s\n", "NODE", "SOCKET");
  for (int i = 0; i < n; i++)
    printf("%-24s %s\n", nodes[i].name, nodes[i].path);
  return 0;
}

/* The socket to talk to, or exit 1 with a message. */
static int pick_socket(const weirctl_args *a, char *path, size_t n) {
  char dir[200];
  weirctl_run_dir(dir, sizeof dir);
  if (a->socket) {
    snprintf(path, n, "%s", a->socket);
    return 0;
  }
  if (a->node) {
    snprintf(path, n, "%s/%s.sock", dir, a->node);
    return 0;
  }
  node_ent nodes[64];
  int k = weirctl_list_nodes(dir, nodes, 64);
  if (k <= 0)
    return die("no live node in %s (start one with a console, or "
               "use --node / -s)",
               dir);
  if (k > 1) {
    qsort(nodes, (size_t)k, sizeof nodes[0], by_name);
    fprintf(stderr,
            "weirctl: %d nodes are running in %s; pick one with "
            "--node:",
            k, dir);
    for (int i = 0; i < k; i++)
      fprintf(stderr, " %s", nodes[i].name);
    fputc('\n', stderr);
    return 1;
  }
  snprintf(path, n, "%s", nodes[0].path);
  return 0;
}

static int connect_node(const weirctl_args *a, const char *path) {
  int fd = weirctl_sock_open(path);
  if (fd >= 0) return fd;
  if (a->node && (errno == ENOENT || errno == ECONNREFUSED)) {
    char dir[200];
    weirctl_run_dir(dir, sizeof dir);
    die("no node named '%s' is running (no live socket %s/%s.sock); "
        "`weirctl nodes` lists the live ones",
        a->node, dir, a->node);
  } else {
    die("cannot connect to %s: %s", path, strerror(errno));
  }
  return -1;
}

/* ---- one request, one reply ------------------------------------------- */

/* Sends req and reads the reply (weirctl_ask, web.c). Returns a malloc'd
   NUL-terminated string, or NULL after printing the reason. */
static char *request(int fd, const char *req, int multiline, int timeout_ms) {
  char err[160];
  char *r = weirctl_ask(fd, req, multiline, timeout_ms, err, sizeof err);
  if (!r) die("%s", err);
  return r;
}

/* Parses a JSON reply; NULL (after printing) on an error reply. */
static json_t *parse_reply(const char *r) {
  json_error_t e;
  json_t *j = json_loads(r, 0, &e);
  if (!j) {
    die("malformed reply from the node: %s", e.text);
    return NULL;
  }
  json_t *err = json_is_object(j) ? json_object_get(j, "error") : NULL;
  if (err) {
    die("%s", json_is_string(err) ? json_string_value(err) : "error");
    json_decref(j);
    return NULL;
  }
  return j;
}

/* ---- rendering ---------------------------------------------------------- */

static const char *str_or(json_t *o, const char *k, const char *dflt) {
  json_t *v = json_object_get(o, k);
  return json_is_string(v) ? json_string_value(v) : dflt;
}

static unsigned long long num_of(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  if (json_is_integer(v)) return (unsigned long long)json_integer_value(v);
  if (json_is_real(v)) return (unsigned long long)json_real_value(v);
  return 0;
}

static double real_of(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  return json_is_number(v) ? json_number_value(v) : 0.0;
}

/* s cut to w columns (a '~' marks a cut), into buf. */
static const char *fit(const char *s, int w, char *buf, size_t n) {
  size_t len = strlen(s);
  if ((int)len <= w) return s;
  snprintf(buf, n, "%.*s~", w - 1, s);
  return buf;
}

/* 1234567 -> "1.2M": numbers that fit a narrow column. */
static const char *human(unsigned long long v, char *buf, size_t n) {
  if (v < 100000ull)
    snprintf(buf, n, "%llu", v);
  else if (v < 10000000ull)
    snprintf(buf, n, "%.1fK", (double)v / 1e3);
  else if (v < 10000000000ull)
    snprintf(buf, n, "%.1fM", (double)v / 1e6);
  else
    snprintf(buf, n, "%.1fG", (double)v / 1e9);
  return buf;
}

/* The widest value of string field k in arr, at least min. */
static int widest(json_t *arr, const char *k, const char *dflt, int min) {
  size_t i;
  json_t *e;
  int w = min;
  json_array_foreach(arr, i, e) {
    int l = (int)strlen(str_or(e, k, dflt));
    if (l > w) w = l;
  }
  return w;
}

/* Aligned columns sized to their content, shrunk to fit 80 columns. */
static void print_samples(json_t *arr) {
  char b1[128], b2[128], b3[128], v[32];
  int wp = widest(arr, "pid", "?", 3), wv = 5;
  size_t i;
  json_t *e;
  json_array_foreach(arr, i, e) {
    int l = snprintf(v, sizeof v, "%llu", num_of(e, "value"));
    if (l > wv) wv = l;
  }
  int wn = widest(arr, "registered_name", "-", 15);
  int wc = widest(arr, "current_function", "-", 16);
  int wi = widest(arr, "initial_call", "-", 12);
  while (wp + wv + wn + wc + wi + 8 > 80) {
    int *big = wc >= wn && wc >= wi ? &wc : wn >= wi ? &wn : &wi;
    if (*big <= 12) break;
    (*big)--;
  }
  printf("%-*s %*s  %-*s  %-*s  %s\n", wp, "PID", wv, "VALUE", wn,
         "REGISTERED_NAME", wc, "CURRENT_FUNCTION", "INITIAL_CALL");
  json_array_foreach(arr, i, e) {
    printf("%-*s %*llu  %-*s  %-*s  %s\n", wp, str_or(e, "pid", "?"), wv,
           num_of(e, "value"), wn,
           fit(str_or(e, "registered_name", "-"), wn, b1, sizeof b1), wc,
           fit(str_or(e, "current_function", "-"), wc, b2, sizeof b2),
           fit(str_or(e, "initial_call", "-"), wi, b3, sizeof b3));
  }
}

/* An object as "key: value" lines, in the node's order. */
static void print_object(json_t *o) {
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    if (json_is_string(v))
      printf("%-20s %s\n", k, json_string_value(v));
    else if (json_is_null(v))
      printf("%-20s -\n", k);
    else if (json_is_real(v))
      printf("%-20s %.3f\n", k, json_real_value(v));
    else {
      char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
      printf("%-20s %s\n", k, s ? s : "?");
      free(s);
    }
  }
}

/* 2764800 -> "2.6MiB". */
static const char *bytes(unsigned long long v, char *buf, size_t n) {
  static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double d = (double)v;
  int u = 0;
  while (d >= 1024 && u < 4) {
    d /= 1024;
    u++;
  }
  if (u == 0)
    snprintf(buf, n, "%lluB", v);
  else
    snprintf(buf, n, "%.1f%s", d, unit[u]);
  return buf;
}

static void print_partitions(json_t *o) {
  printf("partition supervisor %s %s, %llu partitions\n",
         str_or(o, "name", "?"), str_or(o, "supervisor", "?"),
         num_of(o, "count"));
  printf("%4s %-13s %9s %8s %8s  %-14s %s\n", "PART", "PID", "QUEUE", "IN/S",
         "OUT/S", "STATUS", "HOT KEYS (key:count)");
  size_t i;
  json_t *p;
  json_array_foreach(json_object_get(o, "partitions"), i, p) {
    char q[32], hot[64] = "";
    size_t k;
    json_t *h;
    json_array_foreach(json_object_get(p, "hot_keys"), k, h) {
      char one[48];
      snprintf(one, sizeof one, "%s%llu:%llu", k ? " " : "", num_of(h, "key"),
               num_of(h, "count"));
      if (strlen(hot) + strlen(one) < 28) strcat(hot, one);
    }
    printf("%4llu %-13s %9s %8.1f %8.1f  %-14s %s\n", num_of(p, "partition"),
           str_or(p, "pid", "-"),
           human(num_of(p, "message_queue_len"), q, sizeof q),
           real_of(p, "in_rate"), real_of(p, "out_rate"),
           str_or(p, "status", "?"), hot);
  }
}

static void print_usage(json_t *o) {
  size_t i;
  json_t *u;
  json_array_foreach(json_object_get(o, "schedulers"), i, u) {
    double f = json_is_number(u) ? json_number_value(u) : 0;
    int bars = (int)(f * 50 + 0.5);
    printf("scheduler %-3zu %5.1f%% ", i, f * 100);
    for (int k = 0; k < 50; k++)
      putchar(k < bars ? '#' : '.');
    putchar('\n');
  }
  printf("total         %5.1f%%\n", real_of(o, "total") * 100);
}

static void print_alarms(json_t *o) {
  json_t *arr = json_object_get(o, "alarms");
  if (json_array_size(arr) == 0) {
    printf("no active alarms\n");
    return;
  }
  printf("%-18s %-12s %-15s %8s %7s %7s %8s\n", "ALARM", "PID", "NAME", "QUEUE",
         "IN/S", "OUT/S", "LIMIT_IN");
  size_t i;
  json_t *a;
  json_array_foreach(arr, i, a) {
    char q[32], nb[32], eta[32] = "-";
    json_t *t = json_object_get(a, "secs_to_limit");
    if (json_is_number(t))
      snprintf(eta, sizeof eta, "%.0fs", json_number_value(t));
    printf("%-18s %-12s %-15s %8s %7.0f %7.0f %8s\n", str_or(a, "kind", "?"),
           str_or(a, "pid", "-"),
           fit(str_or(a, "registered_name", "-"), 15, nb, sizeof nb),
           human(num_of(a, "queue_len"), q, sizeof q), real_of(a, "in_rate"),
           real_of(a, "out_rate"), eta);
  }
}

static void print_crashes(json_t *o) {
  json_t *arr = json_object_get(o, "reports");
  printf("%llu reports since the start (%llu kept from the log by the rate "
         "limits)\n",
         num_of(o, "total"), num_of(o, "suppressed"));
  size_t i;
  json_t *r;
  json_array_foreach(arr, i, r) {
    char nb[32];
    double t = real_of(r, "time");
    time_t s = (time_t)t;
    struct tm tm;
    char ts[32];
    localtime_r(&s, &tm);
    strftime(ts, sizeof ts, "%H:%M:%S", &tm);
    printf("#%llu %s %s %s %s (%s)", num_of(r, "seq"), ts,
           str_or(r, "kind", "?"), str_or(r, "pid", "-"),
           fit(str_or(r, "registered_name", "-"), 15, nb, sizeof nb),
           str_or(r, "behaviour", "?"));
    if (strcmp(str_or(r, "kind", ""), "supervisor") == 0) {
      printf(" gave up: more than %llu restarts in %llu s (child %s %s)\n",
             num_of(r, "max_restarts"), num_of(r, "max_seconds"),
             str_or(r, "child", "-"), str_or(r, "child_id", "-"));
      continue;
    }
    printf(" %s %s (%lld)", str_or(r, "callback", "-"),
           str_or(r, "reason", "?"),
           (long long)json_integer_value(json_object_get(r, "code")));
    if (strcmp(str_or(r, "callback", ""), "exit_signal") == 0)
      printf(" from %s", str_or(r, "signal_from", "a thread"));
    putchar('\n');
    json_t *m = json_object_get(r, "message");
    if (json_is_object(m))
      printf("    message: tag %llu, %llu bytes from %s, head %s\n",
             num_of(m, "tag"), num_of(m, "len"), str_or(m, "from", "a thread"),
             str_or(m, "head", ""));
    const char *act = str_or(r, "action", "none");
    printf("    queue %llu; ", num_of(r, "queue_len"));
    if (strcmp(act, "none") == 0)
      printf("no supervisor\n");
    else if (strcmp(act, "restarted") == 0)
      printf("supervisor %s restarted it as %s (restart %llu of %llu in "
             "%llu s)\n",
             str_or(r, "supervisor", "?"), str_or(r, "restarted_as", "?"),
             num_of(r, "restarts"), num_of(r, "max_restarts"),
             num_of(r, "max_seconds"));
    else
      printf("supervisor %s: %s\n", str_or(r, "supervisor", "?"), act);
  }
}

/* tree: the flat list of supervisors drawn as a tree, roots first. */
static void print_sup(json_t *sups, json_t *sup, int depth) {
  char nb[40], q[32];
  const char *pid = str_or(sup, "pid", "?");
  printf("%*s%s %s %s  restarts %llu (%llu recent), intensity left %llu of "
         "%llu in %llus\n",
         depth * 2, "", pid,
         fit(str_or(sup, "registered_name", "-"), 24, nb, sizeof nb),
         str_or(sup, "strategy", "?"), num_of(sup, "restarts"),
         num_of(sup, "restarts_recent"), num_of(sup, "intensity_left"),
         num_of(sup, "max_restarts"), num_of(sup, "max_seconds"));
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(sup, "children"), i, c) {
    if (json_is_true(json_object_get(c, "supervisor"))) {
      size_t k;
      json_t *s;
      json_array_foreach(sups, k, s) {
        if (strcmp(str_or(s, "pid", ""), str_or(c, "pid", "-")) == 0)
          print_sup(sups, s, depth + 1);
      }
      continue;
    }
    unsigned long long r = num_of(c, "restarts");
    printf("%*s%-13s %-20s %-22s queue %s%s\n", depth * 2 + 2, "",
           str_or(c, "pid", "?"),
           fit(str_or(c, "registered_name", "-"), 20, nb, sizeof nb),
           str_or(c, "initial_call", "-"),
           human(num_of(c, "message_queue_len"), q, sizeof q), "");
    if (r) printf("%*s  restarted %llu times\n", depth * 2 + 2, "", r);
  }
}

static void print_tree(json_t *o) {
  json_t *sups = json_object_get(o, "supervisors");
  if (json_array_size(sups) == 0) {
    printf("no supervisors on node %s\n", str_or(o, "node", "?"));
    return;
  }
  size_t i;
  json_t *s;
  json_array_foreach(sups, i, s) {
    /* a root: no parent, or a parent that is no supervisor listed */
    const char *parent = str_or(s, "parent", "");
    int listed = 0;
    size_t k;
    json_t *p;
    json_array_foreach(sups, k, p) {
      if (*parent && strcmp(str_or(p, "pid", ""), parent) == 0) listed = 1;
    }
    if (!listed) print_sup(sups, s, 0);
  }
  if (json_is_true(json_object_get(o, "truncated")))
    printf("(truncated: only the first %llu processes were read)\n",
           num_of(o, "processes_seen"));
}

static void print_help(json_t *o) {
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(o, "commands"), i, c) {
    char what[48];
    snprintf(what, sizeof what, "%s %s", str_or(c, "name", "?"),
             str_or(c, "args", ""));
    printf("  %-28s %s\n", what, str_or(c, "doc", ""));
  }
}

/* ---- top ------------------------------------------------------------------
 */

static volatile sig_atomic_t quit_flag;
static void on_signal(int sig) {
  (void)sig;
  quit_flag = 1;
}

static int top_frame(int fd, const weirctl_args *a, int rows) {
  char *r = request(fd, "node_stats", 0, REPLY_TIMEOUT_MS);
  json_t *st = r ? parse_reply(r) : NULL;
  free(r);
  if (!st) return -1;
  char req[96];
  int n = a->n ? (int)a->n : rows - 5;
  if (n < 1) n = 1;
  if (n > 200) n = 200;
  snprintf(req, sizeof req, "proc_count %s %d", weir_attr_name(a->attr), n);
  r = request(fd, req, 0, REPLY_TIMEOUT_MS);
  json_t *top = r ? parse_reply(r) : NULL;
  free(r);
  if (!top) {
    json_decref(st);
    return -1;
  }
  char b1[32], b2[32], b3[32], b4[32];
  double up = real_of(st, "uptime_s");
  printf("node %-16s up %dh%02dm%02ds  procs %s  queued %s msgs %s  "
         "alarms %llu\n",
         str_or(st, "node", "?"), (int)(up / 3600), (int)up / 60 % 60,
         (int)up % 60, human(num_of(st, "processes"), b1, sizeof b1),
         human(num_of(st, "queued_messages"), b2, sizeof b2),
         bytes(num_of(st, "queued_bytes"), b3, sizeof b3),
         num_of(st, "alarms_active"));
  printf("scheds %llu  io %llu/%llu  rss %s  spawned %s  crashed %llu  "
         "dropped %llu\n",
         num_of(st, "schedulers"), num_of(st, "io_threads_live"),
         num_of(st, "io_threads_max"),
         bytes(num_of(st, "rss_bytes"), b1, sizeof b1),
         human(num_of(st, "spawned"), b2, sizeof b2), num_of(st, "crashed"),
         num_of(st, "dropped"));
  printf("sorted by %s (q quits)\n", weir_attr_name(a->attr));
  int wp = widest(top, "pid", "?", 3);
  if (wp > 22) wp = 22;
  int wc = 80 - (wp + 1 + 4 * 8 + 16);
  printf("%-*s %7s %7s %7s %7s %-15s %s\n", wp, "PID", "VALUE", "QUEUE", "IN/S",
         "OUT/S", "NAME", "CURRENT_FUNCTION");
  size_t i;
  json_t *e;
  json_array_foreach(top, i, e) {
    const char *pid = str_or(e, "pid", "?");
    char ireq[96], nb[32], cb[96];
    snprintf(ireq, sizeof ireq, "info %s", pid);
    r = request(fd, ireq, 0, REPLY_TIMEOUT_MS);
    json_t *in = r ? json_loads(r, 0, NULL) : NULL;
    free(r);
    if (!in) {
      json_decref(st);
      json_decref(top);
      return -1;
    }
    if (json_object_get(in, "error")) { /* it ended meanwhile */
      json_decref(in);
      continue;
    }
    printf("%-*s %7s %7s %7.0f %7.0f %-15s %s\n", wp,
           fit(pid, wp, b4, sizeof b4),
           human(num_of(e, "value"), b1, sizeof b1),
           human(num_of(in, "message_queue_len"), b2, sizeof b2),
           real_of(in, "in_rate"), real_of(in, "out_rate"),
           fit(str_or(e, "registered_name", "-"), 15, nb, sizeof nb),
           fit(str_or(e, "current_function", "-"), wc, cb, sizeof cb));
    json_decref(in);
  }
  json_decref(st);
  json_decref(top);
  fflush(stdout);
  return 0;
}

static int cmd_top(int fd, const weirctl_args *a) {
  int tty_out = isatty(STDOUT_FILENO), tty_in = isatty(STDIN_FILENO);
  struct termios saved;
  int raw = 0;
  if (!a->once && tty_in && tcgetattr(STDIN_FILENO, &saved) == 0) {
    struct termios t = saved;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    raw = tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  int rc = 0;
  while (!quit_flag) {
    if (tty_out && !a->once) fputs("\033[H\033[2J", stdout);
    int rows = 24;
    struct winsize ws;
    if (tty_out && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 6)
      rows = ws.ws_row;
    if (top_frame(fd, a, rows) != 0) {
      rc = 1;
      break;
    }
    if (a->once) break;
    struct pollfd pf = {STDIN_FILENO, POLLIN, 0};
    int k = poll(&pf, tty_in ? 1 : 0, 1000);
    if (k > 0) {
      char c = 0;
      if (read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q')) break;
    }
  }
  if (raw) tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  return rc;
}

/* ---- main -----------------------------------------------------------------
 */

/* ---- trace: a reply of many lines ------------------------------------- */

/* Reads one line from fd into *buf (grown as needed); 0, or -1 after
   printing why. */
static int read_line(int fd, char **buf, size_t *cap, int timeout_ms) {
  size_t len = 0;
  for (;;) {
    struct pollfd pf = {fd, POLLIN, 0};
    int pr = poll(&pf, 1, timeout_ms);
    if (pr < 0 && errno == EINTR) {
      if (quit_flag) return -1;
      continue;
    }
    if (pr <= 0) return die("the node did not answer within %d ms", timeout_ms);
    if (len + 2 > *cap) {
      char *nb = realloc(*buf, *cap = *cap ? *cap * 2 : 4096);
      if (!nb) return die("out of memory");
      *buf = nb;
    }
    char c;
    ssize_t k = recv(fd, &c, 1, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return die("the node closed the connection");
    if (c == '\n') break;
    (*buf)[len++] = c;
  }
  (*buf)[len] = 0;
  return 0;
}

static void print_event(json_t *e) {
  double t = real_of(e, "t");
  time_t s = (time_t)t;
  struct tm tm;
  char ts[32];
  localtime_r(&s, &tm);
  strftime(ts, sizeof ts, "%H:%M:%S", &tm);
  printf("%s.%06ld %-7s tag=%llu len=%llu from=%s head=%s\n", ts,
         (long)((t - (double)s) * 1e6), str_or(e, "kind", "?"),
         num_of(e, "tag"), num_of(e, "len"), str_or(e, "from", "thread"),
         str_or(e, "head", ""));
}

static int cmd_trace(int fd, const weirctl_args *a) {
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  char line[300];
  snprintf(line, sizeof line, "%s\n", a->request);
  if (send(fd, line, strlen(line), MSG_NOSIGNAL) != (ssize_t)strlen(line))
    return die("cannot send to the node: %s", strerror(errno));
  char *b = NULL;
  size_t cap = 0;
  int rc = 1;
  /* the node ends the trace by SECS; a margin for a busy node */
  int timeout = (int)a->secs * 1000 + REPLY_TIMEOUT_MS;
  if (read_line(fd, &b, &cap, REPLY_TIMEOUT_MS) != 0) goto out;
  json_t *j = parse_reply(b);
  if (!j) goto out;
  if (a->json)
    printf("%s\n", b);
  else
    printf("tracing %s: up to %u messages or %u s (Ctrl-C stops)\n",
           str_or(j, "pid", "?"), a->count, a->secs);
  fflush(stdout);
  json_decref(j);
  while (!quit_flag) {
    if (read_line(fd, &b, &cap, timeout) != 0) goto out;
    json_t *e = parse_reply(b);
    if (!e) goto out;
    int end = json_object_get(e, "trace") != NULL;
    if (a->json)
      printf("%s\n", b);
    else if (end)
      printf("%llu messages, %llu lost (%s)\n", num_of(e, "messages"),
             num_of(e, "lost"), str_or(e, "reason", "?"));
    else
      print_event(e);
    fflush(stdout);
    json_decref(e);
    if (end) {
      rc = 0;
      break;
    }
  }
  if (quit_flag) rc = 0; /* closing the socket ends the trace on the node */
out:
  free(b);
  return rc;
}

int main(int argc, char **argv) {
  weirctl_args a;
  char err[256];
  if (weirctl_parse_args(argc, argv, &a, err, sizeof err) != 0)
    return die("%s", err);
  if (a.help) {
    weirctl_usage(stdout);
    return 0;
  }
  if (a.version) {
    printf("weirctl %s\n", WEIR_VERSION_STRING);
    return 0;
  }
  if (a.cmd == WEIRCTL_NODES) return cmd_nodes(&a);
  if (a.cmd == WEIRCTL_WEB) return weirctl_web(&a);
  signal(SIGPIPE, SIG_IGN);
  char path[256];
  if (pick_socket(&a, path, sizeof path) != 0) return 1;
  int fd = connect_node(&a, path);
  if (fd < 0) return 1;
  if (a.cmd == WEIRCTL_TOP) {
    int rc = cmd_top(fd, &a);
    close(fd);
    return rc;
  }
  if (a.cmd == WEIRCTL_TRACE) {
    int rc = cmd_trace(fd, &a);
    close(fd);
    return rc;
  }
  int timeout = REPLY_TIMEOUT_MS + (int)a.ms;
  char *r = request(fd, a.request, a.cmd == WEIRCTL_METRICS, timeout);
  close(fd);
  if (!r) return 1;
  if (a.cmd == WEIRCTL_METRICS && r[0] != '{') {
    fputs(r, stdout);
    free(r);
    return 0;
  }
  if (a.json) {
    /* The node's JSON as is, unless it is an error. */
    json_t *j = parse_reply(r);
    if (j) fputs(r, stdout);
    free(r);
    json_decref(j);
    return j ? 0 : 1;
  }
  json_t *j = parse_reply(r);
  free(r);
  if (!j) return 1;
  switch (a.cmd) {
  case WEIRCTL_PROC_COUNT:
  case WEIRCTL_PROC_WINDOW:
    print_samples(j);
    break;
  case WEIRCTL_PARTITIONS:
    print_partitions(j);
    break;
  case WEIRCTL_SCHEDULER_USAGE:
    print_usage(j);
    break;
  case WEIRCTL_ALARMS:
    print_alarms(j);
    break;
  case WEIRCTL_HELP:
    print_help(j);
    break;
  case WEIRCTL_CRASHES:
    print_crashes(j);
    break;
  case WEIRCTL_TREE:
    print_tree(j);
    break;
  default:
    print_object(j);
    break;
  }
  json_decref(j);
  return 0;
}
