/*
 * sup.h: sup.c (supervisors) and partsup.c (the partition supervisor, a
 * supervisor whose children are partitions, built on sup.c through
 * weir__sup_ops).
 */
#ifndef WEIR_SUP_H
#define WEIR_SUP_H

#include "report.h"

typedef struct weir__partsup weir__partsup;
typedef struct weir__sup_def { /* a supervisor's definition (init's arg) */
  weir_sup_opts o;
  char name[64];
  weir_child_spec *c;
  char *ids; /* n x 64 bytes: the copied child ids */
  size_t n;
  /* a partition supervisor's (partsup.c) part in its supervisor, or NULL:
     sup.c calls it only through these, never by name */
  const struct weir__sup_ops *ops;
  void *ops_ctx;
  void *route; /* what the children's slots are routed by (ops_ctx) */
} weir__sup_def;
typedef struct weir__sup_ops {
  /* the arg of partition i's child */
  void *(*child_arg)(void *ctx, void *arg, unsigned partition);
  /* partition i now runs in slot (routing follows it) */
  void (*set_slot)(void *ctx, unsigned partition, weir__proc *slot);
  /* the supervisor process started (self) or ends */
  void (*bind)(void *ctx, weir__proc *self, void *sup);
  void (*unbind)(void *ctx);
} weir__sup_ops;
weir__sup_def *weir__sup_def_new(const weir_sup_opts *o,
                                 const weir_child_spec *c, size_t n);
void weir__sup_def_free(weir__sup_def *d);
/* Starts the supervisor d describes (d's ops, if any, route its children:
   route is the value their slots' route field gets). */
int weir__sup_start_def(weir_rt *rt, weir__sup_def *d, void *route,
                        weir_pid *pid);
int weir__sup_resize_children(weir_rt *rt, weir_pid sup, unsigned n);
/* partsup.c: installs the routing hooks */
int weir__partsup_start(weir_rt *rt);
/* The last runtime to stop frees the router records. */
void weir__partsup_stop(weir_rt *rt);

#endif
