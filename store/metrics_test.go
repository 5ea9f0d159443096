package store

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// appendSeries writes n points of one metric in batches of batch, value(step) each.
func appendSeries(t testing.TB, s *Store, runID int64, name string, n, batch int, value func(int) float64) {
	t.Helper()
	ctx := context.Background()
	for lo := 0; lo < n; lo += batch {
		pts := make([]MetricPoint, 0, batch)
		for step := lo; step < min(lo+batch, n); step++ {
			pts = append(pts, MetricPoint{Name: name, Step: step, Value: value(step)})
		}
		if _, err := s.AppendMetrics(ctx, runID, pts); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOneSpikeInAMillionPointsSurvivesDownsampling(t *testing.T) {
	f := newRunFixture(t)
	r := f.queue(t, "lora", f.chat)
	const n, spikeAt = 1_000_000, 612_345
	noise := rand.New(rand.NewPCG(1, 2))
	appendSeries(t, f.s, r.ID, "loss", n, 10_000, func(step int) float64 {
		if step == spikeAt {
			return 1e6
		}
		return 2 + math.Exp(-float64(step)/2e5) + 0.01*noise.Float64()
	})
	h, err := f.s.MetricHistory(context.Background(), r.ID, "loss", nil, nil, 2000)
	if err != nil {
		t.Fatal(err)
	}
	if h.Points != n || h.Level == 0 || len(h.Line) > 2000 || len(h.Envelope) > 2000 || len(h.Line) < 500 {
		t.Fatalf("history: %d points, level %d, %d drawn, %d buckets", h.Points, h.Level, len(h.Line), len(h.Envelope))
	}
	inEnvelope := false
	for _, b := range h.Envelope {
		if b.StepLo <= spikeAt && spikeAt <= b.StepHi && b.Max == 1e6 {
			inEnvelope = true
		}
	}
	drawn := false
	for _, p := range h.Line {
		if p.Step == spikeAt && p.Value == 1e6 {
			drawn = true
		}
	}
	if !inEnvelope || !drawn {
		t.Fatalf("the spike at step %d is lost: in envelope %v, drawn %v", spikeAt, inEnvelope, drawn)
	}
	// Zooming in on the spike gets finer data, down to raw points.
	from, to := spikeAt-500, spikeAt+500
	z, err := f.s.MetricHistory(context.Background(), r.ID, "loss", &from, &to, 2000)
	if err != nil || z.Level != 0 || len(z.Line) != 1001 {
		t.Fatalf("zoom: level %d, %d points, %v", z.Level, len(z.Line), err)
	}
	series, _ := f.s.MetricSeries(context.Background(), r.ID)
	if len(series) != 1 || *series[0].Max != 1e6 || series[0].Points != n || series[0].LastStep != n-1 {
		t.Fatalf("series summary = %+v", series)
	}
}

func TestRollupsMatchTheRawPoints(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.queue(t, "lora", f.chat)
	rng := rand.New(rand.NewPCG(3, 4))
	values := map[int]float64{}
	// Out of order, sparse, in uneven batches, with resends: the rollups must still agree.
	steps := rng.Perm(20_000)[:9_000]
	for len(steps) > 0 {
		k := min(len(steps), 1+rng.IntN(700))
		var pts []MetricPoint
		for _, st := range steps[:k] {
			v := rng.NormFloat64()
			if old, ok := values[st]; ok {
				v = old
			}
			values[st] = v
			pts = append(pts, MetricPoint{Name: "m", Step: st, Value: v})
		}
		if _, err := f.s.AppendMetrics(ctx, r.ID, pts); err != nil {
			t.Fatal(err)
		}
		if rng.IntN(4) == 0 {
			f.s.AppendMetrics(ctx, r.ID, pts) // a resend changes nothing
		}
		steps = steps[k:]
	}
	for _, window := range [][2]int{{0, 19_999}, {1234, 8765}, {15_000, 15_600}} {
		from, to := window[0], window[1]
		h, err := f.s.MetricHistory(ctx, r.ID, "m", &from, &to, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range h.Envelope {
			mn, mx, any := math.Inf(1), math.Inf(-1), false
			for st, v := range values {
				if st >= b.StepLo && st <= b.StepHi {
					mn, mx, any = min(mn, v), max(mx, v), true
				}
			}
			if !any || mn != b.Min || mx != b.Max {
				t.Fatalf("window %v bucket %+v: raw min %v max %v", window, b, mn, mx)
			}
		}
		if h.Level == 0 || len(h.Line) > 100 || len(h.Envelope) > 100 {
			t.Fatalf("window %v: level %d, %d drawn, %d buckets", window, h.Level, len(h.Line), len(h.Envelope))
		}
	}
	all, _ := f.s.MetricsAfter(ctx, r.ID, 0, 100_000)
	if len(all) != len(values) {
		t.Fatalf("%d points stored, %d distinct steps sent", len(all), len(values))
	}
	for i, p := range all {
		if p.Seq != int64(i+1) {
			t.Fatalf("seq %d at position %d: the run's sequence has a gap", p.Seq, i)
		}
	}
}

func TestNonFiniteValuesAreEventsNotValues(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.queue(t, "lora", f.chat)
	f.s.AppendMetrics(ctx, r.ID, []MetricPoint{
		{Name: "loss", Step: 1, Value: 3}, {Name: "loss", Step: 2, Kind: KindNaN}, {Name: "loss", Step: 3, Kind: KindPosInf},
		{Name: "loss", Step: 4, Value: 1},
	})
	h, _ := f.s.MetricHistory(ctx, r.ID, "loss", nil, nil, 2000)
	if len(h.Line) != 2 || len(h.NonFinite) != 2 || h.NonFinite[0].Kind != KindNaN || h.NonFinite[1].Kind != KindPosInf {
		t.Fatalf("history = %+v", h)
	}
	if h.Best == nil || h.Best.Value != 1 || h.Best.Step != 4 || *h.Last != 1 {
		t.Fatalf("best %+v last %v", h.Best, h.Last)
	}
	pts, _ := f.s.MetricsAfter(ctx, r.ID, 0, 10)
	if pts[1].Kind != KindNaN || pts[2].Kind != KindPosInf || pts[1].Value != 0 {
		t.Fatalf("stored = %+v", pts)
	}
	if _, err := f.s.MetricHistory(ctx, r.ID, "nope", nil, nil, 10); !errors.Is(err, ErrNoSeries) {
		t.Fatalf("unknown metric: %v", err)
	}
}

func TestConcurrentBatchesShareCommitsAndLoseNothing(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	runs := []Run{f.queue(t, "lora", f.chat), f.queue(t, "lora", f.chat), f.queue(t, "full", f.chat)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[int64]int{}
	for w := range 12 {
		wg.Go(func() {
			run := runs[w%len(runs)]
			for b := range 40 {
				var pts []MetricPoint
				for i := range 25 {
					pts = append(pts, MetricPoint{Name: "w" + string(rune('a'+w)), Step: b*25 + i, Value: float64(i)})
				}
				added, err := f.s.AppendMetrics(ctx, run.ID, pts)
				if errors.Is(err, ErrIngestBusy) {
					continue // refused whole: nothing stored, the worker would retry
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[run.ID] += len(added)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, run := range runs {
		pts, _ := f.s.MetricsAfter(ctx, run.ID, 0, 1_000_000)
		if len(pts) != acked[run.ID] {
			t.Fatalf("run %d: %d points stored, %d acknowledged", run.ID, len(pts), acked[run.ID])
		}
		for i, p := range pts {
			if p.Seq != int64(i+1) {
				t.Fatalf("run %d: seq %d at %d", run.ID, p.Seq, i)
			}
		}
	}
}

func TestIngestRefusesWhenTheQueueIsFull(t *testing.T) {
	f := newRunFixture(t)
	r := f.queue(t, "lora", f.chat)
	// Hold the writer so queued batches cannot drain, then fill the queue.
	hold := make(chan struct{})
	started := make(chan struct{})
	go f.s.tx(context.Background(), func(*sql.Tx) error { close(started); <-hold; return nil })
	<-started
	results := make(chan error, IngestQueue+10)
	for i := range IngestQueue + 10 {
		go func() {
			_, err := f.s.AppendMetrics(context.Background(), r.ID, []MetricPoint{{Name: "loss", Step: i, Value: 1}})
			results <- err
		}()
	}
	// While the writer is held, some senders must be refused at once rather than wait.
	busy, got := 0, 0
	deadline := time.After(20 * time.Second)
	for busy == 0 {
		select {
		case err := <-results:
			got++
			if !errors.Is(err, ErrIngestBusy) {
				t.Fatalf("a batch finished while the writer was held: %v", err)
			}
			busy++
		case <-deadline:
			t.Fatal("a full queue kept accepting batches instead of refusing them")
		}
	}
	close(hold)
	for ; got < IngestQueue+10; got++ {
		if err := <-results; errors.Is(err, ErrIngestBusy) {
			busy++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	pts, _ := f.s.MetricsAfter(context.Background(), r.ID, 0, 10_000)
	if len(pts) != IngestQueue+10-busy {
		t.Fatalf("%d stored, %d accepted", len(pts), IngestQueue+10-busy)
	}
}

// LatestMetricStep answers the newest step of one series, for the run page's progress.
func TestLatestMetricStep(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.queue(t, "lora", f.chat)
	if _, _, ok, err := f.s.LatestMetricStep(ctx, r.ID, "loss"); ok || err != nil {
		t.Fatalf("before any point: ok %v, err %v", ok, err)
	}
	f.s.AppendMetrics(ctx, r.ID, []MetricPoint{{Name: "loss", Step: 10, Value: 3}, {Name: "loss", Step: 20, Kind: KindNaN},
		{Name: "my_eval", Step: 5000, Value: 1}})
	step, at, ok, err := f.s.LatestMetricStep(ctx, r.ID, "loss")
	if err != nil || !ok || step != 20 || at.IsZero() {
		t.Fatalf("LatestMetricStep = %d %v %v %v", step, at, ok, err)
	}
}

func TestIngestGivesEachRunABoundedShareOfTheQueue(t *testing.T) {
	f := newRunFixture(t)
	flooder, other := f.queue(t, "lora", f.chat), f.queue(t, "lora", f.chat)
	hold := make(chan struct{})
	started := make(chan struct{})
	go f.s.tx(context.Background(), func(*sql.Tx) error { close(started); <-hold; return nil })
	<-started
	send := func(run int64, step int, out chan<- error) {
		_, err := f.s.AppendMetrics(context.Background(), run, []MetricPoint{{Name: "loss", Step: step, Value: 1}})
		out <- err
	}
	// The flooder sends far more than its share while nothing drains.
	flood := make(chan error, 3*IngestPerRun)
	for i := range 3 * IngestPerRun {
		go send(flooder.ID, i, flood)
	}
	refused := 0
	for refused < 2*IngestPerRun {
		if err := <-flood; !errors.Is(err, ErrRunIngestBusy) {
			t.Fatalf("flooder: %v, want ErrRunIngestBusy", err)
		}
		refused++
	}
	// The other run's batches still get into the queue.
	mine := make(chan error, IngestPerRun)
	for i := range IngestPerRun {
		go send(other.ID, i, mine)
	}
	close(hold)
	for range IngestPerRun {
		if err := <-mine; err != nil {
			t.Fatalf("other run refused: %v", err)
		}
	}
	for range IngestPerRun {
		if err := <-flood; err != nil {
			t.Fatalf("flooder's queued batch: %v", err)
		}
	}
}

func TestIngestQuotasRefuseTheWholeBatch(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t)
	f.s.quotas = Quotas{SeriesPerRun: 2, PointsPerRun: 10}
	r := f.queue(t, "lora", f.chat)
	pts := func(names []string, steps ...int) []MetricPoint {
		var out []MetricPoint
		for _, n := range names {
			for _, s := range steps {
				out = append(out, MetricPoint{Name: n, Step: s, Value: 1})
			}
		}
		return out
	}
	if _, err := f.s.AppendMetrics(ctx, r.ID, pts([]string{"a", "b"}, 0, 1, 2)); err != nil {
		t.Fatal(err)
	}
	var q *RunQuotaError
	if _, err := f.s.AppendMetrics(ctx, r.ID, pts([]string{"a", "c"}, 3)); !errors.As(err, &q) || q.Quota != "series" || q.Limit != 2 || q.Have != 2 || q.Add != 1 {
		t.Fatalf("third series: %v", err)
	}
	if _, err := f.s.AppendMetrics(ctx, r.ID, pts([]string{"a", "b"}, 3, 4, 5)); !errors.As(err, &q) || q.Quota != "points" || q.Have != 6 || q.Add != 6 {
		t.Fatalf("points past the quota: %v", err)
	}
	// Duplicates do not count; exactly up to the limit is fine.
	added, err := f.s.AppendMetrics(ctx, r.ID, pts([]string{"a", "b"}, 1, 2, 3, 4))
	if err != nil || len(added) != 4 {
		t.Fatalf("up to the limit: %d added, %v", len(added), err)
	}
	stored, _ := f.s.MetricsAfter(ctx, r.ID, 0, 100)
	if len(stored) != 10 {
		t.Fatalf("%d points stored, want 10 (nothing of a refused batch)", len(stored))
	}
}

func TestMetricsAfterReadsBackfilledAndInterleavedBatches(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t)
	r := f.queue(t, "lora", f.chat)
	// Out of order steps, a backfill between stored steps, several series.
	batches := [][]MetricPoint{
		{{Name: "loss", Step: 10, Value: 1}, {Name: "acc", Step: 10, Value: 2}, {Name: "loss", Step: 0, Value: 3}},
		{{Name: "loss", Step: 5, Value: 4}, {Name: "loss", Step: 20, Value: 5}},
		{{Name: "acc", Step: 0, Value: 6}, {Name: "loss", Step: 15, Value: 7}, {Name: "loss", Step: 10, Value: 8}},
	}
	for _, b := range batches {
		if _, err := f.s.AppendMetrics(ctx, r.ID, b); err != nil {
			t.Fatal(err)
		}
	}
	all, err := f.s.MetricsAfter(ctx, r.ID, 0, 100)
	if err != nil || len(all) != 7 {
		t.Fatalf("%d points, %v", len(all), err)
	}
	for i, p := range all {
		if p.Seq != int64(i+1) {
			t.Fatalf("point %d has seq %d", i, p.Seq)
		}
	}
	for after := range 7 {
		for limit := 1; limit <= 7; limit++ {
			got, err := f.s.MetricsAfter(ctx, r.ID, int64(after), limit)
			if err != nil {
				t.Fatal(err)
			}
			want := all[after:min(7, after+limit)]
			if len(got) != len(want) {
				t.Fatalf("after %d limit %d: %d points, want %d", after, limit, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("after %d limit %d: %+v, want %+v", after, limit, got[i], want[i])
				}
			}
		}
	}
}

// Migration 0008 rebuilds the sequence ranges of points stored before it from the islands
// of consecutive sequence numbers; the live stream must read them back exactly.
func TestSeqRangesMigrationRebuildsRangesOfStoredPoints(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t)
	r := f.queue(t, "lora", f.chat)
	for k := range 6 {
		var pts []MetricPoint
		for s := k * 7; s < k*7+7; s++ {
			pts = append(pts, MetricPoint{Name: "loss", Step: 100 - s, Value: 1}, MetricPoint{Name: "acc", Step: s, Value: 2})
		}
		if k%2 == 1 {
			pts = append(pts, MetricPoint{Name: "nan", Step: k, Kind: KindNaN})
		}
		if _, err := f.s.AppendMetrics(ctx, r.ID, pts); err != nil {
			t.Fatal(err)
		}
	}
	// Before migration 0008 every point was a row: so were they before blocks (0031).
	blocksToPointRows(t, f.s)
	want, err := f.s.MetricsAfter(ctx, r.ID, 0, 1000)
	if err != nil || len(want) != 87 {
		t.Fatalf("%d points, %v", len(want), err)
	}
	all, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var backfill string
	for _, m := range all {
		if m.version == 8 {
			for _, stmt := range strings.Split(m.sql, ";") {
				if strings.Contains(stmt, "INSERT INTO metric_seq_ranges") {
					backfill = stmt
				}
			}
		}
	}
	if backfill == "" {
		t.Fatal("migration 0008 has no backfill")
	}
	if _, err := f.s.w.ExecContext(ctx, "DELETE FROM metric_seq_ranges"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.w.ExecContext(ctx, backfill); err != nil {
		t.Fatal(err)
	}
	for after := range int64(len(want)) {
		got, err := f.s.MetricsAfter(ctx, r.ID, after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if exp := want[after:min(len(want), int(after)+10)]; !slices.Equal(got, exp) {
			t.Fatalf("after %d: %+v, want %+v", after, got, exp)
		}
	}
}
