package handlers

import (
	"context"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tunelab/store"
)

// Benchmark 6: the run list and the dashboard of a person with 10,000 runs, in a real
// SQLite file behind the whole handler chain (session, user, security headers, gzip for
// a client that asks for it), over loopback HTTP at 4 and 16 concurrent clients, each
// answering a fixed number of requests. Baseline: a plain html/template page of 50 table
// rows served by plain net/http, measured by the same clients in the same run, the three
// alternating in slices so a busy spell of the machine falls on all of them.
// Target: each page >= 50 % of the plain page's requests per second.

const (
	runListRuns     = 10_000
	runListRequests = 1_200 // per figure and concurrency, over runListSlices slices
	runListSlices   = 3
	runListTimeout  = 90 * time.Second // a measurement that takes longer stops and says so
)

// plainRows is the baseline page: 50 rows, the columns the run list shows.
var plainRows = template.Must(template.New("plain").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Runs</title></head><body>
<table><thead><tr><th>Run</th><th>Status</th><th>Model</th><th>Dataset</th><th>LR · epochs</th><th>Progress</th><th>GPU time</th><th>Created</th></tr></thead>
<tbody>{{range .}}<tr id="run-row-{{.ID}}"><td><a href="/runs/{{.ID}}">{{.Name}}</a></td><td>{{.Status}}</td><td>{{.Model}}</td><td>{{.Dataset}}</td><td>{{.LR}} · {{.Epochs}}</td><td><progress max="100" value="{{.Percent}}">{{.Percent}}%</progress></td><td>{{.GPU}}</td><td>{{.Created}}</td></tr>
{{end}}</tbody></table></body></html>`))

type plainRow struct {
	ID                                                     int
	Name, Status, Model, Dataset, LR, Epochs, GPU, Created string
	Percent                                                int
}

func plainServer() *httptest.Server {
	rows := make([]plainRow, 50)
	for i := range rows {
		rows[i] = plainRow{ID: 10_000 - i, Name: fmt.Sprintf("byte-mlp-small · lora · %04x", i*977%65536), Status: "Succeeded",
			Model: "Byte MLP small", Dataset: "rows.jsonl", LR: "0.003", Epochs: "2", GPU: "1 min 05 s", Created: "29 Nov 2026, 11:04", Percent: 100}
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		plainRows.Execute(w, rows)
	}))
}

// seedRuns gives the person n runs: nine in ten finished with GPU time in the ledger, the
// rest queued, spread over time like a real history.
func seedRuns(b *testing.B, ts *testServer, email, datasetID string, n int) {
	b.Helper()
	ctx := context.Background()
	users, _, err := ts.store.ListUsers(ctx, 10)
	if err != nil {
		b.Fatal(err)
	}
	var userID int64
	for _, u := range users {
		if u.Email == email {
			userID = u.ID
		}
	}
	var dsID int64
	fmt.Sscan(datasetID, &dsID)
	cfg := store.RunConfig{BaseModel: "tunelab/byte-mlp-small", Method: "lora", Epochs: 2, LearningRate: 3e-3, BatchSize: 8,
		LoRARank: 8, LoRAAlpha: 16, MaxSeqLen: 256, Seed: 7, GPUType: "cpu", ValidationSplit: 10}
	start := time.Now()
	for i := range n {
		run, err := ts.store.CreateRun(ctx, store.NewRun{UserID: userID, DatasetID: dsID, Config: cfg, Backend: "local"})
		if err != nil {
			b.Fatal(err)
		}
		if i%10 != 9 {
			if _, err := ts.store.Heartbeat(ctx, run.ID, 10, 10); err != nil {
				b.Fatal(err)
			}
			ts.advance(65 * time.Second)
			status := store.RunSucceeded
			if i%7 == 0 {
				status = store.RunFailed
			}
			if _, err := ts.store.FinishRun(ctx, run.ID, status, "", ts.clock()); err != nil {
				b.Fatal(err)
			}
		}
		ts.advance(time.Second)
	}
	b.Logf("seeded %d runs in %s", n, time.Since(start).Round(time.Millisecond))
}

// loadResult is one measured figure.
type loadResult struct {
	requests int
	elapsed  time.Duration
	failed   int
}

func (l loadResult) rate() float64 { return float64(l.requests) / l.elapsed.Seconds() }

// hammer sends n GETs of url from c concurrent clients (keep-alive, gzip accepted like a
// browser) and times them; it stops early past deadline.
func hammer(client *http.Client, url, cookie string, c, n int, deadline time.Time) loadResult {
	var next, done, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && time.Now().Before(deadline) {
				req, _ := http.NewRequest("GET", url, nil)
				if cookie != "" {
					req.Header.Set("Cookie", cookie)
				}
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return loadResult{requests: int(done.Load()), elapsed: time.Since(start), failed: int(failed.Load())}
}

func BenchmarkRunList(b *testing.B) {
	ts := newTestServer(b, Config{})
	const email = "many@example.com"
	c := ts.signUp(email)
	ds := ts.datasetFor(c, completionLines(20))
	// Seeding moves the test clock on by about a week of run history; start it that far
	// back, so the session (whose expiry the real clock set) is still valid afterwards.
	ts.advance(-8 * 24 * time.Hour)
	seedRuns(b, ts, email, ds, runListRuns)
	cookie := sessionCookieName(false) + "=" + sessionCookie(c, ts.URL)
	plain := plainServer()
	defer plain.Close()

	pages := []struct{ name, url, cookie, marker string }{
		{"plain", plain.URL + "/", "", `<tr id="run-row-`},
		{"run list", ts.URL + "/runs", cookie, `data-testid="page-older"`},
		{"dashboard", ts.URL + "/", cookie, `data-testid="runs-by-status"`},
	}
	for _, concurrency := range []int{4, 16} {
		b.Run(fmt.Sprintf("clients=%d", concurrency), func(b *testing.B) {
			// Redirects are not followed: a lost session would show as failures, not as
			// a fast sign-in page.
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency},
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			defer client.CloseIdleConnections()
			for _, p := range pages { // the right page, then warm connections, caches and pools
				req, _ := http.NewRequest("GET", p.url, nil)
				req.Header.Set("Cookie", p.cookie)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), p.marker) {
					b.Fatalf("%s: %d, not the page measured (%d bytes)", p.name, resp.StatusCode, len(body))
				}
				b.Logf("%s: %d bytes uncompressed", p.name, len(body))
				if r := hammer(client, p.url, p.cookie, concurrency, 4*concurrency, time.Now().Add(30*time.Second)); r.failed > 0 {
					b.Fatalf("%s: %d requests failed", p.name, r.failed)
				}
			}
			totals := make([]loadResult, len(pages))
			deadline := time.Now().Add(runListTimeout)
			for range runListSlices {
				for i, p := range pages {
					r := hammer(client, p.url, p.cookie, concurrency, runListRequests/runListSlices, deadline)
					totals[i].requests += r.requests
					totals[i].elapsed += r.elapsed
					totals[i].failed += r.failed
				}
			}
			base := totals[0]
			for i, p := range pages[1:] {
				got := totals[i+1]
				if got.failed > 0 || got.requests < runListRequests {
					b.Errorf("%s: %d of %d requests answered, %d failed", p.name, got.requests, runListRequests, got.failed)
				}
				share := got.rate() / base.rate()
				benchResult(b, "6 %s, %d runs, %d clients: %.0f req/s (%d requests) ... baseline plain html/template 50 rows %.0f req/s; %.0f %% ... target >= 50 %% ... %s",
					p.name, runListRuns, concurrency, got.rate(), got.requests, base.rate(), share*100, verdict(share >= 0.5 && got.failed == 0))
			}
			hideNsPerOp(b)
		})
	}
}
