/*
 * demo.h: `weir-aggregator demo`, the seed's story in under a minute.
 */
#ifndef AGG_DEMO_H
#define AGG_DEMO_H

#include "args.h"

#include <stddef.h>

/* Runs the demo; returns the exit code (0 only if every check passed). */
int agg_demo_main(const agg_demo_opts *o);

typedef struct agg_series {
  const char *name;
  const char *color;
  const double *x, *y;
  size_t n;
} agg_series;

/* Writes a line chart of the series as a standalone SVG file; 0 or -1. */
int agg_svg_chart(const char *path, const char *title, const char *xlabel,
                  const char *ylabel, const agg_series *s, size_t ns);

#endif
