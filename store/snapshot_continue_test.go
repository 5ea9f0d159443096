package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"
)

// snapshotAt stores a small snapshot of run at step.
func (f *runFixture) snapshotAt(t *testing.T, runID int64, step int) Snapshot {
	t.Helper()
	body := bytes.Repeat([]byte{byte(step)}, 64)
	sum := sha256.Sum256(body)
	sn, err := f.s.CreateSnapshot(context.Background(), f.v, NewSnapshot{RunID: runID, Step: step, SHA256: hex.EncodeToString(sum[:]), MaxBytes: 1 << 20}, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

func TestDeleteSnapshotHidesItAtOnceAndIsOwnerScoped(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.queue(t, "lora", f.chat)
	f.s.ClaimQueuedRun(ctx, "local", []byte("h"))
	f.s.Heartbeat(ctx, r.ID, 5, 10) // running: its snapshots can be deleted too
	sn := f.snapshotAt(t, r.ID, 5)
	keep := f.snapshotAt(t, r.ID, 6)
	files := vaultCount(t, f.dir)

	if err := f.s.DeleteSnapshot(ctx, f.bob.ID, r.ID, sn.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bob deletes ada's snapshot: %v", err)
	}
	if err := f.s.DeleteSnapshot(ctx, f.ada.ID, r.ID+1, sn.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete through another run's path: %v", err)
	}
	if err := f.s.DeleteSnapshot(ctx, f.ada.ID, r.ID, sn.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteSnapshot(ctx, f.ada.ID, r.ID, sn.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := f.s.Snapshot(ctx, f.ada.ID, r.ID, sn.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a deleted snapshot still downloads: %v", err)
	}
	if list, _ := f.s.Snapshots(ctx, f.ada.ID, r.ID); len(list) != 1 || list[0].ID != keep.ID {
		t.Fatalf("snapshots after delete = %+v", list)
	}
	if _, err := f.s.InitSnapshotSource(ctx, f.ada.ID, sn.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a deleted snapshot can still be continued from: %v", err)
	}
	// The hourly purge removes its file once the delay passed, and only its file.
	if rep, _ := f.s.Purge(ctx, f.v, PurgeOptions{}); rep.Snapshots != 0 {
		t.Fatalf("early purge: %+v", rep)
	}
	f.clock.advance(PurgeDelay + time.Minute)
	if rep, err := f.s.Purge(ctx, f.v, PurgeOptions{}); err != nil || rep.Snapshots != 1 {
		t.Fatalf("purge: %+v %v", rep, err)
	}
	if n := vaultCount(t, f.dir); n != files-1 {
		t.Fatalf("vault files %d -> %d, want one fewer", files, n)
	}
}

func TestContinuedRunKeepsItsInitSnapshotAndLineage(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	src := f.finishedRunWithOutput(t, f.chat)
	snaps, _ := f.s.Snapshots(ctx, f.ada.ID, src.ID)
	sn := snaps[0]

	got, err := f.s.InitSnapshotSource(ctx, f.ada.ID, sn.ID)
	if err != nil || got.RunID != src.ID || got.Step != sn.Step || got.Config.Method != "lora" || got.Config.LoRARank != 8 {
		t.Fatalf("source = %+v %v", got, err)
	}
	if _, err := f.s.InitSnapshotSource(ctx, f.bob.ID, sn.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bob reads ada's snapshot as a source: %v", err)
	}

	cfg := testRunConfig("lora")
	cfg.InitSnapshotID, cfg.Epochs, cfg.LearningRate = sn.ID, 3, 1e-3
	bad := func(name string, mutate func(*NewRun), field string) {
		t.Helper()
		nr := NewRun{UserID: f.ada.ID, DatasetID: f.chat.ID, Config: cfg, Backend: "local"}
		mutate(&nr)
		_, err := f.s.CreateRun(ctx, nr)
		var ie *InitSnapshotError
		if !errors.As(err, &ie) || ie.Field != field {
			t.Errorf("%s: %v, want an InitSnapshotError on %s", name, err, field)
		}
	}
	bad("another base model", func(nr *NewRun) { nr.Config.BaseModel = "other" }, "base_model")
	bad("another method", func(nr *NewRun) { nr.Config.Method = "full" }, "method")
	bad("another rank", func(nr *NewRun) { nr.Config.LoRARank = 4 }, "lora_rank")
	bad("another person's snapshot", func(nr *NewRun) { nr.UserID, nr.DatasetID = f.bob.ID, f.bobChat.ID }, "init_snapshot_id")
	bad("no such snapshot", func(nr *NewRun) { nr.Config.InitSnapshotID = 9999 }, "init_snapshot_id")
	if runs, _ := f.s.Runs(ctx, f.ada.ID); len(runs) != 1 {
		t.Fatalf("a refused run was saved: %d runs", len(runs))
	}

	next, err := f.s.CreateRun(ctx, NewRun{UserID: f.ada.ID, DatasetID: f.chat.ID, Config: cfg, Backend: "local"})
	if err != nil {
		t.Fatal(err)
	}
	if next.Config.InitSnapshotID != sn.ID || next.Config.Epochs != 3 {
		t.Fatalf("config = %+v", next.Config)
	}
	if got, err := f.s.RunInitSnapshot(ctx, next.ID); err != nil || got.ID != sn.ID {
		t.Fatalf("run init snapshot = %+v %v", got, err)
	}
	if _, err := f.s.RunInitSnapshot(ctx, src.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a fresh run has an init snapshot: %v", err)
	}
	events, _ := f.s.RunEvents(ctx, next.ID)
	if len(events) == 0 || events[0].Note != "continued from run 1, snapshot at step 10" {
		t.Fatalf("events = %+v", events)
	}
	l, err := f.s.RunLineage(ctx, f.ada.ID, next.ID)
	if err != nil || l.FromRun != src.ID || l.FromStep != 10 || !l.FromVisible || len(l.Continued) != 0 {
		t.Fatalf("lineage of the continued run = %+v %v", l, err)
	}
	l, err = f.s.RunLineage(ctx, f.ada.ID, src.ID)
	if err != nil || l.FromRun != 0 || len(l.Continued) != 1 || l.Continued[0] != (ContinuedRun{ID: next.ID, Step: 10, Status: RunQueued}) {
		t.Fatalf("lineage of the source run = %+v %v", l, err)
	}
	if _, err := f.s.RunLineage(ctx, f.bob.ID, src.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bob reads ada's lineage: %v", err)
	}
	// A deleted snapshot cannot start a new run.
	if err := f.s.DeleteSnapshot(ctx, f.ada.ID, src.ID, sn.ID); err != nil {
		t.Fatal(err)
	}
	bad("a deleted snapshot", func(*NewRun) {}, "init_snapshot_id")
}

func TestPurgeKeepsASnapshotWhileARunStartsFromIt(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	src := f.finishedRunWithOutput(t, f.chat)
	snaps, _ := f.s.Snapshots(ctx, f.ada.ID, src.ID)
	cfg := testRunConfig("lora")
	cfg.InitSnapshotID = snaps[0].ID
	next, err := f.s.CreateRun(ctx, NewRun{UserID: f.ada.ID, DatasetID: f.chat.ID, Config: cfg, Backend: "local"})
	if err != nil {
		t.Fatal(err)
	}
	// The person deletes the snapshot and then its run while the new run waits.
	if err := f.s.DeleteSnapshot(ctx, f.ada.ID, src.ID, snaps[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteRun(ctx, f.ada.ID, src.ID); err != nil {
		t.Fatal(err)
	}
	files := vaultCount(t, f.dir)
	f.clock.advance(PurgeDelay + time.Minute)
	if rep, err := f.s.Purge(ctx, f.v, PurgeOptions{}); err != nil || rep.Snapshots != 0 || rep.Runs != 0 {
		t.Fatalf("purge while the run waits: %+v %v", rep, err)
	}
	if n := vaultCount(t, f.dir); n != files {
		t.Fatalf("vault files %d -> %d while a run needs the snapshot", files, n)
	}
	sn, err := f.s.RunInitSnapshot(ctx, next.ID)
	if err != nil || sn.ID != snaps[0].ID {
		t.Fatalf("the waiting run lost its snapshot: %+v %v", sn, err)
	}
	if _, err := f.v.Open(sn.FileID); err != nil {
		t.Fatalf("the file is gone: %v", err)
	}
	// Once the run ends, both go.
	if _, err := f.s.CancelRun(ctx, f.ada.ID, next.ID); err != nil {
		t.Fatal(err)
	}
	if rep, err := f.s.Purge(ctx, f.v, PurgeOptions{}); err != nil || rep.Snapshots+rep.Runs == 0 {
		t.Fatalf("purge after the run ended: %+v %v", rep, err)
	}
	if n := vaultCount(t, f.dir); n != files-1 {
		t.Fatalf("vault files %d -> %d after the run ended", files, n)
	}
	if _, err := f.s.RunInitSnapshot(ctx, next.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a purged snapshot is still offered: %v", err)
	}
}
