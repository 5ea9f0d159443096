package handlers

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestQueuedRunsQuotaRefusesTheFormWithWhatToDo(t *testing.T) {
	ts := newTestServer(t, Config{QueuedRunsQuota: 2})
	c := ts.signUp("busy@example.com")
	v := runValues(ts.datasetFor(c, completionLines(20)))
	first := ts.startRun(c, v)
	ts.startRun(c, v)
	r := ts.do(c, "POST", "/runs", v, nil)
	body := html.UnescapeString(r.body)
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `data-testid="form-error"`) ||
		!strings.Contains(body, "you already have 2 queued runs, and one account may have at most 2 waiting") || !strings.Contains(body, "cancel queued runs") ||
		!strings.Contains(body, `name="base_model"`) {
		t.Fatalf("third queued run: %d\n%.3000s", r.status, body)
	}
	if n := ts.runCount("busy@example.com"); n != 2 {
		t.Fatalf("%d runs stored, want 2", n)
	}
	// A retry is a new queued run too.
	if r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/cancel", first), url.Values{}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("cancel: %d", r.status)
	}
	ts.startRun(c, v) // the cancel made room
	r = ts.do(c, "POST", fmt.Sprintf("/runs/%d/retry", first), url.Values{}, nil)
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(r.body), "Wait for a queued run to start") {
		t.Fatalf("retry past the quota: %d\n%.2000s", r.status, r.body)
	}
	if n := ts.runCount("busy@example.com"); n != 3 {
		t.Fatalf("%d runs stored, want 3", n)
	}
}

func TestDatasetQuotaRefusesTheUploadNamingUsedAndLimit(t *testing.T) {
	content := completionLines(400)
	size := int64(len(content))
	ts := newTestServer(t, Config{DatasetQuotaBytes: size + size/2})
	c := ts.signUp("full@example.com")
	ts.datasetFor(c, content)
	files := ts.vaultFiles()
	r := ts.upload(c, "second", "rows.jsonl", content)
	body := html.UnescapeString(r.body)
	want := fmt.Sprintf("past your %s quota: %s of %s used", formatBytes(size+size/2), formatBytes(size), formatBytes(size+size/2))
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(body, want) || !strings.Contains(body, "Delete datasets you no longer need") {
		t.Fatalf("upload past the quota: %d, want %q\n%.3000s", r.status, want, body)
	}
	if ts.vaultFiles() != files {
		t.Fatal("the refused upload left a file")
	}
	// The sample datasets count too, and are refused the same way.
	r = ts.do(c, "POST", "/datasets/samples", url.Values{"format": {"chat"}}, nil)
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(r.body), "quota") {
		t.Fatalf("sample past the quota: %d\n%.2000s", r.status, r.body)
	}
}
