package gpu

import (
	"sync"

	"tunelab/store"
)

// EventKind says what an Event is news of.
type EventKind string

// Event kinds a hub carries.
const (
	EventStatus   EventKind = "status"
	EventMetrics  EventKind = "metrics"
	EventLogs     EventKind = "logs"
	EventSnapshot EventKind = "snapshot"
)

// Event is news about one run for its live viewers. Metrics and Logs are shared by every
// subscriber and must be treated as read-only.
type Event struct {
	RunID   int64
	Kind    EventKind
	Metrics []store.MetricPoint
	Logs    []store.LogLine
	// Frame is the metrics as one ready SSE frame, encoded once for every viewer.
	Frame []byte
}

// subscriberBuffer is how far a viewer may fall behind before it is dropped (it then
// resumes from the store). Every idle viewer holds the buffer: 64 pointers, 512 bytes.
const subscriberBuffer = 64

// Hub fans events out to the viewers of each run, one per server process. A viewer that
// cannot keep up is dropped (its channel is closed) instead of slowing everyone else; it
// resumes from the store by Last-Event-ID.
type Hub struct {
	mu     sync.Mutex
	topics map[int64]map[*subscriber]struct{}
}

type subscriber struct{ ch chan *Event }

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{topics: map[int64]map[*subscriber]struct{}{}}
}

// Subscribe starts receiving a run's events. The channel is closed when cancel is called
// or when the subscriber fell too far behind; cancel may be called any number of times.
func (h *Hub) Subscribe(runID int64) (events <-chan *Event, cancel func()) {
	s := &subscriber{ch: make(chan *Event, subscriberBuffer)}
	h.mu.Lock()
	topic := h.topics[runID]
	if topic == nil {
		topic = map[*subscriber]struct{}{}
		h.topics[runID] = topic
	}
	topic[s] = struct{}{}
	h.mu.Unlock()
	return s.ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.remove(runID, s)
	}
}

// Publish hands e to every subscriber of its run without ever blocking.
func (h *Hub) Publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ev := &e // shared by every subscriber: a buffer slot holds a pointer, not a whole Event
	for s := range h.topics[e.RunID] {
		select {
		case s.ch <- ev:
		default:
			h.remove(e.RunID, s) // full buffer: drop it rather than wait
		}
	}
}

// Viewers is the number of subscribers of a run.
func (h *Hub) Viewers(runID int64) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.topics[runID])
}

// remove closes a subscriber's channel unless that already happened; h.mu must be held.
func (h *Hub) remove(runID int64, s *subscriber) {
	topic := h.topics[runID]
	if _, ok := topic[s]; !ok {
		return
	}
	delete(topic, s)
	close(s.ch)
	if len(topic) == 0 {
		delete(h.topics, runID)
	}
}
