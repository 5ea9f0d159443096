package trainer

import (
	"context"
	"slices"
	"sync"
)

// uploader sends queued items (metric points, log lines) in batches from its
// own goroutine, so training never waits on the network. A batch leaves the
// queue only once the server acknowledged it, and resending is safe: metric
// points are deduplicated by the server, and a log line sent twice is only a
// line twice.
type uploader[T any] struct {
	maxBatch int
	post     func(ctx context.Context, batch []T) error
	onFail   func(error) // a batch could not be delivered

	mu     sync.Mutex
	queue  []T
	closed bool
	wake   chan struct{} // buffered: a pending wake-up is never lost
	done   chan struct{} // closed when run returns
	err    error         // why run stopped early; read after done
}

func newUploader[T any](maxBatch int, post func(context.Context, []T) error, onFail func(error)) *uploader[T] {
	return &uploader[T]{maxBatch: maxBatch, post: post, onFail: onFail, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// add queues items; it never blocks on the network.
func (u *uploader[T]) add(items ...T) {
	if len(items) == 0 {
		return
	}
	u.mu.Lock()
	u.queue = append(u.queue, items...)
	u.mu.Unlock()
	u.poke()
}

func (u *uploader[T]) poke() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// run sends batches until close drained the queue, ctx ends, or a batch
// cannot be delivered (the client already retried what may be retried).
func (u *uploader[T]) run(ctx context.Context) {
	defer close(u.done)
	for {
		u.mu.Lock()
		batch := slices.Clone(u.queue[:min(len(u.queue), u.maxBatch)])
		closed := u.closed
		u.mu.Unlock()
		if len(batch) == 0 {
			if closed {
				return
			}
			select {
			case <-u.wake:
				continue
			case <-ctx.Done():
				u.err = ctx.Err()
				return
			}
		}
		if err := u.post(ctx, batch); err != nil {
			u.err = err
			if ctx.Err() == nil {
				u.onFail(err)
			}
			return
		}
		u.mu.Lock()
		u.queue = u.queue[len(batch):]
		u.mu.Unlock()
	}
}

// flush waits until everything queued so far was acknowledged, or returns
// why it could not be. Nothing may be added after it.
func (u *uploader[T]) flush() error {
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	u.poke()
	<-u.done
	return u.err
}
