package main

// backlog: the twin of bench/backlog.c and bench/beam/backlog.exs.
//
// (a) A channel made with room for all N events is filled while its server
//     goroutine is held back (it waits on a release channel before its
//     first receive). vm_bytes_per_msg = growth of the resident set from
//     before the channel was made to after it was filled, / N: a Go channel
//     is one array of N elements allocated up front, so this is the size of
//     the element (the struct, strings as headers pointing at constants).
// (b) The server is released and drains it: drain_msgs_per_s.
// (c) A fresh server with the ordinary channel (capacity serverQueue)
//     receives N events sent while it runs: stream_msgs_per_s.
//
// As in weir-bench, (a) runs first on a fresh process. MQD (BEAM's
// message_queue_data) is accepted and printed for symmetry.

import (
	"fmt"
	"time"
	"unsafe"
)

// trackEvent is {:track, j, %{"event" => "click", "page" => "/home", "n" => j}}.
type trackEvent struct {
	UserID uint64
	Event  string
	Page   string
	N      int
}

// slowServer receives from in once release is closed (nil: at once), reads
// each payload a little, and sends its count on done when in is closed.
func slowServer(in <-chan trackEvent, release <-chan struct{}, done chan<- uint64) {
	if release != nil {
		<-release
	}
	var n, touched uint64
	for ev := range in {
		touched += uint64(ev.N) + uint64(ev.Event[0])
		n++
	}
	keep += touched
	done <- n
}

func sendEvents(ch chan<- trackEvent, n uint64) {
	for j := uint64(1); j <= n; j++ {
		ch <- trackEvent{UserID: j, Event: "click", Page: "/home", N: int(j)}
	}
	close(ch)
}

func runBacklog(args []string) {
	n := arg(args[0], "N", 1)
	mqd := args[1]

	// (a) fill a held-back server's channel.
	rss0 := rssBytes()
	backlog := make(chan trackEvent, n)
	release, done := make(chan struct{}), make(chan uint64)
	go slowServer(backlog, release, done)
	sendEvents(backlog, n)
	queued := uint64(len(backlog))
	rss1 := rssBytes()

	// (b) drain it.
	t1 := time.Now()
	close(release)
	got := <-done
	drain := time.Since(t1)
	if got != n {
		fail("backlog: the server drained %d events, not %d", got, n)
	}

	// (c) stream into a fresh server.
	stream := make(chan trackEvent, serverQueue)
	go slowServer(stream, nil, done)
	t0 := time.Now()
	sendEvents(stream, n)
	got = <-done
	streamd := time.Since(t0)
	if got != n {
		fail("backlog: the server received %d events, not %d", got, n)
	}

	sr, dr := rate(n, streamd), rate(n, drain)
	fmt.Printf("go backlog mqd=%s queued=%d vm_bytes_per_msg=%.1f stream_msgs_per_s=%.0f "+
		"drain_msgs_per_s=%.0f elem_bytes=%d drain_ratio=%.3f\n",
		mqd, queued, perItem(rss0, rss1, queued), sr, dr, unsafe.Sizeof(trackEvent{}), dr/sr)
}
