package main

// spawn_call: the twin of bench/spawn_call.c and bench/beam/spawn_call.exs.
//
// (1) N idle servers: N goroutines, each blocked receiving on its own
//     (unbuffered) channel, keeping a call counter as its state, as the BEAM
//     Idle GenServer does. Figures: spawns per second, and bytes per
//     goroutine = growth of the resident set over the N spawns / N (the
//     goroutine's g, its initial stack, its channel), the probe weir-bench
//     uses. A `go` statement returns before the goroutine has run: unlike
//     GenServer.start and weir_spawn, it does not wait for an init.
// (2) CALLS calls to the first server from the main goroutine: a request
//     carries a reply channel made for it (buffered, so the server never
//     waits on a caller), as a method wrapping a server goroutine is
//     written; calls_per_s and us_per_call.

import (
	"fmt"
	"time"
)

type pingRequest struct {
	reply chan string
}

// idle is a server goroutine: it answers every request with "pong" until
// its channel is closed.
func idle(in <-chan pingRequest) {
	calls := 0
	for req := range in {
		calls++
		req.reply <- "pong"
	}
}

// call sends one request to srv and waits for the reply.
func call(srv chan<- pingRequest) string {
	reply := make(chan string, 1)
	srv <- pingRequest{reply: reply}
	return <-reply
}

func runSpawnCall(args []string) {
	n := arg(args[0], "N", 1)
	calls := arg(args[1], "CALLS", 1)

	servers := make([]chan pingRequest, n)
	for i := range servers { // touched now, not in the measurement
		servers[i] = nil
	}
	rss0 := rssBytes()
	t0 := time.Now()
	for i := range servers {
		servers[i] = make(chan pingRequest)
		go idle(servers[i])
	}
	d := time.Since(t0)
	rss1 := rssBytes()
	fmt.Printf("go spawn n=%d secs=%.6f spawns_per_s=%.0f bytes_per_process=%.0f bytes_measure=rss_delta\n",
		n, d.Seconds(), rate(n, d), perItem(rss0, rss1, n))

	srv := servers[0]
	t1 := time.Now()
	for i := uint64(0); i < calls; i++ {
		if r := call(srv); r != "pong" {
			fail("call: unexpected reply %q", r)
		}
	}
	d1 := time.Since(t1)
	fmt.Printf("go call round_trips=%d calls_per_s=%.0f us_per_call=%.3f\n",
		calls, rate(calls, d1), d1.Seconds()*1e6/float64(calls))
}
