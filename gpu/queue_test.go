package gpu

import (
	"testing"
	"time"

	"tunelab/store"
)

// succeed ends a started run as its worker would: finish posted, process gone.
func (f *fixture) succeed(b *fakeBackend, id int64) {
	f.t.Helper()
	if _, err := f.store.FinishRun(f.ctx, id, store.RunSucceeded, "", f.clock.Now()); err != nil {
		f.t.Fatal(err)
	}
	b.setState(f.run(id).JobID, JobStatus{State: JobExited, Detail: "exit status 0"})
}

func TestFairQueueOnePersonsManyRunsDoNotStarveAnothersOne(t *testing.T) {
	f := newFixture(t)
	b := newFakeBackend(1)
	d := f.dispatcher(b, nil)
	var ada []int64
	for range 20 {
		ada = append(ada, f.queue("fake"))
	}
	bobID, bobData := f.person("bob@example.com")
	f.clock.Add(time.Second)
	bob := f.queueAs(bobID, bobData, "fake", "cpu")

	f.tick(d)
	f.wantStatus(ada[0], store.RunStarting, "")
	f.wantStatus(bob, store.RunQueued, "")
	spot, ok, err := d.Spot(f.ctx, bob)
	if err != nil || !ok || spot.Position != 1 {
		t.Fatalf("Bob's spot %+v ok=%v err=%v, want position 1", spot, ok, err)
	}
	if spot, _, _ := d.Spot(f.ctx, ada[1]); spot.Position != 2 {
		t.Fatalf("Ada's second run is at position %d, want 2 (after Bob's)", spot.Position)
	}

	// The next free slot is Bob's, though Ada queued 19 more runs before his.
	f.clock.Add(time.Minute)
	f.succeed(b, ada[0])
	f.tick(d)
	f.wantStatus(bob, store.RunStarting, "")
	for _, id := range ada[1:] {
		f.wantStatus(id, store.RunQueued, "")
	}
	// Then Ada's runs go on in order.
	f.clock.Add(time.Minute)
	f.succeed(b, bob)
	f.tick(d)
	f.wantStatus(ada[1], store.RunStarting, "")
	f.wantStatus(ada[2], store.RunQueued, "")
}

func TestFairQueueAlternatesWhenSeveralSlotsFree(t *testing.T) {
	f := newFixture(t)
	b := newFakeBackend(3)
	d := f.dispatcher(b, nil)
	ada := []int64{f.queue("fake"), f.queue("fake"), f.queue("fake")}
	bobID, bobData := f.person("bob@example.com")
	bob := []int64{f.queueAs(bobID, bobData, "fake", "cpu"), f.queueAs(bobID, bobData, "fake", "cpu")}
	f.tick(d)
	// Three slots: Ada, Bob, Ada (whoever has fewer runs going goes next).
	f.wantStatus(ada[0], store.RunStarting, "")
	f.wantStatus(bob[0], store.RunStarting, "")
	f.wantStatus(ada[1], store.RunStarting, "")
	f.wantStatus(ada[2], store.RunQueued, "")
	f.wantStatus(bob[1], store.RunQueued, "")
}

func TestRunsGoToABackendThatOffersTheirGPUType(t *testing.T) {
	f := newFixture(t)
	cpu := &fakeBackend{name: "here", slots: 1, jobs: map[string]*fakeJob{}}
	big := &fakeBackend{name: "cluster", gpus: []string{"a100", "cpu"}, slots: 2, jobs: map[string]*fakeJob{}}
	d := NewDispatcher(DispatcherConfig{Store: f.store, Backends: []Backend{cpu, big}, Logger: testLogger(t),
		ServerURL: "http://tunelab.test", Now: f.clock.Now})
	if got := d.Pool().Name(); got != "here and cluster" {
		t.Fatalf("pool name %q", got)
	}
	if o := d.Pool().Offer(); len(o.GPUTypes) != 2 || o.Slots != 3 {
		t.Fatalf("the union offer %+v", o)
	}
	if name, problem := d.Pool().Route(store.RunConfig{GPUType: "h100", Method: "lora"}); name != "" || problem == "" {
		t.Fatalf("h100 routed to %q (%q)", name, problem)
	}
	a100 := f.queueGPU(RouteName(d.Pool(), store.RunConfig{GPUType: "a100"}), "a100")
	c1 := f.queueGPU("here", "cpu")
	c2 := f.queueGPU("here", "cpu") // "here" is full after c1: it goes to the cluster, which offers cpu too
	c3 := f.queueGPU("here", "cpu")
	f.tick(d)
	if r := f.wantStatus(a100, store.RunStarting, ""); r.Backend != "cluster" {
		t.Fatalf("a100 run on %q", r.Backend)
	}
	if r := f.wantStatus(c1, store.RunStarting, ""); r.Backend != "here" {
		t.Fatalf("first cpu run on %q", r.Backend)
	}
	if r := f.wantStatus(c2, store.RunStarting, ""); r.Backend != "cluster" {
		t.Fatalf("second cpu run on %q, want the cluster's free slot", r.Backend)
	}
	f.wantStatus(c3, store.RunQueued, "")
	if len(cpu.submitted) != 1 || len(big.submitted) != 2 || big.submitted[0].Config.GPUType != "a100" {
		t.Fatalf("submitted here %+v, cluster %+v", cpu.submitted, big.submitted)
	}
	// Each backend follows its own jobs: the cluster's a100 job dies, the run fails.
	big.setState(f.run(a100).JobID, JobStatus{State: JobExited, Detail: "node failure"})
	f.tick(d)
	f.wantStatus(a100, store.RunFailed, "the worker process stopped before the run finished (node failure)")
	if r := f.wantStatus(c3, store.RunStarting, ""); r.Backend != "cluster" {
		t.Fatalf("third cpu run on %q", r.Backend)
	}

	rep, err := d.Report(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Backends) != 2 || rep.Backends[0].Running != 1 || rep.Backends[1].Running != 2 || rep.Backends[1].Slots != 2 ||
		rep.Queued != 0 || rep.Backends[0].Problem != "" || rep.Backends[0].Checked.IsZero() {
		t.Fatalf("report %+v", rep)
	}
}

func TestQueueSpotEstimatesFromProgressAndTypicalRuns(t *testing.T) {
	f := newFixture(t)
	b := newFakeBackend(1)
	d := f.dispatcher(b, nil)
	// History: one run that trained for 4 minutes.
	past := f.queue("fake")
	f.tick(d)
	f.heartbeat(past)
	f.clock.Add(4 * time.Minute)
	f.succeed(b, past)

	running := f.queue("fake")
	f.tick(d)
	f.heartbeat(running)
	f.clock.Add(30 * time.Second)
	if _, err := f.store.Heartbeat(f.ctx, running, 3, 4); err != nil { // 3 of 4 steps in 30 s
		t.Fatal(err)
	}
	next, after := f.queue("fake"), f.queue("fake")
	now := f.clock.Now()

	spot, ok, err := d.Spot(f.ctx, next)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if spot.Position != 1 || !spot.Start.Equal(now.Add(10*time.Second)) || spot.Running != 1 {
		t.Fatalf("next %+v: want position 1 starting in 10 s (the running run's last step)", spot)
	}
	spot, _, _ = d.Spot(f.ctx, after)
	if spot.Position != 2 || !spot.Start.Equal(now.Add(10*time.Second+4*time.Minute)) || spot.Typical != 4*time.Minute || spot.Samples != 1 {
		t.Fatalf("after %+v: want position 2, a typical 4 min run after the next", spot)
	}
	if _, ok, _ := d.Spot(f.ctx, running); ok {
		t.Fatal("a running run has a queue spot")
	}
	// A run no backend can take has a place but no start.
	stranded := f.queueGPU("fake", "a100")
	spot, ok, _ = d.Spot(f.ctx, stranded)
	if !ok || !spot.Start.IsZero() {
		t.Fatalf("stranded %+v", spot)
	}
}
