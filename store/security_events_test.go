package store

import (
	"context"
	"slices"
	"testing"
)

func TestEveryEventKindCanBeRecorded(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := context.Background()
	for _, kind := range EventKinds {
		if err := s.RecordSecurityEvent(ctx, SecurityEvent{Kind: kind, Email: "a@example.com", IP: "192.0.2.1"}); err != nil {
			t.Fatalf("record %s: %v", kind, err)
		}
	}
	if err := s.RecordSecurityEvent(ctx, SecurityEvent{Kind: "made_up"}); err == nil {
		t.Fatal("an unknown kind was stored")
	}
	events, err := s.RecentSecurityEvents(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, e.Kind)
	}
	slices.Reverse(got)
	if !slices.Equal(got, EventKinds) {
		t.Fatalf("stored kinds %v, want %v", got, EventKinds)
	}
}

// TestEventKindsMatchTheKindTable keeps the Go list and the table that the foreign key
// checks in step: a kind declared in Go but not in a migration fails here, not in production.
func TestEventKindsMatchTheKindTable(t *testing.T) {
	s, _ := openTest(t, Options{})
	rows, err := s.r.QueryContext(context.Background(), `SELECT kind FROM security_event_kinds ORDER BY kind`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		got = append(got, k)
	}
	want := slices.Clone(EventKinds)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("security_event_kinds holds %v, Go declares %v", got, want)
	}
}
