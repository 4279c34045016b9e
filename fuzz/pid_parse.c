/*
 * pid_parse.c: libFuzzer target for weir_pid_parse, which reads pids typed
 * by people (weirctl info, the console's info command).
 *
 * Checks: no crash; a string that parses formats back to text that parses
 * to the same pid (parse . format . parse is the identity on pids).
 */
#include "weir.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s) return 0;
  memcpy(s, data, size);
  s[size] = 0;
  weir_pid p, q;
  if (weir_pid_parse(s, &p) == WEIR_OK) {
    char buf[32];
    int k = weir_pid_format(p, buf, sizeof buf);
    if (k <= 0 || (size_t)k >= sizeof buf) abort();
    if (weir_pid_parse(buf, &q) != WEIR_OK || !weir_pid_eq(p, q)) abort();
  }
  free(s);
  return 0;
}
