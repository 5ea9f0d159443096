package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// finishedRunWithOutput runs a run to its end with a metric, a log line and a snapshot.
func (f *runFixture) finishedRunWithOutput(t *testing.T, d Dataset) Run {
	t.Helper()
	ctx := context.Background()
	r := f.queue(t, "lora", d)
	f.s.ClaimQueuedRun(ctx, "local", []byte("hash-"+d.Name+time.Now().String()))
	f.s.Heartbeat(ctx, r.ID, 0, 10)
	f.clock.advance(10 * time.Second)
	if _, err := f.s.AppendMetrics(ctx, r.ID, []MetricPoint{{Name: "loss", Step: 1, Value: 2}}); err != nil {
		t.Fatal(err)
	}
	f.s.AppendLogs(ctx, r.ID, []string{"step 1"})
	body := bytes.Repeat([]byte("w"), 100)
	sum := sha256.Sum256(body)
	if _, err := f.s.CreateSnapshot(ctx, f.v, NewSnapshot{RunID: r.ID, Step: 10, Final: true, SHA256: hex.EncodeToString(sum[:]), MaxBytes: 1 << 20}, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	done, err := f.s.FinishRun(ctx, r.ID, RunSucceeded, "", f.clock.now())
	if err != nil {
		t.Fatal(err)
	}
	return done
}

func vaultCount(t *testing.T, dir string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestDeletedRunIsGoneWithin30DaysButItsUsageStays(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.finishedRunWithOutput(t, f.chat)
	keep := f.finishedRunWithOutput(t, f.chat)
	filesBefore := vaultCount(t, f.dir)
	if err := f.s.DeleteRun(ctx, f.ada.ID, r.ID); err != nil {
		t.Fatal(err)
	}
	// Not yet due: nothing goes.
	if rep, err := f.s.Purge(ctx, f.v, PurgeOptions{}); err != nil || rep.Runs != 0 {
		t.Fatalf("early purge: %+v %v", rep, err)
	}
	f.clock.advance(30*24*time.Hour + time.Hour)
	rep, err := f.s.Purge(ctx, f.v, PurgeOptions{})
	if err != nil || rep.Runs != 1 {
		t.Fatalf("purge: %+v %v", rep, err)
	}
	if got := vaultCount(t, f.dir); got != filesBefore-1 {
		t.Fatalf("vault files %d -> %d: the snapshot file is still there", filesBefore, got)
	}
	pts, _ := f.s.MetricsAfter(ctx, r.ID, 0, 10)
	logs, _ := f.s.LogTail(ctx, r.ID, 10)
	events, _ := f.s.RunEvents(ctx, r.ID)
	snaps, _ := f.s.SnapshotAtStep(ctx, r.ID, 10)
	series, _ := f.s.MetricSeries(ctx, r.ID)
	if len(pts) != 0 || len(logs) != 0 || len(events) != 0 || snaps.ID != 0 || len(series) != 0 {
		t.Fatalf("left behind: %d points, %d logs, %d events, snapshot %+v, %d series", len(pts), len(logs), len(events), snaps, len(series))
	}
	var rollups int
	f.s.r.QueryRow("SELECT COUNT(*) FROM metric_rollups r JOIN metric_series s ON s.id = r.series_id WHERE s.run_id = ?", r.ID).Scan(&rollups)
	var orphanRollups int
	f.s.r.QueryRow("SELECT COUNT(*) FROM metric_rollups WHERE series_id NOT IN (SELECT id FROM metric_series)").Scan(&orphanRollups)
	if rollups != 0 || orphanRollups != 0 {
		t.Fatalf("rollups left: %d, orphans %d", rollups, orphanRollups)
	}
	tomb, _ := f.s.RunByID(ctx, r.ID)
	if tomb.Config != (RunConfig{}) {
		t.Fatalf("the tombstone keeps the configuration: %+v", tomb.Config)
	}
	if usage, _ := f.s.RunUsage(ctx, r.ID); len(usage) != 1 || usage[0].Seconds != 10 {
		t.Fatalf("the billing record went too: %+v", usage)
	}
	// The other run is untouched, and a second purge changes nothing.
	if s, _ := f.s.Snapshots(ctx, f.ada.ID, keep.ID); len(s) != 1 {
		t.Fatal("purge touched a run that was not deleted")
	}
	if rep, err := f.s.Purge(ctx, f.v, PurgeOptions{}); err != nil || rep != (PurgeReport{}) {
		t.Fatalf("second purge: %+v %v", rep, err)
	}
}

func TestDatasetsExpireAfterTheirTrainingPlusRetention(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	const retention = 7 * 24 * time.Hour
	f.finishedRunWithOutput(t, f.chat)
	// f.pref was never trained on; bob's dataset has a run still queued.
	f.queue(t, "lora", f.bobChat)
	f.clock.advance(retention - time.Hour)
	if rep, _ := f.s.Purge(ctx, f.v, PurgeOptions{DatasetRetention: retention}); rep.ExpiredDatasets != 0 {
		t.Fatalf("a dataset expired early: %+v", rep)
	}
	f.clock.advance(2 * time.Hour)
	rep, err := f.s.Purge(ctx, f.v, PurgeOptions{DatasetRetention: retention})
	if err != nil || rep.ExpiredDatasets != 1 {
		t.Fatalf("expiry: %+v %v", rep, err)
	}
	if _, err := f.s.Dataset(ctx, f.ada.ID, f.chat.ID); !errors.Is(err, ErrNotFound) {
		t.Fatal("the expired dataset is still listed")
	}
	if _, err := f.s.Dataset(ctx, f.ada.ID, f.pref.ID); err != nil {
		t.Fatal("a dataset never trained on expired")
	}
	if _, err := f.s.Dataset(ctx, f.bob.ID, f.bobChat.ID); err != nil {
		t.Fatal("a dataset with a queued run expired")
	}
	// A day later its file and name are gone; the row stays for the runs that name it.
	files := vaultCount(t, f.dir)
	f.clock.advance(PurgeDelay + time.Hour)
	rep, err = f.s.Purge(ctx, f.v, PurgeOptions{DatasetRetention: retention})
	if err != nil || rep.Datasets != 1 {
		t.Fatalf("dataset purge: %+v %v", rep, err)
	}
	if got := vaultCount(t, f.dir); got != files-1 {
		t.Fatalf("vault files %d -> %d", files, got)
	}
	d, err := f.s.DatasetByID(ctx, f.chat.ID)
	if err != nil || d.Name != "deleted dataset" {
		t.Fatalf("purged dataset row: %+v %v", d, err)
	}
}

func TestDeletedDatasetWaitsForItsRunningRun(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.queue(t, "lora", f.chat)
	f.s.ClaimQueuedRun(ctx, "local", []byte("h"))
	f.s.DeleteDataset(ctx, f.ada.ID, f.chat.ID)
	f.clock.advance(PurgeDelay + time.Hour)
	if rep, _ := f.s.Purge(ctx, f.v, PurgeOptions{}); rep.Datasets != 0 {
		t.Fatal("the file of a dataset a run is training on was purged")
	}
	f.s.FinishRun(ctx, r.ID, RunSucceeded, "", f.clock.now())
	if rep, _ := f.s.Purge(ctx, f.v, PurgeOptions{}); rep.Datasets != 1 {
		t.Fatal("the dataset was not purged after its run ended")
	}
}

func TestWorkerLogsGoWithTheirPurgedRun(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	logDir := filepath.Join(t.TempDir(), "workers")
	os.MkdirAll(logDir, 0o700)
	gone := f.finishedRunWithOutput(t, f.chat)
	keep := f.finishedRunWithOutput(t, f.chat)
	logOf := func(id int64) string { return filepath.Join(logDir, fmt.Sprintf("run-%d.log", id)) }
	for _, p := range []string{logOf(gone.ID), logOf(keep.ID), logOf(9999), filepath.Join(logDir, "notes.txt")} {
		if err := os.WriteFile(p, []byte("worker output\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	o := PurgeOptions{WorkerLogDir: logDir}
	if err := f.s.DeleteRun(ctx, f.ada.ID, gone.ID); err != nil {
		t.Fatal(err)
	}
	if rep, err := f.s.Purge(ctx, f.v, o); err != nil || rep.WorkerLogs != 0 {
		t.Fatalf("before the delay: %+v %v", rep, err)
	}
	if _, err := os.Stat(logOf(gone.ID)); err != nil {
		t.Fatal("the log went before its run was purged")
	}
	f.clock.advance(PurgeDelay + time.Minute)
	rep, err := f.s.Purge(ctx, f.v, o)
	if err != nil || rep.Runs != 1 || rep.WorkerLogs != 1 {
		t.Fatalf("purge: %+v %v", rep, err)
	}
	if _, err := os.Stat(logOf(gone.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the purged run's worker log is still there: %v", err)
	}
	// The kept run's log, a log of no known run and other files stay.
	for _, p := range []string{logOf(keep.ID), logOf(9999), filepath.Join(logDir, "notes.txt")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s went: %v", p, err)
		}
	}
	// A log written again for an already purged run (a purge cut short, or one from before
	// logs were purged) goes on the next pass; a missing directory is no error.
	os.WriteFile(logOf(gone.ID), []byte("late\n"), 0o600)
	if rep, err := f.s.Purge(ctx, f.v, o); err != nil || rep.WorkerLogs != 1 || rep.Runs != 0 {
		t.Fatalf("second purge: %+v %v", rep, err)
	}
	if rep, err := f.s.Purge(ctx, f.v, PurgeOptions{WorkerLogDir: filepath.Join(logDir, "missing")}); err != nil || rep != (PurgeReport{}) {
		t.Fatalf("missing log dir: %+v %v", rep, err)
	}
}

func TestHalfWrittenUploadsAreRemovedAfterADay(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	// Two uploads cut short (the process died before Commit or Abort): one a day and a
	// minute ago, one an hour ago; and a stored file older than both.
	old, _ := f.v.Create()
	old.Write([]byte("half of an old upload"))
	recent, _ := f.v.Create()
	recent.Write([]byte("half of a recent upload"))
	stored := putVault(t, f.v, []byte("kept"), 10)
	now := f.clock.now()
	os.Chtimes(old.f.Name(), now.Add(-StaleUploadAge-time.Minute), now.Add(-StaleUploadAge-time.Minute))
	os.Chtimes(recent.f.Name(), now.Add(-time.Hour), now.Add(-time.Hour))
	os.Chtimes(filepath.Join(f.dir, stored), now.Add(-90*24*time.Hour), now.Add(-90*24*time.Hour))
	rep, err := f.s.Purge(ctx, f.v, PurgeOptions{})
	if err != nil || rep.Uploads != 1 {
		t.Fatalf("purge: %+v %v", rep, err)
	}
	if _, err := os.Stat(old.f.Name()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the day-old half-written upload is still there: %v", err)
	}
	if _, err := os.Stat(recent.f.Name()); err != nil {
		t.Fatalf("an upload from an hour ago went: %v", err)
	}
	if got, err := readVault(f.v, stored); err != nil || string(got) != "kept" {
		t.Fatalf("a stored file went: %q %v", got, err)
	}
	// The recent one goes once it too is a day old: purges run at start-up, then hourly.
	f.clock.advance(StaleUploadAge)
	if rep, err := f.s.Purge(ctx, f.v, PurgeOptions{}); err != nil || rep.Uploads != 1 {
		t.Fatalf("a day later: %+v %v", rep, err)
	}
	recent.Abort() // the writer's own clean-up finds nothing left, and says nothing
}
