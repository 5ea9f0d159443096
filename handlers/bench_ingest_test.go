package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"tunelab/store"
)

// Benchmark 1: metric ingest over HTTP on loopback, in the shape of real load. Each client
// is a worker posting batches of 1,000 points (10 metrics x 100 steps) to its own fresh run
// (fresh series, so no point is a duplicate) through the real handler into a real SQLite
// file opened as in production (WAL, synchronous=FULL: a reply means durable). The client
// encodes every batch with encoding/json inside the timed loop, as a real client does, and
// only acknowledged points count. The database already holds 10,000,000 points (and the
// baseline table 10,000,000 rows), written straight in SQL before timing.
//
// Baseline: raw keyed inserts in the same file through the same writer connection: plain
// single-row INSERTs (one prepared statement) of the same columns into a WITHOUT ROWID table
// keyed by (series, step) with no other index, 10,000 rows a transaction. Baseline and HTTP
// alternate in ingestRounds slices so a slow spell of the disk or the neighbours falls on
// both. Targets: >= 240,000 points/s at 4 and 8 clients, >= 60 % of the raw rate, and at
// most 52 bytes on disk a point (table, key, rollups, series and sequence ranges).

const (
	ingestBatch      = 1000    // points a batch
	ingestSteps      = 100     // steps a batch, of every metric
	ingestPerClients = 800_000 // points a measurement, spread over the clients
	ingestRounds     = 8       // alternating slices of baseline and HTTP
	ingestPrefill    = 10_000_000
	rawPerTx         = 10_000

	targetRate     = 240_000
	targetPctRaw   = 60
	targetPerPoint = 52
)

// ingestNames are the metrics a worker reports each step.
var ingestNames = []string{"train/loss", "train/learning_rate", "train/grad_norm", "train/tokens_per_sec", "train/epoch",
	"eval/loss", "eval/accuracy", "system/gpu_util", "system/gpu_mem", "system/step_time"}

type wirePoint struct {
	Name  string  `json:"name"`
	Step  int     `json:"step"`
	Value float64 `json:"value"`
}

// ingestBatchPoints is batch k of a client: steps [k*100, (k+1)*100) of every metric.
func ingestBatchPoints(k int, pts []wirePoint) []wirePoint {
	pts = pts[:0]
	for s := k * ingestSteps; s < (k+1)*ingestSteps; s++ {
		for j, name := range ingestNames {
			pts = append(pts, wirePoint{name, s, 2.5/float64(s+1) + float64(j) + float64(s%7)*1e-3})
		}
	}
	return pts
}

func BenchmarkIngestHTTP(b *testing.B) {
	ctx := context.Background()
	br := newBenchRuns(b, 1)
	st := br.ts.store
	start := time.Now()
	if err := st.PrefillMetrics(ctx, br.runs[0], 100, ingestPrefill/100); err != nil {
		b.Fatal(err)
	}
	if err := st.PrefillRawBaseline(ctx, ingestPrefill); err != nil {
		b.Fatal(err)
	}
	if err := st.CheckpointWAL(ctx); err != nil {
		b.Fatal(err)
	}
	size, _ := st.UsedBytes(ctx)
	b.Logf("prefilled %s points and %s baseline rows in %.1f s (%d MB)", thousands(ingestPrefill), thousands(ingestPrefill),
		time.Since(start).Seconds(), size>>20)
	rawSeries := int64(0)
	for _, clients := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			first := len(br.runs)
			for range clients {
				ds := br.ts.datasetFor(br.client, completionLines(20))
				br.ts.startRun(br.client, runValues(ds))
				id, tok := br.ts.claim(b)
				br.runs, br.tokens = append(br.runs, id), append(br.tokens, tok)
			}
			runs, tokens := br.runs[first:], br.tokens[first:]
			perClient := ingestPerClients / ingestBatch / clients
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, DisableCompression: true}}
			defer client.CloseIdleConnections()

			var rawTime, httpTime, rawCPU, httpCPU time.Duration
			var rawRows, points, refused int
			var grew int64
			for round := range ingestRounds {
				lo, hi := round*perClient/ingestRounds, (round+1)*perClient/ingestRounds
				rows := rawRowsFor(&rawSeries, clients, lo, hi)
				t0, c0 := time.Now(), processCPU()
				if err := st.InsertRawBaseline(ctx, rows, rawPerTx); err != nil {
					b.Fatal(err)
				}
				rawTime, rawCPU = rawTime+time.Since(t0), rawCPU+processCPU()-c0
				rawRows += len(rows)

				before, _ := st.UsedBytes(ctx)
				c0 = processCPU()
				n, busy, took := ingestOverHTTP(b, client, br.ts.URL, runs, tokens, lo, hi)
				httpCPU += processCPU() - c0
				after, _ := st.UsedBytes(ctx)
				points, refused, httpTime, grew = points+n, refused+busy, httpTime+took, grew+after-before
			}
			if want := clients * perClient * ingestBatch; points != want || rawRows != want {
				b.Fatalf("%d points acknowledged and %d raw rows, want %d", points, rawRows, want)
			}
			rate := float64(points) / httpTime.Seconds()
			rawRate := float64(rawRows) / rawTime.Seconds()
			pct := 100 * rate / rawRate
			perPoint := float64(grew) / float64(points)

			hideNsPerOp(b)
			b.ReportMetric(rate, "pts/s")
			b.ReportMetric(rawRate, "raw-rows/s")
			b.ReportMetric(pct, "%raw")
			b.ReportMetric(perPoint, "B/point")
			cpuPoint := float64(httpCPU.Nanoseconds()) / 1000 / float64(points)
			cpuRaw := float64(rawCPU.Nanoseconds()) / 1000 / float64(rawRows)
			b.ReportMetric(cpuPoint, "cpu-us/point")
			b.ReportMetric(cpuRaw, "raw-cpu-us/row")
			rateVerdict, pctVerdict := verdict(rate >= targetRate), verdict(pct >= targetPctRaw)
			if clients == 1 {
				rateVerdict, pctVerdict = "figure only", "figure only" // the targets are for 4 and 8 clients
			}
			benchResult(b, "1 ingest     %d client(s) x %d-point batches (10 metrics x 100 steps, fresh series, JSON encoded per batch, db of 10M points): %s points/s acknowledged (target >= %s: %s) | raw keyed inserts %s rows/s | %.0f%% of raw (target >= %d%%: %s) | %.1f bytes a point on disk (target <= %d: %s) | CPU %.2f us a point (clients, server and writer in one process) against %.2f us a raw row   [%s points, %d answered 429]",
				clients, ingestBatch, thousands(rate), thousands(targetRate), rateVerdict,
				thousands(rawRate), pct, targetPctRaw, pctVerdict,
				perPoint, targetPerPoint, verdict(perPoint <= targetPerPoint), cpuPoint, cpuRaw, thousands(float64(points)), refused)
		})
	}
}

// rawRowsFor builds the baseline's rows for batches [lo, hi) of every client: the same
// points as the clients send, each client's metrics under fresh series keys.
func rawRowsFor(next *int64, clients, lo, hi int) []store.RawPoint {
	base := *next
	*next += int64(clients * len(ingestNames))
	rows := make([]store.RawPoint, 0, clients*(hi-lo)*ingestBatch)
	var pts []wirePoint
	for k := lo; k < hi; k++ {
		pts = ingestBatchPoints(k, pts)
		for c := range clients {
			for i, p := range pts {
				series := base + int64(c*len(ingestNames)+i%len(ingestNames)) + 1
				rows = append(rows, store.RawPoint{Series: series, Step: int64(p.Step), Value: p.Value, At: 1700000000000, Seq: int64(len(rows))})
			}
		}
	}
	return rows
}

// ingestOverHTTP has one client per run post batches [lo, hi) concurrently with the
// others, encoding each batch as it goes; it counts the points acknowledged (a 429 is
// waited out and the batch sent again).
func ingestOverHTTP(b *testing.B, client *http.Client, base string, runs []int64, tokens []string, lo, hi int) (points, refused int, took time.Duration) {
	b.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(runs))
	start := time.Now()
	for w, run := range runs {
		wg.Go(func() {
			url := fmt.Sprintf("%s/api/v1/worker/runs/%d/metrics", base, run)
			n, busy := 0, 0
			var pts []wirePoint
			for k := lo; k < hi; {
				pts = ingestBatchPoints(k, pts)
				body, err := json.Marshal(struct {
					Points []wirePoint `json:"points"`
				}{pts})
				if err != nil {
					errs <- err
					return
				}
				accepted, status, err := postBatch(client, url, tokens[w], body)
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
					errs <- fmt.Errorf("client %d batch %d: status %d", w, k, status)
					return
				}
				n += accepted
				k++
			}
			mu.Lock()
			points, refused = points+n, refused+busy
			mu.Unlock()
		})
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

// processCPU is the CPU time (user and system) this process has used so far: clients,
// server and writer together, all on the same machine.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
