/*
 * web_route.h: `weirctl web`'s request parser, a pure function.
 *
 * web_route_parse turns an HTTP method and request target (the raw
 * "/path?query" the client sent) into what the server does: serve one of
 * the embedded files, list the nodes, or send one console request line to
 * one node. It does no I/O, allocates nothing and keeps no state, so
 * fuzz/web_route.c runs it on arbitrary bytes and checks its promises:
 * every outcome is a status with a message, a node name is a plain file
 * name (no '/', no leading '.'), and a request line is printable text with
 * no newline, the kind the node's own parser (console_parse.c) accepts.
 */
#ifndef WEIRCTL_WEB_ROUTE_H
#define WEIRCTL_WEB_ROUTE_H

#include <stddef.h>

#define WEB_TARGET_MAX 2048 /* bytes of a request target; longer: 414 */
#define WEB_TOP_MAX    200  /* n of proc_count and top */

typedef enum {
  WEB_PAGE = 0, /* GET /: index.html */
  WEB_APP_JS,   /* GET /app.js */
  WEB_STYLE,    /* GET /style.css */
  WEB_CHART_JS, /* GET /chart.js: Debian's libjs-chart.js */
  WEB_NODES,    /* GET /api/nodes */
  WEB_NODE,     /* GET /api/node/NAME/CMD[?...]: one console request */
  WEB_TOP       /* GET /api/node/NAME/top?attr=A&n=N: proc_count + info */
} web_kind;

typedef struct web_route {
  int status; /* 200, or the HTTP error to answer (400, 404, 405, 414) */
  web_kind kind;
  char node[64];     /* WEB_NODE, WEB_TOP: the node's name */
  char request[192]; /* WEB_NODE: the console line; WEB_TOP: proc_count's */
  int multiline;     /* the reply ends with "# EOF" (metrics) */
  unsigned ms;       /* scheduler_usage's wait, for the reply's timeout */
  int has_token;     /* ?token= was given ... */
  char token[128];   /* ... with this value (percent-decoded) */
} web_route;

/* Parses one request. method and target are NUL-terminated (either may be
   NULL: 400). Returns r->status; on an error, a one-line message in err
   (errn > 0: always NUL-terminated). */
int web_route_parse(const char *method, const char *target, web_route *r,
                    char *err, size_t errn);

/* 1 if the n bytes at a and b are equal, 0 if not, in a time that depends
   on n only (for the token). */
int web_token_eq(const char *a, const char *b, size_t n);

#endif
