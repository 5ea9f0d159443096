package handlers

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"tunelab/store"
)

func TestItemAccessDeletesAndExportsAreSecurityEvents(t *testing.T) {
	ts := newTestServer(t, Config{})
	alice := ts.signUp("alice@example.com")
	bob := ts.signUp("bob@example.com")
	ds := ts.datasetFor(alice, completionLines(20))
	run := ts.startRun(alice, runValues(ds))

	// Bob asks for Alice's dataset by id: a 404, and a denial on record.
	for _, req := range []struct{ method, path string }{{"GET", "/datasets/" + ds}, {"POST", "/datasets/" + ds + "/delete"}} {
		if r := ts.do(bob, req.method, req.path, url.Values{}, nil); r.status != http.StatusNotFound {
			t.Fatalf("%s %s as another person: %d", req.method, req.path, r.status)
		}
	}
	// A dataset that does not exist is a 404 too, but nobody's item was asked for.
	ts.do(bob, "GET", "/datasets/99999", nil, nil)
	for _, f := range []string{"csv", "jsonl"} {
		if r := ts.do(alice, "GET", fmt.Sprintf("/runs/%d/metrics.%s", run, f), nil, nil); r.status != http.StatusOK {
			t.Fatalf("export %s: %d", f, r.status)
		}
	}
	if r := ts.do(alice, "POST", fmt.Sprintf("/runs/%d/delete", run), url.Values{}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("delete run: %d", r.status)
	}
	if r := ts.do(alice, "POST", "/datasets/"+ds+"/delete", url.Values{}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("delete dataset: %d", r.status)
	}

	events, err := ts.store.RecentSecurityEvents(context.Background(), 20)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(events) - 1; i >= 0; i-- {
		if e := events[i]; e.Kind != store.EventSignUp {
			got = append(got, fmt.Sprintf("%s %s", e.Kind, e.Email))
		}
	}
	want := []string{
		"authz_denied dataset " + ds, "authz_denied dataset " + ds,
		fmt.Sprintf("metrics_exported run %d, csv", run), fmt.Sprintf("metrics_exported run %d, jsonl", run),
		fmt.Sprintf("run_deleted run %d", run), "dataset_deleted dataset " + ds,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

var eventKindCell = regexp.MustCompile(`(?s)data-testid="event-kind"[^>]*>(.*?)</td>`)
var tags = regexp.MustCompile(`<[^>]*>`)

func TestAdminNamesEveryEventKindInWords(t *testing.T) {
	ts := newTestServer(t, Config{})
	for _, kind := range store.EventKinds {
		if err := ts.store.RecordSecurityEvent(context.Background(), store.SecurityEvent{Kind: kind, Email: "x@example.com", IP: "192.0.2.1"}); err != nil {
			t.Fatal(err)
		}
	}
	admin := ts.admin("boss@example.com")
	r := ts.do(admin, "GET", "/admin", nil, nil)
	cells := eventKindCell.FindAllStringSubmatch(r.body, -1)
	if len(cells) < len(store.EventKinds) {
		t.Fatalf("%d event rows, want at least %d", len(cells), len(store.EventKinds))
	}
	shown := map[string]bool{}
	for _, c := range cells {
		label := html.UnescapeString(strings.TrimSpace(tags.ReplaceAllString(c[1], "")))
		if label == "" || slices.Contains(store.EventKinds, label) || strings.Contains(label, "_") {
			t.Errorf("event kind shown as %q", label)
		}
		shown[label] = true
	}
	for _, kind := range store.EventKinds {
		if l := eventKinds[kind]; l == "" || !shown[l] {
			t.Errorf("kind %s has no label shown (label %q)", kind, l)
		}
	}
}
