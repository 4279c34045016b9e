/*
 * agg_event.c: libFuzzer target for agg_event_parse (the body of POST /track
 * and each line of /track/batch: outside input). Promises checked: no crash
 * or leak; a success yields fields within their bounds and a packed form
 * that unpacks to the same values; a failure always says why.
 */
#include "event.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  agg_event ev;
  char err[256] = "";
  if (agg_event_parse(data, size, &ev, err, sizeof err) != 0) {
    if (!err[0]) abort();
    return 0;
  }
  if (ev.user_len < 1 || ev.user_len > AGG_USER_MAX || ev.seq < 0 ||
      ev.event_len < 1 || ev.event_len > AGG_EVENT_MAX)
    abort();
  size_t need = agg_event_packed_size(&ev);
  char *buf = malloc(need);
  agg_row r;
  if (!buf || agg_event_pack(&ev, 1, 0, buf, need) != need ||
      agg_event_unpack(buf, need, &r) != 0 || r.seq != ev.seq ||
      r.user_len != ev.user_len || memcmp(r.user, ev.user, r.user_len) ||
      r.data_len != ev.data_len)
    abort();
  free(buf);
  agg_event_clear(&ev);
  return 0;
}
