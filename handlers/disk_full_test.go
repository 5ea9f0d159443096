package handlers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// SECURITY scenario 19: on a full disk (played by bounding the database file), writes fail
// closed with 503 and Retry-After, nothing of them is kept, and the same requests work once
// space is freed.
func TestDiskFullFailsClosedAndRecovers(t *testing.T) {
	ts, c, run, tok, _, _ := workerSetup(t)
	ts.post(run, "heartbeat", tok, `{"step":0,"total_steps":100}`)
	ctx := context.Background()
	pages, err := ts.store.PageCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.store.SetMaxPages(ctx, pages); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(`{"points":[`)
	for i := range 3000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":"m%d","step":%d,"value":%d.5}`, i%10, i/10, i)
	}
	b.WriteString(`]}`)
	batch := b.String()
	notes := url.Values{"name": {"full disk"}, "notes": {strings.Repeat("a long note about the run ", 380)}}

	r := ts.post(run, "metrics", tok, batch)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, `"disk_full"`) {
		t.Fatalf("metrics on a full disk: %d %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if pts, err := ts.store.MetricsAfter(ctx, run, 0, 10); err != nil || len(pts) != 0 {
		t.Fatalf("a refused batch left %d points (%v)", len(pts), err)
	}
	page := ts.do(c, "POST", fmt.Sprintf("/runs/%d/edit", run), notes, nil)
	if page.status != http.StatusServiceUnavailable || !strings.Contains(page.body, "disk is full") {
		t.Fatalf("a page's write on a full disk: %d\n%s", page.status, page.body)
	}
	if got, _ := ts.store.RunByID(ctx, run); got.Notes != "" {
		t.Fatalf("the refused edit was kept: %q", got.Notes)
	}

	// Space is freed: the same requests go through.
	if err := ts.store.SetMaxPages(ctx, 1<<30); err != nil {
		t.Fatal(err)
	}
	if r := ts.post(run, "metrics", tok, batch); r.status != http.StatusOK {
		t.Fatalf("metrics after space was freed: %d %s", r.status, r.body)
	}
	if pts, _ := ts.store.MetricsAfter(ctx, run, 0, 5000); len(pts) != 3000 {
		t.Fatalf("%d points stored after recovery, want 3000", len(pts))
	}
	if page := ts.do(c, "POST", fmt.Sprintf("/runs/%d/edit", run), notes, nil); page.status >= 400 {
		t.Fatalf("edit after space was freed: %d", page.status)
	}
	if got, _ := ts.store.RunByID(ctx, run); got.Notes == "" {
		t.Fatal("the edit after recovery was not kept")
	}
}
