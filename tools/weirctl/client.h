/*
 * client.h: what main.c (the CLI) and web.c (`weirctl web`) share of a
 * console client: finding the run dir's nodes and connecting to a socket.
 */
#ifndef WEIRCTL_CLIENT_H
#define WEIRCTL_CLIENT_H

#include <stddef.h>

typedef struct node_ent {
  char name[64];
  char path[256];
} node_ent;

/* $WEIR_RUN_DIR, or /tmp/weir-UID. */
void weirctl_run_dir(char *buf, size_t n);
/* Connects to a Unix socket; -1 with errno set on failure. */
int weirctl_sock_open(const char *path);
/* The live nodes of dir (sockets that accept a connection), up to max;
   -1 if dir cannot be read. */
int weirctl_list_nodes(const char *dir, node_ent *out, int max);

/* Sends the request line req on fd and reads one reply (one line, or text
   up to "# EOF" when multiline), within timeout_ms. A malloc'd string, or
   NULL with the reason in err (timeout, closed, a NUL byte in a one-line
   reply, over 64 MiB). */
char *weirctl_ask(int fd, const char *req, int multiline, int timeout_ms,
                  char *err, size_t errn);

/* `weirctl web`: serves the dashboard until SIGINT/SIGTERM; 0 or 1. */
struct weirctl_args;
int weirctl_web(const struct weirctl_args *a);

#endif
