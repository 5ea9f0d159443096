package handlers

import (
	"slices"
	"testing"
)

// The rows tunelab_worker.data.split holds out, as CPython printed them.
func TestPySplitHoldsOutThePythonWorkersRows(t *testing.T) {
	cases := []struct {
		n       int
		percent float64
		seed    int64
		want    []int
	}{
		{10, 20, 42, []int{3, 7}},
		{7, 10, 0, []int{4}},
		{100, 15, 123456789, []int{0, 10, 31, 33, 46, 55, 57, 64, 73, 75, 84, 86, 87, 95, 96}},
		{3, 50, 1, []int{1, 2}},
		{2, 10, 7, []int{0}},
		{50, 2.5, 1<<40 + 5, []int{11}},
		{5, 0, 42, nil},
	}
	for _, c := range cases {
		var got []int
		for i, h := range pySplitHeld(c.n, c.percent, c.seed) {
			if h {
				got = append(got, i)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("split(%d rows, %v%%, seed %d) = %v, want %v", c.n, c.percent, c.seed, got, c.want)
		}
	}
}
