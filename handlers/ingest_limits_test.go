package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"tunelab/store"
)

// metricsBody is a batch of names x steps points starting at step from.
func metricsBody(names []string, from, steps int) string {
	var b strings.Builder
	b.WriteString(`{"points":[`)
	for s := from; s < from+steps; s++ {
		for i, n := range names {
			if s > from || i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"name":%q,"step":%d,"value":%g}`, n, s, 1/float64(s+1))
		}
	}
	b.WriteString("]}")
	return b.String()
}

func TestIngestQuotasRefuseWholeBatchesWithTheirLimit(t *testing.T) {
	ts := newTestServer(t, Config{}, func(o *store.Options) { o.Quotas = store.Quotas{SeriesPerRun: 3, PointsPerRun: 20} })
	c := ts.signUp("quota@example.com")
	ts.startRun(c, runValues(ts.datasetFor(c, completionLines(20))))
	run, tok := ts.claim(t)
	if r := ts.post(run, "metrics", tok, metricsBody([]string{"a", "b"}, 0, 5)); r.status != http.StatusOK {
		t.Fatalf("within quota: %d %s", r.status, r.body)
	}
	cases := []struct {
		name, body, wantIn string
	}{
		{"a fourth and fifth series", metricsBody([]string{"a", "c", "d"}, 5, 1), "TUNELAB_QUOTA_SERIES_PER_RUN"},
		{"points past the limit", metricsBody([]string{"a", "b"}, 5, 6), "TUNELAB_QUOTA_POINTS_PER_RUN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.post(run, "metrics", tok, tc.body)
			if r.status != http.StatusUnprocessableEntity || errorCode(t, r) != "quota_exceeded" || !strings.Contains(r.body, tc.wantIn) {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
	// Nothing of a refused batch was kept: exactly the remaining room still fits.
	if r := ts.post(run, "metrics", tok, metricsBody([]string{"a", "b"}, 5, 5)); r.status != http.StatusOK || !strings.Contains(r.body, `"accepted":10`) {
		t.Fatalf("up to the limit: %d %s", r.status, r.body)
	}
	if r := ts.post(run, "metrics", tok, metricsBody([]string{"a"}, 10, 1)); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("one past the limit: %d %s", r.status, r.body)
	}
}

// One run flooding the ingest queue gets 429 for itself; another run's worker is never
// refused. Whether a given flood batch is refused depends on timing, but the flooder sends
// far more than its share while every batch takes the writer longer to store than the
// handler to read, so some are.
func TestIngestFloodOfOneRunDoesNotRefuseAnother(t *testing.T) {
	ts, _, flooder, floodTok, other, otherTok := workerSetup(t)
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for k := range 4 * store.IngestPerRun {
		wg.Go(func() {
			r := ts.post(flooder, "metrics", floodTok, metricsBody(names, k*500, 500))
			mu.Lock()
			statuses[r.status]++
			mu.Unlock()
			if r.status == http.StatusTooManyRequests {
				var e struct {
					Error struct{ Code, Message string }
				}
				json.Unmarshal([]byte(r.body), &e)
				if e.Error.Code != "rate_limited" || !strings.Contains(e.Error.Message, "This run") || r.header.Get("Retry-After") == "" {
					t.Errorf("flooder's 429: %v %s", r.header, r.body)
				}
			}
		})
	}
	for k := range 20 {
		if r := ts.post(other, "metrics", otherTok, metricsBody(names[:2], k*10, 10)); r.status != http.StatusOK {
			t.Fatalf("the other run's batch %d: %d %s", k, r.status, r.body)
		}
	}
	wg.Wait()
	if statuses[http.StatusTooManyRequests] == 0 || statuses[http.StatusOK]+statuses[http.StatusTooManyRequests] != 4*store.IngestPerRun {
		t.Fatalf("flooder's answers: %v", statuses)
	}
}
