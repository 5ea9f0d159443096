package handlers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var tokenOnPage = regexp.MustCompile(`data-testid="ingest-token">([0-9a-f]{32})<`)

// makeIngestToken posts for a new token: the answer is a 303 to the API page (so a reload
// re-posts nothing), which shows the token once, with a copy button.
func (ts *testServer) makeIngestToken(c *http.Client, run int64) string {
	ts.t.Helper()
	page := fmt.Sprintf("/runs/%d/api", run)
	made := ts.do(c, "POST", page+"/token", url.Values{}, nil)
	if made.status != http.StatusSeeOther || made.header.Get("Location") != page || tokenOnPage.MatchString(made.body) {
		ts.t.Fatalf("making a token: %d to %q, want 303 to %s without the token", made.status, made.header.Get("Location"), page)
	}
	shown := ts.do(c, "GET", page, nil, nil)
	m := tokenOnPage.FindStringSubmatch(shown.body)
	if shown.status != 200 || m == nil || !strings.Contains(shown.body, `data-copy-target="ingest-token"`) {
		ts.t.Fatalf("token page: %d, token shown %v", shown.status, m != nil)
	}
	if shown.header.Get("Cache-Control") != "no-store" {
		ts.t.Errorf("the page with the token may be cached: %q", shown.header.Get("Cache-Control"))
	}
	if again := ts.do(c, "GET", page, nil, nil); tokenOnPage.MatchString(again.body) {
		ts.t.Fatal("a reload shows the token again")
	}
	return m[1]
}

func TestUserMetricsAPIWithARunToken(t *testing.T) {
	ts := newTestServer(t, Config{})
	ada := ts.signUp("ada@example.com")
	bob := ts.signUp("bob@example.com")
	ds := ts.datasetFor(ada, completionLines(20))
	run1, run2 := ts.startRun(ada, runValues(ds)), ts.startRun(ada, runValues(ds))

	page := ts.do(ada, "GET", fmt.Sprintf("/runs/%d/api", run1), nil, nil)
	if page.status != 200 || !strings.Contains(page.body, fmt.Sprintf("/api/v1/runs/%d/metrics", run1)) || tokenOnPage.MatchString(page.body) {
		t.Fatalf("api page: %d", page.status)
	}
	if r := ts.do(bob, "POST", fmt.Sprintf("/runs/%d/api/token", run1), url.Values{}, nil); r.status != http.StatusNotFound {
		t.Fatalf("bob makes a token for ada's run: %d", r.status)
	}
	token := ts.makeIngestToken(ada, run1)
	if strings.Contains(ts.logs.String(), token) {
		t.Fatal("the token reached the logs")
	}
	if again := ts.do(ada, "GET", fmt.Sprintf("/runs/%d/api", run1), nil, nil); strings.Contains(again.body, token) {
		t.Fatal("the token is shown a second time")
	}

	send := func(run int64, tok, body string) response {
		return ts.workerCall("POST", fmt.Sprintf("/api/v1/runs/%d/metrics", run), tok, strings.NewReader(body), nil)
	}
	batch := `{"points":[{"name":"my_eval/accuracy","step":100,"value":0.82},{"name":"my_eval/accuracy","step":200,"value":"NaN"}]}`
	if r := send(run1, token, batch); r.status != 200 || !strings.Contains(r.body, `"accepted":2`) {
		t.Fatalf("post: %d %s", r.status, r.body)
	}
	if r := send(run2, token, batch); r.status != http.StatusForbidden {
		t.Fatalf("token on another run: %d", r.status)
	}
	if r := send(run1, strings.Repeat("0", 32), batch); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", r.status)
	}
	if r := send(run1, token, `{"points":[{"name":"ok","step":1,"value":1},{"name":"Bad Name","step":2,"value":1}]}`); r.status != 400 || !strings.Contains(r.body, "points[1].name") {
		t.Fatalf("bad point: %d %s", r.status, r.body)
	}
	// A new token replaces the old one.
	ts.do(ada, "POST", fmt.Sprintf("/runs/%d/api/token", run1), url.Values{}, nil)
	if r := send(run1, token, batch); r.status != http.StatusUnauthorized {
		t.Fatalf("replaced token still works: %d", r.status)
	}
	pts, _ := ts.store.MetricsAfter(context.Background(), run1, 0, 10)
	if len(pts) != 2 || pts[1].Kind != "nan" {
		t.Fatalf("stored %+v", pts)
	}
	// Deleting the run kills its token too.
	token = ts.makeIngestToken(ada, run1)
	ts.do(ada, "POST", fmt.Sprintf("/runs/%d/delete", run1), url.Values{}, nil)
	if r := send(run1, token, batch); r.status != http.StatusUnauthorized {
		t.Fatalf("token of a deleted run: %d", r.status)
	}
}

func TestMetricHistoryEndpoint(t *testing.T) {
	ts, c, run, tok, _, _ := workerSetup(t)
	var b strings.Builder
	b.WriteString(`{"points":[`)
	for i := range 10_000 {
		if i > 0 {
			b.WriteByte(',')
		}
		v := 1.0
		if i == 7777 {
			v = 500
		}
		fmt.Fprintf(&b, `{"name":"loss","step":%d,"value":%g}`, i, v)
	}
	b.WriteString(`]}`)
	if r := ts.post(run, "metrics", tok, b.String()); r.status != 200 {
		t.Fatalf("10,000 points: %d %s", r.status, r.body)
	}
	whole := ts.do(c, "GET", fmt.Sprintf("/runs/%d/metrics/history?name=loss", run), nil, nil)
	if whole.status != 200 || !strings.Contains(whole.body, `"level":`) || strings.Contains(whole.body, `"level":0`) ||
		!strings.Contains(whole.body, `,500]`) || !strings.Contains(whole.body, `"points_total":10000`) {
		t.Fatalf("history: %d %.300s", whole.status, whole.body)
	}
	zoom := ts.do(c, "GET", fmt.Sprintf("/runs/%d/metrics/history?name=loss&from=7700&to=7800", run), nil, nil)
	if zoom.status != 200 || !strings.Contains(zoom.body, `"level":0`) || !strings.Contains(zoom.body, `[7777,500,`) {
		t.Fatalf("zoom: %d %.300s", zoom.status, zoom.body)
	}
	for q, want := range map[string]int{"name=Loss!": 400, "name=nope": 404, "name=loss&from=-1": 400, "name=loss&to=x": 400} {
		if r := ts.do(c, "GET", fmt.Sprintf("/runs/%d/metrics/history?%s", run, q), nil, nil); r.status != want {
			t.Errorf("%s: %d, want %d", q, r.status, want)
		}
	}
	other := ts.signUp("other@example.com")
	if r := ts.do(other, "GET", fmt.Sprintf("/runs/%d/metrics/history?name=loss", run), nil, nil); r.status != 404 {
		t.Fatalf("another person's history: %d", r.status)
	}
}
