package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Series is one metric of a run, summarised.
type Series struct {
	ID        int64
	Name      string
	Points    int64
	FirstStep int
	LastStep  int
	Last      *float64 // value at LastStep; nil when that report was not finite
	Min, Max  *float64 // over finite values; nil when there are none
}

// MetricSeries lists a run's metrics by name with their last, min and max values; min and
// max come from the widest rollup level, so this reads a handful of rows per series.
func (s *Store) MetricSeries(ctx context.Context, runID int64) ([]Series, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT s.id, s.name, s.points, COALESCE(s.first_step, 0), COALESCE(s.last_step, 0), s.last_value,
			(SELECT MIN(min) FROM metric_rollups r WHERE r.series_id = s.id AND r.level = ?),
			(SELECT MAX(max) FROM metric_rollups r WHERE r.series_id = s.id AND r.level = ?)
		FROM metric_series s WHERE s.run_id = ? ORDER BY s.name`, rollupLevels, rollupLevels, runID)
	if err != nil {
		return nil, fmt.Errorf("store: metric series: %w", err)
	}
	defer rows.Close()
	var out []Series
	for rows.Next() {
		var sr Series
		var last, mn, mx sql.NullFloat64
		if err := rows.Scan(&sr.ID, &sr.Name, &sr.Points, &sr.FirstStep, &sr.LastStep, &last, &mn, &mx); err != nil {
			return nil, fmt.Errorf("store: metric series: %w", err)
		}
		sr.Last, sr.Min, sr.Max = nullFloat(last), nullFloat(mn), nullFloat(mx)
		out = append(out, sr)
	}
	return out, rows.Err()
}

func nullFloat(v sql.NullFloat64) *float64 {
	if !v.Valid {
		return nil
	}
	return &v.Float64
}

// HistoryPoint is a drawn point.
type HistoryPoint struct {
	Step  int
	Value float64
	At    time.Time
}

// Bucket is the envelope of a downsampled stretch: every finite value of steps
// [StepLo, StepHi] lies within [Min, Max], so a spike is never lost.
type Bucket struct {
	StepLo, StepHi int
	Min, Max       float64
}

// NonFinite is a NaN or ±Inf report.
type NonFinite struct {
	Step int
	Kind string
	At   time.Time
}

// History is what a chart draws for one metric in a step window.
type History struct {
	Name       string
	Points     int64 // all points of the series
	From, To   int   // the window, in steps
	Level      int   // 0: raw points; L: buckets of 16^L steps
	Line       []HistoryPoint
	Envelope   []Bucket
	NonFinite  []NonFinite
	LastStep   int
	Last       *float64
	Best       *HistoryPoint // the lowest value for losses and norms, the highest for accuracies
	BestIsMax  bool
	HasBestDef bool
}

// ErrNoSeries is returned for a metric the run has not logged.
var ErrNoSeries = errors.New("store: the run has no such metric")

// MetricHistory returns at most about maxPoints drawn points of one metric between steps
// from and to (nil: the whole series). Below maxPoints raw points are returned; above,
// rollup buckets of the smallest level that fits give an envelope (min and max per
// bucket) and a line chosen by MinMaxLTTB from the buckets' extremes.
func (s *Store) MetricHistory(ctx context.Context, runID int64, name string, from, to *int, maxPoints int) (History, error) {
	var sr Series
	var last sql.NullFloat64
	err := s.r.QueryRowContext(ctx, `SELECT id, points, COALESCE(first_step, 0), COALESCE(last_step, 0), last_value
		FROM metric_series WHERE run_id = ? AND name = ?`, runID, name).Scan(&sr.ID, &sr.Points, &sr.FirstStep, &sr.LastStep, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return History{}, ErrNoSeries
	}
	if err != nil {
		return History{}, fmt.Errorf("store: metric history: %w", err)
	}
	h := History{Name: name, Points: sr.Points, From: sr.FirstStep, To: sr.LastStep, LastStep: sr.LastStep, Last: nullFloat(last)}
	if from != nil {
		h.From = *from
	}
	if to != nil {
		h.To = *to
	}
	if h.To < h.From {
		h.From, h.To = h.To, h.From
	}
	maxPoints = max(maxPoints, 16)
	span := int64(h.To) - int64(h.From) + 1
	whole := int64(sr.LastStep) - int64(sr.FirstStep) + 1
	// Points in the window, estimated from the series' density.
	estimate := sr.Points
	if whole > 0 && span < whole {
		estimate = int64(math.Ceil(float64(sr.Points) * float64(span) / float64(whole)))
	}
	if estimate <= int64(maxPoints) {
		err = s.rawHistory(ctx, sr.ID, &h)
	} else {
		// The finest level that needs at most 4×maxPoints rows; they are merged down.
		h.Level = 1
		for h.Level < rollupLevels && span>>bucketShift(h.Level) > 4*int64(maxPoints) {
			h.Level++
		}
		err = s.bucketHistory(ctx, sr.ID, &h, maxPoints)
	}
	if err != nil {
		return History{}, fmt.Errorf("store: metric history: %w", err)
	}
	if err := s.nonFinite(ctx, sr.ID, &h); err != nil {
		return History{}, fmt.Errorf("store: metric history: %w", err)
	}
	s.best(ctx, sr.ID, &h)
	return h, nil
}

func (s *Store) rawHistory(ctx context.Context, seriesID int64, h *History) error {
	rows, err := s.r.QueryContext(ctx, `SELECT step, value, at FROM metric_points
		WHERE series_id = ? AND step BETWEEN ? AND ? AND kind = 0 ORDER BY step`, seriesID, h.From, h.To)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var p HistoryPoint
		var at int64
		if err := rows.Scan(&p.Step, &p.Value, &at); err != nil {
			return err
		}
		p.At = fromMS(at)
		h.Line = append(h.Line, p)
	}
	return rows.Err()
}

// bucketRow is one rollup row as read.
type bucketRow struct {
	lo, hi           int
	min, max         float64
	minStep, maxStep int
	lastAt           int64
}

func (s *Store) bucketHistory(ctx context.Context, seriesID int64, h *History, maxPoints int) error {
	shift := bucketShift(h.Level)
	rows, err := s.r.QueryContext(ctx, `SELECT bucket, min, min_step, max, max_step, last_at
		FROM metric_rollups WHERE series_id = ? AND level = ? AND bucket BETWEEN ? AND ? ORDER BY bucket`,
		seriesID, h.Level, h.From>>shift, h.To>>shift)
	if err != nil {
		return err
	}
	defer rows.Close()
	var read []bucketRow
	for rows.Next() {
		var b int
		var r bucketRow
		if err := rows.Scan(&b, &r.min, &r.minStep, &r.max, &r.maxStep, &r.lastAt); err != nil {
			return err
		}
		r.lo, r.hi = b<<shift, (b+1)<<shift-1
		read = append(read, r)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	// Merge k neighbours so at most maxPoints/2 buckets remain (each gives two candidates).
	k := max(1, (len(read)+maxPoints/2-1)/(maxPoints/2))
	var candidates []HistoryPoint
	for i := 0; i < len(read); i += k {
		m := read[i]
		for _, r := range read[i+1 : min(i+k, len(read))] {
			if r.min < m.min {
				m.min, m.minStep = r.min, r.minStep
			}
			if r.max > m.max {
				m.max, m.maxStep = r.max, r.maxStep
			}
			m.hi, m.lastAt = r.hi, r.lastAt
		}
		h.Envelope = append(h.Envelope, Bucket{StepLo: m.lo, StepHi: m.hi, Min: m.min, Max: m.max})
		// The bucket's extremes, in step order, are the candidates for the drawn line;
		// the time of the bucket's last point stands in for theirs.
		lo, hi := HistoryPoint{m.minStep, m.min, fromMS(m.lastAt)}, HistoryPoint{m.maxStep, m.max, fromMS(m.lastAt)}
		if hi.Step < lo.Step {
			lo, hi = hi, lo
		}
		candidates = append(candidates, lo)
		if hi.Step != lo.Step {
			candidates = append(candidates, hi)
		}
	}
	h.Line = lttb(candidates, maxPoints)
	return nil
}

func (s *Store) nonFinite(ctx context.Context, seriesID int64, h *History) error {
	// INDEXED BY: left to itself the planner walks the primary key through every point of
	// the window (about 130 ms for a million) instead of the few non-finite ones.
	rows, err := s.r.QueryContext(ctx, `SELECT step, kind, at FROM metric_points INDEXED BY metric_points_nonfinite
		WHERE series_id = ? AND kind != 0 AND step BETWEEN ? AND ? ORDER BY step LIMIT 10000`, seriesID, h.From, h.To)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var nf NonFinite
		var kind int
		var at int64
		if err := rows.Scan(&nf.Step, &kind, &at); err != nil {
			return err
		}
		if kind > 0 && kind < len(kindName) {
			nf.Kind, nf.At = kindName[kind], fromMS(at)
			h.NonFinite = append(h.NonFinite, nf)
		}
	}
	return rows.Err()
}

// best finds the series' best value over its whole length from the widest rollups.
func (s *Store) best(ctx context.Context, seriesID int64, h *History) {
	n := strings.ToLower(h.Name)
	switch {
	case strings.Contains(n, "loss") || strings.Contains(n, "perplexity") || strings.Contains(n, "error"):
		h.HasBestDef = true
	case strings.Contains(n, "acc") || strings.Contains(n, "reward") || strings.Contains(n, "score"):
		h.HasBestDef, h.BestIsMax = true, true
	default:
		return
	}
	q := `SELECT min, min_step FROM metric_rollups WHERE series_id = ? AND level = ? ORDER BY min, min_step LIMIT 1`
	if h.BestIsMax {
		q = `SELECT max, max_step FROM metric_rollups WHERE series_id = ? AND level = ? ORDER BY max DESC, max_step LIMIT 1`
	}
	var p HistoryPoint
	if err := s.r.QueryRowContext(ctx, q, seriesID, rollupLevels).Scan(&p.Value, &p.Step); err == nil {
		h.Best = &p
	}
}

// lttb picks at most n points that keep the shape of pts (Largest-Triangle-Three-Buckets,
// Steinarsson 2013); fed with bucket extremes it is MinMaxLTTB. The first and last points
// always stay.
func lttb(pts []HistoryPoint, n int) []HistoryPoint {
	if len(pts) <= n || n < 3 {
		return pts
	}
	out := make([]HistoryPoint, 0, n)
	out = append(out, pts[0])
	every := float64(len(pts)-2) / float64(n-2)
	a := 0
	for i := 0; i < n-2; i++ {
		// The average of the next bucket is the third corner of the triangle.
		nextLo := int(float64(i+1)*every) + 1
		nextHi := min(int(float64(i+2)*every)+1, len(pts))
		var avgX, avgY float64
		for _, p := range pts[nextLo:nextHi] {
			avgX += float64(p.Step)
			avgY += p.Value
		}
		cnt := float64(max(nextHi-nextLo, 1))
		avgX, avgY = avgX/cnt, avgY/cnt
		lo, hi := int(float64(i)*every)+1, int(float64(i+1)*every)+1
		best, bestArea := lo, -1.0
		ax, ay := float64(pts[a].Step), pts[a].Value
		for j := lo; j < hi; j++ {
			area := math.Abs((ax-avgX)*(pts[j].Value-ay) - (ax-float64(pts[j].Step))*(avgY-ay))
			if area > bestArea {
				best, bestArea = j, area
			}
		}
		out = append(out, pts[best])
		a = best
	}
	return append(out, pts[len(pts)-1])
}

// rebuildMissingRollups fills the rollups of series that have finite points but none (the
// points moved over by migration 0004).
func (s *Store) rebuildMissingRollups(ctx context.Context) error {
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM metric_series s WHERE points > 0
		AND NOT EXISTS (SELECT 1 FROM metric_rollups r WHERE r.series_id = s.id)`)
	if err != nil {
		return fmt.Errorf("store: rollups: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			pr, err := tx.QueryContext(ctx, "SELECT step, value, at FROM metric_points WHERE series_id = ? AND kind = 0 ORDER BY step", id)
			if err != nil {
				return err
			}
			var pts []MetricPoint
			var ats []int64
			for pr.Next() {
				var p MetricPoint
				var at int64
				pr.Scan(&p.Step, &p.Value, &at)
				pts, ats = append(pts, p), append(ats, at)
			}
			pr.Close()
			if len(pts) == 0 {
				return nil
			}
			t := s.newWriteTx(ctx, tx)
			defer t.close()
			return writeRollups(t, foldRollups(nil, id, pts, ats[len(ats)-1]))
		})
		if err != nil {
			return fmt.Errorf("store: rebuild rollups of series %d: %w", id, err)
		}
	}
	return nil
}
