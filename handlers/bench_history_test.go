package handlers

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"testing"
	"time"

	"tunelab/store"
)

// Benchmarks 4 and 5: reading history. The handler is called in-process (ServeHTTP on the
// real handler chain, session and all) and only the server's time is taken; seeding the
// points with AppendMetricsDirect in batches of 10,000 is not timed.

// seedSeries writes n points of one metric: a falling loss with noise and one spike.
func seedSeries(b *testing.B, st *store.Store, run int64, name string, n int, seed uint64) {
	b.Helper()
	noise := rand.New(rand.NewPCG(seed, 7))
	const batch = 10_000
	pts := make([]store.MetricPoint, 0, batch)
	for lo := 0; lo < n; lo += batch {
		pts = pts[:0]
		for step := lo; step < min(lo+batch, n); step++ {
			v := 2 + math.Exp(-float64(step)/float64(n/5+1)) + 0.05*noise.Float64()
			if step == n*3/5+11 {
				v = 1e4 // a spike the charts must keep
			}
			pts = append(pts, store.MetricPoint{Name: name, Step: step, Value: v})
		}
		if _, err := st.AppendMetricsDirect(context.Background(), run, pts); err != nil {
			b.Fatal(err)
		}
	}
}

// serve runs one GET through the handler as a browser sends it (gzip accepted) and returns
// the answer as sent and the server's time.
func (br *benchRun) serve(b *testing.B, path string) (*httptest.ResponseRecorder, time.Duration) {
	b.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Cookie", br.cookie)
	req.Header.Set("Accept-Encoding", "gzip")
	rec := httptest.NewRecorder()
	start := time.Now()
	br.ts.Config.Handler.ServeHTTP(rec, req)
	took := time.Since(start)
	if rec.Code != http.StatusOK {
		b.Fatalf("GET %s: %d\n%.500s", path, rec.Code, rec.Body.String())
	}
	return rec, took
}

// timed serves path reps times (after two unmeasured calls) and returns the sorted times
// and the last answer's size.
func (br *benchRun) timed(b *testing.B, path string, reps int) ([]time.Duration, int) {
	b.Helper()
	br.serve(b, path)
	br.serve(b, path)
	var times []time.Duration
	size := 0
	for range reps {
		rec, took := br.serve(b, path)
		times = append(times, took)
		size = rec.Body.Len()
	}
	slices.Sort(times)
	return times, size
}

func BenchmarkHistory1M(b *testing.B) {
	const n, reps = 1_000_000, 30
	br := newBenchRuns(b, 2)
	run, sparse := br.runs[0], br.runs[1]
	seedSeries(b, br.ts.store, run, "loss", n, 1)
	// The outlier shape, in a run of its own: the same million points and one more at step
	// 1,000,000,000, so the series' average density says nothing about any window.
	seedSeries(b, br.ts.store, sparse, "outlier", n, 2)
	if _, err := br.ts.store.AppendMetricsDirect(context.Background(), sparse, []store.MetricPoint{{Name: "outlier", Step: 1_000_000_000, Value: 2}}); err != nil {
		b.Fatal(err)
	}

	base, sparseBase := fmt.Sprintf("/runs/%d/metrics/history?name=", run), fmt.Sprintf("/runs/%d/metrics/history?name=", sparse)
	cases := []struct {
		label, path string
		minDrawn    int // what the chart must get: half the budget when the window holds more
	}{
		{"whole series", base + "loss", maxChartPoints / 2},
		{"zoom 10%", base + fmt.Sprintf("loss&from=%d&to=%d", n/2, n/2+n/10), maxChartPoints / 2},
		{"zoom 1,500 steps", base + fmt.Sprintf("loss&from=%d&to=%d", n/2, n/2+1500), 1501},
		{"outlier whole", sparseBase + "outlier", maxChartPoints / 2},
		{"outlier 0..999,999", sparseBase + "outlier&from=0&to=999999", maxChartPoints / 2},
	}
	worstMedian := time.Duration(0)
	for _, c := range cases {
		times, size := br.timed(b, c.path, reps)
		rec, _ := br.serve(b, c.path)
		var h struct {
			Level    int
			Line     [][]any
			Envelope [][]any
		}
		if err := json.Unmarshal(plainBody(b, rec), &h); err != nil || len(h.Line) < c.minDrawn || len(h.Line) > maxChartPoints ||
			len(h.Envelope) > maxChartPoints {
			b.Fatalf("%s: %d drawn points, %d buckets (want %d to %d), %v", c.label, len(h.Line), len(h.Envelope), c.minDrawn, maxChartPoints, err)
		}
		med := percentile(times, 50)
		worstMedian = max(worstMedian, med)
		benchResult(b, "4 history   1,000,000-point series, %-18s median %6.2f ms, p90 %6.2f ms, max %6.2f ms | %4d drawn points, %3d buckets, level %d, %6d bytes (target <= 50 ms) %s",
			c.label+":", ms(med), ms(percentile(times, 90)), ms(times[len(times)-1]), len(h.Line), len(h.Envelope), h.Level, size, verdict(med <= 50*time.Millisecond))
	}

	// Baseline: what a chart without rollups would need, every stored point read once.
	start := time.Now()
	read := 0
	if err := br.ts.store.ExportMetrics(context.Background(), run, func(store.MetricPoint) error { read++; return nil }); err != nil {
		b.Fatal(err)
	}
	raw := time.Since(start)
	if read != n {
		b.Fatalf("read %d points, want %d", read, n)
	}
	hideNsPerOp(b)
	b.ReportMetric(ms(worstMedian), "worst-median-ms")
	b.ReportMetric(ms(raw), "raw-read-ms")
	benchResult(b, "4 history   baseline: reading all %s raw points of the series (ExportMetrics) takes %.0f ms; the slowest history median is %.2f ms (target <= 50 ms) %s",
		thousands(n), ms(raw), ms(worstMedian), verdict(worstMedian <= 50*time.Millisecond))
}

var islandRE = regexp.MustCompile(`(?s)<script[^>]*id="run-metrics-data"[^>]*>(.*?)</script>`)

func BenchmarkRunPage(b *testing.B) {
	const series, points, reps = 20, 100_000, 10
	br := newBenchRuns(b, 2)
	run, empty := br.runs[0], br.runs[1]
	names := []string{"loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_sec", "gpu_util", "gpu_mem"}
	for i := len(names); i < series; i++ {
		names = append(names, fmt.Sprintf("extra/metric_%02d", i))
	}
	for i, name := range names {
		seedSeries(b, br.ts.store, run, name, points, uint64(i+1))
	}

	times, size := br.timed(b, fmt.Sprintf("/runs/%d", run), reps)
	baseTimes, baseSize := br.timed(b, fmt.Sprintf("/runs/%d", empty), reps)
	rec, _ := br.serve(b, fmt.Sprintf("/runs/%d", run))
	page := plainBody(b, rec)
	island := "the JSON island is not in the page"
	if m := islandRE.FindSubmatch(page); m != nil {
		island = fmt.Sprintf("%s of them the JSON island", thousands(float64(len(m[1]))))
	}

	// The island on its own, as runMetrics builds it, whether or not the page shows it.
	a := &app{store: br.ts.store}
	r, err := br.ts.store.RunByID(context.Background(), run)
	if err != nil {
		b.Fatal(err)
	}
	var islandTimes []time.Duration
	var islandBytes []byte
	for range reps {
		start := time.Now()
		m, err := a.runMetrics(context.Background(), r)
		if err != nil {
			b.Fatal(err)
		}
		islandBytes, _ = json.Marshal(m)
		islandTimes = append(islandTimes, time.Since(start))
		if len(m.Series) != series {
			b.Fatalf("%d series in the island, want %d", len(m.Series), series)
		}
	}
	slices.Sort(islandTimes)
	drawn := bytes.Count(islandBytes, []byte("],[")) // rows of line, envelope and nonfinite

	med, baseMed := percentile(times, 50), percentile(baseTimes, 50)
	hideNsPerOp(b)
	b.ReportMetric(float64(size), "page-bytes")
	b.ReportMetric(ms(med), "page-ms")
	b.ReportMetric(float64(baseSize), "empty-page-bytes")
	b.ReportMetric(ms(baseMed), "empty-page-ms")
	benchResult(b, "5 run page  %d series x %s points: %s bytes sent gzipped (%s uncompressed, %s), server time median %.1f ms (max %.1f) | baseline, the same page of a run without metrics: %s bytes, median %.1f ms",
		series, thousands(points), thousands(float64(size)), thousands(float64(len(page))), island, ms(med), ms(times[len(times)-1]), thousands(float64(baseSize)), ms(baseMed))
	benchResult(b, "5 run page  the island alone (runMetrics + JSON): %s bytes, ~%s rows, median %.1f ms (no target: figures to state)",
		thousands(float64(len(islandBytes))), thousands(float64(drawn)), ms(percentile(islandTimes, 50)))
}

// plainBody is an answer's body, decompressed when it was sent gzipped.
func plainBody(b *testing.B, rec *httptest.ResponseRecorder) []byte {
	b.Helper()
	if rec.Header().Get("Content-Encoding") != "gzip" {
		return rec.Body.Bytes()
	}
	zr, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		b.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		b.Fatal(err)
	}
	return out
}
