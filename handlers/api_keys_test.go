package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"tunelab/store"
)

var apiKeyOnPage = regexp.MustCompile(`data-testid="api-key">(tl_[0-9A-Za-z]{32})<`)

// makeAPIKey posts the form: a 303 back to the page (a reload re-posts nothing), which
// shows the key once, with a copy button.
func (ts *testServer) makeAPIKey(c *http.Client, name, expires string) string {
	ts.t.Helper()
	made := ts.do(c, "POST", "/settings/api-keys", url.Values{"name": {name}, "expires": {expires}}, nil)
	if made.status != http.StatusSeeOther || made.header.Get("Location") != "/settings/api-keys" || apiKeyOnPage.MatchString(made.body) {
		ts.t.Fatalf("making a key: %d to %q", made.status, made.header.Get("Location"))
	}
	shown := ts.do(c, "GET", "/settings/api-keys", nil, nil)
	m := apiKeyOnPage.FindStringSubmatch(shown.body)
	if shown.status != 200 || m == nil || !strings.Contains(shown.body, `data-copy-target="api-key"`) {
		ts.t.Fatalf("key page: %d, key shown %v", shown.status, m != nil)
	}
	if shown.header.Get("Cache-Control") != "no-store" {
		ts.t.Errorf("the page with the key may be cached: %q", shown.header.Get("Cache-Control"))
	}
	if again := ts.do(c, "GET", "/settings/api-keys", nil, nil); strings.Contains(again.body, m[1]) {
		ts.t.Fatal("a reload shows the key again")
	}
	return m[1]
}

func (ts *testServer) apiGet(key, path string, into any) response {
	ts.t.Helper()
	r := ts.workerCall("GET", path, key, nil, nil)
	if into != nil && r.status == 200 {
		if err := json.Unmarshal([]byte(r.body), into); err != nil {
			ts.t.Fatalf("%s: %v in %s", path, err, r.body)
		}
	}
	return r
}

func (ts *testServer) eventCount(kind string) int {
	ts.t.Helper()
	evs, err := ts.store.RecentSecurityEvents(context.Background(), 1000)
	if err != nil {
		ts.t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

func TestAPIKeysInSettings(t *testing.T) {
	ts := newTestServer(t, Config{})
	ada := ts.signUp("ada@example.com")
	bob := ts.signUp("bob@example.com")

	if r := ts.do(ada, "GET", "/settings", nil, nil); !strings.Contains(r.body, `href="/settings/api-keys"`) {
		t.Fatal("Settings does not link to the API keys")
	}
	if r := ts.do(ts.client(), "GET", "/settings/api-keys", nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("anonymous: %d", r.status)
	}
	for _, tc := range []struct{ name, expires, field string }{
		{"", "", "name-error"},
		{strings.Repeat("x", 65), "", "name-error"},
		{"ci", "3", "expires-error"},
		{"ci", "abc", "expires-error"},
	} {
		r := ts.do(ada, "POST", "/settings/api-keys", url.Values{"name": {tc.name}, "expires": {tc.expires}}, nil)
		if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `data-testid="`+tc.field+`"`) {
			t.Errorf("%q/%q: %d, want 422 with %s", tc.name, tc.expires, r.status, tc.field)
		}
	}
	key := ts.makeAPIKey(ada, "laptop", "30")
	if strings.Contains(ts.logs.String(), key) {
		t.Fatal("the key reached the logs")
	}
	page := ts.do(ada, "GET", "/settings/api-keys", nil, nil)
	if !strings.Contains(page.body, key[:9]+"…") || strings.Contains(page.body, key) || !strings.Contains(page.body, "laptop") ||
		!strings.Contains(page.body, ts.clock().Add(30*24*time.Hour).UTC().Format(apiKeyTime)) {
		t.Fatalf("list does not show the prefix and expiry, or shows the key:\n%s", page.body)
	}
	if !strings.Contains(page.body, `data-testid="api-key-last-used">Never<`) {
		t.Fatal("an unused key has a last-used time")
	}
	ts.advance(2 * time.Minute)
	if r := ts.apiGet(key, "/api/v1/runs", nil); r.status != 200 {
		t.Fatalf("fresh key: %d %s", r.status, r.body)
	}
	if page = ts.do(ada, "GET", "/settings/api-keys", nil, nil); !strings.Contains(page.body, `data-testid="api-key-last-used">`+ts.clock().UTC().Format(apiKeyTime)+`<`) {
		t.Fatal("last used time not shown")
	}
	if bobs := ts.do(bob, "GET", "/settings/api-keys", nil, nil); strings.Contains(bobs.body, key[:9]) {
		t.Fatal("bob sees ada's key")
	}
	keys, _ := ts.store.APIKeys(context.Background(), 1)
	if len(keys) != 1 {
		t.Fatalf("keys: %+v", keys)
	}
	revoke := fmt.Sprintf("/settings/api-keys/%d/revoke", keys[0].ID)
	if r := ts.do(bob, "POST", revoke, url.Values{}, nil); r.status != http.StatusNotFound {
		t.Fatalf("bob revokes ada's key: %d", r.status)
	}
	if r := ts.apiGet(key, "/api/v1/runs", nil); r.status != 200 {
		t.Fatal("bob's attempt revoked the key")
	}
	if r := ts.do(ada, "POST", revoke, url.Values{}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("revoke: %d", r.status)
	}
	if page = ts.do(ada, "GET", "/settings/api-keys", nil, nil); !strings.Contains(page.body, `data-testid="api-key-revoked"`) || !strings.Contains(page.body, "Revoked") ||
		strings.Contains(page.body, `data-testid="api-key-revoke"`) {
		t.Fatal("revoked key not shown as revoked")
	}
	if r := ts.apiGet(key, "/api/v1/runs", nil); r.status != http.StatusUnauthorized || errorCode(t, r) != "unauthorized" {
		t.Fatalf("revoked key: %d %s", r.status, r.body)
	}
	if ts.eventCount(store.EventAPIKeyCreated) != 1 || ts.eventCount(store.EventAPIKeyRevoked) != 1 || ts.eventCount(store.EventAPIKeyFailed) != 1 {
		t.Fatal("key events not recorded")
	}
	if r := ts.do(ts.admin("root@example.com"), "GET", "/admin", nil, nil); !strings.Contains(r.body, "API key created") || !strings.Contains(r.body, "Bad API key") {
		t.Fatal("key events not on the admin page")
	}
}

func TestAPIKeyExpires(t *testing.T) {
	ts := newTestServer(t, Config{})
	ada := ts.signUp("ada@example.com")
	// The form offers days; a key that expires within the session's life shows the rest.
	_, key, err := ts.store.CreateAPIKey(context.Background(), 1, "short", ts.clock().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if r := ts.apiGet(key, "/api/v1/datasets", nil); r.status != 200 {
		t.Fatalf("live key: %d", r.status)
	}
	ts.advance(time.Minute)
	if r := ts.apiGet(key, "/api/v1/datasets", nil); r.status != http.StatusUnauthorized || !strings.Contains(r.body, "expired") {
		t.Fatalf("expired key: %d %s", r.status, r.body)
	}
	if r := ts.do(ada, "GET", "/settings/api-keys", nil, nil); !strings.Contains(r.body, "Expired") || strings.Contains(r.body, `data-testid="api-key-revoke"`) {
		t.Fatalf("expired key not marked: %d", r.status)
	}
	if ts.eventCount(store.EventAPIKeyFailed) != 1 {
		t.Fatal("expired key use not recorded")
	}
}

func TestAPIReadsOnlyTheOwnersRunsAndDatasets(t *testing.T) {
	ts := newTestServer(t, Config{})
	ada := ts.signUp("ada@example.com")
	bob := ts.signUp("bob@example.com")
	ds := ts.datasetFor(ada, completionLines(20))
	var runs []int64
	for range 3 {
		runs = append(runs, ts.startRun(ada, runValues(ds)))
	}
	bobDS := ts.datasetFor(bob, completionLines(20))
	bobRun := ts.startRun(bob, runValues(bobDS))
	key := ts.makeAPIKey(ada, "script", "")

	// Paginated list, newest first.
	var page1, page2 apiRunList
	if r := ts.apiGet(key, "/api/v1/runs?limit=2", &page1); r.status != 200 || len(page1.Runs) != 2 || page1.Runs[0].ID != runs[2] || page1.NextBefore == "" {
		t.Fatalf("page 1: %d %s", r.status, r.body)
	}
	if r := ts.apiGet(key, "/api/v1/runs?limit=2&before="+url.QueryEscape(page1.NextBefore), &page2); r.status != 200 || len(page2.Runs) != 1 || page2.Runs[0].ID != runs[0] || page2.NextBefore != "" {
		t.Fatalf("page 2: %d %s", r.status, r.body)
	}
	var one apiRun
	if r := ts.apiGet(key, fmt.Sprintf("/api/v1/runs/%d", runs[1]), &one); r.status != 200 || one.ID != runs[1] || one.Status != "queued" || one.Config.Method == "" || fmt.Sprint(one.DatasetID) != ds {
		t.Fatalf("run: %d %s", r.status, r.body)
	}
	var dsl apiDatasetList
	if r := ts.apiGet(key, "/api/v1/datasets", &dsl); r.status != 200 || len(dsl.Datasets) != 1 || fmt.Sprint(dsl.Datasets[0].ID) != ds || dsl.Datasets[0].Rows != 20 {
		t.Fatalf("datasets: %d %s", r.status, r.body)
	}
	var d apiDataset
	if r := ts.apiGet(key, "/api/v1/datasets/"+ds, &d); r.status != 200 || d.Name == "" {
		t.Fatalf("dataset: %d %s", r.status, r.body)
	}
	// Bob's ids are 404, the same as ids that do not exist; so are bad ids.
	for _, path := range []string{fmt.Sprintf("/api/v1/runs/%d", bobRun), "/api/v1/runs/99999", "/api/v1/datasets/" + bobDS,
		"/api/v1/datasets/x", fmt.Sprintf("/api/v1/runs/%d/metrics/history?name=loss", bobRun)} {
		if r := ts.apiGet(key, path, nil); r.status != http.StatusNotFound || errorCode(t, r) != "not_found" {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
	for _, path := range []string{"/api/v1/runs?limit=0", "/api/v1/runs?limit=101", "/api/v1/runs?before=nope", "/api/v1/runs?status=bogus", "/api/v1/datasets?before=-1"} {
		if r := ts.apiGet(key, path, nil); r.status != http.StatusBadRequest || errorCode(t, r) != "invalid_field" {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
	// No key, a malformed one, an unknown one: 401 in the JSON shape.
	for _, tok := range []string{"", "tl_short", store.NewAPIKeySecret(), strings.Repeat("0", 32)} {
		if r := ts.apiGet(tok, "/api/v1/runs", nil); r.status != http.StatusUnauthorized || errorCode(t, r) != "unauthorized" {
			t.Errorf("token %q: %d %s", tok, r.status, r.body)
		}
	}
	// The session cookie is no key.
	if r := ts.do(ada, "GET", "/api/v1/runs", nil, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("cookie instead of a key: %d", r.status)
	}
}

func TestAPIKeyPostsAndReadsMetrics(t *testing.T) {
	ts := newTestServer(t, Config{})
	ada := ts.signUp("ada@example.com")
	bob := ts.signUp("bob@example.com")
	ds := ts.datasetFor(ada, completionLines(20))
	run := ts.startRun(ada, runValues(ds))
	bobRun := ts.startRun(bob, runValues(ts.datasetFor(bob, completionLines(20))))
	key := ts.makeAPIKey(ada, "eval", "")
	token := ts.makeIngestToken(ada, run)

	send := func(id int64, tok, body string) response {
		return ts.workerCall("POST", fmt.Sprintf("/api/v1/runs/%d/metrics", id), tok, strings.NewReader(body), nil)
	}
	if r := send(run, key, `{"points":[{"name":"my_eval/accuracy","step":1,"value":0.5},{"name":"my_eval/accuracy","step":2,"value":0.75}]}`); r.status != 200 || !strings.Contains(r.body, `"accepted":2`) {
		t.Fatalf("post with a key: %d %s", r.status, r.body)
	}
	// The per-run token keeps working.
	if r := send(run, token, `{"points":[{"name":"my_eval/accuracy","step":3,"value":0.9}]}`); r.status != 200 {
		t.Fatalf("post with the run token: %d %s", r.status, r.body)
	}
	if r := send(bobRun, key, `{"points":[{"name":"x","step":1,"value":1}]}`); r.status != http.StatusNotFound {
		t.Fatalf("ada's key on bob's run: %d %s", r.status, r.body)
	}
	var h struct {
		Name        string  `json:"name"`
		PointsTotal int     `json:"points_total"`
		Line        [][]any `json:"line"`
	}
	if r := ts.apiGet(key, fmt.Sprintf("/api/v1/runs/%d/metrics/history?name=my_eval/accuracy", run), &h); r.status != 200 || h.PointsTotal != 3 || len(h.Line) != 3 || h.Line[2][1] != 0.9 {
		t.Fatalf("history: %d %s", r.status, r.body)
	}
	if r := ts.apiGet(key, fmt.Sprintf("/api/v1/runs/%d/metrics/history?name=nope", run), nil); r.status != http.StatusNotFound {
		t.Fatalf("unknown metric: %d", r.status)
	}
	keys, _ := ts.store.APIKeys(context.Background(), 1)
	ts.do(ada, "POST", fmt.Sprintf("/settings/api-keys/%d/revoke", keys[0].ID), url.Values{}, nil)
	if r := send(run, key, `{"points":[{"name":"x","step":1,"value":1}]}`); r.status != http.StatusUnauthorized {
		t.Fatalf("revoked key posts: %d %s", r.status, r.body)
	}
}

func TestBadAPIKeysAreRateLimited(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.signUp("ada@example.com")
	limited := false
	for i := range 700 {
		r := ts.apiGet(store.NewAPIKeySecret(), "/api/v1/runs", nil)
		if r.status == http.StatusTooManyRequests {
			if r.header.Get("Retry-After") == "" || i < 600 {
				t.Fatalf("limited after %d tries, Retry-After %q", i, r.header.Get("Retry-After"))
			}
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("700 bad keys from one address were never limited")
	}
	if n := ts.eventCount(store.EventAPIKeyFailed); n != 600 {
		t.Fatalf("%d failure events, want one per counted failure (600)", n)
	}
}
