/*
 * savina_common.c: what the Savina workloads (bench/savina_*.c) share.
 *
 * The Savina suite (Imam & Sarkar, AGERE 2014; github.com/shamsimam/savina)
 * is a set of actor micro-benchmarks with fixed defaults. weir runs seven of
 * them as `weir-bench savina_NAME [ARGS]`, each the twin of
 * bench/beam/savina/NAME.exs: same actors, same messages, same defaults,
 * same output keys. This file holds the three pieces of Savina they reuse so
 * that every workload computes exactly what its BEAM twin computes:
 *
 *   - performComputation(theta): sin(theta)^2, checked > 0. Savina's
 *     fork-join workloads do it once per message. libm is not linked into
 *     weir-bench, so sin is a range-reduced Taylor polynomial here; its cost
 *     (a few ns) is of the order of libm's and of BEAM's :math.sin.
 *   - PseudoRandom: Savina's 16-bit LCG, so `big` picks the same neighbour
 *     sequence in C and in Elixir.
 *   - the report line and the correctness check: a workload that finished
 *     with a wrong result (a lost message, a miscount) exits 1 and says what
 *     was expected, so a fast wrong run never reaches the table.
 */
#include "bench.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define SAVINA_PI 3.14159265358979323846

double savina_compute(double theta) {
  /* Reduce to [-pi, pi], then to [-pi/2, pi/2] with sin(pi - x) = sin(x);
     the Taylor series to x^13 is then exact to ~1e-12 there. */
  double x =
      theta - 2.0 * SAVINA_PI * (double)(long long)(theta / (2.0 * SAVINA_PI));
  if (x > SAVINA_PI) x -= 2.0 * SAVINA_PI;
  if (x < -SAVINA_PI) x += 2.0 * SAVINA_PI;
  if (x > SAVINA_PI / 2) x = SAVINA_PI - x;
  if (x < -SAVINA_PI / 2) x = -SAVINA_PI - x;
  double x2 = x * x, term = x, s = x;
  for (int k = 1; k <= 6; k++) {
    term *= -x2 / (double)((2 * k) * (2 * k + 1));
    s += term;
  }
  double res = s * s;
  if (!(res > 0.0)) {
    fprintf(stderr, "weir-bench: savina compute: unrealistic res %g\n", res);
    fflush(stderr);
    _exit(1);
  }
  return res;
}

uint32_t savina_rand_int(uint32_t *value, uint32_t exclusive_max) {
  *value = (*value * 1309u + 13849u) & 65535u;
  return *value % exclusive_max;
}

uint64_t savina_arg(int argc, char **argv, int i, const char *name,
                    uint64_t def) {
  return i < argc ? bench_arg(argv[i], name, 1) : def;
}

void savina_expect(int ok, const char *name, const char *fmt, ...) {
  if (ok) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "weir-bench: %s: wrong result: ", name);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fflush(stderr);
  _exit(1);
}

void savina_report(const char *name, const char *keys, double ops,
                   double secs) {
  printf("weir %s %s ops=%.0f secs=%.6f ops_per_s=%.0f\n", name, keys, ops,
         secs, ops / secs);
  fflush(stdout);
}
