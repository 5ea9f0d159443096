package store

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// historyShape is a step distribution: the steps one series is logged at.
type historyShape struct {
	name  string
	steps []int
}

// historyShapes are the distributions the history budget must hold for: uniform, a dense
// run with one far outlier (the shape a density guess gets wrong both ways), clusters far
// apart, steps spreading out quadratically, and a dense head with a sparse random tail.
func historyShapes(n int) []historyShape {
	rng := rand.New(rand.NewPCG(5, 6))
	seq := func(from, count, stride int) []int {
		out := make([]int, count)
		for i := range out {
			out[i] = from + i*stride
		}
		return out
	}
	outlier := append(seq(0, n-1, 1), 1_000_000_000)
	var clusters []int
	for i, at := range []int{0, 3_000_000, 47_000_000, 500_000_000, 999_000_000} {
		stride := 1 + i%3
		clusters = append(clusters, seq(at, n/5, stride)...)
	}
	quadratic := make([]int, n)
	for i := range quadratic {
		quadratic[i] = i * i
	}
	headTail := seq(0, n/2, 1)
	seen := map[int]bool{}
	for len(headTail) < n {
		st := n/2 + rng.IntN(1_000_000_000-n/2)
		if !seen[st] {
			seen[st] = true
			headTail = append(headTail, st)
		}
	}
	slices.Sort(headTail)
	return []historyShape{
		{"uniform", seq(0, n, 1)},
		{"outlier", outlier},
		{"clusters", clusters},
		{"quadratic", quadratic},
		{"dense head, sparse tail", headTail},
	}
}

// historyValue is a noisy falling curve with a spike every 7,919 points.
func historyValue(i, step int) float64 {
	if i%7919 == 4000 {
		return 100
	}
	return 2 + math.Exp(-float64(i)/5000) + 0.01*float64(step%13)
}

// TestHistoryBudgetHoldsForEveryStepDistribution: for every shape, window and budget, an
// answer holds at most the budget; a window with more points than the budget gets at
// least half of it, downsampled, with every spike inside the envelope; a window within the
// budget gets every point.
func TestHistoryBudgetHoldsForEveryStepDistribution(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.queue(t, "lora", f.chat)
	const n = 30_000
	for _, shape := range historyShapes(n) {
		values := make(map[int]float64, len(shape.steps))
		for lo := 0; lo < len(shape.steps); lo += 10_000 {
			var pts []MetricPoint
			for i := lo; i < min(lo+10_000, len(shape.steps)); i++ {
				v := historyValue(i, shape.steps[i])
				values[shape.steps[i]] = v
				pts = append(pts, MetricPoint{Name: shape.name, Step: shape.steps[i], Value: v})
			}
			if _, err := f.s.AppendMetrics(ctx, r.ID, pts); err != nil {
				t.Fatal(err)
			}
		}
		steps := shape.steps
		last := steps[len(steps)-1]
		windows := [][2]int{
			{-1, -1}, // the whole series
			{0, n - 1},
			{0, 999_999},
			{steps[len(steps)/3], steps[len(steps)/3+150]},
			{steps[len(steps)/2], last},
			{steps[10], steps[len(steps)-10]},
			{last / 3, last/3 + 1_000_000},
		}
		for _, w := range windows {
			for _, budget := range []int{16, 101, 500, 2000} {
				var from, to *int
				lo, hi := steps[0], last
				if w[0] >= 0 {
					from, to, lo, hi = &w[0], &w[1], w[0], w[1]
				}
				h, err := f.s.MetricHistory(ctx, r.ID, shape.name, from, to, budget)
				if err != nil {
					t.Fatal(err)
				}
				inWindow, top, first, lastIn := 0, math.Inf(-1), math.MaxInt, -1
				for st, v := range values {
					if st >= lo && st <= hi {
						inWindow++
						top = max(top, v)
						first, lastIn = min(first, st), max(lastIn, st)
					}
				}
				where := fmt.Sprintf("%s, window %d..%d (%d points), budget %d: level %d, %d drawn, %d buckets",
					shape.name, lo, hi, inWindow, budget, h.Level, len(h.Line), len(h.Envelope))
				if len(h.Line) > budget || len(h.Envelope) > budget {
					t.Fatalf("%s: over the budget", where)
				}
				if inWindow <= budget {
					if h.Level != 0 || len(h.Line) != inWindow {
						t.Fatalf("%s: want every point, raw", where)
					}
					continue
				}
				if h.Level == 0 || len(h.Line) < (budget+1)/2 {
					t.Fatalf("%s: want at least half the budget, downsampled", where)
				}
				envTop := math.Inf(-1)
				for i, b := range h.Envelope {
					envTop = max(envTop, b.Max)
					if b.StepLo > b.StepHi || (i > 0 && b.StepLo <= h.Envelope[i-1].StepHi) {
						t.Fatalf("%s: envelope buckets overlap or are out of order at %d", where, i)
					}
				}
				if h.Envelope[0].StepLo > first || h.Envelope[len(h.Envelope)-1].StepHi < lastIn {
					t.Fatalf("%s: the envelope %d..%d does not cover the window's points %d..%d", where,
						h.Envelope[0].StepLo, h.Envelope[len(h.Envelope)-1].StepHi, first, lastIn)
				}
				if envTop < top {
					t.Fatalf("%s: the window's highest value %v is not in the envelope (top %v)", where, top, envTop)
				}
			}
		}
	}
}

// TestNonFiniteMarksStayWithinTheBudget: a series that reports NaN and +Inf thousands of
// times gets at most the budget of marks, spread over the whole window.
func TestNonFiniteMarksStayWithinTheBudget(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.queue(t, "lora", f.chat)
	var pts []MetricPoint
	for step := range 6000 {
		kind := KindNaN
		if step%2 == 1 {
			kind = KindPosInf
		}
		pts = append(pts, MetricPoint{Name: "grad_norm", Step: step, Kind: kind})
	}
	pts = append(pts, MetricPoint{Name: "grad_norm", Step: 6000, Value: 1})
	if _, err := f.s.AppendMetrics(ctx, r.ID, pts); err != nil {
		t.Fatal(err)
	}
	for _, budget := range []int{16, 100, 2000} {
		h, err := f.s.MetricHistory(ctx, r.ID, "grad_norm", nil, nil, budget)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]bool{}
		for _, nf := range h.NonFinite {
			kinds[nf.Kind] = true
		}
		if len(h.NonFinite) > budget || len(h.NonFinite) < budget/4 || !kinds[KindNaN] || !kinds[KindPosInf] ||
			h.NonFinite[0].Step != 0 || h.NonFinite[len(h.NonFinite)-1].Step < 6000-6000/(budget/3) {
			t.Fatalf("budget %d: %d marks, kinds %v, first %+v last %+v", budget, len(h.NonFinite), kinds, h.NonFinite[0], h.NonFinite[len(h.NonFinite)-1])
		}
	}
	from, to := 100, 120
	if h, _ := f.s.MetricHistory(ctx, r.ID, "grad_norm", &from, &to, 100); len(h.NonFinite) != 21 {
		t.Fatalf("a narrow window: %d marks, want all 21", len(h.NonFinite))
	}
}
