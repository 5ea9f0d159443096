package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"tunelab/store"
)

// Benchmark 1: end-to-end ingest over HTTP on loopback. N workers each post batches of
// 1,000 points to their own run through the real handler over a real SQLite file
// (store.Open: WAL, synchronous=FULL); only acknowledged points count. Baseline: the same
// batches written one after another with AppendMetricsDirect (the same SQL, one
// transaction per batch, no queue, no HTTP) into an identical fresh database.
// Target: HTTP >= 50 % of the raw rate.

const (
	ingestBatch       = 1000    // points a batch
	ingestTotalPoints = 240_000 // points a measurement, spread over the workers
)

// ingestNames are the metrics a worker reports each step: 4 x 250 steps a batch.
var ingestNames = []string{"loss", "learning_rate", "grad_norm", "tokens_per_sec"}

// ingestBatches builds batch k of a run: steps [k*250, (k+1)*250) of every metric.
func ingestBatches(n int) [][]store.MetricPoint {
	per := ingestBatch / len(ingestNames)
	out := make([][]store.MetricPoint, n)
	for k := range out {
		pts := make([]store.MetricPoint, 0, ingestBatch)
		for s := k * per; s < (k+1)*per; s++ {
			for j, name := range ingestNames {
				pts = append(pts, store.MetricPoint{Name: name, Step: s, Value: 2.5/float64(s+1) + float64(j) + float64(s%7)*1e-3})
			}
		}
		out[k] = pts
	}
	return out
}

func ingestBody(pts []store.MetricPoint) []byte {
	type point struct {
		Name  string  `json:"name"`
		Step  int     `json:"step"`
		Value float64 `json:"value"`
	}
	in := struct {
		Points []point `json:"points"`
	}{Points: make([]point, len(pts))}
	for i, p := range pts {
		in.Points[i] = point{p.Name, p.Step, p.Value}
	}
	b, _ := json.Marshal(in)
	return b
}

func BenchmarkIngestHTTP(b *testing.B) {
	for _, workers := range []int{4, 16} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			perWorker := ingestTotalPoints / ingestBatch / workers
			batches := ingestBatches(perWorker)
			bodies := make([][]byte, len(batches))
			for i, pts := range batches {
				bodies[i] = ingestBody(pts)
			}
			raw := newBenchRuns(b, workers) // the baseline's database
			br := newBenchRuns(b, workers)  // the server's
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true}}
			defer client.CloseIdleConnections()

			// The batches go in ingestRounds slices, baseline and HTTP alternating, so a
			// slower spell of the disk falls on both.
			var rawTime, httpTime time.Duration
			rawPoints, points, refused := 0, 0, 0
			for round := range ingestRounds {
				lo, hi := round*len(batches)/ingestRounds, (round+1)*len(batches)/ingestRounds
				n, took := ingestDirect(b, raw, batches[lo:hi])
				rawPoints, rawTime = rawPoints+n, rawTime+took
				n, busy, took := ingestOverHTTP(b, client, br, bodies[lo:hi])
				points, refused, httpTime = points+n, refused+busy, httpTime+took
			}
			want := workers * perWorker * ingestBatch
			if points != want || rawPoints != want {
				b.Fatalf("%d points acknowledged over HTTP and %d stored directly, want %d", points, rawPoints, want)
			}
			rate := float64(points) / httpTime.Seconds()
			rawRate := float64(rawPoints) / rawTime.Seconds()
			pct := 100 * rate / rawRate

			hideNsPerOp(b)
			b.ReportMetric(rate, "pts/s")
			b.ReportMetric(rawRate, "raw-pts/s")
			b.ReportMetric(pct, "%raw")
			benchResult(b, "1 ingest      %2d workers x %d-point batches: HTTP %s points/s | raw AppendMetricsDirect %s points/s | %.0f%% of raw (target >= 50%%) %s   [%s points each, %d answered 429]",
				workers, ingestBatch, thousands(rate), thousands(rawRate), pct, verdict(pct >= 50), thousands(float64(points)), refused)
		})
	}
}

// ingestRounds is how many alternating slices of baseline and HTTP a measurement takes.
const ingestRounds = 4

// ingestDirect is the baseline: every run's batches through AppendMetricsDirect, one
// after another, batch k of every run before batch k+1.
func ingestDirect(b *testing.B, raw *benchRun, batches [][]store.MetricPoint) (points int, took time.Duration) {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	for _, pts := range batches {
		for _, run := range raw.runs {
			added, err := raw.ts.store.AppendMetricsDirect(ctx, run, pts)
			if err != nil {
				b.Fatal(err)
			}
			points += len(added)
		}
	}
	return points, time.Since(start)
}

// ingestOverHTTP has one worker per run post its batches concurrently with the others;
// it counts the points acknowledged (a 429 is waited out and the batch sent again).
func ingestOverHTTP(b *testing.B, client *http.Client, br *benchRun, bodies [][]byte) (points, refused int, took time.Duration) {
	b.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(br.runs))
	start := time.Now()
	for w, run := range br.runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := fmt.Sprintf("%s/api/v1/worker/runs/%d/metrics", br.ts.URL, run)
			n, busy := 0, 0
			for k := 0; k < len(bodies); {
				accepted, status, err := postBatch(client, url, br.tokens[w], bodies[k])
				if err != nil {
					errs <- err
					return
				}
				if status == http.StatusTooManyRequests {
					busy++
					time.Sleep(10 * time.Millisecond)
					continue // the same batch again
				}
				if status != http.StatusOK {
					errs <- fmt.Errorf("worker %d batch %d: status %d", w, k, status)
					return
				}
				n += accepted
				k++
			}
			mu.Lock()
			points, refused = points+n, refused+busy
			mu.Unlock()
		}()
	}
	wg.Wait()
	took = time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return points, refused, took
}

// postBatch sends one batch as a worker and returns the number of new points stored.
func postBatch(c *http.Client, url, token string, body []byte) (accepted, status int, err error) {
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, resp.StatusCode, err
	}
	var out struct{ Accepted int }
	if err := json.Unmarshal(reply, &out); err != nil {
		return 0, resp.StatusCode, fmt.Errorf("reply %q: %w", reply, err)
	}
	return out.Accepted, resp.StatusCode, nil
}
