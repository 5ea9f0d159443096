package store

import (
	"context"
	"testing"
	"time"
)

// A long run writes its GPU seconds every meter interval (default 10 min); the rows add
// up to exactly the whole seconds from first heartbeat to end, and each gets an outbox row.
func TestLongRunReportsPartialUsageEveryInterval(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.queue(t, "lora", f.chat)
	f.s.ClaimQueuedRun(ctx, "local", []byte("h"))
	f.s.Heartbeat(ctx, r.ID, 0, 100)
	for _, step := range []time.Duration{5 * time.Minute, 6 * time.Minute, 10*time.Minute + 500*time.Millisecond, 3 * time.Minute} {
		f.clock.advance(step)
		if _, err := f.s.Heartbeat(ctx, r.ID, 1, 100); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.advance(700 * time.Millisecond)
	if _, err := f.s.FinishRun(ctx, r.ID, RunSucceeded, "", f.clock.now()); err != nil {
		t.Fatal(err)
	}
	usage, _ := f.s.RunUsage(ctx, r.ID)
	var got []int64
	var total int64
	for _, u := range usage {
		got = append(got, u.Seconds)
		total += u.Seconds
	}
	// 11 min: 660 s; 21 min 0.5 s: 600 s more; the end at 24 min 1.2 s: 181 s more.
	if len(got) != 3 || got[0] != 660 || got[1] != 600 || got[2] != 181 || total != 1441 {
		t.Fatalf("usage rows %v (total %d), want [660 600 181]", got, total)
	}
	var outbox int
	f.s.r.QueryRow("SELECT COUNT(*) FROM meter_outbox WHERE run_id = ?", r.ID).Scan(&outbox)
	if outbox != 3 {
		t.Fatalf("outbox rows %d, want one per usage row", outbox)
	}
}

// A worker that went silent is billed to its last heartbeat, partial rows included.
func TestSilentWorkerBilledToLastHeartbeatWithPartials(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.queue(t, "lora", f.chat)
	f.s.ClaimQueuedRun(ctx, "local", []byte("h"))
	f.s.Heartbeat(ctx, r.ID, 0, 100)
	f.clock.advance(12 * time.Minute)
	f.s.Heartbeat(ctx, r.ID, 1, 100) // writes 720 s
	last := f.clock.now()
	f.clock.advance(time.Hour) // silence
	if _, err := f.s.FinishRun(ctx, r.ID, RunFailed, "worker silent", last); err != nil {
		t.Fatal(err)
	}
	usage, _ := f.s.RunUsage(ctx, r.ID)
	var total int64
	for _, u := range usage {
		total += u.Seconds
	}
	if total != 720 {
		t.Fatalf("billed %d s, want 720 (to the last heartbeat)", total)
	}
}
