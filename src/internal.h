/*
 * internal.h: the umbrella of the runtime's private headers, one per module,
 * included in stack order (nng's core/nng_impl.h): a header may use only
 * what is above it in this list. Nothing here is API; names are weir__
 * (exported only to the static library, for the tests). The layers and the
 * hook table that is their only way up: docs/ARCHITECTURE.md.
 *
 * The central object is the process slot (weir__proc). A slot owns a mailbox
 * that outlives any one incarnation of a process: a pid is (generation, slot)
 * and every queued message is stamped with the generation it was sent to. A
 * message whose generation the slot no longer accepts is a dead letter. So a
 * sender that raced with the receiver's exit never touches freed memory (slots
 * are type-stable until weir_rt_stop), and a supervisor can restart a child in
 * the same slot so that the next incarnation inherits the queued messages.
 */
#ifndef WEIR_INTERNAL_H
#define WEIR_INTERNAL_H

#include "base.h"      /* macros, os.c: clock, sleep, futex */
#include "alloc.h"     /* alloc.c: the one door for memory */
#include "msg.h"       /* msg.c: messages */
#include "slot.h"      /* the process slot (data) */
#include "mailbox.h"   /* mailbox.c */
#include "node.h"      /* the node (data) and the hook table */
#include "proc.h"      /* proc.c, run.c: table, spawn, delivery, run loop */
#include "iopool.h"    /* iopool.c: blocking processes */
#include "scheduler.h" /* sched.c: the schedulers */
#include "registry.h"  /* registry.c: names */
#include "timer.h"     /* timer.c: timers */
#include "server.h"    /* server.c: calls */
#include "overload.h"  /* overload.c: bounds, dead letters */
#include "report.h"    /* report.c: crash and supervisor reports */
#include "sup.h"       /* sup.c, partsup.c: supervision */
#include "trace.h"     /* trace.c: message tracing */
#include "alarm.h"     /* alarm.c: overload alarms */

/* console.c */
int weir__console_start(weir_rt *rt, const char *path);
void weir__console_stop(weir_rt *rt);

/* ---- console.c: the request parser (pure, fuzzed) ---------------------
   Added by the diagnostics work; a pure addition. */
#define WEIR__CONSOLE_LINE_MAX 1024  /* bytes of one request, newline aside */
#define WEIR__CONSOLE_MAX_N    1000  /* proc_count / proc_window N */
#define WEIR__CONSOLE_MAX_MS   60000 /* proc_window / scheduler_usage MS */
typedef enum {
  WEIR__CMD_HELP = 0,
  WEIR__CMD_PROC_COUNT,
  WEIR__CMD_PROC_WINDOW,
  WEIR__CMD_INFO,
  WEIR__CMD_PARTITIONS,
  WEIR__CMD_NODE_STATS,
  WEIR__CMD_SCHEDULER_USAGE,
  WEIR__CMD_ALARMS,
  WEIR__CMD_METRICS,
  WEIR__CMD_CRASHES,
  WEIR__CMD_TRACE,    /* trace PID|NAME N SECS TAGS */
  WEIR__CMD_TRACE_KEY /* trace_key NAME KEY N SECS TAGS */
} weir__console_cmd;
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
/* Idle timeout of a console client, ms (tests shorten it). */
extern _Atomic uint32_t weir__console_idle_ms;
/* ---- end of the console block ------------------------------------------ */

#endif
