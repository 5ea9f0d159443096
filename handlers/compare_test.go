package handlers

import (
	"encoding/json"
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

// A compared run that has not ended is followed live: its island entry names its event
// stream (continuing after the points the island holds) and its status, a live run with no
// points yet still gets a line, and the configuration table marks it. An ended run has
// neither, and an ended run without the metric no line.
func TestCompareFollowsRunsThatHaveNotEnded(t *testing.T) {
	ts, c, runA, tokA, runB, tokB := workerSetup(t)
	ds := ts.datasetFor(c, completionLines(20))
	ts.startRun(c, runValues(ds))
	runD, tokD := ts.claim(t)
	runC := ts.startRun(c, runValues(ds)) // queued: no points yet
	ts.post(runA, "metrics", tokA, `{"points":[{"name":"loss","step":1,"value":3},{"name":"loss","step":2,"value":1.5}]}`)
	if r := ts.post(runA, "finish", tokA, `{"status":"succeeded"}`); r.status != http.StatusOK {
		t.Fatalf("finish: %d %s", r.status, r.body)
	}
	ts.post(runB, "heartbeat", tokB, `{"step":1,"total_steps":10}`)
	ts.post(runB, "metrics", tokB, `{"points":[{"name":"loss","step":1,"value":4},{"name":"acc","step":1,"value":0.5}]}`)
	ts.post(runD, "metrics", tokD, `{"points":[{"name":"acc","step":1,"value":0.5}]}`)
	if r := ts.post(runD, "finish", tokD, `{"status":"failed","reason":"x"}`); r.status != http.StatusOK {
		t.Fatalf("finish: %d %s", r.status, r.body)
	}

	page := ts.do(c, "GET", fmt.Sprintf("/compare?run=%d&run=%d&run=%d&run=%d&metric=loss", runA, runB, runC, runD), nil, nil)
	m := regexp.MustCompile(`(?s)<script id="compare-data" type="application/json" nonce="[^"]+">(.*?)</script>`).FindStringSubmatch(page.body)
	if page.status != http.StatusOK || m == nil {
		i := strings.Index(page.body, "compare-data")
		t.Fatalf("compare: %d, no data island: %q", page.status, page.body[max(0, i-80):min(len(page.body), i+200)])
	}
	var island struct {
		Runs []struct {
			RunID     int64           `json:"run_id"`
			Live      string          `json:"live"`
			EventsURL string          `json:"events_url"`
			Series    json.RawMessage `json:"series"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(m[1]), &island); err != nil {
		t.Fatal(err)
	}
	type entry struct{ live, events, series string }
	got := map[int64]entry{}
	for _, r := range island.Runs {
		got[r.RunID] = entry{r.Live, r.EventsURL, string(r.Series)[:min(4, len(r.Series))]}
	}
	want := map[int64]entry{
		runA: {"", "", "{\"na"},
		runB: {"Running", fmt.Sprintf("/runs/%d/events?after=2", runB), "{\"na"}, // the run's own sequence: its two points
		runC: {"Queued", fmt.Sprintf("/runs/%d/events?after=0", runC), "null"},
	}
	if len(got) != len(want) {
		t.Errorf("island runs %v, want %v (an ended run without the metric has no line)", got, want)
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("run %d in the island: %+v, want %+v", id, got[id], w)
		}
	}
	for _, want := range []string{
		fmt.Sprintf(`data-compare-live="%d" data-testid="config-live">Running<`, runB),
		fmt.Sprintf(`data-compare-live="%d" data-testid="config-live">Queued<`, runC),
	} {
		if !strings.Contains(page.body, want) {
			t.Errorf("configuration table lacks %s", want)
		}
	}
	if n := strings.Count(page.body, `data-testid="config-live"`); n != 2 {
		t.Errorf("%d runs marked live in the configuration table, want 2", n)
	}
}
