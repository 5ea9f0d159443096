package handlers

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestRunNamesTagsAndNotesAreEditable(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("names@example.com")
	ds := ts.datasetFor(c, completionLines(20))
	id := ts.startRun(c, runValues(ds))
	path := fmt.Sprintf("/runs/%d", id)

	page := ts.do(c, "GET", path, nil, nil)
	if !regexp.MustCompile(`data-testid="run-name">byte-mlp-small · lora · [0-9a-f]{4}<`).MatchString(page.body) {
		t.Fatalf("default name missing on the run page")
	}
	for _, tc := range []struct {
		name, tags, notes string
		wantStatus        int
		wantContains      []string
	}{
		{"", "", "", 422, []string{`data-testid="error-name"`, "Use 1 to 100 characters."}},
		{strings.Repeat("n", 101), "", "", 422, []string{`data-testid="error-name"`}},
		{"ok", "a b c d e f g h i j k", "", 422, []string{`data-testid="error-tags"`, "at most 10 tags"}},
		{"ok", "good, Bad/Tag", "", 422, []string{`data-testid="error-tags"`, "bad/tag"}},
		{"ok", strings.Repeat("t", 33), "", 422, []string{`data-testid="error-tags"`}},
		{"lr sweep <b>", "Baseline, lr-3e-3 v1.2", "first try\nsecond line", 303, nil},
	} {
		r := ts.do(c, "POST", path+"/edit", url.Values{"name": {tc.name}, "tags": {tc.tags}, "notes": {tc.notes}}, nil)
		if r.status != tc.wantStatus {
			t.Fatalf("edit %q %q: %d, want %d", tc.name, tc.tags, r.status, tc.wantStatus)
		}
		for _, want := range tc.wantContains {
			if !strings.Contains(html.UnescapeString(r.body), want) {
				t.Errorf("edit %q %q: answer lacks %q", tc.name, tc.tags, want)
			}
		}
		if r.status == 422 && (!strings.Contains(r.body, `value="`+html.EscapeString(tc.tags)+`"`) || !strings.Contains(r.body, "<details class=\"run-edit\" data-testid=\"run-edit\" open")) {
			t.Errorf("edit %q: the refused form does not keep what was typed, open", tc.name)
		}
	}
	page = ts.do(c, "GET", path, nil, nil)
	for _, want := range []string{`data-testid="run-name">lr sweep &lt;b&gt;<`, `<span class="tag">baseline</span>`, `<span class="tag">lr-3e-3</span>`, `<span class="tag">v1.2</span>`, "first try\nsecond line"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	list := ts.do(c, "GET", "/runs", nil, nil)
	for _, want := range []string{`lr sweep &lt;b&gt;</a>`, `<span class="tag">lr-3e-3</span>`, `data-testid="run-hparams">0.003 · 2<`, `data-testid="run-method">LoRA<`} {
		if !strings.Contains(list.body, want) {
			t.Errorf("run list lacks %q", want)
		}
	}
	other := ts.signUp("other@example.com")
	if r := ts.do(other, "POST", path+"/edit", url.Values{"name": {"mine now"}}, nil); r.status != http.StatusNotFound {
		t.Fatalf("another person's run: %d", r.status)
	}
}

var (
	olderLink = regexp.MustCompile(`href="(/runs\?[^"]*before=[^"]+)"[^>]*data-testid="page-older"`)
	newerLink = regexp.MustCompile(`href="(/runs\?[^"]*after=[^"]+)"[^>]*data-testid="page-newer"`)
	rowID     = regexp.MustCompile(`<tr id="run-row-(\d+)"`)
)

func TestRunListPaginatesAndKeepsFilters(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("pages@example.com")
	chat := ts.datasetFor(c, completionLines(20))
	pref := ts.datasetFor(c, preferenceLines(20))
	for i := range 56 {
		v := runValues(chat)
		if i%8 == 0 {
			v = runValues(pref)
			v.Set("method", "dpo")
		}
		ts.startRun(c, v)
		ts.advance(time.Second)
	}
	first := ts.do(c, "GET", "/runs", nil, nil)
	if n := len(rowID.FindAllString(first.body, -1)); n != 50 {
		t.Fatalf("first page: %d rows", n)
	}
	if newerLink.MatchString(first.body) {
		t.Error("the first page offers newer runs")
	}
	m := olderLink.FindStringSubmatch(first.body)
	if m == nil {
		t.Fatal("no Older link on the first page")
	}
	second := ts.do(c, "GET", html.UnescapeString(m[1]), nil, nil)
	if n := len(rowID.FindAllString(second.body, -1)); n != 6 || olderLink.MatchString(second.body) || !newerLink.MatchString(second.body) {
		t.Fatalf("second page: %d rows", n)
	}

	// Filters travel with the pages and narrow the rows.
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"?method=dpo", 7},
		{"?dataset=" + pref, 7},
		{"?status=queued&method=lora", 49},
		{"?status=running", 0},
		{"?q=BYTE-mlp", 50},
		{"?q=nothing", 0},
		{"?method=nonsense", 50}, // an unknown value is ignored
	} {
		r := ts.do(c, "GET", "/runs"+tc.query, nil, nil)
		if n := len(rowID.FindAllString(r.body, -1)); r.status != 200 || n != tc.want {
			t.Errorf("%s: %d, %d rows, want %d", tc.query, r.status, n, tc.want)
		}
		if tc.want == 0 && !strings.Contains(r.body, `data-testid="no-match"`) {
			t.Errorf("%s: no message for an empty result", tc.query)
		}
	}
	r := ts.do(c, "GET", "/runs?status=queued&q=byte", nil, nil)
	m = olderLink.FindStringSubmatch(r.body)
	if m == nil || !strings.Contains(m[1], "status=queued") || !strings.Contains(m[1], "q=byte") {
		t.Fatalf("Older link drops the filters: %v", m)
	}
	r = ts.do(c, "GET", html.UnescapeString(m[1]), nil, nil)
	if n := len(rowID.FindAllString(r.body, -1)); n != 6 {
		t.Errorf("filtered second page: %d rows", n)
	}
	if m := newerLink.FindStringSubmatch(r.body); m == nil || !strings.Contains(m[1], "status=queued") {
		t.Errorf("Newer link drops the filters: %v", m)
	}

	// htmx filtering swaps only the table.
	frag := ts.do(c, "GET", "/runs?method=dpo", nil, map[string]string{"HX-Request": "true"})
	if strings.Contains(frag.body, "<html") || !strings.Contains(frag.body, `id="run-table"`) || strings.Contains(frag.body, `data-testid="filter-form"`) {
		t.Error("the htmx answer is not just the table")
	}
}

func TestRunListLiveRowsSendOnlyWhatChanged(t *testing.T) {
	ts, c, runA, tokA, runB, _ := workerSetup(t)
	finished := ts.startRun(c, runValues(ts.datasetFor(c, completionLines(20))))
	ts.store.CancelRun(t.Context(), 1, finished)

	list := ts.do(c, "GET", "/runs", nil, nil)
	poll := regexp.MustCompile(`id="runs-live" hidden hx-get="([^"]+)" hx-trigger="every 2s"`).FindStringSubmatch(list.body)
	if poll == nil {
		t.Fatal("no poller while runs are live")
	}
	liveURL := html.UnescapeString(poll[1])
	if strings.Contains(liveURL, fmt.Sprintf("run=%d", finished)) {
		t.Error("the poll asks about a finished run")
	}
	// Nothing changed: no rows, the poller again.
	r := ts.do(c, "GET", liveURL, nil, map[string]string{"HX-Request": "true"})
	if r.status != 200 || rowID.MatchString(r.body) || !strings.Contains(r.body, `id="runs-live"`) {
		t.Fatalf("unchanged: %d\n%s", r.status, r.body)
	}
	// Run A starts: only its row comes, marked to swap in place.
	ts.post(runA, "heartbeat", tokA, `{"step":3,"total_steps":10}`)
	r = ts.do(c, "GET", liveURL, nil, map[string]string{"HX-Request": "true"})
	rows := rowID.FindAllStringSubmatch(r.body, -1)
	if len(rows) != 1 || rows[0][1] != fmt.Sprint(runA) || !strings.Contains(r.body, fmt.Sprintf(`<hx-partial hx-target="#run-row-%d" hx-swap="outerHTML">`, runA)) || strings.Contains(r.body, "<html") {
		t.Fatalf("after a heartbeat: rows %v\n%s", rows, r.body)
	}
	// Both end: their last rows come, and the new poller no longer polls.
	ts.post(runA, "finish", tokA, `{"status":"succeeded"}`)
	ts.store.CancelRun(t.Context(), 1, runB)
	ts.store.FinishRun(t.Context(), runB, "cancelled", "", ts.clock())
	r = ts.do(c, "GET", liveURL, nil, map[string]string{"HX-Request": "true"})
	if n := len(rowID.FindAllString(r.body, -1)); n != 2 || strings.Contains(r.body, "hx-trigger") {
		t.Fatalf("after the end: %d rows, poller %v", n, strings.Contains(r.body, "hx-trigger"))
	}
	// Someone else asking about these runs gets nothing.
	eve := ts.signUp("eve@example.com")
	if r := ts.do(eve, "GET", liveURL, nil, nil); rowID.MatchString(r.body) {
		t.Fatal("another person's live rows")
	}
}

func TestDashboardAndBillingGPUTimeComeFromTheLedger(t *testing.T) {
	ts, c, runA, tokA, runB, tokB := workerSetup(t)
	ts.post(runA, "heartbeat", tokA, `{"step":1,"total_steps":10}`)
	ts.post(runB, "heartbeat", tokB, `{"step":1,"total_steps":10}`)
	ts.advance(125 * time.Second)
	ts.post(runA, "finish", tokA, `{"status":"succeeded"}`)
	gpu := regexp.MustCompile(`data-testid="stat-gpu"[\s\S]*?class="stat-value"[^>]*>([^<]+)<`)
	figure := func(path string) string {
		r := ts.do(c, "GET", path, nil, nil)
		m := gpu.FindStringSubmatch(r.body)
		if r.status != 200 || m == nil {
			t.Fatalf("%s: %d, no GPU figure", path, r.status)
		}
		return m[1]
	}
	if got := figure("/"); got != "2 min 05 s" {
		t.Fatalf("dashboard GPU time %q, want 2 min 05 s (run B is still running: not yet in the ledger)", got)
	}
	if got := figure("/billing"); got != "2 min 05 s" {
		t.Fatalf("billing GPU time %q", got)
	}
	dash := ts.do(c, "GET", "/", nil, nil)
	for _, want := range []string{`data-testid="count-running"`, `data-testid="count-succeeded"`, `href="/runs?status=succeeded"`, `href="/runs/new"`} {
		if !strings.Contains(dash.body, want) {
			t.Errorf("dashboard lacks %s", want)
		}
	}
	if r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/delete", runA), url.Values{}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("delete: %d", r.status)
	}
	if got := figure("/"); got != "2 min 05 s" {
		t.Fatalf("dashboard GPU time after deleting the run: %q", got)
	}
	if got := figure("/billing"); got != "2 min 05 s" {
		t.Fatalf("billing GPU time after deleting the run: %q", got)
	}
	if strings.Contains(ts.do(c, "GET", "/", nil, nil).body, `data-testid="count-succeeded"`) {
		t.Error("a deleted run still counted by status")
	}
}

func TestSimilarRunAndDatasetLinksFillTheForm(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("similar@example.com")
	chat := ts.datasetFor(c, completionLines(20))
	pref := ts.datasetFor(c, preferenceLines(20))
	v := runValues(chat)
	v.Set("learning_rate", "0.0007")
	v.Set("epochs", "5")
	v.Set("seed", "99")
	id := ts.startRun(c, v)
	if page := ts.do(c, "GET", fmt.Sprintf("/runs/%d", id), nil, nil); !strings.Contains(page.body, fmt.Sprintf(`href="/runs/new?from=%d"`, id)) {
		t.Fatal("no 'Start a similar run' on the run page")
	}
	form := ts.do(c, "GET", fmt.Sprintf("/runs/new?from=%d", id), nil, nil)
	for _, want := range []string{`name="learning_rate" type="text" value="0.0007"`, `value="5"`, `value="99"`, `data-testid="from-run"`} {
		if !strings.Contains(form.body, want) {
			t.Errorf("similar run form lacks %s", want)
		}
	}
	if !regexp.MustCompile(`<option value="` + chat + `" selected`).MatchString(form.body) {
		t.Error("similar run form does not choose the run's dataset")
	}
	if ds := ts.do(c, "GET", "/datasets/"+pref, nil, nil); !strings.Contains(ds.body, `href="/runs/new?dataset=`+pref+`"`) {
		t.Fatal("no 'Fine-tune on this dataset' on the dataset page")
	}
	form = ts.do(c, "GET", "/runs/new?dataset="+pref, nil, nil)
	if !regexp.MustCompile(`<option value="` + pref + `" selected`).MatchString(form.body) {
		t.Error("the form does not preselect the dataset the person came from")
	}
	if !regexp.MustCompile(`value="dpo"[^>]*checked`).MatchString(form.body) {
		t.Error("a preference dataset does not choose DPO")
	}
	eve := ts.signUp("eve@example.com")
	if r := ts.do(eve, "GET", fmt.Sprintf("/runs/new?from=%d", id), nil, nil); r.status != 200 || strings.Contains(r.body, "0.0007") {
		t.Fatal("another person's run settings leak into the form")
	}
}

func TestCompareLabelsByNameAndMarksDifferingSettings(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("cmp@example.com")
	ds := ts.datasetFor(c, completionLines(20))
	a := ts.startRun(c, runValues(ds))
	v := runValues(ds)
	v.Set("learning_rate", "0.01")
	b := ts.startRun(c, v)
	ts.do(c, "POST", fmt.Sprintf("/runs/%d/edit", a), url.Values{"name": {"slow lr"}}, nil)
	ts.do(c, "POST", fmt.Sprintf("/runs/%d/edit", b), url.Values{"name": {"fast lr"}}, nil)
	page := ts.do(c, "GET", fmt.Sprintf("/compare?run=%d&run=%d", a, b), nil, nil)
	// (The runs are queued: each head also carries its status.)
	if !strings.Contains(page.body, `data-testid="compare-configs"`) || !regexp.MustCompile(`<th scope="col">slow lr[ <]`).MatchString(page.body) {
		t.Fatal("no configuration table headed by run names")
	}
	differs := regexp.MustCompile(`data-testid="config-differs"><th scope="row">([^<]+)<`).FindAllStringSubmatch(page.body, -1)
	if len(differs) != 1 || strings.TrimSpace(differs[0][1]) != "Learning rate" {
		t.Fatalf("differing rows: %v", differs)
	}
	for _, want := range []string{"<td>10 % held out</td>", "<td>7</td>", "<td>8 / 16</td>"} {
		if strings.Count(page.body, want) != 2 {
			t.Errorf("configuration table: %q not shown for both runs", want)
		}
	}
	if !strings.Contains(page.body, `compare-run-label">slow lr<`) {
		t.Error("the run picker does not label runs by name")
	}
}

func TestDatasetListPaginates(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("ds@example.com")
	for range 52 {
		ts.datasetFor(c, completionLines(10))
	}
	first := ts.do(c, "GET", "/datasets", nil, nil)
	if n := strings.Count(first.body, `data-testid="dataset-row"`); n != 50 {
		t.Fatalf("first page: %d", n)
	}
	m := regexp.MustCompile(`href="(/datasets\?before=\d+)"`).FindStringSubmatch(first.body)
	if m == nil {
		t.Fatal("no Older link")
	}
	second := ts.do(c, "GET", m[1], nil, nil)
	if n := strings.Count(second.body, `data-testid="dataset-row"`); n != 2 || !strings.Contains(second.body, `href="/datasets?after=`) {
		t.Fatalf("second page: %d rows", n)
	}
}
