package store

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Store side of benchmark 1 (`go tool task bench`): group commit on its own, without HTTP.
// N goroutines call AppendMetrics (the queue and shared transactions) with batches of
// 10 metrics x 100 steps to their own fresh runs, beside the raw keyed-insert baseline
// (InsertRawBaseline: single-row INSERTs of the same rows into a WITHOUT ROWID table keyed
// by (series, step), 10,000 rows a transaction), each on a fresh database opened as
// production opens it (WAL, synchronous=FULL). It also states what a point costs on disk:
// table, key, rollups, series and sequence ranges together.

const (
	storeBenchBatch  = 1000
	storeBenchSteps  = 100
	storeBenchPoints = 400_000
)

var storeBenchNames = []string{"train/loss", "train/learning_rate", "train/grad_norm", "train/tokens_per_sec", "train/epoch",
	"eval/loss", "eval/accuracy", "system/gpu_util", "system/gpu_mem", "system/step_time"}

// benchStore opens a fresh database with one person, one dataset and n queued runs.
func benchStore(b testing.TB, n int) (*Store, []int64) {
	b.Helper()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "bench.db"), Options{Argon2: cheapArgon2})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	v, err := NewVault(filepath.Join(b.TempDir(), "vault"), make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	u, err := s.CreateUser(ctx, NewUser{Email: "bench@example.com", Password: "bench passphrase 1", TermsVersion: "v"})
	if err != nil {
		b.Fatal(err)
	}
	d, err := s.CreateDataset(ctx, v, NewDataset{UserID: u.ID, Name: "d", Content: strings.NewReader(strings.Join(rows(chatRow, 12), "\n")), MaxSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	var ids []int64
	for range n {
		r, err := s.CreateRun(ctx, NewRun{UserID: u.ID, DatasetID: d.ID, Config: testRunConfig("lora"), Backend: "local"})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	return s, ids
}

// storeBenchBatches builds a run's batches: 10 metrics x 100 steps each.
func storeBenchBatches(n int) [][]MetricPoint {
	out := make([][]MetricPoint, n)
	for k := range out {
		for step := k * storeBenchSteps; step < (k+1)*storeBenchSteps; step++ {
			for j, name := range storeBenchNames {
				out[k] = append(out[k], MetricPoint{Name: name, Step: step, Value: 2.5/float64(step+1) + float64(j)})
			}
		}
	}
	return out
}

// usedBytes is the size of the database's pages in use (the WAL's included).
func usedBytes(b testing.TB, s *Store) int64 {
	b.Helper()
	var pages, free, size int64
	for _, q := range []struct {
		pragma string
		v      *int64
	}{{"page_count", &pages}, {"freelist_count", &free}, {"page_size", &size}} {
		if err := s.r.QueryRow("PRAGMA " + q.pragma).Scan(q.v); err != nil {
			b.Fatal(err)
		}
	}
	return (pages - free) * size
}

func BenchmarkStoreIngest(b *testing.B) {
	for _, workers := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			ctx := context.Background()
			batches := storeBenchBatches(storeBenchPoints / storeBenchBatch / workers)
			total := workers * len(batches) * storeBenchBatch

			raw, _ := benchStore(b, 0)
			if err := raw.PrefillRawBaseline(ctx, 0); err != nil {
				b.Fatal(err)
			}
			var rows []RawPoint
			for w := range workers {
				for _, pts := range batches {
					for _, p := range pts {
						rows = append(rows, RawPoint{Series: int64(w*len(storeBenchNames)) + int64(slices.Index(storeBenchNames, p.Name)) + 1,
							Step: int64(p.Step), Value: p.Value, At: 1700000000000, Seq: int64(len(rows))})
					}
				}
			}
			start := time.Now()
			if err := raw.InsertRawBaseline(ctx, rows, 10_000); err != nil {
				b.Fatal(err)
			}
			rawRate := float64(total) / time.Since(start).Seconds()

			s, runs := benchStore(b, workers)
			before := usedBytes(b, s)
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			start = time.Now()
			for _, run := range runs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, pts := range batches {
						for {
							_, err := s.AppendMetrics(ctx, run, pts)
							if err == ErrIngestBusy {
								time.Sleep(time.Millisecond)
								continue
							}
							if err != nil {
								errs <- err
								return
							}
							break
						}
					}
				}()
			}
			wg.Wait()
			rate := float64(total) / time.Since(start).Seconds()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			perPoint := float64(usedBytes(b, s)-before) / float64(total)

			b.ReportMetric(0, "ns/op")
			b.ReportMetric(rate, "pts/s")
			b.ReportMetric(rawRate, "raw-pts/s")
			b.ReportMetric(perPoint, "B/point")
			b.Logf("RESULT 1 store       %2d writers, AppendMetrics (group commit, no HTTP): %s points/s | raw keyed inserts %s rows/s | %.0f%% of raw | %.1f bytes on disk a point (10 metrics x 100 steps a batch; rollups, series and sequence ranges included)",
				workers, thousands(rate), thousands(rawRate), 100*rate/rawRate, perPoint)
		})
	}
}

// thousands writes 1234567 as 1,234,567.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
