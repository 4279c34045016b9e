/*
 * client.c: the small HTTP/1.1 client (see client.h).
 */
#include "client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int agg_url_parse(const char *url, char *host, size_t hostn, uint16_t *port) {
  if (strncmp(url, "http://", 7) != 0) return -1;
  const char *h = url + 7;
  const char *end = h + strcspn(h, "/");
  const char *colon = memchr(h, ':', (size_t)(end - h));
  if (!colon || colon == h || (size_t)(colon - h) >= hostn) return -1;
  char *e;
  unsigned long p = strtoul(colon + 1, &e, 10);
  if (e != end || p == 0 || p > 65535) return -1;
  memcpy(host, h, (size_t)(colon - h));
  host[colon - h] = '\0';
  *port = (uint16_t)p;
  return 0;
}

void agg_client_init(agg_client *c, const char *host, uint16_t port) {
  memset(c, 0, sizeof *c);
  c->fd = -1;
  snprintf(c->host, sizeof c->host, "%s", host);
  c->port = port;
}

void agg_client_close(agg_client *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  free(c->buf);
  c->buf = NULL;
  c->len = c->cap = 0;
}

static int connect_to(agg_client *c) {
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
  struct addrinfo *ai;
  char port[8];
  snprintf(port, sizeof port, "%u", c->port);
  if (getaddrinfo(c->host, port, &hints, &ai) != 0) {
    errno = EHOSTUNREACH;
    return -1;
  }
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    freeaddrinfo(ai);
    errno = e;
    return -1;
  }
  freeaddrinfo(ai);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->fd = fd;
  return 0;
}

static int reserve(agg_client *c, size_t need) {
  if (need <= c->cap) return 0;
  size_t cap = c->cap ? c->cap : 4096;
  while (cap < need)
    cap *= 2;
  char *b = realloc(c->buf, cap);
  if (!b) return -1;
  c->buf = b;
  c->cap = cap;
  return 0;
}

/* Reads one response. Returns 0, -1 on error, -2 if the peer closed before
   sending a byte (a stale keep-alive connection). */
static int read_response(agg_client *c, int *close_after) {
  c->len = 0;
  size_t head_end = 0;
  for (;;) {
    if (reserve(c, c->len + 4097)) return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = ECONNRESET;
      return c->len == 0 ? -2 : -1;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    char *e = strstr(c->buf, "\r\n\r\n");
    if (e) {
      head_end = (size_t)(e - c->buf) + 4;
      break;
    }
  }
  if (strncmp(c->buf, "HTTP/1.", 7) != 0 || c->len < 12) {
    errno = EPROTO;
    return -1;
  }
  c->status = atoi(c->buf + 9);
  c->retry_after = -1;
  size_t clen = 0;
  *close_after = strncmp(c->buf, "HTTP/1.0", 8) == 0;
  for (char *l = strstr(c->buf, "\r\n") + 2; l < c->buf + head_end - 2;) {
    char *nl = strstr(l, "\r\n");
    if (!strncasecmp(l, "Content-Length:", 15))
      clen = strtoull(l + 15, NULL, 10);
    else if (!strncasecmp(l, "Retry-After:", 12))
      c->retry_after = atoi(l + 12);
    else if (!strncasecmp(l, "Connection:", 11) && strcasestr(l, "close") &&
             strcasestr(l, "close") < nl)
      *close_after = 1;
    l = nl + 2;
  }
  if (reserve(c, head_end + clen + 1)) return -1;
  while (c->len < head_end + clen) {
    ssize_t n = recv(c->fd, c->buf + c->len, head_end + clen - c->len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = ECONNRESET;
      return -1;
    }
    c->len += (size_t)n;
  }
  c->buf[head_end + clen] = '\0';
  c->body = c->buf + head_end;
  c->body_len = clen;
  return 0;
}

static int send_all(int fd, struct iovec *iov, int n) {
  while (n > 0) {
    ssize_t w = writev(fd, iov, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    size_t k = (size_t)w;
    while (n > 0 && k >= iov->iov_len) {
      k -= iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + k;
      iov->iov_len -= k;
    }
  }
  return 0;
}

int agg_client_request(agg_client *c, const char *method, const char *path,
                       const char *ctype, const char *body, size_t len,
                       const char *extra) {
  char head[1024];
  int hl = snprintf(head, sizeof head,
                    "%s %s HTTP/1.1\r\nHost: %s:%u\r\n%s%s%s"
                    "Content-Length: %zu\r\n%s\r\n",
                    method, path, c->host, c->port,
                    ctype ? "Content-Type: " : "", ctype ? ctype : "",
                    ctype ? "\r\n" : "", body ? len : 0, extra ? extra : "");
  if (hl < 0 || (size_t)hl >= sizeof head) {
    errno = EINVAL;
    return -1;
  }
  for (int attempt = 0; attempt < 2; attempt++) {
    int fresh = c->fd < 0;
    if (fresh && connect_to(c)) return -1;
    struct iovec iov[2] = {{head, (size_t)hl}, {(void *)body, body ? len : 0}};
    int close_after = 0, stale = 0;
    int rc = send_all(c->fd, iov, body && len ? 2 : 1);
    if (rc)
      stale = 1;
    else if ((rc = read_response(c, &close_after)) == -2)
      stale = 1;
    if (rc == 0) {
      if (close_after) {
        close(c->fd);
        c->fd = -1;
      }
      return 0;
    }
    int e = errno;
    close(c->fd);
    c->fd = -1;
    errno = e;
    if (fresh || !stale) return -1; /* only a stale connection is retried */
  }
  return -1;
}
