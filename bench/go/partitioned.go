package main

// partitioned: the twin of bench/partitioned.c and
// bench/beam/partitioned.exs.
//
// One worker goroutine per core (BEAM's partitions = schedulers_online),
// each owning a buffered channel; P producers send M events each to the
// worker its key picks, key = (i*7919 + j) mod 100,000, worker = key mod
// partitions. Each worker spins W iterations per event. Go has no partition
// supervisor to route through: the producer indexes a slice of channels,
// which is what weir reports as direct_msgs_per_s, not its routed figure.

import (
	"fmt"
	"runtime"
	"sync"
	"time"
)

// keep holds the workers' spin results, so that the loops are not dead code.
var keep uint64

// spin is W iterations of work.
func spin(w uint64) uint64 {
	var acc uint64
	for k := uint64(0); k < w; k++ {
		acc += k ^ acc
	}
	return acc
}

func runPartitioned(args []string) {
	p := arg(args[0], "P", 1)
	m := arg(args[1], "M", 1)
	w := arg(args[2], "W", 0)
	parts := runtime.GOMAXPROCS(0)

	workers := make([]chan event, parts)
	counts := make([]uint64, parts)
	spun := make([]uint64, parts)
	var wwg sync.WaitGroup
	for k := range workers {
		workers[k] = make(chan event, serverQueue)
		wwg.Add(1)
		go func(k int) { // a worker: owns workers[k]
			defer wwg.Done()
			var n, acc uint64
			for range workers[k] {
				acc += spin(w)
				n++
			}
			counts[k], spun[k] = n, acc
		}(k)
	}

	start := make(chan struct{})
	var pwg sync.WaitGroup
	for i := uint64(1); i <= p; i++ {
		pwg.Add(1)
		go func(id uint64) {
			defer pwg.Done()
			<-start
			for j := uint64(1); j <= m; j++ {
				uid := (id*7919 + j) % 100000
				workers[uid%uint64(parts)] <- event{UserID: uid, Key: "k", Value: int(j)}
			}
		}(i)
	}

	t0 := time.Now()
	close(start)
	pwg.Wait()
	for _, ch := range workers {
		close(ch)
	}
	wwg.Wait()
	d := time.Since(t0)
	var n uint64
	for k, c := range counts {
		n += c
		keep += spun[k]
	}
	if n != p*m {
		fail("partitioned: the workers received %d events, not %d", n, p*m)
	}
	fmt.Printf("go partitioned partitions=%d producers=%d work=%d msgs=%d secs=%.6f msgs_per_s=%.0f\n",
		parts, p, w, n, d.Seconds(), rate(n, d))
}
