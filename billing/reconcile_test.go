package billing

import (
	"context"
	"testing"
	"time"

	"tunelab/store"
)

// For runs of known durations (one long enough to be metered in parts as it ran), the
// seconds Stripe acknowledged equal the seconds in the ledger, and the reconciliation
// shows no difference once sent; before, it flags the seconds still waiting.
func TestReconciliationSentEqualsLedgerForKnownDurations(t *testing.T) {
	f, rec := meterFixture(t)
	ctx := context.Background()
	var known int64
	for _, secs := range []int{61, 3600, 7} {
		f.run(t, f.ada, secs)
		known += int64(secs)
	}
	// 35 min 17 s with a heartbeat every 5 min: partial rows at 10, 20 and 30 min.
	long := f.startRun(t, f.ada, 0)
	for range 7 {
		f.clock.advance(5 * time.Minute)
		if _, err := f.st.Heartbeat(ctx, long.ID, 1, 10); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.advance(17 * time.Second)
	if _, err := f.st.FinishRun(ctx, long.ID, store.RunSucceeded, "", f.clock.now()); err != nil {
		t.Fatal(err)
	}
	known += 35*60 + 17
	f.run(t, f.bob, 100) // free plan: nothing to bill, nothing to reconcile

	rows, ok, err := f.svc.Reconcile(ctx, 50)
	if err != nil || !ok {
		t.Fatalf("before sending: %v %v", ok, err)
	}
	if r := total(t, rows, f.ada.ID); r.CustomerID != "cus_ada" || r.Ledger != known || r.Billable != known ||
		r.Pending != known || r.Sent != 0 || !r.Flagged() || r.Difference() != known {
		t.Fatalf("before sending: %+v", r)
	}

	sent, err := f.svc.SendDueMeterEvents(ctx)
	if err != nil || sent != 7 { // 3 short runs, 3 partial rows and the long run's last
		t.Fatalf("sent %d rows, %v", sent, err)
	}
	_, secs := rec.sent()
	rows, _, _ = f.svc.Reconcile(ctx, 50)
	for _, r := range rows {
		if r.Flagged() {
			t.Errorf("flagged after sending: %+v", r)
		}
	}
	if r := total(t, rows, f.ada.ID); secs != known || r.Sent != known || r.Ledger != known || r.Pending != 0 || r.Flagged() {
		t.Fatalf("after sending: Stripe got %d s, ledger %d s, row %+v", secs, known, r)
	}
}

// total adds up one person's months (the runs may straddle a month's end); every row
// must be that person's.
func total(t *testing.T, rows []store.MeterReconRow, userID int64) store.MeterReconRow {
	t.Helper()
	var sum store.MeterReconRow
	for _, r := range rows {
		if r.UserID != userID {
			t.Fatalf("a row of someone else: %+v", r)
		}
		sum.UserID, sum.CustomerID = r.UserID, r.CustomerID
		sum.Ledger += r.Ledger
		sum.Billable += r.Billable
		sum.Sent += r.Sent
		sum.Pending += r.Pending
		sum.TooOld += r.TooOld
		sum.Missing += r.Missing
		sum.Mismatched += r.Mismatched
	}
	return sum
}
