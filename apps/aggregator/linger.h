/*
 * linger.h: nginx's lingering close, for the connections libmicrohttpd
 * closes with input still unread.
 *
 * When a server answers a request it will not read (413: body too large;
 * 431 / 414: head too large) and closes the socket while the client is
 * still sending, the kernel answers the unread bytes with a TCP reset, and a
 * client that writes its whole request before reading (Python's
 * http.client, many others) sees "connection reset" instead of the answer.
 * nginx's cure: after the answer, shut down the sending side (FIN), keep
 * reading and discarding for a bounded time, then close. This module does
 * that on a duplicate of the socket taken just before libmicrohttpd closes
 * its own: one thread, epoll, at most LINGER_MAX sockets (more are closed at
 * once), each for at most 30 s in all and 5 s of silence (nginx's
 * lingering_time and lingering_timeout), reading into one scratch buffer,
 * so it costs no memory per byte.
 */
#ifndef AGG_LINGER_H
#define AGG_LINGER_H

#include <stdint.h>

typedef struct agg_linger agg_linger;

/* 0, or -1 (errno set). */
int agg_linger_start(agg_linger **out);
/* Takes fd (a socket the caller owns, its answer already written): shuts
   down its sending side, drains it and closes it. Never blocks. */
void agg_linger_fd(agg_linger *l, int fd);
/* Sockets handed over so far, and those closed at once (table full). */
uint64_t agg_linger_count(agg_linger *l, uint64_t *overflow);
/* Closes whatever still lingers and joins the thread. */
void agg_linger_stop(agg_linger *l);

#endif
