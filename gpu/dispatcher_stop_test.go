package gpu

import (
	"testing"
	"time"

	"tunelab/store"
)

// A clean stop the worker does not finish within StopGrace (two heartbeat intervals and
// the upload allowance) becomes a plain cancel, and the run still ends saying why.
func TestCleanStopNotFinishedInTimeBecomesACancel(t *testing.T) {
	f := newFixture(t)
	b := newFakeBackend(1)
	d := f.dispatcher(b, nil)
	id := f.queue("fake")
	f.tick(d)
	f.heartbeat(id)
	job := f.run(id).JobID
	const why = "Stopped at the run's budget cap of $2.00: $2.00 spent"
	if asked, err := f.store.StopRun(f.ctx, id, why); err != nil || !asked {
		t.Fatalf("stop: %v %v", asked, err)
	}
	grace := StopGraceFor(5 * time.Second)
	for waited := time.Duration(0); waited+5*time.Second < grace; waited += 5 * time.Second {
		f.clock.Add(5 * time.Second)
		f.heartbeat(id) // alive, but not finishing
		f.tick(d)
		if f.run(id).CancelRequested {
			t.Fatalf("cancelled %s after the stop, within its grace of %s", waited+5*time.Second, grace)
		}
	}
	f.clock.Add(5 * time.Second)
	f.heartbeat(id)
	f.tick(d)
	if r := f.run(id); !r.CancelRequested || r.Final() {
		t.Fatalf("after the stop grace: %+v", r)
	}
	f.tick(d)                     // the cancel's own grace starts
	f.clock.Add(31 * time.Second) // and ends
	f.heartbeat(id)
	f.tick(d)
	f.wantStatus(id, store.RunCancelled, why)
	if b.cancels(job) != 1 {
		t.Fatalf("job cancelled %d times, want 1", b.cancels(job))
	}
}
