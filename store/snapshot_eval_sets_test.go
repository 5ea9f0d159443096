package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// evalPerson is a person with a run of n snapshots (steps 1..n); it returns the
// snapshot ids in step order.
func evalPerson(t testing.TB, f *closeFixture, email string, n int) (userID, runID int64, snaps []int64) {
	t.Helper()
	ctx := context.Background()
	u, err := f.s.CreateUser(ctx, NewUser{Email: email, Password: "eval passphrase 1", TermsVersion: "v"})
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
	for step := 1; step <= n; step++ {
		body := []byte(fmt.Sprintf("weights %s %d", email, step))
		sum := sha256.Sum256(body)
		sn, err := f.s.CreateSnapshot(ctx, f.v, NewSnapshot{RunID: run.ID, Step: step, Final: step == n, SHA256: hex.EncodeToString(sum[:]), MaxBytes: 1 << 20}, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, sn.ID)
	}
	return u.ID, run.ID, snaps
}

// One person's "evaluate all" on many snapshots takes turns with everyone else's jobs:
// a job queued later by someone else is done next, not after all of them.
func TestEvalQueueTakesTurnsBetweenPeople(t *testing.T) {
	f := newCloseFixture(t)
	s, ctx := f.s, context.Background()
	a, runA, snapsA := evalPerson(t, f, "many@example.com", 6)
	b, runB, snapsB := evalPerson(t, f, "one@example.com", 2)
	c, runC, snapsC := evalPerson(t, f, "late@example.com", 1)
	who := map[int64]string{a: "A", b: "B", c: "C"}
	for _, id := range snapsA {
		if err := s.QueueSnapshotEval(ctx, a, runA, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.QueueSnapshotEval(ctx, b, runB, snapsB[0], 0); err != nil {
		t.Fatal(err)
	}
	var order []string
	work := func(n int) { // the evaluation loop: one job at a time, each to the end
		for range n {
			job, err := s.ClaimNextEval(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.FinishEval(ctx, job.ID, 1, 1, nullF(0), nullF(0)); err != nil {
				t.Fatal(err)
			}
			order = append(order, who[job.UserID])
		}
	}
	work(3)
	// Meanwhile a third person queues one job, and B a second one.
	if err := s.QueueSnapshotEval(ctx, c, runC, snapsC[0], 0); err != nil {
		t.Fatal(err)
	}
	if err := s.QueueSnapshotEval(ctx, b, runB, snapsB[1], 0); err != nil {
		t.Fatal(err)
	}
	work(6)
	if want := []string{"A", "B", "A", "C", "B", "A", "A", "A", "A"}; !slices.Equal(order, want) {
		t.Fatalf("order of completion %v, want %v", order, want)
	}
	if _, err := s.ClaimNextEval(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the queue is not empty: %v", err)
	}
	// A's jobs ran in the order they were queued.
	evals, _ := s.SnapshotEvals(ctx, a, runA, 0)
	for _, id := range snapsA {
		if evals[id].Status != EvalDone {
			t.Fatalf("A's snapshot %d: %+v", id, evals[id])
		}
	}
}

// Scores are kept per (snapshot, eval set): the held-out rows and a dataset are two
// evaluations of the same snapshot, queued, claimed and finished apart.
func TestEvalScoresAreKeptPerEvalSet(t *testing.T) {
	f := newCloseFixture(t)
	s, ctx := f.s, context.Background()
	u, run, snaps := evalPerson(t, f, "sets@example.com", 1)
	other, _, _ := evalPerson(t, f, "sets-other@example.com", 1)
	d, err := s.CreateDataset(ctx, f.v, NewDataset{UserID: u, Name: "my test set", Content: strings.NewReader(strings.Join(rows(completionRow, 10), "\n")), MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range []int64{0, d.ID, d.ID} {
		if err := s.QueueSnapshotEval(ctx, u, run, snaps[0], set); err != nil {
			t.Fatal(err)
		}
	}
	first, _ := s.ClaimNextEval(ctx)
	second, _ := s.ClaimNextEval(ctx)
	if first.DatasetID != 0 || second.DatasetID != d.ID || first.SnapshotID != snaps[0] || second.SnapshotID != snaps[0] {
		t.Fatalf("claimed %+v then %+v", first, second)
	}
	if _, err := s.ClaimNextEval(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the set was queued twice: %v", err)
	}
	s.FinishEval(ctx, first.ID, 2, 0.5, nullF(1), nullF(1))
	s.FinishEval(ctx, second.ID, 10, 2.5, nullF(0), nullF(0))
	held, _ := s.SnapshotEvals(ctx, u, run, 0)
	onSet, _ := s.SnapshotEvals(ctx, u, run, d.ID)
	if held[snaps[0]].EvalLoss.Float64 != 0.5 || held[snaps[0]].Rows != 2 || onSet[snaps[0]].EvalLoss.Float64 != 2.5 || onSet[snaps[0]].Rows != 10 {
		t.Fatalf("held-out %+v, on the dataset %+v", held, onSet)
	}
	sets, err := s.RunEvalDatasets(ctx, u, run)
	if err != nil || len(sets) != 1 || sets[0].ID != d.ID || sets[0].Name != "my test set" || sets[0].Format != FormatCompletion || sets[0].Rows != 10 || sets[0].Deleted {
		t.Fatalf("eval sets: %+v %v", sets, err)
	}
	if _, err := s.EvalDatasetOf(ctx, other, d.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another person's dataset: %v", err)
	}
	// Deleted by its owner: the scores stay, the dataset says it is deleted.
	if err := s.DeleteDataset(ctx, u, d.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := s.EvalDatasetOf(ctx, u, d.ID); err != nil || !got.Deleted {
		t.Fatalf("deleted dataset: %+v %v", got, err)
	}
	if sets, _ := s.RunEvalDatasets(ctx, u, run); len(sets) != 1 || !sets[0].Deleted {
		t.Fatalf("eval sets after the delete: %+v", sets)
	}
	if onSet, _ := s.SnapshotEvals(ctx, u, run, d.ID); onSet[snaps[0]].Status != EvalDone {
		t.Fatalf("scores after the delete: %+v", onSet)
	}
}

// Migration 0030 keeps the scores of 0026 (one row per snapshot) as scores on the run's
// held-out set.
func TestEvalSetsMigrationKeepsScoresAsHeldOut(t *testing.T) {
	f := newCloseFixture(t)
	s, ctx := f.s, context.Background()
	u, run, snaps := evalPerson(t, f, "migrate@example.com", 2)
	all, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	sqlOf := map[int]string{}
	for _, m := range all {
		sqlOf[m.version] = m.sql
	}
	if _, err := s.w.ExecContext(ctx, "DROP TABLE snapshot_evals"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, sqlOf[26]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO snapshot_evals (snapshot_id, user_id, run_id, status, rows, eval_loss, exact_match, contains, created_at, updated_at)
		VALUES (?, ?, ?, 'done', 7, 1.25, 0.5, 0.75, 1, 2), (?, ?, ?, 'queued', 0, NULL, NULL, NULL, 3, 3)`, snaps[0], u, run, snaps[1], u, run); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, sqlOf[30]); err != nil {
		t.Fatal(err)
	}
	evals, err := s.SnapshotEvals(ctx, u, run, 0)
	if err != nil || len(evals) != 2 {
		t.Fatalf("after the migration: %+v %v", evals, err)
	}
	if e := evals[snaps[0]]; e.Status != EvalDone || e.Rows != 7 || e.EvalLoss.Float64 != 1.25 || e.ExactMatch.Float64 != 0.5 || e.Contains.Float64 != 0.75 || e.DatasetID != 0 {
		t.Fatalf("kept scores: %+v", e)
	}
	if job, err := s.ClaimNextEval(ctx); err != nil || job.SnapshotID != snaps[1] {
		t.Fatalf("the queued job: %+v %v", job, err)
	}
}

// Purging a closed account removes its scores on every eval set, its datasets' too,
// and leaves another person's alone.
func TestAccountPurgeRemovesScoresOnEveryEvalSet(t *testing.T) {
	f := newCloseFixture(t)
	s, ctx := f.s, context.Background()
	u, run, snaps := evalPerson(t, f, "purge-evals@example.com", 1)
	other, otherRun, otherSnaps := evalPerson(t, f, "keep-evals@example.com", 1)
	d, err := s.CreateDataset(ctx, f.v, NewDataset{UserID: u, Name: "mine", Content: strings.NewReader(strings.Join(rows(chatRow, 12), "\n")), MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s.QueueSnapshotEval(ctx, u, run, snaps[0], 0)
	s.QueueSnapshotEval(ctx, u, run, snaps[0], d.ID)
	s.QueueSnapshotEval(ctx, other, otherRun, otherSnaps[0], 0)
	for range 3 {
		job, err := s.ClaimNextEval(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s.FinishEval(ctx, job.ID, 1, 1, nullF(1), nullF(1))
	}
	if _, err := s.CloseAccount(ctx, u, u); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(ReopenWindow + time.Hour)
	if rep, err := s.Purge(ctx, f.v, PurgeOptions{}); err != nil || rep.Accounts != 1 {
		t.Fatalf("purge: %+v %v", rep, err)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM snapshot_evals WHERE user_id = ? OR dataset_id = ?", u, d.ID).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d evaluation rows of the purged account left (%v)", n, err)
	}
	if kept, _ := s.SnapshotEvals(ctx, other, otherRun, 0); kept[otherSnaps[0]].Status != EvalDone {
		t.Fatalf("another person's scores: %+v", kept)
	}
}
