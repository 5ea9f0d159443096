package store

import (
	"context"
	"database/sql"
	"errors"
)

// Group commit: metric batches queue here and one goroutine writes as many as are waiting
// in one transaction, so concurrent workers share each fsync. A full queue is refused
// (ErrIngestBusy -> 429) instead of growing without bound.

const (
	// IngestQueue is how many batches may wait for the writer.
	IngestQueue = 256
	// maxGroupPoints bounds one transaction so a group never holds the writer for long.
	maxGroupPoints = 50_000
)

type ingestRequest struct {
	runID  int64
	points []MetricPoint
	added  []MetricPoint
	err    error
	done   chan struct{}
}

// runIngest serves the queue until it is closed.
func (s *Store) runIngest() {
	defer close(s.ingestDone)
	for first := range s.ingest {
		group := []*ingestRequest{first}
		n := len(first.points)
	drain:
		for n < maxGroupPoints {
			select {
			case r, ok := <-s.ingest:
				if !ok {
					break drain
				}
				group = append(group, r)
				n += len(r.points)
			default:
				break drain
			}
		}
		s.commitGroup(group)
	}
}

// commitGroup writes a group in one transaction. If it fails, each batch is tried alone,
// so one bad batch (a run deleted meanwhile) cannot sink the others.
func (s *Store) commitGroup(group []*ingestRequest) {
	ctx := context.Background()
	now := ms(s.now())
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, r := range group {
			added, err := appendTx(ctx, tx, r.runID, r.points, now)
			if err != nil {
				return err
			}
			r.added = added
		}
		return nil
	})
	if err == nil || len(group) == 1 {
		for _, r := range group {
			if err != nil {
				r.added, r.err = nil, err
			}
			close(r.done)
		}
		return
	}
	for _, r := range group {
		r.added = nil
		s.commitGroup([]*ingestRequest{r})
	}
}

// stopIngest lets queued batches finish, then stops the writer goroutine.
func (s *Store) stopIngest() {
	s.ingestOnce.Do(func() {
		s.ingestMu.Lock()
		s.ingestClosed = true
		close(s.ingest)
		s.ingestMu.Unlock()
		<-s.ingestDone
	})
}

// enqueue hands a batch to the writer without waiting for room.
func (s *Store) enqueue(r *ingestRequest) error {
	s.ingestMu.RLock()
	defer s.ingestMu.RUnlock()
	if s.ingestClosed {
		return errStoreClosed
	}
	select {
	case s.ingest <- r:
		return nil
	default:
		return ErrIngestBusy
	}
}

var errStoreClosed = errors.New("store: closed")

// AppendMetricsDirect writes one batch in its own transaction, bypassing the queue and
// group commit: the same SQL as AppendMetrics, used as the baseline of the ingest
// benchmark (BenchmarkIngest) and nowhere else.
func (s *Store) AppendMetricsDirect(ctx context.Context, runID int64, pts []MetricPoint) ([]MetricPoint, error) {
	var added []MetricPoint
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		added, err = appendTx(ctx, tx, runID, pts, ms(s.now()))
		return err
	})
	return added, err
}
