package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A worker deployment's life in the store: its states as the page shows them, partial GPU
// seconds while it runs (in the run's ledger, marked with the deployment and kept out of
// the run's own time), the rest at its end, and closing the account stops it.
func TestWorkerDeploymentStatesMeteringAndClose(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.queue(t, "lora", f.chat)
	f.s.ClaimQueuedRun(ctx, "local", []byte("h"))
	f.s.Heartbeat(ctx, r.ID, 5, 10)
	sn := f.snapshotAt(t, r.ID, 5)
	d, err := f.s.CreateWorkerDeployment(ctx, NewWorkerDeployment{UserID: f.ada.ID, SnapshotID: sn.ID, Name: "tl-1-5",
		Backend: "local", GPUType: "cpu", ServeKeySealed: []byte("sealed")}, f.clock.now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.CreateWorkerDeployment(ctx, NewWorkerDeployment{UserID: f.ada.ID, SnapshotID: sn.ID, Name: "tl-1-5"}, f.clock.now()); !errors.Is(err, ErrDeploymentExists) {
		t.Fatalf("a second live deployment by that name: %v", err)
	}
	stale := 10 * time.Second
	if st := d.State(f.clock.now(), stale); st != DeployStarting {
		t.Fatalf("new: %s", st)
	}
	if _, err := f.s.DeploymentByID(ctx, f.bob.ID, d.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bob reads ada's deployment: %v", err)
	}
	if ok, _ := f.s.SetDeploymentToken(ctx, d.ID, []byte("tok")); !ok {
		t.Fatal("no token set")
	}
	f.s.SetDeploymentJob(ctx, d.ID, "1:2")
	beat := func(healthy bool) bool {
		t.Helper()
		stop, err := f.s.DeploymentHeartbeat(ctx, d.ID, "http://127.0.0.1:9", healthy, "", f.clock.now())
		if err != nil {
			t.Fatal(err)
		}
		return stop
	}
	if _, err := f.s.DeploymentHeartbeat(ctx, d.ID, "", false, "loading the model", f.clock.now()); err != nil {
		t.Fatal(err)
	}
	d, _ = f.s.WorkerDeployment(ctx, d.ID)
	if st := d.State(f.clock.now(), stale); st != DeployStarting || d.Job.Health != "loading the model" {
		t.Fatalf("while loading: %s %q", st, d.Job.Health)
	}
	if st := d.State(f.clock.now().Add(time.Minute), stale); st != DeployUnhealthy {
		t.Fatalf("loading and silent for a minute: %s", st)
	}
	beat(true)
	d, _ = f.s.WorkerDeployment(ctx, d.ID)
	if st := d.State(f.clock.now(), stale); st != DeployLive {
		t.Fatalf("after a healthy heartbeat: %s", st)
	}
	if st := d.State(f.clock.now().Add(time.Minute), stale); st != DeployUnhealthy {
		t.Fatalf("a minute without heartbeats: %s", st)
	}
	f.clock.advance(DefaultMeterInterval + 30*time.Second)
	beat(false)
	partial, _ := f.s.DeploymentSeconds(ctx, d.ID)
	if want := int64((DefaultMeterInterval + 30*time.Second) / time.Second); partial != want {
		t.Fatalf("partial row: %d seconds, want %d", partial, want)
	}
	d, _ = f.s.WorkerDeployment(ctx, d.ID)
	if st := d.State(f.clock.now(), stale); st != DeployUnhealthy {
		t.Fatalf("after an unhealthy heartbeat: %s", st)
	}

	if _, err := f.s.CloseAccount(ctx, f.ada.ID, f.ada.ID); err != nil {
		t.Fatal(err)
	}
	if !beat(true) {
		t.Fatal("closing the account did not stop the deployment")
	}
	d, _ = f.s.WorkerDeployment(ctx, d.ID)
	if st := d.State(f.clock.now(), stale); st != DeployStopping || d.Job.Reason != "stopped: the account was closed" {
		t.Fatalf("after closing: %s %q", st, d.Job.Reason)
	}
	f.clock.advance(7 * time.Second)
	if err := f.s.EndDeployment(ctx, d.ID, false, "stopped", f.clock.now()); err != nil {
		t.Fatal(err)
	}
	if err := f.s.EndDeployment(ctx, d.ID, false, "stopped", f.clock.now()); !errors.Is(err, ErrRunFinished) {
		t.Fatalf("ending twice: %v", err)
	}
	total, _ := f.s.DeploymentSeconds(ctx, d.ID)
	if want := partial + 7; total != want {
		t.Fatalf("metered %d seconds, want %d", total, want)
	}
	d, _ = f.s.WorkerDeployment(ctx, d.ID)
	if st := d.State(f.clock.now(), stale); st != DeployStopped || d.Job.Reason != "stopped: the account was closed" || d.Job.ServeKeySealed != nil {
		t.Fatalf("ended: %s %q key %v", st, d.Job.Reason, d.Job.ServeKeySealed)
	}
	if _, err := f.s.DeploymentTokenHash(ctx, d.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the token outlived the job: %v", err)
	}
	// The run's own GPU time is training only, and its end does not subtract the deployment's.
	if _, err := f.s.FinishRun(ctx, r.ID, RunCancelled, "", f.clock.now()); err != nil {
		t.Fatal(err)
	}
	run, _ := f.s.RunByID(ctx, r.ID)
	if want := int64(f.clock.now().Sub(run.FirstHeartbeat) / time.Second); run.GPUSeconds != want {
		t.Fatalf("run GPU seconds %d, want %d", run.GPUSeconds, want)
	}
}

// A serve job that went silent is metered to its last heartbeat, not to when it was failed.
func TestFailedDeploymentIsMeteredToItsLastHeartbeat(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.queue(t, "lora", f.chat)
	sn := f.snapshotAt(t, r.ID, 1)
	d, _ := f.s.CreateWorkerDeployment(ctx, NewWorkerDeployment{UserID: f.ada.ID, SnapshotID: sn.ID, Name: "tl-x", Backend: "local"}, f.clock.now())
	f.s.DeploymentHeartbeat(ctx, d.ID, "", false, "loading", f.clock.now())
	f.clock.advance(20 * time.Second)
	f.s.DeploymentHeartbeat(ctx, d.ID, "http://h:1", true, "", f.clock.now())
	f.clock.advance(5 * time.Minute)
	if err := f.s.EndDeployment(ctx, d.ID, true, "no heartbeat", f.clock.now()); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.s.DeploymentSeconds(ctx, d.ID); n != 20 {
		t.Fatalf("metered %d seconds, want 20", n)
	}
	d, _ = f.s.WorkerDeployment(ctx, d.ID)
	if st := d.State(f.clock.now(), time.Minute); st != DeployFailed || d.Live() {
		t.Fatalf("state %s live %v", st, d.Live())
	}
}

// A serve job's log file goes once its deployment is gone (purged with its account or
// snapshot); a live deployment's stays, and other files are left alone.
func TestPurgeRemovesLogsOfGoneDeployments(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.queue(t, "lora", f.chat)
	sn := f.snapshotAt(t, r.ID, 1)
	d, _ := f.s.CreateWorkerDeployment(ctx, NewWorkerDeployment{UserID: f.ada.ID, SnapshotID: sn.ID, Name: "tl-x", Backend: "local"}, f.clock.now())
	dir := t.TempDir()
	keep := filepath.Join(dir, fmt.Sprintf("deployment-%d.log", d.ID))
	gone := filepath.Join(dir, fmt.Sprintf("deployment-%d.log", d.ID+100))
	other := filepath.Join(dir, "deployment-notes.txt")
	for _, p := range []string{keep, gone, other} {
		os.WriteFile(p, []byte("x"), 0o600)
	}
	if _, err := f.s.Purge(ctx, f.v, PurgeOptions{WorkerLogDir: dir}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{keep: true, gone: false, other: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}
