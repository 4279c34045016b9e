/*
 * args.h: weirctl's command line, parsed by a pure function.
 *
 * weirctl_parse_args turns argv into a weirctl_args and, for commands that
 * go to a node, into the one request line the console protocol expects. It
 * does no I/O and keeps no global state (no getopt), so fuzz/ can run it on
 * arbitrary argv and check its promises: it never reads past argc, the
 * request it builds is one line of printable text, and every error comes
 * with a message.
 */
#ifndef WEIRCTL_ARGS_H
#define WEIRCTL_ARGS_H

#include "weir.h"

#include <stddef.h>
#include <stdio.h>

typedef enum {
  WEIRCTL_NONE = 0, /* --help or --version only */
  WEIRCTL_NODES,
  WEIRCTL_PROC_COUNT,
  WEIRCTL_PROC_WINDOW,
  WEIRCTL_INFO,
  WEIRCTL_PARTITIONS,
  WEIRCTL_NODE_STATS,
  WEIRCTL_SCHEDULER_USAGE,
  WEIRCTL_ALARMS,
  WEIRCTL_METRICS,
  WEIRCTL_TOP,
  WEIRCTL_CRASHES,
  WEIRCTL_TRACE,
  WEIRCTL_TREE,
  WEIRCTL_WEB,
  WEIRCTL_HELP /* the node's own command list */
} weirctl_cmd;

typedef struct weirctl_args {
  const char *node;   /* --node NAME (points into argv), or NULL */
  const char *socket; /* -s SOCKET, or NULL */
  int json;           /* --json */
  int help;           /* --help / -h */
  int version;        /* --version / -V */
  weirctl_cmd cmd;
  weir_attr attr;     /* proc_count, proc_window; top --sort */
  unsigned n;         /* proc_count, proc_window; top -n */
  unsigned ms;        /* proc_window, scheduler_usage */
  const char *target; /* info PID|NAME, partitions NAME */
  int once;           /* top --once */
  unsigned count;     /* trace --count (default 10, at most 10000) */
  unsigned secs;      /* trace --secs (default 10, at most 300) */
  const char *listen; /* web --listen ADDR:PORT (default 127.0.0.1:8086) */
  const char *token;  /* web --token FILE, or NULL */
  char request[256];  /* the console request line, no newline ("" = none) */
} weirctl_args;

/* Parses argv[1..argc-1]. Returns 0, or -1 with a one-line message in err
   (errn > 0). Strings in *a point into argv. */
int weirctl_parse_args(int argc, char *const argv[], weirctl_args *a, char *err,
                       size_t errn);

/* Writes the usage text (for --help) to out. */
void weirctl_usage(FILE *out);

/* A decimal number in [lo, hi] into *out: 0, or -1 (empty, not digits,
   out of range). Also weirctl web's query parser's (web_route.c). */
int weirctl_num(const char *s, unsigned lo, unsigned hi, unsigned *out);

#endif
