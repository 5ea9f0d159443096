package store

import (
	"context"
	"testing"
)

// The points of a batch are written by multi-row statements of several shapes: steps that
// follow each other (one bound value a row) or not, all finite or with non-finite kinds,
// in chunks of power-of-two sizes. Every shape must store exactly what was sent.
func TestEveryInsertShapeStoresPointsExactly(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t)
	r := f.queue(t, "lora", f.chat)
	kinds := []string{KindNaN, KindPosInf, KindNegInf}
	var batch []MetricPoint
	add := func(name string, steps []int, nonFinite bool) {
		for i, st := range steps {
			p := MetricPoint{Name: name, Step: st, Value: float64(st)/7 - 3}
			if nonFinite && i%5 == 2 {
				p.Value, p.Kind = 0, kinds[i%3]
			}
			batch = append(batch, p)
		}
	}
	run := func(lo, n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = lo + i
		}
		return out
	}
	gaps := func(lo, n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = lo + 3*i + i%2
		}
		return out
	}
	add("consecutive", run(1000, 301), false) // 128 + 128 + 32 + 8 + 4 + 1 rows
	add("gapped", gaps(0, 77), false)
	add("consecutive/nonfinite", run(5, 130), true)
	add("gapped/nonfinite", gaps(40, 19), true)
	add("consecutive/late", run(1_000_000_000-9, 10), false)
	added, err := f.s.AppendMetrics(ctx, r.ID, batch)
	if err != nil || len(added) != len(batch) {
		t.Fatalf("%d of %d added: %v", len(added), len(batch), err)
	}
	want := map[string]map[int]MetricPoint{}
	for _, p := range batch {
		if want[p.Name] == nil {
			want[p.Name] = map[int]MetricPoint{}
		}
		want[p.Name][p.Step] = p
	}
	got, err := f.s.MetricsAfter(ctx, r.ID, 0, 10_000)
	if err != nil || len(got) != len(batch) {
		t.Fatalf("read %d of %d points: %v", len(got), len(batch), err)
	}
	for i, p := range got {
		w, ok := want[p.Name][p.Step]
		if !ok || p.Value != w.Value || p.Kind != w.Kind || p.Seq != int64(i+1) {
			t.Fatalf("stored %+v, sent %+v (seq want %d)", p, w, i+1)
		}
		delete(want[p.Name], p.Step)
	}
	// A second batch of the same points stores nothing: every one is a duplicate.
	if again, err := f.s.AppendMetrics(ctx, r.ID, batch); err != nil || len(again) != 0 {
		t.Fatalf("resend stored %d points: %v", len(again), err)
	}
}
