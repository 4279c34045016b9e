/*
 * console_parse.c: libFuzzer target for the console's request parser
 * (weir__console_parse in src/console_parse.c), the one parser that reads
 * bytes from outside the process on every node with a console.
 *
 * Besides "no crash, no sanitizer report", it checks the parser's promises:
 * the error text is always a NUL-terminated, non-empty string on failure;
 * on success the command is known and N and MS are within their limits, a
 * trace's N, SECS and tag count within the hard caps, and a name or a key
 * fits its buffer. The input is not NUL-terminated on purpose, so
 * that a read past len is caught by ASan.
 */
#include "console.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *line = malloc(size ? size : 1);
  if (!line) return 0;
  if (size) memcpy(line, data, size);
  weir__console_req rq;
  char err[160];
  memset(err, 'x', sizeof err);
  int rc = weir__console_parse(line, size, &rq, err, sizeof err);
  if (rc == WEIR_OK) {
    if ((unsigned)rq.cmd >= WEIR__CMD__COUNT) abort();
    if ((rq.cmd == WEIR__CMD_TRACE || rq.cmd == WEIR__CMD_TRACE_KEY) &&
        (rq.n < 1 || rq.n > WEIR__TRACE_MAX_N || rq.secs < 1 ||
         rq.secs > WEIR__TRACE_MAX_S || rq.ntags > WEIR__TRACE_TAGS))
      abort();
    if (rq.cmd == WEIR__CMD_TRACE_KEY &&
        (strnlen(rq.key_text, sizeof rq.key_text) >= sizeof rq.key_text ||
         !rq.key_text[0]))
      abort();
    if ((rq.cmd == WEIR__CMD_PROC_COUNT || rq.cmd == WEIR__CMD_PROC_WINDOW) &&
        (rq.n < 1 || rq.n > WEIR__CONSOLE_MAX_N ||
         (unsigned)rq.attr >= WEIR_ATTR__COUNT))
      abort();
    if ((rq.cmd == WEIR__CMD_PROC_WINDOW ||
         rq.cmd == WEIR__CMD_SCHEDULER_USAGE) &&
        (rq.ms < 1 || rq.ms > WEIR__CONSOLE_MAX_MS))
      abort();
    if (strnlen(rq.name, sizeof rq.name) >= sizeof rq.name) abort();
  } else {
    if (rc != WEIR_EINVAL) abort();
    size_t k = strnlen(err, sizeof err);
    if (k == 0 || k >= sizeof err) abort();
  }
  free(line);
  return 0;
}
