/*
 * trace.h: trace.c, message tracing (installs hooks.trace).
 */
#ifndef WEIR_TRACE_H
#define WEIR_TRACE_H

#include "sup.h"

#define WEIR__TRACE_SESSIONS 16    /* open traces per node */
#define WEIR__TRACE_RING     256   /* events a session buffers */
#define WEIR__TRACE_TAGS     8     /* tags in one filter */
#define WEIR__TRACE_MAX_N    10000 /* hard caps of a console trace */
#define WEIR__TRACE_MAX_S    300
typedef struct weir__trace_ev {
  uint64_t t_ns; /* CLOCK_REALTIME */
  uint64_t from; /* sender pid id, 0 = a thread */
  uint32_t tag;  /* as the callback sees it */
  uint32_t len;  /* user payload bytes */
  uint8_t kind;  /* WEIR__K_* */
  uint8_t head_len;
  uint8_t head[16];
} weir__trace_ev;
typedef struct weir__trace {
  _Atomic uint64_t pid;     /* traced incarnation; 0 = closed */
  _Atomic uint32_t writers; /* the process inside record() */
  int open;                 /* under the state's mutex */
  uint32_t slot;
  uint32_t count; /* record at most this many */
  unsigned ntags; /* 0 = every tag */
  uint32_t tags[WEIR__TRACE_TAGS];
  _Atomic uint64_t seen;               /* matched: recorded + lost */
  _Atomic uint64_t lost;               /* matched while the ring was full */
  _Atomic uint64_t head WEIR__ALIGNED; /* the writer's */
  _Atomic uint64_t tail WEIR__ALIGNED; /* the reader's */
  weir__trace_ev ring[WEIR__TRACE_RING];
} weir__trace;
int weir__trace_start(weir_rt *rt);
void weir__trace_stop(weir_rt *rt);
/* The traced process took m (self: its pid id). */
void weir__trace_msg(weir_rt *rt, uint64_t self, const weir__msg *m);
/* Opens a session on pid for count messages with one of tags (ntags 0:
   any). Errors: EINVAL, ENOPROC, ELIMIT (WEIR__TRACE_SESSIONS open),
   ENOMEM. */
int weir__trace_open(weir_rt *rt, weir_pid pid, uint32_t count,
                     const uint32_t *tags, unsigned ntags, weir__trace **t);
/* The reader's side: up to n events, oldest first. */
size_t weir__trace_read(weir__trace *t, weir__trace_ev *out, size_t n);
void weir__trace_counts(weir__trace *t, uint64_t *seen, uint64_t *lost,
                        bool *drained);
void weir__trace_close(weir_rt *rt, weir__trace *t);

#endif
