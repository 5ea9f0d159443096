package store

import (
	"testing"
	"time"
)

func TestUnchangedSessionIsNotRewrittenForEveryRequest(t *testing.T) {
	s, _ := openTest(t, Options{Argon2: cheapArgon2})
	ss := s.Sessions()
	expiryOf := func() int64 {
		var e int64
		if err := s.r.QueryRow("SELECT expiry FROM sessions WHERE token_hash = ?", tokenHash("tok")).Scan(&e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	data := gobSession(t, map[string]any{"k": "v"})
	start := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if err := ss.Commit("tok", data, start); err != nil {
		t.Fatal(err)
	}
	ss.Commit("tok", data, start.Add(30*time.Second)) // a page view half a minute later
	if got := expiryOf(); got != ms(start) {
		t.Fatalf("expiry rewritten within the slack: %d, want %d", got, ms(start))
	}
	ss.Commit("tok", data, start.Add(2*time.Minute))
	if got := expiryOf(); got != ms(start.Add(2*time.Minute)) {
		t.Fatalf("expiry not moved on after the slack: %d", got)
	}
	changed := gobSession(t, map[string]any{"k": "w"})
	ss.Commit("tok", changed, start.Add(2*time.Minute+time.Second))
	if got, ok, _ := ss.Find("tok"); !ok || string(got) != string(changed) {
		t.Fatal("changed data not written")
	}
}
