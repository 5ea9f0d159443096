package handlers

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestLogsHoldNoSecrets(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("logs@example.com")
	token := sessionCookie(c, ts.URL)
	ts.do(c, "POST", "/settings/password", url.Values{"current_password": {testPassword}, "new_password": {"fresh secret words"}}, nil)
	ts.do(ts.client(), "POST", "/signin", url.Values{"email": {"logs@example.com"}, "password": {"typo secret words"}}, nil)
	ts.do(ts.client(), "GET", "/signin?next=/runs&token=query-secret", nil, nil)
	logs := ts.logs.String()
	if !strings.Contains(logs, "path=/signin") {
		t.Fatalf("requests were not logged:\n%s", logs)
	}
	for _, secret := range []string{testPassword, "fresh secret words", "typo secret words", token, sessionCookie(c, ts.URL), "query-secret"} {
		if secret != "" && strings.Contains(logs, secret) {
			t.Errorf("the log contains a secret %q", secret)
		}
	}
}

func TestHealthzReportsADeadDatabase(t *testing.T) {
	ts := newTestServer(t, Config{})
	if r := ts.do(ts.client(), "GET", "/healthz", nil, nil); r.status != http.StatusOK {
		t.Fatalf("healthy: %d", r.status)
	}
	ts.store.Close()
	r := ts.do(ts.client(), "GET", "/healthz", nil, nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "unavailable") {
		t.Fatalf("closed database: %d %s", r.status, r.body)
	}
}
