/* counter.c: the README's example. A gen_server that counts casts and
   answers calls, bounded so that a flood is refused instead of drowning. */
#include <stdio.h>
#include <weir.h>

static int init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg; /* a long counter owned by the caller */
  return WEIR_OK;
}
static int handle_cast(weir_ctx *cx, void *state, const weir_msg *m) {
  (void)cx;
  (void)m;
  ++*(long *)state;
  return WEIR_OK;
}
static int handle_call(weir_ctx *cx, void *state, const weir_msg *m,
                       weir_from from) {
  (void)m;
  return weir_reply(cx, from, state, sizeof(long));
}
static const weir_server counter = {.name = "counter",
                                    .init = init,
                                    .handle_cast = handle_cast,
                                    .handle_call = handle_call};

int main(void) {
  weir_rt *rt;
  weir_pid pid;
  long count = 0, seen = 0;
  uint32_t len = sizeof seen;
  weir_spawn_opts so;
  weir_spawn_opts_init(&so);
  so.name = "counter";
  so.max_queue_len = 10000; /* full mailbox: weir_cast returns WEIR_EFULL */
  if (weir_rt_start(NULL, &rt) != WEIR_OK) return 1;
  if (weir_spawn(rt, &counter, &count, &so, &pid) != WEIR_OK) return 1;
  int refused = 0;
  for (int i = 0; i < 1000; i++)
    if (weir_cast(rt, pid, 1, &i, sizeof i) == WEIR_EFULL) refused++;
  int rc = weir_call(rt, pid, 2, NULL, 0, &seen, &len, 1000);
  printf("counter: %ld casts handled, %d refused (%s)\n", seen, refused,
         weir_strerror(rc));
  weir_rt_stop(rt, 1000);
  return rc == WEIR_OK && seen + refused == 1000 ? 0 : 1;
}
