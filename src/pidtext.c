/*
 * pidtext.c: pids as text, "<0.SLOT.GEN>" as Erlang prints a local pid, and
 * back. The parser takes outside input (the console, weirctl): it accepts
 * exactly that form (angle brackets optional), every number within 32 bits,
 * and nothing after it.
 */
#include "internal.h"

#include <stdio.h>

int weir_pid_format(weir_pid pid, char *buf, size_t n) {
  if (!buf || n == 0) return WEIR_EINVAL;
  int k =
      snprintf(buf, n, "<0.%u.%u>", weir__pid_slot(pid), weir__pid_gen(pid));
  if (k < 0 || (size_t)k >= n) {
    buf[0] = 0;
    return WEIR_EINVAL;
  }
  return k;
}

static int parse_u32(const char **s, uint32_t *out) {
  const char *p = *s;
  if (*p < '0' || *p > '9') return -1;
  uint64_t v = 0;
  while (*p >= '0' && *p <= '9') {
    v = v * 10 + (uint64_t)(*p - '0');
    if (v > UINT32_MAX) return -1;
    p++;
  }
  *out = (uint32_t)v;
  *s = p;
  return 0;
}

int weir_pid_parse(const char *str, weir_pid *pid) {
  if (!str || !pid) return WEIR_EINVAL;
  const char *s = str;
  int angle = 0;
  if (*s == '<') {
    angle = 1;
    s++;
  }
  uint32_t node, slot, gen;
  if (parse_u32(&s, &node) || node != 0 || *s++ != '.') return WEIR_EINVAL;
  if (parse_u32(&s, &slot) || *s++ != '.') return WEIR_EINVAL;
  if (parse_u32(&s, &gen)) return WEIR_EINVAL;
  if (angle && *s++ != '>') return WEIR_EINVAL;
  if (*s != 0) return WEIR_EINVAL;
  *pid = weir__pid_make(slot, gen);
  return WEIR_OK;
}
