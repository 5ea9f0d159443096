package store_test

import (
	"context"
	"testing"
	"time"

	"tunelab/store"
	"tunelab/store/storetest"
)

// After 90 days raw security telemetry goes, and its daily counts per kind and country stay;
// a purge split over batches counts every event once.
func TestSecurityTelemetryPurgeKeepsDailyCounts(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)}
	st, _ := storetest.OpenDir(t, t.TempDir(), store.Options{Now: clock.Now})
	for i := range 1500 {
		cc := "DE"
		if i%3 == 0 {
			cc = "JP"
		}
		if err := st.RecordSecurityEvent(ctx, store.SecurityEvent{Kind: store.EventSignInFailed, Email: "x@example.com", IP: "192.0.2.1", Country: cc}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Add(91 * 24 * time.Hour)
	st.RecordSecurityEvent(ctx, store.SecurityEvent{Kind: store.EventSignIn, Email: "x@example.com", IP: "192.0.2.1", Country: "DE"})
	n, err := st.PurgeSecurityEvents(ctx)
	if err != nil || n != 1500 {
		t.Fatalf("purged %d, %v", n, err)
	}
	left, _ := st.RecentSecurityEvents(ctx, 10)
	if len(left) != 1 || left[0].Kind != store.EventSignIn || left[0].Country != "DE" {
		t.Fatalf("left: %+v", left)
	}
	counts, err := st.SecurityEventDaily(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"2026-08-01 signin_failed DE": 1000, "2026-08-01 signin_failed JP": 500}
	if len(counts) != len(want) {
		t.Fatalf("daily counts: %+v", counts)
	}
	for _, c := range counts {
		if want[c.Key] != c.Count {
			t.Errorf("%s: %d, want %d", c.Key, c.Count, want[c.Key])
		}
	}
}
