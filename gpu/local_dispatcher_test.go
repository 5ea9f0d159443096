package gpu

import (
	"context"
	"testing"
	"time"

	"tunelab/store"
)

func TestLocalWorkerThatExitsWithoutTalkingFailsTheRun(t *testing.T) {
	f := newFixture(t)
	l, _ := shellLocal(t, "exit 0")
	d := f.dispatcher(l, nil)
	id := f.queue("local")
	f.tick(d)
	r := f.wantStatus(id, store.RunStarting, "")
	waitState(t, l, r.JobID, JobExited)
	f.tick(d)
	f.wantStatus(id, store.RunFailed, "the worker process stopped before the run finished (exit status 0)")
}

func TestRunClaimsOnWakeAndStopsWithContext(t *testing.T) {
	f := newFixture(t)
	b := newFakeBackend(1)
	d := NewDispatcher(DispatcherConfig{Store: f.store, Backend: b, Logger: testLogger(t), ServerURL: "http://x", Poll: time.Hour, Now: f.clock.Now})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	// Queue only after the first pass, so only Wake can get the run claimed.
	for deadline := time.Now().Add(5 * time.Second); b.offerCalls() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no first pass")
		}
	}
	id := f.queue("fake")
	d.Wake()
	for deadline := time.Now().Add(5 * time.Second); f.run(id).Status != store.RunStarting; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a woken dispatcher did not claim the run")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
