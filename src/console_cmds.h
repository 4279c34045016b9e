/*
 * console_cmds.h: the console's commands, one list for the node and for
 * weirctl.
 *
 * The node's parser (console_parse.c) takes from it each request's name,
 * argument count and usage, and its `help` reply; weirctl
 * (tools/weirctl/args.c) takes from it its command names, its positional
 * argument counts, its usage errors and its --help lines. So a command
 * cannot be added to, renamed on or dropped from one side only: each row
 * also names its enum constants (WEIR__CMD_<ID> on the node, WEIRCTL_<ID>
 * in weirctl), and a row one side has no constant for breaks its build.
 *
 * WEIR__CONSOLE_CMDS(NODE, BOTH, CTL) expands one of three macros per
 * command, in the order both help texts list them:
 *
 *   NODE(name, ID, nargs, args, doc)
 *       a request that weirctl has no command of its own for (it sends
 *       trace_key for `trace --key`);
 *   BOTH(name, ID, nargs, args, doc, cmin, cmax, cargs, cdoc)
 *       a request that weirctl sends for its command of the same name;
 *   CTL(name, ID, cmin, cmax, cargs, cdoc)
 *       a weirctl command that is no request of its own (nodes reads the
 *       run dir, top repeats proc_count, web serves a dashboard).
 *
 * nargs, args, doc: the node's exact argument count, its usage ("" = no
 * arguments) and its help line. cmin..cmax, cargs, cdoc: weirctl's
 * positional arguments (its options aside), its usage and its --help text
 * ("\n" between the lines of a long one). The two sides word things apart
 * on purpose: weirctl has defaults and options (scheduler_usage [MS],
 * trace --count) where the protocol is strict and positional.
 *
 * Data only, no includes: weirctl, outside the library, includes it too.
 */
#ifndef WEIR_CONSOLE_CMDS_H
#define WEIR_CONSOLE_CMDS_H

/* clang-format off */
#define WEIR__CONSOLE_CMDS(NODE, BOTH, CTL)                                    \
  CTL("nodes", NODES, 0, 0, "",                                                \
      "live nodes in the run dir")                                             \
  BOTH("proc_count", PROC_COUNT, 2, "ATTR N",                                  \
       "top N processes by an attribute, largest first",                       \
       2, 2, "ATTR N",                                                         \
       "top N processes by ATTR")                                              \
  BOTH("proc_window", PROC_WINDOW, 3, "ATTR N MS",                             \
       "top N by an attribute's increase over MS ms",                          \
       3, 3, "ATTR N MS",                                                      \
       "top N by ATTR's increase over MS ms")                                  \
  BOTH("info", INFO, 1, "PID|NAME",                                            \
       "process_info of one process",                                          \
       1, 1, "PID|NAME",                                                       \
       "one process in detail")                                                \
  BOTH("partitions", PARTITIONS, 1, "NAME",                                    \
       "workers of a partition supervisor, hot keys",                          \
       1, 1, "NAME",                                                           \
       "workers of a partition supervisor")                                    \
  BOTH("node_stats", NODE_STATS, 0, "",                                        \
       "node-wide counters",                                                   \
       0, 0, "",                                                               \
       "node-wide counters")                                                   \
  BOTH("scheduler_usage", SCHEDULER_USAGE, 1, "MS",                            \
       "busy fraction of each scheduler over MS ms",                           \
       0, 1, "[MS]",                                                           \
       "scheduler busy fractions (default 1000)")                              \
  BOTH("alarms", ALARMS, 0, "",                                                \
       "active overload alarms",                                               \
       0, 0, "",                                                               \
       "active overload alarms")                                               \
  BOTH("metrics", METRICS, 0, "",                                              \
       "Prometheus text format, ends with a line # EOF",                       \
       0, 0, "",                                                               \
       "Prometheus text")                                                      \
  BOTH("crashes", CRASHES, 0, "",                                              \
       "the last crash and supervisor reports, newest first",                  \
       0, 0, "",                                                               \
       "the last crash and supervisor reports")                                \
  BOTH("tree", TREE, 0, "",                                                    \
       "supervisors: strategy, restarts, intensity left, children",           \
       0, 0, "",                                                               \
       "the supervision tree")                                                 \
  BOTH("trace", TRACE, 4, "PID|NAME N SECS TAGS",                              \
       "stream the messages a process takes, until N or SECS (TAGS: * or "     \
       "a,b,...); one JSON line each, then a summary",                         \
       1, 1, "PID|NAME [--count N] [--secs S] [--tag T,...] [--key K]",        \
       "print the messages a process takes, until N\n"                         \
       "(default 10, at most 10000) or S seconds\n"                            \
       "(default 10, at most 300); --key K: the worker\n"                      \
       "of partition supervisor NAME for key K")                               \
  NODE("trace_key", TRACE_KEY, 5, "NAME KEY N SECS TAGS",                      \
       "trace the worker of partition supervisor NAME that KEY routes to")     \
  CTL("top", TOP, 0, 0, "[--sort ATTR] [-n N] [--once]",                       \
      "live view, refreshed every second")                                     \
  CTL("web", WEB, 0, 0, "[--listen ADDR:PORT] [--token FILE]",              \
      "read-only dashboard of every live node over\n"                         \
      "HTTP (default 127.0.0.1:8086; any other\n"                             \
      "address needs --token)")                                                \
  BOTH("help", HELP, 0, "",                                                    \
       "this list",                                                            \
       0, 0, "",                                                               \
       "the node's command list")
/* clang-format on */

#endif
