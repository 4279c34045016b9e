package main

// fanin: the twin of bench/fanin.c and bench/beam/fanin.exs.
//
// P producer goroutines send M events each into the channel of ONE server
// goroutine; the figure is events per second from the first send to the
// last event received. Runs twice: with a struct payload (`go fanin`, the
// twin of weir's fixed-size event) and with BEAM's payload, a map built per
// event (`go fanin_map`), which allocates and so costs the collector.
//
// The producers are started before the clock and released together by
// closing a channel; when all have sent, the channel is closed and the
// server's range loop ends and reports its count, which must be P*M.

import (
	"fmt"
	"sync"
	"time"
)

// event is {:track, user_id, %{"k" => j}} as a struct.
type event struct {
	UserID uint64
	Key    string
	Value  int
}

// mapEvent is the same with BEAM's map: a fresh map per event.
type mapEvent struct {
	UserID uint64
	Data   map[string]int
}

func runFanin(args []string) {
	p := arg(args[0], "P", 1)
	m := arg(args[1], "M", 1)
	secs := fanin(p, m, func(id, j uint64) event {
		return event{UserID: id*m + j, Key: "k", Value: int(j)}
	})
	fmt.Printf("go fanin producers=%d msgs=%d secs=%.6f msgs_per_s=%.0f payload=struct\n",
		p, p*m, secs, float64(p*m)/secs)
	secs = fanin(p, m, func(id, j uint64) mapEvent {
		return mapEvent{UserID: id*m + j, Data: map[string]int{"k": int(j)}}
	})
	fmt.Printf("go fanin_map producers=%d msgs=%d secs=%.6f msgs_per_s=%.0f payload=map\n",
		p, p*m, secs, float64(p*m)/secs)
}

// fanin runs one fan-in of p*m events made by mk and returns its seconds.
func fanin[T any](p, m uint64, mk func(id, j uint64) T) float64 {
	in := make(chan T, serverQueue)
	handled := make(chan uint64)
	go func() { // the server: owns in, counts what it receives
		var n uint64
		for range in {
			n++
		}
		handled <- n
	}()

	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := uint64(1); i <= p; i++ {
		wg.Add(1)
		go func(id uint64) {
			defer wg.Done()
			<-start
			for j := uint64(1); j <= m; j++ {
				in <- mk(id, j)
			}
		}(i)
	}

	t0 := time.Now()
	close(start)
	wg.Wait()
	close(in)
	n := <-handled
	d := time.Since(t0)
	if n != p*m {
		fail("fanin: the server received %d events, not %d", n, p*m)
	}
	return d.Seconds()
}
