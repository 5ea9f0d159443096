package handlers

import (
	"html"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"
)

var sessionWordsRE = regexp.MustCompile(`Ends after (\d+) (hours?|days?) without activity, and after (\d+) (hours?|days?) at most`)

// words reads "1 hour", "24 hours" or "3 days" back as a duration.
func wordsDuration(t *testing.T, n, unit string) time.Duration {
	t.Helper()
	v, err := strconv.Atoi(n)
	if err != nil {
		t.Fatal(err)
	}
	if unit[:3] == "day" {
		return time.Duration(v) * 24 * time.Hour
	}
	return time.Duration(v) * time.Hour
}

// TestCookiePolicySessionDurationsAreTheEnforcedOnes: the cookie policy's session
// timeouts are the ones the session manager enforces (sessionIdle, sessionLifetime), not
// words written beside them that could drift.
func TestCookiePolicySessionDurationsAreTheEnforcedOnes(t *testing.T) {
	ts := newTestServer(t, Config{})
	r := ts.do(ts.client(), "GET", "/cookies", nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /cookies: %d", r.status)
	}
	m := sessionWordsRE.FindStringSubmatch(html.UnescapeString(r.body))
	if m == nil {
		t.Fatalf("the cookie policy does not state the session timeouts:\n%s", r.body)
	}
	if idle := wordsDuration(t, m[1], m[2]); idle != sessionIdle {
		t.Errorf("the cookie policy says idle %s, sessions end after %s", idle, sessionIdle)
	}
	if most := wordsDuration(t, m[3], m[4]); most != sessionLifetime {
		t.Errorf("the cookie policy says at most %s, sessions last %s", most, sessionLifetime)
	}
	// The words follow the constants: any other durations read back the same.
	for _, d := range []time.Duration{time.Hour, 2 * time.Hour, 24 * time.Hour, 12 * time.Hour, 7 * 24 * time.Hour} {
		m := regexp.MustCompile(`^(\d+) (hours?|days?)$`).FindStringSubmatch(formatRetention(d))
		if m == nil || wordsDuration(t, m[1], m[2]) != d {
			t.Errorf("formatRetention(%s) = %q", d, formatRetention(d))
		}
	}
}
