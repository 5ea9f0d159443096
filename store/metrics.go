package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"
)

// Non-finite kinds: a worker may report NaN or ±Inf; they are kept as events (value NULL)
// so charts can mark them, and never enter min/max/last.
const (
	KindFinite = ""
	KindNaN    = "nan"
	KindPosInf = "inf"
	KindNegInf = "-inf"
)

var kindCode = map[string]int{KindFinite: 0, KindNaN: 1, KindPosInf: 2, KindNegInf: 3}
var kindName = []string{KindFinite, KindNaN, KindPosInf, KindNegInf}

// MetricPoint is one value of one metric at one training step. Seq is the run's sequence
// number of the point (0 until stored): live streams use it as the event id.
type MetricPoint struct {
	Seq   int64
	Name  string
	Step  int
	Value float64 // 0 when Kind is not finite
	Kind  string  // KindFinite, or which non-finite value was reported
	At    time.Time
}

// rollupLevels are the bucket widths in steps: level L spans 1<<(4L) steps.
const rollupLevels = 5

func bucketShift(level int) uint { return uint(4 * level) }

// ErrIngestBusy is returned when the ingest queue is full; callers answer 429.
var ErrIngestBusy = errors.New("store: metric ingest is busy; retry shortly")

// AppendMetrics stores a batch durably and returns the points that were new, with their
// sequence numbers; a point already stored for that metric and step is skipped, so a
// worker may resend a batch whose answer it lost. Concurrent batches share one
// transaction (group commit); the call returns once that transaction is committed.
func (s *Store) AppendMetrics(ctx context.Context, runID int64, pts []MetricPoint) ([]MetricPoint, error) {
	req := &ingestRequest{runID: runID, points: pts, done: make(chan struct{})}
	if err := s.enqueue(req); err != nil {
		return nil, err
	}
	select {
	case <-req.done:
		return req.added, req.err
	case <-ctx.Done():
		// The batch may still commit; the worker resends and duplicates are skipped.
		return nil, ctx.Err()
	}
}

// seriesTx finds or creates the series of a run's metric inside tx.
func seriesTx(ctx context.Context, tx *sql.Tx, runID int64, name string) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, "SELECT id FROM metric_series WHERE run_id = ? AND name = ?", runID, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = tx.QueryRowContext(ctx, "INSERT INTO metric_series (run_id, name) VALUES (?, ?) RETURNING id", runID, name).Scan(&id)
	}
	return id, err
}

// appendTx writes one batch: new points get the next sequence numbers of the run, the
// series counters and rollups are updated. It returns the new points.
func appendTx(ctx context.Context, tx *sql.Tx, runID int64, pts []MetricPoint, now int64) ([]MetricPoint, error) {
	bySeries := map[string][]int{} // name -> indexes into pts, in batch order
	var names []string
	for i, p := range pts {
		if _, ok := bySeries[p.Name]; !ok {
			names = append(names, p.Name)
		}
		bySeries[p.Name] = append(bySeries[p.Name], i)
	}
	var seq int64
	if err := tx.QueryRowContext(ctx, "SELECT metric_seq FROM runs WHERE id = ?", runID).Scan(&seq); err != nil {
		return nil, fmt.Errorf("run %d: %w", runID, err)
	}
	insert, err := tx.PrepareContext(ctx, "INSERT INTO metric_points (series_id, step, value, kind, at, seq) VALUES (?, ?, ?, ?, ?, ?)")
	if err != nil {
		return nil, err
	}
	defer insert.Close()
	var added []MetricPoint
	for _, name := range names {
		sid, err := seriesTx(ctx, tx, runID, name)
		if err != nil {
			return nil, err
		}
		idx := bySeries[name]
		lo, hi := pts[idx[0]].Step, pts[idx[0]].Step
		for _, i := range idx {
			lo, hi = min(lo, pts[i].Step), max(hi, pts[i].Step)
		}
		existing, err := stepsIn(ctx, tx, sid, lo, hi)
		if err != nil {
			return nil, err
		}
		var fresh []MetricPoint
		for _, i := range idx {
			p := pts[i]
			if existing[p.Step] {
				continue
			}
			existing[p.Step] = true // a step twice in one batch keeps the first
			seq++
			p.Seq, p.At = seq, fromMS(now)
			var v any
			if p.Kind == KindFinite {
				v = p.Value
			}
			if _, err := insert.ExecContext(ctx, sid, p.Step, v, kindCode[p.Kind], now, seq); err != nil {
				return nil, err
			}
			fresh = append(fresh, p)
		}
		if len(fresh) == 0 {
			continue
		}
		if err := updateSeries(ctx, tx, sid, fresh); err != nil {
			return nil, err
		}
		if err := updateRollups(ctx, tx, sid, fresh, now); err != nil {
			return nil, err
		}
		added = append(added, fresh...)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE runs SET metric_seq = ? WHERE id = ?", seq, runID); err != nil {
		return nil, err
	}
	return added, nil
}

// stepsIn returns the steps a series already has in [lo, hi]; batches are normally at the
// end of a series, so this reads few rows.
func stepsIn(ctx context.Context, tx *sql.Tx, seriesID int64, lo, hi int) (map[int]bool, error) {
	rows, err := tx.QueryContext(ctx, "SELECT step FROM metric_points WHERE series_id = ? AND step BETWEEN ? AND ?", seriesID, lo, hi)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]bool{}
	for rows.Next() {
		var st int
		if err := rows.Scan(&st); err != nil {
			return nil, err
		}
		out[st] = true
	}
	return out, rows.Err()
}

func updateSeries(ctx context.Context, tx *sql.Tx, seriesID int64, fresh []MetricPoint) error {
	first, last := fresh[0], fresh[0]
	for _, p := range fresh {
		if p.Step < first.Step {
			first = p
		}
		if p.Step > last.Step {
			last = p
		}
	}
	var lastValue any
	if last.Kind == KindFinite {
		lastValue = last.Value
	}
	_, err := tx.ExecContext(ctx, `UPDATE metric_series SET points = points + ?,
		first_step = MIN(COALESCE(first_step, ?), ?),
		last_value = CASE WHEN last_step IS NULL OR ? > last_step THEN ? ELSE last_value END,
		last_step = MAX(COALESCE(last_step, ?), ?)
		WHERE id = ?`, len(fresh), first.Step, first.Step, last.Step, lastValue, last.Step, last.Step, seriesID)
	return err
}

// rollup is the summary of one bucket.
type rollup struct {
	n                int
	min, max         float64
	minStep, maxStep int
	lastStep         int
	lastValue        float64
	lastAt           int64
}

func (r *rollup) add(step int, v float64, at int64) {
	if r.n == 0 || v < r.min {
		r.min, r.minStep = v, step
	}
	if r.n == 0 || v > r.max {
		r.max, r.maxStep = v, step
	}
	if r.n == 0 || step >= r.lastStep {
		r.lastStep, r.lastValue, r.lastAt = step, v, at
	}
	r.n++
}

type bucketKey struct {
	level  int
	bucket int
}

// updateRollups folds the batch's finite points into each level's buckets in Go, then
// merges one row per touched bucket: a batch of consecutive steps touches a few rows.
func updateRollups(ctx context.Context, tx *sql.Tx, seriesID int64, fresh []MetricPoint, now int64) error {
	acc := map[bucketKey]*rollup{}
	var order []bucketKey
	for _, p := range fresh {
		if p.Kind != KindFinite {
			continue
		}
		for level := 1; level <= rollupLevels; level++ {
			k := bucketKey{level, p.Step >> bucketShift(level)}
			r, ok := acc[k]
			if !ok {
				r = &rollup{}
				acc[k] = r
				order = append(order, k)
			}
			r.add(p.Step, p.Value, now)
		}
	}
	if len(order) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO metric_rollups
		(series_id, level, bucket, n, min, min_step, max, max_step, last_step, last_value, last_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (series_id, level, bucket) DO UPDATE SET
			n = n + excluded.n,
			min_step = CASE WHEN excluded.min < min THEN excluded.min_step ELSE min_step END,
			min = MIN(min, excluded.min),
			max_step = CASE WHEN excluded.max > max THEN excluded.max_step ELSE max_step END,
			max = MAX(max, excluded.max),
			last_value = CASE WHEN excluded.last_step >= last_step THEN excluded.last_value ELSE last_value END,
			last_at = CASE WHEN excluded.last_step >= last_step THEN excluded.last_at ELSE last_at END,
			last_step = MAX(last_step, excluded.last_step)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, k := range order {
		r := acc[k]
		if _, err := stmt.ExecContext(ctx, seriesID, k.level, k.bucket, r.n, r.min, r.minStep, r.max, r.maxStep,
			r.lastStep, r.lastValue, r.lastAt); err != nil {
			return err
		}
	}
	return nil
}

// MetricsAfter returns a run's points with seq > afterSeq in seq order, at most limit.
func (s *Store) MetricsAfter(ctx context.Context, runID, afterSeq int64, limit int) ([]MetricPoint, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT p.seq, s.name, p.step, p.value, p.kind, p.at
		FROM metric_series s JOIN metric_points p ON p.series_id = s.id
		WHERE s.run_id = ? AND p.seq > ? ORDER BY p.seq LIMIT ?`, runID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("store: metrics: %w", err)
	}
	defer rows.Close()
	var out []MetricPoint
	for rows.Next() {
		p, err := scanPoint(rows, true)
		if err != nil {
			return nil, fmt.Errorf("store: metrics: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func scanPoint(row interface{ Scan(...any) error }, named bool) (MetricPoint, error) {
	var p MetricPoint
	var v sql.NullFloat64
	var kind int
	var at int64
	var err error
	if named {
		err = row.Scan(&p.Seq, &p.Name, &p.Step, &v, &kind, &at)
	} else {
		err = row.Scan(&p.Seq, &p.Step, &v, &kind, &at)
	}
	if err != nil {
		return p, err
	}
	if kind < 0 || kind >= len(kindName) {
		return p, fmt.Errorf("point kind %d", kind)
	}
	p.Value, p.Kind, p.At = v.Float64, kindName[kind], fromMS(at)
	return p, nil
}

// RunMetricSeq is the sequence number of the run's newest point.
func (s *Store) RunMetricSeq(ctx context.Context, runID int64) (int64, error) {
	var seq int64
	if err := s.r.QueryRowContext(ctx, "SELECT metric_seq FROM runs WHERE id = ?", runID).Scan(&seq); err != nil {
		return 0, fmt.Errorf("store: metric seq: %w", err)
	}
	return seq, nil
}

// ExportMetrics calls fn for every point of a run, series by series in step order, reading
// a page at a time so memory stays flat.
func (s *Store) ExportMetrics(ctx context.Context, runID int64, fn func(MetricPoint) error) error {
	series, err := s.MetricSeries(ctx, runID)
	if err != nil {
		return err
	}
	const page = 10_000
	for _, sr := range series {
		after := math.MinInt64
		for {
			rows, err := s.r.QueryContext(ctx, `SELECT seq, step, value, kind, at FROM metric_points
				WHERE series_id = ? AND step > ? ORDER BY step LIMIT ?`, sr.ID, after, page)
			if err != nil {
				return fmt.Errorf("store: export metrics: %w", err)
			}
			n := 0
			for rows.Next() {
				p, err := scanPoint(rows, false)
				if err != nil {
					rows.Close()
					return fmt.Errorf("store: export metrics: %w", err)
				}
				p.Name = sr.Name
				if err := fn(p); err != nil {
					rows.Close()
					return err
				}
				after, n = p.Step, n+1
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if n < page {
				break
			}
		}
	}
	return nil
}

// LatestMetricStep is the highest step the run's series name has reached and when that
// point was stored; ok is false while the series has no points.
func (s *Store) LatestMetricStep(ctx context.Context, runID int64, name string) (step int, at time.Time, ok bool, err error) {
	var atMS int64
	err = s.r.QueryRowContext(ctx, `SELECT p.step, p.at FROM metric_series s
		JOIN metric_points p ON p.series_id = s.id AND p.step = s.last_step
		WHERE s.run_id = ? AND s.name = ?`, runID, name).Scan(&step, &atMS)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, false, nil
	}
	if err != nil {
		return 0, time.Time{}, false, fmt.Errorf("store: latest metric step: %w", err)
	}
	return step, fromMS(atMS), true, nil
}
