package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
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

// ErrRunIngestBusy is returned when one run already holds its share of the ingest queue
// (IngestPerRun batches): that run waits, every other run's batches still get in. It is
// also an ErrIngestBusy.
var ErrRunIngestBusy = fmt.Errorf("store: this run has too many metric batches waiting (%w)", ErrIngestBusy)

// Quotas bound what one run may store; zero fields take the defaults.
type Quotas struct {
	SeriesPerRun int   // distinct metric names
	PointsPerRun int64 // stored points, finite or not
}

// Default quotas (TUNELAB_QUOTA_SERIES_PER_RUN, TUNELAB_QUOTA_POINTS_PER_RUN).
const (
	DefaultSeriesPerRun = 1_000
	DefaultPointsPerRun = 50_000_000
)

// RunQuotaError refuses a whole metric batch that would take a run past one of its quotas; nothing
// of the batch is stored.
type RunQuotaError struct {
	Quota string // "series" or "points"
	Limit int64
	Have  int64 // stored before this batch
	Add   int64 // new in this batch
}

func (e *RunQuotaError) Error() string {
	return fmt.Sprintf("store: run quota: %d %s stored, %d more would pass the limit of %d", e.Have, e.Quota, e.Add, e.Limit)
}

// AppendMetrics stores a batch durably and returns the points that were new, with their
// sequence numbers; a point already stored for that metric and step is skipped, so a
// worker may resend a batch whose answer it lost. Concurrent batches share one
// transaction (group commit); the call returns once that transaction is committed. A batch
// that would pass a run quota is refused whole with a *RunQuotaError.
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

// The statements of the append path.
const (
	qRunSeq       = "SELECT metric_seq FROM runs WHERE id = ?"
	qSeries       = "SELECT id, first_step, last_step FROM metric_series WHERE run_id = ? AND name = ?"
	qSeriesCount  = "SELECT COUNT(*) FROM metric_series WHERE run_id = ?"
	qNewSeries    = "INSERT INTO metric_series (run_id, name) VALUES (?, ?) RETURNING id"
	qStepsIn      = "SELECT step FROM metric_points WHERE series_id = ? AND step BETWEEN ? AND ?"
	qSeqRanges    = "INSERT INTO metric_seq_ranges (run_id, seq_hi, seq_lo, series_id, step_lo, step_hi)"
	qSetRunSeq    = "UPDATE runs SET metric_seq = ? WHERE id = ?"
	qUpdateSeries = `UPDATE metric_series SET points = points + ?,
		first_step = MIN(COALESCE(first_step, ?), ?),
		last_value = CASE WHEN last_step IS NULL OR ? > last_step THEN ? ELSE last_value END,
		last_step = MAX(COALESCE(last_step, ?), ?)
		WHERE id = ?`
	qRollupsHead = `INSERT INTO metric_rollups
		(series_id, level, bucket, n, min, min_step, max, max_step, last_step, last_value, last_at)`
	qRollupsTail = `ON CONFLICT (series_id, level, bucket) DO UPDATE SET
			n = n + excluded.n,
			min_step = CASE WHEN excluded.min < min THEN excluded.min_step ELSE min_step END,
			min = MIN(min, excluded.min),
			max_step = CASE WHEN excluded.max > max THEN excluded.max_step ELSE max_step END,
			max = MAX(max, excluded.max),
			last_value = CASE WHEN excluded.last_step >= last_step THEN excluded.last_value ELSE last_value END,
			last_at = CASE WHEN excluded.last_step >= last_step THEN excluded.last_at ELSE last_at END,
			last_step = MAX(last_step, excluded.last_step)`
)

// ingestQueries is every statement of the append path, prepared once on the writer
// connection when the store opens (each transaction then reuses them).
func ingestQueries() []string {
	qs := []string{qRunSeq, qSeries, qSeriesCount, qNewSeries, qStepsIn, qBlocksIn, qSetRunSeq, qUpdateSeries}
	for n := rangesPerStmt; n >= 1; n /= 2 {
		qs = append(qs, valuesQuery(qSeqRanges, "", rangeCols, n))
	}
	for n := blocksPerStmt; n >= 1; n /= 2 {
		qs = append(qs, valuesQuery(qBlocksHead, "", blockCols, n))
	}
	for n := pointsPerStmt; n >= 1; n /= 2 {
		for _, kind := range []bool{false, true} {
			qs = append(qs, pointsQuery(n, kind, false), pointsQuery(n, kind, true))
		}
	}
	for n := rollupsPerStm; n >= 1; n /= 2 {
		qs = append(qs, valuesQuery(qRollupsHead, qRollupsTail, rollupCols, n))
	}
	return qs
}

// prepareIngest prepares the append path's statements on the writer (before the writer
// goroutine starts: the single connection must be free).
func (s *Store) prepareIngest(ctx context.Context) error {
	s.ingestStmts = map[string]*sql.Stmt{}
	for _, q := range ingestQueries() {
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("store: prepare ingest: %w", err)
		}
		s.ingestStmts[q] = st
	}
	return nil
}

// writeTx is one write transaction with its statements: those prepared when the store
// opened are reused, any other is prepared once per transaction.
type writeTx struct {
	ctx    context.Context
	tx     *sql.Tx
	shared map[string]*sql.Stmt
	stmts  map[string]*sql.Stmt
	args   []any
}

func (s *Store) newWriteTx(ctx context.Context, tx *sql.Tx) *writeTx {
	return &writeTx{ctx: ctx, tx: tx, shared: s.ingestStmts, stmts: map[string]*sql.Stmt{}}
}

func (t *writeTx) stmt(query string) (*sql.Stmt, error) {
	if st, ok := t.stmts[query]; ok {
		return st, nil
	}
	var st *sql.Stmt
	if shared, ok := t.shared[query]; ok {
		st = t.tx.StmtContext(t.ctx, shared)
	} else {
		var err error
		if st, err = t.tx.PrepareContext(t.ctx, query); err != nil {
			return nil, err
		}
	}
	t.stmts[query] = st
	return st, nil
}

func (t *writeTx) exec(query string, args ...any) error {
	st, err := t.stmt(query)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(t.ctx, args...)
	return err
}

func (t *writeTx) queryRow(query string, args ...any) *sql.Row {
	st, err := t.stmt(query)
	if err != nil {
		return t.tx.QueryRowContext(t.ctx, query, args...) // reports the same error on Scan
	}
	return st.QueryRowContext(t.ctx, args...)
}

func (t *writeTx) close() {
	for _, st := range t.stmts {
		st.Close()
	}
}

// multiRow writes rows of width columns with one statement per chunk of up to maxRows rows
// (chunks of power-of-two sizes, so a transaction prepares at most a handful of shapes).
// head is "INSERT INTO t (a, b)", tail what follows the VALUES list.
func (t *writeTx) multiRow(head, tail string, width, maxRows int, args []any) error {
	for len(args) > 0 {
		n := maxRows
		for n*width > len(args) {
			n /= 2
		}
		if err := t.exec(valuesQuery(head, tail, width, n), args[:n*width]...); err != nil {
			return err
		}
		args = args[n*width:]
	}
	return nil
}

var valuesQueries sync.Map // head+tail+shape -> query

func valuesQuery(head, tail string, width, rows int) string {
	key := fmt.Sprintf("%s|%s|%d|%d", head, tail, width, rows)
	if q, ok := valuesQueries.Load(key); ok {
		return q.(string)
	}
	row := "(?" + strings.Repeat(", ?", width-1) + ")"
	q := head + " VALUES " + row + strings.Repeat(", "+row, rows-1) + " " + tail
	valuesQueries.Store(key, q)
	return q
}

const (
	rangeCols     = 6
	rangesPerStmt = 16
	pointsPerStmt = 128 // rows of one multi-row insert of points
	rollupCols    = 11
	rollupsPerStm = 32 // 352 parameters a statement
)

// pointsQuery inserts n consecutive points of one series: ?1 is the series, ?2 the time,
// ?3 the first row's sequence number (the others follow it). With run, the steps follow
// each other from ?4 and each row binds only its value; else each row binds its step and
// value. Then, when withKind, each row's kind (else the rows are finite: kind 0).
func pointsQuery(n int, withKind, run bool) string {
	key := fmt.Sprintf("points|%d|%v|%v", n, withKind, run)
	if q, ok := valuesQueries.Load(key); ok {
		return q.(string)
	}
	var b strings.Builder
	b.WriteString("INSERT INTO metric_points (series_id, step, value, kind, at, seq) VALUES ")
	p := 4
	if run {
		p = 5
	}
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		step := fmt.Sprintf("?%d", p)
		if run {
			step = fmt.Sprintf("?4 + %d", i)
		} else {
			p++
		}
		if withKind {
			fmt.Fprintf(&b, "(?1, %s, ?%d, ?%d, ?2, ?3 + %d)", step, p, p+1, i)
			p += 2
		} else {
			fmt.Fprintf(&b, "(?1, %s, ?%d, 0, ?2, ?3 + %d)", step, p, i)
			p++
		}
	}
	q := b.String()
	valuesQueries.Store(key, q)
	return q
}

// insertPoints writes a series' fresh points (in step order, with consecutive sequence
// numbers) in multi-row inserts. A chunk whose steps follow each other (the usual batch)
// binds one parameter a point, its value.
func (t *writeTx) insertPoints(seriesID int64, fresh []MetricPoint, now int64) error {
	for len(fresh) > 0 {
		n := pointsPerStmt
		for n > len(fresh) {
			n /= 2
		}
		chunk := fresh[:n]
		fresh = fresh[n:]
		withKind := false
		run := true
		for i, p := range chunk {
			if p.Kind != KindFinite {
				withKind = true
			}
			if p.Step != chunk[0].Step+i {
				run = false
			}
		}
		args := append(t.args[:0], seriesID, now, chunk[0].Seq)
		if run {
			args = append(args, chunk[0].Step)
		}
		for _, p := range chunk {
			if !run {
				args = append(args, p.Step)
			}
			if withKind {
				var v any
				if p.Kind == KindFinite {
					v = p.Value
				}
				args = append(args, v, kindCode[p.Kind])
			} else {
				args = append(args, p.Value)
			}
		}
		t.args = args
		if err := t.exec(pointsQuery(n, withKind, run), args...); err != nil {
			return err
		}
	}
	return nil
}

// seriesBatch is one metric's share of a batch.
type seriesBatch struct {
	name      string
	id        int64 // 0 while the series does not exist yet
	idx       []int // into the batch, in batch order
	fresh     []MetricPoint
	firstStep sql.NullInt64
	lastStep  sql.NullInt64
}

// appendTx writes one batch: new points get the next sequence numbers of the run, the
// series counters, rollups and sequence ranges are updated. It returns the new points. A
// batch past a quota returns a *RunQuotaError before anything of it is written.
func appendTx(t *writeTx, runID int64, pts []MetricPoint, now int64, q Quotas) ([]MetricPoint, error) {
	byName := make(map[string]int, 16)
	var groups []*seriesBatch
	for i, p := range pts {
		g, ok := byName[p.Name]
		if !ok {
			g = len(groups)
			byName[p.Name] = g
			groups = append(groups, &seriesBatch{name: p.Name})
		}
		groups[g].idx = append(groups[g].idx, i)
	}
	var seq int64
	if err := t.queryRow(qRunSeq, runID).Scan(&seq); err != nil {
		return nil, fmt.Errorf("run %d: %w", runID, err)
	}
	newSeries := 0
	for _, g := range groups {
		err := t.queryRow(qSeries, runID, g.name).
			Scan(&g.id, &g.firstStep, &g.lastStep)
		if errors.Is(err, sql.ErrNoRows) {
			newSeries++
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	if newSeries > 0 {
		var have int64
		if err := t.queryRow(qSeriesCount, runID).Scan(&have); err != nil {
			return nil, err
		}
		if have+int64(newSeries) > int64(q.SeriesPerRun) {
			return nil, &RunQuotaError{Quota: "series", Limit: int64(q.SeriesPerRun), Have: have, Add: int64(newSeries)}
		}
	}
	// Every series' fresh points lie in one array, series after series: together they are
	// the batch's new points, with no second copy.
	added := make([]MetricPoint, 0, len(pts))
	for _, g := range groups {
		var err error
		if added, err = g.pickFresh(t, pts, added); err != nil {
			return nil, err
		}
	}
	total := len(added)
	if total == 0 {
		return nil, nil
	}
	if seq+int64(total) > q.PointsPerRun {
		return nil, &RunQuotaError{Quota: "points", Limit: q.PointsPerRun, Have: seq, Add: int64(total)}
	}
	ranges := make([]any, 0, rangeCols*len(groups))
	blocks := make([]any, 0, blockCols*len(groups))
	for _, g := range groups {
		if len(g.fresh) == 0 {
			continue
		}
		if g.id == 0 {
			if err := t.queryRow(qNewSeries, runID, g.name).Scan(&g.id); err != nil {
				return nil, err
			}
		}
		seqLo := seq + 1
		for i := range g.fresh {
			p := &g.fresh[i]
			seq++
			p.Seq, p.At = seq, fromMS(now)
		}
		// Stragglers (at or before the last step) are point rows; the tail past it goes
		// into blocks, but for non-finite reports.
		tail := g.splitTail()
		if err := t.insertPoints(g.id, g.fresh[:tail], now); err != nil {
			return nil, err
		}
		var single []MetricPoint
		blocks, single = appendBlocks(blocks, single, g.id, g.fresh[tail:], now)
		for i := range single {
			if err := t.insertPoints(g.id, single[i:i+1], now); err != nil {
				return nil, err
			}
		}
		if err := updateSeries(t, g.id, g.fresh); err != nil {
			return nil, err
		}
		ranges = append(ranges, runID, seq, seqLo, g.id, g.fresh[0].Step, g.fresh[len(g.fresh)-1].Step)
	}
	if err := t.multiRow(qBlocksHead, "", blockCols, blocksPerStmt, blocks); err != nil {
		return nil, err
	}
	if err := t.multiRow(qSeqRanges, "", rangeCols, rangesPerStmt, ranges); err != nil {
		return nil, err
	}
	var folds []rollupRow
	for _, g := range groups {
		if len(g.fresh) > 0 {
			folds = foldRollups(folds, g.id, g.fresh, now)
		}
	}
	if err := writeRollups(t, folds); err != nil {
		return nil, err
	}
	if err := t.exec(qSetRunSeq, seq, runID); err != nil {
		return nil, err
	}
	return added, nil
}

// pickFresh appends to out the batch's points of the series not stored yet, in step order
// (so the keyed inserts append to the table), and sets g.fresh to them. A step twice in
// one batch keeps the first. out must have room for them (g.fresh shares its array).
func (g *seriesBatch) pickFresh(t *writeTx, pts, out []MetricPoint) ([]MetricPoint, error) {
	lo, hi := pts[g.idx[0]].Step, pts[g.idx[0]].Step
	sorted := true
	for k, i := range g.idx {
		st := pts[i].Step
		lo, hi = min(lo, st), max(hi, st)
		if k > 0 && st <= pts[g.idx[k-1]].Step {
			sorted = false
		}
	}
	var existing map[int]bool
	// Batches are normally past the end of their series: the stored step bounds then spare
	// the lookup.
	if g.id != 0 && g.firstStep.Valid && int64(hi) >= g.firstStep.Int64 && int64(lo) <= g.lastStep.Int64 {
		var err error
		if existing, err = stepsIn(t, g.id, lo, hi); err != nil {
			return out, err
		}
	}
	start := len(out)
	if sorted && len(existing) == 0 {
		for _, i := range g.idx {
			out = append(out, pts[i])
		}
		g.fresh = out[start:]
		return out, nil
	}
	if existing == nil {
		existing = map[int]bool{}
	}
	for _, i := range g.idx {
		p := pts[i]
		if existing[p.Step] {
			continue
		}
		existing[p.Step] = true
		out = append(out, p)
	}
	g.fresh = out[start:]
	slices.SortStableFunc(g.fresh, func(a, b MetricPoint) int { return cmp.Compare(a.Step, b.Step) })
	return out, nil
}

// stepsIn returns the steps a series already has in [lo, hi].
func stepsIn(t *writeTx, seriesID int64, lo, hi int) (map[int]bool, error) {
	st, err := t.stmt(qStepsIn)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(t.ctx, seriesID, lo, hi)
	if err != nil {
		return nil, err
	}
	out := map[int]bool{}
	for rows.Next() {
		var st int
		if err := rows.Scan(&st); err != nil {
			rows.Close()
			return nil, err
		}
		out[st] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	bs, err := t.stmt(qBlocksIn)
	if err != nil {
		return nil, err
	}
	blocked, err := blockPoints(t.ctx, stmtQuerier{bs}, seriesID, lo, hi, -1)
	for _, p := range blocked {
		out[p.Step] = true
	}
	return out, err
}

// stmtQuerier runs a prepared statement as a querier (its query text is the statement's).
type stmtQuerier struct{ st *sql.Stmt }

func (q stmtQuerier) QueryContext(ctx context.Context, _ string, args ...any) (*sql.Rows, error) {
	return q.st.QueryContext(ctx, args...)
}

// updateSeries adds fresh (in step order) to the series' counters.
func updateSeries(t *writeTx, seriesID int64, fresh []MetricPoint) error {
	first, last := fresh[0], fresh[len(fresh)-1]
	var lastValue any
	if last.Kind == KindFinite {
		lastValue = last.Value
	}
	return t.exec(qUpdateSeries, len(fresh), first.Step, first.Step, last.Step, lastValue, last.Step, last.Step, seriesID)
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

// rollupRow is one bucket's summary of a batch, merged into its stored row.
type rollupRow struct {
	series int64
	level  int
	bucket int
	rollup
}

// foldRollups folds a series' finite points (in step order) into each level's buckets in
// memory: consecutive steps share a bucket, so a batch touches a few rows per level.
func foldRollups(out []rollupRow, seriesID int64, fresh []MetricPoint, now int64) []rollupRow {
	for level := 1; level <= rollupLevels; level++ {
		var cur *rollupRow
		for _, p := range fresh {
			if p.Kind != KindFinite {
				continue
			}
			b := p.Step >> bucketShift(level)
			if cur == nil || cur.bucket != b {
				out = append(out, rollupRow{series: seriesID, level: level, bucket: b})
				cur = &out[len(out)-1]
			}
			cur.add(p.Step, p.Value, now)
		}
	}
	return out
}

// writeRollups merges folded buckets into their stored rows. The folds of one series are
// in step order, so a bucket never appears twice.
func writeRollups(t *writeTx, folds []rollupRow) error {
	if len(folds) == 0 {
		return nil
	}
	args := make([]any, 0, len(folds)*rollupCols)
	for _, r := range folds {
		args = append(args, r.series, r.level, r.bucket, r.n, r.min, r.minStep, r.max, r.maxStep, r.lastStep, r.lastValue, r.lastAt)
	}
	return t.multiRow(qRollupsHead, qRollupsTail, rollupCols, rollupsPerStm, args)
}

// MetricsAfter returns a run's points with seq > afterSeq in seq order, at most limit. It
// reads the batches' sequence ranges after afterSeq (disjoint, in order), then each range's
// points by key.
func (s *Store) MetricsAfter(ctx context.Context, runID, afterSeq int64, limit int) ([]MetricPoint, error) {
	type seqRange struct {
		seqLo, seqHi, series int64
		stepLo, stepHi       int
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq_lo, seq_hi, series_id, step_lo, step_hi FROM metric_seq_ranges
		WHERE run_id = ? AND seq_hi > ? ORDER BY seq_hi LIMIT ?`, runID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("store: metrics: %w", err)
	}
	var ranges []seqRange
	for rows.Next() {
		var r seqRange
		if err := rows.Scan(&r.seqLo, &r.seqHi, &r.series, &r.stepLo, &r.stepHi); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: metrics: %w", err)
		}
		ranges = append(ranges, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(ranges) == 0 {
		return nil, err
	}
	names := map[int64]string{}
	nr, err := s.r.QueryContext(ctx, "SELECT id, name FROM metric_series WHERE run_id = ?", runID)
	if err != nil {
		return nil, fmt.Errorf("store: metrics: %w", err)
	}
	for nr.Next() {
		var id int64
		var name string
		if err := nr.Scan(&id, &name); err != nil {
			nr.Close()
			return nil, fmt.Errorf("store: metrics: %w", err)
		}
		names[id] = name
	}
	nr.Close()
	var out []MetricPoint
	for _, r := range ranges {
		if len(out) >= limit {
			break
		}
		prs, err := s.r.QueryContext(ctx, `SELECT seq, step, value, kind, at FROM metric_points
			WHERE series_id = ? AND step BETWEEN ? AND ? AND seq BETWEEN ? AND ?`,
			r.series, r.stepLo, r.stepHi, max(r.seqLo, afterSeq+1), r.seqHi)
		if err != nil {
			return nil, fmt.Errorf("store: metrics: %w", err)
		}
		from := len(out)
		for prs.Next() {
			p, err := scanPoint(prs, false)
			if err != nil {
				prs.Close()
				return nil, fmt.Errorf("store: metrics: %w", err)
			}
			p.Name = names[r.series]
			out = append(out, p)
		}
		prs.Close()
		if err := prs.Err(); err != nil {
			return nil, fmt.Errorf("store: metrics: %w", err)
		}
		blocked, err := blockPoints(ctx, s.r, r.series, r.stepLo, r.stepHi, -1)
		if err != nil {
			return nil, fmt.Errorf("store: metrics: %w", err)
		}
		for _, p := range blocked {
			if p.Seq > afterSeq && p.Seq >= r.seqLo && p.Seq <= r.seqHi {
				p.Name = names[r.series]
				out = append(out, p)
			}
		}
		slices.SortFunc(out[from:], func(a, b MetricPoint) int { return cmp.Compare(a.Seq, b.Seq) })
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
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
		lo := math.MinInt64
		for {
			pts, err := seriesPoints(ctx, s.r, sr.ID, lo, math.MaxInt64, false, page)
			if err != nil {
				return fmt.Errorf("store: export metrics: %w", err)
			}
			for _, p := range pts {
				p.Name = sr.Name
				if err := fn(p); err != nil {
					return err
				}
			}
			if len(pts) < page {
				break
			}
			lo = pts[len(pts)-1].Step + 1
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
		WHERE s.run_id = ? AND s.name = ?
		UNION ALL SELECT b.last_step, b.at FROM metric_series s
		JOIN metric_blocks b ON b.series_id = s.id AND b.last_step = s.last_step
			AND b.first_step = (SELECT MAX(first_step) FROM metric_blocks WHERE series_id = s.id AND first_step <= s.last_step)
		WHERE s.run_id = ? AND s.name = ?`, runID, name, runID, name).Scan(&step, &atMS)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, false, nil
	}
	if err != nil {
		return 0, time.Time{}, false, fmt.Errorf("store: latest metric step: %w", err)
	}
	return step, fromMS(atMS), true, nil
}
