package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Blocks (migration 0031): the finite points a batch appends past a series' last step are
// stored as one metric_blocks row per series and batch, values packed in a BLOB; a point
// that arrives at or before the last step (a straggler), and every non-finite report,
// stays a metric_points row. Readers merge the two: steps never repeat between them
// (ingest skips a step already stored in either), so a merge by step is the series.

// blockMaxPoints bounds a block, so reading a few points of a window decodes little.
const blockMaxPoints = 256

const (
	blockCols     = 7
	blocksPerStmt = 16
	qBlocksHead   = "INSERT INTO metric_blocks (series_id, first_step, last_step, n, at, seq, data)"
	// qBlocksIn reads the blocks that may hold steps in [?2, ?3]: the one starting at or
	// before ?2 (blocks never overlap, so no earlier one reaches ?2) and those starting in
	// the window, in step order, at most ?4.
	qBlocksIn = `SELECT first_step, last_step, n, at, seq, data FROM metric_blocks
		WHERE series_id = ?1 AND first_step <= ?3
		AND first_step >= COALESCE((SELECT MAX(first_step) FROM metric_blocks WHERE series_id = ?1 AND first_step <= ?2), ?2)
		ORDER BY first_step LIMIT ?4`
)

// encodeBlock packs finite points (in step order) into a block's data.
func encodeBlock(buf []byte, pts []MetricPoint) []byte {
	buf = buf[:0]
	for _, p := range pts {
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(p.Value))
	}
	first, last := pts[0].Step, pts[len(pts)-1].Step
	if last-first+1 == len(pts) {
		return buf
	}
	for i := 1; i < len(pts); i++ {
		buf = binary.AppendUvarint(buf, uint64(pts[i].Step-pts[i-1].Step))
	}
	return buf
}

// block is one metric_blocks row as read.
type block struct {
	first, last, n int
	at, seq        int64
	data           []byte
}

// points decodes the block's points with steps in [lo, hi], appending them to out.
func (b *block) points(out []MetricPoint, lo, hi int) ([]MetricPoint, error) {
	if len(b.data) < 8*b.n || b.n < 1 {
		return out, fmt.Errorf("metric block at step %d: %d bytes for %d points", b.first, len(b.data), b.n)
	}
	gaps := b.data[8*b.n:]
	contiguous := b.last-b.first+1 == b.n
	step := b.first
	at := fromMS(b.at)
	for i := range b.n {
		if i > 0 {
			if contiguous {
				step++
			} else {
				d, k := binary.Uvarint(gaps)
				if k <= 0 {
					return out, fmt.Errorf("metric block at step %d: bad step gaps", b.first)
				}
				gaps = gaps[k:]
				step += int(d)
			}
		}
		if step > hi {
			break
		}
		if step < lo {
			continue
		}
		v := math.Float64frombits(binary.LittleEndian.Uint64(b.data[8*i:]))
		out = append(out, MetricPoint{Seq: b.seq + int64(i), Step: step, Value: v, At: at})
	}
	return out, nil
}

// querier is a pool or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// blockPoints returns the blocks' points of a series with steps in [lo, hi], in step
// order: at least the first limit of them (a negative limit: all).
func blockPoints(ctx context.Context, q querier, seriesID int64, lo, hi, limit int) ([]MetricPoint, error) {
	blocks := int64(math.MaxInt64)
	if limit >= 0 {
		blocks = int64(limit) + 2 // the first and last block may hold none of the window
	}
	rows, err := q.QueryContext(ctx, qBlocksIn, seriesID, lo, hi, blocks)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []MetricPoint
	for rows.Next() {
		var b block
		if err := rows.Scan(&b.first, &b.last, &b.n, &b.at, &b.seq, &b.data); err != nil {
			return nil, err
		}
		if b.last < lo {
			continue
		}
		if out, err = b.points(out, lo, hi); err != nil {
			return nil, err
		}
		if limit >= 0 && len(out) >= limit {
			break // later blocks only hold later steps
		}
	}
	return out, rows.Err()
}

// seriesPoints returns the first limit points (a negative limit: all) of a series with
// steps in [lo, hi], in step order, from the point rows and the blocks; with finiteOnly,
// the finite ones.
func seriesPoints(ctx context.Context, q querier, seriesID int64, lo, hi int, finiteOnly bool, limit int) ([]MetricPoint, error) {
	kinds := ""
	if finiteOnly {
		kinds = " AND kind = 0"
	}
	rows, err := q.QueryContext(ctx, `SELECT seq, step, value, kind, at FROM metric_points
		WHERE series_id = ? AND step BETWEEN ? AND ?`+kinds+` ORDER BY step LIMIT ?`, seriesID, lo, hi, limit)
	if err != nil {
		return nil, err
	}
	var single []MetricPoint
	for rows.Next() {
		p, err := scanPoint(rows, false)
		if err != nil {
			rows.Close()
			return nil, err
		}
		single = append(single, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	blocked, err := blockPoints(ctx, q, seriesID, lo, hi, limit)
	if err != nil {
		return nil, err
	}
	out := mergeByStep(single, blocked)
	if limit >= 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// mergeByStep merges two step-ordered lists.
func mergeByStep(a, b []MetricPoint) []MetricPoint {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	out := make([]MetricPoint, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0].Step <= b[0].Step {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// lastFinite returns the last n finite points of a run's metric at or before step upTo,
// oldest first.
func (s *Store) lastFinite(ctx context.Context, runID int64, name string, upTo, n int) ([]MetricPoint, error) {
	var id int64
	err := s.r.QueryRowContext(ctx, "SELECT id FROM metric_series WHERE run_id = ? AND name = ?", runID, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) || n <= 0 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, step, value, kind, at FROM metric_points
		WHERE series_id = ? AND step <= ? AND kind = 0 ORDER BY step DESC LIMIT ?`, id, upTo, n)
	if err != nil {
		return nil, err
	}
	var single []MetricPoint
	for rows.Next() {
		p, err := scanPoint(rows, false)
		if err != nil {
			rows.Close()
			return nil, err
		}
		single = append(single, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.Reverse(single)
	// Blocks from the last one starting at or before upTo backwards, until n points.
	br, err := s.r.QueryContext(ctx, `SELECT first_step, last_step, n, at, seq, data FROM metric_blocks
		WHERE series_id = ? AND first_step <= ? ORDER BY first_step DESC`, id, upTo)
	if err != nil {
		return nil, err
	}
	var blocked []MetricPoint
	for br.Next() && len(blocked) < n {
		var b block
		if err := br.Scan(&b.first, &b.last, &b.n, &b.at, &b.seq, &b.data); err != nil {
			br.Close()
			return nil, err
		}
		pts, err := b.points(nil, b.first, upTo)
		if err != nil {
			br.Close()
			return nil, err
		}
		blocked = append(pts, blocked...)
	}
	br.Close()
	if err := br.Err(); err != nil {
		return nil, err
	}
	out := mergeByStep(single, blocked)
	out = out[max(len(out)-n, 0):]
	for i, p := range out {
		out[i] = MetricPoint{Name: name, Step: p.Step, Value: p.Value}
	}
	return out, nil
}

// splitTail returns the index in fresh (step-ordered, none stored yet) from which the
// points lie past the series' last stored step: those are appended as blocks, the ones
// before stay point rows.
func (g *seriesBatch) splitTail() int {
	if !g.lastStep.Valid {
		return 0
	}
	i, _ := slices.BinarySearchFunc(g.fresh, int(g.lastStep.Int64)+1, func(p MetricPoint, step int) int { return cmp.Compare(p.Step, step) })
	return i
}

// appendBlocks adds a series' tail (step-ordered, past its last step, sequence numbers
// set) to args: runs of consecutive finite points become blocks of at most
// blockMaxPoints; a non-finite point is returned in rows, to be stored as a point row.
func appendBlocks(args []any, rows []MetricPoint, seriesID int64, tail []MetricPoint, now int64) ([]any, []MetricPoint) {
	flush := func(run []MetricPoint) {
		for len(run) > 0 {
			b := run[:min(len(run), blockMaxPoints)]
			run = run[len(b):]
			args = append(args, seriesID, b[0].Step, b[len(b)-1].Step, len(b), now, b[0].Seq, encodeBlock(make([]byte, 0, 8*len(b)), b))
		}
	}
	start := 0
	for i, p := range tail {
		if p.Kind != KindFinite {
			flush(tail[start:i])
			rows = append(rows, p)
			start = i + 1
		}
	}
	flush(tail[start:])
	return args, rows
}
