/*
 * fuzz/web_route.c: libFuzzer target for `weirctl web`'s request parser
 * (tools/weirctl/web_route.c), the one parser of outside input the
 * dashboard adds. The input is split at its first NUL into a method and a
 * request target. Checks web_route_parse's promises: a known status; on an
 * error, a message; on success, a node name that is a plain file name and
 * a console request line of printable bytes with no newline, which the
 * node's own parser accepts.
 */
#include "console.h"
#include "web_route.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *buf = malloc(size + 2);
  if (!buf) return 0;
  memcpy(buf, data, size);
  buf[size] = 0;
  buf[size + 1] = 0;
  const char *method = buf;
  size_t mlen = strlen(buf);
  const char *target = mlen < size ? buf + mlen + 1 : "/";
  web_route r;
  char err[160];
  int st = web_route_parse(method, target, &r, err, sizeof err);
  if (st != r.status) abort();
  if (st != 200) {
    if (st != 400 && st != 404 && st != 405 && st != 414) abort();
    if (!err[0] || strlen(err) >= sizeof err) abort();
    free(buf);
    return 0;
  }
  if (r.kind == WEB_NODE || r.kind == WEB_TOP) {
    size_t nn = strlen(r.node);
    if (nn == 0 || nn > 63 || r.node[0] == '.' || strchr(r.node, '/')) abort();
    size_t rn = strlen(r.request);
    if (rn == 0) abort();
    for (size_t i = 0; i < rn; i++)
      if ((unsigned char)r.request[i] < ' ' ||
          (unsigned char)r.request[i] == 0x7F)
        abort();
    weir__console_req req;
    char perr[128];
    if (weir__console_parse(r.request, rn, &req, perr, sizeof perr) != WEIR_OK)
      abort(); /* the node would refuse what the page asked */
  }
  free(buf);
  return 0;
}
