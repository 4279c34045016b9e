/*
 * agg_batch.c: libFuzzer target for the NDJSON batch body (POST
 * /track/batch): agg_ndjson_split, then agg_event_parse on every line, as
 * http.c does. Promises checked: no crash or leak; each line handed out lies
 * inside the input, is non-empty, holds no '\n' and is followed by the end,
 * "\n" or "\r\n" (one '\r' is the separator's; "a\r\r\n" is "a\r");
 * line numbers strictly increase and never exceed the number of '\n' + 1;
 * the lines plus the skipped separators account for every input byte; every
 * parse failure says why; every success is within the field bounds.
 */
#include "event.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct ctx {
  const char *buf;
  size_t len;
  uint64_t last, newlines, bytes;
} ctx;

static int line(void *arg, uint64_t lineno, const char *p, size_t n) {
  ctx *c = arg;
  if (n == 0 || p < c->buf || p + n > c->buf + c->len) abort();
  const char *after = p + n, *end = c->buf + c->len;
  if (memchr(p, '\n', n)) abort();
  if (after < end && *after != '\n' &&
      !(*after == '\r' && (after + 1 == end || after[1] == '\n')))
    abort();
  if (lineno <= c->last || lineno > c->newlines + 1) abort();
  c->last = lineno;
  c->bytes += n;
  agg_event ev;
  char err[256] = "";
  if (agg_event_parse(p, n, &ev, err, sizeof err) != 0) {
    if (!err[0]) abort();
    return 0;
  }
  if (ev.user_len < 1 || ev.user_len > AGG_USER_MAX || ev.seq < 0 ||
      ev.event_len < 1 || ev.event_len > AGG_EVENT_MAX ||
      ev.data_len > AGG_DATA_MAX)
    abort();
  agg_event_clear(&ev);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ctx c = {.buf = (const char *)data, .len = size};
  for (size_t i = 0; i < size; i++)
    c.newlines += data[i] == '\n';
  if (agg_ndjson_split(c.buf, size, line, &c) != 0) abort();
  /* What was not handed out: the '\n's, and at most one '\r' before each
     (or at the very end). */
  uint64_t cr = 0;
  for (size_t i = 0; i < size; i++)
    cr += data[i] == '\r' && (i + 1 == size || data[i + 1] == '\n');
  if (c.bytes + c.newlines + cr < size) abort();
  if (c.bytes + c.newlines > size) abort();
  return 0;
}
