package gpu

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"tunelab/store"
)

// deployment records a worker deployment of a fresh snapshot on backend.
func (f *fixture) deployment(backend, name string) store.Deployment {
	f.t.Helper()
	run := f.queueGPU(backend, "cuda-h100")
	body := []byte("PK\x03\x04 weights of " + name)
	sum := sha256.Sum256(body)
	sn, err := f.store.CreateSnapshot(f.ctx, f.vault, store.NewSnapshot{RunID: run, Step: 3, SHA256: hex.EncodeToString(sum[:]), MaxBytes: 1 << 20}, bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	d, err := f.store.CreateWorkerDeployment(f.ctx, store.NewWorkerDeployment{UserID: f.userID, SnapshotID: sn.ID, Name: name,
		Backend: backend, GPUType: "cuda-h100", ServeKeySealed: []byte("k")}, f.clock.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *fixture) dep(id int64) store.Deployment {
	f.t.Helper()
	d, err := f.store.WorkerDeployment(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

// The dispatcher submits a serve job for each new worker deployment (its own arguments, no
// training slot), enforces a stop the job does not obey within the grace, and fails one
// whose job went silent, exited, or whose backend is gone.
func TestDispatcherStartsAndFollowsServeJobs(t *testing.T) {
	f := newFixture(t)
	b := newFakeBackend(0) // no training slot: serve jobs do not need one
	b.gpus = []string{"cuda-h100"}
	d := f.dispatcher(b, nil)

	stopped := f.deployment("fake", "tl-a")
	silent := f.deployment("fake", "tl-b")
	exits := f.deployment("fake", "tl-c")
	lost := f.deployment("gone", "tl-d")
	f.tick(d)
	if len(b.submitted) != 3 {
		t.Fatalf("submitted %+v", b.submitted)
	}
	j := b.submitted[0]
	if j.DeploymentID != stopped.ID || j.Config.GPUType != "cuda-h100" || len(j.Token) != 32 ||
		!slices.Equal(j.WorkerArgs(), []string{"--server", "http://tunelab.test", "--deployment", strings.TrimPrefix(j.Label(), "deployment-")}) {
		t.Fatalf("serve job %+v args %v", j, j.WorkerArgs())
	}
	if h, err := f.store.DeploymentTokenHash(f.ctx, stopped.ID); err != nil || !bytes.Equal(h, RunTokenHash(j.Token)) {
		t.Fatalf("token hash %x %v", h, err)
	}
	if g := f.dep(lost.ID); !g.Job.Failed || !strings.Contains(g.Job.Reason, "gone backend is not configured") {
		t.Fatalf("a deployment on an unknown backend: %+v", g.Job)
	}
	for _, dep := range []store.Deployment{stopped, silent, exits} {
		if _, err := f.store.DeploymentHeartbeat(f.ctx, dep.ID, "http://h:1", true, "", f.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	f.tick(d)
	if len(b.submitted) != 3 {
		t.Fatal("a second pass submitted again")
	}

	if err := f.store.StopDeployment(f.ctx, f.userID, stopped.ID, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	b.setState(f.dep(exits.ID).Job.JobID, JobStatus{State: JobExited, Detail: "exit status 1"})
	f.clock.Add(2 * time.Second)
	f.store.DeploymentHeartbeat(f.ctx, silent.ID, "http://h:1", true, "", f.clock.Now())
	f.tick(d)
	if g := f.dep(stopped.ID); !g.Job.EndedAt.IsZero() || b.cancels(g.Job.JobID) != 0 {
		t.Fatal("the stop was enforced inside the grace")
	}
	if g := f.dep(exits.ID); !g.Job.Failed || !strings.Contains(g.Job.Reason, "exit status 1") {
		t.Fatalf("an exited job: %+v", g.Job)
	}

	f.clock.Add(d.c.HeartbeatTimeout + time.Second)
	f.tick(d)
	if g := f.dep(stopped.ID); g.Job.EndedAt.IsZero() || g.Job.Failed || b.cancels(g.Job.JobID) != 1 {
		t.Fatalf("an ignored stop: %+v cancels %d", g.Job, b.cancels(g.Job.JobID))
	}
	if g := f.dep(silent.ID); !g.Job.Failed || !strings.Contains(g.Job.Reason, "no heartbeat") || b.cancels(g.Job.JobID) != 1 {
		t.Fatalf("a silent job: %+v", g.Job)
	}
	// Metered to its last heartbeat: 2 s after the first.
	if n, _ := f.store.DeploymentSeconds(f.ctx, silent.ID); n != 2 {
		t.Fatalf("the silent job metered %d seconds, want 2", n)
	}
	if left, _ := f.store.UnendedWorkerDeployments(f.ctx); len(left) != 0 {
		t.Fatalf("still followed: %+v", left)
	}
}
