package gpu

import (
	"runtime"
	"sync"
	"testing"

	"tunelab/store"
)

func TestHubDeliversPerRun(t *testing.T) {
	h := NewHub()
	a, cancelA := h.Subscribe(1)
	b, cancelB := h.Subscribe(2)
	defer cancelA()
	defer cancelB()
	if h.Viewers(1) != 1 || h.Viewers(2) != 1 || h.Viewers(3) != 0 {
		t.Fatalf("viewers = %d, %d, %d", h.Viewers(1), h.Viewers(2), h.Viewers(3))
	}
	h.Publish(Event{RunID: 1, Kind: EventMetrics, Metrics: []store.MetricPoint{{Seq: 7, Name: "loss", Step: 1, Value: 2}}})
	h.Publish(Event{RunID: 3, Kind: EventStatus}) // nobody listens: must not block or panic
	e := <-a
	if e.Kind != EventMetrics || len(e.Metrics) != 1 || e.Metrics[0].Seq != 7 {
		t.Fatalf("got %+v", e)
	}
	select {
	case e := <-b:
		t.Fatalf("run 2's viewer got run 1's event %+v", e)
	default:
	}
}

func TestHubDropsSlowSubscriberOnly(t *testing.T) {
	h := NewHub()
	slow, cancelSlow := h.Subscribe(1)
	fast, cancelFast := h.Subscribe(1)
	defer cancelFast()

	got := make(chan int)
	go func() {
		n := 0
		for range fast {
			n++
			if n == subscriberBuffer+50 {
				break
			}
		}
		got <- n
	}()
	for i := range subscriberBuffer + 50 {
		if i >= subscriberBuffer {
			// Let the fast viewer catch up, so only the slow one overflows.
			for len(fast) > 0 {
				runtime.Gosched()
			}
		}
		h.Publish(Event{RunID: 1, Kind: EventLogs, Logs: []store.LogLine{{ID: int64(i)}}})
	}
	if n := <-got; n != subscriberBuffer+50 {
		t.Fatalf("fast viewer got %d events", n)
	}
	// The slow one kept what fitted, then its channel was closed.
	n := 0
	for range slow {
		n++
	}
	if n != subscriberBuffer {
		t.Fatalf("slow viewer got %d events before being dropped, want %d", n, subscriberBuffer)
	}
	if v := h.Viewers(1); v != 1 {
		t.Fatalf("viewers after drop = %d, want 1", v)
	}
	cancelSlow() // after a drop: no double close
	cancelSlow()
}

func TestHubCancelIsIdempotent(t *testing.T) {
	h := NewHub()
	ch, cancel := h.Subscribe(5)
	cancel()
	cancel()
	if _, ok := <-ch; ok {
		t.Fatal("channel open after cancel")
	}
	if h.Viewers(5) != 0 || len(h.topics) != 0 {
		t.Fatalf("topic left behind: %v", h.topics)
	}
	h.Publish(Event{RunID: 5}) // no subscribers left: no panic on a closed channel
}

func TestHubConcurrentUse(t *testing.T) {
	h := NewHub()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 200 {
				ch, cancel := h.Subscribe(int64(i % 3))
				select {
				case <-ch:
				default:
				}
				cancel()
			}
		})
		wg.Go(func() {
			for j := range 500 {
				h.Publish(Event{RunID: int64(j % 3), Kind: EventStatus})
				_ = h.Viewers(int64(j % 3))
			}
		})
	}
	wg.Wait()
	for id := range int64(3) {
		if v := h.Viewers(id); v != 0 {
			t.Fatalf("run %d has %d viewers after every cancel", id, v)
		}
	}
}
