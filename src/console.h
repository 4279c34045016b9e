/*
 * console.h: what the console's three files share, private to them, to the
 * console's tests and to fuzz/.
 *
 *   console_parse.c   a request line -> weir__console_req (pure, fuzzed)
 *   console_render.c  a request -> its reply text (weir__sb)
 *   console.c         the socket server: clients, jobs, traces, start/stop
 *
 * The runtime itself sees only weir__console_start / weir__console_stop
 * (internal.h). The command list is console_cmds.h, shared with weirctl.
 */
#ifndef WEIR_CONSOLE_H
#define WEIR_CONSOLE_H

#include "console_cmds.h"
#include "internal.h"

/* ---- the request parser (console_parse.c) ------------------------------ */

#define WEIR__CONSOLE_LINE_MAX 1024  /* bytes of one request, newline aside */
#define WEIR__CONSOLE_MAX_N    1000  /* proc_count / proc_window N */
#define WEIR__CONSOLE_MAX_MS   60000 /* proc_window / scheduler_usage MS */

/* WEIR__CMD_<ID> for every request of console_cmds.h, in its order (the
   help reply's). */
#define WEIR__CMD_ENUM_NODE(name, id, nargs, args, doc) WEIR__CMD_##id,
#define WEIR__CMD_ENUM_BOTH(name, id, nargs, args, doc, cmin, cmax, cargs,     \
                            cdoc)                                              \
  WEIR__CMD_##id,
#define WEIR__CMD_ENUM_CTL(name, id, cmin, cmax, cargs, cdoc)
typedef enum {
  WEIR__CONSOLE_CMDS(WEIR__CMD_ENUM_NODE, WEIR__CMD_ENUM_BOTH,
                     WEIR__CMD_ENUM_CTL)
} weir__console_cmd;
#define WEIR__CMD_ONE_NODE(name, id, nargs, args, doc) +1
#define WEIR__CMD_ONE_BOTH(name, id, nargs, args, doc, cmin, cmax, cargs,      \
                           cdoc)                                               \
  +1
/* How many requests there are (not an enumerator, so switches stay whole). */
enum {
  WEIR__CMD__COUNT = 0 WEIR__CONSOLE_CMDS(
      WEIR__CMD_ONE_NODE, WEIR__CMD_ONE_BOTH, WEIR__CMD_ENUM_CTL)
};

/* The node's side of a row of console_cmds.h. */
typedef struct weir__console_cmd_info {
  const char *name;
  int nargs;        /* exactly this many arguments */
  const char *args; /* their usage, "" for none */
  const char *doc;  /* the help reply's line */
} weir__console_cmd_info;
/* Indexed by weir__console_cmd. */
extern const weir__console_cmd_info weir__console_cmds[WEIR__CMD__COUNT];

typedef struct weir__console_req {
  weir__console_cmd cmd;
  weir_attr attr; /* proc_count, proc_window */
  uint32_t n;     /* proc_count, proc_window: 1..WEIR__CONSOLE_MAX_N */
  uint32_t ms;    /* proc_window, scheduler_usage: 1..WEIR__CONSOLE_MAX_MS */
  int has_pid;    /* info: arg parsed as a pid */
  weir_pid pid;
  char name[64]; /* info NAME, partitions NAME, trace PID|NAME */
  /* trace, trace_key: n = messages (1..WEIR__TRACE_MAX_N), secs
     (1..WEIR__TRACE_MAX_S), tags (ntags 0 = every tag) */
  uint32_t secs;
  unsigned ntags;
  uint32_t tags[WEIR__TRACE_TAGS];
  int key_is_int; /* trace_key: KEY all digits (an integer key) */
  uint64_t key;   /* ... its value, or XXH3-64 of its bytes */
  char key_text[64];
} weir__console_req;

/* Parses one request line of len bytes (no newline; a trailing CR is
   ignored). Pure: no I/O, no allocation. Returns WEIR_OK, or WEIR_EINVAL
   with a human message in err (always NUL-terminated if errn > 0). */
int weir__console_parse(const char *line, size_t len, weir__console_req *req,
                        char *err, size_t errn);

/* Length of the valid UTF-8 sequence at s (n > 0 bytes left), or 0 if
   invalid (overlong forms, surrogates, code points past U+10FFFF). */
size_t weir__console_utf8_len(const unsigned char *s, size_t n);

/* ---- replies (console_render.c) ---------------------------------------- */

/* A growable reply buffer. Zeroed is empty; p is NUL-terminated once
   anything was put. A failed allocation sets oom and every later put is a
   no-op, so a renderer checks once at the end; the owner frees p with
   weir__free. */
typedef struct weir__sb {
  char *p;
  size_t len, cap;
  int oom;
} weir__sb;

void weir__sb_put(weir__sb *b, const char *s, size_t n);
void weir__sb_puts(weir__sb *b, const char *s);
void weir__sb_printf(weir__sb *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* {"error":msg} */
void weir__sb_error(weir__sb *b, const char *msg);

/* Appends the reply to a request answered at once (every command but
   proc_window, scheduler_usage and the traces), without its newline. */
void weir__console_reply(weir_rt *rt, const weir__console_req *rq, weir__sb *b);
/* proc_window's reply: the n samples s, processes that ended left out. */
void weir__console_samples(weir_rt *rt, weir__sb *b, const weir_proc_sample *s,
                           size_t n);
/* scheduler_usage's reply: busy_ms[i] = scheduler i's busy ms of ms. */
void weir__console_sched_usage(weir__sb *b, uint32_t ms, const double *busy_ms,
                               size_t ns);
/* A trace's first line (rq a trace or trace_key request for pid), and one
   line per event; both with their newline. */
void weir__console_trace_started(weir__sb *b, const weir__console_req *rq,
                                 weir_pid pid);
void weir__console_trace_ev(weir__sb *b, const weir__trace_ev *e);

/* ---- the server (console.c) -------------------------------------------- */

/* Idle timeout of a console client, ms (tests shorten it). */
extern _Atomic uint32_t weir__console_idle_ms;

#endif
