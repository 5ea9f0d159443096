package handlers

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"tunelab/store"
)

// consentRecords reads every proof row, oldest first.
func consentRecords(t *testing.T, ts *testServer) []store.ConsentRecord {
	t.Helper()
	var out []store.ConsentRecord
	db := openRaw(t, ts)
	rows, err := db.Query("SELECT id FROM consent_records ORDER BY created_at, rowid")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		rows.Scan(&id)
		c, err := ts.store.ConsentByID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func hasBanner(body string) bool    { return strings.Contains(body, `data-testid="consent-banner"`) }
func hasAnalytics(body string) bool { return strings.Contains(body, `data-testid="analytics-script"`) }

func choose(ts *testServer, c *http.Client, choice, from, back string, extra url.Values) response {
	ts.t.Helper()
	v := url.Values{"choice": {choice}, "from": {from}, "return": {back}}
	for k, vs := range extra {
		v[k] = vs
	}
	return ts.do(c, "POST", "/consent", v, nil)
}

// The banner is on every page until a choice; nothing is ticked, Reject all sits next to an
// identical Accept all, and without consent no analytics script is loaded.
func TestConsentBannerUntilChosen(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.client()
	for _, path := range []string{"/signin", "/signup", "/terms", "/missing"} {
		r := ts.do(c, "GET", path, nil, nil)
		if !hasBanner(r.body) || hasAnalytics(r.body) {
			t.Fatalf("%s: banner %v, analytics %v before any choice", path, hasBanner(r.body), hasAnalytics(r.body))
		}
	}
	r := ts.do(c, "GET", "/terms", nil, nil)
	banner := r.body[strings.Index(r.body, `data-testid="consent-banner"`):strings.Index(r.body, `</section>`)]
	if strings.Contains(banner, "checked") {
		t.Error("the banner ticks something in advance")
	}
	reject := regexp1(t, banner, `<button[^>]*value="reject"[^>]*>`)
	accept := regexp1(t, banner, `<button[^>]*value="accept"[^>]*>`)
	if classOf(reject) != classOf(accept) || classOf(reject) == "" {
		t.Errorf("Reject all and Accept all differ: %q vs %q", reject, accept)
	}
	if !strings.Contains(banner, "<details") || !strings.Contains(banner, "Customise") {
		t.Error("no Customise that opens the purposes")
	}
	// The cookie settings page is the full dialog: it does not repeat the banner.
	if r := ts.do(c, "GET", "/cookies/settings", nil, nil); hasBanner(r.body) || !strings.Contains(r.body, `data-testid="settings-reject"`) {
		t.Error("cookie settings: banner shown or no Reject all")
	}
	if n := len(consentRecords(t, ts)); n != 0 {
		t.Fatalf("%d consent rows before any choice", n)
	}

	r = choose(ts, c, "reject", "banner", "/terms", nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/terms" {
		t.Fatalf("reject: %d %q", r.status, r.header.Get("Location"))
	}
	if r := ts.do(c, "GET", "/privacy", nil, nil); hasBanner(r.body) || hasAnalytics(r.body) {
		t.Error("after Reject all: banner or analytics still there")
	}
	recs := consentRecords(t, ts)
	if len(recs) != 1 || recs[0].Analytics || recs[0].Source != store.ConsentFromBanner ||
		recs[0].BannerVersion != ConsentBannerVersion || recs[0].TextVersion != ConsentTextVersion {
		t.Fatalf("proof rows after reject: %+v", recs)
	}
	if r := ts.do(c, "GET", "/cookies/settings", nil, nil); !strings.Contains(r.body, "you refused them") {
		t.Error("cookie settings do not show the refusal")
	}
}

// Customise with nothing ticked saves only what is necessary; ticked, it grants analytics.
// Withdrawing from the settings page is one button and is recorded as a withdrawal.
func TestConsentCustomiseAndWithdraw(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.client()
	choose(ts, c, "save", "banner", "/terms", nil)
	if r := ts.do(c, "GET", "/terms", nil, nil); hasAnalytics(r.body) || hasBanner(r.body) {
		t.Fatal("Save with nothing ticked granted analytics or did not save")
	}
	choose(ts, c, "save", "settings", "", url.Values{"analytics": {"on"}})
	if r := ts.do(c, "GET", "/terms", nil, nil); !hasAnalytics(r.body) {
		t.Fatal("analytics ticked in settings but not loaded")
	}
	r := choose(ts, c, "reject", "settings", "", nil)
	if r.header.Get("Location") != "/cookies/settings?saved=1" {
		t.Fatalf("settings save goes to %q", r.header.Get("Location"))
	}
	if r := ts.do(c, "GET", "/cookies/settings?saved=1", nil, nil); !strings.Contains(r.body, `data-testid="consent-saved"`) {
		t.Error("no saved notice")
	}
	recs := consentRecords(t, ts)
	want := []struct {
		analytics bool
		source    string
	}{{false, store.ConsentFromBanner}, {true, store.ConsentFromSettings}, {false, store.ConsentFromWithdrawal}}
	if len(recs) != len(want) {
		t.Fatalf("%d rows, want %d", len(recs), len(want))
	}
	for i, w := range want {
		if recs[i].Analytics != w.analytics || recs[i].Source != w.source {
			t.Errorf("row %d: %+v, want %+v", i, recs[i], w)
		}
		if i > 0 && recs[i].PreviousID != recs[i-1].ID {
			t.Errorf("row %d does not point to the choice it replaced", i)
		}
	}
	if r := ts.do(c, "GET", "/terms", nil, nil); hasAnalytics(r.body) {
		t.Error("analytics still loaded after the withdrawal")
	}
}

// A choice holds about six months, then the banner asks again.
func TestConsentAskedAgainAfterSixMonths(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.client()
	choose(ts, c, "accept", "banner", "/terms", nil)
	ts.advance(180 * 24 * time.Hour)
	if r := ts.do(c, "GET", "/terms", nil, nil); hasBanner(r.body) || !hasAnalytics(r.body) {
		t.Fatal("the choice did not hold for 180 days")
	}
	ts.advance(3 * 24 * time.Hour)
	if r := ts.do(c, "GET", "/terms", nil, nil); !hasBanner(r.body) || hasAnalytics(r.body) {
		t.Fatal("after 183 days the banner is not back, or analytics still run")
	}
}

// Bad input is refused with a message that says what to send, and nothing is recorded.
func TestConsentBadChoice(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.client()
	for _, v := range []url.Values{{"choice": {"maybe"}}, {}, {"choice": {"save"}, "analytics": {"yes please"}}} {
		r := ts.do(c, "POST", "/consent", v, nil)
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, "choose") {
			t.Errorf("%v: %d", v, r.status)
		}
	}
	if n := len(consentRecords(t, ts)); n != 0 {
		t.Fatalf("%d rows from bad input", n)
	}
	// A return address on another site is not followed.
	if r := choose(ts, c, "reject", "banner", "//evil.example/x", nil); r.header.Get("Location") != "/" {
		t.Errorf("return to %q", r.header.Get("Location"))
	}
}

// Sec-GPC: 1 counts as a refusal: recorded once with source gpc, the banner says so once,
// and analytics stay off unless the person turns them on explicitly.
func TestConsentGlobalPrivacyControl(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.client()
	gpc := map[string]string{"Sec-GPC": "1"}
	r := ts.do(c, "GET", "/terms", nil, gpc)
	if !strings.Contains(r.body, `data-testid="consent-gpc"`) || strings.Contains(r.body, `value="accept"`) || hasAnalytics(r.body) {
		t.Fatal("first GPC page: no GPC notice, or a question, or analytics")
	}
	if r := ts.do(c, "GET", "/privacy", nil, gpc); hasBanner(r.body) || hasAnalytics(r.body) {
		t.Fatal("second GPC page: banner or analytics")
	}
	recs := consentRecords(t, ts)
	if len(recs) != 1 || recs[0].Source != store.ConsentFromGPC || recs[0].Analytics {
		t.Fatalf("proof rows: %+v", recs)
	}
	if r := beacon(ts, c, `{"k":"view","p":"/terms"}`, gpc); r.status != http.StatusForbidden {
		t.Fatalf("beacon with GPC: %d", r.status)
	}
	// An explicit opt-in wins over the signal.
	choose(ts, c, "accept", "settings", "", nil)
	if r := ts.do(c, "GET", "/terms", nil, gpc); !hasAnalytics(r.body) {
		t.Fatal("explicit opt-in with GPC: no analytics")
	}
	if r := beacon(ts, c, `{"k":"view","p":"/terms"}`, gpc); r.status != http.StatusNoContent {
		t.Fatalf("beacon after explicit opt-in: %d", r.status)
	}
}

// A signed-in person's choice is kept with the account and follows them to a new browser.
func TestConsentFollowsTheAccount(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("follow@example.com")
	choose(ts, c, "accept", "banner", "/", nil)
	other := ts.client()
	if r := ts.do(other, "GET", "/signin", nil, nil); !hasBanner(r.body) {
		t.Fatal("a new browser sees no banner before signing in")
	}
	if r := ts.do(other, "POST", "/signin", url.Values{"email": {"follow@example.com"}, "password": {testPassword}}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("sign in: %d", r.status)
	}
	if r := ts.do(other, "GET", "/", nil, nil); hasBanner(r.body) || !hasAnalytics(r.body) {
		t.Fatal("the account's choice did not follow to the new browser")
	}
	// The restored choice is in this browser's cookie now, so beacons are accepted.
	if r := beacon(ts, other, `{"k":"view","p":"/"}`, nil); r.status != http.StatusNoContent {
		t.Fatalf("beacon: %d", r.status)
	}
	// A choice made before signing in goes onto the account at sign-in.
	third := ts.client()
	choose(ts, third, "reject", "banner", "/signin", nil)
	ts.do(third, "POST", "/signin", url.Values{"email": {"follow@example.com"}, "password": {testPassword}}, nil)
	u, _ := ts.store.Authenticate(context.Background(), "follow@example.com", testPassword)
	rec, err := ts.store.AccountConsent(context.Background(), u.ID)
	if err != nil || rec.Analytics {
		t.Fatalf("account choice after signing in with a refusal: %+v %v", rec, err)
	}
}

// The settings page links to the cookie choice.
func TestSettingsLinksCookieSettings(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("links@example.com")
	if r := ts.do(c, "GET", "/settings", nil, nil); !strings.Contains(r.body, `data-testid="settings-cookies-link"`) {
		t.Fatal("no cookie settings on the settings page")
	}
}

// FuzzConsentCookie: whatever the consent cookie holds, a value the server did not sign is no
// choice: the banner shows and analytics stay off.
func FuzzConsentCookie(f *testing.F) {
	ts := newTestServer(f, Config{})
	c := ts.client()
	choose(ts, c, "accept", "banner", "/", nil)
	u, _ := url.Parse(ts.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "tunelab_consent" {
			f.Add(ck.Value)
			f.Add(ck.Value[:len(ck.Value)/2])
			f.Add(ck.Value + "x")
		}
	}
	f.Add("")
	f.Add("MTcwMDAwMDAwMHxhYmN8ZGVm")
	f.Add("%%%|||")
	f.Fuzz(func(t *testing.T, value string) {
		req, _ := http.NewRequest("GET", ts.URL+"/terms", nil)
		req.Header.Set("Cookie", "tunelab_consent="+value)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return // a value net/http will not send
		}
		defer resp.Body.Close()
		var b strings.Builder
		io.Copy(&b, resp.Body)
		valid := false
		for _, ck := range c.Jar.Cookies(u) {
			valid = valid || (ck.Name == "tunelab_consent" && ck.Value == value)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if !valid && (!hasBanner(b.String()) || hasAnalytics(b.String())) {
			t.Fatalf("cookie %q: banner %v, analytics %v", value, hasBanner(b.String()), hasAnalytics(b.String()))
		}
	})
}
