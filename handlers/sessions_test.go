package handlers

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var sessionRowRE = regexp.MustCompile(`data-testid="session-row" data-session-id="(\d+)"`)

// otherSessionID returns the id of the one session on c's sessions page that is not c's.
func (ts *testServer) otherSessionID(c *http.Client) string {
	ts.t.Helper()
	page := ts.do(c, "GET", "/settings/sessions", nil, nil)
	rows := strings.Split(page.body, `data-testid="session-row"`)[1:]
	var other string
	for _, row := range rows {
		if !strings.Contains(row, `data-testid="session-current"`) {
			other = regexp.MustCompile(`data-session-id="(\d+)"`).FindStringSubmatch(row)[1]
		}
	}
	if other == "" {
		ts.t.Fatalf("no other session on the page:\n%s", page.body)
	}
	return other
}

func TestRevokeSessionEndsTheOtherBrowser(t *testing.T) {
	ts, laptop, run, tok, _, _ := workerSetup(t)
	ts.post(run, "heartbeat", tok, `{"step":0,"total_steps":100}`)
	phone := ts.client()
	phoneUA := "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
	if r := ts.do(phone, "POST", "/signin", url.Values{"email": {"worker@example.com"}, "password": {testPassword}}, map[string]string{"User-Agent": phoneUA}); r.status != http.StatusSeeOther {
		t.Fatalf("phone sign in: %d", r.status)
	}
	page := ts.do(laptop, "GET", "/settings/sessions", nil, nil)
	if n := len(sessionRowRE.FindAllString(page.body, -1)); n != 2 {
		t.Fatalf("%d sessions listed, want 2\n%s", n, page.body)
	}
	if strings.Count(page.body, `data-testid="session-current"`) != 1 || !strings.Contains(page.body, "Safari on iOS") || !strings.Contains(page.body, "127.0.0.1") {
		t.Fatalf("the list lacks the current mark, the phone's device or the address:\n%s", page.body)
	}
	phoneID := ts.otherSessionID(laptop)

	// Another person cannot see or revoke it.
	mallory := ts.signUp("mallory@example.com")
	if r := ts.do(mallory, "POST", "/settings/sessions/"+phoneID+"/revoke", nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("another person's session id: %d, want 404", r.status)
	}
	if r := ts.do(mallory, "GET", "/settings/sessions", nil, nil); strings.Contains(r.body, `data-session-id="`+phoneID+`"`) {
		t.Fatal("another person's session is listed")
	}
	if r := ts.do(phone, "GET", "/runs", nil, nil); r.status != http.StatusOK {
		t.Fatalf("phone still signed in after the refused revoke: %d", r.status)
	}

	stream, closeStream := openEvents(t, ts, phone, run, "")
	defer closeStream()
	readEvents(t, stream, func(e sseEvent) bool { return e.event == "" })
	r := ts.do(laptop, "POST", "/settings/sessions/"+phoneID+"/revoke", nil, nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/settings/sessions" {
		t.Fatalf("revoke: %d %q", r.status, r.header.Get("Location"))
	}
	waitClosed(t, stream, 5*time.Second)
	if r := ts.do(phone, "GET", "/runs", nil, nil); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/signin") {
		t.Fatalf("phone after revoke: %d %q, want a redirect to /signin", r.status, r.header.Get("Location"))
	}
	page = ts.do(laptop, "GET", "/settings/sessions", nil, nil)
	if page.status != http.StatusOK || len(sessionRowRE.FindAllString(page.body, -1)) != 1 || !strings.Contains(page.body, "signed out") {
		t.Fatalf("laptop after revoking: %d\n%s", page.status, page.body)
	}
	if ts.countEvents(t, "session_revoked") != 1 {
		t.Fatal("no session_revoked event")
	}
}

func TestRevokeOtherSessions(t *testing.T) {
	ts := newTestServer(t, Config{})
	laptop := ts.signUp("ada@example.com")
	var others []*http.Client
	for range 2 {
		c := ts.client()
		if r := ts.do(c, "POST", "/signin", url.Values{"email": {"ada@example.com"}, "password": {testPassword}}, nil); r.status != http.StatusSeeOther {
			t.Fatalf("sign in: %d", r.status)
		}
		others = append(others, c)
	}
	if n := len(sessionRowRE.FindAllString(ts.do(laptop, "GET", "/settings/sessions", nil, nil).body, -1)); n != 3 {
		t.Fatalf("%d sessions, want 3", n)
	}
	if r := ts.do(laptop, "POST", "/settings/sessions/revoke-others", nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("revoke others: %d", r.status)
	}
	for i, c := range others {
		if r := ts.do(c, "GET", "/", nil, nil); r.status != http.StatusSeeOther {
			t.Errorf("other session %d still signed in: %d", i, r.status)
		}
	}
	page := ts.do(laptop, "GET", "/settings/sessions", nil, nil)
	if page.status != http.StatusOK || len(sessionRowRE.FindAllString(page.body, -1)) != 1 {
		t.Fatalf("laptop after revoking the others: %d", page.status)
	}
	// Revoking this browser's own session signs it out.
	id := sessionRowRE.FindStringSubmatch(page.body)[1]
	if r := ts.do(laptop, "POST", "/settings/sessions/"+id+"/revoke", nil, nil); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/signin") {
		t.Fatalf("revoke own session: %d %q", r.status, r.header.Get("Location"))
	}
	if r := ts.do(laptop, "GET", "/", nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("still signed in after revoking its own session: %d", r.status)
	}
}

func TestDeviceName(t *testing.T) {
	for ua, want := range map[string]string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0":                                                        "Firefox on Linux",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0": "Edge on Windows",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36":         "Chrome on macOS",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36":         "Chrome on Android",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36":                 "Chrome on Linux",
		"curl/8.5.0": "curl",
		"":           "Unknown browser",
	} {
		if got := deviceName(ua); got != want {
			t.Errorf("deviceName(%q) = %q, want %q", ua, got, want)
		}
	}
}
