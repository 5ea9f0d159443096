package main

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// beaconCounter counts the tab's requests to the analytics endpoint, as the network sees them.
type beaconCounter struct{ n atomic.Int64 }

func countBeacons(t *testing.T, b *browser) *beaconCounter {
	t.Helper()
	c := &beaconCounter{}
	if err := chromedp.Listen(b.ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && strings.Contains(e.Request.URL, "/analytics/event") {
			c.n.Add(1)
		}
	}); err != nil {
		t.Fatalf("listen for beacons: %v", err)
	}
	return c
}

// settle gives a page time to send what it would send: a scroll to the bottom and back, an
// Escape, then leaving the page (which sends the scroll-depth beacon when analytics run).
func (b *browser) browseAround() {
	b.t.Helper()
	eval[bool](b, `(window.scrollTo(0, document.body.scrollHeight), true)`)
	b.do("press Escape", chromedp.KeyEvent("\x1b"))
	eval[bool](b, `(window.scrollTo(0, 0), true)`)
}

// analyticsRows reads the analytics rows the server stored.
func analyticsRows(t *testing.T, dataDir string) map[string]int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dataDir, "tunelab.db")+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT kind, COUNT(*) FROM analytics_events GROUP BY kind")
	if err != nil {
		t.Fatalf("read analytics rows: %v", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		rows.Scan(&k, &n)
		out[k] = n
	}
	return out
}

// tabTo presses Tab until the focused element matches sel, at most limit times.
func (b *browser) tabTo(sel string, limit int) {
	b.t.Helper()
	for range limit {
		b.do("press Tab", chromedp.KeyEvent("\t"))
		if eval[bool](b, `document.activeElement && document.activeElement.matches(`+jsString(sel)+`)`) {
			return
		}
	}
	b.t.Fatalf("%s not reached with %d presses of Tab (focus on %s)", sel, limit,
		eval[string](b, `document.activeElement ? document.activeElement.outerHTML.slice(0, 120) : "nothing"`))
}

func jsString(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

func pressEnter(b *browser) { b.do("press Enter", chromedp.KeyEvent("\r")) }

// TestBrowserConsent: no analytics request before a choice, after Reject all (made with the
// keyboard only) or with Global Privacy Control; requests after Accept all; the banner is
// back after a version bump; desktop and phone screenshots of the banner and the pages.
func TestBrowserConsent(t *testing.T) {
	findChromium(t)
	dataDir := t.TempDir()
	env := map[string]string{"TUNELAB_CONSENT_VERSION": "2026-11-29"}
	addr, stop := startServerWith(t, env, dataDir)
	base := "http://" + addr
	b := newBrowser(t, base)
	b.desktop()
	beacons := countBeacons(t, b)

	// First visit: the banner, nothing ticked, and no analytics whatever the visitor does.
	b.open("/signin", http.StatusOK)
	b.waitFor("the banner", has(`[data-testid=consent-banner]`))
	if eval[bool](b, `document.querySelector("[data-testid=banner-analytics]").checked`) {
		t.Error("analytics is ticked before any choice")
	}
	reject := eval[string](b, `(() => { const s = getComputedStyle(document.querySelector("[data-testid=consent-reject]")); const r = document.querySelector("[data-testid=consent-reject]").getBoundingClientRect(); return [r.width|0, r.height|0, s.fontSize, s.fontWeight, s.color, s.backgroundColor].join(" "); })()`)
	accept := eval[string](b, `(() => { const s = getComputedStyle(document.querySelector("[data-testid=consent-accept]")); const r = document.querySelector("[data-testid=consent-accept]").getBoundingClientRect(); return [r.width|0, r.height|0, s.fontSize, s.fontWeight, s.color, s.backgroundColor].join(" "); })()`)
	if reject != accept {
		t.Errorf("Reject all (%s) and Accept all (%s) differ in size, font or colour", reject, accept)
	}
	b.checkClean("banner")
	b.screenshot("consent-01-banner-desktop")
	b.do("open Customise", chromedp.Click(chromedp.CSS(`[data-testid=consent-customise] summary`), chromedp.NodeVisible))
	b.waitFor("the purposes", `document.querySelector("[data-testid=consent-customise]").open`)
	b.screenshot("consent-02-customise")
	b.browseAround()
	b.open("/terms", http.StatusOK)
	b.browseAround()
	if !b.visible(`[data-testid=consent-banner]`) {
		t.Error("scrolling or Escape made the banner go away")
	}
	b.phoneFits("sign-in page with the banner")
	b.open("/signin", http.StatusOK)
	b.screenshot("consent-03-banner-phone")
	b.desktop()
	if n := eval[int](b, `localStorage.length + sessionStorage.length`); n != 0 {
		t.Errorf("%d storage items before consent", n)
	}

	// Keyboard only: Tab to Reject all, Enter. The banner goes, and still nothing is sent.
	b.open("/terms", http.StatusOK)
	b.tabTo(`[data-testid=consent-reject]`, 8)
	pressEnter(b)
	b.waitFor("the page without the banner", pathIs("/terms")+" && !("+has(`[data-testid=consent-banner]`)+")"+` && document.readyState === "complete"`)
	b.open("/privacy", http.StatusOK)
	b.browseAround()
	b.open("/cookies/settings", http.StatusOK)
	if got := b.text(`[data-testid=consent-state]`); !strings.Contains(got, "refused") {
		t.Errorf("cookie settings after Reject all say %q", got)
	}
	if n := beacons.n.Load(); n != 0 {
		t.Fatalf("%d analytics requests before consent or after Reject all", n)
	}

	// Accept all from the footer's Cookie settings: now page views, clicks and scroll depth go.
	b.open("/terms", http.StatusOK)
	b.do("footer cookie settings", chromedp.Click(chromedp.CSS(`footer a[href="/cookies/settings"]`), chromedp.NodeVisible))
	b.waitFor("cookie settings", pathIs("/cookies/settings"))
	b.screenshot("consent-04-settings")
	b.do("accept", chromedp.Click(chromedp.CSS(`[data-testid=settings-accept]`), chromedp.NodeVisible))
	b.waitFor("saved", has(`[data-testid=consent-saved]`)+` && `+has(`[data-testid=analytics-script]`))
	b.open("/signup", http.StatusOK)
	b.waitFor("the sign-up form and htmx", has(`[data-testid=signup-form]`)+" && "+htmxReady)
	b.do("sign up",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signup-form] input[name=email]`), "counted@example.com", chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signup-form] input[name=password]`), "correct horse battery staple", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signup-form] input[name=accept_terms]`), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signup-form] button[type=submit]`), chromedp.NodeVisible),
	)
	b.waitFor("the dashboard", pathIs("/")+" && "+has(`[data-testid=dashboard]`))
	b.do("a marked click", chromedp.Click(chromedp.CSS(`[data-testid=nav-runs]`), chromedp.NodeVisible))
	b.waitFor("the runs page", pathIs("/runs"))
	b.open("/settings", http.StatusOK) // leaving /runs sends its scroll depth
	b.checkClean("pages with analytics")
	// Beacons are sent in the background: wait (10 s at most) until the server has them.
	var rows map[string]int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if rows = analyticsRows(t, dataDir); rows["view"] >= 3 && rows["click"] >= 1 && rows["scroll"] >= 1 {
			break
		}
	}
	if rows["view"] < 3 || rows["click"] < 1 || rows["scroll"] < 1 || beacons.n.Load() < 5 {
		t.Fatalf("after Accept all: %d analytics requests, stored %v", beacons.n.Load(), rows)
	}

	// A new banner version asks again: restart with another version, and nothing is sent
	// until the new choice, although the account had accepted the old one.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	env["TUNELAB_CONSENT_VERSION"] = "2026-12-01"
	startServerAt(t, env, dataDir, addr)
	before := beacons.n.Load()
	b.open("/terms", http.StatusOK)
	b.waitFor("the banner again", has(`[data-testid=consent-banner]`))
	b.browseAround()
	b.open("/privacy", http.StatusOK)
	if n := beacons.n.Load() - before; n != 0 {
		t.Fatalf("%d analytics requests after the version bump, before a new choice", n)
	}

	// The admin analytics page draws the views per day with uPlot, CSP-clean.
	if err := runAdmin(context.Background(), []string{"create-user", "--email", "root@example.com", "--password-stdin", "--admin", "--data", dataDir},
		envMap(nil), strings.NewReader("correct horse battery staple\n"), io.Discard); err != nil {
		t.Fatal(err)
	}
	admin := newBrowser(t, base)
	admin.desktop()
	admin.open("/signin", http.StatusOK)
	admin.do("reject", chromedp.Click(chromedp.CSS(`[data-testid=consent-reject]`), chromedp.NodeVisible))
	admin.waitFor("the sign-in form", has(`[data-testid=signin-form]`)+" && !("+has(`[data-testid=consent-banner]`)+")"+" && "+htmxReady)
	admin.do("sign in",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signin-form] input[name=email]`), "root@example.com", chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signin-form] input[name=password]`), "correct horse battery staple", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signin-form] button[type=submit]`), chromedp.NodeVisible),
	)
	admin.waitFor("the dashboard", pathIs("/"))
	admin.open("/admin/analytics", http.StatusOK)
	admin.waitFor("the chart", has(`[data-testid=views-chart] canvas`))
	admin.checkClean("admin analytics")
	admin.screenshot("consent-05-admin-analytics")
	admin.open("/admin/security", http.StatusOK)
	admin.checkClean("security review")
	admin.screenshot("consent-06-admin-security")
	admin.phoneFits("security review")
	admin.screenshot("consent-07-admin-security-phone")
}

// With Sec-GPC: 1 the banner only says analytics are off; nothing is asked and nothing sent.
func TestBrowserConsentGPC(t *testing.T) {
	findChromium(t)
	base := startServer(t)
	b := newBrowser(t, base)
	b.desktop()
	beacons := countBeacons(t, b)
	if _, err := chromedp.Call(b.ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Sec-GPC": "1"}}); err != nil {
		t.Fatal(err)
	}
	b.open("/terms", http.StatusOK)
	b.waitFor("the GPC notice", has(`[data-testid=consent-gpc]`))
	if eval[bool](b, has(`[data-testid=consent-accept]`)) {
		t.Error("the GPC visitor is asked anyway")
	}
	b.checkClean("GPC notice")
	b.screenshot("consent-08-gpc")
	b.browseAround()
	b.open("/privacy", http.StatusOK)
	if b.visible(`[data-testid=consent-banner]`) {
		t.Error("the GPC notice shows on every page")
	}
	b.browseAround()
	b.open("/cookies/settings", http.StatusOK)
	if !strings.Contains(b.text(`[data-testid=consent-state]`), "Global Privacy Control") {
		t.Error("cookie settings do not say GPC refused analytics")
	}
	if n := beacons.n.Load(); n != 0 {
		t.Fatalf("%d analytics requests with GPC", n)
	}
	for _, p := range []string{"cookies", "privacy"} {
		b.open("/"+p, http.StatusOK)
		b.checkClean(p)
		b.screenshot("consent-09-" + p)
	}
}
