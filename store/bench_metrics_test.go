package store

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Store side of benchmark 1 (`go tool task bench`): group commit on its own, without HTTP.
// N goroutines call AppendMetrics (the queue and shared transactions) beside the raw
// baseline, AppendMetricsDirect with the same batches one after another, each on a fresh
// database opened as production opens it (WAL, synchronous=FULL). It also states what a
// point costs on disk: table, primary key, sequence index and rollups together.

const (
	storeBenchBatch  = 1000
	storeBenchPoints = 240_000
)

var storeBenchNames = []string{"loss", "learning_rate", "grad_norm", "tokens_per_sec"}

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

// storeBenchBatches builds a run's batches: 4 metrics x 250 steps each.
func storeBenchBatches(n int) [][]MetricPoint {
	per := storeBenchBatch / len(storeBenchNames)
	out := make([][]MetricPoint, n)
	for k := range out {
		for step := k * per; step < (k+1)*per; step++ {
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
	for _, workers := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			ctx := context.Background()
			batches := storeBenchBatches(storeBenchPoints / storeBenchBatch / workers)
			total := workers * len(batches) * storeBenchBatch

			raw, rawRuns := benchStore(b, workers)
			start := time.Now()
			for _, pts := range batches {
				for _, run := range rawRuns {
					if _, err := raw.AppendMetricsDirect(ctx, run, pts); err != nil {
						b.Fatal(err)
					}
				}
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
			b.Logf("RESULT 1 store       %2d writers, AppendMetrics (group commit, no HTTP): %s points/s | raw AppendMetricsDirect %s points/s | %.0f%% of raw | %.1f bytes on disk a point (4 metrics, rollups and indexes included)",
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
