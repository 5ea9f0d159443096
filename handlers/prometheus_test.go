package handlers

import (
	"net/http"
	"regexp"
	"strconv"
	"testing"
)

func TestOperatorMetricsNeedTheTokenAndMoveWithIngest(t *testing.T) {
	off := newTestServer(t, Config{})
	if r := off.do(off.client(), "GET", "/metrics", nil, map[string]string{"Authorization": "Bearer anything"}); r.status != http.StatusNotFound {
		t.Fatalf("without a configured token: %d, want 404", r.status)
	}

	const token = "operator-token-for-tests"
	ts := newTestServer(t, Config{MetricsToken: token})
	c := ts.signUp("ops@example.com")
	ts.startRun(c, runValues(ts.datasetFor(c, completionLines(20))))
	run, tok := ts.claim(t)
	for _, h := range []map[string]string{nil, {"Authorization": "Bearer wrong"}, {"Authorization": token}} {
		if r := ts.do(ts.client(), "GET", "/metrics", nil, h); r.status != http.StatusUnauthorized {
			t.Fatalf("headers %v: %d, want 401", h, r.status)
		}
	}
	scrape := func() string {
		r := ts.do(ts.client(), "GET", "/metrics", nil, map[string]string{"Authorization": "Bearer " + token})
		if r.status != http.StatusOK {
			t.Fatalf("scrape: %d %s", r.status, r.body)
		}
		return r.body
	}
	value := func(body, series string) float64 {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			return 0
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	before := scrape()
	if r := ts.post(run, "metrics", tok, metricsBody([]string{"loss", "acc"}, 0, 50)); r.status != http.StatusOK {
		t.Fatalf("ingest: %d %s", r.status, r.body)
	}
	after := scrape()
	for _, tc := range []struct {
		series string
		delta  float64
	}{
		{"tunelab_ingest_points_total", 100},
		{"tunelab_ingest_group_commit_points_count", 1},
		{"tunelab_ingest_group_commit_points_sum", 100},
		{`tunelab_http_request_duration_seconds_count{route="POST /api/v1/worker/runs/{id}/metrics"}`, 1},
	} {
		if d := value(after, tc.series) - value(before, tc.series); d != tc.delta {
			t.Errorf("%s moved by %v, want %v", tc.series, d, tc.delta)
		}
	}
	for _, want := range []string{"tunelab_ingest_queue_depth 0", `tunelab_runs{status="starting"} 1`, "tunelab_sse_viewers 0"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).MatchString(after) {
			t.Errorf("scrape lacks %q:\n%s", want, after)
		}
	}
}
