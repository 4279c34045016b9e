/*
 * weirctl_args.c: libFuzzer target for weirctl's argument parser
 * (tools/weirctl/args.c).
 *
 * The input is split at NUL bytes into argv[1..] (argv[0] = "weirctl").
 * Checks: no crash; an error always has a message; on success the request
 * line weirctl would send is one line with no control characters, and,
 * when it is ASCII, the console's own parser accepts it: weirctl never
 * sends the node a request the node would reject as malformed.
 */
#include "args.h"
#include "console.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  enum { MAXARGS = 24 };
  char *buf = malloc(size + 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  buf[size] = 0;
  char *argv[MAXARGS + 2];
  int argc = 0;
  argv[argc++] = (char *)"weirctl";
  for (size_t i = 0; i <= size && argc < MAXARGS + 1;) {
    argv[argc++] = buf + i;
    i += strlen(buf + i) + 1;
  }
  argv[argc] = NULL;
  weirctl_args a;
  char err[256];
  if (weirctl_parse_args(argc, argv, &a, err, sizeof err) != 0) {
    if (err[0] == 0) abort();
  } else if (a.request[0]) {
    size_t n = strnlen(a.request, sizeof a.request);
    if (n >= sizeof a.request) abort();
    int ascii = 1;
    for (size_t i = 0; i < n; i++) {
      unsigned char c = (unsigned char)a.request[i];
      if (c < 0x20 || c == 0x7F) abort();
      if (c >= 0x80) ascii = 0;
    }
    weir__console_req rq;
    char perr[160];
    if (ascii && weir__console_parse(a.request, n, &rq, perr, sizeof perr))
      abort();
  }
  free(buf);
  return 0;
}
