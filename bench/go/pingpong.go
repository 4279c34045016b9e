package main

// pingpong: the twin of bench/pingpong.c and bench/beam/pingpong.exs
// (Savina ping-pong).
//
// PAIRS pairs of goroutines; each pair shares two unbuffered channels, and
// the pinger sends on one and waits on the other, N times. An unbuffered
// channel is Go's rendezvous: the send hands the value straight to the
// parked receiver and readies it, which is the whole cost being measured.
// The pairs are started before the clock and released together.

import (
	"fmt"
	"sync"
	"time"
)

func runPingpong(args []string) {
	pairs := arg(args[0], "PAIRS", 1)
	n := arg(args[1], "N", 1)

	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := uint64(0); i < pairs; i++ {
		ping, pong := make(chan struct{}), make(chan struct{})
		go func() { // the ponger
			for range ping {
				pong <- struct{}{}
			}
		}()
		wg.Add(1)
		go func() { // the pinger
			defer wg.Done()
			<-start
			for j := uint64(0); j < n; j++ {
				ping <- struct{}{}
				<-pong
			}
			close(ping)
		}()
	}

	t0 := time.Now()
	close(start)
	wg.Wait()
	d := time.Since(t0)
	fmt.Printf("go pingpong pairs=%d round_trips=%d round_trips_per_s=%.0f\n",
		pairs, pairs*n, rate(pairs*n, d))
}
