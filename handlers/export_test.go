package handlers

import (
	"archive/zip"
	"bytes"
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"tunelab/store"
)

var exportLinkRE = regexp.MustCompile(`/settings/export/download/([0-9a-f]{64})`)

// exportMailLink waits (polling, no timing asserted) for the "export ready" mail to to, which
// the build queues just after it marks the export ready, and returns its download link.
func (ts *testServer) exportMailLink(to string) string {
	ts.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		mails, err := ts.store.RecentMail(context.Background(), 10)
		if err != nil {
			ts.t.Fatal(err)
		}
		for _, m := range mails {
			if m.To == to && m.Kind == mailExportReady {
				if link := exportLinkRE.FindString(m.Text); link != "" {
					return link
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	ts.t.Fatalf("no export mail with a link to %s", to)
	return ""
}

// waitExport waits (polling, no timing asserted) until c's newest export leaves building.
func (ts *testServer) waitExport(userID int64) store.Export {
	ts.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		x, ok, err := ts.store.LatestExport(context.Background(), userID)
		if err != nil {
			ts.t.Fatal(err)
		}
		if ok && x.State != store.ExportQueued && x.State != store.ExportBuilding {
			return x
		}
		time.Sleep(20 * time.Millisecond)
	}
	ts.t.Fatal("the export was never built")
	return store.Export{}
}

// TestExportFromSettings: the password is needed; the export is built in the background
// and mailed as a link; the link downloads a ZIP once, only for its owner (404 for anyone
// else); a second export the same day is refused.
func TestExportFromSettings(t *testing.T) {
	ts := newTestServer(t, Config{})
	ada := ts.signUp("ada@example.com")
	bob := ts.signUp("bob@example.com")
	ts.datasetFor(ada, completionLines(20))
	u, _ := ts.store.Authenticate(context.Background(), "ada@example.com", testPassword)

	page := ts.do(ada, "GET", "/settings/export", nil, nil)
	if !strings.Contains(page.body, `data-testid="export-form"`) {
		t.Fatalf("export page:\n%s", page.body)
	}
	if r := ts.do(ada, "POST", "/settings/export", url.Values{"password": {"wrong password!"}}, nil); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `data-testid="password-error"`) {
		t.Fatalf("export with a wrong password: %d", r.status)
	}
	if _, ok, _ := ts.store.LatestExport(context.Background(), u.ID); ok {
		t.Fatal("a wrong password queued an export")
	}
	if r := ts.do(ada, "POST", "/settings/export", url.Values{"password": {testPassword}}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("export: %d\n%s", r.status, r.body)
	}
	if x := ts.waitExport(u.ID); x.State != store.ExportReady {
		t.Fatalf("export ended %s", x.State)
	}
	if r := ts.do(ada, "GET", "/settings/export", nil, nil); !strings.Contains(r.body, "Ready") || !strings.Contains(r.body, `data-testid="export-next"`) {
		t.Fatalf("page after the build:\n%s", r.body)
	}
	if r := ts.do(ada, "POST", "/settings/export", url.Values{"password": {testPassword}}, nil); r.status != http.StatusTooManyRequests || !strings.Contains(r.body, "One export a day") {
		t.Fatalf("second export the same day: %d", r.status)
	}
	link := ts.exportMailLink("ada@example.com")
	if r := ts.do(ts.client(), "GET", link, nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("signed out: %d, want the sign-in redirect", r.status)
	}
	// Opening the link spends nothing (a mail scanner or a link preview may open it): it
	// shows the download button, as often as it is opened.
	for range 2 {
		if page := ts.do(ada, "GET", link, nil, nil); page.status != http.StatusOK ||
			!strings.Contains(page.body, `data-testid="export-download-form"`) || !strings.Contains(page.body, `method="post"`) {
			t.Fatalf("the link's page: %d\n%s", page.status, page.body)
		}
	}
	if r := ts.do(bob, "GET", link, nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("another person opens the link: %d, want 404", r.status)
	}
	if r := ts.do(bob, "POST", link, url.Values{}, nil); r.status != http.StatusNotFound {
		t.Fatalf("another person posts the link: %d, want 404", r.status)
	}
	r := ts.do(ada, "POST", link, url.Values{}, nil)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/zip" {
		t.Fatalf("download: %d %q", r.status, r.header.Get("Content-Type"))
	}
	zr, err := zip.NewReader(bytes.NewReader([]byte(r.body)), int64(len(r.body)))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range zr.File {
		names[f.Name] = true
	}
	for _, want := range []string{"manifest.json", "account.json", "runs.json", "datasets.json", "billing.json", "api_keys.json", "security_events.json"} {
		if !names[want] {
			t.Errorf("the ZIP lacks %s: %v", want, names)
		}
	}
	if r := ts.do(ada, "POST", link, url.Values{}, nil); r.status != http.StatusNotFound {
		t.Fatalf("second download: %d, want 404 (single use)", r.status)
	}
	if r := ts.do(ada, "GET", link, nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("the spent link's page: %d, want 404", r.status)
	}
	x, _, _ := ts.store.LatestExport(context.Background(), u.ID)
	if r := ts.do(bob, "GET", "/settings/export/"+strconv.FormatInt(x.ID, 10)+"/snapshots/1", nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("another person's export snapshot link: %d, want 404", r.status)
	}
	if a := ts.do(ada, "GET", "/settings/activity", nil, nil); !strings.Contains(a.body, "Data export asked for") || !strings.Contains(a.body, "Data export downloaded") {
		t.Fatalf("activity log lacks the export:\n%s", a.body)
	}
}

// TestExportCarriesInvoicesWithBillingOn: with Stripe (stripe-mock) the ZIP has
// invoices.json with each invoice's hosted page.
func TestExportCarriesInvoicesWithBillingOn(t *testing.T) {
	ts := newBillingServer(t)
	c := ts.signUp("payer@example.com")
	u, _ := ts.store.Authenticate(context.Background(), "payer@example.com", testPassword)
	if _, err := ts.store.SetStripeCustomer(context.Background(), u.ID, "cus_export"); err != nil {
		t.Fatal(err)
	}
	if r := ts.do(c, "POST", "/settings/export", url.Values{"password": {testPassword}}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("export: %d", r.status)
	}
	x := ts.waitExport(u.ID)
	if x.State != store.ExportReady {
		t.Fatalf("export ended %s", x.State)
	}
	link := ts.exportMailLink("payer@example.com")
	r := ts.do(c, "POST", link, url.Values{}, nil)
	zr, err := zip.NewReader(bytes.NewReader([]byte(r.body)), int64(len(r.body)))
	if err != nil {
		t.Fatalf("download %d: %v", r.status, err)
	}
	for _, f := range zr.File {
		if f.Name == "invoices.json" {
			rc, _ := f.Open()
			b := new(bytes.Buffer)
			b.ReadFrom(rc)
			rc.Close()
			if !strings.Contains(b.String(), "hosted_invoice_url") {
				t.Fatalf("invoices.json: %s", b.String())
			}
			return
		}
	}
	t.Fatal("no invoices.json with billing on")
}
