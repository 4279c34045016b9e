/*
 * console.c: the diagnostics socket server (one per node).
 *
 * Not built yet: the diagnostics issue brings the Unix-socket console. Until
 * then a node asked for a console refuses to start with WEIR_ENOTSUP rather
 * than silently running without one.
 */
#include "internal.h"

int weir__console_start(weir_rt *rt, const char *path) {
  (void)rt;
  (void)path;
  return WEIR_ENOTSUP;
}

void weir__console_stop(weir_rt *rt) { (void)rt; }
