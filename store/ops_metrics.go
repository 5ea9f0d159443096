package store

import (
	"context"
	"fmt"
	"sync"
)

// Figures for the operator's /metrics endpoint.

// GroupSizeBuckets are the upper bounds (points) of the group-commit size histogram.
var GroupSizeBuckets = []float64{1_000, 2_000, 4_000, 8_000, 16_000, 32_000, maxGroupPoints}

// IngestStats describes the group commits since the store opened: how many, the points
// they wrote, and how many had at most each GroupSizeBuckets bound (cumulative).
type IngestStats struct {
	Groups    uint64
	Points    uint64
	AtMost    []uint64 // per GroupSizeBuckets
	Committed uint64   // points acknowledged as stored
}

type ingestStats struct {
	mu sync.Mutex
	IngestStats
}

func (st *ingestStats) record(points, committed int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.AtMost == nil {
		st.AtMost = make([]uint64, len(GroupSizeBuckets))
	}
	st.Groups++
	st.Points += uint64(points)
	st.Committed += uint64(committed)
	for i, b := range GroupSizeBuckets {
		if float64(points) <= b {
			st.AtMost[i]++
		}
	}
}

// IngestStats returns a copy of the group-commit figures.
func (s *Store) IngestStats() IngestStats {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	out := s.stats.IngestStats
	out.AtMost = append([]uint64(nil), s.stats.AtMost...)
	if out.AtMost == nil {
		out.AtMost = make([]uint64, len(GroupSizeBuckets))
	}
	return out
}

// RunsByStatus counts the runs that are not deleted, by status.
func (s *Store) RunsByStatus(ctx context.Context) (map[string]int, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT status, COUNT(*) FROM runs WHERE deleted_at IS NULL GROUP BY status")
	if err != nil {
		return nil, fmt.Errorf("store: runs by status: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var status string
		var n int
		if err := rows.Scan(&status, &n); err != nil {
			return nil, fmt.Errorf("store: runs by status: %w", err)
		}
		out[status] = n
	}
	return out, rows.Err()
}
