// Command go-bench runs the Go twins of weir-bench's workloads (bench/*.c)
// and of the BEAM peer scripts (bench/beam/*.exs): same arguments, same
// output keys, one line `go NAME key=value ...` each, so bench/run.sh can
// put weir, BEAM, Go and CAF side by side.
//
//	go-bench fanin P M          P producers -> 1 server (struct, then map payload)
//	go-bench partitioned P M W  P producers -> one worker per core, by key
//	go-bench pingpong PAIRS N   ping-pong over unbuffered channels
//	go-bench spawn_call N CALLS N idle goroutines, then CALLS calls to one
//	go-bench backlog N MQD      bytes per queued event, drain vs stream
//
// The twins are written as Go is written: a "process" is a goroutine, a
// mailbox is a channel the server goroutine owns (buffered, capacity
// serverQueue, so a fast producer blocks rather than queueing without
// bound), a call is a request carrying its own reply channel, and
// completion is the usual close-the-channel-when-the-senders-are-done. See
// bench/README.md for what this favours and what it does not measure.
//
// Standard library only; GOMAXPROCS is the number of cores, as BEAM's
// schedulers_online and weir's scheduler count are.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// serverQueue is the capacity of a server goroutine's channel: enough to
// absorb bursts, small enough that a producer running ahead blocks.
const serverQueue = 1024

type command struct {
	args string // usage, after the command name
	run  func(args []string)
}

var commands = map[string]command{
	"fanin":       {"P M", runFanin},
	"partitioned": {"P M W", runPartitioned},
	"pingpong":    {"PAIRS N", runPingpong},
	"spawn_call":  {"N CALLS", runSpawnCall},
	"backlog":     {"N MQD", runBacklog},
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: go-bench COMMAND ARGS")
	for _, name := range []string{"fanin", "partitioned", "pingpong", "spawn_call", "backlog"} {
		fmt.Fprintf(os.Stderr, "  go-bench %s %s\n", name, commands[name].args)
	}
	os.Exit(2)
}

func main() {
	runtime.GOMAXPROCS(runtime.NumCPU())
	if len(os.Args) < 2 {
		usage()
	}
	cmd, ok := commands[os.Args[1]]
	if !ok || len(os.Args)-2 < len(strings.Fields(cmd.args)) {
		usage()
	}
	cmd.run(os.Args[2:])
}

// arg parses s as an unsigned integer >= min for the argument name, or
// exits with status 2.
func arg(s, name string, min uint64) uint64 {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v < min {
		fmt.Fprintf(os.Stderr, "go-bench: %s must be an integer >= %d, not %q\n", name, min, s)
		os.Exit(2)
	}
	return v
}

// fail reports a wrong result and exits with status 1.
func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "go-bench: "+format+"\n", a...)
	os.Exit(1)
}

// rssBytes is this process's resident set size (/proc/self/statm), the
// same probe as weir-bench's bench_rss_bytes.
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// perItem is (after - before) / n, 0 if the figure shrank.
func perItem(before, after, n uint64) float64 {
	if after <= before || n == 0 {
		return 0
	}
	return float64(after-before) / float64(n)
}

// rate is n per second over d.
func rate(n uint64, d time.Duration) float64 {
	return float64(n) / d.Seconds()
}
