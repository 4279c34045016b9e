/*
 * weir.h: the whole public API of libweir.
 *
 * weir brings Erlang/OTP's process model to C: lightweight processes with
 * mailboxes on an M:N scheduler, gen_server-style behaviours, supervisors, a
 * partition supervisor, bounded mailboxes with explicit overload policies,
 * overload alarms and live introspection.
 *
 * Conventions (they hold for every function below unless its comment says
 * otherwise):
 *   - Functions return WEIR_OK (0) or a negative error code from the list
 *     below; weir_strerror() and weir_err_name() describe it.
 *   - A function that fails calls no callback and takes no ownership.
 *   - Message payloads are copied: the caller may reuse its buffer as soon as
 *     the call returns. A weir_msg is a view valid only during the callback
 *     it is handed to.
 *   - Pids are values. A pid whose process has ended is stale: using it
 *     returns WEIR_ENOPROC and never touches freed memory.
 *   - "From a process" means from inside a callback (a weir_ctx exists);
 *     "from a thread" means any thread that is not running a callback.
 *   - Messages between one sender and one receiver arrive in the order sent.
 *     A callback on a scheduler thread must not block: casts and sends it
 *     makes may be batched, and each is in its receiver's mailbox at the
 *     latest when the callback returns (a call, a reply, a signal or a
 *     send to a DROP_OLDEST mailbox goes at once, after what the callback
 *     sent before it). A bounded mailbox still admits or refuses each
 *     message when it is sent, and an admitted message counts in its
 *     length from then on; during the callback the length may also count
 *     places reserved for the sender's next messages (at most an eighth of
 *     the room left, never past the bound), given back when it returns.
 *     Threads and blocking processes deliver every message at once.
 */
#ifndef WEIR_H
#define WEIR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(WEIR_BUILDING) && defined(__GNUC__)
#define WEIR_API __attribute__((visibility("default")))
#else
#define WEIR_API
#endif

#define WEIR_VERSION_MAJOR  0
#define WEIR_VERSION_MINOR  1
#define WEIR_VERSION_PATCH  0
#define WEIR_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/* One list; the enum, weir_strerror and weir_err_name all come from it. */
#define WEIR_ERRNO_MAP(X)                                                      \
  X(EINVAL, -1, "invalid argument")                                            \
  X(ENOMEM, -2, "out of memory")                                               \
  X(ENOPROC, -3, "no such process")                                            \
  X(EFULL, -4, "mailbox full")                                                 \
  X(ETIMEDOUT, -5, "timed out")                                                \
  X(EEXIST, -6, "already exists")                                              \
  X(ESTOPPED, -7, "runtime stopped")                                           \
  X(EDEADLK, -8, "would block a scheduler thread")                             \
  X(E2BIG, -9, "reply larger than the buffer")                                 \
  X(ENOTFOUND, -10, "not found")                                               \
  X(ELIMIT, -11, "process table full")                                         \
  X(ESYS, -12, "system call failed")                                           \
  X(ESHUTDOWN, -13, "process is shutting down")                                \
  X(EBUDGET, -14, "node mailbox memory budget exhausted")                      \
  X(ENOTSUP, -15, "not supported")

typedef enum {
  WEIR_OK = 0,
#define WEIR__ERRENUM(name, code, text) WEIR_##name = code,
  WEIR_ERRNO_MAP(WEIR__ERRENUM)
#undef WEIR__ERRENUM
} weir_errno;

/* Human text for an error code ("mailbox full"; "unknown error" for a code
   not in the list); static, never NULL. */
WEIR_API const char *weir_strerror(int err);
/* Symbolic name for an error code ("WEIR_EFULL"; "WEIR_UNKNOWN" for a code
   not in the list); static, never NULL. */
WEIR_API const char *weir_err_name(int err);

/* ------------------------------------------------------------------------ */
/* Runtime                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct weir_rt weir_rt;   /* a running node */
typedef struct weir_ctx weir_ctx; /* the process a callback runs in */

struct weir_report; /* see "Reports" below */

typedef struct weir_rt_opts {
  unsigned schedulers;    /* scheduler threads; 0 = online CPUs */
  unsigned io_threads;    /* max threads of the blocking pool; 0 = 64 */
  uint32_t max_processes; /* process table capacity; 0 = 1,048,576 */
  const char *node_name;  /* shown in diagnostics; NULL = "weir" (copied) */
  const char *console;    /* console socket path, "" = default path under
                             the run dir, NULL = no console (copied) */
  unsigned batch;         /* a process's run, in reductions (a message
                             handled or sent is one, as in BEAM); 0 = 64.
                             A run after one that took more (a callback
                             that sent in bulk) may take as many, up to 16
                             batches, so a process fed by a bulk sender on
                             its core keeps up with it. A run also ends
                             after about 1 ms once it has handled 16
                             messages (a callback is never cut short) */
  /* Alarm defaults (see weir_spawn_opts); 0 = off. */
  uint32_t alarm_enable;      /* long_message_queue on at this length */
  uint32_t alarm_disable;     /* ... and off again at this length;
                                 0 = alarm_enable / 2 */
  uint32_t alarm_growth_ms;   /* queue_growth: grown for this long; 0 = 2000 */
  int alarm_log;              /* 1 = log each alarm as one line on stderr
                                 (default 1) */
  uint64_t max_mailbox_bytes; /* node budget for all queued bytes; 0 = none */
  /* Crash and supervisor reports (see "Reports" below). */
  struct weir_log_hook {
    /* Receives each report logged, on the node's reporter thread (never a
       scheduler): one call at a time, in order. NULL = one logfmt line on
       stderr. It may block (syslog, a file): reports that arrive meanwhile
       wait in a bounded queue, and what does not fit is counted as
       suppressed. It must not call weir_rt_stop. */
    void (*fn)(void *ud, int level, const struct weir_report *r,
               const char *line);
    void *ud;
    int level; /* log reports of this severity or worse (WEIR_LOG_*);
                  0 = WEIR_LOG_INFO, WEIR_LOG_NONE = log nothing (the
                  ring and the counters still keep them) */
  } log;
  uint32_t report_rate;      /* reports logged per second per node; 0 = 20 */
  uint32_t report_rate_proc; /* ... per process (slot); 0 = 5 */
  uint32_t report_ring;      /* reports the node keeps for weirctl crashes;
                                0 = 64, at most 4096 */
  /* An application's own metrics, added to the console's `metrics` (so
     `weirctl metrics` shows them): called on the console's thread, never a
     scheduler, once per request; returns Prometheus text in a malloc'd
     string that weir frees, or NULL for none. The console waits for it:
     keep it short. NULL = none. */
  char *(*metrics_extra)(void *ud);
  void *metrics_ud;
} weir_rt_opts;

/* Fills *o with the defaults (all 0 but alarm_log = 1). o NULL: no-op. */
WEIR_API void weir_rt_opts_init(weir_rt_opts *o);
/* Starts a node: threads, process table, console (if asked). o may be NULL
   (the defaults). On success *rt is owned by the caller until weir_rt_stop.
   Errors: EINVAL (rt NULL, schedulers > 1024, max_processes 1, node_name ""
   or over 63 bytes, alarm_disable > alarm_enable, console path too long),
   ENOMEM, ESYS (a thread, the run dir or the socket), EEXIST (a live node,
   or a file that is not a socket, holds the console path). */
WEIR_API int weir_rt_start(const weir_rt_opts *o, weir_rt **rt);
/* Stops a node. New spawns fail with ESTOPPED; every process without a
   supervisor gets a stop at the tail of its mailbox, newest first (a
   supervisor stops its children, last started first, before itself), so each
   drains what was queued before it. Whatever is alive after timeout_ms (< 0
   = wait forever) is killed. Then joins every thread and frees everything,
   including rt. Returns WEIR_OK, ETIMEDOUT (processes had to be killed; rt is
   freed all the same), EINVAL (rt NULL) or EDEADLK (called from a process:
   nothing is stopped, rt stays valid). */
WEIR_API int weir_rt_stop(weir_rt *rt, int timeout_ms);
/* Number of scheduler threads (0 if rt is NULL). */
WEIR_API unsigned weir_rt_schedulers(const weir_rt *rt);
/* The node name (owned by rt; NULL if rt is NULL). */
WEIR_API const char *weir_rt_node_name(const weir_rt *rt);
/* The console socket path (owned by rt), or NULL if the node has no
   console. */
WEIR_API const char *weir_rt_console_path(const weir_rt *rt);

/* The one door for memory, shared by every node of the program. */
typedef struct weir_allocator {
  void *(*malloc)(size_t size, void *ud);
  void *(*realloc)(void *p, size_t size, void *ud);
  void (*free)(void *p, void *ud);
  void *ud;
} weir_allocator;
/* Replaces the allocator (*a is copied) for all of libweir; call it before
   the first weir_rt_start, while no other thread uses libweir. malloc and
   free must be non-NULL; realloc may be NULL. The functions are called from
   any of weir's threads, at times while weir holds one of its own locks:
   they must be thread-safe, should not block for long, and must not call
   into libweir. Errors: EINVAL (a, malloc or free NULL, or a runtime is
   running). */
WEIR_API int weir_set_allocator(const weir_allocator *a);

/* ------------------------------------------------------------------------ */
/* Processes and messages                                                    */
/* ------------------------------------------------------------------------ */

typedef struct {
  uint64_t id;
} weir_pid; /* (generation << 32) | slot */
#define WEIR_PID_NONE ((weir_pid){0})
static inline int weir_pid_eq(weir_pid a, weir_pid b) {
  return a.id == b.id;
}
static inline int weir_pid_is_none(weir_pid p) {
  return p.id == 0;
}

/* A reference: monitors, async calls, timers. 0 is never a valid ref. */
typedef uint64_t weir_ref;

typedef struct weir_msg { /* a view, valid during the callback only */
  uint32_t tag;
  uint32_t len;
  const void *data;
  weir_pid from; /* sender (send_after: the process that set the timer),
                    or WEIR_PID_NONE from a thread */
  weir_ref ref;  /* REPLY: the call_async ref; DOWN: the monitor ref;
                    timer messages: the timer ref; else 0 */
} weir_msg;

/* Tags at or above WEIR_TAG_SYSTEM are the runtime's. User tags are below. */
#define WEIR_TAG_SYSTEM 0xFFFF0000u
#define WEIR_TAG_REPLY                                                         \
  0xFFFF0001u /* handle_info: reply to call_async;                             \
                  data = reply bytes, ref = the ref */
#define WEIR_TAG_DOWN                                                          \
  0xFFFF0002u /* handle_info: a monitored process ended;                       \
                  from = it, ref = monitor ref,                                \
                  data = int32 reason */
#define WEIR_TAG_EXIT                                                          \
  0xFFFF0003u                            /* handle_info when trapping exits:   \
                                             from = linked pid, data = int32 reason */
#define WEIR_TAG_ALARM       0xFFFF0004u /* handle_info: a weir_alarm */
#define WEIR_TAG_DEAD_LETTER 0xFFFF0005u /* handle_info: a weir_dead_letter */
#define WEIR_TAG_TIMEOUT                                                       \
  0xFFFF0006u /* handle_info: call_async timed out;                            \
                  ref = the ref, no data */

/* Exit reasons. Callbacks crash by returning a negative value, which becomes
   the reason. */
#define WEIR_REASON_NORMAL   0 /* process ended normally (WEIR_STOP) */
#define WEIR_REASON_SHUTDOWN 1 /* asked to stop by its supervisor / rt_stop */
#define WEIR_REASON_KILL     2 /* untrappable kill signal */
#define WEIR_REASON_KILLED   3 /* what links see of a KILL */
#define WEIR_REASON_NOPROC   4 /* monitor/link target had already ended */

/* Callback return values. */
#define WEIR_STOP 1 /* end the process normally (reason NORMAL) */

typedef struct weir_from { /* where a reply goes; a value, copy it freely */
  uint64_t a, b;
} weir_from;

typedef struct weir_server { /* the behaviour: a table of callbacks */
  const char *name; /* shown as module in diagnostics; static storage */
  /* Runs in the new process before any message. Sets *state. Return WEIR_OK,
     or < 0 to fail the spawn (weir_spawn returns that code; > 0 makes it
     EINVAL). May be NULL. */
  int (*init)(weir_ctx *cx, void *arg, void **state);
  int (*handle_cast)(weir_ctx *cx, void *state, const weir_msg *m);
  /* Reply now or later with weir_reply(cx, from, ...). May be NULL. */
  int (*handle_call)(weir_ctx *cx, void *state, const weir_msg *m,
                     weir_from from);
  /* System messages (tags >= WEIR_TAG_SYSTEM), timers, replies. May be NULL. */
  int (*handle_info)(weir_ctx *cx, void *state, const weir_msg *m);
  /* Last call; frees the state (not called if init failed). in_hand is the
     message being handled when the process crashed (NULL otherwise):
     weir_requeue() puts it back at the head of the mailbox for the next
     incarnation. May be NULL. */
  void (*terminate)(weir_ctx *cx, void *state, int reason,
                    const weir_msg *in_hand);
  /* Optional: bytes of state, for process_info's memory. May be NULL. */
  size_t (*state_size)(const void *state);
} weir_server; /* callbacks return WEIR_OK, WEIR_STOP, or < 0 = crash */

/* What a bounded mailbox does when full. */
typedef enum {
  WEIR_OVERFLOW_REJECT = 0,  /* the send returns WEIR_EFULL (default) */
  WEIR_OVERFLOW_DROP_OLDEST, /* the send queues the new message and sheds
                                the oldest queued ones until both bounds
                                hold: the newest max_queue_len (and
                                max_queue_bytes) survive, in order, however
                                long the receiver is stuck; a message larger
                                than max_queue_bytes is itself shed. The
                                send returns OK */
  WEIR_OVERFLOW_DROP_NEWEST, /* the new message is shed; the send returns OK */
  WEIR_OVERFLOW_BLOCK        /* wait up to push_timeout_ms, then EFULL;
                                EDEADLK on a scheduler thread or sending to
                                oneself */
} weir_overflow;

typedef struct weir_spawn_opts {
  const char *name;         /* register under this name (copied); NULL none */
  int blocking;             /* 1 = runs on the blocking I/O pool */
  uint32_t max_queue_len;   /* 0 = unbounded (the BEAM default) */
  uint64_t max_queue_bytes; /* 0 = unbounded */
  weir_overflow overflow;   /* policy once bounded */
  int push_timeout_ms;      /* BLOCK: how long a sender waits; < 0 forever */
  uint32_t alarm_enable;    /* long_message_queue alarm on at this length;
                               0 = the node default */
  uint32_t alarm_disable;   /* ... off again at this length */
  int link;                 /* 1 = link to the spawning process */
  int trap_exit;            /* 1 = exit signals arrive as WEIR_TAG_EXIT */
} weir_spawn_opts;

/* Fills *so with the defaults: all 0, overflow REJECT, push_timeout_ms -1.
   so NULL: no-op. */
WEIR_API void weir_spawn_opts_init(weir_spawn_opts *so);
/* Starts a process running server with arg (so NULL = the defaults). The
   name, if any, is registered first; then init runs at once in the caller's
   thread as the new process, also when the caller is a process (a slow init
   stalls its scheduler), so a failing init is weir_spawn's return; terminate
   is not called then, and init frees what it made. .link links to the
   calling process (ignored from a thread). server and arg stay the caller's;
   server must outlive the process. On success *pid (may be NULL) is set.
   Errors: EINVAL (rt or server NULL, bad overflow, bad name, init returned
   > 0), ENOMEM, ELIMIT (table full), EEXIST (name taken), ESTOPPED, or
   init's own negative return. */
WEIR_API int weir_spawn(weir_rt *rt, const weir_server *server, void *arg,
                        const weir_spawn_opts *so, weir_pid *pid);

/* Sends a cast (handle_cast); callable from any thread or process. Errors:
   EINVAL (rt NULL, data NULL with len > 0, tag >= WEIR_TAG_SYSTEM), ENOMEM,
   ENOPROC, EFULL (bounded mailbox: REJECT, or BLOCK past push_timeout_ms),
   EDEADLK (BLOCK from a scheduler thread, or to the caller itself), EBUDGET
   (the node's max_mailbox_bytes is reached). A message shed by DROP_OLDEST
   or DROP_NEWEST still returns WEIR_OK. */
WEIR_API int weir_cast(weir_rt *rt, weir_pid pid, uint32_t tag,
                       const void *data, uint32_t len);
/* Like weir_cast, but the message arrives in handle_info (Erlang's plain
   send), with ref 0. Same errors. */
WEIR_API int weir_send(weir_rt *rt, weir_pid pid, uint32_t tag,
                       const void *data, uint32_t len);
/* Synchronous call (handle_call) from a thread or a blocking process; blocks
   until the reply or timeout_ms (< 0 = forever). reply: a buffer of
   *reply_len bytes (reply and reply_len may be NULL with no room); on
   WEIR_OK and E2BIG *reply_len holds the reply's full length. Errors: EINVAL
   (as weir_cast, or reply NULL with *reply_len > 0), EDEADLK (from a
   scheduler thread: use weir_call_async), the send errors of weir_cast,
   ENOMEM (also once 4096 threads have called on this node), ETIMEDOUT,
   ENOPROC (also if the server ends before replying), EFULL (the call was
   shed by a DROP policy), ENOTSUP (the server has no handle_call), E2BIG
   (the reply was truncated to the buffer). */
WEIR_API int weir_call(weir_rt *rt, weir_pid pid, uint32_t tag,
                       const void *data, uint32_t len, void *reply,
                       uint32_t *reply_len, int timeout_ms);
/* Asynchronous call from a process; returns at once, *ref (may be NULL)
   names the call. The reply arrives in handle_info with tag WEIR_TAG_REPLY
   and msg.ref == the ref. If the call fails first, a WEIR_TAG_DOWN with the
   same ref arrives instead; its reason is the server's exit reason,
   WEIR_REASON_NOPROC (no such server), or a negative error (EFULL: shed by a
   DROP policy; ENOTSUP: no handle_call). If timeout_ms >= 0 and nothing came
   by then, WEIR_TAG_TIMEOUT with the ref, and nothing after it. Only one of
   the three arrives. Errors: EINVAL (cx NULL, data NULL with len > 0, tag >=
   WEIR_TAG_SYSTEM), ENOMEM, and weir_cast's EFULL, EDEADLK, EBUDGET (ENOPROC
   comes as the DOWN). */
WEIR_API int weir_call_async(weir_ctx *cx, weir_pid pid, uint32_t tag,
                             const void *data, uint32_t len, int timeout_ms,
                             weir_ref *ref);
/* Replies to a call from a callback, now or later (from is a value: keep it).
   data is copied; a thread caller gets it truncated to its buffer. A reply
   to a process caller is never refused for its bounds or the node budget;
   it is discarded on arrival if its call_async already timed out or was
   answered. Errors: EINVAL (cx NULL, data NULL with len > 0), ENOMEM,
   ENOPROC (a thread caller that timed out or was already answered, or a
   process caller that has ended). */
WEIR_API int weir_reply(weir_ctx *cx, weir_from from, const void *data,
                        uint32_t len);
/* weir_reply from a thread (a deferred reply from outside a callback). Same
   errors, EINVAL also if rt is NULL. */
WEIR_API int weir_reply_rt(weir_rt *rt, weir_from from, const void *data,
                           uint32_t len);

/* Sends {tag, data} to pid's handle_info after ms milliseconds, with ref =
   the timer's ref; *timer (may be NULL) is that ref, for cancel. data is
   copied now. pid is checked now: if it has ended when the timer fires (or
   its bounds refuse), the message is dropped. Errors: EINVAL (rt NULL, data
   NULL with len > 0, tag >= WEIR_TAG_SYSTEM), ENOPROC, ENOMEM, ESTOPPED (the
   node's timer thread has stopped). */
WEIR_API int weir_send_after(weir_rt *rt, weir_pid pid, uint32_t tag,
                             const void *data, uint32_t len, uint32_t ms,
                             weir_ref *timer);
/* Cancels a timer of weir_send_after; its message is freed unsent. Errors:
   EINVAL (rt NULL or timer 0), ENOTFOUND (it already fired or was
   cancelled). */
WEIR_API int weir_cancel_timer(weir_rt *rt, weir_ref timer);

/* The calling process's pid (WEIR_PID_NONE if cx is NULL). */
WEIR_API weir_pid weir_self(weir_ctx *cx);
/* The runtime a callback runs in (NULL if cx is NULL). */
WEIR_API weir_rt *weir_ctx_rt(weir_ctx *cx);
/* Sends an exit signal with reason to pid (Erlang's exit/2), from any thread
   or process. pid == self, from a handler, ends the calling process with
   reason after its callback returns (from init or terminate it does
   nothing). KILL cannot be trapped (the target ends with KILLED); NORMAL is
   ignored by a target that does not trap exits; a trapping target gets
   WEIR_TAG_EXIT. Errors: EINVAL (rt NULL), ENOPROC, ENOMEM. */
WEIR_API int weir_exit(weir_rt *rt, weir_pid pid, int reason);
/* Links the calling process with pid (both ways); linking to oneself or
   twice is a no-op. When pid ends, the caller gets an exit signal with its
   exit reason (WEIR_REASON_KILLED for a kill): also if pid ends before it
   has handled the link request (a kill, a crash on a message queued
   earlier), as the BEAM's in-order signal handling gives. Only if pid had
   already ended at the call (or ends while the call runs) is the reason
   WEIR_REASON_NOPROC. Either way the caller ends, unless it traps exits or
   the reason is NORMAL. Errors: EINVAL (cx NULL), ENOMEM. */
WEIR_API int weir_link(weir_ctx *cx, weir_pid pid);
/* Removes the link with pid both ways: no link exit signal from it arrives
   afterwards. Not linked, or pid gone: WEIR_OK. Errors: EINVAL (cx NULL),
   ENOMEM. */
WEIR_API int weir_unlink(weir_ctx *cx, weir_pid pid);
/* The calling process monitors pid: when it ends, a WEIR_TAG_DOWN message
   with its exit reason (WEIR_REASON_KILLED for a kill) and ref == *ref (may
   be NULL) arrives, also if pid ends before it has handled the monitor
   request (a kill, a crash on a message queued earlier). Only if pid had
   already ended at the call (or ends while the call runs) is the reason
   WEIR_REASON_NOPROC, and the DOWN comes at once. Each call is a new
   monitor. Errors: EINVAL (cx NULL), ENOMEM. */
WEIR_API int weir_monitor(weir_ctx *cx, weir_pid pid, weir_ref *ref);
/* Removes a monitor of the calling process; no DOWN for it arrives
   afterwards. Errors: EINVAL (cx NULL), ENOTFOUND (no such monitor, or its
   DOWN was already handled), ENOMEM. */
WEIR_API int weir_demonitor(weir_ctx *cx, weir_ref ref);
/* Sets (on != 0) or clears exit trapping for the calling process: exit
   signals then arrive as WEIR_TAG_EXIT in handle_info. cx NULL: no-op. */
WEIR_API void weir_trap_exit(weir_ctx *cx, int on);
/* Puts a copy of the message in hand back at the head of the mailbox: in a
   handler it is handled again next; in terminate (in_hand non-NULL) it waits
   for the next incarnation of a child with keep_mailbox, and is a dead
   letter otherwise. It is never refused by a bound: in a full bounded
   mailbox it leaves the length one past the bound until taken again. What
   is requeued is always the message in hand; m is only checked for NULL.
   Errors: EINVAL (cx or m NULL, or no message in hand: init, or terminate
   without in_hand), EEXIST (already requeued in this callback), ENOMEM. */
WEIR_API int weir_requeue(weir_ctx *cx, const weir_msg *m);

/* Registry: names -> pids. A name is freed when its process ends. */
/* Registers name (copied; 1 to 63 bytes) for pid; a process has at most one
   name. Errors: EINVAL (rt or name NULL, name empty or too long), ENOPROC,
   EEXIST (name taken, or pid already has a name), ENOMEM. */
WEIR_API int weir_register(weir_rt *rt, const char *name, weir_pid pid);
/* Removes name. Errors: EINVAL (rt or name NULL), ENOTFOUND. */
WEIR_API int weir_unregister(weir_rt *rt, const char *name);
/* *pid = the process registered as name (it may end at any time: a stale pid
   gives ENOPROC). Errors: EINVAL (an argument NULL), ENOTFOUND. */
WEIR_API int weir_whereis(weir_rt *rt, const char *name, weir_pid *pid);

/* "<0.SLOT.GEN>" into buf of n bytes (32 is always enough); returns the
   length written (without NUL), or EINVAL if buf is NULL, n is 0, or it does
   not fit (buf is then the empty string: a pid is never silently
   truncated). */
WEIR_API int weir_pid_format(weir_pid pid, char *buf, size_t n);
/* Parses "<0.SLOT.GEN>" (or "0.SLOT.GEN"; decimal, 32-bit) into *pid; does
   not check that the process exists. EINVAL on a NULL argument or anything
   else. */
WEIR_API int weir_pid_parse(const char *str, weir_pid *pid);
/* Messages queued for the calling process, runtime signals included and the
   one in hand not (0 if cx is NULL). */
WEIR_API uint64_t weir_queue_len(weir_ctx *cx);

/* ------------------------------------------------------------------------ */
/* Supervision                                                               */
/* ------------------------------------------------------------------------ */

typedef enum {
  WEIR_PERMANENT = 0, /* always restarted */
  WEIR_TRANSIENT,     /* restarted if it ended abnormally */
  WEIR_TEMPORARY      /* never restarted */
} weir_restart;

typedef enum {
  WEIR_ONE_FOR_ONE = 0,
  WEIR_ONE_FOR_ALL,
  WEIR_REST_FOR_ONE
} weir_strategy;

typedef struct weir_child_spec {
  const char *id;            /* unique among siblings (copied) */
  const weir_server *server; /* the child's behaviour */
  void *arg;                 /* passed to init at each (re)start */
  weir_spawn_opts opts;      /* spawn options (name, bounds, blocking...) */
  weir_restart restart;
  int shutdown_ms;     /* wait this long for a clean stop; < 0 forever */
  int keep_mailbox;    /* 1 (default): a restarted child inherits the
                          messages queued for its previous incarnation */
  int is_supervisor;   /* set by weir_sup_child_spec */
  const void *sup_def; /* internal: a nested supervisor's definition */
} weir_child_spec;

/* Fills *cs for a worker: id (copied by weir_sup_start, not here), server,
   arg, default spawn options, PERMANENT, shutdown_ms 5000, keep_mailbox 1.
   cs NULL: no-op. */
WEIR_API void weir_child_spec_init(weir_child_spec *cs, const char *id,
                                   const weir_server *server, void *arg);

typedef struct weir_sup_opts {
  const char *name;       /* registered name, or NULL */
  weir_strategy strategy; /* default ONE_FOR_ONE */
  int max_restarts;       /* default 3 */
  int max_seconds;        /* default 5 */
} weir_sup_opts;

/* Fills *o: no name, ONE_FOR_ONE, 3 restarts in 5 seconds. o NULL: no-op. */
WEIR_API void weir_sup_opts_init(weir_sup_opts *o);
/* Starts a supervisor (a blocking process that traps exits) and its n
   children in order, each linked to it; o may be NULL (the defaults). Its
   init runs in the caller's thread, as in weir_spawn. If a child fails to
   start, the ones started are stopped in reverse order and the error is
   returned. More than max_restarts restarts in max_seconds: it stops its
   children and exits with WEIR_REASON_SHUTDOWN. children is copied; servers
   and args stay the caller's and must outlive the supervisor. Started from a
   process, it is linked to that process and ends with it. On success *pid
   (may be NULL) is set. Errors: EINVAL (rt NULL, children NULL with n > 0,
   bad strategy or restart, max_restarts < 0, max_seconds <= 0, name or id
   of 64+ bytes, empty id, NULL server), EEXIST (duplicate ids, or name
   taken), ENOMEM, ELIMIT, ESTOPPED, or a child's start error. */
WEIR_API int weir_sup_start(weir_rt *rt, const weir_sup_opts *o,
                            const weir_child_spec *children, size_t n,
                            weir_pid *pid);
/* Fills *cs with a child spec that starts a nested supervisor (supervisors
   of supervisors); o and children as in weir_sup_start. The definition is
   copied into storage owned by rt and kept until weir_rt_stop; id is copied
   when the parent starts. shutdown_ms is -1 (wait for it). Errors: EINVAL
   (rt, cs or id NULL, or as weir_sup_start), EEXIST (duplicate ids),
   ENOMEM. */
WEIR_API int weir_sup_child_spec(weir_rt *rt, weir_child_spec *cs,
                                 const char *id, const weir_sup_opts *o,
                                 const weir_child_spec *children, size_t n);

typedef struct weir_child_info {
  char id[64];
  weir_pid pid; /* WEIR_PID_NONE if not running */
  int is_supervisor;
  weir_restart restart;
} weir_child_info;

typedef struct weir_child_counts {
  uint32_t specs, active, supervisors, workers;
} weir_child_counts;

/* The four below run as a request inside the supervisor sup (a partition
   supervisor too) while the caller waits: from a thread or a blocking
   process (inside sup itself, at once). Each can return EINVAL (rt or a
   required argument NULL, or sup is not a supervisor), ENOPROC (sup has
   ended), EDEADLK (from a scheduler thread) and ENOMEM. */
/* Up to n children into out, in start order; *count (may be NULL) = how many
   the supervisor has. An ended temporary child is no longer listed. */
WEIR_API int weir_sup_which_children(weir_rt *rt, weir_pid sup,
                                     weir_child_info *out, size_t n,
                                     size_t *count);
/* *c = the number of child specs, running children, supervisors and
   workers. */
WEIR_API int weir_sup_count_children(weir_rt *rt, weir_pid sup,
                                     weir_child_counts *c);
/* What weirctl tree shows of a supervisor. Read without a message (the
   supervisor publishes its figures as it restarts), so it works from any
   thread or process, even while sup is busy or its mailbox is deep. */
typedef struct weir_sup_stats {
  weir_strategy strategy;
  int max_restarts, max_seconds; /* its intensity */
  uint64_t restarts;             /* restarts it counted since it started */
  int restarts_recent; /* of those, inside the last max_seconds (as of the
                          last restart; 0 once max_seconds pass quietly) */
  int intensity_left;  /* max_restarts - restarts_recent: restarts it can
                          still take before it gives up */
} weir_sup_stats;
/* Fills *st for the supervisor sup (a partition supervisor too). Errors:
   EINVAL (rt or st NULL, or sup is not a supervisor), ENOPROC (sup ended,
   also during the read). */
WEIR_API int weir_supervisor_stats(weir_rt *rt, weir_pid sup,
                                   weir_sup_stats *st);
/* WEIR_ONE_FOR_ONE -> "one_for_one" ("unknown" out of range); static. */
WEIR_API const char *weir_strategy_name(weir_strategy s);
/* Stops child id (shutdown signal, up to its shutdown_ms, then kill; 0:
   kill at once) and dead-letters what its mailbox held; it is not
   restarted. A temporary child's spec is deleted, others stay for
   weir_sup_restart_child. A child that is not running: WEIR_OK. ENOTFOUND if
   no child has that id. */
WEIR_API int weir_sup_terminate_child(weir_rt *rt, weir_pid sup,
                                      const char *id);
/* Starts a stopped child id again. ENOTFOUND if no child has that id, EEXIST
   if it is running, or the child's start error. */
WEIR_API int weir_sup_restart_child(weir_rt *rt, weir_pid sup, const char *id);

/* ------------------------------------------------------------------------ */
/* Partitions (Elixir's PartitionSupervisor)                                 */
/* ------------------------------------------------------------------------ */

typedef struct weir_partsup_opts {
  const char *name;      /* registered name (for weirctl partitions) */
  weir_child_spec child; /* the worker template */
  unsigned partitions;   /* 0 = weir_rt_schedulers() */
  /* Optional: the init arg for partition i; default: child.arg. */
  void *(*with_arguments)(void *arg, unsigned partition);
  weir_strategy strategy; /* ONE_FOR_ONE (default) */
  int max_restarts;       /* default 3 */
  int max_seconds;        /* default 5 */
} weir_partsup_opts;

/* Fills *o: child from weir_child_spec_init with server NULL (set it),
   partitions 0, ONE_FOR_ONE, 3 restarts in 5 seconds. o NULL: no-op. */
WEIR_API void weir_partsup_opts_init(weir_partsup_opts *o);
/* Starts a partition supervisor: a supervisor (weir_sup_* work on it) with
   one worker per partition, made from o->child (partition i gets the id
   "partition-i" and, if set, with_arguments(arg, i) at each start; opts.name
   is ignored). With keep_mailbox, messages routed while a worker restarts
   wait for it. Its routing state lives until weir_rt_stop. On success *pid
   (may be NULL) is set. Errors: EINVAL (rt or o NULL, child.server NULL,
   name of 64+ bytes, partitions > 65536, a bad strategy, restart type or
   intensity), ENOMEM, and those of
   weir_sup_start (EEXIST: name taken, ELIMIT, ESTOPPED, a worker's init). */
WEIR_API int weir_partsup_start(weir_rt *rt, const weir_partsup_opts *o,
                                weir_pid *pid);
/* For the functions below ps must be a partition supervisor: EINVAL if it is
   a live process that is not one, ENOPROC if it has ended. */
/* Casts to the worker of partition key % partitions. Errors: weir_cast's,
   and ENOPROC also if that worker is gone for good. */
WEIR_API int weir_partition_cast(weir_rt *rt, weir_pid ps, uint64_t key,
                                 uint32_t tag, const void *data, uint32_t len);
/* The same, routed by XXH3-64 of the keylen bytes at key; EINVAL also if
   key is NULL with keylen > 0. */
WEIR_API int weir_partition_cast_bytes(weir_rt *rt, weir_pid ps,
                                       const void *key, size_t keylen,
                                       uint32_t tag, const void *data,
                                       uint32_t len);
/* weir_call to the worker running now for key % partitions. Not routed
   like a cast: during a resize it is not ordered after earlier casts of the
   key. Errors: weir_call's and weir_partition_whereis's. */
WEIR_API int weir_partition_call(weir_rt *rt, weir_pid ps, uint64_t key,
                                 uint32_t tag, const void *data, uint32_t len,
                                 void *reply, uint32_t *reply_len,
                                 int timeout_ms);
/* *pid = the worker running now for key % partitions. Errors: EINVAL (rt or
   pid NULL), ENOPROC (also while that worker restarts). */
WEIR_API int weir_partition_whereis(weir_rt *rt, weir_pid ps, uint64_t key,
                                    weir_pid *pid);
/* Number of partitions (> 0), or EINVAL (rt NULL) or ENOPROC. */
WEIR_API int weir_partitions(weir_rt *rt, weir_pid ps);
/* Grows or shrinks to n partitions while traffic flows, and returns when
   done: new workers start first; every old partition drains what was routed
   with the old table before a key that moved is handled anywhere else, so
   per-key order of casts is kept; shrinking then stops the workers past n.
   Resizes of one ps run one at a time; the same n is a no-op. From a thread
   or a blocking process. Errors: EINVAL (rt NULL, n 0 or > 65536), ENOPROC,
   EDEADLK (from a scheduler thread), ENOMEM, or a new worker's start error
   (the partition count is then unchanged). */
WEIR_API int weir_partsup_resize(weir_rt *rt, weir_pid ps, unsigned n);

typedef struct weir_hot_key {
  uint64_t key;   /* integer key, or the 64-bit hash of a byte key */
  uint64_t count; /* estimated messages routed with it (sampled) */
} weir_hot_key;
/* Top keys of one partition, largest first: up to n into out; *count (may
   be NULL) = how many were written (at most n and 8). Estimates, from one
   cast in 16 (calls are not counted). Errors: EINVAL (rt NULL, out NULL with
   n > 0, partition beyond the most ps has had), ENOPROC. */
WEIR_API int weir_partition_hot_keys(weir_rt *rt, weir_pid ps,
                                     unsigned partition, weir_hot_key *out,
                                     size_t n, size_t *count);

/* ------------------------------------------------------------------------ */
/* Diagnostics                                                               */
/* ------------------------------------------------------------------------ */

typedef enum {
  WEIR_STATUS_RUNNING = 0,
  WEIR_STATUS_RUNNABLE,
  WEIR_STATUS_WAITING,
  WEIR_STATUS_EXITING
} weir_status;

typedef struct weir_proc_info {
  weir_pid pid;
  char registered_name[64];  /* "" if none */
  char initial_call[64];     /* the behaviour's name */
  char current_function[80]; /* "module:callback" or "waiting" */
  weir_status status;
  uint64_t message_queue_len;
  uint64_t mailbox_bytes;
  uint64_t memory;     /* process + state + queued bytes */
  uint64_t reductions; /* callbacks run */
  uint64_t messages_in;
  uint64_t messages_out;
  uint64_t dropped; /* shed by the overflow policy */
  uint64_t queue_high_water;
  uint64_t max_queue_len;   /* 0 = unbounded */
  double in_rate, out_rate; /* messages per second, smoothed */
  weir_pid supervisor;      /* WEIR_PID_NONE if none */
  int partition;            /* partition index, or -1 */
  int blocking;
} weir_proc_info;

/* Fills *info with a snapshot of pid, read without stopping it (a figure
   may be a message stale). Errors: EINVAL (rt or info NULL), ENOPROC (also
   if pid ended during the read; *info is then partly filled). */
WEIR_API int weir_process_info(weir_rt *rt, weir_pid pid, weir_proc_info *info);
/* A status as text ("running", ...; "unknown" out of range); static. */
WEIR_API const char *weir_status_name(weir_status s);

typedef enum {
  WEIR_ATTR_MESSAGE_QUEUE_LEN = 0,
  WEIR_ATTR_MAILBOX_BYTES,
  WEIR_ATTR_MEMORY,
  WEIR_ATTR_REDUCTIONS,
  WEIR_ATTR_MESSAGES_IN,
  WEIR_ATTR_MESSAGES_OUT,
  WEIR_ATTR_DROPPED,
  WEIR_ATTR_QUEUE_HIGH_WATER,
  WEIR_ATTR__COUNT
} weir_attr;
/* WEIR_ATTR_MESSAGE_QUEUE_LEN -> "message_queue_len" ("unknown" out of
   range); static, never NULL. */
WEIR_API const char *weir_attr_name(weir_attr a);
/* "message_queue_len" -> WEIR_ATTR_MESSAGE_QUEUE_LEN into *a. Errors: EINVAL
   (an argument NULL, or an unknown name). */
WEIR_API int weir_attr_parse(const char *name, weir_attr *a);

typedef struct weir_proc_sample {
  weir_pid pid;
  uint64_t value;
} weir_proc_sample;
/* recon's proc_count: the top n live processes by attr, largest first, into
   out; *count (may be NULL) = how many were written (at most n). One pass,
   no lock a scheduler waits on. Errors: EINVAL (rt NULL, bad attr, out NULL
   with n > 0). */
WEIR_API int weir_proc_count(weir_rt *rt, weir_attr attr, size_t n,
                             weir_proc_sample *out, size_t *count);
/* recon's proc_window: the top n by attr's increase over ms milliseconds
   (a process born inside the window counts its absolute value), as
   weir_proc_count. Sleeps ms: call it from a thread. Errors: those of
   weir_proc_count, EDEADLK (from a process), ENOMEM. */
WEIR_API int weir_proc_window(weir_rt *rt, weir_attr attr, size_t n,
                              uint32_t ms, weir_proc_sample *out,
                              size_t *count);

typedef struct weir_stats { /* weir_node_stats() fills it */
  uint64_t processes;
  uint64_t max_processes;
  uint64_t spawned, exited, crashed;
  uint64_t messages_sent;
  uint64_t queued_messages, queued_bytes;
  uint64_t mailbox_budget; /* 0 = none */
  uint64_t dropped;
  uint64_t dead_letters;
  uint64_t alarms_active;
  uint64_t rss_bytes;
  unsigned schedulers, io_threads_live, io_threads_max;
  double uptime_s;
} weir_stats;
/* Fills *s with the node's counters, read without locks a scheduler waits
   on (messages_sent: every message ever queued, runtime signals included).
   Errors: EINVAL (rt or s NULL). */
WEIR_API int weir_node_stats(weir_rt *rt, weir_stats *s);

/* Fraction of time (0 to 1) each scheduler was busy over ms milliseconds:
   scheduler i into out[i], up to n; *count (may be NULL) = the number of
   schedulers (at most 256). Sleeps ms. Errors: EINVAL (rt NULL, out NULL
   with n > 0), EDEADLK (from a scheduler thread). */
WEIR_API int weir_scheduler_usage(weir_rt *rt, uint32_t ms, double *out,
                                  size_t n, size_t *count);

/* ------------------------------------------------------------------------ */
/* Overload: alarms and dead letters                                         */
/* ------------------------------------------------------------------------ */

typedef enum {
  WEIR_ALARM_LONG_MESSAGE_QUEUE = 0,
  WEIR_ALARM_QUEUE_GROWTH,
  WEIR_ALARM_MAILBOX_BUDGET
} weir_alarm_kind;

typedef struct weir_alarm { /* the payload of a WEIR_TAG_ALARM message */
  weir_alarm_kind kind;
  int on; /* 1 = raised, 0 = cleared */
  weir_pid pid;
  char registered_name[64];
  char current_function[80];
  uint64_t queue_len;       /* mailbox_budget: bytes queued on the node */
  double in_rate, out_rate; /* per second, smoothed */
  double secs_to_limit;     /* at the current net rate, until the process's
                               bound, else the node budget, else the memory
                               the kernel has available; < 0 = not growing */
} weir_alarm;

/* The alarms raised and not yet cleared: up to n into out; *count (may be
   NULL) = how many there are (may be more than n). Errors: EINVAL (rt NULL,
   out NULL with n > 0). */
WEIR_API int weir_alarms(weir_rt *rt, weir_alarm *out, size_t n, size_t *count);
/* "long_message_queue", "queue_growth", "mailbox_budget" ("unknown" out of
   range); static, never NULL. */
WEIR_API const char *weir_alarm_kind_name(weir_alarm_kind k);

/* pid receives every alarm raised or cleared from now on as WEIR_TAG_ALARM
   in handle_info (data: a weir_alarm). A second subscribe is a no-op; a
   subscriber that has ended is dropped at the next alarm. Errors: EINVAL
   (rt NULL), ENOPROC, ENOMEM. */
WEIR_API int weir_alarm_subscribe(weir_rt *rt, weir_pid pid);
/* Ends pid's subscription (pid may have ended). Errors: EINVAL (rt NULL),
   ENOTFOUND (not subscribed). */
WEIR_API int weir_alarm_unsubscribe(weir_rt *rt, weir_pid pid);

typedef struct weir_dead_letter { /* payload header of WEIR_TAG_DEAD_LETTER */
  weir_pid to;                    /* the intended receiver */
  uint32_t tag;                   /* the shed message's tag */
  uint32_t len;                   /* its length; the bytes follow this header */
  int reason; /* WEIR_EFULL (shed) or WEIR_ENOPROC (receiver gone) */
} weir_dead_letter;
/* pid receives shed and undeliverable messages as WEIR_TAG_DEAD_LETTER in
   handle_info. One subscriber per node: this replaces the previous one, and
   WEIR_PID_NONE removes it. A send refused with an error is no dead letter.
   Errors: EINVAL (rt NULL), ENOPROC. */
WEIR_API int weir_dead_letter_subscribe(weir_rt *rt, weir_pid pid);

/* ------------------------------------------------------------------------ */
/* Reports: crashes and supervisors                                          */
/* ------------------------------------------------------------------------ */

/* Every abnormal exit (a reason other than NORMAL and SHUTDOWN) makes one
   crash report; a supervised child's report waits (up to 5 s) for what its
   supervisor did, so it is one report, not two. A supervisor that gives up
   makes a report of its own. Each is logged (stderr or the log hook, rate
   limited: weir_rt_opts.report_rate, report_rate_proc; what is held back is
   counted and logged as one WEIR_REPORT_SUPPRESSED line per second) and
   kept in a bounded ring (weir_crash_reports, `weirctl crashes`). Making a
   report allocates nothing and never waits for the log. */

/* Severities (syslog's numbers). */
#define WEIR_LOG_NONE    (-1)
#define WEIR_LOG_ERROR   3 /* crash and supervisor reports */
#define WEIR_LOG_WARNING 4 /* suppressed-reports lines */
#define WEIR_LOG_INFO    6

typedef enum {
  WEIR_REPORT_CRASH = 0,  /* a process ended abnormally */
  WEIR_REPORT_SUPERVISOR, /* a supervisor gave up (restart intensity) */
  WEIR_REPORT_SUPPRESSED  /* `suppressed` reports were not logged */
} weir_report_kind;

typedef enum {
  WEIR_SUP_ACTION_NONE = 0,      /* no supervisor */
  WEIR_SUP_ACTION_RESTARTED,     /* as restarted_as */
  WEIR_SUP_ACTION_NOT_RESTARTED, /* temporary, or the node is stopping */
  WEIR_SUP_ACTION_GAVE_UP,       /* restart intensity exceeded */
  WEIR_SUP_ACTION_STOPPED,       /* it died while its supervisor stopped it */
  WEIR_SUP_ACTION_UNKNOWN        /* the supervisor did not say within 5 s */
} weir_sup_action;

#define WEIR_REPORT_HEAD 16 /* bytes of the message in hand kept */

typedef struct weir_report {
  weir_report_kind kind;
  uint64_t seq;              /* node-wide report number, from 1 */
  double time;               /* wall clock, seconds since the epoch */
  char node[64];             /* node name */
  weir_pid pid;              /* the process (SUPERVISOR: the supervisor) */
  char registered_name[64];  /* "" if none */
  char behaviour[64];        /* weir_server.name ("anonymous" if NULL) */
  char callback[32];         /* "handle_cast", "handle_call", "handle_info",
                                "exit_signal" (killed by a signal), or "" */
  weir_pid signal_from;      /* exit_signal: the sender (NONE: unknown) */
  int reason;                /* exit reason (weir_reason_name) */
  int has_msg;               /* 1: the msg_* fields hold the message in hand */
  uint32_t msg_tag, msg_len; /* its tag and user payload length */
  weir_pid msg_from;
  uint32_t msg_head_len; /* bytes in msg_head (<= WEIR_REPORT_HEAD) */
  uint8_t msg_head[WEIR_REPORT_HEAD];
  uint64_t queue_len;       /* messages queued at the exit */
  weir_pid supervisor;      /* NONE if unsupervised */
  char supervisor_name[64]; /* its registered name, or "" */
  char child_id[64];        /* the child spec id, or "" */
  weir_sup_action action;
  weir_pid restarted_as; /* RESTARTED: the new incarnation */
  int restarts;          /* restarts within max_seconds, this one included */
  int max_restarts, max_seconds; /* the supervisor's intensity */
  weir_pid child;                /* SUPERVISOR: the child whose exit it was */
  uint64_t suppressed;           /* SUPPRESSED: reports not logged */
} weir_report;

/* The newest reports kept by the node, newest first: up to n into out;
   *count (may be NULL) = how many were written. *total (may be NULL) = all
   reports made since the start (the ring keeps the last report_ring).
   Errors: EINVAL (rt NULL, out NULL with n > 0). */
WEIR_API int weir_crash_reports(weir_rt *rt, weir_report *out, size_t n,
                                size_t *count, uint64_t *total);
/* The report as one logfmt line (no newline) into buf of n bytes, truncated
   to fit; returns the full length, or EINVAL (r or buf NULL, n 0). */
WEIR_API int weir_report_format(const weir_report *r, char *buf, size_t n);
/* An exit reason as text: "normal", "shutdown", "kill", "killed", "noproc",
   an error's name for a negative code ("WEIR_EINVAL"; "error" if not in the
   list), "exit" for any other positive reason; static, never NULL. */
WEIR_API const char *weir_reason_name(int reason);
/* "restarted", "not_restarted", "gave_up", "stopped", "unknown", "none";
   static, never NULL. */
WEIR_API const char *weir_sup_action_name(weir_sup_action a);

#ifdef __cplusplus
}
#endif
#endif /* WEIR_H */
