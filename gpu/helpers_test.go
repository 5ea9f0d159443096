package gpu

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"tunelab/store"
	"tunelab/store/storetest"
)

// clock is a settable time source shared by the store and the dispatcher.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture is a real store with one user and one chat dataset to queue runs on.
type fixture struct {
	t       *testing.T
	ctx     context.Context
	clock   *clock
	store   *store.Store
	path    string
	vault   *store.Vault
	userID  int64
	dataset int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	c := newClock()
	dir := t.TempDir()
	path := filepath.Join(dir, storetest.DBFile)
	s, v := storetest.OpenDir(t, dir, store.Options{Now: c.Now})
	f := &fixture{t: t, ctx: ctx, clock: c, store: s, path: path, vault: v}
	f.userID, f.dataset = f.person("ada@example.com")
	return f
}

// person signs up someone with one chat dataset.
func (f *fixture) person(email string) (userID, datasetID int64) {
	f.t.Helper()
	t, ctx, s, v := f.t, f.ctx, f.store, f.vault
	u, err := s.CreateUser(ctx, store.NewUser{Email: email, Password: "a long and unusual passphrase", TermsVersion: "1"})
	if err != nil {
		t.Fatal(err)
	}
	var sample store.Sample
	for _, sm := range store.Samples {
		if sm.Format == "chat" {
			sample = sm
		}
	}
	file, err := sample.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	d, err := s.CreateDataset(ctx, v, store.NewDataset{UserID: u.ID, Name: sample.Name, Content: file, MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return u.ID, d.ID
}

// openStore opens the fixture's database file again, as a restarted server would.
func openStore(t *testing.T, path string, c *clock) *store.Store {
	t.Helper()
	return storetest.Open(t, path, store.Options{Now: c.Now, Argon2: storetest.CheapArgon2})
}

func (f *fixture) queue(backend string) int64 {
	f.t.Helper()
	return f.queueGPU(backend, "cpu")
}

// queueGPU queues a run of the fixture's person on a GPU type.
func (f *fixture) queueGPU(backend, gpuType string) int64 {
	f.t.Helper()
	return f.queueAs(f.userID, f.dataset, backend, gpuType)
}

func (f *fixture) queueAs(userID, datasetID int64, backend, gpuType string) int64 {
	f.t.Helper()
	r, err := f.store.CreateRun(f.ctx, store.NewRun{UserID: userID, DatasetID: datasetID, Backend: backend, Config: store.RunConfig{
		BaseModel: "tunelab/byte-mlp-base", Method: "lora", Epochs: 1, LearningRate: 3e-3, BatchSize: 16,
		LoRARank: 16, LoRAAlpha: 32, MaxSeqLen: 512, Seed: 42, GPUType: gpuType, ValidationSplit: 10,
	}})
	if err != nil {
		f.t.Fatal(err)
	}
	return r.ID
}

func (f *fixture) run(id int64) store.Run {
	f.t.Helper()
	r, err := f.store.RunByID(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) heartbeat(id int64) {
	f.t.Helper()
	if _, err := f.store.Heartbeat(f.ctx, id, 1, 10); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) wantStatus(id int64, status store.RunStatus, reason string) store.Run {
	f.t.Helper()
	r := f.run(id)
	if r.Status != status || r.Reason != reason {
		f.t.Fatalf("run %d is %s (%q), want %s (%q)", id, r.Status, r.Reason, status, reason)
	}
	return r
}

func (f *fixture) billed(id int64) int64 {
	f.t.Helper()
	u, err := f.store.RunUsage(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	var s int64
	for _, row := range u {
		s += row.Seconds
	}
	return s
}

func (f *fixture) dispatcher(b Backend, hub *Hub) *Dispatcher {
	return NewDispatcher(DispatcherConfig{Store: f.store, Backend: b, Hub: hub, Logger: testLogger(f.t),
		ServerURL: "http://tunelab.test", Now: f.clock.Now})
}

// testLogger shows the dispatcher's log only for failing (or -v) tests.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func (f *fixture) tick(d *Dispatcher) {
	f.t.Helper()
	if err := d.Tick(f.ctx); err != nil {
		f.t.Fatal(err)
	}
}

// fakeBackend keeps jobs in memory; tests set their states.
type fakeBackend struct {
	mu        sync.Mutex
	name      string   // "fake" unless set
	gpus      []string // GPU types offered; "cpu" unless set
	slots     int
	submitErr error
	next      int
	jobs      map[string]*fakeJob
	submitted []Job
	offers    int // passes that looked for free slots
	// onStatus, when set, runs before Status answers (to stage races).
	onStatus func(jobID string)
}

type fakeJob struct {
	Job
	st        JobStatus
	cancelled int
}

func newFakeBackend(slots int) *fakeBackend {
	return &fakeBackend{slots: slots, jobs: map[string]*fakeJob{}}
}

func (b *fakeBackend) Name() string {
	if b.name != "" {
		return b.name
	}
	return "fake"
}

func (b *fakeBackend) Offer() Offer {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.offers++
	o := Offer{Slots: b.slots}
	gpus := b.gpus
	if gpus == nil {
		gpus = []string{"cpu"}
	}
	for _, g := range gpus {
		o.GPUTypes = append(o.GPUTypes, GPUType{ID: g, Name: g})
	}
	return o
}

func (b *fakeBackend) offerCalls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.offers
}

func (b *fakeBackend) Submit(ctx context.Context, job Job) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.submitErr != nil {
		return "", b.submitErr
	}
	b.next++
	id := fmt.Sprintf("job-%d", b.next)
	b.jobs[id] = &fakeJob{Job: job, st: JobStatus{State: JobRunning}}
	b.submitted = append(b.submitted, job)
	return id, nil
}

func (b *fakeBackend) Status(ctx context.Context, jobID string) (JobStatus, error) {
	if b.onStatus != nil {
		b.onStatus(jobID)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	j := b.jobs[jobID]
	if j == nil {
		return JobStatus{State: JobUnknown}, nil
	}
	return j.st, nil
}

func (b *fakeBackend) Cancel(ctx context.Context, jobID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if j := b.jobs[jobID]; j != nil {
		j.cancelled++
		j.st = JobStatus{State: JobExited, Detail: "signal: terminated"}
	}
	return nil
}

func (b *fakeBackend) setState(jobID string, st JobStatus) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.jobs[jobID].st = st
}

func (b *fakeBackend) cancels(jobID string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if j := b.jobs[jobID]; j != nil {
		return j.cancelled
	}
	return 0
}
