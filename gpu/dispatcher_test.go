package gpu

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"tunelab/store"
)

func TestClaimRespectsSlotsAndHandsOutTokens(t *testing.T) {
	f := newFixture(t)
	b := newFakeBackend(2)
	hub := NewHub()
	d := f.dispatcher(b, hub)
	ids := []int64{f.queue("fake"), f.queue("fake"), f.queue("fake")}
	other := f.queueGPU("slurm", "a100") // a run no backend here offers a GPU for waits
	events := make([]<-chan *Event, len(ids))
	for i, id := range ids {
		ch, cancel := hub.Subscribe(id)
		defer cancel()
		events[i] = ch
	}

	f.tick(d)
	f.wantStatus(ids[0], store.RunStarting, "")
	f.wantStatus(ids[1], store.RunStarting, "")
	f.wantStatus(ids[2], store.RunQueued, "")
	f.wantStatus(other, store.RunQueued, "")
	if len(b.submitted) != 2 {
		t.Fatalf("submitted %d jobs, want 2", len(b.submitted))
	}
	for i, job := range b.submitted {
		r := f.run(job.RunID)
		if job.RunID != ids[i] || job.ServerURL != "http://tunelab.test" || r.JobID == "" {
			t.Fatalf("job %+v for run %+v", job, r)
		}
		if len(job.Token) != 32 {
			t.Fatalf("token %q is not 128 bits of hex", job.Token)
		}
		stored, err := f.store.RunTokenHash(f.ctx, job.RunID)
		if err != nil || !bytes.Equal(stored, RunTokenHash(job.Token)) {
			t.Fatalf("stored hash %x does not match the token (%v)", stored, err)
		}
		if e := <-events[i]; e.Kind != EventStatus || e.RunID != ids[i] {
			t.Fatalf("event %+v", e)
		}
	}
	if b.submitted[0].Token == b.submitted[1].Token {
		t.Fatal("two runs got the same token")
	}

	// Full: nothing more is claimed until a run ends.
	f.tick(d)
	f.wantStatus(ids[2], store.RunQueued, "")
	f.heartbeat(ids[0])
	if _, err := f.store.FinishRun(f.ctx, ids[0], store.RunSucceeded, "", f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	b.setState(f.run(ids[0]).JobID, JobStatus{State: JobExited, Detail: "exit status 0"})
	f.tick(d)
	f.wantStatus(ids[0], store.RunSucceeded, "")
	f.wantStatus(ids[2], store.RunStarting, "")
}

func TestSubmitErrorFailsTheRun(t *testing.T) {
	f := newFixture(t)
	b := newFakeBackend(1)
	b.submitErr = errors.New("no GPUs left in the region")
	d := f.dispatcher(b, nil)
	id := f.queue("fake")
	f.tick(d)
	r := f.wantStatus(id, store.RunFailed, "the fake backend could not start the worker: no GPUs left in the region")
	if f.billed(id) != 0 || r.FinishedAt.IsZero() {
		t.Fatalf("run %+v billed %d s", r, f.billed(id))
	}
}

func TestExitWithoutFinishFailsAndBillsToLastHeartbeat(t *testing.T) {
	f := newFixture(t)
	b := newFakeBackend(1)
	d := f.dispatcher(b, nil)
	id := f.queue("fake")
	f.tick(d)
	f.clock.Add(3 * time.Second)
	f.heartbeat(id)
	f.clock.Add(20 * time.Second)
	f.heartbeat(id)
	last := f.clock.Now()
	f.clock.Add(4 * time.Second)
	b.setState(f.run(id).JobID, JobStatus{State: JobExited, Detail: "exit status 3"})
	f.tick(d)
	r := f.wantStatus(id, store.RunFailed, "the worker process stopped before the run finished (exit status 3)")
	if got := f.billed(id); got != 20 {
		t.Fatalf("billed %d s, want 20 (first to last heartbeat)", got)
	}
	if !r.FinishedAt.Equal(last) {
		t.Fatalf("finished at %v, want the last heartbeat %v", r.FinishedAt, last)
	}
}

func TestWorkerThatFinishedJustBeforeExitingKeepsItsStatus(t *testing.T) {
	f := newFixture(t)
	b := newFakeBackend(1)
	d := f.dispatcher(b, nil)
	id := f.queue("fake")
	f.tick(d)
	f.heartbeat(id)
	job := f.run(id).JobID
	// Between the pass listing the run and asking the backend, the worker posts its
	// finish and exits.
	b.onStatus = func(string) {
		b.onStatus = nil
		if _, err := f.store.FinishRun(f.ctx, id, store.RunSucceeded, "", f.clock.Now()); err != nil {
			t.Error(err)
		}
		b.setState(job, JobStatus{State: JobExited, Detail: "exit status 0"})
	}
	f.tick(d)
	f.wantStatus(id, store.RunSucceeded, "")
}

func TestHeartbeatTimeoutFailsAndStopsBillingAtLastHeartbeat(t *testing.T) {
	f := newFixture(t)
	b := newFakeBackend(1)
	d := f.dispatcher(b, nil)
	id := f.queue("fake")
	f.tick(d)
	f.heartbeat(id)
	f.clock.Add(10 * time.Second)
	f.heartbeat(id)
	job := f.run(id).JobID

	f.clock.Add(59 * time.Second)
	f.tick(d)
	f.wantStatus(id, store.RunRunning, "")

	f.clock.Add(2 * time.Second)
	f.tick(d)
	f.wantStatus(id, store.RunFailed, "no heartbeat from the worker for 60 s")
	if b.cancels(job) != 1 {
		t.Fatalf("job cancelled %d times, want 1", b.cancels(job))
	}
	if got := f.billed(id); got != 10 {
		t.Fatalf("billed %d s, want 10", got)
	}
}

func TestStartTimeoutFailsAndStopsTheJob(t *testing.T) {
	f := newFixture(t)
	b := newFakeBackend(1)
	d := f.dispatcher(b, nil)
	id := f.queue("fake")
	f.tick(d)
	job := f.run(id).JobID
	f.clock.Add(9 * time.Minute)
	f.tick(d)
	f.wantStatus(id, store.RunStarting, "")
	f.clock.Add(2 * time.Minute)
	f.tick(d)
	f.wantStatus(id, store.RunFailed, "the worker did not start within 10 min")
	if b.cancels(job) != 1 || f.billed(id) != 0 {
		t.Fatalf("cancels %d, billed %d", b.cancels(job), f.billed(id))
	}
}

func TestCancelRequestedIsEnforcedAfterGrace(t *testing.T) {
	f := newFixture(t)
	b := newFakeBackend(1)
	d := f.dispatcher(b, nil)
	id := f.queue("fake")
	f.tick(d)
	f.heartbeat(id)
	job := f.run(id).JobID
	if _, err := f.store.CancelRun(f.ctx, f.userID, id); err != nil {
		t.Fatal(err)
	}
	f.tick(d) // grace starts
	for range 5 {
		f.clock.Add(5 * time.Second)
		f.heartbeat(id) // the worker is alive but ignores the cancel
		f.tick(d)
	}
	f.wantStatus(id, store.RunRunning, "")
	if b.cancels(job) != 0 {
		t.Fatal("job stopped within the grace")
	}
	f.clock.Add(5 * time.Second)
	f.tick(d)
	f.wantStatus(id, store.RunCancelled, "cancelled")
	if b.cancels(job) != 1 {
		t.Fatalf("job cancelled %d times, want 1", b.cancels(job))
	}
	if got := f.billed(id); got != 30 {
		t.Fatalf("billed %d s, want 30 (until it was stopped)", got)
	}
}

func TestCancelHonouredByTheWorkerIsLeftAlone(t *testing.T) {
	f := newFixture(t)
	b := newFakeBackend(1)
	d := f.dispatcher(b, nil)
	id := f.queue("fake")
	f.tick(d)
	f.heartbeat(id)
	job := f.run(id).JobID
	if _, err := f.store.CancelRun(f.ctx, f.userID, id); err != nil {
		t.Fatal(err)
	}
	f.tick(d)
	f.clock.Add(2 * time.Second)
	if _, err := f.store.FinishRun(f.ctx, id, store.RunCancelled, "stopped at step 1", f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	b.setState(job, JobStatus{State: JobExited, Detail: "exit status 0"})
	f.clock.Add(time.Minute)
	f.tick(d)
	f.wantStatus(id, store.RunCancelled, "stopped at step 1")
	if b.cancels(job) != 0 {
		t.Fatal("a job that ended on its own was cancelled")
	}
}

func TestCancelWhileStartingStopsAtOnce(t *testing.T) {
	f := newFixture(t)
	b := newFakeBackend(1)
	d := f.dispatcher(b, nil)
	id := f.queue("fake")
	f.tick(d)
	job := f.run(id).JobID
	if _, err := f.store.CancelRun(f.ctx, f.userID, id); err != nil {
		t.Fatal(err)
	}
	f.tick(d)
	f.wantStatus(id, store.RunCancelled, "cancelled")
	if b.cancels(job) != 1 {
		t.Fatalf("job cancelled %d times, want 1", b.cancels(job))
	}
}

func TestDeletedRunsJobIsStopped(t *testing.T) {
	f := newFixture(t)
	b := newFakeBackend(2)
	d := f.dispatcher(b, nil)
	running, starting := f.queue("fake"), f.queue("fake")
	f.tick(d)
	f.heartbeat(running)
	for _, id := range []int64{running, starting} {
		if err := f.store.DeleteRun(f.ctx, f.userID, id); err != nil {
			t.Fatal(err)
		}
	}
	f.tick(d)
	f.wantStatus(starting, store.RunCancelled, "deleted")
	f.wantStatus(running, store.RunRunning, "")
	f.clock.Add(31 * time.Second)
	f.heartbeat(running)
	f.tick(d)
	r := f.wantStatus(running, store.RunCancelled, "deleted")
	if b.cancels(r.JobID) != 1 || b.cancels(f.run(starting).JobID) != 1 {
		t.Fatal("a deleted run's job was not stopped")
	}
}

func TestClaimedButUnsubmittedRunIsRequeued(t *testing.T) {
	f := newFixture(t)
	f.queue("fake")
	// A server claimed the run, then stopped before Submit.
	_, hash := NewRunToken()
	r, ok, err := f.store.ClaimQueuedRun(f.ctx, "fake", hash)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	b := newFakeBackend(1)
	d := f.dispatcher(b, nil)
	if err := d.Reconcile(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.wantStatus(r.ID, store.RunQueued, "")
	if h, _ := f.store.RunTokenHash(f.ctx, r.ID); h != nil {
		t.Fatal("the unused token is still valid")
	}
	f.tick(d)
	r = f.wantStatus(r.ID, store.RunStarting, "")
	if r.JobID == "" || len(b.submitted) != 1 {
		t.Fatalf("not submitted again: %+v", r)
	}
}

func TestRestartReconcilesWithTheBackend(t *testing.T) {
	f := newFixture(t)
	b := newFakeBackend(2)
	d := f.dispatcher(b, nil)
	alive, gone := f.queue("fake"), f.queue("fake")
	f.tick(d)
	f.heartbeat(alive)
	f.heartbeat(gone)
	f.clock.Add(5 * time.Second)
	f.heartbeat(alive)
	f.heartbeat(gone)

	// The server restarts: a new store handle, dispatcher and backend. The backend still
	// sees the first job but lost the second.
	f.clock.Add(10 * time.Second)
	s2 := openStore(t, f.path, f.clock)
	b2 := newFakeBackend(2)
	b2.jobs[f.run(alive).JobID] = &fakeJob{st: JobStatus{State: JobRunning}}
	d2 := NewDispatcher(DispatcherConfig{Store: s2, Backend: b2, Logger: testLogger(t), ServerURL: "http://tunelab.test", Now: f.clock.Now})
	if err := d2.Reconcile(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.wantStatus(alive, store.RunRunning, "")
	f.wantStatus(gone, store.RunFailed, "the worker process stopped before the run finished (the fake backend no longer knows job "+f.run(gone).JobID+")")
	if got := f.billed(gone); got != 5 {
		t.Fatalf("billed %d s, want 5 (to the last heartbeat)", got)
	}
	if len(b2.submitted) != 0 {
		t.Fatal("reconcile submitted jobs")
	}
}

func TestWakeNeverBlocks(t *testing.T) {
	f := newFixture(t)
	d := f.dispatcher(newFakeBackend(1), nil)
	for range 10 {
		d.Wake()
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		60 * time.Second: "60 s", 10 * time.Minute: "10 min", 90 * time.Second: "90 s", 1500 * time.Millisecond: "1.5s",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestClaimedButUnsubmittedRunThatWasDeletedIsNotRequeued(t *testing.T) {
	f := newFixture(t)
	f.queue("fake")
	_, hash := NewRunToken()
	r, ok, err := f.store.ClaimQueuedRun(f.ctx, "fake", hash)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := f.store.DeleteRun(f.ctx, f.userID, r.ID); err != nil {
		t.Fatal(err)
	}
	d := f.dispatcher(newFakeBackend(1), nil)
	if err := d.Reconcile(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.wantStatus(r.ID, store.RunCancelled, "deleted")
}
