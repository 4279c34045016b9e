/*
 * client.h: a small HTTP/1.1 client over a plain socket, for the load
 * generator and the tests (no libcurl needed).
 *
 * One agg_client is one keep-alive connection used by one thread: a request
 * is written whole (writev of head and body), the response is read up to its
 * Content-Length. If the server closed an idle kept-alive connection, the
 * request is sent again once on a fresh connection (the aggregator's inserts
 * are idempotent, so a resend cannot duplicate a row). No pipelining, no
 * chunked responses (the aggregator never sends them).
 */
#ifndef AGG_CLIENT_H
#define AGG_CLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct agg_client {
  int fd; /* -1 = not connected */
  char host[128];
  uint16_t port;
  char *buf; /* response bytes */
  size_t len, cap;
  /* the last response */
  int status;
  int retry_after;  /* seconds, -1 = no header */
  const char *body; /* NUL-terminated, inside buf */
  size_t body_len;
} agg_client;

/* Parses "http://HOST:PORT[/...]"; 0 or -1. */
int agg_url_parse(const char *url, char *host, size_t hostn, uint16_t *port);
void agg_client_init(agg_client *c, const char *host, uint16_t port);
void agg_client_close(agg_client *c);
/* Sends method path with body (may be NULL for GET); 0 with the response in
   c, or -1 (errno set) on a connection error. extra: more header lines
   ("Name: value\r\n"...), or NULL. */
int agg_client_request(agg_client *c, const char *method, const char *path,
                       const char *ctype, const char *body, size_t len,
                       const char *extra);

#endif
