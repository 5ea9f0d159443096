package store

import (
	"context"
	"encoding/binary"
	"math"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// blocksToPointRows stores every block's points as metric_points rows instead, as a
// database written before migration 0031 held them (tests of older migrations replay
// their SQL over point rows).
func blocksToPointRows(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	rows, err := s.w.QueryContext(ctx, "SELECT series_id, first_step, last_step, n, at, seq, data FROM metric_blocks")
	if err != nil {
		t.Fatal(err)
	}
	type owned struct {
		series int64
		pts    []MetricPoint
	}
	var all []owned
	for rows.Next() {
		var b block
		var series int64
		if err := rows.Scan(&series, &b.first, &b.last, &b.n, &b.at, &b.seq, &b.data); err != nil {
			t.Fatal(err)
		}
		pts, err := b.points(nil, b.first, b.last)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, owned{series, pts})
	}
	rows.Close()
	for _, o := range all {
		for _, p := range o.pts {
			if _, err := s.w.ExecContext(ctx, "INSERT INTO metric_points (series_id, step, value, kind, at, seq) VALUES (?, ?, ?, 0, ?, ?)",
				o.series, p.Step, p.Value, ms(p.At), p.Seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.w.ExecContext(ctx, "DELETE FROM metric_blocks"); err != nil {
		t.Fatal(err)
	}
}

// modelPoint is what a series must read back at a step.
type modelPoint struct {
	value float64
	kind  string
	seq   int64
}

// TestBlocksAndStragglersReadBackAsOneSeries sends batches in order (stored as blocks,
// gaps and a NaN inside), stragglers into the gaps and before the first step (point rows),
// and re-sends with other values (skipped): every reader must see exactly the series a
// point table would hold.
func TestBlocksAndStragglersReadBackAsOneSeries(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t)
	r := f.queue(t, "lora", f.chat)
	model := map[int]modelPoint{}
	var seq int64
	send := func(pts []MetricPoint) {
		t.Helper()
		added, err := f.s.AppendMetrics(ctx, r.ID, pts)
		if err != nil {
			t.Fatal(err)
		}
		fresh := 0
		for _, p := range pts {
			if _, ok := model[p.Step]; !ok {
				fresh++
				model[p.Step] = modelPoint{value: p.Value, kind: p.Kind}
			}
		}
		if len(added) != fresh {
			t.Fatalf("%d points added, want %d", len(added), fresh)
		}
		for _, p := range added {
			seq++
			if p.Seq != seq {
				t.Fatalf("step %d got seq %d, want %d", p.Step, p.Seq, seq)
			}
			m := model[p.Step]
			m.seq = p.Seq
			model[p.Step] = m
		}
	}
	batch := func(steps []int, value func(int) float64) []MetricPoint {
		var pts []MetricPoint
		for _, s := range steps {
			pts = append(pts, MetricPoint{Name: "eval/loss", Step: s, Value: value(s)})
		}
		return pts
	}
	span := func(lo, hi, every int) []int {
		var out []int
		for s := lo; s < hi; s += every {
			out = append(out, s)
		}
		return out
	}
	v1 := func(s int) float64 { return 1 / float64(s+3) }
	v2 := func(s int) float64 { return -float64(s) }
	send(batch(span(100, 700, 1), v1))       // 600 contiguous steps: blocks of at most 256
	send(batch(span(700, 1500, 3), v1))      // gaps of 3
	send(batch([]int{1500, 1501, 9000}, v1)) // an uneven gap
	withNaN := batch(span(9001, 9011, 1), v1)
	withNaN[4] = MetricPoint{Name: "eval/loss", Step: 9005, Kind: KindNaN}
	send(withNaN)                                                        // a NaN inside the tail
	send(batch(span(701, 800, 3), v2))                                   // stragglers into the gaps
	send(batch(span(0, 120, 1), v2))                                     // before the first step, half already stored
	send(batch(span(100, 700, 1), v2))                                   // a re-send with other values: nothing new
	send(append(batch([]int{9011, 9012}, v1), batch([]int{650}, v2)...)) // tail and a duplicate

	var blocks, rows int
	f.s.r.QueryRow("SELECT COUNT(*) FROM metric_blocks").Scan(&blocks)
	f.s.r.QueryRow("SELECT COUNT(*) FROM metric_points").Scan(&rows)
	if blocks < 6 || rows != 33+100+1 {
		t.Fatalf("%d blocks and %d point rows: the tails should be blocks, the stragglers and the NaN rows", blocks, rows)
	}
	var steps []int
	for s := range model {
		steps = append(steps, s)
	}
	slices.Sort(steps)

	// Export: every point, in step order.
	var got []MetricPoint
	if err := f.s.ExportMetrics(ctx, r.ID, func(p MetricPoint) error { got = append(got, p); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(steps) {
		t.Fatalf("export: %d points, want %d", len(got), len(steps))
	}
	for i, p := range got {
		m := model[steps[i]]
		if p.Step != steps[i] || p.Value != m.value || p.Kind != m.kind || p.Seq != m.seq || p.Name != "eval/loss" {
			t.Fatalf("export point %d: %+v, want step %d %+v", i, p, steps[i], m)
		}
	}
	// Live stream: every point in sequence order, whatever the limit.
	all, err := f.s.MetricsAfter(ctx, r.ID, 0, 10_000)
	if err != nil || len(all) != len(steps) {
		t.Fatalf("after 0: %d points, %v", len(all), err)
	}
	for i, p := range all {
		if p.Seq != int64(i+1) || model[p.Step].seq != p.Seq || model[p.Step].value != p.Value {
			t.Fatalf("stream point %d: %+v", i, p)
		}
	}
	for _, after := range []int64{0, 5, 599, 600, 700, 1010} {
		part, err := f.s.MetricsAfter(ctx, r.ID, after, 7)
		if err != nil || !slices.Equal(part, all[after:min(int(after)+7, len(all))]) {
			t.Fatalf("after %d: %+v, %v", after, part, err)
		}
	}
	// History: every finite point of a window, in order (level 0).
	from, to := 600, 1600
	h, err := f.s.MetricHistory(ctx, r.ID, "eval/loss", &from, &to, 5000)
	if err != nil || h.Level != 0 {
		t.Fatalf("history: level %d, %v", h.Level, err)
	}
	var want []int
	for _, s := range steps {
		if s >= from && s <= to && model[s].kind == KindFinite {
			want = append(want, s)
		}
	}
	if len(h.Line) != len(want) {
		t.Fatalf("history: %d points, want %d", len(h.Line), len(want))
	}
	for i, p := range h.Line {
		if p.Step != want[i] || p.Value != model[want[i]].value {
			t.Fatalf("history point %d: %+v, want step %d", i, p, want[i])
		}
	}
	whole, err := f.s.MetricHistory(ctx, r.ID, "eval/loss", nil, nil, 64)
	if err != nil || whole.Points != int64(len(steps)) || len(whole.Line) > 64 || len(whole.NonFinite) != 1 || whole.NonFinite[0].Step != 9005 {
		t.Fatalf("whole history: %d points, %d drawn, non-finite %+v, %v", whole.Points, len(whole.Line), whole.NonFinite, err)
	}
	// The newest step and the last finite values before a step.
	if step, _, ok, err := f.s.LatestMetricStep(ctx, r.ID, "eval/loss"); err != nil || !ok || step != 9012 {
		t.Fatalf("latest step %d %v %v", step, ok, err)
	}
	recent, err := f.s.RecentFinite(ctx, r.ID, "eval/loss", 9007, 5)
	if err != nil {
		t.Fatal(err)
	}
	var recentSteps []int
	for _, p := range recent {
		if p.Value != model[p.Step].value {
			t.Fatalf("recent %+v", p)
		}
		recentSteps = append(recentSteps, p.Step)
	}
	if !slices.Equal(recentSteps, []int{9002, 9003, 9004, 9006, 9007}) {
		t.Fatalf("recent steps %v", recentSteps)
	}
	recent, _ = f.s.RecentFinite(ctx, r.ID, "eval/loss", 704, 4) // point rows and blocks interleaved
	recentSteps = recentSteps[:0]
	for _, p := range recent {
		recentSteps = append(recentSteps, p.Step)
	}
	if !slices.Equal(recentSteps, []int{700, 701, 703, 704}) {
		t.Fatalf("recent steps %v", recentSteps)
	}
}

// TestDeletedRunLeavesNoBlockByteBehind: a value whose 8 bytes spell a marker is stored in
// a block; once the run is purged, neither the database nor its log holds the marker.
func TestDeletedRunLeavesNoBlockByteBehind(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t)
	r := f.finishedRunWithOutput(t, f.chat)
	marker := "BLKmark!"
	v := math.Float64frombits(binary.LittleEndian.Uint64([]byte(marker)))
	pts := make([]MetricPoint, 0, 50)
	for s := 2; s < 52; s++ {
		pts = append(pts, MetricPoint{Name: "loss", Step: s, Value: v})
	}
	if _, err := f.s.AppendMetricsDirect(ctx, r.ID, pts); err != nil {
		t.Fatal(err)
	}
	var seqno int
	var name, file string
	if err := f.s.r.QueryRow("PRAGMA database_list").Scan(&seqno, &name, &file); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(file)
	if err := f.s.CheckpointWAL(ctx); err != nil {
		t.Fatal(err)
	}
	if hits := grepDir(t, dir, marker); len(hits) == 0 {
		t.Fatal("the marker is not in the database: the test proves nothing")
	}
	if err := f.s.DeleteRun(ctx, f.ada.ID, r.ID); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(30*24*time.Hour + time.Hour)
	if rep, err := f.s.Purge(ctx, f.v, PurgeOptions{}); err != nil || rep.Runs != 1 {
		t.Fatalf("purge: %+v %v", rep, err)
	}
	if hits := grepDir(t, dir, marker); len(hits) != 0 {
		t.Fatalf("a purged block's bytes are still in %v", hits)
	}
}
