/*
 * event.h: one analytics event: parsed from JSON, packed into a message.
 *
 * agg_event_parse is a pure function (bytes -> event, or an error text for
 * the 400 reply): no I/O, no global state, so fuzz/agg_event.c can run it on
 * anything. The packed form is what travels through a worker's mailbox: a
 * fixed header and the strings back to back, copied once by weir_cast.
 *
 * user_id may be a non-negative integer or a string. A string of canonical
 * decimal digits ("42") is the same user as the integer 42: both are stored
 * as the text "42" and both route by the integer key, so a client that mixes
 * the two forms still gets per-user order.
 */
#ifndef AGG_EVENT_H
#define AGG_EVENT_H

#include <stddef.h>
#include <stdint.h>

#define AGG_USER_MAX   64    /* bytes of a user_id string */
#define AGG_EVENT_MAX  64    /* bytes of an event name */
#define AGG_DATA_MAX   32768 /* bytes of "data" as compact JSON */
#define AGG_DATA_DEPTH 32    /* nesting of "data": {} is 1, {"a":[]} 2 */

typedef struct agg_event {
  char user[AGG_USER_MAX + 1]; /* NUL-terminated text form */
  size_t user_len;
  int user_is_int; /* routed by user_int (key % partitions) */
  uint64_t user_int;
  int64_t seq; /* >= 0 */
  char event[AGG_EVENT_MAX + 1];
  size_t event_len;
  char *data; /* compact JSON object text (malloc'd), or NULL */
  size_t data_len;
} agg_event;

/* Parses one JSON event from buf[0..len). On success returns 0 and *ev owns
   data (free with agg_event_clear). On failure returns -1, *ev holds nothing
   to free, and err holds the reason (one line). */
int agg_event_parse(const void *buf, size_t len, agg_event *ev, char *err,
                    size_t errn);
void agg_event_clear(agg_event *ev);

/* NDJSON (the body of POST /track/batch): calls fn for each non-empty line
   of buf[0..len) with its 1-based line number, the line without its "\n"
   or "\r\n"; a last line needs no newline. Empty lines are skipped (their
   numbers still count). Stops when fn returns non-zero and returns that
   value; else 0. A pure function (fuzz/agg_batch.c). */
typedef int (*agg_line_fn)(void *ctx, uint64_t lineno, const char *line,
                           size_t len);
int agg_ndjson_split(const char *buf, size_t len, agg_line_fn fn, void *ctx);

/* A row as a worker sees it: views into a packed message. */
typedef struct agg_row {
  const char *user;
  size_t user_len;
  int64_t seq;
  const char *event;
  size_t event_len;
  const char *data; /* NULL = no data */
  size_t data_len;
  int64_t received_us; /* microseconds since the epoch */
  uint64_t ack;        /* the waiting request (ack.h), 0 = none */
} agg_row;

/* Bytes agg_event_pack needs for ev. */
size_t agg_event_packed_size(const agg_event *ev);
/* Packs ev into buf (cap bytes); returns the length, or 0 if cap is short.
   ack: the request waiting for this event to be stored (an agg_ack as an
   integer, meaningful only inside this process), 0 for none. */
size_t agg_event_pack(const agg_event *ev, int64_t received_us, uint64_t ack,
                      void *buf, size_t cap);
/* Views a packed message; returns 0, or -1 if it is not a valid one. */
int agg_event_unpack(const void *buf, size_t len, agg_row *row);
/* 1 if an unpacked row keeps agg_event_parse's rules (user_id and event
   1..64 bytes without control bytes, seq >= 0, data within AGG_DATA_MAX):
   for rows read from the stream, which anyone may have published. */
int agg_row_valid(const agg_row *row);

#endif
