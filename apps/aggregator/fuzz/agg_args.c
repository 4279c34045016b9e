/*
 * agg_args.c: libFuzzer target for agg_args_parse. The input is split at NUL
 * bytes into argv. Promises checked: no crash, no read past argc, and every
 * failure comes with a message.
 */
#include "args.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *copy = malloc(size + 1);
  char *argv[34];
  int argc = 0;
  if (!copy) return 0;
  memcpy(copy, data, size);
  copy[size] = '\0';
  argv[argc++] = "weir-aggregator";
  for (char *p = copy; p <= copy + size && argc < 33; p += strlen(p) + 1)
    argv[argc++] = p;
  argv[argc] = NULL;
  agg_args a;
  char err[256] = "";
  if (agg_args_parse(argc, argv, &a, err, sizeof err) != 0 && !err[0]) abort();
  free(copy);
  return 0;
}
