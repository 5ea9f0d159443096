package handlers

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestComparePageAndRunTableMetricColumns(t *testing.T) {
	ts, c, runA, tokA, runB, tokB := workerSetup(t)
	ts.post(runA, "metrics", tokA, `{"points":[{"name":"loss","step":1,"value":3},{"name":"loss","step":2,"value":1.5}]}`)
	ts.post(runB, "metrics", tokB, `{"points":[{"name":"loss","step":1,"value":4},{"name":"loss","step":2,"value":2.25},{"name":"acc","step":2,"value":0.5}]}`)

	page := ts.do(c, "GET", fmt.Sprintf("/compare?run=%d&run=%d&metric=loss", runA, runB), nil, nil)
	if page.status != 200 || !strings.Contains(page.body, `id="compare-data"`) {
		t.Fatalf("compare: %d", page.status)
	}
	for _, want := range []string{fmt.Sprintf(`"run_id":%d`, runA), fmt.Sprintf(`"run_id":%d`, runB), `[2,2.25,`, `[2,1.5,`, `"best_is":"min"`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("compare data lacks %s", want)
		}
	}
	other := ts.signUp("eve@example.com")
	if r := ts.do(other, "GET", fmt.Sprintf("/compare?run=%d&metric=loss", runA), nil, nil); r.status != http.StatusOK || strings.Contains(r.body, `"run_id":`) {
		t.Fatalf("another person's run on the compare page: %d", r.status)
	}

	list := ts.do(c, "GET", "/runs?metric=loss", nil, nil)
	for _, want := range []string{">1.5<", ">3<", ">2.25<", ">4<"} {
		if !strings.Contains(list.body, want) {
			t.Errorf("run table lacks %s for loss last/min/max", want)
		}
	}
	// The live rows' poll keeps the chosen metric.
	if !regexp.MustCompile(`hx-get="/runs/live\?[^"]*metric=loss`).MatchString(list.body) {
		t.Error("the live rows forget the chosen metric")
	}
}

func TestRunPageCarriesTheMetricsIsland(t *testing.T) {
	ts, c, run, tok, _, _ := workerSetup(t)
	ts.post(run, "metrics", tok, `{"points":[{"name":"loss","step":1,"value":3},{"name":"gpu_util","step":1,"value":97}]}`)
	page := ts.do(c, "GET", fmt.Sprintf("/runs/%d", run), nil, nil)
	if page.status != 200 || !regexp.MustCompile(`<script id="run-metrics-data" type="application/json" nonce="[^"]+">\{`).MatchString(page.body) {
		i := strings.Index(page.body, "run-metrics-data")
		t.Fatalf("run page without its data island: %d %q", page.status, page.body[max(0, i-80):min(len(page.body), i+80)])
	}
	for _, want := range []string{`"after_seq":2`, `"name":"gpu_util"`, fmt.Sprintf(`/runs/%d/events?after=2`, run)} {
		if !strings.Contains(page.body, want) {
			t.Errorf("run page lacks %s", want)
		}
	}
}
