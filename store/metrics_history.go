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
	Level      int   // 0: every point of the window; L >= 1: downsampled from buckets of 16^L steps (1 also for raw points grouped)
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

// MetricHistory returns at most maxPoints drawn points of one metric between steps from
// and to (nil: the whole series). When the window holds at most maxPoints finite points
// they are all returned (Level 0). Otherwise the answer is downsampled: an envelope (the
// min and max of each stretch, so a spike is never lost) and a line chosen by MinMaxLTTB
// from the stretches' extremes, at least half of maxPoints of it.
//
// The level read is planned from real row counts in the window, not from the series'
// average density (a million points at steps 0..999,999 and one at 1,000,000,000 would
// fool a density guess both ways): see planHistory.
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
	if err := s.planHistory(ctx, sr.ID, &h, maxPoints); err != nil {
		return History{}, fmt.Errorf("store: metric history: %w", err)
	}
	if err := s.nonFinite(ctx, sr.ID, &h, maxPoints); err != nil {
		return History{}, fmt.Errorf("store: metric history: %w", err)
	}
	s.best(ctx, sr.ID, &h)
	return h, nil
}

// planHistory fills h.Line (and h.Envelope when downsampled) for the window.
//
// With M = maxPoints and half = ceil(M/2):
//  1. Walk the rollup levels coarse to fine (5 .. 1, then the raw points as "level 0"),
//     counting each level's rows in the window (at most 4M+1 read) and the line candidates
//     they give (a bucket gives its min and its max, one when they are the same point).
//     The walk stops at the first level with more than 4M rows: a finer one has as many.
//  2. At most M finite points in the window (then every level has at most M rows, so the
//     walk got to the points): all of them, as stored.
//  3. Otherwise a level qualifies once it gives at least half candidates; the finest
//     qualifying level with at most 4M rows is read, or, when even the first qualifying
//     level has more, that one.
//  4. The rows read are split into at most half groups of consecutive rows (their envelope
//     and extremes), and MinMaxLTTB keeps at most M of the extremes.
//
// Why the bounds hold whatever the steps: a bucket holds at most 16 buckets of the level
// below (and a level-1 bucket at most 16 points), so the level after one with fewer than
// half candidates (hence fewer than half rows) has fewer than 8M rows. And a level with at
// least half candidates split into half groups (or kept whole when it has fewer rows)
// gives at least half candidates: the answer has between half and M points. The counts
// scan at most about 4M rows per level, through the primary keys.
func (s *Store) planHistory(ctx context.Context, seriesID int64, h *History, maxPoints int) error {
	half, rowCap := (maxPoints+1)/2, 4*maxPoints
	chosen := -1
	for level := rollupLevels; level >= 0; level-- {
		var rows, cand int
		var err error
		if level == 0 {
			rows, err = s.countRaw(ctx, seriesID, h, rowCap+1)
			cand = rows
		} else {
			rows, cand, err = s.countBuckets(ctx, seriesID, h, level, rowCap+1)
		}
		if err != nil {
			return err
		}
		// At most M points in the window: then no level had more rows, and the walk is here.
		if level == 0 && rows <= maxPoints {
			return s.everyPoint(ctx, seriesID, h, maxPoints)
		}
		if rows > rowCap {
			if chosen < 0 {
				chosen = level // fewer than 8M rows: see above
			}
			break
		}
		if cand >= half {
			chosen = level
		}
	}
	var rows []bucketRow
	var err error
	if chosen <= 0 {
		// Raw points, grouped: reported as level 1 (the finest downsampled view), so a
		// chart still asks for a closer zoom.
		chosen = 0
		rows, err = s.rawRows(ctx, seriesID, h, 16*maxPoints)
	} else {
		// Fewer than 8M rows (see above), but for the coarsest level, which is read whole
		// even past that: its buckets span 2^20 steps, so it has at most 954 rows for the
		// largest step the APIs take (1,000,000,000).
		limit := 16 * maxPoints
		if chosen == rollupLevels {
			limit = -1
		}
		rows, err = s.bucketRows(ctx, seriesID, h, chosen, limit)
	}
	if err != nil {
		return err
	}
	h.Level = max(chosen, 1)
	h.Envelope, h.Line = downsample(rows, maxPoints)
	return nil
}

// everyPoint draws every finite point of the window: Level 0, no envelope.
func (s *Store) everyPoint(ctx context.Context, seriesID int64, h *History, maxPoints int) error {
	rows, err := s.rawRows(ctx, seriesID, h, maxPoints+1)
	if err != nil {
		return err
	}
	if len(rows) > maxPoints { // points arrived since the count
		h.Level = 1
		h.Envelope, h.Line = downsample(rows, maxPoints)
		return nil
	}
	for _, r := range rows {
		h.Line = append(h.Line, HistoryPoint{Step: r.lo, Value: r.min, At: fromMS(r.lastAt)})
	}
	return nil
}

// countRaw counts the finite points in the window, reading at most limit of them.
func (s *Store) countRaw(ctx context.Context, seriesID int64, h *History, limit int) (int, error) {
	pts, err := seriesPoints(ctx, s.r, seriesID, h.From, h.To, true, limit)
	return len(pts), err
}

// countBuckets counts a level's buckets that overlap the window (reading at most limit) and
// the line candidates they give: two for a bucket whose min and max are different points.
func (s *Store) countBuckets(ctx context.Context, seriesID int64, h *History, level, limit int) (rows, cand int, err error) {
	shift := bucketShift(level)
	err = s.r.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(1 + (min_step != max_step)), 0) FROM (
		SELECT min_step, max_step FROM metric_rollups WHERE series_id = ? AND level = ? AND bucket BETWEEN ? AND ? LIMIT ?)`,
		seriesID, level, h.From>>shift, h.To>>shift, limit).Scan(&rows, &cand)
	return rows, cand, err
}

// bucketRow is one rollup row, or one raw point, as read.
type bucketRow struct {
	lo, hi           int
	min, max         float64
	minStep, maxStep int
	lastAt           int64
}

// rawRows reads the window's finite points (at most limit) as one-point buckets.
func (s *Store) rawRows(ctx context.Context, seriesID int64, h *History, limit int) ([]bucketRow, error) {
	pts, err := seriesPoints(ctx, s.r, seriesID, h.From, h.To, true, limit)
	if err != nil {
		return nil, err
	}
	out := make([]bucketRow, 0, len(pts))
	for _, p := range pts {
		out = append(out, bucketRow{lo: p.Step, hi: p.Step, min: p.Value, max: p.Value, minStep: p.Step, maxStep: p.Step, lastAt: p.At.UnixMilli()})
	}
	return out, nil
}

// bucketRows reads a level's buckets that overlap the window (at most limit).
func (s *Store) bucketRows(ctx context.Context, seriesID int64, h *History, level, limit int) ([]bucketRow, error) {
	shift := bucketShift(level)
	rows, err := s.r.QueryContext(ctx, `SELECT bucket, min, min_step, max, max_step, last_at
		FROM metric_rollups WHERE series_id = ? AND level = ? AND bucket BETWEEN ? AND ? ORDER BY bucket LIMIT ?`,
		seriesID, level, h.From>>shift, h.To>>shift, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []bucketRow
	for rows.Next() {
		var b int
		var r bucketRow
		if err := rows.Scan(&b, &r.min, &r.minStep, &r.max, &r.maxStep, &r.lastAt); err != nil {
			return nil, err
		}
		r.lo, r.hi = b<<shift, (b+1)<<shift-1
		out = append(out, r)
	}
	return out, rows.Err()
}

// downsample splits rows into at most ceil(maxPoints/2) groups of consecutive rows, as
// even as can be, and returns each group's envelope and a line of at most maxPoints of the
// groups' extremes picked by LTTB (MinMaxLTTB).
func downsample(read []bucketRow, maxPoints int) ([]Bucket, []HistoryPoint) {
	groups := min(len(read), (maxPoints+1)/2)
	envelope := make([]Bucket, 0, groups)
	candidates := make([]HistoryPoint, 0, 2*groups)
	for g := range groups {
		part := read[g*len(read)/groups : (g+1)*len(read)/groups]
		m := part[0]
		for _, r := range part[1:] {
			if r.min < m.min {
				m.min, m.minStep = r.min, r.minStep
			}
			if r.max > m.max {
				m.max, m.maxStep = r.max, r.maxStep
			}
			m.hi, m.lastAt = r.hi, r.lastAt
		}
		envelope = append(envelope, Bucket{StepLo: m.lo, StepHi: m.hi, Min: m.min, Max: m.max})
		// The group's extremes, in step order, are the candidates for the drawn line; the
		// time of the group's last point stands in for theirs.
		lo, hi := HistoryPoint{m.minStep, m.min, fromMS(m.lastAt)}, HistoryPoint{m.maxStep, m.max, fromMS(m.lastAt)}
		if hi.Step < lo.Step {
			lo, hi = hi, lo
		}
		candidates = append(candidates, lo)
		if hi.Step != lo.Step {
			candidates = append(candidates, hi)
		}
	}
	return envelope, lttb(candidates, maxPoints)
}

// nonFinite lists the window's NaN and ±Inf reports, at most maxPoints of them: past
// that, the first report of each kind in each of maxPoints/3 equal stretches of the window.
func (s *Store) nonFinite(ctx context.Context, seriesID int64, h *History, maxPoints int) error {
	// INDEXED BY: left to itself the planner walks the primary key through every point of
	// the window (about 130 ms for a million) instead of the few non-finite ones.
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM metric_points INDEXED BY metric_points_nonfinite
		WHERE series_id = ? AND kind != 0 AND step BETWEEN ? AND ? LIMIT ?)`, seriesID, h.From, h.To, maxPoints+1).Scan(&n); err != nil {
		return err
	}
	q, args := `SELECT step, kind, at FROM metric_points INDEXED BY metric_points_nonfinite
		WHERE series_id = ? AND kind != 0 AND step BETWEEN ? AND ? ORDER BY step`, []any{seriesID, h.From, h.To}
	if n > maxPoints {
		// A bare column beside MIN() comes from the row holding the minimum (SQLite).
		width := (int64(h.To)-int64(h.From))/int64(max(maxPoints/3, 1)) + 1
		q = `SELECT MIN(step), kind, at FROM metric_points INDEXED BY metric_points_nonfinite
			WHERE series_id = ? AND kind != 0 AND step BETWEEN ? AND ? GROUP BY (step - ?) / ?, kind ORDER BY 1 LIMIT ?`
		args = append(args, h.From, width, maxPoints)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
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
