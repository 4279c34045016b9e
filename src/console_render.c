/*
 * console_render.c: the console's replies, from a parsed request to text.
 *
 * Every reply is one JSON object on one line, but for `metrics`, which is
 * Prometheus text ending with "# EOF", and a trace, which is one JSON line
 * per message between a "started" and an "end" line. Renderers append to a
 * weir__sb and never fail half-way: a failed allocation leaves the buffer
 * marked oom and the server (console.c) answers "out of memory" instead.
 *
 * Invariants the clients rely on:
 *   - The output is valid JSON (or valid exposition text) whatever the
 *     runtime holds: names and functions are escaped, invalid UTF-8 becomes
 *     U+FFFD (JSON) or '?' (labels), a non-finite double prints as 0.
 *   - Values come from the public diagnostics API (weir_proc_count,
 *     weir_process_info, weir_node_stats, ...) and the runtime's counters,
 *     never from a process: rendering reads, it sends no message and takes
 *     no scheduler, so a drowning node can still be asked what drowns it.
 *   - A process that ended between being sampled and being described is
 *     left out of a list, not shown half-filled.
 * The field names are the protocol; weirctl (tools/weirctl/main.c) and
 * docs read them.
 */
#include "console.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define TOP_METRICS 10

/* ======================================================================== */
/* The buffer, JSON and Prometheus text                                     */
/* ======================================================================== */

void weir__sb_put(weir__sb *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *p = weir__grow(b->p, b->len + 1, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

void weir__sb_puts(weir__sb *b, const char *s) {
  weir__sb_put(b, s, strlen(s));
}

void weir__sb_printf(weir__sb *b, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (k < 0) return;
  weir__sb_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* A JSON string: quotes, backslash and control characters escaped; a byte
   that is not part of valid UTF-8 becomes U+FFFD, so the reply is always
   valid JSON whatever a process registered. */
static void sb_json_str(weir__sb *b, const char *s) {
  const unsigned char *u = (const unsigned char *)s;
  size_t n = strlen(s);
  weir__sb_put(b, "\"", 1);
  for (size_t i = 0; i < n;) {
    unsigned char c = u[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      weir__sb_put(b, e, 2);
      i++;
    } else if (c < 0x20 || c == 0x7F) {
      weir__sb_printf(b, "\\u%04x", c);
      i++;
    } else {
      size_t k = weir__console_utf8_len(u + i, n - i);
      if (k == 0) {
        weir__sb_puts(b, "\\ufffd");
        i++;
      } else {
        weir__sb_put(b, s + i, k);
        i += k;
      }
    }
  }
  weir__sb_put(b, "\"", 1);
}

static void sb_json_str_or_null(weir__sb *b, const char *s) {
  if (s && *s)
    sb_json_str(b, s);
  else
    weir__sb_puts(b, "null");
}

static void sb_pid(weir__sb *b, weir_pid pid) {
  char buf[32];
  weir_pid_format(pid, buf, sizeof buf);
  weir__sb_printf(b, "\"%s\"", buf);
}

static void sb_double(weir__sb *b, double d) {
  weir__sb_printf(b, "%.3f", isfinite(d) ? d : 0.0);
}

/* A Prometheus label value: backslash, quote and newline escaped; bytes of
   invalid UTF-8 become '?'. */
static void sb_prom_label(weir__sb *b, const char *s) {
  const unsigned char *u = (const unsigned char *)s;
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    if (u[i] == '\\' || u[i] == '"') {
      char e[2] = {'\\', (char)u[i]};
      weir__sb_put(b, e, 2);
      i++;
    } else if (u[i] == '\n') {
      weir__sb_puts(b, "\\n");
      i++;
    } else {
      size_t k = weir__console_utf8_len(u + i, n - i);
      if (k == 0 || u[i] < 0x20) {
        weir__sb_put(b, "?", 1);
        i++;
      } else {
        weir__sb_put(b, s + i, k);
        i += k;
      }
    }
  }
}

static void sb_pid_or_null(weir__sb *b, weir_pid pid) {
  if (weir_pid_is_none(pid))
    weir__sb_puts(b, "null");
  else
    sb_pid(b, pid);
}

void weir__sb_error(weir__sb *b, const char *msg) {
  weir__sb_puts(b, "{\"error\":");
  sb_json_str(b, msg);
  weir__sb_puts(b, "}");
}

/* ======================================================================== */
/* Commands                                                                  */
/* ======================================================================== */

/* The proc_count / proc_window array (docs/DIAGNOSTICS.md): processes
   that ended since they were sampled are left out. */
void weir__console_samples(weir_rt *rt, weir__sb *b, const weir_proc_sample *s,
                           size_t n) {
  weir__sb_puts(b, "[");
  int first = 1;
  for (size_t i = 0; i < n; i++) {
    weir_proc_info info;
    if (weir_process_info(rt, s[i].pid, &info) != WEIR_OK) continue;
    weir__sb_puts(b, first ? "{\"pid\":" : ",{\"pid\":");
    first = 0;
    sb_pid(b, s[i].pid);
    weir__sb_printf(b, ",\"value\":%llu,\"registered_name\":",
                    (unsigned long long)s[i].value);
    sb_json_str_or_null(b, info.registered_name);
    weir__sb_puts(b, ",\"current_function\":");
    sb_json_str(b, info.current_function);
    weir__sb_puts(b, ",\"initial_call\":");
    sb_json_str(b, info.initial_call);
    weir__sb_puts(b, "}");
  }
  weir__sb_puts(b, "]");
}

static void cmd_proc_count(weir_rt *rt, const weir__console_req *rq,
                           weir__sb *b) {
  weir_proc_sample *s = weir__calloc(rq->n, sizeof *s);
  size_t n = 0;
  if (!s || weir_proc_count(rt, rq->attr, rq->n, s, &n) != WEIR_OK) {
    weir__sb_error(b, s ? "proc_count failed" : "out of memory");
  } else {
    weir__console_samples(rt, b, s, n);
  }
  weir__free(s);
}

static void info_json(weir__sb *b, const weir_proc_info *in) {
  weir__sb_puts(b, "{\"pid\":");
  sb_pid(b, in->pid);
  weir__sb_puts(b, ",\"registered_name\":");
  sb_json_str_or_null(b, in->registered_name);
  weir__sb_puts(b, ",\"initial_call\":");
  sb_json_str(b, in->initial_call);
  weir__sb_puts(b, ",\"current_function\":");
  sb_json_str(b, in->current_function);
  weir__sb_printf(b, ",\"status\":\"%s\"", weir_status_name(in->status));
  weir__sb_printf(b,
                  ",\"message_queue_len\":%llu,\"mailbox_bytes\":%llu,"
                  "\"memory\":%llu,\"reductions\":%llu",
                  (unsigned long long)in->message_queue_len,
                  (unsigned long long)in->mailbox_bytes,
                  (unsigned long long)in->memory,
                  (unsigned long long)in->reductions);
  weir__sb_printf(
      b,
      ",\"messages_in\":%llu,\"messages_out\":%llu,\"dropped\":%llu,"
      "\"queue_high_water\":%llu,\"max_queue_len\":%llu",
      (unsigned long long)in->messages_in, (unsigned long long)in->messages_out,
      (unsigned long long)in->dropped, (unsigned long long)in->queue_high_water,
      (unsigned long long)in->max_queue_len);
  weir__sb_puts(b, ",\"in_rate\":");
  sb_double(b, in->in_rate);
  weir__sb_puts(b, ",\"out_rate\":");
  sb_double(b, in->out_rate);
  weir__sb_puts(b, ",\"supervisor\":");
  if (weir_pid_is_none(in->supervisor))
    weir__sb_puts(b, "null");
  else
    sb_pid(b, in->supervisor);
  if (in->partition >= 0)
    weir__sb_printf(b, ",\"partition\":%d", in->partition);
  else
    weir__sb_puts(b, ",\"partition\":null");
  weir__sb_printf(b, ",\"blocking\":%s}", in->blocking ? "true" : "false");
}

static void cmd_info(weir_rt *rt, const weir__console_req *rq, weir__sb *b) {
  weir_pid pid = rq->pid;
  if (!rq->has_pid && weir_whereis(rt, rq->name, &pid) != WEIR_OK) {
    char msg[128];
    snprintf(msg, sizeof msg, "no process registered as '%s'", rq->name);
    weir__sb_error(b, msg);
    return;
  }
  weir_proc_info in;
  if (weir_process_info(rt, pid, &in) != WEIR_OK) {
    weir__sb_error(b, "no such process");
    return;
  }
  info_json(b, &in);
}

static void cmd_partitions(weir_rt *rt, const weir__console_req *rq,
                           weir__sb *b) {
  weir_pid ps;
  char msg[160];
  if (weir_whereis(rt, rq->name, &ps) != WEIR_OK) {
    snprintf(msg, sizeof msg, "no process registered as '%s'", rq->name);
    weir__sb_error(b, msg);
    return;
  }
  int np = weir_partitions(rt, ps);
  if (np < 0) {
    snprintf(msg, sizeof msg, "'%s' is not a partition supervisor (%s)",
             rq->name, weir_strerror(np));
    weir__sb_error(b, msg);
    return;
  }
  if (np > 4096) np = 4096;
  weir__sb_puts(b, "{\"name\":");
  sb_json_str(b, rq->name);
  weir__sb_puts(b, ",\"supervisor\":");
  sb_pid(b, ps);
  weir__sb_printf(b, ",\"count\":%d,\"partitions\":[", np);
  for (int i = 0; i < np; i++) {
    weir_pid w;
    weir_proc_info in;
    weir__sb_printf(b, "%s{\"partition\":%d,\"pid\":", i ? "," : "", i);
    if (weir_partition_whereis(rt, ps, (uint64_t)i, &w) != WEIR_OK ||
        weir_process_info(rt, w, &in) != WEIR_OK) {
      weir__sb_puts(b, "null,\"status\":\"down\"}");
      continue;
    }
    sb_pid(b, w);
    weir__sb_printf(
        b,
        ",\"status\":\"%s\",\"message_queue_len\":%llu,"
        "\"mailbox_bytes\":%llu,\"dropped\":%llu,\"in_rate\":",
        weir_status_name(in.status), (unsigned long long)in.message_queue_len,
        (unsigned long long)in.mailbox_bytes, (unsigned long long)in.dropped);
    sb_double(b, in.in_rate);
    weir__sb_puts(b, ",\"out_rate\":");
    sb_double(b, in.out_rate);
    weir__sb_puts(b, ",\"current_function\":");
    sb_json_str(b, in.current_function);
    weir__sb_puts(b, ",\"hot_keys\":[");
    weir_hot_key hk[5];
    size_t nk = 0;
    if (weir_partition_hot_keys(rt, ps, (unsigned)i, hk, 5, &nk) != WEIR_OK)
      nk = 0;
    for (size_t k = 0; k < nk && k < 5; k++)
      weir__sb_printf(b, "%s{\"key\":%llu,\"count\":%llu}", k ? "," : "",
                      (unsigned long long)hk[k].key,
                      (unsigned long long)hk[k].count);
    weir__sb_puts(b, "]}");
  }
  weir__sb_puts(b, "]}");
}

static void cmd_node_stats(weir_rt *rt, weir__sb *b) {
  weir_stats s;
  if (weir_node_stats(rt, &s) != WEIR_OK) {
    weir__sb_error(b, "node_stats failed");
    return;
  }
  weir__sb_puts(b, "{\"node\":");
  sb_json_str(b, rt->node_name);
  weir__sb_printf(
      b,
      ",\"processes\":%llu,\"max_processes\":%llu,\"spawned\":%llu,"
      "\"exited\":%llu,\"crashed\":%llu,\"messages_sent\":%llu",
      (unsigned long long)s.processes, (unsigned long long)s.max_processes,
      (unsigned long long)s.spawned, (unsigned long long)s.exited,
      (unsigned long long)s.crashed, (unsigned long long)s.messages_sent);
  weir__sb_printf(
      b,
      ",\"queued_messages\":%llu,\"queued_bytes\":%llu,"
      "\"mailbox_budget\":%llu,\"dropped\":%llu,\"dead_letters\":%llu",
      (unsigned long long)s.queued_messages, (unsigned long long)s.queued_bytes,
      (unsigned long long)s.mailbox_budget, (unsigned long long)s.dropped,
      (unsigned long long)s.dead_letters);
  weir__sb_printf(
      b,
      ",\"alarms_active\":%llu,\"rss_bytes\":%llu,\"schedulers\":%u,"
      "\"io_threads_live\":%u,\"io_threads_max\":%u,\"uptime_s\":",
      (unsigned long long)s.alarms_active, (unsigned long long)s.rss_bytes,
      s.schedulers, s.io_threads_live, s.io_threads_max);
  sb_double(b, s.uptime_s);
  weir__sb_puts(b, "}");
}

static void cmd_alarms(weir_rt *rt, weir__sb *b) {
  enum { MAX_LISTED = 256 };
  weir_alarm *al = weir__calloc(MAX_LISTED, sizeof *al);
  size_t n = 0;
  if (!al || weir_alarms(rt, al, MAX_LISTED, &n) != WEIR_OK) {
    weir__sb_error(b, al ? "alarms failed" : "out of memory");
    weir__free(al);
    return;
  }
  weir__sb_printf(b, "{\"alarms_active\":%zu,\"alarms\":[", n);
  for (size_t i = 0; i < n && i < MAX_LISTED; i++) {
    const weir_alarm *x = &al[i];
    weir__sb_printf(b, "%s{\"kind\":\"%s\",\"pid\":", i ? "," : "",
                    weir_alarm_kind_name(x->kind));
    if (weir_pid_is_none(x->pid))
      weir__sb_puts(b, "null");
    else
      sb_pid(b, x->pid);
    weir__sb_puts(b, ",\"registered_name\":");
    sb_json_str_or_null(b, x->registered_name);
    weir__sb_puts(b, ",\"current_function\":");
    sb_json_str(b, x->current_function);
    weir__sb_printf(b, ",\"queue_len\":%llu,\"in_rate\":",
                    (unsigned long long)x->queue_len);
    sb_double(b, x->in_rate);
    weir__sb_puts(b, ",\"out_rate\":");
    sb_double(b, x->out_rate);
    weir__sb_puts(b, ",\"secs_to_limit\":");
    if (x->secs_to_limit < 0 || !isfinite(x->secs_to_limit))
      weir__sb_puts(b, "null");
    else
      sb_double(b, x->secs_to_limit);
    weir__sb_puts(b, "}");
  }
  weir__sb_puts(b, "]}");
  weir__free(al);
}

static void report_json(weir__sb *b, const weir_report *r) {
  static const char *const kinds[] = {"crash", "supervisor", "suppressed"};
  weir__sb_printf(b, "{\"seq\":%llu,\"kind\":\"%s\",\"time\":%.3f,\"pid\":",
                  (unsigned long long)r->seq, kinds[r->kind % 3], r->time);
  sb_pid_or_null(b, r->pid);
  weir__sb_puts(b, ",\"registered_name\":");
  sb_json_str_or_null(b, r->registered_name);
  weir__sb_puts(b, ",\"behaviour\":");
  sb_json_str(b, r->behaviour);
  weir__sb_puts(b, ",\"callback\":");
  sb_json_str_or_null(b, r->callback);
  weir__sb_puts(b, ",\"signal_from\":");
  sb_pid_or_null(b, r->signal_from);
  weir__sb_printf(b, ",\"reason\":\"%s\",\"code\":%d,\"message\":",
                  weir_reason_name(r->reason), r->reason);
  if (r->has_msg) {
    weir__sb_printf(b, "{\"tag\":%u,\"len\":%u,\"from\":", r->msg_tag,
                    r->msg_len);
    sb_pid_or_null(b, r->msg_from);
    weir__sb_puts(b, ",\"head\":\"");
    for (uint32_t i = 0; i < r->msg_head_len && i < WEIR_REPORT_HEAD; i++)
      weir__sb_printf(b, "%02x", r->msg_head[i]);
    weir__sb_puts(b, "\"}");
  } else {
    weir__sb_puts(b, "null");
  }
  weir__sb_printf(b, ",\"queue_len\":%llu,\"supervisor\":",
                  (unsigned long long)r->queue_len);
  sb_pid_or_null(b, r->supervisor);
  weir__sb_puts(b, ",\"supervisor_name\":");
  sb_json_str_or_null(b, r->supervisor_name);
  weir__sb_puts(b, ",\"child_id\":");
  sb_json_str_or_null(b, r->child_id);
  weir__sb_printf(b, ",\"action\":\"%s\",\"restarted_as\":",
                  weir_sup_action_name(r->action));
  sb_pid_or_null(b, r->restarted_as);
  weir__sb_printf(b,
                  ",\"restarts\":%d,\"max_restarts\":%d,\"max_seconds\":%d,"
                  "\"child\":",
                  r->restarts, r->max_restarts, r->max_seconds);
  sb_pid_or_null(b, r->child);
  weir__sb_puts(b, "}");
}

static void cmd_crashes(weir_rt *rt, weir__sb *b) {
  size_t cap = rt->opts.report_ring ? rt->opts.report_ring : 64, n = 0;
  uint64_t total = 0, other, suppressed;
  weir_report *r = weir__calloc(cap, sizeof *r);
  if (!r || weir_crash_reports(rt, r, cap, &n, &total) != WEIR_OK) {
    weir__sb_error(b, r ? "crashes failed" : "out of memory");
    weir__free(r);
    return;
  }
  weir__report_count none;
  weir__report_counts(rt, &none, 0, &other, &suppressed);
  weir__sb_puts(b, "{\"node\":");
  sb_json_str(b, rt->node_name);
  weir__sb_printf(b,
                  ",\"total\":%llu,\"suppressed\":%llu,\"kept\":%zu,"
                  "\"reports\":[",
                  (unsigned long long)total, (unsigned long long)suppressed, n);
  for (size_t i = 0; i < n; i++) {
    if (i) weir__sb_puts(b, ",");
    report_json(b, &r[i]);
  }
  weir__sb_puts(b, "]}");
  weir__free(r);
}

/* tree: every supervisor, its figures (weir_supervisor_stats) and its
   children, from one pass over the processes; nothing is asked of a
   supervisor, so a busy one is shown as it is. A flat list, each entry
   naming its parent: the client draws the tree. A child's restarts are
   those of its spec, from its slot's extras (sup.c keeps them there). */
#define TREE_MAX_PROCS 65536
typedef struct tree_proc {
  weir_pid pid, sup;
  int is_sup;
} tree_proc;

static uint32_t child_restarts(weir_rt *rt, weir_pid pid) {
  weir__proc *p = weir__proc_get(rt, pid);
  weir__slotx *sx = p ? WEIR__LD(p->x) : NULL;
  return sx ? WEIR__LD(sx->child_restarts) : 0;
}

static void tree_child(weir_rt *rt, weir__sb *b, const tree_proc *t,
                       int first) {
  weir_proc_info in;
  if (weir_process_info(rt, t->pid, &in) != WEIR_OK) return;
  weir__sb_puts(b, first ? "{\"pid\":" : ",{\"pid\":");
  sb_pid(b, t->pid);
  weir__sb_puts(b, ",\"registered_name\":");
  sb_json_str_or_null(b, in.registered_name);
  weir__sb_puts(b, ",\"initial_call\":");
  sb_json_str(b, in.initial_call);
  weir__sb_puts(b, ",\"current_function\":");
  sb_json_str(b, in.current_function);
  weir__sb_printf(b,
                  ",\"supervisor\":%s,\"restarts\":%u,"
                  "\"message_queue_len\":%llu,\"partition\":",
                  t->is_sup ? "true" : "false", child_restarts(rt, t->pid),
                  (unsigned long long)in.message_queue_len);
  if (in.partition >= 0)
    weir__sb_printf(b, "%d}", in.partition);
  else
    weir__sb_puts(b, "null}");
}

static void cmd_tree(weir_rt *rt, weir__sb *b) {
  weir_stats ns;
  size_t cap = 64, n = 0, nt = 0;
  if (weir_node_stats(rt, &ns) == WEIR_OK) cap += (size_t)ns.processes;
  if (cap > TREE_MAX_PROCS) cap = TREE_MAX_PROCS;
  weir_proc_sample *s = weir__calloc(cap, sizeof *s);
  tree_proc *t = weir__calloc(cap, sizeof *t);
  if (!s || !t ||
      weir_proc_count(rt, WEIR_ATTR_MEMORY, cap, s, &n) != WEIR_OK) {
    weir__sb_error(b, s && t ? "tree failed" : "out of memory");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    weir_proc_info in;
    weir_sup_stats st;
    if (weir_process_info(rt, s[i].pid, &in) != WEIR_OK) continue;
    t[nt].pid = s[i].pid;
    t[nt].sup = in.supervisor;
    t[nt].is_sup = weir_supervisor_stats(rt, s[i].pid, &st) == WEIR_OK;
    nt++;
  }
  weir__sb_puts(b, "{\"node\":");
  sb_json_str(b, rt->node_name);
  weir__sb_printf(b, ",\"truncated\":%s,\"supervisors\":[",
                  n == cap && cap == TREE_MAX_PROCS ? "true" : "false");
  int first = 1;
  for (size_t i = 0; i < nt; i++) {
    weir_sup_stats st;
    weir_proc_info in;
    if (!t[i].is_sup || weir_supervisor_stats(rt, t[i].pid, &st) != WEIR_OK ||
        weir_process_info(rt, t[i].pid, &in) != WEIR_OK)
      continue;
    weir__sb_puts(b, first ? "{\"pid\":" : ",{\"pid\":");
    first = 0;
    sb_pid(b, t[i].pid);
    weir__sb_puts(b, ",\"registered_name\":");
    sb_json_str_or_null(b, in.registered_name);
    weir__sb_puts(b, ",\"parent\":");
    sb_pid_or_null(b, in.supervisor);
    weir__sb_printf(b,
                    ",\"strategy\":\"%s\",\"max_restarts\":%d,"
                    "\"max_seconds\":%d,\"restarts\":%llu,"
                    "\"restarts_recent\":%d,\"intensity_left\":%d,"
                    "\"message_queue_len\":%llu,\"children\":[",
                    weir_strategy_name(st.strategy), st.max_restarts,
                    st.max_seconds, (unsigned long long)st.restarts,
                    st.restarts_recent, st.intensity_left,
                    (unsigned long long)in.message_queue_len);
    size_t before = b->len;
    for (size_t j = 0; j < nt; j++)
      if (weir_pid_eq(t[j].sup, t[i].pid))
        tree_child(rt, b, &t[j], b->len == before);
    weir__sb_puts(b, "]}");
  }
  weir__sb_printf(b, "],\"processes_seen\":%zu}", nt);
out:
  weir__free(s);
  weir__free(t);
}

static void cmd_help(weir__sb *b) {
  weir__sb_puts(b, "{\"commands\":[");
  for (size_t i = 0; i < WEIR__CMD__COUNT; i++) {
    const weir__console_cmd_info *ci = &weir__console_cmds[i];
    weir__sb_printf(b,
                    "%s{\"name\":\"%s\",\"args\":\"%s\",\"doc\":", i ? "," : "",
                    ci->name, ci->args);
    sb_json_str(b, ci->doc);
    weir__sb_puts(b, "}");
  }
  weir__sb_puts(b, "],\"attributes\":[");
  for (int a = 0; a < WEIR_ATTR__COUNT; a++)
    weir__sb_printf(b, "%s\"%s\"", a ? "," : "", weir_attr_name((weir_attr)a));
  weir__sb_printf(b, "],\"max_line\":%d,\"max_n\":%d,\"max_ms\":%d}",
                  WEIR__CONSOLE_LINE_MAX, WEIR__CONSOLE_MAX_N,
                  WEIR__CONSOLE_MAX_MS);
}

static void prom_metric(weir__sb *b, const char *name, const char *type,
                        const char *help, uint64_t v) {
  weir__sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name,
                  type, name, (unsigned long long)v);
}

static void prom_top(weir_rt *rt, weir__sb *b, weir_attr attr, const char *name,
                     const char *help) {
  weir_proc_sample s[TOP_METRICS];
  size_t n = 0;
  if (weir_proc_count(rt, attr, TOP_METRICS, s, &n) != WEIR_OK) n = 0;
  weir__sb_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
  for (size_t i = 0; i < n; i++) {
    weir_proc_info in;
    if (weir_process_info(rt, s[i].pid, &in) != WEIR_OK) continue;
    char pid[32];
    weir_pid_format(s[i].pid, pid, sizeof pid);
    weir__sb_printf(b, "%s{pid=\"%s\",name=\"", name, pid);
    sb_prom_label(b, in.registered_name);
    weir__sb_puts(b, "\",initial_call=\"");
    sb_prom_label(b, in.initial_call);
    weir__sb_printf(b, "\"} %llu\n", (unsigned long long)s[i].value);
  }
}

static void cmd_metrics(weir_rt *rt, weir__sb *b) {
  weir_stats s;
  if (weir_node_stats(rt, &s) != WEIR_OK) memset(&s, 0, sizeof s);
  prom_metric(b, "weir_processes", "gauge", "Live processes.", s.processes);
  prom_metric(b, "weir_processes_max", "gauge", "Process table capacity.",
              s.max_processes);
  prom_metric(b, "weir_messages_queued", "gauge",
              "Messages queued in all mailboxes.", s.queued_messages);
  prom_metric(b, "weir_mailbox_bytes", "gauge",
              "Payload bytes queued in all mailboxes.", s.queued_bytes);
  prom_metric(b, "weir_mailbox_budget_bytes", "gauge",
              "Node budget for queued bytes (0 = none).", s.mailbox_budget);
  prom_metric(b, "weir_messages_sent_total", "counter",
              "Messages ever sent to a mailbox.", s.messages_sent);
  prom_metric(b, "weir_dropped_total", "counter",
              "Messages shed by overflow policies.", s.dropped);
  prom_metric(b, "weir_dead_letters_total", "counter",
              "Messages that could not be delivered.", s.dead_letters);
  prom_metric(b, "weir_spawned_total", "counter", "Processes spawned.",
              s.spawned);
  prom_metric(b, "weir_exited_total", "counter", "Processes ended.", s.exited);
  prom_metric(b, "weir_crashed_total", "counter", "Processes ended by a crash.",
              s.crashed);
  prom_metric(b, "weir_alarms_active", "gauge", "Overload alarms raised now.",
              s.alarms_active);
  prom_metric(b, "weir_rss_bytes", "gauge", "Resident set size of the node.",
              s.rss_bytes);
  prom_metric(b, "weir_schedulers", "gauge", "Scheduler threads.",
              s.schedulers);
  prom_metric(b, "weir_io_threads", "gauge", "Live threads of the I/O pool.",
              s.io_threads_live);
  weir__sb_puts(b, "# HELP weir_uptime_seconds Time since the node started.\n"
                   "# TYPE weir_uptime_seconds gauge\nweir_uptime_seconds ");
  sb_double(b, s.uptime_s);
  weir__sb_puts(b, "\n");
  enum { MAX_BEH = 64 };
  weir__report_count rc[MAX_BEH];
  uint64_t other = 0, suppressed = 0;
  size_t nb = weir__report_counts(rt, rc, MAX_BEH, &other, &suppressed);
  weir__sb_puts(b, "# HELP weir_crashes_total Crash reports by behaviour.\n"
                   "# TYPE weir_crashes_total counter\n");
  for (size_t i = 0; i < nb; i++) {
    weir__sb_puts(b, "weir_crashes_total{behaviour=\"");
    sb_prom_label(b, rc[i].behaviour);
    weir__sb_printf(b, "\"} %llu\n", (unsigned long long)rc[i].n);
  }
  if (other)
    weir__sb_printf(b, "weir_crashes_total{behaviour=\"(other)\"} %llu\n",
                    (unsigned long long)other);
  prom_metric(b, "weir_reports_suppressed_total", "counter",
              "Crash and supervisor reports the rate limits kept out of the "
              "log.",
              suppressed);
  if (rt->opts.metrics_extra) { /* the application's own (weir_rt_opts) */
    char *extra = rt->opts.metrics_extra(rt->opts.metrics_ud);
    if (extra) {
      weir__sb_puts(b, extra);
      if (extra[0] && extra[strlen(extra) - 1] != '\n') weir__sb_puts(b, "\n");
      free(extra);
    }
  }
  prom_top(rt, b, WEIR_ATTR_MESSAGE_QUEUE_LEN, "weir_process_message_queue_len",
           "Mailbox length of the processes with the longest queues.");
  prom_top(rt, b, WEIR_ATTR_MAILBOX_BYTES, "weir_process_mailbox_bytes",
           "Queued bytes of the processes with the most queued bytes.");
  prom_top(rt, b, WEIR_ATTR_MEMORY, "weir_process_memory_bytes",
           "Memory of the processes that use the most.");
  weir__sb_puts(b, "# EOF");
}

void weir__console_reply(weir_rt *rt, const weir__console_req *rq,
                         weir__sb *b) {
  switch (rq->cmd) {
  case WEIR__CMD_PROC_COUNT:
    cmd_proc_count(rt, rq, b);
    break;
  case WEIR__CMD_INFO:
    cmd_info(rt, rq, b);
    break;
  case WEIR__CMD_PARTITIONS:
    cmd_partitions(rt, rq, b);
    break;
  case WEIR__CMD_NODE_STATS:
    cmd_node_stats(rt, b);
    break;
  case WEIR__CMD_ALARMS:
    cmd_alarms(rt, b);
    break;
  case WEIR__CMD_METRICS:
    cmd_metrics(rt, b);
    break;
  case WEIR__CMD_CRASHES:
    cmd_crashes(rt, b);
    break;
  case WEIR__CMD_TREE:
    cmd_tree(rt, b);
    break;
  case WEIR__CMD_HELP:
    cmd_help(b);
    break;
  case WEIR__CMD_PROC_WINDOW: /* console.c runs these itself */
  case WEIR__CMD_SCHEDULER_USAGE:
  case WEIR__CMD_TRACE:
  case WEIR__CMD_TRACE_KEY:
    weir__sb_error(b, "not a request answered at once");
    break;
  }
}

void weir__console_sched_usage(weir__sb *b, uint32_t ms, const double *busy_ms,
                               size_t ns) {
  double total = 0;
  weir__sb_printf(b, "{\"ms\":%u,\"schedulers\":[", ms);
  for (size_t i = 0; i < ns; i++) {
    double u = busy_ms[i] / ms;
    total += u;
    weir__sb_puts(b, i ? "," : "");
    sb_double(b, u);
  }
  weir__sb_puts(b, "],\"total\":");
  sb_double(b, ns ? total / (double)ns : 0.0);
  weir__sb_puts(b, "}");
}

/* ======================================================================== */
/* Trace lines                                                               */
/* ======================================================================== */

void weir__console_trace_started(weir__sb *b, const weir__console_req *rq,
                                 weir_pid pid) {
  weir__sb_puts(b, "{\"trace\":\"started\",\"pid\":");
  sb_pid(b, pid);
  weir__sb_printf(b, ",\"count\":%u,\"secs\":%u,\"tags\":", rq->n, rq->secs);
  if (!rq->ntags) {
    weir__sb_puts(b, "null");
  } else {
    for (unsigned i = 0; i < rq->ntags; i++)
      weir__sb_printf(b, "%s%u", i ? "," : "[", rq->tags[i]);
    weir__sb_puts(b, "]");
  }
  if (rq->cmd == WEIR__CMD_TRACE_KEY) {
    weir__sb_puts(b, ",\"key\":");
    sb_json_str(b, rq->key_text);
  }
  weir__sb_puts(b, "}\n");
}

static const char *kind_text(uint8_t kind) {
  switch (kind) {
  case WEIR__K_CAST:
    return "cast";
  case WEIR__K_CALL:
    return "call";
  case WEIR__K_REPLY:
    return "reply";
  case WEIR__K_EXIT:
    return "exit";
  case WEIR__K_DOWN:
    return "down";
  case WEIR__K_TIMEOUT:
    return "timeout";
  default:
    return "info";
  }
}

void weir__console_trace_ev(weir__sb *b, const weir__trace_ev *e) {
  weir__sb_printf(b,
                  "{\"t\":%llu.%06llu,\"kind\":\"%s\",\"tag\":%u,\"len\":%u,"
                  "\"from\":",
                  (unsigned long long)(e->t_ns / 1000000000ull),
                  (unsigned long long)(e->t_ns % 1000000000ull / 1000ull),
                  kind_text(e->kind), e->tag, e->len);
  sb_pid_or_null(b, (weir_pid){e->from});
  weir__sb_puts(b, ",\"head\":\"");
  for (unsigned i = 0; i < e->head_len && i < sizeof e->head; i++)
    weir__sb_printf(b, "%02x", e->head[i]);
  weir__sb_puts(b, "\"}\n");
}
