package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

type testClock struct{ t time.Time }

func (c *testClock) now() time.Time          { return c.t }
func (c *testClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// runFixture is a store with two people, each with a chat and a preference dataset.
type runFixture struct {
	s          *Store
	v          *Vault
	dir        string
	clock      *testClock
	ada, bob   User
	chat, pref Dataset
	bobChat    Dataset
}

func newRunFixture(t *testing.T) *runFixture {
	t.Helper()
	f := &runFixture{clock: &testClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}}
	f.s, _ = openTest(t, Options{Argon2: cheapArgon2, Now: f.clock.now})
	f.v, f.dir = testVault(t)
	ctx := context.Background()
	var err error
	f.ada, err = f.s.CreateUser(ctx, NewUser{Email: "ada@example.com", Password: "run passphrase 1", TermsVersion: "v"})
	if err != nil {
		t.Fatal(err)
	}
	f.bob, _ = f.s.CreateUser(ctx, NewUser{Email: "bob@example.com", Password: "run passphrase 2", TermsVersion: "v"})
	mk := func(u User, row func(int) string) Dataset {
		d, err := f.s.CreateDataset(ctx, f.v, NewDataset{UserID: u.ID, Name: "d", Content: strings.NewReader(strings.Join(rows(row, 12), "\n")), MaxSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	f.chat, f.pref, f.bobChat = mk(f.ada, chatRow), mk(f.ada, preferenceRow), mk(f.bob, chatRow)
	return f
}

func testRunConfig(method Method) RunConfig {
	return RunConfig{BaseModel: "m", Method: method, Epochs: 1, LearningRate: 3e-3, BatchSize: 4, LoRARank: 8, LoRAAlpha: 16,
		MaxSeqLen: 128, Seed: 1, GPUType: "cpu", ValidationSplit: 10}
}

func (f *runFixture) queue(t *testing.T, method Method, d Dataset) Run {
	t.Helper()
	r, err := f.s.CreateRun(context.Background(), NewRun{UserID: d.UserID, DatasetID: d.ID, Config: testRunConfig(method), Backend: "local"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCreateRunChecksDatasetOwnerAndFormat(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		nr      NewRun
		wantErr error
	}{
		{"another person's dataset", NewRun{UserID: f.ada.ID, DatasetID: f.bobChat.ID, Config: testRunConfig("lora")}, ErrNotFound},
		{"another person's eval dataset", NewRun{UserID: f.ada.ID, DatasetID: f.chat.ID, EvalDatasetID: f.bobChat.ID, Config: testRunConfig("lora")}, ErrNotFound},
		{"dpo on chat", NewRun{UserID: f.ada.ID, DatasetID: f.chat.ID, Config: testRunConfig("dpo")}, ErrDatasetFormat},
		{"lora on preference", NewRun{UserID: f.ada.ID, DatasetID: f.pref.ID, Config: testRunConfig("lora")}, ErrDatasetFormat},
		{"dpo with a chat eval set", NewRun{UserID: f.ada.ID, DatasetID: f.pref.ID, EvalDatasetID: f.chat.ID, Config: testRunConfig("dpo")}, ErrDatasetFormat},
	} {
		if _, err := f.s.CreateRun(ctx, c.nr); !errors.Is(err, c.wantErr) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.wantErr)
		}
	}
	if rs, _ := f.s.Runs(ctx, f.ada.ID); len(rs) != 0 {
		t.Fatalf("refused runs were stored: %+v", rs)
	}
	r := f.queue(t, "dpo", f.pref)
	if r.Status != RunQueued || r.Config.Method != "dpo" || r.DatasetName != "d" {
		t.Fatalf("run = %+v", r)
	}
	if _, err := f.s.Run(ctx, f.bob.ID, r.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bob reads ada's run: %v", err)
	}
	if _, err := f.s.CancelRun(ctx, f.bob.ID, r.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bob cancels ada's run: %v", err)
	}
	if err := f.s.DeleteRun(ctx, f.bob.ID, r.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bob deletes ada's run: %v", err)
	}
}

func TestRunLifecycleMetersFirstHeartbeatToFinish(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.queue(t, "lora", f.chat)
	hash := sha256.Sum256([]byte("token"))
	claimed, ok, err := f.s.ClaimQueuedRun(ctx, "local", hash[:])
	if err != nil || !ok || claimed.ID != r.ID || claimed.Status != RunStarting {
		t.Fatalf("claim = %+v %v %v", claimed, ok, err)
	}
	if _, ok, _ := f.s.ClaimQueuedRun(ctx, "local", []byte("other")); ok {
		t.Fatal("the same run was claimed twice")
	}
	if id, err := f.s.RunIDForToken(ctx, hash[:]); err != nil || id != r.ID {
		t.Fatalf("token lookup = %d %v", id, err)
	}
	f.clock.advance(30 * time.Second) // starting: not billed
	if cancel, err := f.s.Heartbeat(ctx, r.ID, 0, 100); err != nil || cancel {
		t.Fatalf("heartbeat = %v %v", cancel, err)
	}
	f.clock.advance(61*time.Second + 900*time.Millisecond)
	f.s.Heartbeat(ctx, r.ID, 50, 100)
	done, err := f.s.FinishRun(ctx, r.ID, RunSucceeded, "", f.clock.now())
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != RunSucceeded || done.Step != 100 || done.GPUSeconds != 61 { // succeeded: every step done
		t.Fatalf("finished run = %+v", done)
	}
	if _, err := f.s.RunIDForToken(ctx, hash[:]); !errors.Is(err, ErrNotFound) {
		t.Fatal("the token outlived its run")
	}
	if _, err := f.s.FinishRun(ctx, r.ID, RunFailed, "late", f.clock.now()); !errors.Is(err, ErrRunFinished) {
		t.Fatalf("second finish = %v", err)
	}
	if _, err := f.s.Heartbeat(ctx, r.ID, 60, 100); !errors.Is(err, ErrRunFinished) {
		t.Fatalf("heartbeat after the end = %v", err)
	}
	usage, _ := f.s.RunUsage(ctx, r.ID)
	if len(usage) != 1 || usage[0].Seconds != 61 || usage[0].Seq != 1 {
		t.Fatalf("usage ledger = %+v (billed twice or wrongly)", usage)
	}
	events, _ := f.s.RunEvents(ctx, r.ID)
	var got []string
	for _, e := range events {
		got = append(got, string(e.Status))
	}
	if strings.Join(got, ",") != "queued,starting,running,succeeded" {
		t.Fatalf("timeline = %v", got)
	}
}

func TestCancelAndDeleteRuns(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	queued := f.queue(t, "lora", f.chat)
	c, err := f.s.CancelRun(ctx, f.ada.ID, queued.ID)
	if err != nil || c.Status != RunCancelled || c.GPUSeconds != 0 {
		t.Fatalf("cancel queued = %+v %v", c, err)
	}
	if _, err := f.s.CancelRun(ctx, f.ada.ID, queued.ID); !errors.Is(err, ErrRunFinished) {
		t.Fatalf("cancel twice = %v", err)
	}

	running := f.queue(t, "lora", f.chat)
	f.s.ClaimQueuedRun(ctx, "local", []byte("h1"))
	f.s.Heartbeat(ctx, running.ID, 1, 10)
	c, _ = f.s.CancelRun(ctx, f.ada.ID, running.ID)
	if c.Status != RunRunning || !c.CancelRequested {
		t.Fatalf("cancel running = %+v", c)
	}
	if cancel, _ := f.s.Heartbeat(ctx, running.ID, 2, 10); !cancel {
		t.Fatal("the heartbeat reply does not ask the worker to stop")
	}

	other := f.queue(t, "lora", f.chat)
	f.s.ClaimQueuedRun(ctx, "local", []byte("h2"))
	if err := f.s.DeleteRun(ctx, f.ada.ID, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Run(ctx, f.ada.ID, other.ID); !errors.Is(err, ErrNotFound) {
		t.Fatal("a deleted run is still shown")
	}
	if _, err := f.s.RunIDForToken(ctx, []byte("h2")); !errors.Is(err, ErrNotFound) {
		t.Fatal("a deleted run's token still works")
	}
	unfinished, _ := f.s.UnfinishedRuns(ctx, "local")
	if len(unfinished) != 2 || !unfinished[1].Deleted || !unfinished[1].CancelRequested {
		t.Fatalf("the dispatcher must still see the deleted run to stop its job: %+v", unfinished)
	}
	list, _ := f.s.Runs(ctx, f.ada.ID)
	if len(list) != 2 {
		t.Fatalf("list = %d runs, want 2", len(list))
	}
}

func TestRequeueOnlyUnsubmittedRuns(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.queue(t, "lora", f.chat)
	f.s.ClaimQueuedRun(ctx, "local", []byte("h"))
	if err := f.s.RequeueRun(ctx, r.ID, "server restarted before submitting"); err != nil {
		t.Fatal(err)
	}
	got, _ := f.s.RunByID(ctx, r.ID)
	if got.Status != RunQueued {
		t.Fatalf("status = %s", got.Status)
	}
	f.s.ClaimQueuedRun(ctx, "local", []byte("h"))
	f.s.Heartbeat(ctx, r.ID, 0, 1)
	f.s.RequeueRun(ctx, r.ID, "x")
	if got, _ := f.s.RunByID(ctx, r.ID); got.Status != RunRunning {
		t.Fatalf("a run with a live worker was requeued: %s", got.Status)
	}
}

func TestMetricsDeduplicateByNameAndStep(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.queue(t, "lora", f.chat)
	batch := []MetricPoint{{Name: "loss", Step: 1, Value: 2.5}, {Name: "eval_loss", Step: 1, Value: 2.7}}
	added, err := f.s.AppendMetrics(ctx, r.ID, batch)
	if err != nil || len(added) != 2 || added[0].Seq != 1 || added[1].Seq != 2 {
		t.Fatalf("added = %+v %v", added, err)
	}
	again, _ := f.s.AppendMetrics(ctx, r.ID, append(batch, MetricPoint{Name: "loss", Step: 2, Value: 2.1}))
	if len(again) != 1 || again[0].Step != 2 || again[0].Seq != 3 {
		t.Fatalf("resent batch added %+v", again)
	}
	all, _ := f.s.MetricsAfter(ctx, r.ID, 0, 100)
	if len(all) != 3 {
		t.Fatalf("stored %d points, want 3", len(all))
	}
	after, _ := f.s.MetricsAfter(ctx, r.ID, 2, 100)
	if len(after) != 1 || after[0].Step != 2 || after[0].Name != "loss" {
		t.Fatalf("points after seq 2 = %+v", after)
	}
	logs, _ := f.s.AppendLogs(ctx, r.ID, []string{"one", strings.Repeat("x", MaxLogLineBytes+10), "bad \xff utf8"})
	if len(logs) != 3 || len(logs[1].Line) != MaxLogLineBytes || !strings.Contains(logs[2].Line, "\uFFFD") {
		t.Fatalf("logs = %+v", logs)
	}
	tail, _ := f.s.LogTail(ctx, r.ID, 2)
	if len(tail) != 2 || tail[1].ID != logs[2].ID {
		t.Fatalf("tail = %+v", tail)
	}
}

func TestSnapshotChecksumAndScope(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.queue(t, "lora", f.chat)
	body := bytes.Repeat([]byte("weights!"), 5000)
	sum := sha256.Sum256(body)
	good := hex.EncodeToString(sum[:])

	before, _ := os.ReadDir(f.dir)
	_, err := f.s.CreateSnapshot(ctx, f.v, NewSnapshot{RunID: r.ID, Step: 10, SHA256: strings.Repeat("0", 64), MaxBytes: 1 << 20}, bytes.NewReader(body))
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("bad digest: %v", err)
	}
	_, err = f.s.CreateSnapshot(ctx, f.v, NewSnapshot{RunID: r.ID, Step: 10, SHA256: good, MaxBytes: 100}, bytes.NewReader(body))
	if !errors.Is(err, ErrSnapshotTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if after, _ := os.ReadDir(f.dir); len(after) != len(before) {
		t.Fatalf("a refused snapshot left a file: %d -> %d", len(before), len(after))
	}
	sn, err := f.s.CreateSnapshot(ctx, f.v, NewSnapshot{RunID: r.ID, Step: 10, Final: true, SHA256: good, MaxBytes: 1 << 20}, bytes.NewReader(body))
	if err != nil || sn.SizeBytes != int64(len(body)) || !sn.Final {
		t.Fatalf("snapshot = %+v %v", sn, err)
	}
	if _, err := f.s.CreateSnapshot(ctx, f.v, NewSnapshot{RunID: r.ID, Step: 10, SHA256: good, MaxBytes: 1 << 20}, bytes.NewReader(body)); !errors.Is(err, ErrSnapshotExists) {
		t.Fatalf("second snapshot at a step: %v", err)
	}
	if after, _ := os.ReadDir(f.dir); len(after) != len(before)+1 {
		t.Fatalf("vault files %d -> %d, want one more", len(before), len(after))
	}
	raw, _ := os.ReadFile(f.dir + "/" + sn.FileID)
	if bytes.Contains(raw, []byte("weights!")) {
		t.Fatal("snapshot stored in plaintext")
	}
	if _, err := f.s.Snapshot(ctx, f.bob.ID, r.ID, sn.ID); !errors.Is(err, ErrNotFound) {
		t.Fatal("bob reads ada's snapshot")
	}
	list, _ := f.s.Snapshots(ctx, f.ada.ID, r.ID)
	if len(list) != 1 || list[0].SHA256 != good {
		t.Fatalf("snapshots = %+v", list)
	}
}

func TestRunConfigValidateNamesFields(t *testing.T) {
	c := testRunConfig("lora")
	if bad := c.Validate(); len(bad) != 0 {
		t.Fatalf("valid config refused: %v", bad)
	}
	c = RunConfig{Method: "lora", Epochs: 0, LearningRate: 2, BatchSize: 0, LoRARank: 0, LoRAAlpha: 0, MaxSeqLen: 1, Seed: -1, ValidationSplit: 80, SnapshotEvery: -1}
	bad := c.Validate()
	for _, field := range []string{"base_model", "gpu_type", "epochs", "learning_rate", "batch_size", "lora_rank", "lora_alpha", "max_seq_len", "seed", "validation_split", "snapshot_every"} {
		if bad[field] == "" {
			t.Errorf("no message for %s", field)
		}
	}
	c = testRunConfig("full")
	c.LoRARank = 0 // rank means nothing for full fine-tuning
	if bad := c.Validate(); len(bad) != 0 {
		t.Fatalf("full refused for lora fields: %v", bad)
	}
	if bad := (RunConfig{Method: "sgd"}).Validate(); !strings.Contains(bad["method"], "lora, qlora, dpo or full") {
		t.Fatalf("method message = %q", bad["method"])
	}
}

// A run created for an outside worker is never queued for a backend to take.
func TestRunCreatedClaimedIsNeverQueued(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	hash := sha256.Sum256([]byte("outside"))
	r, err := f.s.CreateRun(ctx, NewRun{UserID: f.chat.UserID, DatasetID: f.chat.ID, Backend: "manual", ClaimedBy: hash[:],
		Config: testRunConfig("lora")})
	if err != nil || r.Status != RunStarting {
		t.Fatalf("create = %+v %v", r, err)
	}
	if _, ok, err := f.s.ClaimRun(ctx, r.ID, "local", []byte("other")); ok || err != nil {
		t.Fatalf("a backend claimed a run an outside worker holds: %v %v", ok, err)
	}
	if id, err := f.s.RunIDForToken(ctx, hash[:]); err != nil || id != r.ID {
		t.Fatalf("token lookup = %d %v", id, err)
	}
}
