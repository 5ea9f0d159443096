package handlers

import (
	"testing"
	"time"

	"tunelab/store"
)

// One way to write sizes and durations on every page.
func TestFormatBytesAndDurations(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {999, "999 B"}, {1000, "1 kB"}, {86_600, "86.6 kB"}, {87_000, "87 kB"}, {226_364, "226.4 kB"},
		{999_949, "999.9 kB"}, {999_950, "1 MB"}, {1_260_000, "1.3 MB"}, {100_000_000, "100 MB"}, {3_000_000_000, "3 GB"},
	} {
		if got := formatBytes(c.n); got != c.want {
			t.Errorf("formatBytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0 s"}, {56 * time.Second, "56 s"}, {133 * time.Second, "2 min 13 s"}, {time.Hour + 4*time.Minute + 9*time.Second, "1 h 04 min"},
		{1500 * time.Millisecond, "2 s"},
	} {
		if got := formatDuration(c.d); got != c.want {
			t.Errorf("formatDuration(%s) = %q, want %q", c.d, got, c.want)
		}
		if got := formatGPUSeconds(int64(c.d.Round(time.Second) / time.Second)); got != c.want {
			t.Errorf("formatGPUSeconds(%s) = %q, want %q (the same as formatDuration)", c.d, got, c.want)
		}
	}
}

// The estimate follows the pace over the whole run and counts down between reports: a
// step reported late, or a clock that moves on between reports, never sends it back up.
func TestEstimateLeftIsSmoothAndNeverJumpsBackUp(t *testing.T) {
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	const total = 240
	perStep := 250 * time.Millisecond
	// Metrics arrive every 10 steps, heartbeats every 5 s; the page is redrawn every 500 ms.
	var last time.Duration = -1
	var seen stepSeen
	for now := start.Add(3 * time.Second); now.Before(start.Add(55 * time.Second)); now = now.Add(500 * time.Millisecond) {
		done := int(now.Sub(start) / perStep)
		if reported := done / 10 * 10; reported > seen.Step {
			seen = stepSeen{Step: reported, At: start.Add(time.Duration(reported) * perStep)}
		}
		left, ok := estimateLeft(start, seen, total, now)
		if !ok {
			t.Fatalf("no estimate at %s with %+v", now.Sub(start), seen)
		}
		if last >= 0 && left > last+time.Second {
			t.Fatalf("the estimate jumped up from %s to %s at %s", last, left, now.Sub(start))
		}
		truth := time.Duration(total-done) * perStep
		if diff := left - truth; diff > 3*time.Second || diff < -3*time.Second {
			t.Errorf("at %s: estimate %s, truth %s", now.Sub(start), left, truth)
		}
		last = left
	}
	if _, ok := estimateLeft(start, stepSeen{}, total, start.Add(time.Second)); ok {
		t.Error("an estimate before any step")
	}
}

// Progress comes from the newest step known: the log or metrics may be ahead of the last
// heartbeat.
func TestProgressUsesTheNewestStepKnown(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 1, 0, 0, time.UTC)
	run := store.Run{Status: store.RunRunning, Step: 82, TotalSteps: 240, FirstHeartbeat: now.Add(-30 * time.Second),
		LastHeartbeat: now.Add(-4 * time.Second)}
	logs := []store.LogLine{{Line: "step 90/240 loss 1.2", At: now.Add(-3 * time.Second)}, {Line: "step 100/240 loss 1.1", At: now.Add(-time.Second)},
		{Line: "saved snapshot at step 100 (87 kB)", At: now}}
	fromLog, ok := logStep(logs)
	if !ok || fromLog.Step != 100 {
		t.Fatalf("logStep = %+v, %v", fromLog, ok)
	}
	seen := latestStep(run, stepSeen{Step: 90, At: now.Add(-3 * time.Second)}, fromLog)
	pct, words, eta := progress(run, seen, now)
	if pct != 41 || words != "100 / 240 steps" || eta == "" {
		t.Fatalf("progress = %d %q %q", pct, words, eta)
	}
	run.CancelRequested = true
	if _, _, eta := progress(run, seen, now); eta != "" {
		t.Fatalf("an estimate while cancelling: %q", eta)
	}
}
