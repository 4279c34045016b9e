/*
 * report.h: report.c, crash and supervisor reports: the node's logger
 * (installs hooks.crash). Below supervision, as OTP's logger is below its
 * supervisors: a supervisor reports what it did.
 */
#ifndef WEIR_REPORT_H
#define WEIR_REPORT_H

#include "overload.h"

int weir__report_start(weir_rt *rt);
void weir__report_stop(weir_rt *rt);
/* An abnormal exit of cx's process (its thread, before links hear of it):
   cx->crash_cb, crash_msg and exit_from say how it died. */
void weir__report_exit(weir_ctx *cx, int reason);
typedef struct weir__sup_note { /* what a supervisor did about a child */
  weir_sup_action action;
  weir_pid restarted_as;
  int restarts, max_restarts, max_seconds;
  const char *sup_name, *child_id;
} weir__sup_note;
/* Completes child's pending crash report (none pending: nothing). */
void weir__report_sup(weir_rt *rt, weir_pid child, const weir__sup_note *n);
/* A supervisor gave up: its own report. */
void weir__report_gave_up(weir_rt *rt, weir_pid sup, weir_pid child,
                          const weir__sup_note *n);
typedef struct weir__report_count {
  char behaviour[64];
  uint64_t n;
} weir__report_count;
/* Crashes by behaviour (up to n into out; returns how many); *other: of
   behaviours past the table; *suppressed: reports not logged. */
size_t weir__report_counts(weir_rt *rt, weir__report_count *out, size_t n,
                           uint64_t *other, uint64_t *suppressed);

#endif
