package handlers

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"tunelab/geoip"
	"tunelab/geoip/geoiptest"
	"tunelab/gpu"
	"tunelab/store"
	"tunelab/store/storetest"
)

// testNetworks map documentation ranges (RFC 5737) to test countries.
var testNetworks = map[string]string{"192.0.2.0/24": "DE", "198.51.100.0/24": "JP", "203.0.113.0/24": "BR"}

// newGeoTestServer is newTestServer with a country database built for the test, the client
// address taken from X-Forwarded-For (TrustProxy), and the database file's path kept.
func newGeoTestServer(t *testing.T) (*testServer, string) {
	t.Helper()
	dir := t.TempDir()
	mmdb := filepath.Join(dir, "country.mmdb")
	if err := geoiptest.WriteTestDB(mmdb, geoiptest.NPMLayout, testNetworks); err != nil {
		t.Fatal(err)
	}
	geo, ok, err := geoip.Open(mmdb)
	if err != nil || !ok {
		t.Fatalf("open test mmdb: %v", err)
	}
	t.Cleanup(func() { geo.Close() })
	ts := &testServer{t: t, now: time.Now(), logs: &lockedBuffer{}}
	st, vault := storetest.OpenDir(t, dir, store.Options{Argon2: testArgon2, Now: ts.clock})
	ts.store, ts.vaultDir, ts.hub = st, filepath.Join(dir, storetest.VaultDir), gpu.NewHub()
	runs := Runs{Backend: fakeBackend{}, Hub: ts.hub, Wake: func() { ts.wakes.Add(1) }, HeartbeatInterval: 5 * time.Second, MaxSnapshotBytes: 1 << 20}
	h := New(Deps{Store: st, SessionStore: st.Sessions(), Vault: vault, Logger: slog.New(slog.NewTextHandler(ts.logs, nil)),
		Config: Config{TrustProxy: true}, Runs: runs, Now: ts.clock, Sleep: ts.sleep, GeoIP: geo})
	ts.Server = httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts, filepath.Join(dir, storetest.DBFile)
}

// openRaw opens the test server's SQLite file read-only, to look at rows as stored.
func openRaw(t *testing.T, ts *testServer) *sql.DB {
	t.Helper()
	path := filepath.Join(filepath.Dir(ts.vaultDir), storetest.DBFile)
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func beacon(ts *testServer, c *http.Client, body string, headers map[string]string) response {
	ts.t.Helper()
	req, _ := http.NewRequest("POST", ts.URL+"/analytics/event", strings.NewReader(body))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	resp.Body.Close()
	return response{status: resp.StatusCode, header: resp.Header}
}

func regexp1(t *testing.T, s, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindString(s)
	if m == "" {
		t.Fatalf("no %s in\n%s", re, s)
	}
	return m
}

func classOf(tag string) string {
	m := regexp.MustCompile(`class="([^"]*)"`).FindStringSubmatch(tag)
	if m == nil {
		return ""
	}
	return m[1]
}

// The server refuses beacons without consent: no cookie, a refusal, a forged cookie.
func TestAnalyticsRefusedWithoutConsent(t *testing.T) {
	ts, _ := newGeoTestServer(t)
	anon := ts.client()
	if r := beacon(ts, anon, `{"k":"view","p":"/"}`, nil); r.status != http.StatusForbidden {
		t.Fatalf("no cookie: %d", r.status)
	}
	rejected := ts.client()
	choose(ts, rejected, "reject", "banner", "/", nil)
	if r := beacon(ts, rejected, `{"k":"view","p":"/"}`, nil); r.status != http.StatusForbidden {
		t.Fatalf("after Reject all: %d", r.status)
	}
	forged := ts.client()
	req, _ := http.NewRequest("POST", ts.URL+"/analytics/event", strings.NewReader(`{"k":"view","p":"/"}`))
	req.AddCookie(&http.Cookie{Name: "tunelab_consent", Value: "MTcwMDAwMDAwMHxhYmN8ZGVm"})
	if resp, err := forged.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("forged cookie: %v %v", resp.StatusCode, err)
	}
	var n int
	openRaw(t, ts).QueryRow("SELECT COUNT(*) FROM analytics_events").Scan(&n)
	if n != 0 {
		t.Fatalf("%d analytics rows without consent", n)
	}
}

// With consent, each kind of event is stored with its country and device; bad events get a
// message that says what to send. No column of any row holds the IP address.
func TestAnalyticsRecordsWithoutIP(t *testing.T) {
	ts, _ := newGeoTestServer(t)
	c := ts.client()
	choose(ts, c, "accept", "banner", "/", nil)
	const ip = "192.0.2.77"
	h := map[string]string{"X-Forwarded-For": ip, "User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148"}
	for _, body := range []string{
		`{"k":"view","p":"/runs/42","r":"https://news.example.org/item?id=1"}`,
		`{"k":"view","p":"/runs","r":"` + ts.URL + `/"}`,
		`{"k":"click","p":"/runs","t":"nav-runs"}`,
		`{"k":"scroll","p":"/runs","d":80}`,
	} {
		if r := beacon(ts, c, body, h); r.status != http.StatusNoContent {
			t.Fatalf("%s: %d", body, r.status)
		}
	}
	for _, bad := range []string{`not json`, `{"k":"buy","p":"/"}`, `{"k":"view","p":"https://x.example/"}`,
		`{"k":"click","p":"/","t":"<script>"}`, `{"k":"scroll","p":"/","d":400}`} {
		if r := beacon(ts, c, bad, h); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, r.status)
		}
	}
	db := openRaw(t, ts)
	rows, err := db.Query("SELECT * FROM analytics_events ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var got []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		rows.Scan(ptrs...)
		line := fmt.Sprint(vals...)
		for i, v := range vals {
			if s := fmt.Sprint(v); strings.Contains(s, ip) || strings.Contains(s, "192.0.2") {
				t.Errorf("column %s holds the IP: %q", cols[i], s)
			}
		}
		got = append(got, line)
	}
	if len(got) != 4 {
		t.Fatalf("%d rows, want 4: %v", len(got), got)
	}
	rep, err := ts.store.Analytics(context.Background(), 30)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]store.Count{
		"pages":     {{Key: "/runs", Count: 1}, {Key: "/runs/:id", Count: 1}},
		"referrers": {{Key: "news.example.org", Count: 1}},
		"devices":   {{Key: "phone", Count: 2}},
		"countries": {{Key: "DE", Count: 2}},
		"clicks":    {{Key: "nav-runs", Count: 1}},
		"scroll":    {{Key: "75", Count: 1}},
	}
	for name, have := range map[string][]store.Count{"pages": rep.Pages, "referrers": rep.Referrers, "devices": rep.Devices,
		"countries": rep.Countries, "clicks": rep.Clicks, "scroll": rep.Scroll} {
		if fmt.Sprint(have) != fmt.Sprint(want[name]) {
			t.Errorf("%s: %v, want %v", name, have, want[name])
		}
	}
	if last := rep.Views[len(rep.Views)-1]; last.Count != 2 || rep.Visitors[len(rep.Visitors)-1].Count != 1 {
		t.Errorf("today: %d views, %d visitors; want 2 and 1", last.Count, rep.Visitors[len(rep.Visitors)-1].Count)
	}
	// A flood from one address is cut off; another address is not affected.
	flood := map[string]string{"X-Forwarded-For": "203.0.113.50"}
	for i := range beaconsPerMinute {
		if r := beacon(ts, c, `{"k":"click","p":"/","t":"x"}`, flood); r.status != http.StatusNoContent {
			t.Fatalf("beacon %d: %d", i, r.status)
		}
	}
	if r := beacon(ts, c, `{"k":"click","p":"/","t":"x"}`, flood); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("beacon past the limit: %d", r.status)
	}
	if r := beacon(ts, c, `{"k":"click","p":"/","t":"x"}`, h); r.status != http.StatusNoContent {
		t.Fatalf("another address after the flood: %d", r.status)
	}
}

// The visitor id changes with the day's salt: the same browser is a new visitor tomorrow.
func TestVisitorSaltRotatesDaily(t *testing.T) {
	var v visitorSalt
	day := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	a, b := v.visitor(day, "ua", "192.0.2.1"), v.visitor(day.Add(time.Hour), "ua", "192.0.2.1")
	if a != b || strings.Contains(a, "192.0.2.1") {
		t.Fatalf("same day: %q vs %q", a, b)
	}
	if c := v.visitor(day.Add(24*time.Hour), "ua", "192.0.2.1"); c == a {
		t.Fatal("the visitor id did not change with the day")
	}
	if v.visitor(day.Add(24*time.Hour), "ua", "192.0.2.2") == v.visitor(day.Add(24*time.Hour), "ua", "192.0.2.1") {
		t.Fatal("two addresses gave one visitor")
	}
}

// The admin pages answer 404 to everyone but admins; admins get the analytics page.
func TestAdminReviewPagesAreAdminOnly(t *testing.T) {
	ts := newTestServer(t, Config{})
	member := ts.signUp("member@example.com")
	for _, c := range []*http.Client{ts.client(), member} {
		for _, req := range []struct{ method, path string }{
			{"GET", "/admin/analytics"}, {"GET", "/admin/security"}, {"POST", "/admin/accounts/1/suspend"}, {"POST", "/admin/accounts/1/unsuspend"},
		} {
			r := ts.do(c, req.method, req.path, nil, nil)
			if c == member && r.status != http.StatusNotFound {
				t.Errorf("member %s %s: %d, want 404", req.method, req.path, r.status)
			}
			if c != member && r.status != http.StatusNotFound && r.status != http.StatusSeeOther {
				t.Errorf("anonymous %s %s: %d", req.method, req.path, r.status)
			}
		}
	}
	admin := ts.admin("root@example.com")
	r := ts.do(admin, "GET", "/admin/analytics", nil, nil)
	if r.status != 200 || !strings.Contains(r.body, `data-analytics-chart="{`) || !strings.Contains(r.body, `data-testid="geoip-missing"`) {
		t.Fatalf("admin analytics: %d", r.status)
	}
}

// Raw analytics older than 90 days become daily counts; the report still shows them.
func TestAnalyticsPurgeKeepsDailyCounts(t *testing.T) {
	ts, _ := newGeoTestServer(t)
	c := ts.client()
	choose(ts, c, "accept", "banner", "/", nil)
	for range 3 {
		beacon(ts, c, `{"k":"view","p":"/terms"}`, map[string]string{"X-Forwarded-For": "198.51.100.9"})
	}
	before, _ := ts.store.Analytics(context.Background(), 120)
	ts.advance(91 * 24 * time.Hour)
	n, err := ts.store.PurgeAnalytics(context.Background())
	if err != nil || n != 3 {
		t.Fatalf("purge: %d rows, %v", n, err)
	}
	var left int
	openRaw(t, ts).QueryRow("SELECT COUNT(*) FROM analytics_events").Scan(&left)
	if left != 0 {
		t.Fatalf("%d raw rows left after 91 days", left)
	}
	after, _ := ts.store.Analytics(context.Background(), 120)
	if fmt.Sprint(after.Pages) != fmt.Sprint(before.Pages) || fmt.Sprint(after.Countries) != "[{JP 3}]" {
		t.Fatalf("daily counts: pages %v (before %v), countries %v", after.Pages, before.Pages, after.Countries)
	}
	if n, _ := ts.store.PurgeAnalytics(context.Background()); n != 0 {
		t.Fatal("a second purge found rows")
	}
	if again, _ := ts.store.Analytics(context.Background(), 120); fmt.Sprint(again.Pages) != fmt.Sprint(before.Pages) {
		t.Fatal("a second purge changed the counts")
	}
}
