package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func nullF(v float64) sql.NullFloat64 { return sql.NullFloat64{Float64: v, Valid: true} }

// evalFixture is a person's run with one snapshot.
func evalFixture(t *testing.T, f *closeFixture) (userID, runID, snapshotID int64) {
	t.Helper()
	ctx := context.Background()
	u, err := f.s.CreateUser(ctx, NewUser{Email: "evals@example.com", Password: "eval passphrase 1", TermsVersion: "v"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.s.CreateDataset(ctx, f.v, NewDataset{UserID: u.ID, Name: "d", Content: strings.NewReader(strings.Join(rows(chatRow, 12), "\n")), MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	run, err := f.s.CreateRun(ctx, NewRun{UserID: u.ID, DatasetID: d.ID, Config: testRunConfig("lora"), Backend: "local", Name: "r"})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("weights")
	sum := sha256.Sum256(body)
	sn, err := f.s.CreateSnapshot(ctx, f.v, NewSnapshot{RunID: run.ID, Step: 5, Final: true, SHA256: hex.EncodeToString(sum[:]), MaxBytes: 1 << 20}, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return u.ID, run.ID, sn.ID
}

// A job a restart cut short (left running) is queued again and claimed once more; a
// queued job is not queued twice, and a finished one can be queued again.
func TestSnapshotEvalsSurviveARestart(t *testing.T) {
	f := newCloseFixture(t)
	s, ctx := f.s, context.Background()
	u, run, snap := evalFixture(t, f)
	if err := s.QueueSnapshotEval(ctx, u, run, snap, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.QueueSnapshotEval(ctx, u, run, snap, 0); err != nil {
		t.Fatal(err)
	}
	job, err := s.ClaimNextEval(ctx)
	if err != nil || job.SnapshotID != snap || job.Status != EvalRunning {
		t.Fatalf("claim: %+v %v", job, err)
	}
	if _, err := s.ClaimNextEval(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a second claim: %v", err)
	}
	// The server stops here; at start-up the job is queued again.
	if n, err := s.RequeueRunningEvals(ctx); err != nil || n != 1 {
		t.Fatalf("requeue: %d %v", n, err)
	}
	job, err = s.ClaimNextEval(ctx)
	if err != nil || job.SnapshotID != snap {
		t.Fatalf("claim after restart: %+v %v", job, err)
	}
	if err := s.FinishEval(ctx, job.ID, 3, 1.5, nullF(1), nullF(1)); err != nil {
		t.Fatal(err)
	}
	evals, err := s.SnapshotEvals(ctx, u, run, 0)
	if err != nil || evals[snap].Status != EvalDone || evals[snap].EvalLoss.Float64 != 1.5 || evals[snap].Rows != 3 {
		t.Fatalf("stored: %+v %v", evals, err)
	}
	if other, _ := s.SnapshotEvals(ctx, u+1000, run, 0); len(other) != 0 {
		t.Fatalf("another person sees %+v", other)
	}
	if err := s.QueueSnapshotEval(ctx, u, run, snap, 0); err != nil {
		t.Fatal(err)
	}
	if evals, _ := s.SnapshotEvals(ctx, u, run, 0); evals[snap].Status != EvalQueued {
		t.Fatalf("queued again: %+v", evals[snap])
	}
}

// Progress counts only while the job runs.
func TestSnapshotEvalProgress(t *testing.T) {
	f := newCloseFixture(t)
	s, ctx := f.s, context.Background()
	u, run, snap := evalFixture(t, f)
	s.QueueSnapshotEval(ctx, u, run, snap, 0)
	queued, _ := s.SnapshotEvals(ctx, u, run, 0)
	if err := s.SetEvalProgress(ctx, queued[snap].ID, 10); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.SnapshotEvals(ctx, u, run, 0); e[snap].Rows != 0 {
		t.Fatalf("a queued job has progress: %+v", e[snap])
	}
	job, _ := s.ClaimNextEval(ctx)
	s.SetEvalProgress(ctx, job.ID, 20)
	if e, _ := s.SnapshotEvals(ctx, u, run, 0); e[snap].Rows != 20 || e[snap].Status != EvalRunning {
		t.Fatalf("progress: %+v", e[snap])
	}
}
