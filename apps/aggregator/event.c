/*
 * event.c: the event parser and the packed message format (see event.h).
 *
 * jansson does the JSON (duplicate keys rejected, NUL in strings refused);
 * this file checks the shape and says precisely what is wrong, because the
 * reason goes back to the client in the 400 body. Unknown fields are
 * ignored so that clients may send more than we store. "data" is capped
 * in depth and size (AGG_DATA_DEPTH, AGG_DATA_MAX) so that one event cannot
 * cost a worker, the mailbox or the database more than a bounded amount,
 * whatever the HTTP body limit is set to.
 *
 * Packed layout: a 32-byte header (seq, received_us, user_int, data_len,
 * user_len, event_len, flags) then user, event and data bytes, unaligned-safe
 * (memcpy in and out), so a message is one allocation in the mailbox.
 */
#include "event.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errn, const char *fmt, ...) {
  if (err && errn) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errn, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* Printable text without control characters (UTF-8 bytes >= 0x80 pass:
   jansson already checked the encoding). */
static int printable(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f) return 0;
  }
  return 1;
}

/* "0" or [1-9][0-9]* fitting in int64: the canonical decimal form. */
static int canonical_uint(const char *s, size_t n, uint64_t *out) {
  if (n == 0 || n > 19 || (n > 1 && s[0] == '0')) return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (v > (uint64_t)INT64_MAX) return 0;
  *out = v;
  return 1;
}

static int parse_user(json_t *u, agg_event *ev, char *err, size_t errn) {
  if (!u) return fail(err, errn, "missing field \"user_id\"");
  if (json_is_integer(u)) {
    json_int_t v = json_integer_value(u);
    if (v < 0) return fail(err, errn, "\"user_id\" must not be negative");
    ev->user_is_int = 1;
    ev->user_int = (uint64_t)v;
    ev->user_len = (size_t)snprintf(ev->user, sizeof ev->user, "%llu",
                                    (unsigned long long)v);
    return 0;
  }
  if (!json_is_string(u))
    return fail(err, errn, "\"user_id\" must be an integer or a string");
  const char *s = json_string_value(u);
  size_t n = json_string_length(u);
  if (n == 0) return fail(err, errn, "\"user_id\" must not be empty");
  if (n > AGG_USER_MAX)
    return fail(err, errn, "\"user_id\" longer than %d bytes", AGG_USER_MAX);
  if (!printable(s, n))
    return fail(err, errn, "\"user_id\" contains control characters");
  memcpy(ev->user, s, n);
  ev->user[n] = '\0';
  ev->user_len = n;
  ev->user_is_int = canonical_uint(s, n, &ev->user_int);
  return 0;
}

/* 1 if j nests deeper than max (a scalar is depth 0). Recursion stops at
   max + 1 levels, and jansson's parser caps nesting anyway. */
static int too_deep(json_t *j, int max) {
  if (!json_is_object(j) && !json_is_array(j)) return 0;
  if (max <= 0) return 1;
  if (json_is_array(j)) {
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) {
      if (too_deep(v, max - 1)) return 1;
    }
    return 0;
  }
  const char *k;
  json_t *v;
  json_object_foreach(j, k, v) {
    if (too_deep(v, max - 1)) return 1;
  }
  return 0;
}

int agg_event_parse(const void *buf, size_t len, agg_event *ev, char *err,
                    size_t errn) {
  memset(ev, 0, sizeof *ev);
  if (!buf || len == 0) return fail(err, errn, "empty body");
  json_error_t je;
  json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
  if (!root)
    return fail(err, errn, "invalid JSON at line %d column %d: %s", je.line,
                je.column, je.text);
  int rc = -1;
  if (!json_is_object(root)) {
    fail(err, errn, "the event must be a JSON object");
    goto out;
  }
  if (parse_user(json_object_get(root, "user_id"), ev, err, errn)) goto out;
  json_t *seq = json_object_get(root, "seq");
  if (!seq) {
    fail(err, errn, "missing field \"seq\"");
    goto out;
  }
  if (!json_is_integer(seq) || json_integer_value(seq) < 0) {
    fail(err, errn, "\"seq\" must be a non-negative integer");
    goto out;
  }
  ev->seq = (int64_t)json_integer_value(seq);
  json_t *name = json_object_get(root, "event");
  if (!name) {
    fail(err, errn, "missing field \"event\"");
    goto out;
  }
  if (!json_is_string(name)) {
    fail(err, errn, "\"event\" must be a string");
    goto out;
  }
  size_t nl = json_string_length(name);
  if (nl == 0 || nl > AGG_EVENT_MAX) {
    fail(err, errn, "\"event\" must be 1..%d bytes", AGG_EVENT_MAX);
    goto out;
  }
  if (!printable(json_string_value(name), nl)) {
    fail(err, errn, "\"event\" contains control characters");
    goto out;
  }
  memcpy(ev->event, json_string_value(name), nl);
  ev->event[nl] = '\0';
  ev->event_len = nl;
  json_t *data = json_object_get(root, "data");
  if (data && !json_is_null(data)) {
    if (!json_is_object(data)) {
      fail(err, errn, "\"data\" must be a JSON object");
      goto out;
    }
    if (too_deep(data, AGG_DATA_DEPTH)) {
      fail(err, errn, "\"data\" nested deeper than %d levels", AGG_DATA_DEPTH);
      goto out;
    }
    ev->data = json_dumps(data, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!ev->data) {
      fail(err, errn, "\"data\" could not be serialized");
      goto out;
    }
    ev->data_len = strlen(ev->data);
    if (ev->data_len > AGG_DATA_MAX) {
      fail(err, errn, "\"data\" larger than %d bytes", AGG_DATA_MAX);
      goto out;
    }
  }
  rc = 0;
out:
  json_decref(root);
  if (rc) agg_event_clear(ev);
  return rc;
}

void agg_event_clear(agg_event *ev) {
  free(ev->data);
  ev->data = NULL;
  ev->data_len = 0;
}

/* ---- NDJSON ------------------------------------------------------------ */

int agg_ndjson_split(const char *buf, size_t len, agg_line_fn fn, void *ctx) {
  const char *p = buf, *end = buf ? buf + len : buf;
  uint64_t lineno = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    size_t n = (size_t)(le - p);
    lineno++;
    if (n && p[n - 1] == '\r') n--;
    if (n) {
      int rc = fn(ctx, lineno, p, n);
      if (rc) return rc;
    }
    p = nl ? nl + 1 : end;
  }
  return 0;
}

/* ---- packed form ------------------------------------------------------ */

typedef struct hdr {
  int64_t seq;
  uint64_t ack; /* the request's agg_ack (in-process only), 0 = none */
  int64_t received_us;
  uint64_t user_int;
  uint32_t data_len;
  uint16_t user_len;
  uint8_t event_len;
  uint8_t flags; /* bit 0: has data */
} hdr;
_Static_assert(sizeof(hdr) == 40, "packed header is 40 bytes");

size_t agg_event_packed_size(const agg_event *ev) {
  return sizeof(hdr) + ev->user_len + ev->event_len + ev->data_len;
}

size_t agg_event_pack(const agg_event *ev, int64_t received_us, uint64_t ack,
                      void *buf, size_t cap) {
  size_t need = agg_event_packed_size(ev);
  if (need > cap || ev->data_len > UINT32_MAX) return 0;
  hdr h = {.seq = ev->seq,
           .ack = ack,
           .received_us = received_us,
           .user_int = ev->user_int,
           .data_len = (uint32_t)ev->data_len,
           .user_len = (uint16_t)ev->user_len,
           .event_len = (uint8_t)ev->event_len,
           .flags = ev->data ? 1 : 0};
  char *p = buf;
  memcpy(p, &h, sizeof h);
  p += sizeof h;
  memcpy(p, ev->user, ev->user_len);
  p += ev->user_len;
  memcpy(p, ev->event, ev->event_len);
  p += ev->event_len;
  if (ev->data_len) memcpy(p, ev->data, ev->data_len);
  return need;
}

int agg_event_unpack(const void *buf, size_t len, agg_row *row) {
  hdr h;
  if (len < sizeof h) return -1;
  memcpy(&h, buf, sizeof h);
  if (sizeof h + (size_t)h.user_len + h.event_len + h.data_len != len)
    return -1;
  const char *p = (const char *)buf + sizeof h;
  row->seq = h.seq;
  row->ack = h.ack;
  row->received_us = h.received_us;
  row->user = p;
  row->user_len = h.user_len;
  row->event = p + h.user_len;
  row->event_len = h.event_len;
  row->data = (h.flags & 1) ? p + h.user_len + h.event_len : NULL;
  row->data_len = h.data_len;
  return 0;
}

static int clean(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
  return 1;
}

int agg_row_valid(const agg_row *r) {
  return r->user_len >= 1 && r->user_len <= AGG_USER_MAX &&
         clean(r->user, r->user_len) && r->event_len >= 1 &&
         r->event_len <= AGG_EVENT_MAX && clean(r->event, r->event_len) &&
         r->seq >= 0 && r->data_len <= AGG_DATA_MAX &&
         (r->data || r->data_len == 0) &&
         (!r->data || memchr(r->data, 0, r->data_len) == NULL);
}
