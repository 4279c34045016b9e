/*
 * savina_chameneos.c: Savina's Chameneos, the twin of
 * bench/beam/savina/chameneos.exs.
 *
 *   weir-bench savina_chameneos [C] [MEETINGS]
 *        C chameneos (Savina default 100), MEETINGS meetings (200,000)
 *
 * As in Savina (ChameneosAkkaActorBenchmark): a mall process starts C
 * chameneos (colours red, yellow, blue in turn); each sends `meet(colour,
 * self)` to the mall. The mall holds the first of two, and when a second
 * comes it forwards the second's `meet` to the first and counts a meeting.
 * The first takes the complementary colour, answers `change(colour)` to the
 * second, and both go back to the mall. Once MEETINGS meetings are done the
 * mall answers each `meet` with `exit`; a chameneo tells the mall how many
 * meetings it had and ends. Each meeting involves both chameneos, so the
 * counts must sum to 2 * MEETINGS. All traffic goes through one mailbox:
 * this is many-to-one contention on the mall.
 *
 * The `meet` payload carries the original sender's pid, as Savina's
 * MeetMsg does, because the mall forwards it (msg.from is then the mall).
 * The mall spawns the chameneos from its own callback (asynchronous spawns,
 * like Savina's onPostStart); each chameneo's init sends its first `meet`.
 *
 * ops = MEETINGS meetings. The clock runs from before the mall's spawn to
 * the mall holding every chameneo's count.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TAG_START = 1, TAG_MEET, TAG_CHANGE, TAG_EXIT, TAG_COUNT };
enum { RED = 0, YELLOW, BLUE, FADED };

typedef struct meet_msg {
  weir_pid sender;
  uint32_t color;
  uint32_t pad;
} meet_msg;

typedef struct chameneo {
  weir_pid mall;
  uint32_t color;
  uint64_t meetings;
} chameneo;

typedef struct mall_state {
  uint64_t c;
  uint64_t meetings_left;
  chameneo *chams; /* the chameneos' states, owned by main */
  weir_pid waiting;
  uint64_t faded;
  uint64_t sum_meetings; /* read by main after done */
  bench_flag done;
} mall_state;

static uint32_t complement(uint32_t a, uint32_t b) {
  if (a == FADED || b == FADED) return FADED;
  if (a == b) return a;
  return 3u - a - b; /* the third colour of {red, yellow, blue} */
}

static void send_meet(weir_ctx *cx, chameneo *ch) {
  meet_msg mm = {.sender = weir_self(cx), .color = ch->color};
  bench_check(weir_send(weir_ctx_rt(cx), ch->mall, TAG_MEET, &mm, sizeof mm),
              "savina_chameneos: send meet");
}

static int cham_init(weir_ctx *cx, void *arg, void **state) {
  *state = arg;
  send_meet(cx, arg);
  return WEIR_OK;
}

static int cham_info(weir_ctx *cx, void *state, const weir_msg *m) {
  chameneo *ch = state;
  weir_rt *rt = weir_ctx_rt(cx);
  meet_msg mm, reply;
  switch (m->tag) {
  case TAG_MEET: /* forwarded by the mall: another chameneo to meet */
    if (m->len != sizeof mm) return WEIR_OK;
    memcpy(&mm, m->data, sizeof mm);
    ch->color = complement(ch->color, mm.color);
    ch->meetings++;
    reply = (meet_msg){.sender = weir_self(cx), .color = ch->color};
    bench_check(weir_send(rt, mm.sender, TAG_CHANGE, &reply, sizeof reply),
                "savina_chameneos: send change");
    send_meet(cx, ch);
    return WEIR_OK;
  case TAG_CHANGE:
    if (m->len != sizeof mm) return WEIR_OK;
    memcpy(&mm, m->data, sizeof mm);
    ch->color = mm.color;
    ch->meetings++;
    send_meet(cx, ch);
    return WEIR_OK;
  case TAG_EXIT:
    ch->color = FADED;
    bench_check(
        weir_send(rt, m->from, TAG_COUNT, &ch->meetings, sizeof ch->meetings),
        "savina_chameneos: send count");
    return WEIR_STOP;
  default:
    return WEIR_OK;
  }
}

static const weir_server cham_server = {
    .name = "savina_chameneo", .init = cham_init, .handle_info = cham_info};

static int mall_init(weir_ctx *cx, void *arg, void **state) {
  (void)cx;
  *state = arg;
  return WEIR_OK;
}

static int mall_info(weir_ctx *cx, void *state, const weir_msg *m) {
  mall_state *ms = state;
  weir_rt *rt = weir_ctx_rt(cx);
  if (m->tag == TAG_START) {
    for (uint64_t i = 0; i < ms->c; i++) {
      ms->chams[i] =
          (chameneo){.mall = weir_self(cx), .color = (uint32_t)(i % 3)};
      weir_pid pid;
      bench_check(weir_spawn(rt, &cham_server, &ms->chams[i], NULL, &pid),
                  "savina_chameneos: spawn chameneo");
    }
    return WEIR_OK;
  }
  if (m->tag == TAG_MEET && m->len == sizeof(meet_msg)) {
    meet_msg mm;
    memcpy(&mm, m->data, sizeof mm);
    if (ms->meetings_left == 0) {
      bench_check(weir_send(rt, mm.sender, TAG_EXIT, NULL, 0),
                  "savina_chameneos: send exit");
    } else if (weir_pid_is_none(ms->waiting)) {
      ms->waiting = mm.sender;
    } else {
      ms->meetings_left--;
      bench_check(weir_send(rt, ms->waiting, TAG_MEET, &mm, sizeof mm),
                  "savina_chameneos: forward meet");
      ms->waiting = WEIR_PID_NONE;
    }
    return WEIR_OK;
  }
  if (m->tag == TAG_COUNT && m->len == sizeof(uint64_t)) {
    uint64_t count;
    memcpy(&count, m->data, sizeof count);
    ms->sum_meetings += count;
    if (++ms->faded < ms->c) return WEIR_OK;
    bench_flag_raise(&ms->done); /* release: sum_meetings, faded */
    return WEIR_STOP;
  }
  return WEIR_OK;
}

static const weir_server mall_server = {
    .name = "savina_mall", .init = mall_init, .handle_info = mall_info};

int bench_savina_chameneos(int argc, char **argv) {
  uint64_t c = savina_arg(argc, argv, 1, "C", 100);
  uint64_t meetings = savina_arg(argc, argv, 2, "MEETINGS", 200000);
  if (c < 2) {
    fprintf(stderr, "weir-bench: savina_chameneos: C must be >= 2\n");
    return 2;
  }

  weir_rt *rt = bench_rt_start(0, 0);
  chameneo *chams = calloc(c, sizeof *chams);
  if (chams == NULL) bench_check(WEIR_ENOMEM, "savina_chameneos: calloc");
  mall_state ms = {.c = c, .meetings_left = meetings, .chams = chams};
  weir_pid mall;

  double t0 = bench_now();
  bench_check(weir_spawn(rt, &mall_server, &ms, NULL, &mall),
              "savina_chameneos: spawn mall");
  bench_check(weir_send(rt, mall, TAG_START, NULL, 0),
              "savina_chameneos: send start");
  bench_flag_wait(&ms.done, "savina_chameneos: every chameneo's count");
  double secs = bench_now() - t0;

  savina_expect(
      ms.faded == c && ms.sum_meetings == 2 * meetings && ms.meetings_left == 0,
      "savina_chameneos",
      "faded=%llu of %llu, meetings summed %llu, expected %llu",
      (unsigned long long)ms.faded, (unsigned long long)c,
      (unsigned long long)ms.sum_meetings, (unsigned long long)(2 * meetings));
  char keys[64];
  snprintf(keys, sizeof keys, "chameneos=%llu meetings=%llu",
           (unsigned long long)c, (unsigned long long)meetings);
  savina_report("savina_chameneos", keys, (double)meetings, secs);
  bench_rt_stop(rt);
  free(chams);
  return 0;
}
