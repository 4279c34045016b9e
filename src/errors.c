/*
 * errors.c: the names and texts of weir's error codes, both from the one
 * list in weir.h (WEIR_ERRNO_MAP), as libuv's UV_ERRNO_MAP gives both.
 */
#include "internal.h"

const char *weir_strerror(int err) {
  switch (err) {
  case WEIR_OK:
    return "success";
#define X(name, code, text)                                                    \
  case WEIR_##name:                                                            \
    return text;
    WEIR_ERRNO_MAP(X)
#undef X
  default:
    return "unknown error";
  }
}

const char *weir_err_name(int err) {
  switch (err) {
  case WEIR_OK:
    return "WEIR_OK";
#define X(name, code, text)                                                    \
  case WEIR_##name:                                                            \
    return "WEIR_" #name;
    WEIR_ERRNO_MAP(X)
#undef X
  default:
    return "WEIR_UNKNOWN";
  }
}
